// Copyright 2026 The libcdp Authors.
//
// Erasure is physical (issue 5): after Profiles::Delete returns, no byte of the person's data remains in any file
// of the database directory - not in table files, the write-ahead log, or the logs RocksDB writes. Tested with a
// random canary string in every field and event property, found in the files before and nowhere after.

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <future>
#include <iterator>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "core/ids.h"
#include "engine/engine_impl.h"
#include "engine/segments_impl.h"
#include "storage/store.h"
#include "test_util.h"

namespace cdp {
namespace {

using testing::J;
using testing::Unwrap;

using internal::NowMicros;
using testing::FilesHolding;

class ErasureTest : public testing::EngineTest {};

TEST_F(ErasureTest, NoByteOfTheErasedPersonRemainsInAnyFile) {
  std::mt19937_64 rng(std::random_device{}());
  const std::string canary = "cnry" + std::to_string(rng()) + "x";
  const std::string other = "keep" + std::to_string(rng()) + "y";  // someone else's data must survive
  auto person = [](const std::string& c) {
    return J(R"({"externalIds": {"email": ")" + c + R"(@example.com", "customerId": ")" + c + R"(-id",
        "deviceIds": [")" +
             c + R"(-dev"]},
        "attributes": {"firstName": ")" +
             c + R"(", "lastName": ")" + c + R"(", "city": ")" + c + R"(",
                       "postalCode": ")" +
             c + R"(", "tags": [")" + c + R"("],
                       "customFields": {"note": ")" +
             c + R"(", "nested": {"deep": ")" + c + R"("}}}})");
  };
  // Segments first, so that the person's memberships are in the change feed (which names them by profile id).
  const std::string buyers =
      Unwrap(engine_->segments().Create(J(R"({"name": "buyers", "rule": {"event": "purchase"}})")))
          .Find("id")
          ->as_string();
  const std::string picked =
      Unwrap(engine_->segments().Create(J(R"({"name": "picked", "type": "manual"})"))).Find("id")->as_string();
  // The person's profile id is the caller's, and holds the canary too.
  Json input = person(canary);
  input.Set("id", canary + "-pid");
  Json p = Unwrap(profiles().Create(input));
  Json q = Unwrap(profiles().Create(person(other)));
  const std::string id = p.Find("id")->as_string();
  ASSERT_EQ(id, canary + "-pid");
  Unwrap(engine_->segments().AddMembers(picked, J(R"([")" + id + R"("])")));
  // A suppression list naming both people's emails.
  const std::string list =
      Unwrap(engine_->audiences().CreateSuppressionList(J(R"({"name": "do not email"})"))).Find("id")->as_string();
  Unwrap(engine_->audiences().AddToSuppressionList(
      list, J(R"([{"type": "email", "value": ")" + canary + R"(@example.com"}, {"type": "email", "value": ")" + other +
              R"(@example.com"}])")));
  // Events by profile id and by identifier, with the canary in every property and in the event id; a second
  // profile of the same person (a device seen first) merged into it by an identify, so a merge record holds a
  // snapshot of both documents.
  for (int i = 0; i < 40; ++i) {
    Unwrap(events().Track(J(R"({"id": ")" + canary + "-e" + std::to_string(i) +
                            R"(", "type": "purchase", "profileId": ")" + id + R"(", "timestamp": )" +
                            std::to_string(1767225600000 + i * 3600000) + R"(, "properties": {"revenue": 5,
                            "sku": ")" +
                            canary + R"(", "list": [")" + canary + R"("], "obj": {"k": ")" + canary + R"("}}})")));
  }
  // Consent statements: the canary as a custom purpose, a source and a policy version, in the document and the
  // history.
  Unwrap(engine_->consent().Record(J(R"({"profileId": ")" + id + R"(", "purposes": {")" + canary +
                                     R"(": "granted", "tracking": "granted"}, "source": ")" + canary +
                                     R"(", "policyVersion": ")" + canary + R"("})")));
  // Idempotency keys (Segment messageIds) remembered with the person's events and by RememberKey naming them;
  // and the other person's, which stays.
  const int64_t expiry = NowMicros() + 3'600'000'000;
  auto keyed = [&](const std::string& key, const std::string& note) {
    std::vector<IdempotencyKey> keys(1);
    keys[0].key = key;
    keys[0].value.Set("note", note);
    keys[0].expires_us = expiry;
    return keys;
  };
  Unwrap(events().TrackBatch({J(R"({"type": "page_view", "profileId": ")" + id + R"("})")},
                             keyed("msg/" + canary, canary)));
  Unwrap(events().TrackBatch({J(R"({"type": "page_view", "customerId": ")" + other + R"(-id"})")},
                             keyed("msg/" + other, other)));
  ASSERT_TRUE(
      events()
          .RememberKey("msg2/" + canary, R"({"profileId": ")" + id + R"(", "note": ")" + canary + R"("})", expiry)
          .ok());
  // Table files apart: the person's events, then the device's (its index keys under its own profile id, which
  // the merge below deletes), each flushed on its own.
  ASSERT_TRUE(engine_->Flush().ok());
  for (int i = 0; i < 5; ++i) {
    Unwrap(
        events().Track(J(R"({"id": ")" + canary + "-d" + std::to_string(i) + R"(", "type": "page_view",
        "deviceId": ")" + canary +
                         R"(-tablet", "source": ")" + canary + R"(", "properties": {"url": "/)" + canary + R"("}})")));
  }
  ASSERT_TRUE(engine_->Flush().ok());
  Unwrap(engine_->identity().Identify(J(R"({"identifiers": {"customerId": ")" + canary + R"(-id", "deviceId": ")" +
                                        canary + R"(-tablet"}, "attributes": {"country": ")" + canary + R"("}})")));
  Unwrap(events().Track(J(R"({"type": "page_view", "customerId": ")" + other + R"(-id",
      "properties": {"url": "/)" +
                          other + R"("}})")));
  // The feed holds the person's memberships (a read of it writes what the worker holds back).
  ASSERT_GE(Unwrap(engine_->segments().Changes(buyers, "", 0)).Find("changes")->size(), 1u);
  ASSERT_GE(Unwrap(engine_->segments().Changes(picked, "", 0)).Find("changes")->size(), 1u);
  ASSERT_TRUE(engine_->Flush().ok());
  ASSERT_FALSE(FilesHolding(dir_.path(), canary).empty()) << "the canary should be stored before the erasure";

  // A subscriber hears of the person's exits (its audit entry counts them, naming no erased person).
  std::atomic<int> exits{0};
  Unwrap(engine_->segments().Subscribe([&](const Json& change) {
    if (change.Find("profileId")->as_string() == id && change.Find("change")->as_string() == "exited") ++exits;
  }));
  ASSERT_TRUE(profiles().Delete(id).ok());
  for (int i = 0; i < 10'000 && exits.load() < 2; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  EXPECT_EQ(exits.load(), 2);
  EXPECT_EQ(FilesHolding(dir_.path(), canary), std::vector<std::string>{});
  // And after a restart (which replays the log and reopens the files).
  Reopen();
  EXPECT_EQ(FilesHolding(dir_.path(), canary), std::vector<std::string>{});
  EXPECT_TRUE(profiles().Get(id).status().IsNotFound());
  EXPECT_EQ(Unwrap(events().RecallKey("msg/" + canary, NowMicros())), std::nullopt);
  EXPECT_EQ(Unwrap(events().RecallKey("msg2/" + canary, NowMicros())), std::nullopt);
  // The other person is untouched.
  EXPECT_NE(Unwrap(events().RecallKey("msg/" + other, NowMicros())), std::nullopt);
  Json kept = Unwrap(profiles().Get(q.Find("id")->as_string()));
  EXPECT_EQ(kept.FindPath("attributes.firstName")->as_string(), other);
  // The list keeps both items (the person's as a keyed hash); the other person's still suppresses them.
  EXPECT_EQ(Unwrap(engine_->audiences().GetSuppressionList(list)).Find("size")->as_int(), 2);
  Json again = Unwrap(engine_->audiences().AddToSuppressionList(
      list, J(R"([{"type": "email", "value": ")" + other + R"(@example.com"}])")));
  EXPECT_EQ(again.Find("unchanged")->as_int(), 1);
  ASSERT_TRUE(engine_->Flush().ok());
  EXPECT_FALSE(FilesHolding(dir_.path(), other).empty());
}

// A person no merge ever involved: their events leave the event log through its drop filter (no tombstones), by
// rewriting only the table files that hold them. Events in several flushed files and in the memtable, interleaved in
// time with someone else's, which all stay.
TEST_F(ErasureTest, APersonsEventsLeaveTheLogWithoutTombstonesAndOthersStay) {
  std::mt19937_64 rng(std::random_device{}());
  const std::string canary = "cnrz" + std::to_string(rng()) + "q";
  const std::string other = "kepz" + std::to_string(rng()) + "w";
  const std::string id = Unwrap(profiles().Create(J(R"({"externalIds": {"email": ")" + canary + R"(@example.com"}})")))
                             .Find("id")
                             ->as_string();
  const std::string keep = Unwrap(profiles().Create(J(R"({"externalIds": {"email": ")" + other + R"(@example.com"}})")))
                               .Find("id")
                               ->as_string();
  auto track = [&](const std::string& profile, const std::string& mark, int i) {
    Unwrap(
        events().Track(J(R"({"id": ")" + mark + "-e" + std::to_string(i) + R"(", "type": "page_view", "profileId": ")" +
                         profile + R"(", "timestamp": )" + std::to_string(1767225600000 + i * 3600000) +
                         R"(, "properties": {"q": ")" + mark + R"("}})")));
  };
  for (int round = 0; round < 3; ++round) {  // three table files, then the memtable
    for (int i = 0; i < 10; ++i) {
      track(id, canary, round * 10 + i);
      track(keep, other, round * 10 + i);
    }
    ASSERT_TRUE(engine_->Flush().ok());
  }
  for (int i = 30; i < 35; ++i) {
    track(id, canary, i);
    track(keep, other, i);
  }
  ASSERT_FALSE(FilesHolding(dir_.path(), canary).empty());
  Status erased = profiles().Delete(id);
  ASSERT_TRUE(erased.ok()) << erased.ToString();
  EXPECT_EQ(FilesHolding(dir_.path(), canary), std::vector<std::string>{});
  EventQuery all;
  all.limit = 1000;
  Page page = Unwrap(events().Query(all));
  ASSERT_EQ(page.items.size(), 35u);
  for (const Json& e : page.items) EXPECT_EQ(e.Find("profileId")->as_string(), keep);
  Reopen();
  EXPECT_EQ(FilesHolding(dir_.path(), canary), std::vector<std::string>{});
  EXPECT_EQ(Unwrap(events().Query(all)).items.size(), 35u);
  EXPECT_EQ(Unwrap(profiles().Timeline(keep, {})).items.size(), 35u);
  ASSERT_TRUE(engine_->Flush().ok());
  EXPECT_FALSE(FilesHolding(dir_.path(), other).empty());
}

