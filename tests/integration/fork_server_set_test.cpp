// The fork servers as one object (supervisor/src/fork_server_set.hpp), on real processes
// and without a dispatcher: what it reports when the active server dies, what promote()
// does, a standby that dies and is replaced, and close() ending the tree. The decisions
// themselves are unit-tested (tests/unit/policy/fork_server_succession_test.cpp); what a
// server's death means for workers and pools, through the API, in fork_server_test.cpp.
//
// Every wait is on the set's sockets (the epoll it watches them in), bounded by k_wait.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <chrono>
#include <fork_server_set.hpp>
#include <optional>
#include <ringmaster/worker/detail/log.hpp>

#include "process_watch.hpp"
#include "waits.hpp"

namespace {

using ringmaster::detail::fork_server_set;
using ringmaster::detail::succession;
using ringmaster::test::gone;
using ringmaster::test::identify;
using ringmaster::test::k_wait;

// A started set whose sockets are watched in an epoll of its own.
class ForkServerSet : public testing::Test {
 protected:
  void SetUp() override {
    epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
    ASSERT_GE(epoll_fd_, 0);
    set_.start();
    set_.watch_in(epoll_fd_);
  }
  void TearDown() override {
    set_.close();
    ::close(epoll_fd_);
  }

  // Waits until `done()` holds, sleeping in the set's epoll between looks: each look
  // follows a socket that spoke (or ended), not a timer.
  template <class Done>
  bool await_sockets(Done&& done) {
    const auto deadline = std::chrono::steady_clock::now() + k_wait;
    for (;;) {
      if (done()) return true;
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return done();
      epoll_event ev[4];
      (void)::epoll_wait(epoll_fd_, ev, 4, static_cast<int>(left.count()));
    }
  }

  int epoll_fd_ = -1;
  fork_server_set set_{"fork-server-set-test", ringmaster::detail::logger("supervisor")};
};

TEST_F(ForkServerSet, StartsWithAnActiveServerAndADistinctStandby) {
  const auto st = set_.status();
  EXPECT_TRUE(set_.has_active());
  EXPECT_GT(st.active_pid, 0);
  EXPECT_EQ(st.active_pid, set_.pid());
  EXPECT_GT(st.standby_pid, 0);
  EXPECT_NE(st.standby_pid, st.active_pid);
  EXPECT_EQ(st.promotions, 0u);
  EXPECT_EQ(set_.deadline(), std::chrono::steady_clock::time_point::max());  // no retry pending
}

TEST_F(ForkServerSet, AKilledActiveServerIsReportedGoneAndPromotionPutsTheStandbyInItsPlace) {
  const auto before = set_.status();
  const auto dead_id = set_.active_id();
  const auto dead = identify(before.active_pid);
  ASSERT_TRUE(dead);

  set_.kill_active();
  bool gone_seen = false;
  ASSERT_TRUE(await_sockets([&] { return gone_seen = gone_seen || set_.poll().gone; }));

  const succession next = set_.promote();
  EXPECT_TRUE(next.promote);
  EXPECT_TRUE(next.fork_standby);
  EXPECT_FALSE(next.give_up);
  const auto after = set_.status();
  EXPECT_TRUE(set_.has_active());
  EXPECT_EQ(set_.pid(), before.standby_pid);  // the standby took over
  EXPECT_EQ(set_.active_id(), dead_id + 1);   // under a new id: its workers are told apart
  EXPECT_EQ(after.promotions, 1u);
  EXPECT_GT(after.standby_pid, 0);  // and a new standby was forked at once
  EXPECT_NE(after.standby_pid, before.standby_pid);
  EXPECT_NE(after.standby_pid, before.active_pid);
  EXPECT_TRUE(ringmaster::test::eventually([&] { return gone(*dead); }));  // reaped by the zygote

  // The promoted server is the one that answers now: its socket is the active one.
  const auto report = set_.poll();
  EXPECT_FALSE(report.gone);
  EXPECT_TRUE(report.events.empty());
}

TEST_F(ForkServerSet, AStandbyThatDiesIsReplacedAndTheActiveServerStays) {
  const auto before = set_.status();
  ASSERT_EQ(::kill(before.standby_pid, SIGKILL), 0);

  ASSERT_TRUE(await_sockets([&] { return set_.tend(); }));
  const auto after = set_.status();
  EXPECT_EQ(set_.pid(), before.active_pid);
  EXPECT_EQ(after.promotions, 0u);
  EXPECT_GT(after.standby_pid, 0);
  EXPECT_NE(after.standby_pid, before.standby_pid);
  EXPECT_EQ(after.standby_failures, 0u);
  EXPECT_FALSE(set_.tend());  // nothing more to do
}

TEST_F(ForkServerSet, CloseEndsEveryServer) {
  const auto st = set_.status();
  const auto active = identify(st.active_pid), standby = identify(st.standby_pid);
  ASSERT_TRUE(active && standby);

  set_.close();
  EXPECT_FALSE(set_.has_active());
  // The zygote, our child, is reaped by close(); its servers end with it.
  EXPECT_TRUE(ringmaster::test::eventually([&] { return gone(*active) && gone(*standby); }));
  set_.close();  // idempotent
}

}  // namespace
