// Copyright 2026 The libcdp Authors.
//
// Engine::Open, and the write path: Ingest (events), WriteProfile and DeleteProfile.

#include "engine/engine_impl.h"

#include <openssl/rand.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <numeric>
#include <optional>
#include <shared_mutex>
#include <thread>
#include <tuple>

#include "absl/container/flat_hash_set.h"
#include "absl/container/node_hash_map.h"
#include "absl/hash/hash.h"
#include "cdp/version.h"
#include "core/bounded_table.h"
#include "core/hex.h"
#include "core/ids.h"
#include "core/json_internal.h"
#include "core/parallel.h"
#include "fmt/format.h"
#include "profiles/profile_model.h"
#include "storage/keys.h"

namespace cdp {

Result<std::unique_ptr<Engine>> Engine::Open(const Options& options, const std::string& path) {
  if (options.session_timeout_seconds <= 0) {
    return Status::InvalidArgument("session_timeout_seconds must be positive", "session_timeout_seconds");
  }
  if (options.max_event_future_seconds < 0 || options.max_event_future_seconds > 100LL * 365 * 86400) {
    return Status::InvalidArgument("max_event_future_seconds must be between 0 (no limit) and 100 years",
                                   "max_event_future_seconds");
  }
  if (options.max_json_depth < 2 || options.max_json_depth > 1000) {
    return Status::InvalidArgument("max_json_depth must be between 2 and 1000", "max_json_depth");
  }
  if (options.max_page_size == 0 || options.max_batch_items == 0) {
    return Status::InvalidArgument("max_page_size and max_batch_items must be positive");
  }
  if (options.retention_interval_seconds < 0) {
    return Status::InvalidArgument("retention_interval_seconds must not be negative", "retention_interval_seconds");
  }
  if (options.index_tail_events == 0) {
    return Status::InvalidArgument("index_tail_events must be positive", "index_tail_events");
  }
  auto store = storage::Store::Open(options, path);
  if (!store.ok()) return store.status();
  auto engine = std::make_unique<internal::EngineImpl>(options, std::move(store).value());
  CDP_RETURN_IF_ERROR(engine->LoadRules());
  CDP_RETURN_IF_ERROR(engine->LoadRetentionHorizons());
  CDP_RETURN_IF_ERROR(engine->identity_impl().LoadMatching());
  CDP_RETURN_IF_ERROR(engine->RecoverTail());
  CDP_RETURN_IF_ERROR(engine->FinishPendingPurge());
  CDP_RETURN_IF_ERROR(engine->LoadTrackingDenied());
  CDP_RETURN_IF_ERROR(engine->LoadPrivacy());
  CDP_RETURN_IF_ERROR(engine->audit_log().Load());
  CDP_RETURN_IF_ERROR(engine->governance_impl().Load());
  CDP_RETURN_IF_ERROR(engine->StartSegments());
  CDP_RETURN_IF_ERROR(engine->retention_impl().Start());
  return std::unique_ptr<Engine>(std::move(engine));
}

namespace internal {

namespace {

// Just under a table size (FullTableEntries): 917,504 and 1,835,008 entries. The bounds were 1,000,000 and
// 2,000,000, which doubled each table for its last 8% of entries (the identity cache's last doubling was 4% of a
// 1,000,000-record import's time, in page faults).
constexpr size_t kMaxSessionCache = FullTableEntries(20);
constexpr size_t kMaxIdentityCache = FullTableEntries(21);
// From this many identifies in one call, their links go into the identity cache on a second thread while the
// batch is written (CommitIdentifies): a thread start costs 20-50 us.
constexpr size_t kParallelPublishFrom = 256;
// From this many identifies in a chunk of 256 (see CommitIdentifies), a batch reads the owners and hub sets it
// needs in one batched read (IngestContext::Prefetch) rather than one point read each. Event batches do not: their
// identifiers are mostly cached, and looking each up once more before resolution cost identity_bench (a) about 5%.
constexpr size_t kMinPrefetch = 32;
constexpr size_t kMaxDeviceIds = 100;

std::string IdentityKeyOf(const Identifier& id) { return storage::IdentityKey(id.type, id.value); }

// FNV-1a over type \0 value: the same in every process (absl::Hash is seeded per process, so it cannot be stored).
uint64_t StableHash(std::string_view type, std::string_view value) {
  uint64_t h = 14695981039346656037ULL;
  auto mix = [&](std::string_view s) {
    for (unsigned char c : s) {
      h ^= c;
      h *= 1099511628211ULL;
    }
  };
  mix(type);
  mix(std::string_view("\0", 1));
  mix(value);
  return h;
}

}  // namespace

Json ErrorJson(const Status& status) {
  Json error = Json::Object();
  error.Set("code", StatusCodeName(status.code()));
  error.Set("message", status.message());
  if (!status.field().empty()) error.Set("field", status.field());
  return error;
}

Json BatchAnswer(const std::vector<Status>& statuses, const std::function<Json(size_t)>& ok_item) {
  Json results = Json::Array();
  int64_t accepted = 0;
  for (size_t i = 0; i < statuses.size(); ++i) {
    Json item;
    if (statuses[i].ok()) {
      item = ok_item(i);
      item.Set("status", "ok");
      ++accepted;
    } else {
      item = Json::Object();
      item.Set("status", StatusCodeName(statuses[i].code()));
      item.Set("error", ErrorJson(statuses[i]));
    }
    item.Set("index", static_cast<int64_t>(i));
    results.Push(std::move(item));
  }
  Json out = Json::Object();
  out.Set("accepted", accepted);
  out.Set("rejected", static_cast<int64_t>(statuses.size()) - accepted);
  out.Set("results", std::move(results));
  return out;
}

EngineImpl::EngineImpl(const Options& options, std::unique_ptr<storage::Store> store)
    : Engine(options),
      store_(std::move(store)),
      profiles_(this),
      events_(this),
      identity_(this),
      segments_(this),
      audiences_(this, &segments_),
      consent_(this),
      gdpr_(this),
      audit_log_(store_.get(), [this](std::string_view data) { return KeyedHashHex(data); }),
      governance_(store_.get(), &audit_log_),
      retention_(this),
      audited_profiles_(&profiles_, &audit_log_, &governance_),
      audited_events_(&events_, &audit_log_, &governance_),
      audited_consent_(&consent_, &audit_log_, &governance_),
      audited_gdpr_(&gdpr_, &audit_log_, &governance_),
      audit_(&audit_log_, &governance_),
      rules_(IdentityRules::Defaults()),
      tail_(store_.get()) {
  segments_.set_audiences(&audiences_);
}

EngineImpl::~EngineImpl() {
  retention_.Stop();         // a run in progress writes through the engine
  (void)audit_log_.Flush();  // the read entries held back
  identity_.StopMatcher();   // it reads and writes the store, and its merges call segments_
  segments_.Stop();          // its worker reads and writes the store
  // Writes the tail so that the next open has no log to read. Should it fail, the log is read at the next open.
  // Not after a failed write: the tail may hold entries of a batch that never reached storage (the log, written
  // in the same batch, did not either), which the next open rebuilds from the log without them.
  std::lock_guard<std::mutex> lock(write_mu_);
  if (write_error_.ok()) (void)tail_.Flush();
}

Status EngineImpl::RecoverTail() {
  {
    auto last = store_->NewIterator(storage::Cf::kEventsByTime);
    last->SeekToLast();
    CDP_RETURN_IF_ERROR(last->status());
    if (last->Valid()) newest_event_key_time_ = storage::DecodeBigEndian64(last->key());
  }
  CDP_RETURN_IF_ERROR(tail_.Recover([](std::string_view document, int64_t time_us, storage::Traits* traits) {
    auto event = Json::Parse(document);
    if (!event.ok() || !StoredEventTraits(*event, time_us, traits))
      return Status::DataLoss("a stored event is corrupt");
    return Status::OK();
  }));
  return FlushTail();
}

Status EngineImpl::FlushTail() {
  Status s = tail_.Flush();
  if (!s.ok()) {
    write_error_ = Status::Unavailable("writing the event index failed (" + s.ToString() +
                                       "); reopen the database to write again");
  }
  return s;
}

void EngineImpl::MaybeFlushTail() {
  if (tail_.size() < options().index_tail_events) return;
  std::lock_guard<std::mutex> lock(write_mu_);
  if (!write_error_.ok() || tail_.size() < options().index_tail_events) return;
  std::unique_lock<std::shared_mutex> exclusive;  // every logged write is in storage
  // A failed batch in flight left its entries in the tail: not written out (the engine refuses writes).
  if (!SettleInFlight(&exclusive).ok()) return;
  Status s = tail_.FlushInBackground();
  if (!s.ok()) {
    write_error_ = Status::Unavailable("writing the event index failed (" + s.ToString() +
                                       "); reopen the database to write again");
  }
}

Result<Json> EngineImpl::Stats() {
  CDP_RETURN_IF_ERROR(RequireDefined());
  Json out = Json::Object();
  out.Set("profiles", store_->ReadCounter("profiles"));
  // Deletions subtract from the counter; the tail counts what writes added.
  out.Set("events", store_->ReadCounter("events") + tail_.EventCount());
  out.Set("formatVersion", kFormatVersion);
  out.Set("version", kVersion);
  out.Set("path", store_->path());
  out.Set("segmentsError", segments_.last_error());
  return out;
}

Status EngineImpl::Flush() {
  {
    std::lock_guard<std::mutex> lock(write_mu_);
    std::unique_lock<std::shared_mutex> exclusive;
    CDP_RETURN_IF_ERROR(SettleInFlight(&exclusive));  // a failed batch in flight left its entries in the tail
    CDP_RETURN_IF_ERROR(FlushTail());
  }
  return store_->Flush();
}

Result<Json> EngineImpl::ReadStoredProfile(std::string_view id) {
  std::string value;
  Status s = store_->Get(storage::Cf::kProfiles, id, &value);
  if (s.IsNotFound()) return Status::NotFound(fmt::format("profile {} does not exist", id));
  CDP_RETURN_IF_ERROR(s);
  auto doc = Json::Parse(value);
  if (!doc.ok()) return Status::DataLoss(fmt::format("stored profile {} is corrupt", id));
  return doc;
}

Json EngineImpl::Render(const Json& stored, std::string_view id) {
  Json out = RenderProfile(stored, ReadTraits(id));
  AddSegments(id, &out);
  governance_.Current()->Filter("", &out);
  return out;
}

void EngineImpl::AddSegments(std::string_view id, Json* rendered) {
  if (Json rfm = segments_.RfmOf(id); !rfm.is_null()) {
    if (Json* computed = rendered->Find("computed"); computed != nullptr) computed->Set("rfm", std::move(rfm));
  }
  std::vector<std::string> member_of = segments_.SegmentsOf(id);
  if (member_of.empty()) return;
  Json list = Json::Array();
  for (std::string& s : member_of) list.Push(std::move(s));
  rendered->Set("segments", std::move(list));
}

Result<std::string> EngineImpl::ResolveIdentifier(std::string_view type, std::string_view raw) {
  Identifier id;
  IgnoredIdentifier ignored;
  if (!rules()->Normalize(type, raw, &id, &ignored)) return std::string();
  return OwnerOfIdentityKey(IdentityKeyOf(id));
}

Result<std::string> EngineImpl::OwnerOfIdentityKey(const std::string& key) {
  std::string value;
  Status s = store_->Get(storage::Cf::kIdentities, key, &value);
  if (s.IsNotFound()) return std::string();
  CDP_RETURN_IF_ERROR(s);
  std::string live;
  auto doc = ReadLiveProfile(storage::DecodeIdentityLink(value).profile_id, &live);
  if (doc.status().IsNotFound()) return std::string();
  CDP_RETURN_IF_ERROR(doc.status());
  return live;
}

Result<Json> EngineImpl::ReadLiveProfile(std::string_view id, std::string* live_id) {
  // A malformed id is the caller's mistake (400), as Delete says, not a profile that does not exist (404).
  CDP_RETURN_IF_ERROR(ValidateId(id, "profileId"));
  std::string current(id);
  for (int hop = 0; hop < 64; ++hop) {
    CDP_ASSIGN_OR_RETURN(Json doc, ReadStoredProfile(current));
    const Json* into = doc.Find("mergedInto");
    if (into == nullptr) {
      *live_id = std::move(current);
      return doc;
    }
    current = into->as_string();
  }
  return Status::DataLoss(fmt::format("profile {} has a merge chain longer than 64", id));
}

storage::Traits EngineImpl::ReadTraits(std::string_view id) { return tail_.Traits(id); }

// ---- Ingest: the event write path ---------------------------------------------------------------------------------

// ---- SessionState

void EngineImpl::SessionState::DropFirst() {
  std::memmove(times_, times_ + 1, (count_ - 1) * sizeof(times_[0]));
  std::memmove(session_of_, session_of_ + 1, count_ - 1);
  --count_;
  complete_ = false;
}

int EngineImpl::SessionState::SlotFor(const std::string& session, bool may_drop) {
  bool used[2] = {false, false};
  for (int i = 0; i < count_; ++i) used[session_of_[i]] = true;
  for (int k = 0; k < 2; ++k) {
    if (used[k] && sessions_[k] == session) return k;
  }
  for (;;) {
    for (int k = 0; k < 2; ++k) {
      if (!used[k]) {
        sessions_[k] = session;
        return k;
      }
    }
    if (!may_drop) return -1;
    DropFirst();  // both in use by others: never the latest (alone, it uses one)
    used[0] = used[1] = false;
    for (int i = 0; i < count_; ++i) used[session_of_[i]] = true;
  }
}

bool EngineImpl::SessionState::Neighbours(int64_t t, int64_t* prev_t, std::string* prev_s, int64_t* next_t,
                                          std::string* next_s) const {
  for (int i = 0; i < count_; ++i) {
    if (times_[i] == t) return false;
  }
  int next = 0;
  while (next < count_ && times_[next] < t) ++next;
  if (next == count_) return false;  // not earlier than the latest
  if (next == 0 && !complete_) return false;
  if (next > 0) {
    *prev_t = times_[next - 1];
    *prev_s = sessions_[session_of_[next - 1]];
  }
  *next_t = times_[next];
  *next_s = sessions_[session_of_[next]];
  return true;
}

void EngineImpl::SessionState::Advance(int64_t t, const std::string& session) {
  const int slot = SlotFor(session, /*may_drop=*/true);
  if (count_ == kWindow) DropFirst();
  times_[count_] = t;
  session_of_[count_] = static_cast<uint8_t>(slot);
  ++count_;
}

void EngineImpl::SessionState::Insert(int64_t t, const std::string& session) {
  for (int i = 0; i < count_; ++i) {
    if (times_[i] == t) {  // which of the two comes first is not known: drop what is not after t
      while (times_[0] <= t) DropFirst();
      return;
    }
  }
  int slot;
  if (t < times_[0]) {
    if (!complete_) return;  // not among the latest events: what is known stays true
    // The new first event, if it fits without dropping one after it.
    slot = count_ < kWindow ? SlotFor(session, /*may_drop=*/false) : -1;
    if (slot < 0) {
      complete_ = false;
      return;
    }
  } else {
    // Between two known events. Dropping early ones to free a session's slot keeps it next to the event after it,
    // unless that one goes too (its session was the one to free: client-given sessions need not be contiguous in
    // time); then it is left out, and what stays is still the profile's latest events.
    int next = 0;  // the held event after it
    while (times_[next] < t) ++next;
    const int held = count_;
    slot = SlotFor(session, /*may_drop=*/true);
    if (held - count_ > next) return;  // SlotFor dropped the event after it
    if (count_ == kWindow) {
      if (t < times_[0]) return;  // every event before it was dropped; the window is full
      DropFirst();
    }
  }
  int pos = count_;
  while (pos > 0 && times_[pos - 1] > t) --pos;
  std::memmove(times_ + pos + 1, times_ + pos, (count_ - pos) * sizeof(times_[0]));
  std::memmove(session_of_ + pos + 1, session_of_ + pos, count_ - pos);
  times_[pos] = t;
  session_of_[pos] = static_cast<uint8_t>(slot);
  ++count_;
}

void EngineImpl::SessionState::KeepLatestOnly() {
  if (count_ == 0) return;
  times_[0] = times_[count_ - 1];
  session_of_[0] = session_of_[count_ - 1];
  count_ = 1;
  complete_ = false;
}

// The state of one write under write_mu_ (an Ingest call, or a manual merge): what it has changed so far, visible to
// its later steps, and applied to the engine's caches only once the batch is committed. It is also the identity
// graph as this write sees it (GraphView), with its uncommitted links.
class EngineImpl::IngestContext : public GraphView {
 public:
  IngestContext(EngineImpl* engine, int64_t received_us)
      : engine_(engine),
        store_(engine->store()),
        rules_(*engine->rules_),
        batch_(engine->store()),
        received_us_(received_us) {}
  IngestContext(const IngestContext&) = delete;
  IngestContext& operator=(const IngestContext&) = delete;
  ~IngestContext() { ReleaseTail(); }

  // Hints the CPU to fetch the identity cache's memory for the identifiers of `e` (no effect on results).
  void WarmIdentityCache(const ParsedEvent& e) const {
    for (const std::string& key : e.identity_keys) engine_->identity_cache_.Prefetch(key);
  }

  // Fills `item` for one valid event and adds it to the batch; an event refused (its profile denies tracking)
  // gets its status and changes nothing. An added event's stored form is written from `e` (e.stored, which
  // Ingest makes ahead of resolution) by Prepare: `e` must stay alive and unchanged until Prepare returns.
  Status Add(ParsedEvent& e, BatchItemResult* item) {
    TrackResult* result = &item->result;
    result->event_id = e.id;
    if (horizons_ == nullptr) horizons_ = engine_->retention_horizons();  // raised only under write_mu_
    if (!horizons_->empty() && horizons_->Retired(storage::TimeKey(e.time_us, e.id), e.type, e.name)) {
      item->status = Status::FailedPrecondition(
          fmt::format("the event's time {} is before what retention keeps of its type: the event was not stored",
                      FormatTimestamp(e.time_us)));
      return Status::OK();
    }
    // Resolution is decided first and applied only when the event is not a retry, so that a retry changes nothing.
    EventPlan plan;
    CDP_RETURN_IF_ERROR(PlanEvent(e, &plan));
    if (!engine_->tracking_denied_.empty()) {
      const Resolution& r = plan.resolution;
      const std::string* denied = nullptr;
      if (!r.profile_id.empty() && engine_->TrackingDeniedFor(r.profile_id)) denied = &r.profile_id;
      for (const std::string& m : r.merge) {
        if (denied == nullptr && engine_->TrackingDeniedFor(m)) denied = &m;
      }
      if (denied != nullptr) {
        item->status = Status::FailedPrecondition(
            fmt::format("profile {} has denied tracking consent: the event was not stored", *denied),
            "consent.tracking");
        return Status::OK();
      }
    }
    if (Status s = CheckNotErased(e, plan); !s.ok()) {  // an erased person's identifier or profile id
      item->status = std::move(s);
      return Status::OK();
    }
    if (e.client_id && !plan.create_fixed && !plan.resolution.profile_id.empty()) {
      std::string key = storage::EventKey(plan.resolution.profile_id, e.time_us, e.id);  // batch_keys_ key
      // A retry carries the same id, time and identifiers, so it lands on the same key: a no-op, reported with
      // the original's session. Looked for in this batch, in batches still being written, then in storage.
      result->profile_id = plan.resolution.profile_id;
      if (auto it = batch_keys_.find(key); it != batch_keys_.end()) {
        result->duplicate = true;
        result->session_id = it->second;
        return Status::OK();
      }
      {
        std::lock_guard<std::mutex> keys_lock(engine_->in_flight_keys_mu_);
        if (auto it = engine_->in_flight_keys_.find(key); it != engine_->in_flight_keys_.end()) {
          result->duplicate = true;
          result->session_id = it->second;
          return Status::OK();
        }
      }
      // Not stored if later than every stored event, or than the profile's latest (its session state, when held).
      if (static_cast<uint64_t>(e.time_us) <= engine_->newest_event_key_time_ &&
          !LaterThanAllEventsOf(plan.resolution.profile_id, e.time_us)) {
        std::string existing;
        Status s = store_.Get(storage::Cf::kEventsByTime,
                              storage::TimeIndexKey(e.time_us, e.id, plan.resolution.profile_id), &existing);
        if (s.ok()) {
          result->duplicate = true;
          result->session_id = SessionOf(existing);
          return Status::OK();
        }
        if (!s.IsNotFound()) return s;
      }
    }
    std::string profile_id;
    CDP_RETURN_IF_ERROR(ApplyPlan(e, std::move(plan), &profile_id, result));
    result->profile_id = profile_id;
    if (!e.session_id.empty()) {
      result->session_id = e.session_id;
      CDP_RETURN_IF_ERROR(NoteEventTime(profile_id, e.time_us, e.session_id));
    } else {
      CDP_RETURN_IF_ERROR(AssignSession(profile_id, e.time_us, &result->session_id));
    }
    if (e.client_id) batch_keys_.emplace(storage::EventKey(profile_id, e.time_us, e.id), result->session_id);
    index_.deltas[profile_id].AddEvent(e.time_us, e.purchase, e.purchase_micros);
    ++events_added_;
    if (e.remember != nullptr) Remember(*e.remember, profile_id);
    PendingEvent& pending = pending_events_.emplace_back();
    pending.profile_id = std::move(profile_id);
    pending.time_us = e.time_us;
    pending.id = e.id;
    pending.client_id = e.client_id;
    pending.purchase = e.purchase;
    pending.purchase_micros = e.purchase_micros;
    // Its stored form is written by Prepare, which splits that work over two threads (StoreEvents).
    pending.source = &e;
    pending.session_id = result->session_id;
    return Status::OK();
  }

