// Baseline: boost::interprocess::message_queue, the queue measured and rejected (it is not
// crash-safe: ARCHITECTURE.md, "The queues"). Named queues
// "ringmaster-bench-mq-<pid>-<direction>", created by the parent, opened by name in the
// child, removed by the parent however a run ends: by
// the owner's destructor, by a handler on SIGINT/SIGTERM/SIGHUP, and by a sweep at
// start-up of queues whose creating process is dead.
#include <dirent.h>
#include <signal.h>
#include <unistd.h>

#include <boost/interprocess/ipc/message_queue.hpp>
#include <boost/interprocess/permissions.hpp>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <optional>
#include <string>

#include "harness.hpp"
#include "transports.hpp"

namespace ringmaster::bench {
namespace {

using namespace std::chrono_literals;
namespace bip = boost::interprocess;

// The /dev/shm paths of the queues that exist right now, in fixed storage so that a
// signal handler can unlink them (unlink is async-signal-safe; nothing here allocates).
// Boost keeps a POSIX shared-memory object named "/<name>", which Linux stores as
// /dev/shm/<name>.
struct mq_slot {
  char path[96];
  volatile sig_atomic_t used;
};
mq_slot g_slots[2];

/// Creates a queue by name and removes it when destroyed (in the creating process only).
class owned_queue {
 public:
  owned_queue(const char* direction, std::size_t depth, std::size_t message_size)
      : name_(std::string(k_mq_prefix) + std::to_string(::getpid()) + "-" + direction),
        owner_(::getpid()) {
    for (std::size_t i = 0; i < std::size(g_slots); ++i) {
      if (g_slots[i].used) continue;
      std::snprintf(g_slots[i].path, sizeof g_slots[i].path, "/dev/shm/%s", name_.c_str());
      g_slots[i].used = 1;  // registered before it exists: unlinking a missing name is harmless
      slot_ = static_cast<int>(i);
      break;
    }
    if (slot_ < 0) throw std::logic_error("more than two benchmark message queues at once");
    try {
      bip::message_queue::remove(name_.c_str());  // our pid: a leftover can only be ours
      queue_.emplace(bip::create_only, name_.c_str(), depth, message_size, bip::permissions(0600));
    } catch (...) {
      release();
      throw;
    }
  }
  owned_queue(const owned_queue&) = delete;
  owned_queue& operator=(const owned_queue&) = delete;
  ~owned_queue() { release(); }

  bip::message_queue& get() { return *queue_; }
  const std::string& name() const noexcept { return name_; }

 private:
  void release() noexcept {
    if (::getpid() != owner_) return;  // a forked child never removes its parent's queue
    queue_.reset();
    bip::message_queue::remove(name_.c_str());
    if (slot_ >= 0) g_slots[slot_].used = 0;
    slot_ = -1;
  }

