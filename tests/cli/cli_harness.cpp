#include "cli_harness.hpp"

#include "proc.hpp"
#include "process_watch.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace ringmaster::test {
namespace {

// Orphans of the runs (fork servers, workers) come to this process, so the harness can
// prove they all end. Set once, before any test runs.
const bool g_subreaper = ::prctl(PR_SET_CHILD_SUBREAPER, 1) == 0;

int pidfd_open(pid_t pid) { return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)); }

std::set<pid_t> children_of_this_process() {
  std::set<pid_t> out;
  if (DIR* d = ::opendir("/proc/self/task")) {
    while (const dirent* e = ::readdir(d)) {
      if (e->d_name[0] == '.') continue;
      std::ifstream in(std::string("/proc/self/task/") + e->d_name + "/children");
      for (pid_t p; in >> p;) out.insert(p);
    }
    ::closedir(d);
  }
  return out;
}

// Runs started and not yet waited for: a test may hold one (a server) while it runs
// others, so the orphan reaping after each run leaves them alone.
std::set<pid_t>& running() {
  static std::set<pid_t> pids;
  return pids;
}

}  // namespace

// --- temp_dir

temp_dir::temp_dir() {
  std::string pattern = "/tmp/ringmaster-cli-test-XXXXXX";
  if (!::mkdtemp(pattern.data())) throw std::runtime_error("mkdtemp failed");
  path_ = pattern;
}

temp_dir::~temp_dir() {
  std::error_code ec;
  fs::remove_all(path_, ec);
}

fs::path temp_dir::write(const std::string& name, const std::string& content) const {
  const fs::path p = path_ / name;
  std::ofstream out(p, std::ios::binary);
  out << content;
  return p;
}

// --- results

std::string cli_result::describe() const {
  std::ostringstream s;
  s << "exit code " << code << ", signal " << signal << (timed_out ? " (TIMED OUT)" : "") << ", " << seconds
    << " s\n--- stderr ---\n"
    << err.substr(0, 8000) << "\n--- stdout (first 4000 bytes) ---\n"
    << out.substr(0, 4000);
  return s.str();
}

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::vector<nlohmann::json> parse_lines(const std::string& text) {
  std::vector<nlohmann::json> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (line.empty()) continue;
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_discarded()) {
      ADD_FAILURE() << "not a JSON line: " << line;
      continue;
    }
    out.push_back(std::move(j));
  }
  return out;
}

std::size_t count_status(const std::vector<nlohmann::json>& results, const std::string& status) {
  std::size_t n = 0;
  for (const auto& r : results) n += r.value("status", "") == status ? 1 : 0;
  return n;
}

std::size_t count_kind(const std::vector<nlohmann::json>& results, const std::string& kind) {
  std::size_t n = 0;
  for (const auto& r : results)
    if (r.contains("error") && r["error"].value("kind", "") == kind) ++n;
  return n;
}

const nlohmann::json* find_id(const std::vector<nlohmann::json>& results, const std::string& id) {
  // An integer id (given as one in its job line) is found by its text.
  for (const auto& r : results) {
    const auto it = r.find("id");
    if (it == r.end()) continue;
    if (it->is_string() ? it->get_ref<const std::string&>() == id : it->is_number_integer() && it->dump() == id)
      return &r;
  }
  return nullptr;
}

// --- processes

std::vector<pid_t> descendants(pid_t root) {
  const auto all = descendants_of(root);
  return {all.begin(), all.end()};
}

