// Copyright 2026 The libcdp Authors.
//
// Segment-spec ingestion (include/cdp/segment.h): mapping of every message type, the timestamp rule, traits,
// identity linking, validation, limits and deduplication.

#include "cdp/segment.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "test_util.h"

namespace cdp {
namespace {

using testing::J;
using testing::Unwrap;

// 2026-03-01T12:00:00.000Z, the receipt time of most messages here.
constexpr int64_t kReceived = 1772366400000000LL;

class SegmentTest : public testing::EngineTest {
 protected:
  Json Ingest(std::string_view message, int64_t received = kReceived, std::string_view route = {}) {
    return Unwrap(IngestSegmentMessage(*engine_, J(message), received, options_seg_, route));
  }
  Status IngestError(std::string_view message, std::string_view route = {}) {
    Result<Json> r = IngestSegmentMessage(*engine_, J(message), kReceived, options_seg_, route);
    EXPECT_FALSE(r.ok()) << message;
    return r.status();
  }
  // The profile's events, oldest first.
  std::vector<Json> EventsOf(const Json& result) {
    Page page = Unwrap(profiles().Timeline(result.Find("profileId")->as_string(), EventQuery{}));
    return page.items;
  }
  Json ProfileOf(const Json& result) { return Unwrap(profiles().Get(result.Find("profileId")->as_string())); }
  int64_t EventCount() { return Unwrap(engine_->Stats()).Find("events")->as_int(); }

  SegmentOptions options_seg_;
};

// ---- mapping -------------------------------------------------------------------------------------------------------

TEST_F(SegmentTest, TrackMapsEcommerceNamesAndKeepsOthersCustom) {
  struct Case {
    const char* event;
    const char* type;
  } cases[] = {{"Order Completed", "purchase"},  {"Product Viewed", "product_view"},
               {"Product Added", "add_to_cart"}, {"order completed", "purchase"},
               {"Signed Up", "custom"},          {"Product Removed", "custom"}};
  int minute = 0;
  for (const Case& c : cases) {
    Json r = Ingest(R"({"type":"track","userId":"shopper-1","event":")" + std::string(c.event) +
                    R"(","properties":{"revenue":10},"timestamp":"2026-03-01T10:0)" + std::to_string(minute++) +
                    R"(:00Z"})");
    EXPECT_EQ(r.Find("type")->as_string(), "track");
    std::vector<Json> events = EventsOf(r);
    const Json& last = events.back();
    EXPECT_EQ(last.Find("type")->as_string(), c.type) << c.event;
    EXPECT_EQ(last.Find("name")->as_string(), c.event);
    EXPECT_EQ(last.Find("customerId")->as_string(), "shopper-1");
    EXPECT_EQ(last.Find("source")->as_string(), "segment");
    EXPECT_EQ(last.FindPath("properties.segmentType")->as_string(), "track");
  }
  Json profile = ProfileOf(Ingest(R"({"type":"identify","userId":"shopper-1"})"));
  EXPECT_EQ(profile.FindPath("computed.purchaseCount")->as_int(), 2);
  EXPECT_DOUBLE_EQ(profile.FindPath("computed.ltv")->as_number(), 20.0);
  EXPECT_EQ(profile.FindPath("externalIds.customerId")->as_string(), "shopper-1");
}

TEST_F(SegmentTest, PageAndScreenBecomePageViewsAndContextFeedsSessions) {
  Json page = Ingest(R"({"type":"page","anonymousId":"anon-p","name":"Pricing","category":"Docs",
      "properties":{"url":"https://x.test/pricing","path":"/pricing"},"timestamp":"2026-03-01T10:00:00Z",
      "messageId":"page-1","context":{"ip":"203.0.113.9","userAgent":"Mozilla/5.0",
      "campaign":{"source":"newsletter","medium":"email","name":"spring","term":"shoes"},
      "device":{"id":"device-9","type":"ios"}}})");
  std::vector<Json> events = EventsOf(page);
  ASSERT_EQ(events.size(), 1u);
  const Json& e = events[0];
  EXPECT_EQ(e.Find("type")->as_string(), "page_view");
  EXPECT_EQ(e.Find("name")->as_string(), "Pricing");
  EXPECT_EQ(e.Find("id")->as_string(), "page-1");
  EXPECT_EQ(e.Find("anonymousId")->as_string(), "anon-p");
  EXPECT_EQ(e.Find("deviceId")->as_string(), "device-9");
  EXPECT_EQ(e.FindPath("properties.category")->as_string(), "Docs");
  EXPECT_EQ(e.FindPath("properties.name")->as_string(), "Pricing");
  EXPECT_EQ(e.FindPath("properties.utm_source")->as_string(), "newsletter");
  EXPECT_EQ(e.FindPath("properties.utm_medium")->as_string(), "email");
  EXPECT_EQ(e.FindPath("properties.utm_campaign")->as_string(), "spring");
  EXPECT_EQ(e.FindPath("properties.utm_term")->as_string(), "shoes");
  EXPECT_EQ(e.FindPath("properties.context.ip")->as_string(), "203.0.113.9");
  EXPECT_EQ(e.FindPath("properties.context.userAgent")->as_string(), "Mozilla/5.0");
  EXPECT_EQ(e.FindPath("properties.messageId")->as_string(), "page-1");
  // The device joins the profile's identifiers.
  Json profile = ProfileOf(page);
  EXPECT_EQ(*profile.FindPath("externalIds.deviceIds"), J(R"(["device-9"])"));

  Json screen = Ingest(R"({"type":"screen","anonymousId":"anon-p","name":"Home","properties":{"tab":"feed"},
      "timestamp":"2026-03-01T10:05:00Z"})");
  events = EventsOf(screen);
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[1].Find("type")->as_string(), "page_view");
  EXPECT_EQ(events[1].Find("name")->as_string(), "Home");
  EXPECT_EQ(events[1].FindPath("properties.screen")->as_string(), "Home");
  EXPECT_EQ(events[1].FindPath("properties.page")->as_string(), "Home");
  EXPECT_EQ(events[1].FindPath("properties.segmentType")->as_string(), "screen");

  std::vector<Json> sessions = Unwrap(profiles().Sessions(page.Find("profileId")->as_string()));
  ASSERT_EQ(sessions.size(), 1u);
  EXPECT_EQ(sessions[0].Find("firstPage")->as_string(), "https://x.test/pricing");
  EXPECT_EQ(sessions[0].Find("utmSource")->as_string(), "newsletter");
  EXPECT_EQ(sessions[0].Find("utmMedium")->as_string(), "email");
  EXPECT_EQ(sessions[0].Find("utmCampaign")->as_string(), "spring");
  EXPECT_EQ(sessions[0].FindPath("eventTypes.page_view")->as_int(), 2);
  EXPECT_EQ(sessions[0].Find("deviceId")->as_string(), "device-9");
  EXPECT_EQ(sessions[0].Find("userAgent")->as_string(), "Mozilla/5.0");
  EXPECT_EQ(sessions[0].Find("ip")->as_string(), "203.0.113.9");
}

