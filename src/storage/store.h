// Copyright 2026 The libcdp Authors.
//
// storage::Store: the only code of libcdp that talks to RocksDB. Everything above it sees column families as an
// enum, keys and values as bytes, and errors as cdp::Status.
//
// Thread-safety: Store is thread-safe. WriteBatch and Iterator are not; use one per thread.

#ifndef CDP_STORAGE_STORE_H_
#define CDP_STORAGE_STORE_H_

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "cdp/options.h"
#include "cdp/status.h"

namespace rocksdb {
class DB;
class WriteBatch;
class Iterator;
class ColumnFamilyHandle;
class Snapshot;
class Slice;
}  // namespace rocksdb

namespace cdp::storage {

// Column families. Key layouts are in storage/keys.h.
enum class Cf : int {
  kMeta = 0,      // format version, exact counters (merge operator: int64 add)
  kProfiles,      // profile id -> stored profile document (JSON)
  kIdentities,    // identifier type \0 normalized value -> profile id \0 evidence \0 time; \x01 key -> hub set
  kEvents,        // profile id \0 be64(event time) event id -> empty (the per-profile index; written in bulk)
  kEventsByTime,  // be64(event time) event id \0 profile id -> event document (JSON): the event log
  kTraits,        // profile id -> computed-trait aggregates (merge operator: see traits.h)
  kMerges,        // "r" merge id -> merge record (JSON); "p" profile id \0 merge id -> empty (history index)
  kIndexLog,      // be64(record) -> kEvents keys a write added that are not yet in kEvents (see engine/event_tail.h)
  kKeys,     // idempotency key -> be64(expiry, µs) value (Events::RememberKey); expired ones dropped by compaction
  kPrivacy,  // "h": consent history; "d": tracking-denied markers; "s": suppressed identifier hashes; "r": privacy
             // requests; "a", "t", "q": the audit log; "gpolicy", "k", "gkeysissued": governance; "gretention", "x":
             // retention (keys.h)
  kCount,
};

class Store;
class BulkLoad;
struct BatchPool;  // store.cc

// A set of writes applied atomically by Store::Write. Its buffer comes from the store's spare batches and goes back
// to them when it is destroyed (up to four spares, each kept only if its last use was under 8 MiB): a batch is built
// in memory that earlier batches grew, without regrowing it or faulting in fresh pages (about 2% of a bulk import's
// calling thread). Not thread-safe; different batches may be used on different threads.
class WriteBatch {
 public:
  explicit WriteBatch(const Store& store);
  ~WriteBatch();
  WriteBatch(const WriteBatch&) = delete;
  WriteBatch& operator=(const WriteBatch&) = delete;

  void Put(Cf cf, std::string_view key, std::string_view value);
  void Delete(Cf cf, std::string_view key);
  void Merge(Cf cf, std::string_view key, std::string_view value);
  // Deletes the keys in [begin, end).
  void DeleteRange(Cf cf, std::string_view begin, std::string_view end);
  size_t Count() const;
  void Clear();

 private:
  friend class Store;
  // Counts the operations of each column family and notes whether they are still in key order (Store::Write sorts
  // only a batch whose operations out of order are many).
  void NoteKey(Cf cf, std::string_view key) {
    const size_t i = static_cast<size_t>(cf);
    ++ops_[i];
    if (out_of_order_[i]) return;
    if (std::string_view(last_key_[i]) > key) {
      out_of_order_[i] = true;
    } else {
      last_key_[i].assign(key);
    }
  }
  // The operations of the column families whose operations are not in key order.
  size_t OpsOutOfOrder() const;

  std::shared_ptr<BatchPool> pool_;  // outlives rep_'s return to it, even past the store
  std::unique_ptr<rocksdb::WriteBatch> rep_;
  const std::vector<rocksdb::ColumnFamilyHandle*>* handles_;
  static constexpr size_t kCfs = static_cast<size_t>(Cf::kCount);
  std::array<std::string, kCfs> last_key_;  // per column family: its last key, while its keys are non-decreasing
  std::array<size_t, kCfs> ops_{};          // per column family: its operations
  std::array<bool, kCfs> out_of_order_{};   // per column family: a key was lower than one before it
  bool ranges_ = false;                     // a DeleteRange (the batch is written as it is)
};

class Iterator {
 public:
  ~Iterator();
  void SeekToFirst();
  void SeekToLast();
  void Seek(std::string_view key);
  void SeekForPrev(std::string_view key);
  bool Valid() const;
  void Next();
  void Prev();
  std::string_view key() const;
  std::string_view value() const;
  Status status() const;

