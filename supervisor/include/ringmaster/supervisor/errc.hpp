// ringmaster/supervisor/errc.hpp — the supervisor's own error codes.
//
// One error model: OS failures are std::error_code(errno, std::system_category()); the
// failures that are ringmaster's own, and that a caller may handle, are ringmaster::errc
// in supervisor_category() (its name: "ringmaster"). The calls that can fail so come in
// pairs (supervisor.hpp): a throwing form, which throws std::invalid_argument or
// std::logic_error as documented there, and a form taking `std::error_code& ec`, which
// sets ec to one of these values instead, and, given a `std::string* why`, the message
// the throwing form would have thrown (it names the pool and the limit).
//
// Conditions: invalid_option and bad_pool_name compare equal to
// std::errc::invalid_argument, not_enough_memory to std::errc::not_enough_memory,
// too_many_descriptors to std::errc::too_many_files_open, so that a caller may test for
// the portable condition. Thread-safe: the category is a stateless singleton.
#pragma once

#include <system_error>

namespace ringmaster {

enum class errc {
  invalid_option = 1,    ///< an option out of its range (options.hpp, README's option table)
  bad_pool_name,         ///< a pool name not of 1-128 characters of [A-Za-z0-9_.-]
  duplicate_pool,        ///< a pool of that name exists (and was not removed)
  not_enough_memory,     ///< the pools' workers would map more shared memory than MemAvailable
  too_many_descriptors,  ///< the workers would need more descriptors than RLIMIT_NOFILE allows
  already_started,       ///< start() called a second time
  stopping,              ///< the supervisor is stopping or has stopped
  pool_removed,          ///< the pool was removed (remove_pool)
  pool_gave_up,          ///< the pool gave up (restart intensity exceeded, or it could not start)
};

/// The category of errc. Its name is "ringmaster".
[[nodiscard]] const std::error_category& supervisor_category() noexcept;

[[nodiscard]] inline std::error_code make_error_code(errc e) noexcept {
  return {static_cast<int>(e), supervisor_category()};
}

}  // namespace ringmaster

template <>
struct std::is_error_code_enum<ringmaster::errc> : std::true_type {};
