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

#include "waits.hpp"

namespace ringmaster::test {

/// The result of `f`, or an exception (failing the test) after k_wait.
inline result await(std::future<result>& f) {
  if (f.wait_for(k_wait) != std::future_status::ready) throw std::runtime_error("no result within 30 s");
  return f.get();
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
