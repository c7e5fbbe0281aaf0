// A worker executable for tests of exec'd workers: the demo handlers, plus job types
// that misbehave in the ways a real worker can.
//
//   exit        payload N: _exit(N) mid-job
//   terminate   calls std::terminate()
//   overflow    unbounded recursion: dies of a stack overflow (SIGSEGV)
//   stubborn    ignores SIGTERM, then hangs (a timeout must escalate to SIGKILL)
//   pid         result = this worker's pid
//
// With the environment variable RINGMASTER_TEST_WORKER_FAIL_START set, it prints that
// text on stderr and exits 3 before serving: a worker that can never start.
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <ringmaster/worker/demo_handlers.hpp>
#include <ringmaster/worker/serve.hpp>
#include <string>

#if defined(__SANITIZE_ADDRESS__)
// Under AddressSanitizer, let a crash be the plain signal death a real worker has (ASan
// would otherwise catch SIGSEGV — a stack overflow among others — and exit with code 1).
extern "C" const char* __asan_default_options() { return "handle_segv=0:handle_sigbus=0:handle_abort=0"; }
#endif
#if defined(__SANITIZE_THREAD__)
extern "C" const char* __tsan_default_options() { return "handle_segv=0:handle_sigbus=0:handle_abort=0"; }
#endif

namespace {

// A limit the compiler cannot see through, so the recursion is not optimised away or
// flagged: it is never reached before the stack is.
volatile int g_depth_limit = 1 << 30;

int recurse(int depth) {
  volatile char frame[1024];
  frame[0] = static_cast<char>(depth);
  if (depth >= g_depth_limit) return depth;
  return recurse(depth + 1) + frame[0];
}

}  // namespace

int main(int argc, char** argv) {
  if (const char* fail = std::getenv("RINGMASTER_TEST_WORKER_FAIL_START")) {
    std::fprintf(stderr, "test_worker: %s\n", fail);
    return 3;
  }
  static ringmaster::handlers h;
  for (const auto& type : ringmaster::demo_handlers().names())
    h.on(type, [type](ringmaster::job& j) { return (*ringmaster::demo_handlers().find(type))(j); });
  h.on("exit", [](ringmaster::job& j) -> std::string { ::_exit(std::atoi(std::string(j.payload()).c_str())); })
      .on("terminate", [](ringmaster::job&) -> std::string { std::terminate(); })
      .on("overflow", [](ringmaster::job&) -> std::string { return std::to_string(recurse(0)); })
      .on("stubborn",
          [](ringmaster::job&) -> std::string {
            ::signal(SIGTERM, SIG_IGN);
            for (;;) ::pause();
          })
      .on("pid", [](ringmaster::job&) { return std::to_string(::getpid()); });
  return ringmaster::serve(argc, argv, h);
}
