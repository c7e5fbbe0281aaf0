// Supervision policy seen through the real `ringmaster run`: a few poison jobs do not sink
// a batch, Ctrl-C starts none of the jobs sent ahead to a worker, strategy restarts are
// said at info. Every run is bounded in time and checked to leave no process behind.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <ringmaster/supervisor/supervisor.hpp>
#include <string>

#include "cli_harness.hpp"
#include "proc.hpp"
#include "privilege.hpp"
#include "waits.hpp"

namespace ringmaster::test {
namespace {

using namespace std::chrono_literals;

// Runs `jobs` (JSON Lines) through a config that tunes nothing but `workers = 2`.
cli_result run_untuned(const temp_dir& dir, const std::string& jobs) {
  dir.write("config.toml", "[pools.a]\nworkers = 2\n");
  dir.write("jobs.jsonl", jobs);
  return run_cli({"run", "config.toml", "--jobs", "jobs.jsonl", "--results", "results.jsonl", "--no-progress"}, dir,
                 {.timeout = 120s});
}

TEST(CliPolicy, FivePoisonJobsInTwoThousandFailAloneAndThePoolKeepsGoing) {
  // Arrange: a config that tunes nothing, 2,005 jobs of which 5 always crash their
  // worker (15 deaths at 3 attempts each, more than the default 10 restarts in 10 s), two
  // of them first in line, as a --resume would run them.
  temp_dir dir;
  std::string jobs;
  auto poison = [&](int i) {
    jobs += "{\"id\": \"bad-" + std::to_string(i) + "\", \"type\": \"crash\", \"payload\": {\"signal\": \"SEGV\"}}\n";
  };
  poison(0);
  poison(1);
  for (int i = 0; i < 2000; ++i) {
    if (i == 500 || i == 1000 || i == 1999) poison(i);
    jobs += "{\"id\": \"good-" + std::to_string(i) + "\", \"type\": \"echo\", \"payload\": " + std::to_string(i) + "}\n";
  }

  // Act
  const auto r = run_untuned(dir, jobs);

  // Assert: 2,000 ok, 5 failed `crash`, exit 1 (some job failed), not 3 (a pool gave up).
  EXPECT_EQ(r.code, 1) << r.describe();
  EXPECT_TRUE(r.left_behind.empty());
  const auto lines = parse_lines(read_file(dir / "results.jsonl"));
  EXPECT_EQ(lines.size(), 2005u);
  EXPECT_EQ(count_status(lines, "ok"), 2000u);
  EXPECT_EQ(count_kind(lines, "crash"), 5u);
  EXPECT_EQ(count_kind(lines, "stopped"), 0u);
  for (const char* id : {"bad-0", "bad-1", "bad-500", "bad-1000", "bad-1999"}) {
    const auto* l = find_id(lines, id);
    ASSERT_NE(l, nullptr) << id;
    EXPECT_EQ((*l)["error"]["kind"], "crash") << l->dump();
    EXPECT_EQ((*l)["attempts"], 3) << l->dump();
  }
  EXPECT_EQ(r.err.find("gave up"), std::string::npos) << r.err;
}

TEST(CliPolicy, PoolWhoseWorkersDieOnEveryJobStillGivesUpAndExitsThree) {
  // Arrange: every job kills its worker; nothing ever succeeds.
  temp_dir dir;
  std::string jobs;
  for (int i = 0; i < 300; ++i) jobs += "{\"type\": \"crash\", \"payload\": {\"signal\": \"SEGV\"}}\n";

  // Act
  const auto r = run_untuned(dir, jobs);

  // Assert: it gives up after at most 11 of them (max_restarts + 1 different jobs), and
  // reports the others stopped rather than running them.
  EXPECT_EQ(r.code, 3) << r.describe();
  EXPECT_TRUE(r.left_behind.empty());
  const auto lines = parse_lines(read_file(dir / "results.jsonl"));
  EXPECT_EQ(lines.size(), 300u);
  EXPECT_LE(count_kind(lines, "crash"), 11u);
  EXPECT_EQ(count_kind(lines, "crash") + count_kind(lines, "stopped"), 300u);
  EXPECT_NE(r.err.find("more than 10 restarts within 10s"), std::string::npos) << r.err;
}

TEST(CliPolicy, SigintStartsNoneOfTheJobsSentAheadAndReportsThemStoppedAtOnce) {
  // Arrange: one worker, four jobs sent ahead to it; the first runs for a while.
  temp_dir dir;
  const std::string marks = (dir / "marks").string();
  dir.write("config.toml", std::string(R"(
[supervisor]
shutdown_timeout = "60s"

[pools.marked]
workers = 1
prefetch = 4
command = [")") + RINGMASTER_MARKER_WORKER + "\", \"" + marks + R"("]
)");
  std::string jobs = "{\"id\": \"j1\", \"type\": \"mark\", \"payload\": 5000}\n";
  for (int i = 2; i <= 8; ++i) jobs += "{\"id\": \"j" + std::to_string(i) + "\", \"type\": \"mark\", \"payload\": 10}\n";
  dir.write("jobs.jsonl", jobs);
  cli_process run({"run", "config.toml", "--jobs", "jobs.jsonl", "--results", "results.jsonl", "--no-progress"}, dir,
                  {.timeout = 90s});
  ASSERT_TRUE(eventually([&] { return read_file(dir / "marks") == "j1\n"; }, 30s)) << "j1 never started";

  // Act: Ctrl-C while j1 runs.
  run.signal(SIGINT);
  const auto r = run.wait();

  // Assert: j1 finished (it had started); j2-j8 never started, and their lines came
  // before j1's, without waiting for it.
  EXPECT_EQ(r.code, 1) << r.describe();
  EXPECT_TRUE(r.left_behind.empty());
  EXPECT_EQ(read_file(dir / "marks"), "j1\n") << "a job not started at SIGINT started after it";
  const auto lines = parse_lines(read_file(dir / "results.jsonl"));
  ASSERT_EQ(lines.size(), 8u);
  EXPECT_EQ(lines.back()["id"], "j1") << "the unstarted jobs waited for the running one";
  EXPECT_EQ(lines.back()["status"], "ok") << lines.back().dump();
  for (std::size_t i = 0; i + 1 < lines.size(); ++i) {
    EXPECT_EQ(lines[i]["error"]["kind"], "stopped") << lines[i].dump();
    EXPECT_EQ(lines[i]["attempts"], 0) << lines[i].dump();
  }
}

TEST(CliPolicy, StrategyRestartsAreLoggedAtInfo) {
  // Arrange: one_for_all over two pools; a job of the first kills its worker.
  temp_dir dir;
  dir.write("config.toml", R"(
[supervisor]
strategy = "one_for_all"

[pools.a]
workers = 1

[pools.b]
workers = 1

[[jobs]]
pool = "b"
type = "sleep"
payload = 300

[[jobs]]
pool = "a"
id = "boom"
type = "crash"
payload = { signal = "SEGV" }
)");

  // Act
  const auto r = run_cli({"run", "config.toml", "--results", "results.jsonl", "--no-progress"}, dir, {.timeout = 60s});

  // Assert: each worker the strategy restarted is named, with the death that caused it.
  EXPECT_EQ(r.code, 1) << r.describe();
  EXPECT_TRUE(r.left_behind.empty());
  EXPECT_NE(r.err.find("[info] ringmaster: one_for_all: restarting worker b/0"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("because worker a/0 died (SIGSEGV)"), std::string::npos) << r.err;
}

TEST(CliPolicy, ThreadsOrProcessesThatCannotBeCreatedEndTheRunWithThreeAndSaySo) {
  RINGMASTER_REQUIRE_ROOT("to run as another user under a lowered RLIMIT_NPROC");
  // Arrange: runs as nobody whose RLIMIT_NPROC leaves room for 0, 1, 2 ... more tasks,
  // so that each of the fork servers, the results writer, the dispatcher and the signal
  // thread in turn is the first that cannot be created.
  temp_dir dir;
  fs::permissions(dir.path(), fs::perms::owner_all | fs::perms::others_exec | fs::perms::group_exec);
  dir.write("config.toml", R"(
[pools.a]
workers = 1
start_timeout = "1s"

[[jobs]]
type = "echo"
payload = "x"
)");
  fs::permissions(dir / "config.toml", fs::perms::owner_all | fs::perms::others_read | fs::perms::group_read);
  constexpr uid_t k_nobody = 65534;
  bool thread_failure_seen = false;
  for (int room = 2; room <= 8; ++room) {
    // The exec of ringmaster itself needs its own task under the limit: 2 is the least.
    const int limit = tasks_of(k_nobody) + room;

    // Act
    const auto r = run_cli({"run", "config.toml", "--results", "-", "--no-progress"}, dir,
                           {.timeout = 60s,
                            .run_under = {"prlimit", "--nproc=" + std::to_string(limit), "setpriv", "--reuid=65534",
                                          "--regid=65534", "--clear-groups"}});

    // Assert: a clean end, never an abort or a wait for ever: 3 with the reason, or 0
    // once everything fits.
    EXPECT_FALSE(r.timed_out) << "room " << room << ": " << r.describe();
    EXPECT_EQ(r.signal, 0) << "room " << room << ": " << r.describe();
    EXPECT_TRUE(r.code == 0 || r.code == 3) << "room " << room << ": " << r.describe();
    EXPECT_TRUE(r.left_behind.empty()) << "room " << room;
    if (r.code == 3) {
      EXPECT_TRUE(r.err.find("cannot start") != std::string::npos || r.err.find("cannot fork") != std::string::npos)
          << "room " << room << ": " << r.err;
    }
    thread_failure_seen |= r.err.find("RLIMIT_NPROC") != std::string::npos;
  }
  EXPECT_TRUE(thread_failure_seen) << "no limit tried made a thread creation fail";
}

TEST(CliPolicy, ConfigWhoseSharedMemoryExceedsTheMachinesIsRefusedNamingTheKeys) {
  // Arrange: enough workers of 64 MiB messages to map more than MemAvailable.
  const std::size_t per_worker = shared_memory_per_worker({.max_message = std::size_t{64} << 20});
  const std::size_t available = available_memory();
  ASSERT_GT(available, 0u);
  const std::size_t workers = available / per_worker + 1;
  if (workers > 1024) GTEST_SKIP() << "this machine has more memory than 1024 workers can map";
  temp_dir dir;
  dir.write("config.toml", "[pools.big]\nworkers = " + std::to_string(workers) + "\nmax_message = \"64MiB\"\n");

  // Act
  const auto r = run_cli({"run", "config.toml", "--results", "results.jsonl"}, dir, {.timeout = 60s});

  // Assert: a config error (2), nothing started or created, the figures and keys named.
  EXPECT_EQ(r.code, 2) << r.describe();
  EXPECT_TRUE(r.left_behind.empty());
  EXPECT_FALSE(fs::exists(dir / "results.jsonl"));
  EXPECT_NE(r.err.find("config.toml:1: pools.big: workers = " + std::to_string(workers) + " and max_message = 64MiB"),
            std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find("MemAvailable"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace ringmaster::test
