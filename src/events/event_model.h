// Copyright 2026 The libcdp Authors.
//
// The event document: validation of input events into ParsedEvents, and the stored form.
// See Events in include/cdp/engine.h for the model.
//
// Two ways in, with the same results: ParseEvent validates a cdp::Json; ParseEventBatch validates the items of a
// JSON text straight from simdjson's DOM, without building cdp::Json trees (the lean path of TrackBatchJson), and
// falls back to the cdp::Json path for whatever it cannot decide alone. Both keep an event's properties as compact
// JSON text, in the bytes Json::Dump writes, so the stored document is built by appending strings
// (AppendStoredEvent).

#ifndef CDP_EVENTS_EVENT_MODEL_H_
#define CDP_EVENTS_EVENT_MODEL_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "cdp/engine.h"
#include "cdp/json.h"
#include "cdp/options.h"
#include "cdp/status.h"
#include "identity/rules.h"
#include "storage/traits.h"

namespace cdp::internal {

// An event's stored document (AppendStoredEvent) without the values of profileId and sessionId, which resolution
// decides: made ahead of it (MakeStoredEventParts), off the serial part of a write (EngineImpl::Ingest), and
// completed once they are known.
struct StoredEventParts {
  std::string text;       // the document without the values of profileId and sessionId
  size_t profile_at = 0;  // where the profileId value goes in `text`
  size_t session_at = 0;  // where the sessionId value goes (>= profile_at)
};

struct ParsedEvent {
  std::string id;
  bool client_id = false;  // the caller gave the id (deduplicate on it)
  std::string type;
  std::string name;
  int64_t time_us = 0;
  std::string profile_id;  // given by the caller, or empty
  // Identifiers as given: the fields customerId (or userId), email, phone, shopifyId, deviceId and anonymousId,
  // and the members of "identifiers" (any type of the identity rules). Normalized by the engine with its rules.
  std::vector<RawIdentifier> raw_identifiers;
  std::vector<Identifier> identifiers;                 // normalized by the engine (valid, not blocked)
  std::vector<std::string> identity_keys;              // storage::IdentityKey of each of `identifiers`, in order
  std::vector<IgnoredIdentifier> ignored_identifiers;  // the raw ones that are not identifiers, and why
  bool normalized = false;                             // identifiers / ignored_identifiers are filled
  Json custom_identifiers;                             // the "identifiers" object as given, or null
  std::string session_id;                              // given by the caller, or empty
  std::string device_id;                               // raw, as given
  std::string source;
  std::string properties;  // an object, as compact JSON (the bytes Json::Dump writes); "{}" when not given
  bool purchase = false;
  int64_t purchase_micros = 0;               // purchase value in millionths
  const IdempotencyKey* remember = nullptr;  // written with the event when it is stored (the caller's; validated)
  StoredEventParts stored;                   // made by EngineImpl::Ingest ahead of resolution, which stores it
};

// Bytes an event or identify may exceed Options::max_event_bytes by, on this thread, while it is alive: what an
// adapter's mapping added to a message whose own size it checked against the limit (the Segment adapter: its
// source, segmentType and campaign fields). Read by Events::TrackBatch and Identity::Identify on the calling
// thread. Scopes nest; the innermost counts.
class ScopedEventBytesAllowance {
 public:
  explicit ScopedEventBytesAllowance(size_t bytes) : previous_(current_) { current_ = bytes; }
  ~ScopedEventBytesAllowance() { current_ = previous_; }
  ScopedEventBytesAllowance(const ScopedEventBytesAllowance&) = delete;
  ScopedEventBytesAllowance& operator=(const ScopedEventBytesAllowance&) = delete;
  static size_t current() { return current_; }

 private:
  static thread_local size_t current_;
  size_t previous_;
};

// InvalidArgument on "timestamp" when `time_us` is more than Options::max_event_future_seconds after `now_us`.
Status CheckNotFuture(int64_t time_us, int64_t now_us, const Options& options);

// Validates `event` (already parsed JSON). `now_us` is the time of receipt, used when timestamp is absent.
// Errors: InvalidArgument with the field path; ResourceExhausted when over Options::max_event_bytes. `bytes`, when
// given, receives the event's serialized size (also when it is rejected).
Result<ParsedEvent> ParseEvent(const Json& event, const Options& options, int64_t now_us, size_t* bytes = nullptr);

// The time ParseEvent gives an event it accepts: its "timestamp" unless absent or null, else `now_us` to the
// millisecond. For an event it rejects, some time. Cost: a member lookup and a timestamp parse.
int64_t EventTimeOf(const Json& event, int64_t now_us);

// InvalidArgument for a batch of `bytes` (its JSON text, or the sizes of its items and their array) over
// Options::max_batch_bytes.
Status BatchTooLarge(size_t bytes, const Options& options);

// Validates the items of a batch text: a JSON array of events, or {"batch": [...]}. On success `results` has one
// entry per item (a rejected item carries its status, exactly as ParseEvent gives it) and `parsed` the valid items,
// in order. Errors of the batch as a whole are exactly those of Json::Parse(text, {max_batch_bytes,
// max_json_depth + 2}) followed by the shape and item-count checks: InvalidArgument (malformed, too deep, not an
// array), ResourceExhausted (over max_batch_bytes, more than Options::max_batch_items items).
Status ParseEventBatch(std::string_view text, const Options& options, int64_t now_us, std::vector<ParsedEvent>* parsed,
                       std::vector<BatchItemResult>* results);

// Appends the stored document, in the model's field order: id, profileId, type, name, timestamp, receivedAt,
// sessionId, deviceId, source, the identifier fields (normalized value when valid, else the value as given; not
// deviceId and not the types of "identifiers"), identifiers, properties. `received_at` is a formatted timestamp
// (FormatTimestamp). The bytes are those of the document built as a cdp::Json and dumped.
void AppendStoredEvent(const ParsedEvent& e, std::string_view profile_id, std::string_view session_id,
                       std::string_view received_at, std::string* out);

// Fills *parts (its text replaced) for `e`, whose identifiers are normalized.
void MakeStoredEventParts(const ParsedEvent& e, std::string_view received_at, StoredEventParts* parts);
// Appends the stored document: `parts` with the two values in their places. Cost: a copy of the text.
void AppendStoredEvent(const StoredEventParts& parts, std::string_view profile_id, std::string_view session_id,
                       std::string* out);

// The "sessionId" of a stored event document ("" when it has none or is not a JSON object; a document with the key
// twice is not one: this may answer the first where a parse keeps the last). AppendStoredEvent
// writes it at the top level before any object or array member, so it is read straight from the text; any other
// document (an escape in the value, an object or array before it) is parsed. Cost: a scan of the bytes before it.
std::string StoredEventSession(std::string_view stored);

// Appends the members of the stored document the segment index keeps (type, name, deviceId, source, sessionId,
// properties; see src/segments/index.h), with the same bytes, as a JSON object: a smaller text for the index to read.
void AppendIndexedEvent(const ParsedEvent& e, std::string_view session_id, std::string* out);

// Fills e->identifiers and e->ignored_identifiers from e->raw_identifiers with `rules`; sets e->normalized.
void NormalizeIdentifiers(const IdentityRules& rules, ParsedEvent* e);

// The computed-trait contribution of a stored event (its time, and its purchase value when it is a purchase).
// Returns false when the document is not a stored event.
bool StoredEventTraits(const Json& stored, int64_t time_us, storage::Traits* traits);

}  // namespace cdp::internal

#endif  // CDP_EVENTS_EVENT_MODEL_H_
