// Copyright 2026 The libcdp Authors.

#include "identity/rules.h"

#include <phonenumbers/phonenumberutil.h>
#include <re2/re2.h>

#include <algorithm>
#include <set>

#include "fmt/format.h"
#include "identity/phone.h"

namespace cdp::internal {

namespace {

constexpr size_t kMaxValueBytes = 256;
constexpr size_t kMaxTypes = 64;
constexpr size_t kMaxBlocked = 256;
constexpr int kMaxLimit = 1000;
constexpr size_t kMaxSurvivorshipFields = 256;
constexpr size_t kMaxSources = 32;
constexpr size_t kMaxSourceBytes = 128;
constexpr size_t kMaxCustomFieldKeyBytes = 256;

// The attributes of the profile model (profiles/profile_model.cc) a survivorship rule may name.
constexpr std::string_view kStringAttributes[] = {"firstName", "lastName", "email",     "phone",
                                                  "country",   "city",     "postalCode"};
constexpr std::string_view kCustomFieldsPrefix = "attributes.customFields.";

struct RuleName {
  std::string_view name;
  SurvivorshipRule rule;
};
constexpr RuleName kRuleNames[] = {
    {"survivor", SurvivorshipRule::kSurvivor},
    {"first_non_empty", SurvivorshipRule::kFirstNonEmpty},
    {"most_recent", SurvivorshipRule::kMostRecent},
    {"oldest", SurvivorshipRule::kOldest},
    {"source_priority", SurvivorshipRule::kSourcePriority},
    {"max", SurvivorshipRule::kMax},
    {"min", SurvivorshipRule::kMin},
    {"sum", SurvivorshipRule::kSum},
    {"union", SurvivorshipRule::kUnion},
};

const std::vector<std::string_view> kBuiltinTypes = {"customerId", "email",    "phone",
                                                     "shopifyId",  "deviceId", "anonymousId"};

std::string_view Trim(std::string_view s) {
  auto space = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; };
  while (!s.empty() && space(s.front())) s.remove_prefix(1);
  while (!s.empty() && space(s.back())) s.remove_suffix(1);
  return s;
}

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
  return out;
}

bool IsRegex(std::string_view entry) { return entry.size() >= 2 && entry.front() == '^' && entry.back() == '$'; }

bool ValidTypeName(std::string_view name) {
  if (name.empty() || name.size() > 64) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
  });
}

Status FieldError(std::string message, std::string field) {
  return Status::InvalidArgument(std::move(message), std::move(field));
}

Result<std::vector<std::string>> StringArray(const Json& v, const std::string& field, size_t max_items) {
  if (!v.is_array()) return FieldError("expected an array of strings", field);
  if (v.size() > max_items) return FieldError(fmt::format("more than {} entries", max_items), field);
  std::vector<std::string> out;
  for (size_t i = 0; i < v.size(); ++i) {
    const Json& item = v.items()[i];
    std::string path = fmt::format("{}[{}]", field, i);
    if (!item.is_string() || item.as_string().empty() || item.as_string().size() > kMaxValueBytes) {
      return FieldError(fmt::format("expected a string of 1 to {} bytes", kMaxValueBytes), path);
    }
    out.push_back(item.as_string());
  }
  return out;
}

bool NormalizeEmail(std::string_view v, bool canonical_gmail, std::string* out, std::string* why) {
  std::string s = Lower(v);
  size_t at = s.find('@');
  if (at == std::string::npos || at == 0 || at + 1 == s.size() || s.find('@', at + 1) != std::string::npos) {
    *why = "not an email address (needs one '@' with text on both sides)";
    return false;
  }
  if (s.find_first_of(" \t,;<>()[]\\\"") != std::string::npos) {
    *why = "not an email address (holds a space or a forbidden character)";
    return false;
  }
  std::string_view domain = std::string_view(s).substr(at + 1);
  if (domain.find('.') == std::string_view::npos || domain.front() == '.' || domain.back() == '.') {
    *why = "not an email address (the domain needs a dot)";
    return false;
  }
  if (canonical_gmail && (domain == "gmail.com" || domain == "googlemail.com")) {
    std::string local = s.substr(0, at);
    local = local.substr(0, local.find('+'));
    local.erase(std::remove(local.begin(), local.end(), '.'), local.end());
    if (local.empty()) {
      *why = "not an email address (empty local part)";
      return false;
    }
    s = local + "@gmail.com";
  }
  *out = std::move(s);
  return true;
}

