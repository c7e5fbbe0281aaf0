// The fork servers: single-threaded processes, forked while the supervisor is still
// single-threaded, that do nothing but start workers on request and report their
// deaths. Forking from the multi-threaded supervisor would be unsafe (a lock held by
// another thread at fork stays locked forever in the child); forking from a clean copy
// of the program taken at supervisor construction is not.
//
// The process tree, which stays a tree (ARCHITECTURE.md, "Processes"):
//
//   supervisor -> zygote -> fork servers (the active one, the standby) -> workers
//
// The *zygote* is the one process the supervisor forks. It starts no workers; it forks
// every fork server on request (the supervisor asks it for the first two, and for each
// standby after), and is their PR_SET_CHILD_SUBREAPER: when a fork server dies, its
// workers and what they started come back to the zygote, not to init, and it kills
// them with their process groups and reaps them (every child of the zygote is ours, so
// waitpid(-1) is safe there, never in the supervisor, whose embedding program owns its
// other children). A fork server is a subreaper too: what a dead worker started, left
// in another process group, comes back to its server, which ends and reaps it.
//
// Every worker's stderr is a pipe to its server, which passes it on to its own stderr
// (the supervisor's) and keeps the last bytes: a worker that fails to start is reported
// with its own words.
//
// Protocol: one SOCK_SEQPACKET socket pair per process. The supervisor sends spawn
// requests (with the slot's segment and the dispatcher's eventfd attached as SCM_RIGHTS);
// the server answers `spawned` (with a pidfd attached) or `spawn_failed`, and sends
// `exited` (wait status and peak RSS) for every worker it reaps. To the zygote it sends
// `standby` requests, each with the new server's socket attached; the new server says
// hello on it (its pid), or the zygote says why it could not fork it.
//
// Lifetime: a server lives until its socket reaches end-of-file, which the kernel
// guarantees when the supervisor dies however it dies; it then SIGKILLs and reaps every
// worker it started and exits. Workers also carry PR_SET_PDEATHSIG(SIGKILL) against the
// server, so a killed server leaves no worker behind either. The zygote, at its socket's
// end-of-file, kills its servers, reaps everything that comes back (bounded, 5 s) and
// exits. A killed zygote takes its servers with it (PR_SET_PDEATHSIG(SIGTERM): each
// ends its workers' process groups and exits); no standby can be forked after, so the
// pools give up, as when the fork server dies with no standby left.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <deque>
#include <initializer_list>
#include <optional>
#include <string>
#include <system_error>
#include <vector>

namespace ringmaster::detail {

/// What the supervisor asks for.
struct spawn_request {
  std::uint64_t request = 0;    ///< echoed in the answer
  int slot = -1;
  std::string pool;
  std::vector<std::string> command;  ///< empty: fork and run the handlers below
  /// 0: exec `command` (a serve() worker); else fork a worker that runs `command` as its
  /// child in this program_protocol (worker/detail/adapter.hpp).
  std::uint32_t protocol = 0;
  std::uint32_t handlers_id = 0;
  std::uint64_t handlers_fingerprint = 0;
  std::size_t max_body = 0;
  std::size_t memory_limit = 0;  ///< RLIMIT_AS in bytes; 0: none
  int log_level = -1;            ///< the supervisor's spdlog level when it asked
  int segment_fd = -1;           ///< not owned; sent, then still the caller's
  int wake_fd = -1;
};

/// What the server reports.
struct fork_event {
  enum class kind : std::uint32_t { spawned = 1, spawn_failed = 2, exited = 3 };
  kind what{};
  std::uint64_t request = 0;
  pid_t pid = 0;
  int status = 0;               ///< exited: the wait status; spawn_failed: an errno value
  std::int64_t max_rss_kib = 0;  ///< exited: peak resident set size
  std::string message;          ///< spawn_failed: why; exited: the last bytes of its stderr
  int pidfd = -1;               ///< spawned: a pidfd for the worker, owned by the receiver
};

/// Packets a non-blocking socket has not taken yet, in order, with the descriptors they
/// carry (duplicates owned here, closed once sent or dropped). Both the supervisor and
/// the fork server send through one, so that neither ever blocks on the other.
class packet_queue {
 public:
  packet_queue() = default;
  packet_queue(packet_queue&& other) noexcept : q_(std::move(other.q_)) {}
  packet_queue& operator=(packet_queue&& other) noexcept;
  ~packet_queue() { clear(); }

