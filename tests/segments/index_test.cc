// Copyright 2026 The libcdp Authors.
//
// SegmentIndex on small hand-written data: each operator, behavioural counts, aggregates, windows and sequences,
// relative dates, NOT, segment membership, NextChange, updates and removal, set algebra.

#include "segments/index.h"

#include <gtest/gtest.h>

#include <map>
#include <set>
#include <string>
#include <vector>

#include "cdp/query.h"
#include "test_util.h"

namespace cdp::segments {
namespace {

using ::cdp::testing::J;

constexpr int64_t kSec = 1000000;
constexpr int64_t kDay = 86400 * kSec;
const int64_t kNow = *ParseTimestamp("2026-06-01T00:00:00Z");

class SegmentIndexTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Upsert(1, R"({"attributes": {"country": "US", "city": "London", "tags": ["vip", "beta"],
                                 "customFields": {"tier": 3, "birthday": "1990-05-01", "code": "A-17"}},
                  "computed": {"ltv": 250.5, "lastPurchaseDate": "2026-05-25T10:00:00.000Z", "churnRisk": 0.1,
                               "rfm": {"score": 545, "segment": "Champions"}},
                  "consent": {"email": true}, "labels": ["s-a"]})");
    Upsert(2, R"({"attributes": {"country": "GB", "city": "Leeds", "tags": ["new"],
                                 "customFields": {"tier": "3", "code": "B-2"}},
                  "computed": {"ltv": 40, "lastPurchaseDate": "2026-03-01T00:00:00.000Z", "churnRisk": 0.8,
                               "rfm": {"score": 111, "segment": "Lost"}},
                  "consent": {"email": false}})");
    Upsert(3, R"({"attributes": {"country": null, "city": "Lyon", "tags": "vip",
                                 "customFields": {"tier": 3.0}},
                  "computed": {"ltv": 100}})");
    Upsert(4, R"({"attributes": {}})");
  }

  void Upsert(uint32_t ord, std::string_view doc) { ASSERT_TRUE(index_.UpsertProfile(ord, J(doc)).ok()); }

  void Event(uint32_t ord, std::string_view type, int64_t time, std::string_view doc = "{}",
             std::string_view name = "") {
    ASSERT_TRUE(index_.AddEvent(ord, type, name, time, J(doc)).ok());
  }

  std::set<uint32_t> Members(std::string_view rule_json, int64_t now = kNow) {
    auto rule = SegmentRule::FromJson(J(rule_json));
    EXPECT_TRUE(rule.ok()) << rule.status().ToString();
    if (!rule.ok()) return {};
    auto prepared = index_.Prepare(*rule);
    MembershipLookup lookup = [this](std::string_view id) -> const Bitmap* {
      auto it = segments_.find(std::string(id));
      return it == segments_.end() ? nullptr : &it->second;
    };
    Bitmap all = index_.Evaluate(*prepared, now, lookup);
    std::set<uint32_t> out(all.begin(), all.end());
    // Single-profile evaluation agrees with the full one.
    for (uint32_t o : index_.universe()) {
      EXPECT_EQ(index_.EvaluateOne(o, *prepared, now, lookup), out.count(o) > 0) << "profile " << o << " " << rule_json;
    }
    return out;
  }

  std::optional<int64_t> Next(uint32_t ord, std::string_view rule_json, int64_t now = kNow) {
    auto rule = SegmentRule::FromJson(J(rule_json));
    EXPECT_TRUE(rule.ok()) << rule.status().ToString();
    return index_.NextChange(ord, *index_.Prepare(*rule), now);
  }

  static std::string F(std::string_view field, std::string_view op, std::string_view value) {
    return R"({"field": ")" + std::string(field) + R"(", "operator": ")" + std::string(op) + R"(", "value": )" +
           std::string(value) + "}";
  }

  SegmentIndex index_;
  std::map<std::string, Bitmap> segments_;
};

using S = std::set<uint32_t>;

