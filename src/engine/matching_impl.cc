// Copyright 2026 The libcdp Authors.
//
// Fuzzy matching of profiles: the matching configuration (kMeta "matching_config"), FindDuplicates (Fellegi-Sunter
// over live profiles, identity/linkage.h), and the proposals it records (kMerges "x", "y", "z" keys; storage/keys.h).

#include <algorithm>

#include "absl/container/flat_hash_set.h"
#include "core/ids.h"
#include "engine/audited.h"
#include "engine/engine_impl.h"
#include "fmt/format.h"
#include "identity/linkage.h"
#include "identity/rules.h"
#include "profiles/profile_model.h"
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
  "autoMergeAbove": null,
  "onWrite": false
})";
constexpr char kModelKey[] = "matching_model";  // {"linkage", "model", "trainedAt", "candidatePairs"}
constexpr size_t kMaxBlockRead = 1000;          // profiles read per block when matching one profile
constexpr size_t kMatcherStep = 64;             // profiles the thread matches per hold of matching_mu_

struct Matching {
  linkage::LinkageConfig linkage;
  double propose_above = 0.9;
  std::optional<double> auto_merge_above;
  bool on_write = false;

  Json ToJson() const {
    Json out = Json::Object();
    out.Set("linkage", linkage.ToJson());
    out.Set("proposeAbove", propose_above);
    out.Set("autoMergeAbove", auto_merge_above ? Json(*auto_merge_above) : Json());
    out.Set("onWrite", on_write);
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
    } else if (key == "onWrite") {
      if (!value.is_bool()) return Status::InvalidArgument("expected true or false", key);
      m.on_write = value.as_bool();
    } else {
      return Status::InvalidArgument("unknown member (expected linkage, proposeAbove, autoMergeAbove, onWrite)", key);
    }
  }
  if (!has_linkage) return Status::InvalidArgument("a matching configuration needs \"linkage\"", "linkage");
  if (m.auto_merge_above && *m.auto_merge_above < m.propose_above) {
    return Status::InvalidArgument("autoMergeAbove must not be below proposeAbove", "autoMergeAbove");
  }
  return m;
}

Result<Matching> ReadMatchingConfig(storage::Store& store) {
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

// Whether the identity rules let two profiles be one: at most `limit` distinct values of each identifier type (a
// manual merge checks the same). Two holders of different customer ids are two people whatever their names say:
// such a pair is never proposed, nor merged automatically.
bool Mergeable(const IdentityRules& rules, const std::vector<Identifier>& a, const std::vector<Identifier>& b) {
  if (a.empty() || b.empty()) return true;
  for (const IdentifierTypeRule& rule : rules.types()) {
    std::vector<std::string_view> values;
    for (const std::vector<Identifier>* side : {&a, &b}) {
      for (const Identifier& id : *side) {
        if (id.type == rule.type && std::find(values.begin(), values.end(), id.value) == values.end()) {
          values.emplace_back(id.value);
        }
      }
    }
    if (values.size() > static_cast<size_t>(rule.limit)) return false;
  }
  return true;
}

// Why a pair scored as it did: per comparator, its level and weight.
Json ExplainPair(const linkage::LinkageConfig& config, const linkage::Model& model, const int8_t* gammas) {
  Json comparisons = Json::Array();
  for (size_t k = 0; k < config.comparators.size(); ++k) {
    Json c = Json::Object();
    c.Set("comparator", config.comparators[k].name);
    c.Set("level", config.comparators[k].LevelLabel(gammas[k]));
    c.Set("weight", model.LevelWeight(k, gammas[k]));
    comparisons.Push(std::move(c));
  }
  return comparisons;
}

// FNV-1a over the length-prefixed values matching reads: the same in every process.
uint64_t Fingerprint(const std::vector<std::string>& values) {
  uint64_t h = 14695981039346656037ULL;
  auto mix = [&](unsigned char c) {
    h ^= c;
    h *= 1099511628211ULL;
  };
  for (const std::string& v : values) {
    for (int shift = 0; shift < 32; shift += 8) mix(static_cast<unsigned char>(v.size() >> shift));
    for (unsigned char c : v) mix(c);
  }
  return h;
}

// A profile's "c" entry: be64 fingerprint, then per blocking rule u16 length + key (empty: no key).
std::string EncodeBlockEntry(const std::vector<std::string>& keys, uint64_t fingerprint) {
  std::string out;
  storage::AppendBigEndian64(&out, fingerprint);
  for (const std::string& k : keys) {
    out.push_back(static_cast<char>(k.size() & 0xff));
    out.push_back(static_cast<char>(k.size() >> 8));
    out += k;
  }
  return out;
}

bool DecodeBlockEntry(std::string_view in, std::vector<std::string>* keys, uint64_t* fingerprint) {
  if (in.size() < 8) return false;
  *fingerprint = storage::DecodeBigEndian64(in.substr(0, 8));
  in.remove_prefix(8);
  while (!in.empty()) {
    if (in.size() < 2) return false;
    const size_t n = static_cast<unsigned char>(in[0]) | (static_cast<size_t>(static_cast<unsigned char>(in[1])) << 8);
    if (in.size() < 2 + n) return false;
    keys->emplace_back(in.substr(2, n));
    in.remove_prefix(2 + n);
  }
  return true;
}

}  // namespace

