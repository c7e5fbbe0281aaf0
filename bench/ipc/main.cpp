// ringmaster_ipc_bench — ringmaster's rings against a pipe and boost::interprocess::
// message_queue, between two processes: one-way throughput and round-trip latency for
// several message sizes, every figure next to its baselines from the same run.
//
//   ringmaster_ipc_bench [--quick] [--out FILE.md] [--json FILE.json] [options]
//
// Prints a Markdown report on stdout (progress on stderr). Exit status: 0 when every run
// delivered exactly the messages sent (whether or not the targets are met), 1 when any
// run delivered wrong data or failed, 2 for a usage error.
#include <sched.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <functional>
#include <iostream>
#include <numeric>
#include <optional>
#include <ringmaster/ipc/ring.hpp>
#include <sstream>
#include <string>
#include <utility>

#include "harness.hpp"
#include "report.hpp"
#include "transports.hpp"

namespace ringmaster::bench {
namespace {

using namespace std::chrono_literals;

struct options {
  bool quick = false;
  std::string out_md;
  std::string out_json;
  std::vector<std::size_t> sizes{16, 64, 256, 4096, 65536};
  std::vector<transport> transports{transport::ring, transport::pipe, transport::message_queue};
  bool throughput = true;
  bool latency = true;
  int repetitions = 5;
  double seconds_per_repetition = 0.2;         // throughput, per transport and size
  double seconds_per_latency = 0.3;            // round trip, per transport and size
  std::uint64_t latency_min_samples = 10'000;  // p99.9 needs at least this many to mean something
  std::uint64_t latency_max_samples = 300'000;
  std::uint64_t latency_warmup = 1'000;
  int latency_rounds = 3;  // interleaved runs per round-trip figure
  bool pin = true;
  bool check_detection = false;
  std::string produced_by;
  run_settings run;
};

constexpr const char* k_usage = R"(usage: ringmaster_ipc_bench [options]

Measures ringmaster rings against a pipe and boost::interprocess::message_queue between
two processes: one-way throughput and round-trip latency (p50/p99/p99.9).

