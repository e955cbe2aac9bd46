// Copyright 2026 The libcdp Authors.
//
// EngineImpl: the implementation of cdp::Engine, and the one write path every change goes through.
//
// Writes: all changes are serialized by one mutex (write_mu_), under which identities are resolved, sessions
// assigned and one storage::WriteBatch built; event and identify batches are applied after it is released ("in
// flight", see Ingest and docs/architecture.md), other writes before, once every batch in flight is written. Parsing
// and validation happen before the lock is taken; with Options::sync_writes the fsync happens after it is released,
// shared between concurrent writers (group commit, storage::Store::SyncUpTo). Reads take no lock: RocksDB gives them a
// consistent view of each key.

#ifndef CDP_ENGINE_ENGINE_IMPL_H_
#define CDP_ENGINE_ENGINE_IMPL_H_

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "cdp/engine.h"
#include "core/parallel.h"
#include "engine/analytics_impl.h"
#include "engine/audiences_impl.h"
#include "engine/audit_log.h"
#include "engine/audited.h"
#include "engine/event_tail.h"
#include "engine/governance_impl.h"
#include "engine/identity_cache.h"
#include "engine/retention_impl.h"
#include "engine/segments_impl.h"
#include "events/event_model.h"
#include "identity/resolver.h"
#include "identity/rules.h"
#include "privacy/consent_model.h"
#include "privacy/retention_model.h"
#include "storage/store.h"
#include "storage/traits.h"

namespace cdp::internal {

class EngineImpl;

// Events::TrackBatch's items, given to EngineImpl::Ingest to be parsed there (ParseEvent with `options`, the time
// of the call for now): in event-time order, on a second thread ahead of resolution, rather than all before it.
struct UnparsedEvents {
  const std::vector<Json>* items = nullptr;
  const std::vector<IdempotencyKey>* keys = nullptr;  // none, or one per item (an empty key: none)
  const Options* options = nullptr;
  std::vector<int64_t> times;  // EventTimeOf of each item
};

// {"code", "message", "field"?}: a batch item's error in a batch call's answer.
Json ErrorJson(const Status& status);
// A batch call's answer: {"accepted", "rejected", "results"}, one result per status: ok_item(i) with "status": "ok"
// when statuses[i] is OK, else {"status": code, "error"}; each with its "index".
Json BatchAnswer(const std::vector<Status>& statuses, const std::function<Json(size_t)>& ok_item);

class ProfilesImpl final : public Profiles {
 public:
  explicit ProfilesImpl(EngineImpl* engine) : engine_(engine) {}
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
  Result<Json> Write(std::string_view id, const Json& input, bool patch);
  EngineImpl* engine_;
};

// Test hook: when set, DeleteProfile ends the process (_exit(0)) after its atomic write and before the purge, as a
// crash there would. Only tests set it.
extern std::atomic<bool> g_exit_before_purge_for_testing;

// InvalidArgument when an idempotency key is over its limits (see cdp::IdempotencyKey); OK for an empty key.
Status CheckIdempotencyKey(const IdempotencyKey& key);
// The "profileId" a remembered value (Cf::kKeys: be64(expiry) then JSON) names, or empty.
std::string RememberedProfileId(std::string_view stored);

class EventsImpl final : public Events {
 public:
  explicit EventsImpl(EngineImpl* engine) : engine_(engine) {}
  Result<TrackResult> Track(const Json& event) override;
  Result<BatchResult> TrackBatch(const std::vector<Json>& events) override;
  Result<BatchResult> TrackBatch(const std::vector<Json>& events, const std::vector<IdempotencyKey>& keys) override;
  Result<BatchResult> TrackBatchJson(std::string_view json_text) override;
  Result<Page> Query(const EventQuery& query) override;
  Status RememberKey(std::string_view key, std::string_view value, int64_t expires_us) override;
  Result<std::optional<std::string>> RecallKey(std::string_view key, int64_t now_us) override;

 private:
  // Stores the valid items of a batch (EngineImpl::Ingest) and counts the outcomes. `out.items` has one entry per
  // input item; those already rejected keep their status.
  Result<BatchResult> IngestParsed(std::vector<ParsedEvent>* parsed, BatchResult out, int64_t now,
                                   const UnparsedEvents* unparsed = nullptr);
  EngineImpl* engine_;
};

class IdentityImpl final : public Identity {
 public:
  explicit IdentityImpl(EngineImpl* engine) : engine_(engine) {}
  Result<Json> Rules() override;
  Result<Json> SetRules(const Json& rules) override;
  Result<Json> DryRunRules(const Json& rules) override;
  Result<Json> ApplyRules(const Json& rules) override;
  Result<Json> Merge(const std::vector<std::string>& profile_ids, std::string_view reason) override;
  Result<Json> Identify(const Json& request) override;
  Result<Json> Identify(const Json& request, const IdempotencyKey& key) override;
  Result<Json> IdentifyBatch(const std::vector<Json>& requests) override;
  Result<Json> Unmerge(std::string_view profile_id, std::string_view merge_id) override;
  Result<Json> Explain(std::string_view profile_id) override;
  Result<Json> ExplainUnaudited(std::string_view profile_id);
  Result<Json> Stats() override;
  Result<Json> MatchingConfig() override;
  Result<Json> SetMatchingConfig(const Json& config) override;
  Result<Json> FindDuplicates() override;
  Result<Json> Proposals(std::string_view status) override;  // audited ("identity.proposals", each profile named)
  Result<Json> ProposalsUnaudited(std::string_view status);
  Result<Json> DryRunRulesUnaudited(const Json& rules);  // DryRunRules without its audit entry
  Result<Json> AcceptProposal(std::string_view proposal_id) override;
  Result<Json> RejectProposal(std::string_view proposal_id) override;
  Result<Json> MatchPending() override;

