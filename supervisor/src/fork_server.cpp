#include "fork_server.hpp"

#include <fcntl.h>
#include <limits.h>
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
#include <chrono>
#include <boost/process/v2/environment.hpp>
#include <boost/process/v2/process.hpp>
// Boost 1.81's header-only mode omits this file, which defines
// process_environment::on_setup (environment.hpp includes only detail/impl/environment.ipp).
#include <boost/process/v2/impl/environment.ipp>
#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <map>
#include <ringmaster/ipc/segment.hpp>
#include <ringmaster/worker/detail/wire.hpp>
#include <ringmaster/worker/detail/handlers_access.hpp>
#include <ringmaster/worker/detail/launch.hpp>
#include <ringmaster/worker/handlers.hpp>
#include <unordered_map>
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
// here, not a SIGPIPE. MSG_DONTWAIT: false with EAGAIN when the peer's queue is full, and
// the caller keeps the packet for later (packet_queue): neither process may ever block
// sending to the other, or each would wait for the other to read (a pool of ~550 workers
// filled both directions at once).
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
  ssize_t n;
  do {
    n = ::sendmsg(sock, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
  } while (n < 0 && errno == EINTR);
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

// What a child that cannot set itself up says on stderr (the fork server's relay keeps it
// as the worker's last words) before it exits.
[[noreturn]] void child_failed(const char* what) noexcept {
  const int e = errno;
  char text[256];
  rlimit nofile{};
  ::getrlimit(RLIMIT_NOFILE, &nofile);
  const int n = e == EMFILE || e == EINVAL
                    ? std::snprintf(text, sizeof text, "ringmaster worker: %s: %s (RLIMIT_NOFILE, ulimit -n, is %llu)\n",
                                    what, std::strerror(e), static_cast<unsigned long long>(nofile.rlim_cur))
                    : std::snprintf(text, sizeof text, "ringmaster worker: %s: %s\n", what, std::strerror(e));
  if (n > 0) (void)!::write(STDERR_FILENO, text, std::min<std::size_t>(static_cast<std::size_t>(n), sizeof text - 1));
  ::_exit(k_exit_cannot_serve);
}

// Now, as spdlog writes it ("2026-01-02 03:04:05.678", local time).
std::string log_time() {
  timespec ts{};
  ::clock_gettime(CLOCK_REALTIME, &ts);
  tm local{};
  ::localtime_r(&ts.tv_sec, &local);
  char text[40];
  const std::size_t n = std::strftime(text, sizeof text, "%Y-%m-%d %H:%M:%S", &local);
  std::snprintf(text + n, sizeof text - n, ".%03ld", ts.tv_nsec / 1'000'000);
  return text;
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
    ::fcntl(sock_, F_SETFL, ::fcntl(sock_, F_GETFL) | O_NONBLOCK);
    // Say who we are: the supervisor learns a standby's pid from this.
    event_header hello{fork_event::kind::spawned, self_, 0, 0, 0, 0};
    std::string packet;
    append(packet, hello);
    if (sigfd_ < 0 || !send_packet(sock_, packet, {})) shutdown(1);

    std::string bytes;
    std::vector<int> fds;
    std::vector<pollfd> polled;
    for (;;) {
      // Requests are read even while our events wait for room: the supervisor may be
      // sending to us at that very moment, and would wait for us while we wait for it.
      const short sock_events = static_cast<short>(POLLIN | (out_.empty() ? 0 : POLLOUT));
      polled.assign({{sock_, sock_events, 0}, {sigfd_, POLLIN, 0}, {log_.empty() ? -1 : STDERR_FILENO, POLLOUT, 0}});
      for (const auto& [fd, pid] : by_fd_) polled.push_back({fd, POLLIN, 0});
      if (::poll(polled.data(), polled.size(), -1) < 0) {
        if (errno == EINTR) continue;
        shutdown(2);
      }
      if (polled[2].revents) flush_log();
      for (std::size_t i = 3; i < polled.size(); ++i)
        if (polled[i].revents) relay_output(polled[i].fd);
      if (polled[1].revents & POLLIN) reap();
      if ((polled[0].revents & POLLOUT) && !out_.flush(sock_)) shutdown(3);
      if (polled[0].revents & (POLLIN | POLLHUP | POLLERR)) {
        // A batch per wake-up: a thousand spawn requests need not be a thousand polls.
        for (int budget = 64; budget > 0; --budget) {
          const ssize_t n = recv_packet(sock_, bytes, fds, true);
          if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
          if (n <= 0) shutdown(0);  // the supervisor is gone or done with us
          handle(std::string_view(bytes.data(), static_cast<std::size_t>(n)), fds);
          close_all(fds);
        }
      }
    }
  }

 private:
  // One line of output at most this long; a longer one is cut into pieces of this size.
  static constexpr std::size_t k_max_line = 4096;
  // Worker output waiting for room in our stderr at most; more is dropped, and counted.
  static constexpr std::size_t k_max_log_backlog = 1 << 20;

  struct child {
    bool worker = false;  // false: a standby fork server
    std::string pool;
    int slot = -1;
    int out_fd = -1, err_fd = -1;  // read ends of its stdout and stderr
    std::string out_line, err_line;  // a line not yet ended
    std::string out_line_job, err_line_job;  // the job that wrote its first bytes
    std::string tail;  // the last bytes of its stderr: a failure's own words
    ipc::segment segment;  // its slot, mapped to read the id of the job it runs
  };

  // A worker wrote: each line goes to our stderr (the supervisor's log), prefixed with
  // who wrote it; never to our stdout, which may be the results stream.
  void relay_output(int fd) noexcept {
    const auto it = by_fd_.find(fd);
    if (it == by_fd_.end()) return;
    const auto c = children_.find(it->second);
    if (c != children_.end()) drain_output(c->first, c->second, fd == c->second.err_fd);
  }

  void drain_output(pid_t pid, child& c, bool err) noexcept {
    int& fd = err ? c.err_fd : c.out_fd;
    std::string& line = err ? c.err_line : c.out_line;
    std::string& line_job = err ? c.err_line_job : c.out_line_job;
    char buf[4096];
    for (int budget = 16; budget > 0 && fd >= 0; --budget) {  // others get their turn too
      // The job shown *before* the read: the worker does not show another while its pipes
      // hold bytes (it waits for us to read them), so what we read is that job's.
      std::string job;
      try {
        if (c.segment.valid() && c.segment.bytes().size() >= sizeof(wire::worker_control))
          job = wire::read_job_id(*reinterpret_cast<const wire::worker_control*>(c.segment.bytes().data()));
      } catch (...) {
      }
      const ssize_t n = ::read(fd, buf, sizeof buf);
      if (n > 0) {
        try {
          if (err) {
            c.tail.append(buf, static_cast<std::size_t>(n));
            if (c.tail.size() > 2048) c.tail.erase(0, c.tail.size() - 2048);
          }
          std::string_view rest(buf, static_cast<std::size_t>(n));
          while (!rest.empty()) {
            if (line.empty()) line_job = job;
            const auto nl = rest.find('\n');
            const std::size_t take = std::min({nl == std::string_view::npos ? rest.size() : nl, k_max_line - line.size()});
            line.append(rest.substr(0, take));
            rest.remove_prefix(take);
            const bool ended = !rest.empty() && rest.front() == '\n';
            if (ended) rest.remove_prefix(1);
            if (ended || line.size() >= k_max_line) {
              write_line(pid, c, err, line, line_job);
              line.clear();
            }
          }
        } catch (...) {
          line.clear();  // out of memory: lose this piece rather than the server
        }
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n == 0) close_output(pid, c, err);  // every writer closed it
      return;                                 // EAGAIN: all read for now
    }
  }

  // Writes what is left of an unended line, and closes the read end.
  void close_output(pid_t pid, child& c, bool err) noexcept {
    int& fd = err ? c.err_fd : c.out_fd;
    std::string& line = err ? c.err_line : c.out_line;
    if (!line.empty()) write_line(pid, c, err, line, err ? c.err_line_job : c.out_line_job);
    line.clear();
    if (fd < 0) return;
    by_fd_.erase(fd);
    ::close(fd);
    fd = -1;
  }

  // "[time] [worker POOL/SLOT pid PID] [stdout] [job ID] text". The worker runtime's own
  // log lines, already prefixed by spdlog with this very worker's name, go as they are.
  void write_line(pid_t pid, const child& c, bool err, std::string_view text, const std::string& id) noexcept {
    try {
      if (!text.empty() && text.back() == '\r') text.remove_suffix(1);
      const std::string who = "worker " + c.pool + "/" + std::to_string(c.slot) + " pid " + std::to_string(pid) + "]";
      std::string out;
      if (text.starts_with('[') && text.substr(0, 64 + who.size()).find("] [" + who) != std::string_view::npos) {
        out.assign(text);
      } else {
        out = "[" + log_time() + "] [" + who + (err ? " [stderr] " : " [stdout] ");
        if (!id.empty()) out += "[job " + id + "] ";
        out += text;
      }
      out += '\n';
      if (log_.size() + out.size() > k_max_log_backlog) {
        ++dropped_lines_;
        return;
      }
      log_ += out;
      flush_log();
    } catch (...) {
    }
  }

  // Writes what waits for the log without ever blocking: our stderr (the supervisor's) may
  // be a pipe read slowly, and a server blocked on it would start and reap nothing. What
  // does not fit waits, up to k_max_log_backlog; beyond that lines are counted, then said.
  void flush_log() noexcept {
    while (!log_.empty() || dropped_lines_ > 0) {
      if (log_.empty()) {
        try {
          log_ = "[" + log_time() + "] [fork server pid " + std::to_string(self_) + "] [warning] " +
                 std::to_string(dropped_lines_) + " line(s) of worker output dropped: the log is not read fast enough\n";
        } catch (...) {
          return;
        }
        dropped_lines_ = 0;
      }
      pollfd p{STDERR_FILENO, POLLOUT, 0};
      if (::poll(&p, 1, 0) <= 0 || !(p.revents & POLLOUT)) return;
      // At most PIPE_BUF: a pipe that polls writable takes that much without blocking.
      const ssize_t w = ::write(STDERR_FILENO, log_.data(), std::min<std::size_t>(log_.size(), PIPE_BUF));
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) {
        log_.clear();  // stderr is broken: nothing will ever read it
        dropped_lines_ = 0;
        return;
      }
      log_.erase(0, static_cast<std::size_t>(w));
    }
  }

  // A pipe for a new worker's output: [read end (ours, non-blocking), write end].
  static bool output_pipe(int (&p)[2]) noexcept {
    if (::pipe2(p, O_CLOEXEC) != 0) return false;
    ::fcntl(p[0], F_SETFL, O_NONBLOCK);
    return true;
  }

  // Both output pipes of a new worker: out[0], err[0] ours; out[1], err[1] its stdout and
  // stderr. False (all closed, errno set) if either cannot be made.
  static bool output_pipes(int (&out)[2], int (&err)[2]) noexcept {
    if (!output_pipe(out)) return false;
    if (output_pipe(err)) return true;
    const int e = errno;
    ::close(out[0]);
    ::close(out[1]);
    errno = e;
    return false;
  }

  static void close_pipes(int (&out)[2], int (&err)[2]) noexcept {
    for (int fd : {out[0], out[1], err[0], err[1]}) ::close(fd);
  }

  std::string pipe_failure(int e) const {
    std::string why = std::string("cannot create the worker's output pipes: ") + std::strerror(e);
    if (e == EMFILE || e == ENFILE) {
      rlimit nofile{};
      ::getrlimit(RLIMIT_NOFILE, &nofile);
      why += " (the fork server holds 3 descriptors per worker; RLIMIT_NOFILE, ulimit -n, is " +
             std::to_string(nofile.rlim_cur) + ")";
    }
    return why;
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
    int out[2], err[2];
    if (!output_pipes(out, err)) {
      const int e = errno;
      report_failure(r.request, e, pipe_failure(e));
      return;
    }
    const pid_t pid = ::fork();
    if (pid < 0) {
      const int e = errno;
      close_pipes(out, err);
      report_failure(r.request, e, std::string("fork failed: ") + std::strerror(e));
      return;
    }
    if (pid == 0) {
      ::dup2(out[1], STDOUT_FILENO);
      ::dup2(err[1], STDERR_FILENO);
      become_worker(r);
    }
    ::close(out[1]);
    ::close(err[1]);
    spawned(r, pid, out[0], err[0]);
  }

  // In a child of this server: the other workers' segments, mapped here for their job ids,
  // are not the child's to see (a worker is untrusted; a standby would keep them alive).
  void drop_mappings() noexcept {
    for (auto& [pid, c] : children_) c.segment = {};
  }

  [[noreturn]] void become_worker(const spawn_request& r) noexcept {
    drop_mappings();
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != self_) ::_exit(k_exit_cannot_serve);  // the server died before prctl
    // Its own process group, which the server ends with it: whatever it starts (a shell,
    // a `sleep`) dies when it dies, times out, is recycled or stopped.
    ::setpgid(0, 0);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    // Not the supervisor's stdin: `run` reads job lines from it.
    if (const int null = ::open("/dev/null", O_RDONLY | O_CLOEXEC); null >= 0) {
      ::dup2(null, STDIN_FILENO);
      ::close(null);
    }
    if (!keep_only({r.segment_fd, r.wake_fd})) child_failed("cannot set up its descriptors");
    if (r.memory_limit > 0) {
      const rlimit lim{r.memory_limit, r.memory_limit};
      ::setrlimit(RLIMIT_AS, &lim);
    }
    worker_launch launch{3, 4, r.slot, r.max_body, r.log_level, r.pool};
    // The handlers object is found in this process's copy of the program, as it was
    // when the fork server was forked. A fingerprint mismatch means types were added
    // after that: they would be missing here.
    const handlers* h = handlers_access::lookup(r.handlers_id);
    std::string error;
    if (h == nullptr)
      error = "the pool's handlers object did not exist when the supervisor was created; create handlers before the supervisor";
    else if (handlers_access::fingerprint(*h) != r.handlers_fingerprint)
      error = "handlers were registered after the supervisor was created, so forked workers lack them; register handlers before creating the supervisor";
    ::_exit(run_worker(launch, h, error));
  }

  // Sets up the exec'd child: the slot's segment and the dispatcher's eventfd at
  // descriptors 3 and 4, stdout and stderr to the server, its own process group, death
  // with the server, memory limit, default signal mask.
  // (Not Boost's posix::bind_fd: in 1.81 its on_setup falls off the end of a function
  // returning error_code — undefined behaviour that crashes at -O2.)
  struct exec_setup {
    pid_t server;
    std::size_t memory_limit;
    int segment_fd;
    int wake_fd;
    int stdout_fd;
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
      ::setpgid(0, 0);
      // Copy both above 10 first: either may already be 3 or 4, and dup2(fd, fd) would
      // leave close-on-exec set. (F_DUPFD takes the lowest free one from 10: under a low
      // RLIMIT_NOFILE that still works as long as 11 descriptors are allowed.)
      const int seg = ::fcntl(segment_fd, F_DUPFD, 10);
      const int wake = ::fcntl(wake_fd, F_DUPFD, 10);
      if (seg < 0 || wake < 0 || ::dup2(seg, 3) < 0 || ::dup2(wake, 4) < 0 || ::dup2(stdout_fd, STDOUT_FILENO) < 0 ||
          ::dup2(stderr_fd, STDERR_FILENO) < 0)
        return {errno, bp2::system_category()};
      if (const int null = ::open("/dev/null", O_RDONLY | O_CLOEXEC); null >= 0) ::dup2(null, STDIN_FILENO);
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
      int out[2], err[2];
      if (!output_pipes(out, err)) {
        const int e = errno;
        report_failure(r.request, e, pipe_failure(e));
        return;
      }
      boost::asio::io_context ctx;
      pid_t pid = -1;
      try {
        bp2::process proc(ctx, exe, args, bp2::process_environment(env),
                          exec_setup{self_, r.memory_limit, r.segment_fd, r.wake_fd, out[1], err[1]});
        pid = proc.id();
        proc.detach();  // we reap it ourselves, with everything else, through SIGCHLD
      } catch (...) {
        close_pipes(out, err);
        throw;
      }
      ::close(out[1]);
      ::close(err[1]);
      spawned(r, pid, out[0], err[0]);
    } catch (const std::system_error& e) {
      std::string why = "cannot execute '" + r.command[0] + "': " + e.code().message();
      if (e.code().value() == EMFILE) why += " (RLIMIT_NOFILE, ulimit -n, is too low for this many workers)";
      report_failure(r.request, e.code().value(), why);
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
      drop_mappings();
      if (!keep_only({sock})) {
        event_header e{fork_event::kind::spawn_failed, 0, 0, errno, 0, 0};
        std::string packet;
        append(packet, e);
        (void)send_packet(sock, packet, {});
        ::_exit(1);
      }
      ::setpgid(0, 0);
      server(3).run();
    }
    children_[pid];
  }

  void spawned(const spawn_request& r, pid_t pid, int out_fd, int err_fd) noexcept {
    try {
      child& c = children_[pid];
      c.worker = true;
      c.pool = r.pool;
      c.slot = r.slot;
      c.out_fd = out_fd;
      c.err_fd = err_fd;
      by_fd_[out_fd] = pid;
      by_fd_[err_fd] = pid;
      std::error_code ec;
      // For the job id only; a worker that cannot be read from is still served.
      if (const int copy = ::fcntl(r.segment_fd, F_DUPFD_CLOEXEC, 3); copy >= 0) {
        c.segment = ipc::segment::map_fd(copy, ec);
        if (ec) ::close(copy);
      }
    } catch (...) {
    }
    // The pidfd is taken while the child cannot have been reaped (we reap it), so it
    // names exactly this process, never a recycled pid.
    const int pidfd = pidfd_open(pid);
    event_header e{fork_event::kind::spawned, pid, r.request, 0, 0, 0};
    std::string packet;
    append(packet, e);
    const bool ok = pidfd >= 0 ? out_.send(sock_, std::move(packet), {pidfd}) : out_.send(sock_, std::move(packet), {});
    if (pidfd >= 0) ::close(pidfd);
    if (!ok) shutdown(3);
  }

  void report_failure(std::uint64_t request, int err, const std::string& why) noexcept {
    try {
      event_header e{fork_event::kind::spawn_failed, 0, request, err, static_cast<std::uint32_t>(why.size()), 0};
      std::string packet;
      append(packet, e);
      packet += why;
      if (!out_.send(sock_, std::move(packet), {})) shutdown(3);
    } catch (...) {
      shutdown(3);
    }
  }

  void reap() noexcept {
    signalfd_siginfo info;
    while (::read(sigfd_, &info, sizeof info) > 0) {
    }
    for (;;) {
      // Looked at first, reaped after: while it is a zombie its pid is still its process
      // group's id, so killing the group cannot hit a recycled pid.
      siginfo_t dead{};
      if (::waitid(P_ALL, 0, &dead, WEXITED | WNOHANG | WNOWAIT) != 0 || dead.si_pid == 0) break;
      const pid_t pid = dead.si_pid;
      const auto it = children_.find(pid);
      if (it != children_.end() && it->second.worker) ::kill(-pid, SIGKILL);  // what it started
      int status = 0;
      rusage ru{};
      if (::wait4(pid, &status, WNOHANG, &ru) != pid) break;
      std::string tail;
      if (it != children_.end()) {
        child& c = it->second;
        // What it wrote last, before it died; then the pipes are closed (a process it
        // started, not dead yet, may hold them open).
        for (bool err : {false, true}) {
          if ((err ? c.err_fd : c.out_fd) >= 0) drain_output(pid, c, err);
          close_output(pid, c, err);
        }
        tail = std::move(c.tail);
        children_.erase(it);
      }
      event_header e{fork_event::kind::exited, pid, 0, status, static_cast<std::uint32_t>(tail.size()), ru.ru_maxrss};
      std::string packet;
      append(packet, e);
      packet += tail;
      if (!out_.send(sock_, std::move(packet), {})) shutdown(3);
    }
  }

  [[noreturn]] void shutdown(int code) noexcept {
    // What the log still owes, for at most a second.
    for (int i = 0; i < 100 && !log_.empty(); ++i) {
      pollfd p{STDERR_FILENO, POLLOUT, 0};
      if (::poll(&p, 1, 10) < 0 && errno != EINTR) break;
      flush_log();
    }
    for (const auto& [pid, c] : children_) {
      if (c.worker) ::kill(-pid, SIGKILL);
      ::kill(pid, SIGKILL);
    }
    for (const auto& [pid, c] : children_)
      while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
      }
    ::_exit(code);
  }

  int sock_;
  pid_t self_;
  int sigfd_ = -1;
  std::map<pid_t, child> children_;
  std::unordered_map<int, pid_t> by_fd_;  // output pipe -> its worker
  std::string log_;                       // worker output waiting for room in our stderr
  std::size_t dropped_lines_ = 0;
  packet_queue out_;  // events the supervisor's socket did not take yet
};

