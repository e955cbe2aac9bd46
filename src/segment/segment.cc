// Copyright 2026 The libcdp Authors.
//
// Segment-spec ingestion over the public Engine API (include/cdp/segment.h). Each message is validated and mapped
// to one Identify request or one event; then the dedupe window is consulted; then the calls are made in message
// order (consecutive events of a batch share one TrackBatch).

#include "cdp/segment.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "cdp/privacy.h"
#include "cdp/query.h"
#include "events/event_model.h"
#include "profiles/profile_model.h"

namespace cdp {

// ---- the dedupe window's memory ----------------------------------------------------------------------------------

struct SegmentDeduplicator::Impl {
  struct Entry {
    int64_t first_received_us = 0;
    int64_t time_us = 0;  // the event time the first message was given
    uint64_t seq = 0;     // which claim made the entry (a later claim of an expired id replaces it)
    bool done = false;    // the first message was stored
    std::string profile_id;
  };

  explicit Impl(size_t max) : max_messages(std::max<size_t>(max, 1)) {}

  size_t max_messages;
  mutable std::mutex mu;
  std::unordered_map<std::string, Entry> entries;
  std::deque<std::pair<std::string, uint64_t>> order;  // claims, oldest first
  uint64_t next_seq = 1;

  void DropFront() {
    auto it = entries.find(order.front().first);
    if (it != entries.end() && it->second.seq == order.front().second) entries.erase(it);
    order.pop_front();
  }
};

SegmentDeduplicator::SegmentDeduplicator(size_t max_messages) : impl_(std::make_unique<Impl>(max_messages)) {}
SegmentDeduplicator::~SegmentDeduplicator() = default;

size_t SegmentDeduplicator::size() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->entries.size();
}

void SegmentDeduplicator::Clear() {
  std::lock_guard<std::mutex> lock(impl_->mu);
  impl_->entries.clear();
  impl_->order.clear();
}

namespace internal {

struct SegmentDedupeAccess {
  struct Claim {
    bool seen = false;       // the messageId was received within the window
    bool done = false;       // ... and that message was stored
    int64_t time_us = 0;     // the event time to use
    uint64_t seq = 0;        // non-zero when this call made the entry (Complete / Forget it)
    std::string profile_id;  // when seen and done
  };

  static Claim Take(SegmentDeduplicator& d, const std::string& id, int64_t received_us, int64_t window_us,
                    int64_t proposed_time_us) {
    SegmentDeduplicator::Impl& impl = *d.impl_;
    std::lock_guard<std::mutex> lock(impl.mu);
    while (!impl.order.empty()) {  // expired or over capacity, oldest first
      auto it = impl.entries.find(impl.order.front().first);
      const bool stale = it == impl.entries.end() || it->second.seq != impl.order.front().second;
      const bool expired = !stale && it->second.first_received_us + window_us < received_us;
      if (!stale && !expired && impl.entries.size() < impl.max_messages) break;
      impl.DropFront();
    }
    Claim claim;
    auto it = impl.entries.find(id);
    if (it != impl.entries.end()) {
      const int64_t age = received_us - it->second.first_received_us;
      if (age <= window_us && age >= -window_us) {
        claim.seen = true;
        claim.done = it->second.done;
        claim.time_us = it->second.time_us;
        claim.profile_id = it->second.profile_id;
        return claim;
      }
    }
    SegmentDeduplicator::Impl::Entry entry;
    entry.first_received_us = received_us;
    entry.time_us = proposed_time_us;
    entry.seq = impl.next_seq++;
    claim.time_us = proposed_time_us;
    claim.seq = entry.seq;
    impl.entries[id] = std::move(entry);
    impl.order.emplace_back(id, claim.seq);
    return claim;
  }

  // Takes what the database remembered of a message (first received at `first_received_us`, stored at event time
  // `time_us` for `profile_id`) into the entry of claim `seq`.
  static void Adopt(SegmentDeduplicator& d, const std::string& id, uint64_t seq, int64_t first_received_us,
                    int64_t time_us, const std::string& profile_id) {
    SegmentDeduplicator::Impl& impl = *d.impl_;
    std::lock_guard<std::mutex> lock(impl.mu);
    auto it = impl.entries.find(id);
    if (it == impl.entries.end() || it->second.seq != seq) return;
    it->second.first_received_us = first_received_us;
    it->second.time_us = time_us;
    it->second.profile_id = profile_id;
    it->second.done = true;
  }

  static void Complete(SegmentDeduplicator& d, const std::string& id, uint64_t seq, const std::string& profile_id) {
    SegmentDeduplicator::Impl& impl = *d.impl_;
    std::lock_guard<std::mutex> lock(impl.mu);
    auto it = impl.entries.find(id);
    if (it == impl.entries.end() || it->second.seq != seq) return;
    it->second.done = true;
    it->second.profile_id = profile_id;
  }

  static void Forget(SegmentDeduplicator& d, const std::string& id, uint64_t seq) {
    SegmentDeduplicator::Impl& impl = *d.impl_;
    std::lock_guard<std::mutex> lock(impl.mu);
    auto it = impl.entries.find(id);
    if (it != impl.entries.end() && it->second.seq == seq && !it->second.done) impl.entries.erase(it);
  }
};

}  // namespace internal

Status SegmentSink::RememberKey(std::string_view, std::string_view, int64_t) { return Status::OK(); }

