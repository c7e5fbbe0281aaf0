// bench/ipc/report.hpp — the figures of one benchmark run and how they are written out:
// a Markdown document (stdout and --out) and JSON (--json, read by the chart scripts).
//
// A figure whose run failed (wrong data, timeout, dead peer) carries its error and no
// numbers; it is printed as FAILED and the program exits non-zero.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "harness.hpp"
#include "transports.hpp"

namespace ringmaster::bench {

enum class transport { ring, pipe, message_queue };
/// The round-trip variants: the ring once per wait policy.
enum class variant { ring_sleeping, ring_spinning, pipe, message_queue };

const char* to_string(transport t) noexcept;
const char* to_string(variant v) noexcept;

struct throughput_figure {
  std::size_t size = 0;
  transport via = transport::ring;
  std::string error;                ///< empty when every repetition delivered the right data
  std::uint64_t messages = 0;       ///< per repetition
  std::vector<double> seconds;      ///< one per repetition
  double messages_per_second = 0;   ///< messages / median(seconds)
  double megabytes_per_second = 0;  ///< payload bytes, 10^6 B/s
  [[nodiscard]] bool ok() const noexcept { return error.empty() && !seconds.empty(); }
};

struct latency_figure {
  std::size_t size = 0;
  variant via = variant::ring_sleeping;
  std::string error;
  std::uint64_t warmup = 0;
  std::uint64_t samples = 0;
  std::int64_t p50_ns = 0, p99_ns = 0, p999_ns = 0, min_ns = 0, max_ns = 0;
  double mean_ns = 0;
  [[nodiscard]] bool ok() const noexcept { return error.empty() && samples != 0; }
};

/// How the run was set up, as the report describes it.
struct run_description {
  std::string command;      ///< argv, joined
  std::string produced_by;  ///< the script that ran it, if it says so
  std::string mode;         ///< "default" or "quick"
  std::string started_utc;
  double elapsed_seconds = 0;
  std::string load_before, load_after;  ///< /proc/loadavg
  cpu_share cpu;                        ///< who used the machine during the run
  machine_info machine;
  run_settings settings;
  std::size_t pipe_buffer = 0;  ///< granted by F_SETPIPE_SZ
  int repetitions = 0;
  double seconds_per_repetition = 0;
  double seconds_per_latency = 0;
  int latency_rounds = 0;
  std::vector<std::size_t> sizes;
  int parent_cpu = -1;  ///< -1: not pinned (the child's is in settings)
};

struct report {
  run_description run;
  std::vector<throughput_figure> throughput;
  std::vector<latency_figure> latency;

  [[nodiscard]] const throughput_figure* find(std::size_t size, transport t) const noexcept;
  [[nodiscard]] const latency_figure* find(std::size_t size, variant v) const noexcept;
  [[nodiscard]] bool all_ok() const noexcept;
};

std::string to_markdown(const report& r);
std::string to_json(const report& r);

}  // namespace ringmaster::bench
