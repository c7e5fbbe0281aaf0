// tests/helpers/child.hpp — a forked child process for tests, reaped no matter what.
//
// fork_child(fn) runs fn in a child that exits with fn's return value (or 99 if fn
// throws). The handle is move-only; its destructor SIGKILLs and reaps a child still
// running, so a failing assertion never leaves a process behind. Waiting uses a pidfd
// and poll(), so waits are bounded and exact (no sleep loops).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <optional>
#include <string>

namespace ringmaster::test {

/// How a child ended, as waitpid reports it.
struct exit_status {
  int raw = 0;
  [[nodiscard]] bool exited() const noexcept;
  [[nodiscard]] int code() const noexcept;  ///< exit code, or -1 if killed by a signal
  [[nodiscard]] int signal() const noexcept;  ///< terminating signal, or 0
  [[nodiscard]] std::string to_string() const;
};

class child_process {
 public:
  child_process() = default;
  explicit child_process(pid_t pid);
  child_process(child_process&& other) noexcept;
  child_process& operator=(child_process&& other) noexcept;
  child_process(const child_process&) = delete;
  child_process& operator=(const child_process&) = delete;
  ~child_process();  ///< SIGKILL and reap if still running.

  [[nodiscard]] pid_t pid() const noexcept { return pid_; }
  [[nodiscard]] bool running() const noexcept { return pid_ > 0; }
  /// Sends `sig`; no-op if already reaped.
  void kill(int sig) noexcept;
  /// Waits up to `timeout` for the child to end and reaps it; nullopt on timeout.
  std::optional<exit_status> wait_for(std::chrono::milliseconds timeout);
  /// SIGKILL and reap. Returns how it ended.
  exit_status kill_and_reap() noexcept;

 private:
  void close_pidfd() noexcept;
  pid_t pid_ = -1;
  int pidfd_ = -1;
};

/// Forks a child that runs `fn` and _exit()s with its result (99 if it throws). The child
/// gets PR_SET_PDEATHSIG(SIGKILL), so it dies with the test process.
child_process fork_child(const std::function<int()>& fn);

}  // namespace ringmaster::test
