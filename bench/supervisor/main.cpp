// ringmaster_supervisor_bench — the embedding API under load, each figure beside its
// baseline measured in the same run:
//
//   throughput  tiny echo jobs through a pool of 2 (callback form and future form),
//               against the same handler called in a plain loop in this process;
//   latency     one job at a time on an idle pool (submit, wait for the future), against
//               a direct function call;
//   speedup     ~10 ms CPU-bound jobs on 2 workers against 1 worker;
//   restart     a worker crashes: time from the crash's result to the next job's result
//               on a one-worker pool (the replacement is forked, attaches, reports ready
//               and runs it), against the same two jobs with no crash.
//
// Every result is checked; a wrong one fails the run (exit 1) and reports no figure.
//
//   ringmaster_supervisor_bench [--quick] [--out FILE.md] [--json FILE.json]
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <future>
#include <numeric>
#include <ringmaster/supervisor/supervisor.hpp>
#include <ringmaster/worker/demo_handlers.hpp>
#include <ringmaster/worker/logging.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "../common/stats.hpp"

namespace {

using namespace std::chrono_literals;
using ringmaster::bench_stats::clock_type;
using ringmaster::bench_stats::median;
using ringmaster::bench_stats::percentile;
using ringmaster::bench_stats::seconds_since;

[[noreturn]] void wrong(const std::string& what) {
  std::fprintf(stderr, "supervisor_bench: WRONG RESULT: %s — no figure reported\n", what.c_str());
  std::exit(1);
}

struct figures {
  double cb_jobs_s = 0, fut_jobs_s = 0, loop_jobs_s = 0;
  double rt_p50_us = 0, rt_p99_us = 0, call_ns = 0;
  double one_s = 0, two_s = 0, job_ms = 0;
  double restart_p50_ms = 0, restart_p99_ms = 0, no_crash_p50_ms = 0;
  std::size_t tiny_jobs = 0, rt_samples = 0, cpu_jobs = 0, restarts = 0;
};

}  // namespace

