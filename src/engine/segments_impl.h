// Copyright 2026 The libcdp Authors.
//
// Segments (include/cdp/engine.h) over the segment index (src/segments/index.h).
//
//   definitions        kMeta "seg/" id -> {"id", "name", "description"?, "rule", "createdAt", "updatedAt"}
//   the change feed    kMeta "segfeed/" id "/" be64(time us) be64(sequence) -> a change document (no cursor)
//
// Profiles are numbered by dense ordinals. The index is built from storage at first use (or by the worker thread
// when the engine opens a database holding segments), then kept in step with writes:
//   1. writers note what they changed (NotifyEvents: new events; NotifyDocument: a changed document; NotifyChanged:
//      reload the profile whole, after a merge, unmerge or erasure), under the write lock, around their write
//      (WriteFailed turns every note into a reload when a noted batch is not written);
//   2. after its write, the writer calls AfterWrite: with mu_ held and writes paused for the moment it takes
//      (every noted batch is then in storage), the noted profiles are applied to the index and every segment
//      their change can affect is re-evaluated for them (segments in dependency order, so that a segment naming
//      another sees its new membership); membership changes go to the feed and to the subscribers' queue;
//   3. the worker thread re-evaluates (segment, profile) pairs when time alone can change them (a min-heap of
//      SegmentIndex::NextChange instants), and calls the subscribers, outside mu_.
// Reads apply pending notes first, so they see every write acknowledged before them.
// While a build runs (building_, up to a minute at open for millions of profiles, mu_ held throughout), writers
// do not wait for it (AfterWrite returns; the build applies their notes before it ends), and neither do erasures
// (EraseFeedEntries deletes what is stored; EndBuild drops what the build recorded about them, never written).
//
// Lock order: subscribers_mu_ (never taken under mu_: Subscribe waits for a delivery batch in another thread),
// then mu_, then the engine's write lock (WithWritesPaused); pending_mu_ and members_mu_ are leaves.

#ifndef CDP_ENGINE_SEGMENTS_IMPL_H_
#define CDP_ENGINE_SEGMENTS_IMPL_H_

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <queue>
#include <shared_mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/container/node_hash_map.h"
#include "cdp/engine.h"
#include "cdp/rfm.h"
#include "cdp/segment_rule.h"
#include "segments/index.h"
#include "storage/traits.h"

namespace cdp::storage {
class WriteBatch;
}

namespace cdp::internal {

class EngineImpl;
class AudiencesImpl;
class Access;

// Tests: while set to 1, a build waits before it records (and sets it to 2 meanwhile); while set to 3, after it
// applied the notes made during it, before it ends (and sets it to 4); 0 releases it.
extern std::atomic<int> g_hold_segment_build_for_testing;

class SegmentsImpl final : public Segments {
 public:
  explicit SegmentsImpl(EngineImpl* engine);
  ~SegmentsImpl() override;

  Result<Json> Create(const Json& definition) override;
  Result<Json> Get(std::string_view id) override;
  Result<Json> List() override;
  Result<Json> Update(std::string_view id, const Json& definition) override;
  Status Delete(std::string_view id) override;
  Result<Page> Members(std::string_view id, size_t limit, std::string_view cursor) override;
  Result<int64_t> Size(std::string_view id) override;
  Result<int64_t> Estimate(const Json& rule) override;
  // Runs `read` over the segment index, built and up to date with every acknowledged write, with mu_ held (the
  // segment upkeep of writers waits meanwhile). For analytics (engine/analytics_impl.h).
  Status WithIndex(const std::function<Status(segments::SegmentIndex&)>& read);
  Result<Json> Changes(std::string_view id, std::string_view since, size_t limit) override;
  Result<bool> WaitForChanges(std::string_view id, std::string_view cursor, int64_t timeout_ms) override;
  Result<std::vector<std::string>> MembersAt(std::string_view id, std::string_view time) override;
  std::vector<std::string> SegmentsOf(std::string_view profile_id) override;
  Result<Json> AddMembers(std::string_view id, const Json& items) override;
  Result<Json> RemoveMembers(std::string_view id, const Json& items) override;
  Result<Json> Overlap(const std::vector<std::string>& ids) override;
  Status Export(std::string_view id, std::string_view format, const std::vector<std::string>& fields,
                const std::function<bool(std::string_view chunk)>& sink) override;
  Result<Json> RfmConfig() override;
  Result<Json> SetRfmConfig(const Json& config) override;
  Result<Json> RecomputeRfm() override;
  Result<uint64_t> Subscribe(ChangeCallback callback) override;

