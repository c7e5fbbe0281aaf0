// A user's program as the worker (protocol = "jsonl", "lines", "exec"), through the real
// binary: each outcome (a result, an error, a crash, a hang past job_timeout, a protocol
// violation, an exit in the middle of a run, a grandchild) is attributed to its own job,
// and nothing is left running.
#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "cli_harness.hpp"

namespace ringmaster::test {
namespace {

class CliProtocols : public testing::Test {
 protected:
  temp_dir dir;

  cli_result run_jobs(const std::string& toml, const std::string& jobs) {
    dir.write("config.toml", toml);
    dir.write("jobs.jsonl", jobs);
    return run_cli({"run", "config.toml", "--jobs", "jobs.jsonl", "--results", "results.jsonl", "--no-progress"}, dir);
  }
  std::vector<nlohmann::json> results() const { return parse_lines(read_file(dir / "results.jsonl")); }
  static std::string message_of(const nlohmann::json* r) {
    return r && r->contains("error") ? (*r)["error"]["message"].get<std::string>() : std::string();
  }
};

// Options of a pool whose jobs fail on purpose: each once, a hang soon, restarts at once.
constexpr const char* k_failing_pool = R"(workers = 2
max_attempts = 1
job_timeout = "1s"
kill_grace = "100ms"
backoff_initial = "1ms"
)";

// A Python worker: the first types compute, the rest are the ways a program can fail.
constexpr const char* k_python_worker = R"(import json, os, signal, subprocess, sys, time
for line in sys.stdin:
    job = json.loads(line)
    t, p = job["type"], job["payload"]
    if t == "square": print(json.dumps({"result": p["n"] * p["n"]}), flush=True)
    elif t == "text": print(json.dumps({"result": job["id"] + ":" + p}), flush=True)
    elif t == "fail": print(json.dumps({"error": "no good: " + p}), flush=True)
    elif t == "segv": os.kill(os.getpid(), signal.SIGSEGV)
    elif t == "hang": time.sleep(3600)
    elif t == "garbage": print("this is not a reply", flush=True)
    elif t == "quit": sys.exit(0)
    elif t == "orphan":
        subprocess.Popen(["sleep", "3600"])
        os.kill(os.getpid(), signal.SIGKILL)
)";

TEST_F(CliProtocols, JsonlPythonWorkerAttributesEachOutcomeToItsJob) {
  dir.write("worker.py", k_python_worker);
  const auto r = run_jobs(R"([pools.py]
command = ["python3", "-u", "worker.py"]
protocol = "jsonl"
)" + std::string(k_failing_pool),
                          R"({"id": "sq", "type": "square", "payload": {"n": 7}}
{"id": "t1", "type": "text", "payload": "hello"}
{"id": "err", "type": "fail", "payload": "bad input"}
{"id": "segv", "type": "segv", "payload": ""}
{"id": "t2", "type": "text", "payload": "after segv"}
{"id": "hang", "type": "hang", "payload": ""}
{"id": "garbage", "type": "garbage", "payload": ""}
{"id": "quit", "type": "quit", "payload": ""}
{"id": "orphan", "type": "orphan", "payload": ""}
{"id": "t3", "type": "text", "payload": "still serving"}
)");
  EXPECT_EQ(r.code, 1) << r.describe();  // some jobs failed
  EXPECT_CLEAN(r);
  const auto lines = results();
  ASSERT_EQ(lines.size(), 10u) << read_file(dir / "results.jsonl");
  EXPECT_EQ((*find_id(lines, "sq"))["result"], "49");
  EXPECT_EQ((*find_id(lines, "t1"))["result"], "t1:hello");
  EXPECT_EQ((*find_id(lines, "t2"))["result"], "t2:after segv");
  EXPECT_EQ((*find_id(lines, "t3"))["result"], "t3:still serving");
  const auto* err = find_id(lines, "err");
  EXPECT_EQ((*err)["error"]["kind"], "exception");
  EXPECT_EQ(message_of(err), "no good: bad input");
  EXPECT_EQ((*find_id(lines, "segv"))["error"]["kind"], "crash");
  EXPECT_NE(message_of(find_id(lines, "segv")).find("SIGSEGV"), std::string::npos) << message_of(find_id(lines, "segv"));
  EXPECT_EQ((*find_id(lines, "hang"))["error"]["kind"], "timeout");
  EXPECT_EQ((*find_id(lines, "garbage"))["error"]["kind"], "crash");
  EXPECT_NE(message_of(find_id(lines, "garbage")).find("broke the jsonl protocol"), std::string::npos)
      << message_of(find_id(lines, "garbage"));
  EXPECT_EQ((*find_id(lines, "quit"))["error"]["kind"], "crash");
  EXPECT_NE(message_of(find_id(lines, "quit")).find("exited with code 0 while it held job quit"), std::string::npos)
      << message_of(find_id(lines, "quit"));
  EXPECT_EQ((*find_id(lines, "orphan"))["error"]["kind"], "crash");
  EXPECT_NE(message_of(find_id(lines, "orphan")).find("SIGKILL"), std::string::npos);
}

