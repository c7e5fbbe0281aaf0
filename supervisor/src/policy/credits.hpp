// credits.hpp — how many jobs may be in flight to one worker of a pool at once: the job
// it runs plus those waiting in its job ring (prefetch). More credits batch tiny jobs
// (one wake-up for many); fewer keep the last long jobs from queueing behind each other
// while a worker idles.
#pragma once

#include <algorithm>
#include <cstddef>

namespace ringmaster::detail {

/// What the credits of a pool's workers depend on.
struct pool_load {
  unsigned prefetch = 0;    ///< pool_options::prefetch; 0: decided by the jobs' run time
  double avg_job_us = 0;    ///< the pool's average job run time in µs; 0: none measured yet
  std::size_t queued = 0;   ///< jobs waiting in the pool's queue
  std::size_t workers = 0;  ///< the pool's worker slots
  /// The workers pass the jobs sent ahead on to a program that reads them while it runs
  /// the one before (protocol jsonl or lines, adapter.cpp)
  bool pipelined = false;
};

/// A pipelined pool's jobs shorter than this get at least 3 credits while the backlog
/// lasts.
inline constexpr double k_pipelined_short_job_us = 20'000;

/// Jobs in flight allowed per worker: `prefetch` if set; 2 before any job time is known;
/// enough to cover ~0.5 ms of work (1 to 64) for short jobs; for long ones, 2 while the
/// backlog is at least two jobs per worker, else 1. A pipelined pool's jobs under 20 ms
/// get at least 3 while that backlog lasts.
constexpr unsigned credits(const pool_load& p) noexcept {
  if (p.prefetch > 0) return p.prefetch;
  if (p.avg_job_us <= 0) return 2;
  // Enough jobs ahead to cover ~0.5 ms of work: many for tiny jobs (batching).
  const auto by_time = static_cast<unsigned>(std::clamp(500.0 / p.avg_job_us, 1.0, 64.0));
  const bool backlog = p.queued >= 2 * p.workers;
  // A program's worker reads the job ring only when a reply comes (it waits on the
  // program's pipe, not on the ring): with 2 credits the job sent when the program
  // answers one reaches it only after it answers the next, and it waits for it each
  // time. With 3, one is always on its way: the program never waits for this side.
  if (p.pipelined && backlog && p.avg_job_us < k_pipelined_short_job_us) return std::max(by_time, 3u);
  if (by_time > 1) return by_time;
  // Long jobs: the next one waits in the worker's ring while the pool has a backlog of
  // at least two jobs per worker, so that a worker goes from one job to the next without
  // a round trip through the dispatcher (two wake-ups). With less left, one job at a
  // time, so that none of the last jobs waits behind a long one while a worker idles.
  return backlog ? 2 : 1;
}

}  // namespace ringmaster::detail
