#include "harness.hpp"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <utility>

namespace ringmaster::bench {

void throw_errno(const std::string& what) {
  const int err = errno;
  throw bench_failure(what + ": " + std::strerror(err));
}

// ---------------------------------------------------------------------------------------
// payload

namespace {

// A stamp: distinct for every (sequence, offset) pair a run can produce (an odd
// multiplier is a bijection), and one multiply cheap, because it is computed for every
// message on both sides and must not be what a fast transport's figure measures.
constexpr std::uint64_t stamp_value(std::uint64_t seq, std::uint64_t offset) noexcept {
  return (seq + 1) * 0x9e3779b97f4a7c15ull ^ (offset << 40);
}

inline void store64(std::byte* at, std::uint64_t v) noexcept {
  std::memcpy(at, &v, sizeof v);
}
// Bytes 8..16 of a message: its size and a hash of sequence number and size.
constexpr std::uint64_t header_word(std::uint64_t seq, std::size_t size) noexcept {
  return std::uint64_t{static_cast<std::uint32_t>(size)} |
         (stamp_value(seq, size) & 0xffff'ffff'0000'0000ull);
}
inline std::uint64_t load64(const std::byte* at) noexcept {
  std::uint64_t v;
  std::memcpy(&v, at, sizeof v);
  return v;
}

// memcmp() for large messages; for small ones an inline compare, since a libc call costs
// as much as the transport's own work per message.
bool same_bytes(const std::byte* a, const std::byte* b, std::size_t n) noexcept {
  if (n > 256) return std::memcmp(a, b, n) == 0;
  std::uint64_t diff = 0;
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) diff |= load64(a + i) ^ load64(b + i);
  for (; i < n; ++i) diff |= static_cast<std::uint64_t>(a[i] ^ b[i]);
  return diff == 0;
}

}  // namespace

payload::payload(std::size_t size, std::uint64_t fault) : filler_(size), fault_(fault) {
  if (size < k_min_message) throw std::invalid_argument("payload smaller than its header");
  // Mid-message, away from the stamps, so that only the byte-for-byte compare can see it.
  fault_offset_ = size >= 24 ? 16 + (size - 24) / 2 : 9;
  if (size >= 24 && fault_offset_ % k_stamp_stride < 8) fault_offset_ += 8;
  // The filler: splitmix64 bytes, so that no two neighbouring words are alike.
  std::uint64_t x = 0x5eed'0f'b3c4ull + size;
  for (auto& b : filler_) {
    std::uint64_t z = (x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    b = static_cast<std::byte>((z ^ (z >> 31)) >> 56);
  }
  for (auto& buffer : buffers_) buffer = filler_;
  for (std::size_t off = k_stamp_stride; off + 16 <= size; off += k_stamp_stride)
    stamps_.push_back(off);
  if (size >= 24) stamps_.push_back(size - 8);
}

void payload::stamp(std::byte* at, std::uint64_t seq) const noexcept {
  const std::size_t n = filler_.size();
  store64(at, seq);
  store64(at + 8, header_word(seq, n));
  for (std::size_t off : stamps_) store64(at + off, stamp_value(seq, off));
  if (fault_ == k_no_fault) return;
  // make() reuses its buffers: put back the byte a previous message had wrong (a header
  // byte is rewritten above anyway).
  if (fault_offset_ >= 16) at[fault_offset_] = filler_[fault_offset_];
  if (seq == fault_) at[fault_offset_] ^= std::byte{0x20};
}

std::span<const std::byte> payload::make(std::uint64_t seq) noexcept {
  // Double-buffered: message seq was stamped by the previous call, so its stores have
  // left the store buffer by the time the transport copies it (copying bytes stored a
  // few cycles earlier stalls on store forwarding, a cost of this harness and not of
  // the transport). Calls out of sequence stamp on the spot.
  auto& current = buffers_[seq & 1];
  if (seq != next_) stamp(current.data(), seq);
  stamp(buffers_[(seq + 1) & 1].data(), seq + 1);
  next_ = seq + 1;
  return current;
}

void payload::write_to(std::span<std::byte> out, std::uint64_t seq) const noexcept {
  std::memcpy(out.data(), filler_.data(), filler_.size());
  stamp(out.data(), seq);
}

bool payload::matches(std::span<const std::byte> got, std::uint64_t seq) const noexcept {
  const std::size_t n = filler_.size();
  if (got.size() != n) return false;
  // Computed, not compared against a freshly stamped copy: that copy's stores would
  // stall the loads that follow (store forwarding) and dominate a small message's cost.
  const std::byte* g = got.data();
  std::uint64_t diff = (load64(g) ^ seq) | (load64(g + 8) ^ header_word(seq, n));
  std::size_t from = 16;  // the filler runs between header, stamps and end
  for (std::size_t off : stamps_) {
    diff |= load64(g + off) ^ stamp_value(seq, off);
    if (!same_bytes(g + from, filler_.data() + from, off - from)) return false;
    from = off + 8;
  }
  return diff == 0 && same_bytes(g + from, filler_.data() + from, n - from);
}

void payload::check(std::span<const std::byte> got, std::uint64_t seq, const char* where) const {
  if (matches(got, seq)) return;
  std::string why;
  if (got.size() != filler_.size()) {
    why = "length " + std::to_string(got.size()) + ", expected " + std::to_string(filler_.size());
  } else {
    std::vector<std::byte> expected(filler_);
    stamp(expected.data(), seq);
    std::size_t first = 0;
    while (first < got.size() && got[first] == expected[first]) ++first;
    why = "sequence number " + std::to_string(load64(got.data())) +
          ", first wrong byte at offset " + std::to_string(first);
  }
  throw bench_failure(std::string(where) + ": wrong data in message " + std::to_string(seq) + " (" +
                      why + ")");
}

void self_test_payload(std::size_t size) {
  payload sender(size);
  const payload receiver(size);
  auto fail = [&](const std::string& what) {
    throw bench_failure("self-test of the message check (" + std::to_string(size) + " B): " + what);
  };
  const auto m = sender.make(41);
  std::vector<std::byte> copy(m.begin(), m.end());
  if (!receiver.matches(copy, 41)) fail("an intact message is rejected");
  if (receiver.matches(copy, 40) || receiver.matches(copy, 42))
    fail("a wrong sequence number is accepted");
  if (receiver.matches(std::span<const std::byte>(copy).first(size - 8), 41))
    fail("a truncated message is accepted");
  std::vector<std::byte> written(size);
  sender.write_to(written, 41);
  if (written != copy) fail("write_to and make disagree");
  // Every byte for small messages; a spread of offsets for large ones.
  const std::size_t step = size <= 4096 ? 1 : 509;
  for (std::size_t at = 0; at < size; at += step) {
    copy[at] ^= std::byte{0x20};
    if (receiver.matches(copy, 41))
      fail("a flipped byte at offset " + std::to_string(at) + " is accepted");
    copy[at] ^= std::byte{0x20};
  }
  copy[size - 1] ^= std::byte{1};
  if (receiver.matches(copy, 41)) fail("a flipped last byte is accepted");
}

// ---------------------------------------------------------------------------------------
// file descriptors

fd_handle::fd_handle(fd_handle&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}

fd_handle& fd_handle::operator=(fd_handle&& other) noexcept {
  if (this != &other) {
    reset();
    fd_ = std::exchange(other.fd_, -1);
  }
  return *this;
}

fd_handle::~fd_handle() {
  reset();
}

void fd_handle::reset() noexcept {
  // Never retry close(): on Linux the descriptor is gone even when it reports EINTR.
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

pipe_fds make_pipe() {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) throw_errno("pipe2");
  return {fd_handle(fds[0]), fd_handle(fds[1])};
}

void write_all(int fd, std::span<const std::byte> bytes, const char* what) {
  while (!bytes.empty()) {
    const ssize_t n = ::write(fd, bytes.data(), bytes.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      throw_errno(what);
    }
    bytes = bytes.subspan(static_cast<std::size_t>(n));
  }
}

void read_exact(int fd, std::span<std::byte> bytes, const char* what) {
  while (!bytes.empty()) {
    const ssize_t n = ::read(fd, bytes.data(), bytes.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      throw_errno(what);
    }
    if (n == 0) throw bench_failure(std::string(what) + ": peer closed the pipe (did it die?)");
    bytes = bytes.subspan(static_cast<std::size_t>(n));
  }
}

// ---------------------------------------------------------------------------------------
// child

void pin_to_cpu(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  if (::sched_setaffinity(0, sizeof set, &set) != 0)
    throw_errno("cannot pin to CPU " + std::to_string(cpu));
}

child child::fork(const std::function<void()>& body, std::chrono::seconds watchdog, int cpu) {
  std::fflush(nullptr);  // nothing buffered is left for the child to inherit
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) throw_errno("fork");
  if (pid == 0) {
    int code = 0;
    try {
      // Never outlive the benchmark, nor a run: a wedged child dies by SIGALRM, which the
      // parent reports as a failure. The parent's clean-up handlers are not the child's.
      if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || ::getppid() != parent) ::_exit(4);
      for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGALRM}) ::signal(sig, SIG_DFL);
      ::alarm(static_cast<unsigned>(watchdog.count()));
      if (cpu >= 0) pin_to_cpu(cpu);
      body();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "ringmaster_ipc_bench: child: %s\n", e.what());
      code = 3;
    } catch (...) {
      code = 3;
    }
    // _exit, not exit: the parent's atexit handlers and static destructors are not the
    // child's to run.
    ::_exit(code);
  }
  child c;
  c.pid_ = pid;
  return c;
}

