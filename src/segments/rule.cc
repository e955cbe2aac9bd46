// Copyright 2026 The libcdp Authors.
//
// Parsing and validation of segment rules (include/cdp/segment_rule.h).

#include <algorithm>
#include <set>

#include "cdp/query.h"
#include "cdp/segment_rule.h"
#include "fmt/format.h"

namespace cdp {

namespace {

constexpr int64_t kMicrosPerSecond = 1000000;
constexpr int64_t kMaxDurationUs = 100LL * 366 * 86400 * kMicrosPerSecond;
constexpr size_t kMaxSequenceSteps = 8;

constexpr std::string_view kStandardTypes[] = {"page_view",  "product_view", "add_to_cart", "purchase",
                                               "email_open", "app_usage",    "custom"};

Status Invalid(std::string message, std::string field = {}) {
  return Status::InvalidArgument(std::move(message), std::move(field));
}

// "now", or a sign, digits and a unit.
std::optional<int64_t> ParseRelative(std::string_view s) {
  if (s == "now") return 0;
  if (s.size() < 3 || (s[0] != '-' && s[0] != '+')) return std::nullopt;
  auto d = ParseRuleDuration(s.substr(1));
  if (!d.ok()) return std::nullopt;
  return s[0] == '-' ? -*d : *d;
}

bool IsDateTimeText(const std::string& s) { return s.size() > 10 && (s[10] == 'T' || s[10] == 't' || s[10] == ' '); }

// Date-times of in / not_in / contains are brought to the stored form, as Filter does.
void NormalizeDateTime(Json* v) {
  if (v->is_string() && IsDateTimeText(v->as_string())) {
    auto micros = ParseTimestamp(v->as_string());
    if (micros.ok()) *v = FormatTimestamp(*micros);
  }
}

bool IsScalar(const Json& v) { return !v.is_array() && !v.is_object(); }

bool IsEventPath(std::string_view p) {
  return (p.size() > 11 && p.substr(0, 11) == "properties.") || p == "source" || p == "deviceId" || p == "name";
}

bool IsGroup(const Json& json) {
  return json.Find("conditions") != nullptr || (json.Find("operator") != nullptr && json.Find("field") == nullptr);
}

class Parser {
 public:
  explicit Parser(const RuleLimits& limits) : limits_(limits) {}

  Result<RuleNode> Root(const Json& json) {
    if (!json.is_object() && !json.is_array()) return Invalid("a rule must be an object or an array of conditions");
    if (json.is_object() && !IsGroup(json)) return Node(json, 1, false);  // a lone condition is the rule
    return Group(json, 1, false);
  }

  RuleDependencies TakeDependencies() {
    RuleDependencies d;
    d.fields.assign(fields_.begin(), fields_.end());
    d.events.assign(events_.begin(), events_.end());
    d.segments.assign(segments_.begin(), segments_.end());
    d.time_dependent = time_dependent_;
    return d;
  }

 private:
  Status CheckString(const Json& v, std::string_view what) const {
    if (v.is_string() && v.as_string().size() > limits_.max_string_bytes) {
      return Invalid(fmt::format("{} longer than {} bytes", what, limits_.max_string_bytes));
    }
    return Status::OK();
  }

  Status Count() {
    if (++count_ > limits_.max_conditions) {
      return Invalid(fmt::format("more than {} conditions", limits_.max_conditions));
    }
    return Status::OK();
  }

