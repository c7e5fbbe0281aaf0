// The peers of ringmaster_pool_bench that are not ringmaster: a fork+pipes pool, a
// boost::interprocess::message_queue pool and the in-process loop (see peers.hpp).
#include "peers.hpp"

#include "../common/stats.hpp"

#include <dirent.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <boost/date_time/posix_time/posix_time_types.hpp>
#include <boost/interprocess/ipc/message_queue.hpp>
#include <boost/interprocess/permissions.hpp>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <system_error>

namespace ringmaster::pool_bench {
namespace {

namespace bip = boost::interprocess;
using bench_stats::clock_type;
using bench_stats::seconds_since;

constexpr int k_reply_timeout_ms = 30'000;  // a wedged peer fails the run, never hangs it
constexpr const char* k_mq_prefix = "ringmaster-bench-pool-mq-";

/// A deadline as Boost.Interprocess's timed calls take it (UTC; a steady_clock time point
/// would be read as a date in 1970 and time out at once).
boost::posix_time::ptime deadline(int ms) {
  return boost::posix_time::microsec_clock::universal_time() + boost::posix_time::milliseconds(ms);
}

[[noreturn]] void fail_errno(const std::string& what) {
  throw std::system_error(errno, std::generic_category(), what);
}

void check(const job_spec& spec, std::uint64_t index, std::string_view got, const char* peer) {
  const std::string& want = spec.expected[index % spec.expected.size()];
  if (got != want)
    throw wrong_result(std::string(peer) + ": job " + std::to_string(index) + " returned " +
                       std::to_string(got.size()) + " bytes that differ from the expected " +
                       std::to_string(want.size()));
}

// ---------------------------------------------------------------- fork + pipes
struct frame_header {
  std::uint64_t id;
  std::uint32_t size;
  std::uint32_t pad;
};

void write_full(int fd, const char* p, std::size_t n) {
  while (n > 0) {
    const ssize_t w = ::write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      fail_errno("pipe pool: write");
    }
    p += w;
    n -= static_cast<std::size_t>(w);
  }
}

/// Length-prefixed frames read from a byte stream, buffered.
class frame_reader {
 public:
  explicit frame_reader(int fd) : fd_(fd) {}
  /// Reads what is available (one read() call); false at end of stream.
  bool fill() {
    if (begin_ > 0 && begin_ == buf_.size()) {
      buf_.clear();
      begin_ = 0;
    }
    const std::size_t old = buf_.size();
    buf_.resize(old + 65536);
    ssize_t r;
    do r = ::read(fd_, buf_.data() + old, 65536);
    while (r < 0 && errno == EINTR);
    if (r < 0) fail_errno("pipe pool: read");
    buf_.resize(old + static_cast<std::size_t>(r));
    return r > 0;
  }
  /// The next complete frame, if buffered.
  bool next(frame_header& h, std::string_view& body) {
    if (buf_.size() - begin_ < sizeof h) return false;
    std::memcpy(&h, buf_.data() + begin_, sizeof h);
    if (buf_.size() - begin_ < sizeof h + h.size) return false;
    body = std::string_view(buf_.data() + begin_ + sizeof h, h.size);
    begin_ += sizeof h + h.size;
    return true;
  }
  /// Compacts consumed bytes away (call when no view from next() is in use).
  void compact() {
    if (begin_ > (1u << 20) || (begin_ > 0 && begin_ == buf_.size())) {
      buf_.erase(0, begin_);
      begin_ = 0;
    }
  }

 private:
  int fd_;
  std::string buf_;
  std::size_t begin_ = 0;
};

std::string frame(std::uint64_t id, std::string_view body) {
  std::string f(sizeof(frame_header) + body.size(), '\0');
  const frame_header h{id, static_cast<std::uint32_t>(body.size()), 0};
  std::memcpy(f.data(), &h, sizeof h);
  std::memcpy(f.data() + sizeof h, body.data(), body.size());
  return f;
}

class pipe_pool {
 public:
  pipe_pool(const std::string& type, unsigned workers) {
    for (unsigned w = 0; w < workers; ++w) {
      int req[2], rep[2];
      if (::pipe2(req, O_CLOEXEC) != 0 || ::pipe2(rep, O_CLOEXEC) != 0) fail_errno("pipe pool: pipe2");
      const pid_t pid = ::fork();
      if (pid < 0) fail_errno("pipe pool: fork");
      if (pid == 0) {
        for (auto& o : workers_) {
          ::close(o.req_w);
          ::close(o.rep_r);
        }
        ::close(req[1]);
        ::close(rep[0]);
        ::_exit(serve(type, req[0], rep[1]));
      }
      ::close(req[0]);
      ::close(rep[1]);
      workers_.push_back({pid, req[1], rep[0], 0, std::make_unique<frame_reader>(rep[0])});
    }
  }
  pipe_pool(const pipe_pool&) = delete;
  pipe_pool& operator=(const pipe_pool&) = delete;
  ~pipe_pool() { close_and_reap(false); }

