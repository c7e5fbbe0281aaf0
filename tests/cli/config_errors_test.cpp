// Each class of bad config, through the real binary: exit status 2, a message naming the
// file, the line and the full dotted key and saying what was expected, and nothing
// started or created (no results file, no process left).
#include <gtest/gtest.h>
#include <sys/stat.h>

#include "cli_harness.hpp"

namespace ringmaster::test {
namespace {

struct bad_config {
  const char* name;
  std::string toml;
  int line;              // 0: the message names no line (the file itself is the problem)
  std::string key;       // the dotted key the message must name
  std::string fragment;  // and something it must say
};

void PrintTo(const bad_config& c, std::ostream* os) { *os << c.name; }

class CliBadConfig : public testing::TestWithParam<bad_config> {
 protected:
  temp_dir dir;
};

TEST_P(CliBadConfig, ExitsTwoNamingFileLineAndKey) {
  const bad_config& c = GetParam();
  dir.write("not-executable", "#!/bin/sh\n");
  ::chmod((dir / "not-executable").c_str(), 0644);
  dir.write("config.toml", c.toml);
  const auto r = run_cli({"run", "config.toml", "--results", "results.jsonl", "--no-progress"}, dir);
  EXPECT_EQ(r.code, 2) << r.describe();
  std::string where = "config.toml:";
  if (c.line > 0) where += std::to_string(c.line) + ":";
  if (!c.key.empty()) where += " " + c.key + ": expected ";
  EXPECT_NE(r.err.find(where), std::string::npos) << "expected \"" << where << "\" in:\n" << r.err;
  EXPECT_NE(r.err.find(c.fragment), std::string::npos) << "expected \"" << c.fragment << "\" in:\n" << r.err;
  EXPECT_FALSE(fs::exists(dir / "results.jsonl")) << "nothing may be created for a bad config";
  EXPECT_TRUE(r.left_behind.empty()) << "nothing may be started for a bad config";
  EXPECT_EQ(r.out, "");
}

const bad_config k_bad_configs[] = {
    {"UnknownPoolKey", "[pools.compute]\nworkers = 2\nwrokers = 3\n", 3, "pools.compute.wrokers",
     "got unknown key \"wrokers\""},
    {"UnknownTopLevelKey", "[pool.compute]\nworkers = 2\n", 1, "pool", "one of the keys supervisor, pools, jobs"},
    {"UnknownSupervisorKey", "[supervisor]\ntimeout = \"5s\"\n[pools.a]\n", 2, "supervisor.timeout", "unknown key"},
    {"UnknownJobKey", "[pools.a]\n[[jobs]]\ntype = \"echo\"\npaylod = 1\n", 4, "jobs[0].paylod", "unknown key"},
    {"WrongType", "[pools.compute]\n\nworkers = \"two\"\n", 3, "pools.compute.workers",
     "expected an integer from 0 to 1024 (0: one per core), got string \"two\""},
    {"WrongTypeBoolean", "[pools.compute]\nretry_on_error = \"yes\"\n", 2, "pools.compute.retry_on_error",
     "expected true or false"},
    {"BadDuration", "[pools.compute]\njob_timeout = \"30 seconds\"\n", 2, "pools.compute.job_timeout",
     "got string \"30 seconds\""},
    {"DurationWithoutUnit", "[supervisor]\nshutdown_timeout = \"5\"\n[pools.a]\n", 2, "supervisor.shutdown_timeout",
     "a duration such as"},
    {"DurationAsNumber", "[pools.a]\nrestart_window = 10\n", 2, "pools.a.restart_window", "got integer 10"},
    {"BadSize", "[pools.compute]\nmemory_limit = \"512 megs\"\n", 2, "pools.compute.memory_limit",
     "a size such as \"64KiB\""},
    {"SizeOutOfRange", "[pools.compute]\nmax_message = \"1GiB\"\n", 2, "pools.compute.max_message", "to 64MiB"},
    {"OutOfRangeNumber", "[pools.compute]\nworkers = 5000\n", 2, "pools.compute.workers", "got integer 5000"},
    {"ZeroAttempts", "[pools.compute]\nmax_attempts = 0\n", 2, "pools.compute.max_attempts", "from 1 to 1000"},
    {"UnknownRestartType", "[pools.compute]\nrestart = \"sometimes\"\n", 2, "pools.compute.restart",
     "one of \"permanent\", \"transient\", \"temporary\""},
    {"UnknownStrategy", "[supervisor]\nstrategy = \"all_for_one\"\n[pools.a]\n", 2, "supervisor.strategy",
     "\"rest_for_one\""},
    {"BadLogLevel", "[supervisor]\nlog_level = \"loud\"\n[pools.a]\n", 2, "supervisor.log_level", "\"warn\""},
    {"JobNamesMissingPool", "[pools.a]\n[pools.b]\n[[jobs]]\npool = \"c\"\ntype = \"echo\"\n", 4, "jobs[0].pool",
     "the name of a pool (a, b), got string \"c\""},
    {"JobWithoutPoolAmongSeveral", "[pools.a]\n[pools.b]\n\n[[jobs]]\ntype = \"echo\"\n", 4, "jobs[0].pool",
     "required when there is more than one pool"},
    {"JobWithoutType", "[pools.a]\n[[jobs]]\npayload = 1\n", 2, "jobs[0].type", "got nothing"},
    {"UnknownJobTypeForBuiltinPool", "[pools.a]\n[[jobs]]\ntype = \"prime\"\n", 3, "jobs[0].type",
     "a job type of the built-in handlers (alloc, crash, echo, fail, hang, primes, sleep), got string \"prime\""},
    {"OutOfRangeRepeat", "[pools.a]\n[[jobs]]\ntype = \"echo\"\nrepeat = 0\n", 4, "jobs[0].repeat", "from 1 to"},
    {"CommandNotFound", "[pools.ext]\ncommand = [\"./no_such_worker\"]\n", 2, "pools.ext.command[0]",
     "No such file or directory"},
    {"CommandNotExecutable", "[pools.ext]\ncommand = [\"./not-executable\"]\n", 2, "pools.ext.command[0]",
     "Permission denied"},
    {"CommandNotInPath", "[pools.ext]\ncommand = [\"no-such-ringmaster-worker\"]\n", 2, "pools.ext.command[0]",
     "not found in PATH"},
    {"UnknownProtocol", "[pools.p]\ncommand = [\"cat\"]\nprotocol = \"json\"\n", 3, "pools.p.protocol",
     "one of \"ringmaster\", \"jsonl\", \"lines\", \"exec\""},
    {"ProtocolWithoutCommand", "[pools.p]\nprotocol = \"lines\"\n", 2, "pools.p.protocol", "got no command"},
    {"BracesOutsideExec", "[pools.p]\ncommand = [\"echo\", \"<{}>\"]\nprotocol = \"lines\"\n", 2,
     "pools.p.command[1]", "only protocol = \"exec\" replaces {}"},
    {"ProgramNotFound", "[pools.p]\ncommand = [\"no-such-program-for-jsonl\"]\nprotocol = \"jsonl\"\n", 2,
     "pools.p.command[0]", "not found in PATH"},
    {"ProgramNotExecutable", "[pools.p]\nprotocol = \"exec\"\ncommand = [\"./not-executable\", \"{}\"]\n", 3,
     "pools.p.command[0]", "Permission denied"},
    {"CommandNotAnArray", "[pools.ext]\ncommand = \"./worker --flag\"\n", 2, "pools.ext.command",
     "a non-empty array of strings"},
    {"BadPoolName", "[pools.\"my pool\"]\nworkers = 1\n", 1, "pools.\"my pool\"", "a pool name of 1 to 128 characters"},
    {"NoPools", "[supervisor]\nlog_level = \"info\"\n", 1, "pools", "at least one pool table"},
    {"BackoffMaxBelowInitial", "[pools.a]\nbackoff_initial = \"2s\"\nbackoff_max = \"1s\"\n", 3, "pools.a.backoff_max",
     "at least backoff_initial (2s)"},
    {"TomlSyntaxError", "[pools.a]\nworkers = = 2\n", 2, "", "expected valid TOML"},
};

INSTANTIATE_TEST_SUITE_P(Cli, CliBadConfig, testing::ValuesIn(k_bad_configs),
                         [](const testing::TestParamInfo<bad_config>& i) { return std::string(i.param.name); });

TEST(CliBadConfigFile, EveryProblemIsReportedNotJustTheFirst) {
  temp_dir dir;
  dir.write("config.toml", "[pools.a]\nworkers = -1\nrestart = \"never\"\n[[jobs]]\npool = \"b\"\ntype = \"echo\"\n");
  const auto r = run_cli({"run", "config.toml", "--no-progress"}, dir);
  EXPECT_EQ(r.code, 2) << r.describe();
  EXPECT_NE(r.err.find("config.toml:2: pools.a.workers: expected"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("config.toml:3: pools.a.restart: expected"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("config.toml:5: jobs[0].pool: expected"), std::string::npos) << r.err;
}

TEST(CliBadConfigFile, MissingConfigFileIsAUsageError) {
  temp_dir dir;
  const auto r = run_cli({"run", "nowhere.toml", "--no-progress"}, dir);
  EXPECT_EQ(r.code, 2) << r.describe();
  EXPECT_NE(r.err.find("nowhere.toml: expected a readable config file, got No such file or directory"),
            std::string::npos)
      << r.err;
}

TEST(CliBadConfigFile, EndlessConfigStreamIsAUsageErrorNamingTheLimit) {
  temp_dir dir;
  const auto r = run_cli({"run", "/dev/zero", "--results", "results.jsonl", "--no-progress"}, dir);
  EXPECT_EQ(r.code, 2) << r.describe();
  EXPECT_NE(r.err.find("/dev/zero: expected a config file of at most 16 MiB"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dir / "results.jsonl"));
}

}  // namespace
}  // namespace ringmaster::test