// A browser SDK's page call names its page in context.page only: that url names the session's first page.
TEST_F(SegmentTest, APageNamedOnlyInContextNamesTheSessionsFirstPage) {
  Json page = Ingest(R"({"type":"page","anonymousId":"anon-ctx","timestamp":"2026-03-01T10:00:00Z",
      "context":{"page":{"url":"https://x.test/landing?a=1","path":"/landing","title":"Landing"},
      "userAgent":"Mozilla/5.0 X11"
}
})");
  std::vector<Json> events = EventsOf(page);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].FindPath("properties.url")->as_string(), "https://x.test/landing?a=1");
  EXPECT_EQ(events[0].FindPath("properties.path")->as_string(), "/landing");
  Json own = Ingest(R"({"type":"page","anonymousId":"anon-ctx","timestamp":"2026-03-01T10:01:00Z",
      "properties":{"path":"/own"},"context":{"page":{"url":"https://x.test/ctx","path":"/ctx"}}})");
  events = EventsOf(own);
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[1].FindPath("properties.path")->as_string(), "/own") << "the message's own properties win";
  EXPECT_EQ(events[1].FindPath("properties.url"), nullptr);
  std::vector<Json> sessions = Unwrap(profiles().Sessions(page.Find("profileId")->as_string()));
  ASSERT_EQ(sessions.size(), 1u);
  EXPECT_EQ(sessions[0].Find("firstPage")->as_string(), "https://x.test/landing?a=1");
  EXPECT_EQ(sessions[0].Find("userAgent")->as_string(), "Mozilla/5.0 X11");
  EXPECT_TRUE(sessions[0].Find("ip")->is_null());
  EXPECT_TRUE(sessions[0].Find("deviceId")->is_null());
}

TEST_F(SegmentTest, ScreenOnlySessionsNameTheirFirstPageAfterTheScreen) {
  Json r = Ingest(R"({"type":"screen","userId":"app-user","name":"Onboarding","timestamp":"2026-03-01T10:00:00Z"})");
  std::vector<Json> sessions = Unwrap(profiles().Sessions(r.Find("profileId")->as_string()));
  ASSERT_EQ(sessions.size(), 1u);
  EXPECT_EQ(sessions[0].Find("firstPage")->as_string(), "Onboarding");
}

TEST_F(SegmentTest, MessagePropertiesWinOverAddedKeys) {
  Json r = Ingest(R"({"type":"track","userId":"u-props","event":"Clicked","timestamp":"2026-03-01T10:00:00Z",
      "properties":{"utm_source":"own","context":"mine"},"context":{"campaign":{"source":"theirs"}}})");
  Json e = EventsOf(r)[0];
  EXPECT_EQ(e.FindPath("properties.utm_source")->as_string(), "own");
  EXPECT_EQ(e.FindPath("properties.context")->as_string(), "mine");
}

TEST_F(SegmentTest, GroupIsACustomEventNamedGroup) {
  Json r = Ingest(R"({"type":"group","userId":"u-g","groupId":"acme","traits":{"plan":"enterprise"},
      "timestamp":"2026-03-01T10:00:00Z"})");
  Json e = EventsOf(r)[0];
  EXPECT_EQ(e.Find("type")->as_string(), "custom");
  EXPECT_EQ(e.Find("name")->as_string(), "group");
  EXPECT_EQ(e.FindPath("properties.groupId")->as_string(), "acme");
  EXPECT_EQ(e.FindPath("properties.traits.plan")->as_string(), "enterprise");
}

// ---- the timestamp rule --------------------------------------------------------------------------------------------

TEST_F(SegmentTest, TimestampRule) {
  // timestamp wins.
  Json a = Ingest(R"({"type":"track","userId":"u-t","event":"A","timestamp":"2026-02-01T00:00:00.250Z",
      "originalTimestamp":"2020-01-01T00:00:00Z","sentAt":"2020-01-01T00:00:10Z"})");
  EXPECT_EQ(EventsOf(a).back().Find("timestamp")->as_string(), "2026-02-01T00:00:00.250Z");
  // receivedAt - (sentAt - originalTimestamp): the device clock is a year behind, the message waited 30 s.
  Json b = Ingest(R"({"type":"track","userId":"u-t2","event":"B","originalTimestamp":"2025-03-01T11:59:00Z",
      "sentAt":"2025-03-01T11:59:30Z"})");
  EXPECT_EQ(EventsOf(b).back().Find("timestamp")->as_string(), "2026-03-01T11:59:30.000Z");
  // originalTimestamp without sentAt.
  Json c = Ingest(R"({"type":"track","userId":"u-t3","event":"C","originalTimestamp":"2026-01-05T08:00:00Z"})");
  EXPECT_EQ(EventsOf(c).back().Find("timestamp")->as_string(), "2026-01-05T08:00:00.000Z");
  // Nothing: the time of receipt.
  Json d = Ingest(R"({"type":"track","userId":"u-t4","event":"D"})");
  EXPECT_EQ(EventsOf(d).back().Find("timestamp")->as_string(), "2026-03-01T12:00:00.000Z");
  // In a batch, the batch's sentAt serves messages without one.
  Json batch = Unwrap(IngestSegmentBatchJson(*engine_, R"({"sentAt":"2026-03-01T11:00:10Z","batch":[
      {"type":"track","userId":"u-t5","event":"E","originalTimestamp":"2026-03-01T11:00:00Z"}]})",
                                             kReceived, options_seg_));
  EXPECT_EQ(batch.Find("accepted")->as_int(), 1);
  EXPECT_EQ(EventsOf(batch.Find("results")->items()[0]).back().Find("timestamp")->as_string(),
            "2026-03-01T11:59:50.000Z");
}

// ---- identify and alias --------------------------------------------------------------------------------------------

