#include "dispatcher.hpp"
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

// Room a blocked submit() waits for: 1/16 of max_pending, at least 1, at most 4096.
constexpr std::size_t room_slice(std::size_t max_pending) noexcept {
  return std::clamp<std::size_t>(max_pending / 16, 1, 4096);
}

constexpr auto k_forever = clock_type::time_point::max();

std::string format_ms(std::chrono::milliseconds d) {
  if (d.count() % 1000 == 0) return std::to_string(d.count() / 1000) + "s";
  return std::to_string(d.count()) + "ms";
}

std::string format_bytes(std::size_t b) {
  if (b % (std::size_t{1} << 30) == 0) return std::to_string(b >> 30) + " GiB";
  if (b % (std::size_t{1} << 20) == 0) return std::to_string(b >> 20) + " MiB";
  return std::to_string(b) + " bytes";
}

// A size as a person reads it: "512 KiB", "16.0 MiB", "8.0 GiB".
std::string format_size(std::size_t b) {
  char out[32];
  if (b < (std::size_t{1} << 10)) return std::to_string(b) + " bytes";
  if (b < (std::size_t{1} << 20)) std::snprintf(out, sizeof out, "%.1f KiB", static_cast<double>(b) / (1 << 10));
  else if (b < (std::size_t{1} << 30)) std::snprintf(out, sizeof out, "%.1f MiB", static_cast<double>(b) / (1 << 20));
  else std::snprintf(out, sizeof out, "%.1f GiB", static_cast<double>(b) / (1 << 30));
  return out;
}

// The last non-empty line of `text`, at most 500 bytes.
std::string last_line(std::string_view text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r' || text.back() == ' ')) text.remove_suffix(1);
  const auto nl = text.rfind('\n');
  if (nl != std::string_view::npos) text.remove_prefix(nl + 1);
  return std::string(text.substr(0, 500));
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

double ms_since(clock_type::time_point t) {
  return std::chrono::duration<double, std::milli>(clock_type::now() - t).count();
}

bool valid_name(std::string_view name) {
  if (name.empty() || name.size() > 128) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '.';
  });
}

int threads_of_this_process() {
  int n = 0;
  if (DIR* d = ::opendir("/proc/self/task")) {
    while (const dirent* e = ::readdir(d))
      if (e->d_name[0] != '.') ++n;
    ::closedir(d);
  }
  return n;
}

void pidfd_signal(int pidfd, int sig) noexcept {
  if (pidfd >= 0) ::syscall(SYS_pidfd_send_signal, pidfd, sig, nullptr, 0);
}

// Every worker costs descriptors (its segment and pidfd here; its segment and two output
// pipes in the fork server): the soft RLIMIT_NOFILE, often 1024, is raised to the hard
// limit, as Go's runtime does, so that the documented 1,024 workers can run.
void raise_descriptor_limit() noexcept {
  rlimit nofile{};
  if (::getrlimit(RLIMIT_NOFILE, &nofile) != 0 || nofile.rlim_cur >= nofile.rlim_max) return;
  nofile.rlim_cur = nofile.rlim_max;
  (void)::setrlimit(RLIMIT_NOFILE, &nofile);
}

// The last lines of a dead worker's stderr, at most 500 bytes, on one line.
std::string stderr_excerpt(std::string_view text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r' || text.back() == ' ')) text.remove_suffix(1);
  if (text.size() > 500) {
    text.remove_prefix(text.size() - 500);
    if (const auto nl = text.find('\n'); nl != std::string_view::npos && nl + 1 < text.size()) text.remove_prefix(nl + 1);
  }
  std::string out;
  for (char c : text) out += c == '\n' ? std::string(" | ") : std::string(1, c == '\r' ? ' ' : c);
  return out;
}

result failed(const job_record& j, error_kind kind, std::string message, int worker = -1, double ms = 0) {
  result r;
  r.id = j.id;
  r.error = kind;
  r.value = std::move(message);
  r.attempts = j.attempts;
  r.worker = worker;
  r.ms = ms;
  return r;
}

}  // namespace

// =======================================================================================
// Construction, the API side

dispatcher::dispatcher(supervisor_options options) : options_(std::move(options)), log_(logger("supervisor")) {
  if (const int threads = threads_of_this_process(); threads > 1)
    log_->warn("{}: created while this process has {} threads; the fork server copies only this one, so "
               "construct the supervisor before starting threads",
               options_.name, threads);
  raise_descriptor_limit();  // before the fork servers are forked: they inherit it
  active_ = fork_server::fork_from_here(options_.name);
  standby_ = fork_server::fork_from_here(options_.name);
  wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
  deaths_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
  if (wake_fd_ < 0 || epoll_fd_ < 0 || deaths_fd_ < 0)
    throw std::system_error(errno, std::system_category(), "cannot create the dispatcher's descriptors");
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = 0;
  ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, wake_fd_, &ev);
  ev.data.u64 = 1;
  ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, active_.socket_fd(), &ev);
  ev.data.u64 = 2;
  ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, standby_.socket_fd(), &ev);
  ev.data.u64 = 3;
  ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, deaths_fd_, &ev);
}

dispatcher::~dispatcher() {
  if (started_.load()) {
    try {
      stop(options_.shutdown_timeout);
    } catch (const std::exception& e) {
      log_->error("stop failed: {}", e.what());
    }
    if (thread_.joinable()) thread_.join();
  }
  // Jobs never started (no start()): their futures learn they were stopped.
  for (auto& p : pools_) {
    std::vector<job_record*> left;
    {
      std::lock_guard lock(p->mutex);
      left.swap(p->inbox);
    }
    left.insert(left.end(), p->queue.begin(), p->queue.end());
    p->queue.clear();
    for (job_record* j : left) complete(*p, j, failed(*j, error_kind::stopped, "supervisor destroyed before the job ran"));
  }
  // Closing the fork servers' sockets ends them; their destructors wait for that.
  active_ = {};
  standby_ = {};
  if (wake_fd_ >= 0) ::close(wake_fd_);
  if (epoll_fd_ >= 0) ::close(epoll_fd_);
  if (deaths_fd_ >= 0) ::close(deaths_fd_);
}

