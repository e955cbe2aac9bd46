// Copyright 2026 The libcdp Authors.
//
// The audit log (include/cdp/privacy.h, Audit): an append-only, hash-chained list of what was done to personal
// data, by whom, when and with what outcome.
//
// Storage (Cf::kPrivacy): "a" be64(seq) -> entry JSON; "t" target \0 be64(seq) -> "" (entries by target, for
// redaction at erasure and Audit::List's target filter); "q" be64(ticket) -> a pending record; kMeta "audit_head"
// -> be64(seq of the last entry) + its hash (truncation shows).
//
// The target index is not written with its entries: an entry of a batch call names up to thousands of profiles, and
// a memtable insert per name cost the writer more than the entry (a profile found up to half of all CPU samples in
// the writer's inserts). The keys of entries after kMeta "audit_index_through" (a seq) are held in memory, sorted,
// and written out as one sorted file (storage::BulkLoad, with the new "audit_index_through" in the same atomic
// load) once index_held_limit_ of them are held. Load rebuilds the held keys from the entries after that seq (an
// entry lists its targets), so a crash loses none; readers merge the held keys with the stored ones. A database
// whose marker is absent wrote every key with its entry: its marker is taken as the head.
//
// Durability: entries are chained by a thread of the log, in groups, and held in memory until kHeldCalls of them
// are, or a Flush (Audit::List and Verify, an erasure, close) asks for them: then they are written at once, as one
// write or (from kBulkFrom) one bulk load.
// (Written group by group, the entries' writes stalled the callers' own: a writer that found the log's write in
// RocksDB's queue waited for it, and a single Track spent more time so than in its own write.) Append writes the
// whole call (principal, operation, targets, outcome, count, resource, time) as a line of the journal, a file of
// the database directory (`cdp-audit/journal-<generation>`), with one write(2) before it returns, so it survives
// the process being killed (not fsync'ed: a power loss can lose the last lines, as it can the WAL's last writes
// without Options::sync_writes). A change call (AuditedChange, engine/audited.h) also puts a pending record
// {"principal","operation","at"} into its own first write, so that a crash between its write and its return (no
// line yet) cannot lose it either; its line names the record ("pending": ticket). A call that knows before its
// write what its entry will name (a Track: the event's profile) puts a complete record, with targets and count, and
// writes no line when it ends as it said (outcome OK). The journal and the pending
// records hold every call whose entry is not written yet: when the writer writes the held entries it starts a new
// journal, and writes the entries (deleting their pending records) with kMeta "audit_journal_done" = the old
// journal's generation, then deletes that file. Load chains, in time order, with
// "recovered": true, the lines of journals above that generation (a line naming a pending record completes it)
// and the pending records no line names (outcome "ok"; no targets or count unless the record is complete), then
// deletes the journals. Journal lines and pending records carry an HMAC under the database's key ("<json>\t<hex
// mac>"; a record's covers its key too): one that fails it (forged, altered, or written before 2026-11-30,
// night) is not chained; the recovery chains instead one entry {"principal": "local", "operation":
// "audit.recoveryRefused", "outcome": "data_loss", "count": how many}, and deletes the refused records with it.
// So no call is lost or chained twice, and a journal holds only calls whose entries are not written. An erasure
// writes everything queued and held before and after its own write (Redact redacts held entries too), so no line or
// pending record of a call that returned by then names the person; for kErasedWindowUs after it, changes put no
// complete record and every group is written (the lines of calls that raced it go within kReadDelayMs); its purge
// compacts the pending records' range; and Load leaves out of a recovered call the profiles that are gone.
//
// Entry: {"seq", "at", "principal", "operation", "resource"?, "outcome" ("ok" or a status code name), "count"?,
// "recovered"?, "v": 2, "targets": [ids], "targetsHash", "contentHash", "prev", "hash"}.
//   targetsHash = HMAC(key, targets joined by \n)           (keyed: the ids cannot be guessed back from it)
//   contentHash = SHA-256 of {"seq","at","principal","operation","resource"?,"outcome","count"?,"recovered"?,
//                 "targetsHash","v"} as compact JSON
//   hash        = HMAC(key, "chain\n" + prev + contentHash), prev being the previous entry's hash ("" for the first)
// An erasure redacts the person's entries: the erased ids are removed from their targets ("redacted": true, and
// "redactionMac" = HMAC(key, "redacted\n" seq \n contentHash \n the targets left)); targetsHash stays, so every
// other field, the order and the chain still verify, and a redaction cannot be forged without the key.
// The head (kMeta "audit_head") is be64(seq) + hash + HMAC(key, "head\n" seq \n hash), so cutting the log short
// needs the key too. Entries without "v" (written before 2026-11-30, evening) and their heads carry no MACs:
// Verify checks those only where present.

