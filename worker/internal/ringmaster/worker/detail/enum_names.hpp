// ringmaster/worker/detail/enum_names.hpp — ties a name table to its enum at compile time.
//
// Each of ringmaster's enums with names (error_kind, worker_state, restart_type,
// restart_strategy) has a table of names indexed by value. A static_assert with
// names_every_enumerator<E>(table) beside the table fails the build when an enumerator
// is added, removed or renumbered without the table following: the table must have one
// name for each of the values 0 .. N-1, and N must not be a value. For ringmaster's own
// sources only.
#pragma once

#include <array>
#include <cstddef>
#include <string_view>
#include <utility>

namespace ringmaster::detail {

/// Whether the constant V is one of its enum's enumerators. gcc and clang write an
/// enumerator by name in __PRETTY_FUNCTION__ ("V = ringmaster::worker_state::busy") and
/// any other value as a cast ("V = (ringmaster::worker_state)8"); magic_enum's trick.
template <auto V>
constexpr bool is_enumerator() noexcept {
  constexpr std::string_view signature = __PRETTY_FUNCTION__;
  constexpr auto at = signature.rfind("V = ");
  static_assert(at != std::string_view::npos, "unknown compiler: cannot check an enum's name table");
  return signature[at + 4] != '(';
}

template <class E, std::size_t... I>
constexpr bool are_enumerators(std::index_sequence<I...>) noexcept {
  return (is_enumerator<static_cast<E>(I)>() && ...);
}

/// True when a table of N names fits E exactly: 0 .. N-1 are E's enumerators and N is not.
template <class E, std::size_t N>
constexpr bool names_every_enumerator(const std::array<std::string_view, N>&) noexcept {
  return are_enumerators<E>(std::make_index_sequence<N>{}) && !is_enumerator<static_cast<E>(N)>();
}

}  // namespace ringmaster::detail