pool_state& dispatcher::add_pool(std::string name, const handlers* h, pool_options o) {
  if (!valid_name(name)) throw std::invalid_argument("pool name '" + name + "' must be 1-128 characters of [A-Za-z0-9_.-]");
  if (h == nullptr && o.command.empty()) throw std::invalid_argument("pool '" + name + "' needs handlers or a command");
  if (o.workers == 0) o.workers = std::max(1u, std::thread::hardware_concurrency());
  if (o.workers > 1024) throw std::invalid_argument("pool '" + name + "': at most 1024 workers");
  if (o.max_attempts == 0) throw std::invalid_argument("pool '" + name + "': max_attempts must be at least 1");
  if (o.max_message == 0 || o.max_message > wire::k_max_body)
    throw std::invalid_argument("pool '" + name + "': max_message must be between 1 byte and 64 MiB");
  if (o.max_pending == 0) throw std::invalid_argument("pool '" + name + "': max_pending must be at least 1");
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
      if (existing->name == raw->name && !existing->removed.load()) throw std::invalid_argument("a pool named '" + raw->name + "' already exists");
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
  throw std::invalid_argument(
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

void dispatcher::start() {
  if (started_.exchange(true)) throw std::logic_error("supervisor already started");
  try {
    thread_ = std::thread([this] { run(); });
  } catch (const std::system_error& e) {
    abandon_start();
    throw std::system_error(e.code(), "supervisor '" + options_.name +
                                          "': cannot start its dispatcher thread (threads count against RLIMIT_NPROC, "
                                          "the limit on a user's processes)");
  }
}

// The dispatcher thread could not be created (EAGAIN under RLIMIT_NPROC): as if start()
// had never been called, so that the destructor does not wait for a dispatcher that
// never ran. Commands posted meanwhile (status, say, from another thread) are run here,
// as a finished dispatcher would, so that nobody waits for them either.
void dispatcher::abandon_start() {
  started_.store(false);
  std::vector<std::function<void()>> posted;
  {
    std::lock_guard lock(commands_mutex_);
    posted.swap(commands_);
  }
  for (auto& c : posted) c();
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

void dispatcher::wake() noexcept {
  if (sleeping_.load(std::memory_order_seq_cst)) ipc::detail::eventfd_signal(wake_fd_);
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
  if (!started_.load() || std::this_thread::get_id() == thread_.get_id()) return active_.pid();
  std::promise<pid_t> pid;
  auto f = pid.get_future();
  if (!post([this, &pid] { pid.set_value(active_.pid()); })) return active_.pid();
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
      ps.retried = p->retried;
      ps.restarts = p->restarts;
      ps.gave_up = p->gave_up;
      ps.gave_up_reason = p->gave_up_reason;
      for (auto& s : p->slots) {
        ps.in_flight += s->in_flight.size();
        worker_status ws;
        ws.slot = s->index;
        ws.pid = s->pid;
        ws.state = s->state;
        ws.jobs_done = s->jobs_done;
        ws.jobs_failed = s->jobs_failed;
        ws.restarts = s->restarts;
        ws.restarts_by_cause = s->restarts_by_cause;
        if (s->state == worker_state::busy && !s->in_flight.empty()) {
          ws.current_job = s->in_flight.front()->id;
          ws.current_job_ms = ms_since(s->front_started);
        }
        if (s->ready && s->alive()) ws.uptime_ms = ms_since(s->ready_at);
        ps.workers.push_back(std::move(ws));
      }
      st.pools.push_back(std::move(ps));
    }
    st.fork_servers.active_pid = active_.valid() ? active_.pid() : 0;
    st.fork_servers.standby_pid = standby_.valid() ? standby_.pid() : 0;
    st.fork_servers.promotions = promotions_;
    st.fork_servers.standby_failures = standby_failures_;
    st.fork_servers.standby_error = standby_error_;
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
  if (workers == 0 || workers > 1024)
    throw std::invalid_argument("pool '" + p.name + "': scale to 1-1024 workers, got " + std::to_string(workers));
  check_descriptor_budget(p.name, workers, &p);
  if (const std::size_t available = available_memory(); workers > p.options.workers && available > 0) {
    const std::size_t more = (workers - p.options.workers) * shared_memory_per_worker(p.options);
    if (more > available)
      throw std::invalid_argument("pool '" + p.name + "': " + std::to_string(workers - p.options.workers) +
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
    if (auto why = apply_scale(p, workers); !why.empty()) throw std::logic_error(why);
    return;
  }
  std::promise<std::string> done;
  auto f = done.get_future();
  if (!post([&] { done.set_value(apply_scale(p, workers)); }))
    throw std::logic_error("pool '" + p.name + "' cannot be scaled: the supervisor has stopped");
  if (auto why = f.get(); !why.empty()) throw std::logic_error(why);
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
    refuse(error_kind::rejected, "job type must be 1-1024 bytes and id at most 1024 bytes");
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

// Delivers a final result. Runs on the dispatcher thread, or on a submitting thread for
// refusals.
void dispatcher::complete(pool_state& p, job_record* job, result r) {
  std::unique_ptr<job_record> owned(job);
  if (job->sent) p.in_flight.fetch_sub(1, std::memory_order_relaxed);
  (r.ok() ? p.completed : p.failed)++;
  r.pool = p.name;
  r.type = job->type;
  r.tag = job->tag;
  std::visit(
      [&](auto& t) {
        using T = std::decay_t<decltype(t)>;
        if constexpr (std::is_same_v<T, std::promise<result>>) {
          t.set_value(std::move(r));
        } else if constexpr (std::is_same_v<T, completion_callback>) {
          try {
            t(std::move(r));
          } catch (const std::exception& e) {
            log_->error("a completion callback threw: {}", e.what());
          }
        } else if constexpr (std::is_same_v<T, completion_queue*>) {
          completion_queue_access::push(*t, std::move(r));
        } else if constexpr (std::is_same_v<T, reply_target>) {
          deliver_reply(t, r);
        } else if (!r.ok()) {
          // A job posted by a handler (fire and forget): nobody waits for it, so its
          // failure is said here rather than nowhere.
          log_->warn("{}: posted job {} in pool '{}' failed ({}): {}", options_.name, r.id, p.name, to_string(r.error), r.value);
        }
      },
      job->target);
  const std::size_t before = p.unfinished.fetch_sub(1);
  // A blocked submitter waits for unfinished <= max_pending - slice: it can only get there
  // through this decrement (it started waiting at max_pending or more).
  if (before == p.options.max_pending - room_slice(p.options.max_pending) + 1) {
    std::lock_guard lock(p.mutex);  // pairs with the waiter's predicate check
    p.room.notify_all();
  }
  if (before == 1) {
    std::lock_guard lock(idle_mutex_);
    idle_cv_.notify_all();
  }
}

// =======================================================================================
// The dispatcher thread

void dispatcher::run() {
  log_->debug("{}: dispatcher running", options_.name);
  while (phase_ != phase::done) {
    // Commands and submissions both bump submissions_, so one load says whether either
    // needs looking at: an idle pass takes no lock. The snapshot is taken before the
    // scan, so anything posted after it makes the next pass look again.
    bool progress = false;
    if (const std::uint64_t posted = submissions_.load(std::memory_order_acquire); posted != submissions_seen_) {
      submissions_seen_ = posted;
      progress |= take_commands();
      progress |= take_submissions();
    }
    progress |= collect_results();
    // The fork server's socket is read when epoll said so (after a sleep) or, while the
    // loop is busy, every 200 µs: not a recvmsg on every pass.
    if (const auto now = clock_type::now(); fork_events_due_ || now - fork_events_checked_ > std::chrono::microseconds(200)) {
      fork_events_due_ = false;
      fork_events_checked_ = now;
      progress |= handle_fork_events();
    }
    progress |= dispatch();
    progress |= handle_timers();
    if (removals_due_) advance_removals();
    if (trim_due_) trim_slots();
    if (phase_ != phase::running) advance_shutdown();
    if (!progress && phase_ != phase::done) idle_wait();
  }
  // Close the command queue: later posts are refused (their callers answer themselves),
  // and those already posted are run now, so nobody waits for a dispatcher that ended.
  std::vector<std::function<void()>> last;
  {
    std::lock_guard lock(commands_mutex_);
    commands_closed_ = true;
    last.swap(commands_);
  }
  finished_.store(true);
  for (auto& c : last) c();
  for (auto& w : shutdown_waiters_) w->set_value();
  shutdown_waiters_.clear();
  log_->debug("{}: dispatcher finished", options_.name);
}

bool dispatcher::take_commands() {
  std::vector<std::function<void()>> batch;
  {
    std::lock_guard lock(commands_mutex_);
    batch.swap(commands_);
  }
  for (auto& c : batch) c();
  // Pools added before start() are started on the first pass.
  std::vector<pool_state*> fresh;
  {
    std::lock_guard lock(pools_mutex_);
    for (std::size_t i = live_.size(); i < pools_.size(); ++i) fresh.push_back(pools_[i].get());
  }
  // A pool is in pools_ before add_pool returns it, so before anything can submit to
  // it: the scan of inboxes that follows in this pass sees every job counted so far.
  for (pool_state* p : fresh) {
    live_.push_back(p);
    start_pool(*p);
  }
  removals_due_ |= !batch.empty();  // remove_pool posts a command
  return !batch.empty() || !fresh.empty();
}

void dispatcher::start_pool(pool_state& p) {
  removals_due_ |= p.removed.load();  // removed already: its accepted jobs still run first
  for (auto& s : p.slots) spawn(*s);
  // A reload that changes a pool's settings removes it and adds a new one of the same
  // name: said here, or the log reads "starting" then "removed" for the same pool.
  const bool replacing = std::any_of(live_.begin(), live_.end(), [&p](const pool_state* o) {
    return o != &p && o->name == p.name && o->removed.load() && !o->removal_done;
  });
  log_->info("{}: pool '{}' starting {} worker(s){}{}", options_.name, p.name, p.slots.size(),
             p.options.command.empty() ? "" : " (" + p.options.command.front() + ")",
             replacing ? ", replacing the pool of that name (it finishes the jobs it has)" : "");
}

bool dispatcher::take_submissions() {
  bool any = false;
  std::vector<job_record*> batch;
  for (pool_state* p : live_) {
    {
      std::lock_guard lock(p->mutex);
      batch.swap(p->inbox);
    }
    for (job_record* j : batch) {
      j->token = next_token_++;
      if (p->gave_up)
        complete(*p, j, failed(*j, error_kind::stopped, p->gave_up_reason));
      else if (phase_ == phase::stopping || phase_ == phase::stopping_workers)
        complete(*p, j, failed(*j, error_kind::stopped, "supervisor stopping"));
      else
        p->queue.push_back(j);
    }
    any |= !batch.empty();
    batch.clear();
  }
  return any;
}

bool dispatcher::collect_results() {
  bool any = false;
  for (std::size_t i = 0; i < live_.size(); ++i)
    for (auto& s : live_[i]->slots)
      if (s->alive() && s->end != ending::hostile) any |= collect(*s);
  return any;
}

// Reads every message the worker published. A worker is untrusted: a broken ring or a
// malformed or out-of-order message gets it killed, never a crash or an out-of-bounds
// read here.
bool dispatcher::collect(slot_state& s) {
  bool any = false;
  std::span<const std::byte> bytes;
  // At most this many messages per pass: a worker that writes as fast as we read must
  // not keep the dispatcher from the other workers, the submitters and the timers.
  for (int budget = 4096; budget > 0; --budget) {
    const auto ec = s.results.try_read(bytes);
    if (ec == ipc::errc::empty) break;
    if (ec) {
      log_->error("{}: worker {}/{} (pid {}) broke its result ring ({}); killing it", options_.name, live_[s.pool]->name,
                  s.index, s.pid, ec.message());
      terminate(s, ending::hostile, SIGKILL);
      break;
    }
    const auto m = wire::decode(bytes);
    if (!m) {
      log_->error("{}: worker {}/{} (pid {}) sent a malformed message; killing it", options_.name, live_[s.pool]->name,
                  s.index, s.pid);
      terminate(s, ending::hostile, SIGKILL);
      break;
    }
    handle_message(s, *m);
    any = true;
    if (s.end == ending::hostile) break;
  }
  s.results.release();
  return any;
}

void dispatcher::handle_message(slot_state& s, const wire::message& m) {
  pool_state& p = *live_[s.pool];
  switch (m.type) {
    case wire::kind::ready: {
      if (s.ready || m.token != s.jobs.generation()) {
        log_->error("{}: worker {}/{} sent a stale or repeated ready; killing it", options_.name, p.name, s.index);
        terminate(s, ending::hostile, SIGKILL);
        return;
      }
      s.ready = true;
      s.ready_at = clock_type::now();
      if (s.state == worker_state::starting) s.state = worker_state::ready;
      p.start_failures_in_a_row = 0;
      if (!p.fork_handlers && p.types.empty()) {
        std::string_view names = m.body;
        while (!names.empty()) {
          const auto nl = std::min(names.find('\n'), names.size());
          if (nl > 0) p.types.emplace(names.substr(0, nl));
          names.remove_prefix(std::min(nl + 1, names.size()));
        }
      }
      log_->debug("{}: worker {}/{} ready (pid {})", options_.name, p.name, s.index, s.pid);
      return;
    }
    case wire::kind::result: {
      if (s.in_flight.empty() || s.in_flight.front()->token != m.token) {
        log_->error("{}: worker {}/{} answered a job it does not hold; killing it", options_.name, p.name, s.index);
        terminate(s, ending::hostile, SIGKILL);
        return;
      }
      job_record* j = s.in_flight.front();
      s.in_flight.pop_front();
      s.front_started = clock_type::now();
      if (s.in_flight.empty() && s.state == worker_state::busy) s.state = worker_state::ready;
      const double us = m.attempt;
      p.avg_job_us = p.avg_job_us == 0 ? us : 0.9 * p.avg_job_us + 0.1 * us;
      const auto kind = static_cast<error_kind>(m.status);
      const bool known = kind == error_kind::none || kind == error_kind::exception || kind == error_kind::memory ||
                         kind == error_kind::rejected;
      result r;
      r.id = j->id;
      r.error = known ? kind : error_kind::exception;
      r.value.assign(m.body);
      r.attempts = j->attempts + 1;
      r.worker = s.index;
      r.ms = us / 1000.0;
      if (!r.ok()) ++s.jobs_failed;
      ++s.jobs_done;
      if (r.ok()) p.intensity.job_succeeded();  // the pool works: its jobs' deaths were theirs
      if (retries_failed_result(r.error, p.options.retry_on_error, r.attempts, p.options.max_attempts,
                                phase_ == phase::stopping)) {
        j->attempts = r.attempts;
        j->last_error = r.error;
        j->last_message = r.value;
        ++p.retried;
        requeue_front(p, j);
      } else {
        complete(p, j, std::move(r));
      }
      return;
    }
    case wire::kind::submit: handle_worker_submit(s, m); return;
    case wire::kind::fatal:
      // Said by a worker that cannot start, never after ready (a ready worker sending it
      // would keep its job and write error lines of its choosing into our log). Not
      // judged by start_error: the fork server's exit event may have set it first.
      if (s.ready) {
        log_->error("{}: worker {}/{} sent fatal after ready; killing it", options_.name, p.name, s.index);
        terminate(s, ending::hostile, SIGKILL);
        return;
      }
      s.start_error.assign(m.body.substr(0, 2000));
      log_->error("{}: worker {}/{} cannot start: {}", options_.name, p.name, s.index, s.start_error);
      return;
    default:
      log_->error("{}: worker {}/{} sent a message only a supervisor may send; killing it", options_.name, p.name, s.index);
      terminate(s, ending::hostile, SIGKILL);
  }
}

// A handler submitted a job (job::post / job::submit). Routed like any other job; a
// reply, if asked for, goes back to this very worker process, or nowhere.
void dispatcher::handle_worker_submit(slot_state& s, const wire::message& m) {
  const reply_target asker{s.pool, s.index, s.jobs.generation(), m.token};
  pool_state* target = nullptr;
  for (std::size_t i = 0; i < live_.size(); ++i)
    if (live_[i]->name == m.pool && (!target || target->removed.load())) target = live_[i];
  auto refuse = [&](error_kind kind, std::string why) {
    if (m.token == 0) {
      // Nobody waits for a posted job, so its refusal is logged; at the 1st, 2nd, 4th, 8th
      // ... refusal only, so that a worker posting in a loop cannot flood the log.
      static std::atomic<std::uint64_t> refused_posts{0};
      if (const auto n = ++refused_posts; (n & (n - 1)) == 0)
        log_->warn("{}: a job posted by worker {}/{} was refused ({} refused so far): {}", options_.name,
                   live_[s.pool]->name, s.index, n, why);
      return;
    }
    result r;
    r.error = kind;
    r.value = std::move(why);
    deliver_reply(asker, r);
  };
  if (!target) return refuse(error_kind::rejected, "no pool named '" + std::string(m.pool) + "'");
  if (target->removed.load()) return refuse(error_kind::stopped, "pool '" + target->name + "' was removed");
  if (target->gave_up) return refuse(error_kind::stopped, target->gave_up_reason);
  // A worker waiting for a job of its own one-worker pool waits for itself: said at once
  // rather than at the call's timeout. (A posted job just runs after the handler.)
  if (m.token != 0 && target == live_[s.pool] && target->options.workers == 1)
    return refuse(error_kind::rejected, "pool '" + target->name +
                                            "' has one worker, the very one waiting for this reply: a handler cannot call "
                                            "its own one-worker pool (post the job, or give the pool more workers)");
  // While draining, jobs that handlers submit are still part of finishing the accepted
  // work, so only a stop refuses them.
  if (phase_ == phase::stopping || phase_ == phase::stopping_workers)
    return refuse(error_kind::stopped, "pool '" + target->name + "' is not accepting jobs: supervisor stopping");
  if (m.body.size() > target->options.max_message)
    return refuse(error_kind::rejected, "payload exceeds max_message of pool '" + target->name + "'");
  if (target->fork_handlers && !target->types.count(m.job_type))
    return refuse(error_kind::rejected, "pool '" + target->name + "' has no handler for job type '" + std::string(m.job_type) + "'");
  // Bounded like any submission: a handler flooding a pool with jobs is refused once the
  // pool holds max_pending unfinished ones, instead of growing the supervisor's memory.
  // (Not blocked: the pool might only drain through the very worker that asks.)
  if (target->unfinished.load() >= target->options.max_pending)
    return refuse(error_kind::rejected, "pool '" + target->name + "' is full (" +
                                            std::to_string(target->options.max_pending) + " jobs unfinished, max_pending)");
  auto j = new_job(*target, m.job_type, m.body, std::string(m.id));
  j->token = next_token_++;
  if (m.token != 0) {
    j->target = asker;
    if (target == live_[s.pool]) ++s.awaiting_own_pool;  // until its reply (deliver_reply)
  }
  target->submitted.fetch_add(1, std::memory_order_relaxed);
  target->unfinished.fetch_add(1);
  target->queue.push_back(j.release());
}

void dispatcher::deliver_reply(const reply_target& t, const result& r) {
  if (t.pool >= live_.size()) return;
  pool_state& p = *live_[t.pool];
  if (t.slot < 0 || static_cast<std::size_t>(t.slot) >= p.slots.size()) return;
  slot_state& s = *p.slots[static_cast<std::size_t>(t.slot)];
  // The asker died (and maybe was replaced) since: nobody waits for this reply.
  if (!s.alive() || s.jobs.generation() != t.generation) return;
  if (r.pool == p.name && s.awaiting_own_pool > 0) --s.awaiting_own_pool;  // complete() named the pool
  s.outbox.push_back({t.request, r.error, r.attempts, r.value});
  flush_outbox(s);
}

bool dispatcher::flush_outbox(slot_state& s) {
  bool any = false;
  const std::size_t limit = live_[s.pool]->options.max_message;
  while (!s.outbox.empty()) {
    const auto& rep = s.outbox.front();
    const auto ec = rep.body.size() > limit ? std::error_code(ipc::errc::message_too_large)
                                             : wire::encode(s.jobs, {.type = wire::kind::reply,
                                          .status = static_cast<std::uint8_t>(rep.error),
                                          .attempt = rep.attempts,
                                          .token = rep.request,
                                          .body = rep.body});
    if (ec == ipc::errc::full) break;
    if (ec == ipc::errc::corrupt) {
      log_->error("{}: worker {}/{} (pid {}) broke its job ring ({}); killing it", options_.name, live_[s.pool]->name,
                  s.index, s.pid, ec.message());
      terminate(s, ending::hostile, SIGKILL);
      break;
    }
    if (ec == ipc::errc::message_too_large) {
      const std::string why = "reply of " + std::to_string(rep.body.size()) + " bytes exceeds max_message";
      (void)wire::encode(s.jobs, {.type = wire::kind::reply,
                                  .status = static_cast<std::uint8_t>(error_kind::rejected),
                                  .token = rep.request,
                                  .body = why});
    }
    s.outbox.pop_front();
    any = true;
  }
  if (any) s.jobs.publish();
  return any;
}

bool dispatcher::handle_fork_events() {
  if (!active_.valid()) return false;  // no server left: the pools have given up
  bool any = false;
  std::error_code ec;
  // Requests the socket did not take: sent as room appears (a failure is the server's
  // death, which the receive below sees as end-of-file).
  if (active_.has_queued()) active_.flush(ec);
  any |= note_deaths();
  while (auto e = active_.try_receive(ec)) {
    any = true;
    switch (e->what) {
      case fork_event::kind::spawned: on_spawned(*e); break;
      case fork_event::kind::spawn_failed: on_spawn_failed(*e); break;
      case fork_event::kind::exited:
        if (auto it = by_pid_.find(e->pid); it != by_pid_.end()) {
          slot_state& s = *it->second;
          // A worker that never became ready: its last line on stderr says why.
          if (!s.ready && s.start_error.empty()) s.start_error = last_line(e->message);
          s.stderr_tail = stderr_excerpt(e->message);  // for the failure of the job it ran
          on_exit(s, e->status, e->max_rss_kib, false);
        }
        break;
    }
  }
  if (ec) {
    on_server_death();
    return true;
  }
  if (check_fork_server()) return true;
  // The standby only ever speaks to say it is gone.
  if (standby_.valid()) {
    while (auto e = standby_.try_receive(ec)) {
      if (e->pidfd >= 0) ::close(e->pidfd);
    }
    if (ec) {
      log_->warn("{}: the standby fork server (pid {}) died; forking another", options_.name, standby_.pid());
      ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, standby_.socket_fd(), nullptr);
      standby_ = {};
      replace_standby();
      any = true;
    }
  }
  return any;
}

// Asks the active server for a new standby. A failure (the server cannot fork: EAGAIN,
// ENOMEM) is logged and tried again after a delay that doubles from 100 ms up to 5 s;
// status() shows it meanwhile.
void dispatcher::replace_standby() {
  standby_retry_at_ = k_forever;
  if (standby_.valid() || !active_.valid()) return;
  std::error_code ec;
  if (auto s = active_.fork_standby(ec)) {
    standby_ = std::move(*s);
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = 2;
    ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, standby_.socket_fd(), &ev);
    if (standby_failures_ > 0)
      log_->info("{}: standby fork server (pid {}) forked after {} failed attempts", options_.name, standby_.pid(),
                 standby_failures_);
    standby_failures_ = 0;
    standby_error_.clear();
    return;
  }
  ++standby_failures_;
  const char* name = ::strerrorname_np(ec.value());
  standby_error_ = (name ? std::string(name) + ": " : std::string()) + ec.message();
  const std::chrono::milliseconds delay = std::min(std::chrono::milliseconds(100 << std::min(standby_failures_ - 1, 6u)),
                                                    std::chrono::milliseconds(5000));
  standby_retry_at_ = clock_type::now() + delay;
  log_->warn("{}: cannot fork a standby fork server ({}, attempt {}); retrying in {}; until then a death of the "
             "fork server (pid {}) gives up every pool",
             options_.name, standby_error_, standby_failures_, format_ms(delay), active_.pid());
}

void dispatcher::on_spawned(const fork_event& e) {
  auto it = spawning_.find(e.request);
  if (it == spawning_.end()) {  // e.g. the pool gave up meanwhile
    pidfd_signal(e.pidfd, SIGKILL);
    if (e.pidfd >= 0) ::close(e.pidfd);
    return;
  }
  slot_state& s = *it->second;
  spawning_.erase(it);
  s.spawn_request = 0;
  live_[s.pool]->fork_failing_since = {};
  s.pid = e.pid;
  s.pidfd = e.pidfd;
  s.server = server_id_;
  by_pid_[e.pid] = &s;
  watch_pidfd(s);
  if (s.retired || s.end == ending::shutdown) pidfd_signal(s.pidfd, SIGKILL);
}

void dispatcher::on_spawn_failed(const fork_event& e) {
  auto it = spawning_.find(e.request);
  if (it == spawning_.end()) return;
  slot_state& s = *it->second;
  spawning_.erase(it);
  s.spawn_request = 0;
  if (e.status == EAGAIN || e.status == ENOMEM) {
    // Out of processes or memory for now (RLIMIT_NPROC, a pids cgroup, a full process
    // table): not the worker's fault, and no reason to give the pool up while it has
    // workers. Retried after the slot's backoff, and said every time (log, and the
    // slot's restart causes). But a pool left with no worker at all, whose forks have
    // failed for longer than start_timeout, gives up: its jobs would wait for ever.
    pool_state& p = *live_[s.pool];
    const auto now = clock_type::now();
    if (p.fork_failing_since == clock_type::time_point{}) p.fork_failing_since = now;
    s.restarts_by_cause[std::string("fork failed: ") + ::strerrorname_np(e.status)]++;
    const bool none_alive = std::none_of(p.slots.begin(), p.slots.end(), [](auto& x) { return x->alive(); });
    if (fork_failures_give_up(none_alive, p.fork_failing_since, now, p.options.start_timeout)) {
      give_up(p, "pool '" + p.name + "' cannot fork any worker: " + e.message + " (for longer than start_timeout " +
                     format_ms(p.options.start_timeout) + ")");
      return;
    }
    log_->warn("{}: pool '{}' cannot fork worker {} ({}); retrying", options_.name, p.name, s.index, e.message);
    schedule_restart(s, false, false);
    return;
  }
  s.start_error = e.message;
  log_->error("{}: pool '{}' cannot start worker {}: {}", options_.name, live_[s.pool]->name, s.index, e.message);
  on_exit(s, W_EXITCODE(k_exit_cannot_serve, 0), 0, false);
}

// A worker is gone (reaped by the fork server, or killed with it). Its results already
// published are whole and are taken first; then the job it was running, if any, is
// charged with the cause, the jobs queued behind it go back to the pool untouched, and
// the slot is reset and restarted as the pool's restart type, intensity and backoff say.
void dispatcher::on_exit(slot_state& s, int wait_status, std::int64_t max_rss_kib, bool server_died) {
  pool_state& p = *live_[s.pool];
  while (s.alive() && s.end != ending::hostile && collect(s)) {
  }
  if (s.pid > 0) by_pid_.erase(s.pid);
  if (s.pidfd >= 0) ::close(s.pidfd);
  const pid_t pid = s.pid;
  s.pid = 0;
  s.pidfd = -1;

  // What killed it, as the user will read it (policy/death_verdict.hpp).
  const death_verdict verdict = classify({.wait_status = wait_status,
                                          .max_rss_kib = max_rss_kib,
                                          .out_of_memory = s.view.control && s.view.control->out_of_memory.load() != 0,
                                          .memory_limit = p.options.memory_limit,
                                          .why = s.end,
                                          .server_died = server_died});
  const error_kind kind = verdict.kind;
  const std::string& cause = verdict.cause;
  std::string message = cause;
  if (kind == error_kind::timeout) message = "exceeded job_timeout of " + format_ms(p.options.job_timeout);
  if (kind == error_kind::memory)
    message = "exceeded memory_limit of " + format_bytes(p.options.memory_limit) +
              (WIFSIGNALED(wait_status) ? " (" + signal_name(WTERMSIG(wait_status)) + ")" : "");
  if (s.end == ending::hostile) message = "worker violated the ring protocol";
  if (s.ready && !s.stderr_tail.empty()) message += "; its stderr ended: " + s.stderr_tail;
  s.stderr_tail.clear();

  const bool abnormal = verdict.abnormal;
  const bool planned = verdict.planned;
  const bool stopping = phase_ == phase::stopping || phase_ == phase::stopping_workers || s.end == ending::shutdown;

  // Attribution: the job the worker said it was running (if it holds it), or for a
  // timeout the one we timed. The worker's word is only used to pick among its own jobs.
  job_record* running = nullptr;
  if (!planned && !s.in_flight.empty()) {
    std::vector<std::uint64_t> tokens;
    tokens.reserve(s.in_flight.size());
    for (job_record* j : s.in_flight) tokens.push_back(j->token);
    const std::uint64_t current = s.view.control ? s.view.control->current_job.load() : 0;
    if (const auto i = charged_job(tokens, current, verdict, s.end)) running = s.in_flight[*i];
  }
  // For restart intensity: whether a job is charged, and with its first death (read now:
  // the loop below may complete the job).
  const death_charge charge = charge_of(running != nullptr, running && running->killed_a_worker);
  if (running) running->killed_a_worker = true;
  for (auto it = s.in_flight.rbegin(); it != s.in_flight.rend(); ++it) {
    job_record* j = *it;
    if (j == running) {
      ++j->attempts;
      j->last_error = kind;
      j->last_message = message;
      switch (after_attempt(stopping, j->attempts, p.options.max_attempts)) {
        case attempt_outcome::stop:
          complete(p, j, failed(*j, error_kind::stopped, "supervisor stopped while the job ran (its worker: " + message + ")", s.index, ms_since(s.front_started)));
          break;
        case attempt_outcome::fail:
          ++s.jobs_done;  // its final result came from this slot, as a handler's would
          ++s.jobs_failed;
          complete(p, j, failed(*j, kind, j->attempts > 1 ? message + " (" + std::to_string(j->attempts) + " attempts)" : message, s.index, ms_since(s.front_started)));
          break;
        case attempt_outcome::retry:
          ++p.retried;
          requeue_front(p, j);
          break;
      }
    } else if (stopping) {
      complete(p, j, failed(*j, error_kind::stopped, "supervisor stopped before the job ran"));
    } else {
      requeue_front(p, j);
    }
  }
  s.in_flight.clear();
  s.outbox.clear();
  s.awaiting_own_pool = 0;
  if (s.segment.valid()) {
    // The worker is dead, so nothing races with these stores: the rings start empty,
    // with a new generation, before a replacement attaches.
    s.jobs.reset();
    s.results.reset();
    s.view.control->current_job.store(0);
    s.view.control->last_started.store(0);
    s.view.control->out_of_memory.store(0);
  }
  const bool was_ready = s.ready;
  s.ready = false;
  s.stop_sent = false;
  const ending why = s.end;
  s.end = ending::none;
  s.kill_at = k_forever;
  if (pid > 0) {
    const auto level = (planned || stopping) ? spdlog::level::debug : spdlog::level::warn;
    log_->log(level, "{}: worker {}/{} (pid {}) ended: {}", options_.name, p.name, s.index, pid, message);
  }

  if (stopping || s.retired || p.gave_up) {
    s.state = WIFSIGNALED(wait_status) ? worker_state::signaled : worker_state::stopped;
    if (s.scaled_out) s.state = worker_state::stopped;
    s.retired = true;
    trim_due_ |= s.scaled_out;
    return;
  }
  if (why == ending::recycle && !abnormal) {
    s.restarts_by_cause["recycled"]++;
    spawn(s);
    return;
  }
  const restart_type rt = p.options.restart;
  if (!planned && !restarts(rt, abnormal)) {
    s.state = WIFSIGNALED(wait_status) ? worker_state::signaled : worker_state::exited;
    s.retired = true;
    // The pool's queued jobs still need a worker.
    const bool any_left = std::any_of(p.slots.begin(), p.slots.end(), [](auto& o) { return !o->retired; });
    if (!any_left) give_up(p, "pool '" + p.name + "' has no workers left (restart = " + std::string(to_string(rt)) + ")");
    return;
  }
  bool counted = false;
  if (!planned) {
    // Restart intensity, as in Erlang/OTP, over the deaths that say the pool cannot work
    // (policy/restart_intensity.hpp): more than max_restarts within restart_window.
    counted = p.intensity.add_restart(charge, clock_type::now(), p.options.restart_window);
    ++p.restarts;
    ++s.restarts;
    s.restarts_by_cause[kind == error_kind::crash ? cause : std::string(to_string(kind))]++;
    // A worker that never became ready: a start failure (policy/start_failure.hpp). A
    // pool whose workers keep failing to start cannot work; it fails fast, with the
    // worker's own words.
    if (is_start_failure(was_ready, verdict.killed_from_outside)) {
      if (start_failures_give_up(++p.start_failures_in_a_row, p.intensity.exceeded(p.options.max_restarts))) {
        // The worker's own words first, then how it ended (when there was a process).
        std::string reason = "worker " + message + " before it was ready";
        if (!s.start_error.empty()) reason = pid > 0 ? s.start_error + " (" + reason + ")" : s.start_error;
        give_up(p, "pool '" + p.name + "' cannot start its workers: " + reason);
        return;
      }
    }
    if (p.intensity.exceeded(p.options.max_restarts)) {
      give_up(p, "pool '" + p.name + "' gave up: more than " + std::to_string(p.options.max_restarts) + " restarts within " +
                     format_ms(p.options.restart_window) + " (last: " + message + ")");
      return;
    }
    // one_for_all / rest_for_one: the other workers are restarted too (their jobs go back
    // to their pools uncharged; policy/strategy.hpp).
    const pool_range down = taken_down_with(options_.strategy, s.pool, live_.size());
    for (std::size_t i = down.first; i < down.last; ++i)
      for (auto& other : live_[i]->slots)
        if (other.get() != &s && other->alive() && other->running_normally()) {
          // At info, as the death that causes it is at warn: otherwise a user sees
          // workers of healthy pools vanish with no word why.
          log_->info("{}: {}: restarting worker {}/{} (pid {}) because worker {}/{} died ({})", options_.name,
                     to_string(options_.strategy), live_[i]->name, other->index, other->pid, p.name, s.index, message);
          terminate(*other, ending::strategy, SIGKILL);
        }
  }
  // A death that does not count (a job killing its worker again, bounded by its
  // max_attempts) does not grow the slot's backoff either: the replacement starts at once.
  schedule_restart(s, planned || !counted, was_ready);
}

void dispatcher::schedule_restart(slot_state& s, bool planned, bool was_ready) {
  pool_state& p = *live_[s.pool];
  const auto now = clock_type::now();
  if (planned) {
    spawn(s);
    return;
  }
  // Backoff (policy/backoff.hpp): the first restart after a stable run is immediate; each
  // further one in a row waits twice as long, up to backoff_max, with jitter.
  const backoff_policy bp{.initial = p.options.backoff_initial, .max = p.options.backoff_max, .stable_after = p.options.stable_after};
  const unsigned n = s.failures_in_a_row = failures_in_a_row_after(s.failures_in_a_row, was_ready, s.ready_at, now, bp);
  if (n <= 1) {
    spawn(s);
    return;
  }
  thread_local std::mt19937 rng(std::random_device{}());
  s.state = worker_state::backoff;
  s.restart_at = now + backoff_delay(n, bp, backoff_jitter(rng));
}

void dispatcher::spawn(slot_state& s) {
  pool_state& p = *live_[s.pool];
  if (!active_.valid()) {  // no fork server left: on_server_death gives the pools up
    s.state = worker_state::stopped;
    s.retired = true;
    return;
  }
  if (p.gave_up) return;
  if (!s.segment.valid()) {
    try {
      s.segment = ipc::segment::create_fd(p.layout.total);
      s.view = wire::link_view::in(s.segment.bytes(), p.layout);
      new (s.view.control) wire::worker_control{};
      ipc::format_ring_or_throw(s.view.job_ring, p.layout.rings);
      ipc::format_ring_or_throw(s.view.result_ring, p.layout.rings);
      s.jobs = ipc::ring_writer::attach(s.view.job_ring, p.layout.rings);
      s.results = ipc::ring_reader::attach(s.view.result_ring, p.layout.rings);
    } catch (const std::exception& e) {
      // Out of memory for shared memory (or a file-size limit): said at once, as the
      // pool's reason, instead of an exception ending the dispatcher thread.
      s.segment = {};
      give_up(p, "pool '" + p.name + "' cannot create the shared memory of worker " + std::to_string(s.index) + " (" +
                     format_bytes(p.layout.total) + "): " + e.what());
      return;
    }
  }
  s.state = worker_state::starting;
  s.ready = false;
  s.start_error.clear();
  s.end = ending::none;
  s.stop_sent = false;
  s.jobs_sent = 0;
  s.death_seen_at = {};
  s.spawned_at = clock_type::now();
  s.spawn_request = next_spawn_++;
  spawning_[s.spawn_request] = &s;
  spawn_request r;
  r.request = s.spawn_request;
  r.slot = s.index;
  r.pool = p.name;
  r.command = p.options.command;
  if (p.fork_handlers) {
    r.handlers_id = p.fork_handlers->registry_id();
    r.handlers_fingerprint = p.fork_handlers->fingerprint();
  }
  r.max_body = p.options.max_message;
  r.memory_limit = p.options.memory_limit;
  r.log_level = static_cast<int>(spdlog::get_level());
  r.segment_fd = s.segment.fd();
  r.wake_fd = wake_fd_;
  std::error_code ec;
  active_.spawn(r, ec);
  // A failed send means the fork server died: its socket's end-of-file is handled next.
  if (ec) log_->warn("{}: cannot reach the fork server: {}", options_.name, ec.message());
}

void dispatcher::terminate(slot_state& s, ending why, int sig) {
  // A decision already taken stands, except that recycling (a clean exit after this
  // job) yields to anything that ends the worker sooner.
  if (s.end == ending::none || s.end == ending::recycle || why == ending::hostile || why == ending::shutdown) s.end = why;
  if (s.state != worker_state::backoff) s.state = worker_state::stopping;
  pidfd_signal(s.pidfd, sig);
  if (sig == SIGTERM) s.kill_at = clock_type::now() + live_[s.pool]->options.kill_grace;
}

void dispatcher::requeue_front(pool_state& p, job_record* job) {
  if (job->sent) job->sent = false, p.in_flight.fetch_sub(1, std::memory_order_relaxed);
  p.queue.push_front(job);
}

void dispatcher::give_up(pool_state& p, std::string reason) {
  if (p.gave_up) return;
  p.gave_up = true;
  p.gave_up_reason = reason;
  log_->error("{}: {}", options_.name, reason);
  {
    std::lock_guard lock(p.mutex);
    p.refusal = reason;
    p.accepting.store(false);
    p.room.notify_all();
  }
  for (auto& s : p.slots) {
    s->retired = true;
    if (s->alive()) terminate(*s, ending::shutdown, SIGKILL);
    if (s->spawn_request) spawning_.erase(s->spawn_request), s->spawn_request = 0;
    if (!s->alive()) s->state = worker_state::stopped;
    for (job_record* j : s->in_flight) complete(p, j, failed(*j, error_kind::stopped, reason));
    s->in_flight.clear();
  }
  fail_all_queued(p, error_kind::stopped, reason);
}

void dispatcher::fail_all_queued(pool_state& p, error_kind kind, const std::string& why) {
  std::vector<job_record*> inbox;
  {
    std::lock_guard lock(p.mutex);
    inbox.swap(p.inbox);
  }
  std::deque<job_record*> queue;
  queue.swap(p.queue);
  for (job_record* j : queue) complete(p, j, failed(*j, kind, why));
  for (job_record* j : inbox) complete(p, j, failed(*j, kind, why));
}

void dispatcher::on_server_death() {
  log_->error("{}: the fork server (pid {}) died; its workers die with it; promoting the standby", options_.name,
              active_.pid());
  ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, active_.socket_fd(), nullptr);
  const std::uint64_t dead = server_id_;
  // Every worker of the dead server dies of PR_SET_PDEATHSIG. Wait until it has (its
  // pidfd says so), so that its rings can be reset safely; requests it never answered
  // are simply made again.
  std::vector<slot_state*> victims;
  std::vector<slot_state*> unanswered;  // spawns in progress: maybe what killed the server
  for (pool_state* p : live_)
    for (auto& s : p->slots) {
      if (s->alive() && s->server == dead) {
        victims.push_back(s.get());
      } else if (s->spawn_request) {
        spawning_.erase(s->spawn_request);
        s->spawn_request = 0;
        unanswered.push_back(s.get());
      }
    }
  for (slot_state* s : victims) {
    if (s->pidfd < 0) continue;
    pollfd pfd{s->pidfd, POLLIN, 0};
    if (::poll(&pfd, 1, 2000) <= 0) {
      pidfd_signal(s->pidfd, SIGKILL);
      ::poll(&pfd, 1, 2000);
    }
  }
  active_ = std::move(standby_);
  standby_ = {};
  ++server_id_;
  if (active_.valid()) {
    ++promotions_;
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = 1;
    ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, active_.socket_fd(), nullptr);
    ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, active_.socket_fd(), &ev);
    active_wants_out_ = false;
    replace_standby();
  }
  // Their deaths were not their jobs' fault: nothing is charged, and they restart at
  // once on the new server (or retire, if there is none). Each is a restart all the same,
  // counted (not toward restart intensity: the server's death is not the pool's doing).
  for (slot_state* s : victims) {
    pool_state& p = *live_[s->pool];
    if (!s->retired && phase_ == phase::running) {
      ++p.restarts;
      ++s->restarts;
      s->restarts_by_cause["fork server died"]++;
    }
    on_exit(*s, W_EXITCODE(0, SIGKILL), 0, true);
  }
  // A spawn the server never answered may be what killed it (a launch that crashes the
  // server): it counts as a restart of its pool, so a pool that kills every server it
  // asks gives up at its restart intensity, instead of using up servers for ever. But a
  // server may as well have been killed from outside (an operator, the OOM killer) while
  // slots were restarting: so one death is one restart of each such pool however many
  // of its slots were waiting, and not a start failure (of which three in a row give up).
  std::set<std::size_t> charged;
  for (slot_state* s : unanswered) {
    if (s->start_error.empty()) s->start_error = "the fork server died while starting this worker";
    const bool first = charged.insert(s->pool).second;
    on_exit(*s, W_EXITCODE(0, SIGKILL), 0, !first);  // the rest as victims: restarted at once, uncharged
  }
  if (!active_.valid())
    for (pool_state* p : live_) give_up(*p, "the fork server died and no standby was left");
}

