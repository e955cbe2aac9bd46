// Copyright 2026 The libcdp Authors.
//
// cdp::Engine: one open libcdp database, and the modules that hang off it.
//
//   cdp::Options options;
//   cdp::Result<std::unique_ptr<cdp::Engine>> opened = cdp::Engine::Open(options, "/tmp/cdp-demo");
//   if (!opened.ok()) return opened.status();
//   cdp::Engine& engine = **opened;
//   auto profile = engine.profiles().Create(*cdp::Json::Parse(R"({"attributes": {"email": "ada@example.com"}})"));
//   auto tracked = engine.events().Track(*cdp::Json::Parse(
//       R"({"type": "purchase", "email": "ada@example.com", "properties": {"revenue": 42}})"));
//
// Storage: one directory holding an embedded RocksDB database. Only one Engine may have a directory open at a time,
// in this process or any other: a second Open fails with FailedPrecondition. Closing is destroying the Engine.
//
// Documents: profiles and events are JSON documents in the data model of docs/data-model.md. Calls validate every
// input and answer InvalidArgument with the path of the offending field; a rejected input writes nothing.
//
// Durability and atomicity: each call that changes data commits one RocksDB WriteBatch (a batch of events: one
// WriteBatch for all its accepted items), so it is applied whole or not at all. A call that returned OK survives a
// crash of the process; with Options::sync_writes also a power loss.
//
// Thread-safety: Engine and its modules are thread-safe. Any method may be called from any thread concurrently.
// Writes to one profile are serialized internally; reads do not block writes.

#ifndef CDP_ENGINE_H_
#define CDP_ENGINE_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cdp/analytics.h"
#include "cdp/json.h"
#include "cdp/options.h"
#include "cdp/privacy.h"
#include "cdp/query.h"
#include "cdp/status.h"

namespace cdp {

// Profiles: the golden records.
//
// A profile document has the fields
//   id            string; generated (26-char ULID) unless given on Create
//   externalIds   {customerId, email, phone, shopifyId, anonymousId, <custom type>: string, or [string] when the
//                  profile holds several values of the type; deviceIds: [string]}
//   attributes    {firstName, lastName, email, phone, country, city, postalCode: string, tags: [string],
//                  customFields: object of any JSON}
//   computed      {ltv, aov, purchaseCount, lastPurchaseDate, firstSeenDate, lastSeenDate, eventCount: derived
//                  from events, read-only; churnRisk (0..1), engagementScore (0..100): writable numbers}
//   consent       {purpose: boolean (true granted, false denied)} for email, sms, tracking, ads, Consent Mode v2's
//                  signals and custom purposes (see Consent in cdp/privacy.h), updatedAt: timestamp, set when any
//                  of them changes. Every change is recorded in the consent history (Consent::Get).
//   segments      [string], read-only (maintained by segmentation)
//   createdAt, updatedAt  timestamps, maintained by libcdp
// Unknown fields are rejected (custom data belongs in attributes.customFields). Read-only fields in an input are
// ignored, so a document read with Get can be modified and written back with Replace.
//
//   identityIssues  [{type, value, reason}], read-only: identifier values that are not used for matching (invalid,
//                  blocked, over a limit, a hub), newest last, at most 20
//   conflicts     [{field, value, profileId, mergeId, at, source, setAt}], read-only: values a merge did not keep
//                  (profileId: whose value; at: the merge's time; source, setAt: the value's provenance)
//   attributeSources  {"attributes.<name>" | "attributes.customFields.<key>": {source, at}}, read-only: where and
//                  when each attribute value was set (one entry per field with a value); merges use it to pick
//                  values (Identity::Rules, "survivorship"). Create / Replace / Patch record the input's top-level
//                  "source" (1-128 bytes, not stored as a field; default "api") and the time of the write for the
//                  values they change; a value written again unchanged keeps its entry.
// Identifiers: every externalIds value belongs to at most one profile. Values are normalized by the identity rules
// (Identity::Rules; emails trimmed and lower-cased, phones E.164 with libphonenumber). attributes.email / phone also
// name the person when externalIds lacks that type. An invalid or blocked email or phone is not an identifier: it
// stays in attributes and its reason is listed in identityIssues. A type the rules do not know is InvalidArgument.
// A profile write that would give a profile an identifier another profile holds fails with AlreadyExists naming the
// field: merging profiles is explicit (Identity::Merge) or automatic from events, never a side effect of an update.
// A principal that may not read an identifier's externalIds path may not name it in a profile write at all
// (PermissionDenied, held or not: a collision would tell whether the value is held); it links identifiers through
// Identity::Identify or events (docs/privacy.md).
// A profile merged into another keeps resolving to the survivor: Get, Replace, Patch, Timeline and Sessions of a
// merged id act on the survivor (the returned document carries the survivor's id).
class Profiles {
 public:
  virtual ~Profiles() = default;

  // Creates a profile. `profile.id`, when present, is used (1..128 chars of [A-Za-z0-9_.:@-]); AlreadyExists when
  // taken. Returns the stored document. Cost: one write, one read per identifier.
  virtual Result<Json> Create(const Json& profile) = 0;

