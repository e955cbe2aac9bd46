// Copyright 2026 The libcdp Authors.

#include "server.h"

#include <algorithm>
#include <atomic>
#include <cctype>
#include <charconv>
#include <cstdint>
#include <exception>
#include <functional>
#include <initializer_list>
#include <memory>
#include <optional>
#include <regex>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "cdp/json.h"
#include "cdp/query.h"
#include "console_files.h"
#include "segment_routes.h"

namespace cdp::server {
namespace {

using httplib::ContentReader;
using httplib::Request;
using httplib::Response;

constexpr char kJsonType[] = "application/json";

// Query parameters of GET /api/cdp/events and the per-profile event routes, passed to EventQuery::FromJson under
// the same names. "limit", "since", "until" and "where" are converted first (see EventQueryFromParams).
constexpr std::string_view kEventQueryParams[] = {"type", "name", "source", "order", "cursor"};

bool IsBlank(std::string_view text) {
  return std::all_of(text.begin(), text.end(), [](unsigned char c) { return std::isspace(c) != 0; });
}

bool IsAllDigits(std::string_view text) {
  return !text.empty() && std::all_of(text.begin(), text.end(), [](unsigned char c) { return std::isdigit(c) != 0; });
}

void WriteJson(Response& res, int http_status, const Json& body) {
  res.status = http_status;
  res.set_content(body.Dump(), kJsonType);
}

void WriteError(Response& res, int http_status, const Status& status) {
  res.status = http_status;
  res.set_content(ErrorBody(status), kJsonType);
}

void WriteStatus(Response& res, const Status& status) { WriteError(res, HttpStatusFor(status.code()), status); }

Json PageToJson(Page page) {
  Json items = Json::Array();
  for (Json& item : page.items) items.Push(std::move(item));
  Json body = Json::Object();
  body.Set("items", std::move(items));
  body.Set("nextCursor", page.next_cursor.empty() ? Json() : Json(std::move(page.next_cursor)));
  return body;
}

// The query parameters a route takes (Api::Route). By default none: any other (a misspelt `limt`), or one given
// twice, is 400 naming it, after the key is checked. `checked = false`: the handler checks its own while it parses
// them (EventQueryFromParams).
struct QueryParams {
  bool checked = true;
  std::vector<std::string> allowed;
};

// The routes and how they map onto the Engine. Shared (via shared_ptr) by the handlers registered on httplib.
class Api : public std::enable_shared_from_this<Api> {
 public:
  Api(Engine& engine, const ServerOptions& options) : engine_(engine), options_(options) {
    const Options& engine_options = engine.options();
    payload_max_bytes_ =
        std::max(engine_options.max_batch_bytes, engine_options.max_profile_bytes) + options.body_slack_bytes;
    limits_.max_bytes = payload_max_bytes_;
    limits_.max_depth = engine_options.max_json_depth;
  }

  void Register(httplib::Server& http);

 private:
  using Handler = std::function<void(const Request&, Response&)>;

  static QueryParams SelfChecked() { return {false, {}}; }

  // Registers `handler` for `method` on `pattern` (a regex matched against the whole decoded path). API routes
  // check the bearer token first, then the query parameters.
  void Route(httplib::Server& http, std::string_view method, const std::string& pattern, Handler handler,
             QueryParams params = {});

  // The principal a request runs for (Governance): the --api-key's (or the key cdp-server made up for its run) is
  // "api-key", a database key's is the one it was issued to. Unauthenticated for a missing, malformed, unknown or
  // revoked key.
  Result<std::string> Authenticate(const Request& req) const;

  // Error answers without a body (httplib's own 404 / 413 / 400, ...) get the JSON error shape here. A request for
  // a known path with another method is 405.
  void HandleError(const Request& req, Response& res) const;

  // The request body as JSON; a blank body is {} when `blank_is_empty_object`.
  Result<Json> ParseBody(const Request& req, bool blank_is_empty_object = false) const;
  // A batch route's body: as ParseBody, nested down to Options::batch_document_depth(), so that an item deeper than
  // max_json_depth is refused alone by the engine (naming its path) and the other items are stored.
  Result<Json> ParseBatchBody(const Request& req) const;
  static Result<Json> ParseJsonBody(std::string_view text, const ParseLimits& limits);
  // The JSON form of an EventQuery built from the query string.
  Result<Json> EventQueryFromParams(const Request& req, bool allow_profile_id) const;
  Result<EventQuery> ParseEventQuery(const Request& req, bool allow_profile_id) const;

  void CreateProfile(const Request& req, Response& res);
  void CreateProfiles(const Request& req, Response& res);
  void GetProfile(const Request& req, Response& res);
  void ReplaceProfile(const Request& req, Response& res);
  void PatchProfile(const Request& req, Response& res);
  void DeleteProfile(const Request& req, Response& res);
  void RecordConsent(const Request& req, Response& res);
  void GetConsent(const Request& req, Response& res);
  void GetConsentHistory(const Request& req, Response& res);
  void ExportPerson(const Request& req, Response& res);
  void ErasePerson(const Request& req, Response& res);
  void GetPrivacyRequest(const Request& req, Response& res);
  void ListPrivacyRequests(const Request& req, Response& res);
  void Suppression(const Request& req, Response& res);
  void ListAudit(const Request& req, Response& res);
  void VerifyAudit(const Request& req, Response& res);
  void SearchProfiles(const Request& req, Response& res);
  void ListProfiles(const Request& req, Response& res);
  void ProfileEvents(const Request& req, Response& res);
  void ProfileSessions(const Request& req, Response& res);
  void TrackEvent(const Request& req, Response& res);
  void TrackBatch(const Request& req, Response& res);
  void QueryEvents(const Request& req, Response& res);
  void Stats(const Request& req, Response& res);
  void MergeProfiles(const Request& req, Response& res);
  void ExplainIdentity(const Request& req, Response& res);
  void GetIdentityRules(const Request& req, Response& res);
  void SetIdentityRules(const Request& req, Response& res);
  void IdentityStats(const Request& req, Response& res);
  void Identify(const Request& req, Response& res);
  void IdentifyBatch(const Request& req, Response& res);
  void Unmerge(const Request& req, Response& res);
  void DryRunRules(const Request& req, Response& res);
  void ApplyRules(const Request& req, Response& res);
  void GetMatching(const Request& req, Response& res);
  void SetMatching(const Request& req, Response& res);
  void FindDuplicates(const Request& req, Response& res);
  void MatchPending(const Request& req, Response& res);
  void ListProposals(const Request& req, Response& res);
  void DecideProposal(const Request& req, Response& res);
  void CreateSegment(const Request& req, Response& res);
  void ListSegments(const Request& req, Response& res);
  void GetSegment(const Request& req, Response& res);
  void UpdateSegment(const Request& req, Response& res);
  void DeleteSegment(const Request& req, Response& res);
  void SegmentMembers(const Request& req, Response& res);
  void SegmentSize(const Request& req, Response& res);
  void SegmentChanges(const Request& req, Response& res);
  void ChangeSegmentMembers(const Request& req, Response& res);
  void SegmentOverlap(const Request& req, Response& res);
  void ExportSegment(const Request& req, Response& res);
  using ExportFn = Status (*)(Engine&, const std::string& id, const std::string& format,
                              const std::vector<std::string>& fields,
                              const std::function<bool(std::string_view)>& sink);
  void StreamExport(const Request& req, Response& res, ExportFn run);
  void RegisterAudienceRoutes(httplib::Server& http);
  void RegisterConsole(httplib::Server& http);
  // /api/cdp/governance/...: the policy, the caller's (or a principal's) access, API keys; /api/cdp/retention/...
  void RegisterGovernanceRoutes(httplib::Server& http);
  void EstimateSegment(const Request& req, Response& res);

  Engine& engine_;
  ServerOptions options_;
  size_t payload_max_bytes_ = 0;
  ParseLimits limits_;