  // ---- Fuzzy matching on write (matching_impl.cc; docs/identity.md "Matching on write").
  // Reads the matching configuration and trained model; starts the matcher thread when onWrite is set. At open.
  Status LoadMatching();
  // Whether writes should report the profiles they change (onWrite is set). Cheap.
  bool matching_on_write() const { return on_write_.load(std::memory_order_relaxed); }
  // Queues profiles a write stored (after it is in the database); the matcher thread scores them.
  void NotifyWritten(std::vector<std::string> profile_ids);
  // Adds to `batch` the deletion of a profile's blocking-index entries (erasure). Write lock held.
  Status EraseBlockEntries(std::string_view profile_id, storage::WriteBatch* batch);
  // Stops the matcher thread; before the engine closes. Idempotent.
  void StopMatcher();
  // The "matching" member of Stats.
  Json MatchingStats();

 private:
  // Accept (a merge) or reject a pending proposal; Accept/RejectProposal audit it. The profiles a decided
  // proposal names.
  Result<Json> DecideProposal(std::string_view proposal_id, bool accept);
  Result<Json> FindDuplicatesUnaudited();
  Result<Json> MatchPendingUnaudited();
  Result<Json> AuditedRun(std::string_view operation, const char* counted, Result<Json> (IdentityImpl::*run)());
  static std::vector<std::string> ProposalTargets(const Result<Json>& decided);
  struct OnWrite;  // the configuration, linker and model matching on write uses
  struct MatchCounts {
    int64_t matched = 0, proposed = 0, updated = 0, auto_merged = 0;
    int64_t not_mergeable = 0;  // pairs scored above proposeAbove whose merge the identity rules forbid
  };
  Result<Json> ReadProposal(std::string_view proposal_id);
  Status WriteProposal(const Json& proposal);
  // Records (or updates) the proposal of one scored pair and auto-merges it when configured. matching_mu_ held.
  Status ProposePair(const OnWrite& config, const std::string& a, const std::string& b, double probability,
                     double weight, const Json& comparisons, const std::string& now, MatchCounts* counts,
                     std::string* proposal_id);
  // Re-reads configuration and model into on_write_state_, starts or stops the thread. matching_mu_ held.
  Status ReloadMatching();
  // Indexes one queued profile and, unless index_only, scores it against its blocks. matching_mu_ held.
  Status MatchOne(const OnWrite& state, const std::string& profile_id, bool index_only, MatchCounts* counts);
  // Takes up to `max` queued profiles and matches them. matching_mu_ held.
  Status MatchQueued(size_t max, MatchCounts* counts);
  void MatcherLoop();

  EngineImpl* engine_;
  std::mutex matching_mu_;                         // one FindDuplicates / proposal decision / matcher step at a time
  std::shared_ptr<const OnWrite> on_write_state_;  // guarded by matching_mu_
  std::atomic<bool> on_write_{false};
  // The matcher's queues: profiles to index only (a backfill), taken before any profile to match, so a profile is
  // scored only once every backfilled profile is in the blocking index; and profiles to index and match.
  std::mutex queue_mu_;
  std::condition_variable queue_cv_;
  absl::flat_hash_set<std::string> to_index_;  // guarded by queue_mu_
  absl::flat_hash_set<std::string> queued_;    // to match; guarded by queue_mu_
  bool stopping_ = false;                      // guarded by queue_mu_
  std::thread matcher_;  // started under matching_mu_ when onWrite is first set; joined by StopMatcher
  // Totals since open, and the latest error of the thread (guarded by queue_mu_).
  MatchCounts totals_;
  int64_t errors_ = 0;
  std::string last_error_;
};

class ConsentImpl final : public Consent {
 public:
  explicit ConsentImpl(EngineImpl* engine) : engine_(engine) {}
  Result<Json> Record(const Json& request) override;
  Result<Json> Get(std::string_view profile_id) override;
  Result<Json> History(std::string_view profile_id, const Json& page) override;

 private:
  EngineImpl* engine_;
};

class GdprImpl final : public Gdpr {
 public:
  explicit GdprImpl(EngineImpl* engine) : engine_(engine) {}
  Result<Json> Export(std::string_view profile_id) override;
  Result<Json> Erase(std::string_view profile_id) override;
  Result<Json> GetRequest(std::string_view request_id) override;
  Result<Json> ListRequests(const Json& filter) override;
  Result<bool> IsSuppressed(std::string_view type, std::string_view value) override;
  Result<Json> Unsuppress(std::string_view type, std::string_view value) override;