  --quick                  small counts, a few seconds in all (the ctest smoke test)
  --out FILE               also write the Markdown report to FILE
  --json FILE              write the figures as JSON to FILE
  --sizes LIST             message sizes in bytes, e.g. 16,64,4K (default 16,64,256,4K,64K)
  --transports LIST        any of ring,pipe,mq (default all three)
  --only KIND              throughput or latency (default both)
  --repetitions N          throughput repetitions per figure, median reported (default 5)
  --seconds S              target seconds per throughput repetition (default 0.2)
  --latency-seconds S      target seconds per round-trip figure (default 0.3)
  --latency-rounds N       interleaved runs per round-trip figure (default 3)
  --ring-publish-bytes N   ring producer publishes once N bytes are staged, or when
                           the ring is full (default 16K; 0: only when full)
  --ring-release-bytes N   ring consumer releases once N bytes are read, or when the
                           ring is empty (default 16K; 0: only when empty)
  --ring-capacity N        bytes of each ring (default 1M; a power of two)
  --ring-spin-us N         spin of the ring's throughput waits, in µs (default 20)
  --no-pin                 let the scheduler place the two processes of a run (by
                           default they are pinned to two different CPUs)
  --timeout S              longest one run may take (default 30, quick 10)
  --check-detection        instead of measuring, corrupt one byte of one message in
                           every run and exit 0 only if every run reports it
  --produced-by TEXT       the command to name in the report (bench/run-ipc passes
                           its own), instead of this program's command line
  --help                   this text

Exit status: 0 if every message of every run arrived intact, 1 if not, 2 on bad usage.
)";

[[noreturn]] void usage_error(const std::string& what) {
  std::cerr << "ringmaster_ipc_bench: " << what << "\n(--help for usage)\n";
  std::exit(2);
}

std::size_t parse_size(const std::string& text) {
  std::size_t pos = 0;
  unsigned long long v = 0;
  try {
    v = std::stoull(text, &pos);
  } catch (const std::exception&) {
    usage_error("not a size: '" + text + "'");
  }
  const std::string suffix = text.substr(pos);
  if (suffix == "k" || suffix == "K" || suffix == "KiB")
    v <<= 10;
  else if (suffix == "m" || suffix == "M" || suffix == "MiB")
    v <<= 20;
  else if (!suffix.empty() && suffix != "B")
    usage_error("not a size: '" + text + "'");
  return static_cast<std::size_t>(v);
}

double parse_double(const std::string& text) {
  try {
    std::size_t pos = 0;
    const double v = std::stod(text, &pos);
    if (pos == text.size() && v > 0) return v;
  } catch (const std::exception&) {
  }
  usage_error("not a positive number: '" + text + "'");
}

std::vector<std::string> split(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream in(text);
  for (std::string item; std::getline(in, item, ',');)
    if (!item.empty()) out.push_back(item);
  return out;
}

options parse(int argc, char** argv) {
  options o;
  for (int i = 1; i < argc; ++i)
    if (std::strcmp(argv[i], "--quick") == 0) o.quick = true;
  if (o.quick) {
    o.repetitions = 1;
    o.seconds_per_repetition = 0.01;
    o.seconds_per_latency = 0.01;
    o.latency_min_samples = 500;
    o.latency_max_samples = 5'000;
    o.latency_warmup = 100;
    o.latency_rounds = 1;
    o.run.timeout = 10s;
  }
  o.run.ring_throughput_wait = ipc::wait_policy{};
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage_error(arg + " needs a value");
      return argv[++i];
    };
    if (arg == "--quick") continue;
    if (arg == "--help" || arg == "-h") {
      std::cout << k_usage;
      std::exit(0);
    } else if (arg == "--out") {
      o.out_md = value();
    } else if (arg == "--json") {
      o.out_json = value();
    } else if (arg == "--sizes") {
      o.sizes.clear();
      for (const auto& s : split(value())) o.sizes.push_back(parse_size(s));
      if (o.sizes.empty()) usage_error("--sizes: no size given");
    } else if (arg == "--transports") {
      o.transports.clear();
      for (const auto& t : split(value())) {
        if (t == "ring")
          o.transports.push_back(transport::ring);
        else if (t == "pipe")
          o.transports.push_back(transport::pipe);
        else if (t == "mq" || t == "message_queue")
          o.transports.push_back(transport::message_queue);
        else
          usage_error("unknown transport '" + t + "' (ring, pipe, mq)");
      }
    } else if (arg == "--only") {
      const auto kind = value();
      if (kind == "throughput")
        o.latency = false;
      else if (kind == "latency")
        o.throughput = false;
      else
        usage_error("--only takes throughput or latency");
    } else if (arg == "--repetitions") {
      o.repetitions = std::max(1, static_cast<int>(parse_double(value())));
    } else if (arg == "--seconds") {
      o.seconds_per_repetition = parse_double(value());
    } else if (arg == "--latency-rounds") {
      o.latency_rounds = std::max(1, static_cast<int>(parse_double(value())));
    } else if (arg == "--latency-seconds") {
      o.seconds_per_latency = parse_double(value());
    } else if (arg == "--ring-publish-bytes") {
      o.run.ring_publish_bytes = parse_size(value());
    } else if (arg == "--ring-release-bytes") {
      o.run.ring_release_bytes = parse_size(value());
    } else if (arg == "--ring-capacity") {
      o.run.ring_capacity = parse_size(value());
    } else if (arg == "--ring-spin-us") {
      o.run.ring_throughput_wait.spin = std::chrono::microseconds(parse_size(value()));
    } else if (arg == "--check-detection") {
      o.check_detection = true;
    } else if (arg == "--produced-by") {
      o.produced_by = value();
    } else if (arg == "--no-pin") {
      o.pin = false;
    } else if (arg == "--timeout") {
      o.run.timeout = std::chrono::seconds(std::max<long>(1, std::lround(parse_double(value()))));
    } else {
      usage_error("unknown option '" + arg + "'");
    }
  }
  const std::size_t cap = o.run.ring_capacity;
  if (cap < 256 || (cap & (cap - 1)) != 0)
    usage_error("--ring-capacity must be a power of two, at least 256");
  o.run.ring_max_message = std::min(o.run.ring_max_message, cap / 2 - ipc::k_frame_header);
  for (std::size_t size : o.sizes)
    if (size < k_min_message || size > o.run.ring_max_message)
      usage_error("sizes must be from " + std::to_string(k_min_message) + " to " +
                  std::to_string(o.run.ring_max_message) + " bytes (the ring's largest message)");
  return o;
}

