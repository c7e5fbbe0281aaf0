// The process tree stays a tree: supervisor -> zygote -> fork servers -> workers -> what
// the workers start. After 20 kills of the active fork server, each waited for until the
// standby took over, every process the run ever had is either gone or still a
// descendant of the supervisor (never re-parented to init or to this test), both with
// the supervisor embedded in a test process and under `ringmaster run`; once it ends,
// nothing is left (no process, no zombie, no /dev/shm segment).
//
// Each worker is exec'd through a shell that first starts two `sleep 300`: one in the
// worker's process group, one in a session of its own (setsid), so both ways a worker's
// subprocess can escape its group are covered.
//
// The embedded tests run in a forked child, which is not a subreaper: an orphan there
// would go to the container's init, and the check of the tree would see it.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ringmaster/supervisor/detail/testing.hpp>  // fork_server_pid
#include <ringmaster/supervisor/supervisor.hpp>
#include <set>
#include <string>
#include <vector>

#include "child_checks.hpp"
#include "cli_harness.hpp"
#include "proc.hpp"
#include "process_watch.hpp"
#include "supervisor_waits.hpp"
#include "waits.hpp"

namespace {

using namespace std::chrono_literals;
using ringmaster::test::descendants_of;
using ringmaster::test::eventually;
using ringmaster::test::gone;
using ringmaster::test::identify;
using ringmaster::test::process_id;

constexpr int k_kills = 20;
constexpr unsigned k_workers = 2;

// A worker that leaves two sleepers behind when it dies: one in its own process group,
// one in a session of its own.
std::vector<std::string> worker_with_sleepers() {
  return {"/bin/sh", "-c", "sleep 300 & setsid -f sleep 300; exec \"$0\"", RINGMASTER_TEST_WORKER};
}

// Every process below `root` now, as it is (pid and start time).
std::set<process_id> tree_of(pid_t root) {
  std::set<process_id> out;
  for (const pid_t pid : descendants_of(root))
    if (const auto p = identify(pid)) out.insert(*p);
  return out;
}

// Every process of `seen` that is still there is below `root` (a zombie waiting for its
// reaper included: the reaper is then ours). What is dying may be between its parent's
// death and its reaping for a moment, so this is waited for, bounded.
bool all_below(pid_t root, const std::set<process_id>& seen, std::string& why) {
  const bool ok = eventually([&] {
    const auto tree = descendants_of(root);
    for (const auto& p : seen)
      if (!gone(p) && tree.count(p.pid) == 0) return false;
    return true;
  }, 20s);
  if (!ok) {
    const auto tree = descendants_of(root);
    for (const auto& p : seen)
      if (!gone(p) && tree.count(p.pid) == 0) why += " " + std::to_string(p.pid);
  }
  return ok;
}

bool all_gone(const std::set<process_id>& seen) {
  return eventually([&] { return std::all_of(seen.begin(), seen.end(), [](const process_id& p) { return gone(p); }); },
                    20s);
}

// The active server's workers are ready and each has started its sleepers, and the
// standby is up: a kill now finds no spawn in progress (which would be charged to the
// pool).
bool settled(const ringmaster::supervisor& sup, unsigned promotions) {
  const auto st = sup.status();
  if (st.fork_servers.promotions != promotions || st.fork_servers.standby_pid <= 0) return false;
  if (!ringmaster::test::all_ready(sup, "tree")) return false;
  const auto pool = ringmaster::test::pool_status_of(sup, "tree");
  if (!pool) return false;
  for (const auto& w : pool->workers)
    if (ringmaster::test::children_of(w.pid).empty()) return false;
  return true;
}

TEST(ProcessTree, EveryProcessStaysADescendantOfAnEmbeddedSupervisorAcrossTwentyForkServerKills) {
  ringmaster::test::expect_child_passes(
      []() -> int {
        const auto segments_before = ringmaster::test::our_segments();
        std::set<process_id> seen;
        {
          ringmaster::supervisor sup({.name = "tree"});
          sup.add_pool("tree", {.workers = k_workers, .command = worker_with_sleepers()});
          sup.start();
          for (int kill = 0; kill < k_kills; ++kill) {
            CHILD_CHECK(eventually([&] { return settled(sup, static_cast<unsigned>(kill)); }, 30s),
                        "not settled before kill %d", kill);
            const auto tree = tree_of(::getpid());
            seen.insert(tree.begin(), tree.end());
            const pid_t server = ringmaster::detail::fork_server_pid(sup);
            CHILD_CHECK(::kill(server, SIGKILL) == 0, "kill %d of the fork server", kill);
            CHILD_CHECK(eventually([&] { return sup.status().fork_servers.promotions == static_cast<unsigned>(kill + 1); },
                                   30s),
                        "no promotion after kill %d", kill);
            std::string why;
            CHILD_CHECK(all_below(::getpid(), seen, why), "after kill %d, outside the tree:%s", kill, why.c_str());
          }
          CHILD_CHECK(eventually([&] { return settled(sup, k_kills); }, 30s), "not settled after the kills");
          CHILD_CHECK(!sup.any_pool_gave_up(), "the pool gave up");
          const auto tree = tree_of(::getpid());
          seen.insert(tree.begin(), tree.end());
          std::string why;
          CHILD_CHECK(all_below(::getpid(), seen, why), "outside the tree:%s", why.c_str());
        }
        CHILD_CHECK(ringmaster::test::children_of().empty(), "children left (zombies included)");
        CHILD_CHECK(all_gone(seen), "processes of the run left behind");
        CHILD_CHECK(ringmaster::test::our_segments() == segments_before, "segments left in /dev/shm");
        return 0;
      },
      300s);
}

// The zygote killed: its fork servers end with it and end their workers, the pool
// gives up (no fork server can be made any more), and nothing is left. The servers are
// re-parented when the zygote dies (to the nearest subreaper: this test, standing in
// for init, which in a container may not reap).
TEST(ProcessTree, KilledZygoteTakesItsForkServersAndTheirWorkersWithIt) {
  ringmaster::test::expect_child_passes(
      []() -> int {
        const auto segments_before = ringmaster::test::our_segments();
        std::set<process_id> seen;
        {
          ringmaster::supervisor sup({.name = "tree"});
          const auto zygotes = ringmaster::test::children_of();
          CHILD_CHECK(zygotes.size() == 1, "%zu children, not one zygote", zygotes.size());
          ringmaster::test::orphan_reaper reaper;
          reaper.keep(*zygotes.begin());
          sup.add_pool("tree", {.workers = k_workers, .command = worker_with_sleepers()});
          sup.start();
          CHILD_CHECK(eventually([&] { return settled(sup, 0); }, 30s), "not settled");
          const auto tree = tree_of(::getpid());
          seen.insert(tree.begin(), tree.end());
          CHILD_CHECK(::kill(*zygotes.begin(), SIGKILL) == 0, "kill the zygote");
          CHILD_CHECK(eventually([&] { return sup.any_pool_gave_up(); }, 30s), "the pool did not give up");
          CHILD_CHECK(eventually(
                          [&] {
                            reaper.reap();
                            return std::all_of(seen.begin(), seen.end(), [&](const process_id& p) {
                              return p.pid == *zygotes.begin() || gone(p);
                            });
                          },
                          30s),
                      "the zygote's tree outlived it");
          CHILD_CHECK(reaper.reap_all(10s), "orphans left");
        }
        CHILD_CHECK(ringmaster::test::children_of().empty(), "children left (zombies included)");
        CHILD_CHECK(all_gone(seen), "processes of the run left behind");
        CHILD_CHECK(ringmaster::test::our_segments() == segments_before, "segments left in /dev/shm");
        return 0;
      },
      120s);
}

// ---------------------------------------------------------------------------------------
// Under `ringmaster run`, seen from outside: the zygote is its child, the fork servers the
// zygote's, and the active server the one with children.

// The active server below `ringmaster` (its one child, the zygote), once it has all its
// workers and they their sleepers, and the standby is there; 0 until then.
pid_t settled_active_server(pid_t ringmaster) {
  const auto zygotes = ringmaster::test::children_of(ringmaster);
  if (zygotes.size() != 1) return 0;
  const auto servers = ringmaster::test::children_of(*zygotes.begin());
  if (servers.size() != 2) return 0;
  for (const pid_t s : servers) {
    // Its workers, and the setsid'd sleepers, whose parent (setsid -f) exited at once.
    const auto children = ringmaster::test::children_of(s);
    const auto workers = std::count_if(children.begin(), children.end(),
                                       [](pid_t c) { return !ringmaster::test::children_of(c).empty(); });
    if (workers == k_workers && children.size() == 2 * k_workers) return s;
  }
  return 0;
}

TEST(ProcessTree, EveryProcessStaysADescendantOfRingmasterRunAcrossTwentyForkServerKills) {
  namespace t = ringmaster::test;
  t::temp_dir dir;
  const auto shm_before = t::shm_entries();
  std::string toml_command;
  for (const auto& arg : worker_with_sleepers()) {
    std::string quoted;
    for (const char c : arg) quoted += c == '"' || c == '\\' ? std::string("\\") + c : std::string(1, c);
    toml_command += (toml_command.empty() ? "\"" : ", \"") + quoted + "\"";
  }
  dir.write("config.toml", "[pools.tree]\nworkers = " + std::to_string(k_workers) + "\ncommand = [" + toml_command + "]\n");
  t::cli_process p({"run", "config.toml", "--jobs", "-", "--results", "results.jsonl", "--no-progress"}, dir,
                   {.stdin_pipe = true, .timeout = 300s});
  std::set<process_id> seen;
  for (int kill = 0; kill < k_kills; ++kill) {
    pid_t server = 0;
    ASSERT_TRUE(eventually([&] { return (server = settled_active_server(p.pid())) != 0; }, 30s))
        << "not settled before kill " << kill << "\n" << p.err_so_far();
    const auto tree = tree_of(p.pid());
    seen.insert(tree.begin(), tree.end());
    const auto killed = identify(server);
    ASSERT_TRUE(killed);
    ASSERT_EQ(::kill(server, SIGKILL), 0) << "server " << server << ": " << std::strerror(errno);
    // Gone means reaped too, by the zygote; until then it may still look like the active one.
    ASSERT_TRUE(eventually([&] { return gone(*killed); }, 30s)) << "the killed server " << server << " was not reaped";
    std::string why;
    ASSERT_TRUE(all_below(p.pid(), seen, why)) << "after kill " << kill << ", outside the tree:" << why;
  }
  ASSERT_TRUE(eventually([&] { return settled_active_server(p.pid()) != 0; }, 30s)) << p.err_so_far();
  const auto tree = tree_of(p.pid());
  seen.insert(tree.begin(), tree.end());
  p.close_stdin();  // no more jobs: the run ends
  const auto r = p.wait();
  EXPECT_EQ(r.code, 0) << r.describe();
  EXPECT_CLEAN(r);
  EXPECT_TRUE(all_gone(seen)) << "processes of the run left behind";
  EXPECT_EQ(t::shm_entries(), shm_before) << "a segment was left in /dev/shm";
}

}  // namespace
