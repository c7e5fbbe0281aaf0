#include "fork_server.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/process/v2/environment.hpp>
#include <boost/process/v2/process.hpp>
// Boost 1.81's header-only mode omits this file, which defines
// process_environment::on_setup (environment.hpp includes only detail/impl/environment.ipp).
#include <boost/process/v2/impl/environment.ipp>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ringmaster/worker/handlers.hpp>
#include <ringmaster/worker/serve.hpp>
#include <map>
#include <utility>

extern char** environ;

namespace bp2 = boost::process::v2;

namespace ringmaster::detail {
namespace {

enum class request_kind : std::uint32_t { spawn = 1, standby = 2 };

struct request_header {
  request_kind kind;
  std::int32_t slot;
  std::uint64_t request;
  std::uint64_t fingerprint;
  std::uint64_t max_body;
  std::uint64_t memory_limit;
  std::uint32_t handlers_id;
  std::uint32_t argc;
  std::uint32_t pool_len;
  std::int32_t log_level;
};

struct event_header {
  fork_event::kind what;
  std::int32_t pid;
  std::uint64_t request;
  std::int32_t status;
  std::uint32_t message_len;
  std::int64_t max_rss_kib;
};

constexpr std::size_t k_max_packet = 64 << 10;

// sendmsg with up to two descriptors attached; MSG_NOSIGNAL: a dead peer is an error
// here, not a SIGPIPE.
bool send_packet(int sock, const std::string& bytes, std::initializer_list<int> fds) noexcept {
  iovec iov{const_cast<char*>(bytes.data()), bytes.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(2 * sizeof(int))] = {};
  if (fds.size() > 0) {
    msg.msg_control = control;
    msg.msg_controllen = CMSG_SPACE(fds.size() * sizeof(int));
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    if (c == nullptr) return false;
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(fds.size() * sizeof(int));
    std::memcpy(CMSG_DATA(c), std::data(fds), fds.size() * sizeof(int));
  }
  ssize_t n;
  do {
    n = ::sendmsg(sock, &msg, MSG_NOSIGNAL);
  } while (n < 0 && errno == EINTR);
  return n == static_cast<ssize_t>(bytes.size());
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
  ssize_t n;
  do {
    n = ::recvmsg(sock, &msg, MSG_CMSG_CLOEXEC | (dontwait ? MSG_DONTWAIT : 0));
  } while (n < 0 && errno == EINTR);
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

template <class T>
void append(std::string& out, const T& value) {
  out.append(reinterpret_cast<const char*>(&value), sizeof value);
}

void close_all(std::vector<int>& fds) noexcept {
  for (int fd : fds) ::close(fd);
  fds.clear();
}

int pidfd_open(pid_t pid) noexcept { return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)); }

// Puts `keep` at descriptors 3, 4, ... and closes every other descriptor above 2: a
// child must not hold the supervisor's sockets, or the user's files, by accident.
void keep_only(std::initializer_list<int> keep) noexcept {
  std::vector<int> high;
  for (int fd : keep) high.push_back(::fcntl(fd, F_DUPFD_CLOEXEC, 64));
  int target = 3;
  for (int fd : high) ::dup2(fd, target++);
  ::close_range(static_cast<unsigned>(target), ~0u, 0);
}

// ------------------------------------------------------------------------------------
// Inside the fork server

class server {
 public:
  explicit server(int sock) : sock_(sock), self_(::getpid()) {}

  [[noreturn]] void run() noexcept {
    sigset_t chld;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    ::sigprocmask(SIG_BLOCK, &chld, nullptr);
    sigfd_ = ::signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);
    // Say who we are: the supervisor learns a standby's pid from this.
    event_header hello{fork_event::kind::spawned, self_, 0, 0, 0, 0};
    std::string packet;
    append(packet, hello);
    if (sigfd_ < 0 || !send_packet(sock_, packet, {})) shutdown(1);

