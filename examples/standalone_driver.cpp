// standalone_driver — a program whose pool runs a separate worker executable
// (standalone_worker.cpp) instead of forking copies of itself.
//
// A pool with `command` starts each worker by exec'ing that program, which serves its
// own handlers through ringmaster::serve(). The driver registers no handlers at all: the
// job types are whatever the executable serves. This is how workers are built when they
// must not share the supervisor's address space at all: another build, other libraries,
// another language runtime, or simply a program you can restart by redeploying a file.
//
// The driver sends a few jobs of each type the worker serves, asks each worker slot
// which executable it is running, and checks everything; it exits 1 on any difference.
//
//   ringmaster_example_standalone_driver [WORKER]
//       WORKER: path of ringmaster_example_standalone_worker (default: next to this
//       program; ctest passes it explicitly with $<TARGET_FILE:...>)
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <future>
#include <ringmaster/supervisor/supervisor.hpp>
#include <string>
#include <vector>

namespace fs = std::filesystem;

int main(int argc, char** argv) {
  const fs::path worker = fs::canonical(
      argc > 1 ? fs::path(argv[1]) : fs::read_symlink("/proc/self/exe").parent_path() / "ringmaster_example_standalone_worker");

  ringmaster::supervisor sup({.name = "standalone"});
  // No handlers object: the pool's workers are `worker`, exec'd with these arguments.
  ringmaster::pool& text = sup.add_pool("text", {.workers = 2, .command = {worker.string()}});
  sup.start();

  const std::vector<std::string> sentences = {
      "workers share no mutable state",
      "a segfault in one job kills one worker",
      "every worker dies with its supervisor",
  };
  int wrong = 0;
  auto check = [&wrong](const char* what, const ringmaster::result& r, const std::string& expected) {
    const bool right = r.ok() && r.value == expected;
    wrong += right ? 0 : 1;
    std::printf("%-11s worker %d  %s\n", what, r.worker, r.value.c_str());
    if (!right) std::printf("  <-- wrong, expected %s\n", expected.c_str());
  };

  std::vector<std::future<ringmaster::result>> reversed = text.map("reverse", sentences);
  std::vector<std::future<ringmaster::result>> counted = text.map("word_count", sentences);
  for (std::size_t i = 0; i < sentences.size(); ++i) {
    check("reverse", reversed[i].get(), std::string(sentences[i].rbegin(), sentences[i].rend()));
    check("word_count", counted[i].get(),
          std::to_string(1 + std::count(sentences[i].begin(), sentences[i].end(), ' ')));
  }

  // Every worker, whichever slot answers, is the executable we named.
  for (int i = 0; i < 4; ++i) check("whoami", text.submit("whoami", "").get(), worker.string());

  // A job type the executable does not serve fails at once, with a reason.
  const ringmaster::result unknown = text.submit("shout", "hello").get();
  std::printf("%-11s failed (%s): %s\n", "shout", std::string(to_string(unknown.error)).c_str(), unknown.value.c_str());
  wrong += unknown.error == ringmaster::error_kind::rejected ? 0 : 1;

  sup.drain();
  std::printf("standalone_driver: pool of %s, %d wrong\n", worker.filename().c_str(), wrong);
  return wrong == 0 ? 0 : 1;
}
