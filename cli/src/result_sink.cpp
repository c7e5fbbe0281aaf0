#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ringmaster/cli/jsonl.hpp>
#include <ringmaster/cli/result_sink.hpp>
#include <ringmaster/ipc/detail/eintr.hpp>

namespace ringmaster::cli {

fd_result_sink::fd_result_sink(int fd, std::string name, std::function<void(const std::function<void()>&)> around_write,
                               std::function<void(const std::string&)> on_error,
                               std::function<void(const result&)> on_written)
    : fd_(fd),
      name_(std::move(name)),
      around_write_(std::move(around_write)),
      on_error_(std::move(on_error)),
      on_written_(std::move(on_written)) {
  thread_ = std::thread([this] { run(); });
}

fd_result_sink::~fd_result_sink() { close(); }

void fd_result_sink::push(result r, bool may_wait, bool integer_id) {
  bool wake = false;
  {
    std::unique_lock lock(mutex_);
    if (closing_) {
      ++lost_;  // a result after the end (a late completion): not silently uncounted
      return;
    }
    if (may_wait) room_.wait(lock, [this] { return queue_.size() < k_soft_limit || closing_; });
    queue_.push_back({std::move(r), integer_id});
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

std::uint64_t fd_result_sink::lines_lost() const {
  std::lock_guard lock(mutex_);
  return lost_;
}

std::size_t fd_result_sink::write_all(const std::string& bytes) {
  std::size_t at = 0;
  while (at < bytes.size()) {
    const ssize_t n =
        ringmaster::detail::retry_eintr([&] { return ::write(fd_, bytes.data() + at, bytes.size() - at); });
    if (n < 0) {
      // A non-blocking descriptor (a shared terminal or pipe): wait for room, never spin.
      if (errno == EAGAIN && ringmaster::detail::wait_ready(fd_, POLLOUT)) continue;
      std::lock_guard lock(mutex_);
      error_ = name_ + ": cannot write results: " + std::strerror(errno);
      return at;
    }
    at += static_cast<std::size_t>(n);
  }
  return at;
}

void fd_result_sink::run() {
  std::vector<queued> batch;
  std::string bytes;
  std::vector<std::size_t> ends;  // where each line of the batch ends in `bytes`
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
      std::lock_guard lock(mutex_);
      lost_ += batch.size();
      batch.clear();
      continue;
    }
    bytes.clear();
    ends.clear();
    for (const queued& q : batch) {
      append_result_line(bytes, q.r, q.integer_id);
      ends.push_back(bytes.size());
    }
    std::size_t done = 0;
    if (around_write_)
      around_write_([&] { done = write_all(bytes); });
    else
      done = write_all(bytes);
    // A write cut short (ENOSPC) may have written some lines whole: those count.
    const auto whole = static_cast<std::size_t>(std::upper_bound(ends.begin(), ends.end(), done) - ends.begin());
    if (on_written_)
      for (std::size_t i = 0; i < whole; ++i) on_written_(batch[i].r);
    {
      std::lock_guard lock(mutex_);
      written_ += whole;
      lost_ += batch.size() - whole;
    }
    batch.clear();
    if (done < bytes.size()) {
      failed = true;
      if (on_error_) on_error_(error());
    }
  }
}

// --- result_order

std::uint64_t result_order::note(std::uint64_t place) const {
  std::lock_guard lock(mutex_);
  if (place < head_ || place >= next_) return 0;
  return places_[static_cast<std::size_t>(place - head_)].note;
}

std::optional<std::uint64_t> result_order::admit(std::uint64_t note) {
  std::unique_lock lock(mutex_);
  ++waiting_;
  room_.wait(lock, [this] { return closed_ || next_ - head_ < window_; });
  --waiting_;
  if (closed_) return std::nullopt;
  places_.emplace_back().note = note;
  return next_++;
}

result_order::entry* result_order::find_locked(std::uint64_t place) {
  if (place < head_ || place >= next_) return nullptr;  // not given, or passed on already
  entry& e = places_[static_cast<std::size_t>(place - head_)];
  return e.done ? nullptr : &e;
}

void result_order::finish(std::uint64_t place, result r, bool integer_id) {
  std::lock_guard lock(mutex_);
  entry* e = find_locked(place);
  if (!e) return;
  e->done = true;
  e->has_line = true;
  e->integer_id = integer_id;
  e->r = std::move(r);
  ++held_;
  release_locked();
}

void result_order::skip(std::uint64_t place) {
  std::lock_guard lock(mutex_);
  entry* e = find_locked(place);
  if (!e) return;
  e->done = true;
  ++held_;
  release_locked();
}

void result_order::release_locked() {
  bool moved = false;
  while (!places_.empty() && places_.front().done) {
    entry& e = places_.front();
    // Pushed under the lock, so that lines leave in order; push() never blocks.
    if (e.has_line) out_.push(std::move(e.r), false, e.integer_id);
    places_.pop_front();
    ++head_;
    --held_;
    moved = true;
  }
  peak_held_ = std::max(peak_held_, held_);
  if (moved) room_.notify_all();
}

void result_order::close() {
  {
    std::lock_guard lock(mutex_);
    closed_ = true;
  }
  room_.notify_all();
}

std::size_t result_order::held() const {
  std::lock_guard lock(mutex_);
  return held_;
}

std::size_t result_order::peak_held() const {
  std::lock_guard lock(mutex_);
  return peak_held_;
}

std::size_t result_order::waiting() const {
  std::lock_guard lock(mutex_);
  return waiting_;
}

}  // namespace ringmaster::cli
