// ringmaster/worker/detail/runtime.hpp — the worker runtime's pull-style core: attach to
// a slot's rings, report ready, take the next job, complete it, submit jobs and wait for
// their replies. Internal: serve() and forked workers drive it with a handlers object
// (run_worker, runtime.cpp); the C ABI (worker.h, c_api.cpp) drives it from the caller's
// own loop. One runtime, two ways to drive it.
//
// One thread only: the runtime is not thread-safe. It owns the slot's segment mapping.
// Jobs are held from next_job()/take_job() until complete(), which answers them in the
// order they were taken; serve() and the C ABI hold one at a time, the adapter of a
// line program several (the lines sent ahead to the program). The first held job is the
// running one: its token is what the supervisor charges if the process dies.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <ringmaster/ipc/ring.hpp>
#include <ringmaster/ipc/segment.hpp>
#include <ringmaster/worker/detail/launch.hpp>
#include <ringmaster/worker/detail/log.hpp>
#include <ringmaster/worker/detail/wire.hpp>
#include <ringmaster/worker/result.hpp>
#include <string>
#include <string_view>
#include <unordered_map>

namespace ringmaster::detail {

/// A job or reply read while a handler waited for a reply: kept until its turn. Also the
/// job next_job() hands out.
struct deferred_message {
  wire::kind type;
  std::uint8_t status;
  std::uint32_t attempt;
  std::uint64_t token;
  std::string job_type, id, body;
};

class worker_runtime {
 public:
  /// Maps the launch's segment and attaches to its rings, after making stdout
  /// line-buffered and watching the output pipes (see runtime.cpp). On failure returns
  /// nullptr and sets `exit_code` (k_exit_cannot_serve) and `error`; the reason was also
  /// sent to the supervisor as a start failure when the rings could be reached.
  static std::unique_ptr<worker_runtime> open(const worker_launch& launch, std::string& error, int& exit_code) noexcept;
  /// open(), the reason printed on stderr when it fails.
  static std::unique_ptr<worker_runtime> open(const worker_launch& launch, int& exit_code) noexcept;

  worker_runtime(const worker_launch& launch, ipc::segment seg);

  /// Attaches to the rings; on failure returns the reason.
  std::string attach();
  /// Reports a start failure to the supervisor (before ready only).
  void fatal(std::string_view why);
  /// Reports ready, serving `names` (job types separated by '\n'). Once.
  void ready(std::string_view names);

  /// Blocks until the next job to run: true with it in `out` (held until complete()).
  /// False when told to stop (stopped() is true) or when the rings broke (stopped() is
  /// false: exit with k_exit_protocol).
  bool next_job(deferred_message& out);
  /// What take_job() found.
  enum class taken { job, none, stop, broken };
  /// The next job, held after those already held: `job` with it in `out`; `none` when
  /// `wait` is false and no job is there yet; `stop` once told to stop (stopped()); `broken`
  /// when the rings broke (exit with k_exit_protocol). The first job held is the running
  /// one (the supervisor charges it); the others wait their turn.
  taken take_job(deferred_message& out, bool wait);
  /// Sends the result of the first held job, and makes the next held job (if any) the
  /// running one from now: ok (`status` none) with `value` as its text, or failed with
  /// `status` and `value` as its message. A value over max_message becomes a `rejected`
  /// failure saying so. Published at once unless `publish_now` is false (then by
  /// publish(), or before the runtime waits for a message). False when the result could
  /// not be sent (the supervisor is gone): the runtime counts as told to stop.
  bool complete(error_kind status, std::string_view value, bool publish_now = true);
  /// Makes the results sent so far visible to the supervisor.
  void publish() noexcept;
  /// True once the supervisor said stop.
  [[nodiscard]] bool stopped() const noexcept { return stop_; }
  /// True while a job taken is not completed.
  [[nodiscard]] bool holding() const noexcept { return !held_.empty(); }
  /// How many jobs are held.
  [[nodiscard]] std::size_t held() const noexcept { return held_.size(); }
  /// The running job's id (holding() must be true).
  [[nodiscard]] const std::string& running_id() const noexcept { return held_.front().id; }
  /// After the last job: publishes what is staged and flushes stdio. Returns the exit code.
  int finish();

  /// Submits a job to another pool; the token to wait for (0 when !wants_reply). Throws
  /// std::runtime_error when it cannot be sent.
  std::uint64_t submit(std::string_view pool, std::string_view type, std::string_view payload, bool wants_reply);
  /// submit(), with the reason it cannot be sent as an error code (ipc::errc).
  std::error_code try_submit(std::string_view pool, std::string_view type, std::string_view payload, bool wants_reply,
                             std::uint64_t& token);
  /// The reply to `token`, or a result of kind timeout or stopped.
  result wait(std::uint64_t token, std::chrono::milliseconds timeout);

  [[nodiscard]] int slot() const noexcept { return launch_.slot; }
  [[nodiscard]] spdlog::logger& log() noexcept { return *log_; }

 private:
  using clock_type = std::chrono::steady_clock;

  // A job taken and not yet completed.
  struct held_job {
    std::uint64_t token;
    std::string id;
  };

  std::error_code send(const wire::message& m);
  // The next message: {} with it in `m`; ipc::errc::timed_out when none came by
  // `deadline` (time_point::min(): do not wait); any other error: the ring broke.
  std::error_code next_message(deferred_message& m, clock_type::time_point deadline);
  std::error_code read_ring(deferred_message& out, clock_type::time_point deadline);
  // Shows `h` as the running job (started now) in the control block.
  void run_next(const held_job& h);

  worker_launch launch_;
  ipc::segment segment_;
  std::shared_ptr<spdlog::logger> log_;
  wire::link_layout layout_;
  wire::link_view view_;
  ipc::ring_reader jobs_;
  ipc::ring_writer results_;
  // A short spin: on a machine with as many workers as cores, a longer one takes CPU
  // from the dispatcher that would feed it.
  ipc::wait_policy wait_policy_{std::chrono::microseconds(20), std::chrono::milliseconds(50)};
  std::deque<deferred_message> backlog_;
  std::unordered_map<std::uint64_t, result> replies_;
  std::uint64_t next_request_ = 1;
  std::deque<held_job> held_;       // jobs taken and not completed, the running one first
  std::int64_t held_started_ = 0;   // when the running one started (wire::monotonic_ns)
  bool stop_ = false;
};

}  // namespace ringmaster::detail
