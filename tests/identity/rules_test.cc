// Copyright 2026 The libcdp Authors.

#include "identity/rules.h"

#include <gtest/gtest.h>
#include <re2/re2.h>

#include <random>

namespace cdp::internal {
namespace {

std::string NormalizeOk(const IdentityRules& rules, std::string_view type, std::string_view raw) {
  Identifier out;
  IgnoredIdentifier ignored;
  EXPECT_TRUE(rules.Normalize(type, raw, &out, &ignored)) << type << " " << raw << ": " << ignored.reason;
  return out.value;
}

std::string Reason(const IdentityRules& rules, std::string_view type, std::string_view raw) {
  Identifier out;
  IgnoredIdentifier ignored;
  EXPECT_FALSE(rules.Normalize(type, raw, &out, &ignored)) << type << " " << raw << " -> " << out.value;
  return ignored.reason;
}

Json ParseOrDie(std::string_view text) {
  auto j = Json::Parse(text);
  EXPECT_TRUE(j.ok()) << j.status().ToString();
  return j.ok() ? std::move(j).value() : Json();
}

TEST(IdentityRulesTest, DefaultsCompileAndRoundTrip) {
  auto rules = IdentityRules::Defaults();
  ASSERT_NE(rules, nullptr);
  EXPECT_EQ(rules->Priority("customerId"), 0);
  EXPECT_EQ(rules->Priority("anonymousId"), 5);
  EXPECT_EQ(rules->Rule("customerId")->limit, 1);
  EXPECT_EQ(rules->Rule("email")->limit, 5);
  EXPECT_EQ(rules->hub_threshold(), 10);
  auto again = IdentityRules::FromJson(rules->ToJson());
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ((*again)->ToJson(), rules->ToJson());
}

TEST(IdentityRulesTest, MembersLeftOutTakeTheirDefaultsAndEmptyOnesClear) {
  // A rules document naming only the types (as a newcomer reordering them would write it) keeps every default.
  auto partial = IdentityRules::FromJson(ParseOrDie(
      R"({"identifiers": [{"type": "email"}, {"type": "customerId"}, {"type": "phone", "limit": 3},
                          {"type": "shopifyId"}, {"type": "deviceId"}, {"type": "anonymousId"}, {"type": "loyaltyId"}],
          "hub": {"threshold": 2}})"));
  ASSERT_TRUE(partial.ok()) << partial.status().ToString();
  const IdentityRules& p = **partial;
  EXPECT_EQ(p.Priority("email"), 0);
  EXPECT_EQ(p.Rule("customerId")->limit, 1);
  EXPECT_EQ(p.Rule("phone")->limit, 3);
  EXPECT_EQ(p.Rule("loyaltyId")->limit, 5);
  EXPECT_EQ(p.Rule("phone")->default_region, "US");
  EXPECT_EQ(NormalizeOk(p, "phone", "(415) 555-2671"), "+14155552671");
  EXPECT_EQ(Reason(p, "email", "test@test.com"), "blocked: test@test.com");
  EXPECT_EQ(Reason(p, "phone", "555-555-5555"), "blocked: 555-555-5555");
  EXPECT_EQ(Reason(p, "deviceId", "anonymous"), "blocked: anonymous");
  EXPECT_EQ(p.hub_threshold(), 2);
  EXPECT_TRUE(p.IsHighPriority("customerId") && p.IsHighPriority("email") && !p.IsHighPriority("phone"));
  // What it gives back is whole, and reads the same again.
  Json back = p.ToJson();
  EXPECT_EQ(back.Find("hub")->Find("highPriorityTypes")->size(), 2u);
  auto again = IdentityRules::FromJson(back);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ((*again)->ToJson().Dump(), back.Dump());

