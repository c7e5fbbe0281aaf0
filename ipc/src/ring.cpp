#include <cstring>
#include <new>
#include <ringmaster/ipc/ring.hpp>
#include <utility>

namespace ringmaster::ipc {
namespace {

using detail::frame_size;
using detail::k_ring_data_offset;
using detail::k_wrap_marker;
using detail::ring_header;

struct frame_header {
  std::uint32_t length;
  std::uint32_t seq;
};
static_assert(sizeof(frame_header) == k_frame_header);

constexpr bool is_power_of_two(std::size_t v) noexcept { return v != 0 && (v & (v - 1)) == 0; }

std::error_code check_options(const ring_options& o) noexcept {
  if (o.capacity < 256 || !is_power_of_two(o.capacity) || o.capacity > (std::size_t{1} << 40)) return errc::bad_options;
  if (o.max_message > o.capacity / 2 - k_frame_header || o.max_message >= k_wrap_marker) return errc::bad_options;
  return {};
}

// Validates the header of a formatted region against the options the caller expects.
// Only this check reads the shared copy of the geometry.
ring_header* checked_header(std::span<std::byte> region, const ring_options& o, std::error_code& ec) noexcept {
  if ((ec = check_options(o))) return nullptr;
  if (region.size() < ring_footprint(o) || reinterpret_cast<std::uintptr_t>(region.data()) % 64 != 0) {
    ec = errc::bad_layout;
    return nullptr;
  }
  auto* h = std::launder(reinterpret_cast<ring_header*>(region.data()));
  // magic is written last by format_ring; the acquire pairs with that release.
  std::atomic_ref<std::uint64_t> magic(h->magic);
  if (magic.load(std::memory_order_acquire) != detail::k_ring_magic || h->version != detail::k_ring_version ||
      h->capacity != o.capacity || h->max_message != o.max_message) {
    ec = errc::bad_layout;
    return nullptr;
  }
  ec.clear();
  return h;
}

// Empties the ring for a new peer. Only the survivor calls it, when the peer is dead, so
// nothing races with these stores; the generation bump is the last, released store.
std::uint64_t reset_shared(ring_header& h) noexcept {
  h.head.store(0, std::memory_order_relaxed);
  h.tail.store(0, std::memory_order_relaxed);
  h.readable.sleepers.store(0, std::memory_order_relaxed);
  h.writable.sleepers.store(0, std::memory_order_relaxed);
  return h.generation.fetch_add(1, std::memory_order_acq_rel) + 1;
}

void throw_if(std::error_code ec, const char* what) {
  if (ec) throw std::system_error(ec, what);
}

}  // namespace

std::size_t ring_footprint(const ring_options& options) noexcept { return k_ring_data_offset + options.capacity; }

std::error_code format_ring(std::span<std::byte> region, const ring_options& options) noexcept {
  if (auto ec = check_options(options)) return ec;
  if (region.size() < ring_footprint(options) || reinterpret_cast<std::uintptr_t>(region.data()) % 64 != 0)
    return errc::bad_layout;
  auto* h = new (region.data()) ring_header{};
  h->version = detail::k_ring_version;
  h->capacity = options.capacity;
  h->max_message = options.max_message;
  h->generation.store(1, std::memory_order_relaxed);
  std::atomic_ref<std::uint64_t>(h->magic).store(detail::k_ring_magic, std::memory_order_release);
  return {};
}

void format_ring_or_throw(std::span<std::byte> region, const ring_options& options) {
  throw_if(format_ring(region, options), "cannot format ring");
}

// ---------------------------------------------------------------------------------------
// ring_writer

ring_writer ring_writer::attach(std::span<std::byte> region, const ring_options& options, std::error_code& ec) noexcept {
  ring_writer w;
  ring_header* h = checked_header(region, options, ec);
  if (!h) return w;
  w.header_ = h;
  w.data_ = region.data() + k_ring_data_offset;
  w.capacity_ = options.capacity;
  w.max_message_ = options.max_message;
  w.generation_ = h->generation.load(std::memory_order_acquire);
  // Resume where the previous writer stopped. The frames' sequence numbers cannot be
  // recovered from the indices, so a writer attaches to a fresh ring (just formatted or
  // reset) in normal use; resuming elsewhere is refused.
  w.head_ = w.published_ = h->head.load(std::memory_order_acquire);
  w.tail_seen_ = h->tail.load(std::memory_order_acquire);
  if (w.head_ != 0 || w.tail_seen_ != 0) {
    ec = errc::in_use;
    return ring_writer{};
  }
  return w;
}

ring_writer ring_writer::attach(std::span<std::byte> region, const ring_options& options) {
  std::error_code ec;
  auto w = attach(region, options, ec);
  throw_if(ec, "cannot attach ring writer");
  return w;
}

bool ring_writer::refresh_tail() noexcept {
  const std::uint64_t t = header_->tail.load(std::memory_order_acquire);
  // The reader can only release what was published, never go backwards, and only at
  // frame boundaries.
  if (t < tail_seen_ || t > published_ || t % k_frame_align != 0) return false;
  tail_seen_ = t;
  return true;
}

std::error_code ring_writer::make_room(std::size_t frame, std::size_t& pos) noexcept {
  pos = static_cast<std::size_t>(head_ & (capacity_ - 1));
  const std::size_t to_end = capacity_ - pos;
  // A frame never straddles the end: if it does not fit before the end, a wrap marker
  // fills the rest and the frame starts at offset 0.
  const std::size_t needed = frame <= to_end ? frame : to_end + frame;
  if (head_ + needed - tail_seen_ > capacity_) {
    if (!refresh_tail()) return errc::corrupt;
    if (head_ + needed - tail_seen_ > capacity_) return errc::full;
  }
  if (frame > to_end || early_wrap(frame, pos)) {
    frame_header marker{k_wrap_marker, seq_};
    std::memcpy(data_ + pos, &marker, sizeof marker);
    head_ += to_end;
    pos = 0;
  }
  return {};
}

// Past the working set, a small frame goes back to the start if the reader has taken
// everything published (and little is staged): the skipped rest of the buffer then
// counts against the room only until the reader's next read, which passes the marker at
// once. Large frames, and a ring with a backlog, go on as before: their room is never
// cut. Tried at most once per 32 KiB written while the reader lags (one load of its tail
// each time), so that a busy ring pays nothing measurable for it.
bool ring_writer::early_wrap(std::size_t frame, std::size_t pos) noexcept {
  constexpr std::uint64_t k_retry = 32 * 1024;
  if (pos < k_ring_working_set || frame > k_ring_working_set / 8 || head_ < early_wrap_at_) return false;
  if (head_ - published_ > k_ring_working_set / 4 || !refresh_tail() || tail_seen_ != published_) {
    // (A tail out of bounds, refresh_tail false, is reported by the next make_room.)
    early_wrap_at_ = head_ + k_retry;
    return false;
  }
  return true;
}

std::error_code ring_writer::try_reserve(std::size_t size, std::span<std::byte>& out) noexcept {
  if (size > max_message_) return errc::message_too_large;
  reserved_open_ = false;  // a new reservation abandons any open one
  std::size_t pos = 0;
  if (auto ec = make_room(frame_size(size), pos)) return ec;
  reserved_pos_ = pos;
  reserved_size_ = size;
  reserved_open_ = true;
  out = {data_ + pos + k_frame_header, size};
  return {};
}

void ring_writer::commit(std::size_t used) noexcept {
  if (!reserved_open_) return;  // misuse (no try_reserve succeeded): never touch the ring
  reserved_open_ = false;
  if (used > reserved_size_) used = reserved_size_;
  const frame_header fh{static_cast<std::uint32_t>(used), seq_++};
  std::memcpy(data_ + reserved_pos_, &fh, sizeof fh);
  head_ += frame_size(used);
  reserved_size_ = 0;
}

std::error_code ring_writer::try_write(std::span<const std::byte> message) noexcept {
  std::span<std::byte> room;
  if (auto ec = try_reserve(message.size(), room)) return ec;
  if (!message.empty()) std::memcpy(room.data(), message.data(), message.size());
  commit(message.size());
  return {};
}

std::error_code ring_writer::try_write(std::initializer_list<std::span<const std::byte>> parts) noexcept {
  std::size_t total = 0;
  for (auto p : parts) total += p.size();
  std::span<std::byte> room;
  if (auto ec = try_reserve(total, room)) return ec;
  std::size_t at = 0;
  for (auto p : parts) {
    if (!p.empty()) std::memcpy(room.data() + at, p.data(), p.size());
    at += p.size();
  }
  commit(total);
  return {};
}

void ring_writer::publish() noexcept {
  if (head_ == published_) return;
  published_ = head_;
  // The release store is the whole publication: every byte of every staged frame was
  // written before it, so a writer killed at any point leaves no partial message visible.
  header_->head.store(head_, std::memory_order_release);
  ring(header_->readable, wake_fd_);
}

std::error_code ring_writer::try_send(std::span<const std::byte> message) noexcept {
  auto ec = try_write(message);
  if (!ec) publish();
  return ec;
}

bool ring_writer::wait_writable(std::size_t size, std::chrono::steady_clock::time_point deadline,
                                const wait_policy& policy) noexcept {
  publish();
  const std::size_t frame = frame_size(size);
  // Worst case with a wrap marker in front of the frame.
  auto fits = [&] {
    const std::size_t pos = static_cast<std::size_t>(head_ & (capacity_ - 1));
    const std::size_t needed = frame <= capacity_ - pos ? frame : capacity_ - pos + frame;
    if (!refresh_tail()) return true;  // corrupt: let the caller's next write report it
    return head_ + needed - tail_seen_ <= capacity_;
  };
  return wait_until(header_->writable, fits, deadline, policy);
}

std::error_code ring_writer::send(std::span<const std::byte> message, std::chrono::steady_clock::time_point deadline,
                                  const wait_policy& policy) noexcept {
  for (;;) {
    auto ec = try_send(message);
    if (ec != errc::full) return ec;
    if (!wait_writable(message.size(), deadline, policy)) return errc::timed_out;
  }
}

void ring_writer::reset() noexcept {
  generation_ = reset_shared(*header_);
  head_ = published_ = tail_seen_ = early_wrap_at_ = 0;
  seq_ = 0;
  reserved_size_ = 0;
  reserved_open_ = false;
}

std::size_t ring_writer::backlog() const noexcept { return static_cast<std::size_t>(head_ - tail_seen_); }

// ---------------------------------------------------------------------------------------
// ring_reader

ring_reader ring_reader::attach(std::span<std::byte> region, const ring_options& options, std::error_code& ec) noexcept {
  ring_reader r;
  ring_header* h = checked_header(region, options, ec);
  if (!h) return r;
  r.header_ = h;
  r.data_ = region.data() + k_ring_data_offset;
  r.capacity_ = options.capacity;
  r.max_message_ = options.max_message;
  r.generation_ = h->generation.load(std::memory_order_acquire);
  r.tail_ = r.released_ = r.head_seen_ = h->tail.load(std::memory_order_acquire);
  if (r.tail_ != 0) {  // as for the writer: sequence numbers cannot be resumed mid-stream
    ec = errc::in_use;
    return ring_reader{};
  }
  return r;
}

ring_reader ring_reader::attach(std::span<std::byte> region, const ring_options& options) {
  std::error_code ec;
  auto r = attach(region, options, ec);
  throw_if(ec, "cannot attach ring reader");
  return r;
}

std::error_code ring_reader::try_read(std::span<const std::byte>& message) noexcept {
  // Sticky: a writer that scribbled once is not trusted again, even if it repairs the
  // indices afterwards (found by fuzz/frame_fuzz.cpp).
  if (corrupt_) return errc::corrupt;
  const std::error_code ec = read_frame(message);
  if (ec == errc::corrupt) corrupt_ = true;
  return ec;
}

std::error_code ring_reader::read_frame(std::span<const std::byte>& message) noexcept {
  for (;;) {
    if (tail_ == head_seen_) {
      const std::uint64_t h = header_->head.load(std::memory_order_acquire);
      // The writer can publish only forwards, at frame boundaries, and never more than
      // a buffer beyond what we released.
      if (h < head_seen_ || h - released_ > capacity_ || h % k_frame_align != 0) return errc::corrupt;
      head_seen_ = h;
      if (tail_ == head_seen_) return errc::empty;
    }
    const std::size_t pos = static_cast<std::size_t>(tail_ & (capacity_ - 1));
    const std::size_t to_end = capacity_ - pos;
    const std::uint64_t available = head_seen_ - tail_;  // >= 8: both are multiples of 8
    // One copy out of shared memory: a hostile writer may change the bytes after this,
    // but every check below is made on our copy, so it can only change payload bytes.
    frame_header fh;
    std::memcpy(&fh, data_ + pos, sizeof fh);
    if (fh.seq != seq_) return errc::corrupt;
    if (fh.length == k_wrap_marker) {
      if (to_end > available) return errc::corrupt;
      tail_ += to_end;
      continue;
    }
    const std::size_t frame = frame_size(fh.length);
    if (fh.length > max_message_ || frame > to_end || frame > available) return errc::corrupt;
    message = {data_ + pos + k_frame_header, fh.length};
    tail_ += frame;
    ++seq_;
    return {};
  }
}

void ring_reader::release() noexcept {
  if (tail_ == released_) return;
  released_ = tail_;
  header_->tail.store(tail_, std::memory_order_release);
  ring(header_->writable);
}

bool ring_reader::published_more() const noexcept {
  return header_->head.load(std::memory_order_acquire) != tail_;
}

bool ring_reader::wait_readable(std::chrono::steady_clock::time_point deadline, const wait_policy& policy) noexcept {
  release();
  if (tail_ != head_seen_) return true;
  return wait_until(header_->readable, [this] { return published_more(); }, deadline, policy);
}

bool ring_reader::announce_sleep() noexcept {
  release();
  if (tail_ != head_seen_) return false;
  return !ipc::announce_sleep(header_->readable, [this] { return published_more(); });
}

void ring_reader::withdraw_sleep() noexcept { ipc::withdraw_sleep(header_->readable); }

std::error_code ring_reader::read(std::span<const std::byte>& message, std::chrono::steady_clock::time_point deadline,
                                  const wait_policy& policy) noexcept {
  for (;;) {
    auto ec = try_read(message);
    if (ec != errc::empty) return ec;
    if (!wait_readable(deadline, policy)) return errc::timed_out;
  }
}

void ring_reader::reset() noexcept {
  generation_ = reset_shared(*header_);
  tail_ = released_ = head_seen_ = 0;
  seq_ = 0;
  corrupt_ = false;
}

}  // namespace ringmaster::ipc
