// Copyright 2026 The libcdp Authors.
//
// Analytics (issue 6) on small hand-checked data: funnel order, window, strictness and the deepest entry; cohort
// periods; each attribution model's credits. The same semantics are checked against SQL on generated data in
// bindings/python/tests/test_analytics.py.

#include <gtest/gtest.h>

#include <string>

#include "cdp/cdp.h"
#include "test_util.h"

namespace cdp {
namespace {

using testing::J;
using testing::Unwrap;

class AnalyticsTest : public testing::EngineTest {
 protected:
  // An event of customer `who` at `when` (ISO), with extra members.
  void Track(const std::string& who, const std::string& type, const std::string& when, const std::string& extra = "") {
    Unwrap(events().Track(J(R"({"customerId": ")" + who + R"(", "type": ")" + type + R"(", "timestamp": ")" + when +
                            "\"" + extra + "}")));
  }
  Analytics& analytics() { return engine_->analytics(); }
};

TEST_F(AnalyticsTest, FunnelCountsEachProfileOnceAtItsDeepestStep) {
  // a: view, cart, purchase in order, within a day.
  Track("a", "product_view", "2026-03-02T10:00:00Z");
  Track("a", "add_to_cart", "2026-03-02T10:05:00Z");
  Track("a", "purchase", "2026-03-02T10:20:00Z", R"(, "properties": {"revenue": 10})");
  // b: cart before view (out of order), then a view and a cart 2 days later than the first view: the second entry
  // reaches step 2.
  Track("b", "add_to_cart", "2026-03-02T09:00:00Z");
  Track("b", "product_view", "2026-03-02T09:30:00Z");
  Track("b", "product_view", "2026-03-05T09:00:00Z");
  Track("b", "add_to_cart", "2026-03-05T09:10:00Z");
  // c: view then purchase outside the 1-day window.
  Track("c", "product_view", "2026-03-02T08:00:00Z");
  Track("c", "add_to_cart", "2026-03-02T08:30:00Z");
  Track("c", "purchase", "2026-03-04T08:00:00Z");
  // d: enters before `from`: not counted.
  Track("d", "product_view", "2026-02-01T08:00:00Z");
  Track("d", "add_to_cart", "2026-02-01T08:01:00Z");

  Json f = Unwrap(analytics().Funnel(J(R"({"steps": [{"event": "product_view"}, {"event": "add_to_cart"},
      {"event": "purchase"}], "window": "1d", "from": "2026-03-01T00:00:00Z", "to": "2026-03-31T00:00:00Z"})")));
  const auto& steps = f.Find("steps")->items();
  ASSERT_EQ(steps.size(), 3u) << f.Dump();
  EXPECT_EQ(steps[0].Find("profiles")->as_int(), 3);  // a, b, c
  EXPECT_EQ(steps[1].Find("profiles")->as_int(), 3);
  EXPECT_EQ(steps[2].Find("profiles")->as_int(), 1);  // a
  EXPECT_DOUBLE_EQ(steps[2].Find("conversionFromPrevious")->as_number(), 1.0 / 3);
  EXPECT_DOUBLE_EQ(steps[2].Find("conversionFromFirst")->as_number(), 1.0 / 3);
  // Seconds from view to cart: a 300, b 600 (its second entry), c 1800: median 600.
  EXPECT_DOUBLE_EQ(steps[1].Find("medianSecondsFromPrevious")->as_number(), 600);
  EXPECT_DOUBLE_EQ(steps[2].Find("medianSecondsFromPrevious")->as_number(), 900);
  EXPECT_TRUE(steps[0].Find("medianSecondsFromPrevious")->is_null());

  // A where-condition on a step, and a breakdown by an attribute of the profile.
  Json g = Unwrap(analytics().Funnel(J(R"({"steps": [{"event": "product_view"},
      {"event": "purchase", "where": [{"field": "properties.revenue", "operator": ">", "value": 20}]}],
      "window": "7d", "breakdown": "attributes.country"})")));
  EXPECT_EQ(g.Find("steps")->items()[0].Find("profiles")->as_int(), 4);
  EXPECT_EQ(g.Find("steps")->items()[1].Find("profiles")->as_int(), 0);
  ASSERT_EQ(g.Find("breakdown")->size(), 1u) << g.Dump();
  EXPECT_TRUE(g.Find("breakdown")->items()[0].Find("value")->is_null());

  EXPECT_EQ(analytics().Funnel(J(R"({"steps": [{"event": "purchase"}]})")).status().field(), "steps");
  EXPECT_EQ(analytics()
                .Funnel(J(R"({"steps": [{"event": "purchase"}, {"event": "purchase", "where": [{"field":
      "properties.x", "operator": "~", "value": 1}]}]})"))
                .status()
                .field()
                .rfind("steps[1].where", 0),
            0u);
  EXPECT_EQ(analytics().Funnel(J(R"({"steps": [{"event": "a"}, {"event": "b"}], "window": "soon"})")).status().field(),
            "window");
  EXPECT_EQ(analytics().Funnel(J(R"({"steps": [{"event": "a"}, {"event": "b"}], "colour": 1})")).status().field(),
            "colour");
}

