// ringmaster/ipc/errc.hpp — the error codes of the ipc layer.
//
// OS failures are reported as std::error_code(errno, std::system_category()); failures
// that are ringmaster's own use ringmaster::ipc::errc in ipc_category(). `empty` and
// `full` are the non-blocking answers of try_* calls (like Asio's would_block): expected,
// cheap, and never logged. `corrupt` means the peer broke the ring protocol (a frame or an
// index out of bounds): the caller should treat the peer as hostile or broken, kill it and
// reset the ring.
#pragma once

#include <string>
#include <system_error>

namespace ringmaster::ipc {

enum class errc {
  empty = 1,           ///< try_read: no whole message is published yet.
  full,                ///< try_write: not enough free space for this message right now.
  message_too_large,   ///< the message is longer than the ring's max_message.
  corrupt,             ///< an index, length or sequence number read from shared memory is invalid.
  timed_out,           ///< a blocking call reached its deadline.
  bad_layout,          ///< attach: the region is not a ring of this version and these options.
  in_use,              ///< attach: the ring carries a previous peer's traffic; reset() it first.
  bad_options,         ///< options out of range (capacity not a power of two, message too large...).
  bad_segment,         ///< a named segment has the wrong owner, header or size.
};

/// The category of errc. Its name is "ringmaster.ipc".
const std::error_category& ipc_category() noexcept;

inline std::error_code make_error_code(errc e) noexcept {
  return {static_cast<int>(e), ipc_category()};
}

}  // namespace ringmaster::ipc

template <>
struct std::is_error_code_enum<ringmaster::ipc::errc> : std::true_type {};
