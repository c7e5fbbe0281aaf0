// Resizing and removing pools (dispatcher thread).

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

// =======================================================================================
// Resizing and removing pools (dispatcher thread)

// Slots [0, workers) are the pool; slots past it finish their jobs and go. Growing takes
// back slots still on their way out before adding new ones, so the slots stay numbered
// 0..N-1 and a worker that is running is never restarted for it.
refusal dispatcher::apply_scale(pool_state& p, unsigned workers) {
  if (p.removed.load()) return {errc::pool_removed, "pool '" + p.name + "' was removed"};
  if (p.gave_up) return {errc::pool_gave_up, "pool '" + p.name + "' gave up: " + p.gave_up_reason};
  if (phase_ != phase::running)
    return {errc::stopping, "pool '" + p.name + "' cannot be scaled: the supervisor is stopping"};
  const unsigned before = p.options.workers;
  p.options.workers = workers;
  for (std::size_t i = 0; i < std::min<std::size_t>(workers, p.slots.size()); ++i) {
    slot_state& s = *p.slots[i];
    if (!s.life.scaled_out) continue;
    // Its stop message not sent yet: it simply stays. Sent: it exits cleanly after its
    // jobs and is replaced (as a recycled worker is). Gone: started again.
    enter(s, on_scale_back(s.life), "scale back");
    if (s.in(slot_phase::down)) spawn(s);
  }
  while (p.slots.size() < workers) {
    auto s = std::make_unique<slot_state>();
    s->index = static_cast<int>(p.slots.size());
    s->pool = p.index;
    slot_state& raw = *s;
    {
      std::lock_guard lock(pools_mutex_);  // other threads read slots only through status(), here
      p.slots.push_back(std::move(s));
    }
    spawn(raw);
  }
  for (std::size_t i = workers; i < p.slots.size(); ++i) retire_for_scale(*p.slots[i]);
  trim_due_ = true;
  if (before == workers)
    log_->info("{}: pool '{}' already has {} worker(s): nothing to scale", options_.name, p.name, workers);
  else
    log_->info("{}: pool '{}' scaled from {} to {} worker(s)", options_.name, p.name, before, workers);
  return {};
}

void dispatcher::retire_for_scale(slot_state& s) {
  if (s.life.scaled_out) return;
  if (s.spawn_request) {  // never started: on_spawned kills it if it comes
    spawning_.erase(s.spawn_request);
    s.spawn_request = 0;
  }
  // Healthy: a stop message behind the jobs it holds, so they finish first. Already on
  // its way out (timeout, strategy): it goes as planned and is not replaced. Dead (or
  // never started): stopped.
  enter(s, on_scale_in(s.life), "scale in");
  if (s.life.stop_due) send_stop(s);
}

// Scaled-out slots at the end of their pool go once their process has.
void dispatcher::trim_slots() {
  trim_due_ = false;
  for (pool_state* p : live_) {
    std::lock_guard lock(pools_mutex_);
    while (!p->slots.empty()) {
      const slot_state& s = *p->slots.back();
      if (!s.life.scaled_out || s.alive() || s.spawn_request != 0) break;
      p->slots.pop_back();
    }
  }
}

// A removed pool drains (its accepted jobs run, with retries), then stops its workers.
void dispatcher::advance_removals() {
  removals_due_ = false;
  for (pool_state* pp : live_) {
    pool_state& p = *pp;
    if (!p.removed.load() || p.removal_done) continue;
    if (p.unfinished.load() != 0 && !p.gave_up) {
      removals_due_ = true;  // look again on the next pass
      continue;
    }
    p.removal_done = true;
    const bool replaced = std::any_of(live_.begin(), live_.end(),
                                      [&p](const pool_state* o) { return o != &p && o->name == p.name && !o->removed.load(); });
    if (replaced)
      log_->info("{}: pool '{}' as it was before its replacement has finished its jobs: its workers stop", options_.name,
                 p.name);
    else
      log_->info("{}: pool '{}' removed", options_.name, p.name);
    for (auto& s : p.slots) {
      if (s->spawn_request) spawning_.erase(s->spawn_request), s->spawn_request = 0;
      if (!s->alive()) {
        enter(*s, on_retire(s->life, worker_state::stopped), "retire");
      } else if (s->life.said_ready && s->in_flight.empty() && s->running_normally()) {
        ask_to_stop(*s, ending::shutdown);
      } else {
        terminate(*s, ending::shutdown, SIGKILL);
      }
    }
  }
}

}  // namespace ringmaster::detail
