// Copyright 2026 The libcdp Authors.

#include "privacy/governance_model.h"

#include <algorithm>
#include <utility>

namespace cdp::internal {
namespace {

void AppendPiece(std::string* out, std::string_view s) { out->append(s); }
void AppendPiece(std::string* out, size_t n) { out->append(std::to_string(n)); }
// Concatenation of strings and sizes (absl::StrCat takes Abseil's own string_view here).
template <typename... A>
std::string Cat(const A&... pieces) {
  std::string out;
  (AppendPiece(&out, pieces), ...);
  return out;
}

constexpr std::string_view kBuiltinClasses[] = {"public", "internal", "pii", "sensitive"};
constexpr std::string_view kFallbackClass = "pii";
constexpr std::string_view kAdminRole = "admin";

// The first segment of every classifiable path.
constexpr std::string_view kTopLevel[] = {"id",        "externalIds",      "attributes", "computed",  "consent",
                                          "segments",  "identityIssues",   "conflicts",  "mergedIds", "createdAt",
                                          "updatedAt", "attributeSources", "events",     "sessions"};

constexpr std::pair<std::string_view, std::string_view> kDefaultClassification[] = {
    {"id", "public"},
    {"createdAt", "public"},
    {"updatedAt", "public"},
    {"segments", "internal"},
    {"mergedIds", "internal"},
    {"externalIds", "pii"},
    {"attributes", "pii"},
    {"attributes.country", "internal"},
    {"attributes.tags", "internal"},
    {"attributes.customFields", "pii"},
    {"computed", "internal"},
    {"consent", "internal"},
    {"identityIssues", "pii"},
    {"conflicts", "pii"},
    {"attributeSources", "internal"},
    {"events", "internal"},
    {"events.email", "pii"},
    {"events.phone", "pii"},
    {"events.customerId", "pii"},
    {"events.userId", "pii"},
    {"events.anonymousId", "pii"},
    {"events.shopifyId", "pii"},
    {"events.deviceId", "pii"},
    {"events.identifiers", "pii"},
    {"sessions", "internal"},
    {"sessions.deviceId", "pii"},
    {"sessions.userAgent", "pii"},
    {"sessions.ip", "pii"},
};

constexpr size_t kMaxClasses = 32;
constexpr size_t kMaxClassification = 1000;
constexpr size_t kMaxRoles = 100;
constexpr size_t kMaxPrincipals = 10000;
constexpr size_t kMaxGrants = 1000;

bool IsLowerName(std::string_view s, size_t max) {
  if (s.empty() || s.size() > max || s[0] < 'a' || s[0] > 'z') return false;
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-'; });
}

bool IsPrincipalName(std::string_view s) {
  if (s.empty() || s.size() > 128) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.' ||
           c == ':' || c == '@' || c == '-';
  });
}

// A dotted path of non-empty segments of [A-Za-z0-9_-], at most 256 bytes, under a known top-level member.
Status CheckPath(std::string_view path, const std::string& field) {
  if (path.empty() || path.size() > 256) return Status::InvalidArgument("a field path of 1 to 256 bytes", field);
  size_t start = 0;
  while (true) {
    size_t dot = path.find('.', start);
    std::string_view seg = path.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start);
    if (seg.empty() || !std::all_of(seg.begin(), seg.end(), [](char c) {
          return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
        })) {
      return Status::InvalidArgument("a dotted field path of [A-Za-z0-9_-] segments", field);
    }
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  std::string_view top = path.substr(0, path.find('.'));
  if (std::find(std::begin(kTopLevel), std::end(kTopLevel), top) == std::end(kTopLevel)) {
    return Status::InvalidArgument(
        Cat("unknown field '", top, "' (a profile field, or events.<field> or sessions.<field>)"), field);
  }
  return Status::OK();
}

void AddBranchPoints(std::string_view path, absl::flat_hash_set<std::string>* out) {
  for (size_t dot = path.find('.'); dot != std::string_view::npos; dot = path.find('.', dot + 1)) {
    out->emplace(std::string(path.substr(0, dot)));
  }
}

std::string_view Parent(std::string_view path) {
  size_t dot = path.rfind('.');
  return dot == std::string_view::npos ? std::string_view() : path.substr(0, dot);
}