namespace {
// The default of the keyed calls: the item, then its key (a separate write).
Status RememberAfter(SegmentSink& sink, const IdempotencyKey& key, const std::string& profile_id) {
  if (key.key.empty()) return Status::OK();
  Json value = key.value;
  value.Set("profileId", profile_id);
  return sink.RememberKey(key.key, value.Dump(), key.expires_us);
}
}  // namespace

Result<BatchResult> SegmentSink::TrackBatch(const std::vector<Json>& events, const std::vector<IdempotencyKey>& keys) {
  CDP_ASSIGN_OR_RETURN(BatchResult result, TrackBatch(events));
  for (size_t i = 0; i < keys.size() && i < result.items.size(); ++i) {
    const BatchItemResult& item = result.items[i];
    if (item.status.ok() && !item.result.duplicate) {
      CDP_RETURN_IF_ERROR(RememberAfter(*this, keys[i], item.result.profile_id));
    }
  }
  return result;
}

Result<Json> SegmentSink::Identify(const Json& request, const IdempotencyKey& key) {
  CDP_ASSIGN_OR_RETURN(Json result, Identify(request));
  const Json* profile = result.Find("profileId");
  CDP_RETURN_IF_ERROR(
      RememberAfter(*this, key, profile != nullptr && profile->is_string() ? profile->as_string() : std::string()));
  return result;
}
Result<std::optional<std::string>> SegmentSink::RecallKey(std::string_view, int64_t) {
  return std::optional<std::string>();
}

Result<Json> SegmentSink::IdentifyDuplicate(const Json&, const IdempotencyKey&, const std::string& profile_id) {
  Json r = Json::Object();
  r.Set("profileId", profile_id.empty() ? Json() : Json(profile_id));
  r.Set("duplicate", true);
  return r;
}

