// End-to-end runs of the real `ringmaster` binary: a correct run, each failure kind,
// command pools, stdin, --resume's repair, the demo, usage, and a million jobs in bounded
// memory. Every run is bounded in time and checked to leave no process behind.
#include <gtest/gtest.h>
#include <pty.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <thread>

#include "cli_harness.hpp"
#include "waits.hpp"

namespace ringmaster::test {
namespace {

using namespace std::chrono_literals;

// AddressSanitizer and ThreadSanitizer reserve terabytes of address space for their
// shadow memory, so a memory_limit (RLIMIT_AS) leaves workers unable to map anything: the
// tests that need one run only in plain builds, and RSS bounds are looser under them
// (shadow memory, ASan's quarantine of freed blocks).
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr bool k_sanitized = true;
#else
constexpr bool k_sanitized = false;
#endif

class CliRun : public testing::Test {
 protected:
  temp_dir dir;

  // Runs `ringmaster run CONFIG --results results.jsonl --no-progress EXTRA...`.
  cli_result run_config(const std::string& toml, std::vector<std::string> extra = {}, cli_options options = {}) {
    dir.write("config.toml", toml);
    std::vector<std::string> args{"run", "config.toml", "--results", "results.jsonl", "--no-progress"};
    args.insert(args.end(), extra.begin(), extra.end());
    return run_cli(args, dir, options);
  }
  std::vector<nlohmann::json> results() { return parse_lines(read_file(dir / "results.jsonl")); }
};

TEST_F(CliRun, CorrectRunWritesOneOkLinePerJobAndExitsZero) {
  dir.write("jobs.jsonl",
            "{\"id\": \"e1\", \"type\": \"echo\", \"payload\": \"hello\"}\n"
            "{\"type\": \"echo\", \"payload\": [1, 2]}\n"
            "\n"  // blank lines are skipped
            "{\"id\": 42, \"pool\": \"compute\", \"type\": \"sleep\", \"payload\": 10}\n");
  const auto r = run_config(R"(
[pools.compute]
workers = 2

[[jobs]]
id = "p"
type = "primes"
payload = 100000

[[jobs]]
type = "echo"
payload = { a = 1, b = [true, "x"] }
repeat = 3
)",
                            {"--jobs", "jobs.jsonl"});
  ASSERT_EQ(r.code, 0) << r.describe();
  EXPECT_CLEAN(r);
  EXPECT_EQ(r.out, "") << "results go to the file, not stdout";
  const auto lines = results();
  ASSERT_EQ(lines.size(), 7u);
  EXPECT_EQ(count_status(lines, "ok"), 7u);
  ASSERT_NE(find_id(lines, "p"), nullptr);
  EXPECT_EQ((*find_id(lines, "p"))["result"], "9592");
  // Jobs without an id get their sequence number: config jobs first, then job lines.
  for (const char* id : {"2", "3", "4"}) {
    ASSERT_NE(find_id(lines, id), nullptr) << id;
    EXPECT_EQ((*find_id(lines, id))["result"], R"({"a":1,"b":[true,"x"]})");
  }
  EXPECT_EQ((*find_id(lines, "e1"))["result"], "hello");
  ASSERT_NE(find_id(lines, "6"), nullptr);
  EXPECT_EQ((*find_id(lines, "6"))["result"], "[1,2]");
  ASSERT_NE(find_id(lines, "42"), nullptr);
  EXPECT_EQ((*find_id(lines, "42"))["result"], "slept 10 ms");
  EXPECT_EQ((*find_id(lines, "42"))["id"], 42) << "an integer id comes back as an integer";
  EXPECT_EQ((*find_id(lines, "e1"))["id"], "e1");
  EXPECT_EQ((*find_id(lines, "6"))["id"], "6") << "a sequence number is a string id";
  for (const auto& l : lines) {
    EXPECT_EQ(l["attempts"], 1);
    EXPECT_TRUE(l["worker"] == 0 || l["worker"] == 1) << l.dump();
    EXPECT_TRUE(l["ms"].is_number()) << l.dump();
    EXPECT_FALSE(l.contains("error"));
  }
  EXPECT_NE(r.err.find("7 jobs in"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("7 ok, 0 failed"), std::string::npos) << r.err;
}

TEST_F(CliRun, CrashIsRetriedThenFailedWithTheSignal) {
  const auto r = run_config(R"(
[pools.compute]
workers = 2
max_attempts = 2

[[jobs]]
id = "boom"
type = "crash"
payload = { signal = "SEGV" }

[[jobs]]
type = "echo"
payload = "fine"
repeat = 5
)");
  ASSERT_EQ(r.code, 1) << r.describe();
  EXPECT_CLEAN(r);
  const auto lines = results();
  ASSERT_EQ(lines.size(), 6u);
  EXPECT_EQ(count_status(lines, "ok"), 5u) << "the other jobs never notice";
  const auto* boom = find_id(lines, "boom");
  ASSERT_NE(boom, nullptr);
  EXPECT_EQ((*boom)["status"], "failed");
  EXPECT_EQ((*boom)["error"]["kind"], "crash");
  EXPECT_NE((*boom)["error"]["message"].get<std::string>().find("SIGSEGV"), std::string::npos) << boom->dump();
  EXPECT_EQ((*boom)["attempts"], 2);
  EXPECT_NE(r.err.find("SIGSEGV"), std::string::npos) << "restarts by cause in the summary:\n" << r.err;
}

TEST_F(CliRun, HangingJobIsStoppedByItsTimeout) {
  const auto r = run_config(R"(
[pools.compute]
workers = 1
max_attempts = 1
job_timeout = "200ms"
kill_grace = "100ms"

[[jobs]]
id = "stuck"
type = "hang"

[[jobs]]
id = "after"
type = "echo"
payload = "still served"
)");
  ASSERT_EQ(r.code, 1) << r.describe();
  EXPECT_CLEAN(r);
  const auto lines = results();
  ASSERT_EQ(lines.size(), 2u);
  const auto* stuck = find_id(lines, "stuck");
  ASSERT_NE(stuck, nullptr);
  EXPECT_EQ((*stuck)["error"]["kind"], "timeout");
  EXPECT_NE((*stuck)["error"]["message"].get<std::string>().find("job_timeout"), std::string::npos);
  EXPECT_EQ((*find_id(lines, "after"))["result"], "still served") << "the replacement worker runs the next job";
}

TEST_F(CliRun, JobOverTheMemoryLimitFailsWithKindMemory) {
  if (k_sanitized) GTEST_SKIP() << "memory_limit (RLIMIT_AS) cannot work under a sanitizer";
  const auto r = run_config(R"(
[pools.compute]
workers = 1
memory_limit = "128MiB"

[[jobs]]
id = "greedy"
type = "alloc"
payload = 512

[[jobs]]
id = "modest"
type = "alloc"
payload = 8
)");
  ASSERT_EQ(r.code, 1) << r.describe();
  EXPECT_CLEAN(r);
  const auto lines = results();
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ((*find_id(lines, "greedy"))["error"]["kind"], "memory");
  EXPECT_EQ((*find_id(lines, "modest"))["result"], "allocated 8 MiB");
}

TEST_F(CliRun, HandlerExceptionFailsTheJobAtOnce) {
  const auto r = run_config(R"(
[pools.compute]
workers = 1

[[jobs]]
id = "bad"
type = "fail"
payload = "no such customer"
)");
  ASSERT_EQ(r.code, 1) << r.describe();
  EXPECT_CLEAN(r);
  const auto lines = results();
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0]["error"]["kind"], "exception");
  EXPECT_EQ(lines[0]["error"]["message"], "no such customer");
  EXPECT_EQ(lines[0]["attempts"], 1) << "not retried without retry_on_error";
}

