// Sends one message through an installed ringmaster's ring to a forked process and back.
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <ringmaster/ipc/ring.hpp>
#include <ringmaster/ipc/segment.hpp>

int main() {
  namespace ipc = ringmaster::ipc;
  const ipc::ring_options o{.capacity = 4096, .max_message = 256};
  auto seg = ipc::segment::create_anonymous(ipc::ring_footprint(o));
  ipc::format_ring_or_throw(seg.bytes(), o);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  if (pid_t pid = fork(); pid == 0) {
    auto w = ipc::ring_writer::attach(seg.bytes(), o);
    const char text[] = "hello from the installed package";
    _exit(w.send(std::as_bytes(std::span(text)), deadline) ? 1 : 0);
  } else {
    auto r = ipc::ring_reader::attach(seg.bytes(), o);
    std::span<const std::byte> m;
    const bool ok = !r.read(m, deadline) && std::strcmp(reinterpret_cast<const char*>(m.data()), "hello from the installed package") == 0;
    int status = 0;
    waitpid(pid, &status, 0);
    std::puts(ok ? "consumer: ok" : "consumer: FAILED");
    return ok && WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1;
  }
}
