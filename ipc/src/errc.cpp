#include <ringmaster/ipc/errc.hpp>

namespace ringmaster::ipc {
namespace {

class ipc_category_impl final : public std::error_category {
 public:
  const char* name() const noexcept override { return "ringmaster.ipc"; }

  std::string message(int value) const override {
    switch (static_cast<errc>(value)) {
      case errc::empty: return "no message available";
      case errc::full: return "not enough free space in the ring";
      case errc::message_too_large: return "message larger than the ring's max_message";
      case errc::corrupt: return "ring protocol violated by the peer (index, length or sequence out of bounds)";
      case errc::timed_out: return "timed out";
      case errc::bad_layout: return "memory does not hold a ring of this version and these options";
      case errc::in_use: return "ring still carries a previous peer's traffic (reset it before attaching)";
      case errc::bad_options: return "invalid ring options";
      case errc::bad_segment: return "shared-memory segment has the wrong owner, header or size";
    }
    return "unknown ringmaster.ipc error " + std::to_string(value);
  }
};

}  // namespace

const std::error_category& ipc_category() noexcept {
  static const ipc_category_impl category;
  return category;
}

}  // namespace ringmaster::ipc
