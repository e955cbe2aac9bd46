// Copyright 2026 The libcdp Authors.
//
// cdp::Status and cdp::Result<T>: how every libcdp call reports success or failure.
//
// libcdp never lets an exception cross its API. A call that can fail returns a Status (or a Result<T>, which holds
// either a value or a non-OK Status). Both are [[nodiscard]]: ignoring one is a compile-time warning.
//
//   cdp::Result<cdp::Json> p = engine->profiles().Get("01J...");
//   if (!p.ok()) {
//     if (p.status().IsNotFound()) ...;
//     std::cerr << p.status().ToString();   // "not_found: profile 01J... does not exist"
//   }
//
// A Status carries a canonical code, a human-readable message and, for InvalidArgument, the path of the offending
// field in the input ("properties.revenue", "[3].timestamp"). The REST server maps codes to HTTP statuses and the
// Python package maps them to exception classes under cdp.Error.
//
// Thread-safety: Status and Result are values; distinct objects may be used from distinct threads freely, and a
// const object may be shared.

#ifndef CDP_STATUS_H_
#define CDP_STATUS_H_

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace cdp {

// Canonical error codes (a subset of absl/gRPC's, with the same meanings).
enum class StatusCode : int {
  kOk = 0,
  kInvalidArgument = 1,     // the input is malformed or breaks a rule; field() names where
  kNotFound = 2,            // the named thing does not exist
  kAlreadyExists = 3,       // a create collided with an existing thing (id or identifier)
  kPermissionDenied = 4,    // the caller may not do this
  kFailedPrecondition = 5,  // the system is not in a state where this works (e.g. database already open)
  kResourceExhausted = 6,   // a limit on what is stored or computed was exceeded (a profile document, a linkage
                            // input, a request body at the server); input over a size limit is InvalidArgument
  kDataLoss = 7,            // stored data is corrupt or of an unknown format
  kUnavailable = 8,         // a transient failure; retrying may work
  kInternal = 9,            // a bug or an unexpected storage error
  kUnauthenticated = 10,    // missing or invalid credentials (used by the server)
};

// Stable snake_case name of a code ("invalid_argument"), used in REST error bodies and Python exceptions.
std::string_view StatusCodeName(StatusCode code);

class [[nodiscard]] Status {
 public:
  // An OK status. Cheap: holds no allocation.
  Status() = default;
  // `message` and `field` are kept as valid UTF-8: an invalid byte (say, a quoted input cut in the middle of a
  // character) becomes U+FFFD, so every error can be written as JSON and raised in Python.
  Status(StatusCode code, std::string message, std::string field = {});

  static Status OK() { return Status(); }
  static Status InvalidArgument(std::string msg, std::string field = {}) {
    return Status(StatusCode::kInvalidArgument, std::move(msg), std::move(field));
  }
  static Status NotFound(std::string msg, std::string field = {}) {
    return Status(StatusCode::kNotFound, std::move(msg), std::move(field));
  }
  static Status AlreadyExists(std::string msg, std::string field = {}) {
    return Status(StatusCode::kAlreadyExists, std::move(msg), std::move(field));
  }
  static Status PermissionDenied(std::string msg) { return Status(StatusCode::kPermissionDenied, std::move(msg)); }
  static Status FailedPrecondition(std::string msg, std::string field = {}) {
    return Status(StatusCode::kFailedPrecondition, std::move(msg), std::move(field));
  }
  static Status ResourceExhausted(std::string msg, std::string field = {}) {
    return Status(StatusCode::kResourceExhausted, std::move(msg), std::move(field));
  }
  static Status DataLoss(std::string msg) { return Status(StatusCode::kDataLoss, std::move(msg)); }
  static Status Unavailable(std::string msg) { return Status(StatusCode::kUnavailable, std::move(msg)); }
  static Status Internal(std::string msg) { return Status(StatusCode::kInternal, std::move(msg)); }

  bool ok() const { return rep_ == nullptr; }
  StatusCode code() const { return rep_ ? rep_->code : StatusCode::kOk; }
  // The message, without the code. Empty for OK.
  const std::string& message() const;
  // The path of the offending input field for InvalidArgument / ResourceExhausted; empty when not applicable.
  const std::string& field() const;

  bool IsInvalidArgument() const { return code() == StatusCode::kInvalidArgument; }
  bool IsNotFound() const { return code() == StatusCode::kNotFound; }
  bool IsAlreadyExists() const { return code() == StatusCode::kAlreadyExists; }
  bool IsFailedPrecondition() const { return code() == StatusCode::kFailedPrecondition; }
  bool IsResourceExhausted() const { return code() == StatusCode::kResourceExhausted; }

  // Returns a copy whose field path is `prefix` prepended to this one ("[3]" + "timestamp" -> "[3].timestamp").
  Status WithFieldPrefix(std::string_view prefix) const;

  // "ok", or "<code>: <message> (field: <field>)".
  std::string ToString() const;

 private:
  struct Rep {
    StatusCode code;
    std::string message;
    std::string field;
  };
  std::shared_ptr<const Rep> rep_;  // null when OK; shared so copies are cheap
};

// Either a T or a non-OK Status. Construct from a value or from a Status (which must not be OK).
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(const T& value) : v_(value) {}        // NOLINT(google-explicit-constructor)
  Result(T&& value) : v_(std::move(value)) {}  // NOLINT(google-explicit-constructor)
  Result(const Status& status) : v_(status) {  // NOLINT(google-explicit-constructor)
    if (std::get<Status>(v_).ok()) v_ = Status::Internal("Result constructed from an OK status");
  }
  Result(Status&& status) : v_(std::move(status)) {  // NOLINT(google-explicit-constructor)
    if (std::get<Status>(v_).ok()) v_ = Status::Internal("Result constructed from an OK status");
  }

  bool ok() const { return std::holds_alternative<T>(v_); }
  // OK when a value is held.
  Status status() const { return ok() ? Status::OK() : std::get<Status>(v_); }

  // Precondition: ok(). Accessing the value of an error Result is undefined behaviour.
  const T& value() const& { return std::get<T>(v_); }
  T& value() & { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  const T& operator*() const& { return value(); }
  T& operator*() & { return value(); }
  const T* operator->() const { return &value(); }
  T* operator->() { return &value(); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace cdp

#define CDP_STATUS_CONCAT_INNER_(a, b) a##b
#define CDP_STATUS_CONCAT_(a, b) CDP_STATUS_CONCAT_INNER_(a, b)

// Returns from the enclosing function when `expr` (a Status) is not OK.
#define CDP_RETURN_IF_ERROR(expr)                          \
  do {                                                     \
    ::cdp::Status cdp_status_macro_ = (expr);              \
    if (!cdp_status_macro_.ok()) return cdp_status_macro_; \
  } while (0)

// `lhs` = value of `rexpr` (a Result<T>), or returns its Status from the enclosing function.
#define CDP_ASSIGN_OR_RETURN(lhs, rexpr) \
  CDP_ASSIGN_OR_RETURN_IMPL_(CDP_STATUS_CONCAT_(cdp_result_, __LINE__), lhs, rexpr)
#define CDP_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, rexpr) \
  auto tmp = (rexpr);                               \
  if (!tmp.ok()) return tmp.status();               \
  lhs = std::move(tmp).value()

#endif  // CDP_STATUS_H_
