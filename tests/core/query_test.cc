// Copyright 2026 The libcdp Authors.

#include "cdp/query.h"

#include <gtest/gtest.h>

#include "test_util.h"

namespace cdp {
namespace {

using testing::J;

const Json kDoc = J(R"({"attributes":{"country":"US","tags":["vip","new"],"customFields":{"tier":"gold"}},
                        "computed":{"ltv":120.5,"lastPurchaseDate":"2026-03-01T10:00:00.000Z"}})");

bool Match(std::string_view filter) {
  auto f = Filter::FromJson(J(filter));
  EXPECT_TRUE(f.ok()) << f.status().ToString();
  return f.ok() && f->Matches(kDoc);
}

TEST(FilterTest, Operators) {
  EXPECT_TRUE(Match(R"([{"field":"attributes.country","operator":"=","value":"US"}])"));
  EXPECT_FALSE(Match(R"([{"field":"attributes.country","operator":"!=","value":"US"}])"));
  EXPECT_TRUE(Match(R"([{"field":"computed.ltv","operator":">","value":100}])"));
  EXPECT_FALSE(Match(R"([{"field":"computed.ltv","operator":"<=","value":120}])"));
  EXPECT_TRUE(Match(R"([{"field":"computed.ltv","operator":">=","value":120.5}])"));
  EXPECT_TRUE(Match(R"([{"field":"attributes.tags","operator":"contains","value":"vip"}])"));
  EXPECT_TRUE(Match(R"([{"field":"attributes.country","operator":"contains","value":"U"}])"));
  EXPECT_TRUE(Match(R"([{"field":"attributes.customFields.tier","operator":"in","value":["gold","silver"]}])"));
  EXPECT_FALSE(Match(R"([{"field":"attributes.customFields.tier","operator":"in","value":["bronze"]}])"));
  EXPECT_TRUE(Match(R"([{"field":"attributes.tags","operator":"in","value":["new"]}])"));
}

TEST(FilterTest, MissingFieldsMatchOnlyNotEqual) {
  EXPECT_FALSE(Match(R"([{"field":"attributes.city","operator":"=","value":"X"}])"));
  EXPECT_TRUE(Match(R"([{"field":"attributes.city","operator":"!=","value":"X"}])"));
  EXPECT_FALSE(Match(R"([{"field":"attributes.city","operator":"<","value":"X"}])"));
}

// What a newcomer missed to find people: presence, prefixes, exclusion lists and case-blind matching.
TEST(FilterTest, ExistsStartsWithNotInAndIgnoreCase) {
  EXPECT_TRUE(Match(R"([{"field":"attributes.country","operator":"exists","value":true}])"));
  EXPECT_FALSE(Match(R"([{"field":"attributes.city","operator":"exists","value":true}])"));
  EXPECT_TRUE(Match(R"([{"field":"attributes.city","operator":"exists","value":false}])"));
  EXPECT_FALSE(Match(R"([{"field":"attributes.country","operator":"exists","value":false}])"));
  EXPECT_TRUE(Match(R"([{"field":"attributes.customFields.tier","operator":"starts_with","value":"go"}])"));
  EXPECT_FALSE(Match(R"([{"field":"attributes.customFields.tier","operator":"starts_with","value":"old"}])"));
  EXPECT_TRUE(Match(R"([{"field":"attributes.tags","operator":"starts_with","value":"ne"}])"));  // an element
  EXPECT_FALSE(Match(R"([{"field":"computed.ltv","operator":"starts_with","value":"12"}])"));    // not a string
  EXPECT_TRUE(Match(R"([{"field":"attributes.country","operator":"not_in","value":["FR","DE"]}])"));
  EXPECT_FALSE(Match(R"([{"field":"attributes.country","operator":"not_in","value":["FR","US"]}])"));
  EXPECT_FALSE(Match(R"([{"field":"attributes.tags","operator":"not_in","value":["vip"]}])"));  // shares one
  EXPECT_TRUE(Match(R"([{"field":"attributes.city","operator":"not_in","value":["Oslo"]}])"));  // missing
  // ignoreCase: ASCII letters only, for the string operators.
  EXPECT_FALSE(Match(R"([{"field":"attributes.country","operator":"=","value":"us"}])"));
  EXPECT_TRUE(Match(R"([{"field":"attributes.country","operator":"=","value":"us","ignoreCase":true}])"));
  EXPECT_FALSE(Match(R"([{"field":"attributes.country","operator":"!=","value":"uS","ignoreCase":true}])"));
  EXPECT_TRUE(Match(R"([{"field":"attributes.customFields.tier","operator":"contains","value":"OL",
                        "ignoreCase":true}])"));
  EXPECT_TRUE(Match(R"([{"field":"attributes.tags","operator":"contains","value":"VIP","ignoreCase":true}])"));
  EXPECT_TRUE(Match(R"([{"field":"attributes.customFields.tier","operator":"starts_with","value":"GO",
                        "ignoreCase":true}])"));
  EXPECT_TRUE(Match(R"([{"field":"attributes.country","operator":"in","value":["fr","us"],"ignoreCase":true}])"));
  EXPECT_FALSE(Match(R"([{"field":"attributes.country","operator":"not_in","value":["us"],"ignoreCase":true}])"));
  // Only ASCII letters fold: "Zürich" matches "zürich" (Z/z) but not "ZÜRICH" (ü/Ü).
  const Json city = J(R"({"city": "Zürich"})");
  auto matches = [&](std::string_view f) { return testing::Unwrap(Filter::FromJson(J(f))).Matches(city); };
  EXPECT_TRUE(matches(R"([{"field":"city","operator":"=","value":"zürich","ignoreCase":true}])"));
  EXPECT_FALSE(matches(R"([{"field":"city","operator":"=","value":"ZÜRICH","ignoreCase":true}])"));
  EXPECT_FALSE(matches(R"([{"field":"city","operator":"=","value":"zürich"}])"));
  // A date-time prefix is a prefix, not a time to normalize.
  EXPECT_TRUE(Match(R"([{"field":"computed.lastPurchaseDate","operator":"starts_with","value":"2026-03-01T10:00"}])"));
  EXPECT_TRUE(Match(R"([{"field":"computed.lastPurchaseDate","operator":"starts_with","value":"2026-03"}])"));
  // Their values are checked.
  EXPECT_EQ(Filter::FromJson(J(R"([{"field":"a","operator":"exists","value":"yes"}])")).status().field(),
            "conditions[0].value");
  EXPECT_EQ(Filter::FromJson(J(R"([{"field":"a","operator":"starts_with","value":1}])")).status().field(),
            "conditions[0].value");
  EXPECT_EQ(Filter::FromJson(J(R"([{"field":"a","operator":"not_in","value":"x"}])")).status().field(),
            "conditions[0].value");
  EXPECT_EQ(Filter::FromJson(J(R"([{"field":"a","operator":"=","value":1,"ignoreCase":1}])")).status().field(),
            "conditions[0].ignoreCase");
  EXPECT_EQ(Filter::FromJson(J(R"([{"field":"a","operator":">","value":"b","ignoreCase":true}])")).status().field(),
            "conditions[0].ignoreCase");
  EXPECT_EQ(
      Filter::FromJson(J(R"([{"field":"a","operator":"exists","value":true,"ignoreCase":true}])")).status().field(),
      "conditions[0].ignoreCase");
}