#ifndef CDP_ENGINE_AUDIT_LOG_H_
#define CDP_ENGINE_AUDIT_LOG_H_

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/container/btree_set.h"
#include "absl/container/flat_hash_map.h"
#include "cdp/json.h"
#include "cdp/status.h"
#include "storage/store.h"

struct evp_md_st;

namespace cdp::internal {

class AuditLog {
 public:
  // `keyed_hash` gives the targets' keyed hash (hex).
  AuditLog(storage::Store* store, std::function<std::string(std::string_view)> keyed_hash);
  ~AuditLog();  // writes what is queued, stops the writer

  // Reads the head, chains the pending records and journal lines a crash left (see Durability above), opens a new
  // journal and starts the writer thread. Called once at open, before any write.
  Status Load();

  // Appends an entry (thread-safe). `count`: items of a batch call (0: none). Calls are queued in order and chained
  // in groups by a thread of the log, so a call pays a queue push and, unless its pending record is complete, a
  // journal line (one write(2), about a microsecond). Entries of reads and of changes with a pending record are
  // chained within kReadDelayMs or once kGroup are queued; the entry of a change without one (a refusal, a call that
  // wrote nothing) wakes the writer to chain it at once. Chained entries are written once kHeldCalls (or
  // kHeldBytes) are held, or at a Flush (see Durability above).
  static constexpr size_t kGroup = 256;
  static constexpr int kReadDelayMs = 20;
  static constexpr size_t kHeldCalls = 16384;      // about 10 MB of a Track's entries
  static constexpr size_t kHeldBytes = 16u << 20;  // or this much, whichever comes first (batch calls' entries)
  // Held entries from this many on are written as a bulk load (storage::BulkLoad: a file added to the database,
  // stopping other writes for milliseconds), fewer in one ordinary write. As an ordinary write the entries of 4,096
  // calls took RocksDB's write queue for 10-20 ms, and a Track that came meanwhile waited for all of it.
  static constexpr size_t kBulkFrom = 1024;
  // `resource`: what else the call named (a segment or audience id), or empty. `pending_key`: the key of the call's
  // pending record (AddPending), deleted with the entry's write; empty when the call wrote none.
  // `record_complete`: the pending record already holds the whole call (AddPending with these targets and count,
  // outcome OK, no resource), so no journal line is written: the record alone recovers it.
  Status Append(std::string_view principal, std::string_view operation, const std::vector<std::string>& targets,
                const Status& outcome, int64_t count = 0, bool read = false, std::string_view resource = {},
                std::string pending_key = {}, bool record_complete = false);

  // Puts a pending record for a call of `principal` doing `operation` into `batch`, and returns its key. With
  // `targets`, the record also holds them and `count` (the entry of the call should it succeed, see Append).
  std::string AddPending(storage::WriteBatch* batch, std::string_view principal, std::string_view operation,
                         const std::vector<std::string>* targets = nullptr, int64_t count = 0);
  // Whether a change may put a complete pending record (AddPending with targets): not within kErasedWindowUs of an
  // erasure's Redact, so that no record naming the erased person is written after it (such calls write their
  // journal line, which the next write of the held entries deletes, as in that window every group is written).
  bool complete_records_allowed() const;
  // Waits until everything queued is chained and written: one write of the entries held, or from kBulkFrom of them
  // a bulk load (a flush of the privacy and meta memtables, then the files added).
  Status Flush();

  // Adds to `batch` the redaction of every entry naming one of `targets` (their targets removed) and the deletion of
  // their index keys (after a Flush). Entries chained in the next kErasedWindowUs (calls on the person that were
  // still running, e.g. a batch whose write landed before the erasure) are chained without those targets and
  // marked "redacted" too; the ids are kept in memory only, for that window.
  // `undo`, when given, receives what Redact changed in memory (below), also when it fails partway, for
  // CancelRedaction.
  struct Redaction {
    std::vector<std::string> targets;
    std::vector<std::pair<std::string, std::optional<int64_t>>> marks;  // erased_recently_ before, per target
    std::optional<int64_t> erasure_until_us;                            // erasure_until_us_ before, once set
    std::vector<std::string> index_keys;                                // held target index keys it dropped
    struct Entry {
      uint64_t seq;
      std::string value;  // before
      std::vector<std::string> targets;
      std::string redacted;  // after: restored only while the held entry is still this one
    };
    std::vector<Entry> entries;  // held entries it redacted
  };
  Status Redact(storage::WriteBatch* batch, const std::vector<std::string>& targets, Redaction* undo = nullptr);
  // After the write that carried a Redact's batch failed, or the Redact itself (the person was not erased): puts
  // back what the Redact changed in memory. The held entries it redacted that are still held get their targets
  // back, the held index keys it dropped return (written out at once if the index was written out meanwhile, so
  // that a reopen keeps them), the ids' erased marks and the erasure window are as before. Not put back: entries of
  // calls on the ids chained between the Redact and this (chained redacted), and entries it redacted that the
  // writer wrote meanwhile (written redacted, without their index keys for the ids).
  void CancelRedaction(Redaction undo);

