// Running out of things, for real: processes (fork fails with EAGAIN under a real
// RLIMIT_NPROC, as an unprivileged user), shared memory (a /dev/shm of 64 KiB in a private
// mount namespace; a file-size limit on the workers' memfd segments), and memory under a
// flood of submissions (bounded queues). Descriptors over thousands of restarts are in
// supervisor_lifecycle_test.cpp (SupervisorResources).
//
// Each scenario that changes the process's credentials, limits or mounts runs in a forked
// child (its own supervisor inside) that reports as child_checks.hpp says (not root, no
// mount namespaces: the test is skipped, saying why).
#include <gtest/gtest.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <ringmaster/ipc/segment.hpp>
#include <ringmaster/supervisor/supervisor.hpp>
#include <ringmaster/worker/demo_handlers.hpp>
#include <string>
#include <thread>
#include <vector>

#include "child.hpp"
#include "child_checks.hpp"
#include "proc.hpp"
#include "process_watch.hpp"
#include "soak.hpp"
#include "supervisor_waits.hpp"

namespace {

using namespace std::chrono_literals;
using ringmaster::error_kind;
using ringmaster::result;
using ringmaster::test::eventually;
using ringmaster::test::pool_status_of;

using ringmaster::test::k_nobody;

// Runs `fn` in a child and turns its exit code into the test's outcome.
void in_child(const std::function<int()>& fn) { ringmaster::test::expect_child_passes(fn); }

using ringmaster::test::tasks_of;

unsigned fork_failures(const ringmaster::pool_status& p) {
  unsigned n = 0;
  for (const auto& w : p.workers)
    for (const auto& [cause, count] : w.restarts_by_cause)
      if (cause.rfind("fork failed: EAGAIN", 0) == 0) n += count;
  return n;
}

}  // namespace

// As user nobody with RLIMIT_NPROC set so that only about two of four workers fit: the
// forks that fail (EAGAIN) are retried with backoff and reported in the slots' restart
// causes, the pool does not give up (three start failures in a row would), its jobs run
// on the workers it has, and once processes are freed every worker starts.
TEST(ResourceExhaustion, ForkFailingWithEagainIsRetriedWithBackoffAndReported) {
  in_child([]() -> int {
    if (const int rc = ringmaster::test::become_nobody(); rc != 0) return rc;
    // Processes of nobody that the test frees later, to let the missing workers start.
    std::vector<ringmaster::test::child_process> placeholders;
    for (int i = 0; i < 4; ++i) placeholders.push_back(ringmaster::test::fork_child([] {
      for (;;) ::pause();
      return 0;
    }));
    // Now: nobody's tasks; then 2 fork servers and the dispatcher thread; then room for
    // two workers.
    const int limit = tasks_of(k_nobody) + 3 + 2;
    const rlimit nproc{static_cast<rlim_t>(limit), static_cast<rlim_t>(limit)};
    CHILD_CHECK(::setrlimit(RLIMIT_NPROC, &nproc) == 0, "setrlimit");
    {
      const auto& demo = ringmaster::demo_handlers();  // before the supervisor forks its fork servers
      ringmaster::supervisor sup({.name = "nproc"});
      auto& pool = sup.add_pool("compute", demo,
                                {.workers = 4, .backoff_initial = 5ms, .backoff_max = 50ms});
      sup.start();
      CHILD_CHECK(eventually([&] { return fork_failures(*pool_status_of(sup, "compute")) >= 6; }, 20s),
                  "fewer than 6 failed forks reported");
      auto st = pool_status_of(sup, "compute");
      CHILD_CHECK(!st->gave_up, "the pool gave up: %s", st->gave_up_reason.c_str());
      std::vector<std::future<result>> futures;
      for (int i = 0; i < 20; ++i) futures.push_back(pool.submit("echo", "n" + std::to_string(i)));
      placeholders.clear();  // SIGKILLed and reaped: four processes freed
      for (int i = 0; i < 20; ++i) {
        const result r = ringmaster::test::await(futures[static_cast<std::size_t>(i)]);
        CHILD_CHECK(r.ok() && r.value == "n" + std::to_string(i), "job %d: %s", i, r.value.c_str());
      }
      CHILD_CHECK(eventually([&] { return ringmaster::test::all_ready(sup, "compute"); }, 20s),
                  "not every worker started once processes were free");
      st = pool_status_of(sup, "compute");
      std::fprintf(stderr, "[ figures  ] fork failed with EAGAIN %u times, retried; then all 4 workers ready\n",
                   fork_failures(*st));
    }
    return 0;
  });
}

