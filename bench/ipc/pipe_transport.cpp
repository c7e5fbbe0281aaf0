// Baseline: a pipe carrying length-prefixed messages, [u32 length | payload]. A message
// is a message: the consumer takes each one out of the byte stream by its length and
// checks it, however the bytes arrived. The producer may gather several messages per
// write() (as the ring producer publishes several at once); the consumer reads as much
// as the pipe holds per read().
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <string>

#include "harness.hpp"
#include "transports.hpp"

namespace ringmaster::bench {
namespace {

using namespace std::chrono_literals;

constexpr std::size_t k_prefix = sizeof(std::uint32_t);

pipe_fds make_sized_pipe(const run_settings& s) {
  pipe_fds p = make_pipe();
  // Best effort: beyond /proc/sys/fs/pipe-max-size an unprivileged process gets EPERM and
  // keeps the default; pipe_buffer_size() reports what a run really had.
  if (s.pipe_buffer != 0)
    (void)::fcntl(p.write_end.get(), F_SETPIPE_SZ, static_cast<int>(s.pipe_buffer));
  return p;
}

/// Takes length-prefixed messages out of a pipe, reading as much as is there at a time.
class record_reader {
 public:
  record_reader(int fd, std::size_t buffer, std::size_t max_message)
      : fd_(fd), buffer_(std::max(buffer, k_prefix + max_message)), max_message_(max_message) {}

  /// The next message's payload, valid until the next call. Throws bench_failure on EOF,
  /// an error, or a length above the maximum.
  std::span<const std::byte> next(const char* where) {
    fill(k_prefix, where);
    std::uint32_t length = 0;
    std::memcpy(&length, buffer_.data() + begin_, k_prefix);
    if (length > max_message_)
      throw bench_failure(std::string(where) + ": length prefix " + std::to_string(length) +
                          " out of range");
    fill(k_prefix + length, where);
    std::span<const std::byte> out{buffer_.data() + begin_ + k_prefix, length};
    begin_ += k_prefix + length;
    return out;
  }

  /// Whether the writer closed the pipe with nothing left unread.
  bool at_eof() {
    if (begin_ != end_) return false;
    std::byte b;
    ssize_t n;
    while ((n = ::read(fd_, &b, 1)) < 0 && errno == EINTR) {
    }
    return n == 0;
  }

 private:
  void fill(std::size_t need, const char* where) {
    if (end_ - begin_ >= need) return;
    // What is left is less than one message: move it to the front so that one read()
    // can bring in as much as the buffer holds.
    std::memmove(buffer_.data(), buffer_.data() + begin_, end_ - begin_);
    end_ -= begin_;
    begin_ = 0;
    while (end_ < need) {
      const ssize_t n = ::read(fd_, buffer_.data() + end_, buffer_.size() - end_);
      if (n < 0) {
        if (errno == EINTR) continue;
        throw_errno(where);
      }
      if (n == 0) throw bench_failure(std::string(where) + ": the pipe was closed mid-stream");
      end_ += static_cast<std::size_t>(n);
    }
  }