 private:
  friend class Store;
  Iterator(std::string lower, std::string upper);
  // Declared before it_ so that they outlive it: RocksDB reads the bounds for the iterator's whole life.
  std::string lower_, upper_;
  std::unique_ptr<rocksdb::Slice> lower_slice_, upper_slice_;
  std::unique_ptr<rocksdb::Iterator> it_;
};

// Entries written as sorted table files and added to the database in one step, bypassing the write-ahead log and
// the memtables (RocksDB SstFileWriter + IngestExternalFiles). Cost: a sequential file write per run, and at Commit
// an fsync per file and a flush of any memtable whose keys overlap a run's range. Not thread-safe.
class BulkLoad {
 public:
  ~BulkLoad();  // removes the files of an uncommitted load
  // Starts a run of entries for `cf`: puts, or merge operands when `merge`. Ends the previous run.
  Status StartRun(Cf cf, bool merge);
  // Adds an entry to the current run. Keys must be strictly increasing within a run.
  Status Add(std::string_view key, std::string_view value);
  // Adds to the current run the deletion of `key` (as written before the load); keys ordered as Add's.
  Status Delete(std::string_view key);
  // Adds to the current run the deletion of every key in [begin, end) written before the load.
  Status DeleteRange(std::string_view begin, std::string_view end);
  // Ends the last run and flushes the memtables of the load's column families (those with entries). Optional,
  // before Commit: RocksDB flushes a memtable whose keys overlap an ingested file before adding the file, and no
  // write proceeds during that flush (measured: 100-330 ms per index tail flush of a TrackBatch load, against 6 ms
  // after Stage). Stage stops writes only for the memtable switch; it waits while RocksDB itself stops writes (too
  // many L0 files or memtables), until its compactions clear that. After Stage, only what was written since can
  // overlap. Errors: storage errors (nothing is added; the load's files go with the BulkLoad).
  Status Stage();
  // Adds every non-empty run to the database, atomically. The entries are durable when it returns, and newer than
  // every write before the call. Stops writes while the files are added (see Stage).
  Status Commit();

 private:
  friend class Store;
  struct Run;
  explicit BulkLoad(Store* store);
  Status EndRun();
  Store* store_;
  std::vector<std::unique_ptr<Run>> runs_;
};

// A thread's hook into Store::Write: while a ScopedWriteHook is alive on a thread, Store::Write calls its
// BeforeWrite with each batch that thread writes, before writing it (engine/audit_log.h puts the pending record of
// the call's audit entry into the call's first write, so that the record is as durable as the change).
class WriteHook {
 public:
  virtual void BeforeWrite(WriteBatch* batch) = 0;

 protected:
  ~WriteHook() = default;
};

// Installs `hook` on the calling thread for its lifetime (the previous one, if any, is restored after).
class ScopedWriteHook {
 public:
  explicit ScopedWriteHook(WriteHook* hook);
  ~ScopedWriteHook();
  ScopedWriteHook(const ScopedWriteHook&) = delete;
  ScopedWriteHook& operator=(const ScopedWriteHook&) = delete;

 private:
  WriteHook* previous_;
};

// A test seam: while alive, the next `count` calls of Store::Write (or, with kBulkLoads, of BulkLoad::Commit with
// files to add) on the thread that made it (or, with kAnyThread, on any thread: a background writer's) fail with
// Status::Unavailable after the thread's WriteHook ran and before anything is written, as a write RocksDB refused
// would. For tests of what a failed write leaves behind; costs each write one thread-local read and one relaxed
// atomic load. Scopes do not nest across kinds.
class ScopedWriteFailures {
 public:
  enum Scope { kThisThread, kAnyThread };
  enum Target { kWrites, kBulkLoads };
  explicit ScopedWriteFailures(int count, Scope scope = kThisThread, Target target = kWrites);
  ~ScopedWriteFailures();
  ScopedWriteFailures(const ScopedWriteFailures&) = delete;
  ScopedWriteFailures& operator=(const ScopedWriteFailures&) = delete;

