// Copyright 2026 The libcdp Authors.

#include <gtest/gtest.h>

#include <set>
#include <thread>

#include "fmt/format.h"
#include "test_util.h"

namespace cdp {
namespace {

using testing::J;
using testing::Unwrap;

class ProfilesTest : public testing::EngineTest {};

TEST_F(ProfilesTest, CreateGeneratesIdAndNormalizesIdentifiers) {
  Json p = Unwrap(profiles().Create(J(R"({"attributes":{"firstName":"Ada","email":" Ada@Example.COM ",
      "tags":["vip","vip","new"],"customFields":{"tier":"gold","score":[1,2]}},"consent":{"email":true}})")));
  const std::string id = p.Find("id")->as_string();
  EXPECT_EQ(id.size(), 26u);
  EXPECT_EQ(p.FindPath("externalIds.email")->as_string(), "ada@example.com");
  EXPECT_EQ(p.FindPath("attributes.email")->as_string(), " Ada@Example.COM ");
  EXPECT_EQ(*p.FindPath("attributes.tags"), J(R"(["vip","new"])"));
  EXPECT_EQ(*p.FindPath("attributes.customFields"), J(R"({"tier":"gold","score":[1,2]})"));
  EXPECT_TRUE(p.FindPath("consent.updatedAt")->is_string());
  EXPECT_EQ(p.FindPath("computed.ltv")->as_number(), 0);
  EXPECT_TRUE(p.FindPath("computed.lastPurchaseDate")->is_null());
  EXPECT_TRUE(p.Find("segments")->is_array());
  EXPECT_EQ(Unwrap(profiles().Get(id)), p);
}

TEST_F(ProfilesTest, CreateWithGivenIdAndDuplicates) {
  Unwrap(profiles().Create(J(R"({"id":"cust-1","externalIds":{"customerId":"C1"}})")));
  auto again = profiles().Create(J(R"({"id":"cust-1"})"));
  EXPECT_TRUE(again.status().IsAlreadyExists());
  EXPECT_EQ(again.status().field(), "id");
  auto clash = profiles().Create(J(R"({"externalIds":{"customerId":"C1"}})"));
  EXPECT_TRUE(clash.status().IsAlreadyExists());
  EXPECT_EQ(clash.status().field(), "externalIds.customerId");
  EXPECT_EQ(profiles().Create(J(R"({"id":"bad id!"})")).status().field(), "id");
  EXPECT_EQ(Unwrap(engine_->Stats()).Find("profiles")->as_int(), 1);
}

TEST_F(ProfilesTest, BadInputNamesTheField) {
  struct Case {
    const char* doc;
    const char* field;
  } cases[] = {
      {R"({"attributes":{"firstName":3}})", "attributes.firstName"},
      {R"({"attributes":{"shoeSize":"9"}})", "attributes.shoeSize"},
      {R"({"attributes":{"tags":["a",1]}})", "attributes.tags[1]"},
      {R"({"attributes":{"customFields":[]}})", "attributes.customFields"},
      {R"({"externalIds":{"loyaltyId":"L-1"}})", "externalIds.loyaltyId"},  // not a type of the identity rules
      {R"({"externalIds":{"email":7}})", "externalIds.email"},
      {R"({"consent":{"email":"yes"}})", "consent.email"},
      {R"({"computed":{"churnRisk":2}})", "computed.churnRisk"},
      {R"({"nickname":"x"})", "nickname"},
  };
  for (const auto& c : cases) {
    auto r = profiles().Create(J(c.doc));
    EXPECT_TRUE(r.status().IsInvalidArgument()) << c.doc;
    EXPECT_EQ(r.status().field(), c.field) << c.doc;
  }
  EXPECT_EQ(Unwrap(engine_->Stats()).Find("profiles")->as_int(), 0);
}

// JSON nested deeper than Options::max_json_depth (64), given as a cdp::Json value (no text to parse): refused with
// the path of the first array or object too deep, as Json::Parse names it for text, by Create, Replace, Patch and
// Identify alike; 64 levels are fine.
TEST_F(ProfilesTest, TooDeepJsonNamesThePath) {
  auto nested = [](int levels) {  // {"attributes":{"customFields":{"x":[{"x":[...1...]}]}}}: `levels` in all
    std::string open = R"({"attributes":{"customFields":)", close = "}}";
    for (int level = 3; level <= levels; ++level) {
      open += level % 2 == 1 ? R"({"x":)" : "[";
      close.insert(0, level % 2 == 1 ? "}" : "]");
    }
    return Unwrap(Json::Parse(open + "1" + close, ParseLimits{1 << 20, 1000}));
  };
  std::string path = "attributes.customFields";  // levels 3 to 65: the 65th is the first too deep
  for (int level = 3; level < 65; ++level) path += level % 2 == 1 ? ".x" : "[0]";
  const std::string id = Unwrap(profiles().Create(nested(64))).Find("id")->as_string();
  for (int attempt = 0; attempt < 3; ++attempt) {
    Result<Json> r = attempt == 0   ? profiles().Create(nested(70))
                     : attempt == 1 ? profiles().Replace(id, nested(70))
                                    : profiles().Patch(id, nested(70));
    EXPECT_TRUE(r.status().IsInvalidArgument()) << attempt << ": " << r.status().ToString();
    EXPECT_EQ(r.status().field(), path) << attempt;
    EXPECT_NE(r.status().message().find("deeper than 64"), std::string::npos) << r.status().ToString();
  }
  Json identify = nested(70);
  identify.Set("identifiers", J(R"({"email":"deep@example.com"})"));
  Result<Json> r = engine_->identity().Identify(identify);
  EXPECT_TRUE(r.status().IsInvalidArgument()) << r.status().ToString();
  EXPECT_EQ(r.status().field(), path);
  EXPECT_EQ(Unwrap(engine_->Stats()).Find("profiles")->as_int(), 1);
}

// Issue 3: an invalid or blocked email or phone is not an identifier; it stays a plain attribute with its reason.
TEST_F(ProfilesTest, InvalidIdentifiersStayAttributesWithTheirReason) {
  Json p = Unwrap(profiles().Create(J(R"({"externalIds":{"email":"not-an-email","phone":"12","customerId":"null"},
                                          "attributes":{"firstName":"Ada"}})")));
  EXPECT_EQ(p.Find("externalIds")->size(), 0u) << p.Dump();
  EXPECT_EQ(p.FindPath("attributes.email")->as_string(), "not-an-email");
  EXPECT_EQ(p.FindPath("attributes.phone")->as_string(), "12");
  const Json* issues = p.Find("identityIssues");
  ASSERT_NE(issues, nullptr);
  ASSERT_EQ(issues->size(), 3u) << p.Dump();
  EXPECT_EQ(issues->items()[0].Find("type")->as_string(), "email");
  EXPECT_NE(issues->items()[0].Find("reason")->as_string().find("invalid"), std::string::npos);
  EXPECT_EQ(issues->items()[2].Find("reason")->as_string(), "blocked: null");
  // Not used for matching: an event with the same invalid email creates its own profile.
  TrackResult t = Unwrap(events().Track(J(R"({"type":"page_view","email":"not-an-email","deviceId":"d-1"})")));
  EXPECT_TRUE(t.profile_created);
  EXPECT_NE(t.profile_id, p.Find("id")->as_string());
  ASSERT_TRUE(t.ignored_identifiers.is_array());
  EXPECT_EQ(t.ignored_identifiers.items()[0].Find("type")->as_string(), "email");
  // Phones in any spelling are one identifier.
  Json q = Unwrap(profiles().Create(J(R"({"externalIds":{"phone":"+1 (650) 253-0000"}})")));
  EXPECT_EQ(q.FindPath("externalIds.phone")->as_string(), "+16502530000");
  TrackResult u = Unwrap(events().Track(J(R"({"type":"page_view","phone":"650.253.0000"})")));
  EXPECT_EQ(u.profile_id, q.Find("id")->as_string());
}

TEST_F(ProfilesTest, ReplaceReplacesAndPatchMerges) {
  Json p = Unwrap(profiles().Create(J(R"({"attributes":{"firstName":"Ada","city":"London"},
                                          "externalIds":{"email":"ada@example.com"},"consent":{"sms":false}})")));
  std::string id = p.Find("id")->as_string();
  Json patched = Unwrap(profiles().Patch(id, J(R"({"attributes":{"city":null,"country":"GB",
                                                   "customFields":{"tier":"gold"}}})")));
  EXPECT_EQ(patched.FindPath("attributes.firstName")->as_string(), "Ada");
  EXPECT_EQ(patched.FindPath("attributes.city"), nullptr);
  EXPECT_EQ(patched.FindPath("attributes.country")->as_string(), "GB");
  EXPECT_EQ(patched.FindPath("externalIds.email")->as_string(), "ada@example.com");
  EXPECT_EQ(*patched.FindPath("createdAt"), *p.FindPath("createdAt"));
  EXPECT_EQ(*patched.FindPath("consent.updatedAt"), *p.FindPath("consent.updatedAt"));

  // A document read with Get can be written back with Replace; fields absent from a replacement become empty.
  Json doc = Unwrap(profiles().Get(id));
  doc.Find("attributes")->Set("lastName", "Lovelace");
  EXPECT_EQ(Unwrap(profiles().Replace(id, doc)).FindPath("attributes.lastName")->as_string(), "Lovelace");
  Json replaced = Unwrap(profiles().Replace(id, J(R"({"attributes":{"firstName":"Augusta"}})")));
  EXPECT_EQ(replaced.FindPath("attributes.country"), nullptr);
  EXPECT_EQ(replaced.FindPath("externalIds.email"), nullptr);
  // The released email may now be used by another profile.
  Unwrap(profiles().Create(J(R"({"externalIds":{"email":"ada@example.com"}})")));
  EXPECT_TRUE(profiles().Patch("missing", J("{}")).status().IsNotFound());
  EXPECT_EQ(profiles().Replace(id, J(R"({"id":"other"})")).status().field(), "id");
}

TEST_F(ProfilesTest, DeleteRemovesProfileEventsAndIdentifiers) {
  Json p = Unwrap(profiles().Create(J(R"({"externalIds":{"email":"x@example.com","deviceIds":["d1"]}})")));
  std::string id = p.Find("id")->as_string();
  Unwrap(events().Track(J(R"({"type":"page_view","email":"x@example.com"})")));
  Unwrap(events().Track(J(R"({"type":"purchase","deviceId":"d1","properties":{"revenue":5}})")));
  ASSERT_TRUE(profiles().Delete(id).ok());
  EXPECT_TRUE(profiles().Get(id).status().IsNotFound());
  EXPECT_TRUE(profiles().Delete(id).IsNotFound());
  EXPECT_EQ(Unwrap(events().Query(EventQuery{})).items.size(), 0u);
  Json stats = Unwrap(engine_->Stats());
  EXPECT_EQ(stats.Find("profiles")->as_int(), 0);
  EXPECT_EQ(stats.Find("events")->as_int(), 0);
  // The identifiers are suppressed (Options::suppress_erased_identifiers): data naming them is refused. Once
  // lifted, a new event by that email creates a new profile.
  EXPECT_EQ(events().Track(J(R"({"type":"page_view","email":"x@example.com"})")).status().code(),
            StatusCode::kFailedPrecondition);
  Unwrap(engine_->gdpr().Unsuppress("email", "x@example.com"));
  TrackResult t = Unwrap(events().Track(J(R"({"type":"page_view","email":"x@example.com"})")));
  EXPECT_TRUE(t.profile_created);
  EXPECT_NE(t.profile_id, id);
  EXPECT_EQ(Unwrap(profiles().Get(t.profile_id)).FindPath("computed.ltv")->as_number(), 0);
}

TEST_F(ProfilesTest, SearchFiltersSortsAndPagesThroughEverything) {
  for (int i = 0; i < 57; ++i) {
    Json doc = Json::Object();
    Json attrs = Json::Object();
    attrs.Set("country", i % 3 == 0 ? "US" : "FR");
    attrs.Set("customFields", Json::Object().Set("rank", i % 10));
    doc.Set("attributes", std::move(attrs));
    Unwrap(profiles().Create(doc));
  }
  ProfileQuery q = *ProfileQuery::FromJson(J(R"({"conditions":[{"field":"attributes.country","operator":"=",
                                                   "value":"US"}],"limit":4})"));
  std::set<std::string> seen;
  int pages = 0;
  do {
    Page page = Unwrap(profiles().Search(q));
    for (const Json& p : page.items) {
      EXPECT_EQ(p.FindPath("attributes.country")->as_string(), "US");
      EXPECT_TRUE(seen.insert(p.Find("id")->as_string()).second);
    }
    q.cursor = page.next_cursor;
    ++pages;
  } while (!q.cursor.empty());
  EXPECT_EQ(seen.size(), 19u);
  EXPECT_EQ(pages, 5);

  // Sorted, descending, through pages: ranks never increase and every profile appears once.
  ProfileQuery sorted;
  sorted.sort_by = "attributes.customFields.rank";
  sorted.descending = true;
  sorted.limit = 7;
  seen.clear();
  int64_t last_rank = 100;
  do {
    Page page = Unwrap(profiles().Search(sorted));
    for (const Json& p : page.items) {
      int64_t rank = p.FindPath("attributes.customFields.rank")->as_int();
      EXPECT_LE(rank, last_rank);
      last_rank = rank;
      EXPECT_TRUE(seen.insert(p.Find("id")->as_string()).second);
    }
    sorted.cursor = page.next_cursor;
  } while (!sorted.cursor.empty());
  EXPECT_EQ(seen.size(), 57u);
  // A cursor belongs to its search: with another sort or filter it is refused, not an empty or wrong page (a
  // trial's sorted cursor sent with the default sort answered {"items": [], "nextCursor": null}). The page size
  // may change.
  sorted.cursor.clear();
  const std::string sorted_cursor = Unwrap(profiles().Search(sorted)).next_cursor;
  ASSERT_FALSE(sorted_cursor.empty());
  ProfileQuery by_id;
  by_id.cursor = sorted_cursor;
  EXPECT_EQ(profiles().Search(by_id).status().field(), "cursor");
  EXPECT_TRUE(profiles().Search(by_id).status().IsInvalidArgument());
  ProfileQuery ascending = sorted;
  ascending.descending = false;
  ascending.cursor = sorted_cursor;
  EXPECT_TRUE(profiles().Search(ascending).status().IsInvalidArgument());
  ProfileQuery us = *ProfileQuery::FromJson(J(R"({"conditions":[{"field":"attributes.country","operator":"=",
                                                    "value":"US"}],"limit":4})"));
  const std::string us_cursor = Unwrap(profiles().Search(us)).next_cursor;
  ProfileQuery de = *ProfileQuery::FromJson(J(R"({"conditions":[{"field":"attributes.country","operator":"=",
                                                    "value":"DE"}],"limit":4})"));
  de.cursor = us_cursor;
  EXPECT_TRUE(profiles().Search(de).status().IsInvalidArgument());
  us.cursor = us_cursor;
  us.limit = 10;
  EXPECT_EQ(Unwrap(profiles().Search(us)).items.size(), 10u);
}

