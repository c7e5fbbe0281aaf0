#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/interprocess/anonymous_shared_memory.hpp>
#include <boost/interprocess/mapped_region.hpp>
#include <boost/interprocess/shared_memory_object.hpp>
#include <charconv>
#include <cstring>
#include <new>
#include <ringmaster/ipc/errc.hpp>
#include <ringmaster/ipc/segment.hpp>

namespace bip = boost::interprocess;

namespace ringmaster::ipc {
namespace {

constexpr std::uint64_t k_segment_magic = 0x746e656d'6765'534d;  // "MSegment"
constexpr std::uint32_t k_segment_version = 1;
constexpr std::size_t k_header_size = 128;  // keeps bytes() 64-byte aligned

struct segment_header {
  std::uint64_t magic;
  std::uint32_t version;
  std::uint32_t reserved;
  std::uint64_t usable;     // bytes after the header
  std::int64_t owner_pid;
};
static_assert(sizeof(segment_header) <= k_header_size);

std::system_error os_error(int err, const std::string& what) {
  return std::system_error(err, std::system_category(), what);
}

std::string random_suffix() {
  std::uint64_t r = 0;
  // getrandom() of 8 bytes from an initialised pool never returns short; EINTR cannot
  // happen below 256 bytes.
  if (::getrandom(&r, sizeof r, 0) != static_cast<ssize_t>(sizeof r))
    throw os_error(errno, "cannot draw a random segment name");
  char buf[17];
  auto [end, ec] = std::to_chars(buf, buf + 16, r, 16);
  return std::string(16 - static_cast<std::size_t>(end - buf), '0') + std::string(buf, end);
}

// Parses the owner pid out of "ringmaster-<pid>-<hex>"; -1 if the name is not ours.
long owner_of(const char* name) {
  const std::size_t prefix = std::strlen(k_segment_prefix);
  if (std::strncmp(name, k_segment_prefix, prefix) != 0) return -1;
  const char* begin = name + prefix;
  const char* end = begin + std::strlen(begin);
  long pid = -1;
  auto [p, ec] = std::from_chars(begin, end, pid);
  if (ec != std::errc{} || p == end || *p != '-' || pid <= 0) return -1;
  return pid;
}

}  // namespace

struct segment::impl {
  bip::mapped_region region;  // anonymous and named kinds
  std::string name;           // without the leading slash; empty unless named
  bool owns_name = false;
  int fd = -1;                // fd-backed kind: the memfd and its own mapping
  void* fd_map = nullptr;
  std::size_t fd_size = 0;

  void* address() const noexcept { return fd >= 0 ? fd_map : region.get_address(); }
  std::size_t size() const noexcept { return fd >= 0 ? fd_size : region.get_size(); }
  segment_header& header() const noexcept { return *static_cast<segment_header*>(address()); }

