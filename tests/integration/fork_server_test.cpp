// The fork server and the workers it starts, through the embedding API: a pool of the
// documented maximum of 1,024 workers (the supervisor and the server never block sending
// to each other), a low RLIMIT_NOFILE, a stopped (SIGSTOP) fork server, the restarts of
// workers lost with a killed one, workers' stdout and stderr (to the log, labelled, never
// to stdout), and a worker's children, which end with it (a worker is a process group).
//
// Every wait is bounded (k_wait). The handlers are created before each supervisor.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <optional>
#include <future>
#include <ringmaster/supervisor/detail/testing.hpp>  // fork_server_pid
#include <ringmaster/supervisor/supervisor.hpp>
#include <ringmaster/worker/handlers.hpp>
#include <ringmaster/worker/logging.hpp>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "child_checks.hpp"
#include "proc.hpp"
#include "process_watch.hpp"
#include "supervisor_waits.hpp"

namespace {

using namespace std::chrono_literals;
using ringmaster::error_kind;
using ringmaster::result;
using ringmaster::test::all_ready;
using ringmaster::test::await;
using ringmaster::test::eventually;
using ringmaster::test::gone;
using ringmaster::test::identify;
using ringmaster::test::orphan_reaper;
using ringmaster::test::pool_status_of;
using ringmaster::test::process_id;

// Starts `sleep 300` (longer than any wait here) as a child of this worker; returns its pid.
pid_t start_sleeper() {
  const pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error(std::string("fork: ") + std::strerror(errno));
  if (pid == 0) {
    ::execlp("sleep", "sleep", "300", static_cast<char*>(nullptr));
    ::_exit(127);
  }
  return pid;
}

// Appends the sleeper's pid to the file named by the payload (the test learns it there
// when the job never returns).
void note_pid(ringmaster::job& j, pid_t pid) {
  const std::string line = std::to_string(pid) + "\n";
  const int fd = ::open(std::string(j.payload()).c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0 || ::write(fd, line.data(), line.size()) != static_cast<ssize_t>(line.size()))
    throw std::runtime_error("cannot note the pid");
  ::close(fd);
}

const ringmaster::handlers& test_handlers() {
  static ringmaster::handlers x;
  static const bool once = [] {
    x.on("echo", [](ringmaster::job& j) { return std::string(j.payload()); })
        .on("sleeper", [](ringmaster::job&) { return std::to_string(start_sleeper()); })
        .on("sleeper_then_crash",
            [](ringmaster::job& j) -> std::string {
              note_pid(j, start_sleeper());
              std::abort();
            })
        .on("sleeper_then_hang",
            [](ringmaster::job& j) -> std::string {
              note_pid(j, start_sleeper());
              for (;;) ::pause();
            })
        .on("print",
            [](ringmaster::job& j) {
              std::printf("out: %.*s\n", static_cast<int>(j.payload().size()), j.payload().data());
              std::fprintf(stderr, "err: %.*s\n", static_cast<int>(j.payload().size()), j.payload().data());
              return std::string("printed");
            })
        .on("flood",
            [](ringmaster::job& j) {
              const std::string line(1023, 'x');
              for (int i = 0; i < std::stoi(std::string(j.payload())); ++i) std::printf("%s\n", line.c_str());
              return std::string("flooded");
            })
        .on("shout", [](ringmaster::job& j) -> std::string {
          std::fprintf(stderr, "last words: %.*s\n", static_cast<int>(j.payload().size()), j.payload().data());
          std::abort();
        });
    return true;
  }();
  (void)once;
  return x;
}

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A fresh file name under /tmp, removed by the destructor.
struct temp_file {
  std::string path;
  temp_file() {
    char name[] = "/tmp/ringmaster-fs-test-XXXXXX";
    const int fd = ::mkstemp(name);
    if (fd >= 0) ::close(fd);
    path = name;
  }
  ~temp_file() { ::unlink(path.c_str()); }
};

// The first pid noted in `path`, once one is.
std::optional<process_id> noted_sleeper(const std::string& path) {
  std::optional<process_id> id;
  eventually([&] {
    const std::string text = slurp(path);
    if (text.empty() || text.back() != '\n') return false;
    id = identify(static_cast<pid_t>(std::stol(text)));
    return true;
  });
  return id;
}

bool ends(orphan_reaper& reaper, const process_id& p) {
  return eventually([&] {
    reaper.reap();  // a sleeper whose worker died is re-parented to us
    return gone(p);
  });
}

// A supervisor of one pool, its fork servers known to the reaper (the supervisor reaps
// them itself); at the end, every orphan (a dead server's workers, a promoted standby, a
// worker's child) must be gone.
class ForkServerPool : public testing::Test {
 protected:
  orphan_reaper reaper;
  std::unique_ptr<ringmaster::supervisor> sup;

