// ringmaster/cli/serve.hpp — `ringmaster serve`: the pools of a config, kept running, and
// a control socket through which other programs submit jobs and operators ask for status,
// drain, stop, scale and reload (protocol: protocol.hpp; README, "Running ringmaster as a
// service").
//
//   1. Validate the config (any problem: FILE:LINE: KEY messages, exit 2, nothing
//      started) and the socket's place: its directory must belong to this user and be
//      closed to others (created 0700 if missing); a socket file left by a dead server
//      is replaced, one a live server listens on is refused.
//   2. Construct the supervisor while single-threaded, add the pools, start; create the
//      socket 0600 and listen.
//   3. One thread serves every client with epoll (the dispatcher thread only queues
//      result lines for it). Each connection's peer uid (SO_PEERCRED) must be this
//      process's: another uid gets an error line, the connection is closed, and the
//      refusal is logged.
//   4. Jobs: a client's job lines are admitted as `run` admits them (its own ids,
//      sequence numbers and duplicate check: two clients may use the same ids), submitted
//      without blocking this thread, and their results go to that client only. A client
//      that goes away loses nothing of the others': its accepted jobs still run, their
//      results are dropped.
//   5. Backpressure: a client's lines are not read while it has k_window jobs without a
//      result written to it, or k_out_limit bytes of results it has not read, or a job
//      its pool has no room for (max_pending); its writes then block in its kernel buffer.
//   6. drain (or SIGTERM/SIGINT: stop), then every client gets its last lines; the socket
//      file is removed; exit 0. A second signal exits at once (status 1).
#pragma once

#include <cstddef>
#include <string>

namespace ringmaster::cli {

struct serve_options {
  std::string config;     ///< CONFIG.toml
  std::string socket;     ///< --socket PATH
  std::string log_level;  ///< --log-level; "" = the config's, or "info"
};

/// A client's jobs without a result written to it, at most, before its input is paused.
inline constexpr std::size_t k_window = 4096;
/// Bytes of results waiting for a client, at most, before its input is paused.
inline constexpr std::size_t k_out_limit = std::size_t{4} << 20;

/// Serves until drained or stopped; returns the exit status (0; 2 bad usage, config or
/// socket place; 1 stopped at once by a second signal, or cannot start). Call from a
/// process's main thread before it starts any other thread (the supervisor forks).
[[nodiscard]] int serve(const serve_options& options);

}  // namespace ringmaster::cli
