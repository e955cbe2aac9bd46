// Copyright 2026 The libcdp Authors.
//
// Identity resolution through the engine: automatic merges from events, limits and priorities, hubs, manual
// merges, explanations, and erasure after merges.

#include <gtest/gtest.h>

#include <future>
#include <map>
#include <set>
#include <thread>

#include "fmt/format.h"
#include "storage/store.h"
#include "test_util.h"

namespace cdp {
namespace {

using testing::J;
using testing::Unwrap;

class IdentityEngineTest : public testing::EngineTest {
 protected:
  Identity& identity() { return engine_->identity(); }
  Segments& segments() { return engine_->segments(); }
  TrackResult Track(const std::string& json) { return Unwrap(events().Track(J(json))); }
  size_t EventCount(const std::string& profile_id) {
    EventQuery q;
    q.limit = 1000;
    return Unwrap(profiles().Timeline(profile_id, q)).items.size();
  }
};

TEST_F(IdentityEngineTest, AnonymousVisitorWhoIdentifiesIsMergedWithAllEvents) {
  // An anonymous visitor browses on a device; a known customer exists with an email.
  TrackResult anon = Track(R"({"type":"page_view","anonymousId":"anon-1","timestamp":"2026-03-01T10:00:00Z"})");
  Track(R"({"type":"product_view","anonymousId":"anon-1","timestamp":"2026-03-01T10:01:00Z"})");
  Json known = Unwrap(profiles().Create(J(R"({"externalIds":{"customerId":"C-9","email":"ada@example.com"},
                                               "attributes":{"firstName":"Ada"},"consent":{"email":true}})")));
  const std::string known_id = known.Find("id")->as_string();
  Track(R"({"type":"purchase","customerId":"C-9","timestamp":"2026-03-01T09:00:00Z","properties":{"revenue":10}})");
  // The visitor logs in: the event carries both identifiers, so the two profiles become one.
  TrackResult login = Track(
      R"({"type":"page_view","anonymousId":"anon-1","email":"ADA@example.com","timestamp":"2026-03-01T10:02:00Z"})");
  EXPECT_EQ(login.profile_id, known_id) << "the owner of the higher-priority identifier survives";
  ASSERT_EQ(login.merged_profiles.size(), 1u);
  EXPECT_EQ(login.merged_profiles[0], anon.profile_id);
  EXPECT_FALSE(login.merge_id.empty());

  EXPECT_EQ(EventCount(known_id), 4u);
  // The merged id keeps resolving to the survivor.
  Json via_old = Unwrap(profiles().Get(anon.profile_id));
  EXPECT_EQ(via_old.Find("id")->as_string(), known_id);
  EXPECT_EQ(EventCount(anon.profile_id), 4u);
  EXPECT_EQ(via_old.FindPath("externalIds.anonymousId")->as_string(), "anon-1");
  EXPECT_EQ(via_old.FindPath("computed.purchaseCount")->as_int(), 1);
  EXPECT_EQ(via_old.FindPath("computed.eventCount")->as_int(), 4);
  EXPECT_EQ(via_old.FindPath("computed.firstSeenDate")->as_string(), "2026-03-01T09:00:00.000Z");
  // New events for the anonymous id land on the survivor; events naming the old profile id too.
  EXPECT_EQ(Track(R"({"type":"page_view","anonymousId":"anon-1"})").profile_id, known_id);
  EXPECT_EQ(Track(R"({"type":"page_view","profileId":")" + anon.profile_id + R"("})").profile_id, known_id);
  // Searches list the survivor only.
  ProfileQuery all;
  all.limit = 100;
  EXPECT_EQ(Unwrap(profiles().Search(all)).items.size(), 1u);
  Json stats = Unwrap(identity().Stats());
  EXPECT_EQ(stats.Find("profiles")->as_int(), 1);
  EXPECT_EQ(stats.Find("merges")->as_int(), 1);
  EXPECT_EQ(stats.Find("mergedProfiles")->as_int(), 1);
  EXPECT_DOUBLE_EQ(stats.Find("unificationRate")->as_number(), 0.5);

  // Explain: identifiers with evidence, and the merge with the identifier and event that caused it.
  Json why = Unwrap(identity().Explain(anon.profile_id));
  EXPECT_EQ(why.Find("profileId")->as_string(), known_id);
  ASSERT_EQ(why.Find("merges")->size(), 1u);
  const Json& merge = why.Find("merges")->items()[0];
  EXPECT_EQ(merge.Find("mergeId")->as_string(), login.merge_id);
  EXPECT_TRUE(merge.Find("automatic")->as_bool());
  EXPECT_EQ(merge.FindPath("evidence.identifier.type")->as_string(), "anonymousId");
  EXPECT_EQ(merge.FindPath("evidence.eventId")->as_string(), login.event_id);
  EXPECT_EQ(merge.Find("snapshots"), nullptr);
  bool saw_anon = false;
  for (const Json& id : why.Find("identifiers")->items()) {
    if (id.Find("type")->as_string() == "anonymousId") {
      saw_anon = true;
      EXPECT_EQ(id.Find("evidence")->as_string(), "merge " + login.merge_id);
    }
  }
  EXPECT_TRUE(saw_anon);

  // Everything survives a reopen.
  Reopen();
  EXPECT_EQ(Unwrap(profiles().Get(anon.profile_id)).Find("id")->as_string(), known_id);
  EXPECT_EQ(Track(R"({"type":"page_view","anonymousId":"anon-1"})").profile_id, known_id);
}

TEST_F(IdentityEngineTest, TwoCustomersSharingADeviceStayTwoPeople) {
  TrackResult a = Track(R"({"type":"page_view","customerId":"A","deviceId":"ipad-1"})");
  TrackResult b = Track(R"({"type":"page_view","customerId":"B","deviceId":"ipad-1"})");
  EXPECT_NE(a.profile_id, b.profile_id);
  EXPECT_TRUE(b.merged_profiles.empty());
  ASSERT_TRUE(b.ignored_identifiers.is_array());
  EXPECT_EQ(b.ignored_identifiers.items()[0].Find("type")->as_string(), "deviceId");
  EXPECT_NE(b.ignored_identifiers.items()[0].Find("reason")->as_string().find("limit"), std::string::npos);
  // The device stays with its first owner; the second customer's profile does not hold it.
  Json pb = Unwrap(profiles().Get(b.profile_id));
  EXPECT_EQ(pb.FindPath("externalIds.deviceIds"), nullptr) << pb.Dump();
  // An event with the device alone goes to its owner.
  EXPECT_EQ(Track(R"({"type":"page_view","deviceId":"ipad-1"})").profile_id, a.profile_id);
}

// The limit drops only what conflicts: a customer identified with an anonymous visitor's id and a phone another
// customer holds gets the visitor's history (merged, or the visitor's profile as its own), not the phone.
TEST_F(IdentityEngineTest, ALimitDropsTheConflictingIdentifierNotTheAnonymousHistory) {
  TrackResult ca = Track(R"({"type":"page_view","customerId":"CA","phone":"+16502530077"})");
  TrackResult visit = Track(R"({"type":"purchase","anonymousId":"anon-x","properties":{"revenue":9}})");
  ASSERT_NE(ca.profile_id, visit.profile_id);
  Json who = Unwrap(identity().Identify(J(R"({"identifiers":{"customerId":"CB","anonymousId":"anon-x",
                                                             "phone":"+16502530077"}})")));
  const std::string cb = who.Find("profileId")->as_string();
  EXPECT_NE(cb, ca.profile_id) << "two customers stay two people";
  EXPECT_EQ(cb, visit.profile_id) << "the visitor's profile is the new customer's: " << who.Dump();
  const Json* ignored = who.Find("ignoredIdentifiers");
  ASSERT_NE(ignored, nullptr) << who.Dump();
  ASSERT_EQ(ignored->size(), 1u) << who.Dump();
  EXPECT_EQ(ignored->items()[0].Find("type")->as_string(), "phone");
  Json p = Unwrap(profiles().Get(cb));
  EXPECT_EQ(p.FindPath("externalIds.customerId")->as_string(), "CB") << p.Dump();
  EXPECT_DOUBLE_EQ(p.FindPath("computed.ltv")->as_number(), 9.0) << "the anonymous purchase is the customer's";
  EXPECT_EQ(Unwrap(profiles().Get(ca.profile_id)).FindPath("externalIds.phone")->as_string(), "+16502530077");

  // The same with the customer already known: the visitor's profile is merged into theirs.
  TrackResult cc = Track(R"({"type":"page_view","customerId":"CC"})");
  TrackResult visit2 = Track(R"({"type":"page_view","anonymousId":"anon-y"})");
  TrackResult both = Track(R"({"type":"page_view","customerId":"CC","anonymousId":"anon-y","phone":"+16502530077"})");
  EXPECT_EQ(both.profile_id, cc.profile_id);
  EXPECT_EQ(both.merged_profiles, std::vector<std::string>{visit2.profile_id});
  EXPECT_EQ(Track(R"({"type":"page_view","anonymousId":"anon-y"})").profile_id, cc.profile_id);
  EXPECT_EQ(Track(R"({"type":"page_view","phone":"+16502530077"})").profile_id, ca.profile_id);
  // And the merge says why.
  Json why = Unwrap(identity().Explain(cc.profile_id));
  ASSERT_EQ(why.Find("merges")->size(), 1u) << why.Dump();
  EXPECT_EQ(why.Find("merges")->items()[0].FindPath("evidence.identifier.type")->as_string(), "anonymousId")
      << why.Dump();
}

TEST_F(IdentityEngineTest, LimitsCapValuesPerProfile) {
  TrackResult first = Track(R"({"type":"page_view","customerId":"C1","email":"a1@x.com"})");
  for (int i = 2; i <= 7; ++i) {
    Track(R"({"type":"page_view","customerId":"C1","email":"a)" + std::to_string(i) + R"(@x.com"})");
  }
  Json p = Unwrap(profiles().Get(first.profile_id));
  const Json* emails = p.FindPath("externalIds.email");
  ASSERT_NE(emails, nullptr);
  EXPECT_EQ(emails->size(), 5u) << "email limit is 5: " << p.Dump();
  // The sixth and seventh emails are not identifiers: they match nothing.
  EXPECT_TRUE(Track(R"({"type":"page_view","email":"a6@x.com"})").profile_created);
}

TEST_F(IdentityEngineTest, HubsStopLinking) {
  Json rules = Unwrap(identity().Rules());
  rules.Find("hub")->Set("threshold", 2);
  Unwrap(identity().SetRules(rules));
  // A shared kiosk device seen with several different emails (no customer ids, so limits do not separate them).
  TrackResult first = Track(R"({"type":"page_view","email":"u1@x.com","deviceId":"kiosk"})");
  TrackResult u2 = Track(R"({"type":"page_view","email":"u2@x.com"})");
  TrackResult u3 = Track(R"({"type":"page_view","email":"u3@x.com"})");
  TrackResult u4 = Track(R"({"type":"page_view","email":"u4@x.com"})");
  // u2 + kiosk: a merge (2 emails <= limit 5); the kiosk has now been seen with 2 distinct emails.
  TrackResult second = Track(R"({"type":"page_view","email":"u2@x.com","deviceId":"kiosk"})");
  EXPECT_EQ(second.profile_id, u2.profile_id) << "the owner of the highest-priority identifier survives";
  ASSERT_EQ(second.merged_profiles.size(), 1u);
  EXPECT_EQ(second.merged_profiles[0], first.profile_id);
  // u3 + kiosk: still linking (2 <= threshold 2), and now 3 distinct emails: a hub.
  TrackResult third = Track(R"({"type":"page_view","email":"u3@x.com","deviceId":"kiosk"})");
  EXPECT_EQ(third.merged_profiles.size(), 1u);
  // u4 + kiosk: the hub links nobody.
  TrackResult fourth = Track(R"({"type":"page_view","email":"u4@x.com","deviceId":"kiosk"})");
  EXPECT_EQ(fourth.profile_id, u4.profile_id);
  EXPECT_TRUE(fourth.merged_profiles.empty()) << "the kiosk is a hub: it links nobody any more";
  ASSERT_TRUE(fourth.ignored_identifiers.is_array());
  EXPECT_NE(fourth.ignored_identifiers.Dump().find("hub"), std::string::npos);
  Json why = Unwrap(identity().Explain(first.profile_id));
  bool hub = false;
  for (const Json& id : why.Find("identifiers")->items()) {
    if (id.Find("value")->as_string() == "kiosk") hub = id.Find("hub")->as_bool();
  }
  EXPECT_TRUE(hub) << why.Dump();
  (void)u3;
  // A hub matches nobody, not even the profile that holds it: alone it finds no one...
  TrackResult alone = Track(R"({"type":"page_view","deviceId":"kiosk"})");
  EXPECT_NE(alone.profile_id, third.profile_id);
  EXPECT_TRUE(alone.profile_created);
  EXPECT_NE(alone.ignored_identifiers.Dump().find("hub"), std::string::npos) << alone.ignored_identifiers.Dump();
  // ... and beside an identifier of that same profile it is reported as ignored (resolution's common case, every
  // identifier held by one profile, is decided without Resolve only when none is a hub). After a reopen, so that
  // the hub set is read from storage.
  Reopen();
  TrackResult held = Track(R"({"type":"page_view","email":"u3@x.com","deviceId":"kiosk"})");
  EXPECT_EQ(held.profile_id, third.profile_id);
  EXPECT_TRUE(held.merged_profiles.empty());
  EXPECT_NE(held.ignored_identifiers.Dump().find("hub"), std::string::npos) << held.ignored_identifiers.Dump();
  // An event naming one profile with an identifier another holds merges that one into it (not the common case).
  TrackResult named = Track(R"({"type":"page_view","profileId":")" + u4.profile_id + R"(","email":"u1@x.com"})");
  EXPECT_EQ(named.profile_id, u4.profile_id);
  ASSERT_EQ(named.merged_profiles.size(), 1u);
  EXPECT_EQ(named.merged_profiles[0], third.profile_id);
}

TEST_F(IdentityEngineTest, ManualMergeCombinesTheGoldenRecord) {
  Json a = Unwrap(profiles().Create(J(R"({"externalIds":{"email":"a@x.com"},
      "attributes":{"firstName":"Ada","city":"London","tags":["vip"],"customFields":{"tier":"gold"}},
      "consent":{"email":true,"sms":true}})")));
  Json b = Unwrap(profiles().Create(J(R"({"externalIds":{"phone":"+16502530000"},
      "attributes":{"firstName":"Adeline","country":"GB","tags":["newsletter","vip"],"customFields":{"tier":"silver","size":"M"}},
      "consent":{"email":false}})")));
  const std::string ida = a.Find("id")->as_string(), idb = b.Find("id")->as_string();
  Track(R"({"type":"purchase","profileId":")" + ida + R"(","properties":{"revenue":5}})");
  Track(R"({"type":"purchase","profileId":")" + idb + R"(","properties":{"revenue":7}})");
  Json merged = Unwrap(identity().Merge({ida, idb}, "same person, confirmed by support"));
  EXPECT_EQ(merged.Find("profileId")->as_string(), ida);
  Json p = Unwrap(profiles().Get(idb));
  EXPECT_EQ(p.Find("id")->as_string(), ida);
  EXPECT_EQ(p.FindPath("attributes.firstName")->as_string(), "Ada");
  EXPECT_EQ(p.FindPath("attributes.country")->as_string(), "GB");
  EXPECT_EQ(p.FindPath("attributes.tags")->size(), 2u);
  EXPECT_EQ(p.FindPath("attributes.customFields.size")->as_string(), "M");
  EXPECT_EQ(p.FindPath("attributes.customFields.tier")->as_string(), "gold");
  EXPECT_FALSE(p.FindPath("consent.email")->as_bool()) << "the most restrictive consent wins";
  EXPECT_TRUE(p.FindPath("consent.sms")->as_bool());
  EXPECT_DOUBLE_EQ(p.FindPath("computed.ltv")->as_number(), 12.0);
  EXPECT_EQ(p.FindPath("externalIds.phone")->as_string(), "+16502530000");
  const Json* conflicts = p.Find("conflicts");
  ASSERT_EQ(conflicts->size(), 2u) << p.Dump();
  EXPECT_EQ(conflicts->items()[0].Find("field")->as_string(), "attributes.firstName");
  EXPECT_EQ(conflicts->items()[0].Find("value")->as_string(), "Adeline");
  EXPECT_EQ(conflicts->items()[0].Find("profileId")->as_string(), idb);
  EXPECT_EQ(p.Find("mergedIds")->items()[0].as_string(), idb);
  Json why = Unwrap(identity().Explain(ida));
  EXPECT_EQ(why.FindPath("merges")->items()[0].Find("reason")->as_string(), "same person, confirmed by support");
  EXPECT_FALSE(why.FindPath("merges")->items()[0].Find("automatic")->as_bool());

  // Bad merges.
  EXPECT_TRUE(identity().Merge({ida, idb}, "").status().IsInvalidArgument()) << "already one profile";
  EXPECT_TRUE(identity().Merge({ida, "nobody"}, "").status().IsNotFound());
  EXPECT_EQ(identity().Merge({ida, "nobody"}, "").status().field(), "profileIds[1]");
  Json c1 = Unwrap(profiles().Create(J(R"({"externalIds":{"customerId":"X1"}})")));
  Json c2 = Unwrap(profiles().Create(J(R"({"externalIds":{"customerId":"X2"}})")));
  EXPECT_TRUE(
      identity().Merge({c1.Find("id")->as_string(), c2.Find("id")->as_string()}, "").status().IsFailedPrecondition())
      << "two customerIds break the limit of 1";
  EXPECT_EQ(identity().Merge({c1.Find("id")->as_string(), c2.Find("id")->as_string()}, "").status().field(),
            "profileIds");
}

TEST_F(IdentityEngineTest, MergeInsideOneBatchMovesTheBatchsEarlierEvents) {
  Unwrap(profiles().Create(J(R"({"id":"K","externalIds":{"email":"k@x.com"}})")));
  std::vector<Json> batch = {
      J(R"({"type":"page_view","anonymousId":"z","timestamp":"2026-01-01T00:00:00Z"})"),
      J(R"({"type":"page_view","anonymousId":"z","timestamp":"2026-01-01T00:01:00Z"})"),
      J(R"({"type":"page_view","anonymousId":"z","email":"k@x.com","timestamp":"2026-01-01T00:02:00Z"})"),
  };
  BatchResult r = Unwrap(events().TrackBatch(batch));
  ASSERT_EQ(r.accepted, 3u);
  EXPECT_EQ(r.items[2].result.profile_id, "K");
  EXPECT_EQ(EventCount("K"), 3u);
  EventQuery q;
  q.limit = 100;
  const std::vector<Json> stored = Unwrap(events().Query(q)).items;
  ASSERT_EQ(stored.size(), 3u);
  for (const Json& e : stored) EXPECT_EQ(e.Find("profileId")->as_string(), "K");
  // The two moved events say where they were first stored, and keep the session the batch gave them.
  const std::string anonymous = r.items[0].result.profile_id;
  EXPECT_NE(anonymous, "K");
  for (size_t i = 0; i < 3; ++i) {
    const Json* e = nullptr;
    for (const Json& s : stored) {
      if (s.Find("id")->as_string() == r.items[i].result.event_id) e = &s;
    }
    ASSERT_NE(e, nullptr) << i;
    EXPECT_EQ(e->Find("sessionId")->as_string(), r.items[i].result.session_id) << i;
    const Json* origin = e->Find("originProfileId");
    if (i < 2) {
      ASSERT_NE(origin, nullptr) << i;
      EXPECT_EQ(origin->as_string(), anonymous) << i;
    } else {
      EXPECT_EQ(origin, nullptr) << "the event that merged was stored under K";
    }
  }
  EXPECT_EQ(Unwrap(engine_->Stats()).Find("profiles")->as_int(), 1);
}

// A batch large enough that its events' stored documents are written on two threads (IngestContext::StoreEvents),
// with live segments (so the segment index keeps what it needs of each event) and a merge part-way that moves 100
// of the batch's events: every event is stored with its own properties, session and final profile, and the index
// counts every one.
TEST_F(IdentityEngineTest, ALargeBatchWithAMergeStoresEveryEventAsItsOwn) {
  Unwrap(profiles().Create(J(R"({"id":"K","externalIds":{"email":"k@x.com"}})")));
  Unwrap(profiles().Create(J(R"({"id":"P","externalIds":{"customerId":"p-1"}})")));
  auto segment = [&](const std::string& name, const std::string& rule) {
    return Unwrap(segments().Create(J(R"({"name":")" + name + R"(","rule":)" + rule + "}"))).Find("id")->as_string();
  };
  const std::string buyers150 = segment("buyers150", R"({"event":"purchase","count":{">=":150}})");
  const std::string buyers100 = segment("buyers100", R"({"event":"purchase","count":{">=":100}})");
  std::vector<Json> batch;
  auto event = [&](const std::string& type, const std::string& ids, size_t n) {
    batch.push_back(J(fmt::format(R"({{"type":"{}",{},"timestamp":"2026-01-01T{:02}:{:02}:{:02}Z","properties":)"
                                  R"({{"n":{},"revenue":1}}}})",
                                  type, ids, n / 3600, n / 60 % 60, n % 60, n)));
  };
  for (size_t n = 0; n < 150; ++n) event("purchase", R"("customerId":"p-1")", n);   // P's, no merge
  for (size_t n = 150; n < 250; ++n) event("purchase", R"("anonymousId":"z")", n);  // a new profile's
  event("page_view", R"("anonymousId":"z","email":"k@x.com")", 250);                // merges it into K
  for (size_t n = 251; n < 300; ++n) event("page_view", R"("email":"k@x.com")", n);
  BatchResult r = Unwrap(events().TrackBatch(batch));
  ASSERT_EQ(r.accepted, 300u);
  const std::string anonymous = r.items[150].result.profile_id;
  ASSERT_NE(anonymous, "K");
  EventQuery q;
  q.limit = 1000;
  std::map<std::string, Json> stored;
  for (const Json& e : Unwrap(events().Query(q)).items) stored.emplace(e.Find("id")->as_string(), e);
  ASSERT_EQ(stored.size(), 300u);
  for (size_t n = 0; n < 300; ++n) {
    auto it = stored.find(r.items[n].result.event_id);
    ASSERT_NE(it, stored.end()) << n;
    const Json& e = it->second;
    EXPECT_EQ(e.FindPath("properties.n")->as_int(), static_cast<int64_t>(n)) << n;
    EXPECT_EQ(e.Find("sessionId")->as_string(), r.items[n].result.session_id) << n;
    EXPECT_EQ(e.Find("profileId")->as_string(), n < 150 ? "P" : "K") << n;
    const Json* origin = e.Find("originProfileId");
    if (n >= 150 && n < 250) {
      ASSERT_NE(origin, nullptr) << n;
      EXPECT_EQ(origin->as_string(), anonymous) << n;
    } else {
      EXPECT_EQ(origin, nullptr) << n;
    }
  }
  EXPECT_EQ(EventCount("P"), 150u);
  EXPECT_EQ(EventCount("K"), 150u);
  // The segment index counted each purchase once, where it now belongs.
  auto members = [&](const std::string& id) {
    std::set<std::string> out;
    for (const Json& m : Unwrap(segments().Members(id, 100, "")).items) out.insert(m.Find("id")->as_string());
    return out;
  };
  EXPECT_EQ(members(buyers150), std::set<std::string>{"P"});
  EXPECT_EQ(members(buyers100), (std::set<std::string>{"K", "P"}));
}

// A retry of an event that a merge in the same batch moves. A batch is resolved in event-time order, so a retry
// sorts beside its original: when the merging event is earlier than both, or at the same time and before the retry,
// the retry is resolved after the merge and is found under the survivor (the batch's keys move with the events);
// when it is later, the retry is resolved before the merge and reports what its original reports. Either way the
// retry names the original event and session, a retry in the next call finds the event under the survivor, and the
// event is stored and counted once.
TEST_F(IdentityEngineTest, ARetryOfAnEventMovedInTheSameBatchIsADuplicate) {
  int round = 0;
  for (const char* merge_time : {"2026-01-01T00:00:00Z", "2026-01-01T00:01:00Z"}) {
    SCOPED_TRACE(merge_time);
    ++round;
    const std::string survivor = fmt::format("K{}", round);
    Unwrap(
        profiles().Create(J(fmt::format(R"({{"id":"{}","externalIds":{{"email":"k{}@x.com"}}}})", survivor, round))));
    const std::string original = fmt::format(R"({{"id":"m-{}","type":"purchase","anonymousId":"z{}",)"
                                             R"("timestamp":"2026-01-01T00:00:00Z","properties":{{"revenue":5}}}})",
                                             round, round);
    BatchResult r = Unwrap(events().TrackBatch({
        J(original),
        J(fmt::format(R"({{"type":"page_view","anonymousId":"z{}","email":"k{}@x.com","timestamp":"{}"}})", round,
                      round, merge_time)),
        J(original),
    }));
    ASSERT_EQ(r.items.size(), 3u);
    for (const auto& item : r.items) ASSERT_TRUE(item.status.ok()) << item.status.ToString();
    const TrackResult& first = r.items[0].result;
    EXPECT_FALSE(first.duplicate);
    ASSERT_NE(first.profile_id, survivor);
    EXPECT_EQ(r.items[1].result.profile_id, survivor);
    const bool merged_before_retry = round == 1;
    TrackResult next = Track(original);
    for (const TrackResult* retry : {&r.items[2].result, &next}) {
      const bool after_merge = retry == &next || merged_before_retry;
      EXPECT_TRUE(retry->duplicate);
      EXPECT_EQ(retry->profile_id, after_merge ? survivor : first.profile_id)
          << (retry == &next ? "next call" : "batch");
      EXPECT_EQ(retry->event_id, first.event_id);
      EXPECT_EQ(retry->session_id, first.session_id);
    }
    EXPECT_EQ(EventCount(survivor), 2u);
    Json k = Unwrap(profiles().Get(survivor));
    EXPECT_EQ(k.FindPath("computed.purchaseCount")->as_int(), 1);
    EXPECT_EQ(k.FindPath("computed.ltv")->as_number(), 5);
    EXPECT_EQ(Unwrap(engine_->Stats()).Find("events")->as_int(), 2 * round);
  }
}

TEST_F(IdentityEngineTest, ErasingASurvivorErasesWhatWasMergedIntoIt) {
  TrackResult anon = Track(R"({"type":"page_view","anonymousId":"v-1","properties":{"secret":"canary-123"}})");
  Unwrap(profiles().Create(J(R"({"id":"S","externalIds":{"email":"s@x.com"}})")));
  TrackResult login = Track(R"({"type":"page_view","anonymousId":"v-1","email":"s@x.com"})");
  ASSERT_EQ(login.profile_id, "S");
  ASSERT_TRUE(profiles().Delete(anon.profile_id).ok()) << "a merged id erases its survivor";
  EXPECT_TRUE(profiles().Get("S").status().IsNotFound());
  EXPECT_TRUE(profiles().Get(anon.profile_id).status().IsNotFound());
  EXPECT_TRUE(identity().Explain("S").status().IsNotFound());
  EXPECT_EQ(Unwrap(engine_->Stats()).Find("profiles")->as_int(), 0);
  EXPECT_EQ(Unwrap(engine_->Stats()).Find("events")->as_int(), 0);
  EXPECT_EQ(Unwrap(identity().Stats()).Find("merges")->as_int(), 0);
  // The identifiers, the merged profile's included, are suppressed; lifted, they are free again.
  EXPECT_TRUE(Unwrap(engine_->gdpr().IsSuppressed("anonymousId", "v-1")));
  EXPECT_TRUE(Unwrap(engine_->gdpr().IsSuppressed("email", "s@x.com")));
  Unwrap(engine_->gdpr().Unsuppress("anonymousId", "v-1"));
  EXPECT_TRUE(Track(R"({"type":"page_view","anonymousId":"v-1"})").profile_created);
}

TEST_F(IdentityEngineTest, RulesAreValidatedStoredAndApplied) {
  Json bad = J(R"({"identifiers":[{"type":"email"}]})");
  auto r = identity().SetRules(bad);
  EXPECT_TRUE(r.status().IsInvalidArgument());
  EXPECT_EQ(r.status().field(), "identifiers");
  Json rules = Unwrap(identity().Rules());
  rules.Find("identifiers")->Push(J(R"({"type":"loyaltyId","limit":1})"));
  rules.Find("identifiers")->items()[1].Set("canonicalGmail", true);
  Unwrap(identity().SetRules(rules));
  Reopen();
  EXPECT_EQ(Unwrap(identity().Rules()), Unwrap(identity().SetRules(rules)));
  // A custom type, in an event's "identifiers" and a profile's externalIds.
  Json p = Unwrap(profiles().Create(J(R"({"externalIds":{"loyaltyId":"L-1"}})")));
  TrackResult t = Track(R"({"type":"page_view","identifiers":{"loyaltyId":"L-1"},"email":"J.Doe+x@gmail.com"})");
  EXPECT_EQ(t.profile_id, p.Find("id")->as_string());
  EXPECT_EQ(Unwrap(profiles().Get(t.profile_id)).FindPath("externalIds.email")->as_string(), "jdoe@gmail.com");
}

TEST_F(IdentityEngineTest, MergesWaitForEventBatchesInFlight) {
  // Writers stream events for an anonymous profile while another thread identifies it: no event may be left
  // behind under the merged id.
  Unwrap(profiles().Create(J(R"({"id":"T","externalIds":{"email":"t@x.com"}})")));
  Track(R"({"type":"page_view","anonymousId":"w"})");
  std::thread writer([&] {
    for (int i = 0; i < 50; ++i) {
      std::vector<Json> batch;
      for (int k = 0; k < 20; ++k) batch.push_back(J(R"({"type":"page_view","anonymousId":"w"})"));
      Unwrap(events().TrackBatch(batch));
    }
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  Track(R"({"type":"page_view","anonymousId":"w","email":"t@x.com"})");
  writer.join();
  EXPECT_EQ(Unwrap(engine_->Stats()).Find("events")->as_int(), 1002);
  EventQuery q;
  q.limit = 1000;
  size_t on_t = 0;
  for (std::string cursor;;) {
    q.cursor = cursor;
    Page page = Unwrap(profiles().Timeline("T", q));
    on_t += page.items.size();
    if (page.next_cursor.empty()) break;
    cursor = page.next_cursor;
  }
  EXPECT_EQ(on_t, 1002u);
}

TEST_F(IdentityEngineTest, IdentifyLinksIdentifiersAndSetsTraits) {
  TrackResult anon = Track(R"({"type":"page_view","anonymousId":"seg-anon"})");
  Json r = Unwrap(identity().Identify(J(R"({"identifiers":{"anonymousId":"seg-anon","userId":"U-1"},
      "attributes":{"firstName":"Grace","customFields":{"plan":"pro"}},"consent":{"email":true}})")));
  EXPECT_EQ(r.Find("profileId")->as_string(), anon.profile_id) << r.Dump();
  EXPECT_FALSE(r.Find("profileCreated")->as_bool());
  Json p = Unwrap(profiles().Get(anon.profile_id));
  EXPECT_EQ(p.FindPath("externalIds.customerId")->as_string(), "U-1");
  EXPECT_EQ(p.FindPath("attributes.firstName")->as_string(), "Grace");
  EXPECT_EQ(p.FindPath("attributes.customFields.plan")->as_string(), "pro");
  EXPECT_TRUE(p.FindPath("consent.email")->as_bool());
  // A second device of the same user: the identify merges its anonymous profile in.
  TrackResult other = Track(R"({"type":"page_view","anonymousId":"seg-anon-2"})");
  Json r2 = Unwrap(identity().Identify(J(R"({"identifiers":{"anonymousId":"seg-anon-2","userId":"U-1"}})")));
  EXPECT_EQ(r2.Find("profileId")->as_string(), anon.profile_id);
  ASSERT_NE(r2.Find("mergedProfiles"), nullptr) << r2.Dump();
  EXPECT_EQ(r2.Find("mergedProfiles")->items()[0].as_string(), other.profile_id);
  // Bad input names the field and writes nothing.
  const int64_t profiles_before = Unwrap(engine_->Stats()).Find("profiles")->as_int();
  auto bad = identity().Identify(J(R"({"identifiers":{"userId":"U-2"},"attributes":{"firstName":3}})"));
  EXPECT_TRUE(bad.status().IsInvalidArgument());
  EXPECT_EQ(bad.status().field(), "attributes.firstName");
  EXPECT_EQ(identity().Identify(J(R"({"identifiers":{"userId":7}})")).status().field(), "identifiers.userId");
  EXPECT_EQ(identity().Identify(J(R"({"traits":{}})")).status().field(), "traits");
  EXPECT_EQ(identity().Identify(J(R"({"attributes":{}})")).status().field(), "identifiers");
  // No usable identifier and no profileId (a blocked value, an unregistered type): each call would create a new,
  // empty profile, so it is refused as such an event is, twice in a row.
  for (int round = 0; round < 2; ++round) {
    auto blocked = identity().Identify(J(R"({"identifiers":{"anonymousId":"anonymous"},"attributes":{"city":"X"}})"));
    EXPECT_TRUE(blocked.status().IsInvalidArgument()) << blocked.status().ToString();
    EXPECT_EQ(blocked.status().field(), "identifiers.anonymousId");  // where the request gave it
    EXPECT_NE(blocked.status().message().find("no usable identifier"), std::string::npos);
    auto unregistered = identity().Identify(J(R"({"identifiers":{"bogusType":"x"}})"));
    EXPECT_TRUE(unregistered.status().IsInvalidArgument()) << unregistered.status().ToString();
  }
  EXPECT_EQ(Unwrap(engine_->Stats()).Find("profiles")->as_int(), profiles_before);
  // With a profileId the same identify names its profile: accepted, the blocked value not linked.
  Json named = Unwrap(identity().Identify(
      J(fmt::format(R"({{"profileId":"{}","identifiers":{{"anonymousId":"anonymous"}}}})", anon.profile_id))));
  EXPECT_EQ(named.Find("profileId")->as_string(), anon.profile_id);
  EXPECT_EQ(Unwrap(engine_->Stats()).Find("profiles")->as_int(), profiles_before);
}

TEST_F(IdentityEngineTest, NewIdentifiersLinkedTogetherFillEachAttributeOnce) {
  // One event brings four new identifiers: all are linked, and the email and phone fill their attributes.
  TrackResult first = Track(R"({"type":"page_view","customerId":"C-L","email":"Lin@Example.com",
      "phone":"+1 (650) 253-0000","deviceId":"d-1","source":"web","timestamp":"2026-03-01T10:00:00Z"})");
  ASSERT_TRUE(first.profile_created);
  Json p = Unwrap(profiles().Get(first.profile_id));
  EXPECT_EQ(p.FindPath("externalIds.customerId")->as_string(), "C-L") << p.Dump();
  EXPECT_EQ(p.FindPath("attributes.email")->as_string(), "lin@example.com");
  EXPECT_EQ(p.FindPath("attributes.phone")->as_string(), "+16502530000");
  EXPECT_EQ(p.FindPath("attributeSources")->Find("attributes.email")->Find("source")->as_string(), "web");
  EXPECT_EQ(p.FindPath("attributeSources")->Find("attributes.phone")->Find("source")->as_string(), "web");
  for (const char* id :
       {R"("customerId":"C-L")", R"("email":"LIN@example.com")", R"("phone":"6502530000")", R"("deviceId":"d-1")"}) {
    EXPECT_EQ(Track(std::string(R"({"type":"page_view",)") + id + "}").profile_id, first.profile_id) << id;
  }
  // A second email and a second device, linked by one identify: the email attribute keeps the first value.
  Unwrap(identity().Identify(J(R"({"identifiers":{"customerId":"C-L","email":"lin2@example.com",
      "deviceId":"d-2"}})")));
  p = Unwrap(profiles().Get(first.profile_id));
  EXPECT_EQ(p.FindPath("attributes.email")->as_string(), "lin@example.com") << p.Dump();
  const std::string ids = p.Find("externalIds")->Dump();
  for (const char* v : {"lin@example.com", "lin2@example.com", "d-1", "d-2", "+16502530000"}) {
    EXPECT_NE(ids.find(v), std::string::npos) << v << " in " << ids;
  }
  EXPECT_EQ(Track(R"({"type":"page_view","email":"lin2@example.com"})").profile_id, first.profile_id);
  EXPECT_EQ(Track(R"({"type":"page_view","deviceId":"d-2"})").profile_id, first.profile_id);
}

TEST_F(IdentityEngineTest, UnmergeRestoresProfilesIdentifiersEventsAndTraits) {
  // A wrong merge: a shared family email glued two people together.
  Json a = Unwrap(profiles().Create(J(R"({"externalIds":{"customerId":"A","email":"fam@x.com"},
      "attributes":{"firstName":"Ann","tags":["a"]},"consent":{"email":true}})")));
  const std::string ida = a.Find("id")->as_string();
  TrackResult b1 = Track(R"({"type":"purchase","deviceId":"dev-b","timestamp":"2026-02-01T00:00:00Z",
                              "properties":{"revenue":20}})");
  Unwrap(profiles().Patch(b1.profile_id, J(R"({"attributes":{"firstName":"Ben","city":"Oslo","tags":["b"]},
                                                "consent":{"email":false}})")));
  Track(R"({"type":"purchase","customerId":"A","timestamp":"2026-02-02T00:00:00Z","properties":{"revenue":5}})");
  TrackResult glue = Track(R"({"type":"page_view","deviceId":"dev-b","email":"fam@x.com",
                                "timestamp":"2026-02-03T00:00:00Z"})");
  ASSERT_EQ(glue.profile_id, ida);
  ASSERT_EQ(glue.merged_profiles, std::vector<std::string>{b1.profile_id});
  // After the merge: an event for B's device (lands on A), and a change to A.
  Track(R"({"type":"purchase","deviceId":"dev-b","timestamp":"2026-02-04T00:00:00Z","properties":{"revenue":7}})");
  Unwrap(profiles().Patch(ida, J(R"({"attributes":{"lastName":"Smith"}})")));
  Json merged = Unwrap(profiles().Get(ida));
  EXPECT_DOUBLE_EQ(merged.FindPath("computed.ltv")->as_number(), 32.0);
  EXPECT_EQ(merged.FindPath("attributes.city")->as_string(), "Oslo");
  EXPECT_FALSE(merged.FindPath("consent.email")->as_bool());

  Json undone = Unwrap(identity().Unmerge(ida, glue.merge_id));
  EXPECT_EQ(undone.Find("restored")->items()[0].as_string(), b1.profile_id);
  Json pa = Unwrap(profiles().Get(ida));
  Json pb = Unwrap(profiles().Get(b1.profile_id));
  EXPECT_EQ(pb.Find("id")->as_string(), b1.profile_id) << "B is its own profile again";
  EXPECT_EQ(pb.FindPath("attributes.firstName")->as_string(), "Ben");
  EXPECT_EQ(pb.FindPath("externalIds.deviceIds")->items()[0].as_string(), "dev-b");
  EXPECT_EQ(pa.FindPath("externalIds.deviceIds"), nullptr) << pa.Dump();
  EXPECT_EQ(pa.FindPath("attributes.city"), nullptr) << "what the merge brought in is gone";
  EXPECT_EQ(pa.FindPath("attributes.lastName")->as_string(), "Smith") << "later changes stay";
  EXPECT_EQ(pa.FindPath("attributes.tags")->size(), 1u);
  EXPECT_TRUE(pa.FindPath("consent.email")->as_bool()) << "A's consent is A's again";
  EXPECT_EQ(pa.Find("conflicts")->size(), 0u);
  EXPECT_EQ(pa.Find("mergedIds")->size(), 0u);
  // Events: B's purchase before the merge and the one after it (it carries B's device) go back to B; the event
  // that glued them carries the email (higher priority than the device), which stays with A.
  EXPECT_EQ(EventCount(ida), 2u);
  EXPECT_EQ(EventCount(b1.profile_id), 2u);
  EXPECT_DOUBLE_EQ(pa.FindPath("computed.ltv")->as_number(), 5.0);
  EXPECT_DOUBLE_EQ(pb.FindPath("computed.ltv")->as_number(), 27.0);
  EXPECT_EQ(pb.FindPath("computed.eventCount")->as_int(), 2);
  // Identifiers resolve to their own people again.
  EXPECT_EQ(Track(R"({"type":"page_view","deviceId":"dev-b"})").profile_id, b1.profile_id);
  EXPECT_EQ(Track(R"({"type":"page_view","customerId":"A"})").profile_id, ida);
  // The history shows both.
  Json why = Unwrap(identity().Explain(ida));
  EXPECT_NE(why.Find("merges")->items()[0].Find("unmergedAt"), nullptr);
  EXPECT_EQ(Unwrap(identity().Stats()).Find("unmerges")->as_int(), 1);
  EXPECT_EQ(Unwrap(engine_->Stats()).Find("profiles")->as_int(), 2);
  // Errors.
  EXPECT_TRUE(identity().Unmerge(ida, glue.merge_id).status().IsFailedPrecondition());
  EXPECT_TRUE(identity().Unmerge(ida, "mrg_nothing").status().IsNotFound());
  Reopen();
  EXPECT_EQ(Unwrap(profiles().Get(b1.profile_id)).Find("id")->as_string(), b1.profile_id);
}

// An identifier an event linked to the survivor after the merge follows that event: without the merge, the event
// (it carries the merged person's device) would have gone to the merged person, with its new email. One linked
// by an identify, or by an event the survivor keeps, stays with the survivor.
TEST_F(IdentityEngineTest, UnmergeSendsIdentifiersLinkedSinceWithTheEventsThatBroughtThem) {
  const std::string x =
      Track(R"({"type":"page_view","customerId":"UX","timestamp":"2026-02-01T00:00:00Z"})").profile_id;
  const std::string y = Track(R"({"type":"purchase","deviceId":"phone-y","timestamp":"2026-02-01T01:00:00Z",
                                   "properties":{"value":7}})")
                            .profile_id;
  ASSERT_NE(x, y);
  const std::string merge_id = Unwrap(identity().Merge({x, y}, "test")).Find("mergeId")->as_string();
  TrackResult later = Track(R"({"type":"purchase","deviceId":"phone-y","email":"ylater@x.com",
                                 "timestamp":"2026-02-02T00:00:00Z","properties":{"value":50}})");
  ASSERT_EQ(later.profile_id, x);
  // A later event repeats the new email only: it follows the email, wherever that goes.
  Track(R"({"type":"page_view","email":"ylater@x.com","timestamp":"2026-02-03T00:00:00Z"})");
  // Linked since by X's own event, and by an identify: both stay with X.
  Track(R"({"type":"page_view","customerId":"UX","email":"x-new@x.com","timestamp":"2026-02-04T00:00:00Z"})");
  Unwrap(identity().Identify(J(R"({"identifiers":{"customerId":"UX","phone":"+16502530001"}})")));

  Unwrap(identity().Unmerge(x, merge_id));
  Json px = Unwrap(profiles().Get(x));
  Json py = Unwrap(profiles().Get(y));
  ASSERT_NE(py.FindPath("externalIds.email"), nullptr) << "the email stayed with the survivor: " << px.Dump();
  EXPECT_EQ(*py.FindPath("externalIds.email"), J(R"("ylater@x.com")")) << py.Dump();
  EXPECT_EQ(*py.FindPath("externalIds.deviceIds"), J(R"(["phone-y"])")) << py.Dump();
  EXPECT_EQ(px.FindPath("externalIds.email")->as_string(), "x-new@x.com") << px.Dump();
  EXPECT_EQ(px.FindPath("externalIds.phone")->as_string(), "+16502530001") << px.Dump();
  EXPECT_DOUBLE_EQ(py.FindPath("computed.ltv")->as_number(), 57.0);
  EXPECT_EQ(py.FindPath("computed.eventCount")->as_int(), 3);
  EXPECT_DOUBLE_EQ(px.FindPath("computed.ltv")->as_number(), 0.0);
  EXPECT_EQ(px.FindPath("computed.eventCount")->as_int(), 2);
  // They resolve there, and say why.
  EXPECT_EQ(Track(R"({"type":"page_view","email":"ylater@x.com"})").profile_id, y);
  EXPECT_EQ(Track(R"({"type":"page_view","email":"x-new@x.com"})").profile_id, x);
  Json why = Unwrap(identity().Explain(y));
  bool explained = false;
  for (const Json& id : why.Find("identifiers")->items()) {
    if (id.Find("value")->as_string() == "ylater@x.com") {
      explained = id.Find("evidence")->as_string() == "unmerge " + merge_id;
    }
  }
  EXPECT_TRUE(explained) << why.Dump();
}

TEST_F(IdentityEngineTest, UnmergeOfAMergedSurvivorAsksForTheLaterMergeFirst) {
  Unwrap(profiles().Create(J(R"({"id":"P1"})")));
  Unwrap(profiles().Create(J(R"({"id":"P2"})")));
  Unwrap(profiles().Create(J(R"({"id":"P3"})")));
  std::string first = Unwrap(identity().Merge({"P2", "P3"}, "")).Find("mergeId")->as_string();
  std::string second = Unwrap(identity().Merge({"P1", "P2"}, "")).Find("mergeId")->as_string();
  auto blocked = identity().Unmerge("P2", first);
  EXPECT_TRUE(blocked.status().IsFailedPrecondition()) << blocked.status().ToString();
  Unwrap(identity().Unmerge("P1", second));
  Unwrap(identity().Unmerge("P2", first));
  for (const char* id : {"P1", "P2", "P3"}) EXPECT_EQ(Unwrap(profiles().Get(id)).Find("id")->as_string(), id);
}

}  // namespace
}  // namespace cdp

namespace cdp {
namespace {

TEST_F(IdentityEngineTest, DryRunShowsWhatNewRulesWouldMergeOrSplitAndChangesNothing) {
  Json a = Unwrap(profiles().Create(J(R"({"externalIds":{"email":"j.doe+x@gmail.com"}})")));
  Json b = Unwrap(profiles().Create(J(R"({"externalIds":{"email":"jdoe@gmail.com"}})")));
  Json c = Unwrap(profiles().Create(J(R"({"externalIds":{"customerId":"vip-1","deviceIds":["d1","d2","d3"]}})")));
  Json d = Unwrap(profiles().Create(J(R"({"externalIds":{"customerId":"C-2","email":"c2@gmail.com"}})")));
  Json e = Unwrap(profiles().Create(J(R"({"externalIds":{"customerId":"C-3","email":"c.2@gmail.com"}})")));
  Json rules = Unwrap(identity().Rules());
  Json next = rules;
  for (Json& rule : next.Find("identifiers")->items()) {
    const std::string type = rule.Find("type")->as_string();
    if (type == "email") rule.Set("canonicalGmail", true);
    if (type == "deviceId") rule.Set("limit", 1);
    if (type == "customerId") rule.Set("blocked", Json::Array().Push("^vip-.*$"));
  }
  Json dry = Unwrap(identity().DryRunRules(next));
  ASSERT_EQ(dry.Find("wouldMerge")->size(), 1u) << dry.Dump();
  const Json& merge = dry.Find("wouldMerge")->items()[0];
  EXPECT_EQ(merge.FindPath("identifier.value")->as_string(), "jdoe@gmail.com");
  EXPECT_EQ(merge.Find("profileIds")->size(), 2u);
  ASSERT_EQ(dry.Find("mergeBlocked")->size(), 1u) << "C-2 and C-3 would share c2@gmail.com but two customerIds";
  EXPECT_NE(dry.Find("mergeBlocked")->items()[0].Find("reason")->as_string().find("customerId"), std::string::npos);
  int device_unlinks = 0, blocked_unlinks = 0;
  for (const Json& u : dry.Find("wouldUnlink")->items()) {
    EXPECT_EQ(u.Find("profileId")->as_string(), c.Find("id")->as_string());
    device_unlinks += u.FindPath("identifier.type")->as_string() == "deviceId";
    blocked_unlinks += u.Find("reason")->as_string().rfind("blocked", 0) == 0;
  }
  EXPECT_EQ(device_unlinks, 2);
  EXPECT_EQ(blocked_unlinks, 1);
  // Nothing changed.
  EXPECT_EQ(Unwrap(identity().Rules()), rules);
  EXPECT_EQ(Unwrap(profiles().Get(c.Find("id")->as_string())).FindPath("externalIds.deviceIds")->size(), 3u);
  EXPECT_NE(Unwrap(profiles().Get(a.Find("id")->as_string())).Find("id")->as_string(), b.Find("id")->as_string());
  EXPECT_TRUE(identity().DryRunRules(J(R"({"identifiers":[]})")).status().IsInvalidArgument());
  (void)d;
  (void)e;
}

}  // namespace
}  // namespace cdp

namespace cdp {
namespace {

TEST_F(IdentityEngineTest, IdentifyBatchResolvesInOrderAndRejectsItemsAlone) {
  std::vector<Json> batch = {
      J(R"({"identifiers":{"userId":"B1","email":"b1@x.com"},"attributes":{"firstName":"Bo"}})"),
      J(R"({"identifiers":{"userId":"B2"},"attributes":{"firstName":7}})"),  // rejected
      J(R"({"identifiers":{"email":"b1@x.com","anonymousId":"anon-b1"},"attributes":{"city":"Rome"}})"),
      J(R"({"identifiers":{"userId":"B3","phone":"+1 650 253 0000"}})"),
      J(R"({"identifiers":{"anonymousId":"undefined"}})"),  // rejected: no usable identifier
  };
  Json r = Unwrap(identity().IdentifyBatch(batch));
  EXPECT_EQ(r.Find("accepted")->as_int(), 3);
  EXPECT_EQ(r.Find("rejected")->as_int(), 2);
  const auto& items = r.Find("results")->items();
  EXPECT_EQ(items[1].FindPath("error.field")->as_string(), "attributes.firstName");
  EXPECT_EQ(items[4].FindPath("error.field")->as_string(), "identifiers.anonymousId");
  EXPECT_EQ(items[4].FindPath("error.code")->as_string(), "invalid_argument");
  EXPECT_EQ(items[2].Find("profileId")->as_string(), items[0].Find("profileId")->as_string())
      << "the third item finds the person the first one created";
  Json p = Unwrap(profiles().Get(items[0].Find("profileId")->as_string()));
  EXPECT_EQ(p.FindPath("attributes.firstName")->as_string(), "Bo");
  EXPECT_EQ(p.FindPath("attributes.city")->as_string(), "Rome");
  EXPECT_EQ(p.FindPath("externalIds.anonymousId")->as_string(), "anon-b1");
  EXPECT_EQ(Unwrap(engine_->Stats()).Find("profiles")->as_int(), 2);
  EXPECT_TRUE(identity().IdentifyBatch(std::vector<Json>(10001, J("{}"))).status().IsInvalidArgument());
}

// 300 identify records of new people (userId F0..F299): a batch large enough to publish its links on a second
// thread while it is written.
std::vector<Json> NewPeopleBatch() {
  std::vector<Json> batch;
  for (int i = 0; i < 300; ++i) {
    batch.push_back(J(fmt::format(R"({{"identifiers":{{"userId":"F{0}","email":"f{0}@x.com"}}}})", i)));
  }
  return batch;
}

// Writes NewPeopleBatch() and checks that every record created a stored profile and that a later event of F7 finds
// its profile (no cached link of a failed write points elsewhere).
void ExpectNewPeopleWritten(Identity& identity, Profiles& profiles, Events& events) {
  Json r = Unwrap(identity.IdentifyBatch(NewPeopleBatch()));
  const auto& items = r.Find("results")->items();
  ASSERT_EQ(items.size(), 300u);
  for (const Json& item : items) {
    ASSERT_EQ(item.Find("status")->as_string(), "ok") << item.Dump();
    EXPECT_TRUE(item.Find("profileCreated") != nullptr && item.Find("profileCreated")->as_bool()) << item.Dump();
    EXPECT_TRUE(profiles.Get(item.Find("profileId")->as_string()).ok()) << item.Dump();
  }
  TrackResult t = Unwrap(events.Track(J(R"({"type":"page_view","userId":"F7","timestamp":"2026-03-01T10:00:00Z"})")));
  EXPECT_EQ(t.profile_id, items[7].Find("profileId")->as_string());
  EXPECT_FALSE(t.profile_created);
}

// A large identify batch written under the write lock (here because segments are tracked) caches its links while
// it is written (on a second thread): a failed write must leave no cached link to a profile that was never
// written, and the engine stays writable (nothing else was built on the batch).
TEST_F(IdentityEngineTest, AFailedIdentifyBatchUnderTheLockLeavesNoLinkToAProfileThatWasNotWritten) {
  Unwrap(engine_->segments().Create(J(R"({"name": "buyers", "rule": {"event": "purchase", "count": {">=": 1}}})")));
  {
    storage::ScopedWriteFailures fail(1);
    EXPECT_EQ(identity().IdentifyBatch(NewPeopleBatch()).status().code(), StatusCode::kUnavailable);
  }
  ExpectNewPeopleWritten(identity(), profiles(), events());
}

// The same batch written in flight (after the write lock is released, its links published for later batches):
// after its failure the engine refuses writes until reopened, and nothing of it was stored.
TEST_F(IdentityEngineTest, AFailedIdentifyBatchLeavesNoLinkToAProfileThatWasNotWritten) {
  {
    storage::ScopedWriteFailures fail(1);
    EXPECT_EQ(identity().IdentifyBatch(NewPeopleBatch()).status().code(), StatusCode::kUnavailable);
  }
  auto refused = identity().IdentifyBatch(NewPeopleBatch());
  EXPECT_EQ(refused.status().code(), StatusCode::kUnavailable) << refused.status().ToString();
  EXPECT_NE(refused.status().message().find("reopen"), std::string::npos) << refused.status().ToString();
  Reopen();
  EXPECT_EQ(Unwrap(identity().Stats()).Find("profiles")->as_int(), 0);
  ExpectNewPeopleWritten(identity(), profiles(), events());
}

// Batches from two threads, each written after the write lock is released while the other thread's next batch is
// built on what it changed: a person's record in one batch attaches to the profile another batch created or
// updated, still in flight. Every person stays one profile, and no batch's attribute is lost (a batch that read a
// document older than one in flight, or was written before it, would drop the other's customFields key).
TEST_F(IdentityEngineTest, ConcurrentIdentifyBatchesBuildOnEachOthersDocumentsInFlight) {
  constexpr int kPersons = 150, kBatches = 24, kPerBatch = 100;
  auto person_of = [](int b, int k) { return (b * 37 + k * 7) % kPersons; };
  auto run = [&](int first) {
    for (int b = first; b < kBatches; b += 2) {
      std::vector<Json> batch;
      for (int k = 0; k < kPerBatch; ++k) {
        const int p = person_of(b, k);
        batch.push_back(J(fmt::format(
            R"({{"identifiers":{{"userId":"U{0}","email":"u{0}@x.com"}},"attributes":{{"customFields":{{"b{1}":{2}}}}}}})",
            p, b, k)));
      }
      Json r = Unwrap(identity().IdentifyBatch(batch));
      EXPECT_EQ(r.Find("rejected")->as_int(), 0) << r.Dump().substr(0, 300);
    }
  };
  std::thread other(run, 1);
  run(0);
  other.join();

  EXPECT_EQ(Unwrap(identity().Stats()).Find("profiles")->as_int(), kPersons);
  std::map<int, std::map<std::string, int>> expected;  // person -> customFields
  for (int b = 0; b < kBatches; ++b) {
    for (int k = 0; k < kPerBatch; ++k) expected[person_of(b, k)][fmt::format("b{}", b)] = k;
  }
  for (const auto& [p, fields] : expected) {
    TrackResult t =
        Track(fmt::format(R"({{"type":"page_view","userId":"U{}","timestamp":"2026-03-01T10:00:00Z"}})", p));
    ASSERT_FALSE(t.profile_created) << p;
    Json doc = Unwrap(profiles().Get(t.profile_id));
    EXPECT_EQ(doc.FindPath("externalIds.email")->as_string(), fmt::format("u{}@x.com", p));
    const Json* custom = doc.FindPath("attributes.customFields");
    ASSERT_NE(custom, nullptr) << doc.Dump();
    EXPECT_EQ(custom->size(), fields.size()) << p << ": " << custom->Dump();
    for (const auto& [key, k] : fields) {
      const Json* v = custom->Find(key);
      ASSERT_NE(v, nullptr) << p << " lost " << key << ": " << custom->Dump();
      EXPECT_EQ(v->as_int(), k) << p << " " << key;
    }
  }
  // The same after a reopen: what was acknowledged is what storage holds.
  Reopen();
  EXPECT_EQ(Unwrap(identity().Stats()).Find("profiles")->as_int(), kPersons);
}

// Event batches from two threads that create and extend the same people's profiles while the other thread's
// batches are in flight: one thread's events carry an anonymousId and an email, the other's the same email and a
// customerId. Every person ends as one profile holding all three identifiers and every event.
TEST_F(IdentityEngineTest, ConcurrentEventBatchesCreateAndExtendProfilesInFlight) {
  constexpr int kPersons = 120, kBatches = 16, kPerBatch = 60;
  auto run = [&](bool web) {
    for (int b = 0; b < kBatches; ++b) {
      std::vector<Json> batch;
      for (int k = 0; k < kPerBatch; ++k) {
        const int p = (b * 23 + k * 11 + (web ? 0 : 7)) % kPersons;
        const std::string ids = web ? fmt::format(R"("anonymousId":"anon-{0}","email":"p{0}@x.com")", p)
                                    : fmt::format(R"("email":"p{0}@x.com","customerId":"C{0}")", p);
        batch.push_back(
            J(fmt::format(R"({{"type":"page_view",{},"timestamp":"2026-03-01T{:02}:{:02}:00Z"}})", ids, b, k)));
      }
      BatchResult r = Unwrap(events().TrackBatch(batch));
      EXPECT_EQ(r.rejected, 0u);
    }
  };
  std::thread other(run, false);
  run(true);
  other.join();

  EXPECT_EQ(Unwrap(identity().Stats()).Find("profiles")->as_int(), kPersons);
  std::map<std::string, int> profiles_seen;
  size_t events = 0;
  for (int p = 0; p < kPersons; ++p) {
    TrackResult t =
        Track(fmt::format(R"({{"type":"page_view","customerId":"C{}","timestamp":"2026-03-02T10:00:00Z"}})", p));
    ASSERT_FALSE(t.profile_created) << p;
    ++profiles_seen[t.profile_id];
    Json doc = Unwrap(profiles().Get(t.profile_id));
    EXPECT_EQ(doc.FindPath("externalIds.email")->as_string(), fmt::format("p{}@x.com", p)) << doc.Dump();
    ASSERT_NE(doc.FindPath("externalIds.anonymousId"), nullptr) << doc.Dump();
    events += EventCount(t.profile_id) - 1;
  }
  EXPECT_EQ(profiles_seen.size(), static_cast<size_t>(kPersons));  // no two people share a profile
  EXPECT_EQ(events, static_cast<size_t>(2 * kBatches * kPerBatch));
}

// Batches in flight that write the same profile's document are written in the order they were built: the second
// one, built on the first one's document while that one's write is slow, waits for it (else the first, written
// last, would put back a document without the second one's change).
TEST_F(IdentityEngineTest, BatchesInFlightAreWrittenInTheOrderTheyWereBuilt) {
  Json first = Unwrap(identity().Identify(J(R"({"identifiers":{"userId":"U1","email":"u1@x.com"}})")));
  const std::string id = first.Find("profileId")->as_string();
  std::promise<void> writing;
  std::thread slow([&] {
    storage::ScopedWriteDelay delay(1, std::chrono::milliseconds(300), [&] { writing.set_value(); });
    Unwrap(identity().IdentifyBatch({J(R"({"identifiers":{"userId":"U1"},"attributes":{"customFields":{"a":1}}})")}));
  });
  writing.get_future().wait();  // the slow batch is in flight: released the write lock, its write waiting
  Unwrap(identity().IdentifyBatch({J(R"({"identifiers":{"userId":"U1"},"attributes":{"customFields":{"b":2}}})")}));
  slow.join();
  for (int reopened = 0; reopened < 2; ++reopened) {
    Json doc = Unwrap(profiles().Get(id));
    ASSERT_NE(doc.FindPath("attributes.customFields.a"), nullptr) << doc.Dump();
    ASSERT_NE(doc.FindPath("attributes.customFields.b"), nullptr) << doc.Dump();
    EXPECT_EQ(doc.FindPath("attributes.customFields.b")->as_int(), 2);
    Reopen();
  }
}

// An identify that creates its profile builds the document from the patch in one go (the parts ApplyPlan put in
// the new document are moved, not re-derived). The document is the one an identify of an existing profile would
// build: person A is created with the patch; person B is created without it, then patched, at the same event time.
// Their profiles are the same but for the identifier values, ids and write times. Every other one also carries a
// blocked identifier value (an identity issue on the profile).
TEST_F(IdentityEngineTest, AnIdentifyThatCreatesItsProfileBuildsTheSameDocumentAsOneThatPatchesIt) {
  const std::string patches[] = {
      // some replace or remove the email or phone the identifiers filled in
      R"("attributes":{"firstName":"N"})",
      R"("attributes":{"email":"other@x.com","tags":["b","a","b"],"city":null,)"
      R"("customFields":{"tier":"gold","nested":{"k":1,"gone":null}}},)"
      R"("consent":{"email":true,"sms":false},"computed":{"churnRisk":0.5})",
      R"("consent":{"tracking":false})",
      R"("attributes":{"phone":"not a phone","lastName":"L"},"computed":{"engagementScore":7})",
      R"("attributes":{"lastName":"M","email":null,"customFields":{"gone":null}})",
      R"("attributes":{"tags":["x"],"phone":"+1 650 555 0100","firstName":"F"},"consent":{"email":false})",
  };
  int n = 0;
  for (const std::string& patch : patches) {
    ++n;
    auto identifiers = [&](char who) {
      return fmt::format(R"("identifiers":{{"userId":"{0}{1}","email":"{0}{1}@x.com","phone":"+1 650 253 {2:04}",)"
                         R"("deviceId":"dev-{0}{1}"{3}}},"timestamp":"2026-03-01T10:00:00Z")",
                         who, n, who == 'a' ? n : 100 + n, n % 2 == 0 ? R"(,"anonymousId":"anonymous")" : "");
    };
    Json a = Unwrap(identity().Identify(J("{" + identifiers('a') + "," + patch + "}")));
    ASSERT_TRUE(a.Find("profileCreated")->as_bool()) << a.Dump();
    Json b = Unwrap(identity().Identify(J("{" + identifiers('b') + "}")));
    ASSERT_TRUE(b.Find("profileCreated")->as_bool()) << b.Dump();
    Json b_patched = Unwrap(identity().Identify(J("{" + identifiers('b') + "," + patch + "}")));
    ASSERT_FALSE(b_patched.Find("profileCreated") != nullptr && b_patched.Find("profileCreated")->as_bool());
    auto comparable = [](Json doc) {
      for (const char* key : {"id", "createdAt", "updatedAt"}) doc.Erase(key);
      if (Json* consent = doc.Find("consent"); consent != nullptr) consent->Erase("updatedAt");
      return doc;
    };
    std::string text = comparable(Unwrap(profiles().Get(a.Find("profileId")->as_string()))).Dump();
    for (const auto& [from, to] : {std::pair<std::string, std::string>{fmt::format("a{}", n), fmt::format("b{}", n)},
                                   {fmt::format("+1650253{:04}", n), fmt::format("+1650253{:04}", 100 + n)}}) {
      for (size_t at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size())) {
        text.replace(at, from.size(), to);
      }
    }
    Json from_a = Unwrap(Json::Parse(text));
    Json from_b = comparable(Unwrap(profiles().Get(b.Find("profileId")->as_string())));
    EXPECT_EQ(from_a, from_b) << patch << "\ncreated with the patch: " << from_a.Dump()
                              << "\ncreated, then patched: " << from_b.Dump();
    ASSERT_NE(from_b.Find("attributeSources"), nullptr) << from_b.Dump();
    EXPECT_EQ(from_b.Find("identityIssues")->size(), n % 2 == 0 ? 1u : 0u) << from_b.Dump();  // a blocked value
  }
}

// A profile an identify creates gets its document as text (DumpCreatedProfile). A later record of the same batch
// that changes it parses the text back and changes that; a batch built while the first one is being written reads
// the text from the batch in flight. Nothing of either change is lost.
TEST_F(IdentityEngineTest, ACreatedProfileIsChangedByLaterRecordsOfItsBatchAndByTheNextBatch) {
  Json r = Unwrap(identity().IdentifyBatch({
      J(R"({"identifiers":{"userId":"T1","email":"t1@x.com"},"attributes":{"firstName":"A"}})"),
      J(R"({"identifiers":{"userId":"T2"},"attributes":{"firstName":"Other"}})"),
      J(R"({"identifiers":{"userId":"T1","phone":"+1 650 253 0001"},"attributes":{"lastName":"B",)"
        R"("customFields":{"tier":"gold"}},"consent":{"email":true}})"),
  }));
  const auto& items = r.Find("results")->items();
  ASSERT_EQ(items.size(), 3u) << r.Dump();
  const std::string id = items[0].Find("profileId")->as_string();
  EXPECT_EQ(items[2].Find("profileId")->as_string(), id);
  EXPECT_NE(items[1].Find("profileId")->as_string(), id);

  std::promise<void> writing;
  std::thread slow([&] {
    storage::ScopedWriteDelay delay(1, std::chrono::milliseconds(300), [&] { writing.set_value(); });
    Unwrap(identity().IdentifyBatch({J(R"({"identifiers":{"userId":"T3"},"attributes":{"firstName":"C"}})")}));
  });
  writing.get_future().wait();  // T3's batch is in flight, its document staged as text
  Json t3 = Unwrap(identity().IdentifyBatch({J(R"({"identifiers":{"userId":"T3"},"attributes":{"lastName":"D"}})")}));
  slow.join();
  const std::string id3 = t3.Find("results")->items()[0].Find("profileId")->as_string();

  for (int reopened = 0; reopened < 2; ++reopened) {
    Json doc = Unwrap(profiles().Get(id));
    EXPECT_EQ(doc.FindPath("attributes.firstName")->as_string(), "A") << doc.Dump();
    EXPECT_EQ(doc.FindPath("attributes.lastName")->as_string(), "B") << doc.Dump();
    EXPECT_EQ(doc.FindPath("attributes.email")->as_string(), "t1@x.com") << doc.Dump();
    EXPECT_EQ(doc.FindPath("attributes.customFields.tier")->as_string(), "gold") << doc.Dump();
    EXPECT_EQ(doc.FindPath("consent.email")->as_bool(), true) << doc.Dump();
    EXPECT_EQ(doc.FindPath("externalIds.phone")->as_string(), "+16502530001") << doc.Dump();
    for (const char* field : {"attributes.firstName", "attributes.lastName", "attributes.customFields.tier"}) {
      ASSERT_NE(doc.Find("attributeSources"), nullptr) << doc.Dump();
      EXPECT_NE(doc.Find("attributeSources")->Find(field), nullptr) << field << " in " << doc.Dump();
    }
    Json doc3 = Unwrap(profiles().Get(id3));
    EXPECT_EQ(doc3.FindPath("attributes.firstName")->as_string(), "C") << doc3.Dump();
    EXPECT_EQ(doc3.FindPath("attributes.lastName")->as_string(), "D") << doc3.Dump();
    Reopen();
  }
}

// A batch large enough to be parsed and normalized on a second thread ahead of resolution: every item's answer is
// its own (rejections where they were, in order), and each record finds the person an earlier record of the same
// batch created, however far ahead the second thread is.
TEST_F(IdentityEngineTest, ALargeIdentifyBatchAnswersEachItemInOrder) {
  constexpr int kItems = 900;
  std::vector<Json> batch;
  for (int i = 0; i < kItems; ++i) {
    const int person = i % 300;
    if (i % 97 == 5) {
      batch.push_back(J(R"({"identifiers":{"userId":"X"},"attributes":{"firstName":7}})"));  // rejected
    } else if (i % 89 == 7) {
      batch.push_back(Json("not an object"));  // rejected
    } else {
      batch.push_back(
          J(fmt::format(R"({{"identifiers":{{"userId":"U{0}","email":"u{0}@x.com","phone":"+1 650 253 {1:04}"}},)"
                        R"("attributes":{{"city":"C{2}"}}}})",
                        person, person, i)));
    }
  }
  Json r = Unwrap(identity().IdentifyBatch(batch));
  const auto& items = r.Find("results")->items();
  ASSERT_EQ(items.size(), static_cast<size_t>(kItems));
  std::map<int, std::string> profile_of;
  std::map<int, int> last_item_of;
  int rejected = 0;
  for (int i = 0; i < kItems; ++i) {
    ASSERT_EQ(items[i].Find("index")->as_int(), i);
    if (i % 97 == 5 || i % 89 == 7) {
      EXPECT_EQ(items[i].Find("status")->as_string(), "invalid_argument") << i;
      if (i % 97 == 5) {
        ASSERT_NE(items[i].FindPath("error.field"), nullptr) << items[i].Dump();
        EXPECT_EQ(items[i].FindPath("error.field")->as_string(), "attributes.firstName") << i;
      }
      ++rejected;
      continue;
    }
    ASSERT_EQ(items[i].Find("status")->as_string(), "ok") << items[i].Dump();
    ASSERT_NE(items[i].Find("profileId"), nullptr) << items[i].Dump();
    const int person = i % 300;
    const std::string id = items[i].Find("profileId")->as_string();
    auto [it, first] = profile_of.emplace(person, id);
    EXPECT_EQ(it->second, id) << "item " << i << " found another profile than its person's first record";
    EXPECT_EQ(items[i].Find("profileCreated") != nullptr && items[i].Find("profileCreated")->as_bool(), first) << i;
    last_item_of[person] = i;
  }
  EXPECT_EQ(r.Find("rejected")->as_int(), rejected);
  EXPECT_EQ(Unwrap(engine_->Stats()).Find("profiles")->as_int(), static_cast<int64_t>(profile_of.size()));
  for (int person : {0, 123, 299}) {
    Json p = Unwrap(profiles().Get(profile_of[person]));
    ASSERT_NE(p.FindPath("externalIds.phone"), nullptr) << p.Dump();
    ASSERT_NE(p.FindPath("attributes.city"), nullptr) << p.Dump();
    EXPECT_EQ(p.FindPath("externalIds.phone")->as_string(), fmt::format("+1650253{:04}", person));
    EXPECT_EQ(p.FindPath("attributes.city")->as_string(), fmt::format("C{}", last_item_of[person]));  // the last wins
  }
}

// Identify batches read the owners and hub sets the cache does not know in batched reads (Prefetch), per chunk of
// 256 records, before resolving. After a reopen the cache is empty, so every identifier below is read that way:
// owners found, values nobody holds, values an earlier record of the same batch links, a value a merge in an
// earlier chunk relinked, and a hub set in storage. Then an event batch, which reads with point reads, finds what
// the identify batches linked and the hub set.
TEST_F(IdentityEngineTest, BatchesResolveFromBatchedReadsAsFromPointReads) {
  Json rules = Unwrap(identity().Rules());
  rules.Find("hub")->Set("threshold", 2);
  Unwrap(identity().SetRules(rules));
  for (const char* email : {"k1@x.com", "k2@x.com", "k3@x.com"}) {  // the kiosk: seen with 3 emails, a hub
    Track(fmt::format(R"({{"type":"page_view","email":"{}","deviceId":"kiosk"}})", email));
  }
  // Two people a later record shows to be one.
  const std::string m1 = Unwrap(identity().Identify(J(R"({"identifiers":{"userId":"M1","email":"m1@x.com"}})")))
                             .Find("profileId")
                             ->as_string();
  const std::string m2 = Unwrap(identity().Identify(J(R"({"identifiers":{"email":"m2@x.com","deviceId":"dev-m2"}})")))
                             .Find("profileId")
                             ->as_string();
  ASSERT_NE(m1, m2);
  constexpr int kPeople = 300;
  std::vector<Json> first;
  for (int i = 0; i < kPeople; ++i) {
    first.push_back(J(fmt::format(R"({{"identifiers":{{"userId":"U{0}","email":"u{0}@x.com"}}}})", i)));
  }
  Json r1 = Unwrap(identity().IdentifyBatch(first));
  ASSERT_EQ(r1.Find("accepted")->as_int(), kPeople);
  std::vector<std::string> profile_of;
  for (const Json& item : r1.Find("results")->items()) profile_of.push_back(item.Find("profileId")->as_string());
  const int64_t profiles_before = Unwrap(engine_->Stats()).Find("profiles")->as_int();

  Reopen();
  // Each person's second record (their userId and a new email), then 40 new people, each twice in the batch.
  std::vector<Json> second;
  for (int i = 0; i < kPeople; ++i) {
    second.push_back(J(fmt::format(R"({{"identifiers":{{"userId":"U{0}","email":"v{0}@x.com"}}}})", i)));
  }
  for (int i = 0; i < 80; ++i) {
    second.push_back(J(fmt::format(R"({{"identifiers":{{"userId":"W{0}","email":"w{0}@x.com"}}}})", i % 40)));
  }
  Json r2 = Unwrap(identity().IdentifyBatch(second));
  ASSERT_EQ(r2.Find("accepted")->as_int(), kPeople + 80) << r2.Dump().substr(0, 400);
  const auto& items = r2.Find("results")->items();
  std::vector<std::string> new_profile(40);
  for (int i = 0; i < kPeople + 80; ++i) {
    const Json& item = items[i];
    const bool created = item.Find("profileCreated") != nullptr && item.Find("profileCreated")->as_bool();
    const std::string id = item.Find("profileId")->as_string();
    if (i < kPeople) {
      EXPECT_EQ(id, profile_of[i]) << "record " << i << " found another profile than its person's";
      EXPECT_FALSE(created) << i;
    } else if (i < kPeople + 40) {
      EXPECT_TRUE(created) << i;
      new_profile[i - kPeople] = id;
    } else {
      EXPECT_EQ(id, new_profile[i - kPeople - 40]) << "the repeat finds the profile its batch created";
      EXPECT_FALSE(created) << i;
    }
  }
  EXPECT_EQ(Unwrap(engine_->Stats()).Find("profiles")->as_int(), profiles_before + 40);
  Json emails = *Unwrap(profiles().Get(profile_of[7])).FindPath("externalIds.email");
  EXPECT_NE(emails.Dump().find("u7@x.com"), std::string::npos) << emails.Dump();
  EXPECT_NE(emails.Dump().find("v7@x.com"), std::string::npos) << emails.Dump();

  // Values the cache has not seen since the reopen, across two chunks of 256: a record merges m2 into m1 in the
  // first chunk; in the second, m2's device finds the survivor (the merge's relink, not the stored link, which
  // Prefetch reads), and the kiosk's stored hub set stops it linking.
  std::vector<Json> third;
  third.push_back(J(R"({"identifiers":{"userId":"M1","email":"m2@x.com"}})"));
  for (int i = 1; i < 300; ++i) third.push_back(J(fmt::format(R"({{"identifiers":{{"userId":"F{}"}}}})", i)));
  third.push_back(J(R"({"identifiers":{"deviceId":"dev-m2"}})"));
  third.push_back(J(R"({"identifiers":{"email":"k8@x.com","deviceId":"kiosk"}})"));
  Json r3 = Unwrap(identity().IdentifyBatch(third));
  ASSERT_EQ(r3.Find("accepted")->as_int(), 302) << r3.Dump().substr(0, 400);
  const auto& answers = r3.Find("results")->items();
  EXPECT_EQ(answers[0].Find("profileId")->as_string(), m1) << answers[0].Dump();
  EXPECT_EQ(answers[300].Find("profileId")->as_string(), m1) << answers[300].Dump();
  EXPECT_EQ(Unwrap(profiles().Get(m2)).Find("id")->as_string(), m1) << "m2 was merged into m1";
  const Json& kiosk_record = answers[301];
  EXPECT_TRUE(kiosk_record.Find("profileCreated") != nullptr && kiosk_record.Find("profileCreated")->as_bool())
      << kiosk_record.Dump();
  ASSERT_NE(kiosk_record.Find("ignoredIdentifiers"), nullptr) << kiosk_record.Dump();
  EXPECT_NE(kiosk_record.Find("ignoredIdentifiers")->Dump().find("hub"), std::string::npos) << kiosk_record.Dump();

  Reopen();
  // Events: 63 by the emails the batch above linked, and one with the kiosk, whose hub set is read from storage.
  std::vector<Json> batch;
  for (int i = 0; i < 63; ++i) batch.push_back(J(fmt::format(R"({{"type":"page_view","email":"v{}@x.com"}})", i)));
  batch.push_back(J(R"({"type":"page_view","email":"k9@x.com","deviceId":"kiosk"})"));
  BatchResult tracked = Unwrap(events().TrackBatch(batch));
  ASSERT_EQ(tracked.accepted, 64u);
  for (int i = 0; i < 63; ++i) EXPECT_EQ(tracked.items[i].result.profile_id, profile_of[i]) << i;
  const TrackResult& kiosk = tracked.items[63].result;
  EXPECT_TRUE(kiosk.profile_created);
  EXPECT_TRUE(kiosk.merged_profiles.empty()) << "the kiosk is a hub: it links nobody";
  ASSERT_TRUE(kiosk.ignored_identifiers.is_array());
  EXPECT_NE(kiosk.ignored_identifiers.Dump().find("hub"), std::string::npos) << kiosk.ignored_identifiers.Dump();
}

}  // namespace
}  // namespace cdp