// Two erasures at once: their rewrites of the event log's files take turns, and both finish.
TEST_F(ErasureTest, TwoErasuresAtOnceBothFinish) {
  std::mt19937_64 rng(std::random_device{}());
  std::vector<std::string> canaries, ids;
  for (int p = 0; p < 2; ++p) {
    canaries.push_back("cnrw" + std::to_string(rng()) + "v");
    ids.push_back(Unwrap(profiles().Create(J(R"({"externalIds": {"email": ")" + canaries[p] + R"(@example.com"}})")))
                      .Find("id")
                      ->as_string());
  }
  for (int round = 0; round < 3; ++round) {
    for (int i = 0; i < 10; ++i) {
      for (int p = 0; p < 2; ++p) {
        Unwrap(events().Track(J(R"({"type": "page_view", "profileId": ")" + ids[p] + R"(", "timestamp": )" +
                                std::to_string(1767225600000 + (round * 10 + i) * 3600000) +
                                R"(, "properties": {"q": ")" + canaries[p] + R"("}})")));
      }
    }
    ASSERT_TRUE(engine_->Flush().ok());
  }
  Status results[2];
  std::thread a([&] { results[0] = profiles().Delete(ids[0]); });
  std::thread b([&] { results[1] = profiles().Delete(ids[1]); });
  a.join();
  b.join();
  for (int p = 0; p < 2; ++p) {
    EXPECT_TRUE(results[p].ok()) << results[p].ToString();
    EXPECT_EQ(FilesHolding(dir_.path(), canaries[p]), std::vector<std::string>{});
  }
  EXPECT_TRUE(Unwrap(events().Query(EventQuery{})).items.empty());
}

