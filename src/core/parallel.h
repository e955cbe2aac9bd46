// Copyright 2026 The libcdp Authors.
//
// Splitting pure per-item work of one call over two threads.

#ifndef CDP_CORE_PARALLEL_H_
#define CDP_CORE_PARALLEL_H_

#include <cstddef>
#include <thread>

namespace cdp::internal {

// Calls run(begin, end) over [0, n): on the calling thread alone when n < parallel_from, else the upper half on a
// second thread while the calling thread does the lower half. Returns when both are done. `run` must be safe to
// call concurrently on disjoint ranges and must not throw. Cost: one thread start (~20-50 us) when split, so
// parallel_from should be a few hundred items of microseconds each.
template <typename Run>
void RunOnTwoThreads(size_t n, size_t parallel_from, const Run& run) {
  if (n < parallel_from || n < 2) {
    run(size_t{0}, n);
    return;
  }
  std::thread other([&run, n] { run(n / 2, n); });
  run(size_t{0}, n / 2);
  other.join();
}

// As RunOnTwoThreads, telling each call which part it runs: run(0, 0, n / 2) and run(1, n / 2, n) concurrently, or
// run(0, 0, n) alone, so that each part can fill its own output (parts in order: part 0's range comes first).
template <typename Run>
void RunInTwoParts(size_t n, size_t parallel_from, const Run& run) {
  if (n < parallel_from || n < 2) {
    run(0, size_t{0}, n);
    return;
  }
  std::thread other([&run, n] { run(1, n / 2, n); });
  run(0, size_t{0}, n / 2);
  other.join();
}

}  // namespace cdp::internal

#endif  // CDP_CORE_PARALLEL_H_
