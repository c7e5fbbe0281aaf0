#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <ringmaster/worker/detail/launch.hpp>
#include <ringmaster/worker/serve.hpp>

namespace ringmaster {
namespace detail {

std::string worker_launch::to_env() const {
  return "fd=" + std::to_string(segment_fd) + " wake=" + std::to_string(wake_fd) + " slot=" + std::to_string(slot) +
         " max_body=" + std::to_string(max_body) + " log=" + std::to_string(log_level) + " pool=" + pool;
}

std::optional<worker_launch> worker_launch::from_env(std::string_view text, std::string& error) {
  worker_launch l;
  bool have_fd = false, have_wake = false, have_slot = false, have_body = false, have_pool = false;
  while (!text.empty()) {
    const auto eq = text.find('=');
    if (eq == std::string_view::npos) {
      error = "expected key=value in '" + std::string(text) + "'";
      return std::nullopt;
    }
    const auto key = text.substr(0, eq);
    text.remove_prefix(eq + 1);
    if (key == "pool") {  // last, and may hold anything but a newline
      l.pool = std::string(text);
      have_pool = true;
      break;
    }
    const auto end = std::min(text.find(' '), text.size());
    const auto value = text.substr(0, end);
    text.remove_prefix(std::min(end + 1, text.size()));
    long long n = 0;
    auto [p, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
    if (ec != std::errc{} || p != value.data() + value.size() || n < -1) {
      error = "bad number for " + std::string(key) + ": '" + std::string(value) + "'";
      return std::nullopt;
    }
    if (key == "fd") l.segment_fd = static_cast<int>(n), have_fd = true;
    else if (key == "wake") l.wake_fd = static_cast<int>(n), have_wake = true;
    else if (key == "slot") l.slot = static_cast<int>(n), have_slot = true;
    else if (key == "max_body") l.max_body = static_cast<std::size_t>(n), have_body = true;
    else if (key == "log") l.log_level = static_cast<int>(n);
    else {
      error = "unknown key '" + std::string(key) + "'";
      return std::nullopt;
    }
  }
  if (!(have_fd && have_wake && have_slot && have_body && have_pool)) {
    error = "needs fd, wake, slot, max_body and pool";
    return std::nullopt;
  }
  return l;
}

int launch_from_environment(const char* program, const std::vector<std::string>& names, worker_launch& out) noexcept {
  const char* env = std::getenv(k_launch_env);
  if (env == nullptr) {
    std::fprintf(stderr,
                 "%s: a ringmaster worker; a supervisor runs it (a pool with command = [\"%s\"]).\n"
                 "job types served:",
                 program, program);
    for (const auto& n : names) std::fprintf(stderr, " %s", n.c_str());
    std::fprintf(stderr, "\n");
    return k_exit_not_launched;
  }
  std::string error;
  try {
    auto launch = worker_launch::from_env(env, error);
    if (!launch) {
      std::fprintf(stderr, "ringmaster worker: malformed %s: %s\n", k_launch_env, error.c_str());
      return k_exit_cannot_serve;
    }
    out = std::move(*launch);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ringmaster worker: %s\n", e.what());
    return k_exit_cannot_serve;
  }
  // The launcher set PR_SET_PDEATHSIG before exec; it survives exec for a non-setuid
  // program. Nothing else to do here.
  ::unsetenv(k_launch_env);  // not inherited by whatever the handlers start
  return 0;
}

}  // namespace detail

int serve(int argc, char** argv, const handlers& h) noexcept {
  detail::worker_launch launch;
  try {
    if (int code = detail::launch_from_environment(argc > 0 ? argv[0] : "worker", h.names(), launch)) return code;
  } catch (const std::exception& e) {  // names() allocates
    std::fprintf(stderr, "ringmaster worker: %s\n", e.what());
    return detail::k_exit_cannot_serve;
  }
  return detail::run_worker(launch, &h, {});
}

}  // namespace ringmaster
