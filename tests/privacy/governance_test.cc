// Copyright 2026 The libcdp Authors.
//
// Governance (issue 5): field classification, principals with roles and field-level permissions enforced in the
// C++ API (reads filtered, writes and operations refused with PermissionDenied), and API keys that authenticate
// principals.

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "test_util.h"

namespace cdp {
namespace {

using testing::J;
using testing::Unwrap;

// analyst: reads public and internal data and the custom field "tier"; writes nothing.
// editor: writes internal data (country, tags, computed scores, consent); reads it.
// dpo: reads public, internal and pii (not sensitive), may export and erase.
// auditor: may read the audit log, nothing else.
constexpr char kPolicy[] = R"({
  "classes": ["restricted"],
  "classification": {"attributes.customFields.ssn": "sensitive", "attributes.customFields.shoe": "internal",
                     "events.properties.card": "restricted"},
  "roles": {
    "analyst": {"read": ["public", "internal"], "readFields": ["attributes.customFields.tier"]},
    "editor": {"read": ["public", "internal"], "write": ["internal"]},
    "dpo": {"read": ["public", "internal", "pii"], "operations": ["export", "erase"]},
    "auditor": {"operations": ["audit"]}
  },
  "principals": {"ann": {"roles": ["analyst"]}, "ed": {"roles": ["editor"]}, "dina": {"roles": ["dpo"]},
                 "otto": {"roles": ["auditor"]}, "both": {"roles": ["analyst", "editor"]}}
})";