    std::string bytes;
    std::vector<int> fds;
    std::vector<pollfd> polled;
    for (;;) {
      polled.assign({{sock_, POLLIN, 0}, {sigfd_, POLLIN, 0}});
      for (const auto& [pid, c] : children_)
        if (c.err_fd >= 0) polled.push_back({c.err_fd, POLLIN, 0});
      if (::poll(polled.data(), polled.size(), -1) < 0) {
        if (errno == EINTR) continue;
        shutdown(2);
      }
      for (std::size_t i = 2; i < polled.size(); ++i)
        if (polled[i].revents) relay_stderr(polled[i].fd);
      if (polled[1].revents & POLLIN) reap();
      if (polled[0].revents & (POLLIN | POLLHUP | POLLERR)) {
        const ssize_t n = recv_packet(sock_, bytes, fds, true);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) continue;
        if (n <= 0) shutdown(0);  // the supervisor is gone or done with us
        handle(std::string_view(bytes.data(), static_cast<std::size_t>(n)), fds);
        close_all(fds);
      }
    }
  }

 private:
  struct child {
    int err_fd = -1;   // read end of the worker's stderr
    std::string tail;  // its last bytes: a start failure's own words
  };

  // Passes a worker's stderr on to ours, keeping its tail.
  void relay_stderr(int fd) noexcept {
    for (auto& [pid, c] : children_)
      if (c.err_fd == fd) return drain_stderr(c);
  }

  void drain_stderr(child& c) noexcept {
    char buf[4096];
    for (;;) {
      const ssize_t n = ::read(c.err_fd, buf, sizeof buf);
      if (n > 0) {
        for (ssize_t off = 0; off < n;) {  // our stderr may be a slow pipe: write it all
          const ssize_t w = ::write(STDERR_FILENO, buf + off, static_cast<std::size_t>(n - off));
          if (w <= 0 && errno != EINTR) break;
          if (w > 0) off += w;
        }
        try {
          c.tail.append(buf, static_cast<std::size_t>(n));
          if (c.tail.size() > 2048) c.tail.erase(0, c.tail.size() - 2048);
        } catch (...) {
        }
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n == 0) {  // every writer closed it
        ::close(c.err_fd);
        c.err_fd = -1;
      }
      return;  // EAGAIN: all read for now
    }
  }

  // A pipe for a new worker's stderr: [read end (ours, non-blocking), write end].
  static bool stderr_pipe(int (&p)[2]) noexcept {
    if (::pipe2(p, O_CLOEXEC) != 0) return false;
    ::fcntl(p[0], F_SETFL, O_NONBLOCK);
    return true;
  }

  void handle(std::string_view bytes, std::vector<int>& fds) noexcept {
    request_header h;
    if (bytes.size() < sizeof h) return;
    std::memcpy(&h, bytes.data(), sizeof h);
    if (h.kind == request_kind::standby) {
      if (fds.size() == 1) fork_standby(fds[0]);
      return;
    }
    spawn_request r;
    r.request = h.request;
    r.slot = h.slot;
    r.handlers_id = h.handlers_id;
    r.handlers_fingerprint = h.fingerprint;
    r.max_body = h.max_body;
    r.memory_limit = h.memory_limit;
    r.log_level = h.log_level;
    std::size_t at = sizeof h;
    if (h.pool_len > bytes.size() - at) return;
    r.pool.assign(bytes.substr(at, h.pool_len));
    at += h.pool_len;
    for (std::uint32_t i = 0; i < h.argc && at < bytes.size(); ++i) {
      const auto end = bytes.find('\0', at);
      if (end == std::string_view::npos) return;
      r.command.emplace_back(bytes.substr(at, end - at));
      at = end + 1;
    }
    if (fds.size() != 2) {
      report_failure(r.request, EINVAL, "spawn request without its descriptors");
      return;
    }
    r.segment_fd = fds[0];
    r.wake_fd = fds[1];
    if (r.command.empty())
      fork_worker(r);
    else
      exec_worker(r);
  }

  void fork_worker(const spawn_request& r) noexcept {
    int err[2];
    if (!stderr_pipe(err)) {
      report_failure(r.request, errno, std::string("cannot create a pipe: ") + std::strerror(errno));
      return;
    }
    const pid_t pid = ::fork();
    if (pid < 0) {
      const int e = errno;
      ::close(err[0]);
      ::close(err[1]);
      report_failure(r.request, e, std::string("fork failed: ") + std::strerror(e));
      return;
    }
    if (pid == 0) {
      ::dup2(err[1], STDERR_FILENO);
      become_worker(r);
    }
    ::close(err[1]);
    spawned(r.request, pid, err[0]);
  }

  [[noreturn]] void become_worker(const spawn_request& r) noexcept {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != self_) ::_exit(k_exit_cannot_serve);  // the server died before prctl
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    keep_only({r.segment_fd, r.wake_fd});
    if (r.memory_limit > 0) {
      const rlimit lim{r.memory_limit, r.memory_limit};
      ::setrlimit(RLIMIT_AS, &lim);
    }
    worker_launch launch{3, 4, r.slot, r.max_body, r.log_level, r.pool};
    // The handlers object is found in this process's copy of the program, as it was
    // when the fork server was forked. A fingerprint mismatch means types were added
    // after that: they would be missing here.
    const handlers* h = handlers::lookup(r.handlers_id);
    std::string error;
    if (h == nullptr)
      error = "the pool's handlers object did not exist when the supervisor was created; create handlers before the supervisor";
    else if (h->fingerprint() != r.handlers_fingerprint)
      error = "handlers were registered after the supervisor was created, so forked workers lack them; register handlers before creating the supervisor";
    ::_exit(run_worker(launch, h, error));
  }

  // Sets up the exec'd child: the slot's segment and the dispatcher's eventfd at
  // descriptors 3 and 4, death with the server, memory limit, default signal mask.
  // (Not Boost's posix::bind_fd: in 1.81 its on_setup falls off the end of a function
  // returning error_code — undefined behaviour that crashes at -O2.)
  struct exec_setup {
    pid_t server;
    std::size_t memory_limit;
    int segment_fd;
    int wake_fd;
    int stderr_fd;

    template <class Launcher>
    bp2::error_code on_setup(Launcher& launcher, const bp2::filesystem::path&, const char* const*) {
      launcher.fd_whitelist.push_back(3);
      launcher.fd_whitelist.push_back(4);
      return {};
    }

    template <class Launcher>
    bp2::error_code on_exec_setup(Launcher&, const bp2::filesystem::path&, const char* const*) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != server) return {ESRCH, bp2::system_category()};
      // Copy both above 10 first: either may already be 3 or 4, and dup2(fd, fd) would
      // leave close-on-exec set.
      const int seg = ::fcntl(segment_fd, F_DUPFD, 10);
      const int wake = ::fcntl(wake_fd, F_DUPFD, 10);
      if (seg < 0 || wake < 0 || ::dup2(seg, 3) < 0 || ::dup2(wake, 4) < 0 || ::dup2(stderr_fd, STDERR_FILENO) < 0)
        return {errno, bp2::system_category()};
      sigset_t none;
      sigemptyset(&none);
      ::sigprocmask(SIG_SETMASK, &none, nullptr);
      if (memory_limit > 0) {
        const rlimit lim{memory_limit, memory_limit};
        if (::setrlimit(RLIMIT_AS, &lim) != 0) return {errno, bp2::system_category()};
      }
      return {};
    }
  };

  void exec_worker(const spawn_request& r) noexcept {
    try {
      bp2::filesystem::path exe = r.command[0];
      if (r.command[0].find('/') == std::string::npos) {
        exe = bp2::environment::find_executable(r.command[0]);
        if (exe.empty()) {
          report_failure(r.request, ENOENT, "cannot find '" + r.command[0] + "' in PATH");
          return;
        }
      }
      std::vector<std::string> env;
      for (char** e = environ; *e; ++e)
        if (std::strncmp(*e, k_launch_env, std::strlen(k_launch_env)) != 0) env.emplace_back(*e);
      const worker_launch launch{3, 4, r.slot, r.max_body, r.log_level, r.pool};
      env.push_back(std::string(k_launch_env) + "=" + launch.to_env());
      std::vector<std::string> args(r.command.begin() + 1, r.command.end());
      int err[2];
      if (!stderr_pipe(err)) {
        report_failure(r.request, errno, std::string("cannot create a pipe: ") + std::strerror(errno));
        return;
      }
      boost::asio::io_context ctx;
      pid_t pid = -1;
      try {
        bp2::process proc(ctx, exe, args, bp2::process_environment(env),
                          exec_setup{self_, r.memory_limit, r.segment_fd, r.wake_fd, err[1]});
        pid = proc.id();
        proc.detach();  // we reap it ourselves, with everything else, through SIGCHLD
      } catch (...) {
        ::close(err[0]);
        ::close(err[1]);
        throw;
      }
      ::close(err[1]);
      spawned(r.request, pid, err[0]);
    } catch (const std::system_error& e) {
      report_failure(r.request, e.code().value(), "cannot execute '" + r.command[0] + "': " + e.code().message());
    } catch (const std::exception& e) {
      report_failure(r.request, EINVAL, "cannot execute '" + r.command[0] + "': " + e.what());
    }
  }

  void fork_standby(int sock) noexcept {
    const pid_t pid = ::fork();
    if (pid < 0) {
      // Said on the standby's own socket, in place of its hello (the supervisor waits
      // for that), so that the supervisor can report why.
      event_header e{fork_event::kind::spawn_failed, 0, 0, errno, 0, 0};
      std::string packet;
      append(packet, e);
      (void)send_packet(sock, packet, {});
      return;
    }
    if (pid == 0) {
      // No PR_SET_PDEATHSIG: a standby must outlive this server. It ends at its own
      // socket's end-of-file, like every fork server.
      keep_only({sock});
      ::setpgid(0, 0);
      server(3).run();
    }
    children_[pid];
  }

  void spawned(std::uint64_t request, pid_t pid, int err_fd) {
    children_[pid].err_fd = err_fd;
    // The pidfd is taken while the child cannot have been reaped (we reap it), so it
    // names exactly this process, never a recycled pid.
    const int pidfd = pidfd_open(pid);
    event_header e{fork_event::kind::spawned, pid, request, 0, 0, 0};
    std::string packet;
    append(packet, e);
    const bool ok = pidfd >= 0 ? send_packet(sock_, packet, {pidfd}) : send_packet(sock_, packet, {});
    if (pidfd >= 0) ::close(pidfd);
    if (!ok) shutdown(3);
  }

  void report_failure(std::uint64_t request, int err, const std::string& why) {
    event_header e{fork_event::kind::spawn_failed, 0, request, err, static_cast<std::uint32_t>(why.size()), 0};
    std::string packet;
    append(packet, e);
    packet += why;
    if (!send_packet(sock_, packet, {})) shutdown(3);
  }

  void reap() noexcept {
    signalfd_siginfo info;
    while (::read(sigfd_, &info, sizeof info) > 0) {
    }
    int status = 0;
    rusage ru{};
    for (pid_t pid; (pid = ::wait4(-1, &status, WNOHANG, &ru)) > 0;) {
      std::string tail;
      if (auto it = children_.find(pid); it != children_.end()) {
        if (it->second.err_fd >= 0) {
          drain_stderr(it->second);  // what it wrote last, before it died
          if (it->second.err_fd >= 0) ::close(it->second.err_fd);  // a grandchild may hold it open
        }
        tail = std::move(it->second.tail);
        children_.erase(it);
      }
      event_header e{fork_event::kind::exited, pid, 0, status, static_cast<std::uint32_t>(tail.size()), ru.ru_maxrss};
      std::string packet;
      append(packet, e);
      packet += tail;
      if (!send_packet(sock_, packet, {})) shutdown(3);
    }
  }

  [[noreturn]] void shutdown(int code) noexcept {
    for (const auto& [pid, c] : children_) ::kill(pid, SIGKILL);
    for (const auto& [pid, c] : children_)
      while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
      }
    ::_exit(code);
  }

  int sock_;
  pid_t self_;
  int sigfd_ = -1;
  std::map<pid_t, child> children_;
};

