#include "fork_wire.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <iterator>
#include <ringmaster/ipc/detail/eintr.hpp>

namespace ringmaster::detail {

// MSG_DONTWAIT: neither process may ever block sending to the other, or each would wait
// for the other to read (a pool of ~550 workers filled both directions at once).
bool send_packet(int sock, const std::string& bytes, const int* fds, std::size_t nfds) noexcept {
  iovec iov{const_cast<char*>(bytes.data()), bytes.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(2 * sizeof(int))] = {};
  if (nfds > 2) {
    errno = EINVAL;
    return false;
  }
  if (nfds > 0) {
    msg.msg_control = control;
    msg.msg_controllen = CMSG_SPACE(nfds * sizeof(int));
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    if (c == nullptr) return false;
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(nfds * sizeof(int));
    std::memcpy(CMSG_DATA(c), fds, nfds * sizeof(int));
  }
  const ssize_t n = retry_eintr([&] { return ::sendmsg(sock, &msg, MSG_NOSIGNAL | MSG_DONTWAIT); });
  return n == static_cast<ssize_t>(bytes.size());
}

bool send_packet(int sock, const std::string& bytes, std::initializer_list<int> fds) noexcept {
  return send_packet(sock, bytes, std::data(fds), fds.size());
}

// recvmsg of one packet with its descriptors (close-on-exec). Returns the byte count, 0
// at end-of-file, -1 with errno on error (EAGAIN when nothing waits and `dontwait`).
ssize_t recv_packet(int sock, std::string& bytes, std::vector<int>& fds, bool dontwait) noexcept {
  // Kept at full size between calls by its owner, so this resize does not zero-fill 64 KiB
  // each time.
  if (bytes.size() < k_max_packet) bytes.resize(k_max_packet);
  iovec iov{bytes.data(), bytes.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(4 * sizeof(int))];
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  const ssize_t n = retry_eintr([&] { return ::recvmsg(sock, &msg, MSG_CMSG_CLOEXEC | (dontwait ? MSG_DONTWAIT : 0)); });
  fds.clear();
  if (n < 0) return n;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    const std::size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (std::size_t i = 0; i < count; ++i) {
      int fd;
      std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
      fds.push_back(fd);
    }
  }
  return n;
}

void close_all(std::vector<int>& fds) noexcept {
  for (int fd : fds) ::close(fd);
  fds.clear();
}

int pidfd_open(pid_t pid) noexcept { return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)); }

// Puts `keep` at descriptors 3, 4, ... and closes every other descriptor above 2: a
// child must not hold the supervisor's sockets, or the user's files, by accident. The
// copies made on the way go just above the targets (not at a fixed 64, which fails with
// EINVAL under `ulimit -n 64`). False, errno set, when a descriptor cannot be made.
bool keep_only(std::initializer_list<int> keep) noexcept {
  int high[4];
  std::size_t n = 0;
  const int first_free = 3 + static_cast<int>(keep.size());
  for (int fd : keep) {
    if (n == std::size(high)) return errno = EINVAL, false;
    high[n] = ::fcntl(fd, F_DUPFD_CLOEXEC, first_free);
    if (high[n++] < 0) return false;
  }
  int target = 3;
  for (std::size_t i = 0; i < n; ++i)
    if (::dup2(high[i], target++) < 0) return false;
  ::close_range(static_cast<unsigned>(target), ~0u, 0);
  return true;
}

bool send_hello(int sock) noexcept {
  ::fcntl(sock, F_SETFL, ::fcntl(sock, F_GETFL) | O_NONBLOCK);
  event_header hello{fork_event::kind::spawned, ::getpid(), 0, 0, 0, 0};
  std::string packet;
  append(packet, hello);
  return send_packet(sock, packet, {});
}

int signalfd_for(std::initializer_list<int> signals) noexcept {
  sigset_t set;
  sigemptyset(&set);
  for (const int sig : signals) sigaddset(&set, sig);
  ::sigprocmask(SIG_BLOCK, &set, nullptr);
  return ::signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
}

