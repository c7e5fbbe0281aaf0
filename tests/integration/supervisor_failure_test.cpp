// How a supervised pool fails, with real worker processes and real signals (issue 3):
// crash attribution and attempts, poison jobs, timeouts, memory limits, handler
// exceptions, restart types, restart intensity, backoff, start failures, recycling and
// restart strategies.
//
// Every wait is bounded (a bug fails a test, never hangs it). Every worker pid a test sees
// (status snapshots, taken by a watcher thread every few milliseconds, and "pid" job
// results) must be gone once its supervisor is destroyed; the leak guard (the test main)
// also fails a test that leaves a descriptor, a child or a /dev/shm entry behind.
//
// Timing assertions use lower bounds the library guarantees (a timer never fires early)
// or orderings with wide margins, never upper bounds on wall-clock time.
//
// The supervision rules alone (what a death means, which job is charged, retry or fail,
// restart types, intensity, backoff, start failures, strategies) are pure code in
// supervisor/src/policy/, tested exactly by the tables in tests/unit/policy/. What stays
// here per rule is one test with real processes that proves the dispatcher applies it,
// beside what no table can show: messages, stderr tails, status fields, timers.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <future>
#include <map>
#include <mutex>
#include <optional>
#include <ringmaster/supervisor/supervisor.hpp>
#include <ringmaster/worker/demo_handlers.hpp>
#include <set>
#include <stop_token>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "waits.hpp"

