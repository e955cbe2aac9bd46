// Copyright 2026 The libcdp Authors.
//
// The modules callers reach (Engine::profiles(), events(), consent(), gdpr(), audit()). Each call is first checked
// against the access of the calling thread's principal (engine/governance_impl.h: fields written, operations), then
// forwarded to the implementation, its result filtered to the fields the principal may read, and the call recorded
// in the audit log (engine/audit_log.h): the operation, the profiles it named, its outcome (refusals included).
// The engine's own code calls the implementations directly (so one call is one entry, checked once).

#ifndef CDP_ENGINE_AUDITED_H_
#define CDP_ENGINE_AUDITED_H_

#include <array>
#include <atomic>
#include <optional>
#include <string>
#include <vector>

#include "cdp/engine.h"
#include "engine/audit_log.h"
#include "engine/governance_impl.h"

namespace cdp::internal {

// Appends an entry for a call on this thread's principal (ScopedPrincipal); an append error is counted by the log
// and does not change the call's answer (the call has already happened).
// `read`: the call changed nothing (its entry may be written with a later one, AuditLog::Append).
// `resource`: a segment or audience id the call named.
void Record(AuditLog& log, std::string_view operation, const std::vector<std::string>& targets, const Status& outcome,
            int64_t count = 0, bool read = false, std::string_view resource = {});

// The field of the FailedPrecondition refusing data that names an erased person's identifier or id.
inline constexpr std::string_view kSuppressedField = "suppressed";

// A refusal that names the person an event or identify resolved to, or tells their consent or erasure ("profile
// P has denied tracking consent", "this email belongs to an erased person": fields consent.tracking and
// kSuppressedField), made generic for a principal who may not read which profile holds the request's identifiers
// or the consent: a write must not reveal what a read would not. Other statuses are left as they are.
void HideRefusal(const Access& access, const Json& request, Status* s);

// The most targets one entry names (one journal line, one index key each); a call naming more records several.
inline constexpr size_t kMaxAuditTargets = 10'000;

// As Record, for a call that may name more than kMaxAuditTargets profiles (a segment or audience export): entries
// of at most that many targets each, all with the call's operation, outcome and resource; `count` on the first.
void RecordInParts(AuditLog& log, std::string_view operation, const std::vector<std::string>& targets,
                   const Status& outcome, int64_t count, bool read, std::string_view resource);

// The audit entry of a call that may change data. Created before the call's work: while alive, it puts a pending
// record of the entry into the first write of its thread (storage::ScopedWriteHook), so that a crash after the
// change cannot lose the entry (AuditLog::Load recovers it). Done appends the entry (once); an object destroyed
// without Done appends one with outcome "internal". Not thread-safe; lives on the calling thread's stack.
class AuditedChange final : public storage::WriteHook {
 public:
  AuditedChange(AuditLog& log, std::string_view operation);
  ~AuditedChange();
  AuditedChange(const AuditedChange&) = delete;
  AuditedChange& operator=(const AuditedChange&) = delete;

  // The innermost AuditedChange alive on this thread, or null.
  static AuditedChange* Current();

  // What the call's entry will name should its first write succeed, told before that write by the code doing it
  // (EngineImpl::Ingest of one event: its profile): the pending record then holds the targets and count too, and a
  // Done that reports exactly them with outcome OK writes no journal line (AuditLog::Append, `record_complete`).
  // Told after the first write, or followed by a Done that says otherwise, it changes nothing.
  void Expect(std::vector<std::string> targets, int64_t count = 0);
  // Set by a call whose entry names the one profile its one event resolved to, no count (Events::Track): the write
  // path then tells it that profile (Expect). Other calls are told nothing.
  void set_names_one_profile() { names_one_profile_ = true; }
  bool names_one_profile() const { return names_one_profile_; }

  void BeforeWrite(storage::WriteBatch* batch) override;
  // As Record, for this call's operation, on this thread's principal.
  void Done(const std::vector<std::string>& targets, const Status& outcome, int64_t count = 0,
            std::string_view resource = {});

