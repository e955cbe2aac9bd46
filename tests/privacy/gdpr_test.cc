// Copyright 2026 The libcdp Authors.
//
// Data subjects' requests (issue 5): the access export holds everything about the person; erasure is recorded as
// a request with its status and turnaround; erased identifiers are suppressed (only keyed hashes kept), so data
// naming them does not recreate the person.

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "test_util.h"

namespace cdp {
namespace {

using testing::J;
using testing::Unwrap;

class GdprTest : public testing::EngineTest {
 protected:
  Gdpr& gdpr() { return engine_->gdpr(); }
  // Customers `holder` then `other` seen on one device: two profiles (a device does not join two customerIds), the
  // device's hub set holding a hash of each customerId. Returns their profile ids.
  std::pair<std::string, std::string> TwoCustomersOnADevice(const std::string& holder, const std::string& other,
                                                            const std::string& device) {
    auto track = [&](const std::string& customer) {
      return Unwrap(events().Track(J(R"({"type": "page_view", "customerId": ")" + customer + R"(", "deviceId": ")" +
                                     device + R"("})")))
          .profile_id;
    };
    std::pair<std::string, std::string> ids{track(holder), track(other)};
    EXPECT_NE(ids.first, ids.second);  // two customers sharing a device stay two people
    return ids;
  }
};

TEST_F(GdprTest, ExportHoldsEverythingAboutThePerson) {
  Json p = Unwrap(profiles().Create(J(R"({"externalIds": {"email": "ada@example.com", "customerId": "c-1"},
      "attributes": {"firstName": "Ada", "city": "London"}})")));
  const std::string id = p.Find("id")->as_string();
  // A second profile of the same person (a device), merged by an identify.
  Unwrap(events().Track(J(R"({"type": "page_view", "deviceId": "tablet-1", "timestamp": "2026-11-01T10:00:00Z",
      "properties": {"url": "/a"}})")));
  Unwrap(engine_->identity().Identify(J(R"({"identifiers": {"customerId": "c-1", "deviceId": "tablet-1"}})")));
  for (int i = 0; i < 3; ++i) {
    Unwrap(events().Track(J(R"({"type": "purchase", "customerId": "c-1", "timestamp": "2026-11-0)" +
                            std::to_string(2 + i) + R"(T10:00:00Z", "properties": {"revenue": 10}})")));
  }
  Unwrap(engine_->consent().Record(J(R"({"profileId": ")" + id + R"(", "purposes": {"email": "granted"}})")));
  Json seg = Unwrap(engine_->segments().Create(J(R"({"name": "Londoners", "rule": {"field": "attributes.city",
      "operator": "=", "value": "London"}})")));
  Unwrap(events().Track(J(R"({"type": "page_view", "email": "someone-else@example.com"})")));

  Json out = Unwrap(gdpr().Export(id));
  EXPECT_EQ(out.Find("profileId")->as_string(), id);
  EXPECT_EQ(out.FindPath("profile.attributes.firstName")->as_string(), "Ada");
  EXPECT_EQ(out.Find("events")->size(), 4u);  // the device's page view and three purchases, nobody else's
  for (const Json& e : out.Find("events")->items()) EXPECT_EQ(e.Find("profileId")->as_string(), id);
  EXPECT_GE(out.Find("sessions")->size(), 1u);
  EXPECT_EQ(out.FindPath("identity.merges")->size(), 1u);
  EXPECT_GE(out.FindPath("identity.identifiers")->size(), 3u);
  EXPECT_EQ(out.FindPath("consent.purposes.email.granted")->as_bool(), true);
  ASSERT_EQ(out.Find("segments")->size(), 1u);
  EXPECT_EQ(out.Find("segments")->items()[0].Find("name")->as_string(), "Londoners");
  EXPECT_EQ(out.Find("segments")->items()[0].Find("id")->as_string(), seg.Find("id")->as_string());
  // The request is recorded, without the person's id.
  Json request = Unwrap(gdpr().GetRequest(out.Find("requestId")->as_string()));
  EXPECT_EQ(request.Find("type")->as_string(), "access");
  EXPECT_EQ(request.Find("status")->as_string(), "completed");
  EXPECT_GE(request.Find("turnaroundMs")->as_number(), 0.0);
  EXPECT_EQ(request.Dump().find(id), std::string::npos);
  // A person's requests are found by their id.
  Json mine = Unwrap(gdpr().ListRequests(J(R"({"profileId": ")" + id + R"("})")));
  EXPECT_EQ(mine.Find("items")->size(), 1u);
  EXPECT_EQ(Unwrap(gdpr().ListRequests(J(R"({"profileId": "someone-else"})"))).Find("items")->size(), 0u);
}

// "userId", the Segment name of customerId that events and identifies accept, names the same suppressed identifier.
TEST_F(GdprTest, SuppressionAcceptsUserIdForCustomerId) {
  const std::string id = Unwrap(events().Track(J(R"({"type": "page_view", "userId": "u-77"})"))).profile_id;
  Unwrap(gdpr().Erase(id));
  EXPECT_TRUE(Unwrap(gdpr().IsSuppressed("userId", "u-77")));
  EXPECT_TRUE(Unwrap(gdpr().IsSuppressed("customerId", "u-77")));
  Json lifted = Unwrap(gdpr().Unsuppress("userId", "u-77"));
  EXPECT_EQ(lifted.Find("type")->as_string(), "customerId");
  EXPECT_TRUE(lifted.Find("unsuppressed")->as_bool());
  EXPECT_FALSE(Unwrap(gdpr().IsSuppressed("customerId", "u-77")));
}

TEST_F(GdprTest, ErasureIsARequestAndItsIdentifiersAreSuppressed) {
  Json p =
      Unwrap(profiles().Create(J(R"({"externalIds": {"email": "gone@example.com", "phone": "+1 650 253 0000"}})")));
  const std::string id = p.Find("id")->as_string();
  Unwrap(events().Track(J(R"({"type": "page_view", "email": "gone@example.com"})")));
  EXPECT_TRUE(gdpr().Erase("no-such-person").status().IsNotFound());

  Json record = Unwrap(gdpr().Erase(id));
  EXPECT_EQ(record.Find("type")->as_string(), "erasure");
  EXPECT_EQ(record.Find("status")->as_string(), "completed");
  EXPECT_EQ(record.Find("suppressedIdentifiers")->as_int(), 2);
  EXPECT_NE(record.Find("completedAt"), nullptr);
  EXPECT_TRUE(profiles().Get(id).status().IsNotFound());
  EXPECT_EQ(Unwrap(gdpr().GetRequest(record.Find("id")->as_string())), record);

  // Data naming an erased identifier is refused, in any form of it, and recreates nobody.
  const int64_t profiles_before = Unwrap(engine_->Stats()).Find("profiles")->as_int();
  EXPECT_EQ(events().Track(J(R"({"type": "page_view", "email": " GONE@example.com"})")).status().code(),
            StatusCode::kFailedPrecondition);
  EXPECT_EQ(events().Track(J(R"({"type": "page_view", "phone": "6502530000"})")).status().code(),
            StatusCode::kFailedPrecondition);
  EXPECT_EQ(engine_->identity().Identify(J(R"({"identifiers": {"email": "gone@example.com"}})")).status().code(),
            StatusCode::kFailedPrecondition);
  EXPECT_EQ(profiles().Create(J(R"({"externalIds": {"email": "gone@example.com"}})")).status().code(),
            StatusCode::kFailedPrecondition);
  Json batch = Unwrap(engine_->identity().IdentifyBatch(
      {J(R"({"identifiers": {"email": "gone@example.com"}})"), J(R"({"identifiers": {"email": "new@example.com"}})")}));
  EXPECT_EQ(batch.Find("accepted")->as_int(), 1);
  EXPECT_EQ(Unwrap(engine_->Stats()).Find("profiles")->as_int(), profiles_before + 1);  // new@ only
  EXPECT_TRUE(Unwrap(gdpr().IsSuppressed("email", "Gone@Example.com")));
  EXPECT_FALSE(Unwrap(gdpr().IsSuppressed("email", "new@example.com")));
  // It outlives a restart; lifting it lets the person back in.
  Reopen();
  EXPECT_EQ(events().Track(J(R"({"type": "page_view", "email": "gone@example.com"})")).status().code(),
            StatusCode::kFailedPrecondition);
  Json lifted = Unwrap(gdpr().Unsuppress("email", " GONE@example.com "));
  EXPECT_EQ(lifted.Find("value")->as_string(), "gone@example.com");
  EXPECT_TRUE(lifted.Find("unsuppressed")->as_bool());
  Unwrap(events().Track(J(R"({"type": "page_view", "email": "gone@example.com"})")));
  EXPECT_FALSE(Unwrap(gdpr().Unsuppress("email", "gone@example.com")).Find("unsuppressed")->as_bool());
  EXPECT_TRUE(gdpr().IsSuppressed("email", "not an email").status().IsInvalidArgument());

  // Requests: the failed one and the erasure, newest first, with turnaround figures.
  Json all = Unwrap(gdpr().ListRequests(Json::Object()));
  ASSERT_EQ(all.Find("items")->size(), 2u);
  EXPECT_EQ(all.Find("items")->items()[0].Find("type")->as_string(), "erasure");
  EXPECT_EQ(all.Find("items")->items()[1].Find("status")->as_string(), "failed");
  EXPECT_EQ(all.Find("items")->items()[1].FindPath("error.code")->as_string(), "not_found");
  EXPECT_EQ(all.FindPath("turnaround.completed")->as_int(), 1);
  EXPECT_EQ(Unwrap(gdpr().ListRequests(J(R"({"status": "failed"})"))).Find("items")->size(), 1u);
  Json page = Unwrap(gdpr().ListRequests(J(R"({"limit": 1})")));
  ASSERT_EQ(page.Find("items")->size(), 1u);
  Json rest =
      Unwrap(gdpr().ListRequests(J(R"({"limit": 1, "cursor": ")" + page.Find("nextCursor")->as_string() + R"("})")));
  EXPECT_EQ(rest.Find("items")->items()[0].Find("status")->as_string(), "failed");
  EXPECT_TRUE(rest.Find("nextCursor")->is_null()) << "the last page: null, as every list";
  EXPECT_TRUE(gdpr().ListRequests(J(R"({"type": "delete"})")).status().IsInvalidArgument());
  EXPECT_TRUE(gdpr().ListRequests(J(R"({"limit": 0})")).status().IsInvalidArgument());
  // A cursor that no page gave is refused, not taken as "from the start".
  auto garbage = gdpr().ListRequests(J(R"({"cursor": "zz"})"));
  EXPECT_TRUE(garbage.status().IsInvalidArgument());
  EXPECT_EQ(garbage.status().field(), "cursor");
}

TEST_F(GdprTest, AnErasedProfileIdIsNotCreatedAgainAndRetriesLeaveNoTrace) {
  Json p = Unwrap(profiles().Create(J(R"({"id": "crm-4711", "externalIds": {"email": "id@example.com"}})")));
  Unwrap(events().Track(J(R"({"type": "page_view", "profileId": "crm-4711"})")));
  Unwrap(gdpr().Erase("crm-4711"));
  // A retried erasure fails (NotFound); its record keeps only the error code.
  EXPECT_TRUE(gdpr().Erase("crm-4711").status().IsNotFound());
  EXPECT_TRUE(profiles().Delete("crm-4711").IsNotFound());
  Json all = Unwrap(gdpr().ListRequests(Json::Object()));
  EXPECT_EQ(all.Find("items")->size(), 3u);
  EXPECT_EQ(all.Dump().find("crm-4711"), std::string::npos) << all.Dump();
  // The id is suppressed: neither an event naming it nor a create under it brings the person back.
  EXPECT_EQ(events().Track(J(R"({"type": "page_view", "profileId": "crm-4711"})")).status().code(),
            StatusCode::kFailedPrecondition);
  EXPECT_EQ(profiles().Create(J(R"({"id": "crm-4711"})")).status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(
      engine_->identity().Identify(J(R"({"profileId": "crm-4711", "attributes": {"city": "x"}})")).status().code(),
      StatusCode::kFailedPrecondition);
  EXPECT_TRUE(Unwrap(gdpr().IsSuppressed("profileId", "crm-4711")));
  Unwrap(gdpr().Unsuppress("profileId", "crm-4711"));
  Unwrap(profiles().Create(J(R"({"id": "crm-4711"})")));
}

// An erased identifier that an event would not link (dropped for a limit) is refused too: the event and the
// profile's identityIssues would otherwise keep its value in plain text.
TEST_F(GdprTest, AnErasedIdentifierDroppedForALimitIsRefusedToo) {
  const std::string gone = "cnry" + std::to_string(std::random_device{}()) + "@example.com";
  Json a = Unwrap(profiles().Create(J(R"({"externalIds": {"email": ")" + gone + R"("}})")));
  Unwrap(gdpr().Erase(a.Find("id")->as_string()));
  // B holds its customerId and the most emails a profile may (5): a sixth would be dropped, not linked.
  Json b = Unwrap(profiles().Create(J(R"({"externalIds": {"customerId": "cust-b", "email": ["b1@x.com", "b2@x.com",
      "b3@x.com", "b4@x.com", "b5@x.com"]}})")));
  TrackResult dropped = Unwrap(events().Track(J(R"({"type": "page_view", "customerId": "cust-b",
      "email": "b6@x.com"})")));
  ASSERT_TRUE(dropped.ignored_identifiers.is_array());  // the limit drops a sixth email
  EXPECT_EQ(
      events().Track(J(R"({"type": "page_view", "customerId": "cust-b", "email": ")" + gone + R"("})")).status().code(),
      StatusCode::kFailedPrecondition);
  EXPECT_EQ(Unwrap(profiles().Get(b.Find("id")->as_string())).Dump().find(gone), std::string::npos);
  ASSERT_TRUE(engine_->Flush().ok());
  EXPECT_EQ(testing::FilesHolding(dir_.path(), gone), std::vector<std::string>{});
}

// A device another person holds keeps, in its hub set, a hash of each high-priority value seen with it: the erased
// person's leave that set (and every file), the holder's stay.
TEST_F(GdprTest, ErasureTakesThePersonsHashesOutOfOtherIdentifiersHubSets) {
  const std::string a = "cust-" + std::to_string(std::random_device{}());
  const std::string b = "cust-b" + std::to_string(std::random_device{}());
  const auto [holder, erased] = TwoCustomersOnADevice(b, a, "shared-ipad");
  ASSERT_TRUE(engine_->Flush().ok());
  EXPECT_FALSE(testing::FilesHolding(dir_.path(), testing::HubHashBytes("customerId", a)).empty());  // the scan sees it
  Unwrap(gdpr().Erase(erased));
  ASSERT_TRUE(engine_->Flush().ok());
  EXPECT_EQ(testing::FilesHolding(dir_.path(), testing::HubHashBytes("customerId", a)), std::vector<std::string>{});
  EXPECT_FALSE(testing::FilesHolding(dir_.path(), testing::HubHashBytes("customerId", b)).empty());
  // The device still goes to its holder.
  EXPECT_EQ(Unwrap(events().Track(J(R"({"type": "page_view", "deviceId": "shared-ipad"})"))).profile_id, holder);
}

// A value the person no longer holds (a customerId replaced by a patch) leaves other identifiers' hub sets too:
// the profile keeps the hashes it put there (hubHashes, never shown), and its erasure scrubs them.
TEST_F(GdprTest, ErasureScrubsHubHashesOfValuesThePersonNoLongerHolds) {
  const std::string a = "cust-a" + std::to_string(std::random_device{}());
  const std::string b = "cust-b" + std::to_string(std::random_device{}());
  const std::string erased = TwoCustomersOnADevice(b, a, "shared-tv").second;
  Json patched = Unwrap(profiles().Patch(erased, J(R"({"externalIds": {"customerId": "renamed-)" + a + R"("}})")));
  EXPECT_EQ(patched.Find("externalIds")->Find("customerId")->as_string(), "renamed-" + a);
  EXPECT_EQ(patched.Find("hubHashes"), nullptr);  // internal
  ASSERT_TRUE(engine_->Flush().ok());
  EXPECT_FALSE(testing::FilesHolding(dir_.path(), testing::HubHashBytes("customerId", a)).empty());
  Unwrap(gdpr().Erase(erased));
  ASSERT_TRUE(engine_->Flush().ok());
  EXPECT_EQ(testing::FilesHolding(dir_.path(), testing::HubHashBytes("customerId", a)), std::vector<std::string>{});
  EXPECT_FALSE(testing::FilesHolding(dir_.path(), testing::HubHashBytes("customerId", b)).empty());
}

// hubHashes is internal: a write naming it is refused, and a Replace keeps what the profile had.
TEST_F(GdprTest, HubHashesAreNotWritable) {
  const std::string a = "cust-h" + std::to_string(std::random_device{}());
  Unwrap(events().Track(J(R"({"type": "page_view", "customerId": "cust-other", "deviceId": "shared-pc"})")));
  TrackResult t =
      Unwrap(events().Track(J(R"({"type": "page_view", "customerId": ")" + a + R"(", "deviceId": "shared-pc"})")));
  auto refused = profiles().Patch(t.profile_id, J(R"({"hubHashes": []})"));
  EXPECT_EQ(refused.status().code(), StatusCode::kInvalidArgument);
  Unwrap(profiles().Replace(t.profile_id, J(R"({"externalIds": {"customerId": "other-)" + a + R"("}})")));
  Unwrap(gdpr().Erase(t.profile_id));
  ASSERT_TRUE(engine_->Flush().ok());
  EXPECT_EQ(testing::FilesHolding(dir_.path(), testing::HubHashBytes("customerId", a)), std::vector<std::string>{});
}

// An identifier the person held earlier (removed by a patch, its link and tombstone in table files of their own)
// leaves every file with the person's erasure.
TEST_F(GdprTest, ErasurePurgesIdentifiersThePersonNoLongerHolds) {
  const std::string old_id = "formerly-" + std::to_string(std::random_device{}());
  const std::string id =
      Unwrap(profiles().Create(J(R"({"externalIds": {"customerId": ")" + old_id + R"("}})"))).Find("id")->as_string();
  ASSERT_TRUE(engine_->Flush().ok());  // the link is in a table file
  Unwrap(profiles().Patch(id, J(R"({"externalIds": {"customerId": null}})")));
  ASSERT_TRUE(engine_->Flush().ok());  // its tombstone in another
  Unwrap(profiles().Patch(id, J(R"({"externalIds": {"email": "now@example.com"}})")));
  ASSERT_TRUE(engine_->Flush().ok());
  ASSERT_FALSE(testing::FilesHolding(dir_.path(), old_id).empty());  // the scan sees the old value
  Unwrap(gdpr().Erase(id));
  ASSERT_TRUE(engine_->Flush().ok());
  EXPECT_EQ(testing::FilesHolding(dir_.path(), old_id), std::vector<std::string>{});
}

// Values a profile write removed from the person are suppressed by their erasure too (from keyed hashes the
// profile kept, formerIdHashes), also those of a profile merged into them.
TEST_F(GdprTest, ValuesThePersonHeldBeforeAreSuppressedToo) {
  const std::string tag = std::to_string(std::random_device{}());
  const std::string id = Unwrap(profiles().Create(J(R"({"externalIds": {"customerId": "C-old)" + tag +
                                                    R"(", "email": "old)" + tag + R"(@example.com"}})")))
                             .Find("id")
                             ->as_string();
  Unwrap(profiles().Patch(id, J(R"({"externalIds": {"customerId": "C-new)" + tag + R"(", "email": null}})")));
  // A device profile that dropped a value, then merged into the person by an identify.
  TrackResult device = Unwrap(events().Track(J(R"({"type": "page_view", "deviceId": "dev)" + tag + R"("})")));
  Unwrap(profiles().Patch(device.profile_id, J(R"({"externalIds": {"phone": "+1 650 253 0001"}})")));
  Unwrap(profiles().Patch(device.profile_id, J(R"({"externalIds": {"phone": null}})")));
  Unwrap(engine_->identity().Identify(
      J(R"({"identifiers": {"customerId": "C-new)" + tag + R"(", "deviceId": "dev)" + tag + R"("}})")));
  EXPECT_EQ(profiles().Patch(id, J(R"({"formerIdHashes": []})")).status().code(), StatusCode::kInvalidArgument);
  EXPECT_FALSE(Unwrap(gdpr().IsSuppressed("customerId", "C-old" + tag)));
  Unwrap(gdpr().Erase(id));
  EXPECT_TRUE(Unwrap(gdpr().IsSuppressed("customerId", "C-old" + tag)));
  EXPECT_TRUE(Unwrap(gdpr().IsSuppressed("email", "Old" + tag + "@Example.com")));
  EXPECT_TRUE(Unwrap(gdpr().IsSuppressed("phone", "+16502530001")));
  EXPECT_TRUE(Unwrap(gdpr().IsSuppressed("customerId", "C-new" + tag)));  // held at the erasure
  Status refused = events().Track(J(R"({"type": "page_view", "customerId": "C-old)" + tag + R"("})")).status();
  EXPECT_EQ(refused.code(), StatusCode::kFailedPrecondition) << refused.ToString();
  EXPECT_EQ(refused.field(), "suppressed");
  ASSERT_TRUE(engine_->Flush().ok());
  EXPECT_EQ(testing::FilesHolding(dir_.path(), "C-old" + tag), std::vector<std::string>{});
}

// A hub (a value seen with more than hub.threshold people) stays a hub when one of those people is erased: their
// hash is replaced, not removed, so the erasure does not let the value link strangers again.
TEST_F(GdprTest, AnErasureDoesNotTurnAHubBackIntoALink) {
  Json rules = Unwrap(engine_->identity().Rules());
  rules.Find("hub")->Set("threshold", 2);
  Unwrap(engine_->identity().SetRules(rules));
  std::vector<std::string> ids;
  for (const char* c : {"kc1", "kc2", "kc3"}) {
    ids.push_back(Unwrap(events().Track(J(R"({"type": "page_view", "customerId": ")" + std::string(c) +
                                          R"(", "deviceId": "kiosk"})")))
                      .profile_id);
  }
  auto hub_ignored = [&](const TrackResult& r) {
    if (!r.ignored_identifiers.is_array()) return false;
    for (const Json& i : r.ignored_identifiers.items()) {
      if (i.Find("type")->as_string() == "deviceId" && i.Find("reason")->as_string().rfind("hub", 0) == 0) return true;
    }
    return false;
  };
  TrackResult before = Unwrap(events().Track(J(R"({"type": "page_view", "email": "x@x.com", "deviceId": "kiosk"})")));
  ASSERT_TRUE(hub_ignored(before)) << before.ignored_identifiers.Dump();
  Unwrap(gdpr().Erase(ids[2]));
  TrackResult after = Unwrap(events().Track(J(R"({"type": "page_view", "email": "y@x.com", "deviceId": "kiosk"})")));
  EXPECT_TRUE(hub_ignored(after)) << after.ignored_identifiers.Dump();
  EXPECT_TRUE(after.profile_created);
  EXPECT_NE(after.profile_id, ids[0]);  // not glued to the kiosk's first holder
}

// An erased Gmail address stays refused when canonicalGmail changes either way: suppression keeps and checks the
// hash of its canonical form too.
TEST_F(GdprTest, AnErasedGmailAddressStaysSuppressedWhenCanonicalGmailChanges) {
  auto set_canonical = [&](bool on) {
    Json rules = Unwrap(engine_->identity().Rules());
    for (Json& type : rules.Find("identifiers")->items()) {
      if (type.Find("type")->as_string() == "email") type.Set("canonicalGmail", on);
    }
    Unwrap(engine_->identity().SetRules(rules));
  };
  // Erased with canonicalGmail off (stored as given), refused with it on (which drops dots and +tags).
  Json a = Unwrap(profiles().Create(J(R"({"externalIds": {"email": "Jane.Doe+news@gmail.com"}})")));
  Unwrap(gdpr().Erase(a.Find("id")->as_string()));
  set_canonical(true);
  EXPECT_EQ(events().Track(J(R"({"type": "page_view", "email": "janedoe@googlemail.com"})")).status().code(),
            StatusCode::kFailedPrecondition);
  EXPECT_TRUE(Unwrap(gdpr().IsSuppressed("email", "jane.doe@gmail.com")));
  // Erased with it on (stored canonical), refused with it off, dotted or tagged.
  Json b = Unwrap(profiles().Create(J(R"({"externalIds": {"email": "j.smith@gmail.com"}})")));
  Unwrap(gdpr().Erase(b.Find("id")->as_string()));
  set_canonical(false);
  EXPECT_EQ(events().Track(J(R"({"type": "page_view", "email": "j.smith@gmail.com"})")).status().code(),
            StatusCode::kFailedPrecondition);
  EXPECT_EQ(events().Track(J(R"({"type": "page_view", "email": "J.Smith+shop@gmail.com"})")).status().code(),
            StatusCode::kFailedPrecondition);
  // Other addresses pass; lifting it lifts every form.
  Unwrap(events().Track(J(R"({"type": "page_view", "email": "john.smith@gmail.com"})")));
  EXPECT_TRUE(Unwrap(gdpr().Unsuppress("email", "j.smith@gmail.com")).Find("unsuppressed")->as_bool());
  EXPECT_FALSE(Unwrap(gdpr().IsSuppressed("email", "jsmith@gmail.com")));
  Unwrap(events().Track(J(R"({"type": "page_view", "email": "j.smith+shop@gmail.com"})")));
}

TEST(GdprOptionsTest, SuppressionCanBeTurnedOff) {
  testing::TempDir dir;
  Options options;
  options.suppress_erased_identifiers = false;
  auto engine = Unwrap(Engine::Open(options, dir.path()));
  Json p = Unwrap(engine->profiles().Create(J(R"({"externalIds": {"email": "back@example.com"}})")));
  Json record = Unwrap(engine->gdpr().Erase(p.Find("id")->as_string()));
  EXPECT_EQ(record.Find("suppressedIdentifiers")->as_int(), 0);
  TrackResult again = Unwrap(engine->events().Track(J(R"({"type": "page_view", "email": "back@example.com"})")));
  EXPECT_TRUE(again.profile_created);
}

// Only hashes are kept: the erased values appear in no file of the directory.
TEST_F(GdprTest, SuppressionKeepsNoErasedValue) {
  const std::string email = "cnry" + std::to_string(std::random_device{}()) + "@example.com";
  Json p = Unwrap(profiles().Create(J(R"({"externalIds": {"email": ")" + email + R"("}})")));
  ASSERT_TRUE(engine_->Flush().ok());
  Unwrap(gdpr().Erase(p.Find("id")->as_string()));
  ASSERT_TRUE(engine_->Flush().ok());
  EXPECT_EQ(testing::FilesHolding(dir_.path(), email), std::vector<std::string>{});
  EXPECT_TRUE(Unwrap(gdpr().IsSuppressed("email", email)));
}

}  // namespace
}  // namespace cdp
