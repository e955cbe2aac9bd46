// Copyright 2026 The libcdp Authors.
//
// Fuzzy matching of profiles: the matching configuration (kMeta "matching_config"), FindDuplicates (Fellegi-Sunter
// over live profiles, identity/linkage.h), and the proposals it records (kMerges "x", "y", "z" keys; storage/keys.h).

#include <algorithm>

#include "absl/container/flat_hash_set.h"
#include "core/ids.h"
#include "engine/engine_impl.h"
#include "fmt/format.h"
#include "identity/linkage.h"
#include "storage/keys.h"

namespace cdp::internal {

namespace {

constexpr char kMatchingKey[] = "matching_config";
constexpr std::string_view kStatuses[] = {"pending", "accepted", "rejected", "merged", "obsolete"};

// Names, address and birth date; blocking on surname + first-name sound, postal code + surname sound, birth date.
constexpr char kDefaultMatching[] = R"({
  "linkage": {
    "comparators": [
      {"name": "firstName", "field": "attributes.firstName", "kind": "jaro_winkler", "thresholds": [0.92, 0.8]},
      {"name": "lastName", "field": "attributes.lastName", "kind": "jaro_winkler", "thresholds": [0.92, 0.8]},
      {"name": "birthDate", "field": "attributes.customFields.birthDate", "kind": "date", "thresholds": [31, 366]},
      {"name": "postalCode", "field": "attributes.postalCode", "kind": "exact"},
      {"name": "city", "field": "attributes.city", "kind": "jaro_winkler", "thresholds": [0.9]}
    ],
    "blocking": [
      [{"field": "attributes.lastName", "transform": "prefix", "length": 3},
       {"field": "attributes.firstName", "transform": "soundex"}],
      ["attributes.postalCode", {"field": "attributes.lastName", "transform": "soundex"}],
      ["attributes.customFields.birthDate"]
    ],
    "threshold": 0.5
  },
  "proposeAbove": 0.9,
  "autoMergeAbove": null
})";

struct Matching {
  linkage::LinkageConfig linkage;
  double propose_above = 0.9;
  std::optional<double> auto_merge_above;

  Json ToJson() const {
    Json out = Json::Object();
    out.Set("linkage", linkage.ToJson());
    out.Set("proposeAbove", propose_above);
    out.Set("autoMergeAbove", auto_merge_above ? Json(*auto_merge_above) : Json());
    return out;
  }
};

Result<double> Probability(const Json& v, const std::string& field) {
  if (!v.is_number() || v.as_number() < 0 || v.as_number() > 1) {
    return Status::InvalidArgument("expected a probability from 0 to 1", field);
  }
  return v.as_number();
}

Result<Matching> ParseMatching(const Json& json) {
  if (!json.is_object()) return Status::InvalidArgument("the matching configuration must be a JSON object");
  Matching m;
  bool has_linkage = false;
  for (const auto& [key, value] : json.members()) {
    if (key == "linkage") {
      auto config = linkage::LinkageConfig::FromJson(value);
      if (!config.ok()) return config.status().WithFieldPrefix("linkage");
      m.linkage = std::move(config).value();
      CDP_RETURN_IF_ERROR(m.linkage.Validate().WithFieldPrefix("linkage"));
      has_linkage = true;
    } else if (key == "proposeAbove") {
      CDP_ASSIGN_OR_RETURN(m.propose_above, Probability(value, key));
    } else if (key == "autoMergeAbove") {
      if (!value.is_null()) {
        CDP_ASSIGN_OR_RETURN(double p, Probability(value, key));
        m.auto_merge_above = p;
      }
    } else {
      return Status::InvalidArgument("unknown member (expected linkage, proposeAbove, autoMergeAbove)", key);
    }
  }
  if (!has_linkage) return Status::InvalidArgument("a matching configuration needs \"linkage\"", "linkage");
  if (m.auto_merge_above && *m.auto_merge_above < m.propose_above) {
    return Status::InvalidArgument("autoMergeAbove must not be below proposeAbove", "autoMergeAbove");
  }
  return m;
}

