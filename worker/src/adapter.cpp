// A worker that runs a user's program (adapter.hpp): each job forwarded over pipes, its
// reply taken back as the job's result.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>
#include <optional>
#include <ringmaster/worker/detail/adapter.hpp>
#include <ringmaster/worker/detail/handlers_access.hpp>
#include <ringmaster/worker/handlers.hpp>
#include <stdexcept>
#include <string_view>

extern char** environ;

namespace ringmaster::detail {

const char* to_string(program_protocol p) noexcept {
  switch (p) {
    case program_protocol::jsonl: return "jsonl";
    case program_protocol::lines: return "lines";
    case program_protocol::exec: return "exec";
  }
  return "?";
}

namespace {

void close_fd(int& fd) noexcept {
  if (fd >= 0) ::close(fd);
  fd = -1;
}

// Writes all of `bytes`; false on an error (EPIPE: the reader is gone).
bool write_all(int fd, std::string_view bytes) noexcept {
  while (!bytes.empty()) {
    const ssize_t n = ::write(fd, bytes.data(), bytes.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

// The worker ends as its program ended, so that the supervisor's verdict is the
// program's: the same signal, or its exit code (0, which would read as a clean stop,
// becomes k_exit_protocol: a program must not exit while it holds a job).
[[noreturn]] void end_like(int status, const std::string& program, std::string_view while_doing) noexcept {
  if (WIFSIGNALED(status)) {
    const int sig = WTERMSIG(status);
    ::signal(sig, SIG_DFL);
    sigset_t one;
    sigemptyset(&one);
    sigaddset(&one, sig);
    ::sigprocmask(SIG_UNBLOCK, &one, nullptr);
    ::raise(sig);
  }
  const int code = WIFEXITED(status) ? WEXITSTATUS(status) : k_exit_protocol;
  std::fprintf(stderr, "ringmaster: %s exited with code %d %.*s\n", program.c_str(), code,
               static_cast<int>(while_doing.size()), while_doing.data());
  ::_exit(code == 0 ? k_exit_protocol : code);
}

// Starts `argv` with `in` as its stdin and `out` as its stdout (either -1: inherited),
// in this worker's process group (it ends with the worker) and with its stderr (which the
// fork server relays, labelled as this worker's). The pid, or -1 with errno.
pid_t start_program(const std::vector<std::string>& argv, int in, int out, int err) noexcept {
  std::vector<char*> args;
  args.reserve(argv.size() + 1);
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawnattr_t attr;
  posix_spawn_file_actions_init(&fa);
  posix_spawnattr_init(&attr);
  if (in >= 0) posix_spawn_file_actions_adddup2(&fa, in, STDIN_FILENO);
  if (out >= 0) posix_spawn_file_actions_adddup2(&fa, out, STDOUT_FILENO);
  if (err >= 0) posix_spawn_file_actions_adddup2(&fa, err, STDERR_FILENO);
  // The worker ignores SIGPIPE (a dead program is seen at its pipe's end); the program
  // gets the default back.
  sigset_t def;
  sigemptyset(&def);
  sigaddset(&def, SIGPIPE);
  posix_spawnattr_setsigdefault(&attr, &def);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF);
  pid_t pid = -1;
  const int rc = ::posix_spawnp(&pid, args[0], &fa, &attr, args.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) {
    errno = rc;
    return -1;
  }
  return pid;
}

// A pidfd of our child: its end is seen even while a process it started holds its pipes.
int pidfd_of(pid_t pid) noexcept { return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)); }

int wait_for(pid_t pid) noexcept {
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return status;
}

// What a reply line became: the result, or the program's error (kind `exception`).
struct reply {
  std::string text;
  bool error = false;
};

// A persistent program (jsonl, lines): one line per job each way, replies in order.
class line_program {
 public:
  line_program(program_protocol protocol, std::vector<std::string> argv, std::size_t max_body)
      : protocol_(protocol), argv_(std::move(argv)), max_line_(max_body + k_reply_room) {}

  void start() {
    int in[2], out[2];
    if (::pipe2(in, O_CLOEXEC) != 0) throw std::runtime_error(std::string("cannot create a pipe: ") + std::strerror(errno));
    if (::pipe2(out, O_CLOEXEC) != 0) {
      const int e = errno;
      ::close(in[0]);
      ::close(in[1]);
      throw std::runtime_error(std::string("cannot create a pipe: ") + std::strerror(e));
    }
    pid_ = start_program(argv_, in[0], out[1], -1);
    const int e = errno;
    ::close(in[0]);
    ::close(out[1]);
    to_ = in[1];
    from_ = out[0];
    if (pid_ < 0) throw std::runtime_error("cannot start " + argv_[0] + ": " + std::strerror(e));
    pidfd_ = pidfd_of(pid_);
  }

