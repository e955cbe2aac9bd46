// Copyright 2026 The libcdp Authors.
//
// Retention (issue 5): policies purge old events (with their index entries, the traits they fed, and every byte of
// them on disk) and erase inactive profiles, automatically on a schedule or on demand, each run recorded.

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <thread>

#include "core/ids.h"
#include "engine/engine_impl.h"
#include "privacy/retention_model.h"
#include "storage/keys.h"
#include "storage/store.h"
#include "test_util.h"

namespace cdp {
namespace {

using testing::J;
using testing::Unwrap;

constexpr int64_t kDayUs = int64_t{86400} * 1'000'000;

std::string DaysAgo(int days) { return FormatTimestamp(internal::NowMicros() - days * kDayUs); }

// Retires the page views older than 365 days as a run of such a policy does, without the run's purge at its end
// (so the retired events are still in table files): the number retired.
int64_t RetireOldPageViews(Engine& engine) {
  auto policies = Unwrap(internal::ParseRetentionPolicies(
      J(R"({"policies": [{"id": "ret_1", "name": "v", "target": "events", "eventType": "page_view",
                          "olderThan": "365d"}]})")));
  auto& impl = static_cast<internal::EngineImpl&>(engine);
  int64_t purged = 0;
  absl::flat_hash_set<std::string> affected;
  EXPECT_TRUE(
      impl.PurgeEventsBefore(policies[0], policies[0].CutoffAt(internal::NowMicros()), &purged, &affected).ok());
  return purged;
}

class RetentionTest : public testing::EngineTest {
 protected:
  Retention& retention() { return engine_->retention(); }
  std::string Track(const std::string& profile, const std::string& type, int days_ago, const std::string& extra = "") {
    std::string text = R"({"type": ")" + type + R"(", "profileId": ")" + profile + R"(", "timestamp": ")" +
                       DaysAgo(days_ago) + R"(")" + extra + "}";
    return Unwrap(events().Track(J(text))).event_id;
  }
  size_t TimelineSize(const std::string& profile) {
    return Unwrap(profiles().Timeline(profile, EventQuery{})).items.size();
  }
};