  // Creates many profiles (a bulk import) in order, under one lock and in one atomic write. Each item is checked
  // as Create checks it, against storage and the items before it: a rejected item (InvalidArgument naming the
  // field; AlreadyExists when its id or an identifier is taken, by a stored profile or an earlier item;
  // FailedPrecondition for a suppressed identifier; ResourceExhausted over Options::max_profile_bytes) writes
  // nothing, the others are stored. Items never merge: a record sharing an identifier with another is rejected
  // (Identity::IdentifyBatch unifies instead). Returns {"accepted", "rejected", "results": [{"index", "status":
  // "ok", "id"} | {"index", "status": code, "error": {code, message, field}}]}, one result per item.
  // Errors (nothing written): InvalidArgument over Options::max_batch_items items or Options::max_batch_bytes
  // of items' JSON; PermissionDenied when the caller may not write a field some item sets (the whole call, as
  // with TrackBatch); Unavailable when the identity rules changed during the call (retry); storage errors.
  // An item is checked for its validity and identifiers before its id, so an item with both a bad identifier and
  // a taken id is InvalidArgument. Thread-safe. Cost: one write; one read per item and per identifier; from 256
  // items on, items are validated and their identifiers normalized on two threads (phones through libphonenumber
  // are most of it).
  virtual Result<Json> CreateBatch(const std::vector<Json>& profiles) = 0;

  // The current document, with computed traits. NotFound when absent. Cost: two point reads.
  virtual Result<Json> Get(std::string_view id) = 0;

  // Replaces the writable fields (externalIds, attributes, consent, computed.churnRisk / engagementScore) with
  // those of `profile`; fields absent from it become empty. Keeps id, createdAt, computed traits and segments.
  virtual Result<Json> Replace(std::string_view id, const Json& profile) = 0;

  // Applies an RFC 7396 JSON merge patch to the writable fields: members set, null members delete, other members
  // are untouched. The result is validated as a whole.
  virtual Result<Json> Patch(std::string_view id, const Json& patch) = 0;

  // Erases the profile (recorded as a privacy request, Gdpr::Erase; its identifiers and id are then suppressed
  // unless Options::suppress_erased_identifiers is off): its document, identifiers, events, traits, merge records,
  // consent history, audit targets, idempotency keys naming it, manual segment memberships, its entries in the
  // segments' change feed (the exits the erasure causes go to Segments::Subscribe callbacks only), and
  // the profiles merged into it, in one atomic write (an id merged into another names its survivor, as Get does: the
  // whole person is erased); then, before returning, makes the erasure physical (no file of
  // the database directory - tables, write-ahead log, MANIFEST, RocksDB's logs - keeps any of it; docs/privacy.md).
  // NotFound when absent. Cost: the atomic write is proportional to the profile's events; the physical part flushes
  // every memtable and rewrites the table files holding the person's keys, with the files below them in the same key
  // ranges, two compactions at a time (on the reference machine, 2 cores: 5-10 s per person at 1,000,000 events, 9-10 s
  // at 3,000,000, and 39-45 s for the first erasure after bulk-loading those, whose files each span every profile;
  // docs/privacy.md). It does not wait for the segment index an open builds. Writes by other callers go on
  // meanwhile.
  virtual Status Delete(std::string_view id) = 0;

  // Profiles matching the query's filter, sorted, one page at a time. Filters apply to the full document,
  // computed traits included. Cost: a scan of all profiles (indexes come with segmentation).
  virtual Result<Page> Search(const ProfileQuery& query) = 0;

  // The profile's events ordered by event time (EventQuery with profile_id = id). NotFound when the profile is
  // absent.
  virtual Result<Page> Timeline(std::string_view id, const EventQuery& query) = 0;

  // The profile's sessions, oldest first: {id, start, end, durationSeconds, eventCount, firstPage, utmSource,
  // utmMedium, utmCampaign, deviceId, userAgent, ip, eventTypes: {type: count}}. firstPage is the url, path or page
  // property of the session's first page view that has one, the UTM fields the utm_source / utm_medium /
  // utm_campaign properties of its first event; deviceId is that of its first event with one, userAgent and ip
  // those of its first event whose properties.context (a Segment message's context) or properties have them. Each
  // is null for a caller who may not read that event field or property (cdp::Governance), whatever it may read of
  // sessions.* (deviceId, userAgent and ip are classified pii there). NotFound when the profile is absent. Cost: a
  // scan of its events.
  virtual Result<std::vector<Json>> Sessions(std::string_view id) = 0;
};

// The outcome of tracking one event.
struct TrackResult {
  std::string event_id;
  std::string profile_id;
  std::string session_id;
  bool profile_created = false;  // no profile matched, so one was created
  bool duplicate = false;        // an event with this id was already stored for this profile: nothing changed
  std::vector<std::string> merged_profiles;  // profiles this event's identifiers merged into profile_id
  std::string merge_id;                      // the merge record of that merge (Identity::Explain)
  Json ignored_identifiers;  // [{type, value, reason}] identifiers not used for matching, or null when none
  // True when the calling principal may write but not read an identifier the event named (its "externalIds." path,
  // cdp::Governance): the answer then leaves out which profile holds it. profile_id, session_id, merged_profiles and
  // merge_id are empty and profile_created is false; the event is stored all the same.
  bool links_hidden = false;

  // {"eventId", "profileId", "sessionId", "profileCreated", "duplicate"}, plus "mergedProfiles" and "mergeId" after
  // a merge and "ignoredIdentifiers" when some were ignored. With links_hidden: {"eventId", "duplicate",
  // "linksHidden": true} (and "ignoredIdentifiers").
  Json ToJson() const;
  // Clears what says which profile the event went to, and sets links_hidden.
  void HideLinks();
};

// An idempotency key written with an item, in the same atomic write (see Events::RememberKey): `value` (a JSON
// object) is remembered under `key` until `expires_us` (microseconds since the epoch), with "profileId" set to the
// profile the item was stored under. It is written only when the item is stored (for an event: not rejected and
// not a duplicate), so the key exists exactly when the item does, crash or not, and it is erased with the
// profile. An empty `key` writes nothing; a key starting with the byte 0x01 is InvalidArgument.
// Limits as RememberKey's: a key of 1 to 512 bytes, a value of at most 4 KiB as compact JSON.
struct IdempotencyKey {
  std::string key;
  Json value = Json::Object();
  int64_t expires_us = 0;
  // Identity::Identify only: when non-zero, the key is looked up first, and a stored key that expires after
  // `applied_if_stored_at_us` means the identify it came with was applied (see Identity::Identify).
  int64_t applied_if_stored_at_us = 0;
};

struct BatchItemResult {
  Status status;       // OK when stored (or a duplicate); else why the item was rejected
  TrackResult result;  // meaningful when status is OK
};

struct BatchResult {
  std::vector<BatchItemResult> items;  // one per input item, in input order
  size_t accepted = 0;
  size_t rejected = 0;

