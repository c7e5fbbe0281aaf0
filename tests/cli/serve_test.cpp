// `ringmaster serve` end to end: a real server process and real client processes on its
// Unix socket. Concurrent submitters with the same ids get only their own results, also
// interleaved with another client's; a client killed mid-stream costs nobody else
// anything; scaling under load loses no job and restarts no worker; a bad config on
// reload is refused with run's messages and the running one stays; another uid is
// refused (SO_PEERCRED) and logged; status answers while workers crash; a client that
// stops reading is paused, not buffered for; the socket's place is checked. One line never
// takes the server down or wedges its client (nested too deep, over the size limit, before
// a refused hello: each gets its answer); of servers started at once on one socket exactly
// one serves; SIGHUP reloads; the log and --help say what serve does. Every process is
// bounded in time and checked to leave nothing behind.
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <map>
#include <memory>
#include <regex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "cli_harness.hpp"
#include "privilege.hpp"
#include "proc.hpp"
#include "waits.hpp"

namespace ringmaster::test {
namespace {

using namespace std::chrono_literals;

std::size_t lines_in(const std::string& text) { return static_cast<std::size_t>(std::count(text.begin(), text.end(), '\n')); }

std::string job(const std::string& id, const std::string& pool, const std::string& type, const std::string& payload) {
  return "{\"id\": \"" + id + "\", \"pool\": \"" + pool + "\", \"type\": \"" + type + "\", \"payload\": " + payload + "}\n";
}

class CliServe : public testing::Test {
 protected:
  temp_dir dir;
  const std::string socket = "run/rm.sock";  // relative to dir, every process's cwd
  std::unique_ptr<cli_process> server;

