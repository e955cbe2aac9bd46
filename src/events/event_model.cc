// Copyright 2026 The libcdp Authors.

#include "events/event_model.h"

#include <simdjson.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <cmath>
#include <cstring>
#include <limits>
#include <optional>
#include <type_traits>

#include "cdp/query.h"
#include "core/ids.h"
#include "core/json_internal.h"
#include "core/parallel.h"
#include "fmt/format.h"
#include "profiles/profile_model.h"
#include "storage/keys.h"

namespace cdp::internal {

thread_local size_t ScopedEventBytesAllowance::current_ = 0;

namespace {

constexpr std::string_view kEventTypes[] = {"page_view",  "product_view", "add_to_cart", "purchase",
                                            "email_open", "app_usage",    "custom"};
constexpr size_t kMaxShortString = 256;
constexpr size_t kMaxCustomIdentifiers = 16;

}  // namespace

Status CheckNotFuture(int64_t time_us, int64_t now_us, const Options& options) {
  if (options.max_event_future_seconds <= 0 || time_us - now_us <= options.max_event_future_seconds * 1'000'000) {
    return Status::OK();
  }
  return Status::InvalidArgument(
      fmt::format("{} is more than {} seconds after the time of the call (Options::max_event_future_seconds)",
                  FormatTimestamp(time_us), options.max_event_future_seconds),
      "timestamp");
}

namespace {

bool IsIdentifierField(std::string_view key) {
  for (std::string_view f : {"customerId", "userId", "email", "phone", "shopifyId", "deviceId", "anonymousId"}) {
    if (key == f) return true;
  }
  return false;
}

// ---- Reading a value: the same questions asked of a cdp::Json and of a simdjson DOM element ----------------------

using simdjson::dom::element;
using simdjson::dom::element_type;

// Precondition: the element is an array / an object. (By value: a range-for over get_array().value_unsafe()
// would iterate a destroyed temporary.)
simdjson::dom::array ArrayOf(element el) {
  simdjson::dom::array a;
  if (el.get_array().get(a)) return {};
  return a;
}
simdjson::dom::object ObjectOf(element el) {
  simdjson::dom::object o;
  if (el.get_object().get(o)) return {};
  return o;
}

// The type the element has once converted to a cdp::Json (integers beyond int64 become doubles).
Json::Type TypeOf(const Json& v) { return v.type(); }
Json::Type TypeOf(element v) {
  switch (v.type()) {
    case element_type::ARRAY:
      return Json::Type::kArray;
    case element_type::OBJECT:
      return Json::Type::kObject;
    case element_type::INT64:
      return Json::Type::kInt;
    case element_type::UINT64:
      return Json(v.get_uint64().value_unsafe()).type();
    case element_type::DOUBLE:
      return Json::Type::kDouble;
    case element_type::STRING:
      return Json::Type::kString;
    case element_type::BOOL:
      return Json::Type::kBool;
    case element_type::NULL_VALUE:
      return Json::Type::kNull;
  }
  return Json::Type::kNull;
}

bool IsNumber(Json::Type t) { return t == Json::Type::kInt || t == Json::Type::kDouble; }

// Precondition: a string.
std::string_view StringOf(const Json& v) { return v.as_string(); }
std::string_view StringOf(element v) { return v.get_string().value_unsafe(); }

// As Json::as_number of the converted value.
double NumberOf(const Json& v) { return v.as_number(); }
double NumberOf(element v) {
  switch (v.type()) {
    case element_type::INT64:
      return static_cast<double>(v.get_int64().value_unsafe());
    case element_type::UINT64:
      return Json(v.get_uint64().value_unsafe()).as_number();
    case element_type::DOUBLE:
      return v.get_double().value_unsafe();
    default:
      return 0;
  }
}

// Members of an object: (key, value) in document order.
const std::vector<Json::Member>& MembersOf(const Json& v) { return v.members(); }
simdjson::dom::object MembersOf(element v) { return ObjectOf(v); }
template <typename M>
std::string_view KeyOf(const M& member) {
  if constexpr (requires { member.first; }) {
    return member.first;
  } else {
    return member.key;
  }
}
template <typename M>
const auto& ValueOf(const M& member) {
  if constexpr (requires { member.second; }) {
    return member.second;
  } else {
    return member.value;
  }
}

size_t SizeOf(const Json& v) { return v.size(); }
size_t SizeOf(element v) { return ObjectOf(v).size(); }  // objects only (small: at most 2^24 - 1 is exact)

Result<int64_t> TimestampOf(const Json& v) { return ParseTimestamp(v); }
Result<int64_t> TimestampOf(element v) {
  switch (TypeOf(v)) {
    case Json::Type::kString:
      return ParseTimestamp(StringOf(v));
    case Json::Type::kInt:
    case Json::Type::kDouble:
      return ParseTimestamp(Json(NumberOf(v)));  // ParseTimestamp reads a number as a double
    case Json::Type::kBool:
      return ParseTimestamp(Json(false));
    case Json::Type::kArray:
      return ParseTimestamp(Json::Array());
    case Json::Type::kObject:
      return ParseTimestamp(Json::Object());
    case Json::Type::kNull:
      break;
  }
  return ParseTimestamp(Json());
}

// The member `key` of an object, or none. (The lean path sees only objects without duplicate keys.)
const Json* FindMember(const Json& object, std::string_view key) { return object.Find(key); }
std::optional<element> FindMember(element object, std::string_view key) {
  for (auto field : ObjectOf(object)) {
    if (field.key == key) return field.value;
  }
  return std::nullopt;
}

template <typename V>
Status ShortString(const V& v, std::string_view field, std::string* out) {
  if (TypeOf(v) != Json::Type::kString) {
    return Status::InvalidArgument(fmt::format("expected a string, got {}", Json::TypeName(TypeOf(v))),
                                   std::string(field));
  }
  std::string_view s = StringOf(v);
  if (s.empty() || s.size() > kMaxShortString) {
    return Status::InvalidArgument(fmt::format("must have 1 to {} bytes", kMaxShortString), std::string(field));
  }
  out->assign(s);
  return Status::OK();
}

// Purchase value: properties.revenue, else .total, else .value.
template <typename V>
Status PurchaseValue(const V& properties, bool* found, int64_t* micros) {
  for (std::string_view key : {"revenue", "total", "value"}) {
    auto v = FindMember(properties, key);
    if (!v || TypeOf(*v) == Json::Type::kNull) continue;
    std::string field = fmt::format("properties.{}", key);
    if (!IsNumber(TypeOf(*v))) {
      return Status::InvalidArgument(
          fmt::format("a purchase value must be a number, got {}", Json::TypeName(TypeOf(*v))), field);
    }
    double d = NumberOf(*v);
    if (!std::isfinite(d) || std::fabs(d) > 1e12) {
      return Status::InvalidArgument("a purchase value must be finite and at most 1e12 in magnitude", field);
    }
    *found = true;
    *micros = std::llround(d * 1e6);
    return Status::OK();
  }
  *found = false;
  return Status::OK();
}

// The "identifiers" object as a Json (its members are short strings, already checked).
Json CustomIdentifiers(const Json& v) { return v; }
Json CustomIdentifiers(element v) {
  Json out = Json::Object();
  for (auto field : ObjectOf(v)) out.members().emplace_back(std::string(field.key), Json(StringOf(field.value)));
  return out;
}

// Validates the members of an event object, one at a time, in document order, then completes the event. The
// size, depth and UTF-8 checks come before (they differ in how they are made, not in what they decide).
template <typename V>
class EventBuilder {
 public:
  // `dumped_properties`: for simdjson elements, the compact JSON of the "properties" member, made while measuring.
  explicit EventBuilder(std::string_view dumped_properties = {}) : dumped_properties_(dumped_properties) {}
  // For a cdp::Json: the compact JSON of the (last) "properties" object, made while measuring; moved from by Finish.
  void UseDumpedProperties(std::string* dumped) { owned_properties_ = dumped; }

