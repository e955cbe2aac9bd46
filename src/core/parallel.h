// Copyright 2026 The libcdp Authors.
//
// Splitting pure per-item work of one call over two threads.

#ifndef CDP_CORE_PARALLEL_H_
#define CDP_CORE_PARALLEL_H_

#include <algorithm>
#include <atomic>
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

// Calls run(begin, end) over [0, n): on the calling thread alone when n < parallel_from (or no thread can be
// started), else on the calling thread and a second one, which take chunks of about n / 16 items (at least 16) in
// turn from a shared counter. Returns when every chunk is done. A second thread that starts late or is descheduled
// (on two cores it shares one with RocksDB's flushes and compactions) takes fewer chunks, so the caller waits at
// most for the chunk it is on, not for half the work. `run` must be safe to call concurrently on disjoint ranges
// and must not throw; any partition of [0, n) may be asked for. Cost: one thread start (~20-50 us) when split, so
// parallel_from should be a few hundred items of microseconds each. Not split while the cores are taken
// (BatchCall::MaySplit).
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
  std::thread other;
  try {
    other = std::thread(work);
  } catch (const std::system_error&) {
    run(size_t{0}, n);
    return;
  }
  work();
  other.join();
}

// As RunOnTwoThreads, telling each call which part it runs: run(0, 0, n / 2) and run(1, n / 2, n) concurrently, or
// run(0, 0, n) alone, so that each part can fill its own output (parts in order: part 0's range comes first).
template <typename Run>
void RunInTwoParts(size_t n, size_t parallel_from, const Run& run) {
  if (n < parallel_from || n < 2 || !BatchCall::MaySplit()) {
    run(0, size_t{0}, n);
    return;
  }
  std::thread other([&run, n] { run(1, n / 2, n); });
  run(0, size_t{0}, n / 2);
  other.join();
}

// Runs produce(i) for i in [0, n) in order on a second thread, ahead of a calling thread that consumes the items
// in order: Ready(i) returns once produce(i) has returned (its writes visible to the caller). For work in two
// stages where the second must be serial (resolution under the write lock) and the first is pure (identifier
// normalization): the first stage of later items overlaps the second stage of earlier ones.
//
// An item the second thread has not started when the caller needs it (that thread is behind, or not scheduled)
// is produced by the caller, and while the caller waits for an item in progress it produces later ones, which the
// second thread then skips: neither thread idles. With n below parallel_from, when no thread can be started, or
// when the cores are taken (BatchCall::MaySplit), the constructor produces every item on the calling thread. The
// destructor stops the second thread after its current item and joins it, so a caller may stop consuming early. A
// caller that holds a lock while it consumes holds it while it produces items.
//
// `produce` must be safe to call concurrently for different items and must not throw. Not thread-safe: one
// consumer. Cost: one thread start (~20-50 us) when n >= parallel_from, and two atomic operations per item.
class RunAhead {
 public:
  RunAhead(size_t n, size_t parallel_from, std::function<void(size_t)> produce) : n_(n), produce_(std::move(produce)) {
    if (n >= parallel_from && n >= 2 && BatchCall::MaySplit()) {
      state_ = std::make_unique<std::atomic<uint8_t>[]>(n);  // value-initialized: kFree
      try {
        thread_ = std::thread([this] {
          for (size_t i = 0; i < n_ && !stop_.load(std::memory_order_relaxed); ++i) {
            if (!Claim(i)) continue;  // the caller produced it
            produce_(i);
            state_[i].store(kDone, std::memory_order_release);
            state_[i].notify_one();
          }
        });
        return;
      } catch (const std::system_error&) {  // no thread to be had: everything on the caller, as below
        state_.reset();
      }
    }
    for (size_t i = 0; i < n; ++i) produce_(i);
  }
  RunAhead(const RunAhead&) = delete;
  RunAhead& operator=(const RunAhead&) = delete;
  ~RunAhead() {
    if (thread_.joinable()) {
      stop_.store(true, std::memory_order_relaxed);
      thread_.join();
    }
  }

  // Precondition: i < n, asked for in increasing order, each at most once.
  void Ready(size_t i) {
    if (!thread_.joinable()) return;
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
  size_t helped_ = 0;   // items below it that are above the current one were produced by the caller
  std::thread thread_;  // last: started after the members it reads
};

// Destroys values on a second thread, so that a caller does not wait for freeing what it no longer needs (a bulk
// import's thousands of JSON documents). Give(value) first waits for the value given before it to be destroyed,
// then starts a thread that destroys this one: at most one is being destroyed by that thread at a time, and memory
// does not pile up (a caller that holds a lock while it gives may so wait, under it, for the previous value; no longer
// than destroying its own value would have taken it, if the values are alike). When no thread can be started, or when
// the cores are taken (BatchCall::MaySplit: then the thread that built the value frees it more cheaply than another
// would, and no core is idle to take it), the value is destroyed on the caller, without waiting for the value
// given before (which the second thread may still be destroying). Callers give after releasing the engine's
// locks. The destructor waits for the last one. Thread-safe. `value` must be safe to destroy on another thread (no
// thread-affine locks, nothing borrowed that the caller frees). Cost: one thread start (~20-50 us) per Give, so
// give only values that take longer to free.
class DeferredFree {
 public:
  DeferredFree() = default;
  DeferredFree(const DeferredFree&) = delete;
  DeferredFree& operator=(const DeferredFree&) = delete;
  ~DeferredFree() { Wait(); }

  template <typename T>
  void Give(T value) {
    if (!BatchCall::MaySplit()) return;  // every core has a caller: destroyed here, by the thread that built it
    auto owned = std::make_unique<T>(std::move(value));
    std::lock_guard<std::mutex> lock(mu_);
    if (thread_.joinable()) thread_.join();
    try {
      thread_ = std::thread([owned = std::move(owned)]() mutable { owned.reset(); });
    } catch (const std::system_error&) {
      // No thread: the value went into the closure, which is destroyed (with it) on this thread as this unwinds.
    }
  }

  // Waits until everything given is destroyed.
  void Wait() {
    std::lock_guard<std::mutex> lock(mu_);
    if (thread_.joinable()) thread_.join();
  }

 private:
  std::mutex mu_;
  std::thread thread_;  // guarded by mu_
};

}  // namespace cdp::internal

#endif  // CDP_CORE_PARALLEL_H_