// For an error that may be the descriptor limit: which limit, and how much it is.
std::string nofile_hint(int err) {
  if (err != EMFILE && err != ENFILE && err != EINVAL) return {};
  rlimit nofile{};
  ::getrlimit(RLIMIT_NOFILE, &nofile);
  return " (RLIMIT_NOFILE, ulimit -n, is " + std::to_string(nofile.rlim_cur) + ")";
}

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
// Either side

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
    if (::poll(&p, 1, 5000) <= 0) ::syscall(SYS_pidfd_send_signal, pidfd_, SIGKILL, nullptr, 0);
    if (child_)
      while (::waitpid(pid_, nullptr, 0) < 0 && errno == EINTR) {
      }
    ::close(pidfd_);
  }
}

fork_server fork_server::fork_from_here(const std::string& name) {
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
      // Said in place of the hello, so that the supervisor reports why.
      event_header e{fork_event::kind::spawn_failed, 0, 0, errno, 0, 0};
      std::string packet;
      append(packet, e);
      (void)send_packet(sv[1], packet, {});
      ::_exit(1);
    }
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
  if (ec) throw std::system_error(ec, name + ": the fork server did not start" + nofile_hint(ec.value()));
  return s;
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
    if (::poll(&p, 1, static_cast<int>(std::max<long long>(left.count(), 1))) < 0 && errno != EINTR) break;
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