bool uses(const options& o, transport t) {
  return std::find(o.transports.begin(), o.transports.end(), t) != o.transports.end();
}

// ---------------------------------------------------------------------------------------
// The parent's own watchdog and clean-up on signals. A run whose child dies can leave a
// message_queue's mutex or condition variable in a state where the parent blocks forever
// (ARCHITECTURE.md, "The queues"); the alarm turns that into a failure instead of a hang.

extern "C" void on_fatal_signal(int sig) {
  remove_mq_names_now();
  if (sig == SIGALRM) {
    static const char msg[] = "ringmaster_ipc_bench: a run exceeded its watchdog; giving up\n";
    (void)!::write(STDERR_FILENO, msg, sizeof msg - 1);
    ::_exit(1);  // the children die with us (PR_SET_PDEATHSIG)
  }
  ::signal(sig, SIG_DFL);
  ::raise(sig);
}

void install_signal_handlers() {
  ::signal(SIGPIPE, SIG_IGN);  // a dead peer's pipe is an EPIPE error, not our death
  struct sigaction sa {};
  sa.sa_handler = on_fatal_signal;
  sigemptyset(&sa.sa_mask);
  for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGALRM}) ::sigaction(sig, &sa, nullptr);
}

/// Arms the parent's watchdog for one run.
class watchdog_alarm {
 public:
  explicit watchdog_alarm(const run_settings& s) {
    ::alarm(static_cast<unsigned>(s.timeout.count() + 20));
  }
  ~watchdog_alarm() { ::alarm(0); }
  watchdog_alarm(const watchdog_alarm&) = delete;
  watchdog_alarm& operator=(const watchdog_alarm&) = delete;
};

// ---------------------------------------------------------------------------------------
// Measuring

void progress(const std::string& line) {
  std::cerr << line << std::endl;
}

std::string size_label(std::size_t n) {
  return n >= 1024 && n % 1024 == 0 ? std::to_string(n / 1024) + " KiB" : std::to_string(n) + " B";
}

using throughput_fn = std::function<double(std::uint64_t)>;

throughput_fn throughput_of(transport t, std::size_t size, const run_settings& s) {
  switch (t) {
    case transport::ring:
      return [=](std::uint64_t n) { return ring_throughput(size, n, s); };
    case transport::pipe:
      return [=](std::uint64_t n) { return pipe_throughput(size, n, s); };
    case transport::message_queue:
      return [=](std::uint64_t n) { return mq_throughput(size, n, s); };
  }
  throw std::logic_error("transport");
}

// Finds a message count that takes about `target` seconds: doubles up from a small run
// until one takes long enough to time, then scales. The small runs double as warm-up.
std::uint64_t calibrate(const throughput_fn& run, std::size_t size, double target,
                        const run_settings& s) {
  constexpr std::uint64_t k_max = 50'000'000;
  const double enough = std::min(target / 4, 0.02);
  std::uint64_t n = std::clamp<std::uint64_t>((std::uint64_t{256} << 10) / size, 16, 4096);
  for (;;) {
    double t = 0;
    {
      watchdog_alarm guard(s);
      t = run(n);
    }
    if (t >= enough || n >= k_max) {
      const double scaled = static_cast<double>(n) * target / std::max(t, 1e-6);
      return std::clamp<std::uint64_t>(static_cast<std::uint64_t>(scaled), 16, k_max);
    }
    const double grow = std::clamp(enough / std::max(t, 1e-6) * 1.5, 2.0, 64.0);
    n = std::min(k_max, static_cast<std::uint64_t>(static_cast<double>(n) * grow));
  }
}

