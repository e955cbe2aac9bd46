// Copyright 2026 The libcdp Authors.
//
// Identity rules: which identifier types exist, how their values are normalized, which values are never used for
// matching (blocked), how many values of a type one profile may hold (limits), which type wins when a merge would
// break a limit (priority), and when a value shared by too many people stops linking (hubs).
//
// Rules are data. Their JSON form (the REST and Python shape, and what IdentityRules::ToJson returns):
//
//   {
//     "identifiers": [                                   // in priority order, highest first
//       {"type": "customerId", "limit": 1},
//       {"type": "email", "limit": 5, "canonicalGmail": false, "blocked": ["test@test.com"]},
//       {"type": "phone", "limit": 5, "defaultRegion": "US", "blocked": ["555-555-5555"]},
//       {"type": "shopifyId", "limit": 5},
//       {"type": "deviceId", "limit": 5},
//       {"type": "anonymousId", "limit": 5},
//       {"type": "loyaltyId", "limit": 1}                // a custom type: any other name
//     ],
//     "blocked": ["^[0-]*$", "-1", "null", "undefined", "anonymous"],   // for every type
//     "hub": {"threshold": 10, "highPriorityTypes": ["customerId", "email"]},
//     "survivorship": {                                  // how a merge builds the golden record's attributes
//       "default": "survivor",
//       "fields": {
//         "attributes.firstName": "most_recent",
//         "attributes.customFields.score": "max",
//         "attributes.city": {"rule": "source_priority", "sources": ["crm", "shopify", "web"]}
//       }
//     }
//   }
//
// A blocked entry is a regular expression (RE2 syntax, matched against the whole value) when it starts with '^'
// and ends with '$', else a literal compared case-insensitively with both the trimmed raw value and the normalized
// value (so "555-555-5555" also blocks "(555) 555-5555" and "+15555555555"). RE2 runs in linear time, so a rule
// cannot stall ingestion.
//
// Survivorship (defaults: {"default": "survivor", "fields": {}}): the rule that picks each attribute's value when
// profiles merge, per field path "attributes.<name>" (firstName, lastName, email, phone, country, city, postalCode,
// tags) or "attributes.customFields.<key>" (a top-level key). Fields not listed follow "default"; attributes.tags
// is "union" unless listed. A rule is a name, or {"rule": name, "sources": [...]} (sources only for
// source_priority). The merge itself is MergeProfileDocuments (profiles/profile_model.h); docs/identity.md says
// what each rule does.
//
// Thread-safety: an IdentityRules is immutable after FromJson/Defaults; share it through a shared_ptr<const>.

#ifndef CDP_IDENTITY_RULES_H_
#define CDP_IDENTITY_RULES_H_

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "cdp/json.h"
#include "cdp/status.h"

namespace re2 {
class RE2;
}

namespace cdp::internal {

// A normalized identifier: the unit of matching.
struct Identifier {
  std::string type;   // a type of the rules
  std::string value;  // normalized
  bool operator==(const Identifier&) const = default;
};

// An identifier as given, before normalization: an event field (customerId, email, ...) or an externalIds value.
struct RawIdentifier {
  std::string type;
  std::string value;
};

// An identifier value that is not used for matching, and why. It stays on the event or profile as plain data.
struct IgnoredIdentifier {
  std::string type;
  std::string value;   // as given (trimmed, at most 256 bytes)
  std::string reason;  // "invalid: ...", "blocked: <entry>", "hub", "limit: ...", "unknown type"
  Json ToJson() const;
};

// The canonical Gmail form of a normalized email (gmail.com and googlemail.com: the local part without dots and
// "+tag", the domain gmail.com), as canonicalGmail normalizes it; any other address unchanged. Suppression uses it
// so that an erased Gmail address stays refused whether canonicalGmail is on or off.
std::string CanonicalGmail(std::string_view email);

struct IdentifierTypeRule {
  std::string type;
  int limit = 5;                 // most distinct values of this type one profile holds
  bool canonical_gmail = false;  // email only: drop dots and +tags of gmail.com / googlemail.com addresses
  std::string default_region;    // phone only: ISO 3166 region for numbers without a country code
  std::vector<std::string> blocked;
};

// A survivorship rule of one field. See docs/identity.md, "Merges".
enum class SurvivorshipRule {
  kSurvivor,        // the surviving profile's non-empty value
  kFirstNonEmpty,   // the first non-empty value in merge order (the survivor first)
  kMostRecent,      // the value set last (attributeSources[field].at)
  kOldest,          // the value set first
  kSourcePriority,  // the value whose source comes first in `sources`
  kMax,             // numbers: the larger
  kMin,             // numbers: the smaller
  kSum,             // numbers: the sum
  kUnion,           // arrays: both, order kept, duplicates removed
};

struct FieldSurvivorship {
  SurvivorshipRule rule = SurvivorshipRule::kSurvivor;
  std::vector<std::string> sources;  // kSourcePriority only: highest first
  Json ToJson() const;
};

struct Survivorship {
  FieldSurvivorship default_rule;  // survivor, first_non_empty, most_recent, oldest or source_priority
  std::vector<std::pair<std::string, FieldSurvivorship>> fields;  // path -> rule, as given

