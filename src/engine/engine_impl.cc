// Copyright 2026 The libcdp Authors.
//
// Engine::Open, and the write path: Ingest (events), WriteProfile and DeleteProfile.

#include "engine/engine_impl.h"

#include <algorithm>
#include <numeric>
#include <optional>
#include <shared_mutex>

#include "absl/container/flat_hash_set.h"
#include "cdp/version.h"
#include "core/ids.h"
#include "fmt/format.h"
#include "profiles/profile_model.h"
#include "storage/keys.h"

namespace cdp {

Result<std::unique_ptr<Engine>> Engine::Open(const Options& options, const std::string& path) {
  if (options.session_timeout_seconds <= 0) {
    return Status::InvalidArgument("session_timeout_seconds must be positive", "session_timeout_seconds");
  }
  if (options.max_json_depth < 2 || options.max_json_depth > 1000) {
    return Status::InvalidArgument("max_json_depth must be between 2 and 1000", "max_json_depth");
  }
  if (options.max_page_size == 0 || options.max_batch_items == 0) {
    return Status::InvalidArgument("max_page_size and max_batch_items must be positive");
  }
  auto store = storage::Store::Open(options, path);
  if (!store.ok()) return store.status();
  return std::unique_ptr<Engine>(new internal::EngineImpl(options, std::move(store).value()));
}

namespace internal {

namespace {

constexpr size_t kMaxSessionCache = 1'000'000;
constexpr size_t kMaxIdentityCache = 2'000'000;
constexpr size_t kMaxDeviceIds = 100;

std::string IdentityKeyOf(const Identifier& id) { return storage::IdentityKey(id.type, id.value); }

}  // namespace

EngineImpl::EngineImpl(const Options& options, std::unique_ptr<storage::Store> store)
    : Engine(options), store_(std::move(store)), profiles_(this), events_(this) {}

Result<Json> EngineImpl::Stats() {
  Json out = Json::Object();
  out.Set("profiles", store_->ReadCounter("profiles"));
  out.Set("events", store_->ReadCounter("events"));
  out.Set("formatVersion", kFormatVersion);
  out.Set("version", kVersion);
  out.Set("path", store_->path());
  return out;
}

Status EngineImpl::Flush() { return store_->Flush(); }

Result<Json> EngineImpl::ReadStoredProfile(std::string_view id) {
  std::string value;
  Status s = store_->Get(storage::Cf::kProfiles, id, &value);
  if (s.IsNotFound()) return Status::NotFound(fmt::format("profile {} does not exist", id));
  CDP_RETURN_IF_ERROR(s);
  auto doc = Json::Parse(value);
  if (!doc.ok()) return Status::DataLoss(fmt::format("stored profile {} is corrupt", id));
  return doc;
}

storage::Traits EngineImpl::ReadTraits(std::string_view id) {
  storage::Traits t;
  std::string value;
  if (store_->Get(storage::Cf::kTraits, id, &value).ok()) storage::Traits::Decode(value, &t);
  return t;
}

// ---- Ingest: the event write path ---------------------------------------------------------------------------------

// The state of one Ingest call: what this batch has changed so far, visible to its later events, and applied to
// the engine's caches only once the batch is committed.
class EngineImpl::IngestContext {
 public:
  IngestContext(EngineImpl* engine, int64_t received_us)
      : engine_(engine), store_(engine->store()), batch_(engine->store()), received_us_(received_us) {}