struct IdentityImpl::OnWrite {
  Matching matching;
  std::optional<linkage::Linker> linker;
  std::vector<std::string> paths;       // the profile paths the linkage reads
  std::optional<linkage::Model> model;  // trained by FindDuplicates for this linkage; none: index only
  std::string trained_at;
  int64_t candidate_pairs = 0;
};

Result<Json> IdentityImpl::MatchingConfig() {
  CDP_RETURN_IF_ERROR(engine_->RequireDefined());
  CDP_ASSIGN_OR_RETURN(Matching m, ReadMatchingConfig(engine_->store()));
  return m.ToJson();
}

Result<Json> IdentityImpl::SetMatchingConfig(const Json& config) {
  CDP_RETURN_IF_ERROR(engine_->Require("admin"));
  CDP_ASSIGN_OR_RETURN(Matching m, ParseMatching(config));
  CDP_RETURN_IF_ERROR(linkage::Linker::Create(m.linkage).status().WithFieldPrefix("linkage"));
  Json out = m.ToJson();
  std::lock_guard<std::mutex> lock(matching_mu_);
  storage::WriteBatch batch(engine_->store());
  batch.Put(storage::Cf::kMeta, kMatchingKey, out.Dump());
  // Blocking keys and the model belong to one linkage configuration: a new one starts from neither.
  if (on_write_state_ == nullptr || on_write_state_->matching.linkage.ToJson().Dump() != m.linkage.ToJson().Dump()) {
    batch.Delete(storage::Cf::kMeta, kModelKey);
    batch.DeleteRange(storage::Cf::kMerges, storage::kBlockIndexBegin, storage::kBlockIndexEnd);
  }
  CDP_ASSIGN_OR_RETURN(uint64_t sequence, engine_->store().Write(&batch));
  CDP_RETURN_IF_ERROR(engine_->store().SyncUpTo(sequence));
  CDP_RETURN_IF_ERROR(ReloadMatching());
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

Status IdentityImpl::ProposePair(const OnWrite& state, const std::string& a, const std::string& b, double probability,
                                 double weight, const Json& comparisons, const std::string& now, MatchCounts* counts,
                                 std::string* proposal_id) {
  storage::Store& store = engine_->store();
  const Matching& m = state.matching;
  Json proposal;
  std::string existing_id;
  Status found = store.Get(storage::Cf::kMerges, storage::ProposalPairKey(a, b), &existing_id);
  if (found.ok()) {
    CDP_ASSIGN_OR_RETURN(proposal, ReadProposal(existing_id));
    *proposal_id = existing_id;
    if (proposal.Find("status")->as_string() != "pending") return Status::OK();  // decided: never proposed again
    ++counts->updated;
  } else if (found.IsNotFound()) {
    proposal = Json::Object();
    proposal.Set("proposalId", "prp_" + NewId());
    proposal.Set("profileIds", Json::Array().Push(a).Push(b));
    proposal.Set("status", "pending");
    proposal.Set("createdAt", now);
    ++counts->proposed;
  } else {
    return found;
  }
  *proposal_id = proposal.Find("proposalId")->as_string();
  proposal.Set("probability", probability);
  proposal.Set("matchWeight", weight);
  proposal.Set("comparisons", comparisons);
  proposal.Set("updatedAt", now);
  if (m.auto_merge_above && probability >= *m.auto_merge_above) {
    // An entry of its own: the merge is the engine's (a call's or the background matcher's, under the calling
    // thread's principal), and changes both people's data.
    AuditedChange change(engine_->audit_log(), "identity.autoMerge");
    auto merged =
        engine_->MergeProfiles({a, b}, fmt::format("fuzzy match {} (probability {:.4f})", *proposal_id, probability),
                               Json::Object()
                                   .Set("call", "identity.autoMerge")
                                   .Set("proposalId", *proposal_id)
                                   .Set("probability", probability),
                               /*automatic=*/true);
    change.Done(merged.ok() ? std::vector<std::string>{a, b} : std::vector<std::string>{}, merged.status());
    if (merged.ok()) {
      proposal.Set("status", "merged");
      proposal.Set("mergeId", *merged->Find("mergeId"));
      ++counts->auto_merged;
    } else if (!merged.status().IsInvalidArgument() && !merged.status().IsFailedPrecondition()) {
      return merged.status();
    } else {
      proposal.Set("autoMergeError", merged.status().message());  // already one profile, or a limit: review it
    }
  }
  return WriteProposal(proposal);
}

// An audited run (FindDuplicates, MatchPending): an entry with what the answer's `counted` member says (the profiles
// compared or matched); its auto-merges are entries of their own.
Result<Json> IdentityImpl::AuditedRun(std::string_view operation, const char* counted,
                                      Result<Json> (IdentityImpl::*run)()) {
  AuditedChange change(engine_->audit_log(), operation);
  Result<Json> r = (this->*run)();
  const Json* n = r.ok() ? r->Find(counted) : nullptr;
  change.Done({}, r.status(), n != nullptr && n->is_int() ? n->as_int() : 0);
  return r;
}

Result<Json> IdentityImpl::FindDuplicates() {
  return AuditedRun("identity.findDuplicates", "profiles", &IdentityImpl::FindDuplicatesUnaudited);
}

Result<Json> IdentityImpl::FindDuplicatesUnaudited() {
  CDP_RETURN_IF_ERROR(engine_->Require("admin"));
  std::lock_guard<std::mutex> lock(matching_mu_);
  storage::Store& store = engine_->store();
  CDP_RETURN_IF_ERROR(ReloadMatching());
  const std::shared_ptr<const OnWrite> state = on_write_state_;
  const Matching& m = state->matching;
  // Live profiles (merged ones are redirects).
  std::vector<std::string> ids;
  std::vector<Json> docs;
  std::vector<std::vector<Identifier>> held;  // per profile
  auto iter = store.NewIterator(storage::Cf::kProfiles);
  for (iter->SeekToFirst(); iter->Valid(); iter->Next()) {
    auto doc = Json::Parse(iter->value());
    if (!doc.ok()) return Status::DataLoss(fmt::format("stored profile {} is corrupt", iter->key()));
    if (doc->Find("mergedInto") != nullptr) continue;
    ids.emplace_back(iter->key());
    held.push_back(StoredIdentifiers(*doc));
    docs.push_back(std::move(doc).value());
  }
  CDP_RETURN_IF_ERROR(iter->status());
  Json out = Json::Object();
  out.Set("profiles", static_cast<int64_t>(ids.size()));
  MatchCounts counts;
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
  CDP_ASSIGN_OR_RETURN(linkage::LinkResult result, state->linker->Dedupe(records));
  // A model whose "match" class is not one person (EM over pairs that hold no duplicates any more fits some other
  // shared trait) would propose and merge strangers: the last plausible model of this configuration scores instead,
  // and with none, nothing is proposed or merged.
  const std::vector<std::string> rejected = result.model.Implausible();
  std::string scored_with = "estimated";
  if (!rejected.empty()) {
    if (state->model && state->model->Implausible().empty()) {
      CDP_ASSIGN_OR_RETURN(result, state->linker->Dedupe(records, &*state->model));
      scored_with = "saved";
    } else {
      result.pairs.clear();
      scored_with = "none";
    }
  }
  const std::string now = FormatTimestamp(NowMicros());
  const std::shared_ptr<const IdentityRules> rules = engine_->rules();
  absl::flat_hash_set<std::string> touched;  // proposals this run proposed or updated
  for (size_t i = 0; i < result.pairs.size(); ++i) {
    const linkage::ScoredPair& pair = result.pairs[i];
    if (pair.match_probability < m.propose_above) continue;
    if (!Mergeable(*rules, held[pair.left], held[pair.right])) {
      ++counts.not_mergeable;
      continue;
    }
    std::string proposal_id;
    CDP_RETURN_IF_ERROR(ProposePair(*state, ids[pair.left], ids[pair.right], pair.match_probability, pair.match_weight,
                                    ExplainPair(m.linkage, result.model, result.comparisons.row(i)), now, &counts,
                                    &proposal_id));
    touched.insert(proposal_id);
  }
  // Pending proposals naming a profile that was merged or erased since, or whose profiles the rules no longer let
  // be one (an identifier written since), are obsolete.
  int64_t obsolete = 0;
  CDP_ASSIGN_OR_RETURN(Json pending, ProposalsUnaudited("pending"));
  for (Json& proposal : pending.items()) {
    if (touched.contains(proposal.Find("proposalId")->as_string())) continue;
    bool live = true;
    std::vector<std::vector<Identifier>> sides;
    for (const Json& id : proposal.Find("profileIds")->items()) {
      std::string resolved;
      auto doc = engine_->ReadLiveProfile(id.as_string(), &resolved);
      if (doc.status().IsNotFound()) {
        live = false;
      } else if (!doc.ok()) {
        return doc.status();
      } else {
        live = live && resolved == id.as_string();
        sides.push_back(StoredIdentifiers(*doc));
      }
    }
    if (live && sides.size() == 2 && Mergeable(*rules, sides[0], sides[1])) continue;
    proposal.Set("status", "obsolete");
    proposal.Set("updatedAt", now);
    CDP_RETURN_IF_ERROR(WriteProposal(proposal));
    ++obsolete;
  }
  // The model matching on write scores with, for this linkage configuration; and, with onWrite, a fresh blocking
  // index of every live profile (built by the matcher thread, index only: this run has scored them all).
  if (result.model.iterations > 0 && rejected.empty()) {
    Json saved = Json::Object();
    saved.Set("linkage", m.linkage.ToJson());
    saved.Set("model", result.model.ToJson());
    saved.Set("trainedAt", now);
    saved.Set("candidatePairs", result.candidate_pairs);
    storage::WriteBatch batch(store);
    batch.Put(storage::Cf::kMeta, kModelKey, saved.Dump());
    CDP_RETURN_IF_ERROR(store.Write(&batch).status());
    CDP_RETURN_IF_ERROR(ReloadMatching());
  }
  if (m.on_write) {
    storage::WriteBatch batch(store);
    batch.DeleteRange(storage::Cf::kMerges, storage::kBlockIndexBegin, storage::kBlockIndexEnd);
    CDP_RETURN_IF_ERROR(store.Write(&batch).status());
    std::lock_guard<std::mutex> queue_lock(queue_mu_);
    for (std::string& id : ids) {
      if (!queued_.contains(id)) to_index_.insert(std::move(id));
    }
    queue_cv_.notify_one();
  }
  out.Set("obsolete", obsolete);
  out.Set("candidatePairs", result.candidate_pairs);
  out.Set("proposed", counts.proposed);
  out.Set("updated", counts.updated);
  out.Set("autoMerged", counts.auto_merged);
  out.Set("notMergeable", counts.not_mergeable);
  out.Set("model", result.model.ToJson());
  out.Set("scoredWith", scored_with);
  if (!rejected.empty()) {
    Json reasons = Json::Array();
    for (const std::string& r : rejected) reasons.Push(r);
    out.Set("modelRejected", std::move(reasons));
  }
  return out;
}

// ---- Matching on write ----------------------------------------------------------------------------------------------

Status IdentityImpl::LoadMatching() {
  std::lock_guard<std::mutex> lock(matching_mu_);
  return ReloadMatching();
}

Status IdentityImpl::ReloadMatching() {
  storage::Store& store = engine_->store();
  auto state = std::make_shared<OnWrite>();
  CDP_ASSIGN_OR_RETURN(state->matching, ReadMatchingConfig(store));
  CDP_ASSIGN_OR_RETURN(linkage::Linker linker, linkage::Linker::Create(state->matching.linkage));
  state->linker.emplace(std::move(linker));
  state->paths = PathsOf(state->matching.linkage);
  std::string text;
  Status s = store.Get(storage::Cf::kMeta, kModelKey, &text);
  if (s.ok()) {
    auto saved = Json::Parse(text);
    if (!saved.ok() || saved->Find("linkage") == nullptr || saved->Find("model") == nullptr) {
      return Status::DataLoss("the stored matching model is corrupt");
    }
    // A model fits the linkage configuration it was trained with, and only that one.
    if (saved->Find("linkage")->Dump() == state->matching.linkage.ToJson().Dump()) {
      auto model = linkage::Model::FromJson(*saved->Find("model"));
      if (!model.ok()) return Status::DataLoss("the stored matching model is corrupt");
      state->model = std::move(model).value();
      state->trained_at = saved->Find("trainedAt") ? saved->Find("trainedAt")->as_string() : "";
      state->candidate_pairs = saved->Find("candidatePairs") ? saved->Find("candidatePairs")->as_int() : 0;
    }
  } else if (!s.IsNotFound()) {
    return s;
  }
  const bool on = state->matching.on_write;
  on_write_state_ = std::move(state);
  on_write_.store(on);
  if (on && !matcher_.joinable()) matcher_ = std::thread([this] { MatcherLoop(); });
  if (!on) {
    std::lock_guard<std::mutex> queue_lock(queue_mu_);
    to_index_.clear();
    queued_.clear();
  }
  return Status::OK();
}

void IdentityImpl::NotifyWritten(std::vector<std::string> profile_ids) {
  if (!matching_on_write() || profile_ids.empty()) return;
  std::lock_guard<std::mutex> lock(queue_mu_);
  for (std::string& id : profile_ids) {  // a write after a backfill: match it
    to_index_.erase(id);
    queued_.insert(std::move(id));
  }
  queue_cv_.notify_one();
}

void IdentityImpl::StopMatcher() {
  {
    std::lock_guard<std::mutex> lock(queue_mu_);
    stopping_ = true;
  }
  queue_cv_.notify_all();
  if (matcher_.joinable()) matcher_.join();
}

void IdentityImpl::MatcherLoop() {
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(queue_mu_);
      queue_cv_.wait(lock, [&] { return stopping_ || !to_index_.empty() || !queued_.empty(); });
      if (stopping_) return;
    }
    MatchCounts counts;
    Status s;
    {
      std::lock_guard<std::mutex> lock(matching_mu_);
      s = MatchQueued(kMatcherStep, &counts);
    }
    std::lock_guard<std::mutex> lock(queue_mu_);
    if (!s.ok()) {
      ++errors_;
      last_error_ = s.ToString();
    }
  }
}

