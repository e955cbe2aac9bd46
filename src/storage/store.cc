// Copyright 2026 The libcdp Authors.

#include "storage/store.h"

#include <rocksdb/cache.h>
#include <rocksdb/compaction_filter.h>
#include <rocksdb/db.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/merge_operator.h>
#include <rocksdb/slice_transform.h>
#include <rocksdb/sst_file_writer.h>
#include <rocksdb/table.h>
#include <rocksdb/utilities/options_util.h>
#include <rocksdb/write_batch.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <numeric>
#include <optional>
#include <system_error>
#include <thread>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/numbers.h"
#include "cdp/version.h"
#include "fmt/format.h"
#include "storage/keys.h"
#include "storage/traits.h"

namespace cdp::storage {

namespace {

// "default" is rocksdb::kDefaultColumnFamilyName, not read here: with RocksDB linked statically, this array may be
// initialized before that string is constructed.
const char* const kCfNames[] = {"default", "profiles", "identities", "events", "events_by_time",
                                "traits",  "merges",   "index_log",  "keys",   "privacy"};
static_assert(sizeof(kCfNames) / sizeof(kCfNames[0]) == static_cast<size_t>(Cf::kCount));

constexpr char kFormatVersionKey[] = "format_version";
constexpr char kCounterPrefix[] = "counter/";

Status FromRocks(const rocksdb::Status& s, std::string_view what) {
  if (s.ok()) return Status::OK();
  if (s.IsNotFound()) return Status::NotFound(fmt::format("{}: not found", what));
  if (s.IsCorruption()) return Status::DataLoss(fmt::format("{}: {}", what, s.ToString()));
  if (s.IsBusy() || s.IsTryAgain() || s.IsTimedOut())
    return Status::Unavailable(fmt::format("{}: {}", what, s.ToString()));
  if (s.IsInvalidArgument()) return Status::InvalidArgument(fmt::format("{}: {}", what, s.ToString()));
  return Status::Internal(fmt::format("{}: {}", what, s.ToString()));
}

// int64 add, for counters in kMeta.
class CounterMergeOperator : public rocksdb::AssociativeMergeOperator {
 public:
  bool Merge(const rocksdb::Slice&, const rocksdb::Slice* existing, const rocksdb::Slice& value, std::string* new_value,
             rocksdb::Logger*) const override {
    int64_t a = 0, b = 0;
    if (existing != nullptr && existing->size() == 8) std::memcpy(&a, existing->data(), 8);
    if (value.size() == 8) std::memcpy(&b, value.data(), 8);
    a += b;
    new_value->assign(reinterpret_cast<const char*>(&a), 8);
    return true;
  }
  const char* Name() const override { return "cdp.CounterAdd"; }
};

// Combines Traits aggregates (storage/traits.h).
class TraitsMergeOperator : public rocksdb::AssociativeMergeOperator {
 public:
  bool Merge(const rocksdb::Slice&, const rocksdb::Slice* existing, const rocksdb::Slice& value, std::string* new_value,
             rocksdb::Logger*) const override {
    Traits acc;
    if (existing != nullptr && !Traits::Decode(existing->ToStringView(), &acc)) return false;
    Traits add;
    if (!Traits::Decode(value.ToStringView(), &add)) return false;
    acc.Combine(add);
    *new_value = acc.Encode();
    return true;
  }
  const char* Name() const override { return "cdp.TraitsCombine"; }
};

// Drops idempotency keys (Cf::kKeys) whose expiry has passed.
class ExpiredKeysFilter : public rocksdb::CompactionFilter {
 public:
  bool Filter(int, const rocksdb::Slice&, const rocksdb::Slice& value, std::string*, bool*) const override {
    if (value.size() < 8) return false;
    const auto now =
        std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch())
            .count();
    return static_cast<int64_t>(DecodeBigEndian64(value.ToStringView())) <= now;
  }
  const char* Name() const override { return "cdp.ExpiredKeys"; }
};

}  // namespace

// The event log's drop filter (Store::SetEventLogDrop): the function in force, read by each flush and compaction
// when it starts.
struct Store::EventLogDrop {
  std::mutex mu;
  std::shared_ptr<const Store::EventLogDropFn> drop;  // null: none
  std::shared_ptr<const Store::EventLogDropFn> Current() {
    std::lock_guard<std::mutex> lock(mu);
    return drop;
  }
};

namespace {

// Drops the event log entries the drop function names, without a tombstone (kRemoveAndSkipUntil to the key's
// immediate successor; a plain kRemove would leave a deletion marker): each key of the log is written once, so there
// is no older version to uncover.
class EventLogDropFilter : public rocksdb::CompactionFilter {
 public:
  explicit EventLogDropFilter(std::shared_ptr<const Store::EventLogDropFn> drop) : drop_(std::move(drop)) {}
  Decision FilterV2(int, const rocksdb::Slice& key, ValueType type, const rocksdb::Slice& value, std::string*,
                    std::string* skip_until) const override {
    if (type != ValueType::kValue) return Decision::kKeep;
    if (!(*drop_)(key.ToStringView(), value.ToStringView())) return Decision::kKeep;
    skip_until->assign(key.data(), key.size());
    skip_until->push_back('\0');
    return Decision::kRemoveAndSkipUntil;
  }
  const char* Name() const override { return "cdp.EventLogDrop"; }

 private:
  std::shared_ptr<const Store::EventLogDropFn> drop_;
};

class EventLogDropFactory : public rocksdb::CompactionFilterFactory {
 public:
  explicit EventLogDropFactory(std::shared_ptr<Store::EventLogDrop> state) : state_(std::move(state)) {}
  std::unique_ptr<rocksdb::CompactionFilter> CreateCompactionFilter(
      const rocksdb::CompactionFilter::Context&) override {
    auto drop = state_->Current();
    if (drop == nullptr) return nullptr;  // nothing to drop: nothing is filtered
    return std::make_unique<EventLogDropFilter>(std::move(drop));
  }
  // Flushes too: a memtable holding a person's recent events is written out without them.
  bool ShouldFilterTableFileCreation(rocksdb::TableFileCreationReason) const override { return true; }
  const char* Name() const override { return "cdp.EventLogDropFactory"; }

 private:
  std::shared_ptr<Store::EventLogDrop> state_;
};

}  // namespace

// ---- WriteBatch ---------------------------------------------------------------------------------------------------

// Cleared rocksdb::WriteBatch objects kept for reuse: Clear keeps a batch's buffer, so the next batch is built in
// memory already grown and touched.
struct BatchPool {
  static constexpr size_t kMaxSpares = 4;
  static constexpr size_t kMaxSpareBytes = 8u << 20;  // a larger batch's buffer is freed, not kept

