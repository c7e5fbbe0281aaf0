// tests/helpers/seeded_rng.hpp — deterministic randomness for the torture tests (our
// own, so that a seed replays the same run with any standard library).
#pragma once

#include <cstdint>

namespace ringmaster::test {

constexpr std::uint64_t mix(std::uint64_t x) noexcept {  // splitmix64's finaliser
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

class rng {
 public:
  explicit rng(std::uint64_t seed) noexcept : state_(seed) {}
  std::uint64_t next() noexcept { return mix(state_ += 0x9e3779b97f4a7c15ULL); }
  std::uint64_t below(std::uint64_t n) noexcept { return n == 0 ? 0 : next() % n; }
  bool percent(std::uint64_t p) noexcept { return below(100) < p; }

 private:
  std::uint64_t state_;
};

}  // namespace ringmaster::test
