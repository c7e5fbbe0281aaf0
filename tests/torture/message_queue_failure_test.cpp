// Why ringmaster does not build on boost::interprocess::message_queue: what happens to it,
// with real processes, when one of its users is SIGKILLed. Each test asserts what this
// machine really does (Boost 1.81, glibc 2.36, Linux), so a Boost or glibc that behaves
// differently shows up here as a failing test, and ARCHITECTURE.md ("The queues") gets
// revisited.
//
// message_queue is a robust process-shared pthread mutex and two process-shared pthread
// condition variables, in shared memory.
//
//  * A receiver killed while blocked in receive() dies inside pthread_cond_wait() and
//    keeps, forever, the reference it took on its condition-variable group (glibc's
//    __g_refs); it also still counts as a blocked receiver, so every send() notifies.
//    The next notify is spent on the dead receiver: a replacement receiver that was
//    already asleep is not woken, although the message sits in the queue. As soon as a
//    notify has to switch groups — the first send() after a new receiver went to sleep —
//    pthread_cond_signal() waits for the dead receiver's reference to go
//    (__condvar_quiesce_and_switch_g1), which never happens: that send() hangs forever;
//    try_send() and timed_send() too, since the notify comes after the message is queued
//    and ignores the deadline. Boost 1.81 notifies while still holding the queue's mutex
//    (despite its comment), so every other use of the queue then blocks as well, and
//    killing the stuck sender leaves that mutex owner-dead: the queue is unusable for good.
//  * A process killed while holding an interprocess_mutex: the next lock() gets EOWNERDEAD
//    from glibc; Boost, which cannot tell its caller, unlocks without making the mutex
//    consistent, so it becomes unrecoverable and every later lock(), in any process,
//    throws lock_exception(not_recoverable). Worse, a try_lock() on it (which throws too)
//    leaves it locked for good (a glibc 2.36 bug): lock() then hangs instead of throwing.
//
// Every wait is bounded: what must finish gets k_finish_bound, what is expected to hang is
// watched for k_hang_bound and then killed. Queues have unique names starting with
// "ringmaster-" and are removed on every path.
#include <gtest/gtest.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdio>
#include <fstream>
#include <functional>
#include <new>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <boost/interprocess/exceptions.hpp>
#include <boost/interprocess/ipc/message_queue.hpp>
#include <boost/interprocess/sync/interprocess_mutex.hpp>
#include <ringmaster/ipc/segment.hpp>

#include "child.hpp"
#include "waits.hpp"

namespace {

using namespace std::chrono_literals;
namespace bip = boost::interprocess;
namespace ipc = ringmaster::ipc;
using ringmaster::test::child_process;
using ringmaster::test::eventually;
using ringmaster::test::exit_status;
using ringmaster::test::fork_child;

constexpr auto k_finish_bound = 3000ms;  // what works finishes long before this
constexpr auto k_hang_bound = 3000ms;    // what has not finished by then is taken as hung

// A named message_queue private to one test, removed on every path (the leak guard fails
// the test if it is left in /dev/shm).
class scoped_queue {
 public:
  scoped_queue() : name_("ringmaster-test-mq-" + std::to_string(::getpid()) + "-" + std::to_string(++count_)) {
    bip::message_queue::remove(name_.c_str());
    bip::message_queue(bip::create_only, name_.c_str(), 16, 64);
  }
  ~scoped_queue() { bip::message_queue::remove(name_.c_str()); }
  scoped_queue(const scoped_queue&) = delete;
  scoped_queue& operator=(const scoped_queue&) = delete;

  [[nodiscard]] const char* name() const noexcept { return name_.c_str(); }