  std::unique_ptr<rocksdb::WriteBatch> Take() {
    {
      std::lock_guard<std::mutex> lock(mu);
      if (!spares.empty()) {
        std::unique_ptr<rocksdb::WriteBatch> batch = std::move(spares.back());
        spares.pop_back();
        return batch;
      }
    }
    return std::make_unique<rocksdb::WriteBatch>();
  }
  void Give(std::unique_ptr<rocksdb::WriteBatch> batch) {
    if (batch == nullptr || batch->GetDataSize() > kMaxSpareBytes) return;
    batch->Clear();
    std::lock_guard<std::mutex> lock(mu);
    if (spares.size() < kMaxSpares) spares.push_back(std::move(batch));
  }

  std::mutex mu;
  std::vector<std::unique_ptr<rocksdb::WriteBatch>> spares;  // guarded by mu
};

WriteBatch::WriteBatch(const Store& store) : pool_(store.batch_pool_), rep_(pool_->Take()), handles_(&store.handles_) {}
WriteBatch::~WriteBatch() { pool_->Give(std::move(rep_)); }

void WriteBatch::Put(Cf cf, std::string_view key, std::string_view value) {
  NoteKey(cf, key);
  rep_->Put((*handles_)[static_cast<int>(cf)], key, value);
}
void WriteBatch::Delete(Cf cf, std::string_view key) {
  NoteKey(cf, key);
  rep_->Delete((*handles_)[static_cast<int>(cf)], key);
}
void WriteBatch::Merge(Cf cf, std::string_view key, std::string_view value) {
  NoteKey(cf, key);
  rep_->Merge((*handles_)[static_cast<int>(cf)], key, value);
}
void WriteBatch::DeleteRange(Cf cf, std::string_view begin, std::string_view end) {
  ranges_ = true;
  rep_->DeleteRange((*handles_)[static_cast<int>(cf)], begin, end);
}
size_t WriteBatch::Count() const { return rep_->Count(); }
void WriteBatch::Clear() {
  rep_->Clear();
  for (std::string& key : last_key_) key.clear();
  ops_ = {};
  out_of_order_ = {};
  ranges_ = false;
}
size_t WriteBatch::OpsOutOfOrder() const {
  size_t n = 0;
  for (size_t i = 0; i < kCfs; ++i) n += out_of_order_[i] ? ops_[i] : 0;
  return n;
}

// ---- Iterator -----------------------------------------------------------------------------------------------------

Iterator::Iterator(std::string lower, std::string upper) : lower_(std::move(lower)), upper_(std::move(upper)) {}
Iterator::~Iterator() = default;
void Iterator::SeekToFirst() { it_->SeekToFirst(); }
void Iterator::SeekToLast() { it_->SeekToLast(); }
void Iterator::Seek(std::string_view key) { it_->Seek(key); }
void Iterator::SeekForPrev(std::string_view key) { it_->SeekForPrev(key); }
bool Iterator::Valid() const { return it_->Valid(); }
void Iterator::Next() { it_->Next(); }
void Iterator::Prev() { it_->Prev(); }
std::string_view Iterator::key() const { return it_->key().ToStringView(); }
std::string_view Iterator::value() const { return it_->value().ToStringView(); }
Status Iterator::status() const { return FromRocks(it_->status(), "iterator"); }

// ---- Store --------------------------------------------------------------------------------------------------------

namespace {

// What `name`, in a directory without CURRENT, is to opening a database there. RocksDB writes CURRENT right after
// its first MANIFEST, before any log or table file: a creation a crash cut short leaves IDENTITY, LOCK, LOG,
// LOG.old.<n>, MANIFEST-000001 and <n>.dbtmp (CURRENT being written) at most, with the engine's cdp-ingest and
// cdp-audit, which opening may reuse. A log, table or blob file, or a later MANIFEST, is a database that lost its
// CURRENT: RocksDB would make a new, empty one there and delete the old files, which its repair could recover.
// Names merely like RocksDB's ("LOGO.png", "notes.log") are someone else's. lost+found is what the root of a
// freshly formatted volume holds.
enum class Leftover { kCreation, kDamagedDatabase, kForeign };

Leftover ClassifyWithoutCurrent(std::string_view name) {
  auto digits = [](std::string_view s) {
    return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
  };
  auto strip = [](std::string_view* s, std::string_view part, bool prefix) {
    const bool has = s->size() > part.size() &&
                     (prefix ? s->substr(0, part.size()) == part : s->substr(s->size() - part.size()) == part);
    if (has) *s = prefix ? s->substr(part.size()) : s->substr(0, s->size() - part.size());
    return has;
  };
  for (std::string_view exact :
       {"IDENTITY", "LOCK", "LOG", "MANIFEST-000001", "cdp-ingest", "cdp-audit", "lost+found"}) {
    if (name == exact) return Leftover::kCreation;
  }
  std::string_view rest = name;
  if (strip(&rest, "LOG.old.", true)) return digits(rest) ? Leftover::kCreation : Leftover::kForeign;
  if (strip(&rest, "MANIFEST-", true)) return digits(rest) ? Leftover::kDamagedDatabase : Leftover::kForeign;
  if (strip(&rest, ".dbtmp", false)) return digits(rest) ? Leftover::kCreation : Leftover::kForeign;
  for (std::string_view suffix : {".log", ".sst", ".blob"}) {
    if (strip(&rest, suffix, false)) return digits(rest) ? Leftover::kDamagedDatabase : Leftover::kForeign;
  }
  return Leftover::kForeign;
}

// Refuses to open a database in `path`, an existing directory without CURRENT, unless it is empty or holds only
// what a creation cut short leaves (ClassifyWithoutCurrent): FailedPrecondition for other files (a home directory,
// a project: the database's files would be mixed with them, and an erasure's purge rewrites or deletes files in
// the directory), DataLoss for a database that lost its CURRENT. Either way the directory is left untouched.
Status CheckNoOtherFiles(const std::string& path) {
  std::error_code ec;
  std::filesystem::directory_iterator it(path, ec);
  if (ec) return Status::Unavailable(fmt::format("cannot list '{}': {}", path, ec.message()));
  for (; it != std::filesystem::directory_iterator(); it.increment(ec)) {
    const std::string name = it->path().filename().string();
    switch (ClassifyWithoutCurrent(name)) {
      case Leftover::kCreation:
        continue;
      case Leftover::kDamagedDatabase:
        return Status::DataLoss(fmt::format(
            "'{}' holds a database's files ('{}') but no CURRENT file: a damaged database, left untouched (RocksDB's "
            "repair may recover it)",
            path, name));
      case Leftover::kForeign:
        return Status::FailedPrecondition(fmt::format(
            "'{}' is not empty and holds no libcdp database (it has '{}'): open a new or empty directory", path, name));
    }
  }
  if (ec) return Status::Unavailable(fmt::format("cannot list '{}': {}", path, ec.message()));
  return Status::OK();
}

}  // namespace