  // The profile's current RFM ({"r", "f", "m", "score", "segment"}), or null. Never waits for a rebuild.
  Json RfmOf(std::string_view profile_id);
  void Unsubscribe(uint64_t handle) override;

  // Reads the stored definitions and starts the worker thread, which builds the index when there are any.
  // Called once by Engine::Open. Errors: DataLoss for a corrupt definition.
  Status Start();
  // Stops the worker thread (joins it). Called by the engine before it closes the store.
  void Stop();

  // Audiences that name segments (Delete refuses to delete those). Set once by the engine.
  void set_audiences(AudiencesImpl* audiences) { audiences_ = audiences; }

  // Whether writers must report the profiles they change (the index exists or is being built). Cheap.
  bool tracking() const { return tracking_.load(std::memory_order_acquire); }
  // Notes profiles to reload whole (document and every event): a merge, unmerge or erasure, whose events moved or
  // went. `cause` is the feed's cause.kind. Called under the write lock; never blocks on a read. Cost at the next
  // refresh: the profile's events.
  void NotifyChanged(std::vector<std::string> profile_ids, std::string_view cause = "profile");
  // Deletes every feed entry naming erased profiles (after AfterWrite recorded their exits, which subscribers
  // received). Adds the deletions to `erased` too (already written: it tells the purge what to compact). Call
  // without the write lock. Takes mu_, except while the index is being built (at open, up to a minute for millions
  // of profiles): then it deletes what is stored without waiting, and the build leaves out of the feed whatever it
  // records naming these profiles (EndBuild), so an erasure never waits for a build. Errors: storage errors.
  Status EraseFeedEntries(const std::vector<std::string>& profile_ids, storage::WriteBatch* erased);
  // Adds to `batch` the deletion of the profile's memberships of manual segments, read from storage (no lock:
  // an erasure's own write takes them out, so the index's upkeep has none left to delete). Errors: storage errors.
  Status EraseManualMemberships(std::string_view profile_id, storage::WriteBatch* batch);
  // Notes profiles whose document changed but whose stored events did not (a profile write or patch, an identify,
  // identity rules): the document is re-read, the events in the index are kept. Cost: the document's size.
  void NotifyDocument(std::vector<std::string> profile_ids, std::string_view cause = "profile");
  // Notes a new event of a profile (time, and its stored document or the part the index keeps: AppendIndexedEvent);
  // its document may be noted changed too.
  struct NewEvent {
    std::string profile_id;
    int64_t time_us;
    std::string document;
    bool purchase = false;        // its trait delta (storage::Traits::AddEvent), so that the profile's traits
    int64_t purchase_micros = 0;  // are brought up to date without a read
  };
  void NotifyEvents(std::vector<NewEvent> events);
  // A batch whose notes were made failed to be written: the notes can no longer be trusted, so every pending
  // note becomes a whole reload (which reads storage). Called before the failed batch releases its write slot.
  void WriteFailed();
  // Applies what was noted and re-evaluates the segments it affects. Called by a writer after its write, with no
  // engine lock held. While the index is being built it returns at once: the builder applies the notes. Errors: storage
  // errors (the notes stay pending, as reloads, and the next call retries); the last one is kept for Stats
  // (last_error()).
  Status AfterWrite();
  // The last error of applying notes or running timers, "" when the last attempt succeeded.
  std::string last_error() const;