// Reads an array of strings at json[key] (absent: empty), each checked by `check`.
template <typename Check>
Status ReadStrings(const Json& json, std::string_view key, const std::string& field, Check check,
                   std::set<std::string>* out) {
  const Json* v = json.Find(key);
  if (v == nullptr || v->is_null()) return Status::OK();
  std::string here = Cat(field, ".", key);
  if (!v->is_array()) return Status::InvalidArgument("must be an array of strings", here);
  if (v->size() > kMaxGrants) return Status::InvalidArgument("at most 1000 items", here);
  for (size_t i = 0; i < v->items().size(); ++i) {
    const Json& item = v->items()[i];
    std::string at = Cat(here, "[", i, "]");
    if (!item.is_string()) return Status::InvalidArgument("must be a string", at);
    if (Status s = check(item.as_string(), at); !s.ok()) return s;
    out->insert(item.as_string());
  }
  return Status::OK();
}

Json StringArray(const std::set<std::string>& values) {
  Json out = Json::Array();
  for (const std::string& v : values) out.Push(Json(v));
  return out;
}

}  // namespace

std::shared_ptr<const GovernancePolicy> GovernancePolicy::Defaults() {
  static const std::shared_ptr<const GovernancePolicy> defaults = *FromJson(Json::Object());
  return defaults;
}

