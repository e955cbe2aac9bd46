// Copyright 2026 The libcdp Authors.
//
// Micro-benchmarks of ingestion and profile reads (Google Benchmark).
//
//   build-bench/benchmarks/ingest_benchmark [--benchmark_filter=TrackBatch]
//
// Data: the demo data set (src/demo/generator.h), generated once, outside the timed loops: CDP_BENCH_PROFILES
// (default 20,000) known customers, created before any event is tracked, and CDP_BENCH_EVENTS (default 200,000)
// events. Each benchmark opens a fresh database in the temp dir and runs a fixed number of iterations that walk
// through the events once, in order, so every event is valid and new.
//
//   BM_TrackBatch/B         Events::TrackBatch of B events per call                    items/s = events/s
//   BM_RawRocksDBBatch/B    the baseline: RocksDB WriteBatch of B Puts (key: 16 bytes, value: the event's JSON),
//                           WAL on, no fsync: what storing the bytes costs without libcdp
//   BM_Track                Events::Track, one event per call
//   BM_ProfileGetWarm       Profiles::Get of random ids after a warm-up pass; counters p50_us, p99_us

#include <benchmark/benchmark.h>

#include <cstdlib>
#include <random>

#include "bench_util.h"

namespace cdp::bench {
namespace {

size_t EnvSize(const char* name, size_t def) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? static_cast<size_t>(std::strtoull(v, nullptr, 10)) : def;
}

const Dataset& Data() {
  static const Dataset* d = [] {
    auto* ds = new Dataset(Dataset::Make(EnvSize("CDP_BENCH_PROFILES", 20000), EnvSize("CDP_BENCH_EVENTS", 200000)));
    return ds;
  }();
  return *d;
}

std::unique_ptr<Engine> OpenEngine(const std::string& dir) {
  Result<std::unique_ptr<Engine>> e = Engine::Open(Options{}, dir);
  if (!e.ok()) {
    std::fprintf(stderr, "open failed: %s\n", e.status().ToString().c_str());
    std::exit(1);
  }
  return std::move(e).value();
}

void BM_TrackBatch(benchmark::State& state) {
  const Dataset& d = Data();
  const size_t batch = static_cast<size_t>(state.range(0));
  TempDir dir;
  std::unique_ptr<Engine> engine = OpenEngine(dir.path());
  CreateProfiles(*engine, d.profiles);
  std::vector<std::vector<Json>> batches;
  for (size_t i = 0; i + batch <= d.events.size(); i += batch) {
    batches.emplace_back(d.events.begin() + static_cast<std::ptrdiff_t>(i),
                         d.events.begin() + static_cast<std::ptrdiff_t>(i + batch));
  }
  size_t next = 0, rejected = 0;
  for (auto _ : state) {
    Result<BatchResult> r = engine->events().TrackBatch(batches[next++ % batches.size()]);
    if (!r.ok()) {
      state.SkipWithError(r.status().ToString().c_str());
      break;
    }
    rejected += r->rejected;
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * batch));
  state.counters["rejected"] = static_cast<double>(rejected);
}

void BM_RawRocksDBBatch(benchmark::State& state) {
  const Dataset& d = Data();
  const size_t batch = static_cast<size_t>(state.range(0));
  TempDir dir;
  std::unique_ptr<rocksdb::DB> db = OpenRawDb(dir.path());
  size_t next = 0;
  const size_t n_batches = d.event_text.size() / batch;
  for (auto _ : state) {
    size_t b = next++ % n_batches;
    if (!RawWrite(db.get(), d.event_text, b * batch, (b + 1) * batch, batch, next * batch)) {
      state.SkipWithError("rocksdb write failed");
      break;
    }
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * batch));
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * batch * d.event_bytes / d.events.size()));
}

void BM_Track(benchmark::State& state) {
  const Dataset& d = Data();
  TempDir dir;
  std::unique_ptr<Engine> engine = OpenEngine(dir.path());
  CreateProfiles(*engine, d.profiles);
  size_t next = 0, rejected = 0;
  for (auto _ : state) {
    Result<TrackResult> r = engine->events().Track(d.events[next++ % d.events.size()]);
    rejected += !r.ok();
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
  state.counters["rejected"] = static_cast<double>(rejected);
}

void BM_ProfileGetWarm(benchmark::State& state) {
  const Dataset& d = Data();
  TempDir dir;
  std::unique_ptr<Engine> engine = OpenEngine(dir.path());
  std::vector<std::string> ids = CreateProfiles(*engine, d.profiles);
  // Some history, so computed traits are real.
  const size_t n_events = std::min<size_t>(d.events.size(), 50000);
  for (size_t i = 0; i < n_events; i += 500) {
    std::vector<Json> b(d.events.begin() + static_cast<std::ptrdiff_t>(i),
                        d.events.begin() + static_cast<std::ptrdiff_t>(std::min(n_events, i + 500)));
    (void)engine->events().TrackBatch(b);
  }
  for (const std::string& id : ids) (void)engine->profiles().Get(id);  // warm-up
  std::mt19937_64 rng(7);
  std::vector<double> lat;
  lat.reserve(static_cast<size_t>(state.max_iterations));
  size_t missing = 0;
  for (auto _ : state) {
    const std::string& id = ids[rng() % ids.size()];
    double t0 = Now();
    Result<Json> p = engine->profiles().Get(id);
    lat.push_back((Now() - t0) * 1e6);
    missing += !p.ok();
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
  state.counters["p50_us"] = Percentile(&lat, 50);
  state.counters["p99_us"] = Percentile(&lat, 99);
  state.counters["missing"] = static_cast<double>(missing);
}

// Fixed iteration counts: each benchmark walks the events once (setup is too costly to repeat).
void BatchArgs(benchmark::internal::Benchmark* b) { b->UseRealTime()->Unit(benchmark::kMillisecond); }

}  // namespace
}  // namespace cdp::bench

int main(int argc, char** argv) {
  using namespace cdp::bench;
  const size_t events = EnvSize("CDP_BENCH_EVENTS", 200000);
  for (int batch : {100, 500}) {
    benchmark::RegisterBenchmark("BM_TrackBatch", BM_TrackBatch)
        ->Arg(batch)
        ->Iterations(static_cast<int64_t>(events / batch))
        ->Apply(BatchArgs);
    benchmark::RegisterBenchmark("BM_RawRocksDBBatch", BM_RawRocksDBBatch)
        ->Arg(batch)
        ->Iterations(static_cast<int64_t>(events / batch))
        ->Apply(BatchArgs);
  }
  benchmark::RegisterBenchmark("BM_Track", BM_Track)
      ->Iterations(static_cast<int64_t>(std::min<size_t>(events, 50000)))
      ->UseRealTime()
      ->Unit(benchmark::kMicrosecond);
  benchmark::RegisterBenchmark("BM_ProfileGetWarm", BM_ProfileGetWarm)
      ->Iterations(100000)
      ->UseRealTime()
      ->Unit(benchmark::kMicrosecond);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  Data();  // generate before any timing
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
