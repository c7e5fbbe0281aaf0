// The delivery rule for a user's program (protocol = "jsonl"), through the `ringmaster
// run` binary: 10,000 jobs to a pool of Python workers while this test SIGKILLs, from
// outside, the Python programs themselves (the workers' children) at random.
//
// Checked: the run ends by itself (exit 0, or 1 if a job was killed on every attempt: no
// pool gives up); the results file has exactly one line per job, every id once, each the
// correct result for its job; nothing is left behind (the harness waits for every
// descendant of the run).
//
// Bounded for the suite (10,000 jobs, at least 100 kills). RINGMASTER_SOAK=1 makes it
// 100,000 jobs and at least 1,000 kills; RINGMASTER_TORTURE_JOBS, RINGMASTER_TORTURE_KILLS
// and RINGMASTER_TORTURE_SEED set each alone.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "cli_harness.hpp"
#include "process_watch.hpp"
#include "soak.hpp"
#include "waits.hpp"

namespace {

using namespace std::chrono_literals;
using ringmaster::test::eventually;
using ringmaster::test::setting;

constexpr unsigned k_max_attempts = 10;
constexpr const char* k_script = "torture_worker.py";

// The program's whole command line, or empty if it is gone.
std::string cmdline_of(pid_t pid) {
  std::string text;
  const int fd = ::open(("/proc/" + std::to_string(pid) + "/cmdline").c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return text;
  char buf[4096];
  const ssize_t n = ::read(fd, buf, sizeof buf);  // the process may be gone: an error is an empty line
  ::close(fd);
  if (n > 0) text.assign(buf, static_cast<std::size_t>(n));
  for (char& c : text)
    if (c == '\0') c = ' ';
  return text;
}

}  // namespace

TEST(JsonlKillTorture, EveryJobGetsExactlyOneCorrectResultLineWhileTheProgramsAreKilled) {
  const std::uint64_t seed = setting("RINGMASTER_TORTURE_SEED", 20261202, 20261202);
  const std::uint64_t min_jobs = setting("RINGMASTER_TORTURE_JOBS", 10'000, 100'000);
  const std::uint64_t min_kills = setting("RINGMASTER_TORTURE_KILLS", 100, 1000);
  SCOPED_TRACE("seed " + std::to_string(seed) + " (RINGMASTER_TORTURE_SEED)");

  ringmaster::test::temp_dir dir;
  dir.write(k_script, R"(import json, sys
for line in sys.stdin:
    job = json.loads(line)
    n = job["payload"]["n"]
    print(json.dumps({"result": {"id": job["id"], "square": n * n}}), flush=True)
)");
  const auto cfg = dir.write("torture.toml", std::string(R"([supervisor]
log_level = "error"

[pools.py]
command = ["python3", ")") + k_script + R"("]
protocol = "jsonl"
workers = 4
max_attempts = 10
max_restarts = 1000000
restart_window = "1s"
backoff_initial = "1ms"
backoff_max = "10ms"
stable_after = "20ms"
max_pending = 2000
)");
  const auto results_path = dir / "results.jsonl";
  ringmaster::test::cli_process run({"run", cfg.string(), "--jobs", "-", "--results", results_path.string(), "--no-progress"},
                                    dir,
                                    {.stdin_pipe = true,
                                     .timeout = std::chrono::seconds(setting("RINGMASTER_TORTURE_TIMEOUT", 150, 1800))});
  // The Python programs: descendants running the script, there for 200 ms at least (so
  // that kills land on programs that serve: a program killed before it reads its job is
  // not charged it, and killing programs faster than they start would starve the run).
  std::mt19937_64 rng(seed);
  std::map<pid_t, std::chrono::steady_clock::time_point> first_seen;
  auto programs = [&] {
    std::vector<pid_t> out;
    const auto now = std::chrono::steady_clock::now();
    for (pid_t p : ringmaster::test::descendants_of(::getpid())) {
      if (p == run.pid() || cmdline_of(p).find(k_script) == std::string::npos) continue;
      if (now - first_seen.try_emplace(p, now).first->second >= 200ms) out.push_back(p);
    }
    return out;
  };
  ASSERT_TRUE(eventually([&] { return programs().size() >= 4; }, 30s)) << "the programs never started";
  std::uint64_t kills = 0, jobs = 0;
  bool feeding = true;
  const auto give_up_at = std::chrono::steady_clock::now() + std::chrono::seconds(setting("RINGMASTER_TORTURE_TIMEOUT", 150, 1800));
  while (::kill(run.pid(), 0) == 0 && ringmaster::test::is_running(run.pid()) &&
         std::chrono::steady_clock::now() < give_up_at) {  // then wait() ends the run as timed out
    if (feeding) {
      std::string batch;
      for (int k = 0; k < 40; ++k, ++jobs)
        batch += nlohmann::json{{"id", std::to_string(jobs)}, {"type", "square"}, {"payload", {{"n", jobs}}}}.dump() + '\n';
      ASSERT_TRUE(run.write_stdin(batch)) << "the run closed its stdin";
      if ((jobs >= min_jobs && kills >= min_kills) || jobs >= 4 * min_jobs) {
        run.close_stdin();
        feeding = false;
      }
    }
    std::this_thread::sleep_for(std::chrono::microseconds(5000 + rng() % 10000));
    if (const auto victims = programs(); !victims.empty())
      if (::kill(victims[rng() % victims.size()], SIGKILL) == 0) ++kills;
  }
  const auto r = run.wait();
  ASSERT_FALSE(r.timed_out) << "the run hung: " << r.describe();
  EXPECT_TRUE(r.code == 0 || r.code == 1) << "expected exit 0 or 1, not 3 (a pool gave up): " << r.describe();
  EXPECT_TRUE(r.left_behind.empty()) << r.describe();

  const auto lines = ringmaster::test::parse_lines(ringmaster::test::read_file(results_path));
  std::map<std::string, int> seen;
  std::uint64_t wrong = 0, exhausted = 0, retried = 0;
  std::vector<std::string> bad;
  for (const auto& line : lines) {
    const std::string id = line.value("id", "");
    if (++seen[id] > 1) continue;
    const unsigned attempts = line.value("attempts", 0u);
    if (attempts > 1) ++retried;
    std::string why;
    if (line.value("status", "") == "ok") {
      const std::uint64_t n = std::stoull(id);
      const std::string expected = nlohmann::json{{"id", id}, {"square", n * n}}.dump();
      if (line.value("result", "") != expected) why = "result " + line.value("result", "") + ", expected " + expected;
    } else if (line["error"].value("kind", "") == "crash" && attempts == k_max_attempts) {
      ++exhausted;  // killed on every attempt: possible, and rare
    } else {
      why = "failed: " + line.dump();
    }
    if (!why.empty() && ++wrong && bad.size() < 20) bad.push_back("job " + id + ": " + why);
  }
  std::uint64_t duplicated = 0, lost = 0;
  for (auto& [id, n] : seen) duplicated += static_cast<std::uint64_t>(n - 1);
  for (std::uint64_t i = 0; i < jobs; ++i) lost += seen.count(std::to_string(i)) ? 0 : 1;
  EXPECT_EQ(lost, 0u) << "jobs without a result line";
  EXPECT_EQ(duplicated, 0u) << "result lines repeated";
  EXPECT_EQ(seen.size(), jobs) << "result lines for ids that were never submitted";
  EXPECT_EQ(wrong, 0u) << [&] {
    std::string s;
    for (auto& b : bad) s += "\n  " + b;
    return s;
  }();
  EXPECT_GE(kills, min_kills) << "the run ended before enough kills; raise the job count";
  EXPECT_LE(exhausted, jobs / 100);
  std::printf("[ figures  ] jsonl: %llu jobs, %llu programs killed, results with a retried attempt %llu, lost %llu, "
              "duplicated %llu, wrong %llu, every attempt killed %llu; %.1f s, peak RSS %ld KiB\n",
              static_cast<unsigned long long>(jobs), static_cast<unsigned long long>(kills),
              static_cast<unsigned long long>(retried), static_cast<unsigned long long>(lost),
              static_cast<unsigned long long>(duplicated), static_cast<unsigned long long>(wrong),
              static_cast<unsigned long long>(exhausted), r.seconds, r.max_rss_kib);
}
