// Copyright 2026 The libcdp Authors.
//
// IdentityCache answers as a map of key -> (owner, hub set) does, through entries that grow, shrink and move.

#include "engine/identity_cache.h"

#include <gtest/gtest.h>

#include <map>
#include <optional>
#include <random>
#include <string>

namespace cdp::internal {
namespace {

struct Known {
  std::optional<std::string> owner, hubs;
};

// Every key of `model` is found with the same parts, and nothing else is held.
void ExpectSame(const IdentityCache& cache, const std::map<std::string, Known>& model) {
  ASSERT_EQ(cache.size(), model.size());
  for (const auto& [key, known] : model) {
    const IdentityCache::Entry* entry = cache.Find(key);
    ASSERT_NE(entry, nullptr) << key;
    EXPECT_EQ(entry->key(), key);
    EXPECT_EQ(entry->owner_known(), known.owner.has_value()) << key;
    if (known.owner) EXPECT_EQ(entry->owner(), *known.owner) << key;
    EXPECT_EQ(entry->hubs_known(), known.hubs.has_value()) << key;
    if (known.hubs) EXPECT_EQ(entry->hubs(), *known.hubs) << key;
  }
}

TEST(IdentityCacheTest, SettingOnePartKeepsTheOther) {
  IdentityCache cache;
  const std::string key("email\0a@example.com", 19);  // identity keys hold a NUL byte
  EXPECT_EQ(cache.Find(key), nullptr);
  cache.SetHubs(key, std::string(16, 'h'));
  const IdentityCache::Entry* entry = cache.Find(key);
  ASSERT_NE(entry, nullptr);
  EXPECT_FALSE(entry->owner_known());
  EXPECT_TRUE(entry->hubs_known());
  cache.SetOwner(key, "01M8SFQJCD0FF2CPR0D7Y2RGTZ");  // longer than the room: the entry moves
  entry = cache.Find(key);
  EXPECT_EQ(entry->owner(), "01M8SFQJCD0FF2CPR0D7Y2RGTZ");
  EXPECT_EQ(entry->hubs(), std::string(16, 'h'));
  cache.SetOwner(key, "P1");  // shorter: the hub set moves down
  cache.SetHubs(key, "");     // known to have none
  entry = cache.Find(key);
  EXPECT_EQ(entry->owner(), "P1");
  EXPECT_TRUE(entry->hubs_known());
  EXPECT_EQ(entry->hubs(), "");
  EXPECT_EQ(cache.Find(std::string_view(key).substr(0, 5)), nullptr);  // "email" alone is another key
  cache.Erase(key);
  EXPECT_EQ(cache.Find(key), nullptr);
  EXPECT_EQ(cache.size(), 0u);
  cache.Erase(key);  // absent: nothing happens
}

TEST(IdentityCacheTest, AnswersAsAMapThroughRandomChanges) {
  std::mt19937 random(7);
  IdentityCache cache;
  std::map<std::string, Known> model;
  auto key_of = [&](size_t i) {
    // Lengths from 3 to ~60 bytes, a NUL inside, many sharing a prefix.
    return "type" + std::string(1, '\0') + std::string(i % 50, 'v') + std::to_string(i);
  };
  auto part = [&](size_t max) {
    std::string s(random() % (max + 1), '\0');
    for (char& c : s) c = static_cast<char>(random());
    return s;
  };
  auto owner_part = [&] {  // an owner is never empty
    std::string owner = part(40);
    return owner.empty() ? std::string("x") : owner;
  };
  for (int step = 0; step < 60000; ++step) {
    const std::string key = key_of(random() % 5000);
    switch (random() % 12) {
      case 10:
      case 11: {  // both at once
        const std::string owner = owner_part();
        const std::string hubs = part(48);
        cache.Set(key, owner, hubs);
        model[key].owner = owner;
        model[key].hubs = hubs;
        break;
      }
      case 0:
      case 1:
      case 2:
      case 3: {
        const std::string owner = owner_part();
        cache.SetOwner(key, owner);
        model[key].owner = owner;
        break;
      }
      case 4:
      case 5:
      case 6:
      case 7: {
        const std::string hubs = part(48);
        cache.SetHubs(key, hubs);
        model[key].hubs = hubs;
        break;
      }
      default:  // 8, 9
        cache.Erase(key);
        model.erase(key);
        break;
    }
    if (step == 20000 || step == 40000) {  // everything goes, the table freed or kept
      ExpectSame(cache, model);
      if (step == 20000) {
        cache.Clear();
      } else {
        cache.ClearKeepingRoom();
      }
      model.clear();
    }
    if (step % 5000 == 0) ExpectSame(cache, model);
  }
  ExpectSame(cache, model);
  EXPECT_GT(model.size(), 1000u);  // the table grew through several sizes
}

}  // namespace
}  // namespace cdp::internal
