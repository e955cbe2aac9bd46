// Copyright 2026 The libcdp Authors.
//
// Splitting pure per-item work of one call over two threads.

#ifndef CDP_CORE_PARALLEL_H_
#define CDP_CORE_PARALLEL_H_

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <system_error>
#include <thread>

namespace cdp::internal {

// Counts the threads now inside a batch-sized write call of any engine in this process: the public calls whose work
// the helpers below split (Events::Track, TrackBatch, TrackBatchJson; Identity::Identify, IdentifyBatch;
// Profiles::Create, CreateBatch) each hold one scope; nested scopes on one thread count once. The helpers split a
// call's work over a second thread only while there are cores to spare: with two callers on two cores each already
// has a core, and a helper thread only takes turns with them and makes its caller wait for the chunk it is on when
// it is descheduled (two writers of event batches spent a fifth of their time so). A caller counts while it waits
// (for the write lock, its write), so a call under the lock may do alone what a helper could have shared. Threads
// without a scope (merges, background work) count as one caller when they ask. Cores are
// std::thread::hardware_concurrency(), at least 2 (CPU quotas are not seen). Thread-safe; two relaxed atomic
// operations per call.
class BatchCall {
 public:
  BatchCall() {
    if (depth_++ == 0) active_.fetch_add(1, std::memory_order_relaxed);
  }
  ~BatchCall() {
    if (--depth_ == 0) active_.fetch_sub(1, std::memory_order_relaxed);
  }
  BatchCall(const BatchCall&) = delete;
  BatchCall& operator=(const BatchCall&) = delete;

  // Whether a call may start a helper thread: while the callers (at least the one asking) number at most half the
  // cores.
  static bool MaySplit() {
    static const size_t cores = std::max(2u, std::thread::hardware_concurrency());
    const size_t callers = std::max(1, active_.load(std::memory_order_relaxed));
    return callers * 2 <= cores;
  }

 private:
  static inline thread_local int depth_ = 0;
  static inline std::atomic<int> active_{0};
};

// A piece of work handed to one of the process's long-lived helper threads (at most cores - 1 of them, started when
// first needed, never stopped). The splits below used to start a thread per call: a clone, page faults on a fresh
// stack and, at the thread's exit, glibc's madvise of that stack, whose TLB flush interrupts every core running the
// process (5.8% of a bulk import's samples were that flush). A task waits in a queue while every helper is busy, and
// its owner may withdraw it then (Settle), doing the work itself. After fork(), the child's helpers are started
// anew. Thread-safe; `fn` must not throw. Cost: a mutex and a condition variable per Start and Settle.
class HelperTask {
 public:
  explicit HelperTask(std::function<void()> fn) : fn_(std::move(fn)) {}
  HelperTask(const HelperTask&) = delete;
  HelperTask& operator=(const HelperTask&) = delete;
  ~HelperTask() { Settle(); }

  // Queues the task for a helper. False when no helper thread exists or can be started: the task will not run.
  bool Start();
  // Returns once the task has run, or withdraws it if no helper has begun it. Returns whether a helper ran it. After
  // Settle the task may be destroyed.
  bool Settle();
  // The most helper threads this process starts: cores - 1, at least 1.
  static size_t MaxHelpers() { return std::max(2u, std::thread::hardware_concurrency()) - 1; }
  // Settle, then runs the work on the calling thread if no helper ran it.
  void RunOrWait() {
    if (!Settle()) fn_();
  }

