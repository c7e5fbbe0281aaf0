// ringmaster/cli/job_flow.hpp — what `run` and `serve` both do with a job between
// its source (job_source.hpp) and its result sink (result_sink.hpp), so that neither
// rebuilds the plumbing.
//
//   source -> admit_entry (validate, --resume skip, reject) -> submit -> completion:
//   name_refusal -> sink.  stop_ladder: drain, stop, stop at once.
//
// admit_entry and name_refusal touch nothing but their arguments. stop_ladder is
// thread-safe: `run` calls it from its signal thread, its results writer (a write that
// failed) and its main thread; `serve` from its one thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <ringmaster/cli/job_source.hpp>
#include <ringmaster/cli/result_sink.hpp>
#include <ringmaster/supervisor/supervisor.hpp>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace ringmaster::cli {

/// A job refused before submission, as the result its line gets.
[[nodiscard]] result rejected_result(std::string id, std::string message);

/// What admit_entry did with an entry.
enum class admitted : std::uint8_t {
  submit,    ///< to be submitted, `e` completed (its id, its pool)
  rejected,  ///< its `rejected` line was pushed to the sink
  skipped,   ///< --resume: already done (or, with --resume-failed, not failed)
};
/// The one admission path of both commands: `admission` completes and judges `e`; a
/// rejected entry's line ("SOURCE:LINE: why") goes to `sink` at once. `may_wait`: the
/// caller may wait for room in the sink (see result_sink::push).
[[nodiscard]] admitted admit_entry(job_admission& admission, job_entry& e, result_sink& sink, bool may_wait);

/// A completion's first step in both commands: a job refused by the library at
/// submission (payload over max_message, no handler for its type) names its line as
/// admission's rejections do.
void name_refusal(result& r, std::string_view source, std::uint64_t line);

/// Drain, stop, and stop at once, as both commands climb them. Each step runs the
/// supervisor's blocking call on a thread of its own, so the caller (a signal thread, an
/// event loop) stays free to hear the next request:
///   running  --drain-->  draining   (supervisor::drain: accepted jobs finish)
///   running | draining  --stop-->  stopping  (supervisor::stop: queued jobs are reported
///                                  `stopped`, running ones get shutdown_timeout)
///   stopping --stop--> stopping_now (supervisor::stop(0ms): every running job is ended
///                                  and reported `stopped`, through the jobs' own
///                                  callbacks, so every sink gets its lines)
/// The destructor waits for the steps' threads. A step whose thread cannot be created
/// (RLIMIT_NPROC) runs on the caller's, blocking it.
class stop_ladder {
 public:
  enum class step : std::uint8_t { running, draining, stopping, stopping_now };

  /// `on_finished` runs once, on a step's thread, when the supervisor's first drain or
  /// stop has returned (every accepted job has its result).
  explicit stop_ladder(supervisor& sup, std::function<void()> on_finished = {});
  ~stop_ladder();
  stop_ladder(const stop_ladder&) = delete;
  stop_ladder& operator=(const stop_ladder&) = delete;

  /// From `running` only (else nothing): drains. Returns the step before. Never blocks.
  step drain();
  /// One step up the stop side of the ladder (nothing once stopping_now). Returns the
  /// step before. Never blocks.
  step stop();
  /// Blocks until every step taken so far has returned.
  void wait();
  [[nodiscard]] step now() const;
  /// The first drain or stop has returned.
  [[nodiscard]] bool finished() const;

 private:
  // Runs `call` on a thread of its own, or (no thread can be created) here, unlocking.
  void launch(std::unique_lock<std::mutex>& lock, std::function<void()> call, bool first);

  supervisor& sup_;
  std::function<void()> on_finished_;
  mutable std::mutex mutex_;
  std::condition_variable idle_;
  step step_ = step::running;
  int active_ = 0;  // steps whose call has not returned
  bool finished_ = false;
  std::vector<std::thread> threads_;
};

/// "running", "draining", "stopping", "stopping now": as serve's status and replies
/// name them.
[[nodiscard]] const char* to_string(stop_ladder::step s) noexcept;

}  // namespace ringmaster::cli
