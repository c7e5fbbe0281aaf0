// ringmaster_pool_bench — one measurement per invocation, printed as one JSON object on
// stdout, for bench/suite.py to repeat, interleave with the other peers and report. Every
// result of every job is checked; a wrong one (or any failure) exits 1 with no figure.
//
//   throughput --peer ringmaster|pipe|mq|loop --type echo|spin --workers W --jobs N
//              [--size BYTES (echo)] [--iters K (spin)] [--command EXE (ringmaster)]
//       -> {"seconds": s, "jobs": N}                 first submission to last result;
//                                                    --command: the pool's workers are
//                                                    that executable (serve-worker, or
//                                                    the C ABI's c_echo_worker), not forks
//   serve-worker                                     a worker executable on serve():
//                                                    echo and spin
//   latency --peer ringmaster|pipe|mq|loop --samples N [--size BYTES]
//       -> {"p50_us", "p99_us", "p999_us", "samples"}  one echo job at a time, idle pool
//   crash --crash-pct P --workers W --jobs N
//       -> {"seconds", "restarts", "retried"}        tiny jobs, each attempt kills its
//                                                    worker with probability P %
//   restart --samples N
//       -> {"p50_ms", "p99_ms", "baseline_p50_ms"}   crash, then time until the
//                                                    replacement reports ready
//   memory-workers --workers W                       supervisor and per-worker RSS/PSS
//   memory-queued --queued Q --size BYTES            supervisor RSS with Q jobs queued
//   memory-stream --jobs N --size BYTES              peak RSS while N jobs stream
//                                                    through the default max_pending
//   calibrate                 -> {"iters_per_us"}   for the spin job
//   spin-job K | echo-job PAYLOAD                    one job as a process (GNU parallel)
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <ringmaster/supervisor/detail/testing.hpp>  // fork_server_pid
#include <ringmaster/supervisor/supervisor.hpp>
#include <ringmaster/worker/logging.hpp>
#include <ringmaster/worker/serve.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "../common/stats.hpp"
#include "peers.hpp"