  // Fills `result` for one valid event and adds it to the batch.
  // `e` is consumed: its properties move into the stored event.
  Status Add(ParsedEvent& e, TrackResult* result) {
    result->event_id = e.id;
    std::string profile_id;
    CDP_RETURN_IF_ERROR(Resolve(e, &profile_id, &result->profile_created));
    result->profile_id = profile_id;
    std::string key = storage::EventKey(profile_id, e.time_us, e.id);
    if (e.client_id && !result->profile_created) {
      // A retry carries the same id, time and identifiers, so it lands on the same key: a no-op, reported with
      // the original's session. Looked for in this batch, in batches still being written, then in storage.
      if (auto it = batch_keys_.find(key); it != batch_keys_.end()) {
        result->duplicate = true;
        result->session_id = it->second;
        return Status::OK();
      }
      if (auto it = engine_->in_flight_keys_.find(key); it != engine_->in_flight_keys_.end()) {
        result->duplicate = true;
        result->session_id = it->second;
        return Status::OK();
      }
      std::string existing;
      Status s = store_.Get(storage::Cf::kEvents, key, &existing);
      if (s.ok()) {
        result->duplicate = true;
        result->session_id = SessionOf(existing);
        return Status::OK();
      }
      if (!s.IsNotFound()) return s;
    }
    CDP_RETURN_IF_ERROR(AttachIdentifiers(e, profile_id));
    if (!e.session_id.empty()) {
      result->session_id = e.session_id;
      NoteEventTime(profile_id, e.time_us, e.session_id);
    } else {
      CDP_RETURN_IF_ERROR(AssignSession(profile_id, e.time_us, &result->session_id));
    }
    if (e.client_id) batch_keys_.emplace(key, result->session_id);
    batch_.Put(storage::Cf::kEvents, key, StoredEvent(&e, profile_id, result->session_id, received_us_).Dump());
    batch_.Put(storage::Cf::kEventsByTime, storage::TimeIndexKey(e.time_us, e.id, profile_id), {});
    traits_[profile_id].AddEvent(e.time_us, e.purchase, e.purchase_micros);
    ++events_added_;
    return Status::OK();
  }

  // Completes the batch (profile documents, trait merge operands, counters). Returns whether it writes profile
  // documents, which must reach storage in the order they were built.
  bool Prepare() {
    for (auto& [id, doc] : dirty_profiles_) batch_.Put(storage::Cf::kProfiles, id, doc.Dump());
    for (auto& [id, traits] : traits_) batch_.Merge(storage::Cf::kTraits, id, traits.Encode());
    if (profiles_created_ > 0) store_.AddToCounter(&batch_, "profiles", profiles_created_);
    if (events_added_ > 0) store_.AddToCounter(&batch_, "events", events_added_);
    return !dirty_profiles_.empty();
  }
  bool empty() const { return batch_.Count() == 0; }
  // Event keys with caller-given ids, and their sessions (for retries racing this batch's write).
  const absl::flat_hash_map<std::string, std::string>& client_keys() const { return batch_keys_; }
  storage::WriteBatch* batch() { return &batch_; }

  // Makes the batch's session and identity changes visible to later batches.
  void Publish() {
    if (engine_->sessions_.size() + staged_sessions_.size() > kMaxSessionCache) engine_->sessions_.clear();
    for (auto& [id, state] : staged_sessions_) engine_->sessions_[id] = std::move(state);
    if (engine_->identity_cache_.size() + pending_identities_.size() > kMaxIdentityCache) {
      engine_->identity_cache_.clear();
    }
    for (auto& [key, id] : pending_identities_) engine_->identity_cache_[key] = std::move(id);
  }

 private:
  // The profile owning an identifier, or empty.
  Result<std::string> LookupIdentity(const std::string& key) {
    if (auto it = pending_identities_.find(key); it != pending_identities_.end()) return it->second;
    if (auto it = engine_->identity_cache_.find(key); it != engine_->identity_cache_.end()) return it->second;
    std::string owner;
    Status s = store_.Get(storage::Cf::kIdentities, key, &owner);
    if (s.IsNotFound()) return std::string();
    CDP_RETURN_IF_ERROR(s);
    pending_identities_.emplace(key, owner);  // known-good: safe to cache once the batch commits
    return owner;
  }

  Result<bool> ProfileExists(const std::string& id) {
    if (dirty_profiles_.contains(id) || staged_sessions_.contains(id) || engine_->sessions_.contains(id)) {
      return true;
    }
    std::string value;
    Status s = store_.Get(storage::Cf::kProfiles, id, &value);
    if (s.IsNotFound()) return false;
    CDP_RETURN_IF_ERROR(s);
    return true;
  }

