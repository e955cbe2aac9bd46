// Copyright 2026 The libcdp Authors.
//
// Helpers shared by the benchmarks: temporary directories, the demo data set pre-generated into memory, the raw
// RocksDB baseline and latency percentiles.

#ifndef CDP_BENCHMARKS_BENCH_UTIL_H_
#define CDP_BENCHMARKS_BENCH_UTIL_H_

#include <rocksdb/db.h>
#include <rocksdb/options.h>
#include <rocksdb/write_batch.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "cdp/cdp.h"
#include "demo/generator.h"

namespace cdp::bench {

inline double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// CPU seconds used by the whole process (all threads, RocksDB's background ones included). On a shared, noisy
// machine CPU time per item varies less than wall time.
inline double CpuNow() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

// CPU seconds used by the calling thread only: for per-call costs, unaffected by waiting and preemption.
inline double ThreadCpuNow() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

// A fresh directory under `parent` (default: the system temp dir), removed on destruction unless keep().
class TempDir {
 public:
  explicit TempDir(const std::string& parent = {}, const std::string& tag = "cdp-bench") {
    std::filesystem::path base =
        parent.empty() ? std::filesystem::temp_directory_path() : std::filesystem::path(parent);
    std::random_device rd;
    path_ = base / (tag + "-" + std::to_string(rd()) + std::to_string(rd()));
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string path() const { return path_.string(); }

 private:
  std::filesystem::path path_;
};

// The demo data set, in memory: profiles, events (as Json and as serialized text) and each event's person.
struct Dataset {
  std::vector<Json> profiles;
  std::vector<Json> events;
  std::vector<std::string> event_text;
  std::vector<uint32_t> event_person;
  size_t event_bytes = 0;

  static Dataset Make(size_t profiles, size_t events, uint64_t seed = 42, bool event_ids = true) {
    demo::GeneratorConfig c;
    c.profiles = profiles;
    c.events = events;
    c.seed = seed;
    c.event_ids = event_ids;
    demo::Generator gen(c);
    Dataset d;
    std::vector<Json> batch;
    std::vector<uint32_t> persons;
    while (gen.NextProfiles(1000, &batch)) {
      for (Json& p : batch) d.profiles.push_back(std::move(p));
    }
    d.events.reserve(events);
    while (gen.NextEvents(1000, &batch, &persons)) {
      for (size_t i = 0; i < batch.size(); ++i) {
        d.event_text.push_back(batch[i].Dump());
        d.event_bytes += d.event_text.back().size();
        d.events.push_back(std::move(batch[i]));
        d.event_person.push_back(persons[i]);
      }
    }
    return d;
  }
};

// Creates every profile of the data set; returns the ids, in order. Exits on failure.
inline std::vector<std::string> CreateProfiles(Engine& engine, const std::vector<Json>& profiles) {
  std::vector<std::string> ids;
  ids.reserve(profiles.size());
  for (const Json& p : profiles) {
    Result<Json> r = engine.profiles().Create(p);
    if (!r.ok()) {
      std::fprintf(stderr, "profile create failed: %s\n", r.status().ToString().c_str());
      std::exit(1);
    }
    ids.push_back(r->Find("id")->as_string());
  }
  return ids;
}

// A fresh RocksDB with the WAL on (not fsync'ed, like libcdp's default), for the raw baseline.
inline std::unique_ptr<rocksdb::DB> OpenRawDb(const std::string& path) {
  rocksdb::Options o;
  o.create_if_missing = true;
  o.write_buffer_size = 64u << 20;
  o.IncreaseParallelism(2);
  rocksdb::DB* db = nullptr;
  rocksdb::Status s = rocksdb::DB::Open(o, path, &db);
  if (!s.ok()) {
    std::fprintf(stderr, "rocksdb open failed: %s\n", s.ToString().c_str());
    std::exit(1);
  }
  return std::unique_ptr<rocksdb::DB>(db);
}

// A 16-byte key for event i: 8 bytes of a big-endian time-like prefix, 8 of a hash (like an id).
inline std::string RawKey(uint64_t i) {
  std::string k(16, '\0');
  uint64_t hi = 0x0190000000000000ULL + i, lo = i * 0x9e3779b97f4a7c15ULL;
  for (int b = 0; b < 8; ++b) {
    k[b] = static_cast<char>(hi >> (56 - 8 * b));
    k[8 + b] = static_cast<char>(lo >> (56 - 8 * b));
  }
  return k;
}

// Writes events [begin, end) of `text` in WriteBatches of `batch` with the WAL on. Returns false on error.
inline bool RawWrite(rocksdb::DB* db, const std::vector<std::string>& text, size_t begin, size_t end, size_t batch,
                     uint64_t key_base) {
  rocksdb::WriteOptions wo;  // WAL on, sync off
  for (size_t i = begin; i < end; i += batch) {
    rocksdb::WriteBatch wb;
    size_t stop = std::min(end, i + batch);
    for (size_t j = i; j < stop; ++j) wb.Put(RawKey(key_base + j), text[j]);
    rocksdb::Status s = db->Write(wo, &wb);
    if (!s.ok()) {
      std::fprintf(stderr, "rocksdb write failed: %s\n", s.ToString().c_str());
      return false;
    }
  }
  return true;
}

// The p-th percentile (0..100) of `v` (sorted in place).
inline double Percentile(std::vector<double>* v, double p) {
  if (v->empty()) return 0;
  std::sort(v->begin(), v->end());
  size_t idx = static_cast<size_t>(p / 100.0 * static_cast<double>(v->size() - 1) + 0.5);
  return (*v)[std::min(idx, v->size() - 1)];
}

}  // namespace cdp::bench

#endif  // CDP_BENCHMARKS_BENCH_UTIL_H_
