#include <signal.h>
#include <unistd.h>

#include <charconv>
#include <chrono>
#include <cmath>
#include <cstring>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <ringmaster/worker/demo_handlers.hpp>
#include <ringmaster/worker/detail/json_depth.hpp>
#include <stdexcept>
#include <thread>
#include <vector>

namespace ringmaster {
namespace {

// A non-negative integer payload ("1000", or the JSON number 1000), or an exception
// that names the job type and what was expected.
std::uint64_t number_payload(const job& j) {
  std::string_view s = j.payload();
  while (!s.empty() && (s.front() == ' ' || s.front() == '"')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '"' || s.back() == '\n')) s.remove_suffix(1);
  std::uint64_t n = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
  if (ec != std::errc{} || p != s.data() + s.size())
    throw std::invalid_argument(std::string(j.type()) + ": payload must be a non-negative integer, got '" +
                                std::string(j.payload().substr(0, 64)) + "'");
  return n;
}

std::string count_primes(job& j) {
  const std::uint64_t n = number_payload(j);
  if (n > 2'000'000'000ull) throw std::invalid_argument("primes: payload over 2000000000");
  if (n < 2) return "0";
  // Sieve of odd numbers only: half the memory and time of a plain sieve.
  const std::uint64_t half = (n - 1) / 2;  // odd numbers 3..n
  std::vector<bool> composite(half + 1, false);
  std::uint64_t count = 1;  // 2
  for (std::uint64_t i = 1; i <= half; ++i) {
    if (composite[i]) continue;
    ++count;
    const std::uint64_t p = 2 * i + 1;
    for (std::uint64_t m = p * p; m <= n; m += 2 * p) composite[(m - 1) / 2] = true;
  }
  return std::to_string(count);
}

int signal_number(std::string_view name) {
  if (name.rfind("SIG", 0) == 0) name.remove_prefix(3);
  for (int s = 1; s < NSIG; ++s)
    if (const char* abbrev = ::sigabbrev_np(s); abbrev && name == abbrev) return s;
  throw std::invalid_argument("crash: unknown signal '" + std::string(name) + "'");
}

[[noreturn]] void die_by(int sig) {
  if (sig == SIGABRT) std::abort();
  ::signal(sig, SIG_DFL);
  ::raise(sig);
  ::pause();  // a blocked or ignored-by-default signal: wait for it to be delivered
  ::_exit(128 + sig);
}

std::string crash(job& j) {
  std::string sig = "SEGV";
  double p = 1.0;
  if (!j.payload().empty()) {
    // A payload from an embedding program reaches here unchecked: one nesting 100,000
    // deep would overflow this worker's stack in the parse, a crash the job did not ask for.
    if (detail::json_too_deep(j.payload()))
      throw std::invalid_argument("crash: payload nests arrays and objects more than " +
                                  std::to_string(detail::k_max_json_depth) + " deep (the limit)");
    const auto doc = nlohmann::json::parse(j.payload(), nullptr, false);
    if (doc.is_discarded() || !doc.is_object())
      throw std::invalid_argument("crash: payload must be {\"signal\": \"SEGV\"|\"ABRT\"|\"KILL\", \"p\": 0..1}");
    if (doc.contains("signal")) {
      if (!doc["signal"].is_string()) throw std::invalid_argument("crash: \"signal\" must be a string");
      sig = doc["signal"].get<std::string>();
    }
    if (doc.contains("p")) {
      if (!doc["p"].is_number()) throw std::invalid_argument("crash: \"p\" must be a number");
      p = doc["p"].get<double>();
    }
    if (!(p >= 0.0 && p <= 1.0)) throw std::invalid_argument("crash: \"p\" must be between 0 and 1");
  }
  const int signo = signal_number(sig);
  thread_local std::mt19937_64 rng(std::random_device{}() ^ static_cast<std::uint64_t>(::getpid()));
  if (std::uniform_real_distribution<double>(0.0, 1.0)(rng) < p) die_by(signo);
  return "survived";
}

std::string alloc(job& j) {
  const std::uint64_t mib = number_payload(j);
  const std::size_t bytes = static_cast<std::size_t>(mib) << 20;
  std::unique_ptr<char[]> block(new char[bytes]);
  // Touch every page, so that the memory is really committed.
  for (std::size_t i = 0; i < bytes; i += 4096) block[i] = static_cast<char>(i);
  return "allocated " + std::to_string(mib) + " MiB";
}

handlers& make_demo_handlers() {
  static handlers h;
  h.on("echo", [](job& j) { return std::string(j.payload()); })
      .on("primes", count_primes)
      .on("sleep",
          [](job& j) {
            const auto ms = number_payload(j);
            std::this_thread::sleep_for(std::chrono::milliseconds(ms));
            return "slept " + std::to_string(ms) + " ms";
          })
      .on("fail", [](job& j) -> std::string { throw std::runtime_error(std::string(j.payload())); })
      .on("crash", crash)
      .on("hang",
          [](job&) -> std::string {
            for (;;) ::pause();
          })
      .on("alloc", alloc);
  return h;
}

}  // namespace

const handlers& demo_handlers() {
  static handlers& h = make_demo_handlers();
  return h;
}

}  // namespace ringmaster
