// The error_code forms of the embedding API (errc.hpp): each errc a caller can meet
// through add_pool, start and pool::scale, and that the throwing forms throw the same
// exception types with the same messages as the error_code forms report.
//
// Every wait is bounded (eventually, k_wait). Handlers that a forked pool runs are
// created before the supervisor of each test.
#include <gtest/gtest.h>

#include <sys/resource.h>

#include <chrono>
#include <cstring>
#include <future>
#include <ringmaster/supervisor/errc.hpp>
#include <ringmaster/supervisor/supervisor.hpp>
#include <ringmaster/worker/demo_handlers.hpp>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

#include "child_checks.hpp"
#include "supervisor_waits.hpp"

namespace {

using namespace std::chrono_literals;
using ringmaster::errc;
using ringmaster::pool_options;
using ringmaster::test::eventually;
using ringmaster::test::pool_status_of;

// What the throwing form throws for the same call: its message, or "" if it returned.
template <class Call>
std::string thrown_message(Call&& call) {
  try {
    call();
  } catch (const std::invalid_argument& e) {
    return e.what();
  } catch (const std::logic_error& e) {
    return e.what();
  }
  return "";
}

struct refused_pool {
  const char* what;
  std::string name;
  pool_options options;
  errc expected;
};

TEST(SupervisorErrors, AddPoolWithErrorCodeReportsEachRefusalAsTheThrowingFormWords) {
  const auto& demo = ringmaster::demo_handlers();
  ringmaster::supervisor sup({.name = "errors-add"});
  std::error_code ec;
  ASSERT_NE(sup.add_pool("taken", demo, {.workers = 1}, ec), nullptr);
  EXPECT_FALSE(ec) << ec.message();

  const std::vector<refused_pool> cases{
      {"a name with a space", "bad name", {.workers = 1}, errc::bad_pool_name},
      {"an empty name", "", {.workers = 1}, errc::bad_pool_name},
      {"a name of 129 characters", std::string(129, 'p'), {.workers = 1}, errc::bad_pool_name},
      {"more than k_max_workers", "wide", {.workers = ringmaster::k_max_workers + 1}, errc::invalid_option},
      {"no attempt", "once", {.workers = 1, .max_attempts = 0}, errc::invalid_option},
      {"an empty max_message", "tiny", {.workers = 1, .max_message = 0}, errc::invalid_option},
      {"max_message over its cap", "huge", {.workers = 1, .max_message = ringmaster::k_max_message_limit + 1},
       errc::invalid_option},
      {"no max_pending", "stuck", {.workers = 1, .max_pending = 0}, errc::invalid_option},
      {"a name in use", "taken", {.workers = 1}, errc::duplicate_pool},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.what);
    std::string why;
    EXPECT_EQ(sup.add_pool(c.name, demo, c.options, ec, &why), nullptr);
    EXPECT_EQ(ec, c.expected) << ec.message();
    EXPECT_EQ(why, thrown_message([&] { (void)sup.add_pool(c.name, demo, c.options); }));
    EXPECT_THROW((void)sup.add_pool(c.name, demo, c.options), std::invalid_argument);
  }
  ringmaster::pool* after = sup.add_pool("after", demo, {.workers = 1}, ec);
  EXPECT_FALSE(ec) << "a success after a refusal clears ec";
  EXPECT_EQ(after, sup.find_pool("after"));
}

TEST(SupervisorErrors, CommandPoolWithoutACommandIsAnInvalidOption) {
  ringmaster::supervisor sup({.name = "errors-command"});
  std::error_code ec;
  std::string why;
  EXPECT_EQ(sup.add_pool("nocommand", pool_options{.workers = 1}, ec, &why), nullptr);
  EXPECT_EQ(ec, errc::invalid_option);
  EXPECT_EQ(why, "pool 'nocommand': a pool without handlers needs a command");
  EXPECT_TRUE(ec == std::errc::invalid_argument) << "invalid_option is an invalid argument";
}

