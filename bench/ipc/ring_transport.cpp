// The transport under test: two ringmaster rings (one per direction) in one anonymous
// segment created before fork, as the supervisor does for forked workers.
#include <ringmaster/ipc/ring.hpp>
#include <ringmaster/ipc/segment.hpp>
#include <string>

#include "harness.hpp"
#include "transports.hpp"

namespace ringmaster::bench {
namespace {

using namespace std::chrono_literals;
using ipc::errc;

struct ring_pair {
  ipc::ring_options options;
  ipc::segment memory;
  std::span<std::byte> forward;   // parent -> child (round trip), child -> parent (throughput)
  std::span<std::byte> backward;  // child -> parent (round trip)
};

ring_pair make_rings(const run_settings& s) {
  ring_pair p;
  p.options = {.capacity = s.ring_capacity, .max_message = s.ring_max_message};
  const std::size_t footprint = ipc::ring_footprint(p.options);  // a multiple of 64
  p.memory = ipc::segment::create_anonymous(2 * footprint);
  p.forward = p.memory.bytes().subspan(0, footprint);
  p.backward = p.memory.bytes().subspan(footprint, footprint);
  ipc::format_ring_or_throw(p.forward, p.options);
  ipc::format_ring_or_throw(p.backward, p.options);
  return p;
}

[[noreturn]] void fail(const std::string& where, std::error_code ec, std::uint64_t seq,
                       const std::string& note = {}) {
  throw bench_failure(where + " at message " + std::to_string(seq) + ": " + ec.message() + note);
}

std::chrono::seconds watchdog(const run_settings& s) {
  return s.timeout + 5s;
}

}  // namespace

double ring_throughput(std::size_t size, std::uint64_t count, const run_settings& s) {
  // Bytes a message occupies in the ring: header plus payload, padded.
  const std::size_t frame = (ipc::k_frame_header + size + ipc::k_frame_align - 1) /
                            ipc::k_frame_align * ipc::k_frame_align;
  ring_pair rings = make_rings(s);
  start_gate gate;
  child producer = child::fork(
      [&] {
        gate.close_parent_ends();
        auto w = ipc::ring_writer::attach(rings.forward, rings.options);
        payload p(size, s.fault);
        gate.child_ready_and_wait();
        const auto deadline = clock::now() + s.timeout;
        std::size_t staged = 0;  // bytes of frames staged since the last publish
        for (std::uint64_t seq = 0; seq < count; ++seq) {
          // Zero-copy, as a ring producer would write: the message is built in place in
          // the ring (try_reserve/commit), where a pipe or message_queue needs it in a
          // buffer of the sender's first.
          for (;;) {
            std::span<std::byte> room;
            const auto ec = w.try_reserve(size, room);
            if (!ec) {
              p.write_to(room, seq);
              w.commit(size);
              break;
            }
            if (ec != errc::full) fail("ring producer", ec, seq);
            // Full: wait_writable publishes what is staged, then waits for the consumer.
            staged = 0;
            if (!w.wait_writable(size, deadline, s.ring_throughput_wait))
              fail("ring producer", errc::timed_out, seq);
          }
          if (s.ring_publish_bytes != 0 && (staged += frame) >= s.ring_publish_bytes) {
            w.publish();
            staged = 0;
          }
        }
        w.publish();
      },
      watchdog(s), s.child_cpu);
  gate.close_child_ends();

  auto r = ipc::ring_reader::attach(rings.forward, rings.options);
  payload expect(size);
  gate.parent_wait_ready();
  const auto t0 = clock::now();
  gate.parent_go();
  const auto deadline = t0 + s.timeout;
  std::size_t unreleased = 0;
  for (std::uint64_t seq = 0; seq < count;) {
    std::span<const std::byte> msg;
    const auto ec = r.try_read(msg);
    if (!ec) {
      expect.check(msg, seq, "ring consumer");
      ++seq;
      if (s.ring_release_bytes != 0 && (unreleased += frame) >= s.ring_release_bytes) {
        r.release();
        unreleased = 0;
      }
      continue;
    }
    if (ec != errc::empty) fail("ring consumer", ec, seq, producer.status_note());
    // Empty: wait_readable releases everything read so far, then waits.
    unreleased = 0;
    if (!r.wait_readable(deadline, s.ring_throughput_wait))
      fail("ring consumer", errc::timed_out, seq, producer.status_note());
  }
  const auto t1 = clock::now();
  r.release();
  producer.join(5s);
  // The producer is gone: anything still in the ring is a message too many.
  std::span<const std::byte> extra;
  if (r.try_read(extra) != errc::empty)
    throw bench_failure("ring consumer: more messages than were sent");
  return std::chrono::duration<double>(t1 - t0).count();
}

std::vector<std::int64_t> ring_round_trip(std::size_t size, std::uint64_t count,
                                          std::uint64_t warmup, const ipc::wait_policy& policy,
                                          const run_settings& s) {
  ring_pair rings = make_rings(s);
  start_gate gate;
  const std::uint64_t total = warmup + count;
  child echo = child::fork(
      [&] {
        gate.close_parent_ends();
        auto in = ipc::ring_reader::attach(rings.forward, rings.options);
        auto out = ipc::ring_writer::attach(rings.backward, rings.options);
        payload expect(size);
        gate.child_ready_and_wait();
        const auto deadline = clock::now() + s.timeout;
        for (std::uint64_t seq = 0; seq < total; ++seq) {
          std::span<const std::byte> msg;
          if (auto ec = in.read(msg, deadline, policy)) fail("ring echo (read)", ec, seq);
          // Echo first, check after: the check is off the timed path (the span stays
          // valid until the next read releases it).
          if (auto ec = out.send(msg, deadline, policy)) fail("ring echo (send)", ec, seq);
          expect.check(msg, seq, "ring echo");
        }
      },
      watchdog(s), s.child_cpu);
  gate.close_child_ends();

  auto out = ipc::ring_writer::attach(rings.forward, rings.options);
  auto in = ipc::ring_reader::attach(rings.backward, rings.options);
  payload p(size, s.fault);
  payload expect(size);
  std::vector<std::int64_t> samples;
  samples.reserve(count);
  gate.parent_wait_ready();
  gate.parent_go();
  const auto deadline = clock::now() + s.timeout;
  for (std::uint64_t seq = 0; seq < total; ++seq) {
    const auto msg = p.make(seq);
    const auto t0 = clock::now();
    if (auto ec = out.send(msg, deadline, policy))
      fail("ring round trip (send)", ec, seq, echo.status_note());
    std::span<const std::byte> reply;
    if (auto ec = in.read(reply, deadline, policy))
      fail("ring round trip (read)", ec, seq, echo.status_note());
    const auto t1 = clock::now();
    expect.check(reply, seq, "ring round trip (echo)");
    if (seq >= warmup)
      samples.push_back(std::chrono::duration_cast<std::chrono::nanoseconds>(t1 - t0).count());
  }
  in.release();
  echo.join(5s);
  return samples;
}

}  // namespace ringmaster::bench
