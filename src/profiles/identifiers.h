// Copyright 2026 The libcdp Authors.
//
// The identifiers that name a profile (externalIds), their normalization and their resolution order.

#ifndef CDP_PROFILES_IDENTIFIERS_H_
#define CDP_PROFILES_IDENTIFIERS_H_

#include <string>
#include <string_view>
#include <vector>

#include "cdp/status.h"

namespace cdp::internal {

// Identifier types in resolution priority: an event naming several resolves to the first that matches.
inline constexpr std::string_view kIdentifierTypes[] = {"customerId", "email", "phone", "shopifyId", "deviceId"};

struct Identifier {
  std::string type;   // one of kIdentifierTypes
  std::string value;  // normalized
  bool operator==(const Identifier&) const = default;
};

// Normalizes a raw identifier value of `type`. Emails are trimmed and lower-cased and need one '@' with text on
// both sides; phones keep a leading '+' and their digits (spaces, dashes, dots and parentheses dropped) and need
// 7 to 15 digits; other types are trimmed. Errors: InvalidArgument (field left for the caller to set).
Result<std::string> NormalizeIdentifier(std::string_view type, std::string_view raw);

// Priority of a type in kIdentifierTypes (0 is highest), or -1 when unknown.
int IdentifierPriority(std::string_view type);

}  // namespace cdp::internal

#endif  // CDP_PROFILES_IDENTIFIERS_H_
