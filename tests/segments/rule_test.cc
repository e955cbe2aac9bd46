// Copyright 2026 The libcdp Authors.
//
// SegmentRule: parsing, validation errors with their paths, limits and dependencies.

#include <gtest/gtest.h>

#include <string>

#include "cdp/segment_rule.h"
#include "test_util.h"

namespace cdp {
namespace {

using ::cdp::testing::J;

Status ParseError(std::string_view text) {
  auto r = SegmentRule::FromJson(J(text));
  EXPECT_FALSE(r.ok()) << text;
  return r.ok() ? Status::OK() : r.status();
}

SegmentRule Parse(std::string_view text) {
  auto r = SegmentRule::FromJson(J(text));
  EXPECT_TRUE(r.ok()) << r.status().ToString() << " in " << text;
  return r.ok() ? std::move(r).value() : SegmentRule();
}

TEST(SegmentRuleTest, ParsesTheIssueExample) {
  SegmentRule rule = Parse(R"({"operator": "AND", "conditions": [
      {"field": "attributes.country", "operator": "in", "value": ["US", "CA"]},
      {"field": "computed.lastPurchaseDate", "operator": ">=", "value": "-30d"},
      {"event": "purchase", "where": [{"field": "properties.revenue", "operator": ">", "value": 50}],
       "within": "90d", "count": {">=": 2}},
      {"not": {"segment": "churned"}}]})");
  const RuleNode& root = rule.root();
  ASSERT_EQ(root.kind, RuleNode::Kind::kAnd);
  ASSERT_EQ(root.children.size(), 4u);
  EXPECT_EQ(root.children[0].op, RuleOp::kIn);
  EXPECT_EQ(root.children[0].values.size(), 2u);
  const RuleValue& rel = root.children[1].values[0];
  ASSERT_TRUE(rel.time.has_value());
  EXPECT_TRUE(rel.time->relative);
  EXPECT_EQ(rel.time->micros, -30LL * 86400 * 1000000);
  const RuleNode& ev = root.children[2];
  EXPECT_EQ(ev.kind, RuleNode::Kind::kEvent);
  EXPECT_EQ(ev.events.event, "purchase");
  ASSERT_EQ(ev.events.where.size(), 1u);
  EXPECT_EQ(ev.within.from->micros, -90LL * 86400 * 1000000);
  EXPECT_EQ(ev.within.to->micros, 0);
  ASSERT_EQ(ev.test.terms.size(), 1u);
  EXPECT_EQ(ev.test.terms[0].op, RuleOp::kGe);
  EXPECT_EQ(root.children[3].kind, RuleNode::Kind::kNot);
  EXPECT_EQ(root.children[3].children[0].segment, "churned");

  const RuleDependencies& d = rule.dependencies();
  EXPECT_EQ(d.fields, (std::vector<std::string>{"attributes.country", "computed.lastPurchaseDate"}));
  EXPECT_EQ(d.events, (std::vector<std::string>{"purchase"}));
  EXPECT_EQ(d.segments, (std::vector<std::string>{"churned"}));
  EXPECT_TRUE(d.time_dependent);
}

TEST(SegmentRuleTest, EveryFilterOfProfileSearchIsARule) {
  SegmentRule rule = Parse(R"({"operator": "OR", "conditions": [
      {"field": "computed.ltv", "operator": ">=", "value": 100},
      {"field": "attributes.tags", "operator": "contains", "value": "vip"}]})");
  EXPECT_EQ(rule.root().kind, RuleNode::Kind::kOr);
  EXPECT_FALSE(rule.dependencies().time_dependent);
  EXPECT_TRUE(rule.dependencies().events.empty());
  // A bare array is an AND group; a lone condition is the rule itself.
  EXPECT_EQ(Parse(R"([{"field": "a", "operator": "exists"}])").root().kind, RuleNode::Kind::kAnd);
  EXPECT_EQ(Parse(R"({"field": "a", "operator": "exists"})").root().kind, RuleNode::Kind::kField);
}