void measure_throughput(const options& o, std::size_t size, report& rep) {
  std::vector<throughput_figure> figures;
  std::vector<throughput_fn> runs;
  for (transport t : o.transports) {
    throughput_figure f;
    f.size = size;
    f.via = t;
    runs.push_back(throughput_of(t, size, o.run));
    try {
      f.messages = calibrate(runs.back(), size, o.seconds_per_repetition, o.run);
    } catch (const std::exception& e) {
      f.error = e.what();
    }
    figures.push_back(std::move(f));
  }
  // Repetitions interleave the transports, so that a slow patch on a shared machine
  // hits all of them rather than one.
  for (int repetition = 0; repetition < o.repetitions; ++repetition) {
    for (std::size_t i = 0; i < figures.size(); ++i) {
      auto& f = figures[i];
      if (!f.error.empty()) continue;
      try {
        watchdog_alarm guard(o.run);
        f.seconds.push_back(runs[i](f.messages));
      } catch (const std::exception& e) {
        f.error = e.what();
        f.seconds.clear();
      }
    }
  }
  for (auto& f : figures) {
    if (f.ok()) {
      const double t = median(f.seconds);
      f.messages_per_second = static_cast<double>(f.messages) / t;
      f.megabytes_per_second = f.messages_per_second * static_cast<double>(size) / 1e6;
      char line[160];
      std::snprintf(
          line, sizeof line, "  throughput %-14s %7s: %12.0f msg/s %9.1f MB/s (%llu messages x %d)",
          to_string(f.via), size_label(size).c_str(), f.messages_per_second, f.megabytes_per_second,
          static_cast<unsigned long long>(f.messages), o.repetitions);
      progress(line);
    } else {
      progress("  throughput " + std::string(to_string(f.via)) + " " + size_label(size) +
               ": FAILED: " + f.error);
    }
    rep.throughput.push_back(std::move(f));
  }
}

using latency_fn =
    std::function<std::vector<std::int64_t>(std::uint64_t count, std::uint64_t warmup)>;

latency_fn latency_of(variant v, std::size_t size, const run_settings& s) {
  switch (v) {
    case variant::ring_sleeping:
      return [=](std::uint64_t n, std::uint64_t w) {
        return ring_round_trip(size, n, w, ipc::wait_policy::sleeping(), s);
      };
    case variant::ring_spinning:
      return [=](std::uint64_t n, std::uint64_t w) {
        return ring_round_trip(size, n, w, ipc::wait_policy::spinning(), s);
      };
    case variant::pipe:
      return [=](std::uint64_t n, std::uint64_t w) { return pipe_round_trip(size, n, w, s); };
    case variant::message_queue:
      return [=](std::uint64_t n, std::uint64_t w) { return mq_round_trip(size, n, w, s); };
  }
  throw std::logic_error("variant");
}