  Status Field(std::string_view key, const V& value) {
    const Json::Type type = TypeOf(value);
    if (type == Json::Type::kNull) return Status::OK();
    ParsedEvent& e = e_;
    if (key == "type") {
      CDP_RETURN_IF_ERROR(ShortString(value, key, &e.type));
      bool known = false;
      for (auto t : kEventTypes) known = known || t == e.type;
      if (!known) {
        return Status::InvalidArgument(
            fmt::format("unknown event type \"{}\" (expected page_view, product_view, add_to_cart, purchase, "
                        "email_open, app_usage, custom)",
                        e.type.substr(0, 64)),
            "type");
      }
    } else if (key == "id") {
      if (TypeOf(value) == Json::Type::kString) {  // an id's own rule, empty and long included
        CDP_RETURN_IF_ERROR(ValidateId(StringOf(value), "id"));
      }
      CDP_RETURN_IF_ERROR(ShortString(value, key, &e.id));
      e.client_id = true;
    } else if (key == "name") {
      CDP_RETURN_IF_ERROR(ShortString(value, key, &e.name));
    } else if (key == "timestamp") {
      auto t = TimestampOf(value);
      if (!t.ok()) return t.status().WithFieldPrefix("timestamp");
      e.time_us = *t;
      has_timestamp_ = true;
    } else if (key == "properties") {
      if (type != Json::Type::kObject) {
        return Status::InvalidArgument(fmt::format("expected an object, got {}", Json::TypeName(type)), "properties");
      }
      if constexpr (std::is_same_v<V, Json>) {
        properties_ = &value;
      } else {
        properties_ = value;
      }
    } else if (key == "profileId") {
      if (TypeOf(value) == Json::Type::kString) {  // an id's own rule, empty and long included
        CDP_RETURN_IF_ERROR(ValidateId(StringOf(value), "profileId"));
      }
      CDP_RETURN_IF_ERROR(ShortString(value, key, &e.profile_id));
    } else if (key == "sessionId") {
      CDP_RETURN_IF_ERROR(ShortString(value, key, &e.session_id));
    } else if (key == "source") {
      CDP_RETURN_IF_ERROR(ShortString(value, key, &e.source));
    } else if (key == "receivedAt") {
      // set by libcdp
    } else if (IsIdentifierField(key)) {
      std::string raw;
      CDP_RETURN_IF_ERROR(ShortString(value, key, &raw));
      if (key == "deviceId") e.device_id = raw;
      const std::string_view type_name = key == "userId" ? std::string_view("customerId") : key;
      bool same_type = false;
      for (const RawIdentifier& r : e.raw_identifiers) {
        if (r.type != type_name) continue;
        // customerId and userId name one identifier type: an event may carry one value of it.
        if (r.value != raw) {
          return Status::InvalidArgument("customerId and userId differ; they name the same identifier (give one)",
                                         std::string(key));
        }
        same_type = true;
      }
      if (!same_type) e.raw_identifiers.push_back({std::string(type_name), std::move(raw)});
    } else if (key == "identifiers") {
      if (type != Json::Type::kObject) {
        return Status::InvalidArgument(
            fmt::format("expected an object of identifier type to value, got {}", Json::TypeName(type)), "identifiers");
      }
      if (SizeOf(value) > kMaxCustomIdentifiers) {
        return Status::InvalidArgument(fmt::format("more than {} identifiers", kMaxCustomIdentifiers), "identifiers");
      }
      for (const auto& member : MembersOf(value)) {
        std::string_view id_type = KeyOf(member);
        std::string raw;
        CDP_RETURN_IF_ERROR(ShortString(ValueOf(member), fmt::format("identifiers.{}", id_type), &raw));
        e.raw_identifiers.push_back({std::string(id_type), std::move(raw)});
      }
      e.custom_identifiers = CustomIdentifiers(value);
    } else {
      return Status::InvalidArgument(
          "unknown event field (expected id, type, name, timestamp, properties, sessionId, deviceId, source, "
          "profileId, customerId, userId, email, phone, shopifyId, anonymousId, identifiers)",
          std::string(key));
    }
    return Status::OK();
  }

