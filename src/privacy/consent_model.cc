// Copyright 2026 The libcdp Authors.

#include "privacy/consent_model.h"

#include <algorithm>

#include "cdp/query.h"
#include "fmt/format.h"

namespace cdp::internal {

namespace {

constexpr std::string_view kAdSignals[] = {"ad_storage", "ad_user_data", "ad_personalization"};
constexpr std::string_view kConsentModeSignals[] = {"ad_storage", "analytics_storage", "ad_user_data",
                                                    "ad_personalization"};

// [a-z][a-z0-9_]{0,63}
bool IsPurposeName(std::string_view p) {
  if (p.empty() || p.size() > 64 || p[0] < 'a' || p[0] > 'z') return false;
  for (char c : p) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) return false;
  }
  return true;
}

Status CheckPurpose(std::string_view purpose, std::string_view prefix) {
  if (!IsPurposeName(purpose)) {
    return Status::InvalidArgument("a purpose is 1 to 64 characters of a-z, 0-9 and _, starting with a letter",
                                   fmt::format("{}{}", prefix, purpose));
  }
  return Status::OK();
}

// "granted" / "denied" / true / false.
Result<bool> ParseGrant(const Json& v, const std::string& field) {
  if (v.is_bool()) return v.as_bool();
  if (v.is_string() && v.as_string() == "granted") return true;
  if (v.is_string() && v.as_string() == "denied") return false;
  return Status::InvalidArgument("expected \"granted\", \"denied\" or a boolean", field);
}

Status CheckString(const Json& v, const std::string& field, size_t max_bytes) {
  if (!v.is_string() || v.as_string().empty() || v.as_string().size() > max_bytes) {
    return Status::InvalidArgument(fmt::format("expected a string of 1 to {} bytes", max_bytes), field);
  }
  return Status::OK();
}

}  // namespace

Result<Json> NormalizeConsentObject(const Json& in) {
  Json out = Json::Object();
  if (in.is_null()) return out;
  if (!in.is_object()) return Status::InvalidArgument("expected an object of purpose to boolean", "consent");
  const Json* analytics = in.Find("analytics_storage");
  const Json* tracking = in.Find("tracking");
  if (analytics != nullptr && tracking != nullptr && !analytics->is_null() && !tracking->is_null() &&
      *analytics != *tracking) {
    return Status::InvalidArgument("analytics_storage is tracking under its Consent Mode name: they must agree",
                                   "consent.analytics_storage");
  }
  for (const auto& [key, value] : in.members()) {
    if (key == "updatedAt" || value.is_null()) continue;  // maintained by libcdp
    std::string field = "consent." + key;
    CDP_RETURN_IF_ERROR(CheckPurpose(key, "consent."));
    if (!value.is_bool()) return Status::InvalidArgument("expected a boolean (true: granted, false: denied)", field);
    out.Set(key == "analytics_storage" ? std::string("tracking") : key, value);
  }
  // "ads" and Consent Mode's advertising signals.
  bool any_signal = false, all_granted = true, any_denied = false;
  for (std::string_view s : kAdSignals) {
    const Json* v = out.Find(s);
    any_signal = any_signal || v != nullptr;
    all_granted = all_granted && v != nullptr && v->as_bool();
    any_denied = any_denied || (v != nullptr && !v->as_bool());
  }
  const Json* ads = out.Find("ads");
  if (!any_signal) {
    if (ads != nullptr) {
      const bool granted = ads->as_bool();
      for (std::string_view s : kAdSignals) out.Set(s, granted);
    }
  } else if (any_denied || all_granted) {
    if (ads != nullptr && ads->as_bool() != all_granted) {
      return Status::InvalidArgument(
          "ads is granted exactly when ad_storage, ad_user_data and ad_personalization all are", "consent.ads");
    }
    out.Set("ads", all_granted);
  } else if (ads != nullptr) {  // some signals granted, none denied, some unstated
    if (!ads->as_bool()) {
      return Status::InvalidArgument("ads is denied only when one of its signals is", "consent.ads");
    }
    for (std::string_view s : kAdSignals) {
      if (out.Find(s) == nullptr) out.Set(s, true);
    }
  }
  return out;
}

Status ExpandConsentPatch(Json* patch) {
  if (patch->is_null()) return Status::OK();
  if (!patch->is_object()) return Status::InvalidArgument("expected an object of purpose to boolean", "consent");
  if (const Json* analytics = patch->Find("analytics_storage"); analytics != nullptr) {
    const Json* tracking = patch->Find("tracking");
    if (tracking != nullptr && *tracking != *analytics) {
      return Status::InvalidArgument("analytics_storage is tracking under its Consent Mode name: they must agree",
                                     "consent.analytics_storage");
    }
    Json value = *analytics;
    patch->Erase("analytics_storage");
    patch->Set("tracking", std::move(value));
  }
  bool signal = false;
  for (std::string_view s : kAdSignals) signal = signal || patch->Find(s) != nullptr;
  if (const Json* ads = patch->Find("ads"); ads != nullptr) {
    Json value = *ads;
    for (std::string_view s : kAdSignals) {
      if (patch->Find(s) == nullptr) patch->Set(s, value);
    }
    if (signal) patch->Set("ads", Json());  // derived from the signals (which then must agree with it)
    if (signal && !value.is_null()) patch->Set("ads", value);
  } else if (signal) {
    patch->Set("ads", Json());
  }
  return Status::OK();
}

