// The messages between a supervisor and a worker (ringmaster/worker/detail/wire.hpp),
// through a real ring in one process: every header field comes back as it was written,
// each in its own field.
#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <ringmaster/ipc/ring.hpp>
#include <ringmaster/ipc/segment.hpp>
#include <ringmaster/worker/detail/wire.hpp>
#include <string>
#include <string_view>

namespace ipc = ringmaster::ipc;
namespace wire = ringmaster::wire;

namespace {

class Wire : public testing::Test {
 protected:
  void SetUp() override {
    seg = ipc::segment::create_anonymous(ipc::ring_footprint(options));
    ipc::format_ring_or_throw(seg.bytes(), options);
    writer = ipc::ring_writer::attach(seg.bytes(), options);
    reader = ipc::ring_reader::attach(seg.bytes(), options);
  }

  // `m` written, published and read back.
  std::optional<wire::message> round_trip(const wire::message& m) {
    if (auto ec = wire::encode(writer, m)) {
      ADD_FAILURE() << "encode: " << ec.message();
      return std::nullopt;
    }
    writer.publish();
    std::span<const std::byte> bytes;
    if (auto ec = reader.try_read(bytes)) {
      ADD_FAILURE() << "try_read: " << ec.message();
      return std::nullopt;
    }
    return wire::decode(bytes);
  }

  ipc::ring_options options{.capacity = 1 << 16, .max_message = 8192};
  ipc::segment seg;
  ipc::ring_writer writer;
  ipc::ring_reader reader;
};

TEST_F(Wire, AResultCarriesItsRunTimeInAFieldOfItsOwn) {
  const auto m = round_trip({.type = wire::kind::result, .status = 4, .attempt = 3, .run_us = 123'456, .token = 77,
                             .body = "value"});
  ASSERT_TRUE(m);
  EXPECT_EQ(m->type, wire::kind::result);
  EXPECT_EQ(m->status, 4);
  EXPECT_EQ(m->attempt, 3u) << "the run time must not be folded into the attempt";
  EXPECT_EQ(m->run_us, 123'456u);
  EXPECT_EQ(m->token, 77u);
  EXPECT_EQ(m->body, "value");
}

TEST_F(Wire, EveryFieldOfAJobComesBackAsWritten) {
  const auto m = round_trip({.type = wire::kind::job, .attempt = 2, .run_us = std::numeric_limits<std::uint32_t>::max(),
                             .token = std::numeric_limits<std::uint64_t>::max(), .pool = "compute", .job_type = "primes",
                             .id = "job-1", .body = "1000"});
  ASSERT_TRUE(m);
  EXPECT_EQ(m->type, wire::kind::job);
  EXPECT_EQ(m->attempt, 2u);
  EXPECT_EQ(m->run_us, std::numeric_limits<std::uint32_t>::max());
  EXPECT_EQ(m->token, std::numeric_limits<std::uint64_t>::max());
  EXPECT_EQ(m->pool, "compute");
  EXPECT_EQ(m->job_type, "primes");
  EXPECT_EQ(m->id, "job-1");
  EXPECT_EQ(m->body, "1000");
}

}  // namespace
