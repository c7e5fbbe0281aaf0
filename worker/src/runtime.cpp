// The worker runtime (detail/runtime.hpp): attach to the slot's rings, report ready, take
// jobs one at a time, send each result back; and the loop that serves them with a
// handlers object, never letting a handler's exception end the process.
#include <fcntl.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <charconv>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <deque>
#include <new>
#include <ringmaster/ipc/segment.hpp>
#include <ringmaster/worker/detail/handlers_access.hpp>
#include <ringmaster/worker/detail/launch.hpp>
#include <ringmaster/worker/detail/log.hpp>
#include <ringmaster/worker/detail/runtime.hpp>
#include <ringmaster/worker/detail/wire.hpp>
#include <stdexcept>
#include <unordered_map>

namespace ringmaster::detail {

namespace {

// Set while a job runs, so that a failed allocation is recorded where the supervisor
// can see it even if the process dies of it before it can report.
wire::worker_control* g_control = nullptr;

void note_allocation_failure() {
  if (g_control) g_control->out_of_memory.store(1, std::memory_order_relaxed);
  throw std::bad_alloc();
}

// Output labels. The fork server reads this worker's stdout and stderr pipes and labels
// each line with the id of the job shown in the control block when it read the bytes.
// That label is right only if the id does not change while the pipes hold bytes of the
// job before: so after a job that wrote, the worker waits (bounded) for the server to
// have read them before it shows the next id. Whether a job wrote is learnt without a
// system call per job: this process also holds a read end of each pipe of its own, with
// O_ASYNC, so the kernel sends it SIGIO on each write (by the handler, or by a process it
// started) and the handler below notes it.
volatile std::sig_atomic_t g_output_written = 0;
int g_output_watch[2] = {-1, -1};  // our own read ends of the stdout and stderr pipes

void note_output(int) { g_output_written = 1; }

void watch_output() noexcept {
  struct sigaction sa {};
  sa.sa_handler = note_output;
  sa.sa_flags = SA_RESTART;
  sigemptyset(&sa.sa_mask);
  for (int i = 0; i < 2; ++i) {
    struct stat st {};
    if (::fstat(i + 1, &st) != 0 || !S_ISFIFO(st.st_mode)) continue;  // not the fork server's pipe
    char path[32];
    std::snprintf(path, sizeof path, "/proc/self/fd/%d", i + 1);
    // A new open file of the same pipe: O_ASYNC and its owner belong to it alone.
    const int fd = ::open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) continue;
    if (::sigaction(SIGIO, &sa, nullptr) != 0 || ::fcntl(fd, F_SETOWN, ::getpid()) != 0 ||
        ::fcntl(fd, F_SETFL, O_RDONLY | O_NONBLOCK | O_ASYNC) != 0) {
      ::close(fd);
      continue;
    }
    g_output_watch[i] = fd;
  }
}

// After a job that wrote: waits until the fork server has read what it wrote, at most
// 100 ms (a stopped server must not stop the worker).
void wait_output_read() noexcept {
  if (!g_output_written) return;
  g_output_written = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(100);
  for (;;) {
    int pending = 0;
    for (int fd : g_output_watch) {
      int n = 0;
      if (fd >= 0 && ::ioctl(fd, FIONREAD, &n) == 0) pending += n;
    }
    if (pending == 0 || std::chrono::steady_clock::now() >= deadline) return;
    ::usleep(50);
  }
}

}  // namespace

std::unique_ptr<worker_runtime> worker_runtime::open(const worker_launch& launch, std::string& error,
                                                     int& exit_code) noexcept {
  // stdout is a pipe to the fork server, which writes each line to the log: line-buffered,
  // so that a handler's lines go out as it writes them and are not lost if it crashes.
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  watch_output();
  exit_code = k_exit_cannot_serve;
  try {
    std::error_code ec;
    auto seg = ipc::segment::map_fd(launch.segment_fd, ec);
    if (ec) {
      error = "cannot map its segment (fd " + std::to_string(launch.segment_fd) + "): " + ec.message();
      return nullptr;
    }
    auto rt = std::make_unique<worker_runtime>(launch, std::move(seg));
    if (auto why = rt->attach(); !why.empty()) {
      rt->fatal(why);
      error = why;
      return nullptr;
    }
    exit_code = k_exit_stopped;
    return rt;
  } catch (const std::exception& e) {
    error = e.what();
    return nullptr;
  }
}

