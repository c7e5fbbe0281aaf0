// What an embedding program needs beside submit and status, with real worker processes:
// the per-job tag, the job_spec forms, the lock-free counters, wait_ready, job groups and
// what becomes of an exception thrown by a completion callback.
//
// Every wait is bounded (k_wait): a bug makes a test fail, never hang.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <future>
#include <set>
#include <stdexcept>
#include <thread>
#include <ringmaster/supervisor/supervisor.hpp>
#include <ringmaster/worker/demo_handlers.hpp>
#include <string>
#include <vector>

#include "supervisor_waits.hpp"

namespace {

using namespace std::chrono_literals;
using ringmaster::error_kind;
using ringmaster::job_spec;
using ringmaster::readiness;
using ringmaster::result;
using ringmaster::test::all_ready;
using ringmaster::test::await;
using ringmaster::test::eventually;
using ringmaster::test::k_wait;

// Workers that never report ready: their on_start hook sleeps (in the worker process)
// until the supervisor stops them.
const ringmaster::handlers& sleepy_start_handlers() {
  static const auto* h = [] {
    auto* made = new ringmaster::handlers;
    made->on("echo", [](ringmaster::job& j) { return std::string(j.payload()); });
    made->on_start([](int) {
      for (;;) std::this_thread::sleep_for(1h);
    });
    return made;
  }();
  return *h;
}

// Workers that can never start: on_start throws, a start failure each time.
const ringmaster::handlers& failing_start_handlers() {
  static const auto* h = [] {
    auto* made = new ringmaster::handlers;
    made->on("echo", [](ringmaster::job& j) { return std::string(j.payload()); });
    made->on_start([](int) { throw std::runtime_error("no database"); });
    return made;
  }();
  return *h;
}

}  // namespace

// ---------------------------------------------------------------------------------------
// The tag and the job_spec forms

TEST(SupervisorTags, TagComesBackInTheResultOfEveryFormAndIsZeroWithoutOne) {
  const auto& demo = ringmaster::demo_handlers();
  ringmaster::supervisor sup({.name = "tags"});
  auto& pool = sup.add_pool("compute", demo, {.workers = 2});
  sup.start();

  auto by_future = pool.submit({.type = "echo", .payload = "f", .id = "fut", .tag = 11});
  std::promise<result> by_callback;
  pool.submit({.type = "echo", .payload = "c", .tag = 22}, [&](result r) { by_callback.set_value(std::move(r)); });
  ringmaster::completion_queue queue;
  pool.submit({.type = "echo", .payload = "q", .tag = 33}, queue);
  std::promise<result> by_try;
  job_spec tried{.type = "echo", .payload = "t", .tag = std::uint64_t{1} << 63};
  ASSERT_TRUE(pool.try_submit(std::move(tried), [&](result r) { by_try.set_value(std::move(r)); }));
  auto untagged = pool.submit("echo", "u");
  auto refused = pool.submit({.type = "no-such-type", .payload = "r", .tag = 44});

  const result f = await(by_future);
  EXPECT_TRUE(f.ok());
  EXPECT_EQ(f.tag, 11u);
  EXPECT_EQ(f.id, "fut");
  EXPECT_EQ(f.value, "f");
  auto cf = by_callback.get_future();
  const result c = await(cf);
  EXPECT_EQ(c.tag, 22u);
  EXPECT_EQ(c.value, "c");
  const auto q = queue.pop(k_wait);
  ASSERT_TRUE(q);
  EXPECT_EQ(q->tag, 33u);
  auto tf = by_try.get_future();
  EXPECT_EQ(await(tf).tag, std::uint64_t{1} << 63) << "all 64 bits come back";
  EXPECT_EQ(await(untagged).tag, 0u);
  const result r = await(refused);
  EXPECT_EQ(r.error, error_kind::rejected);
  EXPECT_EQ(r.tag, 44u) << "a refusal is tagged too";
}

TEST(SupervisorTags, TrySubmitOnAFullPoolGivesTheJobBackUntouched) {
  const auto& demo = ringmaster::demo_handlers();
  ringmaster::supervisor sup({.name = "giveback"});
  auto& pool = sup.add_pool("compute", demo, {.workers = 1, .max_pending = 1});
  sup.start();
  auto hanging = pool.submit("hang", "");

  job_spec parked{.type = "echo", .payload = std::string(1000, 'p'), .id = "parked", .tag = 5};
  EXPECT_FALSE(pool.try_submit(std::move(parked), [](result) {}));
  EXPECT_EQ(parked.type, "echo");
  EXPECT_EQ(parked.payload, std::string(1000, 'p'));
  EXPECT_EQ(parked.id, "parked");
  EXPECT_EQ(parked.tag, 5u);
  job_spec unnamed{.type = "echo", .payload = "x"};
  EXPECT_FALSE(pool.try_submit(std::move(unnamed), [](result) {}));
  EXPECT_EQ(unnamed.id, "") << "a default id is not made up for a job that was not submitted";

  sup.stop(0ms);
  EXPECT_EQ(await(hanging).error, error_kind::stopped);
}