unsigned dispatcher::credits(const pool_state& p) const noexcept {
  if (p.options.prefetch > 0) return p.options.prefetch;
  if (p.avg_job_us <= 0) return 2;
  // Enough jobs ahead to cover ~0.5 ms of work: many for tiny jobs (batching).
  const auto by_time = static_cast<unsigned>(std::clamp(500.0 / p.avg_job_us, 1.0, 64.0));
  if (by_time > 1) return by_time;
  // Long jobs: the next one waits in the worker's ring while the pool has a backlog of
  // at least two jobs per worker, so that a worker goes from one job to the next without
  // a round trip through the dispatcher (two wake-ups). With less left, one job at a
  // time, so that none of the last jobs waits behind a long one while a worker idles.
  return p.queue.size() >= 2 * p.slots.size() ? 2 : 1;
}

bool dispatcher::dispatch() {
  bool any = false;
  for (std::size_t i = 0; i < live_.size(); ++i) {
    pool_state& p = *live_[i];
    for (auto& s : p.slots) {
      if (!s->outbox.empty() && s->alive()) any |= flush_outbox(*s);
      if (s->stop_due && s->alive() && !wire::encode(s->jobs, {.type = wire::kind::stop})) {
        // Behind the jobs it holds: the worker runs them, then exits cleanly.
        s->jobs.publish();
        s->stop_due = false;
        s->stop_sent = true;
        any = true;
      }
    }
    if (!p.queue.empty() && !p.gave_up) any |= dispatch_pool(p);
  }
  return any;
}