  // Writes an idempotency key with this write (cdp::IdempotencyKey), its value naming the profile.
  void Remember(const IdempotencyKey& key, const std::string& profile_id) {
    remembers_ = true;
    Json value = key.value;
    value.Set("profileId", profile_id);
    std::string stored;
    storage::AppendBigEndian64(&stored, static_cast<uint64_t>(key.expires_us));
    batch_.Put(storage::Cf::kKeys, storage::RememberedByProfilePrefix(profile_id) + key.key, stored);  // for erasure
    value.DumpTo(&stored);
    batch_.Put(storage::Cf::kKeys, key.key, stored);
  }

  // Resolves the profile an identify names (creating or merging profiles as the rules say) and applies `patch`
  // (a merge patch of attributes, consent and writable computed scores) to it. See Identity::Identify.
  // `refused` receives why an identify is refused (an erased person's identifier); it then changes nothing.
  Status Identify(ParsedEvent& e, IdentifyPatch& change, TrackResult* result, Status* refused) {
    const Json& patch = change.patch;
    result->event_id = e.id;
    if (e.remember != nullptr && e.remember->applied_if_stored_at_us != 0) {  // stored: the identify was applied
      std::string stored;
      Status s = engine_->store().Get(storage::Cf::kKeys, e.remember->key, &stored);
      if (!s.IsNotFound()) {
        CDP_RETURN_IF_ERROR(s);
        if (stored.size() < 8) return Status::DataLoss("a stored key is corrupt");
        if (static_cast<int64_t>(storage::DecodeBigEndian64(stored)) > e.remember->applied_if_stored_at_us) {
          result->profile_id = RememberedProfileId(stored);
          result->duplicate = true;
          return Status::OK();
        }
      }
    }
    EventPlan plan;
    CDP_RETURN_IF_ERROR(PlanEvent(e, &plan));
    if (Status s = CheckNotErased(e, plan); !s.ok()) {
      *refused = std::move(s);
      return Status::OK();
    }
    std::string profile_id;
    const bool patches = patch.is_object() && patch.size() > 0;
    CDP_RETURN_IF_ERROR(
        ApplyPlan(e, std::move(plan), &profile_id, result, "identify", /*sources_stamped_later=*/patches));
    result->profile_id = profile_id;
    if (patches) {
      CDP_ASSIGN_OR_RETURN(Json * doc, MutableProfile(profile_id));
      // The document is rebuilt from its writable parts with the patch applied, and replaces *doc (on a failure the
      // whole batch fails, so parts may be moved out of *doc). A profile this identify created holds only what
      // ApplyPlan put in it: empty consent and computed, the linked email and phone as attributes, externalIds as
      // ExternalIdsOf its identifiers. So its externalIds are moved, not copied and re-derived (maintained keys are
      // moved for every identify); every non-empty attribute is stamped with this identify's source and time (what
      // comparing with the document before gave); and its parts are the patch normalized on its own (IdentifyPatch),
      // with the linked attributes the patch leaves alone kept in front (where ApplyMergePatch leaves them). This was
      // 7% of a bulk import's samples, all under the lock.
      const bool fresh = result->profile_created;
      Json normalized;
      if (fresh && change.normalized.is_object()) {
        normalized = std::move(change.normalized);
        Json* attributes = doc->Find("attributes");
        if (attributes != nullptr && attributes->size() > 0) {
          const Json* patched = patch.Find("attributes");  // absent, or an object (ParseIdentify)
          Json* from_patch = normalized.Find("attributes");
          Json merged = Json::Object();
          for (auto& [key, value] : attributes->members()) {
            if (patched == nullptr || patched->Find(key) == nullptr) {
              merged.Set(key, std::move(value));
            } else if (Json* set = from_patch->Find(key); set != nullptr) {
              merged.Set(key, std::move(*set));  // replaced in place; a null in the patch removed it
            }
          }
          for (auto& [key, value] : from_patch->members()) {
            if (attributes->Find(key) == nullptr) merged.Set(key, std::move(value));
          }
          *from_patch = std::move(merged);
        }
      } else {
        Json parts;
        if (fresh) {
          Json* attributes = doc->Find("attributes");
          parts = Json::Object();
          parts.Set("attributes", attributes != nullptr ? std::move(*attributes) : Json::Object());
          parts.Set("consent", Json::Object());
          parts.Set("computed", Json::Object());
        } else {
          parts = WritableParts(*doc);
        }
        ApplyMergePatch(&parts, patch);
        CDP_ASSIGN_OR_RETURN(normalized, NormalizeProfileInput(parts));
      }
      Json* external_ids = fresh ? doc->Find("externalIds") : nullptr;  // identifiers come from `identifiers`
      normalized.Set("externalIds",
                     external_ids != nullptr ? std::move(*external_ids) : ExternalIdsOf(StoredIdentifiers(*doc)));
      if (fresh && patch.Find("consent") == nullptr) {
        // A created profile's document goes straight to text (DumpCreatedProfile), as the tree below would dump.
        // Without a consent statement there is nothing for the consent history (Prepare), and a later record of
        // this batch that changes the profile parses the text back (Dirty).
        std::string text = DumpCreatedProfile(profile_id, std::move(normalized), *doc, received_us_,
                                              ProvenanceSource(e, "identify"), e.time_us);
        if (text.size() > engine_->options().max_profile_bytes) {
          return Status::ResourceExhausted(fmt::format("profile of {} bytes would be over the limit of {} bytes",
                                                       text.size(), engine_->options().max_profile_bytes));
        }
        dirty_profiles_.erase(profile_id);
        created_texts_.insert_or_assign(profile_id, std::move(text));
        if (e.remember != nullptr) Remember(*e.remember, profile_id);
        return Status::OK();
      }
      Json stored = BuildStoredProfile(profile_id, std::move(normalized), doc, received_us_);
      for (std::string_view key : kMaintainedKeys) {
        if (Json* v = doc->Find(key); v != nullptr) stored.Set(key, std::move(*v));
      }
      StampAttributeSources(&stored, fresh ? nullptr : doc, ProvenanceSource(e, "identify"), e.time_us);
      if (patch.Find("consent") != nullptr) {
        ConsentRecord& note = consent_notes_[profile_id];
        note = ConsentRecord();
        note.via = "identify";
        note.source = ProvenanceSource(e, "identify");
        note.at_us = std::min(e.time_us, received_us_);  // a future timestamp would outrank later statements
      }
      int depth = 0;
      const size_t bytes = SerializedSize(stored, &depth);
      if (bytes > engine_->options().max_profile_bytes) {
        return Status::ResourceExhausted(fmt::format("profile of {} bytes would be over the limit of {} bytes", bytes,
                                                     engine_->options().max_profile_bytes));
      }
      *doc = std::move(stored);
    }
    if (e.remember != nullptr) Remember(*e.remember, profile_id);
    return Status::OK();
  }

  // Merges `others` into `survivor` (see Identity::Merge). `evidence` says what caused it.
  Status Merge(const std::string& survivor, const std::vector<std::string>& others, bool automatic,
               std::string_view reason, Json evidence, std::string* merge_id) {
    // Every event of the merged profiles is in storage before we move them.
    CDP_RETURN_IF_ERROR(engine_->WaitForInFlightWrites(this));
    engine_->tail_.WaitForBackground();  // and no bulk load of their traits lands after this write
    *merge_id = "mrg_" + NewId();
    CDP_ASSIGN_OR_RETURN(Json * survivor_doc, MutableProfile(survivor));
    Json snapshots = Json::Object();
    snapshots.Set(survivor, *survivor_doc);
    Json merged = Json::Array();
    Json decisions = Json::Object();  // per merged profile: the attribute values the merge changed
    for (const std::string& other : others) {
      CDP_ASSIGN_OR_RETURN(Json * doc, MutableProfile(other));
      CDP_ASSIGN_OR_RETURN(survivor_doc, MutableProfile(survivor));  // the map may have rehashed
      snapshots.Set(other, *doc);
      merged.Push(other);
      // Identifiers follow the person.
      std::vector<Identifier> ids = StoredIdentifiers(*survivor_doc);
      for (const Identifier& id : StoredIdentifiers(*doc)) {
        if (std::find(ids.begin(), ids.end(), id) == ids.end()) ids.push_back(id);
        std::string key = IdentityKeyOf(id);
        batch_.Put(storage::Cf::kIdentities, key,
                   storage::EncodeIdentityLink(survivor, "merge " + *merge_id, received_us_));
        pending_identities_[key] = survivor;
      }
      survivor_doc->Set("externalIds", ExternalIdsOf(ids));
      Json changed = Json::Object();
      MergeProfileDocuments(survivor_doc, *doc, other, *merge_id, received_us_, rules_.survivorship(), &changed);
      if (changed.size() > 0) decisions.Set(other, std::move(changed));
      Json redirect = Json::Object();
      redirect.Set("id", other);
      redirect.Set("mergedInto", survivor);
      redirect.Set("mergeId", *merge_id);
      redirect.Set("mergedAt", FormatTimestamp(received_us_));
      *doc = std::move(redirect);
      CDP_RETURN_IF_ERROR(MoveEvents(other, survivor));
      // Computed traits are aggregates: the survivor's plus the merged profile's are those of all their events.
      // The merged profile's (stored, in the tail, and added by this write) move in this write's batch.
      storage::Traits moved = engine_->ReadTraits(other);
      if (auto it = traits_.find(other); it != traits_.end()) {
        moved.Combine(it->second);
        traits_.erase(it);
      }
      if (auto it = index_.deltas.find(other); it != index_.deltas.end()) {
        moved.Combine(it->second);
        index_.deltas.erase(it);
      }
      traits_[survivor].Combine(moved);
      batch_.Delete(storage::Cf::kTraits, other);
      index_.reset.insert(other);
      // The survivor's session state is the later of the two.
      CDP_ASSIGN_OR_RETURN(SessionState * theirs, LatestEvent(other));
      SessionState other_state = *theirs;
      CDP_ASSIGN_OR_RETURN(SessionState * ours, LatestEvent(survivor));
      if (!other_state.empty() && (ours->empty() || other_state.last_us() > ours->last_us())) *ours = other_state;
      ours->KeepLatestOnly();  // the events before the latest may be the other's
      staged_sessions_.erase(other);
      merged_away_.push_back(other);
      redirects_[other] = survivor;
      batch_.Put(storage::Cf::kMerges, storage::ProfileMergeKey(other, *merge_id), {});
      --profiles_created_;
    }
    batch_.Put(storage::Cf::kMerges, storage::ProfileMergeKey(survivor, *merge_id), {});
    ConsentRecord& note = consent_notes_[survivor];
    note = ConsentRecord();
    note.via = "merge";
    note.source = automatic ? "identity resolution" : "identity.merge";
    note.merge_id = *merge_id;
    Json record = Json::Object();
    record.Set("mergeId", *merge_id);
    record.Set("survivor", survivor);
    record.Set("merged", std::move(merged));
    record.Set("reason", reason);
    record.Set("automatic", automatic);
    record.Set("evidence", std::move(evidence));
    record.Set("at", FormatTimestamp(received_us_));
    record.Set("snapshots", std::move(snapshots));
    record.Set("survivorship", std::move(decisions));
    batch_.Put(storage::Cf::kMerges, storage::MergeRecordKey(*merge_id), record.Dump());
    ++merges_;
    merged_profiles_ += static_cast<int64_t>(others.size());
    return Status::OK();
  }

  // The live profile an id names: itself, or the survivor it was merged into; "" when it does not exist.
  Result<std::string> LiveId(const std::string& id) {
    std::string current = id;
    for (int hop = 0; hop < 64; ++hop) {
      if (auto it = redirects_.find(current); it != redirects_.end()) {
        current = it->second;
        continue;
      }
      if (auto it = engine_->redirects_.find(current); it != engine_->redirects_.end()) {
        current = it->second;
        continue;
      }
      if (staged_sessions_.contains(current) || engine_->sessions_.contains(current)) return current;
      if (created_texts_.contains(current)) return current;  // created by this batch: not merged
      const Json* doc = nullptr;
      if (auto it = dirty_profiles_.find(current); it != dirty_profiles_.end()) {
        doc = &it->second;
      } else {
        CDP_ASSIGN_OR_RETURN(doc, ReadProfile(current));
        if (doc == nullptr) return std::string();
      }
      const Json* into = doc->Find("mergedInto");
      if (into == nullptr) return current;
      redirects_[current] = into->as_string();
      current = into->as_string();
    }
    return Status::DataLoss(fmt::format("profile {} has a merge chain longer than 64", id));
  }

  // GraphView.
  Result<std::string> Owner(const Identifier& id) override { return LookupIdentity(IdentityKeyOf(id)); }
  Result<std::vector<Identifier>> IdentifiersOf(const std::string& profile_id) override {
    CDP_ASSIGN_OR_RETURN(Json * dirty, Dirty(profile_id));
    if (dirty != nullptr) return StoredIdentifiers(*dirty);
    CDP_ASSIGN_OR_RETURN(const Json* doc, ReadProfile(profile_id));
    if (doc == nullptr) return std::vector<Identifier>{};
    return StoredIdentifiers(*doc);
  }
  Result<bool> IsHub(const Identifier& id) override {
    CDP_ASSIGN_OR_RETURN(std::string_view set, HubSet(IdentityKeyOf(id)));
    return IsHubSet(set);
  }
  // Whether a hub set (8-byte hashes; empty: none) makes its value a hub under the rules in force.
  bool IsHubSet(std::string_view set) const { return set.size() / 8 > static_cast<size_t>(rules_.hub_threshold()); }

  // Completes the batch (events, profile documents, trait merge operands, counters). Returns whether it writes
  // profile documents, which must reach storage in the order they were built. With `defer_documents`, the
  // documents are dumped into the batch later, by PutDocuments, which must then be called before the write: a batch
  // in flight dumps them after write_mu_ is released (6% of a bulk import's samples were this dump under the lock).
  bool Prepare(bool defer_documents = false) {
    StoreEvents();
    for (const PendingEvent& p : pending_events_) {
      batch_.Put(storage::Cf::kEventsByTime, storage::TimeIndexKey(p.time_us, p.id, p.profile_id), p.value);
      // A new event counts in its profile's traits unless a merge in this batch moved it (and its aggregate).
      index_.Add(p.profile_id, storage::TimeKey(p.time_us, p.id), !p.moved);
    }
    index_.new_events = events_added_;  // counted by the tail (EventTail::EventCount), not a counter operand
    engine_->tail_.Log(index_, &batch_);
    for (auto& [id, doc] : dirty_profiles_) {
      // Consent changes (an identify's, a merge's) go to the history; a merged profile's tracking marker goes.
      const Json* before = nullptr;
      if (auto it = read_profiles_.find(id); it != read_profiles_.end() && it->second) {
        before = it->second->Find("consent");
      }
      ConsentRecord note;
      if (auto it = consent_notes_.find(id); it != consent_notes_.end()) note = it->second;
      if (note.via.empty()) note.via = "identify";
      if (note.source.empty()) note.source = note.via;
      engine_->NoteConsent(&batch_, id, before, doc.Find("consent"), std::move(note), &tracking_);
    }
    for (const auto& [id, text] : created_texts_) {  // created without a consent statement: consent {}
      static const Json kNoConsent = Json::Object();
      const Json* before = nullptr;
      if (auto it = read_profiles_.find(id); it != read_profiles_.end() && it->second) {
        before = it->second->Find("consent");
      }
      ConsentRecord note;
      note.via = note.source = "identify";
      engine_->NoteConsent(&batch_, id, before, &kNoConsent, std::move(note), &tracking_);
    }
    for (auto& [id, traits] : traits_) batch_.Merge(storage::Cf::kTraits, id, traits.Encode());
    if (profiles_created_ != 0) store_.AddToCounter(&batch_, "profiles", profiles_created_);
    if (merges_ > 0) store_.AddToCounter(&batch_, "merges", merges_);
    if (merged_profiles_ > 0) store_.AddToCounter(&batch_, "merged_profiles", merged_profiles_);
    const bool writes_documents = !dirty_profiles_.empty() || !created_texts_.empty();
    documents_pending_ = writes_documents;
    if (!defer_documents) PutDocuments();
    return writes_documents;
  }
  // Dumps the profile documents into the batch (once; see Prepare): those StageDocuments holds, else the batch's.
  // A bulk import's documents are dumped on two threads while a core is free (a tenth of its time on one). A staged
  // document is destroyed as soon as it is dumped, while its memory is still in the CPU cache (destroyed after the
  // write, it was 4.8% of a bulk import's samples, 1.3% here): later batches read the text it was dumped to.
  void PutDocuments() {
    if (!documents_pending_) return;
    documents_pending_ = false;
    std::vector<std::pair<const std::string*, const Json*>> docs;
    if (!staged_.empty()) {
      for (const auto& [id, doc] : staged_) docs.emplace_back(id, doc.get());
    } else {
      for (const auto& [id, doc] : dirty_profiles_) docs.emplace_back(&id, &doc);
    }
    dumped_.resize(docs.size());  // not resized again: in_flight_docs_ points at its strings
    RunOnTwoThreads(docs.size(), /*parallel_from=*/256, [&](size_t begin, size_t end) {
      for (size_t i = begin; i < end; ++i) {
        dumped_[i] = docs[i].second->Dump();
        if (staged_.empty()) continue;
        {
          std::lock_guard<std::mutex> lock(engine_->in_flight_docs_mu_);
          if (auto it = engine_->in_flight_docs_.find(*docs[i].first);
              it != engine_->in_flight_docs_.end() && it->second.ticket == staged_ticket_) {
            it->second.doc = nullptr;
            it->second.text = &dumped_[i];
          }
        }
        staged_[i].second = nullptr;  // destroys it, unless a reader holds it right now
      }
    });
    for (size_t i = 0; i < docs.size(); ++i) batch_.Put(storage::Cf::kProfiles, *docs[i].first, dumped_[i]);
    for (const auto& [id, text] : created_texts_) batch_.Put(storage::Cf::kProfiles, id, text);
  }
  // Reads in two batched reads (Store::MultiGet) the owners and hub sets of the identifiers of events[begin, end)
  // (those whose status is OK) that neither this batch nor the engine's cache knows, so that resolving them reads
  // nothing more: a new value cost two point reads, an eighth of a 1,000,000-record import's calling thread.
  // What it reads is what resolution would have read: a value this batch or one in flight linked is never read
  // here (this batch's links and hub sets are in the pending maps, those of a batch in flight in the engine's
  // cache, which is not cleared while batches are in flight: CachesWouldOverflow), and every other write of the
  // identities column family holds write_mu_ and settles the batches in flight first.
  Status Prefetch(const std::vector<ParsedEvent>& events, const std::vector<Status>* statuses, size_t begin,
                  size_t end) {
    std::vector<std::string> owner_keys, hub_keys, hub_of;  // a key asked twice is answered twice, the same
    for (size_t i = begin; i < end; ++i) {
      if (statuses != nullptr && !(*statuses)[i].ok()) continue;
      for (const Identifier& id : events[i].identifiers) {
        std::string key = IdentityKeyOf(id);
        const IdentityCache::Entry* cached = engine_->identity_cache_.Find(key);
        const bool cached_owner = cached != nullptr && cached->owner_known();
        const bool cached_hubs = cached != nullptr && cached->hubs_known();
        if (!cached_hubs && !pending_hubs_.contains(key)) {
          hub_keys.push_back(storage::HubKey(key));
          hub_of.push_back(key);
        }
        if (!cached_owner && !pending_identities_.contains(key) && !absent_owners_.contains(key)) {
          owner_keys.push_back(std::move(key));
        }
      }
    }
    std::vector<std::string> values;
    std::vector<bool> found;
    if (!owner_keys.empty()) {
      CDP_RETURN_IF_ERROR(store_.MultiGet(storage::Cf::kIdentities, owner_keys, &values, &found));
      for (size_t k = 0; k < owner_keys.size(); ++k) {
        if (found[k]) {
          pending_identities_.emplace(owner_keys[k], storage::DecodeIdentityLink(values[k]).profile_id);
        } else {
          absent_owners_.insert(std::move(owner_keys[k]));
        }
      }
    }
    if (!hub_keys.empty()) {
      CDP_RETURN_IF_ERROR(store_.MultiGet(storage::Cf::kIdentities, hub_keys, &values, &found));
      for (size_t k = 0; k < hub_keys.size(); ++k) pending_hubs_.emplace(hub_of[k], std::move(values[k]));
    }
    return Status::OK();
  }

