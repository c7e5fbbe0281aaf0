// Each class of bad job line, through the real binary: the line gets a result line of
// kind `rejected` whose message names its line number, and the jobs around it still run.
#include <gtest/gtest.h>

#include "cli_harness.hpp"

namespace ringmaster::test {
namespace {

struct bad_line {
  const char* name;
  std::string line;        // written as line 2, between two good lines (unless last)
  std::string fragment;    // what the rejection must say
  bool last = false;       // written as the last line, with no newline after it
  std::string id{};        // the id its result line carries, if the line gave one
};

void PrintTo(const bad_line& b, std::ostream* os) { *os << b.name; }

class CliBadJobLine : public testing::TestWithParam<bad_line> {
 protected:
  temp_dir dir;
};

constexpr const char* k_two_pools = R"(
[pools.a]
workers = 1
[pools.small]
workers = 1
max_message = "64B"
)";

TEST_P(CliBadJobLine, IsRejectedByLineNumberAndTheOthersRun) {
  const bad_line& b = GetParam();
  const std::string good1 = R"({"id": "x", "pool": "a", "type": "echo", "payload": "one"})";
  const std::string good3 = R"({"id": "y", "pool": "a", "type": "echo", "payload": "three"})";
  const std::string text = b.last ? good1 + "\n" + good3 + "\n" + b.line : good1 + "\n" + b.line + "\n" + good3 + "\n";
  const int bad_line_number = b.last ? 3 : 2;
  dir.write("config.toml", k_two_pools);
  dir.write("jobs.jsonl", text);
  const auto r = run_cli({"run", "config.toml", "--jobs", "jobs.jsonl", "--results", "results.jsonl", "--no-progress"},
                         dir);
  EXPECT_EQ(r.code, 1) << r.describe();
  EXPECT_TRUE(r.left_behind.empty());
  const auto lines = parse_lines(read_file(dir / "results.jsonl"));
  ASSERT_EQ(lines.size(), 3u) << r.describe();
  EXPECT_EQ(count_status(lines, "ok"), 2u) << "the other jobs still run";
  ASSERT_EQ(count_kind(lines, "rejected"), 1u);
  const nlohmann::json* rejected = nullptr;
  for (const auto& l : lines)
    if (l["status"] == "failed") rejected = &l;
  const std::string message = (*rejected)["error"]["message"];
  const std::string where = "jobs.jsonl:" + std::to_string(bad_line_number) + ": ";
  EXPECT_EQ(message.rfind(where, 0), 0u) << "the message starts with the line: " << message;
  EXPECT_NE(message.find(b.fragment), std::string::npos) << message.substr(0, 2000);
  EXPECT_LT(message.size(), 1200u) << "a bounded excerpt, not the line: " << message.substr(0, 2000);
  EXPECT_EQ((*rejected)["attempts"], 0);
  EXPECT_FALSE(rejected->contains("worker")) << "it never ran";
  if (!b.id.empty()) {
    EXPECT_EQ((*rejected)["id"], b.id);
  }
}

const bad_line k_bad_lines[] = {
    {"NotJson", R"({"pool": "a", "type": "echo",)", "not valid JSON"},
    {"NotAnObject", R"(["a", "echo"])", "expected a JSON object, got an array"},
    {"NoType", R"({"id": "t", "pool": "a", "payload": 1})", "missing \"type\"", false, "t"},
    {"TypeNotAString", R"({"pool": "a", "type": 7})", "\"type\" must be a job type"},
    {"UnknownPool", R"({"id": "u", "pool": "zzz", "type": "echo"})", "unknown pool \"zzz\" (the config has a, small)",
     false, "u"},
    {"NoPoolAmongSeveral", R"({"type": "echo"})", "no \"pool\", and the config has more than one (a, small)"},
    {"DuplicateId", R"({"id": "x", "pool": "a", "type": "echo"})", "duplicate id \"x\"", false, "x"},
    {"InvalidUtf8", "{\"pool\": \"a\", \"type\": \"echo\", \"payload\": \"caf\xe9\"}", "not valid UTF-8 (byte 0xe9"},
    {"TruncatedLastLine", R"({"pool": "a", "type": "ec)", "truncated last line", true},
    {"UnknownKey", R"({"pool": "a", "type": "echo", "paylod": 1})", "unknown key \"paylod\""},
    {"BadId", R"({"id": 1.5, "pool": "a", "type": "echo"})", "\"id\" must be"},
    {"UnknownTypeOfBuiltinPool", R"({"id": "v", "pool": "a", "type": "prime"})", "no handler for job type 'prime'",
     false, "v"},
    {"PayloadOverMaxMessage", R"({"id": "w", "pool": "small", "type": "echo", "payload": ")" + std::string(100, 'z') + "\"}",
     "payload of 100 bytes exceeds max_message (64 bytes)", false, "w"},
    {"MillionDigitNumber", R"({"pool": "a", "type": "echo", "payload": )" + std::string(1'000'000, '9') + "}",
     "bytes)"},
    {"MegabyteUnknownPool", R"({"pool": ")" + std::string(1'000'000, 'p') + R"(", "type": "echo"})",
     "unknown pool \"ppp"},
    // 100,000 levels in 200 KB: the recursive parse overflowed the stack (SIGSEGV).
    {"NestedTooDeep",
     R"({"id": "d", "pool": "a", "type": "echo", "payload": )" + std::string(100'000, '[') + std::string(100'000, ']') + "}",
     "nests arrays and objects more than 512 deep (the limit)"},
    {"LineTooLong", R"({"pool": "a", "type": "echo", "payload": ")" + std::string(7 << 20, 'z') + "\"}",
     "line longer than"},
};