Result<std::unique_ptr<Store>> Store::Open(const Options& options, const std::string& path) {
  if (path.empty()) return Status::InvalidArgument("the database path is empty");
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) {
    if (!options.create_if_missing) return Status::NotFound(fmt::format("no database at '{}'", path));
    std::filesystem::create_directories(path, ec);
    if (ec) return Status::Unavailable(fmt::format("cannot create '{}': {}", path, ec.message()));
  } else if (!std::filesystem::is_directory(path, ec)) {
    return Status::InvalidArgument(fmt::format("'{}' is not a directory", path));
  } else if (!std::filesystem::exists(std::filesystem::path(path) / "CURRENT", ec)) {
    if (!options.create_if_missing) return Status::NotFound(fmt::format("no database at '{}'", path));
    if (Status other = CheckNoOtherFiles(path); !other.ok()) return other;
  }

  rocksdb::Options db_options;
  db_options.create_if_missing = options.create_if_missing;
  db_options.create_missing_column_families = true;
  db_options.IncreaseParallelism(2);
  db_options.max_background_jobs = 2;
  db_options.bytes_per_sync = 1 << 20;
  db_options.keep_log_file_num = 5;
  // Informational messages name keys (manual compaction ranges, in hex); keys may be personal data (identifiers),
  // and an erased person's must not stay in a log file (Store::Purge).
  db_options.info_log_level = rocksdb::WARN_LEVEL;
  // A new MANIFEST at every version change (flush, compaction), written from the current files: an old one would
  // keep the bounding keys of files long compacted away (Store::Purge). Its size is that of the file list.
  db_options.max_manifest_file_size = 1;

  auto event_log_drop = std::make_shared<EventLogDrop>();
  auto cache = rocksdb::NewLRUCache(options.block_cache_bytes);
  auto cf_options = [&](Cf cf) {
    rocksdb::ColumnFamilyOptions o;
    o.write_buffer_size = options.write_buffer_bytes;
    // L0 and L1 uncompressed unless asked (Options::compress_recent_tables): every write is compressed at least
    // once there otherwise, on the cores the writers use (LZ4 in flushes was 4.5% of two event writers' samples, and
    // the bottommost ZSTD applied to L1 while it is the last level). They hold little of a large database: L2 and
    // below LZ4, the last of seven levels ZSTD. Asked: LZ4 everywhere, ZSTD in the last level holding data.
    o.compression = rocksdb::kLZ4Compression;  // also what bulk-load files use (BulkLoad::StartRun)
    if (options.compress_recent_tables) {
      o.bottommost_compression = rocksdb::kZSTD;
    } else {
      o.compression_per_level = {rocksdb::kNoCompression,
                                 rocksdb::kNoCompression,
                                 rocksdb::kLZ4Compression,
                                 rocksdb::kLZ4Compression,
                                 rocksdb::kLZ4Compression,
                                 rocksdb::kLZ4Compression,
                                 rocksdb::kZSTD};
    }
    // Small table files: an erasure rewrites every file holding one of the person's keys (Store::Purge), so its
    // cost follows the file size and the person's data, not the size of the database.
    o.target_file_size_base = 4u << 20;
    rocksdb::BlockBasedTableOptions table;
    table.block_cache = cache;
    table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
    table.cache_index_and_filter_blocks = true;
    table.pin_l0_filter_and_index_blocks_in_cache = true;
    o.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
    if (cf != Cf::kMeta && cf != Cf::kIndexLog) {
      // Point lookups that usually miss (new identifiers, retried event ids) stop at a memtable bloom filter.
      o.memtable_prefix_bloom_size_ratio = 0.05;
      o.memtable_whole_key_filtering = true;
    }
    // Trait operands of merges and unmerges are keyed by profile, so their memtable inserts land all over the skip
    // list; one goes right beside the profile's previous operand, so the memtable keeps where the last insert went
    // and starts the next search there. (The per-profile event index and event trait deltas bypass the memtable:
    // see engine/event_tail.h.) The index log is small: its records are deleted at each bulk load.
    if (cf == Cf::kIndexLog) o.write_buffer_size = std::min<size_t>(o.write_buffer_size, 8u << 20);
    if (cf == Cf::kTraits) o.memtable_insert_with_hint_prefix_extractor.reset(rocksdb::NewNoopTransform());
    if (cf == Cf::kMeta) o.merge_operator = std::make_shared<CounterMergeOperator>();
    if (cf == Cf::kTraits) o.merge_operator = std::make_shared<TraitsMergeOperator>();
    if (cf == Cf::kEventsByTime) o.compaction_filter_factory = std::make_shared<EventLogDropFactory>(event_log_drop);
    if (cf == Cf::kKeys) {
      static ExpiredKeysFilter expired;
      o.compaction_filter = &expired;
    }
    return o;
  };
  std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
  for (int i = 0; i < static_cast<int>(Cf::kCount); ++i) {
    descriptors.emplace_back(kCfNames[i], cf_options(static_cast<Cf>(i)));
  }

  auto store = std::unique_ptr<Store>(new Store());
  store->batch_pool_ = std::make_shared<BatchPool>();
  store->event_log_drop_ = event_log_drop;
  store->path_ = path;
  store->sync_writes_ = options.sync_writes;
  // The live log files are bounded: a column family written rarely (counters, merges) otherwise kept every log
  // since its last flush alive, a dozen files and a gigabyte into a long import (RocksDB's default bound is four
  // times all write buffers), all of it replayed after a crash.
  db_options.max_total_wal_size = 4 * options.write_buffer_bytes;
  rocksdb::DB* raw = nullptr;
  rocksdb::Status s = rocksdb::DB::Open(db_options, path, descriptors, &store->handles_, &raw);
  if (!s.ok()) {
    if (s.IsIOError() && s.ToString().find("lock") != std::string::npos) {
      return Status::FailedPrecondition(fmt::format(
          "the database '{}' is already open (by this process or another); one Engine per directory", path));
    }
    return FromRocks(s, fmt::format("opening '{}'", path));
  }
  store->db_.reset(raw);
  // Files of a bulk load interrupted by a crash: never part of the database.
  std::filesystem::remove_all(store->IngestDir(), ec);

  std::string version;
  Status vs = store->Get(Cf::kMeta, kFormatVersionKey, &version);
  if (vs.IsNotFound()) {
    rocksdb::WriteOptions wo;
    wo.sync = true;
    s = store->db_->Put(wo, store->handles_[0], kFormatVersionKey, std::to_string(kFormatVersion));
    if (!s.ok()) return FromRocks(s, "writing the format version");
  } else if (!vs.ok()) {
    return vs;
  } else if (version != std::to_string(kFormatVersion)) {
    return Status::DataLoss(
        fmt::format("'{}' has format version {}; this libcdp reads version {}", path, version, kFormatVersion));
  }
  return store;
}

