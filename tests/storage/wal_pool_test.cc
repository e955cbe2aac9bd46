// Copyright 2026 The libcdp Authors.

#include "storage/wal_pool.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include "test_util.h"

namespace cdp::storage {
namespace {

using testing::TempDir;

std::string Read(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void Write(const std::filesystem::path& path, const std::string& content) {
  std::ofstream(path, std::ios::binary) << content;
}

// A deleted log is kept zeroed, at its size, in the pool directory, and the next new log is written over it from
// its start; other files, and logs outside the database directory, are deleted.
TEST(WalPoolTest, ADeletedLogIsZeroedAndReusedByTheNextLog) {
  TempDir dir;
  const std::filesystem::path db = dir.path();
  WalPoolFileSystem fs(rocksdb::FileSystem::Default(), db.string());
  const std::string record(10000, 'x');

  Write(db / "000007.log", record);
  ASSERT_TRUE(fs.DeleteFile((db / "000007.log").string(), rocksdb::IOOptions(), nullptr).ok());
  EXPECT_FALSE(std::filesystem::exists(db / "000007.log"));
  EXPECT_EQ(fs.pooled(), 0u) << "not started: deleted as usual";

  ASSERT_TRUE(fs.Start());
  Write(db / "000008.log", record);
  Write(db / "000008.sst", record);
  std::filesystem::create_directories(db / "sub");
  Write(db / "sub" / "000009.log", record);
  for (const char* name : {"000008.log", "000008.sst", "sub/000009.log"}) {
    ASSERT_TRUE(fs.DeleteFile((db / name).string(), rocksdb::IOOptions(), nullptr).ok()) << name;
    EXPECT_FALSE(std::filesystem::exists(db / name)) << name;
  }
  ASSERT_EQ(fs.pooled(), 1u);
  const std::filesystem::path pool = db / WalPoolFileSystem::kPoolDir;
  ASSERT_EQ(std::distance(std::filesystem::directory_iterator(pool), std::filesystem::directory_iterator()), 1);
  const std::filesystem::path pooled = std::filesystem::directory_iterator(pool)->path();
  EXPECT_EQ(Read(pooled), std::string(record.size(), '\0')) << "no byte of the old log may stay";

  std::unique_ptr<rocksdb::FSWritableFile> file;
  ASSERT_TRUE(fs.NewWritableFile((db / "000010.log").string(), rocksdb::FileOptions(), &file, nullptr).ok());
  EXPECT_EQ(fs.reused(), 1u);
  EXPECT_EQ(fs.pooled(), 0u);
  EXPECT_FALSE(std::filesystem::exists(pooled));
  ASSERT_TRUE(file->Append("new records", rocksdb::IOOptions(), nullptr).ok());
  ASSERT_TRUE(file->Flush(rocksdb::IOOptions(), nullptr).ok());
  const std::string now = Read(db / "000010.log");
  EXPECT_EQ(now.substr(0, 11), "new records");
  EXPECT_EQ(now.find_first_not_of('\0', 11), std::string::npos) << "after the new records: zeros only";
  ASSERT_TRUE(file->Close(rocksdb::IOOptions(), nullptr).ok());

  // An empty pool: a new log is a new file.
  ASSERT_TRUE(fs.NewWritableFile((db / "000011.log").string(), rocksdb::FileOptions(), &file, nullptr).ok());
  EXPECT_EQ(fs.reused(), 1u);
  ASSERT_TRUE(file->Close(rocksdb::IOOptions(), nullptr).ok());

  // Beyond kPoolFiles, deleted logs are deleted.
  for (size_t i = 0; i < WalPoolFileSystem::kPoolFiles + 2; ++i) {
    const std::filesystem::path log = db / ("0001" + std::to_string(10 + i) + ".log");
    Write(log, record);
    ASSERT_TRUE(fs.DeleteFile(log.string(), rocksdb::IOOptions(), nullptr).ok());
    EXPECT_FALSE(std::filesystem::exists(log));
  }
  EXPECT_EQ(fs.pooled(), WalPoolFileSystem::kPoolFiles);
  EXPECT_EQ(static_cast<size_t>(
                std::distance(std::filesystem::directory_iterator(pool), std::filesystem::directory_iterator())),
            WalPoolFileSystem::kPoolFiles);
}

// The database directory may be named with a trailing separator or "." steps; the pool is gone once the file
// system is (at close).
TEST(WalPoolTest, TheDirectoryMayBeNamedAnyWayAndThePoolGoesAtClose) {
  TempDir dir;
  const std::filesystem::path db = dir.path();
  const std::filesystem::path pool = db / WalPoolFileSystem::kPoolDir;
  {
    WalPoolFileSystem fs(rocksdb::FileSystem::Default(), dir.path() + "/./");
    ASSERT_TRUE(fs.Start());
    Write(db / "000012.log", "records");
    ASSERT_TRUE(fs.DeleteFile(dir.path() + "//000012.log", rocksdb::IOOptions(), nullptr).ok());
    EXPECT_EQ(fs.pooled(), 1u);
    EXPECT_TRUE(std::filesystem::exists(pool));
  }
  EXPECT_FALSE(std::filesystem::exists(pool));
}

}  // namespace
}  // namespace cdp::storage