TEST_F(SegmentIndexTest, EqualityAndInequality) {
  EXPECT_EQ(Members(F("attributes.country", "=", R"("US")")), S({1}));
  EXPECT_EQ(Members(F("attributes.country", "!=", R"("US")")), S({2, 3, 4}));  // null and absent match !=
  // Numbers compare numerically across int and double; "3" is a string, not a number.
  EXPECT_EQ(Members(F("attributes.customFields.tier", "=", "3")), S({1, 3}));
  EXPECT_EQ(Members(F("attributes.customFields.tier", "=", R"("3")")), S({2}));
  EXPECT_EQ(Members(F("consent.email", "=", "true")), S({1}));
  EXPECT_EQ(Members(F("attributes.tags", "=", R"(["vip", "beta"])")), S({1}));
  EXPECT_EQ(Members(F("attributes.tags", "=", R"(["beta", "vip"])")), S());  // order matters
  // Objects equal nothing but exist.
  EXPECT_EQ(Members(F("computed.rfm", "=", "545")), S());
  EXPECT_EQ(Members(R"({"field": "computed.rfm", "operator": "exists"})"), S({1, 2}));
}

TEST_F(SegmentIndexTest, OrderedComparisons) {
  EXPECT_EQ(Members(F("computed.ltv", ">", "100")), S({1}));
  EXPECT_EQ(Members(F("computed.ltv", ">=", "100")), S({1, 3}));
  EXPECT_EQ(Members(F("computed.ltv", "<", "100")), S({2}));
  EXPECT_EQ(Members(F("computed.ltv", "<=", "100.0")), S({2, 3}));
  EXPECT_EQ(Members(F("attributes.city", ">", R"("Leeds")")), S({1, 3}));      // byte-wise: London, Lyon
  EXPECT_EQ(Members(F("attributes.customFields.tier", ">", "2")), S({1, 3}));  // "3" is not a number
  EXPECT_EQ(Members(F("computed.ltv", "between", "[40, 100]")), S({2, 3}));
  EXPECT_EQ(Members(F("attributes.city", "between", R"(["Le", "Lo"])")), S({2}));  // "London" > "Lo"
  EXPECT_EQ(Members(F("attributes.city", "between", R"(["Le", "Lp"])")), S({1, 2}));
}

TEST_F(SegmentIndexTest, StringAndListOperators) {
  EXPECT_EQ(Members(F("attributes.city", "contains", R"("ee")")), S({2}));
  EXPECT_EQ(Members(F("attributes.tags", "contains", R"("vip")")), S({1, 3}));  // array element, or substring
  EXPECT_EQ(Members(F("attributes.city", "starts_with", R"("L")")), S({1, 2, 3}));
  EXPECT_EQ(Members(F("attributes.customFields.code", "starts_with", R"("A-")")), S({1}));
  EXPECT_EQ(Members(F("attributes.tags", "starts_with", R"("be")")), S({1}));
  EXPECT_EQ(Members(F("attributes.country", "in", R"(["US", "GB"])")), S({1, 2}));
  EXPECT_EQ(Members(F("attributes.tags", "in", R"(["new", "x"])")), S({2}));  // an array field shares one
  EXPECT_EQ(Members(F("attributes.country", "not_in", R"(["US", "GB"])")), S({3, 4}));
  EXPECT_EQ(Members(R"({"field": "attributes.country", "operator": "exists"})"), S({1, 2}));  // null is absent
  EXPECT_EQ(Members(R"({"field": "attributes.country", "operator": "not_exists"})"), S({3, 4}));
  EXPECT_EQ(Members(R"({"field": "labels", "operator": "contains", "value": "s-a"})"), S({1}));
}

TEST_F(SegmentIndexTest, DatesAbsoluteAndRelative) {
  EXPECT_EQ(Members(F("computed.lastPurchaseDate", ">=", R"("2026-05-01")")), S({1}));
  EXPECT_EQ(Members(F("computed.lastPurchaseDate", ">=", R"("-30d")")), S({1}));
  EXPECT_EQ(Members(F("computed.lastPurchaseDate", ">=", R"("-100d")")), S({1, 2}));
  // Seven days later the purchase of 2026-05-25T10:00 is more than 7 days old.
  EXPECT_EQ(Members(F("computed.lastPurchaseDate", ">=", R"("-7d")")), S({1}));
  EXPECT_EQ(Members(F("computed.lastPurchaseDate", ">=", R"("-7d")"), kNow + 3 * kDay), S());
  EXPECT_EQ(Members(F("computed.lastPurchaseDate", "between", R"(["-100d", "-60d"])")), S({2}));
  // A date-only field compares as an instant too; a non-date string never matches a date.
  EXPECT_EQ(Members(F("attributes.customFields.birthday", "<", R"("2000-01-01")")), S({1}));
  EXPECT_EQ(Members(F("attributes.customFields.code", "<", R"("2000-01-01")")), S());
  EXPECT_EQ(Members(F("computed.lastPurchaseDate", "=", R"("2026-05-25T10:00:00Z")")), S({1}));
  EXPECT_EQ(Members(F("computed.lastPurchaseDate", "!=", R"("2026-05-25T10:00:00Z")")), S({2, 3, 4}));
  // Hours and minutes.
  EXPECT_EQ(Members(F("computed.lastPurchaseDate", ">", R"("-159h")")), S({1}));
  EXPECT_EQ(Members(F("computed.lastPurchaseDate", ">", R"("-9480m")")), S());  // 158h = 6d14h: exactly, not after
  EXPECT_EQ(Members(F("computed.lastPurchaseDate", ">=", R"("-9480m")")), S({1}));
}

