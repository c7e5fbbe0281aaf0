/* ringmaster/worker.h — the C ABI of a ringmaster worker: a loop over the same
 * shared-memory queues as ringmaster::serve(), for workers written in C or in any language
 * that calls C (Rust, Go's cgo, Zig, Python's ctypes). C99; also valid C++.
 *
 *     rm_worker* w;
 *     const char* types[] = {"reverse"};
 *     int rc = rm_worker_open(argv[0], types, 1, &w);
 *     if (rc != RM_OK) return rm_exit_code(rc);
 *     const rm_job* job;
 *     while ((rc = rm_next(w, &job)) == RM_OK) {
 *       size_t n;
 *       const char* p = rm_job_payload(job, &n);
 *       ... rm_reply(w, result, result_len)  or  rm_fail(w, RM_FAIL_EXCEPTION, "why") ...
 *     }
 *     return rm_worker_close(w, rc);
 *
 * A supervisor launches the program (a pool with `command`) with RINGMASTER_WORKER in its
 * environment; rm_worker_open() attaches to what it names and reports ready. Run by hand,
 * without it, rm_worker_open() prints what the program is and which job types it serves
 * and returns RM_E_NOT_LAUNCHED (exit code 64, as serve()'s).
 *
 * The library: libringmaster_worker_c.so.<RM_ABI_VERSION>, exporting only the rm_*
 * functions below. Its ABI is stable within an RM_ABI_VERSION: functions are only added,
 * never changed; handles are opaque, and no C++ type or exception crosses it (every
 * function catches what it must and returns a status).
 *
 * Ownership: rm_worker_open() creates the handle, rm_worker_close() ends it. A job
 * (rm_next) and the strings it points to belong to the handle and stay valid until the
 * job is answered (rm_reply, rm_fail). A result (rm_wait) belongs to the caller until
 * rm_result_free().
 *
 * Blocking: rm_next() and rm_wait() block (rm_wait up to its timeout); every other
 * function returns at once, except that a message blocks while the supervisor is behind
 * reading this worker's queue.
 *
 * Threads: a handle is used by one thread at a time (the runtime is not thread-safe).
 * rm_last_error() is per thread.
 *
 * Errors: every function that can fail returns an int status, RM_OK (0) or a negative
 * RM_E_* code; rm_last_error() then says why, in words. Misuse (a reply with no job held,
 * a second rm_next before the reply) is refused with RM_E_STATE and never reaches the
 * supervisor: through this API a worker cannot break the protocol.
 */
#ifndef RINGMASTER_WORKER_H
#define RINGMASTER_WORKER_H

#include <stddef.h>
#include <stdint.h>

#if defined(RM_BUILDING_LIBRARY)
#define RM_API __attribute__((visibility("default")))
#else
#define RM_API
#endif