  Result<RuleNode> Node(const Json& json, int depth, bool in_where) {
    if (json.is_array()) return Group(json, depth + 1, in_where);
    if (!json.is_object()) return Invalid("a condition must be an object");
    CDP_RETURN_IF_ERROR(Count());
    if (IsGroup(json)) return Group(json, depth + 1, in_where);
    if (const Json* inner = json.Find("not")) {
      if (json.size() != 1) return Invalid("a \"not\" condition has no other keys");
      if (depth + 1 > limits_.max_depth) return DepthError();
      auto child = Node(*inner, depth + 1, in_where);
      if (!child.ok()) return child.status().WithFieldPrefix("not");
      RuleNode n;
      n.kind = RuleNode::Kind::kNot;
      n.children.push_back(std::move(child).value());
      return n;
    }
    if (json.Find("field") != nullptr) return Field(json, in_where);
    if (in_where) return Invalid("a where-condition is a field condition or a group");
    if (json.Find("event") != nullptr) return Event(json, depth);
    if (json.Find("sequence") != nullptr) return Sequence(json, depth);
    if (json.Find("segment") != nullptr) return Segment(json);
    return Invalid("a condition needs \"field\", \"event\", \"sequence\", \"segment\", \"not\" or \"conditions\"");
  }

  Status DepthError() const {
    return Invalid(fmt::format("condition groups nested deeper than {}", limits_.max_depth));
  }

  Result<RuleNode> Group(const Json& json, int depth, bool in_where) {
    if (depth > limits_.max_depth) return DepthError();
    RuleNode n;
    n.kind = RuleNode::Kind::kAnd;
    if (json.is_array()) {
      CDP_RETURN_IF_ERROR(List(json, "", depth, in_where, &n.children));
      return n;
    }
    bool negate = false;
    bool has_conditions = false;
    for (const auto& [key, value] : json.members()) {
      if (key == "operator") {
        const std::string& op = value.as_string();
        if (op == "AND" || op == "and") {
          n.kind = RuleNode::Kind::kAnd;
        } else if (op == "OR" || op == "or") {
          n.kind = RuleNode::Kind::kOr;
        } else if (op == "NOT" || op == "not") {
          negate = true;
        } else {
          return Invalid("a group's \"operator\" is \"AND\", \"OR\" or \"NOT\"", "operator");
        }
      } else if (key == "conditions") {
        has_conditions = true;
        CDP_RETURN_IF_ERROR(List(value, "conditions", depth, in_where, &n.children));
      } else {
        return Invalid(fmt::format("unknown key \"{}\" in a condition group", key), key);
      }
    }
    if (!has_conditions) return Invalid("a group needs \"conditions\"", "conditions");
    if (!negate) return n;
    RuleNode outer;
    outer.kind = RuleNode::Kind::kNot;
    outer.children.push_back(std::move(n));
    return outer;
  }

  Status List(const Json& list, std::string_view key, int depth, bool in_where, std::vector<RuleNode>* out) {
    if (!list.is_array()) return Invalid(fmt::format("\"{}\" must be an array", key), std::string(key));
    for (size_t i = 0; i < list.items().size(); ++i) {
      auto node = Node(list.items()[i], depth, in_where);
      if (!node.ok()) return node.status().WithFieldPrefix(fmt::format("{}[{}]", key, i));
      out->push_back(std::move(node).value());
    }
    return Status::OK();
  }

  // A value that may be an instant: a timestamp, or (outside where-conditions, with `relative_ok`) a relative date.
  Result<RuleValue> TimeOrValue(const Json& v, bool relative_ok, bool in_where) {
    RuleValue out{v, std::nullopt};
    if (!v.is_string()) return out;
    if (auto rel = ParseRelative(v.as_string()); rel && relative_ok) {
      if (in_where) return Invalid("relative dates are not allowed in where-conditions (use \"within\")");
      time_dependent_ = true;
      out.time = TimePoint{true, *rel};
      return out;
    }
    if (auto t = ParseTimestamp(v.as_string()); t.ok()) out.time = TimePoint{false, *t};
    return out;
  }

