// tests/helpers/child_checks.hpp — scenarios that must run in a forked child because they
// change its credentials, limits or mounts, reporting through the child's exit code: 0
// passed, k_child_skip not possible here for want of root or mounts (the test is skipped,
// see privilege.hpp), anything else a failure that CHILD_CHECK described on stderr.
#pragma once

#include <gtest/gtest.h>
#include <grp.h>
#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <functional>

#include "child.hpp"
#include "privilege.hpp"

namespace ringmaster::test {

inline constexpr int k_child_skip = 77;
inline constexpr uid_t k_nobody = 65534;

/// In the child: returns 1 from the enclosing function, saying why, unless `cond` holds.
#define CHILD_CHECK(cond, ...)                                 \
  do {                                                         \
    if (!(cond)) {                                             \
      std::fprintf(stderr, "child check failed: %s: ", #cond); \
      std::fprintf(stderr, __VA_ARGS__);                       \
      std::fprintf(stderr, "\n");                              \
      return 1;                                                \
    }                                                          \
  } while (0)

/// In the child: drops root for good (user and group nobody, no supplementary groups),
/// keeping death with the parent. 0, or k_child_skip if that is not possible here.
inline int become_nobody() {
  if (::geteuid() != 0) {
    std::fprintf(stderr, "needs root to switch to another user\n");
    return k_child_skip;
  }
  if (::setgroups(0, nullptr) != 0 || ::setresgid(k_nobody, k_nobody, k_nobody) != 0 ||
      ::setresuid(k_nobody, k_nobody, k_nobody) != 0) {
    std::perror("cannot become nobody");
    return k_child_skip;
  }
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // cleared by the change of credentials
  return 0;
}

/// Runs `fn` in a forked child and turns its exit code into the test's outcome.
inline void expect_child_passes(const std::function<int()>& fn, std::chrono::seconds limit = std::chrono::seconds(60)) {
  auto child = fork_child(fn);
  const auto st = child.wait_for(limit);
  ASSERT_TRUE(st) << "the child did not finish within " << limit.count() << " s";
  if (st->exited() && st->code() == k_child_skip) RINGMASTER_SKIP_UNPRIVILEGED("not possible here (the child's stderr says why)");
  EXPECT_TRUE(st->exited() && st->code() == 0) << "child: " << st->to_string();
}

}  // namespace ringmaster::test
