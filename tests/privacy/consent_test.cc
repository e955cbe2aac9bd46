// Copyright 2026 The libcdp Authors.
//
// Consent per purpose (issue 5): statements with source, time and policy version and their full history; Google
// Consent Mode v2; custom purposes; out-of-order statements; enforcement where data is used (tracking denied
// refuses events, audiences keep only those who consented to their channel, merges keep the most restrictive).

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "engine/engine_impl.h"
#include "storage/keys.h"
#include "test_util.h"

namespace cdp {
namespace {

using testing::J;
using testing::Unwrap;

class ConsentTest : public testing::EngineTest {
 protected:
  Consent& consent() { return engine_->consent(); }

  std::string NewProfile(const std::string& email) {
    return Unwrap(profiles().Create(J(R"({"externalIds": {"email": ")" + email + R"("}})"))).Find("id")->as_string();
  }
  Json Record(const std::string& body) { return Unwrap(consent().Record(J(body))); }
  // The profile's stored consent object (the document's "consent" member).
  Json ConsentOf(const std::string& id) { return *Unwrap(profiles().Get(id)).Find("consent"); }
  int64_t EventCount() { return Unwrap(engine_->Stats()).Find("events")->as_int(); }
  // History records with `via`.
  static std::vector<Json> Via(const Json& doc, const std::string& via) {
    std::vector<Json> out;
    for (const Json& r : doc.Find("history")->items()) {
      if (r.Find("via")->as_string() == via) out.push_back(r);
    }
    return out;
  }
};

TEST_F(ConsentTest, StatementsChangeTheProfileAndAreKeptWithSourceTimeAndPolicy) {
  const std::string id = NewProfile("ada@example.com");
  Json first = Record(R"({"profileId": ")" + id + R"(", "purposes": {"email": "granted", "sms": false},
      "source": "signup-form", "policyVersion": "2026-01", "timestamp": "2026-11-01T10:00:00Z"})");
  EXPECT_EQ(first.FindPath("purposes.email.granted")->as_bool(), true);
  EXPECT_EQ(first.FindPath("purposes.email.source")->as_string(), "signup-form");
  EXPECT_EQ(first.FindPath("purposes.email.policyVersion")->as_string(), "2026-01");
  EXPECT_EQ(first.FindPath("purposes.email.at")->as_string(), "2026-11-01T10:00:00.000Z");
  EXPECT_EQ(first.FindPath("purposes.sms.granted")->as_bool(), false);
  EXPECT_EQ(first.Find("applied")->size(), 2u);

  Record(R"({"profileId": ")" + id + R"(", "purposes": {"email": "denied"}, "source": "unsubscribe-link",
      "policyVersion": "2026-02"})");
  Json doc = Unwrap(consent().Get(id));
  EXPECT_EQ(doc.FindPath("purposes.email.granted")->as_bool(), false);
  EXPECT_EQ(doc.FindPath("purposes.email.source")->as_string(), "unsubscribe-link");
  EXPECT_EQ(doc.FindPath("purposes.email.policyVersion")->as_string(), "2026-02");
  EXPECT_EQ(doc.FindPath("purposes.sms.source")->as_string(), "signup-form");  // untouched by the second
  // The history holds both statements, oldest first, each as given.
  const Json& history = *doc.Find("history");
  ASSERT_EQ(history.size(), 2u);
  EXPECT_EQ(*history.items()[0].Find("purposes"), J(R"({"email": true, "sms": false})"));
  EXPECT_EQ(*history.items()[1].Find("purposes"), J(R"({"email": false})"));
  EXPECT_EQ(history.items()[1].Find("via")->as_string(), "consent");
  // The profile document carries the state, readable by segment rules and audiences.
  Json c = ConsentOf(id);
  EXPECT_EQ(c.Find("email")->as_bool(), false);
  EXPECT_EQ(c.Find("sms")->as_bool(), false);
  EXPECT_NE(c.Find("updatedAt"), nullptr);
  // It survives a restart.
  Reopen();
  EXPECT_EQ(Unwrap(consent().Get(id)).Find("history")->size(), 2u);
}