Json ConsentChanges(const Json* before, const Json* after) {
  Json changes = Json::Object();
  if (after != nullptr && after->is_object()) {
    for (const auto& [purpose, value] : after->members()) {
      if (purpose == "updatedAt") continue;
      const Json* was = before != nullptr && before->is_object() ? before->Find(purpose) : nullptr;
      if (was == nullptr || *was != value) changes.Set(purpose, value);
    }
  }
  if (before != nullptr && before->is_object()) {
    for (const auto& [purpose, value] : before->members()) {
      if (purpose == "updatedAt") continue;
      if (after == nullptr || !after->is_object() || after->Find(purpose) == nullptr) changes.Set(purpose, Json());
    }
  }
  return changes;
}

void DeriveAds(Json* consent) {
  bool any = false, all_granted = true, any_denied = false;
  for (std::string_view s : kAdSignals) {
    const Json* v = consent->Find(s);
    if (v == nullptr || !v->is_bool()) {
      all_granted = false;
      continue;
    }
    any = true;
    all_granted = all_granted && v->as_bool();
    any_denied = any_denied || !v->as_bool();
  }
  if (!any) return;
  if (any_denied || all_granted) {
    consent->Set("ads", all_granted);
  } else {
    consent->Erase("ads");
  }
}

bool TrackingDenied(const Json* consent) {
  const Json* tracking = consent != nullptr && consent->is_object() ? consent->Find("tracking") : nullptr;
  return tracking != nullptr && tracking->is_bool() && !tracking->as_bool();
}

Json ConsentModeOf(const Json& consent) {
  Json out = Json::Object();
  for (std::string_view signal : kConsentModeSignals) {
    const Json* v = consent.Find(signal == "analytics_storage" ? std::string_view("tracking") : signal);
    if (v != nullptr && v->is_bool()) out.Set(signal, v->as_bool() ? "granted" : "denied");
  }
  return out;
}

Result<ConsentRequest> ParseConsentRequest(const Json& request, int64_t now_us) {
  if (!request.is_object()) return Status::InvalidArgument("a consent request must be a JSON object");
  ConsentRequest out;
  Json given = Json::Object();  // purpose -> bool, as named
  out.at_us = now_us;
  for (const auto& [key, value] : request.members()) {
    if (value.is_null()) continue;
    if (key == "profileId") {
      CDP_RETURN_IF_ERROR(CheckString(value, key, 128));
      out.profile_id = value.as_string();
    } else if (key == "identifier") {
      const Json* type = value.is_object() ? value.Find("type") : nullptr;
      const Json* v = value.is_object() ? value.Find("value") : nullptr;
      if (type == nullptr || v == nullptr || value.size() != 2) {
        return Status::InvalidArgument("expected {\"type\", \"value\"}", key);
      }
      CDP_RETURN_IF_ERROR(CheckString(*type, "identifier.type", 64));
      CDP_RETURN_IF_ERROR(CheckString(*v, "identifier.value", 256));
      out.identifier_type = type->as_string();
      out.identifier_value = v->as_string();
    } else if (key == "purposes" || key == "consentMode") {
      if (!value.is_object()) return Status::InvalidArgument("expected an object", key);
      for (const auto& [purpose, grant] : value.members()) {
        const std::string field = key + "." + purpose;
        if (key == "consentMode" && std::find(std::begin(kConsentModeSignals), std::end(kConsentModeSignals),
                                              purpose) == std::end(kConsentModeSignals)) {
          return Status::InvalidArgument(
              "unknown Consent Mode signal (expected ad_storage, analytics_storage, ad_user_data, "
              "ad_personalization)",
              field);
        }
        CDP_RETURN_IF_ERROR(CheckPurpose(purpose, key + "."));
        CDP_ASSIGN_OR_RETURN(bool granted, ParseGrant(grant, field));
        const std::string name = purpose == "analytics_storage" ? "tracking" : purpose;
        if (const Json* before = given.Find(name); before != nullptr && before->as_bool() != granted) {
          return Status::InvalidArgument(fmt::format("{} is stated twice with different values", name), field);
        }
        given.Set(name, granted);
      }
    } else if (key == "source") {
      CDP_RETURN_IF_ERROR(CheckString(value, key, 128));
      out.source = value.as_string();
    } else if (key == "policyVersion") {
      CDP_RETURN_IF_ERROR(CheckString(value, key, kMaxPolicyVersionBytes));
      out.policy_version = value.as_string();
    } else if (key == "timestamp") {
      auto at = ParseTimestamp(value);
      if (!at.ok()) return Status::InvalidArgument(at.status().message(), key);
      if (*at > now_us + 300'000'000) {
        return Status::InvalidArgument("a consent statement cannot be more than 5 minutes in the future", key);
      }
      out.at_us = *at;
    } else {
      return Status::InvalidArgument(
          "unknown consent request field (expected profileId, identifier, purposes, consentMode, source, "
          "policyVersion, timestamp)",
          key);
    }
  }
  if (out.profile_id.empty() == out.identifier_type.empty()) {
    return Status::InvalidArgument("name the person by exactly one of profileId and identifier", "profileId");
  }
  if (given.size() == 0) return Status::InvalidArgument("state at least one purpose", "purposes");
  if (given.size() > kMaxPurposes) {
    return Status::InvalidArgument(fmt::format("more than {} purposes", kMaxPurposes), "purposes");
  }
  // "ads" stands for the advertising signals it is not given with; given with them it must agree. A signal given
  // without "ads" leaves "ads" to be derived when the statement is applied.
  CDP_RETURN_IF_ERROR(ExpandConsentPatch(&given));
  if (const Json* ads = given.Find("ads"); ads != nullptr && ads->is_null()) given.Erase("ads");
  if (const Json* ads = given.Find("ads"); ads != nullptr) {
    bool all = true;
    for (std::string_view s : kAdSignals) all = all && given.Find(s)->as_bool();
    if (ads->as_bool() != all) {
      return Status::InvalidArgument(
          "ads is granted exactly when ad_storage, ad_user_data and ad_personalization all are", "purposes.ads");
    }
  }
  out.purposes = std::move(given);
  return out;
}

