// A gtest program that is no test of its own: test_main_test.cpp runs it to check what the
// test main (leak_guard.cpp) reports of a run with a pass, a skip for want of root or
// mounts, and another skip.
#include <gtest/gtest.h>

#include "privilege.hpp"

TEST(Target, Passes) { SUCCEED(); }

TEST(Target, NeedsPrivilege) { RINGMASTER_SKIP_UNPRIVILEGED("as this check says"); }

TEST(Target, SkipsForAnotherReason) { GTEST_SKIP() << "a reason of its own"; }
