// Copyright 2026 The libcdp Authors.
//
// RFM in the engine: computed.rfm on profiles and in rules, recomputed on demand, after a configuration change and
// by the worker on its own; the configuration validated and stored.

#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "test_util.h"

namespace cdp {
namespace {

using testing::J;
using testing::Unwrap;

int64_t NowMillis() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

class RfmEngineTest : public testing::EngineTest {
 protected:
  Segments& segments() { return engine_->segments(); }
  // Customer i of 5: i + 1 purchases of 10, the last one 40 - 10 * i days ago: customer 4 is best on R, F and M.
  std::vector<std::string> FiveCustomers() {
    std::vector<std::string> ids;
    for (int i = 0; i < 5; ++i) {
      std::string id;
      for (int k = 0; k <= i; ++k) {
        const int64_t ms = NowMillis() - (40 - 10 * i + k) * 86'400'000LL;
        id = Unwrap(
                 events().Track(J(R"({"type": "purchase", "customerId": "c)" + std::to_string(i) +
                                  R"(", "timestamp": )" + std::to_string(ms) + R"(, "properties": {"revenue": 10}})")))
                 .profile_id;
      }
      ids.push_back(id);
    }
    return ids;
  }
};

TEST_F(RfmEngineTest, ProfilesCarryRfmAndRulesReadIt) {
  std::vector<std::string> ids = FiveCustomers();
  const std::string champions = Unwrap(segments().Create(J(R"({"name": "champions", "rule": {
      "field": "computed.rfm.segment", "operator": "=", "value": "Champions"}})")))
                                    .Find("id")
                                    ->as_string();
  // The build scored everyone.
  Json best = Unwrap(profiles().Get(ids[4]));
  EXPECT_EQ(best.FindPath("computed.rfm.score")->as_int(), 555);
  EXPECT_EQ(best.FindPath("computed.rfm.segment")->as_string(), "Champions");
  EXPECT_EQ(Unwrap(profiles().Get(ids[0])).FindPath("computed.rfm.segment")->as_string(), "Lost");
  EXPECT_EQ(Unwrap(segments().Size(champions)), 2);  // 555, and 444 (R=4, FM=4 is Champions in the table)
  // A configuration whose window leaves out purchases older than 25 days: customers 0 and 1 are no longer scored.
  Json config = Unwrap(segments().SetRfmConfig(J(R"({"window": "25d"})")));
  EXPECT_EQ(config.Find("window")->as_string(), "25d");
  EXPECT_EQ(config.FindPath("lastRun.scored")->as_int(), 3);
  EXPECT_EQ(Unwrap(profiles().Get(ids[0])).FindPath("computed.rfm"), nullptr);
  // A new best customer takes over once scores are recomputed; the feed says why.
  for (int k = 0; k < 9; ++k) {
    Unwrap(events().Track(J(R"({"type": "purchase", "customerId": "big", "properties": {"revenue": 1000}})")));
  }
  Json run = Unwrap(segments().RecomputeRfm());
  EXPECT_EQ(run.Find("scored")->as_int(), 4);
  Json feed = Unwrap(segments().Changes(champions, "", 0));
  bool rfm_cause = false;
  for (const Json& c : feed.Find("changes")->items()) rfm_cause = rfm_cause || *c.FindPath("cause.kind") == Json("rfm");
  EXPECT_TRUE(rfm_cause) << feed.Dump();
  // Stored across a reopen.
  Reopen();
  EXPECT_EQ(Unwrap(segments().RfmConfig()).Find("window")->as_string(), "25d");
  // Errors.
  EXPECT_EQ(segments().SetRfmConfig(J(R"({"window": "soon"})")).status().field(), "window");
  EXPECT_EQ(segments().SetRfmConfig(J(R"({"revenuePath": "attributes.x"})")).status().field(), "revenuePath");
  EXPECT_EQ(segments().SetRfmConfig(J(R"({"colour": 1})")).status().field(), "colour");
}

TEST_F(RfmEngineTest, TheWorkerRecomputesOnItsOwn) {
  options_.rfm_refresh_seconds = 1;
  Reopen();
  std::vector<std::string> ids = FiveCustomers();
  const std::string lost = Unwrap(segments().Create(J(R"({"name": "lost", "rule": {
      "field": "computed.rfm.segment", "operator": "=", "value": "Lost"}})")))
                               .Find("id")
                               ->as_string();
  EXPECT_EQ(Unwrap(segments().Size(lost)), 1);
  // A sixth customer, worse than everyone: no call recomputes, the worker does within seconds.
  Unwrap(events().Track(J(R"({"type": "purchase", "customerId": "late", "timestamp": )" +
                          std::to_string(NowMillis() - 300 * 86'400'000LL) + R"(, "properties": {"revenue": 1}})")));
  bool seen = false;
  for (int i = 0; i < 100 && !seen; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    const Json feed = Unwrap(segments().Changes(lost, "", 0));
    for (const Json& c : feed.Find("changes")->items()) seen = seen || *c.FindPath("cause.kind") == Json("rfm");
  }
  EXPECT_TRUE(seen) << "the worker re-scored and the Lost segment changed";
}

}  // namespace
}  // namespace cdp
