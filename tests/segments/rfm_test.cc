// Copyright 2026 The libcdp Authors.
//
// RFM: quintile scores with ties, the named-segment table, inputs collected from the index, and the CDNOW
// purchases sample (tests/data/cdnow) checked against the published summary of the same data.

#include "cdp/rfm.h"

#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "cdp/query.h"
#include "segments/index.h"
#include "segments/rfm.h"
#include "test_util.h"

namespace cdp::segments {
namespace {

using ::cdp::testing::J;

constexpr int64_t kSec = 1000000;
constexpr int64_t kDay = 86400 * kSec;

RfmInput In(int64_t last_day, uint64_t f, double m) { return {0, last_day * kDay, f, m}; }

TEST(RfmTest, QuintilesByHandWithTies) {
  // Ten customers. Frequencies 1,1,1,1,2,2,3,4,5,10: below = 0,0,0,0,4,4,6,7,8,9 -> 1 + floor(5 * below / 10).
  std::vector<RfmInput> in = {In(1, 1, 10), In(2, 1, 20), In(3, 1, 30), In(4, 1, 40), In(5, 2, 50),
                              In(6, 2, 60), In(7, 3, 70), In(8, 4, 80), In(9, 5, 90), In(10, 10, 90)};
  std::vector<RfmScore> s = ScoreRfm(in);
  ASSERT_EQ(s.size(), 10u);
  std::vector<int> f, r, m;
  for (const RfmScore& x : s) {
    f.push_back(x.f);
    r.push_back(x.r);
    m.push_back(x.m);
  }
  EXPECT_EQ(f, (std::vector<int>{1, 1, 1, 1, 3, 3, 4, 4, 5, 5}));
  // Distinct last-purchase days 1..10: below = 0..9 -> 1,1,2,2,3,3,4,4,5,5.
  EXPECT_EQ(r, (std::vector<int>{1, 1, 2, 2, 3, 3, 4, 4, 5, 5}));
  // Monetary: the two 90s tie (below 8 -> 5).
  EXPECT_EQ(m, (std::vector<int>{1, 1, 2, 2, 3, 3, 4, 4, 5, 5}));
  EXPECT_EQ(s[9].score(), 555);
  EXPECT_EQ(s[9].segment, "Champions");
  EXPECT_EQ(s[0].segment, "Lost");            // 111
  EXPECT_EQ(s[4].segment, "Need Attention");  // R3, F3, M3 -> FM 3
  // The input order does not change anyone's score.
  std::vector<RfmInput> reversed(in.rbegin(), in.rend());
  std::vector<RfmScore> s2 = ScoreRfm(reversed);
  for (size_t i = 0; i < in.size(); ++i) EXPECT_EQ(s2[in.size() - 1 - i].score(), s[i].score());
  // One customer alone is better than nobody: 1,1,1.
  EXPECT_EQ(ScoreRfm({In(1, 1, 1)})[0].score(), 111);
  EXPECT_EQ(s[0].ToJson().Dump(), R"({"r":1,"f":1,"m":1,"score":111,"segment":"Lost"})");
}

TEST(RfmTest, NamedSegmentTable) {
  EXPECT_EQ(RfmSegmentName(5, 5, 5), "Champions");
  EXPECT_EQ(RfmSegmentName(4, 4, 3), "Champions");  // FM = ceil(7 / 2) = 4
  EXPECT_EQ(RfmSegmentName(5, 1, 1), "New Customers");
  EXPECT_EQ(RfmSegmentName(5, 2, 3), "Potential Loyalists");
  EXPECT_EQ(RfmSegmentName(4, 1, 1), "Promising");
  EXPECT_EQ(RfmSegmentName(4, 3, 3), "Loyal Customers");
  EXPECT_EQ(RfmSegmentName(3, 5, 4), "Loyal Customers");
  EXPECT_EQ(RfmSegmentName(3, 2, 2), "Need Attention");
  EXPECT_EQ(RfmSegmentName(3, 1, 1), "About to Sleep");
  EXPECT_EQ(RfmSegmentName(2, 2, 2), "About to Sleep");
  EXPECT_EQ(RfmSegmentName(2, 4, 3), "At Risk");
  EXPECT_EQ(RfmSegmentName(2, 5, 5), "Cannot Lose Them");
  EXPECT_EQ(RfmSegmentName(1, 5, 4), "Cannot Lose Them");
  EXPECT_EQ(RfmSegmentName(2, 1, 1), "Hibernating");
  EXPECT_EQ(RfmSegmentName(1, 1, 2), "Hibernating");
  EXPECT_EQ(RfmSegmentName(1, 1, 1), "Lost");
  EXPECT_EQ(RfmSegmentName(9, 0, 7), "Potential Loyalists");  // clamped to 5, 1, 5: FM = (1 + 5 + 1) / 2 = 3
}

TEST(RfmTest, InputsFromTheIndexHonourTheWindow) {
  SegmentIndex index;
  const int64_t now = 1000 * kDay;
  ASSERT_TRUE(index.AddEvent(1, "purchase", "", now - 400 * kDay, J(R"({"properties": {"revenue": 99}})")).ok());
  ASSERT_TRUE(index.AddEvent(1, "purchase", "", now - 10 * kDay, J(R"({"properties": {"revenue": 0.1}})")).ok());
  ASSERT_TRUE(index.AddEvent(1, "purchase", "", now - 5 * kDay, J(R"({"properties": {"revenue": 0.2}})")).ok());
  ASSERT_TRUE(index.AddEvent(2, "purchase", "", now - 500 * kDay, J(R"({"properties": {"revenue": 5}})")).ok());
  ASSERT_TRUE(index.AddEvent(3, "purchase", "", now + kDay, J(R"({"properties": {"revenue": 5}})")).ok());
  ASSERT_TRUE(index.AddEvent(4, "custom", "order", now - kDay, J(R"({"properties": {"total": 7}})")).ok());
  ASSERT_TRUE(index.AddEvent(4, "page_view", "", now - kDay, J("{}")).ok());
  auto in = CollectRfmInputs(index, RfmOptions{}, now);
  ASSERT_EQ(in.size(), 1u);  // 2 is outside 365 days, 3 is in the future, 4 bought nothing called purchase
  EXPECT_EQ(in[0].first, 1u);
  EXPECT_EQ(in[0].second.frequency, 2u);
  EXPECT_EQ(in[0].second.monetary, 0.3);
  EXPECT_EQ(in[0].second.last_purchase_us, now - 5 * kDay);
  EXPECT_EQ(in[0].second.first_purchase_us, now - 10 * kDay);
  auto all = CollectRfmInputs(index, RfmOptions{.window_us = 0}, now);
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].second.monetary, 99.3);
  EXPECT_EQ(all[1].first, 2u);
  auto orders = CollectRfmInputs(index, RfmOptions{.event = "order", .revenue_path = "properties.total"}, now);
  ASSERT_EQ(orders.size(), 1u);
  EXPECT_EQ(orders[0].first, 4u);
  EXPECT_EQ(orders[0].second.monetary, 7);
}

