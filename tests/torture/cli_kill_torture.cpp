// The delivery rule under fire through the `ringmaster run` binary: thousands of jobs of
// every demo kind (JSON Lines on its stdin; pools of forked and of exec'd workers, and one
// whose jobs hang until their job_timeout) while this test SIGKILLs, from outside,
// hundreds of times, random workers of the run and, now and then, one of its fork
// servers (the active one or the standby).
//
// Checked: the run ends by itself (exit 1: the `fail` jobs fail, as designed; not 3, no
// pool gave up); the results file has exactly one line per job, every id once, each the
// correct result for its job (torture_jobs.hpp); nothing is left behind (the harness
// waits for every descendant of the run; the leak guard checks /dev/shm).
//
// Bounded for the suite (8,000 jobs, at least 150 kills). RINGMASTER_SOAK=1 makes it
// 100,000 jobs and at least 2,000 kills; RINGMASTER_TORTURE_JOBS,
// RINGMASTER_TORTURE_KILLS and RINGMASTER_TORTURE_SEED set each alone.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <cstdio>
#include <map>
#include <set>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "cli_harness.hpp"
#include "proc.hpp"
#include "process_watch.hpp"
#include "soak.hpp"
#include "torture_jobs.hpp"
#include "waits.hpp"

namespace {

using namespace std::chrono_literals;
using ringmaster::test::eventually;
using ringmaster::test::setting;
namespace torture = ringmaster::test::torture;
namespace fs = std::filesystem;

constexpr unsigned k_max_attempts = 10;
constexpr unsigned k_hang_attempts = 2;
constexpr int k_hang_jobs = 6;

std::string config(const std::string& test_worker) {
  const std::string common = R"(max_restarts = 1000000
restart_window = "1s"
backoff_initial = "1ms"
backoff_max = "10ms"
stable_after = "20ms"
max_pending = 2000
)";
  return R"([supervisor]
log_level = "error"
shutdown_timeout = "10s"

[pools.compute]
workers = 3
max_attempts = 10
)" + common + R"(
[pools.exec]
workers = 2
max_attempts = 10
command = [")" + test_worker + R"("]
)" + common + R"(
[pools.hangs]
workers = 1
max_attempts = 2
job_timeout = "100ms"
kill_grace = "20ms"
)" + common;
}

}  // namespace

