// The one way into a completion_queue besides its public API: the dispatcher pushes a
// job's result through here (completion_queue::push is private, so a user of the
// installed headers cannot fake a result).
#pragma once

#include <ringmaster/supervisor/supervisor.hpp>
#include <utility>

namespace ringmaster::detail {

struct completion_queue_access {
  static void push(completion_queue& queue, result r) { queue.push(std::move(r)); }
};

}  // namespace ringmaster::detail