  /// Runs `jobs` jobs numbered from `first`, at most `depth` in flight per worker.
  void run(const job_spec& spec, std::uint64_t first, std::size_t jobs, std::size_t depth) {
    std::uint64_t next = first;
    const std::uint64_t end = first + jobs;
    std::size_t done = 0;
    std::vector<pollfd> fds(workers_.size());
    while (done < jobs) {
      for (auto& w : workers_)
        while (w.in_flight < depth && next < end) {
          const std::string f = frame(next, spec.payloads[next % spec.payloads.size()]);
          write_full(w.req_w, f.data(), f.size());
          ++w.in_flight;
          ++next;
        }
      for (std::size_t i = 0; i < workers_.size(); ++i) fds[i] = {workers_[i].rep_r, POLLIN, 0};
      const int n = ::poll(fds.data(), fds.size(), k_reply_timeout_ms);
      if (n < 0 && errno != EINTR) fail_errno("pipe pool: poll");
      if (n == 0) throw wrong_result("pipe pool: no reply for 30 s");
      for (std::size_t i = 0; i < workers_.size(); ++i) {
        if (!(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
        auto& w = workers_[i];
        if (!w.reader->fill()) throw wrong_result("pipe pool: a worker closed its pipe");
        frame_header h;
        std::string_view body;
        while (w.reader->next(h, body)) {
          check(spec, h.id, body, "pipe pool");
          --w.in_flight;
          ++done;
        }
        w.reader->compact();
      }
    }
  }

  void close_and_reap(bool must_succeed) {
    bool bad = false;
    for (auto& w : workers_) {
      ::close(w.req_w);
      ::close(w.rep_r);
    }
    for (auto& w : workers_) {
      int status = 0;
      while (::waitpid(w.pid, &status, 0) < 0 && errno == EINTR) {
      }
      if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) bad = true;
    }
    workers_.clear();
    if (bad && must_succeed) throw wrong_result("pipe pool: a worker exited abnormally");
  }

 private:
  static int serve(const std::string& type, int in, int out) {
    try {
      frame_reader reader(in);
      frame_header h;
      std::string_view body;
      while (reader.fill()) {
        while (reader.next(h, body)) {
          const std::string f = frame(h.id, run_job(type, body));
          write_full(out, f.data(), f.size());
        }
        reader.compact();
      }
      return 0;
    } catch (...) {
      return 1;
    }
  }

  struct worker {
    pid_t pid;
    int req_w, rep_r;
    std::size_t in_flight;
    std::unique_ptr<frame_reader> reader;
  };
  std::vector<worker> workers_;
};

std::size_t pipe_depth(const job_spec& spec) {
  // Keep every request and reply in flight within a pipe's 64 KiB buffer, so that
  // blocking writes on both sides can never wait on each other.
  const std::size_t size = sizeof(frame_header) + std::max(spec.payloads[0].size(), spec.expected[0].size());
  return std::clamp<std::size_t>(32768 / size, 1, 64);
}

// ---------------------------------------------------------------- message_queue
class mq_pool {
 public:
  mq_pool(const std::string& type, unsigned workers, std::size_t message_size, std::size_t depth)
      : base_(std::string(k_mq_prefix) + std::to_string(::getpid()) + "-"), depth_(depth), size_(message_size + 8) {
    bip::message_queue::remove((base_ + "req").c_str());
    bip::message_queue::remove((base_ + "rep").c_str());
    req_.emplace(bip::create_only, (base_ + "req").c_str(), depth_, size_, bip::permissions(0600));
    rep_.emplace(bip::create_only, (base_ + "rep").c_str(), depth_, size_, bip::permissions(0600));
    for (unsigned w = 0; w < workers; ++w) {
      const pid_t pid = ::fork();
      if (pid < 0) fail_errno("mq pool: fork");
      if (pid == 0) ::_exit(serve(type));
      pids_.push_back(pid);
    }
  }
  mq_pool(const mq_pool&) = delete;
  mq_pool& operator=(const mq_pool&) = delete;
  ~mq_pool() {
    try {
      stop(false);
    } catch (...) {
    }
    req_.reset();
    rep_.reset();
    bip::message_queue::remove((base_ + "req").c_str());
    bip::message_queue::remove((base_ + "rep").c_str());
  }

