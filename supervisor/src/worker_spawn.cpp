#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/process/v2/environment.hpp>
#include <boost/process/v2/process.hpp>
// Boost 1.81's header-only mode omits this file, which defines
// process_environment::on_setup (environment.hpp includes only detail/impl/environment.ipp).
#include <boost/process/v2/impl/environment.ipp>
#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ringmaster/worker/handlers.hpp>
#include <ringmaster/worker/detail/adapter.hpp>
#include <ringmaster/worker/detail/handlers_access.hpp>
#include <ringmaster/worker/detail/launch.hpp>

#include "fork_server_process.hpp"
#include "fork_wire.hpp"

extern char** environ;

namespace bp2 = boost::process::v2;

namespace ringmaster::detail {
namespace {

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

}  // namespace

// A pipe for a new worker's output: [read end (ours, non-blocking), write end].
bool fork_server_process::output_pipe(int (&p)[2]) noexcept {
  if (::pipe2(p, O_CLOEXEC) != 0) return false;
  ::fcntl(p[0], F_SETFL, O_NONBLOCK);
  return true;
}

// Both output pipes of a new worker: out[0], err[0] ours; out[1], err[1] its stdout and
// stderr. False (all closed, errno set) if either cannot be made.
bool fork_server_process::output_pipes(int (&out)[2], int (&err)[2]) noexcept {
  if (!output_pipe(out)) return false;
  if (output_pipe(err)) return true;
  const int e = errno;
  ::close(out[0]);
  ::close(out[1]);
  errno = e;
  return false;
}

void fork_server_process::close_pipes(int (&out)[2], int (&err)[2]) noexcept {
  for (int fd : {out[0], out[1], err[0], err[1]}) ::close(fd);
}

std::string fork_server_process::pipe_failure(int e) const {
  std::string why = std::string("cannot create the worker's output pipes: ") + std::strerror(e);
  if (e == EMFILE || e == ENFILE) {
    rlimit nofile{};
    ::getrlimit(RLIMIT_NOFILE, &nofile);
    why += " (the fork server holds 3 descriptors per worker; RLIMIT_NOFILE, ulimit -n, is " +
           std::to_string(nofile.rlim_cur) + ")";
  }
  return why;
}

void fork_server_process::fork_worker(const spawn_request& r) noexcept {
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
// are not the child's to see (a worker is untrusted). They were mapped MADV_DONTFORK
// (spawned()), so the child never had them: only the objects (and descriptors) end, at
// no cost per segment; one that could not be so marked is unmapped.
void fork_server_process::drop_mappings() noexcept {
  for (auto& [pid, c] : children_) {
    if (c.segment_forked_away)
      c.segment.end_in_fork_child();
    else
      c.segment = {};
  }
}

[[noreturn]] void fork_server_process::become_worker(const spawn_request& r) noexcept {
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
  // A user's program: this worker is its adapter, and the program its child.
  if (r.protocol != 0) ::_exit(run_adapter(launch, static_cast<program_protocol>(r.protocol), r.command));
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

void fork_server_process::exec_worker(const spawn_request& r) noexcept {
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

}  // namespace ringmaster::detail