struct CdnowRow {
  uint32_t customer;
  int64_t day_us;
  double dollars;
};

std::vector<CdnowRow> LoadCdnow() {
  std::ifstream in(std::string(CDP_TEST_DATA_DIR) + "/cdnow/CDNOW_sample.txt");
  std::vector<CdnowRow> rows;
  std::string master, sample, date;
  int cds;
  double dollars;
  while (in >> master >> sample >> date >> cds >> dollars) {
    std::string iso = date.substr(0, 4) + "-" + date.substr(4, 2) + "-" + date.substr(6, 2);
    rows.push_back({static_cast<uint32_t>(std::stoul(sample)), *ParseTimestamp(iso), dollars});
  }
  return rows;
}

// The lifetimes library's summary of the sample (calibration period 1997-01-01 .. 1997-09-30) counts repeat
// purchase days: frequency = distinct purchase days - 1, recency = last - first purchase day in weeks, T = end of
// the period - first purchase day in weeks. The index's RFM inputs over the same period must agree.
TEST(RfmTest, CdnowSampleMatchesThePublishedSummary) {
  std::vector<CdnowRow> rows = LoadCdnow();
  ASSERT_EQ(rows.size(), 6919u);
  // One purchase event per customer and day (the summary's unit), value = the day's dollars.
  std::map<std::pair<uint32_t, int64_t>, double> days;
  for (const CdnowRow& r : rows) days[{r.customer, r.day_us}] += r.dollars;
  SegmentIndex index;
  for (const auto& [key, dollars] : days) {
    ASSERT_TRUE(index
                    .AddEvent(key.first, "purchase", "", key.second,
                              Json::Object().Set("properties", Json::Object().Set("revenue", dollars)))
                    .ok());
  }
  const int64_t end = *ParseTimestamp("1997-09-30");
  auto inputs = CollectRfmInputs(index, RfmOptions{.window_us = end - *ParseTimestamp("1997-01-01")}, end);
  ASSERT_EQ(inputs.size(), 2357u);  // every customer of the sample bought in the first quarter of 1997

  std::ifstream summary(std::string(CDP_TEST_DATA_DIR) + "/cdnow/cdnow_customers_summary.csv");
  std::string line;
  std::getline(summary, line);  // ID,frequency,recency,T
  size_t checked = 0;
  while (std::getline(summary, line)) {
    std::stringstream ss(line);
    std::string id, freq, rec, t;
    std::getline(ss, id, ',');
    std::getline(ss, freq, ',');
    std::getline(ss, rec, ',');
    std::getline(ss, t, ',');
    const RfmInput& in = inputs[std::stoul(id) - 1].second;
    ASSERT_EQ(inputs[std::stoul(id) - 1].first, std::stoul(id));
    EXPECT_EQ(static_cast<double>(in.frequency - 1), std::stod(freq)) << "customer " << id;
    double weeks = static_cast<double>(in.last_purchase_us - in.first_purchase_us) / (7.0 * kDay);
    EXPECT_NEAR(weeks, std::stod(rec), 0.006) << "customer " << id;
    EXPECT_NEAR(static_cast<double>(end - in.first_purchase_us) / (7.0 * kDay), std::stod(t), 0.006) << id;
    ++checked;
  }
  EXPECT_EQ(checked, 2357u);
}