 private:
  Result<bool> IsSuppressedNormalized(const Identifier& id);
  EngineImpl* engine_;
};

// kMeta: written with an erasure (or a retention purge), removed once it is physical (Store::Purge); found at open,
// the purge is finished then.
inline constexpr std::string_view kPurgePendingKey = "purge_pending";
// kMeta: present once an event of the log was deleted (retention before 2026-11-30) rather than erased, which
// leaves tombstones naming its profile; erasure then purges the log with tombstones too (EngineImpl::DeleteProfile).
inline constexpr std::string_view kEventLogDeletedKey = "event_log_deleted";
// kMeta: the retention horizons (privacy/retention_model.h RetentionHorizons::Serialize).
inline constexpr std::string_view kRetentionHorizonsKey = "retention_horizons";
// kMeta: the log range retention retired and has not yet made physical (RetiredRange::Serialize); written with
// each retiring chunk, deleted by PurgeRetained (finished at open after a crash). Apart from purge_pending, which
// any erasure's purge clears.
inline constexpr std::string_view kRetentionPurgeKey = "retention_purge_pending";
// kMeta: 8-byte hub-set hashes of the people retention erased, to scrub from hub sets (EngineImpl::ScrubPendingHubs).
inline constexpr std::string_view kHubScrubPendingKey = "hub_scrub_pending";

// The identifier type under which an erased profile's id is suppressed (so it is not created again).
inline constexpr std::string_view kErasedProfileIdType = "profileId";

class EngineImpl final : public Engine {
 public:
  EngineImpl(const Options& options, std::unique_ptr<storage::Store> store);
  ~EngineImpl() override;
  // What callers reach is audited (engine/audited.h); the engine's own code calls the implementations.
  Profiles& profiles() override { return audited_profiles_; }
  Events& events() override { return audited_events_; }
  ProfilesImpl& profiles_impl() { return profiles_; }
  EventsImpl& events_impl() { return events_; }
  ConsentImpl& consent_impl() { return consent_; }
  GdprImpl& gdpr_impl() { return gdpr_; }
  Identity& identity() override { return identity_; }
  IdentityImpl& identity_impl() { return identity_; }
  Segments& segments() override { return segments_; }
  Audiences& audiences() override { return audiences_; }
  Consent& consent() override { return audited_consent_; }
  Gdpr& gdpr() override { return audited_gdpr_; }
  Audit& audit() override { return audit_; }
  Governance& governance() override { return governance_; }
  Retention& retention() override { return retention_; }
  RetentionImpl& retention_impl() { return retention_; }
  Analytics& analytics() override { return analytics_; }
  SegmentsImpl& segments_impl() { return segments_; }
  const LatencyWindow& ingest_latency() const { return audited_events_.latency(); }
  AuditLog& audit_log() { return audit_log_; }
  GovernanceImpl& governance_impl() { return governance_; }
  // The access of this thread's principal (Governance); PermissionDenied unless it may `operation`.
  std::shared_ptr<const Access> access() const { return governance_.Current(); }
  Status Require(std::string_view operation) const { return governance_.Current()->Require(operation); }
  // PermissionDenied unless this thread's principal is defined by the policy.
  Status RequireDefined() const {
    auto access = governance_.Current();
    return access->defined() ? Status::OK() : access->Require("read");
  }

  // Runs `f` with writes paused: none in progress and none in flight (write_mu_, and commit_mu_ exclusively).
  // Not with write_mu_ held.
  template <typename F>
  Status WithWritesPaused(F&& f) {
    std::lock_guard<std::mutex> lock(write_mu_);
    std::unique_lock<std::shared_mutex> exclusive;
    if (Status s = SettleInFlight(&exclusive); !s.ok()) return s;
    return f();
  }
  Result<Json> Stats() override;
  Status Flush() override;

  storage::Store& store() { return *store_; }
  // The index entries and trait deltas of recent writes (see event_tail.h).
  const EventTail& tail() const { return tail_; }

  // Reads the newest event time of the log, then the event tail's log after a crash and recomputes what it affects.
  // Called once by Engine::Open.
  Status RecoverTail();
  // Finishes the purge of an erasure a crash interrupted (kMeta "purge_pending"): every column family is compacted
  // whole. Called once by Engine::Open.
  Status FinishPendingPurge();
  // Compacts every column family whole (Store::Purge) and clears the pending marker. `at_open`: also drops the
  // events of the log whose profile no longer exists (an erasure by the drop filter a crash interrupted); only
  // then, when no write can race the scan that finds them.
  Status PurgeEverything(bool at_open);
  // Makes an erasure's deletions physical (Store::Purge) and clears the pending marker. `event_log_keys`: the
  // person's events, erased from the log by the drop filter (see DeleteProfile) rather than by tombstones.
  Status PurgeErased(storage::WriteBatch* erased, std::vector<std::string> event_log_keys = {});
  // The profiles whose events are leaving the event log through the drop filter (erasures in progress): readers
  // of the log skip their events. Null when none.
  std::shared_ptr<const absl::flat_hash_set<std::string>> erasing() const;
  // What retention retired from the event log (never null): readers of the log skip those events
  // (RetiredStored), and the write path refuses events that would be retired (Retired).
  std::shared_ptr<const RetentionHorizons> retention_horizons() const;
  // Puts raised horizons in force (for readers, the drop filter and the write path), once they are written.
  void SetRetentionHorizons(std::shared_ptr<const RetentionHorizons> horizons);
  // Reads the stored horizons. Called once by Engine::Open, before anything compacts on purpose.
  Status LoadRetentionHorizons();

