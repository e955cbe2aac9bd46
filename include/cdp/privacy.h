// Copyright 2026 The libcdp Authors.
//
// Privacy: consent per purpose with its history, and data subjects' requests (access, portability, erasure) with
// suppression of erased identifiers. See docs/privacy.md.

#ifndef CDP_PRIVACY_H_
#define CDP_PRIVACY_H_

#include <string>
#include <string_view>

#include "cdp/json.h"
#include "cdp/status.h"

namespace cdp {

// Consent: what each person allowed, for which purpose, when, where and under which policy, with the full history.
//
// Purposes. A profile's "consent" member maps purposes to true (granted) or false (denied); a purpose never stated
// is absent, and absent is not granted. The purposes:
//   email, sms, tracking, ads                      channels
//   ad_storage, ad_user_data, ad_personalization   Google Consent Mode v2's advertising signals. "ads" is granted
//                                                  exactly when all three are and denied when one is; stating "ads"
//                                                  states the three signals it is not given with.
//   analytics_storage                              Consent Mode v2's name for tracking: accepted, stored as tracking
//   custom purposes                                any other name of 1-64 characters [a-z0-9_] starting with a letter
// at most 64 per statement (a merge may hold more). Consent is stated by Record, or as the "consent" member of a
// profile write (Profiles::Create / Replace / Patch) or an identify; each change of any of these adds a history record.
//
// Where consent is enforced:
//   - tracking denied: Events::Track and every batch refuse new events resolved to that profile (or that would
//     merge it) with FailedPrecondition, and store nothing of them (no event, identifier, merge or key);
//   - audiences with a channel keep only profiles whose consent grants it (Audiences);
//   - a merge keeps the most restrictive consent of the profiles merged (a purpose denied by one is denied; one only
//     one side stated keeps its value), with a history record "via": "merge" for what it changed;
//     Identity::Unmerge restores it (record "via": "unmerge").
//
// History records: {"id" ("cns_..."), "profileId", "purposes": {purpose: true | false | null (no longer stated)},
// "source", "policyVersion"?, "at" (when the person stated it), "recordedAt", "via" ("consent", "profiles.create",
// "profiles.update", "identify", "merge", "unmerge"), "mergeId"?, "superseded"?: [purposes not applied]}.
// Out of order: a statement older than the latest one recorded for a purpose (statements, profile writes and
// identifies count, at most at their arrival time; merges and unmerges do not) is kept in the history, listed as
// superseded, and does not change that purpose.
//
// Erasure (Profiles::Delete) removes the history with the person.
// Thread-safety: all methods from any thread. Errors: InvalidArgument naming the field, NotFound.
class Consent {
 public:
  virtual ~Consent() = default;

  // Records a statement of consent:
  //   {"profileId": id | "identifier": {"type", "value"} (a profile holding it; never creates one),
  //    "purposes": {purpose: "granted" | "denied" | true | false},
  //    "consentMode": {"ad_storage" | "analytics_storage" | "ad_user_data" | "ad_personalization":
  //                    "granted" | "denied"},
  //    "source"?: 1-128 bytes (default "api"), "policyVersion"?: 1-128 bytes,
  //    "timestamp"?: when it was stated (default now; at most 5 minutes ahead)}
  // with at least one purpose in "purposes" or "consentMode". Returns Get's document plus "recordId", "applied"
  // (the purposes it changed or confirmed) and "superseded". A merged id records on its survivor. Cost: one write,
  // a scan of the profile's history.
  virtual Result<Json> Record(const Json& request) = 0;

  // The consent of a profile (a merged id: its survivor's): {"profileId", "purposes": {purpose: {"granted", "at",
  // "source", "policyVersion"?, "via", "mergeId"?, "recordId"}}, "consentMode": {signal: "granted" | "denied"} (the
  // Consent Mode v2 signals stated), "updatedAt", "history": [the last 100 records, the merged profiles' included,
  // oldest recorded first], "historyCount": all records}. History pages through the rest; Gdpr::Export holds them
  // all. NotFound when the profile does not exist. Cost: a scan of the person's history (the state is derived from
  // it).
  virtual Result<Json> Get(std::string_view profile_id) = 0;

