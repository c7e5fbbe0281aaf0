// ringmaster/worker/result.hpp — what every accepted job ends with: exactly one result.
//
// A result is a plain value: ok with the handler's returned text, or failed with an
// error kind and message. It names the pool and the job type it came from, and records
// how many attempts the job took, which worker slot ran its last attempt and how long
// that attempt took, and carries back the tag its submitter attached.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace ringmaster {

/// Why a job failed. Values are stable: they travel between processes.
enum class error_kind : std::uint8_t {
  none = 0,   ///< not an error (an ok result)
  crash,      ///< the worker died running it (signal or exit), max_attempts times
  timeout,    ///< it ran past job_timeout, max_attempts times
  memory,     ///< the worker hit its memory limit (death by it, or std::bad_alloc)
  exception,  ///< the handler threw; the message is the exception's what()
  rejected,   ///< refused before running: malformed, unknown type or pool, too large
  stopped,    ///< not run (or not finished) because its pool or supervisor stopped
};

/// "crash", "timeout", ... as used in result lines; "ok" for none.
std::string_view to_string(error_kind kind) noexcept;
/// The inverse of to_string; nullopt for an unknown name.
std::optional<error_kind> error_kind_from_string(std::string_view name) noexcept;

struct result {
  std::string id;              ///< the job's id (given at submission, or a number unique in its supervisor)
  error_kind error = error_kind::none;
  std::string value;           ///< ok: the handler's return value; failed: the error message
  unsigned attempts = 0;       ///< attempts made (0 if rejected or stopped before running)
  int worker = -1;             ///< slot of the worker that ran the last attempt, -1 if none
  double ms = 0;               ///< duration of the last attempt in milliseconds
  std::string pool;            ///< the pool the job was submitted to ("" in a reply a handler waits for)
  std::string type;            ///< the job's type
  /// The submitter's own number for the job (job_spec::tag), given back as is; 0 when none
  /// was given. Never sent to a worker: a handler's reply and a job a handler posted have 0.
  std::uint64_t tag = 0;

  [[nodiscard]] bool ok() const noexcept { return error == error_kind::none; }
  /// The error message ("" when ok).
  [[nodiscard]] std::string_view message() const noexcept { return ok() ? std::string_view{} : value; }
};

}  // namespace ringmaster
