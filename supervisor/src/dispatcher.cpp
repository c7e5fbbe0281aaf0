// The dispatcher thread's construction and its event loop: what runs each pass, dispatching
// jobs to workers, timers, and sleeping until something happens.

#include "dispatcher.hpp"
#include "dispatcher_internal.hpp"
#include "completion_queue_access.hpp"

#include "policy/attempt_outcome.hpp"
#include "policy/backoff.hpp"
#include "policy/credits.hpp"
#include "policy/restart_or_retire.hpp"
#include "policy/start_failure.hpp"
#include "policy/strategy.hpp"

#include <signal.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <dirent.h>
#include <random>
#include <ringmaster/worker/detail/log.hpp>
#include <ringmaster/worker/serve.hpp>
#include <stdexcept>

namespace ringmaster::detail {
namespace {

int threads_of_this_process() {
  int n = 0;
  if (DIR* d = ::opendir("/proc/self/task")) {
    while (const dirent* e = ::readdir(d))
      if (e->d_name[0] != '.') ++n;
    ::closedir(d);
  }
  return n;
}

// Every worker costs descriptors (its segment and pidfd here; its segment and two output
// pipes in the fork server): the soft RLIMIT_NOFILE, often 1024, is raised to the hard
// limit, as Go's runtime does, so that the documented 1,024 workers can run.
void raise_descriptor_limit() noexcept {
  rlimit nofile{};
  if (::getrlimit(RLIMIT_NOFILE, &nofile) != 0 || nofile.rlim_cur >= nofile.rlim_max) return;
  nofile.rlim_cur = nofile.rlim_max;
  (void)::setrlimit(RLIMIT_NOFILE, &nofile);
}

}  // namespace

dispatcher::dispatcher(supervisor_options options)
    : options_(std::move(options)), log_(logger("supervisor")), servers_(options_.name, log_) {
  if (const int threads = threads_of_this_process(); threads > 1)
    log_->warn("{}: created while this process has {} threads; the fork server copies only this one, so "
               "construct the supervisor before starting threads",
               options_.name, threads);
  raise_descriptor_limit();  // before the fork servers are forked: they inherit it
  servers_.start();
  wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
  deaths_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
  if (wake_fd_ < 0 || epoll_fd_ < 0 || deaths_fd_ < 0)
    throw std::system_error(errno, std::system_category(), "cannot create the dispatcher's descriptors");
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = 0;
  ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, wake_fd_, &ev);
  servers_.watch_in(epoll_fd_);  // tags 1 and 2
  ev.data.u64 = 3;
  ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, deaths_fd_, &ev);
}

dispatcher::~dispatcher() {
  if (started_.load()) {
    try {
      stop(options_.shutdown_timeout);
    } catch (const std::exception& e) {
      log_->error("stop failed: {}", e.what());
    }
    if (thread_.joinable()) thread_.join();
  }
  // Jobs never started (no start()): their futures learn they were stopped.
  for (auto& p : pools_) {
    std::vector<job_record*> left;
    {
      std::lock_guard lock(p->mutex);
      left.swap(p->inbox);
    }
    left.insert(left.end(), p->queue.begin(), p->queue.end());
    p->queue.clear();
    for (job_record* j : left) complete(*p, j, failed(*j, error_kind::stopped, "supervisor destroyed before the job ran"));
  }
  // Closing the fork servers' sockets ends them; their destructors wait for that.
  servers_.close();
  if (wake_fd_ >= 0) ::close(wake_fd_);
  if (epoll_fd_ >= 0) ::close(epoll_fd_);
  if (deaths_fd_ >= 0) ::close(deaths_fd_);
}

void dispatcher::start() {
  if (started_.exchange(true)) throw refused_in_state(errc::already_started, "supervisor already started");
  try {
    thread_ = std::thread([this] { run(); });
  } catch (const std::system_error& e) {
    abandon_start();
    throw std::system_error(e.code(), "supervisor '" + options_.name +
                                          "': cannot start its dispatcher thread (threads count against RLIMIT_NPROC, "
                                          "the limit on a user's processes)");
  }
}