  struct RouteEntry {
    std::string pattern;
    std::regex regex;
    std::vector<std::string> methods;
    bool listed = true;  // in GET /api/cdp/routes (the /v1/ routes are not: they take the write key)
  };
  std::vector<RouteEntry> routes_;  // for 405 answers; written only during Register
};

void Api::Register(httplib::Server& http) {
  http.set_payload_max_length(payload_max_bytes_);
  // One answer per connection. cpp-httplib 0.11 cannot end a connection from a handler (a "Connection: close" it
  // sets is ignored), so a request whose body was left unread (a gzip stream that breaks, a body over the limit, a
  // chunked DELETE or a GET with a body, which it does not read) would have the rest of its bytes taken for the
  // next request on a kept-alive connection: request smuggling. Answers are large (500 events a request): the
  // extra connection costs little.
  http.set_keep_alive_max_count(1);
  // Every answer is what its Content-Type says (a JSON answer is never sniffed into a script or a page).
  http.set_default_headers({{"X-Content-Type-Options", "nosniff"}});

  std::shared_ptr<Api> self = shared_from_this();
  http.set_error_handler(httplib::Server::HandlerWithResponse([self](const Request& req, Response& res) {
    self->HandleError(req, res);
    return httplib::Server::HandlerResponse::Handled;
  }));
  // cpp-httplib routes on the decoded path: "/api/cdp/profiles/a%2Fevents" would reach a's timeline, not a
  // profile "a/events". An encoded '/' in the path (req.target: the target as sent) is refused; no id holds one.
  http.set_pre_routing_handler([](const Request& req, Response& res) {
    const std::string_view target = std::string_view(req.target).substr(0, req.target.find('?'));
    if (target.find("%2F") == std::string_view::npos && target.find("%2f") == std::string_view::npos) {
      return httplib::Server::HandlerResponse::Unhandled;
    }
    WriteStatus(res, Status::InvalidArgument("the path holds an encoded '/' (%2F), which no id may contain", "path"));
    return httplib::Server::HandlerResponse::Handled;
  });
  http.set_exception_handler([](const Request&, Response& res, std::exception_ptr ep) {
    std::string what = "unknown exception";
    try {
      if (ep) std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    WriteStatus(res, Status::Internal("unhandled exception: " + what));
  });

  http.Get("/healthz", [](const Request&, Response& res) { WriteJson(res, 200, Json::Object().Set("status", "ok")); });
  RegisterConsole(http);

  auto bind = [self](void (Api::*method)(const Request&, Response&)) {
    return [self, method](const Request& req, Response& res) { ((*self).*method)(req, res); };
  };
  const std::string profile = R"(/api/cdp/profiles/([^/]+))";
  Route(http, "POST", "/api/cdp/profiles", bind(&Api::CreateProfile));
  Route(http, "POST", "/api/cdp/profiles/batch", bind(&Api::CreateProfiles));
  Route(http, "POST", "/api/cdp/profiles/search", bind(&Api::SearchProfiles));
  Route(http, "GET", "/api/cdp/profiles", bind(&Api::ListProfiles), {true, {"limit", "cursor", "sort", "order"}});
  Route(http, "POST", "/api/cdp/profiles/merge", bind(&Api::MergeProfiles));
  Route(http, "GET", profile, bind(&Api::GetProfile));
  Route(http, "PUT", profile, bind(&Api::ReplaceProfile));
  Route(http, "PATCH", profile, bind(&Api::PatchProfile));
  Route(http, "DELETE", profile, bind(&Api::DeleteProfile));
  Route(http, "GET", profile + "/timeline", bind(&Api::ProfileEvents), SelfChecked());
  Route(http, "GET", profile + "/events", bind(&Api::ProfileEvents), SelfChecked());
  Route(http, "GET", profile + "/sessions", bind(&Api::ProfileSessions));
  Route(http, "GET", profile + "/identity", bind(&Api::ExplainIdentity));
  Route(http, "POST", profile + "/unmerge", bind(&Api::Unmerge));
  Route(http, "GET", "/api/cdp/identity/rules", bind(&Api::GetIdentityRules));
  Route(http, "PUT", "/api/cdp/identity/rules", bind(&Api::SetIdentityRules));
  Route(http, "GET", "/api/cdp/identity/stats", bind(&Api::IdentityStats));
  Route(http, "POST", "/api/cdp/identity/identify", bind(&Api::Identify));
  Route(http, "POST", "/api/cdp/identity/identify/batch", bind(&Api::IdentifyBatch));
  Route(http, "POST", "/api/cdp/identity/rules/dry-run", bind(&Api::DryRunRules));
  Route(http, "POST", "/api/cdp/identity/rules/apply", bind(&Api::ApplyRules));
  Route(http, "GET", "/api/cdp/identity/matching", bind(&Api::GetMatching));
  Route(http, "PUT", "/api/cdp/identity/matching", bind(&Api::SetMatching));
  Route(http, "POST", "/api/cdp/identity/duplicates", bind(&Api::FindDuplicates));
  Route(http, "POST", "/api/cdp/identity/matching/pending", bind(&Api::MatchPending));
  Route(http, "GET", "/api/cdp/identity/proposals", bind(&Api::ListProposals), {true, {"status"}});
  Route(http, "POST", R"(/api/cdp/identity/proposals/([^/]+)/(accept|reject))", bind(&Api::DecideProposal));
  const std::string segment = R"(/api/cdp/segments/(seg_[^/]+))";
  Route(http, "POST", "/api/cdp/segments", bind(&Api::CreateSegment));
  Route(http, "GET", "/api/cdp/segments", bind(&Api::ListSegments));
  Route(http, "POST", "/api/cdp/segments/estimate", bind(&Api::EstimateSegment));
  Route(http, "POST", "/api/cdp/segments/overlap", bind(&Api::SegmentOverlap));
  Route(http, "GET", segment, bind(&Api::GetSegment));
  Route(http, "PUT", segment, bind(&Api::UpdateSegment));
  Route(http, "DELETE", segment, bind(&Api::DeleteSegment));
  Route(http, "GET", segment + "/members", bind(&Api::SegmentMembers), {true, {"limit", "cursor", "asOf"}});
  Route(http, "GET", segment + "/size", bind(&Api::SegmentSize));
  Route(http, "GET", segment + "/changes", bind(&Api::SegmentChanges), {true, {"since", "limit", "wait"}});
  Route(http, "POST", segment + "/members", bind(&Api::ChangeSegmentMembers));
  Route(http, "POST", segment + "/members/remove", bind(&Api::ChangeSegmentMembers));
  Route(http, "POST", segment + "/export", bind(&Api::ExportSegment));
  RegisterAudienceRoutes(http);
  Route(http, "POST", "/api/cdp/events", bind(&Api::TrackEvent));
  Route(http, "GET", "/api/cdp/events", bind(&Api::QueryEvents), SelfChecked());
  Route(http, "POST", "/api/cdp/events/batch", bind(&Api::TrackBatch));
  Route(http, "GET", "/api/cdp/stats", bind(&Api::Stats));
  Route(http, "POST", "/api/cdp/consent", bind(&Api::RecordConsent));
  Route(http, "GET", R"(/api/cdp/consent/([^/]+))", bind(&Api::GetConsent));
  Route(http, "GET", R"(/api/cdp/consent/([^/]+)/history)", bind(&Api::GetConsentHistory), {true, {"limit", "cursor"}});
  Route(http, "POST", R"(/api/cdp/gdpr/export/([^/]+))", bind(&Api::ExportPerson));
  Route(http, "POST", R"(/api/cdp/gdpr/delete/([^/]+))", bind(&Api::ErasePerson));
  Route(http, "GET", "/api/cdp/gdpr/requests", bind(&Api::ListPrivacyRequests),
        {true, {"type", "status", "profileId", "cursor", "limit"}});
  Route(http, "GET", R"(/api/cdp/gdpr/requests/([^/]+))", bind(&Api::GetPrivacyRequest));
  Route(http, "POST", "/api/cdp/gdpr/suppression/check", bind(&Api::Suppression));
  Route(http, "POST", "/api/cdp/gdpr/suppression/lift", bind(&Api::Suppression));
  RegisterGovernanceRoutes(http);
  Route(http, "GET", "/api/cdp/audit", bind(&Api::ListAudit),
        {true, {"principal", "operation", "target", "resource", "since", "until", "limit", "cursor"}});
  Route(http, "GET", "/api/cdp/audit/verify", bind(&Api::VerifyAudit));
  // The routes above, for any key: {"routes": [{"pattern" (a regular expression of the path), "methods"}]}.
  Route(http, "GET", "/api/cdp/routes", [self](const Request&, Response& res) {
    Json routes = Json::Array();
    for (const RouteEntry& route : self->routes_) {
      if (!route.listed) continue;
      Json methods = Json::Array();
      for (const std::string& m : route.methods) methods.Push(m);
      routes.Push(Json::Object().Set("pattern", route.pattern).Set("methods", std::move(methods)));
    }
    WriteJson(res, 200, Json::Object().Set("routes", std::move(routes)));
  });
  RegisterSegmentRoutes(http, engine_, options_);  // POST /v1/identify ... /v1/batch (segment_routes.cc)
  const std::string v1 = "/v1/(identify|track|page|screen|group|alias|batch)";
  routes_.push_back(RouteEntry{v1, std::regex(v1), {"POST"}, /*listed=*/false});  // another method is 405 there too
}

// The web console: static files built into the server (console_files.h), served without a key (it holds no data;
// every API call it makes carries the key its user enters). Only its own script and style may run or load.
void Api::RegisterConsole(httplib::Server& http) {
  auto redirect = [](const Request&, Response& res) { res.set_redirect("/console/", 302); };
  http.Get("/", redirect);
  http.Get("/console", redirect);
  http.Get("/favicon.ico", [](const Request&, Response& res) { res.status = 204; });  // none: not a missing file
  http.Get(R"(/console/([a-z]+\.(?:html|js|css))?)", [](const Request& req, Response& res) {
    const std::string name = req.matches[1].str().empty() ? std::string("index.html") : req.matches[1].str();
    for (const ConsoleFile& file : ConsoleFiles()) {
      if (file.name != name) continue;
      const std::string_view type = name.ends_with(".js")    ? "text/javascript; charset=utf-8"
                                    : name.ends_with(".css") ? "text/css; charset=utf-8"
                                                             : "text/html; charset=utf-8";
      res.set_header("Content-Security-Policy",
                     "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; "
                     "base-uri 'none'; form-action 'none'; frame-ancestors 'none'; require-trusted-types-for 'script'");
      res.set_header("Referrer-Policy", "no-referrer");  // and nosniff, as every answer (Register)
      res.set_header("Cache-Control", "no-cache");
      res.set_content(std::string(file.body), std::string(type));
      return;
    }
    WriteStatus(res, Status::NotFound("no console file " + name));
  });
}

void Api::Route(httplib::Server& http, std::string_view method, const std::string& pattern, Handler handler,
                QueryParams params) {
  if (params.checked) {
    handler = [handler = std::move(handler), allowed = std::move(params.allowed)](const Request& req, Response& res) {
      std::set<std::string> seen;
      for (const auto& [key, value] : req.params) {
        if (!seen.insert(key).second) {
          return WriteStatus(res, Status::InvalidArgument("query parameter given more than once", key));
        }
        if (std::find(allowed.begin(), allowed.end(), key) != allowed.end()) continue;
        std::string expected;
        for (const std::string& a : allowed) expected += (expected.empty() ? "" : ", ") + a;
        return WriteStatus(
            res, Status::InvalidArgument(
                     "unknown query parameter \"" + key + "\" (" +
                         (expected.empty() ? std::string("this route takes none") : "expected " + expected) + ")",
                     key));
      }
      handler(req, res);
    };
  }
  auto entry = std::find_if(routes_.begin(), routes_.end(), [&](const RouteEntry& e) { return e.pattern == pattern; });
  if (entry == routes_.end()) {
    routes_.push_back(RouteEntry{pattern, std::regex(pattern), {}});
    entry = routes_.end() - 1;
  }
  entry->methods.emplace_back(method);

  auto unauthorized = [](Response& res, const Status& why) {
    res.set_header("WWW-Authenticate", "Bearer");
    WriteStatus(res, why);
  };
  if (method == "GET") {
    http.Get(pattern, [self = shared_from_this(), handler, unauthorized](const Request& req, Response& res) {
      Result<std::string> principal = self->Authenticate(req);
      if (!principal.ok()) return unauthorized(res, principal.status());
      ScopedPrincipal scope(*principal);  // whose permissions apply to this request's calls, and whom audit names
      handler(req, res);
    });
    return;
  }
  // Other methods read their body here, after the key is checked, and only when the request has one: HTTP/1.1 (RFC
  // 9112, 6.3) says a request with neither Content-Length nor Transfer-Encoding has none, where cpp-httplib 0.11
  // would wait for the client to close the connection. At most payload_max_bytes_ are kept, after decompression
  // (httplib checks only a Content-Length against the limit): a chunked or gzip body cannot grow memory past it.
  // The body is read to its end when it can be (refused requests included), so the connection stays in step; the
  // server ends every connection after one answer anyway (Register), so one it cannot drain (a gzip stream that
  // breaks, a body over the limit) carries nothing further.
  auto with_body = [self = shared_from_this(), handler, unauthorized](const Request& req, Response& res,
                                                                      const ContentReader& reader) {
    const size_t cap = self->payload_max_bytes_;
    const bool has_body = req.has_header("Content-Length") || req.has_header("Transfer-Encoding");
    Result<std::string> principal = self->Authenticate(req);
    const Status encoding = CheckContentEncoding(req);
    if (req.is_multipart_form_data() || !encoding.ok() || !principal.ok()) {
      size_t seen = 0;  // read and dropped, up to the limit
      auto drop = [&seen, cap](const char*, size_t length) { return (seen += length) <= cap; };
      if (req.is_multipart_form_data()) {
        reader([](const httplib::MultipartFormData&) { return true; }, drop);
      } else if (has_body) {
        reader(drop);
      }
      if (!principal.ok()) return unauthorized(res, principal.status());
      if (!encoding.ok()) return WriteStatus(res, encoding);
      return WriteStatus(res, Status::InvalidArgument("multipart/form-data bodies are not accepted: send JSON with "
                                                      "Content-Type: application/json"));
    }
    if (has_body) {
      std::string body;
      bool over = false;
      const bool read = reader([&body, &over, cap](const char* data, size_t length) {
        if (body.size() + length > cap) {
          over = true;
          return false;
        }
        body.append(data, length);
        return true;
      });
      if (over || res.status == 413) {
        return WriteError(res, 413,
                          Status::ResourceExhausted("request body exceeds " + std::to_string(cap) +
                                                    " bytes (after decompression, when compressed)"));
      }
      if (!read) {
        if (res.status < 400) res.status = 400;  // the error handler writes the answer
        return;
      }
      const_cast<Request&>(req).body = std::move(body);  // httplib's own request object, not const
    }
    ScopedPrincipal scope(*principal);
    handler(req, res);
  };
  if (method == "POST") {
    http.Post(pattern, std::move(with_body));
  } else if (method == "PUT") {
    http.Put(pattern, std::move(with_body));
  } else if (method == "PATCH") {
    http.Patch(pattern, std::move(with_body));
  } else if (method == "DELETE") {
    http.Delete(pattern, std::move(with_body));
  }
}

Result<std::string> Api::Authenticate(const Request& req) const {
  const Status missing(StatusCode::kUnauthenticated, "missing or invalid API key (Authorization: Bearer)");
  if (!req.has_header("Authorization")) return missing;
  const std::string authorization = req.get_header_value("Authorization");  // a copy: the token views it
  std::optional<std::string_view> token = BearerToken(authorization);
  if (!token) return missing;
  if (!options_.api_key.empty() && ConstantTimeEquals(*token, options_.api_key)) return std::string("api-key");
  Result<std::string> principal = engine_.governance().Authenticate(*token);
  if (!principal.ok()) return missing;
  return principal;
}

void Api::HandleError(const Request& req, Response& res) const {
  if (!res.body.empty()) return;  // a handler's own error answer
  if (req.path.starts_with("/api/")) {
    if (Result<std::string> principal = Authenticate(req); !principal.ok()) {
      res.set_header("WWW-Authenticate", "Bearer");
      WriteStatus(res, principal.status());
      return;
    }
  }
  // httplib answers 400 before routing a POST, PUT or PATCH it cannot read (one without a body, to a path or
  // method it has no handler for): unless the path has a handler for this method, that is a 404 or 405. Any other
  // 400 of httplib's is a request it could not read (its request line, a header line over 8 KiB): it stays 400.
  bool routed = false;
  for (const RouteEntry& route : routes_) {
    routed = routed || (std::regex_match(req.path, route.regex) &&
                        std::find(route.methods.begin(), route.methods.end(), req.method) != route.methods.end());
  }
  const bool bodyless_write = (req.method == "POST" || req.method == "PUT" || req.method == "PATCH") &&
                              (req.version == "HTTP/1.1" || req.version == "HTTP/1.0") &&
                              !req.has_header("Content-Length") && !req.has_header("Transfer-Encoding");
  switch (routed || res.status != 400 || !bodyless_write ? res.status : 404) {
    case 404: {
      for (const RouteEntry& route : routes_) {
        if (!std::regex_match(req.path, route.regex)) continue;
        std::string allowed;
        for (const std::string& m : route.methods) allowed += (allowed.empty() ? "" : ", ") + m;
        res.set_header("Allow", allowed);
        WriteError(res, 405,
                   Status::InvalidArgument("method " + req.method + " is not allowed on " + req.path +
                                           " (allowed: " + allowed + ")"));
        return;
      }
      // A segment or audience id without its prefix matches no route, but the caller named a resource: say so.
      static const std::regex kNamed(R"(/api/cdp/(segments|audiences)/([^/]+)(/[a-z/]*)?)");
      std::smatch named;
      if (std::regex_match(req.path, named, kNamed)) {
        const bool segment = named[1] == "segments";
        const std::string kind = segment ? "segment" : "audience";
        WriteError(res, 404,
                   Status::NotFound(kind + " " + named[2].str() + " does not exist (" + kind + " ids start with " +
                                    (segment ? "seg_" : "aud_") + ")"));
        return;
      }
      WriteError(res, 404, Status::NotFound("no route for " + req.method + " " + req.path));
      return;
    }
    case 413:
      WriteError(res, 413,
                 Status::ResourceExhausted("request body exceeds " + std::to_string(payload_max_bytes_) + " bytes"));
      return;
    case 414:
      WriteError(res, 414, Status::InvalidArgument("request URI too long"));
      return;
    default:
      if (res.status < 500) {
        WriteError(res, res.status, Status::InvalidArgument("malformed HTTP request"));
      } else {
        WriteError(res, res.status, Status::Internal("internal server error"));
      }
      return;
  }
}

Result<Json> Api::ParseBody(const Request& req, bool blank_is_empty_object) const {
  if (blank_is_empty_object && IsBlank(req.body)) return Json::Object();
  return ParseJsonBody(req.body, limits_);
}

Result<Json> Api::ParseBatchBody(const Request& req) const {
  ParseLimits limits = limits_;
  limits.max_depth = engine_.options().batch_document_depth();  // each item is held to max_json_depth on its own
  return ParseJsonBody(req.body, limits);
}

Result<Json> Api::ParseJsonBody(std::string_view text, const ParseLimits& limits) {
  Result<Json> parsed = Json::Parse(text, limits);
  if (!parsed.ok()) {
    const Status& s = parsed.status();
    return Status(s.code(), "request body: " + s.message(), s.field());
  }
  return parsed;
}

Result<Json> Api::EventQueryFromParams(const Request& req, bool allow_profile_id) const {
  Json query = Json::Object();
  std::set<std::string> seen;
  for (const auto& [key, value] : req.params) {
    if (!seen.insert(key).second) return Status::InvalidArgument("query parameter given more than once", key);
    if (key == "limit") {
      int64_t limit = 0;
      auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), limit);
      if (!IsAllDigits(value) || ec != std::errc() || end != value.data() + value.size() || limit <= 0) {
        return Status::InvalidArgument("limit must be a positive integer, got \"" + value + "\"", key);
      }
      query.Set(key, limit);
    } else if (key == "since" || key == "until") {
      int64_t millis = 0;
      auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), millis);
      if (IsAllDigits(value) && ec == std::errc() && end == value.data() + value.size()) {
        query.Set(key, millis);  // epoch milliseconds
      } else {
        query.Set(key, value);  // ISO 8601; ParseTimestamp judges
      }
    } else if (key == "where") {
      Result<Json> where = Json::Parse(value, limits_);
      if (!where.ok()) return Status::InvalidArgument("where: " + where.status().message(), key);
      query.Set(key, std::move(where).value());
    } else if ((allow_profile_id && key == "profileId") ||
               std::find(std::begin(kEventQueryParams), std::end(kEventQueryParams), key) !=
                   std::end(kEventQueryParams)) {
      query.Set(key, value);
    } else {
      return Status::InvalidArgument("unknown query parameter \"" + key + "\"", key);
    }
  }
  return query;
}

