// Copyright 2026 The libcdp Authors.

#include "engine/governance_impl.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <algorithm>
#include <atomic>

#include "cdp/query.h"
#include "core/ids.h"
#include "engine/audited.h"
#include "storage/keys.h"

namespace cdp::internal {
namespace {

constexpr std::string_view kKeyPrefix = "cdpk_";
constexpr size_t kUlidChars = 26;
constexpr size_t kSecretBytes = 32;
constexpr std::string_view kKeysIssuedKey = "gkeysissued";  // Cf::kPrivacy: present once a key was issued

// Process-wide, so a per-thread cache never mistakes one engine's policy for another's.
std::atomic<uint64_t> g_policy_versions{0};

std::string RawSha256(std::string_view data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), out, &len, Sha256(), nullptr);
  return std::string(reinterpret_cast<const char*>(out), len);
}

struct ThreadCache {
  const GovernanceImpl* owner = nullptr;
  uint64_t version = 0;
  std::string principal;
  std::shared_ptr<const Access> access;
};
thread_local ThreadCache t_cache;

}  // namespace

Status GovernanceImpl::Load() {
  std::lock_guard<std::mutex> lock(mu_);
  std::string stored;
  Status s = store_->Get(storage::Cf::kPrivacy, storage::kGovernancePolicyKey, &stored);
  if (s.ok()) {
    CDP_ASSIGN_OR_RETURN(Json json, Json::Parse(stored));
    Result<std::shared_ptr<const GovernancePolicy>> policy = GovernancePolicy::FromJson(json);
    if (!policy.ok()) return Status::DataLoss("the stored governance policy is invalid: " + policy.status().ToString());
    policy_ = *std::move(policy);
  } else if (!s.IsNotFound()) {
    return s;
  }
  version_.store(++g_policy_versions, std::memory_order_release);
  std::string marker;
  Status issued = store_->Get(storage::Cf::kPrivacy, kKeysIssuedKey, &marker);
  if (!issued.ok() && !issued.IsNotFound()) return issued;
  keys_issued_ = issued.ok();
  auto it = store_->NewIterator(storage::Cf::kPrivacy, std::string(storage::kApiKeyPrefix),
                                storage::PrefixSuccessor(std::string(storage::kApiKeyPrefix)));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    CDP_ASSIGN_OR_RETURN(Json record, Json::Parse(it->value()));
    const Json* id = record.Find("id");
    const Json* principal = record.Find("principal");
    const Json* hash = record.Find("secretSha256");
    if (id == nullptr || principal == nullptr || hash == nullptr || !hash->is_string() ||
        hash->as_string().size() != 2 * kSecretBytes) {
      return Status::DataLoss("a stored API key record is malformed");
    }
    if (!id->is_string() || !principal->is_string()) return Status::DataLoss("a stored API key record is malformed");
    Key key;
    key.principal = principal->as_string();
    auto nibble = [](char c) -> int {
      if (c >= '0' && c <= '9') return c - '0';
      if (c >= 'a' && c <= 'f') return c - 'a' + 10;
      return -1;
    };
    const std::string& hex = hash->as_string();
    for (size_t i = 0; i < kSecretBytes; ++i) {
      const int hi = nibble(hex[2 * i]), lo = nibble(hex[2 * i + 1]);
      if (hi < 0 || lo < 0) return Status::DataLoss("a stored API key record is malformed");
      key.secret_sha256.push_back(static_cast<char>(hi * 16 + lo));
    }
    record.Erase("secretSha256");
    key.record = std::move(record);
    keys_.emplace(id->as_string(), std::move(key));
  }
  if (!keys_.empty()) keys_issued_ = true;
  return it->status();
}

std::shared_ptr<const GovernancePolicy> GovernanceImpl::policy() const {
  std::lock_guard<std::mutex> lock(mu_);
  return policy_;
}