TEST_F(SegmentTest, IdentifyMapsTraits) {
  Json r = Ingest(R"({"type":"identify","userId":"u-ada","messageId":"id-1","traits":{
      "first_name":"Ada","lastName":"Lovelace","name":"Countess Ada","email":"Ada@Example.com",
      "phone":"+1 650 253 0000","address":{"city":"London","country":"GB","postal_code":"W1","street":"1 St"},
      "plan":"gold","logins":3}})");
  EXPECT_EQ(r.Find("type")->as_string(), "identify");
  EXPECT_EQ(r.Find("identifyId")->as_string(), "id-1");
  EXPECT_TRUE(r.Find("profileCreated")->as_bool());
  EXPECT_FALSE(r.Find("duplicate")->as_bool());
  Json p = ProfileOf(r);
  EXPECT_EQ(p.FindPath("attributes.firstName")->as_string(), "Ada");
  EXPECT_EQ(p.FindPath("attributes.lastName")->as_string(), "Lovelace");
  EXPECT_EQ(p.FindPath("attributes.email")->as_string(), "Ada@Example.com");
  EXPECT_EQ(p.FindPath("attributes.city")->as_string(), "London");
  EXPECT_EQ(p.FindPath("attributes.country")->as_string(), "GB");
  EXPECT_EQ(p.FindPath("attributes.postalCode")->as_string(), "W1");
  EXPECT_EQ(*p.FindPath("attributes.customFields"),
            J(R"({"name":"Countess Ada","address":{"street":"1 St"},"plan":"gold","logins":3})"));
  // traits.email / phone are identifiers too.
  EXPECT_EQ(p.FindPath("externalIds.email")->as_string(), "ada@example.com");
  EXPECT_EQ(p.FindPath("externalIds.phone")->as_string(), "+16502530000");
  EXPECT_EQ(p.FindPath("externalIds.customerId")->as_string(), "u-ada");
  // An event by email finds the same person.
  Json t = Ingest(R"({"type":"track","userId":"u-ada","event":"Seen","timestamp":"2026-03-01T10:00:00Z"})");
  EXPECT_EQ(t.Find("profileId")->as_string(), r.Find("profileId")->as_string());
}

TEST_F(SegmentTest, NameIsSplitOnlyWhenFirstAndLastNameAreAbsent) {
  Json p = ProfileOf(Ingest(R"({"type":"identify","userId":"u-n1","traits":{"name":"Grace Brewster Hopper"}})"));
  EXPECT_EQ(p.FindPath("attributes.firstName")->as_string(), "Grace");
  EXPECT_EQ(p.FindPath("attributes.lastName")->as_string(), "Brewster Hopper");
  Json q = ProfileOf(Ingest(R"({"type":"identify","userId":"u-n2","traits":{"name":"Alan Turing","lastName":"T."}})"));
  EXPECT_EQ(q.FindPath("attributes.firstName"), nullptr);
  EXPECT_EQ(q.FindPath("attributes.lastName")->as_string(), "T.");
  EXPECT_EQ(q.FindPath("attributes.customFields.name")->as_string(), "Alan Turing");
  Json s = ProfileOf(Ingest(R"({"type":"identify","userId":"u-n3","traits":{"name":"Plato"}})"));
  EXPECT_EQ(s.FindPath("attributes.firstName")->as_string(), "Plato");
  EXPECT_EQ(s.FindPath("attributes.lastName"), nullptr);
}

TEST_F(SegmentTest, NullTraitsDeleteAttributes) {
  Json r = Ingest(R"({"type":"identify","userId":"u-null","traits":{"firstName":"Kim","plan":"pro"}})");
  Ingest(R"({"type":"identify","userId":"u-null","traits":{"firstName":null,"plan":null}})");
  Json p = ProfileOf(r);
  EXPECT_EQ(p.FindPath("attributes.firstName"), nullptr);
  EXPECT_EQ(p.FindPath("attributes.customFields.plan"), nullptr);
}

TEST_F(SegmentTest, InvalidEmailIsAnIdentityIssueNotAnError) {
  Json r = Ingest(R"({"type":"identify","userId":"u-bad-email","traits":{"email":"not-an-email"}})");
  Json p = ProfileOf(r);
  EXPECT_EQ(p.FindPath("attributes.email")->as_string(), "not-an-email");
  EXPECT_EQ(p.FindPath("externalIds.email"), nullptr);
  const Json* issues = p.Find("identityIssues");
  ASSERT_NE(issues, nullptr);
  ASSERT_EQ(issues->size(), 1u);
  EXPECT_EQ(issues->items()[0].Find("type")->as_string(), "email");
}

TEST_F(SegmentTest, IdentifyLinksAnonymousActivityToTheUser) {
  Json anon = Ingest(R"({"type":"page","anonymousId":"anon-42","properties":{"path":"/"},
      "timestamp":"2026-03-01T10:00:00Z"})");
  Json who = Ingest(R"({"type":"identify","anonymousId":"anon-42","userId":"user-42","traits":{"plan":"pro"}})");
  EXPECT_EQ(who.Find("profileId")->as_string(), anon.Find("profileId")->as_string());
  EXPECT_FALSE(who.Find("profileCreated")->as_bool());
  Json later = Ingest(R"({"type":"track","userId":"user-42","event":"Order Completed",
      "properties":{"total":12.5},"timestamp":"2026-03-01T10:10:00Z"})");
  EXPECT_EQ(later.Find("profileId")->as_string(), anon.Find("profileId")->as_string());
  Json p = ProfileOf(later);
  EXPECT_EQ(p.FindPath("computed.eventCount")->as_int(), 2);
  EXPECT_EQ(p.FindPath("externalIds.anonymousId")->as_string(), "anon-42");
  EXPECT_EQ(p.FindPath("attributes.customFields.plan")->as_string(), "pro");
}

TEST_F(SegmentTest, IdentifyMergesAnAnonymousProfileIntoTheUsers) {
  Json user = Ingest(R"({"type":"track","userId":"user-7","event":"Logged In","timestamp":"2026-03-01T09:00:00Z"})");
  Json anon = Ingest(R"({"type":"track","anonymousId":"anon-7","event":"Browsed","timestamp":"2026-03-01T09:30:00Z"})");
  ASSERT_NE(user.Find("profileId")->as_string(), anon.Find("profileId")->as_string());
  Json who = Ingest(R"({"type":"identify","anonymousId":"anon-7","userId":"user-7"})");
  EXPECT_EQ(who.Find("profileId")->as_string(), user.Find("profileId")->as_string());
  ASSERT_NE(who.Find("mergedProfiles"), nullptr);
  EXPECT_EQ(who.Find("mergedProfiles")->items()[0].as_string(), anon.Find("profileId")->as_string());
  EXPECT_EQ(ProfileOf(user).FindPath("computed.eventCount")->as_int(), 2);
}

TEST_F(SegmentTest, AliasLinksPreviousIdAsAnAnonymousId) {
  Json before =
      Ingest(R"({"type":"track","anonymousId":"visitor-3","event":"Viewed","timestamp":"2026-03-01T09:00:00Z"})");
  Json user = Ingest(R"({"type":"track","userId":"member-3","event":"Joined","timestamp":"2026-03-01T09:10:00Z"})");
  Json alias = Ingest(R"({"type":"alias","previousId":"visitor-3","userId":"member-3","messageId":"alias-3"})");
  EXPECT_EQ(alias.Find("type")->as_string(), "alias");
  EXPECT_EQ(alias.Find("profileId")->as_string(), user.Find("profileId")->as_string());
  Json merged = Unwrap(profiles().Get(before.Find("profileId")->as_string()));
  EXPECT_EQ(merged.Find("id")->as_string(), user.Find("profileId")->as_string());
  EXPECT_EQ(merged.FindPath("externalIds.anonymousId")->as_string(), "visitor-3");
  Json why = Unwrap(engine_->identity().Explain(user.Find("profileId")->as_string()));
  EXPECT_EQ(why.Find("merges")->size(), 1u);
}

