// Copyright 2026 The libcdp Authors.
//
// The event tail (src/engine/event_tail.h): index entries and trait deltas held in memory and written in bulk.
// Whatever the tail's size, and whether a write's entries are still in memory, in storage or in both, reads give
// the same answers; after a crash the tail's log brings everything back, with traits counted once.

#include "engine/event_tail.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

#include "storage/keys.h"
#include "test_util.h"

namespace cdp {
namespace {

using testing::J;
using testing::TempDir;
using testing::Unwrap;

std::unique_ptr<Engine> OpenWithTail(const std::string& dir, size_t tail) {
  Options options;
  options.index_tail_events = tail;
  return Unwrap(Engine::Open(options, dir));
}

// A fixed workload: 6 customers, 240 events in batches and singles, out of time order, purchases with revenue.
// Fills `ids` with each customer's profile id.
void Workload(Engine* engine, std::vector<std::string>* ids) {
  ids->assign(6, "");
  std::mt19937 rng(7);
  int64_t base = 1'750'000'000'000;  // epoch milliseconds
  std::vector<Json> batch;
  for (int i = 0; i < 240; ++i) {
    const int customer = static_cast<int>(rng() % 6);
    const int64_t t = base + static_cast<int64_t>(rng() % 5'000'000);  // ~83 minutes: several sessions each
    const bool purchase = rng() % 4 == 0;
    std::string event = R"({"id":"e)" + std::to_string(i) + R"(","customerId":"c)" + std::to_string(customer) +
                        R"(","timestamp":)" + std::to_string(t) + R"(,"type":")" +
                        (purchase ? "purchase" : "page_view") + R"(","properties":{"revenue":)" +
                        std::to_string(i % 50) + "}}";
    if (i % 5 == 0 || (*ids)[customer].empty()) {
      (*ids)[customer] = Unwrap(engine->events().Track(J(event))).profile_id;
    } else {
      batch.push_back(J(event));
      if (batch.size() == 9) {
        BatchResult r = Unwrap(engine->events().TrackBatch(batch));
        ASSERT_EQ(r.accepted, batch.size());
        batch.clear();
      }
    }
  }
  if (!batch.empty()) Unwrap(engine->events().TrackBatch(batch));
}

// Everything a reader can see of the workload, with generated ids replaced by the customer they belong to.
std::string Snapshot(Engine* engine, const std::vector<std::string>& ids) {
  std::string out;
  for (int c = 0; c < 6; ++c) {
    const std::string& id = ids[c];
    Json profile = Unwrap(engine->profiles().Get(id));
    out += "c" + std::to_string(c) + " computed " + profile.Find("computed")->Dump() + "\n";
    for (bool descending : {false, true}) {
      EventQuery q;
      q.profile_id = id;
      q.limit = 7;
      q.descending = descending;
      std::string cursor;
      int pages = 0;
      do {
        q.cursor = cursor;
        Page page = Unwrap(engine->profiles().Timeline(id, q));
        for (const Json& e : page.items) {
          out += e.Find("id")->as_string() + "@" + e.Find("timestamp")->as_string() + " ";
        }
        cursor = page.next_cursor;
        ++pages;
      } while (!cursor.empty() && pages < 1000);
      out += "\n";
    }
    std::vector<Json> sessions = Unwrap(engine->profiles().Sessions(id));
    for (const Json& s : sessions) out += s.Find("eventCount")->Dump() + "," + s.Find("start")->as_string() + " ";
    out += "\n";
  }
  EventQuery all;
  all.limit = 1000;
  all.type = "purchase";
  Page page = Unwrap(engine->events().Query(all));
  out += "purchases " + std::to_string(page.items.size()) + "\n";
  return out;
}

TEST(EventTailTest, ReadsAreTheSameWhateverTheTailSize) {
  std::string reference;
  for (size_t tail : {size_t{65536}, size_t{1}, size_t{7}, size_t{50}}) {
    TempDir dir;
    auto engine = OpenWithTail(dir.path(), tail);
    std::vector<std::string> ids;
    Workload(engine.get(), &ids);
    std::string seen = Snapshot(engine.get(), ids);
    EXPECT_EQ(Unwrap(engine->Stats()).Find("events")->as_int(), 240) << "tail of " << tail;
    if (reference.empty()) {
      reference = seen;
      EXPECT_NE(seen.find("purchases "), std::string::npos);
    } else {
      EXPECT_EQ(seen, reference) << "tail of " << tail;
    }
    // And after writing the tail out and reopening.
    ASSERT_TRUE(engine->Flush().ok());
    engine.reset();
    engine = OpenWithTail(dir.path(), tail);
    EXPECT_EQ(Snapshot(engine.get(), ids), reference) << "reopened, tail of " << tail;
    EXPECT_EQ(Unwrap(engine->Stats()).Find("events")->as_int(), 240) << "reopened, tail of " << tail;
  }
}

TEST(EventTailTest, ComputedTraitsCountEachEventOnceAcrossFlushes) {
  TempDir dir;
  auto engine = OpenWithTail(dir.path(), 3);
  int64_t revenue = 0;
  for (int i = 0; i < 20; ++i) {
    Unwrap(engine->events().Track(J(R"({"type":"purchase","customerId":"c1","timestamp":)" +
                                    std::to_string(1'750'000'000'000 + i * 1000) + R"(,"properties":{"revenue":)" +
                                    std::to_string(i) + "}}")));
    revenue += i;
    TrackResult t = Unwrap(engine->events().Track(J(R"({"type":"page_view","customerId":"c1"})")));
    Json p = Unwrap(engine->profiles().Get(t.profile_id));
    ASSERT_EQ(p.FindPath("computed.purchaseCount")->as_int(), i + 1) << p.Dump();
    ASSERT_DOUBLE_EQ(p.FindPath("computed.ltv")->as_number(), static_cast<double>(revenue)) << p.Dump();
  }
}

// The writer of CrashLeavesNothingUnindexedAndCountsTraitsOnce, run in a child process (not on its own).
TEST(EventTailChild, DISABLED_WriteAndExitWithoutClosing) {
  auto engine = Engine::Open(
      [] {
        Options o;
        o.index_tail_events = 25;  // some entries written out, the rest still in the tail at the "crash"
        return o;
      }(),
      testing::ChildEnv("CDP_TEST_DIR"));
  if (!engine.ok()) _exit(2);
  for (int i = 0; i < 60; ++i) {
    auto r = (*engine)->events().Track(J(R"({"type":"purchase","customerId":"c)" + std::to_string(i % 3) +
                                         R"(","id":"p)" + std::to_string(i) + R"(","timestamp":)" +
                                         std::to_string(1'750'000'000'000 + i) + R"(,"properties":{"revenue":2}})"));
    if (!r.ok()) _exit(3);
  }
  _exit(0);  // no destructor: the tail is not written out
}

