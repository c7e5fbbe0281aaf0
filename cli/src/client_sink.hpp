// Internal to `ringmaster serve`: the result sink of one client of the socket. Results
// are pushed by completion callbacks on the dispatcher thread (and by the server thread
// for its own rejections) and taken, as ready-made lines, by the server thread, which
// writes them to the client's socket when it can. Pushing never blocks: the lines wait
// here, and the client's window (k_window) bounds how many there can be.
#pragma once

#include <cstdint>
#include <mutex>
#include <ringmaster/cli/result_sink.hpp>
#include <string>

namespace ringmaster::cli::detail {

class client_sink final : public result_sink {
 public:
  /// `wake_fd` (an eventfd, not owned) is written once whenever lines arrive with none
  /// waiting, to wake the server thread.
  explicit client_sink(int wake_fd) : wake_fd_(wake_fd) {}

  void push(result r, bool may_wait = false, bool integer_id = false) override;
  /// The client went: later results are dropped.
  void close() override;
  [[nodiscard]] std::string error() const override { return {}; }

  /// Counts of the results pushed so far.
  struct counts {
    std::uint64_t results = 0, ok = 0, failed = 0;
  };
  /// Appends the lines pushed since the last take to `out` and gives the counts; false
  /// (nothing changed) if none came.
  bool take(std::string& out, counts& seen);

 private:
  const int wake_fd_;
  std::mutex mutex_;
  std::string lines_;
  counts counts_;
  bool closed_ = false;
  bool flagged_ = false;  // the server was woken for what is here
};

}  // namespace ringmaster::cli::detail
