// Resizing and removing pools while they work, through the embedding API: pool::scale
// (grow without touching running workers, shrink under load with no job lost or retried)
// and supervisor::remove_pool (drain, then stop; the name is free again), plus per-worker
// RSS in status().
//
// Every wait is bounded (k_wait). The demo handlers are created before each supervisor.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <map>
#include <mutex>
#include <ringmaster/supervisor/supervisor.hpp>
#include <ringmaster/worker/demo_handlers.hpp>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "supervisor_waits.hpp"

namespace {

using namespace std::chrono_literals;
using ringmaster::error_kind;
using ringmaster::result;
using ringmaster::test::all_ready;
using ringmaster::test::await;
using ringmaster::test::eventually;
using ringmaster::test::pool_status_of;

std::vector<pid_t> pids_of(const ringmaster::supervisor& sup, std::string_view pool) {
  std::vector<pid_t> out;
  if (auto p = pool_status_of(sup, pool))
    for (auto& w : p->workers) out.push_back(w.pid);
  return out;
}

// Results by id, filled by completion callbacks on the dispatcher thread.
struct collected {
  std::mutex mutex;
  std::map<std::string, result> by_id;
  std::atomic<int> duplicates{0};
  ringmaster::completion_callback sink() {
    return [this](result r) {
      std::lock_guard lock(mutex);
      const std::string id = r.id;
      if (!by_id.emplace(id, std::move(r)).second) ++duplicates;
    };
  }
  std::size_t size() {
    std::lock_guard lock(mutex);
    return by_id.size();
  }
};

TEST(SupervisorScale, GrowingStartsNewWorkersAndLeavesRunningOnesAlone) {
  const auto& h = ringmaster::demo_handlers();
  ringmaster::supervisor sup({.name = "scale-up"});
  auto& pool = sup.add_pool("p", h, {.workers = 2});
  sup.start();
  ASSERT_TRUE(eventually([&] { return all_ready(sup, "p"); }));
  const auto before = pids_of(sup, "p");

  pool.scale(4);
  ASSERT_TRUE(eventually([&] { return all_ready(sup, "p") && pids_of(sup, "p").size() == 4; }));
  const auto after = pids_of(sup, "p");
  EXPECT_EQ(after[0], before[0]);
  EXPECT_EQ(after[1], before[1]);
  const auto st = pool_status_of(sup, "p");
  EXPECT_EQ(st->restarts, 0u);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(st->workers[static_cast<std::size_t>(i)].slot, i);
  // Every worker runs jobs, the new ones included.
  std::vector<std::future<result>> f;
  for (int i = 0; i < 8; ++i) f.push_back(pool.submit("sleep", "30"));
  std::set<int> workers;
  for (auto& x : f) {
    auto r = await(x);
    ASSERT_TRUE(r.ok()) << r.value;
    workers.insert(r.worker);
  }
  EXPECT_EQ(workers.size(), 4u);
}

TEST(SupervisorScale, ShrinkingAndGrowingUnderLoadLosesNoJob) {
  const auto& h = ringmaster::demo_handlers();
  ringmaster::supervisor sup({.name = "scale-load"});
  auto& pool = sup.add_pool("p", h, {.workers = 4, .max_pending = 64});
  sup.start();
  ASSERT_TRUE(eventually([&] { return all_ready(sup, "p"); }));
  const auto first = pids_of(sup, "p");

  collected got;
  constexpr int k_jobs = 600;
  std::thread feeder([&] {
    for (int i = 0; i < k_jobs; ++i) pool.submit("sleep", "1", got.sink(), "j" + std::to_string(i));
  });
  // Down, up, down again while the feeder keeps the pool full.
  const unsigned sizes[] = {1, 3, 2};
  for (unsigned n : sizes) {
    const std::size_t seen = got.size();
    ASSERT_TRUE(eventually([&] { return got.size() >= seen + 60 || got.size() == k_jobs; }));
    pool.scale(n);
  }
  feeder.join();
  ASSERT_TRUE(eventually([&] { return got.size() == k_jobs; })) << got.size() << " results";
  EXPECT_EQ(got.duplicates.load(), 0);
  for (auto& [id, r] : got.by_id) {
    EXPECT_TRUE(r.ok()) << id << ": " << r.value;
    EXPECT_EQ(r.attempts, 1u) << id;  // nobody was killed under a job
  }
  ASSERT_TRUE(eventually([&] { return all_ready(sup, "p") && pids_of(sup, "p").size() == 2; }));
  const auto st = pool_status_of(sup, "p");
  EXPECT_EQ(st->restarts, 0u);
  EXPECT_EQ(st->completed, static_cast<std::uint64_t>(k_jobs));
  EXPECT_EQ(pids_of(sup, "p")[0], first[0]) << "slot 0 was never to be touched";
}

TEST(SupervisorScale, OutOfRangeCountsAreRefused) {
  const auto& h = ringmaster::demo_handlers();
  ringmaster::supervisor sup({.name = "scale-bad"});
  auto& pool = sup.add_pool("p", h, {.workers = 1});
  sup.start();
  EXPECT_THROW(pool.scale(0), std::invalid_argument);
  EXPECT_THROW(pool.scale(1025), std::invalid_argument);
  ASSERT_TRUE(sup.remove_pool("p"));
  EXPECT_THROW(pool.scale(2), std::logic_error);
}

TEST(SupervisorScale, RemovedPoolFinishesItsJobsThenStopsAndItsNameIsFree) {
  const auto& h = ringmaster::demo_handlers();
  ringmaster::supervisor sup({.name = "remove"});
  auto& old_pool = sup.add_pool("p", h, {.workers = 2});
  sup.start();
  std::vector<std::future<result>> accepted;
  for (int i = 0; i < 10; ++i) accepted.push_back(old_pool.submit("sleep", "20"));

  ASSERT_TRUE(sup.remove_pool("p"));
  EXPECT_FALSE(sup.remove_pool("p"));
  EXPECT_EQ(sup.find_pool("p"), nullptr);
  auto late = old_pool.submit("echo", "late");
  const auto refused = await(late);
  EXPECT_EQ(refused.error, error_kind::stopped);
  EXPECT_NE(refused.value.find("was removed"), std::string::npos) << refused.value;

  auto& new_pool = sup.add_pool("p", h, {.workers = 1});
  auto fresh = new_pool.submit("echo", "new");
  EXPECT_EQ(await(fresh).value, "new");
  for (auto& f : accepted) {
    const auto r = await(f);
    EXPECT_TRUE(r.ok()) << r.value;
  }
  // The old pool's workers go; status then shows only the new pool.
  ASSERT_TRUE(eventually([&] {
    const auto st = sup.status();
    return st.pools.size() == 1 && !st.pools[0].removed;
  }));
}

TEST(SupervisorScale, StatusReportsEachWorkersResidentMemory) {
  const auto& h = ringmaster::demo_handlers();
  ringmaster::supervisor sup({.name = "rss"});
  auto& pool = sup.add_pool("p", h, {.workers = 2});
  sup.start();
  ASSERT_TRUE(eventually([&] { return all_ready(sup, "p"); }));
  auto f = pool.submit("echo", "x");
  ASSERT_TRUE(await(f).ok());
  const auto st = pool_status_of(sup, "p");
  for (auto& w : st->workers) {
    EXPECT_GT(w.rss_bytes, 100u * 1024) << "slot " << w.slot;
    EXPECT_LT(w.rss_bytes, std::size_t{1} << 34) << "slot " << w.slot;
  }
}

}  // namespace
