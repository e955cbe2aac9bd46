// Copyright 2026 The libcdp Authors.
//
// cdp-server's Segment HTTP Tracking API: POST /v1/identify, /v1/track, /v1/page, /v1/screen, /v1/group, /v1/alias
// and /v1/batch, mapped onto cdp::IngestSegmentMessage / IngestSegmentBatch (include/cdp/segment.h). See
// docs/rest-api.md "Segment tracking API".
//
// Auth: when ServerOptions::write_key is set, a request carries it as the HTTP Basic user name
// ("Authorization: Basic base64(key:)"; the password is not checked) or as "writeKey" in the JSON body; else 401.
// Bodies: JSON whatever the Content-Type says; Content-Encoding gzip / deflate (decompressed by cpp-httplib) with
// the decompressed size capped at SegmentOptions::max_batch_bytes. Answers: 200 {"success": true, ...result};
// 400 with the JSON error shape for invalid messages and sizes over the limits (Segment answers 400 there too).
//
// Thread-safety: the handlers may run concurrently; `engine` must outlive `http`.

#ifndef CDP_EXAMPLES_SERVER_SEGMENT_ROUTES_H_
#define CDP_EXAMPLES_SERVER_SEGMENT_ROUTES_H_

#include <httplib.h>

#include <string_view>

#include "cdp/engine.h"
#include "server.h"

namespace cdp::server {

// Registers the /v1/ routes on `http`, with one messageId deduplicator shared by them.
void RegisterSegmentRoutes(httplib::Server& http, Engine& engine, const ServerOptions& options);

// Whether an Authorization header value is HTTP Basic with user name `write_key` (any password).
bool BasicUserMatches(std::string_view authorization, std::string_view write_key);

}  // namespace cdp::server

#endif  // CDP_EXAMPLES_SERVER_SEGMENT_ROUTES_H_
