// Copyright 2026 The libcdp Authors.
//
// Governance (include/cdp/privacy.h): the stored policy and API keys, and the access of the calling thread's
// principal that the modules callers reach (engine/audited.cc, segments, identity) check before they act and
// filter what they return with. The rules themselves are data (privacy/governance_model.h).
//
// Storage, Cf::kPrivacy: "gpolicy" -> the policy as SetPolicy stored it (JSON); "k" key id -> an API key record
// {"id", "principal", "description"?, "createdAt", "secretSha256"} (storage/keys.h); "gkeysissued" -> "": a key
// was issued once. All read at open.

#ifndef CDP_ENGINE_GOVERNANCE_IMPL_H_
#define CDP_ENGINE_GOVERNANCE_IMPL_H_

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "cdp/privacy.h"
#include "engine/audit_log.h"
#include "privacy/governance_model.h"
#include "storage/store.h"

namespace cdp::internal {

class GovernanceImpl final : public Governance {
 public:
  GovernanceImpl(storage::Store* store, AuditLog* log) : store_(store), log_(log) {}

  // Reads the policy and the keys. Called once by Engine::Open.
  Status Load();

  // The access of this thread's principal under the policy in force. Cheap: cached per thread until the policy
  // or the principal changes.
  std::shared_ptr<const internal::Access> Current() const;

  Result<Json> Policy() override;
  Result<Json> SetPolicy(const Json& policy) override;
  Result<Json> Access(std::string_view principal) override;
  Result<Json> CreateApiKey(const Json& request) override;
  Result<Json> ListApiKeys() override;
  Status RevokeApiKey(std::string_view id) override;
  Result<std::string> Authenticate(std::string_view key) override;
  bool KeysIssued() override;

 private:
  struct Key {
    std::string principal;
    std::string secret_sha256;  // raw 32 bytes
    Json record;                // without the hash
  };
  std::shared_ptr<const GovernancePolicy> policy() const;

  storage::Store* store_;
  AuditLog* log_;
  std::mutex write_mu_;    // serializes SetPolicy and key changes (held across their durable writes; mu_ is not)
  mutable std::mutex mu_;  // guards policy_ and keys_
  std::shared_ptr<const GovernancePolicy> policy_ = GovernancePolicy::Defaults();
  // A process-wide unique number per policy in force: a thread's cached access is current while it matches.
  std::atomic<uint64_t> version_{0};
  std::map<std::string, Key> keys_;  // by id; guarded by mu_
  bool keys_issued_ = false;         // guarded by mu_
};

}  // namespace cdp::internal

#endif  // CDP_ENGINE_GOVERNANCE_IMPL_H_