 private:
  friend class HelperPool;
  enum class State { kIdle, kQueued, kRunning, kDone };
  std::function<void()> fn_;
  State state_ = State::kIdle;  // guarded by the pool's mutex
};

// Calls run(begin, end) over [0, n): on the calling thread alone when n < parallel_from (or no helper thread can be
// had), else on the calling thread and a helper (HelperTask), which take chunks of about n / 16 items (at least 16)
// in turn from a shared counter. Returns when every chunk is done. A helper that starts late or is descheduled (on
// two cores it shares one with RocksDB's flushes and compactions) takes fewer chunks, so the caller waits at most
// for the chunk it is on, not for half the work; one still busy elsewhere takes none. `run` must be safe to call
// concurrently on disjoint ranges and must not throw; any partition of [0, n) may be asked for. Cost: a hand-off to
// a waiting thread (a few microseconds) when split, so parallel_from should be a few hundred items of microseconds
// each. Not split while the cores are taken (BatchCall::MaySplit).
template <typename Run>
void RunOnTwoThreads(size_t n, size_t parallel_from, const Run& run) {
  if (n < parallel_from || n < 2 || !BatchCall::MaySplit()) {
    run(size_t{0}, n);
    return;
  }
  const size_t chunk = std::max<size_t>(16, n / 16);
  std::atomic<size_t> next{0};
  auto work = [&run, &next, n, chunk] {
    for (;;) {
      const size_t begin = next.fetch_add(chunk, std::memory_order_relaxed);
      if (begin >= n) return;
      run(begin, std::min(n, begin + chunk));
    }
  };
  HelperTask other(work);
  other.Start();  // when it cannot, the caller takes every chunk
  work();
  other.Settle();
}

// As RunOnTwoThreads, telling each call which part it runs: run(0, 0, n / 2) and run(1, n / 2, n) concurrently, or
// run(0, 0, n) alone, so that each part can fill its own output (parts in order: part 0's range comes first).
template <typename Run>
void RunInTwoParts(size_t n, size_t parallel_from, const Run& run) {
  if (n < parallel_from || n < 2 || !BatchCall::MaySplit()) {
    run(0, size_t{0}, n);
    return;
  }
  HelperTask other([&run, n] { run(1, n / 2, n); });
  other.Start();
  run(0, size_t{0}, n / 2);
  other.RunOrWait();  // part 1 on the caller when no helper began it
}

// Runs produce(i) for i in [0, n) in order on a helper thread (HelperTask), ahead of a calling thread that consumes the
// items in order: Ready(i) returns once produce(i) has returned (its writes visible to the caller). For work in two
// stages where the second must be serial (resolution under the write lock) and the first is pure (identifier
// normalization): the first stage of later items overlaps the second stage of earlier ones.
//
// An item the helper has not started when the caller needs it (the helper is behind, busy elsewhere or not
// scheduled) is produced by the caller, and while the caller waits for an item in progress it produces later ones,
// which the helper then skips: neither thread idles. With n below parallel_from, when no helper can be had, or when
// the cores are taken (BatchCall::MaySplit), the constructor produces every item on the calling thread. The
// destructor stops the helper after its current item and waits for it (or withdraws the task if the helper never
// began it), so a caller may stop consuming early. A caller that holds a lock while it consumes holds it while it
// produces items.
//
// `produce` must be safe to call concurrently for different items and must not throw. Not thread-safe: one
// consumer. Cost: a hand-off to a helper when n >= parallel_from, and two atomic operations per item.
class RunAhead {
 public:
  RunAhead(size_t n, size_t parallel_from, std::function<void(size_t)> produce) : n_(n), produce_(std::move(produce)) {
    if (n >= parallel_from && n >= 2 && BatchCall::MaySplit()) {
      state_ = std::make_unique<std::atomic<uint8_t>[]>(n);  // value-initialized: kFree
      helper_ = std::make_unique<HelperTask>([this] {
        for (size_t i = 0; i < n_ && !stop_.load(std::memory_order_relaxed); ++i) {
          if (!Claim(i)) continue;  // the caller produced it
          produce_(i);
          state_[i].store(kDone, std::memory_order_release);
          state_[i].notify_one();
        }
      });
      if (helper_->Start()) return;  // (a helper that never begins claims nothing: the caller produces every item)
      helper_.reset();               // no helper to be had: everything on the caller, as below
      state_.reset();
    }
    for (size_t i = 0; i < n; ++i) produce_(i);
  }
  RunAhead(const RunAhead&) = delete;
  RunAhead& operator=(const RunAhead&) = delete;
  ~RunAhead() {
    if (helper_ != nullptr) {
      stop_.store(true, std::memory_order_relaxed);
      helper_->Settle();
    }
  }

  // Precondition: i < n, asked for in increasing order, each at most once.
  void Ready(size_t i) {
    if (helper_ == nullptr) return;
    if (Claim(i)) {
      produce_(i);
      state_[i].store(kDone, std::memory_order_relaxed);
      return;
    }
    // The second thread has item i: done, or in progress. While it is in progress the caller produces the next
    // items nobody has claimed (the second thread, which goes in order and is on item i, skips them later), so
    // that neither thread idles when the second one is the slower. Items above i can only have been claimed by
    // the caller itself.
    while (state_[i].load(std::memory_order_acquire) != kDone) {
      size_t next = std::max(i + 1, helped_);
      while (next < n_ && !Claim(next)) ++next;
      helped_ = next + 1;
      if (next < n_) {
        produce_(next);
        state_[next].store(kDone, std::memory_order_relaxed);  // read by this thread only (Ready(next))
      } else {
        state_[i].wait(kClaimed, std::memory_order_acquire);
      }
    }
  }