class GovernanceTest : public testing::EngineTest {
 protected:
  void SetUp() override {
    EngineTest::SetUp();
    Unwrap(gov().SetPolicy(J(kPolicy)));
    id_ = Unwrap(profiles().Create(J(R"({
      "externalIds": {"email": "ada@example.com", "customerId": "c-1"},
      "attributes": {"firstName": "Ada", "email": "ada@example.com", "country": "GB", "tags": ["vip"],
                     "customFields": {"tier": "gold", "ssn": "078-05-1120", "shoe": 38, "nickname": "Countess"}},
      "consent": {"email": true}})")))
              .Find("id")
              ->as_string();
    Unwrap(events().Track(J(R"({"type": "purchase", "profileId": ")" + id_ +
                            R"(", "deviceId": "dev-9", "properties": {"revenue": 30, "card": "4111", "sku": "A"}})")));
  }
  Governance& gov() { return engine_->governance(); }
  std::string id_;
};

TEST_F(GovernanceTest, PolicyShowsDefaultsAndBuiltinsAndRefusesBadInput) {
  Json policy = Unwrap(gov().Policy());
  EXPECT_EQ(*policy.Find("classes"), J(R"(["public", "internal", "pii", "sensitive", "restricted"])"));
  const Json& classification = *policy.Find("classification");  // keys are paths: look them up whole
  EXPECT_EQ(classification.Find("attributes")->as_string(), "pii");
  EXPECT_EQ(classification.Find("attributes.country")->as_string(), "internal");
  EXPECT_EQ(classification.Find("events.email")->as_string(), "pii");
  EXPECT_EQ(classification.Find("attributes.customFields.ssn")->as_string(), "sensitive");
  EXPECT_EQ(*policy.FindPath("principals.local.roles"), J(R"(["admin"])"));
  EXPECT_EQ(*policy.FindPath("principals.ann.roles"), J(R"(["analyst"])"));

  auto field_of = [&](const char* text) {
    Result<Json> r = gov().SetPolicy(J(text));
    EXPECT_TRUE(r.status().IsInvalidArgument()) << text;
    return r.status().field();
  };
  EXPECT_EQ(field_of(R"({"classification": {"attributes.x": "secret"}})"), "classification.attributes.x");
  EXPECT_EQ(field_of(R"({"classification": {"nope.x": "pii"}})"), "classification.nope.x");
  EXPECT_EQ(field_of(R"({"classification": {"attributes..x": "pii"}})"), "classification.attributes..x");
  EXPECT_EQ(field_of(R"({"roles": {"admin": {}}})"), "roles.admin");
  EXPECT_EQ(field_of(R"({"roles": {"a": {"read": ["pii", "top"]}}})"), "roles.a.read[1]");
  EXPECT_EQ(field_of(R"({"roles": {"a": {"operations": ["drop"]}}})"), "roles.a.operations[0]");
  EXPECT_EQ(field_of(R"({"roles": {"a": {"reed": []}}})"), "roles.a.reed");
  EXPECT_EQ(field_of(R"({"principals": {"bob": {"roles": ["ghost"]}}})"), "principals.bob.roles[0]");
  EXPECT_EQ(field_of(R"({"principals": {"local": {"roles": []}}})"), "principals.local");
  EXPECT_EQ(field_of(R"({"principals": {"a b": {"roles": []}}})"), "principals.a b");
  EXPECT_EQ(field_of(R"({"colour": 1})"), "colour");
  // A refused policy changes nothing.
  EXPECT_EQ(Unwrap(gov().Policy()), policy);
}

TEST_F(GovernanceTest, AnUndefinedPrincipalMayDoNothing) {
  ScopedPrincipal stranger("mallory");
  EXPECT_EQ(profiles().Get(id_).status().code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(events().Track(J(R"({"type": "page_view", "profileId": ")" + id_ + R"("})")).status().code(),
            StatusCode::kPermissionDenied);
  EXPECT_EQ(profiles().Search(ProfileQuery{}).status().code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(engine_->audit().List(Json::Object()).status().code(), StatusCode::kPermissionDenied);
  Json me = Unwrap(gov().Access(""));
  EXPECT_FALSE(me.Find("defined")->as_bool());
}

TEST_F(GovernanceTest, ReadsLeaveOutWhatThePrincipalMayNotRead) {
  ScopedPrincipal ann("ann");
  Json p = Unwrap(profiles().Get(id_));
  EXPECT_EQ(p.Find("id")->as_string(), id_);
  EXPECT_EQ(p.Find("externalIds"), nullptr) << p.Dump();  // pii
  EXPECT_EQ(p.FindPath("attributes.email"), nullptr) << p.Dump();
  EXPECT_EQ(p.FindPath("attributes.firstName"), nullptr);
  EXPECT_EQ(p.FindPath("attributes.country")->as_string(), "GB");
  EXPECT_EQ(*p.FindPath("attributes.tags"), J(R"(["vip"])"));
  EXPECT_EQ(*p.FindPath("attributes.customFields"), J(R"({"tier": "gold", "shoe": 38})")) << p.Dump();
  EXPECT_EQ(p.FindPath("computed.ltv")->as_number(), 30);
  EXPECT_TRUE(p.FindPath("consent.email")->as_bool());
  // Provenance is kept only for readable fields; identity issues only for readable identifier types.
  const Json* sources = p.Find("attributeSources");
  ASSERT_NE(sources, nullptr);
  EXPECT_NE(sources->Find("attributes.country"), nullptr);
  EXPECT_EQ(sources->Find("attributes.email"), nullptr);
  EXPECT_EQ(sources->Find("attributes.customFields.ssn"), nullptr);
  EXPECT_EQ(p.Find("identityIssues"), nullptr);  // pii

  // Events: identifiers and restricted properties left out.
  EventQuery q;
  q.profile_id = id_;
  Page events_page = Unwrap(events().Query(q));
  ASSERT_EQ(events_page.items.size(), 1u);
  const Json& e = events_page.items[0];
  EXPECT_EQ(e.Find("profileId")->as_string(), id_);
  EXPECT_EQ(e.Find("deviceId"), nullptr) << e.Dump();
  EXPECT_EQ(*e.Find("properties"), J(R"({"revenue": 30, "sku": "A"})")) << e.Dump();
  Page timeline = Unwrap(profiles().Timeline(id_, EventQuery{}));
  ASSERT_EQ(timeline.items.size(), 1u);
  EXPECT_EQ(timeline.items[0], e);

  // Searches: filtered results; a condition or sort on an unreadable field is refused (no inference by filter).
  ProfileQuery by_country = Unwrap(ProfileQuery::FromJson(
      J(R"({"conditions": [{"field": "attributes.country", "operator": "=", "value": "GB"}]})")));
  Page found = Unwrap(profiles().Search(by_country));
  ASSERT_EQ(found.items.size(), 1u);
  EXPECT_EQ(found.items[0].FindPath("attributes.email"), nullptr);
  ProfileQuery by_email = Unwrap(ProfileQuery::FromJson(
      J(R"({"conditions": [{"field": "attributes.email", "operator": "=", "value": "ada@example.com"}]})")));
  Result<Page> refused = profiles().Search(by_email);
  EXPECT_EQ(refused.status().code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(refused.status().field(), "attributes.email");
  ProfileQuery sorted;
  sorted.sort_by = "attributes.customFields.ssn";
  EXPECT_EQ(profiles().Search(sorted).status().code(), StatusCode::kPermissionDenied);
  EventQuery by_card;
  by_card.where = Unwrap(Filter::FromJson(J(R"([{"field": "properties.card", "operator": "=", "value": "4111"}])")));
  EXPECT_EQ(events().Query(by_card).status().code(), StatusCode::kPermissionDenied);

  // Operations the role lacks.
  EXPECT_EQ(engine_->gdpr().Export(id_).status().code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(profiles().Delete(id_).code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(engine_->audit().Verify().status().code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(engine_->identity().Explain(id_).status().code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(engine_->segments()
                .Create(J(R"({"name": "gb", "rule": {"field": "attributes.country", "operator":
            "=", "value": "GB"}})"))
                .status()
                .code(),
            StatusCode::kPermissionDenied);
  EXPECT_EQ(gov().SetPolicy(Json::Object()).status().code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(gov().CreateApiKey(J(R"({"principal": "ann"})")).status().code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(gov().Access("ed").status().code(), StatusCode::kPermissionDenied);
  Json me = Unwrap(gov().Access(""));
  EXPECT_EQ(*me.Find("read"), J(R"(["internal", "public"])"));
  EXPECT_EQ(*me.Find("readFields"), J(R"(["attributes.customFields.tier"])"));
  // The profile is still whole for the admin.
  ScopedPrincipal admin("local");
  EXPECT_EQ(Unwrap(profiles().Get(id_)).FindPath("attributes.customFields.ssn")->as_string(), "078-05-1120");
}

TEST_F(GovernanceTest, SegmentMembersExportsAndEstimatesFollowTheReader) {
  const std::string seg =
      Unwrap(engine_->segments().Create(
                 J(R"({"name": "gb", "rule": {"field": "attributes.country", "operator": "=", "value": "GB"}})")))
          .Find("id")
          ->as_string();
  ScopedPrincipal ann("ann");
  Page members = Unwrap(engine_->segments().Members(seg, 10, ""));
  ASSERT_EQ(members.items.size(), 1u);
  EXPECT_EQ(members.items[0].FindPath("attributes.email"), nullptr);
  EXPECT_EQ(members.items[0].FindPath("attributes.country")->as_string(), "GB");
  std::string csv;
  ASSERT_TRUE(engine_->segments()
                  .Export(seg, "csv", {"id", "attributes.email", "attributes.country"},
                          [&](std::string_view chunk) {
                            csv.append(chunk);
                            return true;
                          })
                  .ok());
  EXPECT_EQ(csv.find("ada@example.com"), std::string::npos) << csv;
  EXPECT_NE(csv.find("GB"), std::string::npos) << csv;
  EXPECT_EQ(
      Unwrap(engine_->segments().Estimate(J(R"({"field": "attributes.country", "operator": "=", "value": "GB"})"))), 1);
  Result<int64_t> guess = engine_->segments().Estimate(
      J(R"({"field": "attributes.customFields.ssn", "operator": "=", "value": "078-05-1120"})"));
  EXPECT_EQ(guess.status().code(), StatusCode::kPermissionDenied);
}

// Lifetime value, average order value and RFM are computed from purchases' values: a principal that may not read
// the value may not read them either (one purchase's ltv is its revenue), nor search, estimate or segment by them.
TEST_F(GovernanceTest, FieldsComputedFromAnUnreadableValueAreUnreadableToo) {
  Json policy = J(kPolicy);
  policy.Find("classification")->Set("events.properties.revenue", "sensitive");
  policy.Find("roles")->Set("ltv", J(R"({"read": ["public", "internal"], "readFields": ["computed.ltv"]})"));
  policy.Find("principals")->Set("val", J(R"({"roles": ["ltv"]})"));
  Unwrap(gov().SetPolicy(policy));
  const std::string seg =
      Unwrap(engine_->segments().Create(J(R"({"name": "big", "rule": {"field": "computed.ltv", "operator": ">",
                                           "value": 10}})")))
          .Find("id")
          ->as_string();
  EXPECT_EQ(Unwrap(profiles().Get(id_)).FindPath("computed.ltv")->as_number(), 30.0);  // the admin sees it
  {
    ScopedPrincipal ann("ann");
    Json doc = Unwrap(profiles().Get(id_));
    EXPECT_EQ(doc.FindPath("computed.ltv"), nullptr) << doc.Dump();
    EXPECT_EQ(doc.FindPath("computed.aov"), nullptr) << doc.Dump();
    EXPECT_EQ(doc.FindPath("computed.rfm"), nullptr) << doc.Dump();
    EXPECT_EQ(doc.FindPath("computed.purchaseCount")->as_int(), 1) << doc.Dump();  // counts no value
    ProfileQuery query = Unwrap(
        ProfileQuery::FromJson(J(R"({"conditions": [{"field": "computed.ltv", "operator": ">", "value": 10}]})")));
    Status searched = profiles().Search(query).status();
    EXPECT_EQ(searched.code(), StatusCode::kPermissionDenied) << searched.ToString();
    EXPECT_EQ(searched.field(), "computed.ltv");
    query = Unwrap(ProfileQuery::FromJson(J(R"({"sort": {"field": "computed.aov", "order": "desc"}})")));
    EXPECT_EQ(profiles().Search(query).status().code(), StatusCode::kPermissionDenied);
    Result<int64_t> estimate =
        engine_->segments().Estimate(J(R"({"field": "computed.aov", "operator": ">", "value": 29})"));
    EXPECT_EQ(estimate.status().code(), StatusCode::kPermissionDenied);
    EXPECT_EQ(engine_->segments().Size(seg).status().code(), StatusCode::kPermissionDenied);
  }
  {
    ScopedPrincipal val("val");  // granted computed.ltv by name: that field, not aov
    Json doc = Unwrap(profiles().Get(id_));
    EXPECT_EQ(doc.FindPath("computed.ltv")->as_number(), 30.0) << doc.Dump();
    EXPECT_EQ(doc.FindPath("computed.aov"), nullptr) << doc.Dump();
  }
}

// A saved segment's members, size and feed tell who matches its rule, so they need the rule's fields readable,
// and those of the segments it names; so do audiences built on it, their channel's consent and suppression lists.
TEST_F(GovernanceTest, SavedSegmentsAndAudiencesNeedWhatTheirRulesTestReadable) {
  auto create = [&](const char* definition) {
    return Unwrap(engine_->segments().Create(J(definition))).Find("id")->as_string();
  };
  const std::string gb = create(R"({"name": "gb", "rule": {"field": "attributes.country", "operator": "=",
                                    "value": "GB"}})");
  const std::string ssn = create(R"({"name": "one ssn", "rule": {"field": "attributes.customFields.ssn",
                                     "operator": "=", "value": "078-05-1120"}})");
  const std::string card = create(R"({"name": "card 4111", "rule": {"event": "purchase", "where": [
                                      {"field": "properties.card", "operator": "=", "value": "4111"}]}})");
  const std::string wraps = create(
      (R"({"name": "gb and ssn", "rule": [{"segment": ")" + ssn + R"("}, {"segment": ")" + gb + R"("}]})").c_str());
  const std::string manual = create(R"({"name": "picked", "type": "manual"})");
  Unwrap(engine_->segments().AddMembers(manual, J(R"([")" + id_ + R"("])")));
  auto audience = [&](const std::string& body) {
    return Unwrap(engine_->audiences().Create(J(body))).Find("id")->as_string();
  };
  const std::string on_gb =
      audience(R"({"name": "gb mail", "segments": {"operator": "OR", "ids": [")" + gb + R"("]}, "channel": "email"})");
  const std::string on_ssn = audience(R"({"name": "ssn", "segments": {"operator": "OR", "ids": [")" + gb +
                                      R"("]}, "exclude": [")" + ssn + R"("]})");
  const std::string list =
      Unwrap(engine_->audiences().CreateSuppressionList(J(R"({"name": "no"})"))).Find("id")->as_string();
  const std::string suppressed = audience(R"({"name": "gb unsuppressed", "segments": {"operator": "OR", "ids": [")" +
                                          gb + R"("]}, "suppressionLists": [")" + list + R"("]})");
  // The admin sees every one, and the profile is in all five segments.
  EXPECT_EQ(Unwrap(engine_->segments().List()).size(), 5u);
  EXPECT_EQ(Unwrap(engine_->segments().Size(wraps)), 1);
  EXPECT_EQ(Unwrap(engine_->segments().Size(card)), 1);
  EXPECT_EQ(engine_->segments().SegmentsOf(id_).size(), 5u);

  ScopedPrincipal ann("ann");
  Segments& segments = engine_->segments();
  auto denied = [](const Status& s, const char* field) {
    EXPECT_EQ(s.code(), StatusCode::kPermissionDenied) << s.ToString();
    EXPECT_EQ(s.field(), field);
  };
  for (const std::string& id : {ssn, wraps}) {  // directly, and through the segment the rule names
    SCOPED_TRACE(id);
    const char* field = "attributes.customFields.ssn";
    denied(segments.Get(id).status(), field);
    denied(segments.Size(id).status(), field);
    denied(segments.Members(id, 10, "").status(), field);
    denied(segments.Changes(id, "", 10).status(), field);
    denied(segments.WaitForChanges(id, "", 0).status(), field);
    denied(segments.MembersAt(id, "2030-01-01T00:00:00Z").status(), field);
    denied(segments.Overlap({gb, id}).status(), field);
    denied(segments.Export(id, "csv", {"id"}, [](std::string_view) { return true; }), field);
  }
  denied(segments.Members(card, 10, "").status(), "events.properties.card");
  // What the rule tests is readable: the reads answer.
  EXPECT_EQ(Unwrap(segments.Size(gb)), 1);
  EXPECT_EQ(Unwrap(segments.Members(gb, 10, "")).items.size(), 1u);
  EXPECT_EQ(Unwrap(segments.Changes(gb, "", 10)).Find("changes")->size(), 1u);
  EXPECT_EQ(Unwrap(segments.Size(manual)), 1);
  std::vector<std::string> listed;
  const Json all = Unwrap(segments.List());
  for (const Json& s : all.items()) listed.push_back(s.Find("id")->as_string());
  std::sort(listed.begin(), listed.end());
  std::vector<std::string> readable = {gb, manual};
  std::sort(readable.begin(), readable.end());
  EXPECT_EQ(listed, readable);
  EXPECT_EQ(segments.SegmentsOf(id_), readable);
  Json profile = Unwrap(profiles().Get(id_));
  ASSERT_NE(profile.Find("segments"), nullptr);
  EXPECT_EQ(profile.Find("segments")->size(), 2u);

  Audiences& audiences = engine_->audiences();
  EXPECT_EQ(Unwrap(audiences.Size(on_gb)), 1);                             // consent is internal: readable
  denied(audiences.Size(on_ssn).status(), "attributes.customFields.ssn");  // an excluded segment tests it
  denied(audiences.Members(on_ssn, 10, "").status(), "attributes.customFields.ssn");
  denied(audiences.Get(suppressed).status(), "externalIds");  // suppression matches identifiers
  denied(audiences.Export(suppressed, "csv", {"id"}, [](std::string_view) { return true; }), "externalIds");
  denied(audiences.Overlap(on_ssn).status(), "attributes.customFields.ssn");
  Json shown = Unwrap(audiences.List());
  ASSERT_EQ(shown.size(), 1u);
  EXPECT_EQ(shown.items()[0].Find("id")->as_string(), on_gb);
}

