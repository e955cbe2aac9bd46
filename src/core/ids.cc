// Copyright 2026 The libcdp Authors.

#include "core/ids.h"

#include <chrono>
#include <mutex>
#include <random>

#include "fmt/format.h"

namespace cdp::internal {

namespace {

constexpr char kAlphabet[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

uint64_t Random64() {
  thread_local std::mt19937_64 rng([] {
    std::random_device rd;
    return (static_cast<uint64_t>(rd()) << 32) ^ rd() ^
           static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
  }());
  return rng();
}

// 128 bits as a ULID: 26 Crockford base32 characters, 5 bits at a time (130 bits, top 2 zero).
std::string Encode(unsigned __int128 v) {
  std::string out(26, '0');
  for (int i = 25; i >= 0; --i) {
    out[i] = kAlphabet[static_cast<unsigned>(v & 31)];
    v >>= 5;
  }
  return out;
}

}  // namespace

std::string NewMonotonicId() {
  static std::mutex mu;
  static unsigned __int128 last = 0;
  const uint64_t ms = static_cast<uint64_t>(NowMicros() / 1000) & 0xFFFFFFFFFFFFull;
  unsigned __int128 v = (static_cast<unsigned __int128>(ms) << 80) |
                        (static_cast<unsigned __int128>(Random64() & 0xFFFF) << 64) | Random64();
  std::lock_guard<std::mutex> lock(mu);
  if (v <= last) v = last + 1;  // same millisecond (or the clock went back): one more than the last
  last = v;
  return Encode(v);
}

std::string NewId() {
  uint64_t ms = static_cast<uint64_t>(NowMicros() / 1000);
  uint64_t r1 = Random64(), r2 = Random64();
  // 128 bits: 48 time bits, then 80 random bits.
  unsigned __int128 v = (static_cast<unsigned __int128>(ms & 0xFFFFFFFFFFFFull) << 80) |
                        (static_cast<unsigned __int128>(r1 & 0xFFFF) << 64) | r2;
  return Encode(v);
}

Status ValidateId(std::string_view id, std::string_view field) {
  if (id.empty() || id.size() > 128) {
    return Status::InvalidArgument("an id must have 1 to 128 characters", std::string(field));
  }
  for (char c : id) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.' ||
              c == ':' || c == '@' || c == '-';
    if (!ok) {
      return Status::InvalidArgument("an id may hold only letters, digits and _ . : @ -", std::string(field));
    }
  }
  return Status::OK();
}

int64_t NowMicros() {
  return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace cdp::internal
