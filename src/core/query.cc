// Copyright 2026 The libcdp Authors.

#include "cdp/query.h"

#include <algorithm>
#include <limits>
#include <string_view>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "core/civil_time.h"
#include "core/ids.h"
#include "fmt/format.h"

namespace cdp {

namespace {

constexpr int kMaxGroupDepth = 8;
constexpr size_t kMaxConditions = 256;
constexpr size_t kMaxFieldPath = 256;

bool ReadDigits(std::string_view s, size_t* pos, int n, int* out) {
  if (*pos + n > s.size()) return false;
  int v = 0;
  for (int i = 0; i < n; ++i) {
    char c = s[*pos + i];
    if (c < '0' || c > '9') return false;
    v = v * 10 + (c - '0');
  }
  *pos += n;
  *out = v;
  return true;
}

bool Expect(std::string_view s, size_t* pos, char c) {
  if (*pos < s.size() && s[*pos] == c) {
    ++*pos;
    return true;
  }
  return false;
}

constexpr int64_t kMinMicros = 0;                   // 1970-01-01
constexpr int64_t kMaxMicros = 253402300799999999;  // 9999-12-31T23:59:59.999999Z

bool IsDateTimeString(const Json& v) {
  const std::string& s = v.as_string();
  return v.is_string() && s.size() > 10 && (s[10] == 'T' || s[10] == 't' || s[10] == ' ');
}

bool CompareOrdered(const Json& field, const Json& value, CompareOp op) {
  int cmp;
  if (field.is_number() && value.is_number()) {
    double a = field.as_number(), b = value.as_number();
    if (field.is_int() && value.is_int()) {
      cmp = field.as_int() < value.as_int() ? -1 : (field.as_int() > value.as_int() ? 1 : 0);
    } else {
      cmp = a < b ? -1 : (a > b ? 1 : 0);
    }
  } else if (field.is_string() && value.is_string()) {
    int c = field.as_string().compare(value.as_string());
    cmp = c < 0 ? -1 : (c > 0 ? 1 : 0);
  } else {
    return false;
  }
  switch (op) {
    case CompareOp::kGt:
      return cmp > 0;
    case CompareOp::kLt:
      return cmp < 0;
    case CompareOp::kGe:
      return cmp >= 0;
    case CompareOp::kLe:
      return cmp <= 0;
    default:
      return false;
  }
}

bool EqualsIgnoringCase(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return absl::ascii_tolower(static_cast<unsigned char>(x)) ==
                  absl::ascii_tolower(static_cast<unsigned char>(y));
         });
}

// Equality as a condition means it: JSON equality, or for two strings with ignoreCase, equality without case.
bool Same(const Json& a, const Json& b, bool ignore_case) {
  if (ignore_case && a.is_string() && b.is_string()) return EqualsIgnoringCase(a.as_string(), b.as_string());
  return a == b;
}

bool HasPrefix(const Json& field, const std::string& prefix, bool ignore_case) {
  if (!field.is_string() || field.as_string().size() < prefix.size()) return false;
  std::string_view head = std::string_view(field.as_string()).substr(0, prefix.size());
  return ignore_case ? EqualsIgnoringCase(head, prefix) : head == prefix;
}

bool MatchCondition(const Condition& c, const Json& doc) {
  const Json* field = doc.FindPath(c.field);
  const bool present = field != nullptr && !field->is_null();
  if (c.op == CompareOp::kExists) return present == c.value.as_bool();
  if (!present) return c.op == CompareOp::kNe || c.op == CompareOp::kNotIn;
  const bool nocase = c.ignore_case;
  switch (c.op) {
    case CompareOp::kEq:
      return Same(*field, c.value, nocase);
    case CompareOp::kNe:
      return !Same(*field, c.value, nocase);
    case CompareOp::kGt:
    case CompareOp::kLt:
    case CompareOp::kGe:
    case CompareOp::kLe:
      return CompareOrdered(*field, c.value, c.op);
    case CompareOp::kContains:
      if (field->is_string() && c.value.is_string()) {
        if (!nocase) return field->as_string().find(c.value.as_string()) != std::string::npos;
        return absl::StrContains(absl::AsciiStrToLower(field->as_string()), absl::AsciiStrToLower(c.value.as_string()));
      }
      if (field->is_array()) {
        for (const Json& item : field->items()) {
          if (Same(item, c.value, nocase)) return true;
        }
      }
      return false;
    case CompareOp::kStartsWith:
      if (field->is_array()) {
        for (const Json& item : field->items()) {
          if (HasPrefix(item, c.value.as_string(), nocase)) return true;
        }
        return false;
      }
      return HasPrefix(*field, c.value.as_string(), nocase);
    case CompareOp::kIn:
    case CompareOp::kNotIn: {
      bool found = false;
      for (const Json& candidate : c.value.items()) {
        if (field->is_array()) {
          for (const Json& item : field->items()) found = found || Same(item, candidate, nocase);
        } else {
          found = found || Same(*field, candidate, nocase);
        }
      }
      return found == (c.op == CompareOp::kIn);
    }
    case CompareOp::kExists:
      return false;  // decided above
  }
  return false;
}

