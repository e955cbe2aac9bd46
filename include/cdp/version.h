// Copyright 2026 The libcdp Authors.
//
// libcdp's version, and the on-disk format version an Engine writes and accepts.

#ifndef CDP_VERSION_H_
#define CDP_VERSION_H_

#define CDP_VERSION_MAJOR 0
#define CDP_VERSION_MINOR 1
#define CDP_VERSION_PATCH 0

namespace cdp {

inline constexpr const char* kVersion = "0.1.0";
// Stored in the database at creation; Open refuses a database of another format version (DataLoss).
inline constexpr int kFormatVersion = 4;

}  // namespace cdp

#endif  // CDP_VERSION_H_
