// Start-failure counting (supervisor/src/policy/start_failure.hpp), and the rule for forks
// that fail for want of resources (EAGAIN, ENOMEM) against start_timeout.
#include <gtest/gtest.h>

#include <policy/start_failure.hpp>

#include <ostream>
#include <string>

namespace ringmaster::detail {
namespace {

using std::chrono::milliseconds;

struct start_case {
  std::string name;
  bool was_ready, killed_from_outside;
  bool is_start_failure;
};
void PrintTo(const start_case& c, std::ostream* os) { *os << c.name; }

class StartFailure : public testing::TestWithParam<start_case> {};

TEST_P(StartFailure, IsADeathBeforeReadyNotFromOutside) {
  EXPECT_EQ(is_start_failure(GetParam().was_ready, GetParam().killed_from_outside), GetParam().is_start_failure);
}

INSTANTIATE_TEST_SUITE_P(Table, StartFailure,
                         testing::Values(start_case{"died_before_ready", false, false, true},
                                         start_case{"sigkilled_from_outside_before_ready", false, true, false},
                                         start_case{"died_after_ready", true, false, false},
                                         start_case{"sigkilled_after_ready", true, true, false}),
                         [](const auto& tc) { return tc.param.name; });

struct give_up_case {
  std::string name;
  unsigned in_a_row;
  bool intensity_exceeded;
  bool gives_up;
};
void PrintTo(const give_up_case& c, std::ostream* os) { *os << c.name; }

class StartFailuresGiveUp : public testing::TestWithParam<give_up_case> {};

TEST_P(StartFailuresGiveUp, AfterThreeInARowOrPastIntensity) {
  EXPECT_EQ(start_failures_give_up(GetParam().in_a_row, GetParam().intensity_exceeded), GetParam().gives_up);
}

INSTANTIATE_TEST_SUITE_P(Table, StartFailuresGiveUp,
                         testing::Values(give_up_case{"first", 1, false, false}, give_up_case{"second", 2, false, false},
                                         give_up_case{"third", 3, false, true}, give_up_case{"fourth", 4, false, true},
                                         give_up_case{"first_past_intensity", 1, true, true}),
                         [](const auto& tc) { return tc.param.name; });

struct fork_case {
  std::string name;
  bool none_alive;
  int failing_for_ms;
  bool gives_up;
};
void PrintTo(const fork_case& c, std::ostream* os) { *os << c.name; }

class ForkFailuresGiveUp : public testing::TestWithParam<fork_case> {};

TEST_P(ForkFailuresGiveUp, OnlyWithNoWorkerAliveForStartTimeout) {
  const auto now = std::chrono::steady_clock::time_point{} + std::chrono::hours(1);
  EXPECT_EQ(fork_failures_give_up(GetParam().none_alive, now - milliseconds(GetParam().failing_for_ms), now, milliseconds(2000)),
            GetParam().gives_up);
}

INSTANTIATE_TEST_SUITE_P(Table, ForkFailuresGiveUp,
                         testing::Values(fork_case{"workers_alive_never_give_up", false, 60'000, false},
                                         fork_case{"none_alive_within_start_timeout", true, 1999, false},
                                         fork_case{"none_alive_at_start_timeout", true, 2000, true},
                                         fork_case{"none_alive_past_start_timeout", true, 60'000, true},
                                         fork_case{"first_failure_none_alive", true, 0, false}),
                         [](const auto& tc) { return tc.param.name; });

}  // namespace
}  // namespace ringmaster::detail