  // The stored document of a profile this batch modifies.
  Result<Json*> MutableProfile(const std::string& id) {
    if (auto it = dirty_profiles_.find(id); it != dirty_profiles_.end()) return &it->second;
    CDP_ASSIGN_OR_RETURN(Json doc, engine_->ReadStoredProfile(id));
    return &dirty_profiles_.emplace(id, std::move(doc)).first->second;
  }

  Status Resolve(const ParsedEvent& e, std::string* profile_id, bool* created) {
    *created = false;
    if (!e.profile_id.empty()) {
      *profile_id = e.profile_id;
      CDP_ASSIGN_OR_RETURN(bool exists, ProfileExists(*profile_id));
      *created = !exists;
    } else {
      for (const Identifier& id : e.identifiers) {
        CDP_ASSIGN_OR_RETURN(*profile_id, LookupIdentity(IdentityKeyOf(id)));
        if (!profile_id->empty()) break;
      }
      if (profile_id->empty()) {
        *profile_id = NewId();
        *created = true;
      }
    }
    if (*created) {
      Json parts = Json::Object();
      for (const char* key : {"externalIds", "attributes", "consent", "computed"}) parts.Set(key, Json::Object());
      dirty_profiles_.emplace(*profile_id, BuildStoredProfile(*profile_id, std::move(parts), nullptr, received_us_));
      created_.insert(*profile_id);
      ++profiles_created_;
    }
    return Status::OK();
  }

  Status AttachIdentifiers(const ParsedEvent& e, const std::string& profile_id) {
    // Identifiers nobody holds yet join this profile. One held by another profile stays there: merging profiles is
    // identity resolution's decision, not ingestion's.
    for (const Identifier& id : e.identifiers) {
      std::string key = IdentityKeyOf(id);
      CDP_ASSIGN_OR_RETURN(std::string owner, LookupIdentity(key));
      if (!owner.empty()) continue;
      CDP_ASSIGN_OR_RETURN(Json * doc, MutableProfile(profile_id));
      if (Attach(doc, id)) {
        pending_identities_[key] = profile_id;
        batch_.Put(storage::Cf::kIdentities, key, profile_id);
      }
    }
    return Status::OK();
  }

  bool Attach(Json* doc, const Identifier& id) {
    Json* ext = doc->Find("externalIds");
    if (ext == nullptr) {
      doc->Set("externalIds", Json::Object());
      ext = doc->Find("externalIds");
    }
    if (id.type == "deviceId") {
      Json* devices = ext->Find("deviceIds");
      if (devices == nullptr) {
        ext->Set("deviceIds", Json::Array());
        devices = ext->Find("deviceIds");
      }
      if (devices->size() >= kMaxDeviceIds) return false;
      devices->Push(id.value);
    } else {
      if (ext->Find(id.type) != nullptr) return false;  // the profile already has another value of this type
      ext->Set(id.type, id.value);
      if (id.type == "email" || id.type == "phone") {
        Json* attributes = doc->Find("attributes");
        if (attributes != nullptr && attributes->Find(id.type) == nullptr) attributes->Set(id.type, id.value);
      }
    }
    doc->Set("updatedAt", FormatTimestamp(received_us_));
    return true;
  }

  // The latest event of a profile: staged in this batch, cached, or read from storage.
  Result<SessionState*> LatestEvent(const std::string& profile_id) {
    if (auto it = staged_sessions_.find(profile_id); it != staged_sessions_.end()) return &it->second;
    SessionState state;
    if (auto it = engine_->sessions_.find(profile_id); it != engine_->sessions_.end()) {
      state = it->second;
    } else if (created_.contains(profile_id)) {
      // A profile this batch created has no stored events.
    } else {
      std::string prefix = storage::ProfileEventsPrefix(profile_id);
      auto iter = store_.NewIterator(storage::Cf::kEvents, prefix, storage::PrefixSuccessor(prefix));
      iter->SeekToLast();
      if (iter->Valid()) {
        state.last_us = storage::TimeKeyTime(iter->key().substr(prefix.size()));
        state.session_id = SessionOf(iter->value());
      }
      CDP_RETURN_IF_ERROR(iter->status());
    }
    return &staged_sessions_.emplace(profile_id, std::move(state)).first->second;
  }