  // Explicit empty values clear.
  auto cleared = IdentityRules::FromJson(ParseOrDie(
      R"({"identifiers": [{"type": "customerId"}, {"type": "email", "blocked": []},
                          {"type": "phone", "defaultRegion": "", "blocked": []}, {"type": "shopifyId"},
                          {"type": "deviceId"}, {"type": "anonymousId"}],
          "blocked": [], "hub": {"highPriorityTypes": []}})"));
  ASSERT_TRUE(cleared.ok()) << cleared.status().ToString();
  const IdentityRules& c = **cleared;
  EXPECT_EQ(NormalizeOk(c, "email", "test@test.com"), "test@test.com");
  EXPECT_EQ(NormalizeOk(c, "deviceId", "anonymous"), "anonymous");
  EXPECT_EQ(NormalizeOk(c, "phone", "+1 650 253 0000"), "+16502530000");
  EXPECT_FALSE(Reason(c, "phone", "(415) 555-2671").empty());  // no country code and no default region
  EXPECT_FALSE(c.IsHighPriority("customerId") || c.IsHighPriority("email"));
  EXPECT_EQ(c.hub_threshold(), 10);
  // defaultRegion stays phone's alone, even empty.
  auto bad = IdentityRules::FromJson(ParseOrDie(
      R"({"identifiers": [{"type": "customerId"}, {"type": "email", "defaultRegion": ""}, {"type": "phone"},
                          {"type": "shopifyId"}, {"type": "deviceId"}, {"type": "anonymousId"}]})"));
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().field(), "identifiers[1].defaultRegion");
}

TEST(IdentityRulesTest, EmailsAreTrimmedAndLowerCased) {
  auto rules = IdentityRules::Defaults();
  EXPECT_EQ(NormalizeOk(*rules, "email", "  Ada.Lovelace+news@Example.COM "), "ada.lovelace+news@example.com");
  EXPECT_EQ(NormalizeOk(*rules, "email", "J.Doe+x@gmail.com"), "j.doe+x@gmail.com");  // canonical form is opt-in
  EXPECT_EQ(Reason(*rules, "email", "not-an-email"),
            "invalid: not an email address (needs one '@' with text on both sides)");
  EXPECT_NE(Reason(*rules, "email", "a@b").find("invalid"), std::string::npos);
  EXPECT_NE(Reason(*rules, "email", "a b@c.com").find("invalid"), std::string::npos);
}

TEST(IdentityRulesTest, CanonicalGmailDropsDotsAndTags) {
  Json j = IdentityRules::Defaults()->ToJson();
  j.Find("identifiers")->items()[1].Set("canonicalGmail", true);
  auto rules = IdentityRules::FromJson(j);
  ASSERT_TRUE(rules.ok()) << rules.status().ToString();
  EXPECT_EQ(NormalizeOk(**rules, "email", "J.Doe+promo@GoogleMail.com"), "jdoe@gmail.com");
  EXPECT_EQ(NormalizeOk(**rules, "email", "jdoe@gmail.com"), "jdoe@gmail.com");
  EXPECT_EQ(NormalizeOk(**rules, "email", "j.doe+promo@example.com"), "j.doe+promo@example.com");
}

TEST(IdentityRulesTest, PhonesBecomeE164WithTheDefaultRegion) {
  auto rules = IdentityRules::Defaults();
  EXPECT_EQ(NormalizeOk(*rules, "phone", "+1 (650) 253-0000"), "+16502530000");
  EXPECT_EQ(NormalizeOk(*rules, "phone", "6502530000"), "+16502530000");
  EXPECT_EQ(NormalizeOk(*rules, "phone", "+44 20 7946 0958"), "+442079460958");
  EXPECT_EQ(Reason(*rules, "phone", "12"), "invalid: not a valid phone number for its region");
  EXPECT_EQ(Reason(*rules, "phone", "call me"), "invalid: not a phone number");

  Json j = rules->ToJson();
  j.Find("identifiers")->items()[2].Set("defaultRegion", "GB");
  auto gb = IdentityRules::FromJson(j);
  ASSERT_TRUE(gb.ok());
  EXPECT_EQ(NormalizeOk(**gb, "phone", "020 7946 0958"), "+442079460958");
}

TEST(IdentityRulesTest, BlockedValuesAreNeverIdentifiers) {
  auto rules = IdentityRules::Defaults();
  EXPECT_EQ(Reason(*rules, "deviceId", "00000000-0000-0000-0000-000000000000"), "blocked: ^[0-]*$");
  EXPECT_EQ(Reason(*rules, "customerId", "-1"), "blocked: -1");
  EXPECT_EQ(Reason(*rules, "customerId", "000"), "blocked: ^[0-]*$");
  EXPECT_EQ(Reason(*rules, "customerId", "NULL"), "blocked: null");
  EXPECT_EQ(Reason(*rules, "anonymousId", "undefined"), "blocked: undefined");
  EXPECT_EQ(Reason(*rules, "customerId", "Anonymous"), "blocked: anonymous");
  EXPECT_EQ(Reason(*rules, "email", "TEST@test.com"), "blocked: test@test.com");
  EXPECT_EQ(Reason(*rules, "phone", "555-555-5555"), "blocked: 555-555-5555");
  EXPECT_EQ(Reason(*rules, "phone", "(555) 555 5555"), "blocked: 555-555-5555");
  EXPECT_EQ(NormalizeOk(*rules, "customerId", "cust-1"), "cust-1");
  EXPECT_EQ(NormalizeOk(*rules, "deviceId", "0a0-1"), "0a0-1");
}