  std::string name_;
  pid_t owner_;
  int slot_ = -1;
  std::optional<bip::message_queue> queue_;
};

// pthread_cond_timedwait, under Boost's timed calls, measures CLOCK_REALTIME: deadlines
// for the queue are system_clock time points.
using wall_clock = std::chrono::system_clock;

std::chrono::seconds watchdog(const run_settings& s) {
  return s.timeout + 5s;
}

[[noreturn]] void timed_out(const std::string& where, std::uint64_t seq,
                            const std::string& note = {}) {
  throw bench_failure(where + " at message " + std::to_string(seq) + ": timed out" + note);
}

}  // namespace

void remove_mq_names_now() noexcept {
  for (auto& slot : g_slots)
    if (slot.used) ::unlink(slot.path);
}

std::size_t sweep_stale_mq() noexcept {
  std::size_t removed = 0;
  DIR* dir = ::opendir("/dev/shm");
  if (!dir) return 0;
  const std::size_t prefix = std::strlen(k_mq_prefix);
  while (const dirent* e = ::readdir(dir)) {
    if (std::strncmp(e->d_name, k_mq_prefix, prefix) != 0) continue;
    char* end = nullptr;
    const long pid = std::strtol(e->d_name + prefix, &end, 10);
    if (end == e->d_name + prefix || *end != '-' || pid <= 0) continue;
    if (::kill(static_cast<pid_t>(pid), 0) == 0 || errno != ESRCH)
      continue;  // owner alive (or not ours to judge)
    if (::unlinkat(::dirfd(dir), e->d_name, 0) == 0) ++removed;
  }
  ::closedir(dir);
  return removed;
}

double mq_throughput(std::size_t size, std::uint64_t count, const run_settings& s) {
  owned_queue queue("oneway", s.mq_depth, size);
  start_gate gate;
  child producer = child::fork(
      [&] {
        gate.close_parent_ends();
        bip::message_queue mq(bip::open_only, queue.name().c_str());
        payload p(size, s.fault);
        gate.child_ready_and_wait();
        const auto deadline = wall_clock::now() + s.timeout;
        for (std::uint64_t seq = 0; seq < count; ++seq) {
          const auto msg = p.make(seq);
          if (!mq.timed_send(msg.data(), msg.size(), 0, deadline))
            timed_out("message_queue producer", seq);
        }
      },
      watchdog(s), s.child_cpu);
  gate.close_child_ends();

  auto& mq = queue.get();
  payload expect(size);
  std::vector<std::byte> buffer(size);
  gate.parent_wait_ready();
  const auto t0 = clock::now();
  gate.parent_go();
  const auto deadline = wall_clock::now() + s.timeout;
  for (std::uint64_t seq = 0; seq < count; ++seq) {
    bip::message_queue::size_type got = 0;
    unsigned priority = 0;
    if (!mq.timed_receive(buffer.data(), buffer.size(), got, priority, deadline))
      timed_out("message_queue consumer", seq, producer.status_note());
    expect.check({buffer.data(), static_cast<std::size_t>(got)}, seq, "message_queue consumer");
  }
  const auto t1 = clock::now();
  producer.join(5s);
  if (mq.get_num_msg() != 0)
    throw bench_failure("message_queue consumer: more messages than were sent");
  return std::chrono::duration<double>(t1 - t0).count();
}

std::vector<std::int64_t> mq_round_trip(std::size_t size, std::uint64_t count, std::uint64_t warmup,
                                        const run_settings& s) {
  owned_queue requests("request", s.mq_depth, size);
  owned_queue replies("reply", s.mq_depth, size);
  start_gate gate;
  const std::uint64_t total = warmup + count;
  child echo = child::fork(
      [&] {
        gate.close_parent_ends();
        bip::message_queue in(bip::open_only, requests.name().c_str());
        bip::message_queue out(bip::open_only, replies.name().c_str());
        payload expect(size);
        std::vector<std::byte> buffer(size);
        gate.child_ready_and_wait();
        const auto deadline = wall_clock::now() + s.timeout;
        for (std::uint64_t seq = 0; seq < total; ++seq) {
          bip::message_queue::size_type got = 0;
          unsigned priority = 0;
          if (!in.timed_receive(buffer.data(), buffer.size(), got, priority, deadline))
            timed_out("message_queue echo (receive)", seq);
          if (!out.timed_send(buffer.data(), got, 0, deadline))
            timed_out("message_queue echo (send)", seq);
          expect.check({buffer.data(), static_cast<std::size_t>(got)}, seq, "message_queue echo");
        }
      },
      watchdog(s), s.child_cpu);
  gate.close_child_ends();

  auto& out = requests.get();
  auto& in = replies.get();
  payload p(size, s.fault);
  payload expect(size);
  std::vector<std::byte> buffer(size);
  std::vector<std::int64_t> samples;
  samples.reserve(count);
  gate.parent_wait_ready();
  gate.parent_go();
  const auto deadline = wall_clock::now() + s.timeout;
  for (std::uint64_t seq = 0; seq < total; ++seq) {
    const auto msg = p.make(seq);
    const auto t0 = clock::now();
    if (!out.timed_send(msg.data(), msg.size(), 0, deadline))
      timed_out("message_queue round trip (send)", seq, echo.status_note());
    bip::message_queue::size_type got = 0;
    unsigned priority = 0;
    if (!in.timed_receive(buffer.data(), buffer.size(), got, priority, deadline))
      timed_out("message_queue round trip (receive)", seq, echo.status_note());
    const auto t1 = clock::now();
    expect.check({buffer.data(), static_cast<std::size_t>(got)}, seq,
                 "message_queue round trip (echo)");
    if (seq >= warmup)
      samples.push_back(std::chrono::duration_cast<std::chrono::nanoseconds>(t1 - t0).count());
  }
  echo.join(5s);
  return samples;
}

}  // namespace ringmaster::bench
