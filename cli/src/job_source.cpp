#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ringmaster/cli/job_source.hpp>

namespace ringmaster::cli {

// --- config_job_source

bool config_job_source::next(job_entry& out) {
  while (job_ < config_.jobs.size() && copy_ >= config_.jobs[job_].repeat) {
    ++job_;
    copy_ = 0;
  }
  if (job_ >= config_.jobs.size()) return false;
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
  return true;
}

double config_job_source::fraction_read() const noexcept {
  std::uint64_t total = 0;
  for (const auto& t : config_.jobs) total += t.repeat;
  return total == 0 ? 1.0 : static_cast<double>(done_.load(std::memory_order_relaxed)) / static_cast<double>(total);
}

// --- line_reader

line_reader::line_reader(int fd, int stop_fd, std::size_t max_line)
    : fd_(fd), stop_fd_(stop_fd), max_line_(std::max<std::size_t>(max_line, 16)) {
  struct stat st{};
  pollable_ = !(::fstat(fd, &st) == 0 && S_ISREG(st.st_mode));
  buf_.resize(std::min<std::size_t>(std::size_t{1} << 20, max_line_ + 1));
}

bool line_reader::fill() {
  if (eof_) {
    last_ = status::end;
    return false;
  }
  // Keep the unconsumed tail at the front, and make room: the buffer grows up to one
  // line of max_line bytes (plus its newline), never more.
  if (begin_ > 0) {
    std::memmove(buf_.data(), buf_.data() + begin_, end_ - begin_);
    end_ -= begin_;
    begin_ = 0;
  }
  if (end_ == buf_.size()) buf_.resize(std::min(buf_.size() * 2, max_line_ + 1));
  for (;;) {
    if (pollable_) {
      pollfd p[2] = {{fd_, POLLIN, 0}, {stop_fd_, POLLIN, 0}};
      if (::poll(p, stop_fd_ >= 0 ? 2 : 1, -1) < 0) {
        if (errno == EINTR) continue;
        error_ = errno;
        last_ = status::error;
        return false;
      }
      if (stop_fd_ >= 0 && (p[1].revents & POLLIN)) {
        last_ = status::stopped;
        return false;
      }
    }
    const ssize_t got = ::read(fd_, buf_.data() + end_, buf_.size() - end_);
    if (got < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      error_ = errno;
      last_ = status::error;
      return false;
    }
    if (got == 0) {
      eof_ = true;
      last_ = status::end;
      return false;
    }
    end_ += static_cast<std::size_t>(got);
    return true;
  }
}

line_reader::status line_reader::next(std::string_view& line, bool& unterminated) {
  unterminated = false;
  bool skipping = false;    // inside a line over max_line: drop bytes up to its newline
  std::size_t scanned = 0;  // bytes of [begin_, end_) known to hold no newline
  for (;;) {
    const char* start = buf_.data() + begin_;
    if (const auto* nl = static_cast<const char*>(std::memchr(start + scanned, '\n', end_ - begin_ - scanned))) {
      const auto len = static_cast<std::size_t>(nl - start);
      ++line_number_;
      begin_ += len + 1;
      consumed_.fetch_add(len + 1, std::memory_order_relaxed);
      if (skipping) return status::too_long;
      line = std::string_view(start, len);
      return status::line;
    }
    scanned = end_ - begin_;
    if (scanned > max_line_ || skipping) {
      // Too long: forget what we hold of it (memory stays bounded) and skip to its end.
      skipping = true;
      consumed_.fetch_add(scanned, std::memory_order_relaxed);
      begin_ = end_ = scanned = 0;
    }
    if (eof_) {
      if (skipping) {
        ++line_number_;
        return status::too_long;
      }
      if (end_ == begin_) return status::end;
      // A last line without its newline: handed out, marked, so that the caller can tell
      // a file cut short from one whose writer merely omitted the final newline.
      ++line_number_;
      line = std::string_view(start, end_ - begin_);
      consumed_.fetch_add(end_ - begin_, std::memory_order_relaxed);
      begin_ = end_;
      unterminated = true;
      return status::line;
    }
    if (!fill() && last_ != status::end) return last_;
  }
}

// --- jsonl_job_source

jsonl_job_source::jsonl_job_source(int fd, std::string name, int stop_fd, std::size_t max_line, std::uint64_t size)
    : reader_(fd, stop_fd, max_line), name_(std::move(name)), size_(size), max_line_(max_line) {}

double jsonl_job_source::fraction_read() const noexcept {
  if (size_ == 0) return -1;
  return std::min(1.0, static_cast<double>(reader_.bytes_consumed()) / static_cast<double>(size_));
}

bool jsonl_job_source::next(job_entry& out) {
  for (;;) {
    std::string_view line;
    bool unterminated = false;
    const auto st = reader_.next(line, unterminated);
    if (st == line_reader::status::end || st == line_reader::status::stopped) return false;
    if (st == line_reader::status::error) {
      read_error_ = name_ + ": read failed: " + std::strerror(reader_.error_code());
      return false;
    }
    out.source = name_;
    out.line = reader_.line_number();
    out.rejection.clear();
    if (st == line_reader::status::too_long) {
      out.id.clear();
      out.integer_id = false;
      out.pool.clear();
      out.type.clear();
      out.payload.clear();
      out.rejection = "line longer than " + std::to_string(max_line_) + " bytes";
      return true;
    }
    // Blank lines separate nothing and mean nothing: skipped, as JSON Lines tools do.
    if (std::all_of(line.begin(), line.end(), [](char c) { return c == ' ' || c == '\t' || c == '\r'; })) continue;
    std::string problem = parse_job_line(line, parsed_);
    if (!problem.empty() && unterminated) problem = "truncated last line (no newline at the end, and " + problem + ")";
    out.id = std::move(parsed_.id);
    out.integer_id = parsed_.integer_id;
    out.pool = std::move(parsed_.pool);
    out.type = std::move(parsed_.type);
    out.payload = std::move(parsed_.payload);
    out.rejection = std::move(problem);
    return true;
  }
}

// --- job_admission

job_admission::verdict job_admission::admit(job_entry& e) {
  ++sequence_;
  if (e.id.empty()) {
    e.id = std::to_string(sequence_);
    e.integer_id = false;  // a sequence number is a string id, as before
  }
  auto reject = [&](std::string why) {
    // Bounded whatever the cause quotes: a rejection is a line to read, not a copy of
    // the megabyte it refuses.
    e.rejection = e.origin() + ": " + excerpt(why, k_max_rejection);
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
