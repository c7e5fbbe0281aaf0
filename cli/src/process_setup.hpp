// Internal to the `ringmaster` command: what `run` and `serve` both need before and
// around a supervisor: plain stderr lines, an owned descriptor, the signal mask, the
// command's logger, the checked config, and its pools added to a supervisor.
#pragma once

#include <signal.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <memory>
#include <ringmaster/cli/config.hpp>
#include <ringmaster/supervisor/supervisor.hpp>
#include <ringmaster/worker/demo_handlers.hpp>
#include <string>
#include <utility>

namespace ringmaster::cli::detail {

// Before logging is set up (usage and config errors): plain lines on stderr.
inline void say(const std::string& line) {
  const std::string text = line + "\n";
  (void)!::write(STDERR_FILENO, text.data(), text.size());
}

class unique_fd {
 public:
  unique_fd() = default;
  explicit unique_fd(int fd) noexcept : fd_(fd) {}
  unique_fd(unique_fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  unique_fd& operator=(unique_fd&& other) noexcept {
    if (this != &other) {
      reset();
      fd_ = std::exchange(other.fd_, -1);
    }
    return *this;
  }
  ~unique_fd() { reset(); }
  void reset() noexcept {
    if (fd_ >= 0) ::close(fd_);  // never retried: the descriptor is gone either way
    fd_ = -1;
  }
  [[nodiscard]] int get() const noexcept { return fd_; }

 private:
  int fd_ = -1;
};

// SIGINT and SIGTERM are blocked in every thread and read from a signalfd by one thread
// that may do anything (no async-signal-safety constraints). SIGPIPE is blocked too, so a
// results pipe closed by its reader is an EPIPE error, handled, not a silent death.
// Blocked, not ignored: the mask is reset in every worker (the fork server does it),
// while an ignored disposition would be inherited by exec'd workers. The mask is never
// restored: a SIGPIPE or a late SIGINT pending by then must not kill the process on its
// way out, with a status that would lie about the run.
inline void block_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGPIPE);
  ::pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

inline std::shared_ptr<spdlog::logger> cli_logger() {
  if (auto l = spdlog::get("ringmaster")) return l;
  auto l = spdlog::stderr_color_mt("ringmaster");
  l->set_pattern("[%Y-%m-%d %T.%e] [%n pid %P] [%^%l%$] %v");  // as the library's loggers
  return l;
}

// Step 1 of `run` and `serve`: the config and the log level (--log-level, else the
// config's, else info), validated. False after saying every problem on stderr.
inline bool load_for_start(const std::string& path, const std::string& level_option, run_config& config,
                           std::string& level) {
  try {
    config = load_config(path);
  } catch (const config_error& e) {
    for (const auto& p : e.problems()) say(p);
    return false;
  }
  level = !level_option.empty() ? level_option : !config.log_level.empty() ? config.log_level : "info";
  if (const auto& names = log_level_names(); std::find(names.begin(), names.end(), level) == names.end()) {
    std::string list;
    for (const auto& n : names) list += (list.empty() ? "" : ", ") + n;
    say("ringmaster: --log-level: expected one of " + list + ", got \"" + level + "\"");
    return false;
  }
  return true;
}

// Adds a config's pool: forked workers running the built-in demo handlers, or the pool's
// command. Throws as supervisor::add_pool.
inline pool& add_config_pool(supervisor& sup, const pool_config& p) {
  return p.builtin() ? sup.add_pool(p.name, demo_handlers(), p.options) : sup.add_pool(p.name, p.options);
}

}  // namespace ringmaster::cli::detail