Store::~Store() {
  if (db_) {
    for (auto* h : handles_) db_->DestroyColumnFamilyHandle(h);
    handles_.clear();
    db_->Close();
  }
}

Status Store::Get(Cf cf, std::string_view key, std::string* value) const {
  rocksdb::PinnableSlice pinned;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), handles_[static_cast<int>(cf)], key, &pinned);
  if (s.IsNotFound()) return Status::NotFound("key not found");
  if (!s.ok()) return FromRocks(s, "read");
  value->assign(pinned.data(), pinned.size());
  return Status::OK();
}

Status Store::MultiGet(Cf cf, const std::vector<std::string>& keys, std::vector<std::string>* values,
                       std::vector<bool>* found) const {
  const size_t n = keys.size();
  // Handed to RocksDB in key order (sorted_input): its own sort compares through the column family's comparator,
  // about 2% of a bulk import's time; a byte-wise sort of the keys here gives the same order for less.
  std::vector<uint32_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&keys](uint32_t a, uint32_t b) { return keys[a] < keys[b]; });
  std::vector<rocksdb::Slice> slices(n);
  for (size_t k = 0; k < n; ++k) slices[k] = keys[order[k]];
  std::vector<rocksdb::PinnableSlice> pinned(n);
  std::vector<rocksdb::Status> statuses(n);
  db_->MultiGet(rocksdb::ReadOptions(), handles_[static_cast<int>(cf)], n, slices.data(), pinned.data(),
                statuses.data(), /*sorted_input=*/true);
  values->assign(n, std::string());
  found->assign(n, false);
  for (size_t k = 0; k < n; ++k) {
    if (statuses[k].IsNotFound()) continue;
    if (!statuses[k].ok()) return FromRocks(statuses[k], "read");
    (*values)[order[k]].assign(pinned[k].data(), pinned[k].size());
    (*found)[order[k]] = true;
  }
  return Status::OK();
}

namespace {
thread_local WriteHook* g_write_hook = nullptr;
thread_local int g_failing_writes[2] = {0, 0};             // ScopedWriteFailures, kThisThread, by Target
thread_local int g_delayed_writes = 0;                     // ScopedWriteDelay
thread_local std::chrono::milliseconds g_write_delay{0};   // ScopedWriteDelay
thread_local std::function<void()> g_write_delay_started;  // ScopedWriteDelay
std::atomic<int> g_failing_writes_anywhere[2] = {0, 0};    // ScopedWriteFailures, kAnyThread, by Target

// Takes one failure of `target` from a ScopedWriteFailures in force, if any.
bool TakeWriteFailure(ScopedWriteFailures::Target target) {
  if (g_failing_writes[target] > 0) {
    --g_failing_writes[target];
    return true;
  }
  std::atomic<int>& anywhere = g_failing_writes_anywhere[target];
  int n = anywhere.load(std::memory_order_relaxed);
  while (n > 0) {
    if (anywhere.compare_exchange_weak(n, n - 1, std::memory_order_relaxed)) return true;
  }
  return false;
}
}  // namespace

ScopedWriteHook::ScopedWriteHook(WriteHook* hook) : previous_(std::exchange(g_write_hook, hook)) {}
ScopedWriteHook::~ScopedWriteHook() { g_write_hook = previous_; }

ScopedWriteFailures::ScopedWriteFailures(int count, Scope scope, Target target)
    : scope_(scope),
      target_(target),
      previous_(scope == kThisThread ? std::exchange(g_failing_writes[target], count)
                                     : g_failing_writes_anywhere[target].exchange(count, std::memory_order_relaxed)) {}
ScopedWriteDelay::ScopedWriteDelay(int count, std::chrono::milliseconds delay, std::function<void()> started)
    : previous_count_(std::exchange(g_delayed_writes, count)),
      previous_delay_(std::exchange(g_write_delay, delay)),
      previous_started_(std::exchange(g_write_delay_started, std::move(started))) {}
ScopedWriteDelay::~ScopedWriteDelay() {
  g_delayed_writes = previous_count_;
  g_write_delay = previous_delay_;
  g_write_delay_started = std::move(previous_started_);
}

ScopedWriteFailures::~ScopedWriteFailures() {
  if (scope_ == kThisThread) {
    g_failing_writes[target_] = previous_;
  } else {
    g_failing_writes_anywhere[target_].store(previous_, std::memory_order_relaxed);
  }
}

namespace {

// A write batch's operations in key order per column family. RocksDB inserts a batch into the memtables in its
// order, each insert a skip-list search that starts from the top unless the key is near the one inserted before
// (the list keeps that position); in key order most of each search is skipped. A stable sort by (column family,
// key) keeps the order of the operations on each key, which is all a batch's meaning depends on, except for range
// deletions: a batch holding one is left as it is.
class BatchSorter : public rocksdb::WriteBatch::Handler {
 public:
  explicit BatchSorter(const std::vector<rocksdb::ColumnFamilyHandle*>& handles) {
    for (rocksdb::ColumnFamilyHandle* h : handles) {
      if (h->GetID() >= by_id_.size()) by_id_.resize(h->GetID() + 1, nullptr);
      by_id_[h->GetID()] = h;
    }
  }
  // Fills *out (empty) with `batch` sorted; false when it is to be written as it is.
  bool Sort(const rocksdb::WriteBatch& batch, rocksdb::WriteBatch* out) {
    ops_.reserve(batch.Count());
    if (!batch.Iterate(this).ok() || unsortable_) return false;
    std::stable_sort(ops_.begin(), ops_.end(),
                     [](const Op& a, const Op& b) { return a.cf != b.cf ? a.cf < b.cf : a.key.compare(b.key) < 0; });
    for (const Op& op : ops_) {
      rocksdb::ColumnFamilyHandle* h = by_id_[op.cf];
      rocksdb::Status s = op.type == Type::kPut      ? out->Put(h, op.key, op.value)
                          : op.type == Type::kMerge  ? out->Merge(h, op.key, op.value)
                          : op.type == Type::kDelete ? out->Delete(h, op.key)
                                                     : out->SingleDelete(h, op.key);
      if (!s.ok()) return false;
    }
    return true;
  }