child::child(child&& other) noexcept
    : pid_(std::exchange(other.pid_, -1)),
      reaped_(std::exchange(other.reaped_, false)),
      status_(other.status_) {}

child& child::operator=(child&& other) noexcept {
  if (this != &other) {
    kill();
    pid_ = std::exchange(other.pid_, -1);
    reaped_ = std::exchange(other.reaped_, false);
    status_ = other.status_;
  }
  return *this;
}

child::~child() {
  kill();
}

void child::kill() noexcept {
  if (pid_ <= 0 || reaped_) return;
  ::kill(pid_, SIGKILL);
  while (::waitpid(pid_, &status_, 0) < 0 && errno == EINTR) {
  }
  reaped_ = true;
}

bool child::try_reap() noexcept {
  if (reaped_) return true;
  if (pid_ <= 0) return false;
  const pid_t r = ::waitpid(pid_, &status_, WNOHANG);
  if (r == pid_) reaped_ = true;
  return reaped_;
}

namespace {
std::string describe_status(int status) {
  if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status))
    return std::string("killed by signal ") + ::sigabbrev_np(WTERMSIG(status));
  return "ended with wait status " + std::to_string(status);
}
}  // namespace

std::string child::status_note() noexcept {
  try {
    return try_reap() ? "; the child " + describe_status(status_) : std::string{};
  } catch (...) {
    return {};
  }
}

