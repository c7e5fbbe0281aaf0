// fuzz/request_fuzz.cpp — libFuzzer target: one line a client sends `ringmaster serve`,
// handled as the server handles it (a request if parse_request says so, else a job line),
// and the same line read as a reply, as the clients read the server's lines.
//
// Properties beyond "no crash, no out-of-bounds read, no UB" (ASan + UBSan):
//  - a line is a request, or a job line, never both;
//  - no line nesting deeper than the limit is parsed (one 100,000 deep overflowed the
//    server's stack and dropped every client): scripts/fuzz gives this target a max_len
//    long enough to reach it, and the corpus holds such a line;
//  - the server's answers built from what was parsed (an error naming the op, a
//    rejection) are valid UTF-8, one line each.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include <ringmaster/cli/jsonl.hpp>
#include <ringmaster/cli/protocol.hpp>
#include <ringmaster/worker/detail/json_depth.hpp>

namespace {

void require(bool ok) {
  if (!ok) std::abort();
}

void require_one_line(const std::string& out) {
  require(!ringmaster::cli::first_invalid_utf8(out).has_value());
  require(out.find('\n') == out.size() - 1);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace ringmaster;
  const std::string_view line(reinterpret_cast<const char*>(data), size);
  const bool too_deep = ringmaster::detail::json_too_deep(line).has_value();
  cli::parsed_job job;
  if (const auto r = cli::parse_request(line)) {
    require(!too_deep);
    require_one_line(cli::error_line("unknown op \"" + r->op + "\"", {r->pool, r->source}));
  } else {
    const std::string problem = cli::parse_job_line(line, job);
    require(!too_deep || !problem.empty());
    result rejected;
    rejected.id = job.id;
    rejected.error = error_kind::rejected;
    rejected.value = problem;
    std::string out;
    cli::append_result_line(out, rejected);
    require_one_line(out);
  }
  if (const auto reply = cli::parse_reply(line)) require(!too_deep && reply->text == line);
  return 0;
}