TEST_F(SegmentIndexTest, GroupsAndNot) {
  EXPECT_EQ(Members(R"({"operator": "OR", "conditions": [)" + F("attributes.country", "=", R"("US")") + "," +
                    F("computed.ltv", "<", "50") + "]}"),
            S({1, 2}));
  EXPECT_EQ(Members(R"({"operator": "NOT", "conditions": [)" + F("attributes.country", "=", R"("US")") + "," +
                    F("computed.ltv", ">", "50") + "]}"),
            S({2, 3, 4}));
  EXPECT_EQ(Members(R"({"not": )" + F("attributes.city", "starts_with", R"("L")") + "}"), S({4}));
  EXPECT_EQ(Members(R"({"operator": "AND", "conditions": []})"), S({1, 2, 3, 4}));
  EXPECT_EQ(Members(R"({"operator": "OR", "conditions": []})"), S());
}

TEST_F(SegmentIndexTest, BehaviouralCountsAndWindows) {
  Event(1, "purchase", kNow - 2 * kDay, R"({"properties": {"revenue": 30, "category": "books"}})");
  Event(1, "purchase", kNow - 40 * kDay, R"({"properties": {"revenue": 70.5, "category": "music"}})");
  Event(2, "purchase", kNow - 10 * kDay, R"({"properties": {"revenue": 5}})");
  Event(2, "page_view", kNow - 1 * kDay);
  Event(3, "custom", kNow - 3 * kDay, R"({"name": "signup", "source": "ios"})", "signup");
  EXPECT_EQ(Members(R"({"event": "purchase"})"), S({1, 2}));
  EXPECT_EQ(Members(R"({"event": "purchase", "within": "30d"})"), S({1, 2}));
  EXPECT_EQ(Members(R"({"event": "purchase", "within": "30d", "count": {">=": 2}})"), S());
  EXPECT_EQ(Members(R"({"event": "purchase", "within": "60d", "count": {">=": 2}})"), S({1}));
  EXPECT_EQ(Members(R"({"event": "purchase", "within": "5d", "count": 0})"), S({2, 3, 4}));  // did not
  EXPECT_EQ(Members(R"({"event": "purchase", "within": {"from": "-50d", "to": "-5d"}})"), S({1, 2}));
  EXPECT_EQ(Members(R"({"event": "purchase", "within": {"from": "2026-05-20", "to": "2026-05-25"}})"), S({2}));
  EXPECT_EQ(Members(R"({"event": "purchase", "where": [{"field": "properties.category", "operator": "=",
                                                         "value": "books"}]})"),
            S({1}));
  EXPECT_EQ(Members(R"({"event": "signup"})"), S({3}));
  EXPECT_EQ(Members(R"({"event": "custom", "where": [{"field": "source", "operator": "=", "value": "ios"}]})"), S({3}));
  EXPECT_EQ(Members(R"({"event": "*", "within": "1d"})"), S({2}));
  EXPECT_EQ(Members(R"({"event": "*", "count": {">=": 2}})"), S({1, 2}));
  // A window includes both of its bounds.
  EXPECT_EQ(Members(R"({"event": "purchase", "within": "2d"})"), S({1}));
  EXPECT_EQ(Members(R"({"event": "purchase", "within": "2d"})", kNow + 1), S());
}