  // A page of a profile's consent history (a merged id: its survivor's, the merged profiles' records included),
  // oldest recorded first. `page`: {"limit"?: 1-1000 (default 100), "cursor"?: the previous page's nextCursor}.
  // Returns {"profileId", "items": [records], "nextCursor": string, or null on the last page}. A record recorded
  // after a page was read sorts after it, so paging from the first page lists every record once (unless a merge
  // meanwhile brings in another profile's earlier records). Errors:
  // InvalidArgument naming the parameter (an unknown one, a limit out of range, a cursor not given by this call),
  // NotFound. Cost: a seek and `limit` records per profile (the survivor and each merged one).
  virtual Result<Json> History(std::string_view profile_id, const Json& page) = 0;
};

// Requests of data subjects: access and portability (GDPR articles 15 and 20, CCPA's right to know) and erasure
// (article 17, CCPA's right to delete), each recorded as a request with an id, a status and its turnaround.
//
// Request records: {"id" ("gdpr_..."), "type": "access" | "erasure", "status": "completed" | "failed" | "purging"
// (an erasure written, its physical purge not finished: finished at the next Engine::Open after a crash),
// "receivedAt", "completedAt", "turnaroundMs", "subjectHash" (a keyed hash of the person's profile id: records
// never hold the id, so they outlive an erasure; List finds a person's by id), "error"? {"code"},
// "suppressedIdentifiers"? (erasure: how many identifiers were suppressed)}. Records hold no id or identifier of
// the person, only keyed hashes (pseudonymous: whoever holds the database and its key can test a guess).
//
// Suppression (Options::suppress_erased_identifiers, on by default): an erasure keeps a keyed hash (HMAC-SHA-256
// with a random key stored in the database) of each identifier the person held and of their profile ids. Afterwards
// an event, identify or profile write that would link one of those identifiers to a profile, or create a profile
// under one of those ids, is refused with FailedPrecondition, so data arriving for the erased person does not
// recreate them. Unsuppress lifts it for one (type "profileId" for an id; the person came back).
//
// Thread-safety: all methods from any thread. Errors: InvalidArgument naming the field, NotFound.
class Gdpr {
 public:
  virtual ~Gdpr() = default;

  // Everything held about the person `profile_id` names (a merged id: its survivor), as one JSON document:
  // {"requestId", "generatedAt", "profileId", "profile" (Profiles::Get), "identity" (Identity::Explain: identifiers,
  // links with evidence, merge history), "events" (every event, by event time), "sessions" (Profiles::Sessions),
  // "consent" (Consent::Get: state and history), "segments" ([{"id", "name"}] memberships now), "audit" (the audit
  // entries naming the person or a profile merged into them, newest first; left out for a principal that may not
  // read the audit log)}. The request is recorded (also when it fails). Errors: NotFound. Cost: reads every event
  // of the person.
  virtual Result<Json> Export(std::string_view profile_id) = 0;

  // Erases the person (Profiles::Delete, physical before it returns), suppresses their identifiers (when
  // configured) and records the request: returns its record. Errors: NotFound (recorded as a failed request).
  virtual Result<Json> Erase(std::string_view profile_id) = 0;

  // A request record. Errors: NotFound.
  virtual Result<Json> GetRequest(std::string_view request_id) = 0;
  // Request records, newest first: {"items", "nextCursor", "turnaround": {"completed", "p50Ms", "p90Ms", "maxMs"}
  // over the completed requests the filter selects}. `filter`: {"type"?, "status"?, "profileId"? (a person's
  // requests), "limit"? (1-1000, default 100), "cursor"?}. Errors: InvalidArgument naming the field. Cost: a scan of
  // the request records.
  virtual Result<Json> ListRequests(const Json& filter) = 0;