 private:
  enum class Type { kPut, kMerge, kDelete, kSingleDelete };
  struct Op {
    uint32_t cf;
    Type type;
    rocksdb::Slice key, value;
  };
  rocksdb::Status Add(uint32_t cf, Type type, const rocksdb::Slice& key, const rocksdb::Slice& value = {}) {
    if (cf >= by_id_.size() || by_id_[cf] == nullptr) unsortable_ = true;
    ops_.push_back({cf, type, key, value});
    return rocksdb::Status::OK();
  }
  rocksdb::Status PutCF(uint32_t cf, const rocksdb::Slice& key, const rocksdb::Slice& value) override {
    return Add(cf, Type::kPut, key, value);
  }
  rocksdb::Status MergeCF(uint32_t cf, const rocksdb::Slice& key, const rocksdb::Slice& value) override {
    return Add(cf, Type::kMerge, key, value);
  }
  rocksdb::Status DeleteCF(uint32_t cf, const rocksdb::Slice& key) override { return Add(cf, Type::kDelete, key); }
  rocksdb::Status SingleDeleteCF(uint32_t cf, const rocksdb::Slice& key) override {
    return Add(cf, Type::kSingleDelete, key);
  }
  rocksdb::Status DeleteRangeCF(uint32_t, const rocksdb::Slice&, const rocksdb::Slice&) override {
    unsortable_ = true;
    return rocksdb::Status::OK();
  }
  void LogData(const rocksdb::Slice&) override { unsortable_ = true; }

  std::vector<rocksdb::ColumnFamilyHandle*> by_id_;
  std::vector<Op> ops_;
  bool unsortable_ = false;
};

// Batches smaller than this are written as they are: sorting them saves less than it costs.
constexpr uint32_t kSortFrom = 64;

}  // namespace

Result<uint64_t> Store::Write(WriteBatch* batch) {
  if (g_write_hook != nullptr) g_write_hook->BeforeWrite(batch);
  if (TakeWriteFailure(ScopedWriteFailures::kWrites)) {
    return Status::Unavailable("write refused (ScopedWriteFailures, a test seam)");
  }
  if (g_delayed_writes > 0) {
    --g_delayed_writes;
    if (g_write_delay_started) g_write_delay_started();
    std::this_thread::sleep_for(g_write_delay);
  }
  rocksdb::WriteOptions wo;
  wo.sync = false;
  rocksdb::WriteBatch* rep = batch->rep_.get();
  // The sorted copy is a spare batch too (the same size as the batch, so usually built without regrowing).
  std::unique_ptr<rocksdb::WriteBatch> sorted;
  if (rep->Count() >= kSortFrom && !batch->ranges_ && batch->OpsOutOfOrder() * 2 >= rep->Count()) {
    sorted = batch_pool_->Take();
    if (BatchSorter(handles_).Sort(*rep, sorted.get())) rep = sorted.get();
  }
  rocksdb::Status s = db_->Write(wo, rep);
  batch_pool_->Give(std::move(sorted));
  if (!s.ok()) return FromRocks(s, "write");
  return db_->GetLatestSequenceNumber();
}

Status Store::SyncUpTo(uint64_t sequence) {
  if (!sync_writes_) return Status::OK();
  std::lock_guard<std::mutex> lock(sync_mu_);
  if (synced_sequence_ >= sequence) return Status::OK();  // another writer's fsync covered this one
  uint64_t target = db_->GetLatestSequenceNumber();
  rocksdb::Status s = db_->SyncWAL();
  if (!s.ok()) return FromRocks(s, "syncing the write-ahead log");
  synced_sequence_ = target;
  return Status::OK();
}

Status Store::SyncWal() {
  std::lock_guard<std::mutex> lock(sync_mu_);
  uint64_t target = db_->GetLatestSequenceNumber();
  rocksdb::Status s = db_->SyncWAL();
  if (!s.ok()) return FromRocks(s, "syncing the write-ahead log");
  synced_sequence_ = std::max(synced_sequence_, target);
  return Status::OK();
}

std::unique_ptr<Iterator> Store::NewIterator(Cf cf, std::string lower, std::string upper) const {
  auto it = std::unique_ptr<Iterator>(new Iterator(std::move(lower), std::move(upper)));
  rocksdb::ReadOptions ro;
  if (!it->lower_.empty()) {
    it->lower_slice_ = std::make_unique<rocksdb::Slice>(it->lower_);
    ro.iterate_lower_bound = it->lower_slice_.get();
  }
  if (!it->upper_.empty()) {
    it->upper_slice_ = std::make_unique<rocksdb::Slice>(it->upper_);
    ro.iterate_upper_bound = it->upper_slice_.get();
  }
  it->it_.reset(db_->NewIterator(ro, handles_[static_cast<int>(cf)]));
  return it;
}

std::string Store::IngestDir() const { return (std::filesystem::path(path_) / "cdp-ingest").string(); }

// ---- BulkLoad -----------------------------------------------------------------------------------------------------

struct BulkLoad::Run {
  rocksdb::ColumnFamilyHandle* cf;
  bool merge;
  std::string file;
  std::unique_ptr<rocksdb::SstFileWriter> writer;
  uint64_t entries = 0;
  bool finished = false;
};

BulkLoad::BulkLoad(Store* store) : store_(store) {}

BulkLoad::~BulkLoad() {
  std::error_code ec;
  for (const auto& run : runs_) std::filesystem::remove(run->file, ec);  // linked in by Commit, or abandoned
}

std::unique_ptr<BulkLoad> Store::NewBulkLoad() { return std::unique_ptr<BulkLoad>(new BulkLoad(this)); }

