// Copyright 2026 The libcdp Authors.
//
// Audiences (Engine::audiences()): segments combined with AND / OR, minus excluded segments and suppression lists,
// restricted to a consent channel; sizes, members, overlap, export; suppression lists; definitions validated.

#include <gtest/gtest.h>

#include <set>

#include "test_util.h"

namespace cdp {
namespace {

using testing::J;
using testing::Unwrap;

class AudiencesTest : public testing::EngineTest {
 protected:
  Audiences& audiences() { return engine_->audiences(); }
  std::string Segment(const std::string& rule) {
    return Unwrap(engine_->segments().Create(J(R"({"name": "s", "rule": )" + rule + "}"))).Find("id")->as_string();
  }
  std::string Person(const std::string& email, const std::string& country, bool email_consent, bool vip) {
    return Unwrap(profiles().Create(J(R"({"externalIds": {"email": ")" + email + R"("},
        "attributes": {"country": ")" +
                                      country + R"(", "customFields": {"vip": )" + (vip ? "true" : "false") +
                                      R"(}}, "consent": {"email": )" + (email_consent ? "true" : "false") + "}}")))
        .Find("id")
        ->as_string();
  }
  std::set<std::string> MemberIds(const std::string& id) {
    std::set<std::string> out;
    for (std::string cursor;;) {
      Page page = Unwrap(audiences().Members(id, 2, cursor));
      for (const Json& p : page.items) out.insert(p.Find("id")->as_string());
      if (page.next_cursor.empty()) return out;
      cursor = page.next_cursor;
    }
  }
};

TEST_F(AudiencesTest, SegmentsCombinedMinusExclusionsSuppressionAndConsent) {
  const std::string a = Person("a@example.com", "FR", true, true);
  const std::string b = Person("b@example.com", "FR", true, false);
  const std::string c = Person("c@example.com", "FR", false, true);
  const std::string d = Person("d@example.com", "DE", true, true);
  const std::string e = Person("e@example.com", "DE", true, false);
  const std::string fr = Segment(R"({"field": "attributes.country", "operator": "=", "value": "FR"})");
  const std::string vip = Segment(R"({"field": "attributes.customFields.vip", "operator": "=", "value": true})");
  const std::string blocked =
      Unwrap(engine_->segments().Create(J(R"({"name": "blocked", "type": "manual"})"))).Find("id")->as_string();
  Unwrap(engine_->segments().AddMembers(blocked, J(R"([")" + b + R"("])")));
  const std::string list =
      Unwrap(audiences().CreateSuppressionList(J(R"({"name": "unsubscribed"})"))).Find("id")->as_string();
  Json added = Unwrap(audiences().AddToSuppressionList(
      list, J(R"([{"type": "email", "value": " D@Example.com"}, {"type": "email", "value": "not-an-email"},
                  {"type": "email", "value": "later@example.com"}])")));
  EXPECT_EQ(added.Find("added")->as_int(), 2);
  EXPECT_EQ(added.Find("invalid")->size(), 1u);
  EXPECT_EQ(Unwrap(audiences().GetSuppressionList(list)).Find("size")->as_int(), 2);

  // OR of fr and vip = {a, b, c, d}; minus blocked (b); minus suppressed (d); email consent leaves out c.
  Json aud = Unwrap(audiences().Create(J(R"({"name": "newsletter", "segments": {"operator": "OR", "ids": [")" + fr +
                                         R"(", ")" + vip + R"("]}, "exclude": [")" + blocked +
                                         R"("], "suppressionLists": [")" + list + R"("], "channel": "email"})")));
  const std::string id = aud.Find("id")->as_string();
  EXPECT_EQ(id.rfind("aud_", 0), 0u);
  EXPECT_EQ(aud.Find("size")->as_int(), 1);
  EXPECT_EQ(MemberIds(id), std::set<std::string>{a});
  Json why = Unwrap(audiences().Overlap(id));
  EXPECT_EQ(why.Find("combined")->as_int(), 4);
  EXPECT_EQ(why.Find("excluded")->as_int(), 1);
  EXPECT_EQ(why.Find("suppressed")->as_int(), 1);
  EXPECT_EQ(why.Find("withoutConsent")->as_int(), 1);
  EXPECT_EQ(why.Find("matrix")->items()[0].items()[1].Find("intersection")->as_int(), 2);  // a and c