  // {"accepted": n, "rejected": n, "results": [{"index", "status": "ok"|code, "eventId", ... | "error": {...}}]}
  Json ToJson() const;
};

// Events: the behavioural log.
//
// An event document has the fields
//   id          string; generated unless given. Re-tracking an event with the same id, profile and timestamp is a
//               no-op reported as duplicate, so retries are safe; a retry must carry the original timestamp (an
//               event without one takes the time of receipt, so a retry of it is a new event)
//   type        one of page_view, product_view, add_to_cart, purchase, email_open, app_usage, custom (required)
//   name        string; required for custom events
//   timestamp   event time (ISO 8601 or epoch ms); default: the time of receipt
//   properties  object of any JSON; purchase value is properties.revenue, else .total, else .value
//   sessionId   string; assigned when absent (see below)
//   deviceId, source   strings
//   profileId   the profile it belongs to; or name it by identifier: customerId, email, phone, shopifyId, deviceId
//               (first match in that order). With no match a profile is created, holding those identifiers; a
//               profileId that does not exist yet creates a profile with that id.
//   receivedAt  set by libcdp: the time of receipt (ingest time), kept beside event time
//
// Sessions: an event without sessionId joins the session of the profile's closest earlier event (in event time)
// when that is less than Options::session_timeout_seconds before it, else the closest later event's session when
// that is within the timeout after it, else starts a new session. Arrival order does not change computed traits;
// it changes session assignment only for a late event that bridges two sessions (it joins the earlier one).
//
// Limits, like any bad input InvalidArgument: an event over Options::max_event_bytes (naming its largest member as
// the field, e.g. "properties"); a batch body over max_batch_bytes or with more than max_batch_items, for the whole
// batch.
//
// Refused with FailedPrecondition, nothing stored (a batch: that item): an event of a profile whose consent denies
// tracking; an event that would link an erased person's identifier or recreate an erased profile (suppression);
// an event older than what a retention run retired for its type (Retention in cdp/privacy.h).
class Events {
 public:
  virtual ~Events() = default;

  // Validates and stores one event, updating the profile's computed traits. Cost: ~3 writes and 1-3 point reads.
  virtual Result<TrackResult> Track(const Json& event) = 0;

  // Validates each item; stores every valid one in one atomic write; says per item what happened. The call itself
  // fails only when the batch as a whole is unacceptable (not an array, too large) or storage fails (nothing
  // written; the engine may then refuse writes until reopened, as for Identity::IdentifyBatch). Concurrent calls
  // overlap: one call's batch is resolved while another's is written (docs/architecture.md).
  virtual Result<BatchResult> TrackBatch(const std::vector<Json>& events) = 0;
  // The same, each stored event with its idempotency key (keys[i] for events[i]; `keys` is empty or as long as
  // `events`). Errors, besides TrackBatch's: InvalidArgument for a key list of another length or a key over the
  // limits (nothing is written).
  virtual Result<BatchResult> TrackBatch(const std::vector<Json>& events, const std::vector<IdempotencyKey>& keys) = 0;
  // The same from a JSON text: an array of events, or {"batch": [...]} (Segment's batch shape). The size limit
  // applies to the text. Items are validated as by TrackBatch, straight from the text without building Json values:
  // the cheaper way in for events that arrive as JSON text (REST, queues, files).
  virtual Result<BatchResult> TrackBatchJson(std::string_view json_text) = 0;

  // Events matching the query, by event time, one page at a time.
  virtual Result<Page> Query(const EventQuery& query) = 0;

  // Idempotency keys, for sources that deliver at least once (the Segment adapter keeps its messageIds here, see
  // cdp/segment.h): a small value remembered under a key until `expires_us` (microseconds since the epoch),
  // durably (through the write-ahead log, like an event; fsync'ed with Options::sync_writes). RememberKey replaces
  // any value the key had. RecallKey returns the value while `now_us` < its expiry, else nullopt. Expired keys are
  // dropped when RocksDB compacts their files. A value that is a JSON object with a string "profileId" is erased
  // with that profile (Profiles::Delete), unless the key was remembered again since for another. Errors:
  // InvalidArgument for a key of 0 or over 512 bytes or starting with the byte 0x01 (the engine's own), or a value
  // over 4 KiB; storage errors. Thread-safe; each call is one RocksDB write or point read.
  virtual Status RememberKey(std::string_view key, std::string_view value, int64_t expires_us) = 0;
  virtual Result<std::optional<std::string>> RecallKey(std::string_view key, int64_t now_us) = 0;
};

// Identity resolution: the rules, merges and their explanation. See docs/identity.md.
//
// Every identifier value belongs to at most one profile. An event whose identifiers match no profile creates one;
// matching one attaches to it; matching several merges them into the owner of the highest-priority identifier,
// unless that would give the survivor more values of a type than the rules' limit: then the lowest-priority
// identifier is dropped and matching is retried. Values linked to more distinct high-priority values than
// hub.threshold (shared devices, family emails) stop linking. Every merge is recorded with its evidence.
class Identity {
 public:
  virtual ~Identity() = default;

