// Copyright 2026 The libcdp Authors.
//
// Differential test: random rules over generated (seeded) profiles and events, evaluated by SegmentIndex and by
// the plain-scan ReferenceEvaluator (reference.h), must give identical member sets: on a full evaluation, per
// profile, after a stream of upserts, new events, removals and time passing; and NextChange must never promise
// a stable membership that the reference sees change.

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "cdp/query.h"
#include "segments/index.h"
#include "segments/reference.h"
#include "test_util.h"

namespace cdp::segments {
namespace {

using ::cdp::testing::ReferenceEvaluator;
using ::cdp::testing::RefEvent;

constexpr int64_t kSec = 1000000;
constexpr int64_t kDay = 86400 * kSec;

class Generator {
 public:
  explicit Generator(uint64_t seed, int64_t base) : rng_(seed), base_(base) {}

  int Int(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng_); }
  bool Chance(double p) { return std::bernoulli_distribution(p)(rng_); }
  template <typename T>
  const T& Pick(const std::vector<T>& v) {
    return v[Int(0, static_cast<int>(v.size()) - 1)];
  }

  // A time around base, -90 days .. +10 days: often a whole number of days or hours from base, so that values
  // land exactly on the bounds of relative dates and windows; otherwise at a whole second or millisecond.
  int64_t Time() {
    int r = Int(0, 9);
    if (r < 4) return base_ + Int(-90, 10) * kDay;
    if (r < 6) return base_ + Int(-90 * 24, 10 * 24) * 3600 * kSec;
    int64_t t = base_ + std::uniform_int_distribution<int64_t>(-90 * kDay, 10 * kDay)(rng_);
    return Chance(0.5) ? t / kSec * kSec : t / 1000 * 1000;
  }

  Json Scalar() {
    switch (Int(0, 6)) {
      case 0:
        return Int(-5, 50);
      case 1:
        return Int(0, 400) / 4.0;
      case 2:
        return Pick(strings_);
      case 3:
        return Chance(0.5);
      case 4:
        return FormatTimestamp(Time());
      case 5:
        return nullptr;
      default:
        return Pick(strings_);
    }
  }

  Json Value() {
    int r = Int(0, 9);
    if (r == 0) {
      Json a = Json::Array();
      for (int i = Int(0, 3); i > 0; --i) a.Push(Scalar());
      return a;
    }
    if (r == 1) return Json::Object().Set("k", Scalar());
    return Scalar();
  }

  Json Profile() {
    Json doc = Json::Object();
    Json attributes = Json::Object();
    if (Chance(0.85)) attributes.Set("country", Chance(0.9) ? Json(Pick(countries_)) : Json(nullptr));
    if (Chance(0.7)) attributes.Set("city", Chance(0.85) ? Json(Pick(cities_)) : Json(Int(1, 3)));
    if (Chance(0.7)) {
      if (Chance(0.85)) {
        Json tags = Json::Array();
        for (int i = Int(0, 3); i > 0; --i) tags.Push(Pick(tags_));
        attributes.Set("tags", tags);
      } else {
        attributes.Set("tags", Pick(tags_));
      }
    }
    Json custom = Json::Object();
    if (Chance(0.6)) custom.Set("score", Value());
    if (Chance(0.5)) custom.Set("code", Pick(strings_));
    if (Chance(0.3)) custom.Set("birthday", Chance(0.7) ? FormatTimestamp(Time()).substr(0, 10) : "soon");
    if (custom.size() > 0 || Chance(0.5)) attributes.Set("customFields", custom);
    doc.Set("attributes", attributes);
    Json computed = Json::Object();
    if (Chance(0.8)) computed.Set("ltv", Chance(0.5) ? Json(Int(0, 500)) : Json(Int(0, 2000) / 4.0));
    if (Chance(0.7)) computed.Set("lastPurchaseDate", Chance(0.9) ? Json(FormatTimestamp(Time())) : Json("never"));
    if (Chance(0.5)) computed.Set("churnRisk", Int(0, 100) / 100.0);
    if (Chance(0.5)) {
      computed.Set("rfm", Json::Object().Set("segment", Pick(rfm_)).Set("score", Int(1, 5) * 100 + Int(11, 55)));
    }
    doc.Set("computed", computed);
    if (Chance(0.8)) doc.Set("consent", Json::Object().Set("email", Chance(0.5)).Set("sms", Chance(0.3)));
    Json segs = Json::Array();
    for (int i = Int(0, 2); i > 0; --i) segs.Push(Pick(segment_ids_));
    doc.Set("labels", segs);  // an array field ("segments" conditions mean membership)
    if (Chance(0.9)) doc.Set("createdAt", FormatTimestamp(Time()));
    seen_.push_back(doc);
    return doc;
  }

