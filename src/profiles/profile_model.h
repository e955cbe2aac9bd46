// Copyright 2026 The libcdp Authors.
//
// The profile document: validation of inputs into the stored form, and rendering of the stored form (plus
// computed traits) into the document callers see. See Profiles in include/cdp/engine.h for the model.
//
// Stored form (Cf::kProfiles value): {"id", "externalIds", "attributes", "consent", "computed" (writable scores
// only), "createdAt", "updatedAt"} as compact JSON. Computed traits live in Cf::kTraits and are joined at read time.

#ifndef CDP_PROFILES_PROFILE_MODEL_H_
#define CDP_PROFILES_PROFILE_MODEL_H_

#include <vector>

#include "cdp/json.h"
#include "cdp/options.h"
#include "cdp/status.h"
#include "identity/rules.h"
#include "storage/traits.h"

namespace cdp::internal {

// Validates the writable parts of a profile input and returns them normalized: {"externalIds", "attributes",
// "consent", "computed"}. Read-only members (id, segments, createdAt, updatedAt, derived computed traits) are
// accepted and ignored. Errors: InvalidArgument naming the field path.
Result<Json> NormalizeProfileInput(const Json& input);

// The identifiers named by the externalIds of normalized parts (or of a stored profile), as given.
std::vector<RawIdentifier> ProfileIdentifiers(const Json& normalized);

// The identifiers a stored profile holds (its externalIds are normalized).
std::vector<Identifier> StoredIdentifiers(const Json& stored);

// externalIds in the stored shape: "deviceIds" a list; other types a string, or a list when several.
Json ExternalIdsOf(const std::vector<Identifier>& ids);

// Normalizes the identifiers of normalized parts with `rules` (externalIds, and attributes.email / phone when
// externalIds lacks them): fills *ids with the valid ones and rewrites externalIds to them; values that are not
// identifiers (invalid, blocked) go to *ignored, and an invalid email or phone stays as attributes.email / phone
// when that is empty. Errors: InvalidArgument for a type the rules do not know (field externalIds.<type>).
Status ApplyIdentityRules(const IdentityRules& rules, Json* parts, std::vector<Identifier>* ids,
                          std::vector<IgnoredIdentifier>* ignored);

// Builds the stored form from normalized writable parts. `previous` is the stored form before this write (null on
// create): createdAt is kept and consent.updatedAt changes only when a consent value changed.
Json BuildStoredProfile(std::string_view id, Json normalized, const Json* previous, int64_t now_us);

// The golden record of a merge, built in *survivor from the other profile's stored document:
//  attributes: the survivor's values win; the other's fill absent fields; tags are united; customFields are
//    combined key by key; a differing value the survivor does not keep goes to "conflicts" {field, value,
//    profileId, mergeId, at} (at most 100 kept, newest last);
//  consent: the most restrictive: a channel denied by either is denied; updatedAt is now when that changed;
//  mergedIds: the survivor's, the other's id and the other's mergedIds; identityIssues: both lists.
// externalIds are the caller's (it relinks the identifiers).
void MergeProfileDocuments(Json* survivor, const Json& other, std::string_view other_id, std::string_view merge_id,
                           int64_t now_us);

// Undoes MergeProfileDocuments on the survivor's current document, given the documents of both as they were before
// the merge: drops the merge's conflicts, the merged ids, and the attribute values, tags, customFields and consent
// the merge brought in (when they have not changed since); restores createdAt. Later changes are kept.
// externalIds are the caller's.
void UnmergeProfileDocument(Json* survivor, const Json& survivor_before, const Json& other_before,
                            std::string_view other_id, std::string_view merge_id, int64_t now_us);

// Appends identifier issues to a stored profile's identityIssues (at most 20 kept, newest last).
void AppendIdentityIssues(Json* stored, const std::vector<const IgnoredIdentifier*>& issues);

// The writable parts of a stored profile, as NormalizeProfileInput would return them (for merge patches).
Json WritableParts(const Json& stored);

// The document callers see: the stored form with computed traits and segments, in the model's field order.
Json RenderProfile(const Json& stored, const storage::Traits& traits);

// Nesting depth of arrays and objects, as Json::Parse counts it: a scalar is 0, {"a": 1} is 1, {"a": [1]} is 2.
int JsonDepth(const Json& value);

// The length of value.Dump(), computed without building it; sets *depth to JsonDepth(value).
size_t SerializedSize(const Json& value, int* depth);

}  // namespace cdp::internal

#endif  // CDP_PROFILES_PROFILE_MODEL_H_
