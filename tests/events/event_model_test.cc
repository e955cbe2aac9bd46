// Copyright 2026 The libcdp Authors.
//
// The event model's two ways in and its stored form, checked against references:
//  - legacy::ParseEvent and legacy::StoredEvent are the cdp::Json implementation the lean path replaced (copied
//    here unchanged but for names): ParseEvent must keep every decision and message of it, and AppendStoredEvent
//    must write the very bytes of legacy::StoredEvent(...).Dump().
//  - ReferenceBatch is what TrackBatchJson did before: Json::Parse, then ParseEvent per item. ParseEventBatch
//    (straight from simdjson's DOM) must give the same batch status, the same item statuses and the same events.
// Generated batches cover valid and invalid events, duplicate keys, escapes and invalid UTF-8, deep nesting, wrong
// shapes, {"batch": [...]} and over-limit counts and sizes.

#include "events/event_model.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "cdp/query.h"
#include "core/ids.h"
#include "core/json_internal.h"
#include "fmt/format.h"
#include "identity/rules.h"
#include "profiles/profile_model.h"
#include "storage/keys.h"
#include "test_util.h"

namespace cdp::internal {
namespace {

// ---- The references ---------------------------------------------------------------------------------------------

namespace legacy {

// ParsedEvent as it was: properties a Json.
struct ParsedEvent {
  std::string id;
  bool client_id = false;
  std::string type;
  std::string name;
  int64_t time_us = 0;
  std::string profile_id;
  std::vector<RawIdentifier> raw_identifiers;
  std::vector<Identifier> identifiers;
  std::vector<IgnoredIdentifier> ignored_identifiers;
  bool normalized = false;
  Json custom_identifiers;
  std::string session_id;
  std::string device_id;
  std::string source;
  Json properties;
  bool purchase = false;
  int64_t purchase_micros = 0;
};

constexpr std::string_view kEventTypes[] = {"page_view",  "product_view", "add_to_cart", "purchase",
                                            "email_open", "app_usage",    "custom"};
constexpr size_t kMaxShortString = 256;
constexpr size_t kMaxCustomIdentifiers = 16;

bool IsIdentifierField(std::string_view key) {
  for (std::string_view f : {"customerId", "userId", "email", "phone", "shopifyId", "deviceId", "anonymousId"}) {
    if (key == f) return true;
  }
  return false;
}

Status ShortString(const Json& v, std::string_view field, std::string* out) {
  if (!v.is_string()) {
    return Status::InvalidArgument(fmt::format("expected a string, got {}", Json::TypeName(v.type())),
                                   std::string(field));
  }
  if (v.as_string().empty() || v.as_string().size() > kMaxShortString) {
    return Status::InvalidArgument(fmt::format("must have 1 to {} bytes", kMaxShortString), std::string(field));
  }
  *out = v.as_string();
  return Status::OK();
}

Status PurchaseValue(const Json& properties, bool* found, int64_t* micros) {
  for (std::string_view key : {"revenue", "total", "value"}) {
    const Json* v = properties.Find(key);
    if (v == nullptr || v->is_null()) continue;
    std::string field = fmt::format("properties.{}", key);
    if (!v->is_number()) {
      return Status::InvalidArgument(
          fmt::format("a purchase value must be a number, got {}", Json::TypeName(v->type())), field);
    }
    double d = v->as_number();
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

Result<ParsedEvent> ParseEvent(Json&& event, const Options& options, int64_t now_us, size_t* bytes_out = nullptr) {
  int depth = 0;
  size_t bytes = SerializedSize(event, &depth);
  if (bytes_out != nullptr) *bytes_out = bytes;
  if (!event.is_object()) {
    return Status::InvalidArgument(fmt::format("an event must be a JSON object, got {}", Json::TypeName(event.type())));
  }
  if (depth > options.max_json_depth) return CheckJsonDepth(event, options.max_json_depth);  // names the path
  if (bytes > options.max_event_bytes) {  // named by its largest member (the first of equals)
    std::string largest;
    size_t most = 0;
    for (const auto& [key, value] : event.members()) {
      const size_t size = key.size() + value.Dump().size();
      if (size > most) most = size, largest = key;
    }
    return Status::InvalidArgument(fmt::format("event of {} bytes is over the limit of {} bytes ({}: {} bytes)", bytes,
                                               options.max_event_bytes, largest, most),
                                   largest);
  }
  CDP_RETURN_IF_ERROR(CheckUtf8(event));
  ParsedEvent e;
  bool has_timestamp = false;
  for (auto& [key, value] : event.members()) {
    if (value.is_null()) continue;
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
      if (value.is_string()) CDP_RETURN_IF_ERROR(ValidateId(value.as_string(), "id"));  // empty and long too
      CDP_RETURN_IF_ERROR(ShortString(value, key, &e.id));
      e.client_id = true;
    } else if (key == "name") {
      CDP_RETURN_IF_ERROR(ShortString(value, key, &e.name));
    } else if (key == "timestamp") {
      auto t = ParseTimestamp(value);
      if (!t.ok()) return t.status().WithFieldPrefix("timestamp");
      e.time_us = *t;
      has_timestamp = true;
    } else if (key == "properties") {
      if (!value.is_object()) {
        return Status::InvalidArgument(fmt::format("expected an object, got {}", Json::TypeName(value.type())),
                                       "properties");
      }
      e.properties = std::move(value);
    } else if (key == "profileId") {
      if (value.is_string()) CDP_RETURN_IF_ERROR(ValidateId(value.as_string(), "profileId"));  // empty and long too
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
      const std::string type = key == "userId" ? "customerId" : key;
      bool same_type = false;
      for (const RawIdentifier& r : e.raw_identifiers) {
        if (r.type != type) continue;
        // customerId and userId name one identifier type: an event may carry one value of it.
        if (r.value != raw) {
          return Status::InvalidArgument("customerId and userId differ; they name the same identifier (give one)", key);
        }
        same_type = true;
      }
      if (!same_type) e.raw_identifiers.push_back({type, std::move(raw)});
    } else if (key == "identifiers") {
      if (!value.is_object()) {
        return Status::InvalidArgument(
            fmt::format("expected an object of identifier type to value, got {}", Json::TypeName(value.type())),
            "identifiers");
      }
      if (value.size() > kMaxCustomIdentifiers) {
        return Status::InvalidArgument(fmt::format("more than {} identifiers", kMaxCustomIdentifiers), "identifiers");
      }
      for (const auto& [type, v] : value.members()) {
        std::string raw;
        CDP_RETURN_IF_ERROR(ShortString(v, "identifiers." + type, &raw));
        e.raw_identifiers.push_back({type, std::move(raw)});
      }
      e.custom_identifiers = std::move(value);
    } else {
      return Status::InvalidArgument(
          "unknown event field (expected id, type, name, timestamp, properties, sessionId, deviceId, source, "
          "profileId, customerId, userId, email, phone, shopifyId, anonymousId, identifiers)",
          key);
    }
  }
  if (e.type.empty()) return Status::InvalidArgument("an event needs a \"type\"", "type");
  if (e.type == "custom" && e.name.empty()) return Status::InvalidArgument("a custom event needs a \"name\"", "name");
  if (!e.properties.is_object()) e.properties = Json::Object();
  if (e.profile_id.empty() && e.raw_identifiers.empty()) {
    return Status::InvalidArgument(
        "an event needs a profileId or an identifier (customerId, email, phone, shopifyId, deviceId, anonymousId)",
        "profileId");
  }
  if (!has_timestamp) e.time_us = now_us - now_us % 1000;  // timestamps have millisecond precision
  if (has_timestamp) CDP_RETURN_IF_ERROR(CheckNotFuture(e.time_us, now_us, options));  // added since
  if (e.type == "purchase") {
    e.purchase = true;
    bool found = false;
    CDP_RETURN_IF_ERROR(PurchaseValue(e.properties, &found, &e.purchase_micros));
  }
  if (!e.client_id) e.id = NewId();
  return e;
}

Json StoredEvent(ParsedEvent* event, std::string_view profile_id, std::string_view session_id, int64_t received_us) {
  const ParsedEvent& e = *event;
  Json out = Json::Object();
  out.Set("id", e.id);
  out.Set("profileId", profile_id);
  out.Set("type", e.type);
  if (!e.name.empty()) out.Set("name", e.name);
  out.Set("timestamp", FormatTimestamp(e.time_us));
  out.Set("receivedAt", FormatTimestamp(received_us));
  out.Set("sessionId", session_id);
  if (!e.device_id.empty()) out.Set("deviceId", e.device_id);
  if (!e.source.empty()) out.Set("source", e.source);
  for (const RawIdentifier& raw : e.raw_identifiers) {
    if (raw.type == "deviceId" || e.custom_identifiers.Find(raw.type) != nullptr) continue;
    std::string value = raw.value;
    for (const Identifier& id : e.identifiers) {
      if (id.type == raw.type) value = id.value;  // the normalized form (one value per type in an event)
    }
    out.Set(raw.type, std::move(value));
  }
  if (e.custom_identifiers.is_object()) out.Set("identifiers", std::move(event->custom_identifiers));
  out.Set("properties", std::move(event->properties));
  return out;
}

void NormalizeIdentifiers(const IdentityRules& rules, ParsedEvent* e) {
  e->identifiers.clear();
  e->ignored_identifiers.clear();
  for (const RawIdentifier& raw : e->raw_identifiers) {
    Identifier id;
    IgnoredIdentifier why;
    if (rules.Normalize(raw.type, raw.value, &id, &why)) {
      e->identifiers.push_back(std::move(id));
    } else {
      e->ignored_identifiers.push_back(std::move(why));
    }
  }
  e->normalized = true;
}

}  // namespace legacy

// Json::Parse of the batch, then `parse` per item: TrackBatchJson before the lean path.
template <typename Event, typename Parse>
Status JsonBatch(std::string_view text, const Options& options, Parse parse, std::vector<Event>* parsed,
                 std::vector<Status>* statuses) {
  // Items may nest max_json_depth deep below the batch's own one or two levels; ParseEvent checks each item and
  // refuses a deeper one alone, down to the batch's own limit.
  ParseLimits limits{options.max_batch_bytes, options.batch_document_depth()};
  CDP_ASSIGN_OR_RETURN(Json doc, Json::Parse(text, limits));
  if (doc.is_object()) {
    Json* batch = doc.Find("batch");
    if (batch == nullptr) {
      return Status::InvalidArgument("a batch must be a JSON array of events or {\"batch\": [...]}", "batch");
    }
    Json inner = std::move(*batch);
    doc = std::move(inner);
  }
  if (!doc.is_array()) return Status::InvalidArgument("a batch must be a JSON array of events", "batch");
  if (doc.size() > options.max_batch_items) {
    return Status::InvalidArgument(
        fmt::format("batch of {} events is over the limit of {}", doc.size(), options.max_batch_items));
  }
  statuses->assign(doc.size(), Status::OK());
  for (size_t i = 0; i < doc.size(); ++i) {
    auto p = parse(std::move(doc.items()[i]));
    if (p.ok()) {
      parsed->push_back(std::move(p).value());
    } else {
      (*statuses)[i] = p.status();
    }
  }
  return Status::OK();
}

// ---- Comparing ----------------------------------------------------------------------------------------------------

void ExpectSameStatus(const Status& got, const Status& want, const std::string& what) {
  EXPECT_EQ(got.code(), want.code()) << what << "\n got: " << got.ToString() << "\nwant: " << want.ToString();
  EXPECT_EQ(got.message(), want.message()) << what;
  EXPECT_EQ(got.field(), want.field()) << what;
}

template <typename A, typename B>
void ExpectSameCommonFields(const A& got, const B& want, const std::string& what) {
  EXPECT_EQ(got.client_id, want.client_id) << what;
  if (want.client_id) {
    EXPECT_EQ(got.id, want.id) << what;  // generated ids differ
  }
  EXPECT_FALSE(got.id.empty()) << what;
  EXPECT_EQ(got.type, want.type) << what;
  EXPECT_EQ(got.name, want.name) << what;
  EXPECT_EQ(got.time_us, want.time_us) << what;
  EXPECT_EQ(got.profile_id, want.profile_id) << what;
  ASSERT_EQ(got.raw_identifiers.size(), want.raw_identifiers.size()) << what;
  for (size_t i = 0; i < got.raw_identifiers.size(); ++i) {
    EXPECT_EQ(got.raw_identifiers[i].type, want.raw_identifiers[i].type) << what;
    EXPECT_EQ(got.raw_identifiers[i].value, want.raw_identifiers[i].value) << what;
  }
  EXPECT_EQ(got.normalized, want.normalized) << what;
  EXPECT_EQ(got.custom_identifiers.type(), want.custom_identifiers.type()) << what;
  EXPECT_EQ(got.custom_identifiers.Dump(), want.custom_identifiers.Dump()) << what;
  EXPECT_EQ(got.session_id, want.session_id) << what;
  EXPECT_EQ(got.device_id, want.device_id) << what;
  EXPECT_EQ(got.source, want.source) << what;
  EXPECT_EQ(got.purchase, want.purchase) << what;
  EXPECT_EQ(got.purchase_micros, want.purchase_micros) << what;
}

std::shared_ptr<const IdentityRules> RulesWithCustomTypes() {
  Json j = IdentityRules::Defaults()->ToJson();
  for (const char* type : {"loyaltyId", "crmId"})
    j.Find("identifiers")->Push(testing::J(fmt::format(R"({{"type":"{}"}})", type)));
  auto rules = IdentityRules::FromJson(j);
  EXPECT_TRUE(rules.ok()) << rules.status().ToString();
  return rules.ok() ? *rules : IdentityRules::Defaults();
}

struct Counts {
  size_t batches_ok = 0, batch_errors = 0, events = 0, rejected = 0, stored = 0;
};

// Runs ParseEventBatch, the reference and the legacy path on `text` and compares everything they decide; then, for
// every accepted event, AppendStoredEvent against legacy::StoredEvent(...).Dump().
void ExpectSameBatch(const std::string& text, const Options& options, const IdentityRules& rules,
                     Counts* counts = nullptr) {
  const int64_t now = 1'796'083'200'123'456;  // 2026-12-01: the generated times are before it, but 9999's
  const std::string what = "batch " + text.substr(0, 2000);
  std::vector<ParsedEvent> got_parsed;
  std::vector<BatchItemResult> got_results;
  Status got = ParseEventBatch(text, options, now, &got_parsed, &got_results);

  std::vector<ParsedEvent> ref_parsed;
  std::vector<Status> ref_statuses;
  // Events::TrackBatch orders a batch by EventTimeOf before it parses it: the time of every accepted event.
  Status ref = JsonBatch(
      text, options,
      [&](Json&& item) {
        Result<ParsedEvent> parsed = ParseEvent(item, options, now);
        if (parsed.ok()) EXPECT_EQ(EventTimeOf(item, now), parsed->time_us) << item.Dump();
        return parsed;
      },
      &ref_parsed, &ref_statuses);
  std::vector<legacy::ParsedEvent> old_parsed;
  std::vector<Status> old_statuses;
  Status old = JsonBatch(
      text, options, [&](Json&& item) { return legacy::ParseEvent(std::move(item), options, now); }, &old_parsed,
      &old_statuses);

  ExpectSameStatus(got, ref, what);
  ExpectSameStatus(ref, old, what);
  if (!ref.ok()) {
    if (counts != nullptr) ++counts->batch_errors;
    return;
  }
  if (!got.ok()) return;
  if (counts != nullptr) ++counts->batches_ok;
  ASSERT_EQ(got_results.size(), ref_statuses.size()) << what;
  ASSERT_EQ(old_statuses.size(), ref_statuses.size()) << what;
  ASSERT_EQ(got_parsed.size(), ref_parsed.size()) << what;
  ASSERT_EQ(old_parsed.size(), ref_parsed.size()) << what;
  for (size_t i = 0; i < ref_statuses.size(); ++i) {
    const std::string item = "item " + std::to_string(i) + " of " + what;
    ExpectSameStatus(got_results[i].status, ref_statuses[i], item);
    ExpectSameStatus(ref_statuses[i], old_statuses[i], item);
    if (counts != nullptr) (ref_statuses[i].ok() ? counts->events : counts->rejected)++;
  }
  for (size_t k = 0; k < ref_parsed.size(); ++k) {
    const std::string item = "event " + std::to_string(k) + " of " + what;
    ParsedEvent& g = got_parsed[k];
    legacy::ParsedEvent& o = old_parsed[k];
    ExpectSameCommonFields(g, ref_parsed[k], item);
    ExpectSameCommonFields(ref_parsed[k], o, item);
    EXPECT_EQ(g.properties, ref_parsed[k].properties) << item;
    EXPECT_EQ(g.properties, o.properties.Dump()) << item;

    // The stored document, as the engine builds it: identifiers normalized, then the document.
    NormalizeIdentifiers(rules, &g);
    legacy::NormalizeIdentifiers(rules, &o);
    // The identity key of each identifier comes with it (the engine's lookups use these).
    ASSERT_EQ(g.identity_keys.size(), g.identifiers.size()) << item;
    for (size_t i = 0; i < g.identifiers.size(); ++i) {
      EXPECT_EQ(g.identity_keys[i], storage::IdentityKey(g.identifiers[i].type, g.identifiers[i].value)) << item;
    }
    o.id = g.id;  // generated ids differ
    const std::string profile_id = k % 3 == 0 ? "p\"1\\\x01" : "prof-" + std::to_string(k);
    const std::string session_id = k % 4 == 1 ? "" : "sess-\xc3\xa9-" + std::to_string(k);
    const int64_t received_us = now + static_cast<int64_t>(k) * 1001;
    std::string stored = "unrelated prefix";
    AppendStoredEvent(g, profile_id, session_id, FormatTimestamp(received_us), &stored);
    const std::string want = legacy::StoredEvent(&o, profile_id, session_id, received_us).Dump();
    EXPECT_EQ(stored, "unrelated prefix" + want) << item;
    // The session read straight from the text is the parsed document's.
    EXPECT_EQ(StoredEventSession(want), session_id) << item;
    // What the segment index keeps: exactly the stored document's type, name, deviceId, source, sessionId and
    // properties.
    std::string indexed;
    AppendIndexedEvent(g, session_id, &indexed);
    auto indexed_json = Json::Parse(indexed);
    auto want_json = Json::Parse(want);
    ASSERT_TRUE(indexed_json.ok() && want_json.ok()) << item;
    Json kept = Json::Object();
    for (const auto& [key, value] : want_json->members()) {
      if (key == "type" || key == "name" || key == "deviceId" || key == "source" || key == "sessionId" ||
          key == "properties") {
        kept.Set(key, value);
      }
    }
    EXPECT_EQ(indexed_json->Dump(), kept.Dump()) << item;
    if (counts != nullptr) ++counts->stored;
  }
}

// ---- Generating batch texts ------------------------------------------------------------------------------------

class Generator {
 public:
  explicit Generator(uint64_t seed) : rng_(seed) {}

