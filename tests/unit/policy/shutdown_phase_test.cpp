// Which phases of a shutdown stop retries (supervisor/src/policy/shutdown_phase.hpp).
#include <gtest/gtest.h>

#include <policy/attempt_outcome.hpp>
#include <policy/shutdown_phase.hpp>

#include <string>

namespace ringmaster::detail {
namespace {

struct phase_case {
  const char* name;
  shutdown_phase phase;
  bool stops;
};

class ShutdownPhase : public testing::TestWithParam<phase_case> {};

TEST_P(ShutdownPhase, StopsJobsOnlyOnceAStopBegan) { EXPECT_EQ(stops_jobs(GetParam().phase), GetParam().stops); }

// The retry of a handler's failed result under retry_on_error, through the phase: the bug
// this table guards was a retry during stopping_workers (the job went back to a queue no
// worker would ever take it from).
TEST_P(ShutdownPhase, RetryOnErrorRetriesOnlyWhileNotStopping) {
  EXPECT_EQ(retries_failed_result(error_kind::exception, true, 1, 3, stops_jobs(GetParam().phase)), !GetParam().stops);
}

INSTANTIATE_TEST_SUITE_P(Table, ShutdownPhase,
                         testing::Values(phase_case{"running", shutdown_phase::running, false},
                                         phase_case{"draining", shutdown_phase::draining, false},
                                         phase_case{"stopping", shutdown_phase::stopping, true},
                                         phase_case{"stopping_workers", shutdown_phase::stopping_workers, true},
                                         phase_case{"done", shutdown_phase::done, true}),
                         [](const testing::TestParamInfo<phase_case>& tc) { return std::string(tc.param.name); });

}  // namespace
}  // namespace ringmaster::detail
