// Copyright 2026 The libcdp Authors.
//
// Configurable survivorship through the engine: the rules in the identity rules, the provenance of attribute
// values (attributeSources) kept by profile writes, identifies and events, each rule's outcome in a merge, the
// conflicts it records, and unmerge undoing every rule.

#include <gtest/gtest.h>

#include "test_util.h"

namespace cdp {
namespace {

using testing::J;
using testing::Unwrap;

class SurvivorshipTest : public testing::EngineTest {
 protected:
  Identity& identity() { return engine_->identity(); }

  void SetSurvivorship(const std::string& json) {
    Json rules = Unwrap(identity().Rules());
    rules.Set("survivorship", J(json));
    Unwrap(identity().SetRules(rules));
  }

  // The field the rules are rejected at.
  std::string RejectedAt(const std::string& survivorship) {
    Json rules = Unwrap(identity().Rules());
    rules.Set("survivorship", J(survivorship));
    auto r = identity().SetRules(rules);
    EXPECT_TRUE(r.status().IsInvalidArgument()) << survivorship;
    return r.ok() ? "(accepted)" : r.status().field();
  }

  // Identifies a person by email with attributes, a source and an event time; returns the profile id.
  std::string IdentifyByEmail(const std::string& email, const std::string& attributes, const std::string& source,
                              const std::string& timestamp) {
    Json r = Unwrap(identity().Identify(J(R"({"identifiers":{"email":")" + email + R"("},"attributes":)" + attributes +
                                          R"(,"source":")" + source + R"(","timestamp":")" + timestamp + R"("})")));
    return r.Find("profileId")->as_string();
  }

  std::string Create(const std::string& json) { return Unwrap(profiles().Create(J(json))).Find("id")->as_string(); }
  Json Get(const std::string& id) { return Unwrap(profiles().Get(id)); }
  std::string Merge(const std::vector<std::string>& ids) {
    return Unwrap(identity().Merge(ids, "test")).Find("mergeId")->as_string();
  }

  // The provenance entry of a field ("attributes.city"), or null.
  static const Json* SourceOf(const Json& profile, const std::string& field) {
    const Json* sources = profile.Find("attributeSources");
    return sources != nullptr ? sources->Find(field) : nullptr;
  }

  // The conflicts of a profile for one field.
  static std::vector<Json> ConflictsOf(const Json& profile, const std::string& field) {
    std::vector<Json> out;
    for (const Json& c : profile.Find("conflicts")->items()) {
      if (c.Find("field")->as_string() == field) out.push_back(c);
    }
    return out;
  }
};

TEST_F(SurvivorshipTest, DefaultRulesAreTheSurvivorsValuesAndRoundTrip) {
  Json rules = Unwrap(identity().Rules());
  EXPECT_EQ(*rules.Find("survivorship"), J(R"({"default":"survivor","fields":{}})"));
  const std::string configured = R"({"default":"most_recent","fields":{
      "attributes.firstName":"most_recent","attributes.customFields.score":"max","attributes.tags":"union",
      "attributes.city":{"rule":"source_priority","sources":["crm","shopify","web"]}}})";
  SetSurvivorship(configured);
  Reopen();
  EXPECT_EQ(*Unwrap(identity().Rules()).Find("survivorship"), J(configured));
  // The object form of a plain rule is accepted and written back as its name.
  SetSurvivorship(R"({"default":{"rule":"oldest"},"fields":{"attributes.lastName":{"rule":"survivor"}}})");
  EXPECT_EQ(*Unwrap(identity().Rules()).Find("survivorship"),
            J(R"({"default":"oldest","fields":{"attributes.lastName":"survivor"}})"));
}

