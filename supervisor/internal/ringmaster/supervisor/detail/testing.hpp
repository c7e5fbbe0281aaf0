// ringmaster/supervisor/detail/testing.hpp — seams for ringmaster's own tests and
// benchmarks, into a supervisor's internals. Internal: not installed, not API.
#pragma once

#include <sys/types.h>

#include <ringmaster/supervisor/supervisor.hpp>

namespace ringmaster::detail {

/// Pid of the fork server currently forking `sup`'s workers (tests kill it to prove it is
/// survived; the pool benchmark measures its memory). Blocking for a moment: asks the
/// dispatcher when it runs.
[[nodiscard]] pid_t fork_server_pid(const supervisor& sup);

}  // namespace ringmaster::detail