bool dispatcher::dispatch_pool(pool_state& p) {
  bool any = false;
  std::vector<slot_state*> touched;
  for (bool progress = true; progress && !p.queue.empty();) {
    progress = false;
    const unsigned limit = credits(p);  // once per pass: it depends on the backlog
    for (auto& sp : p.slots) {
      slot_state& s = *sp;
      if (p.queue.empty()) break;
      if (!s.alive() || !s.ready || s.stop_sent || s.end != ending::none || s.in_flight.size() >= limit) continue;
      // A handler waiting for a job of its own pool runs nothing else meanwhile: a job
      // sent ahead to it would wait behind it, and if that job is the one it waits for,
      // until the call times out. So it gets jobs only while no other worker can.
      if (s.awaiting_own_pool > 0 && has_free_worker(p)) continue;
      job_record* j = p.queue.front();
      if (!p.fork_handlers && !p.types.empty() && !p.types.count(j->type)) {
        // A command pool's workers said which types they serve when they became ready.
        p.queue.pop_front();
        complete(p, j, failed(*j, error_kind::rejected, "pool '" + p.name + "' has no handler for job type '" + j->type + "'"));
        progress = any = true;
        continue;
      }
      const auto ec = wire::encode(s.jobs, {.type = wire::kind::job,
                                            .attempt = j->attempts + 1,
                                            .token = j->token,
                                            .job_type = j->type,
                                            .id = j->id,
                                            .body = j->payload});
      if (ec == ipc::errc::corrupt) {
        // The worker owns the job ring's tail index and wrote nonsense into it.
        log_->error("{}: worker {}/{} (pid {}) broke its job ring ({}); killing it", options_.name, p.name, s.index, s.pid,
                    ec.message());
        terminate(s, ending::hostile, SIGKILL);
        continue;
      }
      if (ec) continue;  // full: this worker has enough to do
      p.queue.pop_front();
      if (s.in_flight.empty()) s.front_started = clock_type::now();
      s.in_flight.push_back(j);
      j->sent = true;
      p.in_flight.fetch_add(1, std::memory_order_relaxed);
      s.state = worker_state::busy;
      if (touched.empty() || touched.back() != &s) touched.push_back(&s);
      progress = any = true;
      if (p.options.max_jobs_per_worker > 0 && ++s.jobs_sent >= p.options.max_jobs_per_worker) {
        // Recycling: the worker exits after this job, cleanly, and is replaced.
        (void)wire::encode(s.jobs, {.type = wire::kind::stop});
        s.stop_sent = true;
        s.end = ending::recycle;
      }
    }
  }
  for (slot_state* s : touched) s->jobs.publish();
  return any;
}