TEST_F(ConsentTest, ConsentModeV2SignalsMapOntoAdsAndTracking) {
  const std::string id = NewProfile("cm@example.com");
  Json doc = Record(R"({"profileId": ")" + id + R"(", "consentMode": {"ad_storage": "granted",
      "analytics_storage": "granted", "ad_user_data": "granted", "ad_personalization": "denied"}, "source": "cmp"})");
  EXPECT_EQ(*doc.Find("consentMode"), J(R"({"ad_storage": "granted", "analytics_storage": "granted",
      "ad_user_data": "granted", "ad_personalization": "denied"})"));
  Json c = ConsentOf(id);
  EXPECT_EQ(c.Find("tracking")->as_bool(), true);  // analytics_storage is tracking
  EXPECT_EQ(c.Find("analytics_storage"), nullptr);
  EXPECT_EQ(c.Find("ads")->as_bool(), false);  // one advertising signal denied
  // The derived change of "ads" is in the record.
  EXPECT_EQ(doc.Find("history")->items().back().FindPath("purposes.ads")->as_bool(), false);

  // "ads" states the three signals.
  Record(R"({"profileId": ")" + id + R"(", "purposes": {"ads": "granted"}})");
  c = ConsentOf(id);
  for (const char* s : {"ads", "ad_storage", "ad_user_data", "ad_personalization"}) {
    EXPECT_EQ(c.Find(s)->as_bool(), true) << s;
  }
  // One signal denied denies ads.
  Record(R"({"profileId": ")" + id + R"(", "consentMode": {"ad_user_data": "denied"}})");
  c = ConsentOf(id);
  EXPECT_EQ(c.Find("ads")->as_bool(), false);
  EXPECT_EQ(c.Find("ad_storage")->as_bool(), true);
  // A statement contradicting itself is refused.
  auto bad = consent().Record(J(R"({"profileId": ")" + id + R"(", "purposes": {"ads": "granted"},
      "consentMode": {"ad_storage": "denied"}})"));
  ASSERT_TRUE(bad.status().IsInvalidArgument());
  EXPECT_EQ(bad.status().field(), "purposes.ads");
  // Profile writes follow the same rules: patching "ads" alone patches its signals.
  Unwrap(profiles().Patch(id, J(R"({"consent": {"ads": true}})")));
  EXPECT_EQ(ConsentOf(id).Find("ad_user_data")->as_bool(), true);
  auto contradiction = profiles().Replace(id, J(R"({"consent": {"ads": true, "ad_storage": false}})"));
  ASSERT_TRUE(contradiction.status().IsInvalidArgument());
  EXPECT_EQ(contradiction.status().field(), "consent.ads");
}

TEST_F(ConsentTest, CustomPurposesAndValidation) {
  const std::string id = NewProfile("v@example.com");
  Record(R"({"identifier": {"type": "email", "value": " V@Example.com "}, "purposes": {"newsletter_weekly": true}})");
  EXPECT_EQ(ConsentOf(id).Find("newsletter_weekly")->as_bool(), true);  // found by a normalized identifier

  struct Case {
    std::string body;
    std::string field;
  };
  const std::string pid = R"("profileId": ")" + id + R"(", )";
  const std::vector<Case> cases = {
      {"{" + pid + R"("purposes": {"Bad Name": true}})", "purposes.Bad Name"},
      {"{" + pid + R"("purposes": {")" + std::string(65, 'a') + R"(": true}})", "purposes." + std::string(65, 'a')},
      {"{" + pid + R"("purposes": {"email": "yes"}})", "purposes.email"},
      {"{" + pid + R"("purposes": {}})", "purposes"},
      {"{" + pid + R"("consentMode": {"ad_click": "granted"}})", "consentMode.ad_click"},
      {"{" + pid + R"("purposes": {"email": true}, "timestamp": "2999-01-01T00:00:00Z"})", "timestamp"},
      {"{" + pid + R"("purposes": {"email": true}, "policyVersion": ""})", "policyVersion"},
      {"{" + pid + R"("purposes": {"email": true}, "mood": "happy"})", "mood"},
      {R"({"purposes": {"email": true}})", "profileId"},
      {"{" + pid + R"("identifier": {"type": "email", "value": "v@example.com"}, "purposes": {"email": true}})",
       "profileId"},
      {"{" + pid + R"("purposes": {"tracking": true}, "consentMode": {"analytics_storage": "denied"}})",
       "consentMode.analytics_storage"},
  };
  for (const Case& c : cases) {
    auto r = consent().Record(J(c.body));
    ASSERT_TRUE(r.status().IsInvalidArgument()) << c.body << ": " << r.status().ToString();
    EXPECT_EQ(r.status().field(), c.field) << c.body;
  }
  EXPECT_TRUE(consent().Record(J(R"({"profileId": "nobody", "purposes": {"email": true}})")).status().IsNotFound());
  EXPECT_TRUE(consent()
                  .Record(J(R"({"identifier": {"type": "email", "value": "x@y.com"}, "purposes": {"email": true}})"))
                  .status()
                  .IsNotFound());
  EXPECT_TRUE(consent().Get("nobody").status().IsNotFound());
  // A refused statement left nothing behind.
  EXPECT_EQ(Unwrap(consent().Get(id)).Find("history")->size(), 1u);
  // Profile documents validate purposes too.
  auto bad = profiles().Patch(id, J(R"({"consent": {"Email": true}})"));
  ASSERT_TRUE(bad.status().IsInvalidArgument());
  EXPECT_EQ(bad.status().field(), "consent.Email");
}

