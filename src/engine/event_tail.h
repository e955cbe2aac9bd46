// Copyright 2026 The libcdp Authors.
//
// EventTail: the per-profile index entries and computed-trait aggregates of recent event writes, held in memory
// until they are written to storage in bulk.
//
// Why. Events are stored once, in the event log (Cf::kEventsByTime), keyed by event time: an event's insert lands
// right after the previous one in RocksDB's memtable, like the raw baseline's. The per-profile index (Cf::kEvents:
// profile id \0 time key) and the trait aggregates (Cf::kTraits) are keyed by profile, so their inserts land all over
// the memtable's skip list, and on this 2-core machine each such insert cost more than the rest of the write
// (measured: one log insert per event 411,000 events/s; plus a profile-keyed insert 155,000 /s; plus the same keys
// as bulk-loaded sorted files 310,000 /s). So a write adds its events' index keys and trait deltas here, and logs the
// index keys in its own WriteBatch (one Cf::kIndexLog record per write, so a crash loses nothing). Once
// Options::index_tail_events have accumulated, FlushInBackground freezes the tail and a background thread writes
// it as sorted files (storage::BulkLoad) while writes go on into a fresh tail; Flush (Engine::Flush, deleting a
// profile, close) writes everything before it returns.
//
// Readers see storage and the tail together: ProfileEvents merges the two indexes (an entry may briefly be in
// both), and Traits adds to the stored traits what the tail holds. After a crash, Recover reads the log back (the
// index entries, and the trait deltas of new events from their documents).
//
// Thread-safety: reads (ProfileEvents, Traits, size) from any thread. Log, FlushInBackground and Flush are for the
// engine's write path: one at a time (under its write lock); the flushes only once every write logged has been
// applied to storage and to the tail. Apply takes the tail's own lock: the engine applies a batch in flight from a
// helper thread or after its write, concurrently with other batches' Log and Apply, but only changes that remove
// or reset nothing (those may wait for the background flush; the engine applies them under its write lock, with no
// batch in flight). The background writer takes no engine lock.

#ifndef CDP_ENGINE_EVENT_TAIL_H_
#define CDP_ENGINE_EVENT_TAIL_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "absl/container/btree_set.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "cdp/status.h"
#include "storage/store.h"
#include "storage/traits.h"

namespace cdp::internal {

class EventTail {
 public:
  // What one write changes in the index and the traits. Apply takes them in this order: removed, reset, added.
  struct Changes {
    std::vector<std::pair<std::string, std::string>> added;  // (profile id, time key) of events now stored
    // Per entry of `added` (missing: false): the event is new, its traits are in `deltas` (not moved by a merge).
    std::vector<bool> counted;
    std::vector<std::pair<std::string, std::string>> removed;  // of events moved or deleted
    // Trait aggregates of added events, per profile (events moved by a merge carry none: the merge moves the
    // stored aggregate).
    absl::flat_hash_map<std::string, storage::Traits> deltas;
    // Profiles whose stored traits the write replaces or deletes: their tail deltas are dropped.
    absl::flat_hash_set<std::string> reset;
    // Events the write adds to the database (new events, including those a merge of the same write moved on): the
    // log record carries the number, and EventCount counts it until a flush adds it to the stored total.
    int64_t new_events = 0;
    bool empty() const { return added.empty() && removed.empty() && deltas.empty() && reset.empty(); }
    void Add(std::string profile, std::string time_key, bool counts) {
      counted.resize(added.size(), false);
      added.emplace_back(std::move(profile), std::move(time_key));
      counted.push_back(counts);
    }
    // Takes back an entry of `added` (an event moved on by a later merge of the same write). O(added).
    void RemoveAdded(std::string_view profile, std::string_view time_key) {
      counted.resize(added.size(), false);
      for (size_t i = 0; i < added.size(); ++i) {
        if (added[i].first == profile && added[i].second == time_key) {
          added.erase(added.begin() + static_cast<ptrdiff_t>(i));
          counted.erase(counted.begin() + static_cast<ptrdiff_t>(i));
          return;
        }
      }
    }
  };

  explicit EventTail(storage::Store* store) : store_(store) {}
  ~EventTail();  // waits for a background flush
  EventTail(const EventTail&) = delete;
  EventTail& operator=(const EventTail&) = delete;

