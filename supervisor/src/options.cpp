// The option table's readers on the library side: the names of the option enums,
// add_pool's and scale's range checks, and the "ringmaster" error category.
#include <ringmaster/supervisor/detail/option_table.hpp>
#include <ringmaster/supervisor/errc.hpp>
#include <ringmaster/supervisor/options.hpp>
#include <ringmaster/worker/detail/adapter.hpp>
#include <ringmaster/worker/detail/enum_names.hpp>
#include <ringmaster/worker/detail/wire.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>

#include "refusal.hpp"

namespace ringmaster {

// The library's limits are the wire format's: a message over k_max_body, or a name over
// k_max_name, could not be framed.
static_assert(k_max_message_limit == wire::k_max_body, "max_message's cap and the wire's largest body differ");
static_assert(k_max_id == wire::k_max_name, "the id length and the wire's longest name differ");
static_assert(detail::names_every_enumerator<restart_type>(detail::k_restart_type_names),
              "restart_type and its names differ");
static_assert(detail::names_every_enumerator<restart_strategy>(detail::k_strategy_names),
              "restart_strategy and its names differ");
static_assert(detail::names_every_enumerator<worker_protocol>(detail::k_protocol_names),
              "worker_protocol and its names differ");
// The adapter (worker/detail/adapter.hpp) takes the protocol by value.
static_assert(static_cast<int>(worker_protocol::jsonl) == static_cast<int>(detail::program_protocol::jsonl) &&
                  static_cast<int>(worker_protocol::lines) == static_cast<int>(detail::program_protocol::lines) &&
                  static_cast<int>(worker_protocol::exec) == static_cast<int>(detail::program_protocol::exec),
              "worker_protocol and program_protocol differ");

namespace {

template <class E, std::size_t N>
std::optional<E> parse(const std::array<std::string_view, N>& names, std::string_view s) noexcept {
  for (std::size_t i = 0; i < N; ++i)
    if (names[i] == s) return static_cast<E>(i);
  return std::nullopt;
}

// Sizes as add_pool's messages have always written them: "1 byte", "64 MiB".
std::string size_text(std::uint64_t b) {
  if (b == 1) return "1 byte";
  if (b >= (std::uint64_t{1} << 20) && b % (std::uint64_t{1} << 20) == 0) return std::to_string(b >> 20) + " MiB";
  if (b >= 1024 && b % 1024 == 0) return std::to_string(b >> 10) + " KiB";
  return std::to_string(b) + " bytes";
}

std::string bound_text(const detail::pool_option& spec, std::uint64_t v) {
  return spec.kind == detail::option_kind::size ? size_text(v) : std::to_string(v);
}

// Whether `program` names an executable file: itself if it has a `/`, else in PATH.
bool executable(const std::string& program) {
  const auto runnable = [](const std::string& path) {
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(path.c_str(), X_OK) == 0;
  };
  if (program.find('/') != std::string::npos) return runnable(program);
  const char* path = std::getenv("PATH");
  std::string_view dirs = path ? path : "/usr/bin:/bin";
  while (true) {
    const auto colon = dirs.find(':');
    const std::string_view dir = dirs.substr(0, colon);
    if (!program.empty() && runnable((dir.empty() ? std::string(".") : std::string(dir)) + "/" + program)) return true;
    if (colon == std::string_view::npos) return false;
    dirs.remove_prefix(colon + 1);
  }
}

class supervisor_category_impl final : public std::error_category {
 public:
  const char* name() const noexcept override { return "ringmaster"; }

  std::string message(int value) const override {
    switch (static_cast<errc>(value)) {
      case errc::invalid_option: return "option out of range";
      case errc::bad_pool_name: return "pool name must be 1-128 characters of [A-Za-z0-9_.-]";
      case errc::duplicate_pool: return "a pool of that name already exists";
      case errc::not_enough_memory: return "the workers would map more shared memory than the machine has available";
      case errc::too_many_descriptors: return "the workers would need more file descriptors than RLIMIT_NOFILE allows";
      case errc::already_started: return "supervisor already started";
      case errc::stopping: return "the supervisor is stopping";
      case errc::pool_removed: return "the pool was removed";
      case errc::pool_gave_up: return "the pool gave up";
    }
    return "unknown ringmaster error " + std::to_string(value);
  }