TEST_F(AnalyticsTest, CohortsByWeekCountReturnsPerPeriod) {
  // Week of Monday 2026-03-02: a and b start; week of 2026-03-09: c starts.
  Track("a", "page_view", "2026-03-02T10:00:00Z");
  Track("a", "purchase", "2026-03-10T10:00:00Z");   // week 1
  Track("a", "purchase", "2026-03-23T10:00:00Z");   // week 3
  Track("b", "page_view", "2026-03-08T23:59:00Z");  // Sunday: still week 0
  Track("b", "purchase", "2026-03-08T23:59:30Z");   // week 0
  Track("c", "page_view", "2026-03-09T00:00:00Z");
  Json c = Unwrap(analytics().Cohorts(J(R"({"returnEvent": "purchase", "period": "week", "periods": 4})")));
  const auto& cohorts = c.Find("cohorts")->items();
  ASSERT_EQ(cohorts.size(), 2u) << c.Dump();
  EXPECT_EQ(cohorts[0].Find("cohort")->as_string(), "2026-03-02T00:00:00.000Z");
  EXPECT_EQ(cohorts[0].Find("size")->as_int(), 2);
  EXPECT_EQ(cohorts[0].Find("counts")->Dump(), "[1,1,0,1]");
  EXPECT_EQ(cohorts[0].Find("percentages")->Dump(), "[50,50,0,50]");
  EXPECT_EQ(cohorts[1].Find("cohort")->as_string(), "2026-03-09T00:00:00.000Z");
  EXPECT_EQ(cohorts[1].Find("counts")->Dump(), "[0,0,0,0]");

  Json m = Unwrap(analytics().Cohorts(J(R"({"period": "month", "periods": 2})")));
  ASSERT_EQ(m.Find("cohorts")->size(), 1u);
  EXPECT_EQ(m.Find("cohorts")->items()[0].Find("cohort")->as_string(), "2026-03-01T00:00:00.000Z");
  EXPECT_EQ(m.Find("cohorts")->items()[0].Find("counts")->Dump(), "[3,0]");
  EXPECT_EQ(analytics().Cohorts(J(R"({"period": "fortnight"})")).status().field(), "period");
  EXPECT_EQ(analytics().Cohorts(J(R"({"periods": 0})")).status().field(), "periods");
}

