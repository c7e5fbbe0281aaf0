// tests/helpers/supervisor_waits.hpp — bounded waits on a supervisor, for tests: every
// wait has a limit, so a bug fails a test instead of hanging it.
#pragma once

#include <algorithm>
#include <chrono>
#include <future>
#include <optional>
#include <ringmaster/supervisor/supervisor.hpp>
#include <stdexcept>
#include <string_view>
#include <thread>

namespace ringmaster::test {

/// Upper bound of any single wait in the tests.
inline constexpr std::chrono::seconds k_wait{30};

/// The result of `f`, or an exception (failing the test) after k_wait.
inline result await(std::future<result>& f) {
  if (f.wait_for(k_wait) != std::future_status::ready) throw std::runtime_error("no result within 30 s");
  return f.get();
}

/// Polls `pred` every 5 ms until it holds or `timeout` passes; returns whether it held.
template <class Pred>
bool eventually(Pred pred, std::chrono::milliseconds timeout = k_wait) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!pred()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

inline std::optional<pool_status> pool_status_of(const supervisor& sup, std::string_view name) {
  for (auto& p : sup.status().pools)
    if (p.name == name) return p;
  return std::nullopt;
}

/// True once every worker of `pool` has reported ready (and is idle).
inline bool all_ready(const supervisor& sup, std::string_view pool) {
  const auto p = pool_status_of(sup, pool);
  return p && !p->workers.empty() && std::all_of(p->workers.begin(), p->workers.end(), [](auto& w) {
           return w.state == worker_state::ready && w.pid > 0;
         });
}

}  // namespace ringmaster::test
