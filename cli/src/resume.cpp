#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <ringmaster/cli/job_source.hpp>
#include <ringmaster/cli/jsonl.hpp>
#include <ringmaster/cli/resume.hpp>
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
      if (r->ok) state.done.insert(r->id);
    } else {
      ++state.unreadable;
    }
  }
  if (state.truncated_tail && ::ftruncate(fd, static_cast<off_t>(whole_bytes)) != 0)
    throw std::system_error(errno, std::system_category(), "cannot cut the partial last line off " + path);
  return state;
}

}  // namespace ringmaster::cli
