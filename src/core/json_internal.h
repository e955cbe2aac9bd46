// Copyright 2026 The libcdp Authors.
//
// Checks on cdp::Json values built through the C++ API (Json::Parse has already checked what it parsed).

#ifndef CDP_CORE_JSON_INTERNAL_H_
#define CDP_CORE_JSON_INTERNAL_H_

#include "cdp/json.h"
#include "cdp/status.h"

namespace cdp::internal {

// InvalidArgument naming the path of the first string or object key that is not valid UTF-8. Stored documents
// are JSON, and JSON text is UTF-8: such a value could be written but never read back.
Status CheckUtf8(const Json& value);

}  // namespace cdp::internal

#endif  // CDP_CORE_JSON_INTERNAL_H_