TEST(SegmentRuleTest, NotGroupWrapsTheAndOfItsConditions) {
  SegmentRule rule = Parse(R"({"operator": "NOT", "conditions": [{"field": "a", "operator": "=", "value": 1},
                                                               {"field": "b", "operator": "=", "value": 2}]})");
  ASSERT_EQ(rule.root().kind, RuleNode::Kind::kNot);
  EXPECT_EQ(rule.root().children[0].kind, RuleNode::Kind::kAnd);
  EXPECT_EQ(rule.root().children[0].children.size(), 2u);
}

TEST(SegmentRuleTest, ErrorsNameThePathOfTheOffendingPart) {
  struct Case {
    const char* rule;
    const char* path;
  };
  const Case cases[] = {
      {R"({"conditions": [{"field": "a", "operator": "~", "value": 1}]})", "conditions[0].operator"},
      {R"({"conditions": [{"field": "a", "operator": "=", "value": 1}, {"field": "b", "operator": "=", "value": 1},
                          {"event": "purchase", "count": {"~": 2}}]})",
       "conditions[2].count.~"},
      {R"({"conditions": [{"event": "purchase", "count": "many"}]})", "conditions[0].count"},
      {R"({"conditions": [{"field": "segments", "operator": ">", "value": "seg_a"}]})", "conditions[0].operator"},
      {R"({"conditions": [{"field": "segments", "operator": "in", "value": ["seg_a", 3]}]})", "conditions[0].value[1]"},
      {R"({"conditions": [{"event": "purchase", "where": [{"field": "properties.x", "operator": "in",
                                                           "value": 3}]}]})",
       "conditions[0].where[0].value"},
      {R"({"conditions": [{"event": "purchase", "where": [{"field": "attributes.x", "operator": "=",
                                                           "value": 3}]}]})",
       "conditions[0].where[0].field"},
      {R"({"conditions": [{"event": "purchase", "where": [{"field": "properties.d", "operator": ">",
                                                           "value": "-3d"}]}]})",
       "conditions[0].where[0].value"},
      {R"({"conditions": [{"event": "purchase", "within": "30x"}]})", "conditions[0].within"},
      {R"({"conditions": [{"event": "purchase", "within": {"from": "yesterday"}}]})", "conditions[0].within.from"},
      {R"({"conditions": [{"event": "purchase", "within": {"from": "-1d", "to": "-3d"}}]})", "conditions[0].within"},
      {R"({"conditions": [{"event": "purchase", "sum": "properties.revenue"}]})", "conditions[0].value"},
      {R"({"conditions": [{"event": "purchase", "sum": "properties.revenue", "count": 2, "value": 1}]})",
       "conditions[0].count"},
      {R"({"conditions": [{"event": "purchase", "avg": "computed.ltv", "value": {">": 1}}]})", "conditions[0].avg"},
      {R"({"conditions": [{"event": "purchase", "often": true}]})", "conditions[0].often"},
      {R"({"conditions": [{"sequence": [{"event": "add_to_cart"}]}]})", "conditions[0].sequence"},
      {R"({"conditions": [{"sequence": [{"event": "a"}, {"event": "b", "count": 1}]}]})",
       "conditions[0].sequence[1].count"},
      {R"({"conditions": [{"sequence": [{"event": "a"}, {"event": "b"}], "span": 5}]})", "conditions[0].span"},
      {R"({"conditions": [{"segment": ""}]})", "conditions[0].segment"},
      {R"({"conditions": [{"field": "a", "operator": "between", "value": [1]}]})", "conditions[0].value"},
      {R"({"conditions": [{"field": "a", "operator": "between", "value": [1, "x"]}]})", "conditions[0].value"},
      {R"({"conditions": [{"field": "a", "operator": "between", "value": ["-1d", 5]}]})", "conditions[0].value"},
      {R"({"conditions": [{"field": "a", "operator": "=", "value": {"x": 1}}]})", "conditions[0].value"},
      {R"({"conditions": [{"field": "a", "operator": "in", "value": [1, [2]]}]})", "conditions[0].value[1]"},
      {R"({"conditions": [{"field": "a", "operator": ">", "value": true}]})", "conditions[0].value"},
      {R"({"conditions": [{"field": "a", "operator": "starts_with", "value": 1}]})", "conditions[0].value"},
      {R"({"conditions": [{"field": "a", "operator": "exists", "value": 3}]})", "conditions[0].value"},
      {R"({"conditions": [{"field": "a", "operator": "="}]})", "conditions[0].value"},
      {R"({"conditions": [{"field": "a..b", "operator": "exists"}]})", "conditions[0].field"},
      {R"({"conditions": [{"field": "a", "operator": "=", "value": 1, "extra": 1}]})", "conditions[0].extra"},
      {R"({"conditions": [{"not": {"field": "a", "operator": "=", "value": 1}, "x": 1}]})", "conditions[0]"},
      {R"({"conditions": [{"not": {"field": "a", "operator": "?", "value": 1}}]})", "conditions[0].not.operator"},
      {R"({"operator": "XOR", "conditions": []})", "operator"},
      {R"({"conditions": [{"operator": "OR"}]})", "conditions[0].conditions"},
      {R"({"conditions": [{"what": 1}]})", "conditions[0]"},
      {R"({"conditions": [3]})", "conditions[0]"},
  };
  for (const Case& c : cases) {
    Status s = ParseError(c.rule);
    EXPECT_TRUE(s.IsInvalidArgument()) << c.rule;
    EXPECT_EQ(s.field(), c.path) << c.rule << " -> " << s.ToString();
  }
}

