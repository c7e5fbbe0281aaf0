// The C ABI (worker/include/ringmaster/worker.h): what the library exports, and a worker in
// C (helpers/c_test_worker.c) under a real supervisor in what the scenario suites, which
// run it beside the C++ workers (crash, timeout, memory, recycling in
// supervisor_failure_test.cpp), do not cover: a failure with its message, misuse of the
// API, submitting to another pool and waiting, being run by hand.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <future>
#include <ringmaster/supervisor/supervisor.hpp>
#include <ringmaster/worker/demo_handlers.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "supervisor_waits.hpp"

namespace {

using namespace std::chrono_literals;
using ringmaster::error_kind;
using ringmaster::test::all_ready;
using ringmaster::test::await;
using ringmaster::test::eventually;
using ringmaster::test::pool_status_of;

struct command_output {
  std::string text;  // stdout and stderr
  int exit_code = -1;
};

// Runs `command` through the shell, stdout and stderr together.
command_output run(const std::string& command) {
  command_output out;
  FILE* p = ::popen((command + " 2>&1").c_str(), "r");
  if (p == nullptr) return out;
  char buf[4096];
  for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, p)) > 0;) out.text.append(buf, n);
  const int status = ::pclose(p);
  out.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return out;
}

ringmaster::supervisor_options opts() { return {.name = "c-abi-test", .shutdown_timeout = 1000ms}; }

TEST(CAbi, LibraryExportsTheRmFunctionsAlone) {
  // Act
  const auto nm = run(std::string("nm -D --defined-only ") + RINGMASTER_WORKER_C_LIB);

  // Assert: every defined dynamic symbol is rm_*, in the ABI's version node.
  ASSERT_EQ(nm.exit_code, 0) << nm.text;
  std::istringstream lines(nm.text);
  std::vector<std::string> exported;
  for (std::string address, kind, name; lines >> address >> kind >> name;) {
    if (name == "RINGMASTER_WORKER_1") continue;  // the version node itself
    EXPECT_EQ(name.rfind("rm_", 0), 0u) << "exported: " << kind << " " << name;
    EXPECT_NE(name.find("@@RINGMASTER_WORKER_1"), std::string::npos) << name << " has no version";
    exported.push_back(name);
  }
  EXPECT_GE(exported.size(), 20u) << nm.text;
  EXPECT_NE(nm.text.find("rm_worker_open@@RINGMASTER_WORKER_1"), std::string::npos) << nm.text;
}

TEST(CAbi, WorkerRunByHandSaysWhatItServesAndExits64) {
  // Act: not launched by a supervisor (no RINGMASTER_WORKER).
  const auto out = run(std::string("env -u RINGMASTER_WORKER ") + RINGMASTER_C_TEST_WORKER);

  // Assert
  EXPECT_EQ(out.exit_code, 64) << out.text;
  EXPECT_NE(out.text.find("a ringmaster worker; a supervisor runs it"), std::string::npos) << out.text;
  EXPECT_NE(out.text.find("job types served: echo fail crash"), std::string::npos) << out.text;
}

TEST(CAbi, FailureCarriesItsMessageAndKindAndIsNotRetried) {
  // Arrange
  ringmaster::supervisor sup(opts());
  auto& pool = sup.add_pool("c", {.workers = 1, .command = {RINGMASTER_C_TEST_WORKER}, .max_attempts = 3});
  sup.start();

  // Act
  auto failed = pool.submit("fail", "the disk is full", "f");
  auto ok = pool.submit("echo", "after", "e");
  auto unknown = pool.submit("no-such-type", "", "u");

  // Assert
  const auto rf = await(failed);
  EXPECT_EQ(rf.error, error_kind::exception) << rf.value;
  EXPECT_EQ(rf.value, "the disk is full");
  EXPECT_EQ(rf.attempts, 1u);
  const auto re = await(ok);
  EXPECT_TRUE(re.ok()) << re.value;
  EXPECT_EQ(re.value, "after");
  const auto ru = await(unknown);
  EXPECT_EQ(ru.error, error_kind::rejected) << "the types given to rm_worker_open are the pool's: " << ru.value;
  EXPECT_EQ(pool_status_of(sup, "c")->restarts, 0u);
}

TEST(CAbi, MisuseIsRefusedByTheLibraryAndNeverReachesTheSupervisor) {
  // Arrange
  ringmaster::supervisor sup(opts());
  auto& pool = sup.add_pool("c", {.workers = 1, .command = {RINGMASTER_C_TEST_WORKER}, .max_attempts = 1});
  sup.start();
  ASSERT_TRUE(eventually([&] { return all_ready(sup, "c"); }));
  const pid_t before = pool_status_of(sup, "c")->workers[0].pid;

  // Act: rm_next with a job held, rm_fail with kind crash, a second rm_worker_open, then
  // one answer and a second one (refused; the worker exits 9 if it is not).
  auto misuse = pool.submit("misuse", "", "m");
  auto after = pool.submit("pid", "", "after");

  // Assert: each refused with its status; one result for the job; the same process
  // serves on, never killed for a protocol violation.
  const auto rm = await(misuse);
  ASSERT_TRUE(rm.ok()) << ringmaster::to_string(rm.error) << ": " << rm.value;
  EXPECT_EQ(rm.value, "next=-5 fail=-4 open=-5");  // RM_E_STATE, RM_E_INVALID, RM_E_STATE
  const auto ra = await(after);
  ASSERT_TRUE(ra.ok()) << ra.value;
  EXPECT_EQ(ra.value, std::to_string(before));
  const auto st = pool_status_of(sup, "c");
  EXPECT_EQ(st->restarts, 0u);
  EXPECT_EQ(st->completed, 2u);
}

TEST(CAbi, WorkerSubmitsToAnotherPoolAndWaitsForItsResult) {
  // Arrange: the C worker's pool, and a forked pool of the demo handlers it calls (made
  // before the supervisor, which forks its workers from a copy of this process).
  const auto& demo = ringmaster::demo_handlers();
  ringmaster::supervisor sup(opts());
  auto& c = sup.add_pool("c", {.workers = 1, .command = {RINGMASTER_C_TEST_WORKER}});
  sup.add_pool("demo", demo, {.workers = 1, .max_attempts = 1});
  sup.start();

  // Act
  auto ok = c.submit("call", "demo echo hello from C");
  auto failed = c.submit("call", "demo fail boom");
  auto nowhere = c.submit("call", "no-such-pool echo x");

  // Assert: "KIND VALUE" of each result the worker waited for.
  const auto r1 = await(ok);
  ASSERT_TRUE(r1.ok()) << r1.value;
  EXPECT_EQ(r1.value, "0 hello from C");
  const auto r2 = await(failed);
  ASSERT_TRUE(r2.ok()) << r2.value;
  EXPECT_EQ(r2.value, "4 boom");  // RM_KIND_EXCEPTION
  const auto r3 = await(nowhere);
  ASSERT_TRUE(r3.ok()) << r3.value;
  EXPECT_EQ(r3.value.rfind("5 ", 0), 0u) << "a call to an unknown pool is rejected, not a hang: " << r3.value;
}

}  // namespace