INSTANTIATE_TEST_SUITE_P(Cli, CliBadJobLine, testing::ValuesIn(k_bad_lines),
                         [](const testing::TestParamInfo<bad_line>& i) { return std::string(i.param.name); });

// A last line without its newline is fine when it is a whole job: files written by hand
// often end so.
TEST(CliJobLines, LastLineWithoutNewlineIsAcceptedWhenWhole) {
  temp_dir dir;
  dir.write("config.toml", "[pools.a]\nworkers = 1\n");
  dir.write("jobs.jsonl", R"({"type": "echo", "payload": 1})" "\n" R"({"type": "echo", "payload": 2})");
  const auto r = run_cli({"run", "config.toml", "--jobs", "jobs.jsonl", "--no-progress"}, dir);
  EXPECT_EQ(r.code, 0) << r.describe();
  EXPECT_EQ(count_status(parse_lines(r.out), "ok"), 2u);
}

// A payload a handler parses again (the demo `crash` reads {"signal": ..., "p": ...} from
// a string payload) is bounded too: 100,000 nested objects crashed the worker (SIGSEGV)
// and cost a restart; now the job fails with the limit, and the worker lives on.
TEST(CliJobLines, AHandlerReparsingADeepPayloadFailsTheJobNotTheWorker) {
  temp_dir dir;
  dir.write("config.toml", "[pools.a]\nworkers = 1\nmax_attempts = 1\n");
  std::string deep;
  for (int i = 0; i < 100'000; ++i) deep += R"({\"a\": )";
  deep += "1" + std::string(100'000, '}');
  dir.write("jobs.jsonl", R"({"id": "deep", "type": "crash", "payload": ")" + deep + "\"}\n" +
                              R"({"id": "after", "type": "echo", "payload": "fine"})" "\n");
  const auto r = run_cli({"run", "config.toml", "--jobs", "jobs.jsonl", "--no-progress"}, dir);
  EXPECT_EQ(r.code, 1) << r.describe();
  EXPECT_TRUE(r.left_behind.empty());
  const auto lines = parse_lines(r.out);
  ASSERT_EQ(lines.size(), 2u) << r.describe();
  const auto* bad = find_id(lines, "deep");
  ASSERT_NE(bad, nullptr);
  EXPECT_EQ((*bad)["error"]["kind"], "exception") << bad->dump();
  EXPECT_NE((*bad)["error"]["message"].get<std::string>().find("more than 512 deep (the limit)"), std::string::npos)
      << bad->dump();
  EXPECT_EQ(find_id(lines, "after")->value("status", ""), "ok");
  EXPECT_NE(r.err.find("0 restarts"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace ringmaster::test
