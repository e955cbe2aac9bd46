// Copyright 2026 The libcdp Authors.
//
// Engine-independent helpers: options as JSON, timestamps.

#include <cstdint>
#include <limits>
#include <string>

#include "common.h"

namespace cdp_python {

namespace {

cdp::Status WrongType(const std::string& key, std::string_view want, const cdp::Json& got) {
  return cdp::Status::InvalidArgument(
      "option " + key + " must be " + std::string(want) + ", not " + std::string(cdp::Json::TypeName(got.type())), key);
}

cdp::Status SetBool(const std::string& key, const cdp::Json& v, bool* out) {
  if (!v.is_bool()) return WrongType(key, "a boolean", v);
  *out = v.as_bool();
  return cdp::Status::OK();
}

template <typename Int>
cdp::Status SetInt(const std::string& key, const cdp::Json& v, Int* out) {
  if (!v.is_int()) return WrongType(key, "an integer", v);
  const int64_t i = v.as_int();
  if constexpr (std::is_unsigned_v<Int>) {
    if (i < 0) return cdp::Status::InvalidArgument("option " + key + " must not be negative", key);
  } else {
    if (i < static_cast<int64_t>(std::numeric_limits<Int>::min()) ||
        i > static_cast<int64_t>(std::numeric_limits<Int>::max())) {
      return cdp::Status::InvalidArgument("option " + key + " is out of range", key);
    }
  }
  *out = static_cast<Int>(i);
  return cdp::Status::OK();
}

}  // namespace

cdp::Result<cdp::Options> OptionsFromJson(const cdp::Json& json) {
  cdp::Options o;
  if (json.is_null()) return o;
  if (!json.is_object()) return cdp::Status::InvalidArgument("options must be an object");
  for (const auto& [key, v] : json.members()) {
    cdp::Status s;
    if (key == "create_if_missing")
      s = SetBool(key, v, &o.create_if_missing);
    else if (key == "sync_writes")
      s = SetBool(key, v, &o.sync_writes);
    else if (key == "session_timeout_seconds")
      s = SetInt(key, v, &o.session_timeout_seconds);
    else if (key == "max_event_future_seconds")
      s = SetInt(key, v, &o.max_event_future_seconds);
    else if (key == "max_event_bytes")
      s = SetInt(key, v, &o.max_event_bytes);
    else if (key == "max_batch_bytes")
      s = SetInt(key, v, &o.max_batch_bytes);
    else if (key == "max_profile_bytes")
      s = SetInt(key, v, &o.max_profile_bytes);
    else if (key == "max_json_depth")
      s = SetInt(key, v, &o.max_json_depth);
    else if (key == "max_batch_items")
      s = SetInt(key, v, &o.max_batch_items);
    else if (key == "max_page_size")
      s = SetInt(key, v, &o.max_page_size);
    else if (key == "block_cache_bytes")
      s = SetInt(key, v, &o.block_cache_bytes);
    else if (key == "write_buffer_bytes")
      s = SetInt(key, v, &o.write_buffer_bytes);
    else if (key == "compress_recent_tables")
      s = SetBool(key, v, &o.compress_recent_tables);
    else if (key == "index_tail_events")
      s = SetInt(key, v, &o.index_tail_events);
    else if (key == "rfm_refresh_seconds")
      s = SetInt(key, v, &o.rfm_refresh_seconds);
    else if (key == "suppress_erased_identifiers")
      s = SetBool(key, v, &o.suppress_erased_identifiers);
    else if (key == "retention_interval_seconds")
      s = SetInt(key, v, &o.retention_interval_seconds);
    else
      s = cdp::Status::InvalidArgument("unknown option " + key, key);
    if (!s.ok()) return s;
  }
  return o;
}

cdp::Json OptionsToJson(const cdp::Options& o) {
  cdp::Json j = cdp::Json::Object();
  j.Set("create_if_missing", o.create_if_missing);
  j.Set("sync_writes", o.sync_writes);
  j.Set("session_timeout_seconds", o.session_timeout_seconds);
  j.Set("max_event_future_seconds", o.max_event_future_seconds);
  j.Set("max_event_bytes", static_cast<uint64_t>(o.max_event_bytes));
  j.Set("max_batch_bytes", static_cast<uint64_t>(o.max_batch_bytes));
  j.Set("max_profile_bytes", static_cast<uint64_t>(o.max_profile_bytes));
  j.Set("max_json_depth", o.max_json_depth);
  j.Set("max_batch_items", static_cast<uint64_t>(o.max_batch_items));
  j.Set("max_page_size", static_cast<uint64_t>(o.max_page_size));
  j.Set("block_cache_bytes", static_cast<uint64_t>(o.block_cache_bytes));
  j.Set("write_buffer_bytes", static_cast<uint64_t>(o.write_buffer_bytes));
  j.Set("compress_recent_tables", o.compress_recent_tables);
  j.Set("index_tail_events", static_cast<uint64_t>(o.index_tail_events));
  j.Set("rfm_refresh_seconds", o.rfm_refresh_seconds);
  j.Set("suppress_erased_identifiers", o.suppress_erased_identifiers);
  j.Set("retention_interval_seconds", o.retention_interval_seconds);
  return j;
}

void BindUtil(py::module_& m) {
  m.def(
      "default_options", [] { return OptionsToJson(cdp::Options{}).Dump(); },
      "The default cdp::Options as JSON text of an object keyed by field name.");

  m.def(
      "parse_timestamp",
      [](const std::string& json_value) -> int64_t {
        // `json_value` is the JSON text of a string or a number (epoch milliseconds).
        cdp::Json value = ValueOrThrow(cdp::Json::Parse(json_value));
        return ValueOrThrow(cdp::ParseTimestamp(value));
      },
      py::arg("json_value"),
      "Microseconds since the Unix epoch of a timestamp given as JSON text (an ISO 8601 string or epoch ms).");

  m.def(
      "format_timestamp", [](int64_t micros) { return cdp::FormatTimestamp(micros); }, py::arg("micros"),
      "ISO 8601 UTC text of microseconds since the Unix epoch.");
}

std::string CurrentPrincipal() {
  // cdp._principal._current, looked up once (kept for the interpreter's life: never destroyed at exit).
  static py::object* var = new py::object(py::module_::import("cdp._principal").attr("_current"));
  return var->attr("get")().cast<std::string>();
}

}  // namespace cdp_python
