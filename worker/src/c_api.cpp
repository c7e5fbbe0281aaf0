// The C ABI (ringmaster/worker.h) over the worker runtime's pull core
// (detail/runtime.hpp): the same runtime serve() drives, driven from the caller's loop.
// Every entry point is noexcept: an exception (std::bad_alloc, a runtime error) becomes a
// status and a message for rm_last_error(), never an unwinding through C frames.
#define RM_BUILDING_LIBRARY 1
#include <ringmaster/worker.h>

#include <atomic>
#include <cstring>
#include <memory>
#include <new>
#include <ringmaster/ipc/errc.hpp>
#include <ringmaster/worker/detail/launch.hpp>
#include <ringmaster/worker/detail/runtime.hpp>
#include <ringmaster/worker/detail/wire.hpp>
#include <ringmaster/worker/handlers.hpp>
#include <string>
#include <vector>

namespace rd = ringmaster::detail;
using ringmaster::error_kind;

struct rm_job {
  rd::deferred_message message;
};

struct rm_worker {
  std::unique_ptr<rd::worker_runtime> runtime;
  rm_job job;
};

struct rm_result {
  ringmaster::result value;
};

// The kinds' values are the wire's (error_kind): worker.h repeats them for C.
static_assert(RM_KIND_NONE == static_cast<int>(error_kind::none) && RM_KIND_CRASH == static_cast<int>(error_kind::crash) &&
              RM_KIND_TIMEOUT == static_cast<int>(error_kind::timeout) &&
              RM_KIND_MEMORY == static_cast<int>(error_kind::memory) &&
              RM_KIND_EXCEPTION == static_cast<int>(error_kind::exception) &&
              RM_KIND_REJECTED == static_cast<int>(error_kind::rejected) &&
              RM_KIND_STOPPED == static_cast<int>(error_kind::stopped));

namespace {

thread_local std::string t_last_error;
// A process has one launch: the environment names one slot, and is removed once read.
std::atomic<bool> g_opened{false};

int fail_with(int status, const char* why) noexcept {
  try {
    t_last_error = why;
  } catch (...) {
    t_last_error.clear();  // no memory for the message: the status still says it
  }
  return status;
}
int fail_with(int status, const std::string& why) noexcept { return fail_with(status, why.c_str()); }

const char* with_length(const std::string& s, size_t* len) noexcept {
  if (len) *len = s.size();
  return s.c_str();
}

}  // namespace