// A writer killed with the tail unwritten: reopening reads the log back and replays what was not yet counted.
TEST(EventTailTest, CrashLeavesNothingUnindexedAndCountsTraitsOnce) {
  TempDir dir;
  ASSERT_TRUE(
      testing::RunTestChild("EventTailChild.DISABLED_WriteAndExitWithoutClosing", {{"CDP_TEST_DIR", dir.path()}}));
  for (int round = 0; round < 2; ++round) {  // and once more after a clean close
    auto engine = OpenWithTail(dir.path(), 25);
    for (int c = 0; c < 3; ++c) {
      TrackResult t = Unwrap(engine->events().Track(
          J(R"({"type":"page_view","customerId":"c)" + std::to_string(c) + R"(","timestamp":1000})")));
      Json p = Unwrap(engine->profiles().Get(t.profile_id));
      EXPECT_EQ(p.FindPath("computed.purchaseCount")->as_int(), 20) << p.Dump();
      EXPECT_DOUBLE_EQ(p.FindPath("computed.ltv")->as_number(), 40.0) << p.Dump();
      EventQuery q;
      q.type = "purchase";
      q.limit = 1000;
      EXPECT_EQ(Unwrap(engine->profiles().Timeline(t.profile_id, q)).items.size(), 20u);
    }
    // Retries of logged events are still recognized.
    TrackResult retry = Unwrap(engine->events().Track(
        J(R"({"type":"purchase","customerId":"c0","id":"p0","timestamp":1750000000000,"properties":{"revenue":2}})")));
    EXPECT_TRUE(retry.duplicate);
    // The events counted: the child's 60 (some flushed, the rest in the log it left), 3 per round, no retry.
    EXPECT_EQ(Unwrap(engine->Stats()).Find("events")->as_int(), 60 + 3 * (round + 1));
  }
}