TEST_F(CliProtocols, JsonlReplyOverMaxMessageFailsItsJobAndTheWorkerGoesOn) {
  dir.write("worker.py", R"(import json, sys
for line in sys.stdin:
    n = json.loads(line)["payload"]
    print(json.dumps({"result": "x" * int(n)}), flush=True)
)");
  const auto r = run_jobs("[pools.py]\ncommand = [\"python3\", \"worker.py\"]\nprotocol = \"jsonl\"\nworkers = 1\n"
                          "max_message = \"1KiB\"\n",
                          "{\"id\": \"big\", \"payload\": \"100000\", \"type\": \"t\"}\n"
                          "{\"id\": \"small\", \"payload\": \"3\", \"type\": \"t\"}\n");
  EXPECT_EQ(r.code, 1) << r.describe();
  EXPECT_CLEAN(r);
  const auto lines = results();
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ((*find_id(lines, "big"))["status"], "failed");
  EXPECT_NE(message_of(find_id(lines, "big")).find("max_message"), std::string::npos);
  EXPECT_EQ((*find_id(lines, "small"))["result"], "xxx");
}

TEST_F(CliProtocols, LinesShellFilterAttributesEachOutcomeToItsJob) {
  const auto r = run_jobs(R"([pools.sh]
command = ["sh", "-c", "while read -r line; do case \"$line\" in crash) kill -SEGV $$;; hang) sleep 3600;; quit) exit 3;; *) echo \"got:$line\";; esac; done"]
protocol = "lines"
)" + std::string(k_failing_pool),
                          R"({"id": "a", "type": "t", "payload": "one two"}
{"id": "crash", "type": "t", "payload": "crash"}
{"id": "b", "type": "t", "payload": {"k": [1, 2]}}
{"id": "hang", "type": "t", "payload": "hang"}
{"id": "quit", "type": "t", "payload": "quit"}
{"id": "nl", "type": "t", "payload": "two\nlines"}
{"id": "c", "type": "t", "payload": "$HOME; `id`"}
)");
  EXPECT_EQ(r.code, 1) << r.describe();
  EXPECT_CLEAN(r);
  const auto lines = results();
  ASSERT_EQ(lines.size(), 7u) << read_file(dir / "results.jsonl");
  EXPECT_EQ((*find_id(lines, "a"))["result"], "got:one two");
  EXPECT_EQ((*find_id(lines, "b"))["result"], "got:{\"k\":[1,2]}");
  EXPECT_EQ((*find_id(lines, "c"))["result"], "got:$HOME; `id`");
  EXPECT_NE(message_of(find_id(lines, "crash")).find("SIGSEGV"), std::string::npos) << message_of(find_id(lines, "crash"));
  EXPECT_EQ((*find_id(lines, "hang"))["error"]["kind"], "timeout");
  EXPECT_NE(message_of(find_id(lines, "quit")).find("exit code 3"), std::string::npos) << message_of(find_id(lines, "quit"));
  EXPECT_EQ((*find_id(lines, "nl"))["error"]["kind"], "exception");
}