// As nobody with RLIMIT_NPROC leaving room for no worker at all: the forks are retried
// for start_timeout, then the pool gives up with the reason, and its jobs fail with it
// instead of waiting for ever.
TEST(ResourceExhaustion, PoolThatCannotForkAnyWorkerGivesUpAfterStartTimeout) {
  in_child([]() -> int {
    if (const int rc = ringmaster::test::become_nobody(); rc != 0) return rc;
    const int limit = tasks_of(k_nobody) + 4;  // the zygote, the 2 fork servers and the dispatcher thread
    const rlimit nproc{static_cast<rlim_t>(limit), static_cast<rlim_t>(limit)};
    CHILD_CHECK(::setrlimit(RLIMIT_NPROC, &nproc) == 0, "setrlimit");
    {
      const auto& demo = ringmaster::demo_handlers();
      ringmaster::supervisor sup({.name = "no-fork"});
      auto& pool = sup.add_pool("compute", demo,
                                {.workers = 2, .start_timeout = 500ms, .backoff_initial = 5ms, .backoff_max = 50ms});
      sup.start();
      auto f = pool.submit("echo", "x");
      const result r = ringmaster::test::await(f);
      CHILD_CHECK(r.error == error_kind::stopped, "kind %s: %s", std::string(ringmaster::to_string(r.error)).c_str(),
                  r.value.c_str());
      CHILD_CHECK(r.value.find("cannot fork any worker") != std::string::npos &&
                      r.value.find("start_timeout") != std::string::npos,
                  "unclear reason: %s", r.value.c_str());
      CHILD_CHECK(sup.any_pool_gave_up(), "the pool did not give up");
      const auto st = pool_status_of(sup, "compute");
      CHILD_CHECK(fork_failures(*st) >= 2, "only %u fork failures before giving up", fork_failures(*st));
      std::fprintf(stderr, "[ figures  ] gave up after %u failed forks: %s\n", fork_failures(*st), r.value.c_str());
    }
    return 0;
  });
}

// As nobody with RLIMIT_NPROC leaving room for the zygote and the two fork servers and not for the
// dispatcher thread: start() throws a system_error that says so, and the supervisor is
// left as if never started: status() answers, the job submitted gets `stopped` from the
// destructor, which returns instead of waiting for a dispatcher that never ran.
TEST(ResourceExhaustion, DispatcherThreadThatCannotBeCreatedFailsStartCleanly) {
  in_child([]() -> int {
    if (const int rc = ringmaster::test::become_nobody(); rc != 0) return rc;
    const int limit = tasks_of(k_nobody) + 3;  // the zygote and the 2 fork servers, no thread more
    const rlimit nproc{static_cast<rlim_t>(limit), static_cast<rlim_t>(limit)};
    CHILD_CHECK(::setrlimit(RLIMIT_NPROC, &nproc) == 0, "setrlimit");
    std::future<result> f;
    {
      const auto& demo = ringmaster::demo_handlers();
      ringmaster::supervisor sup({.name = "no-thread"});
      auto& pool = sup.add_pool("compute", demo, {.workers = 1});
      f = pool.submit("echo", "x", "early");
      std::string what;
      try {
        sup.start();
      } catch (const std::system_error& e) {
        what = e.what();
        CHILD_CHECK(e.code() == std::errc::resource_unavailable_try_again, "code %s", e.code().message().c_str());
      }
      CHILD_CHECK(what.find("cannot start its dispatcher thread") != std::string::npos &&
                      what.find("RLIMIT_NPROC") != std::string::npos,
                  "start() did not fail, or unclearly: '%s'", what.c_str());
      CHILD_CHECK(pool_status_of(sup, "compute").has_value(), "status() after a failed start");
      std::fprintf(stderr, "[ figures  ] start() failed with: %s\n", what.c_str());
    }
    CHILD_CHECK(f.wait_for(0s) == std::future_status::ready, "the job submitted before start() got no result");
    const result r = f.get();
    CHILD_CHECK(r.error == error_kind::stopped, "kind %s: %s", std::string(ringmaster::to_string(r.error)).c_str(),
                r.value.c_str());
    return 0;
  });
}

