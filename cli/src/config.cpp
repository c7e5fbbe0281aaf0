#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <ringmaster/cli/config.hpp>
#include <ringmaster/cli/units.hpp>
#include <ringmaster/supervisor/detail/option_table.hpp>
#include <ringmaster/worker/demo_handlers.hpp>
#include <sstream>
#include <toml++/toml.h>

#include "program_path.hpp"

namespace ringmaster::cli {
namespace {

namespace fs = std::filesystem;
using detail::resolve_program;
using ringmaster::detail::option_kind;

// A [[jobs]] id leaves room for the "-N" that repeat appends, within the library's k_max_id.
constexpr std::size_t k_repeat_suffix_room = 24;

bool bare_key(std::string_view k) {
  return !k.empty() && std::all_of(k.begin(), k.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
  });
}

std::string quote_text(std::string_view s, std::size_t limit = 80) {
  std::string out = "\"";
  // Cut at a character boundary, so that the message stays valid UTF-8 (fuzzing found a
  // key cut inside a character).
  std::size_t cut = std::min(s.size(), limit);
  while (cut > 0 && cut < s.size() && (static_cast<unsigned char>(s[cut]) & 0xC0u) == 0x80u) --cut;
  for (std::size_t i = 0; i < cut; ++i) {
    const char c = s[i];
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      out += c == '\n' ? "\\n" : c == '\t' ? "\\t" : "?";
    } else {
      out += c;
    }
  }
  if (cut < s.size()) out += "...";
  return out + "\"";
}

// A key as TOML would write it in a dotted path: bare when it can be, quoted otherwise.
std::string key_text(std::string_view k) { return bare_key(k) ? std::string(k) : quote_text(k, 200); }

std::string join(const std::vector<std::string>& items, std::string_view sep = ", ") {
  std::string out;
  for (const auto& s : items) out += (out.empty() ? "" : std::string(sep)) + s;
  return out;
}

// What the user wrote, for "got ...".
std::string describe(const toml::node& n) {
  switch (n.type()) {
    case toml::node_type::string: return "string " + quote_text(n.as_string()->get());
    case toml::node_type::integer: return "integer " + std::to_string(n.as_integer()->get());
    case toml::node_type::floating_point: {
      std::ostringstream s;
      s << "float " << n.as_floating_point()->get();
      return s.str();
    }
    case toml::node_type::boolean: return std::string("boolean ") + (n.as_boolean()->get() ? "true" : "false");
    case toml::node_type::array: return "an array";
    case toml::node_type::table: return "a table";
    case toml::node_type::date: return "a date";
    case toml::node_type::time: return "a time";
    case toml::node_type::date_time: return "a date-time";
    default: return "nothing";
  }
}

nlohmann::json to_json(const toml::node& n) {
  switch (n.type()) {
    case toml::node_type::string: return n.as_string()->get();
    case toml::node_type::integer: return n.as_integer()->get();
    case toml::node_type::floating_point: return n.as_floating_point()->get();
    case toml::node_type::boolean: return n.as_boolean()->get();
    case toml::node_type::array: {
      auto out = nlohmann::json::array();
      for (const auto& e : *n.as_array()) out.push_back(to_json(e));
      return out;
    }
    case toml::node_type::table: {
      auto out = nlohmann::json::object();
      for (const auto& [k, v] : *n.as_table()) out[std::string(k.str())] = to_json(v);
      return out;
    }
    default: {
      // Dates and times: their TOML spelling, as a JSON string.
      std::ostringstream s;
      if (auto d = n.as_date()) s << d->get();
      if (auto t = n.as_time()) s << t->get();
      if (auto dt = n.as_date_time()) s << dt->get();
      return s.str();
    }
  }
}

class checker {
 public:
  explicit checker(std::string file) : file_(std::move(file)) {}

  void problem(const toml::source_region& where, std::string_view key, std::string_view expected,
               std::string_view got) {
    problems_.push_back(file_ + ":" + std::to_string(where.begin.line) + ": " + std::string(key) + ": expected " +
                        std::string(expected) + ", got " + std::string(got));
  }
  void problem(std::uint32_t line, std::string_view key, std::string_view expected, std::string_view got) {
    toml::source_region r;
    r.begin.line = line;
    problem(r, key, expected, got);
  }

