// What a worker's message means (supervisor/src/worker_events.hpp): each kind a worker
// may send, when it may send it, and what it may not, as a table. No process, no ring.
#include <gtest/gtest.h>

#include <worker_events.hpp>

#include <ostream>
#include <string>

namespace ringmaster::detail {
namespace {

constexpr std::uint64_t generation = 7;
constexpr std::uint64_t front = 42;

constexpr link_facts starting{.said_ready = false, .generation = generation, .front = std::nullopt};
constexpr link_facts idle{.said_ready = true, .generation = generation, .front = std::nullopt};
constexpr link_facts busy{.said_ready = true, .generation = generation, .front = front};

enum class expect { ready, result, submit, fatal, violation };

struct event_case {
  std::string name;
  link_facts facts;
  wire::message message;
  expect kind;
  std::string detail;  // the violation's words, or the event's text
};
void PrintTo(const event_case& c, std::ostream* os) { *os << c.name; }

std::string text_of(const worker_event& e) {
  if (auto* r = std::get_if<worker_ready>(&e)) return std::string(r->handler_names);
  if (auto* r = std::get_if<worker_result>(&e)) return std::string(r->value);
  if (auto* r = std::get_if<worker_submit>(&e)) return std::string(r->payload);
  if (auto* r = std::get_if<worker_fatal>(&e)) return std::string(r->why);
  return std::string(std::get<protocol_violation>(e).why);
}

class WorkerEvents : public testing::TestWithParam<event_case> {};

TEST_P(WorkerEvents, ReadEachMessageAsItsEventOrAViolation) {
  const auto& c = GetParam();
  const worker_event e = read_worker_message(c.facts, c.message);
  EXPECT_EQ(e.index(), static_cast<std::size_t>(c.kind));
  EXPECT_EQ(text_of(e), c.detail);
}

using wire::kind;

INSTANTIATE_TEST_SUITE_P(
    Table, WorkerEvents,
    testing::Values(
        event_case{"ReadyForTheCurrentRings", starting, {.type = kind::ready, .token = generation, .body = "a\nb"}, expect::ready,
                   "a\nb"},
        event_case{"ReadyForRingsResetSince", starting, {.type = kind::ready, .token = generation - 1}, expect::violation,
                   "sent a stale or repeated ready"},
        event_case{"ReadyTwice", idle, {.type = kind::ready, .token = generation}, expect::violation,
                   "sent a stale or repeated ready"},
        event_case{"ResultOfTheJobItRunsFirst", busy, {.type = kind::result, .token = front, .body = "42"}, expect::result, "42"},
        event_case{"ResultOfAJobItDoesNotHold", busy, {.type = kind::result, .token = front + 1}, expect::violation,
                   "answered a job it does not hold"},
        event_case{"ResultWhileItHoldsNone", idle, {.type = kind::result, .token = front}, expect::violation,
                   "answered a job it does not hold"},
        event_case{"SubmitFromAHandler", busy, {.type = kind::submit, .token = 3, .pool = "p", .body = "x"}, expect::submit, "x"},
        event_case{"FatalBeforeReady", starting, {.type = kind::fatal, .body = "no such handler"}, expect::fatal,
                   "no such handler"},
        event_case{"FatalAfterReady", idle, {.type = kind::fatal, .body = "lies"}, expect::violation, "sent fatal after ready"},
        event_case{"AJobIsTheSupervisorsToSend", busy, {.type = kind::job}, expect::violation,
                   "sent a message only a supervisor may send"},
        event_case{"AReplyIsTheSupervisorsToSend", busy, {.type = kind::reply}, expect::violation,
                   "sent a message only a supervisor may send"},
        event_case{"AStopIsTheSupervisorsToSend", idle, {.type = kind::stop}, expect::violation,
                   "sent a message only a supervisor may send"},
        event_case{"AnUnknownKind", idle, {.type = static_cast<kind>(99)}, expect::violation,
                   "sent a message only a supervisor may send"}),
    [](const testing::TestParamInfo<event_case>& tc) { return tc.param.name; });

TEST(WorkerEvents, AResultKeepsOnlyTheErrorsAHandlerMayReport) {
  for (const error_kind kept : {error_kind::none, error_kind::exception, error_kind::memory, error_kind::rejected}) {
    const auto e = read_worker_message(busy, {.type = kind::result, .status = static_cast<std::uint8_t>(kept), .token = front});
    EXPECT_EQ(std::get<worker_result>(e).error, kept) << to_string(kept);
  }
  // Only the supervisor decides that a job crashed, timed out or was stopped.
  for (const std::uint8_t forged : {std::uint8_t(error_kind::crash), std::uint8_t(error_kind::timeout),
                                    std::uint8_t(error_kind::stopped), std::uint8_t{200}}) {
    const auto e = read_worker_message(busy, {.type = kind::result, .status = forged, .token = front});
    EXPECT_EQ(std::get<worker_result>(e).error, error_kind::exception) << int(forged);
  }
}

TEST(WorkerEvents, AResultCarriesItsRunTime) {
  const auto e = read_worker_message(busy, {.type = kind::result, .run_us = 1234, .token = front});
  EXPECT_EQ(std::get<worker_result>(e).run_us, 1234u);
}

TEST(WorkerEvents, ASubmitCarriesItsRequestAndNames) {
  const auto e = read_worker_message(
      idle, {.type = kind::submit, .token = 9, .pool = "other", .job_type = "echo", .id = "j1", .body = "payload"});
  const auto& s = std::get<worker_submit>(e);
  EXPECT_EQ(s.request, 9u);
  EXPECT_EQ(s.pool, "other");
  EXPECT_EQ(s.job_type, "echo");
  EXPECT_EQ(s.id, "j1");
  EXPECT_EQ(s.payload, "payload");
}

TEST(WorkerEvents, AFatalTextIsCutToItsLimit) {
  const std::string long_text(5000, 'x');
  const auto e = read_worker_message(starting, {.type = kind::fatal, .body = long_text});
  EXPECT_EQ(std::get<worker_fatal>(e).why.size(), k_max_fatal_text);
}

}  // namespace
}  // namespace ringmaster::detail
