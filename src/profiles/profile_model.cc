// Copyright 2026 The libcdp Authors.

#include "profiles/profile_model.h"

#include <algorithm>
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
Result<Json> StringList(const Json& v, const std::string& field) {
  if (!v.is_array()) return TypeError(field, "an array of strings", v);
  if (v.size() > kMaxListItems) {
    return Status::InvalidArgument(fmt::format("more than {} items", kMaxListItems), field);
  }
  Json out = Json::Array();
  size_t i = 0;
  for (const Json& item : v.items()) {
    std::string path = fmt::format("{}[{}]", field, i++);
    CDP_RETURN_IF_ERROR(CheckString(item, path));
    const Json& value = item;
    bool seen = false;
    for (const Json& existing : out.items()) seen = seen || existing == value;
    if (!seen) out.Push(value);
  }
  return out;
}

bool ValidTypeName(std::string_view name) {
  if (name.empty() || name.size() > 64) return false;
  for (char c : name) {
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_')) return false;
  }
  return true;
}

// externalIds as given: {"deviceIds": [..], "<type>": "value" | ["value", ...]}. Values are normalized later, with
// the identity rules (ApplyIdentityRules).
Result<Json> NormalizeExternalIds(const Json& in) {
  Json out = Json::Object();
  if (in.is_null()) return out;
  if (!in.is_object()) return TypeError("externalIds", "an object", in);
  for (const auto& [key, value] : in.members()) {
    std::string field = "externalIds." + key;
    if (value.is_null()) continue;
    if (!ValidTypeName(key) || key == "deviceId") {
      return Status::InvalidArgument("not an identifier type (deviceIds, or a type of the identity rules)", field);
    }
    if (value.is_array() || key == "deviceIds") {
      CDP_ASSIGN_OR_RETURN(Json list, StringList(value, field));
      if (list.size() > 0) out.Set(key, std::move(list));
    } else {
      CDP_RETURN_IF_ERROR(CheckString(value, field));
      out.Set(key, value);
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
      CDP_ASSIGN_OR_RETURN(Json list, StringList(value, field));
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
    } else if (key == "id" || key == "segments" || key == "createdAt" || key == "updatedAt" ||
               key == "identityIssues" || key == "conflicts" || key == "mergedIds") {
      // read-only here: id is handled by the caller, the rest are maintained by libcdp
    } else {
      return Status::InvalidArgument("unknown profile field (expected id, externalIds, attributes, computed, consent)",
                                     key);
    }
  }
  if (!external_ids.is_object()) external_ids = Json::Object();
  if (!attributes.is_object()) attributes = Json::Object();
  Json out = Json::Object();
  out.Set("externalIds", std::move(external_ids));
  out.Set("attributes", std::move(attributes));
  out.Set("consent", consent.is_object() ? std::move(consent) : Json::Object());
  out.Set("computed", computed.is_object() ? std::move(computed) : Json::Object());
  return out;
}

std::vector<RawIdentifier> ProfileIdentifiers(const Json& normalized) {
  std::vector<RawIdentifier> out;
  const Json* ext = normalized.Find("externalIds");
  if (ext == nullptr) return out;
  for (const auto& [key, value] : ext->members()) {
    std::string type = key == "deviceIds" ? "deviceId" : key;
    if (value.is_string()) out.push_back({type, value.as_string()});
    for (const Json& item : value.items()) out.push_back({type, item.as_string()});
  }
  return out;
}

std::vector<Identifier> StoredIdentifiers(const Json& stored) {
  std::vector<Identifier> out;
  for (RawIdentifier& raw : ProfileIdentifiers(stored)) out.push_back({std::move(raw.type), std::move(raw.value)});
  return out;
}

Json ExternalIdsOf(const std::vector<Identifier>& ids) {
  Json out = Json::Object();
  for (const Identifier& id : ids) {
    std::string key = id.type == "deviceId" ? "deviceIds" : id.type;
    Json* slot = out.Find(key);
    if (slot == nullptr) {
      out.Set(key, id.type == "deviceId" ? Json::Array().Push(id.value) : Json(id.value));
    } else if (slot->is_string()) {
      Json list = Json::Array().Push(*slot).Push(id.value);
      *slot = std::move(list);
    } else {
      slot->Push(id.value);
    }
  }
  return out;
}