TEST_F(RetentionTest, OldEventsOfAPolicysTypeArePurgedWithWhatTheyFed) {
  const std::string canary = "canary-" + internal::NewMonotonicId();
  const std::string p = Unwrap(profiles().Create(J(R"({"id": "p1"})"))).Find("id")->as_string();
  const std::string q = Unwrap(profiles().Create(J(R"({"id": "q1"})"))).Find("id")->as_string();
  Track(p, "page_view", 400, R"(, "properties": {"url": ")" + canary + R"("})");
  Track(p, "page_view", 10);
  Track(p, "purchase", 420, R"(, "properties": {"revenue": 50})");
  Track(p, "purchase", 5, R"(, "properties": {"revenue": 20})");
  Track(q, "page_view", 500);
  const std::string seg = Unwrap(engine_->segments().Create(
                                     J(R"({"name": "viewers", "rule": {"event": "page_view", "count": {">=": 1}}})")))
                              .Find("id")
                              ->as_string();
  EXPECT_EQ(Unwrap(engine_->segments().Size(seg)), 2);
  const int64_t events_before = Unwrap(engine_->Stats()).Find("events")->as_int();

  Json set = Unwrap(retention().SetPolicies(J(R"({"policies": [
      {"name": "page views after a year", "target": "events", "eventType": "page_view", "olderThan": "365d"}]})")));
  const Json& policy = set.Find("policies")->items()[0];
  EXPECT_TRUE(policy.Find("id")->as_string().starts_with("ret_"));
  EXPECT_TRUE(policy.Find("enabled")->as_bool());

  Json run = Unwrap(retention().Run());
  EXPECT_EQ(run.Find("status")->as_string(), "completed");
  EXPECT_EQ(run.Find("trigger")->as_string(), "manual");
  EXPECT_EQ(run.Find("eventsPurged")->as_int(), 2);
  const Json& result = run.Find("policies")->items()[0];
  EXPECT_EQ(result.Find("eventsPurged")->as_int(), 2);
  EXPECT_EQ(result.Find("profilesAffected")->as_int(), 2);
  EXPECT_EQ(result.Find("id")->as_string(), policy.Find("id")->as_string());

  // The old page views are gone; the purchases (another type) and the recent page view stay.
  EXPECT_EQ(TimelineSize(p), 3u);
  EXPECT_EQ(TimelineSize(q), 0u);
  EventQuery views;
  views.type = "page_view";
  EXPECT_EQ(Unwrap(events().Query(views)).items.size(), 1u);
  EXPECT_EQ(Unwrap(engine_->Stats()).Find("events")->as_int(), events_before - 2);
  // Traits are those of the events kept.
  Json pd = Unwrap(profiles().Get(p));
  EXPECT_EQ(pd.FindPath("computed.eventCount")->as_int(), 3);
  EXPECT_EQ(pd.FindPath("computed.ltv")->as_number(), 70);
  EXPECT_EQ(pd.FindPath("computed.firstSeenDate")->as_string().substr(0, 10), DaysAgo(420).substr(0, 10));
  EXPECT_EQ(Unwrap(profiles().Get(q)).FindPath("computed.eventCount")->as_int(), 0);
  // The segments follow: q viewed no page any more.
  EXPECT_EQ(Unwrap(engine_->segments().Size(seg)), 1);
  // Physical: no file of the directory holds the purged event.
  EXPECT_TRUE(testing::FilesHolding(dir_.path(), canary).empty());
  // Recorded, and audited.
  Json runs = Unwrap(retention().Runs(Json::Object()));
  ASSERT_EQ(runs.Find("items")->size(), 1u);
  EXPECT_EQ(runs.Find("items")->items()[0], run);
  Json audit = Unwrap(engine_->audit().List(J(R"({"operation": "retention.run"})")));
  ASSERT_EQ(audit.Find("items")->size(), 1u);
  EXPECT_EQ(audit.Find("items")->items()[0].Find("count")->as_int(), 2);
  // A second run finds nothing more, and the state survives a reopen.
  EXPECT_EQ(Unwrap(retention().Run()).Find("eventsPurged")->as_int(), 0);
  Reopen();
  EXPECT_EQ(TimelineSize(p), 3u);
  EXPECT_EQ(Unwrap(profiles().Get(p)).FindPath("computed.eventCount")->as_int(), 3);
  EXPECT_EQ(Unwrap(retention().Policies()).Find("policies")->size(), 1u);
  EXPECT_EQ(Unwrap(retention().Runs(Json::Object())).Find("items")->size(), 2u);
}

// An age longer than the time since 1970 cuts nothing (its cut-off would be a negative time, which as an unsigned
// time key sorted after every event: a 100-year policy purged everything).
TEST_F(RetentionTest, AnAgeLongerThanSince1970PurgesNothing) {
  const std::string p = Unwrap(profiles().Create(J(R"({"id": "p1"})"))).Find("id")->as_string();
  Track(p, "page_view", 0);
  Track(p, "page_view", 9000);  // 2002
  Unwrap(retention().SetPolicies(J(R"({"policies": [
      {"name": "ancient views", "target": "events", "eventType": "page_view", "olderThan": "100y"},
      {"name": "long gone", "target": "profiles", "inactiveFor": "100y"}]})")));
  Json run = Unwrap(retention().Run());
  EXPECT_EQ(run.Find("eventsPurged")->as_int(), 0) << run.Dump();
  EXPECT_EQ(run.Find("profilesErased")->as_int(), 0) << run.Dump();
  EXPECT_EQ(run.Find("policies")->items()[0].Find("cutoff")->as_string(), "1970-01-01T00:00:00.000Z");
  EXPECT_EQ(TimelineSize(p), 2u);
  // And a later, shorter policy still purges what it should.
  Unwrap(retention().SetPolicies(J(R"({"policies": [
      {"name": "views after ten years", "target": "events", "eventType": "page_view", "olderThan": "10y"}]})")));
  EXPECT_EQ(Unwrap(retention().Run()).Find("eventsPurged")->as_int(), 1);
  EXPECT_EQ(TimelineSize(p), 1u);
}

