#include "fork_server.hpp"

#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ringmaster/ipc/detail/eintr.hpp>
#include <utility>

#include "fork_wire.hpp"

namespace ringmaster::detail {
namespace {

// Reads the hello a new server sends first, with a bounded wait.
pid_t read_hello(int sock, std::error_code& ec) {
  pollfd p{sock, POLLIN, 0};
  const int r = retry_eintr([&] { return ::poll(&p, 1, 10'000); });
  if (r <= 0) {
    ec = std::make_error_code(std::errc::timed_out);
    return -1;
  }
  std::string bytes;
  std::vector<int> fds;
  const ssize_t n = recv_packet(sock, bytes, fds, false);
  close_all(fds);
  event_header h;
  if (n < static_cast<ssize_t>(sizeof h)) {
    ec = std::make_error_code(std::errc::connection_reset);
    return -1;
  }
  std::memcpy(&h, bytes.data(), sizeof h);
  if (h.what == fork_event::kind::spawn_failed) {  // a standby its server could not fork
    ec = {h.status > 0 ? h.status : EAGAIN, std::system_category()};
    return -1;
  }
  return h.pid;
}


}  // namespace

// ------------------------------------------------------------------------------------
// In the supervisor

fork_server::fork_server(fork_server&& other) noexcept
    : sock_(std::exchange(other.sock_, -1)),
      pid_(std::exchange(other.pid_, -1)),
      pidfd_(std::exchange(other.pidfd_, -1)),
      child_(std::exchange(other.child_, false)),
      out_(std::move(other.out_)) {}

fork_server& fork_server::operator=(fork_server&& other) noexcept {
  if (this != &other) {
    fork_server dying(std::move(*this));
    sock_ = std::exchange(other.sock_, -1);
    pid_ = std::exchange(other.pid_, -1);
    pidfd_ = std::exchange(other.pidfd_, -1);
    child_ = std::exchange(other.child_, false);
    out_ = std::move(other.out_);
  }
  return *this;
}

fork_server::~fork_server() {
  out_.clear();
  if (sock_ >= 0) ::close(sock_);
  if (pidfd_ >= 0) {
    // It exits at end-of-file once its workers are reaped. Wait a bounded time, then
    // kill it; reap it if it is our child.
    pollfd p{pidfd_, POLLIN, 0};
    if (retry_eintr([&] { return ::poll(&p, 1, 5000); }) <= 0) ::syscall(SYS_pidfd_send_signal, pidfd_, SIGKILL, nullptr, 0);
    if (child_) (void)retry_eintr([&] { return ::waitpid(pid_, nullptr, 0); });
    ::close(pidfd_);
  }
}

fork_server fork_server::start_zygote(const std::string& name) {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv) != 0)
    throw std::system_error(errno, std::system_category(), name + ": cannot create the fork server's socket" + nofile_hint(errno));
  std::fflush(nullptr);  // or buffered output would be written twice
  const pid_t pid = ::fork();
  if (pid < 0) {
    const int err = errno;
    ::close(sv[0]);
    ::close(sv[1]);
    throw std::system_error(err, std::system_category(), name + ": cannot fork the fork server");
  }
  if (pid == 0) {
    if (!keep_only({sv[1]})) {
      send_start_failure(sv[1], errno);  // in place of the hello, so that the supervisor reports why
      ::_exit(1);
    }
    ::setpgid(0, 0);  // terminal signals (Ctrl-C) go to the supervisor, which coordinates
    zygote_main(3);
  }
  ::close(sv[1]);
  fork_server s;
  s.sock_ = sv[0];
  s.pid_ = pid;
  s.pidfd_ = pidfd_open(pid);
  s.child_ = true;
  std::error_code ec;
  read_hello(s.sock_, ec);
  if (ec) throw std::system_error(ec, name + ": the fork server did not start" + nofile_hint(ec.value()));
  return s;
}

fork_server fork_server::fork_standby(const std::string& name) {
  std::error_code ec;
  auto s = fork_standby(ec);
  if (!s) throw std::system_error(ec, name + ": the fork server did not start" + nofile_hint(ec.value()));
  return std::move(*s);
}

std::optional<fork_server> fork_server::fork_standby(std::error_code& ec) {
  ec.clear();
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv) != 0) {
    ec = {errno, std::system_category()};
    return std::nullopt;
  }
  request_header h{};
  h.kind = request_kind::standby;
  std::string packet;
  append(packet, h);
  const bool sent = out_.send(sock_, std::move(packet), {sv[1]});
  ::close(sv[1]);
  if (!sent) {
    ec = {errno, std::system_category()};
    ::close(sv[0]);
    return std::nullopt;
  }
  fork_server s;
  s.sock_ = sv[0];
  // The request may wait in our queue behind spawns: send them while waiting, bounded.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!out_.empty() && std::chrono::steady_clock::now() < deadline) {
    pollfd p{sock_, POLLOUT, 0};
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (retry_eintr([&] { return ::poll(&p, 1, static_cast<int>(std::max<long long>(left.count(), 1))); }) < 0) break;
    if (!out_.flush(sock_)) {
      ec = {errno, std::system_category()};
      return std::nullopt;
    }
  }
  s.pid_ = read_hello(s.sock_, ec);
  if (ec) return std::nullopt;
  // Alive and holding its end of our socket, so the pid cannot have been recycled.
  s.pidfd_ = pidfd_open(s.pid_);
  return s;
}