void child::join(std::chrono::milliseconds timeout) {
  if (pid_ <= 0) throw std::logic_error("join on an empty child handle");
  const auto deadline = clock::now() + timeout;
  while (!try_reap()) {
    if (clock::now() >= deadline) {
      kill();
      throw bench_failure("the child did not exit within " + std::to_string(timeout.count()) +
                          " ms");
    }
    // Only after the measured part: a 100 µs poll costs nothing that is timed.
    const timespec pause{0, 100'000};
    ::nanosleep(&pause, nullptr);
  }
  if (WIFEXITED(status_) && WEXITSTATUS(status_) == 0) return;
  throw bench_failure("the child " + describe_status(status_));
}

// ---------------------------------------------------------------------------------------
// start_gate

start_gate::start_gate() : ready_(make_pipe()), go_(make_pipe()) {}

void start_gate::child_ready_and_wait() {
  const std::byte token{1};
  write_all(ready_.write_end.get(), {&token, 1}, "start gate (ready)");
  std::byte got{};
  read_exact(go_.read_end.get(), {&got, 1}, "start gate (go)");
}

void start_gate::parent_wait_ready() {
  std::byte got{};
  read_exact(ready_.read_end.get(), {&got, 1}, "start gate (child set-up)");
}

void start_gate::parent_go() {
  const std::byte token{1};
  write_all(go_.write_end.get(), {&token, 1}, "start gate (go)");
}

void start_gate::close_child_ends() noexcept {
  ready_.write_end.reset();
  go_.read_end.reset();
}

void start_gate::close_parent_ends() noexcept {
  ready_.read_end.reset();
  go_.write_end.reset();
}

// ---------------------------------------------------------------------------------------
// statistics

double median(std::vector<double> values) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  const std::size_t n = values.size();
  return n % 2 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
}