  Result<ParsedEvent> Finish(int64_t now_us, const Options& options) {
    ParsedEvent& e = e_;
    if (e.type.empty()) return Status::InvalidArgument("an event needs a \"type\"", "type");
    if (e.type == "custom" && e.name.empty()) return Status::InvalidArgument("a custom event needs a \"name\"", "name");
    if (e.profile_id.empty() && e.raw_identifiers.empty()) {
      return Status::InvalidArgument(
          "an event needs a profileId or an identifier (customerId, email, phone, shopifyId, deviceId, anonymousId)",
          "profileId");
    }
    if (!has_timestamp_) e.time_us = now_us - now_us % 1000;  // timestamps have millisecond precision
    if (has_timestamp_) CDP_RETURN_IF_ERROR(CheckNotFuture(e.time_us, now_us, options));
    if (e.type == "purchase") {
      e.purchase = true;
      bool found = false;
      if (properties_) CDP_RETURN_IF_ERROR(PurchaseValue(*properties_, &found, &e.purchase_micros));
    }
    if (!properties_) {
      e.properties.assign("{}");
    } else if constexpr (std::is_same_v<V, Json>) {
      if (owned_properties_ != nullptr) {
        e.properties = std::move(*owned_properties_);
      } else {
        properties_->DumpTo(&e.properties);
      }
    } else {
      e.properties.assign(dumped_properties_);
    }
    if (!e.client_id) e.id = NewId();
    return std::move(e);
  }