Status IdentityImpl::MatchQueued(size_t max, MatchCounts* counts) {
  std::vector<std::pair<std::string, bool>> batch;
  {
    std::lock_guard<std::mutex> lock(queue_mu_);
    // Backfilled profiles first: a profile matched before them would miss the candidates not yet in the index.
    while (!to_index_.empty() && batch.size() < max) {
      batch.emplace_back(std::move(to_index_.extract(to_index_.begin()).value()), true);
    }
    while (!queued_.empty() && batch.size() < max) {
      batch.emplace_back(std::move(queued_.extract(queued_.begin()).value()), false);
    }
  }
  const std::shared_ptr<const OnWrite> state = on_write_state_;
  MatchCounts done;
  Status status;
  for (const auto& [id, index_only] : batch) {
    // A profile that cannot be matched (say, a value over the linkage's 1,024 bytes) does not hold up the others;
    // the first error is reported.
    Status s = MatchOne(*state, id, index_only, &done);
    if (status.ok() && !s.ok()) status = s;
  }
  counts->matched += done.matched;
  counts->proposed += done.proposed;
  counts->updated += done.updated;
  counts->auto_merged += done.auto_merged;
  std::lock_guard<std::mutex> lock(queue_mu_);
  totals_.matched += done.matched;
  totals_.proposed += done.proposed;
  totals_.updated += done.updated;
  totals_.auto_merged += done.auto_merged;
  return status;
}