int64_t SegmentNowMicros() {
  return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

namespace {

using Access = internal::SegmentDedupeAccess;

constexpr size_t kMaxIdentifierBytes = 256;  // identifier values (docs/identity.md)
constexpr size_t kMaxNameBytes = 256;        // event names
constexpr size_t kMaxMessageIdBytes = 1024;

constexpr std::string_view kTypes[] = {"identify", "track", "page", "screen", "group", "alias"};

// One message, validated and mapped.
struct Mapped {
  std::string type;        // the Segment type
  Json message_id;         // string or null
  std::string dedupe_key;  // the messageId, empty when absent
  bool is_event = false;
  Json request;              // the event, or the Identify request
  int64_t time_us = 0;       // event time (events)
  size_t message_bytes = 0;  // the message's size as compact JSON
};

// What the mapping added to a message's size: the engine lets the request exceed its event limit by that much
// (ScopedEventBytesAllowance), so that a message is held to the limits by its own size, as received.
size_t MappingOverhead(const Mapped& m, size_t request_bytes) {
  return request_bytes > m.message_bytes ? request_bytes - m.message_bytes : 0;
}

Status Invalid(std::string message, std::string field) {
  return Status::InvalidArgument(std::move(message), std::move(field));
}

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

bool IsValidId(std::string_view id) {
  if (id.empty() || id.size() > 128) return false;
  return std::all_of(id.begin(), id.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.' ||
           c == ':' || c == '@' || c == '-';
  });
}

// FNV-1a, 128 bits: stable across builds and platforms.
std::string HashId(std::string_view text) {
  using U128 = unsigned __int128;
  const U128 prime = (static_cast<U128>(0x0000000001000000ULL) << 64) | 0x000000000000013BULL;
  U128 h = (static_cast<U128>(0x6c62272e07bb0142ULL) << 64) | 0x62b821756295c58dULL;
  for (unsigned char c : text) {
    h ^= c;
    h *= prime;
  }
  char buf[40];
  std::snprintf(buf, sizeof buf, "seg-%016llx%016llx", static_cast<unsigned long long>(h >> 64),
                static_cast<unsigned long long>(h));
  return buf;
}

// A string field that may be absent (or null); integers are accepted and written in decimal (SDKs coerce ids).
Status OptionalId(const Json& message, std::string_view key, size_t max_bytes, std::string* out) {
  const Json* v = message.Find(key);
  out->clear();
  if (v == nullptr || v->is_null()) return Status::OK();
  if (v->is_int()) {
    *out = std::to_string(v->as_int());
  } else if (v->is_string()) {
    *out = v->as_string();
  } else {
    return Invalid("expected a string, got " + std::string(Json::TypeName(v->type())), std::string(key));
  }
  if (out->size() > max_bytes) {
    return Invalid("must have at most " + std::to_string(max_bytes) + " bytes", std::string(key));
  }
  return Status::OK();
}

Status OptionalObject(const Json& message, std::string_view key, const Json** out) {
  const Json* v = message.Find(key);
  *out = nullptr;
  if (v == nullptr || v->is_null()) return Status::OK();
  if (!v->is_object()) {
    return Invalid("expected an object, got " + std::string(Json::TypeName(v->type())), std::string(key));
  }
  *out = v;
  return Status::OK();
}

Status OptionalTime(const Json& holder, std::string_view key, std::string_view field, std::optional<int64_t>* out) {
  const Json* v = holder.Find(key);
  out->reset();
  if (v == nullptr || v->is_null()) return Status::OK();
  Result<int64_t> t = ParseTimestamp(*v);
  if (!t.ok()) return Invalid(t.status().message(), std::string(field));
  *out = *t;
  return Status::OK();
}

// Event time by Segment's rule (see the header).
Status EventTime(const Json& message, const Json* batch_sent_at, int64_t received_us, int64_t* out) {
  std::optional<int64_t> timestamp, original, sent;
  CDP_RETURN_IF_ERROR(OptionalTime(message, "timestamp", "timestamp", &timestamp));
  CDP_RETURN_IF_ERROR(OptionalTime(message, "originalTimestamp", "originalTimestamp", &original));
  CDP_RETURN_IF_ERROR(OptionalTime(message, "sentAt", "sentAt", &sent));
  if (!sent && batch_sent_at != nullptr && !batch_sent_at->is_null()) {
    Result<int64_t> t = ParseTimestamp(*batch_sent_at);
    if (!t.ok()) return Invalid(t.status().message(), "sentAt");  // named by the caller as the batch's
    sent = *t;
  }
  int64_t t = received_us;
  if (timestamp) {
    t = *timestamp;
  } else if (original && sent) {
    t = received_us - (*sent - *original);
  } else if (original) {
    t = *original;
  }
  // ParseTimestamp's range: years 1970..9999.
  constexpr int64_t kMaxMicros = 253402300799999999LL;
  if (t < 0 || t > kMaxMicros) {
    return Invalid("the event time computed from receivedAt - (sentAt - originalTimestamp) is out of range",
                   "originalTimestamp");
  }
  *out = t - t % 1000;
  return Status::OK();
}

// Sets properties[key] = value unless the properties already hold the key.
void SetIfFree(Json* properties, std::string_view key, const Json& value) {
  if (value.is_null() || properties->Find(key) != nullptr) return;
  properties->Set(key, value);
}

Status TraitString(const Json& value, const std::string& field, Json* out) {
  if (value.is_null() || value.is_string()) {
    *out = value;
    return Status::OK();
  }
  return Invalid("expected a string, got " + std::string(Json::TypeName(value.type())), field);
}

// traits -> an attribute merge patch (see the header), and identifiers email / phone.
Status MapTraits(const Json& traits, Json* attributes, Json* identifiers) {
  Json custom = Json::Object();
  bool has_first = false, has_last = false;
  const Json* name = nullptr;
  for (const auto& [key, value] : traits.members()) {
    const std::string field = "traits." + key;
    Json mapped;
    if (key == "firstName" || key == "first_name") {
      CDP_RETURN_IF_ERROR(TraitString(value, field, &mapped));
      attributes->Set("firstName", std::move(mapped));
      has_first = true;
    } else if (key == "lastName" || key == "last_name") {
      CDP_RETURN_IF_ERROR(TraitString(value, field, &mapped));
      attributes->Set("lastName", std::move(mapped));
      has_last = true;
    } else if (key == "email" || key == "phone") {
      CDP_RETURN_IF_ERROR(TraitString(value, field, &mapped));
      if (mapped.is_string() && !mapped.as_string().empty()) {
        if (mapped.as_string().size() > kMaxIdentifierBytes) {
          return Invalid("must have at most " + std::to_string(kMaxIdentifierBytes) + " bytes", field);
        }
        identifiers->Set(key, mapped);
      }
      attributes->Set(key, std::move(mapped));
    } else if (key == "name") {
      if (!value.is_null() && !value.is_string()) {
        return Invalid("expected a string, got " + std::string(Json::TypeName(value.type())), field);
      }
      name = &value;
      custom.Set(key, value);
    } else if (key == "address") {
      if (value.is_null()) {
        custom.Set("address", Json());
        continue;
      }
      if (!value.is_object()) {
        return Invalid("expected an object, got " + std::string(Json::TypeName(value.type())), field);
      }
      Json rest = Json::Object();
      for (const auto& [akey, avalue] : value.members()) {
        const std::string afield = field + "." + akey;
        if (akey == "city" || akey == "country") {
          CDP_RETURN_IF_ERROR(TraitString(avalue, afield, &mapped));
          attributes->Set(akey, std::move(mapped));
        } else if (akey == "postalCode" || akey == "postal_code") {
          CDP_RETURN_IF_ERROR(TraitString(avalue, afield, &mapped));
          attributes->Set("postalCode", std::move(mapped));
        } else {
          rest.Set(akey, avalue);
        }
      }
      if (rest.size() > 0) custom.Set("address", std::move(rest));
    } else {
      custom.Set(key, value);
    }
  }
  if (name != nullptr && name->is_string() && !has_first && !has_last) {
    std::string_view full = name->as_string();
    while (!full.empty() && full.front() == ' ') full.remove_prefix(1);
    while (!full.empty() && full.back() == ' ') full.remove_suffix(1);
    if (!full.empty()) {
      const size_t space = full.find(' ');
      attributes->Set("firstName", full.substr(0, space));
      if (space != std::string_view::npos) {
        std::string_view last = full.substr(space + 1);
        while (!last.empty() && last.front() == ' ') last.remove_prefix(1);
        attributes->Set("lastName", last);
      }
    }
  }
  if (custom.size() > 0) attributes->Set("customFields", std::move(custom));
  return Status::OK();
}

// Validates and maps one message. `batch` is the batch document around it (null for a single message).
Status Map(const Json& message, const Json* batch, int64_t received_us, const SegmentOptions& options,
           std::string_view route_type, Mapped* out) {
  if (!message.is_object()) {
    return Invalid("a message must be a JSON object, got " + std::string(Json::TypeName(message.type())), "");
  }
  const size_t bytes = message.Dump().size();
  out->message_bytes = bytes;
  if (bytes > options.max_message_bytes) {
    return Status::InvalidArgument("message of " + std::to_string(bytes) + " bytes is over the limit of " +
                                   std::to_string(options.max_message_bytes) + " bytes");
  }
  // type
  std::string type;
  if (const Json* t = message.Find("type"); t != nullptr && !t->is_null()) {
    if (!t->is_string()) return Invalid("expected a string", "type");
    type = t->as_string();
  }
  if (!route_type.empty()) {
    if (!type.empty() && type != route_type) {
      return Invalid("type \"" + type.substr(0, 64) + "\" does not match the route (" + std::string(route_type) + ")",
                     "type");
    }
    type = route_type;
  }
  if (type.empty()) return Invalid("a message needs a type", "type");
  if (std::find(std::begin(kTypes), std::end(kTypes), type) == std::end(kTypes)) {
    return Invalid("unknown type \"" + type.substr(0, 64) + "\" (expected identify, track, page, screen, group, alias)",
                   "type");
  }
  out->type = type;

  // messageId
  std::string message_id;
  CDP_RETURN_IF_ERROR(OptionalId(message, "messageId", kMaxMessageIdBytes, &message_id));
  out->message_id = message_id.empty() ? Json() : Json(message_id);
  out->dedupe_key = message_id;
  const std::string event_id = message_id.empty()      ? std::string()
                               : IsValidId(message_id) ? message_id
                                                       : HashId(message_id);

  // identifiers
  std::string user_id, anonymous_id;
  CDP_RETURN_IF_ERROR(OptionalId(message, "userId", kMaxIdentifierBytes, &user_id));
  CDP_RETURN_IF_ERROR(OptionalId(message, "anonymousId", kMaxIdentifierBytes, &anonymous_id));

  // context: the batch's under the message's
  const Json* own_context = nullptr;
  CDP_RETURN_IF_ERROR(OptionalObject(message, "context", &own_context));
  Json context;
  if (batch != nullptr) {
    if (const Json* bc = batch->Find("context"); bc != nullptr && bc->is_object()) context = *bc;
  }
  if (own_context != nullptr) {
    if (context.is_object()) {
      ApplyMergePatch(&context, *own_context);
    } else {
      context = *own_context;
    }
  }
  std::string device_id;
  if (const Json* device = context.Find("device"); device != nullptr && !device->is_null()) {
    if (!device->is_object()) return Invalid("expected an object", "context.device");
    CDP_RETURN_IF_ERROR(OptionalId(*device, "id", kMaxIdentifierBytes, &device_id).WithFieldPrefix("context.device"));
  }
  const Json* campaign = context.Find("campaign");
  if (campaign != nullptr && !campaign->is_null() && !campaign->is_object()) {
    return Invalid("expected an object", "context.campaign");
  }

  if (type == "identify" || type == "alias") {
    Json identifiers = Json::Object();
    Json request = Json::Object();
    if (type == "alias") {
      std::string previous_id;
      CDP_RETURN_IF_ERROR(OptionalId(message, "previousId", kMaxIdentifierBytes, &previous_id));
      if (previous_id.empty()) return Invalid("an alias needs a previousId", "previousId");
      if (user_id.empty()) return Invalid("an alias needs a userId", "userId");
      identifiers.Set("customerId", user_id);
      identifiers.Set("anonymousId", previous_id);
    } else {
      if (user_id.empty() && anonymous_id.empty()) {
        return Invalid("a message needs a userId or an anonymousId", "userId");
      }
      if (!user_id.empty()) identifiers.Set("customerId", user_id);
      if (!anonymous_id.empty()) identifiers.Set("anonymousId", anonymous_id);
      if (!device_id.empty()) identifiers.Set("deviceId", device_id);
      const Json* traits = nullptr;
      CDP_RETURN_IF_ERROR(OptionalObject(message, "traits", &traits));
      if (traits != nullptr) {
        Json attributes = Json::Object();
        CDP_RETURN_IF_ERROR(MapTraits(*traits, &attributes, &identifiers));
        if (attributes.size() > 0) request.Set("attributes", std::move(attributes));
      }
    }
    request.Set("identifiers", std::move(identifiers));
    if (!event_id.empty()) request.Set("id", event_id);
    // The message's time is the traits' time (survivorship's most_recent / oldest compare it).
    int64_t time_us = 0;
    CDP_RETURN_IF_ERROR(EventTime(message, batch != nullptr ? batch->Find("sentAt") : nullptr, received_us, &time_us));
    request.Set("timestamp", FormatTimestamp(time_us));
    if (!options.source.empty()) request.Set("source", options.source);
    out->is_event = false;
    // An identify or alias is a retry only when it names the same person: a messageId reused for another one is
    // applied.
    if (!out->dedupe_key.empty()) {
      const Json* ids = request.Find("identifiers");
      out->dedupe_key.push_back('\0');
      out->dedupe_key.append(ids != nullptr ? ids->Dump() : std::string());
    }
    out->request = std::move(request);
    return Status::OK();
  }

  // Events.
  if (user_id.empty() && anonymous_id.empty()) {
    return Invalid("a message needs a userId or an anonymousId", "userId");
  }
  Json event = Json::Object();
  Json properties = Json::Object();
  std::string name;
  if (type == "track") {
    const Json* e = message.Find("event");
    if (e == nullptr || e->is_null()) return Invalid("a track message needs an event name", "event");
    if (!e->is_string() || e->as_string().empty() || e->as_string().size() > kMaxNameBytes) {
      return Invalid("expected a string of 1 to " + std::to_string(kMaxNameBytes) + " bytes", "event");
    }
    name = e->as_string();
    std::string_view event_type = "custom";
    if (EqualsIgnoreCase(name, "Order Completed")) {
      event_type = "purchase";
    } else if (EqualsIgnoreCase(name, "Product Viewed")) {
      event_type = "product_view";
    } else if (EqualsIgnoreCase(name, "Product Added")) {
      event_type = "add_to_cart";
    }
    event.Set("type", event_type);
  } else if (type == "page" || type == "screen") {
    event.Set("type", "page_view");
    std::string category;
    CDP_RETURN_IF_ERROR(OptionalId(message, "name", kMaxNameBytes, &name));
    if (type == "page") CDP_RETURN_IF_ERROR(OptionalId(message, "category", kMaxNameBytes, &category));
    if (!category.empty()) properties.Set("category", category);
  } else {  // group
    event.Set("type", "custom");
    name = "group";
    std::string group_id;
    CDP_RETURN_IF_ERROR(OptionalId(message, "groupId", kMaxIdentifierBytes, &group_id));
    if (group_id.empty()) return Invalid("a group message needs a groupId", "groupId");
    properties.Set("groupId", group_id);
    const Json* traits = nullptr;
    CDP_RETURN_IF_ERROR(OptionalObject(message, "traits", &traits));
    if (traits != nullptr) properties.Set("traits", *traits);
  }
  if (type != "group") {
    const Json* props = nullptr;
    CDP_RETURN_IF_ERROR(OptionalObject(message, "properties", &props));
    if (props != nullptr) {
      Json merged = *props;
      for (auto& [key, value] : properties.members()) SetIfFree(&merged, key, value);
      properties = std::move(merged);
    }
  }
  if (type == "page" && !name.empty()) SetIfFree(&properties, "name", Json(name));
  // A browser SDK's page call carries the page in context.page: its url and path name the session's first page
  // when the properties do not.
  if (type == "page" && properties.Find("url") == nullptr && properties.Find("path") == nullptr) {
    if (const Json* page = context.is_object() ? context.Find("page") : nullptr; page != nullptr && page->is_object()) {
      for (const char* key : {"url", "path"}) {
        if (const Json* v = page->Find(key); v != nullptr && v->is_string()) SetIfFree(&properties, key, *v);
      }
    }
  }
  if (type == "screen" && !name.empty()) {
    SetIfFree(&properties, "screen", Json(name));
    if (properties.Find("url") == nullptr && properties.Find("path") == nullptr) {
      SetIfFree(&properties, "page", Json(name));
    }
  }
  if (campaign != nullptr && campaign->is_object()) {
    constexpr std::pair<std::string_view, std::string_view> kUtm[] = {{"source", "utm_source"},
                                                                      {"medium", "utm_medium"},
                                                                      {"name", "utm_campaign"},
                                                                      {"term", "utm_term"},
                                                                      {"content", "utm_content"}};
    for (const auto& [from, to] : kUtm) {
      if (const Json* v = campaign->Find(from); v != nullptr) SetIfFree(&properties, to, *v);
    }
  }
  if (context.is_object()) SetIfFree(&properties, "context", context);
  SetIfFree(&properties, "messageId", out->message_id);
  SetIfFree(&properties, "segmentType", Json(type));

  int64_t time_us = 0;
  const Status time = EventTime(message, batch != nullptr ? batch->Find("sentAt") : nullptr, received_us, &time_us);
  if (!time.ok()) return time;

  if (!event_id.empty()) event.Set("id", event_id);
  if (!name.empty()) event.Set("name", name);
  event.Set("timestamp", FormatTimestamp(time_us));
  if (!user_id.empty()) event.Set("customerId", user_id);
  if (!anonymous_id.empty()) event.Set("anonymousId", anonymous_id);
  if (!device_id.empty()) event.Set("deviceId", device_id);
  if (!options.source.empty()) event.Set("source", options.source);
  event.Set("properties", std::move(properties));
  out->is_event = true;
  out->time_us = time_us;
  out->request = std::move(event);
  return Status::OK();
}

Status CheckOptions(const SegmentOptions& options) {
  if (options.dedupe_window_seconds < 0 || options.dedupe_window_seconds > 10LL * 365 * 24 * 3600) {
    return Invalid("dedupe_window_seconds must be 0 to 10 years", "dedupe_window_seconds");
  }
  return Status::OK();
}

// InvalidArgument naming the path when `message` nests deeper than a message may: two levels more than an event
// (Options::max_json_depth; the mapping moves members up), in any member, kept or not. The same alone and in a
// batch.
Status CheckMessageDepth(const Options& options, const Json& message) {
  const int max_depth = options.max_json_depth + 2;
  return internal::JsonDepth(message) > max_depth ? internal::CheckJsonDepth(message, max_depth) : Status::OK();
}

// A message on its way: mapped, its dedupe claim, and (after the calls) its result.
struct Pending {
  size_t index = 0;
  Status status;
  Mapped mapped;
  Access::Claim claim;
  Json result;
  bool stored = false;
  bool recalled = false;    // the claim came from the database
  bool remembered = false;  // its idempotency key was written with it
  bool duplicate = false;   // an identify or alias stored within the window: answered, not applied
};

// The idempotency key under which the database remembers a message (Events::RememberKey).
std::string DurableKey(const std::string& dedupe_key) { return "segment/" + HashId(dedupe_key); }

// Takes the dedupe claim of a mapped message: from the deduplicator's memory, else from the database. An identify
// already stored within the window becomes a duplicate. Errors: the database's.
Status ClaimOne(SegmentSink& sink, Pending* p, int64_t received_us, const SegmentOptions& options) {
  if (!options.deduplicator || options.dedupe_window_seconds == 0 || p->mapped.dedupe_key.empty()) {
    return Status::OK();
  }
  const int64_t window_us = options.dedupe_window_seconds * 1000000;
  p->claim = Access::Take(*options.deduplicator, p->mapped.dedupe_key, received_us, window_us, p->mapped.time_us);
  if (!p->claim.seen) {
    CDP_ASSIGN_OR_RETURN(std::optional<std::string> remembered,
                         sink.RecallKey(DurableKey(p->mapped.dedupe_key), received_us));
    if (!remembered) return Status::OK();
    auto doc = Json::Parse(*remembered);
    if (!doc.ok() || !doc->is_object()) return Status::DataLoss("a remembered Segment message is corrupt");
    const Json* first = doc->Find("firstReceivedUs");
    const Json* time = doc->Find("timeUs");
    const Json* profile = doc->Find("profileId");
    if (first == nullptr || time == nullptr || !first->is_int() || !time->is_int()) {
      return Status::DataLoss("a remembered Segment message is corrupt");
    }
    const int64_t age = received_us - first->as_int();
    if (age > window_us || age < -window_us) return Status::OK();
    const std::string profile_id = profile != nullptr && profile->is_string() ? profile->as_string() : std::string();
    Access::Adopt(*options.deduplicator, p->mapped.dedupe_key, p->claim.seq, first->as_int(), time->as_int(),
                  profile_id);
    p->claim.seen = p->claim.done = true;
    p->claim.time_us = time->as_int();
    p->claim.profile_id = profile_id;
    p->recalled = true;
  }
  if (p->mapped.is_event) {
    // The first message's time, so the engine recognises the retry.
    p->mapped.time_us = p->claim.time_us;
    p->mapped.request.Set("timestamp", FormatTimestamp(p->claim.time_us));
  } else if (p->claim.done) {
    p->duplicate = true;  // answered by SegmentSink::IdentifyDuplicate
  }
  return Status::OK();
}

Json Decorate(const Mapped& m, Json result) {
  Json out = Json::Object();
  out.Set("type", m.type);
  out.Set("messageId", m.message_id);
  for (auto& [key, value] : result.members()) out.Set(key, std::move(value));
  if (out.Find("duplicate") == nullptr) out.Set("duplicate", false);
  return out;
}

// Settles the dedupe claim once the outcome is known; a message stored under a fresh claim is remembered in the
// database until the window has passed. Errors: the database's.
Status Settle(SegmentSink& sink, const Pending& p, int64_t received_us, const SegmentOptions& options) {
  if (p.claim.seq == 0 || !options.deduplicator) return Status::OK();
  if (!p.status.ok() || !p.stored) {
    Access::Forget(*options.deduplicator, p.mapped.dedupe_key, p.claim.seq);
    return Status::OK();
  }
  const Json* profile = p.result.Find("profileId");
  const std::string profile_id = profile != nullptr && profile->is_string() ? profile->as_string() : std::string();
  Access::Complete(*options.deduplicator, p.mapped.dedupe_key, p.claim.seq, profile_id);
  if (p.claim.seen || p.remembered) return Status::OK();  // remembered by the first message, or with this one
  Json remembered = Json::Object();
  remembered.Set("firstReceivedUs", received_us);
  remembered.Set("timeUs", p.mapped.time_us);
  remembered.Set("profileId", profile_id);
  return sink.RememberKey(DurableKey(p.mapped.dedupe_key), remembered.Dump(),
                          received_us + options.dedupe_window_seconds * 1000000);
}

// The idempotency key to write with a message stored under a fresh dedupe claim (empty: none). Its value is what
// Settle would remember; the engine adds the profileId.
IdempotencyKey FreshKey(const Pending& p, int64_t received_us, const SegmentOptions& options) {
  IdempotencyKey key;
  if (p.claim.seq == 0 || p.claim.seen || !options.deduplicator) return key;
  key.key = DurableKey(p.mapped.dedupe_key);
  key.value.Set("firstReceivedUs", received_us);
  key.value.Set("timeUs", p.mapped.time_us);
  key.expires_us = received_us + options.dedupe_window_seconds * 1000000;
  return key;
}

// The idempotency key a duplicate identify or alias was stored with (SegmentSink::IdentifyDuplicate).
IdempotencyKey DuplicateKey(const Pending& p, int64_t received_us, const SegmentOptions& options) {
  IdempotencyKey key;
  key.key = DurableKey(p.mapped.dedupe_key);
  key.value.Set("firstReceivedUs", received_us);  // as a fresh message's, should the engine apply it after all
  key.value.Set("timeUs", p.claim.time_us);
  key.expires_us = received_us + options.dedupe_window_seconds * 1000000;
  key.applied_if_stored_at_us = received_us;
  return key;
}

// Runs the calls of `pending` in order: identify / alias one by one, runs of consecutive events as TrackBatch
// calls bounded by the engine's batch limits. Messages under fresh dedupe claims are stored with their keys.
Status Execute(SegmentSink& sink, std::vector<Pending>* pending, int64_t received_us, const SegmentOptions& options) {
  const Options& eo = sink.options();
  const size_t max_items = std::max<size_t>(eo.max_batch_items, 1);
  const size_t max_bytes = eo.max_batch_bytes;
  std::vector<size_t> run;  // indexes into *pending
  std::vector<Json> events;
  std::vector<IdempotencyKey> keys;
  size_t run_bytes = 2;
  size_t run_overhead = 0;  // the largest MappingOverhead in the run

  auto flush = [&]() -> Status {
    if (run.empty()) return Status::OK();
    Result<BatchResult> batch = [&] {
      internal::ScopedEventBytesAllowance allowance(run_overhead);
      return sink.TrackBatch(events, keys);
    }();
    if (!batch.ok()) return batch.status();
    for (size_t i = 0; i < run.size(); ++i) {
      Pending& p = (*pending)[run[i]];
      const BatchItemResult& item = batch->items[i];
      if (item.status.ok()) {
        p.result = item.result.ToJson();
        p.stored = true;
        p.remembered = !keys[i].key.empty() && !item.result.duplicate;
      } else {
        p.status = item.status;
      }
    }
    run.clear();
    events.clear();
    keys.clear();
    run_bytes = 2;
    run_overhead = 0;
    return Status::OK();
  };

  for (size_t i = 0; i < pending->size(); ++i) {
    Pending& p = (*pending)[i];
    if (!p.status.ok() || p.stored) continue;
    if (p.mapped.message_bytes > eo.max_event_bytes) {  // the engine's limit, on the message as received
      p.status = Status::InvalidArgument("message of " + std::to_string(p.mapped.message_bytes) +
                                         " bytes is over the engine's event limit of " +
                                         std::to_string(eo.max_event_bytes) + " bytes");
      continue;
    }
    if (p.mapped.is_event) {
      const size_t bytes = p.mapped.request.Dump().size() + 1;
      if (!run.empty() && (run.size() >= max_items || run_bytes + bytes > max_bytes)) CDP_RETURN_IF_ERROR(flush());
      run_overhead = std::max(run_overhead, MappingOverhead(p.mapped, bytes - 1));
      run.push_back(i);
      events.push_back(p.mapped.request);
      keys.push_back(FreshKey(p, received_us, options));
      run_bytes += bytes;
      continue;
    }
    CDP_RETURN_IF_ERROR(flush());
    const IdempotencyKey key = p.duplicate ? DuplicateKey(p, received_us, options) : FreshKey(p, received_us, options);
    internal::ScopedEventBytesAllowance allowance(MappingOverhead(p.mapped, p.mapped.request.Dump().size()));
    Result<Json> identified = p.duplicate ? sink.IdentifyDuplicate(p.mapped.request, key, p.claim.profile_id)
                                          : sink.Identify(p.mapped.request, key);
    if (identified.ok()) {
      p.result = std::move(identified).value();
      p.stored = true;
      p.remembered = !p.duplicate && !key.key.empty();
    } else if (identified.status().IsInvalidArgument() || identified.status().IsResourceExhausted() ||
               identified.status().IsAlreadyExists() || identified.status().IsFailedPrecondition()) {
      p.status = identified.status();  // about this message
    } else {
      return identified.status();  // storage
    }
  }
  return flush();
}

class EngineSink : public SegmentSink {
 public:
  explicit EngineSink(Engine& engine) : engine_(engine) {}
  const Options& options() const override { return engine_.options(); }
  Result<BatchResult> TrackBatch(const std::vector<Json>& events) override {
    return engine_.events().TrackBatch(events);
  }
  Result<Json> Identify(const Json& request) override { return engine_.identity().Identify(request); }
  Result<BatchResult> TrackBatch(const std::vector<Json>& events, const std::vector<IdempotencyKey>& keys) override {
    return engine_.events().TrackBatch(events, keys);
  }
  Result<Json> Identify(const Json& request, const IdempotencyKey& key) override {
    return engine_.identity().Identify(request, key);
  }
  // The engine recognises the stored key: nothing is written, and the answer leaves out the profile when the
  // caller may not read the identifiers' links.
  Result<Json> IdentifyDuplicate(const Json& request, const IdempotencyKey& key, const std::string&) override {
    return engine_.identity().Identify(request, key);
  }
  // The deduplicator's own bookkeeping, whoever the caller: RememberKey and RecallKey need "admin". What it recalls
  // reaches the caller only through the engine's answers, filtered for the caller.
  Status RememberKey(std::string_view key, std::string_view value, int64_t expires_us) override {
    ScopedPrincipal bookkeeping("local");
    return engine_.events().RememberKey(key, value, expires_us);
  }
  Result<std::optional<std::string>> RecallKey(std::string_view key, int64_t now_us) override {
    ScopedPrincipal bookkeeping("local");
    return engine_.events().RecallKey(key, now_us);
  }

 private:
  Engine& engine_;
};

}  // namespace