  int Int(int n) { return std::uniform_int_distribution<int>(0, n - 1)(rng_); }
  bool Chance(double percent) { return std::uniform_real_distribution<double>(0, 100)(rng_) < percent; }
  std::string Pick(std::initializer_list<const char*> options) { return *(options.begin() + Int(options.size())); }

  std::string Ws() { return Chance(8) ? Pick({" ", "\n", "\t ", "  ", "\r\n"}) : ""; }

  // String contents (the text between the quotes): plain text, raw UTF-8, escapes of every kind and, rarely,
  // lone surrogates (\ud800, \udc00): they would unescape into invalid UTF-8 (simdjson 3 rejects them as malformed).
  std::string StringBody(int pieces) {
    std::string out;
    for (int i = 0; i < pieces; ++i) {
      if (Chance(0.1)) {
        out += Pick({"\\ud800", "\\udc00", "\\udbff", "\\ud800\\u0041"});
        continue;
      }
      out += Pick({"a",
                   "abc",
                   "Ada",
                   "x y",
                   "42",
                   "caf\xc3\xa9",
                   "\xe6\x97\xa5\xe6\x9c\xac",
                   "\xf0\x9f\x98\x80",
                   "\\n",
                   "\\t",
                   "\\\"",
                   "\\\\",
                   "\\/",
                   "\\b",
                   "\\f",
                   "\\r",
                   "\\u0001",
                   "\\u001f",
                   "\\u0000",
                   "\\u00e9",
                   "\\u2028",
                   "\\ud83d\\ude00",
                   "\\u007f",
                   "<>&'",
                   "\x7f",
                   "-",
                   "_",
                   "."});
    }
    return out;
  }
  std::string Str(int pieces) { return "\"" + StringBody(pieces) + "\""; }

