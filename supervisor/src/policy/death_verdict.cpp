#include "policy/death_verdict.hpp"

#include <string.h>
#include <sys/wait.h>

#include <csignal>

namespace ringmaster::detail {

std::string signal_name(int sig) {
  const char* abbrev = ::sigabbrev_np(sig);
  return abbrev ? std::string("SIG") + abbrev : "signal " + std::to_string(sig);
}

death_verdict classify(const worker_end& e) {
  const int st = e.wait_status;
  death_verdict v;
  if (e.server_died) {
    v.cause = "fork server died";
  } else if (e.why == ending::timeout) {
    v.kind = error_kind::timeout;
    v.cause = "timeout";
  } else if (e.out_of_memory || (e.memory_limit > 0 && WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL &&
                                 static_cast<std::size_t>(e.max_rss_kib) * 1024 >= e.memory_limit * 9 / 10)) {
    v.kind = error_kind::memory;
    v.cause = "memory";
  } else if (WIFSIGNALED(st)) {
    v.cause = signal_name(WTERMSIG(st));
  } else if (WIFEXITED(st)) {
    v.cause = "exit code " + std::to_string(WEXITSTATUS(st));
  } else {
    v.cause = "status " + std::to_string(st);
  }
  v.abnormal = !(WIFEXITED(st) && WEXITSTATUS(st) == 0) || e.why == ending::timeout;
  v.planned = (e.why == ending::recycle && !v.abnormal) || e.why == ending::strategy || e.server_died;
  v.killed_from_outside = WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL && e.why == ending::none;
  return v;
}

std::optional<std::size_t> charged_job(std::span<const std::uint64_t> in_flight, std::uint64_t current, const death_verdict& v,
                                       ending why) noexcept {
  std::optional<std::size_t> charged;
  if (v.planned || in_flight.empty()) return charged;
  if (why == ending::timeout) charged = 0;
  for (std::size_t i = 0; i < in_flight.size(); ++i)
    if (in_flight[i] == current) charged = i;
  return charged;
}

}  // namespace ringmaster::detail
