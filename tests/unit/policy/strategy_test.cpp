// Which siblings a death takes down (supervisor/src/policy/strategy.hpp).
#include <gtest/gtest.h>

#include <policy/strategy.hpp>

#include <ostream>
#include <string>

namespace ringmaster::detail {
namespace {

struct strategy_case {
  std::string name;
  restart_strategy strategy;
  std::size_t dead_pool, pool_count;
  pool_range expected;
};
void PrintTo(const strategy_case& c, std::ostream* os) { *os << c.name; }

class Strategy : public testing::TestWithParam<strategy_case> {};

TEST_P(Strategy, TakesDownThePoolsItNames) {
  const auto& c = GetParam();
  const pool_range r = taken_down_with(c.strategy, c.dead_pool, c.pool_count);
  EXPECT_EQ(r.first, c.expected.first);
  EXPECT_EQ(r.last, c.expected.last);
}

constexpr auto one_for_one = restart_strategy::one_for_one;
constexpr auto one_for_all = restart_strategy::one_for_all;
constexpr auto rest_for_one = restart_strategy::rest_for_one;

INSTANTIATE_TEST_SUITE_P(Table, Strategy,
                         testing::Values(strategy_case{"one_for_one_takes_none", one_for_one, 1, 3, {0, 0}},
                                         strategy_case{"one_for_all_from_the_first", one_for_all, 0, 3, {0, 3}},
                                         strategy_case{"one_for_all_from_the_last", one_for_all, 2, 3, {0, 3}},
                                         strategy_case{"rest_for_one_from_the_first_takes_all", rest_for_one, 0, 3, {0, 3}},
                                         strategy_case{"rest_for_one_takes_its_pool_and_later", rest_for_one, 1, 3, {1, 3}},
                                         strategy_case{"rest_for_one_from_the_last_takes_its_own", rest_for_one, 2, 3, {2, 3}},
                                         strategy_case{"one_pool_one_for_all", one_for_all, 0, 1, {0, 1}}),
                         [](const auto& tc) { return tc.param.name; });

}  // namespace
}  // namespace ringmaster::detail
