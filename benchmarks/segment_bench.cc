// Copyright 2026 The libcdp Authors.
//
// segment_bench: the segment index at the scale of issue 4 (default 1,000,000 profiles and 10,000,000 events,
// synthetic and seeded), against the issue's targets:
//   full evaluation of 3 field conditions + 1 behavioural condition     < 200 ms
//   count of an unsaved rule of that kind (prepare + count)             <  50 ms
//   per event: index update + re-evaluation of 100 rules, median        <  20 us
//   overlap of two segments of 1,000,000 members                        <   5 ms
// Prints each measured value, its target and PASS/FAIL, and the index's memory.
//
//   segment_bench [--profiles=N] [--events=N] [--threads=1|2] [--dump=DIR]
//
// --threads: the evaluations (1, 2) run on two threads (SegmentIndex::set_parallel; default 2) or one. Either way
// (1) and (2) are also measured the other way, interleaved run by run, and the ratio printed.
//
// --dump=DIR: after the measures (which it leaves unchanged), also writes to DIR, for benchmarks/duckdb/:
//   profiles.csv    ordinal and the profile fields (timestamps as microseconds since the epoch; tags joined by |)
//   events.csv      ordinal, type, time (us), properties.revenue, properties.category: the same seeded stream
//   seg_a.csv, seg_b.csv   the ordinals of the two segments of the overlap measure
//   expected.json   "now" (us), the rules of the measures with the member counts the index computed, the overlap
//   libcdp.json     this run's timings of those measures (ms, every run and the median)

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "cdp/query.h"
#include "cdp/segment_rule.h"
#include "csv_writer.h"
#include "segments/index.h"

namespace {

using cdp::Json;
using cdp::SegmentRule;
using cdp::bench::CsvWriter;
using cdp::bench::RssKiB;
using cdp::bench::Seconds;
using cdp::bench::WriteJson;
using cdp::segments::Bitmap;
using cdp::segments::SegmentIndex;

constexpr int64_t kSec = 1000000;
constexpr int64_t kDay = 86400 * kSec;
constexpr int64_t kNow = 1780272000LL * kSec;  // 2026-06-01T00:00:00Z

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

double Percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * v.size()))];
}

int failures = 0;

void Report(const std::string& what, double value, double target, const char* unit) {
  bool pass = value < target;
  failures += !pass;
  std::printf("%-64s %10.3f %s   target < %g %s   %s\n", what.c_str(), value, unit, target, unit,
              pass ? "PASS" : "FAIL");
}

SegmentRule Rule(const std::string& text) {
  auto json = Json::Parse(text);
  auto rule = SegmentRule::FromJson(*json);
  if (!rule.ok()) {
    std::fprintf(stderr, "bad rule %s: %s\n", text.c_str(), rule.status().ToString().c_str());
    std::exit(2);
  }
  return *rule;
}

const char* kCountries[] = {"US", "CA", "GB", "DE", "FR", "ES", "IT", "NL", "SE", "JP",
                            "BR", "MX", "AU", "IN", "PL", "IE", "PT", "AT", "BE", "CH"};
const char* kCities[] = {"London", "Paris", "Berlin", "Austin", "Lyon", "Leeds", "Madrid", "Rome", "Tokyo", "Lima"};
const char* kTags[] = {"vip", "new", "churned", "beta", "wholesale"};
const char* kCategories[] = {"books", "music", "toys", "garden", "games", "food"};

Json MakeProfile(std::mt19937_64& rng) {
  auto pick = [&](int n) { return static_cast<int>(rng() % n); };
  Json tags = Json::Array();
  for (int i = pick(3); i > 0; --i) tags.Push(kTags[pick(5)]);
  Json attributes = Json::Object()
                        .Set("country", kCountries[pick(20)])
                        .Set("city", kCities[pick(10)])
                        .Set("tags", std::move(tags))
                        .Set("customFields", Json::Object().Set("tier", pick(4)));
  Json computed = Json::Object()
                      .Set("ltv", static_cast<double>(pick(100000)) / 100.0)
                      .Set("purchaseCount", pick(20))
                      .Set("lastPurchaseDate", cdp::FormatTimestamp(kNow - static_cast<int64_t>(rng() % (365 * kDay))))
                      .Set("churnRisk", static_cast<double>(pick(100)) / 100.0);
  return Json::Object()
      .Set("attributes", std::move(attributes))
      .Set("computed", std::move(computed))
      .Set("consent", Json::Object().Set("email", pick(3) != 0).Set("sms", pick(4) == 0))
      .Set("createdAt", cdp::FormatTimestamp(kNow - static_cast<int64_t>(rng() % (700 * kDay))));
}

