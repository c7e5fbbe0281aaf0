// fork_server_succession.hpp — what follows when a fork server goes (ARCHITECTURE.md,
// "The standby and promotion"): the active one's death promotes the standby or, with none
// left, gives every pool up; a standby is forked whenever one is missing and can be; one
// that could not be forked is tried again after a capped, doubling delay; a server that
// owes an answer (a death it has not reported, a spawn it has not answered) for longer
// than start_timeout is taken for dead. Pure: the caller passes what it knows and now.
#pragma once

#include <algorithm>
#include <chrono>

namespace ringmaster::detail {

/// What the active fork server's death leads to.
struct succession {
  bool promote = false;       ///< the standby becomes the active server
  bool fork_standby = false;  ///< then the zygote is asked for a new standby
  bool give_up = false;       ///< no server is left: every pool gives up
  friend constexpr bool operator==(const succession&, const succession&) = default;
};

/// After the active server died: `standby` and `zygote` say whether each is still there.
constexpr succession after_active_death(bool standby, bool zygote) noexcept {
  if (!standby) return {.give_up = true};
  return {.promote = true, .fork_standby = zygote};
}

/// Whether to ask the zygote for a standby now: one is missing, there is an active server
/// for it to stand by (without one the pools have given up), and a zygote to fork it.
constexpr bool standby_wanted(bool standby, bool active, bool zygote) noexcept { return !standby && active && zygote; }

/// The wait before the next attempt to fork a standby after `failures` (at least 1) in
/// a row failed: `first`, doubling with each further failure, at most `max`.
constexpr std::chrono::milliseconds standby_retry_delay(unsigned failures, std::chrono::milliseconds first,
                                                        std::chrono::milliseconds max) noexcept {
  // The exponent is capped so that the shift cannot overflow, however many failures.
  const unsigned doublings = std::min(failures == 0 ? 0u : failures - 1, 6u);
  return std::min(first * (1 << doublings), max);
}

/// When an answer the active server has owed since `since` becomes overdue.
constexpr std::chrono::steady_clock::time_point answer_due(std::chrono::steady_clock::time_point since,
                                                          std::chrono::milliseconds start_timeout) noexcept {
  return since + start_timeout;
}

/// Whether an answer owed since `since` is overdue at `now`: longer than start_timeout.
constexpr bool answer_overdue(std::chrono::steady_clock::time_point since, std::chrono::milliseconds start_timeout,
                              std::chrono::steady_clock::time_point now) noexcept {
  return now - since > start_timeout;
}

}  // namespace ringmaster::detail
