// Copyright 2026 The libcdp Authors.
//
// The event document: validation of one input event into a ParsedEvent, and the stored form.
// See Events in include/cdp/engine.h for the model.

#ifndef CDP_EVENTS_EVENT_MODEL_H_
#define CDP_EVENTS_EVENT_MODEL_H_

#include <cstdint>
#include <string>
#include <vector>

#include "cdp/json.h"
#include "cdp/options.h"
#include "cdp/status.h"
#include "identity/rules.h"
#include "storage/traits.h"

namespace cdp::internal {

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
  std::vector<IgnoredIdentifier> ignored_identifiers;  // the raw ones that are not identifiers, and why
  bool normalized = false;                             // identifiers / ignored_identifiers are filled
  Json custom_identifiers;                             // the "identifiers" object as given, or null
  std::string session_id;                              // given by the caller, or empty
  std::string device_id;                               // raw, as given
  std::string source;
  Json properties;  // an object
  bool purchase = false;
  int64_t purchase_micros = 0;  // purchase value in millionths
};

// Validates `event` (already parsed JSON), taking its properties. `now_us` is the time of receipt, used when
// timestamp is absent. Errors: InvalidArgument with the field path; ResourceExhausted when over
// Options::max_event_bytes. `bytes`, when given, receives the event's serialized size (also when it is rejected).
Result<ParsedEvent> ParseEvent(Json&& event, const Options& options, int64_t now_us, size_t* bytes = nullptr);

// The stored document, in the model's field order. Moves e->properties into it. Identifier fields hold the
// normalized value when valid, else the value as given.
Json StoredEvent(ParsedEvent* e, std::string_view profile_id, std::string_view session_id, int64_t received_us);

// Fills e->identifiers and e->ignored_identifiers from e->raw_identifiers with `rules`; sets e->normalized.
void NormalizeIdentifiers(const IdentityRules& rules, ParsedEvent* e);

// The computed-trait contribution of a stored event (its time, and its purchase value when it is a purchase).
// Returns false when the document is not a stored event.
bool StoredEventTraits(const Json& stored, int64_t time_us, storage::Traits* traits);

}  // namespace cdp::internal

#endif  // CDP_EVENTS_EVENT_MODEL_H_
