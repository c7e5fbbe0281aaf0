// tests/helpers/process_watch.hpp — telling whether the processes a test saw are gone,
// and reaping the orphans of processes it killed.
//
// A process counts as gone when kill(pid, 0) fails with ESRCH, or when its pid now names
// another process (its start time differs), so a recycled pid is never mistaken for a
// survivor.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <set>
#include <string>

namespace ringmaster::test {

/// A process as it was when seen: its pid and its start time (field 22 of /proc/PID/stat).
struct process_id {
  pid_t pid = 0;
  unsigned long long start = 0;
  bool operator<(const process_id& o) const { return pid < o.pid; }
  bool operator==(const process_id&) const = default;
};

/// The process `pid` now, or nullopt if there is none.
std::optional<process_id> identify(pid_t pid);
/// No process has the pid any more, or another process took it over.
bool gone(const process_id& p);
/// Alive and not a zombie.
bool is_running(pid_t pid);
/// Those of `ps` not gone.
std::set<process_id> survivors(const std::set<process_id>& ps);
/// Pids with the start of their /proc stat line, for assertion messages.
std::string describe(const std::set<process_id>& ps);
/// Every process below `pid` (by /proc children links).
std::set<pid_t> descendants_of(pid_t pid);
/// Resident set size of this process in KiB (VmRSS), 0 if unknown.
long resident_kib();

/// Makes this process the reaper of the orphans of its descendants for its lifetime: a
/// worker whose fork server was killed, or a fork server whose supervisor was killed, is
/// then ours to reap (the container's init here does not reap orphans, which would leave
/// them as zombies that kill(pid, 0) still finds). Children that existed before are left
/// alone: reaping a supervisor's own fork server behind its back would be wrong.
class orphan_reaper {
 public:
  orphan_reaper();
  ~orphan_reaper();
  orphan_reaper(const orphan_reaper&) = delete;
  orphan_reaper& operator=(const orphan_reaper&) = delete;

  /// Children not to reap (e.g. a supervisor's fork servers, which it reaps itself).
  void keep(pid_t pid) { keep_.insert(pid); }
  /// Reaps every adopted child that has ended. Non-blocking.
  void reap();
  /// Waits up to `timeout` for every adopted child to end, reaping them; true if none is
  /// left.
  bool reap_all(std::chrono::milliseconds timeout);

 private:
  std::set<pid_t> before_, keep_;
};

}  // namespace ringmaster::test
