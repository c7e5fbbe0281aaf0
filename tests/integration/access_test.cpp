// Who can reach a supervisor's shared memory, tested as another user (nobody, in a forked
// child that drops root): a named segment is owner-only and cannot be opened; a segment
// another user created under a ringmaster name (pre-created, or a valid header forged) is
// refused and not swept; a header of another version is refused with a clear error; a
// worker's memfd segment cannot be reached through /proc; and a running supervisor, with
// forked and exec'd workers, puts nothing in the filesystem at all (no /dev/shm entry, no
// socket with a path), so there is no name to predict or pre-create.
//
// The children report as child_checks.hpp says (not root: the tests are skipped).
#include <gtest/gtest.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <ringmaster/ipc/errc.hpp>
#include <ringmaster/ipc/segment.hpp>
#include <ringmaster/supervisor/supervisor.hpp>
#include <ringmaster/worker/demo_handlers.hpp>
#include <set>
#include <sstream>
#include <string>

#include "child.hpp"
#include "child_checks.hpp"
#include "proc.hpp"
#include "process_watch.hpp"
#include "supervisor_waits.hpp"

namespace {

using namespace std::chrono_literals;
namespace ipc = ringmaster::ipc;

using ringmaster::test::k_nobody;

// Runs `fn` as nobody in a child and turns its exit code into the test's outcome.
void as_nobody(const std::function<int()>& fn) {
  ringmaster::test::expect_child_passes([&] {
    if (const int rc = ringmaster::test::become_nobody(); rc != 0) return rc;
    return fn();
  }, 30s);
}

}  // namespace