std::unique_ptr<worker_runtime> worker_runtime::open(const worker_launch& launch, int& exit_code) noexcept {
  std::string error;
  auto rt = open(launch, error, exit_code);
  if (!rt) std::fprintf(stderr, "ringmaster worker: %s\n", error.c_str());
  return rt;
}

worker_runtime::worker_runtime(const worker_launch& launch, ipc::segment seg) : launch_(launch), segment_(std::move(seg)) {
  if (launch.log_level >= 0) spdlog::set_level(static_cast<spdlog::level::level_enum>(launch.log_level));
  log_ = logger("worker " + launch.pool + "/" + std::to_string(launch.slot));
}

std::string worker_runtime::attach() {
  layout_ = wire::link_layout::for_body(launch_.max_body);
  if (segment_.bytes().size() < layout_.total) return "segment smaller than the slot layout";
  view_ = wire::link_view::in(segment_.bytes(), layout_);
  std::error_code ec;
  jobs_ = ipc::ring_reader::attach(view_.job_ring, layout_.rings, ec);
  if (ec) return "cannot attach job ring: " + ec.message();
  results_ = ipc::ring_writer::attach(view_.result_ring, layout_.rings, ec);
  if (ec) return "cannot attach result ring: " + ec.message();
  results_.wake_through(launch_.wake_fd);
  view_.control->pid.store(::getpid(), std::memory_order_relaxed);
  return {};
}

void worker_runtime::fatal(std::string_view why) {
  log_->error("cannot serve: {}", why);
  if (!results_.valid()) return;
  send({.type = wire::kind::fatal, .body = why});
  results_.publish();
}

void worker_runtime::ready(std::string_view names) {
  send({.type = wire::kind::ready, .token = jobs_.generation(), .body = names});
  results_.publish();
  log_->debug("ready, generation {}", jobs_.generation());
  g_control = view_.control;
  std::set_new_handler(note_allocation_failure);
}

bool worker_runtime::next_job(deferred_message& m) { return take_job(m, true) == taken::job; }

worker_runtime::taken worker_runtime::take_job(deferred_message& m, bool wait) {
  while (!stop_) {
    if (const auto ec = next_message(m, wait ? clock_type::time_point::max() : clock_type::time_point::min()))
      return ec == ipc::errc::timed_out ? taken::none : taken::broken;
    switch (m.type) {
      case wire::kind::job:
        // A stop starts none of the jobs sent ahead: the supervisor has answered them
        // (see worker_control::stopping; both sides seq_cst, as a Dekker pair). A job
        // taken behind others counts as started: it is on its way to the program.
        view_.control->last_started.store(m.token, std::memory_order_seq_cst);
        if (view_.control->stopping.load(std::memory_order_seq_cst) == 0) {
          held_.push_back({m.token, m.id});
          if (held_.size() == 1) run_next(held_.front());
          return taken::job;
        }
        break;
      case wire::kind::stop: stop_ = true; break;
      default: break;  // a reply nobody waits for any more
    }
  }
  return taken::stop;
}

void worker_runtime::run_next(const held_job& h) {
  auto& control = *view_.control;
  held_started_ = wire::monotonic_ns();
  control.started_ns.store(held_started_, std::memory_order_relaxed);
  control.current_job.store(h.token, std::memory_order_release);
  wire::set_job_id(control, h.id);  // the fork server labels our output lines with it
}