TEST_F(CliRun, RetryOnErrorRetriesAThrowingJob) {
  const auto r = run_config(R"(
[pools.compute]
workers = 1
retry_on_error = true
max_attempts = 3

[[jobs]]
id = "bad"
type = "fail"
payload = "flaky"
)");
  ASSERT_EQ(r.code, 1) << r.describe();
  const auto lines = results();
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0]["attempts"], 3);
}

TEST_F(CliRun, PoolThatGivesUpExitsThreeAndReportsItsJobsStopped) {
  // Two poison jobs: a job's repeated deaths cost only its own attempts, the first death
  // of each counts toward restart intensity.
  const auto r = run_config(R"(
[pools.fragile]
workers = 1
max_restarts = 1
restart_window = "30s"
max_attempts = 5

[[jobs]]
id = "poison"
type = "crash"
payload = { signal = "KILL" }

[[jobs]]
id = "poison-too"
type = "crash"
payload = { signal = "KILL" }

[[jobs]]
type = "sleep"
payload = 1
repeat = 20
)");
  ASSERT_EQ(r.code, 3) << r.describe();
  EXPECT_CLEAN(r);
  const auto lines = results();
  EXPECT_EQ(lines.size(), 22u) << "every job still gets exactly one line";
  EXPECT_GE(count_kind(lines, "stopped"), 1u);
  EXPECT_NE(r.err.find("gave up"), std::string::npos) << r.err;
}