// The zygote, which forks every fork server, cannot fork (its RLIMIT_NPROC lowered under
// it, as nobody) when the standby dies: the missing standby is reported in status() and tried again with
// backoff, not forgotten; once forks work again a standby is made, and it then takes
// over when the active server is killed, so the pool never gives up.
TEST(ResourceExhaustion, StandbyForkServerThatCannotBeForkedIsRetriedUntilOneIs) {
  in_child([]() -> int {
    if (const int rc = ringmaster::test::become_nobody(); rc != 0) return rc;
    ringmaster::test::orphan_reaper reaper;  // none should come: the zygote reaps what a dead server leaves
    {
      const auto& demo = ringmaster::demo_handlers();
      ringmaster::supervisor sup({.name = "standby-retry"});
      const auto children = ringmaster::test::children_of();
      CHILD_CHECK(children.size() == 1, "%zu children, not the zygote alone", children.size());
      const pid_t zygote = *children.begin();
      reaper.keep(zygote);  // the supervisor reaps it
      auto& pool = sup.add_pool("compute", demo, {.workers = 1});
      sup.start();
      CHILD_CHECK(eventually([&] { return ringmaster::test::all_ready(sup, "compute"); }, 20s), "worker not ready");
      auto servers = sup.status().fork_servers;
      CHILD_CHECK(servers.active_pid > 0 && servers.standby_pid > 0, "fork servers %d %d", servers.active_pid,
                  servers.standby_pid);
      const pid_t active = servers.active_pid;

      // Only the soft limit is lowered, so that it can be raised again.
      rlimit old{};
      CHILD_CHECK(::prlimit(zygote, RLIMIT_NPROC, nullptr, &old) == 0, "prlimit get");
      const rlimit none{1, old.rlim_max};
      CHILD_CHECK(::prlimit(zygote, RLIMIT_NPROC, &none, nullptr) == 0, "prlimit set: %s", std::strerror(errno));
      CHILD_CHECK(::kill(servers.standby_pid, SIGKILL) == 0, "kill the standby");
      CHILD_CHECK(eventually([&] { return sup.status().fork_servers.standby_failures >= 3; }, 20s),
                  "the standby was not retried: %u failures", sup.status().fork_servers.standby_failures);
      servers = sup.status().fork_servers;
      CHILD_CHECK(servers.standby_pid == 0 && !servers.standby_error.empty(), "standby %d, error '%s'",
                  servers.standby_pid, servers.standby_error.c_str());
      std::fprintf(stderr, "[ figures  ] standby fork failed %u times (%s), retried with backoff\n",
                   servers.standby_failures, servers.standby_error.c_str());
      auto before = pool.submit("primes", "1000");  // the pool works meanwhile
      CHILD_CHECK(ringmaster::test::await(before).value == "168", "job while the standby is missing");

      CHILD_CHECK(::prlimit(zygote, RLIMIT_NPROC, &old, nullptr) == 0, "prlimit restore");
      CHILD_CHECK(eventually([&] { return sup.status().fork_servers.standby_pid > 0; }, 20s),
                  "no standby once forks work again");
      servers = sup.status().fork_servers;
      CHILD_CHECK(servers.standby_failures == 0 && servers.standby_error.empty(), "failures not reset");

      // The new standby takes over from the killed active server.
      CHILD_CHECK(::kill(active, SIGKILL) == 0, "kill the active server");
      CHILD_CHECK(eventually([&] { return sup.status().fork_servers.promotions == 1; }, 20s), "no promotion");
      auto after = pool.submit("primes", "1000");
      const result r = ringmaster::test::await(after);
      CHILD_CHECK(r.ok() && r.value == "168", "job after the promotion: %s", r.value.c_str());
      CHILD_CHECK(!sup.any_pool_gave_up(), "a pool gave up");
      CHILD_CHECK(eventually([&] { return sup.status().fork_servers.standby_pid > 0; }, 20s),
                  "no standby after the promotion");
    }
    CHILD_CHECK(reaper.reap_all(10s), "orphans left");
    return 0;
  });
}

// A named segment in a /dev/shm too small for it: an error at creation naming the
// segment and the likely cause, not a SIGBUS later; nothing is left behind.
TEST(ResourceExhaustion, NamedSegmentInAFullDevShmFailsAtCreationWithAClearError) {
  in_child([]() -> int {
    if (::unshare(CLONE_NEWNS) != 0 || ::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0 ||
        ::mount("tmpfs", "/dev/shm", "tmpfs", 0, "size=64k,mode=1777") != 0) {
      std::perror("cannot mount a small /dev/shm in a private mount namespace");
      return ringmaster::test::k_child_skip;
    }
    try {
      auto s = ringmaster::ipc::segment::create_named(std::size_t{1} << 20);
      CHILD_CHECK(false, "a 1 MiB segment was created in a 64 KiB /dev/shm");
    } catch (const std::system_error& e) {
      const std::string what = e.what();
      CHILD_CHECK(e.code().value() == ENOSPC, "error %d: %s", e.code().value(), what.c_str());
      CHILD_CHECK(what.find("/ringmaster-") != std::string::npos && what.find("/dev/shm full") != std::string::npos,
                  "unclear message: %s", what.c_str());
      std::fprintf(stderr, "[ figures  ] %s\n", what.c_str());
    }
    CHILD_CHECK(ringmaster::test::list_dir("/dev/shm", "ringmaster").empty(), "a segment was left in /dev/shm");
    // A small one still fits.
    auto small = ringmaster::ipc::segment::create_named(4096);
    CHILD_CHECK(small.valid(), "a 4 KiB segment");
    return 0;
  });
}

