// Copyright 2026 The libcdp Authors.

#include "segments/columns.h"

#include <algorithm>
#include <cstring>

#include "cdp/query.h"

namespace cdp::segments {

uint32_t StringPool::Intern(std::string_view s) {
  auto it = ids_.find(s);
  if (it != ids_.end()) return it->second;
  if (s.size() > kBlock / 4) {
    blocks_.insert(blocks_.begin(), std::make_unique<char[]>(s.size()));  // a block of its own
    std::memcpy(blocks_.front().get(), s.data(), s.size());
    s = std::string_view(blocks_.front().get(), s.size());
  } else {
    if (used_ + s.size() > kBlock) {
      blocks_.push_back(std::make_unique<char[]>(kBlock));
      used_ = 0;
    }
    char* dst = blocks_.back().get() + used_;
    std::memcpy(dst, s.data(), s.size());
    used_ += s.size();
    s = std::string_view(dst, s.size());
  }
  uint32_t id = static_cast<uint32_t>(views_.size());
  views_.push_back(s);
  ids_.emplace(s, id);
  return id;
}

uint32_t StringPool::Find(std::string_view s) const {
  auto it = ids_.find(s);
  return it == ids_.end() ? kNone : it->second;
}

size_t StringPool::MemoryBytes() const {
  return blocks_.size() * kBlock + views_.capacity() * sizeof(std::string_view) +
         ids_.capacity() * (sizeof(std::string_view) + sizeof(uint32_t) + 1);
}

bool ParseCanonicalTime(std::string_view s, int64_t* micros) {
  if (s.size() != 24 || s[4] != '-' || s[10] != 'T' || s[19] != '.' || s[23] != 'Z') return false;
  auto t = ParseTimestamp(s);
  if (!t.ok() || FormatTimestamp(*t) != s) return false;
  *micros = *t;
  return true;
}

Cell EncodeScalarFound(const Json& v, const StringPool& pool) {
  int64_t t;
  if (v.is_string() && !ParseCanonicalTime(v.as_string(), &t)) return {Tag::kString, pool.Find(v.as_string())};
  return EncodeScalar(v, nullptr);  // no other type reads the pool
}

Cell EncodeScalar(const Json& v, StringPool* pool) {
  switch (v.type()) {
    case Json::Type::kNull:
      return {Tag::kNull, 0};
    case Json::Type::kBool:
      return {v.as_bool() ? Tag::kTrue : Tag::kFalse, 0};
    case Json::Type::kInt:
      return {Tag::kInt, static_cast<uint64_t>(v.as_int())};
    case Json::Type::kDouble: {
      double d = v.as_number();
      uint64_t bits;
      std::memcpy(&bits, &d, sizeof bits);
      return {Tag::kDouble, bits};
    }
    case Json::Type::kString: {
      int64_t t;
      if (ParseCanonicalTime(v.as_string(), &t)) return {Tag::kTime, static_cast<uint64_t>(t)};
      return {Tag::kString, pool->Intern(v.as_string())};
    }
    case Json::Type::kArray:
      return {Tag::kArray, 0};
    case Json::Type::kObject:
      return {Tag::kObject, 0};
  }
  return {};
}

Column::Page* Column::PageFor(uint32_t row) {
  uint32_t p = row >> kPageBits;
  if (p >= pages_.size()) pages_.resize(p + 1);
  if (!pages_[p]) pages_[p] = std::make_unique<Page>();
  return pages_[p].get();
}

void Column::Release(Page* page, uint32_t i) {
  Tag old = static_cast<Tag>(page->tag[i]);
  if (old == Tag::kArray) {
    arrays_[page->bits[i]].clear();
    arrays_[page->bits[i]].shrink_to_fit();
    free_arrays_.push_back(page->bits[i]);
  }
  if (old != Tag::kMissing) --page->present;
}

void Column::Set(uint32_t row, Cell c) {
  Page* page = PageFor(row);
  uint32_t i = row & (kPageSize - 1);
  Release(page, i);
  page->tag[i] = static_cast<uint8_t>(c.tag);
  page->bits[i] = c.bits;
  if (c.tag != Tag::kMissing) ++page->present;
}

void Column::SetArray(uint32_t row, std::vector<Cell> elements) {
  uint64_t slot;
  if (!free_arrays_.empty()) {
    slot = free_arrays_.back();
    free_arrays_.pop_back();
    arrays_[slot] = std::move(elements);
  } else {
    slot = arrays_.size();
    arrays_.push_back(std::move(elements));
  }
  Page* page = PageFor(row);
  uint32_t i = row & (kPageSize - 1);
  Release(page, i);
  page->tag[i] = static_cast<uint8_t>(Tag::kArray);
  page->bits[i] = slot;
  ++page->present;
}

void Column::Clear(uint32_t row) {
  uint32_t p = row >> kPageBits;
  if (p >= pages_.size() || !pages_[p]) return;
  Page* page = pages_[p].get();
  uint32_t i = row & (kPageSize - 1);
  Release(page, i);
  page->tag[i] = 0;
  page->bits[i] = 0;
  if (page->present == 0) pages_[p].reset();
}

size_t Column::MemoryBytes() const {
  size_t bytes = pages_.capacity() * sizeof(void*) + arrays_.capacity() * sizeof(std::vector<Cell>);
  for (const auto& p : pages_) bytes += p ? sizeof(Page) : 0;
  for (const auto& a : arrays_) bytes += a.capacity() * sizeof(Cell);
  return bytes;
}

void DocTable::Put(uint32_t row, const Json& doc, StringPool* pool, bool (*keep)(std::string_view key), bool fresh) {
  if (!fresh) Clear(row);
  if (!doc.is_object()) return;
  std::string path;
  path.reserve(64);
  for (const auto& [key, value] : doc.members()) {
    if (keep != nullptr && !keep(key)) continue;
    if (key.empty() || key.find('.') != std::string::npos || doc.Find(key) != &value) continue;
    path.assign(key);
    PutValue(row, &path, value, pool, 1);
  }
}

// Keys with dots, empty keys and repeated keys (after the first) are unreachable by a dotted path, as in
// Json::FindPath, so they are not stored.
void DocTable::PutValue(uint32_t row, std::string* path, const Json& v, StringPool* pool, int depth) {
  if (path->size() > kMaxPath || depth > kMaxDepth) return;
  Column* col = GetOrCreate(*path);
  if (v.is_array()) {
    std::vector<Cell> elements;
    elements.reserve(v.size());
    for (const Json& item : v.items()) elements.push_back(EncodeScalar(item, pool));
    col->SetArray(row, std::move(elements));
    return;
  }
  col->Set(row, EncodeScalar(v, pool));
  if (!v.is_object()) return;
  size_t base = path->size();
  for (const auto& [key, child] : v.members()) {
    if (key.empty() || key.find('.') != std::string::npos || v.Find(key) != &child) continue;
    path->resize(base);
    path->push_back('.');
    path->append(key);
    PutValue(row, path, child, pool, depth + 1);
  }
  path->resize(base);
}

void DocTable::PutPath(uint32_t row, std::string_view path, const Json& value, StringPool* pool) {
  // The column at `path` and those below it ("path.x"): names starting with `path`, a run in name order.
  for (auto it = by_name_.lower_bound(path); it != by_name_.end() && it->first.starts_with(path); ++it) {
    if (it->first.size() == path.size() || it->first[path.size()] == '.') it->second->Clear(row);
  }
  std::string p(path);
  PutValue(row, &p, value, pool, static_cast<int>(std::count(p.begin(), p.end(), '.')) + 1);
}

void DocTable::Clear(uint32_t row) {
  for (Column* c : all_) c->Clear(row);
}

const Column* DocTable::Find(std::string_view path) const {
  auto it = columns_.find(absl::string_view(path.data(), path.size()));
  return it == columns_.end() ? nullptr : it->second.get();
}

std::vector<std::pair<std::string_view, const Column*>> DocTable::ColumnsUnder(std::string_view prefix) const {
  std::vector<std::pair<std::string_view, const Column*>> out;
  for (auto it = by_name_.lower_bound(prefix); it != by_name_.end() && it->first.starts_with(prefix); ++it) {
    out.emplace_back(it->first, it->second);
  }
  return out;
}

Column* DocTable::GetOrCreate(std::string_view path) {
  auto it = columns_.find(absl::string_view(path.data(), path.size()));
  if (it != columns_.end()) return it->second.get();
  auto col = std::make_unique<Column>();
  Column* raw = col.get();
  columns_.emplace(std::string(path), std::move(col));
  all_.push_back(raw);
  by_name_.emplace(std::string(path), raw);
  return raw;
}

size_t DocTable::MemoryBytes() const {
  size_t bytes = 0;
  for (const Column* c : all_) bytes += c->MemoryBytes();
  return bytes;
}

}  // namespace cdp::segments