 private:
  Scope scope_;
  Target target_;
  int previous_;
};

// A test seam: while alive, the next `count` calls of Store::Write on the thread that made it call `started` (if
// given) and then wait `delay` (after the thread's WriteHook ran, before writing). For tests of what concurrent
// writers see while a write is slow. Costs each write one thread-local read.
class ScopedWriteDelay {
 public:
  ScopedWriteDelay(int count, std::chrono::milliseconds delay, std::function<void()> started = nullptr);
  ~ScopedWriteDelay();
  ScopedWriteDelay(const ScopedWriteDelay&) = delete;
  ScopedWriteDelay& operator=(const ScopedWriteDelay&) = delete;

 private:
  int previous_count_;
  std::chrono::milliseconds previous_delay_;
  std::function<void()> previous_started_;
};

class Store {
 public:
  // Opens or creates the database. Errors as in Engine::Open.
  static Result<std::unique_ptr<Store>> Open(const Options& options, const std::string& path);
  ~Store();

  // NotFound when absent.
  Status Get(Cf cf, std::string_view key, std::string* value) const;
  // Reads many keys of one column family in one call (RocksDB's batched MultiGet, which shares filter and index
  // lookups between the keys: cheaper than a Get each from a few dozen keys). On return (*found)[i] says whether
  // keys[i] exists and (*values)[i] holds its value. Errors: the first read error (the outputs are then
  // unspecified).
  Status MultiGet(Cf cf, const std::vector<std::string>& keys, std::vector<std::string>* values,
                  std::vector<bool>* found) const;

  // Applies the batch atomically, to the write-ahead log first. Returns the batch's last sequence number.
  // The calling thread's WriteHook, if any, may add to the batch first. The log is not fsync'ed here: with
  // Options::sync_writes, call SyncUpTo(sequence) before acknowledging. A batch of 64 operations or more (without
  // a range deletion) is written in key order per column family, each key's operations in their order: the same
  // meaning, and memtable inserts in key order cost less (about 10% of a bulk profile import). Unless fewer than
  // half of its operations are in column families whose keys were added out of order: re-building a batch costs
  // about 1,000 instructions per operation, 3% of an event batch, whose log entries come in key order and whose
  // few identifier links do not. (Interleaved column families cost nothing: each memtable has its own position.)
  Result<uint64_t> Write(WriteBatch* batch);
  // Group commit: returns once the log is durable up to `sequence`. Concurrent callers share fsyncs. Without
  // Options::sync_writes it does nothing.
  Status SyncUpTo(uint64_t sequence);
  // Makes the write-ahead log durable now, whatever Options::sync_writes says: for a write whose effect a
  // compaction filter then acts on (an erasure's or a retention run's drops), so that a power loss cannot keep the
  // filter's work and lose the write that justified it. Cost: one fsync.
  Status SyncWal();

  // An iterator over [lower, upper) of a column family; empty bounds mean unbounded.
  std::unique_ptr<Iterator> NewIterator(Cf cf, std::string lower = {}, std::string upper = {}) const;

  // Exact counters kept in kMeta with an int64-add merge operator.
  void AddToCounter(WriteBatch* batch, std::string_view name, int64_t delta);
  int64_t ReadCounter(std::string_view name) const;

  // A bulk load (see BulkLoad). One at a time per Store is the caller's to ensure.
  std::unique_ptr<BulkLoad> NewBulkLoad();

  Status Flush();
  // Entries in the memtable of `cf` that writes go into now (RocksDB's "rocksdb.num-entries-active-mem-table";
  // deletions count). For tests and diagnostics.
  uint64_t ActiveMemtableEntries(Cf cf) const;

