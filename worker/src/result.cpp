#include <array>
#include <ringmaster/worker/detail/enum_names.hpp>
#include <ringmaster/worker/result.hpp>

namespace ringmaster {
namespace {
constexpr std::array<std::string_view, 7> k_names{"ok", "crash", "timeout", "memory", "exception", "rejected", "stopped"};
static_assert(detail::names_every_enumerator<error_kind>(k_names), "error_kind and its names differ");
}

std::string_view to_string(error_kind kind) noexcept {
  const auto i = static_cast<std::size_t>(kind);
  return i < k_names.size() ? k_names[i] : std::string_view{"unknown"};
}

std::optional<error_kind> error_kind_from_string(std::string_view name) noexcept {
  for (std::size_t i = 0; i < k_names.size(); ++i)
    if (k_names[i] == name) return static_cast<error_kind>(i);
  return std::nullopt;
}

}  // namespace ringmaster
