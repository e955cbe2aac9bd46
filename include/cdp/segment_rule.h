// Copyright 2026 The libcdp Authors.
//
// Segment rules: who belongs to a segment, written as JSON data (never code).
//
// A rule is a tree. Its leaves test one profile (a field of the profile document, the profile's events, or its
// membership of another segment); its inner nodes combine leaves with AND, OR and NOT. The JSON form extends the
// Filter of cdp/query.h, so every profile-search filter is also a valid rule:
//
//   {"operator": "AND", "conditions": [
//      {"field": "attributes.country", "operator": "in", "value": ["US", "CA"]},
//      {"field": "computed.lastPurchaseDate", "operator": ">=", "value": "-30d"},
//      {"event": "purchase", "where": [{"field": "properties.revenue", "operator": ">", "value": 50}],
//       "within": "90d", "count": {">=": 2}},
//      {"not": {"segment": "churned"}}]}
//
// GROUPS. `{"operator": "AND" | "OR" | "NOT", "conditions": [...]}`. NOT negates the AND of its conditions.
// `{"not": <condition>}` negates one condition. A bare array of conditions is an AND group. An empty AND group
// matches every profile, an empty OR group none.
//
// FIELD CONDITIONS. `{"field": <path>, "operator": <op>, "value": <value>}` on any dotted path of the profile document
// (`attributes.*`, `attributes.customFields.*`, `computed.*` including `computed.rfm.*` and predictive scores such as
// `computed.churnRisk`, `consent.*`, `externalIds.*`, `segments`, `createdAt`, ...). A path does not descend into
// arrays. A missing field and a JSON null are the same: absent.
//   =  !=        JSON equality; numbers compare numerically (1 == 1.0); `value` is a scalar or an array of scalars
//   > < >= <=    numbers numerically, strings byte-wise (ISO 8601 strings therefore in time order); other types
//                never match
//   between      `value` is [low, high]; low <= field <= high, ordered as above
//   contains     string field: holds `value` as a substring; array field: has an element equal to `value`
//   starts_with  string field: begins with `value` (a string); array field: has a string element that does
//   in           `value` is an array; the field equals one of its elements (an array field: shares one)
//   not_in       the negation of `in` (an absent field is not in any list, so it matches)
//   exists       the field is present and not null (`value` may be omitted)
//   not_exists   the negation of `exists`
// An absent field matches only `!=`, `not_in` and `not_exists`. Object-valued fields only answer `exists` /
// `not_exists` (they equal no scalar or array); rule values are never objects.
//
// DATES. When the value of `=`, `!=`, `>`, `<`, `>=`, `<=` or a bound of `between` is a timestamp (any ISO 8601 form
// that ParseTimestamp in cdp/query.h accepts, "2026-11-27" included) the comparison is between instants, and the
// field must hold an ISO 8601 string (a field of another type matches only `!=`). The ordered operators and
// `between` also take relative dates: `"now"` or a sign, an integer and a unit (`s`, `m` minutes, `h`, `d`, `w`),
// e.g. `"-30d"`, `"+2h"`; they are resolved against the evaluation time `now`. So
// `{"field": "computed.lastPurchaseDate", "operator": ">=", "value": "-30d"}` is "purchased in the last 30 days",
// and membership changes as time passes, with no write (see NextChange in the index and time_dependent below).
// Elements of `in` / `not_in` / `contains` date-time values are brought to libcdp's stored form
// ("2026-11-27T10:00:00.000Z") and compared as strings.
//
// BEHAVIOURAL CONDITIONS test the profile's events:
//   {"event": "purchase",                         a standard type (page_view, product_view, add_to_cart, purchase,
//                                                 email_open, app_usage, custom), a custom event's name, or "*"
//    "where": [conditions],                       optional: field conditions (and groups) on the event document:
//                                                 paths `properties.*`, `source`, `deviceId` or `name`; no
//                                                 relative dates
//    "within": "30d" | {"from": t, "to": t},      optional: event time in [now - 30d, now], or in [from, to] where
//                                                 each bound is a timestamp or a relative date (either may be
//                                                 omitted). Default: all events, whatever their time
//    "count": {">=": 2}}                          optional: a comparison on the number of matching events
// or, instead of `count`, an aggregate of a numeric property of the matching events with a comparison:
//   {"event": "purchase", "sum": "properties.revenue", "value": {">": 500}}        also "avg", "min", "max"
// A comparison is an object of one or more of `= != > < >= <=` with numbers, all of which must hold
// (`{">=": 2, "<": 5}`). Without `count` or an aggregate the condition is `count >= 1` ("did"). "Did not" is
// `"count": {"=": 0}`; it matches profiles without any event. Events whose property is absent or not a number
// are left out of an aggregate; the sum of none is 0, while avg, min and max of none make the condition false.
//
// SEQUENCES. "Event A then event B":
//   {"sequence": [{"event": "add_to_cart", "where": [...]}, {"event": "purchase"}], "span": "1h", "within": "30d"}
// matches when the profile has events e1, e2, ... (one per step, each step an event name and optional `where`) with
// strictly increasing times, and t(last) - t(first) <= span (default: no limit). `within` restricts every step's
// event to the window, as for behavioural conditions. 2 to 8 steps.
//
// SEGMENT MEMBERSHIP. `{"segment": "<segment id>"}`: the profile is a member of that segment, as the evaluator's
// membership lookup says at evaluation time (an unknown segment has no members).
//
// LIMITS (RuleLimits): groups nested at most 8 deep, 256 conditions in all (where-conditions and sequence steps
// count), field paths at most 256 bytes, string values at most 1,024 bytes, arrays of values at most 1,000
// elements, segment ids at most 128 bytes, durations and offsets at most 100 years.
//
// ERRORS. FromJson returns InvalidArgument whose field() is the JSON path of the offending part, e.g.
// "conditions[2].count" or "conditions[0].where[1].operator". Unknown keys are errors, never ignored.
//
// COST. Parsing is linear in the rule's size. Evaluation (src/segments/index.h) is a scan of the columns the rule
// reads: one pass over a field's values per field condition, one pass over the events of the named type per
// behavioural condition, and compressed-bitmap algebra for the groups.
//
// THREAD-SAFETY. A SegmentRule is an immutable value once parsed; concurrent const use is safe.

