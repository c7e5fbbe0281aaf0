// ring_workers — two worker processes count primes for a parent, through ringmaster's
// shared-memory rings, and one of them is SIGKILLed mid-job and replaced.
//
// This is the ipc layer on its own, wired by hand: one job ring and one result ring per
// worker in an anonymous segment created before fork(). It shows the three moves the
// supervisor (supervisor/) will make for you:
//   1. publish jobs into a worker's ring and read its results back, batching both ways;
//   2. notice a dead worker, find the jobs it held, reset its rings, fork a replacement;
//   3. resend exactly the jobs that had no result, so none is lost.
//
//   ringmaster_example_ring_workers [JOBS] [LIMIT]   (defaults: 2000 jobs, primes <= 20000)
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <ringmaster/ipc/ring.hpp>
#include <ringmaster/ipc/segment.hpp>
#include <vector>

namespace ipc = ringmaster::ipc;
using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

namespace {

constexpr int k_workers = 2;
constexpr ipc::ring_options k_options{.capacity = 1 << 16, .max_message = 256};

struct job_msg {
  std::uint32_t id;
  std::uint32_t limit;
};
struct result_msg {
  std::uint32_t id;
  std::uint32_t primes;
};

std::uint32_t count_primes(std::uint32_t n) {
  std::uint32_t count = 0;
  for (std::uint32_t i = 2; i <= n; ++i) {
    bool prime = true;
    for (std::uint32_t d = 2; d * d <= i; ++d)
      if (i % d == 0) {
        prime = false;
        break;
      }
    count += prime;
  }
  return count;
}

// One worker's two rings inside the shared segment.
struct worker_rings {
  std::span<std::byte> jobs, results;
};

// The worker process: read a job, compute, send the result; forever.
[[noreturn]] void worker_main(worker_rings rings) {
  auto in = ipc::ring_reader::attach(rings.jobs, k_options);
  auto out = ipc::ring_writer::attach(rings.results, k_options);
  for (;;) {
    std::span<const std::byte> m;
    // A worker waits as long as it takes: if the parent dies, PR_SET_PDEATHSIG kills us.
    if (in.read(m, clock_type::now() + 1h)) continue;
    job_msg job;
    std::memcpy(&job, m.data(), sizeof job);
    in.release();
    const result_msg r{job.id, count_primes(job.limit)};
    if (out.send(std::as_bytes(std::span(&r, 1)), clock_type::now() + 1h)) _exit(2);
  }
}

pid_t spawn(worker_rings rings) {
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(1);
    worker_main(rings);
  }
  return pid;
}

struct worker {
  worker_rings rings;
  pid_t pid = -1;
  ipc::ring_writer jobs;
  ipc::ring_reader results;
  std::deque<std::uint32_t> held;  // ids sent and not yet answered, in order
};

}  // namespace

