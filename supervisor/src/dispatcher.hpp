// The dispatcher: one thread that owns the supervisor's end of every ring, every job in
// the system and every worker slot. User threads reach it only through each pool's
// inbox (submissions) and a command queue (everything else), and wake it through one
// eventfd that the workers' result rings also write to when it sleeps.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <exception>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <ringmaster/ipc/ring.hpp>
#include <ringmaster/ipc/segment.hpp>
#include <ringmaster/supervisor/supervisor.hpp>
#include <ringmaster/worker/detail/wire.hpp>
#include <set>
#include <string>
#include <thread>
#include <unordered_map>
#include <utility>
#include <variant>
#include <vector>

#include "fork_server_set.hpp"
#include "policy/death_verdict.hpp"
#include "policy/restart_intensity.hpp"
#include "policy/shutdown_phase.hpp"
#include "refusal.hpp"
#include "slot_phase.hpp"
#include "worker_events.hpp"

namespace spdlog {
class logger;
}

namespace ringmaster::detail {

using clock_type = std::chrono::steady_clock;

/// Where a job's result goes when a worker asked for it (job::submit in a handler).
struct reply_target {
  std::size_t pool = 0;
  int slot = -1;
  std::uint64_t generation = 0;  // of the asking worker's rings: a replacement is not the asker
  std::uint64_t request = 0;
};

struct job_record {
  std::uint64_t token = 0;
  std::string id, type, payload;
  std::uint64_t tag = 0;  // the submitter's (job_spec::tag), copied into its result, never sent
  bool sent = false;      // in a slot's in_flight, so counted in pool_state::in_flight
  unsigned attempts = 0;  // attempts that ended without a final result
  bool killed_a_worker = false;  // a death was charged to it: its later ones cost no restart intensity
  error_kind last_error = error_kind::none;
  std::string last_message;
  std::variant<std::monostate, std::promise<result>, completion_callback, completion_queue*, reply_target> target;
};

struct slot_state {
  int index = 0;
  std::size_t pool = 0;
  // Its phase, and what the phase carries (why it is on its way out, whether it said
  // ready): slot_phase.hpp. Changed only through dispatcher::enter.
  slot_lifecycle life;
  ipc::segment segment;
  wire::link_view view;
  ipc::ring_writer jobs;
  ipc::ring_reader results;
  pid_t pid = 0;
  int pidfd = -1;
  std::uint64_t server = 0;         // which fork server started it
  std::uint64_t spawn_request = 0;  // pending spawn, 0 if none
  std::deque<job_record*> in_flight;
  struct reply {
    std::uint64_t request;
    error_kind error;
    unsigned attempts;
    std::string body;
  };
  std::deque<reply> outbox;  // replies waiting for room in the job ring
  unsigned awaiting_own_pool = 0;  // its handler's requests to its own pool not yet answered
  clock_type::time_point front_started{}, ready_at{}, spawned_at{}, restart_at{}, kill_at = clock_type::time_point::max();
  std::uint64_t jobs_sent = 0;  // to the current process
  std::uint64_t jobs_done = 0, jobs_failed = 0;
  unsigned restarts = 0;
  unsigned failures_in_a_row = 0;  // for backoff
  std::map<std::string, unsigned> restarts_by_cause;
  std::string start_error;  // a worker's `fatal` text
  std::string stderr_tail;  // the last lines of its stderr, when it died (fork server's words)
  // When its pidfd said it died while the fork server had not reported it yet; {} if not.
  clock_type::time_point death_seen_at{};

  [[nodiscard]] bool alive() const noexcept { return pid > 0; }
  [[nodiscard]] bool in(slot_phase p) const noexcept { return life.phase == p; }
  /// Never to be restarted (temporary, pool gave up, scaled out, shutdown).
  [[nodiscard]] bool retired() const noexcept { return is_retired(life); }
  /// Not on its way out (a pending recycle still counts: the job it runs is timed).
  [[nodiscard]] bool running_normally() const noexcept { return detail::running_normally(life); }
  /// As status() shows it.
  [[nodiscard]] worker_state state() const noexcept { return shown_state(life, !in_flight.empty()); }
};

struct pool_state {
  std::size_t index = 0;
  std::string name;
  pool_options options;
  const handlers* fork_handlers = nullptr;  // null for a command pool
  std::set<std::string, std::less<>> types;  // known job types; empty: unknown yet (command pool)
  wire::link_layout layout;
  std::vector<std::unique_ptr<slot_state>> slots;
  std::deque<job_record*> queue;  // dispatcher only

