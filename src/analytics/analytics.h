// Copyright 2026 The libcdp Authors.
//
// The analyses of include/cdp/analytics.h, computed over a segment index (src/segments/index.h): pure functions of
// the index and the request, with no storage and no governance (engine/analytics_impl.cc adds those).
//
// Funnel: the profiles holding a matching step-1 event in [from, to] are found from that step's event table, then
// each one's time-ordered events are walked per entry. Cohorts: each profile's events once. Attribution: the
// profiles holding a matching conversion, each one's events once (sessions from the index's session hashes).

#ifndef CDP_ANALYTICS_ANALYTICS_H_
#define CDP_ANALYTICS_ANALYTICS_H_

#include "cdp/json.h"
#include "cdp/status.h"
#include "segments/index.h"

namespace cdp::analytics {

// Each needs exclusive access to the index (it binds the request's event matches), and answers as the Analytics
// method of the same name does.
Result<Json> Funnel(segments::SegmentIndex& index, const Json& request);
Result<Json> Cohorts(segments::SegmentIndex& index, const Json& request);
Result<Json> Attribution(segments::SegmentIndex& index, const Json& request);
Result<Json> Journeys(segments::SegmentIndex& index, const Json& request);
Result<Json> Trends(segments::SegmentIndex& index, const Json& request);
Result<Json> Quality(segments::SegmentIndex& index, const Json& request);
// The parts of Analytics::Overview the index answers ({"now"} required): {"profiles", "eventsByType",
// "activeProfiles", "revenue", "orders", "dataQuality"}.
Result<Json> Overview(segments::SegmentIndex& index, const Json& request);
Result<Json> IndexOverview(segments::SegmentIndex& index, int64_t now);

// The event fields a request reads (for governance): paths such as "properties.revenue", "type".
Result<std::vector<std::string>> FieldsRead(std::string_view analysis, const Json& request);

}  // namespace cdp::analytics

#endif  // CDP_ANALYTICS_ANALYTICS_H_