Result<EventQuery> Api::ParseEventQuery(const Request& req, bool allow_profile_id) const {
  Result<Json> json = EventQueryFromParams(req, allow_profile_id);
  if (!json.ok()) return json.status();
  return EventQuery::FromJson(*json);
}

void Api::CreateProfile(const Request& req, Response& res) {
  Result<Json> body = ParseBody(req);
  if (!body.ok()) return WriteStatus(res, body.status());
  Result<Json> created = engine_.profiles().Create(*body);
  if (!created.ok()) return WriteStatus(res, created.status());
  if (const Json* id = created->Find("id"); id != nullptr && id->is_string()) {
    res.set_header("Location", "/api/cdp/profiles/" + id->as_string());
  }
  WriteJson(res, 201, *created);
}

void Api::CreateProfiles(const Request& req, Response& res) {
  Result<Json> body = ParseBatchBody(req);
  if (!body.ok()) return WriteStatus(res, body.status());
  const Json* items = body->is_object() ? body->Find("batch") : &*body;
  if (items == nullptr || !items->is_array()) {
    return WriteStatus(res, Status::InvalidArgument("expected an array of profiles or {\"batch\": [...]}"));
  }
  Result<Json> created = engine_.profiles().CreateBatch(items->items());
  if (!created.ok()) return WriteStatus(res, created.status());
  WriteJson(res, 200, *created);
}

