// ringmaster/ipc/ring.hpp — a crash-safe single-producer/single-consumer message ring in
// shared memory.
//
// A ring is a region of shared memory (see segment.hpp) holding a header and a power-of-
// two byte buffer. One process writes through a ring_writer, one reads through a
// ring_reader; neither takes a lock. Messages are variable-length byte strings of up to
// `max_message` bytes, each stored as one contiguous frame:
//
//     [ u32 length | u32 sequence | payload ... | pad to 8 ]
//
// A frame that would cross the end of the buffer is preceded by a wrap marker, so a
// reader always sees a message as one contiguous span (no copy on read).
//
// Crash safety. Each index has one writer: `head` (bytes published) is stored only by the
// writer, `tail` (bytes released) only by the reader. A message becomes visible by one
// aligned release store of `head` after all its bytes are written, so a writer killed at
// any instruction leaves either no message or a whole one; a reader killed at any
// instruction leaves at most some messages unreleased. Waiting uses owner-less doorbells
// (doorbell.hpp). Nothing a dead peer leaves behind can block the survivor.
//
// Distrust. Every index, length and sequence number read from shared memory is checked
// against the handle's own private copies of the ring's geometry before use; a violation
// is reported as errc::corrupt and nothing outside the buffer is ever read or written.
// The header's copy of the geometry is checked once, at attach, and never trusted again.
//
// Recovery. After the peer died (and was reaped), the survivor calls reset(): indices and
// doorbells return to zero and the generation number is bumped, so a replacement that
// attaches afterwards starts from a clean ring and can prove (by the generation it saw)
// that it attached after the reset.
//
// Handles are move-only views; they do not own the memory. Destroying one does nothing to
// the ring. A handle is used by one thread at a time.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <span>
#include <system_error>
#include <utility>

#include <ringmaster/ipc/doorbell.hpp>
#include <ringmaster/ipc/errc.hpp>

namespace ringmaster::ipc {

/// The geometry of a ring. Both sides must attach with the same options.
struct ring_options {
  /// Bytes of message storage: a power of two, at least 256.
  std::size_t capacity = std::size_t{1} << 20;
  /// Largest message in bytes; at most capacity / 2 - 8, so that any message always fits
  /// once the reader has caught up.
  std::size_t max_message = std::size_t{64} << 10;
};

/// Bytes of frame header before each payload.
inline constexpr std::size_t k_frame_header = 8;
/// Every frame starts at a multiple of this.
inline constexpr std::size_t k_frame_align = 8;
/// A writer past this offset with a small frame (at most an eighth of it) goes back to
/// the start when the reader has taken everything published (a wrap marker, which every
/// reader already follows), so that light traffic keeps to the same first pages of a
/// large buffer: fewer pages resident, and warm in the caches. Until the reader's next
/// read the skipped rest counts against the room, which is then at least this much.
inline constexpr std::size_t k_ring_working_set = std::size_t{64} << 10;

namespace detail {

inline constexpr std::uint64_t k_ring_magic = 0x676e6972'4d52'0001;  // "RMring" v1
inline constexpr std::uint32_t k_ring_version = 1;
inline constexpr std::uint32_t k_wrap_marker = 0xffff'ffffu;

/// The shared-memory header. Hot fields sit on separate cache lines so that the writer's
/// stores to `head` and the reader's stores to `tail` do not invalidate each other's line.
struct ring_header {
  std::uint64_t magic;
  std::uint32_t version;
  std::uint32_t reserved;
  std::uint64_t capacity;
  std::uint64_t max_message;
  alignas(64) std::atomic<std::uint64_t> generation;
  alignas(64) std::atomic<std::uint64_t> head;  // written by the writer only
  doorbell_word readable;                        // the reader sleeps here
  alignas(64) std::atomic<std::uint64_t> tail;  // written by the reader only
  doorbell_word writable;                        // the writer sleeps here
};
// The buffer's `capacity` bytes follow the header.
inline constexpr std::size_t k_ring_data_offset = (sizeof(ring_header) + 63) & ~std::size_t{63};

constexpr std::size_t frame_size(std::size_t payload) noexcept {
  return (k_frame_header + payload + k_frame_align - 1) & ~(k_frame_align - 1);
}

/// A pointer into memory someone else owns, handed over by a move: the moved-from side is
/// left null (unattached). With it as their one such member, the handles' moves are
/// defaulted, so a move can never forget a member (as a hand-written one once forgot the
/// reader's sticky `corrupt_`).
template <class T>
class handed_over_ptr {
 public:
  handed_over_ptr() = default;
  handed_over_ptr(T* p) noexcept : p_(p) {}  // NOLINT(google-explicit-constructor)
  handed_over_ptr(handed_over_ptr&& other) noexcept : p_(std::exchange(other.p_, nullptr)) {}
  handed_over_ptr& operator=(handed_over_ptr&& other) noexcept {
    p_ = std::exchange(other.p_, nullptr);
    return *this;
  }
  handed_over_ptr(const handed_over_ptr&) = delete;
  handed_over_ptr& operator=(const handed_over_ptr&) = delete;
  ~handed_over_ptr() = default;