  std::string Number() {
    return Pick({"0",
                 "-0",
                 "1",
                 "-17",
                 "42",
                 "7",
                 "1780000000000",
                 "9223372036854775807",
                 "-9223372036854775808",
                 "9223372036854775808",
                 "18446744073709551615",
                 "1.5",
                 "-0.0",
                 "1e3",
                 "1E+2",
                 "2.5e-3",
                 "0.1",
                 "5e-324",
                 "1.7976931348623157e308",
                 "123456789012345678",
                 "3.141592653589793",
                 "1e22",
                 "12.50",
                 "-1e-7",
                 "0.30000000000000004",
                 "1e12",
                 "1000000000001",
                 "-1e12",
                 "1e13"});
  }

  std::string Scalar() {
    switch (Int(6)) {
      case 0:
        return "null";
      case 1:
        return Chance(50) ? "true" : "false";
      case 2:
      case 3:
        return Number();
      default:
        return Str(1 + Int(3));
    }
  }

  std::string Key() {
    if (Chance(3)) return Str(1 + Int(2));  // escapes, unicode, rarely a lone surrogate
    return "\"" + Pick({"a",       "b",     "c",     "url",         "sku", "qty", "items", "note", "nested", "x y",
                        "revenue", "total", "value", "caf\xc3\xa9", "k1",  "k2",  "k3",    "k4",   "k5",     "k6"}) +
           "\"";
  }

