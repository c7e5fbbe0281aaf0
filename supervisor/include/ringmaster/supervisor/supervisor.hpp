// ringmaster/supervisor/supervisor.hpp — pools of worker processes, supervised: the
// embedding API.
//
//     ringmaster::handlers h;
//     h.on("primes", [](ringmaster::job& j) { return count_primes(j.payload()); });
//     ringmaster::supervisor sup({.name = "demo"});        // forks the fork server here
//     auto& pool = sup.add_pool("compute", h, {.workers = 4});
//     sup.start();
//     std::future<ringmaster::result> r = pool.submit("primes", "1000000");
//
// Processes. The constructor forks two fork servers (an active one and a standby) while
// the program is, it is assumed, still single-threaded: construct the supervisor early,
// after registering handlers and before starting threads. start() starts the dispatcher
// thread, which alone owns the supervisor's ends of every ring, and asks the fork server
// for the workers. Every worker dies with the supervisor, however the supervisor dies.
//
// Delivery. Every accepted job gets exactly one result: ok, or failed with a reason. A
// job may run more than once when its worker dies mid-job (at-least-once execution,
// exactly-once reporting). A job refused at submission (pool stopped or gave up, payload
// over max_message, unknown type) gets its failed result at once.
//
// Threads. submit() and status() may be called from any thread, concurrently. Callbacks
// and completion-queue pushes run on the dispatcher thread: keep them short. A callback
// may submit follow-up jobs (on that thread submit never blocks: the pool may go over
// max_pending for them); drain() or stop() from a callback throws std::logic_error, as it
// would wait for itself. The destructor stops (as stop()) and joins; it never throws.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <future>
#include <memory>
#include <optional>
#include <ranges>
#include <string>
#include <string_view>
#include <vector>

#include <ringmaster/supervisor/options.hpp>
#include <ringmaster/supervisor/status.hpp>
#include <ringmaster/worker/handlers.hpp>
#include <ringmaster/worker/logging.hpp>  // set_log_level, for the supervisor's own lines too
#include <ringmaster/worker/result.hpp>

namespace ringmaster {

namespace detail {
class dispatcher;
struct pool_state;
struct completion_queue_access;  // the dispatcher's way to push (supervisor/src)
}  // namespace detail

/// Called with a job's result, on the dispatcher thread.
using completion_callback = std::function<void(result)>;

/// Results delivered to a queue that an event loop can wait on without a thread: fd()
/// is an eventfd, readable while results wait (poll/epoll/Boost.Asio's
/// posix::stream_descriptor). Thread-safe. Must outlive the jobs submitted to it.
class completion_queue {
 public:
  completion_queue();  ///< Throws std::system_error if no eventfd can be created.
  ~completion_queue();
  completion_queue(const completion_queue&) = delete;
  completion_queue& operator=(const completion_queue&) = delete;

  /// Readable (POLLIN) while at least one result waits.
  [[nodiscard]] int fd() const noexcept { return fd_; }
  /// The oldest waiting result, or nullopt. Non-blocking.
  [[nodiscard]] std::optional<result> try_pop();
  /// Every waiting result, oldest first. Non-blocking.
  [[nodiscard]] std::vector<result> drain();
  /// Blocks up to `timeout` for a result.
  [[nodiscard]] std::optional<result> pop(std::chrono::milliseconds timeout);

 private:
  friend struct detail::completion_queue_access;
  void push(result r);  // on the dispatcher thread, as a job's result is delivered

  struct impl;
  std::unique_ptr<impl> impl_;
  int fd_ = -1;
};

/// One job, for the submit overloads that take it whole, filled with designated
/// initializers: `pool.submit({.type = "primes", .payload = std::move(text), .tag = row})`.
/// Its strings are moved into the job's record, the payload's bytes never copied there.
struct job_spec {
  std::string type{};
  std::string payload{};
  std::string id{};       ///< names the job in its result; "" for a number unique in the supervisor
  std::uint64_t tag = 0;  ///< the submitter's own, given back in result::tag; never sent to a worker
};

/// A pool of identical workers, owned by its supervisor. Submitting is thread-safe.
class pool {
 public:
  [[nodiscard]] const std::string& name() const noexcept;

  /// Submits a job; the future gets its result. Blocks while the pool has max_pending
  /// jobs unfinished. `id` names the job in its result (default: a number unique in this
  /// supervisor, across its pools); the result also names the pool and the job type.
  [[nodiscard]] std::future<result> submit(std::string_view type, std::string_view payload, std::string id = {});
  /// Submits a job whose result is passed to `done` on the dispatcher thread. Blocks as
  /// the future form does.
  void submit(std::string_view type, std::string_view payload, completion_callback done, std::string id = {});
  /// Submits a job whose result is pushed to `queue`. Blocks as the future form does.
  void submit(std::string_view type, std::string_view payload, completion_queue& queue, std::string id = {});
  /// As submit with a callback, but never blocks: false (and nothing submitted) when the
  /// pool has max_pending jobs unfinished.
  [[nodiscard]] bool try_submit(std::string_view type, std::string_view payload, completion_callback done,
                                std::string id = {});
  /// The job_spec forms: as the forms above, with a tag, and with the payload (and type
  /// and id) moved into the job's record instead of copied.
  [[nodiscard]] std::future<result> submit(job_spec job);
  void submit(job_spec job, completion_callback done);
  void submit(job_spec job, completion_queue& queue);
  /// Never blocks: false when the pool has max_pending jobs unfinished, and then nothing is
  /// submitted and `job` is given back as it was (a caller may park it and try again).
  [[nodiscard]] bool try_submit(job_spec&& job, completion_callback done);