  // Shared with submitting threads.
  std::mutex mutex;
  std::vector<job_record*> inbox;
  std::condition_variable room;
  std::atomic<std::size_t> unfinished{0};  // accepted, no final result yet
  std::atomic<bool> accepting{true};
  std::string refusal;  // why not accepting (guarded by mutex)

  // Set by remove_pool (under the dispatcher's pools_mutex_): the name is free again, the
  // pool drains, then its workers stop.
  std::atomic<bool> removed{false};

  // Dispatcher only.
  bool removal_done = false;  // removed, drained, and its workers told to stop
  bool gave_up = false;
  std::string gave_up_reason;
  std::atomic<std::uint64_t> completed{0}, failed{0};  // also counted by refusing threads
  // Written by the dispatcher, read lock-free by pool::counters (a progress display must
  // not cost a status() round trip). retried is atomic only for that reader.
  std::atomic<std::uint64_t> submitted{0};  // every job given a record here: accepted or refused
  std::atomic<std::size_t> in_flight{0};    // jobs with `sent` set
  std::atomic<std::uint64_t> retried{0};
  std::atomic<std::uint64_t> callback_exceptions{0};  // its completion callbacks that threw
  unsigned restarts = 0;
  // The deaths that count toward max_restarts within restart_window (see on_exit).
  restart_intensity intensity;
  unsigned start_failures_in_a_row = 0;
  // First fork of this pool's workers that failed (EAGAIN, ENOMEM) since one succeeded;
  // {} while forks work.
  clock_type::time_point fork_failing_since{};
  double avg_job_us = 0;

  class pool api{this};
  class dispatcher* owner = nullptr;
};

class dispatcher {
 public:
  explicit dispatcher(supervisor_options options);
  ~dispatcher();

  pool_state& add_pool(std::string name, const handlers* h, pool_options options);
  pool* find_pool(std::string_view name) noexcept;
  void start();
  void drain();
  void stop(std::chrono::milliseconds grace);
  bool wait_idle(std::chrono::milliseconds timeout);
  readiness wait_ready(std::chrono::milliseconds timeout);  // waiters.cpp
  /// The first exception a completion callback threw since the last call, or null; the
  /// call clears it (supervisor.hpp: rethrown by drain, stop, wait_idle, wait_ready).
  std::exception_ptr take_callback_exception();
  supervisor_status status();
  bool any_gave_up();
  pid_t fork_server_pid();
  const supervisor_options& options() const noexcept { return options_; }

  /// A new job for `p`, its id given or the supervisor's next sequence number.
  std::unique_ptr<job_record> new_job_for(pool_state& p, std::string_view type, std::string_view payload, std::string id) {
    return new_job(p, type, payload, std::move(id));
  }
  /// From a submitting thread: validates and enqueues `job`, or delivers its refusal.
  /// With `block` false, returns false (and keeps nothing) when the pool is full.
  bool submit(pool_state& p, std::unique_ptr<job_record>& job, bool block);
  /// pool::scale and supervisor::remove_pool (see supervisor.hpp).
  void scale(pool_state& p, unsigned workers);
  bool remove_pool(std::string_view name);
  /// Calls f(pool_state&) for every pool ever added (removed ones too), under the pool
  /// list's lock: held by add_pool and status() for a moment, never for a round trip.
  template <class F>
  void for_each_pool(F&& f) const {
    std::lock_guard lock(pools_mutex_);
    for (auto& p : pools_) f(std::as_const(*p));
  }

 private:
  // --- the dispatcher thread
  void run();
  bool take_commands();
  bool take_submissions();
  bool collect_results();
  bool collect(slot_state& s);
  void handle_message(slot_state& s, const wire::message& m);
  void on_worker_ready(slot_state& s, const worker_ready& e);
  void on_worker_result(slot_state& s, const worker_result& e);
  void on_violation(slot_state& s, std::string_view why);
  void handle_worker_submit(slot_state& s, const worker_submit& m);
  bool handle_fork_events();
  void on_spawned(const fork_event& e);
  void on_spawn_failed(const fork_event& e);
  void on_exit(slot_state& s, int wait_status, std::int64_t max_rss_kib, bool server_died);
  void on_server_death();
  // A fork server that does not answer (stopped, wedged): what says so, and what is done.
  void watch_pidfd(slot_state& s);
  bool note_deaths();
  bool check_fork_server();
  clock_type::time_point fork_server_deadline() const;
  void check_descriptor_budget(const std::string& pool, std::size_t workers, const pool_state* existing) const;
  bool dispatch();
  bool dispatch_pool(pool_state& p);
  bool flush_outbox(slot_state& s);
  bool handle_timers();
  void idle_wait();
  clock_type::time_point next_deadline() const;