  // AND, no channel: fr and vip = {a, c}.
  Unwrap(audiences().Update(
      id, J(R"({"name": "newsletter", "segments": {"operator": "AND", "ids": [")" + fr + R"(", ")" + vip + R"("]}})")));
  EXPECT_EQ(MemberIds(id), (std::set<std::string>{a, c}));
  // Live: consent and data changes show at once; a suppressed identifier that reaches a profile later counts.
  Unwrap(audiences().Update(id, J(R"({"name": "n", "segments": {"ids": [")" + vip + R"("]},
                                     "suppressionLists": [")" +
                                  list + R"("], "channel": "email"})")));
  EXPECT_EQ(MemberIds(id), std::set<std::string>{a});
  Unwrap(profiles().Patch(c, J(R"({"consent": {"email": true}})")));
  EXPECT_EQ(MemberIds(id), (std::set<std::string>{a, c}));
  Unwrap(profiles().Patch(a, J(R"({"externalIds": {"email": "later@example.com"}})")));
  EXPECT_EQ(MemberIds(id), std::set<std::string>{c});
  Json removed = Unwrap(audiences().RemoveFromSuppressionList(list, J(R"([{"type": "email",
                                                                          "value": "later@example.com"}])")));
  EXPECT_EQ(removed.Find("removed")->as_int(), 1);
  EXPECT_EQ(Unwrap(audiences().Size(id)), 2);
  // Export.
  std::string csv;
  ASSERT_TRUE(audiences()
                  .Export(id, "csv", {"externalIds.email"},
                          [&](std::string_view chunk) {
                            csv.append(chunk);
                            return true;
                          })
                  .ok());
  EXPECT_NE(csv.find("c@example.com"), std::string::npos) << csv;
  // Survives a reopen; what it names cannot be deleted.
  Reopen();
  EXPECT_EQ(Unwrap(audiences().Size(id)), 2);
  EXPECT_EQ(Unwrap(audiences().List()).size(), 1u);
  EXPECT_TRUE(engine_->segments().Delete(vip).IsFailedPrecondition());
  EXPECT_TRUE(audiences().DeleteSuppressionList(list).IsFailedPrecondition());
  ASSERT_TRUE(audiences().Delete(id).ok());
  EXPECT_TRUE(audiences().Get(id).status().IsNotFound());
  EXPECT_TRUE(engine_->segments().Delete(vip).ok());
  EXPECT_TRUE(audiences().DeleteSuppressionList(list).ok());
  EXPECT_TRUE(audiences().GetSuppressionList(list).status().IsNotFound());
}

// An erasure keeps the erased person's suppression list items only as keyed hashes (no list holds their value);
// lifting their suppression restores the item, which then suppresses the person when they come back.
TEST_F(AudiencesTest, ErasureHashesTheErasedPersonsItemsAndUnsuppressRestoresThem) {
  const std::string gone = Person("gone@example.com", "FR", true, true);
  const std::string kept = Person("kept@example.com", "FR", true, true);
  const std::string fr = Segment(R"({"field": "attributes.country", "operator": "=", "value": "FR"})");
  const std::string list =
      Unwrap(audiences().CreateSuppressionList(J(R"({"name": "unsubscribed"})"))).Find("id")->as_string();
  Unwrap(audiences().AddToSuppressionList(list, J(R"([{"type": "email", "value": "gone@example.com"},
                                                     {"type": "email", "value": "kept@example.com"}])")));
  const std::string id = Unwrap(audiences().Create(J(R"({"name": "n", "segments": {"ids": [")" + fr +
                                                     R"("]}, "suppressionLists": [")" + list + R"("]})")))
                             .Find("id")
                             ->as_string();
  EXPECT_EQ(Unwrap(audiences().Overlap(id)).Find("suppressed")->as_int(), 2);
  ASSERT_TRUE(engine_->gdpr().Erase(gone).ok());
  EXPECT_EQ(Unwrap(audiences().GetSuppressionList(list)).Find("size")->as_int(), 2);
  EXPECT_EQ(Unwrap(audiences().Overlap(id)).Find("suppressed")->as_int(), 1);
  // Lifting the suppression restores the item: the person, back under a new profile, is suppressed again.
  Unwrap(engine_->gdpr().Unsuppress("email", "gone@example.com"));
  const std::string back = Person("gone@example.com", "FR", true, true);
  EXPECT_EQ(Unwrap(audiences().Overlap(id)).Find("suppressed")->as_int(), 2);
  std::set<std::string> members = MemberIds(id);
  EXPECT_FALSE(members.contains(back));
  EXPECT_FALSE(members.contains(kept));
  // Erased again: hashed again. Adding the value restores the item (it was there); removing it removes it.
  ASSERT_TRUE(engine_->gdpr().Erase(back).ok());
  Json added = Unwrap(audiences().AddToSuppressionList(list, J(R"([{"type": "email", "value": "gone@example.com"}])")));
  EXPECT_EQ(added.Find("unchanged")->as_int(), 1);
  EXPECT_EQ(Unwrap(audiences().GetSuppressionList(list)).Find("size")->as_int(), 2);
  ASSERT_TRUE(engine_->gdpr().Erase(Person("again@example.com", "FR", true, true)).ok());  // no item: no change
  Json removed =
      Unwrap(audiences().RemoveFromSuppressionList(list, J(R"([{"type": "email", "value": "gone@example.com"}])")));
  EXPECT_EQ(removed.Find("removed")->as_int(), 1);
  EXPECT_EQ(Unwrap(audiences().GetSuppressionList(list)).Find("size")->as_int(), 1);
}

TEST_F(AudiencesTest, AdsChannelFollowsAdsConsent) {
  const std::string a = Person("a@example.com", "FR", true, true);
  const std::string b = Person("b@example.com", "FR", true, true);
  const std::string fr = Segment(R"({"field": "attributes.country", "operator": "=", "value": "FR"})");
  const std::string id =
      Unwrap(audiences().Create(J(R"({"name": "ads", "segments": {"ids": [")" + fr + R"("]}, "channel": "ads"})")))
          .Find("id")
          ->as_string();
  EXPECT_TRUE(MemberIds(id).empty()) << "no ads consent given yet";
  Unwrap(profiles().Patch(b, J(R"({"consent": {"ads": true}})")));
  EXPECT_EQ(MemberIds(id), std::set<std::string>{b});
  Unwrap(profiles().Patch(b, J(R"({"consent": {"ads": false}})")));
  EXPECT_TRUE(MemberIds(id).empty());
  (void)a;
}

// analytics_storage, Consent Mode's name for tracking, is a channel too: stored as tracking, and following the
// consent given under either name.
TEST_F(AudiencesTest, AnalyticsStorageChannelIsTracking) {
  const std::string a = Person("a@example.com", "FR", true, true);
  const std::string b = Person("b@example.com", "FR", true, true);
  const std::string fr = Segment(R"({"field": "attributes.country", "operator": "=", "value": "FR"})");
  Json audience = Unwrap(audiences().Create(
      J(R"({"name": "measured", "segments": {"ids": [")" + fr + R"("]}, "channel": "analytics_storage"})")));
  EXPECT_EQ(audience.Find("channel")->as_string(), "tracking");
  const std::string id = audience.Find("id")->as_string();
  Unwrap(profiles().Patch(a, J(R"({"consent": {"analytics_storage": false}})")));
  Unwrap(profiles().Patch(b, J(R"({"consent": {"tracking": true}})")));
  EXPECT_EQ(MemberIds(id), std::set<std::string>{b});
  Unwrap(profiles().Patch(b, J(R"({"consent": {"analytics_storage": false}})")));
  EXPECT_TRUE(MemberIds(id).empty());
}

TEST_F(AudiencesTest, DefinitionsAreValidated) {
  const std::string s = Segment(R"({"event": "purchase"})");
  struct Case {
    std::string body;
    std::string field;
  };
  const Case cases[] = {
      {R"({"segments": {"ids": [")" + s + R"("]}})", "name"},
      {R"({"name": "x"})", "segments"},
      {R"({"name": "x", "segments": {"ids": []}})", "segments.ids"},
      {R"({"name": "x", "segments": {"operator": "XOR", "ids": [")" + s + R"("]}})", "segments.operator"},
      {R"({"name": "x", "segments": {"ids": ["seg_nope"]}})", "segments.ids"},
      {R"({"name": "x", "segments": {"ids": [")" + s + R"(", ")" + s + R"("]}})", "segments.ids[1]"},
      {R"({"name": "x", "segments": {"ids": [")" + s + R"("]}, "channel": "Fax!"})", "channel"},
      {R"({"name": "x", "segments": {"ids": [")" + s + R"("]}, "suppressionLists": ["supp_nope"]})",
       "suppressionLists"},
      {R"({"name": "x", "segments": {"ids": [")" + s + R"("]}, "colour": "red"})", "colour"},
  };
  for (const Case& c : cases) {
    Status status = audiences().Create(J(c.body)).status();
    EXPECT_TRUE(status.IsInvalidArgument()) << c.body;
    EXPECT_EQ(status.field(), c.field) << c.body;
  }
  EXPECT_TRUE(audiences().Get("aud_nope").status().IsNotFound());
  const std::string list = Unwrap(audiences().CreateSuppressionList(J(R"({"name": "l"})"))).Find("id")->as_string();
  EXPECT_EQ(audiences().AddToSuppressionList(list, J(R"([{"type": "email"}])")).status().field(), "items[0]");
  EXPECT_TRUE(audiences().AddToSuppressionList("supp_nope", J("[]")).status().IsNotFound());
  EXPECT_TRUE(audiences().CreateSuppressionList(J(R"({"name": ""})")).status().IsInvalidArgument());
}

}  // namespace
}  // namespace cdp
