// Copyright 2026 The libcdp Authors.
//
// Analytics over the events: funnels, cohort retention, marketing attribution, journeys, and trends with anomaly
// flags. Requests and answers are JSON
// (the same documents the REST API takes and returns: /api/cdp/analytics/...). See docs/analytics.md for the exact
// semantics, which the tests check against SQL run by SQLite on the same events.
//
// Every answer is computed from every acknowledged write: the analyses read the engine's in-memory segment index
// (src/segments/index.h: events by type in columns, and each profile's events in time order), built at first use.
// Times are UTC. An event's purchase value is properties.revenue, else properties.total, else properties.value.
//
// Thread-safety: all methods from any thread. While one runs, the segment upkeep of writes waits (the index is
// shared), so a write's call returns later by up to the analysis' time. Cost: one pass over every profile's events
// (funnel, cohorts, attribution, journeys; a funnel walks a profile's events again per entry it has), and for trends
// the events of the named types inside the period and its baseline weeks.
//
// Governance: the principal must be defined, and may read every event field a request tests or breaks down by
// (PermissionDenied naming it). Each call is an audit entry (a read, without targets: answers are aggregates).
// Errors: InvalidArgument naming the field ("steps[1].event"), PermissionDenied.

#ifndef CDP_ANALYTICS_H_
#define CDP_ANALYTICS_H_

#include "cdp/json.h"
#include "cdp/status.h"

namespace cdp {

class Analytics {
 public:
  virtual ~Analytics() = default;

  // Funnel. Request: {"steps": [{"event": type or custom name, "where"?: [event conditions]}, ...] (2 to 10),
  // "window"?: duration (default "7d"), "from"?, "to"?: timestamps (default: unbounded), "breakdown"?:
  // "properties.<x>" (of the entering event) or "attributes.<x>" (of the profile)}.
  // A profile enters with a step-1 event whose time is in [from, to]. From an entry at t1 it reaches step k when
  // events matching steps 2..k follow in order, each strictly later than the one before, all at most `window` after
  // t1 (each step takes the earliest such event). Each profile counts once, at the deepest step any of its entries
  // reaches (the earliest entry reaching it gives the times and the breakdown value).
  // Answer: {"steps": [{"step", "event", "profiles", "conversionFromPrevious", "conversionFromFirst",
  // "medianSecondsFromPrevious" (null for step 1 or no profiles)}], "breakdown"?: [{"value", "steps": [...]}] (the
  // 100 largest values), "breakdownValues"?: how many values there are}.
  // Conversions are fractions (0 when the step before had no profiles); the median of an even count is the mean of
  // the middle two.
  virtual Result<Json> Funnel(const Json& request) = 0;

  // Cohort retention. Request: {"cohortEvent"?: type or custom name (default "*": any event), "returnEvent"?:
  // (default "*"), "period"?: "day" | "week" (Monday 00:00 UTC) | "month" (default "week"), "periods"?: 1-120
  // (default 12), "from"?, "to"?: bounds on the cohort's start}.
  // A profile's cohort is the period holding its first cohortEvent; it is retained in period k (0 = the cohort's
  // own) when it has a returnEvent in the k-th period from the cohort's start.
  // Answer: {"period", "periods", "cohorts": [{"cohort" (the period's start), "size", "counts": [...],
  // "percentages": [...]}]}, cohorts in time order; percentages are 100 * count / size.
  virtual Result<Json> Cohorts(const Json& request) = 0;

  // Attribution. Request: {"conversion": type or custom name (required), "model"?: "first_touch" | "last_touch"
  // (default) | "linear" | "time_decay" | "position_based" | "data_driven", "lookback"?: duration (default "30d"),
  // "halfLife"?: duration for time_decay (default "7d"), "from"?, "to"?: bounds on the conversion time}.
  // Touches are the profile's sessions, at the time of their first event, with that event's properties.utm_source
  // ("(direct)" when absent), utm_medium ("(none)") and utm_campaign ("(none)"). A conversion at t credits the
  // touches in [t - lookback, t]: first_touch and last_touch all to one; linear equally; time_decay by
  // 2^(-(t - touch) / halfLife), normalized; position_based 40% to the first and last and 20% shared by those
  // between (one touch: all; two: half each); data_driven by each channel's removal effect in a first-order Markov
  // chain of the touch paths (docs/analytics.md).
  // Answer: {"model", "conversions", "revenue", "unattributed" (conversions without a touch), "channels":
  // [{"source", "medium", "campaign", "conversions", "revenue"}]}, channels by credited conversions, descending.
  virtual Result<Json> Attribution(const Json& request) = 0;

