// The embedding API: thin forwarding to the dispatcher, plus the completion queue.
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <deque>
#include <thread>
#include <mutex>
#include <ringmaster/supervisor/supervisor.hpp>
#include <ringmaster/worker/detail/enum_names.hpp>

#include "dispatcher.hpp"

namespace ringmaster {

// --- names

namespace {
constexpr std::array<std::string_view, 3> k_restart_types{"permanent", "transient", "temporary"};
constexpr std::array<std::string_view, 3> k_strategies{"one_for_one", "one_for_all", "rest_for_one"};
constexpr std::array<std::string_view, 8> k_states{"starting", "ready", "busy", "stopping", "backoff", "exited", "signaled", "stopped"};
static_assert(detail::names_every_enumerator<restart_type>(k_restart_types), "restart_type and its names differ");
static_assert(detail::names_every_enumerator<restart_strategy>(k_strategies), "restart_strategy and its names differ");
static_assert(detail::names_every_enumerator<worker_state>(k_states), "worker_state and its names differ");

template <class E, std::size_t N>
std::optional<E> parse(const std::array<std::string_view, N>& names, std::string_view s) noexcept {
  for (std::size_t i = 0; i < N; ++i)
    if (names[i] == s) return static_cast<E>(i);
  return std::nullopt;
}
}  // namespace

std::string_view to_string(restart_type t) noexcept { return k_restart_types[static_cast<std::size_t>(t)]; }
std::string_view to_string(restart_strategy s) noexcept { return k_strategies[static_cast<std::size_t>(s)]; }
std::string_view to_string(worker_state s) noexcept { return k_states[static_cast<std::size_t>(s)]; }
std::optional<restart_type> restart_type_from_string(std::string_view s) noexcept { return parse<restart_type>(k_restart_types, s); }
std::optional<restart_strategy> restart_strategy_from_string(std::string_view s) noexcept {
  return parse<restart_strategy>(k_strategies, s);
}

// --- shared memory

std::size_t shared_memory_per_worker(const pool_options& o) noexcept {
  constexpr std::size_t k_segment_header = 4096;  // ipc::segment's header, rounded up to a page
  return wire::link_layout::for_body(std::min(o.max_message, wire::k_max_body)).total + k_segment_header;
}

std::size_t shared_memory_of(const pool_options& o) noexcept {
  const unsigned workers = o.workers == 0 ? std::max(1u, std::thread::hardware_concurrency()) : o.workers;
  return shared_memory_per_worker(o) * workers;
}

std::size_t available_memory() noexcept {
  FILE* f = std::fopen("/proc/meminfo", "re");
  if (!f) return 0;
  char line[256];
  std::size_t kib = 0;
  while (std::fgets(line, sizeof line, f))
    if (std::sscanf(line, "MemAvailable: %zu kB", &kib) == 1) break;
  std::fclose(f);
  return kib * 1024;
}

// --- completion_queue

struct completion_queue::impl {
  std::mutex mutex;
  std::deque<result> results;
};

completion_queue::completion_queue() : impl_(std::make_unique<impl>()) {
  fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (fd_ < 0) throw std::system_error(errno, std::system_category(), "cannot create a completion queue's eventfd");
}

completion_queue::~completion_queue() { ::close(fd_); }

void completion_queue::push(result r) {
  std::lock_guard lock(impl_->mutex);
  impl_->results.push_back(std::move(r));
  // Under the lock, so that readiness and contents never disagree for long.
  ipc::detail::eventfd_signal(fd_);
}

std::optional<result> completion_queue::try_pop() {
  std::lock_guard lock(impl_->mutex);
  if (impl_->results.empty()) return std::nullopt;
  result r = std::move(impl_->results.front());
  impl_->results.pop_front();
  if (impl_->results.empty()) {
    std::uint64_t n;
    (void)::read(fd_, &n, sizeof n);  // no longer readable
  }
  return r;
}

std::vector<result> completion_queue::drain() {
  std::lock_guard lock(impl_->mutex);
  std::vector<result> out(std::make_move_iterator(impl_->results.begin()), std::make_move_iterator(impl_->results.end()));
  impl_->results.clear();
  std::uint64_t n;
  (void)::read(fd_, &n, sizeof n);
  return out;
}

std::optional<result> completion_queue::pop(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (auto r = try_pop()) return r;
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return std::nullopt;
    pollfd p{fd_, POLLIN, 0};
    ::poll(&p, 1, static_cast<int>(left.count()) + 1);
  }
}

// --- pool

const std::string& pool::name() const noexcept { return state_->name; }