TEST(SegmentRuleTest, DepthLimit) {
  std::string ok = R"({"field": "a", "operator": "exists"})";
  for (int i = 0; i < 7; ++i) ok = R"({"operator": "OR", "conditions": [)" + ok + "]}";
  EXPECT_TRUE(SegmentRule::FromJson(J(ok)).ok());  // 7 groups around a leaf: depth 7
  std::string deep = ok;
  deep = R"({"operator": "OR", "conditions": [)" + deep + "]}";
  EXPECT_TRUE(SegmentRule::FromJson(J(deep)).ok());  // 8
  deep = R"({"operator": "OR", "conditions": [)" + deep + "]}";
  Status s = ParseError(deep);  // 9
  EXPECT_NE(s.message().find("deeper than 8"), std::string::npos) << s.ToString();
  EXPECT_EQ(s.field().rfind("conditions[0].conditions[0]", 0), 0u) << s.field();
}

TEST(SegmentRuleTest, ConditionCountLimit) {
  auto rule_of = [](int n) {
    Json conditions = Json::Array();
    for (int i = 0; i < n; ++i) {
      conditions.Push(Json::Object().Set("field", "a").Set("operator", "=").Set("value", i));
    }
    return Json::Object().Set("conditions", conditions);
  };
  EXPECT_TRUE(SegmentRule::FromJson(rule_of(256)).ok());
  auto r = SegmentRule::FromJson(rule_of(257));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().field(), "conditions[256]");
  // A tighter limit from the caller.
  RuleLimits limits;
  limits.max_conditions = 3;
  EXPECT_FALSE(SegmentRule::FromJson(rule_of(4), limits).ok());
  EXPECT_TRUE(SegmentRule::FromJson(rule_of(3), limits).ok());
}

