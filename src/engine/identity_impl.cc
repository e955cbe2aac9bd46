// Copyright 2026 The libcdp Authors.
//
// Identity: the rules (stored in kMeta), explanations and metrics. Resolution and merges are part of the write
// path (engine_impl.cc); the decision itself is identity/resolver.h.

#include <algorithm>
#include <map>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "core/ids.h"
#include "core/parallel.h"
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
  std::lock_guard<std::mutex> lock(rules_mu_);
  rules_ = std::move(rules).value();
  return Status::OK();
}

std::shared_ptr<const IdentityRules> EngineImpl::rules() const {
  std::lock_guard<std::mutex> lock(rules_mu_);
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
    std::lock_guard<std::mutex> rules_lock(rules_mu_);
    rules_ = std::move(rules);
  }
  return store_->SyncUpTo(sequence);
}

Result<Json> IdentityImpl::Rules() {
  CDP_RETURN_IF_ERROR(engine_->RequireDefined());
  return engine_->rules()->ToJson();
}

Result<Json> IdentityImpl::SetRules(const Json& rules) {
  CDP_RETURN_IF_ERROR(engine_->Require("admin"));
  CDP_ASSIGN_OR_RETURN(std::shared_ptr<const IdentityRules> compiled, IdentityRules::FromJson(rules));
  Json out = compiled->ToJson();
  CDP_RETURN_IF_ERROR(engine_->StoreRules(std::move(compiled)));
  return out;
}

// ---- Rule changes on the existing graph: one plan, shown by DryRunRules and carried out by ApplyRules ----------

