// Copyright 2026 The libcdp Authors.

#include "engine/analytics_impl.h"

#include "analytics/analytics.h"
#include "cdp/query.h"
#include "core/ids.h"
#include "engine/audited.h"
#include "engine/engine_impl.h"
#include "fmt/format.h"

namespace cdp::internal {

namespace {

// Leaves out of a data quality answer (alone, or in an overview) the schema changes of event fields the principal
// may not read.
void FilterQuality(const Access& access, Json* answer) {
  Json* quality = answer->Find("dataQuality") != nullptr ? answer->Find("dataQuality") : answer;
  Json* checks = quality->Find("checks");
  if (checks == nullptr || !checks->is_array()) return;
  for (Json& check : checks->items()) {
    Json* changes = check.Find("changes");
    if (changes == nullptr || !changes->is_array()) continue;
    std::erase_if(changes->items(), [&](const Json& c) {
      const Json* field = c.Find("field");
      return field == nullptr || !field->is_string() || !access.CanRead("events." + field->as_string());
    });
  }
}

}  // namespace

Result<Json> AnalyticsImpl::Run(std::string_view name, const Json& request, Analysis analysis) {
  Result<Json> out = [&]() -> Result<Json> {
    auto access = engine_->access();
    CDP_RETURN_IF_ERROR(engine_->RequireDefined());
    if (!access->admin()) {
      CDP_ASSIGN_OR_RETURN(std::vector<std::string> fields, analytics::FieldsRead(name, request));
      // The whole tree: a test of an object, or exists, reads every member below it.
      for (const std::string& field : fields) CDP_RETURN_IF_ERROR(access->RequireReadTree(field));
    }
    Result<Json> answer = Status::Internal("the analysis did not run");
    CDP_RETURN_IF_ERROR(engine_->segments_impl().WithIndex([&](segments::SegmentIndex& index) {
      answer = analysis(index, request);
      return answer.status();
    }));
    if (answer.ok() && !access->admin()) FilterQuality(*access, &*answer);
    return answer;
  }();
  Record(engine_->audit_log(), "analytics." + std::string(name), {}, out.status(), 0, /*read=*/true);
  return out;
}

Result<Json> AnalyticsImpl::Funnel(const Json& request) { return Run("funnel", request, analytics::Funnel); }
Result<Json> AnalyticsImpl::Cohorts(const Json& request) { return Run("cohorts", request, analytics::Cohorts); }

namespace {

// The request's "now", or the current time (as a member of a copy of the request).
Result<Json> WithNow(const Json& request) {
  if (!request.is_object()) return Status::InvalidArgument("the request must be a JSON object");
  Json out = request;
  const Json* now = request.Find("now");
  if (now == nullptr || now->is_null()) out.Set("now", FormatTimestamp(NowMicros()));
  return out;
}

}  // namespace

Result<Json> AnalyticsImpl::DataQuality(const Json& request) {
  CDP_ASSIGN_OR_RETURN(Json r, WithNow(request));
  return Run("dataQuality", r, analytics::Quality);
}

Result<Json> AnalyticsImpl::Overview(const Json& request) {
  CDP_ASSIGN_OR_RETURN(Json r, WithNow(request));
  CDP_ASSIGN_OR_RETURN(Json out, Run("overview", r, analytics::Overview));  // one look at the index
  Json segments = Json::Array();
  CDP_ASSIGN_OR_RETURN(Json list, engine_->segments().List());
  if (list.is_array()) {
    for (const Json& s : list.items()) {
      Json entry = Json::Object();
      for (const char* key : {"id", "name", "size"}) {
        if (const Json* v = s.Find(key); v != nullptr) entry.Set(key, *v);
      }
      segments.Push(std::move(entry));
    }
  }
  Result<Json> requests = engine_->gdpr().ListRequests(Json::Object().Set("limit", 1));
  const Json* turnaround = requests.ok() ? requests->Find("turnaround") : nullptr;
  return out.Set("at", FormatTimestamp(*ParseTimestamp(*r.Find("now"))))
      .Set("segments", std::move(segments))
      .Set("ingestionLatency", engine_->ingest_latency().Summary())
      .Set("gdprTurnaround", turnaround != nullptr ? *turnaround : Json());
}

Result<Json> AnalyticsImpl::Journeys(const Json& request) { return Run("journeys", request, analytics::Journeys); }
Result<Json> AnalyticsImpl::Trends(const Json& request) { return Run("trends", request, analytics::Trends); }
Result<Json> AnalyticsImpl::Attribution(const Json& request) {
  return Run("attribution", request, analytics::Attribution);
}

}  // namespace cdp::internal
