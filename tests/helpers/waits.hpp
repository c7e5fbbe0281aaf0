// tests/helpers/waits.hpp — bounded waits for tests, on anything a test can observe (a
// predicate). Every wait has a limit, so a bug fails a test instead of hanging it; none
// sleeps for a fixed time standing in for "until X happened".
#pragma once

#include <chrono>
#include <thread>

namespace ringmaster::test {

/// Upper bound of any single wait in the tests.
inline constexpr std::chrono::seconds k_wait{30};

/// Polls `pred` every 2 ms until it holds or `timeout` passes; returns whether it held
/// (asking once more at the deadline, so a slow poll never loses an event that came).
template <class Pred>
bool eventually(Pred&& pred, std::chrono::milliseconds timeout = k_wait) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!pred()) {
    if (std::chrono::steady_clock::now() >= deadline) return pred();
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return true;
}

}  // namespace ringmaster::test
