// The ring's crash-safety promise under fire: one end of a ring is SIGKILLed at a random
// moment, hundreds of times per run, and the other end must carry on.
//
// The test process is always the survivor and a forked child the other end. A seeded RNG
// picks, round by round, whether the child produces (the test process reads and survives
// a dead producer) or consumes (the test process writes and survives a dead consumer),
// and when to SIGKILL it: right after the fork (often before it attached), or 0-300 us,
// 0-4 ms or 0-12 ms after it attached — mid-write, mid-batch, with messages staged but not
// published, or asleep on a doorbell. Every fifth round nothing is killed and a fixed
// number of messages must go through completely: after all those resets, the ring still
// works. The survivor keeps one reader and one writer handle for the whole run, as a
// supervisor would, and reset()s the one whose peer died.
//
// Every message is a pure function of (seed, round, index): its length (0 to
// max_message), its bytes, its index in the first 8 bytes and a checksum in the last 8.
// Whoever reads a message regenerates it and compares, so a torn, stale, duplicated or
// reordered message is caught — including those a producer published just before it
// died, which the survivor drains after the kill. A consumer child cannot report through
// its exit status once killed, so it counts what it verified (and describes the first
// bad message) in a small shared report block.
//
// Nothing waits without a deadline: the survivor blocks for at most a few milliseconds
// before re-checking (through the child's pidfd) whether its peer died, every round has a
// time limit, and an alarm() watchdog aborts with the seed and round if anything hangs
// anyway.
//
// Repeat a run with RINGMASTER_TORTURE_SEED=<n>; change its length with
// RINGMASTER_TORTURE_KILLS=<n> (kills, default 600; a soak is a bigger number away).
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include <ringmaster/ipc/ring.hpp>
#include <ringmaster/ipc/segment.hpp>

#include "child.hpp"
#include "seeded_rng.hpp"

namespace {

using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;
namespace ipc = ringmaster::ipc;
using ringmaster::test::child_process;
using ringmaster::test::exit_status;
using ringmaster::test::fork_child;

// A small ring, so that wrap-around and a full ring happen all the time.
constexpr ipc::ring_options k_ring{.capacity = std::size_t{64} << 10, .max_message = std::size_t{4} << 10};

constexpr std::uint64_t k_default_seed = 20261122;
constexpr std::uint64_t k_default_kills = 600;
constexpr unsigned k_clean_every = 5;  // every fifth round: no kill, must finish
constexpr std::uint64_t k_clean_min = 100, k_clean_spread = 3000;  // messages in a clean round
constexpr auto k_slice = 2ms;         // longest the survivor blocks before re-checking its peer
constexpr auto k_round_limit = 5s;    // no round may take longer than this
constexpr auto k_longest_block = 1s;  // nor any single blocking call of the survivor
constexpr auto k_child_lifetime = 8s; // a child nobody killed gives up (exit code 3)
constexpr auto k_reap_limit = 2s;     // a SIGKILLed child must be reapable by then
constexpr unsigned k_watchdog_seconds = 20;

// Deterministic randomness: seeded_rng.hpp.
using ringmaster::test::mix;
using ringmaster::test::rng;

// ---------------------------------------------------------------------------------------
// The messages of one round.

class traffic {
 public:
  traffic(std::uint64_t key, std::size_t max_message) : key_(key), max_(max_message) {}

  /// Length of message i: a quarter tiny (0..16 bytes, so empty messages too), a quarter
  /// within 64 bytes of the maximum (the maximum included), the rest anywhere.
  [[nodiscard]] std::size_t length(std::uint64_t i) const noexcept {
    const std::uint64_t h = mix(key_ ^ mix(i + 1));
    const std::uint64_t r = h >> 8;
    switch (h & 7) {
      case 0:
      case 1: return static_cast<std::size_t>(r % 17);
      case 2:
      case 3: return max_ - static_cast<std::size_t>(r % 64);
      default: return static_cast<std::size_t>(r % (max_ + 1));
    }
  }

