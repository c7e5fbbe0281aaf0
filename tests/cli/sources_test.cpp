// Job sources, admission, the id set, --resume and the result sink, in one process.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <cstring>
#include <ringmaster/cli/job_flow.hpp>
#include <ringmaster/cli/job_source.hpp>
#include <ringmaster/cli/line_splitter.hpp>
#include <ringmaster/cli/result_sink.hpp>
#include <ringmaster/cli/resume.hpp>
#include <set>
#include <sstream>
#include <thread>

#include "waits.hpp"

namespace ringmaster::cli {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

struct pipe_pair {
  int r = -1, w = -1;
  pipe_pair() {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) == 0) r = fds[0], w = fds[1];
  }
  ~pipe_pair() {
    close_read();
    close_write();
  }
  void write(const std::string& s) const { ASSERT_EQ(::write(w, s.data(), s.size()), static_cast<ssize_t>(s.size())); }
  void close_read() {
    if (r >= 0) ::close(r);
    r = -1;
  }
  void close_write() {
    if (w >= 0) ::close(w);
    w = -1;
  }
};

// A thread reading `fd` to its end, into `into` (or nowhere).
std::thread collect(int fd, std::string* into) {
  return std::thread([fd, into] {
    char buf[4096];
    for (ssize_t n; (n = ::read(fd, buf, sizeof buf)) > 0;)
      if (into) into->append(buf, static_cast<std::size_t>(n));
  });
}

std::vector<std::string> read_all_lines(line_reader& reader, std::vector<bool>* unterminated = nullptr) {
  std::vector<std::string> out;
  std::string_view line;
  bool cut = false;
  for (;;) {
    const auto st = reader.next(line, cut);
    if (st == line_reader::status::end) break;
    if (st == line_reader::status::too_long) {
      out.emplace_back("<too long>");
      continue;
    }
    if (st != line_reader::status::line) {
      out.emplace_back("<stopped or error>");
      break;
    }
    out.emplace_back(line);
    if (unterminated) unterminated->push_back(cut);
  }
  return out;
}

// Feeds `bytes` to `s` as one read.
void feed(line_splitter& s, std::string_view bytes) {
  const auto room = s.space(bytes.size());
  std::memcpy(room.data(), bytes.data(), bytes.size());
  s.commit(bytes.size());
}

// Every piece `s` gives now: lines as themselves, "<too long>", and "|" for an
// unterminated last line's mark.
std::vector<std::string> pieces(line_splitter& s, bool at_end) {
  std::vector<std::string> out;
  std::string_view line;
  bool cut = false;
  for (;;) {
    const auto p = s.next(line, cut, at_end);
    if (p == line_splitter::piece::more) return out;
    out.emplace_back(p == line_splitter::piece::too_long ? std::string("<too long>") : std::string(line) + (cut ? "|" : ""));
  }
}

TEST(CliLineSplitter, LinesCutAcrossReadsComeOutWholeAndALastOneIsMarked) {
  line_splitter s(64);
  feed(s, "one\ntw");
  EXPECT_EQ(pieces(s, false), (std::vector<std::string>{"one"}));
  feed(s, "o\n\nthr");
  EXPECT_EQ(pieces(s, false), (std::vector<std::string>{"two", ""}));
  EXPECT_EQ(s.held(), "thr");
  feed(s, "ee");
  EXPECT_EQ(pieces(s, true), (std::vector<std::string>{"three|"}));
  EXPECT_EQ(s.line_number(), 4u);
  EXPECT_EQ(s.bytes_consumed(), 14u);
  EXPECT_TRUE(s.held().empty());
}

// A line over the limit is refused as soon as more than max_line bytes of it are held,
// before its newline comes (a socket client may be slow to send it), and what arrives of
// it later is dropped, never held: then the next line is read as usual.
TEST(CliLineSplitter, ALineOverTheLimitIsRefusedOnceAndNeverHeld) {
  line_splitter s(16);
  feed(s, "short\n" + std::string(17, 'x'));
  EXPECT_EQ(pieces(s, false), (std::vector<std::string>{"short", "<too long>"}));
  EXPECT_TRUE(s.held().empty());
  feed(s, std::string(1000, 'x'));
  EXPECT_EQ(pieces(s, false), (std::vector<std::string>{}));
  EXPECT_TRUE(s.held().empty());
  feed(s, "xx\nafter\n" + std::string(40, 'y') + "\nlast");
  // The 40 y's arrive whole, newline and all, in one read: as long, and as refused.
  EXPECT_EQ(pieces(s, true), (std::vector<std::string>{"after", "<too long>", "last|"}));
  EXPECT_EQ(s.line_number(), 5u);
  EXPECT_EQ(s.bytes_consumed(), 6u + 17 + 1000 + 3 + 6 + 41 + 4);
}

