// bench/ipc/harness.hpp — the small harness behind ringmaster_ipc_bench.
//
// Every measurement runs between two processes: the benchmark (parent) and one child
// forked for that measurement alone, so no run inherits another's state and a wedged
// peer is killed, never waited on forever. What is shared by the transports:
//
//  * payload: how a benchmark message is built and checked. Every transport carries the
//    same messages and checks every one of them, whole; a run that delivers one wrong
//    byte throws bench_failure and its figure is never reported.
//  * child: a forked peer, killed and reaped by its destructor, whose exit status is
//    checked (a child that found wrong data exits non-zero).
//  * start_gate: a pipe handshake so that set-up (attach, open) is never timed.
//  * statistics: median and nearest-rank percentiles.
//
// The checks are themselves checked: self_test_payload() before any measurement, and
// --check-detection, which corrupts one message per run on purpose and requires every
// run to fail.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

namespace ringmaster::bench {

using clock = std::chrono::steady_clock;

/// A run that delivered wrong data, timed out or failed. Its figure must not be reported.
class bench_failure : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// Throws bench_failure built from errno: "what: strerror".
[[noreturn]] void throw_errno(const std::string& what);

/// Smallest message the benchmark sends: the header below.
inline constexpr std::size_t k_min_message = 16;

/// Builds and checks benchmark messages of one size. Layout of a message of `size` bytes:
///
///     [0, 8)        u64 sequence number
///     [8, 12)       u32 size
///     [12, 16)      u32 hash(sequence, size)
///     every k_stamp_stride bytes, and in the last 8 bytes: u64 stamp(sequence, offset)
///     the rest      a fixed pseudo-random filler
///
/// The stamps tie every KiB of a message, and its end, to its sequence number (a stale,
/// torn, dropped, duplicated or reordered frame does not pass), and matches() compares
/// every byte, so a consumer reads the whole message as a real one would. Both cost a
/// few ns for a small message, so that the harness does not flatten the differences
/// between transports.
class payload {
 public:
  static constexpr std::size_t k_stamp_stride = 1024;

  /// No message is corrupted.
  static constexpr std::uint64_t k_no_fault = ~std::uint64_t{0};

  /// size >= k_min_message. `fault`: the sequence number of one message that make() and
  /// write_to() deliberately get wrong (one byte flipped), to prove that the checks catch
  /// it (--check-detection).
  explicit payload(std::size_t size, std::uint64_t fault = k_no_fault);

  [[nodiscard]] std::size_t size() const noexcept { return filler_.size(); }
  /// Message number `seq`, in this object's buffer, valid until the next make() but one.
  std::span<const std::byte> make(std::uint64_t seq) noexcept;
  /// Writes message number `seq` into `out` (out.size() == size()).
  void write_to(std::span<std::byte> out, std::uint64_t seq) const noexcept;
  /// Whether `got` is exactly message number `seq`.
  [[nodiscard]] bool matches(std::span<const std::byte> got, std::uint64_t seq) const noexcept;
  /// Throws bench_failure naming `where` and what differs unless matches(got, seq).
  void check(std::span<const std::byte> got, std::uint64_t seq, const char* where) const;

 private:
  void stamp(std::byte* at, std::uint64_t seq) const noexcept;  // also applies the fault
  std::vector<std::byte> filler_;
  std::uint64_t fault_;
  std::size_t fault_offset_;                // in the filler, or in the header when there is none
  std::vector<std::size_t> stamps_;         // offsets of the stamps after the header
  std::vector<std::byte> buffers_[2];       // make()'s output, alternately
  std::uint64_t next_ = ~std::uint64_t{0};  // the message buffers_[next_ & 1] holds
};

/// Proves, before anything is measured, that payload::matches rejects what it must (a
/// wrong sequence number, a truncated message, one flipped byte anywhere) for messages
/// of `size` bytes. Throws bench_failure if it does not.
void self_test_payload(std::size_t size);

/// An owned file descriptor, closed by the destructor (never retried on EINTR).
class fd_handle {
 public:
  fd_handle() = default;
  explicit fd_handle(int fd) noexcept : fd_(fd) {}
  fd_handle(fd_handle&& other) noexcept;
  fd_handle& operator=(fd_handle&& other) noexcept;
  fd_handle(const fd_handle&) = delete;
  fd_handle& operator=(const fd_handle&) = delete;
  ~fd_handle();
  [[nodiscard]] int get() const noexcept { return fd_; }
  void reset() noexcept;

