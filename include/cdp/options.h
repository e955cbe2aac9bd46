// Copyright 2026 The libcdp Authors.
//
// cdp::Options: how an Engine is opened. A plain struct; every field has a default, so
//
//   cdp::Options options;
//   options.sync_writes = true;
//   auto engine = cdp::Engine::Open(options, "/var/lib/cdp");
//
// Options are read once, at Open; changing them afterwards has no effect on an open Engine.

#ifndef CDP_OPTIONS_H_
#define CDP_OPTIONS_H_

#include <cstddef>
#include <cstdint>

namespace cdp {

struct Options {
  // Create the directory and an empty database when missing. When false, opening a missing database is NotFound.
  // Default: true.
  bool create_if_missing = true;

  // Durability of acknowledged writes.
  //  false (default): every write goes to RocksDB's write-ahead log before it is acknowledged, so it survives a
  //    crash of the process (kill -9), but the log is not fsync'ed: a power loss may lose the last writes.
  //  true: the log is fsync'ed before a write is acknowledged (power-loss durable). Concurrent writers share one
  //    fsync (group commit), so throughput under concurrency stays high while each single write pays ~0.3 ms.
  bool sync_writes = false;

  // Latest accepted event time (an event's or an identify's `timestamp`), in seconds after the time of the call: a
  // later one is InvalidArgument on "timestamp" (a clock set years ahead would otherwise make the event the
  // profile's newest for good: lastSeenDate, sessions, "most recent" survivorship). 0: no limit. Default: 86400
  // (1 day, for clients whose clocks run ahead). At most 100 years; Engine::Open refuses other values.
  int64_t max_event_future_seconds = 86400;

  // A profile's session ends after this many seconds without events from it; the next event starts a new session.
  // Default: 1800 (30 minutes). Must be > 0.
  int64_t session_timeout_seconds = 1800;

  // Largest accepted event, serialized as compact JSON, in bytes; larger: InvalidArgument naming the event's largest
  // member. Default: 32 KiB.
  size_t max_event_bytes = 32u << 10;
  // Largest accepted batch, in bytes: the whole JSON body of TrackBatch; for Profiles::CreateBatch, the items'
  // compact JSON together; larger: InvalidArgument for the whole batch. Default: 500 KiB.
  size_t max_batch_bytes = 500u << 10;
  // Largest accepted profile document, in bytes, as stored (a write or merge that would exceed it is
  // ResourceExhausted). Default: 256 KiB.
  size_t max_profile_bytes = 256u << 10;
  // Deepest accepted JSON nesting of any input. Default: 64. In a batch (TrackBatchJson, the REST and Segment batch
  // routes), each item is held to it on its own: an item nested deeper is refused alone (InvalidArgument naming its
  // path) while the others are stored, down to batch_document_depth(); a batch text nested deeper than that is
  // refused whole.
  int max_json_depth = 64;
  // The deepest nesting a batch's JSON text may have: twice max_json_depth, plus the batch's own two levels
  // ({"batch": [...]}), and at most 1024 (the JSON parser's own bound).
  int batch_document_depth() const { return 2 * max_json_depth + 2 < 1024 ? 2 * max_json_depth + 2 : 1024; }
  // Most items in one batch call (TrackBatch, Identity::IdentifyBatch, Profiles::CreateBatch); more:
  // InvalidArgument for the whole batch. Default: 10,000.
  size_t max_batch_items = 10000;

  // Largest page a query may ask for; larger `limit`s are clamped to it. Default: 1000.
  size_t max_page_size = 1000;

  // RocksDB block cache, in bytes, shared by all column families. Default: 256 MiB.
  size_t block_cache_bytes = 256u << 20;
  // RocksDB write buffer (memtable) size per column family, in bytes. Default: 64 MiB.
  size_t write_buffer_bytes = 64u << 20;
  // Whether the newest table files (RocksDB levels 0 and 1: memtable flushes and the first compactions) are
  // compressed. Off, they are stored as written, levels 2 to 5 LZ4 and the last level ZSTD: writers' cores then do
  // not compress every write once or twice (two event writers on two cores: about 10% more events per second), for
  // more disk, up to L1's size (256 MiB per column family) stored as is. On: LZ4 at every level and ZSTD at the
  // last level holding data (L1 itself while nothing is below it). Default: false.
  bool compress_recent_tables = false;

  // Events whose per-profile index entries and computed-trait deltas are held in memory (and in a compact log
  // written with each batch) before they are written to storage in bulk, as sorted files. Larger: fewer, larger
  // bulk writes (each pauses writers and readers of traits for ~0.5 us per entry); more memory (~100 bytes per
  // entry) and a longer recovery after a crash (the log's events are read again). Reads see held entries at once.
  // Also written by Engine::Flush, when a profile is deleted, and when the Engine is destroyed. Default: 65,536.
  size_t index_tail_events = 65536;

  // RFM scores (computed.rfm, docs/segments.md) are recomputed over every profile this often by the segments'
  // worker, once segments are in use (and when the index is built, and on Segments::RecomputeRfm). 0: only then.
  // Default: 600 seconds.
  int64_t rfm_refresh_seconds = 600;

  // After an erasure (Profiles::Delete, Gdpr::Erase), data that would link one of the erased person's identifiers to
  // a profile, or create a profile under an erased profile id, is refused (FailedPrecondition) instead of
  // recreating them; only keyed hashes are kept (docs/privacy.md). Gdpr::Unsuppress lifts it for one. Off: nothing
  // is suppressed, and suppressions made earlier are not enforced. Default: on.
  bool suppress_erased_identifiers = true;

  // Retention policies (Retention in cdp/privacy.h) are applied this often by a libcdp thread, the first time this
  // long after Open. 0: only on Retention::Run. Default: 3600 seconds.
  int64_t retention_interval_seconds = 3600;
};

}  // namespace cdp

#endif  // CDP_OPTIONS_H_
