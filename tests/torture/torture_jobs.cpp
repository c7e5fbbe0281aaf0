#include "torture_jobs.hpp"

#include <vector>

#include "seeded_rng.hpp"

namespace ringmaster::test::torture {
namespace {

constexpr std::uint64_t k_max_primes = 30'000;

using test::mix;
using test::rng;

std::string letters(rng& r, std::size_t n) {
  static constexpr char k_alphabet[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 -_.";
  std::string s(n, ' ');
  for (std::size_t i = 0; i < n; i += 8) {
    std::uint64_t bits = r.next();
    for (std::size_t k = i; k < n && k < i + 8; ++k, bits >>= 8) s[k] = k_alphabet[(bits & 0xff) % (sizeof k_alphabet - 1)];
  }
  return s;
}

// pi(n) for n <= k_max_primes, by a sieve computed once.
std::uint64_t prime_count(std::uint64_t n) {
  static const std::vector<std::uint32_t> table = [] {
    std::vector<bool> composite(k_max_primes + 1, false);
    std::vector<std::uint32_t> count(k_max_primes + 1, 0);
    std::uint32_t c = 0;
    for (std::uint64_t i = 2; i <= k_max_primes; ++i) {
      if (!composite[i]) {
        ++c;
        for (std::uint64_t m = i * i; m <= k_max_primes; m += i) composite[m] = true;
      }
      count[i] = c;
    }
    return count;
  }();
  return table.at(n);
}

}  // namespace

std::string_view to_string(job_kind k) noexcept {
  switch (k) {
    case job_kind::echo: return "echo";
    case job_kind::primes: return "primes";
    case job_kind::sleep: return "sleep";
    case job_kind::fail: return "fail";
    case job_kind::crash: return "crash";
    case job_kind::alloc: return "alloc";
    case job_kind::relay: return "relay";
    case job_kind::hang: return "hang";
  }
  return "?";
}

job_spec make_job(std::uint64_t seed, std::uint64_t index, bool relay) {
  rng r(mix(seed) ^ mix(index + 1));
  const std::uint64_t pick = r.below(100);
  job_spec j;
  if (pick < 36 || (!relay && pick >= 84)) {
    j.kind = job_kind::echo;
    // One in sixteen is large (8-60 KiB), so that a kill often lands while a worker is
    // copying its result into the ring.
    const std::size_t n = r.below(16) == 0 ? 8192 + r.below(53 * 1024) : r.below(201);
    j.payload = letters(r, n);
  } else if (pick < 54) {
    j.kind = job_kind::primes;
    j.payload = std::to_string(r.below(k_max_primes + 1));
  } else if (pick < 62) {
    j.kind = job_kind::sleep;
    j.payload = std::to_string(r.below(3));
  } else if (pick < 70) {
    j.kind = job_kind::fail;
    j.payload = "boom " + std::to_string(index);
  } else if (pick < 78) {
    j.kind = job_kind::crash;
    j.payload = std::string(R"({"signal": ")") + (index % 2 ? "ABRT" : "KILL") + R"(", "p": 0.05})";
  } else if (pick < 84) {
    j.kind = job_kind::alloc;
    j.payload = std::to_string(1 + r.below(3));
  } else {
    j.kind = job_kind::relay;
    j.payload = letters(r, 1 + r.below(100));
  }
  j.type = std::string(to_string(j.kind));
  return j;
}

job_spec hang_job() { return {job_kind::hang, "hang", ""}; }

std::string relayed(std::string_view payload) { return "relay:" + std::string(payload); }

bool killed_every_attempt(const outcome& got, unsigned max_attempts) {
  return !got.ok && got.error_kind == "crash" && got.attempts >= max_attempts;
}

std::string check(const job_spec& job, const outcome& got, unsigned max_attempts) {
  if (killed_every_attempt(got, max_attempts) && job.kind != job_kind::fail) return {};
  std::string expected;
  switch (job.kind) {
    case job_kind::echo: expected = job.payload; break;
    case job_kind::primes: expected = std::to_string(prime_count(std::stoull(job.payload))); break;
    case job_kind::sleep: expected = "slept " + job.payload + " ms"; break;
    case job_kind::crash: expected = "survived"; break;
    case job_kind::alloc: expected = "allocated " + job.payload + " MiB"; break;
    case job_kind::relay: expected = relayed(job.payload); break;
    case job_kind::fail:
      if (!got.ok && got.error_kind == "exception" && got.value == job.payload) return {};
      return "expected the exception '" + job.payload + "', got " + (got.ok ? "ok" : std::string(got.error_kind)) +
             " '" + std::string(got.value.substr(0, 80)) + "'";
    case job_kind::hang:
      if (!got.ok && got.error_kind == "timeout") return {};
      return "expected a timeout, got " + (got.ok ? "ok" : std::string(got.error_kind)) + " '" +
             std::string(got.value.substr(0, 80)) + "'";
  }
  if (!got.ok)
    return "failed (" + std::string(got.error_kind) + ", " + std::to_string(got.attempts) +
           " attempts): " + std::string(got.value.substr(0, 120));
  if (got.value != expected)
    return "wrong result: " + std::to_string(got.value.size()) + " bytes '" + std::string(got.value.substr(0, 40)) +
           "', expected " + std::to_string(expected.size()) + " bytes '" + expected.substr(0, 40) + "'";
  return {};
}

}  // namespace ringmaster::test::torture