// ---- validation and limits -----------------------------------------------------------------------------------------

TEST_F(SegmentTest, ValidationErrorsNameTheField) {
  struct Case {
    const char* message;
    const char* field;
  } cases[] = {
      {R"({"type":"track","event":"X"})", "userId"},
      {R"({"type":"track","userId":"u"})", "event"},
      {R"({"type":"track","userId":"u","event":""})", "event"},
      {R"({"type":"track","userId":7.5,"event":"X"})", "userId"},
      {R"({"type":"track","userId":"u","event":"X","properties":[1]})", "properties"},
      {R"({"type":"track","userId":"u","event":"X","timestamp":"yesterday"})", "timestamp"},
      {R"({"type":"track","userId":"u","event":"X","originalTimestamp":"2026-01-01T00:00:00Z","sentAt":false})",
       "sentAt"},
      {R"({"type":"track","userId":"u","event":"X","context":"web"})", "context"},
      {R"({"type":"track","userId":"u","event":"X","context":{"device":{"id":["d"]}}})", "context.device.id"},
      {R"({"type":"track","userId":"u","event":"Order Completed","properties":{"revenue":"12"}})",
       "properties.revenue"},
      {R"({"type":"identify","userId":"u","traits":"vip"})", "traits"},
      {R"({"type":"identify","userId":"u","traits":{"firstName":5}})", "traits.firstName"},
      {R"({"type":"identify","userId":"u","traits":{"address":{"city":["x"]}}})", "traits.address.city"},
      {R"({"type":"identify","userId":"u","traits":{"address":"Main St"}})", "traits.address"},
      {R"({"type":"alias","userId":"u"})", "previousId"},
      {R"({"type":"alias","previousId":"p"})", "userId"},
      {R"({"type":"group","userId":"u"})", "groupId"},
      {R"({"type":"checkout","userId":"u"})", "type"},
      {R"({"userId":"u"})", "type"},
      {R"({"type":"track","messageId":{"id":1},"userId":"u","event":"X"})", "messageId"},
  };
  const int64_t before = EventCount();
  for (const Case& c : cases) {
    Status s = IngestError(c.message);
    EXPECT_TRUE(s.IsInvalidArgument()) << c.message << " -> " << s.ToString();
    EXPECT_EQ(s.field(), c.field) << c.message << " -> " << s.ToString();
  }
  EXPECT_EQ(EventCount(), before);  // nothing was written
  Status mismatch = IngestError(R"({"type":"track","userId":"u","event":"X"})", "page");
  EXPECT_EQ(mismatch.field(), "type");
  // The route names the type when the message does not.
  Json r = Ingest(R"({"userId":"u","event":"X","timestamp":"2026-03-01T10:00:00Z"})", kReceived, "track");
  EXPECT_EQ(r.Find("type")->as_string(), "track");
}

TEST_F(SegmentTest, MessageAndBatchSizeLimits) {
  const std::string big(33 << 10, 'x');
  Status s = IngestError(R"({"type":"track","userId":"u","event":"X","properties":{"blob":")" + big + R"("}})");
  EXPECT_TRUE(s.IsInvalidArgument()) << s.ToString();

  // A batch item over 32 KiB is rejected alone.
  std::string body =
      R"({"batch":[{"type":"track","userId":"u-big","event":"Small","timestamp":"2026-03-01T10:00:00Z"},)"
      R"({"type":"track","userId":"u-big","event":"Big","properties":{"blob":")" +
      big + R"("}}]})";
  Json batch = Unwrap(IngestSegmentBatchJson(*engine_, body, kReceived, options_seg_));
  EXPECT_EQ(batch.Find("accepted")->as_int(), 1);
  EXPECT_EQ(batch.Find("rejected")->as_int(), 1);
  const Json& bad = batch.Find("results")->items()[1];
  EXPECT_EQ(bad.Find("index")->as_int(), 1);
  EXPECT_EQ(bad.Find("status")->as_string(), "invalid_argument");

  // A batch over 500 KiB is rejected whole, and writes nothing.
  const int64_t before = EventCount();
  std::string huge = R"({"batch":[)";
  for (int i = 0; i < 20; ++i) {
    huge += std::string(i ? "," : "") + R"({"type":"track","userId":"u-huge","event":"E","properties":{"blob":")" +
            std::string(30 << 10, 'y') + R"("}})";
  }
  huge += "]}";
  Result<Json> whole = IngestSegmentBatchJson(*engine_, huge, kReceived, options_seg_);
  ASSERT_FALSE(whole.ok());
  EXPECT_TRUE(whole.status().IsInvalidArgument());
  EXPECT_EQ(whole.status().field(), "batch");
  EXPECT_EQ(EventCount(), before);

  Result<Json> not_batch = IngestSegmentBatchJson(*engine_, R"({"messages":[]})", kReceived, options_seg_);
  EXPECT_EQ(not_batch.status().field(), "batch");
}

// A message is held to the limits by its own size: the fields the mapping adds (source, segmentType, the campaign
// copied to utm_*) do not count against Options::max_event_bytes.
TEST_F(SegmentTest, AMessageJustUnderTheLimitIsStoredWhateverTheMappingAdds) {
  // Pads `head` + padding + `tail` to exactly `size` bytes of compact JSON.
  auto sized = [](const std::string& head, const std::string& tail, size_t size) {
    const size_t fixed = head.size() + tail.size();
    EXPECT_LT(fixed, size);
    std::string m = head + std::string(size - fixed, 'x') + tail;
    EXPECT_EQ(J(m).Dump().size(), size);
    return m;
  };
  const std::string campaign = R"("context":{"campaign":{"source":")" + std::string(2000, 's') +
                               R"(","medium":"email","name":")" + std::string(2000, 'n') +
                               R"("},"userAgent":"Mozilla/5.0"})";
  const size_t limit = 32u << 10;
  const std::string track = sized(R"({"type":"track","userId":"u-edge","event":"Big","messageId":"m-edge-1",)" +
                                      campaign + R"(,"properties":{"blob":")",
                                  R"("}})", limit);
  Json stored = Ingest(track);
  std::vector<Json> events = EventsOf(stored);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_GT(events[0].Dump().size(), limit) << "the mapped event is larger than the message";
  EXPECT_EQ(events[0].FindPath("properties.utm_source")->as_string(), std::string(2000, 's'));

  // An identify whose traits fill the message.
  const std::string identify =
      sized(R"({"type":"identify","userId":"u-edge","messageId":"m-edge-2",)" + campaign + R"(,"traits":{"bio":")",
            R"("}})", limit);
  Json who = Ingest(identify);
  EXPECT_EQ(who.Find("profileId")->as_string(), stored.Find("profileId")->as_string());

  // And in a batch; one byte more is over the limit.
  const std::string over =
      sized(R"({"type":"track","userId":"u-edge","event":"Over","properties":{"blob":")", R"("}})", limit + 1);
  const std::string at = sized(R"({"type":"track","userId":"u-edge","event":"At","messageId":"m-edge-3",)" + campaign +
                                   R"(,"properties":{"blob":")",
                               R"("}})", limit);
  Json batch = Unwrap(IngestSegmentBatchJson(*engine_, "[" + at + "," + over + "]", kReceived, options_seg_));
  EXPECT_EQ(batch.Find("accepted")->as_int(), 1) << batch.Dump().substr(0, 400);
  EXPECT_EQ(batch.Find("results")->items()[1].Find("status")->as_string(), "invalid_argument");

  // The engine's own limit still holds for events sent to it directly.
  Json direct = J(R"({"type":"custom","name":"Big","customerId":"u-edge","properties":{"blob":")" +
                  std::string(limit, 'x') + R"("}})");
  EXPECT_TRUE(engine_->events().Track(direct).status().IsInvalidArgument());
}