// A worker of `p` that waits for no job of `p` and can take jobs, now or once started.
bool dispatcher::has_free_worker(const pool_state& p) noexcept {
  return std::any_of(p.slots.begin(), p.slots.end(), [](const auto& s) {
    return !s->retired && !s->stop_sent && s->end == ending::none && s->awaiting_own_pool == 0;
  });
}

bool dispatcher::handle_timers() {
  const auto now = clock_type::now();
  bool any = false;
  if (now >= standby_retry_at_) {
    replace_standby();
    any = true;
  }
  for (std::size_t i = 0; i < live_.size(); ++i) {
    pool_state& p = *live_[i];
    for (auto& sp : p.slots) {
      slot_state& s = *sp;
      if (s.state == worker_state::backoff && !s.retired && now >= s.restart_at) {
        spawn(s);
        any = true;
      }
      if (s.alive() && now >= s.kill_at) {
        pidfd_signal(s.pidfd, SIGKILL);
        s.kill_at = k_forever;
        any = true;
      }
      if (s.alive() && !s.ready && s.running_normally() && now - s.spawned_at > p.options.start_timeout) {
        s.start_error = "worker did not report ready within start_timeout of " + format_ms(p.options.start_timeout);
        log_->warn("{}: pool '{}': {} (pid {}); killing it", options_.name, p.name, s.start_error, s.pid);
        terminate(s, ending::start_timeout, SIGKILL);
        any = true;
      }
      if (p.options.job_timeout.count() > 0 && s.alive() && s.running_normally() && !s.in_flight.empty() &&
          now - s.front_started > p.options.job_timeout) {
        log_->warn("{}: job {} in pool '{}' exceeded job_timeout {}; stopping worker {} (pid {})", options_.name,
                   s.in_flight.front()->id, p.name, format_ms(p.options.job_timeout), s.index, s.pid);
        terminate(s, ending::timeout, SIGTERM);
        any = true;
      }
    }
  }
  return any;
}

