// Copyright 2026 The libcdp Authors.
//
// Retention policies as data: their validation and the cut-off each gives at an instant. The engine stores them
// and applies them (engine/retention_impl.h); callers' documentation is in include/cdp/privacy.h (Retention) and
// docs/privacy.md.

#ifndef CDP_PRIVACY_RETENTION_MODEL_H_
#define CDP_PRIVACY_RETENTION_MODEL_H_

#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "cdp/json.h"
#include "cdp/status.h"

namespace cdp::internal {

inline constexpr size_t kMaxRetentionPolicies = 100;

struct RetentionPolicy {
  enum class Target { kEvents, kProfiles };
  std::string id;    // "ret_..."
  std::string name;  // 1-256 bytes
  Target target = Target::kEvents;
  std::string event_type;  // events: only this type ("" any)
  std::string event_name;  // events: only custom events of this name ("" any)
  int64_t age_us = 0;      // events: older than this; profiles: without activity for this long
  std::string age_text;    // as given ("365d")
  bool enabled = true;

  // The instant before which data is purged, at `now_us`.
  // Never before 1970 (no event time is): an age longer than the time since then cuts nothing.
  int64_t CutoffAt(int64_t now_us) const { return std::max<int64_t>(0, now_us - age_us); }
  Json ToJson() const;
};

// A duration "<n><unit>" with unit h (hours), d (days), w (weeks) or y (365 days), at least one hour and at most
// 100 years. Errors: InvalidArgument naming `field`.
Result<int64_t> ParseRetentionAge(const Json& value, const std::string& field);

// Validates {"policies": [policy, ...]} (at most kMaxRetentionPolicies). A policy:
//   {"id"?: "ret_..." (kept; assigned by the caller when absent), "name", "target": "events" | "profiles",
//    "eventType"?, "eventName"? (events), "olderThan" (events) | "inactiveFor" (profiles), "enabled"?: bool}
// Errors: InvalidArgument naming the field ("policies[2].olderThan").
Result<std::vector<RetentionPolicy>> ParseRetentionPolicies(const Json& json);

// What retention has retired from the event log. A horizon says: every event of `event_type` ("" any type) and,
// when set, custom-event name `event_name`, whose event log key (storage::TimeIndexKey) sorts below `before`, is
// retired: it has left the per-profile index, its profile's traits and the segments, readers of the log skip it,
// the log's compaction filter drops it (without a tombstone), and an event that would sort below is refused. A run
// raises a horizon chunk by chunk as it scans the log in key order, in the same write as the chunk's changes; a
// horizon never goes down. There is one per (type, name) ever used by a policy, kept when policies change: what
// it retired stays retired. Not thread-safe (the engine shares immutable copies).
class RetentionHorizons {
 public:
  struct Horizon {
    std::string event_type, event_name;
    // A time key (storage::TimeKey: time and event id), never a whole log key: whether an event is retired does
    // not depend on the profile holding it, which a merge changes.
    std::string before;
  };

  // The stored form (JSON: [{"type", "name", "before": hex}]). Errors: DataLoss when it is corrupt.
  static Result<RetentionHorizons> Parse(std::string_view stored);
  std::string Serialize() const;
  bool empty() const { return horizons_.empty(); }
  // The horizon of (type, name), or "" when there is none.
  const std::string& Before(std::string_view event_type, std::string_view event_name) const;
  // Raises the horizon of (type, name) to `before` (a lower value changes nothing).
  void Raise(const std::string& event_type, const std::string& event_name, std::string before);
  // Whether the event with this log key (or its time key, for an event not stored yet: the same answer, as
  // horizons are time keys) and type / name is retired.
  bool Retired(std::string_view key, std::string_view type, std::string_view name) const;
  // The same for a stored event: `document` is read only when the key sorts below some horizon, its type and name
  // straight from its text when it starts as the engine writes it (StoredTypeAndName), else by a full parse. A
  // document that does not parse is not retired. Cost: a few dozen byte compares, a parse only for documents in
  // another shape.
  bool RetiredStored(std::string_view key, std::string_view document) const;

 private:
  std::vector<Horizon> horizons_;
  std::string highest_;  // the largest `before`: keys at or above it are never retired
};

// The "type" and "name" ("" when absent) of a stored event read from the start of its text, when it starts as
// AppendStoredEvent (events/event_model.h) writes it: {"id":"…","profileId":"…","type":"…"[,"name":"…"] with no
// backslash in those strings. False for any other shape (the caller parses it). The views point into `document`.
bool StoredTypeAndName(std::string_view document, std::string_view* type, std::string_view* name);

// The span of the event log retention retired and has not yet made physical: the first and last retired log keys.
struct RetiredRange {
  std::string first, last;
  // The stored form (JSON, keys in hex). Errors: DataLoss when it is corrupt.
  static Result<RetiredRange> Parse(std::string_view stored);
  std::string Serialize() const;
  // Widens the range to cover [first, last].
  void Extend(std::string_view first, std::string_view last);
};

}  // namespace cdp::internal

#endif  // CDP_PRIVACY_RETENTION_MODEL_H_