// ---------------------------------------------------------------------------------------
// Counters

TEST(SupervisorCounters, CountersFollowJobsFromQueuedToInFlightToDone) {
  const auto& demo = ringmaster::demo_handlers();
  ringmaster::supervisor sup({.name = "counters"});
  auto& pool = sup.add_pool("compute", demo, {.workers = 2, .prefetch = 1});
  EXPECT_EQ(pool.counters().submitted, 0u);
  sup.start();
  ASSERT_TRUE(eventually([&] { return all_ready(sup, "compute"); }));

  std::vector<std::future<result>> done;
  for (int i = 0; i < 3; ++i) done.push_back(pool.submit("echo", std::to_string(i)));
  for (auto& f : done) ASSERT_TRUE(await(f).ok());
  std::vector<std::future<result>> hanging;
  for (int i = 0; i < 5; ++i) hanging.push_back(pool.submit("hang", ""));
  // A result is delivered a moment before its job leaves `unfinished` (of which `queued` is
  // derived): the counters settle just after the futures.
  ASSERT_TRUE(eventually([&] { return pool.counters().in_flight == 2 && pool.counters().queued == 3; }));
  const auto c = pool.counters();
  EXPECT_EQ(c.submitted, 8u);
  EXPECT_EQ(c.in_flight, 2u) << "prefetch 1: one job per worker";
  EXPECT_EQ(c.queued, 3u);
  EXPECT_EQ(c.completed, 3u);
  EXPECT_EQ(c.failed, 0u);
  EXPECT_EQ(c.retried, 0u);

  sup.stop(0ms);
  for (auto& f : hanging) EXPECT_EQ(await(f).error, error_kind::stopped);
  const auto end = pool.counters();  // stop() returns once every job has left `unfinished`
  EXPECT_EQ(end.submitted, 8u);
  EXPECT_EQ(end.queued, 0u);
  EXPECT_EQ(end.in_flight, 0u);
  EXPECT_EQ(end.completed, 3u);
  EXPECT_EQ(end.failed, 5u);
}

TEST(SupervisorCounters, RetriesAndRefusalsAreCountedAndTheSupervisorSumsItsPools) {
  const auto& demo = ringmaster::demo_handlers();
  ringmaster::supervisor sup({.name = "sums"});
  auto& a = sup.add_pool("a", demo, {.workers = 1, .max_attempts = 2, .backoff_initial = 1ms});
  auto& b = sup.add_pool("b", demo, {.workers = 1});
  sup.start();

  auto crashes = a.submit("crash", R"({"signal": "KILL"})");
  auto refused = b.submit("no-such-type", "");
  auto ok = b.submit("echo", "b");
  EXPECT_EQ(await(crashes).error, error_kind::crash);
  EXPECT_EQ(await(refused).error, error_kind::rejected);
  EXPECT_TRUE(await(ok).ok());

  const auto ca = a.counters();
  EXPECT_EQ(ca.submitted, 1u);
  EXPECT_EQ(ca.retried, 1u) << "max_attempts 2: one retry, then failed";
  EXPECT_EQ(ca.failed, 1u);
  const auto cb = b.counters();
  EXPECT_EQ(cb.submitted, 2u);
  EXPECT_EQ(cb.failed, 1u);
  EXPECT_EQ(cb.completed, 1u);
  const auto all = sup.counters();
  EXPECT_EQ(all.submitted, 3u);
  EXPECT_EQ(all.completed, 1u);
  EXPECT_EQ(all.failed, 2u);
  EXPECT_EQ(all.retried, 1u);
  // As above: the counters settle just after the futures.
  EXPECT_TRUE(eventually([&] { return sup.counters().queued + sup.counters().in_flight == 0; }));

  ASSERT_TRUE(sup.remove_pool("b"));
  EXPECT_EQ(sup.counters().submitted, 3u) << "a removed pool's jobs still count";
}

// ---------------------------------------------------------------------------------------
// wait_ready

