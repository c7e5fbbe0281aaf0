// The test main's report: a closing line that says how many tests ran and how many were
// skipped, and why; and where every test needing root or mounts must run
// (RINGMASTER_REQUIRE_PRIVILEGED, set by scripts/test as root), such a test that cannot
// fails instead of skipping. Runs a real gtest program (test_main_target.cpp).
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <string>

namespace {

struct run_result {
  int code = -1;
  std::string out;
};

// Runs the target program with `env` (NAME=VALUE..., or empty) in front, through sh.
run_result run_target(const std::string& env) {
  const std::string command = "env -u RINGMASTER_REQUIRE_PRIVILEGED " + env + " '" RINGMASTER_TEST_MAIN_TARGET "' 2>&1";
  run_result r;
  FILE* p = ::popen(command.c_str(), "r");
  if (p == nullptr) return r;
  char buf[4096];
  for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, p)) > 0;) r.out.append(buf, n);
  const int status = ::pclose(p);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

TEST(TestMain, ClosingLineSaysHowManyRanAndWereSkippedAndWhy) {
  const auto r = run_target("");
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("ringmaster tests: 1 ran, 2 skipped (1 for want of root or mounts)\n"), std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("  skipped Target.NeedsPrivilege: needs root or mounts: as this check says\n"), std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("  skipped Target.SkipsForAnotherReason: a reason of its own\n"), std::string::npos) << r.out;
}

TEST(TestMain, APrivilegedSkipFailsWhereEveryPrivilegedTestMustRun) {
  const auto r = run_target("RINGMASTER_REQUIRE_PRIVILEGED=1");
  EXPECT_NE(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("[  FAILED  ] Target.NeedsPrivilege"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("RINGMASTER_REQUIRE_PRIVILEGED is set: this test must run here"), std::string::npos) << r.out;
  // A skip for another reason stays a skip.
  EXPECT_NE(r.out.find("ringmaster tests: 2 ran, 1 skipped (0 for want of root or mounts)\n"), std::string::npos)
      << r.out;
}

}  // namespace