  // Reads the identity rules stored in the database (defaults when none). Called once by Engine::Open.
  Status LoadRules();

  // The stored profile document, parsed. NotFound when absent. A merged profile's document is its redirect
  // {"id", "mergedInto", "mergeId", "mergedAt"}.
  Result<Json> ReadStoredProfile(std::string_view id);
  // The stored document of the live profile `id` names (itself or its survivor); *live_id receives its id.
  Result<Json> ReadLiveProfile(std::string_view id, std::string* live_id);
  storage::Traits ReadTraits(std::string_view id);
  // The live profile holding identifier (type, raw value) now, normalized with the rules in force; "" when none
  // (or the value is invalid or blocked).
  Result<std::string> ResolveIdentifier(std::string_view type, std::string_view raw);
  // The live profile holding the identifier with this kIdentities key (storage::IdentityKey of a normalized
  // identifier); "" when none.
  Result<std::string> OwnerOfIdentityKey(const std::string& key);
  // The document callers see (RenderProfile) with the segments the profile is a member of now, without the fields
  // this thread's principal may not read (Governance).
  Json Render(const Json& stored, std::string_view id);
  // Adds what the segments know of a rendered profile: "segments" (memberships now) and computed.rfm.
  void AddSegments(std::string_view id, Json* rendered);
  // Starts the segments' worker (and the index's build when the database holds segments). Called by Engine::Open.
  Status StartSegments() { return segments_.Start(); }

  // Stores parsed events (the write path). results[i] is filled for every i; rejected items keep their status.
  // `*events` is consumed: on return it holds some of them, or none (a large batch's go to another thread to be
  // destroyed). With `unparsed`, *events is empty on entry and `results` has one OK entry per item: each item is
  // parsed here, and a batch whose items and array come to more than options->max_batch_bytes is refused whole
  // (BatchTooLarge), nothing stored.
  Status Ingest(std::vector<ParsedEvent>* events, std::vector<BatchItemResult>* results, int64_t received_us,
                const UnparsedEvents* unparsed = nullptr);

  // Profile writes (under the write lock). `input` is a normalized document (NormalizeProfileInput) for kReplace,
  // and the merge patch of the writable fields for kPatch.
  enum class ProfileWrite { kReplace, kPatch };
  Result<Json> WriteProfile(std::string_view id, const Json& input, ProfileWrite mode);
  // A profile write's parts once normalized: NormalizeProfileInput, then PrepareIdentifiers.
  struct PreparedProfile {
    std::string id;
    Json normalized;                         // identifiers rewritten to their normalized values
    std::vector<Identifier> ids;             // the identifiers it names
    std::vector<IgnoredIdentifier> ignored;  // values set aside (invalid, blocked)
  };
  // Applies the identity rules to p->normalized (ApplyIdentityRules) and checks each type's limit of values per
  // profile (InvalidArgument naming the field). Pure: callers run it outside the lock, on several threads.
  static Status PrepareIdentifiers(const IdentityRules& rules, PreparedProfile* p);
  // Creates prepared profiles in order, in one write (Profiles::Create, CreateBatch). An item whose
  // (*statuses)[i] is not OK is skipped; an item that cannot be stored gets its reason there and writes nothing.
  // (*stored)[i] is the stored document of each item created. `prepared_with`: the rules PrepareIdentifiers used.
  // Errors: a storage error (nothing written); Unavailable when the rules changed since (nothing written).
  Status CreateProfiles(const IdentityRules* prepared_with, const std::vector<PreparedProfile>& items,
                        std::vector<Status>* statuses, std::vector<Json>* stored);
  // An erasure recorded as a privacy request (Gdpr::Erase): its record is written with the erasure (status
  // "purging") and completed once the erasure is physical.
  struct ErasureRequest {
    std::string id;
    int64_t received_us = 0;
    Json record;  // out: the request record as last written
  };
  // `for_retention`: an erasure by a retention policy: the identifiers are not suppressed, and the purge is left to
  // the run (PurgeRetained), which purges once after all its erasures. With `active_since` (a policy's cutoff, the
  // profile found inactive before it by InactiveProfiles, without the lock): a profile active at or after it by the
  // time the erasure holds the lock (an event, a write) is kept, and *kept is set; nothing is written.
  Status DeleteProfile(std::string_view id, ErasureRequest* request = nullptr, bool for_retention = false,
                       std::optional<int64_t> active_since = std::nullopt, bool* kept = nullptr);
  // Adds to `batch` the rewrite of every hub set (but those in `skip`, hub keys) that holds one of `hashes` (8-byte
  // hashes of high-priority values, as UpdateHubs stores them) without them: an erased person's values leave the
  // hub sets of identifiers they were seen with (a shared device's). Appends the rewritten hub keys to `rewritten`.
  // Cost: one scan of the hub sets. write_mu_ held.
  Status ScrubHubSets(const std::vector<uint64_t>& hashes, const absl::flat_hash_set<std::string>& skip,
                      storage::WriteBatch* batch, std::vector<std::string>* rewritten);
  // Scrubs the hashes retention's erasures collected (kHubScrubPendingKey), in one scan and one write, and clears
  // the marker. Called by PurgeRetained before its purge, and at open. Takes write_mu_ and commit_mu_.
  Status ScrubPendingHubs();