  Result<RuleNode> Field(const Json& json, bool in_where) {
    RuleNode n;
    n.kind = RuleNode::Kind::kField;
    const Json* field = json.Find("field");
    if (!field->is_string() || field->as_string().empty())
      return Invalid("\"field\" must be a non-empty path", "field");
    n.field = field->as_string();
    if (n.field.size() > limits_.max_path_bytes) {
      return Invalid(fmt::format("field path longer than {} bytes", limits_.max_path_bytes), "field");
    }
    if (n.field.front() == '.' || n.field.back() == '.' || n.field.find("..") != std::string::npos) {
      return Invalid("a field path is keys separated by single dots", "field");
    }
    if (in_where && !IsEventPath(n.field)) {
      return Invalid("where-conditions read properties.*, source, deviceId or name", "field");
    }
    const Json* op = json.Find("operator");
    if (op == nullptr || !op->is_string()) return Invalid("a condition needs a string \"operator\"", "operator");
    auto parsed = ParseOp(op->as_string());
    if (!parsed.ok()) return parsed.status().WithFieldPrefix("operator");
    n.op = *parsed;
    const Json* value = json.Find("value");
    for (const auto& [key, unused] : json.members()) {
      if (key != "field" && key != "operator" && key != "value") {
        return Invalid(fmt::format("unknown key \"{}\" in a field condition", key), key);
      }
    }
    if (n.field == "segments" && !in_where) return SegmentsField(n.op, value);
    Status s = Values(value, in_where, &n);
    if (!s.ok()) return s.WithFieldPrefix("value");
    if (!in_where) fields_.insert(n.field);
    return n;
  }

  Status Values(const Json* value, bool in_where, RuleNode* n) {
    switch (n->op) {
      case RuleOp::kExists:
      case RuleOp::kNotExists:
        if (value != nullptr && !value->is_null() && !(value->is_bool() && value->as_bool())) {
          return Invalid("exists / not_exists take no value");
        }
        return Status::OK();
      case RuleOp::kIn:
      case RuleOp::kNotIn: {
        if (value == nullptr || !value->is_array()) return Invalid("in / not_in need an array value");
        if (value->size() > limits_.max_array_values) {
          return Invalid(fmt::format("more than {} values", limits_.max_array_values));
        }
        for (size_t i = 0; i < value->items().size(); ++i) {
          Json v = value->items()[i];
          if (!IsScalar(v)) return Invalid("values of in / not_in are scalars", fmt::format("[{}]", i));
          Status s = CheckString(v, "a string value");
          if (!s.ok()) return s.WithFieldPrefix(fmt::format("[{}]", i));
          NormalizeDateTime(&v);
          n->values.push_back({std::move(v), std::nullopt});
        }
        return Status::OK();
      }
      case RuleOp::kBetween: {
        if (value == nullptr || !value->is_array() || value->size() != 2) {
          return Invalid("between needs [low, high]");
        }
        for (size_t i = 0; i < 2; ++i) {
          const Json& v = value->items()[i];
          if (!v.is_number() && !v.is_string()) {
            return Invalid("a bound of between is a number, a string or a date", fmt::format("[{}]", i));
          }
          Status s = CheckString(v, "a string value");
          if (!s.ok()) return s.WithFieldPrefix(fmt::format("[{}]", i));
          CDP_ASSIGN_OR_RETURN(RuleValue rv, TimeOrValue(v, true, in_where));
          n->values.push_back(std::move(rv));
        }
        if (n->values[0].time.has_value() != n->values[1].time.has_value()) {
          return Invalid("the bounds of between are both dates or neither");
        }
        if (!n->values[0].time && n->values[0].json.is_number() != n->values[1].json.is_number()) {
          return Invalid("the bounds of between are both numbers or both strings");
        }
        return Status::OK();
      }
      default:
        break;
    }
    if (value == nullptr) return Invalid("a condition needs a \"value\"");
    CDP_RETURN_IF_ERROR(CheckString(*value, "a string value"));
    switch (n->op) {
      case RuleOp::kEq:
      case RuleOp::kNe: {
        if (value->is_object()) return Invalid("values are never objects");
        if (value->is_array()) {
          if (value->size() > limits_.max_array_values) {
            return Invalid(fmt::format("more than {} values", limits_.max_array_values));
          }
          for (size_t i = 0; i < value->items().size(); ++i) {
            const Json& v = value->items()[i];
            if (!IsScalar(v)) return Invalid("array values hold scalars", fmt::format("[{}]", i));
            Status s = CheckString(v, "a string value");
            if (!s.ok()) return s.WithFieldPrefix(fmt::format("[{}]", i));
          }
          n->values.push_back({*value, std::nullopt});
          return Status::OK();
        }
        CDP_ASSIGN_OR_RETURN(RuleValue rv, TimeOrValue(*value, false, in_where));
        n->values.push_back(std::move(rv));
        return Status::OK();
      }
      case RuleOp::kGt:
      case RuleOp::kLt:
      case RuleOp::kGe:
      case RuleOp::kLe: {
        if (!value->is_number() && !value->is_string()) {
          return Invalid("ordered comparisons take a number, a string or a date");
        }
        CDP_ASSIGN_OR_RETURN(RuleValue rv, TimeOrValue(*value, true, in_where));
        n->values.push_back(std::move(rv));
        return Status::OK();
      }
      case RuleOp::kContains: {
        if (!IsScalar(*value)) return Invalid("contains takes a scalar value");
        Json v = *value;
        NormalizeDateTime(&v);
        n->values.push_back({std::move(v), std::nullopt});
        return Status::OK();
      }
      case RuleOp::kStartsWith:
        if (!value->is_string()) return Invalid("starts_with takes a string value");
        n->values.push_back({*value, std::nullopt});
        return Status::OK();
      default:
        return Invalid("unexpected operator");
    }
  }