  operator T*() const noexcept { return p_; }  // NOLINT(google-explicit-constructor)
  T* operator->() const noexcept { return p_; }

 private:
  T* p_ = nullptr;
};

}  // namespace detail

/// Shared-memory bytes a ring with these options occupies (header plus buffer), a
/// multiple of 64.
std::size_t ring_footprint(const ring_options& options) noexcept;

/// Checks `options` (errc::bad_options) and `region` size, then writes an empty ring into
/// `region`, generation 1. Done once by the creator before any peer attaches; the
/// creator then attaches like everyone else. Not safe while anyone uses the region.
[[nodiscard]] std::error_code format_ring(std::span<std::byte> region, const ring_options& options) noexcept;
/// Throwing form of format_ring: std::system_error with context.
void format_ring_or_throw(std::span<std::byte> region, const ring_options& options);

/// The writing end. Messages are first written (staged), then published: publish() makes
/// every staged message visible at once with one store and at most one wake-up, which is
/// how a producer batches. try_send() is write-then-publish.
class ring_writer {
 public:
  ring_writer() = default;  ///< An unattached handle; only assignment and valid() are allowed.
  ring_writer(ring_writer&&) noexcept = default;  ///< The moved-from handle is left unattached.
  ring_writer& operator=(ring_writer&&) noexcept = default;
  ring_writer(const ring_writer&) = delete;
  ring_writer& operator=(const ring_writer&) = delete;
  ~ring_writer() = default;  ///< Staged but unpublished messages are dropped.

  /// Attaches to a ring formatted with the same options. On error returns an invalid
  /// handle and sets `ec`: errc::bad_layout when the header's magic, version or geometry
  /// differ from `options`, errc::in_use when the ring is not fresh (formatted or reset)
  /// — a ring's frame sequence cannot be resumed mid-stream. Non-blocking.
  static ring_writer attach(std::span<std::byte> region, const ring_options& options, std::error_code& ec) noexcept;
  /// Throwing form of attach: std::system_error with context.
  static ring_writer attach(std::span<std::byte> region, const ring_options& options);

  [[nodiscard]] bool valid() const noexcept { return header_ != nullptr; }
  [[nodiscard]] std::size_t max_message() const noexcept { return max_message_; }
  [[nodiscard]] std::size_t capacity() const noexcept { return capacity_; }

  /// Reserves room for a message of up to `size` bytes and returns it (uninitialised), to
  /// be filled and then finished by commit(). Non-blocking. Errors: message_too_large,
  /// full, corrupt (the reader's tail index is out of bounds). An unfinished reservation
  /// is abandoned by the next try_reserve.
  [[nodiscard]] std::error_code try_reserve(std::size_t size, std::span<std::byte>& out) noexcept;
  /// Finishes the reservation as a message of `used` bytes (used <= the reserved size),
  /// staged until publish(). Without an open reservation (no successful try_reserve
  /// since the last commit) it does nothing.
  void commit(std::size_t used) noexcept;