int main(int argc, char** argv) {
  const std::uint32_t total = argc > 1 ? static_cast<std::uint32_t>(std::atoi(argv[1])) : 2000;
  const std::uint32_t limit = argc > 2 ? static_cast<std::uint32_t>(std::atoi(argv[2])) : 20000;
  const std::uint32_t expected = count_primes(limit);

  const std::size_t ring_bytes = ipc::ring_footprint(k_options);
  auto seg = ipc::segment::create_anonymous(2 * k_workers * ring_bytes);
  std::array<worker, k_workers> workers;
  for (int w = 0; w < k_workers; ++w) {
    auto& wk = workers[w];
    wk.rings = {seg.bytes().subspan(2 * w * ring_bytes, ring_bytes), seg.bytes().subspan((2 * w + 1) * ring_bytes, ring_bytes)};
    ipc::format_ring_or_throw(wk.rings.jobs, k_options);
    ipc::format_ring_or_throw(wk.rings.results, k_options);
    wk.jobs = ipc::ring_writer::attach(wk.rings.jobs, k_options);
    wk.results = ipc::ring_reader::attach(wk.rings.results, k_options);
    wk.pid = spawn(wk.rings);
  }
  std::printf("ring_workers: %u jobs (primes <= %u) on %d worker processes, pids %d and %d\n", total, limit, k_workers,
              workers[0].pid, workers[1].pid);

  std::deque<std::uint32_t> pending;
  for (std::uint32_t id = 0; id < total; ++id) pending.push_back(id);
  std::vector<bool> done(total, false);
  std::uint32_t finished = 0, wrong = 0, resent = 0, restarts = 0;
  bool killed = false;
  constexpr std::size_t k_credits = 8;  // jobs outstanding per worker
  const auto start = clock_type::now();

  while (finished < total) {
    const std::uint32_t finished_before = finished;
    for (auto& wk : workers) {
      // Feed: top the worker up to its credits, one publish for the batch.
      while (wk.held.size() < k_credits && !pending.empty()) {
        const job_msg job{pending.front(), limit};
        if (wk.jobs.try_write(std::as_bytes(std::span(&job, 1)))) break;
        wk.held.push_back(job.id);
        pending.pop_front();
      }
      wk.jobs.publish();
      // Collect every result available, one release for the batch.
      std::span<const std::byte> m;
      while (!wk.results.try_read(m)) {
        result_msg r;
        std::memcpy(&r, m.data(), sizeof r);
        if (!wk.held.empty() && wk.held.front() == r.id) wk.held.pop_front();
        if (!done[r.id]) {
          done[r.id] = true;
          ++finished;
          wrong += r.primes != expected;
        }
      }
      wk.results.release();
    }
    // Halfway through, kill worker 1 while it holds jobs, as a crash would.
    if (!killed && finished >= total / 2 && !workers[1].held.empty()) {
      killed = true;
      auto& wk = workers[1];
      std::printf("ring_workers: SIGKILL worker pid %d while it holds %zu job(s)\n", wk.pid, wk.held.size());
      kill(wk.pid, SIGKILL);
      waitpid(wk.pid, nullptr, 0);
      // The results it published before dying are whole: collect them first.
      std::span<const std::byte> m;
      while (!wk.results.try_read(m)) {
        result_msg r;
        std::memcpy(&r, m.data(), sizeof r);
        std::erase(wk.held, r.id);
        if (!done[r.id]) done[r.id] = true, ++finished, wrong += r.primes != expected;
      }
      // The jobs still held had no result: put them back in front, reset, replace.
      for (auto it = wk.held.rbegin(); it != wk.held.rend(); ++it) pending.push_front(*it), ++resent;
      wk.held.clear();
      wk.jobs.reset();
      wk.results.reset();
      wk.pid = spawn(wk.rings);
      ++restarts;
      std::printf("ring_workers: rings reset (generation %llu), replacement pid %d, %u job(s) resent\n",
                  static_cast<unsigned long long>(wk.jobs.generation()), wk.pid, resent);
    }
    // Nothing new: sleep on a busy worker's result ring instead of spinning, leaving both
    // cores to the workers.
    if (finished == finished_before)
      for (auto& wk : workers)
        if (!wk.held.empty()) {
          (void)wk.results.wait_readable(clock_type::now() + 1ms, ipc::wait_policy::sleeping());
          break;
        }
    if (clock_type::now() - start > 120s) {
      std::fprintf(stderr, "ring_workers: no progress for too long\n");
      break;
    }
  }
  const double secs = std::chrono::duration<double>(clock_type::now() - start).count();
  for (auto& wk : workers) {
    kill(wk.pid, SIGKILL);
    waitpid(wk.pid, nullptr, 0);
  }
  std::printf("ring_workers: %u/%u jobs done, %u wrong, %u restart(s), %u job(s) resent, %.2f s, %.0f jobs/s\n",
              finished, total, wrong, restarts, resent, secs, finished / secs);
  return finished == total && wrong == 0 && restarts == 1 ? 0 : 1;
}
