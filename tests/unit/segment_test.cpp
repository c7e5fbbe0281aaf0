// Segments: anonymous memory shared across fork, named memory with owner-only access,
// refusal of foreign or malformed segments, and the sweep of those left by dead owners.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <ringmaster/ipc/errc.hpp>
#include <ringmaster/ipc/segment.hpp>

#include "child.hpp"
#include "waits.hpp"

namespace ipc = ringmaster::ipc;
namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

bool in_dev_shm(const std::string& name) { return fs::exists(fs::path("/dev/shm") / name); }

TEST(Segment, AnonymousIsZeroedAlignedAndSharedAcrossFork) {
  auto seg = ipc::segment::create_anonymous(1 << 20);
  auto b = seg.bytes();
  ASSERT_GE(b.size(), std::size_t{1} << 20);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(b.data()) % 64, 0u);
  EXPECT_TRUE(seg.name().empty());
  EXPECT_EQ(seg.owner_pid(), ::getpid());
  for (std::size_t i = 0; i < b.size(); i += 4096) ASSERT_EQ(b[i], std::byte{0});
  auto child = ringmaster::test::fork_child([&] {
    std::memcpy(b.data() + 100, "from the child", 15);
    return 0;
  });
  ASSERT_EQ(child.wait_for(30s)->code(), 0);
  EXPECT_STREQ(reinterpret_cast<const char*>(b.data() + 100), "from the child");
}

TEST(Segment, FdBackedIsSharedThroughItsDescriptor) {
  auto seg = ipc::segment::create_fd(1 << 16);
  ASSERT_GE(seg.fd(), 0);
  EXPECT_TRUE(seg.name().empty());
  EXPECT_EQ(::fcntl(seg.fd(), F_GETFD) & FD_CLOEXEC, FD_CLOEXEC) << "not inherited by accident";
  const int fd = seg.fd();
  auto child = ringmaster::test::fork_child([fd] {
    std::error_code ec;
    // As a worker does with the descriptor it received: map it itself.
    auto mine = ipc::segment::map_fd(::dup(fd), ec);
    if (ec || mine.bytes().size() < (1 << 16)) return 1;
    std::memcpy(mine.bytes().data(), "via fd", 7);
    return 0;
  });
  ASSERT_EQ(child.wait_for(30s)->code(), 0);
  EXPECT_STREQ(reinterpret_cast<const char*>(seg.bytes().data()), "via fd");
}

// What a fork server does with the workers' segments it maps: a child forked after
// exclude_from_forks() has no such mapping (msync of its pages is ENOMEM, unmapped), and
// ends the object without unmapping; the parent's mapping is untouched. One forked
// before still shares the bytes.
TEST(Segment, ExcludedFromForksIsAbsentInLaterChildrenAndEndsThereWithoutUnmapping) {
  auto seg = ipc::segment::create_fd(1 << 16);
  auto* page = reinterpret_cast<void*>(reinterpret_cast<std::uintptr_t>(seg.bytes().data()) &
                                       ~static_cast<std::uintptr_t>(::sysconf(_SC_PAGESIZE) - 1));
  ASSERT_EQ(::msync(page, 4096, MS_ASYNC), 0) << "mapped here";
  ASSERT_TRUE(seg.exclude_from_forks()) << std::strerror(errno);
  auto child = ringmaster::test::fork_child([&] {
    if (::msync(page, 4096, MS_ASYNC) == 0 || errno != ENOMEM) return 1;  // it was inherited
    const int fd = seg.fd();
    seg.end_in_fork_child();
    if (seg.valid()) return 2;
    if (::fcntl(fd, F_GETFD) != -1 || errno != EBADF) return 3;  // its descriptor is closed
    return 0;
  });
  ASSERT_EQ(child.wait_for(30s)->code(), 0);
  std::memcpy(seg.bytes().data(), "still mapped", 13);
  EXPECT_STREQ(reinterpret_cast<const char*>(seg.bytes().data()), "still mapped");
}

TEST(Segment, DescriptorWithoutSegmentHeaderIsRefused) {
  const int fd = ::memfd_create("not-a-segment", MFD_CLOEXEC);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::ftruncate(fd, 4096), 0);
  std::error_code ec;
  auto s = ipc::segment::map_fd(fd, ec);
  EXPECT_EQ(ec, ipc::errc::bad_segment);
  EXPECT_FALSE(s.valid());
  ::close(fd);  // not taken on failure
}

