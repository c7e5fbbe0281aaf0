// What the embedding API waits for beside the jobs (supervisor.hpp): wait_ready, answered
// by the dispatcher thread, the only one that sees the slots; and the first exception a
// completion callback threw, kept for the caller's next wait.
#include <spdlog/spdlog.h>

#include <exception>
#include <stdexcept>
#include <utility>

#include "dispatcher.hpp"

namespace ringmaster::detail {

readiness dispatcher::wait_ready(std::chrono::milliseconds timeout) {
  if (!started_.load()) throw std::logic_error("wait_ready() before start(): no worker would ever start");
  require_other_thread("wait_ready()");
  auto answer = std::make_shared<std::promise<readiness>>();
  auto f = answer->get_future();
  if (!post([this, answer] { ready_waiters_.push_back(answer); })) return readiness::stopped;
  if (f.wait_for(std::max(timeout, std::chrono::milliseconds(0))) != std::future_status::ready) return readiness::timed_out;
  return f.get();
}

// At the end of every pass while someone waits (and once the loop has ended): a worker
// becomes ready, and a pool gives up, only on this thread, inside a pass. A waiter that
// timed out meanwhile is answered all the same, into a future nobody reads.
void dispatcher::answer_ready_waiters() {
  if (ready_waiters_.empty()) return;
  std::optional<readiness> now;
  if (phase_ != phase::running) now = readiness::stopped;
  bool every_worker_ready = true;
  for (const pool_state* p : live_) {
    if (now || p->removed.load()) continue;  // a removed pool is no longer waited for
    if (p->gave_up) now = readiness::gave_up;
    for (const auto& s : p->slots)  // a retired slot (temporary, scaled out) is not coming back
      if (!s->retired() && !(s->alive() && s->life.said_ready)) every_worker_ready = false;
  }
  if (!now && every_worker_ready) now = readiness::ready;
  if (!now) return;
  for (auto& w : ready_waiters_) w->set_value(*now);
  ready_waiters_.clear();
}

// Caught on the thread that ran the callback (the dispatcher's, or a submitter's for a
// refusal): an exception let through would end the dispatcher thread and the program.
void dispatcher::keep_callback_exception(pool_state& p, std::exception_ptr e) {
  p.callback_exceptions.fetch_add(1, std::memory_order_relaxed);
  std::string what = "an exception not derived from std::exception";
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& x) {
    what = x.what();
  } catch (...) {
  }
  bool first = false;
  {
    std::lock_guard lock(callback_exception_mutex_);
    if (!callback_exception_) callback_exception_ = std::move(e), first = true;
  }
  log_->error("{}: a completion callback of pool '{}' threw: {}{}", options_.name, p.name, what,
              first ? " (rethrown by the next drain, stop, wait_idle or wait_ready)" : "");
}

std::exception_ptr dispatcher::take_callback_exception() {
  std::lock_guard lock(callback_exception_mutex_);
  return std::exchange(callback_exception_, nullptr);
}

}  // namespace ringmaster::detail
