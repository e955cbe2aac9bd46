// Copyright 2026 The libcdp Authors.
//
// The profile document: validation of inputs into the stored form, and rendering of the stored form (plus
// computed traits) into the document callers see. See Profiles in include/cdp/engine.h for the model.
//
// Stored form (Cf::kProfiles value): {"id", "externalIds", "attributes", "consent", "computed" (writable scores
// only), "createdAt", "updatedAt"} as compact JSON, plus what identity resolution maintains ("identityIssues",
// "conflicts", "mergedIds", "attributeSources", "hubHashes"), each only when non-empty. Computed traits live in
// Cf::kTraits and are joined at read time.
//
// attributeSources: the provenance of each attribute value, {"<field>": {"source", "at"}}, one entry per field
// with a value: "attributes.<name>" for firstName ... postalCode and tags, "attributes.customFields.<key>" per
// top-level customFields key. "at" is when the value was set (a timestamp string; these compare as text).

#ifndef CDP_PROFILES_PROFILE_MODEL_H_
#define CDP_PROFILES_PROFILE_MODEL_H_

#include <string_view>
#include <vector>

#include "cdp/json.h"
#include "cdp/options.h"
#include "cdp/status.h"
#include "identity/rules.h"
#include "storage/traits.h"

namespace cdp::internal {

// Validates the writable parts of a profile input and returns them normalized: {"externalIds", "attributes",
// "consent", "computed"}, plus "source" (a string of 1-128 bytes: the provenance of the values the write sets)
// when the input has one. Read-only members (id, segments, createdAt, updatedAt, derived computed traits,
// identityIssues, conflicts, mergedIds, attributeSources) are accepted and ignored. Errors: InvalidArgument naming
// the field path.
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

// The provenance written by profile writes and identifies: `stored` (the new document) gets `previous`'s
// attributeSources entries for values that did not change, and {source, at} for values that are new or changed;
// fields without a value have no entry. `previous` is null on create.
void StampAttributeSources(Json* stored, const Json* previous, std::string_view source, int64_t at_us);

// The stored document of a profile created with its first values, dumped as Json::Dump would, without building it
// (a bulk import's every record; building, stamping and dumping the tree was a sixth of its time): what
// BuildStoredProfile(id, normalized, &created, now_us), then the kMaintainedKeys members of `created` set on it (in
// that order), then StampAttributeSources(nullptr, source, at_us) give. `created` is the document the profile was
// created with (createdAt comes from it). `normalized` holds externalIds, attributes, consent and computed, as
// NormalizeProfileInput gives them (attribute names and customFields keys are unique paths).
std::string DumpCreatedProfile(std::string_view id, Json normalized, const Json& created, int64_t now_us,
                               std::string_view source, int64_t at_us);

// Sets the provenance of one field of a stored document (a value set outside a profile write, e.g. an email linked
// by an event).
void SetAttributeSource(Json* stored, std::string_view field, std::string_view source, int64_t at_us);

// The golden record of a merge, built in *survivor from the other profile's stored document:
//  attributes: field by field (each string attribute, tags, each customFields key), a value only one side has is
//    taken; when both have different values, `rules` decide (see docs/identity.md, "Merges"): the survivor's value
//    stays, the other's replaces it with its attributeSources entry, or a sum / union is computed (source "merge",
//    at now). A differing value not kept goes to "conflicts" {field, value, profileId (whose value), mergeId, at
//    (the merge), source, setAt (the value's provenance, when known)}; at most 100 kept, newest last;
//  consent: the most restrictive: a channel denied by either is denied; updatedAt is now when that changed;
//  mergedIds: the survivor's, the other's id and the other's mergedIds; identityIssues: both lists.
// *decisions (when not null) gets one member per field the merge changed: {"<field>": {"rule", "value"}} with the
// rule that decided ("fill" when the survivor had no value) and the value the merge left; Unmerge uses it.
// externalIds are the caller's (it relinks the identifiers).
void MergeProfileDocuments(Json* survivor, const Json& other, std::string_view other_id, std::string_view merge_id,
                           int64_t now_us, const Survivorship& rules = Survivorship(), Json* decisions = nullptr);

// A profile merged into another, as its document was just before the merge.
struct MergedProfile {
  std::string_view id;
  const Json* before;
};

// Undoes one merge on the survivor's current document, given the documents of all as they were before the merge
// (`merged` in merge order) and the merge's `decisions` ({"<merged id>": the *decisions MergeProfileDocuments
// gave}; null for merges recorded without them: the default rules are replayed). Per attribute field the merge
// changed: a value still as the merge left it goes back to the survivor's value before the merge (with its
// attributeSources entry), or is removed when the survivor had none; a value changed since is kept, less what the
// merged profiles contributed to a sum (their numbers are subtracted) or a union (items only they brought are
// removed). Also drops the merge's conflicts and the merged ids, restores consent the merge made more restrictive
// (when unchanged since) and createdAt. externalIds are the caller's.
void UnmergeProfileDocument(Json* survivor, const Json& survivor_before, const std::vector<MergedProfile>& merged,
                            std::string_view merge_id, int64_t now_us, const Json* decisions);

// Appends identifier issues to a stored profile's identityIssues (at most 20 kept, newest last).
void AppendIdentityIssues(Json* stored, const std::vector<const IgnoredIdentifier*>& issues);

// What identity resolution maintains on a stored profile and a write of its writable fields keeps.
inline constexpr std::string_view kMaintainedKeys[] = {"identityIssues", "conflicts", "mergedIds", "hubHashes",
                                                       "formerIdHashes"};

// "formerIdHashes": the suppression hashes (EngineImpl::SuppressionHashes, keyed: the values cannot be read back)
// of identifiers a profile write removed from the profile, as lower-case hex, so that an erasure suppresses the
// values the person held before too. Internal: never rendered, kept across writes. At most kMaxFormerIdHashes are
// kept (the oldest go first).
inline constexpr size_t kMaxFormerIdHashes = 64;
// Adds the hex hashes not already listed.
void NoteFormerIdHashes(Json* stored, const std::vector<std::string>& hex_hashes);
// The hex hashes a stored profile lists (non-string entries are skipped).
std::vector<std::string> FormerIdHashesOf(const Json& stored);

// "hubHashes": the 8-byte hashes (EngineImpl's StableHash, as hub sets store them) that identity resolution put
// into other identifiers' hub sets on this profile's behalf, as 16 hex digits each, so that an erasure can scrub
// them even for values the profile no longer holds (a replaced email, a value renormalized by a rule change, an
// identifier issue trimmed from identityIssues). Internal: never rendered, kept across writes and merges. At most
// kMaxHubHashes are kept (the oldest go first).
inline constexpr size_t kMaxHubHashes = 256;
// Adds `hashes` not already listed.
void NoteHubHashes(Json* stored, const std::vector<uint64_t>& hashes);
// The hashes a stored profile lists (malformed entries are skipped).
std::vector<uint64_t> HubHashesOf(const Json& stored);

// The writable parts of a stored profile, as NormalizeProfileInput would return them (for merge patches).
Json WritableParts(const Json& stored);

// The document callers see: the stored form with computed traits and segments, in the model's field order.
Json RenderProfile(const Json& stored, const storage::Traits& traits);
// The computed traits events maintain, as RenderProfile shows them under "computed": {"ltv", "aov",
// "purchaseCount", "lastPurchaseDate", "firstSeenDate", "lastSeenDate", "eventCount"}.
Json RenderTraits(const storage::Traits& traits);

// Nesting depth of arrays and objects, as Json::Parse counts it: a scalar is 0, {"a": 1} is 1, {"a": [1]} is 2.
int JsonDepth(const Json& value);
// InvalidArgument "JSON nested deeper than {max_depth} levels" naming the path of the first array or object nested
// deeper than max_depth (as Json::Parse names it, e.g. "properties.a[0].b"), when there is one; else OK. O(size of
// value) at most: call it once JsonDepth or SerializedSize found the value too deep.
Status CheckJsonDepth(const Json& value, int max_depth);

// The length of value.Dump(), computed without building it; sets *depth to JsonDepth(value). Clears *ascii (when
// given) if a string or key has a byte above 0x7f: when it stays set, every string is valid UTF-8.
size_t SerializedSize(const Json& value, int* depth, bool* ascii = nullptr);

}  // namespace cdp::internal

#endif  // CDP_PROFILES_PROFILE_MODEL_H_