TEST(SupervisorWaitReady, ReturnsReadyOnceEveryWorkerOfEveryPoolIsReady) {
  const auto& demo = ringmaster::demo_handlers();
  ringmaster::supervisor sup({.name = "ready"});
  sup.add_pool("a", demo, {.workers = 3});
  sup.add_pool("b", demo, {.workers = 1});
  EXPECT_THROW((void)sup.wait_ready(k_wait), std::logic_error) << "before start() no worker would ever start";
  sup.start();

  ASSERT_EQ(sup.wait_ready(k_wait), readiness::ready);
  for (const auto& p : sup.status().pools)
    for (const auto& w : p.workers) {
      EXPECT_EQ(w.state, ringmaster::worker_state::ready) << p.name << "/" << w.slot;
      EXPECT_GT(w.pid, 0) << p.name << "/" << w.slot;
    }
  EXPECT_EQ(sup.wait_ready(k_wait), readiness::ready) << "and again at once";
  sup.stop();
  EXPECT_EQ(sup.wait_ready(k_wait), readiness::stopped);
  EXPECT_EQ(ringmaster::to_string(readiness::timed_out), "timed_out");
}

TEST(SupervisorWaitReady, ReturnsGaveUpWhenAPoolCanNeverStart) {
  const auto& failing = failing_start_handlers();
  const auto& demo = ringmaster::demo_handlers();
  ringmaster::supervisor sup({.name = "never"});
  sup.add_pool("fine", demo, {.workers = 1});
  sup.add_pool("broken", failing, {.workers = 1, .backoff_initial = 1ms});
  sup.start();

  EXPECT_EQ(sup.wait_ready(k_wait), readiness::gave_up);
  EXPECT_TRUE(sup.any_pool_gave_up());
}

TEST(SupervisorWaitReady, TimesOutWhileAWorkerIsStillStartingAndWorksFromManyThreads) {
  const auto& sleepy = sleepy_start_handlers();
  ringmaster::supervisor sup({.name = "slow"});
  sup.add_pool("sleepy", sleepy, {.workers = 1, .start_timeout = std::chrono::milliseconds(k_wait) * 4});
  sup.start();

  std::vector<std::future<readiness>> waiters;
  for (int i = 0; i < 4; ++i)
    waiters.push_back(std::async(std::launch::async, [&] { return sup.wait_ready(20ms); }));
  for (auto& w : waiters) EXPECT_EQ(w.get(), readiness::timed_out) << "its worker is in on_start for ever";
  auto stopped = std::async(std::launch::async, [&] { return sup.wait_ready(k_wait); });
  sup.stop(0ms);
  EXPECT_EQ(stopped.get(), readiness::stopped) << "a stop answers a waiter at once";
}

// ---------------------------------------------------------------------------------------
// Job groups

TEST(SupervisorJobGroup, WaitCoversTheGroupsJobsOnlyAndTakesTheirResults) {
  const auto& demo = ringmaster::demo_handlers();
  ringmaster::supervisor sup({.name = "group"});
  // prefetch 1: no job of the group is sent ahead to the worker that hangs.
  auto& pool = sup.add_pool("compute", demo, {.workers = 2, .prefetch = 1});
  auto& other = sup.add_pool("other", demo, {.workers = 1});
  sup.start();
  auto outside = pool.submit("hang", "");  // keeps the pool from ever being idle
  ASSERT_TRUE(eventually([&] { return pool.counters().in_flight == 1; }));

  ringmaster::job_group group;
  EXPECT_TRUE(group.wait(0ms)) << "an empty group has nothing to wait for";
  for (int i = 0; i < 20; ++i) group.submit(pool, "echo", std::to_string(i), "e" + std::to_string(i));
  group.submit(other, {.type = "fail", .payload = "on purpose", .id = "f", .tag = 7});
  group.submit(pool, {.type = "no-such-type", .id = "r"});  // refused at once, still one of the group
  ASSERT_TRUE(group.wait(k_wait));
  EXPECT_FALSE(sup.wait_idle(0ms)) << "the hanging job is not the group's";
  EXPECT_EQ(group.size(), 22u);
  EXPECT_EQ(group.done(), 22u);
  EXPECT_EQ(group.failed(), 2u);

  const auto results = group.take_results();
  ASSERT_EQ(results.size(), 22u);
  std::set<std::string> ids;
  for (const auto& r : results) {
    ids.insert(r.id);
    if (r.id == "f") {
      EXPECT_EQ(r.error, error_kind::exception);
      EXPECT_EQ(r.tag, 7u);
      EXPECT_EQ(r.pool, "other");
    } else if (r.id == "r") {
      EXPECT_EQ(r.error, error_kind::rejected);
    } else {
      EXPECT_TRUE(r.ok()) << r.id << ": " << r.value;
      EXPECT_EQ("e" + r.value, r.id);
    }
  }
  EXPECT_EQ(ids.size(), 22u) << "each job once";
  EXPECT_TRUE(group.take_results().empty()) << "taken";

  group.submit(pool, "echo", "later");
  EXPECT_TRUE(group.wait(k_wait)) << "a group is reusable";
  EXPECT_EQ(group.size(), 23u);
  sup.stop(0ms);
  EXPECT_EQ(await(outside).error, error_kind::stopped);
}

