// Copyright 2026 The libcdp Authors.

#include "profiles/identifiers.h"

#include "fmt/format.h"

namespace cdp::internal {

namespace {

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\n' || s.front() == '\r')) {
    s.remove_prefix(1);
  }
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\n' || s.back() == '\r')) {
    s.remove_suffix(1);
  }
  return s;
}

}  // namespace

int IdentifierPriority(std::string_view type) {
  for (size_t i = 0; i < std::size(kIdentifierTypes); ++i) {
    if (kIdentifierTypes[i] == type) return static_cast<int>(i);
  }
  return -1;
}

Result<std::string> NormalizeIdentifier(std::string_view type, std::string_view raw) {
  std::string_view v = Trim(raw);
  if (v.empty()) return Status::InvalidArgument(fmt::format("{} is empty", type));
  if (v.size() > 256) return Status::InvalidArgument(fmt::format("{} is longer than 256 bytes", type));
  for (char c : v) {
    if (static_cast<unsigned char>(c) < 0x20) {
      return Status::InvalidArgument(fmt::format("{} holds a control character", type));
    }
  }
  if (type == "email") {
    std::string out;
    out.reserve(v.size());
    for (char c : v) out.push_back((c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c);
    size_t at = out.find('@');
    if (at == std::string::npos || at == 0 || at + 1 == out.size() || out.find('@', at + 1) != std::string::npos ||
        out.find(' ') != std::string::npos) {
      return Status::InvalidArgument(fmt::format("\"{}\" is not an email address", v.substr(0, 64)));
    }
    return out;
  }
  if (type == "phone") {
    std::string out;
    size_t digits = 0;
    for (size_t i = 0; i < v.size(); ++i) {
      char c = v[i];
      if (c >= '0' && c <= '9') {
        out.push_back(c);
        ++digits;
      } else if (c == '+' && out.empty()) {
        out.push_back(c);
      } else if (c != ' ' && c != '-' && c != '.' && c != '(' && c != ')') {
        return Status::InvalidArgument(fmt::format("\"{}\" is not a phone number", v.substr(0, 64)));
      }
    }
    if (digits < 7 || digits > 15) {
      return Status::InvalidArgument(fmt::format("\"{}\" is not a phone number (7 to 15 digits)", v.substr(0, 64)));
    }
    return out;
  }
  return std::string(v);
}

}  // namespace cdp::internal
