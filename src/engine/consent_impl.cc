// Copyright 2026 The libcdp Authors.
//
// Consent (include/cdp/privacy.h): statements recorded on the profile document and in the history (Cf::kPrivacy),
// the history of every other consent change (NoteConsent, called by each write of a profile document), and the set
// of profiles that deny tracking, which the event write path consults.

#include <algorithm>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "core/hex.h"
#include "core/ids.h"
#include "engine/engine_impl.h"
#include "fmt/format.h"
#include "storage/keys.h"

namespace cdp::internal {

Result<Json> ConsentImpl::Record(const Json& request) {
  CDP_ASSIGN_OR_RETURN(ConsentRequest parsed, ParseConsentRequest(request, NowMicros()));
  return engine_->RecordConsent(parsed);
}

Result<Json> ConsentImpl::Get(std::string_view profile_id) { return engine_->ConsentOf(profile_id); }

Result<Json> ConsentImpl::History(std::string_view profile_id, const Json& page) {
  return engine_->ConsentHistoryPage(profile_id, page);
}

namespace {

// kMeta: present once the tracking markers cover every profile (databases written before they existed get them at
// their first open, from a scan of the profiles).
constexpr std::string_view kTrackingMarkersKey = "consent_tracking_markers";

}  // namespace

Status EngineImpl::LoadTrackingDenied() {
  std::string done;
  Status s = store_->Get(storage::Cf::kMeta, kTrackingMarkersKey, &done);
  if (s.IsNotFound()) {
    storage::WriteBatch batch(*store_);
    auto profiles = store_->NewIterator(storage::Cf::kProfiles);
    for (profiles->SeekToFirst(); profiles->Valid(); profiles->Next()) {
      auto doc = Json::Parse(profiles->value());
      if (!doc.ok()) return Status::DataLoss(fmt::format("stored profile {} is corrupt", profiles->key()));
      if (TrackingDenied(doc->Find("consent"))) {
        batch.Put(storage::Cf::kPrivacy, storage::TrackingDeniedKey(profiles->key()), {});
      }
    }
    CDP_RETURN_IF_ERROR(profiles->status());
    batch.Put(storage::Cf::kMeta, kTrackingMarkersKey, "1");
    CDP_RETURN_IF_ERROR(store_->Write(&batch).status());
  } else {
    CDP_RETURN_IF_ERROR(s);
  }
  std::string prefix(storage::kTrackingDeniedPrefix);
  auto iter = store_->NewIterator(storage::Cf::kPrivacy, prefix, storage::PrefixSuccessor(prefix));
  for (iter->Seek(prefix); iter->Valid(); iter->Next()) {
    tracking_denied_.insert(std::string(iter->key().substr(prefix.size())));
  }
  return iter->status();
}

void EngineImpl::ApplyTrackingChanges(const std::vector<TrackingChange>& changes) {
  for (const TrackingChange& c : changes) {
    if (c.denied) {
      tracking_denied_.insert(c.profile_id);
    } else {
      tracking_denied_.erase(c.profile_id);
    }
  }
}

void EngineImpl::NoteTrackingMarker(storage::WriteBatch* batch, const std::string& id, const Json* before,
                                    const Json* after, std::vector<TrackingChange>* tracking) {
  const bool was_denied = TrackingDenied(before), denied = TrackingDenied(after);
  if (was_denied == denied) return;
  if (denied) {
    batch->Put(storage::Cf::kPrivacy, storage::TrackingDeniedKey(id), {});
  } else {
    batch->Delete(storage::Cf::kPrivacy, storage::TrackingDeniedKey(id));
  }
  tracking->push_back({id, denied});
}

void EngineImpl::NoteConsent(storage::WriteBatch* batch, const std::string& id, const Json* before, const Json* after,
                             ConsentRecord record, std::vector<TrackingChange>* tracking) {
  NoteTrackingMarker(batch, id, before, after, tracking);
  Json changes = ConsentChanges(before, after);
  if (changes.size() == 0 || after == nullptr) return;  // no change, or the profile was merged away
  record.profile_id = id;
  record.purposes = std::move(changes);
  record.recorded_us = NextConsentTime();
  if (record.at_us == 0) record.at_us = record.recorded_us;
  const std::string record_id = "cns_" + NewId();
  batch->Put(storage::Cf::kPrivacy, storage::ConsentHistoryKey(id, record.recorded_us, record_id),
             ConsentRecordToJson(record, record_id).Dump());
}

int64_t EngineImpl::NextConsentTime() {
  last_consent_us_ = std::max(NowMicros(), last_consent_us_ + 1);
  return last_consent_us_;
}

Status EngineImpl::ReadConsentHistory(std::string_view profile_id, std::vector<std::pair<std::string, Json>>* out,
                                      std::string_view after, size_t max) {
  std::string prefix = storage::ConsentHistoryPrefix(profile_id);
  auto iter = store_->NewIterator(storage::Cf::kPrivacy, prefix, storage::PrefixSuccessor(prefix));
  size_t taken = 0;
  for (iter->Seek(prefix + std::string(after)); iter->Valid() && taken < max; iter->Next()) {
    if (!after.empty() && iter->key().substr(prefix.size()) <= after) continue;
    ++taken;
    auto record = Json::Parse(iter->value());
    if (!record.ok()) return Status::DataLoss(fmt::format("a consent record of profile {} is corrupt", profile_id));
    out->emplace_back(std::string(iter->key().substr(prefix.size())), std::move(record).value());
  }
  return iter->status();
}

namespace {

Json ConsentDocument(std::string_view profile_id, const Json& consent, std::vector<Json> history, size_t keep) {
  Json out = Json::Object();
  out.Set("profileId", profile_id);
  out.Set("purposes", ConsentState(consent, history));
  out.Set("consentMode", ConsentModeOf(consent));
  const Json* updated = consent.Find("updatedAt");
  out.Set("updatedAt", updated != nullptr ? *updated : Json());
  Json list = Json::Array();
  const size_t first = history.size() > keep ? history.size() - keep : 0;
  for (size_t i = first; i < history.size(); ++i) list.Push(std::move(history[i]));
  out.Set("history", std::move(list));
  out.Set("historyCount", static_cast<int64_t>(history.size()));
  return out;
}

}  // namespace

Result<std::vector<Json>> EngineImpl::PersonConsentHistory(const std::string& id, const Json& stored) {
  std::vector<std::pair<std::string, Json>> records;
  CDP_RETURN_IF_ERROR(ReadConsentHistory(id, &records));
  if (const Json* merged = stored.Find("mergedIds"); merged != nullptr) {
    for (const Json& m : merged->items()) CDP_RETURN_IF_ERROR(ReadConsentHistory(m.as_string(), &records));
    std::stable_sort(records.begin(), records.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  }
  std::vector<Json> history;
  for (auto& [key, record] : records) history.push_back(std::move(record));
  return history;
}

Result<Json> EngineImpl::ConsentOf(std::string_view profile_id, size_t history_kept) {
  CDP_RETURN_IF_ERROR(ValidateId(profile_id, "profileId"));
  std::string id;
  CDP_ASSIGN_OR_RETURN(Json stored, ReadLiveProfile(profile_id, &id));
  CDP_ASSIGN_OR_RETURN(std::vector<Json> history, PersonConsentHistory(id, stored));
  const Json* consent = stored.Find("consent");
  return ConsentDocument(id, consent != nullptr ? *consent : Json::Object(), std::move(history), history_kept);
}

Result<Json> EngineImpl::ConsentHistoryPage(std::string_view profile_id, const Json& page) {
  CDP_RETURN_IF_ERROR(ValidateId(profile_id, "profileId"));
  if (!page.is_null() && !page.is_object())
    return Status::InvalidArgument("expected an object {\"limit\", \"cursor\"}");
  int64_t limit = 100;
  std::string after;
  if (page.is_object()) {
    for (const auto& [key, value] : page.members()) {
      if (value.is_null()) continue;
      if (key == "limit") {
        if (!value.is_int() || value.as_int() < 1 || value.as_int() > 1000) {
          return Status::InvalidArgument("expected an integer from 1 to 1000", key);
        }
        limit = value.as_int();
      } else if (key == "cursor") {
        // A record's sort key (recording time, 8 bytes, then its id), as nextCursor gave it.
        if (!value.is_string() || value.as_string().size() > 512 || !HexDecode(value.as_string(), &after) ||
            after.size() <= 8) {
          return Status::InvalidArgument("not a cursor of a consent history (use nextCursor as given)", key);
        }
      } else {
        return Status::InvalidArgument("unknown parameter (expected limit, cursor)", key);
      }
    }
  }
  std::string id;
  CDP_ASSIGN_OR_RETURN(Json stored, ReadLiveProfile(profile_id, &id));
  // Each profile's records are in key order: the page is the first `limit` after the cursor across all of them.
  std::vector<std::pair<std::string, Json>> records;
  const size_t take = static_cast<size_t>(limit) + 1;
  CDP_RETURN_IF_ERROR(ReadConsentHistory(id, &records, after, take));
  if (const Json* merged = stored.Find("mergedIds"); merged != nullptr) {
    for (const Json& m : merged->items()) CDP_RETURN_IF_ERROR(ReadConsentHistory(m.as_string(), &records, after, take));
    std::stable_sort(records.begin(), records.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  }
  Json next;
  if (records.size() > static_cast<size_t>(limit)) {
    records.resize(static_cast<size_t>(limit));
    next = Json(HexEncode(records.back().first));
  }
  Json items = Json::Array();
  for (auto& [key, record] : records) items.Push(std::move(record));
  Json out = Json::Object();
  out.Set("profileId", id);
  out.Set("items", std::move(items));
  out.Set("nextCursor", std::move(next));
  return out;
}

Result<Json> EngineImpl::RecordConsent(const ConsentRequest& request) {
  std::string named = request.profile_id;
  if (named.empty()) {
    CDP_ASSIGN_OR_RETURN(named, ResolveIdentifier(request.identifier_type, request.identifier_value));
    if (named.empty()) {
      return Status::NotFound(
          fmt::format("no profile holds {} \"{}\"", request.identifier_type, request.identifier_value.substr(0, 64)));
    }
  }
  const int64_t now = NowMicros();
  uint64_t sequence = 0;
  std::string id, record_id = "cns_" + NewId();
  Json applied = Json::Array(), superseded = Json::Array();
  {
    std::lock_guard<std::mutex> lock(write_mu_);
    CDP_RETURN_IF_ERROR(write_error_);
    std::unique_lock<std::shared_mutex> exclusive;  // after every batch in flight
    CDP_RETURN_IF_ERROR(SettleInFlight(&exclusive));
    CDP_ASSIGN_OR_RETURN(Json stored, ReadLiveProfile(named, &id));
    CDP_ASSIGN_OR_RETURN(std::vector<Json> history, PersonConsentHistory(id, stored));  // merged ones' included
    // A statement applies to the purposes it is the latest statement of; the others keep their later one. "ads"
    // is not applied on its own: it follows its signals (the statement states them too).
    ConsentRecord record;
    record.profile_id = id;
    record.purposes = Json::Object();
    Json patch = Json::Object();
    for (const auto& [purpose, granted] : request.purposes.members()) {
      record.purposes.Set(purpose, granted);
      if (purpose == "ads") continue;
      if (LatestStatementUs(history, purpose) > request.at_us) {
        superseded.Push(purpose);
        record.superseded.push_back(purpose);
      } else {
        applied.Push(purpose);
        patch.Set(purpose, granted);
      }
    }
    Json before = Json::Object();
    if (const Json* c = stored.Find("consent"); c != nullptr) before = *c;
    Json consent = before;
    consent.Erase("updatedAt");
    for (std::string_view signal : {"ad_storage", "ad_user_data", "ad_personalization"}) {
      if (patch.Find(signal) != nullptr) patch.Set("ads", Json());  // derived again from the signals
    }
    ApplyMergePatch(&consent, patch);
    CDP_ASSIGN_OR_RETURN(consent, NormalizeConsentObject(consent));
    if (const Json* ads = request.purposes.Find("ads"); ads != nullptr) {
      const Json* now_ads = consent.Find("ads");
      if (now_ads != nullptr && *now_ads == *ads) {
        applied.Push("ads");
      } else {  // a later statement of one of its signals decides it
        superseded.Push("ads");
        record.superseded.push_back("ads");
      }
    }
    Json changes = ConsentChanges(&before, &consent);
    // "ads" follows its signals: a change of it the statement did not name is recorded with it.
    if (const Json* ads = changes.Find("ads"); ads != nullptr && record.purposes.Find("ads") == nullptr) {
      record.purposes.Set("ads", *ads);
    }
    storage::WriteBatch batch(*store_);
    std::vector<TrackingChange> tracking;
    if (changes.size() > 0) {
      consent.Set("updatedAt", FormatTimestamp(now));
      stored.Set("consent", consent);
      stored.Set("updatedAt", FormatTimestamp(now));
      std::string text = stored.Dump();
      if (text.size() > options_.max_profile_bytes) {
        return Status::ResourceExhausted(fmt::format("profile of {} bytes would be over the limit of {} bytes",
                                                     text.size(), options_.max_profile_bytes));
      }
      batch.Put(storage::Cf::kProfiles, id, text);
      NoteTrackingMarker(&batch, id, &before, &consent, &tracking);
    }
    // Every statement is history, also one that changes nothing.
    record.source = request.source;
    record.policy_version = request.policy_version;
    record.at_us = request.at_us;
    record.recorded_us = NextConsentTime();
    record.via = "consent";
    batch.Put(storage::Cf::kPrivacy, storage::ConsentHistoryKey(id, record.recorded_us, record_id),
              ConsentRecordToJson(record, record_id).Dump());
    CDP_ASSIGN_OR_RETURN(sequence, store_->Write(&batch));
    ApplyTrackingChanges(tracking);
    if (changes.size() > 0) segments_.NotifyDocument({id}, "consent");
  }
  CDP_RETURN_IF_ERROR(store_->SyncUpTo(sequence));
  (void)segments_.AfterWrite();
  CDP_ASSIGN_OR_RETURN(Json out, ConsentOf(id));
  out.Set("recordId", record_id);
  out.Set("applied", std::move(applied));
  out.Set("superseded", std::move(superseded));
  return out;
}

}  // namespace cdp::internal
