// ringmaster/cli/resume.hpp — --resume: learning from an earlier run's results file which
// jobs are already done.
//
// A job counts as done when the file holds a line with its id and "status": "ok"; every
// other job (failed, stopped, never reached) runs again and its new line is appended. A
// last line cut short by a killed run (no newline) is cut off the file first, so the
// lines appended after it stay whole. With --resume-failed only the jobs whose last
// line failed run again (those never reached do not).
//
// A file resumed several times holds several lines for an id that failed: the last line
// of an id is its final one. write_final_results() (`ringmaster results --final`) writes
// only those.
#pragma once

#include <cstdint>
#include <string>

#include <ringmaster/cli/id_set.hpp>

namespace ringmaster::cli {

struct resume_state {
  id_set done;                 ///< ids with an ok line
  id_set failed;               ///< ids with a failed line (final unless also in `done`)
  std::uint64_t lines = 0;     ///< result lines read
  std::uint64_t unreadable = 0;  ///< lines that are not result lines (ignored)
  bool truncated_tail = false;   ///< a partial last line was cut off
};

/// Reads the results file at `path`. A missing file is an empty state. Throws
/// std::system_error if the file exists but cannot be read or repaired.
[[nodiscard]] resume_state load_resume(const std::string& path);

/// `ringmaster results --final FILE`: writes to stdout, for each id of the results file
/// at `path`, its last line (the final one), in the order of those lines in the file.
/// Lines that are not result lines, and a partial last line, are left out and counted
/// on stderr. Returns the exit status: 0, or 2 if the file cannot be read. Memory: one
/// entry per distinct id.
[[nodiscard]] int write_final_results(const std::string& path);

}  // namespace ringmaster::cli
