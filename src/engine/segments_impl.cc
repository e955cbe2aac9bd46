// Copyright 2026 The libcdp Authors.
//
// Segments: definitions and reads (segments_impl.h). The index's upkeep, the feed and the timers are in
// segments_live.cc.

#include "engine/segments_impl.h"

#include <algorithm>
#include <chrono>

#include "core/ids.h"
#include "engine/audiences_impl.h"
#include "engine/audited.h"
#include "engine/engine_impl.h"
#include "fmt/format.h"
#include "profiles/profile_model.h"
#include "storage/keys.h"

namespace cdp::internal {

namespace {

constexpr size_t kMaxNameBytes = 256;
constexpr size_t kMaxDescriptionBytes = 4096;
constexpr int kMaxSegmentNesting = 8;  // segments naming segments, at most this deep
constexpr int64_t kMaxWaitMs = 60'000;
constexpr size_t kMaxManualItems = 10'000;
constexpr size_t kMaxOverlap = 50;
constexpr size_t kMaxExportFields = 100;

bool IsCursor(std::string_view s) {
  return s.size() == 32 &&
         std::all_of(s.begin(), s.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

std::string CursorBytes(std::string_view hex) {
  std::string out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) {
    auto nibble = [](char c) { return c <= '9' ? c - '0' : c - 'a' + 10; };
    out.push_back(static_cast<char>(nibble(hex[i]) << 4 | nibble(hex[i + 1])));
  }
  return out;
}

}  // namespace

SegmentsImpl::SegmentsImpl(EngineImpl* engine) : engine_(engine) {}
SegmentsImpl::~SegmentsImpl() { Stop(); }

namespace {

// PermissionDenied unless the principal may read every field a rule (its JSON form) tests: profile fields, and the
// fields of events its behavioural conditions' "where" tests (as "events.<field>").
Status CheckRuleReads(const Access& access, const Json& rule, bool in_event) {
  if (access.admin()) return Status::OK();
  if (!access.defined()) return access.Require("read");
  if (rule.is_array()) {
    for (const Json& item : rule.items()) CDP_RETURN_IF_ERROR(CheckRuleReads(access, item, in_event));
    return Status::OK();
  }
  if (!rule.is_object()) return Status::OK();
  if (const Json* field = rule.Find("field"); field != nullptr && field->is_string()) {
    CDP_RETURN_IF_ERROR(access.RequireReadTree(in_event ? "events." + field->as_string() : field->as_string()));
  }
  if (const Json* event = rule.Find("event"); event != nullptr) {
    CDP_RETURN_IF_ERROR(access.RequireRead("events.type"));
    for (const char* aggregate : {"sum", "avg", "min", "max"}) {  // a comparison of an aggregate reveals it too
      if (const Json* path = rule.Find(aggregate); path != nullptr && path->is_string()) {
        CDP_RETURN_IF_ERROR(access.RequireReadTree("events." + path->as_string()));
      }
    }
    if (const Json* where = rule.Find("where"); where != nullptr) {
      CDP_RETURN_IF_ERROR(CheckRuleReads(access, *where, /*in_event=*/true));
    }
  }
  for (const char* key : {"conditions", "not", "sequence"}) {
    if (const Json* child = rule.Find(key); child != nullptr) {
      CDP_RETURN_IF_ERROR(CheckRuleReads(access, *child, in_event));
    }
  }
  return Status::OK();
}

}  // namespace

Result<SegmentsImpl::Definition*> SegmentsImpl::Find(std::string_view id) {
  auto it = definitions_.find(std::string(id));
  if (it == definitions_.end()) return Status::NotFound(fmt::format("segment {} does not exist", id));
  return &it->second;
}

Status SegmentsImpl::CheckReadable(const Definition& d, const Access& access) const {
  if (access.admin()) return Status::OK();
  if (!access.defined()) return access.Require("read");
  // Rules name segments by id; references are acyclic (ParseDefinition), and each segment is checked once.
  std::vector<const Definition*> todo = {&d};
  absl::flat_hash_set<const Definition*> seen = {&d};
  while (!todo.empty()) {
    const Definition* next = todo.back();
    todo.pop_back();
    if (next->manual) continue;
    if (const Json* rule = next->stored.Find("rule"); rule != nullptr) {
      CDP_RETURN_IF_ERROR(CheckRuleReads(access, *rule, /*in_event=*/false));
    }
    for (const std::string& named : next->rule.dependencies().segments) {
      auto it = definitions_.find(named);
      if (it != definitions_.end() && seen.insert(&it->second).second) todo.push_back(&it->second);
    }
  }
  return Status::OK();
}

Result<SegmentRule> SegmentsImpl::ParseDefinition(const Json& definition, std::string_view self, Json* normalized) {
  if (!definition.is_object()) return Status::InvalidArgument("a segment definition must be a JSON object");
  *normalized = Json::Object();
  const Json* rule_json = nullptr;
  for (const auto& [key, value] : definition.members()) {
    if (key == "name") {
      if (!value.is_string() || value.as_string().empty() || value.as_string().size() > kMaxNameBytes) {
        return Status::InvalidArgument(fmt::format("expected a string of 1 to {} bytes", kMaxNameBytes), "name");
      }
      normalized->Set("name", value);
    } else if (key == "description") {
      if (!value.is_string() || value.as_string().size() > kMaxDescriptionBytes) {
        return Status::InvalidArgument(fmt::format("expected a string of at most {} bytes", kMaxDescriptionBytes),
                                       "description");
      }
      normalized->Set("description", value);
    } else if (key == "rule") {
      rule_json = &value;
    } else if (key == "type") {
      if (value != Json("rule") && value != Json("manual")) {
        return Status::InvalidArgument("expected \"rule\" or \"manual\"", "type");
      }
      normalized->Set("type", value);
    } else if (key != "id" && key != "createdAt" && key != "updatedAt" && key != "size") {
      return Status::InvalidArgument("unknown member (expected name, description, type, rule)", key);
    }
  }
  if (normalized->Find("name") == nullptr) return Status::InvalidArgument("a segment needs a name", "name");
  if (normalized->Find("type") == nullptr) normalized->Set("type", "rule");
  if (normalized->Find("type")->as_string() == "manual") {
    if (rule_json != nullptr) return Status::InvalidArgument("a manual segment has no rule", "rule");
    return SegmentRule();
  }
  if (rule_json == nullptr) return Status::InvalidArgument("a segment needs a rule", "rule");
  auto rule = SegmentRule::FromJson(*rule_json);
  if (!rule.ok()) return rule.status().WithFieldPrefix("rule");
  normalized->Set("rule", rule->source());
  // Named segments exist, and none leads back to this one (nor deeper than kMaxSegmentNesting).
  std::vector<std::pair<std::string, int>> todo;
  for (const std::string& s : rule->dependencies().segments) todo.emplace_back(s, 1);
  while (!todo.empty()) {
    auto [id, depth] = todo.back();
    todo.pop_back();
    if (!self.empty() && id == self) {
      return Status::InvalidArgument(fmt::format("segment {} would name itself through its rule", self), "rule");
    }
    auto it = definitions_.find(id);
    if (it == definitions_.end()) {
      return Status::InvalidArgument(fmt::format("the rule names segment {}, which does not exist", id), "rule");
    }
    if (depth > kMaxSegmentNesting) {
      return Status::InvalidArgument(fmt::format("segments name segments more than {} deep", kMaxSegmentNesting),
                                     "rule");
    }
    for (const std::string& s : it->second.rule.dependencies().segments) todo.emplace_back(s, depth + 1);
  }
  return std::move(rule).value();
}

Status SegmentsImpl::StoreDefinition(const Json& stored) {
  storage::WriteBatch batch(engine_->store());
  batch.Put(storage::Cf::kMeta, storage::SegmentKey(stored.Find("id")->as_string()), stored.Dump());
  CDP_ASSIGN_OR_RETURN(uint64_t sequence, engine_->store().Write(&batch));
  return engine_->store().SyncUpTo(sequence);
}

Json SegmentsImpl::WithSize(const Definition& d) const {
  Json out = d.stored;
  out.Set("size", static_cast<int64_t>(d.members.cardinality()));
  return out;
}

Result<Json> SegmentsImpl::Create(const Json& definition) {
  CDP_RETURN_IF_ERROR(engine_->Require("admin"));
  std::lock_guard<std::mutex> lock(mu_);
  CDP_RETURN_IF_ERROR(Refresh());
  Json stored;
  CDP_ASSIGN_OR_RETURN(SegmentRule rule, ParseDefinition(definition, "", &stored));
  const std::string id = "seg_" + NewId();
  const std::string now = FormatTimestamp(NowMicros());
  stored.Set("id", id);
  stored.Set("createdAt", now);
  stored.Set("updatedAt", now);
  CDP_RETURN_IF_ERROR(StoreDefinition(stored));
  Definition* d;
  {
    std::unique_lock<std::shared_mutex> members_lock(members_mu_);
    d = &definitions_[id];
    d->manual = stored.Find("type")->as_string() == "manual";
    d->stored = std::move(stored);
    d->rule = std::move(rule);
    d->slot = static_cast<uint32_t>(slots_.size());
    slots_.push_back(d);
  }
  Bind(d);
  Reorder();
  std::vector<Change> changes;
  const int64_t at = NowMicros();
  Establish(d, segments::Bitmap(), "created", at, &changes);
  CDP_RETURN_IF_ERROR(Record(&changes, at));
  return WithSize(*d);
}

Result<Json> SegmentsImpl::Get(std::string_view id) {
  CDP_RETURN_IF_ERROR(engine_->RequireDefined());
  std::lock_guard<std::mutex> lock(mu_);
  CDP_RETURN_IF_ERROR(Refresh());
  CDP_ASSIGN_OR_RETURN(Definition * d, Find(id));
  CDP_RETURN_IF_ERROR(CheckReadable(*d, *engine_->access()));
  return WithSize(*d);
}

Result<Json> SegmentsImpl::List() {
  CDP_RETURN_IF_ERROR(engine_->RequireDefined());
  auto access = engine_->access();
  std::lock_guard<std::mutex> lock(mu_);
  CDP_RETURN_IF_ERROR(Refresh());
  Json out = Json::Array();
  for (const auto& [id, d] : definitions_) {
    if (CheckReadable(d, *access).ok()) out.Push(WithSize(d));  // the others are left out
  }
  return out;
}

Result<Json> SegmentsImpl::Update(std::string_view id, const Json& definition) {
  CDP_RETURN_IF_ERROR(engine_->Require("admin"));
  std::lock_guard<std::mutex> lock(mu_);
  CDP_RETURN_IF_ERROR(Refresh());
  CDP_ASSIGN_OR_RETURN(Definition * d, Find(id));
  Json stored;
  CDP_ASSIGN_OR_RETURN(SegmentRule rule, ParseDefinition(definition, id, &stored));
  if ((stored.Find("type")->as_string() == "manual") != d->manual) {
    return Status::InvalidArgument("a segment's type cannot change", "type");
  }
  stored.Set("id", std::string(id));
  stored.Set("createdAt", *d->stored.Find("createdAt"));
  stored.Set("updatedAt", FormatTimestamp(NowMicros()));
  CDP_RETURN_IF_ERROR(StoreDefinition(stored));
  {
    // A new slot: the old one's timers become stale.
    std::unique_lock<std::shared_mutex> members_lock(members_mu_);
    slots_[d->slot] = nullptr;
    d->slot = static_cast<uint32_t>(slots_.size());
    slots_.push_back(d);
    d->stored = std::move(stored);
    d->rule = std::move(rule);
  }
  Bind(d);
  Reorder();
  // This segment, then every segment that names it (directly or not), against their membership before.
  std::vector<Change> changes;
  const int64_t at = NowMicros();
  absl::flat_hash_set<std::string> changed = {std::string(id)};
  for (Definition* other : order_) {
    const std::string& other_id = other->stored.Find("id")->as_string();
    bool affected = other == d;
    for (const std::string& named : other->rule.dependencies().segments) affected = affected || changed.contains(named);
    if (!affected) continue;
    changed.insert(other_id);
    const segments::Bitmap before = other->members;
    Establish(other, before, "updated", at, &changes);
  }
  CDP_RETURN_IF_ERROR(Record(&changes, at));
  return WithSize(*d);
}

Status SegmentsImpl::Delete(std::string_view id) {
  CDP_RETURN_IF_ERROR(engine_->Require("admin"));
  std::lock_guard<std::mutex> lock(mu_);
  CDP_RETURN_IF_ERROR(Refresh());
  CDP_ASSIGN_OR_RETURN(Definition * d, Find(id));
  if (audiences_ != nullptr) {
    if (std::string audience = audiences_->Naming(id); !audience.empty()) {
      return Status::FailedPrecondition(fmt::format("audience {} names segment {}", audience, id));
    }
  }
  for (const auto& [other, o] : definitions_) {
    const auto& names = o.rule.dependencies().segments;
    if (std::find(names.begin(), names.end(), id) != names.end()) {
      return Status::FailedPrecondition(fmt::format("segment {} names segment {} in its rule", other, id));
    }
  }
  CDP_RETURN_IF_ERROR(WriteFeed());  // so the range deletion below covers every entry
  storage::WriteBatch batch(engine_->store());
  batch.Delete(storage::Cf::kMeta, storage::SegmentKey(id));
  for (const std::string& prefix : {storage::SegmentFeedPrefix(id), storage::ManualMemberPrefix(id)}) {
    batch.DeleteRange(storage::Cf::kMeta, prefix, storage::PrefixSuccessor(prefix));
  }
  CDP_ASSIGN_OR_RETURN(uint64_t sequence, engine_->store().Write(&batch));
  CDP_RETURN_IF_ERROR(engine_->store().SyncUpTo(sequence));
  {
    std::unique_lock<std::shared_mutex> members_lock(members_mu_);
    slots_[d->slot] = nullptr;
    definitions_.erase(std::string(id));
  }
  Reorder();
  cv_.notify_all();  // waiters on its feed
  return Status::OK();
}

Result<Page> SegmentsImpl::Members(std::string_view id, size_t limit, std::string_view cursor) {
  Result<Page> r = [&]() -> Result<Page> {
    CDP_RETURN_IF_ERROR(engine_->RequireDefined());
    std::lock_guard<std::mutex> lock(mu_);
    CDP_RETURN_IF_ERROR(Refresh());
    CDP_ASSIGN_OR_RETURN(Definition * d, Find(id));
    CDP_RETURN_IF_ERROR(CheckReadable(*d, *engine_->access()));
    return PageOf(d->members, limit, cursor);
  }();
  std::vector<std::string> ids;
  if (r.ok()) {
    for (const Json& p : r->items) ids.push_back(p.Find("id")->as_string());
  }
  internal::Record(engine_->audit_log(), "segments.members", ids, r.status(), static_cast<int64_t>(ids.size()),
                   /*read=*/true, id);
  return r;
}

Result<Page> SegmentsImpl::PageOf(const segments::Bitmap& members, size_t limit, std::string_view cursor) {
  if (limit == 0) limit = 50;
  limit = std::min(limit, engine_->options().max_page_size);
  uint32_t start = 0;
  if (!cursor.empty()) {
    auto after = ordinal_of_.find(std::string(cursor));
    if (after == ordinal_of_.end()) return Status::InvalidArgument("unknown cursor", "cursor");
    start = after->second + 1;
  }
  Page page;
  const std::string* last = nullptr;  // the last profile returned
  auto it = members.begin();
  if (start > 0) it.equalorlarger(start);
  for (; it != members.end(); ++it) {
    const std::string& pid = id_of_[*it];
    if (page.items.size() == limit) {
      page.next_cursor = *last;
      break;
    }
    auto doc = engine_->ReadStoredProfile(pid);
    if (doc.status().IsNotFound()) continue;  // erased since the refresh
    CDP_RETURN_IF_ERROR(doc.status());
    page.items.push_back(engine_->Render(*doc, pid));
    last = &pid;
  }
  return page;
}

std::vector<std::string> SegmentsImpl::IdsOf(const segments::Bitmap& members) const {
  std::vector<std::string> out;
  out.reserve(members.cardinality());
  for (uint32_t ordinal : members) out.push_back(id_of_[ordinal]);
  return out;
}

Result<int64_t> SegmentsImpl::Size(std::string_view id) {
  CDP_RETURN_IF_ERROR(engine_->RequireDefined());
  std::lock_guard<std::mutex> lock(mu_);
  CDP_RETURN_IF_ERROR(Refresh());
  CDP_ASSIGN_OR_RETURN(Definition * d, Find(id));
  CDP_RETURN_IF_ERROR(CheckReadable(*d, *engine_->access()));
  return static_cast<int64_t>(d->members.cardinality());
}

Result<int64_t> SegmentsImpl::Estimate(const Json& rule) {
  std::lock_guard<std::mutex> lock(mu_);
  CDP_RETURN_IF_ERROR(Refresh());
  Json wrapped = Json::Object().Set("name", "estimate").Set("rule", rule);
  Json normalized;
  CDP_ASSIGN_OR_RETURN(SegmentRule parsed, ParseDefinition(wrapped, "", &normalized));
  // A count of an unsaved rule reveals the values it tests: only over fields the principal may read.
  CDP_RETURN_IF_ERROR(CheckRuleReads(*engine_->access(), rule, /*in_event=*/false));
  auto prepared = index_->Prepare(parsed);
  return static_cast<int64_t>(index_->Count(*prepared, NowMicros(), Lookup()));
}

Status SegmentsImpl::WithIndex(const std::function<Status(segments::SegmentIndex&)>& read) {
  std::lock_guard<std::mutex> lock(mu_);
  CDP_RETURN_IF_ERROR(Refresh());
  return read(*index_);
}

Result<Json> SegmentsImpl::Changes(std::string_view id, std::string_view since, size_t limit) {
  // A read of who entered and left: one audit entry naming the page's profiles.
  Result<Json> r = ReadChanges(id, since, limit);
  std::vector<std::string> ids;
  if (r.ok()) {
    for (const Json& change : r->Find("changes")->items()) {
      if (const Json* pid = change.Find("profileId"); pid != nullptr && pid->is_string()) {
        if (std::find(ids.begin(), ids.end(), pid->as_string()) == ids.end()) ids.push_back(pid->as_string());
      }
    }
  }
  internal::Record(engine_->audit_log(), "segments.changes", ids, r.status(), static_cast<int64_t>(ids.size()),
                   /*read=*/true, id);
  return r;
}

Result<Json> SegmentsImpl::ReadChanges(std::string_view id, std::string_view since, size_t limit) {
  CDP_RETURN_IF_ERROR(engine_->RequireDefined());
  std::lock_guard<std::mutex> lock(mu_);
  CDP_RETURN_IF_ERROR(Refresh());
  CDP_ASSIGN_OR_RETURN(Definition * d, Find(id));
  CDP_RETURN_IF_ERROR(CheckReadable(*d, *engine_->access()));
  CDP_RETURN_IF_ERROR(WriteFeed());
  if (limit == 0) limit = 100;
  limit = std::min(limit, engine_->options().max_page_size);
  const std::string prefix = storage::SegmentFeedPrefix(id);
  std::string seek = prefix;
  bool skip_equal = false;
  if (IsCursor(since)) {
    seek += CursorBytes(since);
    skip_equal = true;
  } else if (!since.empty()) {
    auto t = ParseTimestamp(since);
    if (!t.ok()) return Status::InvalidArgument("expected a cursor or an RFC 3339 time", "since");
    seek += CursorBytes(CursorOfTime(*t));
  }
  Json changes = Json::Array();
  // With nothing new, the cursor returned still moves the reader past `since`: a time becomes its cursor.
  std::string cursor(since);
  if (!IsCursor(since)) cursor = since.empty() ? "" : CursorOfTime(*ParseTimestamp(since));
  bool more = false;
  auto iter = engine_->store().NewIterator(storage::Cf::kMeta, prefix, storage::PrefixSuccessor(prefix));
  for (iter->Seek(seek); iter->Valid(); iter->Next()) {
    if (skip_equal && iter->key() == seek) continue;
    if (changes.size() == limit) {
      more = true;
      break;
    }
    auto stored = Json::Parse(iter->value());
    if (!stored.ok()) return Status::DataLoss(fmt::format("segment {} has a corrupt feed entry", id));
    std::string_view suffix = iter->key().substr(prefix.size());
    static constexpr char kDigits[] = "0123456789abcdef";
    cursor.clear();
    for (unsigned char c : suffix) {
      cursor.push_back(kDigits[c >> 4]);
      cursor.push_back(kDigits[c & 15]);
    }
    Json change = Json::Object().Set("cursor", cursor);
    for (const auto& [name, value] : stored->members()) change.Set(name, value);
    changes.Push(std::move(change));
  }
  CDP_RETURN_IF_ERROR(iter->status());
  return Json::Object().Set("changes", std::move(changes)).Set("cursor", cursor).Set("more", more);
}

Result<bool> SegmentsImpl::WaitForChanges(std::string_view id, std::string_view cursor, int64_t timeout_ms) {
  CDP_RETURN_IF_ERROR(engine_->RequireDefined());
  if (!cursor.empty() && !IsCursor(cursor)) return Status::InvalidArgument("expected a cursor", "cursor");
  if (timeout_ms < 0 || timeout_ms > kMaxWaitMs) {
    return Status::InvalidArgument(fmt::format("expected 0 to {} milliseconds", kMaxWaitMs), "timeout");
  }
  std::unique_lock<std::mutex> lock(mu_);
  CDP_RETURN_IF_ERROR(Refresh());
  CDP_ASSIGN_OR_RETURN(const Definition* d, Find(id));
  CDP_RETURN_IF_ERROR(CheckReadable(*d, *engine_->access()));
  const std::string key(id);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  bool gone = false;
  ++waiters_;
  const bool found = cv_.wait_until(lock, deadline, [&] {
    auto it = definitions_.find(key);
    gone = it == definitions_.end();
    return stop_ || gone || it->second.last_cursor > cursor;
  });
  --waiters_;
  if (gone) return Status::NotFound(fmt::format("segment {} was deleted", id));
  return found && !stop_;
}

Result<std::vector<std::string>> SegmentsImpl::MembersAt(std::string_view id, std::string_view time) {
  Result<std::vector<std::string>> r = [&]() -> Result<std::vector<std::string>> {
    CDP_RETURN_IF_ERROR(engine_->RequireDefined());
    auto t = ParseTimestamp(time);
    if (!t.ok()) return Status::InvalidArgument("expected an RFC 3339 time", "asOf");
    std::lock_guard<std::mutex> lock(mu_);
    CDP_RETURN_IF_ERROR(Refresh());
    CDP_ASSIGN_OR_RETURN(Definition * d, Find(id));
    CDP_RETURN_IF_ERROR(CheckReadable(*d, *engine_->access()));
    CDP_RETURN_IF_ERROR(WriteFeed());
    std::vector<std::string> ids;
    CDP_RETURN_IF_ERROR(FoldFeed(id, *t, nullptr, &ids, nullptr));
    return ids;
  }();
  internal::Record(engine_->audit_log(), "segments.membersAt", {}, r.status(),
                   r.ok() ? static_cast<int64_t>(r->size()) : 0,
                   /*read=*/true, id);
  return r;
}

Result<Json> SegmentsImpl::AddMembers(std::string_view id, const Json& items) {
  return ChangeManualAudited(id, items, true);
}

Result<Json> SegmentsImpl::RemoveMembers(std::string_view id, const Json& items) {
  return ChangeManualAudited(id, items, false);
}

// A change of personal data (membership): an entry naming the profiles added or removed, the segment as resource.
Result<Json> SegmentsImpl::ChangeManualAudited(std::string_view id, const Json& items, bool add) {
  AuditedChange change(engine_->audit_log(), add ? "segments.addMembers" : "segments.removeMembers");
  std::vector<std::string> touched;
  Status allowed = engine_->Require("admin");
  Result<Json> r = allowed.ok() ? [&]() -> Result<Json> {
    std::lock_guard<std::mutex> lock(mu_);
    return ChangeManual(id, items, add, &touched);
  }()
      : Result<Json>(allowed);
  change.Done(touched, r.status(), 0, id);
  return r;
}

Result<Json> SegmentsImpl::ChangeManual(std::string_view id, const Json& items, bool add,
                                        std::vector<std::string>* touched_ids) {
  CDP_RETURN_IF_ERROR(Refresh());
  CDP_ASSIGN_OR_RETURN(Definition * d, Find(id));
  if (!d->manual) return Status::FailedPrecondition(fmt::format("segment {} is not a manual segment", id));
  if (!items.is_array()) return Status::InvalidArgument("expected an array of profile ids or identifiers", "items");
  if (items.size() > kMaxManualItems) {
    return Status::InvalidArgument(fmt::format("at most {} items per call", kMaxManualItems), "items");
  }
  // Resolve every item first: a bad item changes nothing.
  std::vector<std::string> profiles;
  absl::flat_hash_map<std::string, Json> asked_as;
  Json not_found = Json::Array();
  for (size_t i = 0; i < items.size(); ++i) {
    const Json& item = items.items()[i];
    const std::string where = fmt::format("items[{}]", i);
    std::string live;
    if (item.is_string()) {
      if (item.as_string().empty() || item.as_string().size() > 128) {
        return Status::InvalidArgument("a profile id of 1 to 128 bytes", where);
      }
      auto doc = engine_->ReadLiveProfile(item.as_string(), &live);
      if (!doc.ok() && !doc.status().IsNotFound()) return doc.status();
      if (!doc.ok()) live.clear();
    } else if (item.is_object() && item.size() == 2 && item.Find("type") != nullptr && item.Find("type")->is_string() &&
               item.Find("value") != nullptr && item.Find("value")->is_string() &&
               item.Find("value")->as_string().size() <= 1024) {
      CDP_ASSIGN_OR_RETURN(live,
                           engine_->ResolveIdentifier(item.Find("type")->as_string(), item.Find("value")->as_string()));
    } else {
      return Status::InvalidArgument("expected a profile id or {\"type\", \"value\"} (a value of at most 1 KiB)",
                                     where);
    }
    if (live.empty()) {
      not_found.Push(item);
    } else {
      asked_as.emplace(live, item);  // the first item naming it, for notFound should it go meanwhile
      profiles.push_back(std::move(live));
    }
  }
  storage::WriteBatch batch(engine_->store());
  std::vector<uint32_t> touched;
  int64_t unchanged = 0;
  for (const std::string& p : profiles) {
    const uint32_t ordinal = OrdinalOf(p);
    if (d->manual_members.contains(ordinal) == add) {
      ++unchanged;
      continue;
    }
    if (add) {
      d->manual_members.add(ordinal);  // written below, once the profile is checked again
    } else {
      d->manual_members.remove(ordinal);
      batch.Delete(storage::Cf::kMeta, storage::ManualMemberPrefix(id) + p);
    }
    touched.push_back(ordinal);
    touched_ids->push_back(p);
  }
  if (!touched.empty()) {
    // Written with writes paused, after checking again that each added profile still exists: an erasure (which
    // deletes memberships in its own write, under the same lock) either came first and the profile is skipped, or
    // comes after and finds the membership.
    uint64_t sequence = 0;
    CDP_RETURN_IF_ERROR(engine_->WithWritesPaused([&]() -> Status {
      if (add) {
        const size_t base = touched_ids->size() - touched.size();  // this call's profiles
        size_t kept = 0;
        for (size_t i = 0; i < touched.size(); ++i) {
          const std::string p = (*touched_ids)[base + i];
          std::string live;
          auto doc = engine_->ReadLiveProfile(p, &live);
          if (!doc.ok() && !doc.status().IsNotFound()) return doc.status();
          if (!doc.ok() || live != p) {  // erased or merged away since it was resolved
            d->manual_members.remove(touched[i]);
            not_found.Push(asked_as[p]);
            continue;
          }
          batch.Put(storage::Cf::kMeta, storage::ManualMemberPrefix(id) + p, "");
          touched[kept] = touched[i];
          (*touched_ids)[base + kept] = p;
          ++kept;
        }
        touched.resize(kept);
        touched_ids->resize(base + kept);
      }
      if (batch.Count() == 0) return Status::OK();
      CDP_ASSIGN_OR_RETURN(sequence, engine_->store().Write(&batch));
      return Status::OK();
    }));
    if (sequence > 0) CDP_RETURN_IF_ERROR(engine_->store().SyncUpTo(sequence));
  }
  std::vector<Change> changes;
  const int64_t now = NowMicros();
  const Json cause = Json::Object().Set("kind", "manual");
  for (uint32_t ordinal : touched) {
    Reevaluate(
        ordinal, [d](const Definition& other) { return &other == d; }, cause, now, &changes);
  }
  CDP_RETURN_IF_ERROR(Record(&changes, now));
  return Json::Object()
      .Set(add ? "added" : "removed", static_cast<int64_t>(touched.size()))
      .Set("unchanged", unchanged)
      .Set("notFound", std::move(not_found));
}

Result<Json> SegmentsImpl::Overlap(const std::vector<std::string>& ids) {
  CDP_RETURN_IF_ERROR(engine_->RequireDefined());
  if (ids.empty() || ids.size() > kMaxOverlap) {
    return Status::InvalidArgument(fmt::format("expected 1 to {} segment ids", kMaxOverlap), "segmentIds");
  }
  std::lock_guard<std::mutex> lock(mu_);
  CDP_RETURN_IF_ERROR(Refresh());
  std::vector<const segments::Bitmap*> sets;
  Json listed = Json::Array();
  absl::flat_hash_set<std::string_view> seen;
  for (const std::string& id : ids) {
    if (!seen.insert(id).second) return Status::InvalidArgument("segment " + id + " is named twice", "segmentIds");
    CDP_ASSIGN_OR_RETURN(Definition * d, Find(id));
    CDP_RETURN_IF_ERROR(CheckReadable(*d, *engine_->access()));
    sets.push_back(&d->members);
    listed.Push(Json::Object()
                    .Set("id", id)
                    .Set("name", *d->stored.Find("name"))
                    .Set("size", static_cast<int64_t>(d->members.cardinality())));
  }
  Json matrix = Json::Array();
  for (const auto& row : segments::PairwiseOverlap(sets)) {
    Json cells = Json::Array();
    for (const segments::Overlap& o : row) {
      cells.Push(Json::Object()
                     .Set("intersection", static_cast<int64_t>(o.intersection))
                     .Set("union", static_cast<int64_t>(o.union_size))
                     .Set("jaccard", o.jaccard));
    }
    matrix.Push(std::move(cells));
  }
  return Json::Object().Set("segments", std::move(listed)).Set("matrix", std::move(matrix));
}

namespace {

// RFC 4180: quoted when it holds a comma, a quote or a line break; quotes doubled.
void AppendCsvCell(std::string_view text, std::string* out) {
  if (text.find_first_of(",\"\r\n") == std::string_view::npos) {
    out->append(text);
    return;
  }
  out->push_back('"');
  for (char c : text) {
    if (c == '"') out->push_back('"');
    out->push_back(c);
  }
  out->push_back('"');
}

}  // namespace

Status SegmentsImpl::CheckExport(std::string_view format, std::vector<std::string>* fields) {
  if (format != "csv" && format != "jsonl") return Status::InvalidArgument("expected \"csv\" or \"jsonl\"", "format");
  if (fields->empty()) {
    *fields = {"id", "externalIds.email", "externalIds.phone", "attributes.firstName", "attributes.lastName"};
  }
  if (fields->size() > kMaxExportFields) {
    return Status::InvalidArgument(fmt::format("at most {} fields", kMaxExportFields), "fields");
  }
  for (size_t i = 0; i < fields->size(); ++i) {
    const std::string& f = (*fields)[i];
    if (f.empty() || f.size() > 256 || f.front() == '.' || f.back() == '.' || f.find("..") != std::string::npos) {
      return Status::InvalidArgument("a field is a dotted path of 1 to 256 bytes", fmt::format("fields[{}]", i));
    }
  }
  return Status::OK();
}

Status SegmentsImpl::Export(std::string_view id, std::string_view format, const std::vector<std::string>& fields_in,
                            const std::function<bool(std::string_view chunk)>& sink) {
  CDP_RETURN_IF_ERROR(engine_->RequireDefined());
  std::vector<std::string> fields = fields_in;
  CDP_RETURN_IF_ERROR(CheckExport(format, &fields));
  std::vector<std::string> members;  // membership now, as ids; the documents are read without the lock
  {
    std::lock_guard<std::mutex> lock(mu_);
    CDP_RETURN_IF_ERROR(Refresh());
    CDP_ASSIGN_OR_RETURN(Definition * d, Find(id));
    CDP_RETURN_IF_ERROR(CheckReadable(*d, *engine_->access()));
    members = IdsOf(d->members);
  }
  return ExportProfiles(members, format, fields, sink, "segments.export", id);
}

Status SegmentsImpl::ExportProfiles(const std::vector<std::string>& members, std::string_view format,
                                    const std::vector<std::string>& fields,
                                    const std::function<bool(std::string_view chunk)>& sink, std::string_view operation,
                                    std::string_view resource) {
  // An entry per chunk the sink took, naming its rows' profiles (so the member's own trail lists the export),
  // appended as it goes: a profile erased during a long export is then redacted like any earlier entry.
  bool delivered = false;
  std::vector<std::string> exported;  // the profiles of the rows handed to the sink so far
  size_t recorded = 0;
  Status s = WriteExport(
      members, format, fields,
      [&](std::string_view chunk) {
        // After the first chunk (a reader refusing it read nothing out: a server checks an export so before it
        // streams), each chunk's entry comes before the chunk is handed over, whatever the sink does with it.
        auto record = [&] {
          std::vector<std::string> rows(exported.begin() + recorded, exported.end());
          internal::RecordInParts(engine_->audit_log(), operation, rows, Status::OK(),
                                  static_cast<int64_t>(rows.size()), /*read=*/true, resource);
          recorded = exported.size();
        };
        if (delivered) record();
        const bool more = sink(chunk);
        if (!delivered && more) {
          delivered = true;
          record();
        }
        recorded = exported.size();
        return more;
      },
      &exported);
  // A failure, or an export with no rows: an entry of its own.
  if ((!s.ok() && s.code() != StatusCode::kUnavailable) || (s.ok() && !delivered)) {
    internal::Record(engine_->audit_log(), operation, {}, s, 0, /*read=*/true, resource);
  }
  return s;
}

Status SegmentsImpl::WriteExport(const std::vector<std::string>& members, std::string_view format,
                                 const std::vector<std::string>& fields,
                                 const std::function<bool(std::string_view chunk)>& sink,
                                 std::vector<std::string>* exported) {
  constexpr size_t kChunk = 64 * 1024;
  std::string out;
  std::vector<std::string> in_chunk;  // the profiles of `out`'s rows
  auto flush = [&](bool last) {
    if (out.empty() || (!last && out.size() < kChunk)) return true;
    exported->insert(exported->end(), in_chunk.begin(), in_chunk.end());  // handed over, whatever the sink says
    in_chunk.clear();
    const bool more = sink(out);
    out.clear();
    return more;
  };
  if (format == "csv") {
    for (size_t i = 0; i < fields.size(); ++i) {
      if (i > 0) out.push_back(',');
      AppendCsvCell(fields[i], &out);
    }
    out += "\r\n";
  }
  for (const std::string& pid : members) {
    auto stored = engine_->ReadStoredProfile(pid);
    if (stored.status().IsNotFound()) continue;  // erased since
    CDP_RETURN_IF_ERROR(stored.status());
    if (stored->Find("mergedInto") != nullptr) continue;  // merged away since: its survivor is the member
    const Json doc = engine_->Render(*stored, pid);
    if (format == "csv") {
      for (size_t i = 0; i < fields.size(); ++i) {
        if (i > 0) out.push_back(',');
        const Json* v = doc.FindPath(fields[i]);
        if (v == nullptr || v->is_null()) continue;
        AppendCsvCell(v->is_string() ? v->as_string() : v->Dump(), &out);
      }
      out += "\r\n";
    } else {
      Json line = Json::Object();
      for (const std::string& f : fields) {
        const Json* v = doc.FindPath(f);
        line.Set(f, v != nullptr ? *v : Json());
      }
      out += line.Dump();
      out.push_back('\n');
    }
    in_chunk.push_back(pid);
    if (!flush(false)) return Status::Unavailable("the export was stopped by its reader");
  }
  if (!flush(true)) return Status::Unavailable("the export was stopped by its reader");
  return Status::OK();
}

// ---- RFM ------------------------------------------------------------------------------------------------------------

Status SegmentsImpl::ParseRfmConfig(const Json& config, RfmOptions* options) {
  if (!config.is_object()) return Status::InvalidArgument("an RFM configuration is a JSON object");
  RfmOptions out = *options;
  for (const auto& [key, value] : config.members()) {
    if (key == "event") {
      if (!value.is_string() || value.as_string().empty() || value.as_string().size() > 256) {
        return Status::InvalidArgument("an event type or custom event name of 1 to 256 bytes", "event");
      }
      out.event = value.as_string();
    } else if (key == "revenuePath") {
      const std::string& path = value.is_string() ? value.as_string() : "";
      if (path.rfind("properties.", 0) != 0 || path.size() > 256 || path.back() == '.' ||
          path.find("..") != std::string::npos) {
        return Status::InvalidArgument("a path properties.x of at most 256 bytes", "revenuePath");
      }
      out.revenue_path = path;
    } else if (key == "window") {
      if (value.is_null()) {
        out.window_us = 0;
      } else {
        auto window = value.is_string() ? ParseRuleDuration(value.as_string())
                                        : Result<int64_t>(Status::InvalidArgument("expected a duration"));
        if (!window.ok()) return Status::InvalidArgument("a duration such as \"365d\", or null", "window");
        out.window_us = *window;
      }
    } else {
      return Status::InvalidArgument("unknown member (expected event, revenuePath, window)", key);
    }
  }
  *options = out;
  return Status::OK();
}

Json SegmentsImpl::RfmConfigJson(const RfmOptions& options) {
  Json window;
  if (options.window_us > 0) {
    constexpr int64_t kDay = 86400LL * 1000000;
    window = options.window_us % kDay == 0 ? fmt::format("{}d", options.window_us / kDay)
                                           : fmt::format("{}s", options.window_us / 1000000);
  }
  return Json::Object()
      .Set("event", options.event)
      .Set("revenuePath", options.revenue_path)
      .Set("window", std::move(window));
}

Result<Json> SegmentsImpl::RfmConfig() {
  CDP_RETURN_IF_ERROR(engine_->RequireDefined());
  std::lock_guard<std::mutex> lock(mu_);
  CDP_RETURN_IF_ERROR(LoadDefinitions());
  return RfmConfigJson(rfm_options_);
}

Result<Json> SegmentsImpl::SetRfmConfig(const Json& config) {
  CDP_RETURN_IF_ERROR(engine_->Require("admin"));
  std::lock_guard<std::mutex> lock(mu_);
  CDP_RETURN_IF_ERROR(Refresh());
  RfmOptions next = rfm_options_;
  CDP_RETURN_IF_ERROR(ParseRfmConfig(config, &next));
  storage::WriteBatch batch(engine_->store());
  batch.Put(storage::Cf::kMeta, kRfmConfigKey, RfmConfigJson(next).Dump());
  CDP_ASSIGN_OR_RETURN(uint64_t sequence, engine_->store().Write(&batch));
  CDP_RETURN_IF_ERROR(engine_->store().SyncUpTo(sequence));
  rfm_options_ = next;
  std::vector<Change> changes;
  const int64_t now = NowMicros();
  Json result = ScoreRfmNow(now, &changes);
  CDP_RETURN_IF_ERROR(Record(&changes, now));
  return RfmConfigJson(rfm_options_).Set("lastRun", std::move(result));
}

Result<Json> SegmentsImpl::RecomputeRfm() {
  CDP_RETURN_IF_ERROR(engine_->Require("admin"));
  std::lock_guard<std::mutex> lock(mu_);
  CDP_RETURN_IF_ERROR(Refresh());
  std::vector<Change> changes;
  const int64_t now = NowMicros();
  Json result = ScoreRfmNow(now, &changes);
  CDP_RETURN_IF_ERROR(Record(&changes, now));
  return result;
}

Json SegmentsImpl::RfmOf(std::string_view profile_id) {
  if (!tracking()) return Json();
  std::shared_lock<std::shared_mutex> lock(members_mu_);
  auto it = ordinal_of_.find(std::string(profile_id));
  if (it == ordinal_of_.end()) return Json();
  auto rfm = rfm_.find(it->second);
  return rfm == rfm_.end() ? Json() : rfm->second.ToJson();
}

std::vector<std::string> SegmentsImpl::SegmentsOf(std::string_view profile_id) {
  std::vector<std::string> out;
  if (!tracking()) return out;
  std::shared_lock<std::shared_mutex> lock(members_mu_);
  auto it = ordinal_of_.find(std::string(profile_id));
  if (it == ordinal_of_.end()) return out;
  auto access = engine_->access();
  for (const Definition* d : slots_) {
    if (d != nullptr && d->members.contains(it->second) && CheckReadable(*d, *access).ok()) {
      out.push_back(d->stored.Find("id")->as_string());
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace cdp::internal
