// Copyright 2026 The libcdp Authors.
//
// Filters, queries and pages shared by profile search and event queries.
//
// A Filter is data, never code: a group of conditions combined with AND or OR, where each condition compares one
// field path of a document with a value, and a condition may itself be a group. Its JSON form is
//
//   {"operator": "AND", "conditions": [
//      {"field": "attributes.country", "operator": "=", "value": "US"},
//      {"operator": "OR", "conditions": [
//         {"field": "computed.ltv", "operator": ">=", "value": 100},
//         {"field": "attributes.tags", "operator": "contains", "value": "vip"}]}]}
//
// Operators:
//   =  !=        equality; numbers compare numerically (1 == 1.0); any JSON value may be compared
//   > < >= <=    numbers compare numerically, strings lexicographically (ISO 8601 timestamps therefore compare in
//                time order); a field of another type, or a missing field, never matches
//   contains     string field: substring; array field: an element equal to the value
//   starts_with  string field: prefix; array field: a string element with the prefix (`value` a string)
//   in           the field equals one of the values of the array `value` (or, for an array field, shares one)
//   not_in       the negation of `in` (a missing field matches)
//   exists       `value` true: the field is present and not null; false: it is absent or null
//
// A missing (or null) field matches only `!=`, `not_in` and `exists` false: it is not equal to anything.
// `"ignoreCase": true` on a condition compares strings without regard to ASCII letter case in =, !=, contains,
// starts_with, in and not_in ("Ada@Example.com" = "ada@example.com"); other characters compare as they are.
// Limits: at most 8 levels of groups and 256 conditions in all; field paths at most 256 bytes.
//
// Pages: queries return at most `limit` items and a `next_cursor`; pass it back as `cursor` to get the next page.
// An empty next_cursor means there are no more items. Cursors are opaque strings, valid across restarts. A profile
// search's cursor belongs to its filter and sort: with another it is InvalidArgument (field "cursor"); the limit
// may change between pages. A page
// reflects the data at the moment it is read: items written between pages may or may not appear.
//
// Thread-safety: plain values.

#ifndef CDP_QUERY_H_
#define CDP_QUERY_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "cdp/json.h"
#include "cdp/status.h"

namespace cdp {

enum class CompareOp { kEq, kNe, kGt, kLt, kGe, kLe, kContains, kIn, kStartsWith, kNotIn, kExists };

struct Condition {
  std::string field;  // dotted path, e.g. "attributes.customFields.tier"
  CompareOp op = CompareOp::kEq;
  Json value;
  bool ignore_case = false;  // "ignoreCase": strings compare without regard to ASCII case (see above)
};

struct Filter {
  enum class Combine { kAnd, kOr };
  Combine combine = Combine::kAnd;
  std::vector<Condition> conditions;
  std::vector<Filter> groups;  // nested groups, combined with `conditions` by `combine`

  bool empty() const { return conditions.empty() && groups.empty(); }

  // Parses the JSON form above. A bare array of conditions is accepted as an AND group.
  // Errors: InvalidArgument with the path of the offending part ("conditions[2].operator").
  static Result<Filter> FromJson(const Json& json);
  // Parses `operator` ("=", "!=", ">", "<", ">=", "<=", "contains", "starts_with", "in", "not_in", "exists").
  static Result<CompareOp> ParseOp(std::string_view text);

  // Whether `doc` satisfies the filter. An empty filter matches everything.
  bool Matches(const Json& doc) const;
};

struct Page {
  std::vector<Json> items;
  std::string next_cursor;  // empty on the last page
};

// Profile search.
struct ProfileQuery {
  Filter filter;
  // Field path to sort by (e.g. "computed.ltv", "createdAt"); empty sorts by id. Profiles without the field sort
  // after all others, whatever the order. Ties are broken by id.
  std::string sort_by;
  bool descending = false;
  size_t limit = 50;   // clamped to Options::max_page_size; 0 means the default (50). FromJson: >= 1, or left out
  std::string cursor;  // from a previous page's next_cursor

  // From {"conditions": [...], "operator": "AND", "sort": {"field": "...", "order": "asc"|"desc"},
  //       "limit": 50, "cursor": "..."}. Every key is optional.
  static Result<ProfileQuery> FromJson(const Json& json);
};

// Event query and timelines.
struct EventQuery {
  std::string profile_id;           // only this profile's events (uses the per-profile index); empty: all profiles
  std::string type;                 // only this event type (one of the seven: another is InvalidArgument); empty: all
  std::string name;                 // only custom events of this name; empty: all
  std::string source;               // only this source; empty: all
  std::optional<int64_t> since_us;  // event time >= since (microseconds since the Unix epoch)
  std::optional<int64_t> until_us;  // event time <  until
  Filter where;                     // conditions on the event document (e.g. field "properties.plan")
  bool descending = false;          // order by event time; ties by event id
  size_t limit = 100;               // clamped to Options::max_page_size; 0: the default. FromJson: >= 1, or left out
  std::string cursor;

  // From {"profileId", "type", "name", "source", "since", "until" (ISO 8601 or epoch milliseconds),
  //       "where": conditions, "order": "asc"|"desc", "limit", "cursor"}. Every key is optional.
  static Result<EventQuery> FromJson(const Json& json);
};

// Timestamps. Accepts ISO 8601 / RFC 3339 ("2026-11-27T10:00:00Z", "2026-11-27T10:00:00.123+01:00",
// "2026-11-27") or a number of milliseconds since the Unix epoch. Returns microseconds since the epoch.
// Years 1970..9999 only. Precision is the millisecond: finer fractions are truncated. Errors: InvalidArgument.
Result<int64_t> ParseTimestamp(const Json& value);
Result<int64_t> ParseTimestamp(std::string_view text);
inline Result<int64_t> ParseTimestamp(const std::string& text) { return ParseTimestamp(std::string_view(text)); }
inline Result<int64_t> ParseTimestamp(const char* text) { return ParseTimestamp(std::string_view(text)); }
// "2026-11-27T10:00:00.123Z": always UTC and always millisecond precision (finer parts are truncated).
std::string FormatTimestamp(int64_t micros);

}  // namespace cdp

#endif  // CDP_QUERY_H_