Status IdentityImpl::MatchOne(const OnWrite& state, const std::string& id, bool index_only, MatchCounts* counts) {
  storage::Store& store = engine_->store();
  std::string old;
  Status s = store.Get(storage::Cf::kMerges, storage::ProfileBlocksKey(id), &old);
  if (!s.ok() && !s.IsNotFound()) return s;
  auto doc = engine_->ReadStoredProfile(id);
  if (!doc.ok() && !doc.status().IsNotFound()) return doc.status();
  if (!doc.ok() || doc->Find("mergedInto") != nullptr) {  // erased or merged away: out of the index
    if (old.empty()) return Status::OK();
    storage::WriteBatch batch(store);
    CDP_RETURN_IF_ERROR(EraseBlockEntries(id, &batch));
    return store.Write(&batch).status();
  }
  CDP_ASSIGN_OR_RETURN(linkage::Records record, linkage::RecordsFromJson(std::span<const Json>(&*doc, 1), state.paths));
  CDP_ASSIGN_OR_RETURN(std::vector<std::string> keys, linkage::BlockingKeys(state.matching.linkage, record, 0));
  const std::string entry = EncodeBlockEntry(keys, Fingerprint(record.rows[0]));
  if (entry == old) return Status::OK();  // nothing matching reads has changed
  // Index: the entries of keys that changed, and the profile's record of them, while the profile exists.
  std::vector<std::string> old_keys;
  uint64_t old_fingerprint = 0;
  if (!old.empty() && !DecodeBlockEntry(old, &old_keys, &old_fingerprint)) {
    return Status::DataLoss(fmt::format("the blocking index entry of profile {} is corrupt", id));
  }
  storage::WriteBatch batch(store);
  for (size_t r = 0; r < old_keys.size(); ++r) {
    if (!old_keys[r].empty() && (r >= keys.size() || keys[r] != old_keys[r])) {
      batch.Delete(storage::Cf::kMerges, storage::BlockPrefix(r, old_keys[r]) + id);
    }
  }
  for (size_t r = 0; r < keys.size(); ++r) {
    if (!keys[r].empty()) batch.Put(storage::Cf::kMerges, storage::BlockPrefix(r, keys[r]) + id, {});
  }
  batch.Put(storage::Cf::kMerges, storage::ProfileBlocksKey(id), entry);
  CDP_RETURN_IF_ERROR(engine_->WriteIfProfilesExist({id}, &batch));
  if (index_only || !state.model) return Status::OK();
  ++counts->matched;
  // Candidates: the live profiles sharing a block.
  absl::flat_hash_set<std::string> seen = {id};
  std::vector<std::string> candidates;
  std::vector<Json> docs;
  for (size_t r = 0; r < keys.size(); ++r) {
    if (keys[r].empty()) continue;
    const std::string prefix = storage::BlockPrefix(r, keys[r]);
    auto iter = store.NewIterator(storage::Cf::kMerges, prefix, storage::PrefixSuccessor(prefix));
    size_t read = 0;
    for (iter->Seek(prefix); iter->Valid() && read < kMaxBlockRead; iter->Next(), ++read) {
      std::string other(iter->key().substr(prefix.size()));
      if (!seen.insert(other).second) continue;
      auto other_doc = engine_->ReadStoredProfile(other);
      if (other_doc.status().IsNotFound()) continue;
      CDP_RETURN_IF_ERROR(other_doc.status());
      if (other_doc->Find("mergedInto") != nullptr) continue;
      candidates.push_back(std::move(other));
      docs.push_back(std::move(other_doc).value());
    }
    CDP_RETURN_IF_ERROR(iter->status());
  }
  if (candidates.empty()) return Status::OK();
  CDP_ASSIGN_OR_RETURN(linkage::Records others, linkage::RecordsFromJson(docs, state.paths));
  CDP_ASSIGN_OR_RETURN(linkage::LinkResult result, state.linker->Link(record, others, &*state.model));
  const std::string now = FormatTimestamp(NowMicros());
  const std::shared_ptr<const IdentityRules> rules = engine_->rules();
  const std::vector<Identifier> mine = StoredIdentifiers(*doc);
  for (size_t i = 0; i < result.pairs.size(); ++i) {
    const linkage::ScoredPair& pair = result.pairs[i];
    if (pair.match_probability < state.matching.propose_above) continue;
    if (!Mergeable(*rules, mine, StoredIdentifiers(docs[pair.right]))) {
      ++counts->not_mergeable;
      continue;
    }
    std::string proposal_id;
    CDP_RETURN_IF_ERROR(ProposePair(state, id, candidates[pair.right], pair.match_probability, pair.match_weight,
                                    ExplainPair(state.matching.linkage, *state.model, result.comparisons.row(i)), now,
                                    counts, &proposal_id));
  }
  return Status::OK();
}

