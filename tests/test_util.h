// Copyright 2026 The libcdp Authors.
//
// Helpers shared by libcdp's tests: temporary directories, JSON literals, opening engines.

#ifndef CDP_TESTS_TEST_UTIL_H_
#define CDP_TESTS_TEST_UTIL_H_

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "cdp/cdp.h"
#include "rocksdb/merge_operator.h"
#include "rocksdb/options.h"
#include "rocksdb/sst_file_reader.h"

namespace cdp::testing {

// A fresh directory under the system temp dir, removed with the object.
class TempDir {
 public:
  TempDir() {
    std::random_device rd;
    path_ = std::filesystem::temp_directory_path() / ("cdp-test-" + std::to_string(rd()) + "-" + std::to_string(rd()));
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  std::string path() const { return path_.string(); }
  std::string Sub(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

// Parses a JSON literal; fails the test on malformed input.
inline Json J(std::string_view text) {
  auto parsed = Json::Parse(text);
  EXPECT_TRUE(parsed.ok()) << parsed.status().ToString() << " in " << text;
  return parsed.ok() ? std::move(parsed).value() : Json();
}

template <typename T>
T Unwrap(Result<T> r) {
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  if (!r.ok()) throw std::runtime_error(r.status().ToString());
  return std::move(r).value();
}

// Starts this test binary again as a child process that runs only the test `name` (usually a DISABLED_ helper),
// with the variables of `env` set; returns its pid (waitpid it), or -1 if fork failed. A bare fork() is not enough
// once any earlier test has opened a database: the child inherits RocksDB's thread pool without its threads, and
// its first flush waits forever. File descriptors without O_CLOEXEC (such as pipe() ends) stay open in the child.
inline pid_t SpawnTestChild(const std::string& name, const std::vector<std::pair<std::string, std::string>>& env) {
  // Everything is built before fork(): between fork and exec a child of a threaded process may not allocate.
  const std::string self = std::filesystem::read_symlink("/proc/self/exe").string();
  std::vector<std::string> args = {self, "--gtest_also_run_disabled_tests", "--gtest_filter=" + name};
  std::vector<std::string> vars;
  for (const auto& [key, value] : env) vars.push_back(key + "=" + value);
  // Not gtest's own settings (sharding, repeat, output): the child runs its one test once, whatever the parent does.
  for (char** e = environ; *e != nullptr; ++e) {
    if (std::string_view(*e).substr(0, 6) != "GTEST_") vars.emplace_back(*e);
  }
  std::vector<char*> argv, envp;
  for (auto& a : args) argv.push_back(a.data());
  for (auto& v : vars) envp.push_back(v.data());
  argv.push_back(nullptr);
  envp.push_back(nullptr);
  pid_t pid = fork();
  if (pid != 0) return pid;
  execve(argv[0], argv.data(), envp.data());
  _exit(127);
}

// Runs the child test `name` (SpawnTestChild) to its end: success when it exited with status 0.
inline ::testing::AssertionResult RunTestChild(const std::string& name,
                                               const std::vector<std::pair<std::string, std::string>>& env) {
  const pid_t pid = SpawnTestChild(name, env);
  if (pid < 0) return ::testing::AssertionFailure() << "fork failed";
  int status = 0;
  if (waitpid(pid, &status, 0) != pid) return ::testing::AssertionFailure() << "waitpid failed";
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return ::testing::AssertionFailure() << name << " ended with status " << status;
  }
  return ::testing::AssertionSuccess();
}

// The value of an environment variable a spawned child was given; fails the test if it is missing.
inline std::string ChildEnv(const char* key) {
  const char* value = std::getenv(key);
  EXPECT_NE(value, nullptr) << key << " is not set: run this test through SpawnTestChild";
  return value == nullptr ? std::string() : std::string(value);
}

// Reads merge operands back as they are (concatenated), so that a table file holding them can be read whole.
class ConcatenateOperands : public rocksdb::AssociativeMergeOperator {
 public:
  bool Merge(const rocksdb::Slice&, const rocksdb::Slice* existing, const rocksdb::Slice& value, std::string* out,
             rocksdb::Logger*) const override {
    out->assign(existing != nullptr ? existing->ToString() : std::string());
    out->append(value.data(), value.size());
    return true;
  }
  const char* Name() const override { return "cdp.tests.ConcatenateOperands"; }
};

// Whether a RocksDB table file holds `needle` in a key or value of its data, decompressed (RocksDB's own reader):
// libcdp's table files are LZ4- and, at the last level, ZSTD-compressed, where a string is not stored as its bytes.
inline bool TableHolds(const std::string& path, const std::string& needle) {
  rocksdb::Options options;
  options.merge_operator = std::make_shared<ConcatenateOperands>();
  auto reader = std::make_unique<rocksdb::SstFileReader>(options);
  rocksdb::Status s = reader->Open(path);
  // A file a background flush or compaction is still writing has no footer yet (it may even be empty): wait until
  // it is complete or deleted (up to 10 s). A file deleted since the directory was listed holds nothing any more.
  for (int tries = 0; !s.ok() && std::filesystem::exists(path) && tries < 500; ++tries) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    reader = std::make_unique<rocksdb::SstFileReader>(options);
    s = reader->Open(path);
  }
  if (!s.ok() && !std::filesystem::exists(path)) return false;
  EXPECT_TRUE(s.ok()) << path << ": " << s.ToString();
  if (!s.ok()) return false;
  std::unique_ptr<rocksdb::Iterator> it(reader->NewIterator(rocksdb::ReadOptions()));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    if (it->key().ToStringView().find(needle) != std::string_view::npos ||
        it->value().ToStringView().find(needle) != std::string_view::npos) {
      return true;
    }
  }
  EXPECT_TRUE(it->status().ok()) << path << ": " << it->status().ToString();
  return false;
}

// The files under `dir` (recursively) that contain `needle`, by file name: for checks that erased data is in no
// file of a database directory. Every file's bytes are searched, and a table file's data decompressed too.
inline std::vector<std::string> FilesHolding(const std::string& dir, const std::string& needle) {
  // Listed first, again from the top should a subdirectory vanish while it is listed (a background job's
  // temporary one): a listing cut short could miss a file and let a check pass falsely.
  std::vector<std::filesystem::path> files;
  for (int tries = 0;; ++tries) {
    files.clear();
    std::error_code ec;
    for (std::filesystem::recursive_directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
      std::error_code gone;  // a file deleted since it was listed is not a regular file any more
      if (it->is_regular_file(gone)) files.push_back(it->path());
    }
    if (!ec) break;
    if (tries == 100) {
      ADD_FAILURE() << dir << " could not be listed: " << ec.message();
      break;
    }
  }
  std::vector<std::string> out;
  for (const std::filesystem::path& file : files) {
    std::ifstream in(file, std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (bytes.find(needle) != std::string::npos || (file.extension() == ".sst" && TableHolds(file.string(), needle))) {
      out.push_back(file.filename().string());
    }
  }
  return out;
}

// The 8-byte hash a hub set keeps of a high-priority identifier value (FNV-1a over type \0 value, in host byte
// order, as EngineImpl's UpdateHubs stores it): for checks that an erased person's hashes are in no file.
inline std::string HubHashBytes(std::string_view type, std::string_view value) {
  uint64_t h = 14695981039346656037ULL;
  for (std::string_view part : {type, std::string_view("\0", 1), value}) {
    for (unsigned char c : part) {
      h ^= c;
      h *= 1099511628211ULL;
    }
  }
  return std::string(reinterpret_cast<const char*>(&h), 8);
}

// An engine in a temp dir, for fixtures.
class EngineTest : public ::testing::Test {
 protected:
  void SetUp() override { Reopen(); }
  void Reopen() {
    engine_.reset();
    auto opened = Engine::Open(options_, dir_.path());
    ASSERT_TRUE(opened.ok()) << opened.status().ToString();
    engine_ = std::move(opened).value();
  }
  Profiles& profiles() { return engine_->profiles(); }
  Events& events() { return engine_->events(); }

  TempDir dir_;
  Options options_;
  std::unique_ptr<Engine> engine_;
};

}  // namespace cdp::testing

#endif  // CDP_TESTS_TEST_UTIL_H_
