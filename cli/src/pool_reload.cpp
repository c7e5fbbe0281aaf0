#include "pool_reload.hpp"

#include <algorithm>
#include <ringmaster/cli/jsonl.hpp>
#include <thread>

#include "process_setup.hpp"

namespace ringmaster::cli::detail {

pool_changes apply_pool_changes(supervisor& sup, const run_config& running, const run_config& next) {
  const auto resolve = [](unsigned w) { return w == 0 ? std::max(1u, std::thread::hardware_concurrency()) : w; };
  pool_changes out;
  for (const auto& old : running.pools)
    if (!next.find_pool(old.name)) {
      sup.remove_pool(old.name);
      out.removed.push_back(old.name);
    }
  for (const auto& p : next.pools) {
    const pool_config* old = running.find_pool(p.name);
    if (!old) {
      add_config_pool(sup, p);
      out.added.push_back(p.name);
      continue;
    }
    pool_options a = old->options, b = p.options;
    a.workers = b.workers = 0;
    if (a != b) {
      sup.remove_pool(p.name);
      add_config_pool(sup, p);
      out.restarted.push_back(p.name);
    } else if (resolve(old->options.workers) != resolve(p.options.workers)) {
      sup.find_pool(p.name)->scale(resolve(p.options.workers));
      out.scaled.push_back(p.name);
    } else {
      out.unchanged.push_back(p.name);
    }
  }
  return out;
}

std::string summarize(const pool_changes& changes) {
  std::string summary;
  auto part = [&](const char* what, const std::vector<std::string>& v) {
    if (v.empty()) return;
    std::string names;
    for (const auto& n : v) names += (names.empty() ? "" : ", ") + n;
    summary += (summary.empty() ? "" : "; ") + std::string(what) + " " + names;
  };
  part("added", changes.added);
  part("removed", changes.removed);
  part("restarted", changes.restarted);
  part("scaled", changes.scaled);
  return summary.empty() ? "nothing changed" : summary;
}

std::string reply_fields(const pool_changes& changes) {
  auto list = [](const std::vector<std::string>& v) {
    std::string out = "[";
    for (std::size_t i = 0; i < v.size(); ++i) {
      if (i) out += ", ";
      append_json_string(out, v[i]);
    }
    return out + "]";
  };
  return "\"added\": " + list(changes.added) + ", \"removed\": " + list(changes.removed) +
         ", \"restarted\": " + list(changes.restarted) + ", \"scaled\": " + list(changes.scaled) +
         ", \"unchanged\": " + list(changes.unchanged);
}

}  // namespace ringmaster::cli::detail
