// ringmaster_options_table — prints README's tables of config options from the option
// table (supervisor/detail/option_table.hpp), so that README cannot drift from what the
// config parser and add_pool accept.
//
//   ringmaster_options_table                 the tables, as markdown, on stdout
//   ringmaster_options_table --check FILE    exit 1 (saying how to fix it) if FILE's text
//                                            between the markers differs from them
//   ringmaster_options_table --write FILE    replace FILE's text between the markers
//
// The markers are the lines <!-- options:begin --> and <!-- options:end -->. The ctest
// test readme.options_table runs --check; scripts/options-table runs --write.
#include <cstdio>
#include <fstream>
#include <iostream>
#include <ringmaster/cli/units.hpp>
#include <ringmaster/supervisor/detail/option_table.hpp>
#include <sstream>
#include <string>

namespace {

using ringmaster::detail::option_kind;
using ringmaster::detail::option_spec;

constexpr std::string_view k_begin = "<!-- options:begin -->";
constexpr std::string_view k_end = "<!-- options:end -->";

std::string value_text(option_kind kind, std::uint64_t v) {
  switch (kind) {
    case option_kind::duration: return "`\"" + ringmaster::cli::format_duration(std::chrono::milliseconds(v)) + "\"`";
    case option_kind::size: return "`\"" + ringmaster::cli::format_size(v) + "\"`";
    case option_kind::flag: return v ? "`true`" : "`false`";
    default: return "`" + std::to_string(v) + "`";
  }
}

template <class Options>
std::string range_text(const option_spec<Options>& s) {
  std::string names;
  switch (s.kind) {
    case option_kind::count:
      return "integer, " + std::to_string(s.min) + " to " + std::to_string(s.max);
    case option_kind::size: return "size, " + value_text(s.kind, s.min) + " to " + value_text(s.kind, s.max);
    case option_kind::duration: return s.min == 0 ? "duration" : "duration, at least " + value_text(s.kind, s.min);
    case option_kind::flag: return "`true` or `false`";
    case option_kind::choice:
      for (const auto& c : s.choices) names += (names.empty() ? "`\"" : ", `\"") + std::string(c) + "\"`";
      return names;
    case option_kind::argv: return "array of strings";
    case option_kind::text: return "string, " + std::to_string(s.min) + " to " + std::to_string(s.max) + " characters";
  }
  return "";
}

template <class Options>
std::string default_text(const option_spec<Options>& s, const Options& defaults) {
  if (!s.get) return s.kind == option_kind::argv ? std::string(s.default_text) : "`\"" + std::string(s.default_text) + "\"`";
  const std::uint64_t v = s.get(defaults);
  if (s.kind == option_kind::choice) return "`\"" + std::string(s.choices[v]) + "\"`";
  // A config cannot write a 0 below its minimum (memory_limit): only its meaning is shown.
  if (v == 0 && !s.zero_means.empty())
    return s.min == 0 ? value_text(s.kind, 0) + ": " + std::string(s.zero_means) : std::string(s.zero_means);
  return value_text(s.kind, v);
}

template <class Table, class Options>
void table(std::ostream& out, std::string_view title, const Table& specs, const Options& defaults) {
  out << "| " << title << " | accepts | default | what it sets |\n| --- | --- | --- | --- |\n";
  for (const auto& s : specs) {
    out << "| `" << s.name << "` | " << range_text(s) << " | " << default_text(s, defaults) << " | " << s.doc << " |\n";
  }
}

std::string tables() {
  std::ostringstream out;
  out << k_begin << "\n";
  table(out, "`[supervisor]`", ringmaster::detail::k_supervisor_options, ringmaster::supervisor_options{});
  out << "\n";
  table(out, "`[pools.NAME]`", ringmaster::detail::k_pool_options, ringmaster::pool_options{});
  out << k_end << "\n";
  return out.str();
}

}  // namespace

int main(int argc, char** argv) {
  const std::string generated = tables();
  if (argc == 1) {
    std::cout << generated;
    return 0;
  }
  const std::string mode = argv[1];
  if (argc != 3 || (mode != "--check" && mode != "--write")) {
    std::fprintf(stderr, "usage: ringmaster_options_table [--check FILE | --write FILE]\n");
    return 2;
  }
  const std::string path = argv[2];
  std::ifstream in(path, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  std::string text = buffer.str();
  const auto begin = text.find(k_begin);
  const auto end = text.find(k_end, begin == std::string::npos ? 0 : begin);
  if (!in || begin == std::string::npos || end == std::string::npos) {
    std::fprintf(stderr, "%s: expected the lines %s and %s around the option tables\n", path.c_str(), k_begin.data(),
                 k_end.data());
    return 1;
  }
  const auto stop = text.find('\n', end);
  const std::size_t length = (stop == std::string::npos ? text.size() : stop + 1) - begin;
  if (mode == "--check") {
    if (text.compare(begin, length, generated) == 0) return 0;
    std::fprintf(stderr,
                 "%s: the option tables differ from the option table (supervisor/include/ringmaster/supervisor/"
                 "detail/option_table.hpp).\nRegenerate them with: scripts/options-table\nExpected:\n%s",
                 path.c_str(), generated.c_str());
    return 1;
  }
  text.replace(begin, length, generated);
  std::ofstream(path, std::ios::binary | std::ios::trunc) << text;
  return 0;
}
