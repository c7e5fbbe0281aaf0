// The supervisor's fork servers as one object (ARCHITECTURE.md, "The standby and
// promotion"): the zygote, the active server and its standby, which server is which (an
// id that changes at each promotion), the standby's retry with a capped backoff, and the
// active server's socket in the dispatcher's epoll. Owned by the dispatcher and used on
// its thread only (its construction and destruction excepted); nothing here blocks but
// start() and the fork of a standby, which waits for the new server's hello.
//
// It knows nothing of pools or slots: it forwards spawn requests, hands back what the
// active server reported, and says when that server is gone and what its succession
// was. What a server's death means for workers and pools (their ends, giving up) is the
// dispatcher's (server_link.cpp). The decisions are pure, in policy/fork_server_succession.hpp.
//
// The destructor (or close()) closes the active server's socket, then the standby's,
// then the zygote's: each then ends, and the zygote, this process's child, is reaped.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <system_error>
#include <vector>

#include "fork_server.hpp"
#include "policy/fork_server_succession.hpp"
#include <ringmaster/supervisor/status.hpp>

namespace spdlog {
class logger;
}

namespace ringmaster::detail {

class fork_server_set {
 public:
  /// The epoll tags of the sockets it watches: the active server's, and the standby's
  /// and the zygote's (which speak only to say they are gone).
  static constexpr std::uint64_t k_active_tag = 1, k_quiet_tag = 2;

  /// What the active server reported since the last poll.
  struct report {
    std::vector<fork_event> events;  ///< in the order it sent them
    bool gone = false;               ///< its socket ended (it died): promote() next
  };

  fork_server_set(std::string name, std::shared_ptr<spdlog::logger> log);
  fork_server_set(const fork_server_set&) = delete;
  fork_server_set& operator=(const fork_server_set&) = delete;
  ~fork_server_set() { close(); }

  /// Forks the zygote and asks it for the active server and the standby. Blocks until
  /// both said hello. Throws std::system_error (naming the supervisor) on failure.
  void start();
  /// Adds the three sockets to `epoll_fd` (tags above); the set then keeps the active
  /// socket's interest there up to date.
  void watch_in(int epoll_fd);
  /// Ends them all, the zygote last (see above). Idempotent.
  void close() noexcept;

  /// Sends a spawn request to the active server, or queues it while its socket is full
  /// (see fork_server::spawn). Never blocks; ec set when the server is gone.
  void spawn(const spawn_request& r, std::error_code& ec) noexcept { active_.spawn(r, ec); }
  /// Sends what waits for the active server, then takes every event it sent. Never blocks.
  [[nodiscard]] report poll();
  /// Replaces a standby that died, and forgets a zygote that died (no standby can be
  /// forked after that). True if either happened. Never blocks but to fork a standby.
  bool tend();
  /// SIGKILLs the active server, one that stopped answering; its death follows (promote()).
  void kill_active() noexcept { active_.kill(); }
  /// After the active server died (poll() said `gone`, or kill_active()): the standby
  /// takes its place under a new id and a new standby is asked for; or, with none left,
  /// there is no active server any more. Says which (give_up: every pool is to give up).
  succession promote();
  /// Forks a standby if one is missing and can be; on failure, tries again later
  /// (deadline()), with a delay that doubles from 100 ms up to 5 s.
  void replace_standby();
  /// A standby retry that is due by `now`, done. True if one was.
  bool retry_due(std::chrono::steady_clock::time_point now);
  /// When the next standby retry is due; time_point::max() if none is.
  [[nodiscard]] std::chrono::steady_clock::time_point deadline() const noexcept { return standby_retry_at_; }
  /// Watches the active socket for room too while requests wait for it (before a sleep).
  void watch_for_room();

  [[nodiscard]] bool has_active() const noexcept { return active_.valid(); }
  /// The active server's pid (not meaningful once none is left).
  [[nodiscard]] pid_t pid() const noexcept { return active_.pid(); }
  /// The active server's id: which server started a worker (slot_state::server).
  [[nodiscard]] std::uint64_t active_id() const noexcept { return server_id_; }
  [[nodiscard]] fork_server_status status() const;

 private:
  void unwatch(const fork_server& s) noexcept;

  std::string name_;  // the supervisor's, for messages
  std::shared_ptr<spdlog::logger> log_;
  int epoll_fd_ = -1;
  fork_server zygote_;  // forks active_ and standby_: declared first, so that it ends last
  fork_server active_, standby_;
  std::uint64_t server_id_ = 1;
  // A standby that could not be forked is tried again with a capped backoff, so that one
  // failure (EAGAIN, ENOMEM) does not leave the pools one fork-server death from giving up.
  std::chrono::steady_clock::time_point standby_retry_at_ = std::chrono::steady_clock::time_point::max();
  unsigned standby_failures_ = 0;
  std::string standby_error_;
  unsigned promotions_ = 0;
  bool active_wants_out_ = false;  // the active server's socket is watched for room too
};

}  // namespace ringmaster::detail
