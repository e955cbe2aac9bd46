// Copyright 2026 The libcdp Authors.
//
// Governance as data: the classification of fields, roles, principals, and what a principal may read and write.
// Pure functions and immutable values; the engine stores the policy and enforces it where callers reach data
// (engine/governance_impl.h, engine/audited.cc). Documented for callers in include/cdp/privacy.h (Governance)
// and docs/privacy.md.
//
// Paths. Fields are named by dotted paths: a profile's as in its document ("attributes.customFields.tier",
// "externalIds.email", "consent.email"), an event's under "events." ("events.properties.revenue", "events.email"),
// a session summary's under "sessions." ("sessions.firstPage"). A path's class is that of its longest classified
// prefix (defaults overlaid by the policy's "classification"); a path with no classified prefix is "pii".
//
// A principal may read (write) a path when one of its roles grants the path's class, or grants the path or one of
// its prefixes as a field ("readFields" / "writeFields"). A role with the operation "admin" may do everything.
//
// Derived fields (kDerivedFields): a value computed from event fields tells what they held (one purchase's ltv is
// its revenue). A principal may read one only when it may also read every field it is computed from, unless a role
// names the derived path itself in "readFields".

#ifndef CDP_PRIVACY_GOVERNANCE_MODEL_H_
#define CDP_PRIVACY_GOVERNANCE_MODEL_H_

#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "cdp/json.h"
#include "cdp/status.h"

namespace cdp::internal {

// Debian's Abseil has its own string_view: lookups in absl containers take it.
inline absl::string_view Av(std::string_view s) { return absl::string_view(s.data(), s.size()); }

// The operations a role may be granted beyond reading and writing fields.
//   export  Gdpr::Export (the data subject's access request), and reading privacy request records
//   erase   Profiles::Delete and Gdpr::Erase, suppression checks and lifts
//   audit   Audit::List and Audit::Verify
//   admin   everything, including Governance's policy and API keys and the identity rules
inline constexpr std::string_view kOperations[] = {"export", "erase", "audit", "admin"};

// Principals every policy has, with the role "admin": "local" (calls made in-process outside any ScopedPrincipal)
// and "api-key" (cdp-server's --api-key). They cannot be redefined.
inline constexpr std::string_view kBuiltinPrincipals[] = {"local", "api-key"};

struct Role {
  std::set<std::string> read, write;                // classes
  std::set<std::string> read_fields, write_fields;  // paths
  std::set<std::string> operations;
};

// A validated policy. Immutable once built; shared by the accesses compiled from it.
class GovernancePolicy {
 public:
  // The defaults: classes public, internal, pii, sensitive; the default classification (docs/privacy.md); the
  // built-in role "admin" and principals; no other roles or principals.
  static std::shared_ptr<const GovernancePolicy> Defaults();

  // Validates `json` ({"classes"?, "classification"?, "roles"?, "principals"?}; see Governance::SetPolicy) and
  // builds the policy. Errors: InvalidArgument naming the field ("roles.analyst.read[1]").
  static Result<std::shared_ptr<const GovernancePolicy>> FromJson(const Json& json);

  // What SetPolicy stored (round-trips through FromJson).
  const Json& stored() const { return stored_; }
  // The effective policy: classes, the classification with its defaults, roles and principals with the built-ins.
  Json ToJson() const;

  // The class of a path (see the file comment).
  std::string_view ClassOf(std::string_view path) const;
  // Whether some classification key lies strictly below `path` (a filter must look inside it).
  bool HasRuleBelow(std::string_view path) const { return branch_points_.contains(Av(path)); }
  // The classification keys strictly below `path`. Cost: a pass over the classification.
  std::vector<std::string> KeysBelow(std::string_view path) const;
  bool IsClass(std::string_view name) const;
  const std::vector<std::string>& classes() const { return classes_; }
  // The roles of a principal; null when it is not defined.
  const std::vector<std::string>* RolesOf(std::string_view principal) const;
  const Role* FindRole(std::string_view name) const;

