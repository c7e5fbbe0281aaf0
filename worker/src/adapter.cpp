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

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>
#include <deque>
#include <ringmaster/worker/detail/adapter.hpp>
#include <ringmaster/worker/detail/runtime.hpp>
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

// A persistent program (jsonl, lines): one line per job each way, replies in order. The
// lines of the jobs the supervisor sent ahead go to the program at once (at most
// k_window of them, k_ahead_bytes not yet read by it), so that it goes from one job to
// the next without waiting for this worker; the first job without a reply is the one it
// runs, the one charged if it dies.
class line_program {
 public:
  line_program(worker_runtime& rt, program_protocol protocol, std::vector<std::string> argv, std::size_t max_body)
      : rt_(rt), protocol_(protocol), argv_(std::move(argv)), max_line_(max_body + k_reply_room) {}

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
    // Our end of its stdin never blocks: a program that writes a long reply while we
    // write it the next job must not stall us both.
    ::fcntl(to_, F_SETFL, O_NONBLOCK);
    pidfd_ = pidfd_of(pid_);
  }

  // Serves jobs until told to stop: the exit code.
  int serve() {
    worker_runtime& rt = rt_;
    deferred_message m;
    for (;;) {
      // Take what the supervisor has sent (waiting for a job only when none is held).
      while (!rt.stopped() && rt.held() < k_window && out_.size() < k_ahead_bytes) {
        if (rt.held() == 0) check_silent();
        const auto got = rt.take_job(m, rt.held() == 0);
        if (got == worker_runtime::taken::broken) return k_exit_protocol;
        if (got != worker_runtime::taken::job) break;
        send(m);
      }
      if (rt.held() == 0) {
        if (!rt.stopped()) return k_exit_protocol;
        stop();
        return rt.finish();
      }
      // The first held job: failed before it was sent, or answered by the next line.
      sent_job& front = sent_.front();
      if (!front.failed.empty()) {
        const std::string why = std::move(front.failed);
        sent_.pop_front();
        if (!rt.complete(error_kind::exception, why, false)) return k_exit_protocol;
        continue;
      }
      const line_end end = read_line();
      if (end == line_end::eof) program_died(front.start);
      ++replies_;
      sent_.pop_front();
      // More replies already read go out with this one (one publication, one wake-up).
      const bool more = buffer_.find('\n') != std::string::npos;
      bool ok = true;
      if (end == line_end::too_long) {
        ok = rt.complete(error_kind::exception,
                         "the reply is over max_message (" + std::to_string(max_line_ - k_reply_room) + " bytes)", !more);
      } else if (protocol_ == program_protocol::lines) {
        ok = rt.complete(error_kind::none, line_, !more);
      } else {
        reply r = parse_reply(rt.running_id());
        ok = rt.complete(r.error ? error_kind::exception : error_kind::none, r.text, !more);
      }
      if (!ok) return k_exit_protocol;
    }
  }

 private:
  // Room in a reply line beyond max_message for {"result": ...} around the result.
  static constexpr std::size_t k_reply_room = 64;
  // Jobs sent ahead to the program, and bytes of them waiting for it to read.
  static constexpr std::size_t k_window = 64;
  static constexpr std::size_t k_ahead_bytes = 64 * 1024;
  enum class line_end { line, too_long, eof };

  // A held job (the runtime holds them in the same order): its line went to the program
  // (`start`: where it begins in the bytes written to its stdin), or it failed before
  // (`failed`: why; answered in its turn).
  struct sent_job {
    std::uint64_t start = 0;
    std::string failed;
  };

  // Queues the job's line for the program's stdin.
  void send(const deferred_message& m) {
    sent_job s{.start = queued_, .failed = {}};
    const std::size_t before = out_.size();
    if (protocol_ == program_protocol::jsonl) {
      append_request(m);
    } else if (m.body.find('\n') != std::string::npos) {
      s.failed = "the payload has a newline, and a lines program takes one line per job";
    } else {
      out_ += m.body;
    }
    if (s.failed.empty()) out_.push_back('\n');
    queued_ += out_.size() - before;
    sent_.push_back(std::move(s));
  }

  // {"id": ..., "type": ..., "payload": ...}: a payload that is a JSON object or array
  // goes as itself, any other as a JSON string of its text.
  void append_request(const deferred_message& m) {
    nlohmann::json request{{"id", m.id}, {"type", m.job_type}};
    const std::string_view p = m.body;
    if (!p.empty() && (p.front() == '{' || p.front() == '[') && nlohmann::json::accept(p))
      request["payload"] = nlohmann::json::parse(p);
    else
      request["payload"] = p;
    out_ += request.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  }

  // Before a job is taken while none is held: bytes waiting are a reply when the program
  // held no job. Only what is there is read (a line it has not finished must not make
  // us wait).
  void check_silent() {
    int waiting = 0;
    if (!buffer_.empty() || (::ioctl(from_, FIONREAD, &waiting) == 0 && waiting > 0)) {
      char chunk[256];
      const ssize_t n = buffer_.empty() ? ::read(from_, chunk, sizeof chunk) : 0;
      if (n > 0) buffer_.append(chunk, static_cast<std::size_t>(n));
      broke_protocol("wrote when it held no job: " + excerpt(buffer_));
    }
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

  // {"result": ...} or {"error": "..."}, and optionally "id": the job's id, which makes
  // a reply out of step (an extra line for a job before) a protocol violation.
  reply parse_reply(const std::string& id) {
    auto v = nlohmann::json::parse(line_, nullptr, false);
    const bool has_id = v.is_object() && v.contains("id");
    if (v.is_discarded() || !v.is_object() || v.size() != (has_id ? 2u : 1u) ||
        (v.contains("result") == v.contains("error")))
      broke_protocol("expected {\"result\": ...} or {\"error\": \"...\"}, got " + excerpt(line_));
    if (has_id && (!v["id"].is_string() || v["id"].get_ref<const std::string&>() != id))
      broke_protocol("replied for id " + v["id"].dump() + " when job " + id + " was due: " + excerpt(line_));
    const bool error = v.contains("error");
    const auto& value = error ? v["error"] : v["result"];
    reply r;
    r.error = error;
    r.text = value.is_string() ? value.get<std::string>()
                               : value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    return r;
  }

  // Writes what the program's stdin takes now of the lines queued; false once it is gone.
  bool write_some() noexcept {
    while (!out_.empty()) {
      const ssize_t n = ::write(to_, out_.data() + out_at_, out_.size() - out_at_);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && errno == EAGAIN) break;
      if (n <= 0) return false;
      out_at_ += static_cast<std::size_t>(n);
      written_ += static_cast<std::uint64_t>(n);
      if (out_at_ == out_.size()) {
        out_.clear();
        out_at_ = 0;
      }
    }
    if (out_at_ > 0 && out_at_ >= out_.size() / 2) {
      out_.erase(0, out_at_);
      out_at_ = 0;
    }
    return true;
  }

  // The next line into line_ (without its newline), writing the queued lines meanwhile.
  // A line over max_line_ is read to its end and dropped, so that the next reply is still
  // in step. Staged results are published before any wait.
  line_end read_line() {
    line_.clear();
    bool too_long = false;
    bool stdin_gone = false;
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
      if (!stdin_gone && !write_some()) stdin_gone = true;  // it died, or closed its stdin: its replies tell
      rt_.publish();
      // The program's end, even if what it started still holds its stdout open: a
      // reply it wrote before it ended is in the pipe, and read first.
      pollfd p[3] = {{from_, POLLIN, 0}, {pidfd_, POLLIN, 0}, {stdin_gone || out_.empty() ? -1 : to_, POLLOUT, 0}};
      if (::poll(p, 3, -1) < 0) {
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

  // The results already answered go out first: they are the program's, and must not be
  // run again.
  [[noreturn]] void broke_protocol(const std::string& why) noexcept {
    rt_.publish();
    std::fprintf(stderr, "ringmaster: %s broke the %s protocol: %s\n", argv_[0].c_str(), to_string(protocol_), why.c_str());
    ::kill(pid_, SIGKILL);
    ::_exit(k_exit_protocol);
  }

  // A program that died before it read any of the running job's line (still queued here,
  // or in the pipe) is not charged it, as a native worker is not charged the jobs sent
  // ahead to it. If that was its first job and it ended by itself, it never started, and
  // its stderr says why; SIGKILLed from outside (an operator, the OOM killer; a shell
  // wrapper reports that as exit code 137) says nothing of whether it starts.
  [[noreturn]] void program_died(std::uint64_t running_start) noexcept {
    int in_pipe = 0;
    if (::ioctl(to_, FIONREAD, &in_pipe) != 0) in_pipe = 0;
    const std::uint64_t read_by_program = written_ - static_cast<std::uint64_t>(std::max(in_pipe, 0));
    const bool unread = read_by_program <= running_start;
    close_fd(to_);
    const int status = wait_for(pid_);
    const bool killed = (WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) ||
                        (WIFEXITED(status) && WEXITSTATUS(status) == 128 + SIGKILL);
    rt_.publish();
    if (unread) release_current_job();
    if (replies_ == 0 && unread && !killed) ::_exit(k_exit_program_not_started);
    end_like(status, argv_[0], "while it held job " + rt_.running_id());
  }

  worker_runtime& rt_;
  program_protocol protocol_;
  std::vector<std::string> argv_;
  std::size_t max_line_;
  pid_t pid_ = -1;
  int pidfd_ = -1;
  std::uint64_t replies_ = 0;
  int to_ = -1;    // the program's stdin
  int from_ = -1;  // its stdout
  std::deque<sent_job> sent_;  // the held jobs, in order: the running one first
  std::string out_;            // lines queued for its stdin, written from out_at_
  std::size_t out_at_ = 0;
  std::uint64_t queued_ = 0;   // bytes ever queued for its stdin
  std::uint64_t written_ = 0;  // bytes ever written to it
  std::string buffer_;         // read past the last line
  std::string line_;           // the reply being read
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
    if (protocol == program_protocol::exec) {
      handlers h;
      exec_program per_job(command, launch.max_body);
      handlers_access::catch_all(h, [&](job& j) { return per_job.run(j); });
      return run_worker(launch, &h, {});
    }
    int code = 0;
    auto rt = worker_runtime::open(launch, code);
    if (!rt) return code;
    line_program program(*rt, protocol, command, launch.max_body);
    // Started before the worker is ready: a program that cannot be started is a start
    // failure, in its words.
    try {
      program.start();
    } catch (const std::exception& e) {
      rt->fatal(std::string("on_start failed: ") + e.what());
      return k_exit_cannot_serve;
    }
    rt->ready({});  // no job types of its own: the pool's config says what it serves
    return program.serve();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ringmaster worker: %s\n", e.what());
    return k_exit_cannot_serve;
  }
}

}  // namespace ringmaster::detail
