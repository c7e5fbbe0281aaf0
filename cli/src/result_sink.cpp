#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ringmaster/cli/jsonl.hpp>
#include <ringmaster/cli/result_sink.hpp>

namespace ringmaster::cli {

fd_result_sink::fd_result_sink(int fd, std::string name, std::function<void(const std::function<void()>&)> around_write,
                               std::function<void(const std::string&)> on_error)
    : fd_(fd), name_(std::move(name)), around_write_(std::move(around_write)), on_error_(std::move(on_error)) {
  thread_ = std::thread([this] { run(); });
}

fd_result_sink::~fd_result_sink() { close(); }

void fd_result_sink::push(result r, bool may_wait) {
  bool wake = false;
  {
    std::unique_lock lock(mutex_);
    if (closing_) return;
    if (may_wait) room_.wait(lock, [this] { return queue_.size() < k_soft_limit || closing_; });
    queue_.push_back(std::move(r));
    // Only a writer asleep with nothing to do needs waking; one gathering a batch wakes
    // by itself. Under load most pushes cost no wake-up (no system call) at all.
    wake = idle_ || queue_.size() == k_batch;
    idle_ = idle_ && !wake;
  }
  if (wake) wake_.notify_one();
}

void fd_result_sink::close() {
  {
    std::lock_guard lock(mutex_);
    closing_ = true;
  }
  wake_.notify_all();
  room_.notify_all();
  // A second caller arriving while the first still joins waits in call_once: both return
  // with everything written.
  std::call_once(join_once_, [this] { thread_.join(); });
}

std::string fd_result_sink::error() const {
  std::lock_guard lock(mutex_);
  return error_;
}

std::uint64_t fd_result_sink::lines_written() const {
  std::lock_guard lock(mutex_);
  return written_;
}

bool fd_result_sink::write_all(const std::string& bytes) {
  std::size_t at = 0;
  while (at < bytes.size()) {
    const ssize_t n = ::write(fd_, bytes.data() + at, bytes.size() - at);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      std::lock_guard lock(mutex_);
      error_ = name_ + ": cannot write results: " + std::strerror(errno);
      return false;
    }
    at += static_cast<std::size_t>(n);
  }
  return true;
}

void fd_result_sink::run() {
  std::vector<result> batch;
  std::string bytes;
  bool failed = false;
  for (;;) {
    {
      std::unique_lock lock(mutex_);
      if (queue_.empty() && !closing_) {
        idle_ = true;
        wake_.wait(lock, [this] { return !queue_.empty() || closing_; });
        idle_ = false;
      }
      // Let a batch gather for a moment: one write() (and one wake-up) for many lines
      // when results pour in, at the price of at most k_gather of latency per line.
      if (queue_.size() < k_batch && !closing_)
        wake_.wait_for(lock, k_gather, [this] { return queue_.size() >= k_batch || closing_; });
      if (queue_.empty() && closing_) return;
      batch.swap(queue_);
    }
    room_.notify_all();
    if (failed) {
      batch.clear();
      continue;
    }
    bytes.clear();
    for (const result& r : batch) append_result_line(bytes, r);
    bool ok = true;
    if (around_write_)
      around_write_([&] { ok = write_all(bytes); });
    else
      ok = write_all(bytes);
    {
      std::lock_guard lock(mutex_);
      if (ok) written_ += batch.size();
    }
    batch.clear();
    if (!ok) {
      failed = true;
      if (on_error_) on_error_(error());
    }
  }
}

}  // namespace ringmaster::cli
