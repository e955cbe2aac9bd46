// Copyright 2026 The libcdp Authors.
//
// cdp-demo: loads the demo e-commerce data set (src/demo/generator.h) into a libcdp database.
//
//   cdp-demo --data ./demo-data [--profiles 100000] [--events 1000000] [--seed 42] [--visitors N] [--days 365]
//            [--batch 500] [--end 2026-01-01T00:00:00Z] [--late 0.01] [--profile-batch 500] [--no-pipeline] [--sync]
//            [--no-examples]
//
// Then (unless --no-examples) creates example segments (rules, behaviour, RFM, a time window, a manual list), a
// suppression list and an audience, and prints their sizes.
//
// Prints progress, then counts and rates. Exit code 0 when everything was accepted (but events that tracking consent
// refused), 1 when some item was rejected, 2 on a usage error or when the load failed.

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>

#include "cdp/cdp.h"
#include "demo/generator.h"

namespace {

void Usage() {
  std::fprintf(stderr,
               "usage: cdp-demo --data DIR [--profiles N] [--events N] [--seed N] [--visitors N] [--days N]\n"
               "                [--batch N] [--end TIMESTAMP] [--late FRACTION] [--profile-batch N] [--no-pipeline]\n"
               "                [--sync] [--no-examples]\n"
               "  --data DIR       database directory (created when missing)\n"
               "  --profiles N     known customers, created first (default 100000)\n"
               "  --events N       events generated (default 1000000); the few of profiles whose generated\n"
               "                   consent denies tracking are refused, as the engine refuses them\n"
               "  --seed N         random seed: the same seed gives the same data (default 42)\n"
               "  --visitors N     anonymous visitors (default profiles / 5)\n"
               "  --days N         length of the time range in days (default 365)\n"
               "  --end TIMESTAMP  end of the time range, ISO 8601 (default 2026-01-01T00:00:00Z)\n"
               "  --batch N        events per TrackBatch (default 500)\n"
               "  --late FRACTION  fraction of events delivered late (default 0.01)\n"
               "  --profile-batch N  profiles per CreateBatch (default 500)\n"
               "  --no-pipeline    generate each batch in the loading thread (default: a generator thread)\n"
               "  --sync           open with sync_writes (fsync each write)\n"
               "  --no-examples    do not create the example segments, audience and lists\n");
}

// Example segments, an RFM window covering the data, a manual list, a suppression list and an audience, so the
// server starts with something to show. Windows are absolute: the data ends at `end_us`, not now.
cdp::Status CreateExamples(cdp::Engine& engine, int64_t end_us) {
  auto json = [](const std::string& text) { return *cdp::Json::Parse(text); };
  cdp::Segments& segments = engine.segments();
  CDP_RETURN_IF_ERROR(segments.SetRfmConfig(json(R"({"window": "730d"})")).status());
  const std::string from = cdp::FormatTimestamp(end_us - 30LL * 86400 * 1000000);
  const std::string to = cdp::FormatTimestamp(end_us);
  std::vector<std::string> ids;
  for (const std::string& definition : {
           std::string(R"({"name": "Repeat buyers", "rule": {"event": "purchase", "count": {">=": 2}}})"),
           std::string(R"({"name": "High value", "description": "lifetime value of 500 or more",
                           "rule": {"field": "computed.ltv", "operator": ">=", "value": 500}})"),
           std::string(R"j({"name": "Champions and loyal, by RFM", "rule": {"field": "computed.rfm.segment",
                           "operator": "in", "value": ["Champions", "Loyal Customers"]}})j"),
           R"({"name": "Holiday shoppers", "description": "a purchase in the data's last 30 days",
               "rule": {"event": "purchase", "within": {"from": ")" +
               from + R"(", "to": ")" + to + R"("}}})",
           std::string(R"({"name": "Browsed, never bought", "rule": {"conditions": [
                           {"event": "product_view", "count": {">=": 3}}, {"event": "purchase", "count": {"=": 0}}]}})"),
       }) {
    CDP_ASSIGN_OR_RETURN(cdp::Json created, segments.Create(json(definition)));
    ids.push_back(created.Find("id")->as_string());
  }
  CDP_ASSIGN_OR_RETURN(cdp::Json vip, segments.Create(json(R"({"name": "VIP list", "type": "manual"})")));
  cdp::ProfileQuery query;
  query.limit = 25;
  CDP_ASSIGN_OR_RETURN(cdp::Page some, engine.profiles().Search(query));
  cdp::Json members = cdp::Json::Array(), unsubscribed = cdp::Json::Array();
  for (size_t i = 0; i < some.items.size(); ++i) {
    if (i < 10) members.Push(*some.items[i].Find("id"));
    const cdp::Json* email = some.items[i].FindPath("externalIds.email");
    if (i >= 10 && email != nullptr && email->is_string()) {
      unsubscribed.Push(cdp::Json::Object().Set("type", "email").Set("value", *email));
    }
  }
  CDP_RETURN_IF_ERROR(segments.AddMembers(vip.Find("id")->as_string(), members).status());
  cdp::Audiences& audiences = engine.audiences();
  CDP_ASSIGN_OR_RETURN(cdp::Json list, audiences.CreateSuppressionList(json(R"({"name": "Unsubscribed"})")));
  CDP_RETURN_IF_ERROR(audiences.AddToSuppressionList(list.Find("id")->as_string(), unsubscribed).status());
  CDP_ASSIGN_OR_RETURN(
      cdp::Json audience,
      audiences.Create(json(R"({"name": "Email: valuable customers", "segments": {"operator": "OR", "ids": [")" +
                            ids[1] + R"(", ")" + ids[2] + R"("]}, "suppressionLists": [")" +
                            list.Find("id")->as_string() + R"("], "channel": "email"})")));
  CDP_ASSIGN_OR_RETURN(cdp::Json all, segments.List());
  for (const cdp::Json& s : all.items()) {
    std::printf("segment  %-28s %8lld members  (%s)\n", s.Find("name")->as_string().c_str(),
                static_cast<long long>(s.Find("size")->as_int()), s.Find("id")->as_string().c_str());
  }
  std::printf("audience %-28s %8lld members  (%s)\n", audience.Find("name")->as_string().c_str(),
              static_cast<long long>(audience.Find("size")->as_int()), audience.Find("id")->as_string().c_str());
  return cdp::Status::OK();
}

