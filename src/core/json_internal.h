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

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

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

// The index of the first byte of p[0, n) that JSON strings escape (below 0x20, '"' or '\\'), or n. ORs into *high
// bytes of p[0, n) that include every byte before that index: its 0x80 bits say whether one is above 0x7f. SSE2
// (part of every x86-64) checks 16 bytes at a time, the last block overlapping the one before it; elsewhere 8.
inline size_t FirstToEscape(const char* p, size_t n, uint64_t* high) {
#if defined(__SSE2__)
  if (n >= 16) {
    const __m128i quote = _mm_set1_epi8('"');
    const __m128i backslash = _mm_set1_epi8('\\');
    const __m128i below = _mm_set1_epi8(0x1f);
    const __m128i zero = _mm_setzero_si128();
    auto mask = [&](size_t at) {
      const __m128i x = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + at));
      if (_mm_movemask_epi8(x) != 0) *high |= 0x80;  // a byte above 0x7f
      const __m128i hit = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(x, quote), _mm_cmpeq_epi8(x, backslash)),
                                       _mm_cmpeq_epi8(_mm_subs_epu8(x, below), zero));  // x <= 0x1f
      return static_cast<unsigned>(_mm_movemask_epi8(hit));
    };
    size_t at = 0;
    for (; at + 16 <= n; at += 16) {
      if (const unsigned m = mask(at)) return at + static_cast<size_t>(__builtin_ctz(m));
    }
    if (at == n) return n;
    const unsigned m = mask(n - 16);  // its bytes before `at` are known clean
    return m == 0 ? n : n - 16 + static_cast<size_t>(__builtin_ctz(m));
  }
#endif
  size_t at = 0;
  while (at + 8 <= n) {
    uint64_t w;
    std::memcpy(&w, p + at, 8);
    *high |= w;
    if (AnyToEscape(w)) break;
    at += 8;
  }
  for (; at < n; ++at) {
    const unsigned char c = static_cast<unsigned char>(p[at]);
    *high |= c;
    if (c < 0x20 || c == '"' || c == '\\') break;
  }
  return at;
}

// The size of what AppendJsonString appends for `s`, quotes included. Clears *ascii (when given) if `s` has a byte
// above 0x7f. Cost: a pass over `s` (FirstToEscape), then a byte at a time from the first byte to escape. Inline:
// SerializedSize calls it for every string and key of a document.
inline size_t JsonStringSize(std::string_view s, bool* ascii = nullptr) {
  uint64_t high = 0;  // its 0x80 bits: whether a byte seen is above 0x7f
  const size_t start = FirstToEscape(s.data(), s.size(), &high);
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
