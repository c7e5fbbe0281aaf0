/* c_worker — a worker written in C, on the C ABI (ringmaster/worker.h) and nothing else:
 * the same job types as standalone_worker.cpp, so the same driver (standalone_driver.cpp)
 * runs a pool of it and checks every answer. It links libringmaster_worker_c.so only.
 *
 * The loop: rm_worker_open attaches to the supervisor that launched this process and
 * says which job types it serves; rm_next blocks for each job; rm_reply or rm_fail
 * answers it; rm_next returns RM_STOPPED when the supervisor says stop, and
 * rm_worker_close gives the exit code the supervisor expects. Run by hand, outside any
 * supervisor, it says what it is and exits 64:
 *
 *   $ ./ringmaster_example_c_worker
 *   ./ringmaster_example_c_worker: a ringmaster worker; a supervisor runs it ...
 *   job types served: reverse word_count whoami
 *
 * Job types:
 *   reverse     the payload, reversed
 *   word_count  the number of blank-separated words in the payload
 *   whoami      this process's executable (/proc/self/exe)
 */
#define _POSIX_C_SOURCE 200809L  /* readlink, ssize_t: POSIX beside C99 */
#include <ctype.h>
#include <limits.h>
#include <ringmaster/worker.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int reverse(rm_worker* w, const char* p, size_t n) {
  char* out = malloc(n ? n : 1);
  if (out == NULL) return rm_fail(w, RM_FAIL_MEMORY, "reverse: out of memory");
  for (size_t i = 0; i < n; ++i) out[i] = p[n - 1 - i];
  const int rc = rm_reply(w, out, n);
  free(out);
  return rc;
}

static int word_count(rm_worker* w, const char* p, size_t n) {
  size_t words = 0;
  for (size_t i = 0; i < n; ++i)
    if (!isspace((unsigned char)p[i]) && (i == 0 || isspace((unsigned char)p[i - 1]))) ++words;
  char out[32];
  const int len = snprintf(out, sizeof out, "%zu", words);
  return rm_reply(w, out, (size_t)len);
}

static int whoami(rm_worker* w) {
  char path[PATH_MAX];
  const ssize_t len = readlink("/proc/self/exe", path, sizeof path);
  if (len < 0) return rm_fail(w, RM_FAIL_EXCEPTION, "whoami: cannot read /proc/self/exe");
  return rm_reply(w, path, (size_t)len);
}

int main(int argc, char** argv) {
  (void)argc;
  static const char* const types[] = {"reverse", "word_count", "whoami"};
  rm_worker* w = NULL;
  int rc = rm_worker_open(argv[0], types, 3, &w);
  if (rc != RM_OK) return rm_exit_code(rc); /* 64 when run by hand */

  const rm_job* job = NULL;
  while ((rc = rm_next(w, &job)) == RM_OK) {
    size_t n = 0;
    const char* type = rm_job_type(job, NULL);
    const char* payload = rm_job_payload(job, &n);
    if (strcmp(type, "reverse") == 0) rc = reverse(w, payload, n);
    else if (strcmp(type, "word_count") == 0) rc = word_count(w, payload, n);
    else if (strcmp(type, "whoami") == 0) rc = whoami(w);
    else rc = rm_fail(w, RM_FAIL_REJECTED, "no handler for this job type"); /* the supervisor sends none */
    if (rc != RM_OK) {
      fprintf(stderr, "c_worker: %s\n", rm_last_error());
      break;
    }
  }
  /* RM_STOPPED: told to stop, exit code 0. Anything else: the code that says why. */
  return rm_worker_close(w, rc);
}