Result<Filter> ParseGroup(const Json& json, int depth, size_t* count);

Result<Condition> ParseCondition(const Json& json) {
  Condition c;
  const Json* field = json.Find("field");
  if (field == nullptr || !field->is_string() || field->as_string().empty()) {
    return Status::InvalidArgument("a condition needs a non-empty string \"field\"", "field");
  }
  if (field->as_string().size() > kMaxFieldPath) {
    return Status::InvalidArgument(fmt::format("field path longer than {} bytes", kMaxFieldPath), "field");
  }
  c.field = field->as_string();
  const Json* op = json.Find("operator");
  if (op == nullptr || !op->is_string()) {
    return Status::InvalidArgument("a condition needs a string \"operator\"", "operator");
  }
  auto parsed = Filter::ParseOp(op->as_string());
  if (!parsed.ok()) return parsed.status().WithFieldPrefix("operator");
  c.op = *parsed;
  const Json* value = json.Find("value");
  if (value == nullptr) return Status::InvalidArgument("a condition needs a \"value\"", "value");
  for (const auto& [key, v] : json.members()) {
    if (key == "ignoreCase") {
      if (!v.is_bool()) return Status::InvalidArgument("\"ignoreCase\" must be true or false", key);
      c.ignore_case = v.as_bool();
    } else if (key != "field" && key != "operator" && key != "value") {
      return Status::InvalidArgument(fmt::format("unknown key \"{}\" in a condition", key), key);
    }
  }
  c.value = *value;
  if ((c.op == CompareOp::kIn || c.op == CompareOp::kNotIn) && !c.value.is_array()) {
    return Status::InvalidArgument(fmt::format("operator \"{}\" needs an array value", op->as_string()), "value");
  }
  if (c.op == CompareOp::kStartsWith && !c.value.is_string()) {
    return Status::InvalidArgument("operator \"starts_with\" needs a string value", "value");
  }
  if (c.op == CompareOp::kExists && !c.value.is_bool()) {
    return Status::InvalidArgument("operator \"exists\" needs true or false", "value");
  }
  if (c.ignore_case && (c.op == CompareOp::kExists || c.op == CompareOp::kGt || c.op == CompareOp::kLt ||
                        c.op == CompareOp::kGe || c.op == CompareOp::kLe)) {
    return Status::InvalidArgument(
        fmt::format("\"ignoreCase\" applies to = != contains starts_with in not_in, not to {}", op->as_string()),
        "ignoreCase");
  }
  if (c.op == CompareOp::kStartsWith) return c;  // a prefix of a date-time is not a date-time: compared as typed
  // Date-times compare as strings in libcdp's stored form, so bring the value to that form.
  auto normalize = [](Json* v) {
    if (IsDateTimeString(*v)) {
      auto micros = ParseTimestamp(v->as_string());
      if (micros.ok()) *v = FormatTimestamp(*micros);
    }
  };
  if (c.value.is_array()) {
    for (Json& item : c.value.items()) normalize(&item);
  } else {
    normalize(&c.value);
  }
  return c;
}

Status ParseConditionList(const Json& list, int depth, size_t* count, Filter* out) {
  if (!list.is_array()) return Status::InvalidArgument("\"conditions\" must be an array", "conditions");
  size_t i = 0;
  for (const Json& item : list.items()) {
    std::string prefix = fmt::format("conditions[{}]", i++);
    if (!item.is_object()) return Status::InvalidArgument("a condition must be an object", prefix);
    if (++*count > kMaxConditions) {
      return Status::InvalidArgument(fmt::format("more than {} conditions", kMaxConditions), prefix);
    }
    if (item.Find("conditions") != nullptr) {
      auto group = ParseGroup(item, depth + 1, count);
      if (!group.ok()) return group.status().WithFieldPrefix(prefix);
      out->groups.push_back(std::move(group).value());
    } else {
      auto cond = ParseCondition(item);
      if (!cond.ok()) return cond.status().WithFieldPrefix(prefix);
      out->conditions.push_back(std::move(cond).value());
    }
  }
  return Status::OK();
}

