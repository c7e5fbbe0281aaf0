// refusal.hpp — how the supervisor refuses a call a caller may handle (errc.hpp).
//
// The dispatcher refuses by throwing refused<Base>: Base is the exception type that
// supervisor.hpp documents for the throwing form (std::invalid_argument for what was
// asked, std::logic_error for the state the supervisor or pool is in), so user code that
// catches those is unchanged; the errc it carries is what the error_code forms
// (supervisor.cpp) report instead. add_pool and scale are called a few times a run, so
// an exception on their refusal path costs nothing that matters, and the checks stay
// written once, in the throwing path.
#pragma once

#include <stdexcept>
#include <string>

#include <ringmaster/supervisor/errc.hpp>
#include <ringmaster/supervisor/options.hpp>

namespace ringmaster::detail {

/// Why a call was refused: the errc of its error_code form, the message of its throwing
/// form. Empty (no message) when nothing was refused.
struct refusal {
  errc code{};
  std::string message;
  [[nodiscard]] bool empty() const noexcept { return message.empty(); }
};

template <class Base>
class refused : public Base {
 public:
  refused(errc code, const std::string& what) : Base(what), code_(code) {}
  [[nodiscard]] errc code() const noexcept { return code_; }

 private:
  errc code_;
};

using invalid_request = refused<std::invalid_argument>;  // what was asked cannot be
using refused_in_state = refused<std::logic_error>;      // not now, or not any more

/// Checks a pool that add_pool is asked for against the option table's library ranges
/// (option_table.hpp): its name, that it has handlers or a command, and each option.
/// Throws invalid_request with add_pool's documented message.
void check_pool_request(const std::string& name, bool has_handlers, const pool_options& o);

/// Checks a worker count that pool::scale is asked for (1 to k_max_workers). Throws
/// invalid_request.
void check_scale_request(const std::string& pool, unsigned workers);

}  // namespace ringmaster::detail