TEST_F(GovernanceTest, WritesOfFieldsThePrincipalMayNotWriteAreRefusedWhole) {
  {
    ScopedPrincipal ed("ed");
    Json patched = Unwrap(profiles().Patch(id_, J(R"({"attributes": {"country": "FR", "tags": ["new"]}})")));
    EXPECT_EQ(patched.FindPath("attributes.country")->as_string(), "FR");
    EXPECT_EQ(patched.FindPath("attributes.email"), nullptr);  // the answer is filtered too
    Result<Json> r = profiles().Patch(id_, J(R"({"attributes": {"country": "DE", "email": "x@example.com"}})"));
    EXPECT_EQ(r.status().code(), StatusCode::kPermissionDenied);
    EXPECT_EQ(r.status().field(), "attributes.email");
    r = profiles().Patch(id_, J(R"({"attributes": {"customFields": {"shoe": 39, "nickname": null}}})"));
    EXPECT_EQ(r.status().field(), "attributes.customFields.nickname");  // unclassified custom fields are pii
    r = profiles().Create(J(R"({"externalIds": {"email": "new@example.com"}})"));
    EXPECT_EQ(r.status().code(), StatusCode::kPermissionDenied);
    // Replace would clear the email, the name and the pii custom fields: refused.
    r = profiles().Replace(id_, J(R"({"attributes": {"country": "FR"}})"));
    EXPECT_EQ(r.status().code(), StatusCode::kPermissionDenied);
    // Events that carry an identifier, or a property of a class it may not write.
    Result<TrackResult> t = events().Track(J(R"({"type": "page_view", "email": "ada@example.com"})"));
    EXPECT_EQ(t.status().code(), StatusCode::kPermissionDenied);
    EXPECT_EQ(t.status().field(), "events.email");
    Unwrap(events().Track(J(R"({"type": "page_view", "profileId": ")" + id_ + R"(", "properties": {"p": 1}})")));
    Result<BatchResult> batch = events().TrackBatch(
        {J(R"({"type": "page_view", "profileId": ")" + id_ + R"("})"),
         J(R"({"type": "page_view", "profileId": ")" + id_ + R"(", "properties": {"card": "1"}})")});
    EXPECT_EQ(batch.status().code(), StatusCode::kPermissionDenied);
    EXPECT_EQ(batch.status().field(), "[1].events.properties.card");
    Result<BatchResult> json_batch = events().TrackBatchJson(R"([{"type": "page_view", "phone": "+4712345678"}])");
    EXPECT_EQ(json_batch.status().code(), StatusCode::kPermissionDenied);
    // Consent is internal: ed may state it.
    Unwrap(engine_->consent().Record(J(R"({"profileId": ")" + id_ + R"(", "purposes": {"sms": "granted"}})")));
    Result<Json> identify = engine_->identity().Identify(J(R"({"identifiers": {"email": "ada@example.com"}})"));
    EXPECT_EQ(identify.status().code(), StatusCode::kPermissionDenied);
  }
  // Nothing of the refused writes happened.
  Json p = Unwrap(profiles().Get(id_));
  EXPECT_EQ(p.FindPath("attributes.country")->as_string(), "FR");
  EXPECT_EQ(p.FindPath("attributes.email")->as_string(), "ada@example.com");
  EXPECT_EQ(p.FindPath("attributes.customFields.nickname")->as_string(), "Countess");
  EXPECT_EQ(p.FindPath("attributes.customFields.shoe")->as_int(), 38);
  EXPECT_EQ(p.FindPath("computed.eventCount")->as_int(), 2);
  EXPECT_TRUE(p.FindPath("consent.sms")->as_bool());
  // Refusals are audited.
  Json denied = Unwrap(engine_->audit().List(J(R"({"principal": "ed"})")));
  int refusals = 0;
  for (const Json& entry : denied.Find("items")->items()) {
    refusals += entry.Find("outcome")->as_string() == "permission_denied";
  }
  EXPECT_GE(refusals, 7);
}