  bool empty() const { return batch_.Count() == 0 && !documents_pending_; }
  // Whether the batch writes an idempotency key (Remember).
  bool remembers() const { return remembers_; }
  // Whether publishing the batch would clear the identity or session cache (one is full): a batch in flight relies
  // on its links and sessions staying cached until it is written.
  bool CachesWouldOverflow() const {
    return engine_->identity_cache_.size() + std::max(pending_identities_.size(), pending_hubs_.size()) >
               kMaxIdentityCache ||
           engine_->sessions_.size() + staged_sessions_.size() > kMaxSessionCache;
  }
  // Whether matching on write was on when the batch began (read once: the batch tells the matcher by it).
  bool matching_on_write() const { return matching_on_write_; }
  // Makes the batch's documents readable by later batches until UnstageDocuments(ticket). They move out of the
  // batch's profiles into shared, immutable documents, read at once by later batches (which copy them) and by
  // PutDocuments (which dumps them); the batch's profiles are not read after this (Publish reads their ids).
  void StageDocuments(uint64_t ticket) {
    staged_ticket_ = ticket;
    staged_.reserve(dirty_profiles_.size());
    for (auto& [id, doc] : dirty_profiles_) staged_.emplace_back(&id, std::make_shared<const Json>(std::move(doc)));
    std::lock_guard<std::mutex> lock(engine_->in_flight_docs_mu_);
    for (const auto& [id, doc] : staged_) engine_->in_flight_docs_[*id] = {ticket, doc};
    for (const auto& [id, text] : created_texts_) engine_->in_flight_docs_[id] = {ticket, nullptr, &text};
  }
  // After the write (done or failed): drops the staged documents no later batch has replaced.
  void UnstageDocuments(uint64_t ticket) {
    std::lock_guard<std::mutex> lock(engine_->in_flight_docs_mu_);
    auto unstage = [&](const std::string& id) {
      if (auto it = engine_->in_flight_docs_.find(id);
          it != engine_->in_flight_docs_.end() && it->second.ticket == ticket) {
        engine_->in_flight_docs_.erase(it);
      }
    };
    for (const auto& [id, doc] : staged_) unstage(*id);
    for (const auto& [id, text] : created_texts_) unstage(id);
  }
  // After Publish: gives the documents the batch built and read to `free`, to be destroyed on another thread
  // (destroying a bulk import's thousands of documents was a twentieth of its time). Small batches keep them.
  void ReleaseTo(DeferredFree* free) {
    if (dirty_profiles_.size() + created_texts_.size() + read_profiles_.size() + pending_events_.size() < 64) return;
    free->Give(std::make_tuple(std::move(dirty_profiles_), std::move(created_texts_), std::move(read_profiles_),
                               std::move(pending_events_), std::move(staged_), std::move(dumped_)));
  }
  // Event keys with caller-given ids, and their sessions (for retries racing this batch's write).
  const absl::flat_hash_map<std::string, std::string>& client_keys() const { return batch_keys_; }
  storage::WriteBatch* batch() { return &batch_; }
  // Held by a write that must follow every batch in flight (a merge); see EngineImpl::WaitForInFlightWrites.
  std::unique_lock<std::shared_mutex>& exclusive() { return exclusive_; }
  bool holds_exclusive() const { return exclusive_.owns_lock(); }

  // Puts the batch's links and hub sets (the pending maps, moved out) into the engine's identity cache; Publish
  // does it if no one did before. A caller may run it on a second thread while the batch is written (it touches
  // nothing else, and the cache is guarded by write_mu_, which the caller holds): it must then clear the cache if
  // the write fails.
  void PublishIdentities() {
    if (identities_published_) return;
    identities_published_ = true;
    // The two pending maps mostly name the same values (one entry each in the cache).
    if (engine_->identity_cache_.size() + std::max(pending_identities_.size(), pending_hubs_.size()) >
        kMaxIdentityCache) {
      engine_->identity_cache_.ClearKeepingRoom();  // a bulk import that filled it fills it again
    }
    for (const auto& [key, id] : pending_identities_) {
      if (auto hubs = pending_hubs_.find(key); hubs != pending_hubs_.end()) {
        engine_->identity_cache_.Set(key, id, hubs->second);
      } else {
        engine_->identity_cache_.SetOwner(key, id);
      }
    }
    for (const auto& [key, set] : pending_hubs_) {
      if (!pending_identities_.contains(key)) engine_->identity_cache_.SetHubs(key, set);
    }
  }

  // The batch's index entries and trait deltas (Prepare made them) go to the engine's event tail in Publish, unless
  // handed off: then to whichever of this thread (SettleTail) and a helper (ApplyHandedOffTail) claims `claim`
  // first, from the moment the batch is built (on this thread they were half of Publish, about 4% of an event
  // batch's time). Only for a batch written in flight, which has none to remove or reset (merges are not written in
  // flight): nothing built under write_mu_ meanwhile reads them (later batches know its profiles from the session
  // and identity caches Publish fills), and whatever reads the index for a write (a merge, a tail flush, an erasure)
  // first waits for every batch in flight, which settles them before it leaves commit_mu_. `claim` (0 free, 1 being
  // applied, 2 done) must outlive the helper's task.
  void HandOffTail(std::atomic<int>* claim) { tail_claim_ = claim; }
  // Once the batch is written (`written`), returns once the tail holds its entries: applies them unless the helper
  // claimed them first. Else leaves them out, unless the helper already applied them (the engine then refuses
  // writes, as after any failed write in flight). WriteInFlight calls it after every write attempt.
  void SettleTail(bool written) {
    if (tail_claim_ == nullptr) return;
    if (!written) {
      ReleaseTail();
    } else if (!ApplyHandedOffTail(this, tail_claim_)) {
      WaitForTail();
    }
  }
  // The helper's side: applies the entries of `context`, handed off with `claim`, if nobody claimed them yet, and
  // returns whether it did. Touches `context` only then: once the claim is lost, the context may be gone.
  static bool ApplyHandedOffTail(IngestContext* context, std::atomic<int>* claim) {
    int expected = 0;
    if (!claim->compare_exchange_strong(expected, 1, std::memory_order_acq_rel)) return false;
    context->engine_->tail_.Apply(std::move(context->index_));
    claim->store(2, std::memory_order_release);  // `context` may be destroyed from here on
    claim->notify_all();
    return true;
  }

  // Makes the batch's session, identity and merge changes visible to later batches.
  void Publish() {
    engine_->ApplyTrackingChanges(tracking_);
    for (const PendingEvent& p : pending_events_) {
      engine_->newest_event_key_time_ = std::max(engine_->newest_event_key_time_, static_cast<uint64_t>(p.time_us));
    }
    if (tail_claim_ == nullptr) engine_->tail_.Apply(std::move(index_));
    if (matching_on_write_) {
      std::vector<std::string> written;
      for (const auto& [id, doc] : dirty_profiles_) written.push_back(id);
      for (const auto& [id, text] : created_texts_) written.push_back(id);
      engine_->identity_.NotifyWritten(std::move(written));
    }
    if (engine_->segments_.tracking()) {  // documents, events and merges change what segments see
      // A profile whose events moved (a merge) is reloaded whole; one whose document this batch wrote has its
      // document re-read; new events are added as they are.
      std::vector<std::string> moved, survivors, documents, documents_with_events;
      std::vector<SegmentsImpl::NewEvent> added;
      absl::flat_hash_set<std::string_view> reloaded;
      for (const std::string& id : merged_away_) reloaded.insert(id);
      for (const auto& [survivor, events] : moved_in_) reloaded.insert(survivor);
      absl::flat_hash_set<std::string_view> evented;
      for (const PendingEvent& p : pending_events_) {
        if (p.moved) reloaded.insert(p.profile_id);
      }
      for (const PendingEvent& p : pending_events_) {
        if (reloaded.contains(p.profile_id)) {
          if (evented.insert(p.profile_id).second) moved.push_back(p.profile_id);
        } else {
          evented.insert(p.profile_id);
          added.push_back(
              {p.profile_id, p.time_us, p.indexed.empty() ? p.value : p.indexed, p.purchase, p.purchase_micros});
        }
      }
      auto written = [&](const std::string& id) {
        if (reloaded.contains(id)) {
          if (!evented.contains(id) && !redirects_.contains(id)) survivors.push_back(id);
        } else {
          (evented.contains(id) ? documents_with_events : documents).push_back(id);
        }
      };
      for (const auto& [id, doc] : dirty_profiles_) written(id);
      for (const auto& [id, text] : created_texts_) written(id);
      engine_->segments_.NotifyEvents(std::move(added));
      engine_->segments_.NotifyDocument(std::move(documents_with_events), "event");
      engine_->segments_.NotifyDocument(std::move(documents), "profile");
      engine_->segments_.NotifyChanged(std::move(moved), "event");
      engine_->segments_.NotifyChanged(std::move(survivors), "merge");
      engine_->segments_.NotifyChanged(merged_away_, "merge");
    }
    if (engine_->sessions_.size() + staged_sessions_.size() > kMaxSessionCache) engine_->sessions_.clear();
    for (const std::string& id : merged_away_) engine_->sessions_.erase(id);
    for (auto& [id, state] : staged_sessions_) engine_->sessions_[id] = std::move(state);
    PublishIdentities();
    if (engine_->redirects_.size() + redirects_.size() > kMaxIdentityCache) engine_->redirects_.clear();
    for (auto& [from, to] : redirects_) engine_->redirects_[from] = std::move(to);
  }

 private:
  void WaitForTail() const {
    for (int state; (state = tail_claim_->load(std::memory_order_acquire)) != 2;) tail_claim_->wait(state);
  }
  // Handed-off entries not claimed by now are left out (SettleTail ran, or an error returned before the write); a
  // helper applying them is waited for: it touches this context only once it has claimed them.
  void ReleaseTail() {
    if (tail_claim_ == nullptr) return;
    int expected = 0;
    if (tail_claim_->compare_exchange_strong(expected, 2, std::memory_order_acq_rel)) return;
    WaitForTail();
  }

  std::shared_ptr<const RetentionHorizons> horizons_;  // the retention horizons in force (Add)
  std::atomic<int>* tail_claim_ = nullptr;             // HandOffTail

  struct PendingEvent {
    std::string profile_id;
    int64_t time_us = 0;
    std::string id;
    bool client_id = false;
    // Until StoreEvent: the parsed event (the caller's, alive until Prepare returns) and its session.
    const ParsedEvent* source = nullptr;
    std::string session_id;
    std::string value;      // the stored document (StoreEvent)
    bool moved = false;     // a merge in this batch moved it (its trait delta went with the merged aggregate)
    std::string indexed;    // what the segment index keeps of it (AppendIndexedEvent), when segments are tracked
    bool purchase = false;  // its trait delta, for the segment index
    int64_t purchase_micros = 0;
  };

  // Writes a pending event's stored form (and what the segment index keeps of it, when segments are tracked) from
  // its parsed event's stored parts, with the profile and session Add gave it; then forgets the parsed event. Done
  // once.
  void StoreEvent(PendingEvent* p, bool indexed) const {
    if (p->source == nullptr) return;
    AppendStoredEvent(p->source->stored, p->profile_id, p->session_id, &p->value);
    if (indexed) AppendIndexedEvent(*p->source, p->session_id, &p->indexed);
    p->source = nullptr;
  }
  void StoreEvent(PendingEvent* p) const { StoreEvent(p, engine_->segments_.tracking()); }
  // StoreEvent for every pending event. On this thread: with the parts made ahead, an event is a copy of its text
  // (0.15 us), and splitting a batch's over two threads cost more than it saved (Prepare 0.070 s against 0.088-0.099
  // s for 200,000 events, cdp_bench --steps b).
  void StoreEvents() {
    const bool indexed = engine_->segments_.tracking();
    for (PendingEvent& p : pending_events_) StoreEvent(&p, indexed);
  }

  struct EventPlan {
    Resolution resolution;                   // profile_id empty: a new profile
    bool create_fixed = false;               // the event names a profile id that does not exist: create it
    std::vector<IgnoredIdentifier> ignored;  // invalid or blocked values
  };

  // Normalizes the event's identifiers and decides its profile, without changing anything.
  Status PlanEvent(ParsedEvent& e, EventPlan* plan) {
    if (!e.normalized) NormalizeIdentifiers(rules_, &e);
    plan->ignored = e.ignored_identifiers;
    std::string fixed;
    if (!e.profile_id.empty()) {
      CDP_ASSIGN_OR_RETURN(fixed, LiveId(e.profile_id));
      if (fixed.empty()) {
        fixed = e.profile_id;
        plan->create_fixed = true;
      }
    }
    if (!plan->create_fixed) {
      CDP_ASSIGN_OR_RETURN(bool held, ResolveHeld(e.identifiers, e.identity_keys, fixed, &plan->resolution));
      if (held) return Status::OK();
    }
    CDP_ASSIGN_OR_RETURN(plan->resolution, Resolve(rules_, *this, e.identifiers, fixed));
    return Status::OK();
  }

  // FailedPrecondition when the plan would link an erased person's identifier, store one it does not link (dropped
  // for a limit or as a hub: the event and identityIssues would keep its value), or create a profile under an
  // erased profile's id (suppression, Gdpr). Identifiers the plan neither links nor drops are held by a live
  // profile, so they are not an erased person's (their links went with the erasure, and relinking was refused).
  Status CheckNotErased(const ParsedEvent& e, const EventPlan& plan) const {
    CDP_RETURN_IF_ERROR(engine_->CheckNotSuppressed(plan.resolution.attach));
    if (!plan.resolution.ignored.empty()) {
      std::vector<Identifier> dropped;
      for (const IgnoredIdentifier& why : plan.resolution.ignored) dropped.push_back({why.type, why.value});
      CDP_RETURN_IF_ERROR(engine_->CheckNotSuppressed(dropped));
    }
    if (plan.create_fixed) {
      return engine_->CheckNotSuppressed({Identifier{std::string(kErasedProfileIdType), e.profile_id}});
    }
    return Status::OK();
  }

  // Applies a plan: creates the profile, merges profiles, links new identifiers, notes ignored ones.
  // `what` names the kind of input in the evidence of links and merges ("event", "identify"). With
  // `sources_stamped_later`, attributes Link fills get no attributeSources entry: the caller's
  // StampAttributeSources, with the same source and time, gives them one.
  Status ApplyPlan(const ParsedEvent& e, EventPlan plan, std::string* profile_id, TrackResult* result,
                   std::string_view what = "event", bool sources_stamped_later = false) {
    Resolution& r = plan.resolution;
    bool created = false;
    if (plan.create_fixed) {
      CreateProfile(r.profile_id);
      created = true;
    } else if (r.profile_id.empty()) {
      r.profile_id = NewId();
      CreateProfile(r.profile_id);
      created = true;
    }
    *profile_id = r.profile_id;
    if (!r.merge.empty()) {
      Json evidence = Json::Object();
      if (!r.evidence.type.empty()) {
        Json identifier = Json::Object();
        identifier.Set("type", r.evidence.type);
        identifier.Set("value", r.evidence.value);
        evidence.Set("identifier", std::move(identifier));
      }
      evidence.Set(what == "event" ? "eventId" : "identifyId", e.id);
      if (!e.profile_id.empty()) evidence.Set("profileId", e.profile_id);
      CDP_RETURN_IF_ERROR(Merge(r.profile_id, r.merge, /*automatic=*/true, "", std::move(evidence), &result->merge_id));
      result->merged_profiles = r.merge;
    }
    if (!r.attach.empty()) {
      CDP_RETURN_IF_ERROR(Link(r.profile_id, r.attach, std::string(what) + " " + e.id, ProvenanceSource(e, what),
                               e.time_us, !sources_stamped_later));
    }
    if (created || !r.attach.empty() || !r.merge.empty()) {
      std::vector<uint64_t> added;
      CDP_RETURN_IF_ERROR(UpdateHubs(e.identifiers, &added));
      if (!added.empty()) {  // kept on the profile, for its erasure to scrub (NoteHubHashes)
        CDP_ASSIGN_OR_RETURN(Json * doc, MutableProfile(r.profile_id));
        NoteHubHashes(doc, added);
      }
    }
    std::vector<IgnoredIdentifier>& ignored = plan.ignored;
    for (IgnoredIdentifier& why : r.ignored) ignored.push_back(std::move(why));
    result->profile_created = created;
    if (!ignored.empty()) {
      Json list = Json::Array();
      for (const IgnoredIdentifier& why : ignored) list.Push(why.ToJson());
      result->ignored_identifiers = std::move(list);
      CDP_RETURN_IF_ERROR(NoteIssues(r.profile_id, ignored));
    }
    return Status::OK();
  }

  void CreateProfile(const std::string& id) {
    // What BuildStoredProfile(id, empty parts, nullptr, received_us_) builds, with the time the batch formatted.
    Json doc = Json::Object();
    doc.Set("id", id);
    for (const char* key : {"externalIds", "attributes", "consent", "computed"}) doc.Set(key, Json::Object());
    doc.Set("createdAt", received_at_);
    doc.Set("updatedAt", received_at_);
    dirty_profiles_.emplace(id, std::move(doc));
    created_.insert(id);
    ++profiles_created_;
  }

  // The source of attribute values an event or identify sets: its "source", else the kind of input.
  static std::string_view ProvenanceSource(const ParsedEvent& e, std::string_view what) {
    return e.source.empty() ? what : std::string_view(e.source);
  }

  // Links identifiers nobody holds to a profile, rebuilding its externalIds once. An email or phone also fills the
  // attribute when empty (the first of its type), with provenance {source, at_us} when `stamp_sources`.
  Status Link(const std::string& profile_id, const std::vector<Identifier>& ids, std::string_view evidence,
              std::string_view source, int64_t at_us, bool stamp_sources = true) {
    CDP_ASSIGN_OR_RETURN(Json * doc, MutableProfile(profile_id));
    std::vector<Identifier> held = StoredIdentifiers(*doc);
    held.insert(held.end(), ids.begin(), ids.end());
    doc->Set("externalIds", ExternalIdsOf(held));
    Json* attributes = doc->Find("attributes");
    for (const Identifier& id : ids) {
      if ((id.type == "email" || id.type == "phone") && attributes != nullptr && attributes->Find(id.type) == nullptr) {
        attributes->Set(id.type, id.value);
        if (stamp_sources) {
          SetAttributeSource(doc, "attributes." + id.type, source, at_us);
          attributes = doc->Find("attributes");  // SetAttributeSource may have moved it
        }
      }
      std::string key = IdentityKeyOf(id);
      batch_.Put(storage::Cf::kIdentities, key, storage::EncodeIdentityLink(profile_id, evidence, received_us_));
      pending_identities_[std::move(key)] = profile_id;
    }
    doc->Set("updatedAt", FormatTimestamp(received_us_));
    return Status::OK();
  }