  ~impl() {
    if (owns_name) bip::shared_memory_object::remove(name.c_str());  // noexcept: returns false on error
    if (fd_map) ::munmap(fd_map, fd_size);
    if (fd >= 0) ::close(fd);  // never retried: the descriptor is released even on EINTR
  }
};

// Checks a mapped segment's header against the size of what was mapped.
static bool header_matches(const void* at, std::size_t mapped) noexcept {
  const auto* h = static_cast<const segment_header*>(at);
  return h->magic == k_segment_magic && h->version == k_segment_version && h->usable == mapped - k_header_size;
}

segment::segment() noexcept = default;
segment::segment(segment&&) noexcept = default;
segment& segment::operator=(segment&&) noexcept = default;
segment::~segment() = default;

static void write_header(void* at, std::size_t usable) {
  new (at) segment_header{k_segment_magic, k_segment_version, 0, usable, static_cast<std::int64_t>(::getpid())};
}

segment segment::create_anonymous(std::size_t size) {
  segment s;
  s.impl_ = std::make_unique<impl>();
  try {
    s.impl_->region = bip::anonymous_shared_memory(k_header_size + size);
  } catch (const bip::interprocess_exception& e) {
    throw os_error(e.get_native_error() ? e.get_native_error() : ENOMEM,
                   "cannot create anonymous shared memory of " + std::to_string(size) + " bytes");
  }
  write_header(s.impl_->region.get_address(), size);
  return s;
}

segment segment::create_named(std::size_t size) {
  segment s;
  s.impl_ = std::make_unique<impl>();
  auto& im = *s.impl_;
  im.name = std::string(k_segment_prefix) + std::to_string(::getpid()) + "-" + random_suffix();
  const std::size_t total = k_header_size + size;
  try {
    bip::permissions owner_only(0600);
    bip::shared_memory_object shm(bip::create_only, im.name.c_str(), bip::read_write, owner_only);
    im.owns_name = true;  // from here on, the impl's destructor unlinks it on any failure
    // posix_fallocate rather than ftruncate: it reserves the pages in tmpfs now, so a
    // full /dev/shm is an error here and not a SIGBUS in whichever process touches the
    // page first.
    const int fd = shm.get_mapping_handle().handle;
    if (int err = ::posix_fallocate(fd, 0, static_cast<off_t>(total)); err != 0)
      throw os_error(err, "cannot size shared-memory segment /" + im.name + " to " + std::to_string(total) +
                              " bytes (is /dev/shm full or too small?)");
    im.region = bip::mapped_region(shm, bip::read_write, 0, total);
  } catch (const bip::interprocess_exception& e) {
    throw os_error(e.get_native_error() ? e.get_native_error() : EIO,
                   "cannot create shared-memory segment /" + im.name + ": " + e.what());
  }
  write_header(im.region.get_address(), size);
  return s;
}

segment segment::open_named(const std::string& name, std::error_code& ec) noexcept {
  segment s;
  try {
    auto im = std::make_unique<impl>();
    im->name = name;
    bip::shared_memory_object shm(bip::open_only, name.c_str(), bip::read_write);
    struct stat st {};
    if (::fstat(shm.get_mapping_handle().handle, &st) != 0) {
      ec = {errno, std::system_category()};
      return s;
    }
    // Ours and private, or refused: another user could otherwise hand us a segment whose
    // contents it controls.
    if (st.st_uid != ::geteuid() || (st.st_mode & 077) != 0 || static_cast<std::size_t>(st.st_size) < k_header_size) {
      ec = errc::bad_segment;
      return s;
    }
    im->region = bip::mapped_region(shm, bip::read_write, 0, static_cast<std::size_t>(st.st_size));
    if (!header_matches(im->address(), static_cast<std::size_t>(st.st_size))) {
      ec = errc::bad_segment;
      return s;
    }
    s.impl_ = std::move(im);
    ec.clear();
  } catch (const bip::interprocess_exception& e) {
    ec = {e.get_native_error() ? e.get_native_error() : ENOENT, std::system_category()};
  } catch (const std::bad_alloc&) {
    ec = std::make_error_code(std::errc::not_enough_memory);
  }
  return s;
}

segment segment::open_named(const std::string& name) {
  std::error_code ec;
  segment s = open_named(name, ec);
  if (ec) throw std::system_error(ec, "cannot open shared-memory segment /" + name);
  return s;
}

std::size_t segment::sweep_stale() noexcept {
  std::size_t removed = 0;
  DIR* dir = ::opendir("/dev/shm");
  if (!dir) return 0;
  while (const dirent* e = ::readdir(dir)) {
    const long pid = owner_of(e->d_name);
    if (pid <= 0) continue;
    struct stat st {};
    if (::fstatat(::dirfd(dir), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 || st.st_uid != ::geteuid()) continue;
    if (::kill(static_cast<pid_t>(pid), 0) == 0 || errno != ESRCH) continue;  // owner alive (or not ours to judge)
    if (bip::shared_memory_object::remove(e->d_name)) ++removed;
  }
  ::closedir(dir);
  return removed;
}

segment segment::create_fd(std::size_t size) {
  segment s;
  s.impl_ = std::make_unique<impl>();
  auto& im = *s.impl_;
  im.fd = ::memfd_create("ringmaster", MFD_CLOEXEC);
  if (im.fd < 0) throw os_error(errno, "cannot create memfd segment");
  im.fd_size = k_header_size + size;
  // As for named segments: reserve the pages now so that a memory shortage is an error
  // here, not a SIGBUS later.
  if (int err = ::posix_fallocate(im.fd, 0, static_cast<off_t>(im.fd_size)); err != 0)
    throw os_error(err, "cannot size memfd segment to " + std::to_string(im.fd_size) + " bytes");
  void* at = ::mmap(nullptr, im.fd_size, PROT_READ | PROT_WRITE, MAP_SHARED, im.fd, 0);
  if (at == MAP_FAILED) throw os_error(errno, "cannot map memfd segment");
  im.fd_map = at;
  write_header(at, size);
  return s;
}

segment segment::map_fd(int fd, std::error_code& ec) noexcept {
  segment s;
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    ec = {errno, std::system_category()};
    return s;
  }
  if (!S_ISREG(st.st_mode) || st.st_uid != ::geteuid() || static_cast<std::size_t>(st.st_size) < k_header_size) {
    ec = errc::bad_segment;
    return s;
  }
  const auto size = static_cast<std::size_t>(st.st_size);
  void* at = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (at == MAP_FAILED) {
    ec = {errno, std::system_category()};
    return s;
  }
  if (!header_matches(at, size)) {
    ::munmap(at, size);
    ec = errc::bad_segment;
    return s;
  }
  try {
    s.impl_ = std::make_unique<impl>();
  } catch (const std::bad_alloc&) {
    ::munmap(at, size);
    ec = std::make_error_code(std::errc::not_enough_memory);
    return s;
  }
  s.impl_->fd = fd;
  s.impl_->fd_map = at;
  s.impl_->fd_size = size;
  ec.clear();
  return s;
}

int segment::fd() const noexcept { return impl_ ? impl_->fd : -1; }

bool segment::exclude_from_forks() noexcept {
  if (!impl_) return true;
  return ::madvise(impl_->address(), impl_->size(), MADV_DONTFORK) == 0;
}

void segment::end_in_fork_child() noexcept {
  if (!impl_) return;
  // Not mapped here: nothing to unmap. (A Boost region cannot be told to forget its
  // mapping; unmapping a range that holds nothing is harmless, so it ends as usual.)
  if (impl_->fd >= 0) impl_->fd_map = nullptr;
  impl_.reset();
}

std::span<std::byte> segment::bytes() const noexcept {
  if (!impl_) return {};
  auto* base = static_cast<std::byte*>(impl_->address());
  return {base + k_header_size, impl_->size() - k_header_size};
}

const std::string& segment::name() const noexcept {
  static const std::string none;
  return impl_ ? impl_->name : none;
}

std::int64_t segment::owner_pid() const noexcept { return impl_ ? impl_->header().owner_pid : 0; }

}  // namespace ringmaster::ipc
