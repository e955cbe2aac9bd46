// Copyright 2026 The libcdp Authors.
//
// Identity resolution: given the identifiers one event or profile write carries, decide which profile it belongs
// to, which identifiers join that profile, and which profiles merge. A pure decision over a view of the graph; the
// engine applies the decision (engine/engine_impl.cc) in the same WriteBatch as the write that caused it.
//
// The algorithm (the same for events, profile writes and bulk imports):
//  1. Identifiers of unknown types, invalid values and blocked values were dropped by IdentityRules::Normalize.
//     Values that are hubs (linked to more than hub.threshold distinct high-priority values) match nothing and
//     join nothing.
//  2. The owners of the remaining identifiers are looked up. None: a new profile. One: that profile. Several: the
//     owners merge into one survivor: the owner of the highest-priority identifier (ties: the first found).
//  3. Limits: the survivor may hold at most `limit` distinct values of each type, counting the merged profiles'
//     identifiers and the new ones. When a merge would break a limit, the incoming identifier of the lowest
//     priority is dropped (reason "limit: ...") and step 2 runs again; so two customers sharing one device stay
//     two people. When no merge is involved, a new identifier that would break its type's limit is not attached
//     (reason "limit: ..."). A dropped identifier that nobody holds, or whose holder's identifiers fit the limits
//     together with the survivor's, joins after all (its holder merged in, or made the survivor when there was
//     none): only what conflicts is left out.
// Cost: one owner lookup per identifier per round, at most (identifiers) rounds.

#ifndef CDP_IDENTITY_RESOLVER_H_
#define CDP_IDENTITY_RESOLVER_H_

#include <string>
#include <vector>

#include "cdp/status.h"
#include "identity/rules.h"

namespace cdp::internal {

// What the resolver needs to know about the graph as it is now (including the caller's uncommitted changes).
class GraphView {
 public:
  virtual ~GraphView() = default;
  // The profile owning the identifier, or "" when none.
  virtual Result<std::string> Owner(const Identifier& id) = 0;
  // The identifiers a profile holds.
  virtual Result<std::vector<Identifier>> IdentifiersOf(const std::string& profile_id) = 0;
  // Whether the value has become a hub.
  virtual Result<bool> IsHub(const Identifier& id) = 0;
};

struct Resolution {
  std::string profile_id;                  // the survivor; empty when a new profile must be created
  std::vector<std::string> merge;          // other profiles to merge into profile_id (empty without a merge)
  std::vector<Identifier> attach;          // identifiers to link to the profile (not yet owned by it or a merged one)
  std::vector<IgnoredIdentifier> ignored;  // identifiers dropped by hubs or limits, with the reason
  Identifier evidence;                     // the identifier that caused the merge (when merge is not empty)
};

// `ids` are normalized identifiers, in any order. `fixed_profile`, when not empty, is the profile the write names
// (an event's profileId, a profile update): it is always the survivor, and identifiers owned by other profiles
// merge those profiles into it under the same limits.
Result<Resolution> Resolve(const IdentityRules& rules, GraphView& graph, std::vector<Identifier> ids,
                           const std::string& fixed_profile);

}  // namespace cdp::internal

#endif  // CDP_IDENTITY_RESOLVER_H_
