// Supervising workers: final results, a worker's death and its restart, spawning and
// terminating workers, and a pool that gives up.

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
#include <cassert>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <dirent.h>
#include <random>
#include <ringmaster/worker/detail/log.hpp>
#include <ringmaster/worker/detail/handlers_access.hpp>
#include <ringmaster/worker/serve.hpp>
#include <stdexcept>

namespace ringmaster::detail {
namespace {

std::string format_bytes(std::size_t b) {
  if (b % (std::size_t{1} << 30) == 0) return std::to_string(b >> 30) + " GiB";
  if (b % (std::size_t{1} << 20) == 0) return std::to_string(b >> 20) + " MiB";
  return std::to_string(b) + " bytes";
}

}  // namespace

// Delivers a final result. Runs on the dispatcher thread, or on a submitting thread for
// refusals.
void dispatcher::complete(pool_state& p, job_record* job, result r) {
  std::unique_ptr<job_record> owned(job);
  if (job->sent) p.in_flight.fetch_sub(1, std::memory_order_relaxed);
  (r.ok() ? p.completed : p.failed)++;
  r.pool = p.name;
  r.type = job->type;
  r.tag = job->tag;
  std::visit(
      [&](auto& t) {
        using T = std::decay_t<decltype(t)>;
        if constexpr (std::is_same_v<T, std::promise<result>>) {
          t.set_value(std::move(r));
        } else if constexpr (std::is_same_v<T, completion_callback>) {
          try {
            t(std::move(r));
          } catch (...) {
            keep_callback_exception(p, std::current_exception());
          }
        } else if constexpr (std::is_same_v<T, completion_queue*>) {
          completion_queue_access::push(*t, std::move(r));
        } else if constexpr (std::is_same_v<T, reply_target>) {
          deliver_reply(t, r);
        } else if (!r.ok()) {
          // A job posted by a handler (fire and forget): nobody waits for it, so its
          // failure is said here rather than nowhere.
          log_->warn("{}: posted job {} in pool '{}' failed ({}): {}", options_.name, r.id, p.name, to_string(r.error), r.value);
        }
      },
      job->target);
  const std::size_t before = p.unfinished.fetch_sub(1);
  // A blocked submitter waits for unfinished <= max_pending - slice: it can only get there
  // through this decrement (it started waiting at max_pending or more).
  if (before == p.options.max_pending - room_slice(p.options.max_pending) + 1) {
    std::lock_guard lock(p.mutex);  // pairs with the waiter's predicate check
    p.room.notify_all();
  }
  if (before == 1) {
    std::lock_guard lock(idle_mutex_);
    idle_cv_.notify_all();
  }
}

// A worker is gone (reaped by the fork server, or killed with it). Its results already
// published are whole and are taken first; then the job it was running, if any, is
// charged with the cause, the jobs queued behind it go back to the pool untouched, and
// the slot is reset and restarted as the pool's restart type, intensity and backoff say.
void dispatcher::on_exit(slot_state& s, int wait_status, std::int64_t max_rss_kib, bool server_died) {
  pool_state& p = *live_[s.pool];
  // A spawn the dead server never answered, of a slot retired since (its pool gave up).
  if (!s.alive() && !s.in(slot_phase::spawning)) return;
  while (s.alive() && !is_hostile(s.life) && collect(s)) {
  }
  if (s.pid > 0) by_pid_.erase(s.pid);
  if (s.pidfd >= 0) ::close(s.pidfd);
  const pid_t pid = s.pid;
  s.pid = 0;
  s.pidfd = -1;
  // What it was doing when it died (why it was ended, whether it was ready) decides the
  // rest; the slot itself is down until that is decided.
  const slot_lifecycle was = s.life;
  enter(s, on_death(s.life), "death");

  // What killed it, as the user will read it (policy/death_verdict.hpp).
  const death_verdict verdict = classify({.wait_status = wait_status,
                                          .max_rss_kib = max_rss_kib,
                                          .out_of_memory = s.view.control && s.view.control->out_of_memory.load() != 0,
                                          .memory_limit = p.options.memory_limit,
                                          .why = was.why,
                                          .server_died = server_died});
  const error_kind kind = verdict.kind;
  const std::string& cause = verdict.cause;
  std::string message = cause;
  if (kind == error_kind::timeout) message = "exceeded job_timeout of " + format_ms(p.options.job_timeout);
  if (kind == error_kind::memory)
    message = "exceeded memory_limit of " + format_bytes(p.options.memory_limit) +
              (WIFSIGNALED(wait_status) ? " (" + signal_name(WTERMSIG(wait_status)) + ")" : "");
  if (was.why == ending::hostile) message = "worker violated the ring protocol";
  // A user's program that ended before it took its first job: a start failure, though
  // the worker said ready, and the job it was given goes back uncharged.
  const bool not_started = program_not_started(wait_status) && was.why == ending::none;
  if (not_started) message = "its program ended before it took its first job";
  if (was.said_ready && !not_started && !s.stderr_tail.empty()) message += "; its stderr ended: " + s.stderr_tail;
  s.stderr_tail.clear();

  const bool abnormal = verdict.abnormal;
  const bool planned = verdict.planned;
  const bool stopping = this->stopping() || was.why == ending::shutdown;

  // Attribution: the job the worker said it was running (if it holds it), or for a
  // timeout the one we timed. The worker's word is only used to pick among its own jobs.
  job_record* running = nullptr;
  if (!planned && !not_started && !s.in_flight.empty()) {
    std::vector<std::uint64_t> tokens;
    tokens.reserve(s.in_flight.size());
    for (job_record* j : s.in_flight) tokens.push_back(j->token);
    const std::uint64_t current = s.view.control ? s.view.control->current_job.load() : 0;
    if (const auto i = charged_job(tokens, current, verdict, was.why)) running = s.in_flight[*i];
  }
  // For restart intensity: whether a job is charged, and with its first death (read now:
  // the loop below may complete the job).
  const death_charge charge = charge_of(running != nullptr, running && running->killed_a_worker);
  if (running) running->killed_a_worker = true;
  for (auto it = s.in_flight.rbegin(); it != s.in_flight.rend(); ++it) {
    job_record* j = *it;
    if (j == running) {
      ++j->attempts;
      j->last_error = kind;
      j->last_message = message;
      switch (after_attempt(stopping, j->attempts, p.options.max_attempts)) {
        case attempt_outcome::stop:
          complete(p, j, failed(*j, error_kind::stopped, "supervisor stopped while the job ran (its worker: " + message + ")", s.index, ms_since(s.front_started)));
          break;
        case attempt_outcome::fail:
          ++s.jobs_done;  // its final result came from this slot, as a handler's would
          ++s.jobs_failed;
          complete(p, j, failed(*j, kind, j->attempts > 1 ? message + " (" + std::to_string(j->attempts) + " attempts)" : message, s.index, ms_since(s.front_started)));
          break;
        case attempt_outcome::retry:
          ++p.retried;
          requeue_front(p, j);
          break;
      }
    } else if (stopping) {
      complete(p, j, failed(*j, error_kind::stopped, "supervisor stopped before the job ran"));
    } else {
      requeue_front(p, j);
    }
  }
  s.in_flight.clear();
  s.outbox.clear();
  s.awaiting_own_pool = 0;
  if (s.segment.valid()) {
    // The worker is dead, so nothing races with these stores: the rings start empty,
    // with a new generation, before a replacement attaches.
    s.jobs.reset();
    s.results.reset();
    s.view.control->current_job.store(0);
    s.view.control->last_started.store(0);
    s.view.control->out_of_memory.store(0);
  }
  const bool was_ready = was.said_ready && !not_started;
  s.kill_at = k_forever;
  if (pid > 0) {
    const auto level = (planned || stopping) ? spdlog::level::debug : spdlog::level::warn;
    log_->log(level, "{}: worker {}/{} (pid {}) ended: {}", options_.name, p.name, s.index, pid, message);
  }

  if (stopping || is_retired(was) || p.gave_up) {
    const bool signaled = WIFSIGNALED(wait_status) && !s.life.scaled_out;
    enter(s, on_retire(s.life, signaled ? worker_state::signaled : worker_state::stopped), "retire");
    trim_due_ |= s.life.scaled_out;
    return;
  }
  if (was.why == ending::recycle && !abnormal) {
    s.restarts_by_cause["recycled"]++;
    spawn(s);
    return;
  }
  const restart_type rt = p.options.restart;
  if (!planned && !restarts(rt, abnormal)) {
    enter(s, on_retire(s.life, WIFSIGNALED(wait_status) ? worker_state::signaled : worker_state::exited), "retire");
    // The pool's queued jobs still need a worker.
    const bool any_left = std::any_of(p.slots.begin(), p.slots.end(), [](auto& o) { return !o->retired(); });
    if (!any_left) give_up(p, "pool '" + p.name + "' has no workers left (restart = " + std::string(to_string(rt)) + ")");
    return;
  }
  bool counted = false;
  if (!planned) {
    // Restart intensity, as in Erlang/OTP, over the deaths that say the pool cannot work
    // (policy/restart_intensity.hpp): more than max_restarts within restart_window.
    counted = p.intensity.add_restart(charge, clock_type::now(), p.options.restart_window);
    ++p.restarts;
    ++s.restarts;
    s.restarts_by_cause[kind == error_kind::crash ? cause : std::string(to_string(kind))]++;
    // A worker that never became ready: a start failure (policy/start_failure.hpp). A
    // pool whose workers keep failing to start cannot work; it fails fast, with the
    // worker's own words.
    if (is_start_failure(was_ready, verdict.killed_from_outside)) {
      if (start_failures_give_up(++p.start_failures_in_a_row, p.intensity.exceeded(p.options.max_restarts))) {
        // The worker's own words first, then how it ended (when there was a process).
        std::string reason = not_started ? message : "worker " + message + " before it was ready";
        if (!s.start_error.empty()) reason = pid > 0 ? s.start_error + " (" + reason + ")" : s.start_error;
        give_up(p, "pool '" + p.name + "' cannot start its workers: " + reason);
        return;
      }
    }
    if (p.intensity.exceeded(p.options.max_restarts)) {
      give_up(p, "pool '" + p.name + "' gave up: more than " + std::to_string(p.options.max_restarts) + " restarts within " +
                     format_ms(p.options.restart_window) + " (last: " + message + ")");
      return;
    }
    // one_for_all / rest_for_one: the other workers are restarted too (their jobs go back
    // to their pools uncharged; policy/strategy.hpp).
    const pool_range down = taken_down_with(options_.strategy, s.pool, live_.size());
    for (std::size_t i = down.first; i < down.last; ++i)
      for (auto& other : live_[i]->slots)
        if (other.get() != &s && other->alive() && other->running_normally()) {
          // At info, as the death that causes it is at warn: otherwise a user sees
          // workers of healthy pools vanish with no word why.
          log_->info("{}: {}: restarting worker {}/{} (pid {}) because worker {}/{} died ({})", options_.name,
                     to_string(options_.strategy), live_[i]->name, other->index, other->pid, p.name, s.index, message);
          terminate(*other, ending::strategy, SIGKILL);
        }
  }
  // A death that does not count (a job killing its worker again, bounded by its
  // max_attempts) does not grow the slot's backoff either: the replacement starts at once.
  schedule_restart(s, planned || !counted, was_ready);
}

void dispatcher::schedule_restart(slot_state& s, bool planned, bool was_ready) {
  pool_state& p = *live_[s.pool];
  const auto now = clock_type::now();
  if (planned) {
    spawn(s);
    return;
  }
  // Backoff (policy/backoff.hpp): the first restart after a stable run is immediate; each
  // further one in a row waits twice as long, up to backoff_max, with jitter.
  const backoff_policy bp{.initial = p.options.backoff_initial, .max = p.options.backoff_max, .stable_after = p.options.stable_after};
  const unsigned n = s.failures_in_a_row = failures_in_a_row_after(s.failures_in_a_row, was_ready, s.ready_at, now, bp);
  if (n <= 1) {
    spawn(s);
    return;
  }
  thread_local std::mt19937 rng(std::random_device{}());
  enter(s, on_back_off(s.life), "back off");
  s.restart_at = now + backoff_delay(n, bp, backoff_jitter(rng));
}

void dispatcher::spawn(slot_state& s) {
  pool_state& p = *live_[s.pool];
  if (!servers_.has_active()) {  // no fork server left: on_server_death gives the pools up
    enter(s, on_retire(s.life, worker_state::stopped), "retire");
    return;
  }
  if (p.gave_up) return;
  if (!s.segment.valid()) {
    try {
      s.segment = ipc::segment::create_fd(p.layout.total);
      s.view = wire::link_view::in(s.segment.bytes(), p.layout);
      new (s.view.control) wire::worker_control{};
      ipc::format_ring_or_throw(s.view.job_ring, p.layout.rings);
      ipc::format_ring_or_throw(s.view.result_ring, p.layout.rings);
      s.jobs = ipc::ring_writer::attach(s.view.job_ring, p.layout.rings);
      s.results = ipc::ring_reader::attach(s.view.result_ring, p.layout.rings);
    } catch (const std::exception& e) {
      // Out of memory for shared memory (or a file-size limit): said at once, as the
      // pool's reason, instead of an exception ending the dispatcher thread.
      s.segment = {};
      give_up(p, "pool '" + p.name + "' cannot create the shared memory of worker " + std::to_string(s.index) + " (" +
                     format_bytes(p.layout.total) + "): " + e.what());
      return;
    }
  }
  enter(s, on_spawn(s.life), "spawn");
  s.start_error.clear();
  s.jobs_sent = 0;
  s.death_seen_at = {};
  s.spawned_at = clock_type::now();
  s.spawn_request = next_spawn_++;
  spawning_[s.spawn_request] = &s;
  spawn_request r;
  r.request = s.spawn_request;
  r.slot = s.index;
  r.pool = p.name;
  r.command = p.options.command;
  r.protocol = static_cast<std::uint32_t>(p.options.protocol);
  if (p.fork_handlers) {
    r.handlers_id = handlers_access::registry_id(*p.fork_handlers);
    r.handlers_fingerprint = handlers_access::fingerprint(*p.fork_handlers);
  }
  r.max_body = p.options.max_message;
  r.memory_limit = p.options.memory_limit;
  r.log_level = static_cast<int>(spdlog::get_level());
  r.segment_fd = s.segment.fd();
  r.wake_fd = wake_fd_;
  std::error_code ec;
  servers_.spawn(r, ec);
  // A failed send means the fork server died: its socket's end-of-file is handled next.
  if (ec) log_->warn("{}: cannot reach the fork server: {}", options_.name, ec.message());
}

void dispatcher::terminate(slot_state& s, ending why, int sig) {
  // A decision already taken stands, except that recycling (a clean exit after this
  // job) yields to anything that ends the worker sooner (on_terminate).
  enter(s, on_terminate(s.life, why), "terminate");
  pidfd_signal(s.pidfd, sig);
  if (sig == SIGTERM) s.kill_at = clock_type::now() + live_[s.pool]->options.kill_grace;
}

void dispatcher::enter(slot_state& s, next_phase next, const char* what) {
  assert(next && "an illegal worker-slot transition (slot_phase.hpp)");
  if (next) {
    s.life = *next;
    return;
  }
  log_->error("{}: worker {}/{}: illegal slot transition '{}' from {} (a bug: the slot keeps its phase)", options_.name,
              live_[s.pool]->name, s.index, what, to_string(s.life.phase));
}

void dispatcher::ask_to_stop(slot_state& s, ending why) {
  enter(s, on_stop_asked(s.life, why), "ask to stop");
  if (s.life.stop_due) send_stop(s);
}

// Behind the jobs it holds: the worker runs them, then exits cleanly. A full ring keeps
// it due (dispatch tries again each pass).
bool dispatcher::send_stop(slot_state& s) {
  if (wire::encode(s.jobs, {.type = wire::kind::stop})) return false;
  s.jobs.publish();
  enter(s, on_stop_sent(s.life), "stop sent");
  return true;
}

void dispatcher::requeue_front(pool_state& p, job_record* job) {
  if (job->sent) job->sent = false, p.in_flight.fetch_sub(1, std::memory_order_relaxed);
  p.queue.push_front(job);
}

void dispatcher::give_up(pool_state& p, std::string reason) {
  if (p.gave_up) return;
  p.gave_up = true;
  p.gave_up_reason = reason;
  log_->error("{}: {}", options_.name, reason);
  {
    std::lock_guard lock(p.mutex);
    p.refusal = reason;
    p.accepting.store(false);
    p.room.notify_all();
  }
  for (auto& s : p.slots) {
    if (s->alive()) terminate(*s, ending::shutdown, SIGKILL);
    if (s->spawn_request) spawning_.erase(s->spawn_request), s->spawn_request = 0;
    if (!s->alive()) enter(*s, on_retire(s->life, worker_state::stopped), "retire");
    for (job_record* j : s->in_flight) complete(p, j, failed(*j, error_kind::stopped, reason));
    s->in_flight.clear();
  }
  fail_all_queued(p, error_kind::stopped, reason);
}

void dispatcher::fail_all_queued(pool_state& p, error_kind kind, const std::string& why) {
  std::vector<job_record*> inbox;
  {
    std::lock_guard lock(p.mutex);
    inbox.swap(p.inbox);
  }
  std::deque<job_record*> queue;
  queue.swap(p.queue);
  for (job_record* j : queue) complete(p, j, failed(*j, kind, why));
  for (job_record* j : inbox) complete(p, j, failed(*j, kind, why));
}

}  // namespace ringmaster::detail