namespace {

using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;
using ringmaster::error_kind;
using ringmaster::result;
using ringmaster::test::eventually;
using ringmaster::worker_state;

// The longest a test waits for a result: generous, since a bug should fail, not flake.
constexpr auto k_wait = 30s;
// The longest a test waits for workers to be ready. A worker starts in milliseconds; this
// is still generous, and keeps a run where workers cannot start at all from taking minutes.
constexpr auto k_start_wait = 5s;

testing::AssertionResult contains(std::string_view text, std::string_view part) {
  if (text.find(part) != std::string_view::npos) return testing::AssertionSuccess();
  return testing::AssertionFailure() << "'" << text << "' does not contain '" << part << "'";
}

ringmaster::supervisor_options supervisor_opts(ringmaster::restart_strategy s = ringmaster::restart_strategy::one_for_one) {
  // A short shutdown_timeout: a test that fails with jobs in flight must not wait 5 s.
  return {.name = "failure-test", .strategy = s, .shutdown_timeout = 1000ms};
}

std::optional<result> await(std::future<result>& f, std::chrono::seconds limit = k_wait) {
  if (f.wait_for(limit) != std::future_status::ready) return std::nullopt;
  return f.get();
}

// Every future against one deadline; fewer results than futures if it passed (callers
// ASSERT on the size).
std::vector<result> await_all(std::vector<std::future<result>>& fs, std::chrono::seconds limit = k_wait) {
  const auto deadline = clock_type::now() + limit;
  std::vector<result> out;
  for (auto& f : fs) {
    if (f.wait_until(deadline) != std::future_status::ready) break;
    out.push_back(f.get());
  }
  return out;
}

double ms_between(clock_type::time_point a, clock_type::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

const ringmaster::pool_status& pool_named(const ringmaster::supervisor_status& st, std::string_view name) {
  for (const auto& p : st.pools)
    if (p.name == name) return p;
  static const ringmaster::pool_status none;
  ADD_FAILURE() << "no pool named " << name << " in the status";
  return none;
}

unsigned restarts_for(const ringmaster::pool_status& p, const std::string& cause) {
  unsigned n = 0;
  for (const auto& w : p.workers)
    if (auto it = w.restarts_by_cause.find(cause); it != w.restarts_by_cause.end()) n += it->second;
  return n;
}

std::string causes(const ringmaster::pool_status& p) {
  std::string out;
  for (const auto& w : p.workers)
    for (const auto& [cause, n] : w.restarts_by_cause)
      out += "[" + std::to_string(w.slot) + "] " + cause + " x" + std::to_string(n) + "; ";
  return out;
}

bool all_ready(const ringmaster::pool_status& p) {
  for (const auto& w : p.workers)
    if (w.pid <= 0 || w.state != worker_state::ready) return false;
  return !p.workers.empty();
}

std::vector<pid_t> pids_of(const ringmaster::pool_status& p) {
  std::vector<pid_t> out;
  for (const auto& w : p.workers) out.push_back(w.pid);
  return out;
}

// Handlers for forked pools that need more than the demo set: "pid" answers the worker's
// pid. Created at static initialisation, so before any supervisor.
const ringmaster::handlers& pid_handlers() {
  static ringmaster::handlers h;
  static const bool registered = [] {
    for (const auto& type : ringmaster::demo_handlers().names())
      h.on(type, [type](ringmaster::job& j) { return (*ringmaster::demo_handlers().find(type))(j); });
    h.on("pid", [](ringmaster::job&) { return std::to_string(::getpid()); });
    return true;
  }();
  (void)registered;
  return h;
}
[[maybe_unused]] const ringmaster::handlers& g_pid_handlers = pid_handlers();

// The fixture: records every worker pid seen and checks, after the test body (whose
// supervisor is a local, destroyed by then), that each is gone.
class supervised : public testing::Test {
 protected:
  void TearDown() override {
    std::lock_guard lock(mutex_);
    for (pid_t pid : seen_) {
      errno = 0;
      const int rc = ::kill(pid, 0);
      const int err = errno;
      EXPECT_TRUE(rc == -1 && err == ESRCH) << "worker pid " << pid << " still exists after its supervisor was destroyed";
    }
  }

  /// A status snapshot; notes its worker pids.
  ringmaster::supervisor_status snapshot(const ringmaster::supervisor& sup) {
    auto st = sup.status();
    std::lock_guard lock(mutex_);
    for (const auto& p : st.pools)
      for (const auto& w : p.workers)
        if (w.pid > 0) seen_.insert(w.pid);
    return st;
  }

  /// Notes the pid a "pid" job answered with.
  void note_pid(const result& r) {
    if (!r.ok()) return;
    std::lock_guard lock(mutex_);
    seen_.insert(static_cast<pid_t>(std::stol(r.value)));
  }

  /// A thread that snapshots `sup` every few milliseconds until destroyed. Declare it
  /// after the supervisor, so that it stops first.
  [[nodiscard]] std::jthread watch(const ringmaster::supervisor& sup) {
    return std::jthread([this, &sup](std::stop_token stop) {
      while (!stop.stop_requested()) {
        (void)snapshot(sup);
        std::this_thread::sleep_for(3ms);
      }
    });
  }

  /// Waits until every worker of every pool is ready.
  bool all_workers_ready(const ringmaster::supervisor& sup) {
    auto ready = [&] {
      const auto st = snapshot(sup);
      for (const auto& p : st.pools)
        if (!all_ready(p)) return false;
      return true;
    };
    return eventually(ready, k_start_wait);
  }

 private:
  std::mutex mutex_;
  std::set<pid_t> seen_;
};

// =======================================================================================
// Crashes: attributed to exactly their job, retried up to max_attempts, unnoticed by the
// other jobs of the pool. The rules alone, as tables: tests/unit/policy/
// death_verdict_test.cpp (DeathVerdict, ChargedJob) and attempt_outcome_test.cpp.

struct crash_case {
  const char* name;
  const char* command;  // an exec'd test worker (C++ or C), else nullptr: forked workers running the demo handlers
  const char* type;
  const char* payload;
  const char* cause;    // as the result message and restarts_by_cause name it
};

class Crash : public supervised, public testing::WithParamInterface<crash_case> {};

TEST_P(Crash, IsChargedToItsJobAloneAndRetriedUpToMaxAttempts) {
  // Arrange
  const crash_case& c = GetParam();
  const auto& demo = ringmaster::demo_handlers();
  ringmaster::supervisor sup(supervisor_opts());
  auto& pool = c.command ? sup.add_pool("crashy", {.workers = 2, .command = {c.command}, .max_attempts = 3})
                         : sup.add_pool("crashy", demo, {.workers = 2, .max_attempts = 3});
  sup.start();
  auto watcher = watch(sup);
  ASSERT_TRUE(all_workers_ready(sup)) << "the workers did not start";

  // Act: the crashing job in the middle of a stream of good ones.
  std::vector<std::future<result>> good;
  std::vector<std::string> payloads;
  std::optional<std::future<result>> bad;
  for (int i = 0; i < 40; ++i) {
    if (i == 20) bad = pool.submit(c.type, c.payload, "the-crash");
    payloads.push_back("job-" + std::to_string(i));
    good.push_back(pool.submit("echo", payloads.back(), payloads.back()));
  }

  // Assert
  auto r = await(*bad);
  ASSERT_TRUE(r) << "no result for the crashing job";
  EXPECT_EQ(r->id, "the-crash");
  EXPECT_EQ(r->error, error_kind::crash) << r->value;
  EXPECT_EQ(r->attempts, 3u);
  EXPECT_TRUE(contains(r->value, c.cause));
  auto rs = await_all(good);
  ASSERT_EQ(rs.size(), good.size());
  for (std::size_t i = 0; i < rs.size(); ++i) {
    EXPECT_TRUE(rs[i].ok()) << rs[i].id << ": " << ringmaster::to_string(rs[i].error) << " " << rs[i].value;
    EXPECT_EQ(rs[i].value, payloads[i]);
    EXPECT_EQ(rs[i].attempts, 1u) << rs[i].id << " was charged for another job's crash";
  }
  const auto st = pool_named(snapshot(sup), "crashy");
  EXPECT_EQ(st.failed, 1u);
  EXPECT_EQ(st.completed, good.size());
  EXPECT_EQ(st.retried, 2u);
  EXPECT_EQ(st.restarts, 3u) << causes(st);
  EXPECT_EQ(restarts_for(st, c.cause), 3u) << causes(st);
  EXPECT_FALSE(st.gave_up);
}

INSTANTIATE_TEST_SUITE_P(
    Workers, Crash,
    // ForkedSegv is the wiring of the rules (a forked worker); the exec'd rows are real
    // process behaviour (std::terminate and a stack overflow end the worker by a signal,
    // not a hang; a C worker on the C ABI dies as any process does). Which cause each
    // wait status gets is the DeathVerdict table's.
    testing::Values(crash_case{"ForkedSegv", nullptr, "crash", R"({"signal":"SEGV"})", "SIGSEGV"},
                    crash_case{"ExecTerminate", RINGMASTER_TEST_WORKER, "terminate", "", "SIGABRT"},
                    crash_case{"ExecStackOverflow", RINGMASTER_TEST_WORKER, "overflow", "", "SIGSEGV"},
                    crash_case{"CSegv", RINGMASTER_C_TEST_WORKER, "crash", R"({"signal":"SEGV"})", "SIGSEGV"},
                    crash_case{"CAbort", RINGMASTER_C_TEST_WORKER, "crash", R"({"signal":"ABRT"})", "SIGABRT"}),
    [](const testing::TestParamInfo<crash_case>& p) { return std::string(p.param.name); });

// Jobs a worker finished before it crashed are not charged, not run again and not made
// to wait: only the job it died in is affected ("the other jobs of the pool never
// notice"; a job is run again only when its worker dies *mid-job*).

// Executions per job, counted in memory shared with every worker: mapped before the
// supervisor is constructed, so the fork server and its workers inherit it.
std::atomic<std::uint32_t>* g_runs = nullptr;
constexpr std::size_t k_run_slots = 64;

const ringmaster::handlers& counting_handlers() {
  static ringmaster::handlers h;
  static const bool registered = [] {
    h.on("count", [](ringmaster::job& j) {
      const auto i = static_cast<std::size_t>(std::stoul(std::string(j.payload())));
      if (g_runs && i < k_run_slots) g_runs[i].fetch_add(1);
      return std::string(j.payload());
    });
    h.on("crash", [](ringmaster::job& j) { return (*ringmaster::demo_handlers().find("crash"))(j); });
    h.on("sleep", [](ringmaster::job& j) { return (*ringmaster::demo_handlers().find("sleep"))(j); });
    return true;
  }();
  (void)registered;
  return h;
}
[[maybe_unused]] const ringmaster::handlers& g_counting_handlers = counting_handlers();

class Attribution : public supervised {
 protected:
  void SetUp() override {
    void* p = ::mmap(nullptr, k_run_slots * sizeof(std::uint32_t), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    ASSERT_NE(p, MAP_FAILED);
    g_runs = new (p) std::atomic<std::uint32_t>[k_run_slots]{};
  }
  void TearDown() override {
    ::munmap(static_cast<void*>(g_runs), k_run_slots * sizeof(std::uint32_t));
    g_runs = nullptr;
    supervised::TearDown();
  }
};

TEST_F(Attribution, JobsFinishedBeforeACrashAreNotRunAgain) {
  // Arrange: one worker, several jobs sent to it at once (prefetch), the last one fatal.
  ringmaster::supervisor sup(supervisor_opts());
  auto& pool = sup.add_pool("count", counting_handlers(), {.workers = 1, .max_attempts = 1, .prefetch = 16});
  std::vector<std::future<result>> fs;
  for (int i = 0; i < 8; ++i) fs.push_back(pool.submit("count", std::to_string(i), "n" + std::to_string(i)));
  auto crash = pool.submit("crash", R"({"signal":"SEGV"})", "crash");

  // Act: submitted before start, so that the worker gets them all in one batch.
  sup.start();
  auto watcher = watch(sup);

  // Assert
  auto rc = await(crash);
  ASSERT_TRUE(rc);
  EXPECT_EQ(rc->error, error_kind::crash);
  auto rs = await_all(fs);
  ASSERT_EQ(rs.size(), fs.size());
  for (std::size_t i = 0; i < rs.size(); ++i) {
    EXPECT_TRUE(rs[i].ok()) << rs[i].value;
    EXPECT_EQ(rs[i].attempts, 1u);
    EXPECT_EQ(g_runs[i].load(), 1u) << "job n" << i << " finished before its worker crashed, yet ran again";
  }
}

TEST_F(Attribution, FinishedResultsAreNotHeldBehindALongJob) {
  // Arrange
  ringmaster::supervisor sup(supervisor_opts());
  auto& pool = sup.add_pool("count", counting_handlers(), {.workers = 1, .prefetch = 16});
  std::vector<std::future<result>> fs;
  for (int i = 0; i < 8; ++i) fs.push_back(pool.submit("count", std::to_string(i), "n" + std::to_string(i)));
  auto slow = pool.submit("sleep", "2000", "slow");

  // Act: submitted before start, so that the worker gets them all in one batch.
  sup.start();
  auto watcher = watch(sup);

  // Assert: the quick jobs' results arrive long before the 2 s job's (an ordering with a
  // 1 s margin, not a wall-clock bound).
  auto rs = await_all(fs);
  const auto quick_done = clock_type::now();
  ASSERT_EQ(rs.size(), fs.size());
  auto r = await(slow);
  const auto slow_done = clock_type::now();
  ASSERT_TRUE(r);
  EXPECT_TRUE(r->ok());
  EXPECT_GE(r->ms, 2000.0) << "a result's ms is the run time its worker measured (wire::header::run_us)";
  EXPECT_GT(ms_between(quick_done, slow_done), 1000.0)
      << "results of jobs finished before a 2 s job were delivered only with its result";
  for (std::size_t i = 0; i < rs.size(); ++i) EXPECT_EQ(g_runs[i].load(), 1u);
}

using RandomCrash = supervised;

TEST_F(RandomCrash, EveryJobEndsSurvivedOrFailedAfterMaxAttemptsAndNoneIsLost) {
  // Arrange: restarts are expected in numbers here, so intensity and backoff are relaxed.
  const auto& demo = ringmaster::demo_handlers();
  ringmaster::supervisor sup(supervisor_opts());
  auto& pool = sup.add_pool("flaky", demo,
                            {.workers = 2, .max_restarts = 1000, .max_attempts = 3, .backoff_initial = 1ms,
                             .backoff_max = 5ms});
  sup.start();
  auto watcher = watch(sup);

  // Act
  constexpr int k_jobs = 60;
  std::vector<std::future<result>> fs;
  for (int i = 0; i < k_jobs; ++i) fs.push_back(pool.submit("crash", R"({"signal":"SEGV","p":0.3})", "r" + std::to_string(i)));

  // Assert
  auto rs = await_all(fs);
  ASSERT_EQ(rs.size(), fs.size()) << "a job got no result";
  std::set<std::string> ids;
  unsigned survived = 0, died = 0;
  for (const auto& r : rs) {
    ids.insert(r.id);
    if (r.ok()) {
      ++survived;
      EXPECT_EQ(r.value, "survived");
      EXPECT_GE(r.attempts, 1u);
      EXPECT_LE(r.attempts, 3u);
    } else {
      ++died;
      EXPECT_EQ(r.error, error_kind::crash) << r.id << ": " << r.value;
      EXPECT_EQ(r.attempts, 3u) << r.id;
      EXPECT_TRUE(contains(r.value, "SIGSEGV"));
    }
  }
  EXPECT_EQ(ids.size(), static_cast<std::size_t>(k_jobs)) << "a job got two results, or another's";
  EXPECT_EQ(survived + died, static_cast<unsigned>(k_jobs));
  const auto st = pool_named(snapshot(sup), "flaky");
  EXPECT_EQ(st.completed, survived);
  EXPECT_EQ(st.failed, died);
  EXPECT_FALSE(st.gave_up) << st.gave_up_reason;
}

// =======================================================================================
// Timeouts

using Timeout = supervised;

TEST_F(Timeout, HungJobIsStoppedChargedAndItsWorkerReplaced) {
  // Arrange
  const auto& demo = ringmaster::demo_handlers();
  ringmaster::supervisor sup(supervisor_opts());
  auto& pool = sup.add_pool("hangs", demo, {.workers = 2, .max_attempts = 2, .job_timeout = 300ms});
  sup.start();
  auto watcher = watch(sup);
  ASSERT_TRUE(all_workers_ready(sup));
  const auto before = pids_of(pool_named(snapshot(sup), "hangs"));

  // Act
  auto hung = pool.submit("hang", "", "hung");
  std::vector<std::future<result>> good;
  for (int i = 0; i < 20; ++i) good.push_back(pool.submit("echo", std::to_string(i), "g" + std::to_string(i)));

  // Assert
  auto r = await(hung);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->error, error_kind::timeout) << r->value;
  EXPECT_EQ(r->attempts, 2u);
  EXPECT_TRUE(contains(r->value, "job_timeout"));
  EXPECT_TRUE(contains(r->value, "300ms"));
  EXPECT_GE(r->ms, 300.0);
  auto rs = await_all(good);
  ASSERT_EQ(rs.size(), good.size());
  for (const auto& g : rs) {
    EXPECT_TRUE(g.ok()) << g.id << ": " << g.value;
    EXPECT_EQ(g.attempts, 1u) << g.id;
  }
  // The worker that ran the hung job was replaced by a new process.
  ASSERT_TRUE(eventually([&] {
    const auto st = pool_named(snapshot(sup), "hangs");
    return all_ready(st) && st.workers[static_cast<std::size_t>(r->worker)].pid != before[static_cast<std::size_t>(r->worker)];
  })) << "the timed-out worker was not replaced";
  const auto st = pool_named(snapshot(sup), "hangs");
  EXPECT_EQ(restarts_for(st, "timeout"), 2u) << causes(st);
  EXPECT_FALSE(st.gave_up);
}

// The exec'd test workers, C++ (serve()) and C (worker.h), for tests of a real executable.
struct exec_case {
  const char* name;
  const char* command;
};
const auto k_exec_workers = testing::Values(exec_case{"Exec", RINGMASTER_TEST_WORKER}, exec_case{"C", RINGMASTER_C_TEST_WORKER});
std::string exec_case_name(const testing::TestParamInfo<exec_case>& p) { return p.param.name; }

class TimeoutLadder : public supervised, public testing::WithParamInterface<exec_case> {};

TEST_P(TimeoutLadder, WorkerIgnoringSigtermIsKilledAfterKillGrace) {
  // Arrange: one exec'd worker; "stubborn" ignores SIGTERM, "hang" does not.
  ringmaster::supervisor sup(supervisor_opts());
  auto& pool = sup.add_pool("stubborn", {.workers = 1,
                                         .command = {GetParam().command},
                                         .max_attempts = 1,
                                         .job_timeout = 300ms,
                                         .kill_grace = 800ms});
  sup.start();
  auto watcher = watch(sup);
  ASSERT_TRUE(all_workers_ready(sup)) << "the workers did not start";

  // Act
  auto stubborn = pool.submit("stubborn", "", "stubborn");
  auto hang = pool.submit("hang", "", "hang");
  auto after = pool.submit("pid", "", "after");

  // Assert: both time out; the stubborn one only ends by SIGKILL, kill_grace after the
  // SIGTERM, so its attempt lasted at least job_timeout + kill_grace.
  auto rs = await(stubborn);
  ASSERT_TRUE(rs);
  EXPECT_EQ(rs->error, error_kind::timeout) << rs->value;
  EXPECT_EQ(rs->attempts, 1u);
  EXPECT_GE(rs->ms, 1100.0);
  auto rh = await(hang);
  ASSERT_TRUE(rh);
  EXPECT_EQ(rh->error, error_kind::timeout) << rh->value;
  EXPECT_GE(rh->ms, 300.0);
  EXPECT_LT(rh->ms, rs->ms) << "a worker that obeys SIGTERM should not wait for kill_grace";
  auto ra = await(after);
  ASSERT_TRUE(ra);
  EXPECT_TRUE(ra->ok()) << ra->value;
  note_pid(*ra);
  const auto st = pool_named(snapshot(sup), "stubborn");
  EXPECT_EQ(restarts_for(st, "timeout"), 2u) << causes(st);
}

INSTANTIATE_TEST_SUITE_P(Workers, TimeoutLadder, k_exec_workers, exec_case_name);

TEST_F(Timeout, AppliesToTheLastJobBeforeRecycling) {
  // Arrange: a worker recycled after every job, so each job is sent with a stop message.
  const auto& demo = ringmaster::demo_handlers();
  ringmaster::supervisor sup(supervisor_opts());
  auto& pool = sup.add_pool("recycle-hang", demo,
                            {.workers = 1, .max_attempts = 1, .job_timeout = 300ms, .max_jobs_per_worker = 1});
  sup.start();
  auto watcher = watch(sup);

  // Act
  auto hung = pool.submit("hang", "", "hung");

  // Assert: 300 ms is the limit; 10 s is generous.
  auto r = await(hung, 10s);
  ASSERT_TRUE(r) << "a hung job sent as its worker's last before recycling never timed out";
  EXPECT_EQ(r->error, error_kind::timeout) << r->value;
  const auto st = pool_named(snapshot(sup), "recycle-hang");
  EXPECT_EQ(restarts_for(st, "timeout"), 1u) << causes(st);
}

// =======================================================================================
// Memory limits (a death by memory, from the wait status and peak RSS: DeathVerdict in
// tests/unit/policy/death_verdict_test.cpp)

struct memory_case {
  const char* name;
  const char* command;  // an exec'd test worker (C++ or C), else nullptr: forked demo handlers
};

class Memory : public supervised, public testing::WithParamInterface<memory_case> {};

TEST_P(Memory, HogIsReportedAsMemoryAndTheWorkerKeepsServing) {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  // AddressSanitizer and ThreadSanitizer reserve terabytes of address space for their
  // shadow memory, so no process built with them can live under an RLIMIT_AS limit; the
  // plain build runs this.
  GTEST_SKIP() << "memory_limit (RLIMIT_AS) cannot coexist with a sanitizer's shadow memory";
#endif
  // Arrange
  const auto& demo = ringmaster::demo_handlers();
  ringmaster::supervisor sup(supervisor_opts());
  const ringmaster::pool_options o{.workers = 1, .max_attempts = 1, .memory_limit = std::size_t{256} << 20};
  auto with_command = o;
  if (GetParam().command) with_command.command = {GetParam().command};
  auto& pool = GetParam().command ? sup.add_pool("hog", with_command) : sup.add_pool("hog", demo, o);
  sup.start();
  auto watcher = watch(sup);
  ASSERT_TRUE(all_workers_ready(sup)) << "the workers did not start";

  // Act
  auto small = pool.submit("alloc", "16", "small");
  auto hog = pool.submit("alloc", "1024", "hog");
  auto after = pool.submit("alloc", "16", "after");

  // Assert
  auto rs = await(small);
  ASSERT_TRUE(rs);
  EXPECT_TRUE(rs->ok()) << "a worker under memory_limit cannot allocate 16 MiB: " << rs->value;
  auto rh = await(hog);
  ASSERT_TRUE(rh);
  EXPECT_EQ(rh->error, error_kind::memory) << ringmaster::to_string(rh->error) << ": " << rh->value;
  EXPECT_EQ(rh->attempts, 1u);
  auto ra = await(after);
  ASSERT_TRUE(ra);
  EXPECT_TRUE(ra->ok()) << ra->value;
}

// C: malloc returning NULL under the limit, answered with rm_fail(RM_FAIL_MEMORY).
INSTANTIATE_TEST_SUITE_P(Workers, Memory,
                         testing::Values(memory_case{"Forked", nullptr}, memory_case{"Exec", RINGMASTER_TEST_WORKER},
                                         memory_case{"C", RINGMASTER_C_TEST_WORKER}),
                         [](const testing::TestParamInfo<memory_case>& p) { return std::string(p.param.name); });

// =======================================================================================
// Handler exceptions

using Exception = supervised;

TEST_F(Exception, IsReportedWithItsMessageAndNotRetried) {
  // Arrange
  const auto& demo = ringmaster::demo_handlers();
  ringmaster::supervisor sup(supervisor_opts());
  auto& pool = sup.add_pool("throws", demo, {.workers = 1, .max_attempts = 3});
  sup.start();
  auto watcher = watch(sup);

  // Act
  auto f = pool.submit("fail", "bad input on line 7", "thrower");
  auto g = pool.submit("echo", "still here", "next");

  // Assert
  auto r = await(f);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->error, error_kind::exception);
  EXPECT_EQ(r->value, "bad input on line 7");
  EXPECT_EQ(r->attempts, 1u);
  auto rg = await(g);
  ASSERT_TRUE(rg);
  EXPECT_TRUE(rg->ok());
  const auto st = pool_named(snapshot(sup), "throws");
  EXPECT_EQ(st.retried, 0u);
  EXPECT_EQ(st.restarts, 0u) << "a handler that throws must not cost its worker";
}

TEST_F(Exception, IsRetriedUpToMaxAttemptsWithRetryOnError) {
  // Arrange
  const auto& demo = ringmaster::demo_handlers();
  ringmaster::supervisor sup(supervisor_opts());
  auto& pool = sup.add_pool("retries", demo, {.workers = 2, .max_attempts = 3, .retry_on_error = true});
  sup.start();
  auto watcher = watch(sup);

  // Act
  auto f = pool.submit("fail", "always fails", "thrower");

  // Assert
  auto r = await(f);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->error, error_kind::exception);
  EXPECT_TRUE(contains(r->value, "always fails"));
  EXPECT_EQ(r->attempts, 3u);
  const auto st = pool_named(snapshot(sup), "retries");
  EXPECT_EQ(st.retried, 2u);
  EXPECT_EQ(st.restarts, 0u);
  EXPECT_EQ(st.failed, 1u);
}