bool worker_runtime::complete(error_kind status, std::string_view value, bool publish_now) {
  auto& control = *view_.control;
  const std::uint64_t token = held_.front().token;
  control.out_of_memory.store(0, std::memory_order_relaxed);
  std::string why;
  if (status == error_kind::none && value.size() > launch_.max_body) {
    status = error_kind::rejected;
    why = "result of " + std::to_string(value.size()) + " bytes exceeds max_message (" + std::to_string(launch_.max_body) +
          " bytes)";
    value = why;
  }
  const auto micros =
      static_cast<std::uint32_t>(std::min<std::int64_t>((wire::monotonic_ns() - held_started_) / 1000, UINT32_MAX));
  auto ec = send({.type = wire::kind::result, .status = static_cast<std::uint8_t>(status), .run_us = micros, .token = token, .body = value});
  if (ec == ipc::errc::message_too_large) {
    why = "result of " + std::to_string(value.size()) + " bytes exceeds max_message";
    ec = send({.type = wire::kind::result, .status = static_cast<std::uint8_t>(error_kind::rejected), .run_us = micros, .token = token, .body = why});
  }
  held_.pop_front();
  control.current_job.store(0, std::memory_order_release);
  // What the handler left in stdout's buffer goes out while its job id is still shown
  // (no system call when the buffer is empty).
  std::fflush(stdout);
  wait_output_read();
  if (held_.empty())
    wire::set_job_id(control, {});
  else
    run_next(held_.front());
  control.jobs_done.fetch_add(1, std::memory_order_relaxed);
  if (ec) {
    log_->error("cannot send a result: {}", ec.message());
    stop_ = true;
    return false;
  }
  // Published at once: a result held back while the next handler runs would be late
  // if that handler is slow, and lost (its job run again) if it kills the process. A
  // caller with more results at hand publishes them together.
  if (publish_now) results_.publish();
  return true;
}

void worker_runtime::publish() noexcept { results_.publish(); }

int worker_runtime::finish() {
  results_.publish();
  log_->debug("stopped after {} job(s)", view_.control->jobs_done.load());
  std::fflush(nullptr);  // the process ends with _exit: nothing else flushes stdio
  return k_exit_stopped;
}

// --- used by job (the handler's side) and the C ABI

std::uint64_t worker_runtime::submit(std::string_view pool, std::string_view type, std::string_view payload,
                                     bool wants_reply) {
  std::uint64_t token = 0;
  if (auto ec = try_submit(pool, type, payload, wants_reply, token))
    throw std::runtime_error("cannot submit to pool '" + std::string(pool) + "': " + ec.message());
  return token;
}

std::error_code worker_runtime::try_submit(std::string_view pool, std::string_view type, std::string_view payload,
                                           bool wants_reply, std::uint64_t& token) {
  token = wants_reply ? next_request_++ : 0;
  const wire::message m{.type = wire::kind::submit, .token = token, .pool = pool, .job_type = type, .body = payload};
  if (auto ec = send(m)) return ec;
  results_.publish();
  return {};
}

result worker_runtime::wait(std::uint64_t token, std::chrono::milliseconds timeout) {
  const auto deadline = timeout.count() >= std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::hours(24 * 365)).count()
                            ? clock_type::time_point::max()
                            : clock_type::now() + timeout;
  for (;;) {
    if (auto it = replies_.find(token); it != replies_.end()) {
      result r = std::move(it->second);
      replies_.erase(it);
      return r;
    }
    deferred_message m;
    if (const auto ec = read_ring(m, deadline)) {
      result r;
      r.error = ec == ipc::errc::timed_out ? error_kind::timeout : error_kind::stopped;
      r.value = r.error == error_kind::timeout ? "no reply within " + std::to_string(timeout.count()) + " ms"
                                                : "supervisor connection broken";
      return r;
    }
    if (m.type == wire::kind::reply) {
      result r;
      r.error = static_cast<error_kind>(m.status);
      r.value = std::move(m.body);
      r.attempts = m.attempt;
      replies_.emplace(m.token, std::move(r));
    } else {
      backlog_.push_back(std::move(m));  // a job, or stop: after the handler returns
    }
  }
}

std::error_code worker_runtime::send(const wire::message& m) {
  auto ec = wire::encode(results_, m);
  if (ec == ipc::errc::full) {
    // Blocks only while the dispatcher is behind; it never stops reading a live worker.
    results_.publish();
    if (!results_.wait_writable(layout_.rings.max_message, clock_type::now() + std::chrono::hours(1)))
      return ipc::errc::timed_out;
    ec = wire::encode(results_, m);
  }
  return ec;
}

// The next message: one kept back while a handler waited, else from the ring.
std::error_code worker_runtime::next_message(deferred_message& m, clock_type::time_point deadline) {
  if (!backlog_.empty()) {
    m = std::move(backlog_.front());
    backlog_.pop_front();
    return {};
  }
  return read_ring(m, deadline);
}

