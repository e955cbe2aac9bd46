// Copyright 2026 The libcdp Authors.
//
// cdp_bench: a whole-system benchmark driver in the spirit of RocksDB's db_bench. In one process it measures
//
//   (a) raw RocksDB: WriteBatches of the events' JSON (key: 16 bytes), WAL on, no fsync: the storage floor
//       (median of three runs, each into a fresh database)
//   (b) libcdp Events::TrackBatch, batches of --batch events (std::vector<Json>), profiles created first
//   (j) libcdp Events::TrackBatchJson, the same batches as JSON text (the events' bytes, as REST and SDKs send
//       them, and as the raw baseline writes them), into a fresh database
//   (c) libcdp Events::Track, one event per call
//   (d) libcdp Profiles::Get of random ids, warm: p50 / p99 latency
//   (s) libcdp Events::Track with 100 live segments, against the same calls without segments (baseline, same run):
//       the median time each call adds to keep membership exact before it returns
//   (e) with --server-bin: the REST API, POST /api/cdp/events/batch of --batch events from --rest-threads clients
//       over loopback, against a cdp-server it starts (and stops)
//
// and prints a table with rates, the ratio libcdp / raw and PASS / FAIL against the targets:
//   batch >= 150,000 events/s and >= 0.5 x raw;  single >= 50,000 events/s;  get p99 < 100 us;  REST >= 20,000/s.
//
//   cdp_bench [--events 200000] [--profiles 20000] [--batch 500] [--single 50000] [--gets 100000]
//             [--dir /tmp] [--seed 42] [--server-bin build/examples/server/cdp-server] [--rest-threads 3]
//             [--strict] [--no-event-ids] [--steps abjce]
//
// Data: the demo data set (src/demo/generator.h), generated before any timing. Every step uses a fresh database
// in a new directory under --dir, removed afterwards. --strict makes the exit code 1 when a target is missed.
// --no-event-ids leaves out the events' ids (libcdp then generates them and skips its duplicate check).
// --steps runs only some steps (letters: a raw, b TrackBatch and d Get, j TrackBatchJson, c Track, s Track with live
// segments, e REST), e.g.
// to profile one of them.

#include <httplib.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "bench_util.h"
#include "fmt/format.h"

extern char** environ;