#ifndef CDP_SEGMENT_RULE_H_
#define CDP_SEGMENT_RULE_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cdp/json.h"
#include "cdp/status.h"

namespace cdp {

// Field operators of segment rules (a superset of cdp::CompareOp).
enum class RuleOp : uint8_t {
  kEq,
  kNe,
  kGt,
  kLt,
  kGe,
  kLe,
  kContains,
  kIn,
  kNotIn,
  kExists,
  kNotExists,
  kBetween,
  kStartsWith,
};

// "=", "!=", ">", ... "starts_with" (the canonical spelling).
std::string_view RuleOpName(RuleOp op);

// An instant written in a rule: absolute, or relative to the evaluation time.
struct TimePoint {
  bool relative = false;
  int64_t micros = 0;  // absolute: since the Unix epoch; relative: offset from now (negative: in the past)
  int64_t Resolve(int64_t now_us) const { return relative ? now_us + micros : micros; }
};

// One value of a field condition: a JSON scalar (or array of scalars, for = and !=), or an instant.
struct RuleValue {
  Json json;                      // the value as written (date-times of in/not_in/contains normalized)
  std::optional<TimePoint> time;  // set when the value is a timestamp or a relative date (see DATES)
};

// Comparison on a count or an aggregate: every term must hold.
struct NumberTest {
  struct Term {
    RuleOp op;  // kEq, kNe, kGt, kLt, kGe or kLe
    double value;
  };
  std::vector<Term> terms;
  bool Matches(double x) const;
};

enum class Aggregate : uint8_t { kCount, kSum, kAvg, kMin, kMax };

// A time window [from, to] (inclusive); an absent bound is unbounded.
struct TimeWindow {
  std::optional<TimePoint> from;
  std::optional<TimePoint> to;
  bool bounded() const { return from.has_value() || to.has_value(); }
  bool relative() const { return (from && from->relative) || (to && to->relative); }
};

struct RuleNode;

// The events a behavioural condition or a sequence step looks at.
struct EventMatch {
  std::string event;            // a standard type, a custom event name, or "*" (any event)
  std::vector<RuleNode> where;  // field conditions and groups on the event document, combined with AND
};

struct RuleNode {
  enum class Kind : uint8_t { kAnd, kOr, kNot, kField, kEvent, kSequence, kSegment };
  Kind kind = Kind::kAnd;