  // Typed readers: the value, or nullopt after reporting what was wrong with it.
  std::optional<std::int64_t> integer(const toml::node& n, const std::string& key, std::int64_t lo, std::int64_t hi,
                                      std::string_view meaning = {}) {
    const std::string expected = "an integer from " + std::to_string(lo) + " to " + std::to_string(hi) +
                                 (meaning.empty() ? "" : " (" + std::string(meaning) + ")");
    if (!n.is_integer()) {
      problem(n.source(), key, expected, describe(n));
      return std::nullopt;
    }
    const std::int64_t v = n.as_integer()->get();
    if (v < lo || v > hi) {
      problem(n.source(), key, expected, describe(n));
      return std::nullopt;
    }
    return v;
  }

  std::optional<std::string> string(const toml::node& n, const std::string& key, std::string_view expected) {
    if (!n.is_string()) {
      problem(n.source(), key, expected, describe(n));
      return std::nullopt;
    }
    return n.as_string()->get();
  }

  std::optional<bool> boolean(const toml::node& n, const std::string& key) {
    if (!n.is_boolean()) {
      problem(n.source(), key, "true or false", describe(n));
      return std::nullopt;
    }
    return n.as_boolean()->get();
  }

  std::optional<std::chrono::milliseconds> duration(const toml::node& n, const std::string& key,
                                                    std::chrono::milliseconds lo, std::string_view meaning = {}) {
    std::string expected = "a duration such as \"250ms\", \"30s\" or \"5m\"";
    if (lo.count() > 0) expected += " of at least " + format_duration(lo);
    if (!meaning.empty()) expected += " (" + std::string(meaning) + ")";
    if (!n.is_string()) {
      problem(n.source(), key, expected, describe(n));
      return std::nullopt;
    }
    const auto d = parse_duration(n.as_string()->get());
    if (!d || *d < lo) {
      problem(n.source(), key, expected, describe(n));
      return std::nullopt;
    }
    return d;
  }

  std::optional<std::uint64_t> size(const toml::node& n, const std::string& key, std::uint64_t lo, std::uint64_t hi,
                                    std::string_view meaning = {}) {
    std::string expected = "a size such as \"64KiB\" or \"512MiB\" from " + format_size(lo) + " to " + format_size(hi);
    if (!meaning.empty()) expected += " (" + std::string(meaning) + ")";
    if (!n.is_string()) {
      problem(n.source(), key, expected, describe(n));
      return std::nullopt;
    }
    const auto b = parse_size(n.as_string()->get());
    if (!b || *b < lo || *b > hi) {
      problem(n.source(), key, expected, describe(n));
      return std::nullopt;
    }
    return b;
  }

  const toml::table* table(const toml::node& n, const std::string& key, std::string_view expected) {
    if (!n.is_table()) {
      problem(n.source(), key, expected, describe(n));
      return nullptr;
    }
    return n.as_table();
  }

  void unknown_key(const toml::key& k, const std::string& key, const std::vector<std::string>& known) {
    problem(k.source(), key, "one of the keys " + join(known), "unknown key " + quote_text(k.str()));
  }

  [[nodiscard]] const std::vector<std::string>& problems() const noexcept { return problems_; }
  [[nodiscard]] const std::string& file() const noexcept { return file_; }

 private:
  std::string file_;
  std::vector<std::string> problems_;
};

// Entries of a table in file order (toml++ keeps tables sorted by key).
std::vector<std::pair<const toml::key*, const toml::node*>> in_file_order(const toml::table& t) {
  std::vector<std::pair<const toml::key*, const toml::node*>> out;
  for (const auto& [k, v] : t) out.emplace_back(&k, &v);
  std::stable_sort(out.begin(), out.end(), [](const auto& a, const auto& b) {
    const auto& x = a.first->source().begin;
    const auto& y = b.first->source().begin;
    return x.line != y.line ? x.line < y.line : x.column < y.column;
  });
  return out;
}