Result<Json> IngestSegmentMessage(Engine& engine, const Json& message, int64_t received_at_us,
                                  const SegmentOptions& options, std::string_view route_type) {
  EngineSink sink(engine);
  return IngestSegmentMessage(sink, message, received_at_us, options, route_type);
}

Result<Json> IngestSegmentBatchJson(Engine& engine, std::string_view body, int64_t received_at_us,
                                    const SegmentOptions& options) {
  EngineSink sink(engine);
  return IngestSegmentBatchJson(sink, body, received_at_us, options);
}

Result<Json> IngestSegmentBatch(Engine& engine, const Json& batch, int64_t received_at_us,
                                const SegmentOptions& options) {
  EngineSink sink(engine);
  return IngestSegmentBatch(sink, batch, received_at_us, options);
}

Result<Json> IngestSegmentMessage(SegmentSink& sink, const Json& message, int64_t received_at_us,
                                  const SegmentOptions& options, std::string_view route_type) {
  CDP_RETURN_IF_ERROR(CheckOptions(options));
  CDP_RETURN_IF_ERROR(CheckMessageDepth(sink.options(), message));
  std::vector<Pending> pending(1);
  Pending& p = pending[0];
  CDP_RETURN_IF_ERROR(Map(message, nullptr, received_at_us, options, route_type, &p.mapped));
  CDP_RETURN_IF_ERROR(ClaimOne(sink, &p, received_at_us, options));
  Status run = Execute(sink, &pending, received_at_us, options);
  if (!run.ok()) p.status = run;
  CDP_RETURN_IF_ERROR(Settle(sink, p, received_at_us, options));
  if (!p.status.ok()) return p.status;
  return Decorate(p.mapped, std::move(p.result));
}