// E.164 form of a parsable number, valid or not (for comparing blocked literals such as 555-555-5555).
bool PhoneDigits(std::string_view v, const std::string& region, std::string* out) {
  PhoneParse parsed = ParsePhone(v, region);
  if (parsed.parsed) *out = std::move(parsed.e164);
  return parsed.parsed;
}

const FieldSurvivorship kUnionRule{SurvivorshipRule::kUnion, {}};

// One rule: "name" or {"rule": "name", "sources": [...]}.
Result<FieldSurvivorship> ParseFieldRule(const Json& v, const std::string& field) {
  const Json* name = &v;
  const Json* sources = nullptr;
  if (v.is_object()) {
    for (const auto& [key, value] : v.members()) {
      if (key != "rule" && key != "sources") {
        return FieldError("unknown member (expected rule, sources)", field + "." + key);
      }
    }
    name = v.Find("rule");
    sources = v.Find("sources");
    if (name == nullptr) return FieldError("a rule object needs a \"rule\"", field + ".rule");
  }
  const std::string name_field = v.is_object() ? field + ".rule" : field;
  FieldSurvivorship out;
  bool known = false;
  if (name->is_string()) {
    for (const RuleName& r : kRuleNames) {
      if (r.name == name->as_string()) {
        out.rule = r.rule;
        known = true;
      }
    }
  }
  if (!known) {
    return FieldError(
        "expected a rule: survivor, first_non_empty, most_recent, oldest, source_priority, max, min, sum, union, "
        "or {\"rule\": \"source_priority\", \"sources\": [...]}",
        name_field);
  }
  if (out.rule == SurvivorshipRule::kSourcePriority) {
    if (sources == nullptr) return FieldError("source_priority needs \"sources\", highest first", field + ".sources");
    CDP_ASSIGN_OR_RETURN(out.sources, StringArray(*sources, field + ".sources", kMaxSources));
    if (out.sources.empty()) return FieldError("expected at least one source", field + ".sources");
    for (size_t i = 0; i < out.sources.size(); ++i) {
      const std::string path = fmt::format("{}.sources[{}]", field, i);
      if (out.sources[i].size() > kMaxSourceBytes) {
        return FieldError(fmt::format("a source has at most {} bytes", kMaxSourceBytes), path);
      }
      if (std::find(out.sources.begin(), out.sources.begin() + static_cast<ptrdiff_t>(i), out.sources[i]) !=
          out.sources.begin() + static_cast<ptrdiff_t>(i)) {
        return FieldError("source listed twice", path);
      }
    }
  } else if (sources != nullptr) {
    return FieldError("only source_priority has sources", field + ".sources");
  }
  return out;
}

}  // namespace

std::string_view SurvivorshipRuleName(SurvivorshipRule rule) {
  for (const RuleName& r : kRuleNames) {
    if (r.rule == rule) return r.name;
  }
  return "survivor";
}

Json FieldSurvivorship::ToJson() const {
  if (rule != SurvivorshipRule::kSourcePriority) return Json(SurvivorshipRuleName(rule));
  Json list = Json::Array();
  for (const std::string& s : sources) list.Push(s);
  Json out = Json::Object();
  out.Set("rule", SurvivorshipRuleName(rule));
  out.Set("sources", std::move(list));
  return out;
}

const FieldSurvivorship& Survivorship::For(std::string_view path) const {
  for (const auto& [field, rule] : fields) {
    if (field == path) return rule;
  }
  return path == "attributes.tags" ? kUnionRule : default_rule;
}

