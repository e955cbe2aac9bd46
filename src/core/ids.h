// Copyright 2026 The libcdp Authors.
//
// Identifiers of profiles, events and sessions, and the validation of ids given by callers.

#ifndef CDP_CORE_IDS_H_
#define CDP_CORE_IDS_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "cdp/status.h"

namespace cdp::internal {

// A new ULID: 48 bits of milliseconds since the epoch and 80 random bits, as 26 Crockford base32 characters.
// Sortable by creation time, unique without coordination (so ids never depend on one global counter).
std::string NewId();
// A ULID greater than every one this process made before (the same millisecond, or a clock set back, gives the
// last one plus one): for records listed in creation order. Takes a process-wide lock.
std::string NewMonotonicId();

// Ids given by callers: 1..128 characters of [A-Za-z0-9_.:@-]. `what` names the field in the error.
Status ValidateId(std::string_view id, std::string_view field);

// Microseconds since the epoch, from the system clock.
int64_t NowMicros();

}  // namespace cdp::internal

#endif  // CDP_CORE_IDS_H_