Status BulkLoad::StartRun(Cf cf, bool merge) {
  CDP_RETURN_IF_ERROR(EndRun());
  std::error_code ec;
  std::filesystem::create_directories(store_->IngestDir(), ec);
  if (ec) return Status::Unavailable(fmt::format("cannot create '{}': {}", store_->IngestDir(), ec.message()));
  auto run = std::make_unique<Run>();
  run->cf = store_->handles_[static_cast<int>(cf)];
  run->merge = merge;
  run->file = (std::filesystem::path(store_->IngestDir()) / fmt::format("run-{}.sst", ++store_->bulk_files_)).string();
  // The column family's light compression (LZ4), not the last level's ZSTD that SstFileWriter would pick: these
  // files are written by a caller or by the audit log's thread, where ZSTD cost a Track more than its own memtable
  // inserts (7.6% of all samples, in the audit thread). A compaction into the last level still writes ZSTD.
  rocksdb::Options options = store_->db_->GetOptions(run->cf);
  options.bottommost_compression = rocksdb::kDisableCompressionOption;
  options.compression_per_level.clear();  // else SstFileWriter takes the last level's
  options.compression = rocksdb::kLZ4Compression;
  run->writer = std::make_unique<rocksdb::SstFileWriter>(rocksdb::EnvOptions(), options, run->cf);
  rocksdb::Status s = run->writer->Open(run->file);
  runs_.push_back(std::move(run));
  return FromRocks(s, "writing a bulk-load file");
}

Status BulkLoad::Add(std::string_view key, std::string_view value) {
  if (runs_.empty() || runs_.back()->finished) return Status::Internal("BulkLoad::Add outside a run");
  Run& run = *runs_.back();
  ++run.entries;
  return FromRocks(run.merge ? run.writer->Merge(key, value) : run.writer->Put(key, value), "writing a bulk-load file");
}

Status BulkLoad::Delete(std::string_view key) {
  if (runs_.empty() || runs_.back()->finished) return Status::Internal("BulkLoad::Delete outside a run");
  Run& run = *runs_.back();
  ++run.entries;
  return FromRocks(run.writer->Delete(key), "writing a bulk-load file");
}

Status BulkLoad::DeleteRange(std::string_view begin, std::string_view end) {
  if (runs_.empty() || runs_.back()->finished) return Status::Internal("BulkLoad::DeleteRange outside a run");
  Run& run = *runs_.back();
  ++run.entries;
  return FromRocks(run.writer->DeleteRange(begin, end), "writing a bulk-load file");
}

Status BulkLoad::EndRun() {
  if (runs_.empty() || runs_.back()->finished) return Status::OK();
  Run& run = *runs_.back();
  run.finished = true;
  if (run.entries == 0) return Status::OK();  // an empty file cannot be written; the run is skipped
  return FromRocks(run.writer->Finish(), "writing a bulk-load file");
}

Status BulkLoad::Stage() {
  CDP_RETURN_IF_ERROR(EndRun());
  std::vector<rocksdb::ColumnFamilyHandle*> cfs;
  for (const auto& run : runs_) {
    if (run->entries > 0 && std::find(cfs.begin(), cfs.end(), run->cf) == cfs.end()) cfs.push_back(run->cf);
  }
  if (cfs.empty()) return Status::OK();
  rocksdb::FlushOptions fo;
  // Flush even if the new L0 file or immutable memtable makes RocksDB slow writes, as the flush inside an ingestion
  // would; false could wait behind compactions first.
  fo.allow_write_stall = true;
  return FromRocks(store_->db_->Flush(fo, cfs), "bulk load flush");
}

Status BulkLoad::Commit() {
  CDP_RETURN_IF_ERROR(EndRun());
  std::vector<rocksdb::IngestExternalFileArg> args;
  for (const auto& run : runs_) {
    if (run->entries == 0) continue;
    rocksdb::IngestExternalFileArg arg;
    arg.column_family = run->cf;
    arg.external_files.push_back(run->file);
    arg.options.move_files = true;
    args.push_back(std::move(arg));
  }
  if (args.empty()) return Status::OK();
  if (TakeWriteFailure(ScopedWriteFailures::kBulkLoads)) {
    return Status::Unavailable("bulk load refused (ScopedWriteFailures, a test seam)");
  }
  return FromRocks(store_->db_->IngestExternalFiles(args), "bulk load");
}

void Store::AddToCounter(WriteBatch* batch, std::string_view name, int64_t delta) {
  std::string key = std::string(kCounterPrefix) + std::string(name);
  batch->Merge(Cf::kMeta, key, std::string_view(reinterpret_cast<const char*>(&delta), 8));
}

int64_t Store::ReadCounter(std::string_view name) const {
  std::string value;
  if (!Get(Cf::kMeta, std::string(kCounterPrefix) + std::string(name), &value).ok() || value.size() != 8) return 0;
  int64_t v;
  std::memcpy(&v, value.data(), 8);
  return v;
}

uint64_t Store::ActiveMemtableEntries(Cf cf) const {
  uint64_t n = 0;
  db_->GetIntProperty(handles_[static_cast<int>(cf)], "rocksdb.num-entries-active-mem-table", &n);
  return n;
}

Status Store::Flush() {
  rocksdb::FlushOptions fo;
  return FromRocks(db_->Flush(fo, handles_), "flush");
}

void Store::SetEventLogDrop(EventLogDropFn drop) {
  std::lock_guard<std::mutex> lock(event_log_drop_->mu);
  event_log_drop_->drop = drop ? std::make_shared<const EventLogDropFn>(std::move(drop)) : nullptr;
}