  // The identity rules in force (JSON; the shape is in docs/identity.md). Defaults until SetRules is called.
  virtual Result<Json> Rules() = 0;

  // Validates and stores new rules; they apply to every write after the call (existing links are kept). Members
  // left out take their defaults (docs/identity.md, "Rules"); an explicit empty list or "" region clears one.
  // Errors: InvalidArgument naming the offending field. Durable like any write.
  virtual Result<Json> SetRules(const Json& rules) = 0;

  // What `rules` would change on the existing identity graph, without changing anything: {"identifiersScanned",
  // "wouldMerge": [{"profileIds", "identifier"}] (profiles whose identifiers become one value, e.g. with
  // canonicalGmail), "mergeBlocked": [{"profileIds", "identifier", "reason"}] (such a merge would break a limit),
  // "wouldUnlink": [{"profileId", "identifier", "reason"}] (values that become invalid, blocked or of an unknown
  // type, or beyond a lowered limit: the most recently linked values go first),
  // "newHubs": [{"identifier", "distinctHighPriorityValues"}]}. Lists are capped at 1,000 entries each ("truncated"
  // says so). Errors: InvalidArgument as SetRules. Cost: reads every identifier link and profile document involved.
  virtual Result<Json> DryRunRules(const Json& rules) = 0;

  // Stores `rules` (as SetRules) and applies them to the existing graph: what DryRunRules reports is done.
  // Identifiers whose normalized form changed are re-keyed; values that became invalid, blocked, of an unknown type
  // or beyond a lowered limit (the most recently linked first) are unlinked from their profiles and listed in the
  // profiles' identityIssues; profiles whose identifiers became one value are merged (Merge, survivor: the
  // profile holding the oldest link; automatic, evidence {"call": "identity.applyRules", "identifier"}; such a
  // merge cannot be undone: Unmerge is FailedPrecondition) unless the merge would break a limit, in which case
  // the value stays with that profile and is unlinked from the others (listed in their identityIssues). Hub thresholds
  // take effect by themselves. Returns {"rules", "identifiersScanned", "renormalized", "merged": [{"mergeId",
  // "profileId", "merged", "identifier"}], "mergeBlocked": [{"profileIds", "identifier", "reason"}], "unlinked":
  // [{"profileId", "identifier", "reason"}], "newHubs": [...]} (lists capped at 1,000, "truncated"). Writes wait while
  // the links are rewritten (one scan of every link); each merge is then its own write. Errors: InvalidArgument as
  // SetRules; a merge that fails (a profile changed meanwhile) is listed in "mergeFailed" with its error.
  virtual Result<Json> ApplyRules(const Json& rules) = 0;

  // Merges the profiles into the first one (the survivor): identifiers, events, computed traits, consent (the most
  // restrictive) and attributes, field by field by the rules' "survivorship" (by default the survivor's values win
  // and the others fill empty fields; values not kept go to `conflicts`; docs/identity.md, "Survivorship"). The
  // merged ids then resolve to the survivor. Returns {"mergeId", "profileId", "merged": [ids]}.
  // Errors: InvalidArgument (fewer than two distinct profiles, a reason over 1 KiB), NotFound (an id does not
  // exist), FailedPrecondition (the merge would give the survivor more values of a type than its limit).
  // Cost: rewrites every event of the merged profiles, in one WriteBatch.
  virtual Result<Json> Merge(const std::vector<std::string>& profile_ids, std::string_view reason) = 0;

  // Undoes a merge (automatic or manual) that `profile_id` (the survivor, or one of the merged ids) took part in:
  // the merged profiles come back as they were before it (documents from the merge record's snapshots), with
  // their identifiers; the survivor loses what the merge brought in (values, tags, consent, conflicts) unless it
  // changed since. Events are re-partitioned: an event goes to the profile owning the highest-priority identifier
  // it carries; an event without one to the profile it was first stored under. An identifier an event linked to
  // the survivor after the merge is no owner there: it follows the first event (in event time) that carried it
  // (those linked since by identifies, profile writes or later merges stay). Computed traits of every profile
  // involved are recomputed from its events. Returns {"mergeId", "profileId" (the survivor), "restored": [ids],
  // "eventsMoved"}. Errors: NotFound (no such merge or profile), InvalidArgument (the merge does not involve the
  // profile), FailedPrecondition (already undone; or the survivor was later merged into another profile: undo
  // that merge first; or the merge was made by ApplyRules: the values that became one cannot be told apart).
  // Cost: reads every event of the survivor; one WriteBatch.
  virtual Result<Json> Unmerge(std::string_view profile_id, std::string_view merge_id) = 0;

  // Names a person and sets what is known about them (Segment's identify):
  //   {"identifiers": {"customerId" | "userId", "email", "phone", "anonymousId", "deviceId", "shopifyId", <custom>:
  //    string}, "profileId": optional, "id": optional (evidence), "attributes", "consent", "computed": a merge patch,
  //    "source": optional, "timestamp": optional (event time; default now): the provenance of the values it sets}
  // The identifiers resolve a profile exactly as an event's do (creating or merging profiles as the rules say);
  // the patch is then applied to it (RFC 7396 over the writable fields; identifiers come only from "identifiers").
  // Returns {"identifyId", "profileId", "profileCreated", "mergedProfiles"?, "mergeId"?, "ignoredIdentifiers"?}.
  // Errors: InvalidArgument naming the field (nothing is written), among them a request left with no usable
  // identifier and no profileId (only blocked, invalid or unregistered identifiers: it could only create a new
  // profile each time), or over Options::max_event_bytes.
  virtual Result<Json> Identify(const Json& request) = 0;
  // The same, with an idempotency key written in the same atomic write. With key.applied_if_stored_at_us set and
  // the key stored with an expiry after it, the identify the key came with was applied: nothing is written and the
  // answer is {"identifyId", "profileId" (the one the stored key names), "profileCreated": false, "duplicate":
  // true}, filtered as Identify's (one point read under the write lock, so two such calls apply it once). Errors,
  // besides Identify's: InvalidArgument for a key over the limits (nothing is written).
  virtual Result<Json> Identify(const Json& request, const IdempotencyKey& key) = 0;