  // Audit::List and Audit::Verify (after a Flush).
  Result<Json> List(const Json& filter);
  Result<Json> Verify();

  // Entries whose write failed since open (the calls they recorded had already happened), and journal lines that
  // could not be written (those entries are chained all the same, unless the process dies first).
  int64_t append_errors() const;

  // How many target index keys are held in memory before they are written out (see Storage above). Default:
  // kIndexHeld. For tests: a small limit makes every few groups write a file.
  static constexpr size_t kIndexHeld = 65536;
  void set_index_held_limit(size_t limit);
  // For tests: how many chained entries are held (not written yet); and Redact without its Flush first, so that
  // entries chained since the last Flush are still held when it runs (the race CancelRedaction's restore of held
  // entries is for: calls chained between an erasure's Flush and its Redact).
  size_t held_entries() const;
  void set_redact_flushes(bool flushes) { redact_flushes_ = flushes; }

  // One call queued for its entry.
  struct Call {
    std::string principal, operation, outcome, resource;
    std::vector<std::string> targets;
    int64_t count = 0;
    int64_t at_us = 0;
    std::string pending_key;                // deleted with the entry's write
    std::vector<std::string> refused_keys;  // pending records refused at recovery, deleted with it too
    bool recovered = false;                 // chained at open from a pending record
  };
  // A journal line: the call as compact JSON, a tab, and HMAC(key, "journal\n" + the JSON) in hex.
  std::string JournalLine(const Call& call) const;
  // The JSON of a line or pending record `text` ("<json>\t<mac>") when its MAC under `domain` holds; else empty.
  std::string_view Authentic(std::string_view domain, std::string_view text) const;

 private:
  // At Load (mu_ held): the calls of the pending records left, then those of the journals above the chained
  // generation (a change's line completing its pending record), chained in time order; then a new journal.
  Status RecoverPending(std::vector<Call>* calls);
  Status RecoverJournal(std::vector<Call>* calls);
  int64_t refused_ = 0;                    // at Load: journal lines and pending records whose MAC failed
  std::vector<std::string> refused_keys_;  // ... the keys of those records
  void Run();                              // the writer thread
  // Chains a group into held_ (mu_ held).
  void ChainGroup(std::vector<Call>* calls);
  // Writes the held entries, deleting their pending records, in one write (mu_ held); with `journal_done` > 0,
  // records that journals up to that generation are chained, in the same write. After a failed write the entries
  // stay held (and their journals kept) for the next write, unless 4 x kHeldCalls or 4 x kHeldBytes are held: then
  // they are lost (counted in append_errors) and the chain goes on from the last written one.
  Status WriteHeld(uint64_t journal_done);
  // WriteHeld's write: one WriteBatch, or a BulkLoad of the same keys (from kBulkFrom entries). Either is atomic.
  Status WriteHeldKeys(uint64_t journal_done, uint64_t* sequence);
  // Redacts `entry` (seq `seq`): the ids in `targets` leave its targets; marked "redacted" with its MAC.
  Status RedactEntry(uint64_t seq, const std::vector<std::string>& targets, Json* entry) const;
  // At Load (mu_ held): holds the index keys of the entries after "audit_index_through".
  Status RebuildHeldIndex();
  // Writes the held index keys out as one sorted file, with the marker (mu_ and index_mu_ held).
  Status WriteOutIndex();
  // The seqs of `target`'s entries, stored and held, ascending without repeats (index_mu_ held).
  Status SeqsOf(const std::string& target, std::vector<uint64_t>* seqs, std::vector<std::string>* stored_keys);
  // The keyed MACs that make a redaction (the targets an erasure left) and the head (the last entry's seq and
  // hash) the log's own: without the key, neither can be forged from the entries' values.
  std::string RedactionMac(uint64_t seq, std::string_view content_hash, const Json& targets) const;
  std::string HeadMac(uint64_t seq, std::string_view hash) const;
  std::string JournalPath(uint64_t generation) const;
  // Creates journal `generation` for appending: its descriptor, or -1.
  int CreateJournal(uint64_t generation) const;
  // A call as a journal line (JSON and a newline).
  // Appends a line to the journal (queue_mu_ held).
  void JournalLocked(std::string_view line);

