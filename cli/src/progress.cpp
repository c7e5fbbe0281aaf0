#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <ringmaster/cli/progress.hpp>

namespace ringmaster::cli {
namespace {

using clock_type = std::chrono::steady_clock;

std::string fixed(double v, int decimals) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

std::string rate_text(double rate) { return rate >= 100 ? fixed(rate, 0) : fixed(rate, 1); }

void write_stderr(const std::string& s) {
  std::size_t at = 0;
  while (at < s.size()) {
    const ssize_t n = ::write(STDERR_FILENO, s.data() + at, s.size() - at);
    if (n <= 0) return;  // stderr gone: progress is not worth failing a run for
    at += static_cast<std::size_t>(n);
  }
}

}  // namespace

void run_counters::count(const result& r) noexcept {
  if (r.ok()) {
    ok.fetch_add(1, std::memory_order_relaxed);
  } else {
    failed.fetch_add(1, std::memory_order_relaxed);
    const auto k = static_cast<std::size_t>(r.error);
    if (k < by_kind.size()) by_kind[k].fetch_add(1, std::memory_order_relaxed);
  }
}

std::string format_eta(double seconds) {
  if (!(seconds >= 0)) return "?";
  const auto s = static_cast<std::uint64_t>(std::llround(seconds));
  char buf[64];
  if (s < 60) {
    std::snprintf(buf, sizeof buf, "%llus", static_cast<unsigned long long>(s));
  } else if (s < 3600) {
    std::snprintf(buf, sizeof buf, "%llum%02llus", static_cast<unsigned long long>(s / 60),
                  static_cast<unsigned long long>(s % 60));
  } else {
    std::snprintf(buf, sizeof buf, "%lluh%02llum", static_cast<unsigned long long>(s / 3600),
                  static_cast<unsigned long long>(s / 60 % 60));
  }
  return buf;
}

std::string render_progress_line(const progress_snapshot& s) {
  std::string out = std::to_string(s.done);
  if (s.total_known || s.estimated) {
    out += "/" + std::string(s.estimated ? "~" : "") + std::to_string(s.total);
  }
  out += " jobs done";
  if (s.total_known && s.total > 0)
    out += " (" + std::to_string(s.done * 100 / s.total) + "%)";
  out += ": " + std::to_string(s.ok) + " ok, " + std::to_string(s.failed) + " failed, " + std::to_string(s.retried) +
         " retried; " + rate_text(s.rate) + " jobs/s";
  if (s.eta_s) out += "; ETA " + format_eta(*s.eta_s);
  return out;
}

std::string render_progress_bar(const progress_snapshot& s, int width) {
  std::string counts = std::to_string(s.done);
  if (s.total_known || s.estimated) counts += "/" + std::string(s.estimated ? "~" : "") + std::to_string(s.total);
  std::string text = counts + "  ok " + std::to_string(s.ok) + "  failed " + std::to_string(s.failed) + "  retried " +
                     std::to_string(s.retried) + "  " + rate_text(s.rate) + "/s";
  if (s.eta_s) text += "  ETA " + format_eta(*s.eta_s);
  const int room = width - static_cast<int>(text.size()) - 3;
  if (room < 10 || (!s.total_known && !s.estimated) || s.total == 0) {
    return text.substr(0, static_cast<std::size_t>(std::max(0, width - 1)));
  }
  const int cells = std::min(room, 40);
  const double f = std::clamp(static_cast<double>(s.done) / static_cast<double>(s.total), 0.0, 1.0);
  const int full = static_cast<int>(f * cells);
  std::string bar = "[";
  bar.append(static_cast<std::size_t>(full), '=');
  if (full < cells) {
    bar += '>';
    bar.append(static_cast<std::size_t>(cells - full - 1), ' ');
  }
  bar += "] ";
  return bar + text;
}

// --- progress_reporter

progress_reporter::progress_reporter(mode m, const run_counters& counters, std::function<double()> fraction_read,
                                     std::function<std::uint64_t()> retried,
                                     std::function<void(const std::string&)> log_line,
                                     std::chrono::milliseconds log_every,
                                     std::function<std::vector<std::string>()> slow_jobs,
                                     std::function<void(const std::string&)> warn_line)
    : mode_(m),
      counters_(counters),
      fraction_read_(std::move(fraction_read)),
      retried_(std::move(retried)),
      log_line_(std::move(log_line)),
      log_every_(log_every),
      slow_jobs_(std::move(slow_jobs)),
      warn_line_(std::move(warn_line)) {}

progress_reporter::~progress_reporter() { stop(); }

void progress_reporter::start() {
  started_ = clock_type::now();
  if (mode_ == mode::off) return;
  thread_ = std::thread([this] { run(); });
}

void progress_reporter::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  std::call_once(stop_once_, [this] {
    if (thread_.joinable()) thread_.join();
    std::lock_guard lock(terminal_);
    erase_locked();
  });
}

