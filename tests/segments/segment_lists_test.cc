// Copyright 2026 The libcdp Authors.
//
// Manual segments (static lists of profiles, by id or identifier), overlap matrices and exports (CSV, JSON lines).

#include <gtest/gtest.h>

#include <set>

#include "test_util.h"

namespace cdp {
namespace {

using testing::J;
using testing::Unwrap;

class SegmentListsTest : public testing::EngineTest {
 protected:
  Segments& segments() { return engine_->segments(); }
  std::string NewProfile(const std::string& body) { return Unwrap(profiles().Create(J(body))).Find("id")->as_string(); }
  std::set<std::string> MemberIds(const std::string& id) {
    std::set<std::string> out;
    Page page = Unwrap(segments().Members(id, 1000, ""));
    for (const Json& p : page.items) out.insert(p.Find("id")->as_string());
    return out;
  }
};

TEST_F(SegmentListsTest, ManualSegmentsTakeIdsAndIdentifiers) {
  const std::string ann = NewProfile(R"({"externalIds": {"email": "ann@example.com"}})");
  const std::string bob = NewProfile(R"({"externalIds": {"phone": "+16502530000"}})");
  const std::string cy = NewProfile(R"({"attributes": {"country": "FR"}})");
  const std::string list =
      Unwrap(segments().Create(J(R"({"name": "VIPs", "type": "manual"})"))).Find("id")->as_string();
  EXPECT_EQ(Unwrap(segments().Size(list)), 0);
  Json added = Unwrap(segments().AddMembers(list, J(R"([")" + cy + R"(",
      {"type": "email", "value": " Ann@Example.COM "}, {"type": "phone", "value": "+1 (650) 253-0000"},
      {"type": "email", "value": "nobody@example.com"}, "no-such-profile"])")));
  EXPECT_EQ(added.Find("added")->as_int(), 3);
  EXPECT_EQ(added.Find("notFound")->size(), 2u);
  EXPECT_EQ(MemberIds(list), (std::set<std::string>{ann, bob, cy}));
  Json again = Unwrap(segments().AddMembers(list, J(R"([")" + cy + R"("])")));
  EXPECT_EQ(again.Find("added")->as_int(), 0);
  EXPECT_EQ(again.Find("unchanged")->as_int(), 1);
  // In the feed, on profiles, and usable by rules.
  Json feed = Unwrap(segments().Changes(list, "", 0));
  ASSERT_EQ(feed.Find("changes")->size(), 3u);
  EXPECT_EQ(feed.Find("changes")->items()[0].FindPath("cause.kind")->as_string(), "manual");
  EXPECT_EQ(Unwrap(profiles().Get(ann)).Find("segments")->items()[0].as_string(), list);
  const std::string french_vips =
      Unwrap(segments().Create(J(R"({"name": "French VIPs", "rule": {"conditions": [{"segment": ")" + list +
                                 R"("}, {"field": "attributes.country", "operator": "=", "value": "FR"}]}})")))
          .Find("id")
          ->as_string();
  EXPECT_EQ(MemberIds(french_vips), std::set<std::string>{cy});
  // Removing, erasing, and a reopen.
  Json removed = Unwrap(segments().RemoveMembers(list, J(R"([{"type": "email", "value": "ann@example.com"}])")));
  EXPECT_EQ(removed.Find("removed")->as_int(), 1);
  ASSERT_TRUE(profiles().Delete(cy).ok());
  EXPECT_EQ(MemberIds(list), std::set<std::string>{bob});
  EXPECT_TRUE(MemberIds(french_vips).empty()) << "follows the list it names";
  Reopen();
  EXPECT_EQ(MemberIds(list), std::set<std::string>{bob});
  // Errors, and nothing changed by a bad call.
  EXPECT_TRUE(segments().AddMembers(list, J(R"([")" + ann + R"(", 42])")).status().IsInvalidArgument());
  EXPECT_EQ(segments().AddMembers(list, J(R"([")" + ann + R"(", 42])")).status().field(), "items[1]");
  EXPECT_EQ(MemberIds(list), std::set<std::string>{bob});
  EXPECT_TRUE(segments().AddMembers(french_vips, J("[]")).status().IsFailedPrecondition());
  EXPECT_TRUE(segments().Create(J(R"({"name": "x", "type": "manual", "rule": {}})")).status().IsInvalidArgument());
  EXPECT_TRUE(segments().Update(list, J(R"({"name": "x", "rule": {}})")).status().IsInvalidArgument());
  EXPECT_TRUE(segments().Create(J(R"({"name": "x", "type": "static"})")).status().IsInvalidArgument());
}

