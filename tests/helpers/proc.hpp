// tests/helpers/proc.hpp — what /proc says about processes, for the leak checks.
#pragma once

#include <sys/types.h>

#include <set>
#include <string>

namespace ringmaster::test {

/// Names in directory `path` starting with `prefix` ("." and ".." left out). Listing
/// /proc/self/fd leaves out the descriptor the listing itself uses.
std::set<std::string> list_dir(const std::string& path, const std::string& prefix = "");

/// Direct children of `pid` (0: this process), zombies included.
std::set<pid_t> children_of(pid_t pid = 0);

/// Whether /dev/shm entry `name` belongs to another test run on this machine: its name
/// carries its owner's pid as the first all-digit part between dashes
/// ("ringmaster-<pid>-<hex>", "ringmaster-test-mq-<pid>-<n>"), and that owner is alive and
/// is neither this process nor one of its descendants. Tests of several build trees may
/// run at once; their live segments are not this test's leak.
bool owned_elsewhere(const std::string& name);

/// The ringmaster entries of /dev/shm that this process answers for: all but those
/// owned_elsewhere and the benchmarks' ("ringmaster-bench-").
std::set<std::string> our_segments();

/// Whether a thread of `pid` is blocked in system call `nr` (SYS_pause, SYS_futex...), as
/// /proc/<pid>/task/<tid>/syscall says: how a test sees that a process reached a wait
/// (a worker took a job that sleeps) instead of sleeping for a while itself.
bool in_syscall(pid_t pid, long nr);

/// Tasks (threads included, as RLIMIT_NPROC counts them) whose real uid is `uid`.
int tasks_of(uid_t uid);

}  // namespace ringmaster::test
