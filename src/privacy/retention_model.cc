// Copyright 2026 The libcdp Authors.

#include "privacy/retention_model.h"

#include <algorithm>
#include <charconv>

#include "core/hex.h"
#include "fmt/format.h"

namespace cdp::internal {
namespace {

constexpr std::string_view kEventTypes[] = {"page_view",  "product_view", "add_to_cart", "purchase",
                                            "email_open", "app_usage",    "custom"};
constexpr int64_t kHourUs = int64_t{3600} * 1'000'000;

bool IsPolicyId(std::string_view id) {
  if (id.size() < 5 || id.size() > 64 || !id.starts_with("ret_")) return false;
  return std::all_of(id.begin() + 4, id.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
  });
}

}  // namespace

Json RetentionPolicy::ToJson() const {
  Json out = Json::Object().Set("id", id).Set("name", name);
  if (target == Target::kEvents) {
    out.Set("target", "events");
    if (!event_type.empty()) out.Set("eventType", event_type);
    if (!event_name.empty()) out.Set("eventName", event_name);
    out.Set("olderThan", age_text);
  } else {
    out.Set("target", "profiles");
    out.Set("inactiveFor", age_text);
  }
  out.Set("enabled", enabled);
  return out;
}

Result<int64_t> ParseRetentionAge(const Json& value, const std::string& field) {
  const Status bad = Status::InvalidArgument(
      "a duration such as \"365d\": a whole number and a unit h, d, w or y, from 1h to 100y", field);
  if (!value.is_string() || value.as_string().size() < 2 || value.as_string().size() > 12) return bad;
  const std::string& text = value.as_string();
  int64_t n = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size() - 1, n);
  if (ec != std::errc() || end != text.data() + text.size() - 1 || n <= 0) return bad;
  int64_t unit_hours = 0;
  switch (text.back()) {
    case 'h':
      unit_hours = 1;
      break;
    case 'd':
      unit_hours = 24;
      break;
    case 'w':
      unit_hours = 24 * 7;
      break;
    case 'y':
      unit_hours = 24 * 365;
      break;
    default:
      return bad;
  }
  if (n > int64_t{100} * 365 * 24 / unit_hours) return bad;
  return n * unit_hours * kHourUs;
}

Result<std::vector<RetentionPolicy>> ParseRetentionPolicies(const Json& json) {
  if (!json.is_object()) return Status::InvalidArgument("expected {\"policies\": [...]}");
  for (const auto& [key, value] : json.members()) {
    if (key != "policies") return Status::InvalidArgument("unknown member (expected policies)", key);
  }
  const Json* list = json.Find("policies");
  if (list == nullptr || !list->is_array()) return Status::InvalidArgument("expected an array", "policies");
  if (list->size() > kMaxRetentionPolicies) return Status::InvalidArgument("at most 100 policies", "policies");
  std::vector<RetentionPolicy> out;
  for (size_t i = 0; i < list->items().size(); ++i) {
    const Json& p = list->items()[i];
    const std::string at = fmt::format("policies[{}]", i);
    if (!p.is_object()) return Status::InvalidArgument("expected an object", at);
    RetentionPolicy policy;
    const Json* target = p.Find("target");
    if (target == nullptr || !target->is_string() ||
        (target->as_string() != "events" && target->as_string() != "profiles")) {
      return Status::InvalidArgument("expected \"events\" or \"profiles\"", at + ".target");
    }
    policy.target =
        target->as_string() == "events" ? RetentionPolicy::Target::kEvents : RetentionPolicy::Target::kProfiles;
    const bool events = policy.target == RetentionPolicy::Target::kEvents;
    for (const auto& [key, value] : p.members()) {
      const bool known = key == "id" || key == "name" || key == "target" || key == "enabled" ||
                         (events && (key == "eventType" || key == "eventName" || key == "olderThan")) ||
                         (!events && key == "inactiveFor");
      if (!known) {
        return Status::InvalidArgument(events ? "unknown member (expected id, name, target, eventType, eventName, "
                                                "olderThan, enabled)"
                                              : "unknown member (expected id, name, target, inactiveFor, enabled)",
                                       at + "." + key);
      }
    }
    if (const Json* id = p.Find("id"); id != nullptr) {
      if (!id->is_string() || !IsPolicyId(id->as_string())) {
        return Status::InvalidArgument("a policy id \"ret_...\" of at most 64 characters", at + ".id");
      }
      for (const RetentionPolicy& other : out) {
        if (other.id == id->as_string()) return Status::InvalidArgument("a second policy with this id", at + ".id");
      }
      policy.id = id->as_string();
    }
    const Json* name = p.Find("name");
    if (name == nullptr || !name->is_string() || name->as_string().empty() || name->as_string().size() > 256) {
      return Status::InvalidArgument("a name of 1-256 bytes", at + ".name");
    }
    policy.name = name->as_string();
    if (const Json* enabled = p.Find("enabled"); enabled != nullptr) {
      if (!enabled->is_bool()) return Status::InvalidArgument("expected true or false", at + ".enabled");
      policy.enabled = enabled->as_bool();
    }
    const char* age_key = events ? "olderThan" : "inactiveFor";
    const Json* age = p.Find(age_key);
    if (age == nullptr) return Status::InvalidArgument("required", at + "." + age_key);
    CDP_ASSIGN_OR_RETURN(policy.age_us, ParseRetentionAge(*age, at + "." + age_key));
    policy.age_text = age->as_string();
    if (const Json* type = p.Find("eventType"); type != nullptr) {
      if (!type->is_string() ||
          std::find(std::begin(kEventTypes), std::end(kEventTypes), type->as_string()) == std::end(kEventTypes)) {
        return Status::InvalidArgument(
            "an event type (page_view, product_view, add_to_cart, purchase, email_open, app_usage, custom)",
            at + ".eventType");
      }
      policy.event_type = type->as_string();
    }
    if (const Json* event_name = p.Find("eventName"); event_name != nullptr) {
      if (!event_name->is_string() || event_name->as_string().empty() || event_name->as_string().size() > 256) {
        return Status::InvalidArgument("a custom event name of 1-256 bytes", at + ".eventName");
      }
      if (!policy.event_type.empty() && policy.event_type != "custom") {
        return Status::InvalidArgument("only custom events have names", at + ".eventName");
      }
      policy.event_name = event_name->as_string();
    }
    out.push_back(std::move(policy));
  }
  return out;
}