 private:
  int fd_ = -1;
};

struct pipe_fds {
  fd_handle read_end;
  fd_handle write_end;
};
/// pipe2(O_CLOEXEC); throws bench_failure.
pipe_fds make_pipe();

/// Writes all of `bytes`, retrying short writes and EINTR. Throws bench_failure (EPIPE
/// when the peer is gone: SIGPIPE is ignored by the benchmark).
void write_all(int fd, std::span<const std::byte> bytes, const char* what);
/// Reads exactly `bytes.size()` bytes. Throws bench_failure on EOF or error.
void read_exact(int fd, std::span<std::byte> bytes, const char* what);

/// A forked peer for one measurement. The destructor SIGKILLs and reaps a child still
/// running, so no error path leaves a process behind.
class child {
 public:
  /// Forks; the child runs `body` and _exit()s: 0 when it returns, 3 when it throws
  /// (after printing the message on stderr). The child dies with the parent
  /// (PR_SET_PDEATHSIG) and by SIGALRM after `watchdog`, so it can never outlive a run.
  /// With `cpu` >= 0 the child is pinned to that CPU first.
  static child fork(const std::function<void()>& body, std::chrono::seconds watchdog, int cpu = -1);

  child() = default;
  child(child&& other) noexcept;
  child& operator=(child&& other) noexcept;
  child(const child&) = delete;
  child& operator=(const child&) = delete;
  ~child();

  /// Waits up to `timeout` for the child to exit and reaps it. Throws bench_failure
  /// (after killing it) on timeout, or when it did not exit with status 0.
  void join(std::chrono::milliseconds timeout);
  /// SIGKILL and reap, if still running. Never throws.
  void kill() noexcept;
  /// For error messages: "" while the child runs, else how it ended ("; child exited
  /// with status 3"). Reaps it if it ended. Never throws.
  std::string status_note() noexcept;

 private:
  bool try_reap() noexcept;  // true once reaped (status_ is then valid)
  pid_t pid_ = -1;
  bool reaped_ = false;
  int status_ = 0;
};

/// The start handshake: the child says it is ready (set-up done) and waits for go, so
/// the parent's clock starts after set-up and right before the first message.
class start_gate {
 public:
  start_gate();
  /// In the child: announce readiness and block until the parent says go.
  void child_ready_and_wait();
  /// In the parent: block until the child is ready (bench_failure if it died first).
  void parent_wait_ready();
  /// In the parent: release the child.
  void parent_go();
  /// Each side closes the ends it does not use, so a dead peer is seen as EOF.
  void close_child_ends() noexcept;
  void close_parent_ends() noexcept;

 private:
  pipe_fds ready_;  // child -> parent
  pipe_fds go_;     // parent -> child
};

/// Pins the calling process to one CPU. Throws bench_failure.
void pin_to_cpu(int cpu);

/// Median of `values` (copied); 0 for none.
double median(std::vector<double> values);
/// Nearest-rank percentile (q in [0, 1]) of sorted samples.
std::int64_t percentile(const std::vector<std::int64_t>& sorted, double q);

/// What the report says about the machine.
struct machine_info {
  unsigned cores_online = 0;        ///< sysconf(_SC_NPROCESSORS_ONLN)
  unsigned cpuinfo_processors = 0;  ///< "processor" lines in /proc/cpuinfo
  std::string cpu_model;            ///< "model name" from /proc/cpuinfo
  std::string kernel;               ///< uname -sr
  std::string clocksource;          ///< the kernel's clocksource (tsc, kvm-clock, ...)
  double clock_now_ns = 0;          ///< cost of one steady_clock::now(), measured
};
machine_info probe_machine();

/// CPU time so far: the machine's (from /proc/stat, all CPUs) and this process's with its
/// reaped children. Two snapshots tell how much of the machine others took meanwhile.
struct cpu_snapshot {
  double machine_total_s = 0;  ///< every state, idle included
  double machine_busy_s = 0;   ///< user, nice, system, irq, softirq
  double machine_steal_s = 0;  ///< taken by the hypervisor for other guests
  double ours_s = 0;           ///< user + system of us and our children
};
cpu_snapshot take_cpu_snapshot();

/// Shares of the machine's CPU time between two snapshots, in percent.
struct cpu_share {
  double ours = 0;
  double others = 0;  ///< busy time that was not ours: other processes, the kernel's threads
  double steal = 0;
};
cpu_share share_between(const cpu_snapshot& before, const cpu_snapshot& after);

}  // namespace ringmaster::bench