Status ApplyIdentityRules(const IdentityRules& rules, Json* parts, std::vector<Identifier>* ids,
                          std::vector<IgnoredIdentifier>* ignored) {
  std::vector<RawIdentifier> raw = ProfileIdentifiers(*parts);
  Json* attributes = parts->Find("attributes");
  // attributes.email / phone name the person too: use them when externalIds lacks the type.
  for (std::string_view key : {std::string_view("email"), std::string_view("phone")}) {
    const Json* attr = attributes != nullptr ? attributes->Find(key) : nullptr;
    bool listed = false;
    for (const RawIdentifier& r : raw) listed = listed || r.type == key;
    if (attr != nullptr && attr->is_string() && !listed) raw.push_back({std::string(key), attr->as_string()});
  }
  for (const RawIdentifier& r : raw) {
    if (rules.Priority(r.type) < 0) {
      return Status::InvalidArgument(
          fmt::format("unknown identifier type \"{}\" (add it to the identity rules first)", r.type),
          "externalIds." + (r.type == "deviceId" ? std::string("deviceIds") : r.type));
    }
    Identifier id;
    IgnoredIdentifier why;
    if (rules.Normalize(r.type, r.value, &id, &why)) {
      if (std::find(ids->begin(), ids->end(), id) == ids->end()) ids->push_back(std::move(id));
      continue;
    }
    // Not an identifier; an email or phone stays a plain attribute.
    if ((r.type == "email" || r.type == "phone") && attributes != nullptr && attributes->Find(r.type) == nullptr) {
      attributes->Set(r.type, r.value);
    }
    ignored->push_back(std::move(why));
  }
  parts->Set("externalIds", ExternalIdsOf(*ids));
  return Status::OK();
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

namespace {

constexpr size_t kMaxConflicts = 100;
constexpr size_t kMaxIdentityIssues = 20;

void KeepLast(Json* list, size_t n) {
  auto& items = list->items();
  if (items.size() > n) items.erase(items.begin(), items.end() - static_cast<ptrdiff_t>(n));
}

void NoteConflict(Json* conflicts, std::string field, const Json& value, std::string_view other_id,
                  std::string_view merge_id, int64_t now_us) {
  Json c = Json::Object();
  c.Set("field", std::move(field));
  c.Set("value", value);
  c.Set("profileId", other_id);
  c.Set("mergeId", merge_id);
  c.Set("at", FormatTimestamp(now_us));
  conflicts->Push(std::move(c));
}

Json* Member(Json* doc, std::string_view key, Json empty) {
  Json* v = doc->Find(key);
  if (v == nullptr || v->type() != empty.type()) {
    doc->Set(key, std::move(empty));
    v = doc->Find(key);
  }
  return v;
}

}  // namespace

void MergeProfileDocuments(Json* survivor, const Json& other, std::string_view other_id, std::string_view merge_id,
                           int64_t now_us) {
  Json* conflicts = Member(survivor, "conflicts", Json::Array());
  Json* attributes = Member(survivor, "attributes", Json::Object());
  if (const Json* theirs = other.Find("attributes"); theirs != nullptr) {
    for (const auto& [key, value] : theirs->members()) {
      Json* ours = attributes->Find(key);
      if (ours == nullptr || ours->is_null()) {
        attributes->Set(key, value);
      } else if (key == "tags" && ours->is_array() && value.is_array()) {
        for (const Json& tag : value.items()) {
          bool have = false;
          for (const Json& t : ours->items()) have = have || t == tag;
          if (!have) ours->Push(tag);
        }
      } else if (key == "customFields" && ours->is_object() && value.is_object()) {
        for (const auto& [field, v] : value.members()) {
          const Json* mine = ours->Find(field);
          if (mine == nullptr) {
            ours->Set(field, v);
          } else if (*mine != v) {
            NoteConflict(conflicts, "attributes.customFields." + field, v, other_id, merge_id, now_us);
          }
        }
      } else if (*ours != value) {
        NoteConflict(conflicts, "attributes." + key, value, other_id, merge_id, now_us);
      }
    }
  }
  if (const Json* theirs = other.Find("conflicts"); theirs != nullptr) {
    for (const Json& c : theirs->items()) conflicts->Push(c);
  }
  KeepLast(conflicts, kMaxConflicts);
  if (conflicts->size() == 0) survivor->Erase("conflicts");

  // Consent: denied by either is denied.
  Json* consent = Member(survivor, "consent", Json::Object());
  bool changed = false;
  if (const Json* theirs = other.Find("consent"); theirs != nullptr) {
    for (const auto& [channel, value] : theirs->members()) {
      if (channel == "updatedAt" || !value.is_bool()) continue;
      const Json* ours = consent->Find(channel);
      bool restrictive = ours == nullptr || !ours->is_bool() ? value.as_bool() : (ours->as_bool() && value.as_bool());
      if (ours == nullptr || !ours->is_bool() || ours->as_bool() != restrictive) {
        consent->Set(channel, restrictive);
        changed = true;
      }
    }
  }
  if (changed) consent->Set("updatedAt", FormatTimestamp(now_us));

  Json* merged_ids = Member(survivor, "mergedIds", Json::Array());
  merged_ids->Push(other_id);
  if (const Json* theirs = other.Find("mergedIds"); theirs != nullptr) {
    for (const Json& id : theirs->items()) merged_ids->Push(id);
  }
  if (const Json* theirs = other.Find("identityIssues"); theirs != nullptr && theirs->size() > 0) {
    Json* issues = Member(survivor, "identityIssues", Json::Array());
    for (const Json& issue : theirs->items()) issues->Push(issue);
    KeepLast(issues, kMaxIdentityIssues);
  }
  // The profile came into being when the older of the two did.
  const Json* ours_created = survivor->Find("createdAt");
  const Json* theirs_created = other.Find("createdAt");
  if (ours_created != nullptr && theirs_created != nullptr && theirs_created->as_string() < ours_created->as_string()) {
    survivor->Set("createdAt", *theirs_created);
  }
  survivor->Set("updatedAt", FormatTimestamp(now_us));
}

void UnmergeProfileDocument(Json* survivor, const Json& survivor_before, const Json& other_before,
                            std::string_view other_id, std::string_view merge_id, int64_t now_us) {
  if (Json* conflicts = survivor->Find("conflicts"); conflicts != nullptr) {
    auto& items = conflicts->items();
    std::erase_if(items, [&](const Json& c) {
      const Json* m = c.Find("mergeId");
      return m != nullptr && m->as_string() == merge_id;
    });
    if (items.empty()) survivor->Erase("conflicts");
  }
  if (Json* merged = survivor->Find("mergedIds"); merged != nullptr) {
    std::vector<std::string> gone = {std::string(other_id)};
    if (const Json* theirs = other_before.Find("mergedIds"); theirs != nullptr) {
      for (const Json& id : theirs->items()) gone.push_back(id.as_string());
    }
    std::erase_if(merged->items(),
                  [&](const Json& id) { return std::find(gone.begin(), gone.end(), id.as_string()) != gone.end(); });
    if (merged->size() == 0) survivor->Erase("mergedIds");
  }
  if (Json* issues = survivor->Find("identityIssues"); issues != nullptr) {
    const Json* theirs = other_before.Find("identityIssues");
    const Json* ours = survivor_before.Find("identityIssues");
    auto in = [](const Json* list, const Json& item) {
      if (list == nullptr) return false;
      for (const Json& x : list->items()) {
        if (x == item) return true;
      }
      return false;
    };
    std::erase_if(issues->items(), [&](const Json& i) { return in(theirs, i) && !in(ours, i); });
  }
  // Attributes the merge brought in and nobody changed since.
  Json* attributes = survivor->Find("attributes");
  const Json* theirs = other_before.Find("attributes");
  const Json* before = survivor_before.Find("attributes");
  if (attributes != nullptr && theirs != nullptr) {
    for (const auto& [key, value] : theirs->members()) {
      Json* now = attributes->Find(key);
      const Json* was = before != nullptr ? before->Find(key) : nullptr;
      if (now == nullptr) continue;
      if (was == nullptr) {
        if (*now == value) attributes->Erase(key);
      } else if (key == "tags" && now->is_array() && value.is_array() && was->is_array()) {
        std::erase_if(now->items(), [&](const Json& tag) {
          bool from_them = false, from_us = false;
          for (const Json& t : value.items()) from_them = from_them || t == tag;
          for (const Json& t : was->items()) from_us = from_us || t == tag;
          return from_them && !from_us;
        });
      } else if (key == "customFields" && now->is_object() && value.is_object() && was->is_object()) {
        for (const auto& [field, v] : value.members()) {
          const Json* current = now->Find(field);
          if (current != nullptr && was->Find(field) == nullptr && *current == v) now->Erase(field);
        }
      }
    }
  }
  // Consent the merge made more restrictive, unless changed since.
  Json* consent = survivor->Find("consent");
  const Json* their_consent = other_before.Find("consent");
  const Json* our_consent = survivor_before.Find("consent");
  bool consent_changed = false;
  if (consent != nullptr && their_consent != nullptr) {
    for (const auto& [channel, value] : their_consent->members()) {
      if (channel == "updatedAt" || !value.is_bool()) continue;
      const Json* now = consent->Find(channel);
      const Json* was = our_consent != nullptr ? our_consent->Find(channel) : nullptr;
      if (now == nullptr || !now->is_bool()) continue;
      bool merged_value = was == nullptr || !was->is_bool() ? value.as_bool() : (was->as_bool() && value.as_bool());
      if (now->as_bool() != merged_value) continue;  // changed after the merge: keep
      if (was == nullptr) {
        consent->Erase(channel);
        consent_changed = true;
      } else if (*was != *now) {
        consent->Set(channel, *was);
        consent_changed = true;
      }
    }
  }
  if (consent_changed) consent->Set("updatedAt", FormatTimestamp(now_us));
  if (const Json* created = survivor_before.Find("createdAt"); created != nullptr) survivor->Set("createdAt", *created);
  survivor->Set("updatedAt", FormatTimestamp(now_us));
}

void AppendIdentityIssues(Json* stored, const std::vector<const IgnoredIdentifier*>& issues) {
  Json* list = Member(stored, "identityIssues", Json::Array());
  for (const IgnoredIdentifier* issue : issues) list->Push(issue->ToJson());
  KeepLast(list, kMaxIdentityIssues);
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
  for (std::string_view key : {"identityIssues", "conflicts", "mergedIds"}) {
    const Json* v = stored.Find(key);
    out.Set(key, v != nullptr ? *v : Json::Array());
  }
  for (std::string_view key : {"createdAt", "updatedAt"}) {
    const Json* v = stored.Find(key);
    out.Set(key, v != nullptr ? *v : Json());
  }
  return out;
}

}  // namespace cdp::internal
