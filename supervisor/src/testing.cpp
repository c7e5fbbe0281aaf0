// The test seams of ringmaster/supervisor/detail/testing.hpp.
#include <ringmaster/supervisor/detail/testing.hpp>

#include "dispatcher.hpp"

namespace ringmaster::detail {

// The one way into a supervisor's dispatcher from outside the embedding API (befriended
// by supervisor, defined here only).
struct supervisor_access {
  static dispatcher& dispatcher_of(const supervisor& sup) noexcept { return *sup.dispatcher_; }
};

pid_t fork_server_pid(const supervisor& sup) { return supervisor_access::dispatcher_of(sup).fork_server_pid(); }

}  // namespace ringmaster::detail
