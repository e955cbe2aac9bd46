// Copyright 2026 The libcdp Authors.
//
// Opaque page cursors: bytes written as lower-case hex, so they travel safely in URLs and JSON.

#ifndef CDP_ENGINE_CURSOR_H_
#define CDP_ENGINE_CURSOR_H_

#include <string>
#include <string_view>

#include "cdp/status.h"
#include "core/hex.h"

namespace cdp::internal {

inline std::string EncodeCursor(std::string_view bytes) { return HexEncode(bytes); }

inline Result<std::string> DecodeCursor(std::string_view cursor) {
  std::string out;
  if (cursor.size() > (2u << 20) || !HexDecode(cursor, &out)) {
    return Status::InvalidArgument("malformed cursor", "cursor");
  }
  return out;
}

}  // namespace cdp::internal

#endif  // CDP_ENGINE_CURSOR_H_
