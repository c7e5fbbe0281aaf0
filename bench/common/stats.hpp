// bench/common/stats.hpp — the timing and statistics helpers that the benchmark
// programs share: elapsed time on the steady clock and nearest-rank percentiles.
#pragma once

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <vector>

namespace ringmaster::bench_stats {

using clock_type = std::chrono::steady_clock;

inline double seconds_since(clock_type::time_point t) {
  return std::chrono::duration<double>(clock_type::now() - t).count();
}

/// The nearest-rank p-th percentile (0 < p <= 100) of `v`; 0 for an empty `v`.
inline double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const auto rank = static_cast<std::size_t>(std::ceil(p / 100.0 * static_cast<double>(v.size())));
  return v[std::clamp<std::size_t>(rank, 1, v.size()) - 1];
}

inline double median(std::vector<double> v) { return percentile(std::move(v), 50); }

}  // namespace ringmaster::bench_stats
