#include <algorithm>
#include <gtest/gtest.h>

#include <ringmaster/cli/progress.hpp>

namespace ringmaster::cli {
namespace {

progress_snapshot half_done() {
  progress_snapshot s;
  s.done = 1500;
  s.ok = 1497;
  s.failed = 3;
  s.retried = 2;
  s.total = 3000;
  s.total_known = true;
  s.rate = 812.4;
  s.eta_s = 1.85;
  return s;
}

TEST(CliProgress, BarShowsDoneFailedRetriedRateAndEta) {
  const std::string bar = render_progress_bar(half_done(), 100);
  EXPECT_EQ(bar.rfind("[", 0), 0u) << bar;
  EXPECT_NE(bar.find("1500/3000"), std::string::npos) << bar;
  EXPECT_NE(bar.find("ok 1497"), std::string::npos) << bar;
  EXPECT_NE(bar.find("failed 3"), std::string::npos) << bar;
  EXPECT_NE(bar.find("retried 2"), std::string::npos) << bar;
  EXPECT_NE(bar.find("812/s"), std::string::npos) << bar;
  EXPECT_NE(bar.find("ETA 2s"), std::string::npos) << bar;
  EXPECT_LT(bar.size(), 100u);
  // Half done: the bar's cells are half full.
  const auto close = bar.find(']');
  const auto full = static_cast<std::size_t>(std::count(bar.begin(), bar.begin() + static_cast<long>(close), '='));
  EXPECT_NEAR(static_cast<double>(full) / static_cast<double>(close - 1), 0.5, 0.05) << bar;
}

TEST(CliProgress, BarFitsANarrowTerminalAndAnUnknownTotal) {
  EXPECT_LE(render_progress_bar(half_done(), 40).size(), 39u);
  progress_snapshot s = half_done();
  s.total_known = false;
  s.total = 0;
  s.eta_s.reset();
  const std::string bar = render_progress_bar(s, 100);
  EXPECT_EQ(bar.find('['), std::string::npos) << "no bar without a total: " << bar;
  EXPECT_EQ(bar.rfind("1500  ok 1497", 0), 0u) << bar;
  s.estimated = true;
  s.total = 2900;
  EXPECT_NE(render_progress_bar(s, 100).find("1500/~2900"), std::string::npos);
}

TEST(CliProgress, LogLineSaysTheSame) {
  EXPECT_EQ(render_progress_line(half_done()),
            "1500/3000 jobs done (50%): 1497 ok, 3 failed, 2 retried; 812 jobs/s; ETA 2s");
}

TEST(CliProgress, EtaIsShortAndHuman) {
  EXPECT_EQ(format_eta(0.4), "0s");
  EXPECT_EQ(format_eta(59), "59s");
  EXPECT_EQ(format_eta(65), "1m05s");
  EXPECT_EQ(format_eta(3 * 3600 + 120), "3h02m");
  EXPECT_EQ(format_eta(-1), "?");
}

TEST(CliProgress, SummaryCountsKindsRestartsAndGiveUps) {
  run_counters c;
  result r;
  r.error = error_kind::none;
  for (int i = 0; i < 10; ++i) c.count(r);
  r.error = error_kind::crash;
  c.count(r);
  c.count(r);
  r.error = error_kind::timeout;
  c.count(r);
  c.skipped = 4;
  supervisor_status st;
  pool_status p;
  p.name = "compute";
  p.retried = 5;
  worker_status w0, w1;
  w0.restarts_by_cause = {{"SIGSEGV", 2}, {"timeout", 1}};
  w1.restarts_by_cause = {{"SIGSEGV", 1}};
  p.workers = {w0, w1};
  pool_status q;
  q.name = "fragile";
  q.gave_up = true;
  q.gave_up_reason = "too many restarts";
  st.pools = {p, q};
  const std::string s = format_summary(c, st, 2.0, true, "out.jsonl");
  EXPECT_NE(s.find("ringmaster: 13 jobs in 2.00 s (6.5 jobs/s): 10 ok, 3 failed (2 crash, 1 timeout)"),
            std::string::npos)
      << s;
  EXPECT_NE(s.find("4 jobs skipped: already ok in out.jsonl"), std::string::npos) << s;
  EXPECT_NE(s.find("pool compute: 2 workers, 4 restarts (3 SIGSEGV, 1 timeout), 5 retried"), std::string::npos) << s;
  EXPECT_NE(s.find("pool fragile gave up: too many restarts"), std::string::npos) << s;
  EXPECT_NE(s.find("interrupted"), std::string::npos) << s;
  EXPECT_NE(s.find("results: out.jsonl"), std::string::npos) << s;
}

// A run stopped early (a broken pipe) reports thousands of jobs stopped in a moment:
// they ran to no end, so the rate leaves them out.
TEST(CliProgress, SummaryRateCountsFinishedJobsNotStoppedOnes) {
  run_counters c;
  result r;
  for (int i = 0; i < 41; ++i) c.count(r);
  r.error = error_kind::stopped;
  for (int i = 0; i < 4959; ++i) c.count(r);
  const std::string s = format_summary(c, supervisor_status{}, 2.0, true, "-");
  EXPECT_NE(s.find("ringmaster: 5000 jobs in 2.00 s (20.5 jobs/s finished): 41 ok, 4959 failed (4959 stopped)"),
            std::string::npos)
      << s;
}

TEST(CliProgress, ProgressRateCountsFinishedJobsNotStoppedOnes) {
  run_counters c;
  result r;
  r.error = error_kind::stopped;
  for (int i = 0; i < 1000; ++i) c.count(r);
  progress_reporter reporter(progress_reporter::mode::off, c, nullptr, nullptr, nullptr);
  reporter.start();
  const progress_snapshot s = reporter.snapshot();
  EXPECT_EQ(s.done, 1000u) << "stopped jobs are done: they have their line";
  EXPECT_EQ(s.rate, 0.0) << "but none ran to an end";
  reporter.stop();
}

TEST(CliProgress, SummarySaysHowManyResultsCouldNotBeWritten) {
  run_counters c;
  const std::string s = format_summary(c, supervisor_status{}, 1.0, false, "out.jsonl",
                                       {2362, "out.jsonl: cannot write results: No space left on device"});
  EXPECT_NE(s.find("ringmaster: 2362 results could not be written (out.jsonl: cannot write results: No space left on "
                   "device): their jobs are not counted above; run again with --resume to redo them"),
            std::string::npos)
      << s;
  EXPECT_EQ(format_summary(c, supervisor_status{}, 1.0, false, "out.jsonl").find("could not be written"),
            std::string::npos);
}

// A pool whose workers run the given jobs for the given times (ms).
supervisor_status running(const std::string& pool, const std::vector<std::pair<std::string, double>>& jobs) {
  supervisor_status st;
  pool_status p;
  p.name = pool;
  for (const auto& [id, ms] : jobs) {
    worker_status w;
    w.current_job = id;
    w.current_job_ms = ms;
    p.workers.push_back(w);
  }
  st.pools.push_back(p);
  return st;
}

TEST(CliSlowJobs, AJobFarLongerThanThePoolsMedianIsWarnedAboutOnce) {
  slow_job_watch watch({.factor = 10, .at_least = std::chrono::milliseconds(50), .alone = std::chrono::seconds(60)});
  watch.watch_pool("compute", std::chrono::milliseconds(0));
  for (int i = 0; i < 100; ++i) watch.record("compute", i % 2 == 0 ? 8.0 : 12.0);  // median 12 ms
  // 100 ms: not over 10x the median (120 ms); 130 ms: over.
  EXPECT_TRUE(watch.check(running("compute", {{"a", 100}, {"b", 40}})).empty());
  const auto w = watch.check(running("compute", {{"a", 130}, {"b", 40}}));
  ASSERT_EQ(w.size(), 1u);
  EXPECT_EQ(w[0], "job a of pool compute has run 0.1 s, over 10x the pool's median job (12.0 ms); the pool has no "
                  "job_timeout: it may never end");
  EXPECT_TRUE(watch.check(running("compute", {{"a", 5000}})).empty()) << "once per job";
  // Once it has ended, the same id running long again is a new warning.
  EXPECT_TRUE(watch.check(running("compute", {})).empty());
  EXPECT_EQ(watch.check(running("compute", {{"a", 200}})).size(), 1u);
}

TEST(CliSlowJobs, ShortJobsNeedTheFloorAndAPoolWithNoFinishedJobUsesItsOwnLimit) {
  slow_job_watch watch({.factor = 10, .at_least = std::chrono::milliseconds(5000), .alone = std::chrono::milliseconds(60000)});
  watch.watch_pool("fast", std::chrono::milliseconds(30000));
  watch.watch_pool("new", std::chrono::milliseconds(0));
  for (int i = 0; i < 10; ++i) watch.record("fast", 0.1);
  EXPECT_TRUE(watch.check(running("fast", {{"j", 4000}})).empty()) << "40000x the median but under the floor";
  auto w = watch.check(running("fast", {{"j", 6000}}));
  ASSERT_EQ(w.size(), 1u);
  EXPECT_NE(w[0].find("; its job_timeout ends it after 30.0 s"), std::string::npos) << w[0];
  EXPECT_TRUE(watch.check(running("new", {{"h", 59000}})).empty());
  w = watch.check(running("new", {{"h", 61000}}));
  ASSERT_EQ(w.size(), 1u);
  EXPECT_EQ(w[0], "job h of pool new has run 61.0 s, and the pool has finished no job yet; the pool has no "
                  "job_timeout: it may never end");
}

// The reporter asks for slow jobs on its own thread and writes what it gets as warnings.
TEST(CliSlowJobs, TheReporterWritesTheWarningsInLogMode) {
  run_counters c;
  std::mutex m;
  std::condition_variable cv;
  std::vector<std::string> warned;
  progress_reporter reporter(
      progress_reporter::mode::log, c, [] { return -1.0; }, nullptr, [](const std::string&) {},
      std::chrono::milliseconds(1), [] { return std::vector<std::string>{"job x is slow"}; },
      [&](const std::string& line) {
        std::lock_guard lock(m);
        warned.push_back(line);
        cv.notify_all();
      });
  reporter.start();
  {
    std::unique_lock lock(m);
    EXPECT_TRUE(cv.wait_for(lock, std::chrono::seconds(20), [&] { return !warned.empty(); }));
  }
  reporter.stop();
  ASSERT_FALSE(warned.empty());
  EXPECT_EQ(warned[0], "job x is slow");
}

}  // namespace
}  // namespace ringmaster::cli