void Api::GetProfile(const Request& req, Response& res) {
  Result<Json> profile = engine_.profiles().Get(req.matches[1].str());
  if (!profile.ok()) return WriteStatus(res, profile.status());
  WriteJson(res, 200, *profile);
}

void Api::ReplaceProfile(const Request& req, Response& res) {
  Result<Json> body = ParseBody(req);
  if (!body.ok()) return WriteStatus(res, body.status());
  Result<Json> replaced = engine_.profiles().Replace(req.matches[1].str(), *body);
  if (!replaced.ok()) return WriteStatus(res, replaced.status());
  WriteJson(res, 200, *replaced);
}

void Api::PatchProfile(const Request& req, Response& res) {
  Result<Json> body = ParseBody(req);
  if (!body.ok()) return WriteStatus(res, body.status());
  Result<Json> patched = engine_.profiles().Patch(req.matches[1].str(), *body);
  if (!patched.ok()) return WriteStatus(res, patched.status());
  WriteJson(res, 200, *patched);
}

void Api::DeleteProfile(const Request& req, Response& res) {  // an erasure request, as /gdpr/delete
  std::string id = req.matches[1].str();
  Result<Json> erased = engine_.gdpr().Erase(id);
  if (!erased.ok()) return WriteStatus(res, erased.status());
  WriteJson(res, 200, Json::Object().Set("deleted", std::move(id)).Set("request", std::move(erased).value()));
}

// ---- Consent --------------------------------------------------------------------------------------------------------

void Api::RecordConsent(const Request& req, Response& res) {
  Result<Json> body = ParseBody(req);
  if (!body.ok()) return WriteStatus(res, body.status());
  Result<Json> recorded = engine_.consent().Record(*body);
  if (!recorded.ok()) return WriteStatus(res, recorded.status());
  res.set_header("Location", "/api/cdp/consent/" + recorded->Find("profileId")->as_string());
  WriteJson(res, 201, *recorded);
}

void Api::GetConsent(const Request& req, Response& res) {
  Result<Json> consent = engine_.consent().Get(req.matches[1].str());
  if (!consent.ok()) return WriteStatus(res, consent.status());
  WriteJson(res, 200, *consent);
}

// ---- GDPR and CCPA requests -----------------------------------------------------------------------------------------

static Status IntParam(const Request& req, const char* name, int64_t low, int64_t high, int64_t* out);

void Api::ExportPerson(const Request& req, Response& res) {
  Result<Json> out = engine_.gdpr().Export(req.matches[1].str());
  if (!out.ok()) return WriteStatus(res, out.status());
  res.set_header("Content-Disposition", "attachment; filename=\"" + req.matches[1].str() + "-export.json\"");
  WriteJson(res, 200, *out);
}

void Api::ErasePerson(const Request& req, Response& res) {
  Result<Json> record = engine_.gdpr().Erase(req.matches[1].str());
  if (!record.ok()) return WriteStatus(res, record.status());
  WriteJson(res, 200, *record);
}

void Api::GetPrivacyRequest(const Request& req, Response& res) {
  Result<Json> record = engine_.gdpr().GetRequest(req.matches[1].str());
  if (!record.ok()) return WriteStatus(res, record.status());
  WriteJson(res, 200, *record);
}

void Api::ListPrivacyRequests(const Request& req, Response& res) {
  Json filter = Json::Object();
  for (const char* key : {"type", "status", "profileId", "cursor"}) {
    if (req.has_param(key)) filter.Set(key, req.get_param_value(key));
  }
  if (req.has_param("limit")) {
    int64_t limit = 0;
    Status s = IntParam(req, "limit", 1, 1000, &limit);
    if (!s.ok()) return WriteStatus(res, s);
    filter.Set("limit", limit);
  }
  Result<Json> out = engine_.gdpr().ListRequests(filter);
  if (!out.ok()) return WriteStatus(res, out.status());
  WriteJson(res, 200, *out);
}

// POST /api/cdp/gdpr/suppression/check and /lift, body {"type", "value"}.
void Api::Suppression(const Request& req, Response& res) {
  Result<Json> body = ParseBody(req);
  if (!body.ok()) return WriteStatus(res, body.status());
  const Json* type = body->Find("type");
  const Json* value = body->Find("value");
  if (type == nullptr || !type->is_string())
    return WriteStatus(res, Status::InvalidArgument("expected a string", "type"));
  if (value == nullptr || !value->is_string()) {
    return WriteStatus(res, Status::InvalidArgument("expected a string", "value"));
  }
  if (req.path.ends_with("/lift")) {
    Result<Json> lifted = engine_.gdpr().Unsuppress(type->as_string(), value->as_string());
    if (!lifted.ok()) return WriteStatus(res, lifted.status());
    return WriteJson(res, 200, *lifted);
  }
  Result<bool> suppressed = engine_.gdpr().IsSuppressed(type->as_string(), value->as_string());
  if (!suppressed.ok()) return WriteStatus(res, suppressed.status());
  WriteJson(res, 200, Json::Object().Set("suppressed", *suppressed));
}

// ---- Audit log ------------------------------------------------------------------------------------------------------

// InvalidArgument naming the first query parameter of `req` not in `known` (a misspelt filter must not be ignored).
// A query parameter as a request member: digits only (epoch milliseconds) as a number, else the text.
Json ParamValue(const std::string& value) {
  int64_t n = 0;
  auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
  if (!value.empty() && value[0] != '-' && ec == std::errc() && end == value.data() + value.size()) return Json(n);
  return Json(value);
}

void Api::ListAudit(const Request& req, Response& res) {
  Json filter = Json::Object();
  for (const char* key : {"principal", "operation", "target", "resource", "since", "until"}) {
    if (req.has_param(key)) filter.Set(key, req.get_param_value(key));
  }
  for (const char* key : {"limit", "cursor"}) {
    int64_t n = 0;
    Status s = IntParam(req, key, 1, INT64_MAX, &n);
    if (!s.ok()) return WriteStatus(res, s);
    if (n != 0) filter.Set(key, n);
  }
  Result<Json> out = engine_.audit().List(filter);
  if (!out.ok()) return WriteStatus(res, out.status());
  WriteJson(res, 200, *out);
}