// An engine whose event limit is below the message limit holds messages to it, as received.
TEST_F(SegmentTest, TheEnginesSmallerEventLimitAppliesToTheMessage) {
  options_.max_event_bytes = 4096;
  Reopen();
  const std::string fits =
      R"({"type":"track","userId":"u-small","event":"A","properties":{"blob":")" + std::string(3900, 'x') + R"("}})";
  EXPECT_NE(Ingest(fits).Find("profileId"), nullptr);
  Status s = IngestError(R"({"type":"track","userId":"u-small","event":"B","properties":{"blob":")" +
                         std::string(4200, 'x') + R"("}})");
  EXPECT_TRUE(s.IsInvalidArgument()) << s.ToString();
  EXPECT_NE(s.message().find("event limit of 4096"), std::string::npos) << s.ToString();
}

// ---- batches -------------------------------------------------------------------------------------------------------

TEST_F(SegmentTest, BatchAppliesMessagesInOrderWithPerItemResults) {
  Json batch = Unwrap(IngestSegmentBatchJson(*engine_, R"({"context":{"campaign":{"source":"ads"}},"batch":[
      {"type":"page","anonymousId":"anon-b","properties":{"path":"/shoes"},"timestamp":"2026-03-01T10:00:00Z"},
      {"type":"track","anonymousId":"anon-b","event":"Product Viewed","timestamp":"2026-03-01T10:01:00Z"},
      {"type":"identify","anonymousId":"anon-b","userId":"user-b","traits":{"email":"b@example.com"}},
      {"type":"track","userId":"user-b","event":"Product Added","timestamp":"2026-03-01T10:02:00Z"},
      {"type":"track","event":"Broken"},
      {"type":"track","userId":"user-b","event":"Order Completed","properties":{"revenue":30},
       "timestamp":"2026-03-01T10:03:00Z"}]})",
                                             kReceived, options_seg_));
  EXPECT_EQ(batch.Find("accepted")->as_int(), 5);
  EXPECT_EQ(batch.Find("rejected")->as_int(), 1);
  const std::vector<Json>& results = batch.Find("results")->items();
  ASSERT_EQ(results.size(), 6u);
  const std::string profile = results[0].Find("profileId")->as_string();
  for (size_t i : {0, 1, 2, 3, 5}) {
    EXPECT_EQ(results[i].Find("index")->as_int(), static_cast<int64_t>(i));
    EXPECT_EQ(results[i].Find("status")->as_string(), "ok");
    EXPECT_EQ(results[i].Find("profileId")->as_string(), profile) << i;
  }
  EXPECT_EQ(results[2].Find("type")->as_string(), "identify");
  EXPECT_EQ(results[4].Find("status")->as_string(), "invalid_argument");
  EXPECT_EQ(results[4].FindPath("error.field")->as_string(), "userId");
  Json p = Unwrap(profiles().Get(profile));
  EXPECT_EQ(p.FindPath("computed.eventCount")->as_int(), 4);
  EXPECT_EQ(p.FindPath("computed.purchaseCount")->as_int(), 1);
  EXPECT_EQ(p.FindPath("externalIds.email")->as_string(), "b@example.com");
  // The batch's context reached every event.
  std::vector<Json> sessions = Unwrap(profiles().Sessions(profile));
  ASSERT_EQ(sessions.size(), 1u);
  EXPECT_EQ(sessions[0].Find("utmSource")->as_string(), "ads");
  EXPECT_EQ(sessions[0].Find("firstPage")->as_string(), "/shoes");
}

// ---- deduplication -------------------------------------------------------------------------------------------------

TEST_F(SegmentTest, RetryWithTheSameTimestampIsADuplicateWithoutTheWindow) {
  const char* message = R"({"type":"track","userId":"u-r","event":"Order Completed","messageId":"msg-r",
      "properties":{"revenue":5},"timestamp":"2026-03-01T10:00:00Z"})";
  Json first = Ingest(message);
  Json again = Ingest(message, kReceived + 3600LL * 24 * 30 * 1000000);  // a month later
  EXPECT_FALSE(first.Find("duplicate")->as_bool());
  EXPECT_TRUE(again.Find("duplicate")->as_bool());
  EXPECT_EQ(again.Find("eventId")->as_string(), "msg-r");
  EXPECT_EQ(ProfileOf(first).FindPath("computed.purchaseCount")->as_int(), 1);
}

// A retry of a message without `timestamp` gets a new receivedAt, so a new computed time: only the dedupe window
// recognises it. Without a deduplicator it is stored twice (the documented limit).
TEST_F(SegmentTest, RetryWithAComputedTimestampNeedsTheWindow) {
  const char* message = R"({"type":"track","anonymousId":"a-w","event":"Signed Up","messageId":"msg-w",
      "originalTimestamp":"2026-03-01T11:59:00Z","sentAt":"2026-03-01T11:59:01Z"})";
  Json a = Ingest(message);
  Json b = Ingest(message, kReceived + 2000000);
  EXPECT_FALSE(b.Find("duplicate")->as_bool());
  EXPECT_EQ(EventsOf(a).size(), 2u);

  options_seg_.deduplicator = std::make_shared<SegmentDeduplicator>();
  const char* other = R"({"type":"track","anonymousId":"a-w2","event":"Signed Up","messageId":"msg-w2",
      "originalTimestamp":"2026-03-01T11:59:00Z","sentAt":"2026-03-01T11:59:01Z"})";
  Json c = Ingest(other);
  Json d = Ingest(other, kReceived + 2000000);  // 2 s later
  EXPECT_TRUE(d.Find("duplicate")->as_bool());
  EXPECT_EQ(d.Find("eventId")->as_string(), "msg-w2");
  ASSERT_EQ(EventsOf(c).size(), 1u);
  EXPECT_EQ(EventsOf(c)[0].Find("timestamp")->as_string(), "2026-03-01T11:59:59.000Z");
  EXPECT_EQ(options_seg_.deduplicator->size(), 1u);
}