  /// Writes message i into `out` (exactly length(i) bytes): pseudo-random bytes, with the
  /// index (xor the round key) in the first 8 and a checksum of the rest in the last 8
  /// when the message is long enough to hold them.
  void fill(std::uint64_t i, std::span<std::byte> out) const noexcept {
    const std::size_t n = out.size();
    const std::uint64_t base = mix(key_ ^ (i * 0x9e3779b97f4a7c15ULL));
    for (std::size_t at = 0, j = 0; at < n; at += 8, ++j) {
      const std::uint64_t w = mix(base + j);
      std::memcpy(out.data() + at, &w, std::min<std::size_t>(8, n - at));
    }
    if (n >= 8) {
      const std::uint64_t tag = i ^ key_;
      std::memcpy(out.data(), &tag, 8);
    }
    if (n >= 16) {
      const std::uint64_t sum = checksum(out.first(n - 8));
      std::memcpy(out.data() + n - 8, &sum, 8);
    }
  }

  /// Empty when `got` is exactly message i; otherwise what is wrong with it.
  [[nodiscard]] std::string check(std::uint64_t i, std::span<const std::byte> got) {
    const std::size_t n = length(i);
    if (got.size() == n) {
      scratch_.resize(n);
      fill(i, scratch_);
      if (n == 0 || std::memcmp(got.data(), scratch_.data(), n) == 0) return {};
    }
    std::string why = "message " + std::to_string(i) + ": " + std::to_string(got.size()) + " bytes (expected " +
                      std::to_string(n) + ")";
    if (got.size() >= 8) {
      std::uint64_t tag = 0;
      std::memcpy(&tag, got.data(), 8);
      why += ", carries index " + std::to_string(tag ^ key_);
    }
    if (got.size() >= 16) {
      std::uint64_t sum = 0;
      std::memcpy(&sum, got.data() + got.size() - 8, 8);
      why += sum == checksum(got.first(got.size() - 8)) ? ", checksum intact" : ", checksum WRONG (torn)";
    }
    if (got.size() == n) {
      std::size_t at = 0;
      while (at < n && got[at] == scratch_[at]) ++at;
      why += ", first wrong byte at offset " + std::to_string(at);
    }
    return why;
  }

 private:
  static std::uint64_t checksum(std::span<const std::byte> bytes) noexcept {
    std::uint64_t h = 0x6a09e667f3bcc908ULL ^ bytes.size();
    std::size_t at = 0;
    for (; at + 8 <= bytes.size(); at += 8) {
      std::uint64_t w;
      std::memcpy(&w, bytes.data() + at, 8);
      h = mix(h ^ w);
    }
    std::uint64_t tail = 0;
    std::memcpy(&tail, bytes.data() + at, bytes.size() - at);
    return mix(h ^ tail);
  }

  std::uint64_t key_;
  std::size_t max_;
  std::vector<std::byte> scratch_;
};

ipc::wait_policy pick_policy(rng& r) {
  switch (r.below(3)) {
    case 0: return ipc::wait_policy::sleeping();
    case 1: return ipc::wait_policy::spinning(std::chrono::microseconds(50));
    default: return {};
  }
}

// ---------------------------------------------------------------------------------------
// The two ends, as used by the survivor and by the child alike.

/// Writes a round's messages in random batches of 1 to 16, through every entry point of
/// ring_writer in turn, publishing each batch with one store.
class producer {
 public:
  producer(ipc::ring_writer& writer, traffic& t, std::uint64_t seed, ipc::wait_policy policy)
      : writer_(writer), traffic_(t), rng_(seed), policy_(policy) {}

  [[nodiscard]] std::uint64_t published() const noexcept { return published_; }

