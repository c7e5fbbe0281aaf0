#include "child.hpp"

#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <system_error>
#include <utility>

namespace ringmaster::test {

bool exit_status::exited() const noexcept { return WIFEXITED(raw); }
int exit_status::code() const noexcept { return WIFEXITED(raw) ? WEXITSTATUS(raw) : -1; }
int exit_status::signal() const noexcept { return WIFSIGNALED(raw) ? WTERMSIG(raw) : 0; }
std::string exit_status::to_string() const {
  if (exited()) return "exit " + std::to_string(code());
  if (signal() != 0) return std::string("signal ") + ::sigabbrev_np(signal());
  return "status " + std::to_string(raw);
}

child_process::child_process(pid_t pid) : pid_(pid) {
  pidfd_ = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (pidfd_ < 0) {
    const int err = errno;
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    pid_ = -1;
    throw std::system_error(err, std::system_category(), "pidfd_open");
  }
}

child_process::child_process(child_process&& other) noexcept
    : pid_(std::exchange(other.pid_, -1)), pidfd_(std::exchange(other.pidfd_, -1)) {}

child_process& child_process::operator=(child_process&& other) noexcept {
  if (this != &other) {
    if (running()) kill_and_reap();
    pid_ = std::exchange(other.pid_, -1);
    pidfd_ = std::exchange(other.pidfd_, -1);
  }
  return *this;
}

child_process::~child_process() {
  if (running()) kill_and_reap();
}

void child_process::close_pidfd() noexcept {
  if (pidfd_ >= 0) ::close(pidfd_);
  pidfd_ = -1;
}

void child_process::kill(int sig) noexcept {
  if (running()) ::syscall(SYS_pidfd_send_signal, pidfd_, sig, nullptr, 0);
}

std::optional<exit_status> child_process::wait_for(std::chrono::milliseconds timeout) {
  if (!running()) throw std::logic_error("wait_for on a reaped child");
  pollfd p{pidfd_, POLLIN, 0};
  int r;
  do {
    r = ::poll(&p, 1, static_cast<int>(timeout.count()));
  } while (r < 0 && errno == EINTR);
  if (r == 0) return std::nullopt;
  int status = 0;
  while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
  pid_ = -1;
  close_pidfd();
  return exit_status{status};
}

exit_status child_process::kill_and_reap() noexcept {
  if (!running()) return {};
  kill(SIGKILL);
  int status = 0;
  while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
  pid_ = -1;
  close_pidfd();
  return exit_status{status};
}

child_process fork_child(const std::function<int()>& fn) {
  std::fflush(nullptr);  // or buffered output would be written twice
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) throw std::system_error(errno, std::system_category(), "fork");
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(98);  // the parent died before prctl
    int code = 99;
    try {
      code = fn();
    } catch (...) {
    }
    // _exit: never run the parent's atexit handlers or gtest's teardown in the child.
    ::_exit(code);
  }
  return child_process(pid);
}

}  // namespace ringmaster::test
