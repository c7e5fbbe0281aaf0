#include <cstring>
#include <ringmaster/cli/line_splitter.hpp>

namespace ringmaster::cli {

line_splitter::piece line_splitter::next(std::string_view& line, bool& unterminated, bool at_end) {
  unterminated = false;
  for (;;) {
    const char* start = buf_.data() + begin_;
    const std::size_t held = end_ - begin_;
    if (const auto* nl = held > scanned_ ? static_cast<const char*>(std::memchr(start + scanned_, '\n', held - scanned_))
                                         : nullptr) {
      const auto len = static_cast<std::size_t>(nl - start);
      begin_ += len + 1;
      scanned_ = 0;
      consume(len + 1);
      if (dropping_) {  // the end of a line refused already
        dropping_ = false;
        continue;
      }
      ++line_number_;
      if (len > max_line_) return piece::too_long;  // arrived whole, in one read: as long, and as refused
      line = std::string_view(start, len);
      return piece::line;
    }
    scanned_ = held;
    if (dropping_ || held > max_line_) {
      // Too long: forget what is held of it (memory stays bounded) and drop up to its end.
      consume(held);
      begin_ = end_ = scanned_ = 0;
      if (dropping_) {
        if (at_end) dropping_ = false;
        return piece::more;
      }
      ++line_number_;
      dropping_ = !at_end;
      return piece::too_long;
    }
    if (at_end && held > 0) {
      // A last line without its newline: handed out, marked, so that the caller can tell
      // a file cut short from one whose writer merely omitted the final newline.
      ++line_number_;
      line = std::string_view(start, held);
      consume(held);
      begin_ = end_;
      scanned_ = 0;
      unterminated = true;
      return piece::line;
    }
    return piece::more;
  }
}

std::span<char> line_splitter::space(std::size_t n) {
  if (begin_ > 0) {  // keep what is held at the front
    std::memmove(buf_.data(), buf_.data() + begin_, end_ - begin_);
    end_ -= begin_;
    begin_ = 0;
  }
  if (buf_.size() - end_ < n) buf_.resize(end_ + n);
  return {buf_.data() + end_, buf_.size() - end_};
}

}  // namespace ringmaster::cli