TEST_F(SegmentTest, WindowEndsAfterDedupeWindowSeconds) {
  options_seg_.deduplicator = std::make_shared<SegmentDeduplicator>();
  options_seg_.dedupe_window_seconds = 60;
  const char* message = R"({"type":"track","userId":"u-win","event":"Ping","messageId":"msg-win"})";
  Json a = Ingest(message);
  Json b = Ingest(message, kReceived + 59 * 1000000LL);
  Json c = Ingest(message, kReceived + 120 * 1000000LL);  // past the window: a new event at its own time
  EXPECT_FALSE(a.Find("duplicate")->as_bool());
  EXPECT_TRUE(b.Find("duplicate")->as_bool());
  EXPECT_FALSE(c.Find("duplicate")->as_bool());
  EXPECT_EQ(EventsOf(a).size(), 2u);
}

TEST_F(SegmentTest, IdentifyRetryWithinTheWindowChangesNothing) {
  options_seg_.deduplicator = std::make_shared<SegmentDeduplicator>();
  Json first = Ingest(R"({"type":"identify","userId":"u-i","messageId":"ident-1","traits":{"plan":"basic"}})");
  Ingest(R"({"type":"identify","userId":"u-i","messageId":"ident-2","traits":{"plan":"pro"}})");
  // A late retry of the first must not put "basic" back.
  Json retry = Ingest(R"({"type":"identify","userId":"u-i","messageId":"ident-1","traits":{"plan":"basic"}})",
                      kReceived + 5000000);
  EXPECT_TRUE(retry.Find("duplicate")->as_bool());
  EXPECT_EQ(retry.Find("profileId")->as_string(), first.Find("profileId")->as_string());
  EXPECT_EQ(ProfileOf(first).FindPath("attributes.customFields.plan")->as_string(), "pro");
}

// A writer that may not read identifier links ingests with the deduplicator on: the deduplicator's bookkeeping
// (admin-only idempotency keys) runs as "local", and a retry's answer says which profile it went to only to a
// principal that may read the links, from memory and from the database alike.
TEST_F(SegmentTest, ARestrictedWriterIngestsWithDedupeAndIsNotToldWhoARetryWasFor) {
  Unwrap(engine_->governance().SetPolicy(J(R"({"roles": {
      "collector": {"read": ["public"], "write": ["public", "internal", "pii"]},
      "steward": {"read": ["public", "internal", "pii"], "write": ["public", "internal", "pii"]}},
      "principals": {"col": {"roles": ["collector"]}, "rw": {"roles": ["steward"]}}})")));
  options_seg_.deduplicator = std::make_shared<SegmentDeduplicator>();
  const char* identify = R"({"type":"identify","userId":"u-g","messageId":"g-1","traits":{"plan":"basic"}})";
  const char* track = R"({"type":"track","userId":"u-g","event":"Signed Up","messageId":"g-2",
      "originalTimestamp":"2026-03-01T11:59:00Z","sentAt":"2026-03-01T11:59:01Z"})";
  auto expect_hidden = [](const Json& r, bool duplicate) {
    EXPECT_EQ(r.Find("profileId"), nullptr) << r.Dump();
    ASSERT_NE(r.Find("linksHidden"), nullptr) << r.Dump();
    EXPECT_EQ(r.Find("duplicate")->as_bool(), duplicate) << r.Dump();
  };
  {
    ScopedPrincipal col("col");
    expect_hidden(Ingest(identify), false);
    expect_hidden(Ingest(track), false);
    Ingest(R"({"type":"identify","userId":"u-g","messageId":"g-3","traits":{"plan":"pro"}})");
    expect_hidden(Ingest(identify, kReceived + 5000000), true);  // from memory
    expect_hidden(Ingest(track, kReceived + 5000000), true);
  }
  const std::string profile = Unwrap(engine_->identity().Identify(J(R"({"identifiers": {"customerId": "u-g"}})")))
                                  .Find("profileId")
                                  ->as_string();
  Reopen();
  options_seg_.deduplicator = std::make_shared<SegmentDeduplicator>();
  {
    ScopedPrincipal col("col");
    expect_hidden(Ingest(identify, kReceived + 9000000), true);  // from the database
    expect_hidden(Ingest(track, kReceived + 9000000), true);
  }
  {
    ScopedPrincipal rw("rw");  // may read the links: told
    Json retry = Ingest(identify, kReceived + 10000000);
    EXPECT_TRUE(retry.Find("duplicate")->as_bool()) << retry.Dump();
    EXPECT_EQ(retry.Find("profileId")->as_string(), profile);
  }
  Json stored = Unwrap(profiles().Get(profile));
  EXPECT_EQ(stored.FindPath("attributes.customFields.plan")->as_string(), "pro");  // no retry re-applied "basic"
  EXPECT_EQ(Unwrap(profiles().Timeline(profile, EventQuery{})).items.size(), 1u);
}

// Identity::Identify with a key to check: applied once, and a stored key that has expired does not count.
TEST_F(SegmentTest, IdentifyWithAKeyToCheckIsAppliedOnce) {
  IdempotencyKey key;
  key.key = "k-once";
  key.expires_us = 2000;
  key.applied_if_stored_at_us = 1000;
  Json first = Unwrap(engine_->identity().Identify(
      J(R"({"identifiers": {"customerId": "u-once"}, "attributes": {"firstName": "Ann"}})"), key));
  EXPECT_EQ(first.Find("duplicate"), nullptr) << first.Dump();
  Json again = Unwrap(engine_->identity().Identify(
      J(R"({"identifiers": {"customerId": "u-once"}, "attributes": {"firstName": "Bea"}})"), key));
  EXPECT_TRUE(again.Find("duplicate")->as_bool()) << again.Dump();
  EXPECT_EQ(again.Find("profileId")->as_string(), first.Find("profileId")->as_string());
  const std::string id = first.Find("profileId")->as_string();
  EXPECT_EQ(Unwrap(profiles().Get(id)).FindPath("attributes.firstName")->as_string(), "Ann");
  key.applied_if_stored_at_us = 2000;  // the stored key expired at 2000
  Json later = Unwrap(engine_->identity().Identify(
      J(R"({"identifiers": {"customerId": "u-once"}, "attributes": {"firstName": "Cy"}})"), key));
  EXPECT_EQ(later.Find("duplicate"), nullptr) << later.Dump();
  EXPECT_EQ(Unwrap(profiles().Get(id)).FindPath("attributes.firstName")->as_string(), "Cy");
}