 private:
  friend class AudiencesImpl;  // evaluates over the maintained membership, under mu_
  struct Definition {
    Json stored;  // {"id", "name", "description"?, "rule", "createdAt", "updatedAt"}
    SegmentRule rule;
    std::shared_ptr<const segments::PreparedRule> prepared;
    uint32_t slot = 0;       // its number in slots_ (timers name definitions by slot)
    bool reads_rfm = false;  // the rule reads computed.rfm
    bool manual = false;     // a static list: members are manual_members (live ones), the rule is unused
    segments::Bitmap manual_members;
    segments::Bitmap members;  // maintained membership (written under mu_ and members_mu_)
    std::string last_cursor;   // its latest feed entry's cursor ("" when none)
  };
  struct Pending {
    enum Kind : uint8_t { kEvents, kDocument, kReload };
    Kind kind = kEvents;  // what to re-read: nothing but `events`, the document too, or everything
    std::string cause;
    std::vector<std::pair<int64_t, std::string>> events;  // time, event document (NewEvent::document)
    storage::Traits delta;                                // of those events
    // With kReload, the documents of (at most kMaxLabelled) events noted: the reload reads the events themselves,
    // these only name them in the feed's cause.events.
    std::vector<std::string> labelled;
    static constexpr size_t kMaxLabelled = 16;
  };
  struct Timer {
    int64_t at;
    uint32_t slot;
    uint32_t ordinal;
    bool operator>(const Timer& o) const { return at > o.at; }
  };
  // A membership change being recorded.
  struct Change {
    Definition* def;
    uint32_t ordinal;
    bool entered;
    Json cause;
  };

