// ringmaster/worker/detail/json_depth.hpp — the bound on how deeply JSON arrays and
// objects may nest before anything parses them. Internal: shared by the demo handlers
// (a payload they re-parse) and the `ringmaster` command (job lines, the socket
// protocol, results files), not part of the user API.
//
// Why: building, dumping and destroying a JSON document recurse once per level, so a
// 200 KB line of 100,000 `[` overflows the stack (SIGSEGV) of whoever parses it. A
// pre-scan is cheap (one pass, no allocation) and stops such a line before any parser
// sees it. Pure functions, thread-safe.
#pragma once

#include <cstddef>
#include <optional>
#include <string_view>

namespace ringmaster::detail {

/// The deepest nesting of arrays and objects accepted: `[[1]]` nests 2 deep. Real job
/// payloads nest a handful of levels; 512 leaves room while keeping a parse's stack use
/// small on any thread.
inline constexpr std::size_t k_max_json_depth = 512;

/// The offset of the `[` or `{` that opens level `limit + 1` of `text` (brackets inside
/// strings not counted), or nullopt when `text` nests at most `limit` deep. Does not
/// check that `text` is JSON: the parser that runs next does. Never blocks, never throws.
[[nodiscard]] inline std::optional<std::size_t> json_too_deep(std::string_view text,
                                                              std::size_t limit = k_max_json_depth) noexcept {
  std::size_t depth = 0;
  bool in_string = false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') ++i;  // the escaped character cannot end the string
      else if (c == '"') in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > limit) return i;
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return std::nullopt;
}

}  // namespace ringmaster::detail