TEST_F(ConsentTest, AnOlderStatementDoesNotOverrideALaterOne) {
  const std::string id = NewProfile("late@example.com");
  Record(R"({"profileId": ")" + id + R"(", "purposes": {"email": "granted"}, "timestamp": "2026-11-02T00:00:00Z",
      "source": "preference-center"})");
  // A statement made earlier arrives later (a queued CMP callback).
  Json late = Record(R"({"profileId": ")" + id + R"(", "purposes": {"email": "denied", "sms": "denied"},
      "timestamp": "2026-11-01T00:00:00Z", "source": "cmp"})");
  EXPECT_EQ(*late.Find("superseded"), J(R"(["email"])"));
  EXPECT_EQ(*late.Find("applied"), J(R"(["sms"])"));
  EXPECT_EQ(ConsentOf(id).Find("email")->as_bool(), true);
  EXPECT_EQ(ConsentOf(id).Find("sms")->as_bool(), false);
  EXPECT_EQ(late.FindPath("purposes.email.source")->as_string(), "preference-center");
  // Kept in the history, marked.
  const Json& last = late.Find("history")->items().back();
  EXPECT_EQ(*last.Find("superseded"), J(R"(["email"])"));
  EXPECT_EQ(last.FindPath("purposes.email")->as_bool(), false);
}

TEST_F(ConsentTest, AnOlderAdsStatementLeavesANewerSignalAlone) {
  const std::string id = NewProfile("signals@example.com");
  Record(R"({"profileId": ")" + id + R"(", "consentMode": {"ad_storage": "granted"},
      "timestamp": "2026-11-02T00:00:00Z"})");
  Json late = Record(R"({"profileId": ")" + id + R"(", "purposes": {"ads": "denied"},
      "timestamp": "2026-11-01T00:00:00Z"})");
  Json c = ConsentOf(id);
  EXPECT_EQ(c.Find("ad_storage")->as_bool(), true);  // the newer statement holds
  EXPECT_EQ(c.Find("ad_user_data")->as_bool(), false);
  EXPECT_EQ(c.Find("ads")->as_bool(), false);  // one signal denied
  EXPECT_EQ(*late.Find("superseded"), J(R"(["ad_storage"])"));
  EXPECT_EQ(late.FindPath("purposes.ad_storage.at")->as_string(), "2026-11-02T00:00:00.000Z");
}

