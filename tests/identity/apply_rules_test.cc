// Copyright 2026 The libcdp Authors.
//
// Identity::ApplyRules: a rule change applied to the existing graph does what the dry run said it would.

#include <gtest/gtest.h>

#include "test_util.h"

namespace cdp {
namespace {

using testing::J;
using testing::Unwrap;

class ApplyRulesTest : public testing::EngineTest {
 protected:
  Identity& identity() { return engine_->identity(); }
  Json Get(const Json& profile) { return Unwrap(profiles().Get(profile.Find("id")->as_string())); }
  static std::string Id(const Json& profile) { return profile.Find("id")->as_string(); }
  // The rules with canonical Gmail addresses, one deviceId per profile and customerIds "vip-*" blocked.
  Json NextRules() {
    Json next = Unwrap(identity().Rules());
    for (Json& rule : next.Find("identifiers")->items()) {
      const std::string type = rule.Find("type")->as_string();
      if (type == "email") rule.Set("canonicalGmail", true);
      if (type == "deviceId") rule.Set("limit", 1);
      if (type == "customerId") rule.Set("blocked", Json::Array().Push("^vip-.*$"));
    }
    return next;
  }
};

TEST_F(ApplyRulesTest, DoesWhatTheDryRunSaid) {
  Json a = Unwrap(profiles().Create(J(R"({"externalIds":{"email":"j.doe+x@gmail.com"}})")));
  Unwrap(events().Track(J(R"({"type":"purchase","email":"jdoe@gmail.com","properties":{"revenue":5}})")));
  TrackResult b_event =
      Unwrap(events().Track(J(R"({"type":"page_view","email":"jdoe@gmail.com","anonymousId":"anon-b"})")));
  Json c = Unwrap(profiles().Create(J(R"({"externalIds":{"customerId":"vip-1","deviceIds":["d1","d2","d3"]}})")));
  Json d = Unwrap(profiles().Create(J(R"({"externalIds":{"customerId":"C-2","email":"c2@gmail.com"}})")));
  Json e = Unwrap(profiles().Create(J(R"({"externalIds":{"customerId":"C-3","email":"c.2@gmail.com"}})")));
  const Json next = NextRules();
  Json dry = Unwrap(identity().DryRunRules(next));
  // The dry run reads identifier values and who holds them: an audit entry names each profile it shows.
  Json read = *Unwrap(engine_->audit().List(J(R"({"operation": "identity.dryRunRules"})"))).Find("items");
  ASSERT_EQ(read.size(), 1u) << read.Dump();
  for (const Json& group : dry.Find("wouldMerge")->items()) {
    for (const Json& id : group.Find("profileIds")->items()) {
      EXPECT_NE(read.items()[0].Find("targets")->Dump().find(id.as_string()), std::string::npos) << read.Dump();
    }
  }
  EXPECT_EQ(Unwrap(engine_->audit().List(J(R"({"target": ")" + Id(a) + R"("})")))
                .Find("items")
                ->items()[0]
                .Find("operation")
                ->as_string(),
            "identity.dryRunRules");
  Json applied = Unwrap(identity().ApplyRules(next));

  // The rules are in force.
  EXPECT_EQ(Unwrap(identity().Rules()), applied.Find("rules") != nullptr ? *applied.Find("rules") : Json());
  EXPECT_EQ(applied.Find("identifiersScanned")->as_int(), dry.Find("identifiersScanned")->as_int());
  EXPECT_EQ(applied.Find("unlinked")->size(), dry.Find("wouldUnlink")->size()) << applied.Dump();
  EXPECT_EQ(applied.Find("mergeBlocked")->size(), dry.Find("mergeBlocked")->size()) << applied.Dump();
  ASSERT_EQ(applied.Find("merged")->size(), dry.Find("wouldMerge")->size()) << applied.Dump();
  ASSERT_EQ(applied.Find("merged")->size(), 1u);

  // j.doe+x@gmail.com and jdoe@gmail.com are one address now: the profile with the older link survives, with the
  // other's events and traits.
  const Json& merge = applied.Find("merged")->items()[0];
  EXPECT_EQ(merge.Find("profileId")->as_string(), Id(a)) << applied.Dump();
  EXPECT_EQ(merge.Find("merged")->items()[0].as_string(), b_event.profile_id);
  Json survivor = Get(a);
  EXPECT_EQ(survivor.FindPath("externalIds.email")->as_string(), "jdoe@gmail.com") << survivor.Dump();
  EXPECT_EQ(survivor.FindPath("externalIds.anonymousId")->as_string(), "anon-b");
  EXPECT_EQ(survivor.FindPath("computed.purchaseCount")->as_int(), 1);
  EXPECT_EQ(Unwrap(profiles().Get(b_event.profile_id)).Find("id")->as_string(), Id(a));
  // The address the merged profile gave up is not an issue of the person who holds it (a newcomer saw the
  // survivor list its own address as "now the same email as profile <itself>'s").
  for (const Json& issue : survivor.Find("identityIssues")->items()) ADD_FAILURE() << issue.Dump();
  // The merge is automatic, its evidence the rule change; it cannot be undone (the addresses are one value now: an
  // unmerge gave back an empty profile, its events and address staying with the survivor).
  Json explained = Unwrap(identity().Explain(Id(a)));
  ASSERT_EQ(explained.Find("merges")->size(), 1u) << explained.Dump();
  const Json& record = explained.Find("merges")->items()[0];
  EXPECT_TRUE(record.Find("automatic")->as_bool()) << record.Dump();
  EXPECT_EQ(record.FindPath("evidence.call")->as_string(), "identity.applyRules") << record.Dump();
  EXPECT_EQ(record.FindPath("evidence.identifier.value")->as_string(), "jdoe@gmail.com") << record.Dump();
  Status undo = identity().Unmerge(Id(a), merge.Find("mergeId")->as_string()).status();
  EXPECT_TRUE(undo.IsFailedPrecondition()) << undo.ToString();
  EXPECT_NE(undo.message().find("identity rules change"), std::string::npos) << undo.ToString();
  EXPECT_EQ(Unwrap(profiles().Get(b_event.profile_id)).Find("id")->as_string(), Id(a));

  // New writes resolve with the new normalization.
  TrackResult later = Unwrap(events().Track(J(R"({"type":"page_view","email":"J.Doe+news@gmail.com"})")));
  EXPECT_EQ(later.profile_id, Id(a));

  // The vip customerId is blocked now, and the profile keeps its first device only.
  Json cp = Get(c);
  EXPECT_EQ(cp.FindPath("externalIds.customerId"), nullptr) << cp.Dump();
  ASSERT_EQ(cp.FindPath("externalIds.deviceIds")->size(), 1u) << cp.Dump();
  EXPECT_EQ(cp.FindPath("externalIds.deviceIds")->items()[0].as_string(), "d1");
  int issues = 0;
  for (const Json& issue : cp.Find("identityIssues")->items()) {
    issues += issue.Find("value")->as_string() == "vip-1" || issue.Find("value")->as_string() == "d2" ||
              issue.Find("value")->as_string() == "d3";
  }
  EXPECT_EQ(issues, 3) << cp.Dump();
  // An unlinked value no longer finds the profile.
  TrackResult d2 = Unwrap(events().Track(J(R"({"type":"page_view","deviceId":"d2"})")));
  EXPECT_NE(d2.profile_id, Id(c));

  // C-2 and C-3 cannot merge (two customerIds): the older holder keeps the address, the other loses it.
  EXPECT_EQ(Get(d).FindPath("externalIds.email")->as_string(), "c2@gmail.com");
  Json ep = Get(e);
  EXPECT_EQ(ep.FindPath("externalIds.email"), nullptr) << ep.Dump();
  EXPECT_EQ(ep.FindPath("externalIds.customerId")->as_string(), "C-3");
  TrackResult c2 = Unwrap(events().Track(J(R"({"type":"page_view","email":"c.2@gmail.com"})")));
  EXPECT_EQ(c2.profile_id, Id(d));

  // All of it survives a reopen, and applying the same rules again changes nothing.
  Reopen();
  EXPECT_EQ(Get(a).FindPath("externalIds.email")->as_string(), "jdoe@gmail.com");
  Json again = Unwrap(identity().ApplyRules(next));
  EXPECT_EQ(again.Find("merged")->size(), 0u) << again.Dump();
  EXPECT_EQ(again.Find("unlinked")->size(), 0u) << again.Dump();
  EXPECT_EQ(again.Find("renormalized")->as_int(), 0);
}

// A profile holding two values that each became one with another profile's joins both groups: merges are
// transitive, so the three are one group, merged whole or, when together they break a limit, not at all. The dry
// run and the apply agree, whatever the hash order.
class ApplyRulesChainTest : public ApplyRulesTest, public ::testing::WithParamInterface<bool> {};

TEST_P(ApplyRulesChainTest, GroupsSharingAProfileAreOneGroup) {
  {
    const bool customers = GetParam();  // with two customerIds in the chain, the merge would break a limit
    const std::string c1 = customers ? R"("customerId":"C1",)" : "";
    const std::string c3 = customers ? R"("customerId":"C3",)" : "";
    Json p1 = Unwrap(profiles().Create(J(R"({"externalIds":{)" + c1 + R"("email":"a.b@gmail.com"}})")));
    Json p2 = Unwrap(profiles().Create(J(R"({"externalIds":{"email":["ab@gmail.com","cd@gmail.com"]}})")));
    Json p3 = Unwrap(profiles().Create(J(R"({"externalIds":{)" + c3 + R"("email":"c.d@gmail.com"}})")));
    Json dry = Unwrap(identity().DryRunRules(NextRules()));
    ASSERT_EQ(dry.Find("wouldMerge")->size() + dry.Find("mergeBlocked")->size(), 1u) << dry.Dump();
    const Json& group = (customers ? dry.Find("mergeBlocked") : dry.Find("wouldMerge"))->items()[0];
    EXPECT_EQ(group.Find("profileIds")->size(), 3u) << dry.Dump();
    Json applied = Unwrap(identity().ApplyRules(NextRules()));
    EXPECT_EQ(applied.Find("mergeFailed"), nullptr) << applied.Dump();
    EXPECT_EQ(applied.Find("merged")->size(), dry.Find("wouldMerge")->size()) << applied.Dump();
    EXPECT_EQ(applied.Find("mergeBlocked")->size(), dry.Find("mergeBlocked")->size()) << applied.Dump();
    if (!customers) {
      EXPECT_EQ(Id(Get(p2)), Id(Get(p1)));
      EXPECT_EQ(Id(Get(p3)), Id(Get(p1)));
    } else {
      // Blocked: three profiles, each value with one holder (the holder of its oldest link).
      EXPECT_NE(Id(Get(p1)), Id(Get(p2)));
      EXPECT_NE(Id(Get(p2)), Id(Get(p3)));
      EXPECT_EQ(Unwrap(events().Track(J(R"({"type":"page_view","email":"ab@gmail.com"})"))).profile_id, Id(p1));
      EXPECT_EQ(Unwrap(events().Track(J(R"({"type":"page_view","email":"cd@gmail.com"})"))).profile_id, Id(p2));
    }
    // Applying the same rules again changes nothing.
    Json again = Unwrap(identity().ApplyRules(NextRules()));
    EXPECT_EQ(again.Find("merged")->size(), 0u) << again.Dump();
    EXPECT_EQ(again.Find("unlinked")->size(), 0u) << again.Dump();
  }
}
INSTANTIATE_TEST_SUITE_P(Customers, ApplyRulesChainTest, ::testing::Bool());

// Hub sets follow their values: a value renamed by the rules keeps what it was seen with, and values that became
// one pool it, so a shared address that is a hub only as one value is one from then on (dry run and apply agree).
TEST_F(ApplyRulesTest, HubSetsFollowRenamedValues) {
  Json rules = Unwrap(identity().Rules());
  rules.Find("hub")->Set("threshold", 2);
  Unwrap(identity().SetRules(rules));
  auto track = [&](const std::string& customer, const std::string& email) {
    return Unwrap(
        events().Track(J(R"({"type":"page_view","customerId":")" + customer + R"(","email":")" + email + R"("})")));
  };
  auto email_is_hub = [&](const std::string& profile) {
    Json why = Unwrap(identity().Explain(profile));
    for (const Json& id : why.Find("identifiers")->items()) {
      if (id.Find("type")->as_string() == "email") return id.Find("hub")->as_bool();
    }
    ADD_FAILURE() << "no email on " << why.Dump();
    return false;
  };
  // fam.ily@ is seen with two customers (its holder P1 and P2, which the customerId limit keeps apart), f.amily@
  // with a third and family@ with a fourth: three values, none over the threshold of 2.
  const std::string p1 = track("C1", "fam.ily@gmail.com").profile_id;
  const std::string p2 = track("C2", "fam.ily@gmail.com").profile_id;
  const std::string p3 = track("C3", "f.amily@gmail.com").profile_id;
  track("C4", "family@gmail.com");  // already canonical: its set stays where it is, and the others join it
  EXPECT_NE(p1, p2);
  EXPECT_FALSE(email_is_hub(p1));
  EXPECT_FALSE(email_is_hub(p3));

  Json dry = Unwrap(identity().DryRunRules(NextRules()));
  ASSERT_EQ(dry.Find("newHubs")->size(), 1u) << dry.Dump();
  EXPECT_EQ(dry.Find("newHubs")->items()[0].FindPath("identifier.value")->as_string(), "family@gmail.com");
  EXPECT_EQ(dry.Find("newHubs")->items()[0].Find("distinctHighPriorityValues")->as_int(), 4);
  Json applied = Unwrap(identity().ApplyRules(NextRules()));
  EXPECT_EQ(applied.Find("newHubs")->Dump(), dry.Find("newHubs")->Dump());

  // One value now, seen with four customers: a hub, which links nobody new.
  Json survivor = Get(J(R"({"id":")" + p1 + R"("})"));
  EXPECT_EQ(survivor.FindPath("externalIds.email")->as_string(), "family@gmail.com") << survivor.Dump();
  EXPECT_TRUE(email_is_hub(p1));
  TrackResult c4 = track("C5", "family@gmail.com");
  EXPECT_NE(c4.profile_id, p1);
  ASSERT_TRUE(c4.ignored_identifiers.is_array());
  EXPECT_NE(c4.ignored_identifiers.Dump().find("hub"), std::string::npos) << c4.ignored_identifiers.Dump();
  // Applying the same rules again leaves the sets as they are.
  Json again = Unwrap(identity().ApplyRules(NextRules()));
  EXPECT_EQ(again.Find("newHubs")->size(), 0u) << again.Dump();
  EXPECT_TRUE(email_is_hub(p1));
}

TEST_F(ApplyRulesTest, BadRulesChangeNothing) {
  Json a = Unwrap(profiles().Create(J(R"({"externalIds":{"email":"x@example.com"}})")));
  Json before = Unwrap(identity().Rules());
  EXPECT_TRUE(identity().ApplyRules(J(R"({"identifiers":[]})")).status().IsInvalidArgument());
  EXPECT_EQ(Unwrap(identity().Rules()), before);
  EXPECT_EQ(Get(a).FindPath("externalIds.email")->as_string(), "x@example.com");
}

}  // namespace
}  // namespace cdp
