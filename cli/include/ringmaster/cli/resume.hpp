// ringmaster/cli/resume.hpp — --resume: learning from an earlier run's results file which
// jobs are already done.
//
// A job counts as done when the file holds a line with its id and "status": "ok"; every
// other job (failed, stopped, never reached) runs again and its new line is appended. A
// last line cut short by a killed run (no newline) is cut off the file first, so the
// lines appended after it stay whole.
#pragma once

#include <cstdint>
#include <string>

#include <ringmaster/cli/id_set.hpp>

namespace ringmaster::cli {

struct resume_state {
  id_set done;                 ///< ids with an ok line
  std::uint64_t lines = 0;     ///< result lines read
  std::uint64_t unreadable = 0;  ///< lines that are not result lines (ignored)
  bool truncated_tail = false;   ///< a partial last line was cut off
};

/// Reads the results file at `path`. A missing file is an empty state. Throws
/// std::system_error if the file exists but cannot be read or repaired.
[[nodiscard]] resume_state load_resume(const std::string& path);

}  // namespace ringmaster::cli
