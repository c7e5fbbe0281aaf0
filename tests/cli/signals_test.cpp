// Signals and kills of the real binary: SIGINT drains and --resume finishes the rest with
// no job run twice; SIGHUP is taken as SIGTERM; a second signal stops at once; SIGKILL
// leaves no worker alive and nothing in /dev/shm.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/syscall.h>

#include <algorithm>
#include <map>
#include <set>
#include <sstream>

#include "cli_harness.hpp"
#include "proc.hpp"
#include "waits.hpp"

namespace ringmaster::test {
namespace {

using namespace std::chrono_literals;

// What the `hang` job blocks in: pause() is its own system call on x86-64; where it is
// not (aarch64), glibc makes it ppoll().
#ifdef SYS_pause
constexpr long k_sys_pause = SYS_pause;
#else
constexpr long k_sys_pause = SYS_ppoll;
#endif

// Descendants of `root` blocked in system call `nr`: workers that took a job that hangs
// (k_sys_pause) or sleeps (SYS_clock_nanosleep); an idle worker waits in a futex.
std::size_t blocked_in(pid_t root, long nr) {
  const auto tree = descendants(root);
  return static_cast<std::size_t>(std::count_if(tree.begin(), tree.end(), [&](pid_t p) { return in_syscall(p, nr); }));
}

std::map<std::string, int> count_marks(const std::string& text) {
  std::map<std::string, int> out;
  std::istringstream in(text);
  for (std::string id; std::getline(in, id);)
    if (!id.empty()) ++out[id];
  return out;
}

// A pool `compute` of `workers` and `repeat` jobs sleeping `ms` each; a stop gives
// running jobs 10 s.
std::string sleep_jobs_config(int workers, int ms, int repeat) {
  return "[supervisor]\nshutdown_timeout = \"10s\"\n[pools.compute]\nworkers = " + std::to_string(workers) +
         "\nprefetch = 1\n[[jobs]]\ntype = \"sleep\"\npayload = " + std::to_string(ms) +
         "\nrepeat = " + std::to_string(repeat) + "\n";
}

// The marker worker appends each job's id to a file every time it runs the job, so the
// marks count executions, not results.
TEST(CliSignals, SigintDrainsThenResumeFinishesWithNoJobRunTwice) {
  temp_dir dir;
  const std::string marks = (dir / "marks").string();
  dir.write("config.toml", std::string(R"(
[supervisor]
shutdown_timeout = "10s"

[pools.marked]
workers = 2
prefetch = 1
command = [")") + RINGMASTER_MARKER_WORKER + "\", \"" + marks + R"("]
)");
  std::string jobs;
  for (int i = 1; i <= 40; ++i) jobs += "{\"id\": \"j" + std::to_string(i) + "\", \"type\": \"mark\", \"payload\": 100}\n";
  dir.write("jobs.jsonl", jobs);
  const std::vector<std::string> args{"run", "config.toml", "--jobs", "jobs.jsonl", "--results", "results.jsonl",
                                      "--no-progress"};

  cli_process first(args, dir, {.timeout = 60s});
  // Interrupt once some jobs are done and most are not.
  ASSERT_TRUE(eventually([&] { return count_status(parse_lines(read_file(dir / "results.jsonl")), "ok") >= 4; }, 30s));
  first.signal(SIGINT);
  const auto r1 = first.wait();
  EXPECT_EQ(r1.code, 1) << "interrupted: some jobs stopped\n" << r1.describe();
  EXPECT_TRUE(r1.left_behind.empty());
  EXPECT_NE(r1.err.find("SIGINT: stopping"), std::string::npos) << r1.err;
  const auto lines1 = parse_lines(read_file(dir / "results.jsonl"));
  EXPECT_EQ(lines1.size(), 40u) << "every accepted job has its line, ok or stopped";
  std::set<std::string> ok1;
  for (const auto& l : lines1) {
    if (l["status"] == "ok") ok1.insert(l["id"].get<std::string>());
    else EXPECT_EQ(l["error"]["kind"], "stopped") << l.dump();
  }
  ASSERT_GE(ok1.size(), 4u);
  ASSERT_LT(ok1.size(), 40u) << "the run must have been interrupted before its end";

  const auto r2 = run_cli({"run", "config.toml", "--jobs", "jobs.jsonl", "--results", "results.jsonl",
                           "--no-progress", "--resume"},
                          dir, {.timeout = 60s});
  EXPECT_EQ(r2.code, 0) << r2.describe();
  EXPECT_TRUE(r2.left_behind.empty());
  const auto all = parse_lines(read_file(dir / "results.jsonl"));
  std::set<std::string> ok_all;
  for (std::size_t i = lines1.size(); i < all.size(); ++i) {
    const std::string id = all[i]["id"];
    EXPECT_EQ(all[i]["status"], "ok") << all[i].dump();
    EXPECT_EQ(ok1.count(id), 0u) << id << " was already ok, and ran again";
    ok_all.insert(id);
  }
  ok_all.insert(ok1.begin(), ok1.end());
  EXPECT_EQ(ok_all.size(), 40u) << "every job ends ok after the resume";
  // Executions: each job exactly once over both runs (the drain let running jobs finish).
  const auto executions = count_marks(read_file(dir / "marks"));
  EXPECT_EQ(executions.size(), 40u);
  for (const auto& [id, n] : executions) EXPECT_EQ(n, 1) << id << " ran " << n << " times";
}

// Closing the terminal sends SIGHUP: taken as SIGTERM, not a silent death.
TEST(CliSignals, SighupStopsAsSigtermWithStoppedLinesAndTheSummary) {
  temp_dir dir;
  dir.write("config.toml", sleep_jobs_config(2, 50, 200));
  cli_process p({"run", "config.toml", "--results", "results.jsonl", "--no-progress"}, dir, {.timeout = 60s});
  ASSERT_TRUE(eventually([&] { return count_status(parse_lines(read_file(dir / "results.jsonl")), "ok") >= 2; }, 30s));
  p.signal(SIGHUP);
  const auto r = p.wait();
  EXPECT_EQ(r.signal, 0) << "SIGHUP must not kill the run\n" << r.describe();
  EXPECT_EQ(r.code, 1) << r.describe();
  EXPECT_TRUE(r.left_behind.empty());
  EXPECT_NE(r.err.find("SIGHUP: stopping"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("ringmaster: 200 jobs in"), std::string::npos) << "the summary\n" << r.err;
  const auto lines = parse_lines(read_file(dir / "results.jsonl"));
  EXPECT_EQ(lines.size(), 200u) << "every accepted job has its line";
  EXPECT_GE(count_status(lines, "ok"), 2u);
  EXPECT_GT(count_kind(lines, "stopped"), 0u);
  EXPECT_EQ(count_status(lines, "ok") + count_kind(lines, "stopped"), 200u);
}

// Two runs on one results file would both write every id's line: the second is refused,
// and the first's file is left as it is (not emptied, not cut).
TEST(CliSignals, ASecondRunOnAResultsFileInUseIsRefused) {
  temp_dir dir;
  dir.write("config.toml", sleep_jobs_config(1, 20, 1000));
  const std::vector<std::string> args{"run", "config.toml", "--results", "results.jsonl", "--no-progress"};
  cli_process first(args, dir, {.timeout = 60s});
  ASSERT_TRUE(eventually([&] { return count_status(parse_lines(read_file(dir / "results.jsonl")), "ok") >= 2; }, 30s));
  for (const bool resume : {true, false}) {
    std::vector<std::string> second = args;
    if (resume) second.push_back("--resume");
    const std::string before = read_file(dir / "results.jsonl");
    const auto r = run_cli(second, dir);
    EXPECT_EQ(r.code, 2) << r.describe();
    EXPECT_NE(r.err.find("--results: expected a results file no other run is writing, got results.jsonl (locked by "
                         "another ringmaster run"),
              std::string::npos)
        << r.err;
    EXPECT_TRUE(r.left_behind.empty());
    EXPECT_EQ(read_file(dir / "results.jsonl").rfind(before, 0), 0u) << "the first run's lines are kept";
  }
  first.signal(SIGTERM);
  const auto r1 = first.wait();
  EXPECT_EQ(r1.code, 1) << r1.describe();
  EXPECT_EQ(parse_lines(read_file(dir / "results.jsonl")).size(), 1000u) << "each job once, by the first run";
  // Once it has ended, the file is free (a config without jobs: nothing to rerun).
  dir.write("no-jobs.toml", "[pools.compute]\nworkers = 1\n");
  const auto r2 = run_cli({"run", "no-jobs.toml", "--results", "results.jsonl", "--no-progress", "--resume"}, dir);
  EXPECT_EQ(r2.code, 0) << r2.describe();
}

TEST(CliSignals, SecondSignalStopsAtOnceAndReportsEveryJob) {
  temp_dir dir;
  dir.write("config.toml", R"(
[supervisor]
shutdown_timeout = "60s"

[pools.stuck]
workers = 2

[[jobs]]
type = "hang"
repeat = 6
)");
  cli_process p({"run", "config.toml", "--results", "results.jsonl", "--no-progress"}, dir, {.timeout = 60s});
  ASSERT_TRUE(eventually([&] { return blocked_in(p.pid(), k_sys_pause) == 2; }, 20s)) << "the workers never took their jobs";
  p.signal(SIGINT);
  ASSERT_TRUE(eventually([&] { return p.err_so_far().find("SIGINT: stopping") != std::string::npos; }, 20s));
  const auto asked = std::chrono::steady_clock::now();
  p.signal(SIGTERM);
  const auto r = p.wait();
  EXPECT_LT(std::chrono::steady_clock::now() - asked, 10s) << "at once, not after shutdown_timeout";
  EXPECT_EQ(r.code, 1) << r.describe();
  EXPECT_TRUE(r.left_behind.empty()) << "the workers die with the supervisor";
  const auto lines = parse_lines(read_file(dir / "results.jsonl"));
  EXPECT_EQ(lines.size(), 6u) << "every accepted job has exactly one line";
  EXPECT_EQ(count_kind(lines, "stopped"), 6u);
  std::set<std::string> ids;
  for (const auto& l : lines) ids.insert(l["id"].get<std::string>());
  EXPECT_EQ(ids.size(), 6u);
}

// No job_timeout (the default) and a job that hangs: the run says so in its periodic
// lines (stderr is not a terminal here) instead of waiting for ever without a word.
TEST(CliSignals, AHangingJobWithoutTimeoutIsWarnedAboutThenStopped) {
  temp_dir dir;
  dir.write("config.toml", R"(
[pools.compute]
workers = 2

[[jobs]]
id = "stuck"
type = "hang"

[[jobs]]
type = "echo"
payload = 1
repeat = 200
)");
  cli_process p({"run", "config.toml", "--results", "results.jsonl"}, dir, {.timeout = 60s});
  // At least 5 s (the floor), then the next progress line (every 5 s).
  ASSERT_TRUE(eventually([&] { return p.err_so_far().find("job stuck of pool compute has run") != std::string::npos; },
                         40s))
      << p.err_so_far();
  const std::string err = p.err_so_far();
  EXPECT_NE(err.find("[warning] job stuck of pool compute has run"), std::string::npos) << err;
  EXPECT_NE(err.find("the pool has no job_timeout: it may never end"), std::string::npos) << err;
  p.signal(SIGTERM);
  ASSERT_TRUE(eventually([&] { return p.err_so_far().find("SIGTERM: stopping") != std::string::npos; }, 20s));
  p.signal(SIGTERM);
  const auto r = p.wait();
  EXPECT_EQ(r.code, 1) << r.describe();
  EXPECT_TRUE(r.left_behind.empty());
  const auto lines = parse_lines(read_file(dir / "results.jsonl"));
  EXPECT_EQ(lines.size(), 201u) << "every job has its line";
  ASSERT_NE(find_id(lines, "stuck"), nullptr);
  EXPECT_EQ((*find_id(lines, "stuck"))["error"]["kind"], "stopped");
}

TEST(CliSignals, SigkillOfTheSupervisorLeavesNoWorkerAndNothingInDevShm) {
  temp_dir dir;
  const auto shm_before = shm_entries();
  dir.write("config.toml", std::string(R"(
[pools.forked]
workers = 2

[pools.execd]
workers = 2
command = [")") + RINGMASTER_TEST_WORKER + R"("]

[[jobs]]
pool = "forked"
type = "hang"
repeat = 4

[[jobs]]
pool = "execd"
type = "sleep"
payload = 60000
repeat = 4
)");
  cli_process p({"run", "config.toml", "--results", "results.jsonl", "--no-progress"}, dir, {.timeout = 60s});
  // Two fork servers and four workers below the supervisor, all busy.
  ASSERT_TRUE(eventually([&] { return descendants(p.pid()).size() >= 6; }, 20s));
  ASSERT_TRUE(eventually([&] { return blocked_in(p.pid(), k_sys_pause) == 2 && blocked_in(p.pid(), SYS_clock_nanosleep) == 2; },
                         20s))
      << "the workers never took their jobs";
  const auto tree = descendants(p.pid());
  p.signal(SIGKILL);
  const auto r = p.wait();  // also waits for (and reaps) every orphan, up to 10 s
  EXPECT_EQ(r.signal, SIGKILL);
  EXPECT_TRUE(r.left_behind.empty()) << r.left_behind.size() << " process(es) outlived a SIGKILLed supervisor";
  for (const pid_t pid : tree) EXPECT_NE(::kill(pid, 0), 0) << "pid " << pid << " is still alive";
  EXPECT_EQ(shm_entries(), shm_before) << "a segment was left in /dev/shm";
}

}  // namespace
}  // namespace ringmaster::test
