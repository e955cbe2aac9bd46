// Copyright 2026 The libcdp Authors.
//
// cdp._core.Engine: one open database. Every method takes and returns JSON text; the Python layer (cdp/_database.py)
// does the dict <-> text conversion and the Pythonic API.
//
// Concurrency: methods release the GIL for all C++ work, so Python threads run engine calls in parallel (the Engine
// is thread-safe). A shared_mutex guards the Engine's lifetime: calls hold it shared, close() exclusively, so close()
// waits for calls in flight and a call after close() fails with FailedPrecondition instead of touching a dead Engine.

#include <pybind11/stl.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <utility>
#include <vector>

#include "common.h"

namespace cdp_python {

namespace {

cdp::Json PageToJson(cdp::Page&& page) {
  cdp::Json items = cdp::Json::Array();
  for (cdp::Json& item : page.items) items.Push(std::move(item));
  cdp::Json out = cdp::Json::Object();
  out.Set("items", std::move(items));
  out.Set("nextCursor", std::move(page.next_cursor));
  return out;
}

class PyEngine {
 public:
  static std::unique_ptr<PyEngine> Open(const std::string& path, const std::string& options_json) {
    cdp::Result<std::unique_ptr<cdp::Engine>> opened = cdp::Status::Internal("not opened");
    {
      py::gil_scoped_release release;
      opened = [&]() -> cdp::Result<std::unique_ptr<cdp::Engine>> {
        CDP_ASSIGN_OR_RETURN(cdp::Json json, cdp::Json::Parse(options_json));
        CDP_ASSIGN_OR_RETURN(cdp::Options options, OptionsFromJson(json));
        return cdp::Engine::Open(options, path);
      }();
    }
    auto engine = std::make_unique<PyEngine>();
    engine->path_ = path;
    engine->engine_ = ValueOrThrow(std::move(opened));
    engine->options_ = engine->engine_->options();
    return engine;
  }

  // No call can be in flight here: each holds a reference to this object. The GIL stays held, because releasing
  // it from a destructor is unsafe during interpreter shutdown.
  ~PyEngine() = default;

  void Close() {
    py::gil_scoped_release release;
    std::unique_lock lock(mu_);
    engine_.reset();
    closed_ = true;
  }

  bool closed() const { return closed_.load(); }
  const std::string& path() const { return path_; }
  std::string options() const { return OptionsToJson(options_).Dump(); }

  // ---- profiles --------------------------------------------------------------------------------------------------
  std::string ProfilesCreate(const std::string& text) {
    return RunJson([&](cdp::Engine& e) -> cdp::Result<cdp::Json> {
      CDP_ASSIGN_OR_RETURN(cdp::Json doc, Parse(text));
      return e.profiles().Create(doc);
    });
  }
  std::string ProfilesCreateBatch(const std::string& text) {
    return RunJson([&](cdp::Engine& e) -> cdp::Result<cdp::Json> {
      CDP_ASSIGN_OR_RETURN(cdp::Json doc, ParseBatch(text));
      if (!doc.is_array()) return cdp::Status::InvalidArgument("expected a list of profiles");
      return e.profiles().CreateBatch(doc.items());
    });
  }
  std::string ProfilesGet(const std::string& id) {
    return RunJson([&](cdp::Engine& e) { return e.profiles().Get(id); });
  }
  std::string ProfilesReplace(const std::string& id, const std::string& text) {
    return RunJson([&](cdp::Engine& e) -> cdp::Result<cdp::Json> {
      CDP_ASSIGN_OR_RETURN(cdp::Json doc, Parse(text));
      return e.profiles().Replace(id, doc);
    });
  }
  std::string ProfilesPatch(const std::string& id, const std::string& text) {
    return RunJson([&](cdp::Engine& e) -> cdp::Result<cdp::Json> {
      CDP_ASSIGN_OR_RETURN(cdp::Json doc, Parse(text));
      return e.profiles().Patch(id, doc);
    });
  }
  void ProfilesDelete(const std::string& id) {
    RunJson([&](cdp::Engine& e) -> cdp::Result<cdp::Json> {
      CDP_RETURN_IF_ERROR(e.profiles().Delete(id));
      return cdp::Json();
    });
  }
  std::string ProfilesSearch(const std::string& query_text) {
    return RunJson([&](cdp::Engine& e) -> cdp::Result<cdp::Json> {
      CDP_ASSIGN_OR_RETURN(cdp::Json json, Parse(query_text));
      CDP_ASSIGN_OR_RETURN(cdp::ProfileQuery query, cdp::ProfileQuery::FromJson(json));
      CDP_ASSIGN_OR_RETURN(cdp::Page page, e.profiles().Search(query));
      return PageToJson(std::move(page));
    });
  }
  std::string ProfilesTimeline(const std::string& id, const std::string& query_text) {
    return RunJson([&](cdp::Engine& e) -> cdp::Result<cdp::Json> {
      CDP_ASSIGN_OR_RETURN(cdp::Json json, Parse(query_text));
      CDP_ASSIGN_OR_RETURN(cdp::EventQuery query, cdp::EventQuery::FromJson(json));
      CDP_ASSIGN_OR_RETURN(cdp::Page page, e.profiles().Timeline(id, query));
      return PageToJson(std::move(page));
    });
  }
  std::string ProfilesSessions(const std::string& id) {
    return RunJson([&](cdp::Engine& e) -> cdp::Result<cdp::Json> {
      CDP_ASSIGN_OR_RETURN(std::vector<cdp::Json> sessions, e.profiles().Sessions(id));
      cdp::Json out = cdp::Json::Array();
      for (cdp::Json& s : sessions) out.Push(std::move(s));
      return out;
    });
  }

