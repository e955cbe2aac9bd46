// Copyright 2026 The libcdp Authors.
//
// Events: tracking (validation, then EngineImpl::Ingest) and queries.

#include <algorithm>
#include <optional>

#include "cdp/segment_rule.h"
#include "core/ids.h"
#include "core/parallel.h"
#include "engine/cursor.h"
#include "engine/engine_impl.h"
#include "fmt/format.h"
#include "storage/keys.h"

namespace cdp {

Json TrackResult::ToJson() const {
  Json out = Json::Object();
  out.Set("eventId", event_id);
  if (links_hidden) {
    out.Set("duplicate", duplicate);
    out.Set("linksHidden", true);
    if (ignored_identifiers.is_array()) out.Set("ignoredIdentifiers", ignored_identifiers);
    return out;
  }
  out.Set("profileId", profile_id);
  out.Set("sessionId", session_id.empty() ? Json() : Json(session_id));
  out.Set("profileCreated", profile_created);
  out.Set("duplicate", duplicate);
  if (!merged_profiles.empty()) {
    Json merged = Json::Array();
    for (const std::string& id : merged_profiles) merged.Push(id);
    out.Set("mergedProfiles", std::move(merged));
    out.Set("mergeId", merge_id);
  }
  if (ignored_identifiers.is_array()) out.Set("ignoredIdentifiers", ignored_identifiers);
  return out;
}

void TrackResult::HideLinks() {
  profile_id.clear();
  session_id.clear();
  profile_created = false;
  merged_profiles.clear();
  merge_id.clear();
  links_hidden = true;
}

Json BatchResult::ToJson() const {
  Json results = Json::Array();
  for (size_t i = 0; i < items.size(); ++i) {
    const BatchItemResult& item = items[i];
    Json r = item.status.ok() ? item.result.ToJson() : Json::Object();
    r.Set("index", static_cast<int64_t>(i));
    r.Set("status", item.status.ok() ? Json(item.result.duplicate ? "duplicate" : "ok")
                                     : Json(StatusCodeName(item.status.code())));
    if (!item.status.ok()) r.Set("error", internal::ErrorJson(item.status));
    results.Push(std::move(r));
  }
  Json out = Json::Object();
  out.Set("accepted", static_cast<int64_t>(accepted));
  out.Set("rejected", static_cast<int64_t>(rejected));
  out.Set("results", std::move(results));
  return out;
}

namespace internal {

namespace {
constexpr size_t kMaxKeyBytes = 512;
constexpr size_t kMaxKeyValueBytes = 4096;
// Room kept in a remembered value for the "profileId" member the engine adds.
constexpr size_t kProfileIdRoom = 16 + 128;

// A caller's key: 1 to kMaxKeyBytes bytes, not in the engine's own part of the keys (storage::kRememberedTag).
Status CheckKey(std::string_view key, std::string_view what) {
  if (key.empty() || key.size() > kMaxKeyBytes) {
    return Status::InvalidArgument(fmt::format("{} must have 1 to {} bytes", what, kMaxKeyBytes), "key");
  }
  if (key.front() == storage::kRememberedTag) {
    return Status::InvalidArgument(fmt::format("{} must not start with the byte 0x01", what), "key");
  }
  return Status::OK();
}
}  // namespace

std::string RememberedProfileId(std::string_view stored) {
  if (stored.size() <= 8) return {};
  auto value = Json::Parse(stored.substr(8));
  const Json* id = value.ok() && value->is_object() ? value->Find("profileId") : nullptr;
  return id != nullptr && id->is_string() ? id->as_string() : std::string();
}

Status CheckIdempotencyKey(const IdempotencyKey& key) {
  if (key.key.empty()) return Status::OK();  // none
  CDP_RETURN_IF_ERROR(CheckKey(key.key, "an idempotency key"));
  if (!key.value.is_object()) return Status::InvalidArgument("an idempotency key's value must be an object", "value");
  if (key.value.Dump().size() + kProfileIdRoom > kMaxKeyValueBytes) {
    return Status::InvalidArgument(
        fmt::format("an idempotency key's value must have at most {} bytes", kMaxKeyValueBytes - kProfileIdRoom),
        "value");
  }
  return Status::OK();
}

Result<TrackResult> EventsImpl::Track(const Json& event) {
  BatchCall call;
  const int64_t now = NowMicros();
  CDP_ASSIGN_OR_RETURN(ParsedEvent parsed, ParseEvent(event, engine_->options(), now));
  std::vector<ParsedEvent> events;
  events.push_back(std::move(parsed));
  std::vector<BatchItemResult> results(1);
  CDP_RETURN_IF_ERROR(engine_->Ingest(&events, &results, now));
  CDP_RETURN_IF_ERROR(results[0].status);  // Ingest rejects an event left with no usable identifier
  return std::move(results[0].result);
}

Result<BatchResult> EventsImpl::TrackBatch(const std::vector<Json>& events) { return TrackBatch(events, {}); }

Result<BatchResult> EventsImpl::TrackBatch(const std::vector<Json>& events, const std::vector<IdempotencyKey>& keys) {
  BatchCall call;
  std::optional<Options> allowing;  // the event limit raised by an adapter's allowance (ScopedEventBytesAllowance)
  if (const size_t extra = ScopedEventBytesAllowance::current(); extra > 0) {
    allowing.emplace(engine_->options());
    allowing->max_event_bytes += extra;
  }
  const Options& options = allowing ? *allowing : engine_->options();
  if (!keys.empty() && keys.size() != events.size()) {
    return Status::InvalidArgument(
        fmt::format("{} idempotency keys for {} events: give none or one per event", keys.size(), events.size()),
        "keys");
  }
  for (const IdempotencyKey& key : keys) CDP_RETURN_IF_ERROR(CheckIdempotencyKey(key));
  if (events.size() > options.max_batch_items) {
    return Status::InvalidArgument(
        fmt::format("batch of {} events is over the limit of {}", events.size(), options.max_batch_items));
  }
  const int64_t now = NowMicros();
  BatchResult out;
  out.items.resize(events.size());
  // Validation is pure work: Ingest parses the items on a second thread, in event-time order, ahead of resolving
  // them (so that it overlaps resolution instead of preceding it), and refuses the batch whole if its items come to
  // more than options.max_batch_bytes.
  UnparsedEvents unparsed{&events, &keys, &options, {}};
  unparsed.times.reserve(events.size());
  for (const Json& event : events) unparsed.times.push_back(EventTimeOf(event, now));
  std::vector<ParsedEvent> parsed;
  return IngestParsed(&parsed, std::move(out), now, &unparsed);
}

Result<BatchResult> EventsImpl::IngestParsed(std::vector<ParsedEvent>* parsed, BatchResult out, int64_t now,
                                             const UnparsedEvents* unparsed) {
  CDP_RETURN_IF_ERROR(engine_->Ingest(parsed, &out.items, now, unparsed));
  for (const auto& item : out.items) (item.status.ok() ? out.accepted : out.rejected)++;
  return out;
}

Result<BatchResult> EventsImpl::TrackBatchJson(std::string_view json_text) {
  BatchCall call;
  const Options& options = engine_->options();
  if (json_text.size() > options.max_batch_bytes) return BatchTooLarge(json_text.size(), options);
  // Validated straight from the text, without building cdp::Json trees (ParseEventBatch falls back to Json::Parse
  // and ParseEvent for whatever it cannot decide alone): the same results and errors as that reference path.
  const int64_t now = NowMicros();
  BatchResult out;
  std::vector<ParsedEvent> parsed;
  CDP_RETURN_IF_ERROR(ParseEventBatch(json_text, options, now, &parsed, &out.items));
  return IngestParsed(&parsed, std::move(out), now);
}

Result<Page> EventsImpl::Query(const EventQuery& query) {
  if (!query.type.empty() && !IsStandardEventType(query.type)) {  // else an empty page: a typo would look like data
    return Status::InvalidArgument(
        fmt::format("unknown event type \"{}\" (expected page_view, product_view, add_to_cart, purchase, email_open, "
                    "app_usage, custom; a custom event's name goes in \"name\")",
                    query.type.substr(0, 64)),
        "type");
  }
  const Options& options = engine_->options();
  const size_t limit = std::min(query.limit == 0 ? size_t{100} : query.limit, options.max_page_size);
  storage::Store& store = engine_->store();

  // Keys starting with be64(time) bound both scans: [since, until), then past the cursor (a time key for one
  // profile's events, a log key for all).
  std::string lower, upper;
  if (query.since_us) storage::AppendBigEndian64(&lower, static_cast<uint64_t>(*query.since_us));
  if (query.until_us) storage::AppendBigEndian64(&upper, static_cast<uint64_t>(std::max<int64_t>(*query.until_us, 0)));
  if (!query.cursor.empty()) {
    CDP_ASSIGN_OR_RETURN(std::string time_key, DecodeCursor(query.cursor));
    if (time_key.size() < 9) return Status::InvalidArgument("malformed cursor", "cursor");
    if (query.descending) {
      if (upper.empty() || time_key < upper) upper = time_key;  // exclusive
    } else {
      time_key.push_back('\0');  // just after the cursor's key
      if (time_key > lower) lower = std::move(time_key);
    }
  }

  Page page;
  std::string last_time_key;  // of the last item on the page: the next page starts after it
  // Adds a matching event to the page; false once the page is full (a further match exists: a next page).
  auto take = [&](std::string_view time_key, std::string_view stored) -> Result<bool> {
    auto event = Json::Parse(stored);
    if (!event.ok()) return Status::DataLoss("a stored event is corrupt");
    auto field_is = [&](const char* key, const std::string& want) {
      if (want.empty()) return true;
      const Json* v = event->Find(key);
      return v != nullptr && v->as_string() == want;
    };
    if (!field_is("type", query.type) || !field_is("name", query.name) || !field_is("source", query.source) ||
        !query.where.Matches(*event)) {
      return true;
    }
    if (page.items.size() == limit) {
      page.next_cursor = EncodeCursor(last_time_key);
      return false;
    }
    page.items.push_back(std::move(event).value());
    last_time_key.assign(time_key);
    return true;
  };

  if (!query.profile_id.empty()) {
    // One profile: its index (storage and the tail), then each event from the log.
    std::string stored;
    ProfileEvents events(store, engine_->tail(), query.profile_id, lower, upper, query.descending);
    for (; events.Valid(); events.Next()) {
      Status s = events.Read(&stored);
      if (s.IsNotFound()) continue;  // moved or deleted between the two reads
      CDP_RETURN_IF_ERROR(s);
      CDP_ASSIGN_OR_RETURN(bool more, take(events.time_key(), stored));
      if (!more) break;
    }
    CDP_RETURN_IF_ERROR(events.status());
    return page;
  }
  // All profiles: the log, in time order. Its keys are time key \0 profile id, and a cursor holds a whole key.
  auto iter = store.NewIterator(storage::Cf::kEventsByTime, lower, upper);
  const std::shared_ptr<const absl::flat_hash_set<std::string>> erasing = engine_->erasing();
  const std::shared_ptr<const RetentionHorizons> retired = engine_->retention_horizons();
  query.descending ? iter->SeekToLast() : iter->SeekToFirst();
  for (; iter->Valid(); query.descending ? iter->Prev() : iter->Next()) {
    // An erasure in progress: the person's events leave the log as its files are rewritten. Retired events
    // (retention) leave it as compaction reaches them.
    if (erasing != nullptr && erasing->contains(std::string(storage::TimeIndexProfile(iter->key())))) continue;
    if (retired->RetiredStored(iter->key(), iter->value())) continue;
    CDP_ASSIGN_OR_RETURN(bool more, take(iter->key(), iter->value()));
    if (!more) break;
  }
  CDP_RETURN_IF_ERROR(iter->status());
  return page;
}

Status EventsImpl::RememberKey(std::string_view key, std::string_view value, int64_t expires_us) {
  CDP_RETURN_IF_ERROR(CheckKey(key, "a key"));
  if (value.size() > kMaxKeyValueBytes) {
    return Status::InvalidArgument(fmt::format("a value must have at most {} bytes", kMaxKeyValueBytes), "value");
  }
  std::string stored;
  storage::AppendBigEndian64(&stored, static_cast<uint64_t>(expires_us));
  storage::WriteBatch batch(engine_->store());
  stored.append(value);
  // A value naming a profile is erased with it: an index entry leads there.
  if (const std::string profile_id = RememberedProfileId(stored); !profile_id.empty() && profile_id.size() <= 128) {
    batch.Put(storage::Cf::kKeys, storage::RememberedByProfilePrefix(profile_id) + std::string(key),
              std::string_view(stored).substr(0, 8));
  }
  batch.Put(storage::Cf::kKeys, key, stored);
  CDP_ASSIGN_OR_RETURN(uint64_t sequence, engine_->store().Write(&batch));
  return engine_->store().SyncUpTo(sequence);
}

Result<std::optional<std::string>> EventsImpl::RecallKey(std::string_view key, int64_t now_us) {
  CDP_RETURN_IF_ERROR(CheckKey(key, "a key"));
  std::string stored;
  Status s = engine_->store().Get(storage::Cf::kKeys, key, &stored);
  if (s.IsNotFound()) return std::optional<std::string>();
  CDP_RETURN_IF_ERROR(s);
  if (stored.size() < 8) return Status::DataLoss("a stored key is corrupt");
  if (static_cast<int64_t>(storage::DecodeBigEndian64(stored)) <= now_us) return std::optional<std::string>();
  return std::optional<std::string>(stored.substr(8));
}

}  // namespace internal
}  // namespace cdp