// ---- RetentionHorizons -------------------------------------------------------------------------------------------

namespace {

bool Covers(const RetentionHorizons::Horizon& h, std::string_view key, std::string_view type, std::string_view name) {
  return key < h.before && (h.event_type.empty() || h.event_type == type) &&
         (h.event_name.empty() || h.event_name == name);
}

}  // namespace

Result<RetentionHorizons> RetentionHorizons::Parse(std::string_view stored) {
  RetentionHorizons out;
  auto json = Json::Parse(stored);
  if (!json.ok() || !json->is_array()) return Status::DataLoss("the retention horizons are corrupt");
  for (const Json& item : json->items()) {
    const Json* type = item.Find("type");
    const Json* name = item.Find("name");
    const Json* before = item.Find("before");
    std::string key;
    if (type == nullptr || !type->is_string() || name == nullptr || !name->is_string() || before == nullptr ||
        !before->is_string() || !HexDecode(before->as_string(), &key)) {
      return Status::DataLoss("the retention horizons are corrupt");
    }
    out.Raise(type->as_string(), name->as_string(), std::move(key));
  }
  return out;
}

std::string RetentionHorizons::Serialize() const {
  Json out = Json::Array();
  for (const Horizon& h : horizons_) {
    out.Push(Json::Object().Set("type", h.event_type).Set("name", h.event_name).Set("before", HexEncode(h.before)));
  }
  return out.Dump();
}

const std::string& RetentionHorizons::Before(std::string_view event_type, std::string_view event_name) const {
  static const std::string kNone;
  for (const Horizon& h : horizons_) {
    if (h.event_type == event_type && h.event_name == event_name) return h.before;
  }
  return kNone;
}

void RetentionHorizons::Raise(const std::string& event_type, const std::string& event_name, std::string before) {
  if (before > highest_) highest_ = before;
  for (Horizon& h : horizons_) {
    if (h.event_type == event_type && h.event_name == event_name) {
      if (before > h.before) h.before = std::move(before);
      return;
    }
  }
  horizons_.push_back({event_type, event_name, std::move(before)});
}

bool RetentionHorizons::Retired(std::string_view key, std::string_view type, std::string_view name) const {
  if (key >= highest_) return false;
  for (const Horizon& h : horizons_) {
    if (Covers(h, key, type, name)) return true;
  }
  return false;
}

Result<RetiredRange> RetiredRange::Parse(std::string_view stored) {
  auto json = Json::Parse(stored);
  const Json* first = json.ok() ? json->Find("first") : nullptr;
  const Json* last = json.ok() ? json->Find("last") : nullptr;
  RetiredRange out;
  if (first == nullptr || last == nullptr || !first->is_string() || !last->is_string() ||
      !HexDecode(first->as_string(), &out.first) || !HexDecode(last->as_string(), &out.last)) {
    return Status::DataLoss("the retired range is corrupt");
  }
  return out;
}

std::string RetiredRange::Serialize() const {
  return Json::Object().Set("first", HexEncode(first)).Set("last", HexEncode(last)).Dump();
}

void RetiredRange::Extend(std::string_view from, std::string_view to) {
  if (first.empty() || from < first) first = std::string(from);
  if (last.empty() || to > last) last = std::string(to);
}

bool StoredTypeAndName(std::string_view document, std::string_view* type, std::string_view* name) {
  auto literal = [&](std::string_view text) {
    if (document.substr(0, text.size()) != text) return false;
    document.remove_prefix(text.size());
    return true;
  };
  auto string = [&](std::string_view* out) {  // up to its closing quote; one with an escape is left to the parser
    const size_t quote = document.find('"');
    if (quote == std::string_view::npos || document.substr(0, quote).find('\\') != std::string_view::npos) {
      return false;
    }
    *out = document.substr(0, quote);
    document.remove_prefix(quote + 1);
    return true;
  };
  std::string_view ignored;
  if (!literal(R"({"id":")") || !string(&ignored) || !literal(R"(,"profileId":")") || !string(&ignored) ||
      !literal(R"(,"type":")") || !string(type)) {
    return false;
  }
  *name = {};
  return !literal(R"(,"name":")") || string(name);
}

bool RetentionHorizons::RetiredStored(std::string_view key, std::string_view document) const {
  if (key >= highest_) return false;
  if (std::string_view type, name; StoredTypeAndName(document, &type, &name)) return Retired(key, type, name);
  auto event = Json::Parse(document);
  if (!event.ok()) return false;
  const Json* type = event->Find("type");
  const Json* name = event->Find("name");
  return Retired(key, type != nullptr && type->is_string() ? std::string_view(type->as_string()) : std::string_view(),
                 name != nullptr && name->is_string() ? std::string_view(name->as_string()) : std::string_view());
}

}  // namespace cdp::internal
