/* The test worker in C, on the C ABI (ringmaster/worker.h): the job types of the C++ test
 * worker (test_worker.cpp) that the scenario tests run against each kind of worker, so
 * that a C worker is held to the same outcomes.
 *
 *   echo        the payload
 *   fail        fails with the payload as its message (kind exception)
 *   crash       dies by the signal the payload names ("ABRT", "KILL"; else SIGSEGV)
 *   hang        never returns
 *   stubborn    ignores SIGTERM, then hangs (a timeout must escalate to SIGKILL)
 *   exit        payload N: _exit(N) mid-job
 *   alloc       payload N: allocates and touches N MiB; malloc failing fails the job
 *               with kind memory (the C side of std::bad_alloc)
 *   pid         this worker's pid
 *   call        payload "POOL TYPE PAYLOAD": submits a job to POOL, waits for it, and
 *               returns "KIND VALUE" of its result (KIND as rm_result_kind's number)
 *   log         writes the payload to the worker's log (warn level), returns "logged"
 *   misuse      calls the API out of turn while it holds its job (rm_next, rm_fail with
 *               kind crash, a second rm_worker_open) and answers "next=S fail=S open=S"
 *               with their statuses; then exits 9 unless a second rm_reply is refused
 *
 * With RINGMASTER_TEST_WORKER_FAIL_START set, it prints that text on stderr and exits 3
 * before serving: a worker that can never start.
 */
#define _POSIX_C_SOURCE 200809L /* pause, _exit: POSIX beside C99 */
#include <ringmaster/worker.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
/* As test_worker.cpp: under AddressSanitizer a crash stays the plain signal death a real
 * worker has (ASan would otherwise catch SIGSEGV and exit with code 1). */
const char* __asan_default_options(void);
const char* __asan_default_options(void) { return "handle_segv=0:handle_sigbus=0:handle_abort=0"; }
#endif
#if defined(__SANITIZE_THREAD__)
const char* __tsan_default_options(void);
const char* __tsan_default_options(void) { return "handle_segv=0:handle_sigbus=0:handle_abort=0"; }
#endif

static int is(const char* type, const char* name) { return strcmp(type, name) == 0; }

/* The payload as a NUL-terminated copy (the ABI's payload has a length, no NUL). */
static char* payload_text(const rm_job* job) {
  size_t n = 0;
  const char* p = rm_job_payload(job, &n);
  char* s = malloc(n + 1);
  if (s == NULL) return NULL;
  memcpy(s, p, n);
  s[n] = '\0';
  return s;
}

static void die_by(const char* payload) {
  int sig = SIGSEGV;
  if (strstr(payload, "ABRT")) sig = SIGABRT;
  else if (strstr(payload, "KILL")) sig = SIGKILL;
  signal(sig, SIG_DFL);
  raise(sig);
  for (;;) pause();
}

static int reply_text(rm_worker* w, const char* text) { return rm_reply(w, text, strlen(text)); }

static int alloc_mib(rm_worker* w, const char* payload) {
  const size_t mib = strtoul(payload, NULL, 10);
  char* block = malloc(mib << 20);
  if (block == NULL) return rm_fail(w, RM_FAIL_MEMORY, "out of memory (malloc returned NULL)");
  for (size_t i = 0; i < (mib << 20); i += 4096) block[i] = (char)i;
  free(block);
  char out[64];
  snprintf(out, sizeof out, "allocated %zu MiB", mib);
  return reply_text(w, out);
}