  /// Stages and publishes one batch, stopping at message `limit`. When the ring is full,
  /// waits for room until `deadline`: errc::timed_out if none came. Other errors are the
  /// ring's.
  std::error_code step(std::uint64_t limit, clock_type::time_point deadline) {
    const std::uint64_t batch = 1 + rng_.below(16);
    std::error_code ec;
    for (std::uint64_t k = 0; k < batch && staged_ < limit; ++k) {
      if ((ec = write(staged_, deadline))) break;
      ++staged_;
    }
    writer_.publish();
    published_ = staged_;
    if (ec == ipc::errc::full) {
      if (!writer_.wait_writable(traffic_.length(staged_), deadline, policy_)) return ipc::errc::timed_out;
      ec.clear();
    }
    return ec;
  }

 private:
  // Stages message i (send() also publishes). errc::full if it does not fit now.
  std::error_code write(std::uint64_t i, clock_type::time_point deadline) {
    const std::size_t n = traffic_.length(i);
    const std::uint64_t how = rng_.below(100);
    if (how < 3) {
      // A reservation that is never committed: the next try_reserve must drop it, even
      // when it already laid down a wrap marker.
      std::span<std::byte> junk;
      if (!writer_.try_reserve(static_cast<std::size_t>(rng_.below(writer_.max_message() + 1)), junk))
        std::memset(junk.data(), 0xee, junk.size());
    }
    if (how < 35) {  // zero-copy: reserve (sometimes more than needed), fill, commit
      const std::size_t ask = std::min(writer_.max_message(), n + static_cast<std::size_t>(rng_.below(2) * rng_.below(64)));
      std::span<std::byte> room;
      if (auto ec = writer_.try_reserve(ask, room)) return ec;
      traffic_.fill(i, room.first(n));
      writer_.commit(n);
      return {};
    }
    buffer_.resize(n);
    traffic_.fill(i, buffer_);
    const std::span<const std::byte> whole(buffer_);
    if (how < 50) {  // gather write, split anywhere
      const auto cut = static_cast<std::size_t>(rng_.below(n + 1));
      return writer_.try_write({whole.first(cut), whole.subspan(cut)});
    }
    if (how < 60) {  // blocking send, briefly
      auto ec = writer_.send(whole, std::min(deadline, clock_type::now() + 1ms), policy_);
      return ec == ipc::errc::timed_out ? make_error_code(ipc::errc::full) : ec;
    }
    return writer_.try_write(whole);
  }

  ipc::ring_writer& writer_;
  traffic& traffic_;
  rng rng_;
  ipc::wait_policy policy_;
  std::vector<std::byte> buffer_;
  std::uint64_t staged_ = 0;
  std::uint64_t published_ = 0;
};

/// Reads and checks a round's messages in order, releasing at random (so sometimes many
/// messages at once, sometimes one).
class consumer {
 public:
  consumer(ipc::ring_reader& reader, traffic& t, std::uint64_t seed, ipc::wait_policy policy)
      : reader_(reader), traffic_(t), rng_(seed), policy_(policy) {}

  [[nodiscard]] std::uint64_t verified() const noexcept { return verified_; }
  /// Set (and sticky) once a message was not what it should be.
  [[nodiscard]] const std::string& problem() const noexcept { return problem_; }

  /// Reads one message — blocking until `deadline`, or not at all without one — and
  /// checks it. Returns the ring's error (empty, timed_out, corrupt), or success; after
  /// success, problem() tells whether the message was right.
  std::error_code step(std::optional<clock_type::time_point> deadline) {
    std::span<const std::byte> message;
    const auto ec = deadline ? reader_.read(message, *deadline, policy_) : reader_.try_read(message);
    if (ec) return ec;
    problem_ = traffic_.check(verified_, message);
    if (!problem_.empty()) return {};
    ++verified_;
    if (rng_.percent(25)) reader_.release();
    return {};
  }

