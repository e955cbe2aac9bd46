// Copyright 2026 The libcdp Authors.
//
// Analytics (include/cdp/analytics.h) in the engine: each call checks the principal's access to the event fields
// the request reads, runs the analysis (src/analytics/analytics.h) over the segment index with it built and up to
// date (SegmentsImpl::WithIndex), and is recorded in the audit log as a read.

#ifndef CDP_ENGINE_ANALYTICS_IMPL_H_
#define CDP_ENGINE_ANALYTICS_IMPL_H_

#include <string_view>

#include "cdp/analytics.h"
#include "segments/index.h"

namespace cdp::internal {

class EngineImpl;

class AnalyticsImpl final : public Analytics {
 public:
  explicit AnalyticsImpl(EngineImpl* engine) : engine_(engine) {}
  Result<Json> Funnel(const Json& request) override;
  Result<Json> Cohorts(const Json& request) override;
  Result<Json> Attribution(const Json& request) override;
  Result<Json> Journeys(const Json& request) override;
  Result<Json> Trends(const Json& request) override;
  Result<Json> DataQuality(const Json& request) override;
  Result<Json> Overview(const Json& request) override;

 private:
  using Analysis = Result<Json> (*)(segments::SegmentIndex&, const Json&);
  Result<Json> Run(std::string_view name, const Json& request, Analysis analysis);
  EngineImpl* engine_;
};

}  // namespace cdp::internal

#endif  // CDP_ENGINE_ANALYTICS_IMPL_H_
