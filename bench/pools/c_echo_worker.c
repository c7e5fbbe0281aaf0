/* The C ABI's side of the C-ABI-against-serve() benchmark (bench/cli/programs.py): an
 * `echo` worker on ringmaster/worker.h alone, the counterpart of
 * `ringmaster_pool_bench serve-worker` (the same job on ringmaster::serve()). */
#include <ringmaster/worker.h>
#include <stdio.h>

int main(int argc, char** argv) {
  (void)argc;
  static const char* const types[] = {"echo"};
  rm_worker* w = NULL;
  int rc = rm_worker_open(argv[0], types, 1, &w);
  if (rc != RM_OK) return rm_exit_code(rc);
  const rm_job* job = NULL;
  while ((rc = rm_next(w, &job)) == RM_OK) {
    size_t n = 0;
    const char* payload = rm_job_payload(job, &n);
    if ((rc = rm_reply(w, payload, n)) != RM_OK) {
      fprintf(stderr, "c_echo_worker: %s\n", rm_last_error());
      break;
    }
  }
  return rm_worker_close(w, rc);
}