Status IdentityImpl::EraseBlockEntries(std::string_view profile_id, storage::WriteBatch* batch) {
  std::string entry;
  Status s = engine_->store().Get(storage::Cf::kMerges, storage::ProfileBlocksKey(profile_id), &entry);
  if (s.IsNotFound()) return Status::OK();
  CDP_RETURN_IF_ERROR(s);
  std::vector<std::string> keys;
  uint64_t fingerprint = 0;
  if (!DecodeBlockEntry(entry, &keys, &fingerprint)) {
    return Status::DataLoss(fmt::format("the blocking index entry of profile {} is corrupt", profile_id));
  }
  for (size_t r = 0; r < keys.size(); ++r) {
    if (!keys[r].empty())
      batch->Delete(storage::Cf::kMerges, storage::BlockPrefix(r, keys[r]) + std::string(profile_id));
  }
  batch->Delete(storage::Cf::kMerges, storage::ProfileBlocksKey(profile_id));
  return Status::OK();
}

Result<Json> IdentityImpl::MatchPending() {
  return AuditedRun("identity.matchPending", "matched", &IdentityImpl::MatchPendingUnaudited);
}

Result<Json> IdentityImpl::MatchPendingUnaudited() {
  CDP_RETURN_IF_ERROR(engine_->Require("admin"));
  std::lock_guard<std::mutex> lock(matching_mu_);
  MatchCounts counts;
  for (;;) {
    {
      std::lock_guard<std::mutex> queue_lock(queue_mu_);
      if (to_index_.empty() && queued_.empty()) break;
    }
    CDP_RETURN_IF_ERROR(MatchQueued(kMatcherStep, &counts));
  }
  Json out = Json::Object();
  out.Set("matched", counts.matched);
  out.Set("proposed", counts.proposed);
  out.Set("updated", counts.updated);
  out.Set("autoMerged", counts.auto_merged);
  return out;
}