  Result<TimePoint> Instant(const Json& v) {
    if (v.is_string()) {
      if (auto rel = ParseRelative(v.as_string())) {
        time_dependent_ = true;
        return TimePoint{true, *rel};
      }
    }
    auto t = ParseTimestamp(v);
    if (!t.ok()) return Invalid("a bound is a timestamp or a relative date (\"-30d\")");
    return TimePoint{false, *t};
  }

  Result<TimeWindow> Window(const Json& v) {
    TimeWindow w;
    if (v.is_string()) {
      CDP_ASSIGN_OR_RETURN(int64_t d, ParseRuleDuration(v.as_string()));
      w.from = TimePoint{true, -d};
      w.to = TimePoint{true, 0};
      time_dependent_ = true;
      return w;
    }
    if (!v.is_object() || v.size() == 0) return Invalid("\"within\" is a duration (\"30d\") or {\"from\", \"to\"}");
    for (const auto& [key, bound] : v.members()) {
      if (key != "from" && key != "to") return Invalid(fmt::format("unknown key \"{}\" in within", key), key);
      auto t = Instant(bound);
      if (!t.ok()) return t.status().WithFieldPrefix(key);
      (key == "from" ? w.from : w.to) = *t;
    }
    if (w.from && w.to && w.from->relative == w.to->relative && w.from->micros > w.to->micros) {
      return Invalid("\"from\" is after \"to\"");
    }
    return w;
  }

  Result<NumberTest> Test(const Json& v) {
    NumberTest t;
    if (v.is_number()) {
      t.terms.push_back({RuleOp::kEq, v.as_number()});
      return t;
    }
    if (!v.is_object() || v.size() == 0) return Invalid("a comparison is an object such as {\">=\": 2}");
    for (const auto& [key, num] : v.members()) {
      auto op = ParseOp(key);
      if (!op.ok() || static_cast<int>(*op) > static_cast<int>(RuleOp::kLe)) {
        return Invalid(fmt::format("\"{}\" is not one of = != > < >= <=", key), key);
      }
      if (!num.is_number()) return Invalid("a comparison takes a number", key);
      t.terms.push_back({*op, num.as_number()});
    }
    return t;
  }