  int fd_;
  std::vector<std::byte> buffer_;
  std::size_t max_message_;
  std::size_t begin_ = 0;
  std::size_t end_ = 0;
};

std::chrono::seconds watchdog(const run_settings& s) {
  return s.timeout + 5s;
}

}  // namespace

std::size_t pipe_buffer_size(const run_settings& s) {
  pipe_fds p = make_sized_pipe(s);
  const int n = ::fcntl(p.write_end.get(), F_GETPIPE_SZ);
  return n > 0 ? static_cast<std::size_t>(n) : 0;
}

double pipe_throughput(std::size_t size, std::uint64_t count, const run_settings& s) {
  pipe_fds data = make_sized_pipe(s);
  start_gate gate;
  child producer = child::fork(
      [&] {
        gate.close_parent_ends();
        data.read_end.reset();
        payload p(size, s.fault);
        std::vector<std::byte> batch(std::max(s.pipe_batch, k_prefix + size));
        gate.child_ready_and_wait();
        std::size_t used = 0;
        const auto length = static_cast<std::uint32_t>(size);
        for (std::uint64_t seq = 0; seq < count; ++seq) {
          if (used + k_prefix + size > batch.size()) {
            write_all(data.write_end.get(), {batch.data(), used}, "pipe producer");
            used = 0;
          }
          std::memcpy(batch.data() + used, &length, k_prefix);
          p.write_to({batch.data() + used + k_prefix, size}, seq);
          used += k_prefix + size;
        }
        write_all(data.write_end.get(), {batch.data(), used}, "pipe producer");
      },
      watchdog(s), s.child_cpu);
  gate.close_child_ends();
  data.write_end.reset();  // so that a dead producer reads as EOF

  record_reader reader(data.read_end.get(), std::max(s.pipe_buffer, s.pipe_batch), size);
  payload expect(size);
  gate.parent_wait_ready();
  const auto t0 = clock::now();
  gate.parent_go();
  for (std::uint64_t seq = 0; seq < count; ++seq)
    expect.check(reader.next("pipe consumer"), seq, "pipe consumer");
  const auto t1 = clock::now();
  producer.join(5s);
  if (!reader.at_eof()) throw bench_failure("pipe consumer: more bytes than were sent");
  return std::chrono::duration<double>(t1 - t0).count();
}

std::vector<std::int64_t> pipe_round_trip(std::size_t size, std::uint64_t count,
                                          std::uint64_t warmup, const run_settings& s) {
  pipe_fds forward = make_sized_pipe(s);
  pipe_fds backward = make_sized_pipe(s);
  start_gate gate;
  const std::uint64_t total = warmup + count;
  child echo = child::fork(
      [&] {
        gate.close_parent_ends();
        forward.write_end.reset();
        backward.read_end.reset();
        record_reader reader(forward.read_end.get(), k_prefix + size, size);
        payload expect(size);
        gate.child_ready_and_wait();
        for (std::uint64_t seq = 0; seq < total; ++seq) {
          const auto msg = reader.next("pipe echo");
          // The length prefix sits right before the payload in the reader's buffer, so
          // the echo is one write() of the record as it came in.
          write_all(backward.write_end.get(), {msg.data() - k_prefix, k_prefix + msg.size()},
                    "pipe echo");
          expect.check(msg, seq, "pipe echo");
        }
      },
      watchdog(s), s.child_cpu);
  gate.close_child_ends();
  forward.read_end.reset();
  backward.write_end.reset();

  record_reader reader(backward.read_end.get(), k_prefix + size, size);
  payload p(size, s.fault);
  payload expect(size);
  const auto record_storage = std::make_unique<std::byte[]>(k_prefix + size);
  const std::span<std::byte> record{record_storage.get(), k_prefix + size};
  const auto length = static_cast<std::uint32_t>(size);
  std::memcpy(record.data(), &length, k_prefix);
  std::vector<std::int64_t> samples;
  samples.reserve(count);
  gate.parent_wait_ready();
  gate.parent_go();
  for (std::uint64_t seq = 0; seq < total; ++seq) {
    p.write_to({record.data() + k_prefix, size}, seq);
    const auto t0 = clock::now();
    write_all(forward.write_end.get(), record, "pipe round trip (send)");
    const auto reply = reader.next("pipe round trip (read)");
    const auto t1 = clock::now();
    expect.check(reply, seq, "pipe round trip (echo)");
    if (seq >= warmup)
      samples.push_back(std::chrono::duration_cast<std::chrono::nanoseconds>(t1 - t0).count());
  }
  forward.write_end.reset();  // the echo sees EOF if it expected more
  echo.join(5s);
  return samples;
}

}  // namespace ringmaster::bench
