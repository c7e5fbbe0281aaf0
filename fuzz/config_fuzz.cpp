// fuzz/config_fuzz.cpp — libFuzzer target: a config file's text, as `ringmaster run`
// validates it.
//
// Properties beyond "no crash, no out-of-bounds read, no UB": the parser either returns a
// config or throws config_error (nothing else escapes), and every problem it reports
// names the file ("fuzz.toml:") and is valid UTF-8, so it can be printed and logged.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include <ringmaster/cli/config.hpp>
#include <ringmaster/cli/jsonl.hpp>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace ringmaster;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    // No PATH: a pool's `command` can only name a file that exists (/bin/true, say).
    const cli::run_config config = cli::parse_config(text, "fuzz.toml", "/nonexistent", "");
    for (const auto& pool : config.pools)
      if (pool.name.empty()) std::abort();
  } catch (const cli::config_error& e) {
    if (e.problems().empty()) std::abort();
    for (const std::string& p : e.problems())
      if (p.rfind("fuzz.toml", 0) != 0 || cli::first_invalid_utf8(p).has_value()) std::abort();
  }
  return 0;
}