// =======================================================================================
// Restart types (the rule alone: tests/unit/policy/restart_or_retire_test.cpp)

using RestartType = supervised;

TEST_F(RestartType, TemporaryWorkerIsNotReplacedAndThePoolGivesUpWhenNoneIsLeft) {
  // Arrange
  const auto& demo = ringmaster::demo_handlers();
  ringmaster::supervisor sup(supervisor_opts());
  auto& pool = sup.add_pool("temp", demo, {.workers = 2, .restart = ringmaster::restart_type::temporary, .max_attempts = 1});
  sup.start();
  auto watcher = watch(sup);
  ASSERT_TRUE(all_workers_ready(sup));

  // Act 1: one worker dies.
  auto c1 = pool.submit("crash", R"({"signal":"SEGV"})", "c1");
  auto r1 = await(c1);
  ASSERT_TRUE(r1);
  EXPECT_EQ(r1->error, error_kind::crash);
  const int dead = r1->worker;
  ASSERT_TRUE(dead == 0 || dead == 1);

  // Assert 1: its slot stays empty; the other worker runs everything.
  ASSERT_TRUE(eventually([&] {
    const auto st = pool_named(snapshot(sup), "temp");
    return st.workers[static_cast<std::size_t>(dead)].state == worker_state::signaled;
  }));
  std::vector<std::future<result>> fs;
  for (int i = 0; i < 10; ++i) fs.push_back(pool.submit("echo", std::to_string(i), "e" + std::to_string(i)));
  auto rs = await_all(fs);
  ASSERT_EQ(rs.size(), fs.size());
  for (const auto& r : rs) {
    EXPECT_TRUE(r.ok()) << r.value;
    EXPECT_EQ(r.worker, 1 - dead);
  }
  {
    const auto st = pool_named(snapshot(sup), "temp");
    EXPECT_EQ(st.workers[static_cast<std::size_t>(dead)].pid, 0);
    EXPECT_EQ(st.workers[static_cast<std::size_t>(dead)].state, worker_state::signaled);
    EXPECT_FALSE(st.gave_up);
  }

  // Act 2: the last worker dies with jobs queued behind its job.
  auto c2 = pool.submit("crash", R"({"signal":"SEGV"})", "c2");
  std::vector<std::future<result>> queued;
  for (int i = 0; i < 5; ++i) queued.push_back(pool.submit("sleep", "10", "q" + std::to_string(i)));

  // Assert 2: the pool gives up; the queued jobs fail `stopped`; so do later ones.
  auto r2 = await(c2);
  ASSERT_TRUE(r2);
  EXPECT_EQ(r2->error, error_kind::crash);
  auto rq = await_all(queued);
  ASSERT_EQ(rq.size(), queued.size());
  for (const auto& r : rq) {
    EXPECT_EQ(r.error, error_kind::stopped) << r.id << ": " << r.value;
    EXPECT_TRUE(contains(r.value, "no workers left"));
  }
  EXPECT_TRUE(sup.any_pool_gave_up());
  EXPECT_TRUE(contains(pool_named(snapshot(sup), "temp").gave_up_reason, "no workers left"));
  auto late = pool.submit("echo", "late", "late");
  ASSERT_EQ(late.wait_for(0s), std::future_status::ready) << "a submission to a pool that gave up must fail at once";
  EXPECT_EQ(late.get().error, error_kind::stopped);
}