template <class Table>
std::vector<std::string> names_of(const Table& table) {
  std::vector<std::string> out;
  for (const auto& spec : table) out.emplace_back(spec.name);
  return out;
}

const std::vector<std::string> k_top_keys{"supervisor", "pools", "jobs"};
const std::vector<std::string> k_supervisor_keys = names_of(ringmaster::detail::k_supervisor_options);
const std::vector<std::string> k_pool_keys = names_of(ringmaster::detail::k_pool_options);
const std::vector<std::string> k_job_keys{"pool", "type", "payload", "id", "repeat"};

template <class Names>
std::string one_of(const Names& names) {
  std::vector<std::string> q;
  for (const auto& n : names) q.push_back(quote_text(n));
  return "one of " + join(q);
}

// The index of a choice's value, or nullopt after reporting it.
template <class Options>
std::optional<std::size_t> read_choice(checker& c, const ringmaster::detail::option_spec<Options>& spec,
                                       const toml::node& v, const std::string& key) {
  const std::string expected = one_of(spec.choices);
  auto s = c.string(v, key, expected);
  if (!s) return std::nullopt;
  for (std::size_t i = 0; i < spec.choices.size(); ++i)
    if (spec.choices[i] == *s) return i;
  c.problem(v.source(), key, expected, describe(v));
  return std::nullopt;
}

// One option, read as its kind says, within the table's range for a config; set in `o`
// (false after reporting what was wrong). What 0 means is said only when 0 is allowed.
template <class Options>
bool read_option(checker& c, const ringmaster::detail::option_spec<Options>& spec, const toml::node& v,
                 const std::string& key, Options& o) {
  const bool zero_named = spec.min == 0 && !spec.zero_means.empty();
  std::optional<std::uint64_t> value;
  switch (spec.kind) {
    case option_kind::count:
      if (auto x = c.integer(v, key, static_cast<std::int64_t>(spec.min), static_cast<std::int64_t>(spec.max),
                             zero_named ? "0: " + std::string(spec.zero_means) : std::string()))
        value = static_cast<std::uint64_t>(*x);
      break;
    case option_kind::duration:
      if (auto d = c.duration(v, key, std::chrono::milliseconds(spec.min),
                              zero_named ? "\"0s\": " + std::string(spec.zero_means) : std::string()))
        value = static_cast<std::uint64_t>(d->count());
      break;
    case option_kind::size:
      if (auto b = c.size(v, key, spec.min, spec.max, zero_named ? "0: " + std::string(spec.zero_means) : std::string()))
        value = *b;
      break;
    case option_kind::flag:
      if (auto b = c.boolean(v, key)) value = *b ? 1 : 0;
      break;
    case option_kind::choice:
      if (auto i = read_choice(c, spec, v, key)) value = *i;
      break;
    case option_kind::argv:
    case option_kind::text: break;  // read by their callers
  }
  if (value && spec.set) spec.set(o, *value);
  return value.has_value();
}

void read_supervisor(checker& c, const toml::table& t, run_config& out) {
  for (const auto& [kp, vp] : in_file_order(t)) {
    const toml::key& k = *kp;
    const toml::node& v = *vp;
    const std::string key = "supervisor." + key_text(k.str());
    const auto* spec = ringmaster::detail::find_option(ringmaster::detail::k_supervisor_options, k.str());
    if (!spec) {
      c.unknown_key(k, key, k_supervisor_keys);
    } else if (spec->kind == option_kind::text) {  // name
      const std::string expected = "a non-empty string of at most " + std::to_string(spec->max) + " characters";
      if (auto s = c.string(v, key, expected)) {
        if (s->size() < spec->min || s->size() > spec->max)
          c.problem(v.source(), key, expected, describe(v));
        else
          out.supervisor.name = *s;
      }
    } else if (!spec->set) {  // log_level: the command's, not the library's
      if (auto i = read_choice(c, *spec, v, key)) out.log_level = std::string(spec->choices[*i]);
    } else {
      read_option(c, *spec, v, key, out.supervisor);
    }
  }
}