std::vector<pid_t> reap_orphans(std::chrono::milliseconds timeout) {
  if (!running().empty()) {
    // Another run goes on (a server): an orphan may be one of its own, adopted when its
    // parent died (the workers of a killed fork server, a promoted standby), and live
    // as long as that run. Those that ended are reaped; the rest are judged when the
    // last run is waited for.
    for (const pid_t p : children_of_this_process())
      if (!running().count(p)) ::waitpid(p, nullptr, WNOHANG);
    return {};
  }
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    std::set<pid_t> left;
    for (const pid_t p : children_of_this_process())
      if (!running().count(p) && ::waitpid(p, nullptr, WNOHANG) == 0) left.insert(p);
    if (left.empty()) return {};
    if (std::chrono::steady_clock::now() >= deadline) {
      std::vector<pid_t> out(left.begin(), left.end());
      for (const pid_t p : out) ::kill(p, SIGKILL);
      for (const pid_t p : out) ::waitpid(p, nullptr, 0);
      return out;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

std::vector<std::string> shm_entries() {
  const auto ours = our_segments();
  return {ours.begin(), ours.end()};
}

cli_process::cli_process(const std::vector<std::string>& args, const temp_dir& dir, const cli_options& options) {
  if (!g_subreaper) throw std::runtime_error("cannot become a child subreaper");
  static int counter = 0;
  const std::string tag = std::to_string(++counter);
  out_path_ = dir / ("stdout." + tag);
  err_path_ = dir / ("stderr." + tag);
  int in_pipe[2] = {-1, -1};
  if (options.stdin_pipe && ::pipe2(in_pipe, O_CLOEXEC) != 0) throw std::runtime_error("pipe failed");
  std::vector<std::string> argv_storage = options.run_under;
  argv_storage.push_back(RINGMASTER_BIN);
  argv_storage.insert(argv_storage.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : argv_storage) argv.push_back(a.data());
  argv.push_back(nullptr);
  const std::string in_path = options.stdin_file ? options.stdin_file->string() : "/dev/null";
  const std::string cwd = options.cwd ? options.cwd->string() : dir.path().string();
  started_ = std::chrono::steady_clock::now();
  deadline_ = started_ + options.timeout;
  pid_ = ::fork();
  if (pid_ < 0) throw std::runtime_error("fork failed");
  if (pid_ == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // a crashed test leaves no run behind
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    const int in = options.stdin_pipe ? in_pipe[0] : ::open(in_path.c_str(), O_RDONLY);
    const int out = ::open(out_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    const int err = ::open(err_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (in < 0 || out < 0 || err < 0 || ::dup2(in, 0) < 0 || ::dup2(out, 1) < 0 || ::dup2(err, 2) < 0) ::_exit(126);
    if (::chdir(cwd.c_str()) != 0) ::_exit(126);
    ::execvp(argv[0], argv.data());
    ::_exit(127);
  }
  pidfd_ = pidfd_open(pid_);
  running().insert(pid_);
  if (options.stdin_pipe) {
    ::close(in_pipe[0]);
    stdin_fd_ = in_pipe[1];
  }
}

cli_process::~cli_process() {
  if (!waited_ && pid_ > 0) {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    running().erase(pid_);
    reap_orphans(std::chrono::seconds(10));
  }
  if (pidfd_ >= 0) ::close(pidfd_);
  close_stdin();
}

void cli_process::signal(int sig) const {
  if (!waited_) ::kill(pid_, sig);
}

bool cli_process::write_stdin(const std::string& bytes) {
  std::size_t at = 0;
  while (at < bytes.size()) {
    const ssize_t n = ::write(stdin_fd_, bytes.data() + at, bytes.size() - at);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    at += static_cast<std::size_t>(n);
  }
  return true;
}

void cli_process::close_stdin() {
  if (stdin_fd_ >= 0) ::close(stdin_fd_);
  stdin_fd_ = -1;
}

std::string cli_process::out_so_far() const { return read_file(out_path_); }
std::string cli_process::err_so_far() const { return read_file(err_path_); }

cli_result cli_process::wait() {
  cli_result r;
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline_ - std::chrono::steady_clock::now());
  pollfd p{pidfd_, POLLIN, 0};
  if (::poll(&p, 1, static_cast<int>(std::max<long long>(0, left.count()))) <= 0) {
    r.timed_out = true;
    ::kill(pid_, SIGKILL);
  }
  int status = 0;
  rusage ru{};
  while (::wait4(pid_, &status, 0, &ru) < 0 && errno == EINTR) {
  }
  waited_ = true;
  running().erase(pid_);
  close_stdin();
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
  r.max_rss_kib = ru.ru_maxrss;
  r.left_behind = reap_orphans(std::chrono::seconds(10));
  r.out = read_file(out_path_);
  r.err = read_file(err_path_);
  return r;
}

cli_result run_cli(const std::vector<std::string>& args, const temp_dir& dir, const cli_options& options) {
  cli_process p(args, dir, options);
  return p.wait();
}

}  // namespace ringmaster::test
