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
#include "profiles/identifiers.h"
#include "storage/traits.h"

namespace cdp::internal {

// Validates the writable parts of a profile input and returns them normalized: {"externalIds", "attributes",
// "consent", "computed"}. Read-only members (id, segments, createdAt, updatedAt, derived computed traits) are
// accepted and ignored. Errors: InvalidArgument naming the field path.
Result<Json> NormalizeProfileInput(const Json& input);

// The identifiers a normalized profile holds (externalIds), in resolution order.
std::vector<Identifier> ProfileIdentifiers(const Json& normalized);

// Builds the stored form from normalized writable parts. `previous` is the stored form before this write (null on
// create): createdAt is kept and consent.updatedAt changes only when a consent value changed.
Json BuildStoredProfile(std::string_view id, Json normalized, const Json* previous, int64_t now_us);

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
