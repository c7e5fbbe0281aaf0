#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <ringmaster/cli/config.hpp>
#include <ringmaster/cli/jsonl.hpp>

namespace ringmaster::cli {
namespace {

namespace fs = std::filesystem;

run_config parse(const std::string& text, const fs::path& base = "/nonexistent", std::string_view path = "") {
  return parse_config(text, "test.toml", base, path);
}

// The problems a config has, as the user would read them.
std::vector<std::string> problems(const std::string& text, const fs::path& base = "/nonexistent",
                                  std::string_view path = "") {
  try {
    (void)parse(text, base, path);
  } catch (const config_error& e) {
    return e.problems();
  }
  return {};
}

std::string only_problem(const std::string& text) {
  const auto p = problems(text);
  EXPECT_EQ(p.size(), 1u) << testing::PrintToString(p);
  return p.empty() ? std::string() : p.front();
}

TEST(CliConfig, TheDesignExampleParsesToTheLibraryOptions) {
  const auto c = parse(R"(
[supervisor]
log_level = "info"
shutdown_timeout = "5s"
strategy = "rest_for_one"

[pools.compute]
workers = 2
restart = "transient"
max_restarts = 10
restart_window = "10s"
max_attempts = 3
retry_on_error = true
job_timeout = "30s"
kill_grace = "250ms"
memory_limit = "512MiB"
max_jobs_per_worker = 100
max_message = "1MiB"
max_pending = 1000
prefetch = 4
backoff_initial = "20ms"
backoff_max = "2s"
stable_after = "3s"

[[jobs]]
pool = "compute"
type = "primes"
payload = 1000000
repeat = 10
)");
  EXPECT_EQ(c.path, "test.toml");
  EXPECT_EQ(c.log_level, "info");
  EXPECT_EQ(c.supervisor.shutdown_timeout, std::chrono::seconds(5));
  EXPECT_EQ(c.supervisor.strategy, restart_strategy::rest_for_one);
  ASSERT_EQ(c.pools.size(), 1u);
  const pool_options& o = c.pools[0].options;
  EXPECT_EQ(c.pools[0].name, "compute");
  EXPECT_TRUE(c.pools[0].builtin());
  EXPECT_FALSE(c.pools[0].workers_defaulted);
  EXPECT_EQ(o.workers, 2u);
  EXPECT_EQ(o.restart, restart_type::transient);
  EXPECT_EQ(o.max_restarts, 10u);
  EXPECT_EQ(o.restart_window, std::chrono::seconds(10));
  EXPECT_EQ(o.max_attempts, 3u);
  EXPECT_TRUE(o.retry_on_error);
  EXPECT_EQ(o.job_timeout, std::chrono::seconds(30));
  EXPECT_EQ(o.kill_grace, std::chrono::milliseconds(250));
  EXPECT_EQ(o.memory_limit, std::size_t{512} << 20);
  EXPECT_EQ(o.max_jobs_per_worker, 100u);
  EXPECT_EQ(o.max_message, std::size_t{1} << 20);
  EXPECT_EQ(o.max_pending, 1000u);
  EXPECT_EQ(o.prefetch, 4u);
  EXPECT_EQ(o.backoff_initial, std::chrono::milliseconds(20));
  EXPECT_EQ(o.backoff_max, std::chrono::seconds(2));
  EXPECT_EQ(o.stable_after, std::chrono::seconds(3));
  ASSERT_EQ(c.jobs.size(), 1u);
  EXPECT_EQ(c.jobs[0].pool, "compute");
  EXPECT_EQ(c.jobs[0].type, "primes");
  EXPECT_EQ(c.jobs[0].payload, "1000000");
  EXPECT_EQ(c.jobs[0].repeat, 10u);
  EXPECT_EQ(c.jobs[0].line, 25u);
}

TEST(CliConfig, OmittedSettingsKeepTheLibraryDefaults) {
  const auto c = parse("[pools.p]\n");
  const pool_options defaults;
  const pool_options& o = c.pools.at(0).options;
  EXPECT_TRUE(c.pools[0].workers_defaulted);
  EXPECT_EQ(o.workers, defaults.workers);
  EXPECT_EQ(o.job_timeout, defaults.job_timeout);
  EXPECT_EQ(o.max_message, defaults.max_message);
  EXPECT_EQ(c.supervisor.shutdown_timeout, supervisor_options{}.shutdown_timeout);
  EXPECT_EQ(c.log_level, "");
  EXPECT_TRUE(c.jobs.empty());
}

// Beyond the first design's keys (ARCHITECTURE.md, "The command line"): how long a worker
// may take to report ready (a worker that loads a model, say), also the bound on a pool
// that cannot fork any worker.
TEST(CliConfig, StartTimeoutIsAPoolDuration) {
  EXPECT_EQ(parse("[pools.p]\nstart_timeout = \"2m\"\n").pools.at(0).options.start_timeout, std::chrono::minutes(2));
  EXPECT_EQ(parse("[pools.p]\n").pools.at(0).options.start_timeout, pool_options{}.start_timeout);
  const auto p = problems("[pools.p]\nstart_timeout = \"0s\"\n");
  ASSERT_EQ(p.size(), 1u);
  EXPECT_EQ(p[0].rfind("test.toml:2: pools.p.start_timeout:", 0), 0u) << p[0];
}

TEST(CliConfig, PoolsKeepFileOrderNotAlphabetical) {
  const auto c = parse("[pools.zeta]\n[pools.alpha]\n[pools.mid]\nworkers = 1\n");
  ASSERT_EQ(c.pools.size(), 3u);
  EXPECT_EQ(c.pools[0].name, "zeta");
  EXPECT_EQ(c.pools[1].name, "alpha");
  EXPECT_EQ(c.pools[2].name, "mid");
  EXPECT_EQ(c.pools[0].line, 1u);
  EXPECT_EQ(c.pools[2].line, 3u);
}

TEST(CliConfig, PayloadIsAStringsCharactersOrAnyOtherValuesCompactJson) {
  const auto c = parse(R"(
[pools.p]
[[jobs]]
type = "echo"
payload = "text as is"
[[jobs]]
type = "echo"
payload = 42
[[jobs]]
type = "echo"
payload = { signal = "SEGV", p = 0.5, list = [1, "two", false] }
[[jobs]]
type = "echo"
)");
  ASSERT_EQ(c.jobs.size(), 4u);
  EXPECT_EQ(c.jobs[0].payload, "text as is");
  EXPECT_EQ(c.jobs[1].payload, "42");
  EXPECT_EQ(c.jobs[2].payload, R"({"list":[1,"two",false],"p":0.5,"signal":"SEGV"})");
  EXPECT_EQ(c.jobs[3].payload, "");
  EXPECT_EQ(c.jobs[3].pool, "p") << "the only pool is the default";
}

TEST(CliConfig, MessagesNameFileLineKeyExpectedAndGot) {
  EXPECT_EQ(only_problem("[pools.a]\n\nworkers = \"two\"\n"),
            "test.toml:3: pools.a.workers: expected an integer from 0 to 1024 (0: one per core), got string \"two\"");
  EXPECT_EQ(only_problem("[pools.a]\njob_timeout = \"30\"\n"),
            "test.toml:2: pools.a.job_timeout: expected a duration such as \"250ms\", \"30s\" or \"5m\" (\"0s\": "
            "none), got string \"30\"");
  EXPECT_EQ(only_problem("[pools.a]\nmemory_limit = \"1MiB\"\n"),
            "test.toml:2: pools.a.memory_limit: expected a size such as \"64KiB\" or \"512MiB\" from 32MiB to 1024TiB, "
            "got string \"1MiB\"");
  EXPECT_EQ(only_problem("[pools.a]\nrestart = \"sometimes\"\n"),
            "test.toml:2: pools.a.restart: expected one of \"permanent\", \"transient\", \"temporary\", got string "
            "\"sometimes\"");
  EXPECT_EQ(only_problem("[pools.a]\nmax_restarts = -1\n"),
            "test.toml:2: pools.a.max_restarts: expected an integer from 0 to 1000000, got integer -1");
  EXPECT_EQ(only_problem("[pools.a]\nretry_on_error = 1\n"),
            "test.toml:2: pools.a.retry_on_error: expected true or false, got integer 1");
  EXPECT_EQ(only_problem("[pools.a]\nmax_message = 1024\n").substr(0, 45),
            "test.toml:2: pools.a.max_message: expected a ");
  EXPECT_EQ(only_problem("[pools.a]\n[[jobs]]\ntype = \"echo\"\nrepeat = 1.5\n"),
            "test.toml:4: jobs[0].repeat: expected an integer from 1 to 1000000000, got float 1.5");
}

TEST(CliConfig, UnknownKeysAreRefusedWithTheKnownOnes) {
  const std::string p = only_problem("[pools.a]\nworkers = 1\ntimeout = \"1s\"\n");
  EXPECT_EQ(p.rfind("test.toml:3: pools.a.timeout: expected one of the keys workers, command, restart,", 0), 0u) << p;
  EXPECT_NE(p.find("got unknown key \"timeout\""), std::string::npos) << p;
  EXPECT_EQ(only_problem("colour = 1\n[pools.a]\n").rfind("test.toml:1: colour: expected one of the keys supervisor, "
                                                           "pools, jobs, got unknown key \"colour\"",
                                                           0),
            0u);
}

// Found by fuzz/config_fuzz.cpp: a long key was cut inside a multi-byte character, so the
// message was not valid UTF-8.
TEST(CliConfig, ALongKeyIsCutAtACharacterBoundary) {
  std::string key(79, 'k');
  for (int i = 0; i < 20; ++i) key += "\u03b2";  // β, two bytes in UTF-8
  for (const std::string& p : problems("\"" + key + "\" = 1\n[pools.a]\n")) {
    EXPECT_FALSE(first_invalid_utf8(p).has_value()) << p;
    EXPECT_NE(p.find("...\""), std::string::npos) << p;
  }
}

TEST(CliConfig, JobsMustNameAPoolThatExistsAndATypeItServes) {
  EXPECT_EQ(only_problem("[pools.a]\n[[jobs]]\npool = \"b\"\ntype = \"echo\"\n"),
            "test.toml:3: jobs[0].pool: expected the name of a pool (a), got string \"b\"");
  EXPECT_EQ(only_problem("[pools.a]\n[pools.b]\n[[jobs]]\ntype = \"echo\"\n"),
            "test.toml:3: jobs[0].pool: expected the name of a pool (a, b; required when there is more than one "
            "pool), got nothing");
  EXPECT_EQ(only_problem("[pools.a]\n[[jobs]]\ntype = \"echo\"\n[[jobs]]\ntype = \"sleeep\"\n"),
            "test.toml:5: jobs[1].type: expected a job type of the built-in handlers (alloc, crash, echo, fail, hang, "
            "primes, sleep), got string \"sleeep\"");
  EXPECT_EQ(only_problem("[pools.a]\n[[jobs]]\npayload = 1\n"), "test.toml:2: jobs[0].type: expected a job type (a "
                                                                "non-empty string), got nothing");
}

TEST(CliConfig, EveryProblemIsReported) {
  const auto p = problems("[supervisor]\nshutdown_timeout = 5\n[pools.a]\nworkers = -2\nprefetch = \"x\"\n");
  ASSERT_EQ(p.size(), 3u) << testing::PrintToString(p);
  EXPECT_EQ(p[0].rfind("test.toml:2: supervisor.shutdown_timeout:", 0), 0u);
  EXPECT_EQ(p[1].rfind("test.toml:4: pools.a.workers:", 0), 0u);
  EXPECT_EQ(p[2].rfind("test.toml:5: pools.a.prefetch:", 0), 0u);
}

TEST(CliConfig, SyntaxErrorsNameLineAndColumn) {
  const std::string p = only_problem("[pools.a]\nworkers = = 2\n");
  EXPECT_EQ(p.rfind("test.toml:2:", 0), 0u) << p;
  EXPECT_NE(p.find("expected valid TOML"), std::string::npos) << p;
}

TEST(CliConfig, QuotedKeysAreQuotedInMessages) {
  EXPECT_EQ(only_problem("[pools.\"two words\"]\n"),
            "test.toml:1: pools.\"two words\": expected a pool name of 1 to 128 characters from A-Z a-z 0-9 _ . -, got "
            "\"two words\"");
}

class CliCommandResolution : public testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/ringmaster-cli-config-XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    dir_ = pattern;
    fs::create_directories(dir_ / "bin");
    make(dir_ / "bin" / "worker", 0755);
    make(dir_ / "bin" / "plain", 0644);
  }
  void TearDown() override { fs::remove_all(dir_); }
  static void make(const fs::path& p, mode_t mode) {
    std::ofstream(p) << "#!/bin/sh\n";
    ::chmod(p.c_str(), mode);
  }
  fs::path dir_;
};

