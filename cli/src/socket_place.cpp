#include "socket_place.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace ringmaster::cli::detail {

std::string socket_lock::take(const std::string& socket) {
  name_ = socket + ".lock";
  for (int attempt = 0; attempt < 100; ++attempt) {
    unique_fd fd(::open(name_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600));
    if (fd.get() < 0) return "--socket: cannot create the lock file " + name_ + ": " + std::strerror(errno);
    if (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
      if (errno == EWOULDBLOCK)
        return "--socket: another ringmaster serve is already listening on " + socket + ", or starting to (it holds " +
               name_ + ")";
      return "--socket: cannot lock " + name_ + ": " + std::strerror(errno);
    }
    // The server that held it may have removed the file between our open and our
    // flock: a lock on a file no longer at that name guards nothing, so try again.
    struct stat held{}, named{};
    if (::fstat(fd.get(), &held) == 0 && ::stat(name_.c_str(), &named) == 0 && held.st_dev == named.st_dev &&
        held.st_ino == named.st_ino) {
      fd_ = std::move(fd);
      return {};
    }
  }
  return "--socket: cannot lock " + name_ + ": it is removed and created again and again";
}

void socket_lock::release() noexcept {
  if (fd_.get() < 0) return;
  ::unlink(name_.c_str());
  fd_.reset();
}

namespace {

// mkdir -p, but each directory it creates is 0700: this user's only, as the last must be
// (std::filesystem::create_directories would make them 0777 & ~umask).
bool make_directories(const std::string& dir) {
  for (std::size_t slash = dir.find('/', 1);; slash = dir.find('/', slash + 1)) {
    if (::mkdir(dir.substr(0, slash).c_str(), 0700) != 0 && errno != EEXIST) return false;
    if (slash == std::string::npos) return true;
  }
}

}  // namespace

std::string check_socket_place(const std::string& path, socket_lock& lock) {
  if (path.empty()) return "--socket: expected a path, got \"\"";
  if (path.size() >= sizeof(sockaddr_un{}.sun_path))
    return "--socket: expected a path of at most " + std::to_string(sizeof(sockaddr_un{}.sun_path) - 1) +
           " bytes (a Unix socket's limit), got " + std::to_string(path.size());
  const auto slash = path.rfind('/');
  const std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
  struct stat st{};
  if (::stat(dir.c_str(), &st) != 0) {
    if (errno != ENOENT || !make_directories(dir) || ::stat(dir.c_str(), &st) != 0)
      return "--socket: cannot create the directory " + dir + ": " + std::strerror(errno);
  }
  if (!S_ISDIR(st.st_mode)) return "--socket: " + dir + " is not a directory";
  if (st.st_uid != ::geteuid() || (st.st_mode & 077) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%03o", static_cast<unsigned>(st.st_mode & 0777));
    return "--socket: expected a directory owned by uid " + std::to_string(::geteuid()) +
           " and closed to others (chmod 700), got " + dir + " owned by uid " + std::to_string(st.st_uid) +
           " with mode " + mode;
  }
  if (std::string problem = lock.take(path); !problem.empty()) return problem;
  if (::lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) return "--socket: " + path + " exists and is not a socket";
    unique_fd probe(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, path.c_str(), path.size());
    if (::connect(probe.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0)
      return "--socket: a server is already listening on " + path;
    ::unlink(path.c_str());  // left by a server that is gone (a live one would hold the lock)
  }
  return {};
}

}  // namespace ringmaster::cli::detail
