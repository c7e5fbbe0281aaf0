// job_group (supervisor.hpp): a batch's results gathered by completion callbacks into one
// shared state, so that the group may go before its jobs do.
#include <condition_variable>
#include <mutex>
#include <ringmaster/supervisor/supervisor.hpp>
#include <utility>

namespace ringmaster {

struct job_group::state {
  std::mutex mutex;
  std::condition_variable all_done;
  std::size_t submitted = 0, done = 0, failed = 0;
  std::vector<result> results;  // delivered, not yet taken
};

job_group::job_group() : state_(std::make_shared<state>()) {}
job_group::~job_group() = default;

completion_callback job_group::enter() {
  {
    std::lock_guard lock(state_->mutex);
    ++state_->submitted;  // before the job exists: wait() never sees it done before it was counted
  }
  return [s = state_](result r) {
    std::lock_guard lock(s->mutex);
    ++s->done;
    if (!r.ok()) ++s->failed;
    s->results.push_back(std::move(r));
    if (s->done == s->submitted) s->all_done.notify_all();
  };
}

void job_group::leave() noexcept {
  std::lock_guard lock(state_->mutex);
  --state_->submitted;
  if (state_->done == state_->submitted) state_->all_done.notify_all();
}

void job_group::submit(pool& p, job_spec job) {
  auto done = enter();
  try {
    p.submit(std::move(job), std::move(done));
  } catch (...) {
    leave();
    throw;
  }
}

void job_group::submit(pool& p, std::string_view type, std::string_view payload, std::string id) {
  auto done = enter();
  try {
    p.submit(type, payload, std::move(done), std::move(id));
  } catch (...) {
    leave();
    throw;
  }
}

bool job_group::wait(std::chrono::milliseconds timeout) {
  std::unique_lock lock(state_->mutex);
  return state_->all_done.wait_for(lock, timeout, [&] { return state_->done == state_->submitted; });
}

std::size_t job_group::size() const {
  std::lock_guard lock(state_->mutex);
  return state_->submitted;
}

std::size_t job_group::done() const {
  std::lock_guard lock(state_->mutex);
  return state_->done;
}

std::size_t job_group::failed() const {
  std::lock_guard lock(state_->mutex);
  return state_->failed;
}

std::vector<result> job_group::take_results() {
  std::lock_guard lock(state_->mutex);
  return std::exchange(state_->results, {});
}

}  // namespace ringmaster