  // kAnd, kOr: the operands. kNot: exactly one operand.
  std::vector<RuleNode> children;

  // kField
  std::string field;
  RuleOp op = RuleOp::kEq;
  std::vector<RuleValue> values;  // one value; two for between; the elements for in / not_in; none for exists

  // kEvent: events matching `events` inside `within`, aggregated and tested.
  // kSequence: `steps` in order inside `within`, at most `span_us` apart (first to last; -1: no limit).
  EventMatch events;
  Aggregate aggregate = Aggregate::kCount;
  std::string aggregate_field;  // for kSum, kAvg, kMin, kMax
  NumberTest test;
  TimeWindow within;
  std::vector<EventMatch> steps;
  int64_t span_us = -1;

  // kSegment
  std::string segment;
};

// What a rule reads, so that a write re-evaluates only the segments it can affect.
struct RuleDependencies {
  std::vector<std::string> fields;    // profile field paths, sorted and distinct
  std::vector<std::string> events;    // event types / custom names the rule reads ("*": any), sorted, distinct
  std::vector<std::string> segments;  // segment ids, sorted and distinct
  bool time_dependent = false;        // relative dates or windows: membership can change as time passes

  // Whether a change of the profile field at `path` (e.g. "attributes.city", or "attributes" for a whole replace)
  // can change the rule's result: a dependency equals `path`, or one is a prefix of the other at a dot.
  bool ReadsField(std::string_view path) const;
  // Whether an event of this type (and custom name) can change the rule's result.
  bool ReadsEvent(std::string_view type, std::string_view name) const;
};

struct RuleLimits {
  int max_depth = 8;                  // groups (and NOT) nested at most this deep; the top group is level 1
  size_t max_conditions = 256;        // leaves, where-conditions and sequence steps in all
  size_t max_path_bytes = 256;        // field paths
  size_t max_string_bytes = 1024;     // string values, event names
  size_t max_array_values = 1000;     // elements of in / not_in / = arrays
  size_t max_segment_id_bytes = 128;  // segment ids
};

class SegmentRule {
 public:
  SegmentRule() = default;  // the empty rule: matches every profile

  // Parses and validates the JSON form above. Errors: InvalidArgument with field() = the JSON path of the offending
  // part. Cost: linear in the size of `json`.
  static Result<SegmentRule> FromJson(const Json& json, const RuleLimits& limits = {});

  const RuleNode& root() const { return root_; }
  const RuleDependencies& dependencies() const { return deps_; }
  // The JSON the rule was parsed from.
  const Json& source() const { return source_; }

 private:
  RuleNode root_;
  RuleDependencies deps_;
  Json source_;
};

// Standard event types; any other `event` string in a rule names custom events.
bool IsStandardEventType(std::string_view type);

// Parses a duration: a positive integer and a unit s, m (minutes), h, d or w ("30d"). Returns microseconds.
// Errors: InvalidArgument. Durations over 100 years are rejected.
Result<int64_t> ParseRuleDuration(std::string_view text);

}  // namespace cdp

#endif  // CDP_SEGMENT_RULE_H_