// The canary scan itself: in a compressed table file a string is not stored as its bytes. FilesHolding must still
// find a canary that is there, or every "no file holds it" above could pass falsely. (A small database's data is in
// L1 after a purge, compressed only with Options::compress_recent_tables.)
TEST(CanaryScanTest, FindsDataInCompressedTableFiles) {
  testing::TempDir dir;
  const std::string canary = "scan" + std::to_string(std::random_device{}()) + "z";
  {
    Options options;
    options.compress_recent_tables = true;
    auto engine = Unwrap(Engine::Open(options, dir.path()));
    for (int i = 0; i < 50; ++i) {
      Unwrap(engine->profiles().Create(J(R"({"attributes": {"firstName": "name)" + std::to_string(i) + R"("}})")));
    }
    Unwrap(engine->profiles().Create(J(R"({"attributes": {"firstName": ")" + canary + R"("}})")));
    ASSERT_TRUE(engine->Flush().ok());
    auto& impl = static_cast<internal::EngineImpl&>(*engine);
    storage::WriteBatch nothing(impl.store());
    std::vector<storage::Cf> all;
    for (int cf = 0; cf < static_cast<int>(storage::Cf::kCount); ++cf) all.push_back(static_cast<storage::Cf>(cf));
    ASSERT_TRUE(impl.store().Purge(&nothing, all).ok());  // every column family to the last level
  }
  // The bytes alone do not show it (compressed); the decompressed table does.
  bool raw = false;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(dir.path())) {
    if (!entry.is_regular_file()) continue;
    std::ifstream in(entry.path(), std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    raw |= bytes.find(canary) != std::string::npos;
  }
  EXPECT_FALSE(raw) << "the profile's table file is expected to be compressed";
  EXPECT_FALSE(FilesHolding(dir.path(), canary).empty());
}