TEST_F(ProfilesTest, SearchSeesComputedTraits) {
  Unwrap(events().Track(J(R"({"type":"purchase","customerId":"big","properties":{"revenue":500}})")));
  Unwrap(events().Track(J(R"({"type":"purchase","customerId":"small","properties":{"total":5}})")));
  ProfileQuery q = *ProfileQuery::FromJson(J(R"({"conditions":[{"field":"computed.ltv","operator":">=",
                                                   "value":100}]})"));
  Page page = Unwrap(profiles().Search(q));
  ASSERT_EQ(page.items.size(), 1u);
  EXPECT_EQ(page.items[0].FindPath("externalIds.customerId")->as_string(), "big");
}

TEST_F(ProfilesTest, ConcurrentCreatesWithTheSameEmailMakeOneProfile) {
  std::vector<std::thread> threads;
  std::atomic<int> created{0}, clashed{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 50; ++i) {
        auto r = profiles().Create(J(R"({"externalIds":{"email":"same@example.com"}})"));
        (r.ok() ? created : clashed)++;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(created.load(), 1);
  EXPECT_EQ(clashed.load(), 199);
}

// CreateBatch: each item checked as Create checks it, against storage and the items before it; rejected items
// write nothing, the others are stored in one write and are what Create would have stored.
TEST_F(ProfilesTest, CreateBatchStoresEachValidItemAndSaysWhyOthersWereNot) {
  Unwrap(profiles().Create(J(R"({"id":"stored-1","externalIds":{"customerId":"C-STORED"}})")));
  std::vector<Json> batch;
  for (int i = 0; i < 600; ++i) {  // over 256: prepared on two threads
    batch.push_back(J(fmt::format(R"({{"attributes":{{"firstName":"P{0}","email":"Person{0}@Example.com",
        "phone":"(650) 253-{1:04d}"}},"externalIds":{{"customerId":"C{0}"}},"consent":{{"email":{2}}}}})",
                                  i, i, i % 2 == 0 ? "true" : "false")));
  }
  batch[10] = J(R"({"attributes":{"firstName":3}})");             // invalid
  batch[20] = J(R"({"id":"stored-1"})");                          // id of a stored profile
  batch[30] = J(R"({"externalIds":{"customerId":"C-STORED"}})");  // identifier of a stored one
  batch[40] = J(R"({"id":"given-1","externalIds":{"customerId":"G1"}})");
  batch[41] = J(R"({"id":"given-1"})");                                           // id of an earlier item
  batch[50] = J(R"({"externalIds":{"email":"person0@example.com"}})");            // email of item 0
  batch[60] = J(R"({"attributes":{"email":"not an email","firstName":"Bad"}})");  // stored, with its issue
  batch[70] = J("[1]");                                                           // not an object
  Json out = Unwrap(profiles().CreateBatch(batch));
  EXPECT_EQ(out.Find("accepted")->as_int(), 594);
  EXPECT_EQ(out.Find("rejected")->as_int(), 6);
  const std::vector<Json>& results = out.Find("results")->items();
  ASSERT_EQ(results.size(), 600u);
  auto status_of = [&](size_t i) { return results[i].Find("status")->as_string(); };
  auto field_of = [&](size_t i) {
    const Json* f = results[i].FindPath("error.field");
    return f != nullptr ? f->as_string() : std::string();
  };
  const struct {
    size_t index;
    const char* status;
    const char* field;  // of the error; "" when none
  } expected[] = {
      {10, "invalid_argument", "attributes.firstName"},
      {20, "already_exists", "id"},
      {30, "already_exists", "externalIds.customerId"},
      {40, "ok", ""},
      {41, "already_exists", "id"},
      {50, "already_exists", "externalIds.email"},
      {60, "ok", ""},
      {70, "invalid_argument", ""},
  };
  for (const auto& e : expected) {
    EXPECT_EQ(status_of(e.index), e.status) << e.index;
    EXPECT_EQ(field_of(e.index), e.field) << e.index;
  }
  EXPECT_EQ(results[40].Find("id")->as_string(), "given-1");
  for (size_t i = 0; i < results.size(); ++i) EXPECT_EQ(results[i].Find("index")->as_int(), static_cast<int64_t>(i));
  EXPECT_EQ(Unwrap(engine_->Stats()).Find("profiles")->as_int(), 1 + 594);

  // Item 7 as stored: normalized identifiers, consent, and what Get answers.
  Json seven = Unwrap(profiles().Get(results[7].Find("id")->as_string()));
  EXPECT_EQ(seven.FindPath("externalIds.email")->as_string(), "person7@example.com");
  EXPECT_EQ(seven.FindPath("externalIds.phone")->as_string(), "+16502530007");
  EXPECT_EQ(seven.FindPath("externalIds.customerId")->as_string(), "C7");
  EXPECT_FALSE(seven.FindPath("consent.email")->as_bool());
  EXPECT_EQ(seven.FindPath("attributeSources")->Find("attributes.firstName")->Find("source")->as_string(), "api");
  Json sixty = Unwrap(profiles().Get(results[60].Find("id")->as_string()));
  ASSERT_TRUE(sixty.Find("identityIssues") != nullptr);
  EXPECT_EQ(sixty.Find("identityIssues")->items()[0].Find("type")->as_string(), "email");

  // Identifiers resolve to the items that took them; the refused items took none.
  TrackResult tracked = Unwrap(events().Track(J(R"({"type":"page_view","email":"PERSON0@example.com"})")));
  EXPECT_EQ(tracked.profile_id, results[0].Find("id")->as_string());
  EXPECT_FALSE(tracked.profile_created);
  tracked = Unwrap(events().Track(J(R"({"type":"page_view","customerId":"G1"})")));
  EXPECT_EQ(tracked.profile_id, "given-1");

  // Everything acknowledged is there after a reopen.
  Reopen();
  EXPECT_EQ(Unwrap(engine_->Stats()).Find("profiles")->as_int(), 1 + 594);
  EXPECT_EQ(Unwrap(profiles().Get(results[599].Find("id")->as_string())).FindPath("externalIds.phone")->as_string(),
            "+16502530599");
}