  RefEvent Event() {
    RefEvent e;
    e.type = Pick(types_);
    if (e.type == "custom") e.name = Pick(names_);
    e.time = Time();
    e.doc = Json::Object();
    e.doc.Set("type", e.type);
    if (!e.name.empty()) e.doc.Set("name", e.name);
    e.doc.Set("timestamp", FormatTimestamp(e.time));
    Json props = Json::Object();
    if (Chance(0.8)) {
      int r = Int(0, 9);
      props.Set("revenue", r < 5 ? Json(Int(0, 200)) : r < 9 ? Json(Int(0, 8000) / 8.0) : Json("12"));
    }
    if (Chance(0.7)) props.Set("category", Pick(categories_));
    if (Chance(0.3)) props.Set("sku", "sku-" + std::to_string(Int(1, 20)));
    e.doc.Set("properties", props);
    if (Chance(0.5)) e.doc.Set("source", Pick(sources_));
    return e;
  }

  // ---- rules ----

  Json FieldCondition(bool on_event) {
    static const std::vector<std::string> kOps = {
        "=", "!=", ">", "<", ">=", "<=", "contains", "in", "not_in", "exists", "not_exists", "between", "starts_with"};
    std::string field = on_event ? Pick(event_fields_) : Pick(profile_fields_);
    std::string op = Pick(kOps);
    Json c = Json::Object().Set("field", field).Set("operator", op);
    auto scalar = [&]() -> Json {
      // Half the time, a value some profile holds, so that conditions select something.
      if (!on_event && !seen_.empty() && Chance(0.5)) {
        const Json* v = Pick(seen_).FindPath(field);
        if (v != nullptr && v->is_array() && v->size() > 0) v = &v->items()[0];
        if (v != nullptr && !v->is_null() && !v->is_array() && !v->is_object()) return *v;
      }
      switch (Int(0, 5)) {
        case 0:
          return Int(-5, 60);
        case 1:
          return Int(0, 2000) / 4.0;
        case 2:
          return on_event ? Json(Pick(categories_)) : Json(Pick(strings_));
        case 3:
          return Chance(0.5);
        case 4:
          return FormatTimestamp(Time());
        default:
          return Pick(strings_);
      }
    };
    auto ordered = [&]() -> Json {
      if (Chance(0.3)) {
        Json v = scalar();
        if (v.is_number() || v.is_string()) return v;
      }
      int r = Int(0, 4);
      if (r == 0) return Int(-5, 500);
      if (r == 1) return Int(0, 2000) / 4.0;
      if (r == 2 && !on_event) return Pick(relative_);
      if (r == 3) return FormatTimestamp(Time());
      return Pick(strings_);
    };
    if (op == "exists" || op == "not_exists") return c;
    if (op == "in" || op == "not_in") {
      Json a = Json::Array();
      for (int i = Int(1, 4); i > 0; --i) a.Push(scalar());
      return c.Set("value", a);
    }
    if (op == "between") {
      int r = Int(0, 2);
      if (r == 0) {
        int lo = Int(-5, 300);
        return c.Set("value", Json::Array().Push(lo).Push(lo + Int(0, 200)));
      }
      if (r == 1 && !on_event) {
        int a = Int(-60, 5), b = a + Int(0, 60);
        return c.Set("value", Json::Array().Push(std::to_string(a) + "d").Push("+" + std::to_string(b) + "h"));
      }
      int64_t t = Time();
      return c.Set("value", Json::Array().Push(FormatTimestamp(t)).Push(FormatTimestamp(t + Int(0, 40) * kDay)));
    }
    if (op == ">" || op == "<" || op == ">=" || op == "<=") return c.Set("value", ordered());
    if (op == "starts_with") return c.Set("value", Pick(prefixes_));
    if (op == "contains") return c.Set("value", Chance(0.5) ? Json(Pick(tags_)) : scalar());
    if ((op == "=" || op == "!=") && Chance(0.1)) {
      return c.Set("value", Json::Array().Push(Pick(tags_)).Push(Pick(tags_)));
    }
    return c.Set("value", scalar());
  }