  // A JSON value nested at most `depth` levels (containers).
  std::string Value(int depth) {
    if (depth <= 0 || Chance(45)) return Scalar();
    if (Chance(55)) return ObjectOf(depth);
    std::string out = "[" + Ws();
    int n = Int(4);
    for (int i = 0; i < n; ++i) out += (i ? "," : "") + Ws() + Value(depth - 1) + Ws();
    return out + "]";
  }

  // An object of distinct keys (rarely one repeated).
  std::string ObjectOf(int depth, int max_members = 5) {
    std::vector<std::string> keys;
    int n = Int(max_members + 1);
    for (int i = 0; i < n; ++i) {
      std::string k = Key();
      if (std::find(keys.begin(), keys.end(), k) == keys.end()) keys.push_back(k);
    }
    if (!keys.empty() && Chance(4)) keys.push_back(keys[Int(keys.size())]);
    std::string out = "{" + Ws();
    for (size_t i = 0; i < keys.size(); ++i) {
      out += (i ? "," : "") + Ws() + keys[i] + Ws() + ":" + Ws() + Value(depth - 1) + Ws();
    }
    return out + "}";
  }

  std::string Properties(bool purchase) {
    if (Chance(5)) return Pick({"[1,2]", "\"x\"", "5", "null", "true", "[]"});
    std::string body = ObjectOf(Chance(70) ? 2 : 5);
    if (purchase && Chance(80)) {
      // A purchase value first, in the forms the model distinguishes.
      std::string key = Pick({"revenue", "total", "value"});
      std::string value = Chance(80) ? Number() : Pick({"null", "\"12\"", "[1]", "{}", "true"});
      std::string member = "\"" + key + "\":" + value;
      if (Chance(30)) member = "\"revenue\":null," + member;
      body = body == "{}" ? "{" + member + "}" : "{" + member + "," + body.substr(1);
    }
    return body;
  }

  std::string IdValue() {
    if (Chance(4)) return Pick({"\"bad id!\"", "\"\"", "7", "[]", "{}", "true"});
    if (Chance(1)) return "\"" + std::string(257, 'x') + "\"";
    return "\"" + Pick({"evt_", "e-", "E"}) + std::to_string(Int(1000)) + "\"";
  }

  std::string IdentifierValue(std::initializer_list<const char*> good) {
    if (Chance(3)) return Pick({"7", "[]", "{}", "true", "\"\""});
    if (Chance(1)) return "\"" + std::string(257, 'y') + "\"";
    if (Chance(6)) return Str(1 + Int(3));
    return "\"" + std::string(*(good.begin() + Int(good.size()))) + "\"";
  }

