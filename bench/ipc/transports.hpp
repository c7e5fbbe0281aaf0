// bench/ipc/transports.hpp — the three transports under test, each measured the same
// two ways between the benchmark process and a child forked for the run:
//
//  * throughput: the child produces `count` messages of `size` bytes as fast as the
//    transport takes them; the parent consumes and checks every one. Returns the seconds
//    from "go" to the last message checked.
//  * round trip: the parent sends message i, the child checks it and echoes it, the
//    parent receives the echo; `warmup + count` times. Returns the `count` round-trip
//    times in ns (the echo is checked outside the timed part; every message is checked).
//
// Every function throws bench_failure on wrong data, a timeout or a dead peer; it never
// leaves a child running or a message queue in /dev/shm behind.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <ringmaster/ipc/doorbell.hpp>
#include <string>
#include <vector>

#include "harness.hpp"

namespace ringmaster::bench {

/// What every run shares.
struct run_settings {
  /// Longest a run may take: every blocking wait has this deadline, and the child's
  /// watchdog fires a little later.
  std::chrono::seconds timeout{30};
  /// Ring geometry (one ring per direction).
  std::size_t ring_capacity = std::size_t{1} << 20;
  std::size_t ring_max_message = std::size_t{64} << 10;
  /// How ring producers and consumers wait during throughput runs.
  ipc::wait_policy ring_throughput_wait{};
  /// Ring producer: publish once this many bytes of frames are staged, or when the ring
  /// is full. 0: only when full.
  std::size_t ring_publish_bytes = std::size_t{16} << 10;
  /// Ring consumer: release once this many bytes of frames are read, or when the ring is
  /// empty. 0: only when empty.
  std::size_t ring_release_bytes = std::size_t{16} << 10;
  /// Pipe buffer to ask for with F_SETPIPE_SZ (0: leave the default). The granted size
  /// is reported by pipe_buffer_size().
  std::size_t pipe_buffer = std::size_t{1} << 20;
  /// Pipe producer: bytes of length-prefixed messages gathered per write() (a message
  /// larger than this is written alone).
  std::size_t pipe_batch = std::size_t{64} << 10;
  /// message_queue depth (max_num_msg); max_msg_size is always the message size.
  std::size_t mq_depth = 256;
  /// CPU the child of every run is pinned to (-1: not pinned). The parent pins itself.
  int child_cpu = -1;
  /// The message the sender gets wrong on purpose (payload::k_no_fault: none), for
  /// --check-detection.
  std::uint64_t fault = payload::k_no_fault;
};

double ring_throughput(std::size_t size, std::uint64_t count, const run_settings& s);
double pipe_throughput(std::size_t size, std::uint64_t count, const run_settings& s);
double mq_throughput(std::size_t size, std::uint64_t count, const run_settings& s);

std::vector<std::int64_t> ring_round_trip(std::size_t size, std::uint64_t count,
                                          std::uint64_t warmup, const ipc::wait_policy& policy,
                                          const run_settings& s);
std::vector<std::int64_t> pipe_round_trip(std::size_t size, std::uint64_t count,
                                          std::uint64_t warmup, const run_settings& s);
std::vector<std::int64_t> mq_round_trip(std::size_t size, std::uint64_t count, std::uint64_t warmup,
                                        const run_settings& s);

/// The pipe buffer size a run actually gets with these settings (F_GETPIPE_SZ).
std::size_t pipe_buffer_size(const run_settings& s);

/// The message-queue name prefix: "ringmaster-bench-mq-<pid>-...".
inline constexpr const char* k_mq_prefix = "ringmaster-bench-mq-";
/// Removes queues this process may have created (also safe from a signal handler).
void remove_mq_names_now() noexcept;
/// Removes queues left in /dev/shm by earlier benchmark processes that died. Returns
/// how many.
std::size_t sweep_stale_mq() noexcept;

}  // namespace ringmaster::bench