  // Many identifies (a bulk import), resolved in order under one lock and written as one WriteBatch: each item
  // validated on its own (a rejected item changes nothing); {"accepted", "rejected", "results": [{"index", "status":
  // "ok" | code, ...Identify's answer | "error": {code, message, field}}]}. Errors: InvalidArgument over
  // Options::max_batch_items; a storage error fails the whole batch (nothing written); when the batch was written
  // after the write lock was released (the usual case: docs/architecture.md, "Batches in flight"), its changes were
  // already visible to other writers' next batches, so the engine then refuses writes with Unavailable until it is
  // reopened. The same holds for Identify.
  virtual Result<Json> IdentifyBatch(const std::vector<Json>& requests) = 0;

  // Why a profile is what it is: {"profileId", "identifiers": [{type, value, evidence, linkedAt}],
  // "identityIssues", "mergedIds", "merges": [{mergeId, survivor, merged, reason, automatic, evidence, at,
  // survivorship: {<merged id>: {<field>: {rule, value}}} (the attribute values the merge changed)}]}.
  // A merged id is answered for its survivor. Errors: NotFound.
  virtual Result<Json> Explain(std::string_view profile_id) = 0;

  // ---- Fuzzy matching: likely duplicates that share no identifier (docs/identity.md, "Fuzzy matching").

  // The matching configuration: {"linkage": <Fellegi-Sunter configuration over profile paths such as
  // "attributes.lastName">, "proposeAbove": probability (default 0.9), "autoMergeAbove": probability or null (the
  // default: never merge automatically), "onWrite": match profiles as they are written (default false; see
  // MatchPending)}. Changing "linkage" drops the trained model and the blocking index (run FindDuplicates again).
  virtual Result<Json> MatchingConfig() = 0;
  // Validates (InvalidArgument naming the field, e.g. "linkage.comparators[1].thresholds[0]") and stores it.
  virtual Result<Json> SetMatchingConfig(const Json& config) = 0;

  // Scores every pair of live profiles that a blocking rule brings together (m and u estimated by EM on them) and
  // records a proposal for each pair at or above proposeAbove that was not decided before; with autoMergeAbove
  // set, pairs at or above it are merged at once (reason "fuzzy match <proposal id> (probability p)", automatic,
  // evidence {"call": "identity.autoMerge", "proposalId", "probability"}; an accepted proposal's merge has evidence
  // {"call": "identity.acceptProposal", "proposalId"}). A pair whose
  // merge the identity rules forbid (more distinct values of a type than its limit) is neither: it counts in
  // "notMergeable". Pending proposals naming a profile merged or erased since, or whose profiles the rules no longer
  // let be one, become "obsolete". Returns {"profiles", "candidatePairs", "proposed", "updated", "autoMerged",
  // "notMergeable", "obsolete", "model", "scoredWith", "modelRejected"?}. A model EM fits is used ("scoredWith":
  // "estimated") and kept for matching on write only when no comparator's least similar level is evidence for a
  // match, m > 2u (linkage::Model::Implausible); otherwise "modelRejected"
  // says why, and the pairs are scored with the last such model of this linkage configuration ("saved"), or, with
  // none, nothing is proposed or merged ("none"). That happens when the candidate pairs hold few duplicates (after
  // they were merged): EM's "match" class is then some other shared trait. Errors: ResourceExhausted when
  // blocking gives more pairs than linkage.maxPairs. Cost: reads every profile; O(pairs) comparisons.
  virtual Result<Json> FindDuplicates() = 0;

  // Matching on write: with "onWrite": true in the matching configuration, every profile a write creates or
  // changes is queued and, in a background thread, indexed by its blocking keys and scored against the profiles
  // that share a block with it, with the model the last FindDuplicates run estimated (run it once after turning
  // onWrite on: it trains the model and indexes the existing profiles). Pairs at or above proposeAbove become
  // proposals (or merges above autoMergeAbove) as in FindDuplicates, within milliseconds of the write. Without a
  // trained model for the current linkage configuration, profiles are indexed but not scored. The queue is in
  // memory: profiles queued at a crash are caught up by the next FindDuplicates. Blocks are read up to 1,000
  // profiles each.
  // MatchPending matches everything queued now, in the calling thread, and returns what it did:
  // {"matched", "proposed", "updated", "autoMerged"}. Errors: storage errors.
  virtual Result<Json> MatchPending() = 0;

  // Proposals with the given status ("pending", "accepted", "rejected", "merged", "obsolete"; empty: all), most
  // probable first:
  // [{"proposalId", "profileIds": [a, b], "probability", "matchWeight", "comparisons": [{"comparator", "level",
  // "weight"}], "status", "createdAt", "updatedAt", "mergeId"?}]. Errors: InvalidArgument for an unknown status.
  virtual Result<Json> Proposals(std::string_view status) = 0;
  // Accepting merges the pair (Merge's errors apply) and marks the proposal accepted with the mergeId; rejecting
  // marks it rejected, and the pair is not proposed again. Errors: NotFound, FailedPrecondition (not pending).
  virtual Result<Json> AcceptProposal(std::string_view proposal_id) = 0;
  virtual Result<Json> RejectProposal(std::string_view proposal_id) = 0;

