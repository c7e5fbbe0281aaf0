// ringmaster/cli/run.hpp — `ringmaster run`: a whole run, from config to exit status.
//
//   1. Validate everything that can be validated (config, files, options). Any problem:
//      messages on stderr, exit status 2, and nothing started or created.
//   2. Construct the supervisor while this process is single-threaded (it forks the fork
//      servers), add the pools in file order, start.
//   3. Feed jobs from the sources in order (config [[jobs]], then --jobs), streaming:
//      submission blocks while a pool has max_pending jobs unfinished.
//   4. Drain: every accepted job gets its result line. SIGINT, SIGTERM or SIGHUP instead
//      stops: queued jobs are reported `stopped`, in-flight ones get shutdown_timeout; a
//      second signal stops at once (the remaining jobs reported `stopped`, results written).
//
// Signals are taken by a thread reading a signalfd (SIGINT, SIGTERM and SIGHUP are
// blocked in every thread), so nothing async-signal-unsafe ever runs in a handler.
#pragma once

#include <optional>
#include <string>

namespace ringmaster::cli {

/// Exit statuses of `ringmaster run`.
inline constexpr int k_exit_ok = 0;        ///< every job ok
inline constexpr int k_exit_failed = 1;    ///< some job failed (rejected and stopped included)
inline constexpr int k_exit_usage = 2;     ///< bad usage or config: nothing was started
inline constexpr int k_exit_gave_up = 3;   ///< a pool gave up, or the run could not start (threads, fork servers)
inline constexpr int k_exit_output = 4;    ///< results could not all be written (ENOSPC, a closed pipe)

struct run_options {
  std::string config;          ///< CONFIG.toml
  std::string jobs;            ///< --jobs: "" none, "-" stdin, else a file
  std::string results = "-";   ///< --results: "-" stdout, else a file
  std::optional<unsigned> workers;  ///< --workers: every pool's worker count
  bool resume = false;         ///< --resume: rerun every job without an ok line
  bool resume_failed = false;  ///< --resume-failed: rerun only jobs whose last line failed
  bool keep_order = false;     ///< --keep-order: result lines in the order of the jobs
  bool progress = true;
  std::string log_level;       ///< --log-level; "" = the config's, or "info"
};

/// Runs, reporting on stderr; returns the exit status. Call from a process's main thread
/// before it starts any other thread (the supervisor forks).
[[nodiscard]] int run(const run_options& options);

}  // namespace ringmaster::cli
