// ringmaster/worker/serve.hpp — running a worker: the entry point of a worker executable.
//
//     int main(int argc, char** argv) { return ringmaster::serve(argc, argv, my_handlers()); }
//
// A supervisor launches such an executable (a pool with `command`) with the environment
// variable RINGMASTER_WORKER describing the inherited descriptors; serve() attaches to
// them, reports ready, and runs jobs until the supervisor tells it to stop or dies (the
// worker dies with it: PR_SET_PDEATHSIG). Run by hand, without that variable, serve()
// prints what it is and which job types it serves, and returns 64.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include <ringmaster/worker/handlers.hpp>

namespace ringmaster {

/// Serves jobs with `h` as the worker the environment describes. Blocking until told to
/// stop. Returns the process exit code: 0 after a stop, 64 when not launched by a
/// supervisor, 70 when it cannot attach (the reason is sent to the supervisor when
/// possible, and printed on stderr). Never throws.
int serve(int argc, char** argv, const handlers& h) noexcept;

namespace detail {

/// Exit codes of a worker process with a meaning for the supervisor.
inline constexpr int k_exit_stopped = 0;
inline constexpr int k_exit_not_launched = 64;
inline constexpr int k_exit_cannot_serve = 70;
inline constexpr int k_exit_protocol = 71;

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

/// The worker's main loop. `handlers_error`, when not empty, is reported to the
/// supervisor as this worker's start failure instead of serving. Returns the exit code.
int run_worker(const worker_launch& launch, const handlers* h, const std::string& handlers_error) noexcept;

}  // namespace detail
}  // namespace ringmaster