  // Keeps s as last_error() ("" when ok) and returns it.
  Status Noted(Status s);
  // Reads the definitions once. mu_ held.
  Status LoadDefinitions();
  // Builds the index at first use, then applies the notes made since (with writes paused). mu_ held.
  Status Refresh();
  // Applies the notes made since the last call to the index and records the changes. mu_ held; the index exists.
  Status ApplyNotes();
  // Ends a build (after its first ApplyNotes, or its failure): writers wait for mu_ again. `erased` receives the
  // profiles erased during the build. Returns whether notes were made meanwhile whose writers did not wait for the
  // build (AfterWrite): the caller applies them, then calls DropFromFeed. mu_ held.
  bool EndBuild(absl::flat_hash_set<std::string>* erased);
  // Drops from the unwritten feed every entry naming `erased` (their exits still reach subscribers, as the
  // erasure's), sets the segments' latest cursors again, and lets the feed be written. mu_ held.
  void DropFromFeed(const absl::flat_hash_set<std::string>& erased);
  // The cursor of segment `id`'s latest feed entry, unwritten or stored ("" for none). mu_ held.
  Result<std::string> LatestCursor(const std::string& id);
  Status Build();
  // After a build, or a definition's creation or update: sets its membership from a full evaluation, notes the
  // difference from `before` with `cause`, and schedules its timers. mu_ held.
  void Establish(Definition* d, const segments::Bitmap& before, std::string_view cause, int64_t now,
                 std::vector<Change>* changes);
  // The membership the feed records for `id`, as ordinals (profiles unknown to the index get new ordinals).
  // Also returns the feed's last cursor. mu_ held.
  Status FoldFeed(std::string_view id, int64_t upto_us, segments::Bitmap* members, std::vector<std::string>* ids,
                  std::string* last_cursor);
  // Re-reads one profile (document and events) into the index. mu_ held, writes paused.
  Status Reload(const std::string& profile_id);
  // Puts a profile's rendered document in the index and remembers its traits (traits_).
  Status UpsertDocument(uint32_t ordinal, const Json& stored, const storage::Traits& traits);
  void RememberTraits(uint32_t ordinal, const storage::Traits& traits);
  // Whether the rendered trait `key` (RenderTraits) differs between two aggregates.
  static bool TraitChanged(std::string_view key, const storage::Traits& a, const storage::Traits& b);
  // Re-evaluates, for one profile, the segments `affects` selects, cascading to segments that name one whose
  // membership changed. mu_ held.
  void Reevaluate(uint32_t ordinal, const std::function<bool(const Definition&)>& affects, const Json& cause,
                  int64_t now, std::vector<Change>* changes);
  // Evaluates d for one profile and notes a change. Returns whether membership changed. mu_ held.
  // `exists`: whether the profile is in the index (its universe).
  bool EvaluateFor(Definition* d, uint32_t ordinal, bool exists, int64_t now, const Json& cause,
                   std::vector<Change>* changes);
  void Schedule(Definition* d, uint32_t ordinal, int64_t now);
  // Re-evaluates every timer due at `now`. mu_ held.
  void RunDueTimers(int64_t now, std::vector<Change>* changes);
  // Adds changes to the feed (unwritten_, written by the worker or the next read) and queues them for
  // subscribers. mu_ held.
  Status Record(std::vector<Change>* changes, int64_t now);
  // Writes unwritten_ to storage. mu_ held.
  Status WriteFeed();
  // Topological order of definitions_ (named segments first); after any definition change. mu_ held.
  void Reorder();
  // By slot: whether the definition reads events of this type (and custom name). Cached until Reorder (the
  // reference stays valid until then). mu_ held.
  const std::vector<bool>& ReadersOf(const std::string& type, const std::string& name);
  // By slot: whether the definition reads the profile field at `path` (ReadsField). Cached until Reorder.
  const std::vector<bool>& FieldReadersOf(const std::string& path);
  segments::MembershipLookup Lookup() const;
  uint32_t OrdinalOf(const std::string& profile_id);
  // Validates a definition ("name", "description", "rule"), its segment references and cycles. mu_ held.
  Result<SegmentRule> ParseDefinition(const Json& definition, std::string_view self, Json* normalized);
  Result<Definition*> Find(std::string_view id);
  // Changes without its audit entry.
  Result<Json> ReadChanges(std::string_view id, std::string_view since, size_t limit);
  // PermissionDenied (naming the field) unless `access` may read every field the segment's rule tests, and those
  // of the segments it names, transitively: its definition, size, members and feed tell who matches those tests
  // (docs/privacy.md, "Segments and audiences"). A manual segment tests nothing. mu_ or members_mu_ held.
  Status CheckReadable(const Definition& d, const Access& access) const;
  // A page of member profiles of `members` (Members' paging). mu_ held.
  Result<Page> PageOf(const segments::Bitmap& members, size_t limit, std::string_view cursor);
  // The profile ids of ordinals. mu_ held.
  std::vector<std::string> IdsOf(const segments::Bitmap& members) const;
  // Export's checks; fills the default fields. Then the export of given profiles (no lock needed), recorded as
  // audit entries `operation` naming `resource` (the segment or audience): one per chunk the sink took, its rows'
  // profiles as targets (kMaxAuditTargets an entry, RecordInParts) and their number as count, appended as the
  // export goes; a failure or an export without rows is one entry. A chunk the sink refused read nothing out (a
  // server checks an export so before it streams).
  static Status CheckExport(std::string_view format, std::vector<std::string>* fields);
  Status ExportProfiles(const std::vector<std::string>& members, std::string_view format,
                        const std::vector<std::string>& fields, const std::function<bool(std::string_view chunk)>& sink,
                        std::string_view operation, std::string_view resource);
  // The export itself (ExportProfiles without its audit entry); `exported` receives the profiles of the rows handed
  // to the sink.
  Status WriteExport(const std::vector<std::string>& members, std::string_view format,
                     const std::vector<std::string>& fields, const std::function<bool(std::string_view chunk)>& sink,
                     std::vector<std::string>* exported);
  // Adds (add) or removes profiles of a manual segment. mu_ held.
  Result<Json> ChangeManualAudited(std::string_view id, const Json& items, bool add);
  // `touched`: the profiles added or removed (for the audit entry).
  Result<Json> ChangeManual(std::string_view id, const Json& items, bool add, std::vector<std::string>* touched);
  // Reads the members of every manual segment. mu_ held; the index exists.
  Status LoadManualMembers();
  // Scores every profile's RFM at `now`, writes computed.rfm into the index where it changed, and (with `changes`)
  // re-evaluates the segments that read it. Returns {"at", "scored", "changed"}. mu_ held; the index exists.
  Json ScoreRfmNow(int64_t now, std::vector<Change>* changes);
  // Sets the fields derived from d->rule (prepared, reads_rfm). mu_ held; the index exists.
  void Bind(Definition* d);
  Status StoreDefinition(const Json& stored);
  Json WithSize(const Definition& d) const;
  // Reads {"event", "revenuePath", "window"} (any subset) into *options. Errors: InvalidArgument naming the member.
  static Status ParseRfmConfig(const Json& config, RfmOptions* options);
  static Json RfmConfigJson(const RfmOptions& options);
  static constexpr char kRfmConfigKey[] = "rfm_config";