  [[nodiscard]] bool empty() const noexcept { return q_.empty(); }
  [[nodiscard]] std::size_t size() const noexcept { return q_.size(); }
  /// Sends `bytes` (with up to two descriptors) at once if nothing waits before it and
  /// the socket takes it, else keeps it. Never blocks. False (errno set) only when the
  /// peer is gone or the packet cannot be kept.
  [[nodiscard]] bool send(int sock, std::string bytes, std::initializer_list<int> fds) noexcept;
  /// Sends what waits, in order, until the socket is full. Never blocks. False (errno
  /// set) when the peer is gone.
  [[nodiscard]] bool flush(int sock) noexcept;
  void clear() noexcept;

 private:
  struct packet {
    std::string bytes;
    int fds[2] = {-1, -1};
    std::size_t nfds = 0;
  };
  std::deque<packet> q_;
};

class fork_server {
 public:
  fork_server() = default;
  fork_server(fork_server&& other) noexcept;
  fork_server& operator=(fork_server&& other) noexcept;
  fork_server(const fork_server&) = delete;
  fork_server& operator=(const fork_server&) = delete;
  /// Closes the socket (the server kills and reaps its workers, then exits), then reaps
  /// the server if it is this process's child, waiting a bounded time.
  ~fork_server();

  /// Forks the zygote from this process (see above). Throws std::system_error.
  static fork_server start_zygote(const std::string& name);

  /// Asks the zygote to fork a fork server (see above), and waits (at most 10 s) for the
  /// server's hello, sending what waits in the queue meanwhile.
  [[nodiscard]] std::optional<fork_server> fork_standby(std::error_code& ec);
  /// The same; throws std::system_error naming `name` (the supervisor).
  fork_server fork_standby(const std::string& name);

  /// Sends a spawn request, or queues it while the server's socket is full (flush()
  /// sends it later). Never blocks; errors (the server died) as ec.
  void spawn(const spawn_request& request, std::error_code& ec) noexcept;
  /// Sends queued requests until the socket is full. Never blocks; errors as ec.
  void flush(std::error_code& ec) noexcept;
  /// Requests waiting for room in the socket.
  [[nodiscard]] bool has_queued() const noexcept { return !out_.empty(); }
  /// SIGKILLs the server (one that stopped working); its socket then reaches end-of-file.
  void kill() noexcept;
  /// The next event, if one is waiting; nullopt and ec clear if none. ec set (e.g.
  /// errc::connection_reset) when the server is gone.
  std::optional<fork_event> try_receive(std::error_code& ec) noexcept;

  /// For a server that only ever speaks to say it is gone (the standby, the zygote):
  /// reads what waits; true once its socket reached end-of-file. Never blocks.
  [[nodiscard]] bool ended() noexcept;

  [[nodiscard]] int socket_fd() const noexcept { return sock_; }
  [[nodiscard]] pid_t pid() const noexcept { return pid_; }
  [[nodiscard]] bool valid() const noexcept { return sock_ >= 0; }

 private:
  int sock_ = -1;
  pid_t pid_ = -1;
  int pidfd_ = -1;      // to wait for its exit (a fork server is our grandchild: no waitpid)
  bool child_ = false;  // forked by this process (the zygote): also reaped by it
  std::string rx_;      // receive buffer, kept at full size
  packet_queue out_;    // requests the socket did not take yet
};

/// Waits until every process of `pidfds` (-1 entries skipped) has ended, at most
/// `timeout_ms` in all however many there are (the workers of a dead server die
/// together). The count of those still running.
std::size_t wait_all_ended(const std::vector<int>& pidfds, int timeout_ms) noexcept;

/// The server's main loop, in the server process (fork_server_process.cpp). Never returns.
[[noreturn]] void fork_server_main(int sock) noexcept;
/// The zygote's main loop, in the zygote process (zygote.cpp). Never returns.
[[noreturn]] void zygote_main(int sock) noexcept;

}  // namespace ringmaster::detail