TEST_F(CliProtocols, LinesSedFilterServesManyJobsFromOneProcess) {
  std::string jobs;
  for (int i = 0; i < 200; ++i) jobs += "{\"id\": \"j" + std::to_string(i) + "\", \"type\": \"t\", \"payload\": \"v" + std::to_string(i) + "\"}\n";
  const auto r = run_jobs("[pools.sed]\ncommand = [\"sed\", \"-u\", \"s/v/V/\"]\nprotocol = \"lines\"\nworkers = 2\n",
                          jobs);
  EXPECT_EQ(r.code, 0) << r.describe();
  EXPECT_CLEAN(r);
  const auto lines = results();
  ASSERT_EQ(lines.size(), 200u);
  for (int i = 0; i < 200; ++i)
    EXPECT_EQ((*find_id(lines, "j" + std::to_string(i)))["result"], "V" + std::to_string(i));
}

// Jobs sent ahead reach the program while it runs the one before (their lines are in its
// stdin), each reply is its own job's, in order, and a program that dies or hangs is
// charged the job it was running only: the lines it had not answered go to its
// replacement, uncharged.
TEST_F(CliProtocols, JsonlJobsSentAheadReachTheProgramAndOnlyTheRunningOneIsCharged) {
  // Reads stdin itself (not through Python's buffer), so that it can say how many whole
  // lines were already there when it took each job.
  dir.write("worker.py", R"(import json, os, signal, sys, time
buf = b""
def lines():
    global buf
    while True:
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            yield line
        chunk = os.read(0, 65536)
        if not chunk:
            return
        buf += chunk
for line in lines():
    job = json.loads(line)
    if job["type"] == "die": os.kill(os.getpid(), signal.SIGKILL)
    if job["type"] == "hang": time.sleep(3600)
    print(json.dumps({"id": job["id"], "result": job["id"] + " " + str(buf.count(b"\n"))}), flush=True)
)");
  std::string jobs;
  const auto job_line = [](const std::string& id, const char* type) {
    return "{\"id\": \"" + id + "\", \"type\": \"" + type + "\", \"payload\": \"\"}\n";
  };
  for (int i = 0; i < 300; ++i) {
    const std::string id = "j" + std::to_string(i);
    jobs += job_line(id, i == 100 ? "die" : i == 200 ? "hang" : "echo");
  }
  const auto r = run_jobs(R"([pools.py]
command = ["python3", "worker.py"]
protocol = "jsonl"
workers = 1
max_attempts = 1
job_timeout = "2s"
kill_grace = "100ms"
backoff_initial = "1ms"
)",
                          jobs);
  EXPECT_EQ(r.code, 1) << r.describe();
  EXPECT_CLEAN(r);
  const auto lines = results();
  ASSERT_EQ(lines.size(), 300u) << read_file(dir / "results.jsonl");
  int saw_ahead = 0;
  for (int i = 0; i < 300; ++i) {
    const std::string id = "j" + std::to_string(i);
    const auto* l = find_id(lines, id);
    ASSERT_NE(l, nullptr) << id;
    EXPECT_EQ((*l)["attempts"], 1) << l->dump();
    if (i == 100) {
      EXPECT_EQ((*l)["error"]["kind"], "crash") << l->dump();
      EXPECT_NE(message_of(l).find("SIGKILL"), std::string::npos) << l->dump();
    } else if (i == 200) {
      EXPECT_EQ((*l)["error"]["kind"], "timeout") << l->dump();
    } else {
      ASSERT_EQ((*l)["status"], "ok") << l->dump();
      const std::string result = (*l)["result"];
      ASSERT_EQ(result.substr(0, id.size() + 1), id + " ") << l->dump();
      saw_ahead += std::stoi(result.substr(id.size() + 1)) > 0;
    }
  }
  EXPECT_GT(saw_ahead, 0) << "no job's line was in the program's stdin before it answered the one before";
}