namespace {

constexpr size_t kMaxListed = 1000;

Json IdentifierJson(const Identifier& id) {
  Json out = Json::Object();
  out.Set("type", id.type);
  out.Set("value", id.value);
  return out;
}

// Appends to a result list, at most kMaxListed entries; *truncated says when more were left out.
void PushCapped(Json* list, Json item, bool* truncated) {
  if (list->size() < kMaxListed) {
    list->Push(std::move(item));
  } else {
    *truncated = true;
  }
}

// What new rules change on the existing graph.
struct RulesPlan {
  struct Unlink {
    std::string profile;
    Identifier id;  // as stored
    std::string reason;
  };
  struct Rename {
    std::string profile;
    Identifier from, to;
    int64_t at_us;
  };
  struct Group {  // profiles whose values became one; survivor first (the holder of the oldest link)
    Identifier id;
    std::vector<std::string> profiles;
    std::string blocked;  // why they cannot merge (a limit), or empty
  };
  struct Hub {
    Identifier id;
    int64_t linked;
  };
  // A hub set under its new identity key: the union of the sets whose values now normalize to it (a set's entries
  // are hashes of high-priority values as they were normalized then: they cannot be renormalized, so a value
  // renormalized by the change may count twice, which errs towards calling a value a hub).
  struct HubSet {
    std::string key;      // the new identity key
    std::string entries;  // 8-byte hashes, each once
  };
  int64_t scanned = 0;
  std::vector<Unlink> unlinks;   // invalid, blocked, unknown type, beyond a lowered limit
  std::vector<Rename> renames;   // the survivor's links whose normalized form changed
  std::vector<Unlink> given_up;  // other holders of a value that became one: they lose it (a merge brings it back)
  std::vector<Group> groups;
  std::vector<Hub> hubs;               // values that become hubs under the new threshold
  std::vector<std::string> hub_drops;  // hub keys to delete: their value is renamed or no longer an identifier
  std::vector<HubSet> hub_sets;        // hub sets to write under their new keys
};

// Reads every link and decides (changes nothing). `old_hub_threshold`: of the rules in force.
Status PlanRules(const storage::Store& store, const IdentityRules& next, int old_hub_threshold, RulesPlan* plan) {
  struct Link {
    Identifier old_id, new_id;
    std::string profile;
    int64_t at_us;
  };
  std::vector<Link> kept;
  // Hub sets follow their value to its new key; sets whose values became one are united.
  // Only the sets that move are held in memory (renames are few); a set that stays where it is only decides
  // whether its value becomes a hub, unless a moved set lands on it (then it is read again below).
  struct Moved {
    Identifier id;
    std::vector<std::string> sets;  // the sets renamed to this key
    bool was_hub = false;           // one of them was a hub under the rules in force
  };
  std::map<std::string, Moved> moved;               // by new identity key: a plan does not depend on hash order
  std::map<std::string, RulesPlan::Hub> stay_hubs;  // sets staying put that pass the new threshold only
  auto iter = store.NewIterator(storage::Cf::kIdentities);
  for (iter->SeekToFirst(); iter->Valid(); iter->Next()) {
    std::string_view key = iter->key();
    if (!key.empty() && key[0] == '\x01') {  // a hub set
      std::string_view identity = key.substr(1);
      const size_t nul = identity.find('\0');
      const Identifier old_id{std::string(identity.substr(0, nul)),
                              nul == std::string_view::npos ? std::string() : std::string(identity.substr(nul + 1))};
      Identifier new_id;
      IgnoredIdentifier why;
      if (nul == std::string_view::npos || !next.Normalize(old_id.type, old_id.value, &new_id, &why)) {
        continue;  // blocked, invalid or of a removed type now: its set stays, should the value come back
      }
      const std::string new_key = storage::IdentityKey(new_id.type, new_id.value);
      const int64_t linked = static_cast<int64_t>(iter->value().size() / 8);
      if (new_key == identity) {
        if (linked > next.hub_threshold() && linked <= old_hub_threshold) {
          stay_hubs[new_key] = {std::move(new_id), linked};
        }
        continue;
      }
      plan->hub_drops.emplace_back(key);
      Moved& m = moved[new_key];
      m.id = std::move(new_id);
      m.was_hub = m.was_hub || linked > old_hub_threshold;
      m.sets.emplace_back(iter->value());
      continue;
    }
    ++plan->scanned;
    const size_t nul = key.find('\0');
    Identifier old_id{std::string(key.substr(0, nul)), std::string(key.substr(nul + 1))};
    storage::IdentityLink link = storage::DecodeIdentityLink(iter->value());
    Identifier new_id;
    IgnoredIdentifier why;
    if (!next.Normalize(old_id.type, old_id.value, &new_id, &why)) {
      plan->unlinks.push_back({link.profile_id, std::move(old_id), why.reason});
      continue;
    }
    kept.push_back({std::move(old_id), std::move(new_id), link.profile_id, link.at_us});
  }
  CDP_RETURN_IF_ERROR(iter->status());
  // Moved sets, united with the set already under their new key (a value normalized to itself stays there).
  for (auto& [key, m] : moved) {
    std::string own;
    Status read = store.Get(storage::Cf::kIdentities, storage::HubKey(key), &own);
    if (!read.ok() && !read.IsNotFound()) return read;
    if (read.ok()) {
      m.was_hub = m.was_hub || static_cast<int64_t>(own.size() / 8) > old_hub_threshold;
      m.sets.push_back(std::move(own));
      stay_hubs.erase(key);  // decided with the union
    }
    std::string entries;
    absl::flat_hash_set<std::string_view> seen;
    for (const std::string& set : m.sets) {
      for (size_t i = 0; i + 8 <= set.size(); i += 8) {
        if (seen.insert(std::string_view(set).substr(i, 8)).second) entries.append(set, i, 8);
      }
    }
    const int64_t linked = static_cast<int64_t>(entries.size() / 8);
    if (linked > next.hub_threshold() && !m.was_hub) stay_hubs[key] = {m.id, linked};
    plan->hub_sets.push_back({key, std::move(entries)});
  }
  for (auto& [key, hub] : stay_hubs) plan->hubs.push_back(std::move(hub));

  // Lowered limits: per profile and type, the most recently linked values beyond the limit go.
  absl::flat_hash_map<std::string, std::vector<size_t>> by_profile;
  for (size_t i = 0; i < kept.size(); ++i) by_profile[kept[i].profile].push_back(i);
  std::vector<bool> dropped(kept.size(), false);
  auto oldest_first = [&](size_t a, size_t b) { return kept[a].at_us < kept[b].at_us; };
  for (auto& [profile, indexes] : by_profile) {
    for (const IdentifierTypeRule& rule : next.types()) {
      std::vector<size_t> of_type;
      for (size_t i : indexes) {
        if (kept[i].new_id.type == rule.type) of_type.push_back(i);
      }
      if (static_cast<int>(of_type.size()) <= rule.limit) continue;
      std::stable_sort(of_type.begin(), of_type.end(), oldest_first);
      for (size_t k = static_cast<size_t>(rule.limit); k < of_type.size(); ++k) {
        dropped[of_type[k]] = true;
        plan->unlinks.push_back(
            {profile, kept[of_type[k]].old_id,
             fmt::format("limit: the rules allow {} {} value{}", rule.limit, rule.type, rule.limit == 1 ? "" : "s")});
      }
    }
  }

  // Values that became one: the holder of the oldest link keeps it; the others merge into it or, when the merge
  // would break a limit, lose it. Values are taken in a fixed order (oldest first link, then key), so a plan does not
  // depend on hash order.
  absl::flat_hash_map<std::string, std::vector<size_t>> holders;  // new identity key -> links
  for (size_t i = 0; i < kept.size(); ++i) {
    if (!dropped[i]) holders[storage::IdentityKey(kept[i].new_id.type, kept[i].new_id.value)].push_back(i);
  }
  std::vector<std::pair<std::string, std::vector<size_t>>> values(holders.begin(), holders.end());
  for (auto& [key, indexes] : values) std::stable_sort(indexes.begin(), indexes.end(), oldest_first);
  std::sort(values.begin(), values.end(), [&](const auto& a, const auto& b) {
    const int64_t ta = kept[a.second[0]].at_us, tb = kept[b.second[0]].at_us;
    return ta != tb ? ta < tb : a.first < b.first;
  });
  // Merges are transitive: values whose holders overlap make one group (profile -> its group, groups joined).
  std::vector<RulesPlan::Group> groups;
  absl::flat_hash_map<std::string, size_t> group_of;
  for (const auto& [new_key, indexes] : values) {
    const Link& first = kept[indexes[0]];
    std::vector<std::string> profiles = {first.profile};
    for (size_t i : indexes) {
      const Link& l = kept[i];
      if (l.profile == first.profile) {
        if (!(l.old_id == l.new_id)) plan->renames.push_back({l.profile, l.old_id, l.new_id, l.at_us});
        continue;
      }
      plan->given_up.push_back(
          {l.profile, l.old_id, fmt::format("now the same {} as profile {}'s", l.new_id.type, first.profile)});
      if (std::find(profiles.begin(), profiles.end(), l.profile) == profiles.end()) profiles.push_back(l.profile);
    }
    if (profiles.size() < 2) continue;
    size_t into = groups.size();
    for (const std::string& p : profiles) {
      if (auto it = group_of.find(p); it != group_of.end()) into = std::min(into, it->second);
    }
    if (into == groups.size()) groups.push_back({first.new_id, {}, {}});
    RulesPlan::Group& group = groups[into];
    auto add = [&](const std::string& p) {
      if (std::find(group.profiles.begin(), group.profiles.end(), p) == group.profiles.end()) {
        group.profiles.push_back(p);
      }
      group_of[p] = into;
    };
    for (const std::string& p : profiles) {
      auto it = group_of.find(p);
      if (it != group_of.end() && it->second != into) {  // another group joins this one
        const size_t other = it->second;
        std::vector<std::string> moved = std::move(groups[other].profiles);
        groups[other].profiles.clear();
        for (const std::string& q : moved) add(q);
      }
      add(p);
    }
  }
  for (RulesPlan::Group& group : groups) {
    if (group.profiles.size() < 2) continue;  // joined into another
    std::vector<Identifier> all;
    for (const std::string& p : group.profiles) {
      for (size_t i : by_profile[p]) {
        if (!dropped[i] && std::find(all.begin(), all.end(), kept[i].new_id) == all.end()) {
          all.push_back(kept[i].new_id);
        }
      }
    }
    for (const IdentifierTypeRule& rule : next.types()) {
      int n = 0;
      for (const Identifier& id : all) n += id.type == rule.type;
      if (n > rule.limit) {
        group.blocked = fmt::format("limit: {} {} values, the rules allow {}", n, rule.type, rule.limit);
      }
    }
    plan->groups.push_back(std::move(group));
  }
  return Status::OK();
}

// The plan's unlinks and new hubs, as the results list them.
void ListUnlinksAndHubs(const RulesPlan& plan, Json* unlinks, Json* hubs, bool* truncated) {
  for (const RulesPlan::Unlink& u : plan.unlinks) {
    Json entry = Json::Object();
    entry.Set("profileId", u.profile);
    entry.Set("identifier", IdentifierJson(u.id));
    entry.Set("reason", u.reason);
    PushCapped(unlinks, std::move(entry), truncated);
  }
  for (const RulesPlan::Hub& h : plan.hubs) {
    Json hub = Json::Object();
    hub.Set("identifier", IdentifierJson(h.id));
    hub.Set("distinctHighPriorityValues", h.linked);
    PushCapped(hubs, std::move(hub), truncated);
  }
}

}  // namespace

