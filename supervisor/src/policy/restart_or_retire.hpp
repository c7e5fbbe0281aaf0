// restart_or_retire.hpp — whether a worker that ended by itself is replaced, by its
// pool's restart type (Erlang/OTP's do_restart/3, one case per type).
#pragma once

#include <ringmaster/supervisor/options.hpp>

namespace ringmaster::detail {

/// Whether a worker whose end was not planned is replaced (true) or its slot retires.
/// `abnormal`: it did not exit with code 0, or it ran past job_timeout.
constexpr bool restarts(restart_type type, bool abnormal) noexcept {
  switch (type) {
    case restart_type::permanent: return true;
    case restart_type::transient: return abnormal;
    case restart_type::temporary: return false;
  }
  return true;
}

}  // namespace ringmaster::detail