 private:
  ipc::ring_reader& reader_;
  traffic& traffic_;
  rng rng_;
  ipc::wait_policy policy_;
  std::uint64_t verified_ = 0;
  std::string problem_;
};

// ---------------------------------------------------------------------------------------
// The child's side. It reports through shared memory, since SIGKILL leaves no exit code.

struct child_report {
  std::atomic<std::uint64_t> generation{0};  // the ring generation it attached to; 0: not yet
  std::atomic<int> attach_error{0};
  std::atomic<std::uint64_t> published{0};  // producer: messages it knows are published
  std::atomic<std::uint64_t> verified{0};   // consumer: messages it read and found right
  std::atomic<int> failed{0};               // 1 once `problem` holds a description
  char problem[480]{};
};

void report_problem(child_report& report, const std::string& what) noexcept {
  if (report.failed.load(std::memory_order_relaxed) != 0) return;
  const std::size_t n = std::min(what.size(), sizeof report.problem - 1);
  std::memcpy(report.problem, what.data(), n);
  report.problem[n] = '\0';
  report.failed.store(1, std::memory_order_release);
}

// Exit codes of a child that was not killed.
constexpr int k_exit_done = 0, k_exit_bad_message = 2, k_exit_gave_up = 3, k_exit_ring_error = 4,
              k_exit_attach = 10;

struct round_plan {
  unsigned index = 0;
  bool child_produces = false;
  bool clean = false;                    // no kill: `limit` messages must go through
  std::uint64_t limit = UINT64_MAX;      // messages in the round (endless when killed)
  bool kill_from_fork = false;           // else the delay counts from the child's attach
  std::chrono::microseconds kill_after{0};
  std::uint64_t key = 0;                 // the round's traffic
  std::uint64_t child_seed = 0, survivor_seed = 0;
  ipc::wait_policy child_policy, survivor_policy;

  [[nodiscard]] std::string describe(std::uint64_t seed) const {
    std::string s = "seed " + std::to_string(seed) + ", round " + std::to_string(index) + ": child " +
                    (child_produces ? "produces" : "consumes");
    s += clean ? ", no kill, " + std::to_string(limit) + " messages"
               : ", SIGKILL " + std::to_string(kill_after.count()) + " us after " +
                     (kill_from_fork ? "fork" : "attach");
    return s;
  }
};

int child_producer(std::span<std::byte> region, child_report& report, const round_plan& plan) {
  std::error_code ec;
  auto writer = ipc::ring_writer::attach(region, k_ring, ec);
  if (ec) {
    report.attach_error.store(ec.value());
    return k_exit_attach;
  }
  report.generation.store(writer.generation());
  traffic t(plan.key, k_ring.max_message);
  producer p(writer, t, plan.child_seed, plan.child_policy);
  const auto give_up = clock_type::now() + k_child_lifetime;
  while (p.published() < plan.limit) {
    if (clock_type::now() > give_up) return k_exit_gave_up;
    ec = p.step(plan.limit, clock_type::now() + 20ms);
    report.published.store(p.published(), std::memory_order_release);
    if (ec && ec != ipc::errc::timed_out) {
      report_problem(report, "producer child: " + ec.message());
      return k_exit_ring_error;
    }
  }
  return k_exit_done;
}

int child_consumer(std::span<std::byte> region, child_report& report, const round_plan& plan) {
  std::error_code ec;
  auto reader = ipc::ring_reader::attach(region, k_ring, ec);
  if (ec) {
    report.attach_error.store(ec.value());
    return k_exit_attach;
  }
  report.generation.store(reader.generation());
  traffic t(plan.key, k_ring.max_message);
  consumer c(reader, t, plan.child_seed, plan.child_policy);
  const auto give_up = clock_type::now() + k_child_lifetime;
  while (c.verified() < plan.limit) {
    if (clock_type::now() > give_up) return k_exit_gave_up;
    ec = c.step(clock_type::now() + 20ms);
    if (!c.problem().empty()) {
      report_problem(report, "consumer child read a bad " + c.problem());
      return k_exit_bad_message;
    }
    report.verified.store(c.verified(), std::memory_order_release);
    if (ec && ec != ipc::errc::timed_out) {
      report_problem(report, "consumer child: " + ec.message());
      return k_exit_ring_error;
    }
  }
  reader.release();
  return k_exit_done;
}

// ---------------------------------------------------------------------------------------
// The watchdog: if the survivor hangs despite every deadline, say where, and abort.

char g_watchdog_note[256];
std::size_t g_watchdog_note_size = 0;

extern "C" void on_watchdog(int) {
  // Only async-signal-safe calls here.
  static const char k_prefix[] = "\nring_kill_torture: WATCHDOG, the survivor hung: ";
  (void)!::write(STDERR_FILENO, k_prefix, sizeof k_prefix - 1);
  (void)!::write(STDERR_FILENO, g_watchdog_note, g_watchdog_note_size);
  (void)!::write(STDERR_FILENO, "\n", 1);
  std::abort();
}

class watchdog {
 public:
  watchdog() {
    struct sigaction sa {};
    sa.sa_handler = on_watchdog;
    ::sigaction(SIGALRM, &sa, &previous_);
  }
  ~watchdog() {
    ::alarm(0);
    ::sigaction(SIGALRM, &previous_, nullptr);
  }
  watchdog(const watchdog&) = delete;
  watchdog& operator=(const watchdog&) = delete;

