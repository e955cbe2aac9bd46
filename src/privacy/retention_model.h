// Copyright 2026 The libcdp Authors.
//
// Retention policies as data: their validation and the cut-off each gives at an instant. The engine stores them
// and applies them (engine/retention_impl.h); callers' documentation is in include/cdp/privacy.h (Retention) and
// docs/privacy.md.

#ifndef CDP_PRIVACY_RETENTION_MODEL_H_
#define CDP_PRIVACY_RETENTION_MODEL_H_

#include <cstdint>
#include <string>
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
  int64_t CutoffAt(int64_t now_us) const { return now_us - age_us; }
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

}  // namespace cdp::internal

#endif  // CDP_PRIVACY_RETENTION_MODEL_H_