TEST_F(CliRun, CommandPoolRunsAnExternalWorker) {
  const auto r = run_config(std::string(R"(
[pools.external]
workers = 2
max_attempts = 1
command = [")") + RINGMASTER_TEST_WORKER + R"("]

[[jobs]]
id = "e"
type = "echo"
payload = "via exec"

[[jobs]]
id = "dies"
type = "exit"
payload = 3

[[jobs]]
id = "unknown"
type = "no-such-type"
)");
  ASSERT_EQ(r.code, 1) << r.describe();
  EXPECT_CLEAN(r);
  const auto lines = results();
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ((*find_id(lines, "e"))["result"], "via exec");
  EXPECT_EQ((*find_id(lines, "dies"))["error"]["kind"], "crash");
  EXPECT_NE((*find_id(lines, "dies"))["error"]["message"].get<std::string>().find("exit code 3"), std::string::npos);
  EXPECT_EQ((*find_id(lines, "unknown"))["error"]["kind"], "rejected");
}

TEST_F(CliRun, RelativeCommandIsFoundNextToTheConfig) {
  fs::create_directories(dir / "conf" / "bin");
  fs::copy_file(RINGMASTER_TEST_WORKER, dir / "conf" / "bin" / "worker");
  dir.write("conf/config.toml", R"(
[pools.w]
workers = 1
command = ["./bin/worker"]

[[jobs]]
type = "echo"
payload = "found"
)");
  fs::create_directories(dir / "elsewhere");
  cli_options o;
  o.cwd = dir / "elsewhere";
  const auto r = run_cli({"run", (dir / "conf" / "config.toml").string(), "--no-progress"}, dir, o);
  ASSERT_EQ(r.code, 0) << r.describe();
  EXPECT_CLEAN(r);
  const auto lines = parse_lines(r.out);
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0]["result"], "found");
}

TEST_F(CliRun, JobsFromStdinStartWhileTheInputIsStillOpen) {
  dir.write("config.toml", "[pools.compute]\nworkers = 1\n");
  cli_options o;
  o.stdin_pipe = true;
  o.timeout = 60s;
  cli_process p({"run", "config.toml", "--jobs", "-", "--no-progress"}, dir, o);
  ASSERT_TRUE(p.write_stdin("{\"id\": \"first\", \"type\": \"echo\", \"payload\": 1}\n"));
  // The first result arrives while stdin is still open: jobs are streamed, not batched.
  EXPECT_TRUE(eventually([&] { return p.out_so_far().find("\"first\"") != std::string::npos; }, 20s))
      << "no result before the input ended";
  ASSERT_TRUE(p.write_stdin("{\"id\": \"second\", \"type\": \"echo\", \"payload\": 2}\n"));
  p.close_stdin();
  const auto r = p.wait();
  ASSERT_EQ(r.code, 0) << r.describe();
  EXPECT_CLEAN(r);
  const auto lines = parse_lines(r.out);
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0]["id"], "first");
  EXPECT_EQ(lines[1]["id"], "second");
}

