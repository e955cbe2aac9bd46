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
// index keys in its own WriteBatch (one Cf::kIndexLog record per write, so a crash loses nothing); Flush writes the
// tail as sorted files (storage::Store::IngestSorted) once Options::index_tail_events have accumulated, at
// Engine::Flush and at close.
//
// Readers see storage and the tail together: ProfileEvents merges the two indexes (an entry may briefly be in
// both), and Delta adds to the stored traits what the tail holds. After a crash, Recover reads the log back; the
// engine then recomputes the traits of the profiles the log names from their events (a delta is not replayed: it
// may already be in storage).
//
// Thread-safety: reads (ProfileEvents, Delta, size) from any thread. Log, Apply and Flush are for the engine's
// write path: one at a time (under its write lock), Flush only once every write it logged has been applied to
// storage.

#ifndef CDP_ENGINE_EVENT_TAIL_H_
#define CDP_ENGINE_EVENT_TAIL_H_

#include <cstdint>
#include <memory>
#include <shared_mutex>
#include <string>
#include <string_view>
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
    std::vector<std::pair<std::string, std::string>> added;    // (profile id, time key) of events now stored
    std::vector<std::pair<std::string, std::string>> removed;  // of events moved or deleted
    // Trait aggregates of added events, per profile (events moved by a merge carry none: the merge moves the
    // stored aggregate).
    absl::flat_hash_map<std::string, storage::Traits> deltas;
    // Profiles whose stored traits the write replaces or deletes: their tail deltas are dropped.
    absl::flat_hash_set<std::string> reset;
    bool empty() const { return added.empty() && removed.empty() && deltas.empty() && reset.empty(); }
  };

  explicit EventTail(storage::Store* store) : store_(store) {}

  // Adds the log record of `changes.added` to `batch` (nothing when there are none). Write path only.
  void Log(const Changes& changes, storage::WriteBatch* batch);
  // Makes `changes` visible to readers. Write path only; call it once the batch is built (before or after it is
  // written: readers skip index entries whose event is not, or no longer, in the log).
  void Apply(Changes&& changes);
  // Writes the tail to storage (kEvents keys, kTraits merge operands), then deletes the log records and empties the
  // tail. Readers wait during the bulk load (tens of milliseconds for 64,000 entries). On error the tail is kept.
  Status Flush();
  // Reads the log left by a crash into the tail (entries whose event is in the log only). `touched` receives the
  // profiles the log names, whose traits the caller must recompute. At open, before any write.
  Status Recover(absl::flat_hash_set<std::string>* touched);

  size_t size() const;  // index entries held
  // Adds the tail's trait aggregate of `profile` to `traits`; false when it holds none.
  bool Delta(std::string_view profile, storage::Traits* traits) const;
  // The time keys the tail holds for `profile` in [lower, upper) (an empty upper: unbounded), ascending.
  std::vector<std::string> TimeKeys(std::string_view profile, std::string_view lower, std::string_view upper) const;

 private:
  struct ProfileTail {
    absl::btree_set<std::string> time_keys;
    storage::Traits delta;
    bool has_delta = false;
  };
  storage::Store* store_;
  mutable std::shared_mutex mu_;
  absl::flat_hash_map<std::string, ProfileTail> profiles_;  // guarded by mu_
  size_t entries_ = 0;                                      // guarded by mu_
  uint64_t next_record_ = 1;                                // write path only
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