// A principal that may write identifiers but not read them stores its events and identifies, but the answers do not
// say which profile holds the identifiers; and it may not name identifiers in profile writes, whose collisions
// (AlreadyExists) would say whether a value is held: refused alike, held or not.
TEST_F(GovernanceTest, AWriterThatMayNotReadIdentifiersIsNotToldWhoHoldsThem) {
  Json policy = J(kPolicy);
  policy.Find("roles")->Set("collector", J(R"({"read": ["public"], "write": ["public", "internal", "pii"]})"));
  policy.Find("roles")->Set("linker",
                            J(R"({"read": ["public", "internal", "pii"], "write": ["public", "internal", "pii"]})"));
  policy.Find("principals")->Set("col", J(R"({"roles": ["collector"]})"));
  policy.Find("principals")->Set("lin", J(R"({"roles": ["linker"]})"));
  Unwrap(gov().SetPolicy(policy));
  const std::string other =
      Unwrap(profiles().Create(J(R"({"externalIds": {"email": "bob@example.com"}})"))).Find("id")->as_string();
  std::string stored_event;
  {
    ScopedPrincipal col("col");
    TrackResult t = Unwrap(events().Track(J(R"({"type": "page_view", "email": "ada@example.com"})")));
    stored_event = t.event_id;
    EXPECT_TRUE(t.links_hidden);
    EXPECT_TRUE(t.profile_id.empty());
    EXPECT_TRUE(t.session_id.empty());
    Json answer = t.ToJson();
    EXPECT_EQ(answer.Find("profileId"), nullptr);
    EXPECT_EQ(answer.Find("sessionId"), nullptr);
    EXPECT_TRUE(answer.Find("linksHidden")->as_bool());
    EXPECT_EQ(answer.Find("eventId")->as_string(), stored_event);
    // A new identifier: whether a profile was created is not said either.
    TrackResult created = Unwrap(events().Track(J(R"({"type": "page_view", "email": "new@example.com"})")));
    EXPECT_FALSE(created.profile_created);
    // An event that names its profile by id only links nothing: its answer is whole.
    TrackResult by_id = Unwrap(events().Track(J(R"({"type": "page_view", "profileId": ")" + id_ + R"("})")));
    EXPECT_FALSE(by_id.links_hidden);
    EXPECT_EQ(by_id.profile_id, id_);
    // Batches, item by item.
    BatchResult batch = Unwrap(events().TrackBatch({J(R"({"type": "page_view", "email": "ada@example.com"})"),
                                                    J(R"({"type": "page_view", "profileId": ")" + id_ + R"("})")}));
    ASSERT_EQ(batch.items.size(), 2u);
    EXPECT_TRUE(batch.items[0].result.links_hidden);
    EXPECT_TRUE(batch.items[0].result.profile_id.empty());
    EXPECT_EQ(batch.items[1].result.profile_id, id_);
    BatchResult json_batch = Unwrap(events().TrackBatchJson(R"([{"type": "page_view", "customerId": "c-1"}])"));
    EXPECT_TRUE(json_batch.items[0].result.links_hidden);
    EXPECT_EQ(json_batch.ToJson().Find("results")->items()[0].Find("profileId"), nullptr);
    // Identify.
    Json identify = Unwrap(engine_->identity().Identify(J(R"({"identifiers": {"email": "ada@example.com"}})")));
    EXPECT_EQ(identify.Find("profileId"), nullptr);
    EXPECT_TRUE(identify.Find("linksHidden")->as_bool());
    Json identified = Unwrap(engine_->identity().IdentifyBatch({J(R"({"identifiers": {"customerId": "c-1"}})")}));
    EXPECT_EQ(identified.Find("results")->items()[0].Find("profileId"), nullptr);
    EXPECT_EQ(identified.Find("results")->items()[0].Find("status")->as_string(), "ok");
    // Profile writes naming an identifier: the same refusal whether the value is held or not.
    Result<Json> taken = profiles().Create(J(R"({"externalIds": {"email": "bob@example.com"}})"));
    Result<Json> free = profiles().Create(J(R"({"externalIds": {"email": "nobody-holds-this@example.com"}})"));
    EXPECT_EQ(taken.status().code(), StatusCode::kPermissionDenied);
    EXPECT_EQ(taken.status().field(), "externalIds.email");
    EXPECT_EQ(taken.status().ToString(), free.status().ToString());
    EXPECT_EQ(profiles().Patch(id_, J(R"({"externalIds": {"email": "bob@example.com"}})")).status().ToString(),
              profiles().Patch(id_, J(R"({"externalIds": {"email": "unheld@example.com"}})")).status().ToString());
    Result<Json> batch_refused = profiles().CreateBatch(
        {J(R"({"attributes": {"country": "FR"}})"), J(R"({"externalIds": {"email": "bob@example.com"}})")});
    EXPECT_EQ(batch_refused.status().code(), StatusCode::kPermissionDenied);
    EXPECT_EQ(batch_refused.status().field(), "[1].externalIds.email");
    // Removing an identifier tells nothing; a write without identifiers goes through.
    EXPECT_TRUE(profiles().Create(J(R"({"attributes": {"country": "FR"}, "externalIds": {"email": null}})")).ok());
  }
  {
    // A principal that may read the identifiers it writes is told.
    ScopedPrincipal lin("lin");
    TrackResult t = Unwrap(events().Track(J(R"({"type": "page_view", "email": "ada@example.com"})")));
    EXPECT_FALSE(t.links_hidden);
    EXPECT_EQ(t.profile_id, id_);
    Json identify = Unwrap(engine_->identity().Identify(J(R"({"identifiers": {"email": "ada@example.com"}})")));
    EXPECT_EQ(identify.Find("profileId")->as_string(), id_);
    Result<Json> taken = profiles().Create(J(R"({"externalIds": {"email": "bob@example.com"}})"));
    EXPECT_EQ(taken.status().code(), StatusCode::kAlreadyExists);
    EXPECT_NE(taken.status().message().find(other), std::string::npos) << taken.status().ToString();
    Json batch_taken = Unwrap(profiles().CreateBatch({J(R"({"externalIds": {"email": "bob@example.com"}})"),
                                                      J(R"({"externalIds": {"email": "eve@example.com"}})")}));
    EXPECT_NE(batch_taken.Find("results")->items()[0].FindPath("error.message")->as_string().find(other),
              std::string::npos);
    EXPECT_EQ(batch_taken.Find("accepted")->as_int(), 1);
  }
  // The hidden events were stored under the right profile, and the audit entry names it.
  Page timeline = Unwrap(profiles().Timeline(id_, {}));
  bool found = false;
  for (const Json& e : timeline.items) found |= e.Find("id")->as_string() == stored_event;
  EXPECT_TRUE(found);
  Json entries = Unwrap(engine_->audit().List(J(R"({"principal": "col", "operation": "events.track"})")));
  ASSERT_FALSE(entries.Find("items")->items().empty());
  EXPECT_EQ(entries.Find("items")->items().back().Find("targets")->items()[0].as_string(), id_);
  // A batch of creates is one entry naming the profiles it created, with the number of items.
  Json creates = Unwrap(engine_->audit().List(J(R"({"principal": "lin", "operation": "profiles.createBatch"})")));
  ASSERT_EQ(creates.Find("items")->items().size(), 1u);
  const Json& entry = creates.Find("items")->items()[0];
  EXPECT_EQ(entry.Find("count")->as_int(), 2);
  ASSERT_EQ(entry.Find("targets")->items().size(), 1u);
  EXPECT_TRUE(profiles().Get(entry.Find("targets")->items()[0].as_string()).ok());
}

