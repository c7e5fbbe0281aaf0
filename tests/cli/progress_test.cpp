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

}  // namespace
}  // namespace ringmaster::cli