  void run(const job_spec& spec, std::uint64_t first, std::size_t jobs, std::size_t in_flight_max) {
    std::string msg(size_, '\0');
    std::uint64_t next = first;
    const std::uint64_t end = first + jobs;
    std::size_t done = 0, in_flight = 0;
    while (done < jobs) {
      while (in_flight < in_flight_max && next < end) {
        const std::string& p = spec.payloads[next % spec.payloads.size()];
        std::memcpy(msg.data(), &next, 8);
        std::memcpy(msg.data() + 8, p.data(), p.size());
        req_->send(msg.data(), 8 + p.size(), 0);
        ++in_flight;
        ++next;
      }
      std::size_t got = 0;
      unsigned prio = 0;
      for (int waited_ms = 0; !rep_->timed_receive(msg.data(), size_, got, prio, deadline(100)); waited_ms += 100) {
        if (waited_ms >= k_reply_timeout_ms) throw wrong_result("mq pool: no reply for 30 s");
        for (pid_t pid : pids_)
          if (::waitpid(pid, nullptr, WNOHANG) == pid) {
            std::erase(pids_, pid);
            throw wrong_result("mq pool: a worker died");
          }
      }
      if (got < 8) throw wrong_result("mq pool: short reply");
      std::uint64_t id;
      std::memcpy(&id, msg.data(), 8);
      check(spec, id, std::string_view(msg.data() + 8, got - 8), "mq pool");
      --in_flight;
      ++done;
    }
  }

  void stop(bool must_succeed) {
    if (pids_.empty()) return;
    const std::uint64_t stop_id = ~std::uint64_t{0};
    for (std::size_t i = 0; i < pids_.size(); ++i)
      if (!req_->timed_send(&stop_id, 8, 0, deadline(5000))) break;
    bool bad = false;
    for (pid_t pid : pids_) {
      int status = 0;
      // A worker that does not take its stop message in 5 s is killed.
      for (int i = 0; i < 500 && ::waitpid(pid, &status, WNOHANG) == 0; ++i) ::usleep(10'000);
      if (::waitpid(pid, &status, WNOHANG) == 0) {
        ::kill(pid, SIGKILL);
        ::waitpid(pid, &status, 0);
      }
      if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) bad = true;
    }
    pids_.clear();
    if (bad && must_succeed) throw wrong_result("mq pool: a worker exited abnormally");
  }

 private:
  int serve(const std::string& type) {
    try {
      std::string msg(size_, '\0');
      for (;;) {
        std::size_t got = 0;
        unsigned prio = 0;
        req_->receive(msg.data(), size_, got, prio);
        if (got < 8) return 1;
        std::uint64_t id;
        std::memcpy(&id, msg.data(), 8);
        if (got == 8 && id == ~std::uint64_t{0}) return 0;
        const std::string r = run_job(type, std::string_view(msg.data() + 8, got - 8));
        std::string out(8 + r.size(), '\0');
        std::memcpy(out.data(), &id, 8);
        std::memcpy(out.data() + 8, r.data(), r.size());
        rep_->send(out.data(), out.size(), 0);
      }
    } catch (...) {
      return 1;
    }
  }

