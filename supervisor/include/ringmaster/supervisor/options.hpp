// ringmaster/supervisor/options.hpp — how a supervisor and its pools behave: plain
// structs to fill with designated initializers. Semantics follow Erlang/OTP supervisors.
//
// The limits below are the library's, written once: supervisor::add_pool and
// pool::scale refuse what is beyond them, and the `ringmaster` command's config file and
// flags check the same numbers (its option table, detail/option_table.hpp, reads them).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ringmaster {

/// Workers of one pool, at most (pool_options::workers, pool::scale).
inline constexpr unsigned k_max_workers = 1024;
/// pool_options::max_message, at most: 64 MiB (the wire format's largest body, so at
/// most 256 MiB per ring).
inline constexpr std::size_t k_max_message_limit = std::size_t{64} << 20;
/// A pool's name: 1 to k_max_pool_name characters of [A-Za-z0-9_.-].
inline constexpr std::size_t k_max_pool_name = 128;
/// A job's id, and its type, in bytes, at most (a type is at least 1 byte).
inline constexpr std::size_t k_max_id = 1024;

/// Whether `name` can name a pool (add_pool, a config's [pools.NAME]). Non-blocking.
[[nodiscard]] constexpr bool valid_pool_name(std::string_view name) noexcept {
  if (name.empty() || name.size() > k_max_pool_name) return false;
  for (const char c : name)
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '.'))
      return false;
  return true;
}

/// When a pool's worker that exited is replaced.
enum class restart_type : std::uint8_t {
  permanent,  ///< always
  transient,  ///< only after an abnormal exit (a signal, a non-zero code, a timeout)
  temporary,  ///< never: the slot stays empty, and the pool shrinks
};

/// What else is restarted when a worker dies, across the supervisor's pools (its children,
/// in the order they were added).
enum class restart_strategy : std::uint8_t {
  one_for_one,   ///< only that worker
  one_for_all,   ///< every worker of every pool
  rest_for_one,  ///< every worker of that pool and of the pools added after it
};

/// How a pool's `command` talks to its worker slot (README, "Run your own program").
enum class worker_protocol : std::uint8_t {
  ringmaster,  ///< a worker executable built on ringmaster::serve(), on the slot's rings
  jsonl,       ///< a persistent program: one JSON object per line each way
  lines,       ///< a persistent filter: the payload's text as one line in, the result as one line out
  exec,        ///< one process per job: `{}` in its arguments is the payload's text; stdout is the result
};

std::string_view to_string(restart_type t) noexcept;
std::string_view to_string(restart_strategy s) noexcept;
std::optional<restart_type> restart_type_from_string(std::string_view s) noexcept;
std::optional<restart_strategy> restart_strategy_from_string(std::string_view s) noexcept;
std::string_view to_string(worker_protocol p) noexcept;
std::optional<worker_protocol> worker_protocol_from_string(std::string_view s) noexcept;

struct pool_options {
  /// Worker processes, at most k_max_workers; 0: one per core.
  unsigned workers = 0;
  /// Empty: fork workers that run the pool's handlers. Otherwise exec this worker
  /// executable (argv; a bare name is looked up in PATH), built on ringmaster::serve().
  std::vector<std::string> command{};
  /// How `command` talks: a serve() executable, or a program of any language (jsonl,
  /// lines, exec), which the worker slot runs as its child. Any but `ringmaster` needs a
  /// command that exists and is executable; `{}` in its arguments only with `exec`.
  worker_protocol protocol = worker_protocol::ringmaster;
  restart_type restart = restart_type::permanent;
  /// Restart intensity: more than `max_restarts` deaths that count within `restart_window`
  /// and the pool gives up: its workers are stopped and its jobs fail (kind `stopped`).
  /// What counts: every death charged to no job (a worker dying idle or before ready),
  /// and of the deaths charged to jobs only each job's first, until a job of the pool
  /// next succeeds. A job's later deaths are bounded by its max_attempts alone.
  unsigned max_restarts = 10;
  std::chrono::milliseconds restart_window{10'000};
  /// A job whose attempts kill their worker this many times fails (poison job).
  unsigned max_attempts = 3;
  /// Retry a job whose handler threw, up to max_attempts (default: fail it at once).
  bool retry_on_error = false;
  /// A job running longer is stopped: its worker gets SIGTERM, then SIGKILL after
  /// `kill_grace`, and is replaced. 0: no limit.
  std::chrono::milliseconds job_timeout{0};
  std::chrono::milliseconds kill_grace{1000};
  /// A worker that has not reported ready this long after it was started is killed, as
  /// a start failure.
  std::chrono::milliseconds start_timeout{10'000};
  /// Address-space limit of each worker in bytes (RLIMIT_AS); 0: none.
  std::size_t memory_limit = 0;
  /// Replace a worker after it ran this many jobs; 0: never.
  std::uint64_t max_jobs_per_worker = 0;
  /// Largest payload, and largest result, in bytes: 1 byte to 64 MiB
  /// (k_max_message_limit). Each worker maps two rings sized for it
  /// (shared_memory_per_worker: 16 MiB at the default 1 MiB).
  std::size_t max_message = std::size_t{1} << 20;
  /// Jobs accepted and not yet finished, at most; submit() blocks (try_submit refuses)
  /// beyond it. This is what keeps memory bounded when jobs arrive faster than they run.
  /// A blocked submit() resumes once a slice of the jobs has finished (1/16 of
  /// max_pending, at least 1, at most 4096), so that a fast producer wakes once per slice
  /// rather than once per job.
  std::size_t max_pending = 65536;
  /// Jobs sent ahead to each worker; 0: adapt to the jobs' run time: enough for about
  /// 0.5 ms of work for short jobs (batching); for long ones, two while the pool has at
  /// least two queued jobs per worker (a worker starts its next job without waiting for
  /// the dispatcher) and one once fewer are left (so that none of the last jobs waits
  /// behind a long one while a worker idles).
  unsigned prefetch = 0;
  /// Backoff before restarting the same slot again: none for the first restart, then
  /// `backoff_initial` doubling up to `backoff_max`, with +-25% jitter; reset once a
  /// worker has run `stable_after` without dying.
  std::chrono::milliseconds backoff_initial{10};
  std::chrono::milliseconds backoff_max{5000};
  std::chrono::milliseconds stable_after{5000};

  friend bool operator==(const pool_options&, const pool_options&) = default;
};

/// Bytes of shared memory one worker of a pool with these options maps (its two rings,
/// which hold four messages of max_message up to 1 MiB and two beyond, and a control
/// block), reserved whole when the worker first starts: 16 MiB at the default
/// max_message, 512 MiB at the largest. Non-blocking.
std::size_t shared_memory_per_worker(const pool_options& o) noexcept;
/// shared_memory_per_worker() times the pool's workers (0: one per core).
std::size_t shared_memory_of(const pool_options& o) noexcept;
/// What this machine has for more shared memory, in bytes: MemAvailable of
/// /proc/meminfo; 0 if it cannot be read. supervisor::add_pool refuses a pool (with
/// std::invalid_argument naming workers and max_message) whose workers, with those of
/// the pools not started yet, would map more.
std::size_t available_memory() noexcept;

struct supervisor_options {
  /// Names the supervisor in logs.
  std::string name = "ringmaster";
  restart_strategy strategy = restart_strategy::one_for_one;
  /// stop(): how long in-flight jobs may take to finish before their workers are killed.
  std::chrono::milliseconds shutdown_timeout{5000};
};

}  // namespace ringmaster
