// The test main: runs every test under a listener that fails the test if it leaves a
// file descriptor, a child process or a ringmaster segment in /dev/shm behind.
#include <dirent.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <set>
#include <string>

#include "proc.hpp"

namespace {

using ringmaster::test::list_dir;
using ringmaster::test::our_segments;

std::string join(const std::set<std::string>& s) {
  std::string out;
  for (const auto& x : s) out += (out.empty() ? "" : " ") + x;
  return out;
}

class leak_guard : public testing::EmptyTestEventListener {
  std::set<std::string> fds_, shm_;

  void OnTestStart(const testing::TestInfo&) override {
    fds_ = list_dir("/proc/self/fd");
    shm_ = our_segments();
  }

  void OnTestEnd(const testing::TestInfo&) override {
    // Children first: any child still running or unreaped is a leak. Kill and reap them
    // so that one leak does not cascade into every later test.
    std::set<pid_t> children = ringmaster::test::children_of();
    for (pid_t p : children) ::kill(p, SIGKILL);
    int status = 0;
    for (pid_t p; (p = ::waitpid(-1, &status, children.empty() ? WNOHANG : 0)) > 0;) {
      children.insert(p);  // also counts zombies nobody reaped
    }
    if (!children.empty()) {
      std::set<std::string> names;
      for (pid_t p : children) names.insert(std::to_string(p));
      ADD_FAILURE() << "test left child process(es) behind: " << join(names);
    }
    const auto fds = list_dir("/proc/self/fd");
    std::set<std::string> extra;
    for (const auto& fd : fds)
      if (!fds_.count(fd)) extra.insert(fd);
    if (!extra.empty()) ADD_FAILURE() << "test leaked file descriptor(s): " << join(extra);
    std::set<std::string> segs;
    // A benchmark or another test run at the same time is not this test's leak.
    for (const auto& s : our_segments())
      if (!shm_.count(s)) segs.insert(s);
    if (!segs.empty()) ADD_FAILURE() << "test left /dev/shm segment(s): " << join(segs);
  }
};

}  // namespace

int main(int argc, char** argv) {
  testing::InitGoogleTest(&argc, argv);
  testing::UnitTest::GetInstance()->listeners().Append(new leak_guard);
  return RUN_ALL_TESTS();
}
