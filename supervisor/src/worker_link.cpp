// The dispatcher's side of each worker's rings: reading what a worker published, and
// sending the replies waiting for room in its job ring.

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

bool dispatcher::collect_results() {
  bool any = false;
  for (std::size_t i = 0; i < live_.size(); ++i)
    for (auto& s : live_[i]->slots)
      if (s->alive() && !is_hostile(s->life)) any |= collect(*s);
  return any;
}

// Reads every message the worker published. A worker is untrusted: a broken ring or a
// malformed or out-of-order message gets it killed, never a crash or an out-of-bounds
// read here.
bool dispatcher::collect(slot_state& s) {
  bool any = false;
  std::span<const std::byte> bytes;
  // At most this many messages per pass: a worker that writes as fast as we read must
  // not keep the dispatcher from the other workers, the submitters and the timers.
  for (int budget = 4096; budget > 0; --budget) {
    const auto ec = s.results.try_read(bytes);
    if (ec == ipc::errc::empty) break;
    if (ec) {
      log_->error("{}: worker {}/{} (pid {}) broke its result ring ({}); killing it", options_.name, live_[s.pool]->name,
                  s.index, s.pid, ec.message());
      terminate(s, ending::hostile, SIGKILL);
      break;
    }
    const auto m = wire::decode(bytes);
    if (!m) {
      log_->error("{}: worker {}/{} (pid {}) sent a malformed message; killing it", options_.name, live_[s.pool]->name,
                  s.index, s.pid);
      terminate(s, ending::hostile, SIGKILL);
      break;
    }
    handle_message(s, *m);
    any = true;
    if (is_hostile(s.life)) break;
  }
  s.results.release();
  return any;
}

// The rules of what a worker may send when are read_worker_message's (worker_events.hpp);
// here each event is acted on.
void dispatcher::handle_message(slot_state& s, const wire::message& m) {
  const link_facts facts{.said_ready = s.life.said_ready,
                         .generation = s.jobs.generation(),
                         .front = s.in_flight.empty() ? std::nullopt : std::optional(s.in_flight.front()->token)};
  std::visit(
      [&](const auto& e) {
        using E = std::decay_t<decltype(e)>;
        if constexpr (std::is_same_v<E, worker_ready>) {
          on_worker_ready(s, e);
        } else if constexpr (std::is_same_v<E, worker_result>) {
          on_worker_result(s, e);
        } else if constexpr (std::is_same_v<E, worker_submit>) {
          handle_worker_submit(s, e);
        } else if constexpr (std::is_same_v<E, worker_fatal>) {
          // Not judged by start_error: the fork server's exit event may have set it first.
          s.start_error.assign(e.why);
          log_->error("{}: worker {}/{} cannot start: {}", options_.name, live_[s.pool]->name, s.index, s.start_error);
        } else {
          on_violation(s, e.why);
        }
      },
      read_worker_message(facts, m));
}

void dispatcher::on_violation(slot_state& s, std::string_view why) {
  log_->error("{}: worker {}/{} {}; killing it", options_.name, live_[s.pool]->name, s.index, why);
  terminate(s, ending::hostile, SIGKILL);
}

void dispatcher::on_worker_ready(slot_state& s, const worker_ready& e) {
  pool_state& p = *live_[s.pool];
  enter(s, on_ready(s.life), "ready");
  s.ready_at = clock_type::now();
  // A user's program has started only once it answers a job (adapter.hpp): its
  // worker's ready says nothing of the program.
  if (p.options.protocol == worker_protocol::ringmaster) p.start_failures_in_a_row = 0;
  if (!p.fork_handlers && p.types.empty()) {
    std::string_view names = e.handler_names;
    while (!names.empty()) {
      const auto nl = std::min(names.find('\n'), names.size());
      if (nl > 0) p.types.emplace(names.substr(0, nl));
      names.remove_prefix(std::min(nl + 1, names.size()));
    }
  }
  log_->debug("{}: worker {}/{} ready (pid {})", options_.name, p.name, s.index, s.pid);
}

void dispatcher::on_worker_result(slot_state& s, const worker_result& e) {
  pool_state& p = *live_[s.pool];
  job_record* j = s.in_flight.front();
  s.in_flight.pop_front();
  p.start_failures_in_a_row = 0;
  s.front_started = clock_type::now();
  const double us = e.run_us;
  p.avg_job_us = p.avg_job_us == 0 ? us : 0.9 * p.avg_job_us + 0.1 * us;
  result r;
  r.id = j->id;
  r.error = e.error;
  r.value.assign(e.value);
  r.attempts = j->attempts + 1;
  r.worker = s.index;
  r.ms = us / 1000.0;
  if (!r.ok()) ++s.jobs_failed;
  ++s.jobs_done;
  if (r.ok()) p.intensity.job_succeeded();  // the pool works: its jobs' deaths were theirs
  if (retries_failed_result(r.error, p.options.retry_on_error, r.attempts, p.options.max_attempts, stopping())) {
    j->attempts = r.attempts;
    j->last_error = r.error;
    j->last_message = r.value;
    ++p.retried;
    requeue_front(p, j);
  } else {
    complete(p, j, std::move(r));
  }
}

bool dispatcher::flush_outbox(slot_state& s) {
  bool any = false;
  const std::size_t limit = live_[s.pool]->options.max_message;
  while (!s.outbox.empty()) {
    const auto& rep = s.outbox.front();
    const auto ec = rep.body.size() > limit ? std::error_code(ipc::errc::message_too_large)
                                             : wire::encode(s.jobs, {.type = wire::kind::reply,
                                          .status = static_cast<std::uint8_t>(rep.error),
                                          .attempt = rep.attempts,
                                          .token = rep.request,
                                          .body = rep.body});
    if (ec == ipc::errc::full) break;
    if (ec == ipc::errc::corrupt) {
      log_->error("{}: worker {}/{} (pid {}) broke its job ring ({}); killing it", options_.name, live_[s.pool]->name,
                  s.index, s.pid, ec.message());
      terminate(s, ending::hostile, SIGKILL);
      break;
    }
    if (ec == ipc::errc::message_too_large) {
      const std::string why = "reply of " + std::to_string(rep.body.size()) + " bytes exceeds max_message";
      (void)wire::encode(s.jobs, {.type = wire::kind::reply,
                                  .status = static_cast<std::uint8_t>(error_kind::rejected),
                                  .token = rep.request,
                                  .body = why});
    }
    s.outbox.pop_front();
    any = true;
  }
  if (any) s.jobs.publish();
  return any;
}

}  // namespace ringmaster::detail
