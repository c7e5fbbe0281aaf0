// Runs jobs through a pool of an installed ringmaster: handlers, a supervisor, futures.
#include <cstdio>
#include <ringmaster/supervisor/supervisor.hpp>
#include <string>
#include <vector>

int main() {
  ringmaster::handlers h;
  h.on("square", [](ringmaster::job& j) {
    const long n = std::stol(std::string(j.payload()));
    return std::to_string(n * n);
  });
  ringmaster::supervisor sup({.name = "consumer"});
  auto& pool = sup.add_pool("squares", h, {.workers = 2});
  sup.start();
  std::vector<std::future<ringmaster::result>> results;
  for (int i = 0; i < 100; ++i) results.push_back(pool.submit("square", std::to_string(i)));
  int wrong = 0;
  for (int i = 0; i < 100; ++i) {
    const auto r = results[static_cast<std::size_t>(i)].get();
    wrong += !r.ok() || r.value != std::to_string(i * i);
  }
  sup.drain();
  std::printf("consumer: 100 jobs, %d wrong\n", wrong);
  return wrong == 0 ? 0 : 1;
}