Json ConsentRecordToJson(const ConsentRecord& record, std::string_view id) {
  Json out = Json::Object();
  out.Set("id", id);
  out.Set("profileId", record.profile_id);
  out.Set("purposes", record.purposes);
  out.Set("source", record.source);
  if (!record.policy_version.empty()) out.Set("policyVersion", record.policy_version);
  out.Set("at", FormatTimestamp(record.at_us));
  out.Set("recordedAt", FormatTimestamp(record.recorded_us));
  out.Set("via", record.via);
  if (!record.merge_id.empty()) out.Set("mergeId", record.merge_id);
  if (!record.superseded.empty()) {
    Json list = Json::Array();
    for (const std::string& p : record.superseded) list.Push(p);
    out.Set("superseded", std::move(list));
  }
  return out;
}

namespace {

int64_t RecordTime(const Json& record) {
  const Json* at = record.Find("at");
  auto t = at != nullptr ? ParseTimestamp(*at) : Result<int64_t>(Status::InvalidArgument("no time"));
  return t.ok() ? *t : 0;
}

bool Superseded(const Json& record, std::string_view purpose) {
  const Json* list = record.Find("superseded");
  if (list == nullptr) return false;
  for (const Json& p : list->items()) {
    if (p.is_string() && p.as_string() == purpose) return true;
  }
  return false;
}

}  // namespace

int64_t LatestStatementUs(const std::vector<Json>& history, std::string_view purpose) {
  int64_t latest = 0;
  for (const Json& record : history) {
    const Json* purposes = record.Find("purposes");
    if (purposes == nullptr || purposes->Find(purpose) == nullptr || Superseded(record, purpose)) continue;
    const Json* via = record.Find("via");
    if (via != nullptr && (via->as_string() == "merge" || via->as_string() == "unmerge")) continue;  // not stated
    latest = std::max(latest, RecordTime(record));
  }
  return latest;
}

Json ConsentState(const Json& consent, const std::vector<Json>& history) {
  Json out = Json::Object();
  for (const auto& [purpose, value] : consent.members()) {
    if (purpose == "updatedAt" || !value.is_bool()) continue;
    Json state = Json::Object();
    state.Set("granted", value.as_bool());
    const Json* best = nullptr;
    int64_t best_at = 0;
    for (const Json& record : history) {  // oldest recorded first: the later of equal times wins
      const Json* purposes = record.Find("purposes");
      const Json* v = purposes != nullptr ? purposes->Find(purpose) : nullptr;
      if (v == nullptr || *v != value || Superseded(record, purpose)) continue;
      const int64_t at = RecordTime(record);
      if (best == nullptr || at >= best_at) {
        best = &record;
        best_at = at;
      }
    }
    if (best != nullptr) {
      for (const char* key : {"at", "source", "policyVersion", "via", "mergeId"}) {
        if (const Json* v = best->Find(key); v != nullptr) state.Set(key, *v);
      }
      state.Set("recordId", *best->Find("id"));
    }
    out.Set(purpose, std::move(state));
  }
  return out;
}

}  // namespace cdp::internal
