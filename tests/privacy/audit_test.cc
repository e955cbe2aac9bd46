// Copyright 2026 The libcdp Authors.
//
// The audit log (issue 5): every read and change of personal data is an entry (principal, time, operation, target,
// outcome); the chain verifies, and altering, deleting, reordering or inserting an entry, or cutting the log short,
// is found; an erasure redacts the person's entries and the chain still verifies.

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "core/ids.h"
#include "engine/audited.h"
#include "engine/engine_impl.h"
#include "fmt/format.h"
#include "storage/keys.h"
#include "storage/store.h"
#include "test_util.h"

namespace cdp {
namespace {

using testing::J;
using testing::Unwrap;

class AuditTest : public testing::EngineTest {
 protected:
  Audit& audit() { return engine_->audit(); }
  storage::Store& store() { return static_cast<internal::EngineImpl&>(*engine_).store(); }
  std::string Entry(uint64_t seq) {
    std::string value;
    EXPECT_TRUE(store().Get(storage::Cf::kPrivacy, storage::AuditKey(seq), &value).ok()) << seq;
    return value;
  }
  void Put(uint64_t seq, const std::string& value) {
    storage::WriteBatch batch(store());
    batch.Put(storage::Cf::kPrivacy, storage::AuditKey(seq), value);
    ASSERT_TRUE(store().Write(&batch).ok());
  }
  void Remove(uint64_t seq) {
    storage::WriteBatch batch(store());
    batch.Delete(storage::Cf::kPrivacy, storage::AuditKey(seq));
    ASSERT_TRUE(store().Write(&batch).ok());
  }
  // Five entries: create, get, patch, track, get.
  std::string Activity() {
    const std::string id =
        Unwrap(profiles().Create(J(R"({"externalIds": {"email": "a@example.com"}})"))).Find("id")->as_string();
    Unwrap(profiles().Get(id));
    {
      ScopedPrincipal server("api-key");  // a built-in principal (admin): no policy needed
      Unwrap(profiles().Patch(id, J(R"({"attributes": {"city": "Oslo"}})")));
    }
    Unwrap(events().Track(J(R"({"type": "page_view", "profileId": ")" + id + R"("})")));
    EXPECT_TRUE(profiles().Get("nobody").status().IsNotFound());
    EXPECT_TRUE(Unwrap(audit().Verify()).Find("ok")->as_bool());  // everything queued is written
    return id;
  }
  void ExpectBrokenAt(int64_t seq) {
    Json v = Unwrap(audit().Verify());
    EXPECT_FALSE(v.Find("ok")->as_bool()) << v.Dump();
    ASSERT_NE(v.Find("brokenAt"), nullptr) << v.Dump();
    EXPECT_EQ(v.Find("brokenAt")->as_int(), seq) << v.Dump();
  }
};

TEST_F(AuditTest, EveryCallOnPersonalDataIsAnEntryOfAVerifiableChain) {
  const std::string id = Activity();
  Json all = Unwrap(audit().List(Json::Object()));
  const auto& items = all.Find("items")->items();
  ASSERT_EQ(items.size(), 5u);
  // Newest first.
  EXPECT_EQ(items[0].Find("operation")->as_string(), "profiles.get");
  EXPECT_EQ(items[0].Find("outcome")->as_string(), "not_found");
  EXPECT_EQ(items[1].Find("operation")->as_string(), "events.track");
  EXPECT_EQ(*items[1].Find("targets"), J(R"([")" + id + R"("])"));
  EXPECT_EQ(items[2].Find("principal")->as_string(), "api-key");
  EXPECT_EQ(items[3].Find("principal")->as_string(), "local");
  EXPECT_EQ(items[4].Find("operation")->as_string(), "profiles.create");
  EXPECT_EQ(items[4].Find("seq")->as_int(), 1);
  // Filters and paging.
  EXPECT_EQ(Unwrap(audit().List(J(R"({"principal": "api-key"})"))).Find("items")->size(), 1u);
  EXPECT_EQ(Unwrap(audit().List(J(R"({"target": ")" + id + R"("})"))).Find("items")->size(), 4u);
  // Reading the log is itself an entry ("audit.list"): the three lists so far are entries 6 to 8.
  Json page = Unwrap(audit().List(J(R"({"limit": 2})")));
  ASSERT_EQ(page.Find("items")->size(), 2u);
  Json trail = page.Find("items")->items()[0];
  EXPECT_EQ(trail.Find("operation")->as_string(), "audit.list");
  EXPECT_EQ(*trail.Find("targets"), J(R"([")" + id + R"("])"));  // the person whose trail was read
  EXPECT_EQ(trail.Find("count")->as_int(), 4);
  Json rest = Unwrap(audit().List(J(R"({"limit": 10, "cursor": )" + page.Find("nextCursor")->Dump() + "}")));
  EXPECT_EQ(rest.Find("items")->size(), 6u);
  EXPECT_TRUE(rest.Find("nextCursor")->is_null());
  EXPECT_TRUE(audit().List(J(R"({"limit": 0})")).status().IsInvalidArgument());
  EXPECT_TRUE(audit().List(J(R"({"who": "x"})")).status().IsInvalidArgument());

  Json v = Unwrap(audit().Verify());
  EXPECT_TRUE(v.Find("ok")->as_bool()) << v.Dump();
  EXPECT_EQ(v.Find("entries")->as_int(), 12);  // five calls, seven lists (two refused)
  EXPECT_EQ(Unwrap(audit().List(J(R"({"operation": "audit.list", "limit": 100})"))).Find("items")->size(), 7u);
  // The chain goes on across a restart.
  Reopen();
  Unwrap(profiles().Get(id));
  v = Unwrap(audit().Verify());
  EXPECT_TRUE(v.Find("ok")->as_bool()) << v.Dump();
  EXPECT_EQ(v.Find("entries")->as_int(), 14);
}

TEST_F(AuditTest, AlteringAnEntryIsFound) {
  Activity();
  Json e = J(Entry(3));
  e.Set("principal", "someone-else");
  Put(3, e.Dump());
  ExpectBrokenAt(3);
}

TEST_F(AuditTest, AlteringAnEntryAndItsHashesIsFound) {
  Activity();
  Json e = J(Entry(2));
  e.Set("outcome", "not_found");
  e.Set("contentHash", internal::Sha256Hex("forged"));  // without the key, the chain hash cannot be made to match
  Put(2, e.Dump());
  ExpectBrokenAt(2);
}

TEST_F(AuditTest, AlteringTheTargetsIsFound) {
  Activity();
  Json e = J(Entry(4));
  e.Set("targets", J(R"(["someone"])"));
  Put(4, e.Dump());
  ExpectBrokenAt(4);
}

TEST_F(AuditTest, DeletingAnEntryIsFound) {
  Activity();
  Remove(2);
  ExpectBrokenAt(2);
}

TEST_F(AuditTest, ReorderingEntriesIsFound) {
  Activity();
  const std::string two = Entry(2), three = Entry(3);
  Json a = J(two), b = J(three);
  a.Set("seq", 3);  // each moved to the other's place, seq fields made to match
  b.Set("seq", 2);
  Put(2, b.Dump());
  Put(3, a.Dump());
  ExpectBrokenAt(2);
}

TEST_F(AuditTest, InsertingAnEntryIsFound) {
  Activity();
  // Everything from 3 on moves one place later, a forged entry takes place 3.
  for (uint64_t seq = 5; seq >= 3; --seq) {
    Json e = J(Entry(seq));
    e.Set("seq", static_cast<int64_t>(seq + 1));
    Put(seq + 1, e.Dump());
  }
  Json forged = J(Entry(2));
  forged.Set("seq", 3);
  Put(3, forged.Dump());
  ExpectBrokenAt(3);
}

TEST_F(AuditTest, CuttingTheLogShortIsFound) {
  Activity();
  Remove(5);
  ExpectBrokenAt(5);
}

// Cutting the log short and rewriting its head from the last entry kept (its seq and hash are in the entry): the
// head's MAC needs the key.
TEST_F(AuditTest, CuttingTheLogShortAndRewritingItsHeadIsFound) {
  Activity();
  std::string head;
  ASSERT_TRUE(store().Get(storage::Cf::kMeta, "audit_head", &head).ok());
  Json four = J(Entry(4));
  Remove(5);
  std::string forged;
  storage::AppendBigEndian64(&forged, 4);
  forged += four.Find("hash")->as_string();
  for (const std::string& mac : {std::string(), head.substr(8 + 64)}) {  // no MAC, or the old head's
    storage::WriteBatch batch(store());
    batch.Put(storage::Cf::kMeta, "audit_head", forged + mac);
    ASSERT_TRUE(store().Write(&batch).ok());
    ExpectBrokenAt(5);
  }
}

// Marking an entry redacted and dropping (or changing) its targets, as an erasure does: the redaction's MAC needs
// the key, and covers the targets left.
TEST_F(AuditTest, ForgingARedactionIsFound) {
  const std::string id = Activity();
  Unwrap(engine_->gdpr().Erase(
      Unwrap(profiles().Create(J(R"({"externalIds": {"email": "b@example.com"}})"))).Find("id")->as_string()));
  std::string genuine;  // a real redaction's MAC, of another entry
  for (uint64_t seq = 1; genuine.empty(); ++seq) {
    Json e = J(Entry(seq));
    if (e.Find("redactionMac") != nullptr) genuine = e.Find("redactionMac")->as_string();
  }
  Json e = J(Entry(4));
  ASSERT_EQ(*e.Find("targets"), J(R"([")" + id + R"("])"));
  e.Set("redacted", true);
  e.Set("targets", Json::Array());
  Put(4, e.Dump());
  ExpectBrokenAt(4);
  e.Set("redactionMac", genuine);
  Put(4, e.Dump());
  ExpectBrokenAt(4);
}

TEST_F(AuditTest, ErasureRedactsThePersonAndTheChainStillVerifies) {
  const std::string id = Activity();
  const std::string other =
      Unwrap(profiles().Create(J(R"({"externalIds": {"email": "b@example.com"}})"))).Find("id")->as_string();
  // One entry naming both people: the erasure removes only the person.
  Unwrap(events().TrackBatch({J(R"({"type": "page_view", "profileId": ")" + id + R"("})"),
                              J(R"({"type": "page_view", "profileId": ")" + other + R"("})")}));
  Json both = Unwrap(audit().List(J(R"({"limit": 1})"))).Find("items")->items()[0];
  ASSERT_EQ(both.Find("targets")->size(), 2u) << both.Dump();
  const int64_t both_seq = both.Find("seq")->as_int();
  Unwrap(engine_->gdpr().Erase(id));
  Json v = Unwrap(audit().Verify());
  EXPECT_TRUE(v.Find("ok")->as_bool()) << v.Dump();
  EXPECT_EQ(v.Find("redacted")->as_int(), 5);
  Json after = J(Entry(both_seq));
  EXPECT_EQ(*after.Find("targets"), J(R"([")" + other + R"("])")) << after.Dump();
  EXPECT_TRUE(after.Find("redacted")->as_bool());
  Json all = Unwrap(audit().List(Json::Object()));
  EXPECT_EQ(all.Dump().find(id), std::string::npos) << "the erased id stays nowhere in the log";
  EXPECT_NE(all.Dump().find(other), std::string::npos);
  EXPECT_EQ(Unwrap(audit().List(J(R"({"target": ")" + id + R"("})"))).Find("items")->size(), 0u);
  EXPECT_EQ(all.Find("items")->items()[0].Find("operation")->as_string(), "gdpr.erase");
  // Nor in any file of the directory (the purge compacted the old entries away).
  ASSERT_TRUE(engine_->Flush().ok());
  EXPECT_EQ(testing::FilesHolding(dir_.path(), id), std::vector<std::string>{});
  // A redacted entry is still covered: altering it is found.
  Json e = J(Entry(3));
  ASSERT_TRUE(e.Find("redacted")->as_bool());
  e.Set("operation", "profiles.get");
  Put(3, e.Dump());
  ExpectBrokenAt(3);
}

// Changes made through segments, suppression lists and identity rules are entries too: who was added to or removed
// from a manual segment, how many identifiers a list gained or lost (not which: the log would keep them), the
// profiles a rule change unlinked or merged.
TEST_F(AuditTest, MembershipSuppressionAndRuleChangesAreEntries) {
  const std::string a =
      Unwrap(profiles().Create(J(R"({"externalIds": {"email": "a@example.com"}})"))).Find("id")->as_string();
  const std::string b = Unwrap(profiles().Create(J(R"({"externalIds": {"email": "b@example.com",
      "phone": "+1 650 253 0000"}})")))
                            .Find("id")
                            ->as_string();
  const std::string seg =
      Unwrap(engine_->segments().Create(J(R"({"name": "picked", "type": "manual"})"))).Find("id")->as_string();
  Unwrap(engine_->segments().AddMembers(seg, J(R"([")" + a + R"(", {"type": "email", "value": "b@example.com"}])")));
  Unwrap(engine_->segments().RemoveMembers(seg, J(R"([")" + a + R"("])")));
  const std::string list =
      Unwrap(engine_->audiences().CreateSuppressionList(J(R"({"name": "l"})"))).Find("id")->as_string();
  Unwrap(engine_->audiences().AddToSuppressionList(list, J(R"([{"type": "email", "value": "a@example.com"},
                                                               {"type": "email", "value": "z@example.com"}])")));
  // Rules that block b's phone: it is unlinked.
  Json rules = Unwrap(engine_->identity().Rules());
  Json types = Json::Array();
  for (Json t : rules.Find("identifiers")->items()) {
    if (t.Find("type")->as_string() == "phone") t.Set("blocked", J(R"(["+1 650 253 0000"])"));
    types.Push(std::move(t));
  }
  rules.Set("identifiers", types);
  Json applied = Unwrap(engine_->identity().ApplyRules(rules));
  ASSERT_EQ(applied.Find("unlinked")->size(), 1u) << applied.Dump();

  auto only = [&](const std::string& operation) {
    Json page = Unwrap(audit().List(J(R"({"operation": ")" + operation + R"("})")));
    EXPECT_EQ(page.Find("items")->size(), 1u) << operation << ": " << page.Dump();
    return page.Find("items")->size() == 1 ? page.Find("items")->items()[0] : Json::Object();
  };
  Json added = only("segments.addMembers");
  EXPECT_EQ(*added.Find("targets"), J(R"([")" + a + R"(", ")" + b + R"("])"));
  EXPECT_EQ(added.Find("resource")->as_string(), seg);
  EXPECT_EQ(*only("segments.removeMembers").Find("targets"), J(R"([")" + a + R"("])"));
  Json suppressed = only("audiences.suppress");
  EXPECT_EQ(suppressed.Find("count")->as_int(), 2);
  EXPECT_EQ(suppressed.Find("resource")->as_string(), list);
  EXPECT_EQ(suppressed.Find("targets")->size(), 0u);
  EXPECT_EQ(suppressed.Dump().find("a@example.com"), std::string::npos);
  EXPECT_EQ(*only("identity.applyRules").Find("targets"), J(R"([")" + b + R"("])"));
  // A refused change is an entry too.
  {
    ScopedPrincipal nobody("nobody");
    EXPECT_TRUE(engine_->segments().AddMembers(seg, J(R"([")" + a + R"("])")).status().code() ==
                StatusCode::kPermissionDenied);
  }
  // Items removed; the privacy requests and suppression read.
  Unwrap(engine_->audiences().RemoveFromSuppressionList(list, J(R"([{"type": "email", "value": "z@example.com"}])")));
  EXPECT_EQ(only("audiences.unsuppress").Find("count")->as_int(), 1);
  const std::string request = Unwrap(engine_->gdpr().Export(a)).Find("requestId")->as_string();
  Unwrap(engine_->gdpr().GetRequest(request));
  Unwrap(engine_->gdpr().ListRequests(Json::Object()));
  Unwrap(engine_->gdpr().IsSuppressed("email", "a@example.com"));
  EXPECT_EQ(only("gdpr.getRequest").Find("resource")->as_string(), request);
  EXPECT_EQ(only("gdpr.listRequests").Find("count")->as_int(), 1);
  Json checked = only("gdpr.isSuppressed");
  EXPECT_EQ(checked.Find("targets")->size(), 0u);
  EXPECT_EQ(checked.Dump().find("a@example.com"), std::string::npos);
  Json refused = Unwrap(audit().List(J(R"({"operation": "segments.addMembers", "principal": "nobody"})")));
  ASSERT_EQ(refused.Find("items")->size(), 1u);
  EXPECT_EQ(refused.Find("items")->items()[0].Find("outcome")->as_string(), "permission_denied");
  EXPECT_TRUE(Unwrap(audit().Verify()).Find("ok")->as_bool());
}

// A log written before entries carried "v" and MACs (heads of 72 bytes): it opens, verifies, goes on with new
// entries (a mixed chain), and an erasure redacts its entries with MACs.
TEST_F(AuditTest, ALogWrittenBeforeTheMacsOpensVerifiesAndGoesOn) {
  const std::string id = Activity();
  auto& engine = static_cast<internal::EngineImpl&>(*engine_);
  std::string prev;
  for (uint64_t seq = 1; seq <= 5; ++seq) {  // each entry as the code before wrote it
    Json e = J(Entry(seq));
    Json content = Json::Object();
    for (const char* key :
         {"seq", "at", "principal", "operation", "resource", "outcome", "count", "recovered", "targetsHash"}) {
      if (const Json* v = e.Find(key); v != nullptr) content.Set(key, *v);
    }
    const std::string content_hash = internal::Sha256Hex(content.Dump());
    Json legacy = content;
    legacy.Set("targets", *e.Find("targets"));
    legacy.Set("contentHash", content_hash);
    legacy.Set("prev", prev);
    prev = engine.KeyedHashHex("chain\n" + prev + content_hash);
    legacy.Set("hash", prev);
    Put(seq, legacy.Dump());
  }
  std::string head;
  storage::AppendBigEndian64(&head, 5);
  {
    storage::WriteBatch batch(store());
    batch.Put(storage::Cf::kMeta, "audit_head", head + prev);
    ASSERT_TRUE(store().Write(&batch).ok());
  }
  Json v = Unwrap(audit().Verify());
  EXPECT_TRUE(v.Find("ok")->as_bool()) << v.Dump();
  Reopen();  // a 72-byte head loads
  v = Unwrap(audit().Verify());
  EXPECT_TRUE(v.Find("ok")->as_bool()) << v.Dump();
  Unwrap(profiles().Get(id));  // entry 6: versioned, after legacy ones
  v = Unwrap(audit().Verify());
  EXPECT_TRUE(v.Find("ok")->as_bool()) << v.Dump();
  EXPECT_EQ(v.Find("entries")->as_int(), 6);
  EXPECT_EQ(J(Entry(6)).Find("v")->as_int(), 2);
  EXPECT_EQ(J(Entry(5)).Find("v"), nullptr);
  // Legacy entries are still covered: altering one is found.
  Json altered = J(Entry(3));
  altered.Set("principal", "someone-else");
  const std::string kept = Entry(3);
  Put(3, altered.Dump());
  ExpectBrokenAt(3);
  Put(3, kept);
  // An erasure redacts legacy and versioned entries alike, with MACs; the chain verifies.
  Unwrap(engine_->gdpr().Erase(id));
  v = Unwrap(audit().Verify());
  EXPECT_TRUE(v.Find("ok")->as_bool()) << v.Dump();
  EXPECT_NE(J(Entry(2)).Find("redactionMac"), nullptr) << Entry(2);
}

// The target index of entries whose keys were held in memory (never written out) survives a reopen: the person's
// entries are found by the target filter and redacted by an erasure after it. (The keys were lost at a reopen.)
TEST_F(AuditTest, TheTargetIndexSurvivesAReopenBeforeAnyWriteOut) {
  const std::string id = Activity();
  EXPECT_EQ(Unwrap(audit().List(J(R"({"target": ")" + id + R"("})"))).Find("items")->size(), 4u);
  Reopen();
  // Each list by the person's id is an entry naming them too (audit.list).
  EXPECT_EQ(Unwrap(audit().List(J(R"({"target": ")" + id + R"("})"))).Find("items")->size(), 5u);
  Unwrap(profiles().Get(id));  // held after the reopen's write-out
  Reopen();
  EXPECT_EQ(Unwrap(audit().List(J(R"({"target": ")" + id + R"("})"))).Find("items")->size(), 7u);
  Unwrap(engine_->gdpr().Erase(id));
  Json v = Unwrap(audit().Verify());
  EXPECT_TRUE(v.Find("ok")->as_bool()) << v.Dump();
  EXPECT_EQ(v.Find("redacted")->as_int(), 8);
  EXPECT_EQ(Unwrap(audit().List(Json::Object())).Dump().find(id), std::string::npos);
  ASSERT_TRUE(engine_->Flush().ok());
  EXPECT_EQ(testing::FilesHolding(dir_.path(), id), std::vector<std::string>{});
}

// Deleting every entry and the head is found by the marker the writer keeps.
TEST_F(AuditTest, RemovingTheWholeLogIsFound) {
  Activity();
  for (uint64_t seq = 1; seq <= 5; ++seq) Remove(seq);
  storage::WriteBatch batch(store());
  batch.Delete(storage::Cf::kMeta, "audit_head");
  ASSERT_TRUE(store().Write(&batch).ok());
  ExpectBrokenAt(1);
}

TEST_F(AuditTest, SegmentAndAudienceReadsAndExportsAreEntriesNamingTheirResource) {
  const std::string id = Unwrap(profiles().Create(J(R"({"attributes": {"country": "NO", "email": "a@example.com"}})")))
                             .Find("id")
                             ->as_string();
  Unwrap(engine_->consent().Record(J(R"({"profileId": ")" + id + R"(", "purposes": {"email": "granted"}})")));
  const std::string seg =
      Unwrap(engine_->segments().Create(
                 J(R"({"name": "no", "rule": {"field": "attributes.country", "operator": "=", "value": "NO"}})")))
          .Find("id")
          ->as_string();
  const std::string aud = Unwrap(engine_->audiences().Create(
                                     J(R"({"name": "a", "segments": {"operator": "OR", "ids": [")" + seg + R"("]}})")))
                              .Find("id")
                              ->as_string();
  ASSERT_EQ(Unwrap(engine_->segments().Members(seg, 10, "")).items.size(), 1u);
  ASSERT_EQ(Unwrap(engine_->audiences().Members(aud, 10, "")).items.size(), 1u);
  auto sink = [](std::string_view) { return true; };
  ASSERT_TRUE(engine_->segments().Export(seg, "csv", {}, sink).ok());
  ASSERT_TRUE(engine_->audiences().Export(aud, "jsonl", {}, sink).ok());
  Unwrap(engine_->segments().MembersAt(seg, FormatTimestamp(internal::NowMicros() + 1000000)));
  ASSERT_EQ(Unwrap(engine_->segments().Changes(seg, "", 0)).Find("changes")->size(), 1u);

  // A sink refusing the first chunk read nothing out (a server checks an export so before streaming it): no entry.
  EXPECT_EQ(engine_->segments().Export(seg, "csv", {}, [](std::string_view) { return false; }).code(),
            StatusCode::kUnavailable);
  Json on_seg = Unwrap(audit().List(J(R"({"resource": ")" + seg + R"("})")));
  std::vector<std::string> ops;
  for (const Json& e : on_seg.Find("items")->items()) ops.push_back(e.Find("operation")->as_string());
  EXPECT_EQ(
      ops, (std::vector<std::string>{"segments.changes", "segments.membersAt", "segments.export", "segments.members"}));
  const Json& export_entry = on_seg.Find("items")->items()[2];
  EXPECT_EQ(export_entry.Find("count")->as_int(), 1);
  // A page of members names each member, so the person's own trail lists it.
  Json mine = Unwrap(audit().List(J(R"({"target": ")" + id + R"("})")));
  bool listed = false;
  bool feed_listed = false;
  std::set<std::string> exports;  // an export names each profile it read out, too
  for (const Json& e : mine.Find("items")->items()) {
    listed |= e.Find("operation")->as_string() == "audiences.members";
    feed_listed |= e.Find("operation")->as_string() == "segments.changes";  // the feed page named them
    if (e.Find("operation")->as_string().ends_with(".export")) exports.insert(e.Find("operation")->as_string());
  }
  EXPECT_TRUE(listed);
  EXPECT_TRUE(feed_listed);
  EXPECT_EQ(exports, (std::set<std::string>{"audiences.export", "segments.export"}));
  EXPECT_EQ(Unwrap(audit().List(J(R"({"resource": ")" + aud + R"("})"))).Find("items")->size(), 2u);
  EXPECT_TRUE(Unwrap(audit().Verify()).Find("ok")->as_bool());
}

// An export is an entry per chunk; after the first, each is appended before the chunk is handed over, so a
// chunk the reader then refuses (a connection that broke mid-write) is named too.
TEST_F(AuditTest, AnExportNamesEveryChunkHandedOverAfterTheFirst) {
  std::vector<Json> people;
  for (int i = 0; i < 1500; ++i) {
    people.push_back(J(R"({"attributes": {"country": "NO", "firstName": "Person number )" + std::to_string(i) +
                       R"(", "lastName": "With a long enough name to fill the rows"}})"));
  }
  Unwrap(profiles().CreateBatch(people));
  const std::string seg =
      Unwrap(engine_->segments().Create(
                 J(R"({"name": "no", "rule": {"field": "attributes.country", "operator": "=", "value": "NO"}})")))
          .Find("id")
          ->as_string();
  size_t first_rows = 0;
  int chunks = 0;
  Status s = engine_->segments().Export(
      seg, "jsonl", {"id", "attributes.firstName", "attributes.lastName"}, [&](std::string_view chunk) {
        if (++chunks == 1) {
          first_rows = static_cast<size_t>(std::count(chunk.begin(), chunk.end(), '\n'));
        }
        return chunks == 1;  // the second chunk is refused
      });
  EXPECT_EQ(s.code(), StatusCode::kUnavailable);
  ASSERT_EQ(chunks, 2);
  ASSERT_GT(first_rows, 0u);
  Json entries = Unwrap(audit().List(J(R"({"resource": ")" + seg + R"(", "operation": "segments.export"})")));
  size_t named = 0;
  for (const Json& e : entries.Find("items")->items()) named += e.Find("targets")->size();
  EXPECT_GT(named, first_rows);  // the refused second chunk's rows too
  EXPECT_LT(named, 1500u);       // not the chunks never handed over
}

TEST_F(AuditTest, ACallNamingManyProfilesIsRecordedInEntriesOfAtMostTenThousand) {
  std::vector<std::string> targets;
  for (int i = 0; i < 25'000; ++i) targets.push_back(fmt::format("p{:05}", i));
  internal::RecordInParts(static_cast<internal::EngineImpl&>(*engine_).audit_log(), "segments.export", targets,
                          Status::OK(), 25'000, /*read=*/true, "seg1");
  Json entries = Unwrap(audit().List(J(R"({"resource": "seg1", "limit": 10})")));
  std::vector<size_t> sizes;
  std::set<std::string> named;
  int64_t counted = 0;
  for (const Json& e : entries.Find("items")->items()) {
    EXPECT_EQ(e.Find("operation")->as_string(), "segments.export");
    sizes.push_back(e.Find("targets")->size());
    for (const Json& t : e.Find("targets")->items()) named.insert(t.as_string());
    if (const Json* count = e.Find("count"); count != nullptr) counted += count->as_int();
  }
  std::sort(sizes.begin(), sizes.end());
  EXPECT_EQ(sizes, (std::vector<size_t>{5'000, 10'000, 10'000}));
  EXPECT_EQ(named.size(), 25'000u);
  EXPECT_EQ(counted, 25'000);  // on one entry only
  EXPECT_EQ(Unwrap(audit().List(J(R"({"target": "p24999"})"))).Find("items")->size(), 1u);
}

// The pending records of change calls ("q" keys, engine/audit_log.h) left in `store`.
std::vector<std::string> PendingKeys(const storage::Store& store) {
  std::vector<std::string> keys;
  const std::string prefix(storage::kAuditPendingPrefix);
  auto iter = store.NewIterator(storage::Cf::kPrivacy, prefix, storage::PrefixSuccessor(prefix));
  for (iter->Seek(prefix); iter->Valid(); iter->Next()) keys.emplace_back(iter->key());
  EXPECT_TRUE(iter->status().ok());
  return keys;
}

// RFC 4231's test cases 1, 2 and 6 (a key longer than a block), and a key change on the same thread.
TEST(HmacTest, MatchesRfc4231) {
  using internal::Hex;
  using internal::HmacSha256;
  EXPECT_EQ(Hex(HmacSha256(std::string(20, '\x0b'), "Hi There")),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
  EXPECT_EQ(Hex(HmacSha256("Jefe", "what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
  EXPECT_EQ(Hex(HmacSha256(std::string(131, '\xaa'), "Test Using Larger Than Block-Size Key - Hash Key First")),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
  EXPECT_EQ(Hex(HmacSha256("Jefe", "what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

TEST_F(AuditTest, AChangeWritesAPendingRecordThatItsEntryDeletes) {
  const std::string id = Activity();  // Verify flushed the log
  EXPECT_TRUE(PendingKeys(store()).empty());
  // A refusal wrote nothing, so no record; its entry is still written.
  {
    ScopedPrincipal stranger("nobody-defined");
    EXPECT_EQ(profiles().Patch(id, J(R"({"attributes": {"city": "Bergen"}})")).status().code(),
              StatusCode::kPermissionDenied);
  }
  Json v = Unwrap(audit().Verify());
  EXPECT_TRUE(v.Find("ok")->as_bool()) << v.Dump();
  Json last = Unwrap(audit().List(J(R"({"limit": 1})"))).Find("items")->items().at(0);
  EXPECT_EQ(last.Find("outcome")->as_string(), "permission_denied") << last.Dump();
  EXPECT_TRUE(PendingKeys(store()).empty());
}

// A change whose process died between its write and its return left a pending record and no journal line: the
// next open chains it from the record alone (outcome ok, no targets), once.
TEST_F(AuditTest, APendingRecordWithoutItsLineIsChainedFromTheRecord) {
  {
    ScopedPrincipal writer("api-key");
    storage::WriteBatch batch(store());
    static_cast<internal::EngineImpl&>(*engine_).audit_log().AddPending(&batch, "api-key", "profiles.patch");
    ASSERT_TRUE(store().Write(&batch).ok());
  }
  ASSERT_EQ(PendingKeys(store()).size(), 1u);
  Reopen();
  EXPECT_TRUE(PendingKeys(store()).empty());
  Json v = Unwrap(audit().Verify());
  EXPECT_TRUE(v.Find("ok")->as_bool()) << v.Dump();
  Json items = *Unwrap(audit().List(J(R"({"operation": "profiles.patch"})"))).Find("items");
  ASSERT_EQ(items.size(), 1u) << items.Dump();
  EXPECT_EQ(items.items()[0].Find("principal")->as_string(), "api-key");
  EXPECT_TRUE(items.items()[0].Find("recovered")->as_bool());
  EXPECT_EQ(items.items()[0].Find("targets")->size(), 0u);
  Reopen();
  EXPECT_EQ(Unwrap(audit().List(J(R"({"operation": "profiles.patch"})"))).Find("items")->size(), 1u);
}

// A change that says before its write what its entry will name (a Track: its profile) puts that in its pending
// record, and writes no journal line when it ends as it said; one that ends otherwise writes its line. A complete
// record whose call never returned is chained from the record alone, with its targets (those of profiles that
// still exist).
TEST_F(AuditTest, ACompleteRecordStandsForTheLineOnlyWhenTheCallEndsAsItSaid) {
  auto& log = static_cast<internal::EngineImpl&>(*engine_).audit_log();
  auto journal_bytes = [&] {
    uintmax_t bytes = 0;
    for (const auto& f : std::filesystem::directory_iterator(dir_.path() + "/cdp-audit")) bytes += f.file_size();
    return bytes;
  };
  ASSERT_TRUE(audit().Verify().ok());  // everything so far written, its journal retired
  const uintmax_t before = journal_bytes();
  auto change = [&](const std::vector<std::string>& said, const std::vector<std::string>& done) {
    ScopedPrincipal writer("api-key");
    internal::AuditedChange c(log, "events.track");
    ASSERT_EQ(internal::AuditedChange::Current(), &c);
    c.Expect(said);
    storage::WriteBatch batch(store());
    ASSERT_TRUE(store().Write(&batch).ok());  // the hook puts the pending record
    c.Done(done, Status::OK());
  };
  change({"as-said"}, {"as-said"});
  EXPECT_EQ(journal_bytes(), before);
  change({"said"}, {"said", "and-more"});
  EXPECT_GT(journal_bytes(), before);
  Json items = *Unwrap(audit().List(J(R"({"operation": "events.track"})"))).Find("items");
  ASSERT_EQ(items.size(), 2u) << items.Dump();
  EXPECT_EQ(items.items()[0].Find("targets")->Dump(), R"(["said","and-more"])");  // newest first
  EXPECT_EQ(items.items()[1].Find("targets")->Dump(), R"(["as-said"])");
  EXPECT_TRUE(PendingKeys(store()).empty());
  // A complete record left by a process that died before its entry was written: chained from the record alone,
  // with its targets and count.
  Unwrap(profiles().Create(J(R"({"id": "p1"})")));
  Unwrap(profiles().Create(J(R"({"id": "p2"})")));
  {
    storage::WriteBatch batch(store());
    const std::vector<std::string> targets = {"p1", "p2", "gone"};
    log.AddPending(&batch, "api-key", "events.trackBatch", &targets, 2);
    ASSERT_TRUE(store().Write(&batch).ok());
  }
  Reopen();
  EXPECT_TRUE(PendingKeys(store()).empty());
  Json v = Unwrap(audit().Verify());
  EXPECT_TRUE(v.Find("ok")->as_bool()) << v.Dump();
  items = *Unwrap(audit().List(J(R"({"operation": "events.trackBatch"})"))).Find("items");
  ASSERT_EQ(items.size(), 1u) << items.Dump();
  EXPECT_TRUE(items.items()[0].Find("recovered")->as_bool());
  // A profile that is gone (an erasure the crash kept from redacting the call) is left out, the entry redacted.
  EXPECT_EQ(items.items()[0].Find("targets")->Dump(), R"(["p1","p2"])");
  EXPECT_TRUE(items.items()[0].Find("redacted")->as_bool());
  EXPECT_EQ(items.items()[0].Find("count")->as_int(), 2);
}

// A Track's pending record names its profile. Once its entry is written the record is deleted, but its value may
// sit in a table file: the erasure's purge compacts the records' range, so no file holds the id afterwards. For the
// erasure's window no change puts a complete record (its line, deleted with the next group, names the profile).
TEST_F(AuditTest, AnErasureLeavesNoPendingRecordNamingThePerson) {
  const std::string id = "pend" + std::to_string(std::random_device{}()) + "z";
  Unwrap(profiles().Create(J(R"({"id": ")" + id + R"("})")));
  Unwrap(events().Track(J(R"({"type": "page_view", "profileId": ")" + id + R"("})")));
  ASSERT_TRUE(engine_->Flush().ok());  // the record, still live, in a table file
  ASSERT_TRUE(audit().Verify().ok());  // the entry written, the record deleted
  ASSERT_TRUE(engine_->Flush().ok());
  auto& log = static_cast<internal::EngineImpl&>(*engine_).audit_log();
  EXPECT_TRUE(log.complete_records_allowed());
  Unwrap(engine_->gdpr().Erase(id));
  EXPECT_FALSE(log.complete_records_allowed());
  ASSERT_TRUE(engine_->Flush().ok());
  EXPECT_EQ(testing::FilesHolding(dir_.path(), id), std::vector<std::string>{});
}

// A failed write of the held entries (the writer thread's) keeps them held: the next write writes them all, the
// chain verifies, and they are there after a reopen.
TEST_F(AuditTest, AFailedWriteOfTheHeldEntriesKeepsThemForTheNextWrite) {
  Unwrap(profiles().Create(J(R"({"id": "held-1"})")));
  ASSERT_TRUE(audit().Verify().ok());  // what came before is written
  for (int i = 0; i < 5; ++i) Unwrap(events().Track(J(R"({"type": "page_view", "profileId": "held-1"})")));
  {
    storage::ScopedWriteFailures fail(1, storage::ScopedWriteFailures::kAnyThread);
    EXPECT_EQ(audit().Verify().status().code(), StatusCode::kUnavailable);  // its Flush: the held write failed
  }
  auto tracks = [&] { return Unwrap(audit().List(J(R"({"operation": "events.track"})"))).Find("items")->size(); };
  EXPECT_EQ(tracks(), 5u);
  Json v = Unwrap(audit().Verify());
  EXPECT_TRUE(v.Find("ok")->as_bool()) << v.Dump();
  Reopen();
  EXPECT_EQ(tracks(), 5u);
  v = Unwrap(audit().Verify());
  EXPECT_TRUE(v.Find("ok")->as_bool()) << v.Dump();
}

// The same from AuditLog::kBulkFrom held entries, which are written as a bulk load.
TEST_F(AuditTest, AFailedBulkWriteOfTheHeldEntriesKeepsThemForTheNextWrite) {
  Unwrap(profiles().Create(J(R"({"id": "held-2"})")));
  ASSERT_TRUE(audit().Verify().ok());
  const size_t n = internal::AuditLog::kBulkFrom + 100;
  for (size_t i = 0; i < n; ++i) Unwrap(events().Track(J(R"({"type": "page_view", "profileId": "held-2"})")));
  {
    storage::ScopedWriteFailures fail(1, storage::ScopedWriteFailures::kAnyThread,
                                      storage::ScopedWriteFailures::kBulkLoads);
    EXPECT_EQ(audit().Verify().status().code(), StatusCode::kUnavailable);
  }
  auto tracks = [&] {  // all pages
    size_t count = 0;
    Json filter = J(R"({"operation": "events.track", "limit": 1000})");
    for (int page = 0; page < 10; ++page) {
      Json answer = Unwrap(audit().List(filter));
      count += answer.Find("items")->size();
      const Json* next = answer.Find("nextCursor");
      if (next == nullptr || !next->is_int()) break;
      filter.Set("cursor", *next);
    }
    return count;
  };
  EXPECT_EQ(tracks(), n);
  Json v = Unwrap(audit().Verify());
  EXPECT_TRUE(v.Find("ok")->as_bool()) << v.Dump();
  Reopen();
  EXPECT_EQ(tracks(), n);
}

// An erasure whose write fails erases nobody: the person's entries still name them and are found by target (their
// index keys held in memory were dropped by the redaction, and come back), and their next call is chained naming
// them (not redacted as a call racing a real erasure is).
TEST_F(AuditTest, AnErasureWhoseWriteFailsRedactsNothing) {
  const std::string id = "keep" + std::to_string(std::random_device{}()) + "z";
  Unwrap(profiles().Create(J(R"({"id": ")" + id + R"("})")));
  Unwrap(events().Track(J(R"({"type": "page_view", "profileId": ")" + id + R"("})")));
  const std::string by_target = R"({"target": ")" + id + R"("})";
  const size_t before = Unwrap(audit().List(J(by_target))).Find("items")->size();
  ASSERT_GE(before, 2u);  // the create and the track
  {
    storage::ScopedWriteFailures fail(1);
    EXPECT_EQ(engine_->gdpr().Erase(id).status().code(), StatusCode::kUnavailable);
  }
  EXPECT_TRUE(profiles().Get(id).ok());
  Unwrap(events().Track(J(R"({"type": "page_view", "profileId": ")" + id + R"("})")));
  Json items = *Unwrap(audit().List(J(by_target))).Find("items");
  EXPECT_GE(items.size(), before + 1) << items.Dump();
  for (const Json& item : items.items()) {
    EXPECT_EQ(item.Find("redacted"), nullptr) << item.Dump();
    EXPECT_NE(item.Find("targets")->Dump().find(id), std::string::npos) << item.Dump();
  }
  Json v = Unwrap(audit().Verify());
  EXPECT_TRUE(v.Find("ok")->as_bool()) << v.Dump();
}

// CancelRedaction puts back the held entries a Redact redacted: an entry naming the person, chained but not yet
// written when an erasure that then failed redacted the log, is written as it was (naming them, not marked
// redacted), is found by target, and the chain verifies. Redact flushes first, so such an entry is one chained in
// between; here Redact runs without that Flush (a test switch) so that one is held for certain.
TEST_F(AuditTest, ACancelledRedactionPutsBackTheHeldEntriesItRedacted) {
  auto& log = static_cast<internal::EngineImpl&>(*engine_).audit_log();
  const std::string id = "held" + std::to_string(std::random_device{}()) + "z";
  Unwrap(profiles().Create(J(R"({"id": ")" + id + R"("})")));
  ASSERT_TRUE(log.Flush().ok());
  ASSERT_EQ(log.held_entries(), 0u);
  ASSERT_TRUE(log.Append("api-key", "events.trackBatch", {id, "someone-else"}, Status::OK(), 2).ok());
  for (int i = 0; i < 500 && log.held_entries() == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));  // the writer thread chains it
  }
  ASSERT_EQ(log.held_entries(), 1u) << "chained, not written";
  internal::AuditLog::Redaction undo;
  {
    storage::WriteBatch batch(store());  // the erasure's batch: never written, as if its write failed
    log.set_redact_flushes(false);
    Status redacted = log.Redact(&batch, {id}, &undo);
    log.set_redact_flushes(true);
    ASSERT_TRUE(redacted.ok()) << redacted.ToString();
  }
  ASSERT_EQ(undo.entries.size(), 1u) << "the held entry was redacted";
  log.CancelRedaction(std::move(undo));

  Json items = *Unwrap(audit().List(J(R"({"operation": "events.trackBatch"})"))).Find("items");
  ASSERT_EQ(items.size(), 1u);
  EXPECT_EQ(items.items()[0].Find("targets")->Dump(), "[\"" + id + "\",\"someone-else\"]");
  EXPECT_EQ(items.items()[0].Find("redacted"), nullptr) << items.items()[0].Dump();
  auto operations_naming = [&] {  // found by target (the lists themselves are audited, naming what they found)
    std::multiset<std::string> ops;
    const Json found = Unwrap(audit().List(J(R"({"target": ")" + id + R"("})")));
    for (const Json& item : found.Find("items")->items()) {
      if (item.Find("operation")->as_string() != "audit.list") ops.insert(item.Find("operation")->as_string());
    }
    return ops;
  };
  const std::multiset<std::string> expected{"events.trackBatch", "profiles.create"};
  EXPECT_EQ(operations_naming(), expected);
  Json v = Unwrap(audit().Verify());
  EXPECT_TRUE(v.Find("ok")->as_bool()) << v.Dump();
  Reopen();
  EXPECT_EQ(operations_naming(), expected);
}

// A call on a person that returns after their erasure redacted the log (a batch whose write landed just before it)
// is chained without the erased id, marked redacted; the chain verifies and no file holds the id.
TEST_F(AuditTest, ACallThatReturnsAfterTheErasureIsChainedWithoutThePerson) {
  const std::string id = "late" + std::to_string(std::random_device{}()) + "z";
  Unwrap(profiles().Create(J(R"({"id": ")" + id + R"("})")));
  Unwrap(engine_->gdpr().Erase(id));
  auto& log = static_cast<internal::EngineImpl&>(*engine_).audit_log();
  ASSERT_TRUE(log.Append("api-key", "events.trackBatch", {id, "someone-else"}, Status::OK(), 2).ok());
  Json v = Unwrap(audit().Verify());
  EXPECT_TRUE(v.Find("ok")->as_bool()) << v.Dump();
  Json items = *Unwrap(audit().List(J(R"({"operation": "events.trackBatch"})"))).Find("items");
  ASSERT_EQ(items.size(), 1u);
  EXPECT_EQ(items.items()[0].Find("targets")->Dump(), R"(["someone-else"])");
  EXPECT_TRUE(items.items()[0].Find("redacted")->as_bool());
  EXPECT_EQ(Unwrap(audit().List(J(R"({"target": ")" + id + R"("})"))).Find("items")->size(), 0u);
  ASSERT_TRUE(engine_->Flush().ok());
  EXPECT_EQ(testing::FilesHolding(dir_.path(), id), std::vector<std::string>{});
}

// Long after an erasure (a reopen: the ids Redact keeps in memory are gone), calls that name the erased profile id
// are refused or find nothing, and their entries name no target: a failed call's entry never names what the caller
// asked for, and a call that succeeds cannot name an erased id (suppression refuses creating it again).
// The target index is held in memory and written out in bulk (engine/audit_log.h, Storage): with a limit of 4 keys,
// the entries naming a person are found by target whether their keys were written out or are still held, after a
// reopen (held keys rebuilt from the entries), and an erasure removes both, from every file too.
TEST_F(AuditTest, TheTargetIndexWrittenOutAndHeldAnswersAsOne) {
  auto& impl = static_cast<internal::EngineImpl&>(*engine_);
  impl.audit_log().set_index_held_limit(4);
  const std::string id = "idx" + std::to_string(std::random_device{}()) + "z";
  const std::string other =
      Unwrap(profiles().Create(J(R"({"externalIds": {"email": "o@example.com"}})"))).Find("id")->as_string();
  Unwrap(profiles().Create(J(R"({"id": ")" + id + R"(", "externalIds": {"email": "p@example.com"}})")));
  for (int i = 0; i < 10; ++i) {  // 22 keys with the creates: written out at 4, 8, ..., 20; two held
    Unwrap(profiles().Get(id));
    Unwrap(profiles().Get(other));
    ASSERT_TRUE(impl.audit_log().Flush().ok());  // a group each: the limit is crossed every other round
  }
  // Some of the person's index keys are in storage now (written out), the last ones are held.
  auto stored = [&](const std::string& target) {
    size_t n = 0;
    const std::string prefix = storage::AuditTargetPrefix(target);
    auto iter = store().NewIterator(storage::Cf::kPrivacy, prefix, storage::PrefixSuccessor(prefix));
    for (iter->Seek(prefix); iter->Valid(); iter->Next()) ++n;
    return n;
  };
  EXPECT_GT(stored(id), 0u);
  EXPECT_LT(stored(id), 11u);
  auto by_target = [&](const std::string& target) {
    return Unwrap(audit().List(J(R"({"target": ")" + target + R"(", "limit": 1000})"))).Find("items")->size();
  };
  EXPECT_EQ(by_target(id), 11u);  // the create and ten reads
  EXPECT_EQ(by_target(other), 11u);
  Reopen();                       // the held keys are gone with the process: rebuilt from the entries after the marker
  EXPECT_EQ(by_target(id), 12u);  // and the list just made (audit.list names whose trail it read)
  EXPECT_EQ(by_target(other), 12u);
  static_cast<internal::EngineImpl&>(*engine_).audit_log().set_index_held_limit(4);
  Unwrap(engine_->gdpr().Erase(id));
  EXPECT_EQ(by_target(id), 0u);
  EXPECT_EQ(stored(id), 0u);
  EXPECT_EQ(by_target(other), 13u);
  Json v = Unwrap(audit().Verify());
  EXPECT_TRUE(v.Find("ok")->as_bool()) << v.Dump();
  EXPECT_EQ(v.Find("redacted")->as_int(), 13);
  ASSERT_TRUE(engine_->Flush().ok());
  EXPECT_EQ(testing::FilesHolding(dir_.path(), id), std::vector<std::string>{});
}

TEST_F(AuditTest, CallsNamingAnErasedIdLongAfterTheErasureAreChainedWithoutIt) {
  const std::string id = "gone" + std::to_string(std::random_device{}()) + "z";
  const std::string other =
      Unwrap(profiles().Create(J(R"({"externalIds": {"email": "other@example.com"}})"))).Find("id")->as_string();
  Unwrap(profiles().Create(J(R"({"id": ")" + id + R"(", "externalIds": {"email": "gone@example.com"}})")));
  Unwrap(events().Track(J(R"({"type": "page_view", "profileId": ")" + id + R"("})")));
  Unwrap(engine_->gdpr().Erase(id));
  Reopen();
  const Json names_it = J(R"({"profileId": ")" + id + R"("})");
  EXPECT_FALSE(profiles().Get(id).ok());
  EXPECT_FALSE(profiles().Patch(id, J(R"({"attributes": {"city": "Oslo"}})")).ok());
  EXPECT_FALSE(profiles().Replace(id, J(R"({"attributes": {"city": "Oslo"}})")).ok());
  EXPECT_FALSE(profiles().Create(J(R"({"id": ")" + id + R"("})")).ok());
  EXPECT_FALSE(profiles().Delete(id).ok());
  EXPECT_FALSE(profiles().Sessions(id).ok());
  auto timeline = profiles().Timeline(id, EventQuery{});
  EXPECT_TRUE(!timeline.ok() || timeline->items.empty());
  EXPECT_FALSE(events().Track(J(R"({"type": "page_view", "profileId": ")" + id + R"("})")).ok());
  BatchResult batch = Unwrap(events().TrackBatch({J(R"({"type": "page_view", "profileId": ")" + id + R"("})"),
                                                  J(R"({"type": "page_view", "profileId": ")" + other + R"("})")}));
  EXPECT_FALSE(batch.items[0].status.ok());
  EXPECT_TRUE(batch.items[1].status.ok());
  EventQuery query;
  query.profile_id = id;
  auto events_found = events().Query(query);
  EXPECT_TRUE(!events_found.ok() || events_found->items.empty());
  EXPECT_FALSE(engine_->consent().Get(id).ok());
  EXPECT_FALSE(engine_->consent()
                   .Record(J(R"({"profileId": ")" + id + R"(", "purposes": {"email": "granted"}, "source": "t"})"))
                   .ok());
  EXPECT_FALSE(engine_->gdpr().Export(id).ok());
  EXPECT_FALSE(engine_->gdpr().Erase(id).ok());
  EXPECT_FALSE(engine_->identity().Explain(id).ok());
  EXPECT_FALSE(engine_->identity().Merge({other, id}, "test").ok());
  EXPECT_FALSE(engine_->identity().Unmerge(id, "mrg_none").ok());
  EXPECT_FALSE(engine_->identity().Identify(names_it).ok());
  Json v = Unwrap(audit().Verify());
  EXPECT_TRUE(v.Find("ok")->as_bool()) << v.Dump();
  EXPECT_EQ(Unwrap(audit().List(J(R"({"target": ")" + id + R"("})"))).Find("items")->size(), 0u);
  // The calls were recorded (refusals too), with the batch naming only the profile it stored an event for.
  Json batches = *Unwrap(audit().List(J(R"({"operation": "events.trackBatch"})"))).Find("items");
  ASSERT_EQ(batches.size(), 1u);
  EXPECT_EQ(batches.items()[0].Find("targets")->Dump(), "[\"" + other + "\"]");
  EXPECT_EQ(Unwrap(audit().List(J(R"({"operation": "profiles.get"})"))).Find("items")->size(), 1u);
  ASSERT_TRUE(engine_->Flush().ok());
  EXPECT_EQ(testing::FilesHolding(dir_.path(), id), std::vector<std::string>{});
}

// A journal line is built as text: it must be the JSON a Json tree of the call gives, escaping included, with
// every optional field, and read back to the same call.
TEST(AuditJournalTest, ALineIsTheCallsJson) {
  testing::TempDir dir;
  auto engine = Unwrap(Engine::Open(Options(), dir.path()));
  internal::AuditLog& log = static_cast<internal::EngineImpl&>(*engine).audit_log();
  internal::AuditLog::Call call;
  call.principal = "key \"q\" \\ \x01 \u00e9\u4e2d";
  call.operation = "events.trackBatch";
  call.outcome = "invalid_argument";
  call.at_us = 1767225600000001;
  for (int with_optional = 0; with_optional < 2; ++with_optional) {
    if (with_optional == 1) {
      call.resource = "seg_\n1";
      call.count = 500;
      call.pending_key = storage::AuditPendingKey(4242);
      call.targets = {"p-1", "p\t2", ""};
    }
    Json expected = Json::Object();
    expected.Set("principal", call.principal);
    expected.Set("operation", call.operation);
    if (!call.resource.empty()) expected.Set("resource", call.resource);
    expected.Set("outcome", call.outcome);
    if (call.count > 0) expected.Set("count", call.count);
    expected.Set("at", call.at_us);
    if (!call.pending_key.empty()) expected.Set("pending", 4242);
    Json targets = Json::Array();
    for (const std::string& t : call.targets) targets.Push(t);
    expected.Set("targets", std::move(targets));
    const std::string line = log.JournalLine(call);
    ASSERT_EQ(line.back(), '\n');
    const std::string json = line.substr(0, line.find('\t'));
    EXPECT_EQ(json, expected.Dump());
    EXPECT_EQ(Unwrap(Json::Parse(json)), expected);
    EXPECT_EQ(log.Authentic("journal", line.substr(0, line.size() - 1)), json);
  }
}

// Journal lines carry a MAC under the database's key. A line damaged by a failed write or a power loss, altered,
// forged, or without a MAC is not chained: one "audit.recoveryRefused" entry counts them; the database still
// opens and chains the genuine lines, and the journal is gone afterwards.
TEST(AuditJournalTest, DamagedAlteredAndForgedLinesAreRefusedAndCountedTheRestChained) {
  testing::TempDir dir;
  std::string line, other;
  {
    auto engine = Unwrap(Engine::Open(Options(), dir.path()));
    Unwrap(engine->profiles().Create(J(R"({"id": "p-1"})")));  // a recovered call naming no profile is redacted
    internal::AuditLog::Call call;
    call.principal = "api-key";
    call.operation = "profiles.get";
    call.outcome = "ok";
    call.at_us = 1767225600000000;
    call.targets = {"p-1"};
    line = static_cast<internal::EngineImpl&>(*engine).audit_log().JournalLine(call);
    call.principal = "bob";
    other = static_cast<internal::EngineImpl&>(*engine).audit_log().JournalLine(call);
  }
  ASSERT_EQ(line.back(), '\n');
  const std::string json = line.substr(0, line.find('\t'));
  std::string altered = line;
  altered.replace(altered.find("api-key"), 7, "mallory");  // the MAC is the genuine line's
  std::string swapped = other.substr(0, other.find('\t')) + line.substr(line.find('\t'));  // another line's MAC
  std::ofstream(dir.path() + "/cdp-audit/journal-00000000000000000777") << line << line.substr(0, 40) << "\n"
                                                                        << line << altered << swapped << json << "\n"
                                                                        << "{\"torn";
  auto engine = Unwrap(Engine::Open(Options(), dir.path()));
  Json v = Unwrap(engine->audit().Verify());
  EXPECT_TRUE(v.Find("ok")->as_bool()) << v.Dump();
  EXPECT_EQ(Unwrap(engine->audit().List(J(R"({"target": "p-1", "operation": "profiles.get"})"))).Find("items")->size(),
            2u);
  EXPECT_EQ(Unwrap(engine->audit().List(J(R"({"principal": "mallory"})"))).Find("items")->size(), 0u);
  EXPECT_EQ(Unwrap(engine->audit().List(J(R"({"principal": "bob"})"))).Find("items")->size(), 0u);
  Json refused = *Unwrap(engine->audit().List(J(R"({"operation": "audit.recoveryRefused"})"))).Find("items");
  ASSERT_EQ(refused.size(), 1u) << refused.Dump();
  EXPECT_EQ(refused.items()[0].Find("count")->as_int(), 4);  // damaged, altered, swapped, without a MAC
  EXPECT_EQ(refused.items()[0].Find("outcome")->as_string(), "data_loss");
  EXPECT_FALSE(std::filesystem::exists(dir.path() + "/cdp-audit/journal-00000000000000000777"));
}

// A pending record written without the key (forged, or altered) is not chained: it is deleted with the entry
// that counts it.
TEST_F(AuditTest, AForgedPendingRecordIsRefused) {
  std::string genuine_key;
  {
    storage::WriteBatch batch(store());
    genuine_key =
        static_cast<internal::EngineImpl&>(*engine_).audit_log().AddPending(&batch, "api-key", "profiles.patch");
    batch.Put(storage::Cf::kPrivacy, storage::AuditPendingKey(777),
              R"({"principal":"mallory","operation":"profiles.delete","at":1704067200000000})");
    ASSERT_TRUE(store().Write(&batch).ok());
  }
  std::string value;
  ASSERT_TRUE(store().Get(storage::Cf::kPrivacy, genuine_key, &value).ok());
  {
    storage::WriteBatch batch(store());  // the genuine record, altered: its MAC no longer holds
    std::string altered = value;
    altered.replace(altered.find("api-key"), 7, "mallory");
    batch.Put(storage::Cf::kPrivacy, storage::AuditPendingKey(778), value);  // a genuine record moved: refused too
    batch.Put(storage::Cf::kPrivacy, genuine_key, altered);
    ASSERT_TRUE(store().Write(&batch).ok());
  }
  ASSERT_EQ(PendingKeys(store()).size(), 3u);
  Reopen();
  EXPECT_TRUE(PendingKeys(store()).empty());
  Json v = Unwrap(audit().Verify());
  EXPECT_TRUE(v.Find("ok")->as_bool()) << v.Dump();
  EXPECT_EQ(Unwrap(audit().List(J(R"({"principal": "mallory"})"))).Find("items")->size(), 0u);
  EXPECT_EQ(Unwrap(audit().List(J(R"({"operation": "profiles.patch"})"))).Find("items")->size(), 0u);
  Json refused = *Unwrap(audit().List(J(R"({"operation": "audit.recoveryRefused"})"))).Find("items");
  ASSERT_EQ(refused.size(), 1u) << refused.Dump();
  EXPECT_EQ(refused.items()[0].Find("count")->as_int(), 3);
}

// The writer of ACrashBeforeTheEntryIsWrittenKeepsTheChange, run in a child process (not on its own): tracks
// events until the log's writer still holds an entry back, writes the number of pending records it sees to a file
// and exits without closing (as a kill -9 would: the entries still queued are lost with the process).
TEST(AuditChild, DISABLED_TrackAndExitBeforeTheEntryIsWritten) {
  Options options;
  auto engine = Unwrap(Engine::Open(options, testing::ChildEnv("CDP_TEST_DIR")));
  auto& store = static_cast<internal::EngineImpl&>(*engine).store();
  ScopedPrincipal writer("api-key");
  for (int i = 0; i < 100; ++i) {
    if (!engine->events().Track(J(R"({"type": "page_view", "customerId": "c1"})")).ok()) _exit(3);
    const size_t pending = PendingKeys(store).size();
    if (pending > 0) {
      std::ofstream(testing::ChildEnv("CDP_TEST_DIR") + "/pending-count") << pending;
      _exit(0);
    }
  }
  _exit(4);  // the writer never held an entry back
}

// A crash after a change and before its entry is written: the next open chains the entry from the pending record
// the change's own write carried (a Track's is complete: it names the profile), and the chain verifies.
TEST(AuditCrashTest, ACrashBeforeTheEntryIsWrittenKeepsTheChange) {
  testing::TempDir dir;
  ASSERT_TRUE(
      testing::RunTestChild("AuditChild.DISABLED_TrackAndExitBeforeTheEntryIsWritten", {{"CDP_TEST_DIR", dir.path()}}));
  int64_t pending = 0;
  std::ifstream(dir.path() + "/pending-count") >> pending;
  ASSERT_GT(pending, 0);
  // A Track's pending record names its profile: the calls wrote no journal line.
  for (const auto& f : std::filesystem::directory_iterator(dir.path() + "/cdp-audit")) {
    EXPECT_EQ(f.file_size(), 0u) << f.path();
  }
  Options options;
  auto engine = Unwrap(Engine::Open(options, dir.path()));
  EXPECT_TRUE(PendingKeys(static_cast<internal::EngineImpl&>(*engine).store()).empty());
  Json v = Unwrap(engine->audit().Verify());
  EXPECT_TRUE(v.Find("ok")->as_bool()) << v.Dump();
  Json entries = Unwrap(engine->audit().List(J(R"({"limit": 1000})")));
  EventQuery one;
  one.limit = 1;
  const std::string c1 = Unwrap(engine->events().Query(one)).items.at(0).Find("profileId")->as_string();
  int64_t recovered = 0;
  for (const Json& e : entries.Find("items")->items()) {
    if (e.Find("recovered") == nullptr) continue;
    ++recovered;
    EXPECT_EQ(e.Find("operation")->as_string(), "events.track") << e.Dump();
    EXPECT_EQ(e.Find("principal")->as_string(), "api-key") << e.Dump();
    EXPECT_EQ(e.Find("outcome")->as_string(), "ok") << e.Dump();
    // The profile c1 resolved to, from the pending record.
    ASSERT_EQ(e.Find("targets")->size(), 1u) << e.Dump();
    EXPECT_EQ(e.Find("targets")->items()[0].as_string(), c1) << e.Dump();
  }
  EXPECT_EQ(recovered, pending) << entries.Dump();
  EXPECT_TRUE(PendingKeys(static_cast<internal::EngineImpl&>(*engine).store()).empty());
  // Every change the child made is an entry: recovered or written before the crash.
  int64_t tracks = 0;
  for (const Json& e : entries.Find("items")->items()) tracks += e.Find("operation")->as_string() == "events.track";
  EventQuery q;
  q.limit = 1000;
  EXPECT_EQ(tracks, static_cast<int64_t>(Unwrap(engine->events().Query(q)).items.size()));
}

// The reader of ACrashKeepsTheReadsAndRefusalsJustMade, run in a child process (not on its own): creates a profile,
// reads it three times, is refused once, and exits without closing, before the log's writer has chained the reads
// (they are held back up to kReadDelayMs; the child checks that at least one still was, else does it again).
TEST(AuditChild, DISABLED_ReadAndExitBeforeTheEntriesAreWritten) {
  Options options;
  auto engine = Unwrap(Engine::Open(options, testing::ChildEnv("CDP_TEST_DIR")));
  ScopedPrincipal reader("api-key");
  auto created = engine->profiles().Create(J(R"({"id": "reader-target", "attributes": {"city": "Oslo"}})"));
  if (!created.ok() || !engine->audit().Verify().ok()) _exit(3);  // Verify writes everything queued so far
  // A round is three reads and a refusal; another round follows while the writer chained them all (this machine
  // stalled for kReadDelayMs), so that the child exits with calls not yet chained.
  for (int round = 1; round <= 20; ++round) {
    for (int i = 0; i < 3; ++i) {
      if (!engine->profiles().Get("reader-target").ok()) _exit(4);
    }
    {
      ScopedPrincipal stranger("nobody-defined");
      if (engine->profiles().Get("reader-target").status().code() != StatusCode::kPermissionDenied) _exit(5);
    }
    int64_t lines = 0;
    for (const auto& f : std::filesystem::directory_iterator(testing::ChildEnv("CDP_TEST_DIR") + "/cdp-audit")) {
      std::ifstream in(f.path());
      lines += std::count(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>(), '\n');
    }
    if (lines > 0) {
      std::ofstream(testing::ChildEnv("CDP_TEST_DIR") + "/journal-lines") << lines << " " << round;
      _exit(0);
    }
  }
  _exit(6);
}

// A crash right after reads and a refusal: their entries were not chained yet, but each call wrote its journal line
// before it returned, so the next open chains them (with their targets and outcomes, "recovered"), once.
TEST(AuditCrashTest, ACrashKeepsTheReadsAndRefusalsJustMade) {
  testing::TempDir dir;
  ASSERT_TRUE(testing::RunTestChild("AuditChild.DISABLED_ReadAndExitBeforeTheEntriesAreWritten",
                                    {{"CDP_TEST_DIR", dir.path()}}));
  int64_t lines = 0, rounds = 0;
  std::ifstream(dir.path() + "/journal-lines") >> lines >> rounds;
  ASSERT_GT(lines, 0);
  ASSERT_GT(rounds, 0);
  for (int open = 0; open < 2; ++open) {  // the second open finds nothing more to chain
    Options options;
    auto engine = Unwrap(Engine::Open(options, dir.path()));
    Json v = Unwrap(engine->audit().Verify());
    EXPECT_TRUE(v.Find("ok")->as_bool()) << v.Dump();
    Json entries = Unwrap(engine->audit().List(J(R"({"limit": 1000})")));
    int64_t gets = 0, refused = 0, recovered = 0;
    for (const Json& e : entries.Find("items")->items()) {
      if (e.Find("operation")->as_string() != "profiles.get") continue;
      const bool ok = e.Find("outcome")->as_string() == "ok";
      gets += ok && e.Find("principal")->as_string() == "api-key" && e.Find("targets")->items().size() == 1 &&
              e.Find("targets")->items()[0].as_string() == "reader-target";
      refused += !ok && e.Find("outcome")->as_string() == "permission_denied" &&
                 e.Find("principal")->as_string() == "nobody-defined";
      recovered += e.Find("recovered") != nullptr;
    }
    EXPECT_EQ(gets, 3 * rounds) << entries.Dump();
    EXPECT_EQ(refused, rounds) << entries.Dump();
    // The writer may have chained some lines between the child's count and its exit; none is chained twice.
    EXPECT_LE(recovered, lines) << entries.Dump();
  }
  // Closed cleanly: no journal is left to chain.
  for (const auto& f : std::filesystem::directory_iterator(dir.path() + "/cdp-audit")) {
    ADD_FAILURE() << "left behind: " << f.path();
  }
}

}  // namespace
}  // namespace cdp