  // Retention (retention_impl.cc). Retires the events `policy` selects whose event time is before `cutoff_us`, in
  // atomic chunks ending between time keys (each under the write lock: the tail flushed, their index keys deleted,
  // the traits of each profile that lost events recomputed from the ones it keeps, the policy's horizon raised to
  // the chunk's end, the retired range added to the kRetentionPurgeKey marker, the segments told; the write made
  // durable before the horizon is in force); adds the number to *purged and the profiles to *affected.
  Status PurgeEventsBefore(const RetentionPolicy& policy, int64_t cutoff_us, int64_t* purged,
                           absl::flat_hash_set<std::string>* affected);
  // Live profiles whose latest event and latest write are before `cutoff_us`. Cost: a scan of every profile.
  Result<std::vector<std::string>> InactiveProfiles(int64_t cutoff_us);
  // The later of profile `id`'s latest event time (its traits) and its document's updatedAt (`doc`).
  int64_t LastActivity(const std::string& id, const Json& doc);
  // Makes a retention run's retirements and deletions physical: the event log's files over the retired range (the
  // kRetentionPurgeKey marker, which only this clears) through the drop filter, and the per-profile index; after
  // erasures, every column family whole (`at_open`: as PurgeEverything). Nothing to do without either.
  Status PurgeRetained(bool profiles_erased, bool at_open = false);

  // Identity (identity_impl.cc).
  // The identity rules in force (a snapshot; a later SetRules does not change it). Takes rules_mu_ only.
  std::shared_ptr<const IdentityRules> rules() const;
  Status StoreRules(std::shared_ptr<const IdentityRules> rules);
  // `evidence` (an object) is recorded as the merge's evidence, by default {"call": "identity.merge"};
  // `automatic`: no one chose these profiles (a rules change, a fuzzy match above autoMergeAbove).
  Result<Json> MergeProfiles(const std::vector<std::string>& profile_ids, std::string_view reason,
                             Json evidence = Json(), bool automatic = false);
  // Identity::ApplyRules (identity_impl.cc). `changed` receives every profile whose identifiers it changed or that
  // it merged (for the audit entry).
  Result<Json> ApplyRules(std::shared_ptr<const IdentityRules> rules, std::vector<std::string>* changed);
  Result<Json> Identify(const Json& request, const IdempotencyKey* key = nullptr);
  Result<Json> IdentifyBatch(const std::vector<Json>& requests);
  // Writes `batch` under the write lock if every profile (or the redirect of a merged one) still exists; else
  // writes nothing and returns OK.
  Status WriteIfProfilesExist(const std::vector<std::string>& profile_ids, storage::WriteBatch* batch);
  // An identify's change to its profile: `patch`, a merge patch of attributes, consent and computed scores, and
  // `normalized`, the patch applied to empty parts and normalized (NormalizeProfileInput), which validated it and
  // is what a profile the identify creates starts from.
  struct IdentifyPatch {
    Json patch;
    Json normalized;
  };
  // Validates one identify request into the event-like input resolution takes, and its patch.
  // `max_bytes`: the size limit (Options::max_event_bytes plus the caller's ScopedEventBytesAllowance).
  Status ParseIdentify(const Json& request, int64_t now, size_t max_bytes, ParsedEvent* event, IdentifyPatch* patch);
  // Resolves and applies the identifies whose status is OK, in order, under one lock and one WriteBatch.
  // An identify refused while applied (an erased person's identifier) gets its status in (*statuses)[i].
  // With `requests`, item i is first parsed from (*requests)[i] into (*events)[i], (*patches)[i] and
  // (*statuses)[i] (ParseIdentify), on the thread that normalizes identifiers ahead of resolution.
  Status CommitIdentifies(std::vector<ParsedEvent>* events, std::vector<IdentifyPatch>* patches,
                          std::vector<Status>* statuses, std::vector<TrackResult>* results, int64_t now,
                          const std::vector<Json>* requests = nullptr);
  Result<Json> Unmerge(std::string_view profile_id, std::string_view merge_id);

