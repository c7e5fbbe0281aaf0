#include <algorithm>
#include <bit>
#include <cstring>
#include <ctime>
#include <ringmaster/worker/detail/wire.hpp>

namespace ringmaster::wire {
namespace {

bool known(std::uint8_t k) noexcept {
  switch (static_cast<kind>(k)) {
    case kind::job:
    case kind::reply:
    case kind::stop:
    case kind::ready:
    case kind::result:
    case kind::submit:
    case kind::fatal: return true;
  }
  return false;
}

std::string_view take(std::span<const std::byte> bytes, std::size_t& at, std::size_t n) noexcept {
  std::string_view v(reinterpret_cast<const char*>(bytes.data()) + at, n);
  at += n;
  return v;
}

}  // namespace

std::optional<message> decode(std::span<const std::byte> bytes) noexcept {
  if (bytes.size() < sizeof(header)) return std::nullopt;
  header h;
  std::memcpy(&h, bytes.data(), sizeof h);  // one copy: checks below apply to it only
  if (!known(static_cast<std::uint8_t>(h.type))) return std::nullopt;
  if (h.pool_len > k_max_name || h.type_len > k_max_name || h.id_len > k_max_name) return std::nullopt;
  const std::size_t names = std::size_t{h.pool_len} + h.type_len + h.id_len;
  if (names > bytes.size() - sizeof(header)) return std::nullopt;
  message m;
  m.type = h.type;
  m.status = h.status;
  m.attempt = h.attempt;
  m.run_us = h.run_us;
  m.token = h.token;
  std::size_t at = sizeof(header);
  m.pool = take(bytes, at, h.pool_len);
  m.job_type = take(bytes, at, h.type_len);
  m.id = take(bytes, at, h.id_len);
  m.body = take(bytes, at, bytes.size() - at);
  return m;
}

std::error_code encode(ipc::ring_writer& ring, const message& m) noexcept {
  if (m.pool.size() > k_max_name || m.job_type.size() > k_max_name || m.id.size() > k_max_name)
    return ipc::errc::message_too_large;
  header h{};
  h.type = m.type;
  h.status = m.status;
  h.pool_len = static_cast<std::uint16_t>(m.pool.size());
  h.type_len = static_cast<std::uint16_t>(m.job_type.size());
  h.id_len = static_cast<std::uint16_t>(m.id.size());
  h.attempt = m.attempt;
  h.run_us = m.run_us;
  h.token = m.token;
  auto bytes = [](std::string_view s) { return std::as_bytes(std::span(s.data(), s.size())); };
  return ring.try_write({std::as_bytes(std::span(&h, 1)), bytes(m.pool), bytes(m.job_type), bytes(m.id), bytes(m.body)});
}

link_layout link_layout::for_body(std::size_t max_body) noexcept {
  link_layout l;
  l.rings.max_message = max_body + k_envelope;
  // Room for several messages of the largest size, so that a few queued jobs never
  // make the ring full; never below 256 KiB. Four up to 1 MiB bodies (the default
  // max_message), two beyond: the two rings of a worker are reserved whole when it first
  // starts, so they must not grow faster than the messages (max_message is at most
  // k_max_body: rings of 256 MiB each at most).
  const std::size_t copies = max_body <= (std::size_t{1} << 20) ? 4 : 2;
  l.rings.capacity = std::bit_ceil(std::max<std::size_t>(std::size_t{256} << 10, copies * (l.rings.max_message + 64)));
  const std::size_t ring = ipc::ring_footprint(l.rings);
  l.job_ring_offset = 4096;  // the control block, padded to a page
  l.result_ring_offset = l.job_ring_offset + ring;
  l.total = l.result_ring_offset + ring;
  return l;
}

link_view link_view::in(std::span<std::byte> segment_bytes, const link_layout& layout) noexcept {
  static_assert(sizeof(worker_control) <= 4096);
  link_view v;
  v.control = reinterpret_cast<worker_control*>(segment_bytes.data());
  const std::size_t ring = ipc::ring_footprint(layout.rings);
  v.job_ring = segment_bytes.subspan(layout.job_ring_offset, ring);
  v.result_ring = segment_bytes.subspan(layout.result_ring_offset, ring);
  return v;
}

void set_job_id(worker_control& c, std::string_view id) noexcept {
  const std::size_t len = std::min(id.size(), worker_control::k_job_id_words * 8);
  const std::uint32_t seq = c.job_id_seq.load(std::memory_order_relaxed);
  c.job_id_seq.store(seq + 1, std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_release);
  for (std::size_t w = 0; w * 8 < len; ++w) {
    std::uint64_t word = 0;
    std::memcpy(&word, id.data() + w * 8, std::min<std::size_t>(8, len - w * 8));
    c.job_id[w].store(word, std::memory_order_relaxed);
  }
  c.job_id_len.store(static_cast<std::uint32_t>(len), std::memory_order_relaxed);
  c.job_id_seq.store(seq + 2, std::memory_order_release);
}

std::string read_job_id(const worker_control& c) {
  for (int attempt = 0; attempt < 4; ++attempt) {
    const std::uint32_t before = c.job_id_seq.load(std::memory_order_acquire);
    if (before & 1) continue;
    const std::size_t len = std::min<std::size_t>(c.job_id_len.load(std::memory_order_relaxed), worker_control::k_job_id_words * 8);
    char bytes[worker_control::k_job_id_words * 8];
    for (std::size_t w = 0; w * 8 < len; ++w) {
      const std::uint64_t word = c.job_id[w].load(std::memory_order_relaxed);
      std::memcpy(bytes + w * 8, &word, 8);
    }
    std::atomic_thread_fence(std::memory_order_acquire);
    if (c.job_id_seq.load(std::memory_order_relaxed) == before) return std::string(bytes, len);
  }
  return {};
}

std::int64_t monotonic_ns() noexcept {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return std::int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

}  // namespace ringmaster::wire