TEST_F(SegmentIndexTest, Aggregates) {
  Event(1, "purchase", kNow - 2 * kDay, R"({"properties": {"revenue": 30}})");
  Event(1, "purchase", kNow - 4 * kDay, R"({"properties": {"revenue": 70.5}})");
  Event(1, "purchase", kNow - 5 * kDay, R"({"properties": {"revenue": "lots"}})");  // not a number: left out
  Event(2, "purchase", kNow - 3 * kDay, R"({"properties": {"revenue": 0.1}})");
  Event(2, "purchase", kNow - 3 * kDay, R"({"properties": {"revenue": 0.2}})");
  Event(3, "purchase", kNow - 3 * kDay, R"({"properties": {}})");
  EXPECT_EQ(Members(R"({"event": "purchase", "sum": "properties.revenue", "value": {">=": 100.5}})"), S({1}));
  // Sums are exact in micro-units: 0.1 + 0.2 == 0.3.
  EXPECT_EQ(Members(R"({"event": "purchase", "sum": "properties.revenue", "value": {"=": 0.3}})"), S({2}));
  // The sum of no values is 0, so profiles without purchases match sum < 1.
  EXPECT_EQ(Members(R"({"event": "purchase", "sum": "properties.revenue", "value": {"<": 1}})"), S({2, 3, 4}));
  EXPECT_EQ(Members(R"({"event": "purchase", "avg": "properties.revenue", "value": {"=": 50.25}})"), S({1}));
  // avg / min / max of no values never match.
  EXPECT_EQ(Members(R"({"event": "purchase", "avg": "properties.revenue", "value": {"<": 1}})"), S({2}));
  EXPECT_EQ(Members(R"({"event": "purchase", "min": "properties.revenue", "value": {"<=": 30}})"), S({1, 2}));
  EXPECT_EQ(Members(R"({"event": "purchase", "max": "properties.revenue", "value": {">": 70}})"), S({1}));
  EXPECT_EQ(Members(R"({"event": "purchase", "max": "properties.revenue", "within": "3d", "value": {">": 1}})"),
            S({1}));
}

TEST_F(SegmentIndexTest, Sequences) {
  Event(1, "add_to_cart", kNow - 10 * kDay, R"({"properties": {"sku": "a"}})");
  Event(1, "purchase", kNow - 10 * kDay + 30 * 60 * kSec);
  Event(2, "purchase", kNow - 10 * kDay);  // purchase before the cart: not the sequence
  Event(2, "add_to_cart", kNow - 9 * kDay);
  Event(3, "add_to_cart", kNow - 10 * kDay);
  Event(3, "purchase", kNow - 10 * kDay);  // same instant: not "then"
  Event(3, "purchase", kNow - 7 * kDay);
  const char* then = R"({"sequence": [{"event": "add_to_cart"}, {"event": "purchase"}]})";
  EXPECT_EQ(Members(then), S({1, 3}));
  EXPECT_EQ(Members(R"({"sequence": [{"event": "add_to_cart"}, {"event": "purchase"}], "span": "1h"})"), S({1}));
  EXPECT_EQ(Members(R"({"sequence": [{"event": "add_to_cart"}, {"event": "purchase"}], "span": "3d"})"), S({1, 3}));
  EXPECT_EQ(Members(R"({"sequence": [{"event": "add_to_cart"}, {"event": "purchase"}], "within": "8d"})"), S());
  EXPECT_EQ(Members(R"({"sequence": [{"event": "add_to_cart", "where": [{"field": "properties.sku",
                                                                         "operator": "=", "value": "a"}]},
                                     {"event": "purchase"}]})"),
            S({1}));
  EXPECT_EQ(Members(R"({"sequence": [{"event": "purchase"}, {"event": "add_to_cart"}]})"), S({2}));
  // Profile 3's purchase at the cart's instant cannot be the middle step, so no three-step chain exists.
  EXPECT_EQ(Members(R"({"sequence": [{"event": "add_to_cart"}, {"event": "purchase"}, {"event": "purchase"}]})"), S());
  Event(3, "purchase", kNow - 6 * kDay);
  EXPECT_EQ(Members(R"({"sequence": [{"event": "add_to_cart"}, {"event": "purchase"}, {"event": "purchase"}]})"),
            S({3}));
}

TEST_F(SegmentIndexTest, SegmentMembership) {
  segments_["high"] = Bitmap::bitmapOf(3, 1, 3, 99);  // 99 is not a profile of this index
  EXPECT_EQ(Members(R"({"segment": "high"})"), S({1, 3}));
  EXPECT_EQ(Members(R"({"not": {"segment": "high"}})"), S({2, 4}));
  EXPECT_EQ(Members(R"({"segment": "unknown"})"), S());
  // The field form means the same.
  EXPECT_EQ(Members(R"({"field": "segments", "operator": "contains", "value": "high"})"), S({1, 3}));
  EXPECT_EQ(Members(R"({"field": "segments", "operator": "not_in", "value": ["high"]})"), S({2, 4}));
  EXPECT_EQ(Members(R"({"conditions": [{"segment": "high"}, )" + F("computed.ltv", ">", "200") + "]}"), S({1}));
}

