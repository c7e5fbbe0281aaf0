// The fork servers themselves: forking a standby, and the active server's socket.

#include "dispatcher.hpp"
#include "dispatcher_internal.hpp"

#include <sys/epoll.h>

#include <algorithm>
#include <cstring>
#include <ringmaster/worker/detail/log.hpp>

namespace ringmaster::detail {

// Asks the zygote for a new standby. A failure (the server cannot fork: EAGAIN,
// ENOMEM) is logged and tried again after a delay that doubles from 100 ms up to 5 s;
// status() shows it meanwhile.
void dispatcher::replace_standby() {
  standby_retry_at_ = k_forever;
  if (standby_.valid() || !active_.valid() || !zygote_.valid()) return;
  std::error_code ec;
  if (auto s = zygote_.fork_standby(ec)) {
    standby_ = std::move(*s);
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = 2;
    ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, standby_.socket_fd(), &ev);
    if (standby_failures_ > 0)
      log_->info("{}: standby fork server (pid {}) forked after {} failed attempts", options_.name, standby_.pid(),
                 standby_failures_);
    standby_failures_ = 0;
    standby_error_.clear();
    return;
  }
  ++standby_failures_;
  const char* name = ::strerrorname_np(ec.value());
  standby_error_ = (name ? std::string(name) + ": " : std::string()) + ec.message();
  const std::chrono::milliseconds delay =
      std::min(k_stop_waits.standby_retry_first * (1 << std::min(standby_failures_ - 1, 6u)), k_stop_waits.standby_retry_max);
  standby_retry_at_ = clock_type::now() + delay;
  log_->warn("{}: cannot fork a standby fork server ({}, attempt {}); retrying in {}; until then a death of the "
             "fork server (pid {}) gives up every pool",
             options_.name, standby_error_, standby_failures_, format_ms(delay), active_.pid());
}

// The active server's socket is watched for room while requests wait for it.
void dispatcher::watch_active_socket() {
  const bool want = active_.valid() && active_.has_queued();
  if (want == active_wants_out_) return;
  epoll_event ev{};
  ev.events = static_cast<std::uint32_t>(EPOLLIN) | (want ? static_cast<std::uint32_t>(EPOLLOUT) : 0u);
  ev.data.u64 = 1;
  ::epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, active_.socket_fd(), &ev);
  active_wants_out_ = want;
}

}  // namespace ringmaster::detail