TEST_F(SurvivorshipTest, BadRulesNameTheOffendingField) {
  EXPECT_EQ(RejectedAt("3"), "survivorship");
  EXPECT_EQ(RejectedAt(R"({"defaults":"survivor"})"), "survivorship.defaults");
  EXPECT_EQ(RejectedAt(R"({"default":"nope"})"), "survivorship.default");
  EXPECT_EQ(RejectedAt(R"({"default":"max"})"), "survivorship.default") << "max applies per field";
  EXPECT_EQ(RejectedAt(R"({"default":{"rule":"union"}})"), "survivorship.default.rule");
  EXPECT_EQ(RejectedAt(R"({"default":{"rule":"source_priority"}})"), "survivorship.default.sources");
  EXPECT_EQ(RejectedAt(R"({"fields":[]})"), "survivorship.fields");
  EXPECT_EQ(RejectedAt(R"({"fields":{"attributes.nickname":"survivor"}})"),
            R"(survivorship.fields["attributes.nickname"])");
  EXPECT_EQ(RejectedAt(R"({"fields":{"consent.email":"survivor"}})"), R"(survivorship.fields["consent.email"])");
  EXPECT_EQ(RejectedAt(R"({"fields":{"attributes.customFields.":"max"}})"),
            R"(survivorship.fields["attributes.customFields."])");
  EXPECT_EQ(RejectedAt(R"({"fields":{"attributes.city":"sum"}})"), R"(survivorship.fields["attributes.city"])")
      << "a string attribute is never a number";
  EXPECT_EQ(RejectedAt(R"({"fields":{"attributes.tags":"max"}})"), R"(survivorship.fields["attributes.tags"])");
  EXPECT_EQ(RejectedAt(R"({"fields":{"attributes.firstName":{"rule":"union"}}})"),
            R"(survivorship.fields["attributes.firstName"].rule)");
  EXPECT_EQ(RejectedAt(R"({"fields":{"attributes.city":{"rule":"source_priority","sources":[]}}})"),
            R"(survivorship.fields["attributes.city"].sources)");
  EXPECT_EQ(RejectedAt(R"({"fields":{"attributes.city":{"rule":"source_priority","sources":["crm","crm"]}}})"),
            R"(survivorship.fields["attributes.city"].sources[1])");
  EXPECT_EQ(RejectedAt(R"({"fields":{"attributes.city":{"rule":"source_priority","sources":["crm",7]}}})"),
            R"(survivorship.fields["attributes.city"].sources[1])");
  EXPECT_EQ(RejectedAt(R"({"fields":{"attributes.customFields.n":{"rule":"max","sources":["crm"]}}})"),
            R"(survivorship.fields["attributes.customFields.n"].sources)");
  EXPECT_EQ(RejectedAt(R"({"fields":{"attributes.customFields.n":{"rule":"max","why":1}}})"),
            R"(survivorship.fields["attributes.customFields.n"].why)");
  EXPECT_EQ(RejectedAt(R"({"fields":{"attributes.customFields.n":{"sources":["crm"]}}})"),
            R"(survivorship.fields["attributes.customFields.n"].rule)");
  std::string many = R"({"fields":{)";
  for (int i = 0; i < 257; ++i)
    many += (i > 0 ? "," : "") + std::string(R"("attributes.customFields.f)") + std::to_string(i) + R"(":"max")";
  EXPECT_EQ(RejectedAt(many + "}}"), "survivorship.fields") << "at most 256 fields";
  // Nothing was stored.
  EXPECT_EQ(*Unwrap(identity().Rules()).Find("survivorship"), J(R"({"default":"survivor","fields":{}})"));
}

TEST_F(SurvivorshipTest, ProfileWritesIdentifiesAndEventsKeepProvenance) {
  Json created = Unwrap(profiles().Create(J(R"({"attributes":{"firstName":"Ada","city":"London",
      "customFields":{"tier":"gold"}}})")));
  const std::string id = created.Find("id")->as_string();
  ASSERT_NE(SourceOf(created, "attributes.firstName"), nullptr) << created.Dump();
  EXPECT_EQ(SourceOf(created, "attributes.firstName")->Find("source")->as_string(), "api");
  EXPECT_EQ(SourceOf(created, "attributes.firstName")->Find("at")->as_string(), created.Find("createdAt")->as_string());
  EXPECT_EQ(SourceOf(created, "attributes.customFields.tier")->Find("source")->as_string(), "api");
  EXPECT_EQ(created.Find("attributeSources")->size(), 3u) << "only fields with a value";

  // A patch with a source stamps what it changes; untouched values keep their provenance.
  Json patched = Unwrap(profiles().Patch(id, J(R"({"source":"crm","attributes":{"firstName":"Augusta"}})")));
  EXPECT_EQ(SourceOf(patched, "attributes.firstName")->Find("source")->as_string(), "crm");
  EXPECT_EQ(*SourceOf(patched, "attributes.city"), *SourceOf(created, "attributes.city"));
  // Writing a document back as read (attributeSources included, and ignored) changes no provenance.
  Json replaced = Unwrap(profiles().Replace(id, patched));
  EXPECT_EQ(*replaced.Find("attributeSources"), *patched.Find("attributeSources"));
  // A removed value loses its entry.
  Json removed = Unwrap(profiles().Patch(id, J(R"({"attributes":{"city":null}})")));
  EXPECT_EQ(SourceOf(removed, "attributes.city"), nullptr);
  EXPECT_EQ(removed.Find("attributeSources")->size(), 2u);
  auto bad = profiles().Patch(id, J(R"({"source":7})"));
  EXPECT_TRUE(bad.status().IsInvalidArgument());
  EXPECT_EQ(bad.status().field(), "source");

  // An identify's source and event time.
  const std::string g = IdentifyByEmail("grace@x.com", R"({"lastName":"Hopper"})", "shopify", "2026-01-05T10:00:00Z");
  Json grace = Get(g);
  EXPECT_EQ(SourceOf(grace, "attributes.lastName")->Find("source")->as_string(), "shopify");
  EXPECT_EQ(SourceOf(grace, "attributes.lastName")->Find("at")->as_string(), "2026-01-05T10:00:00.000Z");
  EXPECT_EQ(SourceOf(grace, "attributes.email")->Find("source")->as_string(), "shopify")
      << "the email attribute the identify's identifier filled";
  // Without a source: "identify", at the time of the call.
  Unwrap(identity().Identify(J(R"({"identifiers":{"email":"grace@x.com"},"attributes":{"city":"Arlington"}})")));
  grace = Get(g);
  EXPECT_EQ(SourceOf(grace, "attributes.city")->Find("source")->as_string(), "identify");
  EXPECT_EQ(SourceOf(grace, "attributes.city")->Find("at")->as_string(), grace.Find("updatedAt")->as_string());
  EXPECT_EQ(identity().Identify(J(R"({"identifiers":{"email":"g@x.com"},"timestamp":"yesterday"})")).status().field(),
            "timestamp");
  EXPECT_EQ(identity().Identify(J(R"({"identifiers":{"email":"g@x.com"},"source":""})")).status().field(), "source");

  // An event that creates a profile fills attributes.email with the event's source and time.
  TrackResult t = Unwrap(events().Track(
      J(R"({"type":"page_view","email":"linus@x.com","source":"web","timestamp":"2026-02-01T00:00:00Z"})")));
  Json linus = Get(t.profile_id);
  EXPECT_EQ(SourceOf(linus, "attributes.email")->Find("source")->as_string(), "web");
  EXPECT_EQ(SourceOf(linus, "attributes.email")->Find("at")->as_string(), "2026-02-01T00:00:00.000Z");
}

TEST_F(SurvivorshipTest, DefaultSurvivorKeepsItsValuesAndConflictsCarryTheirSource) {
  const std::string a = Create(R"({"source":"crm","attributes":{"firstName":"Ada","tags":["vip"]}})");
  const std::string b = IdentifyByEmail("b@x.com", R"({"firstName":"Adeline","city":"Paris","tags":["new"]})",
                                        "shopify", "2026-03-01T00:00:00Z");
  Merge({a, b});
  Json p = Get(a);
  EXPECT_EQ(p.FindPath("attributes.firstName")->as_string(), "Ada");
  EXPECT_EQ(p.FindPath("attributes.city")->as_string(), "Paris") << "the other fills an empty field";
  EXPECT_EQ(*p.FindPath("attributes.tags"), J(R"(["vip","new"])")) << "tags are united by default";
  EXPECT_EQ(SourceOf(p, "attributes.city")->Find("source")->as_string(), "shopify") << "with its provenance";
  std::vector<Json> conflicts = ConflictsOf(p, "attributes.firstName");
  ASSERT_EQ(conflicts.size(), 1u) << p.Dump();
  EXPECT_EQ(conflicts[0].Find("value")->as_string(), "Adeline");
  EXPECT_EQ(conflicts[0].Find("profileId")->as_string(), b);
  EXPECT_EQ(conflicts[0].Find("source")->as_string(), "shopify");
  EXPECT_EQ(conflicts[0].Find("setAt")->as_string(), "2026-03-01T00:00:00.000Z");
  EXPECT_EQ(p.Find("conflicts")->size(), 1u) << "tags and filled fields are no conflict";
}

// first_non_empty: in merge order (the survivor, then the merged profiles as listed), the first value that is not
// empty; the empty forms (absent, null, "", [] and {}) never win, and a merge of three walks them in order.
TEST_F(SurvivorshipTest, FirstNonEmptyTakesTheFirstValueInMergeOrder) {
  SetSurvivorship(R"({"default":"first_non_empty","fields":{"attributes.customFields.note":"first_non_empty"}})");
  const std::string a = Create(R"({"attributes":{"firstName":"Ada","city":"","customFields":{"note":{}}}})");
  const std::string b = Create(R"({"attributes":{"firstName":"Adeline","customFields":{"note":[]}}})");
  const std::string c = Create(R"({"attributes":{"firstName":"Addie","city":"Lyon","customFields":{"note":"hi"}}})");
  Merge({a, b, c});
  Json p = Get(a);
  EXPECT_EQ(p.FindPath("attributes.firstName")->as_string(), "Ada") << "the survivor's comes first";
  EXPECT_EQ(p.FindPath("attributes.city")->as_string(), "Lyon") << "an empty string is empty";
  EXPECT_EQ(p.FindPath("attributes.customFields.note")->as_string(), "hi") << "so are {} and []";
  EXPECT_EQ(ConflictsOf(p, "attributes.firstName").size(), 2u) << p.Dump();

  const std::string d = Create(R"({"attributes":{"lastName":null}})");
  const std::string e = Create(R"({"attributes":{"lastName":"Byron"}})");
  const std::string f = Create(R"({"attributes":{"lastName":"King"}})");
  Merge({d, e, f});
  EXPECT_EQ(Get(d).FindPath("attributes.lastName")->as_string(), "Byron") << "the first merged one, not the last";
}

TEST_F(SurvivorshipTest, MostRecentAndOldestFollowEventTimeNotCallOrder) {
  SetSurvivorship(R"({"fields":{"attributes.firstName":"most_recent","attributes.lastName":"oldest",
                                 "attributes.tags":"most_recent"}})");
  // The later values arrive first.
  const std::string b = IdentifyByEmail("b@x.com", R"({"firstName":"New","lastName":"Second","tags":["b"]})", "web",
                                        "2026-02-01T00:00:00Z");
  const std::string a = IdentifyByEmail("a@x.com", R"({"firstName":"Old","lastName":"First","tags":["a"]})", "crm",
                                        "2026-01-01T00:00:00Z");
  const std::string merge_id = Merge({a, b});
  Json p = Get(a);
  EXPECT_EQ(p.FindPath("attributes.firstName")->as_string(), "New");
  EXPECT_EQ(p.FindPath("attributes.lastName")->as_string(), "First");
  EXPECT_EQ(*p.FindPath("attributes.tags"), J(R"(["b"])")) << "tags listed with another rule are not united";
  EXPECT_EQ(SourceOf(p, "attributes.firstName")->Find("source")->as_string(), "web") << "the winner's provenance";
  EXPECT_EQ(SourceOf(p, "attributes.firstName")->Find("at")->as_string(), "2026-02-01T00:00:00.000Z");
  EXPECT_EQ(SourceOf(p, "attributes.lastName")->Find("source")->as_string(), "crm");
  // The survivor's replaced value is the conflict now, with its own provenance.
  std::vector<Json> first = ConflictsOf(p, "attributes.firstName");
  ASSERT_EQ(first.size(), 1u) << p.Dump();
  EXPECT_EQ(first[0].Find("value")->as_string(), "Old");
  EXPECT_EQ(first[0].Find("profileId")->as_string(), a);
  EXPECT_EQ(first[0].Find("source")->as_string(), "crm");
  EXPECT_EQ(first[0].Find("setAt")->as_string(), "2026-01-01T00:00:00.000Z");
  EXPECT_EQ(first[0].Find("mergeId")->as_string(), merge_id);
  std::vector<Json> last = ConflictsOf(p, "attributes.lastName");
  ASSERT_EQ(last.size(), 1u);
  EXPECT_EQ(last[0].Find("value")->as_string(), "Second");
  EXPECT_EQ(last[0].Find("profileId")->as_string(), b);
  // Explain shows what the merge decided.
  Json why = Unwrap(identity().Explain(a));
  const Json* decided = why.Find("merges")->items()[0].Find("survivorship");
  ASSERT_NE(decided, nullptr) << why.Dump();
  EXPECT_EQ(decided->Find(b)->Find("attributes.firstName")->Find("rule")->as_string(), "most_recent");
}

