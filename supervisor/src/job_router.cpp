// Jobs that handlers submit (job::post / job::submit), and the replies routed back to them.

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

// A handler submitted a job (job::post / job::submit). Routed like any other job; a
// reply, if asked for, goes back to this very worker process, or nowhere.
void dispatcher::handle_worker_submit(slot_state& s, const worker_submit& m) {
  const reply_target asker{s.pool, s.index, s.jobs.generation(), m.request};
  pool_state* target = nullptr;
  for (std::size_t i = 0; i < live_.size(); ++i)
    if (live_[i]->name == m.pool && (!target || target->removed.load())) target = live_[i];
  auto refuse = [&](error_kind kind, std::string why) {
    if (m.request == 0) {
      // Nobody waits for a posted job, so its refusal is logged; at the 1st, 2nd, 4th, 8th
      // ... refusal only, so that a worker posting in a loop cannot flood the log.
      static std::atomic<std::uint64_t> refused_posts{0};
      if (const auto n = ++refused_posts; (n & (n - 1)) == 0)
        log_->warn("{}: a job posted by worker {}/{} was refused ({} refused so far): {}", options_.name,
                   live_[s.pool]->name, s.index, n, why);
      return;
    }
    result r;
    r.error = kind;
    r.value = std::move(why);
    deliver_reply(asker, r);
  };
  if (!target) return refuse(error_kind::rejected, "no pool named '" + std::string(m.pool) + "'");
  if (target->removed.load()) return refuse(error_kind::stopped, "pool '" + target->name + "' was removed");
  if (target->gave_up) return refuse(error_kind::stopped, target->gave_up_reason);
  // A worker waiting for a job of its own one-worker pool waits for itself: said at once
  // rather than at the call's timeout. (A posted job just runs after the handler.)
  if (m.request != 0 && target == live_[s.pool] && target->options.workers == 1)
    return refuse(error_kind::rejected, "pool '" + target->name +
                                            "' has one worker, the very one waiting for this reply: a handler cannot call "
                                            "its own one-worker pool (post the job, or give the pool more workers)");
  // While draining, jobs that handlers submit are still part of finishing the accepted
  // work, so only a stop refuses them.
  if (stopping())
    return refuse(error_kind::stopped, "pool '" + target->name + "' is not accepting jobs: supervisor stopping");
  if (m.payload.size() > target->options.max_message)
    return refuse(error_kind::rejected, "payload exceeds max_message of pool '" + target->name + "'");
  if (target->fork_handlers && !target->types.count(m.job_type))
    return refuse(error_kind::rejected, "pool '" + target->name + "' has no handler for job type '" + std::string(m.job_type) + "'");
  // Bounded like any submission: a handler flooding a pool with jobs is refused once the
  // pool holds max_pending unfinished ones, instead of growing the supervisor's memory.
  // (Not blocked: the pool might only drain through the very worker that asks.)
  if (target->unfinished.load() >= target->options.max_pending)
    return refuse(error_kind::rejected, "pool '" + target->name + "' is full (" +
                                            std::to_string(target->options.max_pending) + " jobs unfinished, max_pending)");
  auto j = new_job(*target, m.job_type, m.payload, std::string(m.id));
  j->token = next_token_++;
  if (m.request != 0) {
    j->target = asker;
    if (target == live_[s.pool]) ++s.awaiting_own_pool;  // until its reply (deliver_reply)
  }
  target->submitted.fetch_add(1, std::memory_order_relaxed);
  target->unfinished.fetch_add(1);
  target->queue.push_back(j.release());
}

void dispatcher::deliver_reply(const reply_target& t, const result& r) {
  if (t.pool >= live_.size()) return;
  pool_state& p = *live_[t.pool];
  if (t.slot < 0 || static_cast<std::size_t>(t.slot) >= p.slots.size()) return;
  slot_state& s = *p.slots[static_cast<std::size_t>(t.slot)];
  // The asker died (and maybe was replaced) since: nobody waits for this reply.
  if (!s.alive() || s.jobs.generation() != t.generation) return;
  if (r.pool == p.name && s.awaiting_own_pool > 0) --s.awaiting_own_pool;  // complete() named the pool
  s.outbox.push_back({t.request, r.error, r.attempts, r.value});
  flush_outbox(s);
}

}  // namespace ringmaster::detail
