// The doorbell across threads and processes, including a waiter killed in its sleep.
#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <new>
#include <ringmaster/ipc/doorbell.hpp>
#include <ringmaster/ipc/segment.hpp>
#include <thread>

#include "child.hpp"
#include "waits.hpp"

namespace ipc = ringmaster::ipc;
using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

namespace {

struct shared_flag {
  ipc::doorbell_word bell;
  std::atomic<std::uint32_t> flag{0};
  std::atomic<std::uint32_t> waiting{0};
};

shared_flag& in(ipc::segment& s) { return *new (s.bytes().data()) shared_flag{}; }

// A policy under which a missed wake-up would not be hidden by a timely re-check: the
// slice is longer than the test's ctest timeout.
constexpr ipc::wait_policy k_no_recheck{std::chrono::nanoseconds(0), std::chrono::hours(1)};

TEST(Doorbell, ReadyConditionReturnsAtOnce) {
  ipc::doorbell_word bell;
  EXPECT_TRUE(ipc::wait_until(bell, [] { return true; }, clock_type::now() + 1h));
}

TEST(Doorbell, NeverReadyTimesOutAtDeadline) {
  ipc::doorbell_word bell;
  const auto deadline = clock_type::now() + 30ms;
  EXPECT_FALSE(ipc::wait_until(bell, [] { return false; }, deadline));
  EXPECT_GE(clock_type::now(), deadline);
  EXPECT_EQ(bell.sleepers.load(), 0u) << "a waiter that leaves withdraws its announcement";
}

TEST(Doorbell, RingWakesSleepingThread) {
  ipc::doorbell_word bell;
  std::atomic<bool> flag{false};
  std::thread waiter([&] {
    EXPECT_TRUE(ipc::wait_until(bell, [&] { return flag.load(); }, clock_type::now() + 1h, k_no_recheck));
  });
  while (bell.sleepers.load() == 0) std::this_thread::yield();
  flag.store(true);
  ipc::ring(bell);
  waiter.join();
}

TEST(Doorbell, ManyRingsNeverLoseAWakeUp) {
  // Ping-pong 20,000 times with sleeping waits and no periodic re-check: any lost wake-up
  // hangs the test (caught by its ctest timeout).
  ipc::doorbell_word ping, pong;
  std::atomic<std::uint32_t> turn{0};
  constexpr std::uint32_t rounds = 20000;
  std::thread other([&] {
    for (std::uint32_t i = 0; i < rounds; ++i) {
      ASSERT_TRUE(ipc::wait_until(ping, [&] { return turn.load() == 2 * i + 1; }, clock_type::now() + 1h, k_no_recheck));
      turn.store(2 * i + 2);
      ipc::ring(pong);
    }
  });
  for (std::uint32_t i = 0; i < rounds; ++i) {
    turn.store(2 * i + 1);
    ipc::ring(ping);
    ASSERT_TRUE(ipc::wait_until(pong, [&] { return turn.load() == 2 * i + 2; }, clock_type::now() + 1h, k_no_recheck));
  }
  other.join();
}

TEST(Doorbell, RingWakesWaiterInAnotherProcess) {
  auto seg = ipc::segment::create_anonymous(sizeof(shared_flag));
  auto& s = in(seg);
  auto child = ringmaster::test::fork_child([&] {
    s.waiting.store(1);
    return ipc::wait_until(s.bell, [&] { return s.flag.load() != 0; }, clock_type::now() + 1h, k_no_recheck) ? 0 : 1;
  });
  ASSERT_TRUE(ringmaster::test::eventually([&] { return s.bell.sleepers.load() != 0; })) << "the waiter never went to sleep";
  s.flag.store(1);
  ipc::ring(s.bell);
  auto status = child.wait_for(30s);
  ASSERT_TRUE(status) << "the waiter in the other process was not woken";
  EXPECT_EQ(status->code(), 0);
}

TEST(Doorbell, WaiterKilledInItsSleepBlocksNobody) {
  auto seg = ipc::segment::create_anonymous(sizeof(shared_flag));
  auto& s = in(seg);
  auto child = ringmaster::test::fork_child([&] {
    (void)ipc::wait_until(s.bell, [] { return false; }, clock_type::now() + 1h, k_no_recheck);
    return 0;
  });
  ASSERT_TRUE(ringmaster::test::eventually([&] { return s.bell.sleepers.load() != 0; })) << "the waiter never went to sleep";
  child.kill_and_reap();
  // The dead waiter's announcement stays, but ringing neither blocks nor fails, and a new
  // waiter is woken as usual.
  // (0 if a spurious futex return had it between its wake and its next announcement.)
  const std::uint32_t stale = s.bell.sleepers.load();
  EXPECT_LE(stale, 1u);
  for (int i = 0; i < 100; ++i) ipc::ring(s.bell);
  std::thread waiter([&] {
    EXPECT_TRUE(ipc::wait_until(s.bell, [&] { return s.flag.load() != 0; }, clock_type::now() + 1h, k_no_recheck));
  });
  const bool asleep = ringmaster::test::eventually([&] { return s.bell.sleepers.load() > stale; });
  EXPECT_TRUE(asleep) << "the new waiter never went to sleep";
  s.flag.store(1);
  ipc::ring(s.bell);
  waiter.join();
}

}  // namespace