  // Starts `ringmaster serve config.toml --socket run/rm.sock` and waits until it answers.
  // `lifetime`: when the server is SIGKILLed if still running; it must cover the test's waits.
  void start(const std::string& toml, std::chrono::seconds lifetime = 90s) {
    dir.write("config.toml", toml);
    server = std::make_unique<cli_process>(std::vector<std::string>{"serve", "config.toml", "--socket", socket}, dir,
                                           cli_options{.timeout = lifetime});
    ASSERT_TRUE(eventually([&] { return fs::exists(dir / socket) && status_json().contains("pools"); }, 20s))
        << server->err_so_far();
  }
  cli_result client(std::vector<std::string> args, cli_options options = {}) {
    args.insert(args.begin() + 1, {"--socket", socket});
    return run_cli(args, dir, options);
  }
  // A connection of this test process itself, for the protocol at the byte level.
  int connect_raw() {
    const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    const std::string path = (dir / socket).string();
    std::memcpy(addr.sun_path, path.c_str(), path.size());
    EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    return fd;
  }
  // Sends `lines` on a raw connection (closing its sending side if asked) and returns
  // all the server writes until it closes the connection.
  std::string exchange(const std::string& lines, bool shut_wr) {
    const int fd = connect_raw();
    EXPECT_EQ(::send(fd, lines.data(), lines.size(), MSG_NOSIGNAL), static_cast<ssize_t>(lines.size()));
    if (shut_wr) ::shutdown(fd, SHUT_WR);
    std::string got;
    char buf[4096];
    for (ssize_t n; (n = ::read(fd, buf, sizeof buf)) > 0;) got.append(buf, static_cast<std::size_t>(n));
    ::close(fd);
    return got;
  }
  nlohmann::json status_json() {
    const auto r = run_cli({"status", "--socket", socket, "--json"}, dir, {.timeout = 20s});
    if (r.code != 0) return nlohmann::json::object();
    return nlohmann::json::parse(r.out, nullptr, false);
  }
  const nlohmann::json* pool_of(const nlohmann::json& st, const std::string& name) {
    for (const auto& p : st["pools"])
      if (p["name"] == name && !p["removed"].get<bool>()) return &p;
    return nullptr;
  }
  // Drains the server and waits for it: it exits 0 and leaves nothing behind.
  cli_result finish() {
    const auto d = client({"drain"});
    EXPECT_EQ(d.code, 0) << d.describe();
    auto r = server->wait();
    EXPECT_EQ(r.code, 0) << r.describe();
    EXPECT_CLEAN(r);
    EXPECT_FALSE(fs::exists(dir / socket)) << "the socket file stays after the server exits";
    return r;
  }
};

TEST_F(CliServe, ConcurrentSubmittersWithTheSameIdsGetOnlyTheirOwnResults) {
  start("[pools.compute]\nworkers = 2\n");
  struct stat st{};
  ASSERT_EQ(::stat((dir / socket).c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_EQ(::stat((dir / "run").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);

  // Interleaved: A has sent half its jobs and holds its connection while B comes, runs
  // the same ids and goes; then A sends the rest.
  cli_process a({"submit", "--socket", socket, "-"}, dir, {.stdin_pipe = true, .timeout = 60s});
  std::string first, second, b_jobs;
  for (int i = 1; i <= 5; ++i) first += job("j" + std::to_string(i), "compute", "echo", "\"A-" + std::to_string(i) + "\"");
  for (int i = 6; i <= 10; ++i) second += job("j" + std::to_string(i), "compute", "echo", "\"A-" + std::to_string(i) + "\"");
  for (int i = 1; i <= 20; ++i) b_jobs += job("j" + std::to_string(i), "compute", "echo", "\"B-" + std::to_string(i) + "\"");
  ASSERT_TRUE(a.write_stdin(first));
  ASSERT_TRUE(eventually([&] { return lines_in(a.out_so_far()) == 5; }, 20s)) << a.err_so_far();
  dir.write("b.jsonl", b_jobs);
  const auto b = client({"submit", "b.jsonl"});
  ASSERT_EQ(b.code, 0) << b.describe();
  ASSERT_TRUE(a.write_stdin(second));
  a.close_stdin();
  const auto ra = a.wait();
  ASSERT_EQ(ra.code, 0) << ra.describe();
  EXPECT_CLEAN(ra);
  for (const auto& [r, who, n] : {std::tuple{&ra, "A-", 10}, std::tuple{&b, "B-", 20}}) {
    const auto lines = parse_lines(r->out);
    ASSERT_EQ(lines.size(), static_cast<std::size_t>(n)) << r->out;
    for (const auto& l : lines) {
      EXPECT_EQ(l["status"], "ok") << l;
      EXPECT_EQ(l["result"], std::string(who) + l["id"].get<std::string>().substr(1)) << l;
    }
  }

  // Four at once, 300 jobs each, every one with ids j1..j300.
  std::vector<std::unique_ptr<cli_process>> many;
  for (int k = 0; k < 4; ++k) {
    std::string jobs;
    for (int i = 1; i <= 300; ++i)
      jobs += job("j" + std::to_string(i), "compute", "echo", "\"C" + std::to_string(k) + "-" + std::to_string(i) + "\"");
    dir.write("c" + std::to_string(k) + ".jsonl", jobs);
  }
  for (int k = 0; k < 4; ++k)
    many.push_back(std::make_unique<cli_process>(
        std::vector<std::string>{"submit", "--socket", socket, "c" + std::to_string(k) + ".jsonl"}, dir));
  for (int k = 0; k < 4; ++k) {
    const auto r = many[static_cast<std::size_t>(k)]->wait();
    ASSERT_EQ(r.code, 0) << r.describe();
    const auto lines = parse_lines(r.out);
    ASSERT_EQ(lines.size(), 300u);
    std::set<std::string> ids;
    for (const auto& l : lines) {
      ids.insert(l["id"].get<std::string>());
      EXPECT_EQ(l["result"], "C" + std::to_string(k) + "-" + l["id"].get<std::string>().substr(1)) << l;
    }
    EXPECT_EQ(ids.size(), 300u);
  }
  finish();
}

TEST_F(CliServe, ClientKilledMidStreamLosesNobodyElsesWork) {
  start("[pools.compute]\nworkers = 2\n");
  cli_process a({"submit", "--socket", socket, "-"}, dir, {.stdin_pipe = true, .timeout = 60s});
  std::string jobs;
  for (int i = 1; i <= 200; ++i) jobs += job("a" + std::to_string(i), "compute", "sleep", "2");
  ASSERT_TRUE(a.write_stdin(jobs));
  ASSERT_TRUE(eventually([&] { return lines_in(a.out_so_far()) >= 10; }, 20s)) << a.err_so_far();
  a.signal(SIGKILL);
  const auto ra = a.wait();
  EXPECT_EQ(ra.signal, SIGKILL);

  std::string mine;
  for (int i = 1; i <= 50; ++i) mine += job("a" + std::to_string(i), "compute", "echo", "\"b" + std::to_string(i) + "\"");
  dir.write("b.jsonl", mine);
  const auto b = client({"submit", "b.jsonl"});
  ASSERT_EQ(b.code, 0) << b.describe();
  const auto lines = parse_lines(b.out);
  ASSERT_EQ(lines.size(), 50u);
  for (const auto& l : lines) EXPECT_EQ(l["result"], "b" + l["id"].get<std::string>().substr(1)) << l;

  // Every job the killed client had sent (as many as the server says it accepted) still
  // ran: their results were dropped, not their work.
  std::smatch m;
  std::string log;
  ASSERT_TRUE(eventually([&] {
    log = server->err_so_far();
    return std::regex_search(log, m, std::regex(R"(went away \(.*\) with (\d+) of its (\d+) job\(s\) unanswered)"));
  }, 10s)) << log;
  const int accepted = std::stoi(m[2]);
  EXPECT_GE(accepted, 10);
  ASSERT_TRUE(eventually([&] {
    const auto st = status_json();
    const auto* p = st.contains("pools") ? pool_of(st, "compute") : nullptr;
    return p && (*p)["completed"].get<int>() == 50 + accepted && (*p)["queued"] == 0 && (*p)["in_flight"] == 0;
  }, 30s)) << accepted << " accepted; " << status_json().dump();
  finish();
}

TEST_F(CliServe, ScaleUpAndDownUnderLoadLosesNoJobAndRestartsNoWorker) {
  start("[pools.compute]\nworkers = 2\n");
  const auto before = status_json();
  const int slot0 = (*pool_of(before, "compute"))["workers"][0]["pid"].get<int>();
  std::string jobs;
  for (int i = 1; i <= 400; ++i) jobs += job("s" + std::to_string(i), "compute", "sleep", "2");
  dir.write("jobs.jsonl", jobs);
  cli_process sub({"submit", "--socket", socket, "jobs.jsonl"}, dir);
  const std::pair<std::size_t, std::string> steps[] = {{40, "4"}, {140, "1"}, {200, "3"}};
  for (const auto& [after, n] : steps) {
    ASSERT_TRUE(eventually([&] { return lines_in(sub.out_so_far()) >= after; }, 30s)) << sub.err_so_far();
    const auto s = client({"scale", "compute", n});
    ASSERT_EQ(s.code, 0) << s.describe();
  }
  const auto r = sub.wait();
  ASSERT_EQ(r.code, 0) << r.describe();
  const auto lines = parse_lines(r.out);
  ASSERT_EQ(lines.size(), 400u);
  std::set<std::string> ids;
  for (const auto& l : lines) {
    ids.insert(l["id"].get<std::string>());
    EXPECT_EQ(l["attempts"], 1) << l;
  }
  EXPECT_EQ(ids.size(), 400u);
  ASSERT_TRUE(eventually([&] {
    const auto st = status_json();
    const auto* p = st.contains("pools") ? pool_of(st, "compute") : nullptr;
    return p && (*p)["workers"].size() == 3 && (*p)["workers"][2]["state"] == "ready";
  }, 20s));
  const auto st = status_json();
  EXPECT_EQ((*pool_of(st, "compute"))["restarts"], 0);
  EXPECT_EQ((*pool_of(st, "compute"))["workers"][0]["pid"], slot0) << "slot 0 was never to be touched";
  // Out of range, or an unknown pool: refused as bad usage.
  EXPECT_EQ(client({"scale", "compute", "0"}).code, 2);
  EXPECT_EQ(client({"scale", "nope", "2"}).code, 2);
  finish();
}

// Scaling to the documented maximum of 1,024 workers used to wedge the server: the
// supervisor and the fork server each blocked sending to the other, and scale, status,
// submit and SIGTERM all went unanswered. At 1,024 workers every job runs, status answers,
// and SIGTERM stops the server cleanly.
TEST_F(CliServe, ScaleToThe1024WorkerMaximumRunsJobsAnswersStatusAndStopsOnSigterm) {
  rlimit nofile{};
  ::getrlimit(RLIMIT_NOFILE, &nofile);
  if (nofile.rlim_max < 3200) GTEST_SKIP() << "RLIMIT_NOFILE's hard limit " << nofile.rlim_max << " is below what 1,024 workers need";
  // A small max_message keeps each worker's rings (reserved up front) small.
  // The server lives as long as the waits below add up to (slow under ThreadSanitizer,
  // where each of the 1,024 forks copies its shadow memory).
  start("[pools.compute]\nworkers = 2\nmax_message = \"4KiB\"\nstart_timeout = \"120s\"\n", 400s);
  const auto s = client({"scale", "compute", "1024"}, {.timeout = 60s});
  ASSERT_EQ(s.code, 0) << s.describe();
  ASSERT_TRUE(eventually([&] {
    const auto st = status_json();
    const auto* p = st.contains("pools") ? pool_of(st, "compute") : nullptr;
    if (!p || (*p)["workers"].size() != 1024) return false;
    for (const auto& w : (*p)["workers"])
      if (w["state"] != "ready") return false;
    return true;
  }, 120s)) << server->err_so_far();
  std::string jobs;
  for (int i = 1; i <= 2048; ++i) jobs += job("w" + std::to_string(i), "compute", "echo", std::to_string(i));
  dir.write("jobs.jsonl", jobs);
  const auto r = client({"submit", "jobs.jsonl"}, {.timeout = 120s});
  ASSERT_EQ(r.code, 0) << r.describe();
  const auto lines = parse_lines(r.out);
  ASSERT_EQ(lines.size(), 2048u);
  for (const auto& l : lines) EXPECT_EQ(l["status"], "ok") << l;
  server->signal(SIGTERM);
  const auto done = server->wait();
  EXPECT_EQ(done.code, 0) << done.describe();
  EXPECT_CLEAN(done);
  EXPECT_FALSE(fs::exists(dir / socket)) << "the socket file stays after the server exits";
}

TEST_F(CliServe, ReloadRefusesABadConfigWithRunsMessagesAndAppliesAGoodOne) {
  const std::string v1 = "[pools.a]\nworkers = 1\n\n[pools.b]\nworkers = 1\n";
  start(v1);
  const auto st1 = status_json();
  const auto a_pid = (*pool_of(st1, "a"))["workers"][0]["pid"];
  const auto b_pid = (*pool_of(st1, "b"))["workers"][0]["pid"];

  dir.write("config.toml", "[pools.a]\nworkers = \"two\"\n\n[pools.b]\njob_timeout = \"5 parsecs\"\n");
  const auto bad = client({"reload"});
  EXPECT_EQ(bad.code, 2) << bad.describe();
  const auto run = run_cli({"run", "config.toml", "--no-progress"}, dir);
  ASSERT_EQ(run.code, 2);
  EXPECT_NE(run.err.find("config.toml:2: pools.a.workers"), std::string::npos) << run.err;
  EXPECT_NE(bad.err.find(run.err), std::string::npos) << "reload:\n" << bad.err << "run:\n" << run.err;
  const auto st2 = status_json();
  EXPECT_EQ((*pool_of(st2, "a"))["workers"][0]["pid"], a_pid);
  EXPECT_EQ((*pool_of(st2, "b"))["workers"][0]["pid"], b_pid);
  dir.write("j.jsonl", job("x", "a", "echo", "1") + job("y", "b", "echo", "2"));
  EXPECT_EQ(client({"submit", "j.jsonl"}).code, 0);

  // a unchanged, b changed (restarted), c added.
  dir.write("config.toml", v1 + "max_attempts = 2\n\n[pools.c]\nworkers = 1\n");
  const auto good = client({"reload"});
  ASSERT_EQ(good.code, 0) << good.describe();
  EXPECT_NE(good.err.find("added c; restarted b"), std::string::npos) << good.err;
  ASSERT_TRUE(eventually([&] {
    const auto st = status_json();
    const auto* c = st.contains("pools") ? pool_of(st, "c") : nullptr;
    return c && (*c)["workers"][0]["state"] == "ready" && st["pools"].size() == 3;
  }, 20s)) << status_json().dump();
  const auto st3 = status_json();
  EXPECT_EQ((*pool_of(st3, "a"))["workers"][0]["pid"], a_pid) << "an unchanged pool is not restarted";
  EXPECT_NE((*pool_of(st3, "b"))["workers"][0]["pid"], b_pid) << "a changed pool is restarted";
  dir.write("j.jsonl", job("x", "c", "echo", "1") + job("y", "b", "echo", "2"));
  EXPECT_EQ(client({"submit", "j.jsonl"}).code, 0);

  // c removed again: its name is unknown to new jobs.
  dir.write("config.toml", v1 + "max_attempts = 2\n");
  ASSERT_EQ(client({"reload"}).code, 0);
  dir.write("j.jsonl", job("x", "c", "echo", "1"));
  const auto gone = client({"submit", "j.jsonl"});
  EXPECT_EQ(gone.code, 1);
  EXPECT_NE(gone.out.find("j.jsonl:1: unknown pool \\\"c\\\""), std::string::npos) << gone.out;
  finish();
}

TEST_F(CliServe, AnotherUidIsRefusedAndLogged) {
  RINGMASTER_REQUIRE_ROOT("to run a client as another user (setpriv)");
  start("[pools.compute]\nworkers = 1\n");
  // Opened up for this test only, so that the kernel lets uid 65534 connect and the
  // server's SO_PEERCRED check is what refuses it.
  fs::permissions(dir.path(), fs::perms::owner_all | fs::perms::group_exec | fs::perms::others_exec);
  fs::permissions(dir / "run", fs::perms::owner_all | fs::perms::group_exec | fs::perms::others_exec);
  fs::permissions(dir / socket, fs::perms::owner_read | fs::perms::owner_write | fs::perms::others_read |
                                    fs::perms::others_write | fs::perms::group_read | fs::perms::group_write);
  const auto r = run_cli({"status", "--socket", socket}, dir,
                         {.run_under = {"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"}});
  EXPECT_EQ(r.code, 3) << r.describe();
  EXPECT_NE(r.err.find("refused: uid 65534"), std::string::npos) << r.err;
  EXPECT_EQ(r.out, "");
  EXPECT_TRUE(eventually([&] { return server->err_so_far().find("refused a connection from uid 65534") != std::string::npos; }, 10s))
      << server->err_so_far();
  EXPECT_EQ(client({"status"}).code, 0) << "the owner still gets in";
  finish();
}

TEST_F(CliServe, StatusAnswersWhileWorkersCrash) {
  start("[pools.crashy]\nworkers = 2\nmax_attempts = 1\nmax_restarts = 100\n");
  std::string jobs;
  for (int i = 1; i <= 100; ++i) {
    jobs += job("s" + std::to_string(i), "crashy", "sleep", "4");
    if (i % 10 == 0) jobs += job("c" + std::to_string(i), "crashy", "crash", R"({"signal": "SEGV", "p": 1.0})");
  }
  dir.write("jobs.jsonl", jobs);
  cli_process sub({"submit", "--socket", socket, "jobs.jsonl"}, dir);
  // Asked again and again while the jobs run: every answer comes, and some come while
  // workers have crashed and jobs are still to run.
  int answers = 0, mid_crash = 0;
  while (lines_in(sub.out_so_far()) < 110) {
    const auto st = status_json();
    ASSERT_TRUE(st.contains("pools")) << "status failed while workers crash";
    const auto& p = st["pools"][0];
    ASSERT_EQ(p["workers"].size(), 2u);
    ++answers;
    if (p["restarts"].get<int>() > 0 && p["completed"].get<int>() + p["failed"].get<int>() < 110) ++mid_crash;
    if (answers > 2000) break;
  }
  EXPECT_GT(mid_crash, 0) << answers << " answers, none while crashing";
  const auto table = client({"status"});
  EXPECT_EQ(table.code, 0);
  EXPECT_NE(table.out.find("pool crashy"), std::string::npos) << table.out;
  const auto r = sub.wait();
  EXPECT_EQ(r.code, 1) << r.describe();  // some jobs failed
  const auto lines = parse_lines(r.out);
  EXPECT_EQ(lines.size(), 110u);
  EXPECT_EQ(count_kind(lines, "crash"), 10u);
  EXPECT_EQ(count_status(lines, "ok"), 100u);
  const auto st = status_json();
  unsigned segv = 0;
  for (const auto& w : st["pools"][0]["workers"]) segv += w["restarts_by_cause"].value("SIGSEGV", 0u);
  EXPECT_EQ(segv, 10u) << st.dump();
  const auto prom = client({"status", "--prometheus"});
  EXPECT_NE(prom.out.find("ringmaster_worker_restarts_total{pool=\"crashy\",slot=\"0\",cause=\"SIGSEGV\"}"), std::string::npos)
      << prom.out;
  finish();
}

// The fork servers are in status (JSON, table, Prometheus): killing the standby shows a
// new one, killing the active server shows a promotion, and the jobs still run.
TEST_F(CliServe, StatusShowsTheForkServersThroughTheirDeaths) {
  start("[pools.compute]\nworkers = 2\n");
  auto servers = [&] { return status_json().value("fork_servers", nlohmann::json::object()); };
  auto fs0 = servers();
  const int active = fs0.value("active_pid", 0), standby = fs0.value("standby_pid", 0);
  ASSERT_GT(active, 0) << fs0.dump();
  ASSERT_GT(standby, 0) << fs0.dump();
  EXPECT_EQ(fs0.value("promotions", -1), 0);
  const auto table = client({"status"});
  EXPECT_NE(table.out.find("fork servers: active pid " + std::to_string(active) + ", standby pid " +
                           std::to_string(standby) + ", promotions 0"),
            std::string::npos)
      << table.out;

  ASSERT_EQ(::kill(standby, SIGKILL), 0);
  ASSERT_TRUE(eventually([&] {
    const auto fs = servers();
    return fs.value("standby_pid", 0) > 0 && fs.value("standby_pid", 0) != standby;
  }, 20s)) << servers().dump();
  ASSERT_EQ(::kill(active, SIGKILL), 0);
  ASSERT_TRUE(eventually([&] {
    const auto fs = servers();
    return fs.value("promotions", 0) == 1 && fs.value("active_pid", 0) != active && fs.value("standby_pid", 0) > 0;
  }, 20s)) << servers().dump();

  std::string jobs;
  for (int i = 1; i <= 20; ++i) jobs += job("p" + std::to_string(i), "compute", "primes", "1000");
  dir.write("jobs.jsonl", jobs);
  const auto sub = client({"submit", "jobs.jsonl"});
  EXPECT_EQ(sub.code, 0) << sub.describe();
  EXPECT_EQ(count_status(parse_lines(sub.out), "ok"), 20u);
  const auto prom = client({"status", "--prometheus"});
  EXPECT_NE(prom.out.find("\nringmaster_fork_server_promotions_total 1\n"), std::string::npos) << prom.out;
  EXPECT_NE(prom.out.find("\nringmaster_fork_server_standby_up 1\n"), std::string::npos) << prom.out;
  finish();
}

TEST_F(CliServe, AClientThatStopsReadingIsPausedAndSlowsNobodyElse) {
  start("[pools.compute]\nworkers = 2\n");
  // A raw client that sends 30000 jobs with 1 KB results and never reads one.
  const int fd = connect_raw();
  constexpr int k_jobs = 30000;
  std::atomic<int> sent{0};
  std::thread writer([&] {
    const std::string payload = "\"" + std::string(1000, 'x') + "\"";
    for (int i = 0; i < k_jobs; ++i) {
      const std::string line = job("s" + std::to_string(i), "compute", "echo", payload);
      if (::send(fd, line.data(), line.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(line.size())) return;
      ++sent;
    }
  });
  // The server stops reading it: its pool goes idle, twice in a row with nothing more
  // done, while the writer still has lines it cannot send.
  int last = -1;
  ASSERT_TRUE(eventually([&] {
    const auto st = status_json();
    const auto* p = st.contains("pools") ? pool_of(st, "compute") : nullptr;
    if (!p || (*p)["queued"] != 0 || (*p)["in_flight"] != 0) return false;
    const int done = (*p)["completed"].get<int>();
    const bool still = done == last && done > 0;
    last = done;
    return still;
  }, 60s));
  EXPECT_LT(sent.load(), k_jobs) << "the stalled client could send everything";
  // Accepted at most: the result window plus what fits in k_out_limit and the kernel's
  // socket buffers (1 KB results).
  EXPECT_LT(last, 4096 + 8000) << "jobs accepted from a client that reads nothing";
  // Others are served meanwhile.
  std::string jobs;
  for (int i = 1; i <= 20; ++i) jobs += job("s" + std::to_string(i), "compute", "echo", "\"other\"");
  dir.write("other.jsonl", jobs);
  const auto other = client({"submit", "other.jsonl"});
  EXPECT_EQ(other.code, 0) << other.describe();
  EXPECT_EQ(parse_lines(other.out).size(), 20u);
  ::shutdown(fd, SHUT_RDWR);
  writer.join();
  ::close(fd);
  // SIGTERM stops the server: exit 0, the socket file removed, nothing left behind.
  server->signal(SIGTERM);
  const auto r = server->wait();
  EXPECT_EQ(r.code, 0) << r.describe();
  EXPECT_CLEAN(r);
  EXPECT_FALSE(fs::exists(dir / socket));
}

// A stop waits up to shutdown_timeout for the running jobs; a second stop (here SIGTERM
// after `ringmaster stop`) ends them at once: the client still gets a line for every job
// (done ones ok, running ones stopped), and the server exits 1 leaving nothing behind.
TEST_F(CliServe, ASecondStopEndsRunningJobsAtOnceAndEveryClientGetsItsLines) {
  start("[supervisor]\nshutdown_timeout = \"10m\"\n[pools.compute]\nworkers = 2\nprefetch = 1\n");
  dir.write("jobs.jsonl", job("e1", "compute", "echo", "1") + job("e2", "compute", "echo", "2") +
                              job("s1", "compute", "sleep", "600000") + job("s2", "compute", "sleep", "600000"));
  cli_process sub({"submit", "--socket", socket, "jobs.jsonl"}, dir, {.timeout = 60s});
  // Until both sleep jobs have started: a job sent to a worker but not yet taken from
  // its ring is rightly answered `stopped` by the first stop, which is not what this
  // test is about.
  ASSERT_TRUE(eventually([&] {
    const auto st = status_json();
    const auto* p = st.contains("pools") ? pool_of(st, "compute") : nullptr;
    if (!p || (*p)["completed"] != 2) return false;
    const auto tree = descendants(server->pid());
    return std::count_if(tree.begin(), tree.end(), [](pid_t w) { return in_syscall(w, SYS_clock_nanosleep); }) == 2;
  }, 20s));
  cli_process first({"stop", "--socket", socket}, dir, {.timeout = 60s});  // returns once the server has exited
  ASSERT_TRUE(eventually([&] { return status_json().value("state", "") == "stopping"; }, 5s));
  std::this_thread::sleep_for(200ms);
  EXPECT_EQ(lines_in(sub.out_so_far()), 2u) << "the first stop did not wait for the running jobs";

  server->signal(SIGTERM);
  const auto r = server->wait();
  EXPECT_EQ(r.code, 1) << r.describe();
  EXPECT_CLEAN(r);
  EXPECT_NE(r.err.find("stopping at once"), std::string::npos) << r.err;
  const auto stopper = first.wait();
  EXPECT_EQ(stopper.code, 0) << stopper.describe();
  const auto got = sub.wait();
  EXPECT_EQ(got.code, 1) << got.describe();
  const auto lines = parse_lines(got.out);
  ASSERT_EQ(lines.size(), 4u) << got.out;
  EXPECT_EQ(count_status(lines, "ok"), 2u);
  for (const char* id : {"s1", "s2"}) {
    const auto* l = find_id(lines, id);
    ASSERT_NE(l, nullptr) << id;
    EXPECT_EQ((*l)["error"]["kind"], "stopped") << l->dump();
  }
  EXPECT_FALSE(fs::exists(dir / socket));
}

TEST_F(CliServe, ProtocolHelloRequestsEndAndHalfCloseLineByLine) {
  start("[pools.compute]\nworkers = 1\n");
  const std::string sent = "{\"op\": \"hello\", \"protocol\": 1, \"source\": \"mine\"}\n"
                           "{\"id\": 1, \"type\": \"echo\", \"payload\": \"hi\"}\n"
                           "{\"op\": \"scale\", \"pool\": \"compute\", \"workers\": 2}\n"
                           "{\"type\": \"nope\"}\n"
                           "{\"op\": \"end\"}\n";
  // Its sending side closed after an answered end: no second end, the server closes.
  const std::string got = exchange(sent, true);
  const auto lines = parse_lines(got);
  ASSERT_EQ(lines.size(), 5u) << got;
  EXPECT_EQ(lines[0]["op"], "hello");
  EXPECT_EQ(lines[0]["protocol"], 1);
  std::map<std::string, nlohmann::json> by;
  for (std::size_t i = 1; i < lines.size(); ++i)
    by[lines[i].contains("op")        ? lines[i]["op"].get<std::string>()
       : lines[i]["id"].is_string() ? lines[i]["id"].get<std::string>()
                                    : lines[i]["id"].dump()] = lines[i];
  EXPECT_EQ(by["1"]["result"], "hi");
  EXPECT_EQ(by["1"]["id"], 1) << "an integer id comes back as an integer, as from run";
  EXPECT_EQ(by["2"]["error"]["message"].get<std::string>().rfind("mine:3: ", 0), 0u) << by["2"];  // numbered after hello
  EXPECT_EQ(by["ok"]["message"], "pool 'compute': 2 worker(s)");
  EXPECT_EQ(by["end"]["jobs"], 2);
  EXPECT_EQ(by["end"]["ok"], 1);
  EXPECT_EQ(by["end"]["failed"], 1);
  EXPECT_EQ(lines.back()["op"], "end") << "end comes after every result of the jobs before it";
  finish();
}

// One line from one client never takes the server down: a job line and a request each
// nesting 100,000 deep (the recursive parse overflowed the stack: SIGSEGV, every client
// dropped) are rejected by line, naming the limit; the other jobs run, and another
// client connected all along is still served.
TEST_F(CliServe, ALineNestedTooDeepIsRejectedAndEveryClientCarriesOn) {
  start("[pools.compute]\nworkers = 1\n");
  cli_process other({"submit", "--socket", socket, "-"}, dir, {.stdin_pipe = true, .timeout = 60s});
  ASSERT_TRUE(other.write_stdin(job("o1", "compute", "echo", "\"before\"")));
  ASSERT_TRUE(eventually([&] { return lines_in(other.out_so_far()) == 1; }, 20s)) << other.err_so_far();

  const std::string deep_job = job("d", "compute", "echo", std::string(100'000, '[') + std::string(100'000, ']'));
  std::string deep_request = R"({"op": "status", "x": )";
  for (int i = 0; i < 100'000; ++i) deep_request += R"({"a": )";
  deep_request += "1" + std::string(100'000, '}') + "}\n";
  dir.write("deep.jsonl", job("g1", "compute", "echo", "1") + deep_job + deep_request + job("g4", "compute", "echo", "4"));
  const auto r = client({"submit", "deep.jsonl"}, {.timeout = 30s});
  EXPECT_EQ(r.code, 1) << r.describe();
  const auto lines = parse_lines(r.out);
  ASSERT_EQ(lines.size(), 4u) << r.describe();
  EXPECT_EQ(count_status(lines, "ok"), 2u);
  for (const char* id : {"2", "3"}) {  // no id read from them: their sequence numbers
    const auto* l = find_id(lines, id);
    ASSERT_NE(l, nullptr) << id << "\n" << r.out.substr(0, 2000);
    EXPECT_EQ((*l)["error"]["kind"], "rejected");
    EXPECT_EQ((*l)["error"]["message"].get<std::string>().rfind(
                  "deep.jsonl:" + std::string(id) + ": nests arrays and objects more than 512 deep (the limit)", 0),
              0u)
        << l->dump();
  }
  ASSERT_TRUE(other.write_stdin(job("o2", "compute", "echo", "\"after\"")));
  other.close_stdin();
  const auto ro = other.wait();
  EXPECT_EQ(ro.code, 0) << ro.describe();
  EXPECT_EQ(count_status(parse_lines(ro.out), "ok"), 2u) << ro.out;
  finish();
}

// A line over the size limit (1 MiB here) is rejected with its sequence number as id, as
// in `run`, and the lines after it run: it used to wedge the connection for good (a job
// counter underflowed, so the client's window never had room again).
TEST_F(CliServe, ALineOverTheSizeLimitIsRejectedAndTheNextLinesRun) {
  start("[pools.compute]\nworkers = 1\nmax_message = \"1KiB\"\n");
  dir.write("jobs.jsonl", job("g1", "compute", "echo", "1") + job("big", "compute", "echo", "\"" + std::string(2 << 20, 'z') + "\"") +
                              job("g3", "compute", "echo", "3") + job("g4", "compute", "echo", "4"));
  const auto r = client({"submit", "jobs.jsonl"}, {.timeout = 30s});
  EXPECT_FALSE(r.timed_out) << "the connection is wedged";
  EXPECT_EQ(r.code, 1) << r.describe();
  const auto lines = parse_lines(r.out);
  ASSERT_EQ(lines.size(), 4u) << r.describe();
  EXPECT_EQ(count_status(lines, "ok"), 3u);
  const auto* big = find_id(lines, "2");
  ASSERT_NE(big, nullptr) << r.out;
  EXPECT_EQ((*big)["error"]["kind"], "rejected");
  EXPECT_EQ((*big)["error"]["message"], "jobs.jsonl:2: line longer than 1048576 bytes") << big->dump();
  // The same connection goes on: more lines after another long one, all answered.
  std::string more;
  for (int k = 0; k < 3; ++k) more += std::string(3 << 20, ' ') + "\n" + job("m" + std::to_string(k), "compute", "echo", "0");
  dir.write("more.jsonl", more);
  const auto m = client({"submit", "more.jsonl"}, {.timeout = 30s});
  EXPECT_EQ(m.code, 1) << m.describe();
  const auto mlines = parse_lines(m.out);
  EXPECT_EQ(mlines.size(), 6u) << m.describe();
  EXPECT_EQ(count_status(mlines, "ok"), 3u);
  EXPECT_EQ(count_kind(mlines, "rejected"), 3u);
  finish();
}

// A job the library refuses at submission (no handler for its type, here one 1,000 bytes
// long) gets the rejection `run` gives it, word for word: its origin, then the reason cut
// to 1,000 bytes. `serve` used to pass the whole reason on, however long.
TEST_F(CliServe, ALibraryRefusalIsWordedAsRunWordsIt) {
  const std::string config = "[pools.compute]\nworkers = 1\n";
  dir.write("jobs.jsonl", job("r1", "compute", std::string(1000, 'q'), "1") + job("g2", "compute", "echo", "2"));
  dir.write("run.toml", config);
  const auto by_run = run_cli({"run", "run.toml", "--jobs", "jobs.jsonl", "--no-progress"}, dir, {.timeout = 30s});
  EXPECT_EQ(by_run.code, 1) << by_run.describe();
  const auto run_lines = parse_lines(by_run.out);
  const auto* run_line = find_id(run_lines, "r1");
  ASSERT_NE(run_line, nullptr) << by_run.describe();

  start(config);
  const auto by_serve = client({"submit", "jobs.jsonl"}, {.timeout = 30s});
  EXPECT_EQ(by_serve.code, 1) << by_serve.describe();
  const auto serve_lines = parse_lines(by_serve.out);
  ASSERT_EQ(serve_lines.size(), 2u) << by_serve.describe();
  const auto* serve_line = find_id(serve_lines, "r1");
  ASSERT_NE(serve_line, nullptr) << by_serve.out;
  EXPECT_EQ((*serve_line)["error"]["kind"], "rejected");
  const std::string message = (*serve_line)["error"]["message"];
  EXPECT_EQ(message.rfind("jobs.jsonl:1: pool 'compute' has no handler for job type 'qqq", 0), 0u) << message;
  EXPECT_NE(message.find("... ("), std::string::npos) << "the reason is not cut: " << message.size() << " bytes";
  EXPECT_EQ((*serve_line)["error"]["message"], (*run_line)["error"]["message"]);
  finish();
}

// Several `serve` started at once on one socket path: exactly one serves and stays
// reachable, every other exits 2 saying why. (The loser of the bind used to remove the
// winner's socket: 8 trials in 12 left a server nobody could reach.)
TEST_F(CliServe, ServersStartedAtOnceOnOneSocketLeaveExactlyOneReachable) {
  dir.write("config.toml", "[pools.compute]\nworkers = 1\n");
  for (int round = 0; round < 4; ++round) {
    std::vector<std::unique_ptr<cli_process>> servers;
    for (int k = 0; k < 4; ++k)
      servers.push_back(std::make_unique<cli_process>(std::vector<std::string>{"serve", "config.toml", "--socket", socket},
                                                      dir, cli_options{.timeout = 60s}));
    nlohmann::json st;
    ASSERT_TRUE(eventually([&] {
      st = status_json();
      return st.contains("pid");
    }, 20s)) << "round " << round << ": no server reachable";
    const int winner = st["pid"].get<int>();
    int losers = 0;
    for (auto& s : servers) {
      if (s->pid() == winner) continue;
      const auto r = s->wait();
      EXPECT_EQ(r.code, 2) << "round " << round << ": " << r.describe();
      EXPECT_NE(r.err.find("--socket: another ringmaster serve is already listening on run/rm.sock"), std::string::npos)
          << r.err;
      EXPECT_CLEAN(r);
      ++losers;
    }
    EXPECT_EQ(losers, 3) << "round " << round << ": the server that answers is none of those started";
    EXPECT_EQ(status_json().value("pid", 0), winner) << "round " << round << ": the winner is unreachable";
    for (auto& s : servers)
      if (s->pid() == winner) server = std::move(s);
    ASSERT_TRUE(server);
    finish();
    EXPECT_FALSE(fs::exists(dir / (socket + ".lock"))) << "the lock file stays";
  }
}

// Every line gets its answer, also those before a hello whose protocol this server does
// not speak: they used to be dropped when the connection closed.
TEST_F(CliServe, LinesBeforeABadHelloStillGetTheirAnswers) {
  start("[pools.compute]\nworkers = 1\n");
  const std::string sent = "{\"type\": \"echo\",\n"
                           "{\"id\": \"e\", \"type\": \"sleep\", \"payload\": 200}\n"
                           "{\"op\": \"hello\", \"protocol\": 99}\n"
                           "{\"id\": \"unread\", \"type\": \"echo\"}\n";
  const std::string got = exchange(sent, false);  // the server closes it
  const auto lines = parse_lines(got);
  ASSERT_EQ(lines.size(), 4u) << got;
  EXPECT_EQ(lines[0]["op"], "hello");
  const auto* bad = find_id(lines, "1");
  ASSERT_NE(bad, nullptr) << got;
  EXPECT_EQ((*bad)["error"]["message"].get<std::string>().rfind("socket:1: not valid JSON", 0), 0u) << bad->dump();
  const auto* slept = find_id(lines, "e");
  ASSERT_NE(slept, nullptr) << got;
  EXPECT_EQ((*slept)["status"], "ok");
  bool refused = false;
  for (const auto& l : lines)
    refused |= l.value("op", "") == "error" && l.value("message", "").find("protocol 99 is not spoken") != std::string::npos;
  EXPECT_TRUE(refused) << got;
  EXPECT_EQ(find_id(lines, "unread"), nullptr) << "a line after the refused hello is not read";
  finish();
}

// SIGHUP (a closed terminal, or kill -HUP) is `reload`, as for daemons: it used to kill
// the server at once, with no line to any client and its socket file left behind. A bad
// config on SIGHUP changes nothing and says so.
// A job parked for room in its pool when a reload removes that pool is rejected, and
// its result gives its id as it was sent: an integer stays an integer.
TEST_F(CliServe, AParkedJobWhosePoolAReloadRemovesKeepsItsIntegerId) {
  const std::string keep = "[supervisor]\nshutdown_timeout = \"1s\"\n[pools.b]\nworkers = 1\n";
  start(keep + "[pools.a]\nworkers = 1\nmax_pending = 1\n");
  const int fd = connect_raw();
  // One send: the server reads both lines at once, so the second (no room: the first
  // holds the pool's one place) is parked before anything else happens.
  const std::string lines = "{\"id\": 1, \"pool\": \"a\", \"type\": \"sleep\", \"payload\": 600000}\n"
                            "{\"id\": 2, \"pool\": \"a\", \"type\": \"echo\", \"payload\": 2}\n";
  ASSERT_EQ(::send(fd, lines.data(), lines.size(), MSG_NOSIGNAL), static_cast<ssize_t>(lines.size()));
  ASSERT_TRUE(eventually([&] {
    const auto tree = descendants(server->pid());
    return std::any_of(tree.begin(), tree.end(), [](pid_t w) { return in_syscall(w, SYS_clock_nanosleep); });
  }, 20s)) << server->err_so_far();
  dir.write("config.toml", keep);
  ASSERT_EQ(client({"reload"}).code, 0);
  // The removed pool's running job still runs: a stop ends it (after shutdown_timeout),
  // and the server closes every connection as it exits.
  server->signal(SIGTERM);
  std::string got;
  char buf[4096];
  for (ssize_t n; (n = ::read(fd, buf, sizeof buf)) > 0;) got.append(buf, static_cast<std::size_t>(n));
  ::close(fd);
  const auto answers = parse_lines(got);
  const nlohmann::json* parked = nullptr;
  for (const auto& l : answers)
    if (l.contains("id") && (l["id"] == 2 || l["id"] == "2")) parked = &l;
  ASSERT_NE(parked, nullptr) << got;
  EXPECT_TRUE((*parked)["id"].is_number_integer()) << parked->dump();
  EXPECT_EQ((*parked)["error"]["kind"], "rejected") << parked->dump();
  EXPECT_NE((*parked)["error"]["message"].get<std::string>().find("pool \"a\" was removed"), std::string::npos)
      << parked->dump();
  const auto r = server->wait();
  EXPECT_EQ(r.code, 0) << r.describe();
  EXPECT_CLEAN(r);
}

TEST_F(CliServe, SighupReloadsTheConfigAndTheServerStays) {
  start("[pools.a]\nworkers = 1\n");
  dir.write("config.toml", "[pools.a]\nworkers = 1\n\n[pools.b]\nworkers = 1\n");
  server->signal(SIGHUP);
  ASSERT_TRUE(eventually([&] {
    const auto st = status_json();
    const auto* b = st.contains("pools") ? pool_of(st, "b") : nullptr;
    return b && (*b)["workers"][0]["state"] == "ready";
  }, 20s)) << server->err_so_far();
  EXPECT_NE(server->err_so_far().find("SIGHUP: reloading config.toml"), std::string::npos) << server->err_so_far();
  dir.write("j.jsonl", job("x", "b", "echo", "1"));
  EXPECT_EQ(client({"submit", "j.jsonl"}).code, 0);

  dir.write("config.toml", "[pools.a]\nworkers = \"two\"\n");
  server->signal(SIGHUP);
  ASSERT_TRUE(eventually([&] { return server->err_so_far().find("reload refused") != std::string::npos; }, 20s))
      << server->err_so_far();
  const auto st = status_json();
  EXPECT_NE(pool_of(st, "b"), nullptr) << "a bad config on SIGHUP changed the pools: " << st.dump();
  const auto r = finish();
  EXPECT_NE(r.err.find("config.toml:2: pools.a.workers"), std::string::npos) << r.err;
}

// The reload log says what happened to a replaced pool (not "starting" then "removed"),
// and a scale to the count a pool has says that it has it.
TEST_F(CliServe, ReloadAndScaleLogWhatTheyDid) {
  start("[pools.a]\nworkers = 2\n");
  EXPECT_EQ(client({"scale", "a", "2"}).code, 0);
  ASSERT_TRUE(eventually([&] { return server->err_so_far().find("pool 'a' already has 2 worker(s)") != std::string::npos; }, 10s))
      << server->err_so_far();
  EXPECT_EQ(server->err_so_far().find("scaled from 2 to 2"), std::string::npos) << server->err_so_far();
  // A job running in the old pool through the reload: the new pool certainly starts
  // before the old one is done.
  dir.write("slow.jsonl", job("slow", "a", "sleep", "1000"));
  cli_process slow({"submit", "--socket", socket, "slow.jsonl"}, dir, {.timeout = 60s});
  ASSERT_TRUE(eventually([&] {
    const auto st = status_json();
    const auto* a = st.contains("pools") ? pool_of(st, "a") : nullptr;
    return a && (*a)["in_flight"] == 1;
  }, 20s));
  dir.write("config.toml", "[pools.a]\nworkers = 2\nmax_attempts = 2\n");
  ASSERT_EQ(client({"reload"}).code, 0);
  ASSERT_TRUE(eventually([&] {
    return server->err_so_far().find("pool 'a' as it was before its replacement has finished its jobs") != std::string::npos;
  }, 20s)) << server->err_so_far();
  const auto log = server->err_so_far();
  EXPECT_NE(log.find("pool 'a' starting 2 worker(s), replacing the pool of that name"), std::string::npos) << log;
  EXPECT_EQ(log.find("pool 'a' removed"), std::string::npos) << log;
  const auto r = slow.wait();
  EXPECT_EQ(r.code, 0) << r.describe();
  finish();
}

TEST_F(CliServe, HelpGivesServesOwnSignalsAndExitStatuses) {
  const auto r = run_cli({"serve", "--help"}, dir);
  EXPECT_EQ(r.code, 0);
  EXPECT_NE(r.out.find("SIGHUP reloads the config"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("Exit status: 0 stopped or drained"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("every job ok"), std::string::npos) << "run's exit statuses:\n" << r.out;
}

TEST_F(CliServe, SocketPlaceIsCheckedBeforeAnythingStarts) {
  dir.write("config.toml", "[pools.compute]\nworkers = 1\n");
  fs::create_directory(dir / "open");
  fs::permissions(dir / "open", fs::perms::owner_all | fs::perms::others_read | fs::perms::others_exec);
  const auto open = run_cli({"serve", "config.toml", "--socket", "open/s.sock"}, dir);
  EXPECT_EQ(open.code, 2) << open.describe();
  EXPECT_NE(open.err.find("closed to others (chmod 700)"), std::string::npos) << open.err;

  start("[pools.compute]\nworkers = 1\n");
  const auto twice = run_cli({"serve", "config.toml", "--socket", socket}, dir);
  EXPECT_EQ(twice.code, 2) << twice.describe();
  EXPECT_NE(twice.err.find("another ringmaster serve is already listening on run/rm.sock"), std::string::npos) << twice.err;
  EXPECT_EQ(client({"status"}).code, 0) << "the first server is untouched";
  finish();
  // No server: the clients say so, status 3.
  const auto none = client({"status"});
  EXPECT_EQ(none.code, 3);
  EXPECT_NE(none.err.find("cannot connect"), std::string::npos) << none.err;
}

}  // namespace
}  // namespace ringmaster::test
