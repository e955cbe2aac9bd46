// Copyright 2026 The libcdp Authors.

#include "engine/segments_impl.h"

#include <algorithm>

#include "core/ids.h"
#include "engine/engine_impl.h"
#include "engine/event_tail.h"
#include "fmt/format.h"
#include "profiles/profile_model.h"
#include "segments/index.h"
#include "storage/keys.h"

namespace cdp::internal {

namespace {

constexpr char kPrefix[] = "seg/";
constexpr size_t kMaxNameBytes = 256;
constexpr size_t kMaxDescriptionBytes = 4096;
constexpr int kMaxSegmentNesting = 8;  // segments naming segments, at most this deep

std::string DefinitionKey(std::string_view id) { return kPrefix + std::string(id); }

// Adds an event document to the index under `ordinal`.
Status AddStoredEvent(segments::SegmentIndex* index, uint32_t ordinal, int64_t time_us, std::string_view text) {
  auto doc = Json::Parse(text);
  if (!doc.ok()) return Status::DataLoss("a stored event is corrupt");
  const Json* type = doc->Find("type");
  const Json* name = doc->Find("name");
  return index->AddEvent(ordinal, type != nullptr ? type->as_string() : "",
                         name != nullptr && type != nullptr && type->as_string() == "custom" ? name->as_string() : "",
                         time_us, *doc);
}

}  // namespace

SegmentsImpl::SegmentsImpl(EngineImpl* engine) : engine_(engine) {}
SegmentsImpl::~SegmentsImpl() = default;

void SegmentsImpl::NotifyChanged(std::vector<std::string> profile_ids) {
  if (!tracking() || profile_ids.empty()) return;
  std::lock_guard<std::mutex> lock(pending_mu_);
  for (std::string& id : profile_ids) pending_.insert(std::move(id));
}

uint32_t SegmentsImpl::OrdinalOf(const std::string& profile_id) {
  auto [it, inserted] = ordinal_of_.try_emplace(profile_id, static_cast<uint32_t>(id_of_.size()));
  if (inserted) id_of_.push_back(profile_id);
  return it->second;
}

Status SegmentsImpl::Build() {
  storage::Store& store = engine_->store();
  index_ = std::make_unique<segments::SegmentIndex>();
  ordinal_of_.clear();
  id_of_.clear();
  {
    std::lock_guard<std::mutex> lock(pending_mu_);
    pending_.clear();
  }
  // From here on writers note what they change; the pause makes sure no batch published before is still in
  // flight, so the scan below sees it.
  tracking_.store(true, std::memory_order_release);
  CDP_RETURN_IF_ERROR(engine_->WithWritesPaused([] { return Status::OK(); }));
  auto profiles = store.NewIterator(storage::Cf::kProfiles);
  for (profiles->SeekToFirst(); profiles->Valid(); profiles->Next()) {
    auto doc = Json::Parse(profiles->value());
    if (!doc.ok()) return Status::DataLoss(fmt::format("stored profile {} is corrupt", profiles->key()));
    if (doc->Find("mergedInto") != nullptr) continue;
    const std::string id(profiles->key());
    CDP_RETURN_IF_ERROR(index_->UpsertProfile(OrdinalOf(id), RenderProfile(*doc, engine_->ReadTraits(id))));
  }
  CDP_RETURN_IF_ERROR(profiles->status());
  auto events = store.NewIterator(storage::Cf::kEventsByTime);
  for (events->SeekToFirst(); events->Valid(); events->Next()) {
    auto it = ordinal_of_.find(std::string(storage::TimeIndexProfile(events->key())));
    if (it == ordinal_of_.end()) continue;  // a profile created after the scan above: reloaded as pending
    const int64_t t = storage::TimeKeyTime(storage::TimeIndexTimeKey(events->key()));
    CDP_RETURN_IF_ERROR(AddStoredEvent(index_.get(), it->second, t, events->value()));
  }
  CDP_RETURN_IF_ERROR(events->status());
  for (auto& [id, d] : definitions_) d.prepared = index_->Prepare(d.rule);
  return Status::OK();
}

Status SegmentsImpl::Reload(const std::string& profile_id) {
  const uint32_t ordinal = OrdinalOf(profile_id);
  index_->RemoveProfile(ordinal);
  auto doc = engine_->ReadStoredProfile(profile_id);
  if (doc.status().IsNotFound()) return Status::OK();  // erased
  CDP_RETURN_IF_ERROR(doc.status());
  if (doc->Find("mergedInto") != nullptr) return Status::OK();  // merged away: its events moved
  CDP_RETURN_IF_ERROR(index_->UpsertProfile(ordinal, RenderProfile(*doc, engine_->ReadTraits(profile_id))));
  std::string text;
  for (ProfileEvents events(engine_->store(), engine_->tail(), profile_id); events.Valid(); events.Next()) {
    Status s = events.Read(&text);
    if (s.IsNotFound()) continue;
    CDP_RETURN_IF_ERROR(s);
    CDP_RETURN_IF_ERROR(AddStoredEvent(index_.get(), ordinal, events.time_us(), text));
  }
  return Status::OK();
}

Status SegmentsImpl::Refresh() {
  if (!loaded_) {
    auto iter = engine_->store().NewIterator(storage::Cf::kMeta, kPrefix, storage::PrefixSuccessor(kPrefix));
    for (iter->Seek(kPrefix); iter->Valid(); iter->Next()) {
      auto stored = Json::Parse(iter->value());
      if (!stored.ok()) return Status::DataLoss(fmt::format("segment {} is corrupt", iter->key()));
      const Json* rule_json = stored->Find("rule");
      auto rule = rule_json != nullptr ? SegmentRule::FromJson(*rule_json) : Result<SegmentRule>(Status::DataLoss(""));
      if (!rule.ok()) return Status::DataLoss(fmt::format("segment {} has a corrupt rule", iter->key()));
      const Json* id = stored->Find("id");
      if (id == nullptr || !id->is_string()) return Status::DataLoss(fmt::format("segment {} is corrupt", iter->key()));
      std::string key = id->as_string();
      definitions_[key] = Definition{std::move(stored).value(), std::move(rule).value(), {}};
    }
    CDP_RETURN_IF_ERROR(iter->status());
    loaded_ = true;
  }
  if (index_ == nullptr) {
    Status s = Build();
    if (!s.ok()) {
      index_.reset();
      tracking_.store(false);
      return s;
    }
  }
  // The profiles written since the last read, with writes paused: all of them are in storage.
  return engine_->WithWritesPaused([&]() -> Status {
    absl::flat_hash_set<std::string> changed;
    {
      std::lock_guard<std::mutex> lock(pending_mu_);
      changed.swap(pending_);
    }
    for (const std::string& id : changed) CDP_RETURN_IF_ERROR(Reload(id));
    return Status::OK();
  });
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
    } else if (key != "id" && key != "createdAt" && key != "updatedAt" && key != "size") {
      return Status::InvalidArgument("unknown member (expected name, description, rule)", key);
    }
  }
  if (normalized->Find("name") == nullptr) return Status::InvalidArgument("a segment needs a name", "name");
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

