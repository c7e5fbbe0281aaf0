#include <gtest/gtest.h>

#include <random>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>
#include <ringmaster/cli/jsonl.hpp>

namespace ringmaster::cli {
namespace {

TEST(CliJobLine, TheDesignExampleParses) {
  parsed_job j;
  ASSERT_EQ(parse_job_line(R"({"id": "a1", "pool": "compute", "type": "primes", "payload": 1000000})", j), "");
  EXPECT_EQ(j.id, "a1");
  EXPECT_EQ(j.pool, "compute");
  EXPECT_EQ(j.type, "primes");
  EXPECT_EQ(j.payload, "1000000");
}

TEST(CliJobLine, PayloadIsAStringsCharactersOrCompactJson) {
  parsed_job j;
  ASSERT_EQ(parse_job_line(R"({"type": "echo", "payload": "tab\there \u00e9"})", j), "");
  EXPECT_EQ(j.payload, "tab\there \xc3\xa9");
  ASSERT_EQ(parse_job_line(R"({"type": "echo", "payload": {"b": [1, 2.5, null], "a": true}})", j), "");
  EXPECT_EQ(j.payload, R"({"a":true,"b":[1,2.5,null]})");
  ASSERT_EQ(parse_job_line(R"({"type": "echo"})", j), "");
  EXPECT_EQ(j.payload, "");
  EXPECT_EQ(j.id, "");
  EXPECT_EQ(j.pool, "");
}

TEST(CliJobLine, IntegerIdsAreTheirTextAndSaySo) {
  parsed_job j;
  ASSERT_EQ(parse_job_line(R"({"id": 17, "type": "echo"})", j), "");
  EXPECT_EQ(j.id, "17");
  EXPECT_TRUE(j.integer_id);
  ASSERT_EQ(detail::parse_job_line_general(R"({"id": -3, "type": "echo", "payload": 1.5})", j), "");
  EXPECT_EQ(j.id, "-3");
  EXPECT_TRUE(j.integer_id);
  ASSERT_EQ(parse_job_line(R"({"id": "17", "type": "echo"})", j), "");
  EXPECT_FALSE(j.integer_id) << "a string of digits stays a string";
}

TEST(CliResultLine, AnIntegerIdIsWrittenAsAnIntegerAndReadBack) {
  result r;
  r.id = "42";
  r.value = "v";
  std::string line;
  append_result_line(line, r, true);
  EXPECT_EQ(line, R"({"id": 42, "status": "ok", "result": "v", "attempts": 0})" "\n");
  const auto back = read_result_line(line);
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(back->id, "42");
  line.clear();
  r.id = "4\"2";  // not an integer's text: quoted whatever the caller says
  append_result_line(line, r, true);
  EXPECT_FALSE(nlohmann::json::parse(line, nullptr, false).is_discarded()) << line;
}

TEST(CliJobLine, EachMalformationSaysWhatIsWrong) {
  parsed_job j;
  EXPECT_EQ(parse_job_line("{\"type\": \"echo\",", j).rfind("not valid JSON: ", 0), 0u);
  EXPECT_EQ(parse_job_line("[1, 2]", j), "expected a JSON object, got an array");
  // A number no double holds: nlohmann throws out_of_range, not parse_error (fuzzing found
  // it ending the run).
  EXPECT_EQ(parse_job_line(R"({"type": "echo", "payload": 1e999})", j).rfind("not valid JSON: ", 0), 0u);
  EXPECT_EQ(parse_job_line("\"echo\"", j), "expected a JSON object, got a string");
  EXPECT_EQ(parse_job_line("{\"payload\": 1}", j), "missing \"type\" (the job type, a string)");
  EXPECT_EQ(parse_job_line("{\"type\": \"\"}", j), "\"type\" must be a job type (a non-empty string), got a string");
  EXPECT_EQ(parse_job_line("{\"type\": 3}", j), "\"type\" must be a job type (a non-empty string), got an integer");
  EXPECT_EQ(parse_job_line("{\"type\": \"echo\", \"pool\": null}", j),
            "\"pool\" must be a pool's name (a non-empty string), got null");
  EXPECT_EQ(parse_job_line("{\"type\": \"echo\", \"extra\": 1}", j),
            "unknown key \"extra\" (a job line has \"id\", \"pool\", \"type\" and \"payload\" or \"payload_b64\")");
  EXPECT_EQ(parse_job_line("{\"id\": true, \"type\": \"echo\"}", j).rfind("\"id\" must be", 0), 0u);
  EXPECT_EQ(parse_job_line("{\"type\": \"caf\xc3\"}", j), "not valid UTF-8 (byte 0xc3 at column 14)");
}

TEST(CliJobLine, ARejectedLineStillCarriesItsId) {
  parsed_job j;
  EXPECT_NE(parse_job_line(R"({"id": "keep", "payload": 1})", j), "");
  EXPECT_EQ(j.id, "keep");
}

// parse_job_line takes a fast path for the common shape of line; the general parser is
// the reference. Lines built from fragments, valid and not, must get the same answer,
// fields and message, from both.
TEST(CliJobLine, TheFastPathAgreesWithTheGeneralParserOnEveryLine) {
  const std::vector<std::string> keys = {"id", "pool", "type", "payload", "extra", "Type", "i\\u0064"};
  const std::vector<std::string> values = {
      "\"a\"", "\"echo\"", "\"\"", "0", "-0", "17", "-5", "0123", "1.5", "1e3", "2E2", "-",
      "123456789012345678", "-123456789012345678", "1234567890123456789", "99999999999999999999",
      "true", "null", "[1, 2]", "{\"x\": 1}", "\"tab\\there\"", "\"caf\xc3\xa9\"", "\"\\u00e9\"",
      "\"" + std::string(1024, 'x') + "\"", "\"" + std::string(1025, 'x') + "\"", "\"raw\ttab\"", "\"open"};
  const std::vector<std::string> spaces = {"", " ", "  ", "\t", "\r", "\n"};
  std::mt19937 rng(20261122);
  const auto pick = [&](const auto& v) -> const auto& { return v[rng() % v.size()]; };
  std::size_t fast_shaped = 0;
  for (int n = 0; n < 50'000; ++n) {
    std::string line = pick(spaces) + "{";
    const int members = static_cast<int>(rng() % 5);
    for (int m = 0; m < members; ++m) {
      if (m > 0) line += pick(spaces) + ",";
      // Mostly the known keys with string values, so that many lines are well-formed.
      const std::string& key = rng() % 4 != 0 ? keys[rng() % 4] : pick(keys);
      const std::string& value = rng() % 2 != 0 ? values[rng() % 2] : pick(values);
      line += pick(spaces) + "\"" + key + "\"" + pick(spaces) + ":" + pick(spaces) + value;
    }
    line += pick(spaces) + "}" + pick(spaces);
    switch (rng() % 16) {
      case 0: line.resize(rng() % (line.size() + 1)); break;  // truncated
      case 1: line += rng() % 2 != 0 ? "x" : ","; break;        // trailing garbage
      case 2: line.insert(rng() % (line.size() + 1), 1, static_cast<char>(0x80 + rng() % 0x40)); break;
      default: break;
    }
    parsed_job fast;
    parsed_job general;
    const std::string fast_answer = parse_job_line(line, fast);
    const std::string general_answer = detail::parse_job_line_general(line, general);
    ASSERT_EQ(fast_answer, general_answer) << line;
    ASSERT_EQ(fast.id, general.id) << line;
    ASSERT_EQ(fast.integer_id, general.integer_id) << line;
    if (fast_answer.empty()) {
      ++fast_shaped;
      ASSERT_EQ(fast.pool, general.pool) << line;
      ASSERT_EQ(fast.type, general.type) << line;
      ASSERT_EQ(fast.payload, general.payload) << line;
    }
  }
  EXPECT_GT(fast_shaped, 5'000u) << "too few well-formed lines to compare the two parsers on";
}

// A megabyte line is refused with a message of a few hundred bytes, still valid UTF-8.
TEST(CliJobLine, ARejectionQuotesABoundedExcerptCutAtACharacterBoundary) {
  parsed_job j;
  const std::string digits(1'000'000, '7');
  const std::string number = parse_job_line(R"({"type": "echo", "payload": )" + digits + "}", j);
  EXPECT_EQ(number.rfind("not valid JSON: ", 0), 0u) << number.substr(0, 300);
  EXPECT_LT(number.size(), 400u) << number.substr(0, 300);
  EXPECT_NE(number.find("bytes)"), std::string::npos) << number;
  std::string wide;
  for (int i = 0; i < 100'000; ++i) wide += "\xc3\xa9";  // é: two bytes each
  for (const std::string& line : {R"({"type": "echo", ")" + wide + R"(": 1})",
                                  R"({"type": "echo", "payload": 1, "x": ")" + wide + "\"x}"}) {
    const std::string why = parse_job_line(line, j);
    ASSERT_FALSE(why.empty());
    EXPECT_LT(why.size(), 400u) << why.substr(0, 300);
    EXPECT_EQ(first_invalid_utf8(why), std::nullopt) << "cut inside a character: " << why;
  }
  EXPECT_EQ(excerpt("short", 10), "short");
  EXPECT_EQ(excerpt("caf\xc3\xa9!", 4), "caf... (6 bytes)") << "not inside the é";
  std::string quoted;
  append_quoted_excerpt(quoted, "abcdef", 3);
  EXPECT_EQ(quoted, "\"abc\"... (6 bytes)");
}

TEST(CliBase64, RoundTripsEveryLengthAndRefusesWhatIsNotBase64) {
  EXPECT_EQ(base64_encode(""), "");
  EXPECT_EQ(base64_encode("f"), "Zg==");
  EXPECT_EQ(base64_encode("fo"), "Zm8=");
  EXPECT_EQ(base64_encode("foo"), "Zm9v");
  EXPECT_EQ(base64_encode("foobar"), "Zm9vYmFy");
  std::string bytes;
  for (int i = 0; i < 300; ++i) {
    std::size_t bad = 0;
    const auto back = base64_decode(base64_encode(bytes), bad);
    ASSERT_TRUE(back.has_value()) << i;
    ASSERT_EQ(*back, bytes) << i;
    bytes += static_cast<char>(i * 37);
  }
  std::size_t bad = 0;
  EXPECT_EQ(base64_decode("Zm8", bad), "fo") << "padding may be left out";
  EXPECT_FALSE(base64_decode("Zm9v!", bad).has_value());
  EXPECT_EQ(bad, 4u);
  EXPECT_FALSE(base64_decode("Zg=v", bad).has_value()) << "padding inside";
  EXPECT_FALSE(base64_decode("Zm9vY", bad).has_value()) << "a dangling character";
  EXPECT_FALSE(base64_decode("Zh==", bad).has_value()) << "bits set past the end";
  EXPECT_FALSE(base64_decode("Zg===", bad).has_value());
}

TEST(CliJobLine, PayloadB64CarriesBytesThatAreNotUtf8) {
  parsed_job j;
  ASSERT_EQ(parse_job_line(R"({"id": "bin", "type": "echo", "payload_b64": "/wAB"})", j), "");
  EXPECT_EQ(j.payload, std::string("\xff\x00\x01", 3));
  EXPECT_EQ(parse_job_line(R"({"type": "echo", "payload_b64": 7})", j),
            "\"payload_b64\" must be a base64 string, got an integer");
  EXPECT_EQ(parse_job_line(R"({"type": "echo", "payload_b64": "ab$d"})", j).rfind("\"payload_b64\" must be base64", 0),
            0u);
  EXPECT_EQ(parse_job_line(R"({"type": "echo", "payload": "x", "payload_b64": "eA=="})", j),
            "\"payload\" and \"payload_b64\" exclude each other: expected one");
}

TEST(CliResultLine, AResultThatIsNotUtf8IsWrittenAsResultB64) {
  result r;
  r.id = "bin";
  r.value = std::string("\xff\x00\x01", 3);
  std::string line;
  append_result_line(line, r);
  EXPECT_EQ(line, R"({"id": "bin", "status": "ok", "result_b64": "/wAB", "attempts": 0})" "\n");
  line.clear();
  r.value = "caf\xc3\xa9";  // valid UTF-8: a plain result
  append_result_line(line, r);
  EXPECT_NE(line.find("\"result\": \"caf\xc3\xa9\""), std::string::npos) << line;
}

TEST(CliUtf8, FindsTheFirstInvalidByte) {
  EXPECT_EQ(first_invalid_utf8("plain ascii"), std::nullopt);
  EXPECT_EQ(first_invalid_utf8("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"), std::nullopt);
  EXPECT_EQ(first_invalid_utf8("ab\xff"), 2u);
  EXPECT_EQ(first_invalid_utf8("\xc0\xaf"), 0u) << "overlong";
  EXPECT_EQ(first_invalid_utf8("x\xed\xa0\x80"), 1u) << "surrogate";
  EXPECT_EQ(first_invalid_utf8("\xf4\x90\x80\x80"), 0u) << "over U+10FFFF";
  EXPECT_EQ(first_invalid_utf8("\xe2\x82"), 0u) << "cut short";
}

TEST(CliJsonString, EscapesWhatJsonRequiresAndRepairsBadUtf8) {
  std::string out;
  append_json_string(out, "a\"b\\c\nd\te\x01 \xc3\xa9 \xff!");
  EXPECT_EQ(out, "\"a\\\"b\\\\c\\nd\\te\\u0001 \xc3\xa9 \xef\xbf\xbd!\"");
  EXPECT_FALSE(nlohmann::json::parse(out, nullptr, false).is_discarded());
}

TEST(CliResultLine, MatchesTheDesignsFormat) {
  result ok;
  ok.id = "a1";
  ok.value = "78498";
  ok.attempts = 1;
  ok.worker = 2;
  ok.ms = 12.5;
  std::string line;
  append_result_line(line, ok);
  EXPECT_EQ(line, R"({"id": "a1", "status": "ok", "result": "78498", "attempts": 1, "worker": 2, "ms": 12.5})" "\n");

  result crash;
  crash.id = "b7";
  crash.error = error_kind::crash;
  crash.value = "SIGSEGV";
  crash.attempts = 3;
  line.clear();
  append_result_line(line, crash);
  EXPECT_EQ(line, R"({"id": "b7", "status": "failed", "error": {"kind": "crash", "message": "SIGSEGV"}, "attempts": 3})"
                  "\n")
      << "no worker and ms when no worker is named";
  crash.worker = 0;
  crash.ms = 3.0;
  line.clear();
  append_result_line(line, crash);
  EXPECT_NE(line.find(R"("attempts": 3, "worker": 0, "ms": 3.0})"), std::string::npos) << line;
}

TEST(CliResultLine, MillisecondsAreWrittenToTheMicrosecond) {
  const std::pair<double, std::string_view> cases[] = {
      {0.0, "0.0"},          {0.042, "0.042"},  {0.0004, "0.0"},          {0.0006, "0.001"}, {1.5, "1.5"},
      {1234.5678, "1234.568"}, {99.9996, "100.0"}, {-3.0, "0.0"}, {1e300, "0.0"}};
  for (const auto& [ms, text] : cases) {
    result r;
    r.id = "m";
    r.worker = 1;
    r.ms = ms;
    std::string line;
    append_result_line(line, r);
    EXPECT_NE(line.find(R"("ms": )" + std::string(text) + "}\n"), std::string::npos) << ms << " gave " << line;
    EXPECT_FALSE(nlohmann::json::parse(line).is_discarded());
  }
}

TEST(CliResultLine, EveryKindIsWrittenByName) {
  for (const auto kind : {error_kind::crash, error_kind::timeout, error_kind::memory, error_kind::exception,
                          error_kind::rejected, error_kind::stopped}) {
    result r;
    r.id = "x";
    r.error = kind;
    r.value = "why";
    std::string line;
    append_result_line(line, r);
    const auto j = nlohmann::json::parse(line);
    EXPECT_EQ(j["status"], "failed");
    EXPECT_EQ(j["error"]["kind"], std::string(to_string(kind)));
    EXPECT_EQ(j["error"]["message"], "why");
  }
}

TEST(CliResultLine, ReadBackForResume) {
  auto r = read_result_line(R"({"id": "a1", "status": "ok", "result": "1", "attempts": 1})");
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->id, "a1");
  EXPECT_TRUE(r->ok);
  r = read_result_line(R"({"id": "b", "status": "failed", "error": {"kind": "stopped", "message": ""}})");
  ASSERT_TRUE(r.has_value());
  EXPECT_FALSE(r->ok);
  EXPECT_FALSE(read_result_line("{\"id\": \"c\", \"status\": \"o").has_value());
  EXPECT_FALSE(read_result_line("[]").has_value());
  EXPECT_FALSE(read_result_line(R"({"status": "ok"})").has_value());
}

}  // namespace
}  // namespace ringmaster::cli
