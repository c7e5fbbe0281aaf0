// ringmaster/supervisor/status.hpp — a snapshot of what a supervisor is doing: value
// types, copied out of the dispatcher, safe to keep and read from any thread.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace ringmaster {

/// The life of one worker slot.
enum class worker_state : std::uint8_t {
  starting,  ///< spawn requested, or started and not yet ready
  ready,     ///< idle, waiting for a job
  busy,      ///< running a job
  stopping,  ///< told to stop or signalled (shutdown, scale-in, removal, timeout) and not yet
             ///< gone; one recycled after max_jobs_per_worker shows busy, then ready, until it goes
  backoff,   ///< dead, waiting for its restart delay
  exited,    ///< ended by an exit code and not restarted
  signaled,  ///< ended by a signal and not restarted
  stopped,   ///< the pool or supervisor stopped
};
std::string_view to_string(worker_state s) noexcept;

struct worker_status {
  int slot = -1;
  pid_t pid = 0;                 ///< 0 when no process is running in the slot
  worker_state state = worker_state::starting;
  std::uint64_t jobs_done = 0;   ///< final results from this slot, over all its processes
  std::uint64_t jobs_failed = 0;  ///< of them failed: by the handler, or by killing this slot's worker (last attempt)
  unsigned restarts = 0;
  std::map<std::string, unsigned> restarts_by_cause;  ///< "SIGSEGV", "timeout", "exit 3", "recycled", ...
  std::string current_job;       ///< id of the job running, "" when idle
  double current_job_ms = 0;     ///< how long it has been running
  double uptime_ms = 0;          ///< since the process became ready
  std::size_t rss_bytes = 0;     ///< resident memory of the process (/proc/PID/statm), 0 when none
};

struct pool_status {
  std::string name;
  std::size_t queued = 0;      ///< accepted, not yet sent to a worker
  std::size_t in_flight = 0;   ///< sent to a worker, no result yet
  std::uint64_t completed = 0;  ///< final results, ok
  std::uint64_t failed = 0;     ///< final results, failed
  std::uint64_t retried = 0;    ///< attempts that were retried
  unsigned restarts = 0;
  bool gave_up = false;         ///< restart intensity exceeded, or it could never start
  bool removed = false;         ///< supervisor::remove_pool: finishing its jobs before it goes
  std::string gave_up_reason;
  std::vector<worker_status> workers;
};

/// The fork servers (see ARCHITECTURE.md, "Processes"): the active one forks every
/// worker; the standby, idle, takes over if the active one dies, and is itself replaced.
struct fork_server_status {
  pid_t active_pid = 0;   ///< 0 once none is left (every pool then gives up)
  pid_t standby_pid = 0;  ///< 0 while there is no standby (being replaced, or cannot be forked)
  unsigned promotions = 0;          ///< active servers that died and were replaced by the standby
  unsigned standby_failures = 0;    ///< failed attempts to fork a standby since the last success
  std::string standby_error;        ///< why the last attempt failed ("" after a success)
};

/// Running totals for a progress display (pool::counters, supervisor::counters). Each
/// field is one atomic load: no lock, no /proc read, no round trip to the dispatcher, so
/// it is cheap to call every few milliseconds (status() is not). The fields are loaded one
/// after the other while jobs move, so together they are a near-snapshot: a job finishing
/// meanwhile may be counted in one field and not yet taken out of another.
struct job_counters {
  std::uint64_t submitted = 0;  ///< jobs given a record: accepted or refused at once, those a handler posted too
  std::uint64_t queued = 0;     ///< accepted, not yet sent to a worker (or back in the queue for a retry)
  std::uint64_t in_flight = 0;  ///< sent to a worker, no result yet
  std::uint64_t completed = 0;  ///< final results, ok
  std::uint64_t failed = 0;     ///< final results, failed (refusals included)
  std::uint64_t retried = 0;    ///< attempts that were retried
  std::uint64_t callback_exceptions = 0;  ///< completion callbacks that threw (see supervisor.hpp)
};

struct supervisor_status {
  std::vector<pool_status> pools;
  fork_server_status fork_servers;
};

}  // namespace ringmaster