TEST(SupervisorJobGroup, GroupMayGoBeforeItsJobsAndWaitTimesOutWhileOneRuns) {
  const auto& demo = ringmaster::demo_handlers();
  ringmaster::supervisor sup({.name = "group-gone"});
  auto& pool = sup.add_pool("compute", demo, {.workers = 1});
  sup.start();
  {
    ringmaster::job_group group;
    group.submit(pool, "hang", "");
    EXPECT_FALSE(group.wait(20ms)) << "its job hangs";
    EXPECT_EQ(group.done(), 0u);
  }  // destroyed with its job running: the result, when it comes, is dropped
  sup.stop(0ms);
  EXPECT_EQ(pool.counters().failed, 1u) << "the job still got its result";
}

// ---------------------------------------------------------------------------------------
// Exceptions thrown by completion callbacks

TEST(SupervisorCallbackExceptions, FirstIsRethrownByTheNextWaitOnTheCallersThreadAndEveryOneIsCounted) {
  const auto& demo = ringmaster::demo_handlers();
  ringmaster::supervisor sup({.name = "throws"});
  auto& pool = sup.add_pool("compute", demo, {.workers = 1});
  sup.start();

  pool.submit("echo", "1", [](result) { throw std::runtime_error("first"); });
  ASSERT_TRUE(eventually([&] { return pool.counters().callback_exceptions == 1; }));
  pool.submit("echo", "2", [](result) { throw std::runtime_error("second"); });
  ASSERT_TRUE(eventually([&] { return pool.counters().callback_exceptions == 2; }));
  auto after = pool.submit("echo", "3");
  EXPECT_TRUE(await(after).ok()) << "the dispatcher goes on";

  try {
    (void)sup.wait_idle(k_wait);
    ADD_FAILURE() << "wait_idle did not rethrow";
  } catch (const std::runtime_error& e) {
    EXPECT_STREQ(e.what(), "first");
  }
  EXPECT_TRUE(sup.wait_idle(k_wait)) << "rethrown once; the second was only counted";
  EXPECT_EQ(sup.counters().callback_exceptions, 2u);
  EXPECT_EQ(sup.wait_ready(k_wait), readiness::ready);
}

TEST(SupervisorCallbackExceptions, DrainFinishesItsWorkThenRethrowsEvenANonStdException) {
  const auto& demo = ringmaster::demo_handlers();
  ringmaster::supervisor sup({.name = "throws-late"});
  auto& pool = sup.add_pool("compute", demo, {.workers = 2});
  sup.start();

  std::atomic<int> delivered{0};
  for (int i = 0; i < 10; ++i)
    pool.submit("echo", std::to_string(i), [&, i](result) {
      ++delivered;
      if (i == 3) throw 42;  // not a std::exception: caught all the same
    });
  try {
    sup.drain();
    ADD_FAILURE() << "drain did not rethrow";
  } catch (int e) {
    EXPECT_EQ(e, 42);
  }
  EXPECT_EQ(delivered.load(), 10) << "drain finished every job first";
  EXPECT_EQ(pool.submit("echo", "x").get().error, error_kind::stopped) << "and stopped";
  EXPECT_NO_THROW(sup.stop()) << "nothing left to rethrow";
}

TEST(SupervisorCallbackExceptions, StopStopsThenRethrows) {
  const auto& demo = ringmaster::demo_handlers();
  ringmaster::supervisor sup({.name = "throws-at-stop"});
  auto& pool = sup.add_pool("compute", demo, {.workers = 1});
  sup.start();
  pool.submit("echo", "y", [](result) { throw std::runtime_error("at stop"); });
  ASSERT_TRUE(eventually([&] { return pool.counters().callback_exceptions == 1; }));
  EXPECT_THROW(sup.stop(), std::runtime_error);
  EXPECT_EQ(pool.submit("echo", "z").get().error, error_kind::stopped) << "the stop happened before the rethrow";
}

TEST(SupervisorLogging, SetLogLevelIsReachableFromTheSupervisorHeader) {
  // supervisor.hpp includes logging.hpp: no worker header is needed to quiet ringmaster.
  EXPECT_FALSE(ringmaster::set_log_level("loud"));
  EXPECT_TRUE(ringmaster::set_log_level("info"));
}
