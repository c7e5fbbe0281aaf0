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
#include <ringmaster/supervisor/supervisor.hpp>
#include <ringmaster/worker/demo_handlers.hpp>
#include <string>
#include <vector>

#include "supervisor_waits.hpp"

namespace {

using namespace std::chrono_literals;
using ringmaster::error_kind;
using ringmaster::job_spec;
using ringmaster::result;
using ringmaster::test::all_ready;
using ringmaster::test::await;
using ringmaster::test::eventually;
using ringmaster::test::k_wait;

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
