// Copyright 2026 The libcdp Authors.

#include "engine/identity_cache.h"

#include <algorithm>
#include <cstring>
#include <new>

namespace cdp::internal {

IdentityCache::Entry* IdentityCache::Allocate(std::string_view key, size_t room) {
  Entry* entry = new (::operator new(sizeof(Entry) + room)) Entry;
  entry->capacity_ = static_cast<uint32_t>(room);
  entry->key_size_ = static_cast<uint32_t>(key.size());
  std::memcpy(entry->data(), key.data(), key.size());
  return entry;
}

void IdentityCache::Free(Entry* entry) {
  entry->~Entry();
  ::operator delete(entry);
}

IdentityCache::Entry* IdentityCache::Reserve(std::string_view key, size_t owner_size, size_t hubs_size) {
  auto it = table_.lazy_emplace(key, [&](const auto& construct) {
    construct(Slot{
        Allocate(key, key.size() + (owner_size == kAsNow ? 0 : owner_size) + (hubs_size == kAsNow ? 0 : hubs_size))});
  });
  Entry* entry = it->entry;
  // Room for what the entry holds now and what it will hold: the setter moves the part after the one it changes.
  const size_t held = entry->key_size_ + entry->owner_size_ + entry->hubs_size_;
  const size_t needed = entry->key_size_ + (owner_size == kAsNow ? entry->owner_size_ : owner_size) +
                        (hubs_size == kAsNow ? entry->hubs_size_ : hubs_size);
  const size_t room = std::max(needed, held);
  if (room <= entry->capacity_) return entry;
  Entry* grown = Allocate(key, room);
  grown->owner_size_ = entry->owner_size_;
  grown->hubs_size_ = entry->hubs_size_;
  grown->owner_known_ = entry->owner_known_;
  grown->hubs_known_ = entry->hubs_known_;
  std::memcpy(grown->data() + grown->key_size_, entry->data() + entry->key_size_, held - entry->key_size_);
  Free(entry);
  it->entry = grown;
  return grown;
}

void IdentityCache::SetOwner(std::string_view key, std::string_view owner) {
  Entry* entry = Reserve(key, owner.size(), kAsNow);
  char* at = entry->data() + entry->key_size_;
  std::memmove(at + owner.size(), at + entry->owner_size_, entry->hubs_size_);
  std::memcpy(at, owner.data(), owner.size());
  entry->owner_size_ = static_cast<uint32_t>(owner.size());
  entry->owner_known_ = true;
}

void IdentityCache::SetHubs(std::string_view key, std::string_view hubs) {
  Entry* entry = Reserve(key, kAsNow, hubs.size());
  std::memcpy(entry->data() + entry->key_size_ + entry->owner_size_, hubs.data(), hubs.size());
  entry->hubs_size_ = static_cast<uint32_t>(hubs.size());
  entry->hubs_known_ = true;
}

void IdentityCache::Set(std::string_view key, std::string_view owner, std::string_view hubs) {
  Entry* entry = Reserve(key, owner.size(), hubs.size());
  char* at = entry->data() + entry->key_size_;
  std::memcpy(at, owner.data(), owner.size());
  std::memcpy(at + owner.size(), hubs.data(), hubs.size());
  entry->owner_size_ = static_cast<uint32_t>(owner.size());
  entry->hubs_size_ = static_cast<uint32_t>(hubs.size());
  entry->owner_known_ = true;
  entry->hubs_known_ = true;
}

void IdentityCache::Erase(std::string_view key) {
  auto it = table_.find(key);
  if (it == table_.end()) return;
  Entry* entry = it->entry;
  table_.erase(it);
  Free(entry);
}

void IdentityCache::Clear() {
  for (const Slot& slot : table_) Free(slot.entry);
  table_.clear();
}

void IdentityCache::ClearKeepingRoom() {
  const size_t entries = table_.size();
  for (const Slot& slot : table_) Free(slot.entry);
  table_ = {};
  table_.reserve(entries);
}

}  // namespace cdp::internal
