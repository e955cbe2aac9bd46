// Copyright 2026 The libcdp Authors.
//
// Segments through the engine (Engine::segments()): definitions stored and validated, sizes and members exact after
// every kind of write (events, profile writes, merges, erasure), across a reopen; members paged; estimates.

#include <gtest/gtest.h>

#include <set>

#include "test_util.h"

namespace cdp {
namespace {

using testing::J;
using testing::Unwrap;

class EngineSegmentsTest : public testing::EngineTest {
 protected:
  Segments& segments() { return engine_->segments(); }
  int64_t SizeOf(const std::string& id) { return Unwrap(segments().Size(id)); }
  std::string Track(const std::string& who, const std::string& type, double revenue, int64_t days_ago = 0,
                    const std::string& key = "customerId") {
    const int64_t ms = NowMillis() - days_ago * 86'400'000;
    const std::string event = R"({"type":")" + type + R"(",")" + key + R"(":")" + who + R"(","timestamp":)" +
                              std::to_string(ms) + R"(,"properties":{"revenue":)" + std::to_string(revenue) + "}}";
    return Unwrap(events().Track(J(event))).profile_id;
  }
  static int64_t NowMillis() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
  }
  // Buyers in France with two purchases in the last 30 days.
  static Json FrenchRepeatBuyers() {
    return J(R"({"name": "French repeat buyers", "rule": {"operator": "AND", "conditions": [
      {"field": "attributes.country", "operator": "=", "value": "FR"},
      {"event": "purchase", "within": "30d", "count": {">=": 2}}]}})");
  }
};

TEST_F(EngineSegmentsTest, MembershipFollowsEveryKindOfWrite) {
  const std::string a = Track("a", "purchase", 10);
  Unwrap(profiles().Patch(a, J(R"({"attributes": {"country": "FR"}})")));
  Json seg = Unwrap(segments().Create(FrenchRepeatBuyers()));
  const std::string id = seg.Find("id")->as_string();
  EXPECT_EQ(id.rfind("seg_", 0), 0u);
  EXPECT_EQ(seg.Find("size")->as_int(), 0);
  Track("a", "purchase", 20);  // an event: a enters
  EXPECT_EQ(SizeOf(id), 1);
  const std::string b = Track("b", "purchase", 5, /*days_ago=*/40);  // too old to count
  Track("b", "purchase", 5);
  Unwrap(profiles().Patch(b, J(R"({"attributes": {"country": "FR"}})")));
  EXPECT_EQ(SizeOf(id), 1) << "one of b's purchases is outside the window";
  Track("b", "purchase", 5, /*days_ago=*/3);
  EXPECT_EQ(SizeOf(id), 2);
  Unwrap(profiles().Patch(a, J(R"({"attributes": {"country": "DE"}})")));  // a profile write: a leaves
  EXPECT_EQ(SizeOf(id), 1);
  // A merge: c's purchase moves to b's profile (or b's to c's); the survivor still has them all.
  const std::string c = Track("c", "purchase", 1, 0, "anonymousId");
  Unwrap(engine_->identity().Merge({b, c}, "test"));
  Page members = Unwrap(segments().Members(id, 10, ""));
  ASSERT_EQ(members.items.size(), 1u);
  EXPECT_EQ(members.items[0].FindPath("computed.purchaseCount")->as_int(), 4);
  // Erasure.
  ASSERT_TRUE(profiles().Delete(b).ok());
  EXPECT_EQ(SizeOf(id), 0);
  // The definition and the membership survive a reopen (the index is rebuilt from storage).
  Track("a", "purchase", 1);
  Unwrap(profiles().Patch(a, J(R"({"attributes": {"country": "FR"}})")));
  Reopen();
  Json again = Unwrap(segments().Get(id));
  EXPECT_EQ(again.Find("name")->as_string(), "French repeat buyers");
  EXPECT_EQ(again.Find("size")->as_int(), 1);
  EXPECT_EQ(Unwrap(segments().List()).size(), 1u);
}

TEST_F(EngineSegmentsTest, MembersArePagedAndEstimatesMatch) {
  std::set<std::string> expected;
  for (int i = 0; i < 120; ++i) {
    const std::string p = Track("m" + std::to_string(i), i % 4 == 0 ? "page_view" : "purchase", i);
    if (i % 4 != 0) expected.insert(p);
  }
  Json rule = J(R"({"event": "purchase"})");
  EXPECT_EQ(Unwrap(segments().Estimate(rule)), static_cast<int64_t>(expected.size()));
  const std::string id =
      Unwrap(segments().Create(Json::Object().Set("name", "buyers").Set("rule", rule))).Find("id")->as_string();
  std::set<std::string> seen;
  std::string cursor;
  int pages = 0;
  do {
    Page page = Unwrap(segments().Members(id, 40, cursor));
    for (const Json& p : page.items) EXPECT_TRUE(seen.insert(p.Find("id")->as_string()).second) << "twice";
    cursor = page.next_cursor;
    ASSERT_LT(++pages, 10);
  } while (!cursor.empty());
  EXPECT_EQ(pages, 3);
  EXPECT_EQ(seen, expected);
  EXPECT_TRUE(segments().Members(id, 10, "no-such-profile").status().IsInvalidArgument());
  // Estimates change nothing.
  EXPECT_EQ(Unwrap(segments().List()).size(), 1u);
}

TEST_F(EngineSegmentsTest, DefinitionsAreValidated) {
  auto bad = segments().Create(J(R"({"name": "x", "rule": {"conditions": [{"field": "a", "operator": "~"}]}})"));
  ASSERT_TRUE(bad.status().IsInvalidArgument());
  EXPECT_EQ(bad.status().field().rfind("rule.conditions[0]", 0), 0u) << bad.status().field();
  EXPECT_EQ(segments().Create(J(R"({"rule": {}})")).status().field(), "name");
  EXPECT_EQ(segments().Create(J(R"({"name": "x"})")).status().field(), "rule");
  EXPECT_EQ(segments().Create(J(R"({"name": "x", "rule": {}, "colour": 1})")).status().field(), "colour");
  EXPECT_TRUE(segments().Create(J(R"({"name": "x", "rule": {"segment": "seg_none"}})")).status().IsInvalidArgument());
  // Segments naming segments: allowed, but never in a cycle, and a named one cannot be deleted.
  const std::string base =
      Unwrap(segments().Create(J(R"({"name": "base", "rule": {"event": "purchase"}})"))).Find("id")->as_string();
  const std::string top = Unwrap(segments().Create(J(R"({"name": "top", "rule": {"segment": ")" + base + R"("}})")))
                              .Find("id")
                              ->as_string();
  Track("z", "purchase", 1);
  EXPECT_EQ(SizeOf(top), 1);
  EXPECT_TRUE(segments()
                  .Update(base, J(R"({"name": "base", "rule": {"segment": ")" + top + R"("}})"))
                  .status()
                  .IsInvalidArgument());
  EXPECT_TRUE(segments().Delete(base).IsFailedPrecondition());
  ASSERT_TRUE(segments().Delete(top).ok());
  ASSERT_TRUE(segments().Delete(base).ok());
  EXPECT_TRUE(segments().Get(base).status().IsNotFound());
  EXPECT_TRUE(segments().Delete(base).IsNotFound());
}

}  // namespace
}  // namespace cdp