  // Makes the deletions of `batch`, already written, physical: flushes every memtable (so no write-ahead log file
  // still holds the deleted values: RocksDB removes the obsolete ones), then compacts, down to the last level, the
  // key range of every table file that holds a key the batch deletes (or overlaps a range it deletes), so that no
  // SST file keeps the values or the tombstones (whose keys may be data: an identifier), then makes RocksDB start a
  // new MANIFEST (the old one lists the bounding keys of the files it replaced). RocksDB's info log is kept at
  // warning level, so compaction bounds are not written there. Cost: rewrites the files holding deleted keys and
  // the files below them in the same key ranges (for the event log: the files holding the person's events, not
  // the span between their first and last), two compactions at a time. Then waits until the replaced files (and
  // any other table file no longer live, up to the newest live one) are deleted from the directory: an iterator opened
  // before them keeps them until it ends, so a purge waits for long readers (a search over every profile; the segment
  // index build reopens its iterators every 100 ms). Blocks until done. Errors: storage errors (the deletions stay
  // written); Unavailable when a reader keeps a replaced file for 10 minutes (the marker stays, so the next open purges
  // again). `whole`: column families to compact whole as well (their deleted records are not in `batch`).
  // `done_marker`: a kMeta key deleted by the final write, once everything else is done (empty: none).
  // `event_log_keys`: kEventsByTime keys erased by the drop filter instead of tombstones (SetEventLogDrop): after
  // the flush, every table file whose key range holds one of them is rewritten alone, at its own level, through
  // the filter (RewriteEventLogFiles), before the other column families are compacted.
  Status Purge(WriteBatch* batch, const std::vector<Cf>& whole = {}, std::string_view done_marker = {},
               std::vector<std::string> event_log_keys = {});

  // The event log's drop filter. While one is set, every flush and compaction of Cf::kEventsByTime drops, without
  // leaving a tombstone, each entry (key: TimeIndexKey, value: the stored event) `drop` returns true for. Erasure
  // uses it so that a person's events leave the log by rewriting only the table files that hold them, one at a
  // time (a tombstone would have to be compacted down to the last level over the whole span of event time it
  // covers), and retention so that retired events leave without a tombstone each. Only for entries written once
  // and never deleted (the engine decides). An empty function clears it. `drop` is called from RocksDB's flush and
  // compaction threads, for every entry they write; it must be thread-safe and cheap. Thread-safe.
  using EventLogDropFn = std::function<bool(std::string_view key, std::string_view value)>;
  void SetEventLogDrop(EventLogDropFn drop);
  // Rewrites (CompactFiles, same level) each table file of the event log whose key range holds one of `keys`,
  // through the drop filter, until none but rewritten ones is left (a background compaction that began before the
  // filter was set may write such a file meanwhile; a file a compaction holds is waited for). One call at a time.
  // Call after Flush. Cost: the files holding the keys, not the span between them. Errors: storage errors;
  // Unavailable when the files stay in background compactions for 120 s.
  Status RewriteEventLogFiles(std::vector<std::string> keys);
  // Waits until each table file of `files` (numbers) that is no longer live has been deleted from the directory: a
  // reader (an iterator, here or in the segments' index build) keeps the files it started on until it ends. Also
  // until no write-ahead log numbered up to `logs_through` is left (but empty ones): logs a flush retired, which
  // RocksDB deletes after the flush returns (0: none). Unavailable after `limit`.
  Status WaitForReplacedTableFiles(const absl::flat_hash_set<uint64_t>& files, uint64_t logs_through,
                                   std::chrono::seconds limit);
  // The numbers of the files named NNNNNN`extension` (".sst", ".log") in the directory. Unavailable when it cannot be
  // listed.
  Status ListFiles(std::string_view extension, std::vector<uint64_t>* numbers) const;
  const std::string& path() const { return path_; }

  struct EventLogDrop;  // the drop filter's state, shared with the event log's compaction filter factory

 private:
  friend class WriteBatch;
  Store() = default;
  friend class BulkLoad;
  std::string IngestDir() const;  // where bulk loads write their files before they are added
  std::string path_;
  bool sync_writes_ = false;
  std::unique_ptr<rocksdb::DB> db_;
  std::vector<rocksdb::ColumnFamilyHandle*> handles_;
  std::shared_ptr<BatchPool> batch_pool_;  // spare rocksdb::WriteBatch objects (WriteBatch, Write's sorted copies)
  std::mutex sync_mu_;
  std::mutex rewrite_mu_;  // RewriteEventLogFiles, one at a time
  std::shared_ptr<EventLogDrop> event_log_drop_;
  std::atomic<uint64_t> bulk_files_{0};  // names of bulk-load files
  uint64_t synced_sequence_ = 0;         // guarded by sync_mu_
};

}  // namespace cdp::storage

#endif  // CDP_STORAGE_STORE_H_