TEST_F(RetentionTest, CustomEventsByNameAndEveryTypeWithoutOne) {
  const std::string p = Unwrap(profiles().Create(J(R"({"id": "p1"})"))).Find("id")->as_string();
  Track(p, "custom", 40, R"(, "name": "debug_ping")");
  Track(p, "custom", 40, R"(, "name": "signup")");
  Track(p, "email_open", 40);
  Unwrap(retention().SetPolicies(J(R"({"policies": [
      {"name": "pings", "target": "events", "eventType": "custom", "eventName": "debug_ping", "olderThan": "1w"}]})")));
  EXPECT_EQ(Unwrap(retention().Run()).Find("eventsPurged")->as_int(), 1);
  Unwrap(retention().SetPolicies(J(R"({"policies": [{"name": "all", "target": "events", "olderThan": "30d"},
      {"name": "off", "target": "events", "olderThan": "1h", "enabled": false}]})")));
  EXPECT_EQ(Unwrap(retention().Run()).Find("eventsPurged")->as_int(), 2);
  EXPECT_EQ(TimelineSize(p), 0u);
}

// A run retires events up to its cut-off (its horizon, kept in storage): later runs start there and never count an
// event twice, events that old are refused, and the log is cleaned by its drop filter, not by tombstones, so a
// later erasure still takes its fast path.
TEST_F(RetentionTest, RetiredEventsStayRetiredAndOlderOnesAreRefused) {
  const std::string p = Unwrap(profiles().Create(J(R"({"id": "p1"})"))).Find("id")->as_string();
  Track(p, "page_view", 400);
  Track(p, "page_view", 380);
  Track(p, "purchase", 420, R"(, "properties": {"revenue": 50})");
  Track(p, "purchase", 5, R"(, "properties": {"revenue": 20})");
  const int64_t events_before = Unwrap(engine_->Stats()).Find("events")->as_int();
  Unwrap(retention().SetPolicies(J(R"({"policies": [
      {"name": "views", "target": "events", "eventType": "page_view", "olderThan": "365d"}]})")));
  EXPECT_EQ(Unwrap(retention().Run()).Find("eventsPurged")->as_int(), 2);
  auto& impl = static_cast<internal::EngineImpl&>(*engine_);
  std::string marker;
  EXPECT_TRUE(impl.store().Get(storage::Cf::kMeta, internal::kEventLogDeletedKey, &marker).IsNotFound());

  // A page view that old is refused (it would be retired at once); a purchase that old, or a recent view, is not.
  Result<TrackResult> late =
      events().Track(J(R"({"type": "page_view", "profileId": "p1", "timestamp": ")" + DaysAgo(390) + R"("})"));
  EXPECT_EQ(late.status().code(), StatusCode::kFailedPrecondition) << late.status().ToString();
  BatchResult batch = Unwrap(
      events().TrackBatch({J(R"({"type": "page_view", "profileId": "p1", "timestamp": ")" + DaysAgo(366) + R"("})"),
                           J(R"({"type": "purchase", "profileId": "p1", "timestamp": ")" + DaysAgo(366) +
                             R"(", "properties": {"revenue": 1}})"),
                           J(R"({"type": "page_view", "profileId": "p1", "timestamp": ")" + DaysAgo(2) + R"("})")}));
  ASSERT_EQ(batch.items.size(), 3u);
  EXPECT_EQ(batch.items[0].status.code(), StatusCode::kFailedPrecondition);
  EXPECT_TRUE(batch.items[1].status.ok()) << batch.items[1].status.ToString();
  EXPECT_TRUE(batch.items[2].status.ok()) << batch.items[2].status.ToString();
  EXPECT_EQ(TimelineSize(p), 4u);  // two purchases of before, the new purchase and the new view

  // A policy over every type now: the page views already retired are not purged (nor counted) again.
  Unwrap(retention().SetPolicies(J(R"({"policies": [
      {"name": "views", "target": "events", "eventType": "page_view", "olderThan": "365d"},
      {"name": "everything", "target": "events", "olderThan": "365d"}]})")));
  Json run = Unwrap(retention().Run());
  EXPECT_EQ(run.Find("eventsPurged")->as_int(), 2) << run.Dump();  // the purchases 420 and 366 days old
  EXPECT_EQ(Unwrap(engine_->Stats()).Find("events")->as_int(), events_before + 2 - 2 - 2);
  EXPECT_EQ(Unwrap(profiles().Get(p)).FindPath("computed.ltv")->as_number(), 20);
  EventQuery all;
  EXPECT_EQ(Unwrap(events().Query(all)).items.size(), 2u);  // the recent purchase and view
  // Dropping the policies does not bring retired events back, after a reopen either.
  Unwrap(retention().SetPolicies(J(R"({"policies": []})")));
  Reopen();
  EXPECT_EQ(Unwrap(events().Query(all)).items.size(), 2u);
  EXPECT_EQ(events()
                .Track(J(R"({"type": "purchase", "profileId": "p1", "timestamp": ")" + DaysAgo(400) + R"("})"))
                .status()
                .code(),
            StatusCode::kFailedPrecondition);
  EXPECT_EQ(Unwrap(retention().Run()).Find("eventsPurged")->as_int(), 0);
}