Result<Json> IdentityImpl::DryRunRules(const Json& rules) {
  Result<Json> r = DryRunRulesUnaudited(rules);
  // A read of personal data (identifier values, and which profiles hold them): each profile named is a target.
  std::vector<std::string> named;
  if (r.ok()) {
    for (const char* list : {"wouldMerge", "mergeBlocked", "wouldUnlink"}) {
      for (const Json& item : r->Find(list)->items()) {
        if (const Json* ids = item.Find("profileIds"); ids != nullptr && ids->is_array()) {
          for (const Json& id : ids->items()) named.push_back(id.as_string());
        }
        if (const Json* id = item.Find("profileId"); id != nullptr && id->is_string()) named.push_back(id->as_string());
      }
    }
    std::sort(named.begin(), named.end());
    named.erase(std::unique(named.begin(), named.end()), named.end());
  }
  RecordInParts(engine_->audit_log(), "identity.dryRunRules", named, r.status(), 0, /*read=*/true, {});
  return r;
}

Result<Json> IdentityImpl::DryRunRulesUnaudited(const Json& rules) {
  CDP_RETURN_IF_ERROR(engine_->Require("admin"));
  CDP_ASSIGN_OR_RETURN(std::shared_ptr<const IdentityRules> next, IdentityRules::FromJson(rules));
  RulesPlan plan;
  CDP_RETURN_IF_ERROR(PlanRules(engine_->store(), *next, engine_->rules()->hub_threshold(), &plan));
  bool truncated = false;
  Json would_merge = Json::Array(), merge_blocked = Json::Array(), would_unlink = Json::Array(),
       new_hubs = Json::Array();
  for (const RulesPlan::Group& g : plan.groups) {
    Json entry = Json::Object();
    Json ids = Json::Array();
    for (const std::string& p : g.profiles) ids.Push(p);
    entry.Set("profileIds", std::move(ids));
    entry.Set("identifier", IdentifierJson(g.id));
    if (!g.blocked.empty()) entry.Set("reason", g.blocked);
    PushCapped(g.blocked.empty() ? &would_merge : &merge_blocked, std::move(entry), &truncated);
  }
  ListUnlinksAndHubs(plan, &would_unlink, &new_hubs, &truncated);
  Json out = Json::Object();
  out.Set("identifiersScanned", plan.scanned);
  out.Set("wouldMerge", std::move(would_merge));
  out.Set("mergeBlocked", std::move(merge_blocked));
  out.Set("wouldUnlink", std::move(would_unlink));
  out.Set("newHubs", std::move(new_hubs));
  out.Set("truncated", truncated);
  return out;
}

