// death_verdict.hpp — what a worker's end means: its kind and cause as the user reads
// them, whether it was abnormal, whether it was planned (not the pool's failure), and
// which of its jobs is charged with it. Pure: the caller passes what the fork server
// and the worker's control block said.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>

#include <ringmaster/worker/result.hpp>

namespace ringmaster::detail {

/// Why the supervisor ended a worker (none: it ended by itself, or something outside
/// ended it).
enum class ending : std::uint8_t { none, timeout, recycle, strategy, hostile, shutdown, start_timeout };

struct worker_end {
  int wait_status = 0;              ///< as waitpid gives it
  std::int64_t max_rss_kib = 0;     ///< its peak RSS
  bool out_of_memory = false;       ///< the worker said it ran out of memory (std::bad_alloc)
  std::size_t memory_limit = 0;     ///< the pool's, in bytes; 0: none
  ending why = ending::none;
  bool server_died = false;         ///< killed with its fork server
};

struct death_verdict {
  error_kind kind = error_kind::crash;  ///< crash, timeout or memory
  std::string cause;                    ///< "SIGSEGV", "exit code 3", "timeout", "memory", "fork server died"
  bool abnormal = false;                ///< not exit code 0, or it timed out
  bool planned = false;                 ///< a clean recycle, a strategy's restart, its server's death
  bool killed_from_outside = false;     ///< SIGKILLed by something other than the supervisor
};

/// "SIGSEGV", or "signal N" for a signal without a name.
std::string signal_name(int sig);

/// A SIGKILL while its peak RSS was at least 90% of memory_limit is a death by memory
/// (the kernel's OOM killer, or a cgroup's), as is the worker's own out-of-memory flag.
death_verdict classify(const worker_end& e);

/// Which of the jobs a worker held (`in_flight` tokens, oldest first) is charged with
/// its death: the one it said it was running (`current`), or for a timeout the oldest
/// (the one timed). None for a planned end. The worker's word only picks among its own
/// jobs.
std::optional<std::size_t> charged_job(std::span<const std::uint64_t> in_flight, std::uint64_t current, const death_verdict& v,
                                       ending why) noexcept;

}  // namespace ringmaster::detail