  // The cursor of the first instant of `time_us` (feed keys order by time, then sequence).
  static std::string CursorOfTime(int64_t time_us);
  void WorkerLoop();
  // Calls the subscribers with `changes`, in order. Not with mu_ held.
  void Deliver(const std::deque<Json>& changes);

  EngineImpl* engine_;
  AudiencesImpl* audiences_ = nullptr;
  std::mutex mu_;  // everything below but the pending notes, the subscribers and what says otherwise
  std::unique_ptr<segments::SegmentIndex> index_;
  // By ordinal: the computed traits the index holds for the profile (event_count < 0: not known), so that new
  // events update them from their deltas (no storage read) and only the traits that changed are rewritten.
  std::vector<storage::Traits> traits_;
  absl::flat_hash_map<std::string, uint32_t> ordinal_of_;
  std::vector<std::string> id_of_;
  std::map<std::string, Definition> definitions_;  // by id
  std::vector<Definition*> order_;                 // named segments before those naming them
  std::vector<Definition*> slots_;                 // slot -> definition; null once deleted or replaced
  // ReadersOf's and FieldReadersOf's caches; node maps, as callers hold pointers to several entries at once.
  absl::node_hash_map<std::string, std::vector<bool>> readers_;
  absl::node_hash_map<std::string, std::vector<bool>> field_readers_;
  bool loaded_ = false;                             // definitions_ read from storage
  RfmOptions rfm_options_;                          // kMeta "rfm_config"
  absl::flat_hash_map<uint32_t, RfmScore> rfm_;     // by ordinal; written under mu_ and members_mu_
  std::chrono::steady_clock::time_point next_rfm_;  // the worker's next recomputation

  // Timers: a min-heap with stale entries (skipped when scheduled_ holds another time for the pair).
  std::priority_queue<Timer, std::vector<Timer>, std::greater<Timer>> timers_;
  absl::flat_hash_map<uint64_t, int64_t> scheduled_;  // slot << 32 | ordinal -> instant

  // The feed.
  uint64_t next_sequence_ = 1;
  int64_t last_time_ = 0;                                       // feed times never go back
  std::deque<Json> deliveries_;                                 // only while there are subscribers
  std::vector<std::pair<std::string, std::string>> unwritten_;  // feed entries not in storage yet
  static constexpr size_t kMaxUnwritten = 10'000;  // written by the recording thread beyond this (not in a build)
  bool feed_held_ = false;  // from a build's start to its DropFromFeed: nothing of unwritten_ is written
  static constexpr std::chrono::milliseconds kFeedDelay{20};  // the worker writes a group this long after its first
  std::chrono::steady_clock::time_point unwritten_since_;
  std::condition_variable cv_;  // with mu_: new timers, deliveries, feed entries, stop
  int waiters_ = 0;             // WaitForChanges calls waiting on cv_
  bool stop_ = false;
  std::thread worker_;

  std::recursive_mutex subscribers_mu_;  // held while callbacks run (a callback may subscribe)
  struct Subscriber {
    ChangeCallback callback;
    std::string principal;  // the subscribing thread's: deliveries run, are filtered and are audited as it
  };
  std::map<uint64_t, Subscriber> subscribers_;
  uint64_t next_handle_ = 1;
  std::atomic<int> subscriber_count_{0};
  std::thread::id delivering_thread_;
  absl::flat_hash_set<uint64_t> unsubscribed_during_delivery_;

  mutable std::shared_mutex members_mu_;  // Definition::members and slots_ against SegmentsOf

  std::atomic<bool> tracking_{false};
  // From the start of a build to its EndBuild; written with pending_mu_ held. While it is set, AfterWrite leaves
  // its notes to the builder and EraseFeedEntries does not wait for mu_.
  std::atomic<bool> building_{false};
  mutable std::mutex pending_mu_;
  absl::flat_hash_set<std::string> erased_while_building_;  // guarded by pending_mu_
  absl::flat_hash_map<std::string, Pending> pending_;       // guarded by pending_mu_
  std::string last_error_;                                  // guarded by pending_mu_
};

}  // namespace cdp::internal

#endif  // CDP_ENGINE_SEGMENTS_IMPL_H_