// The dispatcher thread could not be created (EAGAIN under RLIMIT_NPROC): as if start()
// had never been called, so that the destructor does not wait for a dispatcher that
// never ran. Commands posted meanwhile (status, say, from another thread) are run here,
// as a finished dispatcher would, so that nobody waits for them either.
void dispatcher::abandon_start() {
  started_.store(false);
  std::vector<std::function<void()>> posted;
  {
    std::lock_guard lock(commands_mutex_);
    posted.swap(commands_);
  }
  for (auto& c : posted) c();
}

void dispatcher::wake() noexcept {
  if (sleeping_.load(std::memory_order_seq_cst)) ipc::detail::eventfd_signal(wake_fd_);
}

// =======================================================================================
// The dispatcher thread

void dispatcher::run() {
  log_->debug("{}: dispatcher running", options_.name);
  while (phase_ != phase::done) {
    // Commands and submissions both bump submissions_, so one load says whether either
    // needs looking at: an idle pass takes no lock. The snapshot is taken before the
    // scan, so anything posted after it makes the next pass look again.
    bool progress = false;
    if (const std::uint64_t posted = submissions_.load(std::memory_order_acquire); posted != submissions_seen_) {
      submissions_seen_ = posted;
      progress |= take_commands();
      progress |= take_submissions();
    }
    progress |= collect_results();
    // The fork server's socket is read when epoll said so (after a sleep) or, while the
    // loop is busy, every 200 µs: not a recvmsg on every pass.
    if (const auto now = clock_type::now(); fork_events_due_ || now - fork_events_checked_ > std::chrono::microseconds(200)) {
      fork_events_due_ = false;
      fork_events_checked_ = now;
      progress |= handle_fork_events();
    }
    progress |= dispatch();
    progress |= handle_timers();
    if (removals_due_) advance_removals();
    if (trim_due_) trim_slots();
    if (phase_ != phase::running) advance_shutdown();
    answer_ready_waiters();
    if (!progress && phase_ != phase::done) idle_wait();
  }
  // Close the command queue: later posts are refused (their callers answer themselves),
  // and those already posted are run now, so nobody waits for a dispatcher that ended.
  std::vector<std::function<void()>> last;
  {
    std::lock_guard lock(commands_mutex_);
    commands_closed_ = true;
    last.swap(commands_);
  }
  finished_.store(true);
  for (auto& c : last) c();
  answer_ready_waiters();  // `stopped`, to those who asked in the last moment too
  for (auto& w : shutdown_waiters_) w->set_value();
  shutdown_waiters_.clear();
  log_->debug("{}: dispatcher finished", options_.name);
}

bool dispatcher::take_commands() {
  std::vector<std::function<void()>> batch;
  {
    std::lock_guard lock(commands_mutex_);
    batch.swap(commands_);
  }
  // Pools added before start() are started on the first pass, before the commands: a
  // scale() posted right after start() applies to a pool that is live, not one that is
  // not yet (apply_scale spawns through live_).
  std::vector<pool_state*> fresh;
  {
    std::lock_guard lock(pools_mutex_);
    for (std::size_t i = live_.size(); i < pools_.size(); ++i) fresh.push_back(pools_[i].get());
  }
  // A pool is in pools_ before add_pool returns it, so before anything can submit to
  // it: the scan of inboxes that follows in this pass sees every job counted so far.
  for (pool_state* p : fresh) {
    live_.push_back(p);
    start_pool(*p);
  }
  for (auto& c : batch) c();
  removals_due_ |= !batch.empty();  // remove_pool posts a command
  return !batch.empty() || !fresh.empty();
}

void dispatcher::start_pool(pool_state& p) {
  removals_due_ |= p.removed.load();  // removed already: its accepted jobs still run first
  for (auto& s : p.slots) spawn(*s);
  // A reload that changes a pool's settings removes it and adds a new one of the same
  // name: said here, or the log reads "starting" then "removed" for the same pool.
  const bool replacing = std::any_of(live_.begin(), live_.end(), [&p](const pool_state* o) {
    return o != &p && o->name == p.name && o->removed.load() && !o->removal_done;
  });
  log_->info("{}: pool '{}' starting {} worker(s){}{}", options_.name, p.name, p.slots.size(),
             p.options.command.empty() ? "" : " (" + p.options.command.front() + ")",
             replacing ? ", replacing the pool of that name (it finishes the jobs it has)" : "");
}