namespace cdp::bench {
namespace {

// Events of profiles that denied tracking consent are refused (the demo data has such profiles): the product working
// as it should, not a failed ingest. Steps count them apart from other rejections, and only those fail a target.
bool ConsentRefusal(const Status& s) {
  return s.code() == StatusCode::kFailedPrecondition && s.field() == "consent.tracking";
}
// A batch's refusals for consent; `first_other` gets the first other rejection, when it is still empty.
size_t ConsentRefusals(const BatchResult& r, std::string* first_other) {
  size_t refused = 0;
  for (const BatchItemResult& it : r.items) {
    if (it.status.ok()) continue;
    if (ConsentRefusal(it.status)) {
      ++refused;
    } else if (first_other->empty()) {
      *first_other = it.status.ToString();
    }
  }
  return refused;
}

struct Flags {
  size_t events = 200000;
  size_t profiles = 20000;
  size_t batch = 500;
  size_t single = 50000;
  size_t gets = 100000;
  std::string dir;
  uint64_t seed = 42;
  std::string server_bin;
  int rest_threads = 3;
  int writers = 1;  // threads calling TrackBatch in (b)
  bool strict = false;
  bool event_ids = true;
  std::string steps = "abjcse";  // a raw, b TrackBatch + d Get, j TrackBatchJson, c Track, s live segments, e REST
};

constexpr double kBatchTarget = 150000;
constexpr double kBatchRawRatioTarget = 0.5;
constexpr double kSingleTarget = 50000;
constexpr double kGetP99TargetUs = 100;
constexpr double kRestTarget = 20000;

std::unique_ptr<Engine> OpenEngine(const std::string& dir) {
  Result<std::unique_ptr<Engine>> e = Engine::Open(Options{}, dir);
  if (!e.ok()) {
    std::fprintf(stderr, "cdp_bench: open %s failed: %s\n", dir.c_str(), e.status().ToString().c_str());
    std::exit(2);
  }
  return std::move(e).value();
}

struct Row {
  std::string step;
  size_t items = 0;
  double seconds = 0;
  std::string rate;
  std::string target;
  std::string verdict;  // PASS / FAIL / ""
};

std::string Fmt(const char* fmt, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, fmt, v);
  return buf;
}

// Starts `bin --data DIR --port 0 --host 127.0.0.1`; returns its pid and port, or nullopt.
struct Server {
  pid_t pid = -1;
  int port = 0;
  std::string key;  // the key the server made up for its run (it needs one on every request)
};

std::optional<Server> StartServer(const std::string& bin, const std::string& dir) {
  int fds[2];
  if (pipe(fds) != 0) return std::nullopt;
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO);
  posix_spawn_file_actions_addclose(&actions, fds[0]);
  std::vector<std::string> args = {bin, "--data", dir, "--port", "0", "--host", "127.0.0.1"};
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<char*> env;  // without CDP_API_KEY: the server makes up a key and prints it (not on a command line)
  for (char** e = environ; *e != nullptr; ++e) {
    if (std::strncmp(*e, "CDP_API_KEY=", 12) != 0) env.push_back(*e);
  }
  env.push_back(nullptr);
  pid_t pid;
  int rc = posix_spawn(&pid, bin.c_str(), &actions, nullptr, argv.data(), env.data());
  posix_spawn_file_actions_destroy(&actions);
  close(fds[1]);
  if (rc != 0) {
    close(fds[0]);
    std::fprintf(stderr, "cdp_bench: cannot start %s: %s\n", bin.c_str(), std::strerror(rc));
    return std::nullopt;
  }
  // Read stdout until the "listening" line (the server prints it once bound).
  std::string out;
  char buf[256];
  const std::string marker = "listening on http://";
  while (out.find('\n', out.find(marker) == std::string::npos ? out.size() : out.find(marker)) == std::string::npos) {
    ssize_t n = read(fds[0], buf, sizeof buf);
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  close(fds[0]);  // the server's later stdout writes go nowhere; it prints nothing more on the happy path
  size_t at = out.find(marker);
  if (at == std::string::npos) {
    std::fprintf(stderr, "cdp_bench: server did not report its port; output: %s\n", out.c_str());
    kill(pid, SIGTERM);
    waitpid(pid, nullptr, 0);
    return std::nullopt;
  }
  size_t colon = out.find(':', at + marker.size());
  Server s;
  s.pid = pid;
  s.port = std::atoi(out.c_str() + colon + 1);
  const std::string key_marker = "(--api-key or CDP_API_KEY to choose one): ";
  if (size_t k = out.find(key_marker); k != std::string::npos) {
    s.key = out.substr(k + key_marker.size(), out.find('\n', k) - k - key_marker.size());
  }
  if (s.key.empty()) {
    std::fprintf(stderr, "cdp_bench: the server printed no key; output: %s\n", out.c_str());
    kill(pid, SIGTERM);
    waitpid(pid, nullptr, 0);
    return std::nullopt;
  }
  return s;
}

void StopServer(const Server& s) {
  kill(s.pid, SIGTERM);
  int status = 0;
  waitpid(s.pid, &status, 0);
}

int Run(const Flags& f) {
  std::printf("cdp_bench: %zu profiles, %zu events, batch %zu, seed %llu\n", f.profiles, f.events, f.batch,
              static_cast<unsigned long long>(f.seed));
  double t = Now();
  Dataset d = Dataset::Make(f.profiles, f.events, f.seed, f.event_ids);
  std::printf("generated in %.2fs: %zu events, %.0f bytes/event on average\n", Now() - t, d.events.size(),
              static_cast<double>(d.event_bytes) / static_cast<double>(std::max<size_t>(1, d.events.size())));
  std::fflush(stdout);
  std::vector<Row> rows;
  bool all_pass = true;
  auto verdict = [&](bool ok) {
    all_pass &= ok;
    return std::string(ok ? "PASS" : "FAIL");
  };

  // (a) raw RocksDB: three runs, each into a fresh database; the median counts.
  double raw_rate = 0;
  double raw_cpu_us = 0;
  auto step = [&](char c) { return f.steps.find(c) != std::string::npos; };
  if (step('a')) {
    std::vector<double> runs, cpu_runs;
    for (int run = 0; run < 3; ++run) {
      TempDir dir(f.dir, "cdp-bench-raw");
      std::unique_ptr<rocksdb::DB> db = OpenRawDb(dir.path());
      double t0 = Now(), c0 = CpuNow();
      if (!RawWrite(db.get(), d.event_text, 0, d.event_text.size(), f.batch, 0)) return 2;
      runs.push_back(Now() - t0);
      cpu_runs.push_back(CpuNow() - c0);
    }
    double secs = Percentile(&runs, 50);
    raw_rate = static_cast<double>(d.events.size()) / secs;
    rows.push_back({"(a) raw RocksDB WriteBatch(" + std::to_string(f.batch) + ")", d.events.size(), secs,
                    Fmt("%.0f /s", raw_rate), "baseline", ""});
    raw_cpu_us = Percentile(&cpu_runs, 50) * 1e6 / static_cast<double>(d.events.size());
    std::printf("(a) raw: %.0f events/s, %.2f us CPU/event\n", raw_rate, raw_cpu_us);
    std::fflush(stdout);
  }

  // (b) TrackBatch, then (d) Get on the same database.
  if (step('b')) {
    TempDir dir(f.dir, "cdp-bench-batch");
    std::unique_ptr<Engine> engine = OpenEngine(dir.path());
    double t0 = Now();
    std::vector<std::string> ids = CreateProfiles(*engine, d.profiles);
    double psecs = Now() - t0;
    rows.push_back({"    profiles Create (setup)", ids.size(), psecs,
                    Fmt("%.0f /s", static_cast<double>(ids.size()) / psecs), "", ""});
    std::printf("    profiles: %.0f creates/s\n", static_cast<double>(ids.size()) / psecs);
    std::fflush(stdout);

    size_t accepted = 0, rejected = 0;
    std::string first_error;
    std::vector<std::vector<Json>> batches;  // built before timing: copying Json is not libcdp's cost
    for (size_t i = 0; i < d.events.size(); i += f.batch) {
      batches.emplace_back(d.events.begin() + static_cast<std::ptrdiff_t>(i),
                           d.events.begin() + static_cast<std::ptrdiff_t>(std::min(d.events.size(), i + f.batch)));
    }
    // --writers threads share the batches (thread t takes batches t, t + writers, ...).
    const size_t writers = static_cast<size_t>(std::max(1, f.writers));
    std::vector<size_t> acc(writers, 0), rej(writers, 0), refused(writers, 0);
    std::vector<std::string> errors(writers);
    std::atomic<bool> failed{false};
    std::printf("    (b) timing starts\n");  // a marker for profilers attaching now (perf record -p)
    std::fflush(stdout);
    t0 = Now();
    double c0 = CpuNow(), tc0 = ThreadCpuNow();
    auto work = [&](size_t t) {
      for (size_t b = t; b < batches.size(); b += writers) {
        Result<BatchResult> r = engine->events().TrackBatch(batches[b]);
        if (!r.ok()) {
          errors[t] = r.status().ToString();
          failed = true;
          return;
        }
        acc[t] += r->accepted;
        rej[t] += r->rejected;
        if (r->rejected > 0) refused[t] += ConsentRefusals(*r, &errors[t]);
      }
    };
    std::vector<std::thread> pool;
    for (size_t t = 1; t < writers; ++t) pool.emplace_back(work, t);
    work(0);
    for (auto& th : pool) th.join();
    if (failed) {
      std::fprintf(stderr, "cdp_bench: TrackBatch failed: %s\n",
                   errors[0].empty() ? errors[writers - 1].c_str() : errors[0].c_str());
      return 2;
    }
    size_t consent_refused = 0;
    for (size_t t = 0; t < writers; ++t) {
      accepted += acc[t];
      rejected += rej[t];
      consent_refused += refused[t];
      if (first_error.empty()) first_error = errors[t];
    }
    double secs = Now() - t0;
    {
      // The calling thread's CPU is per event of its own (one writer's share of the batches): what the splits over
      // a second thread leave it, the part of a batch that decides one writer's rate.
      const double us_per = 1e6 / static_cast<double>(std::max<size_t>(1, d.events.size()));
      std::printf("    (b) per event: %.2f us wall, %.2f us CPU in a calling thread, %.2f us CPU in all threads\n",
                  secs * us_per, (ThreadCpuNow() - tc0) * us_per * static_cast<double>(writers),
                  (CpuNow() - c0) * us_per);
    }
    double rate = static_cast<double>(d.events.size()) / secs;
    double ratio = raw_rate > 0 ? rate / raw_rate : 0;
    rows.push_back({"(b) libcdp TrackBatch(" + std::to_string(f.batch) + "), " + std::to_string(writers) + " writer" +
                        (writers > 1 ? "s" : ""),
                    d.events.size(), secs, Fmt("%.0f /s", rate), ">= 150000 /s",
                    verdict(rate >= kBatchTarget && rejected == consent_refused)});
    rows.push_back(
        {"    ratio libcdp / raw", 0, 0, Fmt("%.3f", ratio), ">= 0.5", verdict(ratio >= kBatchRawRatioTarget)});
    double cpu_us = (CpuNow() - c0) * 1e6 / static_cast<double>(d.events.size());
    std::printf(
        "(b) TrackBatch: %.0f events/s (%zu accepted, %zu rejected, %zu of them for tracking consent%s%s), %.2f us "
        "CPU/event (%.2f x raw)\n",
        rate, accepted, rejected, consent_refused, first_error.empty() ? "" : "; first other: ", first_error.c_str(),
        cpu_us, raw_cpu_us > 0 ? cpu_us / raw_cpu_us : 0);
    std::fflush(stdout);

    // (d) Get: warm-up pass over every id, then random ids.
    for (const std::string& id : ids) (void)engine->profiles().Get(id);
    std::mt19937_64 rng(f.seed);
    std::vector<double> lat;
    lat.reserve(f.gets);
    size_t missing = 0;
    t0 = Now();
    for (size_t i = 0; i < f.gets; ++i) {
      const std::string& id = ids[rng() % ids.size()];
      double g0 = Now();
      Result<Json> p = engine->profiles().Get(id);
      lat.push_back((Now() - g0) * 1e6);
      missing += !p.ok();
    }
    secs = Now() - t0;
    double p50 = Percentile(&lat, 50), p99 = Percentile(&lat, 99), p999 = Percentile(&lat, 99.9);
    rows.push_back({"(d) profile Get (warm)", f.gets, secs,
                    Fmt("p50 %.1f us", p50) + Fmt(", p99 %.1f us", p99) + Fmt(", p99.9 %.1f us", p999), "p99 < 100 us",
                    verdict(p99 < kGetP99TargetUs && missing == 0)});
    std::printf("(d) Get: p50 %.1f us, p99 %.1f us, %.0f gets/s, %zu missing\n", p50, p99,
                static_cast<double>(f.gets) / secs, missing);
    std::fflush(stdout);
  }

  // (j) TrackBatchJson: the same batches as JSON text (what REST and the SDKs send), into a fresh database.
  if (step('j')) {
    TempDir dir(f.dir, "cdp-bench-batch-json");
    std::unique_ptr<Engine> engine = OpenEngine(dir.path());
    CreateProfiles(*engine, d.profiles);
    std::vector<std::string> bodies;  // built before timing
    for (size_t i = 0; i < d.event_text.size(); i += f.batch) {
      std::string body = "[";
      for (size_t j = i; j < std::min(d.event_text.size(), i + f.batch); ++j) {
        if (j > i) body += ',';
        body += d.event_text[j];
      }
      body += ']';
      bodies.push_back(std::move(body));
    }
    const size_t writers = static_cast<size_t>(std::max(1, f.writers));
    std::vector<size_t> rej(writers, 0), refused(writers, 0);
    std::vector<std::string> errors(writers);
    std::atomic<bool> failed{false};
    double t0 = Now(), c0 = CpuNow();
    auto work = [&](size_t t) {
      for (size_t b = t; b < bodies.size(); b += writers) {
        Result<BatchResult> r = engine->events().TrackBatchJson(bodies[b]);
        if (!r.ok()) {
          errors[t] = r.status().ToString();
          failed = true;
          return;
        }
        rej[t] += r->rejected;
        if (r->rejected > 0) refused[t] += ConsentRefusals(*r, &errors[t]);
      }
    };
    std::vector<std::thread> pool;
    for (size_t t = 1; t < writers; ++t) pool.emplace_back(work, t);
    work(0);
    for (auto& th : pool) th.join();
    if (failed) {
      std::fprintf(stderr, "cdp_bench: TrackBatchJson failed: %s\n", errors[0].c_str());
      return 2;
    }
    size_t rejected = 0, consent_refused = 0;
    std::string first_other;
    for (size_t t = 0; t < writers; ++t) {
      rejected += rej[t];
      consent_refused += refused[t];
      if (first_other.empty()) first_other = errors[t];
    }
    double secs = Now() - t0;
    double rate = static_cast<double>(d.events.size()) / secs;
    double ratio = raw_rate > 0 ? rate / raw_rate : 0;
    rows.push_back({"(j) libcdp TrackBatchJson(" + std::to_string(f.batch) + "), " + std::to_string(writers) +
                        " writer" + (writers > 1 ? "s" : ""),
                    d.events.size(), secs, Fmt("%.0f /s", rate), ">= 150000 /s",
                    verdict(rate >= kBatchTarget && rejected == consent_refused)});
    rows.push_back(
        {"    ratio libcdp / raw", 0, 0, Fmt("%.3f", ratio), ">= 0.5", verdict(ratio >= kBatchRawRatioTarget)});
    double cpu_us = (CpuNow() - c0) * 1e6 / static_cast<double>(d.events.size());
    std::printf(
        "(j) TrackBatchJson: %.0f events/s (%zu rejected, %zu of them for tracking consent%s%s), %.2f us CPU/event "
        "(%.2f x raw)\n",
        rate, rejected, consent_refused, first_other.empty() ? "" : "; first other: ", first_other.c_str(), cpu_us,
        raw_cpu_us > 0 ? cpu_us / raw_cpu_us : 0);
    std::fflush(stdout);
  }

  // (c) single Track.
  if (step('c')) {
    TempDir dir(f.dir, "cdp-bench-single");
    std::unique_ptr<Engine> engine = OpenEngine(dir.path());
    CreateProfiles(*engine, d.profiles);
    const size_t n = std::min(f.single, d.events.size());
    size_t rejected = 0;
    std::printf("    (c) timing starts\n");
    std::fflush(stdout);
    double t0 = Now(), c0 = CpuNow(), tc0 = ThreadCpuNow();
    // --writers threads share the events (thread t tracks events t, t + writers, ...), as a server's connections
    // would; refusals are kept aside and reported after the timing.
    const size_t writers = static_cast<size_t>(std::max(1, f.writers));
    std::vector<std::vector<Status>> refused_by(writers);
    auto work = [&](size_t t) {
      for (size_t i = t; i < n; i += writers) {
        auto tracked = engine->events().Track(d.events[i]);
        if (!tracked.ok()) refused_by[t].push_back(tracked.status());
      }
    };
    std::vector<std::thread> pool;
    for (size_t t = 1; t < writers; ++t) pool.emplace_back(work, t);
    work(0);
    for (auto& th : pool) th.join();
    double secs = Now() - t0;
    std::vector<Status> refusals;
    for (auto& r : refused_by) refusals.insert(refusals.end(), r.begin(), r.end());
    rejected = refusals.size();
    const size_t consent_refused = static_cast<size_t>(std::count_if(refusals.begin(), refusals.end(), ConsentRefusal));
    auto other = std::find_if_not(refusals.begin(), refusals.end(), ConsentRefusal);
    const double us_per = 1e6 / static_cast<double>(std::max<size_t>(1, n));
    // The calling thread's CPU is per call of its own (one writer's share of the events).
    std::printf("    (c) per call: %.1f us wall, %.1f us CPU in a calling thread, %.1f us CPU in all threads\n",
                secs * us_per, (ThreadCpuNow() - tc0) * us_per * static_cast<double>(writers),
                (CpuNow() - c0) * us_per);
    double rate = static_cast<double>(n) / secs;
    rows.push_back(
        {std::string("(c) libcdp Track (single), ") + std::to_string(writers) + " writer" + (writers > 1 ? "s" : ""), n,
         secs, Fmt("%.0f /s", rate), ">= 50000 /s", verdict(rate >= kSingleTarget && rejected == consent_refused)});
    std::printf("(c) Track: %.0f events/s (%zu rejected, %zu of them for tracking consent%s%s)\n", rate, rejected,
                consent_refused, other == refusals.end() ? "" : "; first other: ",
                other == refusals.end() ? "" : other->ToString().c_str());
    std::fflush(stdout);
  }

  // (s) single Track with 100 live segments against the same without (the baseline, run first): each call
  // re-evaluates the segments its event can affect before it returns (docs/segments.md, "In the engine").
  if (step('s')) {
    // Two engines side by side, one without segments and one with 100 live segments, fed the same calls
    // alternately, so both see the same machine (this VM's speed drifts by tens of percent within minutes).
    const size_t n = std::min(f.single, d.events.size());
    constexpr size_t kHeavyEvents = 20'000, kPatches = 200;  // Patch of one profile holding 20,000 events
    const char* countries[] = {"US", "GB", "DE", "FR", "CA"};
    TempDir base_dir(f.dir, "cdp-bench-live-base"), live_dir(f.dir, "cdp-bench-live");
    std::unique_ptr<Engine> base_engine = OpenEngine(base_dir.path()), live_engine = OpenEngine(live_dir.path());
    CreateProfiles(*base_engine, d.profiles);
    CreateProfiles(*live_engine, d.profiles);
    const char* types[] = {"purchase", "page_view", "product_view", "add_to_cart", "email_open", "app_usage"};
    for (int i = 0; i < 100; ++i) {
      std::string rule;
      switch (i % 4) {
        case 0:
          rule = fmt::format(R"({{"event": "{}", "count": {{">=": {}}}}})", types[i % 6], 1 + i % 3);
          break;
        case 1:
          rule = fmt::format(R"({{"event": "purchase", "within": "{}d", "sum": "properties.revenue",
                                 "value": {{">=": {}}}}})",
                             7 + i, 10 * (i % 7));
          break;
        case 2:
          rule = fmt::format(R"({{"conditions": [{{"field": "attributes.country", "operator": "=", "value": "{}"}},
                                                {{"field": "computed.ltv", "operator": ">", "value": {}}}]}})",
                             countries[i % 5], i);
          break;
        default:
          rule = fmt::format(R"({{"conditions": [{{"field": "attributes.country", "operator": "=", "value": "{}"}},
                                                {{"event": "{}", "within": "30d"}}]}})",
                             countries[i % 5], types[i % 6]);
      }
      auto created =
          live_engine->segments().Create(*Json::Parse(fmt::format(R"({{"name": "s{}", "rule": {}}})", i, rule)));
      if (!created.ok()) {
        std::fprintf(stderr, "cdp_bench: segment %d: %s\n", i, created.status().ToString().c_str());
        return 2;
      }
    }
    std::vector<double> base, live, base_cpu, live_cpu;  // wall and calling-thread CPU time per Track, us
    size_t rejected = 0;
    double base_secs = 0, live_secs = 0;
    auto track = [&](Engine& engine, const Json& event, std::vector<double>* wall, std::vector<double>* cpu,
                     double* secs) {
      const double w0 = Now(), c0 = ThreadCpuNow();
      // A refusal for denied tracking consent (demo data has such people) is an answer, not a failure.
      const Status tracked = engine.events().Track(event).status();
      rejected += !tracked.ok() && tracked.code() != StatusCode::kFailedPrecondition;
      const double cpu_us = (ThreadCpuNow() - c0) * 1e6, wall_us = (Now() - w0) * 1e6;
      cpu->push_back(cpu_us);
      wall->push_back(wall_us);
      *secs += wall_us / 1e6;
    };
    for (size_t i = 0; i < n; ++i) {
      track(*base_engine, d.events[i], &base, &base_cpu, &base_secs);
      track(*live_engine, d.events[i], &live, &live_cpu, &live_secs);
    }
    std::vector<double> base_patch, live_patch;
    std::string heavy_ids[2];
    std::unique_ptr<Engine>* engines[2] = {&base_engine, &live_engine};
    for (int e = 0; e < 2; ++e) {
      for (size_t i = 0; i < kHeavyEvents; i += 1000) {
        std::vector<Json> batch;
        for (size_t k = i; k < i + 1000; ++k) {
          batch.push_back(*Json::Parse(fmt::format(
              R"({{"type": "page_view", "customerId": "heavy", "timestamp": {}, "properties": {{"url": "/p{}"}}}})",
              1'700'000'000'000 + static_cast<int64_t>(k) * 1000, k % 50)));
        }
        auto r = (*engines[e])->events().TrackBatch(batch);
        if (!r.ok() || r->items.empty() || !r->items[0].status.ok()) return 2;
        heavy_ids[e] = r->items[0].result.profile_id;
      }
    }
    for (size_t i = 0; i < kPatches; ++i) {
      const Json patch = *Json::Parse(fmt::format(R"({{"attributes": {{"country": "{}"}}}})", countries[i % 5]));
      for (int e = 0; e < 2; ++e) {
        const double c0 = Now();
        rejected += !(*engines[e])->profiles().Patch(heavy_ids[e], patch).ok();
        (e == 0 ? base_patch : live_patch).push_back((Now() - c0) * 1e6);
      }
    }
    auto median = [](std::vector<double> v) {
      std::sort(v.begin(), v.end());
      return v[v.size() / 2];
    };
    const double added = median(live) - median(base);
    const double added_cpu = median(live_cpu) - median(base_cpu);
    rows.push_back({"(s) Track, no segments (baseline)", n, base_secs, Fmt("%.0f /s", n / base_secs), "", ""});
    rows.push_back({"(s) Track, 100 live segments", n, live_secs, Fmt("%.0f /s", n / live_secs), "", ""});
    rows.push_back(
        {"    added per event (median)", 0, 0, Fmt("%.1f us", added), "< 20 us", verdict(added < 20 && rejected == 0)});
    rows.push_back({"(s) Patch, 20k-event profile, 100 segments", kPatches, 0, Fmt("%.1f us", median(live_patch)),
                    Fmt("%.1f us without", median(base_patch)), ""});
    std::printf(
        "(s) Track, interleaved: median %.1f us without segments, %.1f us with 100 live segments (%.1f us "
        "added); the calling thread's CPU time %.1f and %.1f us (%.1f us added)\n",
        median(base), median(live), added, median(base_cpu), median(live_cpu), added_cpu);
    std::printf(
        "(s) Patch of a profile with %zu events: median %.1f us without segments, %.1f us with 100 live "
        "segments\n",
        kHeavyEvents, median(base_patch), median(live_patch));
    std::fflush(stdout);
  }

  // (e) REST over loopback.
  if (step('e') && !f.server_bin.empty()) {
    TempDir dir(f.dir, "cdp-bench-rest");
    {
      std::unique_ptr<Engine> engine = OpenEngine(dir.path());
      CreateProfiles(*engine, d.profiles);
    }  // closed: the server opens it
    std::optional<Server> server = StartServer(f.server_bin, dir.path());
    if (!server) return 2;
    // Each client thread gets the events of its persons (person % threads), in order, so no person's events are
    // reordered between connections; bodies are JSON arrays of --batch events, built before timing.
    const int threads = std::max(1, f.rest_threads);
    std::vector<std::vector<std::string>> bodies(static_cast<size_t>(threads));
    {
      std::vector<std::string> cur(static_cast<size_t>(threads));
      std::vector<size_t> count(static_cast<size_t>(threads), 0);
      for (size_t i = 0; i < d.events.size(); ++i) {
        size_t t = d.event_person[i] % static_cast<size_t>(threads);
        cur[t] += count[t] == 0 ? "[" : ",";
        cur[t] += d.event_text[i];
        if (++count[t] == f.batch) {
          bodies[t].push_back(cur[t] + "]");
          cur[t].clear();
          count[t] = 0;
        }
      }
      for (size_t t = 0; t < static_cast<size_t>(threads); ++t) {
        if (count[t] > 0) bodies[t].push_back(cur[t] + "]");
      }
    }
    std::atomic<size_t> accepted{0}, rejected{0}, http_errors{0}, consent_refused{0};
    std::string first_error;
    std::mutex mu;
    double t0 = Now();
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t) {
      pool.emplace_back([&, t]() {
        httplib::Client cli("127.0.0.1", server->port);
        cli.set_keep_alive(true);
        cli.set_read_timeout(60, 0);
        for (const std::string& body : bodies[static_cast<size_t>(t)]) {
          httplib::Result res =
              cli.Post("/api/cdp/events/batch", {{"Authorization", "Bearer " + server->key}}, body, "application/json");
          if (!res || res->status >= 300) {
            ++http_errors;
            std::lock_guard<std::mutex> lock(mu);
            if (first_error.empty()) {
              first_error = res ? std::to_string(res->status) + " " + res->body.substr(0, 300)
                                : "transport error " + httplib::to_string(res.error());
            }
            continue;
          }
          Result<Json> j = Json::Parse(res->body);
          if (j.ok()) {
            const Json* a = j->Find("accepted");
            const Json* r = j->Find("rejected");
            if (a != nullptr) accepted += static_cast<size_t>(a->as_int());
            if (r != nullptr) rejected += static_cast<size_t>(r->as_int());
            if (r != nullptr && r->as_int() > 0) {
              const Json* results = j->Find("results");
              if (results == nullptr || !results->is_array()) continue;
              for (const Json& item : results->items()) {
                const Json* error = item.Find("error");
                if (error == nullptr) continue;
                const Json* code = error->Find("code");
                const Json* field = error->Find("field");
                if (code != nullptr && code->is_string() && code->as_string() == "failed_precondition" &&
                    field != nullptr && field->is_string() && field->as_string() == "consent.tracking") {
                  ++consent_refused;
                } else {
                  std::lock_guard<std::mutex> lock(mu);
                  if (first_error.empty()) first_error = item.Dump().substr(0, 500);
                }
              }
            }
          }
        }
      });
    }
    for (std::thread& th : pool) th.join();
    double secs = Now() - t0;
    StopServer(*server);
    double rate = static_cast<double>(d.events.size()) / secs;
    rows.push_back({"(e) REST batch(" + std::to_string(f.batch) + "), " + std::to_string(threads) + " clients",
                    d.events.size(), secs, Fmt("%.0f /s", rate), ">= 20000 /s",
                    verdict(rate >= kRestTarget && rejected == consent_refused && http_errors == 0)});
    std::printf(
        "(e) REST: %.0f events/s (%zu accepted, %zu rejected, %zu of them for tracking consent, %zu HTTP errors%s%s)\n",
        rate, accepted.load(), rejected.load(), consent_refused.load(), http_errors.load(),
        first_error.empty() ? "" : "; first other: ", first_error.c_str());
  }

  std::printf("\n%-40s %10s %9s  %-40s %-14s %s\n", "step", "items", "seconds", "rate", "target", "result");
  std::printf("%s\n", std::string(120, '-').c_str());
  for (const Row& r : rows) {
    std::printf("%-40s %10s %9s  %-40s %-14s %s\n", r.step.c_str(), r.items ? std::to_string(r.items).c_str() : "",
                r.seconds > 0 ? Fmt("%.2f", r.seconds).c_str() : "", r.rate.c_str(), r.target.c_str(),
                r.verdict.c_str());
  }
  std::printf("\n%s\n", all_pass ? "ALL PASS" : "SOME TARGETS MISSED");
  return f.strict && !all_pass ? 1 : 0;
}

}  // namespace
}  // namespace cdp::bench