struct Event {
  const char* type;
  Json doc;
};

Event MakeEvent(std::mt19937_64& rng) {
  int r = static_cast<int>(rng() % 100);
  const char* type = r < 55 ? "page_view" : r < 70 ? "add_to_cart" : r < 85 ? "email_open" : "purchase";
  Json props = Json::Object();
  if (type[0] == 'p' && type[1] == 'u') {
    props.Set("revenue", static_cast<double>(rng() % 30000) / 100.0);
    props.Set("category", kCategories[rng() % 6]);
  } else if (type[0] == 'a') {
    props.Set("category", kCategories[rng() % 6]);
  }
  return {type, Json::Object().Set("properties", std::move(props))};
}

// The i-th of `events` events: its type and document, its profile and its time (spread over the last 365 days, in
// time order, as a log replays them at open).
struct GeneratedEvent {
  Event ev;
  uint32_t ordinal;
  int64_t time;
};

GeneratedEvent NextEvent(std::mt19937_64& rng, uint64_t e, uint64_t events, uint32_t profiles) {
  Event ev = MakeEvent(rng);
  uint32_t ordinal = static_cast<uint32_t>(rng() % profiles);
  int64_t time = kNow - 365 * kDay + static_cast<int64_t>(e * (365 * kDay / events));
  return {std::move(ev), ordinal, time};
}

// ---- --dump=DIR ---------------------------------------------------------------------------------------------------

int64_t Micros(const Json* timestamp) {
  auto t = cdp::ParseTimestamp(*timestamp);
  if (!t.ok()) {
    std::fprintf(stderr, "bad timestamp %s\n", timestamp->Dump().c_str());
    std::exit(2);
  }
  return *t;
}

// Replays the seeded generation of the load (a generator of its own, so the measures' stream is untouched) and
// writes it as CSV. Every value is the one the index was given; strings of the generator need no quoting.
void DumpData(const std::string& dir, uint32_t profiles, uint64_t events) {
  std::mt19937_64 rng(42);
  {
    CsvWriter out(dir + "/profiles.csv");
    out.Text("ordinal").Text("country").Text("city").Text("tags").Text("tier").Text("ltv").Text("purchase_count");
    out.Text("last_purchase_date_us").Text("churn_risk").Text("consent_email").Text("consent_sms");
    out.Text("created_at_us").EndRow();
    for (uint32_t o = 0; o < profiles; ++o) {
      Json p = MakeProfile(rng);
      std::string tags;
      for (const Json& t : p.FindPath("attributes.tags")->items()) tags += (tags.empty() ? "" : "|") + t.as_string();
      out.Int(o).Text(p.FindPath("attributes.country")->as_string()).Text(p.FindPath("attributes.city")->as_string());
      out.Text(tags).Int(p.FindPath("attributes.customFields.tier")->as_int());
      out.Double(p.FindPath("computed.ltv")->as_number()).Int(p.FindPath("computed.purchaseCount")->as_int());
      out.Int(Micros(p.FindPath("computed.lastPurchaseDate"))).Double(p.FindPath("computed.churnRisk")->as_number());
      out.Bool(p.FindPath("consent.email")->as_bool()).Bool(p.FindPath("consent.sms")->as_bool());
      out.Int(Micros(p.FindPath("createdAt"))).EndRow();
    }
  }
  CsvWriter out(dir + "/events.csv");
  out.Text("ordinal").Text("type").Text("time_us").Text("revenue").Text("category").EndRow();
  for (uint64_t e = 0; e < events; ++e) {
    GeneratedEvent g = NextEvent(rng, e, events, profiles);
    out.Int(g.ordinal).Text(g.ev.type).Int(g.time);
    const Json* revenue = g.ev.doc.FindPath("properties.revenue");
    const Json* category = g.ev.doc.FindPath("properties.category");
    revenue != nullptr ? out.Double(revenue->as_number()) : out.Empty();
    category != nullptr ? out.Text(category->as_string()) : out.Empty();
    out.EndRow();
  }
}

