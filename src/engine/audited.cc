// Copyright 2026 The libcdp Authors.

#include "engine/audited.h"

#include <algorithm>
#include <chrono>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "core/ids.h"

namespace cdp {

namespace {
thread_local std::string g_principal = "local";
}  // namespace

ScopedPrincipal::ScopedPrincipal(std::string name) : previous_(std::exchange(g_principal, std::move(name))) {}
ScopedPrincipal::~ScopedPrincipal() { g_principal = std::move(previous_); }
const std::string& ScopedPrincipal::Current() { return g_principal; }

namespace internal {

void Record(AuditLog& log, std::string_view operation, const std::vector<std::string>& targets, const Status& outcome,
            int64_t count, bool read, std::string_view resource) {
  (void)log.Append(ScopedPrincipal::Current(), operation, targets, outcome, count, read, resource);
}

void RecordInParts(AuditLog& log, std::string_view operation, const std::vector<std::string>& targets,
                   const Status& outcome, int64_t count, bool read, std::string_view resource) {
  size_t i = 0;
  do {
    const size_t end = std::min(targets.size(), i + kMaxAuditTargets);
    Record(log, operation, std::vector<std::string>(targets.begin() + i, targets.begin() + end), outcome,
           i == 0 ? count : 0, read, resource);
    i = end;
  } while (i < targets.size());
}

namespace {
thread_local AuditedChange* g_current_change = nullptr;
}  // namespace

AuditedChange::AuditedChange(AuditLog& log, std::string_view operation)
    : log_(log), operation_(operation), outer_(g_current_change) {
  g_current_change = this;
}

AuditedChange::~AuditedChange() {
  if (!done_) Done({}, Status::Internal("the call ended without recording its outcome"));
  g_current_change = outer_;
}

AuditedChange* AuditedChange::Current() { return g_current_change; }

void AuditedChange::Expect(std::vector<std::string> targets, int64_t count) {
  if (done_ || !pending_key_.empty()) return;  // the record is written (or the call over) already
  expected_ = std::move(targets);
  expected_count_ = count;
}

namespace {
int64_t SteadyMicros() {
  return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}
}  // namespace

Json LatencyWindow::Summary() const {
  const uint64_t calls = count_.load(std::memory_order_relaxed);
  std::vector<int64_t> v;
  for (size_t i = 0; i < std::min<uint64_t>(calls, kSize); ++i) {
    const int64_t sample = samples_[i].load(std::memory_order_relaxed);
    if (sample >= 0) v.push_back(sample);  // a slot whose call has counted but not stored yet is skipped
  }
  std::sort(v.begin(), v.end());
  auto at = [&](double p) {
    return v.empty() ? Json() : Json(v[std::min(v.size() - 1, static_cast<size_t>(p * v.size()))]);
  };
  return Json::Object().Set("calls", static_cast<int64_t>(calls)).Set("p50Us", at(0.5)).Set("p99Us", at(0.99));
}

void AuditedChange::BeforeWrite(storage::WriteBatch* batch) {
  if (done_ || !pending_key_.empty()) return;
  // Not while an erasure's window lasts: a record naming the person would outlive it (AuditLog::Redact).
  const std::vector<std::string>* targets = expected_ && log_.complete_records_allowed() ? &*expected_ : nullptr;
  pending_key_ = log_.AddPending(batch, ScopedPrincipal::Current(), operation_, targets, expected_count_);
  record_complete_ = targets != nullptr;
}

void AuditedChange::Done(const std::vector<std::string>& targets, const Status& outcome, int64_t count,
                         std::string_view resource) {
  if (done_) return;
  done_ = true;
  // The record holds the entry when the call ends as it said it would (Append drops empty targets, as Expect's
  // never are).
  const bool complete =
      record_complete_ && outcome.ok() && resource.empty() && count == expected_count_ && targets == *expected_;
  (void)log_.Append(ScopedPrincipal::Current(), operation_, targets, outcome, count, /*read=*/false, resource,
                    std::move(pending_key_), complete);
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

// ---- Governance checks ----------------------------------------------------------------------------------------------

namespace {

// PermissionDenied naming the first condition (or group's) field the principal may not read. `ns`: "" or "events".
Status CheckFilterReads(const Access& access, const Filter& filter, std::string_view ns) {
  for (const Condition& c : filter.conditions) {
    // The whole tree: testing an object compares every member of it.
    CDP_RETURN_IF_ERROR(access.RequireReadTree(ns.empty() ? c.field : std::string(ns) + "." + c.field));
  }
  for (const Filter& group : filter.groups) CDP_RETURN_IF_ERROR(CheckFilterReads(access, group, ns));
  return Status::OK();
}

Status CheckEventQuery(const Access& access, const EventQuery& query) {
  if (access.admin()) return Status::OK();
  if (!access.defined()) return access.Require("read");
  if (!query.type.empty()) CDP_RETURN_IF_ERROR(access.RequireRead("events.type"));
  if (!query.name.empty()) CDP_RETURN_IF_ERROR(access.RequireRead("events.name"));
  if (!query.source.empty()) CDP_RETURN_IF_ERROR(access.RequireRead("events.source"));
  if (query.since_us || query.until_us) CDP_RETURN_IF_ERROR(access.RequireRead("events.timestamp"));
  return CheckFilterReads(access, query.where, "events");
}

void FilterPage(const Access& access, std::string_view ns, Result<Page>* page) {
  if (access.admin() || !page->ok()) return;
  for (Json& item : (*page)->items) access.Filter(ns, &item);
}

// A defined principal, or PermissionDenied.
Status RequireDefined(const Access& access) { return access.defined() ? Status::OK() : access.Require("read"); }

// Replace: write access to every writable field of `current` that `input` does not carry unchanged.
Status CheckReplaceClears(const Access& access, const Json& current, const Json& input) {
  if (access.admin()) return Status::OK();
  Json cleared = Json::Object();
  for (const char* section : {"externalIds", "attributes", "consent"}) {
    const Json* now = current.Find(section);
    if (now == nullptr || !now->is_object()) continue;
    const Json* given = input.Find(section);
    Json part = Json::Object();
    for (const auto& [key, value] : now->members()) {
      if (value.is_null() || (std::string_view(section) == "consent" && key == "updatedAt")) continue;
      const Json* same = given != nullptr ? given->Find(key) : nullptr;
      if (same == nullptr || *same != value) part.Set(key, value);
    }
    if (part.size() > 0) cleared.Set(section, std::move(part));
  }
  if (const Json* computed = current.Find("computed"); computed != nullptr) {
    const Json* given = input.Find("computed");
    Json part = Json::Object();
    for (const char* trait : {"churnRisk", "engagementScore"}) {
      const Json* value = computed->Find(trait);
      if (value == nullptr || value->is_null()) continue;
      const Json* same = given != nullptr ? given->Find(trait) : nullptr;
      if (same == nullptr || *same != *value) part.Set(trait, *value);
    }
    if (part.size() > 0) cleared.Set("computed", std::move(part));
  }
  Status s = access.CheckProfileWrite(cleared);
  if (!s.ok() && !s.field().empty() && !access.CanRead(s.field())) {
    // Naming a field the principal may not read would tell it exists.
    return Status::PermissionDenied("the replace would clear fields principal '" + access.principal() +
                                    "' may not write; use a patch");
  }
  return s;
}

}  // namespace

void FilterIdentity(const Access& access, Json* explain) {
  if (access.admin() || !explain->is_object()) return;
  auto readable_type = [&](const Json& item) {
    const Json* type = item.is_object() ? item.Find("type") : nullptr;
    return type != nullptr && type->is_string() && access.CanRead(ExternalIdsPath(type->as_string()));
  };
  if (Json* ids = explain->Find("identifiers"); ids != nullptr && ids->is_array()) {
    std::erase_if(ids->items(), [&](const Json& item) { return !readable_type(item); });
  }
  if (Json* issues = explain->Find("identityIssues"); issues != nullptr && issues->is_array()) {
    if (!access.CanRead("identityIssues")) {
      explain->Erase("identityIssues");
    } else {
      std::erase_if(issues->items(), [&](const Json& item) { return !readable_type(item); });
    }
  }
  if (!access.CanRead("mergedIds")) explain->Erase("mergedIds");
  if (Json* merges = explain->Find("merges"); merges != nullptr && merges->is_array()) {
    for (Json& merge : merges->items()) {
      if (Json* decisions = merge.Find("survivorship"); decisions != nullptr && decisions->is_object()) {
        std::erase_if(decisions->members(), [&](const Json::Member& d) { return !access.CanRead(d.first); });
      }
      if (Json* evidence = merge.Find("evidence"); evidence != nullptr && evidence->is_object()) {
        if (const Json* ident = evidence->Find("identifier"); ident != nullptr && !readable_type(*ident)) {
          evidence->Erase("identifier");
        }
      }
      if (Json* conflicts = merge.Find("conflicts"); conflicts != nullptr && conflicts->is_array()) {
        std::erase_if(conflicts->items(), [&](const Json& c) {
          const Json* field = c.is_object() ? c.Find("field") : nullptr;
          return field == nullptr || !field->is_string() || !access.CanRead(field->as_string());
        });
      }
    }
  }
}

// ---- Profiles -------------------------------------------------------------------------------------------------------

namespace {
// A profile write that names an identifier (a non-null externalIds member) links it, and is refused when the value
// is held by another profile (AlreadyExists): it would tell a principal that may not read the identifier whether
// the value is held. Such a principal may not name identifiers in profile writes at all, held or not (the same
// answer either way); Identity::Identify and events link them without telling (their answers hide the links).
Status CheckIdentifierReads(const Access& access, const Json& input) {
  if (access.admin() || !input.is_object()) return Status::OK();
  const Json* ids = input.Find("externalIds");
  if (ids == nullptr || !ids->is_object()) return Status::OK();
  for (const auto& [member, value] : ids->members()) {
    if (value.is_null() || (value.is_array() && value.size() == 0)) continue;  // removing links tells nothing
    const std::string path = "externalIds." + member;
    if (!access.CanRead(path)) {
      return Status(StatusCode::kPermissionDenied,
                    "a profile write may name an identifier only for a principal that may read it (a collision would "
                    "tell whether the value is held); Identity::Identify or an event links it without telling",
                    path);
    }
  }
  return Status::OK();
}

}  // namespace

Result<Json> AuditedProfiles::Create(const Json& profile) {
  AuditedChange change(*log_, "profiles.create");
  auto access = gov_->Current();
  Status allowed = RequireDefined(*access);
  if (allowed.ok()) allowed = access->CheckProfileWrite(profile);
  if (allowed.ok()) allowed = CheckIdentifierReads(*access, profile);
  Result<Json> r = allowed.ok() ? inner_->Create(profile) : Result<Json>(allowed);
  change.Done({IdOf(r, "")}, r.status());
  return r;
}
Result<Json> AuditedProfiles::CreateBatch(const std::vector<Json>& profiles) {
  AuditedChange change(*log_, "profiles.createBatch");
  auto access = gov_->Current();
  Status allowed = RequireDefined(*access);
  for (size_t i = 0; i < profiles.size() && allowed.ok(); ++i) {
    allowed = access->CheckProfileWrite(profiles[i]);
    if (allowed.ok()) allowed = CheckIdentifierReads(*access, profiles[i]);
    if (!allowed.ok()) allowed = allowed.WithFieldPrefix("[" + std::to_string(i) + "]");
  }
  Result<Json> r = allowed.ok() ? inner_->CreateBatch(profiles) : Result<Json>(allowed);
  std::vector<std::string> ids;
  if (r.ok()) {
    for (const Json& item : r->Find("results")->items()) {
      if (const Json* id = item.Find("id"); id != nullptr) ids.push_back(id->as_string());
    }
  }
  change.Done(ids, r.status(), static_cast<int64_t>(profiles.size()));
  return r;
}
Result<Json> AuditedProfiles::Get(std::string_view id) {
  auto access = gov_->Current();
  Status allowed = RequireDefined(*access);
  Result<Json> r = allowed.ok() ? inner_->Get(id) : Result<Json>(allowed);  // filtered by EngineImpl::Render
  Record(*log_, "profiles.get", {IdOf(r, "")}, r.status(), 0, /*read=*/true);
  return r;
}
Result<Json> AuditedProfiles::Replace(std::string_view id, const Json& profile) {
  AuditedChange change(*log_, "profiles.replace");
  auto access = gov_->Current();
  Status allowed = RequireDefined(*access);
  if (allowed.ok()) allowed = access->CheckProfileWrite(profile);
  if (allowed.ok()) allowed = CheckIdentifierReads(*access, profile);
  if (allowed.ok() && !access->admin()) {
    Result<Json> current = [&] {
      ScopedPrincipal unfiltered("local");  // the whole document, to see what the replace would clear
      return inner_->Get(id);
    }();
    if (current.ok()) allowed = CheckReplaceClears(*access, *current, profile);
  }
  Result<Json> r = allowed.ok() ? inner_->Replace(id, profile) : Result<Json>(allowed);
  change.Done({IdOf(r, "")}, r.status());
  return r;
}
Result<Json> AuditedProfiles::Patch(std::string_view id, const Json& patch) {
  AuditedChange change(*log_, "profiles.patch");
  auto access = gov_->Current();
  Status allowed = RequireDefined(*access);
  if (allowed.ok()) allowed = access->CheckProfileWrite(patch);
  if (allowed.ok()) allowed = CheckIdentifierReads(*access, patch);
  Result<Json> r = allowed.ok() ? inner_->Patch(id, patch) : Result<Json>(allowed);
  change.Done({IdOf(r, "")}, r.status());
  return r;
}
Status AuditedProfiles::Delete(std::string_view id) {
  AuditedChange change(*log_, "profiles.delete");
  Status s = gov_->Current()->Require("erase");
  if (s.ok()) s = inner_->Delete(id);
  change.Done({}, s);  // the person's id is gone with them; their entries are redacted
  return s;
}
Result<Page> AuditedProfiles::Search(const ProfileQuery& query) {
  auto access = gov_->Current();
  Status allowed = RequireDefined(*access);
  if (allowed.ok()) allowed = CheckFilterReads(*access, query.filter, "");
  if (allowed.ok() && !query.sort_by.empty()) allowed = access->RequireReadTree(query.sort_by);
  Result<Page> r = allowed.ok() ? inner_->Search(query) : Result<Page>(allowed);
  FilterPage(*access, "", &r);
  std::vector<std::string> ids = PageProfiles(r, "id");
  Record(*log_, "profiles.search", ids, r.status(), static_cast<int64_t>(ids.size()), /*read=*/true);
  return r;
}
Result<Page> AuditedProfiles::Timeline(std::string_view id, const EventQuery& query) {
  auto access = gov_->Current();
  Status allowed = CheckEventQuery(*access, query);
  Result<Page> r = allowed.ok() ? inner_->Timeline(id, query) : Result<Page>(allowed);
  FilterPage(*access, "events", &r);
  Record(*log_, "profiles.timeline", PageProfiles(r, "profileId"), r.status(), 0, /*read=*/true);
  return r;
}
Result<std::vector<Json>> AuditedProfiles::Sessions(std::string_view id) {
  auto access = gov_->Current();
  Status allowed = RequireDefined(*access);
  Result<std::vector<Json>> r = allowed.ok() ? inner_->Sessions(id) : Result<std::vector<Json>>(allowed);
  if (r.ok() && !access->admin()) {
    for (Json& session : *r) access->Filter("sessions", &session);
  }
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

void RecordBatch(AuditedChange& change, const Result<BatchResult>& r) {
  change.Done(BatchProfiles(r), r.status(), r.ok() ? static_cast<int64_t>(r->items.size()) : 0);
}

// Hides, in each stored item's answer, which profile holds identifiers the principal may not read (after the
// batch's audit entry has named the profiles).
void HideBatchLinks(const Access& access, const std::vector<Json>& events, Result<BatchResult>* r) {
  if (access.admin() || !r->ok()) return;
  std::vector<BatchItemResult>& items = (*r)->items;
  for (size_t i = 0; i < items.size() && i < events.size(); ++i) {
    if (items[i].status.ok() && !access.CanReadLinks(events[i])) items[i].result.HideLinks();
  }
}

}  // namespace

void HideRefusal(const Access& access, const Json& event, Status* s) {
  if (access.admin() || s->code() != StatusCode::kFailedPrecondition) return;
  if (s->field() != "consent.tracking" && s->field() != kSuppressedField) return;
  if (access.CanReadLinks(event) && access.CanRead("consent.tracking")) return;
  *s = Status::FailedPrecondition("the data was not stored: a person it names may not be tracked");
}

namespace {

// HideRefusal for each refused item of a batch.
void HideBatchRefusals(const Access& access, const std::vector<Json>& events, Result<BatchResult>* r) {
  if (access.admin() || !r->ok()) return;
  std::vector<BatchItemResult>& items = (*r)->items;
  for (size_t i = 0; i < items.size() && i < events.size(); ++i) HideRefusal(access, events[i], &items[i].status);
}

// PermissionDenied ("[i].<path>") for the first event of a batch that writes a field the principal may not.
Status CheckBatchWrites(const Access& access, const std::vector<Json>& events) {
  if (access.admin()) return Status::OK();
  CDP_RETURN_IF_ERROR(RequireDefined(access));
  for (size_t i = 0; i < events.size(); ++i) {
    if (Status s = access.CheckEventWrite(events[i]); !s.ok()) return s.WithFieldPrefix(absl::StrCat("[", i, "]"));
  }
  return Status::OK();
}

}  // namespace

Result<TrackResult> AuditedEvents::Track(const Json& event) {
  AuditedChange change(*log_, "events.track");
  change.set_names_one_profile();  // its entry names the profile: the write path says which before writing
  auto access = gov_->Current();
  Status allowed = RequireDefined(*access);
  if (allowed.ok()) allowed = access->CheckEventWrite(event);
  const int64_t start = SteadyMicros();
  Result<TrackResult> r = allowed.ok() ? inner_->Track(event) : Result<TrackResult>(allowed);
  if (r.ok()) latency_.Add(SteadyMicros() - start);
  change.Done({r.ok() ? r->profile_id : std::string()}, r.status());
  if (r.ok() && !access->CanReadLinks(event)) r->HideLinks();
  if (!r.ok()) {
    Status s = r.status();
    HideRefusal(*access, event, &s);
    return s;
  }
  return r;
}
Result<BatchResult> AuditedEvents::TrackBatch(const std::vector<Json>& events) {
  AuditedChange change(*log_, "events.trackBatch");
  auto access = gov_->Current();
  Status allowed = CheckBatchWrites(*access, events);
  const int64_t start = SteadyMicros();
  Result<BatchResult> r = allowed.ok() ? inner_->TrackBatch(events) : Result<BatchResult>(allowed);
  if (r.ok()) latency_.Add(SteadyMicros() - start);
  RecordBatch(change, r);
  HideBatchLinks(*access, events, &r);
  HideBatchRefusals(*access, events, &r);
  return r;
}
Result<BatchResult> AuditedEvents::TrackBatch(const std::vector<Json>& events,
                                              const std::vector<IdempotencyKey>& keys) {
  AuditedChange change(*log_, "events.trackBatch");
  auto access = gov_->Current();
  Status allowed = CheckBatchWrites(*access, events);
  const int64_t start = SteadyMicros();
  Result<BatchResult> r = allowed.ok() ? inner_->TrackBatch(events, keys) : Result<BatchResult>(allowed);
  if (r.ok()) latency_.Add(SteadyMicros() - start);
  RecordBatch(change, r);
  HideBatchLinks(*access, events, &r);
  HideBatchRefusals(*access, events, &r);
  return r;
}
Result<BatchResult> AuditedEvents::TrackBatchJson(std::string_view json_text) {
  AuditedChange change(*log_, "events.trackBatch");
  auto access = gov_->Current();
  Status allowed;
  Result<Json> parsed = Json();
  const Json* items = nullptr;
  if (!access->admin()) {
    // The fields written are checked on the parsed text (with limits no lower than the engine's, which parses it
    // again); a text that cannot be checked is refused.
    ParseLimits limits;
    limits.max_bytes = json_text.size() + 1;
    limits.max_depth = 1024;  // no lower than Options::batch_document_depth(), whatever the options
    allowed = RequireDefined(*access);
    parsed = Json::Parse(json_text, limits);
    if (allowed.ok() && !parsed.ok()) allowed = parsed.status();
    if (allowed.ok()) {
      items = parsed->is_object() ? parsed->Find("batch") : &*parsed;
      if (items == nullptr || !items->is_array()) {
        allowed = Status::InvalidArgument("expected an array of events or {\"batch\": [...]}");
      } else {
        allowed = CheckBatchWrites(*access, items->items());
      }
    }
  }
  const int64_t start = SteadyMicros();
  Result<BatchResult> r = allowed.ok() ? inner_->TrackBatchJson(json_text) : Result<BatchResult>(allowed);
  if (r.ok()) latency_.Add(SteadyMicros() - start);
  RecordBatch(change, r);
  if (items != nullptr && items->is_array()) {
    HideBatchLinks(*access, items->items(), &r);
    HideBatchRefusals(*access, items->items(), &r);
  }
  return r;
}
Result<Page> AuditedEvents::Query(const EventQuery& query) {
  auto access = gov_->Current();
  Status allowed = CheckEventQuery(*access, query);
  Result<Page> r = allowed.ok() ? inner_->Query(query) : Result<Page>(allowed);
  FilterPage(*access, "events", &r);
  std::vector<std::string> ids = PageProfiles(r, "profileId");
  Record(*log_, "events.query", ids, r.status(), r.ok() ? static_cast<int64_t>(r->items.size()) : 0,
         /*read=*/true);
  return r;
}

// ---- Consent, Gdpr, Audit -------------------------------------------------------------------------------------------

namespace {

// Leaves out of a consent document (Consent::Get's, or Record's answer) the purposes the principal may not read,
// in the state, the Consent Mode signals and every history record.
void FilterConsent(const Access& access, Json* doc) {
  if (access.admin()) return;
  auto readable = [&](std::string_view purpose) { return access.CanRead("consent." + std::string(purpose)); };
  for (const char* member : {"purposes", "consentMode"}) {
    if (Json* purposes = doc->Find(member); purposes != nullptr && purposes->is_object()) {
      std::erase_if(purposes->members(), [&](const Json::Member& m) {
        return !readable(m.first == "analytics_storage" ? std::string_view("tracking") : m.first);
      });
    }
  }
  for (const char* member : {"applied", "superseded"}) {
    if (Json* list = doc->Find(member); list != nullptr && list->is_array()) {
      std::erase_if(list->items(), [&](const Json& p) { return !p.is_string() || !readable(p.as_string()); });
    }
  }
  if (Json* history = doc->Find("history"); history != nullptr && history->is_array()) {
    for (Json& record : history->items()) {
      if (Json* purposes = record.Find("purposes"); purposes != nullptr && purposes->is_object()) {
        std::erase_if(purposes->members(), [&](const Json::Member& m) { return !readable(m.first); });
      }
      if (Json* superseded = record.Find("superseded"); superseded != nullptr && superseded->is_array()) {
        std::erase_if(superseded->items(), [&](const Json& p) { return !p.is_string() || !readable(p.as_string()); });
      }
    }
  }
}

}  // namespace

Result<Json> AuditedConsent::Record(const Json& request) {
  AuditedChange change(*log_, "consent.record");
  auto access = gov_->Current();
  Status allowed = RequireDefined(*access);
  if (allowed.ok() && !access->admin()) {
    allowed = access->RequireWrite("consent");
    // Naming the person by an identifier resolves it: the principal must be able to read that identifier.
    const Json* ident = request.is_object() ? request.Find("identifier") : nullptr;
    const Json* type = ident != nullptr && ident->is_object() ? ident->Find("type") : nullptr;
    if (allowed.ok() && type != nullptr && type->is_string())
      allowed = access->RequireRead(ExternalIdsPath(type->as_string()));
    for (const char* member : {"purposes", "consentMode"}) {
      const Json* purposes = request.is_object() ? request.Find(member) : nullptr;
      if (!allowed.ok() || purposes == nullptr || !purposes->is_object()) continue;
      for (const auto& [purpose, value] : purposes->members()) {
        allowed = access->RequireWrite(
            absl::StrCat("consent.", purpose == "analytics_storage" ? std::string("tracking") : purpose));
        if (!allowed.ok()) break;
      }
    }
  }
  Result<Json> r = allowed.ok() ? inner_->Record(request) : Result<Json>(allowed);
  if (r.ok()) FilterConsent(*access, &*r);
  change.Done({IdOf(r, "")}, r.status());
  return r;
}
Result<Json> AuditedConsent::Get(std::string_view profile_id) {
  auto access = gov_->Current();
  Status allowed = access->RequireRead("consent");
  Result<Json> r = allowed.ok() ? inner_->Get(profile_id) : Result<Json>(allowed);
  if (r.ok()) FilterConsent(*access, &*r);
  internal::Record(*log_, "consent.get", {IdOf(r, "")}, r.status(), 0, /*read=*/true);
  return r;
}

Result<Json> AuditedConsent::History(std::string_view profile_id, const Json& page) {
  auto access = gov_->Current();
  Status allowed = access->RequireRead("consent");
  Result<Json> r = allowed.ok() ? inner_->History(profile_id, page) : Result<Json>(allowed);
  if (r.ok() && !access->admin()) {
    Json history = Json::Object();
    history.Set("history", std::move(*r->Find("items")));
    FilterConsent(*access, &history);
    r->Set("items", std::move(*history.Find("history")));
  }
  internal::Record(*log_, "consent.history", {IdOf(r, "")}, r.status(), 0, /*read=*/true);
  return r;
}

Result<Json> AuditedGdpr::Export(std::string_view profile_id) {
  AuditedChange change(*log_, "gdpr.export");
  auto access = gov_->Current();
  Status allowed = access->Require("export");
  Result<Json> r = allowed.ok() ? inner_->Export(profile_id) : Result<Json>(allowed);
  if (r.ok() && !access->admin()) {
    // What the principal may not read is left out of the export (the profile is filtered as it is read).
    if (Json* events = r->Find("events"); events != nullptr) {
      for (Json& e : events->items()) access->Filter("events", &e);
    }
    if (Json* sessions = r->Find("sessions"); sessions != nullptr) {
      for (Json& s : sessions->items()) access->Filter("sessions", &s);
    }
    if (!access->CanRead("externalIds")) {
      r->Erase("identity");
    } else if (Json* identity = r->Find("identity"); identity != nullptr) {
      FilterIdentity(*access, identity);
    }
    if (!access->CanRead("consent")) {
      r->Erase("consent");
    } else if (Json* consent = r->Find("consent"); consent != nullptr) {
      FilterConsent(*access, consent);
    }
    if (!access->CanRead("segments")) r->Erase("segments");
    if (!access->Can("audit")) r->Erase("audit");  // who did what to the person: the audit log's readers only
  }
  change.Done({IdOf(r, "")}, r.status());
  return r;
}
Result<Json> AuditedGdpr::Erase(std::string_view profile_id) {
  AuditedChange change(*log_, "gdpr.erase");
  Status allowed = gov_->Current()->Require("erase");
  Result<Json> r = allowed.ok() ? inner_->Erase(profile_id) : Result<Json>(allowed);
  change.Done({}, r.status());  // the request record (r) names the person only by a keyed hash
  return r;
}
// Reads of request records and of suppression are entries too (records name people by keyed hashes only; a
// suppression check names no one: its identifier stays out of the log).
Result<Json> AuditedGdpr::GetRequest(std::string_view request_id) {
  auto access = gov_->Current();
  Result<Json> r = access->Can("export") || access->Can("erase") ? inner_->GetRequest(request_id)
                                                                 : Result<Json>(access->Require("export"));
  internal::Record(*log_, "gdpr.getRequest", {}, r.status(), 0, /*read=*/true, request_id);
  return r;
}
Result<Json> AuditedGdpr::ListRequests(const Json& filter) {
  auto access = gov_->Current();
  Result<Json> r = access->Can("export") || access->Can("erase") ? inner_->ListRequests(filter)
                                                                 : Result<Json>(access->Require("export"));
  const Json* items = r.ok() ? r->Find("items") : nullptr;
  internal::Record(*log_, "gdpr.listRequests", {}, r.status(),
                   items != nullptr ? static_cast<int64_t>(items->size()) : 0, /*read=*/true);
  return r;
}
Result<bool> AuditedGdpr::IsSuppressed(std::string_view type, std::string_view value) {
  Status allowed = gov_->Current()->Require("erase");
  Result<bool> r = allowed.ok() ? inner_->IsSuppressed(type, value) : Result<bool>(allowed);
  internal::Record(*log_, "gdpr.isSuppressed", {}, r.status(), 0, /*read=*/true);
  return r;
}
Result<Json> AuditedGdpr::Unsuppress(std::string_view type, std::string_view value) {
  AuditedChange change(*log_, "gdpr.unsuppress");
  Status allowed = gov_->Current()->Require("erase");
  Result<Json> r = allowed.ok() ? inner_->Unsuppress(type, value) : Result<Json>(allowed);
  change.Done({}, r.status());
  return r;
}

Result<Json> AuditImpl::List(const Json& filter) {
  Status allowed = gov_->Current()->Require("audit");
  Result<Json> r = allowed.ok() ? log_->List(filter) : Result<Json>(allowed);
  // A read of who did what to whom: an entry naming the person whose trail was asked for (the filter's target,
  // when entries name them: never an id no entry names, such as an erased person's), counting the entries returned.
  std::vector<std::string> targets;
  const Json* items = r.ok() ? r->Find("items") : nullptr;
  if (const Json* t = filter.is_object() ? filter.Find("target") : nullptr;
      t != nullptr && t->is_string() && items != nullptr && items->size() > 0) {
    targets.push_back(t->as_string());
  }
  Record(*log_, "audit.list", targets, r.status(), items != nullptr ? static_cast<int64_t>(items->size()) : 0,
         /*read=*/true);
  return r;
}
Result<Json> AuditImpl::Verify() {
  CDP_RETURN_IF_ERROR(gov_->Current()->Require("audit"));
  CDP_ASSIGN_OR_RETURN(Json out, log_->Verify());
  out.Set("appendErrors", log_->append_errors());
  return out;
}

}  // namespace internal
}  // namespace cdp
