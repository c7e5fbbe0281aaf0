// Unit tests of the ring's protocol in one process: sizes, wrap-around, full and empty,
// batching, reservations, reset and every kind of corruption a peer could leave.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <random>
#include <ringmaster/ipc/ring.hpp>
#include <ringmaster/ipc/segment.hpp>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "pattern.hpp"

namespace ipc = ringmaster::ipc;
using ringmaster::test::check_pattern;
using ringmaster::test::fill_pattern;
using ringmaster::test::pattern_length;
using namespace std::chrono_literals;

namespace {

std::span<const std::byte> bytes_of(std::string_view s) { return std::as_bytes(std::span(s.data(), s.size())); }
std::string_view text_of(std::span<const std::byte> b) {
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}

class RingTest : public testing::Test {
 protected:
  void make(ipc::ring_options o) {
    options = o;
    seg = ipc::segment::create_anonymous(ipc::ring_footprint(o));
    ipc::format_ring_or_throw(seg.bytes(), o);
    writer = ipc::ring_writer::attach(seg.bytes(), o);
    reader = ipc::ring_reader::attach(seg.bytes(), o);
  }
  void SetUp() override { make({.capacity = 4096, .max_message = 1024}); }

  ipc::detail::ring_header& header() { return *reinterpret_cast<ipc::detail::ring_header*>(seg.bytes().data()); }
  std::byte* data() { return seg.bytes().data() + ipc::detail::k_ring_data_offset; }
  // A writer that publishes one message, scribbles over head (the reader sees corrupt),
  // then puts the honest head back.
  void scribble_then_repair_head() {
    ASSERT_FALSE(writer.try_send(bytes_of("before")));
    const std::uint64_t honest = header().head.load();
    header().head.store(options.capacity * 4);
    std::span<const std::byte> m;
    ASSERT_EQ(reader.try_read(m), ipc::errc::corrupt);
    header().head.store(honest);
  }

