// Copyright 2026 The libcdp Authors.

#include "engine/audiences_impl.h"

#include <algorithm>

#include "absl/container/flat_hash_set.h"
#include "core/ids.h"
#include "engine/audited.h"
#include "engine/engine_impl.h"
#include "engine/segments_impl.h"
#include "fmt/format.h"
#include "identity/rules.h"
#include "privacy/consent_model.h"
#include "storage/keys.h"

namespace cdp::internal {

namespace {

constexpr char kAudiencePrefix[] = "aud/";
constexpr char kListPrefix[] = "supp/";
static_assert(std::string_view(kListPrefix) == storage::kSuppressionListPrefix);
constexpr size_t kMaxNameBytes = 256;
constexpr size_t kMaxDescriptionBytes = 4096;
constexpr size_t kMaxSegments = 50;
constexpr size_t kMaxItems = 10'000;

std::string ItemPrefix(std::string_view list) { return storage::SuppressionItemPrefix(list); }

Status CheckNameAndDescription(const Json& in, Json* out) {
  const Json* name = in.Find("name");
  if (name == nullptr || !name->is_string() || name->as_string().empty() || name->as_string().size() > kMaxNameBytes) {
    return Status::InvalidArgument(fmt::format("expected a string of 1 to {} bytes", kMaxNameBytes), "name");
  }
  out->Set("name", *name);
  if (const Json* d = in.Find("description"); d != nullptr) {
    if (!d->is_string() || d->as_string().size() > kMaxDescriptionBytes) {
      return Status::InvalidArgument(fmt::format("expected a string of at most {} bytes", kMaxDescriptionBytes),
                                     "description");
    }
    out->Set("description", *d);
  }
  return Status::OK();
}

// A JSON array of distinct id strings, at most `max`.
Result<std::vector<std::string>> IdList(const Json* v, std::string_view field, size_t min, size_t max) {
  std::vector<std::string> out;
  if (v == nullptr || v->is_null()) {
    if (min > 0) return Status::InvalidArgument("expected an array of ids", std::string(field));
    return out;
  }
  if (!v->is_array() || v->size() < min || v->size() > max) {
    return Status::InvalidArgument(fmt::format("expected an array of {} to {} ids", min, max), std::string(field));
  }
  for (size_t i = 0; i < v->size(); ++i) {
    const Json& id = v->items()[i];
    if (!id.is_string() || std::find(out.begin(), out.end(), id.as_string()) != out.end()) {
      return Status::InvalidArgument("expected distinct id strings", fmt::format("{}[{}]", field, i));
    }
    out.push_back(id.as_string());
  }
  return out;
}

Json Strings(const std::vector<std::string>& v) {
  Json out = Json::Array();
  for (const std::string& s : v) out.Push(s);
  return out;
}

}  // namespace

Status AudiencesImpl::Load() {
  if (loaded_) return Status::OK();
  for (auto [prefix, into] : {std::pair{kAudiencePrefix, &audiences_}, std::pair{kListPrefix, &lists_}}) {
    auto iter = engine_->store().NewIterator(storage::Cf::kMeta, prefix, storage::PrefixSuccessor(prefix));
    for (iter->Seek(prefix); iter->Valid(); iter->Next()) {
      auto doc = Json::Parse(iter->value());
      if (!doc.ok() || doc->Find("id") == nullptr) return Status::DataLoss(fmt::format("{} is corrupt", iter->key()));
      (*into)[doc->Find("id")->as_string()] = std::move(doc).value();
    }
    CDP_RETURN_IF_ERROR(iter->status());
  }
  loaded_ = true;
  return Status::OK();
}

Status AudiencesImpl::Put(const std::string& key, const Json& value) {
  storage::WriteBatch batch(engine_->store());
  batch.Put(storage::Cf::kMeta, key, value.Dump());
  CDP_ASSIGN_OR_RETURN(uint64_t sequence, engine_->store().Write(&batch));
  return engine_->store().SyncUpTo(sequence);
}

std::string AudiencesImpl::Naming(std::string_view segment_id) {
  if (!Load().ok()) return "";
  for (const auto& [id, a] : audiences_) {
    for (const char* field : {"exclude"}) {
      for (const Json& s : a.Find(field)->items()) {
        if (s.as_string() == segment_id) return id;
      }
    }
    for (const Json& s : a.FindPath("segments.ids")->items()) {
      if (s.as_string() == segment_id) return id;
    }
  }
  return "";
}

Result<Json> AudiencesImpl::Normalize(const Json& definition, std::string_view self) {
  if (!definition.is_object()) return Status::InvalidArgument("an audience must be a JSON object");
  for (const auto& [key, value] : definition.members()) {
    if (key != "name" && key != "description" && key != "segments" && key != "exclude" && key != "suppressionLists" &&
        key != "channel" && key != "id" && key != "createdAt" && key != "updatedAt" && key != "size") {
      return Status::InvalidArgument(
          "unknown member (expected name, description, segments, exclude, "
          "suppressionLists, channel)",
          key);
    }
  }
  Json out = Json::Object();
  CDP_RETURN_IF_ERROR(CheckNameAndDescription(definition, &out));
  const Json* segs = definition.Find("segments");
  if (segs == nullptr || !segs->is_object()) {
    return Status::InvalidArgument("expected {\"operator\": \"AND\" | \"OR\", \"ids\": [...]}", "segments");
  }
  const Json* op = segs->Find("operator");
  std::string op_name = op == nullptr ? "OR" : op->is_string() ? op->as_string() : "";
  if (op_name != "AND" && op_name != "OR") return Status::InvalidArgument("expected AND or OR", "segments.operator");
  CDP_ASSIGN_OR_RETURN(std::vector<std::string> ids, IdList(segs->Find("ids"), "segments.ids", 1, kMaxSegments));
  CDP_ASSIGN_OR_RETURN(std::vector<std::string> exclude,
                       IdList(definition.Find("exclude"), "exclude", 0, kMaxSegments));
  CDP_ASSIGN_OR_RETURN(std::vector<std::string> lists,
                       IdList(definition.Find("suppressionLists"), "suppressionLists", 0, kMaxSegments));
  for (const auto& [field, list] : {std::pair{"segments.ids", &ids}, std::pair{"exclude", &exclude}}) {
    for (const std::string& s : *list) {
      if (!segments_->Find(s).ok()) {
        return Status::InvalidArgument(fmt::format("segment {} does not exist", s), field);
      }
    }
  }
  for (const std::string& l : lists) {
    if (!lists_.contains(l)) {
      return Status::InvalidArgument(fmt::format("suppression list {} does not exist", l), "suppressionLists");
    }
  }
  Json channel;
  if (const Json* c = definition.Find("channel"); c != nullptr && !c->is_null()) {
    Json probe = Json::Object();
    if (c->is_string()) probe.Set(c->as_string(), true);
    auto normalized = NormalizeConsentObject(probe);  // a purpose stored under its own name
    // analytics_storage is Consent Mode's name for tracking, and stored as tracking: the channel takes that name.
    const std::string name = !c->is_string()                         ? std::string()
                             : c->as_string() == "analytics_storage" ? std::string("tracking")
                                                                     : c->as_string();
    if (!c->is_string() || !normalized.ok() || normalized->Find(name) == nullptr) {
      return Status::InvalidArgument(
          "expected a consent purpose (\"email\", \"sms\", \"ads\", \"tracking\", a Consent Mode signal, a custom "
          "purpose) or null",
          "channel");
    }
    channel = Json(name);
  }
  (void)self;
  out.Set("segments", Json::Object().Set("operator", op_name).Set("ids", Strings(ids)));
  out.Set("exclude", Strings(exclude));
  out.Set("suppressionLists", Strings(lists));
  out.Set("channel", channel);
  return out;
}

Result<const Json*> AudiencesImpl::FindAudience(std::string_view id) {
  auto it = audiences_.find(std::string(id));
  if (it == audiences_.end()) return Status::NotFound(fmt::format("audience {} does not exist", id));
  return &it->second;
}

Result<AudiencesImpl::Parts> AudiencesImpl::Evaluate(const Json& audience) {
  Parts parts;
  const bool all = audience.FindPath("segments.operator")->as_string() == "AND";
  bool first = true;
  for (const Json& id : audience.FindPath("segments.ids")->items()) {
    CDP_ASSIGN_OR_RETURN(SegmentsImpl::Definition * d, segments_->Find(id.as_string()));
    if (first) {
      parts.combined = d->members;
      first = false;
    } else if (all) {
      parts.combined &= d->members;
    } else {
      parts.combined |= d->members;
    }
  }
  segments::Bitmap members = parts.combined;
  for (const Json& id : audience.Find("exclude")->items()) {
    CDP_ASSIGN_OR_RETURN(SegmentsImpl::Definition * d, segments_->Find(id.as_string()));
    parts.excluded |= members & d->members;
  }
  members -= parts.excluded;
  for (const Json& list : audience.Find("suppressionLists")->items()) {
    const std::string prefix = ItemPrefix(list.as_string());
    auto iter = engine_->store().NewIterator(storage::Cf::kMeta, prefix, storage::PrefixSuccessor(prefix));
    for (iter->Seek(prefix); iter->Valid(); iter->Next()) {
      const std::string_view item = iter->key().substr(prefix.size());
      if (!item.empty() && item[0] == storage::kHashedItemMark) continue;  // an erased person's: no profile has it
      CDP_ASSIGN_OR_RETURN(std::string owner, engine_->OwnerOfIdentityKey(std::string(item)));
      if (owner.empty()) continue;
      const uint32_t ordinal = segments_->OrdinalOf(owner);
      if (members.contains(ordinal)) parts.suppressed.add(ordinal);
    }
    CDP_RETURN_IF_ERROR(iter->status());
  }
  members -= parts.suppressed;
  if (const Json* channel = audience.Find("channel"); channel != nullptr && channel->is_string()) {
    auto rule = SegmentRule::FromJson(
        Json::Object().Set("field", "consent." + channel->as_string()).Set("operator", "=").Set("value", true));
    if (!rule.ok()) return rule.status();
    segments::Bitmap granted = segments_->index_->Evaluate(*segments_->index_->Prepare(*rule), NowMicros());
    parts.without_consent = members - granted;
    members &= granted;
  }
  parts.members = std::move(members);
  return parts;
}

Status AudiencesImpl::CheckReadable(const Json& audience, const Access& access) {
  if (access.admin()) return Status::OK();
  for (const Json* ids : {audience.FindPath("segments.ids"), audience.Find("exclude")}) {
    if (ids == nullptr) continue;
    for (const Json& id : ids->items()) {
      CDP_ASSIGN_OR_RETURN(const SegmentsImpl::Definition* d, segments_->Find(id.as_string()));
      CDP_RETURN_IF_ERROR(segments_->CheckReadable(*d, access));
    }
  }
  if (const Json* channel = audience.Find("channel"); channel != nullptr && channel->is_string()) {
    CDP_RETURN_IF_ERROR(access.RequireRead("consent." + channel->as_string()));
  }
  if (const Json* lists = audience.Find("suppressionLists"); lists != nullptr && lists->size() > 0) {
    CDP_RETURN_IF_ERROR(access.RequireReadTree("externalIds"));
  }
  return Status::OK();
}

Json AudiencesImpl::WithSize(const Json& audience, uint64_t size) const {
  Json out = audience;
  out.Set("size", static_cast<int64_t>(size));
  return out;
}

Result<Json> AudiencesImpl::Create(const Json& definition) {
  CDP_RETURN_IF_ERROR(engine_->Require("admin"));
  std::lock_guard<std::mutex> lock(segments_->mu_);
  CDP_RETURN_IF_ERROR(segments_->Refresh());
  CDP_RETURN_IF_ERROR(Load());
  CDP_ASSIGN_OR_RETURN(Json stored, Normalize(definition, ""));
  const std::string id = "aud_" + NewId();
  const std::string now = FormatTimestamp(NowMicros());
  stored.Set("id", id).Set("createdAt", now).Set("updatedAt", now);
  CDP_RETURN_IF_ERROR(Put(kAudiencePrefix + id, stored));
  CDP_ASSIGN_OR_RETURN(Parts parts, Evaluate(stored));
  audiences_[id] = stored;
  return WithSize(stored, parts.members.cardinality());
}

Result<Json> AudiencesImpl::Get(std::string_view id) {
  CDP_RETURN_IF_ERROR(engine_->RequireDefined());
  std::lock_guard<std::mutex> lock(segments_->mu_);
  CDP_RETURN_IF_ERROR(segments_->Refresh());
  CDP_RETURN_IF_ERROR(Load());
  CDP_ASSIGN_OR_RETURN(const Json* a, FindAudience(id));
  CDP_RETURN_IF_ERROR(CheckReadable(*a, *engine_->access()));
  CDP_ASSIGN_OR_RETURN(Parts parts, Evaluate(*a));
  return WithSize(*a, parts.members.cardinality());
}

Result<Json> AudiencesImpl::List() {
  CDP_RETURN_IF_ERROR(engine_->RequireDefined());
  std::lock_guard<std::mutex> lock(segments_->mu_);
  CDP_RETURN_IF_ERROR(segments_->Refresh());
  CDP_RETURN_IF_ERROR(Load());
  Json out = Json::Array();
  auto access = engine_->access();
  for (const auto& [id, a] : audiences_) {
    if (!CheckReadable(a, *access).ok()) continue;  // left out
    CDP_ASSIGN_OR_RETURN(Parts parts, Evaluate(a));
    out.Push(WithSize(a, parts.members.cardinality()));
  }
  return out;
}

Result<Json> AudiencesImpl::Update(std::string_view id, const Json& definition) {
  CDP_RETURN_IF_ERROR(engine_->Require("admin"));
  std::lock_guard<std::mutex> lock(segments_->mu_);
  CDP_RETURN_IF_ERROR(segments_->Refresh());
  CDP_RETURN_IF_ERROR(Load());
  CDP_ASSIGN_OR_RETURN(const Json* old, FindAudience(id));
  CDP_ASSIGN_OR_RETURN(Json stored, Normalize(definition, id));
  stored.Set("id", std::string(id)).Set("createdAt", *old->Find("createdAt"));
  stored.Set("updatedAt", FormatTimestamp(NowMicros()));
  CDP_RETURN_IF_ERROR(Put(kAudiencePrefix + std::string(id), stored));
  audiences_[std::string(id)] = stored;
  CDP_ASSIGN_OR_RETURN(Parts parts, Evaluate(stored));
  return WithSize(stored, parts.members.cardinality());
}

Status AudiencesImpl::Delete(std::string_view id) {
  CDP_RETURN_IF_ERROR(engine_->Require("admin"));
  std::lock_guard<std::mutex> lock(segments_->mu_);
  CDP_RETURN_IF_ERROR(Load());
  CDP_RETURN_IF_ERROR(FindAudience(id).status());
  storage::WriteBatch batch(engine_->store());
  batch.Delete(storage::Cf::kMeta, kAudiencePrefix + std::string(id));
  CDP_ASSIGN_OR_RETURN(uint64_t sequence, engine_->store().Write(&batch));
  CDP_RETURN_IF_ERROR(engine_->store().SyncUpTo(sequence));
  audiences_.erase(std::string(id));
  return Status::OK();
}

Result<int64_t> AudiencesImpl::Size(std::string_view id) {
  CDP_RETURN_IF_ERROR(engine_->RequireDefined());
  std::lock_guard<std::mutex> lock(segments_->mu_);
  CDP_RETURN_IF_ERROR(segments_->Refresh());
  CDP_RETURN_IF_ERROR(Load());
  CDP_ASSIGN_OR_RETURN(const Json* a, FindAudience(id));
  CDP_RETURN_IF_ERROR(CheckReadable(*a, *engine_->access()));
  CDP_ASSIGN_OR_RETURN(Parts parts, Evaluate(*a));
  return static_cast<int64_t>(parts.members.cardinality());
}

Result<Page> AudiencesImpl::Members(std::string_view id, size_t limit, std::string_view cursor) {
  Result<Page> r = [&]() -> Result<Page> {
    CDP_RETURN_IF_ERROR(engine_->RequireDefined());
    std::lock_guard<std::mutex> lock(segments_->mu_);
    CDP_RETURN_IF_ERROR(segments_->Refresh());
    CDP_RETURN_IF_ERROR(Load());
    CDP_ASSIGN_OR_RETURN(const Json* a, FindAudience(id));
    CDP_RETURN_IF_ERROR(CheckReadable(*a, *engine_->access()));
    CDP_ASSIGN_OR_RETURN(Parts parts, Evaluate(*a));
    return segments_->PageOf(parts.members, limit, cursor);
  }();
  std::vector<std::string> ids;
  if (r.ok()) {
    for (const Json& p : r->items) ids.push_back(p.Find("id")->as_string());
  }
  Record(engine_->audit_log(), "audiences.members", ids, r.status(), static_cast<int64_t>(ids.size()), /*read=*/true,
         id);
  return r;
}

Result<Json> AudiencesImpl::Overlap(std::string_view id) {
  CDP_RETURN_IF_ERROR(engine_->RequireDefined());
  std::vector<std::string> ids;
  Json out = Json::Object();
  {
    std::lock_guard<std::mutex> lock(segments_->mu_);
    CDP_RETURN_IF_ERROR(segments_->Refresh());
    CDP_RETURN_IF_ERROR(Load());
    CDP_ASSIGN_OR_RETURN(const Json* a, FindAudience(id));
    CDP_RETURN_IF_ERROR(CheckReadable(*a, *engine_->access()));
    CDP_ASSIGN_OR_RETURN(Parts parts, Evaluate(*a));
    out.Set("audience",
            Json::Object().Set("id", std::string(id)).Set("size", static_cast<int64_t>(parts.members.cardinality())));
    out.Set("combined", static_cast<int64_t>(parts.combined.cardinality()));
    out.Set("excluded", static_cast<int64_t>(parts.excluded.cardinality()));
    out.Set("suppressed", static_cast<int64_t>(parts.suppressed.cardinality()));
    out.Set("withoutConsent", static_cast<int64_t>(parts.without_consent.cardinality()));
    for (const Json& s : a->FindPath("segments.ids")->items()) ids.push_back(s.as_string());
  }
  CDP_ASSIGN_OR_RETURN(Json matrix, segments_->Overlap(ids));
  out.Set("segments", *matrix.Find("segments"));
  out.Set("matrix", *matrix.Find("matrix"));
  return out;
}

Status AudiencesImpl::Export(std::string_view id, std::string_view format, const std::vector<std::string>& fields_in,
                             const std::function<bool(std::string_view chunk)>& sink) {
  CDP_RETURN_IF_ERROR(engine_->RequireDefined());
  std::vector<std::string> fields = fields_in;
  CDP_RETURN_IF_ERROR(SegmentsImpl::CheckExport(format, &fields));
  std::vector<std::string> members;
  {
    std::lock_guard<std::mutex> lock(segments_->mu_);
    CDP_RETURN_IF_ERROR(segments_->Refresh());
    CDP_RETURN_IF_ERROR(Load());
    CDP_ASSIGN_OR_RETURN(const Json* a, FindAudience(id));
    CDP_RETURN_IF_ERROR(CheckReadable(*a, *engine_->access()));
    CDP_ASSIGN_OR_RETURN(Parts parts, Evaluate(*a));
    members = segments_->IdsOf(parts.members);
  }
  return segments_->ExportProfiles(members, format, fields, sink, "audiences.export", id);
}

// ---- Suppression lists ----------------------------------------------------------------------------------------------

Result<int64_t> AudiencesImpl::ListSize(std::string_view id) {
  const std::string prefix = ItemPrefix(id);
  int64_t n = 0;
  auto iter = engine_->store().NewIterator(storage::Cf::kMeta, prefix, storage::PrefixSuccessor(prefix));
  for (iter->Seek(prefix); iter->Valid(); iter->Next()) ++n;
  CDP_RETURN_IF_ERROR(iter->status());
  return n;
}

Result<Json> AudiencesImpl::CreateSuppressionList(const Json& definition) {
  CDP_RETURN_IF_ERROR(engine_->Require("admin"));
  std::lock_guard<std::mutex> lock(segments_->mu_);
  CDP_RETURN_IF_ERROR(Load());
  if (!definition.is_object()) return Status::InvalidArgument("a suppression list must be a JSON object");
  for (const auto& [key, value] : definition.members()) {
    if (key != "name" && key != "description") {
      return Status::InvalidArgument("unknown member (expected name, description)", key);
    }
  }
  Json stored = Json::Object();
  CDP_RETURN_IF_ERROR(CheckNameAndDescription(definition, &stored));
  const std::string id = "supp_" + NewId();
  stored.Set("id", id).Set("createdAt", FormatTimestamp(NowMicros()));
  CDP_RETURN_IF_ERROR(Put(kListPrefix + id, stored));
  lists_[id] = stored;
  Json out = stored;
  out.Set("size", 0);
  return out;
}

Result<Json> AudiencesImpl::GetSuppressionList(std::string_view id) {
  CDP_RETURN_IF_ERROR(engine_->RequireDefined());
  std::lock_guard<std::mutex> lock(segments_->mu_);
  CDP_RETURN_IF_ERROR(Load());
  auto it = lists_.find(std::string(id));
  if (it == lists_.end()) return Status::NotFound(fmt::format("suppression list {} does not exist", id));
  CDP_ASSIGN_OR_RETURN(int64_t size, ListSize(id));
  Json out = it->second;
  out.Set("size", size);
  return out;
}

Result<Json> AudiencesImpl::ListSuppressionLists() {
  CDP_RETURN_IF_ERROR(engine_->RequireDefined());
  std::lock_guard<std::mutex> lock(segments_->mu_);
  CDP_RETURN_IF_ERROR(Load());
  Json out = Json::Array();
  for (const auto& [id, list] : lists_) {
    CDP_ASSIGN_OR_RETURN(int64_t size, ListSize(id));
    Json one = list;
    one.Set("size", size);
    out.Push(std::move(one));
  }
  return out;
}

Status AudiencesImpl::DeleteSuppressionList(std::string_view id) {
  CDP_RETURN_IF_ERROR(engine_->Require("admin"));
  std::lock_guard<std::mutex> lock(segments_->mu_);
  CDP_RETURN_IF_ERROR(Load());
  if (!lists_.contains(std::string(id))) return Status::NotFound(fmt::format("suppression list {} does not exist", id));
  for (const auto& [aid, a] : audiences_) {
    for (const Json& l : a.Find("suppressionLists")->items()) {
      if (l.as_string() == id) {
        return Status::FailedPrecondition(fmt::format("audience {} uses suppression list {}", aid, id));
      }
    }
  }
  storage::WriteBatch batch(engine_->store());
  batch.Delete(storage::Cf::kMeta, kListPrefix + std::string(id));
  const std::string prefix = ItemPrefix(id);
  batch.DeleteRange(storage::Cf::kMeta, prefix, storage::PrefixSuccessor(prefix));
  CDP_ASSIGN_OR_RETURN(uint64_t sequence, engine_->store().Write(&batch));
  CDP_RETURN_IF_ERROR(engine_->store().SyncUpTo(sequence));
  lists_.erase(std::string(id));
  return Status::OK();
}

// Audited: the items are identifiers (personal data). The entry names the list and how many items changed, not the
// identifiers (the log would keep them).
Result<Json> AudiencesImpl::AddToSuppressionList(std::string_view id, const Json& items) {
  AuditedChange change(engine_->audit_log(), "audiences.suppress");
  Status allowed = engine_->Require("admin");
  Result<Json> r = allowed.ok() ? ChangeList(id, items, true) : Result<Json>(allowed);
  change.Done({}, r.status(), r.ok() ? r->Find("added")->as_int() : 0, id);
  return r;
}

Result<Json> AudiencesImpl::RemoveFromSuppressionList(std::string_view id, const Json& items) {
  AuditedChange change(engine_->audit_log(), "audiences.unsuppress");
  Status allowed = engine_->Require("admin");
  Result<Json> r = allowed.ok() ? ChangeList(id, items, false) : Result<Json>(allowed);
  change.Done({}, r.status(), r.ok() ? r->Find("removed")->as_int() : 0, id);
  return r;
}

Result<Json> AudiencesImpl::ChangeList(std::string_view id, const Json& items, bool add) {
  std::lock_guard<std::mutex> lock(segments_->mu_);
  CDP_RETURN_IF_ERROR(Load());
  if (!lists_.contains(std::string(id))) return Status::NotFound(fmt::format("suppression list {} does not exist", id));
  if (!items.is_array() || items.size() > kMaxItems) {
    return Status::InvalidArgument(fmt::format("expected an array of at most {} identifiers", kMaxItems), "items");
  }
  std::shared_ptr<const IdentityRules> rules = engine_->rules();
  const std::string prefix = ItemPrefix(id);
  // Its reads and its write as one against an erasure hashing (or Unsuppress restoring) the same items.
  std::lock_guard<std::mutex> items_lock(engine_->suppression_items_mu());
  storage::WriteBatch batch(engine_->store());
  Json invalid = Json::Array();
  absl::flat_hash_set<std::string> seen;  // keys this call already handled
  int64_t changed = 0, unchanged = 0;
  for (size_t i = 0; i < items.size(); ++i) {
    const Json& item = items.items()[i];
    const Json* type = item.is_object() ? item.Find("type") : nullptr;
    const Json* value = item.is_object() ? item.Find("value") : nullptr;
    if (item.size() != 2 || type == nullptr || value == nullptr || !type->is_string() || !value->is_string() ||
        value->as_string().size() > 1024) {
      return Status::InvalidArgument("expected {\"type\", \"value\"} (a value of at most 1 KiB)",
                                     fmt::format("items[{}]", i));
    }
    Identifier normalized;
    IgnoredIdentifier ignored;
    if (!rules->Normalize(type->as_string(), value->as_string(), &normalized, &ignored)) {
      invalid.Push(Json::Object().Set("item", item).Set("reason", ignored.reason));
      continue;
    }
    const std::string identity_key = storage::IdentityKey(normalized.type, normalized.value);
    const std::string key = prefix + identity_key;
    if (!seen.insert(key).second) {
      ++unchanged;
      continue;
    }
    // The item may be there as its value, or as the hash an erasure left of it (EngineImpl::HashSuppressionItems):
    // adding the value again restores it, removing it removes either.
    const std::string hashed = prefix + storage::kHashedItemMark + engine_->SuppressionItemHash(identity_key);
    std::string unused;
    Status present = engine_->store().Get(storage::Cf::kMeta, key, &unused);
    if (!present.ok() && !present.IsNotFound()) return present;
    Status present_hashed = engine_->store().Get(storage::Cf::kMeta, hashed, &unused);
    if (!present_hashed.ok() && !present_hashed.IsNotFound()) return present_hashed;
    if (present_hashed.ok()) batch.Delete(storage::Cf::kMeta, hashed);
    if (add) {
      if (!present.ok()) batch.Put(storage::Cf::kMeta, key, "");
    } else if (present.ok()) {
      batch.Delete(storage::Cf::kMeta, key);
    }
    (present.ok() || present_hashed.ok()) == add ? ++unchanged : ++changed;
  }
  if (batch.Count() > 0) {
    CDP_ASSIGN_OR_RETURN(uint64_t sequence, engine_->store().Write(&batch));
    CDP_RETURN_IF_ERROR(engine_->store().SyncUpTo(sequence));
  }
  return Json::Object()
      .Set(add ? "added" : "removed", changed)
      .Set("unchanged", unchanged)
      .Set("invalid", std::move(invalid));
}

}  // namespace cdp::internal