  Json Where() {
    Json w = Json::Array();
    for (int i = Int(0, 2); i > 0; --i) {
      if (Chance(0.2)) {
        w.Push(Json::Object()
                   .Set("operator", Chance(0.5) ? "OR" : "NOT")
                   .Set("conditions", Json::Array().Push(FieldCondition(true)).Push(FieldCondition(true))));
      } else {
        w.Push(FieldCondition(true));
      }
    }
    return w;
  }

  Json Window() {
    int r = Int(0, 4);
    if (r == 0) return Json();
    if (r == 1) return Pick(durations_);
    Json w = Json::Object();
    if (r == 2) return w.Set("from", FormatTimestamp(Time()));
    if (r == 3)
      return w.Set("from", "-" + std::to_string(Int(10, 60)) + "d").Set("to", "-" + std::to_string(Int(0, 9)) + "d");
    return w.Set("from", FormatTimestamp(base_ - 40 * kDay)).Set("to", "+" + std::to_string(Int(0, 48)) + "h");
  }

  Json Behaviour() {
    Json c = Json::Object().Set("event", Pick(event_kinds_));
    if (Chance(0.5)) c.Set("where", Where());
    Json w = Window();
    if (!w.is_null()) c.Set("within", w);
    int r = Int(0, 5);
    if (r == 1) c.Set("count", Json::Object().Set(Pick(cmp_ops_), Int(0, 4)));
    if (r == 2) c.Set("count", 0);
    if (r >= 3) {
      static const std::vector<std::string> kAggs = {"sum", "avg", "min", "max"};
      c.Set(Pick(kAggs), "properties.revenue");
      c.Set("value", Json::Object().Set(Pick(cmp_ops_), Int(0, 3000) / 4.0));
    }
    return c;
  }

  Json Sequence() {
    Json steps = Json::Array();
    for (int i = Int(2, 3); i > 0; --i) {
      Json s = Json::Object().Set("event", Pick(event_kinds_));
      if (Chance(0.3)) s.Set("where", Where());
      steps.Push(s);
    }
    Json c = Json::Object().Set("sequence", steps);
    if (Chance(0.6)) c.Set("span", Pick(durations_));
    Json w = Window();
    if (!w.is_null()) c.Set("within", w);
    return c;
  }

  Json Condition(int depth) {
    int r = Int(0, 19);
    if (depth < 3 && r < 4) return Group(depth + 1);
    if (r < 5) return Json::Object().Set("not", Condition(depth + 1));
    if (r < 12) return FieldCondition(false);
    if (r < 16) return Behaviour();
    if (r < 18) return Sequence();
    return Json::Object().Set("segment", Pick(segment_ids_));
  }