  // On stop: the program's stdin ends, and it may finish (at most 1 s: the fork server
  // ends the worker's process group, the program with it, once the worker has exited).
  void stop() noexcept {
    close_fd(to_);
    pollfd p{from_, POLLIN, 0};
    char sink[4096];
    while (::poll(&p, 1, 1000) > 0 && ::read(from_, sink, sizeof sink) > 0) {
    }
    close_fd(from_);
  }

  std::string run(const job& j) {
    // Bytes waiting before the job was written are a reply when the program held none.
    // Only what is there is read (a line it has not finished must not make us wait).
    int waiting = 0;
    if (!buffer_.empty() || (::ioctl(from_, FIONREAD, &waiting) == 0 && waiting > 0)) {
      char chunk[256];
      const ssize_t n = buffer_.empty() ? ::read(from_, chunk, sizeof chunk) : 0;
      if (n > 0) buffer_.append(chunk, static_cast<std::size_t>(n));
      broke_protocol("wrote when it held no job: " + excerpt(buffer_));
    }
    line_.clear();
    if (protocol_ == program_protocol::jsonl) {
      request_line(j);
    } else {
      if (j.payload().find('\n') != std::string_view::npos)
        throw std::runtime_error("the payload has a newline, and a lines program takes one line per job");
      line_.assign(j.payload());
    }
    line_.push_back('\n');
    if (!write_all(to_, line_)) program_died(j, false, line_.size());
    const std::size_t sent = line_.size();
    switch (read_line()) {
      case line_end::eof: program_died(j, true, sent);
      case line_end::too_long:
        throw std::runtime_error("the reply is over max_message (" + std::to_string(max_line_ - k_reply_room) + " bytes)");
      case line_end::line: break;
    }
    ++replies_;
    if (protocol_ == program_protocol::lines) return std::move(line_);
    reply r = parse_reply();
    if (r.error) throw std::runtime_error(r.text);
    return std::move(r.text);
  }

 private:
  // Room in a reply line beyond max_message for {"result": ...} around the result.
  static constexpr std::size_t k_reply_room = 64;
  enum class line_end { line, too_long, eof };

  // {"id": ..., "type": ..., "payload": ...}: a payload that is a JSON object or array
  // goes as itself, any other as a JSON string of its text.
  void request_line(const job& j) {
    nlohmann::json request{{"id", j.id()}, {"type", j.type()}};
    const std::string_view p = j.payload();
    if (!p.empty() && (p.front() == '{' || p.front() == '[') && nlohmann::json::accept(p))
      request["payload"] = nlohmann::json::parse(p);
    else
      request["payload"] = p;
    line_ = request.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  }

  reply parse_reply() {
    auto v = nlohmann::json::parse(line_, nullptr, false);
    if (v.is_discarded() || !v.is_object() || v.size() != 1 || (!v.contains("result") && !v.contains("error")))
      broke_protocol("expected {\"result\": ...} or {\"error\": \"...\"}, got " + excerpt(line_));
    const bool error = v.contains("error");
    const auto& value = error ? v["error"] : v["result"];
    reply r;
    r.error = error;
    r.text = value.is_string() ? value.get<std::string>()
                               : value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    return r;
  }

  // The next line into line_ (without its newline). A line over max_line_ is read to its
  // end and dropped, so that the next reply is still in step.
  line_end read_line() {
    line_.clear();
    bool too_long = false;
    for (;;) {
      const auto nl = buffer_.find('\n');
      const std::size_t take = nl == std::string::npos ? buffer_.size() : nl;
      if (!too_long && line_.size() + take <= max_line_)
        line_.append(buffer_, 0, take);
      else
        too_long = true;
      if (nl != std::string::npos) {
        buffer_.erase(0, nl + 1);
        if (too_long) line_.clear();
        return too_long ? line_end::too_long : line_end::line;
      }
      buffer_.clear();
      // The program's end, even if what it started still holds its stdout open: a
      // reply it wrote before it ended is in the pipe, and read first.
      pollfd p[2] = {{from_, POLLIN, 0}, {pidfd_, POLLIN, 0}};
      if (::poll(p, 2, -1) < 0) {
        if (errno == EINTR) continue;
        return line_end::eof;
      }
      if (p[0].revents == 0) {
        if (p[1].revents != 0) return line_end::eof;
        continue;
      }
      char chunk[65536];
      const ssize_t n = ::read(from_, chunk, sizeof chunk);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return line_end::eof;
      buffer_.append(chunk, static_cast<std::size_t>(n));
    }
  }

