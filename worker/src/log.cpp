#include <spdlog/sinks/stdout_color_sinks.h>

#include <array>
#include <ringmaster/worker/detail/log.hpp>
#include <ringmaster/worker/logging.hpp>

namespace ringmaster::detail {

std::shared_ptr<spdlog::logger> logger(const std::string& name) {
  if (auto existing = spdlog::get(name)) return existing;
  try {
    auto l = spdlog::stderr_color_mt(name);
    l->set_pattern("[%Y-%m-%d %T.%e] [%n pid %P] [%^%l%$] %v");
    return l;
  } catch (const spdlog::spdlog_ex&) {
    return spdlog::get(name);  // another thread created it first
  }
}

}  // namespace ringmaster::detail

namespace ringmaster {

bool set_log_level(std::string_view level) noexcept {
  static constexpr std::array<std::pair<std::string_view, spdlog::level::level_enum>, spdlog::level::n_levels> k_levels{{
      {"trace", spdlog::level::trace},
      {"debug", spdlog::level::debug},
      {"info", spdlog::level::info},
      {"warn", spdlog::level::warn},
      {"error", spdlog::level::err},
      {"critical", spdlog::level::critical},
      {"off", spdlog::level::off},
  }};
  // Every spdlog level, in spdlog's order (n_levels above catches a level added).
  static_assert([] {
    for (std::size_t i = 0; i < k_levels.size(); ++i)
      if (static_cast<std::size_t>(k_levels[i].second) != i) return false;
    return true;
  }());
  for (const auto& [name, value] : k_levels)
    if (name == level) {
      spdlog::set_level(value);
      return true;
    }
  return false;
}

}  // namespace ringmaster
