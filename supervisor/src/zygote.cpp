// The zygote (see fork_server.hpp): the one process that forks fork servers, and the
// subreaper of everything under them.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <ringmaster/ipc/detail/eintr.hpp>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "fork_server.hpp"
#include "fork_wire.hpp"

namespace ringmaster::detail {
namespace {

class zygote {
 public:
  explicit zygote(int sock) : sock_(sock), self_(::getpid()) {}

  [[noreturn]] void run() noexcept {
    // A fork server's orphans (its workers once it died, and theirs) come back here, the
    // nearest subreaper, and not to init: they stay in the supervisor's tree, and this
    // process, which has no other children, may kill and reap whatever comes.
    ::prctl(PR_SET_CHILD_SUBREAPER, 1);
    sigfd_ = signalfd_for({SIGCHLD});
    if (sigfd_ < 0 || !send_hello(sock_)) shutdown(1);

    std::string bytes;
    std::vector<int> fds;
    for (;;) {
      pollfd polled[2] = {{sock_, POLLIN, 0}, {sigfd_, POLLIN, 0}};
      if (retry_eintr([&] { return ::poll(polled, 2, -1); }) < 0) shutdown(2);
      if (polled[1].revents & POLLIN) {
        drain_signals();
        reap();
        kill_orphans();
      }
      if (polled[0].revents & (POLLIN | POLLHUP | POLLERR)) {
        for (;;) {
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
  // The only request a zygote takes: fork a fork server that will speak on this socket.
  void handle(std::string_view bytes, const std::vector<int>& fds) noexcept {
    request_header h;
    if (bytes.size() < sizeof h) return;
    std::memcpy(&h, bytes.data(), sizeof h);
    if (h.kind == request_kind::standby && fds.size() == 1) fork_server_on(fds[0]);
  }

  void fork_server_on(int sock) noexcept {
    const pid_t pid = ::fork();
    if (pid < 0) {
      send_start_failure(sock, errno);  // in place of its hello, which the supervisor waits for
      return;
    }
    if (pid == 0) {
      // A killed zygote takes its servers with it, and each ends its workers' process
      // groups on the way (SIGTERM is its orderly shutdown): nothing of the tree is left
      // to init. Checked after prctl, in case the zygote died before it.
      ::prctl(PR_SET_PDEATHSIG, SIGTERM);
      if (::getppid() != self_) ::_exit(1);
      if (!keep_only({sock})) {
        send_start_failure(sock, errno);
        ::_exit(1);
      }
      ::setpgid(0, 0);
      sigset_t none;
      sigemptyset(&none);
      ::sigprocmask(SIG_SETMASK, &none, nullptr);
      fork_server_main(3);
    }
    try {
      servers_.insert(pid);
    } catch (...) {
      ::kill(pid, SIGKILL);  // not knowing it, we would take it for an orphan anyway
    }
  }

  void drain_signals() noexcept {
    signalfd_siginfo info;
    while (::read(sigfd_, &info, sizeof info) > 0) {
    }
  }

  // Reaps every child that ended; waitpid(-1) is safe here: every child of this process
  // is ours.
  void reap() noexcept {
    for (;;) {
      const pid_t pid = ::waitpid(-1, nullptr, WNOHANG);
      if (pid <= 0) return;
      servers_.erase(pid);
    }
  }

  // Every child that is not one of our servers came back to us from a dead one: a worker
  // (SIGKILLed already by its PR_SET_PDEATHSIG), or what a worker started. Each is killed
  // with its process group (a worker's group holds what it started); reap() takes them as
  // they end, and what they leave comes back here in turn, until nothing is left.
  void kill_orphans() noexcept {
    for (const pid_t pid : children_of_self()) {
      if (servers_.count(pid) != 0) continue;
      kill_with_group(pid);
    }
  }

  [[noreturn]] void shutdown(int code) noexcept {
    for (const pid_t pid : servers_) ::kill(pid, SIGKILL);
    servers_.clear();
    // Everything comes back here as it dies; bounded, as a supervisor waits for this
    // process to end.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    for (;;) {
      reap();
      kill_orphans();
      if (children_of_self().empty()) break;
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) break;
      pollfd p{sigfd_, POLLIN, 0};
      (void)retry_eintr([&] { return ::poll(&p, 1, static_cast<int>(std::min<long long>(left.count(), 100))); });
      drain_signals();
    }
    reap();
    ::_exit(code);
  }

  int sock_;
  pid_t self_;
  int sigfd_ = -1;
  std::set<pid_t> servers_;  // our children that are fork servers; every other is an orphan
};

}  // namespace

[[noreturn]] void zygote_main(int sock) noexcept { zygote(sock).run(); }

}  // namespace ringmaster::detail