TEST(RfmTest, CdnowSampleScores) {
  std::vector<CdnowRow> rows = LoadCdnow();
  SegmentIndex index;
  for (const CdnowRow& r : rows) {
    ASSERT_TRUE(index
                    .AddEvent(r.customer, "purchase", "", r.day_us,
                              Json::Object().Set("properties", Json::Object().Set("revenue", r.dollars)))
                    .ok());
  }
  const int64_t now = *ParseTimestamp("1998-07-01");
  auto inputs = CollectRfmInputs(index, RfmOptions{.window_us = 0}, now);
  ASSERT_EQ(inputs.size(), 2357u);
  uint64_t transactions = 0;
  for (const auto& [ord, in] : inputs) transactions += in.frequency;
  EXPECT_EQ(transactions, 6919u);
  // Customer 1 (master id 00004), by hand from the file: 4 purchases, the last on 1997-12-12, $100.50 in all.
  EXPECT_EQ(inputs[0].second.frequency, 4u);
  EXPECT_EQ(inputs[0].second.last_purchase_us, *ParseTimestamp("1997-12-12"));
  EXPECT_DOUBLE_EQ(inputs[0].second.monetary, 100.50);

  std::vector<RfmInput> plain;
  for (const auto& [ord, in] : inputs) plain.push_back(in);
  std::vector<RfmScore> scores = ScoreRfm(plain);
  // Scores follow the values: a strictly better value never scores lower; equal values score the same.
  size_t n = plain.size();
  std::map<uint64_t, std::set<int>> f_scores;
  for (size_t i = 0; i < n; ++i) f_scores[plain[i].frequency].insert(scores[i].f);
  for (const auto& [freq, set] : f_scores) EXPECT_EQ(set.size(), 1u) << "frequency " << freq;
  for (size_t i = 0; i < n; i += 7) {
    for (size_t j = 0; j < n; j += 11) {
      if (plain[i].monetary < plain[j].monetary) {
        EXPECT_LE(scores[i].m, scores[j].m);
      }
      if (plain[i].last_purchase_us < plain[j].last_purchase_us) {
        EXPECT_LE(scores[i].r, scores[j].r);
      }
    }
  }
  // Over half the customers bought once, so they all share F = 1 and F = 2 is unused (its band lies inside them).
  size_t once = 0;
  std::map<int, size_t> f_count, m_count;
  for (size_t i = 0; i < n; ++i) {
    once += plain[i].frequency == 1;
    ++f_count[scores[i].f];
    ++m_count[scores[i].m];
  }
  EXPECT_GT(once, n / 2);
  EXPECT_EQ(f_count[1], once);
  EXPECT_EQ(f_count.count(2), 0u);
  // Monetary values are nearly all distinct, so each quintile holds about a fifth.
  for (int q = 1; q <= 5; ++q) EXPECT_NEAR(static_cast<double>(m_count[q]) / n, 0.2, 0.01) << "M = " << q;
  // Customer 1: last purchase 1997-12-12 is later than most (most of the cohort stopped buying early).
  EXPECT_GE(scores[0].r, 4);
  EXPECT_EQ(scores[0].segment, RfmSegmentName(scores[0].r, scores[0].f, scores[0].m));
  std::map<std::string_view, size_t> names;
  for (const RfmScore& s : scores) ++names[s.segment];
  EXPECT_GE(names.size(), 8u);
  EXPECT_GT(names["Lost"], 0u);
  EXPECT_GT(names["Champions"], 0u);
}

}  // namespace
}  // namespace cdp::segments