  // {"profiles", "merges", "mergedProfiles", "unmerges", "unificationRate", "matching"}: profiles live now, merges
  // recorded, profiles merged away (net of unmerges; erasing a person takes their merges out of both), merges undone,
  // mergedProfiles / (profiles + mergedProfiles), and matching on write: {"onWrite", "model": {"trainedAt",
  // "candidatePairs"} | null, "queued", "matched", "proposed", "updated", "autoMerged", "errors", "lastError"} (counts
  // since open).
  virtual Result<Json> Stats() = 0;
};

// Segments: named rules over profiles and their behaviour (the rule language of cdp/segment_rule.h), evaluated
// exactly over an in-memory index (docs/segments.md), with membership kept up to date in real time.
//
// A definition: {"name": 1-256 bytes, "description": optional string of at most 4 KiB, "rule": a rule}. Stored
// with {"id" ("seg_..."), "createdAt", "updatedAt"}; reads add "size" (members now). A rule may name other
// segments ({"segment": id}, or {"field": "segments", "operator": "contains", "value": id}); they must exist, and
// a cycle is refused.
//
// Real time. The index is built from storage at the first Segments call, or in the background when the engine
// opens a database that holds segments (about 4 us per profile and 1 us per event). From then on every write
// re-evaluates, for the profiles it changed, only the segments it can affect (by the rules' dependencies:
// fields read, event types read, segments named), before the write call returns. Time windows and relative dates
// expire on time: a background thread re-evaluates a profile at the instant its membership can next change with
// no write (SegmentIndex::NextChange), so a profile whose last purchase leaves "the last 30 days" leaves then.
//
// The change feed. Each change of membership is recorded, in order, in storage:
//   {"cursor", "segmentId", "profileId", "change": "entered" | "exited", "time", "cause": {"kind", ...}}
// where cause.kind is "event" (with "events": the event types), "profile" (a profile write, merge, unmerge,
// erasure or identity rule change), "time" (a window or relative date passed), "created" / "updated" (the
// definition), or "reconcile" (differences found when the index is rebuilt at open, for example changes whose
// feed entries a crash lost: feed entries are written through the write-ahead log after the write they follow).
// Cursors are opaque, ordered, and valid across restarts. The feed of a deleted segment is deleted with it. An
// erasure deletes every entry naming the person; the exits it causes (cause.kind "erasure") are delivered to
// subscribers and never stored, so Changes does not return them.
//
// Errors: InvalidArgument naming the field ("rule.conditions[2].count"), NotFound for an unknown id,
// FailedPrecondition when deleting a segment another segment's rule names.
//
// Governance (cdp/privacy.h). A segment's definition, size, members, feed, past members, overlaps and exports tell
// who matches its rule, so a principal reads them only when it may read every field the rule tests (profile
// fields; "events.type" and the tested event fields for behavioural conditions) and those of every segment the
// rule names, transitively: otherwise PermissionDenied naming the first such field. List leaves such segments
// out, and so does a profile's "segments" list (SegmentsOf). Manual segments test nothing. Changing definitions
// and manual members needs the "admin" role.
//
// Thread-safety: all methods from any thread. Cost: a write of new events adds them to the index and rewrites the
// profile's event-maintained traits; a profile write, merge or erasure reloads the profile (document and events);
// then one EvaluateOne per affected segment (a few microseconds each): with 100 live segments a single Track call
// takes about 14 us more (docs/segments.md). While the index is being built (at open), writes wait for it before
// they return. Reads answer from the maintained membership (sizes are O(1)); Estimate evaluates the whole index.
class Segments {
 public:
  virtual ~Segments() = default;
  virtual Result<Json> Create(const Json& definition) = 0;
  virtual Result<Json> Get(std::string_view id) = 0;
  // Every segment the calling principal may read (above), by id, each with its size.
  virtual Result<Json> List() = 0;
  // Replaces the definition (keeps id and createdAt). Membership changes it causes are in the feed ("updated").
  virtual Result<Json> Update(std::string_view id, const Json& definition) = 0;
  virtual Status Delete(std::string_view id) = 0;
  // Members (profile documents, as Profiles::Get renders them), `limit` per page (clamped to
  // Options::max_page_size; 0: 50). Pages follow the index's profile order; a cursor holds the last profile id
  // and is valid while the process runs (after a restart it resumes after that profile in the new order).
  // Errors: NotFound, InvalidArgument for a cursor naming an unknown profile.
  virtual Result<Page> Members(std::string_view id, size_t limit, std::string_view cursor) = 0;
  // The number of members now.
  virtual Result<int64_t> Size(std::string_view id) = 0;
  // The exact size of an unsaved rule (for a rule builder's live count). Nothing is stored.
  virtual Result<int64_t> Estimate(const Json& rule) = 0;

