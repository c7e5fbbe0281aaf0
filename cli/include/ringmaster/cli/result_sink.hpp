// ringmaster/cli/result_sink.hpp — where a run's results go: one JSON line per job, in
// completion order.
//
// push() is called on the supervisor's dispatcher thread (completion callbacks) and on
// the thread reading jobs (rejections), so it only queues: fd_result_sink formats and
// writes on a thread of its own, whole lines only, each batch with one write(). A batch
// is what accumulated while the previous write ran, plus at most a millisecond more, so
// lines reach the file as soon as their jobs finish and a run killed at any moment
// keeps every line it had written.
//
// A failed write (a closed pipe, a full disk) is remembered and reported through
// error() and the on_error callback, once; later results are counted and dropped, so
// that the dispatcher never waits on a sink that cannot write. Every line is accounted
// for: lines_written() counts the lines that reached the descriptor whole (a batch cut
// short by ENOSPC counts the lines before the cut), lines_lost() the others, and the
// on_written callback sees each written line's result, so that a summary can count
// what the file really holds.
#pragma once

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <ringmaster/worker/result.hpp>

namespace ringmaster::cli {

class result_sink {
 public:
  virtual ~result_sink() = default;
  /// Queues `r` to be written. Never blocks on the output; with `may_wait` (a thread
  /// that can afford it) waits while very many lines are queued, so a flood of
  /// rejections cannot grow memory without bound. `integer_id`: write the id as the
  /// integer it was given as. Ignored after close().
  virtual void push(result r, bool may_wait = false, bool integer_id = false) = 0;
  /// Writes everything queued, then stops taking results. Blocking; idempotent and safe
  /// to call from several threads (each returns once all is written).
  virtual void close() = 0;
  /// What went wrong writing, or "".
  [[nodiscard]] virtual std::string error() const = 0;
};

/// Result lines written to a descriptor (a file, a pipe, a terminal). The descriptor is
/// not owned and must outlive the sink.
class fd_result_sink final : public result_sink {
 public:
  /// `around_write`, if set, is given each write to run: a progress bar on the same
  /// terminal erases itself around it. `on_error` is called once, on the writer thread,
  /// when a write fails. `on_written` is called on the writer thread for each line
  /// written whole, in order.
  fd_result_sink(int fd, std::string name, std::function<void(const std::function<void()>&)> around_write = {},
                 std::function<void(const std::string&)> on_error = {},
                 std::function<void(const result&)> on_written = {});
  ~fd_result_sink() override;  ///< close()s.
  fd_result_sink(const fd_result_sink&) = delete;
  fd_result_sink& operator=(const fd_result_sink&) = delete;

  void push(result r, bool may_wait = false, bool integer_id = false) override;
  void close() override;
  [[nodiscard]] std::string error() const override;
  /// Lines written so far.
  [[nodiscard]] std::uint64_t lines_written() const;
  /// Lines pushed that were not written (after a write error), so far.
  [[nodiscard]] std::uint64_t lines_lost() const;

 private:
  struct queued {
    result r;
    bool integer_id;
  };
  void run();
  // Writes `bytes`; returns how many reached the descriptor (all of them, or fewer after
  // an error, which is then in error_).
  std::size_t write_all(const std::string& bytes);

  static constexpr std::size_t k_soft_limit = 65536;  // queued lines before may_wait waits
  static constexpr std::size_t k_batch = 4096;        // lines that make a batch worth writing now
  static constexpr std::chrono::microseconds k_gather{1000};
  int fd_;
  std::string name_;
  std::function<void(const std::function<void()>&)> around_write_;
  std::function<void(const std::string&)> on_error_;
  std::function<void(const result&)> on_written_;
  mutable std::mutex mutex_;
  std::condition_variable wake_, room_;
  std::vector<queued> queue_;
  bool closing_ = false;
  bool idle_ = false;  // the writer waits for lines, with none queued
  std::string error_;
  std::uint64_t written_ = 0;
  std::uint64_t lost_ = 0;
  std::thread thread_;
  std::once_flag join_once_;
};

/// --keep-order: result lines in the order of their jobs, whatever order the jobs finish
/// in. Each job takes a place in line (admit()) before it is submitted; its result is
/// passed on to the sink once every earlier place has had its own, and held until then.
/// Memory stays bounded: admit() blocks while `window` places are taken and not yet
/// passed on, so a slow job at the head makes the reader wait instead of piling up the
/// results of the jobs behind it. Thread-safe.
class result_order {
 public:
  result_order(result_sink& out, std::size_t window) : out_(out), window_(std::max<std::size_t>(window, 1)) {}

  /// The next place in line. Blocks while `window` places are outstanding; nullopt once
  /// close()d.
  [[nodiscard]] std::optional<std::uint64_t> admit(std::uint64_t note = 0);
  /// The `note` given with `place` at admit() (a job's origin, kept here so that the job
  /// itself need not carry it), or 0 once its line is passed on.
  [[nodiscard]] std::uint64_t note(std::uint64_t place) const;
  /// The result of the job at `place`: passed on now, with any held ones it unblocks,
  /// or held.
  void finish(std::uint64_t place, result r, bool integer_id);
  /// A place that gets no line (its job was never submitted): the ones after it go on.
  void skip(std::uint64_t place);
  /// Ends every wait in admit(), now and later.
  void close();

  /// Results held for an earlier place, now, and at most so far.
  [[nodiscard]] std::size_t held() const;
  [[nodiscard]] std::size_t peak_held() const;
  /// Threads waiting in admit() for room.
  [[nodiscard]] std::size_t waiting() const;

 private:
  struct entry {
    bool done = false;
    bool has_line = false;
    bool integer_id = false;
    std::uint64_t note = 0;
    result r;
  };
  entry* find_locked(std::uint64_t place);
  void release_locked();

  result_sink& out_;
  std::size_t window_;
  mutable std::mutex mutex_;
  std::condition_variable room_;
  std::uint64_t head_ = 0;  // the oldest place not passed on
  std::uint64_t next_ = 0;  // the next place to give
  std::deque<entry> places_;  // places_[i] is place head_ + i
  std::size_t held_ = 0, peak_held_ = 0, waiting_ = 0;
  bool closed_ = false;
};

}  // namespace ringmaster::cli