  Result<EventMatch> Match(const Json& json, int depth, bool allow_more) {
    EventMatch m;
    const Json* event = json.Find("event");
    if (event == nullptr || !event->is_string() || event->as_string().empty()) {
      return Invalid("\"event\" must be an event type or name", "event");
    }
    if (event->as_string().size() > limits_.max_string_bytes) return Invalid("event name too long", "event");
    m.event = event->as_string();
    events_.insert(m.event);
    if (const Json* where = json.Find("where")) {
      if (depth + 1 > limits_.max_depth) return DepthError();
      if (where->is_object()) {
        auto node = Node(*where, depth + 1, true);
        if (!node.ok()) return node.status().WithFieldPrefix("where");
        m.where.push_back(std::move(node).value());
      } else {
        CDP_RETURN_IF_ERROR(List(*where, "where", depth + 1, true, &m.where));
      }
    }
    if (!allow_more) {
      for (const auto& [key, unused] : json.members()) {
        if (key != "event" && key != "where") return Invalid(fmt::format("unknown key \"{}\" in a step", key), key);
      }
    }
    return m;
  }

  Result<RuleNode> Event(const Json& json, int depth) {
    RuleNode n;
    n.kind = RuleNode::Kind::kEvent;
    CDP_ASSIGN_OR_RETURN(n.events, Match(json, depth, true));
    bool has_count = false, has_value = false;
    for (const auto& [key, value] : json.members()) {
      if (key == "event" || key == "where") continue;
      if (key == "within") {
        auto w = Window(value);
        if (!w.ok()) return w.status().WithFieldPrefix(key);
        n.within = *w;
      } else if (key == "count") {
        auto t = Test(value);
        if (!t.ok()) return t.status().WithFieldPrefix(key);
        n.test = *t;
        has_count = true;
      } else if (key == "value") {
        auto t = Test(value);
        if (!t.ok()) return t.status().WithFieldPrefix(key);
        n.test = *t;
        has_value = true;
      } else if (key == "sum" || key == "avg" || key == "min" || key == "max") {
        if (n.aggregate != Aggregate::kCount) return Invalid("one aggregate per condition", key);
        n.aggregate = key == "sum"   ? Aggregate::kSum
                      : key == "avg" ? Aggregate::kAvg
                      : key == "min" ? Aggregate::kMin
                                     : Aggregate::kMax;
        if (!value.is_string() || !IsEventPath(value.as_string()) ||
            value.as_string().size() > limits_.max_path_bytes) {
          return Invalid("an aggregate names a property path (\"properties.revenue\")", key);
        }
        n.aggregate_field = value.as_string();
      } else {
        return Invalid(fmt::format("unknown key \"{}\" in an event condition", key), key);
      }
    }
    if (n.aggregate == Aggregate::kCount) {
      if (has_value) return Invalid("\"value\" goes with sum, avg, min or max; use \"count\"", "value");
      if (!has_count) n.test.terms.push_back({RuleOp::kGe, 1});
    } else {
      if (has_count) return Invalid("an aggregate condition compares \"value\", not \"count\"", "count");
      if (!has_value) return Invalid("an aggregate needs a \"value\" comparison", "value");
    }
    return n;
  }

  Result<RuleNode> Sequence(const Json& json, int depth) {
    RuleNode n;
    n.kind = RuleNode::Kind::kSequence;
    for (const auto& [key, value] : json.members()) {
      if (key == "sequence") {
        if (!value.is_array() || value.size() < 2 || value.size() > kMaxSequenceSteps) {
          return Invalid(fmt::format("\"sequence\" is an array of 2 to {} steps", kMaxSequenceSteps), key);
        }
        for (size_t i = 0; i < value.items().size(); ++i) {
          std::string prefix = fmt::format("sequence[{}]", i);
          Status s = Count();
          if (!s.ok()) return s.WithFieldPrefix(prefix);
          if (!value.items()[i].is_object()) return Invalid("a step is {\"event\", \"where\"}", prefix);
          auto m = Match(value.items()[i], depth, false);
          if (!m.ok()) return m.status().WithFieldPrefix(prefix);
          n.steps.push_back(std::move(m).value());
        }
      } else if (key == "span") {
        auto d = value.is_string() ? ParseRuleDuration(value.as_string())
                                   : Result<int64_t>(Invalid("\"span\" is a duration (\"1h\")"));
        if (!d.ok()) return d.status().WithFieldPrefix(key);
        n.span_us = *d;
      } else if (key == "within") {
        auto w = Window(value);
        if (!w.ok()) return w.status().WithFieldPrefix(key);
        n.within = *w;
      } else {
        return Invalid(fmt::format("unknown key \"{}\" in a sequence", key), key);
      }
    }
    return n;
  }

