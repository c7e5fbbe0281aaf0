// The test main: runs every test under a listener that fails the test if it leaves a
// file descriptor, a child process or a ringmaster segment in /dev/shm behind, and ends
// with a line saying how many tests ran and how many were skipped, and why.
#include <dirent.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include "privilege.hpp"
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

// The closing line: "ringmaster tests: 12 ran, 2 skipped (1 for want of root or mounts)",
// then each skipped test and its reason, so that a skip is never mistaken for a pass (under
// ctest, which runs one test a program, ctest's "Skipped" says the same).
class skip_report : public testing::EmptyTestEventListener {
  struct skipped {
    std::string test, why;
  };
  int ran_ = 0;
  std::vector<skipped> skipped_;

  void OnTestEnd(const testing::TestInfo& info) override {
    const testing::TestResult& r = *info.result();
    if (!r.Skipped()) {
      ++ran_;
      return;
    }
    std::string why;
    for (int i = 0; i < r.total_part_count(); ++i)
      if (r.GetTestPartResult(i).skipped()) why = r.GetTestPartResult(i).message();
    skipped_.push_back({std::string(info.test_suite_name()) + "." + info.name(), why});
  }

  void OnTestProgramEnd(const testing::UnitTest&) override {
    const auto privileged = std::count_if(skipped_.begin(), skipped_.end(), [](const skipped& s) {
      return s.why.find(ringmaster::test::k_needs_privilege) != std::string::npos;
    });
    std::printf("ringmaster tests: %d ran, %zu skipped (%td for want of root or mounts)\n", ran_, skipped_.size(),
                privileged);
    for (const auto& s : skipped_) std::printf("  skipped %s: %s\n", s.test.c_str(), s.why.c_str());
    std::fflush(stdout);
  }
};

}  // namespace

int main(int argc, char** argv) {
  testing::InitGoogleTest(&argc, argv);
  testing::UnitTest::GetInstance()->listeners().Append(new leak_guard);
  testing::UnitTest::GetInstance()->listeners().Append(new skip_report);
  return RUN_ALL_TESTS();
}