static int call(rm_worker* w, char* payload) {
  char* type = strchr(payload, ' ');
  if (type == NULL) return rm_fail(w, RM_FAIL_REJECTED, "call: payload must be \"POOL TYPE PAYLOAD\"");
  *type++ = '\0';
  char* body = strchr(type, ' ');
  if (body) *body++ = '\0';
  uint64_t request = 0;
  int rc = rm_submit(w, payload, type, body ? body : "", body ? strlen(body) : 0, &request);
  if (rc != RM_OK) return rm_fail(w, RM_FAIL_EXCEPTION, rm_last_error());
  rm_result* r = NULL;
  if ((rc = rm_wait(w, request, 10000, &r)) != RM_OK) return rm_fail(w, RM_FAIL_EXCEPTION, rm_last_error());
  size_t n = 0;
  const char* value = rm_result_value(r, &n);
  char* out = malloc(n + 16);
  if (out == NULL) {
    rm_result_free(r);
    return rm_fail(w, RM_FAIL_MEMORY, "out of memory");
  }
  snprintf(out, n + 16, "%d %s", rm_result_kind(r), value);
  rm_result_free(r);
  rc = reply_text(w, out);
  free(out);
  return rc;
}

/* Each misuse is refused by the library and reaches nothing: the supervisor sees one
 * result for the job, the statuses of the refused calls. */
static int misuse(rm_worker* w) {
  const rm_job* other = NULL;
  const int next = rm_next(w, &other);
  const int fail = rm_fail(w, RM_KIND_CRASH, "a kind a worker may not claim");
  rm_worker* second = NULL;
  const int again = rm_worker_open("again", (const char* const[]){"echo"}, 1, &second);
  char out[128];
  snprintf(out, sizeof out, "next=%d fail=%d open=%d", next, fail, again);
  const int rc = reply_text(w, out);
  if (rc != RM_OK) return rc;
  /* Answered already: a second answer is refused, not sent. */
  const int reply = reply_text(w, "a second answer");
  if (reply != RM_E_STATE) {
    fprintf(stderr, "c_test_worker: a second rm_reply returned %d\n", reply);
    _exit(9);
  }
  return RM_OK;
}

int main(int argc, char** argv) {
  (void)argc;
  const char* fail_start = getenv("RINGMASTER_TEST_WORKER_FAIL_START");
  if (fail_start) {
    fprintf(stderr, "c_test_worker: %s\n", fail_start);
    return 3;
  }
  static const char* const types[] = {"echo", "fail", "crash", "hang", "stubborn", "exit", "alloc",
                                      "pid",  "call", "log",   "misuse"};
  rm_worker* w = NULL;
  int rc = rm_worker_open(argv[0], types, sizeof types / sizeof types[0], &w);
  if (rc != RM_OK) return rm_exit_code(rc);
  const rm_job* job = NULL;
  while ((rc = rm_next(w, &job)) == RM_OK) {
    const char* type = rm_job_type(job, NULL);
    char* payload = payload_text(job);
    if (payload == NULL) {
      rc = rm_fail(w, RM_FAIL_MEMORY, "out of memory");
    } else if (is(type, "echo")) {
      rc = reply_text(w, payload);
    } else if (is(type, "fail")) {
      rc = rm_fail(w, RM_FAIL_EXCEPTION, payload);
    } else if (is(type, "crash")) {
      die_by(payload);
    } else if (is(type, "hang")) {
      for (;;) pause();
    } else if (is(type, "stubborn")) {
      signal(SIGTERM, SIG_IGN);
      for (;;) pause();
    } else if (is(type, "exit")) {
      _exit(atoi(payload));
    } else if (is(type, "alloc")) {
      rc = alloc_mib(w, payload);
    } else if (is(type, "pid")) {
      char out[32];
      snprintf(out, sizeof out, "%d", (int)getpid());
      rc = reply_text(w, out);
    } else if (is(type, "call")) {
      rc = call(w, payload);
    } else if (is(type, "log")) {
      rm_log(w, RM_LOG_WARN, payload);
      rc = reply_text(w, "logged");
    } else if (is(type, "misuse")) {
      rc = misuse(w);
    } else {
      rc = rm_fail(w, RM_FAIL_REJECTED, "no handler for this job type");
    }
    free(payload);
    if (rc != RM_OK) break;
  }
  return rm_worker_close(w, rc);
}
