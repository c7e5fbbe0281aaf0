// A supervisor's life and what it leaves behind: drain, stop, the destructor, the death
// of its fork server, its own death by SIGKILL, and no descriptor or process left over
// however many workers came and went.
//
// Every wait is bounded: a bug makes a test fail, never hang. A process counts as gone
// when kill(pid, 0) fails with ESRCH, or when its pid now names another process (its
// start time differs), so a recycled pid is never mistaken for a survivor.
#include <gtest/gtest.h>

#include <dirent.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <future>
#include <memory>
#include <optional>
#include <random>
#include <mutex>
#include <ringmaster/supervisor/detail/testing.hpp>  // fork_server_pid
#include <ringmaster/supervisor/supervisor.hpp>
#include <ringmaster/worker/demo_handlers.hpp>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <stop_token>
#include <thread>
#include <vector>

#include "child.hpp"

#include "proc.hpp"
#include "process_watch.hpp"
#include "soak.hpp"
#include "supervisor_waits.hpp"

namespace {

using namespace std::chrono_literals;
using ringmaster::error_kind;
using ringmaster::result;
using clock_type = std::chrono::steady_clock;

using ringmaster::test::all_ready;
using ringmaster::test::await;
using ringmaster::test::eventually;
using ringmaster::test::k_wait;
using ringmaster::test::pool_status_of;

using ringmaster::test::children_of;
using ringmaster::test::list_dir;
using ringmaster::test::our_segments;
using ringmaster::test::describe;
using ringmaster::test::descendants_of;
using ringmaster::test::gone;
using ringmaster::test::identify;
using ringmaster::test::is_running;
using ringmaster::test::orphan_reaper;
using ringmaster::test::in_syscall;
using ringmaster::test::process_id;
using ringmaster::test::survivors;

std::size_t count_fds(pid_t pid = 0) {
  const std::string dir = pid == 0 ? "/proc/self/fd" : "/proc/" + std::to_string(pid) + "/fd";
  return list_dir(dir).size();
}

std::set<process_id> worker_processes(const ringmaster::supervisor& sup) {
  std::set<process_id> out;
  for (auto& p : sup.status().pools)
    for (auto& w : p.workers)
      if (auto id = identify(w.pid)) out.insert(*id);
  return out;
}

// "gate", payload "LOG|GATE": appends the job's id to the file LOG, then waits (60 s at
// most) until the file GATE exists. Registered at static initialisation, so before any
// supervisor.
const ringmaster::handlers& gate_handlers() {
  static ringmaster::handlers h;
  static const bool registered = [] {
    h.on("gate", [](ringmaster::job& j) {
      const std::string p(j.payload());
      const auto bar = p.find('|');
      const std::string log = p.substr(0, bar), gate = p.substr(bar + 1);
      {
        std::ofstream out(log, std::ios::app);
        out << j.id() << '\n';
      }
      (void)eventually([&] { return std::filesystem::exists(gate); }, 60s);  // a test that never opens it fails on its own
      return std::string("passed");
    });
    return true;
  }();
  (void)registered;
  return h;
}
[[maybe_unused]] const ringmaster::handlers& g_gate_handlers = gate_handlers();

std::string slurp(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The log a gate job writes its id to and the gate it waits for, in the temp directory,
// gone before and after a test.
struct gate_files {
  std::filesystem::path log, gate;
  explicit gate_files(const std::string& name)
      : log(std::filesystem::temp_directory_path() / ("ringmaster-" + name + "-" + std::to_string(::getpid()) + ".log")),
        gate(std::filesystem::temp_directory_path() / ("ringmaster-" + name + "-" + std::to_string(::getpid()) + ".gate")) {
    remove();
  }
  ~gate_files() { remove(); }
  gate_files(const gate_files&) = delete;
  gate_files& operator=(const gate_files&) = delete;
  std::string payload() const { return log.string() + "|" + gate.string(); }
  void open() const { std::ofstream touch(gate); }
  void remove() const {
    std::filesystem::remove(log);
    std::filesystem::remove(gate);
  }
};

}  // namespace

// ---------------------------------------------------------------------------------------
// drain, stop, destructor

TEST(SupervisorDrain, FinishesAllAcceptedWorkIncludingInFlightJobsThenWorkersExit) {
  const auto& demo = ringmaster::demo_handlers();
  ringmaster::supervisor sup({.name = "drain"});
  auto& pool = sup.add_pool("compute", demo, {.workers = 2});
  sup.start();
  ASSERT_TRUE(eventually([&] { return all_ready(sup, "compute"); }));
  const auto workers = worker_processes(sup);
  ASSERT_EQ(workers.size(), 2u);

  std::vector<std::future<result>> futures;
  for (int i = 0; i < 4; ++i) futures.push_back(pool.submit("sleep", "300", "sleep-" + std::to_string(i)));
  for (int i = 0; i < 100; ++i) futures.push_back(pool.submit("echo", std::to_string(i), "echo-" + std::to_string(i)));
  ASSERT_TRUE(eventually([&] { return pool_status_of(sup, "compute")->in_flight > 0; }));
  sup.drain();

  for (auto& f : futures) {
    ASSERT_EQ(f.wait_for(0s), std::future_status::ready) << "drain returned before every accepted job had its result";
    const result r = f.get();
    EXPECT_TRUE(r.ok()) << r.id << ": " << ringmaster::to_string(r.error) << " " << r.value;
  }
  const auto st = pool_status_of(sup, "compute");
  EXPECT_EQ(st->completed, 104u);
  for (auto& w : st->workers) {
    EXPECT_EQ(w.pid, 0) << "slot " << w.slot;
    EXPECT_EQ(w.state, ringmaster::worker_state::stopped) << ringmaster::to_string(w.state);
  }
  EXPECT_TRUE(survivors(workers).empty()) << describe(survivors(workers));

  auto late = pool.submit("echo", "late");
  ASSERT_EQ(late.wait_for(0s), std::future_status::ready);
  EXPECT_EQ(late.get().error, error_kind::stopped);
  sup.drain();  // again: returns at once
}

TEST(SupervisorStop, JobsSentAheadButNotStartedNeverStartAndAreStoppedAtOnce) {
  // Arrange: one worker holding four jobs (prefetch), the first of them running, held at
  // a gate; the others wait in the worker's own ring.
  const gate_files files("prefetch-stop");
  ringmaster::supervisor sup({.name = "prefetch-stop", .shutdown_timeout = 60s});
  auto& pool = sup.add_pool("gated", gate_handlers(), {.workers = 1, .prefetch = 4});
  sup.start();
  std::vector<std::future<result>> futures;
  for (int i = 0; i < 4; ++i) futures.push_back(pool.submit("gate", files.payload(), "g" + std::to_string(i)));
  ASSERT_TRUE(eventually([&] { return slurp(files.log) == "g0\n" && pool_status_of(sup, "gated")->in_flight == 4; }));

  // Act: stop while g0 runs (stop() waits for it, so from another thread).
  std::thread stopper([&] { sup.stop(); });

  // Assert: the three jobs that had not started are answered `stopped` while g0 still
  // runs, and never start.
  for (int i = 1; i < 4; ++i) {
    auto& f = futures[static_cast<std::size_t>(i)];
    if (f.wait_for(k_wait) != std::future_status::ready) {
      ADD_FAILURE() << "g" << i << " (sent ahead, not started) got no result while g0 ran";
      continue;
    }
    const result r = f.get();
    EXPECT_EQ(r.error, error_kind::stopped) << r.id << ": " << ringmaster::to_string(r.error) << " " << r.value;
    EXPECT_EQ(r.attempts, 0u) << r.id;
    EXPECT_EQ(r.worker, -1) << r.id;
    EXPECT_NE(r.value.find("before the job ran"), std::string::npos) << r.value;
  }
  files.open();
  const result r0 = await(futures[0]);
  stopper.join();
  EXPECT_TRUE(r0.ok()) << ringmaster::to_string(r0.error) << " " << r0.value;
  EXPECT_EQ(slurp(files.log), "g0\n") << "a job not started when stop() was called started after it";
}

TEST(SupervisorStop, FailsQueuedJobsStoppedAndLetsInFlightOnesFinish) {
  // Arrange: two workers each running a job (it said so in the log), held at a gate; six
  // jobs queued behind them. Sent is not started: a job in a worker's ring when stop()
  // comes never starts (see JobsSentAheadButNotStartedNeverStartAndAreStoppedAtOnce).
  const gate_files files("stop");
  const std::string payload = files.payload();
  ringmaster::supervisor sup({.name = "stop", .shutdown_timeout = 10s});
  auto& pool = sup.add_pool("compute", gate_handlers(), {.workers = 2, .prefetch = 1});
  sup.start();
  ASSERT_TRUE(eventually([&] { return all_ready(sup, "compute"); }));

  std::vector<std::future<result>> running, queued;
  for (int i = 0; i < 2; ++i) running.push_back(pool.submit("gate", payload, "running-" + std::to_string(i)));
  ASSERT_TRUE(eventually([&] { return std::ranges::count(slurp(files.log), '\n') == 2; }));
  for (int i = 0; i < 6; ++i) queued.push_back(pool.submit("gate", payload, "queued-" + std::to_string(i)));

  // Act: stop while both run (stop() waits for them, so from another thread).
  std::thread stopper([&] { sup.stop(); });

  // Assert: the queued jobs are answered `stopped` at once; the running ones finish.
  for (auto& f : queued) {
    ASSERT_EQ(f.wait_for(k_wait), std::future_status::ready);
    const result r = f.get();
    EXPECT_EQ(r.error, error_kind::stopped) << r.id << ": " << r.value;
    EXPECT_EQ(r.attempts, 0u) << r.id;
  }
  files.open();
  for (auto& f : running) {
    const result r = await(f);
    EXPECT_TRUE(r.ok()) << r.id << ": in flight within shutdown_timeout, it finishes: " << r.value;
  }
  stopper.join();
  EXPECT_EQ(std::ranges::count(slurp(files.log), '\n'), 2) << "a queued job started after stop(): " << slurp(files.log);
  const auto end = pool_status_of(sup, "compute");
  for (auto& w : end->workers) EXPECT_EQ(w.pid, 0);
}

TEST(SupervisorStop, JobLongerThanShutdownTimeoutEndsStopped) {
  const auto& demo = ringmaster::demo_handlers();
  ringmaster::supervisor sup({.name = "stop-timeout", .shutdown_timeout = 300ms});
  auto& pool = sup.add_pool("compute", demo, {.workers = 1});
  sup.start();
  auto f = pool.submit("sleep", "20000", "too-long");
  ASSERT_TRUE(eventually([&] { return pool_status_of(sup, "compute")->workers[0].state == ringmaster::worker_state::busy; }));
  const auto workers = worker_processes(sup);

  const auto t0 = clock_type::now();
  sup.stop();
  const auto took = clock_type::now() - t0;
  ASSERT_EQ(f.wait_for(0s), std::future_status::ready);
  const result r = f.get();
  EXPECT_EQ(r.error, error_kind::stopped) << r.value;
  EXPECT_EQ(r.id, "too-long");
  EXPECT_LT(took, 15s) << "stop waited for the job instead of shutdown_timeout";
  EXPECT_TRUE(survivors(workers).empty());
}

// stop(0ms) is "stop now", and it cuts short a stop() that waits for long jobs: the
// waiting stop() returns too, the running jobs end `stopped`, and no worker is left.
// The jobs are known to run (they wrote their ids),
// not only sent: a job still in a worker's ring when stop() begins never starts.
TEST(SupervisorStop, StopWithZeroGraceCutsShortAStopThatWaits) {
  const gate_files files("stop-now");
  ringmaster::supervisor sup({.name = "stop-now", .shutdown_timeout = 600s});
  auto& pool = sup.add_pool("compute", gate_handlers(), {.workers = 2, .prefetch = 1});
  sup.start();
  auto a = pool.submit("gate", files.payload(), "a"), b = pool.submit("gate", files.payload(), "b");
  ASSERT_TRUE(eventually([&] {
    const std::string ran = slurp(files.log);
    return ran == "a\nb\n" || ran == "b\na\n";
  }));
  const auto workers = worker_processes(sup);

  std::promise<void> first_done;
  std::thread first([&] {
    sup.stop();  // would wait up to 600 s for the sleeps
    first_done.set_value();
  });
  auto first_f = first_done.get_future();
  // Once the first stop() has begun, a submission is refused at once (before, it queues
  // behind the sleeps, and that stop() fails it).
  ASSERT_TRUE(eventually([&] { return pool.submit("gate", "x").wait_for(0s) == std::future_status::ready; }))
      << "the first stop() never began";
  EXPECT_EQ(first_f.wait_for(200ms), std::future_status::timeout) << "stop() did not wait for the running jobs";
  sup.stop(0ms);
  const bool returned = first_f.wait_for(k_wait) == std::future_status::ready;
  if (!returned) {
    first.detach();
    FAIL() << "the waiting stop() did not return after stop(0ms)";
  }
  first.join();
  for (auto* f : {&a, &b}) {
    ASSERT_EQ(f->wait_for(0s), std::future_status::ready);
    const result r = f->get();
    EXPECT_EQ(r.error, error_kind::stopped) << r.id << ": " << r.value;
  }
  EXPECT_TRUE(eventually([&] { return survivors(workers).empty(); }));
}

TEST(SupervisorStop, StopIsIdempotent) {
  const auto& demo = ringmaster::demo_handlers();
  ringmaster::supervisor sup({.name = "stop-twice"});
  auto& pool = sup.add_pool("compute", demo, {.workers = 2});
  sup.start();
  auto f = pool.submit("echo", "x");
  EXPECT_TRUE(await(f).ok());
  sup.stop();
  sup.stop();
  sup.drain();
  EXPECT_FALSE(sup.any_pool_gave_up());
  EXPECT_TRUE(sup.wait_idle(1s));
  const auto st = pool_status_of(sup, "compute");
  for (auto& w : st->workers) EXPECT_EQ(w.pid, 0);
}

TEST(SupervisorStop, SubmitterBlockedOnAFullPoolIsReleasedWithStopped) {
  const auto& demo = ringmaster::demo_handlers();
  ringmaster::supervisor sup({.name = "stop-blocked", .shutdown_timeout = 200ms});
  auto& pool = sup.add_pool("compute", demo, {.workers = 1, .max_pending = 1});
  sup.start();
  auto running = pool.submit("sleep", "20000");
  std::promise<result> blocked;
  std::thread submitter([&] {
    auto f = pool.submit("echo", "waits for room");  // blocks: max_pending 1 reached
    if (f.wait_for(k_wait) == std::future_status::ready) blocked.set_value(f.get());
  });
  auto b = blocked.get_future();
  EXPECT_EQ(b.wait_for(100ms), std::future_status::timeout) << "submit should block while the pool is full";
  sup.stop();
  const auto status = b.wait_for(k_wait);
  submitter.join();
  ASSERT_EQ(status, std::future_status::ready);
  const result r = b.get();
  EXPECT_EQ(r.error, error_kind::stopped) << r.value;
  EXPECT_EQ(await(running).error, error_kind::stopped);
}

TEST(SupervisorStop, PoolAddedAfterStopRefusesItsJobs) {
  const auto& demo = ringmaster::demo_handlers();
  ringmaster::supervisor sup({.name = "stop-then-add"});
  sup.add_pool("first", demo, {.workers = 1});
  sup.start();
  sup.stop();
  // stop(): "later submissions fail with kind stopped", whatever pool they go to.
  auto& late = sup.add_pool("late", demo, {.workers = 1});
  auto f = late.submit("echo", "x");
  ASSERT_EQ(f.wait_for(5s), std::future_status::ready)
      << "a job for a pool added after stop() got no result (it waits for the destructor)";
  EXPECT_EQ(f.get().error, error_kind::stopped);
}

TEST(SupervisorStop, StopWhileAnotherStopIsFinishingReturns) {
  // Two threads stop (or drain) the same supervisor, the second a little later, so that
  // its call lands anywhere in the first one's shutdown, including its very end. Repeated
  // with a fixed seed; a call that never returns fails the test instead of hanging it.
  const auto& demo = ringmaster::demo_handlers();
  std::mt19937 rng(20240611);
  constexpr int k_rounds = 150;
  for (int round = 0; round < k_rounds; ++round) {
    // Heap-allocated so that, should a call never return, its thread can be abandoned
    // with the object still valid.
    auto sup = std::make_unique<ringmaster::supervisor>(ringmaster::supervisor_options{.name = "stop-race"});
    sup->add_pool("compute", demo, {.workers = 1});
    sup->start();
    const int delay_spins = std::uniform_int_distribution<int>(0, 4000)(rng);
    const bool second_drains = round % 2 == 1;
    std::promise<void> first_done, second_done;
    std::thread first([&] {
      sup->stop();
      first_done.set_value();
    });
    std::thread second([&] {
      for (int i = 0; i < delay_spins; ++i) std::this_thread::yield();
      second_drains ? sup->drain() : sup->stop();
      second_done.set_value();
    });
    const bool returned = first_done.get_future().wait_for(10s) == std::future_status::ready &&
                          second_done.get_future().wait_for(10s) == std::future_status::ready;
    if (!returned) {
      first.detach();
      second.detach();
      (void)sup.release();  // a stuck thread still uses it
      FAIL() << "round " << round << ": a " << (second_drains ? "drain()" : "stop()")
             << " called while stop() was finishing never returned";
    }
    first.join();
    second.join();
  }
}

TEST(SupervisorDestructor, DestroyingWithoutStopGivesEveryJobAResultAndEndsEveryWorker) {
  const auto& demo = ringmaster::demo_handlers();
  std::vector<std::future<result>> futures;
  std::set<process_id> workers;
  {
    ringmaster::supervisor sup({.name = "no-stop", .shutdown_timeout = 2s});
    auto& pool = sup.add_pool("compute", demo, {.workers = 2, .prefetch = 1});
    sup.start();
    ASSERT_TRUE(eventually([&] { return all_ready(sup, "compute"); }));
    workers = worker_processes(sup);
    for (int i = 0; i < 2; ++i) futures.push_back(pool.submit("sleep", "600"));
    for (int i = 0; i < 6; ++i) futures.push_back(pool.submit("sleep", "600"));
    // Sent is not started: a job still in a worker's ring when the stop comes never
    // starts. Wait until both workers sleep in their jobs.
    ASSERT_TRUE(eventually([&] {
      return pool_status_of(sup, "compute")->in_flight == 2 &&
             std::ranges::all_of(workers, [](const process_id& w) { return in_syscall(w.pid, SYS_clock_nanosleep); });
    }));
  }
  int ok = 0, stopped = 0;
  for (auto& f : futures) {
    ASSERT_EQ(f.wait_for(0s), std::future_status::ready) << "a job lost its result in the destructor";
    const result r = f.get();
    if (r.ok()) ++ok;
    if (r.error == error_kind::stopped) ++stopped;
  }
  EXPECT_EQ(ok, 2) << "the destructor stops as stop() does: in-flight jobs finish";
  EXPECT_EQ(stopped, 6);
  EXPECT_TRUE(survivors(workers).empty()) << describe(survivors(workers));
}

TEST(SupervisorDestructor, DestroyingWithoutStartFailsSubmittedJobsStopped) {
  const auto& demo = ringmaster::demo_handlers();
  std::vector<std::future<result>> futures;
  std::optional<process_id> server;
  {
    ringmaster::supervisor sup({.name = "never-started"});
    auto& pool = sup.add_pool("compute", demo, {.workers = 2});
    server = identify(ringmaster::detail::fork_server_pid(sup));
    for (int i = 0; i < 5; ++i) futures.push_back(pool.submit("echo", "x"));
  }
  for (auto& f : futures) {
    ASSERT_EQ(f.wait_for(0s), std::future_status::ready);
    EXPECT_EQ(f.get().error, error_kind::stopped);
  }
  ASSERT_TRUE(server);
  EXPECT_TRUE(gone(*server));
  // And a supervisor with nothing at all.
  { ringmaster::supervisor empty({.name = "empty"}); }
}

// ---------------------------------------------------------------------------------------
// The fork server's death

TEST(ForkServerDeath, KillingTheForkServerWhileJobsRunIsSurvivedTwice) {
  const auto& demo = ringmaster::demo_handlers();
  orphan_reaper reaper;  // the killed servers' workers, and a promoted standby, are orphans
  {
  ringmaster::supervisor sup({.name = "fs-kill"});
  for (pid_t p : children_of()) reaper.keep(p);  // the supervisor's own fork servers
  auto& pool = sup.add_pool("compute", demo, {.workers = 2, .prefetch = 1});
  sup.start();
  ASSERT_TRUE(eventually([&] { return all_ready(sup, "compute"); }));

  std::vector<std::future<result>> futures;
  for (int i = 0; i < 60; ++i) futures.push_back(pool.submit("sleep", "60", "job-" + std::to_string(i)));

  std::set<process_id> old_workers;
  pid_t server = ringmaster::detail::fork_server_pid(sup);
  for (int kill_round = 1; kill_round <= 2; ++kill_round) {
    SCOPED_TRACE("kill " + std::to_string(kill_round));
    ASSERT_TRUE(eventually([&] {
      const auto st = pool_status_of(sup, "compute");
      return std::all_of(st->workers.begin(), st->workers.end(),
                         [](auto& w) { return w.state == ringmaster::worker_state::busy; });
    })) << "both workers busy before the kill";
    const auto victims = worker_processes(sup);
    ASSERT_EQ(victims.size(), 2u);
    old_workers.insert(victims.begin(), victims.end());
    ASSERT_EQ(::kill(server, SIGKILL), 0);

    // A new fork server takes over, and new workers start on it.
    ASSERT_TRUE(eventually([&] { return ringmaster::detail::fork_server_pid(sup) != server; })) << "no fork server took over";
    server = ringmaster::detail::fork_server_pid(sup);
    EXPECT_GT(server, 0);
    ASSERT_TRUE(eventually([&] {
      reaper.reap();
      const auto now = worker_processes(sup);
      return now.size() == 2 && std::none_of(now.begin(), now.end(), [&](auto& p) { return old_workers.count(p); });
    })) << "no new workers";
    ASSERT_TRUE(eventually([&] {
      reaper.reap();
      return survivors(victims).empty();
    }, 5s)) << "the dead server's workers live on: " << describe(survivors(victims));
  }

  for (auto& f : futures) {
    const result r = await(f);
    EXPECT_TRUE(r.ok()) << r.id << ": " << ringmaster::to_string(r.error) << " " << r.value;
    EXPECT_EQ(r.attempts, 1u) << r.id << ": a fork server's death is not the job's fault";
  }
  const auto st = pool_status_of(sup, "compute");
  EXPECT_EQ(st->completed, 60u);
  EXPECT_EQ(st->retried, 0u);
  EXPECT_FALSE(st->gave_up);
  // Still working.
  auto f = pool.submit("primes", "1000");
  EXPECT_EQ(await(f).value, "168");
  }
  // The promoted standby was the killed server's child, so it is ours to reap now.
  EXPECT_TRUE(reaper.reap_all(10s));
}

TEST(ForkServerDeath, KillingTheStandbyThenTheActiveServerIsSurvived) {
  const auto& demo = ringmaster::demo_handlers();
  orphan_reaper reaper;  // the replacement standby is a grandchild, orphaned with its parent
  {
    ringmaster::supervisor sup({.name = "standby-kill"});
    // The tree: this process -> the zygote (its only child) -> the two fork servers.
    const auto zygotes = children_of();
    ASSERT_EQ(zygotes.size(), 1u);
    const pid_t zygote = *zygotes.begin();
    const auto servers = children_of(zygote);
    for (pid_t p : zygotes) reaper.keep(p);
    auto& pool = sup.add_pool("compute", demo, {.workers = 2});
    sup.start();
    ASSERT_TRUE(eventually([&] { return all_ready(sup, "compute"); }));
    const pid_t active = ringmaster::detail::fork_server_pid(sup);
    ASSERT_EQ(servers.size(), 2u);
    ASSERT_TRUE(servers.count(active));
    const pid_t standby = *servers.begin() == active ? *servers.rbegin() : *servers.begin();
    const auto workers = worker_processes(sup);

    // The standby dies: the workers never notice, and a new standby is made (forked by
    // the zygote, so the zygote's one child besides the active server), and stays.
    ASSERT_EQ(::kill(standby, SIGKILL), 0);
    auto standbys = [&] {
      std::set<pid_t> out;
      for (pid_t p : children_of(zygote))
        if (p != active && p != standby && is_running(p)) out.insert(p);
      return out;
    };
    ASSERT_TRUE(eventually([&] { return standbys().size() == 1; }, 10s)) << "no new standby forked by the zygote";
    std::this_thread::sleep_for(300ms);
    ASSERT_EQ(standbys().size(), 1u) << "the new standby did not stay";
    EXPECT_EQ(worker_processes(sup), workers);
    EXPECT_EQ(ringmaster::detail::fork_server_pid(sup), active);

    // Then the active one dies: the new standby takes over.
    std::vector<std::future<result>> futures;
    for (int i = 0; i < 20; ++i) futures.push_back(pool.submit("sleep", "30"));
    ASSERT_EQ(::kill(active, SIGKILL), 0);
    ASSERT_TRUE(eventually([&] { return ringmaster::detail::fork_server_pid(sup) != active; }));
    for (auto& f : futures) {
      const result r = await(f);
      EXPECT_TRUE(r.ok()) << r.value;
      EXPECT_EQ(r.attempts, 1u);
    }
    ASSERT_TRUE(eventually([&] {
      reaper.reap();
      return all_ready(sup, "compute") && survivors(workers).empty();
    }));
  }
  EXPECT_TRUE(reaper.reap_all(10s));
}

// ---------------------------------------------------------------------------------------
// The supervisor's death

namespace {

struct pid_report {
  std::atomic<int> state{0};  // 1: pids written; 2: the child failed to set up
  int count = 0;
  pid_t pids[64] = {};
};

// Forks a child that runs a supervisor with a busy pool (forked workers, or exec'd ones),
// SIGKILLs it, and checks that every process it started is gone within 5 s and that
// nothing was left in /dev/shm.
void sigkill_supervisor_and_check(bool exec) {
  const auto& demo = ringmaster::demo_handlers();
  const auto shm_before = our_segments();
  void* mem = ::mmap(nullptr, sizeof(pid_report), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(mem, MAP_FAILED);
  auto* report = new (mem) pid_report{};
  std::unique_ptr<void, void (*)(void*)> unmap(mem, [](void* m) { ::munmap(m, sizeof(pid_report)); });
  orphan_reaper reaper;  // the fork servers outlive the supervisor for an instant

  auto child = ringmaster::test::fork_child([&]() -> int {
    ringmaster::supervisor sup({.name = "victim"});
    auto& pool = exec ? sup.add_pool("compute", {.workers = 2, .command = {RINGMASTER_TEST_WORKER}})
                      : sup.add_pool("compute", demo, {.workers = 2});
    sup.start();
    if (!eventually([&] { return all_ready(sup, "compute"); }, 10s)) {
      report->state = 2;
      return 2;
    }
    // A busy worker and an idle one when the supervisor dies.
    auto busy = pool.submit("sleep", "60000");
    eventually([&] { return pool_status_of(sup, "compute")->in_flight == 1; }, 20s);
    for (auto& p : sup.status().pools)
      for (auto& w : p.workers) report->pids[report->count++] = w.pid;
    report->pids[report->count++] = ringmaster::detail::fork_server_pid(sup);
    report->state = 1;
    for (;;) ::pause();
  });

  ASSERT_TRUE(eventually([&] { return report->state.load() != 0; })) << "the child never reported";
  ASSERT_EQ(report->state.load(), 1) << "the child could not start its workers";
  // Everything the supervisor started: its workers and fork server as it reported them,
  // and every other descendant (the standby fork server).
  std::set<process_id> processes;
  for (pid_t p : descendants_of(child.pid()))
    if (auto id = identify(p)) processes.insert(*id);
  for (int i = 0; i < report->count; ++i) {
    const pid_t p = report->pids[i];
    EXPECT_GT(p, 0);
    EXPECT_TRUE(std::any_of(processes.begin(), processes.end(), [&](auto& x) { return x.pid == p; }))
        << "pid " << p << " is not a descendant of the supervisor";
  }
  EXPECT_GE(processes.size(), 4u) << "2 workers and 2 fork servers";

  const auto how = child.kill_and_reap();
  EXPECT_EQ(how.signal(), SIGKILL);
  const bool all_gone = eventually(
      [&] {
        reaper.reap();
        return survivors(processes).empty();
      },
      5s);
  EXPECT_TRUE(all_gone) << "still alive 5 s after the supervisor's death: " << describe(survivors(processes));
  EXPECT_TRUE(reaper.reap_all(5s));
  EXPECT_EQ(our_segments(), shm_before);
}

// Runs crash jobs (forked: crash by SIGKILL; exec'd: the test worker's `exit`) so that
// workers die and restart many times, and checks that neither this process's descriptors
// nor the fork server's grow with restarts, and that this process's are back to their
// number once the supervisor is destroyed.
void descriptors_stable_over_restarts(bool exec, int warm_up, int more) {
  const auto& demo = ringmaster::demo_handlers();
  const std::size_t fds_before = count_fds();
  {
    ringmaster::supervisor sup({.name = "fd-leak"});
    ringmaster::pool_options crashy{.workers = 2,
                                    .max_restarts = 100'000,
                                    .max_attempts = 1,
                                    .backoff_initial = 1ms,
                                    .backoff_max = 2ms};
    if (exec) crashy.command = {RINGMASTER_TEST_WORKER};
    auto& pool = exec ? sup.add_pool("crashy", crashy) : sup.add_pool("crashy", demo, crashy);
    sup.start();
    ASSERT_TRUE(eventually([&] { return all_ready(sup, "crashy"); }, 10s)) << "the workers never started";

    auto crash_round = [&](int crashes) {
      std::vector<std::future<result>> futures;
      for (int i = 0; i < crashes; ++i)
        futures.push_back(exec ? pool.submit("exit", "3") : pool.submit("crash", R"({"signal": "KILL"})"));
      for (auto& f : futures) {
        const result r = await(f);
        EXPECT_EQ(r.error, error_kind::crash) << r.value;
      }
      // Compare in the same state: every worker up and idle.
      EXPECT_TRUE(eventually([&] { return all_ready(sup, "crashy"); }));
    };
    const pid_t server = ringmaster::detail::fork_server_pid(sup);
    crash_round(warm_up);
    const std::size_t fds_warm = count_fds();
    const std::size_t server_fds_warm = count_fds(server);
    // In rounds, so that a few thousand futures are not all waiting at once.
    for (int left = more; left > 0; left -= 500) crash_round(std::min(left, 500));
    EXPECT_EQ(count_fds(), fds_warm) << "the supervisor's descriptors grew with restarts";
    EXPECT_EQ(count_fds(server), server_fds_warm) << "the fork server's descriptors grew with restarts";
    const auto st = pool_status_of(sup, "crashy");
    std::printf("[ figures  ] %s workers: %u restarts; descriptors: supervisor %zu -> %zu, fork server %zu -> %zu\n",
                exec ? "exec'd" : "forked", st->restarts, fds_warm, count_fds(), server_fds_warm, count_fds(server));
    EXPECT_EQ(st->restarts, static_cast<unsigned>(warm_up + more));
    EXPECT_FALSE(st->gave_up) << st->gave_up_reason;
    auto f = pool.submit("echo", "alive");
    EXPECT_TRUE(await(f).ok());
  }
  EXPECT_EQ(count_fds(), fds_before) << "descriptors left after the supervisor was destroyed";
}

// Collects every worker process seen (status snapshots taken continuously, and the pids
// that `pid` jobs of the test worker report) while workers crash and restart, then
// checks that all of them, and the fork server, are gone once the supervisor is.
void every_worker_gone_after_destruction(bool exec) {
  const auto& demo = ringmaster::demo_handlers();
  std::set<process_id> seen;
  std::optional<process_id> server;
  {
    ringmaster::supervisor sup({.name = "pids"});
    ringmaster::pool_options crashy{.workers = 2, .max_restarts = 1000, .max_attempts = 1, .backoff_initial = 1ms, .backoff_max = 2ms};
    if (exec) crashy.command = {RINGMASTER_TEST_WORKER};
    auto& pool = exec ? sup.add_pool("crashy", crashy) : sup.add_pool("crashy", demo, crashy);
    sup.start();
    ASSERT_TRUE(eventually([&] { return all_ready(sup, "crashy"); }, 10s)) << "the workers never started";
    server = identify(ringmaster::detail::fork_server_pid(sup));

    std::mutex seen_mutex;
    std::jthread watcher([&](std::stop_token stop) {  // snapshots, as often as they come
      while (!stop.stop_requested()) {
        auto ps = worker_processes(sup);
        std::lock_guard lock(seen_mutex);
        seen.insert(ps.begin(), ps.end());
      }
    });
    std::vector<std::future<result>> futures;
    std::vector<pid_t> reported;
    for (int i = 0; i < 20; ++i) {
      futures.push_back(exec ? pool.submit("exit", "0") : pool.submit("crash", R"({"signal": "KILL"})"));
      futures.push_back(pool.submit("sleep", "5"));
      if (exec) futures.push_back(pool.submit("pid", ""));
    }
    for (auto& f : futures) {
      const result r = await(f);
      if (r.ok() && !r.value.empty() && r.value.find_first_not_of("0123456789") == std::string::npos)
        reported.push_back(std::stoi(r.value));
    }
    watcher.request_stop();
    watcher.join();
    // Reported by a running worker; a process already gone cannot outlive anything.
    for (pid_t p : reported)
      if (auto id = identify(p)) seen.insert(*id);
    if (exec) {
      EXPECT_FALSE(reported.empty());
    }
    EXPECT_GE(seen.size(), 4u);
  }
  EXPECT_TRUE(survivors(seen).empty()) << describe(survivors(seen));
  ASSERT_TRUE(server);
  EXPECT_TRUE(gone(*server)) << "fork server " << server->pid;
}

// The tests below run once with forked workers and once with exec'd ones (the parameter:
// exec or not).
class worker_kind : public testing::TestWithParam<bool> {
 protected:
  static bool exec() { return GetParam(); }
};

std::string worker_kind_name(const testing::TestParamInfo<bool>& info) { return info.param ? "Exec" : "Forked"; }

}  // namespace

using SupervisorDeath = worker_kind;

TEST_P(SupervisorDeath, SigkillOfTheSupervisorLeavesNoWorkerOrForkServerAlive) { sigkill_supervisor_and_check(exec()); }

INSTANTIATE_TEST_SUITE_P(Workers, SupervisorDeath, testing::Bool(), worker_kind_name);

// ---------------------------------------------------------------------------------------
// Resources over many restarts

// 2,000 forked and 200 exec'd restarts in the suite; RINGMASTER_SOAK=1 (or
// RINGMASTER_RESTARTS=N) makes it 10,000 and 2,000.
using SupervisorResources = worker_kind;

TEST_P(SupervisorResources, NoDescriptorLeakOverManyWorkerRestarts) {
  const int restarts = static_cast<int>(ringmaster::test::setting("RINGMASTER_RESTARTS", 2000, 10'000)) / (exec() ? 10 : 1);
  const int warm_up = exec() ? 10 : 50;
  descriptors_stable_over_restarts(exec(), warm_up, restarts - warm_up);
}

TEST_P(SupervisorResources, EveryWorkerPidSeenIsGoneAfterTheSupervisorIsDestroyed) {
  every_worker_gone_after_destruction(exec());
}

INSTANTIATE_TEST_SUITE_P(Workers, SupervisorResources, testing::Bool(), worker_kind_name);