void send_start_failure(int sock, int err) noexcept {
  event_header e{fork_event::kind::spawn_failed, 0, 0, err, 0, 0};
  std::string packet;
  append(packet, e);
  (void)send_packet(sock, packet, {});
}

std::vector<pid_t> children_of_self() {
  std::vector<pid_t> out;
  const std::string path = "/proc/self/task/" + std::to_string(::getpid()) + "/children";
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return out;
  std::string text;
  char buf[4096];
  for (ssize_t n; (n = retry_eintr([&] { return ::read(fd, buf, sizeof buf); })) > 0;) text.append(buf, static_cast<std::size_t>(n));
  ::close(fd);
  pid_t pid = 0;
  for (const char c : text) {
    if (c >= '0' && c <= '9') {
      pid = pid * 10 + (c - '0');
    } else if (pid > 0) {
      out.push_back(pid);
      pid = 0;
    }
  }
  if (pid > 0) out.push_back(pid);
  return out;
}

void kill_with_group(pid_t pid) noexcept {
  // A child of ours that has not been reaped keeps its pid, and so its group's id, from
  // being recycled: neither kill can hit a stranger.
  if (const pid_t group = ::getpgid(pid); group > 0 && group != ::getpgrp()) ::kill(-group, SIGKILL);
  ::kill(pid, SIGKILL);
}

std::size_t wait_all_ended(const std::vector<int>& pidfds, int timeout_ms) noexcept {
  std::vector<pollfd> polled;
  try {
    for (const int fd : pidfds)
      if (fd >= 0) polled.push_back({fd, POLLIN, 0});
  } catch (...) {
    return pidfds.size();
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (!polled.empty()) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    if (retry_eintr([&] { return ::poll(polled.data(), polled.size(), static_cast<int>(left.count())); }) < 0) break;
    std::erase_if(polled, [](const pollfd& p) { return p.revents != 0; });
  }
  return polled.size();
}

// For an error that may be the descriptor limit: which limit, and how much it is.
std::string nofile_hint(int err) {
  if (err != EMFILE && err != ENFILE && err != EINVAL) return {};
  rlimit nofile{};
  ::getrlimit(RLIMIT_NOFILE, &nofile);
  return " (RLIMIT_NOFILE, ulimit -n, is " + std::to_string(nofile.rlim_cur) + ")";
}

// ------------------------------------------------------------------------------------
// The packet queue, on either side

packet_queue& packet_queue::operator=(packet_queue&& other) noexcept {
  if (this != &other) {
    clear();
    q_ = std::move(other.q_);
  }
  return *this;
}

bool packet_queue::send(int sock, std::string bytes, std::initializer_list<int> fds) noexcept {
  if (fds.size() > 2) return errno = EINVAL, false;
  if (q_.empty()) {
    if (send_packet(sock, bytes, fds)) return true;
    if (errno != EAGAIN && errno != EWOULDBLOCK) return false;
  }
  try {
    packet p;
    p.bytes = std::move(bytes);
    for (int fd : fds) {
      // Our own copies: the caller's descriptors may be closed before this is sent.
      p.fds[p.nfds] = ::fcntl(fd, F_DUPFD_CLOEXEC, 3);
      if (p.fds[p.nfds] < 0) {
        for (std::size_t i = 0; i < p.nfds; ++i) ::close(p.fds[i]);
        return false;
      }
      ++p.nfds;
    }
    q_.push_back(std::move(p));
    return true;
  } catch (const std::bad_alloc&) {
    return errno = ENOMEM, false;
  }
}

bool packet_queue::flush(int sock) noexcept {
  while (!q_.empty()) {
    packet& p = q_.front();
    if (!send_packet(sock, p.bytes, p.fds, p.nfds)) return errno == EAGAIN || errno == EWOULDBLOCK;
    for (std::size_t i = 0; i < p.nfds; ++i) ::close(p.fds[i]);
    q_.pop_front();
  }
  return true;
}

void packet_queue::clear() noexcept {
  for (auto& p : q_)
    for (std::size_t i = 0; i < p.nfds; ++i) ::close(p.fds[i]);
  q_.clear();
}

}  // namespace ringmaster::detail
