// ringmaster/cli/progress.hpp — telling the user how a run is going: a progress bar on a
// terminal, periodic log lines otherwise, and a summary at the end.
//
// run_counters are updated by whoever learns something (the reader thread, completion
// callbacks on the dispatcher thread) with relaxed atomics, and read by the reporter's
// own thread; nothing on the job path waits for the display.
//
// The bar is one line on stderr, redrawn in place ten times a second. Anything else
// written to the same terminal (log lines of this process, results sent to a terminal)
// goes through around_output(), which erases the bar, writes, and redraws it, so lines
// never land in the middle of the bar.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <ringmaster/supervisor/status.hpp>
#include <ringmaster/worker/result.hpp>

namespace ringmaster::cli {

/// What a run has done so far. All counters only grow.
struct run_counters {
  std::atomic<std::uint64_t> admitted{0};  ///< entries submitted or rejected (each gets a line)
  std::atomic<std::uint64_t> skipped{0};   ///< --resume: already ok, not run
  std::atomic<std::uint64_t> skipped_unfailed{0};  ///< --resume-failed: no failed line (never reached), not run
  std::atomic<std::uint64_t> ok{0};
  std::atomic<std::uint64_t> failed{0};    ///< every kind, rejected included
  std::array<std::atomic<std::uint64_t>, 7> by_kind{};  ///< failed, indexed by error_kind
  std::atomic<bool> input_done{false};

  /// Counts a final result.
  void count(const result& r) noexcept;
};

/// One reading of a run's progress, with what it implies.
struct progress_snapshot {
  std::uint64_t done = 0, ok = 0, failed = 0, retried = 0;
  std::uint64_t total = 0;  ///< jobs known (admitted), or the estimate when `estimated`
  bool estimated = false;   ///< the input is still being read; total extrapolates it
  bool total_known = false; ///< the input has been read to its end
  double elapsed_s = 0;
  double rate = 0;          ///< jobs per second, recently
  std::optional<double> eta_s;
};

/// The bar, fitted to `width` columns: "[=====>    ] 1523/3010  ok 1520  failed 3
/// retried 2  812/s  ETA 2s".
[[nodiscard]] std::string render_progress_bar(const progress_snapshot& s, int width);
/// The same as a log line: "1523/3010 jobs done (51%): 1520 ok, 3 failed, 2 retried;
/// 812 jobs/s; ETA 2s".
[[nodiscard]] std::string render_progress_line(const progress_snapshot& s);
/// "2s", "1m05s", "2h03m".
[[nodiscard]] std::string format_eta(double seconds);

/// Jobs running far longer than their pool's others. With no job_timeout (the default)
/// a job that hangs blocks the run for ever; this says so while it happens. "Far
/// longer": over `factor` times the median of the pool's recently finished jobs (the
/// last 1001) and at least `at_least`; in a pool that has finished no job yet, over
/// `alone`. Each job is warned about once while it runs. Pure: the running times come
/// from a supervisor_status, so a test needs no clock. Thread-safe.
class slow_job_watch {
 public:
  struct rule {
    double factor = 10;
    std::chrono::milliseconds at_least{std::chrono::seconds(5)};
    std::chrono::milliseconds alone{std::chrono::seconds(60)};
  };
  explicit slow_job_watch(rule r) : rule_(r) {}
  slow_job_watch() : slow_job_watch(rule{}) {}

  /// A pool and its job_timeout (0: none), named in the warnings.
  void watch_pool(const std::string& pool, std::chrono::milliseconds job_timeout);
  /// How long a job of `pool` ran (its last attempt), when it finished.
  void record(const std::string& pool, double ms);
  /// Warning lines for the jobs found running too long in `status` and not warned about
  /// yet: "job j7 of pool compute has run 12.0 s, over 10x the pool's median job
  /// (1.2 ms); the pool has no job_timeout: it may never end".
  [[nodiscard]] std::vector<std::string> check(const supervisor_status& status);

 private:
  struct pool_times {
    std::vector<double> recent;  // a ring of the last k_samples durations
    std::size_t next = 0;
    std::chrono::milliseconds job_timeout{0};
  };
  static constexpr std::size_t k_samples = 1001;
  rule rule_;
  std::mutex mutex_;
  std::map<std::string, pool_times, std::less<>> pools_;
  std::set<std::pair<std::string, std::string>> warned_;  // (pool, job id), still running
};

class progress_reporter {
 public:
  enum class mode : std::uint8_t { bar, log, off };
  /// `fraction_read` says how much of the input is consumed (negative: unknown);
  /// `retried` how many attempts were retried so far. Both are called on the reporter's
  /// thread. `log_line` writes one periodic log line (mode log). `slow_jobs`, if set, is
  /// called about once a second (bar) or with each log line (log) and gives warning
  /// lines, written through `warn_line`.
  progress_reporter(mode m, const run_counters& counters, std::function<double()> fraction_read,
                    std::function<std::uint64_t()> retried, std::function<void(const std::string&)> log_line,
                    std::chrono::milliseconds log_every = std::chrono::seconds(5),
                    std::function<std::vector<std::string>()> slow_jobs = {},
                    std::function<void(const std::string&)> warn_line = {});
  ~progress_reporter();  ///< stop()s.
  progress_reporter(const progress_reporter&) = delete;
  progress_reporter& operator=(const progress_reporter&) = delete;

  void start();
  /// Stops the thread and erases the bar. Idempotent.
  void stop();
  /// Runs `write` with the bar erased, then redraws it. Thread-safe.
  void around_output(const std::function<void()>& write);
  [[nodiscard]] mode current_mode() const noexcept { return mode_; }
  [[nodiscard]] progress_snapshot snapshot();

 private:
  void run();
  void draw_locked();
  void erase_locked();

  mode mode_;
  const run_counters& counters_;
  std::function<double()> fraction_read_;
  std::function<std::uint64_t()> retried_;
  std::function<void(const std::string&)> log_line_;
  std::chrono::milliseconds log_every_;
  std::function<std::vector<std::string>()> slow_jobs_;
  std::function<void(const std::string&)> warn_line_;
  std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
  std::deque<std::pair<std::chrono::steady_clock::time_point, std::uint64_t>> samples_;  // for the rate
  std::uint64_t last_retried_ = 0;

  std::mutex terminal_;  // the bar's line on the terminal, and whether it is drawn
  bool drawn_ = false;
  std::string bar_;

  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::thread thread_;
  std::once_flag stop_once_;  // stop() may be called by the main and the signal thread
};

/// Results that could not be written, for the summary.
struct output_loss {
  std::uint64_t lines = 0;  ///< results computed and not written
  std::string error;        ///< why ("results.jsonl: cannot write results: No space left on device")
};

/// The end-of-run summary, a few lines for stderr: counts by outcome and kind (of the
/// lines written: `counters` counts them), restarts by cause per pool, pools that gave
/// up, results that could not be written, wall time and rate. The rate counts the jobs
/// that ran to an end (ok or failed), not the `stopped` ones.
[[nodiscard]] std::string format_summary(const run_counters& counters, const supervisor_status& status,
                                         double wall_s, bool interrupted, const std::string& results_name,
                                         const output_loss& lost = {});

}  // namespace ringmaster::cli