int main(int argc, char** argv) {
  bool quick = false;
  std::string out_md, out_json;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--quick") quick = true;
    else if (a == "--out" && i + 1 < argc) out_md = argv[++i];
    else if (a == "--json" && i + 1 < argc) out_json = argv[++i];
    else {
      std::fprintf(stderr, "usage: %s [--quick] [--out FILE.md] [--json FILE.json]\n", argv[0]);
      return 2;
    }
  }
  ringmaster::set_log_level("error");  // the restart figure crashes hundreds of workers on purpose
  const auto& demo = ringmaster::demo_handlers();
  ringmaster::handlers tiny;  // the cheapest possible job: the overhead is all ringmaster's
  tiny.on("echo", [](ringmaster::job& j) { return std::string(j.payload()); });
  figures f;
  f.tiny_jobs = quick ? 20'000 : 300'000;
  f.rt_samples = quick ? 500 : 20'000;
  f.cpu_jobs = quick ? 8 : 40;
  f.restarts = quick ? 20 : 300;

  // --- throughput: 2 workers, tiny jobs, results counted in a callback
  {
    ringmaster::supervisor sup({.name = "bench-throughput"});
    auto& pool = sup.add_pool("tiny", tiny, {.workers = 2, .max_pending = 1 << 16});
    sup.start();
    std::vector<std::string> payloads(1024);
    for (std::size_t i = 0; i < payloads.size(); ++i) payloads[i] = "payload-" + std::to_string(i);
    // Warm up (workers ready, caches hot).
    {
      std::vector<std::future<ringmaster::result>> warm;
      for (int i = 0; i < 2000; ++i) warm.push_back(pool.submit("echo", payloads[static_cast<std::size_t>(i) % payloads.size()]));
      for (auto& w : warm) w.get();
    }
    std::vector<double> cb_rates, fut_rates;
    for (int rep = 0; rep < 3; ++rep) {
      std::atomic<std::size_t> done{0}, bad{0};
      const auto t0 = clock_type::now();
      for (std::size_t i = 0; i < f.tiny_jobs; ++i) {
        const std::string& p = payloads[i % payloads.size()];
        pool.submit("echo", p, [&done, &bad, &p](ringmaster::result r) {
          if (!r.ok() || r.value != p) bad.fetch_add(1, std::memory_order_relaxed);
          done.fetch_add(1, std::memory_order_release);
        });
      }
      while (done.load(std::memory_order_acquire) < f.tiny_jobs) std::this_thread::sleep_for(50us);
      cb_rates.push_back(static_cast<double>(f.tiny_jobs) / seconds_since(t0));
      if (bad.load()) wrong(std::to_string(bad.load()) + " tiny jobs returned the wrong value");

      const std::size_t n = f.tiny_jobs / 2;
      std::vector<std::future<ringmaster::result>> futures;
      futures.reserve(n);
      const auto t1 = clock_type::now();
      for (std::size_t i = 0; i < n; ++i) futures.push_back(pool.submit("echo", payloads[i % payloads.size()]));
      for (std::size_t i = 0; i < n; ++i) {
        auto r = futures[i].get();
        if (!r.ok() || r.value != payloads[i % payloads.size()]) wrong("a future got the wrong value");
      }
      fut_rates.push_back(static_cast<double>(n) / seconds_since(t1));
    }
    f.cb_jobs_s = median(cb_rates);
    f.fut_jobs_s = median(fut_rates);
    sup.stop();
  }
  // Baseline: the same handler body, called in a loop in this process.
  {
    std::vector<std::string> payloads(1024);
    for (std::size_t i = 0; i < payloads.size(); ++i) payloads[i] = "payload-" + std::to_string(i);
    std::size_t check = 0;
    const auto t0 = clock_type::now();
    for (std::size_t i = 0; i < f.tiny_jobs * 10; ++i) {
      std::string r = payloads[i % payloads.size()];  // what echo does: copy the payload out
      check += r.size();
      asm volatile("" : : "r"(r.data()) : "memory");
    }
    f.loop_jobs_s = static_cast<double>(f.tiny_jobs * 10) / seconds_since(t0);
    if (check == 0) wrong("baseline loop");
  }

  // --- latency: one job at a time on an idle pool
  {
    ringmaster::supervisor sup({.name = "bench-latency"});
    auto& pool = sup.add_pool("tiny", tiny, {.workers = 2});
    sup.start();
    for (int i = 0; i < 200; ++i) pool.submit("echo", "warm").get();
    std::vector<double> us;
    us.reserve(f.rt_samples);
    for (std::size_t i = 0; i < f.rt_samples; ++i) {
      const auto t0 = clock_type::now();
      auto r = pool.submit("echo", "ping").get();
      us.push_back(std::chrono::duration<double, std::micro>(clock_type::now() - t0).count());
      if (!r.ok() || r.value != "ping") wrong("round trip returned the wrong value");
    }
    f.rt_p50_us = percentile(us, 50);
    f.rt_p99_us = percentile(us, 99);
    sup.stop();
    // Baseline: a direct call of a handler-like function through std::function.
    std::function<std::string(const std::string&)> direct = [](const std::string& s) { return s; };
    const std::string ping = "ping";
    const auto t0 = clock_type::now();
    std::size_t sum = 0;
    for (int i = 0; i < 1'000'000; ++i) sum += direct(ping).size();
    f.call_ns = std::chrono::duration<double, std::nano>(clock_type::now() - t0).count() / 1e6;
    if (sum == 0) wrong("direct call");
  }

  // --- speedup: ~10 ms CPU-bound jobs, 1 worker against 2
  {
    auto run = [&](unsigned workers, const std::string& n, std::size_t jobs, const std::string& expect) {
      ringmaster::supervisor sup({.name = "bench-speedup"});
      auto& pool = sup.add_pool("cpu", demo, {.workers = workers, .prefetch = 1});
      sup.start();
      pool.submit("primes", "1000").get();  // workers ready
      const auto t0 = clock_type::now();
      std::vector<std::future<ringmaster::result>> fs;
      for (std::size_t i = 0; i < jobs; ++i) fs.push_back(pool.submit("primes", n));
      for (auto& x : fs) {
        auto r = x.get();
        if (!r.ok() || (!expect.empty() && r.value != expect)) wrong("primes(" + n + ") = " + r.value);
      }
      const double s = seconds_since(t0);
      sup.stop();
      return s;
    };
    // Calibrate N so that one job takes about 10 ms here.
    std::string n = "2000000";
    for (int i = 0; i < 6; ++i) {
      const double per_job = run(1, n, 4, "") / 4;
      const double scale = 0.010 / per_job;
      if (scale > 0.8 && scale < 1.25) break;
      n = std::to_string(static_cast<std::uint64_t>(std::stod(n) * std::clamp(scale, 0.1, 10.0)));
    }
    // The count for N, from a single job: every job must agree with it.
    const std::string expect = [&] {
      ringmaster::supervisor sup({.name = "bench-speedup-check"});
      auto& pool = sup.add_pool("cpu", demo, {.workers = 1});
      sup.start();
      auto r = pool.submit("primes", n).get();
      sup.stop();
      return r.value;
    }();
    std::vector<double> ones, twos;
    for (int rep = 0; rep < (quick ? 1 : 3); ++rep) {
      ones.push_back(run(1, n, f.cpu_jobs, expect));
      twos.push_back(run(2, n, f.cpu_jobs, expect));
    }
    f.one_s = median(ones);
    f.two_s = median(twos);
    f.job_ms = f.one_s / static_cast<double>(f.cpu_jobs) * 1000;
  }

  // --- restart latency: crash-to-next-result on a one-worker pool
  {
    ringmaster::supervisor sup({.name = "bench-restart"});
    auto& pool = sup.add_pool("r", demo,
                              {.workers = 1,
                               .max_restarts = 1'000'000,
                               .max_attempts = 1,
                               .backoff_initial = 0ms,
                               .stable_after = 0ms});  // every restart immediate: we time the mechanism
    sup.start();
    pool.submit("echo", "warm").get();
    std::vector<double> with_crash, without;
    for (std::size_t i = 0; i < f.restarts; ++i) {
      auto crash = pool.submit("crash", R"({"signal":"KILL"})");
      auto next = pool.submit("echo", "after");
      auto c = crash.get();
      const auto t0 = clock_type::now();
      auto e = next.get();
      with_crash.push_back(std::chrono::duration<double, std::milli>(clock_type::now() - t0).count());
      if (c.error != ringmaster::error_kind::crash || c.value != "SIGKILL") wrong("crash job ended " + c.value);
      if (!e.ok() || e.value != "after") wrong("job after the crash: " + e.value);
      // The same two jobs with no crash: what the pair costs without a restart.
      auto a = pool.submit("echo", "a");
      auto b = pool.submit("echo", "b");
      a.get();
      const auto t1 = clock_type::now();
      b.get();
      without.push_back(std::chrono::duration<double, std::milli>(clock_type::now() - t1).count());
    }
    f.restart_p50_ms = percentile(with_crash, 50);
    f.restart_p99_ms = percentile(with_crash, 99);
    f.no_crash_p50_ms = percentile(without, 50);
    const auto st = sup.status();
    if (st.pools[0].workers[0].restarts < f.restarts) wrong("fewer restarts than crashes");
    sup.stop();
  }

  // --- report
  char cpu[128] = "unknown";
  if (std::FILE* ci = std::fopen("/proc/cpuinfo", "r")) {
    char line[256];
    while (std::fgets(line, sizeof line, ci))
      if (std::strncmp(line, "model name", 10) == 0) {
        if (const char* c = std::strchr(line, ':')) std::snprintf(cpu, sizeof cpu, "%s", c + 2);
        cpu[std::strcspn(cpu, "\n")] = 0;
        break;
      }
    std::fclose(ci);
  }
  const double speedup = f.one_s / f.two_s;
  std::ostringstream md;
  md << "# ringmaster supervisor benchmark\n\n"
     << "- Produced by: `bench/run" << (quick ? " --quick" : "") << "` (`ringmaster_supervisor_bench" << (quick ? " --quick" : "") << "`)\n"
     << "- Machine: " << std::thread::hardware_concurrency() << " cores, CPU \"" << cpu << "\"\n\n"
     << "> Absolute figures from a shared 2-core VM are only indicative; the ratios, against baselines measured in "
        "the same run, are the figures to compare.\n\n"
     << "| Figure | ringmaster | Baseline (same run) | Ratio | Target |\n|---|---:|---:|---:|---|\n";
  char row[512];
  std::snprintf(row, sizeof row, "| Tiny jobs/s, 2 workers, callbacks (%zu jobs) | %.0f | in-process loop %.0f | %.3f× | ≥ 1,000,000/s: %s |\n",
                f.tiny_jobs, f.cb_jobs_s, f.loop_jobs_s, f.cb_jobs_s / f.loop_jobs_s, f.cb_jobs_s >= 1e6 ? "**met**" : "**not met**");
  md << row;
  std::snprintf(row, sizeof row, "| Tiny jobs/s, 2 workers, futures (%zu jobs) | %.0f | in-process loop %.0f | %.3f× | — |\n",
                f.tiny_jobs / 2, f.fut_jobs_s, f.loop_jobs_s, f.fut_jobs_s / f.loop_jobs_s);
  md << row;
  std::snprintf(row, sizeof row, "| Round trip of one job, idle pool, p50 / p99 (%zu samples) | %.1f µs / %.1f µs | direct call %.0f ns | — | — |\n",
                f.rt_samples, f.rt_p50_us, f.rt_p99_us, f.call_ns);
  md << row;
  std::snprintf(row, sizeof row, "| %zu CPU-bound jobs of ~%.1f ms, 2 workers vs 1 | %.3f s | 1 worker %.3f s | %.2f× speedup | ≥ 1.9×: %s |\n",
                f.cpu_jobs, f.job_ms, f.two_s, f.one_s, speedup, speedup >= 1.9 ? "**met**" : "**not met**");
  md << row;
  std::snprintf(row, sizeof row, "| Crash to next result on the replacement, p50 / p99 (%zu crashes) | %.2f ms / %.2f ms | same two jobs, no crash, p50 %.3f ms | — | restart p50 < 2 ms: %s |\n",
                f.restarts, f.restart_p50_ms, f.restart_p99_ms, f.no_crash_p50_ms, f.restart_p50_ms < 2 ? "**met**" : "**not met**");
  md << row;
  std::fputs(md.str().c_str(), stdout);
  if (!out_md.empty()) std::ofstream(out_md) << md.str();
  if (!out_json.empty()) {
    std::ofstream js(out_json);
    js << "{\n  \"schema\": \"ringmaster-supervisor-bench/1\",\n  \"cores\": " << std::thread::hardware_concurrency()
       << ",\n  \"cpu\": \"" << cpu << "\",\n  \"quick\": " << (quick ? "true" : "false")
       << ",\n  \"tiny_jobs_per_s_callbacks\": " << f.cb_jobs_s << ",\n  \"tiny_jobs_per_s_futures\": " << f.fut_jobs_s
       << ",\n  \"loop_jobs_per_s\": " << f.loop_jobs_s << ",\n  \"round_trip_p50_us\": " << f.rt_p50_us
       << ",\n  \"round_trip_p99_us\": " << f.rt_p99_us << ",\n  \"cpu_job_ms\": " << f.job_ms
       << ",\n  \"one_worker_s\": " << f.one_s << ",\n  \"two_workers_s\": " << f.two_s << ",\n  \"speedup\": " << speedup
       << ",\n  \"restart_p50_ms\": " << f.restart_p50_ms << ",\n  \"restart_p99_ms\": " << f.restart_p99_ms
       << ",\n  \"no_crash_p50_ms\": " << f.no_crash_p50_ms << "\n}\n";
  }
  return 0;
}
