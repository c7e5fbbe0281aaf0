// The supervisor's delivery rule under fire, through the embedding API: tens of thousands
// of jobs of every demo kind run while a killer thread SIGKILLs, hundreds of times, random
// workers, workers in the middle of a job (among them workers copying a large result into
// their ring, workers answering another worker's request, and workers waiting for such an
// answer), and the fork server itself.
//
// Invariants, all checked: every job gets exactly one final result (a second one is
// counted as a duplicate, a missing one as lost); every result is the correct one for its
// job (torture_jobs.hpp regenerates each job from its index and checks the result); no
// wait is unbounded; once the supervisor is destroyed nothing is left (no process, no
// descriptor, no /dev/shm entry: the leak guard and the orphan reaper check); and the
// supervisor's resident memory after the run is within a generous bound of what it was
// after warm-up (growth, not a timing figure; skipped under ASan, whose quarantine keeps
// freed memory by design).
//
// Bounded for the suite (30,000 jobs, at least 300 kills). RINGMASTER_SOAK=1 makes it
// 300,000 jobs and at least 3,000 kills; RINGMASTER_TORTURE_JOBS, RINGMASTER_TORTURE_KILLS
// and RINGMASTER_TORTURE_SEED set each alone. The figures are printed as "[ figures  ]".
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <memory>
#include <mutex>
#include <random>
#include <ringmaster/supervisor/detail/testing.hpp>  // fork_server_pid
#include <ringmaster/supervisor/supervisor.hpp>
#include <ringmaster/worker/demo_handlers.hpp>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "proc.hpp"
#include "process_watch.hpp"
#include "soak.hpp"
#include "supervisor_waits.hpp"
#include "torture_jobs.hpp"

namespace {

using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;
using ringmaster::result;
using ringmaster::test::setting;
namespace torture = ringmaster::test::torture;

using ringmaster::test::k_asan;

constexpr unsigned k_max_attempts = 10;
// Resident memory may grow this much between warm-up and the end of the run: the pools'
// queues are bounded by max_pending, so real growth here is a leak per job or per restart.
constexpr long k_rss_slack_kib = 64 * 1024;

// The demo handlers plus `relay`: asks pool "answers" for an echo of its payload and waits
// for the reply (worker-to-worker messaging, killed on both ends). Registered at static
// initialisation, so before any supervisor forks its fork servers.
const ringmaster::handlers& torture_handlers() {
  static ringmaster::handlers h;
  static const bool once = [] {
    const auto& demo = ringmaster::demo_handlers();
    for (const auto& type : demo.names()) h.on(type, [type](ringmaster::job& j) { return (*ringmaster::demo_handlers().find(type))(j); });
    h.on("relay", [](ringmaster::job& j) {
      const result r = j.call("answers", "echo", j.payload(), 60s);
      if (!r.ok()) throw std::runtime_error("relay: the echo failed: " + r.value);
      return torture::relayed(r.value);
    });
    return true;
  }();
  (void)once;
  return h;
}
const ringmaster::handlers& g_handlers = torture_handlers();

ringmaster::pool_options torture_pool(unsigned workers) {
  // Restart at once and without limit: hundreds of kills within seconds are the test, not
  // a crash loop to give up on.
  return {.workers = workers,
          .max_restarts = 1'000'000,
          .restart_window = 1000ms,
          .max_attempts = k_max_attempts,
          .max_pending = 2000,
          .backoff_initial = 1ms,
          .backoff_max = 10ms,
          .stable_after = 20ms};
}

struct kill_counts {
  std::atomic<std::uint64_t> any_worker{0}, busy_worker{0}, fork_server{0};
  std::uint64_t total() const { return any_worker + busy_worker + fork_server; }
};

// Kills until told to stop: every 1-6 ms a random worker (60%), a worker running a job
// (32%; in pool "answers" that is a worker whose reply another worker awaits), or, at most
// every 150 ms, the fork server (8%). Remembers every worker pid it saw.
void killer(ringmaster::supervisor& sup, std::uint64_t seed, const std::atomic<bool>& stop, kill_counts& kills,
            std::set<ringmaster::test::process_id>& seen, ringmaster::test::orphan_reaper& reaper) {
  std::mt19937_64 rng(seed);
  auto last_server_kill = clock_type::now() - 1s;
  while (!stop.load()) {
    std::this_thread::sleep_for(std::chrono::microseconds(1000 + rng() % 5000));
    reaper.reap();
    const auto pick = rng() % 100;
    if (pick < 8) {
      if (clock_type::now() - last_server_kill < 150ms) continue;
      const pid_t server = ringmaster::detail::fork_server_pid(sup);
      if (server > 0 && ::kill(server, SIGKILL) == 0) {
        ++kills.fork_server;
        last_server_kill = clock_type::now();
        // Wait for the standby to take over (the dispatcher answers fork_server_pid()
        // only after it promoted the standby and forked a new one).
        ringmaster::test::eventually([&] { return ringmaster::detail::fork_server_pid(sup) != server; }, 10s);
      }
      continue;
    }
    const bool busy_only = pick < 40;
    std::vector<pid_t> candidates;
    for (const auto& p : sup.status().pools) {
      if (p.name == "hangs") continue;  // their jobs time out: killing them is not the point
      for (const auto& w : p.workers) {
        if (w.pid <= 0) continue;
        if (auto id = ringmaster::test::identify(w.pid)) seen.insert(*id);
        if (!busy_only || w.state == ringmaster::worker_state::busy) candidates.push_back(w.pid);
      }
    }
    if (candidates.empty()) continue;
    if (::kill(candidates[rng() % candidates.size()], SIGKILL) == 0) ++(busy_only ? kills.busy_worker : kills.any_worker);
  }
}

}  // namespace