  // Records identifier values that are not used for matching on the profile (once per value and reason).
  Status NoteIssues(const std::string& profile_id, const std::vector<IgnoredIdentifier>& ignored) {
    CDP_ASSIGN_OR_RETURN(const Json* doc, Dirty(profile_id));
    if (doc == nullptr) {
      CDP_ASSIGN_OR_RETURN(doc, ReadProfile(profile_id));
    }
    std::vector<const IgnoredIdentifier*> fresh;
    const Json* issues = doc != nullptr ? doc->Find("identityIssues") : nullptr;
    for (const IgnoredIdentifier& why : ignored) {
      Json j = why.ToJson();
      bool known = false;
      if (issues != nullptr) {
        for (const Json& issue : issues->items()) known = known || issue == j;
      }
      if (!known) fresh.push_back(&why);
    }
    if (fresh.empty()) return Status::OK();
    CDP_ASSIGN_OR_RETURN(Json * mutable_doc, MutableProfile(profile_id));
    AppendIdentityIssues(mutable_doc, fresh);
    return Status::OK();
  }

  // Adds the high-priority values among `ids` to the hub sets of the lower-priority ones; `added` receives the
  // hashes it added to some set.
  Status UpdateHubs(const std::vector<Identifier>& ids, std::vector<uint64_t>* added) {
    for (const Identifier& x : ids) {
      const int px = rules_.Priority(x.type);
      std::string key = IdentityKeyOf(x);
      std::string* updated = nullptr;
      for (const Identifier& h : ids) {
        if (!rules_.IsHighPriority(h.type) || rules_.Priority(h.type) >= px) continue;
        CDP_ASSIGN_OR_RETURN(std::string_view set, HubSet(key));
        if (IsHubSet(set)) break;
        uint64_t hash = StableHash(h.type, h.value);  // stored: must not change between processes
        std::string_view bytes(reinterpret_cast<const char*>(&hash), 8);
        bool seen = false;
        for (size_t i = 0; i + 8 <= set.size(); i += 8) seen = seen || set.substr(i, 8) == bytes;
        if (seen) continue;
        // `set` is the pending set itself once the key is pending: inserting the key then moves nothing.
        const bool pending = pending_hubs_.contains(key);
        updated = &pending_hubs_[key];
        if (!pending) *updated = set;  // from the engine's cache (or the empty set)
        updated->append(bytes);
        if (std::find(added->begin(), added->end(), hash) == added->end()) added->push_back(hash);
      }
      if (updated != nullptr) batch_.Put(storage::Cf::kIdentities, storage::HubKey(key), *updated);
    }
    return Status::OK();
  }

  // The hub set of a value (8-byte hashes; empty: none). The view is valid until the next call that may add to the
  // batch's pending maps.
  Result<std::string_view> HubSet(const std::string& key) {
    if (auto it = pending_hubs_.find(key); it != pending_hubs_.end()) return std::string_view(it->second);
    if (const IdentityCache::Entry* cached = engine_->identity_cache_.Find(key); cached && cached->hubs_known()) {
      return cached->hubs();
    }
    std::string value;
    Status s = store_.Get(storage::Cf::kIdentities, storage::HubKey(key), &value);
    if (!s.ok() && !s.IsNotFound()) return s;
    // Absent is cached as an empty set, so the next event with this value reads nothing (Prefetch does the same
    // for many values at once). Within a batch only UpdateHubs writes hub sets, in the pending map; the other
    // writers (profile writes, erasure's scrub, rule changes) drop the values' cache entries.
    return std::string_view(pending_hubs_[key] = std::move(value));
  }

  // Moves every event of `from` (stored, and added by this batch) to `to`. Events remember the profile they were
  // first stored under (originProfileId).
  Status MoveEvents(const std::string& from, const std::string& to) {
    auto rewrite = [&](std::string_view stored, std::string* out) {
      auto doc = Json::Parse(stored);
      if (!doc.ok()) return false;
      if (doc->Find("originProfileId") == nullptr) {
        const Json* was = doc->Find("profileId");
        doc->Set("originProfileId", was != nullptr ? *was : Json(from));
      }
      doc->Set("profileId", to);
      *out = doc->Dump();
      return true;
    };
    std::string value, document;
    ProfileEvents events(store_, engine_->tail_, from);
    for (; events.Valid(); events.Next()) {
      Status s = events.Read(&document);
      if (s.IsNotFound()) continue;
      CDP_RETURN_IF_ERROR(s);
      const int64_t t = events.time_us();
      const std::string time_key(events.time_key());
      const std::string_view id = storage::TimeKeyEventId(time_key);
      if (!rewrite(document, &value)) return Status::DataLoss("a stored event is corrupt");
      batch_.Delete(storage::Cf::kEvents, storage::EventKey(from, t, id));
      batch_.Delete(storage::Cf::kEventsByTime, storage::TimeIndexKey(t, id, from));
      batch_.Put(storage::Cf::kEventsByTime, storage::TimeIndexKey(t, id, to), value);
      index_.removed.emplace_back(from, time_key);
      index_.Add(to, time_key, /*counts=*/false);  // no trait delta: Merge moves the aggregate
      moved_in_[to].push_back({t, std::string(id), value});
    }
    CDP_RETURN_IF_ERROR(events.status());
    // Events an earlier merge of this batch moved into `from` are in the batch only: move them on.
    if (auto it = moved_in_.find(from); it != moved_in_.end()) {
      std::vector<MovedEvent> moved = std::move(it->second);
      moved_in_.erase(it);
      for (MovedEvent& m : moved) {
        const std::string time_key = storage::TimeKey(m.time_us, m.id);
        if (!rewrite(m.value, &value)) return Status::Internal("an event of this batch does not parse");
        batch_.Delete(storage::Cf::kEventsByTime, storage::TimeIndexKey(m.time_us, m.id, from));
        batch_.Put(storage::Cf::kEventsByTime, storage::TimeIndexKey(m.time_us, m.id, to), value);
        index_.RemoveAdded(from, time_key);
        index_.Add(to, time_key, /*counts=*/false);
        m.value = std::move(value);
        moved_in_[to].push_back(std::move(m));
      }
    }
    for (PendingEvent& p : pending_events_) {
      if (p.profile_id != from) continue;
      if (p.client_id) {
        auto it = batch_keys_.find(storage::EventKey(from, p.time_us, p.id));
        if (it != batch_keys_.end()) {
          std::string session = std::move(it->second);
          batch_keys_.erase(it);
          batch_keys_.emplace(storage::EventKey(to, p.time_us, p.id), std::move(session));
        }
      }
      StoreEvent(&p);
      if (!rewrite(p.value, &value)) return Status::Internal("an event of this batch does not parse");
      p.value = std::move(value);
      p.profile_id = to;
      p.moved = true;
    }
    if (auto it = batch_times_.find(from); it != batch_times_.end()) {
      std::vector<std::pair<int64_t, std::string>> times = std::move(it->second);
      batch_times_.erase(it);
      auto& into = batch_times_[to];  // may rehash: `it` is gone by now
      into.insert(into.end(), std::make_move_iterator(times.begin()), std::make_move_iterator(times.end()));
    }
    return Status::OK();
  }

  // The profile owning an identifier, or empty.
  Result<std::string> LookupIdentity(const std::string& key) {
    CDP_ASSIGN_OR_RETURN(std::string_view owner, FindOwner(key));
    return std::string(owner);
  }

  // As LookupIdentity, without copying: the owner, or empty when the value is unlinked. The view is valid until
  // the next call that may add to the batch's pending maps.
  Result<std::string_view> FindOwner(const std::string& key) {
    if (auto it = pending_identities_.find(key); it != pending_identities_.end()) return std::string_view(it->second);
    if (const IdentityCache::Entry* cached = engine_->identity_cache_.Find(key); cached && cached->owner_known()) {
      return cached->owner();
    }
    if (absent_owners_.contains(key)) return std::string_view();  // read by Prefetch; a link since is pending above
    std::string value;
    Status s = store_.Get(storage::Cf::kIdentities, key, &value);
    if (s.IsNotFound()) return std::string_view();
    CDP_RETURN_IF_ERROR(s);
    // Known-good: safe to cache once the batch commits.
    return std::string_view(pending_identities_[key] = storage::DecodeIdentityLink(value).profile_id);
  }

  // Resolution's common case, decided without Resolve: every identifier of the event is held by one profile (the
  // live one the event names, if it names one) and none is a hub. Resolve would then attach, merge and drop nothing
  // and answer that profile (identity/resolver.h), so `out` is set to just that and true returned. False: Resolve
  // decides (the reads made here stay in the batch's maps; so it does when `keys`, the identity key of each of
  // `ids` as NormalizeIdentifiers built them, do not match `ids`). Copies no owner but the answer.
  Result<bool> ResolveHeld(const std::vector<Identifier>& ids, const std::vector<std::string>& keys,
                           const std::string& fixed, Resolution* out) {
    if ((ids.empty() && fixed.empty()) || keys.size() != ids.size()) return false;
    const std::string* profile = fixed.empty() ? nullptr : &fixed;
    std::string first;  // the owner found first, when the event names no profile
    for (const std::string& key : keys) {
      std::string_view owner;
      // The usual value: in the engine's cache with its owner and hub set, not changed by this batch. One probe.
      const IdentityCache::Entry* cached = nullptr;
      if ((pending_hubs_.empty() || !pending_hubs_.contains(key)) &&
          (pending_identities_.empty() || !pending_identities_.contains(key))) {
        cached = engine_->identity_cache_.Find(key);
        if (cached != nullptr && !(cached->owner_known() && cached->hubs_known())) cached = nullptr;
      }
      if (cached != nullptr) {
        if (IsHubSet(cached->hubs())) return false;
        owner = cached->owner();
      } else {
        CDP_ASSIGN_OR_RETURN(std::string_view set, HubSet(key));
        if (IsHubSet(set)) return false;
        CDP_ASSIGN_OR_RETURN(owner, FindOwner(key));
      }
      if (owner.empty()) return false;
      if (profile == nullptr) {
        first = owner;
        profile = &first;
      } else if (owner != *profile) {
        return false;
      }
    }
    *out = Resolution();
    out->profile_id = *profile;
    return true;
  }

  // A stored profile document, read once per batch; null when absent.
  Result<const Json*> ReadProfile(const std::string& id) {
    if (auto it = read_profiles_.find(id); it != read_profiles_.end()) return it->second ? &*it->second : nullptr;
    // A batch in flight may have written it: its document is the current one (written before this batch).
    CDP_ASSIGN_OR_RETURN(std::optional<Json> staged, engine_->InFlightDocument(id));
    if (staged.has_value()) return &*(read_profiles_[id] = std::move(staged));
    auto doc = engine_->ReadStoredProfile(id);
    if (doc.status().IsNotFound()) {
      read_profiles_.emplace(id, std::nullopt);
      return static_cast<const Json*>(nullptr);
    }
    if (!doc.ok()) return doc.status();
    return &*(read_profiles_[id] = std::move(doc).value());
  }

  // The stored document of a profile this batch modifies.
  Result<Json*> MutableProfile(const std::string& id) {
    CDP_ASSIGN_OR_RETURN(Json * dirty, Dirty(id));
    if (dirty != nullptr) return dirty;
    CDP_ASSIGN_OR_RETURN(const Json* doc, ReadProfile(id));
    if (doc == nullptr) return Status::NotFound(fmt::format("profile {} does not exist", id));
    return &dirty_profiles_.emplace(id, *doc).first->second;
  }

  // The document of a profile this batch writes; null when it writes none. A document built as text (a created
  // profile's, see Identify) is parsed back into the batch's documents first, for a later change in the same batch.
  Result<Json*> Dirty(const std::string& id) {
    if (auto it = dirty_profiles_.find(id); it != dirty_profiles_.end()) return &it->second;
    auto text = created_texts_.find(id);
    if (text == created_texts_.end()) return static_cast<Json*>(nullptr);
    auto doc = Json::Parse(text->second);  // as ReadStoredProfile parses the stored text
    if (!doc.ok()) return Status::DataLoss(fmt::format("the document built for profile {} does not parse", id));
    created_texts_.erase(text);
    return &dirty_profiles_.emplace(id, std::move(doc).value()).first->second;
  }

  // The latest event of a profile: staged in this batch, cached, or read from storage.
  Result<SessionState*> LatestEvent(const std::string& profile_id) {
    if (auto it = staged_sessions_.find(profile_id); it != staged_sessions_.end()) return &it->second;
    SessionState state;
    if (auto it = engine_->sessions_.find(profile_id); it != engine_->sessions_.end()) {
      state = it->second;
    } else if (created_.contains(profile_id)) {
      // A profile this batch created has no stored events.
    } else if (engine_->ReadTraits(profile_id).event_count == 0) {
      // Nor has one whose traits count none (a point read: cheaper than the index seek below).
    } else {
      CDP_RETURN_IF_ERROR(LatestStored(profile_id, &state));
    }
    return &staged_sessions_.emplace(profile_id, std::move(state)).first->second;
  }

  // Whether the profile's session state is held (this batch's, or cached) and shows no event at or after `t`: then
  // no stored event of the profile has time `t`. Reads nothing.
  bool LaterThanAllEventsOf(const std::string& profile_id, int64_t t) const {
    const SessionState* state = nullptr;
    if (auto it = staged_sessions_.find(profile_id); it != staged_sessions_.end()) {
      state = &it->second;
    } else if (auto cached = engine_->sessions_.find(profile_id); cached != engine_->sessions_.end()) {
      state = &cached->second;
    }
    return state != nullptr && (state->empty() || t > state->last_us());
  }

  // The two latest stored events of `profile_id` into `state` (left empty when it has none).
  Status LatestStored(const std::string& profile_id, SessionState* state) {
    std::string document;
    std::pair<int64_t, std::string> found[2];
    int n = 0;
    ProfileEvents events(store_, engine_->tail_, profile_id, {}, {}, /*descending=*/true);
    for (; events.Valid() && n < 2; events.Next()) {
      Status s = events.Read(&document);
      if (s.IsNotFound()) continue;
      CDP_RETURN_IF_ERROR(s);
      found[n++] = {events.time_us(), SessionOf(document)};
    }
    CDP_RETURN_IF_ERROR(events.status());
    *state = SessionState();
    for (int i = n - 1; i >= 0; --i) state->Advance(found[i].first, found[i].second);
    state->complete_ = n < 2;  // with two, there may be earlier ones
    return Status::OK();
  }

  // The first stored event of `profile_id` with a time key in [lower, upper), in the direction given: its time and
  // session. Leaves them unchanged when there is none.
  Status NearestEvent(const std::string& profile_id, std::string_view lower, std::string_view upper, bool descending,
                      int64_t* time_us, std::string* session_id) {
    std::string document;
    ProfileEvents events(store_, engine_->tail_, profile_id, lower, upper, descending);
    for (; events.Valid(); events.Next()) {
      Status s = events.Read(&document);
      if (s.IsNotFound()) continue;
      CDP_RETURN_IF_ERROR(s);
      *time_us = events.time_us();
      *session_id = SessionOf(document);
      return Status::OK();
    }
    return events.status();
  }

  static std::string SessionOf(std::string_view stored_event) { return StoredEventSession(stored_event); }

  // An event with its own session: noted in the profile's session state (a failed read of it fails the write: a
  // state without the event would let LaterThanAllEventsOf skip a retry's duplicate check).
  Status NoteEventTime(const std::string& profile_id, int64_t t, const std::string& session_id) {
    CDP_ASSIGN_OR_RETURN(SessionState * latest, LatestEvent(profile_id));
    if (latest->empty() || t >= latest->last_us()) {
      latest->Advance(t, session_id);
    } else {
      latest->Insert(t, session_id);
    }
    batch_times_[profile_id].emplace_back(t, session_id);
    return Status::OK();
  }

  Status AssignSession(const std::string& profile_id, int64_t t, std::string* session_id) {
    const int64_t timeout = engine_->options().session_timeout_seconds * 1'000'000;
    CDP_ASSIGN_OR_RETURN(SessionState * latest, LatestEvent(profile_id));
    if (latest->empty() || t >= latest->last_us()) {
      // The common case: the newest event of the profile.
      *session_id = (!latest->empty() && t - latest->last_us() < timeout) ? latest->last_session() : NewId();
      latest->Advance(t, *session_id);
    } else {
      // A late event: join the closest earlier event's session, else the closest later one's, else a new one.
      // Among the latest events, both neighbours are in the session state; else they are read, the later one
      // only when the earlier one does not decide (half the reads of a late event).
      int64_t prev_t = 0, next_t = 0;
      std::string prev_s, next_s;
      const bool between = latest->Neighbours(t, &prev_t, &prev_s, &next_t, &next_s);
      const std::string probe = between ? std::string() : storage::TimeKey(t, "");
      if (!between) {
        CDP_RETURN_IF_ERROR(NearestEvent(profile_id, {}, probe, /*descending=*/true, &prev_t, &prev_s));
      }
      for (const auto& [bt, bs] : batch_times_[profile_id]) {
        if (bt <= t && (prev_s.empty() || bt > prev_t)) prev_t = bt, prev_s = bs;
        if (bt > t && (next_s.empty() || bt < next_t)) next_t = bt, next_s = bs;
      }
      const bool joins_prev = !prev_s.empty() && t - prev_t < timeout;
      if (!joins_prev && !between) {
        int64_t stored_t = 0;
        std::string stored_s;
        CDP_RETURN_IF_ERROR(NearestEvent(profile_id, probe, {}, /*descending=*/false, &stored_t, &stored_s));
        // A stored neighbour wins a tie, as it always has.
        if (!stored_s.empty() && (next_s.empty() || stored_t <= next_t)) {
          next_t = stored_t;
          next_s = std::move(stored_s);
        }
      }
      if (joins_prev) {
        *session_id = prev_s;
      } else if (!next_s.empty() && next_t - t < timeout) {
        *session_id = next_s;
      } else {
        *session_id = NewId();
      }
      latest->Insert(t, *session_id);
    }
    batch_times_[profile_id].emplace_back(t, *session_id);
    return Status::OK();
  }

