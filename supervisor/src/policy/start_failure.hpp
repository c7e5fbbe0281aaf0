// start_failure.hpp — when a pool whose workers cannot start gives up.
//
// A worker that dies before it is ready is a start failure, unless something outside
// SIGKILLed it (an operator, the OOM killer): that says nothing about whether the pool
// can start, and counts toward restart intensity only. A pool gives up after
// k_start_failures_to_give_up in a row (a ready worker resets the count), or sooner when
// its restart intensity is exceeded.
//
// A fork that fails for want of processes or memory (EAGAIN, ENOMEM) is not the worker's
// fault: the pool gives up only once it has no worker alive and its forks have failed
// for longer than start_timeout.
#pragma once

#include <chrono>

namespace ringmaster::detail {

inline constexpr unsigned k_start_failures_to_give_up = 3;

/// Whether a death is a start failure.
constexpr bool is_start_failure(bool was_ready, bool killed_from_outside) noexcept {
  return !was_ready && !killed_from_outside;
}

/// Whether the pool gives up after a start failure, `in_a_row` counting this one.
constexpr bool start_failures_give_up(unsigned in_a_row, bool intensity_exceeded) noexcept {
  return in_a_row >= k_start_failures_to_give_up || intensity_exceeded;
}

/// Whether the pool gives up after a fork failed for want of resources: no worker of it
/// is alive and its forks have failed since `failing_since` for at least start_timeout.
constexpr bool fork_failures_give_up(bool none_alive, std::chrono::steady_clock::time_point failing_since,
                                     std::chrono::steady_clock::time_point now,
                                     std::chrono::milliseconds start_timeout) noexcept {
  return none_alive && now - failing_since >= start_timeout;
}

}  // namespace ringmaster::detail