  std::string Event() {
    std::vector<std::pair<std::string, std::string>> fields;  // key (quoted), value
    auto add = [&](const std::string& key, std::string value) { fields.emplace_back("\"" + key + "\"", value); };
    std::string type =
        Pick({"page_view", "purchase", "purchase", "custom", "product_view", "add_to_cart", "email_open", "app_usage"});
    if (Chance(93)) {
      add("type", "\"" + type + "\"");
    } else if (Chance(70)) {
      add("type", Pick({"\"nope\"", "5", "null", "\"\"", "[\"page_view\"]", "{}", "\"PAGE_VIEW\""}));
    }
    if (Chance(50)) add("id", IdValue());
    if (type == "custom" ? Chance(85) : Chance(10)) add("name", Chance(95) ? Str(1 + Int(2)) : "\"\"");
    if (Chance(70)) {
      if (Chance(93)) {
        add("timestamp", Pick({"\"2026-06-01T10:00:00Z\"", "\"2026-06-01T10:00:00.123+02:00\"", "\"2026-06-01\"",
                               "1780000000000", "1780000000000.7", "\"2026-06-01 10:00:00.5z\"", "0",
                               "\"9999-12-31T23:59:59.999Z\"", "1.78e12", "9223372036854775808"}));
      } else {
        add("timestamp", Pick({"\"yesterday\"", "true", "[1]", "{}", "-5", "1e20", "\"2026-02-30\"", "\"\"",
                               "\"2026-06-01T25:00:00Z\"", "18446744073709551615"}));
      }
    }
    if (Chance(65)) add("properties", Properties(type == "purchase"));
    if (Chance(25)) add("profileId", Chance(95) ? "\"p-" + std::to_string(Int(50)) + "\"" : IdValue());
    if (Chance(15)) add("sessionId", IdentifierValue({"s-1", "s-2"}));
    if (Chance(20)) add("source", IdentifierValue({"web", "ios", "crm"}));
    if (Chance(5)) add("receivedAt", Value(2));
    std::string customer = IdentifierValue({"C-1", " C-1 ", "c2", "42"});
    if (Chance(30)) add("customerId", customer);
    if (Chance(15)) add("userId", Chance(60) ? customer : IdentifierValue({"U-9", "C-1"}));
    if (Chance(40)) add("email", IdentifierValue({"Ada@Example.com", "a@b.c", "not-an-email", " x@y.z "}));
    if (Chance(15)) add("phone", IdentifierValue({"+1 (650) 253-0000", "12", "6502530000"}));
    if (Chance(10)) add("shopifyId", IdentifierValue({"77", "shop-1"}));
    if (Chance(20)) add("deviceId", IdentifierValue({"dev-9", "0a0-1", " d "}));
    if (Chance(10)) add("anonymousId", IdentifierValue({"anon-1", "a"}));
    if (Chance(15)) {
      if (Chance(8)) {
        add("identifiers", Pick({"[]", "\"email\"", "5", "true"}));
      } else {
        std::string obj = "{";
        int n = Chance(3) ? 17 + Int(3) : Int(4);
        for (int i = 0; i < n; ++i) {
          std::string key = n > 16 ? "t" + std::to_string(i)
                                   : Pick({"loyaltyId", "crmId", "email", "customerId", "userId", "deviceId", "x"});
          if (Chance(3)) key = StringBody(1);
          obj += (i ? "," : "") + ("\"" + key + "\"") + ":" + IdentifierValue({"L-77", " l-1 ", "a@b.c", "C-1"});
        }
        add("identifiers", obj + "}");
      }
    }
    if (Chance(3)) add(Pick({"color", "Type", "properties2"}), Value(1));
    if (Chance(5)) add("extra", "null");  // an unknown field that is null is skipped
    std::shuffle(fields.begin(), fields.end(), rng_);
    if (!fields.empty() && Chance(5)) {  // a duplicate key: the last value wins, at the first one's position
      auto dup = fields[Int(fields.size())];
      dup.second = Chance(50) ? Value(1) : "null";
      fields.insert(fields.begin() + Int(fields.size() + 1), dup);
    }
    std::string out = "{" + Ws();
    for (size_t i = 0; i < fields.size(); ++i) {
      out += (i ? "," : "") + Ws() + fields[i].first + Ws() + ":" + Ws() + fields[i].second + Ws();
    }
    return out + "}";
  }

  std::string Item() {
    if (Chance(4)) return Pick({"5", "\"page_view\"", "null", "[]", "[{\"type\":\"page_view\"}]", "true", "{}"});
    return Event();
  }

  std::string BatchText(int max_items) {
    std::string items = "[" + Ws();
    int n = Int(max_items + 1);
    for (int i = 0; i < n; ++i) items += (i ? "," : "") + Ws() + Item() + Ws();
    items += "]";
    std::string text = items;
    if (Chance(20)) {
      std::string before = Chance(25) ? Pick({"\"x\":1,", "\"batch\":5,", "\"sentAt\":\"now\","}) : "";
      std::string after = Chance(20) ? "," + std::string(Pick({"\"x\":", "\"context\":"})) + Value(6) : "";
      if (Chance(5)) after += ",\"batch\":" + Pick({"5", "{}", "[]"});
      text = "{" + before + "\"batch\":" + items + after + "}";
    }
    if (Chance(1)) text.pop_back();                      // malformed
    if (Chance(1)) text += Pick({"x", "]", ",", "  "});  // trailing garbage (or just spaces)
    if (Chance(1)) text = Pick({"", "{}", "5", "\"x\"", "null", "{\"other\":[]}", "[1e400]", "[1,", "[\"\xff\"]"});
    return text;
  }