TEST(SegmentRuleTest, SizeLimitsOnPathsValuesAndIds) {
  std::string long_path(257, 'a');
  EXPECT_EQ(ParseError(R"({"conditions": [{"field": ")" + long_path + R"(", "operator": "exists"}]})").field(),
            "conditions[0].field");
  std::string long_value(1025, 'v');
  EXPECT_EQ(ParseError(R"({"conditions": [{"field": "a", "operator": "=", "value": ")" + long_value + "\"}]}").field(),
            "conditions[0].value");
  EXPECT_EQ(ParseError(R"({"conditions": [{"field": "a", "operator": "in", "value": ["x", ")" + long_value + "\"]}]}")
                .field(),
            "conditions[0].value[1]");
  std::string long_id(129, 's');
  EXPECT_EQ(ParseError(R"({"conditions": [{"segment": ")" + long_id + "\"}]}").field(), "conditions[0].segment");
  Json many = Json::Array();
  for (int i = 0; i < 1001; ++i) many.Push(i);
  auto r = SegmentRule::FromJson(Json::Object().Set("field", "a").Set("operator", "in").Set("value", many));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().field(), "value");
  EXPECT_FALSE(SegmentRule::FromJson(J(R"({"event": "purchase", "within": "999999999w"})")).ok());
}

TEST(SegmentRuleTest, RelativeDatesAndDurations) {
  EXPECT_EQ(*ParseRuleDuration("90s"), 90LL * 1000000);
  EXPECT_EQ(*ParseRuleDuration("15m"), 15LL * 60 * 1000000);
  EXPECT_EQ(*ParseRuleDuration("2h"), 2LL * 3600 * 1000000);
  EXPECT_EQ(*ParseRuleDuration("3w"), 21LL * 86400 * 1000000);
  EXPECT_FALSE(ParseRuleDuration("-3d").ok());
  EXPECT_FALSE(ParseRuleDuration("d").ok());
  EXPECT_FALSE(ParseRuleDuration("3y").ok());

  SegmentRule rule = Parse(R"({"field": "createdAt", "operator": "between", "value": ["-2w", "+12h"]})");
  const auto& v = rule.root().values;
  EXPECT_EQ(v[0].time->micros, -14LL * 86400 * 1000000);
  EXPECT_EQ(v[1].time->micros, 12LL * 3600 * 1000000);
  EXPECT_EQ(v[0].time->Resolve(1000LL * 86400 * 1000000), 986LL * 86400 * 1000000);
  // "now" is a relative date too; an absolute timestamp is an instant, not time-dependent.
  EXPECT_TRUE(Parse(R"({"field": "x", "operator": "<", "value": "now"})").dependencies().time_dependent);
  SegmentRule abs = Parse(R"({"field": "x", "operator": "<", "value": "2026-01-02"})");
  EXPECT_FALSE(abs.dependencies().time_dependent);
  EXPECT_EQ(abs.root().values[0].time->micros, *ParseTimestamp("2026-01-02T00:00:00Z"));
  // = does not take relative dates: "-30d" is a plain string there.
  SegmentRule eq = Parse(R"({"field": "code", "operator": "=", "value": "-30d"})");
  EXPECT_FALSE(eq.root().values[0].time.has_value());
  EXPECT_FALSE(eq.dependencies().time_dependent);
  // Date-times of `in` are brought to the stored form.
  SegmentRule in = Parse(R"({"field": "d", "operator": "in", "value": ["2026-01-02T03:04:05Z"]})");
  EXPECT_EQ(in.root().values[0].json.as_string(), "2026-01-02T03:04:05.000Z");
}