Status Store::RewriteEventLogFiles(std::vector<std::string> keys) {
  if (keys.empty()) return Status::OK();
  std::sort(keys.begin(), keys.end());
  std::lock_guard<std::mutex> one_at_a_time(rewrite_mu_);  // two erasures' rewrites would abort each other's
  rocksdb::ColumnFamilyHandle* handle = handles_[static_cast<int>(Cf::kEventsByTime)];
  rocksdb::CompactionOptions co;
  co.compression = rocksdb::kDisableCompressionOption;  // the column family's own
  // Outputs of these rewrites (clean), by base name: the metadata names a file "/000123.sst", CompactFiles by path.
  std::vector<std::string> rewritten;
  auto base = [](const std::string& name) { return name.substr(name.find_last_of('/') + 1); };
  // A file a background compaction holds cannot be rewritten now: wait for it (its outputs are looked at again),
  // up to a bound.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  for (;;) {
    rocksdb::ColumnFamilyMetaData meta;
    db_->GetColumnFamilyMetaData(handle, &meta);
    std::vector<std::pair<std::string, int>> todo;  // file name, level
    for (const rocksdb::LevelMetaData& level : meta.levels) {
      for (const rocksdb::SstFileMetaData& file : level.files) {
        if (std::find(rewritten.begin(), rewritten.end(), base(file.name)) != rewritten.end()) continue;
        auto first = std::lower_bound(keys.begin(), keys.end(), file.smallestkey);
        if (first != keys.end() && *first <= file.largestkey) todo.emplace_back(file.name, level.level);
      }
    }
    if (todo.empty()) return Status::OK();
    bool progress = false;
    for (const auto& [name, level] : todo) {
      std::vector<std::string> outputs;
      rocksdb::Status s = db_->CompactFiles(co, handle, {name}, level, -1, &outputs);
      if (s.ok()) {
        progress = true;
        for (const std::string& output : outputs) rewritten.push_back(base(output));
      } else if (!s.IsInvalidArgument() && !s.IsAborted() && !s.IsNotFound()) {
        return FromRocks(s, "purge rewrite");
      }
    }
    if (progress) continue;
    if (std::chrono::steady_clock::now() > deadline) {
      return Status::Unavailable("the event log's files stayed in background compactions for 120 s during an erasure");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

Status Store::Purge(WriteBatch* batch, const std::vector<Cf>& whole, std::string_view done_marker,
                    std::vector<std::string> event_log_keys) {
  // The keys each column family's deletions name, and the ranges of its range deletions.
  struct Deleted : rocksdb::WriteBatch::Handler {
    struct PerCf {
      std::vector<std::string> keys;
      std::vector<std::pair<std::string, std::string>> ranges;
    };
    std::vector<PerCf> by_cf;
    PerCf& Of(uint32_t cf) {
      if (cf >= by_cf.size()) by_cf.resize(cf + 1);
      return by_cf[cf];
    }
    rocksdb::Status DeleteCF(uint32_t cf, const rocksdb::Slice& key) override {
      Of(cf).keys.push_back(key.ToString());
      return rocksdb::Status::OK();
    }
    rocksdb::Status SingleDeleteCF(uint32_t cf, const rocksdb::Slice& key) override {
      Of(cf).keys.push_back(key.ToString());
      return rocksdb::Status::OK();
    }
    rocksdb::Status DeleteRangeCF(uint32_t cf, const rocksdb::Slice& begin, const rocksdb::Slice& end) override {
      Of(cf).ranges.emplace_back(begin.ToString(), end.ToString());
      return rocksdb::Status::OK();
    }
    rocksdb::Status PutCF(uint32_t, const rocksdb::Slice&, const rocksdb::Slice&) override {
      return rocksdb::Status::OK();
    }
    rocksdb::Status MergeCF(uint32_t, const rocksdb::Slice&, const rocksdb::Slice&) override {
      return rocksdb::Status::OK();
    }
  } deleted;
  CDP_RETURN_IF_ERROR(FromRocks(batch->rep_->Iterate(&deleted), "purge"));
  // The log being written before the flush: it and every log before it hold values the flush writes out, and are
  // deleted once it returns (by RocksDB, maybe a little after). Unless the flush had nothing to write: then the log
  // stays the current one (and holds no record), and only those before it go.
  auto current_log = [&]() -> uint64_t {
    std::unique_ptr<rocksdb::LogFile> current;
    return db_->GetCurrentWalFile(&current).ok() && current != nullptr ? current->LogNumber() : 0;
  };
  const uint64_t log_before = current_log();
  CDP_RETURN_IF_ERROR(Flush());  // every deleted key (value or tombstone) is now in a table file
  const uint64_t log_after = current_log();
  const uint64_t logs_through = log_after > 0 ? std::min(log_before, log_after - 1) : 0;
  // The table files the purge replaces (by number): once replaced, each must leave the directory.
  absl::flat_hash_set<uint64_t> replaced;
  auto note_files = [&](rocksdb::ColumnFamilyHandle* handle, const std::pair<std::string, std::string>* range) {
    rocksdb::ColumnFamilyMetaData meta;
    db_->GetColumnFamilyMetaData(handle, &meta);
    for (const rocksdb::LevelMetaData& level : meta.levels) {
      for (const rocksdb::SstFileMetaData& file : level.files) {
        if (range == nullptr || (file.smallestkey <= range->second && range->first <= file.largestkey)) {
          replaced.insert(file.file_number);
        }
      }
    }
  };
  if (!event_log_keys.empty()) note_files(handles_[static_cast<int>(Cf::kEventsByTime)], nullptr);
  CDP_RETURN_IF_ERROR(RewriteEventLogFiles(std::move(event_log_keys)));
  // The compactions, each of a column family's key range (nullopt bounds: the whole column family).
  struct Job {
    rocksdb::ColumnFamilyHandle* handle;
    std::optional<std::pair<std::string, std::string>> range;
    uint64_t bytes = 0;  // of the table files it rewrites
  };
  std::vector<Job> jobs;
  for (Cf cf : whole) {
    rocksdb::ColumnFamilyMetaData meta;
    db_->GetColumnFamilyMetaData(handles_[static_cast<int>(cf)], &meta);
    jobs.push_back({handles_[static_cast<int>(cf)], std::nullopt, meta.size});
    note_files(handles_[static_cast<int>(cf)], nullptr);
  }
  for (size_t cf = 0; cf < handles_.size(); ++cf) {
    rocksdb::ColumnFamilyHandle* handle = handles_[cf];
    const uint32_t id = handle->GetID();
    if (id >= deleted.by_cf.size()) continue;
    // A column family compacted whole needs no compaction of its ranges.
    if (std::find(whole.begin(), whole.end(), static_cast<Cf>(cf)) != whole.end()) continue;
    Deleted::PerCf& d = deleted.by_cf[id];
    if (d.keys.empty() && d.ranges.empty()) continue;
    // Only the table files holding a deleted key (or overlapping a deleted range) are compacted, each over its own
    // key range (down to the last level, so the older versions below it go too): a person's events are spread over
    // the whole time-ordered log, and compacting from their first to their last key would rewrite all of it.
    std::sort(d.keys.begin(), d.keys.end());
    rocksdb::ColumnFamilyMetaData meta;
    db_->GetColumnFamilyMetaData(handle, &meta);
    std::vector<std::pair<std::string, std::string>> ranges;
    for (const rocksdb::LevelMetaData& level : meta.levels) {
      for (const rocksdb::SstFileMetaData& file : level.files) {
        auto first = std::lower_bound(d.keys.begin(), d.keys.end(), file.smallestkey);
        bool holds = first != d.keys.end() && *first <= file.largestkey;
        for (const auto& [begin, end] : d.ranges) holds |= begin <= file.largestkey && file.smallestkey < end;
        if (holds) ranges.emplace_back(file.smallestkey, file.largestkey);
      }
    }
    std::sort(ranges.begin(), ranges.end());
    std::vector<std::pair<std::string, std::string>> merged;  // overlapping ranges joined
    for (auto& r : ranges) {
      if (!merged.empty() && r.first <= merged.back().second) {
        if (r.second > merged.back().second) merged.back().second = std::move(r.second);
      } else {
        merged.push_back(std::move(r));
      }
    }
    for (auto& range : merged) {
      uint64_t bytes = 0;
      for (const rocksdb::LevelMetaData& level : meta.levels) {
        for (const rocksdb::SstFileMetaData& file : level.files) {
          if (file.smallestkey <= range.second && range.first <= file.largestkey) bytes += file.size;
        }
      }
      note_files(handle, &range);
      jobs.push_back({handle, std::move(range), bytes});
    }
  }
  // Largest first, so that the two threads end together.
  std::stable_sort(jobs.begin(), jobs.end(), [](const Job& a, const Job& b) { return a.bytes > b.bytes; });
  // Two at a time (column families compact independently; the machine this is sized for has two cores), each split
  // in two where RocksDB can (max_subcompactions). After a large load, when each column family's level-0 files span
  // all its keys, this took the first erasure from 54-64 s to 39-45 s, and later ones from 10-14 s to 9-10 s
  // (350,000 profiles, 3,000,000 events; docs/privacy.md).
  rocksdb::CompactRangeOptions co;
  co.bottommost_level_compaction = rocksdb::BottommostLevelCompaction::kForce;
  co.exclusive_manual_compaction = false;
  // Only here: for background compactions it cost ingestion 10% (TrackBatch 46,000/s against 50,000-53,000/s).
  co.max_subcompactions = 2;
  std::atomic<size_t> next{0};
  std::mutex failed_mu;
  Status failed;
  auto run = [&] {
    for (size_t i = next++; i < jobs.size(); i = next++) {
      const Job& job = jobs[i];
      rocksdb::Status s;
      if (job.range.has_value()) {
        const rocksdb::Slice begin(job.range->first), end(job.range->second);  // CompactRange's end is inclusive
        s = db_->CompactRange(co, job.handle, &begin, &end);
      } else {
        s = db_->CompactRange(co, job.handle, nullptr, nullptr);
      }
      if (!s.ok()) {
        std::lock_guard<std::mutex> lock(failed_mu);
        if (failed.ok()) failed = FromRocks(s, "purge compaction");
      }
    }
  };
  {
    std::thread other;
    try {
      other = std::thread(run);
    } catch (const std::system_error&) {  // no second thread to be had: this one runs every job
    }
    run();
    if (other.joinable()) other.join();
  }
  CDP_RETURN_IF_ERROR(failed);
  // The files the compactions replaced are gone only once no reader holds them: an iterator opened before keeps
  // them, and a scan of millions of keys can take seconds. Until they are, the purge is not done (the pending
  // marker stays: after a crash the next open purges again).
  // Also every file no longer live numbered up to the newest live one: a background compaction may have replaced a
  // noted file by one the compactions then replaced in turn (not noted), or replaced one before it was noted.
  {
    std::vector<rocksdb::LiveFileMetaData> live;
    db_->GetLiveFilesMetaData(&live);
    uint64_t through = 0;
    for (const auto& f : live) through = std::max(through, f.file_number);
    std::vector<uint64_t> on_disk;
    CDP_RETURN_IF_ERROR(ListFiles(".sst", &on_disk));
    for (uint64_t number : on_disk) {
      if (number <= through) replaced.insert(number);  // the wait skips those still live
    }
  }
  CDP_RETURN_IF_ERROR(WaitForReplacedTableFiles(replaced, logs_through, std::chrono::minutes(10)));
  // Every version change starts a new MANIFEST (max_manifest_file_size is tiny) holding the current files only:
  // one more change (a flushed marker) retires the MANIFEST that listed the compacted files' bounds.
  WriteBatch marker(*this);
  if (!done_marker.empty()) marker.Delete(Cf::kMeta, done_marker);
  marker.Put(Cf::kMeta, "purged_at",
             std::to_string(std::chrono::duration_cast<std::chrono::microseconds>(
                                std::chrono::system_clock::now().time_since_epoch())
                                .count()));
  CDP_RETURN_IF_ERROR(Write(&marker).status());
  rocksdb::FlushOptions fo;
  return FromRocks(db_->Flush(fo, handles_[static_cast<int>(Cf::kMeta)]), "purge flush");
}

Status Store::ListFiles(std::string_view extension, std::vector<uint64_t>* numbers) const {
  std::error_code ec;
  std::filesystem::directory_iterator it(path_, ec), end;
  for (; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    uint64_t number = 0;
    if (name.ends_with(extension) && absl::SimpleAtoi(name.substr(0, name.size() - extension.size()), &number)) {
      numbers->push_back(number);
    }
  }
  if (ec) return Status::Unavailable(fmt::format("cannot list '{}': {}", path_, ec.message()));
  return Status::OK();
}

Status Store::WaitForReplacedTableFiles(const absl::flat_hash_set<uint64_t>& files, uint64_t logs_through,
                                        std::chrono::seconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  for (;;) {
    std::vector<rocksdb::LiveFileMetaData> live;
    db_->GetLiveFilesMetaData(&live);
    absl::flat_hash_set<uint64_t> live_numbers;
    for (const auto& f : live) live_numbers.insert(f.file_number);
    std::vector<uint64_t> on_disk;
    CDP_RETURN_IF_ERROR(ListFiles(".sst", &on_disk));
    uint64_t held = 0;  // a table file not live any more, still in the directory
    for (uint64_t number : on_disk) {
      if (files.contains(number) && !live_numbers.contains(number)) {
        held = number;
        break;
      }
    }
    std::vector<uint64_t> logs;
    CDP_RETURN_IF_ERROR(ListFiles(".log", &logs));
    uint64_t log_held = 0;  // a retired log, still in the directory and not empty (RocksDB may keep an empty one)
    for (uint64_t number : logs) {
      std::error_code ec;
      const auto size = std::filesystem::file_size(std::filesystem::path(path_) / fmt::format("{:06}.log", number), ec);
      if (number <= logs_through && !ec && size > 0) log_held = number;
    }
    if (held == 0 && log_held == 0) return Status::OK();
    if (std::chrono::steady_clock::now() >= deadline) {
      if (held == 0) {
        return Status::Unavailable(fmt::format(
            "log file {:06}.log was retired by the purge's flush but is still in the directory; the next open "
            "finishes the purge",
            log_held));
      }
      return Status::Unavailable(fmt::format(
          "table file {:06}.sst is no longer live but still in the directory (a reader holds it, or a background "
          "compaction has not installed it yet); the next open finishes the purge",
          held));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

}  // namespace cdp::storage