TEST(CliKillTorture, EveryJobGetsExactlyOneCorrectResultLineWhileWorkersAndForkServersAreKilled) {
  const std::uint64_t seed = setting("RINGMASTER_TORTURE_SEED", 20261122, 20261122);
  const std::uint64_t min_jobs = setting("RINGMASTER_TORTURE_JOBS", 8'000, 100'000);
  const std::uint64_t min_kills = setting("RINGMASTER_TORTURE_KILLS", 150, 2000);
  SCOPED_TRACE("seed " + std::to_string(seed) + " (RINGMASTER_TORTURE_SEED)");

  ringmaster::test::temp_dir dir;
  const auto cfg = dir.write("torture.toml", config(RINGMASTER_TEST_WORKER));
  const auto results_path = dir / "results.jsonl";
  auto job_line = [&](std::uint64_t i) {
    const auto job = torture::make_job(seed, i, false);
    return nlohmann::json{{"id", std::to_string(i)}, {"pool", i % 3 == 2 ? "exec" : "compute"}, {"type", job.type},
                          {"payload", job.payload}}
               .dump() +
           '\n';
  };

  // Jobs arrive on stdin, in batches between kills, until both the job count and the kill
  // count are reached; then stdin closes and the run must finish by itself.
  ringmaster::test::cli_process run({"run", cfg.string(), "--jobs", "-", "--results", results_path.string(), "--no-progress"},
                                    dir,
                                    {.stdin_pipe = true,
                                     .timeout = std::chrono::seconds(setting("RINGMASTER_TORTURE_TIMEOUT", 150, 1800))});
  // Every 2-8 ms a worker (a child of a fork server, there for 50 ms at least) is killed,
  // and at most every 300 ms a fork server. Not before every
  // worker started once: a fork server killed while the supervisor is being constructed
  // is a failed start (exit 2), not what is tested here.
  std::mt19937_64 rng(seed);
  std::uint64_t worker_kills = 0, server_kills = 0, jobs = 0;
  auto last_server_kill = std::chrono::steady_clock::now();
  std::map<pid_t, std::chrono::steady_clock::time_point> first_seen;
  auto processes = [&](std::vector<pid_t>& workers, std::vector<pid_t>& servers) {
    workers.clear();
    servers.clear();
    // Descendants of this process (the harness is a subreaper: anything orphaned would
    // come here). Both fork servers and workers lead their own process group; they are
    // told apart by descriptor 3, a fork server's socket and a worker's segment (anything
    // else, such as LeakSanitizer's helper at the run's exit, is left alone). The run's
    // own child is the zygote, which forks the fork servers: it is not what is killed here.
    const std::set<pid_t> zygote = ringmaster::test::children_of(run.pid());
    for (pid_t p : ringmaster::test::descendants_of(::getpid())) {
      if (p == run.pid() || zygote.count(p) || !ringmaster::test::is_running(p)) continue;
      std::error_code ec;
      const std::string fd3 = std::filesystem::read_symlink("/proc/" + std::to_string(p) + "/fd/3", ec).string();
      if (fd3.starts_with("socket:")) {
        servers.push_back(p);
        continue;
      }
      if (!fd3.starts_with("/memfd:")) continue;
      // What has been around for 50 ms: a worker that has started, not one being set up.
      const auto now = std::chrono::steady_clock::now();
      const auto seen = first_seen.try_emplace(p, now).first->second;
      if (now - seen >= 50ms) workers.push_back(p);
    }
  };
  std::vector<pid_t> workers, servers;
  ASSERT_TRUE(eventually([&] {
    processes(workers, servers);
    return workers.size() >= 6;
  }, 30s)) << "the run's workers never started";
  bool feeding = true;
  while (::kill(run.pid(), 0) == 0 && ringmaster::test::is_running(run.pid())) {
    if (feeding) {
      std::string batch;
      for (int k = 0; k < 40; ++k) batch += job_line(jobs++);
      ASSERT_TRUE(run.write_stdin(batch)) << "the run closed its stdin";
      // Enough of both, or (a bug: kills that never land) four times the jobs.
      if ((jobs >= min_jobs && worker_kills + server_kills >= min_kills) || jobs >= 4 * min_jobs) {
        for (int h = 0; h < k_hang_jobs; ++h)
          ASSERT_TRUE(run.write_stdin(
              nlohmann::json{{"id", "hang-" + std::to_string(h)}, {"pool", "hangs"}, {"type", "hang"}, {"payload", ""}}.dump() + '\n'));
        run.close_stdin();
        feeding = false;
      }
    }
    std::this_thread::sleep_for(std::chrono::microseconds(2000 + rng() % 6000));
    processes(workers, servers);
    const bool server_turn = rng() % 100 < 5 && std::chrono::steady_clock::now() - last_server_kill > 300ms;
    if (server_turn && !servers.empty()) {
      if (::kill(servers[rng() % servers.size()], SIGKILL) == 0) ++server_kills;
      last_server_kill = std::chrono::steady_clock::now();
    } else if (!workers.empty()) {
      if (::kill(workers[rng() % workers.size()], SIGKILL) == 0) ++worker_kills;
    }
  }
  const auto r = run.wait();
  ASSERT_FALSE(r.timed_out) << "the run hung: " << r.describe();
  EXPECT_EQ(r.code, 1) << "expected exit 1 (the `fail` jobs fail), not 3 (a pool gave up): " << r.describe();
  EXPECT_TRUE(r.left_behind.empty()) << r.describe();

  const auto lines = ringmaster::test::parse_lines(ringmaster::test::read_file(results_path));
  std::map<std::string, int> seen;
  std::uint64_t wrong = 0, exhausted = 0, retried = 0;
  std::vector<std::string> bad;
  for (const auto& line : lines) {
    const std::string id = line.value("id", "");
    if (++seen[id] > 1) continue;
    const bool ok = line.value("status", "") == "ok";
    const std::string kind = ok ? "" : line["error"].value("kind", "");
    const std::string value = ok ? line.value("result", "") : line["error"].value("message", "");
    const torture::outcome got{ok, kind, value, line.value("attempts", 0u)};
    torture::job_spec job;
    unsigned max_attempts = k_max_attempts;
    if (id.rfind("hang-", 0) == 0) {
      job = torture::hang_job();
      max_attempts = k_hang_attempts;
    } else {
      job = torture::make_job(seed, std::stoull(id), false);
    }
    if (got.attempts > 1) ++retried;
    if (torture::killed_every_attempt(got, max_attempts)) ++exhausted;
    if (auto why = torture::check(job, got, max_attempts); !why.empty()) {
      ++wrong;
      if (bad.size() < 20) bad.push_back("job " + id + " (" + job.type + "): " + why);
    }
  }
  std::uint64_t duplicated = 0, lost = 0;
  for (auto& [id, n] : seen) duplicated += static_cast<std::uint64_t>(n - 1);
  const std::uint64_t total = jobs + k_hang_jobs;
  for (std::uint64_t i = 0; i < jobs; ++i) lost += seen.count(std::to_string(i)) ? 0 : 1;
  for (int h = 0; h < k_hang_jobs; ++h) lost += seen.count("hang-" + std::to_string(h)) ? 0 : 1;
  EXPECT_EQ(lost, 0u) << "jobs without a result line";
  EXPECT_EQ(duplicated, 0u) << "result lines repeated";
  EXPECT_EQ(seen.size(), total) << "result lines for ids that were never submitted";
  EXPECT_EQ(wrong, 0u) << [&] {
    std::string s;
    for (auto& b : bad) s += "\n  " + b;
    return s;
  }();
  EXPECT_GE(worker_kills + server_kills, min_kills) << "the run ended before enough kills; raise the job count";
  EXPECT_LE(exhausted, total / 100);
  std::printf("[ figures  ] ringmaster run: %llu jobs, kills: %llu workers + %llu fork servers, results with a "
              "retried attempt %llu, lost %llu, duplicated %llu, wrong %llu, every attempt killed %llu; %.1f s, peak RSS "
              "%ld KiB\n",
              static_cast<unsigned long long>(total), static_cast<unsigned long long>(worker_kills),
              static_cast<unsigned long long>(server_kills), static_cast<unsigned long long>(retried),
              static_cast<unsigned long long>(lost), static_cast<unsigned long long>(duplicated),
              static_cast<unsigned long long>(wrong), static_cast<unsigned long long>(exhausted), r.seconds, r.max_rss_kib);
}