 private:
  static inline unsigned count_ = 0;
  std::string name_;
};

// What the children tell the test, in anonymous shared memory.
struct shared_flags {
  std::atomic<int> received{0};  // messages a receiver child got
};

// True while `pid` sleeps inside the futex system call, which is where pthread_cond_wait
// and pthread_cond_signal block: proof that a child is really blocked, not about to be.
bool asleep_in_futex(pid_t pid) {
  const std::string proc = "/proc/" + std::to_string(pid);
  std::ifstream stat(proc + "/stat");
  std::string line;
  std::getline(stat, line);
  const auto close = line.rfind(')');
  if (close == std::string::npos || close + 2 >= line.size() || line[close + 2] != 'S') return false;
  std::ifstream syscall_file(proc + "/syscall");
  if (long nr = -1; syscall_file >> nr) return nr == SYS_futex;
  std::ifstream wchan(proc + "/wchan");  // no access to /proc/<pid>/syscall: the kernel's view
  std::string where;
  wchan >> where;
  return where.find("futex") != std::string::npos;
}

// Bounded wait for a child that must finish; a hung child is killed and reported.
exit_status finish(child_process& child) {
  if (auto st = child.wait_for(k_finish_bound)) return *st;
  ADD_FAILURE() << "child " << child.pid() << " did not finish within " << k_finish_bound.count() << " ms";
  return child.kill_and_reap();
}

// A receiver that receives forever, counting in flags.received: whenever the queue is
// empty it is blocked in receive(), until killed.
child_process start_receiver(const scoped_queue& queue, shared_flags& flags) {
  return fork_child([&] {
    bip::message_queue q(bip::open_only, queue.name());
    char buffer[64];
    for (;;) {
      std::size_t size = 0;
      unsigned priority = 0;
      q.receive(buffer, sizeof buffer, size, priority);
      flags.received.fetch_add(1);
    }
    return 0;
  });
}

enum class send_kind { send, try_send, timed_send };

// Sends one message in a child; exit 0 once the call returned true.
child_process start_sender(const scoped_queue& queue, send_kind kind) {
  return fork_child([&queue, kind] {
    bip::message_queue q(bip::open_only, queue.name());
    const char job[8] = "job";
    switch (kind) {
      case send_kind::send: q.send(job, sizeof job, 0); return 0;
      case send_kind::try_send: return q.try_send(job, sizeof job, 0) ? 0 : 1;
      case send_kind::timed_send:
        return q.timed_send(job, sizeof job, 0, std::chrono::system_clock::now() + 100ms) ? 0 : 1;
    }
    return 2;
  });
}

// Runs `fn` in a child; nullopt (and the child killed) if it has not ended within `bound`.
std::optional<exit_status> run_bounded(const std::function<int()>& fn, std::chrono::milliseconds bound) {
  child_process child = fork_child(fn);
  if (auto st = child.wait_for(bound)) return st;
  child.kill_and_reap();
  return std::nullopt;
}

// Exit code of a child whose Boost call threw interprocess_exception: this plus its code.
constexpr int k_threw = 100;
constexpr int k_threw_not_recoverable = k_threw + bip::not_recoverable;

// In a child: the number of messages queued (get_num_msg takes the queue's mutex), or
// k_threw + the error code.
std::function<int()> count_messages(const scoped_queue& queue) {
  return [&queue] {
    try {
      return static_cast<int>(bip::message_queue(bip::open_only, queue.name()).get_num_msg());
    } catch (const bip::interprocess_exception& e) {
      return k_threw + e.get_error_code();
    }
  };
}

// Arrange step shared by the tests below: a receiver blocked in receive() on the empty
// queue is SIGKILLed.
void kill_a_receiver_blocked_in_receive(const scoped_queue& queue, shared_flags& flags) {
  child_process receiver = start_receiver(queue, flags);
  ASSERT_TRUE(eventually([&] { return asleep_in_futex(receiver.pid()); })) << "the receiver never blocked";
  std::this_thread::sleep_for(20ms);
  receiver.kill_and_reap();
}

// The receiver was killed in receive(); the first send still completes (it wakes no one);
// a replacement receiver takes that message and blocks for the next; then one more send
// of the given kind never returns.
void expect_send_hangs_after_receiver_killed_in_receive(send_kind kind) {
  scoped_queue queue;
  auto shm = ipc::segment::create_anonymous(sizeof(shared_flags));
  auto& flags = *new (shm.bytes().data()) shared_flags{};
  ASSERT_NO_FATAL_FAILURE(kill_a_receiver_blocked_in_receive(queue, flags));

  child_process first = start_sender(queue, send_kind::send);
  const exit_status first_status = finish(first);
  ASSERT_TRUE(first_status.exited() && first_status.code() == 0)
      << "the first send after the receiver's death: " << first_status.to_string();

  child_process replacement = start_receiver(queue, flags);
  ASSERT_TRUE(eventually([&] { return flags.received.load() == 1 && asleep_in_futex(replacement.pid()); }))
      << "the replacement receiver did not take the first message and block for the next";
  std::this_thread::sleep_for(20ms);

  child_process sender = start_sender(queue, kind);
  const std::optional<exit_status> sent = sender.wait_for(k_hang_bound);

  ASSERT_FALSE(sent.has_value()) << "the send returned (" << sent->to_string()
                                 << "): message_queue no longer hangs here; revisit ARCHITECTURE.md, \"The queues\"";
  EXPECT_TRUE(asleep_in_futex(sender.pid())) << "the sender is stuck, but not in a futex wait";
  EXPECT_EQ(flags.received.load(), 1) << "the replacement receiver got the message after all";

  // The stuck sender holds the queue's mutex (Boost 1.81 notifies inside the lock, its
  // comment notwithstanding), so every other use of the queue now blocks behind it...
  EXPECT_FALSE(run_bounded(count_messages(queue), k_hang_bound / 3).has_value())
      << "the queue could still be used while the sender hung";
  // ...and killing the stuck sender does not help: it dies holding that robust mutex,
  // which Boost turns into a permanently unusable queue.
  sender.kill_and_reap();
  const auto after = run_bounded(count_messages(queue), k_finish_bound);
  ASSERT_TRUE(after.has_value()) << "get_num_msg() hung after the stuck sender was killed";
  EXPECT_EQ(after->code(), k_threw_not_recoverable)
      << "expected get_num_msg() to throw not_recoverable, got " << after->to_string();
}

// Each way to send: send(), try_send(), and timed_send() with a 100 ms deadline, watched
// for k_hang_bound (the deadline only bounds waiting for room, not the notify that follows).
class MessageQueueSend : public testing::TestWithParam<send_kind> {};

TEST_P(MessageQueueSend, HangsAfterReceiverKilledInReceive) {
  expect_send_hangs_after_receiver_killed_in_receive(GetParam());
}

INSTANTIATE_TEST_SUITE_P(MessageQueueFailure, MessageQueueSend,
                         testing::Values(send_kind::send, send_kind::try_send, send_kind::timed_send),
                         [](const testing::TestParamInfo<send_kind>& i) -> std::string {
                           switch (i.param) {
                             case send_kind::send: return "Send";
                             case send_kind::try_send: return "TrySend";
                             case send_kind::timed_send: return "TimedSend";
                           }
                           return "Unknown";
                         });

TEST(MessageQueueFailure, WakeupIsLostAfterReceiverKilledInReceive) {
  scoped_queue queue;
  auto shm = ipc::segment::create_anonymous(sizeof(shared_flags));
  auto& flags = *new (shm.bytes().data()) shared_flags{};
  ASSERT_NO_FATAL_FAILURE(kill_a_receiver_blocked_in_receive(queue, flags));
  // A replacement receiver blocks before anything is sent.
  child_process replacement = start_receiver(queue, flags);
  ASSERT_TRUE(eventually([&] { return asleep_in_futex(replacement.pid()); }));
  std::this_thread::sleep_for(20ms);
  child_process first = start_sender(queue, send_kind::send);
  ASSERT_EQ(finish(first).code(), 0);
  ASSERT_TRUE(eventually([&] { return flags.received.load() == 1 && asleep_in_futex(replacement.pid()); }))
      << "the replacement did not take the first message";
  std::this_thread::sleep_for(20ms);

  child_process second = start_sender(queue, send_kind::send);
  const exit_status second_status = finish(second);
  ASSERT_TRUE(second_status.exited() && second_status.code() == 0) << second_status.to_string();

  // The second send returned, but its wake-up went to the dead receiver's slot: the live
  // receiver sleeps on while the message waits in the queue.
  EXPECT_FALSE(eventually([&] { return flags.received.load() == 2; }, k_hang_bound))
      << "the replacement receiver was woken: message_queue no longer loses this wake-up";
  EXPECT_TRUE(asleep_in_futex(replacement.pid()));
  const auto queued = run_bounded(count_messages(queue), k_finish_bound);
  ASSERT_TRUE(queued.has_value());
  EXPECT_EQ(queued->code(), 1) << "messages waiting in the queue";
}

// An interprocess_mutex in anonymous shared memory whose owner was SIGKILLed while
// holding it.
class dead_owner_mutex {
 public:
  dead_owner_mutex() : shm_(ipc::segment::create_anonymous(sizeof(bip::interprocess_mutex) + 64)) {
    // Never destroyed: the mapping just goes away (destroying a locked mutex is undefined).
    mutex_ = new (shm_.bytes().data() + 64) bip::interprocess_mutex;
    auto* holding = new (shm_.bytes().data()) std::atomic<int>(0);
    child_process owner = fork_child([this, holding] {
      mutex_->lock();
      holding->store(1);
      for (;;) ::pause();
      return 0;
    });
    EXPECT_TRUE(eventually([&] { return holding->load() == 1; })) << "the owner never took the mutex";
    owner.kill_and_reap();
  }