  // {"field": "segments", ...}: membership conditions. contains / = name one segment, != its negation; in / not_in
  // a list of segments (any of them / none of them).
  Result<RuleNode> SegmentsField(RuleOp op, const Json* value) {
    auto one = [&](const Json& id, std::string_view where) -> Result<RuleNode> {
      if (!id.is_string() || id.as_string().empty() || id.as_string().size() > limits_.max_segment_id_bytes) {
        return Invalid(fmt::format("a segment id of 1 to {} bytes", limits_.max_segment_id_bytes), std::string(where));
      }
      RuleNode n;
      n.kind = RuleNode::Kind::kSegment;
      n.segment = id.as_string();
      segments_.insert(n.segment);
      return n;
    };
    auto negate = [](RuleNode child) {
      RuleNode n;
      n.kind = RuleNode::Kind::kNot;
      n.children.push_back(std::move(child));
      return n;
    };
    if (value == nullptr) return Invalid("a condition on segments needs a \"value\"", "value");
    switch (op) {
      case RuleOp::kContains:
      case RuleOp::kEq:
        return one(*value, "value");
      case RuleOp::kNe: {
        CDP_ASSIGN_OR_RETURN(RuleNode n, one(*value, "value"));
        return negate(std::move(n));
      }
      case RuleOp::kIn:
      case RuleOp::kNotIn: {
        if (!value->is_array() || value->size() > limits_.max_array_values) {
          return Invalid(fmt::format("an array of at most {} segment ids", limits_.max_array_values), "value");
        }
        RuleNode any;
        any.kind = RuleNode::Kind::kOr;
        for (size_t i = 0; i < value->size(); ++i) {
          CDP_ASSIGN_OR_RETURN(RuleNode n, one(value->items()[i], fmt::format("value[{}]", i)));
          any.children.push_back(std::move(n));
        }
        return op == RuleOp::kIn ? std::move(any) : negate(std::move(any));
      }
      default:
        return Invalid("conditions on segments use contains, =, !=, in or not_in", "operator");
    }
  }

  Result<RuleNode> Segment(const Json& json) {
    RuleNode n;
    n.kind = RuleNode::Kind::kSegment;
    const Json* id = json.Find("segment");
    if (!id->is_string() || id->as_string().empty() || id->as_string().size() > limits_.max_segment_id_bytes) {
      return Invalid(fmt::format("\"segment\" is a segment id of 1 to {} bytes", limits_.max_segment_id_bytes),
                     "segment");
    }
    if (json.size() != 1) return Invalid("a segment condition has only \"segment\"");
    n.segment = id->as_string();
    segments_.insert(n.segment);
    return n;
  }

  static Result<RuleOp> ParseOp(std::string_view t) {
    if (t == "=" || t == "==" || t == "eq") return RuleOp::kEq;
    if (t == "!=" || t == "ne") return RuleOp::kNe;
    if (t == ">" || t == "gt") return RuleOp::kGt;
    if (t == "<" || t == "lt") return RuleOp::kLt;
    if (t == ">=" || t == "gte") return RuleOp::kGe;
    if (t == "<=" || t == "lte") return RuleOp::kLe;
    if (t == "contains") return RuleOp::kContains;
    if (t == "in") return RuleOp::kIn;
    if (t == "not_in") return RuleOp::kNotIn;
    if (t == "exists") return RuleOp::kExists;
    if (t == "not_exists") return RuleOp::kNotExists;
    if (t == "between") return RuleOp::kBetween;
    if (t == "starts_with") return RuleOp::kStartsWith;
    return Invalid(
        fmt::format("unknown operator \"{}\" (expected = != > < >= <= contains in not_in exists "
                    "not_exists between starts_with)",
                    t.substr(0, 32)));
  }