TEST_F(CliCommandResolution, RelativePathIsRelativeToTheConfigsDirectory) {
  const auto c = parse("[pools.w]\ncommand = [\"./bin/worker\", \"--fast\"]\n", dir_);
  ASSERT_EQ(c.pools[0].options.command.size(), 2u);
  EXPECT_EQ(c.pools[0].options.command[0], (dir_ / "bin" / "worker").string());
  EXPECT_EQ(c.pools[0].options.command[1], "--fast");
  EXPECT_FALSE(c.pools[0].builtin());
}

TEST_F(CliCommandResolution, BareNameIsLookedUpInPath) {
  const std::string path = "/nonexistent:" + (dir_ / "bin").string();
  const auto c = parse("[pools.w]\ncommand = [\"worker\"]\n", "/", path);
  EXPECT_EQ(c.pools[0].options.command[0], (dir_ / "bin" / "worker").string());
  const auto p = problems("[pools.w]\ncommand = [\"plain\"]\n", "/", path);
  ASSERT_EQ(p.size(), 1u);
  EXPECT_EQ(p[0], "test.toml:2: pools.w.command[0]: expected an executable program found in PATH, got \"plain\" (not "
                  "found in PATH)");
}

TEST_F(CliCommandResolution, MissingOrNotExecutableIsAConfigError) {
  auto p = problems("[pools.w]\ncommand = [\"./bin/nothing\"]\n", dir_);
  ASSERT_EQ(p.size(), 1u);
  EXPECT_NE(p[0].find("pools.w.command[0]: expected an executable file"), std::string::npos) << p[0];
  EXPECT_NE(p[0].find("No such file or directory"), std::string::npos) << p[0];
  p = problems("[pools.w]\ncommand = [\"./bin/plain\"]\n", dir_);
  ASSERT_EQ(p.size(), 1u);
  EXPECT_NE(p[0].find("Permission denied"), std::string::npos) << p[0];
  p = problems("[pools.w]\ncommand = [\"./bin\"]\n", dir_);
  ASSERT_EQ(p.size(), 1u);
  EXPECT_NE(p[0].find("not a regular file"), std::string::npos) << p[0];
  p = problems("[pools.w]\ncommand = []\n", dir_);
  ASSERT_EQ(p.size(), 1u);
  EXPECT_NE(p[0].find("got an empty array"), std::string::npos) << p[0];
}