TEST_F(SegmentIndexTest, NextChangeOfRelativeDatesAndWindows) {
  const int64_t purchase = *ParseTimestamp("2026-05-25T10:00:00Z");
  // ">= -30d" holds until now - 30d passes the date: the last instant is purchase + 30d.
  EXPECT_EQ(Next(1, F("computed.lastPurchaseDate", ">=", R"("-30d")")), purchase + 30 * kDay + 1);
  // "> -30d" stops holding at purchase + 30d exactly.
  EXPECT_EQ(Next(1, F("computed.lastPurchaseDate", ">", R"("-30d")")), purchase + 30 * kDay);
  // A profile without the field, and rules without time, never change by time alone.
  EXPECT_EQ(Next(4, F("computed.lastPurchaseDate", ">=", R"("-30d")")), std::nullopt);
  EXPECT_EQ(Next(1, F("computed.ltv", ">", "3")), std::nullopt);
  EXPECT_EQ(Next(1, F("computed.lastPurchaseDate", ">=", R"("2026-01-01")")), std::nullopt);

  Event(2, "purchase", kNow - 10 * kDay);
  Event(2, "purchase", kNow + 2 * kDay);  // in the future: enters the window when it happens
  EXPECT_EQ(Next(2, R"({"event": "purchase", "within": "30d"})"), kNow + 2 * kDay);
  EXPECT_EQ(Next(2, R"({"event": "purchase", "within": "30d"})", kNow + 2 * kDay), kNow + 20 * kDay + 1);
  EXPECT_EQ(Next(2, R"({"event": "purchase", "within": "30d"})", kNow + 20 * kDay + 1), kNow + 32 * kDay + 1);
  EXPECT_EQ(Next(2, R"({"event": "purchase", "within": "30d"})", kNow + 32 * kDay + 1), std::nullopt);
  // Membership really changes there: in at kNow + 20d, out one microsecond after the old purchase leaves when the
  // count must be 2.
  auto rule = SegmentRule::FromJson(J(R"({"event": "purchase", "within": "30d", "count": {">=": 2}})"));
  auto prepared = index_.Prepare(*rule);
  EXPECT_FALSE(index_.EvaluateOne(2, *prepared, kNow));
  EXPECT_TRUE(index_.EvaluateOne(2, *prepared, kNow + 2 * kDay));
  EXPECT_TRUE(index_.EvaluateOne(2, *prepared, kNow + 20 * kDay));
  EXPECT_FALSE(index_.EvaluateOne(2, *prepared, kNow + 20 * kDay + 1));
  // Events outside an absolute bound never count, so they never change anything.
  EXPECT_EQ(Next(2, R"({"event": "purchase", "within": {"from": "2027-01-01", "to": "now"}})"), std::nullopt);
}

TEST_F(SegmentIndexTest, UpsertFieldReplacesOnePathAndWhatIsBelowIt) {
  ASSERT_TRUE(index_.UpsertField(2, "computed.ltv", J("300")).ok());
  EXPECT_EQ(Members(F("computed.ltv", ">", "200")), S({1, 2}));
  EXPECT_EQ(Members(F("attributes.city", "=", R"("Leeds")")), S({2})) << "the rest of the row is kept";
  // A subtree: its old leaves go.
  ASSERT_TRUE(index_.UpsertField(1, "computed.rfm", J(R"({"score": 111})")).ok());
  EXPECT_EQ(Members(F("computed.rfm.segment", "exists", "true")), S({2}));
  EXPECT_EQ(Members(F("computed.rfm.score", "=", "111")), S({1, 2}));
  ASSERT_TRUE(index_.UpsertField(3, "computed.ltv", J("null")).ok());
  EXPECT_EQ(Members(F("computed.ltv", "exists", "true")), S({1, 2}));
  EXPECT_TRUE(index_.UpsertField(9, "computed.ltv", J("1")).IsNotFound());
  // The same scalar again changes nothing; a scalar over a subtree removes the subtree; an int and an equal
  // double are different cells, both compare equal in rules.
  ASSERT_TRUE(index_.UpsertField(2, "computed.ltv", J("300")).ok());
  EXPECT_EQ(Members(F("computed.ltv", "=", "300")), S({2}));
  ASSERT_TRUE(index_.UpsertField(1, "computed.rfm", J("5")).ok());
  EXPECT_EQ(Members(F("computed.rfm.score", "exists", "true")), S({2}));
  EXPECT_EQ(Members(F("computed.rfm", "=", "5")), S({1}));
  ASSERT_TRUE(index_.UpsertField(1, "computed.rfm", J("5.0")).ok());
  EXPECT_EQ(Members(F("computed.rfm", "=", "5")), S({1}));
  ASSERT_TRUE(index_.UpsertField(1, "computed.rfm", J(R"("2026-05-25T10:00:00.000Z")")).ok());
  ASSERT_TRUE(index_.UpsertField(1, "computed.rfm", J(R"("2026-05-25T10:00:00.000Z")")).ok());
  EXPECT_EQ(Members(F("computed.rfm", ">=", R"("2026-05-01T00:00:00Z")")), S({1}));
}

