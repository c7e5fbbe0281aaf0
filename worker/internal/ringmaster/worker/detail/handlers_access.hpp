// ringmaster/worker/detail/handlers_access.hpp — what ringmaster's own code needs of a
// handlers object and a job beyond their public API. Internal: used by the fork server
// (to find a pool's handlers object in a forked copy of the process) and the worker
// runtime (to run the hooks, to make each job); not installed, so a program built
// against the installed package cannot reach any of it.
#pragma once

#include <cstdint>
#include <functional>
#include <string_view>

#include <ringmaster/worker/handlers.hpp>

namespace ringmaster::detail {

struct handlers_access {
  /// `h`'s number in the process's registry of handlers objects. A forked copy of the
  /// process has the same objects under the same numbers.
  [[nodiscard]] static std::uint32_t registry_id(const handlers& h) noexcept { return h.id_; }
  /// The handlers object registered as `id` in this process, or nullptr. Thread-safe.
  [[nodiscard]] static const handlers* lookup(std::uint32_t id) noexcept;
  /// A hash of the registered types: two copies of one object agree on it only if no
  /// type was added to one of them after they diverged (at fork).
  [[nodiscard]] static std::uint64_t fingerprint(const handlers& h) noexcept;
  /// The hooks given to on_start and on_stop (empty when none was).
  [[nodiscard]] static const std::function<void(int)>& start_hook(const handlers& h) noexcept { return h.on_start_; }
  [[nodiscard]] static const std::function<void(int)>& stop_hook(const handlers& h) noexcept { return h.on_stop_; }
  /// Makes `fn` the handler of every type `h` has no handler for (the adapter of a
  /// user's program, adapter.hpp). It is kept under the empty type, which on() refuses,
  /// so names() lists it as an empty line and a supervisor learns no types from it.
  static void catch_all(handlers& h, handler fn) { h.table_.insert_or_assign(std::string(), std::move(fn)); }
};

/// What the worker runtime makes a job from (job's constructor): views valid while the
/// handler runs.
struct job_context {
  worker_runtime* runtime = nullptr;
  std::string_view type, payload, id;
  unsigned attempt = 0;
  int slot = -1;
};

}  // namespace ringmaster::detail
