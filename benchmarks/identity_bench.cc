// Copyright 2026 The libcdp Authors.
//
// identity_bench: identity resolution at scale, against the targets (docs/identity.md, docs/performance.md).
//   (a) events that carry three identifiers each (customerId, email, deviceId), TrackBatch of 500: >= 100,000/s;
//       measured against libcdp's own rate for the same events carrying only a profileId (same run), to show what
//       resolution costs;
//   (b) a bulk import of profile records with three identifiers each (customerId, email, phone) through
//       Identity::IdentifyBatch (1,000 per call): the issue asks 1,000,000 records / 3,000,000 identifiers in under 30
//       s.
//
//   identity_bench [--persons 20000] [--events 200000] [--imports 100000] [--dir /tmp]

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "bench_util.h"
#include "cdp/cdp.h"

namespace cdp::bench {
namespace {

struct Flags {
  size_t persons = 20000;
  size_t events = 200000;
  size_t imports = 100000;
  std::string dir;
};

std::unique_ptr<Engine> OpenOrDie(const std::string& path) {
  auto engine = Engine::Open(Options(), path);
  if (!engine.ok()) {
    std::fprintf(stderr, "open failed: %s\n", engine.status().ToString().c_str());
    std::exit(1);
  }
  return std::move(engine).value();
}

// Tracks `events` in batches of 500; returns events/s, or a negative value when an event was rejected.
double TrackAll(Engine& engine, const std::vector<Json>& events) {
  double start = Now();
  for (size_t i = 0; i < events.size(); i += 500) {
    std::vector<Json> batch(events.begin() + static_cast<ptrdiff_t>(i),
                            events.begin() + static_cast<ptrdiff_t>(std::min(events.size(), i + 500)));
    auto r = engine.events().TrackBatch(batch);
    if (!r.ok() || r->rejected > 0) {
      std::fprintf(stderr, "TrackBatch: %s\n",
                   r.ok() ? r->ToJson().Dump().substr(0, 400).c_str() : r.status().ToString().c_str());
      return -1;
    }
  }
  return static_cast<double>(events.size()) / (Now() - start);
}

int Run(const Flags& f) {
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
  double with_rate, baseline_rate;
  {
    TempDir dir(f.dir, "cdp-identity-bench");
    auto engine = OpenOrDie(dir.path());
    baseline_rate = TrackAll(*engine, by_profile);
  }
  {
    TempDir dir(f.dir, "cdp-identity-bench");
    auto engine = OpenOrDie(dir.path());
    with_rate = TrackAll(*engine, with_ids);
    Json stats = engine->identity().Stats().value();
    if (stats.Find("profiles")->as_int() != static_cast<int64_t>(f.persons)) {
      std::fprintf(stderr, "expected %zu profiles, got %s\n", f.persons, stats.Dump().c_str());
      return 1;
    }
  }
  if (with_rate < 0 || baseline_rate < 0) return 1;
  std::printf(
      "(a) %zu events, 3 identifiers each, %zu persons: %.0f events/s (target >= 100000: %s); "
      "same events by profileId, same run: %.0f events/s; ratio %.2f\n",
      f.events, f.persons, with_rate, with_rate >= 100000 ? "PASS" : "FAIL", baseline_rate, with_rate / baseline_rate);

  // (b) Bulk import through Identify: each record names a person by customerId, email and phone.
  {
    TempDir dir(f.dir, "cdp-identity-bench");
    auto engine = OpenOrDie(dir.path());
    double start = Now();
    std::vector<Json> batch;
    for (size_t i = 0; i < f.imports; ++i) {
      Json ids = Json::Object();
      ids.Set("customerId", "C" + std::to_string(i));
      ids.Set("email", "import" + std::to_string(i) + "@example.com");
      ids.Set("phone", "+1650" + std::to_string(2000000 + i % 8000000));
      Json request = Json::Object();
      request.Set("identifiers", std::move(ids));
      request.Set("attributes", Json::Object().Set("firstName", "N" + std::to_string(i)));
      batch.push_back(std::move(request));
      if (batch.size() == 1000 || i + 1 == f.imports) {
        auto r = engine->identity().IdentifyBatch(batch);
        if (!r.ok() || r->Find("rejected")->as_int() != 0) {
          std::fprintf(stderr, "IdentifyBatch: %s\n",
                       r.ok() ? r->Dump().substr(0, 400).c_str() : r.status().ToString().c_str());
          return 1;
        }
        batch.clear();
      }
    }
    double secs = Now() - start;
    double projected = secs * 1000000.0 / static_cast<double>(f.imports);
    std::printf(
        "(b) bulk import of %zu records (%zu identifiers) through IdentifyBatch(1000): %.2f s, %.0f records/s; "
        "1,000,000 records projected at %.0f s (target < 30 s: %s)\n",
        f.imports, f.imports * 3, secs, static_cast<double>(f.imports) / secs, projected,
        projected < 30 ? "PASS" : "FAIL");
  }
  return 0;
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
    } else {
      std::fprintf(stderr, "usage: identity_bench [--persons N] [--events N] [--imports N] [--dir DIR]\n");
      return 2;
    }
  }
  if (f.persons == 0 || f.events == 0) return 2;
  return cdp::bench::Run(f);
}
