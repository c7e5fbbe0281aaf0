#include "policy/backoff.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>

namespace ringmaster::detail {

double backoff_jitter(std::mt19937& rng) { return std::uniform_real_distribution<double>(0.75, 1.25)(rng); }

std::chrono::microseconds backoff_delay(unsigned n, const backoff_policy& p, double jitter) noexcept {
  if (n <= 1) return std::chrono::microseconds(0);
  const double base = static_cast<double>(p.initial.count()) * std::pow(2.0, std::min(n - 2, 30u));
  const double ms = std::min(base, static_cast<double>(p.max.count())) * jitter;
  return std::chrono::microseconds(static_cast<std::int64_t>(ms * 1000));
}

}  // namespace ringmaster::detail
