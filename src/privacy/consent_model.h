// Copyright 2026 The libcdp Authors.
//
// Consent as data: the purposes a profile's consent names, their validation, Google Consent Mode v2, and the
// records of the consent history. Pure functions; the engine stores what they build (engine/consent_impl.cc). The
// model is documented for callers in include/cdp/privacy.h and docs/privacy.md.
//
// A profile's "consent" member is an object of purpose -> boolean (true: granted, false: denied; absent: never
// stated), plus "updatedAt". Purposes:
//   email, sms, tracking, ads                      the channels
//   ad_storage, ad_user_data, ad_personalization   Consent Mode v2's advertising signals; "ads" is granted exactly
//                                                  when all three are, denied when one is
//   analytics_storage                               Consent Mode v2's name for tracking: accepted as input and
//                                                  stored as "tracking"
//   custom purposes                                 [a-z][a-z0-9_]{0,63}, any other name
// at most kMaxPurposes per statement (Consent::Record); profile writes and merges are bounded by the profile size
// limit.

#ifndef CDP_PRIVACY_CONSENT_MODEL_H_
#define CDP_PRIVACY_CONSENT_MODEL_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "cdp/json.h"
#include "cdp/status.h"

namespace cdp::internal {

inline constexpr size_t kMaxPurposes = 64;
inline constexpr size_t kMaxPolicyVersionBytes = 128;

// Validates a consent object as given in a profile document and returns it normalized: analytics_storage stored as
// tracking; "ads" given alone sets the three advertising signals; the signals, when any is given, decide "ads" (an
// "ads" that contradicts them is InvalidArgument). "updatedAt" and null members are dropped. Errors:
// InvalidArgument naming "consent.<purpose>".
Result<Json> NormalizeConsentObject(const Json& in);

// Rewrites a merge patch of the consent object (values boolean or null) so that, applied to a normalized object,
// it means what it says: "ads" also patches the signals it does not name; a signal patched without "ads" makes
// "ads" null (derived again by NormalizeConsentObject); analytics_storage patches tracking. Errors: InvalidArgument
// for a patch that is not an object, or names analytics_storage and tracking with different values.
Status ExpandConsentPatch(Json* patch);

// The purposes whose value differs between two consent objects (either may be null): {purpose: bool, or null when
// the purpose is no longer stated}. "updatedAt" is not a purpose.
Json ConsentChanges(const Json* before, const Json* after);

// Sets "ads" from the advertising signals when any is stated: denied when one is, granted when all three are,
// else (some unstated, none denied) not stated. (Unmerge restores signals one by one.)
void DeriveAds(Json* consent);

// Whether a consent object denies tracking (consent.tracking is false).
bool TrackingDenied(const Json* consent);

// Google Consent Mode v2 of a consent object: {"ad_storage", "analytics_storage", "ad_user_data",
// "ad_personalization"} each "granted" or "denied", for the signals the consent states.
Json ConsentModeOf(const Json& consent);

// A consent request (Consent::Record), validated.
struct ConsentRequest {
  std::string profile_id;       // or
  std::string identifier_type;  // with identifier_value: an identifier the profile holds
  std::string identifier_value;
  Json purposes = Json::Object();  // purpose -> bool, normalized names (analytics_storage -> tracking; "ads"
                                   // expanded into the signals it does not name)
  std::string source = "api";
  std::string policy_version;
  int64_t at_us = 0;  // when the person gave or refused consent; default: now
};

// Parses {"profileId" | "identifier": {"type", "value"}, "purposes": {purpose: "granted" | "denied" | bool},
// "consentMode": {signal: "granted" | "denied"}, "source"?, "policyVersion"?, "timestamp"?}. At least one purpose;
// a timestamp at most 5 minutes after `now_us`. Errors: InvalidArgument naming the field.
Result<ConsentRequest> ParseConsentRequest(const Json& request, int64_t now_us);

// A history record: {"id", "profileId", "purposes": {purpose: bool | null}, "source", "policyVersion"?, "at",
// "recordedAt", "via", "mergeId"?, "superseded"?: [purposes not applied because a later statement exists]}.
// `via`: "consent" (Consent::Record), "profiles.create", "profiles.update", "identify", "merge", "unmerge".
struct ConsentRecord {
  std::string profile_id;
  Json purposes;
  std::string source;
  std::string policy_version;
  int64_t at_us = 0;
  int64_t recorded_us = 0;
  std::string via;
  std::string merge_id;
  std::vector<std::string> superseded;
};
Json ConsentRecordToJson(const ConsentRecord& record, std::string_view id);

// The state of each purpose from a profile's consent object and its history records (oldest recorded first): per
// purpose the object states, {"granted", "at", "source", "policyVersion"?, "via", "recordId"} from the record with
// the latest "at" (the latest recorded among equals) that set it to that value; just {"granted"} when no record
// does (consent stored before histories were kept).
Json ConsentState(const Json& consent, const std::vector<Json>& history);

// The time of the latest statement of `purpose` in the history (records as ConsentRecordToJson): records of the
// person's own (not merges' or unmerges', and not where the purpose was superseded); 0 when none.
int64_t LatestStatementUs(const std::vector<Json>& history, std::string_view purpose);

}  // namespace cdp::internal

#endif  // CDP_PRIVACY_CONSENT_MODEL_H_