  // Membership changes of segment `id` after `since`, oldest first, at most `limit` (0: 100; clamped to
  // Options::max_page_size). `since`: "" (from the start), a cursor from a change or a previous answer, or an RFC
  // 3339 time (changes at or after it). Returns {"changes": [...], "cursor": the last change's cursor (or `since`
  // when none, so a poller can always resume from it), "more": whether more changes follow}.
  // Errors: NotFound, InvalidArgument for a malformed `since`. Cost: one storage seek, then one read per change.
  virtual Result<Json> Changes(std::string_view id, std::string_view since, size_t limit) = 0;
  // Waits until segment `id` has a change after `cursor` ("": any change), or `timeout_ms` passes (at most
  // 60,000). Returns whether one exists. For long polling and iterators. Errors: NotFound, InvalidArgument.
  virtual Result<bool> WaitForChanges(std::string_view id, std::string_view cursor, int64_t timeout_ms) = 0;
  // The members of segment `id` as they were at `time` (RFC 3339), from the feed: sorted profile ids.
  // Errors: NotFound, InvalidArgument. Cost: one read per feed entry of the segment up to `time`.
  virtual Result<std::vector<std::string>> MembersAt(std::string_view id, std::string_view time) = 0;
  // The ids of the segments profile `profile_id` (live id) is a member of now, sorted, leaving out those the
  // calling principal may not read (above). Empty before the index is built or for an unknown profile. Cost: one
  // bitmap probe per segment (and, for a principal without "admin", a walk of each rule); never waits for a
  // rebuild.
  virtual std::vector<std::string> SegmentsOf(std::string_view profile_id) = 0;

  // Manual segments (static lists): a definition {"name", "description"?, "type": "manual"} has no rule; its members
  // are added and removed by these two calls. Each item is a profile id (a merged id names its survivor) or an
  // identifier {"type": "email", "value": "Ann@Example.com"} (normalized as identity resolution does, and resolved to
  // the profile holding it now). At most 10,000 items per call. Returns {"added" | "removed": n, "unchanged": n,
  // "notFound": [items that name no profile]}; the changes go to the feed (cause "manual"). A member profile that is
  // erased or merged away leaves the list. Errors: NotFound (segment), FailedPrecondition (not a manual segment),
  // InvalidArgument (an item that is neither, with its index in field()).
  virtual Result<Json> AddMembers(std::string_view id, const Json& items) = 0;
  virtual Result<Json> RemoveMembers(std::string_view id, const Json& items) = 0;

  // Overlap of 1 to 50 distinct segments: {"segments": [{"id", "name", "size"}], "matrix": [[{"intersection",
  // "union", "jaccard"}, ...], ...]} with matrix[i][j] comparing segments i and j (Jaccard: intersection / union, 0
  // when both are empty). Errors: NotFound, InvalidArgument. Cost: one bitmap operation per pair (about 0.1 ms for
  // two segments of 1,000,000 members).
  virtual Result<Json> Overlap(const std::vector<std::string>& ids) = 0;

  // Writes the members of segment `id` as `format` "csv" (a header row of the field paths, then one row per
  // member; RFC 4180 quoting; strings as they are, other values as JSON, absent fields empty) or "jsonl" (one JSON
  // object per member, keyed by field path). `fields` are dotted profile paths ("id", "attributes.email", ...;
  // 1 to 100; empty: id, externalIds.email, externalIds.phone, attributes.firstName, attributes.lastName). Text goes
  // to `sink` in chunks of about 64 KiB as it is produced; a sink returning false stops the export (Unavailable).
  // Membership is taken when the call starts; each member's document is read as it is written out.
  // Errors: NotFound, InvalidArgument (format, fields), Unavailable (stopped by the sink). Does not block writes
  // while it streams.
  virtual Status Export(std::string_view id, std::string_view format, const std::vector<std::string>& fields,
                        const std::function<bool(std::string_view chunk)>& sink) = 0;

  // RFM (docs/segments.md "RFM"): profiles with a purchase in the window carry computed.rfm = {"r", "f", "m",
  // "score", "segment"} (quintile scores 1-5 and the named segment), readable by rules like any field and shown on
  // profiles. Scores depend on every customer, so they are recomputed together: when the index is built, every
  // Options::rfm_refresh_seconds, after SetRfmConfig, and on RecomputeRfm; membership changes they cause are in the
  // feed (cause "rfm").
  // The configuration: {"event": "purchase", "revenuePath": "properties.revenue", "window": "365d" | null (all
  // time)}. SetRfmConfig takes any of these members. Errors: InvalidArgument naming the member.
  virtual Result<Json> RfmConfig() = 0;
  virtual Result<Json> SetRfmConfig(const Json& config) = 0;
  // Recomputes every profile's RFM now: {"at", "scored" (profiles with a purchase in the window), "changed"}.
  // Cost: one scan of the purchase events and a sort (about a second at 1,000,000 customers).
  virtual Result<Json> RecomputeRfm() = 0;

