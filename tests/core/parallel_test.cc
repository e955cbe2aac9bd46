// Copyright 2026 The libcdp Authors.

#include "core/parallel.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <thread>
#include <vector>

namespace cdp::internal {
namespace {

// A started task runs on a helper thread, and Settle returns once it has; while every helper is busy, a task waits
// in the queue and its owner can withdraw it (it never runs). The helpers outlive the tasks: the same thread runs
// one task after another.
TEST(HelperTaskTest, RunsOnALongLivedHelperOrIsWithdrawn) {
  const std::thread::id caller = std::this_thread::get_id();
  // Runs a task on a helper, waiting for it to begin (a task settled before that is withdrawn); its thread's id.
  auto on_helper = [] {
    std::thread::id id;  // read after Settle, which orders it
    std::atomic<bool> began{false};
    HelperTask task([&] {
      id = std::this_thread::get_id();
      began = true;
    });
    EXPECT_TRUE(task.Start());
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (!began.load() && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    EXPECT_TRUE(began.load());
    EXPECT_TRUE(task.Settle());
    return id;
  };
  const std::thread::id first = on_helper();
  EXPECT_NE(first, std::thread::id());
  EXPECT_NE(first, caller);
  const std::thread::id second = on_helper();
  if (HelperTask::MaxHelpers() == 1) EXPECT_EQ(second, first) << "a new thread for each task";

  // Every helper busy: one more task is queued, and withdrawn.
  std::atomic<size_t> started{0};
  std::atomic<bool> release{false};
  std::vector<std::unique_ptr<HelperTask>> busy;
  for (size_t i = 0; i < HelperTask::MaxHelpers(); ++i) {
    busy.push_back(std::make_unique<HelperTask>([&] {
      started.fetch_add(1);
      while (!release.load()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }));
    ASSERT_TRUE(busy.back()->Start());
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (started.load() < HelperTask::MaxHelpers() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ASSERT_EQ(started.load(), HelperTask::MaxHelpers());
  std::atomic<int> ran{0};
  HelperTask queued([&] { ran.fetch_add(1); });
  ASSERT_TRUE(queued.Start());
  EXPECT_FALSE(queued.Settle()) << "withdrawn: no helper was free to begin it";
  release = true;
  for (auto& task : busy) EXPECT_TRUE(task->Settle());
  EXPECT_EQ(ran.load(), 0);
  // RunOrWait runs on the caller what no helper began, and a settled task can be started again.
  queued.RunOrWait();
  EXPECT_EQ(ran.load(), 1);
  ASSERT_TRUE(queued.Start());
  queued.RunOrWait();
  EXPECT_EQ(ran.load(), 2);
}

// A child forked while helpers exist (they are not copied into it, and the pool's lock may have been held) starts
// helpers of its own: its splits run and finish.
TEST(HelperTaskTest, AForkedChildHasHelpersOfItsOwn) {
  std::atomic<bool> began{false};
  HelperTask warm([&] { began = true; });  // the parent has a helper now
  ASSERT_TRUE(warm.Start());
  warm.RunOrWait();
  ASSERT_TRUE(began.load());
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    alarm(60);  // a deadlock fails the test instead of hanging it
    const std::thread::id caller = std::this_thread::get_id();
    std::atomic<bool> helper_ran{false};
    HelperTask task([&] { helper_ran = std::this_thread::get_id() != caller; });
    if (!task.Start()) _exit(2);
    for (int i = 0; i < 30000 && !helper_ran.load(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    if (!task.Settle() || !helper_ran.load()) _exit(3);
    std::vector<std::atomic<int>> runs(5000);
    RunOnTwoThreads(runs.size(), /*parallel_from=*/256, [&](size_t begin, size_t end) {
      for (size_t i = begin; i < end; ++i) runs[i].fetch_add(1);
    });
    for (const auto& r : runs) {
      if (r.load() != 1) _exit(4);
    }
    _exit(0);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status)) << "the child was killed (signal " << WTERMSIG(status) << ")";
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

// Every item is produced exactly once, by one thread or the other, and its result is visible when Ready returns:
// with a slow second thread (the caller produces most items itself), and with a slow consumer (the second thread
// produces most of them). Both threads take part in both cases.
// Every item is run once, in ranges that cover [0, n) without overlap; small runs are one call on the caller.
TEST(RunOnTwoThreadsTest, EachItemRunsOnceInDisjointRanges) {
  for (size_t n : {size_t{0}, size_t{1}, size_t{255}, size_t{256}, size_t{257}, size_t{1000}, size_t{10007}}) {
    SCOPED_TRACE(n);
    std::vector<std::atomic<int>> runs(n);
    std::atomic<int> calls{0};
    const std::thread::id caller = std::this_thread::get_id();
    std::atomic<bool> all_on_caller{true};
    RunOnTwoThreads(n, /*parallel_from=*/256, [&](size_t begin, size_t end) {
      ASSERT_LE(begin, end);
      ASSERT_LE(end, n);
      calls.fetch_add(1);
      if (std::this_thread::get_id() != caller) all_on_caller = false;
      for (size_t i = begin; i < end; ++i) runs[i].fetch_add(1);
    });
    for (size_t i = 0; i < n; ++i) ASSERT_EQ(runs[i].load(), 1) << i;
    if (n < 256) {
      EXPECT_EQ(calls.load(), 1);
      EXPECT_TRUE(all_on_caller.load());
    } else {
      EXPECT_GT(calls.load(), 2) << "in chunks";
    }
  }
}

// A second thread that is slow (here: it sleeps in each chunk) takes fewer chunks: the caller does most of the
// work instead of waiting for half of it.
TEST(RunOnTwoThreadsTest, ASlowSecondThreadTakesFewerChunks) {
  const size_t n = 1600;
  const std::thread::id caller = std::this_thread::get_id();
  std::atomic<size_t> on_caller{0}, elsewhere{0};
  RunOnTwoThreads(n, /*parallel_from=*/256, [&](size_t begin, size_t end) {
    if (std::this_thread::get_id() == caller) {
      on_caller += end - begin;
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      elsewhere += end - begin;
    }
  });
  EXPECT_EQ(on_caller + elsewhere, n);
  EXPECT_GT(on_caller.load(), n / 2) << "the caller waited for the second thread's half";
}

TEST(RunAheadTest, EachItemIsProducedOnceAndVisibleWhenReady) {
  for (bool slow_second_thread : {true, false}) {
    SCOPED_TRACE(slow_second_thread ? "slow second thread" : "slow consumer");
    constexpr size_t kItems = 2000;
    std::vector<uint64_t> value(kItems, 0);
    std::vector<std::atomic<int>> calls(kItems);
    std::atomic<int> by_second_thread{0}, by_caller{0};
    const std::thread::id caller = std::this_thread::get_id();
    {
      RunAhead ahead(kItems, /*parallel_from=*/64, [&](size_t i) {
        calls[i].fetch_add(1);
        if (std::this_thread::get_id() == caller) {
          by_caller.fetch_add(1);
        } else {
          by_second_thread.fetch_add(1);
          if (slow_second_thread) std::this_thread::sleep_for(std::chrono::microseconds(50));
        }
        value[i] = i * i + 1;  // plain writes, published by Ready
      });
      // The second thread starts producing (waiting here at most 10 s for it to be scheduled).
      for (int wait = 0; wait < 10000 && by_second_thread.load() == 0; ++wait) {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }
      for (size_t i = 0; i < kItems; ++i) {
        ahead.Ready(i);
        ASSERT_EQ(value[i], i * i + 1) << "item " << i;
        if (!slow_second_thread && i % 50 == 0) std::this_thread::sleep_for(std::chrono::microseconds(200));
      }
    }
    for (size_t i = 0; i < kItems; ++i) ASSERT_EQ(calls[i].load(), 1) << "item " << i;
    EXPECT_GT(by_second_thread.load(), 0);
    EXPECT_EQ(by_second_thread.load() + by_caller.load(), static_cast<int>(kItems));
    if (slow_second_thread) {
      EXPECT_GT(by_caller.load(), static_cast<int>(kItems) / 2);  // 2,000 x 50 us asleep: the caller overtakes
    } else {
      EXPECT_GT(by_second_thread.load(), static_cast<int>(kItems) / 2);  // 40 x 200 us asleep: it runs ahead
    }
  }
}

// Helpers split work while the callers number at most half the cores, and not beyond: one caller more than that,
// and RunOnTwoThreads runs in one call on the caller, RunAhead produces every item up front on the caller, and
// DeferredFree destroys a value on the caller before Give returns. Nested scopes on one thread count once (checked
// right at the boundary, where one caller more would tip it), and once the others leave, work is split again.
TEST(BatchCallTest, HelpersStayOnTheCallerWhileTheCoresAreTaken) {
  const size_t cores = std::max(2u, std::thread::hardware_concurrency());
  const size_t most = cores / 2;  // the most callers that still split
  const std::thread::id caller = std::this_thread::get_id();
  auto split_calls = [&] {  // RunOnTwoThreads over 1,000 items: how many calls ran off the calling thread
    std::atomic<int> elsewhere{0};
    RunOnTwoThreads(1000, /*parallel_from=*/256, [&](size_t, size_t) {
      if (std::this_thread::get_id() != caller) elsewhere.fetch_add(1);
      std::this_thread::sleep_for(std::chrono::milliseconds(2));  // time for the second thread to take chunks
    });
    return elsewhere.load();
  };
  std::atomic<size_t> inside{0};
  std::atomic<bool> leave{false};
  std::vector<std::thread> others;
  auto add_callers = [&](size_t n) {  // n more threads inside a BatchCall until `leave`
    const size_t target = inside.load() + n;
    for (size_t t = 0; t < n; ++t) {
      others.emplace_back([&] {
        BatchCall call;
        inside.fetch_add(1);
        while (!leave.load()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
      });
    }
    while (inside.load() < target) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  };

  BatchCall mine;
  add_callers(most - 1);  // with this thread: `most` callers
  {
    BatchCall nested;  // the same thread: still `most` callers
    EXPECT_TRUE(BatchCall::MaySplit()) << "a nested scope counted as one more caller";
  }
  EXPECT_GT(split_calls(), 0) << "with a core to spare, the work is split";

  add_callers(1);  // one caller more than half the cores
  EXPECT_FALSE(BatchCall::MaySplit());
  EXPECT_EQ(split_calls(), 0) << "with every core taken, everything runs on the caller";
  std::atomic<size_t> produced{0}, produced_elsewhere{0};
  {
    RunAhead ahead(100, /*parallel_from=*/64, [&](size_t) {
      produced.fetch_add(1);
      if (std::this_thread::get_id() != caller) produced_elsewhere.fetch_add(1);
    });
    EXPECT_EQ(produced.load(), 100u) << "every item produced up front, before any Ready";
  }
  EXPECT_EQ(produced_elsewhere.load(), 0u);
  struct Probe {
    std::thread::id* destroyed_on;
    explicit Probe(std::thread::id* on) : destroyed_on(on) {}
    Probe(Probe&& other) noexcept : destroyed_on(other.destroyed_on) { other.destroyed_on = nullptr; }
    ~Probe() {
      if (destroyed_on != nullptr) *destroyed_on = std::this_thread::get_id();
    }
  };
  std::thread::id destroyed_on;
  {
    DeferredFree free;
    free.Give(Probe(&destroyed_on));
    EXPECT_EQ(destroyed_on, caller) << "destroyed by the caller, before Give returned";
  }
  leave = true;
  for (std::thread& t : others) t.join();
  EXPECT_TRUE(BatchCall::MaySplit());
  EXPECT_GT(split_calls(), 0) << "split again once the others left";
}

// Below parallel_from the constructor produces everything on the calling thread, before the first Ready.
TEST(RunAheadTest, SmallRunsAreProducedUpFrontOnTheCaller) {
  std::vector<int> value(10, 0);
  const std::thread::id caller = std::this_thread::get_id();
  bool all_on_caller = true;
  RunAhead ahead(value.size(), /*parallel_from=*/64, [&](size_t i) {
    value[i] = static_cast<int>(i) + 1;
    all_on_caller = all_on_caller && std::this_thread::get_id() == caller;
  });
  for (size_t i = 0; i < value.size(); ++i) EXPECT_EQ(value[i], static_cast<int>(i) + 1);
  EXPECT_TRUE(all_on_caller);
}

// A consumer that stops early (an error under the lock) does not wait for the rest: the destructor stops the
// second thread after its current item.
TEST(RunAheadTest, StoppingEarlyLeavesTheRestUnproduced) {
  constexpr size_t kItems = 100000;
  std::atomic<size_t> produced{0};
  {
    RunAhead ahead(kItems, /*parallel_from=*/64, [&](size_t) {
      produced.fetch_add(1);
      std::this_thread::sleep_for(std::chrono::microseconds(20));
    });
    ahead.Ready(0);
    ahead.Ready(1);
  }
  EXPECT_GE(produced.load(), 2u);
  EXPECT_LT(produced.load(), kItems);
}

// What DeferredFree is given is destroyed exactly once, on another thread; Give waits for the previous value, so at
// most one is pending; Wait and the destructor return only once everything given is destroyed.
TEST(DeferredFreeTest, DestroysEachValueOnceOnAnotherThread) {
  struct Probe {
    std::atomic<int>* destroyed;
    std::atomic<int>* on_caller;
    std::thread::id caller;
    Probe(std::atomic<int>* d, std::atomic<int>* c, std::thread::id id) : destroyed(d), on_caller(c), caller(id) {}
    Probe(Probe&& other) noexcept : destroyed(other.destroyed), on_caller(other.on_caller), caller(other.caller) {
      other.destroyed = nullptr;  // a moved-from probe counts nothing
    }
    Probe(const Probe&) = delete;
    ~Probe() {
      if (destroyed == nullptr) return;
      if (std::this_thread::get_id() == caller) on_caller->fetch_add(1);
      std::this_thread::sleep_for(std::chrono::milliseconds(2));  // slow to free: Give must wait for it
      destroyed->fetch_add(1);
    }
  };
  std::atomic<int> destroyed{0}, on_caller{0};
  const std::thread::id caller = std::this_thread::get_id();
  {
    DeferredFree free;
    for (int i = 0; i < 20; ++i) {
      free.Give(Probe(&destroyed, &on_caller, caller));
      // The value given before this one is destroyed by now; this one may or may not be.
      EXPECT_GE(destroyed.load(), i);
      EXPECT_LE(destroyed.load(), i + 1);
    }
    free.Wait();
    EXPECT_EQ(destroyed.load(), 20);
    free.Give(Probe(&destroyed, &on_caller, caller));
  }  // the destructor waits for the last one
  EXPECT_EQ(destroyed.load(), 21);
  EXPECT_EQ(on_caller.load(), 0);
}

}  // namespace
}  // namespace cdp::internal