void Api::GetConsentHistory(const Request& req, Response& res) {
  Json page = Json::Object();
  if (req.has_param("limit")) page.Set("limit", ParamValue(req.get_param_value("limit")));
  if (req.has_param("cursor")) page.Set("cursor", req.get_param_value("cursor"));
  Result<Json> out = engine_.consent().History(req.matches[1].str(), page);
  if (!out.ok()) return WriteStatus(res, out.status());
  WriteJson(res, 200, *out);
}

void Api::VerifyAudit(const Request&, Response& res) {
  Result<Json> out = engine_.audit().Verify();
  if (!out.ok()) return WriteStatus(res, out.status());
  WriteJson(res, 200, *out);
}

void Api::MergeProfiles(const Request& req, Response& res) {
  Result<Json> body = ParseBody(req);
  if (!body.ok()) return WriteStatus(res, body.status());
  const Json* ids = body->Find("profileIds");
  if (ids == nullptr || !ids->is_array()) {
    return WriteStatus(res, Status::InvalidArgument("expected an array of profile ids", "profileIds"));
  }
  std::vector<std::string> profile_ids;
  for (size_t i = 0; i < ids->size(); ++i) {
    if (!ids->items()[i].is_string()) {
      return WriteStatus(res, Status::InvalidArgument("expected a string", "profileIds[" + std::to_string(i) + "]"));
    }
    profile_ids.push_back(ids->items()[i].as_string());
  }
  std::string reason;
  if (const Json* r = body->Find("reason"); r != nullptr && !r->is_null()) {
    if (!r->is_string()) return WriteStatus(res, Status::InvalidArgument("expected a string", "reason"));
    reason = r->as_string();
  }
  for (const auto& [key, value] : body->members()) {
    if (key != "profileIds" && key != "reason") {
      return WriteStatus(res, Status::InvalidArgument("unknown field (expected profileIds, reason)", key));
    }
  }
  Result<Json> merged = engine_.identity().Merge(profile_ids, reason);
  if (!merged.ok()) return WriteStatus(res, merged.status());
  WriteJson(res, 200, *merged);
}

void Api::ExplainIdentity(const Request& req, Response& res) {
  Result<Json> why = engine_.identity().Explain(req.matches[1].str());
  if (!why.ok()) return WriteStatus(res, why.status());
  WriteJson(res, 200, *why);
}

void Api::GetIdentityRules(const Request&, Response& res) {
  Result<Json> rules = engine_.identity().Rules();
  if (!rules.ok()) return WriteStatus(res, rules.status());
  WriteJson(res, 200, *rules);
}

void Api::SetIdentityRules(const Request& req, Response& res) {
  Result<Json> body = ParseBody(req);
  if (!body.ok()) return WriteStatus(res, body.status());
  Result<Json> rules = engine_.identity().SetRules(*body);
  if (!rules.ok()) return WriteStatus(res, rules.status());
  WriteJson(res, 200, *rules);
}

void Api::Unmerge(const Request& req, Response& res) {
  Result<Json> body = ParseBody(req);
  if (!body.ok()) return WriteStatus(res, body.status());
  for (const auto& [key, value] : body->members()) {
    if (key != "mergeId") return WriteStatus(res, Status::InvalidArgument("unknown field (expected mergeId)", key));
  }
  const Json* merge_id = body->Find("mergeId");
  if (merge_id == nullptr || !merge_id->is_string()) {
    return WriteStatus(res, Status::InvalidArgument("expected the id of a merge", "mergeId"));
  }
  Result<Json> undone = engine_.identity().Unmerge(req.matches[1].str(), merge_id->as_string());
  if (!undone.ok()) return WriteStatus(res, undone.status());
  WriteJson(res, 200, *undone);
}

void Api::DryRunRules(const Request& req, Response& res) {
  Result<Json> body = ParseBody(req);
  if (!body.ok()) return WriteStatus(res, body.status());
  Result<Json> dry = engine_.identity().DryRunRules(*body);
  if (!dry.ok()) return WriteStatus(res, dry.status());
  WriteJson(res, 200, *dry);
}

void Api::ApplyRules(const Request& req, Response& res) {
  Result<Json> body = ParseBody(req);
  if (!body.ok()) return WriteStatus(res, body.status());
  Result<Json> applied = engine_.identity().ApplyRules(*body);
  if (!applied.ok()) return WriteStatus(res, applied.status());
  WriteJson(res, 200, *applied);
}

void Api::GetMatching(const Request&, Response& res) {
  Result<Json> config = engine_.identity().MatchingConfig();
  if (!config.ok()) return WriteStatus(res, config.status());
  WriteJson(res, 200, *config);
}

void Api::SetMatching(const Request& req, Response& res) {
  Result<Json> body = ParseBody(req);
  if (!body.ok()) return WriteStatus(res, body.status());
  Result<Json> config = engine_.identity().SetMatchingConfig(*body);
  if (!config.ok()) return WriteStatus(res, config.status());
  WriteJson(res, 200, *config);
}

void Api::FindDuplicates(const Request&, Response& res) {
  Result<Json> run = engine_.identity().FindDuplicates();
  if (!run.ok()) return WriteStatus(res, run.status());
  WriteJson(res, 200, *run);
}

void Api::MatchPending(const Request&, Response& res) {
  Result<Json> run = engine_.identity().MatchPending();
  if (!run.ok()) return WriteStatus(res, run.status());
  WriteJson(res, 200, *run);
}

// ---- Segments ----------------------------------------------------------------------------------------------------

void Api::CreateSegment(const Request& req, Response& res) {
  Result<Json> body = ParseBody(req);
  if (!body.ok()) return WriteStatus(res, body.status());
  Result<Json> created = engine_.segments().Create(*body);
  if (!created.ok()) return WriteStatus(res, created.status());
  WriteJson(res, 201, *created);
}

void Api::ListSegments(const Request&, Response& res) {
  Result<Json> all = engine_.segments().List();
  if (!all.ok()) return WriteStatus(res, all.status());
  WriteJson(res, 200, Json::Object().Set("segments", std::move(all).value()));
}

void Api::GetSegment(const Request& req, Response& res) {
  Result<Json> one = engine_.segments().Get(req.matches[1].str());
  if (!one.ok()) return WriteStatus(res, one.status());
  WriteJson(res, 200, *one);
}

void Api::UpdateSegment(const Request& req, Response& res) {
  Result<Json> body = ParseBody(req);
  if (!body.ok()) return WriteStatus(res, body.status());
  Result<Json> updated = engine_.segments().Update(req.matches[1].str(), *body);
  if (!updated.ok()) return WriteStatus(res, updated.status());
  WriteJson(res, 200, *updated);
}

void Api::DeleteSegment(const Request& req, Response& res) {
  std::string id = req.matches[1].str();
  Status deleted = engine_.segments().Delete(id);
  if (!deleted.ok()) return WriteStatus(res, deleted);
  WriteJson(res, 200, Json::Object().Set("deleted", std::move(id)));
}

// A query parameter that must be an integer in [low, high]; `*out` keeps its value when the parameter is absent.
static Status IntParam(const Request& req, const char* name, int64_t low, int64_t high, int64_t* out) {
  if (!req.has_param(name)) return Status::OK();
  const std::string value = req.get_param_value(name);
  int64_t n = 0;
  auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
  if (!IsAllDigits(value) || ec != std::errc() || end != value.data() + value.size() || n < low || n > high) {
    return Status::InvalidArgument("expected an integer from " + std::to_string(low) + " to " + std::to_string(high),
                                   name);
  }
  *out = n;
  return Status::OK();
}

void Api::SegmentMembers(const Request& req, Response& res) {
  const std::string id = req.matches[1].str();
  if (req.has_param("asOf")) {  // membership at a past time, from the change feed: ids only
    const std::string as_of = req.get_param_value("asOf");
    Result<std::vector<std::string>> ids = engine_.segments().MembersAt(id, as_of);
    if (!ids.ok()) return WriteStatus(res, ids.status());
    Json list = Json::Array();
    for (std::string& p : *ids) list.Push(std::move(p));
    const int64_t count = static_cast<int64_t>(list.size());
    return WriteJson(
        res, 200,
        Json::Object().Set("segmentId", id).Set("asOf", as_of).Set("count", count).Set("profileIds", std::move(list)));
  }
  int64_t limit = 0;
  if (Status s = IntParam(req, "limit", 1, INT32_MAX, &limit); !s.ok()) return WriteStatus(res, s);
  Result<Page> page = engine_.segments().Members(id, static_cast<size_t>(limit), req.get_param_value("cursor"));
  if (!page.ok()) return WriteStatus(res, page.status());
  WriteJson(res, 200, PageToJson(std::move(page).value()));
}