Result<Survivorship> Survivorship::FromJson(const Json& json) {
  Survivorship out;
  if (json.is_null()) return out;
  if (!json.is_object()) return FieldError("expected an object {\"default\", \"fields\"}", "survivorship");
  for (const auto& [key, value] : json.members()) {
    if (key == "default") {
      CDP_ASSIGN_OR_RETURN(out.default_rule, ParseFieldRule(value, "survivorship.default"));
      switch (out.default_rule.rule) {
        case SurvivorshipRule::kMax:
        case SurvivorshipRule::kMin:
        case SurvivorshipRule::kSum:
        case SurvivorshipRule::kUnion:
          return FieldError(
              "the default applies to every field: survivor, first_non_empty, most_recent, oldest or "
              "source_priority (max, min, sum and union are per field)",
              value.is_object() ? "survivorship.default.rule" : "survivorship.default");
        default:
          break;
      }
    } else if (key == "fields") {
      if (!value.is_object()) return FieldError("expected an object of field path to rule", "survivorship.fields");
      if (value.size() > kMaxSurvivorshipFields) {
        return FieldError(fmt::format("more than {} fields", kMaxSurvivorshipFields), "survivorship.fields");
      }
      for (const auto& [path, rule_json] : value.members()) {
        const std::string field = fmt::format("survivorship.fields[\"{}\"]", path.substr(0, 300));
        bool string_attribute = false;
        for (std::string_view a : kStringAttributes) {
          string_attribute = string_attribute || path == fmt::format("attributes.{}", a);
        }
        const bool tags = path == "attributes.tags";
        const bool custom = path.starts_with(kCustomFieldsPrefix);
        if (custom && (path.size() == kCustomFieldsPrefix.size() ||
                       path.size() - kCustomFieldsPrefix.size() > kMaxCustomFieldKeyBytes)) {
          return FieldError(fmt::format("a customFields key has 1 to {} bytes", kMaxCustomFieldKeyBytes), field);
        }
        if (!string_attribute && !tags && !custom) {
          return FieldError(
              "not a profile attribute (attributes.firstName, lastName, email, phone, country, city, postalCode, "
              "tags, or attributes.customFields.<key>)",
              field);
        }
        for (const auto& [seen, unused] : out.fields) {
          if (seen == path) return FieldError("field listed twice", field);
        }
        CDP_ASSIGN_OR_RETURN(FieldSurvivorship rule, ParseFieldRule(rule_json, field));
        const std::string rule_field = rule_json.is_object() ? field + ".rule" : field;
        const bool numeric = rule.rule == SurvivorshipRule::kMax || rule.rule == SurvivorshipRule::kMin ||
                             rule.rule == SurvivorshipRule::kSum;
        if (numeric && !custom) {
          return FieldError(fmt::format("{} applies to numbers: only attributes.customFields.<key> hold numbers",
                                        SurvivorshipRuleName(rule.rule)),
                            rule_field);
        }
        if (rule.rule == SurvivorshipRule::kUnion && string_attribute) {
          return FieldError("union applies to lists: attributes.tags or attributes.customFields.<key>", rule_field);
        }
        out.fields.emplace_back(path, std::move(rule));
      }
    } else {
      return FieldError("unknown member (expected default, fields)", "survivorship." + key);
    }
  }
  return out;
}

Json Survivorship::ToJson() const {
  Json list = Json::Object();
  for (const auto& [path, rule] : fields) list.Set(path, rule.ToJson());
  Json out = Json::Object();
  out.Set("default", default_rule.ToJson());
  out.Set("fields", std::move(list));
  return out;
}

Json IgnoredIdentifier::ToJson() const {
  Json out = Json::Object();
  out.Set("type", type);
  out.Set("value", value);
  out.Set("reason", reason);
  return out;
}

const std::vector<std::string_view>& IdentityRules::BuiltinTypes() { return kBuiltinTypes; }

IdentityRules::~IdentityRules() = default;

std::shared_ptr<const IdentityRules> IdentityRules::Defaults() {
  static const std::shared_ptr<const IdentityRules> defaults = [] {
    Json types = Json::Array();
    for (std::string_view t : kBuiltinTypes) types.Push(Json::Object().Set("type", t));
    auto compiled = FromJson(Json::Object().Set("identifiers", std::move(types)));  // every other member defaults
    return compiled.ok() ? std::move(compiled).value() : nullptr;  // the defaults always compile (tested)
  }();
  return defaults;
}