Result<Filter> ParseGroup(const Json& json, int depth, size_t* count) {
  if (depth > kMaxGroupDepth) {
    return Status::InvalidArgument(fmt::format("condition groups nested deeper than {}", kMaxGroupDepth));
  }
  Filter f;
  if (json.is_array()) {
    CDP_RETURN_IF_ERROR(ParseConditionList(json, depth, count, &f));
    return f;
  }
  if (!json.is_object()) return Status::InvalidArgument("a filter must be an object or an array of conditions");
  for (const auto& [key, value] : json.members()) {
    if (key == "operator") {
      if (!value.is_string()) return Status::InvalidArgument("\"operator\" must be \"AND\" or \"OR\"", "operator");
      const std::string& op = value.as_string();
      if (op == "AND" || op == "and") {
        f.combine = Filter::Combine::kAnd;
      } else if (op == "OR" || op == "or") {
        f.combine = Filter::Combine::kOr;
      } else {
        return Status::InvalidArgument(fmt::format("group operator \"{}\" is not AND or OR", op), "operator");
      }
    } else if (key == "conditions") {
      CDP_RETURN_IF_ERROR(ParseConditionList(value, depth, count, &f));
    } else {
      return Status::InvalidArgument(fmt::format("unknown key \"{}\" in a condition group", key), key);
    }
  }
  return f;
}

Result<size_t> ParseLimit(const Json& v, std::string_view field) {
  if (!v.is_int() || v.as_int() < 1) {
    return Status::InvalidArgument("\"limit\" must be a positive integer", std::string(field));
  }
  return static_cast<size_t>(v.as_int());
}

Result<bool> ParseOrder(const Json& v, std::string_view field) {
  if (v.is_string() && (v.as_string() == "asc" || v.as_string() == "desc")) return v.as_string() == "desc";
  return Status::InvalidArgument("\"order\" must be \"asc\" or \"desc\"", std::string(field));
}

Status ExpectString(const Json& v, std::string_view field, std::string* out) {
  if (!v.is_string()) {
    return Status::InvalidArgument(fmt::format("\"{}\" must be a string", field), std::string(field));
  }
  *out = v.as_string();
  return Status::OK();
}

}  // namespace

Result<CompareOp> Filter::ParseOp(std::string_view t) {
  if (t == "=" || t == "==" || t == "eq") return CompareOp::kEq;
  if (t == "!=" || t == "ne") return CompareOp::kNe;
  if (t == ">" || t == "gt") return CompareOp::kGt;
  if (t == "<" || t == "lt") return CompareOp::kLt;
  if (t == ">=" || t == "gte") return CompareOp::kGe;
  if (t == "<=" || t == "lte") return CompareOp::kLe;
  if (t == "contains") return CompareOp::kContains;
  if (t == "in") return CompareOp::kIn;
  if (t == "starts_with") return CompareOp::kStartsWith;
  if (t == "not_in") return CompareOp::kNotIn;
  if (t == "exists") return CompareOp::kExists;
  return Status::InvalidArgument(fmt::format(
      "unknown operator \"{}\" (expected = != > < >= <= contains starts_with in not_in exists)", t.substr(0, 32)));
}

Result<Filter> Filter::FromJson(const Json& json) {
  size_t count = 0;
  return ParseGroup(json, 1, &count);
}

bool Filter::Matches(const Json& doc) const {
  if (combine == Combine::kAnd) {
    for (const Condition& c : conditions) {
      if (!MatchCondition(c, doc)) return false;
    }
    for (const Filter& g : groups) {
      if (!g.Matches(doc)) return false;
    }
    return true;
  }
  if (empty()) return true;
  for (const Condition& c : conditions) {
    if (MatchCondition(c, doc)) return true;
  }
  for (const Filter& g : groups) {
    if (g.Matches(doc)) return true;
  }
  return false;
}