TEST_F(SegmentTest, MessageIdsThatAreNotIdsAreHashedStably) {
  const char* message = R"({"type":"track","userId":"u-h","event":"Odd","messageId":"{weird id} with spaces/äö",
      "timestamp":"2026-03-01T10:00:00Z"})";
  Json a = Ingest(message);
  Json b = Ingest(message);
  const std::string id = a.Find("eventId")->as_string();
  EXPECT_EQ(id.substr(0, 4), "seg-");
  EXPECT_EQ(id.size(), 36u);
  EXPECT_EQ(b.Find("eventId")->as_string(), id);
  EXPECT_TRUE(b.Find("duplicate")->as_bool());
  EXPECT_EQ(EventsOf(a)[0].FindPath("properties.messageId")->as_string(), "{weird id} with spaces/äö");
}

TEST_F(SegmentTest, DuplicateInsideOneBatch) {
  options_seg_.deduplicator = std::make_shared<SegmentDeduplicator>();
  Json batch = Unwrap(IngestSegmentBatchJson(*engine_, R"([
      {"type":"track","userId":"u-dup","event":"E","messageId":"dup-1","originalTimestamp":"2026-03-01T11:00:00Z"},
      {"type":"track","userId":"u-dup","event":"E","messageId":"dup-1","originalTimestamp":"2026-03-01T11:00:05Z"}])",
                                             kReceived, options_seg_));
  EXPECT_EQ(batch.Find("results")->items()[0].Find("status")->as_string(), "ok");
  EXPECT_EQ(batch.Find("results")->items()[1].Find("status")->as_string(), "duplicate");
  EXPECT_EQ(EventsOf(batch.Find("results")->items()[0]).size(), 1u);
}

TEST_F(SegmentTest, DeduplicatorForgetsTheOldestPastItsCapacity) {
  options_seg_.deduplicator = std::make_shared<SegmentDeduplicator>(1);
  const char* first = R"({"type":"track","userId":"u-cap","event":"E","messageId":"cap-1"})";
  Ingest(first);
  Ingest(R"({"type":"track","userId":"u-cap","event":"E","messageId":"cap-2"})", kReceived + 1000);
  EXPECT_EQ(options_seg_.deduplicator->size(), 1u);
  // Memory forgot cap-1; the database did not: its retry with a new receipt time is still a duplicate.
  Json retry = Ingest(first, kReceived + 2000000);
  EXPECT_TRUE(retry.Find("duplicate")->as_bool());
  EXPECT_EQ(EventCount(), 2);
}

// The window holds across a restart: a new process (a new deduplicator, the database reopened) still recognises
// retries whose computed time differs, events and identifies alike, until the window has passed.
TEST_F(SegmentTest, WindowHoldsAcrossRestarts) {
  options_seg_.deduplicator = std::make_shared<SegmentDeduplicator>();
  options_seg_.dedupe_window_seconds = 3600;
  const char* event = R"({"type":"track","anonymousId":"a-rs","event":"Order Completed","messageId":"rs-1",
      "properties":{"revenue":5},"originalTimestamp":"2026-03-01T11:59:00Z","sentAt":"2026-03-01T11:59:01Z"})";
  const char* identify = R"({"type":"identify","userId":"u-rs","messageId":"rs-2","traits":{"plan":"basic"}})";
  Json first = Ingest(event);
  Json who = Ingest(identify);
  Ingest(R"({"type":"identify","userId":"u-rs","messageId":"rs-3","traits":{"plan":"pro"}})");
  Reopen();
  options_seg_.deduplicator = std::make_shared<SegmentDeduplicator>();
  Json retry = Ingest(event, kReceived + 30 * 1000000LL);  // a new receipt time: a new computed time
  EXPECT_TRUE(retry.Find("duplicate")->as_bool()) << retry.Dump();
  EXPECT_EQ(retry.Find("profileId")->as_string(), first.Find("profileId")->as_string());
  ASSERT_EQ(EventsOf(first).size(), 1u);
  EXPECT_EQ(ProfileOf(first).FindPath("computed.purchaseCount")->as_int(), 1);
  Json again = Ingest(identify, kReceived + 40 * 1000000LL);
  EXPECT_TRUE(again.Find("duplicate")->as_bool());
  EXPECT_EQ(ProfileOf(who).FindPath("attributes.customFields.plan")->as_string(), "pro");
  // Remembered by memory again after the database answered once.
  EXPECT_TRUE(Ingest(event, kReceived + 50 * 1000000LL).Find("duplicate")->as_bool());
  // Past the window (after another restart): a new event at its own time.
  Reopen();
  options_seg_.deduplicator = std::make_shared<SegmentDeduplicator>();
  Json late = Ingest(event, kReceived + 7200 * 1000000LL);
  EXPECT_FALSE(late.Find("duplicate")->as_bool());
  EXPECT_EQ(EventsOf(first).size(), 2u);
}

TEST(IdempotencyKeys, RememberRecallExpireAndValidate) {
  testing::TempDir dir;
  auto engine = Unwrap(Engine::Open(Options(), dir.path()));
  Events& events = engine->events();
  ASSERT_TRUE(events.RememberKey("k", "v1", 1000).ok());
  EXPECT_EQ(Unwrap(events.RecallKey("k", 999)), std::optional<std::string>("v1"));
  EXPECT_EQ(Unwrap(events.RecallKey("k", 1000)), std::nullopt);  // expired at 1000
  EXPECT_EQ(Unwrap(events.RecallKey("other", 0)), std::nullopt);
  ASSERT_TRUE(events.RememberKey("k", "v2", 5000).ok());  // replaces
  EXPECT_EQ(Unwrap(events.RecallKey("k", 999)), std::optional<std::string>("v2"));
  EXPECT_TRUE(events.RememberKey("", "v", 1).IsInvalidArgument());
  EXPECT_TRUE(events.RememberKey(std::string(513, 'k'), "v", 1).IsInvalidArgument());
  EXPECT_TRUE(events.RememberKey("k", std::string(4097, 'v'), 1).IsInvalidArgument());
  EXPECT_TRUE(events.RecallKey("", 0).status().IsInvalidArgument());
  // Keys starting with 0x01 are the engine's own (the index that erasure follows).
  EXPECT_TRUE(events.RememberKey(std::string("\x01k"), "v", 1).IsInvalidArgument());
  EXPECT_TRUE(events.RecallKey(std::string("\x01k"), 0).status().IsInvalidArgument());
  engine.reset();
  engine = Unwrap(Engine::Open(Options(), dir.path()));
  EXPECT_EQ(Unwrap(engine->events().RecallKey("k", 4999)), std::optional<std::string>("v2"));
}

