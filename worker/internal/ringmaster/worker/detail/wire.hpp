// ringmaster/worker/detail/wire.hpp — the messages between a supervisor and a worker,
// and the layout of the shared memory that carries them. Internal: shared by the worker
// runtime and the supervisor, not part of the user API.
//
// One worker slot has one segment (fd-backed, see ipc/segment.hpp) laid out as
//
//     [ control block | job ring (supervisor -> worker) | result ring (worker -> supervisor) ]
//
// Every message is one ring message: a fixed 24-byte header, then the pool name, the job
// type and the job id (each of the length the header gives), then the body (the rest).
// The supervisor decodes what a worker sends with decode(), which checks every length
// against the message's real size: a worker is not trusted.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <ringmaster/ipc/ring.hpp>
#include <span>
#include <string_view>
#include <system_error>

namespace ringmaster::wire {

enum class kind : std::uint8_t {
  // supervisor -> worker, on the job ring
  job = 1,     ///< token: job token; attempt; type, id; body: payload
  reply = 2,   ///< token: the worker's request id; status; body: value or error message
  stop = 3,    ///< finish what is in hand, then exit 0 (recycling, drain)
  // worker -> supervisor, on the result ring
  ready = 16,   ///< token: ring generation attached to; body: handler names, '\n'-separated
  result = 17,  ///< token: job token; status; run_us; body: value or error message
  submit = 18,  ///< token: request id (0: fire and forget); pool, type, id; body: payload
  fatal = 19,   ///< the worker cannot serve; body: why (a start failure's text)
};

/// Header of every message. `status` carries an error_kind (result, reply).
struct header {
  kind type;
  std::uint8_t status;
  std::uint16_t pool_len;
  std::uint16_t type_len;
  std::uint16_t id_len;
  std::uint32_t attempt;
  std::uint32_t run_us;  ///< a result's run time in µs, saturated at UINT32_MAX (71 min 34 s)
  std::uint64_t token;
};
static_assert(sizeof(header) == 24);

/// Longest pool name, job type or job id.
inline constexpr std::size_t k_max_name = 1024;
/// Bytes a message needs beyond its body, at most: what the rings add to max_message.
inline constexpr std::size_t k_envelope = sizeof(header) + 3 * k_max_name;
/// The largest max_message: what bounds the rings (link_layout::for_body).
inline constexpr std::size_t k_max_body = std::size_t{64} << 20;

/// A decoded message: views into the ring (valid until the reader's release()).
struct message {
  kind type{};
  std::uint8_t status = 0;
  std::uint32_t attempt = 0;
  std::uint32_t run_us = 0;
  std::uint64_t token = 0;
  std::string_view pool{}, job_type{}, id{}, body{};
};

/// Parses a message read from a ring; nullopt if it is malformed (unknown kind, lengths
/// beyond the message or over k_max_name). Never reads outside `bytes`.
std::optional<message> decode(std::span<const std::byte> bytes) noexcept;

/// Writes `m` into the ring as one message (staged; the caller publishes). Errors as
/// ring_writer::try_reserve; errc::message_too_large also for a name over k_max_name.
[[nodiscard]] std::error_code encode(ipc::ring_writer& ring, const message& m) noexcept;

/// Shared state of one worker slot that is not a message: written by the worker, read by
/// the supervisor for attribution and status. Untrusted like everything a worker writes.
struct alignas(64) worker_control {
  std::atomic<std::uint64_t> current_job{0};  ///< token of the job running, 0 when idle
  std::atomic<std::int64_t> started_ns{0};    ///< CLOCK_MONOTONIC when it started
  std::atomic<std::uint64_t> jobs_done{0};
  std::atomic<std::uint32_t> out_of_memory{0};  ///< set when an allocation failed
  std::atomic<std::int32_t> pid{0};
  /// The id of the job running (its first k_job_id_words * 8 bytes), for the fork server,
  /// which labels the worker's stdout and stderr lines with it. A seqlock: job_id_seq is
  /// odd while the worker writes; a reader retries when it changed under it.
  static constexpr std::size_t k_job_id_words = 16;
  std::atomic<std::uint32_t> job_id_seq{0};
  std::atomic<std::uint32_t> job_id_len{0};  ///< 0: no job running
  std::atomic<std::uint64_t> job_id[k_job_id_words]{};
  /// Stop without starting what was sent ahead (a Dekker pair): before each job the worker
  /// stores its token in `last_started`, then reads `stopping`, and skips the job, sending
  /// nothing, if it is set. The supervisor stores `stopping`, then reads `last_started`:
  /// every job it holds for the worker after that one will not start, and it answers
  /// them `stopped` itself, at once.
  std::atomic<std::uint64_t> last_started{0};
  std::atomic<std::uint32_t> stopping{0};
};

/// Publishes the id of the job that starts (empty: none runs). Worker side.
void set_job_id(worker_control& c, std::string_view id) noexcept;
/// The id published by set_job_id ("" when none runs or it is being changed). Reader side:
/// a worker is untrusted, so the length is clamped and nothing outside the block is read.
std::string read_job_id(const worker_control& c);

/// Where the pieces of one slot's segment are. Both sides compute it from the same
/// max_message, so nothing about the layout needs to be trusted from shared memory.
struct link_layout {
  ipc::ring_options rings;
  std::size_t job_ring_offset = 0;
  std::size_t result_ring_offset = 0;
  std::size_t total = 0;

  /// The layout for bodies of up to `max_body` bytes.
  static link_layout for_body(std::size_t max_body) noexcept;
};

/// A slot's pieces inside a mapped segment.
struct link_view {
  worker_control* control = nullptr;
  std::span<std::byte> job_ring, result_ring;
  static link_view in(std::span<std::byte> segment_bytes, const link_layout& layout) noexcept;
};

/// Monotonic clock in nanoseconds, the same in every process.
std::int64_t monotonic_ns() noexcept;

}  // namespace ringmaster::wire