// The writer of CrashAfterAMergeCountsEachEventOnce, run in a child process (not on its own): purchases by two
// profiles, a merge of them, more purchases, then an exit with the tail unwritten.
TEST(EventTailChild, DISABLED_MergeAndExitWithoutClosing) {
  auto engine = OpenWithTail(testing::ChildEnv("CDP_TEST_DIR"), std::stoul(testing::ChildEnv("CDP_TEST_TAIL")));
  auto track = [&](const std::string& json) {
    if (!engine->events().Track(J(json)).ok()) _exit(3);
  };
  for (int i = 0; i < 5; ++i) {
    track(R"({"type":"purchase","anonymousId":"anon-1","properties":{"revenue":1}})");
    track(R"({"type":"purchase","email":"a@example.com","properties":{"revenue":10}})");
  }
  track(R"({"type":"page_view","anonymousId":"anon-1","email":"a@example.com"})");  // merges the two
  for (int i = 0; i < 3; ++i) track(R"({"type":"purchase","email":"a@example.com","properties":{"revenue":100}})");
  _exit(0);
}

// A crash after a merge: the events the merge moved carry no delta of their own (it moved their aggregate), the
// ones logged before it are found under their new profile, so each purchase counts once.
TEST(EventTailTest, CrashAfterAMergeCountsEachEventOnce) {
  for (const char* tail : {"1000", "4"}) {  // nothing written out before the crash; some written out
    TempDir dir;
    ASSERT_TRUE(testing::RunTestChild("EventTailChild.DISABLED_MergeAndExitWithoutClosing",
                                      {{"CDP_TEST_DIR", dir.path()}, {"CDP_TEST_TAIL", tail}}));
    for (int round = 0; round < 2; ++round) {  // and once more after a clean close
      auto engine = OpenWithTail(dir.path(), 4);
      TrackResult t = Unwrap(engine->events().Track(J(R"({"type":"page_view","anonymousId":"anon-1"})")));
      Json p = Unwrap(engine->profiles().Get(t.profile_id));
      EXPECT_EQ(p.FindPath("computed.purchaseCount")->as_int(), 13) << "tail " << tail << ": " << p.Dump();
      EXPECT_DOUBLE_EQ(p.FindPath("computed.ltv")->as_number(), 355.0) << "tail " << tail << ": " << p.Dump();
      EventQuery q;
      q.type = "purchase";
      q.limit = 1000;
      EXPECT_EQ(Unwrap(engine->profiles().Timeline(t.profile_id, q)).items.size(), 13u) << "tail " << tail;
      // 14 events from the child (the merge's page view too), one more per round.
      EXPECT_EQ(Unwrap(engine->Stats()).Find("events")->as_int(), 14 + round + 1) << "tail " << tail;
    }
  }
}

double LtvOf(Engine* e, const std::string& id) {
  return Unwrap(e->profiles().Get(id)).FindPath("computed.ltv")->as_number();
}