 private:
  ParsedEvent e_;
  bool has_timestamp_ = false;
  // The properties object: a pointer into the event for a cdp::Json, a copy of the (small) element handle else.
  std::conditional_t<std::is_same_v<V, Json>, const Json*, std::optional<element>> properties_{};
  std::string_view dumped_properties_;
  std::string* owned_properties_ = nullptr;
};

// ---- The lean path: measuring and dumping simdjson elements as Json::Dump writes their cdp::Json ----------------

struct Dumper {
  std::string* out;
  int max_depth = 0;  // deepest container level seen (the item itself is level 1)
  // False when the element's cdp::Json would differ from a plain re-serialization (duplicate keys: the last wins at
  // the first's position) or one of its strings is not valid UTF-8 (CheckUtf8 names the path): the caller then
  // decides on the cdp::Json.
  bool exact = true;
  bool check_utf8 = true;  // false when no string can be invalid UTF-8 (see ParseEventBatch)

  void String(std::string_view s) {
    if (check_utf8 && exact && !simdjson::validate_utf8(s.data(), s.size())) exact = false;
    AppendJsonString(s, out);
  }

  void Value(element el, int level) {
    switch (el.type()) {
      case element_type::ARRAY: {
        max_depth = std::max(max_depth, level);
        out->push_back('[');
        bool first = true;
        for (element child : ArrayOf(el)) {
          if (!first) out->push_back(',');
          first = false;
          Value(child, level + 1);
        }
        out->push_back(']');
        return;
      }
      case element_type::OBJECT:
        Object(el, level, {}, nullptr);
        return;
      case element_type::INT64:
        Number(el.get_int64().value_unsafe());
        return;
      case element_type::UINT64: {
        uint64_t v = el.get_uint64().value_unsafe();
        if (v <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
          Number(static_cast<int64_t>(v));
        } else {
          Number(static_cast<double>(v));  // as Json(uint64_t)
        }
        return;
      }
      case element_type::DOUBLE:
        Number(el.get_double().value_unsafe());
        return;
      case element_type::STRING:
        String(el.get_string().value_unsafe());
        return;
      case element_type::BOOL:
        out->append(el.get_bool().value_unsafe() ? "true" : "false");
        return;
      case element_type::NULL_VALUE:
        out->append("null");
        return;
    }
  }

  // Dumps an object; with a `capture_key`, `*captured` receives the byte range of that member's value.
  void Object(element el, int level, std::string_view capture_key, std::pair<size_t, size_t>* captured) {
    max_depth = std::max(max_depth, level);
    constexpr size_t kInline = 16;
    std::string_view inline_keys[kInline];
    std::vector<std::string_view> more_keys;
    size_t n = 0;
    out->push_back('{');
    for (auto field : ObjectOf(el)) {
      if (n > 0) out->push_back(',');
      if (n < kInline) {
        inline_keys[n] = field.key;
      } else {
        if (more_keys.empty()) more_keys.assign(inline_keys, inline_keys + kInline);
        more_keys.push_back(field.key);
      }
      ++n;
      String(field.key);
      out->push_back(':');
      size_t start = out->size();
      Value(field.value, level + 1);
      if (captured != nullptr && field.key == capture_key) *captured = {start, out->size()};
    }
    out->push_back('}');
    if (exact && n > 1) {
      if (n <= kInline) {
        for (size_t i = 1; i < n && exact; ++i) {
          for (size_t j = 0; j < i; ++j) {
            if (inline_keys[i] == inline_keys[j]) {
              exact = false;
              break;
            }
          }
        }
      } else {
        std::sort(more_keys.begin(), more_keys.end());
        if (std::adjacent_find(more_keys.begin(), more_keys.end()) != more_keys.end()) exact = false;
      }
    }
  }

