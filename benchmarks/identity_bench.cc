// Copyright 2026 The libcdp Authors.
//
// identity_bench: identity resolution at scale, against the targets (docs/identity.md, docs/performance.md).
//   (a) events that carry three identifiers each (customerId, email, deviceId), TrackBatch of 500: >= 100,000/s;
//       measured against libcdp's own rate for the same events carrying only a profileId (same run), to show what
//       resolution costs;
//   (b) a bulk import of profile records with three identifiers each (customerId, email, phone) through
//       Identity::IdentifyBatch (1,000 per call): the issue asks 1,000,000 records / 3,000,000 identifiers in under 30
//       s.
//   (c) fuzzy matching on write: FEBRL dataset4a and half of dataset4b loaded as profiles and the model trained
//       (FindDuplicates); then the other half of dataset4b (each a distorted copy of a 4a person, no identifier in
//       common) is created one profile at a time with onWrite on. Reports creates/s against the same creates with
//       onWrite off (same run), the time until every new profile is matched, and the share of new profiles
//       proposed with their 4a twin (recall).
//
//   (a) and (b) are run again from --writers threads (default 2; 1 skips it): batches sent concurrently, as a
//   server's request threads or a parallel loader send them.
//
//   identity_bench [--persons 20000] [--events 200000] [--imports 100000] [--writers 2] [--dir /tmp]
//                  [--steps abpc] (a: (a); b: (b); p: (b'); c: (c); --skip-ab is --steps c)

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "bench_util.h"
#include "cdp/cdp.h"
#include "identity/linkage.h"

