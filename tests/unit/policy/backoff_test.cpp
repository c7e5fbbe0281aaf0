// Backoff (supervisor/src/policy/backoff.hpp): the delay before each restart in a row,
// its cap, its jitter, and the reset after a stable run. Exact, with a seeded generator.
#include <gtest/gtest.h>

#include <policy/backoff.hpp>

#include <ostream>
#include <string>
#include <vector>

namespace ringmaster::detail {
namespace {

using std::chrono::microseconds;
using std::chrono::milliseconds;

constexpr backoff_policy k_policy{.initial = milliseconds(10), .max = milliseconds(5000), .stable_after = milliseconds(5000)};

struct delay_case {
  std::string name;
  unsigned n;
  double jitter;
  std::int64_t expected_us;
};
void PrintTo(const delay_case& c, std::ostream* os) { *os << c.name; }

class BackoffDelay : public testing::TestWithParam<delay_case> {};

TEST_P(BackoffDelay, DoublesFromInitialUpToMaxTimesJitter) {
  EXPECT_EQ(backoff_delay(GetParam().n, k_policy, GetParam().jitter), microseconds(GetParam().expected_us));
}

INSTANTIATE_TEST_SUITE_P(Table, BackoffDelay,
                         testing::Values(delay_case{"first_failure_restarts_at_once", 1, 1.0, 0},
                                         delay_case{"none_counted_restarts_at_once", 0, 1.25, 0},
                                         delay_case{"second_waits_initial", 2, 1.0, 10'000},
                                         delay_case{"third_waits_twice_initial", 3, 1.0, 20'000},
                                         delay_case{"tenth_waits_256_initials", 10, 1.0, 2'560'000},
                                         delay_case{"eleventh_is_capped_at_max", 11, 1.0, 5'000'000},
                                         delay_case{"low_jitter_shortens", 2, 0.75, 7'500},
                                         delay_case{"high_jitter_lengthens", 3, 1.25, 25'000},
                                         delay_case{"jitter_applies_after_the_cap", 40, 1.25, 6'250'000},
                                         delay_case{"a_huge_count_does_not_overflow", 4'000'000'000u, 0.75, 3'750'000}),
                         [](const auto& tc) { return tc.param.name; });

struct stable_case {
  std::string name;
  unsigned before;
  bool was_ready;
  int ready_ms_ago;
  unsigned expected;
};
void PrintTo(const stable_case& c, std::ostream* os) { *os << c.name; }

class BackoffReset : public testing::TestWithParam<stable_case> {};

TEST_P(BackoffReset, StartsOverAfterAStableRun) {
  const auto now = std::chrono::steady_clock::time_point{} + std::chrono::hours(1);
  const auto ready_at = now - milliseconds(GetParam().ready_ms_ago);
  EXPECT_EQ(failures_in_a_row_after(GetParam().before, GetParam().was_ready, ready_at, now, k_policy), GetParam().expected);
}

INSTANTIATE_TEST_SUITE_P(Table, BackoffReset,
                         testing::Values(stable_case{"first_death", 0, true, 10, 1},
                                         stable_case{"short_run_keeps_counting", 4, true, 4999, 5},
                                         stable_case{"stable_run_starts_over", 4, true, 5000, 1},
                                         stable_case{"long_stable_run_starts_over", 9, true, 60'000, 1},
                                         // ready_at is from an earlier run: a worker that never became ready keeps counting
                                         stable_case{"never_ready_keeps_counting", 4, false, 60'000, 5}),
                         [](const auto& tc) { return tc.param.name; });

TEST(BackoffJitter, IsWithinAQuarterEitherWayAndRepeatsWithTheSeed) {
  std::mt19937 a(42), b(42);
  std::vector<double> first, second;
  for (int i = 0; i < 1000; ++i) {
    first.push_back(backoff_jitter(a));
    second.push_back(backoff_jitter(b));
  }
  EXPECT_EQ(first, second);
  double lo = 2, hi = 0;
  for (double j : first) {
    EXPECT_GE(j, 0.75);
    EXPECT_LT(j, 1.25);
    lo = std::min(lo, j);
    hi = std::max(hi, j);
  }
  // It spreads: a thousand draws cover most of the range (slots that died together part).
  EXPECT_LT(lo, 0.8);
  EXPECT_GT(hi, 1.2);
}

}  // namespace
}  // namespace ringmaster::detail