// A blocked regex is skipped for a value outside the range of strings it can match (RE2::PossibleMatchRange): a
// shortcut that must never change the answer. 20,000 random values over an alphabet that straddles the ranges'
// bounds (cases, digits, '-', '@', a UTF-8 letter) are blocked exactly when one of the regexes, run directly,
// matches them whole.
TEST(IdentityRulesTest, BlockedRegexesSkippedByTheirRangeAnswerAsTheRegexWould) {
  const std::vector<std::string> regexes = {
      "^[0-]*$", "^vip-.*$",   "^ab[c-e]{2}x?$", "^(?:foo|BAR)\\d+$", "^\xc3\xa9t\xc3\xa9.*$",
      "^.*z$",   "^[A-Z]{3}$", "^m+n?$"};
  Json j = IdentityRules::Defaults()->ToJson();
  Json blocked = Json::Array();
  for (const std::string& r : regexes) blocked.Push(r);
  j.Set("blocked", std::move(blocked));
  auto parsed = IdentityRules::FromJson(j);
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  RE2::Options options;
  options.set_case_sensitive(false);
  std::vector<std::unique_ptr<RE2>> direct;
  for (const std::string& r : regexes) direct.push_back(std::make_unique<RE2>(r, options));
  const std::vector<std::string> alphabet = {
      "0", "-", "1", "9", "a", "A", "b", "B", "c", "D", "e", "f", "F", "o", "O", "r", "R",        "v",        "V",
      "i", "I", "p", "P", "x", "X", "z", "Z", "m", "M", "n", "N", "t", "T", "@", ".", "\xc3\xa9", "\xc3\x89", "~"};
  std::mt19937 rng(7);
  size_t blocked_count = 0;
  for (int i = 0; i < 20000; ++i) {
    std::string value;
    const int length = 1 + static_cast<int>(rng() % 7);
    for (int k = 0; k < length; ++k) value += alphabet[rng() % alphabet.size()];
    if (value == "-1") continue;  // a default literal
    bool expect = false;
    for (const auto& re : direct) expect = expect || RE2::FullMatch(value, *re);
    Identifier out;
    IgnoredIdentifier ignored;
    const bool kept = (*parsed)->Normalize("customerId", value, &out, &ignored);
    EXPECT_EQ(!kept, expect) << value << ": " << ignored.reason;
    if (!kept) EXPECT_EQ(ignored.reason.rfind("blocked: ^", 0), 0u) << value << ": " << ignored.reason;
    blocked_count += expect ? 1 : 0;
  }
  EXPECT_GT(blocked_count, 500u);  // the values do reach into the ranges
}