// By default the newest table files (a flush's, L0) are stored as written: the canary's bytes are in one.
TEST(CanaryScanTest, RecentTablesAreStoredAsWrittenByDefault) {
  testing::TempDir dir;
  const std::string canary = "raw" + std::to_string(std::random_device{}()) + "z";
  {
    auto engine = Unwrap(Engine::Open(Options(), dir.path()));
    Unwrap(engine->profiles().Create(J(R"({"attributes": {"firstName": ")" + canary + R"("}})")));
    ASSERT_TRUE(engine->Flush().ok());
  }
  bool raw = false;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(dir.path())) {
    if (!entry.is_regular_file() || entry.path().extension() != ".sst") continue;
    std::ifstream in(entry.path(), std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    raw |= bytes.find(canary) != std::string::npos;
  }
  EXPECT_TRUE(raw) << "no table file holds the canary as written";
}

// At open the segments' worker builds the index (a minute for millions of profiles), holding the segments' lock.
// An erasure meanwhile neither waits for it nor lets what the build records about the person reach storage after
// its purge: the build is held (before it records the memberships it established) until the erasure has returned.
class ErasureDuringBuildTest : public ::testing::TestWithParam<int> {};

// Held before the build records what it established (1), or after it applied the notes made during it, as it ends
// (3): an erasure then leaves its note for the build to apply after the hold.
INSTANTIATE_TEST_SUITE_P(HoldPoints, ErasureDuringBuildTest, ::testing::Values(1, 3));

