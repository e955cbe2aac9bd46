// Copyright 2026 The libcdp Authors.

#include "core/ids.h"

#include <chrono>
#include <random>

#include "fmt/format.h"

namespace cdp::internal {

std::string NewId() {
  static constexpr char kAlphabet[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
  thread_local std::mt19937_64 rng([] {
    std::random_device rd;
    return (static_cast<uint64_t>(rd()) << 32) ^ rd() ^
           static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
  }());
  uint64_t ms = static_cast<uint64_t>(NowMicros() / 1000);
  uint64_t r1 = rng(), r2 = rng();
  // 128 bits: 48 time bits, then 80 random bits; emitted 5 bits at a time (26 chars = 130 bits, top 2 zero).
  unsigned __int128 v = (static_cast<unsigned __int128>(ms & 0xFFFFFFFFFFFFull) << 80) |
                        (static_cast<unsigned __int128>(r1 & 0xFFFF) << 64) | r2;
  std::string out(26, '0');
  for (int i = 25; i >= 0; --i) {
    out[i] = kAlphabet[static_cast<unsigned>(v & 31)];
    v >>= 5;
  }
  return out;
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
