// primes — the smallest useful embedding of ringmaster: a program that registers one
// handler, starts a pool of two worker processes, hands them jobs and reads the results
// through futures.
//
// The order of the first three steps matters:
//   1. register handlers;
//   2. construct the supervisor: it forks its fork server here, a copy of the program as
//      it is now, so the workers see exactly the handlers registered in step 1;
//   3. add pools and start.
//
// Each job counts the primes <= N by trial division (deliberately slow, so the two
// workers have real work). The program prints one line per job, which worker slot ran
// it and how long it took, then checks every count against the same function run here,
// in this process, and exits 1 if any differs.
//
//   ringmaster_example_primes [STEPS] [STEP]   (defaults: 8 jobs, N = 25000, 50000, ...)
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <future>
#include <ranges>
#include <ringmaster/supervisor/supervisor.hpp>
#include <string>
#include <vector>

namespace {

std::uint64_t count_primes(std::uint64_t n) {
  std::uint64_t count = 0;
  for (std::uint64_t i = 2; i <= n; ++i) {
    bool prime = true;
    for (std::uint64_t d = 2; d * d <= i; ++d)
      if (i % d == 0) {
        prime = false;
        break;
      }
    count += prime ? 1 : 0;
  }
  return count;
}

}  // namespace

int main(int argc, char** argv) {
  const std::uint64_t steps = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 8;
  const std::uint64_t step = argc > 2 ? std::strtoull(argv[2], nullptr, 10) : 25'000;

  // 1. Handlers: a job type and the function that runs it. The payload is text in, the
  //    return value text out; a handler that throws fails only its job.
  ringmaster::handlers h;
  h.on("count_primes", [](ringmaster::job& j) {
    return std::to_string(count_primes(std::stoull(std::string(j.payload()))));
  });

  // 2. The supervisor: constructed after the handlers, before any thread is started.
  ringmaster::supervisor sup({.name = "primes"});

  // 3. A pool of two forked workers running `h`, then start. start() does not wait for
  //    the workers to be ready: jobs submitted meanwhile simply queue.
  ringmaster::pool& compute = sup.add_pool("compute", h, {.workers = 2});
  sup.start();

  // One job per N. map() submits a range of payloads, one future each, in order; a
  // single job is compute.submit("count_primes", "100000").
  std::vector<std::string> limits;
  for (std::uint64_t i = 1; i <= steps; ++i) limits.push_back(std::to_string(i * step));
  std::vector<std::future<ringmaster::result>> futures = compute.map("count_primes", limits);

  std::printf("%10s  %8s  %6s  %8s\n", "N", "primes", "worker", "ms");
  std::uint64_t total = 0;
  int wrong = 0;
  for (std::size_t i = 0; i < futures.size(); ++i) {
    const ringmaster::result r = futures[i].get();  // blocks until this job's result
    if (!r.ok()) {
      // Every job ends with exactly one result; a failed one says why.
      std::printf("%10s  failed (%s): %s\n", limits[i].c_str(), std::string(to_string(r.error)).c_str(),
                  r.value.c_str());
      ++wrong;
      continue;
    }
    std::printf("%10s  %8s  %6d  %8.1f\n", limits[i].c_str(), r.value.c_str(), r.worker, r.ms);
    const std::uint64_t expected = count_primes(std::stoull(limits[i]));
    if (std::stoull(r.value) != expected) {
      std::printf("  wrong: expected %llu\n", static_cast<unsigned long long>(expected));
      ++wrong;
    }
    total += std::stoull(r.value);
  }
  std::printf("total: %llu primes counted over %zu jobs, %d wrong\n", static_cast<unsigned long long>(total),
              futures.size(), wrong);

  // drain(): take no more jobs, finish the accepted ones, stop the workers. The
  // destructor would stop them too; draining first makes the shutdown explicit.
  sup.drain();
  return wrong == 0 ? 0 : 1;
}
