// Copyright 2026 The libcdp Authors.
//
// Columnar storage of JSON documents for segment evaluation: every leaf path of a document is a column of compact
// cells indexed by a dense row number (a profile ordinal, or an event row).

#ifndef CDP_SEGMENTS_COLUMNS_H_
#define CDP_SEGMENTS_COLUMNS_H_

#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "cdp/json.h"

namespace cdp::segments {

// Interned strings, never freed (ids stay valid for the index's lifetime).
class StringPool {
 public:
  uint32_t Intern(std::string_view s);
  // kNone when the string was never interned.
  uint32_t Find(std::string_view s) const;
  std::string_view Get(uint32_t id) const { return views_[id]; }
  size_t size() const { return views_.size(); }
  size_t MemoryBytes() const;

  static constexpr uint32_t kNone = UINT32_MAX;

 private:
  static constexpr size_t kBlock = 1 << 20;
  absl::flat_hash_map<std::string_view, uint32_t> ids_;
  std::vector<std::string_view> views_;
  std::vector<std::unique_ptr<char[]>> blocks_;
  size_t used_ = kBlock;
};

enum class Tag : uint8_t { kMissing, kNull, kFalse, kTrue, kInt, kDouble, kString, kTime, kArray, kObject };

// One value: kInt int64, kDouble double bits, kString pool id, kTime microseconds (a string in libcdp's stored
// timestamp form, "2026-11-27T10:00:00.000Z"), kArray an index into the column's arrays; nothing otherwise.
struct Cell {
  Tag tag = Tag::kMissing;
  uint64_t bits = 0;
};

// Encodes a JSON value. Arrays are not handled here (see Column::SetArray); objects become kObject.
Cell EncodeScalar(const Json& v, StringPool* pool);
// The same without interning: a string never interned becomes {kString, StringPool::kNone}, which equals no cell.
Cell EncodeScalarFound(const Json& v, const StringPool& pool);
// The stored-form timestamp in `s`, if `s` is exactly that form.
bool ParseCanonicalTime(std::string_view s, int64_t* micros);

class Column {
 public:
  static constexpr int kPageBits = 12;
  static constexpr uint32_t kPageSize = 1u << kPageBits;

  Cell Get(uint32_t row) const {
    uint32_t p = row >> kPageBits;
    if (p >= pages_.size() || !pages_[p]) return Cell{};
    const Page& page = *pages_[p];
    uint32_t i = row & (kPageSize - 1);
    return Cell{static_cast<Tag>(page.tag[i]), page.bits[i]};
  }
  void Set(uint32_t row, Cell c);
  void SetArray(uint32_t row, std::vector<Cell> elements);
  void Clear(uint32_t row);
  std::span<const Cell> ArrayOf(Cell c) const { return arrays_[c.bits]; }

  // Rows [page * kPageSize, ...) of page `p`: tags (null when the page holds nothing) and payloads.
  size_t page_count() const { return pages_.size(); }
  const uint8_t* page_tags(size_t p) const { return pages_[p] ? pages_[p]->tag : nullptr; }
  const uint64_t* page_bits(size_t p) const { return pages_[p] ? pages_[p]->bits : nullptr; }
  size_t MemoryBytes() const;

 private:
  struct Page {
    uint8_t tag[kPageSize] = {};
    uint64_t bits[kPageSize] = {};
    uint32_t present = 0;
  };
  Page* PageFor(uint32_t row);
  void Release(Page* page, uint32_t i);

  std::vector<std::unique_ptr<Page>> pages_;
  std::vector<std::vector<Cell>> arrays_;
  std::vector<uint64_t> free_arrays_;
};

// The columns of one kind of document, keyed by dotted path.
class DocTable {
 public:
  // Paths longer than this, or deeper than kMaxDepth, are not kept (rules cannot name them).
  static constexpr size_t kMaxPath = 256;
  static constexpr int kMaxDepth = 16;

  // Replaces row `row` with the leaves of `doc` (an object). When `keep` is set, only top-level keys it accepts
  // are stored. With `fresh`, the caller promises the row holds nothing yet (a new row), which spares clearing it
  // in every column.
  void Put(uint32_t row, const Json& doc, StringPool* pool, bool (*keep)(std::string_view key) = nullptr,
           bool fresh = false);
  // Replaces, in row `row`, the value at `path` (and everything below it) with `value`.
  void PutPath(uint32_t row, std::string_view path, const Json& value, StringPool* pool);
  void Clear(uint32_t row);
  const Column* Find(std::string_view path) const;
  // The columns whose path starts with `prefix` ("" for all), in path order.
  std::vector<std::pair<std::string_view, const Column*>> ColumnsUnder(std::string_view prefix) const;
  Column* GetOrCreate(std::string_view path);
  size_t column_count() const { return columns_.size(); }
  size_t MemoryBytes() const;

 private:
  void PutValue(uint32_t row, std::string* path, const Json& v, StringPool* pool, int depth);

  absl::flat_hash_map<std::string, std::unique_ptr<Column>> columns_;
  std::vector<Column*> all_;
  std::map<std::string, Column*, std::less<>> by_name_;  // the same columns in name order (PutPath's prefix search)
};

}  // namespace cdp::segments

#endif  // CDP_SEGMENTS_COLUMNS_H_