int main(int argc, char** argv) {
  cdp::bench::Flags f;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "cdp_bench: %s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--events")
      f.events = std::stoull(value());
    else if (a == "--profiles")
      f.profiles = std::stoull(value());
    else if (a == "--batch")
      f.batch = std::max<size_t>(1, std::stoull(value()));
    else if (a == "--single")
      f.single = std::stoull(value());
    else if (a == "--gets")
      f.gets = std::stoull(value());
    else if (a == "--dir")
      f.dir = value();
    else if (a == "--seed")
      f.seed = std::stoull(value());
    else if (a == "--server-bin")
      f.server_bin = value();
    else if (a == "--rest-threads")
      f.rest_threads = std::stoi(value());
    else if (a == "--writers")
      f.writers = std::stoi(value());
    else if (a == "--strict")
      f.strict = true;
    else if (a == "--no-event-ids")
      f.event_ids = false;
    else if (a == "--steps")
      f.steps = value();
    else {
      std::fprintf(stderr,
                   "usage: cdp_bench [--events N] [--profiles N] [--batch N] [--single N] [--gets N] [--dir DIR]\n"
                   "                 [--seed N] [--server-bin PATH] [--rest-threads N] [--writers N] [--strict]\n"
                   "                 [--no-event-ids] [--steps abjce]\n");
      return 2;
    }
  }
  if (f.profiles == 0) {
    std::fprintf(stderr, "cdp_bench: --profiles must be > 0\n");
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  return cdp::bench::Run(f);
}
