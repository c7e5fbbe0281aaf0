// A worker executable for tests of exec'd workers: the demo handlers, plus job types
// that misbehave in the ways a real worker can.
//
//   exit        payload N: _exit(N) mid-job
//   terminate   calls std::terminate()
//   overflow    unbounded recursion: dies of a stack overflow (SIGSEGV)
//   stubborn    ignores SIGTERM, then hangs (a timeout must escalate to SIGKILL)
//   pid         result = this worker's pid
//   post        payload "N POOL": posts N echo jobs to POOL (fire and forget), then
//               returns "posted N": a worker flooding the supervisor with jobs
//   print       writes "out: PAYLOAD" on stdout and "err: PAYLOAD" on stderr, returns
//               "printed": a chatty handler, whose words must stay out of the results
//   shout       writes "last words: PAYLOAD" on stderr, then aborts (SIGABRT)
//
// Hostile job types: the worker maps its own segment a second time (from the descriptor
// its launch gave it) and breaks the protocol behind its runtime's back, then waits for
// the supervisor to kill it (it never exits by itself). Each must be the first job its
// worker process runs (its only earlier message being `ready`):
//
//   scribble_head     the result ring's head index out of range
//   misalign_head     the result ring's head index not on a frame boundary
//   scribble_tail     the job ring's tail index (which the worker owns) out of range,
//                     then requests whose refusals the supervisor must write there
//   frame_too_long    a frame whose length is beyond the ring's max_message
//   frame_bad_seq     a frame with the wrong sequence number
//   garbage_message   a well-formed frame holding garbage (an unknown message kind)
//   lying_lengths     a message whose header claims names longer than the message
//   foreign_result    a result for a job the worker does not hold
//   second_ready      `ready` again
//   late_fatal        `fatal` after `ready`
//
// With the environment variable RINGMASTER_TEST_WORKER_FAIL_START set, it prints that
// text on stderr and exits 3 before serving: a worker that can never start.
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <optional>
#include <span>
#include <stdexcept>
#include <ringmaster/ipc/segment.hpp>
#include <ringmaster/worker/demo_handlers.hpp>
#include <ringmaster/worker/detail/launch.hpp>
#include <ringmaster/worker/detail/wire.hpp>
#include <ringmaster/worker/serve.hpp>
#include <string>
#include <vector>

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

namespace ipc = ringmaster::ipc;
namespace wire = ringmaster::wire;

// This worker's own segment, mapped a second time, to misbehave with.
struct own_rings {
  ipc::segment segment;
  wire::link_view view;
  int wake_fd = -1;

  ipc::detail::ring_header& header(std::span<std::byte> ring) const {
    return *reinterpret_cast<ipc::detail::ring_header*>(ring.data());
  }
  std::byte* data(std::span<std::byte> ring) const { return ring.data() + ipc::detail::k_ring_data_offset; }

  // Where the frame after `ready` (the only message before the first job) starts.
  std::uint64_t after_ready() const {
    std::uint32_t ready_length = 0;
    std::memcpy(&ready_length, data(view.result_ring), sizeof ready_length);
    return ipc::detail::frame_size(ready_length);
  }
  void wake() const {
    const std::uint64_t one = 1;
    (void)!::write(wake_fd, &one, sizeof one);
  }
  // Publishes a raw frame after `ready`: the given length and sequence number, `body`
  // as its bytes, and the head moved by `advance` bytes (the frame's size if 0).
  void publish(std::uint32_t length, std::uint32_t seq, const std::vector<std::byte>& body, std::uint64_t advance = 0) const {
    const std::uint64_t at = after_ready();
    std::byte* frame = data(view.result_ring) + at;
    std::memcpy(frame, &length, 4);
    std::memcpy(frame + 4, &seq, 4);
    if (!body.empty()) std::memcpy(frame + ipc::k_frame_header, body.data(), body.size());
    header(view.result_ring).head.store(at + (advance ? advance : ipc::detail::frame_size(body.size())), std::memory_order_release);
    wake();
  }
  // A wire message's bytes: a header of kind `k` with `token` and the given name lengths,
  // then `rest` as it is (lengths are not checked against it: lying is allowed here).
  static std::vector<std::byte> message(wire::kind k, std::uint64_t token = 0, std::string_view rest = {},
                                        std::uint16_t pool_len = 0, std::uint16_t type_len = 0, std::uint16_t id_len = 0) {
    wire::header h{};
    h.type = k;
    h.token = token;
    h.pool_len = pool_len;
    h.type_len = type_len;
    h.id_len = id_len;
    std::vector<std::byte> out(sizeof h + rest.size());
    std::memcpy(out.data(), &h, sizeof h);
    if (!rest.empty()) std::memcpy(out.data() + sizeof h, rest.data(), rest.size());
    return out;
  }
};
std::optional<own_rings> g_rings;