  // Consent (consent_impl.cc).
  Result<Json> RecordConsent(const ConsentRequest& request);
  // Consent::Get's document, with the last `history_kept` history records (the export keeps them all).
  Result<Json> ConsentOf(std::string_view profile_id, size_t history_kept = kConsentHistoryKept);
  static constexpr size_t kConsentHistoryKept = 100;
  // Consent::History.
  Result<Json> ConsentHistoryPage(std::string_view profile_id, const Json& page);
  // Appends the consent history records stored under a profile id to *out, each with its sort key (recording
  // time and id), oldest recorded first: at most `max`, those whose key is after `after` (all when empty).
  Status ReadConsentHistory(std::string_view profile_id, std::vector<std::pair<std::string, Json>>* out,
                            std::string_view after = {}, size_t max = SIZE_MAX);
  // The consent history of live profile `id` (stored document `stored`) and of the profiles merged into it.
  Result<std::vector<Json>> PersonConsentHistory(const std::string& id, const Json& stored);
  // A recording time for a consent record: now, and later than every earlier one (write_mu_ held).
  int64_t NextConsentTime();
  // A change of whether a profile's consent denies tracking, applied to tracking_denied_ once written.
  struct TrackingChange {
    std::string profile_id;
    bool denied;
  };
  // Adds to `batch` the history record of a change of profile `id`'s consent from `before` to `after` (consent
  // objects; null: none), when there is a change, with `record`'s via, source, times and merge id, and the change
  // of its tracking marker (*tracking gets it). Nothing when nothing changed.
  void NoteConsent(storage::WriteBatch* batch, const std::string& id, const Json* before, const Json* after,
                   ConsentRecord record, std::vector<TrackingChange>* tracking);
  // The tracking-marker part of NoteConsent alone.
  void NoteTrackingMarker(storage::WriteBatch* batch, const std::string& id, const Json* before, const Json* after,
                          std::vector<TrackingChange>* tracking);
  // Applies written tracking changes (write_mu_ held).
  void ApplyTrackingChanges(const std::vector<TrackingChange>& changes);
  // Reads the profiles whose consent denies tracking. Called once by Engine::Open.
  Status LoadTrackingDenied();
  // Privacy requests and suppression (gdpr_impl.cc). Reads (or creates) the key of the privacy hashes, the
  // suppressed identifier hashes, and completes erasure requests a crash left "purging". Called once by Open, after
  // FinishPendingPurge.
  Status LoadPrivacy();
  // The keyed hash kept of an erased identifier (16 bytes), and of a request's subject (32 hex characters).
  std::string IdentifierHash(const Identifier& id) const;
  // The hashes suppression keeps and checks for an identifier: IdentifierHash, and for a Gmail address also that of
  // its canonical form (CanonicalGmail), so that turning canonicalGmail on or off does not let an erased address
  // back in. One or two.
  std::vector<std::string> SuppressionHashes(const Identifier& id) const;
  std::string SubjectHash(std::string_view profile_id) const;
  // Adds or removes profiles of erasures in progress: `readers` for erasing() (readers of the log skip them),
  // `drop` for the event log's drop filter. Counted per id, so overlapping erasures of one id each keep it.
  void SetErasing(const std::vector<std::string>& ids, bool on, bool readers, bool drop);
  // Gives the event log's drop filter the erasures' profiles and the retention horizons in force (erasing_mu_
  // held).
  void UpdateEventLogDrop();
  // HMAC-SHA-256 of `data` under the privacy key, as 64 hex characters (the audit log's keyed hashes).
  std::string KeyedHashHex(std::string_view data) const;
  // The keyed hash a suppression list keeps of an erased person's item (storage::SuppressionItemPrefix).
  std::string SuppressionItemHash(std::string_view identity_key) const;
  // Adds to `batch` the replacement of every suppression list item naming one of `identity_keys` by its keyed hash
  // (at erasure: no list keeps the value), or, with `restore`, the reverse (Gdpr::Unsuppress). Reads the lists from
  // storage, without the audiences' lock. The caller holds suppression_items_mu() until `batch` is written.
  Status HashSuppressionItems(const std::vector<std::string>& identity_keys, bool restore, storage::WriteBatch* batch);
  // Held by whoever reads suppression list items and writes what it read decided (an erasure's or Unsuppress's
  // HashSuppressionItems, Audiences' item changes), until the write is done. Taken after write_mu_ when both are.
  std::mutex& suppression_items_mu() { return suppression_items_mu_; }
  // FailedPrecondition (field kSuppressedField) when one of `ids` belongs to an erased person (write_mu_ held).
  Status CheckNotSuppressed(const std::vector<Identifier>& ids) const;
  // Removes suppressed identifier hashes and restores the suppression list items an erasure hashed of
  // `identity_key`, in one write (Gdpr::Unsuppress). Takes write_mu_.
  Status LiftSuppression(const std::vector<std::string>& hashes, const std::string& identity_key);
  // Writes a privacy request record (durably).
  Status WriteRequestRecord(const Json& record);
  // Whether the live profile `id` denies tracking (write_mu_ held).
  bool TrackingDeniedFor(const std::string& id) const { return tracking_denied_.contains(id); }

 private:
  // A profile's latest events (by event time, up to kWindow of them), for sessions: an event later than the latest
  // continues or ends its session, and one arriving among them (reordered by concurrent callers, whose batches are
  // built out of order, or by a client's retries) finds both its neighbours here instead of in storage (two index
  // seeks and reads: 7% of two event writers' samples). The state is exact: every event added goes through it, and
  // whatever removes or moves events drops it (sessions_.erase). Sessions are kept once each, two at most: a third
  // drops the oldest events until one of the two is free. About 120 bytes per profile.
  struct SessionState {
    static constexpr int kWindow = 6;
    // times_[0..count_) ascending, the profile's latest events: none lies between two of them or after the last;
    // complete_: none before the first either. Event i is of session sessions_[session_of_[i]].
    int64_t times_[kWindow] = {};
    uint8_t session_of_[kWindow] = {};
    uint8_t count_ = 0;
    bool complete_ = true;
    std::string sessions_[2];

