// A worker executable built against the installed package: serves "cube".
#include <ringmaster/worker/serve.hpp>
#include <string>

int main(int argc, char** argv) {
  ringmaster::handlers h;
  h.on("cube", [](ringmaster::job& j) {
    const long n = std::stol(std::string(j.payload()));
    return std::to_string(n * n * n);
  });
  return ringmaster::serve(argc, argv, h);
}
