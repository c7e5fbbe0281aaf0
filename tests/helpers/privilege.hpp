// tests/helpers/privilege.hpp — tests that need root or mounts (another user, a lowered
// RLIMIT_NPROC, a private mount namespace). Where they cannot run they skip, saying why,
// and the test main's closing line counts them. Where every one of them must run (CI, as
// root: scripts/test sets RINGMASTER_REQUIRE_PRIVILEGED=1), a test that cannot fails
// instead, so that a skip never passes for a pass.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <string_view>

namespace ringmaster::test {

/// The start of every such skip's message: the test main's closing line counts these.
inline constexpr std::string_view k_needs_privilege = "needs root or mounts: ";

/// True where a test needing root or mounts must not skip (RINGMASTER_REQUIRE_PRIVILEGED
/// set and not "0").
inline bool privileged_tests_required() {
  const char* v = std::getenv("RINGMASTER_REQUIRE_PRIVILEGED");
  return v != nullptr && *v != '\0' && std::string_view(v) != "0";
}

}  // namespace ringmaster::test

/// Ends the test for want of root or mounts (`why` is streamed): a skip, or a failure
/// where privileged_tests_required().
#define RINGMASTER_SKIP_UNPRIVILEGED(why)                                                         \
  do {                                                                                            \
    if (::ringmaster::test::privileged_tests_required()) {                                        \
      FAIL() << ::ringmaster::test::k_needs_privilege << why                                      \
             << " (RINGMASTER_REQUIRE_PRIVILEGED is set: this test must run here)";               \
    }                                                                                             \
    GTEST_SKIP() << ::ringmaster::test::k_needs_privilege << why;                                 \
  } while (0)

/// Skips (or fails, see above) the test unless it runs as root.
#define RINGMASTER_REQUIRE_ROOT(why) \
  do {                               \
    if (::geteuid() != 0) RINGMASTER_SKIP_UNPRIVILEGED(why); \
  } while (0)