TEST_F(RestartType, TransientWorkerIsRestartedAfterAnAbnormalExitOnly) {
  // Arrange
  ringmaster::supervisor sup(supervisor_opts());
  auto& pool = sup.add_pool("trans", {.workers = 2,
                                      .command = {RINGMASTER_TEST_WORKER},
                                      .restart = ringmaster::restart_type::transient,
                                      .max_attempts = 1});
  sup.start();
  auto watcher = watch(sup);
  ASSERT_TRUE(all_workers_ready(sup));
  const auto before = pids_of(pool_named(snapshot(sup), "trans"));

  // Act 1: an abnormal exit (code 3) mid-job.
  auto f3 = pool.submit("exit", "3", "exit3");
  auto r3 = await(f3);
  ASSERT_TRUE(r3);
  EXPECT_EQ(r3->error, error_kind::crash);
  EXPECT_TRUE(contains(r3->value, "exit code 3"));
  const auto s3 = static_cast<std::size_t>(r3->worker);

  // Assert 1: restarted.
  ASSERT_TRUE(eventually([&] {
    const auto st = pool_named(snapshot(sup), "trans");
    return all_ready(st) && st.workers[s3].pid != before[s3];
  })) << "a transient worker that exited with code 3 was not restarted";

  // Act 2: a normal exit (code 0) mid-job: the job still failed, but the worker ended
  // normally, so a transient slot stays empty.
  auto f0 = pool.submit("exit", "0", "exit0");
  auto r0 = await(f0);
  ASSERT_TRUE(r0);
  EXPECT_EQ(r0->error, error_kind::crash) << "a job whose worker exited under it has no result";
  EXPECT_TRUE(contains(r0->value, "exit code 0"));
  const auto s0 = static_cast<std::size_t>(r0->worker);

  // Assert 2
  ASSERT_TRUE(eventually([&] { return pool_named(snapshot(sup), "trans").workers[s0].state == worker_state::exited; }))
      << "a transient worker that exited with code 0 was restarted";
  std::vector<std::future<result>> fs;
  for (int i = 0; i < 6; ++i) fs.push_back(pool.submit("pid", "", "p" + std::to_string(i)));
  auto rs = await_all(fs);
  ASSERT_EQ(rs.size(), fs.size());
  for (const auto& r : rs) {
    EXPECT_TRUE(r.ok()) << r.value;
    EXPECT_NE(static_cast<std::size_t>(r.worker), s0);
    note_pid(r);
  }
  const auto st = pool_named(snapshot(sup), "trans");
  EXPECT_EQ(st.workers[s0].pid, 0);
  EXPECT_FALSE(st.gave_up);
}