TEST(SegmentRuleTest, BehaviouralForms) {
  SegmentRule did_not = Parse(R"({"event": "email_open", "within": "14d", "count": 0})");
  EXPECT_EQ(did_not.root().test.terms[0].op, RuleOp::kEq);
  EXPECT_EQ(did_not.root().test.terms[0].value, 0);
  EXPECT_TRUE(did_not.root().test.Matches(0));
  EXPECT_FALSE(did_not.root().test.Matches(1));

  SegmentRule range = Parse(R"({"event": "page_view", "count": {">=": 2, "<": 5}})");
  EXPECT_FALSE(range.root().test.Matches(1));
  EXPECT_TRUE(range.root().test.Matches(4));
  EXPECT_FALSE(range.root().test.Matches(5));
  EXPECT_FALSE(range.dependencies().time_dependent);

  SegmentRule sum = Parse(R"({"event": "purchase", "sum": "properties.revenue", "value": {">": 500},
                             "within": {"from": "2026-01-01", "to": "-1d"}})");
  EXPECT_EQ(sum.root().aggregate, Aggregate::kSum);
  EXPECT_EQ(sum.root().aggregate_field, "properties.revenue");
  EXPECT_FALSE(sum.root().within.from->relative);
  EXPECT_TRUE(sum.root().within.to->relative);

  SegmentRule seq = Parse(R"({"sequence": [{"event": "add_to_cart", "where": {"field": "properties.sku",
                                                                                "operator": "exists"}},
                                            {"event": "signup"}], "span": "1h", "within": "7d"})");
  ASSERT_EQ(seq.root().steps.size(), 2u);
  EXPECT_EQ(seq.root().steps[0].where.size(), 1u);
  EXPECT_EQ(seq.root().span_us, 3600LL * 1000000);
  EXPECT_EQ(seq.dependencies().events, (std::vector<std::string>{"add_to_cart", "signup"}));
}

TEST(SegmentRuleTest, DependenciesDecideWhichWritesMatter) {
  SegmentRule rule = Parse(R"({"conditions": [{"field": "attributes.customFields.tier", "operator": "=", "value": 1},
                                              {"field": "computed.rfm.segment", "operator": "=", "value": "Lost"},
                                              {"event": "signup"}, {"event": "purchase"}]})");
  const RuleDependencies& d = rule.dependencies();
  EXPECT_TRUE(d.ReadsField("attributes.customFields.tier"));
  EXPECT_TRUE(d.ReadsField("attributes"));  // a whole replace of attributes
  EXPECT_TRUE(d.ReadsField("attributes.customFields"));
  EXPECT_TRUE(d.ReadsField("computed.rfm.segment.x"));  // below a dependency
  EXPECT_FALSE(d.ReadsField("attributes.customFields.tie"));
  EXPECT_FALSE(d.ReadsField("attributes.customFields.tiers"));
  EXPECT_FALSE(d.ReadsField("consent"));
  EXPECT_TRUE(d.ReadsEvent("purchase", ""));
  EXPECT_TRUE(d.ReadsEvent("custom", "signup"));
  EXPECT_FALSE(d.ReadsEvent("custom", "purchase_refund"));
  EXPECT_FALSE(d.ReadsEvent("page_view", ""));
  EXPECT_TRUE(Parse(R"({"event": "*"})").dependencies().ReadsEvent("page_view", ""));
  EXPECT_TRUE(Parse(R"({"event": "custom"})").dependencies().ReadsEvent("custom", "anything"));
}

TEST(SegmentRuleTest, SegmentsFieldConditionsAreMembership) {
  // contains / = name one segment; != and not_in negate; in is any of them.
  SegmentRule rule = Parse(R"({"conditions": [{"field": "segments", "operator": "contains", "value": "seg_a"},
                                              {"field": "segments", "operator": "not_in", "value": ["seg_b", "seg_c"]},
                                              {"field": "segments", "operator": "!=", "value": "seg_d"}]})");
  EXPECT_EQ(rule.dependencies().segments, (std::vector<std::string>{"seg_a", "seg_b", "seg_c", "seg_d"}));
  EXPECT_FALSE(rule.dependencies().ReadsField("segments"));
  const RuleNode& root = rule.root();
  ASSERT_EQ(root.children.size(), 3u);
  EXPECT_EQ(root.children[0].kind, RuleNode::Kind::kSegment);
  EXPECT_EQ(root.children[0].segment, "seg_a");
  EXPECT_EQ(root.children[1].kind, RuleNode::Kind::kNot);
  EXPECT_EQ(root.children[1].children[0].kind, RuleNode::Kind::kOr);
  EXPECT_EQ(root.children[1].children[0].children.size(), 2u);
  EXPECT_EQ(root.children[2].kind, RuleNode::Kind::kNot);
  EXPECT_EQ(root.children[2].children[0].segment, "seg_d");
}

}  // namespace
}  // namespace cdp
