// Copyright 2026 The libcdp Authors.
//
// Segment-spec ingestion: messages of the Segment HTTP Tracking API (identify, track, page, screen, group, alias and
// batches of them) turned into libcdp calls over the public Engine API.
//
//   cdp::SegmentOptions options;
//   options.deduplicator = std::make_shared<cdp::SegmentDeduplicator>();   // keep one per Engine
//   cdp::Result<cdp::Json> r = cdp::IngestSegmentMessage(engine, *cdp::Json::Parse(R"({"type": "track",
//       "userId": "u1", "event": "Order Completed", "properties": {"revenue": 42}, "messageId": "m-1"})"),
//       cdp::SegmentNowMicros(), options);
//   // r: {"type": "track", "messageId": "m-1", "eventId": "m-1", "profileId": ..., "duplicate": false, ...}
//
// Mapping (docs/identity.md "Segment-spec ingestion" and docs/rest-api.md have the full table):
//   identify  Identity::Identify with identifiers {customerId: userId, anonymousId, email: traits.email,
//             phone: traits.phone, deviceId: context.device.id} and an attribute merge patch from traits:
//             firstName / first_name, lastName / last_name, email, phone, address.city, address.country,
//             address.postalCode / postal_code -> attributes; `name` -> attributes.customFields.name, and split at
//             its first space into firstName / lastName when the traits give neither; every other trait (and the
//             rest of address) -> attributes.customFields. A null trait deletes the attribute (merge patch).
//   alias     Identity::Identify with {anonymousId: previousId, customerId: userId}: previousId is treated as an
//             anonymous id (an alias from one userId to another links nothing).
//   track     an event: "Order Completed" -> purchase, "Product Viewed" -> product_view, "Product Added" ->
//             add_to_cart (names compared ignoring ASCII case), anything else -> custom; the event name is the
//             event's `name` in every case.
//   page      a page_view named after the page; screen: a page_view named after the screen.
//   group     a custom event named "group" with properties {groupId, traits}.
// Events take their identifiers from userId (customerId), anonymousId and context.device.id (deviceId), their
// properties from the message's properties, plus (where the properties do not already use the key)
// utm_source / utm_medium / utm_campaign / utm_term / utm_content from context.campaign.{source, medium, name, term,
// content}, `context` (the whole context object: ip, userAgent, campaign, device, ...), `messageId` and
// `segmentType` ("track", "page", "screen", "group"); a page's `category` and `name` also become properties; a
// screen's name becomes properties.screen and, when the properties have no url / path / page, properties.page (the
// session's first page). `source` is SegmentOptions::source. Other top-level fields (writeKey, integrations,
// _metadata, channel, receivedAt, ...) are ignored, as Segment's API ignores fields it does not know.
//
// Event time: `timestamp` when given; else receivedAt - (sentAt - originalTimestamp) (the client's clock skew
// corrected with the server's receipt time; sentAt is the message's or, in a batch, the batch's); else
// originalTimestamp when there is no sentAt; else receivedAt. Millisecond precision.
//
// Deduplication by messageId. The event id is the messageId (or, when the messageId is not a valid libcdp id -
// over 128 bytes or holding characters other than [A-Za-z0-9_.:@-] - "seg-" and 32 hex digits of a 128-bit hash of
// it). What holds:
//   * Always, durably, at any distance in time: the engine stores an event once per (profile, event time, id); a
//     message that maps to the same profile and the same event time again (every retry of a message that carries
//     `timestamp`, as @segment/analytics-node's messages do) is reported "duplicate" and changes nothing.
//   * With SegmentOptions::deduplicator: a message whose messageId was first received less than
//     dedupe_window_seconds earlier is a duplicate even when its computed time differs (a retry of a message
//     without `timestamp` - RudderStack's SDK sends originalTimestamp + sentAt only - gets a new receivedAt): an
//     event is given the first one's event time, so the engine reports it "duplicate"; an identify or alias is
//     skipped and reported "duplicate" (SegmentSink::IdentifyDuplicate). The deduplicator's own reads and writes
//     of idempotency keys run as the admin "local", whatever the caller's principal: the caller sees only the
//     engine's answers, filtered for it. The deduplicator answers from memory; what it does not hold (after a
//     restart, or evicted past max_messages) it asks the database: each stored message's messageId is kept there
//     as an idempotency key (Events::RememberKey, under "segment/" and a 128-bit hash of the dedupe key) until
//     the window has passed, so the window holds across restarts and crashes. The key of a new message is written
//     in the same atomic write as its event or identify (cdp::IdempotencyKey): it exists exactly when the message
//     was stored.
// What does not hold: without a deduplicator only the first rule applies; a SegmentSink that does not implement
// RememberKey / RecallKey dedupes in memory only. A messageId reused by another person (another profile) is not a
// duplicate. Past the window, a message with the same messageId and the same event time is still a duplicate
// (stricter than Segment).
//
// Limits: a message over SegmentOptions::max_message_bytes (compact JSON) is InvalidArgument; a batch over
// max_batch_bytes is InvalidArgument for the whole batch (field "batch"). A message must also fit the engine's
// Options::max_event_bytes, measured as received: what the mapping adds (source, segmentType, messageId, the
// campaign copied to utm_*) does not count, so a message of max_message_bytes is stored whatever its event's size.
//
// Errors: InvalidArgument naming the field of the message ("userId", "traits.firstName", "properties.revenue";
// batch items are named relative to the item, whose index is in its result), and the errors of the Engine calls
// made.
//
// Thread-safety: the functions may be called concurrently (Engine is thread-safe); a SegmentDeduplicator may be
// shared by concurrent calls. Two concurrent retries of one message that map to one profile are stored once when
// they carry the same timestamp or a deduplicator is given.
//
// Cost: per message one Identify or one event write (batches write consecutive events with one TrackBatch, in
// message order); the deduplicator adds one hash-map lookup under a mutex and ~100 bytes + the messageId per
// remembered message in memory, and per message with a messageId one database write (and one point read when
// memory does not know it).

