// Runs jobs through two pools of an installed ringmaster: one of forked workers running
// this program's handlers, one whose workers run the worker executable named by argv[1].
//
//   my_program PATH/TO/my_worker
#include <cstdio>
#include <future>
#include <ringmaster/supervisor/supervisor.hpp>
#include <string>
#include <vector>

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: my_program PATH/TO/my_worker\n");
    return 2;
  }
  ringmaster::handlers h;
  h.on("square", [](ringmaster::job& j) {
    const long n = std::stol(std::string(j.payload()));
    return std::to_string(n * n);
  });
  ringmaster::supervisor sup({.name = "consumer"});
  auto& squares = sup.add_pool("squares", h, {.workers = 2});
  auto& cubes = sup.add_pool("cubes", {.workers = 1, .command = {argv[1]}});
  sup.start();
  std::vector<std::future<ringmaster::result>> square_results, cube_results;
  for (int i = 0; i < 100; ++i) {
    square_results.push_back(squares.submit("square", std::to_string(i)));
    cube_results.push_back(cubes.submit("cube", std::to_string(i)));
  }
  int wrong = 0;
  for (int i = 0; i < 100; ++i) {
    const auto s = square_results[static_cast<std::size_t>(i)].get();
    const auto c = cube_results[static_cast<std::size_t>(i)].get();
    wrong += !s.ok() || s.value != std::to_string(i * i);
    wrong += !c.ok() || c.value != std::to_string(i * i * i);
  }
  sup.drain();
  std::printf("consumer: 200 jobs, %d wrong\n", wrong);
  return wrong == 0 ? 0 : 1;
}