#ifdef __cplusplus
#define RM_NOEXCEPT noexcept
extern "C" {
#else
#define RM_NOEXCEPT
#endif

/* The ABI version: the library's SOVERSION. rm_abi_version() returns the library's; a
 * program built against this header may check that it is the same. */
#define RM_ABI_VERSION 1
/* The ringmaster release this header comes with, as MAJOR * 10000 + MINOR * 100 + PATCH. */
#define RM_VERSION 100

/* --- statuses */
#define RM_OK 0
#define RM_STOPPED 1              /* rm_next: the supervisor said stop; close the handle */
#define RM_E_NOT_LAUNCHED (-1)    /* not launched by a supervisor (RINGMASTER_WORKER unset) */
#define RM_E_CANNOT_SERVE (-2)    /* cannot attach to the supervisor's queues */
#define RM_E_BROKEN (-3)          /* the queues broke or the supervisor is gone */
#define RM_E_INVALID (-4)         /* a bad argument (NULL, an unknown kind, a name too long) */
#define RM_E_STATE (-5)           /* a call out of turn: reply with no job held, next with one held */
#define RM_E_TOO_LARGE (-6)       /* a submission over the pool's max_message */
#define RM_E_MEMORY (-7)          /* the library could not allocate */

/* --- why a job failed: ringmaster's error kinds (result.hpp, error_kind), same values */
#define RM_KIND_NONE 0      /* ok */
#define RM_KIND_CRASH 1
#define RM_KIND_TIMEOUT 2
#define RM_KIND_MEMORY 3    /* rm_fail: the job ran out of memory (malloc returned NULL) */
#define RM_KIND_EXCEPTION 4 /* rm_fail: the job failed (the handler's error) */
#define RM_KIND_REJECTED 5  /* rm_fail: the job was refused (a malformed payload) */
#define RM_KIND_STOPPED 6
/* The kinds rm_fail accepts. */
#define RM_FAIL_MEMORY RM_KIND_MEMORY
#define RM_FAIL_EXCEPTION RM_KIND_EXCEPTION
#define RM_FAIL_REJECTED RM_KIND_REJECTED

/* --- log levels, as spdlog's */
#define RM_LOG_TRACE 0
#define RM_LOG_DEBUG 1
#define RM_LOG_INFO 2
#define RM_LOG_WARN 3
#define RM_LOG_ERROR 4

typedef struct rm_worker rm_worker; /* a worker attached to its supervisor */
typedef struct rm_job rm_job;       /* the job a worker holds */
typedef struct rm_result rm_result; /* the result of a job this worker submitted */

/// The library's ABI version (RM_ABI_VERSION when it matches this header). Non-blocking.
RM_API int rm_abi_version(void) RM_NOEXCEPT;
/// The library's release, as RM_VERSION encodes it. Non-blocking.
RM_API int rm_version(void) RM_NOEXCEPT;

/// Why the last call on this thread that failed did, in words ("" if none did). Valid
/// until this thread's next failing call.
RM_API const char* rm_last_error(void) RM_NOEXCEPT;

/// Attaches to the supervisor that launched this process and reports ready, serving the
/// `n_types` job types `types` (a job of another type is refused by the supervisor).
/// `program` names the program in the message printed when not launched (argv[0]).
/// RM_OK with *out set; RM_E_NOT_LAUNCHED (a message on stderr says what the program
/// is); RM_E_CANNOT_SERVE (the reason also goes to the supervisor as a start failure);
/// RM_E_INVALID (no types, a type empty or over 1024 bytes). Once per process.
RM_API int rm_worker_open(const char* program, const char* const* types, size_t n_types, rm_worker** out) RM_NOEXCEPT;

/// Blocks until the next job: RM_OK with *job set (held until rm_reply or rm_fail);
/// RM_STOPPED when the supervisor says stop (recycling, drain, shutdown); RM_E_BROKEN;
/// RM_E_STATE when a job is still held.
RM_API int rm_next(rm_worker* w, const rm_job** job) RM_NOEXCEPT;

/// The held job's id, type and payload (a string payload's characters, any other JSON
/// payload's compact text), each with its length in *len when len is not NULL. Not
/// NUL-terminated in general: use the length (the id and type are NUL-terminated).
RM_API const char* rm_job_id(const rm_job* job, size_t* len) RM_NOEXCEPT;
RM_API const char* rm_job_type(const rm_job* job, size_t* len) RM_NOEXCEPT;
RM_API const char* rm_job_payload(const rm_job* job, size_t* len) RM_NOEXCEPT;
/// 1 for the first attempt, 2 after the worker running it died once, ...
RM_API unsigned rm_job_attempt(const rm_job* job) RM_NOEXCEPT;
/// This worker's slot in its pool.
RM_API int rm_worker_slot(const rm_worker* w) RM_NOEXCEPT;

/// Answers the held job: ok, with `len` bytes at `data` as its result. A result over the
/// pool's max_message fails the job (kind rejected) instead. RM_OK; RM_E_STATE (no job
/// held); RM_E_BROKEN (the supervisor is gone: rm_next then returns RM_STOPPED).
RM_API int rm_reply(rm_worker* w, const void* data, size_t len) RM_NOEXCEPT;
/// Answers the held job: failed, with kind RM_FAIL_EXCEPTION, RM_FAIL_MEMORY or
/// RM_FAIL_REJECTED and the NUL-terminated `message` (NULL: ""). Not retried (a retry
/// is for a worker's death). RM_OK; RM_E_INVALID (another kind: the job stays held);
/// RM_E_STATE; RM_E_BROKEN.
RM_API int rm_fail(rm_worker* w, int kind, const char* message) RM_NOEXCEPT;

/// Submits a job of type `type` (NUL-terminated) with `len` payload bytes to the pool
/// `pool` of this worker's supervisor. With `request` not NULL, *request is set to wait
/// for its result with rm_wait; with NULL, nobody waits (fire and forget). Non-blocking.
/// RM_OK; RM_E_TOO_LARGE; RM_E_INVALID; RM_E_BROKEN.
RM_API int rm_submit(rm_worker* w, const char* pool, const char* type, const void* payload, size_t len,
                     uint64_t* request) RM_NOEXCEPT;
/// Blocks until the result of `request` arrives, or `timeout_ms` passes (negative:
/// 60 s, the C++ job::wait's default). RM_OK with *out set (free it with
/// rm_result_free), whatever the job's outcome: a job that failed, one to an unknown
/// pool, no reply within the timeout (kind RM_KIND_TIMEOUT), the supervisor gone (kind
/// RM_KIND_STOPPED) each have a result with its kind and message. RM_E_INVALID;
/// RM_E_MEMORY.
RM_API int rm_wait(rm_worker* w, uint64_t request, int64_t timeout_ms, rm_result** out) RM_NOEXCEPT;
/// The result's kind (RM_KIND_NONE when ok), its value (ok: the result; failed: the
/// message; NUL-terminated, with its length in *len when not NULL) and attempts.
RM_API int rm_result_kind(const rm_result* r) RM_NOEXCEPT;
RM_API const char* rm_result_value(const rm_result* r, size_t* len) RM_NOEXCEPT;
RM_API unsigned rm_result_attempts(const rm_result* r) RM_NOEXCEPT;
RM_API void rm_result_free(rm_result* r) RM_NOEXCEPT;

/// Writes `message` (NUL-terminated) to the worker's log, on stderr with the pool, slot
/// and pid, at `level` (RM_LOG_*; another level is taken as RM_LOG_ERROR).
RM_API void rm_log(rm_worker* w, int level, const char* message) RM_NOEXCEPT;

/// Ends the worker: flushes what it sent and frees the handle (NULL: nothing). `status`
/// is the last status the loop saw (rm_next's). Returns the process exit code the
/// supervisor expects: 0 after RM_STOPPED, as rm_exit_code(status) otherwise.
RM_API int rm_worker_close(rm_worker* w, int status) RM_NOEXCEPT;
/// The process exit code for a status, as serve()'s: 0 for RM_OK and RM_STOPPED, 64
/// for RM_E_NOT_LAUNCHED, 70 for RM_E_CANNOT_SERVE, 71 for anything else.
RM_API int rm_exit_code(int status) RM_NOEXCEPT;

#ifdef __cplusplus
}
#endif

#endif /* RINGMASTER_WORKER_H */