Result<ProfileQuery> ProfileQuery::FromJson(const Json& json) {
  if (!json.is_object()) return Status::InvalidArgument("a search must be a JSON object");
  ProfileQuery q;
  Json group = Json::Object();
  for (const auto& [key, value] : json.members()) {
    if (key == "conditions" || key == "operator") {
      group.Set(key, value);
    } else if (key == "filter") {
      auto f = Filter::FromJson(value);
      if (!f.ok()) return f.status().WithFieldPrefix("filter");
      q.filter = std::move(f).value();
    } else if (key == "sort") {
      if (value.is_string()) {
        q.sort_by = value.as_string();
      } else if (value.is_object()) {
        for (const auto& [k, v] : value.members()) {
          if (k == "field") {
            CDP_RETURN_IF_ERROR(ExpectString(v, "sort.field", &q.sort_by));
          } else if (k == "order") {
            CDP_ASSIGN_OR_RETURN(q.descending, ParseOrder(v, "sort.order"));
          } else {
            return Status::InvalidArgument(fmt::format("unknown key \"{}\" in sort", k), "sort." + k);
          }
        }
      } else if (!value.is_null()) {
        return Status::InvalidArgument("\"sort\" must be a field path or {\"field\", \"order\"}", "sort");
      }
    } else if (key == "order") {
      CDP_ASSIGN_OR_RETURN(q.descending, ParseOrder(value, "order"));
    } else if (key == "limit") {
      CDP_ASSIGN_OR_RETURN(q.limit, ParseLimit(value, "limit"));
    } else if (key == "cursor") {
      if (!value.is_null()) CDP_RETURN_IF_ERROR(ExpectString(value, "cursor", &q.cursor));
    } else {
      return Status::InvalidArgument(fmt::format("unknown key \"{}\" in a search", key), key);
    }
  }
  if (group.size() > 0) {
    auto f = Filter::FromJson(group);
    if (!f.ok()) return f.status();
    q.filter = std::move(f).value();
  }
  if (q.sort_by.size() > kMaxFieldPath) return Status::InvalidArgument("sort field path too long", "sort.field");
  return q;
}

Result<EventQuery> EventQuery::FromJson(const Json& json) {
  if (!json.is_object()) return Status::InvalidArgument("an event query must be a JSON object");
  EventQuery q;
  for (const auto& [key, value] : json.members()) {
    if (value.is_null()) continue;
    if (key == "profileId") {
      CDP_RETURN_IF_ERROR(ExpectString(value, key, &q.profile_id));
      CDP_RETURN_IF_ERROR(internal::ValidateId(q.profile_id, "profileId"));
    } else if (key == "type") {
      CDP_RETURN_IF_ERROR(ExpectString(value, key, &q.type));
    } else if (key == "name") {
      CDP_RETURN_IF_ERROR(ExpectString(value, key, &q.name));
    } else if (key == "source") {
      CDP_RETURN_IF_ERROR(ExpectString(value, key, &q.source));
    } else if (key == "since" || key == "until") {
      auto t = ParseTimestamp(value);
      if (!t.ok()) return t.status().WithFieldPrefix(key);
      (key == "since" ? q.since_us : q.until_us) = *t;
    } else if (key == "where") {
      auto f = Filter::FromJson(value);
      if (!f.ok()) return f.status().WithFieldPrefix("where");
      q.where = std::move(f).value();
    } else if (key == "order") {
      CDP_ASSIGN_OR_RETURN(q.descending, ParseOrder(value, "order"));
    } else if (key == "limit") {
      CDP_ASSIGN_OR_RETURN(q.limit, ParseLimit(value, "limit"));
    } else if (key == "cursor") {
      CDP_RETURN_IF_ERROR(ExpectString(value, key, &q.cursor));
    } else {
      return Status::InvalidArgument(fmt::format("unknown key \"{}\" in an event query", key), key);
    }
  }
  return q;
}

Result<int64_t> ParseTimestamp(const Json& value) {
  if (value.is_number()) {
    double ms = value.as_number();
    if (!(ms >= 0) || ms > static_cast<double>(kMaxMicros / 1000)) {
      return Status::InvalidArgument("timestamp in epoch milliseconds is out of range (1970..9999)");
    }
    if (!value.is_int() && ms != static_cast<double>(static_cast<int64_t>(ms))) {
      return Status::InvalidArgument(fmt::format("epoch milliseconds are a whole number, not {}", ms));
    }
    return static_cast<int64_t>(ms) * 1000;
  }
  if (value.is_string()) return ParseTimestamp(value.as_string());
  return Status::InvalidArgument(fmt::format("a timestamp must be an ISO 8601 string or epoch milliseconds, not {}",
                                             Json::TypeName(value.type())));
}