TEST_F(SurvivorshipTest, SourcePriorityRanksListedSourcesFirst) {
  SetSurvivorship(R"({"fields":{
      "attributes.city":{"rule":"source_priority","sources":["crm","shopify","web"]},
      "attributes.country":{"rule":"source_priority","sources":["crm"]},
      "attributes.postalCode":{"rule":"source_priority","sources":["crm"]}}})");
  const std::string a = IdentifyByEmail("a@x.com", R"({"city":"Lyon","country":"FR","postalCode":"69001"})", "web",
                                        "2026-01-01T00:00:00Z");
  const std::string b = IdentifyByEmail("b@x.com", R"({"city":"Paris","country":"DE","postalCode":"75001"})", "shopify",
                                        "2026-01-02T00:00:00Z");
  Unwrap(identity().Identify(J(R"({"identifiers":{"email":"b@x.com"},"attributes":{"country":"BE"},"source":"pos"})")));
  Merge({a, b});
  Json p = Get(a);
  EXPECT_EQ(p.FindPath("attributes.city")->as_string(), "Paris") << "shopify ranks above web";
  EXPECT_EQ(SourceOf(p, "attributes.city")->Find("source")->as_string(), "shopify");
  EXPECT_EQ(ConflictsOf(p, "attributes.city")[0].Find("value")->as_string(), "Lyon");
  EXPECT_EQ(p.FindPath("attributes.country")->as_string(), "FR")
      << "neither web nor pos is listed: a tie, which the default rule (survivor) decides";
  EXPECT_EQ(p.FindPath("attributes.postalCode")->as_string(), "69001");
}

