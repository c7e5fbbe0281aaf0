// Small helpers shared by the dispatcher's source files (dispatcher*.cpp and the files it
// is split into): formatting for messages, and the result of a job that failed.
#pragma once

#include <sys/wait.h>

#include <ringmaster/worker/detail/launch.hpp>

#include "dispatcher.hpp"
#include "worker_slot.hpp"

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <string>
#include <string_view>

namespace ringmaster::detail {

// Room a blocked submit() waits for: 1/16 of max_pending, at least 1, at most 4096.
constexpr std::size_t room_slice(std::size_t max_pending) noexcept {
  return std::clamp<std::size_t>(max_pending / 16, 1, 4096);
}

constexpr auto k_forever = clock_type::time_point::max();

std::string format_ms(std::chrono::milliseconds d);

double ms_since(clock_type::time_point t);

void pidfd_signal(int pidfd, int sig) noexcept;

/// Whether a worker ended because the user's program it ran ended before it took its
/// first job (worker/detail/adapter.hpp): a start failure, though the worker said ready.
inline bool program_not_started(int wait_status) noexcept {
  return WIFEXITED(wait_status) && WEXITSTATUS(wait_status) == k_exit_program_not_started;
}

result failed(const job_record& j, error_kind kind, std::string message, int worker = -1, double ms = 0);

/// A slot's timers (worker_slot.hpp) from its phase and its pool's options: the one
/// source of both handle_timers and next_deadline.
inline slot_deadlines deadlines_of(const slot_state& s, const pool_options& o) noexcept {
  return deadlines_of(slot_clock{.life = s.life,
                                 .has_job = !s.in_flight.empty(),
                                 .restart_at = s.restart_at,
                                 .kill_at = s.kill_at,
                                 .spawned_at = s.spawned_at,
                                 .front_started = s.front_started},
                      o.start_timeout, o.job_timeout);
}

}  // namespace ringmaster::detail