std::shared_ptr<const Access> GovernanceImpl::Current() const {
  const std::string& principal = ScopedPrincipal::Current();
  // Versions are never reused, so a cached access of this version was compiled from the policy in force.
  if (t_cache.owner == this && t_cache.version == version_.load(std::memory_order_acquire) &&
      t_cache.principal == principal) {
    return t_cache.access;
  }
  uint64_t version;
  std::shared_ptr<const GovernancePolicy> policy;
  {
    std::lock_guard<std::mutex> lock(mu_);
    version = version_.load(std::memory_order_relaxed);
    policy = policy_;
  }
  t_cache.owner = this;
  t_cache.version = version;
  t_cache.principal = principal;
  t_cache.access = internal::Access::Compile(std::move(policy), principal);
  return t_cache.access;
}

Result<Json> GovernanceImpl::Policy() {
  if (auto access = Current(); !access->defined()) return access->Require("read");
  return policy()->ToJson();
}

Result<Json> GovernanceImpl::SetPolicy(const Json& json) {
  AuditedChange change(*log_, "governance.setPolicy");
  std::vector<std::string> revoked;
  Status outcome = [&]() -> Status {
    CDP_RETURN_IF_ERROR(Current()->Require("admin"));
    CDP_ASSIGN_OR_RETURN(std::shared_ptr<const GovernancePolicy> policy, GovernancePolicy::FromJson(json));
    std::lock_guard<std::mutex> writing(write_mu_);  // policy and key changes apply in the order they are written
    storage::WriteBatch batch(*store_);
    batch.Put(storage::Cf::kPrivacy, storage::kGovernancePolicyKey, policy->stored().Dump());
    // The keys of principals the policy no longer defines are revoked with it (a principal defined again later
    // does not get them back).
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (const auto& [id, key] : keys_) {
        if (policy->RolesOf(key.principal) == nullptr) revoked.push_back(id);
      }
    }
    for (const std::string& id : revoked) batch.Delete(storage::Cf::kPrivacy, storage::ApiKeyKey(id));
    CDP_ASSIGN_OR_RETURN(uint64_t sequence, store_->Write(&batch));
    CDP_RETURN_IF_ERROR(store_->SyncUpTo(sequence));
    std::lock_guard<std::mutex> lock(mu_);
    for (const std::string& id : revoked) keys_.erase(id);
    policy_ = std::move(policy);
    version_.store(++g_policy_versions, std::memory_order_release);
    return Status::OK();
  }();
  change.Done({}, outcome, static_cast<int64_t>(revoked.size()));
  if (!outcome.ok()) return outcome;
  CDP_ASSIGN_OR_RETURN(Json out, Policy());
  Json ids = Json::Array();
  for (const std::string& id : revoked) ids.Push(Json(id));
  out.Set("revokedKeys", std::move(ids));  // keys of principals the policy no longer defines
  return out;
}

Result<Json> GovernanceImpl::Access(std::string_view principal) {
  std::shared_ptr<const internal::Access> self = Current();
  if (principal.empty() || principal == self->principal()) return self->ToJson();
  CDP_RETURN_IF_ERROR(self->Require("admin"));
  return internal::Access::Compile(policy(), principal)->ToJson();
}