  EngineImpl* engine_;
  storage::Store& store_;
  const IdentityRules& rules_;
  storage::WriteBatch batch_;
  int64_t received_us_;
  const std::string received_at_ = FormatTimestamp(received_us_);
  int64_t profiles_created_ = 0;  // net: created minus merged away
  int64_t events_added_ = 0;
  int64_t merges_ = 0;
  int64_t merged_profiles_ = 0;
  std::unique_lock<std::shared_mutex> exclusive_;
  bool identities_published_ = false;  // PublishIdentities ran
  bool remembers_ = false;             // Remember ran
  const bool matching_on_write_ = engine_->identity_.matching_on_write();
  // The profile documents of a batch in flight (StageDocuments), each with its id (a key of dirty_profiles_,
  // pointer-stable until ReleaseTo or the context's end).
  std::vector<std::pair<const std::string*, std::shared_ptr<const Json>>> staged_;
  uint64_t staged_ticket_ = 0;
  // The documents as dumped by PutDocuments (staged_'s order when staged). in_flight_docs_ points at them until
  // UnstageDocuments: freed only after it (ReleaseTo, or the context's end).
  std::vector<std::string> dumped_;
  bool documents_pending_ = false;  // Prepare left the documents for PutDocuments
  std::vector<PendingEvent> pending_events_;
  absl::node_hash_map<std::string, Json> dirty_profiles_;  // pointer-stable: Json* are held
  // Documents of profiles created by an identify, built as text (DumpCreatedProfile); never also in
  // dirty_profiles_ (Dirty moves one there). Pointer-stable: in_flight_docs_ points at them while staged.
  absl::node_hash_map<std::string, std::string> created_texts_;
  absl::node_hash_map<std::string, std::optional<Json>> read_profiles_;  // pointer-stable
  absl::flat_hash_set<std::string> created_;
  absl::flat_hash_map<std::string, ConsentRecord> consent_notes_;  // what changed a profile's consent
  std::vector<TrackingChange> tracking_;                           // tracking markers this write changes
  absl::flat_hash_map<std::string, std::string> pending_identities_;
  absl::flat_hash_set<std::string> absent_owners_;  // identity keys Prefetch found unlinked in storage
  absl::flat_hash_map<std::string, std::string> pending_hubs_;
  absl::flat_hash_map<std::string, std::string> redirects_;
  std::vector<std::string> merged_away_;
  absl::flat_hash_map<std::string, SessionState> staged_sessions_;
  absl::flat_hash_map<std::string, std::vector<std::pair<int64_t, std::string>>> batch_times_;
  // Stored events a merge of this batch moved, by the profile they now belong to (for a later merge of that one).
  struct MovedEvent {
    int64_t time_us;
    std::string id;
    std::string value;
  };
  absl::flat_hash_map<std::string, std::vector<MovedEvent>> moved_in_;
  absl::flat_hash_map<std::string, storage::Traits> traits_;  // merge operands written with the batch (merges)
  EventTail::Changes index_;  // index entries and trait deltas of this write, for the tail
  absl::flat_hash_map<std::string, std::string> batch_keys_;  // event key of a client-given id -> session
};

Status EngineImpl::WaitForInFlightWrites(IngestContext* ctx) {
  if (ctx->exclusive().owns_lock()) return Status::OK();
  return SettleInFlight(&ctx->exclusive());
}

Status EngineImpl::SettleInFlight(std::unique_lock<std::shared_mutex>* exclusive) {
  *exclusive = std::unique_lock<std::shared_mutex>(commit_mu_);
  return CheckWritable();
}

Status EngineImpl::CheckWritable() {
  if (in_flight_failed_.exchange(false)) {
    if (write_error_.ok()) write_error_ = Status::Unavailable("a write failed; reopen the database to write again");
    sessions_.clear();
    identity_cache_.Clear();
    redirects_.clear();
  }
  return write_error_;
}

bool EngineImpl::MayGoInFlight(const IngestContext& ctx, bool writes_documents) const {
  if (ctx.holds_exclusive() || ctx.CachesWouldOverflow()) return false;
  if (!writes_documents) return true;
  return !ctx.remembers() && !segments_.tracking() && !ctx.matching_on_write();
}

void EngineImpl::GoInFlight(IngestContext* ctx, bool writes_documents, std::shared_ptr<WriteTicket>* after,
                            std::shared_ptr<WriteTicket>* mine) {
  *after = last_document_write_;
  if (!writes_documents) return;
  *mine = std::make_shared<WriteTicket>();
  (*mine)->number = ++document_tickets_;
  ctx->StageDocuments((*mine)->number);
  last_document_write_ = *mine;
}

Result<std::optional<Json>> EngineImpl::InFlightDocument(const std::string& id) {
  std::shared_ptr<const Json> doc;
  std::string text;
  {
    std::lock_guard<std::mutex> lock(in_flight_docs_mu_);
    if (in_flight_docs_.empty()) return std::optional<Json>();
    auto it = in_flight_docs_.find(id);
    if (it == in_flight_docs_.end()) return std::optional<Json>();
    if (it->second.doc != nullptr) {
      doc = it->second.doc;
    } else {
      text = *it->second.text;  // the batch frees it once it has unstaged its documents, under this mutex
    }
  }
  if (doc != nullptr) return std::optional<Json>(*doc);
  auto parsed = Json::Parse(text);  // as ReadStoredProfile parses the stored text
  if (!parsed.ok()) return Status::DataLoss(fmt::format("the document of profile {} being written is corrupt", id));
  return std::optional<Json>(std::move(parsed).value());
}

Result<uint64_t> EngineImpl::WriteInFlight(IngestContext* ctx, std::shared_lock<std::shared_mutex>* in_flight,
                                           const std::shared_ptr<WriteTicket>& after,
                                           const std::shared_ptr<WriteTicket>& mine) {
  Result<uint64_t> written =
      Status::Unavailable("a write this batch was built on failed; reopen the database to write again");
  ctx->PutDocuments();  // while the batch before it is written
  if (after == nullptr || after->Wait()) written = store_->Write(ctx->batch());
  if (mine != nullptr) {
    ctx->UnstageDocuments(mine->number);
    mine->Finish(written.ok());
  }
  ctx->SettleTail(written.ok());  // before commit_mu_ is left (IngestContext::HandOffTail)
  if (!written.ok()) {
    segments_.WriteFailed();   // its notes describe changes that are not stored
    in_flight_failed_ = true;  // before commit_mu_ is released: whoever settles next sees it
  }
  in_flight->unlock();
  if (!ctx->client_keys().empty()) {
    std::lock_guard<std::mutex> lock(in_flight_keys_mu_);
    for (const auto& [key, session] : ctx->client_keys()) in_flight_keys_.erase(key);
  }
  if (!written.ok()) {
    std::lock_guard<std::mutex> lock(write_mu_);
    if (write_error_.ok()) {
      write_error_ = Status::Unavailable("a write failed (" + written.status().ToString() +
                                         "); reopen the database to write again");
    }
    (void)CheckWritable();  // drops the caches
    return written.status();
  }
  return written;
}

namespace {

// InvalidArgument for a normalized event or identify left with neither a usable identifier nor a profileId: it could
// only create a new profile each time it is sent.
// The field named is where the value was given: an event's built-in identifiers are top-level fields, any other
// type is under "identifiers" (an identify's are all there: CommitIdentifies prefixes them).
Status RequireUsableIdentifier(const ParsedEvent& e, bool identify = false) {
  if (!e.profile_id.empty() || !e.identifiers.empty()) return Status::OK();
  if (e.ignored_identifiers.empty()) return Status::InvalidArgument("no identifier and no profileId", "identifiers");
  const IgnoredIdentifier& first = e.ignored_identifiers.front();
  const auto& builtin = IdentityRules::BuiltinTypes();
  const bool top_level = !identify && std::find(builtin.begin(), builtin.end(), first.type) != builtin.end();
  return Status::InvalidArgument(fmt::format("no usable identifier and no profileId: {} \"{}\" is not used for "
                                             "matching ({})",
                                             first.type, first.value.substr(0, 64), first.reason),
                                 top_level ? first.type : "identifiers." + first.type);
}

}  // namespace

Status EngineImpl::Ingest(std::vector<ParsedEvent>* events, std::vector<BatchItemResult>* results, int64_t received_us,
                          const UnparsedEvents* unparsed) {
  // `results` has one entry per input; events[k] belongs to the k-th entry whose status is OK.
  if (unparsed != nullptr) events->resize(unparsed->items->size());
  std::vector<size_t> slots;
  for (size_t i = 0; i < results->size(); ++i) {
    if ((*results)[i].status.ok()) slots.push_back(i);
  }
  // Sessions are assigned in event-time order within a batch, so a batch's arrival order does not matter.
  std::vector<size_t> order(events->size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return unparsed != nullptr ? unparsed->times[a] < unparsed->times[b] : (*events)[a].time_us < (*events)[b].time_us;
  });
  // Events given unparsed are parsed, their identifiers normalized with the rules in force now, in that order, on a
  // second thread ahead of resolution, and the stored documents made but for their profile and session (pure
  // work: as steps of their own, parsing and normalization before the lock and the documents in Prepare, they were
  // a fifth to a quarter of a batch's time). An event left with neither a usable identifier nor a profileId is
  // rejected: it could only create a new profile each time it is sent.
  std::vector<Status> usable(order.size());
  std::vector<size_t> bytes(unparsed != nullptr ? order.size() : 0);  // of each unparsed item (ParseEvent)
  const std::string received_at = FormatTimestamp(received_us);
  // Declared after everything its helper uses, so that on any return it is stopped first.
  std::optional<RunAhead> normalized;
  normalized.emplace(order.size(), /*parallel_from=*/64, [&, rules = this->rules()](size_t j) {
    ParsedEvent& e = (*events)[order[j]];
    if (unparsed != nullptr) {
      const size_t i = order[j];
      Result<ParsedEvent> parsed = ParseEvent((*unparsed->items)[i], *unparsed->options, received_us, &bytes[j]);
      if (!parsed.ok()) {
        usable[j] = parsed.status();
        return;
      }
      e = std::move(parsed).value();
      if (!unparsed->keys->empty() && !(*unparsed->keys)[i].key.empty()) e.remember = &(*unparsed->keys)[i];
    }
    NormalizeIdentifiers(*rules, &e);
    usable[j] = RequireUsableIdentifier(e);
    if (usable[j].ok()) MakeStoredEventParts(e, received_at, &e.stored);
  });
  // Resolution, sessions and the batch are built under write_mu_, and the batch is written after write_mu_ is
  // released ("in flight"), so the next batch is built while this one is written. Its cache changes are
  // published first, and the profile documents it writes stay readable by later batches until written; batches
  // that write documents are written in the order they were built (WriteTicket). Should a write fail, the caches
  // are dropped and the engine refuses writes. A batch with a merge, one that would clear a cache, or one whose
  // documents others re-read (MayGoInFlight), is written under write_mu_, after every batch in flight.
  uint64_t sequence = 0;
  std::vector<ParsedEvent> spent;        // the parsed events once the batch is built
  std::atomic<int> tail_claim{0};        // IngestContext::HandOffTail
  std::optional<HelperTask> free_spent;  // destroys `spent` (settled, or withdrawn, before `spent` goes)
  std::optional<IngestContext> ctx;
  std::shared_lock<std::shared_mutex> in_flight(commit_mu_, std::defer_lock);
  std::shared_ptr<WriteTicket> after, mine;
  {
    std::lock_guard<std::mutex> lock(write_mu_);
    CDP_RETURN_IF_ERROR(CheckWritable());
    ctx.emplace(this, received_us);
    // The identity cache's entries of an event a few ahead are fetched into the CPU cache meanwhile: resolving an
    // event of known identifiers is mostly waiting for memory otherwise.
    constexpr size_t kWarmAhead = 4;
    for (size_t j = 0; j < std::min(kWarmAhead, order.size()); ++j) normalized->Ready(j);
    for (size_t j = 0; j < order.size(); ++j) {
      if (j + kWarmAhead < order.size()) {
        normalized->Ready(j + kWarmAhead);
        ctx->WarmIdentityCache((*events)[order[j + kWarmAhead]]);
      }
      BatchItemResult& item = (*results)[slots[order[j]]];
      if (!usable[j].ok()) {
        item.status = std::move(usable[j]);
        continue;
      }
      CDP_RETURN_IF_ERROR(ctx->Add((*events)[order[j]], &item));
    }
    normalized.reset();  // its helper is done with `events`
    // Every unparsed item is parsed now, and nothing is written yet: the batch's size is known and may refuse it.
    if (unparsed != nullptr) {
      size_t batch_bytes = order.empty() ? 2 : order.size() + 1;  // the JSON array around the items
      for (size_t b : bytes) batch_bytes += b;
      if (batch_bytes > unparsed->options->max_batch_bytes) return BatchTooLarge(batch_bytes, *unparsed->options);
    }
    const bool writes_profiles = ctx->Prepare(/*defer_documents=*/true);
    if (ctx->empty()) return Status::OK();  // only duplicates
    // The parsed events are not read again (the batch holds their stored form): a helper destroys them while the
    // batch is written, when a core is idle; else this thread does, as the call ends. A batch written in flight
    // hands that helper its tail entries to apply first (IngestContext::HandOffTail).
    const bool goes_in_flight = MayGoInFlight(*ctx, writes_profiles);
    if (events->size() >= 64 && BatchCall::MaySplit()) {
      spent = std::move(*events);
      events->clear();
      if (goes_in_flight) ctx->HandOffTail(&tail_claim);
      free_spent.emplace([&spent, &tail_claim, context = goes_in_flight ? &*ctx : nullptr] {
        if (context != nullptr) IngestContext::ApplyHandedOffTail(context, &tail_claim);
        std::vector<ParsedEvent>().swap(spent);
      });
      if (!free_spent->Start()) free_spent.reset();
    }
    // The audit entry of one event names its profile: told before the write, the audit's pending record holds the
    // whole entry and the call needs no journal line (AuditedChange::Expect).
    if (results->size() == 1 && (*results)[0].status.ok() && !(*results)[0].result.profile_id.empty()) {
      if (AuditedChange* change = AuditedChange::Current(); change != nullptr && change->names_one_profile()) {
        change->Expect({(*results)[0].result.profile_id});
      }
    }
    if (!goes_in_flight) {
      ctx->PutDocuments();
      CDP_RETURN_IF_ERROR(WaitForInFlightWrites(&*ctx));
      CDP_ASSIGN_OR_RETURN(sequence, store_->Write(ctx->batch()));
      ctx->Publish();
    } else {
      in_flight.lock();
      GoInFlight(&*ctx, writes_profiles, &after, &mine);
      ctx->Publish();
      if (!ctx->client_keys().empty()) {
        std::lock_guard<std::mutex> keys_lock(in_flight_keys_mu_);
        for (const auto& [key, session] : ctx->client_keys()) in_flight_keys_.emplace(key, session);
      }
    }
  }
  if (in_flight.owns_lock()) {
    CDP_ASSIGN_OR_RETURN(sequence, WriteInFlight(&*ctx, &in_flight, after, mine));
  }
  // Every writer waits for a batch that holds commit_mu_ whole; what the batch built is destroyed right here, so
  // not under it. Not by DeferredFree: its thread, busy as the next call starts, took the core that call's parse
  // wants, and an event batch's values are many small strings, which jemalloc frees several times more cheaply on
  // the thread that allocated them (callgrind, `cdp_bench --steps b`: 1,816 M -> 1,666 M instructions). Identify
  // batches, whose documents measured faster freed elsewhere, still defer (CommitIdentifies).
  if (ctx->holds_exclusive()) ctx->exclusive().unlock();
  ctx.reset();
  CDP_RETURN_IF_ERROR(store_->SyncUpTo(sequence));
  MaybeFlushTail();
  (void)segments_.AfterWrite();  // its errors leave the notes pending for the next call
  return Status::OK();
}

// ---- Identify -------------------------------------------------------------------------------------------------------

Status EngineImpl::ParseIdentify(const Json& request, int64_t now, size_t max_bytes, ParsedEvent* event,
                                 IdentifyPatch* patch_out) {
  if (!request.is_object()) return Status::InvalidArgument("an identify must be a JSON object");
  int depth = 0;
  bool ascii = true;
  if (SerializedSize(request, &depth, &ascii) > max_bytes) {
    return Status::InvalidArgument(fmt::format("identify over the limit of {} bytes", max_bytes));
  }
  if (depth > options_.max_json_depth) return CheckJsonDepth(request, options_.max_json_depth);
  if (!ascii) {  // ASCII is valid UTF-8
    CDP_RETURN_IF_ERROR(CheckUtf8(request));
  }
  ParsedEvent& e = *event;
  Json& patch = patch_out->patch;
  patch = Json::Object();
  std::optional<int64_t> time_us;  // event time of the values it sets; default: the time of the call
  for (const auto& [key, value] : request.members()) {
    if (value.is_null()) continue;
    if (key == "identifiers") {
      if (!value.is_object()) return Status::InvalidArgument("expected an object of type to value", key);
      if (value.size() > 16) return Status::InvalidArgument("more than 16 identifiers", key);
      for (const auto& [type, v] : value.members()) {
        if (!v.is_string() || v.as_string().empty() || v.as_string().size() > 256) {
          return Status::InvalidArgument("expected a string of 1 to 256 bytes", "identifiers." + type);
        }
        e.raw_identifiers.push_back({type == "userId" ? "customerId" : type, v.as_string()});
      }
    } else if (key == "profileId") {
      if (!value.is_string()) return Status::InvalidArgument("expected a string", key);
      CDP_RETURN_IF_ERROR(ValidateId(value.as_string(), "profileId"));
      e.profile_id = value.as_string();
    } else if (key == "id") {
      if (!value.is_string()) return Status::InvalidArgument("expected a string", key);
      CDP_RETURN_IF_ERROR(ValidateId(value.as_string(), "id"));
      e.id = value.as_string();
    } else if (key == "attributes" || key == "consent" || key == "computed") {
      Json member = value;
      if (key == "consent") CDP_RETURN_IF_ERROR(ExpandConsentPatch(&member));  // "ads" and its signals
      patch.Set(key, std::move(member));
    } else if (key == "timestamp") {
      auto t = ParseTimestamp(value);
      if (!t.ok()) return t.status().WithFieldPrefix("timestamp");
      time_us = *t;
    } else if (key == "source") {
      if (!value.is_string() || value.as_string().empty() || value.as_string().size() > 128) {
        return Status::InvalidArgument("expected a string of 1 to 128 bytes", key);
      }
      e.source = value.as_string();
    } else {
      return Status::InvalidArgument(
          "unknown identify field (expected id, profileId, identifiers, attributes, consent, computed, timestamp, "
          "source)",
          key);
    }
  }
  if (e.profile_id.empty() && e.raw_identifiers.empty()) {
    return Status::InvalidArgument("an identify needs a profileId or identifiers", "identifiers");
  }
  // Validate the patch on its own first, so a bad one is rejected before anything is resolved.
  {
    Json probe = Json::Object();
    for (const char* key : {"attributes", "consent", "computed"}) probe.Set(key, Json::Object());
    ApplyMergePatch(&probe, patch);
    CDP_ASSIGN_OR_RETURN(patch_out->normalized, NormalizeProfileInput(probe));
  }
  if (time_us) CDP_RETURN_IF_ERROR(CheckNotFuture(*time_us, now, options_));
  if (e.id.empty()) e.id = NewId();
  e.time_us = time_us.value_or(now - now % 1000);  // timestamps have millisecond precision
  return Status::OK();
}

namespace {

// TrackResult::ToJson without eventId and sessionId, duplicate only when true, then identifyId: built directly (it
// was built, then cut, for each record of an identify batch).
Json IdentifyResultJson(const TrackResult& result, const std::string& identify_id) {
  Json out = Json::Object();
  if (!result.links_hidden) {
    out.Set("profileId", result.profile_id);
    out.Set("profileCreated", result.profile_created);
  }
  if (result.duplicate) out.Set("duplicate", true);
  if (result.links_hidden) {
    out.Set("linksHidden", true);
  } else if (!result.merged_profiles.empty()) {
    Json merged = Json::Array();
    for (const std::string& id : result.merged_profiles) merged.Push(id);
    out.Set("mergedProfiles", std::move(merged));
    out.Set("mergeId", result.merge_id);
  }
  if (result.ignored_identifiers.is_array()) out.Set("ignoredIdentifiers", result.ignored_identifiers);
  out.Set("identifyId", identify_id);
  return out;
}

}  // namespace

Result<Json> EngineImpl::Identify(const Json& request, const IdempotencyKey* key) {
  const int64_t now = NowMicros();
  std::vector<ParsedEvent> e(1);
  std::vector<IdentifyPatch> patch(1);
  if (key != nullptr) CDP_RETURN_IF_ERROR(CheckIdempotencyKey(*key));
  CDP_RETURN_IF_ERROR(
      ParseIdentify(request, now, options_.max_event_bytes + ScopedEventBytesAllowance::current(), &e[0], &patch[0]));
  if (key != nullptr && !key->key.empty()) e[0].remember = key;
  std::vector<TrackResult> result(1);
  std::vector<Status> status(1);
  CDP_RETURN_IF_ERROR(CommitIdentifies(&e, &patch, &status, &result, now));
  CDP_RETURN_IF_ERROR(status[0]);  // refused (an erased person's identifier)
  return IdentifyResultJson(result[0], e[0].id);
}

namespace {

// Writes `batch`; when `parallel` (and BatchCall::MaySplit), runs `alongside` on a helper thread meanwhile, if one
// begins it before the write ends (HelperTask). Returns the write's sequence number. Otherwise `alongside` is not
// run (the caller's Publish does that work).
template <typename Alongside>
Result<uint64_t> WriteAlongside(storage::Store& store, storage::WriteBatch* batch, bool parallel,
                                const Alongside& alongside) {
  if (!parallel || !BatchCall::MaySplit()) return store.Write(batch);
  HelperTask other(alongside);
  other.Start();
  struct Settle {
    HelperTask& task;
    ~Settle() { task.Settle(); }  // waits for it, or withdraws it if no helper began it
  } settle{other};                // also should the write throw (bad_alloc)
  return store.Write(batch);
}

}  // namespace

Status EngineImpl::CommitIdentifies(std::vector<ParsedEvent>* events, std::vector<IdentifyPatch>* patches,
                                    std::vector<Status>* statuses, std::vector<TrackResult>* results, int64_t now,
                                    const std::vector<Json>* requests) {
  // Requests are parsed and their identifiers normalized with the rules in force now (pure work: phone numbers
  // through libphonenumber are most of it), on a second thread ahead of resolution, which is serial under the lock.
  std::shared_ptr<const IdentityRules> rules = this->rules();
  const size_t max_bytes = options_.max_event_bytes + ScopedEventBytesAllowance::current();  // this thread's
  RunAhead normalized(events->size(), /*parallel_from=*/64, [&, rules](size_t i) {
    if (requests != nullptr) {
      (*statuses)[i] = ParseIdentify((*requests)[i], now, max_bytes, &(*events)[i], &(*patches)[i]);
    }
    if ((*statuses)[i].ok()) {
      NormalizeIdentifiers(*rules, &(*events)[i]);
      (*statuses)[i] = RequireUsableIdentifier((*events)[i], /*identify=*/true);  // as Ingest does for events
    }
  });
  // Written in flight as Ingest's batches are (after write_mu_ is released, the next batch built meanwhile), unless
  // it merges, holds an idempotency key or MayGoInFlight says no: then under write_mu_, after every batch in flight.
  uint64_t sequence = 0;
  std::optional<IngestContext> ctx;
  std::shared_lock<std::shared_mutex> in_flight(commit_mu_, std::defer_lock);
  std::shared_ptr<WriteTicket> after, mine;
  {
    std::lock_guard<std::mutex> lock(write_mu_);
    CDP_RETURN_IF_ERROR(CheckWritable());
    ctx.emplace(this, now);
    // In chunks: the identity reads of a chunk's records are made in one batched read before they are resolved.
    constexpr size_t kChunk = 256;
    for (size_t begin = 0; begin < events->size(); begin += kChunk) {
      const size_t end = std::min(events->size(), begin + kChunk);
      for (size_t i = begin; i < end; ++i) normalized.Ready(i);
      if (end - begin >= kMinPrefetch) CDP_RETURN_IF_ERROR(ctx->Prefetch(*events, statuses, begin, end));
      for (size_t i = begin; i < end; ++i) {
        if ((*statuses)[i].ok()) {
          CDP_RETURN_IF_ERROR(ctx->Identify((*events)[i], (*patches)[i], &(*results)[i], &(*statuses)[i]));
        }
      }
    }
    const bool writes_profiles = ctx->Prepare(/*defer_documents=*/true);
    if (ctx->empty()) {
      // Nothing to write (every identify a duplicate, or refused).
    } else if (ctx->remembers() || !MayGoInFlight(*ctx, writes_profiles)) {  // a key: see Identify's retry check
      ctx->PutDocuments();
      CDP_RETURN_IF_ERROR(WaitForInFlightWrites(&*ctx));
      // A large batch's links go into the identity cache on a second thread while the batch is written (they
      // were 13% of a bulk import's calling thread, after the write). A failed write leaves the cache cleared.
      Result<uint64_t> written = WriteAlongside(*store_, ctx->batch(), events->size() >= kParallelPublishFrom,
                                                [&ctx] { ctx->PublishIdentities(); });
      if (!written.ok()) {
        identity_cache_.Clear();
        return written.status();
      }
      sequence = *written;
      ctx->Publish();
    } else {
      in_flight.lock();
      GoInFlight(&*ctx, writes_profiles, &after, &mine);
      ctx->Publish();
    }
  }
  if (in_flight.owns_lock()) {
    CDP_ASSIGN_OR_RETURN(sequence, WriteInFlight(&*ctx, &in_flight, after, mine));
  }
  // Not under write_mu_ or commit_mu_: what the batch built may be destroyed right here (DeferredFree).
  if (ctx->holds_exclusive()) ctx->exclusive().unlock();
  ctx->ReleaseTo(&deferred_free_);
  ctx.reset();
  CDP_RETURN_IF_ERROR(store_->SyncUpTo(sequence));
  MaybeFlushTail();  // merges move index entries into the tail
  (void)segments_.AfterWrite();
  return Status::OK();
}

Result<Json> EngineImpl::IdentifyBatch(const std::vector<Json>& requests) {
  if (requests.size() > options_.max_batch_items) {
    return Status::InvalidArgument(
        fmt::format("batch of {} identifies is over the limit of {}", requests.size(), options_.max_batch_items));
  }
  const int64_t now = NowMicros();
  std::vector<ParsedEvent> parsed(requests.size());
  std::vector<IdentifyPatch> patches(requests.size());
  std::vector<Status> statuses(requests.size());
  std::vector<TrackResult> results(requests.size());
  CDP_RETURN_IF_ERROR(CommitIdentifies(&parsed, &patches, &statuses, &results, now, &requests));
  return BatchAnswer(statuses, [&](size_t i) { return IdentifyResultJson(results[i], parsed[i].id); });
}

Status EngineImpl::WriteIfProfilesExist(const std::vector<std::string>& profile_ids, storage::WriteBatch* batch) {
  uint64_t sequence = 0;
  {
    std::lock_guard<std::mutex> lock(write_mu_);
    std::unique_lock<std::shared_mutex> exclusive;  // a profile created by a batch in flight is in storage
    CDP_RETURN_IF_ERROR(SettleInFlight(&exclusive));
    for (const std::string& id : profile_ids) {
      std::string value;
      Status s = store_->Get(storage::Cf::kProfiles, id, &value);
      if (s.IsNotFound()) return Status::OK();
      CDP_RETURN_IF_ERROR(s);
    }
    CDP_ASSIGN_OR_RETURN(sequence, store_->Write(batch));
  }
  return store_->SyncUpTo(sequence);
}

// ---- Manual merges ------------------------------------------------------------------------------------------------

Result<Json> EngineImpl::MergeProfiles(const std::vector<std::string>& profile_ids, std::string_view reason,
                                       Json evidence, bool automatic) {
  if (reason.size() > 1024) return Status::InvalidArgument("a reason has at most 1024 bytes", "reason");
  if (profile_ids.size() > 100) return Status::InvalidArgument("at most 100 profiles per merge", "profileIds");
  const int64_t now = NowMicros();
  uint64_t sequence = 0;
  Json out = Json::Object();
  {
    std::lock_guard<std::mutex> lock(write_mu_);
    CDP_RETURN_IF_ERROR(write_error_);
    IngestContext ctx(this, now);
    CDP_RETURN_IF_ERROR(WaitForInFlightWrites(&ctx));  // what it reads is in storage
    std::vector<std::string> live;
    for (size_t i = 0; i < profile_ids.size(); ++i) {
      const std::string field = fmt::format("profileIds[{}]", i);
      CDP_RETURN_IF_ERROR(ValidateId(profile_ids[i], field));
      CDP_ASSIGN_OR_RETURN(std::string id, ctx.LiveId(profile_ids[i]));
      if (id.empty()) return Status::NotFound(fmt::format("profile {} does not exist", profile_ids[i]), field);
      if (std::find(live.begin(), live.end(), id) == live.end()) live.push_back(std::move(id));
    }
    if (live.size() < 2) {
      return Status::InvalidArgument(
          "a merge needs at least two distinct profiles (merged ids count as their survivor)", "profileIds");
    }
    std::vector<Identifier> all;
    for (const std::string& id : live) {
      CDP_ASSIGN_OR_RETURN(std::vector<Identifier> held, ctx.IdentifiersOf(id));
      for (Identifier& h : held) {
        if (std::find(all.begin(), all.end(), h) == all.end()) all.push_back(std::move(h));
      }
    }
    for (const IdentifierTypeRule& rule : rules_->types()) {
      int n = 0;
      for (const Identifier& h : all) n += h.type == rule.type;
      if (n > rule.limit) {
        return Status::FailedPrecondition(
            fmt::format("the merged profile would hold {} {} values; the identity rules allow {}", n, rule.type,
                        rule.limit),
            "profileIds");
      }
    }
    if (!evidence.is_object()) evidence = Json::Object().Set("call", "identity.merge");
    std::vector<std::string> others(live.begin() + 1, live.end());
    std::string merge_id;
    CDP_RETURN_IF_ERROR(ctx.Merge(live[0], others, automatic, reason, std::move(evidence), &merge_id));
    ctx.Prepare();
    CDP_RETURN_IF_ERROR(WaitForInFlightWrites(&ctx));
    CDP_ASSIGN_OR_RETURN(sequence, store_->Write(ctx.batch()));
    ctx.Publish();
    Json merged = Json::Array();
    for (const std::string& id : others) merged.Push(id);
    out.Set("mergeId", merge_id);
    out.Set("profileId", live[0]);
    out.Set("merged", std::move(merged));
  }
  CDP_RETURN_IF_ERROR(store_->SyncUpTo(sequence));
  MaybeFlushTail();  // the merge moved the merged profiles' index entries into the tail
  (void)segments_.AfterWrite();
  return out;
}

// ---- Unmerge ------------------------------------------------------------------------------------------------------

namespace {

// The identifiers a stored event carries, normalized with `rules` (values that are not identifiers are skipped).
std::vector<Identifier> EventIdentifiers(const IdentityRules& rules, const Json& event) {
  std::vector<Identifier> out;
  auto add = [&](std::string_view type, const Json* v) {
    Identifier id;
    IgnoredIdentifier ignored;
    if (v != nullptr && v->is_string() && rules.Normalize(type, v->as_string(), &id, &ignored)) {
      out.push_back(std::move(id));
    }
  };
  for (std::string_view type : IdentityRules::BuiltinTypes()) add(type, event.Find(type));
  if (const Json* custom = event.Find("identifiers"); custom != nullptr) {
    for (const auto& [type, v] : custom->members()) add(type, &v);
  }
  std::stable_sort(out.begin(), out.end(), [&](const Identifier& a, const Identifier& b) {
    return rules.Priority(a.type) < rules.Priority(b.type);
  });
  return out;
}

}  // namespace

Result<Json> EngineImpl::Unmerge(std::string_view profile_id, std::string_view merge_id) {
  CDP_RETURN_IF_ERROR(ValidateId(merge_id, "mergeId"));
  const int64_t now = NowMicros();
  uint64_t sequence = 0;
  Json out = Json::Object();
  {
    std::lock_guard<std::mutex> lock(write_mu_);
    CDP_RETURN_IF_ERROR(write_error_);
    std::unique_lock<std::shared_mutex> exclusive;  // every event of the survivor is in storage
    CDP_RETURN_IF_ERROR(SettleInFlight(&exclusive));
    // The tail written out first: traits are recomputed from all events below, and no logged delta may be
    // replayed on top of them after a crash.
    CDP_RETURN_IF_ERROR(FlushTail());
    std::string live;
    CDP_ASSIGN_OR_RETURN(Json survivor, ReadLiveProfile(profile_id, &live));
    std::string text;
    Status found = store_->Get(storage::Cf::kMerges, storage::MergeRecordKey(merge_id), &text);
    if (found.IsNotFound()) return Status::NotFound(fmt::format("merge {} does not exist", merge_id));
    CDP_RETURN_IF_ERROR(found);
    auto parsed = Json::Parse(text);
    if (!parsed.ok()) return Status::DataLoss(fmt::format("merge record {} is corrupt", merge_id));
    Json record = std::move(parsed).value();
    const std::string survivor_id = record.Find("survivor") != nullptr ? record.Find("survivor")->as_string() : "";
    std::vector<std::string> merged;
    for (const Json& m : record.Find("merged") != nullptr ? record.Find("merged")->items() : std::vector<Json>{}) {
      merged.push_back(m.as_string());
    }
    const Json* snapshots = record.Find("snapshots");
    if (record.Find("unmergedAt") != nullptr) {
      return Status::FailedPrecondition(fmt::format("merge {} was already undone", merge_id));
    }
    auto involved = [&](std::string_view id) {
      return id == survivor_id || std::find(merged.begin(), merged.end(), id) != merged.end();
    };
    if (!involved(profile_id) && !involved(live)) {
      return Status::InvalidArgument(fmt::format("merge {} does not involve profile {}", merge_id, profile_id),
                                     "mergeId");
    }
    if (const Json* evidence = record.Find("evidence"); evidence != nullptr && evidence->is_object()) {
      const Json* call = evidence->Find("call");
      const Json* id = evidence->Find("identifier");
      if (call != nullptr && call->is_string() && call->as_string() == "identity.applyRules" && id != nullptr &&
          id->is_object() && id->Find("type") != nullptr && id->Find("type")->is_string()) {
        return Status::FailedPrecondition(fmt::format(
            "merge {} was made by an identity rules change that made the profiles' {} values one: their events and "
            "identifiers cannot be told apart again, so it cannot be undone",
            merge_id, id->Find("type")->as_string()));
      }
    }
    if (survivor_id != live) {
      return Status::FailedPrecondition(
          fmt::format("profile {} (the survivor of merge {}) was later merged into {}: undo that merge first",
                      survivor_id, merge_id, live));
    }
    if (snapshots == nullptr || snapshots->Find(survivor_id) == nullptr) {
      return Status::DataLoss(fmt::format("merge record {} has no snapshots", merge_id));
    }
    for (const std::string& m : merged) {
      auto doc = ReadStoredProfile(m);
      const Json* into = doc.ok() ? doc->Find("mergedInto") : nullptr;
      const Json* by = doc.ok() ? doc->Find("mergeId") : nullptr;
      if (into == nullptr || into->as_string() != survivor_id || by == nullptr || by->as_string() != merge_id ||
          snapshots->Find(m) == nullptr) {
        return Status::FailedPrecondition(fmt::format("profile {} no longer stands as merge {} left it", m, merge_id));
      }
    }

    storage::WriteBatch batch(*store_);
    const std::string evidence = "unmerge " + std::string(merge_id);
    // Identifiers go back to the profiles that brought them; the survivor keeps its own, and those linked since
    // follow their events (below).
    absl::flat_hash_map<std::string, std::string> owner_of;   // identity key -> restored profile
    absl::flat_hash_map<std::string, std::string> origin_of;  // origin profile id -> restored profile
    std::vector<Identifier> survivor_ids = StoredIdentifiers(survivor);
    absl::flat_hash_map<std::string, std::vector<Identifier>> kept_ids;     // restored profile -> its identifiers
    absl::flat_hash_map<std::string, std::vector<IgnoredIdentifier>> lost;  // restored profile -> taken since
    for (const std::string& m : merged) {
      const Json& before = *snapshots->Find(m);
      origin_of[m] = m;
      if (const Json* nested = before.Find("mergedIds"); nested != nullptr) {
        for (const Json& n : nested->items()) origin_of[n.as_string()] = m;
      }
      std::vector<Identifier> kept;
      for (const Identifier& id : StoredIdentifiers(before)) {
        // Only what the survivor still holds goes back: an identifier it gave up since, and another profile took,
        // stays with that profile (the restored one lists it as an identity issue).
        std::string key = IdentityKeyOf(id);
        std::string link;
        Status s = store_->Get(storage::Cf::kIdentities, key, &link);
        if (!s.ok() && !s.IsNotFound()) return s;
        const std::string holder = s.ok() ? storage::DecodeIdentityLink(link).profile_id : std::string();
        if (!holder.empty() && holder != survivor_id) {
          lost[m].push_back({id.type, id.value, "unmerge: now held by profile " + holder});
          continue;
        }
        owner_of[key] = m;
        kept.push_back(id);
        batch.Put(storage::Cf::kIdentities, key, storage::EncodeIdentityLink(m, evidence, now));
        std::erase(survivor_ids, id);
      }
      kept_ids[m] = std::move(kept);
    }
    // Events are re-partitioned by the identifiers they carry; events without one by the profile they came from.
    // Identifiers an event linked to the survivor since the merge (not in its snapshot) are not anchors: each
    // follows the first event (in event time) that carried it, as resolution would have placed it without the merge.
    absl::flat_hash_set<std::string> since;  // identity keys of the survivor's identifiers linked since the merge
    {
      absl::flat_hash_set<std::string> before;
      for (const Identifier& id : StoredIdentifiers(*snapshots->Find(survivor_id))) before.insert(IdentityKeyOf(id));
      for (const Identifier& id : survivor_ids) {
        std::string key = IdentityKeyOf(id);
        if (before.contains(key)) continue;
        // Only those an event linked (not an identify, a profile write or a later merge: those stay).
        std::string link;
        Status s = store_->Get(storage::Cf::kIdentities, key, &link);
        if (!s.ok() && !s.IsNotFound()) return s;
        if (s.ok() && storage::DecodeIdentityLink(link).evidence.starts_with("event ")) since.insert(std::move(key));
      }
    }
    absl::flat_hash_map<std::string, std::string> placed;  // identity key in `since` -> the profile it follows
    absl::flat_hash_map<std::string, storage::Traits> traits;
    traits[survivor_id];
    for (const std::string& m : merged) traits[m];
    int64_t moved = 0;
    EventTail::Changes changes;
    std::string document;
    ProfileEvents events(*store_, tail_, survivor_id);
    for (; events.Valid(); events.Next()) {
      Status read = events.Read(&document);
      if (read.IsNotFound()) continue;
      CDP_RETURN_IF_ERROR(read);
      auto event = Json::Parse(document);
      if (!event.ok()) return Status::DataLoss("a stored event is corrupt");
      const std::string time_key(events.time_key());
      const int64_t t = storage::TimeKeyTime(time_key);
      const std::string id(storage::TimeKeyEventId(time_key));
      std::string owner = survivor_id;
      bool decided = false;
      const std::vector<Identifier> carried = EventIdentifiers(*rules_, *event);
      for (const Identifier& ident : carried) {  // in priority order
        std::string key = IdentityKeyOf(ident);
        if (auto it = owner_of.find(key); it != owner_of.end()) {
          owner = it->second;
          decided = true;
          break;
        }
        if (since.contains(key)) {
          if (auto it = placed.find(key); it != placed.end()) {
            owner = it->second;
            decided = true;
            break;
          }
          continue;  // placed by this event, below
        }
        if (std::find(survivor_ids.begin(), survivor_ids.end(), ident) != survivor_ids.end()) {
          decided = true;
          break;
        }
      }
      if (!decided) {
        const Json* origin = event->Find("originProfileId");
        if (origin != nullptr) {
          if (auto it = origin_of.find(origin->as_string()); it != origin_of.end()) owner = it->second;
        }
      }
      for (const Identifier& ident : carried) {
        if (std::string key = IdentityKeyOf(ident); since.contains(key)) placed.try_emplace(std::move(key), owner);
      }
      StoredEventTraits(*event, t, &traits[owner]);
      if (owner == survivor_id) continue;
      event->Set("profileId", owner);
      batch.Delete(storage::Cf::kEvents, storage::EventKey(survivor_id, t, id));
      batch.Delete(storage::Cf::kEventsByTime, storage::TimeIndexKey(t, id, survivor_id));
      batch.Put(storage::Cf::kEventsByTime, storage::TimeIndexKey(t, id, owner), event->Dump());
      changes.removed.emplace_back(survivor_id, time_key);
      changes.Add(owner, time_key, /*counts=*/false);  // the traits are recomputed below
      ++moved;
    }
    CDP_RETURN_IF_ERROR(events.status());
    // The identifiers linked since that followed an event to a restored profile.
    absl::flat_hash_set<std::string> gained;  // restored profiles whose identifiers grew
    for (auto it = survivor_ids.begin(); it != survivor_ids.end();) {
      std::string key = IdentityKeyOf(*it);
      auto p = placed.find(key);
      if (p == placed.end() || p->second == survivor_id) {
        ++it;
        continue;
      }
      batch.Put(storage::Cf::kIdentities, key, storage::EncodeIdentityLink(p->second, evidence, now));
      owner_of[key] = p->second;
      kept_ids[p->second].push_back(*it);
      gained.insert(p->second);
      it = survivor_ids.erase(it);
    }
    // Documents.
    const Json& survivor_before = *snapshots->Find(survivor_id);
    std::vector<MergedProfile> merged_before;
    std::vector<TrackingChange> tracking;
    ConsentRecord note;
    note.via = "unmerge";
    note.source = "identity.unmerge";
    note.merge_id = std::string(merge_id);
    note.at_us = now;
    for (const std::string& m : merged) {
      Json restored = *snapshots->Find(m);
      NoteConsent(&batch, m, nullptr, restored.Find("consent"), note, &tracking);
      restored.Set("updatedAt", FormatTimestamp(now));
      if (gained.contains(m)) restored.Set("externalIds", ExternalIdsOf(kept_ids[m]));
      if (auto it = lost.find(m); it != lost.end()) {
        restored.Set("externalIds", ExternalIdsOf(kept_ids[m]));
        std::vector<const IgnoredIdentifier*> issues;
        for (const IgnoredIdentifier& why : it->second) issues.push_back(&why);
        AppendIdentityIssues(&restored, issues);
      }
      batch.Put(storage::Cf::kProfiles, m, restored.Dump());
      merged_before.push_back({m, snapshots->Find(m)});
    }
    // Merges recorded before survivorship decisions were have none (null: the default rules are replayed).
    Json consent_before;
    if (const Json* c = survivor.Find("consent"); c != nullptr) consent_before = *c;
    UnmergeProfileDocument(&survivor, survivor_before, merged_before, merge_id, now, record.Find("survivorship"));
    survivor.Set("externalIds", ExternalIdsOf(survivor_ids));
    batch.Put(storage::Cf::kProfiles, survivor_id, survivor.Dump());
    NoteConsent(&batch, survivor_id, &consent_before, survivor.Find("consent"), note, &tracking);

    // Computed traits, recomputed from the events each profile now holds (tail deltas included, so dropped).
    for (const auto& [id, t] : traits) {
      batch.Put(storage::Cf::kTraits, id, t.Encode());
      changes.reset.insert(id);
    }
    tail_.Log(changes, &batch);

    record.Set("unmergedAt", FormatTimestamp(now));
    batch.Put(storage::Cf::kMerges, storage::MergeRecordKey(merge_id), record.Dump());
    const int64_t n = static_cast<int64_t>(merged.size());
    store_->AddToCounter(&batch, "profiles", n);
    store_->AddToCounter(&batch, "merged_profiles", -n);
    store_->AddToCounter(&batch, "unmerges", 1);
    CDP_ASSIGN_OR_RETURN(sequence, store_->Write(&batch));
    ApplyTrackingChanges(tracking);
    tail_.Apply(std::move(changes));
    for (const auto& [key, m] : owner_of) identity_cache_.SetOwner(key, m);
    sessions_.erase(survivor_id);
    for (const std::string& m : merged) {
      redirects_.erase(m);
      sessions_.erase(m);
    }
    std::vector<std::string> written(merged.begin(), merged.end());
    written.push_back(survivor_id);
    segments_.NotifyChanged(written, "unmerge");
    identity_.NotifyWritten(std::move(written));
    Json restored = Json::Array();
    for (const std::string& m : merged) restored.Push(m);
    out.Set("mergeId", std::string(merge_id));
    out.Set("profileId", survivor_id);
    out.Set("restored", std::move(restored));
    out.Set("eventsMoved", moved);
  }
  CDP_RETURN_IF_ERROR(store_->SyncUpTo(sequence));
  (void)segments_.AfterWrite();
  return out;
}

// ---- Profile writes -----------------------------------------------------------------------------------------------

Status EngineImpl::PrepareIdentifiers(const IdentityRules& rules, PreparedProfile* p) {
  CDP_RETURN_IF_ERROR(ApplyIdentityRules(rules, &p->normalized, &p->ids, &p->ignored));
  for (const IdentifierTypeRule& rule : rules.types()) {
    int n = 0;
    for (const Identifier& ident : p->ids) n += ident.type == rule.type;
    if (n > rule.limit) {
      return Status::InvalidArgument(
          fmt::format("{} values of {}: the identity rules allow {} per profile", n, rule.type, rule.limit),
          "externalIds." + (rule.type == "deviceId" ? std::string("deviceIds") : rule.type));
    }
  }
  return Status::OK();
}

Status EngineImpl::StageProfileWrite(const PreparedProfile& p, const Json* previous, int64_t now,
                                     const absl::flat_hash_map<std::string, std::string>& staged,
                                     storage::WriteBatch* batch, Json* stored, std::vector<TrackingChange>* tracking,
                                     Status* storage_error) {
  const bool create = previous == nullptr;
  const std::vector<Identifier> old_ids = create ? std::vector<Identifier>{} : StoredIdentifiers(*previous);
  auto held_before = [&](const Identifier& ident) {
    return std::find(old_ids.begin(), old_ids.end(), ident) != old_ids.end();
  };
  // Checks first, so that a refused write adds nothing to a batch other writes share.
  std::vector<Identifier> new_ids;
  for (const Identifier& ident : p.ids) {
    if (!held_before(ident)) new_ids.push_back(ident);
  }
  if (create) new_ids.push_back(Identifier{std::string(kErasedProfileIdType), p.id});  // an erased profile's id
  CDP_RETURN_IF_ERROR(CheckNotSuppressed(new_ids));
  if (create) new_ids.pop_back();
  for (const Identifier& ident : new_ids) {
    const std::string key = IdentityKeyOf(ident);
    bool held = false;  // by anyone: a link is free only when absent or already this profile's
    std::string owner;
    if (auto it = staged.find(key); it != staged.end()) {
      held = true;
      owner = it->second;
    } else {
      std::string value;
      Status s = store_->Get(storage::Cf::kIdentities, key, &value);
      if (!s.ok() && !s.IsNotFound()) return *storage_error = s;  // not the write's fault
      if (s.ok()) held = true, owner = storage::DecodeIdentityLink(value).profile_id;
    }
    if (held && owner != p.id) {
      std::string field = ident.type == "deviceId" ? "externalIds.deviceIds" : "externalIds." + ident.type;
      return Status::AlreadyExists(fmt::format("{} \"{}\" belongs to profile {} (merge the two with Identity::Merge)",
                                               ident.type, ident.value, owner),
                                   field);
    }
  }
  *stored = BuildStoredProfile(p.id, p.normalized, previous, now);
  // What identity resolution maintains survives a write of the writable fields.
  for (std::string_view key : kMaintainedKeys) {
    if (const Json* v = create ? nullptr : previous->Find(key); v != nullptr) stored->Set(key, *v);
  }
  const Json* source = p.normalized.Find("source");
  StampAttributeSources(stored, previous, source != nullptr ? source->as_string() : "api", now);
  if (!p.ignored.empty()) {
    std::vector<const IgnoredIdentifier*> issues;
    for (const IgnoredIdentifier& why : p.ignored) issues.push_back(&why);
    AppendIdentityIssues(stored, issues);
  }
  // The values the write removes stay suppressible by a later erasure of the person.
  if (!create) {
    std::vector<std::string> former;
    for (const Identifier& ident : old_ids) {
      if (std::find(p.ids.begin(), p.ids.end(), ident) != p.ids.end()) continue;
      for (const std::string& h : SuppressionHashes(ident)) former.push_back(HexEncode(h));
    }
    NoteFormerIdHashes(stored, former);
  }
  std::string text = stored->Dump();
  if (text.size() > options_.max_profile_bytes) {
    return Status::ResourceExhausted(
        fmt::format("profile of {} bytes is over the limit of {} bytes", text.size(), options_.max_profile_bytes));
  }
  // The write.
  const std::string evidence = create ? "profiles.create" : "profiles.update";
  for (const Identifier& ident : new_ids) {
    batch->Put(storage::Cf::kIdentities, IdentityKeyOf(ident), storage::EncodeIdentityLink(p.id, evidence, now));
  }
  for (const Identifier& ident : old_ids) {
    if (std::find(p.ids.begin(), p.ids.end(), ident) == p.ids.end()) {
      batch->Delete(storage::Cf::kIdentities, IdentityKeyOf(ident));
      batch->Delete(storage::Cf::kIdentities, storage::HubKey(IdentityKeyOf(ident)));
    }
  }
  batch->Put(storage::Cf::kProfiles, p.id, text);
  if (create) store_->AddToCounter(batch, "profiles", 1);
  ConsentRecord note;
  note.via = evidence;
  note.source = source != nullptr ? source->as_string() : "api";
  note.at_us = now;
  NoteConsent(batch, p.id, create ? nullptr : previous->Find("consent"), stored->Find("consent"), std::move(note),
              tracking);
  return Status::OK();
}

void EngineImpl::NoteProfileWritten(const std::string& id, const std::vector<Identifier>& old_ids,
                                    const std::vector<Identifier>& now_ids) {
  for (const Identifier& ident : old_ids) identity_cache_.Erase(IdentityKeyOf(ident));
  for (const Identifier& ident : now_ids) identity_cache_.SetOwner(IdentityKeyOf(ident), id);
}

Status EngineImpl::CreateProfiles(const IdentityRules* prepared_with, const std::vector<PreparedProfile>& items,
                                  std::vector<Status>* statuses, std::vector<Json>* stored) {
  const int64_t now = NowMicros();
  uint64_t sequence = 0;
  stored->assign(items.size(), Json());
  {
    std::lock_guard<std::mutex> lock(write_mu_);
    CDP_RETURN_IF_ERROR(write_error_);
    if (prepared_with != rules_.get()) {
      return Status::Unavailable("the identity rules changed while the profiles were prepared: retry");
    }
    std::unique_lock<std::shared_mutex> exclusive;  // after every batch in flight
    CDP_RETURN_IF_ERROR(SettleInFlight(&exclusive));
    storage::WriteBatch batch(*store_);
    absl::flat_hash_map<std::string, std::string> staged;  // identity key -> profile id, of earlier items
    absl::flat_hash_set<std::string> ids;                  // profile ids of earlier items
    std::vector<TrackingChange> tracking;
    std::vector<std::string> created;
    for (size_t i = 0; i < items.size(); ++i) {
      Status& status = (*statuses)[i];
      if (!status.ok()) continue;
      const PreparedProfile& p = items[i];
      std::string value;
      Status taken = ids.contains(p.id) ? Status::OK() : store_->Get(storage::Cf::kProfiles, p.id, &value);
      if (taken.ok()) {
        status = Status::AlreadyExists(fmt::format("profile {} already exists", p.id), "id");
        continue;
      }
      if (!taken.IsNotFound()) return taken;
      Status storage_error;
      status =
          StageProfileWrite(p, /*previous=*/nullptr, now, staged, &batch, &(*stored)[i], &tracking, &storage_error);
      CDP_RETURN_IF_ERROR(storage_error);  // fails the whole batch; a verdict is the item's
      if (!status.ok()) continue;
      ids.insert(p.id);
      for (const Identifier& ident : p.ids) staged[IdentityKeyOf(ident)] = p.id;
      created.push_back(p.id);
    }
    if (created.empty()) return Status::OK();
    CDP_ASSIGN_OR_RETURN(sequence, store_->Write(&batch));
    ApplyTrackingChanges(tracking);
    for (size_t i = 0; i < items.size(); ++i) {
      if ((*statuses)[i].ok()) NoteProfileWritten(items[i].id, {}, items[i].ids);
    }
    identity_.NotifyWritten(created);
    segments_.NotifyDocument(created);
  }
  CDP_RETURN_IF_ERROR(store_->SyncUpTo(sequence));
  (void)segments_.AfterWrite();
  return Status::OK();
}

Result<Json> EngineImpl::WriteProfile(std::string_view requested_id, const Json& input, ProfileWrite mode) {
  const int64_t now = NowMicros();
  uint64_t sequence = 0;
  Json stored;
  std::string id;
  {
    std::lock_guard<std::mutex> lock(write_mu_);
    CDP_RETURN_IF_ERROR(write_error_);
    std::unique_lock<std::shared_mutex> exclusive;  // after every batch in flight
    CDP_RETURN_IF_ERROR(SettleInFlight(&exclusive));
    CDP_ASSIGN_OR_RETURN(Json previous, ReadLiveProfile(requested_id, &id));  // a merged id: its survivor
    // A merge patch applies to the document as it is now, read under the lock, so that identifiers attached by
    // events (or another patch) in the meantime are kept.
    PreparedProfile p;
    p.id = id;
    if (mode == ProfileWrite::kPatch) {
      Json document = WritableParts(previous);
      Json patch = input;
      if (Json* consent = patch.Find("consent"); consent != nullptr) {
        CDP_RETURN_IF_ERROR(ExpandConsentPatch(consent));  // "ads" and its signals
      }
      ApplyMergePatch(&document, patch);
      CDP_ASSIGN_OR_RETURN(p.normalized, NormalizeProfileInput(document));
    } else {
      p.normalized = input;
    }
    CDP_RETURN_IF_ERROR(PrepareIdentifiers(*rules_, &p));
    storage::WriteBatch batch(*store_);
    std::vector<TrackingChange> tracking;
    Status storage_error;
    CDP_RETURN_IF_ERROR(StageProfileWrite(p, &previous, now, {}, &batch, &stored, &tracking, &storage_error));
    CDP_ASSIGN_OR_RETURN(sequence, store_->Write(&batch));
    ApplyTrackingChanges(tracking);
    NoteProfileWritten(id, StoredIdentifiers(previous), p.ids);
    identity_.NotifyWritten({id});
    segments_.NotifyDocument({id});
  }
  CDP_RETURN_IF_ERROR(store_->SyncUpTo(sequence));
  (void)segments_.AfterWrite();
  return Render(stored, id);
}

Status EngineImpl::DeleteProfile(std::string_view requested_id, ErasureRequest* request, bool for_retention,
                                 std::optional<int64_t> active_since, bool* kept) {
  if (kept != nullptr) *kept = false;
  uint64_t sequence = 0;
  storage::WriteBatch batch(*store_);
  bool by_filter = false;                   // the person's events leave the log through its drop filter
  std::vector<std::string> event_log_keys;  // their keys then
  std::string erased_id;
  std::vector<std::string> erased_ids;  // the person's id and those of the profiles merged into them
  std::string retired_span;             // a retention run's span not yet purged (RetiredRange), or empty
  {
    std::lock_guard<std::mutex> lock(write_mu_);
    std::unique_lock<std::mutex> items_lock;  // suppression_items_mu_, once the erasure reads list items
    CDP_RETURN_IF_ERROR(write_error_);
    std::unique_lock<std::shared_mutex> exclusive;  // no event of this profile is still in flight
    CDP_RETURN_IF_ERROR(SettleInFlight(&exclusive));
    std::string id;
    CDP_ASSIGN_OR_RETURN(Json stored, ReadLiveProfile(requested_id, &id));  // a merged id erases its survivor
    // Every batch in flight is settled: its events count in the traits.
    if (active_since.has_value() && LastActivity(id, stored) >= *active_since) {
      if (kept != nullptr) *kept = true;
      return Status::OK();
    }
    // The index log names the person's recent events: write the tail out first, which deletes the log.
    CDP_RETURN_IF_ERROR(FlushTail());
    // The person's events leave the event log through its drop filter (no tombstones: rewriting the files that
    // hold them is enough) when no key of the log naming them was ever deleted, so no tombstone of theirs exists:
    // no merge ever involved them (merges and unmerges move events, deleting keys) and retention never deleted
    // from the log. Otherwise by tombstones, compacted down to the last level (Store::Purge).
    erased_id = id;
    // And only with suppression: it refuses data naming the erased profile id, which would otherwise create a new
    // profile under it whose events the filter would drop until the purge ends.
    by_filter = !for_retention && options_.suppress_erased_identifiers && stored.Find("mergedIds") == nullptr;
    if (by_filter) {
      std::string marker;
      Status deleted_before = store_->Get(storage::Cf::kMeta, kEventLogDeletedKey, &marker);
      if (!deleted_before.IsNotFound()) CDP_RETURN_IF_ERROR(deleted_before);
      by_filter = deleted_before.IsNotFound();
    }
    if (by_filter) {
      const std::string merges_prefix = storage::ProfileMergesPrefix(id);
      auto m = store_->NewIterator(storage::Cf::kMerges, merges_prefix, storage::PrefixSuccessor(merges_prefix));
      m->Seek(merges_prefix);
      CDP_RETURN_IF_ERROR(m->status());
      by_filter = !m->Valid();
    }
    int64_t events = 0;
    std::string prefix = storage::ProfileEventsPrefix(id);
    // A retention run in progress (its span not yet purged) may have retired events of the person: gone from
    // their index (so not found below), still in the event log's files until the run's purge. The erasure purges
    // that span too, and the person's whole index range (the retired events' index keys).
    if (!for_retention) {
      Status rs = store_->Get(storage::Cf::kMeta, kRetentionPurgeKey, &retired_span);
      if (!rs.IsNotFound()) CDP_RETURN_IF_ERROR(rs);
      if (rs.ok()) batch.DeleteRange(storage::Cf::kEvents, prefix, storage::PrefixSuccessor(prefix));
    }
    auto iter = store_->NewIterator(storage::Cf::kEvents, prefix, storage::PrefixSuccessor(prefix));
    for (iter->Seek(prefix); iter->Valid(); iter->Next()) {
      std::string_view time_key = iter->key().substr(prefix.size());
      const int64_t t = storage::TimeKeyTime(time_key);
      const std::string_view event_id = storage::TimeKeyEventId(time_key);
      std::string document;
      std::string log_key = storage::TimeIndexKey(t, event_id, id);
      Status s = store_->Get(storage::Cf::kEventsByTime, log_key, &document);
      if (!s.IsNotFound()) CDP_RETURN_IF_ERROR(s);
      batch.Delete(storage::Cf::kEvents, iter->key());
      if (by_filter) {
        event_log_keys.push_back(std::move(log_key));
      } else {
        batch.Delete(storage::Cf::kEventsByTime, log_key);
      }
      if (s.ok()) ++events;
    }
    CDP_RETURN_IF_ERROR(iter->status());
    // Identifiers; with suppression, a keyed hash of each stays (Gdpr), so data naming them is refused.
    std::vector<std::string> suppress;
    std::string erased_at;
    storage::AppendBigEndian64(&erased_at, static_cast<uint64_t>(NowMicros()));
    int64_t suppressed_identifiers = 0;
    absl::flat_hash_set<std::string> own_hubs;
    std::vector<uint64_t> high_priority;  // the hashes other identifiers' hub sets may hold of the person's values
    for (const Identifier& ident : StoredIdentifiers(stored)) {
      batch.Delete(storage::Cf::kIdentities, IdentityKeyOf(ident));
      batch.Delete(storage::Cf::kIdentities, *own_hubs.insert(storage::HubKey(IdentityKeyOf(ident))).first);
      if (rules_->IsHighPriority(ident.type)) high_priority.push_back(StableHash(ident.type, ident.value));
      if (options_.suppress_erased_identifiers && !for_retention) {
        ++suppressed_identifiers;
        for (std::string& hash : SuppressionHashes(ident)) {
          batch.Put(storage::Cf::kPrivacy, storage::SuppressedKey(hash), erased_at);
          suppress.push_back(std::move(hash));
        }
      }
    }
    // Values profile writes removed from the person (formerIdHashes; a merge brings the merged profile's).
    if (options_.suppress_erased_identifiers && !for_retention) {
      for (const std::string& hex : FormerIdHashesOf(stored)) {
        std::string hash;
        if (!HexDecode(hex, &hash) || hash.size() != 16) continue;
        batch.Put(storage::Cf::kPrivacy, storage::SuppressedKey(hash), erased_at);
        suppress.push_back(std::move(hash));
      }
    }
    // Values the profile did not link (dropped for a limit, recorded in identityIssues) were hashed into hub sets too.
    if (const Json* issues = stored.Find("identityIssues"); issues != nullptr && issues->is_array()) {
      for (const Json& issue : issues->items()) {
        const Json* type = issue.Find("type");
        const Json* value = issue.Find("value");
        if (type == nullptr || !type->is_string() || value == nullptr || !value->is_string()) continue;
        if (rules_->IsHighPriority(type->as_string())) {
          high_priority.push_back(StableHash(type->as_string(), value->as_string()));
        }
      }
    }
    // And what the profile put into hub sets: values it no longer holds too (NoteHubHashes).
    for (uint64_t h : HubHashesOf(stored)) high_priority.push_back(h);
    // Suppression lists naming the person's identifiers keep them as keyed hashes (a retention run leaves them:
    // the lists are the operator's, and a person who comes back must stay suppressed).
    if (!for_retention) {
      std::vector<std::string> list_items;
      for (const Identifier& ident : StoredIdentifiers(stored)) list_items.push_back(IdentityKeyOf(ident));
      if (const Json* issues = stored.Find("identityIssues"); issues != nullptr && issues->is_array()) {
        for (const Json& issue : issues->items()) {
          const Json* type = issue.Find("type");
          const Json* value = issue.Find("value");
          if (type != nullptr && type->is_string() && value != nullptr && value->is_string()) {
            list_items.push_back(storage::IdentityKey(type->as_string(), value->as_string()));
          }
        }
      }
      items_lock = std::unique_lock<std::mutex>(suppression_items_mu_);  // until the erasure's write
      CDP_RETURN_IF_ERROR(HashSuppressionItems(list_items, /*restore=*/false, &batch));
    }
    std::vector<std::string> scrubbed_hubs;
    if (!for_retention) {
      CDP_RETURN_IF_ERROR(ScrubHubSets(high_priority, own_hubs, &batch, &scrubbed_hubs));
    } else if (!high_priority.empty()) {  // a run erases many: one scan at its end (ScrubPendingHubs), kept durable
      std::string pending;
      Status ps = store_->Get(storage::Cf::kMeta, kHubScrubPendingKey, &pending);
      if (!ps.IsNotFound()) CDP_RETURN_IF_ERROR(ps);
      pending.append(reinterpret_cast<const char*>(high_priority.data()), high_priority.size() * 8);
      batch.Put(storage::Cf::kMeta, kHubScrubPendingKey, pending);
    }
    // The profiles merged into this one (their redirects), and every merge record naming any of them: the
    // records hold snapshots of the person's documents.
    std::vector<std::string> ids = {id};
    if (const Json* merged = stored.Find("mergedIds"); merged != nullptr) {
      for (const Json& m : merged->items()) ids.push_back(m.as_string());
    }
    int64_t merges = 0, merged_profiles = 0;
    absl::flat_hash_set<std::string> erased_merges;  // each record counted once, whichever profile names it
    for (const std::string& pid : ids) {
      if (pid != id) {
        batch.Delete(storage::Cf::kProfiles, pid);
        ++merged_profiles;
        // Its events moved to the survivor at the merge; the index keys they had (deleted then) may still be in
        // table files: the range brings them into the purge.
        const std::string old_prefix = storage::ProfileEventsPrefix(pid);
        batch.DeleteRange(storage::Cf::kEvents, old_prefix, storage::PrefixSuccessor(old_prefix));
      }
      std::string merges_prefix = storage::ProfileMergesPrefix(pid);
      auto m = store_->NewIterator(storage::Cf::kMerges, merges_prefix, storage::PrefixSuccessor(merges_prefix));
      for (m->Seek(merges_prefix); m->Valid(); m->Next()) {
        std::string merge_id(m->key().substr(merges_prefix.size()));
        batch.Delete(storage::Cf::kMerges, m->key());
        std::string record;
        if (store_->Get(storage::Cf::kMerges, storage::MergeRecordKey(merge_id), &record).ok()) {
          batch.Delete(storage::Cf::kMerges, storage::MergeRecordKey(merge_id));
          if (erased_merges.insert(merge_id).second) ++merges;
        }
      }
      CDP_RETURN_IF_ERROR(m->status());
      CDP_RETURN_IF_ERROR(identity_.EraseBlockEntries(pid, &batch));  // fuzzy matching's blocking index
      CDP_RETURN_IF_ERROR(segments_.EraseManualMemberships(pid, &batch));
      // Fuzzy-match proposals naming the profile.
      std::string proposals_prefix = storage::ProfileProposalsPrefix(pid);
      auto q = store_->NewIterator(storage::Cf::kMerges, proposals_prefix, storage::PrefixSuccessor(proposals_prefix));
      for (q->Seek(proposals_prefix); q->Valid(); q->Next()) {
        std::string proposal_id(q->key().substr(proposals_prefix.size()));
        batch.Delete(storage::Cf::kMerges, q->key());
        std::string text;
        if (!store_->Get(storage::Cf::kMerges, storage::ProposalKey(proposal_id), &text).ok()) continue;
        batch.Delete(storage::Cf::kMerges, storage::ProposalKey(proposal_id));
        auto proposal = Json::Parse(text);
        const Json* pair = proposal.ok() ? proposal->Find("profileIds") : nullptr;
        if (pair == nullptr || pair->size() != 2) continue;
        const std::string a = pair->items()[0].as_string(), b = pair->items()[1].as_string();
        batch.Delete(storage::Cf::kMerges, storage::ProposalPairKey(a, b));
        batch.Delete(storage::Cf::kMerges, storage::ProfileProposalsPrefix(a) + proposal_id);
        batch.Delete(storage::Cf::kMerges, storage::ProfileProposalsPrefix(b) + proposal_id);
      }
      CDP_RETURN_IF_ERROR(q->status());
      // Idempotency keys whose value names the profile (Segment messageIds), unless since remembered for another.
      const std::string remembered_prefix = storage::RememberedByProfilePrefix(pid);
      auto k = store_->NewIterator(storage::Cf::kKeys, remembered_prefix, storage::PrefixSuccessor(remembered_prefix));
      for (k->Seek(remembered_prefix); k->Valid(); k->Next()) {
        batch.Delete(storage::Cf::kKeys, k->key());
        const std::string_view key = k->key().substr(remembered_prefix.size());
        std::string value;
        Status s = store_->Get(storage::Cf::kKeys, key, &value);
        if (!s.IsNotFound()) CDP_RETURN_IF_ERROR(s);
        if (s.ok() && RememberedProfileId(value) == pid) batch.Delete(storage::Cf::kKeys, key);
      }
      CDP_RETURN_IF_ERROR(k->status());
      // The consent history, and the tracking marker.
      const std::string consent_prefix = storage::ConsentHistoryPrefix(pid);
      batch.DeleteRange(storage::Cf::kPrivacy, consent_prefix, storage::PrefixSuccessor(consent_prefix));
      batch.Delete(storage::Cf::kPrivacy, storage::TrackingDeniedKey(pid));
      redirects_.erase(pid);
      sessions_.erase(pid);
    }
    batch.Delete(storage::Cf::kTraits, id);
    batch.Delete(storage::Cf::kProfiles, id);
    store_->AddToCounter(&batch, "profiles", -1);
    if (events > 0) store_->AddToCounter(&batch, "events", -events);
    if (merges > 0) store_->AddToCounter(&batch, "merges", -merges);
    if (merged_profiles > 0) store_->AddToCounter(&batch, "merged_profiles", -merged_profiles);
    // The audit log keeps what was done, not to whom. Undone should the Redact or the write fail.
    AuditLog::Redaction redaction;
    if (Status s = audit_log_.Redact(&batch, ids, &redaction); !s.ok()) {
      audit_log_.CancelRedaction(std::move(redaction));
      return s;
    }
    if (options_.suppress_erased_identifiers && !for_retention) {  // and their ids, so none is created again
      for (const std::string& pid : ids) {
        suppress.push_back(IdentifierHash(Identifier{std::string(kErasedProfileIdType), pid}));
        batch.Put(storage::Cf::kPrivacy, storage::SuppressedKey(suppress.back()), erased_at);
      }
    }
    batch.Put(storage::Cf::kMeta, kPurgePendingKey, "");  // until Purge is done (finished at open after a crash)
    Json record;
    if (request != nullptr) {  // the request's record, "purging" until the purge is done (or finished at open)
      record = Json::Object();
      record.Set("id", request->id);
      record.Set("type", "erasure");
      record.Set("status", "purging");
      record.Set("receivedAt", FormatTimestamp(request->received_us));
      record.Set("subjectHash", SubjectHash(id));
      record.Set("suppressedIdentifiers", suppressed_identifiers);
      batch.Put(storage::Cf::kPrivacy, storage::RequestKey(request->id), record.Dump());
    }
    // Readers of the log skip the person from before the write on. The drop filter is set only once the write is
    // durable (below): a flush before that must not drop events an erasure that may yet fail would not erase.
    if (by_filter) SetErasing({id}, true, /*readers=*/true, /*drop=*/false);
    // The tombstone path leaves tombstones naming the person until its purge ends; should the id be created again
    // (no suppression), a later erasure of it must not take the filter path.
    if (!by_filter && events > 0 && (for_retention || !options_.suppress_erased_identifiers)) {
      batch.Put(storage::Cf::kMeta, kEventLogDeletedKey, "");
    }
    auto written = store_->Write(&batch);
    if (items_lock.owns_lock()) items_lock.unlock();  // before the segments' notes (Audiences takes their lock first)
    if (!written.ok()) {
      if (by_filter) SetErasing({id}, false, /*readers=*/true, /*drop=*/false);
      audit_log_.CancelRedaction(std::move(redaction));
      return written.status();
    }
    sequence = *written;
    if (request != nullptr) request->record = std::move(record);  // written: the request exists
    for (const std::string& pid : ids) tracking_denied_.erase(pid);
    for (std::string& hash : suppress) suppressed_.insert(std::move(hash));
    for (const std::string& key : scrubbed_hubs)
      identity_cache_.Erase(std::string_view(key).substr(1));  // cached by identity key
    ForgetProfile(id, stored);
    segments_.NotifyChanged(ids, "erasure");  // the person and the profiles merged into them leave the index
    erased_ids = ids;
  }
  CDP_RETURN_IF_ERROR(store_->SyncUpTo(sequence));
  if (by_filter) {
    CDP_RETURN_IF_ERROR(store_->SyncWal());  // durable whatever sync_writes says, before the filter drops
    SetErasing({erased_id}, true, /*readers=*/false, /*drop=*/true);
  }
  (void)segments_.AfterWrite();  // records their exits from segments (and delivers them to subscribers)
  if (g_exit_before_purge_for_testing.load(std::memory_order_relaxed)) _exit(0);
  // Their segment memberships leave the change feed (the exits just recorded are delivered, never stored).
  // From here on `batch` is the record of what the erasure deleted, for the purge.
  CDP_RETURN_IF_ERROR(segments_.EraseFeedEntries(erased_ids, &batch));
  if (for_retention) return Status::OK();  // the run purges once, after all its erasures (PurgeRetained)
  // A call on the person whose entry was still held or queued: its entry is written now, redacted, deleting its
  // pending record (a Track's names its profile); the purge compacts the pending records' range (only its bounds:
  // never written), so that no table file keeps a deleted record's value.
  CDP_RETURN_IF_ERROR(audit_log_.Flush());
  batch.DeleteRange(storage::Cf::kPrivacy, storage::kAuditPendingPrefix,
                    storage::PrefixSuccessor(std::string(storage::kAuditPendingPrefix)));
  // Erasure is physical: no log, memtable or table file keeps the deleted values (or the tombstones' keys). Done
  // outside the lock (it compacts); writes go on meanwhile.
  // Should the purge fail, the person stays in the drop filter (their events are gone from every read) and the
  // pending marker has the next open finish it.
  CDP_RETURN_IF_ERROR(PurgeErased(&batch, std::move(event_log_keys)));
  if (!retired_span.empty()) {  // the run's marker stays: its own purge follows, and covers what it retires later
    CDP_ASSIGN_OR_RETURN(RetiredRange retired, RetiredRange::Parse(retired_span));
    storage::WriteBatch span(*store_);  // never written: the bounds of what to compact
    span.DeleteRange(storage::Cf::kEventsByTime, retired.first, retired.last + std::string(1, '\0'));
    CDP_RETURN_IF_ERROR(store_->Purge(&span));
  }
  if (by_filter) SetErasing({erased_id}, false, /*readers=*/true, /*drop=*/true);
  if (request == nullptr) return Status::OK();
  request->record.Set("status", "completed");
  const int64_t now = NowMicros();
  request->record.Set("completedAt", FormatTimestamp(now));
  request->record.Set("turnaroundMs", static_cast<double>(now - request->received_us) / 1000.0);
  return WriteRequestRecord(request->record);
}

std::atomic<bool> g_exit_before_purge_for_testing{false};

Status EngineImpl::PurgeErased(storage::WriteBatch* erased, std::vector<std::string> event_log_keys) {
  // Whole: the tail's log (its records, deleted by FlushTail's bulk load, name event ids) and the identifiers (the
  // person's earlier values - a replaced email, renamed or unlinked values - were deleted by earlier writes and
  // may sort anywhere among the others').
  return store_->Purge(erased, {storage::Cf::kIndexLog, storage::Cf::kIdentities}, kPurgePendingKey,
                       std::move(event_log_keys));
}

std::shared_ptr<const absl::flat_hash_set<std::string>> EngineImpl::erasing() const {
  std::lock_guard<std::mutex> lock(erasing_mu_);
  return erasing_;
}

void EngineImpl::SetErasing(const std::vector<std::string>& ids, bool on, bool readers, bool drop) {
  std::lock_guard<std::mutex> lock(erasing_mu_);
  auto count = [&](absl::flat_hash_map<std::string, int>* counts) {
    for (const std::string& id : ids) {
      if (on) {
        ++(*counts)[id];
      } else if (auto it = counts->find(id); it != counts->end() && --it->second <= 0) {
        counts->erase(it);
      }
    }
    auto set = std::make_shared<absl::flat_hash_set<std::string>>();
    for (const auto& [id, n] : *counts) set->insert(id);
    return set;
  };
  if (readers) {
    auto set = count(&erasing_count_);
    erasing_ = set->empty() ? nullptr : std::shared_ptr<const absl::flat_hash_set<std::string>>(set);
  }
  if (drop) {
    auto set = count(&dropping_count_);
    dropping_ = set->empty() ? nullptr : std::shared_ptr<const absl::flat_hash_set<std::string>>(set);
    UpdateEventLogDrop();
  }
}

void EngineImpl::UpdateEventLogDrop() {
  if (dropping_ == nullptr && horizons_->empty()) {
    store_->SetEventLogDrop({});
    return;
  }
  store_->SetEventLogDrop([erased = dropping_, retired = horizons_](std::string_view key, std::string_view value) {
    if (erased != nullptr) {
      const std::string_view profile = storage::TimeIndexProfile(key);
      if (!profile.empty() && erased->contains(std::string(profile))) return true;
    }
    return retired->RetiredStored(key, value);
  });
}

std::shared_ptr<const RetentionHorizons> EngineImpl::retention_horizons() const {
  std::lock_guard<std::mutex> lock(erasing_mu_);
  return horizons_;
}

void EngineImpl::SetRetentionHorizons(std::shared_ptr<const RetentionHorizons> horizons) {
  std::lock_guard<std::mutex> lock(erasing_mu_);
  horizons_ = std::move(horizons);
  UpdateEventLogDrop();
}

Status EngineImpl::LoadRetentionHorizons() {
  std::string stored;
  Status s = store_->Get(storage::Cf::kMeta, kRetentionHorizonsKey, &stored);
  if (s.IsNotFound()) {
    SetRetentionHorizons(std::make_shared<const RetentionHorizons>());
    return Status::OK();
  }
  CDP_RETURN_IF_ERROR(s);
  CDP_ASSIGN_OR_RETURN(RetentionHorizons horizons, RetentionHorizons::Parse(stored));
  SetRetentionHorizons(std::make_shared<const RetentionHorizons>(std::move(horizons)));
  return Status::OK();
}

Status EngineImpl::FinishPendingPurge() {
  CDP_RETURN_IF_ERROR(ScrubPendingHubs());  // a retention run's erasures a crash left unscrubbed
  std::string pending;
  Status s = store_->Get(storage::Cf::kMeta, kPurgePendingKey, &pending);
  if (s.IsNotFound()) return PurgeRetained(/*profiles_erased=*/false);  // a retention run's span, when one is left
  CDP_RETURN_IF_ERROR(s);
  return PurgeRetained(/*profiles_erased=*/true, /*at_open=*/true);  // PurgeEverything, then the retention marker
}

Status EngineImpl::PurgeEverything(bool at_open) {
  purged_at_open_ = true;
  // An erasure was written but the process stopped before it was physical: purge every column family whole. An
  // erasure by the drop filter left its person's events in the log, without a profile: the filter drops them.
  std::vector<std::string> orphans;
  if (at_open) {
    absl::flat_hash_map<std::string, bool> exists;
    auto events = store_->NewIterator(storage::Cf::kEventsByTime);
    for (events->SeekToFirst(); events->Valid(); events->Next()) {
      const std::string profile(storage::TimeIndexProfile(events->key()));
      auto [it, fresh] = exists.emplace(profile, true);
      if (!fresh) continue;
      std::string doc;
      Status s = store_->Get(storage::Cf::kProfiles, profile, &doc);
      if (!s.IsNotFound()) CDP_RETURN_IF_ERROR(s);
      it->second = s.ok();
      if (!s.ok()) orphans.push_back(profile);
    }
    CDP_RETURN_IF_ERROR(events->status());
  }
  storage::WriteBatch nothing(*store_);
  if (at_open) {
    // An erasure stopped before it deleted the person's past entries in the segments' change feed (a write of
    // its own, after the erasure's): the entries of profiles that no longer exist.
    std::vector<std::string> gone;
    const std::string root(storage::kSegmentFeedByProfileTag);
    auto feed = store_->NewIterator(storage::Cf::kMeta, root, storage::PrefixSuccessor(root));
    std::string last;
    for (feed->Seek(root); feed->Valid(); feed->Next()) {
      std::string_view rest = feed->key().substr(root.size());
      const std::string profile(rest.substr(0, rest.find('/')));
      if (profile == last) continue;
      last = profile;
      std::string doc;
      Status s = store_->Get(storage::Cf::kProfiles, profile, &doc);
      if (!s.IsNotFound()) CDP_RETURN_IF_ERROR(s);
      if (s.IsNotFound()) gone.push_back(profile);
    }
    CDP_RETURN_IF_ERROR(feed->status());
    feed.reset();
    CDP_RETURN_IF_ERROR(segments_.EraseFeedEntries(gone, &nothing));
  }
  SetErasing(orphans, true, /*readers=*/true, /*drop=*/true);
  std::vector<storage::Cf> all;
  for (int cf = 0; cf < static_cast<int>(storage::Cf::kCount); ++cf) all.push_back(static_cast<storage::Cf>(cf));
  Status purged = store_->Purge(&nothing, all, kPurgePendingKey);
  if (purged.ok()) SetErasing(orphans, false, /*readers=*/true, /*drop=*/true);
  return purged;
}

Status EngineImpl::ScrubHubSets(const std::vector<uint64_t>& hashes, const absl::flat_hash_set<std::string>& skip,
                                storage::WriteBatch* batch, std::vector<std::string>* rewritten) {
  if (hashes.empty()) return Status::OK();
  // A retention run scrubs the hashes of every profile it erased at once: a set, not a list, to look them up in.
  const absl::flat_hash_set<uint64_t> erased(hashes.begin(), hashes.end());
  const std::string prefix = storage::HubKey("");
  auto iter = store_->NewIterator(storage::Cf::kIdentities, prefix, storage::PrefixSuccessor(prefix));
  std::string set;
  for (iter->Seek(prefix); iter->Valid(); iter->Next()) {
    if (!skip.empty() && skip.contains(std::string(iter->key()))) continue;  // deleted by the erasure itself
    set.assign(iter->value());
    bool changed = false;
    for (size_t i = 0; i + 8 <= set.size(); i += 8) {
      uint64_t h = 0;
      std::memcpy(&h, set.data() + i, 8);  // as UpdateHubs stores them
      if (!erased.contains(h)) continue;
      // Replaced, not removed: the count of distinct people seen with the value is what makes it a hub, and an
      // erasure must not turn a hub back into a value that links strangers.
      if (RAND_bytes(reinterpret_cast<unsigned char*>(set.data() + i), 8) != 1) {
        return Status::Internal("cannot draw random bytes (OpenSSL RAND_bytes failed)");
      }
      changed = true;
    }
    if (!changed) continue;
    std::string key(iter->key());
    batch->Delete(storage::Cf::kIdentities, key);  // first, so the purge compacts the old set away (Store::Purge)
    batch->Put(storage::Cf::kIdentities, key, set);
    rewritten->push_back(std::move(key));
  }
  return iter->status();
}

Status EngineImpl::ScrubPendingHubs() {
  std::vector<std::string> rewritten;
  uint64_t sequence = 0;
  {
    std::lock_guard<std::mutex> lock(write_mu_);
    std::unique_lock<std::shared_mutex> exclusive;  // no batch holds a copy of a hub set
    CDP_RETURN_IF_ERROR(SettleInFlight(&exclusive));
    std::string pending;
    Status s = store_->Get(storage::Cf::kMeta, kHubScrubPendingKey, &pending);
    if (s.IsNotFound()) return Status::OK();
    CDP_RETURN_IF_ERROR(s);
    std::vector<uint64_t> hashes(pending.size() / 8);
    std::memcpy(hashes.data(), pending.data(), hashes.size() * 8);
    storage::WriteBatch batch(*store_);
    CDP_RETURN_IF_ERROR(ScrubHubSets(hashes, {}, &batch, &rewritten));
    batch.Delete(storage::Cf::kMeta, kHubScrubPendingKey);
    CDP_ASSIGN_OR_RETURN(sequence, store_->Write(&batch));
    for (const std::string& key : rewritten)
      identity_cache_.Erase(std::string_view(key).substr(1));  // cached by identity key
  }
  return store_->SyncUpTo(sequence);
}

void EngineImpl::ForgetProfile(std::string_view id, const Json& stored) {
  sessions_.erase(std::string(id));
  for (const Identifier& ident : StoredIdentifiers(stored)) identity_cache_.Erase(IdentityKeyOf(ident));
}

}  // namespace internal
}  // namespace cdp
