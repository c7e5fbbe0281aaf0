#include <algorithm>
#include <functional>
#include <ringmaster/cli/id_set.hpp>

namespace ringmaster::cli {

std::uint64_t id_set::fingerprint(std::string_view id) noexcept {
  // FNV-1a, then a strong finaliser (splitmix64) so that the low bits used for the table
  // index are well mixed. 0 marks an empty slot, so it is never a fingerprint.
  std::uint64_t h = 0xcbf29ce484222325ull;
  for (const char c : id) {
    h ^= static_cast<unsigned char>(c);
    h *= 0x100000001b3ull;
  }
  h ^= h >> 30;
  h *= 0xbf58476d1ce4e5b9ull;
  h ^= h >> 27;
  h *= 0x94d049bb133111ebull;
  h ^= h >> 31;
  return h == 0 ? 1 : h;
}

std::uint64_t id_set::as_number(std::string_view id) noexcept {
  // Canonical only ("7", never "07" or "+7"): "07" and "7" are different ids.
  if (id.empty() || id.size() > 8 || (id.size() > 1 && id[0] == '0')) return k_bitmap_limit;
  std::uint64_t n = 0;
  for (const char c : id) {
    if (c < '0' || c > '9') return k_bitmap_limit;
    n = n * 10 + static_cast<std::uint64_t>(c - '0');
  }
  return n < k_bitmap_limit ? n : k_bitmap_limit;
}

bool id_set::insert(std::string_view id) {
  if (const std::uint64_t n = as_number(id); n < k_bitmap_limit) {
    const std::size_t word = static_cast<std::size_t>(n / 64);
    const std::uint64_t bit = std::uint64_t{1} << (n % 64);
    if (word >= bits_.size()) bits_.resize(std::max(word + 1, bits_.size() * 2), 0);
    if (bits_[word] & bit) return false;
    bits_[word] |= bit;
    ++size_;
    return true;
  }
  if (!insert_fingerprint(fingerprint(id))) return false;
  ++size_;
  return true;
}

bool id_set::contains(std::string_view id) const noexcept {
  if (const std::uint64_t n = as_number(id); n < k_bitmap_limit) {
    const std::size_t word = static_cast<std::size_t>(n / 64);
    return word < bits_.size() && (bits_[word] >> (n % 64)) & 1u;
  }
  return contains_fingerprint(fingerprint(id));
}

bool id_set::insert_fingerprint(std::uint64_t f) {
  if ((fingerprints_ + 1) * 2 > table_.size()) {
    // Grow at half full: linear probing stays short.
    std::vector<std::uint64_t> old;
    old.swap(table_);
    table_.assign(old.empty() ? 1024 : old.size() * 2, 0);
    for (const std::uint64_t x : old)
      if (x != 0) {
        std::size_t i = static_cast<std::size_t>(x) & (table_.size() - 1);
        while (table_[i] != 0) i = (i + 1) & (table_.size() - 1);
        table_[i] = x;
      }
  }
  std::size_t i = static_cast<std::size_t>(f) & (table_.size() - 1);
  while (table_[i] != 0) {
    if (table_[i] == f) return false;
    i = (i + 1) & (table_.size() - 1);
  }
  table_[i] = f;
  ++fingerprints_;
  return true;
}

bool id_set::contains_fingerprint(std::uint64_t f) const noexcept {
  if (table_.empty()) return false;
  std::size_t i = static_cast<std::size_t>(f) & (table_.size() - 1);
  while (table_[i] != 0) {
    if (table_[i] == f) return true;
    i = (i + 1) & (table_.size() - 1);
  }
  return false;
}

}  // namespace ringmaster::cli
