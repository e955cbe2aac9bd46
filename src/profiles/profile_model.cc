// Copyright 2026 The libcdp Authors.

#include "profiles/profile_model.h"

#include <string_view>

#include "cdp/query.h"
#include "core/json_internal.h"
#include "fmt/format.h"

namespace cdp::internal {

namespace {

constexpr std::string_view kStringAttributes[] = {"firstName", "lastName", "email",     "phone",
                                                  "country",   "city",     "postalCode"};
constexpr std::string_view kDerivedTraits[] = {"ltv",           "aov",          "purchaseCount", "lastPurchaseDate",
                                               "firstSeenDate", "lastSeenDate", "eventCount"};
constexpr std::string_view kConsentChannels[] = {"email", "sms", "tracking"};
constexpr size_t kMaxStringBytes = 1024;
constexpr size_t kMaxListItems = 1000;

template <size_t N>
bool OneOf(std::string_view s, const std::string_view (&list)[N]) {
  for (auto item : list) {
    if (item == s) return true;
  }
  return false;
}

Status TypeError(std::string field, std::string_view expected, const Json& got) {
  return Status::InvalidArgument(fmt::format("expected {}, got {}", expected, Json::TypeName(got.type())),
                                 std::move(field));
}

Status CheckString(const Json& v, const std::string& field) {
  if (!v.is_string()) return TypeError(field, "a string", v);
  if (v.as_string().size() > kMaxStringBytes) {
    return Status::InvalidArgument(fmt::format("longer than {} bytes", kMaxStringBytes), field);
  }
  return Status::OK();
}

// A list of distinct strings, order kept.
Result<Json> StringList(const Json& v, const std::string& field, bool normalize_as_device) {
  if (!v.is_array()) return TypeError(field, "an array of strings", v);
  if (v.size() > kMaxListItems) {
    return Status::InvalidArgument(fmt::format("more than {} items", kMaxListItems), field);
  }
  Json out = Json::Array();
  size_t i = 0;
  for (const Json& item : v.items()) {
    std::string path = fmt::format("{}[{}]", field, i++);
    CDP_RETURN_IF_ERROR(CheckString(item, path));
    Json value = item;
    if (normalize_as_device) {
      auto n = NormalizeIdentifier("deviceId", item.as_string());
      if (!n.ok()) return Status::InvalidArgument(n.status().message(), path);
      value = Json(*n);
    }
    bool seen = false;
    for (const Json& existing : out.items()) seen = seen || existing == value;
    if (!seen) out.Push(std::move(value));
  }
  return out;
}

Result<Json> NormalizeExternalIds(const Json& in) {
  Json out = Json::Object();
  if (in.is_null()) return out;
  if (!in.is_object()) return TypeError("externalIds", "an object", in);
  for (const auto& [key, value] : in.members()) {
    std::string field = "externalIds." + key;
    if (value.is_null()) continue;
    if (key == "deviceIds") {
      CDP_ASSIGN_OR_RETURN(Json list, StringList(value, field, true));
      if (list.size() > 0) out.Set(key, std::move(list));
    } else if (key == "email" || key == "phone" || key == "customerId" || key == "shopifyId") {
      CDP_RETURN_IF_ERROR(CheckString(value, field));
      auto n = NormalizeIdentifier(key, value.as_string());
      if (!n.ok()) return Status::InvalidArgument(n.status().message(), field);
      out.Set(key, std::move(n).value());
    } else {
      return Status::InvalidArgument("unknown external id (expected shopifyId, email, phone, customerId, deviceIds)",
                                     field);
    }
  }
  return out;
}

Result<Json> NormalizeAttributes(const Json& in) {
  Json out = Json::Object();
  if (in.is_null()) return out;
  if (!in.is_object()) return TypeError("attributes", "an object", in);
  for (const auto& [key, value] : in.members()) {
    std::string field = "attributes." + key;
    if (value.is_null()) continue;
    if (OneOf(key, kStringAttributes)) {
      CDP_RETURN_IF_ERROR(CheckString(value, field));
      out.Set(key, value);
    } else if (key == "tags") {
      CDP_ASSIGN_OR_RETURN(Json list, StringList(value, field, false));
      out.Set(key, std::move(list));
    } else if (key == "customFields") {
      if (!value.is_object()) return TypeError(field, "an object", value);
      out.Set(key, value);
    } else {
      return Status::InvalidArgument("unknown attribute (custom data belongs in attributes.customFields)", field);
    }
  }
  return out;
}

Result<Json> NormalizeConsent(const Json& in) {
  Json out = Json::Object();
  if (in.is_null()) return out;
  if (!in.is_object()) return TypeError("consent", "an object", in);
  for (const auto& [key, value] : in.members()) {
    std::string field = "consent." + key;
    if (key == "updatedAt" || value.is_null()) continue;  // maintained by libcdp
    if (!OneOf(key, kConsentChannels)) {
      return Status::InvalidArgument("unknown consent channel (expected email, sms, tracking)", field);
    }
    if (!value.is_bool()) return TypeError(field, "a boolean", value);
    out.Set(key, value);
  }
  return out;
}

Result<Json> NormalizeComputed(const Json& in) {
  Json out = Json::Object();
  if (in.is_null()) return out;
  if (!in.is_object()) return TypeError("computed", "an object", in);
  for (const auto& [key, value] : in.members()) {
    std::string field = "computed." + key;
    if (OneOf(key, kDerivedTraits)) continue;  // derived from events: read-only, ignored
    if (key != "churnRisk" && key != "engagementScore") {
      return Status::InvalidArgument("unknown computed trait (writable: churnRisk, engagementScore)", field);
    }
    if (value.is_null()) continue;
    if (!value.is_number()) return TypeError(field, "a number", value);
    double max = key == "churnRisk" ? 1.0 : 100.0;
    if (!(value.as_number() >= 0 && value.as_number() <= max)) {
      return Status::InvalidArgument(fmt::format("must be between 0 and {}", max), field);
    }
    out.Set(key, value);
  }
  return out;
}

}  // namespace

int JsonDepth(const Json& value) {
  int deepest = 0;
  if (value.is_array()) {
    for (const Json& item : value.items()) deepest = std::max(deepest, JsonDepth(item));
  } else if (value.is_object()) {
    for (const auto& m : value.members()) deepest = std::max(deepest, JsonDepth(m.second));
  } else {
    return 0;
  }
  return deepest + 1;
}

namespace {

size_t EscapedSize(std::string_view s) {
  size_t n = 2;
  for (unsigned char c : s) {
    if (c == '"' || c == '\\' || c == '\n' || c == '\r' || c == '\t' || c == '\b' || c == '\f') {
      n += 2;
    } else if (c < 0x20) {
      n += 6;
    } else {
      n += 1;
    }
  }
  return n;
}

}  // namespace

size_t SerializedSize(const Json& value, int* depth) {
  *depth = value.is_array() || value.is_object() ? 1 : 0;
  switch (value.type()) {
    case Json::Type::kNull:
      return 4;
    case Json::Type::kBool:
      return value.as_bool() ? 4 : 5;
    case Json::Type::kString:
      return EscapedSize(value.as_string());
    case Json::Type::kInt:
    case Json::Type::kDouble: {
      std::string text;
      value.DumpTo(&text);  // short: fits the small-string buffer, no allocation
      return text.size();
    }
    case Json::Type::kArray: {
      size_t n = 2 + (value.size() > 0 ? value.size() - 1 : 0);
      for (const Json& item : value.items()) {
        int d = 0;
        n += SerializedSize(item, &d);
        *depth = std::max(*depth, d + 1);
      }
      return n;
    }
    case Json::Type::kObject: {
      size_t n = 2 + (value.size() > 0 ? value.size() - 1 : 0);
      for (const auto& [key, item] : value.members()) {
        int d = 0;
        n += EscapedSize(key) + 1 + SerializedSize(item, &d);
        *depth = std::max(*depth, d + 1);
      }
      return n;
    }
  }
  return 0;
}

Result<Json> NormalizeProfileInput(const Json& input) {
  if (!input.is_object()) return TypeError("", "a JSON object", input);
  CDP_RETURN_IF_ERROR(CheckUtf8(input));
  Json external_ids, attributes, consent, computed;
  for (const auto& [key, value] : input.members()) {
    if (key == "externalIds") {
      CDP_ASSIGN_OR_RETURN(external_ids, NormalizeExternalIds(value));
    } else if (key == "attributes") {
      CDP_ASSIGN_OR_RETURN(attributes, NormalizeAttributes(value));
    } else if (key == "consent") {
      CDP_ASSIGN_OR_RETURN(consent, NormalizeConsent(value));
    } else if (key == "computed") {
      CDP_ASSIGN_OR_RETURN(computed, NormalizeComputed(value));
    } else if (key == "id" || key == "segments" || key == "createdAt" || key == "updatedAt") {
      // read-only here: id is handled by the caller, the rest are maintained by libcdp
    } else {
      return Status::InvalidArgument("unknown profile field (expected id, externalIds, attributes, computed, consent)",
                                     key);
    }
  }
  if (!external_ids.is_object()) external_ids = Json::Object();
  if (!attributes.is_object()) attributes = Json::Object();
  // attributes.email / phone name the person too: use them when externalIds lacks them.
  for (std::string_view key : {std::string_view("email"), std::string_view("phone")}) {
    const Json* attr = attributes.Find(key);
    if (attr != nullptr && external_ids.Find(key) == nullptr) {
      auto n = NormalizeIdentifier(key, attr->as_string());
      if (!n.ok()) return Status::InvalidArgument(n.status().message(), fmt::format("attributes.{}", key));
      external_ids.Set(key, std::move(n).value());
    }
  }
  Json out = Json::Object();
  out.Set("externalIds", std::move(external_ids));
  out.Set("attributes", std::move(attributes));
  out.Set("consent", consent.is_object() ? std::move(consent) : Json::Object());
  out.Set("computed", computed.is_object() ? std::move(computed) : Json::Object());
  return out;
}

std::vector<Identifier> ProfileIdentifiers(const Json& normalized) {
  std::vector<Identifier> out;
  const Json* ext = normalized.Find("externalIds");
  if (ext == nullptr) return out;
  for (std::string_view type : kIdentifierTypes) {
    if (type == "deviceId") {
      if (const Json* devices = ext->Find("deviceIds")) {
        for (const Json& d : devices->items()) out.push_back({"deviceId", d.as_string()});
      }
    } else if (const Json* v = ext->Find(type)) {
      out.push_back({std::string(type), v->as_string()});
    }
  }
  return out;
}

Json BuildStoredProfile(std::string_view id, Json normalized, const Json* previous, int64_t now_us) {
  Json consent = std::move(*normalized.Find("consent"));
  const Json* prev_consent = previous != nullptr ? previous->Find("consent") : nullptr;
  bool consent_changed = false;
  for (std::string_view channel : kConsentChannels) {
    const Json* now = consent.Find(channel);
    const Json* before = prev_consent != nullptr ? prev_consent->Find(channel) : nullptr;
    bool same = (now == nullptr && before == nullptr) || (now != nullptr && before != nullptr && *now == *before);
    consent_changed = consent_changed || !same;
  }
  if (consent_changed) {
    consent.Set("updatedAt", FormatTimestamp(now_us));
  } else if (const Json* at = prev_consent != nullptr ? prev_consent->Find("updatedAt") : nullptr) {
    consent.Set("updatedAt", *at);
  }
  std::string now = FormatTimestamp(now_us);
  const Json* created = previous != nullptr ? previous->Find("createdAt") : nullptr;
  Json out = Json::Object();
  out.Set("id", Json(id));
  out.Set("externalIds", std::move(*normalized.Find("externalIds")));
  out.Set("attributes", std::move(*normalized.Find("attributes")));
  out.Set("consent", std::move(consent));
  out.Set("computed", std::move(*normalized.Find("computed")));
  out.Set("createdAt", created != nullptr ? *created : Json(now));
  out.Set("updatedAt", now);
  return out;
}

Json WritableParts(const Json& stored) {
  Json out = Json::Object();
  for (std::string_view key : {"externalIds", "attributes", "consent", "computed"}) {
    const Json* v = stored.Find(key);
    out.Set(key, v != nullptr ? *v : Json::Object());
  }
  if (Json* consent = out.Find("consent")) consent->Erase("updatedAt");
  return out;
}

Json RenderProfile(const Json& stored, const storage::Traits& t) {
  auto time_or_null = [](int64_t us) { return us == storage::Traits::kNoTime ? Json() : Json(FormatTimestamp(us)); };
  Json computed = Json::Object();
  double ltv = static_cast<double>(t.revenue_micros) / 1e6;
  computed.Set("ltv", ltv);
  computed.Set("aov", t.purchase_count > 0 ? Json(ltv / static_cast<double>(t.purchase_count)) : Json(0.0));
  computed.Set("purchaseCount", t.purchase_count);
  computed.Set("lastPurchaseDate", time_or_null(t.last_purchase_us));
  computed.Set("firstSeenDate", time_or_null(t.first_seen_us));
  computed.Set("lastSeenDate", time_or_null(t.last_seen_us));
  computed.Set("eventCount", t.event_count);
  const Json* writable = stored.Find("computed");
  for (std::string_view key : {"churnRisk", "engagementScore"}) {
    const Json* v = writable != nullptr ? writable->Find(key) : nullptr;
    computed.Set(key, v != nullptr ? *v : Json());
  }
  Json out = Json::Object();
  for (std::string_view key : {"id", "externalIds", "attributes"}) {
    const Json* v = stored.Find(key);
    out.Set(key, v != nullptr ? *v : Json::Object());
  }
  out.Set("computed", std::move(computed));
  const Json* consent = stored.Find("consent");
  out.Set("consent", consent != nullptr ? *consent : Json::Object());
  out.Set("segments", Json::Array());
  for (std::string_view key : {"createdAt", "updatedAt"}) {
    const Json* v = stored.Find(key);
    out.Set(key, v != nullptr ? *v : Json());
  }
  return out;
}

}  // namespace cdp::internal