TEST_F(ProfilesTest, CreateBatchOverTheItemLimitWritesNothing) {
  options_.max_batch_items = 3;
  Reopen();
  std::vector<Json> batch(4, J(R"({"attributes":{"firstName":"A"}})"));
  auto r = profiles().CreateBatch(batch);
  EXPECT_TRUE(r.status().IsInvalidArgument()) << r.status().ToString();
  batch.pop_back();
  EXPECT_EQ(Unwrap(profiles().CreateBatch(batch)).Find("accepted")->as_int(), 3);
  EXPECT_EQ(Unwrap(profiles().CreateBatch({})).Find("accepted")->as_int(), 0);
  EXPECT_EQ(Unwrap(engine_->Stats()).Find("profiles")->as_int(), 3);
  options_.max_batch_bytes = 150;  // the items' JSON together (64 bytes each)
  Reopen();
  std::vector<Json> large(3, J(R"({"attributes":{"firstName":"A name of some forty bytes, or so"}})"));
  EXPECT_TRUE(profiles().CreateBatch(large).status().IsInvalidArgument());
  large.pop_back();
  EXPECT_EQ(Unwrap(profiles().CreateBatch(large)).Find("accepted")->as_int(), 2);
  EXPECT_EQ(Unwrap(engine_->Stats()).Find("profiles")->as_int(), 5);
}

