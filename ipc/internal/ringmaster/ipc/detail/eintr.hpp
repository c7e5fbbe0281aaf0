// ringmaster/ipc/detail/eintr.hpp — the one EINTR-retry wrapper, and a wait for a
// descriptor to be ready, for ringmaster's own sources.
//
// A system call interrupted by a signal before it did anything fails with EINTR and is
// simply made again. Never wrap close(): on Linux the descriptor is released even when
// close() reports EINTR, and a retry could close a descriptor another thread just opened.
#pragma once

#include <poll.h>

#include <cerrno>

namespace ringmaster::detail {

/// Calls `call` (a system call: -1 and errno on failure) again for as long as it fails
/// with EINTR; returns what it returned last (errno still set on a failure).
template <class Call>
auto retry_eintr(Call&& call) noexcept(noexcept(call())) {
  for (;;) {
    auto r = call();
    if (!(r == -1 && errno == EINTR)) return r;
  }
}

/// Blocks until `fd` has one of `events` (POLLIN, POLLOUT), or an error or hang-up that
/// the next read or write will report. False, errno set, if poll() itself fails.
inline bool wait_ready(int fd, short events) noexcept {
  pollfd p{fd, events, 0};
  return retry_eintr([&] { return ::poll(&p, 1, -1); }) >= 0;
}

}  // namespace ringmaster::detail