  /// This pool's running totals. Lock-free (atomic loads): cheap enough for a progress
  /// line every few milliseconds, unlike status(). Thread-safe, also after a removal.
  [[nodiscard]] job_counters counters() const noexcept;

  /// Submits one job per payload, in order; blocks as submit does.
  template <std::ranges::input_range R>
  [[nodiscard]] std::vector<std::future<result>> map(std::string_view type, R&& payloads) {
    std::vector<std::future<result>> out;
    if constexpr (std::ranges::sized_range<R>) out.reserve(std::ranges::size(payloads));
    for (auto&& p : payloads) out.push_back(submit(type, std::string_view(p)));
    return out;
  }

  /// Changes the number of workers to `workers` (1-1024), blocking for a moment until the
  /// dispatcher has applied it (not until new workers are ready). Growing starts new
  /// workers and leaves running ones alone; shrinking stops the workers of the highest
  /// slots, each after the jobs it holds (no job is lost or retried for it; queued jobs
  /// go to the remaining workers). Slots stay numbered 0..workers-1. Throws
  /// std::invalid_argument for a count out of range, std::logic_error if the pool was
  /// removed or gave up, or the supervisor is stopping. Not from a completion callback
  /// while another thread also scales (it would not wait, but apply at once).
  void scale(unsigned workers);

  /// Made by the supervisor (add_pool), over the dispatcher's record of the pool.
  explicit pool(detail::pool_state* state) noexcept : state_(state) {}

 private:
  detail::pool_state* state_;
};

class supervisor {
 public:
  /// Forks the fork servers. Throws std::system_error if they cannot be started.
  explicit supervisor(supervisor_options options = {});
  /// As stop(), then waits for every worker and fork server to be gone. Never throws.
  ~supervisor();
  supervisor(const supervisor&) = delete;
  supervisor& operator=(const supervisor&) = delete;

  /// Adds a pool whose workers are forked and run `h`. `h` must have been created, and
  /// its handlers registered, before this supervisor (see handlers.hpp), and must outlive
  /// it. Throws std::invalid_argument for a duplicate or malformed name or bad options.
  /// Allowed before and after start().
  pool& add_pool(std::string name, const handlers& h, pool_options options = {});
  /// Adds a pool whose workers run `options.command`, a worker executable built on
  /// ringmaster::serve().
  pool& add_pool(std::string name, pool_options options);
  /// The pool called `name`, or nullptr (a removed pool is not found).
  [[nodiscard]] pool* find_pool(std::string_view name) noexcept;
  /// Removes the pool called `name`; false if there is none. Non-blocking. It refuses new
  /// jobs at once (kind `stopped`, "pool 'NAME' was removed") and its name is free for
  /// add_pool; the jobs it had accepted still run (with retries), then its workers stop.
  /// Its pool& stays valid (refusing jobs) until the supervisor is destroyed; status()
  /// shows it, `removed`, until its workers are gone.
  bool remove_pool(std::string_view name);

  /// Starts the dispatcher and the workers. Non-blocking: workers become ready in the
  /// background (jobs submitted meanwhile wait). Throws std::logic_error if called twice,
  /// std::system_error if the dispatcher thread cannot be created (EAGAIN: threads count
  /// against RLIMIT_NPROC); the supervisor is then as if never started (the destructor
  /// fails the jobs submitted `stopped`), and start() may be tried again.
  void start();
  /// Stops taking jobs (later submissions fail with kind `stopped`), waits until every
  /// accepted job has its result, then stops the workers. Blocking; returns at once if
  /// already stopped. A pool added afterwards refuses its jobs (`stopped`).
  void drain();
  /// Stops taking jobs; jobs not yet sent to a worker fail with kind `stopped`; in-flight
  /// jobs get shutdown_timeout to finish (then fail, `stopped`); then stops the workers.
  /// Blocking; idempotent. Results already computed are always delivered.
  void stop();
  /// As stop(), with `grace` instead of shutdown_timeout for the in-flight jobs; 0ms
  /// stops at once (in-flight jobs fail `stopped`, their workers are killed). From
  /// another thread while a stop() or drain() waits, it cuts that wait short as a second
  /// Ctrl-C would: the earlier deadline wins, and every waiter returns.
  void stop(std::chrono::milliseconds grace);
  /// Blocks until no pool has queued or in-flight jobs, or `timeout`; returns whether
  /// idle.
  bool wait_idle(std::chrono::milliseconds timeout);

  /// The sum of every pool's counters (removed pools' too, so the totals never go
  /// back). No /proc read and no dispatcher round trip: one atomic load per field and pool,
  /// under the pool list's lock, which add_pool and status() hold only for a moment.
  [[nodiscard]] job_counters counters() const;

  /// A snapshot of every pool and worker. Thread-safe; blocking for a moment.
  [[nodiscard]] supervisor_status status() const;
  /// True if any pool gave up (restart intensity exceeded, or it could not start).
  [[nodiscard]] bool any_pool_gave_up() const;
  [[nodiscard]] const supervisor_options& options() const noexcept;

  /// Pid of the fork server currently forking workers (tests kill it to prove it is
  /// survived).
  [[nodiscard]] pid_t fork_server_pid() const;

 private:
  std::unique_ptr<detail::dispatcher> dispatcher_;
};

}  // namespace ringmaster
