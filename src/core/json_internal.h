// Copyright 2026 The libcdp Authors.
//
// Checks on cdp::Json values built through the C++ API (Json::Parse has already checked what it parsed), and the
// pieces of Json::Parse / Json::Dump that the lean event parser (events/event_model.cc) shares.

#ifndef CDP_CORE_JSON_INTERNAL_H_
#define CDP_CORE_JSON_INTERNAL_H_

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

// Appends a double as JSON: the shortest form that reads back to the same value, null for NaN and infinities, and
// scientific form for a whole value beyond 64-bit integers (an integer literal that large does not parse).
void AppendJsonDouble(double d, std::string* out);

// Converts a simdjson DOM element into a Json exactly as Json::Parse does (`depth` is the element's nesting level,
// 1 at the top; a container deeper than limits.max_depth is InvalidArgument with the field path; duplicate keys:
// the last one wins, at the first one's position).
Status JsonFromElement(simdjson::dom::element el, int depth, const ParseLimits& limits, Json* out);

}  // namespace cdp::internal

#endif  // CDP_CORE_JSON_INTERNAL_H_