// Maps the segment named by the launch environment (before serve() reads and removes it).
void map_own_rings() {
  const char* env = std::getenv(ringmaster::detail::k_launch_env);
  if (env == nullptr) return;
  std::string error;
  const auto launch = ringmaster::detail::worker_launch::from_env(env, error);
  if (!launch) return;
  std::error_code ec;
  auto seg = ipc::segment::map_fd(::dup(launch->segment_fd), ec);
  if (ec) return;
  const auto layout = wire::link_layout::for_body(launch->max_body);
  const auto view = wire::link_view::in(seg.bytes(), layout);
  g_rings = own_rings{std::move(seg), view, launch->wake_fd};
}

[[noreturn]] void wait_to_be_killed() {
  for (;;) ::pause();
}

// The job types that break the protocol; see the header comment.
void add_hostile(ringmaster::handlers& h) {
  auto hostile = [&h](std::string type, void (*act)(const own_rings&, ringmaster::job&)) {
    h.on(std::move(type), [act](ringmaster::job& j) -> std::string {
      if (!g_rings) throw std::runtime_error("hostile job without a mapped segment (not launched by a supervisor?)");
      act(*g_rings, j);
      wait_to_be_killed();
    });
  };
  hostile("scribble_head", [](const own_rings& r, ringmaster::job&) {
    auto& head = r.header(r.view.result_ring).head;
    head.store(head.load() + 3 * r.view.result_ring.size() + 8, std::memory_order_release);
    r.wake();
  });
  hostile("misalign_head", [](const own_rings& r, ringmaster::job&) {
    r.header(r.view.result_ring).head.store(r.after_ready() + 3, std::memory_order_release);
    r.wake();
  });
  hostile("scribble_tail", [](const own_rings& r, ringmaster::job& j) {
    r.header(r.view.job_ring).tail.store(~std::uint64_t{0} - 4096, std::memory_order_release);
    // The supervisor reads the tail only when it needs room: make it write (refusals of
    // requests it turns down at once, sent back here and never read) until it does.
    for (int i = 0; i < 1'000'000; ++i) (void)j.submit("no-such-pool", "echo", "x");
  });
  hostile("frame_too_long", [](const own_rings& r, ringmaster::job&) { r.publish(0x7fff'fff0u, 1, {}, 16); });
  hostile("frame_bad_seq", [](const own_rings& r, ringmaster::job&) {
    r.publish(sizeof(wire::header), 77, own_rings::message(wire::kind::fatal));
  });
  hostile("garbage_message", [](const own_rings& r, ringmaster::job&) {
    r.publish(sizeof(wire::header), 1, std::vector<std::byte>(sizeof(wire::header), std::byte{0xab}));
  });
  hostile("lying_lengths", [](const own_rings& r, ringmaster::job&) {
    const auto m = own_rings::message(wire::kind::submit, 0, "tiny", 60'000, 900, 5);
    r.publish(static_cast<std::uint32_t>(m.size()), 1, m);
  });
  hostile("foreign_result", [](const own_rings& r, ringmaster::job&) {
    const auto m = own_rings::message(wire::kind::result, 0xdead'beef'0000ull, "not yours");
    r.publish(static_cast<std::uint32_t>(m.size()), 1, m);
  });
  hostile("second_ready", [](const own_rings& r, ringmaster::job&) {
    const auto m = own_rings::message(wire::kind::ready, r.header(r.view.job_ring).generation.load());
    r.publish(static_cast<std::uint32_t>(m.size()), 1, m);
  });
  hostile("late_fatal", [](const own_rings& r, ringmaster::job&) {
    const auto m = own_rings::message(wire::kind::fatal, 0, "too late to say this");
    r.publish(static_cast<std::uint32_t>(m.size()), 1, m);
  });
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
      .on("pid", [](ringmaster::job&) { return std::to_string(::getpid()); })
      .on("print",
          [](ringmaster::job& j) {
            std::printf("out: %.*s\n", static_cast<int>(j.payload().size()), j.payload().data());
            std::fprintf(stderr, "err: %.*s\n", static_cast<int>(j.payload().size()), j.payload().data());
            return std::string("printed");
          })
      .on("shout",
          [](ringmaster::job& j) -> std::string {
            std::fprintf(stderr, "last words: %.*s\n", static_cast<int>(j.payload().size()), j.payload().data());
            std::abort();
          })
      .on("post", [](ringmaster::job& j) {
        const std::string payload(j.payload());
        const auto space = payload.find(' ');
        const unsigned long n = std::stoul(payload.substr(0, space));
        const std::string pool = space == std::string::npos ? "" : payload.substr(space + 1);
        for (unsigned long i = 0; i < n; ++i) j.post(pool, "echo", "flood");
        return "posted " + std::to_string(n);
      });
  map_own_rings();
  add_hostile(h);
  return ringmaster::serve(argc, argv, h);
}