Result<std::shared_ptr<const GovernancePolicy>> GovernancePolicy::FromJson(const Json& json) {
  if (!json.is_object()) return Status::InvalidArgument("the policy must be a JSON object");
  for (const auto& [key, value] : json.members()) {
    if (key != "classes" && key != "classification" && key != "roles" && key != "principals") {
      return Status::InvalidArgument("unknown member (expected classes, classification, roles, principals)", key);
    }
  }
  auto policy = std::make_shared<GovernancePolicy>();
  Json stored = Json::Object();

  // Classes: the built-in four, then the policy's own.
  for (std::string_view c : kBuiltinClasses) policy->classes_.emplace_back(c);
  if (const Json* classes = json.Find("classes"); classes != nullptr && !classes->is_null()) {
    if (!classes->is_array()) return Status::InvalidArgument("must be an array of class names", "classes");
    Json kept = Json::Array();
    for (size_t i = 0; i < classes->items().size(); ++i) {
      const Json& c = classes->items()[i];
      std::string at = Cat("classes[", i, "]");
      if (!c.is_string() || !IsLowerName(c.as_string(), 32)) {
        return Status::InvalidArgument("a class name of 1-32 characters [a-z0-9_-] starting with a letter", at);
      }
      if (policy->IsClass(c.as_string())) continue;  // a built-in one, or given twice
      if (policy->classes_.size() >= kMaxClasses) return Status::InvalidArgument("at most 32 classes", "classes");
      policy->classes_.push_back(c.as_string());
      kept.Push(c);
    }
    stored.Set("classes", std::move(kept));
  }

  // Classification: defaults, overlaid by the policy's.
  for (const auto& [path, cls] : kDefaultClassification) policy->classification_.emplace(path, cls);
  if (const Json* classification = json.Find("classification");
      classification != nullptr && !classification->is_null()) {
    if (!classification->is_object()) {
      return Status::InvalidArgument("must be an object of field path -> class", "classification");
    }
    if (classification->size() > kMaxClassification) {
      return Status::InvalidArgument("at most 1000 classified paths", "classification");
    }
    for (const auto& [path, cls] : classification->members()) {
      std::string at = Cat("classification.", path);
      CDP_RETURN_IF_ERROR(CheckPath(path, at));
      if (path == "id" || path == "events.id" || path == "events.profileId") {
        if (path == "id" && cls.is_string() && cls.as_string() == "public") continue;  // the default, as shown
        return Status::InvalidArgument("always readable (documents keep their ids): cannot be classified", at);
      }
      if (!cls.is_string() || !policy->IsClass(cls.as_string())) {
        return Status::InvalidArgument("must name a class of the policy", at);
      }
      policy->classification_[path] = cls.as_string();
    }
    stored.Set("classification", *classification);
  }
  for (const auto& [path, cls] : policy->classification_) AddBranchPoints(path, &policy->branch_points_);

  // Roles.
  Role admin;
  admin.operations.insert("admin");
  policy->roles_.emplace(kAdminRole, std::move(admin));
  if (const Json* roles = json.Find("roles"); roles != nullptr && !roles->is_null()) {
    if (!roles->is_object()) return Status::InvalidArgument("must be an object of role name -> role", "roles");
    if (roles->size() > kMaxRoles) return Status::InvalidArgument("at most 100 roles", "roles");
    for (const auto& [name, def] : roles->members()) {
      std::string at = Cat("roles.", name);
      if (!IsLowerName(name, 64)) {
        return Status::InvalidArgument("a role name of 1-64 characters [a-z0-9_-] starting with a letter", at);
      }
      if (name == kAdminRole) {  // as Policy() shows it: accepted unchanged, refused otherwise
        const Json builtin =
            Json::Parse(R"({"read":[],"write":[],"readFields":[],"writeFields":[],"operations":["admin"]})").value();
        if (def == builtin) continue;
        return Status::InvalidArgument("the role 'admin' is built in", at);
      }
      if (!def.is_object()) return Status::InvalidArgument("must be an object", at);
      for (const auto& [key, value] : def.members()) {
        if (key != "read" && key != "write" && key != "readFields" && key != "writeFields" && key != "operations" &&
            key != "description") {
          return Status::InvalidArgument(
              "unknown member (expected read, write, readFields, writeFields, operations, description)",
              Cat(at, ".", key));
        }
      }
      Role role;
      auto is_class = [&](const std::string& c, const std::string& f) {
        return policy->IsClass(c) ? Status::OK() : Status::InvalidArgument("not a class of the policy", f);
      };
      auto is_operation = [](const std::string& op, const std::string& f) {
        return std::find(std::begin(kOperations), std::end(kOperations), op) != std::end(kOperations)
                   ? Status::OK()
                   : Status::InvalidArgument("unknown operation (expected export, erase, audit, admin)", f);
      };
      CDP_RETURN_IF_ERROR(ReadStrings(def, "read", at, is_class, &role.read));
      CDP_RETURN_IF_ERROR(ReadStrings(def, "write", at, is_class, &role.write));
      CDP_RETURN_IF_ERROR(ReadStrings(def, "readFields", at, CheckPath, &role.read_fields));
      CDP_RETURN_IF_ERROR(ReadStrings(def, "writeFields", at, CheckPath, &role.write_fields));
      CDP_RETURN_IF_ERROR(ReadStrings(def, "operations", at, is_operation, &role.operations));
      if (const Json* d = def.Find("description"); d != nullptr && !(d->is_string() && d->as_string().size() <= 4096)) {
        return Status::InvalidArgument("a string of at most 4 KiB", at + ".description");
      }
      policy->roles_.emplace(name, std::move(role));
    }
    stored.Set("roles", *roles);
  }

  // Principals.
  for (std::string_view p : kBuiltinPrincipals) policy->principals_[std::string(p)] = {std::string(kAdminRole)};
  if (const Json* principals = json.Find("principals"); principals != nullptr && !principals->is_null()) {
    if (!principals->is_object()) {
      return Status::InvalidArgument("must be an object of principal name -> {\"roles\": [...]}", "principals");
    }
    if (principals->size() > kMaxPrincipals) return Status::InvalidArgument("at most 10,000 principals", "principals");
    for (const auto& [name, def] : principals->members()) {
      std::string at = Cat("principals.", name);
      if (!IsPrincipalName(name)) {
        return Status::InvalidArgument("a principal name of 1-128 characters [A-Za-z0-9_.:@-]", at);
      }
      if (std::find(std::begin(kBuiltinPrincipals), std::end(kBuiltinPrincipals), name) !=
          std::end(kBuiltinPrincipals)) {
        const Json* roles = def.is_object() ? def.Find("roles") : nullptr;
        if (roles != nullptr && def.size() == 1 && *roles == Json::Parse(R"(["admin"])").value()) continue;
        return Status::InvalidArgument("this principal is built in", at);
      }
      if (!def.is_object()) return Status::InvalidArgument("must be an object {\"roles\": [...]}", at);
      for (const auto& [key, value] : def.members()) {
        if (key != "roles" && key != "description") {
          return Status::InvalidArgument("unknown member (expected roles, description)", Cat(at, ".", key));
        }
      }
      std::set<std::string> role_names;
      auto is_role = [&](const std::string& r, const std::string& f) {
        return policy->roles_.contains(r) ? Status::OK() : Status::InvalidArgument("not a role of the policy", f);
      };
      CDP_RETURN_IF_ERROR(ReadStrings(def, "roles", at, is_role, &role_names));
      policy->principals_[name] = std::vector<std::string>(role_names.begin(), role_names.end());
    }
    stored.Set("principals", *principals);
  }
  policy->stored_ = std::move(stored);
  return std::shared_ptr<const GovernancePolicy>(std::move(policy));
}