TEST_F(SegmentIndexTest, UpdatesAndRemoval) {
  Event(2, "purchase", kNow - kDay);
  EXPECT_EQ(Members(F("attributes.country", "=", R"("US")")), S({1}));
  Upsert(2, R"({"attributes": {"country": "US"}})");  // a replace: ltv and the rest are gone
  EXPECT_EQ(Members(F("attributes.country", "=", R"("US")")), S({1, 2}));
  EXPECT_EQ(Members(R"({"field": "computed.ltv", "operator": "exists"})"), S({1, 3}));
  EXPECT_EQ(Members(R"({"event": "purchase"})"), S({2}));  // events stay with the profile
  index_.RemoveProfile(2);
  EXPECT_EQ(Members(F("attributes.country", "=", R"("US")")), S({1}));
  EXPECT_EQ(Members(R"({"event": "purchase"})"), S());
  EXPECT_EQ(Members(R"({"event": "purchase", "count": 0})"), S({1, 3, 4}));
  EXPECT_EQ(index_.event_count(), 0u);
  // An event makes a profile known again.
  Event(2, "page_view", kNow);
  EXPECT_EQ(Members(R"({"field": "computed.ltv", "operator": "not_exists"})"), S({2, 4}));
  // Invalid input is rejected.
  EXPECT_TRUE(index_.AddEvent(5, "teleport", "", kNow, Json::Object()).IsInvalidArgument());
  EXPECT_TRUE(index_.AddEvent(5, "custom", "", kNow, Json::Object()).IsInvalidArgument());
  EXPECT_TRUE(index_.UpsertProfile(5, Json(3)).IsInvalidArgument());
  EXPECT_FALSE(index_.universe().contains(5));
}

