// A worker slot's timers (supervisor/src/worker_slot.hpp), per phase (slot_phase.hpp):
// which are armed, and when each fires. handle_timers and next_deadline both read them, so this table is what they agree on.
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

// A slot in `life` whose times are all set, so each case shows which of them count.
constexpr slot_clock in(slot_lifecycle life, bool has_job, slot_time kill_at = never) {
  return {.life = life,
          .has_job = has_job,
          .restart_at = t0 + 5s,
          .kill_at = kill_at,
          .spawned_at = t0 + 1s,
          .front_started = t0 + 2s};
}

using sp = slot_phase;
constexpr slot_lifecycle starting{.phase = sp::starting};
constexpr slot_lifecycle ready{.phase = sp::ready, .said_ready = true};
constexpr slot_lifecycle recycling{.phase = sp::stopping, .why = ending::recycle, .said_ready = true};
constexpr slot_lifecycle recycling_unready{.phase = sp::stopping, .why = ending::recycle, .stop_due = true, .scaled_out = true};
constexpr slot_lifecycle shutting_down{.phase = sp::stopping, .why = ending::shutdown, .said_ready = true};
constexpr slot_lifecycle timed_out{.phase = sp::terminating, .why = ending::timeout, .said_ready = true};
constexpr slot_lifecycle killed_starting{.phase = sp::terminating, .why = ending::start_timeout};

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
        deadline_case{"InBackoffRestartsAtItsTime", in({.phase = sp::backoff}, false), job_timeout, {.restart = t0 + 5s}},
        deadline_case{"NewHasNoTimer", in({}, false, t0), job_timeout, {}},
        deadline_case{"SpawningHasNoTimerHere", in({.phase = sp::spawning}, false, t0), job_timeout, {}},
        deadline_case{"RetiredHasNoTimer", in({.phase = sp::exited}, false, t0), job_timeout, {}},
        deadline_case{"StartingIsTimedFromItsSpawn", in(starting, false), job_timeout, {.start_timeout = t0 + 1s + start_timeout}},
        deadline_case{"StartingWithAJobSentAheadTimesBoth",
                      in(starting, true),
                      job_timeout,
                      {.start_timeout = t0 + 1s + start_timeout, .job_timeout = t0 + 2s + job_timeout}},
        deadline_case{"ReadyAndIdleHasNoTimer", in(ready, false), job_timeout, {}},
        deadline_case{"ReadyWithAJobIsTimedFromThatJobsStart", in(ready, true), job_timeout, {.job_timeout = t0 + 2s + job_timeout}},
        deadline_case{"NoJobTimeoutWhenItIsZero", in(ready, true), 0ms, {}},
        deadline_case{"RecyclingItsLastJobIsStillTimed", in(recycling, true), job_timeout, {.job_timeout = t0 + 2s + job_timeout}},
        deadline_case{"ScaledOutBeforeReadyIsStillTimedToStart",
                      in(recycling_unready, false),
                      job_timeout,
                      {.start_timeout = t0 + 1s + start_timeout}},
        deadline_case{"ShuttingDownHasNoTimerOfItsOwn", in(shutting_down, true), job_timeout, {}},
        deadline_case{"TerminatedWithAJobIsKilledAfterTheGrace", in(timed_out, true, t0 + 4s), job_timeout, {.kill = t0 + 4s}},
        deadline_case{"TerminatedBeforeReadyOnlyTheKillCounts", in(killed_starting, false, t0 + 7s), job_timeout, {.kill = t0 + 7s}},
        deadline_case{"AKillTimeOutsideTerminatingIsNotArmed", in(ready, false, t0 + 7s), job_timeout, {}}),
    [](const testing::TestParamInfo<deadline_case>& tc) { return std::string(tc.param.name); });

// The waits are one table; each stays what the documentation says.
static_assert(k_stop_waits.shutdown_kill_after == 1s);
static_assert(k_stop_waits.server_death_wait == 2s);
static_assert(k_stop_waits.standby_retry_first == 100ms && k_stop_waits.standby_retry_max == 5s);

}  // namespace
}  // namespace ringmaster::detail