  // ---- events ----------------------------------------------------------------------------------------------------
  std::string EventsTrack(const std::string& text) {
    return RunJson([&](cdp::Engine& e) -> cdp::Result<cdp::Json> {
      CDP_ASSIGN_OR_RETURN(cdp::Json doc, Parse(text));
      CDP_ASSIGN_OR_RETURN(cdp::TrackResult result, e.events().Track(doc));
      return result.ToJson();
    });
  }
  std::string EventsTrackBatch(const std::string& text) {
    // TrackBatchJson parses the text itself, so max_batch_bytes applies to it.
    return RunJson([&](cdp::Engine& e) -> cdp::Result<cdp::Json> {
      CDP_ASSIGN_OR_RETURN(cdp::BatchResult result, e.events().TrackBatchJson(text));
      return result.ToJson();
    });
  }
  // Idempotency keys (Events::RememberKey / RecallKey), for the Segment adapter's durable messageIds: its own
  // bookkeeping, run as "local" whoever the caller (as cdp-server's adapter does; the principal of a Python context
  // is not a boundary: any code may enter cdp.principal("local")). What is recalled reaches the caller only
  // through the engine's answers, filtered for the caller.
  // {"key", "value", "expiresUs"} -> null; {"key", "nowUs"} -> {"value": string | null}.
  std::string EventsRememberKey(const std::string& request_text) {
    return RunJson([&](cdp::Engine& e) -> cdp::Result<cdp::Json> {
      CDP_ASSIGN_OR_RETURN(cdp::Json request, Parse(request_text));
      const cdp::Json* key = request.Find("key");
      const cdp::Json* value = request.Find("value");
      const cdp::Json* expires = request.Find("expiresUs");
      if (key == nullptr || value == nullptr || expires == nullptr || !key->is_string() || !value->is_string() ||
          !expires->is_int()) {
        return cdp::Status::InvalidArgument("expected {key, value, expiresUs}");
      }
      cdp::ScopedPrincipal bookkeeping("local");
      CDP_RETURN_IF_ERROR(e.events().RememberKey(key->as_string(), value->as_string(), expires->as_int()));
      return cdp::Json();
    });
  }
  // Items stored with their idempotency keys in one write (Events::TrackBatch / Identity::Identify with keys), for
  // the Segment adapter: {"events": [...], "keys": [{"key", "value": {...}, "expiresUs"} | null, ...]} -> the batch
  // result; {"request": {...}, "key": {...}} -> Identify's answer.
  std::string EventsTrackBatchKeyed(const std::string& request_text) {
    return RunJson([&](cdp::Engine& e) -> cdp::Result<cdp::Json> {
      CDP_ASSIGN_OR_RETURN(cdp::Json request, Parse(request_text));
      const cdp::Json* events = request.Find("events");
      const cdp::Json* keys = request.Find("keys");
      if (events == nullptr || keys == nullptr || !events->is_array() || !keys->is_array()) {
        return cdp::Status::InvalidArgument("expected {events: [...], keys: [...]}");
      }
      std::vector<cdp::IdempotencyKey> parsed;
      for (const cdp::Json& key : keys->items()) {
        CDP_ASSIGN_OR_RETURN(cdp::IdempotencyKey k, KeyFromJson(key));
        parsed.push_back(std::move(k));
      }
      CDP_ASSIGN_OR_RETURN(cdp::BatchResult result, e.events().TrackBatch(events->items(), parsed));
      return result.ToJson();
    });
  }
  std::string IdentityIdentifyKeyed(const std::string& request_text) {
    return RunJson([&](cdp::Engine& e) -> cdp::Result<cdp::Json> {
      CDP_ASSIGN_OR_RETURN(cdp::Json request, Parse(request_text));
      const cdp::Json* identify = request.Find("request");
      const cdp::Json* key = request.Find("key");
      if (identify == nullptr || key == nullptr) return cdp::Status::InvalidArgument("expected {request, key}");
      CDP_ASSIGN_OR_RETURN(cdp::IdempotencyKey k, KeyFromJson(*key));
      return e.identity().Identify(*identify, k);
    });
  }
  static cdp::Result<cdp::IdempotencyKey> KeyFromJson(const cdp::Json& json) {
    cdp::IdempotencyKey out;
    if (json.is_null()) return out;
    const cdp::Json* key = json.Find("key");
    const cdp::Json* value = json.Find("value");
    const cdp::Json* expires = json.Find("expiresUs");
    if (key == nullptr || value == nullptr || expires == nullptr || !key->is_string() || !expires->is_int()) {
      return cdp::Status::InvalidArgument("expected {key, value, expiresUs} or null");
    }
    out.key = key->as_string();
    out.value = *value;
    out.expires_us = expires->as_int();
    if (const cdp::Json* at = json.Find("appliedIfStoredAtUs"); at != nullptr) {
      if (!at->is_int()) return cdp::Status::InvalidArgument("expected an integer", "appliedIfStoredAtUs");
      out.applied_if_stored_at_us = at->as_int();
    }
    return out;
  }
  std::string EventsRecallKey(const std::string& request_text) {
    return RunJson([&](cdp::Engine& e) -> cdp::Result<cdp::Json> {
      CDP_ASSIGN_OR_RETURN(cdp::Json request, Parse(request_text));
      const cdp::Json* key = request.Find("key");
      const cdp::Json* now = request.Find("nowUs");
      if (key == nullptr || now == nullptr || !key->is_string() || !now->is_int()) {
        return cdp::Status::InvalidArgument("expected {key, nowUs}");
      }
      cdp::ScopedPrincipal bookkeeping("local");
      CDP_ASSIGN_OR_RETURN(std::optional<std::string> value, e.events().RecallKey(key->as_string(), now->as_int()));
      cdp::Json out = cdp::Json::Object();
      out.Set("value", value ? cdp::Json(*value) : cdp::Json());
      return out;
    });
  }
  std::string EventsQuery(const std::string& query_text) {
    return RunJson([&](cdp::Engine& e) -> cdp::Result<cdp::Json> {
      CDP_ASSIGN_OR_RETURN(cdp::Json json, Parse(query_text));
      CDP_ASSIGN_OR_RETURN(cdp::EventQuery query, cdp::EventQuery::FromJson(json));
      CDP_ASSIGN_OR_RETURN(cdp::Page page, e.events().Query(query));
      return PageToJson(std::move(page));
    });
  }

