// Copyright 2026 The libcdp Authors.
//
// DumpCreatedProfile writes, byte for byte, the text the document tree of a created profile dumps to.

#include "profiles/profile_model.h"

#include <gtest/gtest.h>

#include <string>

#include "test_util.h"

namespace cdp::internal {
namespace {

using ::cdp::testing::J;
using ::cdp::testing::Unwrap;

constexpr int64_t kNow = 1'767'225'600'123'000;  // 2026-01-01T00:00:00.123Z
constexpr int64_t kEventTime = 1'767'000'000'000'000;

// What the engine did before DumpCreatedProfile: build the tree, move the maintained keys, stamp, dump.
std::string DumpOfTree(const std::string& id, Json normalized, const Json& created, std::string_view source) {
  Json stored = BuildStoredProfile(id, std::move(normalized), &created, kNow);
  for (std::string_view key : kMaintainedKeys) {
    if (const Json* v = created.Find(key); v != nullptr) stored.Set(key, *v);
  }
  StampAttributeSources(&stored, nullptr, source, kEventTime);
  return stored.Dump();
}

TEST(DumpCreatedProfileTest, WritesTheTextTheTreeDumpsTo) {
  const std::string inputs[] = {
      R"({"attributes":{"firstName":"N1"}})",
      R"({})",
      R"({"attributes":{"email":"a@x.com","phone":"+16502530000","firstName":"","lastName":"L","tags":[]}})",
      R"({"attributes":{"tags":["b","a"],"city":"S\u00e3o \"Paulo\"\n","customFields":{"tier":"gold","n":1.5,)"
      R"("nested":{"k":[1,2,{"x":null}]},"empty":{},"blank":"","q\"uote":true,"list":[]}}})",
      R"({"attributes":{"customFields":{}},"computed":{"churnRisk":0.25,"engagementScore":7}})",
      R"({"attributes":{"country":"DE"},"consent":{"email":true,"sms":false}})",
      R"({"attributes":{"postalCode":"\u0001\u001f"},"consent":{"tracking":false},"computed":{"churnRisk":1}})",
  };
  const std::string created_docs[] = {
      R"({"id":"P","externalIds":{},"attributes":{},"consent":{},"computed":{},"createdAt":"2025-12-31T23:59:59.000Z",)"
      R"("updatedAt":"2025-12-31T23:59:59.000Z"})",
      R"({"id":"P","createdAt":"2025-12-31T23:59:59.000Z","hubHashes":["1d2a47cb789a6a2c","92e2c9bc2545b47e"],)"
      R"("identityIssues":[{"type":"email","value":"test@test.com","reason":"blocked"}]})",
      R"({"id":"P","consent":{"email":false,"updatedAt":"2025-01-01T00:00:00.000Z"},"formerIdHashes":["00ff"],)"
      R"("conflicts":[],"mergedIds":["Q"]})",  // no createdAt: now
  };
  int checked = 0;
  for (const std::string& input : inputs) {
    Json normalized = Unwrap(NormalizeProfileInput(J(input)));
    normalized.Set("externalIds", J(R"({"customerId":"C1","email":"a@x.com","deviceIds":["d1","d2"]})"));
    for (const std::string& created_text : created_docs) {
      const Json created = J(created_text);
      for (std::string_view source : {"identify", "crm \"import\""}) {
        const std::string expected = DumpOfTree("01ABC", normalized, created, source);
        EXPECT_EQ(DumpCreatedProfile("01ABC", normalized, created, kNow, source, kEventTime), expected) << input << "\n"
                                                                                                        << created_text;
        ++checked;
      }
    }
  }
  EXPECT_EQ(checked, 7 * 3 * 2);
}

// The cases above reach every part of the document: some have attributeSources, consent.updatedAt and maintained
// keys, and some do not (so a comparison that always passed would not be testing them).
TEST(DumpCreatedProfileTest, TheCasesCoverEachPartOfTheDocument) {
  const Json created = J(R"({"createdAt":"2025-12-31T23:59:59.000Z","hubHashes":["1d2a47cb789a6a2c"]})");
  Json with = Unwrap(NormalizeProfileInput(J(R"({"attributes":{"firstName":"N"},"consent":{"sms":true}})")));
  with.Set("externalIds", Json::Object());
  Json doc = Unwrap(Json::Parse(DumpCreatedProfile("P", with, created, kNow, "identify", kEventTime)));
  ASSERT_NE(doc.FindPath("attributeSources"), nullptr) << doc.Dump();
  EXPECT_EQ(doc.FindPath("attributeSources")->Find("attributes.firstName")->Find("source")->as_string(), "identify");
  ASSERT_NE(doc.FindPath("consent.updatedAt"), nullptr) << doc.Dump();
  EXPECT_EQ(doc.FindPath("consent.updatedAt")->as_string(), FormatTimestamp(kNow));
  EXPECT_EQ(doc.Find("createdAt")->as_string(), "2025-12-31T23:59:59.000Z");
  EXPECT_EQ(doc.Find("updatedAt")->as_string(), FormatTimestamp(kNow));
  ASSERT_NE(doc.Find("hubHashes"), nullptr);

  Json without = Unwrap(NormalizeProfileInput(J(R"({"attributes":{"firstName":""}})")));
  without.Set("externalIds", Json::Object());
  doc = Unwrap(Json::Parse(DumpCreatedProfile("P", without, J("{}"), kNow, "identify", kEventTime)));
  EXPECT_EQ(doc.Find("attributeSources"), nullptr) << doc.Dump();
  EXPECT_EQ(doc.FindPath("consent.updatedAt"), nullptr) << doc.Dump();
  EXPECT_EQ(doc.Find("createdAt")->as_string(), FormatTimestamp(kNow));
  EXPECT_EQ(doc.Find("hubHashes"), nullptr);
}

}  // namespace
}  // namespace cdp::internal
