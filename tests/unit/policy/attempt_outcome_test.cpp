// After an attempt whose worker died (supervisor/src/policy/attempt_outcome.hpp).
#include <gtest/gtest.h>

#include <policy/attempt_outcome.hpp>

#include <ostream>
#include <string>

namespace ringmaster::detail {
namespace {

struct attempt_case {
  std::string name;
  bool stopping;
  unsigned attempts, max_attempts;
  attempt_outcome expected;
};
void PrintTo(const attempt_case& c, std::ostream* os) { *os << c.name; }

class AttemptOutcome : public testing::TestWithParam<attempt_case> {};

TEST_P(AttemptOutcome, RetriesUntilMaxAttemptsUnlessStopping) {
  const auto& c = GetParam();
  EXPECT_EQ(after_attempt(c.stopping, c.attempts, c.max_attempts), c.expected);
}

INSTANTIATE_TEST_SUITE_P(Table, AttemptOutcome,
                         testing::Values(attempt_case{"first_of_three_retries", false, 1, 3, attempt_outcome::retry},
                                         attempt_case{"second_of_three_retries", false, 2, 3, attempt_outcome::retry},
                                         attempt_case{"third_of_three_fails", false, 3, 3, attempt_outcome::fail},
                                         attempt_case{"one_allowed_fails_at_once", false, 1, 1, attempt_outcome::fail},
                                         attempt_case{"past_max_fails", false, 5, 3, attempt_outcome::fail},
                                         attempt_case{"stopping_stops_a_retry", true, 1, 3, attempt_outcome::stop},
                                         attempt_case{"stopping_stops_a_failure", true, 3, 3, attempt_outcome::stop}),
                         [](const auto& tc) { return tc.param.name; });

struct result_case {
  std::string name;
  error_kind kind;
  bool retry_on_error;
  unsigned attempts, max_attempts;
  bool stopping;
  bool retries;
};
void PrintTo(const result_case& c, std::ostream* os) { *os << c.name; }

class FailedResult : public testing::TestWithParam<result_case> {};

TEST_P(FailedResult, IsRetriedOnlyWithRetryOnErrorWhileAttemptsRemain) {
  const auto& c = GetParam();
  EXPECT_EQ(retries_failed_result(c.kind, c.retry_on_error, c.attempts, c.max_attempts, c.stopping), c.retries);
}

INSTANTIATE_TEST_SUITE_P(
    Table, FailedResult,
    testing::Values(result_case{"exception_without_retry_on_error_fails", error_kind::exception, false, 1, 3, false, false},
                    result_case{"exception_with_retry_on_error_retries", error_kind::exception, true, 1, 3, false, true},
                    result_case{"bad_alloc_with_retry_on_error_retries", error_kind::memory, true, 2, 3, false, true},
                    result_case{"the_last_attempt_fails", error_kind::exception, true, 3, 3, false, false},
                    result_case{"stopping_fails", error_kind::exception, true, 1, 3, true, false},
                    result_case{"a_rejected_job_is_never_retried", error_kind::rejected, true, 1, 3, false, false},
                    result_case{"an_ok_result_is_not_retried", error_kind::none, true, 1, 3, false, false}),
    [](const auto& tc) { return tc.param.name; });

}  // namespace
}  // namespace ringmaster::detail