 private:
  AuditLog& log_;
  std::string operation_;
  std::string pending_key_;  // empty until the first write
  bool done_ = false;
  std::optional<std::vector<std::string>> expected_;  // Expect's targets, until the first write
  int64_t expected_count_ = 0;
  bool record_complete_ = false;  // the pending record holds expected_ and expected_count_
  bool names_one_profile_ = false;
  AuditedChange* outer_;                 // Current() before this one
  storage::ScopedWriteHook hook_{this};  // last: installed once the rest is set
};

// Leaves out of an Identity::Explain document what the principal may not read: identifiers and links of types
// whose externalIds path it may not read, and survivorship decisions (attribute values) of unreadable fields.
void FilterIdentity(const Access& access, Json* explain);

class AuditedProfiles final : public Profiles {
 public:
  AuditedProfiles(Profiles* inner, AuditLog* log, const GovernanceImpl* gov) : inner_(inner), log_(log), gov_(gov) {}
  Result<Json> Create(const Json& profile) override;
  Result<Json> CreateBatch(const std::vector<Json>& profiles) override;
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
  const GovernanceImpl* gov_;
};

// The latencies of the last kSize accepted ingestion calls (Track, TrackBatch, TrackBatchJson), from the call's
// start to its return, when its events are durable and queryable (Analytics overview's ingestion latency).
// Thread-safe; Add is lock-free.
class LatencyWindow {
 public:
  static constexpr size_t kSize = 8192;
  LatencyWindow() {
    for (auto& s : samples_) s.store(-1, std::memory_order_relaxed);  // not yet written
  }
  void Add(int64_t micros) {
    const uint64_t i = count_.fetch_add(1, std::memory_order_relaxed);
    samples_[i % kSize].store(micros, std::memory_order_relaxed);
  }
  // {"calls" (since open), "p50Us", "p99Us" (over the last kSize calls; null when none)}.
  Json Summary() const;

 private:
  std::array<std::atomic<int64_t>, kSize> samples_{};
  std::atomic<uint64_t> count_{0};
};

class AuditedEvents final : public Events {
 public:
  AuditedEvents(Events* inner, AuditLog* log, const GovernanceImpl* gov) : inner_(inner), log_(log), gov_(gov) {}
  const LatencyWindow& latency() const { return latency_; }
  Result<TrackResult> Track(const Json& event) override;
  Result<BatchResult> TrackBatch(const std::vector<Json>& events) override;
  Result<BatchResult> TrackBatch(const std::vector<Json>& events, const std::vector<IdempotencyKey>& keys) override;
  Result<BatchResult> TrackBatchJson(std::string_view json_text) override;
  Result<Page> Query(const EventQuery& query) override;
  // Idempotency keys are the adapters' bookkeeping (the Segment adapter runs as "local"): admins only.
  Status RememberKey(std::string_view key, std::string_view value, int64_t expires_us) override {
    CDP_RETURN_IF_ERROR(gov_->Current()->Require("admin"));
    return inner_->RememberKey(key, value, expires_us);
  }
  Result<std::optional<std::string>> RecallKey(std::string_view key, int64_t now_us) override {
    CDP_RETURN_IF_ERROR(gov_->Current()->Require("admin"));
    return inner_->RecallKey(key, now_us);
  }

 private:
  Events* inner_;
  AuditLog* log_;
  const GovernanceImpl* gov_;
  LatencyWindow latency_;
};

class AuditedConsent final : public Consent {
 public:
  AuditedConsent(Consent* inner, AuditLog* log, const GovernanceImpl* gov) : inner_(inner), log_(log), gov_(gov) {}
  Result<Json> Record(const Json& request) override;
  Result<Json> Get(std::string_view profile_id) override;
  Result<Json> History(std::string_view profile_id, const Json& page) override;

 private:
  Consent* inner_;
  AuditLog* log_;
  const GovernanceImpl* gov_;
};

class AuditedGdpr final : public Gdpr {
 public:
  AuditedGdpr(Gdpr* inner, AuditLog* log, const GovernanceImpl* gov) : inner_(inner), log_(log), gov_(gov) {}
  Result<Json> Export(std::string_view profile_id) override;
  Result<Json> Erase(std::string_view profile_id) override;
  Result<Json> GetRequest(std::string_view request_id) override;
  Result<Json> ListRequests(const Json& filter) override;
  Result<bool> IsSuppressed(std::string_view type, std::string_view value) override;
  Result<Json> Unsuppress(std::string_view type, std::string_view value) override;

 private:
  Gdpr* inner_;
  AuditLog* log_;
  const GovernanceImpl* gov_;
};

class AuditImpl final : public Audit {
 public:
  AuditImpl(AuditLog* log, const GovernanceImpl* gov) : log_(log), gov_(gov) {}
  Result<Json> List(const Json& filter) override;
  Result<Json> Verify() override;

 private:
  AuditLog* log_;
  const GovernanceImpl* gov_;
};

}  // namespace cdp::internal

#endif  // CDP_ENGINE_AUDITED_H_