TEST(CliLineSplitter, ANewLimitAppliesToTheLinesAfterIt) {
  line_splitter s(4);
  feed(s, "12345678\n");
  s.set_max_line(8);  // a reload raised max_message
  EXPECT_EQ(pieces(s, false), (std::vector<std::string>{"12345678"}));
  s.set_max_line(4);
  feed(s, "12345678\n");
  EXPECT_EQ(pieces(s, false), (std::vector<std::string>{"<too long>"}));
}

TEST(CliLineReader, SplitsLinesAndMarksAnUnterminatedLastOne) {
  pipe_pair p;
  p.write("one\ntwo\n\nthree");
  p.close_write();
  line_reader reader(p.r, -1, 1024);
  std::vector<bool> cut;
  EXPECT_EQ(read_all_lines(reader, &cut), (std::vector<std::string>{"one", "two", "", "three"}));
  EXPECT_EQ(cut, (std::vector<bool>{false, false, false, true}));
  EXPECT_EQ(reader.line_number(), 4u);
  EXPECT_EQ(reader.bytes_consumed(), 14u);
}

TEST(CliLineReader, SkipsALineOverTheLimitWithoutHoldingIt) {
  pipe_pair p;
  std::thread writer([&] {
    p.write("short\n" + std::string(100'000, 'x') + "\nafter\n" + std::string(5000, 'y'));
    p.close_write();
  });
  line_reader reader(p.r, -1, 4096);
  const auto lines = read_all_lines(reader);
  writer.join();
  EXPECT_EQ(lines, (std::vector<std::string>{"short", "<too long>", "after", "<too long>"}));
  EXPECT_EQ(reader.line_number(), 4u);
}

TEST(CliLineReader, LinesSpanningManyReadsAreWhole) {
  pipe_pair p;
  std::string expected;
  std::thread writer([&] {
    for (int i = 0; i < 2000; ++i) {
      const std::string line = std::string(static_cast<std::size_t>(i % 977), 'a' + static_cast<char>(i % 26)) + "\n";
      p.write(line);
    }
    p.close_write();
  });
  line_reader reader(p.r, -1, 4096);
  const auto lines = read_all_lines(reader);
  writer.join();
  ASSERT_EQ(lines.size(), 2000u);
  for (int i = 0; i < 2000; ++i)
    EXPECT_EQ(lines[static_cast<std::size_t>(i)],
              std::string(static_cast<std::size_t>(i % 977), 'a' + static_cast<char>(i % 26)));
}

TEST(CliLineReader, AStopDescriptorEndsABlockedRead) {
  pipe_pair p;  // nothing is ever written: a read would block for ever
  const int stop = ::eventfd(0, EFD_CLOEXEC);
  ASSERT_GE(stop, 0);
  std::thread stopper([&] {
    std::this_thread::sleep_for(50ms);
    const std::uint64_t one = 1;
    ASSERT_EQ(::write(stop, &one, sizeof one), 8);
  });
  line_reader reader(p.r, stop, 1024);
  std::string_view line;
  bool cut = false;
  EXPECT_EQ(reader.next(line, cut), line_reader::status::stopped);
  stopper.join();
  ::close(stop);
}

run_config two_pools() {
  run_config c;
  c.path = "cfg.toml";
  pool_config a;
  a.name = "a";
  pool_config b;
  b.name = "b";
  c.pools = {a, b};
  return c;
}

job_entry entry(std::string id, std::string pool, std::uint64_t line) {
  job_entry e;
  e.id = std::move(id);
  e.pool = std::move(pool);
  e.type = "echo";
  e.source = "jobs.jsonl";
  e.line = line;
  return e;
}

TEST(CliAdmission, GivesSequenceNumbersAndRefusesDuplicates) {
  const run_config c = two_pools();
  job_admission adm(c, nullptr);
  auto e = entry("", "a", 1);
  EXPECT_EQ(adm.admit(e), job_admission::verdict::submit);
  EXPECT_EQ(e.id, "1");
  e = entry("x", "b", 2);
  EXPECT_EQ(adm.admit(e), job_admission::verdict::submit);
  e = entry("x", "a", 3);
  EXPECT_EQ(adm.admit(e), job_admission::verdict::reject);
  EXPECT_EQ(e.rejection, "jobs.jsonl:3: duplicate id \"x\"");
  // An explicit id equal to an earlier sequence number is a duplicate too...
  e = entry("1", "a", 4);
  EXPECT_EQ(adm.admit(e), job_admission::verdict::reject);
  // ...and so is a sequence number an explicit id took earlier.
  e = entry("6", "a", 5);
  EXPECT_EQ(adm.admit(e), job_admission::verdict::submit);
  e = entry("", "a", 6);
  EXPECT_EQ(adm.admit(e), job_admission::verdict::reject);
  EXPECT_EQ(e.id, "6");
}

TEST(CliAdmission, ChecksPoolsAndKeepsEarlierRejections) {
  const run_config c = two_pools();
  job_admission adm(c, nullptr);
  auto e = entry("", "", 1);
  EXPECT_EQ(adm.admit(e), job_admission::verdict::reject);
  EXPECT_EQ(e.rejection, "jobs.jsonl:1: no \"pool\", and the config has more than one (a, b)");
  e = entry("", "c", 2);
  EXPECT_EQ(adm.admit(e), job_admission::verdict::reject);
  EXPECT_EQ(e.rejection, "jobs.jsonl:2: unknown pool \"c\" (the config has a, b)");
  e = entry("", "a", 3);
  e.rejection = "not valid JSON: oops";
  EXPECT_EQ(adm.admit(e), job_admission::verdict::reject);
  EXPECT_EQ(e.rejection, "jobs.jsonl:3: not valid JSON: oops");
  EXPECT_EQ(e.id, "3") << "a rejected line uses up its sequence number";

  run_config one = two_pools();
  one.pools.pop_back();
  job_admission single(one, nullptr);
  e = entry("", "", 1);
  EXPECT_EQ(single.admit(e), job_admission::verdict::submit);
  EXPECT_EQ(e.pool, "a");
}

TEST(CliAdmission, ARejectionQuotesAtMostABoundedExcerpt) {
  const run_config c = two_pools();
  job_admission admission(c, nullptr);
  auto e = entry("", std::string(1'000'000, 'p'), 3);
  ASSERT_EQ(admission.admit(e), job_admission::verdict::reject);
  EXPECT_EQ(e.rejection.rfind("jobs.jsonl:3: unknown pool \"ppp", 0), 0u) << e.rejection.substr(0, 200);
  EXPECT_LT(e.rejection.size(), 300u);
  EXPECT_NE(e.rejection.find("(1000000 bytes)"), std::string::npos) << e.rejection;
  e = entry("", "a", 4);
  e.rejection = std::string(50'000, 'x');  // a reason that quotes too much itself
  ASSERT_EQ(admission.admit(e), job_admission::verdict::reject);
  EXPECT_LE(e.rejection.size(), std::string("jobs.jsonl:4: ").size() + job_admission::k_max_rejection + 20);
}

TEST(CliAdmission, ResumeSkipsIdsAlreadyDone) {
  const run_config c = two_pools();
  id_set done;
  done.insert("2");
  done.insert("named");
  job_admission adm(c, &done);
  auto e = entry("", "a", 1);
  EXPECT_EQ(adm.admit(e), job_admission::verdict::submit);
  e = entry("", "a", 2);
  EXPECT_EQ(adm.admit(e), job_admission::verdict::skip);
  e = entry("named", "a", 3);
  EXPECT_EQ(adm.admit(e), job_admission::verdict::skip);
  e = entry("named", "a", 4);
  EXPECT_EQ(adm.admit(e), job_admission::verdict::reject) << "a skipped id was still seen";
}

TEST(CliConfigJobs, RepeatIsExpandedLazilyWithSuffixedIds) {
  run_config c = two_pools();
  job_template t;
  t.pool = "a";
  t.type = "echo";
  t.payload = "p";
  t.id = "batch";
  t.repeat = 3;
  t.line = 7;
  job_template u = t;
  u.id.clear();
  u.repeat = 1'000'000'000;  // costs nothing until pulled
  c.jobs = {t, u};
  config_job_source src(c);
  job_entry e;
  std::vector<std::string> ids;
  for (int i = 0; i < 5 && src.next(e); ++i) ids.push_back(e.id);
  EXPECT_EQ(ids, (std::vector<std::string>{"batch-1", "batch-2", "batch-3", "", ""}));
  EXPECT_EQ(e.origin(), "cfg.toml:7");
  EXPECT_LT(src.fraction_read(), 0.01);
}

TEST(CliJsonlSource, RejectionsNameTheirLine) {
  pipe_pair p;
  p.write("{\"type\": \"echo\"}\n\n  \nnope\n{\"type\": \"echo\", \"payload\"");
  p.close_write();
  jsonl_job_source src(p.r, "in.jsonl", -1, 1 << 20, 0);
  job_entry e;
  ASSERT_TRUE(src.next(e));
  EXPECT_EQ(e.rejection, "");
  EXPECT_EQ(e.line, 1u);
  ASSERT_TRUE(src.next(e)) << "blank lines are skipped";
  EXPECT_EQ(e.line, 4u);
  EXPECT_EQ(e.rejection.rfind("not valid JSON", 0), 0u) << e.rejection;
  ASSERT_TRUE(src.next(e));
  EXPECT_EQ(e.line, 5u);
  EXPECT_EQ(e.rejection.rfind("truncated last line (no newline at the end, and not valid JSON", 0), 0u) << e.rejection;
  EXPECT_FALSE(src.next(e));
  EXPECT_EQ(src.read_error(), "");
}

TEST(CliIdSet, SequenceNumbersAndOtherIdsAreDistinct) {
  id_set s;
  EXPECT_TRUE(s.insert("7"));
  EXPECT_FALSE(s.insert("7"));
  EXPECT_TRUE(s.insert("07")) << "not the same id as 7";
  EXPECT_TRUE(s.insert("a7"));
  EXPECT_TRUE(s.insert("99999999999"));
  EXPECT_TRUE(s.contains("7"));
  EXPECT_TRUE(s.contains("07"));
  EXPECT_FALSE(s.contains("8"));
  EXPECT_FALSE(s.contains("a8"));
  EXPECT_EQ(s.size(), 4u);
}

TEST(CliIdSet, HoldsManyIdsExactlyEnough) {
  id_set s;
  for (int i = 0; i < 200'000; ++i) {
    ASSERT_TRUE(s.insert("job-" + std::to_string(i)));
    ASSERT_TRUE(s.insert(std::to_string(i)));
  }
  for (int i = 0; i < 200'000; ++i) {
    ASSERT_TRUE(s.contains("job-" + std::to_string(i)));
    ASSERT_FALSE(s.insert(std::to_string(i)));
  }
  EXPECT_FALSE(s.contains("job-200000"));
  EXPECT_EQ(s.size(), 400'000u);
}

class CliResume : public testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/ringmaster-cli-unit-XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    dir_ = pattern;
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

TEST_F(CliResume, ResumeLearnsOkIdsAndCutsAPartialLastLine) {
  const fs::path p = dir_ / "results.jsonl";
  const std::string whole =
      "{\"id\": \"a\", \"status\": \"ok\", \"result\": \"1\", \"attempts\": 1}\n"
      "{\"id\": \"b\", \"status\": \"failed\", \"error\": {\"kind\": \"crash\", \"message\": \"x\"}, \"attempts\": 3}\n"
      "garbage\n";
  std::ofstream(p) << whole << "{\"id\": \"c\", \"status\": \"ok\", \"res";
  const resume_state s = load_resume(p.string());
  EXPECT_TRUE(s.done.contains("a"));
  EXPECT_FALSE(s.done.contains("b"));
  EXPECT_FALSE(s.done.contains("c"));
  EXPECT_EQ(s.lines, 3u);
  EXPECT_EQ(s.unreadable, 1u);
  EXPECT_TRUE(s.truncated_tail);
  std::ifstream in(p);
  std::stringstream text;
  text << in.rdbuf();
  EXPECT_EQ(text.str(), whole);
}

TEST_F(CliResume, ResumeFromNoFileIsEmpty) {
  const resume_state s = load_resume((dir_ / "none.jsonl").string());
  EXPECT_EQ(s.done.size(), 0u);
  EXPECT_FALSE(fs::exists(dir_ / "none.jsonl"));
}

TEST(CliResultSink, WritesWholeLinesInOrder) {
  pipe_pair p;
  std::string got;
  std::thread reader = collect(p.r, &got);
  {
    fd_result_sink sink(p.w, "pipe");
    for (int i = 0; i < 1000; ++i) {
      result r;
      r.id = std::to_string(i);
      r.value = "v";
      sink.push(r);
    }
    sink.close();
    EXPECT_EQ(sink.lines_written(), 1000u);
    EXPECT_EQ(sink.error(), "");
  }
  p.close_write();
  reader.join();
  std::istringstream in(got);
  int i = 0;
  for (std::string line; std::getline(in, line); ++i)
    EXPECT_EQ(line, "{\"id\": \"" + std::to_string(i) + "\", \"status\": \"ok\", \"result\": \"v\", \"attempts\": 0}");
  EXPECT_EQ(i, 1000);
}

TEST(CliResultSink, ALineIsWrittenAsSoonAsItsJobFinishesNotAtClose) {
  pipe_pair p;
  fd_result_sink sink(p.w, "pipe");
  result r;
  r.id = "early";
  sink.push(r);
  pollfd pfd{p.r, POLLIN, 0};
  ASSERT_EQ(::poll(&pfd, 1, 5000), 1) << "the line waited for more lines, or for close()";
  char buf[256];
  const ssize_t n = ::read(p.r, buf, sizeof buf);
  ASSERT_GT(n, 0);
  EXPECT_EQ(std::string(buf, static_cast<std::size_t>(n)),
            "{\"id\": \"early\", \"status\": \"ok\", \"result\": \"\", \"attempts\": 0}\n");
  sink.close();
}

// The state letter of thread `tid` of this process (R running, S sleeping, ...).
char thread_state(pid_t tid) {
  std::ifstream in("/proc/self/task/" + std::to_string(tid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const auto paren = stat.rfind(')');
  return paren == std::string::npos || paren + 2 >= stat.size() ? '?' : stat[paren + 2];
}

std::set<pid_t> thread_ids() {
  std::set<pid_t> out;
  for (const auto& e : fs::directory_iterator("/proc/self/task")) out.insert(std::stoi(e.path().filename().string()));
  return out;
}

// A non-blocking descriptor whose reader lags (a shared terminal, a pipe set O_NONBLOCK
// by its other end): the sink sleeps until there is room, instead of spinning on EAGAIN.
TEST(CliResultSink, ANonBlockingPipeThatIsFullIsWaitedForNotSpunOn) {
  pipe_pair p;
  ASSERT_EQ(::fcntl(p.w, F_SETFL, ::fcntl(p.w, F_GETFL) | O_NONBLOCK), 0);
  const int capacity = ::fcntl(p.w, F_SETPIPE_SZ, 4096);
  ASSERT_GT(capacity, 0);
  const std::set<pid_t> before = thread_ids();
  fd_result_sink sink(p.w, "pipe");
  std::set<pid_t> sink_threads;
  for (pid_t tid : thread_ids())
    if (!before.contains(tid)) sink_threads.insert(tid);
  ASSERT_EQ(sink_threads.size(), 1u);
  const pid_t tid = *sink_threads.begin();

  // Each line is larger than the pipe: once the pipe is full the sink holds bytes it
  // cannot write, so a sleeping sink is one waiting for room.
  constexpr int k_lines = 8;
  for (int i = 0; i < k_lines; ++i) {
    result r;
    r.id = std::to_string(i);
    r.value = std::string(static_cast<std::size_t>(capacity) * 2, 'x');
    sink.push(r);
  }
  bool slept_on_a_full_pipe = false;
  for (const auto deadline = std::chrono::steady_clock::now() + 20s; std::chrono::steady_clock::now() < deadline;
       std::this_thread::sleep_for(1ms)) {
    int queued = 0;
    ASSERT_EQ(::ioctl(p.r, FIONREAD, &queued), 0);
    if (queued == capacity && thread_state(tid) == 'S') {
      slept_on_a_full_pipe = true;
      break;
    }
  }
  EXPECT_TRUE(slept_on_a_full_pipe) << "the sink never slept with the pipe full: it spins on EAGAIN";

  std::string got;
  std::thread reader = collect(p.r, &got);
  sink.close();
  EXPECT_EQ(sink.lines_written(), static_cast<std::uint64_t>(k_lines));
  EXPECT_EQ(sink.error(), "");
  p.close_write();
  reader.join();
  EXPECT_EQ(std::count(got.begin(), got.end(), '\n'), k_lines);
}

TEST(CliResultSink, AClosedPipeIsAnErrorReportedOnce) {
  // As in the CLI: SIGPIPE blocked (inherited by the sink's thread), so a write to a pipe
  // without reader fails with EPIPE instead of killing the process.
  sigset_t pipe_set, old;
  sigemptyset(&pipe_set);
  sigaddset(&pipe_set, SIGPIPE);
  ::pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
  pipe_pair p;
  p.close_read();
  int errors = 0;
  {
    fd_result_sink sink(p.w, "pipe", {}, [&](const std::string&) { ++errors; });
    for (int i = 0; i < 100; ++i) sink.push(result{});
    sink.close();
    EXPECT_NE(sink.error().find("pipe: cannot write results: Broken pipe"), std::string::npos) << sink.error();
  }
  EXPECT_EQ(errors, 1);
  // Consume the pending SIGPIPE before unblocking it.
  const timespec zero{0, 0};
  while (::sigtimedwait(&pipe_set, nullptr, &zero) == SIGPIPE) {
  }
  ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
}

// A disk that fills up in the middle of a batch: the lines written whole are counted as
// written (and reported one by one), the rest as lost, none as both or neither.
TEST(CliResultSink, AWriteCutShortCountsTheWholeLinesWrittenAndTheRestLost) {
  const auto path = fs::temp_directory_path() / ("ringmaster-fsize-" + std::to_string(::getpid()) + ".jsonl");
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  ASSERT_GE(fd, 0);
  // RLIMIT_FSIZE stands in for ENOSPC: with SIGXFSZ blocked a write past it fails (EFBIG)
  // after writing what fits, as a write to a full disk does.
  sigset_t xfsz, old;
  sigemptyset(&xfsz);
  sigaddset(&xfsz, SIGXFSZ);
  ::pthread_sigmask(SIG_BLOCK, &xfsz, &old);
  rlimit saved{};
  ::getrlimit(RLIMIT_FSIZE, &saved);
  rlimit small = saved;
  small.rlim_cur = 1000;
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &small), 0);
  std::uint64_t reported = 0;
  std::uint64_t written = 0, lost = 0;
  std::string error;
  {
    fd_result_sink sink(fd, "results.jsonl", {}, {}, [&](const result&) { ++reported; });
    for (int i = 0; i < 100; ++i) {
      result r;
      r.id = "job-" + std::to_string(1000 + i);  // every line the same length
      r.value = "value";
      sink.push(r);
    }
    sink.close();
    written = sink.lines_written();
    lost = sink.lines_lost();
    error = sink.error();
  }
  ::setrlimit(RLIMIT_FSIZE, &saved);
  const timespec zero{0, 0};
  while (::sigtimedwait(&xfsz, nullptr, &zero) == SIGXFSZ) {
  }
  ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
  ::close(fd);
  std::string line;
  append_result_line(line, [] {
    result r;
    r.id = "job-1000";
    r.value = "value";
    return r;
  }());
  const std::string text = [&] {
    std::ifstream in(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }();
  fs::remove(path);
  EXPECT_EQ(text.size(), 1000u) << "the write filled the file up to the limit";
  EXPECT_EQ(written, 1000u / line.size());
  EXPECT_EQ(reported, written);
  EXPECT_EQ(written + lost, 100u);
  EXPECT_NE(error.find("results.jsonl: cannot write results: File too large"), std::string::npos) << error;
}

TEST(CliResultOrder, LinesLeaveInTheOrderOfTheirPlacesWhateverOrderTheyFinishIn) {
  pipe_pair p;
  std::string got;
  std::thread reader = collect(p.r, &got);
  {
    fd_result_sink sink(p.w, "pipe");
    result_order order(sink, 8);
    std::vector<std::uint64_t> places;
    for (int i = 0; i < 6; ++i) places.push_back(*order.admit());
    for (const int i : {3, 1, 5, 4, 0, 2}) {
      result r;
      r.id = std::to_string(i);
      if (i == 4) {
        order.skip(places[4]);  // never submitted: no line, and it holds nothing up
        continue;
      }
      order.finish(places[static_cast<std::size_t>(i)], r, i == 1);
    }
    EXPECT_EQ(order.held(), 0u);
    EXPECT_EQ(order.peak_held(), 4u) << "3, 1, 5 and the skipped 4 waited for 0";
    sink.close();
  }
  p.close_write();
  reader.join();
  EXPECT_EQ(got,
            "{\"id\": \"0\", \"status\": \"ok\", \"result\": \"\", \"attempts\": 0}\n"
            "{\"id\": 1, \"status\": \"ok\", \"result\": \"\", \"attempts\": 0}\n"
            "{\"id\": \"2\", \"status\": \"ok\", \"result\": \"\", \"attempts\": 0}\n"
            "{\"id\": \"3\", \"status\": \"ok\", \"result\": \"\", \"attempts\": 0}\n"
            "{\"id\": \"5\", \"status\": \"ok\", \"result\": \"\", \"attempts\": 0}\n");
}

// A slow job at the head: the jobs behind it finish, their lines are held, and the
// reader waits once `window` places are out, so that what is held never exceeds the
// window however many jobs follow.
TEST(CliResultOrder, ASlowHeadMakesTheReaderWaitAndHoldsAtMostTheWindow) {
  pipe_pair p;
  std::thread reader = collect(p.r, nullptr);
  {
    fd_result_sink sink(p.w, "pipe");
    constexpr std::size_t window = 16;
    result_order order(sink, window);
    const std::uint64_t head = *order.admit();
    std::atomic<std::uint64_t> admitted{1};
    // The reader: admits and finishes at once every job but the head, 1,000 of them.
    std::thread feeder([&] {
      for (int i = 0; i < 1000; ++i) {
        const auto place = order.admit();
        if (!place) return;
        admitted.fetch_add(1);
        result r;
        r.id = std::to_string(*place);
        order.finish(*place, r, false);
      }
    });
    // It stops at the window: waiting in admit() with window - 1 lines held.
    ASSERT_TRUE(ringmaster::test::eventually([&] { return order.waiting() != 0; }, 20s)) << "admit() never waited";
    EXPECT_EQ(order.waiting(), 1u);
    EXPECT_EQ(admitted.load(), window);
    EXPECT_EQ(order.held(), window - 1);
    // The head finishes: everything flows, never more than the window held.
    result r;
    r.id = "head";
    order.finish(head, r, false);
    feeder.join();
    EXPECT_EQ(admitted.load(), 1001u);
    EXPECT_LE(order.peak_held(), window);
    EXPECT_EQ(order.held(), 0u);
    sink.close();
    EXPECT_EQ(sink.lines_written(), 1001u);
  }
  p.close_write();
  reader.join();
}

// --- The core run and serve share: pulls that never block, a connection's requests
// among its job lines, the one admission path, refusals named by their line.

// What thread `tid` of this process is blocked in (its system call number), or -1.
long syscall_of(pid_t tid) {
  std::ifstream in("/proc/self/task/" + std::to_string(tid) + "/syscall");
  long n = -1;
  return in >> n ? n : -1;
}
bool waits_in_poll(pid_t tid) {
  const long n = syscall_of(tid);
#ifdef SYS_poll
  if (n == SYS_poll) return true;
#endif
  return n == SYS_ppoll;
}
// User plus system CPU time of thread `tid`, in clock ticks.
long cpu_ticks(pid_t tid) {
  std::ifstream in("/proc/self/task/" + std::to_string(tid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::istringstream fields(stat.substr(stat.rfind(')') + 2));  // the name may hold spaces
  std::string f;
  long utime = 0, stime = 0;
  for (int i = 3; fields >> f; ++i) {
    if (i == 14) utime = std::stol(f);
    if (i == 15) {
      stime = std::stol(f);
      break;
    }
  }
  return utime + stime;
}

run_config one_pool() {
  run_config c;
  c.path = "cfg.toml";
  pool_config a;
  a.name = "a";
  c.pools = {a};
  return c;
}

// Keeps what is pushed.
struct kept_sink final : result_sink {
  std::vector<result> results;
  std::vector<bool> integer_ids;
  void push(result r, bool, bool integer_id) override {
    results.push_back(std::move(r));
    integer_ids.push_back(integer_id);
  }
  void close() override {}
  [[nodiscard]] std::string error() const override { return {}; }
};

TEST(CliJobSource, APipeWithNothingNowIsLaterAndItsDescriptorSaysWhenToPullAgain) {
  pipe_pair p;
  jsonl_job_source src(p.r, "in", -1, 1 << 20, 0);
  job_entry e;
  EXPECT_EQ(src.try_next(e), job_source::pull::later) << "an empty pipe must not block the pull";
  EXPECT_EQ(src.wake_fd(), p.r);
  p.write("{\"type\": \"echo\"}\n{\"type\"");
  ASSERT_EQ(src.try_next(e), job_source::pull::job);
  EXPECT_EQ(e.type, "echo");
  EXPECT_EQ(src.try_next(e), job_source::pull::later) << "half a line is not a line";
  p.write(": \"b\"}\n");
  ASSERT_EQ(src.try_next(e), job_source::pull::job);
  EXPECT_EQ(e.type, "b");
  EXPECT_EQ(e.line, 2u);
  p.close_write();
  EXPECT_EQ(src.try_next(e), job_source::pull::end);
}

TEST(CliJobSource, ConfigJobsArePulledTheSameWay) {
  run_config c = one_pool();
  job_template t;
  t.pool = "a";
  t.type = "echo";
  t.repeat = 2;
  c.jobs = {t};
  config_job_source src(c);
  job_entry e;
  EXPECT_EQ(src.try_next(e), job_source::pull::job);
  EXPECT_EQ(src.try_next(e), job_source::pull::job);
  EXPECT_EQ(src.try_next(e), job_source::pull::end);
}

// A reader of a non-blocking pipe (stdin that a shell left O_NONBLOCK) whose writer
// pauses waits in poll() for the next bytes; it does not read again and again on EAGAIN:
// its CPU time stays flat across the pause.
TEST(CliLineReader, ANonBlockingPipeWhoseWriterPausesIsWaitedForNotSpunOn) {
  pipe_pair p;
  ASSERT_EQ(::fcntl(p.r, F_SETFL, ::fcntl(p.r, F_GETFL) | O_NONBLOCK), 0);
  jsonl_job_source src(p.r, "stdin", -1, 1 << 20, 0);
  std::atomic<pid_t> tid{0};
  std::vector<std::string> types;  // the reader's own until it is joined
  std::atomic<int> seen{0};
  std::thread reader([&] {
    tid = static_cast<pid_t>(::syscall(SYS_gettid));
    for (job_entry e; src.next(e);) {
      types.push_back(e.type);
      ++seen;
    }
  });
  p.write("{\"type\": \"one\"}\n");
  ASSERT_TRUE(test::eventually([&] { return tid != 0 && seen == 1 && waits_in_poll(tid); }, 20s));
  const long before = cpu_ticks(tid);
  std::this_thread::sleep_for(300ms);  // the writer's pause: a reader spinning on EAGAIN would burn it
  EXPECT_TRUE(waits_in_poll(tid));
  EXPECT_LE(cpu_ticks(tid) - before, 2) << "the reader used CPU while there was nothing to read";
  p.write("{\"type\": \"two\"}\n");
  p.close_write();
  reader.join();
  EXPECT_EQ(types, (std::vector<std::string>{"one", "two"}));
  EXPECT_EQ(src.read_error(), "");
}

TEST(CliJobSource, AConnectionsRequestsComeOutAmongItsJobsAndHelloRenumbersItsLines) {
  pipe_pair p;
  jsonl_job_source src(p.r, "socket", -1, 1 << 20, 0);
  src.take_requests();
  p.write("{\"id\": 7, \"type\": \"echo\"}\r\n{\"op\": \"hello\", \"source\": \"mine\"}\n\n{\"pool\": 1}\n"
          "{\"op\": \"end\"}\n{\"type\"");
  p.close_write();
  job_entry e;
  ASSERT_EQ(src.try_next(e), job_source::pull::job);
  EXPECT_EQ(e.id, "7");
  EXPECT_TRUE(e.integer_id);
  EXPECT_EQ(e.origin(), "socket:1");
  ASSERT_EQ(src.try_next(e), job_source::pull::request);
  EXPECT_EQ(src.last_request().op, "hello");
  src.rename(src.last_request().source);
  ASSERT_EQ(src.try_next(e), job_source::pull::job);
  EXPECT_EQ(e.origin(), "mine:2") << "numbered from the line after hello, blank lines counted";
  EXPECT_FALSE(e.rejection.empty());
  ASSERT_EQ(src.try_next(e), job_source::pull::request);
  EXPECT_EQ(src.last_request().op, "end");
  ASSERT_EQ(src.try_next(e), job_source::pull::job);
  EXPECT_EQ(e.rejection.find("truncated"), std::string::npos) << "serve words an unterminated line as any other";
  EXPECT_EQ(src.try_next(e), job_source::pull::end);
}

TEST(CliJobFlow, ARejectedEntryGetsItsLineInTheSinkWithItsIdsKind) {
  const run_config c = one_pool();
  job_admission adm(c, nullptr);
  kept_sink sink;
  job_entry e;
  e.id = "12";
  e.integer_id = true;
  e.pool = "nope";
  e.type = "echo";
  e.source = "jobs.jsonl";
  e.line = 3;
  EXPECT_EQ(admit_entry(adm, e, sink, false), admitted::rejected);
  ASSERT_EQ(sink.results.size(), 1u);
  EXPECT_EQ(sink.results[0].id, "12");
  EXPECT_TRUE(sink.integer_ids[0]);
  EXPECT_EQ(sink.results[0].error, error_kind::rejected);
  EXPECT_EQ(sink.results[0].value.rfind("jobs.jsonl:3: unknown pool", 0), 0u) << sink.results[0].value;
  e.id = "13";
  e.pool = "a";
  EXPECT_EQ(admit_entry(adm, e, sink, false), admitted::submit);
  EXPECT_EQ(sink.results.size(), 1u);
}

TEST(CliJobFlow, ALibraryRefusalNamesItsLineAndOtherResultsAreLeftAlone) {
  result refused = rejected_result("1", "payload of 9 bytes is over max_message");
  name_refusal(refused, "in.jsonl", 4);
  EXPECT_EQ(refused.value, "in.jsonl:4: payload of 9 bytes is over max_message");
  result ok;
  ok.value = "fine";
  name_refusal(ok, "in.jsonl", 4);
  EXPECT_EQ(ok.value, "fine");
}

}  // namespace
}  // namespace ringmaster::cli
