#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <ringmaster/cli/config.hpp>
#include <ringmaster/cli/job_source.hpp>
#include <ringmaster/cli/progress.hpp>
#include <ringmaster/cli/result_sink.hpp>
#include <ringmaster/cli/resume.hpp>
#include <ringmaster/cli/run.hpp>
#include <ringmaster/cli/units.hpp>
#include <ringmaster/ipc/detail/eintr.hpp>
#include <ringmaster/supervisor/supervisor.hpp>
#include <ringmaster/worker/demo_handlers.hpp>
#include <ringmaster/worker/logging.hpp>
#include <thread>
#include <unordered_map>
#include <utility>

#include "bar_log_routing.hpp"
#include <ringmaster/cli/job_flow.hpp>
#include "process_setup.hpp"
#include "run_inputs.hpp"

namespace ringmaster::cli {
namespace {

using clock_type = std::chrono::steady_clock;

using detail::bar_log_routing;
using detail::block_signals;
using detail::open_files;
using detail::opened_inputs;
using detail::shared_memory_problem;
using detail::cli_logger;
using detail::say;
using detail::unique_fd;

// What the completion callbacks reach: counts, the sink, and the order of lines with
// --keep-order. A job's own record is the dispatcher's: what the run needs back from it
// rides in its tag, so no table here mirrors the jobs in flight, and the callback
// carries only this object's address (std::function's inline storage: no allocation
// per job). The tag holds whether the job's id was an integer and either its origin
// (source and line, to name a refusal by the library) or, with --keep-order, its place
// in line, result_order keeping its origin beside it. As a result_sink it takes the
// lines admission refuses (admit_entry).
class run_state final : public result_sink {
 public:
  run_state(run_counters& counters, result_sink& sink, std::vector<std::string> source_names, result_order* order,
            slow_job_watch& slow)
      : counters_(counters), sink_(sink), source_names_(std::move(source_names)), order_(order), slow_(slow) {}

  // A job's place in the input: its source (0 or 1: the config, then the job lines) and
  // its line, packed.
  static std::uint64_t where(std::size_t source, std::uint64_t line) noexcept {
    return (static_cast<std::uint64_t>(source) << 61) | (line & ((std::uint64_t{1} << 61) - 1));
  }

  // Before submitting: the job's tag, or nullopt if the run was stopped at once
  // meanwhile. With --keep-order, waits for room in line first (the oldest job is slow).
  std::optional<std::uint64_t> accept(bool integer_id, std::uint64_t where) {
    std::uint64_t place = 0;
    if (order_) {
      const auto p = order_->admit(where);
      if (!p) return std::nullopt;
      place = *p;
    }
    std::lock_guard lock(mutex_);
    if (at_once_) {
      if (order_) order_->skip(place);
      return std::nullopt;
    }
    return ((order_ ? place : where) << 1) | (integer_id ? 1 : 0);
  }

  // A final result, on the dispatcher thread (or the submitting one, for refusals).
  void finish(result r) {
    const bool integer_id = (r.tag & 1) != 0;
    const std::uint64_t place = r.tag >> 1;
    if (r.error == error_kind::rejected) {
      const std::uint64_t at = order_ ? order_->note(place) : place;
      if (const auto source = static_cast<std::size_t>(at >> 61); source < source_names_.size())
        name_refusal(r, source_names_[source], at & ((std::uint64_t{1} << 61) - 1));
    }
    std::lock_guard lock(mutex_);
    if (at_once_ && r.error == error_kind::stopped) {
      r.value = "stopped at once by a second signal";
      ++cut_;
    }
    if (r.worker >= 0) slow_.record(r.pool, r.ms);
    counters_.count(r);
    if (order_)
      order_->finish(place, std::move(r), integer_id);
    else
      sink_.push(std::move(r), false, integer_id);
  }

  // A line refused at admission.
  void push(result r, bool may_wait, bool integer_id) override {
    counters_.admitted.fetch_add(1, std::memory_order_relaxed);
    std::uint64_t place = 0;
    if (order_) {
      const auto p = order_->admit();
      if (!p) return;
      place = *p;
    }
    {
      std::lock_guard lock(mutex_);
      if (at_once_) {
        if (order_) order_->skip(place);
        return;
      }
      counters_.count(r);
      if (order_) return order_->finish(place, std::move(r), integer_id);
    }
    // Outside the lock, and allowed to wait for the writer: a flood of rejections cannot
    // grow the queue without bound, and completions are not held up meanwhile.
    sink_.push(std::move(r), may_wait, integer_id);
  }
  void close() override {}
  [[nodiscard]] std::string error() const override { return {}; }