TEST_P(ErasureDuringBuildTest, DoesNotWaitForTheSegmentIndexAndLeavesNothing) {
  const int hold = GetParam();
  testing::TempDir dir;
  const std::string canary = "bld" + std::to_string(std::random_device{}()) + "q";
  const std::string pid = canary + "-pid";
  std::string viewers, picked, other;
  {
    auto engine = Unwrap(Engine::Open(Options(), dir.path()));
    viewers = Unwrap(engine->segments().Create(J(R"({"name": "viewers", "rule": {"event": "page_view"}})")))
                  .Find("id")
                  ->as_string();
    picked = Unwrap(engine->segments().Create(J(R"({"name": "picked", "type": "manual"})"))).Find("id")->as_string();
    Unwrap(
        engine->profiles().Create(J(R"({"id": ")" + pid + R"(", "attributes": {"firstName": ")" + canary + R"("}})")));
    other = Unwrap(engine->profiles().Create(J(R"({"attributes": {"firstName": "Other"}})"))).Find("id")->as_string();
    for (const std::string& id : {pid, other}) {
      Unwrap(engine->events().Track(J(R"({"type": "page_view", "profileId": ")" + id + R"("})")));
    }
    Unwrap(engine->segments().AddMembers(picked, J(R"([")" + pid + R"(", ")" + other + R"("])")));
    ASSERT_EQ(Unwrap(engine->segments().Changes(viewers, "", 0)).Find("changes")->size(), 2u);
  }
  internal::g_hold_segment_build_for_testing = hold;
  auto engine = Unwrap(Engine::Open(Options(), dir.path()));
  for (int i = 0; i < 60'000 && internal::g_hold_segment_build_for_testing.load() != hold + 1; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ASSERT_EQ(internal::g_hold_segment_build_for_testing.load(), hold + 1) << "the build should have reached its hold";
  std::vector<std::string> delivered;  // subscribers still hear of the person's exits
  std::mutex delivered_mu;
  Unwrap(engine->segments().Subscribe([&](const Json& change) {
    std::lock_guard<std::mutex> lock(delivered_mu);
    if (change.Find("profileId")->as_string() == pid) delivered.push_back(change.Find("change")->as_string());
  }));
  auto erasure = std::async(std::launch::async, [&] { return engine->profiles().Delete(pid); });
  const bool returned = erasure.wait_for(std::chrono::seconds(60)) == std::future_status::ready;
  // Physical when it returns, the build still held (its scans' iterators, which would keep the files the purge
  // replaced, are closed by then).
  std::vector<std::string> holding = FilesHolding(dir.path(), canary);
  internal::g_hold_segment_build_for_testing = 0;  // the build goes on (and records)
  EXPECT_TRUE(returned) << "the erasure waited for the segment index";
  ASSERT_TRUE(erasure.get().ok());
  EXPECT_EQ(holding, std::vector<std::string>{});
  for (const std::string& segment : {viewers, picked}) {
    std::vector<std::string> members;
    for (const Json& m : Unwrap(engine->segments().Members(segment, 10, "")).items) {
      members.push_back(m.Find("id")->as_string());
    }
    EXPECT_EQ(members, std::vector<std::string>{other}) << segment;
    const Json feed = Unwrap(engine->segments().Changes(segment, "", 0));
    for (const Json& change : feed.Find("changes")->items()) {
      EXPECT_NE(change.Find("profileId")->as_string(), pid) << change.Dump();
    }
  }
  ASSERT_TRUE(engine->Flush().ok());
  EXPECT_EQ(FilesHolding(dir.path(), canary), std::vector<std::string>{});
  engine.reset();  // the worker writes what it held back, and the subscribers get every change
  {
    std::lock_guard<std::mutex> lock(delivered_mu);
    EXPECT_EQ(delivered, (std::vector<std::string>{"exited", "exited"}));
  }
  EXPECT_EQ(FilesHolding(dir.path(), canary), std::vector<std::string>{});
  engine = Unwrap(Engine::Open(Options(), dir.path()));
  EXPECT_EQ(Unwrap(engine->segments().Size(picked)), 1);
  EXPECT_EQ(Unwrap(engine->segments().Size(viewers)), 1);
  EXPECT_EQ(FilesHolding(dir.path(), canary), std::vector<std::string>{});
}

// A reader's open iterator keeps the table files it started on after a compaction replaced them; an erasure
// returns only once the files its purge replaced are deleted, so it waits for such a reader.
TEST_F(ErasureTest, WaitsForAReaderHoldingTheReplacedFilesBeforeItReturns) {
  const std::string canary = "pin" + std::to_string(std::random_device{}()) + "r";
  const std::string id =
      Unwrap(profiles().Create(J(R"({"attributes": {"firstName": ")" + canary + R"("}})"))).Find("id")->as_string();
  Unwrap(profiles().Create(J(R"({"attributes": {"firstName": "Other"}})")));
  ASSERT_TRUE(engine_->Flush().ok());
  auto& store = static_cast<internal::EngineImpl&>(*engine_).store();
  auto reader = store.NewIterator(storage::Cf::kProfiles);
  reader->SeekToFirst();
  ASSERT_TRUE(reader->Valid());
  auto erasure = std::async(std::launch::async, [&] { return profiles().Delete(id); });
  EXPECT_EQ(erasure.wait_for(std::chrono::milliseconds(1500)), std::future_status::timeout)
      << "returned while a reader held a file with the person's data";
  EXPECT_FALSE(FilesHolding(dir_.path(), canary).empty());  // that file, still there
  reader.reset();
  ASSERT_EQ(erasure.wait_for(std::chrono::seconds(60)), std::future_status::ready);
  ASSERT_TRUE(erasure.get().ok());
  EXPECT_EQ(FilesHolding(dir_.path(), canary), std::vector<std::string>{});
}

// The writer of APurgeACrashInterruptedIsFinishedAtOpen, run in a child process: a person with the canary, then an
// erasure that ends the process after its atomic write, before the purge.
TEST(ErasureChild, DISABLED_EraseAndDieBeforePurge) {
  auto engine = Unwrap(Engine::Open(Options(), testing::ChildEnv("CDP_TEST_DIR")));
  const std::string canary = testing::ChildEnv("CDP_TEST_CANARY");
  const std::string viewers =
      Unwrap(engine->segments().Create(J(R"({"name": "viewers", "rule": {"event": "page_view"}})")))
          .Find("id")
          ->as_string();
  Json p = Unwrap(engine->profiles().Create(J(R"({"externalIds": {"email": ")" + canary + R"(@example.com"},
      "attributes": {"firstName": ")" + canary +
                                              R"("}})")));
  for (int i = 0; i < 5; ++i) {
    Unwrap(engine->events().Track(J(R"({"type": "page_view", "profileId": ")" + p.Find("id")->as_string() +
                                    R"(", "properties": {"q": ")" + canary + R"("}})")));
  }
  ASSERT_TRUE(engine->Flush().ok());
  // The person entered the segment, and the feed says so in storage (a read of the feed writes it first).
  ASSERT_EQ(Unwrap(engine->segments().Changes(viewers, "", 0)).Find("changes")->size(), 1u);
  internal::g_exit_before_purge_for_testing = true;
  (void)engine->profiles().Delete(p.Find("id")->as_string());
  std::_Exit(4);  // not reached: Delete ends the process
}

TEST(ErasureRecoveryTest, APurgeACrashInterruptedIsFinishedAtOpen) {
  testing::TempDir dir;
  const std::string canary = "crsh" + std::to_string(std::random_device{}()) + "z";
  ASSERT_TRUE(testing::RunTestChild("ErasureChild.DISABLED_EraseAndDieBeforePurge",
                                    {{"CDP_TEST_DIR", dir.path()}, {"CDP_TEST_CANARY", canary}}));
  // The erasure is written, not yet physical: the canary is still in a table file.
  EXPECT_FALSE(FilesHolding(dir.path(), canary).empty());
  auto engine = Unwrap(Engine::Open(Options(), dir.path()));
  EXPECT_EQ(FilesHolding(dir.path(), canary), std::vector<std::string>{});
  EXPECT_EQ(Unwrap(engine->Stats()).Find("profiles")->as_int(), 0);
  // The person's events were erased by the drop filter (no merge involved them): none is left in the log.
  EventQuery all;
  EXPECT_TRUE(Unwrap(engine->events().Query(all)).items.empty());
  // Their entry in the segment's change feed, which the erasure deletes in a write of its own, is gone too.
  Json segments = Unwrap(engine->segments().List());
  ASSERT_EQ(segments.size(), 1u);
  Json feed = Unwrap(engine->segments().Changes(segments.items()[0].Find("id")->as_string(), "", 0));
  for (const Json& change : feed.Find("changes")->items()) {
    EXPECT_NE(change.Find("change")->as_string(), "entered") << change.Dump();
  }
}

}  // namespace
}  // namespace cdp
