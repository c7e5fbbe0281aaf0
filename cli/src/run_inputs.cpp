#include "run_inputs.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ringmaster/cli/units.hpp>
#include <system_error>
#include <thread>

namespace ringmaster::cli::detail {
namespace {

// Sizes in messages about shared memory, in MiB rounded up: per worker they are not round.
std::string mib(std::size_t bytes) { return std::to_string((bytes + (std::size_t{1} << 20) - 1) >> 20) + " MiB"; }

}  // namespace

std::string open_files(const run_options& o, resume_state* resume, opened_inputs& io) {
  struct stat jobs_st{};
  if (!o.jobs.empty()) {
    if (o.jobs == "-") {
      io.jobs_fd = STDIN_FILENO;
      io.jobs_name = "stdin";
    } else {
      io.jobs_file = unique_fd(::open(o.jobs.c_str(), O_RDONLY | O_CLOEXEC));
      if (io.jobs_file.get() < 0) return "--jobs: cannot open " + o.jobs + ": " + std::strerror(errno);
      io.jobs_fd = io.jobs_file.get();
      io.jobs_name = o.jobs;
    }
    if (::fstat(io.jobs_fd, &jobs_st) == 0) {
      if (S_ISDIR(jobs_st.st_mode)) return "--jobs: expected a file of job lines, got a directory: " + o.jobs;
      if (S_ISREG(jobs_st.st_mode)) io.jobs_size = static_cast<std::uint64_t>(jobs_st.st_size);
    }
  }
  if (o.results == "-") {
    if (o.resume || o.resume_failed)
      return std::string(o.resume ? "--resume" : "--resume-failed") +
             ": expected --results FILE (the results of the run to resume), got results on stdout";
    io.results_fd = STDOUT_FILENO;
    io.results_name = "stdout";
    return {};
  }
  struct stat results_st{};
  if (::stat(o.results.c_str(), &results_st) == 0) {
    if (S_ISDIR(results_st.st_mode)) return "--results: expected a file, got a directory: " + o.results;
    if (!o.jobs.empty() && jobs_st.st_ino == results_st.st_ino && jobs_st.st_dev == results_st.st_dev)
      return "--results: expected a file other than the jobs file, got " + o.results;
    struct stat config_st{};
    if (::stat(o.config.c_str(), &config_st) == 0 && config_st.st_ino == results_st.st_ino &&
        config_st.st_dev == results_st.st_dev)
      return "--results: expected a file other than the config file, got " + o.results;
  }
  // Locked for the whole run (the lock goes with the descriptor, at exit), before it is
  // read, cut or emptied: two runs on one file would both write every id's line.
  // Without --resume the file is started afresh; with it, appended to.
  io.results_file = unique_fd(::open(o.results.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC | (resume ? O_APPEND : 0), 0644));
  if (io.results_file.get() < 0) return "--results: cannot open " + o.results + ": " + std::strerror(errno);
  if (::flock(io.results_file.get(), LOCK_EX | LOCK_NB) != 0 && errno == EWOULDBLOCK)
    return "--results: expected a results file no other run is writing, got " + o.results +
           " (locked by another ringmaster run; wait for it to end)";
  io.results_fd = io.results_file.get();
  io.results_name = o.results;
  if (resume) {
    try {
      *resume = load_resume(o.results);
    } catch (const std::system_error& e) {
      return std::string(o.resume ? "--resume: " : "--resume-failed: ") + e.what();
    }
  } else if (struct stat st{}; ::fstat(io.results_fd, &st) == 0 && S_ISREG(st.st_mode) &&
             ::ftruncate(io.results_fd, 0) != 0) {
    return "--results: cannot empty " + o.results + ": " + std::strerror(errno);
  }
  return {};
}

std::string shared_memory_problem(const run_config& config) {
  const std::size_t available = available_memory();
  std::size_t need = 0;
  for (const auto& p : config.pools) need += shared_memory_of(p.options);
  if (available == 0 || need <= available) return {};
  std::string out;
  for (const auto& p : config.pools)
    out += config.path + ":" + std::to_string(p.line) + ": pools." + p.name + ": workers = " +
           std::to_string(p.options.workers == 0 ? std::max(1u, std::thread::hardware_concurrency()) : p.options.workers) +
           " and max_message = " + format_size(p.options.max_message) + " map " + mib(shared_memory_of(p.options)) +
           " of shared memory (" + mib(shared_memory_per_worker(p.options)) + " per worker)\n";
  return out + config.path + ": expected the pools' shared memory to fit in what this machine has available (MemAvailable " +
         mib(available) + "), got " + mib(need) + ": lower workers or max_message";
}

}  // namespace ringmaster::cli::detail
