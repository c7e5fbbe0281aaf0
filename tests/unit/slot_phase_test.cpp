// A worker slot's lifecycle (supervisor/src/slot_phase.hpp): which transitions each phase
// allows and which it refuses, what each legal one gives, and the state status() shows.
#include <gtest/gtest.h>

#include <slot_phase.hpp>

#include <functional>
#include <ostream>
#include <set>
#include <string>

namespace ringmaster::detail {
namespace {

using sp = slot_phase;

// One lifecycle of each phase, and the variants whose payload changes what is allowed.
constexpr slot_lifecycle down{};
constexpr slot_lifecycle spawning{.phase = sp::spawning};
constexpr slot_lifecycle starting{.phase = sp::starting};
constexpr slot_lifecycle ready{.phase = sp::ready, .said_ready = true};
constexpr slot_lifecycle recycling{.phase = sp::stopping, .why = ending::recycle, .said_ready = true};  // stop sent
constexpr slot_lifecycle stop_due{.phase = sp::stopping, .why = ending::recycle, .said_ready = true, .stop_due = true};
constexpr slot_lifecycle stopping_unready{.phase = sp::stopping, .why = ending::recycle, .stop_due = true};
constexpr slot_lifecycle shutting_down{.phase = sp::stopping, .why = ending::shutdown, .said_ready = true};
constexpr slot_lifecycle timed_out{.phase = sp::terminating, .why = ending::timeout, .said_ready = true};
constexpr slot_lifecycle terminating_unready{.phase = sp::terminating, .why = ending::start_timeout};
constexpr slot_lifecycle backoff{.phase = sp::backoff};
constexpr slot_lifecycle exited{.phase = sp::exited};
constexpr slot_lifecycle signaled{.phase = sp::signaled};
constexpr slot_lifecycle stopped{.phase = sp::stopped};
constexpr slot_lifecycle scaled_stop_due{.phase = sp::stopping, .why = ending::recycle, .said_ready = true, .stop_due = true,
                                         .scaled_out = true};
constexpr slot_lifecycle scaled_starting_stop_due{.phase = sp::stopping, .why = ending::recycle, .stop_due = true,
                                                  .scaled_out = true};
constexpr slot_lifecycle scaled_recycling{.phase = sp::stopping, .why = ending::recycle, .said_ready = true, .scaled_out = true};
constexpr slot_lifecycle scaled_timed_out{.phase = sp::terminating, .why = ending::timeout, .said_ready = true, .scaled_out = true};
constexpr slot_lifecycle scaled_stopped{.phase = sp::stopped, .scaled_out = true};

struct transition {
  const char* name;
  std::function<next_phase(slot_lifecycle)> apply;
};

const transition transitions[] = {
    {"spawn", on_spawn},
    {"spawned", on_spawned},
    {"ready", on_ready},
    {"ask_stop_recycle", [](slot_lifecycle l) { return on_stop_asked(l, ending::recycle); }},
    {"ask_stop_shutdown", [](slot_lifecycle l) { return on_stop_asked(l, ending::shutdown); }},
    {"stop_sent", on_stop_sent},
    {"terminate_timeout", [](slot_lifecycle l) { return on_terminate(l, ending::timeout); }},
    {"terminate_hostile", [](slot_lifecycle l) { return on_terminate(l, ending::hostile); }},
    {"death", on_death},
    {"back_off", on_back_off},
    {"retire_exited", [](slot_lifecycle l) { return on_retire(l, worker_state::exited); }},
    {"scale_in", on_scale_in},
    {"scale_back", on_scale_back},
};

// --- legality: every transition from every lifecycle above, allowed or refused.

struct legality_case {
  std::string name;
  slot_lifecycle from;
  std::set<std::string> allowed;  // every other transition is refused
};
void PrintTo(const legality_case& c, std::ostream* os) { *os << c.name; }

class SlotTransitions : public testing::TestWithParam<legality_case> {};

TEST_P(SlotTransitions, AllowOnlyWhatThePhaseAllows) {
  const auto& c = GetParam();
  for (const auto& t : transitions)
    EXPECT_EQ(t.apply(c.from).has_value(), c.allowed.count(t.name) == 1) << t.name << " from " << c.name;
}

const std::set<std::string> live_with_a_process = {"terminate_timeout", "terminate_hostile", "death", "scale_in"};

std::set<std::string> with(std::set<std::string> a, std::initializer_list<const char*> more) {
  for (const char* m : more) a.insert(m);
  return a;
}

INSTANTIATE_TEST_SUITE_P(
    Table, SlotTransitions,
    testing::Values(
        legality_case{"down", down, {"spawn", "back_off", "retire_exited", "scale_in"}},
        legality_case{"spawning", spawning, {"spawned", "death", "retire_exited", "scale_in"}},
        legality_case{"starting", starting, with(live_with_a_process, {"ready", "ask_stop_recycle", "ask_stop_shutdown"})},
        legality_case{"ready", ready, with(live_with_a_process, {"ask_stop_recycle", "ask_stop_shutdown"})},
        legality_case{"recycling", recycling, with(live_with_a_process, {"ask_stop_recycle", "ask_stop_shutdown"})},
        legality_case{"stop_due", stop_due, with(live_with_a_process, {"ask_stop_recycle", "ask_stop_shutdown", "stop_sent"})},
        legality_case{"stopping_unready", stopping_unready,
                      with(live_with_a_process, {"ready", "ask_stop_recycle", "ask_stop_shutdown", "stop_sent"})},
        legality_case{"shutting_down", shutting_down, with(live_with_a_process, {"ask_stop_recycle", "ask_stop_shutdown"})},
        legality_case{"timed_out", timed_out, live_with_a_process},
        legality_case{"terminating_unready", terminating_unready, with(live_with_a_process, {"ready"})},
        legality_case{"backoff", backoff, {"spawn", "retire_exited", "scale_in"}},
        legality_case{"exited", exited, {"retire_exited", "scale_in"}},
        legality_case{"signaled", signaled, {"retire_exited", "scale_in"}},
        legality_case{"stopped", stopped, {"retire_exited", "scale_in"}},
        legality_case{"scaled_stop_due", scaled_stop_due,
                      {"ask_stop_recycle", "ask_stop_shutdown", "stop_sent", "terminate_timeout", "terminate_hostile", "death",
                       "scale_back"}},
        legality_case{"scaled_timed_out", scaled_timed_out, {"terminate_timeout", "terminate_hostile", "death", "scale_back"}},
        legality_case{"scaled_stopped", scaled_stopped, {"retire_exited", "scale_back"}}),
    [](const testing::TestParamInfo<legality_case>& tc) { return tc.param.name; });

// --- what each legal transition gives.

struct result_case {
  std::string name;
  slot_lifecycle from;
  std::function<next_phase(slot_lifecycle)> apply;
  slot_lifecycle expected;
};
void PrintTo(const result_case& c, std::ostream* os) { *os << c.name; }

class SlotTransitionResults : public testing::TestWithParam<result_case> {};

TEST_P(SlotTransitionResults, GiveTheNextLifecycle) {
  const auto& c = GetParam();
  const next_phase next = c.apply(c.from);
  ASSERT_TRUE(next.has_value());
  EXPECT_EQ(to_string(next->phase), to_string(c.expected.phase));
  EXPECT_EQ(static_cast<int>(next->why), static_cast<int>(c.expected.why));
  EXPECT_EQ(next->said_ready, c.expected.said_ready);
  EXPECT_EQ(next->stop_due, c.expected.stop_due);
  EXPECT_EQ(next->scaled_out, c.expected.scaled_out);
}

next_phase stop_recycle(slot_lifecycle l) { return on_stop_asked(l, ending::recycle); }
next_phase stop_shutdown(slot_lifecycle l) { return on_stop_asked(l, ending::shutdown); }
next_phase terminate_for(slot_lifecycle l, ending why) { return on_terminate(l, why); }

INSTANTIATE_TEST_SUITE_P(
    Table, SlotTransitionResults,
    testing::Values(
        result_case{"SpawnFromDown", down, on_spawn, spawning},
        result_case{"SpawnAfterBackoff", backoff, on_spawn, spawning},
        result_case{"SpawnedStarts", spawning, on_spawned, starting},
        result_case{"ReadyWhenStarting", starting, on_ready, ready},
        result_case{"ReadyWhileStoppingIsNoted", stopping_unready, on_ready,
                    {.phase = sp::stopping, .why = ending::recycle, .said_ready = true, .stop_due = true}},
        result_case{"ReadyWhileTerminatingIsNoted", terminating_unready, on_ready,
                    {.phase = sp::terminating, .why = ending::start_timeout, .said_ready = true}},
        result_case{"RecycleMakesTheStopDue", ready, stop_recycle, stop_due},
        result_case{"AStopWhileStartingKeepsItUnready", starting, stop_recycle, stopping_unready},
        result_case{"ShutdownWinsOverARecycle", recycling, stop_shutdown, shutting_down},
        result_case{"ShutdownKeepsAStopStillDue", stop_due, stop_shutdown,
                    {.phase = sp::stopping, .why = ending::shutdown, .said_ready = true, .stop_due = true}},
        result_case{"RecycleDoesNotUndoAShutdown", shutting_down, stop_recycle, shutting_down},
        result_case{"StopSent", stop_due, on_stop_sent, recycling},
        result_case{"TerminateReady", ready, [](slot_lifecycle l) { return terminate_for(l, ending::timeout); }, timed_out},
        result_case{"TerminateOverridesARecycleAndDropsItsStop", stop_due,
                    [](slot_lifecycle l) { return terminate_for(l, ending::strategy); },
                    {.phase = sp::terminating, .why = ending::strategy, .said_ready = true}},
        result_case{"AnEarlierDecisionStands", timed_out, [](slot_lifecycle l) { return terminate_for(l, ending::strategy); },
                    timed_out},
        result_case{"HostileOverridesAnEarlierDecision", timed_out,
                    [](slot_lifecycle l) { return terminate_for(l, ending::hostile); },
                    {.phase = sp::terminating, .why = ending::hostile, .said_ready = true}},
        result_case{"ShutdownOverridesAnEarlierDecision", timed_out,
                    [](slot_lifecycle l) { return terminate_for(l, ending::shutdown); },
                    {.phase = sp::terminating, .why = ending::shutdown, .said_ready = true}},
        result_case{"DeathClearsWhatThePhaseCarried", timed_out, on_death, down},
        result_case{"DeathOfASpawn", spawning, on_death, down},
        result_case{"DeathKeepsScaledOut", scaled_recycling, on_death, {.scaled_out = true}},
        result_case{"BackOff", down, on_back_off, backoff},
        result_case{"RetireAsExited", down, [](slot_lifecycle l) { return on_retire(l, worker_state::exited); }, exited},
        result_case{"RetireAsSignaled", down, [](slot_lifecycle l) { return on_retire(l, worker_state::signaled); }, signaled},
        result_case{"RetireABackoffAsStopped", backoff, [](slot_lifecycle l) { return on_retire(l, worker_state::stopped); },
                    stopped},
        result_case{"RetireAnExitedOneAsStopped", exited, [](slot_lifecycle l) { return on_retire(l, worker_state::stopped); },
                    stopped},
        result_case{"ScaleInAsksAReadyOneToStop", ready, on_scale_in, scaled_stop_due},
        result_case{"ScaleInAsksAStartingOneToStop", starting, on_scale_in, scaled_starting_stop_due},
        result_case{"ScaleInKeepsAStopAlreadySent", recycling, on_scale_in, scaled_recycling},
        result_case{"ScaleInLetsATerminatingOneGo", timed_out, on_scale_in, scaled_timed_out},
        result_case{"ScaleInLetsAShutdownGo", shutting_down, on_scale_in,
                    {.phase = sp::stopping, .why = ending::shutdown, .said_ready = true, .scaled_out = true}},
        result_case{"ScaleInStopsASpawn", spawning, on_scale_in, scaled_stopped},
        result_case{"ScaleInStopsABackoff", backoff, on_scale_in, scaled_stopped},
        result_case{"ScaleInStopsAnExitedOne", exited, on_scale_in, scaled_stopped},
        result_case{"ScaleBackWithdrawsAStopNotSent", scaled_stop_due, on_scale_back, ready},
        result_case{"ScaleBackOfAStartingOne", scaled_starting_stop_due, on_scale_back, starting},
        result_case{"ScaleBackAfterTheStopWasSentRecycles", scaled_recycling, on_scale_back, recycling},
        result_case{"ScaleBackLetsATerminatingOneRestart", scaled_timed_out, on_scale_back, timed_out},
        result_case{"ScaleBackOfAStoppedOneIsDown", scaled_stopped, on_scale_back, down}),
    [](const testing::TestParamInfo<result_case>& tc) { return tc.param.name; });

// --- what status() shows.

struct shown_case {
  std::string name;
  slot_lifecycle life;
  bool has_jobs;
  worker_state expected;
};
void PrintTo(const shown_case& c, std::ostream* os) { *os << c.name; }

class SlotShownState : public testing::TestWithParam<shown_case> {};

TEST_P(SlotShownState, IsDerivedFromThePhase) {
  const auto& c = GetParam();
  // (as numbers: worker_state's names are the supervisor library's, which this test does not link)
  EXPECT_EQ(static_cast<int>(shown_state(c.life, c.has_jobs)), static_cast<int>(c.expected));
}

INSTANTIATE_TEST_SUITE_P(
    Table, SlotShownState,
    testing::Values(shown_case{"NewIsStarting", down, false, worker_state::starting},
                    shown_case{"SpawningIsStarting", spawning, false, worker_state::starting},
                    shown_case{"Starting", starting, false, worker_state::starting},
                    shown_case{"ReadyAndIdle", ready, false, worker_state::ready},
                    shown_case{"ReadyWithJobsIsBusy", ready, true, worker_state::busy},
                    shown_case{"RecyclingShowsItsLastJob", recycling, true, worker_state::busy},
                    shown_case{"RecyclingAfterItsLastJobIsReady", recycling, false, worker_state::ready},
                    shown_case{"RecyclingBeforeReadyIsStarting", stopping_unready, false, worker_state::starting},
                    shown_case{"ScaledOutIsStopping", scaled_stop_due, true, worker_state::stopping},
                    shown_case{"ShuttingDownIsStopping", shutting_down, false, worker_state::stopping},
                    shown_case{"TerminatingIsStopping", timed_out, true, worker_state::stopping},
                    shown_case{"Backoff", backoff, false, worker_state::backoff},
                    shown_case{"Exited", exited, false, worker_state::exited},
                    shown_case{"Signaled", signaled, false, worker_state::signaled},
                    shown_case{"Stopped", stopped, false, worker_state::stopped}),
    [](const testing::TestParamInfo<shown_case>& tc) { return tc.param.name; });

// --- what the phase says to the rest of the dispatcher.

TEST(SlotPhase, RetiredMeansNeverRestarted) {
  for (auto l : {exited, signaled, stopped, shutting_down, scaled_stop_due, scaled_timed_out, scaled_stopped})
    EXPECT_TRUE(is_retired(l)) << to_string(l.phase);
  for (auto l : {down, spawning, starting, ready, recycling, stop_due, timed_out, backoff})
    EXPECT_FALSE(is_retired(l)) << to_string(l.phase);
}

TEST(SlotPhase, OnlyAReadyOrSoonReadySlotWillTakeJobs) {
  for (auto l : {down, spawning, starting, ready, backoff}) EXPECT_TRUE(will_take_jobs(l)) << to_string(l.phase);
  for (auto l : {recycling, stop_due, shutting_down, timed_out, exited, signaled, stopped, scaled_stopped})
    EXPECT_FALSE(will_take_jobs(l)) << to_string(l.phase);
}

TEST(SlotPhase, ARecycleStillRunsNormallyAnythingElseOnItsWayOutDoesNot) {
  for (auto l : {starting, ready, recycling, stop_due}) EXPECT_TRUE(running_normally(l)) << to_string(l.phase);
  for (auto l : {down, spawning, shutting_down, timed_out, backoff, stopped}) EXPECT_FALSE(running_normally(l));
}

TEST(SlotPhase, OnlyAProtocolViolationIsHostile) {
  EXPECT_TRUE(is_hostile(*on_terminate(ready, ending::hostile)));
  EXPECT_FALSE(is_hostile(timed_out));
  EXPECT_FALSE(is_hostile(ready));
}

}  // namespace
}  // namespace ringmaster::detail
