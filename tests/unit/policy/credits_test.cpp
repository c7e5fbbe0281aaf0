// Jobs in flight per worker (supervisor/src/policy/credits.hpp).
#include <gtest/gtest.h>

#include <policy/credits.hpp>

#include <string>

namespace ringmaster::detail {
namespace {

struct credits_case {
  const char* name;
  pool_load load;
  unsigned credits;
};

class Credits : public testing::TestWithParam<credits_case> {};

TEST_P(Credits, FollowPrefetchOrTheJobsRunTime) { EXPECT_EQ(credits(GetParam().load), GetParam().credits); }

INSTANTIATE_TEST_SUITE_P(
    Table, Credits,
    testing::Values(
        credits_case{"PrefetchWinsOverJobTime", {.prefetch = 7, .avg_job_us = 1, .queued = 0, .workers = 4}, 7},
        credits_case{"PrefetchOfOne", {.prefetch = 1, .avg_job_us = 0, .queued = 100, .workers = 1}, 1},
        credits_case{"NoJobTimeYetGivesTwo", {.prefetch = 0, .avg_job_us = 0, .queued = 100, .workers = 1}, 2},
        credits_case{"TinyJobsAreCappedAt64", {.prefetch = 0, .avg_job_us = 0.5, .queued = 0, .workers = 1}, 64},
        credits_case{"JobsOf10usCoverHalfAMillisecond", {.prefetch = 0, .avg_job_us = 10, .queued = 0, .workers = 1}, 50},
        credits_case{"JobsOf200usGiveTwo", {.prefetch = 0, .avg_job_us = 200, .queued = 0, .workers = 1}, 2},
        credits_case{"LongJobsWithABacklogOfTwoPerWorker", {.prefetch = 0, .avg_job_us = 1e6, .queued = 8, .workers = 4}, 2},
        credits_case{"LongJobsWithLessBacklogGoOneAtATime", {.prefetch = 0, .avg_job_us = 1e6, .queued = 7, .workers = 4}, 1},
        credits_case{"LongJobsWithNothingQueued", {.prefetch = 0, .avg_job_us = 400, .queued = 0, .workers = 1}, 1},
        credits_case{"PipelinedShortJobsWithABacklogGetThree", {.prefetch = 0, .avg_job_us = 1000, .queued = 8, .workers = 4, .pipelined = true}, 3},
        credits_case{"PipelinedTinyJobsKeepTheirBatch", {.prefetch = 0, .avg_job_us = 10, .queued = 8, .workers = 4, .pipelined = true}, 50},
        credits_case{"PipelinedJobsWithLessBacklogFollowTheirTime", {.prefetch = 0, .avg_job_us = 1000, .queued = 7, .workers = 4, .pipelined = true}, 1},
        credits_case{"PipelinedLongJobsGetTwo", {.prefetch = 0, .avg_job_us = 20'000, .queued = 8, .workers = 4, .pipelined = true}, 2},
        credits_case{"PipelinedPrefetchWins", {.prefetch = 1, .avg_job_us = 1000, .queued = 100, .workers = 1, .pipelined = true}, 1}),
    [](const testing::TestParamInfo<credits_case>& tc) { return std::string(tc.param.name); });

}  // namespace
}  // namespace ringmaster::detail