  // ---- engine ----------------------------------------------------------------------------------------------------
  std::string Stats() {
    return RunJson([&](cdp::Engine& e) { return e.Stats(); });
  }

  // ---- identity --------------------------------------------------------------------------------------------------
  std::string IdentityRules() {
    return RunJson([&](cdp::Engine& e) { return e.identity().Rules(); });
  }
  std::string IdentitySetRules(const std::string& text) {
    return RunJson([&](cdp::Engine& e) -> cdp::Result<cdp::Json> {
      CDP_ASSIGN_OR_RETURN(cdp::Json doc, Parse(text));
      return e.identity().SetRules(doc);
    });
  }
  std::string IdentityMerge(const std::vector<std::string>& ids, const std::string& reason) {
    return RunJson([&](cdp::Engine& e) { return e.identity().Merge(ids, reason); });
  }
  std::string IdentityIdentify(const std::string& text) {
    return RunJson([&](cdp::Engine& e) -> cdp::Result<cdp::Json> {
      CDP_ASSIGN_OR_RETURN(cdp::Json doc, Parse(text));
      return e.identity().Identify(doc);
    });
  }
  std::string IdentityIdentifyBatch(const std::string& text) {
    return RunJson([&](cdp::Engine& e) -> cdp::Result<cdp::Json> {
      CDP_ASSIGN_OR_RETURN(cdp::Json doc, ParseBatch(text));
      if (!doc.is_array()) return cdp::Status::InvalidArgument("expected a list of identifies");
      return e.identity().IdentifyBatch(doc.items());
    });
  }
  std::string IdentityUnmerge(const std::string& id, const std::string& merge_id) {
    return RunJson([&](cdp::Engine& e) { return e.identity().Unmerge(id, merge_id); });
  }
  std::string IdentityDryRunRules(const std::string& text) {
    return RunJson([&](cdp::Engine& e) -> cdp::Result<cdp::Json> {
      CDP_ASSIGN_OR_RETURN(cdp::Json doc, Parse(text));
      return e.identity().DryRunRules(doc);
    });
  }
  std::string IdentityApplyRules(const std::string& text) {
    return RunJson([&](cdp::Engine& e) -> cdp::Result<cdp::Json> {
      CDP_ASSIGN_OR_RETURN(cdp::Json doc, Parse(text));
      return e.identity().ApplyRules(doc);
    });
  }
  std::string IdentityMatchingConfig() {
    return RunJson([&](cdp::Engine& e) { return e.identity().MatchingConfig(); });
  }
  std::string IdentitySetMatchingConfig(const std::string& text) {
    return RunJson([&](cdp::Engine& e) -> cdp::Result<cdp::Json> {
      CDP_ASSIGN_OR_RETURN(cdp::Json doc, Parse(text));
      return e.identity().SetMatchingConfig(doc);
    });
  }
  std::string IdentityFindDuplicates() {
    return RunJson([&](cdp::Engine& e) { return e.identity().FindDuplicates(); });
  }
  // Consent (Engine::consent()).
  std::string ConsentRecord(const std::string& text) {
    return RunJson([&](cdp::Engine& e) -> cdp::Result<cdp::Json> {
      CDP_ASSIGN_OR_RETURN(cdp::Json doc, Parse(text));
      return e.consent().Record(doc);
    });
  }
  std::string ConsentGet(const std::string& id) {
    return RunJson([&](cdp::Engine& e) { return e.consent().Get(id); });
  }
  std::string ConsentHistory(const std::string& id, const std::string& page_text) {
    return RunJson([&](cdp::Engine& e) -> cdp::Result<cdp::Json> {
      CDP_ASSIGN_OR_RETURN(cdp::Json page, Parse(page_text));
      return e.consent().History(id, page);
    });
  }
  // Data subjects' requests (Engine::gdpr()).
  std::string GdprExport(const std::string& id) {
    return RunJson([&](cdp::Engine& e) { return e.gdpr().Export(id); });
  }
  std::string GdprErase(const std::string& id) {
    return RunJson([&](cdp::Engine& e) { return e.gdpr().Erase(id); });
  }
  std::string GdprRequest(const std::string& id) {
    return RunJson([&](cdp::Engine& e) { return e.gdpr().GetRequest(id); });
  }
  std::string GdprRequests(const std::string& filter_json) {
    return RunJson([&](cdp::Engine& e) -> cdp::Result<cdp::Json> {
      CDP_ASSIGN_OR_RETURN(cdp::Json filter, Parse(filter_json));
      return e.gdpr().ListRequests(filter);
    });
  }
  std::string GdprSuppression(const std::string& type, const std::string& value, bool lift) {
    return RunJson([&](cdp::Engine& e) -> cdp::Result<cdp::Json> {
      if (lift) return e.gdpr().Unsuppress(type, value);
      CDP_ASSIGN_OR_RETURN(bool suppressed, e.gdpr().IsSuppressed(type, value));
      return cdp::Json(suppressed);
    });
  }
  // The audit log (Engine::audit()).
  std::string AuditList(const std::string& filter_json) {
    return RunJson([&](cdp::Engine& e) -> cdp::Result<cdp::Json> {
      CDP_ASSIGN_OR_RETURN(cdp::Json filter, Parse(filter_json));
      return e.audit().List(filter);
    });
  }
  std::string AuditVerify() {
    return RunJson([&](cdp::Engine& e) { return e.audit().Verify(); });
  }
  // Governance (Engine::governance()).
  std::string GovernancePolicy() {
    return RunJson([&](cdp::Engine& e) { return e.governance().Policy(); });
  }
  std::string GovernanceSetPolicy(const std::string& text) {
    return RunJson([&](cdp::Engine& e) -> cdp::Result<cdp::Json> {
      CDP_ASSIGN_OR_RETURN(cdp::Json policy, Parse(text));
      return e.governance().SetPolicy(policy);
    });
  }
  std::string GovernanceAccess(const std::string& principal) {
    return RunJson([&](cdp::Engine& e) { return e.governance().Access(principal); });
  }
  std::string GovernanceCreateKey(const std::string& text) {
    return RunJson([&](cdp::Engine& e) -> cdp::Result<cdp::Json> {
      CDP_ASSIGN_OR_RETURN(cdp::Json request, Parse(text));
      return e.governance().CreateApiKey(request);
    });
  }
  std::string GovernanceKeys() {
    return RunJson([&](cdp::Engine& e) { return e.governance().ListApiKeys(); });
  }
  void GovernanceRevokeKey(const std::string& id) {
    RunJson([&](cdp::Engine& e) -> cdp::Result<cdp::Json> {
      CDP_RETURN_IF_ERROR(e.governance().RevokeApiKey(id));
      return cdp::Json();
    });
  }
  std::string GovernanceAuthenticate(const std::string& key) {
    return RunJson([&](cdp::Engine& e) -> cdp::Result<cdp::Json> {
      CDP_ASSIGN_OR_RETURN(std::string principal, e.governance().Authenticate(key));
      return cdp::Json(principal);
    });
  }
  // Retention (Engine::retention()).
  std::string RetentionPolicies() {
    return RunJson([&](cdp::Engine& e) { return e.retention().Policies(); });
  }
  std::string RetentionSetPolicies(const std::string& text) {
    return RunJson([&](cdp::Engine& e) -> cdp::Result<cdp::Json> {
      CDP_ASSIGN_OR_RETURN(cdp::Json policies, Parse(text));
      return e.retention().SetPolicies(policies);
    });
  }
  std::string RetentionRun() {
    return RunJson([&](cdp::Engine& e) { return e.retention().Run(); });
  }
  std::string RetentionRuns(const std::string& filter_json) {
    return RunJson([&](cdp::Engine& e) -> cdp::Result<cdp::Json> {
      CDP_ASSIGN_OR_RETURN(cdp::Json filter, Parse(filter_json));
      return e.retention().Runs(filter);
    });
  }
  // Analytics (Engine::analytics()): `kind` names the method ("funnel", "cohorts", "attribution", ...).
  std::string Analytics(const std::string& kind, const std::string& text) {
    return RunJson([&](cdp::Engine& e) -> cdp::Result<cdp::Json> {
      CDP_ASSIGN_OR_RETURN(cdp::Json request, Parse(text));
      if (kind == "funnel") return e.analytics().Funnel(request);
      if (kind == "cohorts") return e.analytics().Cohorts(request);
      if (kind == "attribution") return e.analytics().Attribution(request);
      if (kind == "journeys") return e.analytics().Journeys(request);
      if (kind == "trends") return e.analytics().Trends(request);
      if (kind == "dataQuality") return e.analytics().DataQuality(request);
      if (kind == "overview") return e.analytics().Overview(request);
      return cdp::Status::InvalidArgument("unknown analysis \"" + kind + "\"");
    });
  }
  // Segments (Engine::segments()).
  std::string SegmentsCreate(const std::string& text) {
    return RunJson([&](cdp::Engine& e) -> cdp::Result<cdp::Json> {
      CDP_ASSIGN_OR_RETURN(cdp::Json doc, Parse(text));
      return e.segments().Create(doc);
    });
  }
  std::string SegmentsGet(const std::string& id) {
    return RunJson([&](cdp::Engine& e) { return e.segments().Get(id); });
  }
  std::string SegmentsList() {
    return RunJson([&](cdp::Engine& e) { return e.segments().List(); });
  }
  std::string SegmentsUpdate(const std::string& id, const std::string& text) {
    return RunJson([&](cdp::Engine& e) -> cdp::Result<cdp::Json> {
      CDP_ASSIGN_OR_RETURN(cdp::Json doc, Parse(text));
      return e.segments().Update(id, doc);
    });
  }
  void SegmentsDelete(const std::string& id) {
    RunJson([&](cdp::Engine& e) -> cdp::Result<cdp::Json> {
      CDP_RETURN_IF_ERROR(e.segments().Delete(id));
      return cdp::Json();
    });
  }
  std::string SegmentsMembers(const std::string& id, size_t limit, const std::string& cursor) {
    return RunJson([&](cdp::Engine& e) -> cdp::Result<cdp::Json> {
      CDP_ASSIGN_OR_RETURN(cdp::Page page, e.segments().Members(id, limit, cursor));
      return PageToJson(std::move(page));
    });
  }
  std::string SegmentsSize(const std::string& id) {
    return RunJson([&](cdp::Engine& e) -> cdp::Result<cdp::Json> {
      CDP_ASSIGN_OR_RETURN(int64_t size, e.segments().Size(id));
      return cdp::Json(size);
    });
  }
  std::string SegmentsEstimate(const std::string& text) {
    return RunJson([&](cdp::Engine& e) -> cdp::Result<cdp::Json> {
      CDP_ASSIGN_OR_RETURN(cdp::Json rule, Parse(text));
      CDP_ASSIGN_OR_RETURN(int64_t size, e.segments().Estimate(rule));
      return cdp::Json(size);
    });
  }
  std::string SegmentsChanges(const std::string& id, const std::string& since, size_t limit) {
    return RunJson([&](cdp::Engine& e) { return e.segments().Changes(id, since, limit); });
  }
  bool SegmentsWait(const std::string& id, const std::string& cursor, int64_t timeout_ms) {
    return cdp::Json::Parse(RunJson([&](cdp::Engine& e) -> cdp::Result<cdp::Json> {
             CDP_ASSIGN_OR_RETURN(bool found, e.segments().WaitForChanges(id, cursor, timeout_ms));
             return cdp::Json(found);
           }))
        ->as_bool();
  }
  std::string SegmentsMembersAt(const std::string& id, const std::string& time) {
    return RunJson([&](cdp::Engine& e) -> cdp::Result<cdp::Json> {
      CDP_ASSIGN_OR_RETURN(std::vector<std::string> ids, e.segments().MembersAt(id, time));
      cdp::Json out = cdp::Json::Array();
      for (std::string& p : ids) out.Push(std::move(p));
      return out;
    });
  }
  std::string SegmentsChangeMembers(const std::string& id, const std::string& items_text, bool add) {
    return RunJson([&](cdp::Engine& e) -> cdp::Result<cdp::Json> {
      CDP_ASSIGN_OR_RETURN(cdp::Json items, Parse(items_text));
      return add ? e.segments().AddMembers(id, items) : e.segments().RemoveMembers(id, items);
    });
  }
  std::string SegmentsOverlap(const std::vector<std::string>& ids) {
    return RunJson([&](cdp::Engine& e) { return e.segments().Overlap(ids); });
  }
  std::string SegmentsExport(const std::string& id, const std::string& format, const std::vector<std::string>& fields) {
    std::string out;
    RunJson([&](cdp::Engine& e) -> cdp::Result<cdp::Json> {
      CDP_RETURN_IF_ERROR(e.segments().Export(id, format, fields, [&](std::string_view chunk) {
        out.append(chunk);
        return true;
      }));
      return cdp::Json();
    });
    return out;
  }
  // Audiences (Engine::audiences()): one entry point, the operation by name, JSON in and out.
  std::string AudiencesCall(const std::string& op, const std::string& id, const std::string& body_text, size_t limit,
                            const std::string& cursor) {
    return RunJson([&](cdp::Engine& e) -> cdp::Result<cdp::Json> {
      cdp::Audiences& a = e.audiences();
      cdp::Json body;
      if (!body_text.empty()) {
        CDP_ASSIGN_OR_RETURN(body, Parse(body_text));
      }
      if (op == "create") return a.Create(body);
      if (op == "get") return a.Get(id);
      if (op == "list") return a.List();
      if (op == "update") return a.Update(id, body);
      if (op == "delete") {
        CDP_RETURN_IF_ERROR(a.Delete(id));
        return cdp::Json();
      }
      if (op == "size") {
        CDP_ASSIGN_OR_RETURN(int64_t size, a.Size(id));
        return cdp::Json(size);
      }
      if (op == "members") {
        CDP_ASSIGN_OR_RETURN(cdp::Page page, a.Members(id, limit, cursor));
        return PageToJson(std::move(page));
      }
      if (op == "overlap") return a.Overlap(id);
      if (op == "list_create") return a.CreateSuppressionList(body);
      if (op == "list_get") return a.GetSuppressionList(id);
      if (op == "list_list") return a.ListSuppressionLists();
      if (op == "list_delete") {
        CDP_RETURN_IF_ERROR(a.DeleteSuppressionList(id));
        return cdp::Json();
      }
      if (op == "list_add") return a.AddToSuppressionList(id, body);
      if (op == "list_remove") return a.RemoveFromSuppressionList(id, body);
      if (op == "rfm_config") return e.segments().RfmConfig();
      if (op == "rfm_set_config") return e.segments().SetRfmConfig(body);
      if (op == "rfm_recompute") return e.segments().RecomputeRfm();
      return cdp::Status::InvalidArgument("unknown audiences operation " + op);
    });
  }
  std::string AudiencesExport(const std::string& id, const std::string& format,
                              const std::vector<std::string>& fields) {
    std::string out;
    RunJson([&](cdp::Engine& e) -> cdp::Result<cdp::Json> {
      CDP_RETURN_IF_ERROR(e.audiences().Export(id, format, fields, [&](std::string_view chunk) {
        out.append(chunk);
        return true;
      }));
      return cdp::Json();
    });
    return out;
  }
  std::string IdentityMatchPending() {
    return RunJson([&](cdp::Engine& e) { return e.identity().MatchPending(); });
  }
  std::string IdentityProposals(const std::string& status) {
    return RunJson([&](cdp::Engine& e) { return e.identity().Proposals(status); });
  }
  std::string IdentityDecide(const std::string& id, bool accept) {
    return RunJson(
        [&](cdp::Engine& e) { return accept ? e.identity().AcceptProposal(id) : e.identity().RejectProposal(id); });
  }
  std::string IdentityExplain(const std::string& id) {
    return RunJson([&](cdp::Engine& e) { return e.identity().Explain(id); });
  }
  std::string IdentityStats() {
    return RunJson([&](cdp::Engine& e) { return e.identity().Stats(); });
  }
  void Flush() {
    RunJson([&](cdp::Engine& e) -> cdp::Result<cdp::Json> {
      CDP_RETURN_IF_ERROR(e.Flush());
      return cdp::Json();
    });
  }

