// slot_phase.hpp — the lifecycle of one worker slot: one phase, what the phase carries,
// and the named transitions between phases. Pure (no clock, no I/O): the dispatcher
// asks a transition for the next phase and does the I/O itself (dispatcher::enter).
// Each transition returns the new lifecycle, or nullopt for a transition the phase does
// not allow (a bug in the caller; tests/unit/slot_phase_test.cpp lists them all).
//
//   (new) down ──spawn──> spawning ──spawned──> starting ──ready──> ready
//          │ ▲                 │                     │                  │
//          │ │                 │                     ├──ask_stop────────┼──ask_stop──> stopping
//          │ │                 │                     │                  │                 │
//          │ │                 │                     └──terminate───────┴──terminate──> terminating
//          │ │                 │                                                (and from stopping)
//          │ └──── death ──────┴── from spawning, starting, ready, stopping, terminating
//          ├── back_off ──> backoff ──spawn──> spawning
//          └── retire ──> exited | signaled | stopped ──scale_back (stopped)──> down
//
//   ready in stopping or terminating is noted (said_ready); a stop not yet sent is
//   withdrawn by scale_back (stopping -> ready or starting); scale_in retires.
//
// - `down` is a slot with no process and none asked for: new, or just dead while
//   on_exit decides (spawn at once, back off, or retire).
// - `stopping`: a `stop` message asked it to exit after its jobs (sent, or `stop_due`
//   while its job ring has no room). `why` is recycle (it is replaced, unless scaled out)
//   or shutdown (removal, stop: it is not).
// - `terminating`: the supervisor signalled it; `why` says why (what on_exit charges).
// - `said_ready` is the one fact that crosses phases: stopping and terminating slots
//   may or may not have said `ready` (a start failure is one that never did).
// - `scaled_out` is orthogonal to the phase: it says where a retired slot goes (removed
//   from its pool once its process is gone, or taken back by a later scale-up), through
//   every phase from scale_in to its end.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

#include <ringmaster/supervisor/status.hpp>

#include "policy/death_verdict.hpp"

namespace ringmaster::detail {

enum class slot_phase : std::uint8_t {
  down,         ///< no process, none asked for: new, or dead and not yet decided
  spawning,     ///< a spawn request is with the fork server
  starting,     ///< its process runs; it has not said `ready`
  ready,        ///< it said `ready`: it takes jobs (busy while it holds some)
  stopping,     ///< asked by a `stop` message to exit after its jobs
  terminating,  ///< signalled by the supervisor, for `why`
  backoff,      ///< dead; spawned again at its restart time
  exited,       ///< retired: it ended by an exit code, not restarted
  signaled,     ///< retired: it ended by a signal, not restarted
  stopped,      ///< retired: its pool or the supervisor stopped it
};

constexpr std::string_view to_string(slot_phase p) noexcept {
  constexpr std::string_view names[] = {"down",        "spawning", "starting", "ready",    "stopping",
                                        "terminating", "backoff",  "exited",   "signaled", "stopped"};
  return names[static_cast<std::size_t>(p)];
}

/// A slot's lifecycle: its phase and what the phase carries.
struct slot_lifecycle {
  slot_phase phase = slot_phase::down;
  ending why = ending::none;  ///< stopping: recycle or shutdown; terminating: why; none otherwise
  bool said_ready = false;    ///< it said `ready` since its spawn (always in `ready`)
  bool stop_due = false;      ///< stopping: its `stop` message waits for room in the job ring
  bool scaled_out = false;    ///< retired by pool::scale: removed from the pool once gone