Result<int64_t> ParseTimestamp(std::string_view s) {
  auto bad = [&] {
    return Status::InvalidArgument(
        fmt::format("\"{}\" is not an ISO 8601 timestamp (e.g. 2026-11-27T10:00:00Z)", s.substr(0, 64)));
  };
  size_t pos = 0;
  int year, month, day, hour = 0, minute = 0, second = 0;
  if (!ReadDigits(s, &pos, 4, &year) || !Expect(s, &pos, '-') || !ReadDigits(s, &pos, 2, &month) ||
      !Expect(s, &pos, '-') || !ReadDigits(s, &pos, 2, &day)) {
    return bad();
  }
  int64_t frac_us = 0;
  int64_t offset_s = 0;
  if (pos < s.size()) {
    if (!(Expect(s, &pos, 'T') || Expect(s, &pos, 't') || Expect(s, &pos, ' '))) return bad();
    if (!ReadDigits(s, &pos, 2, &hour) || !Expect(s, &pos, ':') || !ReadDigits(s, &pos, 2, &minute)) return bad();
    if (Expect(s, &pos, ':')) {
      if (!ReadDigits(s, &pos, 2, &second)) return bad();
      if (Expect(s, &pos, '.') || Expect(s, &pos, ',')) {
        int digits = 0;
        int64_t scale = 100000;
        while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
          if (digits < 3) frac_us += (s[pos] - '0') * scale;  // millisecond precision
          scale /= 10;
          ++digits;
          ++pos;
        }
        if (digits == 0 || digits > 9) return bad();
      }
    }
    if (Expect(s, &pos, 'Z') || Expect(s, &pos, 'z')) {
      // UTC
    } else if (pos < s.size() && (s[pos] == '+' || s[pos] == '-')) {
      int sign = s[pos] == '-' ? -1 : 1;
      ++pos;
      int oh, om;
      if (!ReadDigits(s, &pos, 2, &oh)) return bad();
      Expect(s, &pos, ':');
      if (!ReadDigits(s, &pos, 2, &om) || oh > 23 || om > 59) return bad();
      offset_s = sign * (oh * 3600 + om * 60);
    }
    if (pos != s.size()) return bad();
  }
  static const int kDaysIn[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (month < 1 || month > 12 || day < 1 || day > kDaysIn[month - 1] || hour > 23 || minute > 59 || second > 60) {
    return bad();
  }
  bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
  if (month == 2 && day == 29 && !leap) return bad();
  // A well-formed time outside what is stored says so, rather than that it is no timestamp.
  auto out_of_range = [&] {
    return Status::InvalidArgument(
        fmt::format("timestamp \"{}\" is out of range (1970-01-01T00:00:00Z to 9999-12-31)", s.substr(0, 64)));
  };
  if (year < 1970) return out_of_range();
  int64_t days = internal::DaysFromCivil(year, month, day);
  int64_t secs = days * 86400 + hour * 3600 + minute * 60 + second - offset_s;
  int64_t micros = secs * 1000000 + frac_us;
  if (micros < kMinMicros || micros > kMaxMicros) return out_of_range();
  return micros;
}

std::string FormatTimestamp(int64_t micros) {
  if (micros < 0) micros = 0;
  int64_t secs = micros / 1000000;
  int ms = static_cast<int>((micros % 1000000) / 1000);
  int64_t days = secs / 86400;
  int rem = static_cast<int>(secs % 86400);
  int y, m, d;
  internal::CivilFromDays(days, &y, &m, &d);
  // "YYYY-MM-DDTHH:MM:SS.mmmZ", written digit by digit: this runs twice for every stored event.
  std::string out(24, '0');
  auto put = [&out](size_t pos, int value, int width) {
    for (int i = width - 1; i >= 0; --i, value /= 10) out[pos + i] = static_cast<char>('0' + value % 10);
  };
  put(0, y, 4);
  out[4] = '-';
  put(5, m, 2);
  out[7] = '-';
  put(8, d, 2);
  out[10] = 'T';
  put(11, rem / 3600, 2);
  out[13] = ':';
  put(14, rem / 60 % 60, 2);
  out[16] = ':';
  put(17, rem % 60, 2);
  out[19] = '.';
  put(20, ms, 3);
  out[23] = 'Z';
  return out;
}

}  // namespace cdp