  std::string base_;
  std::size_t depth_, size_;
  std::optional<bip::message_queue> req_, rep_;
  std::vector<pid_t> pids_;
};

std::size_t message_size(const job_spec& spec) {
  std::size_t m = 0;
  for (const auto& p : spec.payloads) m = std::max(m, p.size());
  for (const auto& e : spec.expected) m = std::max(m, e.size());
  return m;
}

std::size_t mq_depth(const job_spec& spec) {
  return std::clamp<std::size_t>((std::size_t{4} << 20) / (message_size(spec) + 8), 4, 256);
}


}  // namespace

std::uint64_t spin(std::uint64_t iterations) noexcept {
  std::uint64_t x = iterations;
  for (std::uint64_t i = 0; i < iterations; ++i) {
    x = x * 6364136223846793005ULL + 1442695040888963407ULL;
    asm volatile("" : "+r"(x));  // one dependent step per iteration, never folded
  }
  return x;
}

std::string run_job(std::string_view type, std::string_view payload) {
  // RINGMASTER_BENCH_CORRUPT=1 (the test of the checks): each process's 300th job
  // returns a wrong result, which must fail the run.
  static const bool corrupt = std::getenv("RINGMASTER_BENCH_CORRUPT") != nullptr;
  static std::uint64_t calls = 0;
  if (corrupt && ++calls == 300) return std::string(payload) + "!";
  if (type == "echo") return std::string(payload);
  if (type == "spin") {
    std::uint64_t k = 0;
    const auto [p, ec] = std::from_chars(payload.data(), payload.data() + payload.size(), k);
    if (ec != std::errc{} || p != payload.data() + payload.size()) throw std::invalid_argument("spin: bad payload");
    return std::to_string(spin(k));
  }
  throw std::invalid_argument("unknown job type");
}

double run_pipe_pool(const job_spec& spec, std::size_t jobs, unsigned workers) {
  pipe_pool pool(spec.type, workers);
  const std::size_t depth = pipe_depth(spec);
  pool.run(spec, 0, std::min<std::size_t>(jobs, 1000), depth);  // warm-up
  const auto t0 = clock_type::now();
  pool.run(spec, 0, jobs, depth);
  const double s = seconds_since(t0);
  pool.close_and_reap(true);
  return s;
}

double run_mq_pool(const job_spec& spec, std::size_t jobs, unsigned workers) {
  const std::size_t depth = mq_depth(spec);
  mq_pool pool(spec.type, workers, message_size(spec), depth);
  pool.run(spec, 0, std::min<std::size_t>(jobs, 1000), depth);
  const auto t0 = clock_type::now();
  pool.run(spec, 0, jobs, depth);
  const double s = seconds_since(t0);
  pool.stop(true);
  return s;
}

double run_loop(const job_spec& spec, std::size_t jobs) {
  const auto t0 = clock_type::now();
  for (std::size_t i = 0; i < jobs; ++i) {
    const std::string r = run_job(spec.type, spec.payloads[i % spec.payloads.size()]);
    check(spec, i, r, "in-process loop");
  }
  return seconds_since(t0);
}

namespace {
/// Round trips in µs of one job at a time on `pool` (one worker, warmed up first).
template <class Pool>
std::vector<double> round_trips(Pool& pool, const job_spec& spec, std::size_t samples) {
  pool.run(spec, 0, 200, 1);
  std::vector<double> us;
  us.reserve(samples);
  for (std::size_t i = 0; i < samples; ++i) {
    const auto t0 = clock_type::now();
    pool.run(spec, i, 1, 1);
    us.push_back(seconds_since(t0) * 1e6);
  }
  return us;
}
}  // namespace

std::vector<double> latency_pipe(const job_spec& spec, std::size_t samples) {
  pipe_pool pool(spec.type, 1);
  auto us = round_trips(pool, spec, samples);
  pool.close_and_reap(true);
  return us;
}

std::vector<double> latency_mq(const job_spec& spec, std::size_t samples) {
  mq_pool pool(spec.type, 1, message_size(spec), 4);
  auto us = round_trips(pool, spec, samples);
  pool.stop(true);
  return us;
}

void sweep_stale_queues() noexcept {
  DIR* d = ::opendir("/dev/shm");
  if (d == nullptr) return;
  const std::size_t prefix = std::strlen(k_mq_prefix);
  while (const dirent* e = ::readdir(d)) {
    if (std::strncmp(e->d_name, k_mq_prefix, prefix) != 0) continue;
    const long pid = std::strtol(e->d_name + prefix, nullptr, 10);
    if (pid > 0 && (::kill(static_cast<pid_t>(pid), 0) == 0 || errno != ESRCH)) continue;  // its owner lives
    bip::message_queue::remove(e->d_name);
  }
  ::closedir(d);
}

}  // namespace ringmaster::pool_bench
