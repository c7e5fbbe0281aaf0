// backoff.hpp — how long a slot waits before its worker is restarted: the first restart
// after a stable run is immediate; each further one in a row waits twice as long, from
// backoff_initial up to backoff_max, with +-25% jitter so that slots that died together
// do not restart in lockstep. Pure: the caller passes now and the random generator.
#pragma once

#include <chrono>
#include <random>

namespace ringmaster::detail {

struct backoff_policy {
  std::chrono::milliseconds initial;
  std::chrono::milliseconds max;
  std::chrono::milliseconds stable_after;  ///< a worker ready this long resets the count
};

/// Failures in a row once this death is counted: `before` plus one, but counted from 0
/// again when the worker had been ready since `ready_at` for at least stable_after.
constexpr unsigned failures_in_a_row_after(unsigned before, bool was_ready, std::chrono::steady_clock::time_point ready_at,
                                           std::chrono::steady_clock::time_point now, const backoff_policy& p) noexcept {
  if (was_ready && now - ready_at >= p.stable_after) before = 0;
  return before + 1;
}

/// The jitter factor, uniform in [0.75, 1.25), drawn from `rng`.
double backoff_jitter(std::mt19937& rng);

/// The wait before the restart that is failure number `n` in a row: none for the first;
/// then initial * 2^(n-2) (the exponent capped at 30), at most max, times `jitter`.
std::chrono::microseconds backoff_delay(unsigned n, const backoff_policy& p, double jitter) noexcept;

}  // namespace ringmaster::detail
