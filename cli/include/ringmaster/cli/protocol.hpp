// ringmaster/cli/protocol.hpp — the control socket of `ringmaster serve`: JSON Lines both
// ways over a Unix stream socket (README, "Running ringmaster as a service").
//
//   server, on connect:  {"op": "hello", "protocol": 1, "version": "0.1.0", "pid": 4242}
//   client -> server:    a job line (as `run` reads), or a request {"op": ...}:
//                        hello (source), end, status, drain, stop, scale, reload
//   server -> client:    a result line (as `run` writes) per job of this client, in
//                        completion order, and one reply per request:
//                        {"op": "end", ...}, {"op": "status", ...}, {"op": "ok", ...},
//                        {"op": "error", "message": ..., "problems": [...]}
//
// A line is a request when it is a JSON object with an "op" key; any other line is a job
// line. Pure functions over text; thread-safe.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <ringmaster/supervisor/status.hpp>

namespace ringmaster::cli {

/// Bumped when a change would break a client of the previous version.
inline constexpr int k_protocol_version = 1;

/// A request line's fields (those the ops use).
struct request {
  std::string op;
  std::string pool;              ///< scale
  long long workers = -1;        ///< scale
  long long protocol = -1;       ///< hello
  std::string source;            ///< hello: names the client's input in rejections
};

/// nullopt when `line` is not a request (a job line, or not JSON: parse_job_line says
/// what is wrong with it). A request with bad fields yields op set and the field unset.
[[nodiscard]] std::optional<request> parse_request(std::string_view line);

/// {"op": OP} plus `fields`, a JSON object's members as text (`"a": 1, "b": "x"`) or "".
[[nodiscard]] std::string reply_line(std::string_view op, std::string_view fields = {});
/// {"op": "error", "message": MESSAGE, "problems": [...]}
[[nodiscard]] std::string error_line(std::string_view message, const std::vector<std::string>& problems = {});
/// `"key": "value"` with the value as a JSON string, for reply_line's fields.
[[nodiscard]] std::string json_field(std::string_view key, std::string_view value);

/// The status reply: {"op": "status", "protocol": 1, "pid": ..., "uptime_s": ...,
/// "state": "running"|"draining"|"stopping", "pools": [{...,"workers": [{...}]}]}.
[[nodiscard]] std::string status_line(const supervisor_status& status, int pid, double uptime_s, std::string_view state);

/// A parsed reply: the `op` and `message` of a line, and the line itself for the
/// formatters below. nullopt if the line is not a JSON object.
struct reply {
  std::string op, message;
  std::vector<std::string> problems;
  long long protocol = -1;  ///< hello
  std::string gave_up;      ///< end: the pools used that gave up, comma-separated
  std::string text;
};
[[nodiscard]] std::optional<reply> parse_reply(std::string_view line);

/// A status reply as a table for people, and as Prometheus text exposition format.
/// Throw std::runtime_error when the reply is not a status reply.
[[nodiscard]] std::string format_status_table(std::string_view status_reply);
[[nodiscard]] std::string format_prometheus(std::string_view status_reply);

}  // namespace ringmaster::cli
