// Copyright 2026 The libcdp Authors.
//
// Identity: the rules (stored in kMeta), explanations and metrics. Resolution and merges are part of the write
// path (engine_impl.cc); the decision itself is identity/resolver.h.

#include "engine/engine_impl.h"
#include "fmt/format.h"
#include "profiles/profile_model.h"
#include "storage/keys.h"

namespace cdp::internal {

namespace {

constexpr char kRulesKey[] = "identity_rules";

}  // namespace

Status EngineImpl::LoadRules() {
  std::string text;
  Status s = store_->Get(storage::Cf::kMeta, kRulesKey, &text);
  if (s.IsNotFound()) return Status::OK();  // the defaults
  CDP_RETURN_IF_ERROR(s);
  auto json = Json::Parse(text);
  if (!json.ok()) return Status::DataLoss("the stored identity rules are corrupt");
  auto rules = IdentityRules::FromJson(*json);
  if (!rules.ok()) return Status::DataLoss("the stored identity rules are invalid: " + rules.status().ToString());
  rules_ = std::move(rules).value();
  return Status::OK();
}

std::shared_ptr<const IdentityRules> EngineImpl::rules() {
  std::lock_guard<std::mutex> lock(write_mu_);
  return rules_;
}

Status EngineImpl::StoreRules(std::shared_ptr<const IdentityRules> rules) {
  uint64_t sequence = 0;
  {
    std::lock_guard<std::mutex> lock(write_mu_);
    CDP_RETURN_IF_ERROR(write_error_);
    storage::WriteBatch batch(*store_);
    batch.Put(storage::Cf::kMeta, kRulesKey, rules->ToJson().Dump());
    CDP_ASSIGN_OR_RETURN(sequence, store_->Write(&batch));
    rules_ = std::move(rules);
  }
  return store_->SyncUpTo(sequence);
}

Result<Json> IdentityImpl::Rules() { return engine_->rules()->ToJson(); }

Result<Json> IdentityImpl::SetRules(const Json& rules) {
  CDP_ASSIGN_OR_RETURN(std::shared_ptr<const IdentityRules> compiled, IdentityRules::FromJson(rules));
  Json out = compiled->ToJson();
  CDP_RETURN_IF_ERROR(engine_->StoreRules(std::move(compiled)));
  return out;
}

Result<Json> IdentityImpl::Merge(const std::vector<std::string>& profile_ids, std::string_view reason) {
  return engine_->MergeProfiles(profile_ids, reason);
}

Result<Json> IdentityImpl::Unmerge(std::string_view profile_id, std::string_view merge_id) {
  return engine_->Unmerge(profile_id, merge_id);
}

Result<Json> IdentityImpl::Identify(const Json& request) { return engine_->Identify(request); }

Result<Json> IdentityImpl::Explain(std::string_view profile_id) {
  storage::Store& store = engine_->store();
  std::string id;
  CDP_ASSIGN_OR_RETURN(Json doc, engine_->ReadLiveProfile(profile_id, &id));
  auto rules = engine_->rules();
  Json identifiers = Json::Array();
  for (const Identifier& ident : StoredIdentifiers(doc)) {
    std::string key = storage::IdentityKey(ident.type, ident.value);
    Json entry = Json::Object();
    entry.Set("type", ident.type);
    entry.Set("value", ident.value);
    std::string value;
    if (store.Get(storage::Cf::kIdentities, key, &value).ok()) {
      storage::IdentityLink link = storage::DecodeIdentityLink(value);
      entry.Set("evidence", link.evidence);
      entry.Set("linkedAt", link.at_us > 0 ? Json(FormatTimestamp(link.at_us)) : Json());
    }
    std::string hub;
    size_t linked = store.Get(storage::Cf::kIdentities, storage::HubKey(key), &hub).ok() ? hub.size() / 8 : 0;
    entry.Set("distinctHighPriorityValues", static_cast<int64_t>(linked));
    entry.Set("hub", linked > static_cast<size_t>(rules->hub_threshold()));
    identifiers.Push(std::move(entry));
  }
  Json merges = Json::Array();
  std::string prefix = storage::ProfileMergesPrefix(id);
  auto iter = store.NewIterator(storage::Cf::kMerges, prefix, storage::PrefixSuccessor(prefix));
  std::string record;
  for (iter->Seek(prefix); iter->Valid(); iter->Next()) {
    std::string merge_id(iter->key().substr(prefix.size()));
    if (!store.Get(storage::Cf::kMerges, storage::MergeRecordKey(merge_id), &record).ok()) continue;
    auto parsed = Json::Parse(record);
    if (!parsed.ok()) return Status::DataLoss(fmt::format("merge record {} is corrupt", merge_id));
    parsed->Erase("snapshots");  // the documents as they were: for unmerge, not for display
    merges.Push(std::move(parsed).value());
  }
  CDP_RETURN_IF_ERROR(iter->status());
  Json out = Json::Object();
  out.Set("profileId", id);
  out.Set("identifiers", std::move(identifiers));
  for (const char* key : {"identityIssues", "mergedIds"}) {
    const Json* v = doc.Find(key);
    out.Set(key, v != nullptr ? *v : Json::Array());
  }
  out.Set("merges", std::move(merges));
  return out;
}

Result<Json> IdentityImpl::Stats() {
  storage::Store& store = engine_->store();
  int64_t profiles = store.ReadCounter("profiles");
  int64_t merged = store.ReadCounter("merged_profiles");
  Json out = Json::Object();
  out.Set("profiles", profiles);
  out.Set("merges", store.ReadCounter("merges"));
  out.Set("mergedProfiles", merged);
  out.Set("unmerges", store.ReadCounter("unmerges"));
  out.Set("unificationRate",
          profiles + merged > 0 ? static_cast<double>(merged) / static_cast<double>(profiles + merged) : 0.0);
  return out;
}

}  // namespace cdp::internal