  static std::string SessionOf(std::string_view stored_event) {
    auto doc = Json::Parse(stored_event);
    if (!doc.ok()) return {};
    const Json* sid = doc->Find("sessionId");
    return sid != nullptr ? sid->as_string() : std::string();
  }

  void NoteEventTime(const std::string& profile_id, int64_t t, const std::string& session_id) {
    auto latest = LatestEvent(profile_id);
    if (latest.ok() && ((*latest)->session_id.empty() || t >= (*latest)->last_us)) {
      (*latest)->last_us = t;
      (*latest)->session_id = session_id;
    }
    batch_times_[profile_id].emplace_back(t, session_id);
  }

  Status AssignSession(const std::string& profile_id, int64_t t, std::string* session_id) {
    const int64_t timeout = engine_->options().session_timeout_seconds * 1'000'000;
    CDP_ASSIGN_OR_RETURN(SessionState * latest, LatestEvent(profile_id));
    if (latest->session_id.empty() || t >= latest->last_us) {
      // The common case: the newest event of the profile.
      *session_id = (!latest->session_id.empty() && t - latest->last_us < timeout) ? latest->session_id : NewId();
      latest->last_us = t;
      latest->session_id = *session_id;
    } else {
      // A late event: join the closest earlier event's session, else the closest later one's, else a new one.
      int64_t prev_t = 0, next_t = 0;
      std::string prev_s, next_s;
      std::string prefix = storage::ProfileEventsPrefix(profile_id);
      auto iter = store_.NewIterator(storage::Cf::kEvents, prefix, storage::PrefixSuccessor(prefix));
      std::string probe = storage::EventKey(profile_id, t, "");
      iter->SeekForPrev(probe);
      if (iter->Valid()) {
        prev_t = storage::TimeKeyTime(iter->key().substr(prefix.size()));
        prev_s = SessionOf(iter->value());
      }
      iter->Seek(probe);
      if (iter->Valid()) {
        next_t = storage::TimeKeyTime(iter->key().substr(prefix.size()));
        next_s = SessionOf(iter->value());
      }
      CDP_RETURN_IF_ERROR(iter->status());
      for (const auto& [bt, bs] : batch_times_[profile_id]) {
        if (bt <= t && (prev_s.empty() || bt > prev_t)) prev_t = bt, prev_s = bs;
        if (bt > t && (next_s.empty() || bt < next_t)) next_t = bt, next_s = bs;
      }
      if (!prev_s.empty() && t - prev_t < timeout) {
        *session_id = prev_s;
      } else if (!next_s.empty() && next_t - t < timeout) {
        *session_id = next_s;
      } else {
        *session_id = NewId();
      }
    }
    batch_times_[profile_id].emplace_back(t, *session_id);
    return Status::OK();
  }

