// Copyright 2026 The libcdp Authors.
//
// Opaque page cursors: bytes written as lower-case hex, so they travel safely in URLs and JSON.

#ifndef CDP_ENGINE_CURSOR_H_
#define CDP_ENGINE_CURSOR_H_

#include <string>
#include <string_view>

#include "cdp/status.h"

namespace cdp::internal {

inline std::string EncodeCursor(std::string_view bytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    out.push_back(kHex[c >> 4]);
    out.push_back(kHex[c & 15]);
  }
  return out;
}

inline Result<std::string> DecodeCursor(std::string_view cursor) {
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  if (cursor.size() % 2 != 0 || cursor.size() > (2u << 20))
    return Status::InvalidArgument("malformed cursor", "cursor");
  std::string out;
  out.reserve(cursor.size() / 2);
  for (size_t i = 0; i < cursor.size(); i += 2) {
    int hi = nibble(cursor[i]), lo = nibble(cursor[i + 1]);
    if (hi < 0 || lo < 0) return Status::InvalidArgument("malformed cursor", "cursor");
    out.push_back(static_cast<char>(hi << 4 | lo));
  }
  return out;
}

}  // namespace cdp::internal

#endif  // CDP_ENGINE_CURSOR_H_
