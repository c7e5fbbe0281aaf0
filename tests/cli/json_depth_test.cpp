// The bound on JSON nesting, checked before every parse of untrusted JSON: job lines (both
// parsers agree), the socket protocol's requests and replies, and results files read by
// --resume. A line 100,000 deep overflowed the stack of the parse (SIGSEGV); the lines
// here are that deep, so each test fails (crashes) without the bound.
#include <gtest/gtest.h>

#include <stdexcept>
#include <string>

#include <ringmaster/cli/jsonl.hpp>
#include <ringmaster/cli/protocol.hpp>
#include <ringmaster/worker/detail/json_depth.hpp>

namespace ringmaster::cli {
namespace {

using ringmaster::detail::json_too_deep;
using ringmaster::detail::k_max_json_depth;

std::string nested(std::size_t depth) { return std::string(depth, '[') + std::string(depth, ']'); }

std::string nested_objects(std::size_t depth) {
  std::string out;
  for (std::size_t i = 0; i < depth; ++i) out += R"({"a": )";
  return out + "1" + std::string(depth, '}');
}

TEST(JsonDepth, CountsBracketsOutsideStringsOnly) {
  EXPECT_FALSE(json_too_deep("[[1]]", 2));
  EXPECT_EQ(json_too_deep("[[[1]]]", 2), 2u);
  EXPECT_EQ(json_too_deep(R"({"a": {"b": [1]}})", 2), 12u);
  EXPECT_FALSE(json_too_deep(R"({"a": {"b": [1]}})", 3));
  EXPECT_FALSE(json_too_deep(R"(["[[[[", "{{{{"])", 1)) << "brackets in strings";
  EXPECT_FALSE(json_too_deep(R"(["\"[[[[\\", "x"])", 1)) << "an escaped quote does not end the string";
  EXPECT_FALSE(json_too_deep("[1], [2], [3]", 1)) << "depth, not count";
  EXPECT_FALSE(json_too_deep("]]]][", 1)) << "a stray closer does not lend depth";
}

TEST(CliJobLine, NestingPastTheLimitIsRejectedNamingItAndBothParsersAgree) {
  const auto line = [](std::size_t payload_depth) {
    return R"({"id": "n", "type": "echo", "payload": )" + nested(payload_depth) + "}";
  };
  parsed_job fast, general;
  // The object is level 1: a payload of k_max_json_depth - 1 levels is the deepest line.
  ASSERT_EQ(parse_job_line(line(k_max_json_depth - 1), fast), "");
  EXPECT_EQ(fast.payload, nested(k_max_json_depth - 1));
  for (const std::size_t depth : {k_max_json_depth, std::size_t{100'000}}) {
    const std::string answer = parse_job_line(line(depth), fast);
    EXPECT_EQ(answer, "nests arrays and objects more than 512 deep (the limit) at column " +
                          std::to_string(std::string_view(R"({"id": "n", "type": "echo", "payload": )").size() + 512));
    EXPECT_EQ(detail::parse_job_line_general(line(depth), general), answer);
  }
  EXPECT_NE(parse_job_line(R"({"type": "echo", "payload": )" + nested_objects(100'000) + "}", fast), "");
}

TEST(CliProtocol, ARequestOrReplyNestedTooDeepIsNeitherAndDoesNotCrash) {
  const std::string deep = R"({"op": "status", "pools": [)" + nested_objects(100'000) + "]}";
  EXPECT_FALSE(parse_request(deep)) << "not a request: parse_job_line then rejects it, naming the limit";
  parsed_job j;
  EXPECT_NE(parse_job_line(deep, j).find("more than 512 deep"), std::string::npos);
  EXPECT_FALSE(parse_reply(deep));
  EXPECT_THROW((void)format_status_table(deep), std::runtime_error);
  EXPECT_THROW((void)format_prometheus(deep), std::runtime_error);
  ASSERT_TRUE(parse_request(R"({"op": "status"})"));
}

TEST(CliResultLine, AResultsFileLineNestedTooDeepIsNoResultLine) {
  EXPECT_FALSE(read_result_line(R"({"id": "a", "status": "ok", "result": )" + nested_objects(100'000) + "}"));
  EXPECT_TRUE(read_result_line(R"({"id": "a", "status": "ok", "result": [[1]]})"));
}

}  // namespace
}  // namespace ringmaster::cli
