#include <array>
#include <cmath>
#include <ringmaster/cli/units.hpp>
#include <utility>

namespace ringmaster::cli {
namespace {

// Splits "1.5GiB" into 1.5 and "GiB". The number is digits with at most one '.', each
// side of it non-empty ("1.", ".5", "-1", "1e3" are refused: a config file is read by
// people, and "1e3ms" is nobody's way of writing a second).
std::optional<std::pair<long double, std::string_view>> split_number(std::string_view text) noexcept {
  std::size_t i = 0;
  long double value = 0;
  std::size_t int_digits = 0;
  while (i < text.size() && text[i] >= '0' && text[i] <= '9') {
    value = value * 10 + (text[i] - '0');
    ++i;
    ++int_digits;
    if (int_digits > 18) return std::nullopt;  // beyond any sensible duration or size
  }
  if (int_digits == 0) return std::nullopt;
  if (i < text.size() && text[i] == '.') {
    ++i;
    long double scale = 0.1L;
    std::size_t frac_digits = 0;
    while (i < text.size() && text[i] >= '0' && text[i] <= '9') {
      value += (text[i] - '0') * scale;
      scale /= 10;
      ++i;
      ++frac_digits;
    }
    if (frac_digits == 0 || frac_digits > 9) return std::nullopt;
  }
  return std::pair{value, text.substr(i)};
}

struct unit {
  std::string_view name;
  long double factor;
};

constexpr std::array<unit, 5> k_duration_units{{
    {"ms", 1.0L},
    {"s", 1000.0L},
    {"m", 60'000.0L},
    {"min", 60'000.0L},
    {"h", 3'600'000.0L},
}};

constexpr std::array<unit, 9> k_size_units{{
    {"B", 1.0L},
    {"KiB", 1024.0L},
    {"MiB", 1024.0L * 1024},
    {"GiB", 1024.0L * 1024 * 1024},
    {"TiB", 1024.0L * 1024 * 1024 * 1024},
    {"KB", 1e3L},
    {"MB", 1e6L},
    {"GB", 1e9L},
    {"TB", 1e12L},
}};

}  // namespace

std::optional<std::chrono::milliseconds> parse_duration(std::string_view text) noexcept {
  const auto split = split_number(text);
  if (!split) return std::nullopt;
  for (const auto& u : k_duration_units)
    if (u.name == split->second) {
      const long double ms = std::round(split->first * u.factor);
      if (ms > 1e12L) return std::nullopt;  // ~31 years: surely a typo
      return std::chrono::milliseconds(static_cast<std::int64_t>(ms));
    }
  return std::nullopt;
}

std::optional<std::uint64_t> parse_size(std::string_view text) noexcept {
  const auto split = split_number(text);
  if (!split) return std::nullopt;
  for (const auto& u : k_size_units)
    if (u.name == split->second) {
      const long double bytes = std::floor(split->first * u.factor);
      if (bytes > 4.6e18L) return std::nullopt;
      return static_cast<std::uint64_t>(bytes);
    }
  return std::nullopt;
}

std::string format_duration(std::chrono::milliseconds d) {
  const std::int64_t ms = d.count();
  if (ms != 0 && ms % 3'600'000 == 0) return std::to_string(ms / 3'600'000) + "h";
  if (ms != 0 && ms % 60'000 == 0) return std::to_string(ms / 60'000) + "m";
  if (ms % 1000 == 0) return std::to_string(ms / 1000) + "s";
  return std::to_string(ms) + "ms";
}

std::string format_size(std::uint64_t bytes) {
  constexpr std::array<std::string_view, 4> k_names{"TiB", "GiB", "MiB", "KiB"};
  for (std::size_t i = 0; i < k_names.size(); ++i) {
    const std::uint64_t unit_bytes = std::uint64_t{1} << (10 * (k_names.size() - i));
    if (bytes != 0 && bytes % unit_bytes == 0) return std::to_string(bytes / unit_bytes) + std::string(k_names[i]);
  }
  return std::to_string(bytes) + "B";
}

}  // namespace ringmaster::cli