Json GovernancePolicy::ToJson() const {
  Json classes = Json::Array();
  for (const std::string& c : classes_) classes.Push(Json(c));
  std::map<std::string, std::string> sorted(classification_.begin(), classification_.end());
  Json classification = Json::Object();
  for (const auto& [path, cls] : sorted) classification.Set(path, Json(cls));
  Json roles = Json::Object();
  for (const auto& [name, role] : roles_) {
    roles.Set(name, Json::Object()
                        .Set("read", StringArray(role.read))
                        .Set("write", StringArray(role.write))
                        .Set("readFields", StringArray(role.read_fields))
                        .Set("writeFields", StringArray(role.write_fields))
                        .Set("operations", StringArray(role.operations)));
  }
  Json principals = Json::Object();
  for (const auto& [name, role_names] : principals_) {
    principals.Set(name, Json::Object().Set("roles", StringArray({role_names.begin(), role_names.end()})));
  }
  return Json::Object()
      .Set("classes", std::move(classes))
      .Set("classification", std::move(classification))
      .Set("roles", std::move(roles))
      .Set("principals", std::move(principals));
}

std::string_view GovernancePolicy::ClassOf(std::string_view path) const {
  for (std::string_view p = path; !p.empty(); p = Parent(p)) {
    if (auto it = classification_.find(Av(p)); it != classification_.end()) return it->second;
  }
  return kFallbackClass;
}

bool GovernancePolicy::IsClass(std::string_view name) const {
  return std::find(classes_.begin(), classes_.end(), name) != classes_.end();
}

std::vector<std::string> GovernancePolicy::KeysBelow(std::string_view path) const {
  std::vector<std::string> out;
  for (const auto& [key, cls] : classification_) {
    if (key.size() > path.size() && key[path.size()] == '.' && std::string_view(key).starts_with(path)) {
      out.push_back(key);
    }
  }
  return out;
}

std::string ExternalIdsPath(std::string_view type) {
  if (type == "deviceId") return "externalIds.deviceIds";
  if (type == "userId") return "externalIds.customerId";
  return Cat("externalIds.", type);
}

const std::vector<std::string>* GovernancePolicy::RolesOf(std::string_view principal) const {
  auto it = principals_.find(std::string(principal));
  return it == principals_.end() ? nullptr : &it->second;
}

const Role* GovernancePolicy::FindRole(std::string_view name) const {
  auto it = roles_.find(std::string(name));
  return it == roles_.end() ? nullptr : &it->second;
}

// ---- Access ---------------------------------------------------------------------------------------------------------

std::shared_ptr<const Access> Access::Compile(std::shared_ptr<const GovernancePolicy> policy,
                                              std::string_view principal) {
  auto access = std::make_shared<Access>();
  access->principal_ = std::string(principal);
  if (const std::vector<std::string>* roles = policy->RolesOf(principal); roles != nullptr) {
    access->defined_ = true;
    access->roles_ = *roles;
    for (const std::string& name : *roles) {
      const Role* role = policy->FindRole(name);
      if (role == nullptr) continue;
      access->read_classes_.insert(role->read.begin(), role->read.end());
      access->write_classes_.insert(role->write.begin(), role->write.end());
      access->read_fields_.insert(role->read_fields.begin(), role->read_fields.end());
      access->write_fields_.insert(role->write_fields.begin(), role->write_fields.end());
      access->operations_.insert(role->operations.begin(), role->operations.end());
    }
    access->admin_ = access->operations_.contains("admin");
  }
  for (const std::string& f : access->read_fields_) AddBranchPoints(f, &access->field_branch_points_);
  for (const std::string& f : access->write_fields_) AddBranchPoints(f, &access->field_branch_points_);
  access->policy_ = std::move(policy);
  if (access->defined_ && !access->admin_) {
    for (const DerivedField& d : DerivedFields()) {
      if (access->read_fields_.contains(Av(d.path))) continue;  // granted by name
      for (std::string_view source : d.sources) {
        if (!access->Allows(source, access->read_classes_, access->read_fields_)) {
          access->derived_denied_.emplace(d.path);
          AddBranchPoints(d.path, &access->field_branch_points_);  // Filter looks inside its parent
          break;
        }
      }
    }
  }
  return access;
}

