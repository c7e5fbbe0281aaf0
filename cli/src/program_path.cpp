#include "program_path.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace ringmaster::cli::detail {

namespace fs = std::filesystem;

std::optional<fs::path> resolve_program(const std::string& program, const fs::path& base_dir, std::string_view path_env,
                                        std::string& why) {
  auto executable = [&why](const fs::path& p) {
    struct stat st{};
    if (::stat(p.c_str(), &st) != 0) {
      why = p.string() + ": " + std::strerror(errno);
      return false;
    }
    if (!S_ISREG(st.st_mode)) {
      why = p.string() + ": not a regular file";
      return false;
    }
    if (::access(p.c_str(), X_OK) != 0) {
      why = p.string() + ": " + std::strerror(errno);
      return false;
    }
    return true;
  };
  if (program.find('/') != std::string::npos) {
    fs::path p = program;
    if (p.is_relative()) p = base_dir / p;
    p = fs::absolute(p).lexically_normal();
    if (!executable(p)) return std::nullopt;
    return p;
  }
  std::string last_why;
  std::size_t start = 0;
  while (start <= path_env.size()) {
    std::size_t end = path_env.find(':', start);
    if (end == std::string_view::npos) end = path_env.size();
    const std::string_view dir = path_env.substr(start, end - start);
    fs::path p = fs::absolute(dir.empty() ? fs::path(".") : fs::path(dir)) / program;
    p = p.lexically_normal();
    struct stat st{};
    if (::stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(p.c_str(), X_OK) == 0) return p;
    start = end + 1;
  }
  why = "not found in PATH";
  return std::nullopt;
}

}  // namespace ringmaster::cli::detail