void measure_latency(const options& o, std::size_t size, report& rep) {
  std::vector<variant> variants;
  if (uses(o, transport::ring)) {
    variants.push_back(variant::ring_sleeping);
    variants.push_back(variant::ring_spinning);
  }
  if (uses(o, transport::pipe)) variants.push_back(variant::pipe);
  if (uses(o, transport::message_queue)) variants.push_back(variant::message_queue);

  struct plan {
    latency_figure figure;
    latency_fn run;
    std::uint64_t per_round = 0;
    std::vector<std::int64_t> samples;
  };
  std::vector<plan> plans;
  for (variant v : variants) {
    plan p;
    p.figure.size = size;
    p.figure.via = v;
    p.run = latency_of(v, size, o.run);
    try {
      // A short pilot sizes the real run to about the target time.
      std::vector<std::int64_t> pilot;
      {
        watchdog_alarm guard(o.run);
        pilot = p.run(200, 50);
      }
      const double per_sample = std::max(
          1.0, static_cast<double>(std::accumulate(pilot.begin(), pilot.end(), std::int64_t{0})) /
                   static_cast<double>(pilot.size()));
      // About the target time, but at least latency_min_samples (p99.9 needs them)
      // unless that would take more than ten times the target: a pathologically slow
      // transport gets fewer samples rather than a run longer than its timeout.
      auto count = std::clamp<std::uint64_t>(
          static_cast<std::uint64_t>(o.seconds_per_latency * 1e9 / per_sample),
          o.latency_min_samples, o.latency_max_samples);
      count = std::min(
          count, std::max<std::uint64_t>(
                     std::min<std::uint64_t>(1'000, o.latency_min_samples),
                     static_cast<std::uint64_t>(10 * o.seconds_per_latency * 1e9 / per_sample)));
      p.per_round = (count + static_cast<std::uint64_t>(o.latency_rounds) - 1) /
                    static_cast<std::uint64_t>(o.latency_rounds);
      p.figure.warmup = std::min(o.latency_warmup, std::max<std::uint64_t>(p.per_round / 10, 10));
    } catch (const std::exception& e) {
      p.figure.error = e.what();
    }
    plans.push_back(std::move(p));
  }
  // Rounds interleave the variants, as repetitions do for throughput, so that a slow
  // patch of a shared machine is spread over all of them; each round is a fresh pair of
  // processes, warmed up.
  for (int round = 0; round < o.latency_rounds; ++round) {
    for (auto& p : plans) {
      if (!p.figure.error.empty()) continue;
      try {
        watchdog_alarm guard(o.run);
        const auto samples = p.run(p.per_round, p.figure.warmup);
        p.samples.insert(p.samples.end(), samples.begin(), samples.end());
      } catch (const std::exception& e) {
        p.figure.error = e.what();
      }
    }
  }
  for (auto& p : plans) {
    auto& f = p.figure;
    if (f.error.empty() && !p.samples.empty()) {
      auto& samples = p.samples;
      std::sort(samples.begin(), samples.end());
      f.samples = samples.size();
      f.p50_ns = percentile(samples, 0.50);
      f.p99_ns = percentile(samples, 0.99);
      f.p999_ns = percentile(samples, 0.999);
      f.min_ns = samples.front();
      f.max_ns = samples.back();
      f.mean_ns =
          static_cast<double>(std::accumulate(samples.begin(), samples.end(), std::int64_t{0})) /
          static_cast<double>(samples.size());
      char line[160];
      std::snprintf(
          line, sizeof line,
          "  round trip %-14s %7s: p50 %8.2f us  p99 %8.2f us  p99.9 %8.2f us (%llu samples)",
          to_string(f.via), size_label(size).c_str(), static_cast<double>(f.p50_ns) / 1e3,
          static_cast<double>(f.p99_ns) / 1e3, static_cast<double>(f.p999_ns) / 1e3,
          static_cast<unsigned long long>(f.samples));
      progress(line);
    } else {
      f.samples = 0;
      progress("  round trip " + std::string(to_string(f.via)) + " " + size_label(size) +
               ": FAILED: " + f.error);
    }
    rep.latency.push_back(std::move(f));
  }
}

// --check-detection: every transport, both kinds of run, each size, with message 500 of
// 1000 corrupted by its sender. Each run must fail, and fail for that message.
int check_detection(const options& o) {
  constexpr std::uint64_t k_count = 1000;
  run_settings s = o.run;
  s.fault = 500;
  const std::string expected = "wrong data in message " + std::to_string(s.fault);
  int missed = 0;
  auto expect_detected = [&](const std::string& what, const std::function<void()>& run) {
    std::string outcome;
    try {
      watchdog_alarm guard(s);
      run();
      outcome = "NOT DETECTED: the run reported success";
    } catch (const std::exception& e) {
      if (std::string(e.what()).find(expected) != std::string::npos) {
        progress("  detected   " + what + ": " + e.what());
        return;
      }
      outcome = std::string("failed for another reason: ") + e.what();
    }
    ++missed;
    progress("  " + what + ": " + outcome);
  };
  std::vector<variant> variants;
  if (uses(o, transport::ring))
    variants.insert(variants.end(), {variant::ring_sleeping, variant::ring_spinning});
  if (uses(o, transport::pipe)) variants.push_back(variant::pipe);
  if (uses(o, transport::message_queue)) variants.push_back(variant::message_queue);
  for (std::size_t size : o.sizes) {
    for (transport t : o.transports)
      expect_detected("throughput " + std::string(to_string(t)) + " " + size_label(size),
                      [&] { throughput_of(t, size, s)(k_count); });
    for (variant v : variants)
      expect_detected("round trip " + std::string(to_string(v)) + " " + size_label(size),
                      [&] { latency_of(v, size, s)(k_count, 10); });
  }
  if (missed != 0) {
    std::cerr << "ringmaster_ipc_bench: " << missed
              << " run(s) did not report the corrupted message\n";
    return 1;
  }
  std::cout << "every run reported the corrupted message\n";
  return 0;
}

std::string read_loadavg() {
  std::ifstream in("/proc/loadavg");
  std::string a, b, c;
  in >> a >> b >> c;
  return a.empty() ? "unknown" : a + " " + b + " " + c;
}

std::string utc_now() {
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  ::gmtime_r(&now, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

bool write_file(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  out.close();
  if (!out) {
    std::cerr << "ringmaster_ipc_bench: cannot write " << path << ": " << std::strerror(errno)
              << "\n";
    return false;
  }
  return true;
}

// The first two CPUs this process may run on, or nothing when there are fewer.
std::optional<std::pair<int, int>> two_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (::sched_getaffinity(0, sizeof set, &set) != 0) return std::nullopt;
  std::vector<int> cpus;
  for (int c = 0; c < CPU_SETSIZE && cpus.size() < 2; ++c)
    if (CPU_ISSET(c, &set)) cpus.push_back(c);
  if (cpus.size() < 2) return std::nullopt;
  return std::pair{cpus[0], cpus[1]};
}

int run_main(int argc, char** argv) {
  options o = parse(argc, argv);
  int parent_cpu = -1;
  if (o.pin) {
    // One CPU each, as a supervisor and a busy worker would have: the measurement is then
    // the transport's, not the scheduler's choice of putting both on one CPU (which helps
    // a blocking queue's batching and ruins any spinning).
    if (const auto cpus = two_cpus()) {
      parent_cpu = cpus->first;
      o.run.child_cpu = cpus->second;
      pin_to_cpu(parent_cpu);
    }
  }
  install_signal_handlers();
  if (const std::size_t n = sweep_stale_mq())
    progress("removed " + std::to_string(n) + " stale benchmark queue(s) from /dev/shm");

  // A checker that accepted wrong data would make every figure below meaningless.
  for (std::size_t size : o.sizes) self_test_payload(size);
  if (o.check_detection) return check_detection(o);

  report rep;
  auto& run = rep.run;
  run.command = "ringmaster_ipc_bench";
  for (int i = 1; i < argc; ++i) (run.command += ' ') += argv[i];
  run.produced_by = o.produced_by;
  run.mode = o.quick ? "quick" : "default";
  run.started_utc = utc_now();
  run.load_before = read_loadavg();
  run.machine = probe_machine();
  run.settings = o.run;
  run.pipe_buffer = pipe_buffer_size(o.run);
  run.repetitions = o.repetitions;
  run.seconds_per_repetition = o.seconds_per_repetition;
  run.seconds_per_latency = o.seconds_per_latency;
  run.latency_rounds = o.latency_rounds;
  run.sizes = o.sizes;
  run.parent_cpu = parent_cpu;
  progress("ringmaster_ipc_bench: " + std::to_string(run.machine.cores_online) + " cores, " +
           run.machine.cpu_model + ", " + run.mode + " mode");

  const auto started = clock::now();
  const auto cpu_before = take_cpu_snapshot();
  if (o.throughput) {
    progress("one-way throughput");
    for (std::size_t size : o.sizes) measure_throughput(o, size, rep);
  }
  if (o.latency) {
    progress("round-trip latency");
    for (std::size_t size : o.sizes) measure_latency(o, size, rep);
  }
  run.elapsed_seconds = std::chrono::duration<double>(clock::now() - started).count();
  run.load_after = read_loadavg();
  run.cpu = share_between(cpu_before, take_cpu_snapshot());

  const std::string md = to_markdown(rep);
  std::cout << md << std::flush;
  bool written = true;
  if (!o.out_md.empty()) written = write_file(o.out_md, md) && written;
  if (!o.out_json.empty()) written = write_file(o.out_json, to_json(rep)) && written;
  if (!rep.all_ok()) {
    std::cerr
        << "ringmaster_ipc_bench: some runs failed or delivered wrong data (see the report)\n";
    return 1;
  }
  return written ? 0 : 1;
}

}  // namespace
}  // namespace ringmaster::bench

int main(int argc, char** argv) {
  try {
    return ringmaster::bench::run_main(argc, argv);
  } catch (const std::exception& e) {
    ringmaster::bench::remove_mq_names_now();
    std::cerr << "ringmaster_ipc_bench: " << e.what() << "\n";
    return 1;
  }
}