TEST_F(SurvivorshipTest, MaxMinAndSumForNumbersFallBackForOthers) {
  SetSurvivorship(R"({"default":"most_recent","fields":{"attributes.customFields.score":"max",
      "attributes.customFields.lowest":"min","attributes.customFields.visits":"sum",
      "attributes.customFields.label":"max"}})");
  const std::string a = IdentifyByEmail("a@x.com", R"({"customFields":{"score":10,"lowest":5,"visits":3,"label":"a"}})",
                                        "crm", "2026-01-01T00:00:00Z");
  const std::string b = IdentifyByEmail("b@x.com", R"({"customFields":{"score":42,"lowest":2,"visits":4,"label":"b"}})",
                                        "crm", "2026-01-02T00:00:00Z");
  const std::string c = IdentifyByEmail(
      "c@x.com", R"({"customFields":{"score":7,"lowest":9,"visits":5.5,"label":"c"}})", "crm", "2025-12-01T00:00:00Z");
  const std::string merge_id = Merge({a, b, c});
  Json p = Get(a);
  EXPECT_EQ(p.FindPath("attributes.customFields.score")->as_int(), 42);
  EXPECT_EQ(p.FindPath("attributes.customFields.lowest")->as_int(), 2);
  EXPECT_DOUBLE_EQ(p.FindPath("attributes.customFields.visits")->as_number(), 12.5);
  EXPECT_EQ(p.FindPath("attributes.customFields.label")->as_string(), "b")
      << "max of strings falls back to the default rule (most recent)";
  EXPECT_EQ(SourceOf(p, "attributes.customFields.visits")->Find("source")->as_string(), "merge");
  EXPECT_TRUE(ConflictsOf(p, "attributes.customFields.visits").empty()) << "a sum keeps both";
  std::vector<Json> score = ConflictsOf(p, "attributes.customFields.score");
  ASSERT_EQ(score.size(), 2u) << p.Dump();
  EXPECT_EQ(score[0].Find("value")->as_int(), 10);
  EXPECT_EQ(score[0].Find("profileId")->as_string(), a);
  EXPECT_EQ(score[1].Find("value")->as_int(), 7);
  EXPECT_EQ(score[1].Find("profileId")->as_string(), c);

  // Unmerge puts every number back.
  Unwrap(identity().Unmerge(a, merge_id));
  p = Get(a);
  EXPECT_EQ(*p.FindPath("attributes.customFields"), J(R"({"score":10,"lowest":5,"visits":3,"label":"a"})")) << p.Dump();
  EXPECT_EQ(SourceOf(p, "attributes.customFields.visits")->Find("source")->as_string(), "crm");
  EXPECT_EQ(p.Find("conflicts")->size(), 0u);
  EXPECT_EQ(Get(b).FindPath("attributes.customFields.visits")->as_int(), 4);
  EXPECT_DOUBLE_EQ(Get(c).FindPath("attributes.customFields.visits")->as_number(), 5.5);
}

