// strategy.hpp — which other workers a death takes down, by the supervisor's restart
// strategy (its pools are its children, in the order they were added).
#pragma once

#include <cstddef>

#include <ringmaster/supervisor/options.hpp>

namespace ringmaster::detail {

/// Pools [first, last) whose running workers (but the dead one) are restarted too.
struct pool_range {
  std::size_t first = 0;
  std::size_t last = 0;
  friend constexpr bool operator==(const pool_range&, const pool_range&) = default;
};

/// For a death in pool `dead_pool` of `pool_count`: none for one_for_one, every pool for
/// one_for_all, that pool and those added after it for rest_for_one.
constexpr pool_range taken_down_with(restart_strategy s, std::size_t dead_pool, std::size_t pool_count) noexcept {
  switch (s) {
    case restart_strategy::one_for_one: return {};
    case restart_strategy::one_for_all: return {0, pool_count};
    case restart_strategy::rest_for_one: return {dead_pool, pool_count};
  }
  return {};
}

}  // namespace ringmaster::detail