clock_type::time_point dispatcher::next_deadline() const {
  auto next = k_forever;
  for (std::size_t i = 0; i < live_.size(); ++i) {
    const pool_state& p = *live_[i];
    for (auto& s : p.slots) {
      if (s->state == worker_state::backoff && !s->retired) next = std::min(next, s->restart_at);
      if (s->alive()) next = std::min(next, s->kill_at);
      if (p.options.job_timeout.count() > 0 && s->alive() && s->running_normally() && !s->in_flight.empty())
        next = std::min(next, s->front_started + p.options.job_timeout);
      if (s->alive() && !s->ready && s->running_normally())
        next = std::min(next, s->spawned_at + p.options.start_timeout);
    }
  }
  if (phase_ == phase::stopping || phase_ == phase::stopping_workers) next = std::min(next, shutdown_deadline_);
  next = std::min(next, fork_server_deadline());
  return std::min(next, standby_retry_at_);
}

// Nothing to do: spin briefly (a result or a submission is often microseconds away),
// then sleep in epoll until a worker publishes (eventfd), a thread submits or posts
// (eventfd), the fork server speaks, or the next timer is due.
void dispatcher::idle_wait() {
  auto ready_slot = [this] {
    for (std::size_t i = 0; i < live_.size(); ++i)
      for (auto& s : live_[i]->slots)
        if (s->alive() && s->end != ending::hostile && s->results.readable()) return true;
    return false;
  };
  const auto spin_until = clock_type::now() + std::chrono::microseconds(20);
  while (clock_type::now() < spin_until) {
    if (submissions_.load(std::memory_order_acquire) != submissions_seen_ || ready_slot()) return;
    for (int i = 0; i < 16; ++i) ipc::cpu_relax();
  }
  sleeping_.store(true, std::memory_order_seq_cst);
  std::vector<slot_state*> announced;
  bool ready = submissions_.load(std::memory_order_seq_cst) != submissions_seen_;
  for (std::size_t i = 0; i < live_.size() && !ready; ++i)
    for (auto& s : live_[i]->slots) {
      if (!s->alive() || s->end == ending::hostile) continue;
      if (!s->results.announce_sleep()) {
        ready = true;
        break;
      }
      announced.push_back(s.get());
    }
  if (!ready) {
    const auto deadline = next_deadline();
    int timeout_ms = 1000;  // a safety net only: every event that matters wakes us
    if (deadline != k_forever) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock_type::now()).count() + 1;
      timeout_ms = static_cast<int>(std::clamp<long long>(left, 0, 1000));
    }
    watch_active_socket();
    epoll_event events[8];
    const int n = ::epoll_wait(epoll_fd_, events, 8, timeout_ms);
    for (int i = 0; i < n; ++i) fork_events_due_ |= events[i].data.u64 != 0;  // a fork server spoke
  }
  for (slot_state* s : announced) s->results.withdraw_sleep();
  sleeping_.store(false, std::memory_order_relaxed);
  std::uint64_t drained;
  while (::read(wake_fd_, &drained, sizeof drained) > 0) {
  }
}

