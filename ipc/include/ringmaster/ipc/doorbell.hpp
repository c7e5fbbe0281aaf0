// ringmaster/ipc/doorbell.hpp — an owner-less wake-up signal in shared memory.
//
// A doorbell is two 32-bit words inside a shared segment: a futex word that every
// effective ring bumps, and a count of waiters that announced they may sleep. It holds
// no lock and has no owner, so a process SIGKILLed at any instruction inside wait() or
// ring() leaves nothing another process could block on: the worst a dead waiter leaves
// behind is a stale `sleepers` count, which costs the ringer one needless futex wake per
// ring until the ring is reset. (pthread condition variables and interprocess_mutex do
// not have this property; see ARCHITECTURE.md, "The queues".)
//
// std::atomic<T>::wait/notify are not usable here: libstdc++ implements them with
// private futexes, which never wake a waiter in another process.
//
// Protocol (a Dekker pair, so neither side can miss the other):
//   waiter:  s = word; ++sleepers; if (!ready()) futex_wait(word, s, slice); --sleepers
//   ringer:  <publish>; full fence; if (sleepers != 0) { ++word; futex_wake(word) }
// The ringer's publish is ordered before its read of `sleepers`, and the waiter's
// increment before its check of ready(): at least one of them sees the other.
//
// Thread safety: any number of processes and threads may wait and ring concurrently.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

namespace ringmaster::ipc {

/// How a blocking call waits: spin (burning a core, lowest latency) for up to `spin`,
/// then sleep on the futex in slices of at most `sleep_slice`, re-checking the condition
/// after each slice even if nobody rang (so a lost or forged wake-up can delay a waiter by
/// one slice at most, never hang it).
struct wait_policy {
  std::chrono::nanoseconds spin{std::chrono::microseconds(20)};
  std::chrono::nanoseconds sleep_slice{std::chrono::milliseconds(50)};

  /// Sleep at once: lowest CPU use, one futex round trip per wake-up.
  static constexpr wait_policy sleeping() noexcept { return {std::chrono::nanoseconds(0), std::chrono::milliseconds(50)}; }
  /// Spin for up to `d` before sleeping: lowest latency while both sides have a core.
  static constexpr wait_policy spinning(std::chrono::nanoseconds d = std::chrono::milliseconds(1)) noexcept {
    return {d, std::chrono::milliseconds(50)};
  }
};

/// The shared-memory representation. Zero-initialised memory is a valid, idle doorbell.
struct doorbell_word {
  std::atomic<std::uint32_t> word{0};
  std::atomic<std::uint32_t> sleepers{0};
};
static_assert(std::atomic<std::uint32_t>::is_always_lock_free);
static_assert(sizeof(std::atomic<std::uint32_t>) == sizeof(std::uint32_t), "futex needs a plain 32-bit word");

/// One pause instruction: tells the core we are spinning (and yields the pipeline to a
/// hyper-thread sibling).
inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield" ::: "memory");
#else
  std::atomic_signal_fence(std::memory_order_seq_cst);
#endif
}

namespace detail {
/// Blocks until `word` differs from `expected`, a wake-up, or `timeout`. Returns
/// immediately if `word` already differs. Spurious returns are allowed. Never throws.
void futex_wait(std::atomic<std::uint32_t>& word, std::uint32_t expected, std::chrono::nanoseconds timeout) noexcept;
/// Wakes every process waiting on `word`.
void futex_wake_all(std::atomic<std::uint32_t>& word) noexcept;
/// sched_yield().
void yield_cpu() noexcept;
}  // namespace detail

namespace detail {
/// Adds 1 to the eventfd `fd`; errors (EAGAIN at the counter's maximum) are moot: the
/// reader is woken either way.
void eventfd_signal(int fd) noexcept;
}  // namespace detail

/// Wakes the waiters of `bell`, if any announced themselves. Call after publishing the
/// state change they wait for. Cost without sleepers: one full fence and one load.
/// With `wake_fd` >= 0 (an eventfd), a sleeping waiter is woken by writing to it instead
/// of the futex: for a waiter that multiplexes many doorbells and descriptors in one
/// poll/epoll loop (see announce_sleep).
inline void ring(doorbell_word& bell, int wake_fd = -1) noexcept {
  // Orders the caller's publishing store before the load of `sleepers` (store-load
  // ordering, which release/acquire alone does not give).
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (bell.sleepers.load(std::memory_order_relaxed) != 0) {
    bell.word.fetch_add(1, std::memory_order_release);
    if (wake_fd >= 0)
      detail::eventfd_signal(wake_fd);
    else
      detail::futex_wake_all(bell.word);
  }
}

/// For a waiter that sleeps somewhere else (epoll on an eventfd its ringers write to):
/// announces it may sleep, then asks `ready()`. If ready, the announcement is withdrawn
/// and true is returned: do not sleep. Otherwise sleep, and call withdraw_sleep() after.
template <class Ready>
bool announce_sleep(doorbell_word& bell, Ready&& ready) {
  bell.sleepers.fetch_add(1, std::memory_order_seq_cst);
  std::atomic_thread_fence(std::memory_order_seq_cst);  // as in wait_until
  if (ready()) {
    bell.sleepers.fetch_sub(1, std::memory_order_relaxed);
    return true;
  }
  return false;
}
inline void withdraw_sleep(doorbell_word& bell) noexcept { bell.sleepers.fetch_sub(1, std::memory_order_relaxed); }

/// Waits until `ready()` is true or `deadline` passes; returns ready()'s last answer.
/// Blocking: spins then sleeps as `policy` says. `ready` must be cheap and noexcept-ish;
/// it is called many times. Never throws unless `ready` does.
template <class Ready>
bool wait_until(doorbell_word& bell, Ready&& ready, std::chrono::steady_clock::time_point deadline,
                const wait_policy& policy = {}) {
  using clock = std::chrono::steady_clock;
  if (ready()) return true;
  auto now = clock::now();
  if (policy.spin.count() > 0) {
    const auto spin_end = std::min(deadline, now + policy.spin);
    for (unsigned i = 1;; ++i) {
      cpu_relax();
      if (ready()) return true;
      if (i % 32 == 0 && (now = clock::now()) >= spin_end) break;
      // If the peer shares our CPU, spinning only delays it: give it the CPU now and then
      // (with a CPU each, this costs nothing measurable).
      if (i % 256 == 0) detail::yield_cpu();
    }
  }
  for (;;) {
    if (now >= deadline) return ready();
    const std::uint32_t seen = bell.word.load(std::memory_order_acquire);
    bell.sleepers.fetch_add(1, std::memory_order_seq_cst);
    // The increment must be ordered before ready()'s loads, which are only acquire: on
    // x86 the locked add already is a full barrier; on ARMv8.3+ an acquire load (LDAPR)
    // could pass it. Only the sleep path pays for this fence.
    std::atomic_thread_fence(std::memory_order_seq_cst);
    if (ready()) {
      bell.sleepers.fetch_sub(1, std::memory_order_relaxed);
      return true;
    }
    detail::futex_wait(bell.word, seen, std::min<clock::duration>(deadline - now, policy.sleep_slice));
    bell.sleepers.fetch_sub(1, std::memory_order_relaxed);
    if (ready()) return true;
    now = clock::now();
  }
}

}  // namespace ringmaster::ipc