TEST_F(CliRun, ResumeCutsAPartialLastLineAndAppends) {
  dir.write("results.jsonl",
            "{\"id\": \"a\", \"status\": \"ok\", \"result\": \"1\", \"attempts\": 1, \"worker\": 0, \"ms\": 1.0}\n"
            "{\"id\": \"b\", \"status\": \"failed\", \"error\": {\"kind\": \"stopped\", \"message\": \"x\"}, \"attempts\": 0}\n"
            "{\"id\": \"c\", \"status\": \"o");  // a run killed mid-line
  dir.write("jobs.jsonl",
            "{\"id\": \"a\", \"type\": \"echo\", \"payload\": \"A\"}\n"
            "{\"id\": \"b\", \"type\": \"echo\", \"payload\": \"B\"}\n"
            "{\"id\": \"c\", \"type\": \"echo\", \"payload\": \"C\"}\n");
  const auto r = run_config("[pools.compute]\nworkers = 1\n", {"--jobs", "jobs.jsonl", "--resume"});
  ASSERT_EQ(r.code, 0) << r.describe();
  const auto lines = results();  // every line parses: the partial one is gone
  ASSERT_EQ(lines.size(), 4u);
  EXPECT_EQ(lines[0]["id"], "a");
  EXPECT_EQ(lines[1]["id"], "b");
  std::vector<std::string> appended{lines[2]["id"], lines[3]["id"]};
  std::sort(appended.begin(), appended.end());
  EXPECT_EQ(appended, (std::vector<std::string>{"b", "c"})) << "a was ok: skipped";
  EXPECT_NE(r.err.find("1 job skipped"), std::string::npos) << r.err;
}

TEST_F(CliRun, DemoRunsWithItsExpectedFailures) {
  if (k_sanitized) GTEST_SKIP() << "the demo sets a memory_limit (RLIMIT_AS), which cannot work under a sanitizer";
  const auto r = run_cli({"run", std::string(RINGMASTER_SOURCE_DIR) + "/examples/demo.toml", "--results",
                          "results.jsonl", "--no-progress"},
                         dir, {.timeout = 120s});
  ASSERT_EQ(r.code, 1) << "the demo's five misbehaving jobs fail\n" << r.describe();
  EXPECT_CLEAN(r);
  const auto lines = results();
  EXPECT_EQ(lines.size(), 3005u);
  EXPECT_EQ(count_status(lines, "ok"), 3000u);
  EXPECT_EQ(count_kind(lines, "crash"), 2u);
  EXPECT_EQ(count_kind(lines, "timeout"), 1u);
  EXPECT_EQ(count_kind(lines, "memory"), 1u);
  EXPECT_EQ(count_kind(lines, "exception"), 1u);
  EXPECT_LT(r.seconds, 60) << "the demo must stay well under a minute";
}

TEST_F(CliRun, MillionJobsRunInBoundedMemory) {
  {
    std::string block;
    for (int i = 0; i < 10'000; ++i) block += "{\"type\": \"echo\", \"payload\": \"x\"}\n";
    std::FILE* f = std::fopen((dir / "million.jsonl").c_str(), "wb");
    ASSERT_NE(f, nullptr);
    for (int i = 0; i < 100; ++i) std::fwrite(block.data(), 1, block.size(), f);
    std::fclose(f);
  }
  const auto r = run_config("[pools.compute]\nworkers = 2\n", {"--jobs", "million.jsonl"}, {.timeout = 150s});
  ASSERT_EQ(r.code, 0) << r.describe();
  EXPECT_CLEAN(r);
  const std::string text = read_file(dir / "results.jsonl");
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 1'000'000);
  EXPECT_EQ(text.find("\"failed\""), std::string::npos);
  // The 32 MB of input and 80 MB of results never sit in memory: jobs are streamed in
  // (submission blocks at max_pending) and results streamed out.
  EXPECT_LT(r.max_rss_kib, (k_sanitized ? 1024 : 200) * 1024) << "peak RSS " << r.max_rss_kib << " KiB";
  std::printf("[ info ] 1,000,000 echo jobs in %.2f s, peak RSS %ld KiB\n", r.seconds, r.max_rss_kib);
}

