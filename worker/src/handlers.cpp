#include <mutex>
#include <ringmaster/worker/detail/handlers_access.hpp>
#include <ringmaster/worker/detail/wire.hpp>
#include <ringmaster/worker/handlers.hpp>
#include <stdexcept>

namespace ringmaster {
namespace {

// Every live handlers object of the process, by registry id. A forked worker inherits a
// copy of this table as it was at fork, which is how it finds its pool's handlers.
struct registry {
  std::mutex mutex;
  std::vector<const handlers*> entries;  // index = id; nullptr once destroyed
};

registry& the_registry() {
  static registry r;
  return r;
}

}  // namespace

handlers::handlers() {
  auto& r = the_registry();
  std::lock_guard lock(r.mutex);
  id_ = static_cast<std::uint32_t>(r.entries.size());
  r.entries.push_back(this);
}

handlers::~handlers() {
  auto& r = the_registry();
  std::lock_guard lock(r.mutex);
  r.entries[id_] = nullptr;
}

const handlers* detail::handlers_access::lookup(std::uint32_t id) noexcept {
  auto& r = the_registry();
  std::lock_guard lock(r.mutex);
  return id < r.entries.size() ? r.entries[id] : nullptr;
}

handlers& handlers::on(std::string type, handler fn) {
  if (type.empty()) throw std::invalid_argument("handler type must not be empty");
  if (type.size() > wire::k_max_name)
    throw std::invalid_argument("handler type longer than " + std::to_string(wire::k_max_name) + " bytes");
  if (!fn) throw std::invalid_argument("handler for '" + type + "' is empty");
  if (table_.count(type)) throw std::invalid_argument("a handler for '" + type + "' is already registered");
  table_.emplace(std::move(type), std::move(fn));
  return *this;
}

handlers& handlers::on_start(std::function<void(int)> fn) {
  on_start_ = std::move(fn);
  return *this;
}

handlers& handlers::on_stop(std::function<void(int)> fn) {
  on_stop_ = std::move(fn);
  return *this;
}

const handler* handlers::find(std::string_view type) const noexcept {
  auto it = table_.find(type);
  if (it == table_.end()) it = table_.find(std::string_view());  // handlers_access::catch_all
  return it == table_.end() ? nullptr : &it->second;
}

std::vector<std::string> handlers::names() const {
  std::vector<std::string> out;
  out.reserve(table_.size());
  for (const auto& [name, fn] : table_) out.push_back(name);
  return out;
}

std::uint64_t detail::handlers_access::fingerprint(const handlers& hs) noexcept {
  std::uint64_t h = 0xcbf29ce484222325ull;  // FNV-1a over the sorted names
  for (const auto& [name, fn] : hs.table_) {
    for (unsigned char c : name) h = (h ^ c) * 0x100000001b3ull;
    h = (h ^ 0xff) * 0x100000001b3ull;
  }
  return h;
}

}  // namespace ringmaster
