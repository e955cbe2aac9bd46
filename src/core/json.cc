// Copyright 2026 The libcdp Authors.

#include "cdp/json.h"

#include <simdjson.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <optional>
#include <vector>

#include "core/json_internal.h"
#include "fmt/format.h"

namespace cdp {

namespace {

const std::string kEmptyString;
const std::vector<Json> kEmptyArray;
const std::vector<Json::Member> kEmptyObject;

// Converts a simdjson DOM element. Field paths are built only on the error path, by each frame prefixing its key.
Status Convert(simdjson::dom::element el, int depth, const ParseLimits& limits, Json* out) {
  using simdjson::dom::element_type;
  switch (el.type()) {
    case element_type::ARRAY: {
      if (depth > limits.max_depth) {
        return Status::InvalidArgument(fmt::format("JSON nested deeper than {} levels", limits.max_depth));
      }
      *out = Json::Array();
      auto& items = out->items();
      size_t i = 0;
      simdjson::dom::array array;
      if (el.get_array().get(array)) return Status::Internal("simdjson: not an array");
      for (simdjson::dom::element child : array) {
        items.emplace_back();
        Status st = Convert(child, depth + 1, limits, &items.back());
        if (!st.ok()) return st.WithFieldPrefix(fmt::format("[{}]", i));
        ++i;
      }
      return Status::OK();
    }
    case element_type::OBJECT: {
      if (depth > limits.max_depth) {
        return Status::InvalidArgument(fmt::format("JSON nested deeper than {} levels", limits.max_depth));
      }
      *out = Json::Object();
      auto& members = out->members();
      simdjson::dom::object object;
      if (el.get_object().get(object)) return Status::Internal("simdjson: not an object");
      for (auto field : object) {
        std::string_view key = field.key;
        Json value;
        Status st = Convert(field.value, depth + 1, limits, &value);
        if (!st.ok()) return st.WithFieldPrefix(key);
        // Duplicate keys: the last one wins, as in most JSON parsers.
        if (Json* existing = out->Find(key)) {
          *existing = std::move(value);
        } else {
          members.emplace_back(std::string(key), std::move(value));
        }
      }
      return Status::OK();
    }
    case element_type::INT64:
      *out = Json(el.get_int64().value_unsafe());
      return Status::OK();
    case element_type::UINT64:
      *out = Json(el.get_uint64().value_unsafe());
      return Status::OK();
    case element_type::DOUBLE:
      *out = Json(el.get_double().value_unsafe());
      return Status::OK();
    case element_type::STRING:
      *out = Json(el.get_string().value_unsafe());
      return Status::OK();
    case element_type::BOOL:
      *out = Json(el.get_bool().value_unsafe());
      return Status::OK();
    case element_type::NULL_VALUE:
      *out = Json();
      return Status::OK();
  }
  return Status::Internal("unknown JSON element type");
}

}  // namespace

namespace internal {

const char* PaddedCopy(std::string_view text, std::string* reused, std::string* own) {
  constexpr size_t kMaxReused = 1u << 20;
  std::string* buffer = text.size() <= kMaxReused ? reused : own;
  buffer->resize(text.size() + simdjson::SIMDJSON_PADDING);
  std::memcpy(buffer->data(), text.data(), text.size());
  return buffer->data();
}

void AppendJsonString(std::string_view s, std::string* out) {
  const char* p = s.data();
  const size_t n = s.size();
  uint64_t high = 0;  // not needed here
  const size_t start = FirstToEscape(p, n, &high);
  if (out->capacity() - out->size() < n + 2) out->reserve(out->size() + n + 2);
  out->push_back('"');
  if (start == n) {  // nothing to escape, the common case: one copy
    out->append(p, n);
    out->push_back('"');
    return;
  }
  size_t run = 0;
  for (size_t i = start; i < n; ++i) {
    unsigned char c = static_cast<unsigned char>(p[i]);
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    out->append(p + run, i - run);
    run = i + 1;
    switch (c) {
      case '"':
        out->append("\\\"");
        break;
      case '\\':
        out->append("\\\\");
        break;
      case '\n':
        out->append("\\n");
        break;
      case '\r':
        out->append("\\r");
        break;
      case '\t':
        out->append("\\t");
        break;
      case '\b':
        out->append("\\b");
        break;
      case '\f':
        out->append("\\f");
        break;
      default: {
        static const char* kHex = "0123456789abcdef";
        char buf[6] = {'\\', 'u', '0', '0', kHex[c >> 4], kHex[c & 15]};
        out->append(buf, 6);
      }
    }
  }
  out->append(p + run, n - run);
  out->push_back('"');
}

Status JsonFromElement(simdjson::dom::element el, int depth, const ParseLimits& limits, Json* out) {
  return Convert(el, depth, limits, out);
}

}  // namespace internal

namespace {

void EscapeTo(std::string_view s, std::string* out) { internal::AppendJsonString(s, out); }

}  // namespace

struct Json::SharedString {
  explicit SharedString(std::string s) : value(std::move(s)) {}
  std::atomic<uint32_t> refs{1};
  const std::string value;
};

Json::Json(std::string s) : type_(Type::kString), s_(new SharedString(std::move(s))) {}

void Json::ReleaseSlow() noexcept {
  switch (type_) {
    case Type::kString:
      if (s_->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) delete s_;
      break;
    case Type::kArray:
      delete a_;
      break;
    case Type::kObject:
      delete o_;
      break;
    default:
      break;
  }
}

Json::Json(uint64_t v) : i_(0) {
  if (v <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
    type_ = Type::kInt;
    i_ = static_cast<int64_t>(v);
  } else {
    type_ = Type::kDouble;
    d_ = static_cast<double>(v);
  }
}

Json::Json(const Json& other) : type_(Type::kNull), i_(0) {
  switch (other.type_) {
    case Type::kString:
      other.s_->refs.fetch_add(1, std::memory_order_relaxed);
      s_ = other.s_;
      break;
    case Type::kArray:
      a_ = new std::vector<Json>(*other.a_);
      break;
    case Type::kObject:
      o_ = new std::vector<Member>(*other.o_);
      break;
    default:
      i_ = other.i_;
      break;
  }
  type_ = other.type_;  // last: a throwing copy above leaves this a null that owns nothing
}

Json& Json::operator=(const Json& other) {
  if (this != &other) {
    Json copy(other);
    *this = std::move(copy);
  }
  return *this;
}

namespace {

// Whether `token` is a JSON number (RFC 8259: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?).
bool IsJsonNumber(std::string_view token) {
  size_t i = 0;
  auto digits = [&] {
    const size_t start = i;
    while (i < token.size() && token[i] >= '0' && token[i] <= '9') ++i;
    return i > start;
  };
  if (i < token.size() && token[i] == '-') ++i;
  if (i < token.size() && token[i] == '0') {
    ++i;
  } else if (!digits()) {
    return false;
  }
  if (i < token.size() && token[i] == '.' && (++i, !digits())) return false;
  if (i < token.size() && (token[i] == 'e' || token[i] == 'E')) {
    ++i;
    if (i < token.size() && (token[i] == '+' || token[i] == '-')) ++i;
    if (!digits()) return false;
  }
  return i == token.size();
}

// Whether a JSON number fits what Json holds: a 64-bit integer (unsigned ones above INT64_MAX become doubles) or a
// double. One too small for a double reads as 0 (simdjson takes it); one too large does not fit. Locale-free.
bool NumberFits(std::string_view token) {
  const char* end = token.data() + token.size();
  if (token.find_first_of(".eE") == std::string_view::npos) {
    int64_t i = 0;
    if (auto r = std::from_chars(token.data(), end, i); r.ec == std::errc() && r.ptr == end) return true;
    uint64_t u = 0;
    auto r = std::from_chars(token.data(), end, u);
    return r.ec == std::errc() && r.ptr == end;
  }
  double d = 0;
  auto r = std::from_chars(token.data(), end, d);
  if (r.ec == std::errc()) return std::isfinite(d);
  if (r.ec != std::errc::result_out_of_range) return false;
  // Out of range: too large or too small. The decimal exponent of the first significant digit says which.
  const size_t e = token.find_first_of("eE");
  const std::string_view mantissa = token.substr(0, e);
  const size_t point = std::min(mantissa.find('.'), mantissa.size());
  const size_t first = mantissa.find_first_of("123456789");
  if (first == std::string_view::npos) return true;  // zero
  int64_t exponent = first < point ? static_cast<int64_t>(point - first - 1) : -static_cast<int64_t>(first - point);
  if (e != std::string_view::npos) {
    std::string_view digits = token.substr(e + 1);
    const bool negative = !digits.empty() && digits[0] == '-';
    if (!digits.empty() && (digits[0] == '-' || digits[0] == '+')) digits.remove_prefix(1);
    int64_t value = 0;
    if (std::from_chars(digits.data(), digits.data() + digits.size(), value).ec != std::errc()) {
      value = std::numeric_limits<int64_t>::max() / 2;  // an exponent of many digits: its sign decides
    }
    exponent += negative ? -value : value;
  }
  return exponent < 0;
}

// When simdjson refused a number of `text`: the path of the first number no 64-bit integer or finite double holds
// ("properties.revenue", "[2].x"), found by a plain walk of the tokens; nullopt when there is none, or when a
// malformed number comes first (simdjson's message is the right one then). Only on that error, so its cost does
// not matter.
std::optional<std::string> PathOfOutOfRangeNumber(std::string_view text) {
  struct Frame {
    bool object;
    size_t index = 0;
    std::string key;
  };
  std::vector<Frame> stack;
  auto path = [&] {
    std::string out;
    for (const Frame& f : stack) {
      out += f.object ? (out.empty() ? "" : ".") + f.key : "[" + std::to_string(f.index) + "]";
    }
    return out;
  };
  bool expect_key = false;
  for (size_t i = 0; i < text.size();) {
    const char c = text[i];
    if (c == '{' || c == '[') {
      stack.push_back(Frame{c == '{', 0, {}});
      expect_key = c == '{';
      ++i;
    } else if (c == '}' || c == ']') {
      if (!stack.empty()) stack.pop_back();
      expect_key = false;
      ++i;
    } else if (c == ',') {
      if (!stack.empty() && !stack.back().object) ++stack.back().index;
      expect_key = !stack.empty() && stack.back().object;
      ++i;
    } else if (c == ':') {
      expect_key = false;
      ++i;
    } else if (c == '"') {
      size_t end = i + 1;
      while (end < text.size() && text[end] != '"') end += text[end] == '\\' ? 2 : 1;
      if (expect_key && !stack.empty()) {
        // The key as Json::Parse reads it (escapes resolved); its raw text if that fails.
        Result<Json> key = end < text.size() ? Json::Parse(text.substr(i, end - i + 1)) : Status::InvalidArgument("");
        stack.back().key =
            key.ok() && key->is_string() ? key->as_string() : std::string(text.substr(i + 1, end - i - 1));
      }
      i = end + 1;
    } else if (c == '-' || (c >= '0' && c <= '9')) {
      size_t end = i + 1;
      while (end < text.size() && std::strchr("0123456789.eE+-", text[end]) != nullptr && text[end] != '\0') ++end;
      const std::string_view token = text.substr(i, end - i);
      const bool delimited =
          end == text.size() || (text[end] != '\0' && std::strchr(" \t\r\n,]}", text[end]) != nullptr);
      if (!delimited || !IsJsonNumber(token)) return std::nullopt;  // "12abc", "0x1F": malformed, not too large
      if (!NumberFits(token)) return path();
      i = end;
    } else {
      ++i;  // whitespace, true, false, null
    }
  }
  return std::nullopt;
}

}  // namespace

Result<Json> Json::Parse(std::string_view text, const ParseLimits& limits) {
  if (text.size() > limits.max_bytes) {
    return Status::ResourceExhausted(
        fmt::format("JSON document of {} bytes is over the limit of {} bytes", text.size(), limits.max_bytes));
  }
  // One parser per thread: simdjson parsers reuse their buffers, which makes repeated parses allocation-free.
  // So is the padded copy of the input simdjson needs, up to a size (a larger document gets its own).
  thread_local simdjson::dom::parser parser;
  thread_local std::string buffer;
  std::string own;
  const char* padded = internal::PaddedCopy(text, &buffer, &own);
  simdjson::dom::element root;
  auto error = parser.parse(padded, text.size(), /*realloc_if_needed=*/false).get(root);
  if (error) {
    if (error == simdjson::NUMBER_ERROR) {  // also a number out of range
      if (std::optional<std::string> where = PathOfOutOfRangeNumber(text)) {
        return Status::InvalidArgument("number out of range: a JSON number must fit a 64-bit integer or a double",
                                       *where);
      }
    }
    return Status::InvalidArgument(fmt::format("malformed JSON: {}", simdjson::error_message(error)));
  }
  Json out;
  CDP_RETURN_IF_ERROR(Convert(root, 1, limits, &out));
  return out;
}

namespace internal {

void AppendJsonDouble(double d, std::string* out) {
  if (!std::isfinite(d)) {
    out->append("null");  // JSON has no NaN or infinity
    return;
  }
  char buf[32];
  auto r = std::to_chars(buf, buf + sizeof buf, d);
  // The shortest form of a large whole double is an integer literal ("18446744073709551616"), which no 64-bit
  // integer holds and the parser (simdjson) rejects.
  if (std::fabs(d) >= 9.2e18 && std::find_if(buf, r.ptr, [](char c) { return c == '.' || c == 'e'; }) == r.ptr) {
    r = std::to_chars(buf, buf + sizeof buf, d, std::chars_format::scientific);
  }
  out->append(buf, r.ptr);
}

}  // namespace internal

void Json::DumpTo(std::string* out) const {
  switch (type_) {
    case Type::kNull:
      out->append("null");
      return;
    case Type::kBool:
      out->append(i_ != 0 ? "true" : "false");
      return;
    case Type::kInt: {
      char buf[24];
      auto r = std::to_chars(buf, buf + sizeof buf, i_);
      out->append(buf, r.ptr);
      return;
    }
    case Type::kDouble:
      internal::AppendJsonDouble(d_, out);
      return;
    case Type::kString:
      EscapeTo(s_->value, out);
      return;
    case Type::kArray: {
      out->push_back('[');
      bool first = true;
      for (const Json& item : *a_) {
        if (!first) out->push_back(',');
        first = false;
        item.DumpTo(out);
      }
      out->push_back(']');
      return;
    }
    case Type::kObject: {
      out->push_back('{');
      bool first = true;
      for (const auto& [key, value] : *o_) {
        if (!first) out->push_back(',');
        first = false;
        EscapeTo(key, out);
        out->push_back(':');
        value.DumpTo(out);
      }
      out->push_back('}');
      return;
    }
  }
}

std::string Json::Dump() const {
  std::string out;
  DumpTo(&out);
  return out;
}

int64_t Json::as_int() const {
  if (type_ == Type::kInt) return i_;
  if (type_ == Type::kDouble) return static_cast<int64_t>(d_);
  return 0;
}

double Json::as_number() const {
  if (type_ == Type::kInt) return static_cast<double>(i_);
  if (type_ == Type::kDouble) return d_;
  return 0;
}

const std::string& Json::as_string() const { return type_ == Type::kString ? s_->value : kEmptyString; }
const std::vector<Json>& Json::items() const { return type_ == Type::kArray ? *a_ : kEmptyArray; }
std::vector<Json>& Json::items() {
  if (type_ != Type::kArray) *this = Array();
  return *a_;
}
const std::vector<Json::Member>& Json::members() const { return type_ == Type::kObject ? *o_ : kEmptyObject; }
std::vector<Json::Member>& Json::members() {
  if (type_ != Type::kObject) *this = Object();
  return *o_;
}

size_t Json::size() const {
  if (type_ == Type::kArray) return a_->size();
  if (type_ == Type::kObject) return o_->size();
  return 0;
}

const Json* Json::Find(std::string_view key) const {
  if (type_ != Type::kObject) return nullptr;
  for (const auto& m : *o_) {
    if (m.first == key) return &m.second;
  }
  return nullptr;
}

Json* Json::Find(std::string_view key) {
  if (type_ != Type::kObject) return nullptr;
  for (auto& m : *o_) {
    if (m.first == key) return &m.second;
  }
  return nullptr;
}

const Json* Json::FindPath(std::string_view path) const {
  const Json* cur = this;
  while (cur != nullptr) {
    size_t dot = path.find('.');
    std::string_view key = path.substr(0, dot);
    cur = cur->Find(key);
    if (dot == std::string_view::npos) return cur;
    path.remove_prefix(dot + 1);
  }
  return nullptr;
}

Json& Json::Set(std::string_view key, Json value) {
  if (type_ != Type::kObject) *this = Object();
  if (Json* existing = Find(key)) {
    *existing = std::move(value);
  } else {
    o_->emplace_back(std::string(key), std::move(value));
  }
  return *this;
}

bool Json::Erase(std::string_view key) {
  if (type_ != Type::kObject) return false;
  for (auto it = o_->begin(); it != o_->end(); ++it) {
    if (it->first == key) {
      o_->erase(it);
      return true;
    }
  }
  return false;
}

Json& Json::Push(Json value) {
  if (type_ != Type::kArray) *this = Array();
  a_->push_back(std::move(value));
  return *this;
}

bool Json::operator==(const Json& other) const {
  if (is_number() && other.is_number()) {
    if (type_ == Type::kInt && other.type_ == Type::kInt) return i_ == other.i_;
    return as_number() == other.as_number();
  }
  if (type_ != other.type_) return false;
  switch (type_) {
    case Type::kNull:
      return true;
    case Type::kBool:
      return i_ == other.i_;
    case Type::kString:
      return s_ == other.s_ || s_->value == other.s_->value;
    case Type::kArray:
      return *a_ == *other.a_;
    case Type::kObject: {
      if (o_->size() != other.o_->size()) return false;
      for (const auto& [key, value] : *o_) {
        const Json* theirs = other.Find(key);
        if (theirs == nullptr || !(*theirs == value)) return false;
      }
      return true;
    }
    default:
      return false;
  }
}

std::string_view Json::TypeName(Type t) {
  switch (t) {
    case Type::kNull:
      return "null";
    case Type::kBool:
      return "boolean";
    case Type::kInt:
    case Type::kDouble:
      return "number";
    case Type::kString:
      return "string";
    case Type::kArray:
      return "array";
    case Type::kObject:
      return "object";
  }
  return "unknown";
}

void ApplyMergePatch(Json* target, const Json& patch) {
  if (!patch.is_object()) {
    *target = patch;
    return;
  }
  if (!target->is_object()) *target = Json::Object();
  for (const auto& [key, value] : patch.members()) {
    if (value.is_null()) {
      target->Erase(key);
    } else if (Json* existing = target->Find(key)) {
      ApplyMergePatch(existing, value);
    } else {
      Json fresh;
      ApplyMergePatch(&fresh, value);
      target->Set(key, std::move(fresh));
    }
  }
}

namespace internal {

Status CheckUtf8(const Json& value) {
  auto valid = [](std::string_view s) { return simdjson::validate_utf8(s.data(), s.size()); };
  if (value.is_string()) {
    return valid(value.as_string()) ? Status::OK() : Status::InvalidArgument("a string is not valid UTF-8");
  }
  if (value.is_array()) {
    size_t i = 0;
    for (const Json& item : value.items()) {
      Status s = CheckUtf8(item);
      if (!s.ok()) return s.WithFieldPrefix(fmt::format("[{}]", i));
      ++i;
    }
  } else if (value.is_object()) {
    for (const auto& [key, item] : value.members()) {
      if (!valid(key)) return Status::InvalidArgument("an object key is not valid UTF-8");
      Status s = CheckUtf8(item);
      if (!s.ok()) return s.WithFieldPrefix(key);
    }
  }
  return Status::OK();
}

}  // namespace internal
}  // namespace cdp