  ipc::ring_options options;
  ipc::segment seg;
  ipc::ring_writer writer;
  ipc::ring_reader reader;
};

TEST_F(RingTest, EmptyRingAnswersEmpty) {
  std::span<const std::byte> m;
  EXPECT_EQ(reader.try_read(m), ipc::errc::empty);
}

TEST_F(RingTest, SentMessageIsReadBackWhole) {
  ASSERT_FALSE(writer.try_send(bytes_of("hello, ring")));
  std::span<const std::byte> m;
  ASSERT_FALSE(reader.try_read(m));
  EXPECT_EQ(text_of(m), "hello, ring");
  EXPECT_EQ(reader.try_read(m), ipc::errc::empty);
}

TEST_F(RingTest, EverySizeFromZeroToMaximumRoundTrips) {
  std::vector<std::byte> buf(options.max_message);
  for (std::size_t size = 0; size <= options.max_message; ++size) {
    fill_pattern(7, size, std::span(buf).first(size));
    ASSERT_FALSE(writer.try_send(std::span(buf).first(size))) << size;
    std::span<const std::byte> m;
    ASSERT_FALSE(reader.try_read(m)) << size;
    ASSERT_EQ(m.size(), size);
    ASSERT_EQ(std::memcmp(m.data(), buf.data(), size), 0) << size;
    reader.release();
  }
}

TEST_F(RingTest, OversizedMessageIsRefusedNotTruncated) {
  std::vector<std::byte> big(options.max_message + 1);
  const auto ec = writer.try_send(big);
  EXPECT_EQ(ec, ipc::errc::message_too_large);
  EXPECT_NE(ec.message().find("max_message"), std::string::npos) << ec.message();
  std::span<const std::byte> m;
  EXPECT_EQ(reader.try_read(m), ipc::errc::empty) << "nothing of the refused message may be visible";
  std::span<std::byte> room;
  EXPECT_EQ(writer.try_reserve(options.max_message + 1, room), ipc::errc::message_too_large);
  EXPECT_EQ(writer.send(big, std::chrono::steady_clock::now() + 1s), ipc::errc::message_too_large);
}

TEST_F(RingTest, FullRingRefusesUntilReaderReleases) {
  const std::vector<std::byte> msg(100);
  int sent = 0;
  while (!writer.try_send(msg)) ++sent;
  EXPECT_EQ(writer.try_send(msg), ipc::errc::full);
  EXPECT_EQ(sent, static_cast<int>(options.capacity / ipc::detail::frame_size(100)));

  std::span<const std::byte> m;
  ASSERT_FALSE(reader.try_read(m));
  EXPECT_EQ(writer.try_send(msg), ipc::errc::full) << "space comes back only on release()";
  reader.release();
  EXPECT_FALSE(writer.try_send(msg));
}

TEST_F(RingTest, WrapAroundKeepsOrderAndContent) {
  std::mt19937_64 rng(1);
  std::vector<std::byte> buf(options.max_message);
  std::uint64_t written = 0, read = 0;
  while (read < 20000) {
    // Write a random burst, read a random burst: the positions drift across the end of
    // the buffer in every possible phase.
    for (auto n = rng() % 6; n > 0; --n) {
      const auto len = pattern_length(3, written, options.max_message);
      fill_pattern(3, written, std::span(buf).first(len));
      if (writer.try_write(std::span(buf).first(len))) break;
      ++written;
    }
    writer.publish();
    for (auto n = rng() % 6; n > 0; --n) {
      std::span<const std::byte> m;
      if (reader.try_read(m)) break;
      ASSERT_TRUE(check_pattern(3, read, m, options.max_message)) << "message " << read;
      ++read;
    }
    reader.release();
  }
}

// Light traffic through a large ring keeps to its first pages (k_ring_working_set): the
// writer goes back to the start as soon as little is in flight, so a supervisor's rings
// stay a few pages resident however long it runs.
TEST_F(RingTest, LightTrafficKeepsToTheWorkingSetOfALargeRing) {
  make({.capacity = std::size_t{8} << 20, .max_message = std::size_t{1} << 20});
  const std::vector<std::byte> msg(64, std::byte{7});
  std::size_t furthest = 0;
  for (int i = 0; i < 200'000; ++i) {  // 16 MiB of frames: twice round the buffer without early wraps
    ASSERT_FALSE(writer.try_send(msg));
    std::span<const std::byte> m;
    ASSERT_FALSE(reader.try_read(m)) << i;
    ASSERT_EQ(m.size(), msg.size());
    furthest = std::max(furthest, static_cast<std::size_t>(m.data() - data()));
    reader.release();
  }
  EXPECT_LT(furthest, ipc::k_ring_working_set + 4096) << "frames were written " << furthest << " bytes in";
}

// The early wrap costs a backlog little room, and only until the reader's next read: a
// ring filled without reading after light traffic (the head anywhere in the working set
// or past it) holds at least the working set, and once one message is read, a whole
// buffer's worth, in order.
TEST_F(RingTest, BacklogAfterAnEarlyWrapGetsTheWholeBufferBackOnTheNextRead) {
  make({.capacity = std::size_t{256} << 10, .max_message = std::size_t{16} << 10});
  const std::size_t frame = ipc::detail::frame_size(100);
  std::uint64_t next_sent = 0, next_read = 0;
  std::vector<std::byte> msg(100);
  const auto fill = [&] {
    std::uint64_t n = 0;
    for (;; ++n, ++next_sent) {
      std::memcpy(msg.data(), &next_sent, sizeof next_sent);
      if (writer.try_send(msg)) return n;
    }
  };
  const auto read_one = [&] {
    std::span<const std::byte> m;
    ASSERT_FALSE(reader.try_read(m)) << next_read;
    std::uint64_t got = 0;
    std::memcpy(&got, m.data(), sizeof got);
    ASSERT_EQ(got, next_read++);
  };
  for (int round = 0; round < 40; ++round) {
    for (int i = 0; i < 97 * round; ++i) {  // light traffic: the head in every phase
      ASSERT_FALSE(writer.try_send(msg));
      std::span<const std::byte> m;
      ASSERT_FALSE(reader.try_read(m));
      reader.release();
    }
    next_sent = next_read = 0;
    EXPECT_GE(fill() * frame, ipc::k_ring_working_set - frame) << "round " << round;
    read_one();
    reader.release();
    fill();
    EXPECT_GE((next_sent - next_read) * frame, options.capacity - 2 * frame) << "round " << round;
    while (next_read < next_sent) read_one();
    reader.release();
  }
}

TEST_F(RingTest, StagedMessagesStayInvisibleUntilPublish) {
  for (int i = 0; i < 5; ++i) ASSERT_FALSE(writer.try_write(bytes_of(std::to_string(i))));
  std::span<const std::byte> m;
  EXPECT_EQ(reader.try_read(m), ipc::errc::empty);
  const auto head_before = header().head.load();
  writer.publish();
  EXPECT_NE(header().head.load(), head_before) << "one store publishes the whole batch";
  for (int i = 0; i < 5; ++i) {
    ASSERT_FALSE(reader.try_read(m));
    EXPECT_EQ(text_of(m), std::to_string(i));
  }
  EXPECT_EQ(reader.try_read(m), ipc::errc::empty);
}

TEST_F(RingTest, ReadSpansStayValidUntilRelease) {
  ASSERT_FALSE(writer.try_send(bytes_of("first")));
  ASSERT_FALSE(writer.try_send(bytes_of("second")));
  std::span<const std::byte> a, b;
  ASSERT_FALSE(reader.try_read(a));
  ASSERT_FALSE(reader.try_read(b));
  // The writer cannot reuse the space before release(), however hard it tries.
  const std::vector<std::byte> filler(200, std::byte{'x'});
  while (!writer.try_send(filler)) {
  }
  EXPECT_EQ(text_of(a), "first");
  EXPECT_EQ(text_of(b), "second");
}

TEST_F(RingTest, ReserveThenCommitFewerBytes) {
  std::span<std::byte> room;
  ASSERT_FALSE(writer.try_reserve(500, room));
  ASSERT_EQ(room.size(), 500u);
  std::memcpy(room.data(), "abc", 3);
  writer.commit(3);
  writer.publish();
  std::span<const std::byte> m;
  ASSERT_FALSE(reader.try_read(m));
  EXPECT_EQ(text_of(m), "abc");
}

TEST_F(RingTest, GatherWriteConcatenatesParts) {
  ASSERT_FALSE(writer.try_write({bytes_of("head|"), bytes_of(""), bytes_of("payload")}));
  writer.publish();
  std::span<const std::byte> m;
  ASSERT_FALSE(reader.try_read(m));
  EXPECT_EQ(text_of(m), "head|payload");
}

TEST_F(RingTest, BlockingReadTimesOutOnSilentWriter) {
  std::span<const std::byte> m;
  EXPECT_EQ(reader.read(m, std::chrono::steady_clock::now() + 20ms), ipc::errc::timed_out);
  EXPECT_EQ(reader.read(m, std::chrono::steady_clock::now() + 20ms, ipc::wait_policy::sleeping()),
            ipc::errc::timed_out);
}

TEST_F(RingTest, BlockingSendTimesOutOnFullRing) {
  const std::vector<std::byte> msg(500);
  while (!writer.try_send(msg)) {
  }
  EXPECT_EQ(writer.send(msg, std::chrono::steady_clock::now() + 20ms), ipc::errc::timed_out);
}

TEST_F(RingTest, ResetEmptiesRingAndBumpsGeneration) {
  ASSERT_FALSE(writer.try_send(bytes_of("stale")));
  const auto gen = writer.generation();
  EXPECT_EQ(gen, 1u);
  // The reader "died": the writer survives and resets.
  writer.reset();
  EXPECT_EQ(writer.generation(), gen + 1);
  auto fresh = ipc::ring_reader::attach(seg.bytes(), options);
  EXPECT_EQ(fresh.generation(), gen + 1);
  std::span<const std::byte> m;
  EXPECT_EQ(fresh.try_read(m), ipc::errc::empty) << "nothing stale is read after reset";
  ASSERT_FALSE(writer.try_send(bytes_of("new")));
  ASSERT_FALSE(fresh.try_read(m));
  EXPECT_EQ(text_of(m), "new");
}

TEST_F(RingTest, ReaderResetLetsNewWriterAttach) {
  ASSERT_FALSE(writer.try_send(bytes_of("x")));
  std::error_code ec;
  auto second = ipc::ring_writer::attach(seg.bytes(), options, ec);
  EXPECT_EQ(ec, ipc::errc::in_use) << "a writer cannot resume another's sequence";
  EXPECT_FALSE(second.valid());
  reader.reset();  // the writer "died"
  second = ipc::ring_writer::attach(seg.bytes(), options, ec);
  ASSERT_FALSE(ec) << ec.message();
  ASSERT_FALSE(second.try_send(bytes_of("after")));
  std::span<const std::byte> m;
  ASSERT_FALSE(reader.try_read(m));
  EXPECT_EQ(text_of(m), "after");
}

TEST(RingOptions, InvalidGeometryIsRefused) {
  auto seg = ipc::segment::create_anonymous(1 << 16);
  EXPECT_EQ(ipc::format_ring(seg.bytes(), {.capacity = 1000, .max_message = 100}), ipc::errc::bad_options);
  EXPECT_EQ(ipc::format_ring(seg.bytes(), {.capacity = 128, .max_message = 16}), ipc::errc::bad_options);
  EXPECT_EQ(ipc::format_ring(seg.bytes(), {.capacity = 4096, .max_message = 2048}), ipc::errc::bad_options);
  EXPECT_EQ(ipc::format_ring(seg.bytes().first(1000), {.capacity = 4096, .max_message = 64}), ipc::errc::bad_layout);
  EXPECT_THROW(ipc::format_ring_or_throw(seg.bytes(), {.capacity = 1000, .max_message = 1}), std::system_error);
}

TEST(RingOptions, AttachWithOtherGeometryIsRefused) {
  auto seg = ipc::segment::create_anonymous(1 << 16);
  ASSERT_FALSE(ipc::format_ring(seg.bytes(), {.capacity = 4096, .max_message = 1024}));
  std::error_code ec;
  auto r = ipc::ring_reader::attach(seg.bytes(), {.capacity = 8192, .max_message = 1024}, ec);
  EXPECT_EQ(ec, ipc::errc::bad_layout);
  EXPECT_FALSE(r.valid());
  auto w = ipc::ring_writer::attach(seg.bytes(), {.capacity = 4096, .max_message = 512}, ec);
  EXPECT_EQ(ec, ipc::errc::bad_layout);
  EXPECT_THROW((void)ipc::ring_writer::attach(seg.bytes(), {.capacity = 4096, .max_message = 512}),
               std::system_error);
  std::vector<std::byte> unformatted(1 << 14);
  (void)ipc::ring_reader::attach(std::span(unformatted).subspan(0), {.capacity = 4096, .max_message = 1024}, ec);
  EXPECT_TRUE(ec == ipc::errc::bad_layout) << ec.message();
}

// --- A broken or hostile writer: the reader reports corrupt and never reads out of bounds.

TEST_F(RingTest, HeadBeyondOneBufferIsCorrupt) {
  header().head.store(options.capacity + 8);
  std::span<const std::byte> m;
  EXPECT_EQ(reader.try_read(m), ipc::errc::corrupt);
  EXPECT_EQ(reader.try_read(m), ipc::errc::corrupt) << "stays corrupt until reset";
  reader.reset();
  EXPECT_EQ(reader.try_read(m), ipc::errc::empty);
}

// Found by fuzz/frame_fuzz.cpp: a writer that scribbled, then repaired the index (or
// published over it honestly), was trusted again.
TEST_F(RingTest, CorruptStaysCorruptAfterTheWriterRepairsTheIndex) {
  scribble_then_repair_head();
  std::span<const std::byte> m;
  EXPECT_TRUE(reader.readable());
  EXPECT_EQ(reader.try_read(m), ipc::errc::corrupt);
  reader.reset();
  EXPECT_FALSE(reader.readable());
  EXPECT_EQ(reader.try_read(m), ipc::errc::empty);
}

// A moved handle keeps everything it learnt: a reader that saw a corrupt frame still
// distrusts that writer after a move (the hand-written move assignment once forgot it).
TEST_F(RingTest, CorruptSurvivesAMoveOfTheReader) {
  scribble_then_repair_head();
  std::span<const std::byte> m;
  ipc::ring_reader constructed(std::move(reader));
  EXPECT_FALSE(reader.valid());  // NOLINT(bugprone-use-after-move): a moved-from handle is unattached
  EXPECT_EQ(constructed.try_read(m), ipc::errc::corrupt) << "move construction";
  ipc::ring_reader assigned;
  assigned = std::move(constructed);
  EXPECT_FALSE(constructed.valid());  // NOLINT(bugprone-use-after-move)
  EXPECT_TRUE(assigned.readable());
  EXPECT_EQ(assigned.try_read(m), ipc::errc::corrupt) << "move assignment";
  assigned.reset();
  EXPECT_EQ(assigned.try_read(m), ipc::errc::empty);
}

// A moved writer keeps its open reservation and its staged messages.
TEST_F(RingTest, MovedWriterKeepsItsReservationAndStagedMessages) {
  ASSERT_FALSE(writer.try_write(bytes_of("staged")));
  std::span<std::byte> room;
  ASSERT_FALSE(writer.try_reserve(8, room));
  std::memcpy(room.data(), "reserved", 8);
  ipc::ring_writer moved;
  moved = std::move(writer);
  EXPECT_FALSE(writer.valid());  // NOLINT(bugprone-use-after-move): a moved-from handle is unattached
  moved.commit(8);
  moved.publish();
  std::span<const std::byte> m;
  ASSERT_FALSE(reader.try_read(m));
  EXPECT_EQ(text_of(m), "staged");
  ASSERT_FALSE(reader.try_read(m));
  EXPECT_EQ(text_of(m), "reserved");
  EXPECT_EQ(reader.try_read(m), ipc::errc::empty);
}

TEST_F(RingTest, MisalignedOrBackwardsHeadIsCorrupt) {
  header().head.store(12);
  std::span<const std::byte> m;
  EXPECT_EQ(reader.try_read(m), ipc::errc::corrupt);
  reader.reset();
  auto w = ipc::ring_writer::attach(seg.bytes(), options);
  ASSERT_FALSE(w.try_send(bytes_of("0123456789")));
  ASSERT_FALSE(reader.try_read(m));
  header().head.store(8);  // moves backwards
  EXPECT_EQ(reader.try_read(m), ipc::errc::corrupt);
}

TEST_F(RingTest, FrameLengthOverMaximumIsCorrupt) {
  ASSERT_FALSE(writer.try_send(bytes_of("ok")));
  const std::uint32_t huge = static_cast<std::uint32_t>(options.max_message + 1);
  std::memcpy(data(), &huge, sizeof huge);
  std::span<const std::byte> m;
  EXPECT_EQ(reader.try_read(m), ipc::errc::corrupt);
}

TEST_F(RingTest, FrameLongerThanPublishedBytesIsCorrupt) {
  ASSERT_FALSE(writer.try_send(bytes_of("ok")));
  const std::uint32_t longer = 200;  // within max_message, beyond what head published
  std::memcpy(data(), &longer, sizeof longer);
  std::span<const std::byte> m;
  EXPECT_EQ(reader.try_read(m), ipc::errc::corrupt);
}

TEST_F(RingTest, WrongSequenceNumberIsCorrupt) {
  ASSERT_FALSE(writer.try_send(bytes_of("ok")));
  const std::uint32_t seq = 41;
  std::memcpy(data() + 4, &seq, sizeof seq);
  std::span<const std::byte> m;
  EXPECT_EQ(reader.try_read(m), ipc::errc::corrupt);
}

TEST_F(RingTest, WrapMarkerPastPublishedBytesIsCorrupt) {
  ASSERT_FALSE(writer.try_send(bytes_of("ok")));
  const std::uint32_t wrap = ipc::detail::k_wrap_marker;
  std::memcpy(data(), &wrap, sizeof wrap);
  std::span<const std::byte> m;
  EXPECT_EQ(reader.try_read(m), ipc::errc::corrupt);
}

// --- A broken or hostile reader: the writer reports corrupt rather than overwrite.

TEST_F(RingTest, TailBeyondPublishedIsCorrupt) {
  const std::vector<std::byte> msg(1000);
  while (!writer.try_send(msg)) {
  }
  header().tail.store(1u << 20);
  EXPECT_EQ(writer.try_send(msg), ipc::errc::corrupt);
  header().tail.store(4);  // misaligned
  EXPECT_EQ(writer.try_send(msg), ipc::errc::corrupt);
}

TEST(RingThreads, WriterAndReaderThreadsExchangeAMillionMessages) {
  const ipc::ring_options o{.capacity = 1 << 16, .max_message = 512};
  auto seg = ipc::segment::create_anonymous(ipc::ring_footprint(o));
  ipc::format_ring_or_throw(seg.bytes(), o);
  auto w = ipc::ring_writer::attach(seg.bytes(), o);
  auto r = ipc::ring_reader::attach(seg.bytes(), o);
  constexpr std::uint64_t count = 1'000'000;
  constexpr std::uint64_t seed = 11;
  std::thread producer([&] {
    std::vector<std::byte> buf(o.max_message);
    const auto deadline = std::chrono::steady_clock::now() + 60s;
    for (std::uint64_t i = 0; i < count; ++i) {
      auto part = std::span(buf).first(pattern_length(seed, i, o.max_message));
      fill_pattern(seed, i, part);
      if (w.send(part, deadline, ipc::wait_policy::sleeping())) return;
    }
  });
  std::uint64_t good = 0;
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  for (std::uint64_t i = 0; i < count; ++i) {
    std::span<const std::byte> m;
    if (r.read(m, deadline, ipc::wait_policy::sleeping())) break;
    if (!check_pattern(seed, i, m, o.max_message)) break;
    ++good;
    if (i % 64 == 0) r.release();
  }
  r.release();
  producer.join();
  EXPECT_EQ(good, count);
}

}  // namespace