TEST_F(CliRun, HelpVersionAndUsageErrors) {
  auto r = run_cli({"--help"}, dir);
  EXPECT_EQ(r.code, 0);
  EXPECT_NE(r.out.find("run"), std::string::npos) << r.out;
  r = run_cli({"run", "--help"}, dir);
  EXPECT_EQ(r.code, 0);
  for (const char* opt : {"--jobs", "--results", "--workers", "--resume", "--resume-failed", "--keep-order",
                          "--no-progress", "--log-level", "4 results could not"})
    EXPECT_NE(r.out.find(opt), std::string::npos) << opt << "\n" << r.out;
  r = run_cli({"--version"}, dir);
  EXPECT_EQ(r.code, 0);
  EXPECT_NE(r.out.find("ringmaster 0."), std::string::npos) << r.out;

  dir.write("ok.toml", "[pools.p]\nworkers = 1\n");
  const std::vector<std::vector<std::string>> bad{
      {},
      {"run"},
      {"walk", "ok.toml"},
      {"run", "ok.toml", "--bogus"},
      {"run", "ok.toml", "--resume"},                       // --resume needs a results file
      {"run", "ok.toml", "--log-level", "loud"},
      {"run", "ok.toml", "--workers", "5000"},
      {"run", "ok.toml", "--jobs", "missing.jsonl", "--results", "out.jsonl"},
      {"run", "ok.toml", "--jobs", "ok.toml", "--results", "ok.toml"},  // would truncate its own input
  };
  for (const auto& args : bad) {
    r = run_cli(args, dir);
    std::string joined;
    for (const auto& a : args) joined += a + " ";
    EXPECT_EQ(r.code, 2) << joined << "\n" << r.describe();
    EXPECT_TRUE(r.left_behind.empty());
  }
  EXPECT_FALSE(fs::exists(dir / "out.jsonl")) << "nothing is created when the usage is wrong";
  EXPECT_EQ(read_file(dir / "ok.toml"), "[pools.p]\nworkers = 1\n");
}

TEST_F(CliRun, WorkersOptionOverridesTheConfig) {
  dir.write("jobs.jsonl", "{\"type\": \"sleep\", \"payload\": 200}\n{\"type\": \"sleep\", \"payload\": 200}\n"
                          "{\"type\": \"sleep\", \"payload\": 200}\n");
  const auto r = run_config("[pools.compute]\nworkers = 1\n", {"--jobs", "jobs.jsonl", "--workers", "3"});
  ASSERT_EQ(r.code, 0) << r.describe();
  EXPECT_NE(r.err.find("3 workers"), std::string::npos) << r.err;
}

// On a terminal, stderr shows a progress bar redrawn in place; elsewhere it never does.
TEST_F(CliRun, ProgressBarOnlyOnATerminal) {
  dir.write("config.toml", R"(
[pools.compute]
workers = 2
[[jobs]]
type = "sleep"
payload = 20
repeat = 60
)");
  int master = -1;
  const pid_t pid = ::forkpty(&master, nullptr, nullptr, nullptr);
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    // stdout away from the terminal (results), stderr on it (progress).
    const std::string out = (dir / "pty-results.jsonl").string();
    if (::chdir(dir.path().c_str()) != 0) ::_exit(126);
    ::execl(RINGMASTER_BIN, RINGMASTER_BIN, "run", "config.toml", "--results", out.c_str(), "--log-level", "warn",
            static_cast<char*>(nullptr));
    ::_exit(127);
  }
  std::string tty;
  std::thread reader([&] {
    char buf[4096];
    for (ssize_t n; (n = ::read(master, buf, sizeof buf)) > 0;) tty.append(buf, static_cast<std::size_t>(n));
  });
  int status = 0;
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  while (::waitpid(pid, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() > deadline) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      ADD_FAILURE() << "timed out";
      break;
    }
    std::this_thread::sleep_for(10ms);
  }
  reader.join();  // the terminal's last holder is gone: read() fails with EIO
  ::close(master);
  EXPECT_TRUE(reap_orphans(10s).empty());
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << tty;
  EXPECT_NE(tty.find("\r\033[K["), std::string::npos) << "a bar redrawn in place:\n" << tty;
  EXPECT_NE(tty.find("ETA"), std::string::npos) << tty;
  EXPECT_NE(tty.find("60 jobs in"), std::string::npos) << "then the summary:\n" << tty;

  const auto r = run_cli({"run", "config.toml", "--results", "plain.jsonl"}, dir);
  ASSERT_EQ(r.code, 0) << r.describe();
  EXPECT_EQ(r.err.find('\r'), std::string::npos) << "no bar when stderr is not a terminal:\n" << r.err;
}

