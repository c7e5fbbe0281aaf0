// ringmaster/cli/config.hpp — the run's config file (TOML): pools, supervisor settings and
// jobs, validated strictly before anything starts.
//
// Every problem is reported, not just the first, each as one line
//
//     FILE:LINE: KEY: expected ..., got ...
//
// naming the file as the user wrote it, the line of the offending key or value, and its
// full dotted key (`pools.compute.job_timeout`, `jobs[2].pool`). Validation covers
// unknown keys, wrong types, malformed durations and sizes, out-of-range numbers,
// unknown restart types and strategies, jobs naming a missing pool or (for a pool of
// built-in handlers) an unknown job type, and a `command` that cannot be executed. It
// opens no file other than the config itself and starts nothing.
//
// Thread-safe: plain functions over values.
#pragma once

#include <cstdint>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <ringmaster/supervisor/options.hpp>

namespace ringmaster::cli {

/// One [pools.NAME] table.
struct pool_config {
  std::string name;
  std::uint32_t line = 0;  ///< line of its key, for messages
  /// The library's options. `command`, when set, has its program resolved to an absolute
  /// path that was executable when the config was read.
  pool_options options;
  /// True when `workers` was omitted (one per core, unless --workers says otherwise).
  bool workers_defaulted = true;
  [[nodiscard]] bool builtin() const noexcept { return options.command.empty(); }
};

/// One [[jobs]] table: `repeat` copies of one job.
struct job_template {
  std::string pool;     ///< always set: a pool of the config (defaulted if there is one)
  std::string type;
  std::string payload;  ///< a string's characters, or any other value's compact JSON
  std::string id;       ///< empty: each copy gets its sequence number
  std::uint64_t repeat = 1;
  std::uint32_t line = 0;
};

struct run_config {
  std::string path;                  ///< the file as named by the user, for messages
  std::string log_level;             ///< [supervisor] log_level; empty when not set
  supervisor_options supervisor;
  std::vector<pool_config> pools;    ///< in file order (it matters for rest_for_one)
  std::vector<job_template> jobs;    ///< in file order

  /// The pool called `name`, or nullptr.
  [[nodiscard]] const pool_config* find_pool(std::string_view name) const noexcept;
};

/// A config that cannot be used: every problem found, one message each.
class config_error : public std::runtime_error {
 public:
  explicit config_error(std::vector<std::string> problems);
  [[nodiscard]] const std::vector<std::string>& problems() const noexcept { return problems_; }

 private:
  std::vector<std::string> problems_;
};

/// The largest config file load_config() reads: far more than any hand-written config,
/// and a bound on what an endless stream (/dev/zero) costs.
inline constexpr std::size_t k_max_config_size = std::size_t{16} << 20;

/// Reads and validates the config file at `path` (named in messages as written), of at
/// most k_max_config_size bytes. Relative commands containing a '/' are resolved against the file's directory, bare
/// names through PATH. Throws config_error (an unreadable file included).
[[nodiscard]] run_config load_config(const std::string& path);

/// Validates config text. `source_name` names it in messages; `base_dir` is where
/// relative commands are resolved; `path_env` is the PATH to search for bare command
/// names. Throws config_error.
[[nodiscard]] run_config parse_config(std::string_view text, const std::string& source_name,
                                      const std::filesystem::path& base_dir, std::string_view path_env);

/// The log levels accepted by `log_level` and --log-level, in order of verbosity.
[[nodiscard]] const std::vector<std::string>& log_level_names();

}  // namespace ringmaster::cli
