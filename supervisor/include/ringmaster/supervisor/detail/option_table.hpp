// ringmaster/supervisor/detail/option_table.hpp — every option of a pool and of a
// supervisor, written once: its name, kind, range, default and what it means.
//
// Who reads it: supervisor::add_pool (the library's range of each option), the
// `ringmaster` command's config parser and flags (the config's range and wording), and the
// program that prints README's option table (tests/readme/options_table.cpp; a test fails
// when README differs from it). A default is read from a default-constructed options
// struct through `get`, so that it cannot drift from options.hpp.
//
// Two ranges, on purpose: the library refuses only what cannot work (more than
// k_max_workers workers, no attempt at all); a config file, written by hand, is also held
// to what is sane (a memory_limit under which no worker can map its libraries, a
// max_attempts of a million). The config's range lies within the library's.
//
// constexpr data, no state: usable from any thread. Not an API of its own: names and
// layout may change with any release.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <limits>
#include <span>
#include <string_view>

#include <ringmaster/supervisor/options.hpp>

namespace ringmaster::detail {

/// How an option is written and read: counts are plain integers; sizes are bytes and
/// durations milliseconds here (a config writes them with a unit: "64KiB", "250ms").
enum class option_kind : std::uint8_t { count, size, duration, flag, choice, argv, text };

inline constexpr std::uint64_t k_unbounded = std::numeric_limits<std::uint64_t>::max();

/// Names of restart_type, restart_strategy and the log levels, indexed by value (the
/// enums' tables are checked against them with a static_assert in options.cpp).
inline constexpr std::array<std::string_view, 3> k_restart_type_names{"permanent", "transient", "temporary"};
inline constexpr std::array<std::string_view, 3> k_strategy_names{"one_for_one", "one_for_all", "rest_for_one"};
inline constexpr std::array<std::string_view, 4> k_protocol_names{"ringmaster", "jsonl", "lines", "exec"};
/// In order of verbosity; what set_log_level accepts.
inline constexpr std::array<std::string_view, 7> k_log_level_names{"trace", "debug", "info", "warn",
                                                                   "error", "critical", "off"};

/// One option of `Options` (pool_options or supervisor_options).
template <class Options>
struct option_spec {
  std::string_view name;
  option_kind kind;
  /// What a config file and the command's flags accept (text: its length).
  std::uint64_t min = 0;
  std::uint64_t max = k_unbounded;
  /// What the library refuses beyond (add_pool, with std::invalid_argument and
  /// errc::invalid_option). Wider than, or the same as, min..max.
  std::uint64_t library_min = 0;
  std::uint64_t library_max = k_unbounded;
  /// What 0 means, when it is not a plain zero ("one per core"); empty otherwise.
  std::string_view zero_means{};
  /// One line for README's table.
  std::string_view doc{};
  /// The default as README shows it, for an option `get` cannot read (text, argv, one
  /// that Options does not hold).
  std::string_view default_text{};
  /// For a choice: its names, indexed by value.
  std::span<const std::string_view> choices{};
  /// The value (a choice: its index), or nullptr when Options does not hold the option.
  std::uint64_t (*get)(const Options&) = nullptr;
  /// Sets the value, which is within min..max.
  void (*set)(Options&, std::uint64_t) = nullptr;
};

using pool_option = option_spec<pool_options>;
using supervisor_option = option_spec<supervisor_options>;

namespace option_access {
template <auto Member>
constexpr std::uint64_t get_ms(const auto& o) noexcept {
  return static_cast<std::uint64_t>((o.*Member).count());
}
template <auto Member>
constexpr void set_ms(auto& o, std::uint64_t v) noexcept {
  o.*Member = std::chrono::milliseconds(static_cast<std::chrono::milliseconds::rep>(v));
}
template <auto Member>
constexpr std::uint64_t get_int(const auto& o) noexcept {
  return static_cast<std::uint64_t>(o.*Member);
}
template <auto Member>
constexpr void set_int(auto& o, std::uint64_t v) noexcept {
  using T = std::remove_cvref_t<decltype(o.*Member)>;
  o.*Member = static_cast<T>(v);
}
}  // namespace option_access

/// Every pool option, in the order a config's "one of the keys ..." message lists them.
inline constexpr std::array<pool_option, 19> k_pool_options{{
    {.name = "workers", .kind = option_kind::count, .max = k_max_workers, .library_max = k_max_workers,
     .zero_means = "one per core", .doc = "worker processes",
     .get = option_access::get_int<&pool_options::workers>, .set = option_access::set_int<&pool_options::workers>},
    {.name = "command", .kind = option_kind::argv,
     .doc = "the worker program and its arguments: built on `ringmaster::serve()`, or any program with `protocol`; "
            "a bare name is looked up in `PATH`, a path with a `/` is relative to the config file",
     .default_text = "none: the built-in handlers, forked"},
    {.name = "restart", .kind = option_kind::choice,
     .doc = "when a worker that exited is replaced: always, only after an abnormal exit, never",
     .choices = k_restart_type_names, .get = option_access::get_int<&pool_options::restart>,
     .set = option_access::set_int<&pool_options::restart>},
    {.name = "protocol", .kind = option_kind::choice,
     .doc = "how `command` talks: built on `ringmaster::serve()`; JSON Lines; a line filter; one process per job "
            "(see \"Run your own program\")",
     .choices = k_protocol_names, .get = option_access::get_int<&pool_options::protocol>,
     .set = option_access::set_int<&pool_options::protocol>},
    {.name = "max_restarts", .kind = option_kind::count, .max = 1'000'000,
     .doc = "restart intensity: more than this many deaths that count within `restart_window`, and the pool gives up",
     .get = option_access::get_int<&pool_options::max_restarts>,
     .set = option_access::set_int<&pool_options::max_restarts>},
    {.name = "restart_window", .kind = option_kind::duration, .min = 1, .doc = "the window of `max_restarts`",
     .get = option_access::get_ms<&pool_options::restart_window>,
     .set = option_access::set_ms<&pool_options::restart_window>},
    {.name = "max_attempts", .kind = option_kind::count, .min = 1, .max = 1000, .library_min = 1,
     .doc = "a job that kills its worker this many times fails (a poison job)",
     .get = option_access::get_int<&pool_options::max_attempts>,
     .set = option_access::set_int<&pool_options::max_attempts>},
    {.name = "retry_on_error", .kind = option_kind::flag,
     .doc = "retry a job whose handler threw, too, up to `max_attempts`",
     .get = option_access::get_int<&pool_options::retry_on_error>,
     .set = option_access::set_int<&pool_options::retry_on_error>},
    {.name = "job_timeout", .kind = option_kind::duration, .zero_means = "none",
     .doc = "a job running longer is stopped: SIGTERM, `kill_grace`, SIGKILL, and its worker replaced",
     .get = option_access::get_ms<&pool_options::job_timeout>, .set = option_access::set_ms<&pool_options::job_timeout>},
    {.name = "kill_grace", .kind = option_kind::duration, .doc = "from SIGTERM to SIGKILL",
     .get = option_access::get_ms<&pool_options::kill_grace>, .set = option_access::set_ms<&pool_options::kill_grace>},
    {.name = "memory_limit", .kind = option_kind::size, .min = std::uint64_t{32} << 20, .max = std::uint64_t{1} << 50,
     .zero_means = "none",
     .doc = "address space of each worker (RLIMIT_AS); below 32MiB no worker could map its libraries and rings",
     .get = option_access::get_int<&pool_options::memory_limit>,
     .set = option_access::set_int<&pool_options::memory_limit>},
    {.name = "max_jobs_per_worker", .kind = option_kind::count, .max = std::uint64_t{1} << 62,
     .zero_means = "never recycle", .doc = "replace a worker after it ran this many jobs",
     .get = option_access::get_int<&pool_options::max_jobs_per_worker>,
     .set = option_access::set_int<&pool_options::max_jobs_per_worker>},
    {.name = "max_message", .kind = option_kind::size, .min = 1, .max = k_max_message_limit, .library_min = 1,
     .library_max = k_max_message_limit,
     .doc = "largest payload and result; each worker maps two rings sized for it (16MiB at 1MiB)",
     .get = option_access::get_int<&pool_options::max_message>,
     .set = option_access::set_int<&pool_options::max_message>},
    {.name = "max_pending", .kind = option_kind::count, .min = 1, .max = 10'000'000, .library_min = 1,
     .doc = "jobs accepted and not yet finished, at most: submission waits beyond it (backpressure)",
     .get = option_access::get_int<&pool_options::max_pending>,
     .set = option_access::set_int<&pool_options::max_pending>},
    {.name = "prefetch", .kind = option_kind::count, .max = 65536, .zero_means = "adapt to the jobs' run time",
     .doc = "jobs sent ahead to each worker",
     .get = option_access::get_int<&pool_options::prefetch>, .set = option_access::set_int<&pool_options::prefetch>},
    {.name = "backoff_initial", .kind = option_kind::duration,
     .doc = "delay before restarting a slot that keeps dying, doubling up to `backoff_max`, with jitter",
     .get = option_access::get_ms<&pool_options::backoff_initial>,
     .set = option_access::set_ms<&pool_options::backoff_initial>},
    {.name = "backoff_max", .kind = option_kind::duration, .doc = "the longest backoff; at least `backoff_initial`",
     .get = option_access::get_ms<&pool_options::backoff_max>, .set = option_access::set_ms<&pool_options::backoff_max>},
    {.name = "stable_after", .kind = option_kind::duration, .doc = "a worker up this long resets its slot's backoff",
     .get = option_access::get_ms<&pool_options::stable_after>,
     .set = option_access::set_ms<&pool_options::stable_after>},
    {.name = "start_timeout", .kind = option_kind::duration, .min = 1,
     .doc = "a worker not ready this long after its start is killed, as a start failure",
     .get = option_access::get_ms<&pool_options::start_timeout>,
     .set = option_access::set_ms<&pool_options::start_timeout>},
}};

/// Every supervisor option (a config's [supervisor] table), in the config's order.
/// log_level is the command's (set_log_level), not a member of supervisor_options.
inline constexpr std::array<supervisor_option, 4> k_supervisor_options{{
    {.name = "name", .kind = option_kind::text, .min = 1, .max = 128, .doc = "names the supervisor in logs",
     .default_text = "ringmaster"},
    {.name = "log_level", .kind = option_kind::choice,
     .doc = "the level of every ringmaster logger (`--log-level` overrides it)", .default_text = "info",
     .choices = k_log_level_names},
    {.name = "shutdown_timeout", .kind = option_kind::duration,
     .doc = "on stop (SIGINT, SIGTERM): how long running jobs may take to finish before their workers are killed",
     .get = option_access::get_ms<&supervisor_options::shutdown_timeout>,
     .set = option_access::set_ms<&supervisor_options::shutdown_timeout>},
    {.name = "strategy", .kind = option_kind::choice,
     .doc = "what else is restarted when a worker dies: that worker; every pool's; its pool's and the later pools'",
     .choices = k_strategy_names, .get = option_access::get_int<&supervisor_options::strategy>,
     .set = option_access::set_int<&supervisor_options::strategy>},
}};

/// The option called `name` in `table`, or nullptr.
template <class Options, std::size_t N>
[[nodiscard]] constexpr const option_spec<Options>* find_option(const std::array<option_spec<Options>, N>& table,
                                                                std::string_view name) noexcept {
  for (const auto& o : table)
    if (o.name == name) return &o;
  return nullptr;
}

}  // namespace ringmaster::detail
