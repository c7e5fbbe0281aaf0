#include "report.hpp"

#include <boost/version.hpp>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <sstream>

namespace ringmaster::bench {

const char* to_string(transport t) noexcept {
  switch (t) {
    case transport::ring:
      return "ring";
    case transport::pipe:
      return "pipe";
    case transport::message_queue:
      return "message_queue";
  }
  return "?";
}

const char* to_string(variant v) noexcept {
  switch (v) {
    case variant::ring_sleeping:
      return "ring, sleeping";
    case variant::ring_spinning:
      return "ring, spinning";
    case variant::pipe:
      return "pipe";
    case variant::message_queue:
      return "message_queue";
  }
  return "?";
}

const throughput_figure* report::find(std::size_t size, transport t) const noexcept {
  for (const auto& f : throughput)
    if (f.size == size && f.via == t) return &f;
  return nullptr;
}

const latency_figure* report::find(std::size_t size, variant v) const noexcept {
  for (const auto& f : latency)
    if (f.size == size && f.via == v) return &f;
  return nullptr;
}

bool report::all_ok() const noexcept {
  for (const auto& f : throughput)
    if (!f.ok()) return false;
  for (const auto& f : latency)
    if (!f.ok()) return false;
  return true;
}

namespace {

constexpr std::size_t k_target_size = 64;

__attribute__((format(printf, 1, 2))) std::string format(const char* fmt, ...) {
  char buf[64];
  va_list args;
  va_start(args, fmt);
  std::vsnprintf(buf, sizeof buf, fmt, args);
  va_end(args);
  return buf;
}

std::string size_name(std::size_t n) {
  if (n >= (1u << 20) && n % (1u << 20) == 0) return std::to_string(n >> 20) + " MiB";
  if (n >= 1024 && n % 1024 == 0) return std::to_string(n / 1024) + " KiB";
  return std::to_string(n) + " B";
}

// 12.3 M, 456 k, 789: three significant figures are all a shared VM can support.
std::string rate(double per_second) {
  if (per_second >= 1e6)
    return format(per_second >= 1e8   ? "%.0f M"
                  : per_second >= 1e7 ? "%.1f M"
                                      : "%.2f M",
                  per_second / 1e6);
  if (per_second >= 1e3)
    return format(per_second >= 1e5   ? "%.0f k"
                  : per_second >= 1e4 ? "%.1f k"
                                      : "%.2f k",
                  per_second / 1e3);
  return format("%.0f", per_second);
}

std::string megabytes(double mb) {
  return format(mb >= 100 ? "%.0f" : mb >= 10 ? "%.1f" : "%.2f", mb);
}

std::string micros(double ns) {
  const double us = ns / 1000;
  return format(us >= 100 ? "%.0f" : us >= 10 ? "%.1f" : "%.2f", us);
}

std::string times(double ratio) {
  return format(ratio >= 10 ? "%.0f×" : "%.1f×", ratio);
}

// a's message rate over b's: the median of the per-repetition ratios. Repetitions
// interleave the transports, so each ratio compares runs a fraction of a second apart,
// and a slow patch of a shared machine cancels out instead of landing on one side.
std::optional<double> ratio(const throughput_figure* a, const throughput_figure* b) {
  if (!a || !b || !a->ok() || !b->ok() || b->messages_per_second <= 0) return std::nullopt;
  if (a->seconds.size() != b->seconds.size())
    return a->messages_per_second / b->messages_per_second;
  std::vector<double> ratios;
  for (std::size_t i = 0; i < a->seconds.size(); ++i)
    ratios.push_back((static_cast<double>(a->messages) / a->seconds[i]) /
                     (static_cast<double>(b->messages) / b->seconds[i]));
  return median(std::move(ratios));
}

// How many times faster `fast` is than `slow` at p50 (slow / fast).
std::optional<double> speedup(const latency_figure* slow, const latency_figure* fast) {
  if (!slow || !fast || !slow->ok() || !fast->ok() || fast->p50_ns <= 0) return std::nullopt;
  return static_cast<double>(slow->p50_ns) / static_cast<double>(fast->p50_ns);
}

std::optional<double> speedup_p99(const latency_figure* slow, const latency_figure* fast) {
  if (!slow || !fast || !slow->ok() || !fast->ok() || fast->p99_ns <= 0) return std::nullopt;
  return static_cast<double>(slow->p99_ns) / static_cast<double>(fast->p99_ns);
}

struct target {
  const char* id;
  std::string description;
  std::string measured;  // for the Markdown table
  std::optional<double> value;
  double threshold = 0;
  std::optional<bool> met;  // nullopt: not measured in this run
};

std::vector<target> evaluate_targets(const report& r) {
  std::vector<target> out;
  const std::size_t n = k_target_size;
  {
    target t{"throughput_64B_ring_over_mq",
             "64 B one-way throughput at least 10× message_queue's",
             "not measured",
             {},
             10,
             {}};
    const auto* ring = r.find(n, transport::ring);
    const auto* mq = r.find(n, transport::message_queue);
    if (auto x = ratio(ring, mq)) {
      t.value = *x;
      t.met = *x >= 10;
      t.measured = times(*x) + " (ring " + rate(ring->messages_per_second) +
                   " msg/s, message_queue " + rate(mq->messages_per_second) + " msg/s)";
    }
    out.push_back(std::move(t));
  }
  {
    target t{"round_trip_sleeping_vs_pipe",
             "Round trip with sleeping waits no slower than a pipe's (p50, 64 B)",
             "not measured",
             {},
             1,
             {}};
    const auto* ring = r.find(n, variant::ring_sleeping);
    const auto* pipe = r.find(n, variant::pipe);
    if (auto x = speedup(pipe, ring)) {
      t.value = *x;
      t.met = ring->p50_ns <= pipe->p50_ns;
      std::size_t sizes = 0, sizes_met = 0;
      for (std::size_t size : r.run.sizes) {
        const auto* a = r.find(size, variant::ring_sleeping);
        const auto* b = r.find(size, variant::pipe);
        if (!a || !b || !a->ok() || !b->ok()) continue;
        ++sizes;
        if (a->p50_ns <= b->p50_ns) ++sizes_met;
      }
      t.measured = "ring " + micros(static_cast<double>(ring->p50_ns)) + " µs, pipe " +
                   micros(static_cast<double>(pipe->p50_ns)) + " µs (pipe/ring " + times(*x) +
                   "); met at " + std::to_string(sizes_met) + " of " + std::to_string(sizes) +
                   " sizes";
    }
    out.push_back(std::move(t));
  }
  {
    target t{"round_trip_spinning_p50_under_1us",
             "Round trip with spinning waits under 1 µs (p50, 64 B)",
             "not measured",
             {},
             1000,
             {}};
    const auto* ring = r.find(n, variant::ring_spinning);
    if (ring && ring->ok()) {
      t.value = static_cast<double>(ring->p50_ns);
      t.met = ring->p50_ns < 1000;
      t.measured = micros(static_cast<double>(ring->p50_ns)) + " µs (p99 " +
                   micros(static_cast<double>(ring->p99_ns)) + " µs)";
    }
    out.push_back(std::move(t));
  }
  return out;
}

std::string build_description() {
  std::string s;
#if defined(__clang__)
  s = "Clang " __clang_version__;
#elif defined(__GNUC__)
  s = "GCC " __VERSION__;
#else
  s = "unknown compiler";
#endif
#ifdef NDEBUG
  s += ", optimised build (NDEBUG)";
#else
  s += ", assertions on (not a Release build: figures are not representative)";
#endif
  s += ", Boost " + std::to_string(BOOST_VERSION / 100000) + "." +
       std::to_string(BOOST_VERSION / 100 % 1000);
  return s;
}

std::string failures_md(const report& r) {
  std::ostringstream o;
  for (const auto& f : r.throughput)
    if (!f.ok())
      o << "- throughput, " << to_string(f.via) << ", " << size_name(f.size) << ": " << f.error
        << "\n";
  for (const auto& f : r.latency)
    if (!f.ok())
      o << "- round trip, " << to_string(f.via) << ", " << size_name(f.size) << ": " << f.error
        << "\n";
  return o.str();
}

}  // namespace

std::string to_markdown(const report& r) {
  const auto& run = r.run;
  const auto& m = run.machine;
  std::ostringstream o;
  o << "# ringmaster ipc benchmark\n\n";
  if (!run.produced_by.empty()) o << "- Produced by: `" << run.produced_by << "`\n";
  o << "- Command: `" << run.command << "` (" << run.mode << " mode), started " << run.started_utc
    << ", took " << format("%.1f", run.elapsed_seconds) << " s\n";
  o << "- Machine: " << m.cores_online << " cores online (" << m.cpuinfo_processors
    << " processors in /proc/cpuinfo), CPU model \"" << m.cpu_model << "\", " << m.kernel << "\n";
  o << "- Clock: clocksource " << m.clocksource << ", one `steady_clock::now()` costs "
    << format("%.0f", m.clock_now_ns) << " ns\n";
  o << "- Load: load average before " << run.load_before << ", after " << run.load_after
    << "; during the run the benchmark's processes used " << format("%.0f", run.cpu.ours)
    << "% of the machine's CPU time, other processes " << format("%.0f", run.cpu.others)
    << "%, the hypervisor (steal) " << format("%.1f", run.cpu.steal) << "%\n";
  o << "- Build: " << build_description() << "\n";
  o << "- Processes: "
    << (run.parent_cpu >= 0
            ? "parent (consumer, round-trip client) pinned to CPU " +
                  std::to_string(run.parent_cpu) + ", child (producer, echo) to CPU " +
                  std::to_string(run.settings.child_cpu)
            : std::string("not pinned"))
    << "\n\n";
  o << "> Absolute figures from a shared " << m.cores_online
    << "-core VM are only indicative: both processes of a run share the machine's cores with\n"
       "> everything else running on it. The ratios, each measured against baselines in the same "
       "run, are the\n"
       "> figures to compare.\n";
  // Before, not after: the run itself keeps two CPUs busy. One runnable task per CPU
  // besides ours halves what a run gets.
  const double busy = std::atof(run.load_before.c_str());
  if (m.cores_online != 0 && busy >= 0.5 * m.cores_online)
    o << ">\n> **The machine was busy when this run started** (1-minute load average "
      << format("%.1f", busy) << " on " << m.cores_online
      << " CPUs): even the ratios are less reliable than usual.\n";
  o << "\n";

  if (!r.all_ok())
    o << "**Some runs delivered wrong data or failed; their figures are not reported:**\n\n"
      << failures_md(r) << "\n";

  o << "## Targets\n\n| Target | Measured | Met |\n|---|---|---|\n";
  for (const auto& t : evaluate_targets(r))
    o << "| " << t.description << " | " << t.measured << " | "
      << (!t.met   ? "not measured"
          : *t.met ? "**yes**"
                   : "**no**")
      << " |\n";
  o << "\n";

  if (!r.throughput.empty()) {
    o << "## One-way throughput\n\n";
    o << "Producer (child) to consumer (parent), every message checked; median of "
      << run.repetitions << " repetition" << (run.repetitions == 1 ? "" : "s") << " of about "
      << format("%.2g", run.seconds_per_repetition)
      << " s each, the transports taking turns. MB/s counts payload bytes (10^6 B/s). Ratios "
         "compare message rates, ring over baseline: the median of the per-repetition ratios.\n\n";
    o << "| Size | ring msg/s | ring MB/s | pipe msg/s | pipe MB/s | message_queue msg/s | "
         "message_queue MB/s | ring/pipe | "
         "ring/message_queue |\n";
    o << "|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n";
    for (std::size_t size : run.sizes) {
      const auto* ring = r.find(size, transport::ring);
      const auto* pipe = r.find(size, transport::pipe);
      const auto* mq = r.find(size, transport::message_queue);
      if (!ring && !pipe && !mq) continue;
      o << "| " << size_name(size);
      for (const auto* f : {ring, pipe, mq}) {
        if (!f)
          o << " | — | —";
        else if (!f->ok())
          o << " | FAILED | FAILED";
        else
          o << " | " << rate(f->messages_per_second) << " | " << megabytes(f->megabytes_per_second);
      }
      const auto a = ratio(ring, pipe), b = ratio(ring, mq);
      o << " | " << (a ? times(*a) : "—") << " | " << (b ? times(*b) : "—") << " |\n";
    }
    o << "\n";
  }

  if (!r.latency.empty()) {
    o << "## Round-trip latency\n\n";
    o << "Ping-pong: the parent sends a message, the child echoes it and then checks it, the "
         "parent checks the echo (outside the timed part). Percentiles (nearest rank) in µs over "
         "the samples of "
      << run.latency_rounds << " run" << (run.latency_rounds == 1 ? "" : "s")
      << " per figure, the transports taking turns, each run after its own warm-up; about "
      << format("%.2g", run.seconds_per_latency)
      << " s per figure. \"pipe/this\" and \"message_queue/this\" say how many times faster this "
         "transport's p50 is.\n\n";
    o << "| Size | Transport | p50 µs | p99 µs | p99.9 µs | Samples | pipe/this (p50) | "
         "message_queue/this (p50) |\n";
    o << "|---:|---|---:|---:|---:|---:|---:|---:|\n";
    for (std::size_t size : run.sizes) {
      const auto* pipe = r.find(size, variant::pipe);
      const auto* mq = r.find(size, variant::message_queue);
      bool first = true;
      for (variant v : {variant::ring_sleeping, variant::ring_spinning, variant::pipe,
                        variant::message_queue}) {
        const auto* f = r.find(size, v);
        if (!f) continue;
        o << "| " << (first ? size_name(size) : "") << " | " << to_string(v);
        first = false;
        if (!f->ok()) {
          o << " | FAILED | FAILED | FAILED | — | — | — |\n";
          continue;
        }
        o << " | " << micros(static_cast<double>(f->p50_ns)) << " | "
          << micros(static_cast<double>(f->p99_ns)) << " | "
          << micros(static_cast<double>(f->p999_ns)) << " | " << f->samples;
        const bool ring = v == variant::ring_sleeping || v == variant::ring_spinning;
        const auto a = ring ? speedup(pipe, f) : std::nullopt;
        const auto b = ring ? speedup(mq, f) : std::nullopt;
        o << " | " << (a ? times(*a) : "—") << " | " << (b ? times(*b) : "—") << " |\n";
      }
    }
    o << "\n";
  }

  const auto& s = run.settings;
  o << "## Set-up\n\n";
  o << "- ring: two rings (one per direction) of " << size_name(s.ring_capacity) << ", max message "
    << size_name(s.ring_max_message)
    << ", in one anonymous segment created before fork(). Throughput: the producer stages messages "
       "with "
       "`try_write` and publishes "
    << (s.ring_publish_bytes ? "once " + size_name(s.ring_publish_bytes) + " are staged or "
                             : std::string())
    << "when the ring is full; the consumer reads every available message and releases "
    << (s.ring_release_bytes ? "once " + size_name(s.ring_release_bytes) + " are read or "
                             : std::string())
    << "when the ring is empty; both wait with spin "
    << std::chrono::duration_cast<std::chrono::microseconds>(s.ring_throughput_wait.spin).count()
    << " µs then sleep. Round trip: `send`/`read` with `wait_policy::sleeping()` (no spin) or "
       "`wait_policy::spinning()` (spin up to 1 ms, then sleep) on both sides.\n";
  o << "- pipe: `[u32 length | payload]` records, pipe buffer " << size_name(run.pipe_buffer)
    << " (F_SETPIPE_SZ). Throughput: the producer gathers up to " << size_name(s.pipe_batch)
    << " of records per write(), the consumer reads as much as the pipe holds and takes each "
       "message out by its "
       "length. Round trip: one write() per message, reads until the record is whole.\n";
  o << "- message_queue: `boost::interprocess::message_queue`, named, max_num_msg " << s.mq_depth
    << ", max_msg_size = the message size; `timed_send`/`timed_receive`.\n";
  o << "- Checking: every message carries its sequence number, its size, a hash of both, and a "
       "stamp derived from "
       "the sequence number every 1 KiB and in its last 8 bytes; every receiver (consumer, echo "
       "and the echo's "
       "receiver) compares every byte with the message it expects. A run with one wrong byte, a "
       "missing or extra "
       "message fails the benchmark (exit status 1) and reports no figure.\n";
  return o.str();
}

namespace {

std::string quote(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x",
                        static_cast<unsigned>(static_cast<unsigned char>(c)));
          out += buf;
        } else {
          out += c;
        }
    }
  }
  return out + "\"";
}

