// Copyright 2026 The libcdp Authors.
//
// Bytes as lower-case hex and back: for keys and cursors that travel in JSON and URLs.

#ifndef CDP_CORE_HEX_H_
#define CDP_CORE_HEX_H_

#include <string>
#include <string_view>

namespace cdp::internal {

inline std::string HexEncode(std::string_view bytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    out.push_back(kHex[c >> 4]);
    out.push_back(kHex[c & 15]);
  }
  return out;
}

// False (and *out unspecified) unless `hex` is an even number of lower-case hex digits.
inline bool HexDecode(std::string_view hex, std::string* out) {
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  if (hex.size() % 2 != 0) return false;
  out->clear();
  out->reserve(hex.size() / 2);
  for (size_t i = 0; i < hex.size(); i += 2) {
    const int hi = nibble(hex[i]), lo = nibble(hex[i + 1]);
    if (hi < 0 || lo < 0) return false;
    out->push_back(static_cast<char>(hi << 4 | lo));
  }
  return true;
}

}  // namespace cdp::internal

#endif  // CDP_CORE_HEX_H_
