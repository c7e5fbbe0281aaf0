// ringmaster/cli/units.hpp — durations and sizes as the config file writes them:
// strings with a unit ("250ms", "10s", "64KiB"), never bare numbers, so that a reader of
// the file never has to guess whether 30 means seconds or milliseconds.
//
// Pure functions: no allocation on the parsing path, thread-safe, never throw.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace ringmaster::cli {

/// "250ms", "10s", "1.5s", "2m" (or "2min"), "1h", "0s" -> milliseconds, rounded to the
/// nearest millisecond. nullopt for anything else: no unit, an unknown unit, a sign,
/// spaces, or more than about 31 years.
[[nodiscard]] std::optional<std::chrono::milliseconds> parse_duration(std::string_view text) noexcept;

/// "512B", "64KiB", "1MiB", "1.5GiB", "2TiB" (powers of 1024) or "10KB", "5MB", "1GB",
/// "1TB" (powers of 1000) -> bytes, rounded down. nullopt for anything else, including a
/// bare number and a result over 2^62 bytes.
[[nodiscard]] std::optional<std::uint64_t> parse_size(std::string_view text) noexcept;

/// The shortest exact spelling parse_duration reads back: "1500ms", "10s", "2m", "1h".
[[nodiscard]] std::string format_duration(std::chrono::milliseconds d);

/// The shortest exact spelling parse_size reads back: "512B", "64KiB", "1MiB".
[[nodiscard]] std::string format_size(std::uint64_t bytes);

}  // namespace ringmaster::cli