  Json Group(int depth) {
    Json conditions = Json::Array();
    for (int i = Int(1, 3); i > 0; --i) conditions.Push(Condition(depth));
    static const std::vector<std::string> kGroupOps = {"AND", "OR", "NOT"};
    return Json::Object().Set("operator", Pick(kGroupOps)).Set("conditions", conditions);
  }

  std::mt19937_64& rng() { return rng_; }

 private:
  std::mt19937_64 rng_;
  int64_t base_;
  std::vector<Json> seen_;
  const std::vector<std::string> countries_ = {"US", "CA", "GB", "DE", "FR"};
  const std::vector<std::string> cities_ = {"London", "Paris", "Berlin", "Austin", "Lyon", "Leeds"};
  const std::vector<std::string> tags_ = {"vip", "new", "churned", "beta"};
  const std::vector<std::string> strings_ = {"US", "GB",   "London", "Lyon",       "vip",  "gold", "A12",
                                             "B7", "-30d", "",       "2026-05-01", "zeta", "Le"};
  const std::vector<std::string> prefixes_ = {"L", "Le", "v", "2026-05", "A", "", "sku-1"};
  const std::vector<std::string> rfm_ = {"Champions", "Lost", "At Risk", "Hibernating"};
  const std::vector<std::string> segment_ids_ = {"s1", "s2", "s3"};
  const std::vector<std::string> types_ = {"page_view",   "page_view",  "purchase", "purchase",
                                           "add_to_cart", "email_open", "custom"};
  const std::vector<std::string> names_ = {"signup", "login"};
  const std::vector<std::string> event_kinds_ = {"purchase", "page_view", "add_to_cart", "email_open",
                                                 "signup",   "login",     "custom",      "*"};
  const std::vector<std::string> categories_ = {"books", "music", "toys"};
  const std::vector<std::string> sources_ = {"web", "ios"};
  const std::vector<std::string> relative_ = {"-30d", "-7d", "-12h", "-90m", "now", "+2d", "-2w", "-45d"};
  const std::vector<std::string> durations_ = {"30d", "7d", "12h", "3600s", "2w", "90m"};
  const std::vector<std::string> cmp_ops_ = {"=", "!=", ">", "<", ">=", "<="};
  const std::vector<std::string> profile_fields_ = {"attributes.country",
                                                    "attributes.city",
                                                    "attributes.tags",
                                                    "attributes.customFields.score",
                                                    "attributes.customFields.code",
                                                    "attributes.customFields.birthday",
                                                    "attributes.customFields",
                                                    "computed.ltv",
                                                    "computed.lastPurchaseDate",
                                                    "computed.churnRisk",
                                                    "computed.rfm.segment",
                                                    "computed.rfm.score",
                                                    "consent.email",
                                                    "labels",
                                                    "createdAt",
                                                    "attributes.missing"};
  const std::vector<std::string> event_fields_ = {
      "properties.revenue", "properties.category", "properties.sku", "source", "name", "properties.none"};
};

class SegmentDifferentialTest : public ::testing::Test {
 protected:
  static constexpr int64_t kBase = 1780272000LL * kSec;  // 2026-06-01T00:00:00Z

  void AddProfile(uint32_t ord, Json doc) {
    ASSERT_TRUE(index_.UpsertProfile(ord, doc).ok());
    ref_.profiles[ord].doc = std::move(doc);
  }
  void AddEvent(uint32_t ord, RefEvent e) {
    ASSERT_TRUE(index_.AddEvent(ord, e.type, e.name, e.time, e.doc).ok());
    ref_.profiles[ord].events.push_back(std::move(e));
  }
  void Remove(uint32_t ord) {
    index_.RemoveProfile(ord);
    ref_.profiles.erase(ord);
  }

  void SetSegments(Generator* gen, uint32_t max_ord) {
    for (const char* id : {"s1", "s2"}) {
      std::set<uint32_t>& ref = ref_.segments[id];
      Bitmap& bm = segments_[id];
      ref.clear();
      bm = Bitmap();
      for (uint32_t o = 0; o <= max_ord + 5; ++o) {  // some members the index does not know
        if (gen->Chance(0.3)) {
          ref.insert(o);
          bm.add(o);
        }
      }
    }
    // s3 is unknown to the lookup: no members.
  }

