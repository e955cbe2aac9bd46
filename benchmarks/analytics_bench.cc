// Copyright 2026 The libcdp Authors.
//
// analytics_bench: issue 6's analyses at scale (default 10,000,000 events: synthetic, seeded shoppers with 1 to 4
// sessions over a year, each session page views, then product view, cart and purchase with drop-off, 70% of
// sessions with UTM parameters), over the segment index the engine keeps:
//   funnel of 4 steps (page_view > product_view > add_to_cart > purchase, window 7 days)
//   cohort matrix of 12 weeks (cohort: first event; return: purchase)
//   last-touch attribution of purchases (lookback 30 days)
// Prints each one's median time over --runs runs (after one untimed run) and the index's load time and memory.
//
//   analytics_bench [--events=N] [--runs=N] [--dump=DIR]
//
// --dump=DIR: also writes, for benchmarks/duckdb/run-analytics.sh: events.csv (ordinal, type, time_us, session,
// utm_source, utm_medium, utm_campaign, revenue: the same events), expected.json (libcdp's three answers) and
// libcdp.json (this run's timings).

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "analytics/analytics.h"
#include "cdp/query.h"
#include "csv_writer.h"
#include "segments/index.h"

namespace {

using cdp::Json;
using cdp::bench::CsvWriter;
using cdp::bench::RssKiB;
using cdp::bench::Seconds;
using cdp::bench::WriteJson;
using cdp::segments::SegmentIndex;

constexpr int64_t kSec = 1000000;
constexpr int64_t kDay = 86400 * kSec;
constexpr int64_t kStart = 1767225600LL * kSec;  // 2026-01-01T00:00:00Z

struct Channel {
  const char* source;
  const char* medium;
  const char* campaign;
};
constexpr Channel kChannels[] = {
    {"google", "cpc", "brand"},       {"google", "cpc", "generic"},      {"google", "organic", "(none)"},
    {"facebook", "social", "spring"}, {"newsletter", "email", "weekly"}, {"instagram", "social", "spring"},
    {"bing", "cpc", "generic"},       {"partner", "referral", "(none)"},
};

struct Row {
  uint32_t ordinal;
  const char* type;
  int64_t time;
  uint64_t session;
  int channel;     // -1: none
  double revenue;  // purchases; else 0
};

// The events of one shopper, in time order.
void Shopper(std::mt19937_64& rng, uint32_t ordinal, std::vector<Row>* out) {
  const int sessions = 1 + static_cast<int>(rng() % 4);
  std::vector<int64_t> starts;
  for (int s = 0; s < sessions; ++s) starts.push_back(kStart + static_cast<int64_t>(rng() % (365 * kDay)));
  std::sort(starts.begin(), starts.end());
  int64_t last = 0;
  for (int s = 0; s < sessions; ++s) {
    int64_t t = std::max(starts[s], last + 3600 * kSec);  // sessions at least an hour apart
    const uint64_t session = static_cast<uint64_t>(ordinal) * 16 + static_cast<uint64_t>(s) + 1;
    const int channel = rng() % 10 < 7 ? static_cast<int>(rng() % 8) : -1;
    auto add = [&](const char* type, double revenue) {
      out->push_back(
          {ordinal, type, t, session, out->empty() || out->back().session != session ? channel : -2, revenue});
      t += static_cast<int64_t>(30 + rng() % 270) * kSec;
    };
    for (int v = 1 + static_cast<int>(rng() % 2); v > 0; --v) add("page_view", 0);
    if (rng() % 10 < 7) {
      add("product_view", 0);
      if (rng() % 2 == 0) {
        add("add_to_cart", 0);
        if (rng() % 2 == 0) add("purchase", static_cast<double>(500 + rng() % 30000) / 100.0);
      }
    }
    last = t;
  }
}

Json EventDoc(const Row& r) {
  Json props = Json::Object();
  if (r.channel >= 0) {
    props.Set("utm_source", kChannels[r.channel].source)
        .Set("utm_medium", kChannels[r.channel].medium)
        .Set("utm_campaign", kChannels[r.channel].campaign);
  }
  if (r.revenue > 0) props.Set("revenue", r.revenue);
  std::string session = "s";
  session += std::to_string(r.session);
  return Json::Object().Set("sessionId", std::move(session)).Set("properties", std::move(props));
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  uint64_t events = 10000000;
  int runs = 5;
  std::string dump;
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "--events=", 9) == 0) {
      events = std::stoull(argv[i] + 9);
    } else if (std::strncmp(argv[i], "--runs=", 7) == 0) {
      runs = std::max(1, std::stoi(argv[i] + 7));
    } else if (std::strncmp(argv[i], "--dump=", 7) == 0) {
      dump = argv[i] + 7;
    } else {
      std::fprintf(stderr, "usage: analytics_bench [--events=N] [--runs=N] [--dump=DIR]\n");
      return 2;
    }
  }
  std::mt19937_64 rng(42);
  std::vector<Row> rows;
  rows.reserve(events + 16);
  uint32_t profiles = 0;
  while (rows.size() < events) Shopper(rng, profiles++, &rows);
  for (Row& r : rows) {  // the channel of each session's first event only
    if (r.channel == -2) r.channel = -1;
  }

  SegmentIndex index;
  const double l0 = Seconds();
  for (const Row& r : rows) {
    if (!index.AddEvent(r.ordinal, r.type, "", r.time, EventDoc(r)).ok()) return 2;
  }
  std::printf("index: %u profiles, %zu events loaded in %.1f s, %.0f MiB (process RSS %.0f MiB)\n", profiles,
              rows.size(), Seconds() - l0, static_cast<double>(index.MemoryBytes()) / (1 << 20),
              static_cast<double>(RssKiB()) / 1024);

  struct Measure {
    const char* name;
    cdp::Result<Json> (*run)(SegmentIndex&, const Json&);
    Json request;
    Json answer;
    std::vector<double> ms;
  };
  auto parse = [](const char* text) { return *Json::Parse(text); };
  std::vector<Measure> measures = {
      {"funnel",
       cdp::analytics::Funnel,
       parse(R"({"steps": [{"event": "page_view"}, {"event": "product_view"}, {"event": "add_to_cart"},
                {"event": "purchase"}], "window": "7d"})"),
       {},
       {}},
      {"cohorts",
       cdp::analytics::Cohorts,
       parse(R"({"cohortEvent": "*", "returnEvent": "purchase", "period": "week", "periods": 12})"),
       {},
       {}},
      {"attribution",
       cdp::analytics::Attribution,
       parse(R"({"conversion": "purchase", "model": "last_touch", "lookback": "30d"})"),
       {},
       {}},
  };
  for (Measure& m : measures) {
    for (int i = 0; i <= runs; ++i) {
      const double t0 = Seconds();
      auto answer = m.run(index, m.request);
      const double ms = (Seconds() - t0) * 1000;
      if (!answer.ok()) {
        std::fprintf(stderr, "%s: %s\n", m.name, answer.status().ToString().c_str());
        return 2;
      }
      if (i > 0) m.ms.push_back(ms);  // the first run is a warm-up
      m.answer = std::move(*answer);
    }
    std::printf("%-12s median %9.1f ms over %d runs\n", m.name, Median(m.ms), runs);
  }

  if (!dump.empty()) {
    const double d0 = Seconds();
    {
      CsvWriter out(dump + "/events.csv");
      out.Text("ordinal").Text("type").Text("time_us").Text("session").Text("utm_source").Text("utm_medium");
      out.Text("utm_campaign").Text("revenue").EndRow();
      for (const Row& r : rows) {
        out.Int(r.ordinal).Text(r.type).Int(r.time).Int(static_cast<int64_t>(r.session));
        if (r.channel >= 0) {
          out.Text(kChannels[r.channel].source).Text(kChannels[r.channel].medium).Text(kChannels[r.channel].campaign);
        } else {
          out.Empty().Empty().Empty();
        }
        r.revenue > 0 ? out.Double(r.revenue) : out.Empty();
        out.EndRow();
      }
    }
    Json expected = Json::Object(), timings = Json::Object();
    for (const Measure& m : measures) {
      expected.Set(m.name, Json::Object().Set("request", m.request).Set("answer", m.answer));
      Json all = Json::Array();
      for (double ms : m.ms) all.Push(ms);
      timings.Set(m.name, Json::Object().Set("median_ms", Median(m.ms)).Set("runs_ms", std::move(all)));
    }
    WriteJson(dump + "/expected.json", expected);
    WriteJson(dump + "/libcdp.json", timings);
    std::printf("dumped events.csv, expected.json and libcdp.json to %s in %.1f s\n", dump.c_str(), Seconds() - d0);
  }
  return 0;
}