TEST_F(RestartType, TransientWorkerIsRestartedAfterRecycling) {
  // Arrange
  ringmaster::supervisor sup(supervisor_opts());
  auto& pool = sup.add_pool("trans-recycle", pid_handlers(),
                            {.workers = 1, .restart = ringmaster::restart_type::transient, .max_jobs_per_worker = 3});
  sup.start();
  auto watcher = watch(sup);

  // Act
  std::vector<std::future<result>> fs;
  for (int i = 0; i < 12; ++i) fs.push_back(pool.submit("pid", "", "p" + std::to_string(i)));

  // Assert: four workers in turn, each exiting cleanly after three jobs, each replaced.
  auto rs = await_all(fs);
  ASSERT_EQ(rs.size(), fs.size());
  std::set<std::string> pids;
  for (const auto& r : rs) {
    EXPECT_TRUE(r.ok()) << r.value;
    note_pid(r);
    pids.insert(r.value);
  }
  EXPECT_EQ(pids.size(), 4u);
  EXPECT_TRUE(eventually([&] {
    const auto st = pool_named(snapshot(sup), "trans-recycle");
    return restarts_for(st, "recycled") == 4 && all_ready(st);
  })) << causes(pool_named(snapshot(sup), "trans-recycle"));
}

// =======================================================================================
// Restart intensity (the rule alone, exact times: tests/unit/policy/restart_intensity_test.cpp)

using RestartIntensity = supervised;

