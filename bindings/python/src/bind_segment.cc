// Copyright 2026 The libcdp Authors.
//
// cdp._core.SegmentIngester: Segment-spec ingestion (include/cdp/segment.h) for db.segment.
//
// The open Engine of a database lives inside cdp._core.Engine (bind_engine.cc), which guards its lifetime against
// close(). Rather than reach into it, the ingester gives the library a cdp::SegmentSink that forwards ingestion's
// two calls (Events::TrackBatch, Identity::Identify) to that object's methods, as JSON text. So a closed database
// fails with FailedPrecondition like any other call, and the mapping and deduplication stay in the library.
//
// Concurrency: ingest() releases the GIL; each forwarded call takes it back only to call the Engine's method, which
// releases it again for the C++ work. The ingester's deduplicator is thread-safe, so one ingester may serve many
// Python threads.

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "cdp/segment.h"
#include "common.h"

namespace cdp_python {

namespace {

cdp::StatusCode CodeFromName(std::string_view name) {
  for (int c = 0; c <= static_cast<int>(cdp::StatusCode::kUnauthenticated); ++c) {
    auto code = static_cast<cdp::StatusCode>(c);
    if (cdp::StatusCodeName(code) == name) return code;
  }
  return cdp::StatusCode::kInternal;
}

std::string StringMember(const cdp::Json& j, std::string_view key) {
  const cdp::Json* v = j.Find(key);
  return v != nullptr && v->is_string() ? v->as_string() : std::string();
}

cdp::TrackResult TrackResultFromJson(const cdp::Json& j) {
  cdp::TrackResult r;
  r.event_id = StringMember(j, "eventId");
  r.profile_id = StringMember(j, "profileId");
  r.session_id = StringMember(j, "sessionId");
  if (const cdp::Json* v = j.Find("profileCreated")) r.profile_created = v->as_bool();
  if (const cdp::Json* v = j.Find("duplicate")) r.duplicate = v->as_bool();
  if (const cdp::Json* v = j.Find("mergedProfiles"); v != nullptr && v->is_array()) {
    for (const cdp::Json& id : v->items()) r.merged_profiles.push_back(id.as_string());
  }
  r.merge_id = StringMember(j, "mergeId");
  if (const cdp::Json* v = j.Find("ignoredIdentifiers")) r.ignored_identifiers = *v;
  return r;
}

// Calls method `name` of the cdp._core.Engine object with JSON text; returns its parsed JSON answer, or the Status
// of the cdp.Error it raised. Takes the GIL.
cdp::Result<cdp::Json> CallEngine(PyObject* engine, const char* name, const std::string& argument) {
  std::string text;
  cdp::Status status;
  {
    py::gil_scoped_acquire gil;
    try {
      text = py::handle(engine).attr(name)(argument).cast<std::string>();
    } catch (py::error_already_set& e) {
      py::object value = e.value();
      if (py::hasattr(value, "code") && py::hasattr(value, "message")) {
        std::string field;
        if (py::hasattr(value, "field") && !value.attr("field").is_none()) {
          field = value.attr("field").cast<std::string>();
        }
        status = cdp::Status(CodeFromName(value.attr("code").cast<std::string>()),
                             value.attr("message").cast<std::string>(), field);
      } else {
        status = cdp::Status::Internal(e.what());
      }
    }
  }
  if (!status.ok()) return status;
  return cdp::Json::Parse(text);
}

// Ingestion's two calls, forwarded to the cdp._core.Engine object.
class ForwardingSink : public cdp::SegmentSink {
 public:
  ForwardingSink(PyObject* engine, const cdp::Options& options) : engine_(engine), options_(options) {}

  const cdp::Options& options() const override { return options_; }

  cdp::Status RememberKey(std::string_view key, std::string_view value, int64_t expires_us) override {
    cdp::Json request = cdp::Json::Object();
    request.Set("key", std::string(key));
    request.Set("value", std::string(value));
    request.Set("expiresUs", expires_us);
    return CallEngine(engine_, "events_remember_key", request.Dump()).status();
  }

  cdp::Result<std::optional<std::string>> RecallKey(std::string_view key, int64_t now_us) override {
    cdp::Json request = cdp::Json::Object();
    request.Set("key", std::string(key));
    request.Set("nowUs", now_us);
    CDP_ASSIGN_OR_RETURN(cdp::Json r, CallEngine(engine_, "events_recall_key", request.Dump()));
    const cdp::Json* value = r.Find("value");
    if (value == nullptr || value->is_null()) return std::optional<std::string>();
    if (!value->is_string()) return cdp::Status::Internal("malformed recall result");
    return std::optional<std::string>(value->as_string());
  }

  cdp::Result<cdp::BatchResult> TrackBatch(const std::vector<cdp::Json>& events) override {
    cdp::Json array = cdp::Json::Array();
    for (const cdp::Json& e : events) array.Push(e);
    CDP_ASSIGN_OR_RETURN(cdp::Json r, CallEngine(engine_, "events_track_batch", array.Dump()));
    return BatchFromJson(r);
  }

  cdp::Result<cdp::Json> Identify(const cdp::Json& request) override {
    return CallEngine(engine_, "identity_identify", request.Dump());
  }