Result<Json> IdentityImpl::ApplyRules(const Json& rules) {
  AuditedChange change(engine_->audit_log(), "identity.applyRules");  // it unlinks identifiers and merges
  std::vector<std::string> changed;
  Result<Json> r = [&]() -> Result<Json> {
    CDP_RETURN_IF_ERROR(engine_->Require("admin"));
    CDP_ASSIGN_OR_RETURN(std::shared_ptr<const IdentityRules> compiled, IdentityRules::FromJson(rules));
    return engine_->ApplyRules(std::move(compiled), &changed);
  }();
  std::sort(changed.begin(), changed.end());
  changed.erase(std::unique(changed.begin(), changed.end()), changed.end());
  // A change of every email's normalization names every profile: entries of at most kMaxTargets each (one journal
  // line, one index key per target), all under the same operation, the first one the call's own.
  constexpr size_t kMaxTargets = kMaxAuditTargets;
  const size_t first = std::min(changed.size(), kMaxTargets);
  for (size_t i = first; i < changed.size(); i += kMaxTargets) {
    Record(engine_->audit_log(), "identity.applyRules",
           std::vector<std::string>(changed.begin() + i, changed.begin() + std::min(changed.size(), i + kMaxTargets)),
           r.status());
  }
  changed.resize(first);
  change.Done(changed, r.status(), 0);
  return r;
}