// Reads the hello a new server sends first, with a bounded wait.
pid_t read_hello(int sock, std::error_code& ec) {
  pollfd p{sock, POLLIN, 0};
  int r;
  do {
    r = ::poll(&p, 1, 10'000);
  } while (r < 0 && errno == EINTR);
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

[[noreturn]] void fork_server_main(int sock) noexcept { server(sock).run(); }

// ------------------------------------------------------------------------------------
// In the supervisor

fork_server::fork_server(fork_server&& other) noexcept
    : sock_(std::exchange(other.sock_, -1)),
      pid_(std::exchange(other.pid_, -1)),
      pidfd_(std::exchange(other.pidfd_, -1)),
      child_(std::exchange(other.child_, false)) {}

fork_server& fork_server::operator=(fork_server&& other) noexcept {
  if (this != &other) {
    fork_server dying(std::move(*this));
    sock_ = std::exchange(other.sock_, -1);
    pid_ = std::exchange(other.pid_, -1);
    pidfd_ = std::exchange(other.pidfd_, -1);
    child_ = std::exchange(other.child_, false);
  }
  return *this;
}

fork_server::~fork_server() {
  if (sock_ >= 0) ::close(sock_);
  if (pidfd_ >= 0) {
    // It exits at end-of-file once its workers are reaped. Wait a bounded time, then
    // kill it; reap it if it is our child.
    pollfd p{pidfd_, POLLIN, 0};
    if (::poll(&p, 1, 5000) <= 0) ::syscall(SYS_pidfd_send_signal, pidfd_, SIGKILL, nullptr, 0);
    if (child_)
      while (::waitpid(pid_, nullptr, 0) < 0 && errno == EINTR) {
      }
    ::close(pidfd_);
  }
}

fork_server fork_server::fork_from_here(const std::string& name) {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0)
    throw std::system_error(errno, std::system_category(), name + ": cannot create the fork server's socket");
  std::fflush(nullptr);  // or buffered output would be written twice
  const pid_t pid = ::fork();
  if (pid < 0) {
    const int err = errno;
    ::close(sv[0]);
    ::close(sv[1]);
    throw std::system_error(err, std::system_category(), name + ": cannot fork the fork server");
  }
  if (pid == 0) {
    keep_only({sv[1]});
    ::setpgid(0, 0);  // terminal signals (Ctrl-C) go to the supervisor, which coordinates
    fork_server_main(3);
  }
  ::close(sv[1]);
  fork_server s;
  s.sock_ = sv[0];
  s.pid_ = pid;
  s.pidfd_ = pidfd_open(pid);
  s.child_ = true;
  std::error_code ec;
  read_hello(s.sock_, ec);
  if (ec) throw std::system_error(ec, name + ": the fork server did not start");
  return s;
}

std::optional<fork_server> fork_server::fork_standby(std::error_code& ec) {
  ec.clear();
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) {
    ec = {errno, std::system_category()};
    return std::nullopt;
  }
  request_header h{};
  h.kind = request_kind::standby;
  std::string packet;
  append(packet, h);
  const bool sent = send_packet(sock_, packet, {sv[1]});
  ::close(sv[1]);
  if (!sent) {
    ec = {errno, std::system_category()};
    ::close(sv[0]);
    return std::nullopt;
  }
  fork_server s;
  s.sock_ = sv[0];
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
    std::string packet;
    append(packet, h);
    packet += r.pool;
    for (const auto& arg : r.command) packet.append(arg).push_back('\0');
    if (packet.size() > k_max_packet) {
      ec = std::make_error_code(std::errc::argument_list_too_long);
      return;
    }
    if (!send_packet(sock_, packet, {r.segment_fd, r.wake_fd}))
      ec = {errno ? errno : EPIPE, std::system_category()};
    else
      ec.clear();
  } catch (const std::bad_alloc&) {
    ec = std::make_error_code(std::errc::not_enough_memory);
  }
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
