#include <linux/futex.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <ctime>
#include <ringmaster/ipc/detail/eintr.hpp>
#include <ringmaster/ipc/doorbell.hpp>

namespace ringmaster::ipc::detail {

// The words live in MAP_SHARED memory seen by several processes, so these are the
// shared (not FUTEX_PRIVATE_FLAG) operations: the kernel keys them by the physical page.

void futex_wait(std::atomic<std::uint32_t>& word, std::uint32_t expected, std::chrono::nanoseconds timeout) noexcept {
  if (timeout.count() <= 0) return;
  const auto secs = std::chrono::duration_cast<std::chrono::seconds>(timeout);
  timespec ts{};
  ts.tv_sec = static_cast<time_t>(secs.count());
  ts.tv_nsec = static_cast<long>((timeout - secs).count());
  // EINTR, EAGAIN (word already changed) and ETIMEDOUT all mean "re-check": the caller
  // loops, so no retry here.
  ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&word), FUTEX_WAIT, expected, &ts, nullptr, 0);
}

void eventfd_signal(int fd) noexcept {
  const std::uint64_t one = 1;
  // EINTR cannot leave a partial 8-byte write; retrying it is all that is needed.
  (void)ringmaster::detail::retry_eintr([&] { return ::write(fd, &one, sizeof one); });
}

void yield_cpu() noexcept { ::sched_yield(); }

void futex_wake_all(std::atomic<std::uint32_t>& word) noexcept {
  ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&word), FUTEX_WAKE, INT_MAX, nullptr, nullptr, 0);
}

}  // namespace ringmaster::ipc::detail
