// What a worker's end means, and which job is charged with it
// (supervisor/src/policy/death_verdict.hpp). Wait statuses are built, not waited for.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <policy/death_verdict.hpp>

#include <ostream>
#include <string>
#include <vector>

namespace ringmaster::detail {
namespace {

constexpr std::size_t k_mib = std::size_t{1} << 20;

int exited(int code) { return W_EXITCODE(code, 0); }
int signaled(int sig) { return W_EXITCODE(0, sig); }

struct verdict_case {
  std::string name;
  worker_end end;
  error_kind kind;
  std::string cause;
  bool abnormal, planned, killed_from_outside;
};
void PrintTo(const verdict_case& c, std::ostream* os) { *os << c.name; }

class DeathVerdict : public testing::TestWithParam<verdict_case> {};

TEST_P(DeathVerdict, ClassifiesHowAWorkerEnded) {
  const auto& c = GetParam();
  const death_verdict v = classify(c.end);
  EXPECT_EQ(v.kind, c.kind);
  EXPECT_EQ(v.cause, c.cause);
  EXPECT_EQ(v.abnormal, c.abnormal);
  EXPECT_EQ(v.planned, c.planned);
  EXPECT_EQ(v.killed_from_outside, c.killed_from_outside);
}

constexpr auto crash = error_kind::crash;
constexpr auto timeout = error_kind::timeout;
constexpr auto memory = error_kind::memory;

INSTANTIATE_TEST_SUITE_P(
    Table, DeathVerdict,
    testing::Values(
        verdict_case{"clean_exit", {.wait_status = exited(0)}, crash, "exit code 0", false, false, false},
        verdict_case{"exit_code", {.wait_status = exited(3)}, crash, "exit code 3", true, false, false},
        verdict_case{"segfault", {.wait_status = signaled(SIGSEGV)}, crash, "SIGSEGV", true, false, false},
        verdict_case{"abort", {.wait_status = signaled(SIGABRT)}, crash, "SIGABRT", true, false, false},
        verdict_case{"sigkill_from_outside", {.wait_status = signaled(SIGKILL)}, crash, "SIGKILL", true, false, true},
        verdict_case{"sigkill_by_the_supervisor_is_not_from_outside",
                     {.wait_status = signaled(SIGKILL), .why = ending::hostile}, crash, "SIGKILL", true, false, false},
        verdict_case{"timeout_even_if_it_exited_cleanly",
                     {.wait_status = exited(0), .why = ending::timeout}, timeout, "timeout", true, false, false},
        verdict_case{"timeout_killed", {.wait_status = signaled(SIGKILL), .why = ending::timeout}, timeout, "timeout", true, false, false},
        verdict_case{"sigkill_near_the_memory_limit",
                     {.wait_status = signaled(SIGKILL), .max_rss_kib = 922 * 1024, .memory_limit = 1024 * k_mib},
                     memory, "memory", true, false, true},
        verdict_case{"sigkill_well_under_the_memory_limit",
                     {.wait_status = signaled(SIGKILL), .max_rss_kib = 900 * 1024, .memory_limit = 1024 * k_mib},
                     crash, "SIGKILL", true, false, true},
        verdict_case{"a_big_rss_without_a_limit_is_no_memory_death",
                     {.wait_status = signaled(SIGKILL), .max_rss_kib = 8 * 1024 * 1024}, crash, "SIGKILL", true, false, true},
        verdict_case{"segfault_near_the_limit_is_a_crash",
                     {.wait_status = signaled(SIGSEGV), .max_rss_kib = 1024 * 1024, .memory_limit = 1024 * k_mib},
                     crash, "SIGSEGV", true, false, false},
        verdict_case{"the_workers_out_of_memory_flag",
                     {.wait_status = exited(1), .out_of_memory = true}, memory, "memory", true, false, false},
        verdict_case{"clean_recycle_is_planned", {.wait_status = exited(0), .why = ending::recycle}, crash, "exit code 0", false, true, false},
        verdict_case{"a_recycle_that_crashed_is_not", {.wait_status = signaled(SIGABRT), .why = ending::recycle},
                     crash, "SIGABRT", true, false, false},
        verdict_case{"a_strategys_kill_is_planned", {.wait_status = signaled(SIGKILL), .why = ending::strategy},
                     crash, "SIGKILL", true, true, false},
        verdict_case{"its_servers_death_is_planned", {.wait_status = signaled(SIGKILL), .server_died = true},
                     crash, "fork server died", true, true, true},
        verdict_case{"unnamed_signal", {.wait_status = signaled(SIGRTMIN + 1)}, crash,
                     "signal " + std::to_string(SIGRTMIN + 1), true, false, false}),
    [](const auto& tc) { return tc.param.name; });

struct charge_case {
  std::string name;
  std::vector<std::uint64_t> in_flight;
  std::uint64_t current;
  ending why;
  bool planned;
  std::optional<std::size_t> expected;
};
void PrintTo(const charge_case& c, std::ostream* os) { *os << c.name; }

class ChargedJob : public testing::TestWithParam<charge_case> {};

TEST_P(ChargedJob, IsTheOneItRanOrTheOneTimed) {
  const auto& c = GetParam();
  death_verdict v;
  v.planned = c.planned;
  EXPECT_EQ(charged_job(c.in_flight, c.current, v, c.why), c.expected);
}

INSTANTIATE_TEST_SUITE_P(
    Table, ChargedJob,
    testing::Values(charge_case{"idle", {}, 0, ending::none, false, std::nullopt},
                    charge_case{"the_one_it_ran", {7, 8, 9}, 8, ending::none, false, 1},
                    charge_case{"killed_mid_job_charges_it_not_the_one_queued_behind", {7, 8}, 7, ending::none, false, 0},
                    charge_case{"none_it_holds", {7, 8, 9}, 42, ending::none, false, std::nullopt},
                    charge_case{"not_yet_started", {7, 8}, 0, ending::none, false, std::nullopt},
                    charge_case{"a_timeout_charges_the_oldest", {7, 8}, 0, ending::timeout, false, 0},
                    charge_case{"a_timeout_its_word_picks", {7, 8}, 8, ending::timeout, false, 1},
                    charge_case{"planned_charges_none", {7, 8}, 7, ending::strategy, true, std::nullopt}),
    [](const auto& tc) { return tc.param.name; });

}  // namespace
}  // namespace ringmaster::detail