TEST(SupervisorErrors, ProgramPoolWithoutARunnableCommandIsAnInvalidOption) {
  using ringmaster::worker_protocol;
  ringmaster::supervisor sup({.name = "errors-protocol"});
  struct refused {
    const char* what;
    ringmaster::pool_options options;
    std::string message;
  };
  const refused cases[] = {
      {"no command", {.workers = 1, .protocol = worker_protocol::exec}, "pool 'p': protocol exec needs a command"},
      {"a command that does not exist", {.workers = 1, .command = {"/nonexistent/prog"}, .protocol = worker_protocol::jsonl},
       "pool 'p': command '/nonexistent/prog' is not an executable file (a bare name is looked up in PATH)"},
      {"a bare name not in PATH", {.workers = 1, .command = {"no-such-program-for-lines"}, .protocol = worker_protocol::lines},
       "pool 'p': command 'no-such-program-for-lines' is not an executable file (a bare name is looked up in PATH)"},
      {"{} outside exec", {.workers = 1, .command = {"echo", "<{}>"}, .protocol = worker_protocol::lines},
       "pool 'p': command argument 1 has {}, which only protocol exec replaces"},
      {"{} in a serve() worker's arguments", {.workers = 1, .command = {"echo", "{}"}},
       "pool 'p': command argument 1 has {}, which only protocol exec replaces"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.what);
    std::error_code ec;
    std::string why;
    EXPECT_EQ(sup.add_pool("p", ringmaster::demo_handlers(), c.options, ec, &why), nullptr);
    EXPECT_EQ(ec, errc::invalid_option) << ec.message();
    EXPECT_EQ(why, c.message);
  }
  std::error_code ec;
  EXPECT_NE(sup.add_pool("p", {.workers = 1, .command = {"sh", "-c", "echo {}", "{}"}, .protocol = worker_protocol::exec}, ec),
            nullptr);
  EXPECT_FALSE(ec) << ec.message();
}

TEST(SupervisorErrors, PoolOverTheMachinesSharedMemoryIsNotEnoughMemory) {
  const std::size_t per_worker = ringmaster::shared_memory_per_worker({.max_message = ringmaster::k_max_message_limit});
  const std::size_t available = ringmaster::available_memory();
  ASSERT_GT(available, 0u) << "/proc/meminfo has no MemAvailable";
  const std::size_t workers = available / per_worker + 1;
  if (workers > ringmaster::k_max_workers) GTEST_SKIP() << "this machine has more memory than the most workers map";
  const auto& demo = ringmaster::demo_handlers();
  ringmaster::supervisor sup({.name = "errors-memory"});
  std::error_code ec;
  std::string why;
  const pool_options o{.workers = static_cast<unsigned>(workers), .max_message = ringmaster::k_max_message_limit};
  EXPECT_EQ(sup.add_pool("greedy", demo, o, ec, &why), nullptr);
  EXPECT_EQ(ec, errc::not_enough_memory) << why;
  EXPECT_TRUE(ec == std::errc::not_enough_memory);
  EXPECT_NE(why.find("MemAvailable"), std::string::npos) << why;
}

TEST(SupervisorErrors, PoolOverTheDescriptorLimitIsTooManyDescriptors) {
  ringmaster::test::expect_child_passes([]() -> int {
    const auto& demo = ringmaster::demo_handlers();
    const rlimit low{64, 64};
    CHILD_CHECK(::setrlimit(RLIMIT_NOFILE, &low) == 0, "setrlimit: %s", std::strerror(errno));
    ringmaster::supervisor sup({.name = "errors-nofile"});
    std::error_code ec;
    std::string why;
    CHILD_CHECK(sup.add_pool("big", demo, {.workers = 100}, ec, &why) == nullptr, "100 workers fit in 64 descriptors");
    CHILD_CHECK(ec == errc::too_many_descriptors, "ec: %s", ec.message().c_str());
    CHILD_CHECK(ec == std::errc::too_many_files_open, "not equivalent to EMFILE");
    CHILD_CHECK(why.find("RLIMIT_NOFILE") != std::string::npos, "why: %s", why.c_str());
    return 0;
  });
}

