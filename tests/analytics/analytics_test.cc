// Copyright 2026 The libcdp Authors.
//
// Analytics (issue 6) on small hand-checked data: funnel order, window, strictness and the deepest entry; cohort
// periods; each attribution model's credits. The same semantics are checked against SQL on generated data in
// bindings/python/tests/test_analytics.py.

#include <gtest/gtest.h>

#include <map>
#include <set>
#include <string>

#include "cdp/cdp.h"
#include "fmt/format.h"
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

// A profile of many events (its entries use the per-step next-match arrays) answers as a short one (scanned).
TEST_F(AnalyticsTest, FunnelOfALongProfileEqualsThatOfAShortOne) {
  auto at = [](int minute) {
    return "2026-03-02T10:" + std::string(minute < 10 ? "0" : "") + std::to_string(minute) + ":00Z";
  };
  for (int m = 0; m < 40; ++m) Track("long", "product_view", at(m));  // 40 entries
  for (int m : {5, 39}) Track("short", "product_view", at(m));
  for (const char* who : {"long", "short"}) {
    Track(who, "add_to_cart", at(39));  // at the same time as the last view: not later than it
    Track(who, "purchase", at(50));
  }
  Json f = Unwrap(analytics().Funnel(J(R"({"steps": [{"event": "product_view"}, {"event": "add_to_cart"},
      {"event": "purchase"}], "window": "45m"})")));
  const auto& steps = f.Find("steps")->items();
  // Entry at minute 0 reaches the cart (39) but not the purchase (50 > 45); the entry at 5 reaches all three.
  EXPECT_EQ(steps[2].Find("profiles")->as_int(), 2) << f.Dump();
  EXPECT_DOUBLE_EQ(steps[1].Find("medianSecondsFromPrevious")->as_number(), 34 * 60);
  EXPECT_DOUBLE_EQ(steps[2].Find("medianSecondsFromPrevious")->as_number(), 11 * 60);
  Json strict = Unwrap(analytics().Funnel(J(R"({"steps": [{"event": "product_view"}, {"event": "add_to_cart"}],
      "from": "2026-03-02T10:39:00Z"})")));
  EXPECT_EQ(strict.Find("steps")->items()[1].Find("profiles")->as_int(), 0) << strict.Dump();
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
  EXPECT_DOUBLE_EQ(linear["news/email"].second, 33.333333);  // money to the micro-unit
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

TEST_F(AnalyticsTest, JourneysListThePathsBeforeEachConversion) {
  Track("a", "page_view", "2026-03-02T10:00:00Z", R"(, "properties": {"path": "/home"})");
  Track("a", "page_view", "2026-03-02T10:01:00Z", R"(, "properties": {"path": "/home"})");  // a repeat
  Track("a", "product_view", "2026-03-02T10:02:00Z");
  Track("a", "purchase", "2026-03-02T10:03:00Z");
  Track("b", "page_view", "2026-03-02T11:00:00Z", R"(, "properties": {"path": "/sale"})");
  Track("b", "product_view", "2026-03-02T11:02:00Z");
  Track("b", "purchase", "2026-03-02T11:03:00Z");
  Track("c", "product_view", "2026-01-01T11:02:00Z");  // outside the lookback
  Track("c", "purchase", "2026-03-02T11:03:00Z");
  Json j = Unwrap(analytics().Journeys(J(R"({"conversion": "purchase", "lookback": "7d"})")));
  EXPECT_EQ(j.Find("conversions")->as_int(), 3);
  const auto& paths = j.Find("paths")->items();
  ASSERT_EQ(paths.size(), 2u) << j.Dump();
  EXPECT_EQ(paths[0].Find("path")->Dump(), R"(["page_view","product_view","purchase"])");
  EXPECT_EQ(paths[0].Find("conversions")->as_int(), 2);
  EXPECT_DOUBLE_EQ(paths[0].Find("share")->as_number(), 2.0 / 3);
  EXPECT_EQ(paths[1].Find("path")->Dump(), R"(["purchase"])");
  // By page, without collapsing: a's two home views are two steps; at most 2 steps before the conversion.
  Json p = Unwrap(analytics().Journeys(
      J(R"({"conversion": "purchase", "by": "page", "collapseRepeats": false, "steps": 2, "lookback": "7d"})")));
  std::set<std::string> got;
  for (const Json& path : p.Find("paths")->items()) got.insert(path.Find("path")->Dump());
  EXPECT_EQ(got, (std::set<std::string>{R"(["/home","product_view","purchase"])",
                                        R"(["/sale","product_view","purchase"])", R"(["purchase"])"}));
  // The Sankey diagram: the first column holds page_view (2) and purchase (1); links carry the path counts.
  const Json& sankey = *j.Find("sankey");
  std::map<std::string, int64_t> nodes, links;
  for (const Json& n : sankey.Find("nodes")->items()) nodes[n.Find("id")->as_string()] = n.Find("count")->as_int();
  for (const Json& l : sankey.Find("links")->items()) {
    links[l.Find("source")->as_string() + ">" + l.Find("target")->as_string()] = l.Find("value")->as_int();
  }
  EXPECT_EQ(nodes, (std::map<std::string, int64_t>{
                       {"1:page_view", 2}, {"1:purchase", 1}, {"2:product_view", 2}, {"3:purchase", 2}}));
  EXPECT_EQ(links,
            (std::map<std::string, int64_t>{{"1:page_view>2:product_view", 2}, {"2:product_view>3:purchase", 2}}));
  EXPECT_EQ(analytics().Journeys(J(R"({"conversion": "purchase", "steps": 0})")).status().field(), "steps");
  EXPECT_EQ(analytics().Journeys(J(R"({"conversion": "purchase", "by": "colour"})")).status().field(), "by");
}

TEST_F(AnalyticsTest, TrendsFlagACountFarFromTheSameWeekdaysBefore) {
  // Page views on the four Mondays before 2026-03-30: 2, 3, 2, 3; then 10 on Monday 2026-03-30 and 0 on Tuesday.
  const char* mondays[] = {"2026-03-02", "2026-03-09", "2026-03-16", "2026-03-23"};
  for (int w = 0; w < 4; ++w) {
    for (int i = 0; i < 2 + w % 2; ++i)
      Track("u" + std::to_string(i), "page_view", std::string(mondays[w]) + "T1" + std::to_string(i) + ":00:00Z");
  }
  for (int i = 0; i < 10; ++i)
    Track("v" + std::to_string(i), "page_view", "2026-03-30T12:00:0" + std::to_string(i) + "Z");
  Track("x", "purchase", "2026-03-30T09:00:00Z", R"(, "source": "web")");
  Json t = Unwrap(analytics().Trends(J(R"({"from": "2026-03-30T00:00:00Z", "to": "2026-03-31T23:59:59Z",
      "events": ["page_view"]})")));
  const auto& series = t.Find("series")->items();
  ASSERT_EQ(series.size(), 1u) << t.Dump();
  EXPECT_EQ(series[0].Find("event")->as_string(), "page_view");
  EXPECT_EQ(series[0].Find("total")->as_int(), 10);
  const auto& points = series[0].Find("points")->items();
  ASSERT_EQ(points.size(), 2u);
  EXPECT_EQ(points[0].Find("at")->as_string(), "2026-03-30T00:00:00.000Z");
  EXPECT_EQ(points[0].Find("count")->as_int(), 10);
  EXPECT_DOUBLE_EQ(points[0].Find("expected")->as_number(), 2.5);
  EXPECT_DOUBLE_EQ(points[0].Find("z")->as_number(), 7.5 / (1.4826 * 0.5));
  EXPECT_TRUE(points[0].Find("anomaly")->as_bool());
  EXPECT_EQ(points[1].Find("count")->as_int(), 0);
  EXPECT_DOUBLE_EQ(points[1].Find("z")->as_number(), 0);
  EXPECT_FALSE(points[1].Find("anomaly")->as_bool());
  EXPECT_EQ(series[0].Find("anomalies")->as_int(), 1);
  // By a property: a series per value.
  Json by = Unwrap(analytics().Trends(J(R"({"from": "2026-03-30T00:00:00Z", "to": "2026-03-30T23:00:00Z",
      "interval": "hour", "events": ["purchase"], "property": "source"})")));
  ASSERT_EQ(by.Find("series")->size(), 1u) << by.Dump();
  EXPECT_EQ(by.Find("series")->items()[0].Find("value")->as_string(), "web");
  EXPECT_EQ(by.Find("series")->items()[0].Find("points")->size(), 24u);
  EXPECT_EQ(analytics().Trends(J(R"({"from": "2026-03-30T00:00:00Z"})")).status().field(), "from");
  EXPECT_EQ(analytics().Trends(J(R"({"from": "2026-03-30", "to": "2026-04-30", "interval": "week"})")).status().field(),
            "interval");
}

// "from" and "to" select whole intervals: a "to" that is a date counts all of that day (not only its first
// instant, which left the last day at 0 and flagged it), and the answer says where the intervals end.
TEST_F(AnalyticsTest, TrendsCountWholeIntervalsUpToTheOneToFallsIn) {
  for (int day = 1; day <= 30; ++day) Track("d", "purchase", fmt::format("2026-11-{:02}T12:00:00Z", day));
  Json t = Unwrap(analytics().Trends(J(R"({"from": "2026-11-01", "to": "2026-11-30", "events": ["purchase"],
      "weeks": 2})")));
  EXPECT_EQ(t.Find("from")->as_string(), "2026-11-01T00:00:00.000Z");
  EXPECT_EQ(t.Find("to")->as_string(), "2026-11-30T23:59:59.999Z");
  const Json& series = t.Find("series")->items().at(0);
  EXPECT_EQ(series.Find("total")->as_int(), 30) << t.Dump();
  const auto& points = series.Find("points")->items();
  ASSERT_EQ(points.size(), 30u);
  EXPECT_EQ(points.back().Find("at")->as_string(), "2026-11-30T00:00:00.000Z");
  EXPECT_EQ(points.back().Find("count")->as_int(), 1);
  EXPECT_FALSE(points.back().Find("anomaly")->as_bool());
  EXPECT_EQ(series.Find("anomalies")->as_int(), 7) << "the first week's baseline is two weeks without events";
  // One day, given as a date twice, and an hour-long interval around a "to" in its middle.
  Json one = Unwrap(analytics().Trends(J(R"({"from": "2026-11-25", "to": "2026-11-25", "events": ["purchase"]})")));
  ASSERT_EQ(one.Find("series")->items().at(0).Find("points")->size(), 1u);
  EXPECT_EQ(one.Find("series")->items().at(0).Find("total")->as_int(), 1);
  Json hour = Unwrap(analytics().Trends(J(R"({"from": "2026-11-25T12:00:00Z", "to": "2026-11-25T12:00:00Z",
      "interval": "hour", "events": ["purchase"]})")));
  EXPECT_EQ(hour.Find("to")->as_string(), "2026-11-25T12:59:59.999Z");
  EXPECT_EQ(hour.Find("series")->items().at(0).Find("total")->as_int(), 1);
}

// Money is summed as it is kept, to the micro-unit: three purchases of 0.1 are 0.3, not 0.30000000000000004 (a
// newcomer saw the overview answer 51035.48000000008).
TEST_F(AnalyticsTest, RevenueSumsAreToTheMicroUnit) {
  for (const char* t : {"2026-03-28T10:00:00Z", "2026-03-29T10:00:00Z", "2026-03-30T10:00:00Z"}) {
    Track("m", "purchase", t, R"(, "properties": {"revenue": 0.1, "utm_source": "news"})");
  }
  Json o = Unwrap(analytics().Overview(J(R"({"now": "2026-03-31T00:00:00Z"})")));
  EXPECT_EQ(o.FindPath("revenue.total")->Dump(), "0.3") << o.Dump();
  EXPECT_EQ(o.FindPath("revenue.30d")->Dump(), "0.3");
  Json a = Unwrap(analytics().Attribution(J(R"({"conversion": "purchase", "model": "linear"})")));
  EXPECT_EQ(a.Find("revenue")->Dump(), "0.3") << a.Dump();
}

TEST_F(AnalyticsTest, OverviewAndDataQualityCountWhatWasWritten) {
  Track("a", "page_view", "2026-03-30T10:00:00Z", R"(, "email": "a@example.com", "source": "web")");
  Track("a", "purchase", "2026-03-30T11:00:00Z", R"(, "properties": {"revenue": 10}, "source": "web")");
  Track("a", "purchase", "2026-03-30T12:00:00Z");  // no value, no source
  Track("b", "purchase", "2026-03-20T11:00:00Z", R"(, "properties": {"total": 5}, "source": "web")");
  for (int i = 0; i < 2; ++i) {  // the same page view twice: a duplicate
    Unwrap(events().Track(J(R"({"anonymousId": "x1", "type": "page_view", "timestamp": "2026-03-30T09:00:00Z",
        "source": "web", "properties": {"path": "/"}})")));
  }
  Json o = Unwrap(analytics().Overview(J(R"({"now": "2026-03-31T00:00:00Z"})")));
  EXPECT_EQ(o.FindPath("profiles.total")->as_int(), 3) << o.Dump();
  EXPECT_EQ(o.FindPath("profiles.identified")->as_int(), 2);
  EXPECT_EQ(o.FindPath("profiles.anonymous")->as_int(), 1);
  EXPECT_DOUBLE_EQ(o.FindPath("profiles.multiIdentifierRate")->as_number(), 0.5);  // a: customerId and email
  EXPECT_EQ(o.FindPath("eventsByType.24h.page_view")->as_int(), 3);
  EXPECT_EQ(o.FindPath("eventsByType.24h.purchase")->as_int(), 2);
  EXPECT_EQ(o.FindPath("eventsByType.30d.purchase")->as_int(), 3);
  EXPECT_EQ(o.FindPath("activeProfiles.daily")->as_int(), 2);
  EXPECT_EQ(o.FindPath("activeProfiles.monthly")->as_int(), 3);
  EXPECT_DOUBLE_EQ(o.FindPath("revenue.30d")->as_number(), 15);
  EXPECT_EQ(o.FindPath("orders.30d")->as_int(), 3);
  EXPECT_GE(o.FindPath("ingestionLatency.calls")->as_int(), 6);
  EXPECT_GT(o.FindPath("ingestionLatency.p99Us")->as_int(), 0);
  EXPECT_TRUE(o.Find("segments")->is_array());

  Json q = Unwrap(analytics().DataQuality(J(R"({"now": "2026-03-31T00:00:00Z"})")));
  std::map<std::string, std::pair<int64_t, int64_t>> checks;
  for (const Json& c : q.Find("checks")->items()) {
    checks[c.Find("name")->as_string()] = {c.Find("passed")->as_int(), c.Find("total")->as_int()};
  }
  EXPECT_EQ(checks["purchaseValue"], std::make_pair(int64_t{2}, int64_t{3})) << q.Dump();
  EXPECT_EQ(checks["eventSource"], std::make_pair(int64_t{5}, int64_t{6}));
  EXPECT_EQ(checks["duplicates"], std::make_pair(int64_t{5}, int64_t{6}));
  EXPECT_EQ(checks["validIdentifiers"], std::make_pair(int64_t{3}, int64_t{3}));
  double mean = 0;
  for (const Json& c : q.Find("checks")->items()) mean += c.Find("score")->as_number();
  EXPECT_DOUBLE_EQ(q.Find("score")->as_number(), 100 * mean / q.Find("checks")->size());
  EXPECT_LT(q.Find("score")->as_number(), 100);
  EXPECT_EQ(analytics().Overview(J(R"({"when": 1})")).status().field(), "when");
}

// Fixes a review found: requests leave the index as it was; bad ranges and durations are refused; a cohort's own
// period counts return events before the cohort event; duplicates need not be adjacent; protected fields stay so.
TEST_F(AnalyticsTest, RequestsAreReadOnlyAndCheckedAndEdgesCount) {
  Track("a", "page_view", "2026-03-02T10:00:00Z");  // Monday
  Track("a", "purchase", "2026-03-03T10:00:00Z");   // Tuesday: the cohort event
  Track("a", "add_to_cart", "2026-03-03T10:00:00Z");
  Track("a", "purchase", "2026-03-03T10:00:00Z");  // the same type and time, another event between: a duplicate
  Unwrap(analytics().Funnel(J(R"({"steps": [{"event": "ghost", "where": [{"field": "properties.x", "operator": "=",
      "value": "never-seen-value"}]}, {"event": "purchase"}]})")));
  Json t = Unwrap(analytics().Trends(J(R"({"from": "2026-03-02", "to": "2026-03-04"})")));
  for (const Json& series : t.Find("series")->items()) EXPECT_NE(series.Find("event")->as_string(), "ghost");
  // Every series names its event (a newcomer found a series named "" with no events), and "*" is every event.
  std::set<std::string> names;
  for (const Json& series : t.Find("series")->items()) names.insert(series.Find("event")->as_string());
  EXPECT_FALSE(names.contains("")) << t.Dump();
  EXPECT_TRUE(names.contains("purchase") && names.contains("add_to_cart")) << t.Dump();
  Json all = Unwrap(analytics().Trends(J(R"({"from": "2026-03-02", "to": "2026-03-04", "events": ["*"]})")));
  EXPECT_EQ(all.Find("series")->Dump(), t.Find("series")->Dump());

  Json c = Unwrap(analytics().Cohorts(J(R"({"cohortEvent": "purchase", "returnEvent": "page_view", "periods": 1})")));
  EXPECT_EQ(c.Find("cohorts")->items()[0].Find("counts")->Dump(), "[1]") << c.Dump();

  Json q = Unwrap(analytics().DataQuality(J(R"({"now": "2026-03-04T00:00:00Z"})")));
  for (const Json& check : q.Find("checks")->items()) {
    if (check.Find("name")->as_string() == "duplicates") {
      EXPECT_EQ(check.Find("total")->as_int() - check.Find("passed")->as_int(), 1) << check.Dump();
    }
  }

  EXPECT_EQ(analytics()
                .Attribution(J(R"({"conversion": "purchase", "model": "time_decay", "halfLife": "0s"})"))
                .status()
                .field(),
            "halfLife");
  EXPECT_EQ(analytics()
                .Funnel(J(R"({"steps": [{"event": "a"}, {"event": "b"}], "from": "2026-03-05",
      "to": "2026-03-01"})"))
                .status()
                .field(),
            "to");
  // Overview and data quality read revenue: a principal who may not read it is refused.
  Unwrap(engine_->governance().SetPolicy(J(R"({"classification": {"events.properties.revenue": "sensitive"},
      "roles": {"analyst": {"read": ["public", "internal", "pii"]}}, "principals": {"viewer": {"roles": ["analyst"]}}})")));
  ScopedPrincipal viewer("viewer");
  EXPECT_EQ(analytics().Overview(J("{}")).status().code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(analytics().DataQuality(J("{}")).status().code(), StatusCode::kPermissionDenied);
}

}  // namespace
}  // namespace cdp
