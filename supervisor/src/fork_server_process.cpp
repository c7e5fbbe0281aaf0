#include "fork_server_process.hpp"

#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <ringmaster/ipc/detail/eintr.hpp>
#include <ringmaster/worker/detail/wire.hpp>

#include "fork_wire.hpp"

namespace ringmaster::detail {
namespace {

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

}  // namespace

fork_server_process::fork_server_process(int sock) : sock_(sock), self_(::getpid()) {}

[[noreturn]] void fork_server_process::run() noexcept {
  // What a worker started outside its process group comes back here, not to init, once
  // its parent dies: reap() reaps it, shutdown() ends it.
  ::prctl(PR_SET_CHILD_SUBREAPER, 1);
  // SIGTERM is how the zygote's death reaches us (PR_SET_PDEATHSIG): an orderly
  // shutdown, which ends each worker's process group, not just the worker.
  sigfd_ = signalfd_for({SIGCHLD, SIGTERM});
  if (sigfd_ < 0 || !send_hello(sock_)) shutdown(1);

  std::string bytes;
  std::vector<int> fds;
  std::vector<pollfd> polled;
  for (;;) {
    // Requests are read even while our events wait for room: the supervisor may be
    // sending to us at that very moment, and would wait for us while we wait for it.
    const short sock_events = static_cast<short>(POLLIN | (out_.empty() ? 0 : POLLOUT));
    polled.assign({{sock_, sock_events, 0}, {sigfd_, POLLIN, 0}, {log_.empty() ? -1 : STDERR_FILENO, POLLOUT, 0}});
    for (const auto& [fd, pid] : by_fd_) polled.push_back({fd, POLLIN, 0});
    if (retry_eintr([&] { return ::poll(polled.data(), polled.size(), -1); }) < 0) shutdown(2);
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

// A worker wrote: each line goes to our stderr (the supervisor's log), prefixed with
// who wrote it; never to our stdout, which may be the results stream.
void fork_server_process::relay_output(int fd) noexcept {
  const auto it = by_fd_.find(fd);
  if (it == by_fd_.end()) return;
  const auto c = children_.find(it->second);
  if (c != children_.end()) drain_output(c->first, c->second, fd == c->second.err_fd);
}

void fork_server_process::drain_output(pid_t pid, child& c, bool err) noexcept {
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
    const ssize_t n = retry_eintr([&] { return ::read(fd, buf, sizeof buf); });
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
    if (n == 0) close_output(pid, c, err);  // every writer closed it
    return;                                 // EAGAIN: all read for now
  }
}

// Writes what is left of an unended line, and closes the read end.
void fork_server_process::close_output(pid_t pid, child& c, bool err) noexcept {
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
void fork_server_process::write_line(pid_t pid, const child& c, bool err, std::string_view text, const std::string& id) noexcept {
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
void fork_server_process::flush_log() noexcept {
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
    const ssize_t w =
        retry_eintr([&] { return ::write(STDERR_FILENO, log_.data(), std::min<std::size_t>(log_.size(), PIPE_BUF)); });
    if (w <= 0) {
      log_.clear();  // stderr is broken: nothing will ever read it
      dropped_lines_ = 0;
      return;
    }
    log_.erase(0, static_cast<std::size_t>(w));
  }
}

void fork_server_process::handle(std::string_view bytes, std::vector<int>& fds) noexcept {
  request_header h;
  if (bytes.size() < sizeof h) return;
  std::memcpy(&h, bytes.data(), sizeof h);
  if (h.kind != request_kind::spawn) return;  // standbys are the zygote's to fork
  spawn_request r;
  r.request = h.request;
  r.slot = h.slot;
  r.handlers_id = h.handlers_id;
  r.handlers_fingerprint = h.fingerprint;
  r.max_body = h.max_body;
  r.memory_limit = h.memory_limit;
  r.log_level = h.log_level;
  r.protocol = h.protocol;
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
  if (r.command.empty() || r.protocol != 0)
    fork_worker(r);
  else
    exec_worker(r);
}

void fork_server_process::spawned(const spawn_request& r, pid_t pid, int out_fd, int err_fd) noexcept {
  try {
    child& c = children_[pid];
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
      // Not copied into the workers forked after it: a fork then costs nothing per
      // worker already running (with 1,024 workers, each new one would otherwise inherit
      // and unmap a thousand segments).
      c.segment_forked_away = c.segment.exclude_from_forks();
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

void fork_server_process::report_failure(std::uint64_t request, int err, const std::string& why) noexcept {
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

void fork_server_process::reap() noexcept {
  signalfd_siginfo info;
  bool terminate = false;
  while (::read(sigfd_, &info, sizeof info) == sizeof info) terminate |= info.ssi_signo == SIGTERM;
  if (terminate) shutdown(0);
  for (;;) {
    // Looked at first, reaped after: while it is a zombie its pid is still its process
    // group's id, so killing the group cannot hit a recycled pid.
    siginfo_t dead{};
    if (::waitid(P_ALL, 0, &dead, WEXITED | WNOHANG | WNOWAIT) != 0 || dead.si_pid == 0) break;
    const pid_t pid = dead.si_pid;
    const auto it = children_.find(pid);
    if (it != children_.end()) ::kill(-pid, SIGKILL);  // what it started
    int status = 0;
    rusage ru{};
    if (::wait4(pid, &status, WNOHANG, &ru) != pid) break;
    // Something a worker started outside its process group, come back to us (its parent
    // died): reaped here; ended, if still running, when we end.
    if (it == children_.end()) continue;
    child& c = it->second;
    // What it wrote last, before it died; then the pipes are closed (a process it
    // started, not dead yet, may hold them open).
    for (bool err : {false, true}) {
      if ((err ? c.err_fd : c.out_fd) >= 0) drain_output(pid, c, err);
      close_output(pid, c, err);
    }
    std::string tail = std::move(c.tail);
    children_.erase(it);
    event_header e{fork_event::kind::exited, pid, 0, status, static_cast<std::uint32_t>(tail.size()), ru.ru_maxrss};
    std::string packet;
    append(packet, e);
    packet += tail;
    if (!out_.send(sock_, std::move(packet), {})) shutdown(3);
  }
}

[[noreturn]] void fork_server_process::shutdown(int code) noexcept {
  // What the log still owes, for at most a second.
  for (int i = 0; i < 100 && !log_.empty(); ++i) {
    pollfd p{STDERR_FILENO, POLLOUT, 0};
    if (retry_eintr([&] { return ::poll(&p, 1, 10); }) < 0) break;
    flush_log();
  }
  // Our workers and whatever came back to us; what they leave in turn goes to the
  // zygote once we are gone.
  std::vector<pid_t> ours;
  try {
    for (const auto& [pid, c] : children_) ours.push_back(pid);
    for (const pid_t pid : children_of_self())
      if (children_.count(pid) == 0) ours.push_back(pid);
  } catch (...) {
  }
  for (const pid_t pid : ours) kill_with_group(pid);
  for (const pid_t pid : ours) (void)retry_eintr([&] { return ::waitpid(pid, nullptr, 0); });
  ::_exit(code);
}

[[noreturn]] void fork_server_main(int sock) noexcept { fork_server_process(sock).run(); }

}  // namespace ringmaster::detail
