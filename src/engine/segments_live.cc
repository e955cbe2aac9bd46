// Copyright 2026 The libcdp Authors.
//
// Real-time membership (segments_impl.h, steps 1-3): the index's build and upkeep, re-evaluation, timers, the
// change feed and its subscribers.

#include <algorithm>
#include <chrono>

#include "core/ids.h"
#include "engine/audited.h"
#include "engine/engine_impl.h"
#include "engine/event_tail.h"
#include "engine/segments_impl.h"
#include "fmt/format.h"
#include "profiles/profile_model.h"
#include "segments/rfm.h"
#include "storage/keys.h"

namespace cdp::internal {

namespace {

constexpr char kDefinitionPrefix[] = "seg/";
constexpr char kFeedPrefix[] = "segfeed/";

// Adds an event document to the index under `ordinal`; `type` and `name` receive its type and custom name.
Status AddStoredEvent(segments::SegmentIndex* index, uint32_t ordinal, int64_t time_us, std::string_view text,
                      std::string* type_out = nullptr, std::string* name_out = nullptr) {
  auto doc = Json::Parse(text);
  if (!doc.ok()) return Status::DataLoss("a stored event is corrupt");
  const Json* type = doc->Find("type");
  const Json* name = doc->Find("name");
  std::string t = type != nullptr && type->is_string() ? type->as_string() : "";
  std::string n = name != nullptr && name->is_string() && t == "custom" ? name->as_string() : "";
  CDP_RETURN_IF_ERROR(index->AddEvent(ordinal, t, n, time_us, *doc));
  if (type_out != nullptr) *type_out = std::move(t);
  if (name_out != nullptr) *name_out = std::move(n);
  return Status::OK();
}

std::string HexCursor(std::string_view suffix) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : suffix) {
    out.push_back(kDigits[c >> 4]);
    out.push_back(kDigits[c & 15]);
  }
  return out;
}

// A scan of a whole column family that reopens its iterator every 100 ms: an open iterator keeps the table files it
// started on, and an erasure's purge waits until the files it replaced are deleted (Store::Purge), so a build of
// tens of seconds would hold it up. What a reopened iterator sees that the first would not was written after the
// build started noting writes: those profiles are reloaded whole.
class RefreshingScan {
 public:
  RefreshingScan(const storage::Store& store, storage::Cf cf) : store_(store), cf_(cf) { Open({}); }
  bool Valid() const { return iter_->Valid(); }
  std::string_view key() const { return iter_->key(); }
  std::string_view value() const { return iter_->value(); }
  Status status() const { return iter_->status(); }
  void Next() {
    iter_->Next();
    if (++since_check_ < 256) return;
    since_check_ = 0;
    if (std::chrono::steady_clock::now() - opened_ < std::chrono::milliseconds(100)) return;
    if (iter_->Valid() && iter_->status().ok()) Open(std::string(iter_->key()));
  }

 private:
  void Open(const std::string& from) {
    iter_.reset();  // first: its files may go before the new one opens
    iter_ = store_.NewIterator(cf_);
    if (from.empty()) {
      iter_->SeekToFirst();
    } else {
      iter_->Seek(from);
    }
    opened_ = std::chrono::steady_clock::now();
  }

  const storage::Store& store_;
  const storage::Cf cf_;
  std::unique_ptr<storage::Iterator> iter_;
  std::chrono::steady_clock::time_point opened_;
  int since_check_ = 0;
};

}  // namespace

std::atomic<int> g_hold_segment_build_for_testing{0};

// ---- Notes from writers ---------------------------------------------------------------------------------------------

void SegmentsImpl::NotifyChanged(std::vector<std::string> profile_ids, std::string_view cause) {
  if (!tracking() || profile_ids.empty()) return;
  std::lock_guard<std::mutex> lock(pending_mu_);
  for (std::string& id : profile_ids) {
    Pending& p = pending_[std::move(id)];
    p.kind = Pending::kReload;
    for (auto& [time, document] : p.events) {
      if (p.labelled.size() < Pending::kMaxLabelled) p.labelled.push_back(std::move(document));
    }
    p.events.clear();
    if (p.cause.empty() || cause != "profile") p.cause = std::string(cause);
  }
}

void SegmentsImpl::NotifyDocument(std::vector<std::string> profile_ids, std::string_view cause) {
  if (!tracking() || profile_ids.empty()) return;
  std::lock_guard<std::mutex> lock(pending_mu_);
  for (std::string& id : profile_ids) {
    Pending& p = pending_[std::move(id)];
    p.kind = std::max(p.kind, Pending::kDocument);
    if (p.cause.empty() || cause != "profile") p.cause = std::string(cause);
  }
}

void SegmentsImpl::NotifyEvents(std::vector<NewEvent> events) {
  if (!tracking() || events.empty()) return;
  std::lock_guard<std::mutex> lock(pending_mu_);
  for (NewEvent& e : events) {
    Pending& p = pending_[e.profile_id];
    if (p.cause.empty()) p.cause = "event";
    if (p.kind != Pending::kReload) {
      p.events.emplace_back(e.time_us, std::move(e.document));
      p.delta.AddEvent(e.time_us, e.purchase, e.purchase_micros);
    } else if (p.labelled.size() < Pending::kMaxLabelled) {
      p.labelled.push_back(std::move(e.document));
    }
  }
}

void SegmentsImpl::WriteFailed() {
  std::lock_guard<std::mutex> lock(pending_mu_);
  for (auto& [id, p] : pending_) {
    p.kind = Pending::kReload;
    p.events.clear();
    p.labelled.clear();
  }
}

std::string SegmentsImpl::last_error() const {
  std::lock_guard<std::mutex> lock(pending_mu_);
  return last_error_;
}

Status SegmentsImpl::AfterWrite() {
  // A build applies every note made before its EndBuild; one made after sees building_ false (pending_mu_).
  if (!tracking() || building_.load(std::memory_order_acquire)) return Status::OK();
  std::lock_guard<std::mutex> lock(mu_);
  return Noted(Refresh());
}

Status SegmentsImpl::Noted(Status s) {
  std::lock_guard<std::mutex> lock(pending_mu_);
  last_error_ = s.ok() ? "" : s.ToString();
  return s;
}

// ---- Start, build, refresh ------------------------------------------------------------------------------------------

Status SegmentsImpl::Start() {
  std::lock_guard<std::mutex> lock(mu_);
  CDP_RETURN_IF_ERROR(LoadDefinitions());
  worker_ = std::thread([this] { WorkerLoop(); });
  return Status::OK();
}

