// restart_intensity.hpp — whether a pool has died too often to go on (Erlang/OTP's
// add_restart/3: a pure function of the deaths so far and now).
//
// Restart intensity exists to stop a pool that cannot work, not to punish its good jobs
// for a few bad ones: a death charged to a job is already bounded by that job's
// max_attempts. So the window counts every death charged to no job (a worker dying idle,
// at start, or killed from outside while idle), but of the deaths charged to jobs only
// each job's first, and only until a job of the pool next succeeds. A handful of poison
// jobs among good ones then never adds up to max_restarts; a pool whose workers die on
// every job gives up once more than max_restarts different jobs have killed a worker
// with none succeeding in between.
//
// No clock is read here: the caller passes now.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>

namespace ringmaster::detail {

/// Whom a worker's death is charged to, as restart intensity sees it.
enum class death_charge : std::uint8_t {
  no_job,        ///< no job is charged (idle, at start, killed from outside while idle)
  job_first,     ///< the first death charged to this job
  job_again,     ///< a later death of a job that has killed a worker before
};

/// The charge of a death: `charged` if a job is charged with it, `killed_before` if
/// that job has already been charged with a death.
constexpr death_charge charge_of(bool charged, bool killed_before) noexcept {
  if (!charged) return death_charge::no_job;
  return killed_before ? death_charge::job_again : death_charge::job_first;
}

class restart_intensity {
 public:
  using time_point = std::chrono::steady_clock::time_point;

  /// Records a death at `now` if it counts (every no_job death, a job's first), and
  /// forgets the deaths more than `window` before now. Returns whether it counted.
  bool add_restart(death_charge charge, time_point now, std::chrono::milliseconds window);
  /// A job of the pool succeeded: the pool works, so its jobs' deaths were theirs.
  void job_succeeded() noexcept { charged_.clear(); }
  /// Deaths that count, within the window as of the last add_restart.
  [[nodiscard]] std::size_t count() const noexcept { return uncharged_.size() + charged_.size(); }
  /// More than max_restarts deaths that count: the pool gives up.
  [[nodiscard]] bool exceeded(unsigned max_restarts) const noexcept { return count() > max_restarts; }

 private:
  std::deque<time_point> uncharged_;  // deaths charged to no job
  std::deque<time_point> charged_;    // each job's first death since a job last succeeded
};

}  // namespace ringmaster::detail