// GET /segments/:id/changes?since=&limit=&wait=: the change feed; with wait (seconds, at most 30) a long poll that
// answers as soon as a change after `since` exists.
void Api::SegmentChanges(const Request& req, Response& res) {
  const std::string id = req.matches[1].str();
  const std::string since = req.get_param_value("since");
  int64_t limit = 0, wait = 0;
  if (Status s = IntParam(req, "limit", 1, INT32_MAX, &limit); !s.ok()) return WriteStatus(res, s);
  if (Status s = IntParam(req, "wait", 0, 30, &wait); !s.ok()) return WriteStatus(res, s);
  Result<Json> page = engine_.segments().Changes(id, since, static_cast<size_t>(limit));
  if (!page.ok()) return WriteStatus(res, page.status());
  if (wait > 0 && page->Find("changes")->size() == 0) {
    // In slices, so that a shutdown (options_.stopping) ends the poll with what there is: the server's stop waits
    // for every request in flight.
    constexpr int64_t kSliceMs = 200;
    for (int64_t left = wait * 1000; left > 0; left -= kSliceMs) {
      if (options_.stopping && options_.stopping->load()) break;
      Result<bool> woke =
          engine_.segments().WaitForChanges(id, page->Find("cursor")->as_string(), std::min(left, kSliceMs));
      if (!woke.ok()) return WriteStatus(res, woke.status());
      if (*woke) {
        page = engine_.segments().Changes(id, page->Find("cursor")->as_string(), static_cast<size_t>(limit));
        if (!page.ok()) return WriteStatus(res, page.status());
        break;
      }
    }
  }
  WriteJson(res, 200, *page);
}

// POST /segments/:id/members {"items": [...]} adds to a manual segment; POST /segments/:id/members/remove removes.
void Api::ChangeSegmentMembers(const Request& req, Response& res) {
  Result<Json> body = ParseBody(req);
  if (!body.ok()) return WriteStatus(res, body.status());
  const Json* items = body->Find("items");
  if (items == nullptr) return WriteStatus(res, Status::InvalidArgument("expected {\"items\": [...]}", "items"));
  const bool remove = req.path.size() >= 7 && req.path.compare(req.path.size() - 7, 7, "/remove") == 0;
  Result<Json> done = remove ? engine_.segments().RemoveMembers(req.matches[1].str(), *items)
                             : engine_.segments().AddMembers(req.matches[1].str(), *items);
  if (!done.ok()) return WriteStatus(res, done.status());
  WriteJson(res, 200, *done);
}

// POST /segments/overlap {"segmentIds": [...]}.
void Api::SegmentOverlap(const Request& req, Response& res) {
  Result<Json> body = ParseBody(req);
  if (!body.ok()) return WriteStatus(res, body.status());
  const Json* ids = body->Find("segmentIds");
  std::vector<std::string> list;
  if (ids == nullptr || !ids->is_array()) {
    return WriteStatus(res, Status::InvalidArgument("expected {\"segmentIds\": [...]}", "segmentIds"));
  }
  for (const Json& id : ids->items()) {
    if (!id.is_string()) return WriteStatus(res, Status::InvalidArgument("expected segment ids", "segmentIds"));
    list.push_back(id.as_string());
  }
  Result<Json> overlap = engine_.segments().Overlap(list);
  if (!overlap.ok()) return WriteStatus(res, overlap.status());
  WriteJson(res, 200, *overlap);
}

// POST /segments/:id/export {"format": "csv" | "jsonl", "fields": [...]}: streamed (chunked) as it is produced.
void Api::ExportSegment(const Request& req, Response& res) {
  StreamExport(
      req, res,
      [](Engine& e, const std::string& id, const std::string& format, const std::vector<std::string>& fields,
         const std::function<bool(std::string_view)>& sink) { return e.segments().Export(id, format, fields, sink); });
}

// Body {"format": "csv" | "jsonl", "fields": [...]}; the answer is streamed (chunked) as it is produced.
void Api::StreamExport(const Request& req, Response& res, ExportFn run) {
  Result<Json> body = ParseBody(req, /*blank_is_empty_object=*/true);
  if (!body.ok()) return WriteStatus(res, body.status());
  std::string format = "csv";
  std::vector<std::string> fields;
  for (const auto& [key, value] : body->members()) {
    if (key == "format" && value.is_string()) {
      format = value.as_string();
    } else if (key == "fields" && value.is_array()) {
      for (const Json& f : value.items()) {
        if (!f.is_string()) return WriteStatus(res, Status::InvalidArgument("expected field paths", "fields"));
        fields.push_back(f.as_string());
      }
    } else {
      return WriteStatus(res, Status::InvalidArgument("expected format (a string) and fields (an array)", key));
    }
  }
  const std::string id = req.matches[1].str();
  // Errors are answered before streaming starts: a first run stops at its first chunk, after the checks.
  Status checked = run(engine_, id, format, fields, [](std::string_view) { return false; });
  if (!checked.ok() && checked.code() != StatusCode::kUnavailable) return WriteStatus(res, checked);
  Engine& engine = engine_;
  res.set_header("Content-Disposition", "attachment; filename=\"" + id + (format == "csv" ? ".csv\"" : ".jsonl\""));
  res.set_chunked_content_provider(
      format == "csv" ? "text/csv; charset=utf-8" : "application/x-ndjson",
      [&engine, run, id, format, fields, principal = ScopedPrincipal::Current()](size_t, httplib::DataSink& sink) {
        ScopedPrincipal scope(principal);  // streamed after the handler returned: for the request's principal still
        Status s = run(engine, id, format, fields, [&sink](std::string_view chunk) {
          return sink.is_writable() && sink.write(chunk.data(), chunk.size());
        });
        if (s.ok()) sink.done();
        return s.ok();  // false: the connection is closed mid-stream, so a reader sees a truncated transfer
      });
}

// ---- Governance -----------------------------------------------------------------------------------------------------

void Api::RegisterGovernanceRoutes(httplib::Server& http) {
  std::shared_ptr<Api> self = shared_from_this();
  auto json = [self](std::function<Result<Json>(Api&, const Request&)> fn, int ok_status = 200) -> Handler {
    return [self, fn, ok_status](const Request& req, Response& res) {
      Result<Json> out = fn(*self, req);
      if (!out.ok()) return WriteStatus(res, out.status());
      WriteJson(res, ok_status, *out);
    };
  };
  Route(http, "GET", "/api/cdp/governance/policy",
        json([](Api& api, const Request&) { return api.engine_.governance().Policy(); }));
  Route(http, "PUT", "/api/cdp/governance/policy", json([](Api& api, const Request& req) -> Result<Json> {
          CDP_ASSIGN_OR_RETURN(Json body, api.ParseBody(req));
          return api.engine_.governance().SetPolicy(body);
        }));
  Route(http, "GET", "/api/cdp/governance/access", json([](Api& api, const Request& req) {
          return api.engine_.governance().Access(req.get_param_value("principal"));
        }),
        {true, {"principal"}});
  Route(http, "GET", "/api/cdp/governance/keys", json([](Api& api, const Request&) -> Result<Json> {
          CDP_ASSIGN_OR_RETURN(Json keys, api.engine_.governance().ListApiKeys());
          return Json::Object().Set("keys", std::move(keys));
        }));
  Route(http, "POST", "/api/cdp/governance/keys",
        json(
            [](Api& api, const Request& req) -> Result<Json> {
              CDP_ASSIGN_OR_RETURN(Json body, api.ParseBody(req));
              return api.engine_.governance().CreateApiKey(body);
            },
            201));
  // Analytics.
  Route(http, "POST", "/api/cdp/analytics/funnel", json([](Api& api, const Request& req) -> Result<Json> {
          CDP_ASSIGN_OR_RETURN(Json body, api.ParseBody(req));
          return api.engine_.analytics().Funnel(body);
        }));
  Route(http, "POST", "/api/cdp/analytics/cohorts", json([](Api& api, const Request& req) -> Result<Json> {
          CDP_ASSIGN_OR_RETURN(Json body, api.ParseBody(req));
          return api.engine_.analytics().Cohorts(body);
        }));
  Route(http, "GET", "/api/cdp/analytics/attribution", json([](Api& api, const Request& req) -> Result<Json> {
          Json request = Json::Object();
          for (std::string_view key : {"conversion", "model", "lookback", "halfLife", "from", "to"}) {
            if (req.has_param(std::string(key))) request.Set(key, ParamValue(req.get_param_value(std::string(key))));
          }
          return api.engine_.analytics().Attribution(request);
        }),
        {true, {"conversion", "model", "lookback", "halfLife", "from", "to"}});
  Route(http, "POST", "/api/cdp/analytics/attribution", json([](Api& api, const Request& req) -> Result<Json> {
          CDP_ASSIGN_OR_RETURN(Json body, api.ParseBody(req));
          return api.engine_.analytics().Attribution(body);
        }));
  Route(http, "GET", "/api/cdp/analytics/overview", json([](Api& api, const Request& req) -> Result<Json> {
          Json request = Json::Object();
          if (req.has_param("now")) request.Set("now", ParamValue(req.get_param_value("now")));
          return api.engine_.analytics().Overview(request);
        }),
        {true, {"now"}});
  Route(http, "GET", "/api/cdp/analytics/quality", json([](Api& api, const Request& req) -> Result<Json> {
          Json request = Json::Object();
          if (req.has_param("now")) request.Set("now", ParamValue(req.get_param_value("now")));
          return api.engine_.analytics().DataQuality(request);
        }),
        {true, {"now"}});
  Route(http, "POST", "/api/cdp/analytics/journeys", json([](Api& api, const Request& req) -> Result<Json> {
          CDP_ASSIGN_OR_RETURN(Json body, api.ParseBody(req));
          return api.engine_.analytics().Journeys(body);
        }));
  Route(http, "POST", "/api/cdp/analytics/trends", json([](Api& api, const Request& req) -> Result<Json> {
          CDP_ASSIGN_OR_RETURN(Json body, api.ParseBody(req));
          return api.engine_.analytics().Trends(body);
        }));
  // Retention.
  Route(http, "GET", "/api/cdp/retention/policies",
        json([](Api& api, const Request&) { return api.engine_.retention().Policies(); }));
  Route(http, "PUT", "/api/cdp/retention/policies", json([](Api& api, const Request& req) -> Result<Json> {
          CDP_ASSIGN_OR_RETURN(Json body, api.ParseBody(req));
          return api.engine_.retention().SetPolicies(body);
        }));
  Route(http, "POST", "/api/cdp/retention/run",
        json([](Api& api, const Request&) { return api.engine_.retention().Run(); }));
  Route(http, "GET", "/api/cdp/retention/runs", json([](Api& api, const Request& req) -> Result<Json> {
          Json filter = Json::Object();
          if (req.has_param("limit")) {
            const std::string limit = req.get_param_value("limit");
            int64_t n = 0;
            auto [end, ec] = std::from_chars(limit.data(), limit.data() + limit.size(), n);
            if (ec != std::errc() || end != limit.data() + limit.size()) {
              return Status::InvalidArgument("expected an integer from 1 to 1000", "limit");
            }
            filter.Set("limit", n);
          }
          if (req.has_param("cursor")) filter.Set("cursor", req.get_param_value("cursor"));
          return api.engine_.retention().Runs(filter);
        }),
        {true, {"limit", "cursor"}});
  Route(http, "DELETE", R"(/api/cdp/governance/keys/([^/]+))", [self](const Request& req, Response& res) {
    Status s = self->engine_.governance().RevokeApiKey(req.matches[1].str());
    if (!s.ok()) return WriteStatus(res, s);
    WriteJson(res, 200, Json::Object().Set("revoked", req.matches[1].str()));
  });
}

