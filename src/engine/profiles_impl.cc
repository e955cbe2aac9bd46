// Copyright 2026 The libcdp Authors.
//
// Profiles: create, read, write, delete, search, timeline and sessions.

#include <algorithm>
#include <numeric>

#include "core/ids.h"
#include "core/parallel.h"
#include "engine/cursor.h"
#include "engine/engine_impl.h"
#include "fmt/format.h"
#include "profiles/profile_model.h"
#include "storage/keys.h"

namespace cdp::internal {

namespace {

// What a search cursor is tied to: the filter and the sort (not the page size). FNV-1a over a canonical text of
// them, as 16 hex digits: a cursor from another search is refused instead of answering a wrong or empty page.
void AppendFilter(const Filter& f, std::string* out) {
  out->append(f.combine == Filter::Combine::kAnd ? "(and" : "(or");
  for (const Condition& c : f.conditions) {
    out->append(fmt::format(" [{}|{}|{}|{}]", c.field, static_cast<int>(c.op), c.value.Dump(), c.ignore_case));
  }
  for (const Filter& g : f.groups) AppendFilter(g, out);
  out->push_back(')');
}

std::string SearchFingerprint(const ProfileQuery& query) {
  std::string text = fmt::format("{}|{}|", query.sort_by, query.descending);
  AppendFilter(query.filter, &text);
  uint64_t h = 14695981039346656037ull;
  for (unsigned char c : text) h = (h ^ c) * 1099511628211ull;
  return fmt::format("{:016x}", h);
}

constexpr char kOtherSearch[] =
    "the cursor belongs to another search (a different filter or sort): repeat that search, or start without it";

size_t PageLimit(size_t requested, size_t fallback, size_t max) {
  if (requested == 0) requested = fallback;
  return std::min(requested, max);
}

// Sort order of values of one field: numbers, then strings, then booleans, then anything else; missing last.
int TypeRank(const Json* v) {
  if (v == nullptr || v->is_null()) return 4;
  if (v->is_number()) return 0;
  if (v->is_string()) return 1;
  if (v->is_bool()) return 2;
  return 3;
}

int CompareValues(const Json* a, const Json* b) {
  int ra = TypeRank(a), rb = TypeRank(b);
  if (ra != rb) return ra < rb ? -1 : 1;
  if (ra == 0) {
    double x = a->as_number(), y = b->as_number();
    return x < y ? -1 : (x > y ? 1 : 0);
  }
  if (ra == 1) {
    int c = a->as_string().compare(b->as_string());
    return c < 0 ? -1 : (c > 0 ? 1 : 0);
  }
  if (ra == 2) return static_cast<int>(a->as_bool()) - static_cast<int>(b->as_bool());
  if (ra == 3) {
    int c = a->Dump().compare(b->Dump());
    return c < 0 ? -1 : (c > 0 ? 1 : 0);
  }
  return 0;
}

// Validates one profile of Create or CreateBatch and normalizes it (pure: runs outside the lock).
Status PrepareCreate(const Json& profile, const Options& options, const IdentityRules& rules,
                     EngineImpl::PreparedProfile* p, size_t* bytes = nullptr) {
  int depth = 0;
  const size_t size = SerializedSize(profile, &depth);
  if (bytes != nullptr) *bytes = size;
  if (!profile.is_object()) return Status::InvalidArgument("a profile must be a JSON object");
  if (depth > options.max_json_depth) return CheckJsonDepth(profile, options.max_json_depth);
  if (const Json* given = profile.Find("id"); given != nullptr && !given->is_null()) {
    if (!given->is_string()) return Status::InvalidArgument("expected a string", "id");
    CDP_RETURN_IF_ERROR(ValidateId(given->as_string(), "id"));
    p->id = given->as_string();
  } else {
    p->id = NewId();
  }
  CDP_ASSIGN_OR_RETURN(p->normalized, NormalizeProfileInput(profile));
  return EngineImpl::PrepareIdentifiers(rules, p);
}

}  // namespace

Result<Json> ProfilesImpl::Create(const Json& profile) {
  BatchCall call;
  std::vector<EngineImpl::PreparedProfile> items(1);
  std::shared_ptr<const IdentityRules> rules = engine_->rules();
  std::vector<Status> statuses{PrepareCreate(profile, engine_->options(), *rules, &items[0])};
  CDP_RETURN_IF_ERROR(statuses[0]);
  std::vector<Json> stored;
  CDP_RETURN_IF_ERROR(engine_->CreateProfiles(rules.get(), items, &statuses, &stored));
  CDP_RETURN_IF_ERROR(statuses[0]);
  return engine_->Render(stored[0], items[0].id);
}

Result<Json> ProfilesImpl::CreateBatch(const std::vector<Json>& profiles) {
  BatchCall call;
  const Options& options = engine_->options();
  if (profiles.size() > options.max_batch_items) {
    return Status::InvalidArgument(
        fmt::format("batch of {} profiles is over the limit of {}", profiles.size(), options.max_batch_items));
  }
  std::vector<EngineImpl::PreparedProfile> items(profiles.size());
  std::vector<Status> statuses(profiles.size());
  std::vector<size_t> bytes(profiles.size());
  std::shared_ptr<const IdentityRules> rules = engine_->rules();
  RunOnTwoThreads(profiles.size(), /*parallel_from=*/256, [&](size_t begin, size_t end) {
    for (size_t i = begin; i < end; ++i) {
      statuses[i] = PrepareCreate(profiles[i], options, *rules, &items[i], &bytes[i]);
    }
  });
  if (const size_t total = std::accumulate(bytes.begin(), bytes.end(), size_t{0}); total > options.max_batch_bytes) {
    return Status::InvalidArgument(
        fmt::format("batch of {} bytes of profiles is over the limit of {} bytes", total, options.max_batch_bytes));
  }
  std::vector<Json> stored;
  CDP_RETURN_IF_ERROR(engine_->CreateProfiles(rules.get(), items, &statuses, &stored));
  return BatchAnswer(statuses, [&](size_t i) { return Json::Object().Set("id", items[i].id); });
}

Result<Json> ProfilesImpl::Get(std::string_view id) {
  std::string live;
  CDP_ASSIGN_OR_RETURN(Json stored, engine_->ReadLiveProfile(id, &live));
  return engine_->Render(stored, live);
}

Result<Json> ProfilesImpl::Write(std::string_view id, const Json& input, bool patch) {
  if (!input.is_object()) return Status::InvalidArgument("a profile must be a JSON object");
  if (JsonDepth(input) > engine_->options().max_json_depth)
    return CheckJsonDepth(input, engine_->options().max_json_depth);
  if (const Json* given = input.Find("id"); given != nullptr && !given->is_null() && *given != Json(id)) {
    return Status::InvalidArgument("the id in the body differs from the profile's id", "id");
  }
  if (patch) {
    // Merge patches apply to the current writable parts (under the write lock); the result is validated like a
    // replacement.
    Json writable_patch = Json::Object();
    for (const auto& [key, value] : input.members()) {
      if (key != "id" && key != "segments" && key != "createdAt" && key != "updatedAt") {
        writable_patch.Set(key, value);
      }
    }
    return engine_->WriteProfile(id, writable_patch, EngineImpl::ProfileWrite::kPatch);
  }
  CDP_ASSIGN_OR_RETURN(Json normalized, NormalizeProfileInput(input));
  return engine_->WriteProfile(id, normalized, EngineImpl::ProfileWrite::kReplace);
}

Result<Json> ProfilesImpl::Replace(std::string_view id, const Json& profile) { return Write(id, profile, false); }
Result<Json> ProfilesImpl::Patch(std::string_view id, const Json& patch) { return Write(id, patch, true); }
// An erasure, recorded as a privacy request (Gdpr::Erase).
Status ProfilesImpl::Delete(std::string_view id) { return engine_->gdpr_impl().Erase(id).status(); }

Result<Page> ProfilesImpl::Search(const ProfileQuery& query) {
  const Options& options = engine_->options();
  size_t limit = PageLimit(query.limit, 50, options.max_page_size);
  storage::Store& store = engine_->store();
  auto profiles = store.NewIterator(storage::Cf::kProfiles);

  // Each profile with its traits (storage's plus the event tail's, read at one moment).
  auto render = [&](std::string_view id, std::string_view value) -> Result<Json> {
    auto stored = Json::Parse(value);
    if (!stored.ok()) return Status::DataLoss(fmt::format("stored profile {} is corrupt", id));
    if (stored->Find("mergedInto") != nullptr) return Json();  // merged away: its survivor is listed
    Json out = RenderProfile(*stored, engine_->tail().Traits(id));
    engine_->AddSegments(id, &out);
    return out;
  };

  Page page;
  if (query.sort_by.empty()) {
    // By id, in key order (backwards when descending), from just after the cursor's id.
    std::string after;
    const std::string fingerprint = SearchFingerprint(query);
    if (!query.cursor.empty()) {
      CDP_ASSIGN_OR_RETURN(std::string raw, DecodeCursor(query.cursor));
      if (raw.size() < 18 || raw[16] != ':' || raw.compare(0, 16, fingerprint) != 0) {
        return Status::InvalidArgument(kOtherSearch, "cursor");
      }
      after = raw.substr(17);
    }
    const bool desc = query.descending;
    if (after.empty()) {
      desc ? profiles->SeekToLast() : profiles->SeekToFirst();
    } else {
      desc ? profiles->SeekForPrev(after) : profiles->Seek(after);
    }
    for (; profiles->Valid(); desc ? profiles->Prev() : profiles->Next()) {
      if (!after.empty() && profiles->key() == after) continue;
      CDP_ASSIGN_OR_RETURN(Json doc, render(profiles->key(), profiles->value()));
      if (doc.is_null() || !query.filter.Matches(doc)) continue;
      if (page.items.size() == limit) {
        page.next_cursor = EncodeCursor(fingerprint + ":" + page.items.back().Find("id")->as_string());
        break;
      }
      page.items.push_back(std::move(doc));
    }
    CDP_RETURN_IF_ERROR(profiles->status());
    return page;
  }

  // Sorted: every match is needed to place the page. Cursor = [sort value, id] of the last item returned.
  struct Hit {
    Json sort_value;
    std::string id;
    Json doc;
  };
  std::vector<Hit> hits;
  for (profiles->SeekToFirst(); profiles->Valid(); profiles->Next()) {
    CDP_ASSIGN_OR_RETURN(Json doc, render(profiles->key(), profiles->value()));
    if (doc.is_null() || !query.filter.Matches(doc)) continue;
    const Json* v = doc.FindPath(query.sort_by);
    hits.push_back({v != nullptr ? *v : Json(), std::string(profiles->key()), std::move(doc)});
  }
  CDP_RETURN_IF_ERROR(profiles->status());
  auto before = [&](const Json& va, const std::string& ia, const Json& vb, const std::string& ib) {
    int c = CompareValues(&va, &vb);
    bool missing = TypeRank(&va) == 4 || TypeRank(&vb) == 4;  // missing values sort last in both orders
    if (c != 0) return (query.descending && !missing) ? c > 0 : c < 0;
    return ia < ib;
  };
  std::sort(hits.begin(), hits.end(),
            [&](const Hit& a, const Hit& b) { return before(a.sort_value, a.id, b.sort_value, b.id); });
  size_t start = 0;
  if (!query.cursor.empty()) {
    CDP_ASSIGN_OR_RETURN(std::string raw, DecodeCursor(query.cursor));
    auto parsed = Json::Parse(raw);
    if (!parsed.ok() || !parsed->is_array() || parsed->size() != 3 || !parsed->items()[1].is_string() ||
        !parsed->items()[2].is_string() || parsed->items()[2].as_string() != SearchFingerprint(query)) {
      return Status::InvalidArgument(kOtherSearch, "cursor");
    }
    const Json& cv = parsed->items()[0];
    const std::string& cid = parsed->items()[1].as_string();
    start = std::partition_point(hits.begin(), hits.end(),
                                 [&](const Hit& h) { return !before(cv, cid, h.sort_value, h.id); }) -
            hits.begin();
  }
  for (size_t i = start; i < hits.size() && page.items.size() < limit; ++i) page.items.push_back(hits[i].doc);
  if (start + page.items.size() < hits.size() && !page.items.empty()) {
    const Hit& last = hits[start + page.items.size() - 1];
    Json c = Json::Array();
    c.Push(last.sort_value);
    c.Push(last.id);
    c.Push(SearchFingerprint(query));
    page.next_cursor = EncodeCursor(c.Dump());
  }
  return page;
}

Result<Page> ProfilesImpl::Timeline(std::string_view id, const EventQuery& query) {
  std::string live;
  CDP_RETURN_IF_ERROR(engine_->ReadLiveProfile(id, &live).status());
  EventQuery q = query;
  q.profile_id = std::move(live);
  return engine_->events_impl().Query(q);
}

Result<std::vector<Json>> ProfilesImpl::Sessions(std::string_view requested_id) {
  std::string id;
  CDP_RETURN_IF_ERROR(engine_->ReadLiveProfile(requested_id, &id).status());
  struct Summary {
    std::string id;
    int64_t start = 0, end = 0;
    int64_t count = 0;
    Json first_page, utm_source, utm_medium, utm_campaign;
    bool first_page_seen = false;    // the session's first page view with a page property was met
    Json device_id, user_agent, ip;  // of its first event that has each (null: none, or not readable)
    bool device_seen = false, user_agent_seen = false, ip_seen = false;
    Json by_type = Json::Object();
  };
  std::vector<Summary> sessions;
  absl::flat_hash_map<std::string, size_t> index;
  std::string document;
  // A summary's firstPage and UTM fields are event properties: a caller who may not read the property does not
  // read it here either (sessions.* is classified on its own; Governance filters the rest of the summary).
  const std::shared_ptr<const Access> access = engine_->access();
  auto readable_property = [&](const char* key) { return access->CanRead(fmt::format("events.properties.{}", key)); };
  const bool utm_readable[3] = {readable_property("utm_source"), readable_property("utm_medium"),
                                readable_property("utm_campaign")};
  const bool device_readable = access->CanRead("events.deviceId");
  const bool context_readable[2] = {readable_property("context.userAgent") && readable_property("userAgent"),
                                    readable_property("context.ip") && readable_property("ip")};
  ProfileEvents events(engine_->store(), engine_->tail(), id);
  for (; events.Valid(); events.Next()) {  // event-time order
    Status read = events.Read(&document);
    if (read.IsNotFound()) continue;  // moved or deleted meanwhile
    CDP_RETURN_IF_ERROR(read);
    auto event = Json::Parse(document);
    if (!event.ok()) return Status::DataLoss("a stored event is corrupt");
    int64_t t = events.time_us();
    const std::string& sid = event->Find("sessionId") ? event->Find("sessionId")->as_string() : std::string();
    auto [it, fresh] = index.emplace(sid, sessions.size());
    if (fresh) {
      Summary s;
      s.id = sid;
      s.start = t;
      const Json* props = event->Find("properties");
      auto prop = [&](const char* key, bool readable) {
        const Json* v = props != nullptr && readable ? props->Find(key) : nullptr;
        return v != nullptr ? *v : Json();
      };
      s.utm_source = prop("utm_source", utm_readable[0]);
      s.utm_medium = prop("utm_medium", utm_readable[1]);
      s.utm_campaign = prop("utm_campaign", utm_readable[2]);
      sessions.push_back(std::move(s));
    }
    Summary& s = sessions[it->second];
    s.end = t;
    ++s.count;
    // The device and the client: the event's deviceId; the userAgent and ip of its context (a Segment message's,
    // kept in properties.context), else properties.userAgent / ip.
    if (!s.device_seen) {
      if (const Json* d = event->Find("deviceId"); d != nullptr && d->is_string()) {
        if (device_readable) s.device_id = *d;
        s.device_seen = true;
      }
    }
    if (!s.user_agent_seen || !s.ip_seen) {
      const Json* props = event->Find("properties");
      const Json* context = props != nullptr ? props->Find("context") : nullptr;
      auto client = [&](const char* key, bool readable, bool* seen, Json* out) {
        if (*seen) return;
        const Json* v = context != nullptr && context->is_object() ? context->Find(key) : nullptr;
        if (v == nullptr || !v->is_string()) v = props != nullptr ? props->Find(key) : nullptr;
        if (v == nullptr || !v->is_string() || v->as_string().empty()) return;
        if (readable) *out = *v;
        *seen = true;
      };
      client("userAgent", context_readable[0], &s.user_agent_seen, &s.user_agent);
      client("ip", context_readable[1], &s.ip_seen, &s.ip);
    }
    const std::string& type = event->Find("type")->as_string();
    const Json* n = s.by_type.Find(type);
    s.by_type.Set(type, (n != nullptr ? n->as_int() : 0) + 1);
    if (!s.first_page_seen && type == "page_view") {
      const Json* props = event->Find("properties");
      for (const char* key : {"url", "path", "page"}) {
        const Json* v = props != nullptr ? props->Find(key) : nullptr;
        if (v != nullptr && !v->is_null()) {
          if (readable_property(key)) s.first_page = *v;  // else null: the first page's value is not readable
          s.first_page_seen = true;
          break;
        }
      }
    }
  }
  CDP_RETURN_IF_ERROR(events.status());
  std::vector<Json> out;
  out.reserve(sessions.size());
  for (Summary& s : sessions) {
    Json j = Json::Object();
    j.Set("id", s.id);
    j.Set("start", FormatTimestamp(s.start));
    j.Set("end", FormatTimestamp(s.end));
    j.Set("durationSeconds", static_cast<double>(s.end - s.start) / 1e6);
    j.Set("eventCount", s.count);
    j.Set("firstPage", std::move(s.first_page));
    j.Set("utmSource", std::move(s.utm_source));
    j.Set("utmMedium", std::move(s.utm_medium));
    j.Set("utmCampaign", std::move(s.utm_campaign));
    j.Set("deviceId", std::move(s.device_id));
    j.Set("userAgent", std::move(s.user_agent));
    j.Set("ip", std::move(s.ip));
    j.Set("eventTypes", std::move(s.by_type));
    out.push_back(std::move(j));
  }
  return out;
}

}  // namespace cdp::internal
