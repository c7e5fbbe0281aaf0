// ringmaster/worker/handlers.hpp — the functions workers run, and what they see of a job.
//
// A `handlers` object maps job types to functions. The same object serves both ways a
// worker can exist:
//  * forked: the supervisor's fork server forks workers from a copy of the program taken
//    when the supervisor was constructed. Handlers registered before that are in the
//    copy; a handlers object (or a handler) added later is not, and a pool using it fails
//    to start with an error that says so. Register handlers first, then construct the
//    supervisor.
//  * exec'd: a worker executable calls serve(argc, argv, h) (serve.hpp).
//
// A handler runs in a worker process, one job at a time. It returns the result text, or
// throws: the exception's what() becomes the job's error (kind `exception`, or `memory`
// for std::bad_alloc); the worker survives. A handler may submit jobs to any pool of the
// supervisor through job::post (fire and forget), job::call (submit and wait), or
// job::submit + job::wait (several at once).
//
// Thread safety: register handlers before any supervisor uses them; afterwards the
// object is read-only. `handlers` is neither copyable nor movable: supervisors refer to
// it by identity.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include <ringmaster/worker/result.hpp>

namespace ringmaster {

namespace detail {
class worker_runtime;
struct handlers_access;  // the registry and the hooks, for ringmaster's own code (not installed)
struct job_context;      // what the worker runtime makes a job from (not installed)
}  // namespace detail

class job;
/// A handler: the job's result text, or an exception.
using handler = std::function<std::string(job&)>;

class handlers {
 public:
  handlers();
  ~handlers();
  handlers(const handlers&) = delete;
  handlers& operator=(const handlers&) = delete;

  /// Registers `fn` for jobs of type `type`. Throws std::invalid_argument for an empty
  /// type, one over 1024 bytes, or one already registered. Returns *this for chaining.
  handlers& on(std::string type, handler fn);

  /// Runs once in each worker process before it reports ready: to open what the worker
  /// alone owns (a file, a connection), for a dedicated worker. An exception makes that
  /// worker's start fail with its message (and a pool whose workers cannot start gives
  /// up with it). Replaces an earlier hook.
  handlers& on_start(std::function<void(int slot)> fn);
  /// Runs in each worker process when it is told to stop (recycling, drain, stop), after
  /// its last job: to flush and close. Not run when the worker dies or is killed.
  handlers& on_stop(std::function<void(int slot)> fn);

  /// The handler for `type`, or nullptr. Non-blocking.
  [[nodiscard]] const handler* find(std::string_view type) const noexcept;
  /// Registered types, sorted.
  [[nodiscard]] std::vector<std::string> names() const;

 private:
  // How the fork server finds this object again in a forked copy of the process, and how
  // the worker runtime runs the hooks: ringmaster/worker/detail/handlers_access.hpp.
  friend struct detail::handlers_access;
  std::map<std::string, handler, std::less<>> table_;
  std::function<void(int)> on_start_, on_stop_;
  std::uint32_t id_;
};

/// A request a handler submitted with job::submit, to pass to job::wait.
struct pending_request {
  std::uint64_t token = 0;
};

/// The job a handler is running. Views (type, payload, id) are valid while the handler
/// runs. Only usable inside the handler, in the worker process.
class job {
 public:
  /// Made by the worker runtime for each job it runs, from a detail::job_context that only
  /// ringmaster's own sources can fill: a handler is given a job, it never makes one.
  explicit job(const detail::job_context& context) noexcept;

  [[nodiscard]] std::string_view type() const noexcept { return type_; }
  /// The payload: a string payload's characters, or any other JSON value's compact text.
  [[nodiscard]] std::string_view payload() const noexcept { return payload_; }
  [[nodiscard]] std::string_view id() const noexcept { return id_; }
  /// 1 for the first attempt, 2 after the worker running it died once, ...
  [[nodiscard]] unsigned attempt() const noexcept { return attempt_; }
  /// The worker's slot in its pool.
  [[nodiscard]] int worker() const noexcept { return slot_; }

  /// Submits a job to `pool` and returns at once. The job gets a result like any other,
  /// but nobody here waits for it. Throws std::runtime_error if the supervisor is gone
  /// or the message is larger than this worker's max_message.
  void post(std::string_view pool, std::string_view type, std::string_view payload);
  /// Submits a job to `pool` to be waited for with wait(). Non-blocking.
  [[nodiscard]] pending_request submit(std::string_view pool, std::string_view type, std::string_view payload);
  /// Blocks until the result of `request` arrives or `timeout` passes (then a result of
  /// kind `timeout`; default k_call_timeout, 60 s: pass a longer one for longer jobs). A
  /// request to an unknown or stopped pool, or one whose job fails, gets a failed result:
  /// never a hang. A request to the caller's own pool when it has one worker (the caller,
  /// which would wait for itself) is failed at once, kind `rejected`.
  [[nodiscard]] result wait(pending_request request, std::chrono::milliseconds timeout = k_call_timeout);
  /// submit then wait.
  [[nodiscard]] result call(std::string_view pool, std::string_view type, std::string_view payload,
                            std::chrono::milliseconds timeout = k_call_timeout);

  /// The default timeout of wait() and call().
  static constexpr std::chrono::milliseconds k_call_timeout{60'000};

 private:
  detail::worker_runtime* runtime_;
  std::string_view type_, payload_, id_;
  unsigned attempt_;
  int slot_;
};

}  // namespace ringmaster