// An error message quoting an input cut in the middle of a character stays valid UTF-8 (U+FFFD for the stray
// bytes): otherwise REST answered invalid JSON and Python failed to raise the error.
TEST(StatusTest, MessagesAndFieldsAreValidUtf8) {
  Status s = Status::InvalidArgument(std::string("type \"") + std::string(63, 'a') + "\xC3\"", "f\xFF\xC3\xA9");
  EXPECT_EQ(s.message(), std::string("type \"") + std::string(63, 'a') + "\xEF\xBF\xBD\"");
  EXPECT_EQ(s.field(), "f\xEF\xBF\xBD\xC3\xA9");  // the valid é stays
  EXPECT_EQ(Status::InvalidArgument("caf\xC3\xA9 \xF0\x9F\x98\x80").message(), "caf\xC3\xA9 \xF0\x9F\x98\x80");
  EXPECT_EQ(Status::InvalidArgument("\xED\xA0\x80").message(), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");  // a surrogate
  EXPECT_EQ(Status::InvalidArgument("\xC0\xAF").message(), "\xEF\xBF\xBD\xEF\xBF\xBD");                  // overlong
  // The case a reviewer found: an unknown operator of 31 ASCII bytes and an é, cut at 32 bytes.
  auto f =
      Filter::FromJson(J(R"([{"field":"a","operator":")" + std::string(31, 'o') + "\xC3\xA9" + R"(","value":1}])"));
  EXPECT_NE(f.status().message().find("\xEF\xBF\xBD"), std::string::npos) << f.status().message();
}

TEST(FilterTest, DateTimesCompareInTimeOrderWhateverTheirForm) {
  EXPECT_TRUE(Match(R"([{"field":"computed.lastPurchaseDate","operator":">","value":"2026-03-01T09:00:00Z"}])"));
  EXPECT_TRUE(Match(R"([{"field":"computed.lastPurchaseDate","operator":"=","value":"2026-03-01T11:00:00+01:00"}])"));
  EXPECT_TRUE(Match(R"([{"field":"computed.lastPurchaseDate","operator":">=","value":"2026-03-01"}])"));
  EXPECT_FALSE(Match(R"([{"field":"computed.lastPurchaseDate","operator":">=","value":"2026-03-02"}])"));
}

TEST(FilterTest, NestedGroupsCombineWithAndOr) {
  EXPECT_TRUE(Match(R"({"operator":"OR","conditions":[
      {"field":"attributes.country","operator":"=","value":"FR"},
      {"operator":"AND","conditions":[{"field":"computed.ltv","operator":">","value":100},
                                      {"field":"attributes.tags","operator":"contains","value":"vip"}]}]})"));
  EXPECT_FALSE(Match(R"({"operator":"AND","conditions":[
      {"field":"attributes.country","operator":"=","value":"US"},
      {"operator":"OR","conditions":[{"field":"computed.ltv","operator":">","value":1000},
                                     {"field":"attributes.tags","operator":"contains","value":"x"}]}]})"));
}

