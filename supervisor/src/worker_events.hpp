// worker_events.hpp — what a worker's message means: one typed event, or the protocol
// violation that gets the worker killed. Pure: the rules of what a worker may send when
// live here, given the few facts of its slot they need; the dispatcher acts on the event
// (worker_link.cpp). A worker is untrusted: every field it sets is checked or clamped.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>
#include <variant>

#include <ringmaster/worker/detail/wire.hpp>
#include <ringmaster/worker/result.hpp>

namespace ringmaster::detail {

/// What the rules need to know of the slot that sent the message.
struct link_facts {
  bool said_ready = false;               ///< it said `ready` since its spawn
  std::uint64_t generation = 0;          ///< of its rings, as reset after its last death
  std::optional<std::uint64_t> front;    ///< token of the oldest job it holds, if any
};

/// It attached to the current rings and serves these job types ('\n'-separated).
struct worker_ready {
  std::string_view handler_names;
};
/// The result of the oldest job it holds.
struct worker_result {
  error_kind error = error_kind::none;  ///< one a handler may report; anything else is `exception`
  std::uint32_t run_us = 0;
  std::string_view value;
};
/// A job its handler submits to a pool (job::post, job::submit); request 0: no reply.
struct worker_submit {
  std::uint64_t request = 0;
  std::string_view pool, job_type, id, payload;
};
/// It cannot start, in its own words (at most 2,000 bytes of them).
struct worker_fatal {
  std::string_view why;
};
/// It broke the protocol: said as "worker P/N <why>; killing it".
struct protocol_violation {
  std::string_view why;
};

using worker_event = std::variant<worker_ready, worker_result, worker_submit, worker_fatal, protocol_violation>;

inline constexpr std::size_t k_max_fatal_text = 2000;

/// The event `m` is from a worker whose slot is as `f` says.
inline worker_event read_worker_message(const link_facts& f, const wire::message& m) noexcept {
  switch (m.type) {
    case wire::kind::ready:
      // Once per process, for the rings as they are now: a stale one (a ready meant for
      // rings reset since) or a second one is not the worker we think.
      if (f.said_ready || m.token != f.generation) return protocol_violation{"sent a stale or repeated ready"};
      return worker_ready{m.body};
    case wire::kind::result: {
      // Only for the job it ran first: results come back in the order jobs were sent.
      if (!f.front || *f.front != m.token) return protocol_violation{"answered a job it does not hold"};
      const auto kind = static_cast<error_kind>(m.status);
      const bool known = kind == error_kind::none || kind == error_kind::exception || kind == error_kind::memory ||
                         kind == error_kind::rejected;
      return worker_result{.error = known ? kind : error_kind::exception, .run_us = m.run_us, .value = m.body};
    }
    case wire::kind::submit:
      return worker_submit{.request = m.token, .pool = m.pool, .job_type = m.job_type, .id = m.id, .payload = m.body};
    case wire::kind::fatal:
      // Said by a worker that cannot start, never after ready (a ready worker sending it
      // would keep its job and write error lines of its choosing into our log).
      if (f.said_ready) return protocol_violation{"sent fatal after ready"};
      return worker_fatal{m.body.substr(0, k_max_fatal_text)};
    case wire::kind::job:
    case wire::kind::reply:
    case wire::kind::stop: break;
  }
  return protocol_violation{"sent a message only a supervisor may send"};
}

}  // namespace ringmaster::detail