namespace {

namespace pb = ringmaster::pool_bench;
using namespace std::chrono_literals;
using ringmaster::bench_stats::clock_type;
using ringmaster::bench_stats::percentile;
using ringmaster::bench_stats::seconds_since;

/// Arguments as --key value pairs, after the workload name.
struct args {
  std::map<std::string, std::string> kv;
  std::string get(const std::string& k, const std::string& def = "") const {
    const auto it = kv.find(k);
    if (it != kv.end()) return it->second;
    if (def.empty()) throw std::invalid_argument("missing --" + k);
    return def;
  }
  std::size_t num(const std::string& k, const std::string& def = "") const { return std::stoull(get(k, def)); }
};

/// "P|rest": dies by SIGKILL with probability P % (per attempt), else returns the payload.
std::string maybe_crash(ringmaster::job& j) {
  static std::mt19937_64 rng(static_cast<std::uint64_t>(::getpid()) * 0x9E3779B97F4A7C15ULL ^
                             static_cast<std::uint64_t>(clock_type::now().time_since_epoch().count()));
  const std::string_view p = j.payload();
  const auto bar = p.find('|');
  const double pct = std::stod(std::string(p.substr(0, bar)));
  if (std::uniform_real_distribution<double>(0, 100)(rng) < pct) ::raise(SIGKILL);
  return std::string(p);
}

pb::job_spec make_spec(const std::string& type, std::size_t size, std::uint64_t iters) {
  pb::job_spec s;
  s.type = type;
  if (type == "spin") {
    s.payloads = {std::to_string(iters)};
    s.expected = {std::to_string(pb::spin(iters))};
    return s;
  }
  // 16 distinct payloads, so that a reply swapped with another job's is caught.
  for (int i = 0; i < 16; ++i) {
    std::string p(std::max<std::size_t>(size, 1), '\0');
    std::uint64_t x = 0x243F6A8885A308D3ULL + static_cast<std::uint64_t>(i);
    for (auto& c : p) {
      x = x * 6364136223846793005ULL + 1442695040888963407ULL;
      c = static_cast<char>('a' + (x >> 59) % 26);
    }
    s.payloads.push_back(p);
    s.expected.push_back(p);
  }
  return s;
}

std::size_t max_message_for(const pb::job_spec& s) {
  std::size_t m = 0;
  for (const auto& p : s.payloads) m = std::max(m, p.size());
  return std::max<std::size_t>(std::size_t{1} << 20, 2 * m + 4096);
}

/// Counts results delivered to callbacks; waits for a number of them.
struct tally {
  explicit tally(std::size_t n) : target(n) {}
  std::mutex m;
  std::condition_variable cv;
  const std::size_t target;
  std::size_t done = 0;
  std::string first_wrong;
  void add(bool ok, const std::string& what) {
    std::lock_guard lock(m);
    if (!ok && first_wrong.empty()) first_wrong = what;
    if (++done == target) cv.notify_all();
  }
  void wait() {
    std::unique_lock lock(m);
    if (!cv.wait_for(lock, 120s, [&] { return done >= target; })) throw pb::wrong_result("ringmaster: results missing after 120 s");
    if (!first_wrong.empty()) throw pb::wrong_result("ringmaster: " + first_wrong);
  }
};

/// Submits jobs [first, first + n) of `spec` with callbacks and waits for every result.
void ringmaster_run(ringmaster::pool& pool, const pb::job_spec& spec, std::uint64_t first, std::size_t n) {
  tally t(n);
  for (std::uint64_t i = first; i < first + n; ++i) {
    const std::size_t k = i % spec.payloads.size();
    pool.submit(spec.type, spec.payloads[k], [&t, &spec, k, i](ringmaster::result r) {
      const bool ok = r.ok() && r.value == spec.expected[k];
      t.add(ok, ok ? std::string() : "job " + std::to_string(i) + " ended " + std::string(to_string(r.error)) + ": " + r.value.substr(0, 200));
    });
  }
  t.wait();
}

std::size_t status_kb(pid_t pid, const char* key) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind(key, 0) == 0) return std::stoull(line.substr(std::strlen(key) + 1));
  return 0;
}

std::size_t pss_kb(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/smaps_rollup");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("Pss:", 0) == 0) return std::stoull(line.substr(4));
  return 0;
}

void print(const std::map<std::string, double>& m) {
  std::printf("{");
  bool first = true;
  for (const auto& [k, v] : m) {
    std::printf("%s\"%s\": %.9g", first ? "" : ", ", k.c_str(), v);
    first = false;
  }
  std::printf("}\n");
}