Result<Json> EngineImpl::ApplyRules(std::shared_ptr<const IdentityRules> next, std::vector<std::string>* changed) {
  RulesPlan plan;
  uint64_t sequence = 0;
  {
    std::lock_guard<std::mutex> lock(write_mu_);
    CDP_RETURN_IF_ERROR(write_error_);
    std::unique_lock<std::shared_mutex> exclusive;  // no batch is in flight
    CDP_RETURN_IF_ERROR(SettleInFlight(&exclusive));
    CDP_RETURN_IF_ERROR(PlanRules(*store_, *next, rules_->hub_threshold(), &plan));
    storage::WriteBatch batch(*store_);
    // Per profile: the identifiers it loses (as stored, with the reason) and those renamed.
    absl::flat_hash_map<std::string, std::vector<IgnoredIdentifier>> lost;
    absl::flat_hash_map<std::string, std::vector<std::pair<Identifier, Identifier>>> renamed;
    // A value given up by a profile that merges into its holder is not lost to the person: it leaves the
    // profile's externalIds (its holder has it) without an identity issue.
    absl::flat_hash_set<std::string> merging;
    for (const RulesPlan::Group& g : plan.groups) {
      if (g.blocked.empty()) merging.insert(g.profiles.begin(), g.profiles.end());
    }
    absl::flat_hash_set<std::string> no_issue;  // profile \n type \n value (none holds a control character)
    for (const auto* list : {&plan.unlinks, &plan.given_up}) {
      for (const RulesPlan::Unlink& u : *list) {
        batch.Delete(storage::Cf::kIdentities, IdentityKeyOf(u.id));
        lost[u.profile].push_back({u.id.type, u.id.value, u.reason});
        if (list == &plan.given_up && merging.contains(u.profile)) {
          no_issue.insert(fmt::format("{}\n{}\n{}", u.profile, u.id.type, u.id.value));
        }
      }
    }
    // After the deletes: a renamed value's new key may be the key another holder just gave up.
    for (const RulesPlan::Rename& r : plan.renames) {
      batch.Delete(storage::Cf::kIdentities, IdentityKeyOf(r.from));
      batch.Put(storage::Cf::kIdentities, IdentityKeyOf(r.to),
                storage::EncodeIdentityLink(r.profile, "rules: renormalized", r.at_us));
      renamed[r.profile].emplace_back(r.from, r.to);
    }
    // The profile documents: externalIds renamed or trimmed, and identityIssues for what was lost.
    absl::flat_hash_set<std::string> touched;
    for (const auto& [p, v] : lost) touched.insert(p);
    for (const auto& [p, v] : renamed) touched.insert(p);
    changed->assign(touched.begin(), touched.end());
    const std::string now = FormatTimestamp(NowMicros());
    for (const std::string& profile : touched) {
      auto doc = ReadStoredProfile(profile);
      if (doc.status().IsNotFound()) continue;
      CDP_RETURN_IF_ERROR(doc.status());
      const auto& gone = lost[profile];
      const auto& names = renamed[profile];
      std::vector<Identifier> ids;
      for (Identifier id : StoredIdentifiers(*doc)) {
        bool is_lost = false;
        for (const IgnoredIdentifier& g : gone) is_lost = is_lost || (g.type == id.type && g.value == id.value);
        if (is_lost) continue;
        for (const auto& [from, to] : names) {
          if (from == id) id = to;
        }
        if (std::find(ids.begin(), ids.end(), id) == ids.end()) ids.push_back(std::move(id));
      }
      doc->Set("externalIds", ExternalIdsOf(ids));
      std::vector<const IgnoredIdentifier*> issues;
      for (const IgnoredIdentifier& g : gone) {
        if (!no_issue.contains(fmt::format("{}\n{}\n{}", profile, g.type, g.value))) {
          issues.push_back(&g);
        }
      }
      AppendIdentityIssues(&*doc, issues);
      doc->Set("updatedAt", now);
      batch.Put(storage::Cf::kProfiles, profile, doc->Dump());
    }
    // Hub sets follow their values: dropped or moved first, then written under their new keys.
    for (const std::string& key : plan.hub_drops) batch.Delete(storage::Cf::kIdentities, key);
    for (const RulesPlan::HubSet& hub : plan.hub_sets) {
      batch.Put(storage::Cf::kIdentities, storage::HubKey(hub.key), hub.entries);
    }
    batch.Put(storage::Cf::kMeta, kRulesKey, next->ToJson().Dump());
    CDP_ASSIGN_OR_RETURN(sequence, store_->Write(&batch));
    segments_.NotifyDocument(std::vector<std::string>(touched.begin(), touched.end()), "identityRules");
    {
      std::lock_guard<std::mutex> rules_lock(rules_mu_);
      rules_ = next;
    }
    identity_cache_.Clear();
  }
  CDP_RETURN_IF_ERROR(store_->SyncUpTo(sequence));
  (void)segments_.AfterWrite();

  // The merges, each its own write (MergeProfiles checks the profiles and the limits again).
  bool truncated = false;
  Json merged = Json::Array(), blocked = Json::Array(), failed = Json::Array(), unlinked = Json::Array(),
       new_hubs = Json::Array();
  for (const RulesPlan::Group& g : plan.groups) {
    Json ids = Json::Array();
    for (const std::string& p : g.profiles) ids.Push(p);
    if (!g.blocked.empty()) {
      Json entry = Json::Object();
      entry.Set("profileIds", std::move(ids));
      entry.Set("identifier", IdentifierJson(g.id));
      entry.Set("reason", g.blocked);
      PushCapped(&blocked, std::move(entry), &truncated);
      continue;
    }
    Result<Json> m = MergeProfiles(
        g.profiles,
        fmt::format("identity rules changed: their {} values became one ({})", g.id.type, g.id.value.substr(0, 64)),
        Json::Object().Set("call", "identity.applyRules").Set("identifier", IdentifierJson(g.id)), /*automatic=*/true);
    if (m.ok()) changed->insert(changed->end(), g.profiles.begin(), g.profiles.end());
    Json entry = m.ok() ? *m : Json::Object();
    entry.Set("identifier", IdentifierJson(g.id));
    if (!m.ok()) {
      entry.Set("profileIds", std::move(ids));
      entry.Set("error", m.status().ToString());
    }
    PushCapped(m.ok() ? &merged : &failed, std::move(entry), &truncated);
  }
  ListUnlinksAndHubs(plan, &unlinked, &new_hubs, &truncated);
  Json out = Json::Object();
  out.Set("rules", next->ToJson());
  out.Set("identifiersScanned", plan.scanned);
  out.Set("renormalized", static_cast<int64_t>(plan.renames.size()));
  out.Set("merged", std::move(merged));
  out.Set("mergeBlocked", std::move(blocked));
  out.Set("unlinked", std::move(unlinked));
  out.Set("newHubs", std::move(new_hubs));
  if (failed.size() > 0) out.Set("mergeFailed", std::move(failed));
  out.Set("truncated", truncated);
  return out;
}

