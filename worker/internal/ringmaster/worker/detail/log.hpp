// ringmaster/worker/detail/log.hpp — one spdlog logger per component, all on stderr with
// the process id in every line (so a worker's lines can be told from the supervisor's).
#pragma once

#include <spdlog/spdlog.h>

#include <memory>
#include <string>

namespace ringmaster::detail {

/// The logger named `name` ("supervisor", "dispatcher", "worker compute/3", ...),
/// created on first use. Thread-safe.
std::shared_ptr<spdlog::logger> logger(const std::string& name);

}  // namespace ringmaster::detail
