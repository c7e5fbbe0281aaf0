// ringmaster/ipc/segment.hpp — the shared memory that rings live in.
//
// A segment is one mapping shared by the supervisor and its workers, with a small header
// (magic, version, size, owner pid) followed by the usable bytes. Two kinds:
//
//  * anonymous: MAP_SHARED|MAP_ANONYMOUS memory created before fork(); forked workers
//    inherit the mapping. It has no name, so nothing can leak into /dev/shm: it vanishes
//    when the last process that maps it exits.
//  * named: a POSIX shared-memory object for workers that are exec'd and must open it by
//    name. The name is "ringmaster-<owner pid>-<64 random bits>" (unpredictable, so no
//    other user can pre-create it), created exclusively with mode 0600. The creating
//    segment object owns the name and unlinks it in its destructor; sweep_stale() removes
//    names left by owners that died without unlinking (SIGKILL).
//  * fd-backed (memfd): anonymous memory reached through a file descriptor instead of a
//    name. It is what the supervisor uses for workers: the descriptor can be sent to the
//    fork server (SCM_RIGHTS) after the fork server was forked, and inherited across
//    exec by a worker executable, and like anonymous memory it has no name that could
//    leak. Boost.Interprocess has no memfd object, hence the hand-written mapping.
//
// Ownership: a segment object is a move-only handle owning its mapping (and, for the
// creator of a named segment, the name). The destructor unmaps and, for the owner of a
// name, unlinks it; it never throws. Mappings survive fork in both kinds.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <system_error>

namespace ringmaster::ipc {

/// The prefix of every named segment, after the leading slash.
inline constexpr const char* k_segment_prefix = "ringmaster-";

class segment {
 public:
  segment() noexcept;  ///< An empty handle.
  segment(segment&&) noexcept;
  segment& operator=(segment&&) noexcept;
  segment(const segment&) = delete;
  segment& operator=(const segment&) = delete;
  ~segment();  ///< Unmaps; the creator of a named segment also unlinks its name. Never throws.

  /// Anonymous shared memory of at least `size` usable bytes, zero-filled. Throws
  /// std::system_error (e.g. ENOMEM) with context.
  static segment create_anonymous(std::size_t size);
  /// A new named segment of at least `size` usable bytes, zero-filled, mode 0600, owned
  /// by this handle. Throws std::system_error naming the segment (e.g. ENOSPC when
  /// /dev/shm is full: the size is touched up front, so a too-small /dev/shm fails here
  /// rather than with SIGBUS later).
  static segment create_named(std::size_t size);
  /// A new fd-backed (memfd) segment of at least `size` usable bytes, zero-filled. The
  /// descriptor is close-on-exec; whoever passes it on clears that. Throws
  /// std::system_error (ENOMEM, EMFILE, ...).
  static segment create_fd(std::size_t size);
  /// Maps the fd-backed segment behind `fd` (received or inherited from its creator),
  /// checking its header and size like open_named. Takes ownership of `fd` on success.
  static segment map_fd(int fd, std::error_code& ec) noexcept;

  /// Opens a named segment created by another process. Refuses (errc::bad_segment) one
  /// not owned by this user, accessible by others, or without a valid header. Non-owning:
  /// the destructor unmaps but does not unlink.
  static segment open_named(const std::string& name, std::error_code& ec) noexcept;
  static segment open_named(const std::string& name);

  /// Unlinks every named ringmaster segment of this user whose owner process no longer
  /// exists. Returns how many were removed. Never throws.
  static std::size_t sweep_stale() noexcept;

  /// Keeps this mapping out of every process forked from now on (MADV_DONTFORK): a fork
  /// server that maps each worker's segment then neither copies them into every new
  /// worker nor has to unmap them there, one by one. False (errno set) if refused.
  bool exclude_from_forks() noexcept;
  /// In a process forked after exclude_from_forks(): ends this object without unmapping
  /// the mapping this process never had (its descriptor, if any, is closed).
  void end_in_fork_child() noexcept;

  /// The usable bytes: 64-byte aligned, after the segment header.
  [[nodiscard]] std::span<std::byte> bytes() const noexcept;
  [[nodiscard]] bool valid() const noexcept { return impl_ != nullptr; }
  /// The name to pass to open_named (empty for an anonymous segment).
  [[nodiscard]] const std::string& name() const noexcept;
  /// The descriptor of an fd-backed segment, -1 for the other kinds. Owned by the segment.
  [[nodiscard]] int fd() const noexcept;
  /// The pid recorded by the segment's creator.
  [[nodiscard]] std::int64_t owner_pid() const noexcept;

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace ringmaster::ipc