void SegmentsImpl::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
    (void)WriteFeed();  // should it fail, the next open reconciles
  }
  cv_.notify_all();
  if (worker_.joinable()) worker_.join();
}

Status SegmentsImpl::LoadDefinitions() {
  if (loaded_) return Status::OK();
  auto iter =
      engine_->store().NewIterator(storage::Cf::kMeta, kDefinitionPrefix, storage::PrefixSuccessor(kDefinitionPrefix));
  for (iter->Seek(kDefinitionPrefix); iter->Valid(); iter->Next()) {
    auto stored = Json::Parse(iter->value());
    if (!stored.ok()) return Status::DataLoss(fmt::format("segment {} is corrupt", iter->key()));
    const Json* rule_json = stored->Find("rule");
    const Json* type = stored->Find("type");
    const bool manual = type != nullptr && *type == Json("manual");
    auto rule = manual                 ? Result<SegmentRule>(SegmentRule())
                : rule_json != nullptr ? SegmentRule::FromJson(*rule_json)
                                       : Result<SegmentRule>(Status::DataLoss(""));
    if (!rule.ok()) return Status::DataLoss(fmt::format("segment {} has a corrupt rule", iter->key()));
    const Json* id = stored->Find("id");
    if (id == nullptr || !id->is_string()) return Status::DataLoss(fmt::format("segment {} is corrupt", iter->key()));
    std::string key = id->as_string();
    Definition& d = definitions_[key];
    d.manual = manual;
    d.stored = std::move(stored).value();
    d.rule = std::move(rule).value();
    d.slot = static_cast<uint32_t>(slots_.size());
    slots_.push_back(&d);
  }
  CDP_RETURN_IF_ERROR(iter->status());
  Reorder();
  std::string rfm;
  Status s = engine_->store().Get(storage::Cf::kMeta, kRfmConfigKey, &rfm);
  if (!s.IsNotFound()) {
    CDP_RETURN_IF_ERROR(s);
    auto config = Json::Parse(rfm);
    if (!config.ok() || !ParseRfmConfig(*config, &rfm_options_).ok()) {
      return Status::DataLoss("the stored RFM configuration is corrupt");
    }
  }
  loaded_ = true;
  return Status::OK();
}

uint32_t SegmentsImpl::OrdinalOf(const std::string& profile_id) {
  if (auto it = ordinal_of_.find(profile_id); it != ordinal_of_.end()) return it->second;
  std::unique_lock<std::shared_mutex> lock(members_mu_);
  auto [it, inserted] = ordinal_of_.try_emplace(profile_id, static_cast<uint32_t>(id_of_.size()));
  if (inserted) id_of_.push_back(profile_id);
  return it->second;
}