// Every run drains once its input is read: routine, so said at debug only, and as what
// it means.
TEST_F(CliRun, DrainingIsSaidAtDebugAsAllInputRead) {
  const std::string config = "[pools.compute]\nworkers = 1\n[[jobs]]\ntype = \"echo\"\npayload = 1\n";
  auto r = run_config(config);
  ASSERT_EQ(r.code, 0) << r.describe();
  EXPECT_EQ(r.err.find("draining"), std::string::npos) << "not at info:\n" << r.err;
  r = run_config(config, {"--log-level", "debug"});
  ASSERT_EQ(r.code, 0) << r.describe();
  EXPECT_NE(r.err.find("[debug] all input has been read: draining"), std::string::npos) << r.err;
}

// Results that cannot be written are not counted as done: the summary counts the lines
// the file holds, says how many are missing and why, and the exit status is its own.
TEST_F(CliRun, ResultsThatCannotBeWrittenAreCountedAsLostWithTheirOwnExitStatus) {
  dir.write("config.toml", "[pools.compute]\nworkers = 2\n[[jobs]]\ntype = \"echo\"\npayload = 1\nrepeat = 500\n");
  const auto r = run_cli({"run", "config.toml", "--results", "/dev/full", "--no-progress"}, dir);
  EXPECT_EQ(r.code, 4) << r.describe();
  EXPECT_CLEAN(r);
  EXPECT_NE(r.err.find("cannot write results: No space left on device"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(" 0 ok, 0 failed"), std::string::npos) << "no line reached the file\n" << r.err;
  EXPECT_EQ(r.err.find(" 500 ok"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("could not be written (/dev/full: cannot write results: No space left on device)"),
            std::string::npos)
      << r.err;
}

// A reader that goes away (`| head`): the run stops, says how many results it could not
// write, and exits with the output status.
TEST_F(CliRun, ABrokenPipeStopsTheRunAndSaysHowManyResultsAreLost) {
  dir.write("config.toml", "[pools.compute]\nworkers = 1\n[[jobs]]\ntype = \"sleep\"\npayload = 1\nrepeat = 5000\n");
  // sh -c SCRIPT ringmaster ARGS...: $0 is ringmaster. Its status goes to stderr.
  const auto r = run_cli({"run", "config.toml", "--no-progress"}, dir,
                         {.run_under = {"sh", "-c", "{ \"$0\" \"$@\"; echo \"status=$?\" >&2; } | head -c 100 >/dev/null"}});
  EXPECT_CLEAN(r);
  EXPECT_NE(r.err.find("status=4"), std::string::npos) << r.describe();
  EXPECT_NE(r.err.find("stdout: cannot write results: Broken pipe"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("could not be written (stdout: cannot write results: Broken pipe)"), std::string::npos)
      << r.err;
}

TEST_F(CliRun, KeepOrderWritesResultLinesInTheOrderOfTheJobLines) {
  std::string jobs = "{\"id\": \"slow\", \"type\": \"sleep\", \"payload\": 300}\n";
  for (int i = 1; i <= 50; ++i) jobs += "{\"id\": " + std::to_string(i) + ", \"type\": \"echo\", \"payload\": 1}\n";
  jobs += "not json\n";
  dir.write("jobs.jsonl", jobs);
  const auto r = run_config("[pools.compute]\nworkers = 2\n", {"--jobs", "jobs.jsonl", "--keep-order"});
  ASSERT_EQ(r.code, 1) << "one rejected line\n" << r.describe();
  EXPECT_CLEAN(r);
  const auto lines = results();
  ASSERT_EQ(lines.size(), 52u);
  EXPECT_EQ(lines[0]["id"], "slow") << "the slow first job's line comes first, though 50 finished before it";
  for (int i = 1; i <= 50; ++i) EXPECT_EQ(lines[static_cast<std::size_t>(i)]["id"], i);
  EXPECT_EQ(lines[51]["error"]["kind"], "rejected");
}

TEST_F(CliRun, ResultsFinalWritesEachIdsLastLine) {
  dir.write("results.jsonl",
            "{\"id\": \"a\", \"status\": \"failed\", \"error\": {\"kind\": \"crash\", \"message\": \"x\"}, \"attempts\": 3}\n"
            "{\"id\": \"b\", \"status\": \"ok\", \"result\": \"B\", \"attempts\": 1}\n"
            "{\"id\": 7, \"status\": \"failed\", \"error\": {\"kind\": \"stopped\", \"message\": \"\"}, \"attempts\": 0}\n"
            "not a result line\n"
            "{\"id\": \"a\", \"status\": \"ok\", \"result\": \"A\", \"attempts\": 1}\n"
            "{\"id\": 7, \"status\": \"failed\", \"error\": {\"kind\": \"crash\", \"message\": \"y\"}, \"attempts\": 3}\n"
            "{\"id\": \"c\", \"status\": \"o");  // cut short by a kill
  const auto r = run_cli({"results", "--final", "results.jsonl"}, dir);
  ASSERT_EQ(r.code, 0) << r.describe();
  EXPECT_EQ(r.out,
            "{\"id\": \"b\", \"status\": \"ok\", \"result\": \"B\", \"attempts\": 1}\n"
            "{\"id\": \"a\", \"status\": \"ok\", \"result\": \"A\", \"attempts\": 1}\n"
            "{\"id\": 7, \"status\": \"failed\", \"error\": {\"kind\": \"crash\", \"message\": \"y\"}, \"attempts\": 3}\n");
  EXPECT_NE(r.err.find("results.jsonl: 1 line(s) that are not result lines left out"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("partial last line"), std::string::npos) << r.err;
  EXPECT_EQ(run_cli({"results", "--final", "missing.jsonl"}, dir).code, 2);
}

TEST_F(CliRun, ResumeFailedRerunsOnlyTheJobsWhoseLastLineFailed) {
  dir.write("results.jsonl",
            "{\"id\": \"a\", \"status\": \"ok\", \"result\": \"A\", \"attempts\": 1}\n"
            "{\"id\": \"b\", \"status\": \"failed\", \"error\": {\"kind\": \"crash\", \"message\": \"x\"}, \"attempts\": 3}\n");
  dir.write("jobs.jsonl",
            "{\"id\": \"a\", \"type\": \"echo\", \"payload\": \"A\"}\n"
            "{\"id\": \"b\", \"type\": \"echo\", \"payload\": \"B\"}\n"
            "{\"id\": \"c\", \"type\": \"echo\", \"payload\": \"C\"}\n");
  auto r = run_config("[pools.compute]\nworkers = 1\n", {"--jobs", "jobs.jsonl", "--resume-failed"});
  ASSERT_EQ(r.code, 0) << r.describe();
  auto lines = results();
  ASSERT_EQ(lines.size(), 3u) << "only b ran again";
  EXPECT_EQ(lines[2]["id"], "b");
  EXPECT_EQ(lines[2]["status"], "ok");
  EXPECT_NE(r.err.find("1 job skipped: already ok in results.jsonl"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("1 job skipped: no failed line in results.jsonl (--resume-failed)"), std::string::npos)
      << r.err;
  // --resume then runs what was never reached.
  r = run_config("[pools.compute]\nworkers = 1\n", {"--jobs", "jobs.jsonl", "--resume"});
  ASSERT_EQ(r.code, 0) << r.describe();
  lines = results();
  ASSERT_EQ(lines.size(), 4u);
  EXPECT_EQ(lines[3]["id"], "c");
  EXPECT_EQ(run_config("[pools.compute]\nworkers = 1\n", {"--resume", "--resume-failed"}).code, 2);
}

// Bytes that are not UTF-8 go in and come back whole, as base64, not as U+FFFD.
TEST_F(CliRun, BinaryPayloadsAndResultsTravelAsBase64) {
  dir.write("jobs.jsonl",
            "{\"id\": \"bin\", \"type\": \"echo\", \"payload_b64\": \"/wABAv4=\"}\n"
            "{\"id\": \"text\", \"type\": \"echo\", \"payload_b64\": \"aGk=\"}\n");
  const auto r = run_config("[pools.compute]\nworkers = 1\n", {"--jobs", "jobs.jsonl"});
  ASSERT_EQ(r.code, 0) << r.describe();
  const auto lines = results();
  ASSERT_NE(find_id(lines, "bin"), nullptr);
  EXPECT_EQ((*find_id(lines, "bin"))["result_b64"], "/wABAv4=") << find_id(lines, "bin")->dump();
  EXPECT_FALSE(find_id(lines, "bin")->contains("result"));
  ASSERT_NE(find_id(lines, "text"), nullptr);
  EXPECT_EQ((*find_id(lines, "text"))["result"], "hi") << "valid UTF-8 comes back as text";
}

}  // namespace
}  // namespace ringmaster::test
