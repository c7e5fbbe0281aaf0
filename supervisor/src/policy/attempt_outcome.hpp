// attempt_outcome.hpp — what becomes of the job a worker died running (the job charged
// with the death): tried again, failed, or failed as stopped.
#pragma once

#include <cstdint>

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

}  // namespace ringmaster::detail