namespace cdp::bench {
namespace {

struct Flags {
  size_t persons = 20000;
  size_t events = 200000;
  size_t imports = 100000;
  std::string dir;
  std::string steps = "abpc";  // a: (a); b: (b); p: (b'); c: (c)
  size_t writers = 2;          // (a) and (b) are also run with this many calling threads (when above 1)
};

std::unique_ptr<Engine> OpenOrDie(const std::string& path) {
  auto engine = Engine::Open(Options(), path);
  if (!engine.ok()) {
    std::fprintf(stderr, "open failed: %s\n", engine.status().ToString().c_str());
    std::exit(1);
  }
  return std::move(engine).value();
}

// Runs work(i) for i in [0, n) on `threads` threads, each taking the next i in turn; false when a call of work
// returned false (the others stop at their next i).
bool OnThreads(size_t threads, size_t n, const std::function<bool(size_t)>& work) {
  std::atomic<size_t> next{0};
  std::atomic<bool> ok{true};
  auto loop = [&] {
    for (size_t i = next++; i < n && ok; i = next++) {
      if (!work(i)) ok = false;
    }
  };
  std::vector<std::thread> others;
  for (size_t t = 1; t < threads; ++t) others.emplace_back(loop);
  loop();
  for (std::thread& t : others) t.join();
  return ok;
}

// Tracks `events` in batches of 500 from `writers` threads, each sending the next batch; returns events/s, or a
// negative value when an event was rejected. *cpu_us, when given, receives the process's CPU time per event (all
// threads, background work included): steadier than the rate on a shared VM.
double TrackAll(Engine& engine, const std::vector<Json>& events, size_t writers = 1, double* cpu_us = nullptr) {
  const double start = Now(), cpu_start = CpuNow();
  const size_t batches = (events.size() + 499) / 500;
  const bool ok = OnThreads(writers, batches, [&](size_t b) {
    const size_t i = b * 500;
    std::vector<Json> batch(events.begin() + static_cast<ptrdiff_t>(i),
                            events.begin() + static_cast<ptrdiff_t>(std::min(events.size(), i + 500)));
    auto r = engine.events().TrackBatch(batch);
    if (!r.ok() || r->rejected > 0) {
      std::fprintf(stderr, "TrackBatch: %s\n",
                   r.ok() ? r->ToJson().Dump().substr(0, 400).c_str() : r.status().ToString().c_str());
      return false;
    }
    return true;
  });
  if (cpu_us != nullptr) *cpu_us = (CpuNow() - cpu_start) * 1e6 / static_cast<double>(events.size());
  return ok ? static_cast<double>(events.size()) / (Now() - start) : -1;
}

// A FEBRL file as profile inputs (no identifiers), and each record's person ("rec-12").
struct Febrl {
  std::vector<Json> profiles;
  std::vector<std::string> person;
};

Febrl LoadFebrl(const std::string& file) {
  std::ifstream in(std::string(CDP_FEBRL_DIR) + "/" + file);
  std::stringstream text;
  text << in.rdbuf();
  auto records = internal::linkage::ParseDelimited(text.str(), {.separator = ", "});
  if (!records.ok()) {
    std::fprintf(stderr, "%s: %s\n", file.c_str(), records.status().ToString().c_str());
    std::exit(1);
  }
  auto col = [&](const char* name) { return static_cast<size_t>(records->FieldIndex(name)); };
  Febrl out;
  for (const auto& row : records->rows) {
    Json attributes = Json::Object();
    auto set = [&](const char* field, const char* column) {
      if (!row[col(column)].empty()) attributes.Set(field, row[col(column)]);
    };
    set("firstName", "given_name");
    set("lastName", "surname");
    set("postalCode", "postcode");
    set("city", "suburb");
    Json custom = Json::Object();
    if (!row[col("date_of_birth")].empty()) custom.Set("birthDate", row[col("date_of_birth")]);
    attributes.Set("customFields", std::move(custom));
    out.profiles.push_back(Json::Object().Set("attributes", std::move(attributes)));
    const std::string& rec = row[col("rec_id")];
    out.person.push_back(rec.substr(0, rec.find('-', 4)));
  }
  return out;
}

std::string CreateOrDie(Engine& engine, const Json& profile) {
  auto p = engine.profiles().Create(profile);
  if (!p.ok()) {
    std::fprintf(stderr, "create: %s\n", p.status().ToString().c_str());
    std::exit(1);
  }
  return p->Find("id")->as_string();
}

// (c): returns creates/s with onWrite as given; fills the matching figures when on.
double MatchOnWrite(const Flags& f, bool on, double* drain_secs, double* recall, size_t* created) {
  const Febrl a = LoadFebrl("dataset4a.csv"), b = LoadFebrl("dataset4b.csv");
  TempDir dir(f.dir, "cdp-identity-bench");
  auto engine = OpenOrDie(dir.path());
  std::map<std::string, std::string> profile_of;  // person -> 4a profile id
  for (size_t i = 0; i < a.profiles.size(); ++i) profile_of[a.person[i]] = CreateOrDie(*engine, a.profiles[i]);
  const size_t half = b.profiles.size() / 2;
  for (size_t i = 0; i < half; ++i) CreateOrDie(*engine, b.profiles[i]);
  Json config = engine->identity().MatchingConfig().value();
  config.Set("onWrite", on);
  if (!engine->identity().SetMatchingConfig(config).ok() || !engine->identity().FindDuplicates().ok() ||
      !engine->identity().MatchPending().ok()) {
    std::fprintf(stderr, "matching set-up failed\n");
    std::exit(1);
  }
  std::vector<std::pair<std::string, std::string>> twins;  // (new profile, its 4a twin)
  const double start = Now();
  for (size_t i = half; i < b.profiles.size(); ++i) {
    twins.emplace_back(CreateOrDie(*engine, b.profiles[i]), profile_of[b.person[i]]);
  }
  const double create_secs = Now() - start;
  *created = twins.size();
  if (!on) return static_cast<double>(twins.size()) / create_secs;
  if (!engine->identity().MatchPending().ok()) std::exit(1);  // what the matcher thread has not done yet
  *drain_secs = Now() - start;
  std::set<std::pair<std::string, std::string>> proposed;
  const Json all = engine->identity().Proposals("").value();
  for (const Json& p : all.items()) {
    const auto& ids = p.Find("profileIds")->items();
    proposed.emplace(ids[0].as_string(), ids[1].as_string());
    proposed.emplace(ids[1].as_string(), ids[0].as_string());
  }
  size_t found = 0;
  for (const auto& pair : twins) found += proposed.count(pair);
  *recall = static_cast<double>(found) / static_cast<double>(twins.size());
  return static_cast<double>(twins.size()) / create_secs;
}

int RunMatching(const Flags& f) {
  double drain = 0, recall = 0;
  size_t created = 0;
  const double off = MatchOnWrite(f, false, &drain, &recall, &created);
  const double on = MatchOnWrite(f, true, &drain, &recall, &created);
  std::printf(
      "(c) matching on write, FEBRL 4a + half of 4b loaded, %zu more created one at a time: %.0f creates/s with "
      "onWrite, %.0f without (same run), ratio %.2f; all matched %.2f s after the first create (%.0f profiles/s); "
      "recall of the 4a twin %.3f\n",
      created, on, off, on / off, drain, static_cast<double>(created) / drain, recall);
  return 0;
}

// An identify request naming a person by customerId, email and phone, with a first name.
Json ImportRecord(const std::string& customer_id, const std::string& email, const std::string& phone, size_t i) {
  Json ids = Json::Object();
  ids.Set("customerId", customer_id);
  ids.Set("email", email);
  ids.Set("phone", phone);
  Json request = Json::Object();
  request.Set("identifiers", std::move(ids));
  request.Set("attributes", Json::Object().Set("firstName", "N" + std::to_string(i)));
  return request;
}

// Record i of import (b): a new person named by customerId, email and phone.
Json NewPerson(size_t i) {
  return ImportRecord("C" + std::to_string(i), "import" + std::to_string(i) + "@example.com",
                      "+1650" + std::to_string(2000000 + i % 8000000), i);
}

// Imports records 0..n-1 of `record` through IdentifyBatch, 1,000 per call, from `importers` threads, each
// building and sending the next 1,000 (with more than one, `record` must be safe to call concurrently). Returns the
// seconds taken, or -1 (and says why) when a call fails or rejects an item. *cpu_us as for TrackAll, per record.
double ImportAll(Engine& engine, size_t n, const std::function<Json(size_t)>& record, size_t importers = 1,
                 double* cpu_us = nullptr) {
  const double start = Now(), cpu_start = CpuNow();
  const bool ok = OnThreads(importers, (n + 999) / 1000, [&](size_t b) {
    std::vector<Json> batch;
    for (size_t i = b * 1000; i < std::min(n, (b + 1) * 1000); ++i) batch.push_back(record(i));
    auto r = engine.identity().IdentifyBatch(batch);
    if (!r.ok() || r->Find("rejected")->as_int() != 0) {
      std::fprintf(stderr, "IdentifyBatch: %s\n",
                   r.ok() ? r->Dump().substr(0, 400).c_str() : r.status().ToString().c_str());
      return false;
    }
    return true;
  });
  if (cpu_us != nullptr) *cpu_us = (CpuNow() - cpu_start) * 1e6 / static_cast<double>(n);
  return ok ? Now() - start : -1;
}

// (a) and (a, N writers).
int RunEvents(const Flags& f) {
  // (a) Events with three identifiers, person p's events spread over time, vs the same events by profileId.
  std::vector<Json> with_ids, by_profile;
  with_ids.reserve(f.events);
  by_profile.reserve(f.events);
  for (size_t i = 0; i < f.events; ++i) {
    size_t p = (i * 7919) % f.persons;
    std::string t = FormatTimestamp(1767225600000000LL + static_cast<int64_t>(i) * 1000000);
    Json e = Json::Object();
    e.Set("type", i % 10 == 0 ? "purchase" : "page_view");
    e.Set("timestamp", t);
    e.Set("properties", Json::Object().Set("revenue", 10).Set("path", "/p/" + std::to_string(i % 100)));
    Json a = e, b = e;
    a.Set("customerId", "C" + std::to_string(p));
    a.Set("email", "person" + std::to_string(p) + "@example.com");
    a.Set("deviceId", "dev-" + std::to_string(p));
    b.Set("profileId", "P" + std::to_string(p));
    with_ids.push_back(std::move(a));
    by_profile.push_back(std::move(b));
  }
  double with_rate, baseline_rate, with_cpu, baseline_cpu;
  {
    TempDir dir(f.dir, "cdp-identity-bench");
    auto engine = OpenOrDie(dir.path());
    std::printf("    (a, by profileId) timing starts\n");  // markers for profilers attaching now (perf record -p)
    std::fflush(stdout);
    baseline_rate = TrackAll(*engine, by_profile, 1, &baseline_cpu);
  }
  {
    TempDir dir(f.dir, "cdp-identity-bench");
    auto engine = OpenOrDie(dir.path());
    std::printf("    (a) timing starts\n");
    std::fflush(stdout);
    with_rate = TrackAll(*engine, with_ids, 1, &with_cpu);
    Json stats = engine->identity().Stats().value();
    if (stats.Find("profiles")->as_int() != static_cast<int64_t>(f.persons)) {
      std::fprintf(stderr, "expected %zu profiles, got %s\n", f.persons, stats.Dump().c_str());
      return 1;
    }
  }
  if (with_rate < 0 || baseline_rate < 0) return 1;
  std::printf(
      "(a) %zu events, 3 identifiers each, %zu persons: %.0f events/s (target >= 100000: %s); "
      "same events by profileId, same run: %.0f events/s; ratio %.2f; CPU per event %.1f / %.1f us\n",
      f.events, f.persons, with_rate, with_rate >= 100000 ? "PASS" : "FAIL", baseline_rate, with_rate / baseline_rate,
      with_cpu, baseline_cpu);
  // (a, N writers) The same events from N threads, each sending the next batch (as a server's request threads do):
  // batches of events whose profiles are known are written after the write lock is released, so one writer's
  // write overlaps the next one's resolution (docs/architecture.md, the write path).
  if (f.writers > 1) {
    TempDir dir(f.dir, "cdp-identity-bench");
    auto engine = OpenOrDie(dir.path());
    double cpu_us = 0;
    const double rate = TrackAll(*engine, with_ids, f.writers, &cpu_us);
    if (rate < 0) return 1;
    Json stats = engine->identity().Stats().value();
    if (stats.Find("profiles")->as_int() != static_cast<int64_t>(f.persons)) {
      std::fprintf(stderr, "expected %zu profiles, got %s\n", f.persons, stats.Dump().c_str());
      return 1;
    }
    std::printf(
        "(a, %zu writers) the same events from %zu threads: %.0f events/s (target >= 100000: %s); CPU per event "
        "%.1f us\n",
        f.writers, f.writers, rate, rate >= 100000 ? "PASS" : "FAIL", cpu_us);
  }

  return 0;
}

// (b) and (b, N importers).
int RunImports(const Flags& f) {
  // (b) Bulk import through Identify: each record names a new person by customerId, email and phone.
  {
    TempDir dir(f.dir, "cdp-identity-bench");
    auto engine = OpenOrDie(dir.path());
    std::printf("    (b) timing starts\n");  // a marker for profilers attaching now (perf record -p)
    std::fflush(stdout);
    double cpu_us = 0;
    const double secs = ImportAll(*engine, f.imports, NewPerson, 1, &cpu_us);
    if (secs < 0) return 1;
    double projected = secs * 1000000.0 / static_cast<double>(f.imports);
    std::printf(
        "(b) bulk import of %zu records (%zu identifiers) through IdentifyBatch(1000): %.2f s, %.0f records/s; "
        "1,000,000 records projected at %.0f s (target < 30 s: %s); CPU per record %.1f us\n",
        f.imports, f.imports * 3, secs, static_cast<double>(f.imports) / secs, projected,
        projected < 30 ? "PASS" : "FAIL", cpu_us);
  }
  // (b, N importers) The same import from N threads, each building and sending the next 1,000 records.
  if (f.writers > 1) {
    TempDir dir(f.dir, "cdp-identity-bench");
    auto engine = OpenOrDie(dir.path());
    double cpu_us = 0;
    const double secs = ImportAll(*engine, f.imports, NewPerson, f.writers, &cpu_us);
    if (secs < 0) return 1;
    Json stats = engine->identity().Stats().value();
    if (stats.Find("profiles")->as_int() != static_cast<int64_t>(f.imports)) {
      std::fprintf(stderr, "(b, %zu importers) expected %zu profiles, got %s\n", f.writers, f.imports,
                   stats.Dump().c_str());
      return 1;
    }
    double projected = secs * 1000000.0 / static_cast<double>(f.imports);
    std::printf(
        "(b, %zu importers) the same import from %zu threads: %.2f s, %.0f records/s; 1,000,000 records projected at "
        "%.0f s (target < 30 s: %s); CPU per record %.1f us\n",
        f.writers, f.writers, secs, static_cast<double>(f.imports) / secs, projected, projected < 30 ? "PASS" : "FAIL",
        cpu_us);
  }
  return 0;
}

// (b').
int RunUnifyingImport(const Flags& f) {
  // (b') The same import where a third of the records are a second source's record of a person already imported
  // (same customerId, another email and phone): those attach to the person's profile and link two identifiers.
  {
    TempDir dir(f.dir, "cdp-identity-bench");
    auto engine = OpenOrDie(dir.path());
    size_t persons = 0;
    const double secs = ImportAll(*engine, f.imports, [&persons](size_t i) {
      if (i % 3 != 2 || persons == 0) {
        const size_t p = persons++;
        return ImportRecord("C" + std::to_string(p), "import" + std::to_string(p) + "@example.com",
                            "+1650" + std::to_string(2000000 + p % 8000000), i);
      }
      const size_t p = (i * 7919) % persons;  // an earlier person
      return ImportRecord("C" + std::to_string(p), "crm" + std::to_string(i) + "@example.org",
                          "+1415" + std::to_string(2000000 + i % 8000000), i);
    });
    if (secs < 0) return 1;
    Json stats = engine->identity().Stats().value();
    if (stats.Find("profiles")->as_int() != static_cast<int64_t>(persons)) {
      std::fprintf(stderr, "(b') expected %zu profiles, got %s\n", persons, stats.Dump().c_str());
      return 1;
    }
    double projected = secs * 1000000.0 / static_cast<double>(f.imports);
    std::printf(
        "(b') bulk import of %zu records, a third of them a second record of an earlier person, unified into %zu "
        "profiles: %.2f s, %.0f records/s; 1,000,000 records projected at %.0f s (target < 30 s: %s)\n",
        f.imports, persons, secs, static_cast<double>(f.imports) / secs, projected, projected < 30 ? "PASS" : "FAIL");
  }
  return 0;
}

int Run(const Flags& f) {
  auto has = [&f](char step) { return f.steps.find(step) != std::string::npos; };
  if (has('a') && RunEvents(f) != 0) return 1;
  if (has('b') && RunImports(f) != 0) return 1;
  if (has('p') && RunUnifyingImport(f) != 0) return 1;
  return has('c') ? RunMatching(f) : 0;
}

}  // namespace
}  // namespace cdp::bench

int main(int argc, char** argv) {
  cdp::bench::Flags f;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--persons") {
      f.persons = std::stoull(value());
    } else if (a == "--events") {
      f.events = std::stoull(value());
    } else if (a == "--imports") {
      f.imports = std::stoull(value());
    } else if (a == "--dir") {
      f.dir = value();
    } else if (a == "--skip-ab") {  // kept for scripts: the same as --steps c
      f.steps = "c";
    } else if (a == "--steps") {
      f.steps = value();
    } else if (a == "--writers") {
      f.writers = std::stoull(value());
    } else {
      std::fprintf(stderr,
                   "usage: identity_bench [--persons N] [--events N] [--imports N] [--writers N] [--dir DIR] "
                   "[--steps abpc] [--skip-ab]\n");
      return 2;
    }
  }
  if (f.persons == 0 || f.events == 0 || f.writers == 0) return 2;
  return cdp::bench::Run(f);
}