Result<std::vector<uint32_t>> SegmentsImpl::MembersNow(const Definition& d) {
  const int64_t now = NowMicros();
  // Segments named by the rule, evaluated once each for this call (definitions are acyclic and bounded in depth).
  absl::flat_hash_map<std::string, std::unique_ptr<segments::Bitmap>> memo;
  segments::MembershipLookup lookup = [&](std::string_view id) -> const segments::Bitmap* {
    std::string key(id);
    if (auto it = memo.find(key); it != memo.end()) return it->second.get();
    auto def = definitions_.find(key);
    if (def == definitions_.end()) return nullptr;
    auto bitmap = std::make_unique<segments::Bitmap>(index_->Evaluate(*def->second.prepared, now, lookup));
    return (memo[key] = std::move(bitmap)).get();
  };
  segments::Bitmap members = index_->Evaluate(*d.prepared, now, lookup);
  std::vector<uint32_t> out(members.cardinality());
  members.toUint32Array(out.data());
  return out;
}

Status SegmentsImpl::Store(const Json& stored) {
  storage::WriteBatch batch(engine_->store());
  batch.Put(storage::Cf::kMeta, DefinitionKey(stored.Find("id")->as_string()), stored.Dump());
  CDP_ASSIGN_OR_RETURN(uint64_t sequence, engine_->store().Write(&batch));
  return engine_->store().SyncUpTo(sequence);
}

Result<Json> SegmentsImpl::WithSize(const Definition& d) {
  CDP_ASSIGN_OR_RETURN(std::vector<uint32_t> members, MembersNow(d));
  Json out = d.stored;
  out.Set("size", static_cast<int64_t>(members.size()));
  return out;
}

Result<Json> SegmentsImpl::Create(const Json& definition) {
  std::lock_guard<std::mutex> lock(mu_);
  CDP_RETURN_IF_ERROR(Refresh());
  Json stored;
  CDP_ASSIGN_OR_RETURN(SegmentRule rule, ParseDefinition(definition, "", &stored));
  const std::string id = "seg_" + NewId();
  const std::string now = FormatTimestamp(NowMicros());
  stored.Set("id", id);
  stored.Set("createdAt", now);
  stored.Set("updatedAt", now);
  CDP_RETURN_IF_ERROR(Store(stored));
  Definition d{std::move(stored), std::move(rule), {}};
  d.prepared = index_->Prepare(d.rule);
  auto [it, inserted] = definitions_.emplace(id, std::move(d));
  return WithSize(it->second);
}

Result<Json> SegmentsImpl::Get(std::string_view id) {
  std::lock_guard<std::mutex> lock(mu_);
  CDP_RETURN_IF_ERROR(Refresh());
  auto it = definitions_.find(std::string(id));
  if (it == definitions_.end()) return Status::NotFound(fmt::format("segment {} does not exist", id));
  return WithSize(it->second);
}