// After a failed background flush, Flush writes the frozen part again and then the part filled since, in two loads.
// The first may delete only the frozen part's log records: when the second fails (here: its file names are taken),
// the entries filled since are still logged, and reopening finds them.
TEST(EventTailTest, AFlushRetryKeepsTheLogOfEntriesItDidNotWrite) {
  TempDir dir;
  namespace fs = std::filesystem;
  const fs::path ingest = fs::path(dir.path()) / "cdp-ingest";
  std::string id;
  {
    auto engine = OpenWithTail(dir.path(), 3);
    { std::ofstream block(ingest); }  // a file where the bulk-load directory goes: the background flush fails
    auto track = [&](int i) {
      TrackResult t = Unwrap(engine->events().Track(J(R"({"type":"purchase","customerId":"c","id":"e)" +
                                                      std::to_string(i) + R"(","properties":{"revenue":1}})")));
      id = t.profile_id;
    };
    for (int i = 0; i < 3; ++i) track(i);  // the 3rd starts a background flush, which fails
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    for (int i = 3; i < 5; ++i) track(i);  // acknowledged; in profiles_, logged
    ASSERT_DOUBLE_EQ(LtvOf(engine.get(), id), 5.0);
    // The I/O problem goes away for the retry of the frozen part (run-1..3), but the next file fails.
    fs::remove(ingest);
    fs::create_directories(ingest);
    for (int k = 4; k < 40; ++k) fs::create_directories(ingest / ("run-" + std::to_string(k) + ".sst"));
    Status flushed = engine->Flush();
    EXPECT_FALSE(flushed.ok());  // reported, and the engine refuses writes: fine so far
  }                              // closing (or a crash): the destructor's flush fails too
  auto engine = OpenWithTail(dir.path(), 3);
  EventQuery q;
  q.limit = 100;
  EXPECT_EQ(Unwrap(engine->events().Query(q)).items.size(), 5u) << "events stored";
  EXPECT_EQ(Unwrap(engine->profiles().Timeline(id, q)).items.size(), 5u) << "acknowledged events lost from the index";
  EXPECT_DOUBLE_EQ(LtvOf(engine.get(), id), 5.0) << "acknowledged events lost from the traits";
  EXPECT_EQ(Unwrap(engine->Stats()).Find("events")->as_int(), 5) << "the frozen part counted twice, or not at all";
}

// A log left by a crash of a build that counted events with a merge operand in the same write (records without a
// count, tag 0xff): reopening counts those events once, from the counter, and still restores their entries.
TEST(EventTailTest, ALogOfAnEarlierBuildCountsEachEventOnce) {
  TempDir dir;
  ASSERT_TRUE(
      testing::RunTestChild("EventTailChild.DISABLED_WriteAndExitWithoutClosing", {{"CDP_TEST_DIR", dir.path()}}));
  int64_t logged = 0;
  {
    // Rewrite the records the child left as the earlier build wrote them: no count, and the count in the counter.
    auto store = Unwrap(storage::Store::Open(Options(), dir.path()));
    storage::WriteBatch batch(*store);
    auto iter = store->NewIterator(storage::Cf::kIndexLog);
    for (iter->SeekToFirst(); iter->Valid(); iter->Next()) {
      std::string value(iter->value());
      ASSERT_GE(value.size(), 9u);
      ASSERT_EQ(value[0], '\xfe');
      int64_t count;
      std::memcpy(&count, value.data() + 1, 8);
      logged += count;
      batch.Put(storage::Cf::kIndexLog, iter->key(), "\xff" + value.substr(9));
    }
    ASSERT_GT(logged, 0) << "the child left no log";
    store->AddToCounter(&batch, "events", logged);
    ASSERT_TRUE(store->Write(&batch).ok());
  }
  auto engine = OpenWithTail(dir.path(), 25);
  EXPECT_EQ(Unwrap(engine->Stats()).Find("events")->as_int(), 60);
  TrackResult t = Unwrap(engine->events().Track(J(R"({"type":"page_view","customerId":"c0","timestamp":1000})")));
  Json p = Unwrap(engine->profiles().Get(t.profile_id));
  EXPECT_EQ(p.FindPath("computed.purchaseCount")->as_int(), 20) << p.Dump();
  EXPECT_EQ(Unwrap(engine->Stats()).Find("events")->as_int(), 61);
}