  MembershipLookup Lookup() const {
    return [this](std::string_view id) -> const Bitmap* {
      auto it = segments_.find(std::string(id));
      return it == segments_.end() ? nullptr : &it->second;
    };
  }

  std::set<uint32_t> RefMembers(const SegmentRule& rule, int64_t now) const {
    std::set<uint32_t> out;
    for (uint32_t o : ref_.Members(rule, now)) out.insert(o);
    return out;
  }

  // Full and single-profile evaluation agree with the reference. Returns the number of members.
  size_t Check(const SegmentRule& rule, const PreparedRule& prepared, int64_t now, const std::string& what) {
    std::set<uint32_t> expected = ref_.Members(rule, now);
    Bitmap got = index_.Evaluate(prepared, now, Lookup());
    std::set<uint32_t> actual;
    for (uint32_t o : got) actual.insert(o);
    EXPECT_EQ(actual, expected) << what << "\nrule: " << rule.source().Dump();
    if (actual != expected) {
      for (uint32_t o : expected) {
        if (!actual.count(o)) ADD_FAILURE() << "missing " << o << ": " << ref_.profiles.at(o).doc.Dump();
      }
      for (uint32_t o : actual) {
        if (!expected.count(o)) ADD_FAILURE() << "extra " << o << ": " << ref_.profiles.at(o).doc.Dump();
      }
    }
    EXPECT_EQ(index_.Count(prepared, now, Lookup()), expected.size());
    for (const auto& [ord, p] : ref_.profiles) {
      bool one = index_.EvaluateOne(ord, prepared, now, Lookup());
      EXPECT_EQ(one, expected.count(ord) > 0) << what << " profile " << ord << " rule " << rule.source().Dump();
      if (one != (expected.count(ord) > 0)) break;
    }
    return expected.size();
  }

  // Membership stays as it is over [now, NextChange) according to the reference.
  void CheckNextChange(const SegmentRule& rule, const PreparedRule& prepared, int64_t now, Generator* gen) {
    for (const auto& [ord, p] : ref_.profiles) {
      if (gen->Int(0, 3) != 0) continue;
      bool member = ref_.IsMember(ord, rule, now);
      std::optional<int64_t> next = index_.NextChange(ord, prepared, now);
      if (!rule.dependencies().time_dependent) {
        EXPECT_FALSE(next.has_value()) << rule.source().Dump();
      }
      int64_t end = next ? *next : now + 400 * kDay;
      ASSERT_GT(end, now);
      std::vector<int64_t> probes = {end - 1, now + (end - now) / 2, now + 1};
      for (int i = 0; i < 4; ++i)
        probes.push_back(now + std::uniform_int_distribution<int64_t>(0, end - now - 1)(gen->rng()));
      for (int64_t t : probes) {
        EXPECT_EQ(ref_.IsMember(ord, rule, t), member)
            << "profile " << ord << " changed at " << FormatTimestamp(t) << " before NextChange "
            << (next ? FormatTimestamp(*next) : "none") << " (now " << FormatTimestamp(now)
            << ") rule: " << rule.source().Dump();
      }
      // The index agrees at the instant it names.
      if (next) {
        EXPECT_EQ(index_.EvaluateOne(ord, prepared, *next, Lookup()), ref_.IsMember(ord, rule, *next));
      }
    }
  }