void read_command(checker& c, const toml::node& v, const std::string& key, const fs::path& base_dir,
                  std::string_view path_env, pool_config& pool) {
  const std::string expected = "a non-empty array of strings such as [\"./my_worker\", \"--flag\"]";
  const toml::array* a = v.as_array();
  if (!a || a->empty()) {
    c.problem(v.source(), key, expected, a ? "an empty array" : describe(v));
    return;
  }
  std::vector<std::string> argv;
  bool ok = true;
  for (std::size_t i = 0; i < a->size(); ++i) {
    const toml::node& e = *a->get(i);
    if (!e.is_string()) {
      c.problem(e.source(), key + "[" + std::to_string(i) + "]", "a string", describe(e));
      ok = false;
    } else {
      argv.push_back(e.as_string()->get());
    }
  }
  if (!ok) return;
  if (argv[0].empty()) {
    c.problem(a->get(0)->source(), key + "[0]", "the worker program's path or name", "an empty string");
    return;
  }
  std::string why;
  const auto program = resolve_program(argv[0], base_dir, path_env, why);
  if (!program) {
    const bool by_path = argv[0].find('/') != std::string::npos;
    c.problem(a->get(0)->source(), key + "[0]",
              by_path ? "an executable file (relative paths are relative to the config file's directory)"
                      : "an executable program found in PATH",
              quote_text(argv[0]) + " (" + why + ")");
    return;
  }
  argv[0] = program->string();
  pool.options.command = std::move(argv);
}

// A program's protocol needs its command; `{}` is replaced only by exec.
void check_protocol(checker& c, const std::string& prefix, const toml::node* protocol, const toml::node* command,
                    const pool_options& o) {
  if (protocol && o.protocol != ringmaster::worker_protocol::ringmaster && !command)
    c.problem(protocol->source(), prefix + "protocol",
              "a pool with a command = [...] (the program that protocol " + quote_text(std::string(to_string(o.protocol))) +
                  " talks to)",
              "no command");
  if (!command || o.protocol == ringmaster::worker_protocol::exec || !command->as_array()) return;
  const toml::array& a = *command->as_array();
  for (std::size_t i = 1; i < a.size(); ++i)
    if (a.get(i)->is_string() && a.get(i)->as_string()->get().find("{}") != std::string::npos)
      c.problem(a.get(i)->source(), prefix + "command[" + std::to_string(i) + "]",
                "an argument without {} (only protocol = \"exec\" replaces {} with the payload)", describe(*a.get(i)));
}

void read_pool(checker& c, const std::string& name, const toml::table& t, const fs::path& base_dir,
               std::string_view path_env, pool_config& pool) {
  pool_options& o = pool.options;
  const std::string prefix = "pools." + key_text(name) + ".";
  const toml::node* backoff_max = nullptr;
  const toml::node* protocol = nullptr;
  const toml::node* command = nullptr;
  for (const auto& [kp, vp] : in_file_order(t)) {
    const toml::key& k = *kp;
    const toml::node& v = *vp;
    const std::string key = prefix + key_text(k.str());
    const std::string_view n = k.str();
    const auto* spec = ringmaster::detail::find_option(ringmaster::detail::k_pool_options, n);
    if (!spec) {
      c.unknown_key(k, key, k_pool_keys);
    } else if (spec->kind == option_kind::argv) {  // command
      command = &v;
      read_command(c, v, key, base_dir, path_env, pool);
    } else {
      if (read_option(c, *spec, v, key, o)) {
        if (n == "workers") pool.workers_defaulted = false;
        if (n == "backoff_max") backoff_max = &v;
        if (n == "protocol") protocol = &v;
      }
    }
  }
  check_protocol(c, prefix, protocol, command, o);
  if (o.backoff_max < o.backoff_initial) {
    const std::string expected = "a duration of at least backoff_initial (" + format_duration(o.backoff_initial) + ")";
    if (backoff_max)
      c.problem(backoff_max->source(), prefix + "backoff_max", expected, describe(*backoff_max));
    else
      c.problem(pool.line, prefix + "backoff_max", expected, "the default " + format_duration(o.backoff_max));
  }
}

