// Copyright 2026 The libcdp Authors.
//
// Identity: the rules (stored in kMeta), explanations and metrics. Resolution and merges are part of the write
// path (engine_impl.cc); the decision itself is identity/resolver.h.

#include <algorithm>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "core/ids.h"
#include "engine/engine_impl.h"
#include "fmt/format.h"
#include "profiles/profile_model.h"
#include "storage/keys.h"

namespace cdp::internal {

namespace {

constexpr char kRulesKey[] = "identity_rules";

std::string IdentityKeyOf(const Identifier& id) { return storage::IdentityKey(id.type, id.value); }

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

Result<Json> IdentityImpl::ApplyRules(const Json& rules) {
  CDP_ASSIGN_OR_RETURN(std::shared_ptr<const IdentityRules> compiled, IdentityRules::FromJson(rules));
  return engine_->ApplyRules(std::move(compiled));
}

Result<Json> EngineImpl::ApplyRules(std::shared_ptr<const IdentityRules> next) {
  constexpr size_t kMaxListed = 1000;
  bool truncated = false;
  auto push = [&](Json* list, Json item) {
    if (list->size() < kMaxListed) {
      list->Push(std::move(item));
    } else {
      truncated = true;
    }
  };
  auto identifier_json = [](std::string_view type, std::string_view value) {
    Json id = Json::Object();
    id.Set("type", type);
    id.Set("value", value);
    return id;
  };
  Json unlinked = Json::Array(), merge_blocked = Json::Array(), new_hubs = Json::Array();
  int64_t scanned = 0, renormalized = 0;
  struct Group {
    Identifier identifier;
    std::vector<std::string> profiles;  // survivor first
  };
  std::vector<Group> merges;
  uint64_t sequence = 0;
  {
    std::lock_guard<std::mutex> lock(write_mu_);
    CDP_RETURN_IF_ERROR(write_error_);
    std::unique_lock<std::shared_mutex> exclusive(commit_mu_);  // no event batch is in flight
    const int old_hub_threshold = rules_->hub_threshold();

    // Every link, re-normalized under the new rules.
    struct Link {
      Identifier old_id, new_id;
      std::string profile;
      int64_t at_us;
    };
    std::vector<Link> kept;
    absl::flat_hash_map<std::string, std::vector<size_t>> holders;  // new identity key -> indexes into kept
    // Per profile: identifiers it loses (old form, with the reason) and identifiers renamed (old -> new form).
    absl::flat_hash_map<std::string, std::vector<IgnoredIdentifier>> lost;
    absl::flat_hash_map<std::string, std::vector<std::pair<Identifier, Identifier>>> renamed;
    storage::WriteBatch batch(*store_);
    auto iter = store_->NewIterator(storage::Cf::kIdentities);
    for (iter->SeekToFirst(); iter->Valid(); iter->Next()) {
      std::string_view key = iter->key();
      if (!key.empty() && key[0] == '\x01') {  // a hub set: thresholds apply by themselves
        const size_t linked = iter->value().size() / 8;
        std::string_view identity = key.substr(1);
        const size_t nul = identity.find('\0');
        if (linked > static_cast<size_t>(next->hub_threshold()) && linked <= static_cast<size_t>(old_hub_threshold)) {
          Json hub = Json::Object();
          hub.Set("identifier", identifier_json(identity.substr(0, nul), identity.substr(nul + 1)));
          hub.Set("distinctHighPriorityValues", static_cast<int64_t>(linked));
          push(&new_hubs, std::move(hub));
        }
        continue;
      }
      ++scanned;
      const size_t nul = key.find('\0');
      Identifier old_id{std::string(key.substr(0, nul)), std::string(key.substr(nul + 1))};
      storage::IdentityLink link = storage::DecodeIdentityLink(iter->value());
      Identifier new_id;
      IgnoredIdentifier why;
      if (!next->Normalize(old_id.type, old_id.value, &new_id, &why)) {
        batch.Delete(storage::Cf::kIdentities, key);
        Json u = Json::Object();
        u.Set("profileId", link.profile_id);
        u.Set("identifier", identifier_json(old_id.type, old_id.value));
        u.Set("reason", why.reason);
        push(&unlinked, std::move(u));
        lost[link.profile_id].push_back({old_id.type, old_id.value, why.reason});
        continue;
      }
      holders[IdentityKeyOf(new_id)].push_back(kept.size());
      kept.push_back({std::move(old_id), std::move(new_id), link.profile_id, link.at_us});
    }
    CDP_RETURN_IF_ERROR(iter->status());

    // Lowered limits: per profile and type, the most recently linked values beyond the limit go.
    absl::flat_hash_map<std::string, std::vector<size_t>> by_profile;
    for (size_t i = 0; i < kept.size(); ++i) by_profile[kept[i].profile].push_back(i);
    std::vector<bool> dropped(kept.size(), false);
    for (auto& [profile, indexes] : by_profile) {
      for (const IdentifierTypeRule& rule : next->types()) {
        std::vector<size_t> of_type;
        for (size_t i : indexes) {
          if (kept[i].new_id.type == rule.type) of_type.push_back(i);
        }
        if (static_cast<int>(of_type.size()) <= rule.limit) continue;
        std::stable_sort(of_type.begin(), of_type.end(),
                         [&](size_t a, size_t b) { return kept[a].at_us < kept[b].at_us; });
        for (size_t k = static_cast<size_t>(rule.limit); k < of_type.size(); ++k) {
          const Link& l = kept[of_type[k]];
          dropped[of_type[k]] = true;
          batch.Delete(storage::Cf::kIdentities, IdentityKeyOf(l.old_id));
          const std::string reason =
              fmt::format("limit: the rules allow {} {} value{}", rule.limit, rule.type, rule.limit == 1 ? "" : "s");
          Json u = Json::Object();
          u.Set("profileId", profile);
          u.Set("identifier", identifier_json(l.old_id.type, l.old_id.value));
          u.Set("reason", reason);
          push(&unlinked, std::move(u));
          lost[profile].push_back({l.old_id.type, l.old_id.value, reason});
        }
      }
    }

    // Values that became one: the holder of the oldest link keeps it; the others merge into it, or, when the merge
    // would break a limit, lose it.
    for (auto& [new_key, indexes] : holders) {
      std::erase_if(indexes, [&](size_t i) { return dropped[i]; });
      if (indexes.empty()) continue;
      std::stable_sort(indexes.begin(), indexes.end(),
                       [&](size_t a, size_t b) { return kept[a].at_us < kept[b].at_us; });
      const Link& first = kept[indexes[0]];
      std::vector<std::string> profiles = {first.profile};
      for (size_t i : indexes) {
        if (std::find(profiles.begin(), profiles.end(), kept[i].profile) == profiles.end()) {
          profiles.push_back(kept[i].profile);
        }
      }
      for (size_t i : indexes) {
        const Link& l = kept[i];
        const bool moved = !(l.old_id == l.new_id);
        if (moved) batch.Delete(storage::Cf::kIdentities, IdentityKeyOf(l.old_id));
        if (l.profile == first.profile) {
          if (moved) {
            batch.Put(storage::Cf::kIdentities, new_key,
                      storage::EncodeIdentityLink(first.profile, "rules: renormalized", l.at_us));
            renamed[l.profile].emplace_back(l.old_id, l.new_id);
            ++renormalized;
          }
        } else if (profiles.size() > 1) {
          // Another holder: it gives the value up here; a merge below brings it back with everything else.
          lost[l.profile].push_back({l.old_id.type, l.old_id.value,
                                     fmt::format("now the same {} as profile {}'s", l.new_id.type, first.profile)});
        }
      }
      if (profiles.size() < 2) continue;
      // Would the merged profile break a limit?
      std::vector<Identifier> all;
      for (const std::string& p : profiles) {
        for (size_t i : by_profile[p]) {
          if (dropped[i]) continue;
          if (std::find(all.begin(), all.end(), kept[i].new_id) == all.end()) all.push_back(kept[i].new_id);
        }
      }
      std::string broken;
      for (const IdentifierTypeRule& rule : next->types()) {
        int n = 0;
        for (const Identifier& id : all) n += id.type == rule.type;
        if (n > rule.limit) broken = fmt::format("limit: {} {} values, the rules allow {}", n, rule.type, rule.limit);
      }
      Json ids = Json::Array();
      for (const std::string& p : profiles) ids.Push(p);
      if (broken.empty()) {
        merges.push_back({first.new_id, std::move(profiles)});
      } else {
        Json entry = Json::Object();
        entry.Set("profileIds", std::move(ids));
        entry.Set("identifier", identifier_json(first.new_id.type, first.new_id.value));
        entry.Set("reason", broken);
        push(&merge_blocked, std::move(entry));
      }
    }

    // The profile documents: externalIds renamed or trimmed, and identityIssues for what was lost.
    absl::flat_hash_set<std::string> touched;
    for (const auto& [p, v] : lost) touched.insert(p);
    for (const auto& [p, v] : renamed) touched.insert(p);
    for (const std::string& profile : touched) {
      auto doc = ReadStoredProfile(profile);
      if (doc.status().IsNotFound()) continue;
      CDP_RETURN_IF_ERROR(doc.status());
      std::vector<Identifier> ids = StoredIdentifiers(*doc);
      std::vector<Identifier> out;
      const auto& gone = lost[profile];
      const auto& names = renamed[profile];
      for (Identifier& id : ids) {
        bool is_lost = false;
        for (const IgnoredIdentifier& g : gone) is_lost = is_lost || (g.type == id.type && g.value == id.value);
        if (is_lost) continue;
        for (const auto& [from, to] : names) {
          if (from == id) id = to;
        }
        if (std::find(out.begin(), out.end(), id) == out.end()) out.push_back(std::move(id));
      }
      doc->Set("externalIds", ExternalIdsOf(out));
      std::vector<const IgnoredIdentifier*> issues;
      for (const IgnoredIdentifier& g : gone) issues.push_back(&g);
      AppendIdentityIssues(&*doc, issues);
      doc->Set("updatedAt", FormatTimestamp(NowMicros()));
      batch.Put(storage::Cf::kProfiles, profile, doc->Dump());
    }
    batch.Put(storage::Cf::kMeta, kRulesKey, next->ToJson().Dump());
    CDP_ASSIGN_OR_RETURN(sequence, store_->Write(&batch));
    rules_ = next;
    identity_cache_.clear();
    hub_cache_.clear();
  }
  CDP_RETURN_IF_ERROR(store_->SyncUpTo(sequence));

  // The merges, each its own write (MergeProfiles checks the profiles and limits again).
  Json merged = Json::Array(), failed = Json::Array();
  for (const Group& g : merges) {
    Result<Json> m = MergeProfiles(g.profiles, fmt::format("identity rules changed: their {} values became one ({})",
                                                           g.identifier.type, g.identifier.value.substr(0, 64)));
    Json entry = m.ok() ? *m : Json::Object();
    entry.Set("identifier", identifier_json(g.identifier.type, g.identifier.value));
    if (m.ok()) {
      push(&merged, std::move(entry));
    } else {
      Json ids = Json::Array();
      for (const std::string& p : g.profiles) ids.Push(p);
      entry.Set("profileIds", std::move(ids));
      entry.Set("error", m.status().ToString());
      push(&failed, std::move(entry));
    }
  }
  Json out = Json::Object();
  out.Set("rules", next->ToJson());
  out.Set("identifiersScanned", scanned);
  out.Set("renormalized", renormalized);
  out.Set("merged", std::move(merged));
  out.Set("mergeBlocked", std::move(merge_blocked));
  out.Set("unlinked", std::move(unlinked));
  out.Set("newHubs", std::move(new_hubs));
  if (failed.size() > 0) out.Set("mergeFailed", std::move(failed));
  out.Set("truncated", truncated);
  return out;
}

Result<Json> IdentityImpl::DryRunRules(const Json& rules) {
  CDP_ASSIGN_OR_RETURN(std::shared_ptr<const IdentityRules> next, IdentityRules::FromJson(rules));
  constexpr size_t kMaxListed = 1000;
  storage::Store& store = engine_->store();
  Json would_merge = Json::Array(), merge_blocked = Json::Array(), would_unlink = Json::Array(),
       new_hubs = Json::Array();
  bool truncated = false;
  auto push = [&](Json* list, Json item) {
    if (list->size() < kMaxListed) {
      list->Push(std::move(item));
    } else {
      truncated = true;
    }
  };
  auto identifier_json = [](std::string_view type, std::string_view value) {
    Json id = Json::Object();
    id.Set("type", type);
    id.Set("value", value);
    return id;
  };
  // Every link, re-normalized under the new rules.
  struct Link {
    std::string type, value, profile;
    int64_t at_us;
  };
  absl::flat_hash_map<std::string, std::vector<std::string>> owners_of;  // new identity key -> owners
  absl::flat_hash_map<std::string, std::vector<Link>> links_of;          // profile -> its surviving links
  int64_t scanned = 0;
  auto iter = store.NewIterator(storage::Cf::kIdentities);
  for (iter->SeekToFirst(); iter->Valid(); iter->Next()) {
    std::string_view key = iter->key();
    if (!key.empty() && key[0] == '\x01') {  // a hub set
      size_t linked = iter->value().size() / 8;
      std::string_view identity = key.substr(1);
      size_t nul = identity.find('\0');
      if (linked > static_cast<size_t>(next->hub_threshold()) &&
          linked <= static_cast<size_t>(engine_->rules()->hub_threshold())) {
        Json hub = Json::Object();
        hub.Set("identifier", identifier_json(identity.substr(0, nul), identity.substr(nul + 1)));
        hub.Set("distinctHighPriorityValues", static_cast<int64_t>(linked));
        push(&new_hubs, std::move(hub));
      }
      continue;
    }
    ++scanned;
    size_t nul = key.find('\0');
    std::string type(key.substr(0, nul)), value(key.substr(nul + 1));
    storage::IdentityLink link = storage::DecodeIdentityLink(iter->value());
    Identifier normalized;
    IgnoredIdentifier why;
    if (!next->Normalize(type, value, &normalized, &why)) {
      Json u = Json::Object();
      u.Set("profileId", link.profile_id);
      u.Set("identifier", identifier_json(type, value));
      u.Set("reason", why.reason);
      push(&would_unlink, std::move(u));
      continue;
    }
    std::vector<std::string>& owners = owners_of[storage::IdentityKey(normalized.type, normalized.value)];
    if (std::find(owners.begin(), owners.end(), link.profile_id) == owners.end()) owners.push_back(link.profile_id);
    links_of[link.profile_id].push_back({normalized.type, normalized.value, link.profile_id, link.at_us});
  }
  CDP_RETURN_IF_ERROR(iter->status());
  // Values that become one: their owners would merge, unless a limit breaks.
  for (const auto& [key, owners] : owners_of) {
    if (owners.size() < 2) continue;
    size_t nul = key.find('\0');
    Json ids = Json::Array();
    for (const std::string& o : owners) ids.Push(o);
    std::vector<Identifier> all;
    for (const std::string& o : owners) {
      for (const Link& l : links_of[o]) {
        Identifier id{l.type, l.value};
        if (std::find(all.begin(), all.end(), id) == all.end()) all.push_back(id);
      }
    }
    std::string broken;
    for (const IdentifierTypeRule& rule : next->types()) {
      int n = 0;
      for (const Identifier& id : all) n += id.type == rule.type;
      if (n > rule.limit) broken = fmt::format("limit: {} {} values, the rules allow {}", n, rule.type, rule.limit);
    }
    Json entry = Json::Object();
    entry.Set("profileIds", std::move(ids));
    entry.Set("identifier", identifier_json(key.substr(0, nul), key.substr(nul + 1)));
    if (broken.empty()) {
      push(&would_merge, std::move(entry));
    } else {
      entry.Set("reason", broken);
      push(&merge_blocked, std::move(entry));
    }
  }
  // Lowered limits: the most recently linked values beyond the limit would be unlinked.
  for (auto& [profile, links] : links_of) {
    for (const IdentifierTypeRule& rule : next->types()) {
      std::vector<const Link*> of_type;
      for (const Link& l : links) {
        if (l.type == rule.type) of_type.push_back(&l);
      }
      if (static_cast<int>(of_type.size()) <= rule.limit) continue;
      std::stable_sort(of_type.begin(), of_type.end(),
                       [](const Link* a, const Link* b) { return a->at_us < b->at_us; });
      for (size_t i = static_cast<size_t>(rule.limit); i < of_type.size(); ++i) {
        Json u = Json::Object();
        u.Set("profileId", profile);
        u.Set("identifier", identifier_json(of_type[i]->type, of_type[i]->value));
        u.Set("reason",
              fmt::format("limit: the rules allow {} {} value{}", rule.limit, rule.type, rule.limit == 1 ? "" : "s"));
        push(&would_unlink, std::move(u));
      }
    }
  }
  Json out = Json::Object();
  out.Set("identifiersScanned", scanned);
  out.Set("wouldMerge", std::move(would_merge));
  out.Set("mergeBlocked", std::move(merge_blocked));
  out.Set("wouldUnlink", std::move(would_unlink));
  out.Set("newHubs", std::move(new_hubs));
  out.Set("truncated", truncated);
  return out;
}

Result<Json> IdentityImpl::Merge(const std::vector<std::string>& profile_ids, std::string_view reason) {
  return engine_->MergeProfiles(profile_ids, reason);
}

Result<Json> IdentityImpl::Unmerge(std::string_view profile_id, std::string_view merge_id) {
  return engine_->Unmerge(profile_id, merge_id);
}

Result<Json> IdentityImpl::Identify(const Json& request) { return engine_->Identify(request); }

Result<Json> IdentityImpl::IdentifyBatch(const std::vector<Json>& requests) { return engine_->IdentifyBatch(requests); }

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