 private:
  std::mt19937_64 rng_;
};

// ---- Tests --------------------------------------------------------------------------------------------------------

TEST(EventModelTest, GeneratedBatchesMatchTheReferencesUnderDefaultLimits) {
  Generator gen(20261128);
  std::shared_ptr<const IdentityRules> custom = RulesWithCustomTypes();
  Counts counts;
  for (int i = 0; i < 8000 && !::testing::Test::HasFailure(); ++i) {
    const IdentityRules& rules = i % 2 ? *custom : *IdentityRules::Defaults();
    ExpectSameBatch(gen.BatchText(10), Options{}, rules, &counts);
  }
  // The generator reaches every kind of outcome, in volume (about 18000 accepted, 19000 rejected, 400 batch errors).
  EXPECT_GT(counts.events, 10000u);
  EXPECT_GT(counts.rejected, 10000u);
  EXPECT_GT(counts.batch_errors, 100u);
  EXPECT_EQ(counts.stored, counts.events);
}

TEST(EventModelTest, GeneratedBatchesMatchTheReferencesUnderTightLimits) {
  Generator gen(7);
  std::shared_ptr<const IdentityRules> custom = RulesWithCustomTypes();
  Counts counts;
  for (int i = 0; i < 8000 && !::testing::Test::HasFailure(); ++i) {
    Options options;
    options.max_json_depth = gen.Chance(10) ? 1 : 2 + gen.Int(4);
    options.max_event_bytes = 100 + static_cast<size_t>(gen.Int(500));
    options.max_batch_items = 2 + static_cast<size_t>(gen.Int(10));
    options.max_batch_bytes = gen.Chance(10) ? 200 + static_cast<size_t>(gen.Int(2000)) : Options{}.max_batch_bytes;
    ExpectSameBatch(gen.BatchText(10), options, i % 2 ? *custom : *IdentityRules::Defaults(), &counts);
  }
  // About 4400 accepted, 6600 rejected, 4300 batch errors.
  EXPECT_GT(counts.events, 2000u);
  EXPECT_GT(counts.rejected, 3000u);
  EXPECT_GT(counts.batch_errors, 1000u);
}

// SerializedSize is the length of Dump's text, numbers included (integers are counted without being written).
TEST(EventModelTest, SerializedSizeIsTheDumpedLength) {
  Json doc = Json::Object();
  Json numbers = Json::Array();
  for (int64_t v : {int64_t{0}, int64_t{7}, int64_t{9}, int64_t{10}, int64_t{99}, int64_t{100}, int64_t{-1},
                    int64_t{-9}, int64_t{-10}, int64_t{1234567890123}, std::numeric_limits<int64_t>::max(),
                    std::numeric_limits<int64_t>::min()}) {
    int depth = 0;
    EXPECT_EQ(SerializedSize(Json(v), &depth), Json(v).Dump().size()) << v;
    numbers.Push(v);
  }
  for (double d : {0.5, -2.25, 1e300, 3.0}) numbers.Push(d);
  doc.Set("numbers", std::move(numbers));
  doc.Set("text", "a \"quoted\" line\n");
  doc.Set("nested", Json::Object().Set("flag", true).Set("none", Json()));
  int depth = 0;
  EXPECT_EQ(SerializedSize(doc, &depth), doc.Dump().size()) << doc.Dump();
  EXPECT_EQ(depth, 2);
}

// JsonStringSize (SerializedSize's strings and keys) is the size AppendJsonString writes, for every byte that is
// escaped, at every position relative to the 8-byte blocks it skips, and for multi-byte UTF-8.
TEST(EventModelTest, StringSizeIsTheEscapedLength) {
  std::vector<std::string> specials;
  for (int c = 0; c < 0x20; ++c) specials.push_back(std::string(1, static_cast<char>(c)));
  for (std::string_view more : {"\"", "\\", "/", "a", "\x7f", "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80"}) {
    specials.emplace_back(more);
  }
  int checked = 0;
  for (const std::string& special : specials) {
    for (size_t before = 0; before <= 17; ++before) {
      for (size_t after : {size_t{0}, size_t{1}, size_t{8}, size_t{13}}) {
        const std::string s = std::string(before, 'x') + special + std::string(after, 'y') + special;
        std::string out;
        AppendJsonString(s, &out);
        ASSERT_EQ(JsonStringSize(s), out.size()) << "special byte " << static_cast<int>(special[0]) << " at " << before;
        int depth = 0;
        bool ascii = true;
        ASSERT_EQ(SerializedSize(Json(s), &depth, &ascii), Json(s).Dump().size());
        EXPECT_EQ(ascii, static_cast<unsigned char>(special[0]) < 0x80);
        ++checked;
      }
    }
  }
  EXPECT_EQ(checked, 40 * 18 * 4);
}

// A string that is not valid UTF-8 is refused, with its path, wherever it is (a value, a key, an array item, after
// a run of ASCII); valid UTF-8 beyond ASCII is accepted.
TEST(EventModelTest, InvalidUtf8IsRefusedWithItsPath) {
  const int64_t now = *ParseTimestamp("2026-03-01T10:00:00Z");
  auto event = [](const Json& properties) {
    Json e = Json::Object().Set("type", "page_view").Set("profileId", "p1");
    e.Set("timestamp", "2026-03-01T09:00:00Z").Set("properties", properties);
    return e;
  };
  struct Case {
    Json properties;
    std::string field;
  };
  const std::string bad = "a long enough ASCII prefix \xff\xfe";
  std::vector<Case> cases;
  cases.push_back({Json::Object().Set("x", bad), "properties.x"});
  cases.push_back({Json::Object().Set("list", Json::Array().Push("ok").Push(bad)), "properties.list[1]"});
  cases.push_back({Json::Object().Set("deep", Json::Object().Set("er", "\xc3")), "properties.deep.er"});
  cases.push_back({Json::Object().Set("k\xff", 1), "properties"});
  // The bad byte inside an 8-byte word the size count skips whole (its first), in a value and in a key.
  cases.push_back({Json::Object().Set("y",
                                      "abcdefg\xff"
                                      "12345678"),
                   "properties.y"});
  cases.push_back({Json::Object().Set("abcdefg\xff"
                                      "12345678",
                                      1),
                   "properties"});
  for (const Case& c : cases) {
    auto parsed = ParseEvent(event(c.properties), Options(), now);
    ASSERT_FALSE(parsed.ok()) << c.field;
    EXPECT_TRUE(parsed.status().IsInvalidArgument()) << parsed.status().ToString();
    EXPECT_EQ(parsed.status().field(), c.field) << parsed.status().ToString();
  }
  auto fine = ParseEvent(event(Json::Object().Set("city", "S\xc3\xa3o Paulo \xe2\x82\xac")), Options(), now);
  EXPECT_TRUE(fine.ok()) << fine.status().ToString();
}

std::string Batch(const std::vector<std::string>& items) {
  std::string out = "[";
  for (size_t i = 0; i < items.size(); ++i) out += (i ? "," : "") + items[i];
  return out + "]";
}

// Hand-picked items: each decision of the model, once.
const std::vector<std::string>& Items() {
  static const std::vector<std::string> items = {
      // Accepted.
      R"({"type":"page_view","email":"Ada@Example.com","properties":{"url":"/"}})",
      R"({"id":"evt_1","type":"purchase","customerId":" C-1 ","timestamp":"2026-06-01T10:00:00.123+02:00",)"
      R"("properties":{"revenue":12.5,"items":[{"sku":"a","qty":2}],"note":"caf\u00e9 \"x\"\n\t\u0001"}})",
      R"({"type":"purchase","profileId":"p-1","properties":{"revenue":null,"total":7}})",
      R"({"type":"purchase","profileId":"p-1","properties":{"value":1e3,"x":1.50,"y":-0,"z":-0.0}})",
      R"({"type":"purchase","profileId":"p-1"})",
      R"({"type":"custom","name":"sign_up","deviceId":"dev-9","phone":"+1 (650) 253-0000","source":"ios"})",
      R"({"type":"app_usage","shopifyId":"77","sessionId":"s-1","receivedAt":"ignored","timestamp":1780000000000})",
      R"({"type":"page_view","email":"a@b.c","timestamp":1780000000000.7,"properties":null})",
      R"({"type":"page_view","email":"a@b.c","properties":{"big":9223372036854775808,"neg":-9223372036854775808,)"
      R"("max":9223372036854775807,"u64":18446744073709551615,"pi":3.141592653589793,"tiny":5e-324,)"
      R"("emoji":"\ud83d\ude00","u":"\u2028","raw":"日本"}})",
      R"({"type":"page_view","email":"a@b.c","properties":{"a":{"b":{"c":[[[]]]}},"e":{},"f":[]}})",
      R"({"type":"email_open","email":"x@y.z","id":null,"name":null,"properties":{"k":null},"nothing":null})",
      R"({"type":"page_view","customerId":"C-1","userId":"C-1"})",
      R"({"type":"page_view","userId":"U-1","anonymousId":"anon"})",
      R"({"type":"page_view","identifiers":{"loyaltyId":" L-77 ","email":"A@B.C"},"email":"a@b.c"})",
      R"({"type":"page_view","email":"a@b.c","identifiers":{"customerId":"x"},"customerId":"x"})",
      R"({"type":"page_view","identifiers":{}, "profileId":"p-2"})",
      R"({"type":"page_view","email":"not-an-email","phone":"12"})",
      // Rejected item by item.
      R"({"type":"page_view","customerId":"C-1","userId":"C-2"})",
      R"({"type":"page_view","identifiers":{"customerId":"a"},"customerId":"b"})",
      R"({"type":"page_view","identifiers":[]})",
      R"({"type":"page_view","identifiers":{"a":"1","b":"2","c":"3","d":"4","e":"5","f":"6","g":"7","h":"8",)"
      R"("i":"9","j":"10","k":"11","l":"12","m":"13","n":"14","o":"15","p":"16","q":"17"}})",
      R"({"type":"page_view","identifiers":{"loyaltyId":7}})",
      R"({"type":"page_view","identifiers":{"loyaltyId":""}})",
      R"({"type":"custom","email":"a@b.c"})",
      R"({"type":"nope","email":"a@b.c"})",
      R"({"email":"a@b.c"})",
      R"({"type":"page_view"})",
      R"({"type":"page_view","email":"a@b.c","id":"bad id!"})",
      R"({"type":"page_view","email":"a@b.c","id":""})",
      R"({"type":"page_view","email":"a@b.c","profileId":7})",
      R"({"type":"page_view","email":"a@b.c","color":"red"})",
      R"({"type":"page_view","email":"a@b.c","properties":[1,2]})",
      R"({"type":"page_view","email":"a@b.c","timestamp":"yesterday"})",
      R"({"type":"page_view","email":"a@b.c","timestamp":true})",
      R"({"type":"page_view","email":"a@b.c","timestamp":[1]})",
      R"({"type":"page_view","email":"a@b.c","timestamp":-5})",
      R"({"type":"page_view","email":"a@b.c","timestamp":"2099-01-01T00:00:00Z"})",
      R"({"type":"purchase","email":"a@b.c","properties":{"revenue":"12"}})",
      R"({"type":"purchase","email":"a@b.c","properties":{"total":[1]}})",
      R"({"type":"purchase","email":"a@b.c","properties":{"total":1e13}})",
      R"({"type":["page_view"],"email":"a@b.c"})",
      R"({"type":"page_view","source":""})",
      "5",
      "\"page_view\"",
      "null",
      "[]",
      // Duplicate keys: the last wins, at the first one's position (decided on the cdp::Json).
      R"({"type":"nope","email":"a@b.c","type":"page_view"})",
      R"({"type":"page_view","email":"a@b.c","properties":{"a":1,"b":2,"a":3}})",
      R"({"type":"page_view","email":"a@b.c","properties":{"a":{"x":1,"x":[2]}},"properties":{"b":1}})",
      R"({"type":"page_view","email":"a@b.c","properties":{"a":1},"properties":null})",
      R"({"type":"page_view","identifiers":{"crmId":"1","crmId":2},"email":"a@b.c"})",
      R"({"type":"page_view","customerId":"C-1","userId":"C-2","userId":"C-1"})",
      // Invalid UTF-8 after unescaping (decided on the cdp::Json: CheckUtf8 names the path).
      R"({"type":"page_view","email":"a@b.c","properties":{"s":"\ud800"}})",
      R"({"type":"page_view","email":"a@b.c","properties":{"\udc00":1}})",
      R"({"type":"page_view","email":"\ud800@b.c"})",
  };
  return items;
}

