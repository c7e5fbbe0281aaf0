// The dispatcher's API side, called from user threads: adding and finding pools, submitting
// jobs, status, scaling and removing pools, and posting commands to the dispatcher thread.

#include "dispatcher.hpp"
#include "dispatcher_internal.hpp"
#include "completion_queue_access.hpp"

#include "policy/attempt_outcome.hpp"
#include "policy/backoff.hpp"
#include "policy/restart_or_retire.hpp"
#include "policy/start_failure.hpp"
#include "policy/strategy.hpp"

#include <signal.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <dirent.h>
#include <random>
#include <ringmaster/worker/detail/log.hpp>
#include <ringmaster/worker/serve.hpp>
#include <stdexcept>

namespace ringmaster::detail {
namespace {

// A size as a person reads it: "512 KiB", "16.0 MiB", "8.0 GiB".
std::string format_size(std::size_t b) {
  char out[32];
  if (b < (std::size_t{1} << 10)) return std::to_string(b) + " bytes";
  if (b < (std::size_t{1} << 20)) std::snprintf(out, sizeof out, "%.1f KiB", static_cast<double>(b) / (1 << 10));
  else if (b < (std::size_t{1} << 30)) std::snprintf(out, sizeof out, "%.1f MiB", static_cast<double>(b) / (1 << 20));
  else std::snprintf(out, sizeof out, "%.1f GiB", static_cast<double>(b) / (1 << 30));
  return out;
}

// Resident set size of a process, in bytes (0 if it is gone).
std::size_t rss_of(pid_t pid) {
  char path[40];
  std::snprintf(path, sizeof path, "/proc/%d/statm", static_cast<int>(pid));
  FILE* f = std::fopen(path, "re");
  if (!f) return 0;
  unsigned long size = 0, resident = 0;
  const int n = std::fscanf(f, "%lu %lu", &size, &resident);
  std::fclose(f);
  return n == 2 ? resident * static_cast<std::size_t>(::sysconf(_SC_PAGESIZE)) : 0;
}

}  // namespace

pool_state& dispatcher::add_pool(std::string name, const handlers* h, pool_options o) {
  check_pool_request(name, h != nullptr, o);
  if (o.workers == 0) o.workers = std::max(1u, std::thread::hardware_concurrency());
  check_descriptor_budget(name, o.workers, nullptr);
  auto p = std::make_unique<pool_state>();
  p->name = std::move(name);
  p->options = std::move(o);
  p->fork_handlers = h;
  if (h)
    for (auto& t : h->names()) p->types.insert(t);
  p->layout = wire::link_layout::for_body(p->options.max_message);
  p->owner = this;
  if (!accepting_pools_.load()) {  // added after stop()/drain(): it will never run
    p->accepting.store(false);
    p->refusal = "supervisor is stopping";
  }
  pool_state* raw = p.get();
  {
    std::lock_guard lock(pools_mutex_);
    for (auto& existing : pools_)
      if (existing->name == raw->name && !existing->removed.load())
        throw invalid_request(errc::duplicate_pool, "a pool named '" + raw->name + "' already exists");
    check_shared_memory(*raw);
    raw->index = pools_.size();
    for (unsigned i = 0; i < raw->options.workers; ++i) {
      auto s = std::make_unique<slot_state>();
      s->index = static_cast<int>(i);
      s->pool = raw->index;
      raw->slots.push_back(std::move(s));
    }
    pools_.push_back(std::move(p));
  }
  // A running dispatcher picks the new pool up on its next pass (take_commands).
  if (started_.load()) post([] {});
  return *raw;
}

// Each worker's segment is reserved whole (posix_fallocate) when it first starts, and
// shared memory is charged to no process: a config that maps more than the machine has
// would make the kernel kill unrelated processes first. So a pool is refused here if its
// workers', plus those of the pools added and not started yet, would map more than
// MemAvailable. (Segments are memfd, not files of /dev/shm: its size limit does not
// apply to them.) Under pools_mutex_.
void dispatcher::check_shared_memory(const pool_state& p) const {
  const std::size_t available = available_memory();
  if (available == 0) return;  // no /proc/meminfo: nothing to judge by
  std::size_t need = shared_memory_of(p.options);
  std::string others;
  if (!started_.load())
    for (const auto& q : pools_) {
      need += shared_memory_of(q->options);
      others += ", pool '" + q->name + "' " + format_size(shared_memory_of(q->options));
    }
  if (need <= available) return;
  throw invalid_request(errc::not_enough_memory,
      "pool '" + p.name + "': workers = " + std::to_string(p.options.workers) + " with max_message = " +
      format_size(p.options.max_message) + " map " + format_size(shared_memory_of(p.options)) + " of shared memory (" +
      format_size(shared_memory_per_worker(p.options)) + " per worker" + ")" +
      (others.empty() ? "" : ", " + format_size(need) + " with the other pools (" + others.substr(2) + ")") +
      ", more than this machine has available (MemAvailable " + format_size(available) + "): lower workers or max_message");
}

pool* dispatcher::find_pool(std::string_view name) noexcept {
  std::lock_guard lock(pools_mutex_);
  for (auto& p : pools_)
    if (p->name == name && !p->removed.load()) return &p->api;
  return nullptr;
}

bool dispatcher::post(std::function<void()> command) {
  {
    std::lock_guard lock(commands_mutex_);
    if (commands_closed_) return false;  // the dispatcher has ended: nobody would run it
    commands_.push_back(std::move(command));
  }
  submissions_.fetch_add(1, std::memory_order_seq_cst);
  wake();
  return true;
}

void dispatcher::require_other_thread(const char* what) const {
  if (std::this_thread::get_id() == thread_.get_id())
    throw std::logic_error(std::string(what) + " called from a completion callback (the dispatcher thread) would wait for itself");
}

void dispatcher::drain() { shutdown(true, options_.shutdown_timeout); }

void dispatcher::stop(std::chrono::milliseconds grace) { shutdown(false, grace); }

void dispatcher::shutdown(bool drain, std::chrono::milliseconds grace) {
  if (!started_.load()) return;
  require_other_thread(drain ? "drain()" : "stop()");
  auto done = std::make_shared<std::promise<void>>();
  auto f = done->get_future();
  if (!post([this, done, drain, grace] {
        shutdown_waiters_.push_back(done);
        begin_shutdown(drain, grace);
      }))
    return;  // already finished
  f.wait();
}

bool dispatcher::wait_idle(std::chrono::milliseconds timeout) {
  std::unique_lock lock(idle_mutex_);
  return idle_cv_.wait_for(lock, timeout, [this] {
    std::lock_guard pl(pools_mutex_);
    return std::all_of(pools_.begin(), pools_.end(), [](auto& p) { return p->unfinished.load() == 0; });
  });
}

bool dispatcher::any_gave_up() {
  auto st = status();
  return std::any_of(st.pools.begin(), st.pools.end(), [](auto& p) { return p.gave_up; });
}

pid_t dispatcher::fork_server_pid() {
  if (!started_.load() || std::this_thread::get_id() == thread_.get_id()) return servers_.pid();
  std::promise<pid_t> pid;
  auto f = pid.get_future();
  if (!post([this, &pid] { pid.set_value(servers_.pid()); })) return servers_.pid();
  return f.get();
}

supervisor_status dispatcher::status() {
  auto snapshot = [this] {
    supervisor_status st;
    std::lock_guard lock(pools_mutex_);
    for (auto& p : pools_) {
      const bool gone = std::none_of(p->slots.begin(), p->slots.end(), [](auto& s) { return s->alive(); });
      if (p->removed.load() && p->removal_done && gone) continue;  // a removed pool, stopped
      pool_status ps;
      ps.name = p->name;
      ps.removed = p->removed.load();
      {
        std::lock_guard pl(p->mutex);
        ps.queued = p->queue.size() + p->inbox.size();
      }
      ps.completed = p->completed;
      ps.failed = p->failed;
      ps.retried = p->retried.load();
      ps.restarts = p->restarts;
      ps.gave_up = p->gave_up;
      ps.gave_up_reason = p->gave_up_reason;
      for (auto& s : p->slots) {
        ps.in_flight += s->in_flight.size();
        worker_status ws;
        ws.slot = s->index;
        ws.pid = s->pid;
        ws.state = s->state();
        ws.jobs_done = s->jobs_done;
        ws.jobs_failed = s->jobs_failed;
        ws.restarts = s->restarts;
        ws.restarts_by_cause = s->restarts_by_cause;
        if (ws.state == worker_state::busy) {
          ws.current_job = s->in_flight.front()->id;
          ws.current_job_ms = ms_since(s->front_started);
        }
        if (s->life.said_ready && s->alive()) ws.uptime_ms = ms_since(s->ready_at);
        ps.workers.push_back(std::move(ws));
      }
      st.pools.push_back(std::move(ps));
    }
    st.fork_servers = servers_.status();
    return st;
  };
  // RSS is read here, not on the dispatcher thread: /proc reads take microseconds each.
  auto with_rss = [](supervisor_status st) {
    for (auto& p : st.pools)
      for (auto& w : p.workers)
        if (w.pid > 0) w.rss_bytes = rss_of(w.pid);
    return st;
  };
  if (!started_.load() || std::this_thread::get_id() == thread_.get_id()) return with_rss(snapshot());
  std::promise<supervisor_status> out;
  auto f = out.get_future();
  if (!post([&] { out.set_value(snapshot()); })) return with_rss(snapshot());  // finished: nothing moves any more
  return with_rss(f.get());
}

void dispatcher::scale(pool_state& p, unsigned workers) {
  check_scale_request(p.name, workers);
  check_descriptor_budget(p.name, workers, &p);
  if (const std::size_t available = available_memory(); workers > p.options.workers && available > 0) {
    const std::size_t more = (workers - p.options.workers) * shared_memory_per_worker(p.options);
    if (more > available)
      throw invalid_request(errc::not_enough_memory,
                            "pool '" + p.name + "': " + std::to_string(workers - p.options.workers) +
                                " more workers with max_message = " + format_size(p.options.max_message) + " map " +
                                format_size(more) + " of shared memory, more than this machine has available "
                                "(MemAvailable " + format_size(available) + ")");
  }
  if (!started_.load()) {
    std::lock_guard lock(pools_mutex_);
    if (!started_.load()) {  // not running yet: the slots are only numbers
      p.options.workers = workers;
      while (p.slots.size() > workers) p.slots.pop_back();
      while (p.slots.size() < workers) {
        auto s = std::make_unique<slot_state>();
        s->index = static_cast<int>(p.slots.size());
        s->pool = p.index;
        p.slots.push_back(std::move(s));
      }
      return;
    }
  }
  if (std::this_thread::get_id() == thread_.get_id()) {
    if (auto why = apply_scale(p, workers); !why.empty()) throw refused_in_state(why.code, why.message);
    return;
  }
  std::promise<refusal> done;
  auto f = done.get_future();
  if (!post([&] { done.set_value(apply_scale(p, workers)); }))
    throw refused_in_state(errc::stopping, "pool '" + p.name + "' cannot be scaled: the supervisor has stopped");
  if (auto why = f.get(); !why.empty()) throw refused_in_state(why.code, why.message);
}

bool dispatcher::remove_pool(std::string_view name) {
  pool_state* p = nullptr;
  {
    std::lock_guard lock(pools_mutex_);
    for (auto& q : pools_)
      if (q->name == name && !q->removed.load()) p = q.get();
    if (!p) return false;
    p->removed.store(true);
  }
  {
    std::lock_guard lock(p->mutex);
    p->refusal = "pool '" + p->name + "' was removed";
    p->accepting.store(false);
    p->room.notify_all();
  }
  post([] {});  // the dispatcher looks at removals on its next pass
  return true;
}

std::unique_ptr<job_record> dispatcher::new_job(pool_state& /*p: ids are per supervisor*/, std::string_view type, std::string_view payload, std::string id) {
  auto j = std::make_unique<job_record>();
  j->id = id.empty() ? std::to_string(next_id_.fetch_add(1, std::memory_order_relaxed)) : std::move(id);
  j->type.assign(type);
  j->payload.assign(payload);
  return j;
}

bool dispatcher::submit(pool_state& p, std::unique_ptr<job_record>& job, bool block) {
  // Refusals that need no dispatcher: answered at once, on this thread.
  auto refuse = [&](error_kind kind, std::string why) {
    p.submitted.fetch_add(1, std::memory_order_relaxed);
    p.unfinished.fetch_add(1);
    result r = failed(*job, kind, std::move(why));
    complete(p, job.release(), std::move(r));
  };
  if (!p.accepting.load(std::memory_order_acquire)) {
    std::string why;
    {
      std::lock_guard lock(p.mutex);
      why = p.refusal;
    }
    refuse(error_kind::stopped, why.empty() ? "pool '" + p.name + "' is not accepting jobs" : why);
    return true;
  }
  if (job->payload.size() > p.options.max_message) {
    refuse(error_kind::rejected, "payload of " + std::to_string(job->payload.size()) + " bytes exceeds max_message (" +
                                     std::to_string(p.options.max_message) + " bytes) of pool '" + p.name + "'");
    return true;
  }
  if (job->type.empty() || job->type.size() > wire::k_max_name || job->id.size() > wire::k_max_name) {
    refuse(error_kind::rejected, "job type must be 1-" + std::to_string(wire::k_max_name) + " bytes and id at most " +
                                     std::to_string(k_max_id) + " bytes");
    return true;
  }
  if (p.fork_handlers && !p.types.count(job->type)) {
    refuse(error_kind::rejected, "pool '" + p.name + "' has no handler for job type '" + job->type + "'");
    return true;
  }
  {
    std::unique_lock lock(p.mutex);
    // On the dispatcher thread (a completion callback submitting a follow-up job), waiting
    // for room would wait for ourselves: the pool goes over max_pending instead.
    const bool on_dispatcher = std::this_thread::get_id() == thread_.get_id();
    if (p.unfinished.load() >= p.options.max_pending && !on_dispatcher) {
      if (!block) return false;
      // Wait for a slice of room, not one job's: a producer faster than the workers then
      // wakes once per slice instead of once per finished job (a futex wake and two
      // context switches each, which cost more than a tiny job).
      const std::size_t low_water = p.options.max_pending - room_slice(p.options.max_pending);
      p.room.wait(lock, [&] { return p.unfinished.load() <= low_water || !p.accepting.load(); });
      if (!p.accepting.load()) {
        lock.unlock();
        refuse(error_kind::stopped, p.refusal.empty() ? "pool '" + p.name + "' stopped" : p.refusal);
        return true;
      }
    }
    p.submitted.fetch_add(1, std::memory_order_relaxed);
    p.unfinished.fetch_add(1);
    p.inbox.push_back(job.release());
  }
  submissions_.fetch_add(1, std::memory_order_seq_cst);
  wake();
  return true;
}

// Each worker holds 2 descriptors here and 3 in the fork server (its segment and its two
// output pipes). A pool that cannot have them is refused at once with the limit named,
// instead of failing later worker by worker.
void dispatcher::check_descriptor_budget(const std::string& pool, std::size_t workers, const pool_state* existing) const {
  std::size_t total = workers;
  {
    std::lock_guard lock(pools_mutex_);
    for (auto& p : pools_)
      if (p.get() != existing && !p->removed.load()) total += p->slots.size();
  }
  constexpr std::size_t k_base = 32;  // the fork server's own, the queue's copies, headroom
  const std::size_t need = 3 * total + k_base;
  rlimit nofile{};
  if (::getrlimit(RLIMIT_NOFILE, &nofile) != 0 || nofile.rlim_cur == RLIM_INFINITY || need <= nofile.rlim_cur) return;
  const std::size_t fit = nofile.rlim_cur > k_base ? (nofile.rlim_cur - k_base) / 3 : 0;
  throw invalid_request(errc::too_many_descriptors,
                        "pool '" + pool + "': " + std::to_string(workers) + " worker(s) (" + std::to_string(total) +
                            " in all pools) need about " + std::to_string(need) +
                            " file descriptors, but RLIMIT_NOFILE (ulimit -n) is " + std::to_string(nofile.rlim_cur) +
                            ": at most " + std::to_string(fit) + " workers fit; raise the limit or use fewer workers");
}

}  // namespace ringmaster::detail