namespace {
// A job_spec's record: its strings moved in, so that a large payload is never copied.
std::unique_ptr<detail::job_record> record_of(detail::pool_state& p, job_spec&& spec) {
  auto job = p.owner->new_job_for(p, {}, {}, std::move(spec.id));
  job->type = std::move(spec.type);
  job->payload = std::move(spec.payload);
  job->tag = spec.tag;
  return job;
}

job_counters counters_of(const detail::pool_state& p) noexcept {
  job_counters c;
  c.submitted = p.submitted.load(std::memory_order_relaxed);
  c.in_flight = p.in_flight.load(std::memory_order_relaxed);
  // Unfinished covers the inbox, the queue and the slots: what is not in a slot is queued.
  const std::uint64_t unfinished = p.unfinished.load(std::memory_order_relaxed);
  c.queued = unfinished > c.in_flight ? unfinished - c.in_flight : 0;
  c.completed = p.completed.load(std::memory_order_relaxed);
  c.failed = p.failed.load(std::memory_order_relaxed);
  c.retried = p.retried.load(std::memory_order_relaxed);
  return c;
}
}  // namespace

std::future<result> pool::submit(std::string_view type, std::string_view payload, std::string id) {
  auto job = state_->owner->new_job_for(*state_, type, payload, std::move(id));
  auto future = job->target.emplace<std::promise<result>>().get_future();
  state_->owner->submit(*state_, job, true);
  return future;
}

void pool::submit(std::string_view type, std::string_view payload, completion_callback done, std::string id) {
  auto job = state_->owner->new_job_for(*state_, type, payload, std::move(id));
  job->target = std::move(done);
  state_->owner->submit(*state_, job, true);
}

void pool::submit(std::string_view type, std::string_view payload, completion_queue& queue, std::string id) {
  auto job = state_->owner->new_job_for(*state_, type, payload, std::move(id));
  job->target = &queue;
  state_->owner->submit(*state_, job, true);
}

bool pool::try_submit(std::string_view type, std::string_view payload, completion_callback done, std::string id) {
  auto job = state_->owner->new_job_for(*state_, type, payload, std::move(id));
  job->target = std::move(done);
  return state_->owner->submit(*state_, job, false);
}

std::future<result> pool::submit(job_spec job) {
  auto record = record_of(*state_, std::move(job));
  auto future = record->target.emplace<std::promise<result>>().get_future();
  state_->owner->submit(*state_, record, true);
  return future;
}

void pool::submit(job_spec job, completion_callback done) {
  auto record = record_of(*state_, std::move(job));
  record->target = std::move(done);
  state_->owner->submit(*state_, record, true);
}

void pool::submit(job_spec job, completion_queue& queue) {
  auto record = record_of(*state_, std::move(job));
  record->target = &queue;
  state_->owner->submit(*state_, record, true);
}

bool pool::try_submit(job_spec&& job, completion_callback done) {
  const bool default_id = job.id.empty();  // given back empty, not as the number it was given
  auto record = record_of(*state_, std::move(job));
  record->target = std::move(done);
  if (state_->owner->submit(*state_, record, false)) return true;
  job.type = std::move(record->type);
  job.payload = std::move(record->payload);
  job.id = default_id ? std::string() : std::move(record->id);
  return false;
}

job_counters pool::counters() const noexcept { return counters_of(*state_); }

void pool::scale(unsigned workers) { state_->owner->scale(*state_, workers); }

// --- supervisor

supervisor::supervisor(supervisor_options options)
    : dispatcher_(std::make_unique<detail::dispatcher>(std::move(options))) {}

supervisor::~supervisor() = default;

pool& supervisor::add_pool(std::string name, const handlers& h, pool_options options) {
  return dispatcher_->add_pool(std::move(name), &h, std::move(options)).api;
}

pool& supervisor::add_pool(std::string name, pool_options options) {
  if (options.command.empty()) throw std::invalid_argument("pool '" + name + "': a pool without handlers needs a command");
  return dispatcher_->add_pool(std::move(name), nullptr, std::move(options)).api;
}

pool* supervisor::find_pool(std::string_view name) noexcept { return dispatcher_->find_pool(name); }
bool supervisor::remove_pool(std::string_view name) { return dispatcher_->remove_pool(name); }
void supervisor::start() { dispatcher_->start(); }
void supervisor::drain() { dispatcher_->drain(); }
void supervisor::stop() { dispatcher_->stop(dispatcher_->options().shutdown_timeout); }
void supervisor::stop(std::chrono::milliseconds grace) { dispatcher_->stop(std::max(grace, std::chrono::milliseconds(0))); }
bool supervisor::wait_idle(std::chrono::milliseconds timeout) { return dispatcher_->wait_idle(timeout); }
supervisor_status supervisor::status() const { return dispatcher_->status(); }

job_counters supervisor::counters() const {
  job_counters sum;
  dispatcher_->for_each_pool([&](const detail::pool_state& p) {
    const job_counters c = counters_of(p);
    sum.submitted += c.submitted;
    sum.queued += c.queued;
    sum.in_flight += c.in_flight;
    sum.completed += c.completed;
    sum.failed += c.failed;
    sum.retried += c.retried;
  });
  return sum;
}
bool supervisor::any_pool_gave_up() const { return dispatcher_->any_gave_up(); }
const supervisor_options& supervisor::options() const noexcept { return dispatcher_->options(); }
pid_t supervisor::fork_server_pid() const { return dispatcher_->fork_server_pid(); }

}  // namespace ringmaster