// A reply naming a job ("id") that is not the one due is out of step: the program broke
// the protocol, and the job is retried on a new one.
TEST_F(CliProtocols, JsonlReplyNamingAnotherJobBreaksTheProtocol) {
  dir.write("worker.py", R"(import json, sys
for line in sys.stdin:
    job = json.loads(line)
    print(json.dumps({"id": "not-" + job["id"] if job["type"] == "wrong" else job["id"], "result": "r"}), flush=True)
)");
  const auto r = run_jobs("[pools.py]\ncommand = [\"python3\", \"worker.py\"]\nprotocol = \"jsonl\"\nworkers = 1\n"
                          "max_attempts = 1\n",
                          "{\"id\": \"a\", \"type\": \"wrong\", \"payload\": \"\"}\n"
                          "{\"id\": \"b\", \"type\": \"right\", \"payload\": \"\"}\n");
  EXPECT_EQ(r.code, 1) << r.describe();
  EXPECT_CLEAN(r);
  const auto lines = results();
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ((*find_id(lines, "a"))["error"]["kind"], "crash");
  EXPECT_NE(message_of(find_id(lines, "a")).find("broke the jsonl protocol"), std::string::npos)
      << message_of(find_id(lines, "a"));
  EXPECT_EQ((*find_id(lines, "b"))["result"], "r");
  EXPECT_EQ((*find_id(lines, "b"))["attempts"], 1);
  EXPECT_NE(r.err.find("replied for id \"not-a\" when job a was due"), std::string::npos) << r.err;
}

// A reply when the program holds no job breaks the protocol: the program is killed before
// it is given another job, and the next job goes to a new one, uncharged. With prefetch = 1 a
// program holds one job at a time, so an extra line is always caught (with jobs sent
// ahead it would be taken as the next job's reply, unless replies name their job).
TEST_F(CliProtocols, JsonlReplyWithoutAJobBreaksTheProtocol) {
  dir.write("worker.py", R"(import json, sys
for line in sys.stdin:
    job = json.loads(line)
    reply = json.dumps({"result": job["id"]}) + "\n"
    sys.stdout.write(reply * (2 if job["type"] == "twice" else 1))
    sys.stdout.flush()
)");
  const auto r = run_jobs("[pools.py]\ncommand = [\"python3\", \"worker.py\"]\nprotocol = \"jsonl\"\nworkers = 1\n"
                          "max_attempts = 1\nprefetch = 1\n",
                          "{\"id\": \"a\", \"type\": \"twice\", \"payload\": \"\"}\n"
                          "{\"id\": \"b\", \"type\": \"once\", \"payload\": \"\"}\n");
  EXPECT_EQ(r.code, 0) << r.describe();
  EXPECT_CLEAN(r);
  const auto lines = results();
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ((*find_id(lines, "a"))["result"], "a");
  EXPECT_EQ((*find_id(lines, "b"))["result"], "b");
  EXPECT_EQ((*find_id(lines, "b"))["attempts"], 1);
  EXPECT_NE(r.err.find("broke the jsonl protocol: wrote when it held no job: {\"result\": \"a\"}"), std::string::npos)
      << r.err;
}

// max_jobs_per_worker restarts the program: each process answers at most that many jobs.
TEST_F(CliProtocols, JsonlProgramIsRestartedAfterMaxJobsPerWorker) {
  dir.write("worker.py", R"(import json, os, sys
for line in sys.stdin:
    print(json.dumps({"result": os.getpid()}), flush=True)
)");
  std::string jobs;
  for (int i = 0; i < 12; ++i) jobs += "{\"id\": \"j" + std::to_string(i) + "\", \"type\": \"t\", \"payload\": \"\"}\n";
  const auto r = run_jobs("[pools.py]\ncommand = [\"python3\", \"worker.py\"]\nprotocol = \"jsonl\"\nworkers = 1\n"
                          "max_jobs_per_worker = 3\n",
                          jobs);
  EXPECT_EQ(r.code, 0) << r.describe();
  EXPECT_CLEAN(r);
  std::map<std::string, int> by_pid;
  for (const auto& l : results()) ++by_pid[l["result"].get<std::string>()];
  EXPECT_EQ(by_pid.size(), 4u);
  for (const auto& [pid, n] : by_pid) EXPECT_EQ(n, 3) << pid;
}