TEST(CliConfig, LoadConfigNamesAnUnreadableFile) {
  try {
    (void)load_config("/nonexistent/ringmaster.toml");
    FAIL() << "expected config_error";
  } catch (const config_error& e) {
    ASSERT_EQ(e.problems().size(), 1u);
    EXPECT_EQ(e.problems()[0],
              "/nonexistent/ringmaster.toml: expected a readable config file, got No such file or directory");
  }
}

TEST(CliConfig, LoadConfigRefusesAConfigOverTheSizeLimitNamingTheFileAndTheLimit) {
  // Comments only: valid TOML of any length, so that only the size can be the problem.
  const auto path = fs::temp_directory_path() / ("ringmaster-big-config-" + std::to_string(::getpid()) + ".toml");
  {
    std::ofstream out(path, std::ios::binary);
    const std::string line(1023, '#');
    for (std::size_t n = 0; n <= k_max_config_size; n += 1024) out << line << '\n';
  }
  std::vector<std::string> problems;
  try {
    (void)load_config(path.string());
  } catch (const config_error& e) {
    problems = e.problems();
  }
  fs::remove(path);
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_EQ(problems[0], path.string() + ": expected a config file of at most 16 MiB, got more (an endless stream "
                                         "such as /dev/zero?)");
}

TEST(CliConfig, LoadConfigOfAnEndlessStreamEndsAtTheSizeLimit) {
  try {
    (void)load_config("/dev/zero");
    FAIL() << "expected config_error";
  } catch (const config_error& e) {
    ASSERT_EQ(e.problems().size(), 1u);
    EXPECT_NE(e.problems()[0].find("/dev/zero: expected a config file of at most 16 MiB"), std::string::npos)
        << e.problems()[0];
  }
}

}  // namespace
}  // namespace ringmaster::cli