TEST_F(RestartIntensity, ExceededStopsThePoolAndFailsItsJobs) {
  // Arrange: at most 3 restarts in 10 s.
  const auto& demo = ringmaster::demo_handlers();
  ringmaster::supervisor sup(supervisor_opts());
  auto& pool = sup.add_pool("fragile", demo,
                            {.workers = 1, .max_restarts = 3, .restart_window = 10s, .max_attempts = 1, .backoff_initial = 1ms});
  auto& bystander = sup.add_pool("bystander", demo, {.workers = 1});
  sup.start();
  auto watcher = watch(sup);

  // Act: a stream of crashing jobs, then good ones.
  std::vector<std::future<result>> fs;
  for (int i = 0; i < 6; ++i) fs.push_back(pool.submit("crash", R"({"signal":"SEGV"})", "c" + std::to_string(i)));
  for (int i = 0; i < 5; ++i) fs.push_back(pool.submit("echo", "x", "e" + std::to_string(i)));

  // Assert: four crashes (the fourth restart is one too many), the rest `stopped`.
  auto rs = await_all(fs);
  ASSERT_EQ(rs.size(), fs.size());
  for (std::size_t i = 0; i < rs.size(); ++i) {
    if (i < 4) {
      EXPECT_EQ(rs[i].error, error_kind::crash) << rs[i].id << ": " << rs[i].value;
    } else {
      EXPECT_EQ(rs[i].error, error_kind::stopped) << rs[i].id << ": " << ringmaster::to_string(rs[i].error) << " " << rs[i].value;
      EXPECT_TRUE(contains(rs[i].value, "restarts")) << rs[i].id;
    }
  }
  EXPECT_TRUE(sup.any_pool_gave_up());
  const auto st = snapshot(sup);
  const auto& p = pool_named(st, "fragile");
  EXPECT_TRUE(p.gave_up);
  EXPECT_TRUE(contains(p.gave_up_reason, "more than 3 restarts within 10s")) << p.gave_up_reason;
  EXPECT_TRUE(eventually([&] {
    const auto now = pool_named(snapshot(sup), "fragile");  // a copy: the snapshot is a temporary
    for (const auto& w : now.workers)
      if (w.pid != 0 || w.state != worker_state::stopped) return false;
    return true;
  })) << "a pool that gave up still has a worker";
  EXPECT_FALSE(pool_named(st, "bystander").gave_up);
  auto late = pool.submit("echo", "late", "late");
  ASSERT_EQ(late.wait_for(0s), std::future_status::ready) << "a submission to a pool that gave up must fail at once";
  const auto rl = late.get();
  EXPECT_EQ(rl.error, error_kind::stopped);
  EXPECT_TRUE(contains(rl.value, "restarts"));
  auto other = bystander.submit("echo", "fine", "fine");
  auto ro = await(other);
  ASSERT_TRUE(ro);
  EXPECT_TRUE(ro->ok()) << "another pool must not be affected: " << ro->value;
}

TEST_F(RestartIntensity, CountsAJobsFirstDeathOnlyAndForgetsItOnASuccess) {
  // Arrange: one restart allowed. Two poison jobs kill their worker three times each (six
  // deaths), a good job succeeding between them: the pool stays up only if the
  // dispatcher passes a job's later deaths as such and reports the success to the rule.
  const auto& demo = ringmaster::demo_handlers();
  ringmaster::supervisor sup(supervisor_opts());
  auto& pool = sup.add_pool("poisoned", demo,
                            {.workers = 1, .max_restarts = 1, .restart_window = 60s, .max_attempts = 3,
                             .backoff_initial = 1ms, .backoff_max = 5ms});
  sup.start();
  auto watcher = watch(sup);

  // Act
  auto p1 = pool.submit("crash", R"({"signal":"SEGV"})", "poison-1");
  auto good = pool.submit("echo", "fine", "good");
  auto p2 = pool.submit("crash", R"({"signal":"SEGV"})", "poison-2");

  // Assert
  auto r1 = await(p1), rg = await(good), r2 = await(p2);
  ASSERT_TRUE(r1 && rg && r2);
  EXPECT_EQ(r1->error, error_kind::crash) << r1->value;
  EXPECT_EQ(r1->attempts, 3u);
  EXPECT_TRUE(rg->ok()) << rg->value;
  EXPECT_EQ(r2->error, error_kind::crash) << r2->value;
  EXPECT_EQ(r2->attempts, 3u);
  const auto st = pool_named(snapshot(sup), "poisoned");
  EXPECT_FALSE(st.gave_up) << st.gave_up_reason;
  EXPECT_EQ(st.restarts, 6u) << causes(st);
}

using PoisonJob = supervised;

TEST_F(PoisonJob, WorkerStatusCountsTheJobThatKilledItAsFailed) {
  // Arrange
  const auto& demo = ringmaster::demo_handlers();
  ringmaster::supervisor sup(supervisor_opts());
  auto& pool = sup.add_pool("single", demo, {.workers = 1, .max_attempts = 2});
  sup.start();
  auto watcher = watch(sup);

  // Act: one job that fails by killing its worker (twice), one that fails by throwing.
  auto c = pool.submit("crash", R"({"signal":"SEGV"})", "crash");
  auto f = pool.submit("fail", "thrown", "thrown");
  auto e = pool.submit("echo", "fine", "fine");
  auto rc = await(c), rf = await(f), re = await(e);
  ASSERT_TRUE(rc && rf && re);
  ASSERT_EQ(rc->error, error_kind::crash);
  ASSERT_EQ(rf->error, error_kind::exception);

  // Assert: the slot's FAILED counts both, as the pool's does.
  const auto st = snapshot(sup);
  const auto& p = pool_named(st, "single");
  ASSERT_EQ(p.workers.size(), 1u);
  EXPECT_EQ(p.failed, 2u);
  EXPECT_EQ(p.workers[0].jobs_failed, 2u);
  EXPECT_EQ(p.workers[0].jobs_done, 3u);
}

// =======================================================================================
// Backoff (delays, cap, jitter and reset, exact: tests/unit/policy/backoff_test.cpp)

using Backoff = supervised;

