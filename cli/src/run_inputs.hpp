// Internal to `ringmaster run`: step 1's checks on what a run reads and writes before
// anything starts (the jobs file, the results file, --resume's state, shared memory).
#pragma once

#include <cstdint>
#include <ringmaster/cli/config.hpp>
#include <ringmaster/cli/resume.hpp>
#include <ringmaster/cli/run.hpp>
#include <string>

#include "process_setup.hpp"

namespace ringmaster::cli::detail {

/// The run's input and output descriptors, opened and checked.
struct opened_inputs {
  unique_fd jobs_file;   ///< owned when --jobs names a file
  int jobs_fd = -1;      ///< the descriptor to read (0 for stdin)
  std::string jobs_name;
  std::uint64_t jobs_size = 0;
  unique_fd results_file;
  int results_fd = -1;
  std::string results_name;
};

/// Opens --jobs and --results (locked for the whole run; emptied, or with --resume read
/// into `*resume` and appended to). "" or the problem, naming the flag.
[[nodiscard]] std::string open_files(const run_options& o, resume_state* resume, opened_inputs& io);

/// The pools would map more shared memory than the machine has (each worker's rings are
/// reserved whole when it starts, and charged to no process): a config error naming each
/// pool's line and keys, or "" when it fits.
[[nodiscard]] std::string shared_memory_problem(const run_config& config);

}  // namespace ringmaster::cli::detail
