// Copyright 2026 The libcdp Authors.

#include "identity/resolver.h"

#include <algorithm>

#include "fmt/format.h"

namespace cdp::internal {

namespace {

bool Contains(const std::vector<Identifier>& list, const Identifier& id) {
  return std::find(list.begin(), list.end(), id) != list.end();
}

// The type among `ids` whose count of distinct values would pass its limit, or nullptr.
const IdentifierTypeRule* BrokenLimit(const IdentityRules& rules, const std::vector<Identifier>& ids) {
  for (const IdentifierTypeRule& rule : rules.types()) {
    int n = 0;
    for (const Identifier& id : ids) n += id.type == rule.type;
    if (n > rule.limit) return &rule;
  }
  return nullptr;
}

}  // namespace

Result<Resolution> Resolve(const IdentityRules& rules, GraphView& graph, std::vector<Identifier> ids,
                           const std::string& fixed_profile) {
  Resolution out;
  // Highest priority first; duplicates removed.
  std::stable_sort(ids.begin(), ids.end(), [&](const Identifier& a, const Identifier& b) {
    return rules.Priority(a.type) < rules.Priority(b.type);
  });
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  // Hubs match nothing and join nothing.
  std::vector<Identifier> usable;
  for (Identifier& id : ids) {
    CDP_ASSIGN_OR_RETURN(bool hub, graph.IsHub(id));
    if (hub) {
      out.ignored.push_back({id.type, id.value, "hub: linked to too many distinct people"});
    } else {
      usable.push_back(std::move(id));
    }
  }

  std::vector<Identifier> dropped;
  std::vector<std::string> reasons;  // why each was dropped
  while (true) {
    // Owners, in the priority order of the identifiers that found them.
    std::vector<std::string> owners;
    std::vector<Identifier> found_by;
    if (!fixed_profile.empty()) {
      owners.push_back(fixed_profile);
      found_by.push_back({});
    }
    bool all_owned = true;
    for (const Identifier& id : usable) {
      CDP_ASSIGN_OR_RETURN(std::string owner, graph.Owner(id));
      all_owned = all_owned && !owner.empty();
      if (!owner.empty() && std::find(owners.begin(), owners.end(), owner) == owners.end()) {
        owners.push_back(std::move(owner));
        found_by.push_back(id);
      }
    }
    // The identity set the survivor would hold.
    std::vector<Identifier> all;
    if (owners.size() > 1 || !all_owned) {
      for (const std::string& owner : owners) {
        CDP_ASSIGN_OR_RETURN(std::vector<Identifier> held, graph.IdentifiersOf(owner));
        for (Identifier& h : held) {
          if (!Contains(all, h)) all.push_back(std::move(h));
        }
      }
      std::vector<Identifier> merged = all;
      for (const Identifier& id : usable) {
        if (!Contains(merged, id)) merged.push_back(id);
      }
      if (const IdentifierTypeRule* broken = BrokenLimit(rules, merged); broken != nullptr) {
        // Drop the lowest-priority incoming identifier and try again (it may have found the wrong owner).
        dropped.push_back(usable.back());
        reasons.push_back(fmt::format("limit: one profile would hold more than {} {} value{}", broken->limit,
                                      broken->type, broken->limit == 1 ? "" : "s"));
        usable.pop_back();
        continue;
      }
    }
    if (!owners.empty()) out.profile_id = owners[0];
    if (owners.size() > 1) {
      out.merge.assign(owners.begin() + 1, owners.end());
      out.evidence = found_by[1];
    }
    for (const Identifier& id : usable) {
      if (!all_owned && !Contains(all, id)) out.attach.push_back(id);
    }
    // Dropped identifiers (highest priority first): one the profile holds anyway is not worth reporting; one nobody
    // holds joins after all when it fits the profile's limit, and one another profile holds brings that profile in
    // (merged, or as the survivor when the write would create one) when its identifiers fit every limit: it was
    // dropped only because of the identifier that broke the limit, not for a conflict of its own (an anonymous
    // visitor's history identified together with a phone another customer holds). The rest are reported.
    if (!dropped.empty() && all.empty() && !owners.empty()) {
      CDP_ASSIGN_OR_RETURN(all, graph.IdentifiersOf(owners[0]));
    }
    std::vector<Identifier> held = all;
    for (const Identifier& id : out.attach) held.push_back(id);
    for (size_t i = dropped.size(); i-- > 0;) {  // highest priority first
      const Identifier& d = dropped[i];
      if (Contains(held, d)) continue;
      CDP_ASSIGN_OR_RETURN(std::string owner, graph.Owner(d));
      if (!owner.empty() && owner == out.profile_id) continue;
      if (!owner.empty() && std::find(out.merge.begin(), out.merge.end(), owner) != out.merge.end()) continue;
      if (!owner.empty() && fixed_profile.empty()) {
        CDP_ASSIGN_OR_RETURN(std::vector<Identifier> theirs, graph.IdentifiersOf(owner));
        std::vector<Identifier> joined = held;
        for (Identifier& t : theirs) {
          if (!Contains(joined, t)) joined.push_back(std::move(t));
        }
        if (BrokenLimit(rules, joined) == nullptr) {
          held = std::move(joined);
          if (out.profile_id.empty()) {
            out.profile_id = owner;  // the new identifiers attach to it instead of to a new profile
          } else {
            if (out.merge.empty()) out.evidence = d;
            out.merge.push_back(owner);
          }
          continue;
        }
      }
      if (owner.empty()) {
        const IdentifierTypeRule* rule = rules.Rule(d.type);
        int n = 0;
        for (const Identifier& h : held) n += h.type == d.type;
        if (rule != nullptr && n < rule->limit) {
          held.push_back(d);
          out.attach.push_back(d);
          continue;
        }
      }
      out.ignored.push_back({d.type, d.value, reasons[i]});
    }
    return out;
  }
}

}  // namespace cdp::internal