TEST(SupervisorKillTorture, EveryJobGetsExactlyOneCorrectResultWhileWorkersAndForkServersAreKilled) {
  const std::uint64_t seed = setting("RINGMASTER_TORTURE_SEED", 20261122, 20261122);
  const std::uint64_t min_jobs = setting("RINGMASTER_TORTURE_JOBS", 30'000, 300'000);
  const std::uint64_t min_kills = setting("RINGMASTER_TORTURE_KILLS", 300, 3000);
  const std::uint64_t hang_jobs = 12;
  const std::uint64_t cap = min_jobs * 4;  // jobs are submitted until both minimums are met
  SCOPED_TRACE("seed " + std::to_string(seed) + " (RINGMASTER_TORTURE_SEED)");
  const auto started = clock_type::now();

  std::unique_ptr<std::atomic<std::uint32_t>[]> deliveries(new std::atomic<std::uint32_t>[cap + hang_jobs]);
  for (std::uint64_t i = 0; i < cap + hang_jobs; ++i) deliveries[i] = 0;
  std::atomic<std::uint64_t> delivered{0}, duplicates{0}, wrong{0}, exhausted{0}, ok{0}, failed{0};
  std::mutex bad_mutex;
  std::vector<std::string> bad;  // the first wrong results, described

  ringmaster::test::orphan_reaper reaper;  // workers of a killed fork server, promoted standbys
  std::set<ringmaster::test::process_id> seen;
  kill_counts kills;
  std::uint64_t submitted = 0;
  long rss_warm = 0, rss_end = 0;
  ringmaster::supervisor_status final_status;
  {
    ringmaster::supervisor sup({.name = "torture", .shutdown_timeout = 10s});
    for (pid_t p : ringmaster::test::children_of()) reaper.keep(p);  // its own fork servers
    auto& compute = sup.add_pool("compute", g_handlers, torture_pool(3));
    auto exec_options = torture_pool(2);
    exec_options.command = {RINGMASTER_TEST_WORKER};
    auto& exec = sup.add_pool("exec", exec_options);
    sup.add_pool("answers", g_handlers, torture_pool(2));
    auto hang_options = torture_pool(1);
    hang_options.job_timeout = 100ms;
    hang_options.kill_grace = 20ms;
    hang_options.max_attempts = 2;
    auto& hangs = sup.add_pool("hangs", g_handlers, hang_options);
    sup.start();
    ASSERT_TRUE(ringmaster::test::eventually([&] {
      return ringmaster::test::all_ready(sup, "compute") && ringmaster::test::all_ready(sup, "exec") &&
             ringmaster::test::all_ready(sup, "answers");
    }, 30s)) << "the workers never started";

    auto on_result = [&](std::uint64_t index, torture::job_spec job, unsigned max_attempts) {
      return [&, index, job = std::move(job), max_attempts](result r) {
        if (deliveries[index].fetch_add(1) != 0) {
          ++duplicates;
          return;
        }
        (r.ok() ? ok : failed)++;
        const torture::outcome got{r.ok(), r.ok() ? "" : ringmaster::to_string(r.error), r.value, r.attempts};
        if (torture::killed_every_attempt(got, max_attempts)) ++exhausted;
        if (auto why = torture::check(job, got, max_attempts); !why.empty()) {
          ++wrong;
          std::lock_guard lock(bad_mutex);
          if (bad.size() < 20) bad.push_back("job " + std::to_string(index) + " (" + job.type + "): " + why);
        }
        ++delivered;
      };
    };

    std::atomic<bool> stop_killing{false};
    std::thread kill_thread([&] { killer(sup, seed, stop_killing, kills, seen, reaper); });
    for (std::uint64_t h = 0; h < hang_jobs; ++h)
      hangs.submit("hang", "", on_result(cap + h, torture::hang_job(), hang_options.max_attempts), "hang-" + std::to_string(h));
    for (; submitted < cap && (submitted < min_jobs || kills.total() < min_kills); ++submitted) {
      if (submitted == min_jobs / 5) rss_warm = ringmaster::test::resident_kib();
      auto job = torture::make_job(seed, submitted, true);
      // Relays run in the forked pool (they need the relay handler); a third of the rest
      // goes to the exec'd workers.
      auto& pool = job.kind == torture::job_kind::relay || submitted % 3 != 2 ? compute : exec;
      const std::string type = job.type, payload = job.payload;
      pool.submit(type, payload, on_result(submitted, std::move(job), k_max_attempts), std::to_string(submitted));
    }
    stop_killing = true;
    kill_thread.join();
    const bool idle = sup.wait_idle(120s);
    EXPECT_TRUE(idle) << "jobs still unfinished 120 s after the last submission (a hang)";
    rss_end = ringmaster::test::resident_kib();
    final_status = sup.status();
    for (const auto& p : final_status.pools) EXPECT_FALSE(p.gave_up) << p.name << ": " << p.gave_up_reason;
  }
  // The supervisor is gone: nothing more may arrive, and nothing may be left.
  EXPECT_TRUE(reaper.reap_all(10s)) << "processes left behind";
  const auto left = ringmaster::test::survivors(seen);
  EXPECT_TRUE(left.empty()) << "workers alive after the supervisor was destroyed: " << ringmaster::test::describe(left);

  std::uint64_t lost = 0;
  for (std::uint64_t i = 0; i < cap + hang_jobs; ++i)
    if ((i < submitted || i >= cap) && deliveries[i].load() == 0) ++lost;
  const std::uint64_t total = submitted + hang_jobs;
  EXPECT_EQ(lost, 0u) << "jobs without a result";
  EXPECT_EQ(duplicates.load(), 0u) << "results delivered twice";
  EXPECT_EQ(delivered.load(), total);
  EXPECT_EQ(wrong.load(), 0u) << [&] {
    std::string s;
    for (auto& b : bad) s += "\n  " + b;
    return s;
  }();
  EXPECT_GE(kills.total(), min_kills);
  // Killing every attempt of a job is possible but, at 10 attempts, should be rare.
  EXPECT_LE(exhausted.load(), total / 100) << "jobs failed after " << k_max_attempts << " killed attempts";

  unsigned restarts = 0;
  std::uint64_t retried = 0;
  for (const auto& p : final_status.pools) restarts += p.restarts, retried += p.retried;
  const double seconds = std::chrono::duration<double>(clock_type::now() - started).count();
  std::printf("[ figures  ] embedding: %llu jobs (%llu ok, %llu failed as designed), kills: %llu workers + %llu busy "
              "workers + %llu fork servers = %llu, worker restarts %u, attempts retried %llu, lost %llu, duplicated %llu, "
              "wrong %llu, every attempt killed %llu; supervisor RSS %ld KiB after warm-up, %ld KiB at the end; %.1f s\n",
              static_cast<unsigned long long>(total), static_cast<unsigned long long>(ok.load()),
              static_cast<unsigned long long>(failed.load()), static_cast<unsigned long long>(kills.any_worker.load()),
              static_cast<unsigned long long>(kills.busy_worker.load()), static_cast<unsigned long long>(kills.fork_server.load()),
              static_cast<unsigned long long>(kills.total()), restarts, static_cast<unsigned long long>(retried),
              static_cast<unsigned long long>(lost), static_cast<unsigned long long>(duplicates.load()),
              static_cast<unsigned long long>(wrong.load()), static_cast<unsigned long long>(exhausted.load()), rss_warm,
              rss_end, seconds);
  if (k_asan) {
    std::printf("[ figures  ] RSS bound not checked under AddressSanitizer (its quarantine holds freed memory)\n");
  } else {
    EXPECT_LE(rss_end, rss_warm + k_rss_slack_kib) << "the supervisor's resident memory grew over the run";
  }
}
