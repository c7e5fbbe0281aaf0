// ringmaster/worker/detail/launch.hpp — how a worker process is started and what its exit
// code means. Internal: shared by the worker runtime (serve(), run_worker) and the
// supervisor's fork server, which forks or execs workers; not installed.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ringmaster {
class handlers;
}

namespace ringmaster::detail {

/// Exit codes of a worker process with a meaning for the supervisor.
inline constexpr int k_exit_stopped = 0;
inline constexpr int k_exit_not_launched = 64;
inline constexpr int k_exit_cannot_serve = 70;
inline constexpr int k_exit_protocol = 71;
/// A user's program (adapter.hpp) ended before it took its first job: a start failure,
/// though its worker had said ready, and the job it was given goes back uncharged.
inline constexpr int k_exit_program_not_started = 72;

/// What a worker needs to reach its supervisor: given in memory by the fork server to a
/// forked worker, and as the RINGMASTER_WORKER environment variable to an exec'd one.
struct worker_launch {
  int segment_fd = -1;        ///< the slot's fd-backed segment (wire::link_layout)
  int wake_fd = -1;           ///< eventfd that wakes the dispatcher
  int slot = -1;              ///< the worker's slot in its pool
  std::size_t max_body = 0;   ///< the pool's max_message
  int log_level = -1;         ///< spdlog level to log at; -1: leave as is
  std::string pool;           ///< the pool's name, for logs

  /// "fd=3 wake=4 slot=0 max_body=1048576 log=2 pool=compute"
  [[nodiscard]] std::string to_env() const;
  /// Parses to_env()'s form; nullopt and `error` set if malformed.
  static std::optional<worker_launch> from_env(std::string_view text, std::string& error);
};

inline constexpr const char* k_launch_env = "RINGMASTER_WORKER";

/// Reads the launch from RINGMASTER_WORKER and removes the variable (nothing the worker
/// starts inherits it): 0 with `out` filled. Not set (not launched by a supervisor):
/// prints on stderr what `program` is and the job types `names`, and returns
/// k_exit_not_launched. Malformed: prints why, returns k_exit_cannot_serve. serve() and
/// the C ABI's rm_worker_open() alike.
int launch_from_environment(const char* program, const std::vector<std::string>& names, worker_launch& out) noexcept;

/// The worker's main loop. `handlers_error`, when not empty, is reported to the
/// supervisor as this worker's start failure instead of serving. Returns the exit code.
int run_worker(const worker_launch& launch, const handlers* h, const std::string& handlers_error) noexcept;

/// In a handler: the job it runs is no longer shown as running (worker_control's
/// current_job), so that if this worker dies now the job goes back uncharged. For the
/// adapter (adapter.hpp), whose program died without reading the job.
void release_current_job() noexcept;

}  // namespace ringmaster::detail