// Many profiles and events: block zone maps skip whole blocks of an event table outside a window (here with
// blocks in time order, one out-of-order late event, and removed rows), and AND evaluates later conditions only
// for the candidates left when that is cheaper. Checked against hand-computed sets and EvaluateOne.
// Evaluate over a large index splits column scans, event-block scans and per-candidate tests over two threads; its
// members must be exactly those EvaluateOne (one profile at a time, one thread) finds, whichever path each node took.
TEST(SegmentIndexScaleTest, ParallelEvaluationMatchesOneByOne) {
  SegmentIndex index;
  constexpr uint32_t kProfiles = 100000;
  const char* countries[] = {"US", "GB", "FR", "DE", "CA"};
  for (uint32_t o = 0; o < kProfiles; ++o) {
    std::string doc = std::string(R"({"attributes": {"country": ")") + countries[o % 5] +
                      R"("}, "computed": {"ltv": )" + std::to_string(o % 997) + "}" +
                      (o % 3 == 0 ? R"(, "consent": {"email": true})" : "") + "}";
    ASSERT_TRUE(index.UpsertProfile(o, J(doc)).ok());
  }
  // 240,000 events over 90 days in time order: page views for everyone, a cart for every third, a purchase for
  // every seventh (revenue varies).
  constexpr int kEvents = 240000;
  const int64_t step = 90 * kDay / kEvents;
  for (int i = 0; i < kEvents; ++i) {
    const uint32_t o = static_cast<uint32_t>((static_cast<uint64_t>(i) * 7919) % kProfiles);
    const char* type = i % 7 == 0 ? "purchase" : (i % 3 == 0 ? "add_to_cart" : "page_view");
    ASSERT_TRUE(index
                    .AddEvent(o, type, "", kNow - (kEvents - 1 - i) * step,
                              J(R"({"properties": {"revenue": )" + std::to_string(i % 50) + "}}"))
                    .ok());
  }
  for (uint32_t o = 0; o < kProfiles; o += 1000) index.RemoveProfile(o);
  const char* rules[] = {
      R"({"field": "attributes.country", "operator": "in", "value": ["US", "DE"]})",
      R"({"field": "computed.ltv", "operator": "between", "value": [100, 400]})",
      R"({"field": "consent.email", "operator": "not_exists"})",
      R"({"event": "page_view", "within": "90d", "count": {">=": 2}})",
      R"({"event": "page_view", "within": "30d", "count": {">=": 1}})",
      R"({"event": "purchase", "within": "60d", "count": {"=": 0}})",
      R"({"event": "purchase", "sum": "properties.revenue", "within": "90d", "value": {">": 40}})",
      R"({"sequence": [{"event": "add_to_cart"}, {"event": "purchase"}], "within": "90d"})",
      R"({"operator": "AND", "conditions": [
          {"field": "attributes.country", "operator": "=", "value": "GB"},
          {"field": "computed.ltv", "operator": ">=", "value": 500},
          {"event": "purchase", "where": [{"field": "properties.revenue", "operator": ">", "value": 20}],
           "within": "30d", "count": {">=": 1}}]})",
      R"({"operator": "OR", "conditions": [{"event": "add_to_cart", "within": "7d"},
          {"operator": "NOT", "conditions": [{"field": "attributes.country", "operator": "=", "value": "FR"}]}]})",
  };
  for (const char* text : rules) {
    auto rule = SegmentRule::FromJson(J(text));
    ASSERT_TRUE(rule.ok()) << text << " " << rule.status().ToString();
    auto prepared = index.Prepare(*rule);
    Bitmap all = index.Evaluate(*prepared, kNow);
    uint64_t one_by_one = 0, mismatches = 0;
    for (uint32_t o : index.universe()) {
      const bool member = index.EvaluateOne(o, *prepared, kNow);
      one_by_one += member;
      mismatches += member != all.contains(o);
    }
    EXPECT_EQ(mismatches, 0u) << text;
    EXPECT_EQ(all.cardinality(), one_by_one) << text;
    EXPECT_GT(one_by_one, 0u) << text;                              // each rule has members...
    EXPECT_LT(one_by_one, index.universe().cardinality()) << text;  // ...and non-members
  }
}