TEST_F(SurvivorshipTest, UnionKeepsOrderAndDropsDuplicates) {
  SetSurvivorship(R"({"fields":{"attributes.customFields.interests":"union"}})");
  const std::string a = Create(R"({"attributes":{"tags":["vip","a"],"customFields":{"interests":["x","y"],
                                   "sizes":["S"]}}})");
  const std::string b = Create(R"({"attributes":{"tags":["a","b"],"customFields":{"interests":["y","z","x"],
                                   "sizes":["M"]}}})");
  const std::string merge_id = Merge({a, b});
  Json p = Get(a);
  EXPECT_EQ(*p.FindPath("attributes.tags"), J(R"(["vip","a","b"])"));
  EXPECT_EQ(*p.FindPath("attributes.customFields.interests"), J(R"(["x","y","z"])"));
  EXPECT_EQ(*p.FindPath("attributes.customFields.sizes"), J(R"(["S"])")) << "other lists follow the default";
  ASSERT_EQ(p.Find("conflicts")->size(), 1u) << p.Dump();
  EXPECT_EQ(ConflictsOf(p, "attributes.customFields.sizes")[0].Find("value")->items()[0].as_string(), "M");
  Unwrap(identity().Unmerge(a, merge_id));
  p = Get(a);
  EXPECT_EQ(*p.FindPath("attributes.tags"), J(R"(["vip","a"])"));
  EXPECT_EQ(*p.FindPath("attributes.customFields.interests"), J(R"(["x","y"])"));
}