progress_snapshot progress_reporter::snapshot() {
  progress_snapshot s;
  const auto now = clock_type::now();
  s.ok = counters_.ok.load(std::memory_order_relaxed);
  s.failed = counters_.failed.load(std::memory_order_relaxed);
  s.done = s.ok + s.failed;
  if (retried_) last_retried_ = retried_();
  s.retried = last_retried_;
  const std::uint64_t admitted = counters_.admitted.load(std::memory_order_relaxed);
  s.elapsed_s = std::chrono::duration<double>(now - started_).count();
  if (counters_.input_done.load(std::memory_order_relaxed)) {
    s.total_known = true;
    s.total = admitted;
  } else if (const double f = fraction_read_ ? fraction_read_() : -1; f > 0.001) {
    // Still reading: if a fraction f of the input gave `admitted` jobs, all of it gives
    // about admitted / f (minus those --resume skips, which are not counted as jobs).
    s.estimated = true;
    const double skipped = static_cast<double>(counters_.skipped.load(std::memory_order_relaxed) +
                                               counters_.skipped_unfailed.load(std::memory_order_relaxed));
    s.total = std::max(admitted, static_cast<std::uint64_t>((static_cast<double>(admitted) + skipped) / f - skipped));
  }
  // Rate over the last five seconds: recent enough to follow a change of pace (jobs of
  // another size further down the input), long enough not to jitter.
  // Only jobs that ran to an end: a stop reports thousands `stopped` in a moment.
  const std::uint64_t finished =
      s.done - std::min(s.done, counters_.by_kind[static_cast<std::size_t>(error_kind::stopped)].load(
                                    std::memory_order_relaxed));
  samples_.emplace_back(now, finished);
  while (samples_.size() > 2 && now - samples_.front().first > std::chrono::seconds(5)) samples_.pop_front();
  const double window = std::chrono::duration<double>(now - samples_.front().first).count();
  if (window >= 0.5)
    s.rate = static_cast<double>(finished - samples_.front().second) / window;
  else if (s.elapsed_s > 0)
    s.rate = static_cast<double>(finished) / s.elapsed_s;
  if ((s.total_known || s.estimated) && s.rate > 0 && s.total >= s.done)
    s.eta_s = static_cast<double>(s.total - s.done) / s.rate;
  return s;
}

void progress_reporter::erase_locked() {
  if (!drawn_) return;
  write_stderr("\r\033[K");
  drawn_ = false;
}

void progress_reporter::draw_locked() {
  if (mode_ != mode::bar || bar_.empty()) return;
  write_stderr("\r\033[K" + bar_);
  drawn_ = true;
}

void progress_reporter::around_output(const std::function<void()>& write) {
  std::lock_guard lock(terminal_);
  const bool was = drawn_;
  erase_locked();
  write();
  if (was) draw_locked();
}

void progress_reporter::run() {
  // The bar is redrawn ten times a second, log lines are written every log_every_; each
  // reads the counters (atomics, cheap). Slow jobs, which need a status() query (it
  // reads /proc for every worker), are looked for once a second with the bar, with each
  // line otherwise.
  const auto tick = mode_ == mode::bar ? std::chrono::milliseconds(100) : log_every_;
  const unsigned slow_every = mode_ == mode::bar ? 10 : 1;
  std::unique_lock lock(mutex_);
  for (unsigned ticks = 1; !stopping_; ++ticks) {
    wake_.wait_for(lock, tick, [this] { return stopping_; });
    if (stopping_) break;
    lock.unlock();
    if (slow_jobs_ && warn_line_ && ticks % slow_every == 0)
      for (const std::string& w : slow_jobs_()) warn_line_(w);
    const progress_snapshot s = snapshot();
    if (mode_ == mode::bar) {
      int width = 80;
      if (const char* cols = std::getenv("COLUMNS")) width = std::max(20, std::atoi(cols));
      winsize ws{};
      if (::ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) width = ws.ws_col;
      std::lock_guard term(terminal_);
      bar_ = render_progress_bar(s, width);
      draw_locked();
    } else if (log_line_) {
      log_line_(render_progress_line(s));
    }
    lock.lock();
  }
}

// --- slow_job_watch

void slow_job_watch::watch_pool(const std::string& pool, std::chrono::milliseconds job_timeout) {
  std::lock_guard lock(mutex_);
  pools_[pool].job_timeout = job_timeout;
}

void slow_job_watch::record(const std::string& pool, double ms) {
  std::lock_guard lock(mutex_);
  auto it = pools_.find(pool);
  if (it == pools_.end()) it = pools_.emplace(pool, pool_times{}).first;
  pool_times& t = it->second;
  if (t.recent.size() < k_samples) {
    t.recent.push_back(ms);
  } else {
    t.recent[t.next] = ms;
    t.next = (t.next + 1) % k_samples;
  }
}