// Calls on personal data are audited (engine/audited.h).
Result<Json> IdentityImpl::Merge(const std::vector<std::string>& profile_ids, std::string_view reason) {
  AuditedChange change(engine_->audit_log(), "identity.merge");
  Status allowed = engine_->access()->RequireWrite("externalIds");
  Result<Json> r = allowed.ok() ? engine_->MergeProfiles(profile_ids, reason) : Result<Json>(allowed);
  change.Done(r.ok() ? profile_ids : std::vector<std::string>{}, r.status());
  return r;
}

Result<Json> IdentityImpl::Unmerge(std::string_view profile_id, std::string_view merge_id) {
  AuditedChange change(engine_->audit_log(), "identity.unmerge");
  Status allowed = engine_->access()->RequireWrite("externalIds");
  Result<Json> r = allowed.ok() ? engine_->Unmerge(profile_id, merge_id) : Result<Json>(allowed);
  std::vector<std::string> ids;
  if (r.ok()) {
    ids.push_back(r->Find("profileId")->as_string());
    for (const Json& m : r->Find("restored")->items()) ids.push_back(m.as_string());
  }
  change.Done(ids, r.status());
  return r;
}

namespace {
std::vector<std::string> IdentifyTargets(const Result<Json>& r) {
  const Json* id = r.ok() ? r->Find("profileId") : nullptr;
  return {id != nullptr && id->is_string() ? id->as_string() : std::string()};
}
}  // namespace