TEST_F(RetentionTest, InactiveProfilesAreErasedAndActiveOnesKept) {
  const std::string old_id = Unwrap(profiles().Create(J(R"({"id": "dormant",
      "externalIds": {"email": "dormant@example.com"}})")))
                                 .Find("id")
                                 ->as_string();
  const std::string recent =
      Unwrap(profiles().Create(J(R"({"id": "recent", "externalIds": {"customerId": "cust-recent"}})")))
          .Find("id")
          ->as_string();
  const std::string written = Unwrap(profiles().Create(J(R"({"id": "written"})"))).Find("id")->as_string();
  Track(old_id, "page_view", 1200);
  Track(recent, "page_view", 1200);
  Track(recent, "page_view", 3);
  // A television both used, long ago: it stays with "recent", and its hub set keeps a hash of cust-dormant (the
  // customerId dormant's event linked).
  Unwrap(events().Track(J(R"({"type": "page_view", "customerId": "cust-recent", "deviceId": "shared-tv",
      "timestamp": ")" + DaysAgo(1200) +
                          R"("})")));
  Unwrap(events().Track(J(R"({"type": "page_view", "email": "dormant@example.com", "customerId": "cust-dormant",
      "deviceId": "shared-tv", "timestamp": ")" +
                          DaysAgo(1200) + R"("})")));
  ASSERT_TRUE(engine_->Flush().ok());
  ASSERT_FALSE(testing::FilesHolding(dir_.path(), testing::HubHashBytes("customerId", "cust-dormant")).empty());
  // Age the stored documents of "dormant" and "written" as if last written 4 years ago ("written" keeps no event:
  // its write below makes it active).
  auto& impl = static_cast<internal::EngineImpl&>(*engine_);
  for (const std::string& id : {old_id, recent, written}) {
    Json stored = Unwrap(impl.ReadStoredProfile(id));
    stored.Set("updatedAt", DaysAgo(4 * 365));
    storage::WriteBatch batch(impl.store());
    batch.Put(storage::Cf::kProfiles, id, stored.Dump());
    ASSERT_TRUE(impl.store().Write(&batch).ok());
  }
  Unwrap(profiles().Patch(written, J(R"({"attributes": {"city": "Oslo"}})")));
  Unwrap(retention().SetPolicies(
      J(R"({"policies": [{"name": "dormant customers", "target": "profiles", "inactiveFor": "3y"}]})")));
  Json run = Unwrap(retention().Run());
  EXPECT_EQ(run.Find("profilesErased")->as_int(), 1) << run.Dump();
  EXPECT_TRUE(profiles().Get(old_id).status().IsNotFound());
  EXPECT_TRUE(profiles().Get(recent).ok());
  EXPECT_TRUE(profiles().Get(written).ok());
  EXPECT_TRUE(testing::FilesHolding(dir_.path(), "dormant@example.com").empty());
  // The run scrubbed the erased people's hashes from other values' hub sets, once, at its end.
  EXPECT_TRUE(testing::FilesHolding(dir_.path(), testing::HubHashBytes("customerId", "cust-dormant")).empty());
  EXPECT_FALSE(testing::FilesHolding(dir_.path(), testing::HubHashBytes("customerId", "cust-recent")).empty());
  std::string marker;
  EXPECT_TRUE(impl.store().Get(storage::Cf::kMeta, internal::kHubScrubPendingKey, &marker).IsNotFound());
  // Not suppressed: the person may come back.
  Unwrap(events().Track(J(R"({"type": "page_view", "email": "dormant@example.com"})")));
}

// A run finds inactive profiles without the write lock, then erases them one by one: a profile that an event (or a
// write) made active in between is kept, with that event, and not counted as erased.
TEST_F(RetentionTest, AProfileActiveAgainBeforeItsErasureIsKept) {
  const std::string id = Unwrap(profiles().Create(J(R"({"id": "returning"})"))).Find("id")->as_string();
  Track(id, "page_view", 1200);
  auto& impl = static_cast<internal::EngineImpl&>(*engine_);
  Json stored = Unwrap(impl.ReadStoredProfile(id));
  stored.Set("updatedAt", DaysAgo(4 * 365));
  {
    storage::WriteBatch batch(impl.store());
    batch.Put(storage::Cf::kProfiles, id, stored.Dump());
    ASSERT_TRUE(impl.store().Write(&batch).ok());
  }
  const int64_t cutoff = internal::NowMicros() - 3 * 365 * kDayUs;
  std::vector<std::string> inactive = Unwrap(impl.InactiveProfiles(cutoff));
  ASSERT_EQ(inactive, std::vector<std::string>{id});
  // The person comes back between the scan and the erasure: a batch of events, written in flight.
  std::vector<Json> batch;
  for (int i = 0; i < 100; ++i) {
    batch.push_back(J(R"({"type": "page_view", "profileId": ")" + id + R"(", "timestamp": ")" + DaysAgo(0) + "\"}"));
  }
  ASSERT_EQ(Unwrap(events().TrackBatch(batch)).accepted, 100u);
  bool kept = false;
  ASSERT_TRUE(impl.DeleteProfile(id, nullptr, /*for_retention=*/true, cutoff, &kept).ok());
  EXPECT_TRUE(kept);
  EXPECT_TRUE(profiles().Get(id).ok());
  EventQuery all;
  all.limit = 500;
  EXPECT_EQ(Unwrap(profiles().Timeline(id, all)).items.size(), 101u);
  // Still inactive by the same cut-off otherwise: without it, the erasure goes ahead.
  ASSERT_TRUE(impl.DeleteProfile(id, nullptr, /*for_retention=*/true).ok());
  EXPECT_TRUE(profiles().Get(id).status().IsNotFound());
}

TEST_F(RetentionTest, PoliciesAreValidatedAndNeedAnAdmin) {
  auto field_of = [&](const char* text) {
    Result<Json> r = retention().SetPolicies(J(text));
    EXPECT_TRUE(r.status().IsInvalidArgument()) << text;
    return r.status().field();
  };
  EXPECT_EQ(field_of(R"({"policies": [{"name": "x", "target": "events", "olderThan": "30"}]})"),
            "policies[0].olderThan");
  EXPECT_EQ(field_of(R"({"policies": [{"name": "x", "target": "events", "olderThan": "30m"}]})"),
            "policies[0].olderThan");
  EXPECT_EQ(field_of(R"({"policies": [{"name": "x", "target": "events", "olderThan": "0d"}]})"),
            "policies[0].olderThan");
  EXPECT_EQ(field_of(R"({"policies": [{"name": "x", "target": "events", "olderThan": "101y"}]})"),
            "policies[0].olderThan");
  EXPECT_EQ(field_of(R"({"policies": [{"name": "x", "target": "events", "eventType": "click", "olderThan": "1d"}]})"),
            "policies[0].eventType");
  EXPECT_EQ(field_of(R"({"policies": [{"name": "x", "target": "profiles", "olderThan": "1d"}]})"),
            "policies[0].olderThan");
  EXPECT_EQ(field_of(R"({"policies": [{"name": "x", "target": "profiles"}]})"), "policies[0].inactiveFor");
  EXPECT_EQ(field_of(R"({"policies": [{"name": "", "target": "events", "olderThan": "1d"}]})"), "policies[0].name");
  EXPECT_EQ(field_of(R"({"policies": [{"name": "x", "target": "sessions", "olderThan": "1d"}]})"),
            "policies[0].target");
  EXPECT_EQ(field_of(R"({"policies": [{"id": "ret_a", "name": "x", "target": "events", "olderThan": "1d"},
                                       {"id": "ret_a", "name": "y", "target": "events", "olderThan": "2d"}]})"),
            "policies[1].id");
  EXPECT_EQ(field_of(R"({"rules": []})"), "rules");
  EXPECT_EQ(Unwrap(retention().Policies()).Find("policies")->size(), 0u);  // nothing stored by the refusals

  Unwrap(engine_->governance().SetPolicy(
      J(R"({"roles": {"viewer": {"read": ["public"]}}, "principals": {"vic": {"roles": ["viewer"]}}})")));
  ScopedPrincipal vic("vic");
  EXPECT_EQ(retention().SetPolicies(J(R"({"policies": []})")).status().code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(retention().Run().status().code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(retention().Runs(Json::Object()).status().code(), StatusCode::kPermissionDenied);
}

// The writer of ARetirementACrashInterruptedIsMadePhysicalAtOpen, in a child process: a page view with the canary,
// retired by a run that ends the process after its write, before the purge that drops it from the files.
TEST(RetentionChild, DISABLED_RetireAndDieBeforePurge) {
  auto engine = Unwrap(Engine::Open(Options(), testing::ChildEnv("CDP_TEST_DIR")));
  const std::string canary = testing::ChildEnv("CDP_TEST_CANARY");
  Unwrap(engine->profiles().Create(J(R"({"id": "p1"})")));
  Unwrap(engine->events().Track(J(R"({"type": "page_view", "profileId": "p1", "timestamp": ")" + DaysAgo(400) +
                                  R"(", "properties": {"url": ")" + canary + R"("}})")));
  Unwrap(engine->events().Track(J(R"({"type": "page_view", "profileId": "p1"})")));
  ASSERT_TRUE(engine->Flush().ok());
  const int64_t purged = RetireOldPageViews(*engine);
  ASSERT_EQ(purged, 1);
  std::_Exit(0);  // before PurgeRetained
}

TEST(RetentionRecoveryTest, ARetirementACrashInterruptedIsMadePhysicalAtOpen) {
  testing::TempDir dir;
  const std::string canary = "rtcr" + internal::NewMonotonicId() + "z";
  ASSERT_TRUE(testing::RunTestChild("RetentionChild.DISABLED_RetireAndDieBeforePurge",
                                    {{"CDP_TEST_DIR", dir.path()}, {"CDP_TEST_CANARY", canary}}));
  EXPECT_FALSE(testing::FilesHolding(dir.path(), canary).empty());  // retired, not yet dropped
  auto engine = Unwrap(Engine::Open(Options(), dir.path()));
  EXPECT_EQ(testing::FilesHolding(dir.path(), canary), std::vector<std::string>{});
  EXPECT_EQ(Unwrap(engine->events().Query(EventQuery{})).items.size(), 1u);
  EXPECT_EQ(Unwrap(engine->profiles().Timeline("p1", EventQuery{})).items.size(), 1u);
}

// An erasure while a retention run has retired events but not yet purged them (the run purges once, at its end):
// the person's retired events are in no index, so the erasure purges the run's span and the person's index range
// itself, and no file holds them when it returns.
TEST(RetentionErasureTest, AnErasureDuringARunLeavesNoRetiredEventOfThePerson) {
  testing::TempDir dir;
  const std::string canary = "rter" + internal::NewMonotonicId() + "z";
  const std::string person = "p" + internal::NewMonotonicId();
  auto engine = Unwrap(Engine::Open(Options(), dir.path()));
  Unwrap(engine->profiles().Create(J(R"({"id": ")" + person + R"("})")));
  Unwrap(engine->profiles().Create(J(R"({"id": "other"})")));
  Unwrap(engine->events().Track(J(R"({"type": "page_view", "profileId": ")" + person + R"(", "timestamp": ")" +
                                  DaysAgo(400) + R"(", "properties": {"url": ")" + canary + R"("}})")));
  Unwrap(engine->events().Track(
      J(R"({"type": "page_view", "profileId": "other", "timestamp": ")" + DaysAgo(399) + R"("})")));
  ASSERT_TRUE(engine->Flush().ok());  // the old events in a table file of their own, away from the recent one
  Unwrap(engine->events().Track(J(R"({"type": "page_view", "profileId": ")" + person + R"("})")));
  ASSERT_TRUE(engine->Flush().ok());
  const int64_t purged = RetireOldPageViews(*engine);
  ASSERT_EQ(purged, 2);  // retired; the run's purge has not happened
  ASSERT_FALSE(testing::FilesHolding(dir.path(), canary).empty());
  Unwrap(engine->gdpr().Erase(person));
  EXPECT_EQ(testing::FilesHolding(dir.path(), canary), std::vector<std::string>{});
  EXPECT_EQ(testing::FilesHolding(dir.path(), person), std::vector<std::string>{});
  // The run's own purge still finishes (its marker stays until then).
  ASSERT_TRUE(static_cast<internal::EngineImpl&>(*engine).PurgeRetained(/*profiles_erased=*/false).ok());
  EXPECT_EQ(Unwrap(engine->events().Query(EventQuery{})).items.size(), 0u);
}

// The compaction filter and readers test retirement on every stored event below a horizon: the engine's documents
// give their type and name without a parse, exactly as the parse would; any other shape goes to the parser.
TEST(RetentionHorizonsTest, StoredTypeAndNameReadsTheEnginesDocumentsAndLeavesOthersToTheParser) {
  testing::TempDir dir;
  auto engine = Unwrap(Engine::Open(Options(), dir.path()));
  Unwrap(engine->events().Track(J(R"({"type": "page_view", "customerId": "c1", "properties": {"type": "x"}})")));
  Unwrap(engine->events().Track(J(R"({"type": "custom", "name": "ping", "customerId": "c1"})")));
  Unwrap(engine->events().Track(J(R"({"type": "custom", "name": "sign \"up\"", "customerId": "c1"})")));
  auto& store = static_cast<internal::EngineImpl&>(*engine).store();
  auto iter = store.NewIterator(storage::Cf::kEventsByTime);
  int fast = 0, parsed = 0;
  for (iter->SeekToFirst(); iter->Valid(); iter->Next()) {
    Json doc = Unwrap(Json::Parse(iter->value()));
    const std::string type = doc.Find("type")->as_string();
    const std::string name = doc.Find("name") != nullptr ? doc.Find("name")->as_string() : "";
    std::string_view t, n;
    if (internal::StoredTypeAndName(iter->value(), &t, &n)) {
      ++fast;
      EXPECT_EQ(t, type);
      EXPECT_EQ(n, name);
    } else {
      ++parsed;
      EXPECT_EQ(name, "sign \"up\"");  // an escape: left to the parser
    }
  }
  EXPECT_EQ(fast, 2);
  EXPECT_EQ(parsed, 1);
  std::string_view t, n;
  EXPECT_FALSE(internal::StoredTypeAndName(R"({"type":"page_view","id":"e"})", &t, &n));  // another order
  EXPECT_FALSE(internal::StoredTypeAndName(R"({"id": "e", "profileId": "p", "type": "page_view"})", &t, &n));
  EXPECT_FALSE(internal::StoredTypeAndName(R"({"id":"e","profileId":"p","type":"page_vi)", &t, &n));  // cut short
  // Either way the same answer.
  const int64_t when = int64_t{1767225600} * 1'000'000;
  internal::RetentionHorizons h;
  h.Raise("custom", "sign \"up\"", storage::TimeKey(when + 1, ""));
  h.Raise("page_view", "", storage::TimeKey(when + 1, ""));
  const std::string key = storage::TimeIndexKey(when, "e", "p");
  EXPECT_TRUE(h.RetiredStored(key, R"({"id":"e","profileId":"p","type":"page_view","timestamp":"x"})"));
  EXPECT_TRUE(h.RetiredStored(key, R"({"type":"page_view","id":"e"})"));
  EXPECT_TRUE(h.RetiredStored(key, R"({"id":"e","profileId":"p","type":"custom","name":"sign \"up\""})"));
  EXPECT_FALSE(h.RetiredStored(key, R"({"id":"e","profileId":"p","type":"custom","name":"ping"})"));
}

// Horizons are time keys: whether an event is retired does not depend on the profile holding it (a merge moves an
// event to another profile's log key, keeping its time key), and they survive their stored form.
TEST(RetentionHorizonsTest, RetirementFollowsTimeTypeAndNameNotTheProfile) {
  const int64_t t = int64_t{1767225600} * 1'000'000;
  internal::RetentionHorizons h;
  EXPECT_TRUE(h.empty());
  h.Raise("page_view", "", storage::TimeKey(t, "evt_m"));
  h.Raise("custom", "ping", storage::TimeKey(t + 10, ""));
  h.Raise("page_view", "", storage::TimeKey(t - 5, ""));  // lower: changes nothing
  for (const char* profile : {"aaa", "zzz"}) {
    SCOPED_TRACE(profile);
    EXPECT_TRUE(h.Retired(storage::TimeIndexKey(t, "evt_a", profile), "page_view", ""));
    EXPECT_FALSE(h.Retired(storage::TimeIndexKey(t, "evt_m", profile), "page_view", ""));  // the horizon's own
    EXPECT_FALSE(h.Retired(storage::TimeIndexKey(t, "evt_a", profile), "purchase", ""));
    EXPECT_TRUE(h.Retired(storage::TimeIndexKey(t + 9, "evt_z", profile), "custom", "ping"));
    EXPECT_FALSE(h.Retired(storage::TimeIndexKey(t + 9, "evt_z", profile), "custom", "signup"));
  }
  EXPECT_TRUE(h.Retired(storage::TimeKey(t, "evt_a"), "page_view", ""));  // an event not stored yet
  EXPECT_TRUE(h.RetiredStored(storage::TimeIndexKey(t, "evt_a", "p"), R"({"type": "page_view"})"));
  EXPECT_FALSE(h.RetiredStored(storage::TimeIndexKey(t, "evt_a", "p"), "not json"));
  auto back = Unwrap(internal::RetentionHorizons::Parse(h.Serialize()));
  EXPECT_EQ(back.Serialize(), h.Serialize());
  EXPECT_EQ(back.Before("page_view", ""), storage::TimeKey(t, "evt_m"));
  EXPECT_EQ(internal::RetentionHorizons::Parse("[{\"type\": 1}]").status().code(), StatusCode::kDataLoss);

  internal::RetiredRange range;
  range.Extend("b", "c");
  range.Extend("a", "b");
  auto stored = Unwrap(internal::RetiredRange::Parse(range.Serialize()));
  EXPECT_EQ(stored.first, "a");
  EXPECT_EQ(stored.last, "c");
}

class ScheduledRetentionTest : public RetentionTest {
 protected:
  void SetUp() override {
    options_.retention_interval_seconds = 1;
    RetentionTest::SetUp();
  }
};

TEST_F(ScheduledRetentionTest, PoliciesApplyOnTheirOwn) {
  const std::string p = Unwrap(profiles().Create(J(R"({"id": "p1"})"))).Find("id")->as_string();
  Track(p, "page_view", 100);
  Unwrap(retention().SetPolicies(
      J(R"({"policies": [{"name": "views", "target": "events", "eventType": "page_view", "olderThan": "90d"}]})")));
  // Waits (at most 30 s) for a scheduled run's record of the purge: behaviour, not speed.
  bool purged_by_schedule = false;
  for (int i = 0; i < 300 && !purged_by_schedule; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    const Json runs = Unwrap(retention().Runs(Json::Object()));
    for (const Json& r : runs.Find("items")->items()) {
      EXPECT_EQ(r.Find("trigger")->as_string(), "schedule");
      purged_by_schedule |= r.Find("eventsPurged")->as_int() == 1;
    }
  }
  EXPECT_TRUE(purged_by_schedule);
  EXPECT_EQ(TimelineSize(p), 0u);
}

}  // namespace
}  // namespace cdp