Result<Json> SegmentsImpl::List() {
  std::lock_guard<std::mutex> lock(mu_);
  CDP_RETURN_IF_ERROR(Refresh());
  Json out = Json::Array();
  for (const auto& [id, d] : definitions_) {
    CDP_ASSIGN_OR_RETURN(Json one, WithSize(d));
    out.Push(std::move(one));
  }
  return out;
}

Result<Json> SegmentsImpl::Update(std::string_view id, const Json& definition) {
  std::lock_guard<std::mutex> lock(mu_);
  CDP_RETURN_IF_ERROR(Refresh());
  auto it = definitions_.find(std::string(id));
  if (it == definitions_.end()) return Status::NotFound(fmt::format("segment {} does not exist", id));
  Json stored;
  CDP_ASSIGN_OR_RETURN(SegmentRule rule, ParseDefinition(definition, id, &stored));
  stored.Set("id", std::string(id));
  stored.Set("createdAt", *it->second.stored.Find("createdAt"));
  stored.Set("updatedAt", FormatTimestamp(NowMicros()));
  CDP_RETURN_IF_ERROR(Store(stored));
  it->second = Definition{std::move(stored), std::move(rule), {}};
  it->second.prepared = index_->Prepare(it->second.rule);
  return WithSize(it->second);
}

Status SegmentsImpl::Delete(std::string_view id) {
  std::lock_guard<std::mutex> lock(mu_);
  CDP_RETURN_IF_ERROR(Refresh());
  auto it = definitions_.find(std::string(id));
  if (it == definitions_.end()) return Status::NotFound(fmt::format("segment {} does not exist", id));
  for (const auto& [other, d] : definitions_) {
    const auto& names = d.rule.dependencies().segments;
    if (std::find(names.begin(), names.end(), id) != names.end()) {
      return Status::FailedPrecondition(fmt::format("segment {} names segment {} in its rule", other, id));
    }
  }
  storage::WriteBatch batch(engine_->store());
  batch.Delete(storage::Cf::kMeta, DefinitionKey(id));
  CDP_ASSIGN_OR_RETURN(uint64_t sequence, engine_->store().Write(&batch));
  CDP_RETURN_IF_ERROR(engine_->store().SyncUpTo(sequence));
  definitions_.erase(it);
  return Status::OK();
}

Result<Page> SegmentsImpl::Members(std::string_view id, size_t limit, std::string_view cursor) {
  std::lock_guard<std::mutex> lock(mu_);
  CDP_RETURN_IF_ERROR(Refresh());
  auto it = definitions_.find(std::string(id));
  if (it == definitions_.end()) return Status::NotFound(fmt::format("segment {} does not exist", id));
  if (limit == 0) limit = 50;
  limit = std::min(limit, engine_->options().max_page_size);
  CDP_ASSIGN_OR_RETURN(std::vector<uint32_t> members, MembersNow(it->second));
  size_t start = 0;
  if (!cursor.empty()) {
    auto after = ordinal_of_.find(std::string(cursor));
    if (after == ordinal_of_.end()) return Status::InvalidArgument("unknown cursor", "cursor");
    start = std::upper_bound(members.begin(), members.end(), after->second) - members.begin();
  }
  Page page;
  for (size_t i = start; i < members.size() && page.items.size() < limit; ++i) {
    const std::string& pid = id_of_[members[i]];
    auto doc = engine_->ReadStoredProfile(pid);
    if (doc.status().IsNotFound()) continue;  // erased since the refresh
    CDP_RETURN_IF_ERROR(doc.status());
    page.items.push_back(RenderProfile(*doc, engine_->ReadTraits(pid)));
    if (page.items.size() == limit && i + 1 < members.size()) page.next_cursor = pid;
  }
  return page;
}

Result<int64_t> SegmentsImpl::Size(std::string_view id) {
  std::lock_guard<std::mutex> lock(mu_);
  CDP_RETURN_IF_ERROR(Refresh());
  auto it = definitions_.find(std::string(id));
  if (it == definitions_.end()) return Status::NotFound(fmt::format("segment {} does not exist", id));
  CDP_ASSIGN_OR_RETURN(std::vector<uint32_t> members, MembersNow(it->second));
  return static_cast<int64_t>(members.size());
}

Result<int64_t> SegmentsImpl::Estimate(const Json& rule) {
  std::lock_guard<std::mutex> lock(mu_);
  CDP_RETURN_IF_ERROR(Refresh());
  Json wrapped = Json::Object().Set("name", "estimate").Set("rule", rule);
  Json normalized;
  auto parsed = ParseDefinition(wrapped, "", &normalized);
  if (!parsed.ok()) return parsed.status();
  Definition d{std::move(normalized), std::move(parsed).value(), {}};
  d.prepared = index_->Prepare(d.rule);
  CDP_ASSIGN_OR_RETURN(std::vector<uint32_t> members, MembersNow(d));
  return static_cast<int64_t>(members.size());
}

}  // namespace cdp::internal