Result<Json> GovernanceImpl::CreateApiKey(const Json& request) {
  AuditedChange change(*log_, "governance.createApiKey");
  Result<Json> out = [&]() -> Result<Json> {
    CDP_RETURN_IF_ERROR(Current()->Require("admin"));
    if (!request.is_object()) return Status::InvalidArgument("the request must be a JSON object");
    for (const auto& [key, value] : request.members()) {
      if (key != "principal" && key != "description") {
        return Status::InvalidArgument("unknown member (expected principal, description)", key);
      }
    }
    const Json* principal = request.Find("principal");
    if (principal == nullptr || !principal->is_string()) {
      return Status::InvalidArgument("required: the principal's name", "principal");
    }
    if (policy()->RolesOf(principal->as_string()) == nullptr) {
      return Status::InvalidArgument("not a principal of the policy", "principal");
    }
    if (std::find(std::begin(kBuiltinPrincipals), std::end(kBuiltinPrincipals), principal->as_string()) !=
        std::end(kBuiltinPrincipals)) {
      return Status::InvalidArgument("a built-in principal has no keys: define one with the role 'admin'", "principal");
    }
    const Json* description = request.Find("description");
    if (description != nullptr && !(description->is_string() && description->as_string().size() <= 1024)) {
      return Status::InvalidArgument("a string of at most 1 KiB", "description");
    }
    unsigned char secret[kSecretBytes];
    if (RAND_bytes(secret, kSecretBytes) != 1) return Status::Internal("cannot draw a random key (RAND_bytes)");
    const std::string secret_hex = Hex(std::string_view(reinterpret_cast<const char*>(secret), kSecretBytes));
    const std::string ulid = NewMonotonicId();
    const std::string id = "key_" + ulid;
    Json record = Json::Object().Set("id", Json(id)).Set("principal", *principal);
    if (description != nullptr) record.Set("description", *description);
    record.Set("createdAt", Json(FormatTimestamp(NowMicros())));
    Key key{principal->as_string(), RawSha256(secret_hex), record};
    Json stored = record;
    stored.Set("secretSha256", Json(Hex(key.secret_sha256)));
    storage::WriteBatch batch(*store_);
    batch.Put(storage::Cf::kPrivacy, storage::ApiKeyKey(id), stored.Dump());
    batch.Put(storage::Cf::kPrivacy, kKeysIssuedKey, "");
    std::lock_guard<std::mutex> writing(write_mu_);
    if (policy()->RolesOf(principal->as_string()) == nullptr) {  // removed by a policy change meanwhile
      return Status::InvalidArgument("not a principal of the policy", "principal");
    }
    CDP_ASSIGN_OR_RETURN(uint64_t sequence, store_->Write(&batch));
    CDP_RETURN_IF_ERROR(store_->SyncUpTo(sequence));
    std::lock_guard<std::mutex> lock(mu_);
    keys_.emplace(id, std::move(key));
    keys_issued_ = true;
    Json answer = record;
    answer.Set("key", Json(std::string(kKeyPrefix) + ulid + "_" + secret_hex));
    return answer;
  }();
  change.Done({}, out.status());
  return out;
}

Result<Json> GovernanceImpl::ListApiKeys() {
  CDP_RETURN_IF_ERROR(Current()->Require("admin"));
  std::lock_guard<std::mutex> lock(mu_);
  Json out = Json::Array();
  for (const auto& [id, key] : keys_) out.Push(key.record);
  return out;
}

Status GovernanceImpl::RevokeApiKey(std::string_view id) {
  AuditedChange change(*log_, "governance.revokeApiKey");
  Status outcome = [&]() -> Status {
    CDP_RETURN_IF_ERROR(Current()->Require("admin"));
    std::lock_guard<std::mutex> writing(write_mu_);
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!keys_.contains(std::string(id))) return Status::NotFound("no API key " + std::string(id));
    }
    storage::WriteBatch batch(*store_);
    batch.Delete(storage::Cf::kPrivacy, storage::ApiKeyKey(id));
    CDP_ASSIGN_OR_RETURN(uint64_t sequence, store_->Write(&batch));
    CDP_RETURN_IF_ERROR(store_->SyncUpTo(sequence));
    std::lock_guard<std::mutex> lock(mu_);
    keys_.erase(std::string(id));
    return Status::OK();
  }();
  change.Done({}, outcome);
  return outcome;
}

Result<std::string> GovernanceImpl::Authenticate(std::string_view token) {
  const Status bad(StatusCode::kUnauthenticated, "invalid API key");
  if (token.size() != kKeyPrefix.size() + kUlidChars + 1 + 2 * kSecretBytes || !token.starts_with(kKeyPrefix) ||
      token[kKeyPrefix.size() + kUlidChars] != '_') {
    return bad;
  }
  const std::string id = "key_" + std::string(token.substr(kKeyPrefix.size(), kUlidChars));
  const std::string digest = RawSha256(token.substr(kKeyPrefix.size() + kUlidChars + 1));
  std::lock_guard<std::mutex> lock(mu_);
  auto it = keys_.find(id);
  if (it == keys_.end() || CRYPTO_memcmp(digest.data(), it->second.secret_sha256.data(), digest.size()) != 0) {
    return bad;
  }
  if (policy_->RolesOf(it->second.principal) == nullptr) return bad;  // (revoked with its principal; defensive)
  return it->second.principal;
}

bool GovernanceImpl::KeysIssued() {
  std::lock_guard<std::mutex> lock(mu_);
  return keys_issued_;
}

}  // namespace cdp::internal