  // Journeys: the paths that lead to a conversion. Request: {"conversion": type or custom name (required), "steps"?:
  // 1-20 events before it (default 5), "by"?: "type" (default: the event type, a custom event's name) | "page" (page
  // views by their properties.path, else url, else page), "lookback"?: duration (default "30d"), "collapseRepeats"?:
  // bool (default true: consecutive equal steps are one), "from"?, "to"?: bounds on the conversion time, "limit"?:
  // 1-1000 paths (default 20)}. A conversion's path is the last `steps` of the profile's events in the lookback
  // before it, in time order, and the conversion. Answer: {"conversions", "distinctPaths", "paths": [{"path":
  // [labels], "conversions", "share"}] (most common first), "sankey": {"nodes": [{"id" ("<step>:<label>"), "step",
  // "label", "count"}], "links": [{"source", "target", "value"}]}} (the Sankey diagram of the paths answered,
  // aligned at their first step).
  virtual Result<Json> Journeys(const Json& request) = 0;

  // Trends and anomalies: event volumes per interval, each flagged against the same weekday (and hour) of the weeks
  // before. Request: {"from", "to" (required), "interval"?: "hour" | "day" (default), "events"?: [types or names]
  // (default: all), "property"?: "properties.<x>" | "source" (a series per value: the 20 largest per event),
  // "weeks"?: 2-52 weeks of baseline (default 4), "threshold"?: robust z-score (default 3.5)}. The intervals are
  // whole: from the start of the one "from" falls in to the end of the one "to" falls in ("to": "2026-03-31" counts
  // all of March 31; a "to" of now ends with an interval not yet over, whose lower count may be flagged). At most
  // 10,000 intervals. For each interval: "expected" is the median of the baseline counts, "z" = (count - expected) /
  // (1.4826 * MAD of the baseline) (1.2533 * mean absolute deviation when the MAD is 0; null when both are 0 and the
  // count differs), "anomaly" when |z| > threshold or z is null. Answer: {"interval", "from", "to" (the whole
  // intervals' first and last instant), "weeks", "threshold",
  // "series": [{"event", "value"?, "total", "anomalies", "points": [{"at", "count", "expected", "z",
  // "anomaly"}]}]}.
  virtual Result<Json> Trends(const Json& request) = 0;

  // Data quality: checks folded into a score from 0 to 100 (the mean of the checks' scores), each check's part
  // visible. Request: {"now"?: timestamp (default: the current time)}. Answer: {"score", "checks": [{"name",
  // "description", "passed", "total", "score" (passed / total; 1 when total is 0), ...}]}. Checks: purchaseValue
  // (purchases of the last 30 days with a value), eventSource (events of the last 30 days with a source),
  // validIdentifiers (profiles without identityIssues), schemaStability (event fields of the 7 days before the last
  // day still seen in it, and none new; "changes" lists the others), duplicates (events of the last 30 days not
  // repeating one of the same profile, type and time; "spike" when the last day's rate has a robust z above 3.5
  // against the 29 days before). Governance: the principal must be able to read events.source,
  // events.properties.revenue / total / value, externalIds and identityIssues, else PermissionDenied naming the
  // first it may not (Overview the same).
  virtual Result<Json> DataQuality(const Json& request) = 0;

  // Overview. Request: {"now"?: timestamp (default: the current time)}. Answer: {"at", "profiles": {"total",
  // "identified" (an identifier other than anonymous ids and devices), "anonymous", "multiIdentifierRate" (identified
  // profiles linking two identifier values or more, over identified; not Identity::Stats' unificationRate)},
  // "eventsByType": {"24h" | "7d" | "30d": {type: count}}, "activeProfiles": {"daily", "weekly", "monthly"} (profiles
  // with an event in the last 1, 7, 30 days), "revenue" and "orders": {"30d", "total"} (purchases), "segments": [{"id",
  // "name", "size"}], "ingestionLatency":
  // {"calls", "p50Us", "p99Us"} (the last 8,192 accepted Track / TrackBatch calls since open, from the call to its
  // return, when the events are durable and queryable), "gdprTurnaround": Gdpr::ListRequests' "turnaround" (null
  // for a principal who may not list requests), "dataQuality": DataQuality's answer}.
  virtual Result<Json> Overview(const Json& request) = 0;
};

}  // namespace cdp

#endif  // CDP_ANALYTICS_H_
