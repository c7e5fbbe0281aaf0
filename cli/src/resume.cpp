#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <functional>
#include <unordered_map>
#include <ringmaster/cli/job_source.hpp>
#include <ringmaster/cli/jsonl.hpp>
#include <ringmaster/cli/resume.hpp>
#include <ringmaster/cli/run.hpp>
#include <ringmaster/ipc/detail/eintr.hpp>
#include <system_error>

namespace ringmaster::cli {

resume_state load_resume(const std::string& path) {
  resume_state state;
  const int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return state;
    throw std::system_error(errno, std::system_category(), "cannot open results file " + path + " to resume");
  }
  struct closer {
    int fd;
    ~closer() { ::close(fd); }
  } guard{fd};

  // Result lines are short unless a handler returned a large result; one over 1 GiB
  // (the largest max_message) cannot be a line we wrote whole.
  line_reader reader(fd, -1, std::size_t{1} << 30);
  std::uint64_t whole_bytes = 0;  // bytes up to the end of the last complete line
  for (;;) {
    std::string_view line;
    bool unterminated = false;
    const auto st = reader.next(line, unterminated);
    if (st == line_reader::status::end) break;
    if (st == line_reader::status::error)
      throw std::system_error(reader.error_code(), std::system_category(), "cannot read results file " + path);
    if (unterminated) {
      state.truncated_tail = true;
      break;
    }
    whole_bytes = reader.bytes_consumed();
    if (st == line_reader::status::too_long) {
      ++state.unreadable;
      continue;
    }
    if (line.empty()) continue;
    ++state.lines;
    if (const auto r = read_result_line(line)) {
      if (r->ok)
        state.done.insert(r->id);
      else
        state.failed.insert(r->id);
    } else {
      ++state.unreadable;
    }
  }
  if (state.truncated_tail && ::ftruncate(fd, static_cast<off_t>(whole_bytes)) != 0)
    throw std::system_error(errno, std::system_category(), "cannot cut the partial last line off " + path);
  return state;
}

int write_final_results(const std::string& path) {
  const auto say = [](const std::string& line) {
    const std::string text = "ringmaster: " + line + "\n";
    (void)!::write(STDERR_FILENO, text.data(), text.size());
  };
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    say("results --final: cannot open " + path + ": " + std::strerror(errno));
    return k_exit_usage;
  }
  struct closer {
    int fd;
    ~closer() { ::close(fd); }
  } guard{fd};
  struct stat st{};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    say("results --final: expected a results file (a regular file, read twice), got " + path);
    return k_exit_usage;
  }

  // Pass 1: the number of each id's last line. Pass 2: those lines, as they come.
  std::unordered_map<std::string, std::uint64_t> last;
  std::uint64_t skipped = 0;
  bool partial = false;
  const auto pass = [&](const std::function<void(std::uint64_t, std::string_view, const std::string&)>& line_of_id) {
    if (::lseek(fd, 0, SEEK_SET) != 0) return false;
    line_reader reader(fd, -1, std::size_t{1} << 30);
    skipped = 0;
    partial = false;
    for (;;) {
      std::string_view line;
      bool unterminated = false;
      const auto st2 = reader.next(line, unterminated);
      if (st2 == line_reader::status::end) return true;
      if (st2 == line_reader::status::error) {
        say("results --final: cannot read " + path + ": " + std::strerror(reader.error_code()));
        return false;
      }
      if (unterminated) {
        partial = true;
        return true;
      }
      if (st2 == line_reader::status::too_long || line.empty()) {
        skipped += st2 == line_reader::status::too_long ? 1 : 0;
        continue;
      }
      if (const auto r = read_result_line(line))
        line_of_id(reader.line_number(), line, r->id);
      else
        ++skipped;
    }
  };
  if (!pass([&](std::uint64_t n, std::string_view, const std::string& id) { last[id] = n; })) return k_exit_usage;
  std::string out;
  const auto flush = [&] {
    std::size_t at = 0;
    while (at < out.size()) {
      const ssize_t n =
          ringmaster::detail::retry_eintr([&] { return ::write(STDOUT_FILENO, out.data() + at, out.size() - at); });
      // A non-blocking stdout (shared with a shell that set O_NONBLOCK) waits, not fails.
      if (n < 0 && errno == EAGAIN && ringmaster::detail::wait_ready(STDOUT_FILENO, POLLOUT)) continue;
      if (n <= 0) return false;
      at += static_cast<std::size_t>(n);
    }
    out.clear();
    return true;
  };
  bool written = true;
  if (!pass([&](std::uint64_t n, std::string_view line, const std::string& id) {
        if (!written || last[id] != n) return;
        out.append(line);
        out += '\n';
        if (out.size() >= (std::size_t{1} << 16)) written = flush();
      }))
    return k_exit_usage;
  if (!written || !flush()) {
    say(std::string("results --final: cannot write to stdout: ") + std::strerror(errno));
    return k_exit_output;
  }
  if (skipped > 0) say(path + ": " + std::to_string(skipped) + " line(s) that are not result lines left out");
  if (partial) say(path + ": a partial last line (a run killed mid-line) left out");
  return 0;
}

}  // namespace ringmaster::cli