TEST(EventModelTest, HandPickedItemsMatchTheReferences) {
  std::shared_ptr<const IdentityRules> custom = RulesWithCustomTypes();
  for (const IdentityRules* rules : {IdentityRules::Defaults().get(), custom.get()}) {
    for (const std::string& item : Items()) ExpectSameBatch(Batch({item}), Options{}, *rules);
    ExpectSameBatch(Batch(Items()), Options{}, *rules);
    ExpectSameBatch("{\"batch\":" + Batch(Items()) + "}", Options{}, *rules);
  }
}

TEST(EventModelTest, WholeBatchErrorsMatchTheReference) {
  const IdentityRules& rules = *IdentityRules::Defaults();
  for (const std::string& text :
       {std::string(""), std::string("not json"), std::string("[1,"), std::string("{}"), std::string("5"),
        std::string("\"x\""), std::string("null"), std::string("[]"), std::string("{\"batch\":5}"),
        std::string("{\"batch\":{}}"), std::string("{\"other\":[]}"), std::string("{\"batch\":[],\"batch\":5}"),
        std::string("{\"batch\":5,\"batch\":[]}"), std::string("[1e400]"), std::string("[\"\xff\"]"),
        std::string("[18446744073709551616]"), std::string("[{\"type\":\"page_view\"}] x")}) {
    ExpectSameBatch(text, Options{}, rules);
  }
}

TEST(EventModelTest, LimitsMatchTheReference) {
  const IdentityRules& rules = *IdentityRules::Defaults();
  Options options;
  options.max_json_depth = 4;
  options.max_event_bytes = 120;
  options.max_batch_items = 3;
  const std::string ok = R"({"type":"page_view","email":"a@b.c"})";
  std::vector<std::string> items = {
      ok,
      R"({"type":"page_view","email":"a@b.c","properties":{"a":{"b":1}}})",              // depth 3
      R"({"type":"page_view","email":"a@b.c","properties":{"a":{"b":{"c":1}}}})",        // depth 4
      R"({"type":"page_view","email":"a@b.c","properties":{"a":{"b":{"c":[1]}}}})",      // depth 5: item rejected
      R"({"type":"page_view","email":"a@b.c","properties":{"a":{"b":{"c":[[1]]}}}})",    // depth 6
      R"({"type":"page_view","email":"a@b.c","properties":{"a":{"b":{"c":[[[1]]]}}}})",  // depth 7: batch fails
      R"({"type":"page_view","email":"a@b.c","properties":{"long":"0123456789012345678901234567890123456789"}})",
      R"({"type":"page_view","email":"a@b.c","properties":{"long":"0123456789012345678901234567890123456789012"}})",
      R"({"type":"page_view","email":"a@b.c","properties":{"n":"\u0001\u0002\u0003\u0004\u0005\u0006\u0007"}})",
  };
  for (const std::string& item : items) {
    ExpectSameBatch(Batch({item}), options, rules);
    ExpectSameBatch("{\"batch\":" + Batch({item}) + "}", options, rules);
    ExpectSameBatch("{\"x\":" + Batch({item}) + ",\"batch\":[]}", options, rules);
    ExpectSameBatch("{\"batch\":[],\"x\":" + Batch({item}) + ",\"batch\":[]}", options, rules);
  }
  ExpectSameBatch(Batch({ok, ok, ok}), options, rules);
  ExpectSameBatch(Batch({ok, ok, ok, ok}), options, rules);  // one item too many
  ExpectSameBatch("{\"batch\":" + Batch({ok, ok, ok, ok}) + "}", options, rules);
  ExpectSameBatch(Batch({ok, ok, ok, ok, "[[[[[[[1]]]]]]]"}), options, rules);  // too deep comes first
  options.max_batch_bytes = 60;
  ExpectSameBatch(Batch({ok}), options, rules);
  ExpectSameBatch(Batch({ok, ok}), options, rules);  // over max_batch_bytes
}

