// standalone_worker — a worker executable: its own handlers and a main() that hands them
// to ringmaster::serve(). It links ringmaster::worker only; the supervisor lives in the
// program that runs it (see standalone_driver.cpp, or `ringmaster run` with a pool whose
// command names this file).
//
// Launched by a supervisor, serve() attaches to the queues it was given, reports ready and
// runs jobs until it is told to stop; the worker dies with its supervisor. Run by hand it
// says what it is and which job types it serves, and exits 64:
//
//   $ ./ringmaster_example_standalone_worker
//   ./ringmaster_example_standalone_worker: a ringmaster worker; a supervisor runs it ...
//   job types served: reverse whoami word_count
//
// Job types:
//   reverse     the payload, reversed
//   word_count  the number of blank-separated words in the payload
//   whoami      this process's executable (/proc/self/exe), so a driver can see that its
//               pool really runs this program
#include <algorithm>
#include <filesystem>
#include <ringmaster/worker/serve.hpp>
#include <sstream>
#include <string>

namespace {

std::string reverse(ringmaster::job& j) {
  std::string s(j.payload());
  std::reverse(s.begin(), s.end());
  return s;
}

std::string word_count(ringmaster::job& j) {
  std::istringstream in{std::string(j.payload())};
  std::size_t n = 0;
  for (std::string word; in >> word;) ++n;
  return std::to_string(n);
}

std::string whoami(ringmaster::job&) { return std::filesystem::read_symlink("/proc/self/exe").string(); }

}  // namespace

int main(int argc, char** argv) {
  ringmaster::handlers h;
  h.on("reverse", reverse).on("word_count", word_count).on("whoami", whoami);
  // Blocks while the worker serves; returns its exit code.
  return ringmaster::serve(argc, argv, h);
}