  static std::string excerpt(std::string_view s) {
    constexpr std::size_t k_max = 200;
    std::string out(s.substr(0, k_max));
    if (s.size() > k_max) out += "...";
    return out;
  }

  [[noreturn]] void broke_protocol(const std::string& why) noexcept {
    std::fprintf(stderr, "ringmaster: %s broke the %s protocol: %s\n", argv_[0].c_str(), to_string(protocol_), why.c_str());
    ::kill(pid_, SIGKILL);
    ::_exit(k_exit_protocol);
  }

  // A program that died without reading its job (its line could not be written, or all
  // `sent` bytes of it are still in the pipe) is not charged it, as a native worker is
  // not charged the jobs sent ahead to it. If that was its first job and it ended by
  // itself, it never started, and its stderr says why; SIGKILLed from outside (an
  // operator, the OOM killer; a shell wrapper reports that as exit code 137) says nothing
  // of whether it starts.
  [[noreturn]] void program_died(const job& j, bool written, std::size_t sent) noexcept {
    int left = 0;
    const bool unread = !written || (::ioctl(to_, FIONREAD, &left) == 0 && static_cast<std::size_t>(left) == sent);
    close_fd(to_);
    const int status = wait_for(pid_);
    const bool killed = (WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) ||
                        (WIFEXITED(status) && WEXITSTATUS(status) == 128 + SIGKILL);
    if (unread) release_current_job();
    if (replies_ == 0 && unread && !killed) ::_exit(k_exit_program_not_started);
    end_like(status, argv_[0], "while it held job " + std::string(j.id()));
  }

  program_protocol protocol_;
  std::vector<std::string> argv_;
  std::size_t max_line_;
  pid_t pid_ = -1;
  int pidfd_ = -1;
  std::uint64_t replies_ = 0;
  int to_ = -1;    // the program's stdin
  int from_ = -1;  // its stdout
  std::string buffer_;  // read past the last line
  std::string line_;    // the line being written or read
};

// exec: one process per job. `{}` in an argument is the payload's text (no shell); the
// text, and a newline, are its stdin; its stdout, without one final newline, the result.
class exec_program {
 public:
  exec_program(std::vector<std::string> argv, std::size_t max_body) : argv_(std::move(argv)), max_body_(max_body) {}

  std::string run(const job& j) {
    std::vector<std::string> argv = argv_;
    for (auto& a : argv)
      for (auto at = a.find("{}"); at != std::string::npos; at = a.find("{}", at + j.payload().size()))
        a.replace(at, 2, j.payload());
    int in[2] = {-1, -1}, out[2] = {-1, -1}, err[2] = {-1, -1};
    if (::pipe2(in, O_CLOEXEC) != 0 || ::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(err, O_CLOEXEC) != 0) {
      const int e = errno;
      for (int fd : {in[0], in[1], out[0], out[1], err[0], err[1]})
        if (fd >= 0) ::close(fd);
      throw std::runtime_error(std::string("cannot create a pipe: ") + std::strerror(e));
    }
    const pid_t pid = start_program(argv, in[0], out[1], err[1]);
    const int e = errno;
    ::close(in[0]);
    ::close(out[1]);
    ::close(err[1]);
    if (pid < 0) {
      ::close(in[1]);
      ::close(out[0]);
      ::close(err[0]);
      throw std::runtime_error("cannot start " + argv_[0] + ": " + std::strerror(e));
    }
    std::string input(j.payload());
    input.push_back('\n');
    std::string result, errors;
    bool too_long = false;
    const int pidfd = pidfd_of(pid);
    exchange(in[1], input, out[0], result, too_long, err[0], errors, pidfd);
    if (pidfd >= 0) ::close(pidfd);
    const int status = wait_for(pid);
    if (WIFSIGNALED(status)) end_like(status, argv_[0], "");
    const int code = WEXITSTATUS(status);
    if (code != 0) {
      while (!errors.empty() && errors.back() == '\n') errors.pop_back();
      const auto nl = errors.rfind('\n');
      throw std::runtime_error("exit status " + std::to_string(code) + ": " +
                               (nl == std::string::npos ? errors : errors.substr(nl + 1)));
    }
    if (too_long) throw std::runtime_error("its output is over max_message (" + std::to_string(max_body_) + " bytes)");
    if (!result.empty() && result.back() == '\n') result.pop_back();
    return result;
  }

