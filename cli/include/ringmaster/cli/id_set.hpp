// ringmaster/cli/id_set.hpp — the set of job ids a run has seen, small enough to keep for
// millions of jobs.
//
// Duplicate ids must be found across a whole job file, and --resume must remember every
// id already done: both grow with the input, so the set is compact. Ids that are
// sequence numbers (canonical decimals below 2^26, which is what jobs without an id get)
// cost one bit each; any other id costs one 64-bit fingerprint (about 16 bytes with the
// table's slack). Fingerprints can collide: two distinct ids look equal with probability
// about n^2 / 2^65 for n ids (one in 30 million for a million ids); the price of a
// collision is one job wrongly refused as a duplicate, or wrongly skipped by --resume.
//
// Not thread-safe: one thread owns it.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

namespace ringmaster::cli {

class id_set {
 public:
  /// Adds `id`; false if it was already there.
  bool insert(std::string_view id);
  [[nodiscard]] bool contains(std::string_view id) const noexcept;
  [[nodiscard]] std::size_t size() const noexcept { return size_; }

 private:
  static constexpr std::uint64_t k_bitmap_limit = std::uint64_t{1} << 26;
  static std::uint64_t fingerprint(std::string_view id) noexcept;
  // The id as a sequence number the bitmap holds, or k_bitmap_limit if it is not one.
  static std::uint64_t as_number(std::string_view id) noexcept;
  bool insert_fingerprint(std::uint64_t f);
  [[nodiscard]] bool contains_fingerprint(std::uint64_t f) const noexcept;

  std::vector<std::uint64_t> bits_;   // bit n: the id "n" is in the set
  std::vector<std::uint64_t> table_;  // open addressing, 0 = empty slot
  std::size_t fingerprints_ = 0;
  std::size_t size_ = 0;
};

}  // namespace ringmaster::cli