Result<std::shared_ptr<const IdentityRules>> IdentityRules::FromJson(const Json& rules) {
  if (!rules.is_object()) return Status::InvalidArgument("identity rules must be a JSON object");
  std::shared_ptr<IdentityRules> out(new IdentityRules());
  for (const auto& [key, value] : rules.members()) {
    if (key != "identifiers" && key != "blocked" && key != "hub" && key != "survivorship") {
      return FieldError("unknown member (expected identifiers, blocked, hub, survivorship)", key);
    }
  }
  const Json* types = rules.Find("identifiers");
  if (types == nullptr || !types->is_array() || types->size() == 0) {
    return FieldError("expected a non-empty array of identifier type rules", "identifiers");
  }
  if (types->size() > kMaxTypes) return FieldError(fmt::format("more than {} types", kMaxTypes), "identifiers");
  for (size_t i = 0; i < types->size(); ++i) {
    const Json& t = types->items()[i];
    const std::string path = fmt::format("identifiers[{}]", i);
    if (!t.is_object()) return FieldError("expected an object", path);
    IdentifierTypeRule rule;
    bool has_limit = false, has_region = false, has_blocked = false;
    for (const auto& [key, value] : t.members()) {
      const std::string field = path + "." + key;
      if (key == "type") {
        if (!value.is_string() || !ValidTypeName(value.as_string())) {
          return FieldError("expected a type name of 1 to 64 characters [A-Za-z0-9_]", field);
        }
        rule.type = value.as_string();
      } else if (key == "limit") {
        if (!value.is_int() || value.as_int() < 1 || value.as_int() > kMaxLimit) {
          return FieldError(fmt::format("expected an integer from 1 to {}", kMaxLimit), field);
        }
        rule.limit = static_cast<int>(value.as_int());
        has_limit = true;
      } else if (key == "canonicalGmail") {
        if (!value.is_bool()) return FieldError("expected true or false", field);
        rule.canonical_gmail = value.as_bool();
      } else if (key == "defaultRegion") {
        if (!value.is_string()) return FieldError("expected a region code such as \"US\"", field);
        rule.default_region = value.as_string();
        has_region = true;
        const auto& regions = [] {
          std::set<std::string> r;
          i18n::phonenumbers::PhoneNumberUtil::GetInstance()->GetSupportedRegions(&r);
          return r;
        }();
        if (!rule.default_region.empty() && !regions.contains(rule.default_region)) {
          return FieldError(fmt::format("unknown region \"{}\" (expected an ISO 3166 code such as \"US\")",
                                        rule.default_region.substr(0, 16)),
                            field);
        }
      } else if (key == "blocked") {
        CDP_ASSIGN_OR_RETURN(rule.blocked, StringArray(value, field, kMaxBlocked));
        has_blocked = true;
      } else {
        return FieldError("unknown member (expected type, limit, canonicalGmail, defaultRegion, blocked)", field);
      }
    }
    if (rule.type.empty()) return FieldError("a type rule needs a \"type\"", path + ".type");
    if (out->Priority(rule.type) >= 0) return FieldError("type listed twice", path + ".type");
    if (rule.canonical_gmail && rule.type != "email") {
      return FieldError("only the email type has canonicalGmail", path + ".canonicalGmail");
    }
    if (has_region && rule.type != "phone") {
      return FieldError("only the phone type has defaultRegion", path + ".defaultRegion");
    }
    // Members left out take their defaults; an explicit empty value ("blocked": [], "defaultRegion": "") clears.
    if (!has_limit) rule.limit = rule.type == "customerId" ? 1 : 5;
    if (!has_region && rule.type == "phone") rule.default_region = "US";
    if (!has_blocked && rule.type == "email") rule.blocked = {"test@test.com"};
    if (!has_blocked && rule.type == "phone") rule.blocked = {"555-555-5555"};
    out->types_.push_back(std::move(rule));
  }
  for (std::string_view builtin : kBuiltinTypes) {
    if (out->Priority(builtin) < 0) {
      return FieldError(fmt::format("the built-in type {} is missing (list every built-in type)", builtin),
                        "identifiers");
    }
  }
  if (const Json* blocked = rules.Find("blocked"); blocked != nullptr) {
    CDP_ASSIGN_OR_RETURN(out->blocked_, StringArray(*blocked, "blocked", kMaxBlocked));
  } else {
    out->blocked_ = {"^[0-]*$", "-1", "null", "undefined", "anonymous"};
  }
  out->high_priority_types_ = {"customerId", "email"};  // hub.highPriorityTypes when left out
  if (const Json* hub = rules.Find("hub"); hub != nullptr) {
    if (!hub->is_object()) return FieldError("expected an object", "hub");
    for (const auto& [key, value] : hub->members()) {
      if (key == "threshold") {
        if (!value.is_int() || value.as_int() < 1 || value.as_int() > 10000) {
          return FieldError("expected an integer from 1 to 10000", "hub.threshold");
        }
        out->hub_threshold_ = static_cast<int>(value.as_int());
      } else if (key == "highPriorityTypes") {
        CDP_ASSIGN_OR_RETURN(out->high_priority_types_, StringArray(value, "hub.highPriorityTypes", kMaxTypes));
        for (size_t i = 0; i < out->high_priority_types_.size(); ++i) {
          if (out->Priority(out->high_priority_types_[i]) < 0) {
            return FieldError("not a type of identifiers", fmt::format("hub.highPriorityTypes[{}]", i));
          }
        }
      } else {
        return FieldError("unknown member (expected threshold, highPriorityTypes)", "hub." + key);
      }
    }
  }
  if (const Json* survivorship = rules.Find("survivorship"); survivorship != nullptr) {
    CDP_ASSIGN_OR_RETURN(out->survivorship_, Survivorship::FromJson(*survivorship));
  }
  // Compile every regex once.
  auto compile = [&](const std::string& entry, const std::string& field) -> Status {
    if (!IsRegex(entry)) return Status::OK();
    for (const auto& [text, re] : out->regexes_) {
      if (text == entry) return Status::OK();
    }
    RE2::Options options;
    options.set_log_errors(false);
    options.set_case_sensitive(false);
    auto re = std::make_unique<RE2>(entry, options);
    if (!re->ok()) return FieldError(fmt::format("not a valid regular expression: {}", re->error()), field);
    out->regexes_.emplace_back(entry, std::move(re));
    return Status::OK();
  };
  for (size_t i = 0; i < out->blocked_.size(); ++i) {
    CDP_RETURN_IF_ERROR(compile(out->blocked_[i], fmt::format("blocked[{}]", i)));
  }
  for (size_t t = 0; t < out->types_.size(); ++t) {
    for (size_t i = 0; i < out->types_[t].blocked.size(); ++i) {
      CDP_RETURN_IF_ERROR(compile(out->types_[t].blocked[i], fmt::format("identifiers[{}].blocked[{}]", t, i)));
    }
  }
  // Prepare every type's blocked entries once.
  for (const IdentifierTypeRule& rule : out->types_) {
    std::vector<BlockedEntry> entries;
    auto add = [&](const std::string& entry) {
      BlockedEntry b{&entry, nullptr, {}, {}};
      if (IsRegex(entry)) {
        for (const auto& [text, re] : out->regexes_) {
          if (text == entry) b.regex = re.get();
        }
        b.ranged = b.regex != nullptr && b.regex->PossibleMatchRange(&b.min, &b.max, /*maxlen=*/32);
      } else {
        b.lower = Lower(entry);
        std::string why;
        if (rule.type == "email" && !NormalizeEmail(entry, rule.canonical_gmail, &b.normalized, &why)) {
          b.normalized.clear();
        }
        if (rule.type == "phone" && !PhoneDigits(entry, rule.default_region, &b.normalized)) b.normalized.clear();
      }
      entries.push_back(std::move(b));
    };
    for (const std::string& entry : out->blocked_) add(entry);
    for (const std::string& entry : rule.blocked) add(entry);
    out->blocked_by_type_.push_back(std::move(entries));
  }
  return std::shared_ptr<const IdentityRules>(std::move(out));
}