void DumpSegment(const std::string& path, const Bitmap& members) {
  CsvWriter out(path);
  out.Text("ordinal").EndRow();
  for (uint32_t o : members) out.Int(o).EndRow();
}

Json Timings(const std::vector<double>& runs, double median) {
  Json all = Json::Array();
  for (double r : runs) all.Push(r);
  return Json::Object().Set("median_ms", median).Set("runs_ms", std::move(all));
}

}  // namespace

int main(int argc, char** argv) {
  uint32_t profiles = 1000000;
  uint64_t events = 10000000;
  std::string dump;
  bool two_threads = true;
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "--profiles=", 11) == 0) profiles = static_cast<uint32_t>(std::stoul(argv[i] + 11));
    if (std::strncmp(argv[i], "--events=", 9) == 0) events = std::stoull(argv[i] + 9);
    if (std::strncmp(argv[i], "--dump=", 7) == 0) dump = argv[i] + 7;
    if (std::strncmp(argv[i], "--threads=", 10) == 0) two_threads = std::strcmp(argv[i] + 10, "1") != 0;
  }
  std::mt19937_64 rng(42);
  SegmentIndex index;
  long rss0 = RssKiB();

  double t0 = Seconds();
  for (uint32_t o = 0; o < profiles; ++o) {
    if (!index.UpsertProfile(o, MakeProfile(rng)).ok()) return 2;
  }
  double t1 = Seconds();
  // Events in time order (as a log replays them at open), spread over the last 365 days.
  for (uint64_t e = 0; e < events; ++e) {
    GeneratedEvent g = NextEvent(rng, e, events, profiles);
    if (!index.AddEvent(g.ordinal, g.ev.type, "", g.time, g.ev.doc).ok()) return 2;
  }
  double t2 = Seconds();
  long rss1 = RssKiB();
  std::printf("loaded %u profiles in %.1f s (%.1f us each), %llu events in %.1f s (%.2f us each)\n", profiles, t1 - t0,
              (t1 - t0) * 1e6 / profiles, static_cast<unsigned long long>(events), t2 - t1,
              (t2 - t1) * 1e6 / static_cast<double>(events));
  std::printf("index memory: %.0f MiB by MemoryBytes(), process RSS grew %.0f MiB\n",
              static_cast<double>(index.MemoryBytes()) / (1 << 20), static_cast<double>(rss1 - rss0) / 1024);

  // 1. Full evaluation: three field conditions and one behavioural condition.
  const std::string full_text = R"({"operator": "AND", "conditions": [
      {"field": "attributes.country", "operator": "in", "value": ["US", "CA", "GB", "DE"]},
      {"field": "computed.ltv", "operator": ">=", "value": 100},
      {"field": "consent.email", "operator": "=", "value": true},
      {"event": "purchase", "where": [{"field": "properties.revenue", "operator": ">", "value": 20}],
       "within": "30d", "count": {">=": 1}}]})";
  SegmentRule rule = Rule(full_text);
  auto prepared = index.Prepare(rule);
  std::vector<double> full, full_other;  // with --threads, and the other way (interleaved)
  uint64_t members = 0;
  for (int i = 0; i < 7; ++i) {
    for (bool other : {false, true}) {
      index.set_parallel(two_threads != other);
      double s = Seconds();
      Bitmap b = index.Evaluate(*prepared, kNow);
      (other ? full_other : full).push_back((Seconds() - s) * 1e3);
      if (!other) members = b.cardinality();
    }
  }
  index.set_parallel(two_threads);
  std::printf("rule members: %llu\n", static_cast<unsigned long long>(members));
  Report(std::string("full evaluation, 3 field + 1 behavioural (median of 7), ") +
             (two_threads ? "2 threads" : "1 thread"),
         Median(full), 200, "ms");
  std::printf("  the same on %s: %.3f ms (%.2fx)\n", two_threads ? "1 thread" : "2 threads", Median(full_other),
              Median(full_other) / Median(full));

  // 2. Count of an unsaved rule: parse + prepare + count, each time a different rule.
  std::vector<double> counts, counts_other;
  std::vector<std::pair<std::string, uint64_t>> unsaved_counts;  // rule text, members
  for (int i = 0; i < 7; ++i) {
    std::string text = R"({"conditions": [{"field": "attributes.city", "operator": "=", "value": ")" +
                       std::string(kCities[i]) + R"("},
        {"field": "computed.churnRisk", "operator": "<", "value": 0.)" +
                       std::to_string(3 + i) + R"(},
        {"field": "computed.lastPurchaseDate", "operator": ">=", "value": "-90d"},
        {"event": "add_to_cart", "within": ")" +
                       std::to_string(7 + i) + R"(d", "count": {">=": 1}}]})";
    uint64_t n = 0;
    for (bool other : {false, true}) {
      index.set_parallel(two_threads != other);
      double s = Seconds();
      SegmentRule unsaved = Rule(text);
      const uint64_t counted = index.Count(*index.Prepare(unsaved), kNow);
      (other ? counts_other : counts).push_back((Seconds() - s) * 1e3);
      if (!other) n = counted;
    }
    unsaved_counts.emplace_back(text, n);
    if (i == 0) std::printf("unsaved rule count: %llu\n", static_cast<unsigned long long>(n));
  }
  index.set_parallel(two_threads);
  Report(std::string("count of an unsaved rule, parse + prepare + count (median of 7), ") +
             (two_threads ? "2 threads" : "1 thread"),
         Median(counts), 50, "ms");
  std::printf("  the same on %s: %.3f ms (%.2fx)\n", two_threads ? "1 thread" : "2 threads", Median(counts_other),
              Median(counts_other) / Median(counts));

  // 3. Per event: AddEvent, then EvaluateOne of 100 live rules for that profile.
  std::vector<std::shared_ptr<const cdp::segments::PreparedRule>> live;
  for (int i = 0; i < 100; ++i) {
    std::string text;
    switch (i % 4) {
      case 0:
        text = R"({"conditions": [{"field": "attributes.country", "operator": "=", "value": ")" +
               std::string(kCountries[i % 20]) + R"("}, {"field": "computed.ltv", "operator": ">", "value": )" +
               std::to_string(i * 5) + R"(}, {"event": "purchase", "within": ")" + std::to_string(10 + i) +
               R"(d", "count": {">=": 1}}]})";
        break;
      case 1:
        text = R"({"operator": "OR", "conditions": [{"field": "attributes.tags", "operator": "contains", "value": ")" +
               std::string(kTags[i % 5]) + R"("}, {"event": "page_view", "within": "7d", "count": {">=": )" +
               std::to_string(1 + i % 5) + R"(}}]})";
        break;
      case 2:
        text = R"({"conditions": [{"field": "consent.email", "operator": "=", "value": true},
                   {"event": "purchase", "sum": "properties.revenue", "within": "90d", "value": {">": )" +
               std::to_string(50 + i) + R"(}}]})";
        break;
      default:
        text = R"({"conditions": [{"field": "computed.lastPurchaseDate", "operator": ">=", "value": "-)" +
               std::to_string(5 + i) + R"(d"}, {"not": {"event": "email_open", "within": "14d"}},
                   {"field": "attributes.city", "operator": "starts_with", "value": "L"}]})";
    }
    live.push_back(index.Prepare(Rule(text)));
  }
  std::vector<double> per_event;
  int64_t t = kNow;
  size_t member_total = 0;
  for (int i = 0; i < 20000; ++i) {
    Event ev = MakeEvent(rng);
    uint32_t ord = static_cast<uint32_t>(rng() % profiles);
    t += 1000;
    double s = Seconds();
    if (!index.AddEvent(ord, ev.type, "", t, ev.doc).ok()) return 2;
    for (const auto& r : live) member_total += index.EvaluateOne(ord, *r, t);
    per_event.push_back((Seconds() - s) * 1e6);
  }
  std::printf("per event: p90 %.2f us, p99 %.2f us (memberships seen %zu)\n", Percentile(per_event, 0.9),
              Percentile(per_event, 0.99), member_total);
  Report("per event: AddEvent + EvaluateOne x 100 rules (median of 20,000)", Median(per_event), 20, "us");

  // 4. Overlap of two segments of 1,000,000 members (ordinals drawn from 0..2M: a larger database).
  Bitmap a, b;
  {
    std::vector<uint32_t> ids(2000000);
    for (uint32_t i = 0; i < ids.size(); ++i) ids[i] = i;
    std::mt19937_64 r2(7);
    std::shuffle(ids.begin(), ids.end(), r2);
    a.addMany(1000000, ids.data());
    std::shuffle(ids.begin(), ids.end(), r2);
    b.addMany(1000000, ids.data());
    a.runOptimize();
    b.runOptimize();
  }
  std::vector<double> overlap;
  cdp::segments::Overlap o;
  for (int i = 0; i < 21; ++i) {
    double s = Seconds();
    o = cdp::segments::Compare(a, b);
    Bitmap both = a & b;  // the members themselves, as an audience needs them
    overlap.push_back((Seconds() - s) * 1e3);
    if (both.cardinality() != o.intersection) return 3;
  }
  std::printf("overlap: |A| %llu |B| %llu, intersection %llu, union %llu, jaccard %.4f\n",
              static_cast<unsigned long long>(o.a), static_cast<unsigned long long>(o.b),
              static_cast<unsigned long long>(o.intersection), static_cast<unsigned long long>(o.union_size),
              o.jaccard);
  Report("overlap of two 1M-member segments: counts + intersection (median of 21)", Median(overlap), 5, "ms");

  if (!dump.empty()) {
    double d0 = Seconds();
    DumpData(dump, profiles, events);
    DumpSegment(dump + "/seg_a.csv", a);
    DumpSegment(dump + "/seg_b.csv", b);
    Json unsaved = Json::Array();
    for (const auto& [text, n] : unsaved_counts) {
      unsaved.Push(Json::Object().Set("rule", *Json::Parse(text)).Set("count", static_cast<int64_t>(n)));
    }
    WriteJson(dump + "/expected.json",
              Json::Object()
                  .Set("now_us", kNow)
                  .Set("profiles", static_cast<int64_t>(profiles))
                  .Set("events", static_cast<int64_t>(events))
                  .Set("full",
                       Json::Object().Set("rule", *Json::Parse(full_text)).Set("count", static_cast<int64_t>(members)))
                  .Set("unsaved", std::move(unsaved))
                  .Set("overlap", Json::Object()
                                      .Set("a", static_cast<int64_t>(o.a))
                                      .Set("b", static_cast<int64_t>(o.b))
                                      .Set("intersection", static_cast<int64_t>(o.intersection))
                                      .Set("union", static_cast<int64_t>(o.union_size))
                                      .Set("jaccard", o.jaccard)));
    WriteJson(dump + "/libcdp.json", Json::Object()
                                         .Set("load_profiles_s", t1 - t0)
                                         .Set("load_events_s", t2 - t1)
                                         .Set("index_memory_mib", static_cast<double>(index.MemoryBytes()) / (1 << 20))
                                         .Set("full", Timings(full, Median(full)))
                                         .Set("unsaved", Timings(counts, Median(counts)))
                                         .Set("overlap", Timings(overlap, Median(overlap)))
                                         .Set("threads", two_threads ? 2 : 1));
    std::printf("dumped the data set, expected.json and libcdp.json to %s in %.1f s\n", dump.c_str(), Seconds() - d0);
  }
  return failures == 0 ? 0 : 1;
}