TEST(EventModelTest, LargeObjectsWithDuplicateKeysMatchTheReference) {
  // Objects of more keys than the lean path compares pairwise.
  std::string props = "{";
  for (int i = 0; i < 40; ++i) props += (i ? "," : "") + fmt::format("\"k{}\":{}", i, i);
  std::string unique = props + "}";
  std::string dup_last = props + ",\"k3\":\"again\"}";
  std::string dup_first = "{\"k39\":0," + props.substr(1) + "}";
  for (const std::string& p : {unique, dup_last, dup_first}) {
    ExpectSameBatch(Batch({R"({"type":"page_view","email":"a@b.c","properties":)" + p + "}"}), Options{},
                    *IdentityRules::Defaults());
  }
}

TEST(EventModelTest, StoredDocumentHoldsTheEvent) {
  std::vector<ParsedEvent> parsed;
  std::vector<BatchItemResult> results;
  ASSERT_TRUE(ParseEventBatch(Batch({Items()[1]}), Options{}, 1'796'083'200'000'000, &parsed, &results).ok());
  ASSERT_EQ(parsed.size(), 1u);
  NormalizeIdentifiers(*IdentityRules::Defaults(), &parsed[0]);
  std::string stored;
  AppendStoredEvent(parsed[0], "p\"1", "s\\1", "2026-01-01T00:00:00.000Z", &stored);
  Json doc = testing::Unwrap(Json::Parse(stored));
  EXPECT_EQ(doc.Find("profileId")->as_string(), "p\"1");
  EXPECT_EQ(doc.Find("sessionId")->as_string(), "s\\1");
  EXPECT_EQ(doc.Find("customerId")->as_string(), "C-1");  // normalized (trimmed)
  EXPECT_EQ(doc.FindPath("properties.note")->as_string(), "caf\xc3\xa9 \"x\"\n\t\x01");
  EXPECT_EQ(doc.Find("timestamp")->as_string(), "2026-06-01T08:00:00.123Z");
  EXPECT_EQ(doc.Find("receivedAt")->as_string(), "2026-01-01T00:00:00.000Z");
}

// EventTimeOf, by which Events::TrackBatch orders a batch before parsing it, is the time ParseEvent gives: the
// "timestamp" (of a key given twice, the last, as Json::Parse keeps it) unless null, else the call's time to the
// millisecond.
TEST(EventModelTest, EventTimeOfIsTheTimeParseEventGives) {
  const int64_t now = 1'796'083'200'123'456;
  for (const char* text : {
           R"({"type":"page_view","email":"a@b.c"})",
           R"({"type":"page_view","email":"a@b.c","timestamp":null})",
           R"({"type":"page_view","email":"a@b.c","timestamp":"2026-06-01T10:00:00.123+02:00"})",
           R"({"type":"page_view","email":"a@b.c","timestamp":1780000000000})",
           R"({"timestamp":"2026-01-01T00:00:00Z","type":"page_view","email":"a@b.c","timestamp":"2026-02-01"})",
           R"({"timestamp":"2026-01-01T00:00:00Z","type":"page_view","email":"a@b.c","timestamp":null})",
       }) {
    Json event = Json::Parse(text).value();
    Result<ParsedEvent> parsed = ParseEvent(event, Options{}, now);
    ASSERT_TRUE(parsed.ok()) << text << ": " << parsed.status().ToString();
    EXPECT_EQ(EventTimeOf(event, now), parsed->time_us) << text;
  }
  EXPECT_EQ(EventTimeOf(Json::Parse(R"({"type":"page_view"})").value(), now), now - now % 1000);
}

// StoredEventSession reads the text only where the top-level member is sure; elsewhere it parses. Each document
// here answers as a parse does, including those whose first `,"sessionId":"` is nested or whose value has escapes.
TEST(EventModelTest, StoredEventSessionAnswersAsAParse) {
  const std::vector<std::string> docs = {
      R"({"id":"e","profileId":"p","sessionId":"s1","properties":{"sessionId":"nested"}})",
      R"({"id":"e","properties":{"x":1,"sessionId":"nested"},"sessionId":"top"})",
      R"({"id":"e","tags":["a","sessionId"],"x":{"y":2},"sessionId":"top"})",
      R"({"id":"{[","profileId":"p","sessionId":"after braces in a string"})",
      R"({"id":"a,\"sessionId\":\"fake","sessionId":"real"})",
      R"({"id":"e","sessionId":"with \"quotes\" and \\ slash"})",
      R"({"id":"e","sessionId":"café"})",
      R"({"id":"e","sessionId":"caf)"
      "Ã©"
      R"("})",
      R"({"id":"e","profileId":"p"})",
      R"({"id":"e","sessionId":42})",
      R"({"sessionId":"first member has no comma"})",
      R"(["x",{"a":1},"sessionId"])",
      R"({"id":"e","sessionId":")",  // cut short: not JSON
      "",
  };
  for (const std::string& doc : docs) {
    std::string want;
    if (auto parsed = Json::Parse(doc); parsed.ok() && parsed->is_object()) {
      const Json* s = parsed->Find("sessionId");
      if (s != nullptr && s->is_string()) want = s->as_string();
    }
    EXPECT_EQ(StoredEventSession(doc), want) << doc;
  }
  EXPECT_EQ(StoredEventSession(R"({"id":"e","properties":{"x":1,"sessionId":"nested"},"sessionId":"top"})"), "top");
  EXPECT_EQ(StoredEventSession(R"({"id":"a,\"sessionId\":\"fake","sessionId":"real"})"), "real");
}

TEST(EventModelTest, ParseEventLeavesItsInputAlone) {
  // ParseEvent takes a const Json: TrackBatch no longer copies the caller's events.
  const Json event = testing::J(R"({"type":"page_view","email":"a@b.c","identifiers":{"crmId":"1"},)"
                                R"("properties":{"a":[1,{"b":"c"}]}})");
  const std::string before = event.Dump();
  Result<ParsedEvent> p = ParseEvent(event, Options{}, 0);
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_EQ(event.Dump(), before);
  EXPECT_EQ(p->properties, R"({"a":[1,{"b":"c"}]})");
  EXPECT_EQ(p->custom_identifiers.Dump(), R"({"crmId":"1"})");
}

}  // namespace
}  // namespace cdp::internal
