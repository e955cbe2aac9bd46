// Copyright 2026 The libcdp Authors.
//
// Data subjects' requests (include/cdp/privacy.h, Gdpr): the access export, erasure recorded as a request, the
// request records (Cf::kPrivacy "r"), and the suppression of erased identifiers (keyed hashes, "s"), which the
// write path checks before it links an identifier.

#include <openssl/rand.h>

#include <algorithm>
#include <cstring>
#include <functional>
#include <map>

#include "core/ids.h"
#include "engine/engine_impl.h"
#include "fmt/format.h"
#include "storage/keys.h"

namespace cdp::internal {

namespace {

// kMeta: the HMAC key of the privacy hashes (32 random bytes), created at the first open.
constexpr std::string_view kPrivacyKeyKey = "privacy_hash_key";
constexpr size_t kPrivacyKeyBytes = 32;

std::string Hmac(const std::string& key, std::string_view message) { return HmacSha256(key, message); }

Json NewRequestRecord(std::string_view id, std::string_view type, int64_t received_us) {
  Json r = Json::Object();
  r.Set("id", id);
  r.Set("type", type);
  r.Set("receivedAt", FormatTimestamp(received_us));
  return r;
}

// Marks a record finished now: status, completedAt, turnaroundMs (from receivedAt).
void Finish(Json* record, std::string_view status, int64_t received_us, const Status& error = Status::OK()) {
  const int64_t now = NowMicros();
  record->Set("status", status);
  record->Set("completedAt", FormatTimestamp(now));
  record->Set("turnaroundMs", static_cast<double>(now - received_us) / 1000.0);
  if (!error.ok()) {  // the code only: messages name what the caller passed (an erased person's id, say)
    record->Set("error", Json::Object().Set("code", StatusCodeName(error.code())));
  }
}

}  // namespace

// ---- Keys, hashes, suppression
// ---------------------------------------------------------------------------------------

Status EngineImpl::LoadPrivacy() {
  Status s = store_->Get(storage::Cf::kMeta, kPrivacyKeyKey, &privacy_key_);
  if (s.IsNotFound()) {
    privacy_key_.resize(kPrivacyKeyBytes);
    if (RAND_bytes(reinterpret_cast<unsigned char*>(privacy_key_.data()), kPrivacyKeyBytes) != 1) {
      return Status::Internal("cannot draw a random key (OpenSSL RAND_bytes failed)");
    }
    storage::WriteBatch batch(*store_);
    batch.Put(storage::Cf::kMeta, kPrivacyKeyKey, privacy_key_);
    CDP_RETURN_IF_ERROR(store_->Write(&batch).status());
  } else {
    CDP_RETURN_IF_ERROR(s);
    if (privacy_key_.size() != kPrivacyKeyBytes) return Status::DataLoss("the stored privacy hash key is corrupt");
  }
  std::string prefix(storage::kSuppressedPrefix);
  auto iter = store_->NewIterator(storage::Cf::kPrivacy, prefix, storage::PrefixSuccessor(prefix));
  for (iter->Seek(prefix); iter->Valid(); iter->Next()) {
    suppressed_.insert(std::string(iter->key().substr(prefix.size())));
  }
  CDP_RETURN_IF_ERROR(iter->status());
  iter.reset();  // an open iterator keeps table files the purge below replaces, and the purge waits for them
  // Erasures a crash (or a failed purge) left "purging": made physical now, unless FinishPendingPurge just did.
  // (The pending marker is one key: a later erasure's purge may have cleared it before this one's ran.)
  prefix = std::string(storage::kRequestPrefix);
  auto requests = store_->NewIterator(storage::Cf::kPrivacy, prefix, storage::PrefixSuccessor(prefix));
  storage::WriteBatch finished(*store_);
  for (requests->Seek(prefix); requests->Valid(); requests->Next()) {
    auto record = Json::Parse(requests->value());
    if (!record.ok()) return Status::DataLoss("a privacy request record is corrupt");
    const Json* status = record->Find("status");
    if (status == nullptr || status->as_string() != "purging") continue;
    auto received = ParseTimestamp(*record->Find("receivedAt"));
    Finish(&*record, "completed", received.ok() ? *received : NowMicros());
    finished.Put(storage::Cf::kPrivacy, requests->key(), record->Dump());
  }
  CDP_RETURN_IF_ERROR(requests->status());
  requests.reset();
  if (finished.Count() > 0 && !purged_at_open_) CDP_RETURN_IF_ERROR(PurgeEverything(/*at_open=*/true));
  if (finished.Count() > 0) CDP_RETURN_IF_ERROR(store_->Write(&finished).status());
  return Status::OK();
}

std::string EngineImpl::IdentifierHash(const Identifier& id) const {
  return Hmac(privacy_key_, "identifier\n" + storage::IdentityKey(id.type, id.value)).substr(0, 16);
}

std::vector<std::string> EngineImpl::SuppressionHashes(const Identifier& id) const {
  std::vector<std::string> hashes = {IdentifierHash(id)};
  if (id.type == "email") {
    if (std::string canonical = CanonicalGmail(id.value); canonical != id.value) {
      hashes.push_back(IdentifierHash(Identifier{id.type, std::move(canonical)}));
    }
  }
  return hashes;
}

std::string EngineImpl::KeyedHashHex(std::string_view data) const { return Hex(Hmac(privacy_key_, data)); }

std::string EngineImpl::SuppressionItemHash(std::string_view identity_key) const {
  return KeyedHashHex("suppression list item\n" + std::string(identity_key));
}

Status EngineImpl::HashSuppressionItems(const std::vector<std::string>& identity_keys, bool restore,
                                        storage::WriteBatch* batch) {
  const std::string lists(storage::kSuppressionListPrefix);
  auto iter = store_->NewIterator(storage::Cf::kMeta, lists, storage::PrefixSuccessor(lists));
  std::string unused;
  for (iter->Seek(lists); iter->Valid(); iter->Next()) {
    const std::string prefix = storage::SuppressionItemPrefix(iter->key().substr(lists.size()));
    for (const std::string& key : identity_keys) {
      const std::string plain = prefix + key;
      const std::string hashed = prefix + storage::kHashedItemMark + SuppressionItemHash(key);
      const std::string& from = restore ? hashed : plain;
      Status s = store_->Get(storage::Cf::kMeta, from, &unused);
      if (s.IsNotFound()) continue;
      CDP_RETURN_IF_ERROR(s);
      batch->Delete(storage::Cf::kMeta, from);  // an erasure's purge compacts the value away (Store::Purge)
      batch->Put(storage::Cf::kMeta, restore ? plain : hashed, "");
    }
  }
  return iter->status();
}

std::string EngineImpl::SubjectHash(std::string_view profile_id) const {
  const std::string mac = Hmac(privacy_key_, "subject\n" + std::string(profile_id));
  return Hex(std::string_view(mac).substr(0, 16));
}

Status EngineImpl::CheckNotSuppressed(const std::vector<Identifier>& ids) const {
  if (suppressed_.empty() || !options_.suppress_erased_identifiers) return Status::OK();
  for (const Identifier& id : ids) {
    const std::vector<std::string> hashes = SuppressionHashes(id);
    if (std::any_of(hashes.begin(), hashes.end(), [&](const std::string& h) { return suppressed_.contains(h); })) {
      return Status::FailedPrecondition(
          fmt::format(
              "this {} belongs to an erased person: it is suppressed and not stored again (Gdpr::Unsuppress lifts it)",
              id.type),
          std::string(kSuppressedField));
    }
  }
  return Status::OK();
}

Status EngineImpl::LiftSuppression(const std::vector<std::string>& hashes, const std::string& identity_key) {
  uint64_t sequence = 0;
  {
    std::lock_guard<std::mutex> lock(write_mu_);
    CDP_RETURN_IF_ERROR(write_error_);
    storage::WriteBatch batch(*store_);
    for (const std::string& hash : hashes) batch.Delete(storage::Cf::kPrivacy, storage::SuppressedKey(hash));
    std::lock_guard<std::mutex> items_lock(suppression_items_mu_);
    CDP_RETURN_IF_ERROR(HashSuppressionItems({identity_key}, /*restore=*/true, &batch));
    if (batch.Count() == 0) return Status::OK();
    CDP_ASSIGN_OR_RETURN(sequence, store_->Write(&batch));
    for (const std::string& hash : hashes) suppressed_.erase(hash);
  }
  return store_->SyncUpTo(sequence);
}

Status EngineImpl::WriteRequestRecord(const Json& record) {
  storage::WriteBatch batch(*store_);
  batch.Put(storage::Cf::kPrivacy, storage::RequestKey(record.Find("id")->as_string()), record.Dump());
  CDP_ASSIGN_OR_RETURN(uint64_t sequence, store_->Write(&batch));
  return store_->SyncUpTo(sequence);
}

// ---- Gdpr -----------------------------------------------------------------------------------------------------------

Result<Json> GdprImpl::Export(std::string_view profile_id) {
  const int64_t received = NowMicros();
  const std::string request_id = "gdpr_" + NewMonotonicId();
  Json record = NewRequestRecord(request_id, "access", received);
  auto build = [&]() -> Result<Json> {
    CDP_RETURN_IF_ERROR(ValidateId(profile_id, "profileId"));
    std::string id;
    CDP_RETURN_IF_ERROR(engine_->ReadLiveProfile(profile_id, &id).status());
    record.Set("subjectHash", engine_->SubjectHash(id));
    Json out = Json::Object();
    out.Set("requestId", request_id);
    out.Set("generatedAt", FormatTimestamp(NowMicros()));
    out.Set("profileId", id);
    CDP_ASSIGN_OR_RETURN(Json profile, engine_->profiles_impl().Get(id));
    CDP_ASSIGN_OR_RETURN(Json identity, engine_->identity_impl().ExplainUnaudited(id));
    Json events = Json::Array();
    EventQuery query;
    query.limit = engine_->options().max_page_size;
    do {
      CDP_ASSIGN_OR_RETURN(Page page, engine_->profiles_impl().Timeline(id, query));
      for (Json& e : page.items) events.Push(std::move(e));
      query.cursor = std::move(page.next_cursor);
    } while (!query.cursor.empty());
    CDP_ASSIGN_OR_RETURN(std::vector<Json> sessions, engine_->profiles_impl().Sessions(id));
    Json session_list = Json::Array();
    for (Json& s : sessions) session_list.Push(std::move(s));
    CDP_ASSIGN_OR_RETURN(Json consent, engine_->ConsentOf(id, SIZE_MAX));
    Json segments = Json::Array();
    if (const Json* member_of = profile.Find("segments"); member_of != nullptr) {
      for (const Json& seg : member_of->items()) {
        auto definition = engine_->segments().Get(seg.as_string());
        Json entry = Json::Object().Set("id", seg);
        if (definition.ok()) entry.Set("name", *definition->Find("name"));
        segments.Push(std::move(entry));
      }
    }
    out.Set("profile", std::move(profile));
    out.Set("identity", std::move(identity));
    out.Set("events", std::move(events));
    out.Set("sessions", std::move(session_list));
    out.Set("consent", std::move(consent));
    out.Set("segments", std::move(segments));
    // The audit entries naming the person or a profile merged into them (ids from the stored document, whoever
    // asks), newest first, each once, reduced to what was done to them: when, by whom, what, how it went. Their
    // targets are left out (a search's entry names other people too).
    std::vector<std::string> subjects = {id};
    CDP_ASSIGN_OR_RETURN(Json stored, engine_->ReadStoredProfile(id));
    if (const Json* merged = stored.Find("mergedIds"); merged != nullptr && merged->is_array()) {
      for (const Json& m : merged->items()) {
        if (m.is_string()) subjects.push_back(m.as_string());
      }
    }
    std::map<int64_t, Json, std::greater<>> entries;  // by seq, newest first
    for (const std::string& subject : subjects) {
      Json filter = Json::Object().Set("target", subject).Set("limit", 1000);
      while (true) {
        CDP_ASSIGN_OR_RETURN(Json page, engine_->audit_log().List(filter));
        for (const Json& entry : page.Find("items")->items()) {
          Json kept = Json::Object();
          for (const char* key : {"seq", "at", "principal", "operation", "outcome", "count"}) {
            if (const Json* v = entry.Find(key); v != nullptr) kept.Set(key, *v);
          }
          entries.emplace(entry.Find("seq")->as_int(), std::move(kept));
        }
        const Json* next = page.Find("nextCursor");
        if (next == nullptr || next->is_null()) break;
        filter.Set("cursor", *next);
      }
    }
    Json audit = Json::Array();
    for (auto& [seq, entry] : entries) audit.Push(std::move(entry));
    out.Set("audit", std::move(audit));
    return out;
  };
  Result<Json> out = build();
  Finish(&record, out.ok() ? "completed" : "failed", received, out.status());
  CDP_RETURN_IF_ERROR(engine_->WriteRequestRecord(record));
  return out;
}

Result<Json> GdprImpl::Erase(std::string_view profile_id) {
  EngineImpl::ErasureRequest request;
  request.id = "gdpr_" + NewMonotonicId();
  request.received_us = NowMicros();
  Status s = ValidateId(profile_id, "profileId");
  if (s.ok()) s = engine_->DeleteProfile(profile_id, &request);
  if (!s.ok() && request.record.is_null()) {  // nothing was erased: a failed request
    Json record = NewRequestRecord(request.id, "erasure", request.received_us);
    Finish(&record, "failed", request.received_us, s);
    CDP_RETURN_IF_ERROR(engine_->WriteRequestRecord(record));
  }
  CDP_RETURN_IF_ERROR(s);
  return request.record;
}

Result<Json> GdprImpl::GetRequest(std::string_view request_id) {
  std::string value;
  Status s = engine_->store().Get(storage::Cf::kPrivacy, storage::RequestKey(request_id), &value);
  if (s.IsNotFound()) return Status::NotFound(fmt::format("privacy request {} does not exist", request_id));
  CDP_RETURN_IF_ERROR(s);
  auto record = Json::Parse(value);
  if (!record.ok()) return Status::DataLoss("a privacy request record is corrupt");
  return record;
}

Result<Json> GdprImpl::ListRequests(const Json& filter) {
  if (!filter.is_null() && !filter.is_object()) return Status::InvalidArgument("expected an object of filters");
  std::string type, status, subject, cursor;
  int64_t limit = 100;
  if (filter.is_object()) {
    for (const auto& [key, value] : filter.members()) {
      if (value.is_null()) continue;
      if (key == "limit") {
        if (!value.is_int() || value.as_int() < 1 || value.as_int() > 1000) {
          return Status::InvalidArgument("expected an integer from 1 to 1000", key);
        }
        limit = value.as_int();
        continue;
      }
      if (!value.is_string() || value.as_string().size() > 128) {
        return Status::InvalidArgument("expected a string of at most 128 bytes", key);
      }
      const std::string& v = value.as_string();
      if (key == "type") {
        if (v != "access" && v != "erasure") return Status::InvalidArgument("expected access or erasure", key);
        type = v;
      } else if (key == "status") {
        if (v != "completed" && v != "failed" && v != "purging") {
          return Status::InvalidArgument("expected completed, failed or purging", key);
        }
        status = v;
      } else if (key == "profileId") {
        subject = engine_->SubjectHash(v);
      } else if (key == "cursor") {
        cursor = v;  // the id of the last request of the previous page
        if (!cursor.empty() && (!cursor.starts_with("gdpr_") || !ValidateId(cursor, "cursor").ok())) {
          return Status::InvalidArgument("malformed cursor (expected a nextCursor of this list)", "cursor");
        }
      } else {
        return Status::InvalidArgument("unknown filter (expected type, status, profileId, limit, cursor)", key);
      }
    }
  }
  // Newest first: from the last record (ids are time-ordered) back, or from before the cursor.
  std::string prefix(storage::kRequestPrefix);
  auto iter = engine_->store().NewIterator(storage::Cf::kPrivacy, prefix, storage::PrefixSuccessor(prefix));
  Json items = Json::Array();
  std::string next;
  std::vector<double> turnaround;
  for (iter->SeekToLast(); iter->Valid(); iter->Prev()) {
    auto record = Json::Parse(iter->value());
    if (!record.ok()) return Status::DataLoss("a privacy request record is corrupt");
    auto field = [&](const char* name) {
      const Json* v = record->Find(name);
      return v != nullptr && v->is_string() ? v->as_string() : std::string();
    };
    if ((!type.empty() && field("type") != type) || (!status.empty() && field("status") != status) ||
        (!subject.empty() && field("subjectHash") != subject)) {
      continue;
    }
    if (field("status") == "completed") turnaround.push_back(record->Find("turnaroundMs")->as_number());
    const std::string id = field("id");
    if (!cursor.empty() && id >= cursor) continue;
    if (static_cast<int64_t>(items.size()) < limit) {
      items.Push(std::move(record).value());
    } else if (next.empty()) {
      next = items.items().back().Find("id")->as_string();
    }
  }
  CDP_RETURN_IF_ERROR(iter->status());
  std::sort(turnaround.begin(), turnaround.end());
  auto pct = [&](double p) {
    if (turnaround.empty()) return Json();
    return Json(turnaround[std::min(turnaround.size() - 1, static_cast<size_t>(p * (turnaround.size() - 1) + 0.5))]);
  };
  Json stats = Json::Object();
  stats.Set("completed", static_cast<int64_t>(turnaround.size()));
  stats.Set("p50Ms", pct(0.5));
  stats.Set("p90Ms", pct(0.9));
  stats.Set("maxMs", turnaround.empty() ? Json() : Json(turnaround.back()));
  Json out = Json::Object();
  out.Set("items", std::move(items));
  out.Set("nextCursor", next.empty() ? Json() : Json(std::move(next)));  // null on the last page, as every list
  out.Set("turnaround", std::move(stats));
  return out;
}

namespace {

Result<Identifier> NormalizeOne(const IdentityRules& rules, std::string_view type, std::string_view value) {
  if (type == kErasedProfileIdType) {  // an erased profile's id
    CDP_RETURN_IF_ERROR(ValidateId(value, "value"));
    return Identifier{std::string(type), std::string(value)};
  }
  if (type == "userId") type = "customerId";  // its Segment name, accepted wherever identifiers come in
  Identifier id;
  IgnoredIdentifier ignored;
  if (!rules.Normalize(type, value, &id, &ignored)) {
    return Status::InvalidArgument(fmt::format("not an identifier: {}", ignored.reason),
                                   rules.Rule(type) == nullptr ? "type" : "value");
  }
  return id;
}

}  // namespace

Result<bool> GdprImpl::IsSuppressed(std::string_view type, std::string_view value) {
  CDP_ASSIGN_OR_RETURN(Identifier id, NormalizeOne(*engine_->rules(), type, value));
  return IsSuppressedNormalized(id);
}

Result<bool> GdprImpl::IsSuppressedNormalized(const Identifier& id) {
  for (const std::string& hash : engine_->SuppressionHashes(id)) {
    std::string stored;
    Status s = engine_->store().Get(storage::Cf::kPrivacy, storage::SuppressedKey(hash), &stored);
    if (s.IsNotFound()) continue;
    CDP_RETURN_IF_ERROR(s);
    return true;
  }
  return false;
}

Result<Json> GdprImpl::Unsuppress(std::string_view type, std::string_view value) {
  CDP_ASSIGN_OR_RETURN(Identifier id, NormalizeOne(*engine_->rules(), type, value));
  if (id.type == kErasedProfileIdType) {
    // Not while the erasure's purge runs: the event log's filter drops that profile id's events until it ends.
    auto erasing = engine_->erasing();
    if (erasing != nullptr && erasing->contains(id.value)) {
      return Status::Unavailable(fmt::format("profile {} is being erased; retry once the erasure returns", id.value));
    }
  }
  CDP_ASSIGN_OR_RETURN(bool was, IsSuppressedNormalized(id));
  std::vector<std::string> hashes;
  if (was) hashes = engine_->SuppressionHashes(id);
  CDP_RETURN_IF_ERROR(engine_->LiftSuppression(hashes, storage::IdentityKey(id.type, id.value)));
  return Json::Object().Set("type", id.type).Set("value", id.value).Set("unsuppressed", was);
}

}  // namespace cdp::internal