Json IdentityImpl::MatchingStats() {
  std::shared_ptr<const OnWrite> state;
  {
    std::lock_guard<std::mutex> lock(matching_mu_);
    state = on_write_state_;
  }
  Json out = Json::Object();
  out.Set("onWrite", matching_on_write());
  Json model;
  if (state && state->model) {
    model = Json::Object();
    model.Set("trainedAt", state->trained_at);
    model.Set("candidatePairs", state->candidate_pairs);
  }
  out.Set("model", std::move(model));
  std::lock_guard<std::mutex> lock(queue_mu_);
  out.Set("queued", static_cast<int64_t>(to_index_.size() + queued_.size()));
  out.Set("matched", totals_.matched);
  out.Set("proposed", totals_.proposed);
  out.Set("updated", totals_.updated);
  out.Set("autoMerged", totals_.auto_merged);
  out.Set("errors", errors_);
  out.Set("lastError", last_error_.empty() ? Json() : Json(last_error_));
  return out;
}

Result<Json> IdentityImpl::Proposals(std::string_view status) {
  Result<Json> r = ProposalsUnaudited(status);
  // A read of personal data (which profiles look alike, and on which fields): each profile named is a target.
  std::vector<std::string> named;
  if (r.ok()) {
    for (const Json& p : r->items()) {
      if (const Json* ids = p.Find("profileIds"); ids != nullptr && ids->is_array()) {
        for (const Json& id : ids->items()) named.push_back(id.as_string());
      }
    }
    std::sort(named.begin(), named.end());
    named.erase(std::unique(named.begin(), named.end()), named.end());
  }
  RecordInParts(engine_->audit_log(), "identity.proposals", named, r.status(),
                r.ok() ? static_cast<int64_t>(r->size()) : 0, /*read=*/true, {});
  return r;
}