// Refusals for a person who denied tracking or was erased name the profile and tell the consent or the erasure:
// a writer that may not read those is told only that the data was not stored.
TEST_F(GovernanceTest, RefusalsDoNotTellAWriterWhatItMayNotRead) {
  Json policy = J(kPolicy);
  policy.Find("roles")->Set("collector", J(R"({"read": ["public"], "write": ["public", "internal", "pii"]})"));
  policy.Find("principals")->Set("col", J(R"({"roles": ["collector"]})"));
  Unwrap(gov().SetPolicy(policy));
  const std::string denied =
      Unwrap(profiles().Create(J(R"({"externalIds": {"email": "denied@example.com"}})"))).Find("id")->as_string();
  Unwrap(engine_->consent().Record(J(R"({"profileId": ")" + denied + R"(", "purposes": {"tracking": "denied"}})")));
  const std::string erased =
      Unwrap(profiles().Create(J(R"({"externalIds": {"email": "erased@example.com"}})"))).Find("id")->as_string();
  ASSERT_TRUE(profiles().Delete(erased).ok());
  const Json to_denied = J(R"({"type": "page_view", "email": "denied@example.com"})");
  const Json to_erased = J(R"({"type": "page_view", "email": "erased@example.com"})");
  // The admin is told which profile and why.
  Status told = events().Track(to_denied).status();
  EXPECT_EQ(told.field(), "consent.tracking");
  EXPECT_NE(told.message().find(denied), std::string::npos) << told.ToString();
  EXPECT_EQ(events().Track(to_erased).status().field(), "suppressed");
  ScopedPrincipal col("col");
  std::vector<Status> seen = {events().Track(to_denied).status(), events().Track(to_erased).status()};
  BatchResult batch = Unwrap(events().TrackBatch({to_denied, to_erased}));
  for (const BatchItemResult& item : batch.items) seen.push_back(item.status);
  Json identified =
      Unwrap(engine_->identity().IdentifyBatch({J(R"({"identifiers": {"email": "erased@example.com"}})")}));
  const Json* error = identified.Find("results")->items()[0].Find("error");
  ASSERT_NE(error, nullptr) << identified.Dump();
  seen.push_back(Status(StatusCode::kFailedPrecondition, error->Find("message")->as_string(),
                        error->Find("field") != nullptr ? error->Find("field")->as_string() : ""));
  seen.push_back(engine_->identity().Identify(J(R"({"identifiers": {"email": "erased@example.com"}})")).status());
  ASSERT_EQ(seen.size(), 6u);
  for (const Status& s : seen) {
    EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition) << s.ToString();
    EXPECT_EQ(s.ToString(), seen[0].ToString());  // the same answer, whichever the reason
    EXPECT_EQ(s.message().find(denied), std::string::npos) << s.ToString();
    EXPECT_EQ(s.message().find("erased"), std::string::npos) << s.ToString();
    EXPECT_EQ(s.message().find("consent"), std::string::npos) << s.ToString();
  }
}