Result<Matching> LoadMatching(storage::Store& store) {
  std::string text;
  Status s = store.Get(storage::Cf::kMeta, kMatchingKey, &text);
  if (s.IsNotFound())
    text = kDefaultMatching;
  else
    CDP_RETURN_IF_ERROR(s);
  auto json = Json::Parse(text);
  if (!json.ok()) return Status::DataLoss("the stored matching configuration is corrupt");
  return ParseMatching(*json);
}

// The profile paths a linkage configuration reads.
std::vector<std::string> PathsOf(const linkage::LinkageConfig& config) {
  std::vector<std::string> paths;
  auto add = [&](const std::string& p) {
    if (std::find(paths.begin(), paths.end(), p) == paths.end()) paths.push_back(p);
  };
  for (const auto& c : config.comparators) add(c.field);
  for (const auto& rule : config.blocking) {
    for (const auto& key : rule.keys) add(key.field);
  }
  return paths;
}

}  // namespace

Result<Json> IdentityImpl::MatchingConfig() {
  CDP_ASSIGN_OR_RETURN(Matching m, LoadMatching(engine_->store()));
  return m.ToJson();
}

Result<Json> IdentityImpl::SetMatchingConfig(const Json& config) {
  CDP_ASSIGN_OR_RETURN(Matching m, ParseMatching(config));
  CDP_RETURN_IF_ERROR(linkage::Linker::Create(m.linkage).status().WithFieldPrefix("linkage"));
  Json out = m.ToJson();
  storage::WriteBatch batch(engine_->store());
  batch.Put(storage::Cf::kMeta, kMatchingKey, out.Dump());
  CDP_ASSIGN_OR_RETURN(uint64_t sequence, engine_->store().Write(&batch));
  CDP_RETURN_IF_ERROR(engine_->store().SyncUpTo(sequence));
  return out;
}

Result<Json> IdentityImpl::ReadProposal(std::string_view proposal_id) {
  std::string text;
  Status s = engine_->store().Get(storage::Cf::kMerges, storage::ProposalKey(proposal_id), &text);
  if (s.IsNotFound()) return Status::NotFound(fmt::format("proposal {} does not exist", proposal_id));
  CDP_RETURN_IF_ERROR(s);
  auto json = Json::Parse(text);
  if (!json.ok()) return Status::DataLoss(fmt::format("proposal {} is corrupt", proposal_id));
  return json;
}

Status IdentityImpl::WriteProposal(const Json& proposal) {
  const std::string id = proposal.Find("proposalId")->as_string();
  const auto& ids = proposal.Find("profileIds")->items();
  storage::WriteBatch batch(engine_->store());
  batch.Put(storage::Cf::kMerges, storage::ProposalKey(id), proposal.Dump());
  batch.Put(storage::Cf::kMerges, storage::ProposalPairKey(ids[0].as_string(), ids[1].as_string()), id);
  for (const Json& p : ids) batch.Put(storage::Cf::kMerges, storage::ProfileProposalsPrefix(p.as_string()) + id, {});
  // Under the write lock, and only while both profiles exist: an erasure that ran since the profiles were read
  // must not get a proposal naming the person written back.
  return engine_->WriteIfProfilesExist({ids[0].as_string(), ids[1].as_string()}, &batch);
}

