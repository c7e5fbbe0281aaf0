#include "process_watch.hpp"

#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>

#include <cerrno>
#include <fstream>
#include <sstream>
#include <thread>
#include <vector>

#include "proc.hpp"

namespace ringmaster::test {
namespace {

std::optional<unsigned long long> start_time(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat;
  if (!std::getline(in, stat)) return std::nullopt;
  const auto close = stat.rfind(')');
  if (close == std::string::npos) return std::nullopt;
  std::istringstream rest(stat.substr(close + 2));
  std::string field;
  for (int i = 3; i <= 22 && rest >> field; ++i)
    if (i == 22) return std::stoull(field);
  return std::nullopt;
}

}  // namespace

std::optional<process_id> identify(pid_t pid) {
  if (pid <= 0) return std::nullopt;
  if (auto s = start_time(pid)) return process_id{pid, *s};
  return std::nullopt;
}

bool gone(const process_id& p) {
  if (::kill(p.pid, 0) != 0 && errno == ESRCH) return true;
  const auto s = start_time(p.pid);
  return s && *s != p.start;
}

bool is_running(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat;
  if (!std::getline(in, stat)) return false;
  const auto close = stat.rfind(')');
  return close != std::string::npos && close + 2 < stat.size() && stat[close + 2] != 'Z' && stat[close + 2] != 'X';
}

std::string describe(const std::set<process_id>& ps) {
  std::string out;
  for (auto& p : ps) {
    out += (out.empty() ? "" : " ") + std::to_string(p.pid);
    std::ifstream in("/proc/" + std::to_string(p.pid) + "/stat");
    std::string stat;
    if (std::getline(in, stat)) out += " [" + stat.substr(0, 40) + "...]";
  }
  return out;
}

std::set<process_id> survivors(const std::set<process_id>& ps) {
  std::set<process_id> out;
  for (auto& p : ps)
    if (!gone(p)) out.insert(p);
  return out;
}

std::set<pid_t> descendants_of(pid_t pid) {
  std::set<pid_t> out;
  std::vector<pid_t> todo{pid};
  while (!todo.empty()) {
    const pid_t p = todo.back();
    todo.pop_back();
    for (pid_t c : children_of(p))
      if (out.insert(c).second) todo.push_back(c);
  }
  return out;
}

long resident_kib() {
  std::ifstream in("/proc/self/status");
  for (std::string line; std::getline(in, line);)
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  return 0;
}

orphan_reaper::orphan_reaper() : before_(children_of()) { ::prctl(PR_SET_CHILD_SUBREAPER, 1); }
orphan_reaper::~orphan_reaper() { ::prctl(PR_SET_CHILD_SUBREAPER, 0); }

void orphan_reaper::reap() {
  for (pid_t p : children_of())
    if (!before_.count(p) && !keep_.count(p)) ::waitpid(p, nullptr, WNOHANG);
}

bool orphan_reaper::reap_all(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    reap();
    bool left = false;
    for (pid_t p : children_of())
      if (!before_.count(p) && !keep_.count(p)) left = true;
    if (!left) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

}  // namespace ringmaster::test