std::int64_t percentile(const std::vector<std::int64_t>& sorted, double q) {
  if (sorted.empty()) return 0;
  // Nearest rank: the smallest sample with at least q of all samples at or below it.
  auto rank = static_cast<std::size_t>(std::ceil(q * static_cast<double>(sorted.size())));
  rank = std::clamp<std::size_t>(rank, 1, sorted.size());
  return sorted[rank - 1];
}

// ---------------------------------------------------------------------------------------
// machine

namespace {

std::string trim(std::string s) {
  const auto b = s.find_first_not_of(" \t\n");
  const auto e = s.find_last_not_of(" \t\n");
  return b == std::string::npos ? std::string{} : s.substr(b, e - b + 1);
}

}  // namespace

machine_info probe_machine() {
  machine_info m;
  const long online = ::sysconf(_SC_NPROCESSORS_ONLN);
  m.cores_online = online > 0 ? static_cast<unsigned>(online) : 0;
  std::ifstream cpuinfo("/proc/cpuinfo");
  for (std::string line; std::getline(cpuinfo, line);) {
    const auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    const std::string key = trim(line.substr(0, colon));
    if (key == "processor") ++m.cpuinfo_processors;
    if (key == "model name" && m.cpu_model.empty()) m.cpu_model = trim(line.substr(colon + 1));
  }
  if (m.cpu_model.empty()) m.cpu_model = "unknown";
  utsname u{};
  if (::uname(&u) == 0) m.kernel = std::string(u.sysname) + " " + u.release + " " + u.machine;
  std::ifstream cs("/sys/devices/system/clocksource/clocksource0/current_clocksource");
  std::getline(cs, m.clocksource);
  if (m.clocksource.empty()) m.clocksource = "unknown";
  // The timer's own cost bounds how finely a round trip can be resolved.
  constexpr int k_calls = 200'000;
  const auto t0 = clock::now();
  clock::time_point last{};
  for (int i = 0; i < k_calls; ++i) last = clock::now();
  m.clock_now_ns = std::chrono::duration<double, std::nano>(last - t0).count() / k_calls;
  return m;
}

cpu_snapshot take_cpu_snapshot() {
  cpu_snapshot c;
  const double tick = 1.0 / static_cast<double>(::sysconf(_SC_CLK_TCK));
  std::ifstream stat("/proc/stat");
  std::string cpu;
  // user nice system idle iowait irq softirq steal (guest time is already in user)
  double v[8] = {};
  stat >> cpu;
  for (double& x : v) stat >> x;
  if (stat && cpu == "cpu") {
    c.machine_busy_s = (v[0] + v[1] + v[2] + v[5] + v[6]) * tick;
    c.machine_steal_s = v[7] * tick;
    c.machine_total_s = c.machine_busy_s + (v[3] + v[4]) * tick + c.machine_steal_s;
  }
  auto seconds = [](const timeval& t) {
    return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6;
  };
  rusage self{}, children{};
  ::getrusage(RUSAGE_SELF, &self);
  ::getrusage(RUSAGE_CHILDREN, &children);
  c.ours_s = seconds(self.ru_utime) + seconds(self.ru_stime) + seconds(children.ru_utime) +
             seconds(children.ru_stime);
  return c;
}

cpu_share share_between(const cpu_snapshot& before, const cpu_snapshot& after) {
  cpu_share s;
  const double total = after.machine_total_s - before.machine_total_s;
  if (total <= 0) return s;
  const double ours = after.ours_s - before.ours_s;
  s.ours = 100 * ours / total;
  // Tick-based accounting is coarse: never report less than nothing.
  s.others = std::max(0.0, 100 * (after.machine_busy_s - before.machine_busy_s - ours) / total);
  s.steal = 100 * (after.machine_steal_s - before.machine_steal_s) / total;
  return s;
}

}  // namespace ringmaster::bench
