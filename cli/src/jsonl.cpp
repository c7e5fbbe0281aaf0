#include <algorithm>
#include <array>
#include <charconv>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <ringmaster/cli/jsonl.hpp>
#include <ringmaster/supervisor/options.hpp>
#include <ringmaster/worker/detail/json_depth.hpp>

namespace ringmaster::cli {
namespace {

// Length of the valid UTF-8 sequence starting at text[i], or 0 if it is not one.
std::size_t utf8_sequence(std::string_view text, std::size_t i) noexcept {
  const auto byte = [&](std::size_t k) { return static_cast<unsigned char>(text[k]); };
  const unsigned char c = byte(i);
  if (c < 0x80) return 1;
  std::size_t n = 0;
  char32_t cp = 0;
  if (c >= 0xC2 && c <= 0xDF) {
    n = 2;
    cp = c & 0x1Fu;
  } else if (c >= 0xE0 && c <= 0xEF) {
    n = 3;
    cp = c & 0x0Fu;
  } else if (c >= 0xF0 && c <= 0xF4) {
    n = 4;
    cp = c & 0x07u;
  } else {
    return 0;  // a continuation byte, or a lead byte of an overlong or too large form
  }
  if (i + n > text.size()) return 0;
  for (std::size_t k = 1; k < n; ++k) {
    const unsigned char cc = byte(i + k);
    if ((cc & 0xC0u) != 0x80u) return 0;
    cp = (cp << 6) | (cc & 0x3Fu);
  }
  if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000)) return 0;  // overlong
  if (cp >= 0xD800 && cp <= 0xDFFF) return 0;                         // surrogate
  if (cp > 0x10FFFF) return 0;
  return n;
}

constexpr std::string_view k_hex = "0123456789abcdef";
constexpr std::string_view k_base64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

std::string_view json_type_name(const nlohmann::json& v) {
  switch (v.type()) {
    case nlohmann::json::value_t::null: return "null";
    case nlohmann::json::value_t::object: return "an object";
    case nlohmann::json::value_t::array: return "an array";
    case nlohmann::json::value_t::string: return "a string";
    case nlohmann::json::value_t::boolean: return "a boolean";
    case nlohmann::json::value_t::number_float: return "a float";
    default: return "an integer";
  }
}

// nlohmann's messages start with "[json.exception.parse_error.101] parse error at line 1,
// column 5: ": the line is always 1 here and the tag means nothing to a user. They quote
// the token read ("number overflow parsing '1234...'"), which may be a megabyte long.
std::string tidy_parse_error(std::string what);

}  // namespace

namespace {
std::string tidy_parse_error(std::string what) {
  if (const auto at = what.find("column "); at != std::string::npos) return excerpt(std::string_view(what).substr(at));
  if (const auto tag = what.find("] "); tag != std::string::npos) return excerpt(std::string_view(what).substr(tag + 2));
  return excerpt(what);
}
}  // namespace
std::optional<std::string> too_deep(std::string_view json) {
  const auto at = ringmaster::detail::json_too_deep(json);
  if (!at) return std::nullopt;
  return "nests arrays and objects more than " + std::to_string(ringmaster::detail::k_max_json_depth) +
         " deep (the limit) at column " + std::to_string(*at + 1);
}

std::optional<std::size_t> first_invalid_utf8(std::string_view text) noexcept {
  for (std::size_t i = 0; i < text.size();) {
    // Fast path: ASCII, eight bytes at a time would be faster still, but lines are short.
    if (static_cast<unsigned char>(text[i]) < 0x80) {
      ++i;
      continue;
    }
    const std::size_t n = utf8_sequence(text, i);
    if (n == 0) return i;
    i += n;
  }
  return std::nullopt;
}

void append_json_string(std::string& out, std::string_view text) {
  out += '"';
  std::size_t run = 0;  // start of the pending run of bytes copied as they are
  for (std::size_t i = 0; i < text.size();) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
      ++i;
      continue;
    }
    if (c >= 0x80) {
      const std::size_t n = utf8_sequence(text, i);
      if (n > 0) {
        i += n;
        continue;
      }
    }
    out.append(text.substr(run, i - run));
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default:
        if (c < 0x20) {
          out += "\\u00";
          out += k_hex[c >> 4];
          out += k_hex[c & 0xF];
        } else {
          out += "\xEF\xBF\xBD";  // U+FFFD for a byte that is not UTF-8
        }
    }
    ++i;
    run = i;
  }
  out.append(text.substr(run));
  out += '"';
}

