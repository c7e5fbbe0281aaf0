// fuzz/job_line_fuzz.cpp — libFuzzer target: one job line, as `ringmaster run` reads it.
//
// Properties checked beyond "no crash, no out-of-bounds read, no UB" (ASan + UBSan):
//  - the fast path and the general parser agree on the answer and every field (the id's
//    JSON type too);
//  - an accepted job's result line reads back with the same id, of the same type, and a
//    result that is not UTF-8 (payload_b64's bytes, say) comes back byte for byte;
//  - a rejection's message is valid UTF-8, so the rejected result line is valid JSON;
//  - a result line built from an accepted job's fields is valid UTF-8 and one line;
//  - no accepted line nests deeper than the limit (a line 100,000 deep overflowed the
//    parse's stack): scripts/fuzz gives this target a max_len long enough to reach it,
//    and the corpus holds a line at the limit and one 100,000 deep.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>
#include <ringmaster/cli/jsonl.hpp>
#include <ringmaster/worker/detail/json_depth.hpp>

namespace {

void require(bool ok) {
  if (!ok) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace ringmaster;
  const std::string_view line(reinterpret_cast<const char*>(data), size);
  cli::parsed_job fast;
  cli::parsed_job general;
  const std::string answer = cli::parse_job_line(line, fast);
  const std::string reference = cli::detail::parse_job_line_general(line, general);
  require(answer == reference);
  require(fast.id == general.id);
  require(fast.integer_id == general.integer_id);
  if (answer.empty()) {
    require(fast.pool == general.pool && fast.type == general.type && fast.payload == general.payload);
    require(!fast.type.empty());
    require(!ringmaster::detail::json_too_deep(line));
  }

  result r;
  r.id = fast.id;
  r.value = answer.empty() ? fast.payload : answer;
  r.error = answer.empty() ? error_kind::none : error_kind::rejected;
  r.worker = answer.empty() ? 0 : -1;
  std::string out;
  const bool integer_id = answer.empty() && fast.integer_id;
  cli::append_result_line(out, r, integer_id);
  require(!cli::first_invalid_utf8(out).has_value());
  require(out.find('\n') == out.size() - 1);
  const auto back = cli::read_result_line(std::string_view(out).substr(0, out.size() - 1));
  require(back.has_value() && back->id == r.id && back->ok == answer.empty());
  if (answer.empty()) {
    // The id keeps its JSON type, and the result's bytes survive whatever they are.
    const auto doc = nlohmann::json::parse(out);
    require(doc.at("id").is_number_integer() == integer_id);
    if (const auto b64 = doc.find("result_b64"); b64 != doc.end()) {
      std::size_t bad_at = 0;
      const auto bytes = cli::base64_decode(b64->get<std::string>(), bad_at);
      require(bytes.has_value() && *bytes == r.value);
    } else {
      require(doc.at("result").get<std::string>() == r.value);
    }
  }
  return 0;
}
