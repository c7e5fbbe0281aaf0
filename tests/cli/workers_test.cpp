// `ringmaster run` and its workers: what a handler prints stays out of the results (stdout
// with `--results -`) and reaches the log labelled; the documented maximum of 1,024
// workers runs; a low RLIMIT_NOFILE (prlimit) runs a small pool and refuses a large one
// naming the limit. Every run is bounded in time and checked to leave no process behind.
#include <gtest/gtest.h>
#include <sys/resource.h>

#include <string>
#include <vector>

#include "cli_harness.hpp"

namespace ringmaster::test {
namespace {

class CliWorkers : public testing::Test {
 protected:
  temp_dir dir;

  cli_result run_config(const std::string& toml, std::vector<std::string> extra = {}, cli_options options = {}) {
    dir.write("config.toml", toml);
    std::vector<std::string> args{"run", "config.toml", "--no-progress"};
    args.insert(args.end(), extra.begin(), extra.end());
    return run_cli(args, dir, options);
  }
  // 20 echo jobs for a pool of `workers`, run with RLIMIT_NOFILE 64 (soft and hard).
  cli_result run_under_ulimit_64(const std::string& pool, int workers) {
    return run_config("[pools." + pool + "]\nworkers = " + std::to_string(workers) +
                          "\n\n[[jobs]]\ntype = \"echo\"\npayload = \"x\"\nrepeat = 20\n",
                      {"--results", "results.jsonl"}, {.run_under = {"prlimit", "--nofile=64", "--"}});
  }
};

TEST_F(CliWorkers, HandlerOutputGoesToTheLogNotToTheResultsOnStdout) {
  const auto r = run_config(std::string(R"(
[pools.chatty]
workers = 1
max_attempts = 1
command = [")") + RINGMASTER_TEST_WORKER + R"("]

[[jobs]]
id = "talk"
type = "print"
payload = "hello there"

[[jobs]]
id = "dies"
type = "shout"
payload = "goodbye"
)",
                            {"--results", "-"});
  ASSERT_EQ(r.code, 1) << r.describe();  // one job failed
  EXPECT_CLEAN(r);
  // Every line of stdout is a result line (parse_lines fails the test on any other).
  const auto lines = parse_lines(r.out);
  ASSERT_EQ(lines.size(), 2u) << r.out;
  EXPECT_EQ((*find_id(lines, "talk"))["result"], "printed");
  EXPECT_EQ(r.out.find("out: hello there"), std::string::npos) << r.out;
  // Both streams reach the log, each line labelled with pool, slot, pid and job.
  EXPECT_NE(r.err.find("[worker chatty/0 pid "), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("] [stdout] [job talk] out: hello there\n"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("] [stderr] [job talk] err: hello there\n"), std::string::npos) << r.err;
  // A worker that dies leaves the end of its stderr in its job's failure.
  const auto& dies = *find_id(lines, "dies");
  EXPECT_EQ(dies["error"]["kind"], "crash");
  EXPECT_NE(dies["error"]["message"].get<std::string>().find("last words: goodbye"), std::string::npos) << dies;
}

TEST_F(CliWorkers, ThousandTwentyFourWorkersRunAllJobs) {
  rlimit nofile{};
  ::getrlimit(RLIMIT_NOFILE, &nofile);
  if (nofile.rlim_max < 3200) GTEST_SKIP() << "RLIMIT_NOFILE's hard limit " << nofile.rlim_max << " is below what 1,024 workers need";
  // A small max_message keeps each worker's rings (reserved up front) at 0.5 MiB.
  std::string jobs;
  for (int i = 0; i < 2048; ++i) jobs += R"({"type": "echo", "payload": )" + std::to_string(i) + "}\n";
  dir.write("jobs.jsonl", jobs);
  const auto r = run_config(R"(
[pools.wide]
max_message = "4KiB"
start_timeout = "120s"
)",
                            {"--workers", "1024", "--jobs", "jobs.jsonl", "--results", "results.jsonl"},
                            {.timeout = std::chrono::seconds(150)});
  ASSERT_EQ(r.code, 0) << r.describe();
  EXPECT_CLEAN(r);
  const auto lines = parse_lines(read_file(dir / "results.jsonl"));
  EXPECT_EQ(lines.size(), 2048u);
  EXPECT_EQ(count_status(lines, "ok"), 2048u);
}

TEST_F(CliWorkers, SmallPoolRunsUnderUlimitOf64Descriptors) {
  const auto r = run_under_ulimit_64("small", 4);
  ASSERT_EQ(r.code, 0) << r.describe();
  EXPECT_CLEAN(r);
  EXPECT_EQ(count_status(parse_lines(read_file(dir / "results.jsonl")), "ok"), 20u);
}

TEST_F(CliWorkers, PoolTooLargeForUlimitIsRefusedNamingTheLimit) {
  const auto r = run_under_ulimit_64("big", 200);
  EXPECT_NE(r.code, 0) << r.describe();
  EXPECT_CLEAN(r);
  EXPECT_NE(r.err.find("RLIMIT_NOFILE (ulimit -n) is 64"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("'big'"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("Connection reset"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace ringmaster::test
