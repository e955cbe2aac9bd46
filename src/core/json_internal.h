// Copyright 2026 The libcdp Authors.
//
// Checks on cdp::Json values built through the C++ API (Json::Parse has already checked what it parsed), and the
// pieces of Json::Parse / Json::Dump that the lean event parser (events/event_model.cc) shares.

#ifndef CDP_CORE_JSON_INTERNAL_H_
#define CDP_CORE_JSON_INTERNAL_H_

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "cdp/json.h"
#include "cdp/status.h"

namespace simdjson::dom {
class element;
}  // namespace simdjson::dom

namespace cdp::internal {

// InvalidArgument naming the path of the first string or object key that is not valid UTF-8. Stored documents
// are JSON, and JSON text is UTF-8: such a value could be written but never read back.
Status CheckUtf8(const Json& value);

// A copy of `text` with the padding simdjson reads past its end: in `*reused` (a buffer the caller keeps, e.g. per
// thread, so that repeated parses allocate nothing) when it is at most 1 MiB, else in `*own`. Returns its start.
const char* PaddedCopy(std::string_view text, std::string* reused, std::string* own);

// Appends `s` as a JSON string literal, escaped exactly as Json::Dump escapes strings and keys.
void AppendJsonString(std::string_view s, std::string* out);

// Whether any of the 8 bytes of `w` is below 0x20, '"' or '\\' (the bytes JSON strings escape). Exact for "any":
// the borrow of these tests can only mark a byte above one that matches.
inline bool AnyToEscape(uint64_t w) {
  constexpr uint64_t kOnes = 0x0101010101010101ULL;
  constexpr uint64_t kHighs = 0x8080808080808080ULL;
  const uint64_t quote = w ^ (kOnes * '"');
  const uint64_t backslash = w ^ (kOnes * '\\');
  return (((w - kOnes * 0x20) & ~w) | ((quote - kOnes) & ~quote) | ((backslash - kOnes) & ~backslash)) & kHighs;
}

// The size of what AppendJsonString appends for `s`, quotes included. Clears *ascii (when given) if `s` has a byte
// above 0x7f. Cost: a pass over `s`, 8 bytes at a time until the first byte to escape. Inline: SerializedSize
// calls it for every string and key of a document.
inline size_t JsonStringSize(std::string_view s, bool* ascii = nullptr) {
  uint64_t high = 0;  // the high bits of every byte seen
  size_t start = 0;   // as in AppendJsonString: bytes before it need no escape, checked 8 at a time
  while (start + 8 <= s.size()) {
    uint64_t w;
    std::memcpy(&w, s.data() + start, 8);
    high |= w;
    if (AnyToEscape(w)) break;
    start += 8;
  }
  size_t n = s.size() + 2;
  for (size_t i = start; i < s.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    high |= c;
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    const bool short_form = c == '"' || c == '\\' || c == '\n' || c == '\r' || c == '\t' || c == '\b' || c == '\f';
    n += short_form ? 1 : 5;  // a backslash and a letter, or \u00XX, for one byte
  }
  if (ascii != nullptr && (high & 0x8080808080808080ULL) != 0) *ascii = false;
  return n;
}

// Appends a double as JSON: the shortest form that reads back to the same value, null for NaN and infinities, and
// scientific form for a whole value beyond 64-bit integers (an integer literal that large does not parse).
void AppendJsonDouble(double d, std::string* out);

// Converts a simdjson DOM element into a Json exactly as Json::Parse does (`depth` is the element's nesting level,
// 1 at the top; a container deeper than limits.max_depth is InvalidArgument with the field path; duplicate keys:
// the last one wins, at the first one's position).
Status JsonFromElement(simdjson::dom::element el, int depth, const ParseLimits& limits, Json* out);

}  // namespace cdp::internal

#endif  // CDP_CORE_JSON_INTERNAL_H_