  ringmaster::pool& start(const std::string& name, ringmaster::pool_options options) {
    const auto& h = test_handlers();
    sup = std::make_unique<ringmaster::supervisor>(ringmaster::supervisor_options{.name = "fs-" + name});
    for (pid_t p : ringmaster::test::children_of()) reaper.keep(p);
    auto& pool = sup->add_pool(name, h, std::move(options));
    sup->start();
    return pool;
  }
  void TearDown() override {
    sup.reset();
    EXPECT_TRUE(reaper.reap_all(10s));
  }
};

// ---------------------------------------------------------------------------------------
// 1,024 workers

// Both directions of the socket pair fill with a pool this size (spawn requests one way,
// spawned/exited events the other): a blocking send on each side deadlocked at ~550.
TEST(ForkServer, PoolOfTheMaximum1024WorkersRunsJobsToCompletion) {
  rlimit nofile{};
  ::getrlimit(RLIMIT_NOFILE, &nofile);
  if (nofile.rlim_max < 3200) GTEST_SKIP() << "RLIMIT_NOFILE's hard limit " << nofile.rlim_max << " is below what 1,024 workers need";
  const auto& h = test_handlers();
  // A small max_message keeps the rings (posix_fallocate'd) at 0.5 MiB per worker.
  ringmaster::supervisor sup({.name = "fs-1024"});
  auto& pool = sup.add_pool("wide", h, {.workers = 1024, .start_timeout = 120s, .max_message = 4096});
  sup.start();
  std::vector<std::future<result>> futures;
  for (int i = 0; i < 3072; ++i) futures.push_back(pool.submit("echo", std::to_string(i)));
  std::size_t ok = 0;
  for (std::size_t i = 0; i < futures.size(); ++i) {
    ASSERT_EQ(futures[i].wait_for(120s), std::future_status::ready) << "job " << i << " never finished";
    const result r = futures[i].get();
    ok += r.ok() && r.value == std::to_string(i);
  }
  EXPECT_EQ(ok, futures.size());
  ASSERT_TRUE(eventually([&] { return all_ready(sup, "wide"); }, 120s));
  const auto st = pool_status_of(sup, "wide");
  EXPECT_EQ(st->workers.size(), 1024u);
  EXPECT_EQ(st->restarts, 0u);
  EXPECT_FALSE(st->gave_up);
}

// ---------------------------------------------------------------------------------------
// RLIMIT_NOFILE

TEST(ForkServer, SmallPoolRunsUnderDescriptorLimitOf64) {
  ringmaster::test::expect_child_passes([]() -> int {
    const auto& h = test_handlers();
    const rlimit low{64, 64};
    CHILD_CHECK(::setrlimit(RLIMIT_NOFILE, &low) == 0, "setrlimit: %s", std::strerror(errno));
    ringmaster::supervisor sup({.name = "fs-nofile"});
    auto& pool = sup.add_pool("small", h, {.workers = 4});
    sup.start();
    std::vector<std::future<result>> futures;
    for (int i = 0; i < 16; ++i) futures.push_back(pool.submit("echo", std::to_string(i)));
    for (int i = 0; i < 16; ++i) {
      const result r = await(futures[static_cast<std::size_t>(i)]);
      CHILD_CHECK(r.ok() && r.value == std::to_string(i), "job %d: %s %s", i,
                  std::string(ringmaster::to_string(r.error)).c_str(), r.value.c_str());
    }
    return 0;
  });
}

TEST(ForkServer, PoolTooLargeForTheDescriptorLimitIsRefusedNamingTheLimit) {
  ringmaster::test::expect_child_passes([]() -> int {
    const auto& h = test_handlers();
    const rlimit low{64, 64};
    CHILD_CHECK(::setrlimit(RLIMIT_NOFILE, &low) == 0, "setrlimit: %s", std::strerror(errno));
    ringmaster::supervisor sup({.name = "fs-nofile-big"});
    std::string error;
    try {
      sup.add_pool("big", h, {.workers = 100});
    } catch (const std::invalid_argument& e) {
      error = e.what();
    }
    CHILD_CHECK(error.find("RLIMIT_NOFILE") != std::string::npos && error.find("64") != std::string::npos &&
                    error.find("'big'") != std::string::npos,
                "unclear error: '%s'", error.c_str());
    std::fprintf(stderr, "[ message  ] %s\n", error.c_str());
    return 0;
  });
}

// ---------------------------------------------------------------------------------------
// A fork server that stops working

TEST_F(ForkServerPool, StoppedForkServerIsReplacedWhenAWorkerDeathGoesUnreported) {
  auto& pool = start("one", {.workers = 1, .start_timeout = 1s});
  ASSERT_TRUE(eventually([&] { return all_ready(*sup, "one"); }));
  const pid_t server = ringmaster::detail::fork_server_pid(*sup);
  const pid_t worker = pool_status_of(*sup, "one")->workers[0].pid;
  ASSERT_EQ(::kill(server, SIGSTOP), 0);
  ASSERT_EQ(::kill(worker, SIGKILL), 0);
  // The pool's only worker is dead and its server cannot say so: the job runs only once
  // the supervisor has seen that (the worker's pidfd) and replaced the server.
  auto f = pool.submit("echo", "after");
  const result r = await(f);
  EXPECT_TRUE(r.ok()) << ringmaster::to_string(r.error) << " " << r.value;
  const auto servers = sup->status().fork_servers;
  EXPECT_EQ(servers.promotions, 1u);
  EXPECT_NE(servers.active_pid, server);
  ::kill(server, SIGCONT);  // harmless if it is gone, as it should be
}

TEST_F(ForkServerPool, StoppedForkServerIsReplacedWhenASpawnGoesUnanswered) {
  auto& pool = start("grow", {.workers = 1, .start_timeout = 1s});
  ASSERT_TRUE(eventually([&] { return all_ready(*sup, "grow"); }));
  const pid_t server = ringmaster::detail::fork_server_pid(*sup);
  ASSERT_EQ(::kill(server, SIGSTOP), 0);
  pool.scale(2);  // a spawn request the stopped server never answers
  ASSERT_TRUE(eventually([&] { return all_ready(*sup, "grow") && pool_status_of(*sup, "grow")->workers.size() == 2; }))
      << "the new worker never started";
  EXPECT_EQ(sup->status().fork_servers.promotions, 1u);
  EXPECT_NE(ringmaster::detail::fork_server_pid(*sup), server);
  auto f = pool.submit("echo", "x");
  EXPECT_TRUE(await(f).ok());
  ::kill(server, SIGCONT);
}

// The fork server maps each worker's segment (to read the id of the job it runs): a worker
// forked later must not inherit the others' (a worker is untrusted), nor a standby.
TEST_F(ForkServerPool, WorkersAndStandbyMapNoOtherWorkersSegment) {
  start("iso", {.workers = 3});
  ASSERT_TRUE(eventually([&] { return all_ready(*sup, "iso"); }));
  auto segments_mapped_by = [](pid_t pid) {
    std::istringstream maps(slurp("/proc/" + std::to_string(pid) + "/maps"));
    int n = 0;
    for (std::string line; std::getline(maps, line);) n += line.find("/memfd:ringmaster") != std::string::npos;
    return n;
  };
  const auto st = pool_status_of(*sup, "iso");
  for (const auto& w : st->workers)
    EXPECT_EQ(segments_mapped_by(w.pid), 1) << "worker " << w.slot << " maps another worker's segment";
  // A standby forked by the active server after the workers started.
  ASSERT_EQ(::kill(sup->status().fork_servers.standby_pid, SIGKILL), 0);
  ASSERT_TRUE(eventually([&] {
    reaper.reap();
    const pid_t standby = sup->status().fork_servers.standby_pid;
    return standby > 0 && ringmaster::test::is_running(standby);
  }));
  EXPECT_EQ(segments_mapped_by(sup->status().fork_servers.standby_pid), 0);
}

// ---------------------------------------------------------------------------------------
// Restart counters

TEST_F(ForkServerPool, WorkersLostWithAKilledForkServerAreCountedAsRestarts) {
  start("three", {.workers = 3});
  ASSERT_TRUE(eventually([&] { return all_ready(*sup, "three"); }));
  const pid_t server = ringmaster::detail::fork_server_pid(*sup);
  ASSERT_EQ(::kill(server, SIGKILL), 0);
  ASSERT_TRUE(eventually([&] { return sup->status().fork_servers.promotions == 1 && all_ready(*sup, "three"); }));
  const auto st = pool_status_of(*sup, "three");
  EXPECT_EQ(st->restarts, 3u);
  for (const auto& w : st->workers) {
    EXPECT_EQ(w.restarts, 1u) << "worker " << w.slot;
    const auto it = w.restarts_by_cause.find("fork server died");
    EXPECT_TRUE(it != w.restarts_by_cause.end() && it->second == 1) << "worker " << w.slot;
  }
  EXPECT_FALSE(st->gave_up);
}

// ---------------------------------------------------------------------------------------
// Output

// In a child whose stdout and stderr are files: a handler's printf must not reach stdout
// (with `run --results -`, that is the results stream); both its streams reach stderr
// (the log) line by line, labelled with pool, slot, pid and job id; a worker that dies
// leaves the end of its stderr in its job's failure.
TEST(ForkServer, WorkerOutputGoesToTheLogLabelledAndNeverToStdout) {
  temp_file out, err;
  ringmaster::test::expect_child_passes([&]() -> int {
    const auto& h = test_handlers();
    const int saved_err = ::dup(STDERR_FILENO);
    const int o = ::open(out.path.c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC);
    const int e = ::open(err.path.c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC);
    if (o < 0 || e < 0 || ::dup2(o, STDOUT_FILENO) < 0 || ::dup2(e, STDERR_FILENO) < 0) return 2;
    result printed, shouted;
    {
      ringmaster::supervisor sup({.name = "fs-output"});
      auto& pool = sup.add_pool("chatty", h, {.workers = 1, .max_attempts = 1});
      sup.start();
      auto f1 = pool.submit("print", "hello", "job-7");
      printed = await(f1);
      auto f2 = pool.submit("shout", "it hurts", "job-8");
      shouted = await(f2);
    }
    ::dup2(saved_err, STDERR_FILENO);  // our own checks say why on the real stderr
    CHILD_CHECK(printed.ok() && printed.value == "printed", "print: %s", printed.value.c_str());
    const std::string stdout_text = slurp(out.path), log = slurp(err.path);
    CHILD_CHECK(stdout_text.empty(), "the workers wrote to stdout: '%s'", stdout_text.c_str());
    CHILD_CHECK(log.find("[worker chatty/0 pid ") != std::string::npos, "no labelled line in the log:\n%s", log.c_str());
    CHILD_CHECK(log.find("] [stdout] [job job-7] out: hello\n") != std::string::npos, "stdout line:\n%s", log.c_str());
    CHILD_CHECK(log.find("] [stderr] [job job-7] err: hello\n") != std::string::npos, "stderr line:\n%s", log.c_str());
    CHILD_CHECK(log.find("] [stderr] [job job-8] last words: it hurts\n") != std::string::npos, "shout:\n%s", log.c_str());
    CHILD_CHECK(shouted.error == error_kind::crash && shouted.value.find("SIGABRT") != std::string::npos &&
                    shouted.value.find("last words: it hurts") != std::string::npos,
                "the failure does not quote the worker's stderr: %s %s",
                std::string(ringmaster::to_string(shouted.error)).c_str(), shouted.value.c_str());
    std::fprintf(stderr, "[ message  ] %s\n", shouted.value.c_str());
    return 0;
  });
}

// The log (the supervisor's stderr) is a pipe nobody reads: worker output fills it, and the
// fork server must still start and reap workers (it never blocks writing it), so that it
// is not taken for a stopped one and replaced.
TEST(ForkServer, UnreadLogDoesNotStopTheForkServer) {
  ringmaster::test::expect_child_passes([]() -> int {
    const auto& h = test_handlers();
    const int saved_err = ::dup(STDERR_FILENO);
    int unread[2];
    if (::pipe2(unread, O_CLOEXEC) != 0 || ::dup2(unread[1], STDERR_FILENO) < 0) return 2;
    ringmaster::set_log_level("off");  // the supervisor's own lines would block it on the pipe
    unsigned promotions = 0;
    result flooded, after;
    {
      ringmaster::supervisor sup({.name = "fs-unread-log"});
      auto& pool = sup.add_pool("loud", h, {.workers = 1, .start_timeout = 1s});
      sup.start();
      auto f1 = pool.submit("flood", "4096");  // 4 MiB of lines: far more than a pipe holds
      flooded = await(f1);
      const pid_t worker = pool_status_of(sup, "loud")->workers[0].pid;
      ::kill(worker, SIGKILL);  // to be reaped, and its replacement started, by the server
      auto f2 = pool.submit("echo", "after");
      after = await(f2);
      promotions = sup.status().fork_servers.promotions;
    }
    ::dup2(saved_err, STDERR_FILENO);
    CHILD_CHECK(flooded.ok() && after.ok() && after.value == "after", "%s / %s", flooded.value.c_str(), after.value.c_str());
    CHILD_CHECK(promotions == 0, "the fork server was replaced %u time(s): it blocked on the log", promotions);
    return 0;
  });
}

// ---------------------------------------------------------------------------------------
// A worker's children end with it

TEST_F(ForkServerPool, ChildOfAWorkerThatDiesEndsWithIt) {
  temp_file pids;
  auto& pool = start("g", {.workers = 1, .max_attempts = 1});
  auto f = pool.submit("sleeper_then_crash", pids.path);
  const result r = await(f);
  EXPECT_EQ(r.error, error_kind::crash) << r.value;
  // Read after the result: the server ends a dead worker's group before it reports the
  // death, so the child may be gone already, which is what is asserted.
  ASSERT_TRUE(eventually([&] {
    const std::string text = slurp(pids.path);
    return !text.empty() && text.back() == '\n';
  })) << "the worker noted no child";
  if (const auto sleeper = noted_sleeper(pids.path))
    EXPECT_TRUE(ends(reaper, *sleeper)) << "the dead worker's child lives on";
}

TEST_F(ForkServerPool, ChildOfAWorkerThatTimesOutEndsWithIt) {
  temp_file pids;
  auto& pool = start("g", {.workers = 1, .max_attempts = 1, .job_timeout = 300ms, .kill_grace = 100ms});
  auto f = pool.submit("sleeper_then_hang", pids.path);
  const auto sleeper = noted_sleeper(pids.path);
  ASSERT_TRUE(sleeper);
  const result r = await(f);
  EXPECT_EQ(r.error, error_kind::timeout) << r.value;
  EXPECT_TRUE(ends(reaper, *sleeper)) << "the timed-out worker's child lives on";
}

TEST_F(ForkServerPool, ChildOfARecycledWorkerEndsWithIt) {
  auto& pool = start("g", {.workers = 1, .max_jobs_per_worker = 1});
  auto f = pool.submit("sleeper", "");
  const result r = await(f);
  ASSERT_TRUE(r.ok()) << r.value;
  const auto sleeper = identify(static_cast<pid_t>(std::stol(r.value)));
  ASSERT_TRUE(sleeper);
  EXPECT_TRUE(ends(reaper, *sleeper)) << "the recycled worker's child lives on";
  auto again = pool.submit("echo", "still working");
  EXPECT_EQ(await(again).value, "still working");
}

TEST_F(ForkServerPool, ChildOfAStoppedWorkerEndsWithIt) {
  std::optional<process_id> sleeper;
  auto& pool = start("g", {.workers = 1});
  auto f = pool.submit("sleeper", "");
  const result r = await(f);
  ASSERT_TRUE(r.ok()) << r.value;
  sleeper = identify(static_cast<pid_t>(std::stol(r.value)));
  ASSERT_TRUE(sleeper);
  sup->stop();
  EXPECT_TRUE(ends(reaper, *sleeper)) << "the stopped worker's child lives on";
}

}  // namespace