Result<Json> IngestSegmentBatch(SegmentSink& sink, const Json& batch, int64_t received_at_us,
                                const SegmentOptions& options) {
  CDP_RETURN_IF_ERROR(CheckOptions(options));
  const size_t bytes = batch.Dump().size();
  if (bytes > options.max_batch_bytes) {
    return Status::InvalidArgument("batch of " + std::to_string(bytes) + " bytes is over the limit of " +
                                       std::to_string(options.max_batch_bytes) + " bytes",
                                   "batch");
  }
  const Json* items = &batch;
  const Json* envelope = nullptr;
  if (batch.is_object()) {
    items = batch.Find("batch");
    envelope = &batch;
    if (items == nullptr) return Invalid("a batch must be {\"batch\": [...]} or an array of messages", "batch");
    if (const Json* c = batch.Find("context"); c != nullptr && !c->is_null() && !c->is_object()) {
      return Invalid("expected an object", "context");
    }
    if (const Json* s = batch.Find("sentAt"); s != nullptr && !s->is_null() && !ParseTimestamp(*s).ok()) {
      return Invalid("not a timestamp", "sentAt");
    }
  }
  if (!items->is_array()) return Invalid("a batch must be an array of messages", "batch");

  std::vector<Pending> pending(items->size());
  for (size_t i = 0; i < pending.size(); ++i) {
    Pending& p = pending[i];
    p.index = i;
    const Json& message = items->items()[i];  // held to a message's depth alone; the batch text may nest deeper
    p.status = CheckMessageDepth(sink.options(), message);
    if (p.status.ok()) p.status = Map(message, envelope, received_at_us, options, {}, &p.mapped);
    if (p.status.ok()) {
      Status claimed = ClaimOne(sink, &p, received_at_us, options);
      if (!claimed.ok()) {  // the database failed: give the claims taken so far back
        for (size_t j = 0; j <= i; ++j) pending[j].stored = false;
        for (size_t j = 0; j <= i; ++j) (void)Settle(sink, pending[j], received_at_us, options);
        return claimed;
      }
    }
  }
  const Status run = Execute(sink, &pending, received_at_us, options);
  Status settled;
  for (const Pending& p : pending) {
    Status s = Settle(sink, p, received_at_us, options);
    if (settled.ok()) settled = s;
  }
  if (!run.ok()) return run;
  CDP_RETURN_IF_ERROR(settled);

  Json results = Json::Array();
  int64_t accepted = 0, rejected = 0;
  for (Pending& p : pending) {
    Json r;
    if (p.status.ok()) {
      ++accepted;
      r = Decorate(p.mapped, std::move(p.result));
      const Json* dup = r.Find("duplicate");
      r.Set("status", dup != nullptr && dup->as_bool() ? "duplicate" : "ok");
    } else {
      ++rejected;
      r = Json::Object();
      r.Set("status", StatusCodeName(p.status.code()));
      if (!p.mapped.type.empty()) r.Set("type", p.mapped.type);
      Json error = Json::Object();
      error.Set("code", StatusCodeName(p.status.code()));
      error.Set("message", p.status.message());
      if (!p.status.field().empty()) error.Set("field", p.status.field());
      r.Set("error", std::move(error));
    }
    Json item = Json::Object();
    item.Set("index", static_cast<int64_t>(p.index));
    for (auto& [key, value] : r.members()) item.Set(key, std::move(value));
    results.Push(std::move(item));
  }
  Json out = Json::Object();
  out.Set("accepted", accepted);
  out.Set("rejected", rejected);
  out.Set("results", std::move(results));
  return out;
}

Result<Json> IngestSegmentBatchJson(SegmentSink& sink, std::string_view body, int64_t received_at_us,
                                    const SegmentOptions& options) {
  if (body.size() > options.max_batch_bytes) {
    return Status::InvalidArgument("batch of " + std::to_string(body.size()) + " bytes is over the limit of " +
                                       std::to_string(options.max_batch_bytes) + " bytes",
                                   "batch");
  }
  ParseLimits limits;
  limits.max_bytes = options.max_batch_bytes;
  limits.max_depth = sink.options().batch_document_depth();  // each message is judged on its own (CheckMessageDepth)
  CDP_ASSIGN_OR_RETURN(Json batch, Json::Parse(body, limits));
  return IngestSegmentBatch(sink, batch, received_at_us, options);
}

}  // namespace cdp
