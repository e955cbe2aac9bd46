// Copyright 2026 The libcdp Authors.

#include "storage/wal_pool.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <system_error>

namespace cdp::storage {

namespace {

// `path` without "." and ".." steps, repeated or trailing separators.
std::filesystem::path Normal(const std::string& path) {
  std::filesystem::path p = std::filesystem::path(path).lexically_normal();
  return p.has_filename() ? p : p.parent_path();
}

}  // namespace

WalPoolFileSystem::WalPoolFileSystem(const std::shared_ptr<rocksdb::FileSystem>& base, const std::string& db_path)
    : FileSystemWrapper(base), db_path_(Normal(db_path).string()), pool_path_((Normal(db_path) / kPoolDir).string()) {}

WalPoolFileSystem::~WalPoolFileSystem() {
  if (!started_) return;
  std::error_code ec;
  std::filesystem::remove_all(pool_path_, ec);
}

bool WalPoolFileSystem::Start() {
  std::error_code ec;
  std::filesystem::remove_all(pool_path_, ec);
  if (!std::filesystem::create_directories(pool_path_, ec) || ec) return false;
  std::lock_guard<std::mutex> lock(mu_);
  started_ = true;
  return true;
}

bool WalPoolFileSystem::IsLog(const std::string& fname) const {
  const std::filesystem::path p = Normal(fname);
  const std::string name = p.filename().string();
  if (name.size() < 5 || name.compare(name.size() - 4, 4, ".log") != 0) return false;
  if (!std::all_of(name.begin(), name.end() - 4, [](char c) { return c >= '0' && c <= '9'; })) return false;
  return p.parent_path() == std::filesystem::path(db_path_);
}

bool WalPoolFileSystem::Zero(const std::string& path) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return false;
  struct stat st;
  bool ok = ::fstat(fd, &st) == 0;
  static const std::vector<char> zeros(1 << 20, 0);
  for (off_t at = 0; ok && at < st.st_size;) {
    const size_t n = static_cast<size_t>(std::min<off_t>(st.st_size - at, static_cast<off_t>(zeros.size())));
    const ssize_t w = ::pwrite(fd, zeros.data(), n, at);
    if (w <= 0) ok = false;
    at += w > 0 ? w : 0;
  }
  ok = ok && ::fdatasync(fd) == 0;
  ::close(fd);
  return ok;
}

rocksdb::IOStatus WalPoolFileSystem::DeleteFile(const std::string& fname, const rocksdb::IOOptions& options,
                                                rocksdb::IODebugContext* dbg) {
  if (!IsLog(fname)) return target()->DeleteFile(fname, options, dbg);
  std::string pooled;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!started_ || pool_.size() >= kPoolFiles) return target()->DeleteFile(fname, options, dbg);
    pooled = pool_path_ + "/" + std::to_string(++next_);
  }
  if (!target()->RenameFile(fname, pooled, options, dbg).ok()) return target()->DeleteFile(fname, options, dbg);
  if (!Zero(pooled)) return target()->DeleteFile(pooled, options, dbg);
  std::lock_guard<std::mutex> lock(mu_);
  if (pool_.size() >= kPoolFiles) return target()->DeleteFile(pooled, options, dbg);
  pool_.push_back(std::move(pooled));
  return rocksdb::IOStatus::OK();
}

rocksdb::IOStatus WalPoolFileSystem::NewWritableFile(const std::string& fname, const rocksdb::FileOptions& options,
                                                     std::unique_ptr<rocksdb::FSWritableFile>* result,
                                                     rocksdb::IODebugContext* dbg) {
  if (IsLog(fname)) {
    std::string pooled;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!pool_.empty()) {
        pooled = std::move(pool_.back());
        pool_.pop_back();
      }
    }
    if (!pooled.empty()) {
      rocksdb::IOStatus s = target()->ReuseWritableFile(fname, pooled, options, result, dbg);
      if (s.ok()) {
        std::lock_guard<std::mutex> lock(mu_);
        ++reused_;
        return s;
      }
      (void)target()->DeleteFile(pooled, rocksdb::IOOptions(), dbg);
    }
  }
  return target()->NewWritableFile(fname, options, result, dbg);
}

size_t WalPoolFileSystem::pooled() const {
  std::lock_guard<std::mutex> lock(mu_);
  return pool_.size();
}

size_t WalPoolFileSystem::reused() const {
  std::lock_guard<std::mutex> lock(mu_);
  return reused_;
}

}  // namespace cdp::storage
