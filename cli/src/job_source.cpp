#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ringmaster/cli/job_source.hpp>
#include <ringmaster/ipc/detail/eintr.hpp>

namespace ringmaster::cli {

// --- job_source

input_wait wait_for_input(int fd, int stop_fd) noexcept {
  pollfd p[2] = {{fd, POLLIN, 0}, {stop_fd, POLLIN, 0}};
  if (ringmaster::detail::retry_eintr([&] { return ::poll(p, stop_fd >= 0 ? 2 : 1, -1); }) < 0)
    return input_wait::error;
  if (stop_fd >= 0 && (p[1].revents & POLLIN)) return input_wait::stopped;
  return input_wait::ready;
}

bool job_source::next(job_entry& out) {
  for (;;) {
    switch (try_next(out)) {
      case pull::job: return true;
      case pull::request: continue;
      case pull::end:
      case pull::error: return false;
      case pull::later:
        if (wait_for_input(wake_fd(), stop_fd()) != input_wait::ready) return false;
        continue;
    }
  }
}

// --- config_job_source

job_source::pull config_job_source::try_next(job_entry& out) {
  while (job_ < config_.jobs.size() && copy_ >= config_.jobs[job_].repeat) {
    ++job_;
    copy_ = 0;
  }
  if (job_ >= config_.jobs.size()) return pull::end;
  const job_template& t = config_.jobs[job_];
  ++copy_;
  done_.fetch_add(1, std::memory_order_relaxed);
  out.id = t.id.empty() || t.repeat == 1 ? t.id : t.id + "-" + std::to_string(copy_);
  out.integer_id = false;
  out.pool = t.pool;
  out.type = t.type;
  out.payload = t.payload;
  out.source = config_.path;
  out.line = t.line;
  out.rejection.clear();
  return pull::job;
}

double config_job_source::fraction_read() const noexcept {
  std::uint64_t total = 0;
  for (const auto& t : config_.jobs) total += t.repeat;
  return total == 0 ? 1.0 : static_cast<double>(done_.load(std::memory_order_relaxed)) / static_cast<double>(total);
}

// --- line_reader

line_reader::line_reader(int fd, int stop_fd, std::size_t max_line)
    : fd_(fd),
      stop_fd_(stop_fd),
      read_size_(std::min<std::size_t>(std::size_t{1} << 20, std::max<std::size_t>(max_line, 16) + 1)),
      lines_(std::max<std::size_t>(max_line, 16)) {
  struct stat st{};
  pollable_ = !(::fstat(fd, &st) == 0 && S_ISREG(st.st_mode));
}

line_reader::status line_reader::fill() {
  if (pollable_) {
    // Whatever the descriptor's O_NONBLOCK (stdin's is the shell's to set), a read is
    // only made when poll() says it will not block.
    pollfd p{fd_, POLLIN, 0};
    const int ready = ringmaster::detail::retry_eintr([&] { return ::poll(&p, 1, 0); });
    if (ready == 0) return status::later;
    if (ready < 0) {
      error_ = errno;
      return status::error;
    }
  }
  const std::span<char> room = lines_.space(read_size_);
  const ssize_t got = ringmaster::detail::retry_eintr([&] { return ::read(fd_, room.data(), room.size()); });
  if (got < 0) {
    // Readable a moment ago and not now (another reader of a shared stdin took it): wait
    // again rather than read again at once.
    if (errno == EAGAIN || errno == EWOULDBLOCK) return status::later;
    error_ = errno;
    return status::error;
  }
  if (got == 0) {
    eof_ = true;
    return status::end;
  }
  lines_.commit(static_cast<std::size_t>(got));
  return status::line;
}

line_reader::status line_reader::try_next(std::string_view& line, bool& unterminated) {
  for (;;) {
    switch (lines_.next(line, unterminated, eof_)) {
      case line_splitter::piece::line: return status::line;
      case line_splitter::piece::too_long: return status::too_long;
      case line_splitter::piece::more:
        if (eof_) return status::end;
        if (const status st = fill(); st != status::line && st != status::end) return st;
        break;
    }
  }
}

line_reader::status line_reader::next(std::string_view& line, bool& unterminated) {
  for (;;) {
    const status st = try_next(line, unterminated);
    if (st != status::later) return st;
    switch (wait_for_input(fd_, stop_fd_)) {
      case input_wait::ready: break;
      case input_wait::stopped: return status::stopped;
      case input_wait::error: error_ = errno; return status::error;
    }
  }
}

// --- jsonl_job_source

jsonl_job_source::jsonl_job_source(int fd, std::string name, int stop_fd, std::size_t max_line, std::uint64_t size)
    : reader_(fd, stop_fd, max_line), name_(std::move(name)), size_(size) {}

double jsonl_job_source::fraction_read() const noexcept {
  if (size_ == 0) return -1;
  return std::min(1.0, static_cast<double>(reader_.bytes_consumed()) / static_cast<double>(size_));
}

void jsonl_job_source::rename(std::string name) {
  name_ = std::move(name);
  first_line_ = reader_.line_number();
}

job_source::pull jsonl_job_source::try_next(job_entry& out) {
  for (;;) {
    std::string_view line;
    bool unterminated = false;
    const auto st = reader_.try_next(line, unterminated);
    switch (st) {
      case line_reader::status::line:
      case line_reader::status::too_long: break;
      case line_reader::status::later: return pull::later;
      case line_reader::status::end:
      case line_reader::status::stopped: return pull::end;
      case line_reader::status::error:
        read_error_ = name_ + ": read failed: " + std::strerror(reader_.error_code());
        return pull::error;
    }
    out.source = name_;
    out.line = reader_.line_number() - first_line_;
    out.rejection.clear();
    if (st == line_reader::status::too_long) {
      out.id.clear();
      out.integer_id = false;
      out.pool.clear();
      out.type.clear();
      out.payload.clear();
      out.rejection = "line longer than " + std::to_string(reader_.max_line()) + " bytes";
      return pull::job;
    }
    if (requests_ && !line.empty() && line.back() == '\r') line.remove_suffix(1);
    // Blank lines separate nothing and mean nothing: skipped, as JSON Lines tools do.
    if (std::all_of(line.begin(), line.end(), [](char c) { return c == ' ' || c == '\t' || c == '\r'; })) continue;
    if (requests_) {
      if (auto r = parse_request(line)) {
        request_ = std::move(*r);
        return pull::request;
      }
    }
    std::string problem = parse_job_line(line, parsed_);
    if (!problem.empty() && unterminated && !requests_)
      problem = "truncated last line (no newline at the end, and " + problem + ")";
    out.id = std::move(parsed_.id);
    out.integer_id = parsed_.integer_id;
    out.pool = std::move(parsed_.pool);
    out.type = std::move(parsed_.type);
    out.payload = std::move(parsed_.payload);
    out.rejection = std::move(problem);
    return pull::job;
  }
}

// --- job_admission

std::size_t max_job_line(const run_config& config) noexcept {
  std::size_t m = 0;
  for (const auto& p : config.pools) m = std::max(m, p.options.max_message);
  return std::max<std::size_t>(std::size_t{1} << 20, 6 * m + 65536);
}

std::string rejection_message(std::string_view source, std::uint64_t line, std::string_view why) {
  return std::string(source) + ":" + std::to_string(line) + ": " + excerpt(why, k_max_rejection);
}

job_admission::verdict job_admission::admit(job_entry& e) {
  ++sequence_;
  if (e.id.empty()) {
    e.id = std::to_string(sequence_);
    e.integer_id = false;  // a sequence number is a string id, as before
  }
  auto reject = [&](std::string why) {
    e.rejection = rejection_message(e.source, e.line, why);
    return verdict::reject;
  };
  if (!e.rejection.empty()) return reject(std::move(e.rejection));
  if (e.pool.empty()) {
    if (config_.pools.size() != 1) {
      std::string names;
      for (const auto& p : config_.pools) names += (names.empty() ? "" : ", ") + p.name;
      return reject("no \"pool\", and the config has more than one (" + names + ")");
    }
    e.pool = config_.pools.front().name;
  } else if (!config_.find_pool(e.pool)) {
    std::string names;
    for (const auto& p : config_.pools) names += (names.empty() ? "" : ", ") + p.name;
    std::string quoted;
    append_quoted_excerpt(quoted, e.pool);
    return reject("unknown pool " + quoted + " (the config has " + names + ")");
  }
  if (!seen_.insert(e.id)) {
    std::string quoted;
    append_quoted_excerpt(quoted, e.id);
    return reject("duplicate id " + quoted);
  }
  if (done_ && done_->contains(e.id)) return verdict::skip;
  if (rerun_only_ && !rerun_only_->contains(e.id)) return verdict::skip;
  return verdict::submit;
}

}  // namespace ringmaster::cli