void dispatcher::begin_shutdown(bool drain, std::chrono::milliseconds grace) {
  if (phase_ == phase::done) return;
  accepting_pools_.store(false);
  const bool already = phase_ != phase::running;
  for (pool_state* pp : live_) {
    pool_state& p = *pp;
    std::lock_guard lock(p.mutex);
    if (p.refusal.empty()) p.refusal = "supervisor is stopping";
    p.accepting.store(false);
    p.room.notify_all();
  }
  if (drain && !already) {
    phase_ = phase::draining;
    // Routine (every `ringmaster run` drains once its input is read): debug, not info.
    log_->debug("{}: draining: no new jobs are accepted; the accepted ones finish", options_.name);
    return;
  }
  const auto deadline = clock_type::now() + grace;
  if (phase_ == phase::stopping) {
    // A stop while one runs (a second Ctrl-C, say): the earlier deadline wins.
    if (!drain && deadline < shutdown_deadline_) {
      shutdown_deadline_ = deadline;
      log_->info("{}: stopping sooner (in-flight jobs have {} to finish)", options_.name, format_ms(grace));
    }
    return;
  }
  if (phase_ == phase::stopping_workers) return;
  phase_ = phase::stopping;
  shutdown_deadline_ = deadline;
  log_->info("{}: stopping (in-flight jobs have {} to finish)", options_.name, format_ms(grace));
  hold_unstarted_jobs();
  for (std::size_t i = 0; i < live_.size(); ++i) fail_all_queued(*live_[i], error_kind::stopped, "supervisor stopped before the job ran");
}

// Stop: jobs already sent ahead to a worker and not started must not start, and are
// answered `stopped` now, not at the drain deadline. The worker skips them (see
// worker_control::stopping for the handshake). Its in-flight jobs run in the order they
// were sent: those after the last one it started have not started and never will; those
// before it have finished, their results on the way.
void dispatcher::hold_unstarted_jobs() {
  for (pool_state* pp : live_)
    for (auto& sp : pp->slots) {
      slot_state& s = *sp;
      if (!s.segment.valid()) continue;
      s.view.control->stopping.store(1, std::memory_order_seq_cst);
      if (!s.alive() || s.in_flight.empty()) continue;
      const std::uint64_t started = s.view.control->last_started.load(std::memory_order_seq_cst);
      auto first_unstarted = s.in_flight.begin();
      for (auto it = s.in_flight.begin(); it != s.in_flight.end(); ++it)
        if ((*it)->token == started) first_unstarted = std::next(it);
      for (auto it = first_unstarted; it != s.in_flight.end(); ++it)
        complete(*pp, *it, failed(**it, error_kind::stopped, "supervisor stopped before the job ran"));
      s.in_flight.erase(first_unstarted, s.in_flight.end());
      if (s.in_flight.empty() && s.state == worker_state::busy) s.state = worker_state::ready;
    }
}

void dispatcher::advance_shutdown() {
  const auto now = clock_type::now();
  if (phase_ == phase::draining) {
    // Drain: everything accepted runs (with retries) before the workers stop.
    const bool nothing_left =
        std::all_of(live_.begin(), live_.end(), [](pool_state* p) { return p->unfinished.load() == 0 || p->gave_up; });
    if (!nothing_left) return;
    phase_ = phase::stopping;
    shutdown_deadline_ = now;
  }
  if (phase_ == phase::stopping) {
    bool in_flight = false;
    for (std::size_t i = 0; i < live_.size(); ++i)
      for (auto& s : live_[i]->slots) in_flight |= !s->in_flight.empty();
    if (in_flight && now < shutdown_deadline_) return;
    // Stop every worker: idle ones are asked (stop message), busy ones past the deadline
    // are killed; all get one second before SIGKILL.
    phase_ = phase::stopping_workers;
    shutdown_deadline_ = now + std::chrono::seconds(1);
    for (std::size_t i = 0; i < live_.size(); ++i)
      for (auto& s : live_[i]->slots) {
        s->retired = true;
        if (s->spawn_request) spawning_.erase(s->spawn_request), s->spawn_request = 0;
        if (s->state == worker_state::backoff) s->state = worker_state::stopped;
        if (!s->alive()) continue;
        if (s->in_flight.empty() && s->ready) {
          (void)wire::encode(s->jobs, {.type = wire::kind::stop});
          s->jobs.publish();
          s->stop_sent = true;
          s->end = ending::shutdown;
          s->state = worker_state::stopping;
        } else {
          terminate(*s, ending::shutdown, SIGKILL);
        }
      }
  }
  if (phase_ == phase::stopping_workers) {
    bool alive = false;
    for (std::size_t i = 0; i < live_.size(); ++i)
      for (auto& s : live_[i]->slots) {
        if (!s->alive()) continue;
        alive = true;
        if (now >= shutdown_deadline_) pidfd_signal(s->pidfd, SIGKILL);
      }
    if (!alive && spawning_.empty()) {
      phase_ = phase::done;
      log_->info("{}: stopped", options_.name);
    }
  }
}

}  // namespace ringmaster::detail

