// Copyright 2026 The libcdp Authors.

#include "segment_routes.h"

#include <cctype>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "cdp/json.h"
#include "cdp/segment.h"

namespace cdp::server {
namespace {

using httplib::ContentReader;
using httplib::Request;
using httplib::Response;

constexpr char kJsonType[] = "application/json";
constexpr std::string_view kTypes[] = {"identify", "track", "page", "screen", "group", "alias"};

std::optional<std::string> Base64Decode(std::string_view in) {
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+' || c == '-') return 62;
    if (c == '/' || c == '_') return 63;
    return -1;
  };
  while (!in.empty() && in.back() == '=') in.remove_suffix(1);
  std::string out;
  uint32_t buffer = 0;
  int bits = 0;
  for (char c : in) {
    const int v = value(c);
    if (v < 0) return std::nullopt;
    buffer = (buffer << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((buffer >> bits) & 0xff));
    }
  }
  return out;
}

class SegmentApi {
 public:
  SegmentApi(Engine& engine, const ServerOptions& options)
      : engine_(engine), write_key_(options.write_key), principal_(options.write_key_principal) {
    segment_.dedupe_window_seconds = options.segment_dedupe_window_seconds;
    segment_.deduplicator = std::make_shared<SegmentDeduplicator>();
    limits_.max_bytes = segment_.max_batch_bytes;
    limits_.max_depth = engine.options().max_json_depth + 2;
  }

  void Handle(std::string_view type, const Request& req, Response& res, const ContentReader& reader) const {
    const int64_t received_at = SegmentNowMicros();
    std::string body;
    bool over = false;
    const bool read = reader([&](const char* data, size_t length) {
      if (body.size() + length > segment_.max_batch_bytes) {
        over = true;
        return false;  // stop decompressing: the answer is 400 whatever follows
      }
      body.append(data, length);
      return true;
    });
    if (Status encoding = CheckContentEncoding(req); !encoding.ok()) {
      if (!Authorized(req, nullptr)) return Unauthorized(res);
      return WriteStatus(res, encoding);
    }
    if (over || res.status == 413) {
      res.set_header("Connection", "close");
      return Write(
          res, 400,
          ErrorBody(Status::InvalidArgument(
              "request body over the limit of " + std::to_string(segment_.max_batch_bytes) + " bytes", "batch")));
    }
    // A request without a body (no Content-Length) reads as a failure here: it is an empty body, answered below
    // (401 without a write key, else 400 for the JSON).
    const bool encoded = req.has_header("Content-Encoding");
    if (!read && (encoded || !body.empty())) {
      res.set_header("Connection", "close");
      if (!Authorized(req, nullptr)) return Unauthorized(res);
      return Write(res, 400,
                   ErrorBody(Status::InvalidArgument(encoded ? "cannot read the request body (bad " +
                                                                   req.get_header_value("Content-Encoding") + " data?)"
                                                             : std::string("cannot read the request body"))));
    }
    ParseLimits limits = limits_;
    if (type == "batch") limits.max_depth = engine_.options().batch_document_depth();  // items judged one by one
    Result<Json> parsed = Json::Parse(body, limits);
    if (!Authorized(req, parsed.ok() ? &*parsed : nullptr)) return Unauthorized(res);
    if (!parsed.ok()) {
      const Status& s = parsed.status();
      return WriteStatus(res, Status(s.code(), "request body: " + s.message(), s.field()));
    }
    ScopedPrincipal scope(principal_);  // whose permissions apply to the writes, and whom audit names
    Result<Json> result = type == "batch" ? IngestSegmentBatch(engine_, *parsed, received_at, segment_)
                                          : IngestSegmentMessage(engine_, *parsed, received_at, segment_, type);
    if (!result.ok()) return WriteStatus(res, result.status());
    Json out = Json::Object();
    out.Set("success", true);
    for (auto& [key, value] : result->members()) out.Set(key, std::move(value));
    Write(res, 200, out.Dump());
  }

 private:
  bool Authorized(const Request& req, const Json* body) const {
    if (write_key_.empty()) return false;  // no write key: closed
    if (BasicUserMatches(req.get_header_value("Authorization"), write_key_)) return true;
    if (body == nullptr || !body->is_object()) return false;
    const Json* key = body->Find("writeKey");
    return key != nullptr && key->is_string() && ConstantTimeEquals(key->as_string(), write_key_);
  }

  static void Unauthorized(Response& res) {
    res.set_header("WWW-Authenticate", "Basic realm=\"cdp\"");
    Write(res, 401,
          ErrorBody(Status(StatusCode::kUnauthenticated,
                           "missing or invalid write key (HTTP Basic user name, or writeKey in the body)")));
  }

  static void Write(Response& res, int status, std::string body) {
    res.status = status;
    res.set_content(std::move(body), kJsonType);
  }

  // Invalid messages and sizes are 400, as in Segment's API; the rest as on the /api/ routes.
  static void WriteStatus(Response& res, const Status& status) {
    const int http = status.IsInvalidArgument() || status.IsResourceExhausted() ? 400 : HttpStatusFor(status.code());
    Write(res, http, ErrorBody(status));
  }

  Engine& engine_;
  std::string write_key_;
  std::string principal_;
  SegmentOptions segment_;
  ParseLimits limits_;
};

}  // namespace

void RegisterSegmentRoutes(httplib::Server& http, Engine& engine, const ServerOptions& options) {
  auto api = std::make_shared<SegmentApi>(engine, options);
  auto route = [&http, api](std::string type) {
    http.Post("/v1/" + type, [api, type](const Request& req, Response& res, const ContentReader& reader) {
      api->Handle(type, req, res, reader);
    });
  };
  for (std::string_view type : kTypes) route(std::string(type));
  route("batch");
}

bool BasicUserMatches(std::string_view authorization, std::string_view write_key) {
  constexpr std::string_view kScheme = "basic ";
  if (write_key.empty() || authorization.size() < kScheme.size()) return false;
  for (size_t i = 0; i < kScheme.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(authorization[i])) != kScheme[i]) return false;
  }
  std::string_view token = authorization.substr(kScheme.size());
  while (!token.empty() && token.front() == ' ') token.remove_prefix(1);
  while (!token.empty() && token.back() == ' ') token.remove_suffix(1);
  std::optional<std::string> decoded = Base64Decode(token);
  if (!decoded) return false;
  const size_t colon = decoded->find(':');
  return ConstantTimeEquals(std::string_view(*decoded).substr(0, colon), write_key);
}

}  // namespace cdp::server
