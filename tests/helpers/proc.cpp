#include "proc.hpp"

#include <dirent.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>

namespace ringmaster::test {

std::set<std::string> list_dir(const std::string& path, const std::string& prefix) {
  std::set<std::string> out;
  if (DIR* d = ::opendir(path.c_str())) {
    const int own = ::dirfd(d);
    while (const dirent* e = ::readdir(d)) {
      const std::string name = e->d_name;
      if (name == "." || name == ".." || name.rfind(prefix, 0) != 0) continue;
      if (path == "/proc/self/fd" && name == std::to_string(own)) continue;
      out.insert(name);
    }
    ::closedir(d);
  }
  return out;
}

std::set<pid_t> children_of(pid_t pid) {
  const std::string base = pid == 0 ? "/proc/self" : "/proc/" + std::to_string(pid);
  std::set<pid_t> out;
  for (const auto& task : list_dir(base + "/task")) {
    std::ifstream in(base + "/task/" + task + "/children");
    for (pid_t p; in >> p;) out.insert(p);
  }
  return out;
}

bool owned_elsewhere(const std::string& name) {
  long owner = 0;
  for (std::size_t at = name.find('-'); at != std::string::npos && owner == 0; at = name.find('-', at + 1)) {
    const auto end = name.find('-', at + 1);
    const std::string part = name.substr(at + 1, end == std::string::npos ? std::string::npos : end - at - 1);
    if (!part.empty() && part.size() < 10 && part.find_first_not_of("0123456789") == std::string::npos)
      owner = std::stol(part);
  }
  if (owner <= 0) return false;
  for (pid_t p = static_cast<pid_t>(owner); p > 1;) {
    if (p == ::getpid()) return false;
    std::ifstream stat("/proc/" + std::to_string(p) + "/stat");
    std::string line;
    if (!std::getline(stat, line)) return p != static_cast<pid_t>(owner);  // dead owner: ours to answer for
    const auto close = line.rfind(')');
    if (close == std::string::npos) return false;
    char state = 0;
    long parent = 0;
    if (std::sscanf(line.c_str() + close + 1, " %c %ld", &state, &parent) != 2) return false;
    p = static_cast<pid_t>(parent);
  }
  return true;
}

bool in_syscall(pid_t pid, long nr) {
  const std::string base = "/proc/" + std::to_string(pid) + "/task/";
  for (const auto& task : list_dir(base)) {
    std::ifstream in(base + task + "/syscall");
    if (long n = -1; in >> n && n == nr) return true;
  }
  return false;
}

int tasks_of(uid_t uid) {
  int n = 0;
  for (const auto& pid : list_dir("/proc")) {
    if (pid.find_first_not_of("0123456789") != std::string::npos) continue;
    for (const auto& tid : list_dir("/proc/" + pid + "/task")) {
      std::ifstream in("/proc/" + pid + "/task/" + tid + "/status");
      for (std::string line; std::getline(in, line);)
        if (line.rfind("Uid:", 0) == 0) {
          if (std::stoul(line.substr(4)) == uid) ++n;
          break;
        }
    }
  }
  return n;
}

std::set<std::string> our_segments() {
  std::set<std::string> out;
  for (const auto& s : list_dir("/dev/shm", "ringmaster"))
    if (s.rfind("ringmaster-bench-", 0) != 0 && !owned_elsewhere(s)) out.insert(s);
  return out;
}

}  // namespace ringmaster::test