    bool empty() const { return count_ == 0; }  // the profile has no events
    int64_t last_us() const { return times_[count_ - 1]; }
    const std::string& last_session() const { return sessions_[session_of_[count_ - 1]]; }
    // For an event at `t`, earlier than the latest: whether both its neighbours are known, the closest earlier event
    // (time and session; none when *prev_s is left empty) and the closest later one. Not when an event of the
    // window has time `t` exactly (which of the two is nearer is left to storage).
    bool Neighbours(int64_t t, int64_t* prev_t, std::string* prev_s, int64_t* next_t, std::string* next_s) const;
    // An event at `t` not earlier than the latest (or the first) becomes the latest.
    void Advance(int64_t t, const std::string& session);
    // An event at `t`, earlier than the latest, of session `session`: kept when it falls within the window.
    void Insert(int64_t t, const std::string& session);
    // Only the latest event stays known (a merge: the events before it may be the other profile's).
    void KeepLatestOnly();

   private:
    void DropFirst();
    // The session's slot; when both are in use by other sessions, drops early events to free one (-1 instead when
    // not `may_drop`).
    int SlotFor(const std::string& session, bool may_drop);
  };
  class IngestContext;
  friend class IngestContext;
  // Takes commit_mu_ exclusively for the context's write (waits for the batches in flight), then as
  // SettleInFlight. write_mu_ held.
  Status WaitForInFlightWrites(IngestContext* ctx);
  // Takes commit_mu_ exclusively into *exclusive: every batch written after releasing write_mu_ has finished, so
  // storage holds all that was published. Then CheckWritable. write_mu_ held.
  Status SettleInFlight(std::unique_lock<std::shared_mutex>* exclusive);
  // write_error_, after noting a failed write of a batch in flight (in_flight_failed_): the engine then refuses
  // writes, and the caches that batch filled (sessions, identity owners, redirects) are dropped. write_mu_ held.
  Status CheckWritable();

  // A batch written after releasing write_mu_ (a batch "in flight"). Batches that write profile documents are
  // written in the order they were built: each waits for the one before it (its ticket), and is not written if
  // that one failed. Their documents stay readable by later batches (in_flight_docs_) until written.
  struct WriteTicket {
    uint64_t number = 0;
    std::mutex mu;
    std::condition_variable done_cv;
    bool done = false;  // guarded by mu
    bool ok = false;    // guarded by mu
    // Waits for the write; whether it succeeded.
    bool Wait() {
      std::unique_lock<std::mutex> lock(mu);
      done_cv.wait(lock, [this] { return done; });
      return ok;
    }
    void Finish(bool succeeded) {
      {
        std::lock_guard<std::mutex> lock(mu);
        done = true;
        ok = succeeded;
      }
      done_cv.notify_all();
    }
  };
  // Whether the context's batch may be written in flight: no merge (those hold commit_mu_ exclusively), no cache
  // clear ahead (IngestContext::CachesWouldOverflow); and when it writes profile documents, no idempotency key (a
  // retry's check reads storage), no segment index or matching on write to tell (they re-read the documents).
  // write_mu_ held.
  bool MayGoInFlight(const IngestContext& ctx, bool writes_documents) const;
  // Puts the context in flight (commit_mu_ held shared, write_mu_ held): *after is the last batch in flight that
  // writes documents; when this one does, its documents become readable and *mine its ticket.
  void GoInFlight(IngestContext* ctx, bool writes_documents, std::shared_ptr<WriteTicket>* after,
                  std::shared_ptr<WriteTicket>* mine);
  // Writes a batch in flight once `after` is written (not at all if it failed), releases *in_flight, and on a
  // failure makes the engine refuse writes. write_mu_ not held.
  Result<uint64_t> WriteInFlight(IngestContext* ctx, std::shared_lock<std::shared_mutex>* in_flight,
                                 const std::shared_ptr<WriteTicket>& after, const std::shared_ptr<WriteTicket>& mine);
  // The document of profile `id` as written by a batch in flight, if one is (else nullopt): a copy, or parsed from
  // the text the batch dumped (DataLoss if it does not parse, as for a stored document). Any thread.
  Result<std::optional<Json>> InFlightDocument(const std::string& id);

  // Writes the tail to storage; on failure the engine refuses writes. write_mu_ and commit_mu_ (exclusive) held.
  Status FlushTail();
  // Flushes the tail once it holds Options::index_tail_events entries. Takes the locks; none may be held.
  void MaybeFlushTail();

  // Cache maintenance (write_mu_ held).
  void ForgetProfile(std::string_view id, const Json& stored);

  // Checks a profile write (`previous`: the stored document, null for a create) against storage and `staged`
  // (identity key -> profile, the identifiers of earlier items of the same write), builds the stored document
  // into *stored and adds the write to `batch`, its consent changes to *tracking. Returns the write's verdict:
  // when it is not OK nothing was added; a storage error is also put in *storage_error (the write is not at
  // fault: a batch of writes fails as a whole). write_mu_ held.
  Status StageProfileWrite(const PreparedProfile& p, const Json* previous, int64_t now,
                           const absl::flat_hash_map<std::string, std::string>& staged, storage::WriteBatch* batch,
                           Json* stored, std::vector<TrackingChange>* tracking, Status* storage_error);
  // The caches' part of a written profile write (write_mu_ held).
  void NoteProfileWritten(const std::string& id, const std::vector<Identifier>& old_ids,
                          const std::vector<Identifier>& now_ids);

