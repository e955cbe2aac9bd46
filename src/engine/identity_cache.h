// Copyright 2026 The libcdp Authors.
//
// The write path's cache of the identity graph: identity key -> the profile holding that identifier value and the
// value's hub set (storage/keys.h IdentityKey, HubKey).

#ifndef CDP_ENGINE_IDENTITY_CACHE_H_
#define CDP_ENGINE_IDENTITY_CACHE_H_

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "absl/container/flat_hash_set.h"
#include "absl/hash/hash.h"

namespace cdp::internal {

// Identity key -> what is known of that identifier value: the profile holding it (its owner) and its hub set, each
// once read or written. One entry holds both: resolution asks for both, and the second answer comes from memory
// the first brought into the CPU cache.
//
// Each entry is one allocation holding its key, owner and hub set side by side; the table holds a pointer to it.
// A bulk import fills millions of entries. A table of inline strings (104-byte slots, the key, owner and hub set
// on the heap) took about 346 MB at 1,835,008 entries, and fresh memory at each doubling, which the kernel zeroes
// as it is first touched (5% of a 1,000,000-record import). Here an entry of a 26-byte key, a 26-byte owner and a
// hub set of one or two hashes takes 80 or 96 bytes, and the table 9 bytes per slot: about 172 MB. A lookup reads
// the table, then the entry (its key, owner and hub set in one or two cache lines).
//
// Not thread-safe: the engine guards it with write_mu_. A pointer or view from Find stays valid until the entry is
// next changed (SetOwner, SetHubs), erased or cleared.
class IdentityCache {
 public:
  class Entry {
   public:
    std::string_view key() const { return {data(), key_size_}; }
    // Whether the owner is known, and the owner (never empty: that a value has no owner is not cached).
    bool owner_known() const { return owner_known_; }
    std::string_view owner() const { return {data() + key_size_, owner_size_}; }
    // Whether the hub set is known, and the set (8-byte hashes; empty: the value has none).
    bool hubs_known() const { return hubs_known_; }
    std::string_view hubs() const { return {data() + key_size_ + owner_size_, hubs_size_}; }

   private:
    friend class IdentityCache;
    const char* data() const { return reinterpret_cast<const char*>(this + 1); }
    char* data() { return reinterpret_cast<char*>(this + 1); }

    uint32_t key_size_ = 0;
    uint32_t owner_size_ = 0;
    uint32_t hubs_size_ = 0;
    uint32_t capacity_ = 0;  // bytes after the header
    bool owner_known_ = false;
    bool hubs_known_ = false;
  };

  IdentityCache() = default;
  IdentityCache(const IdentityCache&) = delete;
  IdentityCache& operator=(const IdentityCache&) = delete;
  ~IdentityCache() { Clear(); }

  size_t size() const { return table_.size(); }
  // The entry of `key`, or null.
  const Entry* Find(std::string_view key) const {
    auto it = table_.find(key);
    return it != table_.end() ? it->entry : nullptr;
  }
  // Hints the CPU to fetch the table's memory for `key` (no effect on results).
  void Prefetch(std::string_view key) const { table_.prefetch(key); }

  // Records that `owner` (not empty) holds the value of `key`; adds the entry if absent. `owner` must not point
  // into the cache. Cost: a lookup, and an allocation when the entry is new or outgrows its room.
  void SetOwner(std::string_view key, std::string_view owner);
  // Records the hub set of `key` (empty: none); adds the entry if absent. As SetOwner.
  void SetHubs(std::string_view key, std::string_view hubs);
  // SetOwner and SetHubs at once: one lookup, and room for both in one allocation (set one after the other, a new
  // value's entry was allocated twice).
  void Set(std::string_view key, std::string_view owner, std::string_view hubs);
  // Drops the entry of `key`, if there is one.
  void Erase(std::string_view key);
  // Drops every entry and frees the table.
  void Clear();
  // Drops every entry and keeps a table of the same size: a bulk import that filled the cache fills it again, and
  // regrowing a table of millions takes fresh memory at each doubling (the allocator hands back the block just
  // freed).
  void ClearKeepingRoom();

 private:
  struct Slot {
    mutable Entry* entry;  // replaced in place when the entry is reallocated (same key, same hash)
  };
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view key) const { return absl::Hash<std::string_view>{}(key); }
    size_t operator()(const Slot& s) const { return (*this)(s.entry->key()); }
  };
  struct Eq {
    using is_transparent = void;
    static std::string_view Key(std::string_view key) { return key; }
    static std::string_view Key(const Slot& s) { return s.entry->key(); }
    template <typename A, typename B>
    bool operator()(const A& a, const B& b) const {
      return Key(a) == Key(b);
    }
  };

  static constexpr size_t kAsNow = ~size_t{0};
  // The entry of `key` (added if absent) with room for an owner and a hub set of these sizes (kAsNow: the size
  // held now) and for what it holds now, which stays where it is.
  Entry* Reserve(std::string_view key, size_t owner_size, size_t hubs_size);
  static Entry* Allocate(std::string_view key, size_t room);
  static void Free(Entry* entry);

  absl::flat_hash_set<Slot, Hash, Eq> table_;
};

}  // namespace cdp::internal

#endif  // CDP_ENGINE_IDENTITY_CACHE_H_