  // Calls `callback` with every membership change (the feed's documents), in feed order, on a libcdp thread, soon
  // after the change is recorded (changes recorded before the engine closes are delivered as it closes). The
  // callback may call the engine; it must not throw (an exception ends the process). Subscribe and Unsubscribe
  // wait while another thread delivers a batch of changes. Returns a handle for Unsubscribe.
  // Principals: the subscription belongs to the calling thread's principal (ScopedPrincipal). It receives only the
  // changes of segments that principal may read (as Changes; an admin, all), its callback runs as that principal,
  // and each batch delivered to it is one audit entry ("segments.delivered", naming the batch's profiles, with the
  // count of changes); the subscription itself is one ("segments.subscribe"). Errors: PermissionDenied for a
  // principal the policy does not define.
  using ChangeCallback = std::function<void(const Json& change)>;
  virtual Result<uint64_t> Subscribe(ChangeCallback callback) = 0;
  // After it returns no call of the callback is running or will start (unless called from that callback itself,
  // where it takes effect after the callback returns).
  virtual void Unsubscribe(uint64_t handle) = 0;
};

// Audiences: segments combined for activation. A definition:
//   {"name": 1-256 bytes, "description"?: string,
//    "segments": {"operator": "AND" | "OR", "ids": [1 to 50 segment ids]},
//    "exclude"?: [segment ids whose members are left out],
//    "suppressionLists"?: [suppression list ids],
//    "channel"?: a consent purpose ("email", "sms", "ads", "tracking", a Consent Mode signal or a custom purpose;
//               see Consent in cdp/privacy.h; "analytics_storage" is stored as "tracking", its other name) | null}
// Members: the segments' members combined with the operator, minus the excluded segments' members, minus every
// profile holding an identifier of a suppression list now, restricted (with a channel) to profiles whose consent
// grants it (consent.<channel> is true; absent means not granted). Stored with {"id" ("aud_..."), "createdAt",
// "updatedAt"}; reads add "size". Sizes and members are exact now (they follow the segments, which follow every
// write).
//
// A suppression list holds identifiers that must never be activated, whether or not a profile holds them yet:
// {"name", "description"?}, with identifiers {"type", "value"} added and removed (normalized as identity
// resolution does; an invalid or blocked value is refused). Stored as "supp_..." ids.
//
// Errors: InvalidArgument naming the field, NotFound, FailedPrecondition when deleting a suppression list an
// audience names (and, in Segments::Delete, a segment an audience names).
// Governance: an audience's size, members, overlap and export need what its segments and excluded segments need
// (Segments, above), read access to "consent.<channel>", and, with suppression lists, to "externalIds" (they
// match identifiers); otherwise PermissionDenied naming the field, and List leaves the audience out. Definitions
// and suppression lists are changed by "admin".
// Thread-safety: all methods from any thread. Cost: a read combines bitmaps (milliseconds at 1,000,000 members),
// evaluates the channel's consent over the index (one column scan), and resolves each suppressed identifier (one
// point read each).
class Audiences {
 public:
  virtual ~Audiences() = default;
  virtual Result<Json> Create(const Json& definition) = 0;
  virtual Result<Json> Get(std::string_view id) = 0;
  virtual Result<Json> List() = 0;
  virtual Result<Json> Update(std::string_view id, const Json& definition) = 0;
  virtual Status Delete(std::string_view id) = 0;
  virtual Result<int64_t> Size(std::string_view id) = 0;
  // Member profiles, paged as Segments::Members.
  virtual Result<Page> Members(std::string_view id, size_t limit, std::string_view cursor) = 0;
  // How the audience comes about: {"audience": {"id", "size"}, "segments": [{"id", "name", "size"}], "matrix":
  // (Segments::Overlap of its segments), "combined": members before exclusions, "excluded": left out by "exclude",
  // "suppressed": left out by suppression lists, "withoutConsent": left out for the channel}.
  virtual Result<Json> Overlap(std::string_view id) = 0;
  // As Segments::Export.
  virtual Status Export(std::string_view id, std::string_view format, const std::vector<std::string>& fields,
                        const std::function<bool(std::string_view chunk)>& sink) = 0;

  virtual Result<Json> CreateSuppressionList(const Json& definition) = 0;
  // {"id", "name", "description"?, "createdAt", "size" (identifiers)}.
  virtual Result<Json> GetSuppressionList(std::string_view id) = 0;
  virtual Result<Json> ListSuppressionLists() = 0;
  virtual Status DeleteSuppressionList(std::string_view id) = 0;
  // items: [{"type", "value"}], at most 10,000. Returns {"added" | "removed", "unchanged", "invalid": [items]}.
  // Identifiers are normalized as identity resolution does. Erasure (Gdpr::Erase, Profiles::Delete; not retention)
  // keeps an item naming one of the erased person's identifiers only as a keyed hash: it still counts in "size"
  // but no longer suppresses anyone (with suppression of erased identifiers, the default, none can come back);
  // Gdpr::Unsuppress of the identifier, or adding it again, restores the item.
  virtual Result<Json> AddToSuppressionList(std::string_view id, const Json& items) = 0;
  virtual Result<Json> RemoveFromSuppressionList(std::string_view id, const Json& items) = 0;
};

class Engine {
 public:
  // Opens (and by default creates) the database in `path`: a new or empty directory, or one holding a database.
  // Errors: FailedPrecondition when the directory is already open (here or in another process), or holds files that
  // are not a database's (it is left untouched); InvalidArgument when `path` is empty or not a directory, or for bad
  // options; NotFound when nothing is there and Options::create_if_missing is false; DataLoss for an unknown format
  // version, or for a database's files without their CURRENT file (a damaged database: left untouched);
  // Unavailable / Internal for I/O errors.
  static Result<std::unique_ptr<Engine>> Open(const Options& options, const std::string& path);

  virtual ~Engine() = default;  // closes the database; pending writes were already durable when acknowledged

  virtual Profiles& profiles() = 0;
  virtual Events& events() = 0;
  virtual Identity& identity() = 0;
  virtual Segments& segments() = 0;
  virtual Audiences& audiences() = 0;
  virtual Consent& consent() = 0;
  virtual Gdpr& gdpr() = 0;
  virtual Audit& audit() = 0;
  virtual Governance& governance() = 0;
  virtual Retention& retention() = 0;
  virtual Analytics& analytics() = 0;  // cdp/analytics.h

  // {"profiles", "events", "formatVersion", "version", "path", "segmentsError"}. Counts are exact (kept with every
  // write). segmentsError is "" or the last error of keeping segments in step with writes (storage trouble while
  // applying a write to the segment index; the write itself was acknowledged and the next write or read retries).
  virtual Result<Json> Stats() = 0;

  // Flushes memtables to SST files (not needed for durability; useful before copying the directory).
  virtual Status Flush() = 0;

  const Options& options() const { return options_; }

 protected:
  explicit Engine(const Options& options) : options_(options) {}
  Options options_;
};

}  // namespace cdp

#endif  // CDP_ENGINE_H_
