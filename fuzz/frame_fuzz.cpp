// fuzz/frame_fuzz.cpp — libFuzzer target: the supervisor's reading end of a worker's result
// ring, with the worker hostile. The ring's bytes are shared with the worker, so anything
// in them may change at any moment: this target interleaves honest messages from the
// writer with arbitrary overwrites of any byte of the region (header included), and reads
// and decodes (wire::decode) what the reader accepts, as the dispatcher does.
//
// Properties beyond "no crash, no out-of-bounds read, no UB" (ASan + UBSan): every message
// the reader hands out lies inside the ring's buffer and is at most max_message bytes;
// once the reader says corrupt it says so until reset (the supervisor kills the worker on
// the first one); the process never loops: every operation is bounded.
//
// Input: a sequence of operations, one byte of opcode each, then its operands.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <span>
#include <system_error>
#include <vector>

#include <ringmaster/ipc/errc.hpp>
#include <ringmaster/ipc/ring.hpp>
#include <ringmaster/worker/detail/wire.hpp>

namespace {

void require(bool ok) {
  if (!ok) std::abort();
}

class input {
 public:
  input(const std::uint8_t* data, std::size_t size) : data_(data), size_(size) {}
  [[nodiscard]] bool empty() const { return at_ >= size_; }
  std::uint8_t byte() { return at_ < size_ ? data_[at_++] : 0; }
  std::uint16_t u16() { return static_cast<std::uint16_t>(byte() | (byte() << 8)); }
  std::span<const std::uint8_t> bytes(std::size_t n) {
    n = std::min(n, size_ - std::min(at_, size_));
    std::span<const std::uint8_t> out(data_ + at_, n);
    at_ += n;
    return out;
  }

 private:
  const std::uint8_t* data_;
  std::size_t size_;
  std::size_t at_ = 0;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace ringmaster;
  const ipc::ring_options options{.capacity = 1024, .max_message = 256};
  // Rings are 64-byte aligned, as a mapping is.
  struct alignas(64) line {
    std::byte bytes[64];
  };
  std::vector<line> storage(ipc::ring_footprint(options) / sizeof(line));
  const std::span<std::byte> region(storage.front().bytes, storage.size() * sizeof(line));
  ipc::format_ring_or_throw(region, options);
  ipc::ring_writer writer = ipc::ring_writer::attach(region, options);
  ipc::ring_reader reader = ipc::ring_reader::attach(region, options);
  const std::byte* const buffer_begin = region.data() + ipc::detail::k_ring_data_offset;
  const std::byte* const buffer_end = region.data() + region.size();

  input in(data, size);
  bool corrupt = false;
  for (int op = 0; op < 4096 && !in.empty(); ++op) {
    switch (in.byte() % 5) {
      case 0: {  // the worker sends an honest message (a wire message, or raw bytes)
        const std::uint8_t n = in.byte();
        if (!writer.valid()) break;
        if (n % 2 == 0) {
          wire::message m{.type = wire::kind::result, .token = n, .id = "job", .body = "x"};
          (void)wire::encode(writer, m);
        } else {
          const auto body = in.bytes(n % 200);
          (void)writer.try_write(std::as_bytes(body));
        }
        writer.publish();
        break;
      }
      case 1: {  // the worker scribbles over any bytes of the region, header included
        const std::size_t offset = in.u16() % region.size();
        const auto bytes = in.bytes(std::min<std::size_t>(in.byte() % 17, region.size() - offset));
        std::memcpy(region.data() + offset, bytes.data(), bytes.size());
        break;
      }
      case 2:    // the supervisor reads, decodes and releases
      case 3: {  // ... or reads and keeps the message a while
        std::span<const std::byte> message;
        const std::error_code ec = reader.try_read(message);
        if (corrupt) require(ec == ipc::errc::corrupt);
        if (ec == ipc::errc::corrupt) corrupt = true;
        if (!ec) {
          require(message.size() <= options.max_message);
          require(message.empty() || (message.data() >= buffer_begin && message.data() + message.size() <= buffer_end));
          if (const auto m = wire::decode(message)) {
            for (const std::string_view part : {m->pool, m->job_type, m->id, m->body}) {
              const auto* p = reinterpret_cast<const std::byte*>(part.data());
              require(part.empty() || (p >= message.data() && p + part.size() <= message.data() + message.size()));
            }
          }
          if (in.byte() % 2 == 0) reader.release();
        }
        (void)reader.readable();
        break;
      }
      default: {  // the supervisor resets the ring for a replacement worker
        reader.reset();
        std::error_code ec;
        writer = ipc::ring_writer::attach(region, options, ec);
        corrupt = false;
        break;
      }
    }
  }
  return 0;
}
