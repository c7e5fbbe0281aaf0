// Internal to `ringmaster serve`: what a reload does to the running pools, given the
// config they run and the config file as it is now.
#pragma once

#include <ringmaster/cli/config.hpp>
#include <ringmaster/supervisor/supervisor.hpp>
#include <string>
#include <vector>

namespace ringmaster::cli::detail {

/// The pools a reload touched, by what it did to each, in config order.
struct pool_changes {
  std::vector<std::string> added, removed, restarted, scaled, unchanged;
};

/// Pools gone from `next` are removed (they finish their jobs), new ones added, changed
/// ones replaced (the old one finishes its jobs, new jobs go to the new one), and a pool
/// whose only change is its worker count is scaled. Throws as supervisor::add_pool,
/// remove_pool and pool::scale; what was done before the throw stays done.
pool_changes apply_pool_changes(supervisor& sup, const run_config& running, const run_config& next);

/// "added a, b; scaled c", or "nothing changed".
[[nodiscard]] std::string summarize(const pool_changes& changes);

/// The reply's fields: `"added": [...], "removed": [...], "restarted": [...],
/// "scaled": [...], "unchanged": [...]`.
[[nodiscard]] std::string reply_fields(const pool_changes& changes);

}  // namespace ringmaster::cli::detail