  // In a child: `attempts` calls of lock() (or try_lock()); exits with how many threw
  // lock_exception(not_recoverable), or 10 + how many acquired the mutex.
  std::function<int()> probe(int attempts, bool use_try_lock) {
    return [this, attempts, use_try_lock] {
      int not_recoverable = 0, acquired = 0;
      for (int i = 0; i < attempts; ++i) {
        try {
          const bool locked = use_try_lock ? mutex_->try_lock() : (mutex_->lock(), true);
          if (locked) {
            ++acquired;
            mutex_->unlock();
          }
        } catch (const bip::lock_exception& e) {
          if (e.get_error_code() == bip::not_recoverable) ++not_recoverable;
        }
      }
      return acquired > 0 ? 10 + acquired : not_recoverable;
    };
  }

 private:
  ipc::segment shm_;
  bip::interprocess_mutex* mutex_ = nullptr;
};

TEST(MessageQueueFailure, MutexLockThrowsNotRecoverableAfterOwnerKilled) {
  dead_owner_mutex mutex;
  // The first lock() gets EOWNERDEAD from glibc; Boost unlocks without making the mutex
  // consistent, so it and every later lock(), in any process, throw not_recoverable.
  for (int prober = 0; prober < 2; ++prober) {
    SCOPED_TRACE("prober process " + std::to_string(prober));
    const auto st = run_bounded(mutex.probe(3, false), k_finish_bound);
    ASSERT_TRUE(st.has_value()) << "lock() hung";
    EXPECT_EQ(st->code(), 3) << "expected each lock() to throw not_recoverable, got " << st->to_string();
  }
}

TEST(MessageQueueFailure, MutexLockHangsAfterTryLockOnUnrecoverableMutex) {
  dead_owner_mutex mutex;
  const auto first = run_bounded(mutex.probe(1, false), k_finish_bound);
  ASSERT_TRUE(first.has_value() && first->code() == 1) << "lock() after the owner's death should throw";
  // try_lock() on the now unrecoverable mutex also throws not_recoverable — but glibc
  // 2.36 (nptl/pthread_mutex_trylock.c: `if (oldval == id) lll_unlock`, after a CAS
  // that succeeded from 0) leaves the lock word set to the caller's thread id, and the
  // mutex off the caller's robust list, so the kernel never marks it owner-dead.
  const auto tried = run_bounded(mutex.probe(1, true), k_finish_bound);
  ASSERT_TRUE(tried.has_value());
  EXPECT_EQ(tried->code(), 1) << "expected try_lock() to throw not_recoverable, got " << tried->to_string();
  // From then on lock() no longer throws: it sleeps forever on a lock nobody holds.
  child_process locker = fork_child(mutex.probe(1, false));
  const auto locked = locker.wait_for(k_hang_bound);
  EXPECT_FALSE(locked.has_value()) << "lock() returned: " << locked->to_string();
  if (!locked) {
    EXPECT_TRUE(asleep_in_futex(locker.pid()));
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------
// The peer comparison: supervisor_kill_torture's kill pattern against a pool built on
// message_queue. A "supervisor" child feeds a job queue (at most 32 jobs outstanding,
// with try_send, so that it never blocks by design) and drains a result queue; four
// forked workers receive jobs and send back results; every 1-6 ms the supervisor SIGKILLs
// a random worker and forks a replacement, as ringmaster's torture does. This process
// watches its progress in shared memory: the run ends when 300 kills and 30,000 results
// are reached (the pool survived), when the supervisor catches an exception, or when
// nothing moves for 3 s (a hang; the supervisor, and with it its workers, is then
// killed). Whatever the outcome, it is printed as a figure beside ringmaster's. A job
// held by a killed worker is simply gone: message_queue has no notion of who holds what,
// so the supervisor cannot retry or even notice it; they are counted as lost.
namespace {

struct pool_progress {
  std::atomic<std::uint64_t> sent{0}, answered{0}, kills{0};
  std::atomic<int> outcome{0};  // 0 running, 1 survived, 2 exception
  std::atomic<int> in_call{0};  // 1 try_send, 2 try_receive, 3 forking
  char what[256] = {};
};

}  // namespace

TEST(MessageQueuePeer, KillTortureOfAMessageQueuePoolHangsOrThrows) {
  constexpr std::uint64_t k_min_kills = 300, k_min_jobs = 30'000, k_window = 32;
  constexpr auto k_stall = 3s;
  scoped_queue jobs, results;
  auto progress_segment = ipc::segment::create_anonymous(sizeof(pool_progress));
  auto* progress = new (progress_segment.bytes().data()) pool_progress;

  auto supervisor = fork_child([&]() -> int {
    bip::message_queue job_q(bip::open_only, jobs.name()), result_q(bip::open_only, results.name());
    auto start_worker = [&] {
      return fork_child([&]() -> int {
        bip::message_queue in(bip::open_only, jobs.name()), out(bip::open_only, results.name());
        char job[64];  // receive() wants room for the queue's largest message
        for (;;) {
          std::size_t size = 0;
          unsigned priority = 0;
          in.receive(job, sizeof job, size, priority);
          out.send(job, size, 0);
        }
      });
    };
    std::vector<child_process> workers;
    for (int i = 0; i < 4; ++i) workers.push_back(start_worker());
    std::uint64_t rng = 20261122;
    auto next = [&] { return rng = rng * 6364136223846793005ULL + 1442695040888963407ULL, rng >> 33; };
    auto next_kill = std::chrono::steady_clock::now() + std::chrono::microseconds(1000 + next() % 5000);
    try {
      while (progress->kills < k_min_kills || progress->answered < k_min_jobs) {
        progress->in_call = 1;
        // A job held by a killed worker never comes back (a real pool could not even
        // tell which one it was): each kill widens the window by one, so lost jobs do
        // not stall the pool.
        while (progress->sent - progress->answered < k_window + progress->kills) {
          const std::uint64_t job = progress->sent;
          if (!job_q.try_send(&job, sizeof job, 0)) break;
          ++progress->sent;
        }
        progress->in_call = 2;
        char result[64];
        std::size_t size = 0;
        unsigned priority = 0;
        while (result_q.try_receive(result, sizeof result, size, priority)) ++progress->answered;
        progress->in_call = 3;
        if (std::chrono::steady_clock::now() >= next_kill) {
          auto& victim = workers[next() % workers.size()];
          victim.kill_and_reap();
          victim = start_worker();
          ++progress->kills;
          next_kill = std::chrono::steady_clock::now() + std::chrono::microseconds(1000 + next() % 5000);
        }
      }
      progress->outcome = 1;
    } catch (const std::exception& e) {
      std::snprintf(progress->what, sizeof progress->what, "%s", e.what());
      progress->outcome = 2;
    }
    return 0;
  });

  // Watch: progress, or a stall of k_stall, or an outcome.
  std::uint64_t last_answered = 0, last_kills = 0;
  auto last_move = std::chrono::steady_clock::now();
  bool hung = false;
  for (;;) {
    if (progress->outcome != 0) break;
    if (progress->answered != last_answered || progress->kills != last_kills) {
      last_answered = progress->answered;
      last_kills = progress->kills;
      last_move = std::chrono::steady_clock::now();
    } else if (std::chrono::steady_clock::now() - last_move > k_stall) {
      hung = true;
      break;
    }
    std::this_thread::sleep_for(10ms);
  }
  const int call = progress->in_call;
  supervisor.kill_and_reap();  // its workers die with it (PR_SET_PDEATHSIG)
  const std::uint64_t sent = progress->sent, answered = progress->answered, kills = progress->kills;
  const char* where = call == 1 ? "try_send" : call == 2 ? "try_receive" : "kill/fork";
  std::printf("[ figures  ] message_queue pool: %s after %llu kills; %llu jobs sent, %llu answered (%llu outstanding or "
              "lost with killed workers)%s%s\n",
              hung ? (std::string("hung in ") + where).c_str() : progress->outcome == 2 ? "threw" : "survived",
              static_cast<unsigned long long>(kills), static_cast<unsigned long long>(sent),
              static_cast<unsigned long long>(answered), static_cast<unsigned long long>(sent - answered),
              progress->outcome == 2 ? ": " : "", progress->what);
  // What this machine does (see the file's header): the pool does not survive the kills
  // that ringmaster's supervisor_kill_torture survives. If it ever does, this fails, and
  // the case against message_queue in ARCHITECTURE.md ("The queues") gets revisited.
  EXPECT_TRUE(hung || progress->outcome == 2) << "the message_queue pool survived " << kills << " kills";
}