TEST_F(SegmentListsTest, OverlapMatrix) {
  std::vector<std::string> ids;
  for (int i = 0; i < 6; ++i) {
    ids.push_back(NewProfile(R"({"attributes": {"country": ")" + std::string(i < 4 ? "FR" : "DE") +
                             R"(", "customFields": {"n": )" + std::to_string(i) + "}}}"));
  }
  const std::string fr = Unwrap(segments().Create(J(R"({"name": "fr", "rule": {"field": "attributes.country",
                                                                             "operator": "=", "value": "FR"}})")))
                             .Find("id")
                             ->as_string();
  const std::string low = Unwrap(segments().Create(J(R"({"name": "low", "rule": {"field": "attributes.customFields.n",
                                                                              "operator": "<", "value": 2}})")))
                              .Find("id")
                              ->as_string();
  Json o = Unwrap(segments().Overlap({fr, low}));
  EXPECT_EQ(o.Find("segments")->items()[0].Find("size")->as_int(), 4);
  EXPECT_EQ(o.Find("segments")->items()[1].Find("size")->as_int(), 2);
  const Json& cell = o.Find("matrix")->items()[0].items()[1];
  EXPECT_EQ(cell.Find("intersection")->as_int(), 2);
  EXPECT_EQ(cell.Find("union")->as_int(), 4);
  EXPECT_DOUBLE_EQ(cell.Find("jaccard")->as_number(), 0.5);
  EXPECT_EQ(o.Find("matrix")->items()[1].items()[1].Find("intersection")->as_int(), 2);
  EXPECT_TRUE(segments().Overlap({}).status().IsInvalidArgument());
  EXPECT_TRUE(segments().Overlap({fr, fr}).status().IsInvalidArgument());
  EXPECT_TRUE(segments().Overlap({fr, "seg_nope"}).status().IsNotFound());
}

TEST_F(SegmentListsTest, ExportsCsvAndJsonLines) {
  NewProfile(R"({"externalIds": {"email": "a@example.com"}, "attributes": {"firstName": "Ann, \"the\" first",
                 "tags": ["x", "y"]}})");
  NewProfile(R"({"externalIds": {"email": "b@example.com"}, "attributes": {"firstName": "Bob"}})");
  const std::string all = Unwrap(segments().Create(J(R"({"name": "all", "rule": []})"))).Find("id")->as_string();
  std::string csv;
  ASSERT_TRUE(segments()
                  .Export(all, "csv", {"externalIds.email", "attributes.firstName", "attributes.tags", "computed.ltv"},
                          [&](std::string_view chunk) {
                            csv.append(chunk);
                            return true;
                          })
                  .ok());
  EXPECT_NE(csv.find("externalIds.email,attributes.firstName,attributes.tags,computed.ltv\r\n"), std::string::npos);
  EXPECT_NE(csv.find("a@example.com,\"Ann, \"\"the\"\" first\",\"[\"\"x\"\",\"\"y\"\"]\",0"), std::string::npos) << csv;
  EXPECT_NE(csv.find("b@example.com,Bob,,0"), std::string::npos) << csv;
  std::string jsonl;
  ASSERT_TRUE(segments()
                  .Export(all, "jsonl", {"attributes.firstName"},
                          [&](std::string_view chunk) {
                            jsonl.append(chunk);
                            return true;
                          })
                  .ok());
  std::set<std::string> names;
  size_t start = 0;
  for (size_t end; (end = jsonl.find('\n', start)) != std::string::npos; start = end + 1) {
    names.insert(J(jsonl.substr(start, end - start)).Find("attributes.firstName")->as_string());
  }
  EXPECT_EQ(names, (std::set<std::string>{"Ann, \"the\" first", "Bob"}));
  auto sink = [](std::string_view) { return true; };
  EXPECT_TRUE(segments().Export(all, "xml", {}, sink).IsInvalidArgument());
  EXPECT_EQ(segments().Export(all, "csv", {"a..b"}, sink).field(), "fields[0]");
  EXPECT_TRUE(segments().Export("seg_nope", "csv", {}, sink).IsNotFound());
  EXPECT_TRUE(segments().Export(all, "csv", {}, [](std::string_view) { return false; }).code() ==
              StatusCode::kUnavailable);
}

}  // namespace
}  // namespace cdp