  template <typename T>
  void Number(T v) {
    if constexpr (std::is_floating_point_v<T>) {
      AppendJsonDouble(v, out);  // as Json::Dump
    } else {
      char buf[24];
      auto r = std::to_chars(buf, buf + sizeof buf, v);
      out->append(buf, r.ptr);
    }
  }
};

// The nesting depth of an element (0 for a scalar, 1 for a flat array or object), as SerializedSize gives it.
int ElementDepth(element el) {
  int depth = 0;
  if (el.type() == element_type::ARRAY) {
    for (element child : ArrayOf(el)) depth = std::max(depth, ElementDepth(child));
    return depth + 1;
  }
  if (el.type() == element_type::OBJECT) {
    for (auto field : ObjectOf(el)) depth = std::max(depth, ElementDepth(field.value));
    return depth + 1;
  }
  return 0;
}

// The checks of ParseEvent that precede its fields, given the event's type, serialized size and depth.
Status CheckEventShape(Json::Type type, size_t bytes, int depth, const Options& options) {
  if (type != Json::Type::kObject) {
    return Status::InvalidArgument(fmt::format("an event must be a JSON object, got {}", Json::TypeName(type)));
  }
  if (depth > options.max_json_depth) {
    return Status::InvalidArgument(fmt::format("JSON nested deeper than {} levels", options.max_json_depth));
  }
  if (bytes > options.max_event_bytes) {
    return Status::InvalidArgument(
        fmt::format("event of {} bytes is over the limit of {} bytes", bytes, options.max_event_bytes));
  }
  return Status::OK();
}

// InvalidArgument for an event object over max_event_bytes, naming its largest member (where the bytes are).
Status EventTooLarge(const Json& event, size_t bytes, const Options& options) {
  std::string_view largest;
  size_t most = 0;
  for (const auto& [key, value] : event.members()) {
    int depth = 0;
    const size_t size = SerializedSize(value, &depth) + key.size();
    if (size > most) {
      most = size;
      largest = key;
    }
  }
  return Status::InvalidArgument(fmt::format("event of {} bytes is over the limit of {} bytes ({}: {} bytes)", bytes,
                                             options.max_event_bytes, largest, most),
                                 std::string(largest));
}

// The reference path: parse into cdp::Json, then ParseEvent per item, as TrackBatchJson did before the lean path.
// Used for every batch the lean path cannot decide alone (malformed, too deep, wrong shape, too many items), so
// those give the very same errors.
Status ParseEventBatchViaJson(std::string_view text, const Options& options, int64_t now_us,
                              std::vector<ParsedEvent>* parsed, std::vector<BatchItemResult>* results) {
  parsed->clear();
  results->clear();
  // Items may nest max_json_depth deep below the batch's own one or two levels; ParseEvent checks each item, and
  // refuses a deeper one alone, down to the batch's own limit.
  ParseLimits limits{options.max_batch_bytes, options.batch_document_depth()};
  CDP_ASSIGN_OR_RETURN(Json doc, Json::Parse(text, limits));
  const Json* items = &doc;
  if (doc.is_object()) {
    items = doc.Find("batch");
    if (items == nullptr) {
      return Status::InvalidArgument("a batch must be a JSON array of events or {\"batch\": [...]}", "batch");
    }
  }
  if (!items->is_array()) return Status::InvalidArgument("a batch must be a JSON array of events", "batch");
  const size_t count = items->size();
  if (count > options.max_batch_items) {
    return Status::InvalidArgument(
        fmt::format("batch of {} events is over the limit of {}", count, options.max_batch_items));
  }
  results->resize(count);
  parsed->reserve(count);
  for (size_t i = 0; i < count; ++i) {
    auto p = ParseEvent(items->items()[i], options, now_us);
    if (p.ok()) {
      parsed->push_back(std::move(p).value());
    } else {
      (*results)[i].status = p.status();
    }
  }
  return Status::OK();
}

bool IsAscii(std::string_view s) {
  size_t i = 0;
  for (; i + 8 <= s.size(); i += 8) {
    uint64_t w;
    std::memcpy(&w, s.data() + i, 8);
    if ((w & 0x8080808080808080ull) != 0) return false;
  }
  for (; i < s.size(); ++i) {
    if (static_cast<unsigned char>(s[i]) >= 0x80) return false;
  }
  return true;
}

// SerializedSize(event, depth, ascii), with each "properties" object dumped into `*properties` on the way (the last
// one stays): its size, depth and bytes are taken from the dump, which the event stores as is. A dump keeps every
// byte above 0x7f as it is, so it is ASCII exactly when the object's keys and strings are.
size_t MeasureEvent(const Json& event, std::string* properties, int* depth, bool* ascii) {
  if (!event.is_object()) return SerializedSize(event, depth, ascii);
  *depth = 1;
  size_t n = 2 + (event.size() > 0 ? event.size() - 1 : 0);
  for (const auto& [key, value] : event.members()) {
    int d = 0;
    size_t size;
    if (key == "properties" && value.is_object()) {
      properties->clear();
      value.DumpTo(properties);
      size = properties->size();
      d = JsonDepth(value);
      if (*ascii && !IsAscii(*properties)) *ascii = false;
    } else {
      size = SerializedSize(value, &d, ascii);
    }
    n += JsonStringSize(key, ascii) + 1 + size;
    *depth = std::max(*depth, d + 1);
  }
  return n;
}

}  // namespace

Result<ParsedEvent> ParseEvent(const Json& event, const Options& options, int64_t now_us, size_t* bytes_out) {
  int depth = 0;
  bool ascii = true;
  std::string properties;
  size_t bytes = MeasureEvent(event, &properties, &depth, &ascii);
  if (bytes_out != nullptr) *bytes_out = bytes;
  if (event.is_object() && depth > options.max_json_depth) {
    CDP_RETURN_IF_ERROR(CheckJsonDepth(event, options.max_json_depth));  // the error names the too-deep path
  }
  if (event.is_object() && bytes > options.max_event_bytes) return EventTooLarge(event, bytes, options);
  CDP_RETURN_IF_ERROR(CheckEventShape(event.type(), bytes, depth, options));
  if (!ascii) {  // ASCII is valid UTF-8
    CDP_RETURN_IF_ERROR(CheckUtf8(event));
  }
  EventBuilder<Json> builder;
  builder.UseDumpedProperties(&properties);
  for (const auto& [key, value] : event.members()) CDP_RETURN_IF_ERROR(builder.Field(key, value));
  return builder.Finish(now_us, options);
}

int64_t EventTimeOf(const Json& event, int64_t now_us) {
  const int64_t now_ms = now_us - now_us % 1000;  // as EventBuilder::Finish: timestamps have millisecond precision
  const Json* timestamp = event.is_object() ? event.Find("timestamp") : nullptr;
  if (timestamp == nullptr || timestamp->is_null()) return now_ms;  // EventBuilder::Field skips a null member
  Result<int64_t> t = TimestampOf(*timestamp);
  return t.ok() ? *t : now_ms;
}

Status BatchTooLarge(size_t bytes, const Options& options) {
  return Status::InvalidArgument(
      fmt::format("batch of {} bytes is over the limit of {} bytes", bytes, options.max_batch_bytes));
}

Status ParseEventBatch(std::string_view text, const Options& options, int64_t now_us, std::vector<ParsedEvent>* parsed,
                       std::vector<BatchItemResult>* results) {
  auto via_json = [&] { return ParseEventBatchViaJson(text, options, now_us, parsed, results); };
  // Json::Parse rejects a container nested deeper than batch_document_depth() (the top level is 1); deeper items
  // within it are refused one by one (ParseEvent).
  const int max_doc_depth = options.batch_document_depth();
  if (text.size() > options.max_batch_bytes || options.max_json_depth < 1) return via_json();
  // One parser and one padded copy of the input per thread, reused: no allocation per batch once warm. (Not those
  // of Json::Parse: the fallbacks below use it while this parser's document is in use.)
  thread_local simdjson::dom::parser parser;
  thread_local std::string buffer;
  std::string own;
  const char* padded = PaddedCopy(text, &buffer, &own);
  element root;
  if (parser.parse(padded, text.size(), /*realloc_if_needed=*/false).get(root)) return via_json();
  // simdjson validated the text as UTF-8; only a \u escape can unescape into something else (a lone surrogate).
  const bool check_utf8 = text.find("\\u") != std::string_view::npos;

  simdjson::dom::array items;
  int item_level = 2;
  if (root.type() == element_type::ARRAY) {
    items = ArrayOf(root);
  } else if (root.type() == element_type::OBJECT) {
    // {"batch": [...]}: the last "batch" member counts (as in Json::Parse); the others must not be too deep.
    simdjson::dom::object object = ObjectOf(root);
    size_t batch_index = 0, index = 0;
    std::optional<element> batch;
    for (auto field : object) {
      if (field.key == "batch") {
        batch = field.value;
        batch_index = index;
      }
      ++index;
    }
    if (!batch || batch->type() != element_type::ARRAY) return via_json();
    index = 0;
    for (auto field : object) {
      if (index++ != batch_index && 1 + ElementDepth(field.value) > max_doc_depth) return via_json();
    }
    items = ArrayOf(*batch);
    item_level = 3;
  } else {
    return via_json();
  }
  const size_t count = items.size();
  if (count > options.max_batch_items || count >= 0xFFFFFF) return via_json();  // size() saturates at 2^24 - 1

  // Items are validated on two threads when there are many (pure work on a read-only DOM), then gathered in order.
  std::vector<element> elements;
  elements.reserve(count);
  for (element item : items) elements.push_back(item);
  std::vector<ParsedEvent> each(count);
  std::vector<Status> statuses(count);
  std::atomic<bool> fallback{false};  // an item only the reference path decides the batch's fate for
  const ParseLimits unlimited{std::numeric_limits<size_t>::max(), std::numeric_limits<int>::max()};
  RunOnTwoThreads(count, /*parallel_from=*/256, [&](size_t begin, size_t end) {
    std::string scratch;
    for (size_t i = begin; i < end && !fallback.load(std::memory_order_relaxed); ++i) {
      const element item = elements[i];
      scratch.clear();
      Dumper dumper{&scratch};
      dumper.check_utf8 = check_utf8;
      std::pair<size_t, size_t> props{0, 0};
      if (item.type() == element_type::OBJECT) {
        dumper.Object(item, 1, "properties", &props);
      } else {
        dumper.Value(item, 1);
      }
      if (item_level - 1 + dumper.max_depth > max_doc_depth) {  // Json::Parse fails the batch
        fallback = true;
        return;
      }
      auto parse_item = [&]() -> Result<ParsedEvent> {
        if (!dumper.exact || dumper.max_depth > options.max_json_depth || scratch.size() > options.max_event_bytes) {
          // Duplicate keys or invalid UTF-8, or too deep or too large (the error names the path, or the largest
          // member): decide on the item's cdp::Json, as the reference path does.
          Json event;
          CDP_RETURN_IF_ERROR(JsonFromElement(item, 1, unlimited, &event));
          return ParseEvent(event, options, now_us);
        }
        // The item's serialized size and depth are those of its dump.
        CDP_RETURN_IF_ERROR(CheckEventShape(TypeOf(item), scratch.size(), dumper.max_depth, options));
        EventBuilder<element> builder(std::string_view(scratch).substr(props.first, props.second - props.first));
        for (auto field : ObjectOf(item)) CDP_RETURN_IF_ERROR(builder.Field(field.key, field.value));
        return builder.Finish(now_us, options);
      };
      Result<ParsedEvent> p = parse_item();
      if (p.ok()) {
        each[i] = std::move(p).value();
      } else {
        statuses[i] = p.status();
      }
    }
  });
  if (fallback) return via_json();
  results->assign(count, BatchItemResult{});
  size_t kept = 0;  // the valid items, compacted in place: an item moves only after a rejected one
  for (size_t i = 0; i < count; ++i) {
    if (statuses[i].ok()) {
      if (kept != i) each[kept] = std::move(each[i]);
      ++kept;
    } else {
      (*results)[i].status = std::move(statuses[i]);
    }
  }
  each.erase(each.begin() + static_cast<std::ptrdiff_t>(kept), each.end());
  *parsed = std::move(each);
  return Status::OK();
}

void MakeStoredEventParts(const ParsedEvent& e, std::string_view received_at, StoredEventParts* parts) {
  // The model's keys are plain ASCII names, written with their quotes and colon; an identifier type is escaped like
  // any key. A timestamp is digits and punctuation only: nothing to escape.
  std::string* out = &parts->text;
  auto member = [out](std::string_view comma_key_colon, std::string_view value) {
    out->append(comma_key_colon);
    AppendJsonString(value, out);
  };
  out->clear();
  out->reserve(256 + e.properties.size());
  out->append("{\"id\":");
  AppendJsonString(e.id, out);
  out->append(",\"profileId\":");
  parts->profile_at = out->size();
  member(",\"type\":", e.type);
  if (!e.name.empty()) member(",\"name\":", e.name);
  out->append(",\"timestamp\":\"");
  out->append(FormatTimestamp(e.time_us));
  out->push_back('"');
  member(",\"receivedAt\":", received_at);
  out->append(",\"sessionId\":");
  parts->session_at = out->size();
  if (!e.device_id.empty()) member(",\"deviceId\":", e.device_id);
  if (!e.source.empty()) member(",\"source\":", e.source);
  for (const RawIdentifier& raw : e.raw_identifiers) {
    if (raw.type == "deviceId" || e.custom_identifiers.Find(raw.type) != nullptr) continue;
    std::string_view value = raw.value;
    for (const Identifier& id : e.identifiers) {
      if (id.type == raw.type) value = id.value;  // the normalized form (one value per type in an event)
    }
    out->push_back(',');
    AppendJsonString(raw.type, out);
    out->push_back(':');
    AppendJsonString(value, out);
  }
  if (e.custom_identifiers.is_object()) {
    out->append(",\"identifiers\":");
    e.custom_identifiers.DumpTo(out);
  }
  out->append(",\"properties\":");
  out->append(e.properties.empty() ? std::string_view("{}") : std::string_view(e.properties));
  out->push_back('}');
}

void AppendStoredEvent(const StoredEventParts& parts, std::string_view profile_id, std::string_view session_id,
                       std::string* out) {
  const std::string_view text = parts.text;
  out->reserve(out->size() + text.size() + JsonStringSize(profile_id) + JsonStringSize(session_id));
  out->append(text.substr(0, parts.profile_at));
  AppendJsonString(profile_id, out);
  out->append(text.substr(parts.profile_at, parts.session_at - parts.profile_at));
  AppendJsonString(session_id, out);
  out->append(text.substr(parts.session_at));
}

void AppendStoredEvent(const ParsedEvent& e, std::string_view profile_id, std::string_view session_id,
                       std::string_view received_at, std::string* out) {
  StoredEventParts parts;
  MakeStoredEventParts(e, received_at, &parts);
  AppendStoredEvent(parts, profile_id, session_id, out);
}

std::string StoredEventSession(std::string_view stored) {
  // `,"sessionId":"` cannot lie inside a JSON string (its quotes would be escaped), so its first occurrence is a
  // member; with no '{' or '[' before it but the document's own, a top-level one.
  static constexpr std::string_view kMember = ",\"sessionId\":\"";
  const size_t at = stored.find(kMember);
  const auto opens = [&](char c) { return std::memchr(stored.data() + 1, c, at - 1) != nullptr; };
  if (at != std::string_view::npos && stored[0] == '{' && !opens('{') && !opens('[')) {
    const size_t begin = at + kMember.size();
    const size_t end = stored.find_first_of("\"\\", begin);
    if (end != std::string_view::npos && stored[end] == '"') return std::string(stored.substr(begin, end - begin));
  }
  auto doc = Json::Parse(stored);
  if (!doc.ok() || !doc->is_object()) return {};
  const Json* session = doc->Find("sessionId");
  return session != nullptr && session->is_string() ? session->as_string() : std::string();
}

void AppendIndexedEvent(const ParsedEvent& e, std::string_view session_id, std::string* out) {
  auto member = [out](std::string_view key, std::string_view value) {
    AppendJsonString(key, out);
    out->push_back(':');
    AppendJsonString(value, out);
    out->push_back(',');
  };
  out->reserve(out->size() + 64 + e.properties.size());
  out->push_back('{');
  member("type", e.type);
  if (!e.name.empty()) member("name", e.name);
  member("sessionId", session_id);  // as the stored document: always, after name
  if (!e.device_id.empty()) member("deviceId", e.device_id);
  if (!e.source.empty()) member("source", e.source);
  out->append("\"properties\":");
  out->append(e.properties.empty() ? std::string_view("{}") : std::string_view(e.properties));
  out->push_back('}');
}

void NormalizeIdentifiers(const IdentityRules& rules, ParsedEvent* e) {
  e->identifiers.clear();
  e->identity_keys.clear();
  e->ignored_identifiers.clear();
  for (const RawIdentifier& raw : e->raw_identifiers) {
    Identifier id;
    IgnoredIdentifier why;
    if (rules.Normalize(raw.type, raw.value, &id, &why)) {
      // Built here, where a batch's normalization is split over two threads, not by each lookup under the lock.
      e->identity_keys.push_back(storage::IdentityKey(id.type, id.value));
      e->identifiers.push_back(std::move(id));
    } else {
      e->ignored_identifiers.push_back(std::move(why));
    }
  }
  e->normalized = true;
}

bool StoredEventTraits(const Json& stored, int64_t time_us, storage::Traits* traits) {
  const Json* type = stored.Find("type");
  if (type == nullptr || !type->is_string()) return false;
  bool purchase = type->as_string() == "purchase";
  bool found = false;
  int64_t micros = 0;
  if (purchase) {
    const Json* properties = stored.Find("properties");
    if (properties != nullptr && !PurchaseValue(*properties, &found, &micros).ok()) return false;
  }
  traits->AddEvent(time_us, purchase, micros);
  return true;
}

}  // namespace cdp::internal