const std::vector<DerivedField>& DerivedFields() {
  static const std::vector<DerivedField>* fields = [] {
    const std::vector<std::string_view> value = {"events.properties.revenue", "events.properties.total",
                                                 "events.properties.value"};
    return new std::vector<DerivedField>{{"computed.ltv", value}, {"computed.aov", value}, {"computed.rfm", value}};
  }();
  return *fields;
}

bool Access::Allows(std::string_view path, const absl::flat_hash_set<std::string>& classes,
                    const absl::flat_hash_set<std::string>& fields) const {
  if (!defined_) return false;
  if (!fields.empty()) {
    for (std::string_view p = path; !p.empty(); p = Parent(p)) {
      if (fields.contains(Av(p))) return true;
    }
  }
  return classes.contains(Av(policy_->ClassOf(path)));
}

bool Access::HasBelow(std::string_view path) const {
  return policy_->HasRuleBelow(path) || field_branch_points_.contains(Av(path));
}

Status Access::Require(std::string_view operation) const {
  if (Can(operation)) return Status::OK();
  if (!defined_) return Status::PermissionDenied(Cat("principal '", principal_, "' is not defined"));
  return Status::PermissionDenied(Cat("principal '", principal_, "' lacks the operation '", operation, "'"));
}

Status Access::RequireRead(std::string_view path) const {
  if (CanRead(path)) return Status::OK();
  if (derived_denied_.contains(Av(path))) {
    return Status(StatusCode::kPermissionDenied,
                  Cat("principal '", principal_, "' may not read ", path,
                      " (computed from event fields it may not read: a purchase's value)"),
                  std::string(path));
  }
  return Status(StatusCode::kPermissionDenied,
                Cat("principal '", principal_, "' may not read ", path, " (", policy_->ClassOf(path), ")"),
                std::string(path));
}

Status Access::RequireWrite(std::string_view path) const {
  if (CanWrite(path)) return Status::OK();
  return Status(StatusCode::kPermissionDenied,
                Cat("principal '", principal_, "' may not write ", path, " (", policy_->ClassOf(path), ")"),
                std::string(path));
}

Status Access::RequireReadTree(std::string_view path) const {
  CDP_RETURN_IF_ERROR(RequireRead(path));
  if (admin_) return Status::OK();
  for (const std::string& below : policy_->KeysBelow(path)) CDP_RETURN_IF_ERROR(RequireRead(below));
  for (const std::string& derived : derived_denied_) {
    if (derived.size() > path.size() && derived[path.size()] == '.' && std::string_view(derived).starts_with(path)) {
      CDP_RETURN_IF_ERROR(RequireRead(derived));
    }
  }
  return Status::OK();
}

Status Access::RequireWriteTree(std::string_view path) const {
  CDP_RETURN_IF_ERROR(RequireWrite(path));
  if (admin_) return Status::OK();
  for (const std::string& below : policy_->KeysBelow(path)) CDP_RETURN_IF_ERROR(RequireWrite(below));
  return Status::OK();
}

void Access::Filter(std::string_view ns, Json* doc) const {
  if (admin_ || doc == nullptr || !doc->is_object()) return;
  FilterObject(std::string(ns), doc, ns.empty());
}

void Access::FilterObject(const std::string& prefix, Json* object, bool root_profile) const {
  std::vector<Json::Member>& members = object->members();
  std::vector<Json::Member> kept;
  kept.reserve(members.size());
  for (Json::Member& m : members) {
    std::string path = prefix.empty() ? m.first : Cat(prefix, ".", m.first);
    Json& v = m.second;
    if (root_profile && m.first == "id") {
      kept.push_back(std::move(m));
      continue;
    }
    if (prefix == "events" && (m.first == "id" || m.first == "profileId")) {
      kept.push_back(std::move(m));
      continue;
    }
    if (root_profile && (m.first == "attributeSources" || m.first == "conflicts" || m.first == "identityIssues")) {
      if (!CanRead(path)) continue;
      if (m.first == "attributeSources" && v.is_object()) {
        std::erase_if(v.members(), [&](const Json::Member& e) { return !CanRead(e.first); });
      } else if (v.is_array()) {
        std::erase_if(v.items(), [&](const Json& item) {
          const Json* key = item.Find(m.first == "conflicts" ? "field" : "type");
          if (key == nullptr || !key->is_string()) return true;
          return !CanRead(m.first == "conflicts" ? key->as_string() : ExternalIdsPath(key->as_string()));
        });
      }
      kept.push_back(std::move(m));
      continue;
    }
    if (v.is_object() && HasBelow(path)) {
      FilterObject(path, &v, false);
      if (v.size() > 0 || CanRead(path)) kept.push_back(std::move(m));
      continue;
    }
    if (CanRead(path)) kept.push_back(std::move(m));
  }
  members = std::move(kept);
}

