// The supervisor treats workers as untrusted: a worker that scribbles over its rings
// (indices out of range or misaligned, frames too long or out of sequence, garbage
// messages, names longer than their message), answers a job it does not hold, says
// `ready` twice or `fatal` after ready, is killed; the job it was running is charged
// with it (and, as it misbehaves on every attempt, fails after max_attempts); the rest
// of the pool carries on. A worker flooding a pool with posted jobs is held to the pool's
// max_pending. The worker is the exec'd test worker (helpers/test_worker.cpp), which maps
// its own segment a second time to break the protocol behind its runtime's back, then
// waits to be killed: only the supervisor's detection can end the test's job. Under ASan
// (the CI's second pass) any out-of-bounds read these provoke in the supervisor fails
// the run.
#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <ringmaster/supervisor/supervisor.hpp>
#include <ringmaster/worker/demo_handlers.hpp>
#include <string>
#include <vector>

#include "process_watch.hpp"
#include "soak.hpp"
#include "supervisor_waits.hpp"

namespace {

using namespace std::chrono_literals;
using ringmaster::error_kind;
using ringmaster::result;
using ringmaster::test::await;
using ringmaster::test::pool_status_of;

using ringmaster::test::k_asan;

ringmaster::pool_options untrusted_pool() {
  return {.workers = 1,
          .command = {RINGMASTER_TEST_WORKER},
          .max_restarts = 100,
          .max_attempts = 2,
          .prefetch = 4,
          .backoff_initial = 1ms,
          .backoff_max = 5ms};
}

class HostileWorker : public testing::TestWithParam<const char*> {};

TEST_P(HostileWorker, IsKilledItsJobChargedAndThePoolCarriesOn) {
  ringmaster::supervisor sup({.name = "hostile"});
  auto& pool = sup.add_pool("untrusted", untrusted_pool());
  sup.start();

  // The hostile job first (it must be the first job of its worker process), honest jobs
  // behind it: they are requeued when the worker is killed, and must all complete.
  auto bad = pool.submit(GetParam(), "", "hostile");
  std::vector<std::future<result>> good;
  for (int i = 0; i < 20; ++i) good.push_back(pool.submit("echo", "honest " + std::to_string(i), std::to_string(i)));

  const result r = await(bad);
  EXPECT_EQ(r.error, error_kind::crash) << ringmaster::to_string(r.error) << ": " << r.value;
  EXPECT_NE(r.value.find("violated the ring protocol"), std::string::npos) << r.value;
  EXPECT_EQ(r.attempts, 2u) << "charged once per attempt, failed at max_attempts";
  for (int i = 0; i < 20; ++i) {
    const result g = await(good[static_cast<std::size_t>(i)]);
    EXPECT_TRUE(g.ok()) << g.id << ": " << ringmaster::to_string(g.error) << " " << g.value;
    EXPECT_EQ(g.value, "honest " + std::to_string(i));
  }
  const auto st = pool_status_of(sup, "untrusted");
  ASSERT_TRUE(st);
  EXPECT_FALSE(st->gave_up) << st->gave_up_reason;
  EXPECT_EQ(st->restarts, 2u) << "one kill per hostile attempt, no other death";
  ASSERT_EQ(st->workers.size(), 1u);
  EXPECT_EQ(st->workers[0].restarts_by_cause.count("SIGKILL"), 1u);
  // And it still works, with a new worker.
  auto f = pool.submit("primes", "1000");
  EXPECT_EQ(await(f).value, "168");
}

INSTANTIATE_TEST_SUITE_P(Protocol, HostileWorker,
                         testing::Values("scribble_head", "misalign_head", "scribble_tail", "frame_too_long", "frame_bad_seq",
                                         "garbage_message", "lying_lengths", "foreign_result", "second_ready", "late_fatal"));

// A worker posting jobs in a loop (fire and forget, a million of them) to a slow pool:
// the pool takes max_pending of them and the rest are refused; the supervisor's memory
// does not grow with the flood, and the flooding job itself completes.
TEST(HostileWorkerFlood, PostedJobsAreHeldToTheTargetPoolsMaxPending) {
  constexpr std::size_t k_max_pending = 1000;
  constexpr unsigned k_posts = 1'000'000;
  const long rss_before = ringmaster::test::resident_kib();
  std::uint64_t sink_total = 0;
  {
    const auto& demo = ringmaster::demo_handlers();  // before the supervisor forks its fork servers
    ringmaster::supervisor sup({.name = "flood"});
    auto& untrusted = sup.add_pool("untrusted", untrusted_pool());
    sup.add_pool("sink", demo, {.workers = 1, .max_pending = k_max_pending});
    sup.start();
    std::size_t most_unfinished = 0;
    auto flood = untrusted.submit("post", std::to_string(k_posts) + " sink");
    while (flood.wait_for(5ms) != std::future_status::ready) {
      const auto st = pool_status_of(sup, "sink");
      most_unfinished = std::max(most_unfinished, st->queued + st->in_flight);
    }
    const result r = flood.get();
    EXPECT_TRUE(r.ok()) << ringmaster::to_string(r.error) << ": " << r.value;
    EXPECT_EQ(r.value, "posted " + std::to_string(k_posts));
    EXPECT_LE(most_unfinished, k_max_pending) << "the sink pool held more than max_pending jobs";
    EXPECT_TRUE(sup.wait_idle(30s));
    const auto st = pool_status_of(sup, "sink");
    sink_total = st->completed + st->failed;
    EXPECT_FALSE(st->gave_up) << st->gave_up_reason;
    EXPECT_EQ(st->failed, 0u);
    EXPECT_LT(sink_total, k_posts) << "every post was accepted: nothing held the flood back";
    EXPECT_GE(sink_total, k_max_pending);
    auto f = untrusted.submit("echo", "still here");
    EXPECT_EQ(await(f).value, "still here");
    const long rss_after = ringmaster::test::resident_kib();
    std::printf("[ figures  ] %u posts: %llu accepted and run (ok), the rest refused; RSS %ld -> %ld KiB\n", k_posts,
                static_cast<unsigned long long>(sink_total), rss_before, rss_after);
    if (!k_asan) {
      EXPECT_LE(rss_after, rss_before + 64 * 1024) << "the supervisor's memory grew with the flood";
    }
  }
}

}  // namespace
