// attempt_outcome.hpp — what becomes of a job after an attempt that did not succeed:
// the job a worker died running (the job charged with the death) is tried again, failed,
// or failed as stopped; a failed result a handler gave is its final result, or retried
// with retry_on_error.
#pragma once

#include <cstdint>

#include <ringmaster/worker/result.hpp>

namespace ringmaster::detail {

enum class attempt_outcome : std::uint8_t {
  retry,  ///< back to the front of its pool's queue
  fail,   ///< its final result: failed with the death's kind (a poison job)
  stop,   ///< failed as `stopped`: the supervisor is stopping
};

/// After the job's `attempts` (this one included) with the pool's max_attempts.
constexpr attempt_outcome after_attempt(bool stopping, unsigned attempts, unsigned max_attempts) noexcept {
  if (stopping) return attempt_outcome::stop;
  return attempts >= max_attempts ? attempt_outcome::fail : attempt_outcome::retry;
}

/// Whether a failed result (`kind`) a handler gave after the job's `attempts` (this one
/// included) is retried: only a thrown exception or an out-of-memory, with
/// retry_on_error, while attempts remain and the supervisor is not stopping.
constexpr bool retries_failed_result(error_kind kind, bool retry_on_error, unsigned attempts, unsigned max_attempts,
                                     bool stopping) noexcept {
  return (kind == error_kind::exception || kind == error_kind::memory) && retry_on_error && attempts < max_attempts &&
         !stopping;
}

}  // namespace ringmaster::detail
