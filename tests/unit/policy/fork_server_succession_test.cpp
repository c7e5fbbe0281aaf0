// What follows when a fork server goes (supervisor/src/policy/fork_server_succession.hpp):
// promotion or giving up, when a standby is forked, its retry delays, and when a server
// that owes an answer is taken for dead.
#include <gtest/gtest.h>

#include <policy/fork_server_succession.hpp>
#include <worker_slot.hpp>

#include <chrono>
#include <ostream>
#include <string>

namespace ringmaster::detail {
namespace {

using std::chrono::milliseconds;

struct death_case {
  std::string name;
  bool standby, zygote;
  succession expected;
};
void PrintTo(const death_case& c, std::ostream* os) { *os << c.name; }

class AfterActiveDeath : public testing::TestWithParam<death_case> {};

TEST_P(AfterActiveDeath, PromotesTheStandbyOrGivesUp) {
  const succession got = after_active_death(GetParam().standby, GetParam().zygote);
  EXPECT_EQ(got.promote, GetParam().expected.promote);
  EXPECT_EQ(got.fork_standby, GetParam().expected.fork_standby);
  EXPECT_EQ(got.give_up, GetParam().expected.give_up);
}

INSTANTIATE_TEST_SUITE_P(
    Table, AfterActiveDeath,
    testing::Values(death_case{"standby_and_zygote", true, true, {.promote = true, .fork_standby = true}},
                    // The zygote died: the standby still takes over, but none can follow it.
                    death_case{"standby_without_zygote", true, false, {.promote = true}},
                    // A standby that could not be forked (still retrying), or died unreplaced.
                    death_case{"no_standby", false, true, {.give_up = true}},
                    death_case{"nothing_left", false, false, {.give_up = true}}),
    [](const auto& tc) { return tc.param.name; });

struct wanted_case {
  std::string name;
  bool standby, active, zygote;
  bool wanted;
};
void PrintTo(const wanted_case& c, std::ostream* os) { *os << c.name; }

class StandbyWanted : public testing::TestWithParam<wanted_case> {};

TEST_P(StandbyWanted, WhenMissingWithAnActiveServerAndAZygote) {
  EXPECT_EQ(standby_wanted(GetParam().standby, GetParam().active, GetParam().zygote), GetParam().wanted);
}

INSTANTIATE_TEST_SUITE_P(Table, StandbyWanted,
                         testing::Values(wanted_case{"missing", false, true, true, true},
                                         wanted_case{"already_there", true, true, true, false},
                                         // The pools gave up: nothing to stand by for.
                                         wanted_case{"no_active_server", false, false, true, false},
                                         wanted_case{"no_zygote_to_fork_it", false, true, false, false}),
                         [](const auto& tc) { return tc.param.name; });

struct retry_case {
  std::string name;
  unsigned failures;
  int delay_ms;
};
void PrintTo(const retry_case& c, std::ostream* os) { *os << c.name; }

class StandbyRetryDelay : public testing::TestWithParam<retry_case> {};

TEST_P(StandbyRetryDelay, DoublesFromTheFirstUpToTheCap) {
  EXPECT_EQ(standby_retry_delay(GetParam().failures, k_stop_waits.standby_retry_first, k_stop_waits.standby_retry_max),
            milliseconds(GetParam().delay_ms));
}

// The supervisor's waits: 100 ms first, 5 s at most.
INSTANTIATE_TEST_SUITE_P(Table, StandbyRetryDelay,
                         testing::Values(retry_case{"first_failure", 1, 100}, retry_case{"second", 2, 200},
                                         retry_case{"third", 3, 400}, retry_case{"sixth", 6, 3200},
                                         retry_case{"seventh_capped", 7, 5000}, retry_case{"eighth", 8, 5000},
                                         // The exponent stops growing: no overflow, however many.
                                         retry_case{"four_billionth", 4'000'000'000u, 5000}),
                         [](const auto& tc) { return tc.param.name; });

TEST(StandbyRetryDelayCap, AppliesBeforeTheExponentStopsGrowing) {
  // With a cap above 64 times the first wait, the delay stops at 64 times: the exponent's own cap.
  EXPECT_EQ(standby_retry_delay(20, milliseconds(10), milliseconds(100'000)), milliseconds(640));
  EXPECT_EQ(standby_retry_delay(3, milliseconds(10), milliseconds(25)), milliseconds(25));
}

struct owed_case {
  std::string name;
  int owed_for_ms;  // now - since
  int start_timeout_ms;
  bool overdue;
};
void PrintTo(const owed_case& c, std::ostream* os) { *os << c.name; }

class AnswerOverdue : public testing::TestWithParam<owed_case> {};

TEST_P(AnswerOverdue, OnlyPastStartTimeout) {
  const auto since = std::chrono::steady_clock::time_point{} + std::chrono::hours(1);
  const auto now = since + milliseconds(GetParam().owed_for_ms);
  const milliseconds timeout(GetParam().start_timeout_ms);
  EXPECT_EQ(answer_overdue(since, timeout, now), GetParam().overdue);
  EXPECT_EQ(answer_due(since, timeout), since + timeout);
  // The deadline a sleep is computed to is never before the moment it becomes overdue.
  if (GetParam().overdue) {
    EXPECT_GE(now, answer_due(since, timeout));
  }
}

INSTANTIATE_TEST_SUITE_P(Table, AnswerOverdue,
                         testing::Values(owed_case{"just_owed", 0, 1000, false}, owed_case{"within", 999, 1000, false},
                                         owed_case{"at_the_timeout", 1000, 1000, false},
                                         owed_case{"past_it", 1001, 1000, true}),
                         [](const auto& tc) { return tc.param.name; });

}  // namespace
}  // namespace ringmaster::detail
