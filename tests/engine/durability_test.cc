// Copyright 2026 The libcdp Authors.
//
// Every acknowledged write survives kill -9: a child process writes and reports each acknowledgement through a
// pipe; the parent kills it mid-stream and checks that everything acknowledged is there after reopening.

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <map>
#include <set>

#include "test_util.h"

namespace cdp {
namespace {

using testing::J;
using testing::Unwrap;

// The writer, run in a child process by RunWriterAndKill (not on its own): writes until killed, reporting each
// acknowledged event id on the pipe it was given.
TEST(DurabilityChild, DISABLED_Write) {
  const std::string dir = testing::ChildEnv("CDP_TEST_DIR");
  const bool sync = testing::ChildEnv("CDP_TEST_SYNC") == "1";
  const bool batches = testing::ChildEnv("CDP_TEST_BATCHES") == "1";
  const bool merges = testing::ChildEnv("CDP_TEST_MERGES") == "1";
  const int start = std::stoi(testing::ChildEnv("CDP_TEST_START"));
  const int fd = std::stoi(testing::ChildEnv("CDP_TEST_FD"));
  Options options;
  options.sync_writes = sync;
  auto engine = Engine::Open(options, dir);
  if (!engine.ok()) _exit(2);
  for (int i = start;; ++i) {
    std::string id = "ev" + std::to_string(i);
    std::string line;
    if (merges) {
      // A new person per batch (device d<i>), whose last event also carries an email three batches share: the
      // first of the three links it, the other two create a profile and then merge it into the email's, in the
      // same write.
      std::vector<Json> batch;
      const std::string device = "d" + std::to_string(i);
      for (int k = 0; k < 10; ++k) {
        Json e = J(R"({"type":"purchase","properties":{"revenue":1}})");
        e.Set("id", id + "-" + std::to_string(k)).Set("deviceId", device);
        if (k == 9) e.Set("email", "shared" + std::to_string(i / 3) + "@example.com");
        batch.push_back(std::move(e));
      }
      auto r = (*engine)->events().TrackBatch(batch);
      if (!r.ok() || r->accepted != 10) _exit(3);
      for (int k = 0; k < 10; ++k) line += id + "-" + std::to_string(k) + "\n";
    } else if (batches) {
      std::vector<Json> batch;
      for (int k = 0; k < 10; ++k) {
        batch.push_back(J(R"({"type":"purchase","customerId":"c)" + std::to_string(i % 7) + R"(","id":")" + id + "-" +
                          std::to_string(k) + R"(","properties":{"revenue":1}})"));
      }
      auto r = (*engine)->events().TrackBatch(batch);
      if (!r.ok() || r->accepted != 10) _exit(3);
      for (int k = 0; k < 10; ++k) line += id + "-" + std::to_string(k) + "\n";
    } else {
      auto r = (*engine)->events().Track(J(R"({"type":"purchase","customerId":"c)" + std::to_string(i % 7) +
                                           R"(","id":")" + id + R"(","properties":{"revenue":1}})"));
      if (!r.ok()) _exit(3);
      line = id + "\n";
    }
    if (write(fd, line.data(), line.size()) != static_cast<ssize_t>(line.size())) _exit(4);
  }
}

struct Writer {
  bool sync = false;
  bool batches = false;
  bool merges = false;  // batches that create a person and merge it into another (see the child)
  int start = 0;        // the first batch number (event ids ev<start>...)
};

void RunWriterAndKill(const std::string& dir, const Writer& w, std::set<std::string>* acked) {
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  pid_t pid = testing::SpawnTestChild("DurabilityChild.DISABLED_Write", {{"CDP_TEST_DIR", dir},
                                                                         {"CDP_TEST_SYNC", w.sync ? "1" : "0"},
                                                                         {"CDP_TEST_BATCHES", w.batches ? "1" : "0"},
                                                                         {"CDP_TEST_MERGES", w.merges ? "1" : "0"},
                                                                         {"CDP_TEST_START", std::to_string(w.start)},
                                                                         {"CDP_TEST_FD", std::to_string(fds[1])}});
  ASSERT_GE(pid, 0);
  close(fds[1]);
  std::string received;
  char buf[4096];
  while (std::count(received.begin(), received.end(), '\n') < 3000) {
    ssize_t n = read(fds[0], buf, sizeof buf);
    ASSERT_GT(n, 0) << "the writer died early";
    received.append(buf, n);
  }
  kill(pid, SIGKILL);
  int status = 0;
  waitpid(pid, &status, 0);
  // Anything still in the pipe was acknowledged too.
  for (ssize_t n; (n = read(fds[0], buf, sizeof buf)) > 0;) received.append(buf, n);
  close(fds[0]);
  ASSERT_TRUE(WIFSIGNALED(status));
  size_t start = 0;
  for (size_t nl; (nl = received.find('\n', start)) != std::string::npos; start = nl + 1) {
    acked->insert(received.substr(start, nl - start));
  }
}