  SegmentIndex index_;
  ReferenceEvaluator ref_;
  std::map<std::string, Bitmap> segments_;
};

TEST_F(SegmentDifferentialTest, RandomRulesFullAndIncremental) {
  Generator gen(20260601, kBase);
  constexpr uint32_t kProfiles = 300;
  for (uint32_t o = 0; o < kProfiles; ++o) {
    AddProfile(o * 2, gen.Profile());  // sparse ordinals: every other one
    for (int e = gen.Int(0, 14); e > 0; --e) AddEvent(o * 2, gen.Event());
  }
  for (int e = 0; e < 40; ++e) AddEvent(kProfiles * 2 + 1, gen.Event());  // a profile known only by its events
  ref_.profiles[kProfiles * 2 + 1];
  SetSegments(&gen, kProfiles * 2 + 1);

  struct Prepared {
    SegmentRule rule;
    std::shared_ptr<const PreparedRule> prepared;
  };
  std::vector<Prepared> rules;
  int rejected = 0;
  while (rules.size() < 400) {
    Json json = gen.Chance(0.5) ? gen.Group(1) : gen.Condition(1);
    auto rule = SegmentRule::FromJson(json);
    if (!rule.ok()) {
      ++rejected;
      continue;
    }
    rules.push_back({*rule, index_.Prepare(*rule)});
  }
  EXPECT_LT(rejected, 40) << "the generator should mostly write valid rules";

  // Non-trivial: rules select a spread of sizes.
  int64_t now = kBase;
  size_t empty = 0, full = 0;
  for (size_t i = 0; i < rules.size(); ++i) {
    size_t n = Check(rules[i].rule, *rules[i].prepared, now, "full #" + std::to_string(i));
    empty += n == 0;
    full += n == ref_.profiles.size();
    if (HasFailure()) return;
  }
  EXPECT_LT(empty + full, rules.size() * 6 / 10) << empty << " empty, " << full << " full";

  // A stream of writes and time passing; after each round every rule is checked again.
  for (int round = 0; round < 12; ++round) {
    for (int w = 0; w < 60; ++w) {
      uint32_t ord = static_cast<uint32_t>(gen.Int(0, kProfiles * 2 + 4));
      int r = gen.Int(0, 9);
      if (r < 3) {
        AddProfile(ord, gen.Profile());
      } else if (r < 9) {
        AddEvent(ord, gen.Event());
      } else {
        Remove(ord);
      }
    }
    now += gen.Int(0, 3) * kDay + (gen.Chance(0.5) ? 0 : gen.Int(0, 24) * 3600 * kSec);
    if (round % 4 == 3) SetSegments(&gen, kProfiles * 2 + 4);
    for (size_t i = 0; i < rules.size(); ++i) {
      Check(rules[i].rule, *rules[i].prepared, now, "round " + std::to_string(round) + " #" + std::to_string(i));
      if (HasFailure()) return;
    }
  }
  // A rule prepared after the writes sees the same data.
  for (int i = 0; i < 50; ++i) {
    auto rule = SegmentRule::FromJson(gen.Group(1));
    if (!rule.ok()) continue;
    Check(*rule, *index_.Prepare(*rule), now, "late #" + std::to_string(i));
    if (HasFailure()) return;
  }
}

TEST_F(SegmentDifferentialTest, NextChangeIsNeverLate) {
  Generator gen(77, kBase);
  for (uint32_t o = 0; o < 120; ++o) {
    AddProfile(o, gen.Profile());
    for (int e = gen.Int(0, 10); e > 0; --e) AddEvent(o, gen.Event());
  }
  SetSegments(&gen, 120);
  int time_dependent = 0;
  for (int i = 0; i < 150; ++i) {
    Json json = gen.Condition(1);
    auto rule = SegmentRule::FromJson(json);
    if (!rule.ok()) continue;
    time_dependent += rule->dependencies().time_dependent;
    auto prepared = index_.Prepare(*rule);
    for (int64_t now : {kBase - 20 * kDay, kBase, kBase + 3 * kDay}) {
      CheckNextChange(*rule, *prepared, now, &gen);
      if (HasFailure()) return;
    }
  }
  EXPECT_GT(time_dependent, 30);
}

}  // namespace
}  // namespace cdp::segments