  friend constexpr bool operator==(const slot_lifecycle&, const slot_lifecycle&) = default;
};

/// A transition's answer: the new lifecycle, or nullopt if the phase does not allow it.
using next_phase = std::optional<slot_lifecycle>;

// --- what a phase says

/// A process runs in the slot (its pid is set).
constexpr bool has_process(slot_phase p) noexcept {
  return p == slot_phase::starting || p == slot_phase::ready || p == slot_phase::stopping || p == slot_phase::terminating;
}
/// Dead for good (until a scale-up takes a scaled-out slot back).
constexpr bool is_final(slot_phase p) noexcept {
  return p == slot_phase::exited || p == slot_phase::signaled || p == slot_phase::stopped;
}
/// Never to be restarted: dead for good, scaled out, or on its way out for a shutdown
/// (a removal, a stop, a pool that gave up).
constexpr bool is_retired(const slot_lifecycle& l) noexcept {
  return is_final(l.phase) || l.scaled_out || l.why == ending::shutdown;
}
/// Not on its way out (a pending recycle still counts: the jobs it runs are timed).
constexpr bool running_normally(const slot_lifecycle& l) noexcept {
  return l.phase == slot_phase::starting || l.phase == slot_phase::ready ||
         (l.phase == slot_phase::stopping && l.why == ending::recycle);
}
/// It takes jobs now, or will once started (a worker of its pool that can take a job).
constexpr bool will_take_jobs(const slot_lifecycle& l) noexcept {
  return !l.scaled_out && (l.phase == slot_phase::down || l.phase == slot_phase::spawning || l.phase == slot_phase::starting ||
                           l.phase == slot_phase::ready || l.phase == slot_phase::backoff);
}
/// Killed for breaking the protocol: nothing more it writes is read.
constexpr bool is_hostile(const slot_lifecycle& l) noexcept {
  return l.phase == slot_phase::terminating && l.why == ending::hostile;
}

/// The state status() shows, from the phase and whether the slot holds jobs. A recycling
/// worker (stopping, to be replaced) shows what it does: its last jobs, then idle.
constexpr worker_state shown_state(const slot_lifecycle& l, bool has_jobs) noexcept {
  switch (l.phase) {
    case slot_phase::down:
    case slot_phase::spawning:
    case slot_phase::starting: return worker_state::starting;
    case slot_phase::ready: return has_jobs ? worker_state::busy : worker_state::ready;
    case slot_phase::stopping:
      if (is_retired(l)) return worker_state::stopping;
      return !l.said_ready ? worker_state::starting : has_jobs ? worker_state::busy : worker_state::ready;
    case slot_phase::terminating: return worker_state::stopping;
    case slot_phase::backoff: return worker_state::backoff;
    case slot_phase::exited: return worker_state::exited;
    case slot_phase::signaled: return worker_state::signaled;
    case slot_phase::stopped: return worker_state::stopped;
  }
  return worker_state::stopped;
}

// --- the transitions

/// down | backoff -> spawning: a spawn request goes to the fork server.
constexpr next_phase on_spawn(slot_lifecycle l) noexcept {
  if (l.phase != slot_phase::down && l.phase != slot_phase::backoff) return std::nullopt;
  l.phase = slot_phase::spawning;
  return l;
}

/// spawning -> starting: the fork server started its process.
constexpr next_phase on_spawned(slot_lifecycle l) noexcept {
  if (l.phase != slot_phase::spawning) return std::nullopt;
  l.phase = slot_phase::starting;
  return l;
}

/// starting -> ready; in stopping or terminating, it is noted. Once per process.
constexpr next_phase on_ready(slot_lifecycle l) noexcept {
  if (l.said_ready) return std::nullopt;
  if (l.phase == slot_phase::starting) l.phase = slot_phase::ready;
  else if (l.phase != slot_phase::stopping && l.phase != slot_phase::terminating) return std::nullopt;
  l.said_ready = true;
  return l;
}

/// starting | ready | stopping -> stopping: a `stop` message is due behind its jobs, to
/// recycle it (recycle) or to end it for good (shutdown). A second ask keeps the stop
/// already due or sent; shutdown wins over recycle.
constexpr next_phase on_stop_asked(slot_lifecycle l, ending why) noexcept {
  if (why != ending::recycle && why != ending::shutdown) return std::nullopt;
  if (l.phase == slot_phase::stopping) {
    if (why == ending::shutdown) l.why = why;
    return l;
  }
  if (l.phase != slot_phase::starting && l.phase != slot_phase::ready) return std::nullopt;
  l.phase = slot_phase::stopping;
  l.why = why;
  l.stop_due = true;
  return l;
}

/// stopping (stop due) -> stopping: the `stop` message is in its job ring.
constexpr next_phase on_stop_sent(slot_lifecycle l) noexcept {
  if (l.phase != slot_phase::stopping || !l.stop_due) return std::nullopt;
  l.stop_due = false;
  return l;
}

/// starting | ready | stopping | terminating -> terminating: signalled, for `why`. A
/// decision already taken stands, except that a recycle yields to anything, and a
/// protocol violation or a shutdown overrides any other.
constexpr next_phase on_terminate(slot_lifecycle l, ending why) noexcept {
  if (why == ending::none || why == ending::recycle || !has_process(l.phase)) return std::nullopt;
  if (l.phase != slot_phase::terminating || why == ending::hostile || why == ending::shutdown) l.why = why;
  l.phase = slot_phase::terminating;
  l.stop_due = false;  // a signalled worker needs no stop message
  return l;
}

/// spawning | starting | ready | stopping | terminating -> down: its process died (from
/// spawning: the spawn failed, or its server died before answering). `why` and
/// `said_ready` are for the caller to read first: they are cleared.
constexpr next_phase on_death(slot_lifecycle l) noexcept {
  if (l.phase != slot_phase::spawning && !has_process(l.phase)) return std::nullopt;
  l.phase = slot_phase::down;
  l.why = ending::none;
  l.said_ready = false;
  l.stop_due = false;
  return l;
}

/// down -> backoff: it is restarted after a delay.
constexpr next_phase on_back_off(slot_lifecycle l) noexcept {
  if (l.phase != slot_phase::down || l.scaled_out) return std::nullopt;
  l.phase = slot_phase::backoff;
  return l;
}

/// down | spawning | backoff | exited | signaled | stopped -> exited | signaled | stopped:
/// retired, shown as `shown`. A live slot is first ended (terminate or ask_stop); a
/// spawning one has its request withdrawn by the caller.
constexpr next_phase on_retire(slot_lifecycle l, worker_state shown) noexcept {
  if (has_process(l.phase)) return std::nullopt;
  switch (shown) {
    case worker_state::exited: l.phase = slot_phase::exited; break;
    case worker_state::signaled: l.phase = slot_phase::signaled; break;
    case worker_state::stopped: l.phase = slot_phase::stopped; break;
    default: return std::nullopt;
  }
  return l;
}

/// pool::scale took it out of its pool: a dead slot (or a spawning one, its request
/// withdrawn) is stopped; a live one running normally is asked to stop (recycle); one
/// already on its way out goes as planned. In every case it is not restarted.
constexpr next_phase on_scale_in(slot_lifecycle l) noexcept {
  if (l.scaled_out) return std::nullopt;
  l.scaled_out = true;
  if (!has_process(l.phase)) return on_retire(l, worker_state::stopped);
  if (running_normally(l)) return on_stop_asked(l, ending::recycle);
  return l;
}

/// pool::scale took it back: a stop not yet sent is withdrawn; a stopped slot is down
/// again (the caller spawns it); anything else goes on, and is restarted as usual.
constexpr next_phase on_scale_back(slot_lifecycle l) noexcept {
  if (!l.scaled_out) return std::nullopt;
  l.scaled_out = false;
  if (l.phase == slot_phase::stopping && l.stop_due && l.why == ending::recycle) {
    l.phase = l.said_ready ? slot_phase::ready : slot_phase::starting;
    l.why = ending::none;
    l.stop_due = false;
  } else if (l.phase == slot_phase::stopped) {
    l.phase = slot_phase::down;
  }
  return l;
}

}  // namespace ringmaster::detail