TEST(IdentityRulesTest, BlockedRegexesMatchTheTextAsGivenOrNormalizedInAnyCase) {
  Json j = IdentityRules::Defaults()->ToJson();
  for (Json& rule : j.Find("identifiers")->items()) {
    const std::string& type = rule.Find("type")->as_string();
    if (type == "phone") rule.Set("blocked", Json::Array().Push("^\\+1415.*$"));
    if (type == "email") rule.Set("blocked", Json::Array().Push("^.*@spam\\.example$"));
    if (type == "customerId") rule.Set("blocked", Json::Array().Push("^vip-.*$").Push("Guest"));
  }
  auto parsed = IdentityRules::FromJson(j);
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  const IdentityRules& rules = **parsed;
  // Only the normalized value (E.164) matches; only the text as given matches ("(415)..." is not "+1415...").
  EXPECT_EQ(Reason(rules, "phone", "(415) 555-0134"), "blocked: ^\\+1415.*$");
  EXPECT_EQ(NormalizeOk(rules, "phone", "(650) 555-0134"), "+16505550134");
  // Regexes ignore case, on the text and on the lower-cased value alike; literals compare lower-cased.
  EXPECT_EQ(Reason(rules, "email", " Bob@SPAM.example "), "blocked: ^.*@spam\\.example$");
  EXPECT_EQ(Reason(rules, "customerId", "VIP-7"), "blocked: ^vip-.*$");
  EXPECT_EQ(Reason(rules, "customerId", "gUEST"), "blocked: Guest");
  EXPECT_EQ(NormalizeOk(rules, "customerId", "guest-1"), "guest-1");
  // The global entries still apply alongside a type's own.
  EXPECT_EQ(Reason(rules, "customerId", "null"), "blocked: null");

  // An ignored value is recorded with its type and its trimmed text, cut at 256 bytes.
  Identifier out;
  IgnoredIdentifier ignored;
  EXPECT_FALSE(rules.Normalize("customerId", "  VIP-" + std::string(300, 'x') + " ", &out, &ignored));
  EXPECT_EQ(ignored.type, "customerId");
  EXPECT_EQ(ignored.value, "VIP-" + std::string(252, 'x'));
  EXPECT_EQ(ignored.reason, "invalid: longer than 256 bytes");
  EXPECT_FALSE(rules.Normalize("email", " Bob@SPAM.example ", &out, &ignored));
  EXPECT_EQ(ignored.type, "email");
  EXPECT_EQ(ignored.value, "Bob@SPAM.example");
}

TEST(IdentityRulesTest, CustomTypesAndUnknownTypes) {
  Json j = IdentityRules::Defaults()->ToJson();
  j.Find("identifiers")
      ->items()
      .insert(j.Find("identifiers")->items().begin() + 1, ParseOrDie(R"({"type": "loyaltyId", "limit": 1})"));
  auto rules = IdentityRules::FromJson(j);
  ASSERT_TRUE(rules.ok()) << rules.status().ToString();
  EXPECT_EQ((*rules)->Priority("loyaltyId"), 1);
  EXPECT_EQ((*rules)->Priority("email"), 2);
  EXPECT_EQ(NormalizeOk(**rules, "loyaltyId", " L-77 "), "L-77");
  EXPECT_EQ(Reason(*IdentityRules::Defaults(), "loyaltyId", "L-77"), "unknown type (not in the identity rules)");
}

TEST(IdentityRulesTest, BadRulesNameTheOffendingField) {
  auto field_of = [](std::string_view text) {
    auto r = IdentityRules::FromJson(ParseOrDie(text));
    EXPECT_FALSE(r.ok()) << text;
    return r.ok() ? std::string("(accepted)") : r.status().field();
  };
  const std::string all =
      R"({"type":"customerId"},{"type":"email"},{"type":"phone"},{"type":"shopifyId"},{"type":"deviceId"},)"
      R"({"type":"anonymousId"})";
  EXPECT_EQ(field_of(R"({"identifiers": []})"), "identifiers");
  EXPECT_EQ(field_of(R"({"identifiers": [{"type":"email"}]})"), "identifiers");  // built-ins missing
  EXPECT_EQ(field_of(R"({"identifiers": [)" + all + R"(,{"type":"x","limit":0}]})"), "identifiers[6].limit");
  EXPECT_EQ(field_of(R"({"identifiers": [)" + all + R"(,{"type":"bad name"}]})"), "identifiers[6].type");
  EXPECT_EQ(field_of(R"({"identifiers": [)" + all + R"(,{"type":"email"}]})"), "identifiers[6].type");
  EXPECT_EQ(field_of(R"({"identifiers": [)" + all + R"(], "blocked": ["^(unclosed$"]})"), "blocked[0]");
  EXPECT_EQ(field_of(R"({"identifiers": [)" + all + R"(], "hub": {"threshold": 0}})"), "hub.threshold");
  EXPECT_EQ(field_of(R"({"identifiers": [)" + all + R"(], "hub": {"highPriorityTypes": ["nope"]}})"),
            "hub.highPriorityTypes[0]");
  EXPECT_EQ(field_of(R"({"identifiers": [)" + all + R"(], "extra": 1})"), "extra");
  EXPECT_EQ(field_of(R"({"identifiers": [{"type":"customerId"},{"type":"email","defaultRegion":"US"}]})"),
            "identifiers[1].defaultRegion");
  EXPECT_EQ(field_of(R"({"identifiers": [{"type":"customerId"},{"type":"phone","defaultRegion":"XX"}]})"),
            "identifiers[1].defaultRegion");
}

}  // namespace
}  // namespace cdp::internal