// Keys written with items: only with a stored item (not a rejected one, not a duplicate), naming its profile.
TEST(IdempotencyKeys, WrittenWithTheItemsTheyKeep) {
  testing::TempDir dir;
  auto engine = Unwrap(Engine::Open(Options(), dir.path()));
  auto key = [](const std::string& k) {
    IdempotencyKey out;
    out.key = k;
    out.value.Set("note", k);
    out.expires_us = 5000;
    return out;
  };
  std::vector<Json> events = {J(R"({"id":"w1","type":"page_view","customerId":"kw","timestamp":1000})"),
                              J(R"({"id":"w2","type":"teleport","customerId":"kw"})"),
                              J(R"({"id":"w1","type":"page_view","customerId":"kw","timestamp":1000})"),
                              J(R"({"id":"w3","type":"page_view","customerId":"kw","timestamp":2000})")};
  BatchResult r = Unwrap(engine->events().TrackBatch(events, {key("k1"), key("k2"), key("k3"), IdempotencyKey()}));
  ASSERT_TRUE(r.items[0].status.ok());
  EXPECT_FALSE(r.items[1].status.ok());
  EXPECT_TRUE(r.items[2].result.duplicate);
  EXPECT_TRUE(r.items[3].status.ok());
  auto k1 = Unwrap(engine->events().RecallKey("k1", 0));
  ASSERT_TRUE(k1.has_value());
  Json v1 = Unwrap(Json::Parse(*k1));
  EXPECT_EQ(v1.Find("note")->as_string(), "k1");
  EXPECT_EQ(v1.Find("profileId")->as_string(), r.items[0].result.profile_id);
  EXPECT_EQ(Unwrap(engine->events().RecallKey("k2", 0)), std::nullopt);     // rejected
  EXPECT_EQ(Unwrap(engine->events().RecallKey("k3", 0)), std::nullopt);     // a duplicate stores nothing
  EXPECT_EQ(Unwrap(engine->events().RecallKey("k1", 5000)), std::nullopt);  // expired

  Json who = Unwrap(engine->identity().Identify(J(R"({"identifiers":{"email":"kw@example.com"}})"), key("k4")));
  auto k4 = Unwrap(engine->events().RecallKey("k4", 0));
  ASSERT_TRUE(k4.has_value());
  EXPECT_EQ(Unwrap(Json::Parse(*k4)).Find("profileId")->as_string(), who.Find("profileId")->as_string());

  // Bad keys fail the call and write nothing.
  const int64_t before = Unwrap(engine->Stats()).Find("events")->as_int();
  const std::vector<Json> one = {J(R"({"type":"page_view","customerId":"kw2"})")};
  EXPECT_TRUE(engine->events().TrackBatch(one, {key("a"), key("b")}).status().IsInvalidArgument());
  EXPECT_TRUE(engine->events().TrackBatch(one, {key(std::string(513, 'k'))}).status().IsInvalidArgument());
  IdempotencyKey not_object = key("c");
  not_object.value = Json("text");
  EXPECT_TRUE(engine->events().TrackBatch(one, {not_object}).status().IsInvalidArgument());
  IdempotencyKey too_big = key("d");
  too_big.value.Set("pad", std::string(4000, 'p'));
  EXPECT_TRUE(engine->identity()
                  .Identify(J(R"({"identifiers":{"email":"kw3@example.com"}})"), too_big)
                  .status()
                  .IsInvalidArgument());
  EXPECT_EQ(Unwrap(engine->Stats()).Find("events")->as_int(), before);
  EXPECT_EQ(Unwrap(engine->events().RecallKey("d", 0)), std::nullopt);
}

// A fresh messageId is kept in the same write as its message: no separate key write (here: one that would fail, as
// a crash between two writes would lose it) is needed for a restarted process to recognise the retry.
TEST_F(SegmentTest, MessageIdsAreWrittenWithTheirMessages) {
  class NoSeparateKeys : public SegmentSink {
   public:
    explicit NoSeparateKeys(Engine& engine) : engine_(engine) {}
    const Options& options() const override { return engine_.options(); }
    Result<BatchResult> TrackBatch(const std::vector<Json>& events) override {
      return engine_.events().TrackBatch(events);
    }
    Result<Json> Identify(const Json& request) override { return engine_.identity().Identify(request); }
    Result<BatchResult> TrackBatch(const std::vector<Json>& events, const std::vector<IdempotencyKey>& keys) override {
      return engine_.events().TrackBatch(events, keys);
    }
    Result<Json> Identify(const Json& request, const IdempotencyKey& key) override {
      return engine_.identity().Identify(request, key);
    }
    Status RememberKey(std::string_view, std::string_view, int64_t) override {
      ++separate_writes;
      return Status::Unavailable("the process died here");
    }
    Result<std::optional<std::string>> RecallKey(std::string_view key, int64_t now_us) override {
      return engine_.events().RecallKey(key, now_us);
    }
    int separate_writes = 0;

   private:
    Engine& engine_;
  };
  options_seg_.deduplicator = std::make_shared<SegmentDeduplicator>();
  const char* event = R"({"type":"track","anonymousId":"a-at","event":"Order Completed","messageId":"at-1",
      "properties":{"revenue":5}})";  // no timestamp: a retry's computed time is its own receipt time
  const char* identify = R"({"type":"identify","userId":"u-at","messageId":"at-2","traits":{"plan":"basic"}})";
  NoSeparateKeys sink(*engine_);
  Json batch =
      Unwrap(IngestSegmentBatch(sink, J(std::string("[") + event + "," + identify + "]"), kReceived, options_seg_));
  EXPECT_EQ(batch.Find("accepted")->as_int(), 2) << batch.Dump();
  EXPECT_EQ(sink.separate_writes, 0);
  // A new process: a new deduplicator; the retries arrive later, so only the database can tell.
  Reopen();
  options_seg_.deduplicator = std::make_shared<SegmentDeduplicator>();
  NoSeparateKeys after(*engine_);
  Json retry = Unwrap(IngestSegmentMessage(after, J(event), kReceived + 60 * 1000000LL, options_seg_));
  EXPECT_TRUE(retry.Find("duplicate")->as_bool()) << retry.Dump();
  Json again = Unwrap(IngestSegmentMessage(after, J(identify), kReceived + 60 * 1000000LL, options_seg_));
  EXPECT_TRUE(again.Find("duplicate")->as_bool()) << again.Dump();
  EXPECT_EQ(EventCount(), 1);
  EXPECT_EQ(after.separate_writes, 0);
}

TEST_F(SegmentTest, FailedMessagesAreNotRemembered) {
  options_seg_.deduplicator = std::make_shared<SegmentDeduplicator>();
  Status s = IngestError(R"({"type":"track","userId":"u-f","event":"Order Completed","messageId":"fail-1",
      "properties":{"revenue":"nope"}})");
  EXPECT_TRUE(s.IsInvalidArgument());
  Json ok = Ingest(R"({"type":"track","userId":"u-f","event":"Order Completed","messageId":"fail-1",
      "properties":{"revenue":1}})");
  EXPECT_FALSE(ok.Find("duplicate")->as_bool());
}

TEST_F(SegmentTest, NegativeWindowIsInvalid) {
  options_seg_.dedupe_window_seconds = -1;
  Status s = IngestError(R"({"type":"track","userId":"u","event":"X"})");
  EXPECT_EQ(s.field(), "dedupe_window_seconds");
}

}  // namespace
}  // namespace cdp