TEST_F(Backoff, DelaysGrowBetweenRestartsOfOneSlotAndResetAfterAStableRun) {
  // Arrange: one worker, so every restart is of the same slot.
  const auto& demo = ringmaster::demo_handlers();
  ringmaster::supervisor sup(supervisor_opts());
  auto& pool = sup.add_pool("backoff", demo,
                            {.workers = 1, .max_restarts = 100, .max_attempts = 1, .backoff_initial = 20ms,
                             .backoff_max = 500ms, .stable_after = 200ms});
  sup.start();
  auto watcher = watch(sup);
  ASSERT_TRUE(all_workers_ready(sup));

  // How long from a crash's result until the replacement runs a job: the restart delay
  // plus the start of a process.
  auto restart_gap = [&]() -> std::optional<double> {
    auto c = pool.submit("crash", R"({"signal":"SEGV"})");
    auto rc = await(c);
    if (!rc || rc->error != error_kind::crash) return std::nullopt;
    const auto died = clock_type::now();
    auto e = pool.submit("echo", "up");
    auto re = await(e);
    if (!re || !re->ok()) return std::nullopt;
    return ms_between(died, clock_type::now());
  };

  // Act: six restarts in a row (expected delays 0, 20, 40, 80, 160, 320 ms, +-25%).
  std::vector<double> gaps;
  for (int i = 0; i < 6; ++i) {
    auto g = restart_gap();
    ASSERT_TRUE(g) << "restart " << i << " failed";
    gaps.push_back(*g);
  }
  // A stable run (longer than stable_after), then two more restarts.
  std::this_thread::sleep_for(400ms);
  auto after_stable = restart_gap();
  ASSERT_TRUE(after_stable);
  auto next = restart_gap();
  ASSERT_TRUE(next);

  // Assert: growth, with lower bounds the library guarantees and wide-margin orderings.
  std::string all;
  for (double g : gaps) all += std::to_string(static_cast<int>(g)) + " ";
  all += "| " + std::to_string(static_cast<int>(*after_stable)) + " " + std::to_string(static_cast<int>(*next));
  SCOPED_TRACE("gaps (ms): " + all);
  EXPECT_GE(gaps[5], 240.0);  // 320 ms - 25%
  EXPECT_GE(gaps[4], 120.0);  // 160 ms - 25%
  EXPECT_GE(gaps[3], 60.0);   // 80 ms - 25%
  EXPECT_LT(gaps[0], gaps[5]);
  EXPECT_LT(gaps[1], gaps[5]);
  EXPECT_LT(gaps[1], gaps[4]);
  EXPECT_LT(gaps[2], gaps[5]);
  EXPECT_LT(gaps[3], gaps[5]);
  // Reset: the first restart after a stable run is immediate, the next waits
  // backoff_initial again (not the 500 ms cap where the count had got to).
  EXPECT_LT(*after_stable, gaps[5] / 2);
  EXPECT_LT(*next, gaps[5] / 2);
  const auto st = pool_named(snapshot(sup), "backoff");
  EXPECT_EQ(restarts_for(st, "SIGSEGV"), 8u) << causes(st);
  EXPECT_FALSE(st.gave_up);
}

// =======================================================================================
// Start failures (counting, and the EAGAIN rule: tests/unit/policy/start_failure_test.cpp)

using StartFailure = supervised;

// Submits jobs to a pool whose workers cannot start, and checks that it gives up fast,
// failing them `stopped` with a reason containing each of `reason_parts`.
void expect_gives_up_fast(ringmaster::supervisor& sup, ringmaster::pool& pool, const std::vector<std::string>& reason_parts) {
  std::vector<std::future<result>> fs;
  for (int i = 0; i < 3; ++i) fs.push_back(pool.submit("echo", "x", "j" + std::to_string(i)));
  auto rs = await_all(fs, 10s);
  ASSERT_EQ(rs.size(), fs.size()) << "jobs of a pool that cannot start got no result";
  for (const auto& r : rs) {
    EXPECT_EQ(r.error, error_kind::stopped) << r.id << ": " << ringmaster::to_string(r.error) << " " << r.value;
    EXPECT_EQ(r.attempts, 0u);
    for (const auto& part : reason_parts) EXPECT_TRUE(contains(r.value, part));
  }
  EXPECT_TRUE(sup.any_pool_gave_up());
  const auto st = sup.status();
  ASSERT_EQ(st.pools.size(), 1u);
  const auto& p = st.pools[0];
  EXPECT_TRUE(p.gave_up);
  for (const auto& part : reason_parts) EXPECT_TRUE(contains(p.gave_up_reason, part));
  EXPECT_LE(p.restarts, 4u) << "a pool that can never start must not keep trying: " << causes(p);
  // Workers still starting when it gave up are killed; soon no process is left.
  std::string left;
  EXPECT_TRUE(eventually([&] {
    left.clear();
    const auto now = sup.status();
    for (const auto& w : now.pools[0].workers)
      if (w.pid != 0) left += "slot " + std::to_string(w.slot) + " pid " + std::to_string(w.pid) + " " + std::string(ringmaster::to_string(w.state)) + "; ";
    return left.empty();
  })) << "a pool that gave up still has a worker process: " << left;
  auto late = pool.submit("echo", "late", "late");
  ASSERT_EQ(late.wait_for(0s), std::future_status::ready);
  EXPECT_EQ(late.get().error, error_kind::stopped);
}

TEST_F(StartFailure, WorkerThatExitsBeforeReadyGivesUpFast) {
  // Arrange: the exec'd workers inherit the fork server's environment, copied when the
  // supervisor is constructed.
  ::setenv("RINGMASTER_TEST_WORKER_FAIL_START", "no licence for this machine", 1);
  std::optional<ringmaster::supervisor> sup;
  sup.emplace(supervisor_opts());
  ::unsetenv("RINGMASTER_TEST_WORKER_FAIL_START");
  auto& pool = sup->add_pool("nostart", {.workers = 2, .command = {RINGMASTER_TEST_WORKER}});
  sup->start();
  auto watcher = watch(*sup);

  // Act + Assert
  expect_gives_up_fast(*sup, pool, {"cannot start", "exit code 3"});
}

class StartFailureReason : public supervised, public testing::WithParamInterface<exec_case> {};

TEST_P(StartFailureReason, QuotesTheWorkersOwnErrorText) {
  // The design: "a pool that can never start fails fast with the worker's own error
  // text". An exec'd worker that fails before it can attach has only stderr to say why.
  ::setenv("RINGMASTER_TEST_WORKER_FAIL_START", "no licence for this machine", 1);
  std::optional<ringmaster::supervisor> sup;
  sup.emplace(supervisor_opts());
  ::unsetenv("RINGMASTER_TEST_WORKER_FAIL_START");
  auto& pool = sup->add_pool("nostart", {.workers = 1, .command = {GetParam().command}});
  sup->start();
  auto watcher = watch(*sup);

  auto f = pool.submit("echo", "x");
  auto r = await(f, 10s);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->error, error_kind::stopped);
  EXPECT_TRUE(contains(r->value, "no licence for this machine"));
  EXPECT_TRUE(contains(sup->status().pools[0].gave_up_reason, "no licence for this machine"));
}
INSTANTIATE_TEST_SUITE_P(Workers, StartFailureReason, k_exec_workers, exec_case_name);

TEST_F(StartFailure, WorkerThatNeverReportsReadyIsKilledAtStartTimeout) {
  // `sleep` runs but never speaks the protocol: without a bound on readiness its pool
  // would wait for ever.
  ringmaster::supervisor sup(supervisor_opts());
  auto& pool = sup.add_pool("silent", {.workers = 1, .command = {"sleep", "1000"}, .start_timeout = 300ms});
  sup.start();
  auto watcher = watch(sup);
  expect_gives_up_fast(sup, pool, {"cannot start", "did not report ready within start_timeout"});
}

TEST_F(StartFailure, MissingExecutableGivesUpWithCannotExecute) {
  ringmaster::supervisor sup(supervisor_opts());
  auto& pool = sup.add_pool("missing", {.workers = 2, .command = {"/nonexistent/ringmaster-worker"}});
  sup.start();
  auto watcher = watch(sup);
  expect_gives_up_fast(sup, pool, {"cannot execute", "/nonexistent/ringmaster-worker"});
}