 private:
  // Writes `input` to `to` while reading `from` (at most max_body_ + 1 bytes kept) and
  // `errors_from` (its last bytes kept, and each chunk passed on to this worker's stderr,
  // which the fork server labels), until both end: no pipe can fill up and stall the
  // other.
  // Once the process has ended (`pidfd`), what is left in the pipes is read and the rest
  // not waited for: a process it started may hold them open.
  void exchange(int to, std::string_view input, int from, std::string& out, bool& too_long, int errors_from,
                std::string& errors, int pidfd) const {
    ::fcntl(to, F_SETFL, O_NONBLOCK);
    pollfd fds[4] = {{from, POLLIN, 0}, {errors_from, POLLIN, 0}, {input.empty() ? -1 : to, POLLOUT, 0}, {pidfd, POLLIN, 0}};
    if (input.empty()) ::close(to);
    char chunk[65536];
    bool ended = false;
    while (fds[0].fd >= 0 || fds[1].fd >= 0) {
      const int ready = ::poll(fds, 4, ended ? 0 : -1);
      if (ready < 0) {
        if (errno == EINTR) continue;
        break;
      }
      if (ready == 0) break;  // ended, and nothing left to read
      if (fds[3].fd >= 0 && fds[3].revents) {
        ended = true;
        fds[3].fd = -1;
      }
      if (fds[2].fd >= 0 && fds[2].revents) {
        const ssize_t n = ::write(to, input.data(), input.size());
        if (n > 0) input.remove_prefix(static_cast<std::size_t>(n));
        if ((n < 0 && errno != EAGAIN && errno != EINTR) || input.empty()) {
          ::close(to);
          fds[2].fd = -1;
        }
      }
      for (int i = 0; i < 2; ++i) {
        if (fds[i].fd < 0 || !fds[i].revents) continue;
        const ssize_t n = ::read(fds[i].fd, chunk, sizeof chunk);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
          ::close(fds[i].fd);
          fds[i].fd = -1;
          continue;
        }
        const std::string_view got(chunk, static_cast<std::size_t>(n));
        if (i == 0) {
          if (out.size() + got.size() <= max_body_ + 1)
            out += got;
          else
            too_long = true;
        } else {
          (void)write_all(STDERR_FILENO, got);
          errors += got;
          constexpr std::size_t k_tail = 4096;
          if (errors.size() > 2 * k_tail) errors.erase(0, errors.size() - k_tail);
        }
      }
    }
    if (fds[2].fd >= 0) ::close(to);
    for (int i = 0; i < 2; ++i)
      if (fds[i].fd >= 0) ::close(fds[i].fd);
    // One final newline is dropped from the result, so a result of max_body_ bytes and
    // its newline is within bounds.
    if (out.size() > max_body_ && !(out.size() == max_body_ + 1 && out.back() == '\n')) too_long = true;
  }

  std::vector<std::string> argv_;
  std::size_t max_body_;
};

}  // namespace

int run_adapter(const worker_launch& launch, program_protocol protocol, const std::vector<std::string>& command) noexcept {
  try {
    // The slot's segment and the dispatcher's eventfd are the worker's, not the program's.
    for (int fd : {launch.segment_fd, launch.wake_fd}) ::fcntl(fd, F_SETFD, FD_CLOEXEC);
    ::signal(SIGPIPE, SIG_IGN);
    handlers h;
    std::optional<line_program> persistent;
    std::optional<exec_program> per_job;
    if (protocol == program_protocol::exec) {
      per_job.emplace(command, launch.max_body);
      handlers_access::catch_all(h, [&](job& j) { return per_job->run(j); });
    } else {
      persistent.emplace(protocol, command, launch.max_body);
      // Started before the worker is ready: a program that cannot be started is a start
      // failure, in its words.
      h.on_start([&](int) { persistent->start(); });
      h.on_stop([&](int) { persistent->stop(); });
      handlers_access::catch_all(h, [&](job& j) { return persistent->run(j); });
    }
    return run_worker(launch, &h, {});
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ringmaster worker: %s\n", e.what());
    return k_exit_cannot_serve;
  }
}

}  // namespace ringmaster::detail