 private:
  static constexpr uint8_t kFree = 0, kClaimed = 1, kDone = 2;

  bool Claim(size_t i) {
    uint8_t expected = kFree;
    return state_[i].compare_exchange_strong(expected, kClaimed, std::memory_order_acq_rel);
  }

  const size_t n_;
  const std::function<void(size_t)> produce_;
  std::unique_ptr<std::atomic<uint8_t>[]> state_;  // per item: kFree, kClaimed (being produced) or kDone
  std::atomic<bool> stop_{false};
  size_t helped_ = 0;                   // items below it that are above the current one were produced by the caller
  std::unique_ptr<HelperTask> helper_;  // last: started after the members it reads
};

// Destroys values on a second thread of its own, so that a caller does not wait for freeing what it no longer needs
// (a bulk import's thousands of JSON documents). Give(value) first waits for the value given before it to be
// destroyed, then hands this one to that thread: at most one is being destroyed at a time, and memory does not pile
// up (a caller that holds a lock while it gives may so wait, under it, for the previous value; no longer than
// destroying its own value would have taken it, if the values are alike). The thread is started by the first Give
// and ends with the object (it used to be a thread per Give: see HelperTask for what that cost). When no thread can
// be started, or when the cores are taken (BatchCall::MaySplit: then the thread that built the value frees it more
// cheaply than another would, and no core is idle to take it), the value is destroyed on the caller, without waiting
// for the value given before (which the second thread may still be destroying). Callers give after releasing the
// engine's locks. The destructor waits for the last one. Thread-safe. `value` must be safe to destroy on another
// thread (no thread-affine locks, nothing borrowed that the caller frees). Cost: a hand-off per Give (a mutex and a
// condition variable), so give only values that take longer to free.
class DeferredFree {
 public:
  DeferredFree() = default;
  DeferredFree(const DeferredFree&) = delete;
  DeferredFree& operator=(const DeferredFree&) = delete;
  ~DeferredFree() {
    {
      std::unique_lock<std::mutex> lock(mu_);
      idle_.wait(lock, [this] { return !busy_; });
      stop_ = true;
    }
    work_.notify_one();
    if (thread_.joinable()) thread_.join();
  }

  template <typename T>
  void Give(T value) {
    if (!BatchCall::MaySplit()) return;  // every core has a caller: destroyed here, by the thread that built it
    auto owned = std::make_shared<T>(std::move(value));  // (std::function wants a copyable closure)
    std::unique_lock<std::mutex> lock(mu_);
    idle_.wait(lock, [this] { return !busy_; });  // the value given before is destroyed
    if (!thread_.joinable()) {
      try {
        thread_ = std::thread([this] { Loop(); });
      } catch (const std::system_error&) {
        return;  // no thread: `owned`, the last reference, destroys the value here
      }
    }
    next_ = [owned = std::move(owned)]() mutable { owned.reset(); };
    busy_ = true;
    work_.notify_one();
  }

  // Waits until everything given is destroyed.
  void Wait() {
    std::unique_lock<std::mutex> lock(mu_);
    idle_.wait(lock, [this] { return !busy_; });
  }

 private:
  void Loop() {
    std::unique_lock<std::mutex> lock(mu_);
    for (;;) {
      work_.wait(lock, [this] { return busy_ || stop_; });
      if (!busy_) return;  // stop_
      std::function<void()> destroy = std::move(next_);
      next_ = nullptr;
      lock.unlock();
      destroy();  // the value, through the closure's reference (the last one)
      destroy = nullptr;
      lock.lock();
      busy_ = false;
      idle_.notify_all();
    }
  }

  std::mutex mu_;
  std::condition_variable work_;  // a value was given, or stop_
  std::condition_variable idle_;  // the value given last was destroyed
  std::function<void()> next_;    // destroys the value given last, until the thread takes it; guarded by mu_
  bool busy_ = false;             // a value was given and is not yet destroyed; guarded by mu_
  bool stop_ = false;             // guarded by mu_
  std::thread thread_;            // started by the first Give
};

}  // namespace cdp::internal

#endif  // CDP_CORE_PARALLEL_H_