void read_job(checker& c, std::size_t index, const toml::table& t, run_config& out) {
  job_template job;
  job.line = t.source().begin.line;
  const std::string prefix = "jobs[" + std::to_string(index) + "].";
  const toml::node* type_node = nullptr;
  const toml::node* pool_node = nullptr;
  bool ok = true;
  for (const auto& [kp, vp] : in_file_order(t)) {
    const toml::key& k = *kp;
    const toml::node& v = *vp;
    const std::string key = prefix + key_text(k.str());
    const std::string_view n = k.str();
    if (n == "pool") {
      pool_node = &v;
      if (auto s = c.string(v, key, "the name of a pool"))
        job.pool = *s;
      else
        ok = false;
    } else if (n == "type") {
      type_node = &v;
      auto s = c.string(v, key, "a job type (a non-empty string)");
      if (s && s->empty()) c.problem(v.source(), key, "a job type (a non-empty string)", describe(v));
      if (s && !s->empty())
        job.type = *s;
      else
        ok = false;
    } else if (n == "payload") {
      job.payload = v.is_string() ? v.as_string()->get() : to_json(v).dump();
    } else if (n == "id") {
      // Room is left for the "-N" that repeat appends.
      const std::string expected =
          "a non-empty string of at most " + std::to_string(k_max_id - k_repeat_suffix_room) + " bytes, or an integer";
      if (v.is_string() && !v.as_string()->get().empty() && v.as_string()->get().size() <= k_max_id - k_repeat_suffix_room)
        job.id = v.as_string()->get();
      else if (v.is_integer())
        job.id = std::to_string(v.as_integer()->get());
      else {
        c.problem(v.source(), key, expected, describe(v));
        ok = false;
      }
    } else if (n == "repeat") {
      if (auto x = c.integer(v, key, 1, 1'000'000'000))
        job.repeat = static_cast<std::uint64_t>(*x);
      else
        ok = false;
    } else {
      c.unknown_key(k, key, k_job_keys);
      ok = false;
    }
  }
  if (!type_node) {
    c.problem(job.line, prefix + "type", "a job type (a non-empty string)", "nothing");
    ok = false;
  }
  std::vector<std::string> pool_names;
  for (const auto& p : out.pools) pool_names.push_back(p.name);
  if (!pool_node) {
    if (out.pools.size() == 1) {
      job.pool = out.pools.front().name;
    } else if (!out.pools.empty()) {
      c.problem(job.line, prefix + "pool",
                "the name of a pool (" + join(pool_names) + "; required when there is more than one pool)", "nothing");
      ok = false;
    }
  } else if (!job.pool.empty() && !out.pools.empty() && !out.find_pool(job.pool)) {
    c.problem(pool_node->source(), prefix + "pool", "the name of a pool (" + join(pool_names) + ")", describe(*pool_node));
    ok = false;
  }
  // A pool of built-in handlers knows its job types now; a command pool's worker says
  // which types it serves only when it starts (and unknown ones are rejected then).
  if (ok && type_node) {
    const pool_config* pool = out.find_pool(job.pool);
    if (pool && pool->builtin() && !demo_handlers().find(job.type)) {
      c.problem(type_node->source(), prefix + "type",
                "a job type of the built-in handlers (" + join(demo_handlers().names()) + ")", describe(*type_node));
      ok = false;
    }
  }
  if (ok) out.jobs.push_back(std::move(job));
}

}  // namespace

const pool_config* run_config::find_pool(std::string_view name) const noexcept {
  for (const auto& p : pools)
    if (p.name == name) return &p;
  return nullptr;
}

config_error::config_error(std::vector<std::string> problems)
    : std::runtime_error(problems.empty() ? std::string("invalid config") : join(problems, "\n")),
      problems_(std::move(problems)) {}

const std::vector<std::string>& log_level_names() {
  static const std::vector<std::string> names(ringmaster::detail::k_log_level_names.begin(),
                                              ringmaster::detail::k_log_level_names.end());
  return names;
}

run_config parse_config(std::string_view text, const std::string& source_name, const fs::path& base_dir,
                        std::string_view path_env) {
  checker c(source_name);
  toml::table root;
  try {
    root = toml::parse(text, std::string_view(source_name));
  } catch (const toml::parse_error& e) {
    const auto& at = e.source().begin;
    throw config_error({source_name + ":" + std::to_string(at.line) + ":" + std::to_string(at.column) +
                        ": expected valid TOML, got a syntax error: " + std::string(e.description())});
  }

  run_config out;
  out.path = source_name;
  const toml::node* pools_node = nullptr;
  const toml::node* jobs_node = nullptr;
  for (const auto& [kp, vp] : in_file_order(root)) {
    const std::string_view n = kp->str();
    if (n == "supervisor") {
      if (auto t = c.table(*vp, "supervisor", "a table ([supervisor])")) read_supervisor(c, *t, out);
    } else if (n == "pools") {
      pools_node = vp;
    } else if (n == "jobs") {
      jobs_node = vp;
    } else {
      c.unknown_key(*kp, key_text(n), k_top_keys);
    }
  }

  // Pools first (jobs refer to them), in file order.
  if (!pools_node) {
    c.problem(1, "pools", "at least one pool table such as [pools.compute]", "none");
  } else if (auto pools = c.table(*pools_node, "pools", "tables of pools such as [pools.compute]")) {
    if (pools->empty()) c.problem(pools_node->source(), "pools", "at least one pool table such as [pools.compute]", "none");
    for (const auto& [kp, vp] : in_file_order(*pools)) {
      const std::string name(kp->str());
      const std::string key = "pools." + key_text(name);
      if (!valid_pool_name(name)) {
        c.problem(kp->source(), key,
                  "a pool name of 1 to " + std::to_string(k_max_pool_name) + " characters from A-Z a-z 0-9 _ . -",
                  quote_text(name));
        continue;
      }
      const toml::table* t = c.table(*vp, key, "a table of pool settings ([" + key + "])");
      if (!t) continue;
      pool_config pool;
      pool.name = name;
      pool.line = kp->source().begin.line;
      read_pool(c, name, *t, base_dir, path_env, pool);
      out.pools.push_back(std::move(pool));
    }
  }

  if (jobs_node) {
    const toml::array* jobs = jobs_node->as_array();
    if (!jobs) {
      c.problem(jobs_node->source(), "jobs", "an array of tables ([[jobs]])", describe(*jobs_node));
    } else {
      for (std::size_t i = 0; i < jobs->size(); ++i) {
        const toml::node& e = *jobs->get(i);
        if (auto t = c.table(e, "jobs[" + std::to_string(i) + "]", "a table ([[jobs]])")) read_job(c, i, *t, out);
      }
    }
  }

  if (!c.problems().empty()) throw config_error(c.problems());
  return out;
}

run_config load_config(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::error_code ec;
  if (!in || fs::is_directory(path, ec)) {
    const int err = errno;
    throw config_error({path + ": expected a readable config file, got " +
                        (fs::is_directory(path, ec) ? std::string("a directory") : std::string(std::strerror(err)))});
  }
  // Read at most one chunk past the limit: a path such as /dev/zero, or a FIFO fed for
  // ever, would otherwise be read until memory runs out.
  std::string text;
  std::array<char, 65536> chunk{};
  while (text.size() <= k_max_config_size && in.read(chunk.data(), chunk.size()).gcount() > 0)
    text.append(chunk.data(), static_cast<std::size_t>(in.gcount()));
  if (in.bad())
    throw config_error({path + ": expected a readable config file, got a read error: " + std::strerror(errno)});
  if (text.size() > k_max_config_size)
    throw config_error({path + ": expected a config file of at most " + std::to_string(k_max_config_size >> 20) +
                        " MiB, got more (an endless stream such as /dev/zero?)"});
  const char* path_env = std::getenv("PATH");
  const fs::path base = fs::absolute(fs::path(path)).parent_path();
  return parse_config(text, path, base, path_env ? path_env : "/usr/local/bin:/usr/bin:/bin");
}

}  // namespace ringmaster::cli