// Reads one message from the job ring, copying it out so that its space goes back to
// the supervisor at once. Publishes staged results before any wait.
std::error_code worker_runtime::read_ring(deferred_message& out, clock_type::time_point deadline) {
  std::span<const std::byte> bytes;
  auto ec = jobs_.try_read(bytes);
  if (ec == ipc::errc::empty) {
    if (deadline == clock_type::time_point::min()) return ipc::errc::timed_out;
    results_.publish();
    while ((ec = jobs_.read(bytes, std::min(deadline, clock_type::now() + std::chrono::seconds(1)), wait_policy_)) ==
           ipc::errc::timed_out) {
      if (clock_type::now() >= deadline) return ipc::errc::timed_out;
    }
  }
  if (ec) {
    log_->error("job ring unusable: {}", ec.message());
    return ec;
  }
  auto m = wire::decode(bytes);
  if (!m) {
    log_->error("malformed message from the supervisor");
    return ipc::errc::corrupt;
  }
  out.type = m->type;
  out.status = m->status;
  out.attempt = m->attempt;
  out.token = m->token;
  out.job_type.assign(m->job_type);
  out.id.assign(m->id);
  out.body.assign(m->body);
  jobs_.release();
  return {};
}

namespace {

// Serves jobs with the handlers `h`: the hooks, ready with their names, then each job
// run by its handler, a handler's exception becoming its job's failure.
int serve_handlers(worker_runtime& rt, const handlers& h) {
  if (const auto& hook = handlers_access::start_hook(h)) {
    try {
      hook(rt.slot());
    } catch (const std::exception& e) {
      rt.fatal(std::string("on_start failed: ") + e.what());
      return k_exit_cannot_serve;
    }
  }
  std::string names;
  for (const auto& n : h.names()) names += (names.empty() ? "" : "\n") + n;
  rt.ready(names);
  deferred_message m;
  while (rt.next_job(m)) {
    const handler* fn = h.find(m.job_type);
    error_kind status = error_kind::none;
    std::string value;
    if (!fn) {
      status = error_kind::rejected;
      value = "no handler for job type '" + m.job_type + "' in this worker";
    } else {
      job j({.runtime = &rt, .type = m.job_type, .payload = m.body, .id = m.id, .attempt = m.attempt, .slot = rt.slot()});
      try {
        value = (*fn)(j);
      } catch (const std::bad_alloc&) {
        status = error_kind::memory;
        value = "out of memory (std::bad_alloc)";
      } catch (const std::exception& e) {
        status = error_kind::exception;
        value = e.what();
      } catch (...) {
        status = error_kind::exception;
        value = "unknown exception";
      }
    }
    if (!rt.complete(status, value)) break;
  }
  if (!rt.stopped()) return k_exit_protocol;
  if (const auto& hook = handlers_access::stop_hook(h)) {
    try {
      hook(rt.slot());
    } catch (const std::exception& e) {
      rt.log().error("on_stop failed: {}", e.what());
    }
  }
  return rt.finish();
}

}  // namespace

void release_current_job() noexcept {
  if (g_control) g_control->current_job.store(0, std::memory_order_release);
}

int run_worker(const worker_launch& launch, const handlers* h, const std::string& handlers_error) noexcept {
  try {
    int code = 0;
    auto rt = worker_runtime::open(launch, code);
    if (!rt) return code;
    if (!handlers_error.empty() || h == nullptr) {
      rt->fatal(handlers_error.empty() ? "no handlers" : handlers_error);
      return k_exit_cannot_serve;
    }
    return serve_handlers(*rt, *h);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ringmaster worker: %s\n", e.what());
    return k_exit_cannot_serve;
  }
}

}  // namespace ringmaster::detail

namespace ringmaster {

job::job(const detail::job_context& c) noexcept
    : runtime_(c.runtime), type_(c.type), payload_(c.payload), id_(c.id), attempt_(c.attempt), slot_(c.slot) {}

void job::post(std::string_view pool, std::string_view type, std::string_view payload) {
  (void)runtime_->submit(pool, type, payload, false);
}

pending_request job::submit(std::string_view pool, std::string_view type, std::string_view payload) {
  return {runtime_->submit(pool, type, payload, true)};
}

result job::wait(pending_request request, std::chrono::milliseconds timeout) { return runtime_->wait(request.token, timeout); }

result job::call(std::string_view pool, std::string_view type, std::string_view payload, std::chrono::milliseconds timeout) {
  return wait(submit(pool, type, payload), timeout);
}

}  // namespace ringmaster
