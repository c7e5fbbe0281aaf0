// tests/helpers/pattern.hpp — deterministic, self-checking message contents.
//
// Message i of a stream seeded with `seed` has a length drawn from the stream and bytes
// derived from (seed, i), so a reader in another process can verify that every message
// arrived whole, correct and in order without any shared state.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace ringmaster::test {

/// splitmix64: a tiny, high-quality 64-bit mixer; one call per value.
constexpr std::uint64_t mix(std::uint64_t x) noexcept {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

/// Length of message `index`: mostly short, sometimes up to `max_len`, sometimes 0.
constexpr std::size_t pattern_length(std::uint64_t seed, std::uint64_t index, std::size_t max_len) noexcept {
  const std::uint64_t r = mix(seed ^ mix(index));
  switch (r % 8) {
    case 0: return 0;
    case 1: return static_cast<std::size_t>((r >> 8) % (max_len + 1));
    default: return static_cast<std::size_t>((r >> 8) % (max_len < 256 ? max_len + 1 : 257));
  }
}

/// The byte at `offset` of message `index`.
constexpr std::byte pattern_byte(std::uint64_t seed, std::uint64_t index, std::size_t offset) noexcept {
  return static_cast<std::byte>(mix(seed + index * 0x100000001b3ull + offset / 8) >> (8 * (offset % 8)));
}

inline void fill_pattern(std::uint64_t seed, std::uint64_t index, std::span<std::byte> out) noexcept {
  for (std::size_t i = 0; i < out.size(); ++i) out[i] = pattern_byte(seed, index, i);
}

/// True if `message` is exactly message `index` of the stream.
inline bool check_pattern(std::uint64_t seed, std::uint64_t index, std::span<const std::byte> message,
                          std::size_t max_len) noexcept {
  if (message.size() != pattern_length(seed, index, max_len)) return false;
  for (std::size_t i = 0; i < message.size(); ++i)
    if (message[i] != pattern_byte(seed, index, i)) return false;
  return true;
}

}  // namespace ringmaster::test