bool ParseSize(const char* s, size_t* out) {
  char* end = nullptr;
  unsigned long long v = std::strtoull(s, &end, 10);
  if (end == s || *end != '\0') return false;
  *out = static_cast<size_t>(v);
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  cdp::demo::GeneratorConfig config;
  config.profiles = 100000;
  config.events = 1000000;
  cdp::demo::LoadOptions load;
  cdp::Options options;
  bool examples = true;
  std::string dir;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> const char* {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "cdp-demo: %s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    size_t n = 0;
    if (a == "--data") {
      dir = value();
    } else if (a == "--profiles" && ParseSize(value(), &n)) {
      config.profiles = n;
    } else if (a == "--events" && ParseSize(value(), &n)) {
      config.events = n;
    } else if (a == "--seed" && ParseSize(value(), &n)) {
      config.seed = n;
    } else if (a == "--visitors" && ParseSize(value(), &n)) {
      config.anonymous_visitors = n;
    } else if (a == "--days" && ParseSize(value(), &n) && n > 0 && n < 100000) {
      config.days = static_cast<int>(n);
    } else if (a == "--batch" && ParseSize(value(), &n) && n > 0) {
      load.batch_size = n;
    } else if (a == "--profile-batch" && ParseSize(value(), &n) && n > 0 && n <= 10000) {
      load.profile_batch = n;
    } else if (a == "--late") {
      config.late_fraction = std::atof(value());
    } else if (a == "--end") {
      cdp::Result<int64_t> t = cdp::ParseTimestamp(std::string_view(value()));
      if (!t.ok()) {
        std::fprintf(stderr, "cdp-demo: --end: %s\n", t.status().ToString().c_str());
        return 2;
      }
      config.end_time_us = *t;
    } else if (a == "--no-pipeline") {
      load.pipeline = false;
    } else if (a == "--sync") {
      options.sync_writes = true;
    } else if (a == "--no-examples") {
      examples = false;
    } else if (a == "-h" || a == "--help") {
      Usage();
      return 0;
    } else {
      std::fprintf(stderr, "cdp-demo: bad argument %s\n", a.c_str());
      Usage();
      return 2;
    }
  }
  if (dir.empty()) {
    Usage();
    return 2;
  }
  const size_t visitors = config.anonymous_visitors == SIZE_MAX ? config.profiles / 5 : config.anonymous_visitors;
  if (config.profiles > cdp::demo::GeneratorConfig::kMaxPeople ||
      visitors > cdp::demo::GeneratorConfig::kMaxPeople - config.profiles) {
    std::fprintf(stderr, "cdp-demo: at most %zu profiles and visitors together (distinct phone numbers)\n",
                 cdp::demo::GeneratorConfig::kMaxPeople);
    return 2;
  }

  cdp::Result<std::unique_ptr<cdp::Engine>> opened = cdp::Engine::Open(options, dir);
  if (!opened.ok()) {
    std::fprintf(stderr, "cdp-demo: cannot open %s: %s\n", dir.c_str(), opened.status().ToString().c_str());
    return 2;
  }
  cdp::Engine& engine = **opened;
  std::printf("cdp-demo: loading %zu profiles and %zu events (seed %llu) into %s\n", config.profiles, config.events,
              static_cast<unsigned long long>(config.seed), dir.c_str());
  std::fflush(stdout);

  load.progress = [](const cdp::demo::LoadProgress& p) {
    if (p.events_done == 0) {
      std::printf("  profiles %zu/%zu  %.1fs\n", p.profiles_done, p.profiles_total, p.elapsed_seconds);
    } else {
      std::printf("  events   %zu/%zu  %.1fs\n", p.events_done, p.events_total, p.elapsed_seconds);
    }
    std::fflush(stdout);
  };
  cdp::Result<cdp::demo::LoadStats> result = cdp::demo::Load(engine, config, load);
  if (!result.ok()) {
    std::fprintf(stderr, "cdp-demo: load failed: %s\n", result.status().ToString().c_str());
    return 2;
  }
  const cdp::demo::LoadStats& s = *result;
  const cdp::demo::GeneratorSummary& g = s.summary;
  auto rate = [](size_t n, double secs) { return secs > 0 ? static_cast<double>(n) / secs : 0.0; };
  std::printf(
      "planned in %.2fs: %zu sessions, %zu purchases (revenue %.2f), %zu anonymous visitors (%zu identify "
      "later), %zu churners, %zu late events\n",
      s.plan_seconds, g.sessions, g.purchases, g.revenue, g.anonymous_visitors, g.identified_visitors, g.churners,
      g.late_events);
  std::printf("profiles: %zu created, %zu rejected in %.2fs (%.0f/s)\n", s.profiles_created, s.profiles_rejected,
              s.profile_seconds, rate(s.profiles_created + s.profiles_rejected, s.profile_seconds));
  std::printf(
      "events:   %zu accepted, %zu rejected (%zu of them refused by a profile's tracking consent), %zu duplicates, "
      "%zu profiles auto-created, %zu batches in %.2fs (%.0f events/s)\n",
      s.events_accepted, s.events_rejected, s.events_refused_consent, s.events_duplicate, s.profiles_auto_created,
      s.batches, s.event_seconds, rate(s.events_accepted + s.events_rejected, s.event_seconds));
  std::printf("total:    %.2fs\n", s.total_seconds);
  if (examples) {
    if (cdp::Status made = CreateExamples(engine, config.end_time_us); !made.ok()) {
      std::fprintf(stderr, "cdp-demo: example segments failed: %s\n", made.ToString().c_str());
      return 1;
    }
  }
  for (const std::string& e : s.sample_errors) std::printf("  rejected: %s\n", e.c_str());
  cdp::Result<cdp::Json> stats = engine.Stats();
  if (stats.ok()) std::printf("database: %s\n", stats->Dump().c_str());
  // Not needed for durability (the write-ahead log has it all), but the server then opens without replaying it.
  if (cdp::Status flushed = engine.Flush(); !flushed.ok()) {
    std::fprintf(stderr, "cdp-demo: flush failed: %s\n", flushed.ToString().c_str());
    return 1;
  }
  // Refusals by tracking consent are the engine doing its job (a person who denied tracking shares a device with
  // one who did not), not a failed load.
  return s.profiles_rejected + s.events_rejected - s.events_refused_consent == 0 ? 0 : 1;
}
