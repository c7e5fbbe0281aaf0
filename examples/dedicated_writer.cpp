// dedicated_writer — one worker alone owns a resource (here an output file) and serves
// requests from the other workers on its own queue.
//
// Two pools:
//   "compute" (2 workers)  job "collatz": the number of Collatz steps from n down to 1;
//                          it sends its line "n steps" to the writer with job::post (fire
//                          and forget) and returns the steps;
//   "writer"  (1 worker)   job "write": appends its payload as one line to the file. It
//                          opens the file when it starts and keeps it open: no
//                          other process ever has it open, so no lock is needed and no
//                          line can be interleaved with another. Its handlers' on_start
//                          and on_stop hooks open and close the file.
//
// The file's path is set in a global before the supervisor is constructed: the fork
// server copies the program at that moment, so every forked worker sees it. Set up once
// before the workers start and never changed after, that is the only kind of state they
// share.
//
// sup.drain() returns once every accepted job has its result, and that includes the jobs
// that handlers posted while the compute jobs ran. The program then checks the writer
// pool's counters (a posted job's result has no one waiting for it), reads the file back
// and checks it has exactly one well-formed line per number, with the right value, all
// written by the same process; it exits 1 otherwise.
//
//   ringmaster_example_dedicated_writer [COUNT]   (default: 2000 numbers)
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>
#include <ringmaster/supervisor/supervisor.hpp>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

// Set by main() before the supervisor exists; read-only afterwards.
std::string g_output_path;

std::uint64_t collatz_steps(std::uint64_t n) {
  std::uint64_t steps = 0;
  for (; n > 1; ++steps) n = n % 2 == 0 ? n / 2 : 3 * n + 1;
  return steps;
}

// The writer's file: opened by on_start in the writer process, and only there (the
// compute workers have handlers of their own, without these hooks).
std::FILE* g_out = nullptr;

void open_output(int /*slot*/) {
  g_out = std::fopen(g_output_path.c_str(), "a");
  if (g_out == nullptr) throw std::runtime_error("cannot open " + g_output_path);  // the pool fails to start, saying so
}

// Runs when the writer is told to stop (sup.drain() does that once the work is done):
// buffered lines reach the file here.
void close_output(int /*slot*/) {
  if (g_out) std::fclose(g_out);
}

std::string write_line(ringmaster::job& j) {
  // Each line carries the writer's pid so the check below can see that one process
  // wrote them all.
  if (std::fprintf(g_out, "%.*s writer=%d\n", static_cast<int>(j.payload().size()), j.payload().data(), ::getpid()) < 0)
    throw std::runtime_error("cannot write " + g_output_path);
  return "written";
}

}  // namespace

int main(int argc, char** argv) {
  const std::uint64_t count = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 2000;
  g_output_path = (std::filesystem::temp_directory_path() / ("ringmaster_writer_" + std::to_string(::getpid()) + ".txt")).string();
  std::filesystem::remove(g_output_path);

  ringmaster::handlers compute_handlers;
  compute_handlers.on("collatz", [](ringmaster::job& j) {
    const std::uint64_t n = std::stoull(std::string(j.payload()));
    const std::uint64_t steps = collatz_steps(n);
    // Fire and forget: this handler goes on at once. Use j.call() instead to wait until
    // the writer has the line (its reply is "written", or an error).
    j.post("writer", "write", std::to_string(n) + " " + std::to_string(steps));
    return std::to_string(steps);
  });
  ringmaster::handlers writer_handlers;
  writer_handlers.on("write", write_line).on_start(open_output).on_stop(close_output);

  ringmaster::supervisor sup({.name = "dedicated_writer"});
  ringmaster::pool& compute = sup.add_pool("compute", compute_handlers, {.workers = 2});
  sup.add_pool("writer", writer_handlers, {.workers = 1});  // a dedicated worker: a pool of one
  sup.start();

  std::vector<std::string> numbers;
  for (std::uint64_t n = 1; n <= count; ++n) numbers.push_back(std::to_string(n));
  std::vector<std::future<ringmaster::result>> futures = compute.map("collatz", numbers);
  int failed = 0;
  for (auto& f : futures) failed += f.get().ok() ? 0 : 1;
  sup.drain();  // waits for the posted writes too, then stops the workers (on_stop closes the file)

  // Nobody waits for a posted job's result, so a failed write would go unnoticed here;
  // the pool's counters still have it.
  std::uint64_t written = 0, write_failures = 0;
  for (const ringmaster::pool_status& p : sup.status().pools) {
    std::printf("pool %-8s %llu ok, %llu failed\n", p.name.c_str(), static_cast<unsigned long long>(p.completed),
                static_cast<unsigned long long>(p.failed));
    if (p.name == "writer") written = p.completed, write_failures = p.failed;
  }

  // Read the file back: one line per number, each "n steps writer=pid", nothing torn.
  std::ifstream in(g_output_path);
  std::set<std::uint64_t> seen;
  std::set<long> writers;
  std::uint64_t lines = 0, bad = 0;
  for (std::string line; std::getline(in, line); ++lines) {
    unsigned long long n = 0, steps = 0;
    long pid = 0;
    char tail = 0;
    if (std::sscanf(line.c_str(), "%llu %llu writer=%ld%c", &n, &steps, &pid, &tail) != 3 || steps != collatz_steps(n) ||
        !seen.insert(n).second) {
      if (++bad <= 5) std::printf("bad line: '%s'\n", line.c_str());
      continue;
    }
    writers.insert(pid);
  }
  const bool right = failed == 0 && written == count && write_failures == 0 && bad == 0 && lines == count &&
                     seen.size() == count && writers.size() == 1;
  std::printf("%llu numbers computed on 2 workers (%d failed); %s has %llu lines, %llu bad, written by %zu process(es)\n",
              static_cast<unsigned long long>(count), failed, g_output_path.c_str(),
              static_cast<unsigned long long>(lines), static_cast<unsigned long long>(bad), writers.size());
  std::filesystem::remove(g_output_path);
  return right ? 0 : 1;
}