Status SegmentsImpl::Build() {
  storage::Store& store = engine_->store();
  {
    std::lock_guard<std::mutex> lock(pending_mu_);
    building_.store(true, std::memory_order_release);
  }
  feed_held_ = true;
  index_ = std::make_unique<segments::SegmentIndex>();
  traits_.clear();
  {
    // A retry after a failed build starts from nothing too.
    std::unique_lock<std::shared_mutex> lock(members_mu_);
    ordinal_of_.clear();
    id_of_.clear();
    rfm_.clear();
    for (auto& [id, d] : definitions_) {
      d.members = segments::Bitmap();
      d.manual_members = segments::Bitmap();
    }
  }
  timers_ = {};
  scheduled_.clear();
  {
    std::lock_guard<std::mutex> lock(pending_mu_);
    pending_.clear();
  }
  // From here on writers note what they change; the pause makes sure no batch published before is still in
  // flight, so the scan below sees it.
  tracking_.store(true, std::memory_order_release);
  CDP_RETURN_IF_ERROR(engine_->WithWritesPaused([] { return Status::OK(); }));
  auto profiles = std::make_unique<RefreshingScan>(store, storage::Cf::kProfiles);
  for (; profiles->Valid(); profiles->Next()) {
    auto doc = Json::Parse(profiles->value());
    if (!doc.ok()) return Status::DataLoss(fmt::format("stored profile {} is corrupt", profiles->key()));
    if (doc->Find("mergedInto") != nullptr) continue;
    const std::string id(profiles->key());
    CDP_RETURN_IF_ERROR(UpsertDocument(OrdinalOf(id), *doc, engine_->ReadTraits(id)));
  }
  CDP_RETURN_IF_ERROR(profiles->status());
  profiles.reset();
  auto events = std::make_unique<RefreshingScan>(store, storage::Cf::kEventsByTime);
  const std::shared_ptr<const RetentionHorizons> retired = engine_->retention_horizons();
  for (; events->Valid(); events->Next()) {
    auto it = ordinal_of_.find(std::string(storage::TimeIndexProfile(events->key())));
    if (it == ordinal_of_.end()) continue;  // a profile created after the scan above: noted, reloaded
    if (retired->RetiredStored(events->key(), events->value())) continue;  // retention took it
    const int64_t t = storage::TimeKeyTime(storage::TimeIndexTimeKey(events->key()));
    CDP_RETURN_IF_ERROR(AddStoredEvent(index_.get(), it->second, t, events->value()));
  }
  CDP_RETURN_IF_ERROR(events->status());
  events.reset();
  // A note made during the scans may describe an event the scans saw: reload those profiles whole. With writes
  // paused, so that no batch the scans saw notes its events after this.
  CDP_RETURN_IF_ERROR(engine_->WithWritesPaused([this] {
    WriteFailed();  // every pending note becomes a reload
    return Status::OK();
  }));
  CDP_RETURN_IF_ERROR(LoadManualMembers());
  const int64_t now = NowMicros();
  (void)ScoreRfmNow(now, nullptr);  // computed.rfm in the columns before any segment is evaluated
  next_rfm_ = std::chrono::steady_clock::now() + std::chrono::seconds(engine_->options().rfm_refresh_seconds);
  // Membership: the feed's record of it, then the difference to now.
  std::vector<Change> changes;
  for (Definition* d : order_) {
    Bind(d);
    segments::Bitmap before;
    CDP_RETURN_IF_ERROR(FoldFeed(d->stored.Find("id")->as_string(), INT64_MAX, &before, nullptr, &d->last_cursor));
    Establish(d, before, "reconcile", now, &changes);
  }
  int expected = 1;
  if (g_hold_segment_build_for_testing.compare_exchange_strong(expected, 2)) {
    while (g_hold_segment_build_for_testing.load() == 2) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return Record(&changes, now);
}

bool SegmentsImpl::EndBuild(absl::flat_hash_set<std::string>* erased) {
  std::lock_guard<std::mutex> lock(pending_mu_);
  building_.store(false, std::memory_order_release);
  erased->swap(erased_while_building_);
  return !pending_.empty();
}

void SegmentsImpl::DropFromFeed(const absl::flat_hash_set<std::string>& erased) {
  feed_held_ = false;
  if (erased.empty()) return;
  // EraseFeedEntries deleted what was stored (nothing is written from the build's start until now: Record holds it
  // back); what the build recorded about these profiles never reaches storage.
  std::vector<std::pair<std::string, std::string>> kept;
  kept.reserve(unwritten_.size());
  absl::flat_hash_set<std::string> dropped;  // feed keys
  const std::string_view tag = storage::kSegmentFeedByProfileTag;
  for (auto& entry : unwritten_) {
    const std::string& key = entry.first;
    if (key.starts_with(tag)) {
      const size_t slash = key.find('/', tag.size());
      if (slash != std::string::npos && erased.contains(key.substr(tag.size(), slash - tag.size()))) {
        dropped.insert(key.substr(slash + 1));
        continue;
      }
    } else if (dropped.contains(key)) {
      continue;  // its by-profile entry comes first (Record)
    }
    kept.push_back(std::move(entry));
  }
  unwritten_.swap(kept);
  // Subscribers still hear that these people left (the build may have recorded that as a reconcile), but not
  // that they entered, and each exit is the erasure's (Deliver names no erased person in its audit entry).
  std::deque<Json> deliveries;
  for (Json& change : deliveries_) {
    if (erased.contains(change.Find("profileId")->as_string())) {
      if (change.Find("change")->as_string() == "entered") continue;
      change.Set("cause", Json::Object().Set("kind", "erasure"));
    }
    deliveries.push_back(std::move(change));
  }
  deliveries_.swap(deliveries);
  for (auto& [id, d] : definitions_) {
    auto cursor = LatestCursor(id);
    if (cursor.ok()) d.last_cursor = std::move(cursor).value();  // else the stored cursor may be one ahead
  }
}

Result<std::string> SegmentsImpl::LatestCursor(const std::string& id) {
  const std::string prefix = storage::SegmentFeedPrefix(id);
  for (auto it = unwritten_.rbegin(); it != unwritten_.rend(); ++it) {
    if (it->first.starts_with(prefix)) return HexCursor(std::string_view(it->first).substr(prefix.size()));
  }
  auto last = engine_->store().NewIterator(storage::Cf::kMeta, prefix, storage::PrefixSuccessor(prefix));
  last->SeekToLast();
  CDP_RETURN_IF_ERROR(last->status());
  return last->Valid() ? HexCursor(last->key().substr(prefix.size())) : std::string();
}

void SegmentsImpl::Establish(Definition* d, const segments::Bitmap& before, std::string_view cause, int64_t now,
                             std::vector<Change>* changes) {
  segments::Bitmap after =
      d->manual ? d->manual_members & index_->universe() : index_->Evaluate(*d->prepared, now, Lookup());
  const Json why = Json::Object().Set("kind", std::string(cause));
  for (uint32_t ordinal : after - before) changes->push_back({d, ordinal, true, why});
  for (uint32_t ordinal : before - after) changes->push_back({d, ordinal, false, why});
  {
    std::unique_lock<std::shared_mutex> lock(members_mu_);
    d->members = std::move(after);
  }
  if (d->rule.dependencies().time_dependent) {
    for (uint32_t ordinal : index_->universe()) Schedule(d, ordinal, now);
  }
}

Status SegmentsImpl::LoadManualMembers() {
  for (auto& [id, d] : definitions_) {
    if (!d.manual) continue;
    d.manual_members = segments::Bitmap();
    const std::string prefix = storage::ManualMemberPrefix(id);
    auto iter = engine_->store().NewIterator(storage::Cf::kMeta, prefix, storage::PrefixSuccessor(prefix));
    for (iter->Seek(prefix); iter->Valid(); iter->Next()) {
      d.manual_members.add(OrdinalOf(std::string(iter->key().substr(prefix.size()))));
    }
    CDP_RETURN_IF_ERROR(iter->status());
  }
  return Status::OK();
}

Status SegmentsImpl::FoldFeed(std::string_view id, int64_t upto_us, segments::Bitmap* members,
                              std::vector<std::string>* ids, std::string* last_cursor) {
  const std::string prefix = storage::SegmentFeedPrefix(id);
  absl::flat_hash_set<std::string> in;
  auto iter = engine_->store().NewIterator(storage::Cf::kMeta, prefix, storage::PrefixSuccessor(prefix));
  for (iter->Seek(prefix); iter->Valid(); iter->Next()) {
    std::string_view suffix = iter->key().substr(prefix.size());
    if (suffix.size() != 16) return Status::DataLoss(fmt::format("segment {} has a corrupt feed key", id));
    const int64_t time = static_cast<int64_t>(storage::DecodeBigEndian64(suffix));
    const uint64_t sequence = storage::DecodeBigEndian64(suffix.substr(8));
    last_time_ = std::max(last_time_, time);
    next_sequence_ = std::max(next_sequence_, sequence + 1);
    if (last_cursor != nullptr) *last_cursor = HexCursor(suffix);
    if (time > upto_us) continue;  // still read on, for the cursor and the sequence
    auto change = Json::Parse(iter->value());
    const Json* profile = change.ok() ? change->Find("profileId") : nullptr;
    const Json* what = change.ok() ? change->Find("change") : nullptr;
    if (profile == nullptr || what == nullptr || !profile->is_string() || !what->is_string()) {
      return Status::DataLoss(fmt::format("segment {} has a corrupt feed entry", id));
    }
    if (what->as_string() == "entered") {
      in.insert(profile->as_string());
    } else {
      in.erase(profile->as_string());
    }
  }
  CDP_RETURN_IF_ERROR(iter->status());
  if (members != nullptr) {
    for (const std::string& p : in) members->add(OrdinalOf(p));
  }
  if (ids != nullptr) {
    ids->assign(in.begin(), in.end());
    std::sort(ids->begin(), ids->end());
  }
  return Status::OK();
}

Status SegmentsImpl::UpsertDocument(uint32_t ordinal, const Json& stored, const storage::Traits& traits) {
  Status s = index_->UpsertProfile(ordinal, RenderProfile(stored, traits));
  if (s.ok()) RememberTraits(ordinal, traits);
  return s;
}

void SegmentsImpl::RememberTraits(uint32_t ordinal, const storage::Traits& traits) {
  if (ordinal >= traits_.size()) {
    storage::Traits unknown;
    unknown.event_count = -1;
    traits_.resize(std::max<size_t>(ordinal + 1, traits_.size() * 2), unknown);
  }
  traits_[ordinal] = traits;
}

bool SegmentsImpl::TraitChanged(std::string_view key, const storage::Traits& a, const storage::Traits& b) {
  if (key == "ltv") return a.revenue_micros != b.revenue_micros;
  if (key == "aov") return a.revenue_micros != b.revenue_micros || a.purchase_count != b.purchase_count;
  if (key == "purchaseCount") return a.purchase_count != b.purchase_count;
  if (key == "lastPurchaseDate") return a.last_purchase_us != b.last_purchase_us;
  if (key == "firstSeenDate") return a.first_seen_us != b.first_seen_us;
  if (key == "lastSeenDate") return a.last_seen_us != b.last_seen_us;
  if (key == "eventCount") return a.event_count != b.event_count;
  return true;  // a trait this list does not know: always rewritten
}

Status SegmentsImpl::Reload(const std::string& profile_id) {
  const uint32_t ordinal = OrdinalOf(profile_id);
  index_->RemoveProfile(ordinal);
  if (ordinal < traits_.size()) traits_[ordinal].event_count = -1;
  auto doc = engine_->ReadStoredProfile(profile_id);
  if (doc.status().IsNotFound()) return Status::OK();  // erased
  CDP_RETURN_IF_ERROR(doc.status());
  if (doc->Find("mergedInto") != nullptr) return Status::OK();  // merged away: its events moved
  CDP_RETURN_IF_ERROR(UpsertDocument(ordinal, *doc, engine_->ReadTraits(profile_id)));
  if (auto rfm = rfm_.find(ordinal); rfm != rfm_.end()) {
    CDP_RETURN_IF_ERROR(index_->UpsertField(ordinal, "computed.rfm", rfm->second.ToJson()));
  }
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
  CDP_RETURN_IF_ERROR(LoadDefinitions());
  if (index_ != nullptr) return ApplyNotes();
  Status s = Build();
  absl::flat_hash_set<std::string> erased;
  if (!s.ok()) {
    index_.reset();
    tracking_.store(false);
    (void)EndBuild(&erased);
    DropFromFeed(erased);
    return s;
  }
  s = ApplyNotes();
  if (int expected = 3; g_hold_segment_build_for_testing.compare_exchange_strong(expected, 4)) {
    while (g_hold_segment_build_for_testing.load() == 4) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  // Notes made while the build ended, by writers that did not wait for it (AfterWrite): an erasure's among them
  // when its EraseFeedEntries saw the build (its note came first), so the exits these record are dropped too.
  if (EndBuild(&erased) && s.ok()) s = ApplyNotes();
  DropFromFeed(erased);
  return s;
}

Status SegmentsImpl::ApplyNotes() {
  // The profiles written since the last refresh, with writes paused: all of them are in storage.
  std::vector<Change> changes;
  int64_t now = 0;
  storage::WriteBatch gone(engine_->store());  // manual-list entries of profiles that no longer exist
  Status applied = engine_->WithWritesPaused([&]() -> Status {
    now = NowMicros();  // after every acknowledged write: changes are not dated before their cause
    absl::flat_hash_map<std::string, Pending> notes;
    {
      std::lock_guard<std::mutex> lock(pending_mu_);
      notes.swap(pending_);
    }
    std::vector<std::string> ids;
    ids.reserve(notes.size());
    for (const auto& [id, p] : notes) ids.push_back(id);
    std::sort(ids.begin(), ids.end());  // a deterministic feed order
    for (size_t i = 0; i < ids.size(); ++i) {
      const std::string& id = ids[i];
      Pending& p = notes[id];
      const uint32_t ordinal = OrdinalOf(id);
      std::vector<std::pair<std::string, std::string>> types;
      std::vector<const std::vector<bool>*> trait_readers;  // by slot: the definitions reading a changed trait
      Status s;
      if (!index_->universe().contains(ordinal)) p.kind = Pending::kReload;
      if (p.kind == Pending::kDocument) {
        // The document changed, its stored events did not: re-read the document, keep the indexed events.
        auto doc = engine_->ReadStoredProfile(id);
        if (!doc.ok() || doc->Find("mergedInto") != nullptr) {
          p.kind = Pending::kReload;  // gone or merged away meanwhile (Reload sorts it out), or a read error
        } else {
          s = UpsertDocument(ordinal, *doc, engine_->ReadTraits(id));
          if (auto rfm = rfm_.find(ordinal); s.ok() && rfm != rfm_.end()) {
            s = index_->UpsertField(ordinal, "computed.rfm", rfm->second.ToJson());
          }
        }
      } else if (p.kind == Pending::kEvents) {
        // Only the event-maintained traits changed in the document: those the events' deltas change.
        storage::Traits* known =
            ordinal < traits_.size() && traits_[ordinal].event_count >= 0 ? &traits_[ordinal] : nullptr;
        const storage::Traits before = known != nullptr ? *known : storage::Traits();
        storage::Traits now = before;
        if (known != nullptr) {
          now.Combine(p.delta);
        } else {
          now = engine_->ReadTraits(id);
        }
        const Json traits = RenderTraits(now);
        for (const auto& [key, value] : traits.members()) {
          if (known != nullptr && !TraitChanged(key, before, now)) continue;
          bool changed = false;
          const std::string path = "computed." + key;
          if (s.ok()) s = index_->UpsertField(ordinal, path, value, &changed);
          if (changed) trait_readers.push_back(&FieldReadersOf(path));
        }
        if (s.ok()) RememberTraits(ordinal, now);
      }
      if (p.kind != Pending::kReload) {
        for (size_t k = 0; s.ok() && k < p.events.size(); ++k) {
          std::string type, name;
          s = AddStoredEvent(index_.get(), ordinal, p.events[k].first, p.events[k].second, &type, &name);
          types.emplace_back(std::move(type), std::move(name));
        }
      } else {
        s = Reload(id);
      }
      if (!s.ok()) {
        // Keep this note and the ones not applied yet (whole reloads) for the next refresh.
        std::lock_guard<std::mutex> lock(pending_mu_);
        for (size_t k = i; k < ids.size(); ++k) {
          Pending& back = pending_[ids[k]];
          back.kind = Pending::kReload;
          back.events.clear();
          if (back.cause.empty()) back.cause = notes[ids[k]].cause;
        }
        return s;
      }
      Json cause = Json::Object().Set("kind", p.cause.empty() ? std::string("profile") : p.cause);
      if (!types.empty()) {
        Json names = Json::Array();
        for (const auto& [type, name] : types) names.Push(name.empty() ? type : name);
        cause.Set("events", std::move(names));
      } else if (!p.labelled.empty() || !p.events.empty()) {  // a reload (a profile the event created, say)
        Json names = Json::Array();
        std::vector<const std::string*> documents;
        for (const std::string& document : p.labelled) documents.push_back(&document);
        for (const auto& [time, document] : p.events) documents.push_back(&document);
        for (size_t k = 0; k < documents.size() && k < Pending::kMaxLabelled; ++k) {
          auto doc = Json::Parse(*documents[k]);
          const Json* type = doc.ok() ? doc->Find("type") : nullptr;
          const Json* name = doc.ok() ? doc->Find("name") : nullptr;
          if (type == nullptr || !type->is_string()) continue;
          names.Push(type->as_string() == "custom" && name != nullptr && name->is_string() ? name->as_string()
                                                                                           : type->as_string());
        }
        if (names.size() > 0) cause.Set("events", std::move(names));
      }
      const Pending::Kind kind = p.kind;
      std::vector<const std::vector<bool>*> readers;  // by slot: the definitions reading each new event
      for (const auto& [type, name] : types) readers.push_back(&ReadersOf(type, name));
      Reevaluate(
          ordinal,
          [&](const Definition& d) {
            if (kind == Pending::kReload) return true;
            const RuleDependencies& deps = d.rule.dependencies();
            // A new document changes fields only (the profile was and stays in the universe).
            if (kind == Pending::kDocument && !deps.fields.empty()) return true;
            for (const std::vector<bool>* r : trait_readers) {  // events change computed traits
              if ((*r)[d.slot]) return true;
            }
            for (const std::vector<bool>* r : readers) {
              if ((*r)[d.slot]) return true;
            }
            return false;
          },
          cause, now, &changes);
      if (!index_->universe().contains(ordinal)) {
        for (auto& [segment_id, d] : definitions_) {  // erased or merged away: it leaves static lists too
          if (d.manual && d.manual_members.contains(ordinal)) {
            d.manual_members.remove(ordinal);
            // An erasure deleted its own (EraseManualMemberships): no tombstone naming the person after its purge.
            const std::string key = storage::ManualMemberPrefix(segment_id) + id;
            std::string unused;
            Status held = engine_->store().Get(storage::Cf::kMeta, key, &unused);
            if (!held.IsNotFound()) gone.Delete(storage::Cf::kMeta, key);
          }
        }
      }
    }
    if (gone.Count() > 0) CDP_RETURN_IF_ERROR(engine_->store().Write(&gone).status());
    return Status::OK();
  });
  // Not after a failed application: a profile whose reload failed is out of the index until the next refresh,
  // and its timers would see it leave.
  if (applied.ok()) RunDueTimers(now, &changes);
  Status recorded = Record(&changes, now);
  CDP_RETURN_IF_ERROR(applied);
  return recorded;
}

// ---- Evaluation -----------------------------------------------------------------------------------------------------

void SegmentsImpl::Bind(Definition* d) {
  d->prepared = index_->Prepare(d->rule);
  d->reads_rfm = d->rule.dependencies().ReadsField("computed.rfm");
}

segments::MembershipLookup SegmentsImpl::Lookup() const {
  return [this](std::string_view id) -> const segments::Bitmap* {
    auto it = definitions_.find(std::string(id));
    return it == definitions_.end() ? nullptr : &it->second.members;
  };
}

bool SegmentsImpl::EvaluateFor(Definition* d, uint32_t ordinal, bool exists, int64_t now, const Json& cause,
                               std::vector<Change>* changes) {
  const bool in = exists && (d->manual ? d->manual_members.contains(ordinal)
                                       : index_->EvaluateOne(ordinal, *d->prepared, now, Lookup()));
  const bool was = d->members.contains(ordinal);
  if (d->rule.dependencies().time_dependent) Schedule(d, ordinal, now);
  if (in == was) return false;
  {
    std::unique_lock<std::shared_mutex> lock(members_mu_);
    if (in) {
      d->members.add(ordinal);
    } else {
      d->members.remove(ordinal);
    }
  }
  changes->push_back({d, ordinal, in, cause});
  return true;
}

void SegmentsImpl::Reevaluate(uint32_t ordinal, const std::function<bool(const Definition&)>& affects,
                              const Json& cause, int64_t now, std::vector<Change>* changes) {
  absl::flat_hash_set<std::string_view> moved;  // segments whose membership of this profile changed
  const bool exists = index_->universe().contains(ordinal);
  for (Definition* d : order_) {
    bool affected = affects(*d);
    if (!affected && !moved.empty()) {
      for (const std::string& named : d->rule.dependencies().segments) affected = affected || moved.contains(named);
    }
    if (affected && EvaluateFor(d, ordinal, exists, now, cause, changes))
      moved.insert(d->stored.Find("id")->as_string());
  }
}

const std::vector<bool>& SegmentsImpl::ReadersOf(const std::string& type, const std::string& name) {
  const std::string key = name.empty() ? type : type + "\n" + name;
  auto [it, inserted] = readers_.try_emplace(key);
  if (inserted) {
    it->second.resize(slots_.size());
    for (size_t slot = 0; slot < slots_.size(); ++slot) {
      it->second[slot] = slots_[slot] != nullptr && slots_[slot]->rule.dependencies().ReadsEvent(type, name);
    }
  }
  return it->second;
}

const std::vector<bool>& SegmentsImpl::FieldReadersOf(const std::string& path) {
  auto [it, inserted] = field_readers_.try_emplace(path);
  if (inserted) {
    it->second.resize(slots_.size());
    for (size_t slot = 0; slot < slots_.size(); ++slot) {
      it->second[slot] = slots_[slot] != nullptr && slots_[slot]->rule.dependencies().ReadsField(path);
    }
  }
  return it->second;
}

void SegmentsImpl::Reorder() {
  readers_.clear();
  field_readers_.clear();
  order_.clear();
  absl::flat_hash_set<const Definition*> placed;
  // Definitions are acyclic (ParseDefinition); place each after the segments it names, depth first.
  std::function<void(Definition*)> place = [&](Definition* d) {
    if (placed.contains(d)) return;
    placed.insert(d);
    for (const std::string& named : d->rule.dependencies().segments) {
      if (auto it = definitions_.find(named); it != definitions_.end()) place(&it->second);
    }
    order_.push_back(d);
  };
  for (auto& [id, d] : definitions_) place(&d);
}

// ---- RFM ------------------------------------------------------------------------------------------------------------

Json SegmentsImpl::ScoreRfmNow(int64_t now, std::vector<Change>* changes) {
  const auto inputs = segments::CollectRfmInputs(*index_, rfm_options_, now);
  std::vector<RfmInput> customers;
  customers.reserve(inputs.size());
  for (const auto& [ordinal, input] : inputs) customers.push_back(input);
  const std::vector<RfmScore> scores = ScoreRfm(customers);
  absl::flat_hash_map<uint32_t, RfmScore> next;
  next.reserve(inputs.size());
  for (size_t i = 0; i < inputs.size(); ++i) next.emplace(inputs[i].first, scores[i]);
  auto same = [](const RfmScore& a, const RfmScore& b) { return a.r == b.r && a.f == b.f && a.m == b.m; };
  std::vector<uint32_t> changed;
  for (const auto& [ordinal, score] : next) {
    auto old = rfm_.find(ordinal);
    if (old == rfm_.end() || !same(old->second, score)) changed.push_back(ordinal);
  }
  for (const auto& [ordinal, score] : rfm_) {
    if (!next.contains(ordinal)) changed.push_back(ordinal);
  }
  std::sort(changed.begin(), changed.end());
  {
    std::unique_lock<std::shared_mutex> lock(members_mu_);
    rfm_.swap(next);
  }
  const Json cause = Json::Object().Set("kind", "rfm");
  for (uint32_t ordinal : changed) {
    if (!index_->universe().contains(ordinal)) continue;
    auto it = rfm_.find(ordinal);
    (void)index_->UpsertField(ordinal, "computed.rfm", it != rfm_.end() ? it->second.ToJson() : Json());
    if (changes != nullptr)
      Reevaluate(
          ordinal, [](const Definition& d) { return d.reads_rfm; }, cause, now, changes);
  }
  return Json::Object()
      .Set("at", FormatTimestamp(now))
      .Set("scored", static_cast<int64_t>(rfm_.size()))
      .Set("changed", static_cast<int64_t>(changed.size()));
}

// ---- Timers ---------------------------------------------------------------------------------------------------------

void SegmentsImpl::Schedule(Definition* d, uint32_t ordinal, int64_t now) {
  const uint64_t key = static_cast<uint64_t>(d->slot) << 32 | ordinal;
  std::optional<int64_t> next = index_->NextChange(ordinal, *d->prepared, now);
  if (!next) {
    scheduled_.erase(key);
    return;
  }
  auto [it, inserted] = scheduled_.try_emplace(key, *next);
  if (!inserted && it->second == *next) return;
  it->second = *next;
  const bool earliest = timers_.empty() || *next < timers_.top().at;
  timers_.push({*next, d->slot, ordinal});
  if (timers_.size() > 2 * scheduled_.size() + 4096) {  // mostly stale: rebuild from the live entries
    std::vector<Timer> live;
    live.reserve(scheduled_.size());
    for (const auto& [k, at] : scheduled_)
      live.push_back({at, static_cast<uint32_t>(k >> 32), static_cast<uint32_t>(k)});
    timers_ = decltype(timers_)(std::greater<Timer>(), std::move(live));
  }
  if (earliest) cv_.notify_all();
}

void SegmentsImpl::RunDueTimers(int64_t now, std::vector<Change>* changes) {
  const Json cause = Json::Object().Set("kind", "time");
  while (!timers_.empty() && timers_.top().at <= now) {
    const Timer t = timers_.top();
    timers_.pop();
    const uint64_t key = static_cast<uint64_t>(t.slot) << 32 | t.ordinal;
    auto it = scheduled_.find(key);
    if (it == scheduled_.end() || it->second != t.at) continue;  // stale
    scheduled_.erase(it);
    Definition* due = t.slot < slots_.size() ? slots_[t.slot] : nullptr;
    if (due == nullptr) continue;  // deleted or replaced
    Reevaluate(
        t.ordinal, [due](const Definition& d) { return &d == due; }, cause, now, changes);
  }
}

// ---- The feed -------------------------------------------------------------------------------------------------------

Status SegmentsImpl::Record(std::vector<Change>* changes, int64_t now) {
  if (changes->empty()) return Status::OK();
  // Whole milliseconds, as change documents write times, rounded down: a time read from a change, or any time read
  // after the write, finds it in MembersAt.
  const int64_t time = std::max(now / 1000 * 1000, last_time_);
  last_time_ = time;
  const std::string at = FormatTimestamp(time);
  const bool deliver = subscriber_count_.load(std::memory_order_acquire) > 0;
  const bool was_empty = unwritten_.empty();
  for (Change& c : *changes) {
    const std::string& segment_id = c.def->stored.Find("id")->as_string();
    std::string key = storage::SegmentFeedKey(segment_id, time, next_sequence_++);
    Json stored = Json::Object()
                      .Set("segmentId", segment_id)
                      .Set("profileId", id_of_[c.ordinal])
                      .Set("change", c.entered ? "entered" : "exited")
                      .Set("time", at)
                      .Set("cause", std::move(c.cause));
    std::string cursor = HexCursor(std::string_view(key).substr(key.size() - 16));
    if (deliver) {
      Json delivered = Json::Object().Set("cursor", cursor);
      for (const auto& [name, value] : stored.members()) delivered.Set(name, value);
      deliveries_.push_back(std::move(delivered));
    }
    // An erasure's exits reach subscribers only: the stored feed keeps nothing naming an erased person
    // (EraseFeedEntries deletes what it held), whenever the erasure's note is applied.
    const Json* kind = stored.FindPath("cause.kind");
    if (kind != nullptr && *kind == Json("erasure") && !c.entered) continue;
    c.def->last_cursor = std::move(cursor);
    unwritten_.emplace_back(storage::SegmentFeedByProfilePrefix(id_of_[c.ordinal]) + key, "");  // for erasure
    unwritten_.emplace_back(std::move(key), stored.Dump());
  }
  changes->clear();
  // The worker writes the entries (off the writer's path); reads of the feed write them first.
  if (was_empty) unwritten_since_ = std::chrono::steady_clock::now();
  // The worker (deliveries, the first of a group of feed writes) and WaitForChanges callers; not otherwise, as a
  // needless wake-up of the worker costs the writer a context switch.
  if (deliver || was_empty || waiters_ > 0) cv_.notify_all();
  // Not during a build: what it records about a profile erased meanwhile must never be stored (EndBuild).
  if (unwritten_.size() >= kMaxUnwritten && !feed_held_) return WriteFeed();
  return Status::OK();
}

Status SegmentsImpl::WriteFeed() {
  if (unwritten_.empty()) return Status::OK();
  storage::WriteBatch batch(engine_->store());
  for (const auto& [key, value] : unwritten_) batch.Put(storage::Cf::kMeta, key, value);
  CDP_RETURN_IF_ERROR(engine_->store().Write(&batch).status());
  unwritten_.clear();
  return Status::OK();
}

Status SegmentsImpl::EraseFeedEntries(const std::vector<std::string>& profile_ids, storage::WriteBatch* erased) {
  bool during_build = false;
  {
    std::lock_guard<std::mutex> pending(pending_mu_);
    during_build = building_.load(std::memory_order_relaxed);
    // The builder holds mu_ and writes no feed entry until its EndBuild, which drops what it recorded about these
    // profiles; what is stored is deleted below, without waiting for it.
    if (during_build) erased_while_building_.insert(profile_ids.begin(), profile_ids.end());
  }
  std::unique_lock<std::mutex> lock(mu_, std::defer_lock);
  if (!during_build) {
    lock.lock();  // (should a build start just now, this waits for it, and the entries are written below)
    CDP_RETURN_IF_ERROR(WriteFeed());  // the index covers every entry recorded so far
  }
  storage::Store& store = engine_->store();
  storage::WriteBatch batch(store);
  absl::flat_hash_set<std::string> segments;  // whose feed lost entries
  for (const std::string& profile_id : profile_ids) {
    const std::string prefix = storage::SegmentFeedByProfilePrefix(profile_id);
    auto iter = store.NewIterator(storage::Cf::kMeta, prefix, storage::PrefixSuccessor(prefix));
    for (iter->Seek(prefix); iter->Valid(); iter->Next()) {
      batch.Delete(storage::Cf::kMeta, iter->key());
      erased->Delete(storage::Cf::kMeta, iter->key());
      const std::string_view feed_key = iter->key().substr(prefix.size());
      std::string value;
      Status s = store.Get(storage::Cf::kMeta, feed_key, &value);
      if (s.IsNotFound()) continue;  // its segment was deleted
      CDP_RETURN_IF_ERROR(s);
      // Every entry, the exits the erasure itself caused too: they were delivered to subscribers (Subscribe), and
      // the stored feed keeps nothing that names the person.
      batch.Delete(storage::Cf::kMeta, feed_key);
      erased->Delete(storage::Cf::kMeta, feed_key);
      constexpr std::string_view kFeed = "segfeed/";  // storage::SegmentFeedPrefix: "segfeed/" id "/" 16 bytes
      if (feed_key.starts_with(kFeed) && feed_key.size() > kFeed.size() + 17) {
        segments.insert(std::string(feed_key.substr(kFeed.size(), feed_key.size() - kFeed.size() - 17)));
      }
    }
    CDP_RETURN_IF_ERROR(iter->status());
  }
  if (batch.Count() == 0) return Status::OK();
  CDP_RETURN_IF_ERROR(store.Write(&batch).status());
  if (during_build) return Status::OK();  // EndBuild sets every segment's latest cursor
  // Each such segment's latest cursor is now its last remaining entry's: WaitForChanges compares with it, and a
  // reader whose cursor is past what remains must wait for a new change rather than find "one" it cannot read.
  for (const std::string& id : segments) {
    auto it = definitions_.find(id);
    if (it == definitions_.end()) continue;
    CDP_ASSIGN_OR_RETURN(it->second.last_cursor, LatestCursor(id));
  }
  return Status::OK();
}

Status SegmentsImpl::EraseManualMemberships(std::string_view profile_id, storage::WriteBatch* batch) {
  storage::Store& store = engine_->store();
  auto iter = store.NewIterator(storage::Cf::kMeta, kDefinitionPrefix, storage::PrefixSuccessor(kDefinitionPrefix));
  for (iter->Seek(kDefinitionPrefix); iter->Valid(); iter->Next()) {
    auto stored = Json::Parse(iter->value());
    if (!stored.ok()) return Status::DataLoss(fmt::format("segment {} is corrupt", iter->key()));
    const Json* type = stored->Find("type");
    if (type == nullptr || *type != Json("manual")) continue;
    const std::string key =
        storage::ManualMemberPrefix(iter->key().substr(std::string_view(kDefinitionPrefix).size())) +
        std::string(profile_id);
    std::string unused;
    Status s = store.Get(storage::Cf::kMeta, key, &unused);
    if (s.IsNotFound()) continue;
    CDP_RETURN_IF_ERROR(s);
    batch->Delete(storage::Cf::kMeta, key);
  }
  return iter->status();
}

std::string SegmentsImpl::CursorOfTime(int64_t time_us) {
  std::string suffix;
  storage::AppendBigEndian64(&suffix, static_cast<uint64_t>(time_us));
  storage::AppendBigEndian64(&suffix, 0);
  return HexCursor(suffix);
}

// ---- The worker and the subscribers ---------------------------------------------------------------------------------

void SegmentsImpl::WorkerLoop() {
  std::unique_lock<std::mutex> lock(mu_);
  bool build_tried = false;
  while (!stop_) {
    if (index_ == nullptr && !definitions_.empty() && !build_tried) {
      build_tried = true;  // a failed build is retried by the next Segments call, which reports the error
      (void)Noted(Refresh());
      continue;
    }
    // Feed entries are written in groups, at most kFeedDelay after the first of a group was recorded.
    if (!unwritten_.empty() && std::chrono::steady_clock::now() >= unwritten_since_ + kFeedDelay) {
      if (!WriteFeed().ok()) cv_.wait_for(lock, std::chrono::seconds(1));  // storage trouble: retry later
      continue;
    }
    if (!deliveries_.empty()) {
      std::deque<Json> batch;
      batch.swap(deliveries_);
      lock.unlock();
      Deliver(batch);
      lock.lock();
      continue;
    }
    const bool rfm_due = index_ != nullptr && engine_->options().rfm_refresh_seconds > 0 &&
                         std::chrono::steady_clock::now() >= next_rfm_;
    if (rfm_due) {
      next_rfm_ = std::chrono::steady_clock::now() + std::chrono::seconds(engine_->options().rfm_refresh_seconds);
      if (Noted(Refresh()).ok()) {
        std::vector<Change> changes;
        const int64_t now = NowMicros();
        (void)ScoreRfmNow(now, &changes);
        (void)Record(&changes, now);
      }
      continue;
    }
    if (index_ != nullptr && !timers_.empty() && timers_.top().at <= NowMicros()) {
      if (!Noted(Refresh()).ok()) cv_.wait_for(lock, std::chrono::seconds(1));  // storage trouble: do not spin
      continue;
    }
    // Sleep until the first of: a feed group to write, the RFM recomputation, the next timer (or a notify).
    auto wake = std::chrono::steady_clock::now() + std::chrono::hours(1);
    if (!unwritten_.empty()) wake = std::min(wake, unwritten_since_ + kFeedDelay);
    if (index_ != nullptr && engine_->options().rfm_refresh_seconds > 0) wake = std::min(wake, next_rfm_);
    if (!timers_.empty()) {
      const int64_t in_us = std::max<int64_t>(0, timers_.top().at - NowMicros());
      wake = std::min(wake, std::chrono::steady_clock::now() + std::chrono::microseconds(in_us));
    }
    cv_.wait_until(lock, wake);
  }
  // Changes recorded before Stop still reach the subscribers.
  if (!deliveries_.empty()) {
    std::deque<Json> batch;
    batch.swap(deliveries_);
    lock.unlock();
    Deliver(batch);
  }
}

void SegmentsImpl::Deliver(const std::deque<Json>& changes) {
  std::lock_guard<std::recursive_mutex> lock(subscribers_mu_);
  delivering_thread_ = std::this_thread::get_id();
  // Which of the batch's segments each subscriber's principal may read (as Changes checks), decided before any
  // callback runs (mu_ is not held while they do; a segment deleted since is readable by admins only).
  absl::flat_hash_map<std::string, absl::flat_hash_set<std::string>> readable;  // principal -> segment ids
  {
    absl::flat_hash_set<std::string> segment_ids;
    for (const Json& change : changes) segment_ids.insert(change.Find("segmentId")->as_string());
    std::lock_guard<std::mutex> defs(mu_);
    for (const auto& [handle, subscriber] : subscribers_) {
      if (readable.contains(subscriber.principal)) continue;
      ScopedPrincipal as(subscriber.principal);
      auto access = engine_->access();
      auto& allowed = readable[subscriber.principal];
      for (const std::string& id : segment_ids) {
        auto it = definitions_.find(id);
        if (access->admin() || (it != definitions_.end() && CheckReadable(it->second, *access).ok())) {
          allowed.insert(id);
        }
      }
    }
  }
  struct Delivered {
    std::vector<std::string> profiles;
    int64_t count = 0;
  };
  std::map<uint64_t, Delivered> delivered;
  for (const Json& change : changes) {
    std::vector<uint64_t> handles;
    for (const auto& [handle, subscriber] : subscribers_) handles.push_back(handle);
    for (uint64_t handle : handles) {
      auto it = subscribers_.find(handle);
      if (it == subscribers_.end() || unsubscribed_during_delivery_.contains(handle)) continue;
      auto allowed = readable.find(it->second.principal);  // absent: subscribed by a callback of this batch
      if (allowed == readable.end() || !allowed->second.contains(change.Find("segmentId")->as_string())) continue;
      ScopedPrincipal as(it->second.principal);
      Delivered& d = delivered[handle];
      // The audit entry names the profiles, but not an erased person (counted only): it is written after the
      // erasure redacted the log.
      const std::string& profile = change.Find("profileId")->as_string();
      const Json* cause = change.FindPath("cause.kind");
      const bool erased = cause != nullptr && *cause == Json("erasure");
      if (!erased && std::find(d.profiles.begin(), d.profiles.end(), profile) == d.profiles.end()) {
        d.profiles.push_back(profile);
      }
      ++d.count;
      it->second.callback(change);
    }
    for (uint64_t handle : unsubscribed_during_delivery_) {
      if (auto it = subscribers_.find(handle); it != subscribers_.end()) {
        ScopedPrincipal as(it->second.principal);
        Delivered& d = delivered[handle];
        if (d.count > 0) {
          internal::Record(engine_->audit_log(), "segments.delivered", d.profiles, Status::OK(), d.count, true);
        }
        delivered.erase(handle);
        subscribers_.erase(it);
      }
    }
    unsubscribed_during_delivery_.clear();
  }
  for (const auto& [handle, d] : delivered) {
    auto it = subscribers_.find(handle);
    if (it == subscribers_.end() || d.count == 0) continue;
    ScopedPrincipal as(it->second.principal);
    internal::Record(engine_->audit_log(), "segments.delivered", d.profiles, Status::OK(), d.count, /*read=*/true);
  }
  delivering_thread_ = {};
}

Result<uint64_t> SegmentsImpl::Subscribe(ChangeCallback callback) {
  Status allowed = engine_->RequireDefined();
  internal::Record(engine_->audit_log(), "segments.subscribe", {}, allowed, 0, /*read=*/true);
  CDP_RETURN_IF_ERROR(allowed);
  std::lock_guard<std::recursive_mutex> lock(subscribers_mu_);
  const uint64_t handle = next_handle_++;
  subscribers_.emplace(handle, Subscriber{std::move(callback), ScopedPrincipal::Current()});
  subscriber_count_.fetch_add(1, std::memory_order_acq_rel);
  return handle;
}

void SegmentsImpl::Unsubscribe(uint64_t handle) {
  std::lock_guard<std::recursive_mutex> lock(subscribers_mu_);  // waits for a delivery in another thread
  if (delivering_thread_ == std::this_thread::get_id()) {
    if (subscribers_.contains(handle) && unsubscribed_during_delivery_.insert(handle).second) {
      subscriber_count_.fetch_sub(1, std::memory_order_acq_rel);  // from a callback: erased once it returns
    }
  } else if (subscribers_.erase(handle) > 0) {
    subscriber_count_.fetch_sub(1, std::memory_order_acq_rel);
  }
}

}  // namespace cdp::internal
