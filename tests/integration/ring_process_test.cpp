// Rings between real processes: a producer and a consumer in separate forked processes
// exchange millions of random-length messages, each verified for order and content.
#include <gtest/gtest.h>

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <atomic>
#include <new>
#include <ringmaster/ipc/ring.hpp>
#include <ringmaster/ipc/segment.hpp>
#include <vector>

#include "child.hpp"
#include "pattern.hpp"

namespace ipc = ringmaster::ipc;
using ringmaster::test::check_pattern;
using ringmaster::test::fill_pattern;
using ringmaster::test::fork_child;
using ringmaster::test::pattern_length;
using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

namespace {

// What the consumer process reports back, since its exit code carries little.
struct consumer_report {
  std::atomic<std::uint64_t> verified{0};
  std::atomic<std::uint64_t> first_bad{~0ull};
  std::atomic<std::int32_t> error{0};
};

// One ring in an anonymous segment, followed by the consumer's report.
struct ring_fixture {
  ipc::ring_options options;
  ipc::segment seg;
  explicit ring_fixture(ipc::ring_options o, bool named = false) : options(o) {
    const auto size = ipc::ring_footprint(o) + 64 + sizeof(consumer_report);
    seg = named ? ipc::segment::create_named(size) : ipc::segment::create_anonymous(size);
    ipc::format_ring_or_throw(seg.bytes(), o);
    new (report_bytes(seg)) consumer_report{};
  }
  static void* report_bytes(const ipc::segment& s) { return s.bytes().data() + s.bytes().size() - sizeof(consumer_report); }
  consumer_report& report() { return *static_cast<consumer_report*>(report_bytes(seg)); }
};

// Writes `count` pattern messages in random bursts, publishing once per burst.
int produce(const ipc::segment& seg, const ipc::ring_options& o, std::uint64_t seed, std::uint64_t count,
            const ipc::wait_policy& policy) {
  auto w = ipc::ring_writer::attach(seg.bytes(), o);
  const auto deadline = clock_type::now() + 240s;
  std::vector<std::byte> buf(o.max_message);
  for (std::uint64_t i = 0; i < count;) {
    const std::uint64_t burst = 1 + ringmaster::test::mix(seed + i) % 16;
    for (std::uint64_t b = 0; b < burst && i < count; ++b, ++i) {
      auto part = std::span(buf).first(pattern_length(seed, i, o.max_message));
      fill_pattern(seed, i, part);
      auto ec = w.try_write(part);
      if (ec == ipc::errc::full) ec = w.send(part, deadline, policy);  // publishes the burst, then waits
      if (ec) return 10 + ec.value();
    }
    w.publish();
  }
  return 0;
}

// Reads and verifies `count` messages, releasing in random batches.
int consume(const ipc::segment& seg, const ipc::ring_options& o, std::uint64_t seed, std::uint64_t count,
            const ipc::wait_policy& policy, consumer_report& report) {
  auto r = ipc::ring_reader::attach(seg.bytes(), o);
  const auto deadline = clock_type::now() + 240s;
  for (std::uint64_t i = 0; i < count; ++i) {
    std::span<const std::byte> m;
    if (auto ec = r.read(m, deadline, policy)) {
      report.error.store(ec.value());
      return 2;
    }
    if (!check_pattern(seed, i, m, o.max_message)) {
      report.first_bad.store(i);
      return 3;
    }
    report.verified.store(i + 1, std::memory_order_relaxed);
    if (ringmaster::test::mix(i) % 8 == 0) r.release();
  }
  r.release();
  return 0;
}

void exchange(ring_fixture& f, std::uint64_t seed, std::uint64_t count, const ipc::wait_policy& policy) {
  auto consumer = fork_child([&] { return consume(f.seg, f.options, seed, count, policy, f.report()); });
  auto producer = fork_child([&] { return produce(f.seg, f.options, seed, count, policy); });
  auto p = producer.wait_for(300s);
  auto c = consumer.wait_for(300s);
  ASSERT_TRUE(p && c) << "a process hung: verified " << f.report().verified.load() << " of " << count;
  EXPECT_EQ(p->code(), 0) << p->to_string();
  EXPECT_EQ(c->code(), 0) << c->to_string() << ", first bad message " << f.report().first_bad.load() << ", error "
                          << f.report().error.load();
  EXPECT_EQ(f.report().verified.load(), count);
}

TEST(RingProcesses, MillionsOfRandomLengthMessagesArriveInOrderAndIntact) {
  ring_fixture f({.capacity = 1 << 18, .max_message = 16 << 10});
  exchange(f, 20261122, 3'000'000, ipc::wait_policy{});
}

TEST(RingProcesses, SleepingWaitsOnASmallRingLoseNoWakeUp) {
  // A 4 KiB ring is full or empty almost all the time, so both sides sleep and wake
  // constantly. Slices of an hour mean no periodic re-check hides a lost wake-up: one
  // would hang the test.
  ring_fixture f({.capacity = 4096, .max_message = 1024});
  exchange(f, 7, 300'000, ipc::wait_policy{std::chrono::nanoseconds(0), std::chrono::hours(1)});
}

TEST(RingProcesses, ShortSpinsThenSleepsLoseNoWakeUp) {
  ring_fixture f({.capacity = 8192, .max_message = 2048});
  exchange(f, 8, 300'000, ipc::wait_policy{std::chrono::microseconds(2), std::chrono::hours(1)});
}

TEST(RingProcesses, PeerOpeningTheSegmentByNameReceivesEverything) {
  // As an exec'd worker would: the consumer opens the named segment itself.
  ring_fixture f({.capacity = 1 << 16, .max_message = 4096}, /*named=*/true);
  const std::string name = f.seg.name();
  const auto options = f.options;
  auto consumer = fork_child([&] {
    auto mine = ipc::segment::open_named(name);
    auto& report = *static_cast<consumer_report*>(ring_fixture::report_bytes(mine));
    return consume(mine, options, 5, 200'000, {}, report);
  });
  ASSERT_EQ(produce(f.seg, f.options, 5, 200'000, {}), 0);
  auto c = consumer.wait_for(120s);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->code(), 0) << c->to_string();
  EXPECT_EQ(f.report().verified.load(), 200'000u);
}

TEST(RingProcesses, ReaderSleepingInPollIsWokenThroughEventfd) {
  // The dispatcher's way of waiting: many rings, one epoll loop, woken by an eventfd the
  // writers write to. The reader only ever sleeps in poll() with no timeout, so a lost
  // wake-up hangs the test.
  ring_fixture f({.capacity = 4096, .max_message = 1024});
  const int efd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  ASSERT_GE(efd, 0);
  constexpr std::uint64_t count = 200'000;
  auto producer = fork_child([&] {
    auto w = ipc::ring_writer::attach(f.seg.bytes(), f.options);
    w.wake_through(efd);
    std::vector<std::byte> buf(f.options.max_message);
    const auto deadline = clock_type::now() + 120s;
    for (std::uint64_t i = 0; i < count; ++i) {
      auto part = std::span(buf).first(pattern_length(4, i, f.options.max_message));
      fill_pattern(4, i, part);
      if (w.send(part, deadline, ipc::wait_policy::sleeping())) return 1;
    }
    return 0;
  });
  auto r = ipc::ring_reader::attach(f.seg.bytes(), f.options);
  std::uint64_t good = 0, sleeps = 0;
  for (std::uint64_t i = 0; i < count;) {
    std::span<const std::byte> m;
    if (auto ec = r.try_read(m); ec == ipc::errc::empty) {
      if (r.announce_sleep()) {
        pollfd p{efd, POLLIN, 0};
        ASSERT_EQ(::poll(&p, 1, -1), 1);
        std::uint64_t n;
        ASSERT_EQ(::read(efd, &n, sizeof n), static_cast<ssize_t>(sizeof n));
        r.withdraw_sleep();
        ++sleeps;
      }
      continue;
    } else {
      ASSERT_FALSE(ec) << ec.message();
    }
    good += check_pattern(4, i, m, f.options.max_message);
    ++i;
  }
  r.release();
  auto status = producer.wait_for(60s);
  ::close(efd);
  ASSERT_TRUE(status);
  EXPECT_EQ(status->code(), 0);
  EXPECT_EQ(good, count);
  EXPECT_GT(sleeps, 0u) << "the test must exercise the sleeping path";
}

TEST(RingProcesses, EchoThroughTwoRingsReturnsEveryMessage) {
  const ipc::ring_options o{.capacity = 1 << 16, .max_message = 4096};
  auto seg = ipc::segment::create_anonymous(2 * ipc::ring_footprint(o));
  auto to_child = seg.bytes().first(ipc::ring_footprint(o));
  auto from_child = seg.bytes().subspan(ipc::ring_footprint(o));
  ipc::format_ring_or_throw(to_child, o);
  ipc::format_ring_or_throw(from_child, o);
  constexpr std::uint64_t rounds = 100'000;
  auto echo = fork_child([&] {
    auto in = ipc::ring_reader::attach(to_child, o);
    auto out = ipc::ring_writer::attach(from_child, o);
    const auto deadline = clock_type::now() + 120s;
    for (std::uint64_t i = 0; i < rounds; ++i) {
      std::span<const std::byte> m;
      if (in.read(m, deadline)) return 1;
      if (out.send(m, deadline)) return 2;
      in.release();
    }
    return 0;
  });
  auto out = ipc::ring_writer::attach(to_child, o);
  auto in = ipc::ring_reader::attach(from_child, o);
  const auto deadline = clock_type::now() + 120s;
  std::vector<std::byte> buf(o.max_message);
  std::uint64_t good = 0;
  for (std::uint64_t i = 0; i < rounds; ++i) {
    auto part = std::span(buf).first(pattern_length(9, i, 256));
    fill_pattern(9, i, part);
    ASSERT_FALSE(out.send(part, deadline));
    std::span<const std::byte> m;
    ASSERT_FALSE(in.read(m, deadline));
    good += check_pattern(9, i, m, 256);
    in.release();
  }
  auto status = echo.wait_for(60s);
  ASSERT_TRUE(status);
  EXPECT_EQ(status->code(), 0);
  EXPECT_EQ(good, rounds);
}

}  // namespace
