// The fork servers as one object (fork_server_set.hpp): the zygote, the active server and
// the standby, forking a standby, promotion, and the active server's socket in epoll.

#include "fork_server_set.hpp"

#include <sys/epoll.h>

#include <cstring>
#include <ringmaster/worker/detail/log.hpp>
#include <utility>

#include "dispatcher_internal.hpp"
#include "worker_slot.hpp"

namespace ringmaster::detail {

fork_server_set::fork_server_set(std::string name, std::shared_ptr<spdlog::logger> log)
    : name_(std::move(name)), log_(std::move(log)) {}

void fork_server_set::start() {
  zygote_ = fork_server::start_zygote(name_);
  active_ = zygote_.fork_standby(name_);
  standby_ = zygote_.fork_standby(name_);
}

void fork_server_set::watch_in(int epoll_fd) {
  epoll_fd_ = epoll_fd;
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = k_active_tag;
  ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, active_.socket_fd(), &ev);
  ev.data.u64 = k_quiet_tag;
  ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, standby_.socket_fd(), &ev);
  ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, zygote_.socket_fd(), &ev);  // it speaks only to say it is gone
}

void fork_server_set::close() noexcept {
  // Closing the fork servers' sockets ends them; their destructors wait for that.
  active_ = {};
  standby_ = {};
  zygote_ = {};
}

void fork_server_set::unwatch(const fork_server& s) noexcept {
  if (epoll_fd_ >= 0) ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, s.socket_fd(), nullptr);
}

fork_server_set::report fork_server_set::poll() {
  report r;
  std::error_code ec;
  // Requests the socket did not take: sent as room appears (a failure is the server's
  // death, which the receive below sees as end-of-file).
  if (active_.has_queued()) active_.flush(ec);
  while (auto e = active_.try_receive(ec)) r.events.push_back(std::move(*e));
  r.gone = static_cast<bool>(ec);
  return r;
}

bool fork_server_set::tend() {
  bool any = false;
  if (standby_.valid() && standby_.ended()) {
    log_->warn("{}: the standby fork server (pid {}) died; forking another", name_, standby_.pid());
    unwatch(standby_);
    standby_ = {};
    replace_standby();
    any = true;
  }
  if (zygote_.valid() && zygote_.ended()) {
    log_->error("{}: the zygote (pid {}) died; the fork servers end with it, and no other can be forked", name_,
                zygote_.pid());
    unwatch(zygote_);
    zygote_ = {};
    any = true;
  }
  return any;
}

succession fork_server_set::promote() {
  unwatch(active_);
  const succession next = after_active_death(standby_.valid(), zygote_.valid());
  active_ = std::move(standby_);
  standby_ = {};
  ++server_id_;
  if (next.promote) {
    ++promotions_;
    // The standby's socket was watched quietly; now it is the active one.
    unwatch(active_);
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = k_active_tag;
    if (epoll_fd_ >= 0) ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, active_.socket_fd(), &ev);
    active_wants_out_ = false;
    if (next.fork_standby) replace_standby();
  }
  return next;
}

// Asks the zygote for a new standby. A failure (the server cannot fork: EAGAIN,
// ENOMEM) is logged and tried again after a delay that doubles from 100 ms up to 5 s;
// status() shows it meanwhile.
void fork_server_set::replace_standby() {
  standby_retry_at_ = k_forever;
  if (!standby_wanted(standby_.valid(), active_.valid(), zygote_.valid())) return;
  std::error_code ec;
  if (auto s = zygote_.fork_standby(ec)) {
    standby_ = std::move(*s);
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = k_quiet_tag;
    if (epoll_fd_ >= 0) ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, standby_.socket_fd(), &ev);
    if (standby_failures_ > 0)
      log_->info("{}: standby fork server (pid {}) forked after {} failed attempts", name_, standby_.pid(),
                 standby_failures_);
    standby_failures_ = 0;
    standby_error_.clear();
    return;
  }
  ++standby_failures_;
  const char* errname = ::strerrorname_np(ec.value());
  standby_error_ = (errname ? std::string(errname) + ": " : std::string()) + ec.message();
  const std::chrono::milliseconds delay =
      standby_retry_delay(standby_failures_, k_stop_waits.standby_retry_first, k_stop_waits.standby_retry_max);
  standby_retry_at_ = clock_type::now() + delay;
  log_->warn("{}: cannot fork a standby fork server ({}, attempt {}); retrying in {}; until then a death of the "
             "fork server (pid {}) gives up every pool",
             name_, standby_error_, standby_failures_, format_ms(delay), active_.pid());
}

bool fork_server_set::retry_due(std::chrono::steady_clock::time_point now) {
  if (now < standby_retry_at_) return false;
  replace_standby();
  return true;
}

// The active server's socket is watched for room while requests wait for it.
void fork_server_set::watch_for_room() {
  const bool want = active_.valid() && active_.has_queued();
  if (want == active_wants_out_) return;
  epoll_event ev{};
  ev.events = static_cast<std::uint32_t>(EPOLLIN) | (want ? static_cast<std::uint32_t>(EPOLLOUT) : 0u);
  ev.data.u64 = k_active_tag;
  ::epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, active_.socket_fd(), &ev);
  active_wants_out_ = want;
}

fork_server_status fork_server_set::status() const {
  return {.active_pid = active_.valid() ? active_.pid() : 0,
          .standby_pid = standby_.valid() ? standby_.pid() : 0,
          .promotions = promotions_,
          .standby_failures = standby_failures_,
          .standby_error = standby_error_};
}

}  // namespace ringmaster::detail
