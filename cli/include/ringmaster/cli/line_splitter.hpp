// ringmaster/cli/line_splitter.hpp — bytes in, lines out: the one line splitter of `run`
// (a file or stdin, through line_reader) and `serve` (each client's socket).
//
// The owner reads into space() and commit()s what it read; next() then hands out whole
// lines in order. A line longer than max_line bytes is refused as soon as that many
// bytes without a newline are held (or when it arrives whole): next() says too_long
// once, and its bytes are dropped up to its newline, so a partial line never holds more
// than max_line bytes. A line handed out stays valid until the next call to space().
//
// Not thread-safe, except bytes_consumed(), which any thread may read (progress).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

namespace ringmaster::cli {

class line_splitter {
 public:
  explicit line_splitter(std::size_t max_line) : max_line_(max_line) {}

  enum class piece : std::uint8_t {
    line,      ///< a whole line (without its '\n')
    too_long,  ///< a line over max_line bytes: counted, its bytes dropped up to its newline
    more,      ///< no whole line held: read more (or, at the end, nothing is left)
  };
  /// The next piece of what is held. With `at_end` (no more bytes will come), a last
  /// line without its newline is handed out too, with `unterminated` set.
  piece next(std::string_view& line, bool& unterminated, bool at_end);

  /// At least `n` bytes to read into, after what is held (earlier lines are forgotten).
  [[nodiscard]] std::span<char> space(std::size_t n);
  /// `n` bytes were read into space().
  void commit(std::size_t n) noexcept { end_ += n; }

  /// Lines longer than this are refused from now on.
  void set_max_line(std::size_t max_line) noexcept { max_line_ = max_line; }
  [[nodiscard]] std::size_t max_line() const noexcept { return max_line_; }
  /// Lines handed out (too_long ones included), from 1.
  [[nodiscard]] std::uint64_t line_number() const noexcept { return line_number_; }
  /// The bytes held and not handed out yet (none of a line being dropped).
  [[nodiscard]] std::string_view held() const noexcept { return {buf_.data() + begin_, end_ - begin_}; }
  /// Bytes handed out or dropped so far, newlines included. Thread-safe.
  [[nodiscard]] std::uint64_t bytes_consumed() const noexcept { return consumed_.load(std::memory_order_relaxed); }

 private:
  void consume(std::size_t n) noexcept { consumed_.fetch_add(n, std::memory_order_relaxed); }

  std::size_t max_line_;
  std::vector<char> buf_;
  std::size_t begin_ = 0, end_ = 0;  // held bytes are buf_[begin_, end_)
  std::size_t scanned_ = 0;          // bytes from begin_ known to hold no newline
  bool dropping_ = false;            // inside a line over max_line, refused already
  std::uint64_t line_number_ = 0;
  std::atomic<std::uint64_t> consumed_{0};
};

}  // namespace ringmaster::cli
