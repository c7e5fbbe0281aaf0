// ringmaster/cli/client.hpp — the clients of `ringmaster serve`'s socket: `submit`,
// `status`, and the control commands `drain`, `stop`, `scale` and `reload`.
//
// Exit statuses. submit: as `run` (0 every job ok; 1 some failed; 2 bad usage, an
// unreadable jobs file or unwritable results file; 3 a pool it used gave up), plus 3 when
// the server cannot be reached, refuses the connection or goes away before every result
// came. status and the control commands: 0 done; 2 bad usage, or a request the server
// refused as invalid (an unknown pool, an invalid config on reload: its problems are
// printed, FILE:LINE: KEY as `run` prints them); 3 the server cannot be reached or
// refuses the connection.
//
// Each call runs in the calling thread (submit adds one thread that streams the jobs
// out while results stream in); nothing is shared.
#pragma once

#include <string>

namespace ringmaster::cli {

/// Server unreachable, connection refused, or lost before the answer came.
inline constexpr int k_exit_connection = 3;

struct submit_options {
  std::string socket;
  std::string jobs = "-";     ///< FILE of job lines, or - for stdin
  std::string results = "-";  ///< FILE, or - for stdout
};
/// Streams job lines to the server as they are read and result lines back as they come
/// (in completion order), until every job has its result.
[[nodiscard]] int submit(const submit_options& options);

enum class status_format { table, json, prometheus };
[[nodiscard]] int status(const std::string& socket, status_format format);

struct control_options {
  std::string socket;
  std::string op;            ///< drain, stop, scale or reload
  std::string pool;          ///< scale
  long long workers = -1;    ///< scale
};
/// Sends one request and prints the server's answer. drain and stop then wait until the
/// server has finished (it closes the connection).
[[nodiscard]] int control(const control_options& options);

}  // namespace ringmaster::cli