namespace ringmaster::detail {

// =======================================================================================
// Resizing and removing pools (dispatcher thread)

// Slots [0, workers) are the pool; slots past it finish their jobs and go. Growing takes
// back slots still on their way out before adding new ones, so the slots stay numbered
// 0..N-1 and a worker that is running is never restarted for it.
std::string dispatcher::apply_scale(pool_state& p, unsigned workers) {
  if (p.removed.load()) return "pool '" + p.name + "' was removed";
  if (p.gave_up) return "pool '" + p.name + "' gave up: " + p.gave_up_reason;
  if (phase_ != phase::running) return "pool '" + p.name + "' cannot be scaled: the supervisor is stopping";
  const unsigned before = p.options.workers;
  p.options.workers = workers;
  for (std::size_t i = 0; i < std::min<std::size_t>(workers, p.slots.size()); ++i) {
    slot_state& s = *p.slots[i];
    if (!s.scaled_out) continue;
    s.scaled_out = false;
    s.retired = false;
    if (s.alive()) {
      // Its stop message not sent yet: it simply stays. Sent: it exits cleanly after its
      // jobs and is replaced (as a recycled worker is).
      if (s.stop_due) s.stop_due = false, s.end = ending::none, s.state = s.in_flight.empty() ? worker_state::ready : worker_state::busy;
      if (!s.ready) s.state = worker_state::starting;
    } else if (s.spawn_request == 0) {
      spawn(s);
    }
  }
  while (p.slots.size() < workers) {
    auto s = std::make_unique<slot_state>();
    s->index = static_cast<int>(p.slots.size());
    s->pool = p.index;
    slot_state& raw = *s;
    {
      std::lock_guard lock(pools_mutex_);  // other threads read slots only through status(), here
      p.slots.push_back(std::move(s));
    }
    spawn(raw);
  }
  for (std::size_t i = workers; i < p.slots.size(); ++i) retire_for_scale(*p.slots[i]);
  trim_due_ = true;
  if (before == workers)
    log_->info("{}: pool '{}' already has {} worker(s): nothing to scale", options_.name, p.name, workers);
  else
    log_->info("{}: pool '{}' scaled from {} to {} worker(s)", options_.name, p.name, before, workers);
  return {};
}

void dispatcher::retire_for_scale(slot_state& s) {
  if (s.scaled_out) return;
  s.scaled_out = true;
  s.retired = true;
  if (s.spawn_request) {  // never started: on_spawned kills it if it comes
    spawning_.erase(s.spawn_request);
    s.spawn_request = 0;
    s.state = worker_state::stopped;
  } else if (s.alive()) {
    // Healthy: a stop message behind the jobs it holds, so they finish first. Already on
    // its way out (timeout, strategy): it goes as planned and is not replaced.
    if (s.running_normally()) {
      s.end = ending::recycle;
      if (!s.stop_sent) s.stop_due = true;
      s.state = worker_state::stopping;
    }
  } else {
    s.state = worker_state::stopped;
  }
}

// Scaled-out slots at the end of their pool go once their process has.
void dispatcher::trim_slots() {
  trim_due_ = false;
  for (pool_state* p : live_) {
    std::lock_guard lock(pools_mutex_);
    while (!p->slots.empty()) {
      const slot_state& s = *p->slots.back();
      if (!s.scaled_out || s.alive() || s.spawn_request != 0) break;
      p->slots.pop_back();
    }
  }
}

// A removed pool drains (its accepted jobs run, with retries), then stops its workers.
void dispatcher::advance_removals() {
  removals_due_ = false;
  for (pool_state* pp : live_) {
    pool_state& p = *pp;
    if (!p.removed.load() || p.removal_done) continue;
    if (p.unfinished.load() != 0 && !p.gave_up) {
      removals_due_ = true;  // look again on the next pass
      continue;
    }
    p.removal_done = true;
    const bool replaced = std::any_of(live_.begin(), live_.end(),
                                      [&p](const pool_state* o) { return o != &p && o->name == p.name && !o->removed.load(); });
    if (replaced)
      log_->info("{}: pool '{}' as it was before its replacement has finished its jobs: its workers stop", options_.name,
                 p.name);
    else
      log_->info("{}: pool '{}' removed", options_.name, p.name);
    for (auto& s : p.slots) {
      s->retired = true;
      if (s->spawn_request) spawning_.erase(s->spawn_request), s->spawn_request = 0;
      if (!s->alive()) {
        s->state = worker_state::stopped;
      } else if (s->ready && s->in_flight.empty() && s->running_normally()) {
        s->end = ending::shutdown;
        if (!s->stop_sent) s->stop_due = true;
        s->state = worker_state::stopping;
      } else {
        terminate(*s, ending::shutdown, SIGKILL);
      }
    }
  }
}

}  // namespace ringmaster::detail

namespace ringmaster::detail {

// =======================================================================================
// Watching the fork server (dispatcher thread)
//
// The fork server reports every death and answers every spawn; one that stops doing so
// (SIGSTOP, a wedged write) would stall its pools for ever. The kernel says on each
// worker's pidfd when it died: a death the server has not reported within the pool's
// start_timeout, or a spawn it has not answered within it, means the server is not
// working, and it is ended and replaced by the standby as if it had died.

void dispatcher::watch_pidfd(slot_state& s) {
  if (s.pidfd < 0) return;
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = static_cast<std::uint64_t>(s.pid);
  ::epoll_ctl(deaths_fd_, EPOLL_CTL_ADD, s.pidfd, &ev);
}

// Records when each worker's pidfd said it died; the fork server's report follows.
bool dispatcher::note_deaths() {
  epoll_event events[64];
  const int n = ::epoll_wait(deaths_fd_, events, 64, 0);
  const auto now = clock_type::now();
  for (int i = 0; i < n; ++i) {
    const auto it = by_pid_.find(static_cast<pid_t>(events[i].data.u64));
    if (it == by_pid_.end()) continue;
    slot_state& s = *it->second;
    if (s.death_seen_at == clock_type::time_point{}) s.death_seen_at = now;
    ::epoll_ctl(deaths_fd_, EPOLL_CTL_DEL, s.pidfd, nullptr);  // seen: level-triggered would repeat it
  }
  return false;  // nothing changes until the report comes, or the deadline passes
}

clock_type::time_point dispatcher::fork_server_deadline() const {
  auto next = clock_type::time_point::max();
  for (const pool_state* p : live_)
    for (auto& s : p->slots) {
      if (s->alive() && s->death_seen_at != clock_type::time_point{})
        next = std::min(next, s->death_seen_at + p->options.start_timeout);
      if (s->spawn_request) next = std::min(next, s->spawned_at + p->options.start_timeout);
    }
  return next;
}

bool dispatcher::check_fork_server() {
  if (!active_.valid()) return false;
  const auto now = clock_type::now();
  std::string why;
  for (const pool_state* p : live_) {
    for (auto& s : p->slots) {
      if (s->alive() && s->death_seen_at != clock_type::time_point{} && now - s->death_seen_at > p->options.start_timeout) {
        why = "did not report the death of worker " + p->name + "/" + std::to_string(s->index) + " (pid " +
              std::to_string(s->pid) + ") within start_timeout of " + format_ms(p->options.start_timeout);
      } else if (s->spawn_request && now - s->spawned_at > p->options.start_timeout) {
        why = "did not answer a request to start worker " + p->name + "/" + std::to_string(s->index) +
              " within start_timeout of " + format_ms(p->options.start_timeout);
      }
      if (!why.empty()) break;
    }
    if (!why.empty()) break;
  }
  if (why.empty()) return false;
  log_->error("{}: the fork server (pid {}) {}: it is not working (stopped?); killing it", options_.name, active_.pid(), why);
  active_.kill();
  on_server_death();
  return true;
}

// The active server's socket is watched for room while requests wait for it.
void dispatcher::watch_active_socket() {
  const bool want = active_.valid() && active_.has_queued();
  if (want == active_wants_out_) return;
  epoll_event ev{};
  ev.events = static_cast<std::uint32_t>(EPOLLIN) | (want ? static_cast<std::uint32_t>(EPOLLOUT) : 0u);
  ev.data.u64 = 1;
  ::epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, active_.socket_fd(), &ev);
  active_wants_out_ = want;
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
  throw std::invalid_argument("pool '" + pool + "': " + std::to_string(workers) + " worker(s) (" + std::to_string(total) +
                              " in all pools) need about " + std::to_string(need) +
                              " file descriptors, but RLIMIT_NOFILE (ulimit -n) is " + std::to_string(nofile.rlim_cur) +
                              ": at most " + std::to_string(fit) + " workers fit; raise the limit or use fewer workers");
}

}  // namespace ringmaster::detail
