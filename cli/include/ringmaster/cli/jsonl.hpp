// ringmaster/cli/jsonl.hpp — the two JSON Lines formats of `ringmaster run`: job lines in,
// result lines out.
//
//   job:     {"id": "a1", "pool": "compute", "type": "primes", "payload": 1000000}
//   result:  {"id": "a1", "status": "ok", "result": "78498", "attempts": 1, "worker": 2, "ms": 12.5}
//            {"id": "b7", "status": "failed", "error": {"kind": "crash", "message": "SIGSEGV"},
//             "attempts": 3, "worker": 0, "ms": 3.1}
//
// A job line's `payload` reaches the handler as a string's characters, or as any other
// JSON value's compact text; bytes that are not UTF-8 come as `payload_b64`, base64
// (RFC 4648's standard alphabet, padded), and reach the handler decoded. `id` and `pool` are optional; an integer id comes back as
// an integer in the job's result line. Result lines carry `worker`
// and `ms` whenever a worker ran the job's last attempt.
//
// Pure functions, thread-safe. A result that is not valid UTF-8 (a handler may return
// any bytes) is written base64-encoded as `result_b64` in place of `result`; an error
// message that is not is written with U+FFFD in place of each bad byte. Every result
// line is valid JSON.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include <ringmaster/worker/result.hpp>

namespace ringmaster::cli {

/// The offset of the first byte that is not part of valid UTF-8 (overlong forms,
/// surrogates and code points over U+10FFFF are invalid), or nullopt if all is valid.
[[nodiscard]] std::optional<std::size_t> first_invalid_utf8(std::string_view text) noexcept;

/// What is wrong with `json` when its arrays and objects nest deeper than
/// ringmaster::detail::k_max_json_depth ("nests arrays and objects more than 512 deep
/// (the limit) at column 513"), or nullopt. Checked before any JSON is parsed: dumping or
/// destroying a document recurses once per level, and 100,000 levels overflow the stack.
[[nodiscard]] std::optional<std::string> too_deep(std::string_view json);

/// Appends `text` as a JSON string literal, quotes included.
void append_json_string(std::string& out, std::string_view text);

/// `text` if it is at most `limit` bytes, else its first bytes up to `limit`, cut at a
/// UTF-8 character boundary, and "... (N bytes)": what a message quotes of a value or a
/// line that may be a megabyte long.
[[nodiscard]] std::string excerpt(std::string_view text, std::size_t limit = 200);

/// append_json_string of `text`'s first `limit` bytes (cut at a character boundary),
/// followed by "... (N bytes)" when it was longer.
void append_quoted_excerpt(std::string& out, std::string_view text, std::size_t limit = 80);

/// Base64 (RFC 4648, standard alphabet, "=" padding).
[[nodiscard]] std::string base64_encode(std::string_view bytes);
/// The bytes `text` encodes, or nullopt with `bad_at` at the first offending character
/// (not of the alphabet, misplaced padding, or a dangling character).
[[nodiscard]] std::optional<std::string> base64_decode(std::string_view text, std::size_t& bad_at);

/// A job line's fields.
struct parsed_job {
  std::string id;       ///< "" when the line has none (an integer id is given as its text)
  bool integer_id = false;  ///< the id was a JSON integer: its result line gives it back as one
  std::string pool;     ///< "" when the line has none
  std::string type;
  std::string payload;  ///< a string's characters, another value's compact JSON, or payload_b64's bytes
};

/// Parses one job line (without its newline). Returns "" and fills `out`, or returns what
/// is wrong ("not valid JSON: ...", "expected a JSON object, got an array", "missing
/// \"type\"...", "unknown key ...", "not valid UTF-8 ...", "nests arrays and objects more
/// than 512 deep ..."). On failure `out.id` is still
/// set when the line is an object with a usable id, so the rejection can carry it.
[[nodiscard]] std::string parse_job_line(std::string_view line, parsed_job& out);

namespace detail {
/// parse_job_line without its fast path for the common shape: the reference the fast path
/// is tested against (the two must agree on every line).
[[nodiscard]] std::string parse_job_line_general(std::string_view line, parsed_job& out);
}  // namespace detail

/// Appends `r` as one result line, newline included. With `integer_id` (the job line's
/// id was an integer, and `r.id` is its text) the id is written as that integer.
void append_result_line(std::string& out, const result& r, bool integer_id = false);

/// A result line's id (an integer id as its text) and whether its status is "ok"; nullopt
/// if the line is not a result line. Used by --resume to learn which jobs are done.
struct result_line_view {
  std::string id;
  bool ok = false;
};
[[nodiscard]] std::optional<result_line_view> read_result_line(std::string_view line);

}  // namespace ringmaster::cli
