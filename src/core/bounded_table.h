// Copyright 2026 The libcdp Authors.
//
// Sizes for bounded caches kept in absl flat hash tables.

#ifndef CDP_CORE_BOUNDED_TABLE_H_
#define CDP_CORE_BOUNDED_TABLE_H_

#include <cstddef>

namespace cdp::internal {

// The most entries an absl flat hash table of 2^log2_slots - 1 slots holds before it grows: 7/8 of its slots
// (absl's maximum load factor). A cache cleared when it would pass a bound is best bounded by such a number: a
// bound just above it doubles the table, its memory first touched (and zeroed by the kernel) for the last few
// entries. The test FullTableTest checks it against the absl in use.
constexpr size_t FullTableEntries(int log2_slots) {
  const size_t slots = (size_t{1} << log2_slots) - 1;
  return slots - slots / 8;
}

}  // namespace cdp::internal

#endif  // CDP_CORE_BOUNDED_TABLE_H_