 private:
  cdp::Result<cdp::Json> Parse(const std::string& text) const {
    cdp::ParseLimits limits;
    limits.max_depth = options_.max_json_depth;
    return cdp::Json::Parse(text, limits);
  }
  // A list of items, each held to max_json_depth by the engine on its own (a deeper one is refused alone).
  cdp::Result<cdp::Json> ParseBatch(const std::string& text) const {
    cdp::ParseLimits limits;
    limits.max_depth = options_.batch_document_depth();
    return cdp::Json::Parse(text, limits);
  }

  // Runs `fn(engine)` without the GIL and under the shared lock; returns the compact JSON text of its result, or
  // throws (with the GIL held again) the Status it failed with.
  template <typename Fn>
  std::string RunJson(Fn&& fn) {
    return JsonWithoutGil([&]() -> cdp::Result<cdp::Json> {
      std::shared_lock lock(mu_);
      if (!engine_) return cdp::Status::FailedPrecondition("the database " + path_ + " is closed");
      return fn(*engine_);
    });
  }

  std::shared_mutex mu_;
  std::unique_ptr<cdp::Engine> engine_;
  std::atomic<bool> closed_{false};
  cdp::Options options_;
  std::string path_;
};

}  // namespace

void BindEngine(py::module_& m) {
  py::class_<PyEngine>(m, "Engine", "One open libcdp database. Use cdp.open(); this class is internal.")
      .def_static("open", &PyEngine::Open, py::arg("path"), py::arg("options_json") = "{}",
                  "Opens (by default creates) the database in `path` with options given as JSON text.")
      .def("close", &PyEngine::Close, "Closes the database; waits for calls in flight. Idempotent.")
      .def_property_readonly("closed", &PyEngine::closed)
      .def_property_readonly("path", &PyEngine::path)
      .def_property_readonly("options_json", &PyEngine::options)
      .def("profiles_create", &PyEngine::ProfilesCreate, py::arg("profile_json"))
      .def("profiles_create_batch", &PyEngine::ProfilesCreateBatch, py::arg("profiles_json"))
      .def("profiles_get", &PyEngine::ProfilesGet, py::arg("id"))
      .def("profiles_replace", &PyEngine::ProfilesReplace, py::arg("id"), py::arg("profile_json"))
      .def("profiles_patch", &PyEngine::ProfilesPatch, py::arg("id"), py::arg("patch_json"))
      .def("profiles_delete", &PyEngine::ProfilesDelete, py::arg("id"))
      .def("profiles_search", &PyEngine::ProfilesSearch, py::arg("query_json"))
      .def("profiles_timeline", &PyEngine::ProfilesTimeline, py::arg("id"), py::arg("query_json"))
      .def("profiles_sessions", &PyEngine::ProfilesSessions, py::arg("id"))
      .def("events_track", &PyEngine::EventsTrack, py::arg("event_json"))
      .def("events_track_batch", &PyEngine::EventsTrackBatch, py::arg("batch_json"))
      .def("events_query", &PyEngine::EventsQuery, py::arg("query_json"))
      .def("events_remember_key", &PyEngine::EventsRememberKey, py::arg("request_json"))
      .def("events_recall_key", &PyEngine::EventsRecallKey, py::arg("request_json"))
      .def("events_track_batch_keyed", &PyEngine::EventsTrackBatchKeyed, py::arg("request_json"))
      .def("identity_identify_keyed", &PyEngine::IdentityIdentifyKeyed, py::arg("request_json"))
      .def("identity_rules", &PyEngine::IdentityRules)
      .def("identity_set_rules", &PyEngine::IdentitySetRules, py::arg("rules_json"))
      .def("identity_merge", &PyEngine::IdentityMerge, py::arg("profile_ids"), py::arg("reason"))
      .def("identity_explain", &PyEngine::IdentityExplain, py::arg("id"))
      .def("identity_dry_run_rules", &PyEngine::IdentityDryRunRules, py::arg("rules_json"))
      .def("identity_apply_rules", &PyEngine::IdentityApplyRules, py::arg("rules_json"))
      .def("identity_matching_config", &PyEngine::IdentityMatchingConfig)
      .def("identity_set_matching_config", &PyEngine::IdentitySetMatchingConfig, py::arg("config_json"))
      .def("identity_find_duplicates", &PyEngine::IdentityFindDuplicates)
      .def("identity_match_pending", &PyEngine::IdentityMatchPending)
      .def("consent_record", &PyEngine::ConsentRecord, py::arg("request_json"))
      .def("consent_get", &PyEngine::ConsentGet, py::arg("id"))
      .def("consent_history", &PyEngine::ConsentHistory, py::arg("id"), py::arg("page_json"))
      .def("gdpr_export", &PyEngine::GdprExport, py::arg("id"))
      .def("gdpr_erase", &PyEngine::GdprErase, py::arg("id"))
      .def("gdpr_request", &PyEngine::GdprRequest, py::arg("id"))
      .def("gdpr_requests", &PyEngine::GdprRequests, py::arg("filter_json"))
      .def("gdpr_suppression", &PyEngine::GdprSuppression, py::arg("type"), py::arg("value"), py::arg("lift"))
      .def("audit_list", &PyEngine::AuditList, py::arg("filter_json"))
      .def("audit_verify", &PyEngine::AuditVerify)
      .def("retention_policies", &PyEngine::RetentionPolicies)
      .def("retention_set_policies", &PyEngine::RetentionSetPolicies, py::arg("policies_json"))
      .def("retention_run", &PyEngine::RetentionRun)
      .def("retention_runs", &PyEngine::RetentionRuns, py::arg("filter_json"))
      .def("analytics", &PyEngine::Analytics, py::arg("kind"), py::arg("request_json"))
      .def("governance_policy", &PyEngine::GovernancePolicy)
      .def("governance_set_policy", &PyEngine::GovernanceSetPolicy, py::arg("policy_json"))
      .def("governance_access", &PyEngine::GovernanceAccess, py::arg("principal"))
      .def("governance_create_key", &PyEngine::GovernanceCreateKey, py::arg("request_json"))
      .def("governance_keys", &PyEngine::GovernanceKeys)
      .def("governance_revoke_key", &PyEngine::GovernanceRevokeKey, py::arg("id"))
      .def("governance_authenticate", &PyEngine::GovernanceAuthenticate, py::arg("key"))
      .def("segments_create", &PyEngine::SegmentsCreate, py::arg("definition"))
      .def("segments_get", &PyEngine::SegmentsGet, py::arg("id"))
      .def("segments_list", &PyEngine::SegmentsList)
      .def("segments_update", &PyEngine::SegmentsUpdate, py::arg("id"), py::arg("definition"))
      .def("segments_delete", &PyEngine::SegmentsDelete, py::arg("id"))
      .def("segments_members", &PyEngine::SegmentsMembers, py::arg("id"), py::arg("limit"), py::arg("cursor"))
      .def("segments_size", &PyEngine::SegmentsSize, py::arg("id"))
      .def("segments_estimate", &PyEngine::SegmentsEstimate, py::arg("rule"))
      .def("segments_changes", &PyEngine::SegmentsChanges, py::arg("id"), py::arg("since"), py::arg("limit"))
      .def("segments_wait", &PyEngine::SegmentsWait, py::arg("id"), py::arg("cursor"), py::arg("timeout_ms"))
      .def("segments_members_at", &PyEngine::SegmentsMembersAt, py::arg("id"), py::arg("time"))
      .def("segments_change_members", &PyEngine::SegmentsChangeMembers, py::arg("id"), py::arg("items"), py::arg("add"))
      .def("segments_overlap", &PyEngine::SegmentsOverlap, py::arg("ids"))
      .def("audiences_call", &PyEngine::AudiencesCall, py::arg("op"), py::arg("id"), py::arg("body"), py::arg("limit"),
           py::arg("cursor"))
      .def("audiences_export", &PyEngine::AudiencesExport, py::arg("id"), py::arg("format"), py::arg("fields"))
      .def("segments_export", &PyEngine::SegmentsExport, py::arg("id"), py::arg("format"), py::arg("fields"))
      .def("identity_proposals", &PyEngine::IdentityProposals, py::arg("status"))
      .def("identity_decide", &PyEngine::IdentityDecide, py::arg("id"), py::arg("accept"))
      .def("identity_unmerge", &PyEngine::IdentityUnmerge, py::arg("id"), py::arg("merge_id"))
      .def("identity_identify", &PyEngine::IdentityIdentify, py::arg("request_json"))
      .def("identity_identify_batch", &PyEngine::IdentityIdentifyBatch, py::arg("requests_json"))
      .def("identity_stats", &PyEngine::IdentityStats)
      .def("stats", &PyEngine::Stats)
      .def("flush", &PyEngine::Flush);
}

}  // namespace cdp_python