bool dispatcher::take_submissions() {
  bool any = false;
  std::vector<job_record*> batch;
  for (pool_state* p : live_) {
    {
      std::lock_guard lock(p->mutex);
      batch.swap(p->inbox);
    }
    for (job_record* j : batch) {
      j->token = next_token_++;
      if (p->gave_up)
        complete(*p, j, failed(*j, error_kind::stopped, p->gave_up_reason));
      else if (stopping())
        complete(*p, j, failed(*j, error_kind::stopped, "supervisor stopping"));
      else
        p->queue.push_back(j);
    }
    any |= !batch.empty();
    batch.clear();
  }
  return any;
}

bool dispatcher::dispatch() {
  bool any = false;
  for (std::size_t i = 0; i < live_.size(); ++i) {
    pool_state& p = *live_[i];
    for (auto& s : p.slots) {
      if (!s->outbox.empty() && s->alive()) any |= flush_outbox(*s);
      if (s->life.stop_due && s->alive()) any |= send_stop(*s);
    }
    if (!p.queue.empty() && !p.gave_up) any |= dispatch_pool(p);
  }
  return any;
}

bool dispatcher::dispatch_pool(pool_state& p) {
  bool any = false;
  std::vector<slot_state*> touched;
  for (bool progress = true; progress && !p.queue.empty();) {
    progress = false;
    // Once per pass: it depends on the backlog.
    const unsigned limit =
        credits({.prefetch = p.options.prefetch,
                 .avg_job_us = p.avg_job_us,
                 .queued = p.queue.size(),
                 .workers = p.slots.size(),
                 .pipelined = p.options.protocol == worker_protocol::jsonl || p.options.protocol == worker_protocol::lines});
    for (auto& sp : p.slots) {
      slot_state& s = *sp;
      if (p.queue.empty()) break;
      if (!s.in(slot_phase::ready) || s.in_flight.size() >= limit) continue;
      // A handler waiting for a job of its own pool runs nothing else meanwhile: a job
      // sent ahead to it would wait behind it, and if that job is the one it waits for,
      // until the call times out. So it gets jobs only while no other worker can.
      if (s.awaiting_own_pool > 0 && has_free_worker(p)) continue;
      job_record* j = p.queue.front();
      if (!p.fork_handlers && !p.types.empty() && !p.types.count(j->type)) {
        // A command pool's workers said which types they serve when they became ready.
        p.queue.pop_front();
        complete(p, j, failed(*j, error_kind::rejected, "pool '" + p.name + "' has no handler for job type '" + j->type + "'"));
        progress = any = true;
        continue;
      }
      const auto ec = wire::encode(s.jobs, {.type = wire::kind::job,
                                            .attempt = j->attempts + 1,
                                            .token = j->token,
                                            .job_type = j->type,
                                            .id = j->id,
                                            .body = j->payload});
      if (ec == ipc::errc::corrupt) {
        // The worker owns the job ring's tail index and wrote nonsense into it.
        log_->error("{}: worker {}/{} (pid {}) broke its job ring ({}); killing it", options_.name, p.name, s.index, s.pid,
                    ec.message());
        terminate(s, ending::hostile, SIGKILL);
        continue;
      }
      if (ec) continue;  // full: this worker has enough to do
      p.queue.pop_front();
      if (s.in_flight.empty()) s.front_started = clock_type::now();
      s.in_flight.push_back(j);
      j->sent = true;
      p.in_flight.fetch_add(1, std::memory_order_relaxed);
      if (touched.empty() || touched.back() != &s) touched.push_back(&s);
      progress = any = true;
      if (p.options.max_jobs_per_worker > 0 && ++s.jobs_sent >= p.options.max_jobs_per_worker) {
        // Recycling: the worker exits after this job, cleanly, and is replaced.
        ask_to_stop(s, ending::recycle);
      }
    }
  }
  for (slot_state* s : touched) s->jobs.publish();
  return any;
}

// A worker of `p` that waits for no job of `p` and can take jobs, now or once started.
bool dispatcher::has_free_worker(const pool_state& p) noexcept {
  return std::any_of(p.slots.begin(), p.slots.end(), [](const auto& s) {
    return will_take_jobs(s->life) && s->awaiting_own_pool == 0;
  });
}

