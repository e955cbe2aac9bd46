// Copyright 2026 The libcdp Authors.
//
// FullTableEntries agrees with the absl flat hash tables in use.

#include "core/bounded_table.h"

#include <gtest/gtest.h>

#include <string>

#include "absl/container/flat_hash_map.h"

namespace cdp::internal {
namespace {

// A table filled to FullTableEntries(k) keeps 2^k - 1 slots (also when emptied and reserved again, as the engine's
// caches are); one entry more grows it.
TEST(FullTableTest, ATableHoldsFullTableEntriesWithoutGrowing) {
  for (int log2_slots : {4, 10, 14}) {
    const size_t slots = (size_t{1} << log2_slots) - 1;
    absl::flat_hash_map<std::string, int> table;
    for (size_t i = 0; i < FullTableEntries(log2_slots); ++i) table.emplace("key" + std::to_string(i), 0);
    EXPECT_EQ(table.capacity(), slots) << log2_slots;
    table = {};
    table.reserve(FullTableEntries(log2_slots));
    EXPECT_EQ(table.capacity(), slots) << log2_slots;
    for (size_t i = 0; i < FullTableEntries(log2_slots); ++i) table.emplace("other" + std::to_string(i), 0);
    EXPECT_EQ(table.capacity(), slots) << log2_slots;
    table.emplace("one more", 0);
    EXPECT_GT(table.capacity(), slots) << log2_slots;
  }
  EXPECT_EQ(FullTableEntries(21), 1'835'008u);
}

}  // namespace
}  // namespace cdp::internal
