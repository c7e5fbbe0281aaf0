#include <ringmaster/cli/job_flow.hpp>

#include <system_error>
#include <utility>

namespace ringmaster::cli {

result rejected_result(std::string id, std::string message) {
  result r;
  r.id = std::move(id);
  r.error = error_kind::rejected;
  r.value = std::move(message);
  return r;
}

admitted admit_entry(job_admission& admission, job_entry& e, result_sink& sink, bool may_wait) {
  switch (admission.admit(e)) {
    case job_admission::verdict::submit: return admitted::submit;
    case job_admission::verdict::skip: return admitted::skipped;
    case job_admission::verdict::reject: break;
  }
  const bool integer_id = e.integer_id;
  sink.push(rejected_result(std::move(e.id), std::move(e.rejection)), may_wait, integer_id);
  return admitted::rejected;
}

void name_refusal(result& r, std::string_view source, std::uint64_t line) {
  if (r.error == error_kind::rejected) r.value = rejection_message(source, line, r.value);
}

stop_ladder::stop_ladder(supervisor& sup, std::function<void()> on_finished)
    : sup_(sup), on_finished_(std::move(on_finished)) {}

stop_ladder::~stop_ladder() {
  std::vector<std::thread> threads;
  {
    std::lock_guard lock(mutex_);
    threads.swap(threads_);
  }
  for (auto& t : threads) t.join();
}

void stop_ladder::launch(std::unique_lock<std::mutex>& lock, std::function<void()> call, bool first) {
  ++active_;
  auto body = [this, call = std::move(call), first] {
    call();
    std::function<void()> finished;
    {
      std::lock_guard inner(mutex_);
      if (first && !finished_) {
        finished_ = true;
        finished = on_finished_;
      }
    }
    if (finished) finished();
    std::lock_guard inner(mutex_);
    --active_;
    idle_.notify_all();
  };
  try {
    threads_.emplace_back(body);
    return;
  } catch (const std::system_error&) {
    // No thread to be had (RLIMIT_NPROC counts threads): the step runs here, blocking its
    // caller, rather than not at all.
  }
  lock.unlock();
  body();
}

stop_ladder::step stop_ladder::drain() {
  std::unique_lock lock(mutex_);
  const step before = step_;
  if (before != step::running) return before;
  step_ = step::draining;
  launch(lock, [this] { sup_.drain(); }, true);
  return before;
}

stop_ladder::step stop_ladder::stop() {
  std::unique_lock lock(mutex_);
  const step before = step_;
  switch (before) {
    case step::running:
      step_ = step::stopping;
      launch(lock, [this] { sup_.stop(); }, true);
      break;
    case step::draining:
      // Over a drain: its wait is cut short as a stop's would be.
      step_ = step::stopping;
      launch(lock, [this] { sup_.stop(); }, false);
      break;
    case step::stopping:
      step_ = step::stopping_now;
      launch(lock, [this] { sup_.stop(std::chrono::milliseconds(0)); }, false);
      break;
    case step::stopping_now: break;
  }
  return before;
}

void stop_ladder::wait() {
  std::unique_lock lock(mutex_);
  idle_.wait(lock, [&] { return active_ == 0; });
}

stop_ladder::step stop_ladder::now() const {
  std::lock_guard lock(mutex_);
  return step_;
}

bool stop_ladder::finished() const {
  std::lock_guard lock(mutex_);
  return finished_;
}

const char* to_string(stop_ladder::step s) noexcept {
  switch (s) {
    case stop_ladder::step::running: return "running";
    case stop_ladder::step::draining: return "draining";
    case stop_ladder::step::stopping: return "stopping";
    case stop_ladder::step::stopping_now: return "stopping now";
  }
  return "?";
}

}  // namespace ringmaster::cli