TEST_F(ConsentTest, AFutureDatedIdentifyDoesNotOutrankLaterStatements) {
  const std::string id = NewProfile("future@example.com");
  // Far ahead is refused (Options::max_event_future_seconds, 1 day); 12 hours ahead, a clock running fast, is taken.
  auto far = engine_->identity().Identify(J(R"({"identifiers": {"email": "future@example.com"},
      "consent": {"tracking": true}, "timestamp": "2099-01-01T00:00:00Z"})"));
  EXPECT_TRUE(far.status().IsInvalidArgument()) << far.status().ToString();
  EXPECT_EQ(far.status().field(), "timestamp");
  const int64_t ahead = std::chrono::duration_cast<std::chrono::microseconds>(
                            std::chrono::system_clock::now().time_since_epoch() + std::chrono::hours(12))
                            .count();
  Unwrap(engine_->identity().Identify(J(R"({"identifiers": {"email": "future@example.com"},
      "consent": {"tracking": true}, "timestamp": ")" +
                                        FormatTimestamp(ahead) + R"("})")));
  Json denied = Record(R"({"profileId": ")" + id + R"(", "purposes": {"tracking": "denied"}})");
  EXPECT_EQ(*denied.Find("applied"), J(R"(["tracking"])"));
  EXPECT_EQ(ConsentOf(id).Find("tracking")->as_bool(), false);
}

TEST_F(ConsentTest, MergingAnOlderAdsOnlyDocumentStaysValid) {
  const std::string a = NewProfile("old-ads@example.com");
  const std::string b = NewProfile("new-ads@example.com");
  Record(R"({"profileId": ")" + b + R"(", "purposes": {"ads": "granted"}})");
  // A document as written before the advertising signals existed: "ads" alone.
  storage::Store& store = static_cast<internal::EngineImpl&>(*engine_).store();
  std::string text;
  ASSERT_TRUE(store.Get(storage::Cf::kProfiles, a, &text).ok());
  Json doc = J(text);
  doc.Set("consent", J(R"({"ads": false, "updatedAt": "2025-01-01T00:00:00.000Z"})"));
  storage::WriteBatch batch(store);
  batch.Put(storage::Cf::kProfiles, a, doc.Dump());
  ASSERT_TRUE(store.Write(&batch).ok());
  Unwrap(engine_->identity().Merge({b, a}, "same person"));
  Json c = ConsentOf(b);
  EXPECT_EQ(c.Find("ads")->as_bool(), false);  // the denial holds, in every signal
  EXPECT_EQ(c.Find("ad_storage")->as_bool(), false);
  // And the document can be written back as read.
  Unwrap(profiles().Patch(b, J(R"({"attributes": {"city": "Oslo"}})")));
  Unwrap(profiles().Replace(b, Unwrap(profiles().Get(b))));
}

TEST_F(ConsentTest, TrackingDeniedRefusesNewEventsAndStoresNothingOfThem) {
  const std::string id = NewProfile("private@example.com");
  const std::string other = NewProfile("open@example.com");
  Unwrap(events().Track(J(R"({"type": "page_view", "profileId": ")" + id + R"("})")));
  Record(R"({"profileId": ")" + id + R"(", "consentMode": {"analytics_storage": "denied"}})");
  const int64_t events_before = EventCount();

  // By profile id and by identifier: refused, and the call says why.
  auto by_id = events().Track(J(R"({"type": "page_view", "profileId": ")" + id + R"("})"));
  ASSERT_EQ(by_id.status().code(), StatusCode::kFailedPrecondition) << by_id.status().ToString();
  EXPECT_NE(by_id.status().message().find("tracking"), std::string::npos);
  EXPECT_EQ(by_id.status().field(), "consent.tracking");  // machine-readable: what refused it
  EXPECT_EQ(events()
                .Track(J(R"({"type": "purchase", "email": "PRIVATE@example.com",
      "properties": {"revenue": 10}})"))
                .status()
                .code(),
            StatusCode::kFailedPrecondition);
  // An event that would merge the person with another profile (open@ holds c-1): refused, no merge.
  Unwrap(profiles().Patch(other, J(R"({"externalIds": {"customerId": "c-1"}})")));
  auto merging = events().Track(J(R"({"type": "page_view", "email": "private@example.com", "customerId": "c-1"})"));
  EXPECT_EQ(merging.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(Unwrap(profiles().Get(id)).Find("mergedIds")->size(), 0u);
  EXPECT_EQ(Unwrap(profiles().Get(other)).Find("mergedIds")->size(), 0u);
  // ... nor by identifiers new to it.
  EXPECT_EQ(events()
                .Track(J(R"({"type": "page_view", "email": "private@example.com", "deviceId": "dev-9"})"))
                .status()
                .code(),
            StatusCode::kFailedPrecondition);
  EXPECT_EQ(Unwrap(profiles().Get(id)).Find("externalIds")->Find("deviceIds"), nullptr);
  // In a batch: per item; the others are stored.
  BatchResult batch = Unwrap(events().TrackBatch({J(R"({"type": "page_view", "profileId": ")" + id + R"("})"),
                                                  J(R"({"type": "page_view", "profileId": ")" + other + R"("})"),
                                                  J(R"({"type": "page_view", "email": "private@example.com"})")}));
  EXPECT_EQ(batch.accepted, 1u);
  EXPECT_EQ(batch.items[0].status.code(), StatusCode::kFailedPrecondition);
  EXPECT_TRUE(batch.items[1].status.ok());
  EXPECT_EQ(batch.items[2].status.code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(EventCount(), events_before + 1);
  EXPECT_EQ(Unwrap(profiles().Get(id)).FindPath("computed.eventCount")->as_int(), 1);

  // The refusal outlives a restart; granting again lets events in.
  Reopen();
  EXPECT_EQ(events().Track(J(R"({"type": "page_view", "profileId": ")" + id + R"("})")).status().code(),
            StatusCode::kFailedPrecondition);
  Unwrap(profiles().Patch(id, J(R"({"consent": {"tracking": true}})")));
  Unwrap(events().Track(J(R"({"type": "page_view", "profileId": ")" + id + R"("})")));
  EXPECT_EQ(Unwrap(profiles().Get(id)).FindPath("computed.eventCount")->as_int(), 2);
}

TEST_F(ConsentTest, ProfileWritesAndIdentifiesAreInTheHistory) {
  Json p = Unwrap(profiles().Create(J(R"({"externalIds": {"email": "h@example.com"}, "consent": {"email": true},
      "source": "crm"})")));
  const std::string id = p.Find("id")->as_string();
  Unwrap(profiles().Patch(id, J(R"({"consent": {"sms": false}})")));
  Unwrap(profiles().Patch(id, J(R"({"attributes": {"city": "Paris"}})")));  // no consent change: no record
  Unwrap(engine_->identity().Identify(J(R"({"identifiers": {"email": "h@example.com"}, "consent": {"tracking": false},
      "source": "mobile-app", "timestamp": "2026-11-20T08:00:00Z"})")));
  Json doc = Unwrap(consent().Get(id));
  const Json& h = *doc.Find("history");
  ASSERT_EQ(h.size(), 3u) << h.Dump();
  EXPECT_EQ(h.items()[0].Find("via")->as_string(), "profiles.create");
  EXPECT_EQ(h.items()[0].Find("source")->as_string(), "crm");
  EXPECT_EQ(*h.items()[0].Find("purposes"), J(R"({"email": true})"));
  EXPECT_EQ(h.items()[1].Find("via")->as_string(), "profiles.update");
  EXPECT_EQ(*h.items()[1].Find("purposes"), J(R"({"sms": false})"));
  EXPECT_EQ(h.items()[2].Find("via")->as_string(), "identify");
  EXPECT_EQ(h.items()[2].Find("source")->as_string(), "mobile-app");
  EXPECT_EQ(h.items()[2].Find("at")->as_string(), "2026-11-20T08:00:00.000Z");
  // The identify's denial is enforced like any other.
  EXPECT_EQ(events().Track(J(R"({"type": "page_view", "profileId": ")" + id + R"("})")).status().code(),
            StatusCode::kFailedPrecondition);
}

TEST_F(ConsentTest, MergesKeepTheMostRestrictiveAndUnmergeRestoresIt) {
  const std::string a = NewProfile("a@example.com");
  const std::string b = NewProfile("b@example.com");
  Record(R"({"profileId": ")" + a + R"(", "purposes": {"email": true, "tracking": true}})");
  Record(R"({"profileId": ")" + b + R"(", "purposes": {"email": false, "tracking": false}})");
  Json merged = Unwrap(engine_->identity().Merge({a, b}, "same person"));
  const std::string merge_id = merged.Find("mergeId")->as_string();
  Json doc = Unwrap(consent().Get(a));
  EXPECT_EQ(doc.FindPath("purposes.email.granted")->as_bool(), false);
  EXPECT_EQ(doc.FindPath("purposes.email.via")->as_string(), "merge");
  EXPECT_EQ(doc.FindPath("purposes.email.mergeId")->as_string(), merge_id);
  EXPECT_EQ(Via(doc, "merge").size(), 1u);
  EXPECT_EQ(Via(doc, "consent").size(), 2u);  // b's statement is part of the person's history
  // b's denial of tracking now holds for the survivor, also through b's old id.
  EXPECT_EQ(events().Track(J(R"({"type": "page_view", "profileId": ")" + a + R"("})")).status().code(),
            StatusCode::kFailedPrecondition);
  EXPECT_EQ(Unwrap(consent().Get(b)).Find("profileId")->as_string(), a);

  Unwrap(engine_->identity().Unmerge(a, merge_id));
  EXPECT_EQ(ConsentOf(a).Find("email")->as_bool(), true);
  EXPECT_EQ(ConsentOf(b).Find("email")->as_bool(), false);
  EXPECT_EQ(Via(Unwrap(consent().Get(a)), "unmerge").size(), 1u);
  Unwrap(events().Track(J(R"({"type": "page_view", "profileId": ")" + a + R"("})")));
  EXPECT_EQ(events().Track(J(R"({"type": "page_view", "profileId": ")" + b + R"("})")).status().code(),
            StatusCode::kFailedPrecondition);
  Reopen();  // the markers were rewritten by the unmerge
  Unwrap(events().Track(J(R"({"type": "page_view", "profileId": ")" + a + R"("})")));
  EXPECT_EQ(events().Track(J(R"({"type": "page_view", "profileId": ")" + b + R"("})")).status().code(),
            StatusCode::kFailedPrecondition);
}

// The history pages: Get holds the last 100 records and the count, History gives every record once, in order,
// the merged profile's included; the export holds them all.
TEST_F(ConsentTest, TheHistoryIsPaged) {
  const std::string a = NewProfile("pa@example.com");
  const std::string b = NewProfile("pb@example.com");
  for (int i = 0; i < 130; ++i) {
    Record(R"({"profileId": ")" + (i % 3 == 0 ? b : a) + R"(", "purposes": {"email": )" +
           (i % 2 == 0 ? "true" : "false") + R"(}, "source": "s)" + std::to_string(i) + R"("})");
  }
  Unwrap(engine_->identity().Merge({a, b}, "same person"));
  Json doc = Unwrap(consent().Get(a));
  const int64_t total = doc.Find("historyCount")->as_int();
  EXPECT_GE(total, 131);  // 130 statements, the merge's record, the creates' records
  ASSERT_EQ(doc.Find("history")->size(), 100u);
  EXPECT_EQ(doc.Find("history")->items().back().Find("via")->as_string(), "merge");  // the newest last
  std::vector<std::string> ids, sources;
  std::string cursor;
  int pages = 0;
  do {
    Json page = Json::Object().Set("limit", 7);
    if (!cursor.empty()) page.Set("cursor", cursor);
    Json got = Unwrap(consent().History(b, page));  // a merged id pages its survivor's
    EXPECT_EQ(got.Find("profileId")->as_string(), a);
    EXPECT_LE(got.Find("items")->size(), 7u);
    for (const Json& r : got.Find("items")->items()) {
      ids.push_back(r.Find("id")->as_string());
      if (r.Find("via")->as_string() == "consent") sources.push_back(r.Find("source")->as_string());
    }
    cursor = got.Find("nextCursor")->is_null() ? "" : got.Find("nextCursor")->as_string();
    ++pages;
  } while (!cursor.empty() && pages < 100);
  EXPECT_EQ(static_cast<int64_t>(ids.size()), total);
  EXPECT_EQ(absl::flat_hash_set<std::string>(ids.begin(), ids.end()).size(), ids.size());  // each once
  ASSERT_EQ(sources.size(), 130u);
  for (int i = 0; i < 130; ++i) EXPECT_EQ(sources[static_cast<size_t>(i)], "s" + std::to_string(i));  // in order
  // The last 100 of the pages are Get's.
  for (size_t i = 0; i < 100; ++i) {
    EXPECT_EQ(doc.Find("history")->items()[i].Find("id")->as_string(), ids[ids.size() - 100 + i]);
  }
  EXPECT_EQ(Unwrap(engine_->gdpr().Export(a)).FindPath("consent.history")->size(), static_cast<size_t>(total));
  // Bad pages.
  EXPECT_EQ(consent().History(a, J(R"({"limit": 0})")).status().field(), "limit");
  EXPECT_EQ(consent().History(a, J(R"({"limit": 1001})")).status().field(), "limit");
  EXPECT_EQ(consent().History(a, J(R"({"cursor": "zz"})")).status().field(), "cursor");
  EXPECT_EQ(consent().History(a, J(R"({"cursor": "00"})")).status().field(), "cursor");
  EXPECT_EQ(consent().History(a, J(R"({"size": 3})")).status().field(), "size");
  EXPECT_TRUE(consent().History("nobody", Json::Object()).status().IsNotFound());
}

TEST_F(ConsentTest, ADatabaseWrittenBeforeTrackingMarkersGetsThemAtOpen) {
  const std::string id = NewProfile("old@example.com");
  Unwrap(profiles().Patch(id, J(R"({"consent": {"tracking": false}})")));
  // As a database of an earlier version: the profile denies tracking, no marker says so.
  storage::Store& store = static_cast<internal::EngineImpl&>(*engine_).store();
  storage::WriteBatch batch(store);
  batch.Delete(storage::Cf::kPrivacy, storage::TrackingDeniedKey(id));
  batch.Delete(storage::Cf::kMeta, "consent_tracking_markers");
  ASSERT_TRUE(store.Write(&batch).ok());
  Reopen();
  EXPECT_EQ(events().Track(J(R"({"type": "page_view", "profileId": ")" + id + R"("})")).status().code(),
            StatusCode::kFailedPrecondition);
}

TEST_F(ConsentTest, AudiencesOfACustomPurposeKeepOnlyThoseWhoConsented) {
  const std::string yes = NewProfile("yes@example.com");
  const std::string no = NewProfile("no@example.com");
  NewProfile("unknown@example.com");
  Record(R"({"profileId": ")" + yes + R"(", "purposes": {"push": true}})");
  Record(R"({"profileId": ")" + no + R"(", "purposes": {"push": false}})");
  Json all = Unwrap(engine_->segments().Create(J(R"({"name": "everyone", "rule": {"field": "externalIds.email",
      "operator": "exists"}})")));
  Json aud = Unwrap(engine_->audiences().Create(
      J(R"({"name": "push", "segments": {"ids": [")" + all.Find("id")->as_string() + R"("]}, "channel": "push"})")));
  const std::string aud_id = aud.Find("id")->as_string();
  EXPECT_EQ(Unwrap(engine_->audiences().Size(aud_id)), 1);
  Page members = Unwrap(engine_->audiences().Members(aud_id, 10, ""));
  ASSERT_EQ(members.items.size(), 1u);
  // Withdrawing consent takes the person out at once.
  Record(R"({"profileId": ")" + yes + R"(", "purposes": {"push": "denied"}})");
  EXPECT_EQ(Unwrap(engine_->audiences().Size(aud_id)), 0);
  // analytics_storage is stored as tracking: an audience on it is an audience on tracking (AudiencesTest).
  Json measured =
      Unwrap(engine_->audiences().Create(J(R"({"name": "x", "segments": {"ids": [")" + all.Find("id")->as_string() +
                                           R"("]}, "channel": "analytics_storage"})")));
  EXPECT_EQ(measured.Find("channel")->as_string(), "tracking");
}

}  // namespace
}  // namespace cdp