  // Adds the log record of `changes.added` to `batch` (nothing when there are none). Write path only.
  void Log(const Changes& changes, storage::WriteBatch* batch);
  // Makes `changes` visible to readers. Call it once the batch is built (before or after it is written: readers skip
  // index entries whose event is not, or no longer, in the log). Waits for a background flush first when the
  // changes remove or reset entries it is writing: such changes on the write path only, one at a time; changes
  // that only add may come from any thread (see the class comment).
  void Apply(Changes&& changes);
  // Freezes the tail and writes it in the background (kEvents keys, kTraits merge operands; then the log records
  // are deleted); returns at once, after waiting for the previous background flush. Readers of the frozen part
  // wait only while the files are added (milliseconds). Returns the error of the previous background flush, if
  // any (its entries then stay readable, and its log is read again at the next open).
  Status FlushInBackground();
  // Writes the whole tail to storage before it returns (waiting for a background flush first).
  Status Flush();
  // Waits for a background flush. Write path; before a write that replaces, deletes or moves stored traits (a
  // merge, an unmerge), so that no bulk load lands after it.
  void WaitForBackground();
  // Reads the log left by a crash back into the tail: the entries whose event is still in the event log, the
  // trait deltas of the new ones (read from their documents by `traits_of`) and the records' event counts. At open,
  // before any write.
  // A flush deletes the log records in the same atomic bulk load that writes their entries and deltas, so none is
  // counted twice; a write that replaces stored traits (an unmerge) flushes the tail first.
  Status Recover(const std::function<Status(std::string_view document, int64_t time_us, storage::Traits*)>& traits_of);

  size_t size() const;  // index entries held in the part being filled
  // The events the tail's writes have added: the stored total of flushed parts (a kTraits entry under a key no
  // profile id can have, bulk-loaded with the part it counts) plus the parts in memory, read at one moment. Events
  // deleted since are not subtracted here (their deletion subtracts from the `events` counter). One point read.
  int64_t EventCount() const;
  // The computed-trait aggregate of `profile`: storage's plus the tail's, read at one moment (a bulk load is never
  // half seen).
  storage::Traits Traits(std::string_view profile) const;

 private:
  struct ProfileTail {
    absl::btree_set<std::string> time_keys;
    storage::Traits delta;
    bool has_delta = false;
  };
  using Map = absl::flat_hash_map<std::string, ProfileTail>;
  friend class ProfileEvents;
  // The time keys held for `profile` in [lower, upper) (an empty upper: unbounded), ascending. mu_ held (shared).
  std::vector<std::string> TimeKeysLocked(const std::string& profile, std::string_view lower,
                                          std::string_view upper) const;
  // Writes `map` to storage and deletes the log records before `upto`; clears frozen_ on success.
  Status WriteOut(const Map& map, uint64_t upto, bool frozen);

  storage::Store* store_;
  mutable std::shared_mutex mu_;
  Map profiles_;                       // the part being filled; guarded by mu_
  std::shared_ptr<const Map> frozen_;  // the part being written in the background, or null; guarded by mu_
  size_t entries_ = 0;                 // in profiles_; guarded by mu_
  int64_t new_events_ = 0;             // Changes::new_events of the writes in profiles_; guarded by mu_
  int64_t frozen_new_events_ = 0;      // the same for frozen_, until its load commits; guarded by mu_
  uint64_t next_record_ = 1;           // write path only
  uint64_t frozen_upto_ = 0;           // the log records frozen_ covers are those before it; write path only
  std::thread background_;             // write path only
  Status background_status_;           // written by the background thread, read after joining it
};

// One profile's events in time order, from the per-profile index in storage merged with the tail: their time keys
// (be64 event time, event id), and their documents from the event log. Entries whose event is gone from the log
// (moved or deleted since the index was read) are skipped by Read, which reports NotFound for them.
class ProfileEvents {
 public:
  // Time keys in [lower, upper) (empty: unbounded), ascending, or descending with `descending`.
  ProfileEvents(const storage::Store& store, const EventTail& tail, std::string_view profile_id,
                std::string_view lower = {}, std::string_view upper = {}, bool descending = false);
  bool Valid() const;
  void Next();
  std::string_view time_key() const;
  int64_t time_us() const;
  // The current event's stored document. NotFound when it is no longer in the log.
  Status Read(std::string* document) const;
  Status status() const { return iter_->status(); }

 private:
  bool Before(std::string_view a, std::string_view b) const { return descending_ ? a > b : a < b; }
  void Settle();  // picks the current key

  const storage::Store& store_;
  std::string profile_id_;
  std::string prefix_;
  bool descending_;
  std::unique_ptr<storage::Iterator> iter_;
  std::vector<std::string> tail_;  // in iteration order
  size_t tail_pos_ = 0;
  std::string current_;
  bool valid_ = false;
};

}  // namespace cdp::internal

#endif  // CDP_ENGINE_EVENT_TAIL_H_