// A session summary's firstPage and UTM fields are event properties: they follow the property's class.
TEST_F(GovernanceTest, SessionSummariesShowOnlyTheEventPropertiesTheReaderMayRead) {
  Json policy = J(kPolicy);
  policy.Find("classification")->Set("events.properties.url", "restricted");
  policy.Find("classification")->Set("events.properties.utm_campaign", "restricted");
  Unwrap(gov().SetPolicy(policy));
  Unwrap(events().Track(J(R"({"type": "page_view", "profileId": ")" + id_ +
                          R"(", "timestamp": "2026-01-05T10:00:00Z", "sessionId": "s-1", "deviceId": "dev-s1",
                          "properties": {"url": "https://x.example/secret-offer", "utm_source": "news",
                          "utm_campaign": "c-77", "context": {"ip": "198.51.100.7", "userAgent": "UA/1"}}})")));
  Unwrap(events().Track(J(R"({"type": "page_view", "profileId": ")" + id_ +
                          R"(", "timestamp": "2026-01-05T10:01:00Z", "sessionId": "s-1", "properties": {"url":
                          "https://x.example/second"}})")));
  auto session = [&](const std::vector<Json>& all) {
    for (const Json& s : all) {
      if (s.Find("id")->as_string() == "s-1") return s;
    }
    ADD_FAILURE() << "no session s-1";
    return Json();
  };
  Json whole = session(Unwrap(profiles().Sessions(id_)));
  EXPECT_EQ(whole.Find("firstPage")->as_string(), "https://x.example/secret-offer");
  EXPECT_EQ(whole.Find("utmCampaign")->as_string(), "c-77");
  EXPECT_EQ(whole.Find("deviceId")->as_string(), "dev-s1");
  EXPECT_EQ(whole.Find("ip")->as_string(), "198.51.100.7");
  EXPECT_EQ(whole.Find("userAgent")->as_string(), "UA/1");
  ScopedPrincipal ann("ann");  // reads public and internal: sessions.* yes, the restricted properties no
  Json seen = session(Unwrap(profiles().Sessions(id_)));
  EXPECT_EQ(seen.Find("eventCount")->as_int(), 2);
  EXPECT_EQ(seen.Find("utmSource")->as_string(), "news");
  EXPECT_TRUE(seen.Find("utmCampaign") == nullptr || seen.Find("utmCampaign")->is_null()) << seen.Dump();
  // Not the second page's url either: the first page's is unreadable, so firstPage is null.
  EXPECT_TRUE(seen.Find("firstPage") == nullptr || seen.Find("firstPage")->is_null()) << seen.Dump();
  // The device and the client are personal data (sessions.deviceId, .ip, .userAgent are pii).
  for (const char* field : {"deviceId", "ip", "userAgent"}) {
    EXPECT_TRUE(seen.Find(field) == nullptr || seen.Find(field)->is_null()) << field << ": " << seen.Dump();
  }
}