namespace {

// The longest prefix of `text` of at most `limit` bytes that ends at a character boundary.
std::size_t utf8_cut(std::string_view text, std::size_t limit) noexcept {
  std::size_t cut = std::min(text.size(), limit);
  while (cut > 0 && cut < text.size() && (static_cast<unsigned char>(text[cut]) & 0xC0u) == 0x80u) --cut;
  return cut;
}

}  // namespace

std::string base64_encode(std::string_view bytes) {
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 3 <= bytes.size(); i += 3) {
    const auto n = static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[i])) << 16 |
                   static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[i + 1])) << 8 |
                   static_cast<unsigned char>(bytes[i + 2]);
    for (const int shift : {18, 12, 6, 0}) out += k_base64[(n >> shift) & 63u];
  }
  if (const std::size_t rest = bytes.size() - i; rest > 0) {
    std::uint32_t n = static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[i])) << 16;
    if (rest == 2) n |= static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[i + 1])) << 8;
    out += k_base64[(n >> 18) & 63u];
    out += k_base64[(n >> 12) & 63u];
    out += rest == 2 ? k_base64[(n >> 6) & 63u] : '=';
    out += '=';
  }
  return out;
}

std::optional<std::string> base64_decode(std::string_view text, std::size_t& bad_at) {
  std::string out;
  out.reserve(text.size() / 4 * 3);
  std::uint32_t n = 0;
  int bits = 0;
  std::size_t end = text.size();
  // Padding: "=" or "==" at the very end only, and only where it completes a quantum.
  while (end > 0 && text[end - 1] == '=' && text.size() - end < 2) --end;
  if (end < text.size() && text.size() % 4 != 0) {
    bad_at = end;
    return std::nullopt;
  }
  for (std::size_t i = 0; i < end; ++i) {
    const auto at = k_base64.find(text[i]);
    if (at == std::string_view::npos) {
      bad_at = i;
      return std::nullopt;
    }
    n = (n << 6) | static_cast<std::uint32_t>(at);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((n >> bits) & 0xFFu);
    }
  }
  // Leftover bits must be zero and fewer than 6: "A" alone (6 bits) encodes nothing.
  if (bits >= 6 || (n & ((1u << bits) - 1)) != 0) {
    bad_at = end == 0 ? 0 : end - 1;
    return std::nullopt;
  }
  return out;
}

std::string excerpt(std::string_view text, std::size_t limit) {
  if (text.size() <= limit) return std::string(text);
  return std::string(text.substr(0, utf8_cut(text, limit))) + "... (" + std::to_string(text.size()) + " bytes)";
}

void append_quoted_excerpt(std::string& out, std::string_view text, std::size_t limit) {
  if (text.size() <= limit) return append_json_string(out, text);
  append_json_string(out, text.substr(0, utf8_cut(text, limit)));
  out += "... (" + std::to_string(text.size()) + " bytes)";
}

namespace {

// The common job line, parsed without building a DOM: an object of at most the four known
// keys, each once, whose strings have no escapes and whose numbers are plain integers
// (their compact JSON is their text). Returns false, with `out` in any state, for anything
// else, valid or not: the general parser then decides, and words any error. Job lines are
// the CLI's hot path (a DOM parse was 35-45% of the supervisor's instructions per tiny job).
class fast_job_line {
 public:
  explicit fast_job_line(std::string_view line) noexcept : s_(line) {}

  bool parse(parsed_job& out) {
    unsigned seen = 0;
    skip_space();
    if (!eat('{')) return false;
    skip_space();
    if (eat('}')) return false;  // no "type": the general parser words it
    for (;;) {
      std::string_view key;
      if (!plain_string(key)) return false;
      skip_space();
      if (!eat(':')) return false;
      skip_space();
      const unsigned bit = key == "id" ? 1u : key == "pool" ? 2u : key == "type" ? 4u : key == "payload" ? 8u : 0u;
      if (bit == 0 || (seen & bit) != 0) return false;  // unknown or repeated key
      seen |= bit;
      std::string_view text;
      bool is_string = false;
      if (peek() == '"') {
        if (!plain_string(text)) return false;
        is_string = true;
      } else if (!plain_integer(text)) {
        return false;
      }
      switch (bit) {
        case 1:
          if (is_string ? text.empty() || text.size() > k_max_id : false) return false;
          out.id.assign(text);
          out.integer_id = !is_string;
          break;
        case 2:
        case 4:
          if (!is_string || text.empty()) return false;
          (bit == 2 ? out.pool : out.type).assign(text);
          break;
        default: out.payload.assign(text); break;
      }
      skip_space();
      if (eat('}')) break;
      if (!eat(',')) return false;
      skip_space();
    }
    skip_space();
    return i_ == s_.size() && (seen & 4u) != 0;
  }

