// Internal to `ringmaster serve`: the socket's place on disk. Its directory must be this
// user's and closed to others; PATH.lock, held for the server's whole life, decides which
// process may remove a socket left at PATH, bind one there, and remove it at the end.
#pragma once

#include <string>

#include "process_setup.hpp"

namespace ringmaster::cli::detail {

// PATH.lock, locked (flock) for the server's whole life: only the process holding it may
// remove a socket left at PATH or bind one there, and remove it at the end. Without it,
// two servers started at once both found no socket, and the one whose bind failed then
// removed the winner's (or took a socket bound but not yet listening for a stale one).
class socket_lock {
 public:
  socket_lock() = default;
  socket_lock(const socket_lock&) = delete;
  socket_lock& operator=(const socket_lock&) = delete;
  ~socket_lock() { release(); }

  /// Takes the lock of `socket` without waiting: "" or what is wrong (another server has it).
  std::string take(const std::string& socket);
  /// Removes the lock file while still holding it (so nobody locks the file being
  /// removed and believes it holds the lock), then lets go. Async-signal-safe.
  void release() noexcept;

 private:
  std::string name_;
  unique_fd fd_;
};

/// The socket's directory must be this user's and closed to others (anyone who can write
/// to it could replace the socket); it is created 0700 when missing, with its parents.
/// Takes `lock` before touching the socket's path; a socket left there by a server that
/// is gone is removed. "" or the problem, worded for --socket.
[[nodiscard]] std::string check_socket_place(const std::string& path, socket_lock& lock);

}  // namespace ringmaster::cli::detail
