// Restart or not by restart type (supervisor/src/policy/restart_or_retire.hpp).
#include <gtest/gtest.h>

#include <policy/restart_or_retire.hpp>

#include <string>

namespace ringmaster::detail {
namespace {

struct restart_case {
  restart_type type;
  bool abnormal;
  bool restarts;
};

// Not to_string: it lives in the supervisor library, which this test does not link.
std::string case_name(const testing::TestParamInfo<restart_case>& tc) {
  const char* names[] = {"permanent", "transient", "temporary"};
  return std::string(names[static_cast<int>(tc.param.type)]) + (tc.param.abnormal ? "_abnormal" : "_normal");
}

class RestartOrRetire : public testing::TestWithParam<restart_case> {};

TEST_P(RestartOrRetire, FollowsTheRestartType) {
  EXPECT_EQ(restarts(GetParam().type, GetParam().abnormal), GetParam().restarts);
}

INSTANTIATE_TEST_SUITE_P(Table, RestartOrRetire,
                         testing::Values(restart_case{restart_type::permanent, false, true},
                                         restart_case{restart_type::permanent, true, true},
                                         restart_case{restart_type::transient, false, false},
                                         restart_case{restart_type::transient, true, true},
                                         restart_case{restart_type::temporary, false, false},
                                         restart_case{restart_type::temporary, true, false}),
                         case_name);

}  // namespace
}  // namespace ringmaster::detail
