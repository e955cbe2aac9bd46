// Copyright 2026 The libcdp Authors.
//
// WalPoolFileSystem: a RocksDB file system that reuses the write-ahead log's files instead of deleting them, so a
// new log is written into pages the kernel already holds.
//
// Why: on a machine whose free memory goes back to its host (a VM with free page reporting, as this project's 2-core
// benchmark machine), the first write into a page-cache page that was freed for longer than a few seconds faults it
// back in from the host: measured with dd, 99-126 MB/s for such pages against 3.2-5 GB/s for pages still held. A
// long import writes about a kilobyte of log per record, each log into a new file, and its writer thread spent 19%
// of its time in that copy at 1,000,000 records (0.5% at the start). RocksDB's own recycling
// (recycle_log_file_num) is off with point-in-time recovery, which libcdp needs.
//
// How: a deleted log file (`NNNNNN.log` in the database directory) is not deleted but renamed into
// `cdp-wal-pool/`, overwritten with zeros through the page cache (its pages stay held) and synced, and only then
// pooled (up to kPoolFiles; beyond, deleted). A new log takes a pooled file (renamed to its name, written from the
// start). Recovery reads a log up to its first record that does not check out; the zeros after a log's records are
// such a record, and no byte of an earlier log survives the zeroing, so no stale record can be replayed. Erasure
// needs nothing more: the zeros are synced before the file is pooled, and pooled files hold nothing else.
//
// Thread-safety: as any FileSystem (RocksDB calls it from its threads). Cost: writing and syncing a log's size of
// zeros in the thread that deletes it (RocksDB's background jobs), about 0.1 s for 64 MiB on this machine's disk;
// disk: up to kPoolFiles logs' sizes (about a write buffer each) while the database is open.

#ifndef CDP_STORAGE_WAL_POOL_H_
#define CDP_STORAGE_WAL_POOL_H_

#include <rocksdb/file_system.h>

#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace cdp::storage {

class WalPoolFileSystem : public rocksdb::FileSystemWrapper {
 public:
  static constexpr size_t kPoolFiles = 4;
  static constexpr const char* kPoolDir = "cdp-wal-pool";

  // `db_path`: the database directory whose logs are pooled. Passes every call through until Start.
  WalPoolFileSystem(const std::shared_ptr<rocksdb::FileSystem>& base, const std::string& db_path);
  // Deletes the pooled files (after the database is closed: the store destroys it last).
  ~WalPoolFileSystem() override;

  // Called once the database is open (its lock held): empties the pool directory (files a crash left while one was
  // being zeroed) and starts pooling. Returns false, pooling nothing, when the directory cannot be made.
  bool Start();

  const char* Name() const override { return "CdpWalPoolFileSystem"; }

  rocksdb::IOStatus NewWritableFile(const std::string& fname, const rocksdb::FileOptions& options,
                                    std::unique_ptr<rocksdb::FSWritableFile>* result,
                                    rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus DeleteFile(const std::string& fname, const rocksdb::IOOptions& options,
                               rocksdb::IODebugContext* dbg) override;

  // For tests: how many files are pooled, and how many logs were written into a pooled file.
  size_t pooled() const;
  size_t reused() const;

 private:
  bool IsLog(const std::string& fname) const;
  // Overwrites `path` with zeros through the page cache and syncs it.
  static bool Zero(const std::string& path);

  std::string db_path_, pool_path_;
  mutable std::mutex mu_;
  bool started_ = false;
  std::vector<std::string> pool_;  // zeroed files, ready
  size_t next_ = 0;                // names in the pool directory
  size_t reused_ = 0;
};

}  // namespace cdp::storage

#endif  // CDP_STORAGE_WAL_POOL_H_