  // Second signal, before the stop at once: from now on a job ended `stopped` says so,
  // and no new one is taken; a reader waiting for room in line gives up.
  void begin_at_once() {
    {
      std::lock_guard lock(mutex_);
      at_once_ = true;
    }
    if (order_) order_->close();
  }
  [[nodiscard]] bool at_once() {
    std::lock_guard lock(mutex_);
    return at_once_;
  }
  // Jobs the stop at once ended.
  [[nodiscard]] std::size_t cut() {
    std::lock_guard lock(mutex_);
    return cut_;
  }

 private:
  run_counters& counters_;
  result_sink& sink_;
  std::vector<std::string> source_names_;
  result_order* order_;
  slow_job_watch& slow_;
  std::mutex mutex_;
  bool at_once_ = false;
  std::size_t cut_ = 0;
};

}  // namespace

// run() without its guard against threads that cannot be created.
static int run_body(const run_options& o) {
  const auto started = clock_type::now();

  // --- 1. Validate everything before starting anything.
  run_config config;
  std::string level;
  if (!detail::load_for_start(o.config, o.log_level, config, level)) return k_exit_usage;
  if (o.workers) {
    if (*o.workers > k_max_workers) {
      say("ringmaster: --workers: expected an integer from 0 to " + std::to_string(k_max_workers) +
          " (0: one per core), got " + std::to_string(*o.workers));
      return k_exit_usage;
    }
    for (auto& p : config.pools) p.options.workers = *o.workers;
  }
  if (const std::string problem = shared_memory_problem(config); !problem.empty()) {
    say(problem);
    return k_exit_usage;
  }
  resume_state resume;
  opened_inputs io;
  if (const std::string problem = open_files(o, o.resume || o.resume_failed ? &resume : nullptr, io); !problem.empty()) {
    say("ringmaster: " + problem);
    return k_exit_usage;
  }

  // --- 2. Signals, logging, the supervisor (forked while this is the only thread).
  block_signals();
  sigset_t wanted;
  sigemptyset(&wanted);
  sigaddset(&wanted, SIGINT);
  sigaddset(&wanted, SIGTERM);
  // SIGHUP (the terminal or the tmux pane closed) is taken as SIGTERM: its default action
  // would kill the run without a stopped line or a summary.
  sigaddset(&wanted, SIGHUP);
  ::pthread_sigmask(SIG_BLOCK, &wanted, nullptr);
  unique_fd signal_fd(::signalfd(-1, &wanted, SFD_CLOEXEC));
  unique_fd stop_fd(::eventfd(0, EFD_CLOEXEC));  // readable once stopping: ends blocking reads
  unique_fd quit_fd(::eventfd(0, EFD_CLOEXEC));  // ends the signal thread
  if (signal_fd.get() < 0 || stop_fd.get() < 0 || quit_fd.get() < 0) {
    say(std::string("ringmaster: cannot create descriptors: ") + std::strerror(errno));
    return k_exit_failed;
  }
  (void)demo_handlers();  // before the supervisor: forked workers see only what exists then
  set_log_level(level);
  auto log = cli_logger();

  progress_reporter::mode mode = progress_reporter::mode::off;
  if (o.progress) {
    const char* term = std::getenv("TERM");
    const bool terminal = ::isatty(STDERR_FILENO) && !(term && std::string_view(term) == "dumb");
    mode = terminal ? progress_reporter::mode::bar : progress_reporter::mode::log;
  }

  std::optional<supervisor> sup;
  try {
    sup.emplace(config.supervisor);
    for (const auto& p : config.pools) detail::add_config_pool(*sup, p);
  } catch (const std::system_error& e) {  // a fork server cannot be forked (RLIMIT_NPROC)
    log->error("cannot start: {}", e.what());
    return k_exit_gave_up;
  } catch (const std::exception& e) {
    log->error("cannot start: {}", e.what());
    return k_exit_failed;
  }

  // --- 3. Threads: results writer, progress, signals; then start and feed.
  std::vector<std::unique_ptr<job_source>> sources;
  std::vector<std::string> source_names;
  if (!config.jobs.empty()) {
    sources.push_back(std::make_unique<config_job_source>(config));
    source_names.push_back(config.path);
  }
  jsonl_job_source* line_source = nullptr;
  if (io.jobs_fd >= 0) {
    auto s = std::make_unique<jsonl_job_source>(io.jobs_fd, io.jobs_name, stop_fd.get(), max_job_line(config),
                                                io.jobs_size);
    line_source = s.get();
    sources.push_back(std::move(s));
    source_names.push_back(io.jobs_name);
  }
  std::atomic<std::size_t> current_source{0};

  run_counters counters;
  // No job_timeout is the default: a hung job would block the run without a word.
  slow_job_watch slow;
  for (const auto& p : config.pools) {
    slow.watch_pool(p.name, p.options.job_timeout);
  }
  progress_reporter reporter(
      mode, counters,
      [&] {
        // The input read so far: sources before the current one are whole.
        const std::size_t i = current_source.load();
        if (sources.empty()) return 1.0;
        if (i >= sources.size()) return 1.0;
        const double f = sources[i]->fraction_read();
        if (f < 0) return -1.0;
        return (static_cast<double>(i) + f) / static_cast<double>(sources.size());
      },
      [&] { return sup->counters().retried; },  // atomics: no status() (a /proc read per worker) per redraw
      [&](const std::string& line) { log->info("{}", line); }, std::chrono::seconds(5),
      [&] { return slow.check(sup->status()); }, [&](const std::string& line) { log->warn("{}", line); });

  std::atomic<bool> stopping{false};
  std::atomic<bool> interrupted{false};
  std::atomic<bool> output_failed{false};
  stop_ladder ladder(*sup);
  std::mutex ladder_mutex;
  bool run_over = false;  // the ladder's steps are over: a write error at the very end stops nothing
  auto climb = [&] {
    std::lock_guard lock(ladder_mutex);
    if (!run_over) (void)ladder.stop();
  };
  // First signal, or results that cannot be written: stop taking jobs, report queued ones
  // as stopped, give running ones shutdown_timeout (on the ladder's thread: the signal
  // thread stays free to hear a second signal).
  auto request_stop = [&] {
    if (stopping.exchange(true)) return;
    const std::uint64_t one = 1;
    (void)!::write(stop_fd.get(), &one, sizeof one);
    climb();
  };

  const bool results_on_terminal = mode == progress_reporter::mode::bar && ::isatty(io.results_fd);
  // What the results file really holds, for the summary: a job whose line could not be
  // written is not counted ok (or failed) there, but as unwritten.
  run_counters written;
  fd_result_sink sink(
      io.results_fd, io.results_name,
      results_on_terminal ? std::function<void(const std::function<void()>&)>(
                                [&](const std::function<void()>& w) { reporter.around_output(w); })
                          : nullptr,
      [&](const std::string& why) {
        output_failed = true;
        log->error("{}; stopping", why);
        request_stop();
      },
      [&](const result& r) { written.count(r); });
  std::optional<result_order> order;
  if (o.keep_order) {
    std::size_t window = 1;
    for (const auto& p : config.pools) window = std::max(window, p.options.max_pending);
    order.emplace(sink, window);
  }
  run_state state(counters, sink, source_names, order ? &*order : nullptr, slow);
  std::optional<bar_log_routing> routing;
  if (mode == progress_reporter::mode::bar) routing.emplace(std::vector{spdlog::get("supervisor"), log}, reporter);

  try {
    sup->start();
  } catch (const std::exception& e) {  // no dispatcher thread (RLIMIT_NPROC): nothing ran
    log->error("cannot start: {}", e.what());
    sink.close();
    return k_exit_gave_up;
  }
  reporter.start();

  std::thread signals([&] {
    int received = 0;
    for (;;) {
      pollfd p[2] = {{signal_fd.get(), POLLIN, 0}, {quit_fd.get(), POLLIN, 0}};
      if (ringmaster::detail::retry_eintr([&] { return ::poll(p, 2, -1); }) < 0) {  // not to spin on a lasting error
        log->error("cannot wait for signals: {}", std::strerror(errno));
        return;
      }
      if (p[1].revents & POLLIN) return;
      signalfd_siginfo si{};
      if (::read(signal_fd.get(), &si, sizeof si) != static_cast<ssize_t>(sizeof si)) continue;
      const char* abbrev = ::sigabbrev_np(static_cast<int>(si.ssi_signo));
      const std::string name = std::string("SIG") + (abbrev ? abbrev : "?");
      if (++received == 1) {
        interrupted = true;
        log->warn("{}: stopping: queued jobs are reported stopped, running ones have {} to finish (signal again to "
                  "stop at once)",
                  name, format_duration(config.supervisor.shutdown_timeout));
        request_stop();
        continue;
      }
      // A second signal: every running job is ended and reported stopped through its own
      // callback (as serve's second stop does); the main thread then writes every line
      // and goes.
      log->warn("{} again: stopping at once", name);
      state.begin_at_once();
      climb();
      return;
    }
  });

  // Feed: entries in input order; submit() blocks while the pool is full (backpressure).
  job_admission admission(config, o.resume || o.resume_failed ? &resume.done : nullptr,
                          o.resume_failed ? &resume.failed : nullptr);
  std::unordered_map<std::string, pool*> pools;
  for (const auto& p : config.pools) pools[p.name] = sup->find_pool(p.name);
  job_entry e;
  bool read_failed = false;
  for (std::size_t si = 0; si < sources.size() && !stopping; ++si) {
    current_source = si;
    while (!stopping && sources[si]->next(e)) {
      switch (admit_entry(admission, e, state, true)) {
        case admitted::skipped:
          (resume.done.contains(e.id) ? counters.skipped : counters.skipped_unfailed)
              .fetch_add(1, std::memory_order_relaxed);
          break;
        case admitted::rejected: break;  // counted, and its line queued, by `state`
        case admitted::submit: {
          const auto tag = state.accept(e.integer_id, run_state::where(si, e.line));
          if (!tag) break;
          counters.admitted.fetch_add(1, std::memory_order_relaxed);
          run_state* st = &state;
          // The payload is moved into the job's record, not copied; the next entry reuses e.
          pools.at(e.pool)->submit(
              job_spec{.type = std::move(e.type), .payload = std::move(e.payload), .id = std::move(e.id), .tag = *tag},
              [st](result r) { st->finish(std::move(r)); });
          break;
        }
      }
    }
  }
  current_source = sources.size();
  if (line_source && !line_source->read_error().empty()) {
    log->error("{}", line_source->read_error());
    read_failed = true;
  }
  counters.input_done = true;

  // --- 4. Finish: every accepted job gets its line (a stop a signal began is waited for).
  if (!stopping && ladder.drain() == stop_ladder::step::running)
    log->debug("all input has been read: draining (the accepted jobs finish)");
  ladder.wait();
  {
    const std::uint64_t one = 1;
    (void)!::write(quit_fd.get(), &one, sizeof one);
  }
  signals.join();
  {
    std::lock_guard lock(ladder_mutex);
    run_over = true;
  }
  ladder.wait();  // a stop at once the signal thread began last
  if (state.at_once()) {
    sink.close();
    reporter.stop();
    routing.reset();
    say("ringmaster: stopped at once: " + std::to_string(state.cut()) + " unfinished job(s) reported stopped; results: " +
        io.results_name);
    return k_exit_failed;
  }
  const supervisor_status status = sup->status();
  const bool gave_up = sup->any_pool_gave_up();
  sink.close();
  reporter.stop();
  routing.reset();
  if (const std::string err = sink.error(); !err.empty()) output_failed = true;

  const double wall = std::chrono::duration<double>(clock_type::now() - started).count();
  written.skipped = counters.skipped.load();
  written.skipped_unfailed = counters.skipped_unfailed.load();
  const std::string summary =
      format_summary(written, status, wall, interrupted, io.results_name, {sink.lines_lost(), sink.error()});
  (void)!::write(STDERR_FILENO, summary.data(), summary.size());

  if (output_failed) return k_exit_output;
  if (gave_up) return k_exit_gave_up;
  if (counters.failed.load() > 0 || interrupted || output_failed || read_failed) return k_exit_failed;
  return k_exit_ok;
}

int run(const run_options& o) {
  try {
    return run_body(o);
  } catch (const std::system_error& e) {
    // A thread of the run (results writer, progress, signals) cannot be created: under a
    // tight RLIMIT_NPROC, which counts threads. Unwinding has stopped what had started.
    say(std::string("ringmaster: cannot start: cannot create a thread (threads count against RLIMIT_NPROC): ") +
        e.what());
    return k_exit_gave_up;
  }
}

}  // namespace ringmaster::cli