// `merges`: the events are the merging writer's (three batches per email), so each email's batches end in one
// profile.
void CheckAllPresent(const std::string& dir, const std::set<std::string>& acked, bool merges = false) {
  auto engine = Unwrap(Engine::Open(Options{}, dir));
  std::set<std::string> stored;
  EventQuery q;
  q.limit = 1000;
  do {
    Page page = Unwrap(engine->events().Query(q));
    for (const Json& e : page.items) stored.insert(e.Find("id")->as_string());
    q.cursor = page.next_cursor;
  } while (!q.cursor.empty());
  size_t missing = 0;
  for (const auto& id : acked) missing += stored.count(id) == 0;
  EXPECT_EQ(missing, 0u) << "of " << acked.size() << " acknowledged events";
  EXPECT_GE(stored.size(), acked.size());
  EXPECT_EQ(Unwrap(engine->Stats()).Find("events")->as_int(), static_cast<int64_t>(stored.size()));

  // Nothing half-written: a batch (ids ev<i>-<k>) is stored whole or not at all, the one the kill interrupted too.
  std::map<std::string, int> per_batch;
  for (const std::string& id : stored) {
    if (size_t dash = id.find('-'); dash != std::string::npos) ++per_batch[id.substr(0, dash)];
  }
  for (const auto& [batch, n] : per_batch) EXPECT_EQ(n, 10) << "batch " << batch << " is stored in part";

  // Every profile's traits agree with its own events (after merges too): purchaseCount and ltv are the number of
  // purchases the per-profile index holds, and every stored event's profile exists.
  std::map<std::string, int64_t> events_of;
  q = EventQuery{};
  q.limit = 1000;
  do {
    Page page = Unwrap(engine->events().Query(q));
    for (const Json& e : page.items) ++events_of[e.Find("profileId")->as_string()];
    q.cursor = page.next_cursor;
  } while (!q.cursor.empty());
  // Traits agree with the events stored: every purchase has revenue 1.
  size_t profiles_seen = 0;
  int64_t ltv = 0;
  ProfileQuery pq;
  pq.limit = 1000;
  do {
    Page page = Unwrap(engine->profiles().Search(pq));
    for (const Json& p : page.items) {
      const std::string id = p.Find("id")->as_string();
      EventQuery mine;
      mine.profile_id = id;
      mine.limit = 1000;
      int64_t indexed = 0;
      do {
        Page events = Unwrap(engine->events().Query(mine));
        indexed += static_cast<int64_t>(events.items.size());
        mine.cursor = events.next_cursor;
      } while (!mine.cursor.empty());
      EXPECT_EQ(p.FindPath("computed.purchaseCount")->as_int(), indexed) << id;
      EXPECT_EQ(p.FindPath("computed.ltv")->as_int(), indexed) << id;
      EXPECT_EQ(events_of[id], indexed) << id;
      events_of.erase(id);
      ltv += p.FindPath("computed.ltv")->as_int();
      ++profiles_seen;
    }
    pq.cursor = page.next_cursor;
  } while (!pq.cursor.empty());
  EXPECT_GT(profiles_seen, 0u);
  if (merges) {
    std::set<int> emails;
    for (const auto& [batch, n] : per_batch) emails.insert(std::stoi(batch.substr(2)) / 3);  // ev<i>
    EXPECT_EQ(profiles_seen, emails.size()) << "of " << per_batch.size() << " batches";
  }
  EXPECT_EQ(ltv, static_cast<int64_t>(stored.size()));
  EXPECT_TRUE(events_of.empty()) << events_of.size() << " profile ids of stored events have no profile, e.g. "
                                 << (events_of.empty() ? "" : events_of.begin()->first);
}

TEST(DurabilityTest, AcknowledgedSingleEventsSurviveKill9) {
  testing::TempDir dir;
  std::set<std::string> acked;
  RunWriterAndKill(dir.path(), Writer{}, &acked);
  CheckAllPresent(dir.path(), acked);
}

TEST(DurabilityTest, AcknowledgedBatchesSurviveKill9) {
  testing::TempDir dir;
  std::set<std::string> acked;
  RunWriterAndKill(dir.path(), Writer{.batches = true}, &acked);
  CheckAllPresent(dir.path(), acked);
}

TEST(DurabilityTest, SyncedWritesSurviveKill9) {
  testing::TempDir dir;
  std::set<std::string> acked;
  RunWriterAndKill(dir.path(), Writer{.sync = true, .batches = true}, &acked);
  CheckAllPresent(dir.path(), acked);
}

// Batches that create a person and merge it into another, killed three times at whatever point the write was at,
// the database reopened and written again each time: everything acknowledged is there, no batch is stored in part,
// and every profile's traits and index agree with its events.
TEST(DurabilityTest, MergingBatchesKilledMidStreamAreWholeOrAbsent) {
  testing::TempDir dir;
  std::set<std::string> acked;
  for (int round = 0; round < 3; ++round) {
    RunWriterAndKill(dir.path(), Writer{.batches = true, .merges = true, .start = round * 1000000}, &acked);
    if (::testing::Test::HasFatalFailure()) return;
    CheckAllPresent(dir.path(), acked, /*merges=*/true);
    if (::testing::Test::HasFailure()) return;
  }
}

}  // namespace
}  // namespace cdp