Result<Json> IdentityImpl::ProposalsUnaudited(std::string_view status) {
  CDP_RETURN_IF_ERROR(engine_->Require("admin"));
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
  AuditedChange change(engine_->audit_log(), "identity.acceptProposal");
  Result<Json> r = DecideProposal(proposal_id, /*accept=*/true);
  change.Done(ProposalTargets(r), r.status(), 0, proposal_id);
  return r;
}

Result<Json> IdentityImpl::RejectProposal(std::string_view proposal_id) {
  AuditedChange change(engine_->audit_log(), "identity.rejectProposal");
  Result<Json> r = DecideProposal(proposal_id, /*accept=*/false);
  change.Done(ProposalTargets(r), r.status(), 0, proposal_id);
  return r;
}

std::vector<std::string> IdentityImpl::ProposalTargets(const Result<Json>& decided) {
  std::vector<std::string> ids;
  if (!decided.ok()) return ids;
  for (const Json& id : decided->Find("profileIds")->items()) ids.push_back(id.as_string());
  return ids;
}

Result<Json> IdentityImpl::DecideProposal(std::string_view proposal_id, bool accept) {
  CDP_RETURN_IF_ERROR(engine_->Require("admin"));
  std::lock_guard<std::mutex> lock(matching_mu_);
  CDP_ASSIGN_OR_RETURN(Json proposal, ReadProposal(proposal_id));
  if (proposal.Find("status")->as_string() != "pending") {
    return Status::FailedPrecondition(
        fmt::format("proposal {} is {}", proposal_id, proposal.Find("status")->as_string()));
  }
  if (accept) {
    const auto& ids = proposal.Find("profileIds")->items();
    CDP_ASSIGN_OR_RETURN(
        Json merged,
        engine_->MergeProfiles(
            {ids[0].as_string(), ids[1].as_string()}, fmt::format("accepted proposal {}", proposal_id),
            Json::Object().Set("call", "identity.acceptProposal").Set("proposalId", std::string(proposal_id))));
    proposal.Set("mergeId", *merged.Find("mergeId"));
  }
  proposal.Set("status", accept ? "accepted" : "rejected");
  proposal.Set("updatedAt", FormatTimestamp(NowMicros()));
  CDP_RETURN_IF_ERROR(WriteProposal(proposal));
  return proposal;
}

}  // namespace cdp::internal