 private:
  Json stored_ = Json::Object();
  std::vector<std::string> classes_;
  absl::flat_hash_map<std::string, std::string> classification_;  // path -> class, defaults included
  absl::flat_hash_set<std::string> branch_points_;                // proper prefixes of classification keys
  std::map<std::string, Role> roles_;
  std::map<std::string, std::vector<std::string>> principals_;
};

// The profile path of an identifier type: "externalIds.<type>" ("deviceId" -> "externalIds.deviceIds", "userId" ->
// "externalIds.customerId").
std::string ExternalIdsPath(std::string_view type);

// What one principal may do under one policy. Immutable.
class Access {
 public:
  // Compiles the access of `principal`. A principal the policy does not define may do nothing (defined() false).
  static std::shared_ptr<const Access> Compile(std::shared_ptr<const GovernancePolicy> policy,
                                               std::string_view principal);

  const std::string& principal() const { return principal_; }
  bool defined() const { return defined_; }
  bool admin() const { return admin_; }
  bool CanRead(std::string_view path) const {
    return admin_ || (Allows(path, read_classes_, read_fields_) && !derived_denied_.contains(Av(path)));
  }
  bool CanWrite(std::string_view path) const { return admin_ || Allows(path, write_classes_, write_fields_); }
  bool Can(std::string_view operation) const { return admin_ || operations_.contains(Av(operation)); }

  // PermissionDenied unless the principal may `operation` ("principal 'x' may not export ...").
  Status Require(std::string_view operation) const;
  // PermissionDenied (field() = path) unless the principal may read / write `path`.
  Status RequireRead(std::string_view path) const;
  Status RequireWrite(std::string_view path) const;
  // The same for `path` and every classified path below it (a test of a whole object reveals its members; a
  // deletion of it deletes them).
  Status RequireReadTree(std::string_view path) const;
  Status RequireWriteTree(std::string_view path) const;

  // Removes from a document what the principal may not read. `ns`: "" for a profile, "events" for an event,
  // "sessions" for a session summary. Profiles keep "id"; events keep "events.id" and "events.profileId".
  // A profile's "attributeSources" keep the entries of readable fields, "conflicts" the items whose field is
  // readable, "identityIssues" those whose externalIds type is. Idempotent.
  void Filter(std::string_view ns, Json* doc) const;

  // PermissionDenied naming the first path of a profile write input (Create / Replace / Patch: externalIds,
  // attributes, consent, computed.churnRisk / engagementScore; read-only members are ignored, as the engine
  // ignores them) the principal may not write.
  Status CheckProfileWrite(const Json& input) const;
  // The same for an event ("events." paths of every member), and, for the identifiers it carries (email, phone,
  // customerId / userId, anonymousId, shopifyId, deviceId, identifiers.<type>), the "externalIds." path each would
  // link.
  Status CheckEventWrite(const Json& event) const;
  // Whether the principal may read the "externalIds." path of every identifier `request` names: an event's
  // identifier members and `identifiers` object (as CheckEventWrite lists them), or an identify request's
  // `identifiers`. When not, the answer to that write must not say which profile holds them (TrackResult::HideLinks):
  // a principal that may write an identifier it may not read would otherwise learn whose it is.
  bool CanReadLinks(const Json& request) const;

  // {"principal", "defined", "roles", "admin", "read", "write", "readFields", "writeFields", "operations"}.
  Json ToJson() const;

 private:
  bool Allows(std::string_view path, const absl::flat_hash_set<std::string>& classes,
              const absl::flat_hash_set<std::string>& fields) const;
  bool HasBelow(std::string_view path) const;
  void FilterObject(const std::string& prefix, Json* object, bool root_profile) const;
  Status CheckWriteTree(const std::string& path, const Json& value) const;

  std::shared_ptr<const GovernancePolicy> policy_;
  std::string principal_;
  std::vector<std::string> roles_;
  bool defined_ = false;
  bool admin_ = false;
  absl::flat_hash_set<std::string> read_classes_, write_classes_;
  absl::flat_hash_set<std::string> read_fields_, write_fields_;
  absl::flat_hash_set<std::string> operations_;
  absl::flat_hash_set<std::string> field_branch_points_;  // proper prefixes of read_fields_ and write_fields_
  absl::flat_hash_set<std::string> derived_denied_;       // derived fields whose sources it may not read
};

// The derived fields of a profile and the event fields each is computed from: computed.ltv, computed.aov and
// computed.rfm from a purchase's value (properties.revenue, else total, else value; RFM's default revenuePath).
struct DerivedField {
  std::string_view path;
  std::vector<std::string_view> sources;
};
const std::vector<DerivedField>& DerivedFields();

}  // namespace cdp::internal

#endif  // CDP_PRIVACY_GOVERNANCE_MODEL_H_