TEST_F(StartFailure, CommandNotInPathGivesUpSayingSo) {
  ringmaster::supervisor sup(supervisor_opts());
  auto& pool = sup.add_pool("unfound", {.workers = 1, .command = {"ringmaster-no-such-worker"}});
  sup.start();
  auto watcher = watch(sup);
  expect_gives_up_fast(sup, pool, {"ringmaster-no-such-worker", "PATH"});
}

TEST_F(StartFailure, HandlersRegisteredAfterTheSupervisorGiveUpWithTheWorkersOwnText) {
  ringmaster::handlers h;
  h.on("echo", [](ringmaster::job& j) { return std::string(j.payload()); });
  ringmaster::supervisor sup(supervisor_opts());
  h.on("late", [](ringmaster::job&) { return std::string("too late"); });  // the misuse
  auto& pool = sup.add_pool("late", h, {.workers = 1});
  sup.start();
  auto watcher = watch(sup);
  expect_gives_up_fast(sup, pool, {"registered after the supervisor was created"});
}

// =======================================================================================
// Recycling

struct recycle_case {
  const char* name;
  const char* command;  // an exec'd test worker (C++ or C), else nullptr: forked pid handlers
};

class Recycling : public supervised, public testing::WithParamInterface<recycle_case> {};

TEST_P(Recycling, ReplacesWorkersAfterMaxJobsWithoutLosingAny) {
  // Arrange
  ringmaster::supervisor sup(supervisor_opts());
  const ringmaster::pool_options o{.workers = 2, .max_jobs_per_worker = 5};
  auto with_command = o;
  if (GetParam().command) with_command.command = {GetParam().command};
  auto& pool = GetParam().command ? sup.add_pool("recycle", with_command) : sup.add_pool("recycle", pid_handlers(), o);
  sup.start();
  auto watcher = watch(sup);
  ASSERT_TRUE(all_workers_ready(sup)) << "the workers did not start";

  // Act
  std::vector<std::future<result>> fs;
  for (int i = 0; i < 50; ++i) fs.push_back(pool.submit("pid", "", "p" + std::to_string(i)));

  // Assert: every job ok, once; no process ran more than five; every process but the
  // last of each slot ran exactly five and was recycled.
  auto rs = await_all(fs);
  ASSERT_EQ(rs.size(), fs.size());
  std::map<std::string, int> jobs_per_pid;
  std::set<std::string> ids;
  for (const auto& r : rs) {
    EXPECT_TRUE(r.ok()) << r.id << ": " << r.value;
    EXPECT_EQ(r.attempts, 1u);
    ids.insert(r.id);
    note_pid(r);
    ++jobs_per_pid[r.value];
  }
  EXPECT_EQ(ids.size(), 50u);
  EXPECT_GE(jobs_per_pid.size(), 10u);
  unsigned full = 0, partial = 0;
  for (const auto& [pid, n] : jobs_per_pid) {
    EXPECT_LE(n, 5) << "pid " << pid << " ran more than max_jobs_per_worker jobs";
    (n == 5 ? full : partial)++;
  }
  EXPECT_LE(partial, 2u) << "only the last process of each slot may have run fewer than five";
  EXPECT_TRUE(eventually([&] {
    const auto st = pool_named(snapshot(sup), "recycle");
    return restarts_for(st, "recycled") == full && all_ready(st);
  })) << "processes that ran five jobs: " << full << "; " << causes(pool_named(snapshot(sup), "recycle"));
  const auto st = pool_named(snapshot(sup), "recycle");
  EXPECT_EQ(st.restarts, 0u) << "recycling is not a failure and must not count toward restart intensity";
  EXPECT_EQ(st.completed, 50u);
  EXPECT_EQ(st.failed, 0u);
}

INSTANTIATE_TEST_SUITE_P(Workers, Recycling,
                         testing::Values(recycle_case{"Forked", nullptr}, recycle_case{"Exec", RINGMASTER_TEST_WORKER},
                                         recycle_case{"C", RINGMASTER_C_TEST_WORKER}),
                         [](const testing::TestParamInfo<recycle_case>& p) { return std::string(p.param.name); });

// =======================================================================================
// Strategies (which pools a death takes down: tests/unit/policy/strategy_test.cpp)

using Strategy = supervised;

TEST_F(Strategy, RestForOneRestartsOnlyThePoolsAddedAfter) {
  // Arrange
  const auto& demo = ringmaster::demo_handlers();
  ringmaster::supervisor sup(supervisor_opts(ringmaster::restart_strategy::rest_for_one));
  auto& a = sup.add_pool("a", demo, {.workers = 1});
  auto& b = sup.add_pool("b", demo, {.workers = 2, .max_attempts = 1});
  auto& c = sup.add_pool("c", demo, {.workers = 1});
  sup.start();
  auto watcher = watch(sup);
  ASSERT_TRUE(all_workers_ready(sup));
  const auto st0 = snapshot(sup);
  const auto a0 = pids_of(pool_named(st0, "a")), b0 = pids_of(pool_named(st0, "b")), c0 = pids_of(pool_named(st0, "c"));

  // Act
  auto crash = b.submit("crash", R"({"signal":"SEGV"})", "crash");
  auto rc = await(crash);
  ASSERT_TRUE(rc);
  EXPECT_EQ(rc->error, error_kind::crash);

  // Assert: b and c restarted (the kills are sent together, so once c's worker is new,
  // a's would be too if it were to be), a untouched.
  auto all_new = [](const std::vector<pid_t>& old, const ringmaster::pool_status& p) {
    if (!all_ready(p)) return false;
    for (std::size_t i = 0; i < old.size(); ++i)
      if (p.workers[i].pid == old[i]) return false;
    return true;
  };
  EXPECT_TRUE(eventually([&] {
    const auto st = snapshot(sup);
    return all_new(b0, pool_named(st, "b")) && all_new(c0, pool_named(st, "c"));
  })) << "rest_for_one did not restart the crashed pool and the pools after it";
  EXPECT_EQ(pids_of(pool_named(snapshot(sup), "a")), a0) << "rest_for_one restarted a pool added before";
  std::vector<std::future<result>> fs;
  fs.push_back(a.submit("echo", "a"));
  fs.push_back(b.submit("echo", "b"));
  fs.push_back(c.submit("echo", "c"));
  auto rs = await_all(fs);
  ASSERT_EQ(rs.size(), 3u);
  for (const auto& r : rs) EXPECT_TRUE(r.ok()) << r.value;
  // The workers the strategy took down went as planned: only the crash counts.
  const auto st = snapshot(sup);
  EXPECT_EQ(pool_named(st, "a").restarts, 0u);
  EXPECT_EQ(pool_named(st, "b").restarts, 1u) << causes(pool_named(st, "b"));
  EXPECT_EQ(pool_named(st, "c").restarts, 0u) << causes(pool_named(st, "c"));
}

}  // namespace
