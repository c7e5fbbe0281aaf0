#include "client_sink.hpp"

#include <unistd.h>

#include <ringmaster/cli/jsonl.hpp>

namespace ringmaster::cli::detail {

void client_sink::push(result r, bool /*may_wait*/, bool integer_id) {
  std::lock_guard lock(mutex_);
  if (closed_) return;
  append_result_line(lines_, r, integer_id);
  ++counts_.results;
  ++(r.ok() ? counts_.ok : counts_.failed);
  if (!flagged_) {
    flagged_ = true;
    const std::uint64_t one = 1;
    (void)!::write(wake_fd_, &one, sizeof one);
  }
}

void client_sink::close() {
  std::lock_guard lock(mutex_);
  closed_ = true;
}

bool client_sink::take(std::string& out, counts& seen) {
  std::lock_guard lock(mutex_);
  if (!flagged_) return false;
  flagged_ = false;
  out += lines_;
  lines_.clear();
  seen = counts_;
  return true;
}

}  // namespace ringmaster::cli::detail