  EngineImpl* engine_;
  storage::Store& store_;
  storage::WriteBatch batch_;
  int64_t received_us_;
  int64_t profiles_created_ = 0;
  int64_t events_added_ = 0;
  absl::flat_hash_map<std::string, Json> dirty_profiles_;
  absl::flat_hash_set<std::string> created_;
  absl::flat_hash_map<std::string, std::string> pending_identities_;
  absl::flat_hash_map<std::string, SessionState> staged_sessions_;
  absl::flat_hash_map<std::string, std::vector<std::pair<int64_t, std::string>>> batch_times_;
  absl::flat_hash_map<std::string, storage::Traits> traits_;
  absl::flat_hash_map<std::string, std::string> batch_keys_;  // event key of a client-given id -> session
};

Status EngineImpl::Ingest(std::vector<ParsedEvent>* events, std::vector<BatchItemResult>* results,
                          int64_t received_us) {
  // `results` has one entry per input; events[k] belongs to the k-th entry whose status is OK.
  std::vector<size_t> slots;
  for (size_t i = 0; i < results->size(); ++i) {
    if ((*results)[i].status.ok()) slots.push_back(i);
  }
  // Sessions are assigned in event-time order within a batch, so a batch's arrival order does not matter.
  std::vector<size_t> order(events->size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return (*events)[a].time_us < (*events)[b].time_us; });
  // Resolution, sessions and the batch are built under write_mu_. A batch that writes profile documents is also
  // written under it (and exclusively of in-flight batches); the common batch, events of known profiles, is
  // written after write_mu_ is released, so the next batch is built while this one is written. Its cache
  // changes are published first; should its write fail, the caches are dropped and the engine refuses writes.
  uint64_t sequence = 0;
  std::optional<IngestContext> ctx;
  std::shared_lock<std::shared_mutex> in_flight(commit_mu_, std::defer_lock);
  {
    std::lock_guard<std::mutex> lock(write_mu_);
    CDP_RETURN_IF_ERROR(write_error_);
    ctx.emplace(this, received_us);
    for (size_t k : order) {
      CDP_RETURN_IF_ERROR(ctx->Add((*events)[k], &(*results)[slots[k]].result));
    }
    const bool writes_profiles = ctx->Prepare();
    if (ctx->empty()) return Status::OK();
    if (writes_profiles) {
      std::unique_lock<std::shared_mutex> exclusive(commit_mu_);
      CDP_ASSIGN_OR_RETURN(sequence, store_->Write(ctx->batch()));
      ctx->Publish();
    } else {
      in_flight.lock();
      ctx->Publish();
      for (const auto& [key, session] : ctx->client_keys()) in_flight_keys_.emplace(key, session);
    }
  }
  if (in_flight.owns_lock()) {
    auto written = store_->Write(ctx->batch());
    in_flight.unlock();
    if (!ctx->client_keys().empty()) {
      std::lock_guard<std::mutex> lock(write_mu_);
      for (const auto& [key, session] : ctx->client_keys()) in_flight_keys_.erase(key);
    }
    if (!written.ok()) {
      std::lock_guard<std::mutex> lock(write_mu_);
      write_error_ = Status::Unavailable("a write failed (" + written.status().ToString() +
                                         "); reopen the database to write again");
      sessions_.clear();
      identity_cache_.clear();
      return written.status();
    }
    sequence = *written;
  }
  return store_->SyncUpTo(sequence);
}

// ---- Profile writes -----------------------------------------------------------------------------------------------

Result<Json> EngineImpl::WriteProfile(std::string_view id, const Json& input, ProfileWrite mode) {
  const bool create = mode == ProfileWrite::kCreate;
  const int64_t now = NowMicros();
  uint64_t sequence = 0;
  Json stored;
  {
    std::lock_guard<std::mutex> lock(write_mu_);
    CDP_RETURN_IF_ERROR(write_error_);
    std::unique_lock<std::shared_mutex> exclusive(commit_mu_);  // after every in-flight event batch
    Json previous;
    bool exists = false;
    auto read = ReadStoredProfile(id);
    if (read.ok()) {
      previous = std::move(read).value();
      exists = true;
    } else if (!read.status().IsNotFound()) {
      return read.status();
    }
    if (create && exists) return Status::AlreadyExists(fmt::format("profile {} already exists", id), "id");
    if (!create && !exists) return read.status();
    // A merge patch applies to the document as it is now, read under the lock, so that identifiers attached by
    // events (or another patch) in the meantime are kept.
    Json normalized;
    if (mode == ProfileWrite::kPatch) {
      Json document = WritableParts(previous);
      ApplyMergePatch(&document, input);
      CDP_ASSIGN_OR_RETURN(normalized, NormalizeProfileInput(document));
    } else {
      normalized = input;
    }

    std::vector<Identifier> now_ids = ProfileIdentifiers(normalized);
    std::vector<Identifier> old_ids = exists ? ProfileIdentifiers(previous) : std::vector<Identifier>{};
    storage::WriteBatch batch(*store_);
    for (const Identifier& ident : now_ids) {
      if (std::find(old_ids.begin(), old_ids.end(), ident) != old_ids.end()) continue;
      std::string key = IdentityKeyOf(ident);
      std::string owner;
      Status s = store_->Get(storage::Cf::kIdentities, key, &owner);
      if (s.ok() && owner != id) {
        std::string field = ident.type == "deviceId" ? "externalIds.deviceIds" : "externalIds." + ident.type;
        return Status::AlreadyExists(fmt::format("{} \"{}\" belongs to profile {}", ident.type, ident.value, owner),
                                     field);
      }
      if (!s.ok() && !s.IsNotFound()) return s;
      batch.Put(storage::Cf::kIdentities, key, id);
    }
    for (const Identifier& ident : old_ids) {
      if (std::find(now_ids.begin(), now_ids.end(), ident) == now_ids.end()) {
        batch.Delete(storage::Cf::kIdentities, IdentityKeyOf(ident));
      }
    }
    stored = BuildStoredProfile(id, normalized, exists ? &previous : nullptr, now);
    std::string text = stored.Dump();
    if (text.size() > options_.max_profile_bytes) {
      return Status::ResourceExhausted(
          fmt::format("profile of {} bytes is over the limit of {} bytes", text.size(), options_.max_profile_bytes));
    }
    batch.Put(storage::Cf::kProfiles, id, text);
    if (create) store_->AddToCounter(&batch, "profiles", 1);
    CDP_ASSIGN_OR_RETURN(sequence, store_->Write(&batch));
    for (const Identifier& ident : old_ids) identity_cache_.erase(IdentityKeyOf(ident));
    for (const Identifier& ident : now_ids) identity_cache_[IdentityKeyOf(ident)] = std::string(id);
  }
  CDP_RETURN_IF_ERROR(store_->SyncUpTo(sequence));
  return RenderProfile(stored, ReadTraits(id));
}

Status EngineImpl::DeleteProfile(std::string_view id) {
  uint64_t sequence = 0;
  {
    std::lock_guard<std::mutex> lock(write_mu_);
    CDP_RETURN_IF_ERROR(write_error_);
    std::unique_lock<std::shared_mutex> exclusive(commit_mu_);  // no event of this profile is still in flight
    CDP_ASSIGN_OR_RETURN(Json stored, ReadStoredProfile(id));
    storage::WriteBatch batch(*store_);
    int64_t events = 0;
    std::string prefix = storage::ProfileEventsPrefix(id);
    auto iter = store_->NewIterator(storage::Cf::kEvents, prefix, storage::PrefixSuccessor(prefix));
    for (iter->Seek(prefix); iter->Valid(); iter->Next()) {
      std::string_view time_key = iter->key().substr(prefix.size());
      batch.Delete(storage::Cf::kEvents, iter->key());
      batch.Delete(storage::Cf::kEventsByTime,
                   storage::TimeIndexKey(storage::TimeKeyTime(time_key), storage::TimeKeyEventId(time_key), id));
      ++events;
    }
    CDP_RETURN_IF_ERROR(iter->status());
    for (const Identifier& ident : ProfileIdentifiers(stored)) {
      batch.Delete(storage::Cf::kIdentities, IdentityKeyOf(ident));
    }
    batch.Delete(storage::Cf::kTraits, id);
    batch.Delete(storage::Cf::kProfiles, id);
    store_->AddToCounter(&batch, "profiles", -1);
    if (events > 0) store_->AddToCounter(&batch, "events", -events);
    CDP_ASSIGN_OR_RETURN(sequence, store_->Write(&batch));
    ForgetProfile(id, stored);
  }
  return store_->SyncUpTo(sequence);
}

void EngineImpl::ForgetProfile(std::string_view id, const Json& stored) {
  sessions_.erase(std::string(id));
  for (const Identifier& ident : ProfileIdentifiers(stored)) identity_cache_.erase(IdentityKeyOf(ident));
}

}  // namespace internal
}  // namespace cdp