 private:
  [[nodiscard]] char peek() const noexcept { return i_ < s_.size() ? s_[i_] : '\0'; }
  bool eat(char c) noexcept {
    if (peek() != c) return false;
    ++i_;
    return true;
  }
  void skip_space() noexcept {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\n' || s_[i_] == '\r')) ++i_;
  }
  // A string of valid UTF-8 with no escapes and no control characters. (Outside strings a
  // byte that is not ASCII fails the parse, so the whole line is checked as it goes.)
  bool plain_string(std::string_view& text) noexcept {
    if (!eat('"')) return false;
    const std::size_t start = i_;
    std::size_t i = i_;  // a local index: the loop stays in registers
    const std::size_t size = s_.size();
    const char* const data = s_.data();
    while (i < size) {
      const auto c = static_cast<unsigned char>(data[i]);
      if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
        ++i;
        continue;
      }
      if (c == '"') {
        text = s_.substr(start, i - start);
        i_ = i + 1;
        return true;
      }
      if (c < 0x80) return false;  // an escape or a control character
      const std::size_t n = utf8_sequence(s_, i);
      if (n == 0) return false;
      i += n;
    }
    return false;
  }
  // -?[1-9][0-9]{0,17} or 0: fits an int64, and nlohmann's dump of it is the same text.
  bool plain_integer(std::string_view& text) noexcept {
    const std::size_t start = i_;
    eat('-');
    const std::size_t digits = i_;
    while (i_ < s_.size() && s_[i_] >= '0' && s_[i_] <= '9') ++i_;
    const std::size_t n = i_ - digits;
    if (n == 0 || n > 18 || (n > 1 && s_[digits] == '0')) return false;
    if (n == 1 && s_[digits] == '0' && digits != start) return false;  // "-0" dumps as "0"
    if (i_ < s_.size() && (s_[i_] == '.' || s_[i_] == 'e' || s_[i_] == 'E')) return false;
    text = s_.substr(start, i_ - start);
    return true;
  }

  std::string_view s_;
  std::size_t i_ = 0;
};

}  // namespace

std::string parse_job_line(std::string_view line, parsed_job& out) {
  out.id.clear();
  out.integer_id = false;
  out.pool.clear();
  out.type.clear();
  out.payload.clear();
  if (fast_job_line(line).parse(out)) return {};
  return detail::parse_job_line_general(line, out);
}

std::string detail::parse_job_line_general(std::string_view line, parsed_job& out) {
  out.id.clear();
  out.integer_id = false;
  out.pool.clear();
  out.type.clear();
  out.payload.clear();
  if (const auto bad = first_invalid_utf8(line))
    return "not valid UTF-8 (byte 0x" + std::string{k_hex[static_cast<unsigned char>(line[*bad]) >> 4]} +
           std::string{k_hex[static_cast<unsigned char>(line[*bad]) & 0xF]} + " at column " + std::to_string(*bad + 1) + ")";
  // Before the parse: a line nesting 100,000 deep overflowed the stack (SIGSEGV) of the
  // run and of serve. The fast path above accepts no nesting at all, so it needs no check.
  if (const auto deep = too_deep(line)) return *deep;
  nlohmann::json doc;
  try {
    doc = nlohmann::json::parse(line);
  } catch (const nlohmann::json::exception& e) {
    // parse_error, and out_of_range for a number too large for a double (1e999): found
    // by fuzz/job_line_fuzz.cpp, it ended the run through std::terminate.
    return "not valid JSON: " + tidy_parse_error(e.what());
  }
  if (!doc.is_object()) return "expected a JSON object, got " + std::string(json_type_name(doc));

  // The id first, so that a line rejected for another reason still carries it.
  std::string problem;
  if (auto it = doc.find("id"); it != doc.end()) {
    if (it->is_string() && !it->get_ref<const std::string&>().empty() &&
        it->get_ref<const std::string&>().size() <= k_max_id)
      out.id = it->get_ref<const std::string&>();
    else if (it->is_number_integer()) {
      out.id = it->dump();
      out.integer_id = true;
    }
    else
      problem = "\"id\" must be a non-empty string of at most " + std::to_string(k_max_id) + " bytes, or an integer; got " +
                std::string(json_type_name(*it));
  }
  if (!problem.empty()) return problem;
  for (auto it = doc.begin(); it != doc.end(); ++it) {
    const std::string& key = it.key();
    if (key == "id") continue;
    if (key == "pool") {
      if (!it->is_string() || it->get_ref<const std::string&>().empty())
        return "\"pool\" must be a pool's name (a non-empty string), got " + std::string(json_type_name(*it));
      out.pool = it->get_ref<const std::string&>();
    } else if (key == "type") {
      if (!it->is_string() || it->get_ref<const std::string&>().empty())
        return "\"type\" must be a job type (a non-empty string), got " + std::string(json_type_name(*it));
      out.type = it->get_ref<const std::string&>();
    } else if (key == "payload") {
      if (doc.contains("payload_b64")) return "\"payload\" and \"payload_b64\" exclude each other: expected one";
      out.payload = it->is_string() ? it->get<std::string>() : it->dump();
    } else if (key == "payload_b64") {
      // Bytes that are not UTF-8 cannot be a JSON string's characters: they travel as
      // base64 and reach the handler decoded.
      if (!it->is_string())
        return "\"payload_b64\" must be a base64 string, got " + std::string(json_type_name(*it));
      std::size_t bad = 0;
      auto bytes = base64_decode(it->get_ref<const std::string&>(), bad);
      if (!bytes)
        return "\"payload_b64\" must be base64 (A-Z a-z 0-9 + /, \"=\" padding), got a bad character or padding at "
               "offset " + std::to_string(bad);
      out.payload = std::move(*bytes);
    } else {
      std::string k;
      append_quoted_excerpt(k, key);
      return "unknown key " + k + " (a job line has \"id\", \"pool\", \"type\" and \"payload\" or \"payload_b64\")";
    }
  }
  if (out.type.empty()) return "missing \"type\" (the job type, a string)";
  return {};
}