Json IdentityRules::ToJson() const {
  Json types = Json::Array();
  for (const IdentifierTypeRule& r : types_) {
    Json rule = Json::Object();
    rule.Set("type", r.type);
    rule.Set("limit", r.limit);
    if (r.type == "email") rule.Set("canonicalGmail", r.canonical_gmail);
    if (r.type == "phone") rule.Set("defaultRegion", r.default_region);
    if (!r.blocked.empty()) {
      Json blocked = Json::Array();
      for (const std::string& b : r.blocked) blocked.Push(b);
      rule.Set("blocked", std::move(blocked));
    }
    types.Push(std::move(rule));
  }
  Json blocked = Json::Array();
  for (const std::string& b : blocked_) blocked.Push(b);
  Json high = Json::Array();
  for (const std::string& t : high_priority_types_) high.Push(t);
  Json hub = Json::Object();
  hub.Set("threshold", hub_threshold_);
  hub.Set("highPriorityTypes", std::move(high));
  Json out = Json::Object();
  out.Set("identifiers", std::move(types));
  out.Set("blocked", std::move(blocked));
  out.Set("hub", std::move(hub));
  out.Set("survivorship", survivorship_.ToJson());
  return out;
}

int IdentityRules::Priority(std::string_view type) const {
  for (size_t i = 0; i < types_.size(); ++i) {
    if (types_[i].type == type) return static_cast<int>(i);
  }
  return -1;
}

const IdentifierTypeRule* IdentityRules::Rule(std::string_view type) const {
  int p = Priority(type);
  return p < 0 ? nullptr : &types_[p];
}

bool IdentityRules::IsHighPriority(std::string_view type) const {
  return std::find(high_priority_types_.begin(), high_priority_types_.end(), type) != high_priority_types_.end();
}