// PermissionDenied naming the first field an identify would write that this thread's principal may not.
static Status CheckIdentifyWrite(const Access& access, const Json& request) {
  if (access.admin() || !request.is_object()) return Status::OK();
  if (!access.defined()) return access.Require("write");
  if (const Json* ids = request.Find("identifiers"); ids != nullptr && ids->is_object()) {
    for (const auto& [type, value] : ids->members()) {
      std::string path = "externalIds." + (type == "userId"     ? std::string("customerId")
                                           : type == "deviceId" ? std::string("deviceIds")
                                                                : type);
      CDP_RETURN_IF_ERROR(access.RequireWrite(path));
    }
  }
  Json patch = Json::Object();
  for (const char* member : {"attributes", "consent", "computed"}) {
    if (const Json* v = request.Find(member); v != nullptr) patch.Set(member, *v);
  }
  return access.CheckProfileWrite(patch);
}

// An identify's answer without what says which profile holds identifiers the principal may not read (see
// TrackResult::HideLinks).
static void HideIdentifyLinks(Json* answer) {
  for (const char* member : {"profileId", "profileCreated", "mergedProfiles", "mergeId"}) answer->Erase(member);
  answer->Set("linksHidden", true);
}

Result<Json> IdentityImpl::Identify(const Json& request) {
  BatchCall call;
  AuditedChange change(engine_->audit_log(), "identity.identify");
  auto access = engine_->access();
  Status allowed = CheckIdentifyWrite(*access, request);
  Result<Json> r = allowed.ok() ? engine_->Identify(request) : Result<Json>(allowed);
  change.Done(IdentifyTargets(r), r.status());
  if (r.ok() && !access->CanReadLinks(request)) HideIdentifyLinks(&*r);
  if (!r.ok()) {
    Status s = r.status();
    HideRefusal(*access, request, &s);
    return s;
  }
  return r;
}

