// Copyright 2026 The libcdp Authors.
//
// cdp::server: the REST API of cdp-server, mapping HTTP requests onto a cdp::Engine.
//
// The server holds no business logic: every route parses the request into the arguments of one libcdp call,
// makes the call and writes its result (or its Status) as JSON. See docs/rest-api.md for the routes.
//
//   cdp::server::ServerOptions options;
//   options.api_key = "secret";
//   httplib::Server http;
//   cdp::server::RegisterRoutes(http, engine, options);
//   http.listen("127.0.0.1", 8080);
//
// Thread-safety: the registered handlers may run concurrently (cdp::Engine is thread-safe); `engine` must outlive
// `http`.

#ifndef CDP_EXAMPLES_SERVER_SERVER_H_
#define CDP_EXAMPLES_SERVER_SERVER_H_

#include <httplib.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "cdp/engine.h"
#include "cdp/status.h"

namespace cdp::server {

struct ServerOptions {
  // Every request under /api/ needs a key: "Authorization: Bearer <api_key>" (when non-empty) or a key the database
  // issued (Governance). No request runs without one (401). cdp-server generates a key for the run when given
  // none and the database has issued none.
  std::string api_key;
  // Bytes allowed in a request body beyond max(Options::max_batch_bytes, Options::max_profile_bytes) before
  // the server answers 413 without reading it. Bodies between the library limit and this one reach the library,
  // which answers InvalidArgument (400) for an event or batch over its limit, ResourceExhausted (413) for a
  // profile document over max_profile_bytes.
  size_t body_slack_bytes = 64u << 10;
  // ---- Segment tracking API (segment_routes.h) ----
  // When non-empty, every request under /v1/ needs it as the HTTP Basic user name or as "writeKey" in the body.
  // cdp-server sets it from --write-key, defaulting to the API key.
  std::string write_key;
  // The governance principal the /v1/ routes run as: its field permissions apply to what they write, and the audit
  // log names it. Default: the admin "local".
  std::string write_key_principal = "local";
  // messageId dedupe window of the /v1/ routes (SegmentOptions::dedupe_window_seconds). Default: 7 days.
  int64_t segment_dedupe_window_seconds = 7 * 24 * 3600;
  // Set (true) when the server is shutting down: long polls (segments' changes?wait=) then answer at once, within
  // 200 ms, instead of holding the shutdown for up to their wait. Null: never.
  std::shared_ptr<const std::atomic<bool>> stopping;
};

// Registers the routes of docs/rest-api.md on `http`, together with its error handler (every error answer,
// httplib's own included, has the JSON error shape), exception handler and payload limit.
void RegisterRoutes(httplib::Server& http, Engine& engine, const ServerOptions& options);

// The HTTP status for a libcdp status code (OK -> 200).
int HttpStatusFor(StatusCode code);

// {"error": {"code": "...", "message": "...", "field": "..."}}; "field" only when the status has one.
std::string ErrorBody(const Status& status);

// Whether `host` is a loopback address ("localhost", 127.0.0.0/8, "::1").
bool IsLoopbackHost(std::string_view host);

// InvalidArgument (field "Content-Encoding") when the request's Content-Encoding is one cpp-httplib does not decode
// (Debian's build decodes gzip, deflate and br, and takes any other value for none); OK without one, or for gzip,
// deflate, br and identity.
Status CheckContentEncoding(const httplib::Request& req);

// Compares two strings in time that depends only on their lengths, not on where they differ.
bool ConstantTimeEquals(std::string_view a, std::string_view b);

// Whether an Authorization header value carries `api_key` as a bearer token ("Bearer <key>"; the scheme name is
// case-insensitive).
bool BearerTokenMatches(std::string_view authorization, std::string_view api_key);
// The token of an Authorization header value "Bearer <token>" (scheme case-insensitive, blanks trimmed); nullopt
// when the value is not of that form or the token is empty.
std::optional<std::string_view> BearerToken(std::string_view authorization);

}  // namespace cdp::server

#endif  // CDP_EXAMPLES_SERVER_SERVER_H_
