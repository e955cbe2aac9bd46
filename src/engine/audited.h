// Copyright 2026 The libcdp Authors.
//
// The modules callers reach (Engine::profiles(), events(), consent(), gdpr()), each call recorded in the audit log
// (engine/audit_log.h) after it ran: the operation, the profiles it named, its outcome. They forward to the
// implementations, which the engine's own code calls directly (so one call is one entry).

#ifndef CDP_ENGINE_AUDITED_H_
#define CDP_ENGINE_AUDITED_H_

#include <string>
#include <vector>

#include "cdp/engine.h"
#include "engine/audit_log.h"

namespace cdp::internal {

// Appends an entry for a call on this thread's principal (ScopedPrincipal); an append error is counted by the log
// and does not change the call's answer (the call has already happened).
// `read`: the call changed nothing (its entry may be written with a later one, AuditLog::Append).
void Record(AuditLog& log, std::string_view operation, const std::vector<std::string>& targets, const Status& outcome,
            int64_t count = 0, bool read = false);

class AuditedProfiles final : public Profiles {
 public:
  AuditedProfiles(Profiles* inner, AuditLog* log) : inner_(inner), log_(log) {}
  Result<Json> Create(const Json& profile) override;
  Result<Json> Get(std::string_view id) override;
  Result<Json> Replace(std::string_view id, const Json& profile) override;
  Result<Json> Patch(std::string_view id, const Json& patch) override;
  Status Delete(std::string_view id) override;
  Result<Page> Search(const ProfileQuery& query) override;
  Result<Page> Timeline(std::string_view id, const EventQuery& query) override;
  Result<std::vector<Json>> Sessions(std::string_view id) override;

 private:
  Profiles* inner_;
  AuditLog* log_;
};

class AuditedEvents final : public Events {
 public:
  AuditedEvents(Events* inner, AuditLog* log) : inner_(inner), log_(log) {}
  Result<TrackResult> Track(const Json& event) override;
  Result<BatchResult> TrackBatch(const std::vector<Json>& events) override;
  Result<BatchResult> TrackBatch(const std::vector<Json>& events, const std::vector<IdempotencyKey>& keys) override;
  Result<BatchResult> TrackBatchJson(std::string_view json_text) override;
  Result<Page> Query(const EventQuery& query) override;
  Status RememberKey(std::string_view key, std::string_view value, int64_t expires_us) override {
    return inner_->RememberKey(key, value, expires_us);
  }
  Result<std::optional<std::string>> RecallKey(std::string_view key, int64_t now_us) override {
    return inner_->RecallKey(key, now_us);
  }

 private:
  Events* inner_;
  AuditLog* log_;
};

class AuditedConsent final : public Consent {
 public:
  AuditedConsent(Consent* inner, AuditLog* log) : inner_(inner), log_(log) {}
  Result<Json> Record(const Json& request) override;
  Result<Json> Get(std::string_view profile_id) override;

 private:
  Consent* inner_;
  AuditLog* log_;
};

class AuditedGdpr final : public Gdpr {
 public:
  AuditedGdpr(Gdpr* inner, AuditLog* log) : inner_(inner), log_(log) {}
  Result<Json> Export(std::string_view profile_id) override;
  Result<Json> Erase(std::string_view profile_id) override;
  Result<Json> GetRequest(std::string_view request_id) override { return inner_->GetRequest(request_id); }
  Result<Json> ListRequests(const Json& filter) override { return inner_->ListRequests(filter); }
  Result<bool> IsSuppressed(std::string_view type, std::string_view value) override {
    return inner_->IsSuppressed(type, value);
  }
  Result<Json> Unsuppress(std::string_view type, std::string_view value) override;

 private:
  Gdpr* inner_;
  AuditLog* log_;
};

class AuditImpl final : public Audit {
 public:
  explicit AuditImpl(AuditLog* log) : log_(log) {}
  Result<Json> List(const Json& filter) override { return log_->List(filter); }
  Result<Json> Verify() override;

 private:
  AuditLog* log_;
};

}  // namespace cdp::internal

#endif  // CDP_ENGINE_AUDITED_H_