std::string number(double v) {
  if (!std::isfinite(v)) return "null";
  return format("%.6g", v);
}

std::string number(std::optional<double> v) {
  return v ? number(*v) : "null";
}

const char* transport_key(variant v) noexcept {
  switch (v) {
    case variant::ring_sleeping:
    case variant::ring_spinning:
      return "ring";
    case variant::pipe:
      return "pipe";
    case variant::message_queue:
      return "message_queue";
  }
  return "?";
}

}  // namespace

std::string to_json(const report& r) {
  const auto& run = r.run;
  const auto& m = run.machine;
  const auto& s = run.settings;
  std::ostringstream o;
  o << "{\n  \"schema\": \"ringmaster-ipc-bench/1\",\n";
  o << "  \"command\": " << quote(run.command) << ",\n  \"produced_by\": " << quote(run.produced_by)
    << ",\n  \"mode\": " << quote(run.mode) << ",\n";
  o << "  \"started_utc\": " << quote(run.started_utc)
    << ",\n  \"elapsed_seconds\": " << number(run.elapsed_seconds) << ",\n";
  o << "  \"all_verified\": " << (r.all_ok() ? "true" : "false") << ",\n";
  o << "  \"machine\": {\"cores_online\": " << m.cores_online
    << ", \"cpuinfo_processors\": " << m.cpuinfo_processors
    << ", \"cpu_model\": " << quote(m.cpu_model) << ", \"kernel\": " << quote(m.kernel)
    << ", \"clocksource\": " << quote(m.clocksource)
    << ", \"steady_clock_now_ns\": " << number(m.clock_now_ns)
    << ", \"load_before\": " << quote(run.load_before)
    << ", \"load_after\": " << quote(run.load_after)
    << ", \"cpu_percent_ours\": " << number(run.cpu.ours)
    << ", \"cpu_percent_others\": " << number(run.cpu.others)
    << ", \"cpu_percent_steal\": " << number(run.cpu.steal)
    << ", \"build\": " << quote(build_description()) << "},\n";
  o << "  \"settings\": {\"sizes\": [";
  for (std::size_t i = 0; i < run.sizes.size(); ++i) o << (i ? ", " : "") << run.sizes[i];
  o << "], \"repetitions\": " << run.repetitions
    << ", \"seconds_per_repetition\": " << number(run.seconds_per_repetition)
    << ", \"seconds_per_latency_figure\": " << number(run.seconds_per_latency)
    << ", \"ring_capacity\": " << s.ring_capacity
    << ", \"ring_max_message\": " << s.ring_max_message
    << ", \"ring_publish_bytes\": " << s.ring_publish_bytes
    << ", \"ring_release_bytes\": " << s.ring_release_bytes
    << ", \"ring_throughput_spin_ns\": " << s.ring_throughput_wait.spin.count()
    << ", \"pipe_buffer\": " << run.pipe_buffer << ", \"pipe_batch\": " << s.pipe_batch
    << ", \"mq_max_num_msg\": " << s.mq_depth << ", \"timeout_seconds\": " << s.timeout.count()
    << ", \"parent_cpu\": " << run.parent_cpu << ", \"child_cpu\": " << s.child_cpu << "},\n";

  o << "  \"throughput\": [";
  for (std::size_t i = 0; i < r.throughput.size(); ++i) {
    const auto& f = r.throughput[i];
    o << (i ? "," : "") << "\n    {\"size\": " << f.size
      << ", \"transport\": " << quote(to_string(f.via))
      << ", \"ok\": " << (f.ok() ? "true" : "false");
    if (f.ok()) {
      o << ", \"messages\": " << f.messages << ", \"seconds\": [";
      for (std::size_t j = 0; j < f.seconds.size(); ++j)
        o << (j ? ", " : "") << number(f.seconds[j]);
      o << "], \"messages_per_second\": " << number(f.messages_per_second)
        << ", \"megabytes_per_second\": " << number(f.megabytes_per_second);
    } else {
      o << ", \"error\": " << quote(f.error);
    }
    o << "}";
  }
  o << "\n  ],\n";

  o << "  \"latency\": [";
  for (std::size_t i = 0; i < r.latency.size(); ++i) {
    const auto& f = r.latency[i];
    const bool ring = f.via == variant::ring_sleeping || f.via == variant::ring_spinning;
    o << (i ? "," : "") << "\n    {\"size\": " << f.size
      << ", \"transport\": " << quote(transport_key(f.via)) << ", \"wait\": "
      << (ring ? quote(f.via == variant::ring_sleeping ? "sleeping" : "spinning")
               : std::string("null"))
      << ", \"ok\": " << (f.ok() ? "true" : "false");
    if (f.ok()) {
      o << ", \"warmup\": " << f.warmup << ", \"samples\": " << f.samples
        << ", \"p50_ns\": " << f.p50_ns << ", \"p99_ns\": " << f.p99_ns
        << ", \"p999_ns\": " << f.p999_ns << ", \"min_ns\": " << f.min_ns
        << ", \"max_ns\": " << f.max_ns << ", \"mean_ns\": " << number(f.mean_ns);
    } else {
      o << ", \"error\": " << quote(f.error);
    }
    o << "}";
  }
  o << "\n  ],\n";

  o << "  \"ratios\": [";
  bool first = true;
  for (std::size_t size : run.sizes) {
    const auto* ring = r.find(size, transport::ring);
    const auto* pipe_tp = r.find(size, transport::pipe);
    const auto* mq_tp = r.find(size, transport::message_queue);
    const auto* sleeping = r.find(size, variant::ring_sleeping);
    const auto* spinning = r.find(size, variant::ring_spinning);
    const auto* pipe = r.find(size, variant::pipe);
    const auto* mq = r.find(size, variant::message_queue);
    o << (first ? "" : ",") << "\n    {\"size\": " << size
      << ", \"throughput_ring_over_pipe\": " << number(ratio(ring, pipe_tp))
      << ", \"throughput_ring_over_message_queue\": " << number(ratio(ring, mq_tp))
      << ", \"p50_pipe_over_ring_sleeping\": " << number(speedup(pipe, sleeping))
      << ", \"p50_message_queue_over_ring_sleeping\": " << number(speedup(mq, sleeping))
      << ", \"p50_pipe_over_ring_spinning\": " << number(speedup(pipe, spinning))
      << ", \"p50_message_queue_over_ring_spinning\": " << number(speedup(mq, spinning))
      << ", \"p99_pipe_over_ring_sleeping\": " << number(speedup_p99(pipe, sleeping))
      << ", \"p99_message_queue_over_ring_sleeping\": " << number(speedup_p99(mq, sleeping))
      << ", \"p99_pipe_over_ring_spinning\": " << number(speedup_p99(pipe, spinning))
      << ", \"p99_message_queue_over_ring_spinning\": " << number(speedup_p99(mq, spinning)) << "}";
    first = false;
  }
  o << "\n  ],\n";

  o << "  \"targets\": [";
  const auto targets = evaluate_targets(r);
  for (std::size_t i = 0; i < targets.size(); ++i) {
    const auto& t = targets[i];
    o << (i ? "," : "") << "\n    {\"id\": " << quote(t.id)
      << ", \"description\": " << quote(t.description) << ", \"value\": " << number(t.value)
      << ", \"threshold\": " << number(t.threshold) << ", \"met\": "
      << (!t.met   ? "null"
          : *t.met ? "true"
                   : "false")
      << "}";
  }
  o << "\n  ]\n}\n";
  return o.str();
}

}  // namespace ringmaster::bench