TEST_F(GovernanceTest, ExportsLeaveOutWhatTheExporterMayNotReadAndIncludeTheAuditTrail) {
  ScopedPrincipal dina("dina");
  Json doc = Unwrap(engine_->gdpr().Export(id_));
  EXPECT_EQ(doc.FindPath("profile.attributes.email")->as_string(), "ada@example.com");
  EXPECT_EQ(doc.FindPath("profile.attributes.customFields.ssn"), nullptr);  // sensitive
  ASSERT_EQ(doc.Find("events")->size(), 1u);
  EXPECT_EQ(doc.Find("events")->items()[0].FindPath("properties.card"), nullptr);  // restricted
  EXPECT_EQ(doc.Find("events")->items()[0].Find("deviceId")->as_string(), "dev-9");
  EXPECT_NE(doc.Find("identity"), nullptr);
  EXPECT_NE(doc.Find("consent"), nullptr);
  EXPECT_EQ(doc.Find("audit"), nullptr);  // dina may not read the audit log: its trail of the person neither
  EXPECT_EQ(engine_->audit().List(Json::Object()).status().code(), StatusCode::kPermissionDenied);
  {
    ScopedPrincipal admin("local");
    Json full = Unwrap(engine_->gdpr().Export(id_));
    const Json* audit = full.Find("audit");
    ASSERT_NE(audit, nullptr);
    std::vector<std::string> operations;
    for (const Json& entry : audit->items()) {
      operations.push_back(entry.Find("operation")->as_string());
      EXPECT_EQ(entry.Find("targets"), nullptr);  // other people's ids stay out of the person's export
    }
    EXPECT_NE(std::find(operations.begin(), operations.end(), "profiles.create"), operations.end());
    EXPECT_NE(std::find(operations.begin(), operations.end(), "events.track"), operations.end());
    EXPECT_NE(std::find(operations.begin(), operations.end(), "gdpr.export"), operations.end());  // dina's
  }
  Unwrap(engine_->gdpr().Erase(id_));
  ScopedPrincipal otto("otto");
  EXPECT_TRUE(Unwrap(engine_->audit().Verify()).Find("ok")->as_bool());
  EXPECT_EQ(engine_->gdpr().Export(id_).status().code(), StatusCode::kPermissionDenied);
}

TEST_F(GovernanceTest, TwoRolesGrantTheUnionOfTheirs) {
  ScopedPrincipal both("both");
  Json p = Unwrap(profiles().Patch(id_, J(R"({"attributes": {"country": "NO"}})")));
  EXPECT_EQ(p.FindPath("attributes.customFields.tier")->as_string(), "gold");  // analyst's field grant
  EXPECT_EQ(p.FindPath("attributes.country")->as_string(), "NO");              // editor's write
}

TEST_F(GovernanceTest, ApiKeysAuthenticatePrincipalsAndSurviveAReopen) {
  Json issued = Unwrap(gov().CreateApiKey(J(R"({"principal": "ann", "description": "dashboards"})")));
  const std::string key = issued.Find("key")->as_string();
  const std::string key_id = issued.Find("id")->as_string();
  EXPECT_TRUE(key.starts_with("cdpk_"));
  EXPECT_EQ(Unwrap(gov().Authenticate(key)), "ann");
  EXPECT_TRUE(gov().KeysIssued());
  std::string wrong = key;
  wrong.back() = wrong.back() == '0' ? '1' : '0';
  EXPECT_EQ(gov().Authenticate(wrong).status().code(), StatusCode::kUnauthenticated);
  EXPECT_EQ(gov().Authenticate("Bearer " + key).status().code(), StatusCode::kUnauthenticated);
  EXPECT_EQ(gov().Authenticate("").status().code(), StatusCode::kUnauthenticated);
  EXPECT_EQ(gov().CreateApiKey(J(R"({"principal": "nobody"})")).status().field(), "principal");
  Json listed = Unwrap(gov().ListApiKeys());
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_EQ(listed.items()[0].Find("key"), nullptr);
  EXPECT_EQ(listed.items()[0].Find("secretSha256"), nullptr);
  EXPECT_EQ(listed.items()[0].Find("principal")->as_string(), "ann");

  Reopen();
  EXPECT_EQ(Unwrap(gov().Authenticate(key)), "ann");
  EXPECT_EQ(*Unwrap(gov().Policy()).FindPath("principals.ann.roles"), J(R"(["analyst"])"));
  {
    ScopedPrincipal ann("ann");  // the policy survived the reopen too
    EXPECT_EQ(Unwrap(profiles().Get(id_)).FindPath("attributes.email"), nullptr);
  }
  ASSERT_TRUE(gov().RevokeApiKey(key_id).ok());
  EXPECT_EQ(gov().Authenticate(key).status().code(), StatusCode::kUnauthenticated);
  EXPECT_TRUE(gov().RevokeApiKey(key_id).IsNotFound());
  EXPECT_TRUE(gov().KeysIssued());  // revoked, but issued once: servers keep requiring keys
  // The secret is in no file of the database, only its hash.
  EXPECT_TRUE(testing::FilesHolding(dir_.path(), key.substr(key.rfind('_') + 1)).empty());
}

TEST_F(GovernanceTest, APolicyChangeAppliesToTheNextCall) {
  ScopedPrincipal ann("ann");
  EXPECT_EQ(Unwrap(profiles().Get(id_)).FindPath("attributes.firstName"), nullptr);
  {
    ScopedPrincipal admin("local");
    Json policy = J(kPolicy);
    Json* roles = policy.Find("roles");
    roles->Find("analyst")->Set("readFields", J(R"(["attributes.firstName"])"));
    Unwrap(gov().SetPolicy(policy));
  }
  Json p = Unwrap(profiles().Get(id_));
  EXPECT_EQ(p.FindPath("attributes.firstName")->as_string(), "Ada");
  EXPECT_EQ(p.FindPath("attributes.customFields.tier"), nullptr);  // no longer granted
}