  void spawn(slot_state& s);
  void schedule_restart(slot_state& s, bool planned, bool was_ready);
  void terminate(slot_state& s, ending why, int sig);
  // The slot's next phase (slot_phase.hpp); `what` names the transition for the log of
  // an illegal one (asserted in debug builds; the slot keeps its phase otherwise).
  void enter(slot_state& s, next_phase next, const char* what);
  // A `stop` behind the jobs it holds, sent now or once its ring has room (send_stop).
  void ask_to_stop(slot_state& s, ending why);
  bool send_stop(slot_state& s);
  void give_up(pool_state& p, std::string reason);
  void complete(pool_state& p, job_record* job, result r);
  void keep_callback_exception(pool_state& p, std::exception_ptr e);  // waiters.cpp
  void answer_ready_waiters();                                        // waiters.cpp
  void requeue_front(pool_state& p, job_record* job);
  void deliver_reply(const reply_target& t, const result& r);
  void fail_all_queued(pool_state& p, error_kind kind, const std::string& why);
  void begin_shutdown(bool drain, std::chrono::milliseconds grace);
  void advance_shutdown();
  void hold_unstarted_jobs();
  static bool has_free_worker(const pool_state& p) noexcept;
  std::unique_ptr<job_record> new_job(pool_state& p, std::string_view type, std::string_view payload, std::string id);
  bool post(std::function<void()> command);
  void shutdown(bool drain, std::chrono::milliseconds grace);
  void require_other_thread(const char* what) const;
  void abandon_start();
  void check_shared_memory(const pool_state& p) const;
  void wake() noexcept;
  void start_pool(pool_state& p);
  refusal apply_scale(pool_state& p, unsigned workers);
  void retire_for_scale(slot_state& s);
  void trim_slots();
  void advance_removals();

  supervisor_options options_;
  std::shared_ptr<spdlog::logger> log_;
  fork_server_set servers_;  // the zygote, the active fork server and the standby
  int wake_fd_ = -1;
  int epoll_fd_ = -1;
  int deaths_fd_ = -1;          // epoll of the workers' pidfds: a death as the kernel saw it

  // Sleep protocol with submitters (a Dekker pair, like the doorbells).
  std::atomic<bool> sleeping_{false};
  std::atomic<std::uint64_t> submissions_{0};
  std::uint64_t submissions_seen_ = ~std::uint64_t{0};  // so the first pass looks (pools added before start)

  mutable std::mutex pools_mutex_;  // guards pools_ (appended to by add_pool, any thread)
  std::vector<std::unique_ptr<pool_state>> pools_;
  std::vector<pool_state*> live_;   // dispatcher thread only: the started pools, by index

  std::mutex commands_mutex_;
  std::vector<std::function<void()>> commands_;
  bool commands_closed_ = false;  // the dispatcher ended (guarded by commands_mutex_)
  bool fork_events_due_ = true;
  clock_type::time_point fork_events_checked_{};
  std::atomic<bool> accepting_pools_{true};
  bool trim_due_ = false;        // a scaled-out slot may be ready to go
  bool removals_due_ = false;    // a removed pool may be ready to stop its workers

  std::thread thread_;
  std::atomic<bool> started_{false};
  std::atomic<bool> finished_{false};
  std::uint64_t next_token_ = 1;
  // Default job ids: one sequence for the whole supervisor, so that two pools feeding one
  // completion queue never both produce id "1".
  std::atomic<std::uint64_t> next_id_{1};
  std::uint64_t next_spawn_ = 1;
  std::unordered_map<std::uint64_t, slot_state*> spawning_;
  std::unordered_map<pid_t, slot_state*> by_pid_;

  using phase = shutdown_phase;
  [[nodiscard]] bool stopping() const noexcept { return stops_jobs(phase_); }
  phase phase_ = phase::running;
  clock_type::time_point shutdown_deadline_{};
  std::vector<std::shared_ptr<std::promise<void>>> shutdown_waiters_;

  std::mutex idle_mutex_;
  std::condition_variable idle_cv_;

  std::vector<std::shared_ptr<std::promise<readiness>>> ready_waiters_;  // dispatcher thread only
  std::mutex callback_exception_mutex_;
  std::exception_ptr callback_exception_;  // the first one not yet rethrown
};

}  // namespace ringmaster::detail