  storage::Store* store_;
  std::function<std::string(std::string_view)> keyed_hash_;

  mutable std::mutex mu_;  // the chain
  uint64_t next_seq_ = 1;  // guarded by mu_
  static constexpr int64_t kErasedWindowUs = 60'000'000;
  absl::flat_hash_map<std::string, int64_t> erased_recently_;  // id -> when Redact saw it; guarded by mu_
  std::string last_hash_;                                      // guarded by mu_
  std::atomic<int64_t> append_errors_{0};  // read without mu_ (append_errors), which a bulk write holds long
  // Chained entries not yet written (guarded by mu_): their values, the targets they name (for the index keys), and
  // the pending records (and refused ones) to delete with them; the chain before the first of them.
  struct HeldEntry {
    uint64_t seq;
    std::string value;
    std::vector<std::string> targets;
  };
  std::vector<HeldEntry> held_;
  std::vector<std::string> held_deletes_;
  uint64_t held_first_seq_ = 0;
  std::string held_first_hash_;
  size_t held_calls_ = 0;   // held_.size(), for the writer thread outside mu_ (its alone)
  size_t held_bytes_ = 0;   // of the held values; guarded by mu_
  bool held_full_ = false;  // held_bytes_ >= kHeldBytes, for the writer thread outside mu_ (its alone)
  // Journals swapped out whose calls' entries are not written yet (a held write failed): deleted, and covered by
  // the done marker, with the next write that succeeds. The writer thread's alone.
  std::vector<uint64_t> retired_journals_;
  std::atomic<int64_t> erasure_until_us_{0};  // see complete_records_allowed
  std::atomic<bool> redact_flushes_{true};    // see set_redact_flushes

  std::mutex index_mu_;                      // the held index and its writing out; taken after mu_ when both are held
  absl::btree_set<std::string> held_index_;  // "t" target \0 be64(seq) of entries after index_through_
  uint64_t index_through_ = 0;               // guarded by index_mu_
  size_t index_held_limit_ = kIndexHeld;     // guarded by index_mu_
  std::atomic<uint64_t> next_ticket_{0};     // of pending records; set at Load above every stored one

  std::mutex queue_mu_;  // the queue; never held while taking mu_ is waited for by a caller
  std::condition_variable queue_cv_, done_cv_;
  std::vector<Call> queue_;  // guarded by queue_mu_
  // The vector of a written group, emptied, kept for the next swap (unless larger than this): guarded by queue_mu_.
  static constexpr size_t kSpareQueueCapacity = 4 * kGroup;
  std::vector<Call> spare_queue_;
  uint64_t enqueued_ = 0;  // calls queued since open; guarded by queue_mu_
  uint64_t written_ = 0;   // calls written (or failed) since open; guarded by queue_mu_
  bool urgent_ = false;    // calls to chain now; guarded by queue_mu_
  bool flush_ = false;     // a Flush waits for the held entries to be written; guarded by queue_mu_
  bool stopping_ = false;  // guarded by queue_mu_
  Status last_status_;     // of the last group; guarded by queue_mu_
  // The last write of the held entries failed and they are still held: a Flush asks for another write rather than
  // taking written_ for done. write_rounds_ counts the writes tried. Both guarded by queue_mu_.
  bool held_unwritten_ = false;
  uint64_t write_rounds_ = 0;
  std::string journal_dir_;
  int spare_fd_ = -1;    // journal generation journal_generation_ + 1, created ahead; the writer's (or Load's) alone
  int journal_fd_ = -1;  // guarded by queue_mu_
  uint64_t journal_generation_ = 0;  // of journal_fd_; changed under queue_mu_ by the writer thread (and Load) only
  bool journal_used_ = false;        // journal_fd_ holds lines; guarded by queue_mu_
  std::atomic<int64_t> journal_errors_{0};
  std::thread writer_;
};

// Lower-case hex of bytes.
std::string Hex(std::string_view bytes);
// OpenSSL's SHA-256, fetched once.
const evp_md_st* Sha256();
// SHA-256 of `data`, as 64 hex characters.
std::string Sha256Hex(std::string_view data);
// HMAC-SHA-256 (RFC 2104) of `message` under `key`: 32 bytes. Thread-safe; each thread caches the last key's pads.
std::string HmacSha256(const std::string& key, std::string_view message);

}  // namespace cdp::internal

#endif  // CDP_ENGINE_AUDIT_LOG_H_
