// Copyright 2026 The libcdp Authors.
//
// Every acknowledged write survives kill -9: a child process writes and reports each acknowledgement through a
// pipe; the parent kills it mid-stream and checks that everything acknowledged is there after reopening.

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

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
  const int fd = std::stoi(testing::ChildEnv("CDP_TEST_FD"));
  Options options;
  options.sync_writes = sync;
  auto engine = Engine::Open(options, dir);
  if (!engine.ok()) _exit(2);
  for (int i = 0;; ++i) {
    std::string id = "ev" + std::to_string(i);
    std::string line;
    if (batches) {
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

void RunWriterAndKill(const std::string& dir, bool sync, bool batches, std::set<std::string>* acked) {
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  pid_t pid = testing::SpawnTestChild("DurabilityChild.DISABLED_Write", {{"CDP_TEST_DIR", dir},
                                                                         {"CDP_TEST_SYNC", sync ? "1" : "0"},
                                                                         {"CDP_TEST_BATCHES", batches ? "1" : "0"},
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

void CheckAllPresent(const std::string& dir, const std::set<std::string>& acked) {
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
  // Traits agree with the events stored: every purchase has revenue 1.
  int64_t ltv = 0;
  ProfileQuery pq;
  pq.limit = 100;
  for (const Json& p : Unwrap(engine->profiles().Search(pq)).items) ltv += p.FindPath("computed.ltv")->as_int();
  EXPECT_EQ(ltv, static_cast<int64_t>(stored.size()));
  EXPECT_EQ(Unwrap(engine->Stats()).Find("events")->as_int(), static_cast<int64_t>(stored.size()));
}

TEST(DurabilityTest, AcknowledgedSingleEventsSurviveKill9) {
  testing::TempDir dir;
  std::set<std::string> acked;
  RunWriterAndKill(dir.path(), false, false, &acked);
  CheckAllPresent(dir.path(), acked);
}

TEST(DurabilityTest, AcknowledgedBatchesSurviveKill9) {
  testing::TempDir dir;
  std::set<std::string> acked;
  RunWriterAndKill(dir.path(), false, true, &acked);
  CheckAllPresent(dir.path(), acked);
}

TEST(DurabilityTest, SyncedWritesSurviveKill9) {
  testing::TempDir dir;
  std::set<std::string> acked;
  RunWriterAndKill(dir.path(), true, true, &acked);
  CheckAllPresent(dir.path(), acked);
}

}  // namespace
}  // namespace cdp
