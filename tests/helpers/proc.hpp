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

/// Tasks (threads included, as RLIMIT_NPROC counts them) whose real uid is `uid`.
int tasks_of(uid_t uid);

}  // namespace ringmaster::test