Result<Json> IdentityImpl::FindDuplicates() {
  std::lock_guard<std::mutex> lock(matching_mu_);
  storage::Store& store = engine_->store();
  CDP_ASSIGN_OR_RETURN(Matching m, LoadMatching(store));
  CDP_ASSIGN_OR_RETURN(linkage::Linker linker, linkage::Linker::Create(m.linkage));
  // Live profiles (merged ones are redirects).
  std::vector<std::string> ids;
  std::vector<Json> docs;
  auto iter = store.NewIterator(storage::Cf::kProfiles);
  for (iter->SeekToFirst(); iter->Valid(); iter->Next()) {
    auto doc = Json::Parse(iter->value());
    if (!doc.ok()) return Status::DataLoss(fmt::format("stored profile {} is corrupt", iter->key()));
    if (doc->Find("mergedInto") != nullptr) continue;
    ids.emplace_back(iter->key());
    docs.push_back(std::move(doc).value());
  }
  CDP_RETURN_IF_ERROR(iter->status());
  Json out = Json::Object();
  out.Set("profiles", static_cast<int64_t>(ids.size()));
  int64_t proposed = 0, updated = 0, auto_merged = 0;
  if (ids.size() < 2) {
    out.Set("candidatePairs", 0);
    out.Set("proposed", 0);
    out.Set("updated", 0);
    out.Set("autoMerged", 0);
    out.Set("model", Json());
    return out;
  }
  CDP_ASSIGN_OR_RETURN(linkage::Records records, linkage::RecordsFromJson(docs, PathsOf(m.linkage)));
  docs.clear();
  CDP_ASSIGN_OR_RETURN(linkage::LinkResult result, linker.Dedupe(records));
  const std::string now = FormatTimestamp(NowMicros());
  absl::flat_hash_set<std::string> touched;  // proposals this run proposed or updated
  for (size_t i = 0; i < result.pairs.size(); ++i) {
    const linkage::ScoredPair& pair = result.pairs[i];
    if (pair.match_probability < m.propose_above) continue;
    const std::string& a = ids[pair.left];
    const std::string& b = ids[pair.right];
    Json comparisons = Json::Array();
    const int8_t* gammas = result.comparisons.row(i);
    for (size_t k = 0; k < m.linkage.comparators.size(); ++k) {
      Json c = Json::Object();
      c.Set("comparator", m.linkage.comparators[k].name);
      c.Set("level", m.linkage.comparators[k].LevelLabel(gammas[k]));
      c.Set("weight", result.model.LevelWeight(k, gammas[k]));
      comparisons.Push(std::move(c));
    }
    Json proposal;
    std::string existing_id;
    Status found = store.Get(storage::Cf::kMerges, storage::ProposalPairKey(a, b), &existing_id);
    if (found.ok()) {
      CDP_ASSIGN_OR_RETURN(proposal, ReadProposal(existing_id));
      if (proposal.Find("status")->as_string() != "pending") continue;  // decided: never proposed again
      ++updated;
    } else if (found.IsNotFound()) {
      proposal = Json::Object();
      proposal.Set("proposalId", "prp_" + NewId());
      proposal.Set("profileIds", Json::Array().Push(a).Push(b));
      proposal.Set("status", "pending");
      proposal.Set("createdAt", now);
      ++proposed;
    } else {
      return found;
    }
    proposal.Set("probability", pair.match_probability);
    proposal.Set("matchWeight", pair.match_weight);
    proposal.Set("comparisons", std::move(comparisons));
    proposal.Set("updatedAt", now);
    if (m.auto_merge_above && pair.match_probability >= *m.auto_merge_above) {
      auto merged =
          engine_->MergeProfiles({a, b}, fmt::format("fuzzy match {} (probability {:.4f})",
                                                     proposal.Find("proposalId")->as_string(), pair.match_probability));
      if (merged.ok()) {
        proposal.Set("status", "merged");
        proposal.Set("mergeId", *merged->Find("mergeId"));
        ++auto_merged;
      } else if (!merged.status().IsInvalidArgument() && !merged.status().IsFailedPrecondition()) {
        return merged.status();
      } else {
        proposal.Set("autoMergeError", merged.status().message());  // already one profile, or a limit: review it
      }
    }
    touched.insert(proposal.Find("proposalId")->as_string());
    CDP_RETURN_IF_ERROR(WriteProposal(proposal));
  }
  // Pending proposals naming a profile that was merged or erased since are obsolete.
  int64_t obsolete = 0;
  CDP_ASSIGN_OR_RETURN(Json pending, Proposals("pending"));
  for (Json& proposal : pending.items()) {
    if (touched.contains(proposal.Find("proposalId")->as_string())) continue;
    bool live = true;
    for (const Json& id : proposal.Find("profileIds")->items()) {
      std::string resolved;
      auto doc = engine_->ReadLiveProfile(id.as_string(), &resolved);
      if (doc.status().IsNotFound()) {
        live = false;
      } else if (!doc.ok()) {
        return doc.status();
      } else {
        live = live && resolved == id.as_string();
      }
    }
    if (live) continue;
    proposal.Set("status", "obsolete");
    proposal.Set("updatedAt", now);
    CDP_RETURN_IF_ERROR(WriteProposal(proposal));
    ++obsolete;
  }
  out.Set("obsolete", obsolete);
  out.Set("candidatePairs", result.candidate_pairs);
  out.Set("proposed", proposed);
  out.Set("updated", updated);
  out.Set("autoMerged", auto_merged);
  out.Set("model", result.model.ToJson());
  return out;
}

