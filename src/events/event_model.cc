// Copyright 2026 The libcdp Authors.

#include "events/event_model.h"

#include <cmath>

#include "cdp/query.h"
#include "core/ids.h"
#include "core/json_internal.h"
#include "fmt/format.h"
#include "profiles/profile_model.h"

namespace cdp::internal {

namespace {

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

// Purchase value: properties.revenue, else .total, else .value.
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

}  // namespace

Result<ParsedEvent> ParseEvent(Json&& event, const Options& options, int64_t now_us, size_t* bytes_out) {
  int depth = 0;
  size_t bytes = SerializedSize(event, &depth);
  if (bytes_out != nullptr) *bytes_out = bytes;
  if (!event.is_object()) {
    return Status::InvalidArgument(fmt::format("an event must be a JSON object, got {}", Json::TypeName(event.type())));
  }
  if (depth > options.max_json_depth) {
    return Status::InvalidArgument(fmt::format("JSON nested deeper than {} levels", options.max_json_depth));
  }
  if (bytes > options.max_event_bytes) {
    return Status::ResourceExhausted(
        fmt::format("event of {} bytes is over the limit of {} bytes", bytes, options.max_event_bytes));
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
      CDP_RETURN_IF_ERROR(ShortString(value, key, &e.id));
      CDP_RETURN_IF_ERROR(ValidateId(e.id, "id"));
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
      CDP_RETURN_IF_ERROR(ShortString(value, key, &e.profile_id));
      CDP_RETURN_IF_ERROR(ValidateId(e.profile_id, "profileId"));
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
