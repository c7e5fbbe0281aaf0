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
// that the dispatcher never waits on a sink that cannot write.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
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
  /// rejections cannot grow memory without bound. Ignored after close().
  virtual void push(result r, bool may_wait = false) = 0;
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
  /// when a write fails.
  fd_result_sink(int fd, std::string name, std::function<void(const std::function<void()>&)> around_write = {},
                 std::function<void(const std::string&)> on_error = {});
  ~fd_result_sink() override;  ///< close()s.
  fd_result_sink(const fd_result_sink&) = delete;
  fd_result_sink& operator=(const fd_result_sink&) = delete;

  void push(result r, bool may_wait = false) override;
  void close() override;
  [[nodiscard]] std::string error() const override;
  /// Lines written so far.
  [[nodiscard]] std::uint64_t lines_written() const;

 private:
  void run();
  bool write_all(const std::string& bytes);

  static constexpr std::size_t k_soft_limit = 65536;  // queued lines before may_wait waits
  static constexpr std::size_t k_batch = 4096;        // lines that make a batch worth writing now
  static constexpr std::chrono::microseconds k_gather{1000};
  int fd_;
  std::string name_;
  std::function<void(const std::function<void()>&)> around_write_;
  std::function<void(const std::string&)> on_error_;
  mutable std::mutex mutex_;
  std::condition_variable wake_, room_;
  std::vector<result> queue_;
  bool closing_ = false;
  bool idle_ = false;  // the writer waits for lines, with none queued
  std::string error_;
  std::uint64_t written_ = 0;
  std::thread thread_;
  std::once_flag join_once_;
};

}  // namespace ringmaster::cli
