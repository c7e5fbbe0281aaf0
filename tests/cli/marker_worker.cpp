// A worker executable for the CLI's end-to-end tests: proves how many times each job ran.
//
//   mark   appends the job's id and a newline to the file named by the worker's first
//          argument (command = ["marker_worker", "/path/to/marks"]), then sleeps
//          payload milliseconds; result = the id.
//
// One write() with O_APPEND per mark, so marks from concurrent workers never interleave.
#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <ringmaster/worker/serve.hpp>
#include <stdexcept>
#include <string>
#include <thread>

namespace {
std::string g_marks;  // set from argv before serving: the workers are single-purpose
}

int main(int argc, char** argv) {
  if (argc > 1) g_marks = argv[1];
  static ringmaster::handlers h;
  h.on("mark", [](ringmaster::job& j) {
    const std::string line = std::string(j.id()) + "\n";
    const int fd = ::open(g_marks.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0 || ::write(fd, line.data(), line.size()) != static_cast<ssize_t>(line.size()))
      throw std::runtime_error("cannot write the mark to '" + g_marks + "'");
    ::close(fd);
    std::this_thread::sleep_for(std::chrono::milliseconds(std::stoi(std::string(j.payload()))));
    return std::string(j.id());
  });
  return ringmaster::serve(argc, argv, h);
}