// ---- Audiences and suppression lists -------------------------------------------------------------------------------

void Api::RegisterAudienceRoutes(httplib::Server& http) {
  std::shared_ptr<Api> self = shared_from_this();
  // A handler answering fn(req) as JSON with `ok_status`.
  auto json = [self](std::function<Result<Json>(Api&, const Request&)> fn, int ok_status = 200) -> Handler {
    return [self, fn, ok_status](const Request& req, Response& res) {
      Result<Json> out = fn(*self, req);
      if (!out.ok()) return WriteStatus(res, out.status());
      WriteJson(res, ok_status, *out);
    };
  };
  auto with_body = [](Api& api, const Request& req, const std::function<Result<Json>(const Json&)>& fn) {
    Result<Json> body = api.ParseBody(req);
    if (!body.ok()) return Result<Json>(body.status());
    return fn(*body);
  };
  auto items_of = [](const Json& body) -> Result<Json> {
    const Json* items = body.Find("items");
    if (items == nullptr) return Status::InvalidArgument("expected {\"items\": [...]}", "items");
    return *items;
  };
  const std::string aud = R"(/api/cdp/audiences/(aud_[^/]+))";
  const std::string list = R"(/api/cdp/audiences/suppression-lists/(supp_[^/]+))";
  Route(http, "POST", "/api/cdp/audiences",
        json(
            [with_body](Api& api, const Request& req) {
              return with_body(api, req, [&](const Json& b) { return api.engine_.audiences().Create(b); });
            },
            201));
  Route(http, "GET", "/api/cdp/segments/rfm",
        json([](Api& api, const Request&) { return api.engine_.segments().RfmConfig(); }));
  Route(http, "PUT", "/api/cdp/segments/rfm", json([with_body](Api& api, const Request& req) {
          return with_body(api, req, [&](const Json& b) { return api.engine_.segments().SetRfmConfig(b); });
        }));
  Route(http, "POST", "/api/cdp/segments/rfm/recompute",
        json([](Api& api, const Request&) { return api.engine_.segments().RecomputeRfm(); }));
  Route(http, "GET", "/api/cdp/audiences", json([](Api& api, const Request&) -> Result<Json> {
          CDP_ASSIGN_OR_RETURN(Json all, api.engine_.audiences().List());
          return Json::Object().Set("audiences", std::move(all));
        }));
  Route(http, "GET", aud,
        json([](Api& api, const Request& req) { return api.engine_.audiences().Get(req.matches[1].str()); }));
  Route(http, "PUT", aud, json([with_body](Api& api, const Request& req) {
          return with_body(api, req,
                           [&](const Json& b) { return api.engine_.audiences().Update(req.matches[1].str(), b); });
        }));
  Route(http, "DELETE", aud, json([](Api& api, const Request& req) -> Result<Json> {
          CDP_RETURN_IF_ERROR(api.engine_.audiences().Delete(req.matches[1].str()));
          return Json::Object().Set("deleted", req.matches[1].str());
        }));
  Route(http, "GET", aud + "/size", json([](Api& api, const Request& req) -> Result<Json> {
          CDP_ASSIGN_OR_RETURN(int64_t size, api.engine_.audiences().Size(req.matches[1].str()));
          return Json::Object().Set("audienceId", req.matches[1].str()).Set("size", size);
        }));
  Route(http, "GET", aud + "/overlap",
        json([](Api& api, const Request& req) { return api.engine_.audiences().Overlap(req.matches[1].str()); }));
  Route(http, "GET", aud + "/members", json([](Api& api, const Request& req) -> Result<Json> {
          int64_t limit = 0;
          CDP_RETURN_IF_ERROR(IntParam(req, "limit", 1, INT32_MAX, &limit));
          CDP_ASSIGN_OR_RETURN(Page page,
                               api.engine_.audiences().Members(req.matches[1].str(), static_cast<size_t>(limit),
                                                               req.get_param_value("cursor")));
          return PageToJson(std::move(page));
        }),
        {true, {"limit", "cursor"}});
  Route(http, "POST", aud + "/export", [self](const Request& req, Response& res) {
    self->StreamExport(req, res,
                       [](Engine& e, const std::string& id, const std::string& format,
                          const std::vector<std::string>& fields, const std::function<bool(std::string_view)>& sink) {
                         return e.audiences().Export(id, format, fields, sink);
                       });
  });
  Route(http, "POST", "/api/cdp/audiences/suppression-lists",
        json(
            [with_body](Api& api, const Request& req) {
              return with_body(api, req,
                               [&](const Json& b) { return api.engine_.audiences().CreateSuppressionList(b); });
            },
            201));
  Route(http, "GET", "/api/cdp/audiences/suppression-lists", json([](Api& api, const Request&) -> Result<Json> {
          CDP_ASSIGN_OR_RETURN(Json all, api.engine_.audiences().ListSuppressionLists());
          return Json::Object().Set("suppressionLists", std::move(all));
        }));
  Route(http, "GET", list, json([](Api& api, const Request& req) {
          return api.engine_.audiences().GetSuppressionList(req.matches[1].str());
        }));
  Route(http, "DELETE", list, json([](Api& api, const Request& req) -> Result<Json> {
          CDP_RETURN_IF_ERROR(api.engine_.audiences().DeleteSuppressionList(req.matches[1].str()));
          return Json::Object().Set("deleted", req.matches[1].str());
        }));
  Route(http, "POST", list + "/items", json([with_body, items_of](Api& api, const Request& req) {
          return with_body(api, req, [&](const Json& b) -> Result<Json> {
            CDP_ASSIGN_OR_RETURN(Json items, items_of(b));
            return api.engine_.audiences().AddToSuppressionList(req.matches[1].str(), items);
          });
        }));
  Route(http, "POST", list + "/items/remove", json([with_body, items_of](Api& api, const Request& req) {
          return with_body(api, req, [&](const Json& b) -> Result<Json> {
            CDP_ASSIGN_OR_RETURN(Json items, items_of(b));
            return api.engine_.audiences().RemoveFromSuppressionList(req.matches[1].str(), items);
          });
        }));
}

void Api::SegmentSize(const Request& req, Response& res) {
  Result<int64_t> size = engine_.segments().Size(req.matches[1].str());
  if (!size.ok()) return WriteStatus(res, size.status());
  WriteJson(res, 200, Json::Object().Set("segmentId", req.matches[1].str()).Set("size", *size));
}

void Api::EstimateSegment(const Request& req, Response& res) {
  Result<Json> body = ParseBody(req);
  if (!body.ok()) return WriteStatus(res, body.status());
  const Json* rule = body->Find("rule");
  if (rule == nullptr) return WriteStatus(res, Status::InvalidArgument("expected {\"rule\": ...}", "rule"));
  Result<int64_t> size = engine_.segments().Estimate(*rule);
  if (!size.ok()) return WriteStatus(res, size.status());
  WriteJson(res, 200, Json::Object().Set("size", *size));
}

