// tests/torture/torture_jobs.hpp — the jobs of the supervisor kill tortures, and what a
// correct result for each is.
//
// Job i of a run is a pure function of (seed, i): its kind (every demo handler, plus
// `relay`, a job whose handler asks another pool for an echo and waits for the reply),
// its payload, and so its one correct result. Whoever receives a result regenerates the
// job and checks the result against it, so a wrong, torn, stale or swapped result is
// caught, and nothing large needs to be kept per job.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace ringmaster::test::torture {

enum class job_kind : std::uint8_t { echo, primes, sleep, fail, crash, alloc, relay, hang };
std::string_view to_string(job_kind k) noexcept;

struct job_spec {
  job_kind kind{};
  std::string type;     ///< the handler's job type
  std::string payload;  ///< printable ASCII only, so it can also travel as a JSON string
};

/// Job `index` of the run seeded `seed`. `relay`: whether relay jobs are among them (only
/// where a `relay` handler exists). Hang jobs are never drawn: they go to their own pool.
job_spec make_job(std::uint64_t seed, std::uint64_t index, bool relay);
/// A job that never returns (type `hang`), stopped by its pool's job_timeout.
job_spec hang_job();

/// What arrived for a job.
struct outcome {
  bool ok = false;
  std::string_view error_kind;  ///< "crash", "timeout", ... ("" when ok)
  std::string_view value;       ///< the result, or the error message
  unsigned attempts = 0;
};

/// Empty if `got` is a correct final result for `job` in a pool with `max_attempts`,
/// else what is wrong with it. A job whose every attempt was killed (max_attempts
/// crashes) has a correct failed result too: that is the delivery rule, not a loss.
std::string check(const job_spec& job, const outcome& got, unsigned max_attempts);
/// Whether `got` is that case: failed as a crash after max_attempts attempts.
bool killed_every_attempt(const outcome& got, unsigned max_attempts);

/// The `relay` handler's result for a payload: what the echo it asked for returned,
/// marked as coming back through the relay.
std::string relayed(std::string_view payload);

}  // namespace ringmaster::test::torture