// Two merges in one batch (X into A, then A into C): the events the first merge moved into A exist only in the
// batch, and the second merge moves them on to C with A's own.
TEST(EventTailTest, ChainedMergesInOneBatchMoveEveryEvent) {
  for (size_t tail : {size_t{1000}, size_t{1}}) {
    TempDir dir;
    auto engine = OpenWithTail(dir.path(), tail);
    Unwrap(engine->events().Track(
        J(R"({"type":"purchase","anonymousId":"x1","timestamp":1000,"properties":{"revenue":1}})")));
    Unwrap(engine->events().Track(
        J(R"({"type":"purchase","email":"a@example.com","timestamp":2000,"properties":{"revenue":10}})")));
    Unwrap(engine->events().Track(
        J(R"({"type":"purchase","customerId":"c1","timestamp":3000,"properties":{"revenue":100}})")));
    ASSERT_TRUE(engine->Flush().ok());
    BatchResult r = Unwrap(engine->events().TrackBatch(
        {J(R"({"type":"page_view","anonymousId":"x1","email":"a@example.com","timestamp":4000})"),
         J(R"({"type":"page_view","email":"a@example.com","customerId":"c1","timestamp":5000})")}));
    ASSERT_EQ(r.accepted, 2u);
    const std::string id = r.items[1].result.profile_id;
    EventQuery q;
    q.limit = 100;
    Json p = Unwrap(engine->profiles().Get(id));
    EXPECT_EQ(Unwrap(engine->profiles().Timeline(id, q)).items.size(), 5u) << "tail " << tail << " " << p.Dump();
    EXPECT_DOUBLE_EQ(p.FindPath("computed.ltv")->as_number(), 111.0) << p.Dump();
    EXPECT_EQ(p.FindPath("computed.eventCount") ? p.FindPath("computed.eventCount")->as_int() : -1, 5) << p.Dump();
  }
}

TEST(EventTailTest, MergeAndUnmergeMoveEventsWhereverTheirIndexEntriesAre) {
  TempDir dir;
  auto engine = OpenWithTail(dir.path(), 4);
  for (int i = 0; i < 9; ++i) {
    Unwrap(engine->events().Track(J(R"({"type":"purchase","anonymousId":"anon-1","properties":{"revenue":1}})")));
    Unwrap(engine->events().Track(J(R"({"type":"purchase","email":"a@example.com","properties":{"revenue":10}})")));
  }
  TrackResult link =
      Unwrap(engine->events().Track(J(R"({"type":"page_view","anonymousId":"anon-1","email":"a@example.com"})")));
  ASSERT_EQ(link.merged_profiles.size(), 1u) << link.ToJson().Dump();
  auto check = [&](const std::string& id, int64_t count, double ltv, size_t events) {
    Json p = Unwrap(engine->profiles().Get(id));
    EXPECT_EQ(p.FindPath("computed.purchaseCount")->as_int(), count) << p.Dump();
    EXPECT_DOUBLE_EQ(p.FindPath("computed.ltv")->as_number(), ltv) << p.Dump();
    EventQuery q;
    q.limit = 1000;
    EXPECT_EQ(Unwrap(engine->profiles().Timeline(id, q)).items.size(), events);
  };
  check(link.profile_id, 18, 99.0, 19);
  ASSERT_TRUE(engine->Flush().ok());
  check(link.profile_id, 18, 99.0, 19);
  Json undone = Unwrap(engine->identity().Unmerge(link.profile_id, link.merge_id));
  ASSERT_EQ(undone.Find("restored")->size(), 1u);
  const std::string other = undone.Find("restored")->items()[0].as_string();
  TrackResult again = Unwrap(engine->events().Track(J(R"({"type":"page_view","email":"a@example.com"})")));
  const std::string email_profile = again.profile_id;
  const std::string anon_profile = email_profile == link.profile_id ? other : link.profile_id;
  check(email_profile, 9, 90.0, 11);  // its purchases, the linking page view (email) and this one
  check(anon_profile, 9, 9.0, 9);
  engine.reset();
  engine = OpenWithTail(dir.path(), 4);
  check(email_profile, 9, 90.0, 11);
  check(anon_profile, 9, 9.0, 9);
}