Result<Json> IdentityImpl::Proposals(std::string_view status) {
  if (!status.empty() && std::find(std::begin(kStatuses), std::end(kStatuses), status) == std::end(kStatuses)) {
    return Status::InvalidArgument("unknown status (expected pending, accepted, rejected, merged, obsolete)", "status");
  }
  std::vector<Json> found;
  auto iter = engine_->store().NewIterator(storage::Cf::kMerges, "x", "y");
  for (iter->SeekToFirst(); iter->Valid(); iter->Next()) {
    auto p = Json::Parse(iter->value());
    if (!p.ok()) return Status::DataLoss(fmt::format("proposal {} is corrupt", iter->key().substr(1)));
    if (!status.empty() && p->Find("status")->as_string() != status) continue;
    found.push_back(std::move(p).value());
  }
  CDP_RETURN_IF_ERROR(iter->status());
  std::stable_sort(found.begin(), found.end(), [](const Json& x, const Json& y) {
    return x.Find("probability")->as_number() > y.Find("probability")->as_number();
  });
  Json out = Json::Array();
  for (Json& p : found) out.Push(std::move(p));
  return out;
}

Result<Json> IdentityImpl::AcceptProposal(std::string_view proposal_id) {
  std::lock_guard<std::mutex> lock(matching_mu_);
  CDP_ASSIGN_OR_RETURN(Json proposal, ReadProposal(proposal_id));
  if (proposal.Find("status")->as_string() != "pending") {
    return Status::FailedPrecondition(
        fmt::format("proposal {} is {}", proposal_id, proposal.Find("status")->as_string()));
  }
  const auto& ids = proposal.Find("profileIds")->items();
  CDP_ASSIGN_OR_RETURN(Json merged, engine_->MergeProfiles({ids[0].as_string(), ids[1].as_string()},
                                                           fmt::format("accepted proposal {}", proposal_id)));
  proposal.Set("status", "accepted");
  proposal.Set("mergeId", *merged.Find("mergeId"));
  proposal.Set("updatedAt", FormatTimestamp(NowMicros()));
  CDP_RETURN_IF_ERROR(WriteProposal(proposal));
  return proposal;
}

Result<Json> IdentityImpl::RejectProposal(std::string_view proposal_id) {
  std::lock_guard<std::mutex> lock(matching_mu_);
  CDP_ASSIGN_OR_RETURN(Json proposal, ReadProposal(proposal_id));
  if (proposal.Find("status")->as_string() != "pending") {
    return Status::FailedPrecondition(
        fmt::format("proposal {} is {}", proposal_id, proposal.Find("status")->as_string()));
  }
  proposal.Set("status", "rejected");
  proposal.Set("updatedAt", FormatTimestamp(NowMicros()));
  CDP_RETURN_IF_ERROR(WriteProposal(proposal));
  return proposal;
}

}  // namespace cdp::internal