extern "C" {

RM_API int rm_abi_version(void) noexcept { return RM_ABI_VERSION; }
RM_API int rm_version(void) noexcept { return RM_VERSION; }
RM_API const char* rm_last_error(void) noexcept { return t_last_error.c_str(); }

RM_API int rm_worker_open(const char* program, const char* const* types, size_t n_types, rm_worker** out) noexcept {
  if (out == nullptr || types == nullptr || n_types == 0) return fail_with(RM_E_INVALID, "rm_worker_open: no job types or no handle to set");
  *out = nullptr;
  try {
    std::vector<std::string> names;
    std::string joined;
    for (size_t i = 0; i < n_types; ++i) {
      if (types[i] == nullptr || types[i][0] == '\0' || std::strlen(types[i]) > ringmaster::wire::k_max_name)
        return fail_with(RM_E_INVALID, "rm_worker_open: a job type is empty or longer than 1024 bytes");
      names.emplace_back(types[i]);
      joined += (joined.empty() ? "" : "\n") + names.back();
    }
    if (g_opened.exchange(true)) return fail_with(RM_E_STATE, "rm_worker_open: this process is already a worker");
    rd::worker_launch launch;
    switch (rd::launch_from_environment(program ? program : "worker", names, launch)) {
      case 0: break;
      case rd::k_exit_not_launched:
        g_opened = false;  // nothing attached: a later call may find a launch
        return fail_with(RM_E_NOT_LAUNCHED, "not launched by a ringmaster supervisor (RINGMASTER_WORKER is not set)");
      default: return fail_with(RM_E_CANNOT_SERVE, "malformed RINGMASTER_WORKER");
    }
    std::string error;
    int code = 0;
    auto rt = rd::worker_runtime::open(launch, error, code);
    if (!rt) return fail_with(RM_E_CANNOT_SERVE, "cannot attach to the supervisor: " + error);
    auto w = std::make_unique<rm_worker>();
    w->runtime = std::move(rt);
    w->runtime->ready(joined);
    *out = w.release();
    return RM_OK;
  } catch (const std::bad_alloc&) {
    return fail_with(RM_E_MEMORY, "rm_worker_open: out of memory");
  } catch (const std::exception& e) {
    return fail_with(RM_E_CANNOT_SERVE, e.what());
  }
}

RM_API int rm_next(rm_worker* w, const rm_job** job) noexcept {
  if (w == nullptr || job == nullptr) return fail_with(RM_E_INVALID, "rm_next: NULL argument");
  *job = nullptr;
  if (w->runtime->holding()) return fail_with(RM_E_STATE, "rm_next: the job held is not answered yet (rm_reply or rm_fail)");
  try {
    if (w->runtime->next_job(w->job.message)) {
      *job = &w->job;
      return RM_OK;
    }
  } catch (const std::bad_alloc&) {
    return fail_with(RM_E_MEMORY, "rm_next: out of memory");
  } catch (const std::exception& e) {
    return fail_with(RM_E_BROKEN, e.what());
  }
  if (w->runtime->stopped()) return RM_STOPPED;
  return fail_with(RM_E_BROKEN, "the job queue from the supervisor is broken");
}

RM_API const char* rm_job_id(const rm_job* job, size_t* len) noexcept {
  return job ? with_length(job->message.id, len) : nullptr;
}
RM_API const char* rm_job_type(const rm_job* job, size_t* len) noexcept {
  return job ? with_length(job->message.job_type, len) : nullptr;
}
RM_API const char* rm_job_payload(const rm_job* job, size_t* len) noexcept {
  return job ? with_length(job->message.body, len) : nullptr;
}
RM_API unsigned rm_job_attempt(const rm_job* job) noexcept { return job ? job->message.attempt : 0; }
RM_API int rm_worker_slot(const rm_worker* w) noexcept { return w ? w->runtime->slot() : -1; }

namespace {

int answer(rm_worker* w, error_kind kind, std::string_view value, const char* who) noexcept {
  if (w == nullptr) return fail_with(RM_E_INVALID, std::string(who) + ": NULL worker");
  if (!w->runtime->holding()) return fail_with(RM_E_STATE, std::string(who) + ": no job held (rm_next first)");
  try {
    if (w->runtime->complete(kind, value)) return RM_OK;
    return fail_with(RM_E_BROKEN, std::string(who) + ": cannot send the result: the supervisor is gone");
  } catch (const std::exception& e) {
    return fail_with(RM_E_BROKEN, e.what());
  }
}

}  // namespace

RM_API int rm_reply(rm_worker* w, const void* data, size_t len) noexcept {
  if (data == nullptr && len > 0) return fail_with(RM_E_INVALID, "rm_reply: NULL data");
  return answer(w, error_kind::none, std::string_view(static_cast<const char*>(data), data ? len : 0), "rm_reply");
}

RM_API int rm_fail(rm_worker* w, int kind, const char* message) noexcept {
  if (kind != RM_FAIL_EXCEPTION && kind != RM_FAIL_MEMORY && kind != RM_FAIL_REJECTED)
    return fail_with(RM_E_INVALID, "rm_fail: kind must be RM_FAIL_EXCEPTION, RM_FAIL_MEMORY or RM_FAIL_REJECTED");
  return answer(w, static_cast<error_kind>(kind), message ? message : "", "rm_fail");
}

RM_API int rm_submit(rm_worker* w, const char* pool, const char* type, const void* payload, size_t len,
                     uint64_t* request) noexcept {
  if (w == nullptr || pool == nullptr || type == nullptr || (payload == nullptr && len > 0))
    return fail_with(RM_E_INVALID, "rm_submit: NULL argument");
  try {
    std::uint64_t token = 0;
    const std::string_view body(static_cast<const char*>(payload), payload ? len : 0);
    if (auto ec = w->runtime->try_submit(pool, type, body, request != nullptr, token)) {
      const std::string why = std::string("cannot submit to pool '") + pool + "': " + ec.message();
      return fail_with(ec == ringmaster::ipc::errc::message_too_large ? RM_E_TOO_LARGE : RM_E_BROKEN, why);
    }
    if (request) *request = token;
    return RM_OK;
  } catch (const std::bad_alloc&) {
    return fail_with(RM_E_MEMORY, "rm_submit: out of memory");
  } catch (const std::exception& e) {
    return fail_with(RM_E_BROKEN, e.what());
  }
}

RM_API int rm_wait(rm_worker* w, uint64_t request, int64_t timeout_ms, rm_result** out) noexcept {
  if (w == nullptr || out == nullptr) return fail_with(RM_E_INVALID, "rm_wait: NULL argument");
  *out = nullptr;
  try {
    const auto timeout = timeout_ms < 0 ? ringmaster::job::k_call_timeout : std::chrono::milliseconds(timeout_ms);
    auto r = std::make_unique<rm_result>();
    r->value = w->runtime->wait(request, timeout);
    *out = r.release();
    return RM_OK;
  } catch (const std::bad_alloc&) {
    return fail_with(RM_E_MEMORY, "rm_wait: out of memory");
  } catch (const std::exception& e) {
    return fail_with(RM_E_BROKEN, e.what());
  }
}

RM_API int rm_result_kind(const rm_result* r) noexcept { return r ? static_cast<int>(r->value.error) : RM_KIND_NONE; }
RM_API const char* rm_result_value(const rm_result* r, size_t* len) noexcept {
  return r ? with_length(r->value.value, len) : nullptr;
}
RM_API unsigned rm_result_attempts(const rm_result* r) noexcept { return r ? r->value.attempts : 0; }
RM_API void rm_result_free(rm_result* r) noexcept { delete r; }

RM_API void rm_log(rm_worker* w, int level, const char* message) noexcept {
  if (w == nullptr || message == nullptr) return;
  const auto l = level >= RM_LOG_TRACE && level <= RM_LOG_ERROR ? static_cast<spdlog::level::level_enum>(level)
                                                                 : spdlog::level::err;
  try {
    w->runtime->log().log(l, "{}", message);
  } catch (...) {
    // A log line is not worth the worker: spdlog reports its own errors on stderr.
  }
}

RM_API int rm_exit_code(int status) noexcept {
  switch (status) {
    case RM_OK:
    case RM_STOPPED: return rd::k_exit_stopped;
    case RM_E_NOT_LAUNCHED: return rd::k_exit_not_launched;
    case RM_E_CANNOT_SERVE: return rd::k_exit_cannot_serve;
    default: return rd::k_exit_protocol;
  }
}

RM_API int rm_worker_close(rm_worker* w, int status) noexcept {
  int code = rm_exit_code(status);
  if (w == nullptr) return code;
  try {
    if (status == RM_STOPPED) code = w->runtime->finish();
  } catch (...) {
    code = rd::k_exit_protocol;
  }
  delete w;
  return code;
}

}  // extern "C"