// Paths through which values could leak past a policy, each closed.
TEST_F(GovernanceTest, IndirectReadsAndWritesAreCheckedToo) {
  {
    Json policy = J(kPolicy);
    policy.Find("classification")->Set("externalIds.phone", "sensitive");
    policy.Find("classification")->Set("consent.newsletter", "sensitive");
    Unwrap(gov().SetPolicy(policy));
  }
  Unwrap(profiles().Patch(id_, J(R"({"externalIds": {"phone": "+44 20 7946 0958"},
                                     "consent": {"newsletter": true}})")));
  {
    ScopedPrincipal dina("dina");  // reads pii, not sensitive
    Json explain = Unwrap(engine_->identity().Explain(id_));
    std::string types;
    for (const Json& ident : explain.Find("identifiers")->items()) types += ident.Find("type")->as_string() + ",";
    EXPECT_NE(types.find("email"), std::string::npos) << types;
    EXPECT_EQ(types.find("phone"), std::string::npos) << types;
    // Sorting or testing a whole object needs every member of it.
    ProfileQuery by_custom;
    by_custom.sort_by = "attributes.customFields";
    EXPECT_EQ(profiles().Search(by_custom).status().code(), StatusCode::kPermissionDenied);
    Json consent = Unwrap(engine_->consent().Get(id_));
    EXPECT_NE(consent.FindPath("purposes.email"), nullptr);
    EXPECT_EQ(consent.FindPath("purposes.newsletter"), nullptr) << consent.Dump();
    for (const Json& record : consent.Find("history")->items()) {
      EXPECT_EQ(record.FindPath("purposes.newsletter"), nullptr) << record.Dump();
    }
    Json page = Unwrap(engine_->consent().History(id_, Json::Object()));
    ASSERT_GT(page.Find("items")->size(), 0u);
    bool email_seen = false;
    for (const Json& record : page.Find("items")->items()) {
      EXPECT_EQ(record.FindPath("purposes.newsletter"), nullptr) << record.Dump();
      email_seen = email_seen || record.FindPath("purposes.email") != nullptr;
    }
    EXPECT_TRUE(email_seen) << page.Dump();
  }
  {
    ScopedPrincipal ann("ann");
    // A count over an event property or identifier ann may not read.
    EXPECT_EQ(engine_->segments()
                  .Estimate(J(R"({"event": "purchase", "where": [{"field": "properties.card", "operator": "=",
                                  "value": "4111"}]})"))
                  .status()
                  .code(),
              StatusCode::kPermissionDenied);
    EXPECT_EQ(engine_->events().RecallKey("segment/x", 0).status().code(), StatusCode::kPermissionDenied);
    // A batch text that cannot be checked is refused, not stored.
    EXPECT_FALSE(events().TrackBatchJson(R"([{"type": "page_view", "profileId": "p"}, {"type": )").ok());
  }
  {
    // Writers of pii may not delete a sensitive member by deleting its parent, nor link a sensitive identifier.
    Json policy = Unwrap(gov().Policy());
    Json p = J(kPolicy);
    p.Find("classification")->Set("externalIds.phone", "sensitive");
    p.Find("roles")->Set("piiwriter", J(R"({"read": ["public", "internal", "pii"], "write": ["internal", "pii"]})"));
    p.Find("principals")->Set("wes", J(R"({"roles": ["piiwriter"]})"));
    Unwrap(gov().SetPolicy(p));
    ScopedPrincipal wes("wes");
    Result<Json> r = profiles().Patch(id_, J(R"({"attributes": {"customFields": null}})"));
    EXPECT_EQ(r.status().code(), StatusCode::kPermissionDenied);
    EXPECT_EQ(r.status().field(), "attributes.customFields.ssn");
    Result<TrackResult> t = events().Track(J(R"({"type": "page_view", "phone": "+44 20 7946 0000"})"));
    EXPECT_EQ(t.status().code(), StatusCode::kPermissionDenied);
    EXPECT_EQ(t.status().field(), "externalIds.phone");
  }
  EXPECT_EQ(Unwrap(profiles().Get(id_)).FindPath("attributes.customFields.ssn")->as_string(), "078-05-1120");
  {
    ScopedPrincipal stranger("mallory");
    EXPECT_EQ(engine_->segments().List().status().code(), StatusCode::kPermissionDenied);
    EXPECT_EQ(engine_->Stats().status().code(), StatusCode::kPermissionDenied);
    EXPECT_EQ(gov().Policy().status().code(), StatusCode::kPermissionDenied);
  }
}

TEST_F(GovernanceTest, KeysOfAPrincipalThePolicyDropsAreRevoked) {
  const std::string key = Unwrap(gov().CreateApiKey(J(R"({"principal": "ann"})"))).Find("key")->as_string();
  Json policy = J(kPolicy);
  policy.Find("principals")->Erase("ann");
  Unwrap(gov().SetPolicy(policy));
  EXPECT_EQ(gov().Authenticate(key).status().code(), StatusCode::kUnauthenticated);
  Unwrap(gov().SetPolicy(J(kPolicy)));  // ann again: the old key stays revoked
  EXPECT_EQ(gov().Authenticate(key).status().code(), StatusCode::kUnauthenticated);
  EXPECT_EQ(Unwrap(gov().ListApiKeys()).size(), 0u);
}

TEST_F(GovernanceTest, ThePolicyAsShownCanBeSetBackAndItsSideEffectsAreSaid) {
  const std::string key = Unwrap(gov().CreateApiKey(J(R"({"principal": "ann"})"))).Find("id")->as_string();
  Json shown = Unwrap(gov().Policy());
  Json again = Unwrap(gov().SetPolicy(shown));  // built-ins and defaults as shown are accepted unchanged
  EXPECT_EQ(again.Find("revokedKeys")->size(), 0u);
  again.Erase("revokedKeys");
  EXPECT_EQ(again, shown);
  // A partial policy drops the principals it leaves out, and says which keys went with them.
  Json partial = Unwrap(gov().SetPolicy(J(R"({"classification": {"attributes.city": "internal"}})")));
  EXPECT_EQ(*partial.Find("revokedKeys"), J(R"([")" + key + R"("])"));
  EXPECT_EQ(gov().SetPolicy(J(R"({"classification": {"id": "pii"}})")).status().field(), "classification.id");
  EXPECT_EQ(gov().SetPolicy(J(R"({"classification": {"events.profileId": "pii"}})")).status().field(),
            "classification.events.profileId");
  EXPECT_EQ(gov().CreateApiKey(J(R"({"principal": "local"})")).status().field(), "principal");
}

TEST_F(GovernanceTest, AggregatesInAnEstimateNeedTheirPropertyReadable) {
  ScopedPrincipal ann("ann");
  Result<int64_t> r =
      engine_->segments().Estimate(J(R"({"event": "purchase", "avg": "properties.card", "value": {">=": 4000}})"));
  EXPECT_EQ(r.status().code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(r.status().field(), "events.properties.card");
  EXPECT_EQ(Unwrap(engine_->segments().Estimate(
                J(R"({"event": "purchase", "sum": "properties.revenue", "value": {">=": 30}})"))),
            1);
}

}  // namespace
}  // namespace cdp
