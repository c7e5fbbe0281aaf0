// Draining and stopping the supervisor (dispatcher thread).

#include "dispatcher.hpp"
#include "dispatcher_internal.hpp"
#include "completion_queue_access.hpp"

#include "policy/attempt_outcome.hpp"
#include "policy/backoff.hpp"
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

void dispatcher::begin_shutdown(bool drain, std::chrono::milliseconds grace) {
  if (phase_ == phase::done) return;
  accepting_pools_.store(false);
  const bool already = phase_ != phase::running;
  // Every pool added, not only the live ones: a drain posted right after start() runs in
  // the dispatcher's first pass before the pools added earlier are live, and such a pool
  // left accepting would take jobs that no dispatcher will ever answer.
  {
    std::lock_guard pools_lock(pools_mutex_);
    for (auto& pp : pools_) {
      pool_state& p = *pp;
      std::lock_guard lock(p.mutex);
      if (p.refusal.empty()) p.refusal = "supervisor is stopping";
      p.accepting.store(false);
      p.room.notify_all();
    }
  }
  if (drain && !already) {
    phase_ = phase::draining;
    // Routine (every `ringmaster run` drains once its input is read): debug, not info.
    log_->debug("{}: draining: no new jobs are accepted; the accepted ones finish", options_.name);
    return;
  }
  const auto deadline = clock_type::now() + grace;
  if (phase_ == phase::stopping) {
    // A stop while one runs (a second Ctrl-C, say): the earlier deadline wins.
    if (!drain && deadline < shutdown_deadline_) {
      shutdown_deadline_ = deadline;
      log_->info("{}: stopping sooner (in-flight jobs have {} to finish)", options_.name, format_ms(grace));
    }
    return;
  }
  if (phase_ == phase::stopping_workers) return;
  phase_ = phase::stopping;
  shutdown_deadline_ = deadline;
  log_->info("{}: stopping (in-flight jobs have {} to finish)", options_.name, format_ms(grace));
  hold_unstarted_jobs();
  for (std::size_t i = 0; i < live_.size(); ++i) fail_all_queued(*live_[i], error_kind::stopped, "supervisor stopped before the job ran");
}

// Stop: jobs already sent ahead to a worker and not started must not start, and are
// answered `stopped` now, not at the drain deadline. The worker skips them (see
// worker_control::stopping for the handshake). Its in-flight jobs run in the order they
// were sent: those after the last one it started have not started and never will; those
// before it have finished, their results on the way.
void dispatcher::hold_unstarted_jobs() {
  for (pool_state* pp : live_)
    for (auto& sp : pp->slots) {
      slot_state& s = *sp;
      if (!s.segment.valid()) continue;
      s.view.control->stopping.store(1, std::memory_order_seq_cst);
      if (!s.alive() || s.in_flight.empty()) continue;
      const std::uint64_t started = s.view.control->last_started.load(std::memory_order_seq_cst);
      auto first_unstarted = s.in_flight.begin();
      for (auto it = s.in_flight.begin(); it != s.in_flight.end(); ++it)
        if ((*it)->token == started) first_unstarted = std::next(it);
      for (auto it = first_unstarted; it != s.in_flight.end(); ++it)
        complete(*pp, *it, failed(**it, error_kind::stopped, "supervisor stopped before the job ran"));
      s.in_flight.erase(first_unstarted, s.in_flight.end());
    }
}

void dispatcher::advance_shutdown() {
  const auto now = clock_type::now();
  if (phase_ == phase::draining) {
    // Drain: everything accepted runs (with retries) before the workers stop.
    const bool nothing_left =
        std::all_of(live_.begin(), live_.end(), [](pool_state* p) { return p->unfinished.load() == 0 || p->gave_up; });
    if (!nothing_left) return;
    phase_ = phase::stopping;
    shutdown_deadline_ = now;
  }
  if (phase_ == phase::stopping) {
    bool in_flight = false;
    for (std::size_t i = 0; i < live_.size(); ++i)
      for (auto& s : live_[i]->slots) in_flight |= !s->in_flight.empty();
    if (in_flight && now < shutdown_deadline_) return;
    // Stop every worker: idle ones are asked (stop message), busy ones past the deadline
    // are killed; all get one second before SIGKILL.
    phase_ = phase::stopping_workers;
    shutdown_deadline_ = now + k_stop_waits.shutdown_kill_after;
    for (std::size_t i = 0; i < live_.size(); ++i)
      for (auto& s : live_[i]->slots) {
        if (s->spawn_request) spawning_.erase(s->spawn_request), s->spawn_request = 0;
        // Dead and coming back (or on its way back): stopped. Dead for good: as it ended.
        if (s->in(slot_phase::down) || s->in(slot_phase::spawning) || s->in(slot_phase::backoff))
          enter(*s, on_retire(s->life, worker_state::stopped), "retire");
        if (!s->alive()) continue;
        if (s->in_flight.empty() && s->life.said_ready && !s->in(slot_phase::terminating)) {
          ask_to_stop(*s, ending::shutdown);
        } else {
          terminate(*s, ending::shutdown, SIGKILL);
        }
      }
  }
  if (phase_ == phase::stopping_workers) {
    bool alive = false;
    for (std::size_t i = 0; i < live_.size(); ++i)
      for (auto& s : live_[i]->slots) {
        if (!s->alive()) continue;
        alive = true;
        if (now >= shutdown_deadline_) pidfd_signal(s->pidfd, SIGKILL);
      }
    if (!alive && spawning_.empty()) {
      phase_ = phase::done;
      log_->info("{}: stopped", options_.name);
    }
  }
}

}  // namespace ringmaster::detail
