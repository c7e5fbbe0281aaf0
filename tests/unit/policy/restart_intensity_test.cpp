// Restart intensity (supervisor/src/policy/restart_intensity.hpp): which deaths count
// toward max_restarts, and when they are forgotten. Exact times, no clock.
#include <gtest/gtest.h>

#include <policy/restart_intensity.hpp>

#include <ostream>
#include <string>
#include <vector>

namespace ringmaster::detail {
namespace {

using std::chrono::milliseconds;
using time_point = restart_intensity::time_point;

time_point at(int ms) { return time_point{} + milliseconds(ms); }

// One step of a pool's history: a death (its charge, when), or a job's success.
struct step {
  enum { death, success } what = death;
  death_charge charge = death_charge::no_job;
  int at_ms = 0;
};

struct intensity_case {
  std::string name;
  std::vector<step> history;
  unsigned max_restarts;
  std::vector<bool> counted;  // add_restart's answer for each death, in order
  std::size_t count;          // after the history
  bool exceeded;
};
void PrintTo(const intensity_case& c, std::ostream* os) { *os << c.name; }

class RestartIntensity : public testing::TestWithParam<intensity_case> {};

TEST_P(RestartIntensity, CountsTheDeathsThatSayThePoolCannotWork) {
  const auto& c = GetParam();
  restart_intensity ri;
  std::vector<bool> counted;
  for (const step& s : c.history) {
    if (s.what == step::success)
      ri.job_succeeded();
    else
      counted.push_back(ri.add_restart(s.charge, at(s.at_ms), milliseconds(1000)));
  }
  EXPECT_EQ(counted, c.counted);
  EXPECT_EQ(ri.count(), c.count);
  EXPECT_EQ(ri.exceeded(c.max_restarts), c.exceeded);
}

constexpr auto no_job = death_charge::no_job;
constexpr auto first = death_charge::job_first;
constexpr auto again = death_charge::job_again;
constexpr auto success = step::success;

INSTANTIATE_TEST_SUITE_P(
    Table, RestartIntensity,
    testing::Values(
        intensity_case{"none", {}, 0, {}, 0, false},
        intensity_case{"one_idle_death_is_within_zero", {{.at_ms = 0}}, 0, {true}, 1, true},
        intensity_case{"max_deaths_do_not_exceed_max", {{.at_ms = 0}, {.at_ms = 1}, {.at_ms = 2}}, 3, {true, true, true}, 3, false},
        intensity_case{"one_more_than_max_exceeds", {{.at_ms = 0}, {.at_ms = 1}, {.at_ms = 2}}, 2, {true, true, true}, 3, true},
        // Erlang's window: a death exactly restart_window ago still counts; one more is forgotten.
        intensity_case{"a_death_exactly_window_old_counts", {{.at_ms = 0}, {.at_ms = 1000}}, 1, {true, true}, 2, true},
        intensity_case{"older_than_window_is_forgotten", {{.at_ms = 0}, {.at_ms = 1001}}, 1, {true, true}, 1, false},
        intensity_case{"a_jobs_later_deaths_do_not_count",
                       {{.charge = first, .at_ms = 0}, {.charge = again, .at_ms = 1}, {.charge = again, .at_ms = 2}},
                       1, {true, false, false}, 1, false},
        intensity_case{"each_jobs_first_death_counts",
                       {{.charge = first, .at_ms = 0}, {.charge = first, .at_ms = 1}, {.charge = first, .at_ms = 2}},
                       2, {true, true, true}, 3, true},
        intensity_case{"a_success_forgets_the_jobs_deaths",
                       {{.charge = first, .at_ms = 0}, {.charge = first, .at_ms = 1}, {.what = success}, {.charge = first, .at_ms = 2}},
                       1, {true, true, true}, 1, false},
        intensity_case{"a_success_keeps_the_deaths_charged_to_no_job",
                       {{.charge = no_job, .at_ms = 0}, {.charge = first, .at_ms = 1}, {.what = success}, {.charge = no_job, .at_ms = 2}},
                       1, {true, true, true}, 2, true},
        intensity_case{"a_late_death_forgets_both_kinds",
                       {{.charge = no_job, .at_ms = 0}, {.charge = first, .at_ms = 10}, {.charge = again, .at_ms = 5000}},
                       0, {true, true, false}, 0, false},
        intensity_case{"a_death_that_does_not_count_still_forgets",
                       {{.charge = first, .at_ms = 0}, {.charge = again, .at_ms = 2000}}, 0, {true, false}, 0, false},
        // A batch: five jobs kill every worker they run on (3 attempts each, 15 deaths, three
        // of them first in line) among good jobs; the pool tunes nothing (10 in the window).
        intensity_case{"a_few_poison_jobs_among_good_ones_never_exceed",
                       {{.charge = first, .at_ms = 0}, {.charge = first, .at_ms = 1}, {.charge = again, .at_ms = 2},
                        {.charge = first, .at_ms = 3}, {.charge = again, .at_ms = 4}, {.charge = again, .at_ms = 5},
                        {.charge = again, .at_ms = 6}, {.charge = again, .at_ms = 7}, {.charge = again, .at_ms = 8},
                        {.what = success},
                        {.charge = first, .at_ms = 100}, {.charge = again, .at_ms = 101}, {.charge = again, .at_ms = 102},
                        {.what = success},
                        {.charge = first, .at_ms = 200}, {.charge = again, .at_ms = 201}, {.charge = again, .at_ms = 202},
                        {.what = success}},
                       10,
                       {true, true, false, true, false, false, false, false, false, true, false, false, true, false, false},
                       0, false},
        // Every job kills its worker and none succeeds: the eleventh different job to kill
        // one is one too many, whatever their retries in between.
        intensity_case{"workers_dying_on_every_job_exceed_at_the_eleventh_job",
                       {{.charge = first, .at_ms = 0}, {.charge = again, .at_ms = 1}, {.charge = first, .at_ms = 2},
                        {.charge = again, .at_ms = 3}, {.charge = first, .at_ms = 4}, {.charge = first, .at_ms = 5},
                        {.charge = again, .at_ms = 6}, {.charge = first, .at_ms = 7}, {.charge = first, .at_ms = 8},
                        {.charge = first, .at_ms = 9}, {.charge = again, .at_ms = 10}, {.charge = first, .at_ms = 11},
                        {.charge = first, .at_ms = 12}, {.charge = first, .at_ms = 13}, {.charge = first, .at_ms = 14}},
                       10,
                       {true, false, true, false, true, true, false, true, true, true, false, true, true, true, true},
                       11, true}),
    [](const auto& tc) { return tc.param.name; });

struct charge_case {
  bool charged, killed_before;
  death_charge expected;
};

class DeathCharge : public testing::TestWithParam<charge_case> {};

TEST_P(DeathCharge, NamesWhomADeathIsChargedTo) {
  EXPECT_EQ(charge_of(GetParam().charged, GetParam().killed_before), GetParam().expected);
}

INSTANTIATE_TEST_SUITE_P(Table, DeathCharge,
                         testing::Values(charge_case{false, false, no_job}, charge_case{false, true, no_job},
                                         charge_case{true, false, first}, charge_case{true, true, again}));

}  // namespace
}  // namespace ringmaster::detail