bool dispatcher::handle_timers() {
  const auto now = clock_type::now();
  bool any = false;
  any |= servers_.retry_due(now);
  for (std::size_t i = 0; i < live_.size(); ++i) {
    pool_state& p = *live_[i];
    for (auto& sp : p.slots) {
      slot_state& s = *sp;
      // Most passes find nothing due. Otherwise each timer is looked up afresh: the one
      // before may have disarmed it (a slot killed at start_timeout is on its way out and
      // has no job_timeout any more).
      if (now < deadlines_of(s, p.options).earliest()) continue;
      if (now >= deadlines_of(s, p.options).restart) {
        spawn(s);
        any = true;
      }
      if (now >= deadlines_of(s, p.options).kill) {
        pidfd_signal(s.pidfd, SIGKILL);
        s.kill_at = k_forever;
        any = true;
      }
      if (now >= deadlines_of(s, p.options).start_timeout) {
        s.start_error = "worker did not report ready within start_timeout of " + format_ms(p.options.start_timeout);
        log_->warn("{}: pool '{}': {} (pid {}); killing it", options_.name, p.name, s.start_error, s.pid);
        terminate(s, ending::start_timeout, SIGKILL);
        any = true;
      }
      if (now >= deadlines_of(s, p.options).job_timeout) {
        log_->warn("{}: job {} in pool '{}' exceeded job_timeout {}; stopping worker {} (pid {})", options_.name,
                   s.in_flight.front()->id, p.name, format_ms(p.options.job_timeout), s.index, s.pid);
        terminate(s, ending::timeout, SIGTERM);
        any = true;
      }
    }
  }
  return any;
}

clock_type::time_point dispatcher::next_deadline() const {
  auto next = k_forever;
  for (std::size_t i = 0; i < live_.size(); ++i) {
    const pool_state& p = *live_[i];
    for (auto& s : p.slots) next = std::min(next, deadlines_of(*s, p.options).earliest());
  }
  if (phase_ == phase::stopping || phase_ == phase::stopping_workers) next = std::min(next, shutdown_deadline_);
  next = std::min(next, fork_server_deadline());
  return std::min(next, servers_.deadline());
}

// Nothing to do: spin briefly (a result or a submission is often microseconds away),
// then sleep in epoll until a worker publishes (eventfd), a thread submits or posts
// (eventfd), the fork server speaks, or the next timer is due.
void dispatcher::idle_wait() {
  auto ready_slot = [this] {
    for (std::size_t i = 0; i < live_.size(); ++i)
      for (auto& s : live_[i]->slots)
        if (s->alive() && !is_hostile(s->life) && s->results.readable()) return true;
    return false;
  };
  const auto spin_until = clock_type::now() + std::chrono::microseconds(20);
  while (clock_type::now() < spin_until) {
    if (submissions_.load(std::memory_order_acquire) != submissions_seen_ || ready_slot()) return;
    for (int i = 0; i < 16; ++i) ipc::cpu_relax();
  }
  sleeping_.store(true, std::memory_order_seq_cst);
  std::vector<slot_state*> announced;
  bool ready = submissions_.load(std::memory_order_seq_cst) != submissions_seen_;
  for (std::size_t i = 0; i < live_.size() && !ready; ++i)
    for (auto& s : live_[i]->slots) {
      if (!s->alive() || is_hostile(s->life)) continue;
      if (!s->results.announce_sleep()) {
        ready = true;
        break;
      }
      announced.push_back(s.get());
    }
  if (!ready) {
    const auto deadline = next_deadline();
    int timeout_ms = 1000;  // a safety net only: every event that matters wakes us
    if (deadline != k_forever) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock_type::now()).count() + 1;
      timeout_ms = static_cast<int>(std::clamp<long long>(left, 0, 1000));
    }
    servers_.watch_for_room();
    epoll_event events[8];
    const int n = ::epoll_wait(epoll_fd_, events, 8, timeout_ms);
    for (int i = 0; i < n; ++i) fork_events_due_ |= events[i].data.u64 != 0;  // a fork server spoke
  }
  for (slot_state* s : announced) s->results.withdraw_sleep();
  sleeping_.store(false, std::memory_order_relaxed);
  std::uint64_t drained;
  while (::read(wake_fd_, &drained, sizeof drained) > 0) {
  }
}

}  // namespace ringmaster::detail
