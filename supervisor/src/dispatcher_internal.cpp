#include "dispatcher_internal.hpp"

#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace ringmaster::detail {

std::string format_ms(std::chrono::milliseconds d) {
  if (d.count() % 1000 == 0) return std::to_string(d.count() / 1000) + "s";
  return std::to_string(d.count()) + "ms";
}

double ms_since(clock_type::time_point t) {
  return std::chrono::duration<double, std::milli>(clock_type::now() - t).count();
}

void pidfd_signal(int pidfd, int sig) noexcept {
  if (pidfd >= 0) ::syscall(SYS_pidfd_send_signal, pidfd, sig, nullptr, 0);
}

result failed(const job_record& j, error_kind kind, std::string message, int worker, double ms) {
  result r;
  r.id = j.id;
  r.error = kind;
  r.value = std::move(message);
  r.attempts = j.attempts;
  r.worker = worker;
  r.ms = ms;
  return r;
}

}  // namespace ringmaster::detail
