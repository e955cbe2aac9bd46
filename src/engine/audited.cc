// Copyright 2026 The libcdp Authors.

#include "engine/audited.h"

#include <utility>

#include "absl/container/flat_hash_set.h"

namespace cdp {

namespace {
thread_local std::string g_principal = "local";
}  // namespace

ScopedPrincipal::ScopedPrincipal(std::string name) : previous_(std::exchange(g_principal, std::move(name))) {}
ScopedPrincipal::~ScopedPrincipal() { g_principal = std::move(previous_); }
const std::string& ScopedPrincipal::Current() { return g_principal; }

namespace internal {

void Record(AuditLog& log, std::string_view operation, const std::vector<std::string>& targets, const Status& outcome,
            int64_t count, bool read) {
  (void)log.Append(ScopedPrincipal::Current(), operation, targets, outcome, count, read);
}

namespace {

template <typename T>
const Status& StatusOf(const Result<T>& r) {
  return r.status();
}

// The "id" of a document result, or `fallback`.
std::string IdOf(const Result<Json>& r, std::string_view fallback) {
  if (r.ok()) {
    if (const Json* id = r->Find("id"); id != nullptr && id->is_string()) return id->as_string();
    if (const Json* id = r->Find("profileId"); id != nullptr && id->is_string()) return id->as_string();
  }
  return std::string(fallback);
}

std::vector<std::string> PageProfiles(const Result<Page>& page, const char* key) {
  std::vector<std::string> out;
  if (!page.ok()) return out;
  absl::flat_hash_set<std::string> seen;
  for (const Json& item : page->items) {
    const Json* id = item.Find(key);
    if (id != nullptr && id->is_string() && seen.insert(id->as_string()).second) out.push_back(id->as_string());
  }
  return out;
}

}  // namespace

// ---- Profiles -------------------------------------------------------------------------------------------------------

Result<Json> AuditedProfiles::Create(const Json& profile) {
  Result<Json> r = inner_->Create(profile);
  Record(*log_, "profiles.create", {IdOf(r, "")}, r.status());
  return r;
}
Result<Json> AuditedProfiles::Get(std::string_view id) {
  Result<Json> r = inner_->Get(id);
  Record(*log_, "profiles.get", {IdOf(r, "")}, r.status(), 0, /*read=*/true);
  return r;
}
Result<Json> AuditedProfiles::Replace(std::string_view id, const Json& profile) {
  Result<Json> r = inner_->Replace(id, profile);
  Record(*log_, "profiles.replace", {IdOf(r, "")}, r.status());
  return r;
}
Result<Json> AuditedProfiles::Patch(std::string_view id, const Json& patch) {
  Result<Json> r = inner_->Patch(id, patch);
  Record(*log_, "profiles.patch", {IdOf(r, "")}, r.status());
  return r;
}
Status AuditedProfiles::Delete(std::string_view id) {
  Status s = inner_->Delete(id);
  Record(*log_, "profiles.delete", {}, s);  // the person's id is gone with them; their entries are redacted
  return s;
}
Result<Page> AuditedProfiles::Search(const ProfileQuery& query) {
  Result<Page> r = inner_->Search(query);
  std::vector<std::string> ids = PageProfiles(r, "id");
  Record(*log_, "profiles.search", ids, r.status(), static_cast<int64_t>(ids.size()), /*read=*/true);
  return r;
}
Result<Page> AuditedProfiles::Timeline(std::string_view id, const EventQuery& query) {
  Result<Page> r = inner_->Timeline(id, query);
  Record(*log_, "profiles.timeline", PageProfiles(r, "profileId"), r.status(), 0, /*read=*/true);
  return r;
}
Result<std::vector<Json>> AuditedProfiles::Sessions(std::string_view id) {
  Result<std::vector<Json>> r = inner_->Sessions(id);
  Record(*log_, "profiles.sessions", {r.ok() ? std::string(id) : std::string()}, r.status(), 0, /*read=*/true);
  return r;
}

// ---- Events ---------------------------------------------------------------------------------------------------------

namespace {

std::vector<std::string> BatchProfiles(const Result<BatchResult>& r) {
  std::vector<std::string> out;
  if (!r.ok()) return out;
  absl::flat_hash_set<std::string> seen;
  for (const BatchItemResult& item : r->items) {
    if (item.status.ok() && seen.insert(item.result.profile_id).second) out.push_back(item.result.profile_id);
  }
  return out;
}

void RecordBatch(AuditLog& log, const Result<BatchResult>& r, std::string_view operation) {
  Record(log, operation, BatchProfiles(r), r.status(), r.ok() ? static_cast<int64_t>(r->items.size()) : 0);
}

}  // namespace

Result<TrackResult> AuditedEvents::Track(const Json& event) {
  Result<TrackResult> r = inner_->Track(event);
  Record(*log_, "events.track", {r.ok() ? r->profile_id : std::string()}, r.status());
  return r;
}
Result<BatchResult> AuditedEvents::TrackBatch(const std::vector<Json>& events) {
  Result<BatchResult> r = inner_->TrackBatch(events);
  RecordBatch(*log_, r, "events.trackBatch");
  return r;
}
Result<BatchResult> AuditedEvents::TrackBatch(const std::vector<Json>& events,
                                              const std::vector<IdempotencyKey>& keys) {
  Result<BatchResult> r = inner_->TrackBatch(events, keys);
  RecordBatch(*log_, r, "events.trackBatch");
  return r;
}
Result<BatchResult> AuditedEvents::TrackBatchJson(std::string_view json_text) {
  Result<BatchResult> r = inner_->TrackBatchJson(json_text);
  RecordBatch(*log_, r, "events.trackBatch");
  return r;
}
Result<Page> AuditedEvents::Query(const EventQuery& query) {
  Result<Page> r = inner_->Query(query);
  std::vector<std::string> ids = PageProfiles(r, "profileId");
  Record(*log_, "events.query", ids, r.status(), r.ok() ? static_cast<int64_t>(r->items.size()) : 0,
         /*read=*/true);
  return r;
}

// ---- Consent, Gdpr, Audit -------------------------------------------------------------------------------------------

Result<Json> AuditedConsent::Record(const Json& request) {
  Result<Json> r = inner_->Record(request);
  internal::Record(*log_, "consent.record", {IdOf(r, "")}, r.status());
  return r;
}
Result<Json> AuditedConsent::Get(std::string_view profile_id) {
  Result<Json> r = inner_->Get(profile_id);
  internal::Record(*log_, "consent.get", {IdOf(r, "")}, r.status(), 0, /*read=*/true);
  return r;
}

Result<Json> AuditedGdpr::Export(std::string_view profile_id) {
  Result<Json> r = inner_->Export(profile_id);
  Record(*log_, "gdpr.export", {IdOf(r, "")}, r.status());
  return r;
}
Result<Json> AuditedGdpr::Erase(std::string_view profile_id) {
  Result<Json> r = inner_->Erase(profile_id);
  Record(*log_, "gdpr.erase", {}, r.status());  // the request record (r) names the person only by a keyed hash
  return r;
}
Result<Json> AuditedGdpr::Unsuppress(std::string_view type, std::string_view value) {
  Result<Json> r = inner_->Unsuppress(type, value);
  Record(*log_, "gdpr.unsuppress", {}, r.status());
  return r;
}

Result<Json> AuditImpl::Verify() {
  CDP_ASSIGN_OR_RETURN(Json out, log_->Verify());
  out.Set("appendErrors", log_->append_errors());
  return out;
}

}  // namespace internal
}  // namespace cdp