  /// Stages a copy of `message`. Non-blocking; errors as try_reserve.
  [[nodiscard]] std::error_code try_write(std::span<const std::byte> message) noexcept;
  /// Stages one message made of the concatenation of `parts` (a gather write, so a
  /// header and a payload need no intermediate buffer).
  [[nodiscard]] std::error_code try_write(std::initializer_list<std::span<const std::byte>> parts) noexcept;
  /// Makes every staged message visible to the reader with one release store, and wakes
  /// the reader if it sleeps. Non-blocking. Cheap when nothing is staged.
  void publish() noexcept;
  /// try_write then publish.
  [[nodiscard]] std::error_code try_send(std::span<const std::byte> message) noexcept;

  /// Blocks until `message` is written and published, or `deadline` (errc::timed_out).
  /// Errors also as try_write. Publishes anything staged before it, first, so a waiting
  /// writer never holds back messages the reader could be draining.
  [[nodiscard]] std::error_code send(std::span<const std::byte> message,
                                     std::chrono::steady_clock::time_point deadline,
                                     const wait_policy& policy = {}) noexcept;
  /// Blocks until a message of `size` bytes would fit, or `deadline`; returns whether it
  /// fits. Publishes staged messages first.
  bool wait_writable(std::size_t size, std::chrono::steady_clock::time_point deadline,
                     const wait_policy& policy = {}) noexcept;

  /// From now on, publish() wakes a sleeping reader by writing to the eventfd `fd` (not
  /// owned) instead of the futex: for a reader that waits on many rings in one epoll loop
  /// (ring_reader::announce_sleep). -1 restores the futex.
  void wake_through(int fd) noexcept { wake_fd_ = fd; }

  /// The survivor's recovery, to be called only when the reader is known dead (reaped)
  /// or not yet attached: empties the ring, zeroes its doorbells, bumps the generation.
  /// Staged messages are dropped.
  void reset() noexcept;
  /// The generation this handle attached to or last reset to.
  [[nodiscard]] std::uint64_t generation() const noexcept { return generation_; }
  /// Bytes staged or published and not yet released by the reader (as last seen).
  [[nodiscard]] std::size_t backlog() const noexcept;

 private:
  // Makes room for a frame of `frame` bytes at the head; on success `pos` is its offset.
  std::error_code make_room(std::size_t frame, std::size_t& pos) noexcept;
  bool refresh_tail() noexcept;  // false if the shared tail is out of bounds
  // Whether the frame goes to offset 0 now though it fits at `pos` (k_ring_working_set).
  bool early_wrap(std::size_t frame, std::size_t pos) noexcept;

  detail::handed_over_ptr<detail::ring_header> header_;
  detail::handed_over_ptr<std::byte> data_;
  std::size_t capacity_ = 0;     // private copies of the geometry: never re-read from
  std::size_t max_message_ = 0;  // shared memory after attach
  std::uint64_t head_ = 0;       // staged write position (bytes ever written)
  std::uint64_t published_ = 0;  // last value stored to header_->head
  std::uint64_t tail_seen_ = 0;  // last validated value of header_->tail
  std::uint64_t early_wrap_at_ = 0;  // head_ from which to try going back to the start again
  std::uint32_t seq_ = 0;        // sequence number of the next frame
  std::uint64_t generation_ = 0;
  std::size_t reserved_pos_ = 0;   // the open reservation, from try_reserve
  std::size_t reserved_size_ = 0;
  bool reserved_open_ = false;
  int wake_fd_ = -1;
};

/// The reading end. try_read() hands out messages as spans into the ring (no copy);
/// they stay valid until release(), which gives their space back to the writer with one
/// store and at most one wake-up. A consumer batches by reading several messages and
/// releasing once.
class ring_reader {
 public:
  ring_reader() = default;  ///< An unattached handle; only assignment and valid() are allowed.
  ring_reader(ring_reader&&) noexcept = default;  ///< The moved-from handle is left unattached.
  ring_reader& operator=(ring_reader&&) noexcept = default;
  ring_reader(const ring_reader&) = delete;
  ring_reader& operator=(const ring_reader&) = delete;
  ~ring_reader() = default;  ///< Unreleased messages stay in the ring for the next reader.

