// The dispatcher's side of the fork servers: what their events and a server's death
// mean for slots and pools, and watching that the active one still answers. The servers
// themselves (the standby, promotion, their sockets) are fork_server_set.{hpp,cpp}.

#include "dispatcher.hpp"
#include "dispatcher_internal.hpp"
#include "completion_queue_access.hpp"

#include "policy/attempt_outcome.hpp"
#include "policy/backoff.hpp"
#include "policy/fork_server_succession.hpp"
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
#include <ringmaster/worker/detail/launch.hpp>
#include <stdexcept>

namespace ringmaster::detail {
namespace {

// The last non-empty line of `text`, at most 500 bytes.
std::string last_line(std::string_view text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r' || text.back() == ' ')) text.remove_suffix(1);
  const auto nl = text.rfind('\n');
  if (nl != std::string_view::npos) text.remove_prefix(nl + 1);
  return std::string(text.substr(0, 500));
}

// The last lines of a dead worker's stderr, at most 500 bytes, on one line.
std::string stderr_excerpt(std::string_view text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r' || text.back() == ' ')) text.remove_suffix(1);
  if (text.size() > 500) {
    text.remove_prefix(text.size() - 500);
    if (const auto nl = text.find('\n'); nl != std::string_view::npos && nl + 1 < text.size()) text.remove_prefix(nl + 1);
  }
  std::string out;
  for (char c : text) out += c == '\n' ? std::string(" | ") : std::string(1, c == '\r' ? ' ' : c);
  return out;
}

}  // namespace

bool dispatcher::handle_fork_events() {
  if (!servers_.has_active()) return false;  // no server left: the pools have given up
  bool any = false;
  any |= note_deaths();
  const fork_server_set::report report = servers_.poll();
  for (auto e = report.events.cbegin(); e != report.events.cend(); ++e) {
    any = true;
    switch (e->what) {
      case fork_event::kind::spawned: on_spawned(*e); break;
      case fork_event::kind::spawn_failed: on_spawn_failed(*e); break;
      case fork_event::kind::exited:
        if (auto it = by_pid_.find(e->pid); it != by_pid_.end()) {
          slot_state& s = *it->second;
          // A worker that never became ready: its last line on stderr says why. A user's
          // program that never took a job: the tail of its stderr (adapter.hpp).
          if (program_not_started(e->status) && s.start_error.empty()) s.start_error = stderr_excerpt(e->message);
          if (!s.life.said_ready && s.start_error.empty()) s.start_error = last_line(e->message);
          s.stderr_tail = stderr_excerpt(e->message);  // for the failure of the job it ran
          on_exit(s, e->status, e->max_rss_kib, false);
        }
        break;
    }
  }
  if (report.gone) {
    on_server_death();
    return true;
  }
  if (check_fork_server()) return true;
  any |= servers_.tend();  // a standby or the zygote that died
  return any;
}

void dispatcher::on_spawned(const fork_event& e) {
  auto it = spawning_.find(e.request);
  if (it == spawning_.end()) {  // e.g. the pool gave up meanwhile
    pidfd_signal(e.pidfd, SIGKILL);
    if (e.pidfd >= 0) ::close(e.pidfd);
    return;
  }
  slot_state& s = *it->second;
  spawning_.erase(it);
  s.spawn_request = 0;
  live_[s.pool]->fork_failing_since = {};
  s.pid = e.pid;
  s.pidfd = e.pidfd;
  s.server = servers_.active_id();
  by_pid_[e.pid] = &s;
  watch_pidfd(s);
  enter(s, detail::on_spawned(s.life), "spawned");  // (the transition, not this member)
}

void dispatcher::on_spawn_failed(const fork_event& e) {
  auto it = spawning_.find(e.request);
  if (it == spawning_.end()) return;
  slot_state& s = *it->second;
  spawning_.erase(it);
  s.spawn_request = 0;
  if (e.status == EAGAIN || e.status == ENOMEM) {
    // Out of processes or memory for now (RLIMIT_NPROC, a pids cgroup, a full process
    // table): not the worker's fault, and no reason to give the pool up while it has
    // workers. Retried after the slot's backoff, and said every time (log, and the
    // slot's restart causes). But a pool left with no worker at all, whose forks have
    // failed for longer than start_timeout, gives up: its jobs would wait for ever.
    pool_state& p = *live_[s.pool];
    const auto now = clock_type::now();
    if (p.fork_failing_since == clock_type::time_point{}) p.fork_failing_since = now;
    s.restarts_by_cause[std::string("fork failed: ") + ::strerrorname_np(e.status)]++;
    const bool none_alive = std::none_of(p.slots.begin(), p.slots.end(), [](auto& x) { return x->alive(); });
    if (fork_failures_give_up(none_alive, p.fork_failing_since, now, p.options.start_timeout)) {
      give_up(p, "pool '" + p.name + "' cannot fork any worker: " + e.message + " (for longer than start_timeout " +
                     format_ms(p.options.start_timeout) + ")");
      return;
    }
    log_->warn("{}: pool '{}' cannot fork worker {} ({}); retrying", options_.name, p.name, s.index, e.message);
    enter(s, on_death(s.life), "spawn failed");
    schedule_restart(s, false, false);
    return;
  }
  s.start_error = e.message;
  log_->error("{}: pool '{}' cannot start worker {}: {}", options_.name, live_[s.pool]->name, s.index, e.message);
  on_exit(s, W_EXITCODE(k_exit_cannot_serve, 0), 0, false);
}

void dispatcher::on_server_death() {
  log_->error("{}: the fork server (pid {}) died; its workers die with it; promoting the standby", options_.name,
              servers_.pid());
  const std::uint64_t dead = servers_.active_id();
  // Every worker of the dead server dies of PR_SET_PDEATHSIG (and the zygote kills what
  // is left of it). Wait until it has (its pidfd says so), so that its rings can be
  // reset safely; requests it never answered are simply made again.
  std::vector<slot_state*> victims;
  std::vector<slot_state*> unanswered;  // spawns in progress: maybe what killed the server
  for (pool_state* p : live_)
    for (auto& s : p->slots) {
      if (s->alive() && s->server == dead) {
        victims.push_back(s.get());
      } else if (s->spawn_request) {
        spawning_.erase(s->spawn_request);
        s->spawn_request = 0;
        unanswered.push_back(s.get());
      }
    }
  // One bounded wait for them all, not one after another.
  constexpr int wait_ms = static_cast<int>(k_stop_waits.server_death_wait.count());
  std::vector<int> pidfds;
  for (slot_state* s : victims) pidfds.push_back(s->pidfd);
  if (wait_all_ended(pidfds, wait_ms) > 0) {
    for (int fd : pidfds) pidfd_signal(fd, SIGKILL);
    (void)wait_all_ended(pidfds, wait_ms);
  }
  const succession next = servers_.promote();
  // Their deaths were not their jobs' fault: nothing is charged, and they restart at
  // once on the new server (or retire, if there is none). Each is a restart all the same,
  // counted (not toward restart intensity: the server's death is not the pool's doing).
  for (slot_state* s : victims) {
    pool_state& p = *live_[s->pool];
    if (!s->retired() && phase_ == phase::running) {
      ++p.restarts;
      ++s->restarts;
      s->restarts_by_cause["fork server died"]++;
    }
    on_exit(*s, W_EXITCODE(0, SIGKILL), 0, true);
  }
  // A spawn the server never answered may be what killed it (a launch that crashes the
  // server): it counts as a restart of its pool, so a pool that kills every server it
  // asks gives up at its restart intensity, instead of using up servers for ever. But a
  // server may as well have been killed from outside (an operator, the OOM killer) while
  // slots were restarting: so one death is one restart of each such pool however many
  // of its slots were waiting, and not a start failure (of which three in a row give up).
  std::set<std::size_t> charged;
  for (slot_state* s : unanswered) {
    if (s->start_error.empty()) s->start_error = "the fork server died while starting this worker";
    const bool first = charged.insert(s->pool).second;
    on_exit(*s, W_EXITCODE(0, SIGKILL), 0, !first);  // the rest as victims: restarted at once, uncharged
  }
  if (next.give_up)
    for (pool_state* p : live_) give_up(*p, "the fork server died and no standby was left");
}

// =======================================================================================
// Watching the fork server (dispatcher thread)
//
// The fork server reports every death and answers every spawn; one that stops doing so
// (SIGSTOP, a wedged write) would stall its pools for ever. The kernel says on each
// worker's pidfd when it died: a death the server has not reported within the pool's
// start_timeout, or a spawn it has not answered within it, means the server is not
// working, and it is ended and replaced by the standby as if it had died.

void dispatcher::watch_pidfd(slot_state& s) {
  if (s.pidfd < 0) return;
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = static_cast<std::uint64_t>(s.pid);
  ::epoll_ctl(deaths_fd_, EPOLL_CTL_ADD, s.pidfd, &ev);
}

// Records when each worker's pidfd said it died; the fork server's report follows.
bool dispatcher::note_deaths() {
  epoll_event events[64];
  const int n = ::epoll_wait(deaths_fd_, events, 64, 0);
  const auto now = clock_type::now();
  for (int i = 0; i < n; ++i) {
    const auto it = by_pid_.find(static_cast<pid_t>(events[i].data.u64));
    if (it == by_pid_.end()) continue;
    slot_state& s = *it->second;
    if (s.death_seen_at == clock_type::time_point{}) s.death_seen_at = now;
    ::epoll_ctl(deaths_fd_, EPOLL_CTL_DEL, s.pidfd, nullptr);  // seen: level-triggered would repeat it
  }
  return false;  // nothing changes until the report comes, or the deadline passes
}

namespace {

// Calls f(pool, slot, is_death, since) for each answer the active server owes: the
// report of a death that a worker's pidfd showed, or the answer to a spawn request.
// Stops at the first f that returns true, and says whether one did. The one list of
// both the deadline and the check below.
template <class F>
bool find_owed_answer(const std::vector<pool_state*>& pools, F&& f) {
  for (const pool_state* p : pools)
    for (auto& s : p->slots) {
      if (s->alive() && s->death_seen_at != clock_type::time_point{} && f(*p, *s, true, s->death_seen_at)) return true;
      if (s->spawn_request && f(*p, *s, false, s->spawned_at)) return true;
    }
  return false;
}

}  // namespace

clock_type::time_point dispatcher::fork_server_deadline() const {
  auto next = clock_type::time_point::max();
  (void)find_owed_answer(live_, [&](const pool_state& p, const slot_state&, bool, clock_type::time_point since) {
    next = std::min(next, answer_due(since, p.options.start_timeout));
    return false;
  });
  return next;
}

bool dispatcher::check_fork_server() {
  if (!servers_.has_active()) return false;
  const auto now = clock_type::now();
  std::string why;
  const bool overdue =
      find_owed_answer(live_, [&](const pool_state& p, const slot_state& s, bool death, clock_type::time_point since) {
        if (!answer_overdue(since, p.options.start_timeout, now)) return false;
        why = death ? "did not report the death of worker " + p.name + "/" + std::to_string(s.index) + " (pid " +
                          std::to_string(s.pid) + ") within start_timeout of " + format_ms(p.options.start_timeout)
                    : "did not answer a request to start worker " + p.name + "/" + std::to_string(s.index) +
                          " within start_timeout of " + format_ms(p.options.start_timeout);
        return true;
      });
  if (!overdue) return false;
  log_->error("{}: the fork server (pid {}) {}: it is not working (stopped?); killing it", options_.name, servers_.pid(),
              why);
  servers_.kill_active();
  on_server_death();
  return true;
}

}  // namespace ringmaster::detail