  /// Re-arms the alarm (alarms are not inherited by fork, so children are unaffected).
  void arm(const std::string& note) {
    g_watchdog_note_size = std::min(note.size(), sizeof g_watchdog_note);
    std::memcpy(g_watchdog_note, note.data(), g_watchdog_note_size);
    ::alarm(k_watchdog_seconds);
  }

 private:
  struct sigaction previous_ {};
};

// ---------------------------------------------------------------------------------------
// The survivor's side.

std::optional<std::uint64_t> env_number(const char* name, std::uint64_t fallback) {
  const char* text = std::getenv(name);
  if (text == nullptr || *text == '\0') return fallback;
  char* end = nullptr;
  const unsigned long long v = std::strtoull(text, &end, 0);
  if (*end != '\0') return std::nullopt;
  return v;
}

double ms(clock_type::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

// Sends the round's SIGKILL when it is due, and keeps the survivor's waits from
// overshooting that moment.
class kill_timer {
 public:
  kill_timer(const round_plan& plan, const child_report& report, clock_type::time_point forked)
      : plan_(plan), report_(report) {
    if (!plan.clean && plan.kill_from_fork) arm(forked);
  }

  [[nodiscard]] bool killed() const noexcept { return killed_; }

  /// Kills `child` if due; returns true when it did so now.
  bool poll(child_process& child, clock_type::time_point now) {
    if (plan_.clean || killed_) return false;
    if (!armed_ && report_.generation.load(std::memory_order_acquire) != 0) arm(now);
    if (!armed_ || now < due_) return false;
    child.kill(SIGKILL);
    killed_ = true;
    return true;
  }

  /// A deadline for the survivor's next blocking call: `slice` from now, but no later
  /// than the kill.
  [[nodiscard]] clock_type::time_point deadline(clock_type::time_point now, clock_type::duration slice) const {
    if (killed_) return now + std::min<clock_type::duration>(slice, 1ms);
    return armed_ ? std::min(now + slice, due_) : now + slice;
  }

 private:
  void arm(clock_type::time_point from) {
    due_ = from + plan_.kill_after;
    armed_ = true;
  }

  const round_plan& plan_;
  const child_report& report_;
  clock_type::time_point due_{};
  bool armed_ = false;
  bool killed_ = false;
};

class RingKillTorture : public testing::Test {
 protected:
  void SetUp() override {
    const auto seed = env_number("RINGMASTER_TORTURE_SEED", k_default_seed);
    const auto kills = env_number("RINGMASTER_TORTURE_KILLS", k_default_kills);
    ASSERT_TRUE(seed && kills) << "RINGMASTER_TORTURE_SEED and RINGMASTER_TORTURE_KILLS must be numbers";
    seed_ = *seed;
    kills_ = *kills;
    const std::size_t footprint = ipc::ring_footprint(k_ring);
    rings_ = ipc::segment::create_anonymous(2 * footprint);
    reports_ = ipc::segment::create_anonymous(sizeof(child_report));
    to_survivor_ = rings_.bytes().first(footprint);
    to_child_ = rings_.bytes().subspan(footprint, footprint);
    ipc::format_ring_or_throw(to_survivor_, k_ring);
    ipc::format_ring_or_throw(to_child_, k_ring);
    // The survivor's handles live for the whole run, as a supervisor's would, and are
    // reset after every death.
    reader_ = ipc::ring_reader::attach(to_survivor_, k_ring);
    writer_ = ipc::ring_writer::attach(to_child_, k_ring);
  }

  round_plan plan_round(rng& r, unsigned index) const {
    round_plan p;
    p.index = index;
    p.child_produces = r.percent(50);
    p.clean = index % k_clean_every == k_clean_every - 1;
    if (p.clean) {
      p.limit = k_clean_min + r.below(k_clean_spread);
    } else {
      const std::uint64_t when = r.below(100);
      // Counting from the attach, not the fork, so that a loaded machine, slow to run
      // the child, still sees most kills land mid-traffic.
      p.kill_from_fork = when < 10;
      p.kill_after = std::chrono::microseconds(when < 10   ? r.below(200)
                                               : when < 30 ? r.below(300)
                                               : when < 80 ? r.below(4000)
                                                           : r.below(12000));
    }
    p.key = r.next();
    p.child_seed = r.next();
    p.survivor_seed = r.next();
    p.child_policy = pick_policy(r);
    p.survivor_policy = pick_policy(r);
    return p;
  }

  child_report& fresh_report() { return *new (reports_.bytes().data()) child_report{}; }

  // Bounded: a child that does not end within `limit` is killed, reaped and reported.
  exit_status reap(child_process& child, clock_type::duration limit) {
    if (auto st = child.wait_for(std::chrono::ceil<std::chrono::milliseconds>(limit))) return *st;
    ADD_FAILURE() << "child " << child.pid() << " did not end within " << ms(limit) << " ms";
    return child.kill_and_reap();
  }

  // Runs `step` (one bounded blocking call of the survivor) and records how long it took.
  template <class Step>
  std::error_code timed(Step&& step) {
    const auto t0 = clock_type::now();
    const std::error_code ec = step();
    longest_block_ = std::max(longest_block_, clock_type::now() - t0);
    return ec;
  }

  void check_exit(const round_plan& plan, const exit_status& st, const child_report& report) {
    if (report.failed.load(std::memory_order_acquire) != 0) ADD_FAILURE() << report.problem;
    if (report.attach_error.load() != 0)
      ADD_FAILURE() << "child could not attach: "
                    << std::error_code(report.attach_error.load(), ipc::ipc_category()).message();
    if (plan.clean) {
      EXPECT_TRUE(st.exited() && st.code() == k_exit_done) << "clean round's child ended with " << st.to_string();
    } else {
      EXPECT_EQ(st.signal(), SIGKILL) << "killed round's child ended with " << st.to_string();
    }
  }

  // The child produces, the survivor reads; then the survivor outlives the producer.
  void survive_producer(const round_plan& plan) {
    child_report& report = fresh_report();
    traffic t(plan.key, k_ring.max_message);
    consumer c(reader_, t, plan.survivor_seed, plan.survivor_policy);
    const std::uint64_t generation = reader_.generation();
    auto child = fork_child([&] { return child_producer(to_survivor_, report, plan); });
    const auto start = clock_type::now();
    kill_timer killer(plan, report, start);
    std::uint64_t verified_at_kill = 0;
    std::optional<exit_status> status;
    for (;;) {
      const auto now = clock_type::now();
      if (now - start > k_round_limit) {
        ADD_FAILURE() << "round not finished after " << ms(k_round_limit) << " ms; " << c.verified() << " messages read";
        break;
      }
      if (killer.poll(child, now)) verified_at_kill = c.verified();
      if (plan.clean && c.verified() == plan.limit) break;
      const auto ec = timed([&] { return c.step(killer.deadline(now, k_slice)); });
      if (!c.problem().empty()) {
        ADD_FAILURE() << "survivor read a bad " << c.problem();
        break;
      }
      if (ec == ipc::errc::timed_out) {
        if ((status = child.wait_for(0ms))) break;  // the pidfd says the producer is gone
      } else if (ec) {
        ADD_FAILURE() << "survivor's read failed: " << ec.message() << " after " << c.verified() << " messages";
        break;
      }
    }
    if (HasFailure()) {  // stop here: what follows would only repeat the first failure
      child.kill_and_reap();
      reader_.reset();
      return;
    }
    if (!status) status = reap(child, k_reap_limit);

    // The producer is gone: whatever it published before dying must be there, whole. (The
    // loop above already read until a deadline passed; this is the check that nothing is
    // left, done as a supervisor would after reaping.)
    while (c.problem().empty()) {
      const auto ec = c.step(std::nullopt);
      if (!c.problem().empty()) {
        ADD_FAILURE() << "survivor drained a bad " << c.problem();
        break;
      }
      if (ec == ipc::errc::empty) break;
      if (ec) {
        ADD_FAILURE() << "survivor's drain failed: " << ec.message();
        break;
      }
    }
    if (killer.killed()) {
      read_after_kill_ += c.verified() - verified_at_kill;
      if (c.verified() > 0) ++kills_mid_traffic_;
    }
    check_exit(plan, *status, report);
    EXPECT_GE(c.verified(), report.published.load(std::memory_order_acquire))
        << "messages the producer published before it died were lost";
    if (plan.clean) {
      EXPECT_EQ(c.verified(), plan.limit);
    }
    if (const auto g = report.generation.load(); g != 0) {
      EXPECT_EQ(g, generation) << "the child attached to a ring generation other than the survivor's";
      ++attached_;
    }
    survivor_verified_ += c.verified();
    reader_.reset();
  }

  // The survivor produces, the child reads; then the survivor outlives the consumer.
  void survive_consumer(const round_plan& plan) {
    child_report& report = fresh_report();
    traffic t(plan.key, k_ring.max_message);
    producer p(writer_, t, plan.survivor_seed, plan.survivor_policy);
    const std::uint64_t generation = writer_.generation();
    auto child = fork_child([&] { return child_consumer(to_child_, report, plan); });
    const auto start = clock_type::now();
    kill_timer killer(plan, report, start);
    std::optional<exit_status> status;
    for (;;) {
      const auto now = clock_type::now();
      if (now - start > k_round_limit) {
        ADD_FAILURE() << "round not finished after " << ms(k_round_limit) << " ms; " << p.published()
                      << " messages published, " << report.verified.load() << " verified by the child";
        break;
      }
      killer.poll(child, now);
      if (plan.clean && p.published() == plan.limit) {
        status = reap(child, k_round_limit - (now - start));
        break;
      }
      const auto ec = timed([&] { return p.step(plan.limit, killer.deadline(now, k_slice)); });
      if (ec == ipc::errc::timed_out) {
        if ((status = child.wait_for(0ms))) break;  // the pidfd says the consumer is gone
      } else if (ec) {
        ADD_FAILURE() << "survivor's write failed: " << ec.message() << " after " << p.published() << " messages";
        break;
      }
    }
    if (HasFailure()) {
      child.kill_and_reap();
      writer_.reset();
      return;
    }
    if (!status) status = reap(child, k_reap_limit);
    check_exit(plan, *status, report);
    const std::uint64_t verified = report.verified.load(std::memory_order_acquire);
    EXPECT_LE(verified, p.published()) << "the consumer verified more messages than were published";
    if (plan.clean) {
      EXPECT_EQ(verified, plan.limit);
    }
    if (const auto g = report.generation.load(); g != 0) {
      EXPECT_EQ(g, generation) << "the child attached to a ring generation other than the survivor's";
      ++attached_;
    }
    child_verified_ += verified;
    if (killer.killed() && verified > 0) ++kills_mid_traffic_;
    writer_.reset();
  }

  std::uint64_t seed_ = 0, kills_ = 0;
  ipc::segment rings_, reports_;
  std::span<std::byte> to_survivor_, to_child_;  // child -> survivor ring, survivor -> child ring
  ipc::ring_reader reader_;
  ipc::ring_writer writer_;

  std::uint64_t survivor_verified_ = 0, child_verified_ = 0, read_after_kill_ = 0, attached_ = 0,
                kills_mid_traffic_ = 0;
  clock_type::duration longest_block_{}, longest_round_{};
};

TEST_F(RingKillTorture, SurvivorNeverHangsNeverReadsATornMessageAndRecoversAfterReset) {
  const std::string replay = "replay with RINGMASTER_TORTURE_SEED=" + std::to_string(seed_) +
                             " RINGMASTER_TORTURE_KILLS=" + std::to_string(kills_);
  SCOPED_TRACE(replay);
  watchdog dog;
  rng r(seed_);
  std::uint64_t kills = 0, producer_kills = 0, clean_rounds = 0;
  const auto run_start = clock_type::now();
  unsigned index = 0;
  // Runs until `kills_` kills, then one last clean round: the ring must still work.
  for (; kills < kills_ || index % k_clean_every != k_clean_every - 1; ++index) {
    const round_plan plan = plan_round(r, index);
    const std::string note = plan.describe(seed_);
    SCOPED_TRACE(note);
    dog.arm(note);
    const auto round_start = clock_type::now();
    if (plan.child_produces) {
      survive_producer(plan);
    } else {
      survive_consumer(plan);
    }
    longest_round_ = std::max(longest_round_, clock_type::now() - round_start);
    if (plan.clean) {
      ++clean_rounds;
    } else {
      ++kills;
      producer_kills += plan.child_produces ? 1 : 0;
    }
    if (HasFailure()) {  // the first failure is the interesting one
      ++index;
      break;
    }
  }
  const auto elapsed = clock_type::now() - run_start;

  std::printf(
      "[ torture  ] seed %llu: %u rounds in %.1f s: %llu kills (%llu producers, %llu consumers), %llu clean rounds;\n"
      "[ torture  ] children attached in %llu rounds, %llu killed mid-traffic; messages verified: %llu by the "
      "survivor (%llu of them read after SIGKILL was sent to their producer), %llu by consumer children;\n"
      "[ torture  ] longest survivor block %.2f ms, longest round %.2f ms\n",
      static_cast<unsigned long long>(seed_), index, ms(elapsed) / 1000, static_cast<unsigned long long>(kills),
      static_cast<unsigned long long>(producer_kills), static_cast<unsigned long long>(kills - producer_kills),
      static_cast<unsigned long long>(clean_rounds), static_cast<unsigned long long>(attached_),
      static_cast<unsigned long long>(kills_mid_traffic_), static_cast<unsigned long long>(survivor_verified_),
      static_cast<unsigned long long>(read_after_kill_),
      static_cast<unsigned long long>(child_verified_), ms(longest_block_), ms(longest_round_));
  RecordProperty("seed", std::to_string(seed_));
  if (HasFailure()) return;

  EXPECT_EQ(kills, kills_);
  EXPECT_LT(longest_block_, k_longest_block) << "a blocking call of the survivor overran its deadline";
  if (kills_ >= 100) {  // too few rounds for these to be sure of themselves otherwise
    // Traffic really flowed both ways, not just kills of idle children: clean rounds alone
    // carry ~1,600 messages each on average.
    const std::uint64_t expected = 200 * (kills_ / k_clean_every);
    EXPECT_GE(survivor_verified_, expected);
    EXPECT_GE(child_verified_, expected);
    EXPECT_GE(kills_mid_traffic_, kills_ / 2) << "too few kills landed while messages were flowing";
    EXPECT_GT(read_after_kill_, 0u) << "no kill ever caught a producer with messages still unread";
  }
}

}  // namespace