  // The keyed calls: each item's key in the same write as the item (see cdp::SegmentSink).
  cdp::Result<cdp::BatchResult> TrackBatch(const std::vector<cdp::Json>& events,
                                           const std::vector<cdp::IdempotencyKey>& keys) override {
    cdp::Json request = cdp::Json::Object();
    cdp::Json array = cdp::Json::Array();
    for (const cdp::Json& e : events) array.Push(e);
    cdp::Json key_list = cdp::Json::Array();
    for (const cdp::IdempotencyKey& k : keys) key_list.Push(KeyJson(k));
    request.Set("events", std::move(array));
    request.Set("keys", std::move(key_list));
    CDP_ASSIGN_OR_RETURN(cdp::Json r, CallEngine(engine_, "events_track_batch_keyed", request.Dump()));
    return BatchFromJson(r);
  }

  cdp::Result<cdp::Json> Identify(const cdp::Json& request, const cdp::IdempotencyKey& key) override {
    cdp::Json call = cdp::Json::Object();
    call.Set("request", request);
    call.Set("key", KeyJson(key));
    return CallEngine(engine_, "identity_identify_keyed", call.Dump());
  }

  // The engine recognises the stored key and answers for the caller (see cdp::SegmentSink).
  cdp::Result<cdp::Json> IdentifyDuplicate(const cdp::Json& request, const cdp::IdempotencyKey& key,
                                           const std::string&) override {
    return Identify(request, key);
  }

 private:
  static cdp::Json KeyJson(const cdp::IdempotencyKey& k) {
    if (k.key.empty()) return cdp::Json();
    cdp::Json out = cdp::Json::Object();
    out.Set("key", k.key);
    out.Set("value", k.value);
    out.Set("expiresUs", k.expires_us);
    if (k.applied_if_stored_at_us != 0) out.Set("appliedIfStoredAtUs", k.applied_if_stored_at_us);
    return out;
  }

  static cdp::Result<cdp::BatchResult> BatchFromJson(const cdp::Json& r) {
    cdp::BatchResult out;
    const cdp::Json* results = r.Find("results");
    if (results == nullptr || !results->is_array()) return cdp::Status::Internal("malformed batch result");
    for (const cdp::Json& item : results->items()) {
      cdp::BatchItemResult one;
      const std::string status = StringMember(item, "status");
      if (status == "ok" || status == "duplicate") {
        one.result = TrackResultFromJson(item);
        ++out.accepted;
      } else {
        const cdp::Json* error = item.Find("error");
        one.status = cdp::Status(CodeFromName(status), error ? StringMember(*error, "message") : status,
                                 error ? StringMember(*error, "field") : std::string());
        ++out.rejected;
      }
      out.items.push_back(std::move(one));
    }
    return out;
  }

  PyObject* engine_;  // owned by the SegmentIngester (a reference held with the GIL)
  cdp::Options options_;
};

class SegmentIngester {
 public:
  // `engine`: a cdp._core.Engine. `dedupe_window_seconds`: SegmentOptions::dedupe_window_seconds.
  SegmentIngester(py::object engine, int64_t dedupe_window_seconds) : engine_(std::move(engine)) {
    cdp::Json options_json = ValueOrThrow(cdp::Json::Parse(engine_.attr("options_json").cast<std::string>()));
    options_ = ValueOrThrow(OptionsFromJson(options_json));
    sink_ = std::make_unique<ForwardingSink>(engine_.ptr(), options_);
    segment_.dedupe_window_seconds = dedupe_window_seconds;
    segment_.deduplicator = std::make_shared<cdp::SegmentDeduplicator>();
  }

  std::string Ingest(const std::string& message_json, int64_t received_at_us, const std::string& route_type) {
    return Run([&]() -> cdp::Result<cdp::Json> {
      cdp::ParseLimits limits;
      limits.max_bytes = segment_.max_batch_bytes;
      limits.max_depth = options_.max_json_depth + 2;  // as cdp-server's /v1/ routes; IngestSegmentMessage judges
      CDP_ASSIGN_OR_RETURN(cdp::Json message, cdp::Json::Parse(message_json, limits));
      return cdp::IngestSegmentMessage(*sink_, message, received_at_us, segment_, route_type);
    });
  }

  std::string IngestBatch(const std::string& batch_json, int64_t received_at_us) {
    return Run([&] { return cdp::IngestSegmentBatchJson(*sink_, batch_json, received_at_us, segment_); });
  }

  int64_t dedupe_window_seconds() const { return segment_.dedupe_window_seconds; }
  size_t remembered() const { return segment_.deduplicator->size(); }

 private:
  template <typename Fn>
  std::string Run(Fn&& fn) {
    return JsonWithoutGil(std::forward<Fn>(fn));
  }

  py::object engine_;
  cdp::Options options_;
  std::unique_ptr<ForwardingSink> sink_;
  cdp::SegmentOptions segment_;
};

}  // namespace

void BindSegment(py::module_& m) {
  py::class_<SegmentIngester>(m, "SegmentIngester",
                              "Segment-spec ingestion into one Engine (use db.segment; this class is internal).")
      .def(py::init<py::object, int64_t>(), py::arg("engine"), py::arg("dedupe_window_seconds") = 7 * 24 * 3600)
      .def("ingest", &SegmentIngester::Ingest, py::arg("message_json"), py::arg("received_at_us"),
           py::arg("route_type") = "")
      .def("ingest_batch", &SegmentIngester::IngestBatch, py::arg("batch_json"), py::arg("received_at_us"))
      .def_property_readonly("dedupe_window_seconds", &SegmentIngester::dedupe_window_seconds)
      .def_property_readonly("remembered", &SegmentIngester::remembered);
  m.def("segment_now_micros", &cdp::SegmentNowMicros, "The current time in microseconds since the Unix epoch.");
}

}  // namespace cdp_python
