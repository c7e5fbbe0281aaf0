// pool::submit(job_spec) moves the payload into the job's record: proved by counting the
// allocations the submitting thread makes, with operator new replaced in this program
// (hence a program of its own). A copy of a payload of N bytes needs an allocation of at
// least N bytes; a move needs none.
#include <gtest/gtest.h>

#include <atomic>
#include <cstddef>
#include <cstdlib>
#include <future>
#include <new>
#include <ringmaster/supervisor/supervisor.hpp>
#include <ringmaster/worker/demo_handlers.hpp>
#include <string>

#include "supervisor_waits.hpp"

namespace {

constexpr std::size_t k_payload = 256 * 1024;

// Only the allocations of the thread that counts, and only those a payload copy would
// make: the dispatcher thread allocates the echoed result's value, which is not a copy
// made by submit.
thread_local bool counting = false;
std::atomic<int> payload_sized_allocations{0};

void* allocate(std::size_t n) {
  if (counting && n >= k_payload) payload_sized_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}

// Counts the payload-sized allocations `submit` makes on this thread.
template <class F>
int payload_allocations_in(F&& submit) {
  payload_sized_allocations.store(0);
  counting = true;
  submit();
  counting = false;
  return payload_sized_allocations.load();
}

}  // namespace

void* operator new(std::size_t n) { return allocate(n); }
void* operator new[](std::size_t n) { return allocate(n); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }

TEST(SupervisorPayloadMove, JobSpecPayloadIsMovedIntoTheRecordAndAViewIsCopied) {
  const auto& demo = ringmaster::demo_handlers();
  ringmaster::supervisor sup({.name = "move"});
  auto& pool = sup.add_pool("compute", demo, {.workers = 1});
  sup.start();

  std::string moved(k_payload, 'm');
  std::future<ringmaster::result> by_spec;
  EXPECT_EQ(payload_allocations_in([&] { by_spec = pool.submit({.type = "echo", .payload = std::move(moved)}); }), 0);

  const std::string viewed(k_payload, 'v');
  std::future<ringmaster::result> by_view;
  EXPECT_EQ(payload_allocations_in([&] { by_view = pool.submit("echo", viewed); }), 1)
      << "the counter sees the one copy the string_view form makes";

  const auto a = ringmaster::test::await(by_spec);
  ASSERT_TRUE(a.ok()) << a.value;
  EXPECT_EQ(a.value, std::string(k_payload, 'm'));
  const auto b = ringmaster::test::await(by_view);
  ASSERT_TRUE(b.ok()) << b.value;
  EXPECT_EQ(b.value, viewed);
}
