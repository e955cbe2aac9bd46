// Copyright 2026 The libcdp Authors.

#include "engine/analytics_impl.h"

#include "analytics/analytics.h"
#include "engine/audited.h"
#include "engine/engine_impl.h"

namespace cdp::internal {

Result<Json> AnalyticsImpl::Run(std::string_view name, const Json& request, Analysis analysis) {
  Result<Json> out = [&]() -> Result<Json> {
    auto access = engine_->access();
    CDP_RETURN_IF_ERROR(engine_->RequireDefined());
    if (!access->admin()) {
      CDP_ASSIGN_OR_RETURN(std::vector<std::string> fields, analytics::FieldsRead(name, request));
      for (const std::string& field : fields) CDP_RETURN_IF_ERROR(access->RequireRead(field));
    }
    Result<Json> answer = Status::Internal("the analysis did not run");
    CDP_RETURN_IF_ERROR(engine_->segments_impl().WithIndex([&](segments::SegmentIndex& index) {
      answer = analysis(index, request);
      return answer.status();
    }));
    return answer;
  }();
  Record(engine_->audit_log(), "analytics." + std::string(name), {}, out.status(), 0, /*read=*/true);
  return out;
}

Result<Json> AnalyticsImpl::Funnel(const Json& request) { return Run("funnel", request, analytics::Funnel); }
Result<Json> AnalyticsImpl::Cohorts(const Json& request) { return Run("cohorts", request, analytics::Cohorts); }
Result<Json> AnalyticsImpl::Attribution(const Json& request) {
  return Run("attribution", request, analytics::Attribution);
}

}  // namespace cdp::internal
