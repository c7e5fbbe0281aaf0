// shutdown_phase.hpp — where the supervisor is on its way from running to stopped, and
// what each phase means for a job that did not succeed.
#pragma once

#include <cstdint>

namespace ringmaster::detail {

enum class shutdown_phase : std::uint8_t {
  running,
  draining,          ///< no new jobs; every accepted one runs, retries included
  stopping,          ///< queued jobs failed `stopped`; in-flight ones have the grace
  stopping_workers,  ///< the workers are told to stop or killed; SIGKILL after a second
  done,
};

/// Whether a job that did not succeed ends `stopped` instead of being retried: in every
/// phase of a stop, the last one included (a busy worker's result can arrive after the
/// workers were told to stop, and a job requeued then would never run).
constexpr bool stops_jobs(shutdown_phase p) noexcept {
  return p == shutdown_phase::stopping || p == shutdown_phase::stopping_workers || p == shutdown_phase::done;
}

}  // namespace ringmaster::detail