// Workers' rings live in memfd segments, sized (and their pages reserved) when a slot
// is first started. When that fails (here: a file-size limit lower than a ring), the
// pool gives up at once with the reason, its jobs fail with it, and the supervisor
// neither crashes nor hangs.
TEST(ResourceExhaustion, WorkerSharedMemoryThatCannotBeCreatedGivesThePoolUpWithTheReason) {
  in_child([]() -> int {
    ::signal(SIGXFSZ, SIG_IGN);  // an over-limit fallocate then fails with EFBIG
    const rlimit fsize{64 << 10, 64 << 10};
    CHILD_CHECK(::setrlimit(RLIMIT_FSIZE, &fsize) == 0, "setrlimit");
    const auto& demo = ringmaster::demo_handlers();
    ringmaster::supervisor sup({.name = "no-shm"});
    auto& pool = sup.add_pool("compute", demo, {.workers = 2});
    sup.start();
    auto f = pool.submit("echo", "x");
    const result r = ringmaster::test::await(f);
    CHILD_CHECK(r.error == error_kind::stopped, "kind %s", std::string(ringmaster::to_string(r.error)).c_str());
    CHILD_CHECK(r.value.find("cannot create the shared memory of worker") != std::string::npos &&
                    r.value.find("memfd") != std::string::npos,
                "unclear reason: %s", r.value.c_str());
    CHILD_CHECK(sup.any_pool_gave_up(), "the pool did not give up");
    std::fprintf(stderr, "[ figures  ] %s\n", r.value.c_str());
    return 0;
  });
}

// Eight threads submit 200,000 jobs with 4 KiB payloads (800 MB if held at once) to a
// pool that holds at most 256: submit() blocks, and the supervisor's memory stays within
// a bound far below what the flood would take.
TEST(ResourceExhaustion, FloodOfSubmissionsIsHeldBackByMaxPending) {
  constexpr std::size_t k_max_pending = 256;
  constexpr int k_threads = 8, k_per_thread = 25'000;
  const long rss_before = ringmaster::test::resident_kib();
  std::atomic<int> ok{0};
  std::atomic<std::size_t> most_unfinished{0};
  long rss_peak = 0;
  {
    const auto& demo = ringmaster::demo_handlers();
    ringmaster::supervisor sup({.name = "flood"});
    auto& pool = sup.add_pool("compute", demo, {.workers = 2, .max_pending = k_max_pending});
    sup.start();
    const std::string payload(4096, 'p');
    std::vector<std::thread> threads;
    for (int t = 0; t < k_threads; ++t)
      threads.emplace_back([&] {
        for (int i = 0; i < k_per_thread; ++i)
          pool.submit("echo", payload, [&](result r) {
            if (r.ok() && r.value.size() == payload.size()) ++ok;
          });
      });
    std::atomic<bool> done{false};
    std::thread watcher([&] {
      while (!done) {
        const auto st = pool_status_of(sup, "compute");
        most_unfinished = std::max(most_unfinished.load(), st->queued + st->in_flight);
        rss_peak = std::max(rss_peak, ringmaster::test::resident_kib());
        std::this_thread::sleep_for(2ms);
      }
    });
    for (auto& t : threads) t.join();
    EXPECT_TRUE(sup.wait_idle(60s));
    done = true;
    watcher.join();
  }
  EXPECT_EQ(ok.load(), k_threads * k_per_thread);
  EXPECT_LE(most_unfinished.load(), k_max_pending);
  std::printf("[ figures  ] %d submissions of 4 KiB from %d threads, max_pending %zu: at most %zu unfinished, RSS %ld -> "
              "peak %ld KiB\n",
              k_threads * k_per_thread, k_threads, k_max_pending, most_unfinished.load(), rss_before, rss_peak);
  if (!ringmaster::test::k_asan) {
    EXPECT_LE(rss_peak, rss_before + 64 * 1024) << "memory grew with the flood";
  }
}