Status Access::CheckWriteTree(const std::string& path, const Json& value) const {
  if (value.is_object() && HasBelow(path)) {
    for (const auto& [key, child] : value.members()) {
      CDP_RETURN_IF_ERROR(CheckWriteTree(Cat(path, ".", key), child));
    }
    return Status::OK();
  }
  return RequireWriteTree(path);  // a value (or null) replaces (or deletes) everything below the path
}

Status Access::CheckProfileWrite(const Json& input) const {
  if (admin_ || !input.is_object()) return Status::OK();
  for (const auto& [key, value] : input.members()) {
    if (key == "externalIds" || key == "attributes" || key == "consent") {
      CDP_RETURN_IF_ERROR(CheckWriteTree(key, value));
    } else if (key == "computed" && value.is_object()) {
      for (const auto& [trait, v] : value.members()) {
        if (trait == "churnRisk" || trait == "engagementScore") {
          CDP_RETURN_IF_ERROR(CheckWriteTree(Cat("computed.", trait), v));
        }
      }
    } else if (key == "computed") {  // null (or another value): the writable traits are cleared
      CDP_RETURN_IF_ERROR(RequireWrite("computed.churnRisk"));
      CDP_RETURN_IF_ERROR(RequireWrite("computed.engagementScore"));
    }
  }
  return Status::OK();
}

namespace {
bool IsIdentifierMember(std::string_view key) {
  return key == "email" || key == "phone" || key == "customerId" || key == "userId" || key == "anonymousId" ||
         key == "shopifyId" || key == "deviceId";
}
}  // namespace

Status Access::CheckEventWrite(const Json& event) const {
  if (admin_) return Status::OK();
  if (!event.is_object()) return RequireWrite("events");
  for (const auto& [key, value] : event.members()) {
    CDP_RETURN_IF_ERROR(CheckWriteTree(Cat("events.", key), value));
    // What the event links to a profile.
    if (IsIdentifierMember(key)) {
      CDP_RETURN_IF_ERROR(RequireWrite(ExternalIdsPath(key)));
    } else if (key == "identifiers" && value.is_object()) {
      for (const auto& [type, v] : value.members()) CDP_RETURN_IF_ERROR(RequireWrite(ExternalIdsPath(type)));
    }
  }
  return Status::OK();
}

bool Access::CanReadLinks(const Json& request) const {
  if (admin_ || !request.is_object()) return true;
  for (const auto& [key, value] : request.members()) {
    if (IsIdentifierMember(key) && !CanRead(ExternalIdsPath(key))) return false;
    if (key == "identifiers" && value.is_object()) {
      for (const auto& [type, v] : value.members()) {
        if (!CanRead(ExternalIdsPath(type))) return false;
      }
    }
  }
  return true;
}

Json Access::ToJson() const {
  Json roles = Json::Array();
  for (const std::string& r : roles_) roles.Push(Json(r));
  auto sorted = [](const absl::flat_hash_set<std::string>& s) { return StringArray({s.begin(), s.end()}); };
  return Json::Object()
      .Set("principal", Json(principal_))
      .Set("defined", Json(defined_))
      .Set("roles", std::move(roles))
      .Set("admin", Json(admin_))
      .Set("read", admin_ ? StringArray({policy_->classes().begin(), policy_->classes().end()}) : sorted(read_classes_))
      .Set("write",
           admin_ ? StringArray({policy_->classes().begin(), policy_->classes().end()}) : sorted(write_classes_))
      .Set("readFields", sorted(read_fields_))
      .Set("writeFields", sorted(write_fields_))
      .Set("operations", admin_ ? StringArray({kOperations[0].data(), kOperations[1].data(), kOperations[2].data(),
                                               kOperations[3].data()})
                                : sorted(operations_));
}

}  // namespace cdp::internal