TEST(Access, AnotherUserCannotOpenANamedSegment) {
  auto seg = ipc::segment::create_named(4096);
  struct stat st {};
  ASSERT_EQ(::stat(("/dev/shm/" + seg.name()).c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u) << "owner-only";
  const std::string name = seg.name();
  as_nobody([&]() -> int {
    for (int mode : {O_RDWR, O_RDONLY}) {
      errno = 0;
      const int fd = ::shm_open(("/" + name).c_str(), mode, 0);
      CHILD_CHECK(fd < 0 && errno == EACCES, "shm_open(%d) gave fd %d, errno %d", mode, fd, errno);
    }
    std::error_code ec;
    auto s = ipc::segment::open_named(name, ec);
    CHILD_CHECK(!s.valid() && ec == std::error_code(EACCES, std::system_category()), "open_named: %s", ec.message().c_str());
    // Nor remove it: /dev/shm is sticky, and sweeping skips other users' names.
    CHILD_CHECK(::shm_unlink(("/" + name).c_str()) != 0 && (errno == EPERM || errno == EACCES), "shm_unlink errno %d", errno);
    CHILD_CHECK(ipc::segment::sweep_stale() == 0, "swept something");
    return 0;
  });
  EXPECT_EQ(::access(("/dev/shm/" + name).c_str(), F_OK), 0) << "still there";
}

// Another user creates a segment under a ringmaster name, with a header that is valid in
// every other respect (it used the library), and dies without removing it. Opening it
// is refused (its owner is not us), and sweeping leaves it alone (not ours to judge).
TEST(Access, SegmentPreCreatedByAnotherUserIsRefusedAndNotSwept) {
  // The child writes the name to a pipe and exits, leaving the segment behind.
  int p[2];
  ASSERT_EQ(::pipe(p), 0);
  as_nobody([&]() -> int {
    ::close(p[0]);
    auto seg = ipc::segment::create_named(4096);
    const std::string name = seg.name();
    CHILD_CHECK(::write(p[1], name.data(), name.size()) == static_cast<ssize_t>(name.size()), "write");
    ::_exit(0);  // before the handle's destructor unlinks it: as an owner killed by SIGKILL
  });
  ::close(p[1]);
  if (IsSkipped()) {  // as_nobody skipped (not root): there is no segment to check
    ::close(p[0]);
    return;
  }
  char buf[256] = {};
  const auto n = ::read(p[0], buf, sizeof buf - 1);
  ::close(p[0]);
  ASSERT_GT(n, 0);
  const std::string name(buf, static_cast<std::size_t>(n));
  std::error_code ec;
  auto s = ipc::segment::open_named(name, ec);
  EXPECT_FALSE(s.valid());
  EXPECT_EQ(ec, ipc::errc::bad_segment) << ec.message();
  try {
    (void)ipc::segment::open_named(name);
    ADD_FAILURE() << "opened another user's segment";
  } catch (const std::system_error& e) {
    EXPECT_NE(std::string(e.what()).find("/" + name), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("wrong owner"), std::string::npos) << e.what();
  }
  EXPECT_EQ(ipc::segment::sweep_stale(), 0u) << "swept another user's segment";
  EXPECT_EQ(::access(("/dev/shm/" + name).c_str(), F_OK), 0);
  ::shm_unlink(("/" + name).c_str());
}

// A segment of ours whose header says another version (a supervisor and a worker built
// from different releases) is refused with a clear error, not misread.
TEST(Access, SegmentHeaderOfAnotherVersionIsRefused) {
  auto seg = ipc::segment::create_named(4096);
  // The header precedes bytes(): magic (8 bytes), then the version (4).
  auto* version = reinterpret_cast<std::uint32_t*>(seg.bytes().data() - 128 + 8);
  ASSERT_EQ(*version, 1u);
  *version = 2;
  std::error_code ec;
  auto other = ipc::segment::open_named(seg.name(), ec);
  EXPECT_FALSE(other.valid());
  EXPECT_EQ(ec, ipc::errc::bad_segment);
  EXPECT_NE(ec.message().find("header"), std::string::npos) << ec.message();
  *version = 1;
  EXPECT_TRUE(ipc::segment::open_named(seg.name(), ec).valid()) << ec.message();
}

// What the supervisor really uses for workers: memfd segments, reachable only through a
// descriptor. Another user cannot open it through /proc/PID/fd either.
TEST(Access, AnotherUserCannotReachAMemfdSegmentThroughProc) {
  auto seg = ipc::segment::create_fd(4096);
  const std::string path = "/proc/" + std::to_string(::getpid()) + "/fd/" + std::to_string(seg.fd());
  ASSERT_EQ(::access(path.c_str(), F_OK), 0);
  as_nobody([&]() -> int {
    for (int mode : {O_RDWR, O_RDONLY}) {
      errno = 0;
      const int fd = ::open(path.c_str(), mode);
      CHILD_CHECK(fd < 0 && (errno == EACCES || errno == EPERM), "open(%s, %d) gave fd %d, errno %d", path.c_str(),
                  mode, fd, errno);
    }
    return 0;
  });
}

// A running supervisor with forked and exec'd workers: nothing of it in /dev/shm, and
// every socket of it and of its fork server is unnamed (socketpairs), so there is no
// name in the filesystem that another user could predict, pre-create or open.
TEST(Access, ARunningSupervisorPutsNothingInTheFilesystem) {
  const auto& demo = ringmaster::demo_handlers();
  const auto shm_before = ringmaster::test::our_segments();
  ringmaster::supervisor sup({.name = "access"});
  auto& forked = sup.add_pool("forked", demo, {.workers = 2});
  auto& exec = sup.add_pool("exec", {.workers = 2, .command = {RINGMASTER_TEST_WORKER}});
  sup.start();
  auto a = forked.submit("echo", "a");
  auto b = exec.submit("echo", "b");
  EXPECT_EQ(ringmaster::test::await(a).value, "a");
  EXPECT_EQ(ringmaster::test::await(b).value, "b");
  EXPECT_EQ(ringmaster::test::our_segments(), shm_before);

  // Unix sockets with a path, by inode (the last column of /proc/net/unix).
  std::set<std::string> named_sockets;
  {
    std::ifstream in("/proc/net/unix");
    std::string line;
    std::getline(in, line);  // header
    while (std::getline(in, line)) {
      std::istringstream f(line);
      std::string field, inode, path;
      for (int i = 0; i < 6 && f >> field;) ++i;
      f >> inode >> path;
      if (!path.empty()) named_sockets.insert(inode);
    }
  }
  std::set<pid_t> processes = ringmaster::test::descendants_of(::getpid());
  processes.insert(::getpid());
  int sockets = 0;
  for (pid_t pid : processes) {
    const std::string dir = "/proc/" + std::to_string(pid) + "/fd";
    for (const auto& fd : ringmaster::test::list_dir(dir)) {
      char target[256] = {};
      if (::readlink((dir + "/" + fd).c_str(), target, sizeof target - 1) <= 0) continue;
      const std::string t = target;
      if (t.rfind("socket:[", 0) != 0) continue;
      ++sockets;
      EXPECT_EQ(named_sockets.count(t.substr(8, t.size() - 9)), 0u) << "process " << pid << " fd " << fd << ": " << t;
    }
  }
  EXPECT_GT(sockets, 0) << "the fork servers' socketpairs were not seen";
}