TEST(EventTailTest, DeletedProfileLeavesNoEventBehind) {
  TempDir dir;
  auto engine = OpenWithTail(dir.path(), 1000);  // the person's events are all in the tail
  TrackResult t;
  for (int i = 0; i < 5; ++i) t = Unwrap(engine->events().Track(J(R"({"type":"page_view","customerId":"gone"})")));
  Unwrap(engine->events().Track(J(R"({"type":"page_view","customerId":"stays"})")));
  ASSERT_TRUE(engine->profiles().Delete(t.profile_id).ok());
  EventQuery all;
  all.limit = 1000;
  Page page = Unwrap(engine->events().Query(all));
  ASSERT_EQ(page.items.size(), 1u);
  EXPECT_NE(page.items[0].Find("customerId")->as_string(), "gone");
  EXPECT_EQ(Unwrap(engine->Stats()).Find("events")->as_int(), 1);
  engine.reset();
  engine = OpenWithTail(dir.path(), 1000);
  EXPECT_EQ(Unwrap(engine->events().Query(all)).items.size(), 1u);
  EXPECT_EQ(Unwrap(engine->Stats()).Find("events")->as_int(), 1);
  EXPECT_TRUE(engine->profiles().Timeline(t.profile_id, all).status().IsNotFound());
}

// An entry may be in storage and in the tail at once (a reader between a flush's bulk load and the tail's reset):
// it is read once.
TEST(EventTailTest, AnEntryInStorageAndInTheTailIsReadOnce) {
  TempDir dir;
  auto engine = OpenWithTail(dir.path(), 1000);
  TrackResult t = Unwrap(engine->events().Track(J(R"({"type":"page_view","customerId":"c","timestamp":5000})")));
  Unwrap(engine->events().Track(J(R"({"type":"page_view","customerId":"c","timestamp":9000})")));
  engine.reset();  // writes the tail out
  auto store = Unwrap(storage::Store::Open(Options(), dir.path()));
  internal::EventTail tail(store.get());
  internal::EventTail::Changes changes;
  auto iter = store->NewIterator(storage::Cf::kEvents);
  std::vector<std::string> stored;
  const std::string prefix = storage::ProfileEventsPrefix(t.profile_id);
  for (iter->SeekToFirst(); iter->Valid(); iter->Next()) stored.emplace_back(iter->key().substr(prefix.size()));
  ASSERT_EQ(stored.size(), 2u);
  changes.added.emplace_back(t.profile_id, stored[1]);                         // the same key as in storage
  changes.added.emplace_back(t.profile_id, storage::TimeKey(7'000'000, "x"));  // one only in the tail
  tail.Apply(std::move(changes));
  for (bool descending : {false, true}) {
    std::vector<int64_t> times;
    for (internal::ProfileEvents e(*store, tail, t.profile_id, {}, {}, descending); e.Valid(); e.Next()) {
      times.push_back(e.time_us());
    }
    std::vector<int64_t> want = {5'000'000, 7'000'000, 9'000'000};
    if (descending) std::reverse(want.begin(), want.end());
    EXPECT_EQ(times, want);
  }
}

}  // namespace
}  // namespace cdp