  const RuleLimits& limits_;
  size_t count_ = 0;
  std::set<std::string> fields_, events_, segments_;
  bool time_dependent_ = false;
};

}  // namespace

std::string_view RuleOpName(RuleOp op) {
  static constexpr std::string_view kNames[] = {
      "=", "!=", ">", "<", ">=", "<=", "contains", "in", "not_in", "exists", "not_exists", "between", "starts_with"};
  return kNames[static_cast<int>(op)];
}

bool NumberTest::Matches(double x) const {
  for (const Term& t : terms) {
    bool ok = false;
    switch (t.op) {
      case RuleOp::kEq:
        ok = x == t.value;
        break;
      case RuleOp::kNe:
        ok = x != t.value;
        break;
      case RuleOp::kGt:
        ok = x > t.value;
        break;
      case RuleOp::kLt:
        ok = x < t.value;
        break;
      case RuleOp::kGe:
        ok = x >= t.value;
        break;
      case RuleOp::kLe:
        ok = x <= t.value;
        break;
      default:
        break;
    }
    if (!ok) return false;
  }
  return true;
}

bool RuleDependencies::ReadsField(std::string_view path) const {
  for (const std::string& d : fields) {
    size_t n = std::min(d.size(), path.size());
    if (d.compare(0, n, path.substr(0, n)) != 0) continue;
    if (d.size() == path.size()) return true;
    if ((d.size() > path.size() ? d[n] : path[n]) == '.') return true;
  }
  return false;
}

bool RuleDependencies::ReadsEvent(std::string_view type, std::string_view name) const {
  auto has = [this](std::string_view e) { return std::binary_search(events.begin(), events.end(), e); };
  return has("*") || has(type) || (type == "custom" && !name.empty() && has(name));
}

bool IsStandardEventType(std::string_view type) {
  return std::find(std::begin(kStandardTypes), std::end(kStandardTypes), type) != std::end(kStandardTypes);
}

Result<int64_t> ParseRuleDuration(std::string_view s) {
  auto bad = [&] {
    return Invalid(
        fmt::format("\"{}\" is not a duration (a number and s, m, h, d or w, e.g. \"30d\")", s.substr(0, 32)));
  };
  if (s.size() < 2 || s.size() > 12) return bad();
  int64_t n = 0;
  for (size_t i = 0; i + 1 < s.size(); ++i) {
    if (s[i] < '0' || s[i] > '9') return bad();
    n = n * 10 + (s[i] - '0');
  }
  int64_t unit;
  switch (s.back()) {
    case 's':
      unit = kMicrosPerSecond;
      break;
    case 'm':
      unit = 60 * kMicrosPerSecond;
      break;
    case 'h':
      unit = 3600 * kMicrosPerSecond;
      break;
    case 'd':
      unit = 86400 * kMicrosPerSecond;
      break;
    case 'w':
      unit = 7 * 86400 * kMicrosPerSecond;
      break;
    default:
      return bad();
  }
  if (n > kMaxDurationUs / unit) return Invalid("durations are at most 100 years");
  return n * unit;
}

Result<SegmentRule> SegmentRule::FromJson(const Json& json, const RuleLimits& limits) {
  Parser parser(limits);
  CDP_ASSIGN_OR_RETURN(RuleNode root, parser.Root(json));
  SegmentRule rule;
  rule.root_ = std::move(root);
  rule.deps_ = parser.TakeDependencies();
  rule.source_ = json;
  return rule;
}

}  // namespace cdp