Result<Json> IdentityImpl::Identify(const Json& request, const IdempotencyKey& key) {
  BatchCall call;
  AuditedChange change(engine_->audit_log(), "identity.identify");
  auto access = engine_->access();
  Status allowed = CheckIdentifyWrite(*access, request);
  Result<Json> r = allowed.ok() ? engine_->Identify(request, &key) : Result<Json>(allowed);
  change.Done(IdentifyTargets(r), r.status());
  if (r.ok() && !access->CanReadLinks(request)) HideIdentifyLinks(&*r);
  if (!r.ok()) {
    Status s = r.status();
    HideRefusal(*access, request, &s);
    return s;
  }
  return r;
}

Result<Json> IdentityImpl::IdentifyBatch(const std::vector<Json>& requests) {
  BatchCall call;
  AuditedChange change(engine_->audit_log(), "identity.identifyBatch");
  Status allowed;
  auto access = engine_->access();
  for (size_t i = 0; i < requests.size() && allowed.ok(); ++i) {
    allowed = CheckIdentifyWrite(*access, requests[i]);
    if (!allowed.ok()) allowed = allowed.WithFieldPrefix("[" + std::to_string(i) + "]");
  }
  Result<Json> r = allowed.ok() ? engine_->IdentifyBatch(requests) : Result<Json>(allowed);
  std::vector<std::string> ids;
  if (r.ok()) {
    absl::flat_hash_set<std::string> seen;
    for (const Json& item : r->Find("results")->items()) {
      const Json* id = item.Find("profileId");
      if (id != nullptr && id->is_string() && seen.insert(id->as_string()).second) ids.push_back(id->as_string());
    }
  }
  change.Done(ids, r.status(), static_cast<int64_t>(requests.size()));
  if (r.ok() && !access->admin()) {
    std::vector<Json>& results = r->Find("results")->items();
    for (size_t i = 0; i < results.size() && i < requests.size(); ++i) {
      Json& item = results[i];
      const Json* status = item.Find("status");
      if (status != nullptr && status->is_string() && status->as_string() == "ok" &&
          !access->CanReadLinks(requests[i])) {
        HideIdentifyLinks(&item);
      }
      const Json* error = item.Find("error");
      const Json* field = error != nullptr ? error->Find("field") : nullptr;
      const Json* code = error != nullptr ? error->Find("code") : nullptr;
      if (field != nullptr && field->is_string() && code != nullptr &&
          *code == Json(std::string(StatusCodeName(StatusCode::kFailedPrecondition)))) {
        Status refused(StatusCode::kFailedPrecondition, error->Find("message")->as_string(), field->as_string());
        HideRefusal(*access, requests[i], &refused);
        if (refused.field().empty()) item.Set("error", ErrorJson(refused));
      }
    }
  }
  return r;
}

Result<Json> IdentityImpl::Explain(std::string_view profile_id) {
  auto access = engine_->access();
  Status allowed = access->RequireRead("externalIds");
  Result<Json> r = allowed.ok() ? ExplainUnaudited(profile_id) : Result<Json>(allowed);
  if (r.ok()) FilterIdentity(*access, &*r);
  Record(engine_->audit_log(), "identity.explain", IdentifyTargets(r), r.status(), 0, /*read=*/true);
  return r;
}

Result<Json> IdentityImpl::ExplainUnaudited(std::string_view profile_id) {
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
  CDP_RETURN_IF_ERROR(engine_->RequireDefined());
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
  out.Set("matching", MatchingStats());
  return out;
}

}  // namespace cdp::internal