  std::unique_ptr<storage::Store> store_;
  ProfilesImpl profiles_;
  EventsImpl events_;
  IdentityImpl identity_;
  SegmentsImpl segments_;
  AudiencesImpl audiences_;
  ConsentImpl consent_;
  GdprImpl gdpr_;
  AuditLog audit_log_;
  GovernanceImpl governance_;
  RetentionImpl retention_;
  AnalyticsImpl analytics_{this};
  AuditedProfiles audited_profiles_;
  AuditedEvents audited_events_;
  AuditedConsent audited_consent_;
  AuditedGdpr audited_gdpr_;
  AuditImpl audit_;

  std::mutex write_mu_;
  // Destroys what large identify batches built, off the writer's thread (IngestContext::ReleaseTo; event batches
  // free theirs on the caller and a helper, see EngineImpl::Ingest).
  DeferredFree deferred_free_;
  mutable std::mutex erasing_mu_;
  absl::flat_hash_map<std::string, int> erasing_count_, dropping_count_;  // guarded by erasing_mu_
  std::shared_ptr<const absl::flat_hash_set<std::string>> erasing_;       // guarded by erasing_mu_; see erasing()
  std::shared_ptr<const absl::flat_hash_set<std::string>> dropping_;      // guarded by erasing_mu_ (drop filter)
  std::shared_ptr<const RetentionHorizons> horizons_ =                    // guarded by erasing_mu_; never null
      std::make_shared<const RetentionHorizons>();
  // Held shared by batches being written after write_mu_ was released (in flight); held exclusively (under
  // write_mu_) by writes that must follow them (SettleInFlight): profile writes, merges, deletes, the tail's flush.
  std::shared_mutex commit_mu_;
  Status write_error_;  // guarded by write_mu_; set when a write failed after its changes were published
  std::atomic<bool> in_flight_failed_{false};         // a batch in flight failed; CheckWritable acts on it
  std::shared_ptr<WriteTicket> last_document_write_;  // guarded by write_mu_; the last in flight (may be done)
  uint64_t document_tickets_ = 0;                     // guarded by write_mu_
  // Profile documents of batches in flight: id -> the ticket of the last batch that wrote it and the document: the
  // document itself until the batch dumps it (outside write_mu_), then the text it dumped, which the batch keeps
  // until it unstages its documents.
  struct InFlightDoc {
    uint64_t ticket;
    std::shared_ptr<const Json> doc;    // shared with the batch; null once dumped
    const std::string* text = nullptr;  // once dumped
  };
  std::mutex in_flight_docs_mu_;
  absl::flat_hash_map<std::string, InFlightDoc> in_flight_docs_;  // guarded by in_flight_docs_mu_
  // Latest event per profile, for session assignment without a read. Bounded; cleared when full.
  absl::flat_hash_map<std::string, SessionState> sessions_;  // guarded by write_mu_
  // Identity key -> the profile holding that identifier value and its hub set, for resolution without a read
  // (engine/identity_cache.h). Bounded (kMaxIdentityCache); cleared when full. Guarded by write_mu_: written by its
  // holder, or by a thread it waits for while holding it (IdentifyBatch publishes its links on a second thread
  // during its write, see IngestContext::PublishIdentities).
  IdentityCache identity_cache_;
  // The identity rules in force. Replaced whole (StoreRules, ApplyRules) with write_mu_ and rules_mu_ held; read
  // under either. rules() takes only rules_mu_, a leaf lock held for a pointer copy: every Track and identify calls
  // it before write_mu_, and taking write_mu_ there made two writers wait on each other twice per call.
  std::shared_ptr<const IdentityRules> rules_;
  mutable std::mutex rules_mu_;
  // Merged profile id -> the profile it was merged into. Bounded; cleared when full.
  absl::flat_hash_map<std::string, std::string> redirects_;  // guarded by write_mu_
  // Event keys with caller-given ids in batches being written outside write_mu_ -> their session, so a retry
  // racing the original's write is still a duplicate. Added under write_mu_, removed once the write is done (not
  // under write_mu_: one fewer wait per call between writers); a key absent here is in storage or was never sent.
  absl::flat_hash_map<std::string, std::string> in_flight_keys_;  // guarded by in_flight_keys_mu_
  std::mutex in_flight_keys_mu_;                                  // a leaf lock (taken after write_mu_)
  std::mutex suppression_items_mu_;
  // The largest event time in the event log, in key order (be64 of the time as unsigned), over stored events and
  // events published by batches still in flight. An event later than it cannot be a retry of a stored one, so its
  // retry check skips the storage read. Read at open; raised by Publish; guarded by write_mu_.
  uint64_t newest_event_key_time_ = 0;
  // Live profiles whose consent denies tracking (Cf::kPrivacy markers, read at open); guarded by write_mu_.
  absl::flat_hash_set<std::string> tracking_denied_;
  // Keyed hashes of erased identifiers (IdentifierHash), read at open; guarded by write_mu_.
  absl::flat_hash_set<std::string> suppressed_;
  std::string privacy_key_;  // the HMAC key of the privacy hashes; set at open, then constant
  int64_t last_consent_us_ = 0;
  bool purged_at_open_ = false;  // FinishPendingPurge purged everything (Open)  // the latest recording time of a
                                 // consent record; guarded by write_mu_
  EventTail tail_;               // written under write_mu_ (see event_tail.h); read by anyone
};

}  // namespace cdp::internal

#endif  // CDP_ENGINE_ENGINE_IMPL_H_
