// The fork servers' wire: the packets the supervisor, the zygote and the fork servers
// send each other over their SOCK_SEQPACKET sockets (a fixed header, then bytes, with up
// to two descriptors attached as SCM_RIGHTS), and the small process-setup helpers that
// every process forked on that side shares. Private to the supervisor library.
//
// Every call here is non-blocking and async-signal-safe enough for a freshly forked
// child: no locks, no allocation beyond the strings the caller hands in.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

#include "fork_server.hpp"

namespace ringmaster::detail {

enum class request_kind : std::uint32_t { spawn = 1, standby = 2 };

struct request_header {
  request_kind kind;
  std::int32_t slot;
  std::uint64_t request;
  std::uint64_t fingerprint;
  std::uint64_t max_body;
  std::uint64_t memory_limit;
  std::uint32_t handlers_id;
  std::uint32_t argc;
  std::uint32_t pool_len;
  std::int32_t log_level;
  std::uint32_t protocol;
  std::uint32_t reserved;
};

struct event_header {
  fork_event::kind what;
  std::int32_t pid;
  std::uint64_t request;
  std::int32_t status;
  std::uint32_t message_len;
  std::int64_t max_rss_kib;
};

constexpr std::size_t k_max_packet = 64 << 10;

/// sendmsg of one packet with up to two descriptors attached. Never blocks: false with
/// EAGAIN when the peer's queue is full (packet_queue keeps it for later); false with
/// EPIPE, not SIGPIPE, when the peer is gone.
bool send_packet(int sock, const std::string& bytes, const int* fds, std::size_t nfds) noexcept;
bool send_packet(int sock, const std::string& bytes, std::initializer_list<int> fds) noexcept;
/// recvmsg of one packet with its descriptors (close-on-exec). The byte count, 0 at
/// end-of-file, -1 with errno on error (EAGAIN when nothing waits and `dontwait`).
ssize_t recv_packet(int sock, std::string& bytes, std::vector<int>& fds, bool dontwait) noexcept;

template <class T>
void append(std::string& out, const T& value) {
  out.append(reinterpret_cast<const char*>(&value), sizeof value);
}

/// A new fork server's (or the zygote's) first packet, its pid: the supervisor learns a
/// standby's pid from it. Also puts the socket in non-blocking mode.
bool send_hello(int sock) noexcept;
/// Blocks `signals` and gives a non-blocking signalfd for them (-1, errno set, on
/// failure): how a single-threaded process of ours waits for them in its poll loop.
int signalfd_for(std::initializer_list<int> signals) noexcept;
/// Sends, in place of a new fork server's hello, that it could not be made (`err`, an
/// errno value): the side waiting for the hello reports why.
void send_start_failure(int sock, int err) noexcept;

void close_all(std::vector<int>& fds) noexcept;
int pidfd_open(pid_t pid) noexcept;
/// Puts `keep` (at most four) at descriptors 3, 4, ... and closes every other descriptor
/// above 2. False, errno set, when a descriptor cannot be made.
bool keep_only(std::initializer_list<int> keep) noexcept;
/// This process's children (zombies included), as /proc says; for a single-threaded
/// process (the zygote, a fork server), whose children are all its one thread's.
std::vector<pid_t> children_of_self();
/// SIGKILLs `pid` and its process group, unless that group is the caller's own.
void kill_with_group(pid_t pid) noexcept;

/// For an error that may be the descriptor limit: " (RLIMIT_NOFILE, ulimit -n, is N)".
std::string nofile_hint(int err);

}  // namespace ringmaster::detail