int run(const std::string& workload, const args& a, ringmaster::handlers& h) {
  if (workload == "throughput") {
    const std::string peer = a.get("peer");
    const auto spec = make_spec(a.get("type"), a.num("size", "16"), a.num("iters", "1"));
    const std::size_t jobs = a.num("jobs");
    const auto workers = static_cast<unsigned>(a.num("workers", "1"));
    double s = 0;
    if (peer == "loop") s = pb::run_loop(spec, jobs);
    else if (peer == "pipe") s = pb::run_pipe_pool(spec, jobs, workers);
    else if (peer == "mq") s = pb::run_mq_pool(spec, jobs, workers);
    else if (peer == "ringmaster") {
      ringmaster::supervisor sup({.name = "bench-pool"});
      ringmaster::pool_options options{.workers = workers, .max_message = max_message_for(spec)};
      const std::string command = a.kv.count("command") ? a.get("command") : std::string();
      if (!command.empty()) options.command = {command, "serve-worker"};
      auto& pool = command.empty() ? sup.add_pool("p", h, options) : sup.add_pool("p", options);
      sup.start();
      ringmaster_run(pool, spec, 0, std::min<std::size_t>(jobs, 1000));  // workers ready, caches warm
      const auto t0 = clock_type::now();
      ringmaster_run(pool, spec, 0, jobs);
      s = seconds_since(t0);
      sup.stop();
    } else throw std::invalid_argument("unknown peer " + peer);
    print({{"seconds", s}, {"jobs", static_cast<double>(jobs)}});
    return 0;
  }
  if (workload == "latency") {
    const std::string peer = a.get("peer");
    const auto spec = make_spec("echo", a.num("size", "16"), 1);
    const std::size_t samples = a.num("samples");
    std::vector<double> us;
    if (peer == "pipe") us = pb::latency_pipe(spec, samples);
    else if (peer == "mq") us = pb::latency_mq(spec, samples);
    else if (peer == "loop") {
      for (std::size_t i = 0; i < samples; ++i) {
        const auto t0 = clock_type::now();
        pb::run_loop(spec, 1);
        us.push_back(seconds_since(t0) * 1e6);
      }
    } else if (peer == "ringmaster") {
      ringmaster::supervisor sup({.name = "bench-latency"});
      auto& pool = sup.add_pool("p", h, {.workers = 1});
      sup.start();
      for (int i = 0; i < 200; ++i) pool.submit("echo", spec.payloads[0]).get();
      for (std::size_t i = 0; i < samples; ++i) {
        const std::size_t k = i % spec.payloads.size();
        const auto t0 = clock_type::now();
        auto r = pool.submit("echo", spec.payloads[k]).get();
        us.push_back(seconds_since(t0) * 1e6);
        if (!r.ok() || r.value != spec.expected[k]) throw pb::wrong_result("ringmaster: round trip returned a wrong value");
      }
      sup.stop();
    } else throw std::invalid_argument("unknown peer " + peer);
    print({{"p50_us", percentile(us, 50)}, {"p99_us", percentile(us, 99)}, {"p999_us", percentile(us, 99.9)},
           {"samples", static_cast<double>(us.size())}});
    return 0;
  }
  if (workload == "crash") {
    const double pct = std::stod(a.get("crash-pct"));
    const std::size_t jobs = a.num("jobs");
    pb::job_spec spec;
    spec.type = "maybe_crash";
    for (int i = 0; i < 16; ++i) {
      spec.payloads.push_back(a.get("crash-pct") + "|payload-" + std::to_string(i));
      spec.expected.push_back(spec.payloads.back());
    }
    ringmaster::supervisor sup({.name = "bench-crash"});
    auto& pool = sup.add_pool("p", h,
                              {.workers = static_cast<unsigned>(a.num("workers", "2")),
                               .max_restarts = 1'000'000'000,
                               .max_attempts = 50,
                               .backoff_initial = 0ms,
                               .stable_after = 0ms});
    sup.start();
    pool.submit("echo", "warm").get();
    const auto t0 = clock_type::now();
    ringmaster_run(pool, spec, 0, jobs);
    const double s = seconds_since(t0);
    const auto st = sup.status();
    sup.stop();
    if (pct == 0 && st.pools[0].restarts != 0) throw pb::wrong_result("restarts without crashes");
    print({{"seconds", s}, {"jobs", static_cast<double>(jobs)}, {"restarts", static_cast<double>(st.pools[0].restarts)},
           {"retried", static_cast<double>(st.pools[0].retried)}});
    return 0;
  }
  if (workload == "restart") {
    // A one-worker pool; the worker is SIGKILLed by a job; the clock runs from the crash
    // result to the moment status() shows the replacement ready (polled every 20 µs),
    // against the time status() takes to show an idle worker ready with no crash.
    const std::size_t samples = a.num("samples");
    ringmaster::supervisor sup({.name = "bench-restart"});
    auto& pool = sup.add_pool("r", h,
                              {.workers = 1, .max_restarts = 1'000'000'000, .max_attempts = 1,
                               .backoff_initial = 0ms, .stable_after = 0ms});
    sup.start();
    pool.submit("echo", "warm").get();
    // The pid of the worker once status() shows it ready and different from `old`.
    auto wait_ready = [&](pid_t old) {
      for (const auto t0 = clock_type::now();;) {
        const auto st = sup.status();
        const auto& w = st.pools[0].workers[0];
        if (w.state == ringmaster::worker_state::ready && w.pid != 0 && w.pid != old) return w.pid;
        if (seconds_since(t0) > 10) throw pb::wrong_result("no ready worker after 10 s");
        std::this_thread::sleep_for(20us);
      }
    };
    std::vector<double> ms, base;
    pid_t pid = wait_ready(0);
    for (std::size_t i = 0; i < samples; ++i) {
      auto c = pool.submit("maybe_crash", "100|x").get();
      auto t0 = clock_type::now();
      if (c.error != ringmaster::error_kind::crash) throw pb::wrong_result("crash job ended " + c.value);
      pid = wait_ready(pid);
      ms.push_back(seconds_since(t0) * 1e3);
      // The same wait after a job that did not crash: what polling status() costs.
      auto e = pool.submit("echo", "after").get();
      t0 = clock_type::now();
      if (!e.ok() || e.value != "after") throw pb::wrong_result("job on the replacement: " + e.value);
      if (wait_ready(0) != pid) throw pb::wrong_result("the worker changed without a crash");
      base.push_back(seconds_since(t0) * 1e3);
    }
    sup.stop();
    print({{"p50_ms", percentile(ms, 50)}, {"p99_ms", percentile(ms, 99)}, {"baseline_p50_ms", percentile(base, 50)},
           {"samples", static_cast<double>(samples)}});
    return 0;
  }
  if (workload == "memory-workers") {
    const auto workers = static_cast<unsigned>(a.num("workers"));
    const std::size_t before = status_kb(::getpid(), "VmRSS:");
    ringmaster::supervisor sup({.name = "bench-memory"});
    auto& pool = sup.add_pool("p", h, {.workers = workers});
    sup.start();
    const auto spec = make_spec("echo", 64, 1);
    ringmaster_run(pool, spec, 0, 20'000);
    const std::size_t sup_kb = status_kb(::getpid(), "VmRSS:");
    double rss = 0, pss = 0;
    const auto st = sup.status();
    for (const auto& w : st.pools[0].workers) {
      rss += static_cast<double>(status_kb(w.pid, "VmRSS:"));
      pss += static_cast<double>(pss_kb(w.pid));
    }
    const double fs_pss = static_cast<double>(pss_kb(ringmaster::detail::fork_server_pid(sup)));
    sup.stop();
    print({{"workers", static_cast<double>(workers)}, {"process_rss_before_kb", static_cast<double>(before)},
           {"supervisor_rss_kb", static_cast<double>(sup_kb)}, {"worker_rss_kb", rss / workers},
           {"worker_pss_kb", pss / workers}, {"fork_server_pss_kb", fs_pss}});
    return 0;
  }
  if (workload == "memory-queued") {
    // One worker held busy by a long job (prefetch 1, so nothing else is sent ahead to
    // it); Q echo jobs of BYTES bytes then wait in the supervisor's queue.
    const std::size_t queued = a.num("queued");
    const auto spec = make_spec("echo", a.num("size"), 1);
    ringmaster::supervisor sup({.name = "bench-queued", .shutdown_timeout = 10ms});
    auto& pool = sup.add_pool("p", h, {.workers = 1, .max_pending = queued + 16, .prefetch = 1});
    sup.start();
    pool.submit("echo", "warm").get();
    auto hold = pool.submit("hold", "");
    for (auto t = clock_type::now(); sup.status().pools[0].in_flight == 0;)
      if (seconds_since(t) > 10) throw pb::wrong_result("hold job never started");
    const std::size_t before = status_kb(::getpid(), "VmRSS:");
    std::atomic<std::size_t> stopped{0}, other{0};
    for (std::size_t i = 0; i < queued; ++i)
      if (!pool.try_submit("echo", spec.payloads[i % spec.payloads.size()], [&](ringmaster::result r) {
            (r.error == ringmaster::error_kind::stopped ? stopped : other).fetch_add(1);
          }))
        throw pb::wrong_result("try_submit refused below max_pending");
    const auto st = sup.status();
    const std::size_t after = status_kb(::getpid(), "VmRSS:");
    sup.stop();  // the queued jobs end `stopped`; every one must get its result
    if (st.pools[0].queued < queued) throw pb::wrong_result("fewer jobs queued than submitted");
    if (stopped.load() + other.load() != queued) throw pb::wrong_result("queued jobs without a result after stop()");
    (void)hold;
    print({{"queued", static_cast<double>(queued)}, {"size", static_cast<double>(spec.payloads[0].size())},
           {"rss_before_kb", static_cast<double>(before)}, {"rss_after_kb", static_cast<double>(after)}});
    return 0;
  }
  if (workload == "memory-stream") {
    // N jobs submitted as fast as submit() takes them, through the default max_pending:
    // the supervisor's peak RSS stays that of max_pending queued jobs, whatever N.
    const std::size_t jobs = a.num("jobs");
    const auto spec = make_spec("echo", a.num("size"), 1);
    const std::size_t before = status_kb(::getpid(), "VmRSS:");
    ringmaster::supervisor sup({.name = "bench-stream"});
    auto& pool = sup.add_pool("p", h, {.workers = 2});
    sup.start();
    const auto t0 = clock_type::now();
    ringmaster_run(pool, spec, 0, jobs);
    const double s = seconds_since(t0);
    const std::size_t hwm = status_kb(::getpid(), "VmHWM:");
    const std::size_t max_pending = ringmaster::pool_options{}.max_pending;
    sup.stop();
    print({{"jobs", static_cast<double>(jobs)}, {"size", static_cast<double>(spec.payloads[0].size())},
           {"seconds", s}, {"rss_before_kb", static_cast<double>(before)}, {"peak_rss_kb", static_cast<double>(hwm)},
           {"max_pending", static_cast<double>(max_pending)}});
    return 0;
  }
  if (workload == "calibrate") {
    // Iterations per µs of the spin job: the best of several 20 ms runs.
    std::uint64_t k = 1000;
    double best = 0;
    for (int i = 0; i < 40; ++i) {
      const auto t0 = clock_type::now();
      const std::uint64_t x = pb::spin(k);
      const double us = seconds_since(t0) * 1e6;
      asm volatile("" : : "r"(x));
      if (us < 2000) k *= 2;
      else best = std::max(best, static_cast<double>(k) / us);
    }
    print({{"iters_per_us", best}});
    return 0;
  }
  throw std::invalid_argument("unknown workload " + workload);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 3 && std::strcmp(argv[1], "spin-job") == 0) {
    std::printf("%s\n", pb::run_job("spin", argv[2]).c_str());
    return 0;
  }
  if (argc == 3 && std::strcmp(argv[1], "echo-job") == 0) {
    std::printf("%s\n", argv[2]);
    return 0;
  }
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s WORKLOAD [--key value]... (see the top of bench/pools/main.cpp)\n", argv[0]);
    return 2;
  }
  ringmaster::set_log_level("error");  // crash workloads kill workers on purpose
  // Handlers first, then the supervisor: forked workers see what was registered before.
  ringmaster::handlers h;
  h.on("echo", [](ringmaster::job& j) { return pb::run_job("echo", j.payload()); });
  h.on("spin", [](ringmaster::job& j) { return pb::run_job("spin", j.payload()); });
  h.on("maybe_crash", maybe_crash);
  h.on("hold", [](ringmaster::job&) -> std::string {
    std::this_thread::sleep_for(3600s);
    return "";
  });
  if (argc == 2 && std::strcmp(argv[1], "serve-worker") == 0) return ringmaster::serve(argc, argv, h);
  args a;
  for (int i = 2; i + 1 < argc; i += 2) {
    if (std::strncmp(argv[i], "--", 2) != 0) {
      std::fprintf(stderr, "pool_bench: expected --key value, got %s\n", argv[i]);
      return 2;
    }
    a.kv[argv[i] + 2] = argv[i + 1];
  }
  try {
    pb::sweep_stale_queues();
    return run(argv[1], a, h);
  } catch (const pb::wrong_result& e) {
    std::fprintf(stderr, "pool_bench: WRONG RESULT: %s — no figure reported\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "pool_bench: %s\n", e.what());
    return 1;
  }
}
