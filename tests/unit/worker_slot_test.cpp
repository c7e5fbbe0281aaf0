// A worker slot's timers (supervisor/src/worker_slot.hpp): which are armed, and when each
// fires. handle_timers and next_deadline both read them, so this table is what they agree on.
#include <gtest/gtest.h>

#include <worker_slot.hpp>

#include <algorithm>
#include <string>

namespace ringmaster::detail {
namespace {

using namespace std::chrono_literals;

constexpr slot_time t0 = slot_time{} + 1000s;
constexpr auto never = slot_time::max();
constexpr auto start_timeout = 10s;
constexpr auto job_timeout = 3s;

struct deadline_case {
  const char* name;
  slot_clock slot;
  std::chrono::milliseconds job_timeout;
  slot_deadlines expected;
};

// A live slot whose fields are all set, so each case shows which of them count.
constexpr slot_clock live(bool ready, bool running_normally, bool has_job, slot_time kill_at = never) {
  return {.in_backoff = false,
          .alive = true,
          .ready = ready,
          .running_normally = running_normally,
          .has_job = has_job,
          .restart_at = t0,
          .kill_at = kill_at,
          .spawned_at = t0 + 1s,
          .front_started = t0 + 2s};
}

class SlotDeadlines : public testing::TestWithParam<deadline_case> {};

TEST_P(SlotDeadlines, ArmOnlyTheTimersTheSlotsStateCallsFor) {
  const auto& c = GetParam();
  const slot_deadlines d = deadlines_of(c.slot, start_timeout, c.job_timeout);
  EXPECT_EQ(d.restart, c.expected.restart);
  EXPECT_EQ(d.kill, c.expected.kill);
  EXPECT_EQ(d.start_timeout, c.expected.start_timeout);
  EXPECT_EQ(d.job_timeout, c.expected.job_timeout);
}

TEST_P(SlotDeadlines, EarliestIsTheFirstArmedTimer) {
  const auto& c = GetParam();
  const slot_deadlines d = deadlines_of(c.slot, start_timeout, c.job_timeout);
  slot_time first = never;
  for (slot_time t : {c.expected.restart, c.expected.kill, c.expected.start_timeout, c.expected.job_timeout})
    first = std::min(first, t);
  EXPECT_EQ(d.earliest(), first);
}

INSTANTIATE_TEST_SUITE_P(
    Table, SlotDeadlines,
    testing::Values(
        deadline_case{"InBackoffRestartsAtItsTime",
                      {.in_backoff = true, .restart_at = t0 + 5s},
                      job_timeout,
                      {.restart = t0 + 5s}},
        deadline_case{"DeadAndNotInBackoffHasNoTimer", {.restart_at = t0, .kill_at = t0}, job_timeout, {}},
        deadline_case{"StartingIsTimedFromItsSpawn",
                      live(false, true, false),
                      job_timeout,
                      {.start_timeout = t0 + 1s + start_timeout}},
        deadline_case{"StartingWithAJobSentAheadTimesBoth",
                      live(false, true, true),
                      job_timeout,
                      {.start_timeout = t0 + 1s + start_timeout, .job_timeout = t0 + 2s + job_timeout}},
        deadline_case{"ReadyAndIdleHasNoTimer", live(true, true, false), job_timeout, {}},
        deadline_case{"ReadyWithAJobIsTimedFromThatJobsStart",
                      live(true, true, true),
                      job_timeout,
                      {.job_timeout = t0 + 2s + job_timeout}},
        deadline_case{"NoJobTimeoutWhenItIsZero", live(true, true, true), 0ms, {}},
        deadline_case{"OnItsWayOutOnlyTheKillCounts",
                      live(false, false, true, t0 + 7s),
                      job_timeout,
                      {.kill = t0 + 7s}},
        deadline_case{"TerminatedWithAJobIsKilledAfterTheGrace",
                      live(true, false, true, t0 + 4s),
                      job_timeout,
                      {.kill = t0 + 4s}}),
    [](const testing::TestParamInfo<deadline_case>& tc) { return std::string(tc.param.name); });

// The waits are one table; each stays what the documentation says.
static_assert(k_stop_waits.shutdown_kill_after == 1s);
static_assert(k_stop_waits.server_death_wait == 2s);
static_assert(k_stop_waits.standby_retry_first == 100ms && k_stop_waits.standby_retry_max == 5s);

}  // namespace
}  // namespace ringmaster::detail