  // Whether identifier {type, value} (normalized as identity resolution does; "userId" is "customerId", as in
  // events) is suppressed; and lifting it.
  // Unsuppress returns {"type", "value" (normalized), "unsuppressed": bool (false: it was not)}. Errors:
  // InvalidArgument (unknown type, invalid or blocked value).
  virtual Result<bool> IsSuppressed(std::string_view type, std::string_view value) = 0;
  virtual Result<Json> Unsuppress(std::string_view type, std::string_view value) = 0;
};

// The audit log: append-only and hash-chained, one entry per call that reads or changes personal data (Profiles,
// Events, Identity's Identify / Merge / Unmerge / Explain / ApplyRules, fuzzy matching's runs, proposal decisions and
// automatic merges, Consent, Gdpr; segment and audience members, members-at and exports, manual members added or
// removed, suppression list items (counted, not named); changes of governance and retention, and retention runs):
// {"seq", "at", "principal", "operation" (e.g. "profiles.get"), "resource"? (the segment, audience, list, proposal or
// request id), "outcome" ("ok" or the status code), "count"? (items of a batch, members read or exported),
// "recovered"? (true: chained at open after a crash), "v", "targets": [profile ids], "targetsHash", "contentHash",
// "prev", "hash"}. Each entry's hash covers its content and the hash before it (HMAC-SHA-256 under the database's
// key), and the head (last seq, hash and a MAC of both) is kept apart, so altering, deleting, reordering or inserting
// an entry, or cutting the log short (also with its head rewritten from an entry's values, or the whole log and its
// head deleted), is found by Verify; a cut back to an earlier point with that point's genuine head is not (compare
// with an external copy of "head"). An erasure redacts the
// person's entries (their id removed from the targets, "redacted": true, and a MAC of the redaction, so a forged one
// is found; the rest still verifies). Entries written before the MACs existed (no "v") are checked without them.
// Anchor Verify's "head" outside the database to detect a rewrite by someone holding the database's key. Durability:
// once a call has returned, its entry survives the process being killed (the call writes it to a journal file of the
// database directory, chained at the next open; not fsync'ed); a change interrupted before it returned is still
// chained, without targets (its write carries a pending record). Journal lines and pending records carry a MAC
// under the database's key; one that fails it (forged, altered, damaged) is not chained, and one entry
// "audit.recoveryRefused" (outcome data_loss, count) says so. Entries are chained in groups, within 20 ms.
// List is itself an audited read ("audit.list", naming the filter's target when entries name it).
// Thread-safety: all methods from any thread. Cost: a queue push and a journal line (one write(2)) per audited call;
// entries are written in groups.
class Audit {
 public:
  virtual ~Audit() = default;
  // Entries newest first: {"items", "nextCursor" (a seq, or null)}. `filter`: {"principal"?, "operation"?,
  // "target"? (a profile id), "resource"? (a segment or audience id), "since"?, "until"?, "limit"? (1-1000, default
  // 100), "cursor"?}. Errors: InvalidArgument naming the field.
  virtual Result<Json> List(const Json& filter) = 0;
  // Checks the whole chain: {"ok": true, "entries", "redacted", "head"} or {"ok": false, "brokenAt" (seq),
  // "reason"}. Cost: reads every entry.
  virtual Result<Json> Verify() = 0;
};

// Retention: policies that purge old data automatically, each run recorded. See docs/privacy.md, "Retention".
//
// A policy: {"id"?: "ret_..." (assigned when absent), "name": 1-256 bytes, "target": "events" | "profiles",
//   events:   "eventType"?: a type (default any), "eventName"?: a custom event's name, "olderThan": an age,
//   profiles: "inactiveFor": an age (no event and no profile write for that long),
//   "enabled"?: bool (default true)}
// with ages "<n>h", "<n>d", "<n>w" or "<n>y" (365 days), from 1 hour to 100 years.
// Applying them (every Options::retention_interval_seconds on a libcdp thread, and on Run):
//   - events: every event of the type whose event time is before now - olderThan is retired: its index entries
//     are deleted, the computed traits of each profile that lost events are recomputed from the events it keeps,
//     and the segments re-evaluate it; the event log's compaction filter then drops it (reads skip it meanwhile).
//     Written in atomic chunks of at most 10,000 events, each raising the policy's horizon: the next run starts
//     there, retired events stay retired when policies change, and an event older than the horizon of its type
//     is refused by Events::Track and batches (FailedPrecondition, nothing stored);
//   - profiles: every profile whose latest event and latest write are both before now - inactiveFor is erased as
//     by Profiles::Delete (without suppressing its identifiers: the person may come back); one made active again
//     while the run goes (an event, a write) is kept and not counted;
//   - then the purge is made physical as an erasure's is (no file of the directory keeps the purged data).
// Each run is recorded: {"id" ("rrun_..."), "trigger": "schedule" | "manual", "startedAt", "finishedAt", "status":
// "completed" | "failed", "error"?, "policies": [{"id", "name", "target", "cutoff", "eventsPurged" |
// "profilesErased", "profilesAffected"?}], "eventsPurged", "profilesErased"}, and as an audit entry
// "retention.run". Thread-safety: all methods from any thread; one run at a time. Needs "admin" (Runs: "admin" or
// "audit"). Errors: InvalidArgument naming the field ("policies[1].olderThan"), PermissionDenied.
class Retention {
 public:
  virtual ~Retention() = default;
  // {"policies": [...], "intervalSeconds"}.
  virtual Result<Json> Policies() = 0;
  // Replaces the policies ({"policies": [...]}); returns them with their ids. They apply from the next run.
  virtual Result<Json> SetPolicies(const Json& policies) = 0;
  // Applies every enabled policy now and returns the run's record.
  virtual Result<Json> Run() = 0;
  // Run records, newest first: {"items", "nextCursor"}; `filter`: {"limit"? (1-1000, default 100), "cursor"?}.
  virtual Result<Json> Runs(const Json& filter) = 0;
};

// Governance: who may read and write what. See docs/privacy.md, "Governance".
//
// Every call runs for a principal: the one this thread's ScopedPrincipal names ("local" outside any). The policy
// ({"classes", "classification", "roles", "principals"}) says what each may do:
//   classes         public, internal, pii, sensitive, and any the policy adds ([a-z][a-z0-9_-]{0,31}, at most 32)
//   classification  field path -> class. Paths are a profile's ("attributes.customFields.tier", "externalIds.email",
//                   "consent"), an event's under "events." ("events.properties.revenue") and a session summary's
//                   under "sessions.". A path takes the class of its longest classified prefix, defaults included
//                   (Policy() lists them; e.g. attributes pii, attributes.country internal, computed internal,
//                   events internal, events.email pii); an unclassified custom field is pii until classified.
//                   Derived fields (computed.ltv, computed.aov, computed.rfm: from purchases' values) are readable
//                   only with events.properties.revenue, total and value readable too, or granted by name in
//                   readFields.
//   roles           name -> {"read": [classes], "write": [classes], "readFields": [paths], "writeFields": [paths],
//                   "operations": [export | erase | audit | admin], "description"?}. "admin" (built in) may do
//                   everything.
//   principals      name (1-128 of [A-Za-z0-9_.:@-]) -> {"roles": [names], "description"?}. Built in: "local" and
//                   "api-key" (cdp-server's --api-key), both admin.
// Enforcement, for every principal but an admin:
//   - a principal the policy does not define may do nothing (PermissionDenied);
//   - reads (Profiles::Get / Search / Timeline / Sessions, Events::Query, Segments and Audiences Members and Export,
//     Gdpr::Export, Identity::Explain, Consent::Get, the documents writes return) leave out every field the
//     principal may not read; a profile keeps its "id", an event its "id" and "profileId". A search, event query
//     or segment estimate that tests or sorts by an unreadable field, or by an object holding one, is
//     PermissionDenied (field() names it), so values cannot be inferred;
//   - writes (Profiles::Create / Replace / Patch, Events::Track / TrackBatch, Identity::Identify, Consent::Record)
//     naming a field the principal may not write (an event's identifiers: also the "externalIds" path they link;
//     a deleted object: also every classified path below it) are PermissionDenied naming it, and write nothing.
//     Replace also needs write access to every field it would clear;
//   - Consent::Get needs read access to "consent"; Identity::Explain, Merge and Unmerge to "externalIds" (read;
//     write for merges); Gdpr::Export the operation "export"; request records "export" or "erase";
//     Profiles::Delete, Gdpr::Erase and suppression "erase"; Audit "audit"; this interface's changes, Identity's
//     rules and matching settings, segment and audience definitions, retention policies and
//     Events::RememberKey / RecallKey "admin". Reading definitions, sizes and statistics needs a defined principal.
// API keys ("cdpk_" + id + "_" + secret) authenticate a principal (cdp-server maps bearer keys to principals); only
// a SHA-256 of each key's secret is stored; a policy that drops a principal revokes its keys.
// Changes are audited ("governance.setPolicy", ...). Thread-safety: all methods from any thread; a policy change
// applies to calls that start after it returns. Errors: InvalidArgument naming the field, PermissionDenied, NotFound.
class Governance {
 public:
  virtual ~Governance() = default;
  // The effective policy: built-ins and defaults included.
  virtual Result<Json> Policy() = 0;
  // Replaces the policy (as Policy() shows it or only the members to set: absent members take their defaults).
  // Returns the effective policy. Needs "admin".
  virtual Result<Json> SetPolicy(const Json& policy) = 0;
  // What `principal` ("" for this thread's) may do: {"principal", "defined", "roles", "admin", "read", "write",
  // "readFields", "writeFields", "operations"}. Anyone may ask about themself; asking about another needs "admin".
  virtual Result<Json> Access(std::string_view principal) = 0;
  // Issues a key for a defined principal: {"principal", "description"?} -> {"id" ("key_..."), "key" (shown only
  // here), "principal", "description"?, "createdAt"}. Needs "admin".
  virtual Result<Json> CreateApiKey(const Json& request) = 0;
  // The keys, without their secrets: [{"id", "principal", "description"?, "createdAt"}]. Needs "admin".
  virtual Result<Json> ListApiKeys() = 0;
  // Revokes a key. Needs "admin". Errors: NotFound.
  virtual Status RevokeApiKey(std::string_view id) = 0;
  // The principal a key authenticates. Unauthenticated for a malformed, unknown or revoked key. Constant time in
  // the secret. Needs nothing.
  virtual Result<std::string> Authenticate(std::string_view key) = 0;
  // Whether this database has ever issued an API key (revoked or not). cdp-server, which needs a key on every
  // /api/ route, then makes up no key for its run when given none: an issued key (or --api-key) is needed.
  virtual bool KeysIssued() = 0;
};

// The principal that calls made on this thread run for, and audit entries name, while the object lives (default
// "local"). Servers set it per request (cdp-server: the principal of the request's API key). Nested scopes restore
// the outer one.
class ScopedPrincipal {
 public:
  explicit ScopedPrincipal(std::string name);
  ~ScopedPrincipal();
  ScopedPrincipal(const ScopedPrincipal&) = delete;
  ScopedPrincipal& operator=(const ScopedPrincipal&) = delete;
  static const std::string& Current();

 private:
  std::string previous_;
};

}  // namespace cdp

#endif  // CDP_PRIVACY_H_