std::vector<std::string> slow_job_watch::check(const supervisor_status& status) {
  std::lock_guard lock(mutex_);
  std::vector<std::string> out;
  std::set<std::pair<std::string, std::string>> running;
  for (const auto& p : status.pools) {
    const auto it = pools_.find(p.name);
    std::optional<double> median;
    std::chrono::milliseconds job_timeout{0};
    if (it != pools_.end()) {
      job_timeout = it->second.job_timeout;
      if (!it->second.recent.empty()) {
        std::vector<double> v = it->second.recent;
        std::nth_element(v.begin(), v.begin() + static_cast<long>(v.size() / 2), v.end());
        median = v[v.size() / 2];
      }
    }
    const double limit = median ? std::max(rule_.factor * *median, static_cast<double>(rule_.at_least.count()))
                                : static_cast<double>(rule_.alone.count());
    for (const auto& w : p.workers) {
      if (w.current_job.empty()) continue;
      auto key = std::make_pair(p.name, w.current_job);
      running.insert(key);
      if (w.current_job_ms <= limit || warned_.count(key) > 0) continue;
      warned_.insert(std::move(key));
      std::string line = "job " + w.current_job + " of pool " + p.name + " has run " +
                         fixed(w.current_job_ms / 1000.0, 1) + " s, ";
      line += median ? "over " + fixed(rule_.factor, 0) + "x the pool's median job (" + fixed(*median, 1) + " ms)"
                     : "and the pool has finished no job yet";
      line += job_timeout.count() > 0 ? "; its job_timeout ends it after " + fixed(static_cast<double>(job_timeout.count()) / 1000.0, 1) + " s"
                                      : "; the pool has no job_timeout: it may never end";
      out.push_back(std::move(line));
    }
  }
  // Forget jobs no longer running: the set stays as small as the pools.
  for (auto it = warned_.begin(); it != warned_.end();) it = running.count(*it) ? std::next(it) : warned_.erase(it);
  return out;
}

// --- summary

std::string format_summary(const run_counters& c, const supervisor_status& status, double wall_s, bool interrupted,
                           const std::string& results_name, const output_loss& lost) {
  const std::uint64_t ok = c.ok.load(), failed = c.failed.load(), jobs = ok + failed;
  // Stopped jobs did not run to an end: counted in the rate they would make it a measure
  // of how fast a stop reports the queue (a broken pipe: "258815 jobs/s").
  const std::uint64_t finished = jobs - c.by_kind[static_cast<std::size_t>(error_kind::stopped)].load();
  std::string out = "ringmaster: " + std::to_string(jobs) + " job" + (jobs == 1 ? "" : "s") + " in " + fixed(wall_s, 2) +
                    " s (" + rate_text(wall_s > 0 ? static_cast<double>(finished) / wall_s : 0) + " jobs/s" +
                    (finished == jobs ? "" : " finished") + "): " + std::to_string(ok) + " ok, " +
                    std::to_string(failed) + " failed";
  if (failed > 0) {
    std::string kinds;
    for (std::size_t k = 1; k < c.by_kind.size(); ++k)
      if (const auto n = c.by_kind[k].load(); n > 0)
        kinds += (kinds.empty() ? "" : ", ") + std::to_string(n) + " " + std::string(to_string(static_cast<error_kind>(k)));
    out += " (" + kinds + ")";
  }
  out += "\n";
  if (const auto skipped = c.skipped.load(); skipped > 0)
    out += "ringmaster: " + std::to_string(skipped) + " job" + (skipped == 1 ? "" : "s") + " skipped: already ok in " +
           results_name + "\n";
  if (const auto n = c.skipped_unfailed.load(); n > 0)
    out += "ringmaster: " + std::to_string(n) + " job" + (n == 1 ? "" : "s") + " skipped: no failed line in " +
           results_name + " (--resume-failed)\n";
  for (const auto& p : status.pools) {
    std::map<std::string, unsigned> causes;
    for (const auto& w : p.workers)
      for (const auto& [cause, n] : w.restarts_by_cause) causes[cause] += n;
    unsigned total = 0;
    std::string detail;
    for (const auto& [cause, n] : causes) {
      total += n;
      detail += (detail.empty() ? "" : ", ") + std::to_string(n) + " " + cause;
    }
    out += "ringmaster: pool " + p.name + ": " + std::to_string(p.workers.size()) + " worker" +
           (p.workers.size() == 1 ? "" : "s") + ", " + std::to_string(total) + " restart" + (total == 1 ? "" : "s") +
           (detail.empty() ? "" : " (" + detail + ")") + ", " + std::to_string(p.retried) + " retried\n";
    if (p.gave_up) out += "ringmaster: pool " + p.name + " gave up: " + p.gave_up_reason + "\n";
  }
  if (lost.lines > 0 || !lost.error.empty())
    out += "ringmaster: " + std::to_string(lost.lines) + " result" + (lost.lines == 1 ? "" : "s") +
           " could not be written (" + (lost.error.empty() ? std::string("output failed") : lost.error) +
           "): their jobs are not counted above; run again with --resume to redo them\n";
  if (interrupted)
    out += "ringmaster: interrupted: jobs not yet read were not run; run again with --resume to finish them\n";
  out += "ringmaster: results: " + results_name + "\n";
  return out;
}

}  // namespace ringmaster::cli