TEST(SegmentIndexScaleTest, WindowsOverManyBlocksAndSelectiveAnds) {
  SegmentIndex index;
  constexpr uint32_t kProfiles = 3000;
  const char* countries[] = {"US", "GB", "FR"};
  for (uint32_t o = 0; o < kProfiles; ++o) {
    ASSERT_TRUE(index
                    .UpsertProfile(o, J(std::string(R"({"attributes": {"country": ")") + countries[o % 3] +
                                        (o % 100 == 7 ? R"(", "city": "Oslo")" : R"(")") +
                                        R"(}, "computed": {"ltv": )" + std::to_string(o % 50) + "}}"))
                    .ok());
  }
  // 30,000 page views in time order, one per 10 minutes ending at kNow: event i belongs to profile i % kProfiles.
  constexpr int kEvents = 30000;
  const int64_t step = 600 * kSec;
  for (int i = 0; i < kEvents; ++i) {
    ASSERT_TRUE(index
                    .AddEvent(i % kProfiles, "page_view", "", kNow - (kEvents - 1 - i) * step,
                              J(R"({"properties": {"n": )" + std::to_string(i) + "}}"))
                    .ok());
  }
  // A late event: in the window, stored in the last block among old rows' neighbours.
  ASSERT_TRUE(index.AddEvent(5, "page_view", "", kNow - kDay, J(R"({"properties": {"n": -1}})")).ok());
  index.RemoveProfile(2999);  // its rows stay in the tables, marked removed
  auto members = [&](std::string_view rule_json) {
    auto prepared = index.Prepare(*SegmentRule::FromJson(J(rule_json)));
    Bitmap all = index.Evaluate(*prepared, kNow);
    for (uint32_t o : index.universe()) {
      EXPECT_EQ(index.EvaluateOne(o, *prepared, kNow), all.contains(o)) << o << " " << rule_json;
    }
    return std::set<uint32_t>(all.begin(), all.end());
  };
  // Window of 2 days: events i with kEvents - 1 - i <= 288, i.e. the last 289 events, profiles 2711..2999 (2999
  // removed), and profile 5 by its late event.
  std::set<uint32_t> expected;
  for (int i = kEvents - 289; i < kEvents; ++i) expected.insert(i % kProfiles);
  expected.erase(2999);
  expected.insert(5);
  EXPECT_EQ(members(R"({"event": "page_view", "within": "2d"})"), expected);
  // Absolute window in the middle of the log (blocks on both sides skipped).
  const std::string from = FormatTimestamp(kNow - 20000 * step), to = FormatTimestamp(kNow - 19990 * step);
  std::set<uint32_t> middle;
  for (int i = kEvents - 1 - 20000; i <= kEvents - 1 - 19990; ++i) middle.insert(i % kProfiles);
  EXPECT_EQ(members(R"({"event": "page_view", "within": {"from": ")" + from + R"(", "to": ")" + to + R"("}})"), middle);
  // Windows spanning several blocks, with counts, against a count over the generated events.
  for (int days : {30, 100, 180}) {
    for (int at_least : {1, 3, 4}) {
      std::map<uint32_t, int> counts;
      for (int i = 0; i < kEvents; ++i) {
        if ((kEvents - 1 - i) * step <= days * kDay) ++counts[i % kProfiles];
      }
      ++counts[5];  // the late event
      std::set<uint32_t> want;
      for (const auto& [o, n] : counts) {
        if (n >= at_least && o != 2999) want.insert(o);
      }
      EXPECT_EQ(members(R"({"event": "page_view", "within": ")" + std::to_string(days) + R"(d", "count": {">=": )" +
                        std::to_string(at_least) + "}}"),
                want)
          << days << " days, at least " << at_least;
    }
  }
  // A selective first condition (30 Oslo profiles) and an event condition decided per candidate.
  std::set<uint32_t> oslo_recent;
  for (uint32_t o : expected) {
    if (o % 100 == 7) oslo_recent.insert(o);
  }
  EXPECT_EQ(members(R"({"conditions": [{"event": "page_view", "within": "2d"},
                                       {"field": "attributes.city", "operator": "=", "value": "Oslo"}]})"),
            oslo_recent);
  // Not equal, not in, numeric ranges and booleans through the column fast paths, absent cells included.
  std::set<uint32_t> not_oslo, ltv_range, not_us_gb;
  for (uint32_t o = 0; o < kProfiles - 1; ++o) {
    if (o % 100 != 7) not_oslo.insert(o);
    if (o % 50 >= 10 && o % 50 <= 12) ltv_range.insert(o);
    if (o % 3 == 2) not_us_gb.insert(o);
  }
  EXPECT_EQ(members(R"({"field": "attributes.city", "operator": "!=", "value": "Oslo"})"), not_oslo);
  EXPECT_EQ(members(R"({"field": "computed.ltv", "operator": "between", "value": [10, 12.5]})"), ltv_range);
  EXPECT_EQ(members(R"({"field": "attributes.country", "operator": "not_in", "value": ["US", "GB"]})"), not_us_gb);
  EXPECT_EQ(members(R"({"field": "attributes.country", "operator": "=", "value": true})"), std::set<uint32_t>());
}

TEST(SegmentSetAlgebraTest, OverlapAndMatrix) {
  Bitmap a = Bitmap::bitmapOf(4, 1, 2, 3, 4);
  Bitmap b = Bitmap::bitmapOf(3, 3, 4, 5);
  Bitmap empty;
  Overlap o = Compare(a, b);
  EXPECT_EQ(o.a, 4u);
  EXPECT_EQ(o.b, 3u);
  EXPECT_EQ(o.intersection, 2u);
  EXPECT_EQ(o.union_size, 5u);
  EXPECT_EQ(o.a_minus_b, 2u);
  EXPECT_EQ(o.b_minus_a, 1u);
  EXPECT_DOUBLE_EQ(o.jaccard, 0.4);
  EXPECT_DOUBLE_EQ(Compare(empty, empty).jaccard, 0.0);
  auto m = PairwiseOverlap({&a, &b, &empty});
  ASSERT_EQ(m.size(), 3u);
  EXPECT_EQ(m[1][0].a, 3u);
  EXPECT_EQ(m[1][0].a_minus_b, 1u);
  EXPECT_EQ(m[0][0].intersection, 4u);
  EXPECT_DOUBLE_EQ(m[0][0].jaccard, 1.0);
  EXPECT_EQ(m[2][1].union_size, 3u);
}

}  // namespace
}  // namespace cdp::segments