  /// As ring_writer::attach. The writer may already have published messages: they are
  /// read from the first one; errc::in_use if a previous reader released any.
  static ring_reader attach(std::span<std::byte> region, const ring_options& options, std::error_code& ec) noexcept;
  static ring_reader attach(std::span<std::byte> region, const ring_options& options);

  [[nodiscard]] bool valid() const noexcept { return header_ != nullptr; }
  [[nodiscard]] std::size_t max_message() const noexcept { return max_message_; }
  [[nodiscard]] std::size_t capacity() const noexcept { return capacity_; }

  /// The next whole message, in order. Non-blocking. Errors: empty (nothing published),
  /// corrupt (a bad index, length or sequence number: the reader stays where it was and
  /// keeps answering corrupt until reset()). `message` stays valid until release().
  [[nodiscard]] std::error_code try_read(std::span<const std::byte>& message) noexcept;
  /// Gives the space of every message read so far back to the writer, and wakes it if
  /// it sleeps for space. Non-blocking.
  void release() noexcept;

  /// Whether try_read would now return something other than empty (a message, or
  /// corrupt). Non-blocking; one shared-memory load.
  [[nodiscard]] bool readable() const noexcept { return corrupt_ || tail_ != head_seen_ || published_more(); }
  /// Blocks until a message (or a corrupt frame) is available, or `deadline`; returns
  /// whether try_read would now return something other than empty. Releases first, so a
  /// waiting reader never holds back a writer.
  bool wait_readable(std::chrono::steady_clock::time_point deadline, const wait_policy& policy = {}) noexcept;
  /// wait_readable then try_read: errc::timed_out at the deadline.
  [[nodiscard]] std::error_code read(std::span<const std::byte>& message, std::chrono::steady_clock::time_point deadline,
                                     const wait_policy& policy = {}) noexcept;

  /// For a reader that sleeps in its own epoll loop, woken through the eventfd its writer
  /// was given (ring_writer::wake_through): releases, announces the coming sleep, and
  /// returns false if a message is already there (withdrawing the announcement) — then
  /// do not sleep. After returning true and sleeping, call withdraw_sleep(). Non-blocking.
  [[nodiscard]] bool announce_sleep() noexcept;
  void withdraw_sleep() noexcept;

  /// As ring_writer::reset, for a surviving reader whose writer died.
  void reset() noexcept;
  [[nodiscard]] std::uint64_t generation() const noexcept { return generation_; }

 private:
  bool published_more() const noexcept;  // header_->head moved past what we have read
  std::error_code read_frame(std::span<const std::byte>& message) noexcept;  // try_read, not sticky

  detail::handed_over_ptr<detail::ring_header> header_;
  detail::handed_over_ptr<const std::byte> data_;
  std::size_t capacity_ = 0;
  std::size_t max_message_ = 0;
  std::uint64_t tail_ = 0;       // read position (bytes ever consumed)
  std::uint64_t released_ = 0;   // last value stored to header_->tail
  std::uint64_t head_seen_ = 0;  // last validated value of header_->head
  std::uint32_t seq_ = 0;        // sequence number the next frame must carry
  std::uint64_t generation_ = 0;
  bool corrupt_ = false;  // try_read said corrupt: it says so until reset()
};

}  // namespace ringmaster::ipc
