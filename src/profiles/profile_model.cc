// Copyright 2026 The libcdp Authors.

#include "profiles/profile_model.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <string_view>

#include "cdp/query.h"
#include "core/json_internal.h"
#include "fmt/format.h"
#include "privacy/consent_model.h"

namespace cdp::internal {

namespace {

constexpr std::string_view kStringAttributes[] = {"firstName", "lastName", "email",     "phone",
                                                  "country",   "city",     "postalCode"};
constexpr std::string_view kDerivedTraits[] = {"ltv",           "aov",          "purchaseCount", "lastPurchaseDate",
                                               "firstSeenDate", "lastSeenDate", "eventCount"};
constexpr size_t kMaxStringBytes = 1024;
constexpr size_t kMaxListItems = 1000;
constexpr size_t kMaxSourceBytes = 128;

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

// OK, or the error of the first container below `value` (itself at level `level`, the top being 1) deeper than
// `max_depth`, its path relative to `value`.
Status CheckDepthFrom(const Json& value, int level, int max_depth) {
  if (!value.is_array() && !value.is_object()) return Status::OK();
  if (level > max_depth) {
    return Status::InvalidArgument(fmt::format("JSON nested deeper than {} levels", max_depth));
  }
  if (value.is_array()) {
    for (size_t i = 0; i < value.items().size(); ++i) {
      Status s = CheckDepthFrom(value.items()[i], level + 1, max_depth);
      if (!s.ok()) return s.WithFieldPrefix(fmt::format("[{}]", i));
    }
  } else {
    for (const auto& [key, member] : value.members()) {
      Status s = CheckDepthFrom(member, level + 1, max_depth);
      if (!s.ok()) return s.WithFieldPrefix(key);
    }
  }
  return Status::OK();
}

}  // namespace

Status CheckJsonDepth(const Json& value, int max_depth) { return CheckDepthFrom(value, 1, max_depth); }

size_t SerializedSize(const Json& value, int* depth, bool* ascii) {
  *depth = value.is_array() || value.is_object() ? 1 : 0;
  switch (value.type()) {
    case Json::Type::kNull:
      return 4;
    case Json::Type::kBool:
      return value.as_bool() ? 4 : 5;
    case Json::Type::kString:
      return JsonStringSize(value.as_string(), ascii);
    case Json::Type::kInt: {  // as DumpTo writes it: digits, after a minus sign
      const int64_t v = value.as_int();
      uint64_t u = v < 0 ? 0 - static_cast<uint64_t>(v) : static_cast<uint64_t>(v);
      size_t n = v < 0 ? 2 : 1;
      for (; u >= 10; u /= 10) ++n;
      return n;
    }
    case Json::Type::kDouble: {
      std::string text;
      value.DumpTo(&text);  // short: fits the small-string buffer, no allocation
      return text.size();
    }
    case Json::Type::kArray: {
      size_t n = 2 + (value.size() > 0 ? value.size() - 1 : 0);
      for (const Json& item : value.items()) {
        int d = 0;
        n += SerializedSize(item, &d, ascii);
        *depth = std::max(*depth, d + 1);
      }
      return n;
    }
    case Json::Type::kObject: {
      size_t n = 2 + (value.size() > 0 ? value.size() - 1 : 0);
      for (const auto& [key, item] : value.members()) {
        int d = 0;
        n += JsonStringSize(key, ascii) + 1 + SerializedSize(item, &d, ascii);
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
  Json external_ids, attributes, consent, computed, source;
  for (const auto& [key, value] : input.members()) {
    if (key == "externalIds") {
      CDP_ASSIGN_OR_RETURN(external_ids, NormalizeExternalIds(value));
    } else if (key == "attributes") {
      CDP_ASSIGN_OR_RETURN(attributes, NormalizeAttributes(value));
    } else if (key == "consent") {
      CDP_ASSIGN_OR_RETURN(consent, NormalizeConsentObject(value));
    } else if (key == "computed") {
      CDP_ASSIGN_OR_RETURN(computed, NormalizeComputed(value));
    } else if (key == "source") {
      if (value.is_null()) continue;
      if (!value.is_string() || value.as_string().empty() || value.as_string().size() > kMaxSourceBytes) {
        return Status::InvalidArgument(fmt::format("expected a string of 1 to {} bytes", kMaxSourceBytes), key);
      }
      source = value;
    } else if (key == "id" || key == "segments" || key == "createdAt" || key == "updatedAt" ||
               key == "identityIssues" || key == "conflicts" || key == "mergedIds" || key == "attributeSources") {
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
  if (source.is_string()) out.Set("source", std::move(source));
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

namespace {

// The stored consent: `consent` (normalized), with updatedAt now when a value changed from `previous`'s, else
// previous's updatedAt.
Json StoredConsent(Json consent, const Json* previous, int64_t now_us) {
  const Json* prev_consent = previous != nullptr ? previous->Find("consent") : nullptr;
  if (ConsentChanges(prev_consent, &consent).size() > 0) {
    consent.Set("updatedAt", FormatTimestamp(now_us));
  } else if (const Json* at = prev_consent != nullptr ? prev_consent->Find("updatedAt") : nullptr) {
    consent.Set("updatedAt", *at);
  }
  return consent;
}

}  // namespace

Json BuildStoredProfile(std::string_view id, Json normalized, const Json* previous, int64_t now_us) {
  Json consent = StoredConsent(std::move(*normalized.Find("consent")), previous, now_us);
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

Json* Member(Json* doc, std::string_view key, Json empty);

// Adds a conflict to doc's "conflicts".
void NoteConflict(Json* doc, std::string_view field, const Json& value, std::string_view profile_id,
                  std::string_view merge_id, int64_t now_us, const Json* provenance) {
  Json c = Json::Object();
  c.Set("field", field);
  c.Set("value", value);
  c.Set("profileId", profile_id);
  c.Set("mergeId", merge_id);
  c.Set("at", FormatTimestamp(now_us));
  if (provenance != nullptr) {
    if (const Json* source = provenance->Find("source"); source != nullptr) c.Set("source", *source);
    if (const Json* at = provenance->Find("at"); at != nullptr) c.Set("setAt", *at);
  }
  Member(doc, "conflicts", Json::Array())->Push(std::move(c));
}

Json* Member(Json* doc, std::string_view key, Json empty) {
  Json* v = doc->Find(key);
  if (v == nullptr || v->type() != empty.type()) {
    doc->Set(key, std::move(empty));
    v = doc->Find(key);
  }
  return v;
}

// ---- Attribute fields and their provenance.

constexpr std::string_view kAttributesPrefix = "attributes.";
constexpr std::string_view kCustomFieldsPrefix = "attributes.customFields.";

// Absent, null, "", [] and {} are empty: any other value fills such a field in a merge.
bool IsEmptyValue(const Json* v) {
  if (v == nullptr || v->is_null()) return true;
  if (v->is_string()) return v->as_string().empty();
  if (v->is_array() || v->is_object()) return v->size() == 0;
  return false;
}

// The fields of a document's attributes, as (path, value): each attribute, and each customFields key.
std::vector<std::pair<std::string, const Json*>> AttributeFields(const Json& doc) {
  std::vector<std::pair<std::string, const Json*>> out;
  const Json* attributes = doc.Find("attributes");
  if (attributes == nullptr) return out;
  for (const auto& [key, value] : attributes->members()) {
    if (key == "customFields" && value.is_object()) {
      for (const auto& [k, v] : value.members()) out.emplace_back(std::string(kCustomFieldsPrefix) + k, &v);
    } else {
      out.emplace_back(std::string(kAttributesPrefix) + key, &value);
    }
  }
  return out;
}

const Json* FieldValue(const Json& doc, std::string_view path) {
  const Json* attributes = doc.Find("attributes");
  if (attributes == nullptr) return nullptr;
  if (path.starts_with(kCustomFieldsPrefix)) {
    const Json* custom = attributes->Find("customFields");
    return custom != nullptr ? custom->Find(path.substr(kCustomFieldsPrefix.size())) : nullptr;
  }
  return attributes->Find(path.substr(kAttributesPrefix.size()));
}

// Sets a field, or removes it when `value` is null.
void SetFieldValue(Json* doc, std::string_view path, const Json* value) {
  Json* attributes = Member(doc, "attributes", Json::Object());
  if (path.starts_with(kCustomFieldsPrefix)) {
    std::string_view key = path.substr(kCustomFieldsPrefix.size());
    if (value != nullptr) {
      Member(attributes, "customFields", Json::Object())->Set(key, *value);
    } else if (Json* custom = attributes->Find("customFields"); custom != nullptr) {
      custom->Erase(key);
    }
    return;
  }
  std::string_view key = path.substr(kAttributesPrefix.size());
  if (value != nullptr) {
    attributes->Set(key, *value);
  } else {
    attributes->Erase(key);
  }
}

const Json* SourceEntry(const Json& doc, std::string_view path) {
  const Json* sources = doc.Find("attributeSources");
  return sources != nullptr ? sources->Find(path) : nullptr;
}

// Sets (or, with null, removes) a field's attributeSources entry; drops an empty attributeSources.
void SetSourceEntry(Json* doc, std::string_view path, const Json* entry) {
  if (entry != nullptr) {
    Member(doc, "attributeSources", Json::Object())->Set(path, *entry);
  } else if (Json* sources = doc->Find("attributeSources"); sources != nullptr) {
    sources->Erase(path);
    if (sources->size() == 0) doc->Erase("attributeSources");
  }
}

Json SourceEntryOf(std::string_view source, int64_t at_us) {
  Json entry = Json::Object();
  entry.Set("source", source);
  entry.Set("at", FormatTimestamp(at_us));
  return entry;
}

// What a survivorship rule says about two different non-empty values.
enum class Outcome { kKeep, kTake, kSum, kUnion, kUndecided };

// -1, 0, 1 as a < b, a == b, a > b (both numbers).
int CompareNumbers(const Json& a, const Json& b) {
  if (a.is_int() && b.is_int()) return a.as_int() < b.as_int() ? -1 : (a.as_int() > b.as_int() ? 1 : 0);
  return a.as_number() < b.as_number() ? -1 : (a.as_number() > b.as_number() ? 1 : 0);
}

std::string_view EntryString(const Json* entry, std::string_view key) {
  const Json* v = entry != nullptr ? entry->Find(key) : nullptr;
  return v != nullptr && v->is_string() ? std::string_view(v->as_string()) : std::string_view();
}

// When a value was set: its attributeSources "at", else (stored before provenance existed) its document's
// updatedAt, the latest it can have been set.
std::string_view SetAt(const Json& doc, std::string_view path) {
  std::string_view at = EntryString(SourceEntry(doc, path), "at");
  if (at.empty()) {
    const Json* updated = doc.Find("updatedAt");
    if (updated != nullptr && updated->is_string()) at = updated->as_string();
  }
  return at;
}

Outcome Decide(const FieldSurvivorship& rule, std::string_view path, const Json& survivor, const Json& ours,
               const Json& other, const Json& theirs) {
  switch (rule.rule) {
    case SurvivorshipRule::kSurvivor:
    case SurvivorshipRule::kFirstNonEmpty:
      return Outcome::kKeep;
    case SurvivorshipRule::kMostRecent:
    case SurvivorshipRule::kOldest: {
      std::string_view our_at = SetAt(survivor, path), their_at = SetAt(other, path);
      if (our_at == their_at) return Outcome::kUndecided;
      bool theirs_later = their_at > our_at;
      return theirs_later == (rule.rule == SurvivorshipRule::kMostRecent) ? Outcome::kTake : Outcome::kKeep;
    }
    case SurvivorshipRule::kSourcePriority: {
      // Unlisted (or unknown) sources rank after every listed one.
      auto rank = [&](const Json& doc) {
        std::string_view source = EntryString(SourceEntry(doc, path), "source");
        auto it = std::find(rule.sources.begin(), rule.sources.end(), source);
        return it - rule.sources.begin();
      };
      auto our_rank = rank(survivor), their_rank = rank(other);
      if (our_rank == their_rank) return Outcome::kUndecided;
      return their_rank < our_rank ? Outcome::kTake : Outcome::kKeep;
    }
    case SurvivorshipRule::kMax:
    case SurvivorshipRule::kMin: {
      if (!ours.is_number() || !theirs.is_number()) return Outcome::kUndecided;
      int c = CompareNumbers(theirs, ours);
      if (c == 0) return Outcome::kUndecided;
      return (c > 0) == (rule.rule == SurvivorshipRule::kMax) ? Outcome::kTake : Outcome::kKeep;
    }
    case SurvivorshipRule::kSum:
      return ours.is_number() && theirs.is_number() ? Outcome::kSum : Outcome::kUndecided;
    case SurvivorshipRule::kUnion:
      return ours.is_array() && theirs.is_array() ? Outcome::kUnion : Outcome::kUndecided;
  }
  return Outcome::kUndecided;
}

Json Sum(const Json& a, const Json& b) {
  int64_t r = 0;
  if (a.is_int() && b.is_int() && !__builtin_add_overflow(a.as_int(), b.as_int(), &r)) return Json(r);
  return Json(a.as_number() + b.as_number());
}

Json Difference(const Json& a, const Json& b) {
  int64_t r = 0;
  if (a.is_int() && b.is_int() && !__builtin_sub_overflow(a.as_int(), b.as_int(), &r)) return Json(r);
  return Json(a.as_number() - b.as_number());
}

bool Contains(const Json& list, const Json& item) {
  for (const Json& x : list.items()) {
    if (x == item) return true;
  }
  return false;
}

// Both lists, order kept, duplicates removed.
Json Union(const Json& a, const Json& b) {
  Json out = Json::Array();
  for (const Json* list : {&a, &b}) {
    for (const Json& item : list->items()) {
      if (!Contains(out, item)) out.Push(item);
    }
  }
  return out;
}

}  // namespace

void StampAttributeSources(Json* stored, const Json* previous, std::string_view source, int64_t at_us) {
  Json sources = Json::Object();
  Json fresh;  // SourceEntryOf(source, at_us), made once
  for (const auto& [path, value] : AttributeFields(*stored)) {
    if (IsEmptyValue(value)) continue;
    const Json* before = previous != nullptr ? FieldValue(*previous, path) : nullptr;
    const Json* entry = previous != nullptr ? SourceEntry(*previous, path) : nullptr;
    if (before == nullptr || *before != *value || entry == nullptr) {
      if (fresh.is_null()) fresh = SourceEntryOf(source, at_us);
      entry = &fresh;
    }
    sources.Set(path, *entry);
  }
  if (sources.size() > 0) {
    stored->Set("attributeSources", std::move(sources));
  } else {
    stored->Erase("attributeSources");
  }
}

std::string DumpCreatedProfile(std::string_view id, Json normalized, const Json& created, int64_t now_us,
                               std::string_view source, int64_t at_us) {
  std::string out;
  out.reserve(1024);
  const std::string now = FormatTimestamp(now_us);
  auto key = [&out](std::string_view name) {  // names here need no escaping
    out.append(out.empty() ? "{\"" : ",\"");
    out.append(name);
    out.append("\":");
  };
  key("id");
  AppendJsonString(id, &out);
  key("externalIds");
  normalized.Find("externalIds")->DumpTo(&out);
  const Json& attributes = *normalized.Find("attributes");
  key("attributes");
  attributes.DumpTo(&out);
  key("consent");
  StoredConsent(std::move(*normalized.Find("consent")), &created, now_us).DumpTo(&out);
  key("computed");
  normalized.Find("computed")->DumpTo(&out);
  key("createdAt");
  if (const Json* created_at = created.Find("createdAt"); created_at != nullptr) {
    created_at->DumpTo(&out);
  } else {
    AppendJsonString(now, &out);
  }
  key("updatedAt");
  AppendJsonString(now, &out);
  for (std::string_view name : kMaintainedKeys) {
    if (const Json* v = created.Find(name); v != nullptr) {
      key(name);
      v->DumpTo(&out);
    }
  }
  // attributeSources: as StampAttributeSources with no previous document, each field with a value gets the entry
  // SourceEntryOf(source, at_us), dumped once.
  const std::string entry = SourceEntryOf(source, at_us).Dump();
  std::string path;
  bool any = false;
  auto stamp = [&](std::string_view prefix, std::string_view name, const Json& value) {
    if (IsEmptyValue(&value)) return;
    out.append(any ? "," : ",\"attributeSources\":{");
    any = true;
    path.assign(prefix);
    path.append(name);
    AppendJsonString(path, &out);
    out.push_back(':');
    out.append(entry);
  };
  for (const auto& [name, value] : attributes.members()) {
    if (name == "customFields" && value.is_object()) {
      for (const auto& [k, v] : value.members()) stamp(kCustomFieldsPrefix, k, v);
    } else {
      stamp(kAttributesPrefix, name, value);
    }
  }
  if (any) out.push_back('}');
  out.push_back('}');
  return out;
}

void SetAttributeSource(Json* stored, std::string_view field, std::string_view source, int64_t at_us) {
  Json entry = SourceEntryOf(source, at_us);
  SetSourceEntry(stored, field, &entry);
}

void MergeProfileDocuments(Json* survivor, const Json& other, std::string_view other_id, std::string_view merge_id,
                           int64_t now_us, const Survivorship& rules, Json* decisions) {
  Member(survivor, "attributes", Json::Object());
  const Json* id = survivor->Find("id");
  const std::string survivor_id = id != nullptr && id->is_string() ? id->as_string() : std::string();
  const Json merged_at = SourceEntryOf("merge", now_us);
  for (const auto& [path, value] : AttributeFields(other)) {
    const Json& theirs = *value;
    if (IsEmptyValue(&theirs)) continue;
    const Json* current = FieldValue(*survivor, path);
    std::string_view decided_by;
    Json result;
    if (IsEmptyValue(current)) {
      // Filling an empty field is a sum with nothing, or a union with nothing, when that is the field's rule.
      const SurvivorshipRule rule = rules.For(path).rule;
      decided_by = (rule == SurvivorshipRule::kSum && theirs.is_number()) ||
                           (rule == SurvivorshipRule::kUnion && theirs.is_array())
                       ? SurvivorshipRuleName(rule)
                       : "fill";
      result = theirs;
      SetSourceEntry(survivor, path, SourceEntry(other, path));
    } else if (*current == theirs) {
      continue;
    } else {
      const Json ours = *current;
      const FieldSurvivorship& rule = rules.For(path);
      Outcome outcome = Decide(rule, path, *survivor, ours, other, theirs);
      decided_by = SurvivorshipRuleName(rule.rule);
      if (outcome == Outcome::kUndecided && &rule != &rules.default_rule) {
        outcome = Decide(rules.default_rule, path, *survivor, ours, other, theirs);
        decided_by = SurvivorshipRuleName(rules.default_rule.rule);
      }
      switch (outcome) {
        case Outcome::kUndecided:
        case Outcome::kKeep:
          NoteConflict(survivor, path, theirs, other_id, merge_id, now_us, SourceEntry(other, path));
          continue;
        case Outcome::kTake:
          NoteConflict(survivor, path, ours, survivor_id, merge_id, now_us, SourceEntry(*survivor, path));
          result = theirs;
          SetSourceEntry(survivor, path, SourceEntry(other, path));
          break;
        case Outcome::kSum:
          result = Sum(ours, theirs);
          SetSourceEntry(survivor, path, &merged_at);
          break;
        case Outcome::kUnion:
          result = Union(ours, theirs);
          if (result == ours) continue;
          SetSourceEntry(survivor, path, &merged_at);
          break;
      }
    }
    SetFieldValue(survivor, path, &result);
    if (decisions != nullptr) {
      Json decision = Json::Object();
      decision.Set("rule", decided_by);
      decision.Set("value", std::move(result));
      decisions->Set(path, std::move(decision));
    }
  }
  Json* conflicts = Member(survivor, "conflicts", Json::Array());
  if (const Json* theirs = other.Find("conflicts"); theirs != nullptr) {
    for (const Json& c : theirs->items()) conflicts->Push(c);
  }
  KeepLast(conflicts, kMaxConflicts);
  if (conflicts->size() == 0) survivor->Erase("conflicts");

  // Consent: denied by either is denied. Both sides in the normalized form first ("ads" stated alone, as
  // documents written before Consent Mode's signals hold it, stands for its signals), "ads" derived after.
  Json* consent = Member(survivor, "consent", Json::Object());
  bool changed = false;
  if (auto normalized = NormalizeConsentObject(*consent); normalized.ok()) {
    const Json* at = consent->Find("updatedAt");
    if (at != nullptr) normalized->Set("updatedAt", *at);
    *consent = std::move(normalized).value();
  }
  if (const Json* stored_theirs = other.Find("consent"); stored_theirs != nullptr) {
    auto normalized = NormalizeConsentObject(*stored_theirs);
    const Json theirs_copy = normalized.ok() ? std::move(normalized).value() : *stored_theirs;
    const Json* theirs = &theirs_copy;
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
  if (changed) {
    DeriveAds(consent);
    consent->Set("updatedAt", FormatTimestamp(now_us));
  }

  Json* merged_ids = Member(survivor, "mergedIds", Json::Array());
  merged_ids->Push(other_id);
  if (const Json* theirs = other.Find("mergedIds"); theirs != nullptr) {
    for (const Json& id : theirs->items()) merged_ids->Push(id);
  }
  NoteHubHashes(survivor, HubHashesOf(other));  // an erasure of the survivor scrubs what the merged one caused
  NoteFormerIdHashes(survivor, FormerIdHashesOf(other));  // and suppresses what it held before
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

namespace {

// UnmergeProfileDocument for one merged profile: everything but the attributes.
void UnmergeOne(Json* survivor, const Json& survivor_before, const Json& other_before, std::string_view other_id,
                std::string_view merge_id, int64_t now_us) {
  if (Json* conflicts = survivor->Find("conflicts"); conflicts != nullptr) {
    auto& items = conflicts->items();
    // The merge's own conflicts, and those the merged profile brought with it (from its earlier merges).
    auto listed = [](const Json* list, const Json& item) {
      if (list == nullptr) return false;
      for (const Json& x : list->items()) {
        if (x == item) return true;
      }
      return false;
    };
    const Json* theirs = other_before.Find("conflicts");
    const Json* ours = survivor_before.Find("conflicts");
    std::erase_if(items, [&](const Json& c) {
      const Json* m = c.Find("mergeId");
      return (m != nullptr && m->as_string() == merge_id) || (listed(theirs, c) && !listed(ours, c));
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
  if (Json* former = survivor->Find("formerIdHashes"); former != nullptr) {  // those the merged profile brought
    const std::vector<std::string> theirs = FormerIdHashesOf(other_before), ours = FormerIdHashesOf(survivor_before);
    std::erase_if(former->items(), [&](const Json& h) {
      return std::find(theirs.begin(), theirs.end(), h.as_string()) != theirs.end() &&
             std::find(ours.begin(), ours.end(), h.as_string()) == ours.end();
    });
    if (former->size() == 0) survivor->Erase("formerIdHashes");
  }
  if (Json* hashes = survivor->Find("hubHashes"); hashes != nullptr) {  // those the merged profile brought
    const std::vector<uint64_t> theirs = HubHashesOf(other_before), ours = HubHashesOf(survivor_before);
    const std::vector<uint64_t> now = HubHashesOf(*survivor);
    std::vector<uint64_t> kept;
    for (uint64_t h : now) {
      const bool brought = std::find(theirs.begin(), theirs.end(), h) != theirs.end() &&
                           std::find(ours.begin(), ours.end(), h) == ours.end();
      if (!brought) kept.push_back(h);
    }
    survivor->Erase("hubHashes");
    NoteHubHashes(survivor, kept);
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
  if (consent_changed) {
    DeriveAds(consent);
    consent->Set("updatedAt", FormatTimestamp(now_us));
  }
  if (const Json* created = survivor_before.Find("createdAt"); created != nullptr) survivor->Set("createdAt", *created);
  survivor->Set("updatedAt", FormatTimestamp(now_us));
}

}  // namespace

void UnmergeProfileDocument(Json* survivor, const Json& survivor_before, const std::vector<MergedProfile>& merged,
                            std::string_view merge_id, int64_t now_us, const Json* decisions) {
  for (const MergedProfile& m : merged) UnmergeOne(survivor, survivor_before, *m.before, m.id, merge_id, now_us);
  // A merge recorded without decisions followed the default rules: replay it.
  Json replayed;
  if (decisions == nullptr) {
    Json copy = survivor_before;
    replayed = Json::Object();
    for (const MergedProfile& m : merged) {
      Json changed = Json::Object();
      MergeProfileDocuments(&copy, *m.before, m.id, merge_id, now_us, Survivorship(), &changed);
      replayed.Set(m.id, std::move(changed));
    }
    decisions = &replayed;
  }
  // Per field the merge changed, the decisions in merge order (the last one left the value).
  std::vector<std::pair<std::string, std::vector<std::pair<const Json*, const Json*>>>> fields;
  for (const MergedProfile& m : merged) {
    const Json* changed = decisions->Find(m.id);
    if (changed == nullptr) continue;
    for (const auto& [path, decision] : changed->members()) {
      auto it = std::find_if(fields.begin(), fields.end(), [&](const auto& f) { return f.first == path; });
      if (it == fields.end()) it = fields.insert(fields.end(), {path, {}});
      it->second.emplace_back(m.before, &decision);
    }
  }
  for (const auto& [path, steps] : fields) {
    const Json* now = FieldValue(*survivor, path);
    const Json* result = steps.back().second->Find("value");
    if (now == nullptr || result == nullptr) continue;  // removed since
    const Json* was = FieldValue(survivor_before, path);
    if (*now == *result) {  // as the merge left it: the survivor's own value again
      SetFieldValue(survivor, path, was);
      SetSourceEntry(survivor, path, was != nullptr ? SourceEntry(survivor_before, path) : nullptr);
      continue;
    }
    // Changed since: kept, less what the merged profiles contributed to a sum or a union.
    Json value = *now;
    for (const auto& [other_before, decision] : steps) {
      const Json* theirs = FieldValue(*other_before, path);
      const Json* rule = decision->Find("rule");
      const std::string_view rule_name = rule != nullptr && rule->is_string() ? rule->as_string() : "";
      if (theirs == nullptr) continue;
      if (rule_name == "sum" && value.is_number() && theirs->is_number()) {
        value = Difference(value, *theirs);
      } else if (rule_name == "union" && value.is_array() && theirs->is_array()) {
        Json kept = Json::Array();
        for (const Json& item : value.items()) {
          if (!Contains(*theirs, item) || (was != nullptr && was->is_array() && Contains(*was, item))) kept.Push(item);
        }
        value = std::move(kept);
      }
    }
    if (value != *now) SetFieldValue(survivor, path, &value);
  }
}

void AppendIdentityIssues(Json* stored, const std::vector<const IgnoredIdentifier*>& issues) {
  Json* list = Member(stored, "identityIssues", Json::Array());
  for (const IgnoredIdentifier* issue : issues) list->Push(issue->ToJson());
  KeepLast(list, kMaxIdentityIssues);
}

void NoteHubHashes(Json* stored, const std::vector<uint64_t>& hashes) {
  if (hashes.empty()) return;
  Json* list = Member(stored, "hubHashes", Json::Array());
  for (uint64_t h : hashes) {
    std::string hex = fmt::format("{:016x}", h);
    bool listed = false;
    for (const Json& x : list->items()) listed = listed || (x.is_string() && x.as_string() == hex);
    if (!listed) list->Push(std::move(hex));
  }
  KeepLast(list, kMaxHubHashes);
}

void NoteFormerIdHashes(Json* stored, const std::vector<std::string>& hex_hashes) {
  if (hex_hashes.empty()) return;
  Json* list = Member(stored, "formerIdHashes", Json::Array());
  for (const std::string& hex : hex_hashes) {
    bool listed = false;
    for (const Json& x : list->items()) listed = listed || (x.is_string() && x.as_string() == hex);
    if (!listed) list->Push(hex);
  }
  KeepLast(list, kMaxFormerIdHashes);
}

std::vector<std::string> FormerIdHashesOf(const Json& stored) {
  std::vector<std::string> out;
  const Json* list = stored.Find("formerIdHashes");
  if (list == nullptr || !list->is_array()) return out;
  for (const Json& x : list->items()) {
    if (x.is_string()) out.push_back(x.as_string());
  }
  return out;
}

std::vector<uint64_t> HubHashesOf(const Json& stored) {
  std::vector<uint64_t> out;
  const Json* list = stored.Find("hubHashes");
  if (list == nullptr || !list->is_array()) return out;
  for (const Json& x : list->items()) {
    if (!x.is_string() || x.as_string().size() != 16) continue;
    uint64_t h = 0;
    const std::string& hex = x.as_string();
    auto [end, ec] = std::from_chars(hex.data(), hex.data() + hex.size(), h, 16);
    if (ec == std::errc() && end == hex.data() + hex.size()) out.push_back(h);
  }
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

Json RenderTraits(const storage::Traits& t) {
  auto time_or_null = [](int64_t us) { return us == storage::Traits::kNoTime ? Json() : Json(FormatTimestamp(us)); };
  Json computed = Json::Object();
  double ltv = static_cast<double>(t.revenue_micros) / 1e6;
  computed.Set("ltv", ltv);
  // To the micro-unit, as ltv is kept: 1214.12 over 10 orders is 121.412, not 121.41199999999999.
  computed.Set("aov", t.purchase_count > 0
                          ? Json(static_cast<double>(std::llround(static_cast<double>(t.revenue_micros) /
                                                                  static_cast<double>(t.purchase_count))) /
                                 1e6)
                          : Json(0.0));
  computed.Set("purchaseCount", t.purchase_count);
  computed.Set("lastPurchaseDate", time_or_null(t.last_purchase_us));
  computed.Set("firstSeenDate", time_or_null(t.first_seen_us));
  computed.Set("lastSeenDate", time_or_null(t.last_seen_us));
  computed.Set("eventCount", t.event_count);
  return computed;
}

Json RenderProfile(const Json& stored, const storage::Traits& t) {
  Json computed = RenderTraits(t);
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
  const Json* sources = stored.Find("attributeSources");
  out.Set("attributeSources", sources != nullptr ? *sources : Json::Object());
  for (std::string_view key : {"createdAt", "updatedAt"}) {
    const Json* v = stored.Find(key);
    out.Set(key, v != nullptr ? *v : Json());
  }
  return out;
}

}  // namespace cdp::internal