void Api::ListProposals(const Request& req, Response& res) {
  Result<Json> proposals = engine_.identity().Proposals(req.get_param_value("status"));
  if (!proposals.ok()) return WriteStatus(res, proposals.status());
  WriteJson(res, 200, Json::Object().Set("proposals", std::move(proposals).value()));
}

void Api::DecideProposal(const Request& req, Response& res) {
  const std::string id = req.matches[1].str();
  Result<Json> decided =
      req.matches[2].str() == "accept" ? engine_.identity().AcceptProposal(id) : engine_.identity().RejectProposal(id);
  if (!decided.ok()) return WriteStatus(res, decided.status());
  WriteJson(res, 200, *decided);
}

void Api::IdentifyBatch(const Request& req, Response& res) {
  Result<Json> body = ParseBatchBody(req);
  if (!body.ok()) return WriteStatus(res, body.status());
  if (!body->is_array()) return WriteStatus(res, Status::InvalidArgument("expected an array of identifies"));
  Result<Json> done = engine_.identity().IdentifyBatch(body->items());
  if (!done.ok()) return WriteStatus(res, done.status());
  WriteJson(res, 200, *done);
}

void Api::Identify(const Request& req, Response& res) {
  Result<Json> body = ParseBody(req);
  if (!body.ok()) return WriteStatus(res, body.status());
  Result<Json> identified = engine_.identity().Identify(*body);
  if (!identified.ok()) return WriteStatus(res, identified.status());
  WriteJson(res, 200, *identified);
}

void Api::IdentityStats(const Request&, Response& res) {
  Result<Json> stats = engine_.identity().Stats();
  if (!stats.ok()) return WriteStatus(res, stats.status());
  WriteJson(res, 200, *stats);
}

void Api::SearchProfiles(const Request& req, Response& res) {
  Result<Json> body = ParseBody(req, /*blank_is_empty_object=*/true);
  if (!body.ok()) return WriteStatus(res, body.status());
  Result<ProfileQuery> query = ProfileQuery::FromJson(*body);
  if (!query.ok()) return WriteStatus(res, query.status());
  Result<Page> page = engine_.profiles().Search(*query);
  if (!page.ok()) return WriteStatus(res, page.status());
  WriteJson(res, 200, PageToJson(std::move(page).value()));
}

// GET /api/cdp/profiles?limit=&cursor=&sort=&order=: every profile, a page at a time (a search without
// conditions: the same query, pages and cursors as POST /api/cdp/profiles/search).
void Api::ListProfiles(const Request& req, Response& res) {
  Json body = Json::Object();
  if (req.has_param("cursor")) body.Set("cursor", req.get_param_value("cursor"));
  if (req.has_param("limit")) {
    int64_t limit = 0;
    Status s = IntParam(req, "limit", 1, INT64_MAX, &limit);  // any positive count: clamped to max_page_size
    if (!s.ok()) return WriteStatus(res, s);
    body.Set("limit", limit);
  }
  if (req.has_param("sort") || req.has_param("order")) {
    Json sort = Json::Object();
    if (req.has_param("sort")) sort.Set("field", req.get_param_value("sort"));
    if (req.has_param("order")) sort.Set("order", req.get_param_value("order"));
    body.Set("sort", std::move(sort));
  }
  Result<ProfileQuery> query = ProfileQuery::FromJson(body);
  if (!query.ok()) {
    // The body's paths, named as this route's parameters.
    const std::string& field = query.status().field();
    const char* param = field == "sort.field" ? "sort" : field == "sort.order" ? "order" : nullptr;
    if (param == nullptr) return WriteStatus(res, query.status());
    return WriteStatus(res, Status(query.status().code(), query.status().message(), param));
  }
  Result<Page> page = engine_.profiles().Search(*query);
  if (!page.ok()) return WriteStatus(res, page.status());
  WriteJson(res, 200, PageToJson(std::move(page).value()));
}

void Api::ProfileEvents(const Request& req, Response& res) {
  Result<EventQuery> query = ParseEventQuery(req, /*allow_profile_id=*/false);
  if (!query.ok()) return WriteStatus(res, query.status());
  Result<Page> page = engine_.profiles().Timeline(req.matches[1].str(), *query);
  if (!page.ok()) return WriteStatus(res, page.status());
  WriteJson(res, 200, PageToJson(std::move(page).value()));
}

void Api::ProfileSessions(const Request& req, Response& res) {
  Result<std::vector<Json>> sessions = engine_.profiles().Sessions(req.matches[1].str());
  if (!sessions.ok()) return WriteStatus(res, sessions.status());
  Json items = Json::Array();
  for (Json& session : *sessions) items.Push(std::move(session));
  WriteJson(res, 200, Json::Object().Set("items", std::move(items)));
}

void Api::TrackEvent(const Request& req, Response& res) {
  Result<Json> body = ParseBody(req);
  if (!body.ok()) return WriteStatus(res, body.status());
  Result<TrackResult> tracked = engine_.events().Track(*body);
  if (!tracked.ok()) return WriteStatus(res, tracked.status());
  WriteJson(res, 201, tracked->ToJson());
}

void Api::TrackBatch(const Request& req, Response& res) {
  Result<BatchResult> batch = engine_.events().TrackBatchJson(req.body);
  if (!batch.ok()) return WriteStatus(res, batch.status());
  WriteJson(res, 200, batch->ToJson());
}

void Api::QueryEvents(const Request& req, Response& res) {
  Result<EventQuery> query = ParseEventQuery(req, /*allow_profile_id=*/true);
  if (!query.ok()) return WriteStatus(res, query.status());
  Result<Page> page = engine_.events().Query(*query);
  if (!page.ok()) return WriteStatus(res, page.status());
  WriteJson(res, 200, PageToJson(std::move(page).value()));
}

void Api::Stats(const Request& req, Response& res) {
  Result<Json> stats = engine_.Stats();
  if (!stats.ok()) return WriteStatus(res, stats.status());
  WriteJson(res, 200, *stats);
}

}  // namespace

void RegisterRoutes(httplib::Server& http, Engine& engine, const ServerOptions& options) {
  std::make_shared<Api>(engine, options)->Register(http);
}

int HttpStatusFor(StatusCode code) {
  switch (code) {
    case StatusCode::kOk:
      return 200;
    case StatusCode::kInvalidArgument:
      return 400;
    case StatusCode::kUnauthenticated:
      return 401;
    case StatusCode::kPermissionDenied:
      return 403;
    case StatusCode::kNotFound:
      return 404;
    case StatusCode::kAlreadyExists:
    case StatusCode::kFailedPrecondition:
      return 409;
    case StatusCode::kResourceExhausted:
      return 413;
    default:
      return 500;
  }
}

std::string ErrorBody(const Status& status) {
  Json error = Json::Object();
  error.Set("code", StatusCodeName(status.code()));
  error.Set("message", status.message());
  if (!status.field().empty()) error.Set("field", status.field());
  return Json::Object().Set("error", std::move(error)).Dump();
}

bool IsLoopbackHost(std::string_view host) {
  if (host == "localhost" || host == "::1" || host == "[::1]") return true;
  if (!host.starts_with("127.")) return false;
  // Four dotted decimal octets.
  int parts = 0;
  size_t start = 0;
  while (start <= host.size()) {
    size_t dot = host.find('.', start);
    std::string_view part = host.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start);
    int value = 0;
    auto [end, ec] = std::from_chars(part.data(), part.data() + part.size(), value);
    if (part.empty() || part.size() > 3 || ec != std::errc() || end != part.data() + part.size() || value > 255) {
      return false;
    }
    ++parts;
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  return parts == 4;
}

Status CheckContentEncoding(const httplib::Request& req) {
  if (!req.has_header("Content-Encoding")) return Status::OK();
  const std::string encoding = req.get_header_value("Content-Encoding");
  if (encoding == "gzip" || encoding == "deflate" || encoding == "br" || encoding == "identity") return Status::OK();
  return Status::InvalidArgument(
      "Content-Encoding \"" + encoding + "\" is not supported (gzip, deflate, br or identity)", "Content-Encoding");
}

bool ConstantTimeEquals(std::string_view a, std::string_view b) {
  // Every byte of `b` is visited whatever `a` holds; a length mismatch is folded into the result.
  volatile unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < b.size(); ++i) {
    unsigned char ca = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
    diff = diff | (ca ^ static_cast<unsigned char>(b[i]));
  }
  return diff == 0;
}

std::optional<std::string_view> BearerToken(std::string_view authorization) {
  constexpr std::string_view kScheme = "bearer ";
  if (authorization.size() < kScheme.size()) return std::nullopt;
  for (size_t i = 0; i < kScheme.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(authorization[i])) != kScheme[i]) return std::nullopt;
  }
  std::string_view token = authorization.substr(kScheme.size());
  while (!token.empty() && token.front() == ' ') token.remove_prefix(1);
  while (!token.empty() && token.back() == ' ') token.remove_suffix(1);
  if (token.empty()) return std::nullopt;
  return token;
}

bool BearerTokenMatches(std::string_view authorization, std::string_view api_key) {
  std::optional<std::string_view> token = BearerToken(authorization);
  return !api_key.empty() && token && ConstantTimeEquals(*token, api_key);
}

}  // namespace cdp::server