TEST(FilterTest, BadFiltersNameTheOffendingPart) {
  auto f = Filter::FromJson(J(R"({"operator":"AND","conditions":[{"field":"a","operator":"=","value":1},
                                   {"field":"b","operator":"~","value":1}]})"));
  ASSERT_FALSE(f.ok());
  EXPECT_EQ(f.status().field(), "conditions[1].operator");
  f = Filter::FromJson(J(R"([{"field":"a","operator":"in","value":3}])"));
  EXPECT_EQ(f.status().field(), "conditions[0].value");
  f = Filter::FromJson(J(R"({"operator":"XOR","conditions":[]})"));
  EXPECT_EQ(f.status().field(), "operator");
  std::string deep = R"({"field":"a","operator":"=","value":1})";
  for (int i = 0; i < 10; ++i) deep = R"({"operator":"AND","conditions":[)" + deep + "]}";
  EXPECT_TRUE(Filter::FromJson(J(deep)).status().IsInvalidArgument());
}

TEST(QueryTest, ProfileQueryFromJson) {
  auto q = ProfileQuery::FromJson(J(R"({"conditions":[{"field":"attributes.country","operator":"=","value":"US"}],
                                         "sort":{"field":"computed.ltv","order":"desc"},"limit":10})"));
  ASSERT_TRUE(q.ok()) << q.status().ToString();
  EXPECT_EQ(q->sort_by, "computed.ltv");
  EXPECT_TRUE(q->descending);
  EXPECT_EQ(q->limit, 10u);
  EXPECT_EQ(q->filter.conditions.size(), 1u);
  EXPECT_EQ(ProfileQuery::FromJson(J(R"({"limit":0})")).status().field(), "limit");
  EXPECT_EQ(ProfileQuery::FromJson(J(R"({"bogus":1})")).status().field(), "bogus");
}

TEST(QueryTest, EventQueryFromJson) {
  auto q = EventQuery::FromJson(J(R"({"profileId":"p1","type":"purchase","since":"2026-01-01","until":1767225600000,
                                       "where":[{"field":"properties.plan","operator":"=","value":"pro"}],
                                       "order":"desc"})"));
  ASSERT_TRUE(q.ok()) << q.status().ToString();
  EXPECT_EQ(*q->since_us, *ParseTimestamp("2026-01-01"));
  EXPECT_EQ(*q->until_us, int64_t{1767225600000} * 1000);
  EXPECT_TRUE(q->descending);
  EXPECT_EQ(EventQuery::FromJson(J(R"({"since":"never"})")).status().field(), "since");
}

}  // namespace
}  // namespace cdp