void fork_server::spawn(const spawn_request& r, std::error_code& ec) noexcept {
  try {
    request_header h{};
    h.kind = request_kind::spawn;
    h.slot = r.slot;
    h.request = r.request;
    h.fingerprint = r.handlers_fingerprint;
    h.max_body = r.max_body;
    h.memory_limit = r.memory_limit;
    h.handlers_id = r.handlers_id;
    h.argc = static_cast<std::uint32_t>(r.command.size());
    h.pool_len = static_cast<std::uint32_t>(r.pool.size());
    h.log_level = r.log_level;
    h.protocol = r.protocol;
    std::string packet;
    append(packet, h);
    packet += r.pool;
    for (const auto& arg : r.command) packet.append(arg).push_back('\0');
    if (packet.size() > k_max_packet) {
      ec = std::make_error_code(std::errc::argument_list_too_long);
      return;
    }
    if (!out_.send(sock_, std::move(packet), {r.segment_fd, r.wake_fd}))
      ec = {errno ? errno : EPIPE, std::system_category()};
    else
      ec.clear();
  } catch (const std::bad_alloc&) {
    ec = std::make_error_code(std::errc::not_enough_memory);
  }
}

void fork_server::flush(std::error_code& ec) noexcept {
  ec.clear();
  if (!out_.flush(sock_)) ec = {errno ? errno : EPIPE, std::system_category()};
}

bool fork_server::ended() noexcept {
  std::error_code ec;
  while (auto e = try_receive(ec))
    if (e->pidfd >= 0) ::close(e->pidfd);
  return static_cast<bool>(ec);
}

void fork_server::kill() noexcept {
  if (pidfd_ >= 0) ::syscall(SYS_pidfd_send_signal, pidfd_, SIGKILL, nullptr, 0);
}

std::optional<fork_event> fork_server::try_receive(std::error_code& ec) noexcept {
  ec.clear();
  std::vector<int> fds;
  const ssize_t n = recv_packet(sock_, rx_, fds, true);
  if (n < 0) {
    if (errno != EAGAIN && errno != EWOULDBLOCK) ec = {errno, std::system_category()};
    return std::nullopt;
  }
  event_header h;
  if (n == 0 || static_cast<std::size_t>(n) < sizeof h) {
    close_all(fds);
    ec = std::make_error_code(std::errc::connection_reset);
    return std::nullopt;
  }
  std::memcpy(&h, rx_.data(), sizeof h);
  fork_event e;
  e.what = h.what;
  e.pid = h.pid;
  e.request = h.request;
  e.status = h.status;
  e.max_rss_kib = h.max_rss_kib;
  if (h.message_len <= static_cast<std::size_t>(n) - sizeof h) e.message.assign(rx_, sizeof h, h.message_len);
  if (!fds.empty()) {
    e.pidfd = fds[0];
    for (std::size_t i = 1; i < fds.size(); ++i) ::close(fds[i]);
  }
  return e;
}

}  // namespace ringmaster::detail
