// worker_slot.hpp — the timers of one worker slot (derived from its phase, slot_phase.hpp),
// and the fixed waits of ending workers. Pure (no clock reads: `now` is the caller's), so
// that the dispatcher's timer handling and its sleep compute the same deadlines from one
// function.
#pragma once

#include <chrono>

#include "slot_phase.hpp"

namespace ringmaster::detail {

using slot_time = std::chrono::steady_clock::time_point;

/// What a slot's timers depend on, read from the slot.
struct slot_clock {
  slot_lifecycle life;   ///< its phase (slot_phase.hpp)
  bool has_job = false;  ///< a job is in flight to it
  slot_time restart_at{}, kill_at = slot_time::max(), spawned_at{}, front_started{};
};

/// When each of a slot's timers fires; slot_time::max() for one that is not armed.
struct slot_deadlines {
  slot_time restart = slot_time::max();        ///< spawn it again (end of its backoff)
  slot_time kill = slot_time::max();           ///< SIGKILL after SIGTERM and kill_grace
  slot_time start_timeout = slot_time::max();  ///< not ready within start_timeout: killed
  slot_time job_timeout = slot_time::max();    ///< its oldest job over job_timeout: SIGTERM

  [[nodiscard]] constexpr slot_time earliest() const noexcept {
    slot_time t = restart;
    for (slot_time d : {kill, start_timeout, job_timeout}) t = d < t ? d : t;
    return t;
  }
};

/// The slot's deadlines under its pool's start_timeout and job_timeout (0: no limit).
constexpr slot_deadlines deadlines_of(const slot_clock& s, std::chrono::milliseconds start_timeout,
                                      std::chrono::milliseconds job_timeout) noexcept {
  slot_deadlines d;
  if (s.life.phase == slot_phase::backoff) d.restart = s.restart_at;
  if (s.life.phase == slot_phase::terminating) d.kill = s.kill_at;  // armed by a SIGTERM
  if (!has_process(s.life.phase) || !running_normally(s.life)) return d;
  if (!s.life.said_ready) d.start_timeout = s.spawned_at + start_timeout;
  if (job_timeout.count() > 0 && s.has_job) d.job_timeout = s.front_started + job_timeout;
  return d;
}

/// The fixed waits of ending workers and fork servers, in one place (reproc's
/// stop_actions). A job over job_timeout gets SIGTERM, then SIGKILL after the pool's
/// kill_grace (an option, so not here).
struct stop_waits {
  /// Shutdown: idle workers are sent `stop`, busy ones SIGKILL; after this, SIGKILL for all.
  std::chrono::milliseconds shutdown_kill_after;
  /// A dead fork server's workers die of PDEATHSIG: each pidfd is awaited this long, then
  /// the worker is SIGKILLed and awaited as long again.
  std::chrono::milliseconds server_death_wait;
  /// A standby that could not be forked is tried again after this, doubling up to the cap.
  std::chrono::milliseconds standby_retry_first, standby_retry_max;
};

inline constexpr stop_waits k_stop_waits{
    .shutdown_kill_after = std::chrono::seconds(1),
    .server_death_wait = std::chrono::seconds(2),
    .standby_retry_first = std::chrono::milliseconds(100),
    .standby_retry_max = std::chrono::seconds(5),
};

}  // namespace ringmaster::detail