TEST_F(AnalyticsTest, AttributionModelsCreditTheSessionsBeforeEachConversion) {
  // Three sessions (more than 30 minutes apart), then a purchase of 100 in the third.
  Track("a", "page_view", "2026-03-01T10:00:00Z", R"(, "properties": {"utm_source": "google", "utm_medium": "cpc"})");
  Track("a", "page_view", "2026-03-03T10:00:00Z", R"(, "properties": {"utm_source": "news", "utm_medium": "email"})");
  Track("a", "page_view", "2026-03-05T10:00:00Z");
  Track("a", "purchase", "2026-03-05T10:10:00Z", R"(, "properties": {"revenue": 100})");
  // b: one session long before its purchase's lookback, then a direct purchase.
  Track("b", "page_view", "2026-01-01T10:00:00Z", R"(, "properties": {"utm_source": "google", "utm_medium": "cpc"})");
  Track("b", "purchase", "2026-03-05T12:00:00Z", R"(, "properties": {"total": 50})");

  auto credits = [&](const std::string& model) {
    Json a = Unwrap(analytics().Attribution(
        J(R"({"conversion": "purchase", "lookback": "30d", "halfLife": "2d", "model": ")" + model + "\"}")));
    EXPECT_EQ(a.Find("conversions")->as_int(), 2);
    EXPECT_DOUBLE_EQ(a.Find("revenue")->as_number(), 150);
    std::map<std::string, std::pair<double, double>> out;
    for (const Json& c : a.Find("channels")->items()) {
      out[c.Find("source")->as_string() + "/" + c.Find("medium")->as_string()] = {c.Find("conversions")->as_number(),
                                                                                  c.Find("revenue")->as_number()};
    }
    return out;
  };
  auto first = credits("first_touch");
  EXPECT_DOUBLE_EQ(first["google/cpc"].first, 1);
  EXPECT_DOUBLE_EQ(first["(direct)/(none)"].first, 1);  // b's purchase session
  EXPECT_DOUBLE_EQ(first["(direct)/(none)"].second, 50);
  auto last = credits("last_touch");
  EXPECT_DOUBLE_EQ(last["(direct)/(none)"].first, 2);
  EXPECT_EQ(last.count("google/cpc"), 0u);
  auto linear = credits("linear");
  EXPECT_DOUBLE_EQ(linear["google/cpc"].first, 1.0 / 3);
  EXPECT_DOUBLE_EQ(linear["news/email"].second, 100.0 / 3);
  auto position = credits("position_based");
  EXPECT_DOUBLE_EQ(position["google/cpc"].first, 0.4);
  EXPECT_DOUBLE_EQ(position["news/email"].first, 0.2);
  EXPECT_DOUBLE_EQ(position["(direct)/(none)"].first, 1.4);
  auto decay = credits("time_decay");  // ages 4d, 2d, 10 min with a half-life of 2 days
  const double w1 = std::exp2(-(4 * 86400.0 + 600) / (2 * 86400.0)), w2 = std::exp2(-(2 * 86400.0 + 600) / 172800.0),
               w3 = std::exp2(-600 / 172800.0);
  EXPECT_NEAR(decay["google/cpc"].first, w1 / (w1 + w2 + w3), 1e-12);
  EXPECT_NEAR(decay["news/email"].first, w2 / (w1 + w2 + w3), 1e-12);
  EXPECT_NEAR(decay["(direct)/(none)"].first, w3 / (w1 + w2 + w3) + 1, 1e-12);
  // data_driven: paths google > news > direct (converted), direct (converted); b's old google session is outside
  // every window. Removing google or news breaks one of two conversions (effect 1/2 each), removing direct both (1).
  auto markov = credits("data_driven");
  EXPECT_NEAR(markov["google/cpc"].first, 2 * 0.5 / 2.0, 1e-9);
  EXPECT_NEAR(markov["news/email"].first, 0.5, 1e-9);
  EXPECT_NEAR(markov["(direct)/(none)"].first, 1.0, 1e-9);

  EXPECT_EQ(analytics().Attribution(J(R"({"model": "last_touch"})")).status().field(), "conversion");
  EXPECT_EQ(analytics().Attribution(J(R"({"conversion": "purchase", "model": "magic"})")).status().field(), "model");
}

TEST_F(AnalyticsTest, APrincipalMustReadTheFieldsARequestTests) {
  Track("a", "purchase", "2026-03-05T10:10:00Z", R"(, "properties": {"revenue": 100})");
  Unwrap(engine_->governance().SetPolicy(J(R"({"classification": {"events.properties.revenue": "sensitive"},
      "roles": {"analyst": {"read": ["public", "internal", "pii"]}}, "principals": {"viewer": {"roles": ["analyst"]}}})")));
  ScopedPrincipal viewer("viewer");
  Json ok = Unwrap(analytics().Funnel(J(R"({"steps": [{"event": "purchase"}, {"event": "purchase"}]})")));
  EXPECT_EQ(ok.Find("steps")->items()[0].Find("profiles")->as_int(), 1);
  EXPECT_EQ(analytics()
                .Funnel(J(R"({"steps": [{"event": "purchase", "where": [{"field": "properties.revenue", "operator":
                    ">", "value": 1}]}, {"event": "purchase"}]})"))
                .status()
                .code(),
            StatusCode::kPermissionDenied);
  ScopedPrincipal nobody("nobody");
  EXPECT_EQ(analytics().Cohorts(J("{}")).status().code(), StatusCode::kPermissionDenied);
}

}  // namespace
}  // namespace cdp