TEST_F(CliProtocols, ExecInterpretsNothingInThePayload) {
  const std::string hostile[] = {"two words", "it's \"quoted\"", "$HOME $(touch pwned) `touch pwned`",
                                 "a; touch pwned; b", "first\nsecond", "back\\slash {} *"};
  std::string jobs;
  for (std::size_t i = 0; i < std::size(hostile); ++i)
    jobs += nlohmann::json{{"id", "h" + std::to_string(i)}, {"type", "t"}, {"payload", hostile[i]}}.dump() + "\n";
  const auto r = run_jobs(R"([pools.ex]
command = ["sh", "-c", "printf '%s|' \"$1\"; cat", "sh", "{}"]
protocol = "exec"
workers = 2
)",
                          jobs);
  EXPECT_EQ(r.code, 0) << r.describe();
  EXPECT_CLEAN(r);
  const auto lines = results();
  ASSERT_EQ(lines.size(), std::size(hostile));
  // The argument is the payload, and so is stdin (with a newline, which is dropped).
  for (std::size_t i = 0; i < std::size(hostile); ++i)
    EXPECT_EQ((*find_id(lines, "h" + std::to_string(i)))["result"], hostile[i] + "|" + hostile[i]);
  EXPECT_FALSE(fs::exists(dir / "pwned"));
}

TEST_F(CliProtocols, ExecExitStatusIsAnErrorAndASignalACrash) {
  const auto r = run_jobs(R"([pools.ex]
command = ["sh", "-c", "case \"$1\" in ok) echo fine;; fail) echo first >&2; echo last words >&2; exit 3;; segv) kill -SEGV $$;; hang) sleep 3600;; esac", "sh", "{}"]
protocol = "exec"
workers = 2
max_attempts = 2
job_timeout = "1s"
kill_grace = "100ms"
backoff_initial = "1ms"
)",
                          R"({"id": "ok", "type": "t", "payload": "ok"}
{"id": "fail", "type": "t", "payload": "fail"}
{"id": "segv", "type": "t", "payload": "segv"}
{"id": "hang", "type": "t", "payload": "hang"}
)");
  EXPECT_EQ(r.code, 1) << r.describe();
  EXPECT_CLEAN(r);
  const auto lines = results();
  ASSERT_EQ(lines.size(), 4u);
  EXPECT_EQ((*find_id(lines, "ok"))["result"], "fine");
  EXPECT_EQ((*find_id(lines, "fail"))["error"]["kind"], "exception");
  EXPECT_EQ(message_of(find_id(lines, "fail")), "exit status 3: last words");
  EXPECT_EQ((*find_id(lines, "fail"))["attempts"], 1);  // an error is not retried
  EXPECT_EQ((*find_id(lines, "segv"))["error"]["kind"], "crash");
  EXPECT_NE(message_of(find_id(lines, "segv")).find("SIGSEGV"), std::string::npos);
  EXPECT_EQ((*find_id(lines, "segv"))["attempts"], 2);  // a crash is
  EXPECT_EQ((*find_id(lines, "hang"))["error"]["kind"], "timeout");
}

// A program that exits before it takes its first job is a start failure: the pool gives
// up with the program's own words, and its job is not charged for it.
TEST_F(CliProtocols, ProgramThatExitsBeforeItsFirstJobIsAStartFailure) {
  const auto r = run_jobs("[pools.sh]\ncommand = [\"sh\", \"-c\", \"echo cannot open model.bin >&2; exit 4\"]\n"
                          "protocol = \"jsonl\"\nworkers = 1\n",
                          "{\"id\": \"a\", \"type\": \"t\", \"payload\": \"x\"}\n");
  EXPECT_EQ(r.code, 3) << r.describe();  // a pool gave up
  EXPECT_CLEAN(r);
  EXPECT_NE(r.err.find("pool 'sh' cannot start its workers: cannot open model.bin"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("its program ended before it took its first job"), std::string::npos) << r.err;
  const auto lines = results();
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ((*find_id(lines, "a"))["status"], "failed");
  EXPECT_EQ((*find_id(lines, "a"))["attempts"], 0) << lines[0].dump();
}

}  // namespace
}  // namespace ringmaster::test