  // The rule of a field path: its entry, else "union" for attributes.tags, else the default.
  const FieldSurvivorship& For(std::string_view path) const;
  // `json` is the "survivorship" member; errors name paths under "survivorship".
  static Result<Survivorship> FromJson(const Json& json);
  Json ToJson() const;
};

std::string_view SurvivorshipRuleName(SurvivorshipRule rule);

class IdentityRules {
 public:
  // The built-in types are customerId, email, phone, shopifyId, deviceId and anonymousId.
  static const std::vector<std::string_view>& BuiltinTypes();

  // The defaults documented above (phone default region "US", hub threshold 10).
  static std::shared_ptr<const IdentityRules> Defaults();

  // Validates and compiles `rules`. Members left out take the defaults: a type's limit (customerId 1, others 5),
  // phone's defaultRegion "US", email's and phone's blocked lists, the top-level blocked list, hub.threshold 10 and
  // hub.highPriorityTypes [customerId, email]; an explicit empty list or "" region clears. Every built-in type must
  // appear (a rule set cannot forget email); custom type names are 1-64 characters of [A-Za-z0-9_]; limits 1-1000; at
  // most 64 types and 256 blocked entries, each at most 256 bytes; regexes must compile. survivorship: at most 256
  // fields, each a known attribute or a customFields key of 1-256 bytes; max, min and sum only for customFields keys;
  // union only for tags and customFields keys; "default" one of survivor, first_non_empty, most_recent, oldest,
  // source_priority; sources 1-32 distinct names of 1-128 bytes. Errors: InvalidArgument naming the field path (e.g.
  // "identifiers[2].limit", "blocked[0]", "survivorship.fields[\"attributes.city\"].sources[1]").
  static Result<std::shared_ptr<const IdentityRules>> FromJson(const Json& rules);

  Json ToJson() const;

  // Priority of a type (0 is highest), or -1 when the type is unknown.
  int Priority(std::string_view type) const;
  const IdentifierTypeRule* Rule(std::string_view type) const;
  const std::vector<IdentifierTypeRule>& types() const { return types_; }
  int hub_threshold() const { return hub_threshold_; }
  // Whether values of `type` count towards making another value a hub.
  bool IsHighPriority(std::string_view type) const;
  const Survivorship& survivorship() const { return survivorship_; }

  // Normalizes `raw` as a value of `type`. On success fills *out and returns true; otherwise fills *ignored with
  // the reason (unknown type, invalid value, blocked value) and returns false.
  //   email: trimmed, lower-cased, one '@' with text on both sides and a dot in the domain; with canonicalGmail,
  //          gmail.com and googlemail.com addresses lose dots and "+tag" in the local part (googlemail -> gmail).
  //   phone: E.164 via libphonenumber, parsed with the type's defaultRegion; must be a valid number.
  //   other: trimmed; 1-256 bytes without control characters.
  bool Normalize(std::string_view type, std::string_view raw, Identifier* out, IgnoredIdentifier* ignored) const;

  ~IdentityRules();

 private:
  IdentityRules() = default;
  // Returns the blocked entry matching, or nullptr.
  const std::string* BlockedBy(const IdentifierTypeRule& rule, std::string_view raw, std::string_view value) const;

  std::vector<IdentifierTypeRule> types_;
  std::vector<std::string> blocked_;  // for every type
  int hub_threshold_ = 10;
  std::vector<std::string> high_priority_types_;
  Survivorship survivorship_;
  // Compiled regexes, keyed by their entry text.
  std::vector<std::pair<std::string, std::unique_ptr<re2::RE2>>> regexes_;
  // Per type (by priority), every blocked entry that applies, prepared once: a regex, or a literal with its
  // lower-cased text and its normalized form for the type (so a check costs no phone or email parsing).
  struct BlockedEntry {
    const std::string* entry;
    const re2::RE2* regex;   // null for a literal
    std::string lower;       // literal, lower-cased
    std::string normalized;  // literal, normalized as a value of the type ("" when it does not normalize)
    // A regex's bounds (RE2::PossibleMatchRange): every value it matches lies in [min, max] (bytewise), so one
    // outside is not matched, without running the regex (most values, e.g. an email against "^[0-]*$").
    bool ranged = false;
    std::string min, max;
  };
  std::vector<std::vector<BlockedEntry>> blocked_by_type_;
};

}  // namespace cdp::internal

#endif  // CDP_IDENTITY_RULES_H_
