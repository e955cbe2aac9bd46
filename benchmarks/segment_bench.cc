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
//   segment_bench [--profiles=N] [--events=N]

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "cdp/query.h"
#include "cdp/segment_rule.h"
#include "segments/index.h"

namespace {

using cdp::Json;
using cdp::SegmentRule;
using cdp::segments::Bitmap;
using cdp::segments::SegmentIndex;

constexpr int64_t kSec = 1000000;
constexpr int64_t kDay = 86400 * kSec;
constexpr int64_t kNow = 1780272000LL * kSec;  // 2026-06-01T00:00:00Z

double Seconds() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

long RssKiB() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  }
  return 0;
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

double Percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * v.size()))];
}

int failures = 0;

void Report(const char* what, double value, double target, const char* unit) {
  bool pass = value < target;
  failures += !pass;
  std::printf("%-64s %10.3f %s   target < %g %s   %s\n", what, value, unit, target, unit, pass ? "PASS" : "FAIL");
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

}  // namespace

int main(int argc, char** argv) {
  uint32_t profiles = 1000000;
  uint64_t events = 10000000;
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "--profiles=", 11) == 0) profiles = static_cast<uint32_t>(std::stoul(argv[i] + 11));
    if (std::strncmp(argv[i], "--events=", 9) == 0) events = std::stoull(argv[i] + 9);
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
    Event ev = MakeEvent(rng);
    uint32_t ord = static_cast<uint32_t>(rng() % profiles);
    int64_t time = kNow - 365 * kDay + static_cast<int64_t>(e * (365 * kDay / events));
    if (!index.AddEvent(ord, ev.type, "", time, ev.doc).ok()) return 2;
  }
  double t2 = Seconds();
  long rss1 = RssKiB();
  std::printf("loaded %u profiles in %.1f s (%.1f us each), %llu events in %.1f s (%.2f us each)\n", profiles, t1 - t0,
              (t1 - t0) * 1e6 / profiles, static_cast<unsigned long long>(events), t2 - t1,
              (t2 - t1) * 1e6 / static_cast<double>(events));
  std::printf("index memory: %.0f MiB by MemoryBytes(), process RSS grew %.0f MiB\n",
              static_cast<double>(index.MemoryBytes()) / (1 << 20), static_cast<double>(rss1 - rss0) / 1024);

  // 1. Full evaluation: three field conditions and one behavioural condition.
  SegmentRule rule = Rule(R"({"operator": "AND", "conditions": [
      {"field": "attributes.country", "operator": "in", "value": ["US", "CA", "GB", "DE"]},
      {"field": "computed.ltv", "operator": ">=", "value": 100},
      {"field": "consent.email", "operator": "=", "value": true},
      {"event": "purchase", "where": [{"field": "properties.revenue", "operator": ">", "value": 20}],
       "within": "30d", "count": {">=": 1}}]})");
  auto prepared = index.Prepare(rule);
  std::vector<double> full;
  uint64_t members = 0;
  for (int i = 0; i < 7; ++i) {
    double s = Seconds();
    Bitmap b = index.Evaluate(*prepared, kNow);
    full.push_back((Seconds() - s) * 1e3);
    members = b.cardinality();
  }
  std::printf("rule members: %llu\n", static_cast<unsigned long long>(members));
  Report("full evaluation, 3 field + 1 behavioural (median of 7)", Median(full), 200, "ms");

  // 2. Count of an unsaved rule: parse + prepare + count, each time a different rule.
  std::vector<double> counts;
  for (int i = 0; i < 7; ++i) {
    std::string text = R"({"conditions": [{"field": "attributes.city", "operator": "=", "value": ")" +
                       std::string(kCities[i]) + R"("},
        {"field": "computed.churnRisk", "operator": "<", "value": 0.)" +
                       std::to_string(3 + i) + R"(},
        {"field": "computed.lastPurchaseDate", "operator": ">=", "value": "-90d"},
        {"event": "add_to_cart", "within": ")" +
                       std::to_string(7 + i) + R"(d", "count": {">=": 1}}]})";
    double s = Seconds();
    SegmentRule unsaved = Rule(text);
    uint64_t n = index.Count(*index.Prepare(unsaved), kNow);
    counts.push_back((Seconds() - s) * 1e3);
    if (i == 0) std::printf("unsaved rule count: %llu\n", static_cast<unsigned long long>(n));
  }
  Report("count of an unsaved rule, parse + prepare + count (median of 7)", Median(counts), 50, "ms");

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
  return failures == 0 ? 0 : 1;
}
