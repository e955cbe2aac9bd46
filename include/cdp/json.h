// Copyright 2026 The libcdp Authors.
//
// cdp::Json: the JSON value type of libcdp's API.
//
// Profiles, events and query results are JSON documents with the field names of the libcdp data model
// (see docs/data-model.md). cdp::Json is a small, owning, mutable value type for them: null, bool, integer (int64),
// double, string, array and object. Objects keep their keys in insertion order; lookups are linear, which is the
// fastest choice for the small objects of a CDP (tens of keys).
//
//   cdp::Json event = cdp::Json::Object();
//   event.Set("type", "purchase");
//   event.Set("properties", cdp::Json::Object().Set("revenue", 49.90));
//   std::string text = event.Dump();                    // {"type":"purchase","properties":{"revenue":49.9}}
//   cdp::Result<cdp::Json> back = cdp::Json::Parse(text);
//
// Parsing uses simdjson and enforces limits (ParseLimits): input size and nesting depth. A document that breaks
// them, or is not valid JSON, gives InvalidArgument / ResourceExhausted; nothing is partially parsed.
//
// Numbers: integers that fit int64 stay integers; fractions, exponents and integers in (2^63, 2^64) are doubles.
// Integer literals of 2^64 and above are rejected as malformed (write them with an exponent or a fraction).
// Dump writes doubles in their shortest round-trip form, so Parse(Dump(x)) == x.
//
// Thread-safety: a Json is a plain value. Concurrent const access is safe; mutation needs external synchronization.
//
// Cost: a Json is 16 bytes (a type tag and one word). Strings are immutable and shared between copies (an atomic
// reference count), so copying a string value allocates nothing; copying an array or object copies its elements.
// Moving is a 16-byte copy and leaves the moved-from value null.

#ifndef CDP_JSON_H_
#define CDP_JSON_H_

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "cdp/status.h"

namespace cdp {

struct ParseLimits {
  // Largest accepted input, in bytes. Default: 64 MiB.
  size_t max_bytes = 64u << 20;
  // Deepest accepted nesting of arrays and objects (the top level counts as 1). Default: 64.
  int max_depth = 64;
};

class Json {
 public:
  enum class Type : uint8_t { kNull, kBool, kInt, kDouble, kString, kArray, kObject };
  using Member = std::pair<std::string, Json>;

  Json() : i_(0) {}                                    // null
  Json(std::nullptr_t) : i_(0) {}                      // NOLINT
  Json(bool b) : type_(Type::kBool), i_(b ? 1 : 0) {}  // NOLINT
  Json(int v) : type_(Type::kInt), i_(v) {}            // NOLINT
  Json(int64_t v) : type_(Type::kInt), i_(v) {}        // NOLINT
  Json(uint64_t v);                                    // NOLINT: beyond int64 becomes a double
  Json(double v) : type_(Type::kDouble), d_(v) {}      // NOLINT
  Json(const char* s) : Json(std::string(s)) {}        // NOLINT
  Json(std::string_view s) : Json(std::string(s)) {}   // NOLINT
  Json(std::string s);                                 // NOLINT

  Json(const Json& other);
  Json& operator=(const Json& other);
  Json(Json&& other) noexcept : type_(other.type_), i_(other.i_) { other.type_ = Type::kNull; }
  Json& operator=(Json&& other) noexcept {
    Json taken(std::move(other));  // first, in case `other` lives inside this value
    Release();
    type_ = taken.type_;
    i_ = taken.i_;
    taken.type_ = Type::kNull;
    return *this;
  }
  ~Json() { Release(); }

  static Json Object() {
    Json j;
    j.o_ = new std::vector<Member>();
    j.type_ = Type::kObject;
    return j;
  }
  static Json Array() {
    Json j;
    j.a_ = new std::vector<Json>();
    j.type_ = Type::kArray;
    return j;
  }

  // Parses one JSON document. Errors: InvalidArgument (malformed, with simdjson's reason in the message),
  // ResourceExhausted (larger than limits.max_bytes), InvalidArgument with field = path (deeper than max_depth).
  static Result<Json> Parse(std::string_view text, const ParseLimits& limits = {});

  // Compact serialization (no spaces). Strings are escaped per RFC 8259; non-ASCII UTF-8 is written as is.
  std::string Dump() const;
  void DumpTo(std::string* out) const;

  Type type() const { return type_; }
  bool is_null() const { return type_ == Type::kNull; }
  bool is_bool() const { return type_ == Type::kBool; }
  bool is_int() const { return type_ == Type::kInt; }
  bool is_double() const { return type_ == Type::kDouble; }
  bool is_number() const { return type_ == Type::kInt || type_ == Type::kDouble; }
  bool is_string() const { return type_ == Type::kString; }
  bool is_array() const { return type_ == Type::kArray; }
  bool is_object() const { return type_ == Type::kObject; }

  // Accessors. Precondition: the matching type (as_number accepts int or double). Wrong types return a
  // zero value rather than crash: false, 0, "" or an empty container.
  bool as_bool() const { return type_ == Type::kBool && i_ != 0; }
  int64_t as_int() const;
  double as_number() const;
  const std::string& as_string() const;
  const std::vector<Json>& items() const;  // array elements
  std::vector<Json>& items();
  const std::vector<Member>& members() const;  // object members, in insertion order
  std::vector<Member>& members();
  size_t size() const;  // elements of an array, members of an object, else 0

  // Object access. Find returns null when absent or when this is not an object.
  const Json* Find(std::string_view key) const;
  Json* Find(std::string_view key);
  // Follows a dotted path ("attributes.customFields.tier"); null when any step is missing.
  const Json* FindPath(std::string_view dotted_path) const;
  // Sets key (replacing an existing member in place). Turns a null into an object first. Returns *this.
  Json& Set(std::string_view key, Json value);
  // Removes key; returns whether it was present.
  bool Erase(std::string_view key);
  // Array append. Turns a null into an array first. Returns *this.
  Json& Push(Json value);

  // Structural equality. Integers and doubles compare by numeric value (1 == 1.0); object key order is ignored.
  bool operator==(const Json& other) const;
  bool operator!=(const Json& other) const { return !(*this == other); }

  // A short name of the type for error messages: "null", "boolean", "number", "string", "array", "object".
  static std::string_view TypeName(Type t);

 private:
  struct SharedString;  // an immutable string with an atomic reference count

  // Frees what this value owns (when it holds the last reference to a string); leaves the tag as it was.
  void Release() noexcept {
    if (type_ >= Type::kString) ReleaseSlow();
  }
  void ReleaseSlow() noexcept;

  Type type_ = Type::kNull;
  union {  // the member named by type_; a bool is i_ (0 or 1), null keeps i_ = 0
    int64_t i_;
    double d_;
    SharedString* s_;
    std::vector<Json>* a_;
    std::vector<Member>* o_;
  };
};

// RFC 7396 JSON Merge Patch: applies `patch` to `target`. Object members of the patch set or (when null) delete
// members of the target, recursively; any other patch value replaces the target.
void ApplyMergePatch(Json* target, const Json& patch);

}  // namespace cdp

#endif  // CDP_JSON_H_