void append_result_line(std::string& out, const result& r, bool integer_id) {
  using namespace std::string_view_literals;
  const auto append_integer = [&out](auto n) {
    std::array<char, 24> buf{};
    const auto [end, ec] = std::to_chars(buf.data(), buf.data() + buf.size(), n);
    out.append(buf.data(), ec == std::errc{} ? end : buf.data());
  };
  out.reserve(out.size() + 96 + r.id.size() + r.value.size());
  out += R"({"id": )"sv;
  // An integer id is its canonical text (the parser's dump); anything else is quoted, so
  // that the line stays JSON whatever a caller passes.
  const bool as_integer = integer_id && !r.id.empty() && r.id.size() <= 20 &&
                          std::all_of(r.id.begin(), r.id.end(), [](char c) { return (c >= '0' && c <= '9') || c == '-'; });
  if (as_integer)
    out += r.id;
  else
    append_json_string(out, r.id);
  if (r.ok() && first_invalid_utf8(r.value)) {
    // Bytes (an image, a compressed blob): base64, not U+FFFD in place of each bad byte.
    out += R"(, "status": "ok", "result_b64": ")"sv;
    out += base64_encode(r.value);
    out += '"';
  } else if (r.ok()) {
    out += R"(, "status": "ok", "result": )"sv;
    append_json_string(out, r.value);
  } else {
    out += R"(, "status": "failed", "error": {"kind": ")"sv;
    out += to_string(r.error);
    out += R"(", "message": )"sv;
    append_json_string(out, r.value);
    out += '}';
  }
  out += R"(, "attempts": )"sv;
  append_integer(r.attempts);
  if (r.worker >= 0) {
    out += R"(, "worker": )"sv;
    append_integer(r.worker);
    // Milliseconds to the microsecond, trailing zeros dropped but one kept after the
    // point: "12.5", "3.0", "0.042". Readable, and still a float to a reader.
    const double ms = r.ms >= 0 && r.ms < 1e12 ? r.ms : 0.0;
    const auto us = static_cast<std::uint64_t>(ms * 1000.0 + 0.5);
    out += R"(, "ms": )"sv;
    append_integer(us / 1000);
    std::array<char, 4> frac{'.', static_cast<char>('0' + us / 100 % 10), static_cast<char>('0' + us / 10 % 10),
                             static_cast<char>('0' + us % 10)};
    std::size_t n = frac.size();
    while (n > 2 && frac[n - 1] == '0') --n;
    out.append(frac.data(), n);
  }
  out += "}\n"sv;
}

std::optional<result_line_view> read_result_line(std::string_view line) {
  if (ringmaster::detail::json_too_deep(line)) return std::nullopt;  // not one of ours
  const auto doc = nlohmann::json::parse(line, nullptr, false);
  if (doc.is_discarded() || !doc.is_object()) return std::nullopt;
  const auto id = doc.find("id");
  const auto status = doc.find("status");
  if (id == doc.end() || !(id->is_string() || id->is_number_integer()) || status == doc.end() || !status->is_string())
    return std::nullopt;
  return result_line_view{id->is_string() ? id->get<std::string>() : id->dump(),
                          status->get_ref<const std::string&>() == "ok"};
}

}  // namespace ringmaster::cli