TEST_F(SurvivorshipTest, UnmergeUndoesEachRuleButKeepsLaterChanges) {
  SetSurvivorship(R"({"fields":{"attributes.firstName":"most_recent","attributes.lastName":"most_recent",
      "attributes.customFields.visits":"sum","attributes.customFields.score":"max"}})");
  const std::string a = IdentifyByEmail(
      "a@x.com", R"({"firstName":"Old","lastName":"Was","tags":["a"],"customFields":{"visits":3,"score":1}})", "crm",
      "2026-01-01T00:00:00Z");
  const std::string b = IdentifyByEmail("b@x.com", R"({"firstName":"New","lastName":"Is","tags":["b"],"city":"Oslo",
                     "customFields":{"visits":4,"score":9}})",
                                        "web", "2026-02-01T00:00:00Z");
  const Json a_before = Get(a);
  const std::string merge_id = Merge({a, b});
  Json merged = Get(a);
  ASSERT_EQ(merged.FindPath("attributes.firstName")->as_string(), "New");
  ASSERT_EQ(merged.FindPath("attributes.customFields.visits")->as_int(), 7);
  ASSERT_EQ(*merged.FindPath("attributes.tags"), J(R"(["a","b"])"));
  // After the merge: two more visits, a new tag and a new last name.
  Unwrap(profiles().Patch(a, J(R"({"attributes":{"lastName":"Later","tags":["a","b","c"],
                                   "customFields":{"visits":9}}})")));

  Unwrap(identity().Unmerge(a, merge_id));
  Json p = Get(a);
  EXPECT_EQ(p.FindPath("attributes.firstName")->as_string(), "Old") << "unchanged since: the survivor's again";
  EXPECT_EQ(*SourceOf(p, "attributes.firstName"), *SourceOf(a_before, "attributes.firstName"));
  EXPECT_EQ(p.FindPath("attributes.lastName")->as_string(), "Later") << "changed since: kept";
  EXPECT_EQ(p.FindPath("attributes.customFields.visits")->as_int(), 5) << "changed since: 9 less B's 4";
  EXPECT_EQ(p.FindPath("attributes.customFields.score")->as_int(), 1);
  EXPECT_EQ(*p.FindPath("attributes.tags"), J(R"(["a","c"])")) << "B's tag goes, the later one stays";
  EXPECT_EQ(p.FindPath("attributes.city"), nullptr) << "a filled field is emptied again";
  EXPECT_EQ(SourceOf(p, "attributes.city"), nullptr);
  EXPECT_EQ(p.Find("conflicts")->size(), 0u);
  Json pb = Get(b);
  EXPECT_EQ(pb.FindPath("attributes.firstName")->as_string(), "New");
  EXPECT_EQ(pb.FindPath("attributes.customFields.visits")->as_int(), 4);
  EXPECT_EQ(SourceOf(pb, "attributes.firstName")->Find("source")->as_string(), "web");
}

}  // namespace
}  // namespace cdp