namespace {

char AsciiLower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

// Whether Lower(s) == lower, without building Lower(s).
bool EqualsLowered(std::string_view lower, std::string_view s) {
  if (lower.size() != s.size()) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    if (lower[i] != AsciiLower(s[i])) return false;
  }
  return true;
}

// Whether a and b differ at most in the case of ASCII letters (Lower(a) == Lower(b)).
bool EqualsIgnoringAsciiCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (AsciiLower(a[i]) != AsciiLower(b[i])) return false;
  }
  return true;
}

// The ignored identifier's record: its type, its value (cut at kMaxValueBytes) and why.
bool Ignore(std::string_view type, std::string_view v, std::string reason, IgnoredIdentifier* ignored) {
  ignored->type = std::string(type);
  ignored->value = std::string(v.substr(0, kMaxValueBytes));
  ignored->reason = std::move(reason);
  return false;
}

}  // namespace

const std::string* IdentityRules::BlockedBy(const IdentifierTypeRule& rule, std::string_view raw,
                                            std::string_view value) const {
  const size_t t = static_cast<size_t>(&rule - types_.data());
  if (t >= blocked_by_type_.size()) return nullptr;
  // Regexes are case-insensitive, so when the value is the raw text up to case (every type but phone, usually),
  // one match answers for both. Literals are compared lower-cased, without building the lower-cased copies.
  const bool same = EqualsIgnoringAsciiCase(raw, value);
  for (const BlockedEntry& b : blocked_by_type_[t]) {
    if (b.regex != nullptr) {
      auto matches = [&b](std::string_view s) {
        return (!b.ranged || (s >= b.min && s <= b.max)) && RE2::FullMatch(s, *b.regex);
      };
      if (matches(raw) || (!same && matches(value))) return b.entry;
    } else if (EqualsLowered(b.lower, raw) || EqualsLowered(b.lower, value) ||
               (!b.normalized.empty() && b.normalized == value)) {
      return b.entry;
    }
  }
  return nullptr;
}

bool IdentityRules::Normalize(std::string_view type, std::string_view raw, Identifier* out,
                              IgnoredIdentifier* ignored) const {
  // *ignored is filled only when the value is ignored: a normalized value allocates nothing it does not return.
  std::string_view v = Trim(raw);
  const IdentifierTypeRule* rule = Rule(type);
  if (rule == nullptr) return Ignore(type, v, "unknown type (not in the identity rules)", ignored);
  if (v.empty()) return Ignore(type, v, "invalid: empty", ignored);
  if (v.size() > kMaxValueBytes) {
    return Ignore(type, v, fmt::format("invalid: longer than {} bytes", kMaxValueBytes), ignored);
  }
  if (std::any_of(v.begin(), v.end(), [](char c) { return static_cast<unsigned char>(c) < 0x20; })) {
    return Ignore(type, v, "invalid: holds a control character", ignored);
  }
  std::string value, why;
  if (type == "email") {
    if (!NormalizeEmail(v, rule->canonical_gmail, &value, &why)) return Ignore(type, v, "invalid: " + why, ignored);
  } else if (type == "phone") {
    // Parsed once. A blocked literal such as 555-555-5555 is not a valid number: blocking is checked on the
    // E.164 digits before validity.
    const std::string& region = rule->default_region;
    PhoneParse number = ParsePhone(v, region);
    std::string digits = number.parsed ? std::move(number.e164) : std::string(v);
    if (const std::string* entry = BlockedBy(*rule, v, digits); entry != nullptr) {
      return Ignore(type, v, "blocked: " + *entry, ignored);
    }
    if (!number.parsed) {
      return Ignore(type, v,
                    region.empty() ? "invalid: not a phone number (no country code and no default region)"
                                   : "invalid: not a phone number",
                    ignored);
    }
    if (!number.valid) return Ignore(type, v, "invalid: not a valid phone number for its region", ignored);
    value = std::move(digits);
  } else {
    value = std::string(v);
  }
  if (const std::string* entry = BlockedBy(*rule, v, value); entry != nullptr) {
    return Ignore(type, v, "blocked: " + *entry, ignored);
  }
  out->type = std::string(type);
  out->value = std::move(value);
  return true;
}

std::string CanonicalGmail(std::string_view email) {
  std::string out, why;
  if (!NormalizeEmail(email, /*canonical_gmail=*/true, &out, &why)) return std::string(email);
  return out;
}

}  // namespace cdp::internal