#ifndef CDP_SEGMENT_H_
#define CDP_SEGMENT_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cdp/engine.h"
#include "cdp/json.h"
#include "cdp/options.h"
#include "cdp/status.h"

namespace cdp {

namespace internal {
struct SegmentDedupeAccess;
}  // namespace internal

// Remembers recently received messageIds (see "Deduplication" above). Keep one per Engine, for as long as the
// Engine is open, and pass it in SegmentOptions::deduplicator. In memory only.
//
// Thread-safety: thread-safe.
class SegmentDeduplicator {
 public:
  // `max_messages`: most messageIds remembered; past it the earliest received are forgotten first. Default:
  // 1,000,000 (about 100 MiB at 40-byte ids).
  explicit SegmentDeduplicator(size_t max_messages = 1000000);
  ~SegmentDeduplicator();
  SegmentDeduplicator(const SegmentDeduplicator&) = delete;
  SegmentDeduplicator& operator=(const SegmentDeduplicator&) = delete;

  // messageIds remembered now (including expired ones not yet dropped).
  size_t size() const;
  // Forgets every messageId.
  void Clear();

 private:
  friend struct internal::SegmentDedupeAccess;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

struct SegmentOptions {
  // A message whose messageId was first received less than this many seconds earlier is a duplicate (needs
  // `deduplicator`). 0 turns the window off (the engine's own rule still applies). Default: 7 days. Must be >= 0.
  int64_t dedupe_window_seconds = 7 * 24 * 3600;
  // Largest message, as compact JSON, in bytes (Segment's limit). Default: 32 KiB.
  size_t max_message_bytes = 32u << 10;
  // Largest batch (the whole JSON body), in bytes (Segment's limit). Default: 500 KiB.
  size_t max_batch_bytes = 500u << 10;
  // The `source` of the events made from messages; empty: none. Default: "segment".
  std::string source = "segment";
  // The messageId memory of the dedupe window; null: only the engine's own rule. Default: null.
  std::shared_ptr<SegmentDeduplicator> deduplicator;
};

// Where ingested messages go: the two calls ingestion makes. The overloads taking an Engine use
// engine.events().TrackBatch and engine.identity().Identify. Implement it only to ingest through another layer that
// holds the Engine (the Python package does: its Engine is guarded against close()).
class SegmentSink {
 public:
  virtual ~SegmentSink() = default;
  // The options of the engine written to (batch limits, JSON depth).
  virtual const Options& options() const = 0;
  // As Events::TrackBatch and Identity::Identify.
  virtual Result<BatchResult> TrackBatch(const std::vector<Json>& events) = 0;
  virtual Result<Json> Identify(const Json& request) = 0;
  // As the Events::TrackBatch and Identity::Identify overloads that write each stored item's idempotency key in the
  // same atomic write (ingestion keeps a fresh messageId this way, so no crash can store a message and lose its
  // key). The defaults call the two calls above, then RememberKey for each stored item: not atomic, which a sink
  // that can reach an Engine should avoid by overriding these.
  virtual Result<BatchResult> TrackBatch(const std::vector<Json>& events, const std::vector<IdempotencyKey>& keys);
  virtual Result<Json> Identify(const Json& request, const IdempotencyKey& key);
  // As Events::RememberKey and RecallKey: where the deduplicator keeps messageIds durably. The defaults keep
  // nothing (messageIds are then remembered in memory only).
  virtual Status RememberKey(std::string_view key, std::string_view value, int64_t expires_us);
  virtual Result<std::optional<std::string>> RecallKey(std::string_view key, int64_t now_us);
  // Answers an identify or alias whose messageId was stored within the window, without applying it again. `key`
  // is the idempotency key it was stored with (applied_if_stored_at_us set: the receipt time); `profile_id` the
  // profile the deduplicator remembers (empty when it does not know). The default answers {"profileId":
  // profile_id or null, "duplicate": true}. The Engine's sink calls Identity::Identify(request, key), which finds
  // the key, writes nothing and answers as an identify does for the caller (no profileId for a principal that may
  // not read the identifiers' links); should the key be gone (its person erased), the identify is applied anew.
  virtual Result<Json> IdentifyDuplicate(const Json& request, const IdempotencyKey& key, const std::string& profile_id);
};

// The current time in microseconds since the Unix epoch: the `received_at_us` of a message received now.
int64_t SegmentNowMicros();

// Ingests one message received at `received_at_us` (microseconds since the Unix epoch). `type` is the message's
// `type` field, or `route_type` when that is given (the /v1/<type> routes): a message whose `type` differs from a
// non-empty route_type is InvalidArgument. Returns {"type", "messageId" (null when absent), "duplicate",
// "profileId", ...} plus, for events, the TrackResult fields ("eventId", "sessionId", "profileCreated",
// "mergedProfiles", "mergeId", "ignoredIdentifiers") and, for identify and alias, Identify's ("identifyId",
// "profileCreated", ...). Nothing is written when it fails. A message nested deeper than Options::max_json_depth + 2
// levels (two more than an event: the mapping moves members up), in any member, is InvalidArgument naming the
// path; in a batch, such a message is refused alone.
Result<Json> IngestSegmentMessage(Engine& engine, const Json& message, int64_t received_at_us,
                                  const SegmentOptions& options = {}, std::string_view route_type = {});

// Ingests a batch: {"batch": [message, ...], "sentAt"?, "context"?, "writeKey"?, "integrations"?} (a bare array is
// accepted too). The batch's context is merged under each message's (the message's fields win); its sentAt is
// the sentAt of messages without one. Messages are applied in order. Returns {"accepted", "rejected", "results":
// [{"index", "status": "ok" | "duplicate" | <error code>, ...the message's result | "error": {code, message,
// field}}]}. Fails as a whole only when the batch is not a batch, is over max_batch_bytes, or storage fails (then
// the messages before the failure may be stored; a retry of the batch is deduplicated as above).
Result<Json> IngestSegmentBatch(Engine& engine, const Json& batch, int64_t received_at_us,
                                const SegmentOptions& options = {});
// The same from the JSON text of the batch (a request body): max_batch_bytes applies to the text.
Result<Json> IngestSegmentBatchJson(Engine& engine, std::string_view json_text, int64_t received_at_us,
                                    const SegmentOptions& options = {});

// The same over a SegmentSink.
Result<Json> IngestSegmentMessage(SegmentSink& sink, const Json& message, int64_t received_at_us,
                                  const SegmentOptions& options = {}, std::string_view route_type = {});
Result<Json> IngestSegmentBatch(SegmentSink& sink, const Json& batch, int64_t received_at_us,
                                const SegmentOptions& options = {});
Result<Json> IngestSegmentBatchJson(SegmentSink& sink, std::string_view json_text, int64_t received_at_us,
                                    const SegmentOptions& options = {});

}  // namespace cdp

#endif  // CDP_SEGMENT_H_
