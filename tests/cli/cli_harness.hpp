// tests/cli/cli_harness.hpp — running the real `ringmaster` binary in end-to-end tests.
//
// Every run is bounded in time (SIGKILL on timeout), its stdout and stderr are captured
// to files of the test's own temporary directory, and its exit status and peak RSS are
// collected with wait4. The test process is made a child subreaper, so whatever the run
// leaves behind (a fork server, a worker) is re-parented here: after each run the harness
// waits, bounded, for every such process to end and reports the ones that did not, so
// "nothing left behind" is checked on every run, not just in the tests that say so.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace ringmaster::test {

namespace fs = std::filesystem;

/// A fresh directory under /tmp, removed with everything in it by the destructor.
class temp_dir {
 public:
  temp_dir();
  ~temp_dir();
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;
  [[nodiscard]] const fs::path& path() const noexcept { return path_; }
  [[nodiscard]] fs::path operator/(const std::string& name) const { return path_ / name; }
  /// Writes `content` to `name` and returns its path.
  fs::path write(const std::string& name, const std::string& content) const;

 private:
  fs::path path_;
};

/// How a run ended.
struct cli_result {
  int code = -1;     ///< exit code, or -1 if killed by a signal
  int signal = 0;    ///< terminating signal, or 0
  bool timed_out = false;
  std::string out, err;
  long max_rss_kib = 0;  ///< peak RSS of the process tree (wait4: the largest of it and its reaped descendants)
  double seconds = 0;
  std::vector<pid_t> left_behind;  ///< descendants still alive 10 s after it ended (killed then)
  [[nodiscard]] std::string describe() const;  ///< for assertion messages
};

struct cli_options {
  std::optional<fs::path> stdin_file{};  ///< default /dev/null
  bool stdin_pipe = false;             ///< stdin from a pipe the test writes (cli_process::write_stdin)
  std::optional<fs::path> cwd{};
  std::chrono::seconds timeout{60};
  /// A command that runs ringmaster, e.g. {"setpriv", "--reuid=65534", ...} (found in PATH).
  std::vector<std::string> run_under{};
};

/// A started run: for tests that signal it, feed it or watch it while it runs.
class cli_process {
 public:
  /// Starts `ringmaster ARGS...`; output goes to files in `dir`.
  cli_process(const std::vector<std::string>& args, const temp_dir& dir, const cli_options& options = {});
  ~cli_process();  ///< SIGKILLs and reaps a run still going
  cli_process(const cli_process&) = delete;
  cli_process& operator=(const cli_process&) = delete;

  [[nodiscard]] pid_t pid() const noexcept { return pid_; }
  void signal(int sig) const;
  /// Writes to its stdin (stdin_pipe); false if the pipe is closed.
  bool write_stdin(const std::string& bytes);
  void close_stdin();
  /// What it wrote to stdout / stderr so far.
  [[nodiscard]] std::string out_so_far() const;
  [[nodiscard]] std::string err_so_far() const;
  /// Waits for it to end (SIGKILL at the timeout given at start), then for its
  /// descendants.
  cli_result wait();

 private:
  pid_t pid_ = -1;
  int pidfd_ = -1;
  int stdin_fd_ = -1;
  fs::path out_path_, err_path_;
  std::chrono::steady_clock::time_point started_, deadline_;
  bool waited_ = false;
};

/// Runs `ringmaster ARGS...` to its end.
cli_result run_cli(const std::vector<std::string>& args, const temp_dir& dir, const cli_options& options = {});

/// Every process below `root` (by /proc children links), depth first.
std::vector<pid_t> descendants(pid_t root);

/// Waits up to `timeout` for every process re-parented to this (subreaper) process to end
/// (runs started by a cli_process and not yet waited for excepted),
/// reaping them; SIGKILLs and returns those still alive then.
std::vector<pid_t> reap_orphans(std::chrono::milliseconds timeout);

/// Entries of /dev/shm whose names start with "ringmaster".
std::vector<std::string> shm_entries();

/// Parses a file (or text) of result lines; a line that is not JSON fails the test.
std::vector<nlohmann::json> parse_lines(const std::string& text);
std::string read_file(const fs::path& path);

/// Lines of `results` with this status/kind, and lookups by id (an integer id by its text).
std::size_t count_status(const std::vector<nlohmann::json>& results, const std::string& status);
std::size_t count_kind(const std::vector<nlohmann::json>& results, const std::string& kind);
const nlohmann::json* find_id(const std::vector<nlohmann::json>& results, const std::string& id);

}  // namespace ringmaster::test

/// A run (cli_result) left no process behind.
#define EXPECT_CLEAN(r) EXPECT_TRUE((r).left_behind.empty()) << "processes left behind after the run"