// An item refused after some of its checks passed adds nothing: not its fresh identifiers, not its consent history.
TEST_F(ProfilesTest, CreateBatchItemsRefusedLateWriteNothing) {
  options_.max_profile_bytes = 600;
  Reopen();
  const std::string erased =
      Unwrap(profiles().Create(J(R"({"externalIds":{"email":"gone@example.com"}})"))).Find("id")->as_string();
  ASSERT_TRUE(profiles().Delete(erased).ok());  // suppressed from now on
  Unwrap(profiles().Create(J(R"({"id":"holder","externalIds":{"customerId":"TAKEN"}})")));
  Json out = Unwrap(profiles().CreateBatch({
      J(R"({"externalIds":{"email":"fresh@example.com","customerId":"TAKEN"},"consent":{"email":true}})"),
      J(R"({"externalIds":{"email":"big@example.com"},"attributes":{"customFields":{"note":")" + std::string(700, 'x') +
        R"("}}})"),
      J(R"({"externalIds":{"email":"gone@example.com","phone":"+16502530000"}})"),
      J(R"({"id":")" + erased + R"("})"),
      J(R"({"externalIds":{"email":"kept@example.com"}})"),
  }));
  const std::vector<Json>& results = out.Find("results")->items();
  ASSERT_EQ(results.size(), 5u);
  EXPECT_EQ(results[0].Find("status")->as_string(), "already_exists");
  EXPECT_EQ(results[1].Find("status")->as_string(), "resource_exhausted");
  EXPECT_EQ(results[2].Find("status")->as_string(), "failed_precondition");
  EXPECT_EQ(results[3].Find("status")->as_string(), "failed_precondition");  // an erased profile's id
  EXPECT_EQ(results[4].Find("status")->as_string(), "ok");
  EXPECT_EQ(Unwrap(engine_->Stats()).Find("profiles")->as_int(), 2);
  // The refused items' fresh identifiers are free: events naming them create new profiles.
  for (const char* email : {"fresh@example.com", "big@example.com"}) {
    TrackResult t = Unwrap(events().Track(J(fmt::format(R"({{"type":"page_view","email":"{}"}})", email))));
    EXPECT_TRUE(t.profile_created) << email;
  }
  TrackResult phone = Unwrap(events().Track(J(R"({"type":"page_view","phone":"+16502530000"})")));
  EXPECT_TRUE(phone.profile_created);
  TrackResult kept = Unwrap(events().Track(J(R"({"type":"page_view","email":"kept@example.com"})")));
  EXPECT_EQ(kept.profile_id, results[4].Find("id")->as_string());
}

TEST_F(ProfilesTest, SecondOpenOfTheSameDirectoryFails) {
  auto second = Engine::Open(options_, dir_.path());
  ASSERT_FALSE(second.ok());
  EXPECT_TRUE(second.status().IsFailedPrecondition());
  EXPECT_NE(second.status().message().find("already open"), std::string::npos);
}

}  // namespace
}  // namespace cdp