TEST(SupervisorErrors, SecondStartIsAlreadyStarted) {
  const auto& demo = ringmaster::demo_handlers();
  ringmaster::supervisor sup({.name = "errors-start"});
  (void)sup.add_pool("compute", demo, {.workers = 1});
  std::error_code ec;
  sup.start(ec);
  EXPECT_FALSE(ec) << ec.message();
  std::string why;
  sup.start(ec, &why);
  EXPECT_EQ(ec, errc::already_started);
  EXPECT_EQ(why, "supervisor already started");
  EXPECT_THROW(sup.start(), std::logic_error);
}

TEST(SupervisorErrors, ScaleOutOfRangeIsAnInvalidOptionAndChangesNothing) {
  const auto& demo = ringmaster::demo_handlers();
  ringmaster::supervisor sup({.name = "errors-scale"});
  auto& pool = sup.add_pool("compute", demo, {.workers = 1});
  sup.start();
  for (const unsigned workers : {0u, ringmaster::k_max_workers + 1}) {
    std::error_code ec;
    std::string why;
    pool.scale(workers, ec, &why);
    EXPECT_EQ(ec, errc::invalid_option) << workers;
    EXPECT_EQ(why, thrown_message([&] { pool.scale(workers); }));
    EXPECT_THROW(pool.scale(workers), std::invalid_argument);
  }
  std::error_code ec;
  pool.scale(2, ec);
  EXPECT_FALSE(ec) << ec.message();
  EXPECT_EQ(pool_status_of(sup, "compute")->workers.size(), 2u);
}

TEST(SupervisorErrors, ScalingARemovedPoolIsPoolRemoved) {
  const auto& demo = ringmaster::demo_handlers();
  ringmaster::supervisor sup({.name = "errors-removed"});
  auto& pool = sup.add_pool("compute", demo, {.workers = 1});
  sup.start();
  ASSERT_TRUE(sup.remove_pool("compute"));
  std::error_code ec;
  std::string why;
  pool.scale(2, ec, &why);
  EXPECT_EQ(ec, errc::pool_removed);
  EXPECT_EQ(why, "pool 'compute' was removed");
  EXPECT_THROW(pool.scale(2), std::logic_error);
}

TEST(SupervisorErrors, ScalingAPoolThatGaveUpIsPoolGaveUp) {
  ringmaster::supervisor sup({.name = "errors-gave-up"});
  auto& pool = sup.add_pool("missing", {.workers = 1, .command = {"/nonexistent/ringmaster-worker"}});
  sup.start();
  ASSERT_TRUE(eventually([&] {
    const auto st = pool_status_of(sup, "missing");
    return st && st->gave_up;
  })) << "a pool whose command cannot run gives up";
  std::error_code ec;
  std::string why;
  pool.scale(2, ec, &why);
  EXPECT_EQ(ec, errc::pool_gave_up);
  EXPECT_EQ(why.rfind("pool 'missing' gave up: ", 0), 0u) << why;
  EXPECT_THROW(pool.scale(2), std::logic_error);
}

TEST(SupervisorErrors, ScalingAfterStopIsStopping) {
  const auto& demo = ringmaster::demo_handlers();
  ringmaster::supervisor sup({.name = "errors-stopped"});
  auto& pool = sup.add_pool("compute", demo, {.workers = 1});
  sup.start();
  sup.stop();
  std::error_code ec;
  std::string why;
  pool.scale(2, ec, &why);
  EXPECT_EQ(ec, errc::stopping) << why;
  EXPECT_NE(why.find("cannot be scaled"), std::string::npos) << why;
  EXPECT_THROW(pool.scale(2), std::logic_error);
}

}  // namespace