  // So that a caller may test for the portable condition (ec == std::errc::...).
  bool equivalent(int value, const std::error_condition& condition) const noexcept override {
    switch (static_cast<errc>(value)) {
      case errc::invalid_option:
      case errc::bad_pool_name: return condition == std::errc::invalid_argument;
      case errc::not_enough_memory: return condition == std::errc::not_enough_memory;
      case errc::too_many_descriptors: return condition == std::errc::too_many_files_open;
      default: return default_error_condition(value) == condition;
    }
  }
};

}  // namespace

std::string_view to_string(restart_type t) noexcept { return detail::k_restart_type_names[static_cast<std::size_t>(t)]; }
std::string_view to_string(restart_strategy s) noexcept { return detail::k_strategy_names[static_cast<std::size_t>(s)]; }
std::optional<restart_type> restart_type_from_string(std::string_view s) noexcept {
  return parse<restart_type>(detail::k_restart_type_names, s);
}
std::optional<restart_strategy> restart_strategy_from_string(std::string_view s) noexcept {
  return parse<restart_strategy>(detail::k_strategy_names, s);
}
std::string_view to_string(worker_protocol p) noexcept { return detail::k_protocol_names[static_cast<std::size_t>(p)]; }
std::optional<worker_protocol> worker_protocol_from_string(std::string_view s) noexcept {
  return parse<worker_protocol>(detail::k_protocol_names, s);
}

const std::error_category& supervisor_category() noexcept {
  static const supervisor_category_impl category;
  return category;
}

namespace detail {

void check_pool_request(const std::string& name, bool has_handlers, const pool_options& o) {
  if (!valid_pool_name(name))
    throw invalid_request(errc::bad_pool_name, "pool name '" + name + "' must be 1-" + std::to_string(k_max_pool_name) +
                                                   " characters of [A-Za-z0-9_.-]");
  if (!has_handlers && o.command.empty())
    throw invalid_request(errc::invalid_option, "pool '" + name + "' needs handlers or a command");
  if (o.protocol != worker_protocol::ringmaster) {
    const std::string protocol(to_string(o.protocol));
    if (o.command.empty())
      throw invalid_request(errc::invalid_option, "pool '" + name + "': protocol " + protocol + " needs a command");
    if (!executable(o.command[0]))
      throw invalid_request(errc::invalid_option, "pool '" + name + "': command '" + o.command[0] +
                                                      "' is not an executable file (a bare name is looked up in PATH)");
  }
  if (o.protocol != worker_protocol::exec)
    for (std::size_t i = 1; i < o.command.size(); ++i)
      if (o.command[i].find("{}") != std::string::npos)
        throw invalid_request(errc::invalid_option, "pool '" + name + "': command argument " + std::to_string(i) +
                                                        " has {}, which only protocol exec replaces");
  for (const pool_option& spec : k_pool_options) {
    if (!spec.get || (spec.library_min == 0 && spec.library_max == k_unbounded)) continue;
    const std::uint64_t v = spec.get(o);
    if (v >= spec.library_min && v <= spec.library_max) continue;
    const std::string n(spec.name);
    std::string why;
    if (spec.library_max == k_unbounded)
      why = n + " must be at least " + bound_text(spec, spec.library_min);
    else if (spec.library_min == 0)
      why = "at most " + bound_text(spec, spec.library_max) + " " + n;
    else
      why = n + " must be between " + bound_text(spec, spec.library_min) + " and " + bound_text(spec, spec.library_max);
    throw invalid_request(errc::invalid_option, "pool '" + name + "': " + why);
  }
}

void check_scale_request(const std::string& pool, unsigned workers) {
  if (workers == 0 || workers > k_max_workers)
    throw invalid_request(errc::invalid_option, "pool '" + pool + "': scale to 1-" + std::to_string(k_max_workers) +
                                                    " workers, got " + std::to_string(workers));
}

}  // namespace detail
}  // namespace ringmaster
