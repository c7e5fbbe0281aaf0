#include <spdlog/sinks/stdout_color_sinks.h>

#include <ringmaster/worker/detail/log.hpp>

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
