// ringmaster/worker/logging.hpp — controlling what ringmaster logs.
//
// ringmaster logs through spdlog, one logger per component, all to stderr with the
// process id in every line: "supervisor" (the supervisor and its dispatcher) and
// "worker <pool>/<slot>" (in each worker process). To send them elsewhere, add sinks to
// those loggers with spdlog::get(name), or replace them before the supervisor is built.
#pragma once

#include <string_view>

namespace ringmaster {

/// Sets the level of every ringmaster logger: "trace", "debug", "info" (the default),
/// "warn", "error", "critical" or "off". Workers started afterwards use it too (forked
/// and exec'd alike). Returns false, changing nothing, for any other name. Thread-safe.
bool set_log_level(std::string_view level) noexcept;

}  // namespace ringmaster
