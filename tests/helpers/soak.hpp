// tests/helpers/soak.hpp — how long the torture tests run. By default they are bounded
// to fit the CI suite (run twice, once under ASan); RINGMASTER_SOAK=1 makes them the
// long soaks whose figures RELIABILITY.md quotes, and single knobs can be set by name.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <string_view>

namespace ringmaster::test {

/// Built with AddressSanitizer: resident-memory bounds are not checked then (its
/// quarantine holds freed memory by design).
#if defined(__SANITIZE_ADDRESS__)
inline constexpr bool k_asan = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
inline constexpr bool k_asan = true;
#else
inline constexpr bool k_asan = false;
#endif
#else
inline constexpr bool k_asan = false;
#endif


/// True when RINGMASTER_SOAK is set to anything but "" or "0".
inline bool soak() {
  const char* s = std::getenv("RINGMASTER_SOAK");
  return s != nullptr && *s != '\0' && std::string_view(s) != "0";
}

/// The number in environment variable `name`, else `soak_value` in a soak, else
/// `normal`.
inline std::uint64_t setting(const char* name, std::uint64_t normal, std::uint64_t soak_value) {
  if (const char* s = std::getenv(name); s != nullptr && *s != '\0') return std::strtoull(s, nullptr, 10);
  return soak() ? soak_value : normal;
}

}  // namespace ringmaster::test