TEST(Segment, NamedIsOwnerOnlyAndUnlinkedByItsOwner) {
  std::string name;
  {
    auto seg = ipc::segment::create_named(4096);
    name = seg.name();
    EXPECT_EQ(name.rfind("ringmaster-" + std::to_string(::getpid()) + "-", 0), 0u) << name;
    ASSERT_TRUE(in_dev_shm(name));
    struct stat st {};
    ASSERT_EQ(::stat(("/dev/shm/" + name).c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u);
    EXPECT_EQ(st.st_uid, ::geteuid());
  }
  EXPECT_FALSE(in_dev_shm(name)) << "the owner's destructor unlinks the name";
}

TEST(Segment, NamesAreUnpredictable) {
  auto a = ipc::segment::create_named(64);
  auto b = ipc::segment::create_named(64);
  EXPECT_NE(a.name(), b.name());
}

TEST(Segment, OpenedByNameSharesTheBytesAndDoesNotUnlink) {
  auto owner = ipc::segment::create_named(8192);
  std::memcpy(owner.bytes().data(), "hello", 6);
  {
    auto other = ipc::segment::open_named(owner.name());
    EXPECT_EQ(other.bytes().size(), owner.bytes().size());
    EXPECT_STREQ(reinterpret_cast<const char*>(other.bytes().data()), "hello");
    EXPECT_EQ(other.owner_pid(), ::getpid());
  }
  EXPECT_TRUE(in_dev_shm(owner.name()));
}

TEST(Segment, OpeningAMissingNameFailsWithENOENT) {
  std::error_code ec;
  auto s = ipc::segment::open_named("ringmaster-1-doesnotexist", ec);
  EXPECT_FALSE(s.valid());
  EXPECT_EQ(ec, std::errc::no_such_file_or_directory) << ec.message();
  EXPECT_THROW((void)ipc::segment::open_named("ringmaster-1-doesnotexist"), std::system_error);
}

// Creates a raw POSIX shm object with the given mode and contents, as an attacker might.
struct raw_shm {
  std::string name;
  raw_shm(std::string n, mode_t mode, const std::string& contents) : name(std::move(n)) {
    const int fd = ::shm_open(("/" + name).c_str(), O_CREAT | O_EXCL | O_RDWR, mode);
    if (fd < 0) throw std::system_error(errno, std::system_category(), "shm_open");
    ::fchmod(fd, mode);
    if (::ftruncate(fd, 4096) != 0 || ::write(fd, contents.data(), contents.size()) < 0) {
      ::close(fd);
      throw std::system_error(errno, std::system_category(), "ftruncate");
    }
    ::close(fd);
  }
  ~raw_shm() { ::shm_unlink(("/" + name).c_str()); }
};

TEST(Segment, SegmentWithoutValidHeaderIsRefused) {
  raw_shm forged("ringmaster-" + std::to_string(::getpid()) + "-forged", 0600, "not a ringmaster segment");
  std::error_code ec;
  auto s = ipc::segment::open_named(forged.name, ec);
  EXPECT_EQ(ec, ipc::errc::bad_segment);
  EXPECT_FALSE(s.valid());
}

TEST(Segment, SegmentReadableByOthersIsRefused) {
  auto owner = ipc::segment::create_named(4096);
  ASSERT_EQ(::chmod(("/dev/shm/" + owner.name()).c_str(), 0644), 0);
  std::error_code ec;
  (void)ipc::segment::open_named(owner.name(), ec);
  EXPECT_EQ(ec, ipc::errc::bad_segment);
}

TEST(Segment, SweepRemovesOnlySegmentsOfDeadOwners) {
  auto mine = ipc::segment::create_named(4096);
  // A child creates a segment and is killed before it can unlink it.
  auto seg = ipc::segment::create_anonymous(256);
  auto* name_out = reinterpret_cast<char*>(seg.bytes().data());
  auto child = ringmaster::test::fork_child([&] {
    auto orphan = ipc::segment::create_named(4096);
    std::strncpy(name_out, orphan.name().c_str(), 255);
    ::pause();  // killed here: the destructor never runs
    return 0;
  });
  ASSERT_TRUE(ringmaster::test::eventually([&] { return name_out[0] != '\0'; })) << "the child never created its segment";
  const std::string orphan = name_out;
  child.kill_and_reap();
  ASSERT_TRUE(in_dev_shm(orphan));
  EXPECT_GE(ipc::segment::sweep_stale(), 1u);
  EXPECT_FALSE(in_dev_shm(orphan));
  EXPECT_TRUE(in_dev_shm(mine.name())) << "a live owner's segment is kept";
}

}  // namespace
