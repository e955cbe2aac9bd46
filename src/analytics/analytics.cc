// Copyright 2026 The libcdp Authors.

#include "analytics/analytics.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <map>
#include <set>
#include <tuple>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "cdp/query.h"
#include "cdp/segment_rule.h"
#include "core/civil_time.h"
#include "fmt/format.h"

namespace cdp::analytics {

namespace {

using segments::Cell;
using segments::Column;
using segments::EventFilter;
using segments::EventRef;
using segments::SegmentIndex;
using segments::Tag;

constexpr int64_t kSecond = 1000000;

// A sum of money as answers give it: to the micro-unit purchase values are kept in, so that adding up 12.34s in
// binary floating point does not answer 50575.980000000105.
double Money(double amount) { return std::round(amount * 1e6) / 1e6; }
constexpr int64_t kDay = 86400 * kSecond;
constexpr int64_t kMinTime = std::numeric_limits<int64_t>::min();
constexpr int64_t kMaxTime = std::numeric_limits<int64_t>::max();
constexpr size_t kMaxBreakdownValues = 100;   // funnel breakdown groups answered (the largest)
constexpr size_t kMaxSeriesValues = 1000000;  // distinct values of a trends property
constexpr size_t kTopValues = 20;             // trends series per event when by a property

// InvalidArgument for the first member of `request` not in `allowed`, or a request that is not an object.
Status CheckMembers(const Json& request, std::initializer_list<std::string_view> allowed) {
  if (!request.is_object()) return Status::InvalidArgument("the request must be a JSON object");
  for (const auto& [key, value] : request.members()) {
    if (std::find(allowed.begin(), allowed.end(), key) == allowed.end()) {
      return Status::InvalidArgument(fmt::format("unknown member \"{}\"", key), key);
    }
  }
  return Status::OK();
}

Status OptionalTime(const Json& request, const char* key, int64_t* out) {
  const Json* v = request.Find(key);
  if (v == nullptr || v->is_null()) return Status::OK();
  auto t = ParseTimestamp(*v);
  if (!t.ok()) return Status::InvalidArgument("expected an ISO 8601 timestamp", key);
  *out = *t;
  return Status::OK();
}

Status OptionalDuration(const Json& request, const char* key, int64_t* out) {
  const Json* v = request.Find(key);
  if (v == nullptr || v->is_null()) return Status::OK();
  if (!v->is_string()) return Status::InvalidArgument("expected a duration such as \"7d\"", key);
  auto d = ParseRuleDuration(v->as_string());
  if (!d.ok()) return Status::InvalidArgument(d.status().message(), key);
  if (*d <= 0) return Status::InvalidArgument("expected a positive duration such as \"7d\"", key);
  *out = *d;
  return Status::OK();
}

// from and to (each optional), with from <= to.
Status OptionalRange(const Json& request, int64_t* from, int64_t* to) {
  CDP_RETURN_IF_ERROR(OptionalTime(request, "from", from));
  CDP_RETURN_IF_ERROR(OptionalTime(request, "to", to));
  if (*from > *to) return Status::InvalidArgument("from is later than to", "to");
  return Status::OK();
}

// The robust z-score of x against `baseline`: (x - median) / (1.4826 * MAD), with 1.2533 * the mean absolute
// deviation when the MAD is 0; 0 when both are 0 and x is the median, nullopt when both are 0 and it is not.
std::optional<double> RobustZ(double x, std::vector<double> baseline, double* median_out = nullptr);

Status OptionalString(const Json& request, const char* key, std::string* out) {
  const Json* v = request.Find(key);
  if (v == nullptr || v->is_null()) return Status::OK();
  if (!v->is_string() || v->as_string().empty()) return Status::InvalidArgument("expected a non-empty string", key);
  *out = v->as_string();
  return Status::OK();
}

// An event match from {"event", "where"?}, parsed as a segment rule's behavioural condition. `path` prefixes errors.
Result<EventMatch> ParseMatch(const std::string& event, const Json* where, std::string_view path) {
  Json condition = Json::Object().Set("event", event);
  if (where != nullptr && !where->is_null()) condition.Set("where", *where);
  auto rule = SegmentRule::FromJson(condition);
  if (!rule.ok()) {
    std::string field = rule.status().field();
    if (field.rfind("conditions[0].", 0) == 0) field = field.substr(14);
    return Status::InvalidArgument(rule.status().message(), std::string(path) + (field.empty() ? "" : ".") + field);
  }
  const RuleNode* node = &rule->root();
  if (node->kind == RuleNode::Kind::kAnd && node->children.size() == 1) node = &node->children[0];
  if (node->kind != RuleNode::Kind::kEvent) return Status::InvalidArgument("expected an event", std::string(path));
  return node->events;
}

// A prepared match and, per table, whether it can match there at all.
struct Matcher {
  std::shared_ptr<const EventFilter> filter;
  std::vector<uint8_t> table_ok;
  bool has_where = false;

  Matcher(SegmentIndex& index, const EventMatch& match)
      : filter(index.PrepareEvents(match)), has_where(!match.where.empty()) {
    for (uint32_t t = 0; t < index.table_count(); ++t) {
      const segments::EventTable& table = index.table(t);
      table_ok.push_back(match.event == "*" || (match.event == "custom" && table.type == "custom") ||
                         (table.type == "custom" ? table.name == match.event : table.type == match.event));
    }
  }
  bool Test(const SegmentIndex& index, const EventRef& r) const {
    if (r.table >= table_ok.size() || !table_ok[r.table]) return false;
    return !has_where || index.Matches(*filter, r.table, r.row);
  }
};

// A cell as JSON (null when absent).
Json CellJson(const SegmentIndex& index, Cell c) {
  switch (c.tag) {
    case Tag::kString:
      return Json(std::string(index.pool().Get(static_cast<uint32_t>(c.bits))));
    case Tag::kTime:
      return Json(FormatTimestamp(static_cast<int64_t>(c.bits)));
    case Tag::kInt:
      return Json(static_cast<int64_t>(c.bits));
    case Tag::kDouble: {
      double d;
      std::memcpy(&d, &c.bits, sizeof d);
      return Json(d);
    }
    case Tag::kTrue:
      return Json(true);
    case Tag::kFalse:
      return Json(false);
    default:
      return Json();
  }
}

std::optional<double> CellNumber(Cell c) {
  if (c.tag == Tag::kInt) return static_cast<double>(static_cast<int64_t>(c.bits));
  if (c.tag == Tag::kDouble) {
    double d;
    std::memcpy(&d, &c.bits, sizeof d);
    return d;
  }
  return std::nullopt;
}

// Calls f(row) for each row of `table` with time in [lo, hi] (the zone map skips blocks outside).
template <typename F>
void RowsIn(const segments::EventTable& table, int64_t lo, int64_t hi, F&& f) {
  for (size_t b = 0; b < table.block_min.size(); ++b) {
    if (table.block_max[b] < lo || table.block_min[b] > hi) continue;
    const size_t end = std::min(table.time.size(), (b + 1) * segments::EventTable::kBlockRows);
    for (size_t row = b * segments::EventTable::kBlockRows; row < end; ++row) {
      if (table.time[row] >= lo && table.time[row] <= hi && table.ordinal[row] != SegmentIndex::kRemoved) f(row);
    }
  }
}

// The cell of an event's column `path` (Missing when the table has no such column).
Cell EventCell(const SegmentIndex& index, const EventRef& r, std::string_view path) {
  const Column* col = index.table(r.table).props.Find(path);
  return col == nullptr ? Cell{} : col->Get(r.row);
}

double Median(std::vector<double>* v) {
  std::sort(v->begin(), v->end());
  const size_t n = v->size();
  return n % 2 == 1 ? (*v)[n / 2] : ((*v)[n / 2 - 1] + (*v)[n / 2]) / 2;
}

std::optional<double> RobustZ(double x, std::vector<double> baseline, double* median_out) {
  const double m = Median(&baseline);
  if (median_out != nullptr) *median_out = m;
  std::vector<double> dev;
  for (double b : baseline) dev.push_back(std::abs(b - m));
  double spread = 1.4826 * Median(&dev);
  if (spread == 0) {
    double mean = 0;
    for (double d : dev) mean += d;
    spread = 1.2533 * mean / static_cast<double>(dev.size());
  }
  if (spread > 0) return (x - m) / spread;
  if (x == m) return 0.0;
  return std::nullopt;
}

// ---- Funnel --------------------------------------------------------------------------------------------------------

struct FunnelCounts {
  std::vector<int64_t> reached;              // profiles reaching each step
  std::vector<std::vector<double>> seconds;  // per step: seconds from the step before, per profile
  explicit FunnelCounts(size_t steps) : reached(steps), seconds(steps) {}
  void Add(int depth, const std::vector<int64_t>& times) {
    for (int k = 0; k < depth; ++k) {
      ++reached[k];
      if (k > 0) seconds[k].push_back(static_cast<double>(times[k] - times[k - 1]) / kSecond);
    }
  }
  Json ToJson(const std::vector<std::string>& events) {
    Json out = Json::Array();
    for (size_t k = 0; k < reached.size(); ++k) {
      Json step = Json::Object();
      step.Set("step", static_cast<int64_t>(k + 1));
      step.Set("event", events[k]);
      step.Set("profiles", reached[k]);
      const double prev = k == 0 ? static_cast<double>(reached[0]) : static_cast<double>(reached[k - 1]);
      step.Set("conversionFromPrevious", prev > 0 ? static_cast<double>(reached[k]) / prev : 0.0);
      step.Set("conversionFromFirst", reached[0] > 0 ? static_cast<double>(reached[k]) / reached[0] : 0.0);
      step.Set("medianSecondsFromPrevious", k == 0 || seconds[k].empty() ? Json() : Json(Median(&seconds[k])));
      out.Push(std::move(step));
    }
    return out;
  }
};

}  // namespace

Result<Json> Funnel(SegmentIndex& index, const Json& request) {
  CDP_RETURN_IF_ERROR(CheckMembers(request, {"steps", "window", "from", "to", "breakdown"}));
  const Json* steps_json = request.Find("steps");
  if (steps_json == nullptr || !steps_json->is_array() || steps_json->size() < 2 || steps_json->size() > 10) {
    return Status::InvalidArgument("expected an array of 2 to 10 steps", "steps");
  }
  std::vector<Matcher> steps;
  std::vector<std::string> names;
  for (size_t k = 0; k < steps_json->size(); ++k) {
    const Json& s = steps_json->items()[k];
    const std::string path = fmt::format("steps[{}]", k);
    if (!s.is_object()) return Status::InvalidArgument("expected an object", path);
    CDP_RETURN_IF_ERROR(CheckMembers(s, {"event", "where"}).WithFieldPrefix(path));
    std::string event;
    CDP_RETURN_IF_ERROR(OptionalString(s, "event", &event).WithFieldPrefix(path));
    if (event.empty()) return Status::InvalidArgument("a step needs an event", path + ".event");
    CDP_ASSIGN_OR_RETURN(EventMatch match, ParseMatch(event, s.Find("where"), path));
    steps.emplace_back(index, match);
    names.push_back(event);
  }
  int64_t window = 7 * kDay, from = kMinTime, to = kMaxTime;
  CDP_RETURN_IF_ERROR(OptionalDuration(request, "window", &window));
  CDP_RETURN_IF_ERROR(OptionalRange(request, &from, &to));
  std::string breakdown;
  CDP_RETURN_IF_ERROR(OptionalString(request, "breakdown", &breakdown));
  const bool by_property = breakdown.rfind("properties.", 0) == 0;
  if (!breakdown.empty() && !by_property && breakdown.rfind("attributes.", 0) != 0) {
    return Status::InvalidArgument("expected \"properties.<name>\" or \"attributes.<name>\"", "breakdown");
  }
  const Column* profile_column = by_property || breakdown.empty() ? nullptr : index.profile_table().Find(breakdown);

  const size_t n = steps.size();
  FunnelCounts total(n);
  std::map<std::string, std::pair<Json, FunnelCounts>> groups;  // by the value's JSON text
  std::vector<int64_t> times(n), best_times(n);
  std::vector<uint16_t> masks;
  std::vector<std::vector<size_t>> next(n);
  std::vector<size_t> after;
  for (uint32_t ord : index.universe()) {
    std::span<const EventRef> refs = index.EventsOf(ord);
    // Which steps each event matches (a step is tested once per event).
    masks.assign(refs.size(), 0);
    bool enters = false;
    for (size_t i = 0; i < refs.size(); ++i) {
      for (size_t k = 0; k < n; ++k) {
        if (steps[k].Test(index, refs[i])) masks[i] |= static_cast<uint16_t>(1u << k);
      }
      enters |= (masks[i] & 1) && refs[i].time >= from && refs[i].time <= to;
    }
    if (!enters) continue;
    // For a profile with many events, next[k][i]: the first event at or after i matching step k (refs.size() when
    // none), and after[i]: the first event strictly later than event i, so that an entry costs O(steps) whatever
    // the events between its steps. A short profile is scanned instead (cheaper than building them).
    const size_t size = refs.size();
    const bool indexed = size > 32;
    if (indexed) {
      for (size_t k = 1; k < n; ++k) {
        next[k].resize(size + 1);
        next[k][size] = size;
        for (size_t i = size; i-- > 0;) next[k][i] = (masks[i] >> k & 1) ? i : next[k][i + 1];
      }
      after.resize(size);
      for (size_t i = size; i-- > 0;) {
        after[i] = i + 1 < size && refs[i + 1].time == refs[i].time ? after[i + 1] : i + 1;
      }
    }
    // The earliest event matching step k strictly later than event `prev`.
    auto following = [&](size_t k, size_t prev) {
      if (indexed) return next[k][after[prev]];
      size_t j = prev + 1;
      while (j < size && (refs[j].time == refs[prev].time || !(masks[j] >> k & 1))) ++j;
      return j;
    };
    int best = 0;
    size_t best_entry = 0;
    for (size_t i = 0; i < size && best < static_cast<int>(n); ++i) {
      if (!(masks[i] & 1) || refs[i].time < from || refs[i].time > to) continue;
      times[0] = refs[i].time;
      const int64_t limit = refs[i].time > kMaxTime - window ? kMaxTime : refs[i].time + window;
      int depth = 1;
      size_t prev = i;
      for (size_t k = 1; k < n; ++k) {
        const size_t j = following(k, prev);
        if (j == size || refs[j].time > limit) break;
        times[k] = refs[j].time;
        prev = j;
        ++depth;
      }
      if (depth > best) {
        best = depth;
        best_entry = i;
        best_times = times;
      }
    }
    total.Add(best, best_times);
    if (breakdown.empty()) continue;
    Cell c = by_property ? EventCell(index, refs[best_entry], breakdown)
                         : (profile_column != nullptr ? profile_column->Get(ord) : Cell{});
    Json value = CellJson(index, c);
    auto [it, inserted] = groups.try_emplace(value.Dump(), value, FunnelCounts(n));
    it->second.second.Add(best, best_times);
  }
  Json out = Json::Object();
  out.Set("steps", total.ToJson(names));
  if (!breakdown.empty()) {
    std::vector<std::pair<Json, FunnelCounts>*> ordered;
    for (auto& [key, group] : groups) ordered.push_back(&group);
    std::stable_sort(ordered.begin(), ordered.end(),
                     [](auto* a, auto* b) { return a->second.reached[0] > b->second.reached[0]; });
    Json list = Json::Array();
    for (size_t i = 0; i < ordered.size() && i < kMaxBreakdownValues; ++i) {
      list.Push(Json::Object().Set("value", ordered[i]->first).Set("steps", ordered[i]->second.ToJson(names)));
    }
    out.Set("breakdown", std::move(list));
    out.Set("breakdownValues", static_cast<int64_t>(groups.size()));
  }
  return out;
}

// ---- Cohorts -------------------------------------------------------------------------------------------------------

namespace {

enum class Period { kDay, kWeek, kMonth };

// The number of the period holding `t` (days, weeks from a Monday, or months since 1970).
int64_t PeriodOf(Period p, int64_t t) {
  const int64_t day = t >= 0 ? t / kDay : (t - kDay + 1) / kDay;
  switch (p) {
    case Period::kDay:
      return day;
    case Period::kWeek: {
      const int64_t monday = day - (((day + 3) % 7) + 7) % 7;  // 1970-01-01 was a Thursday
      return (monday + 3) / 7;                                 // exact: monday + 3 is a multiple of 7
    }
    case Period::kMonth: {
      int y, m, d;
      internal::CivilFromDays(day, &y, &m, &d);
      return static_cast<int64_t>(y) * 12 + (m - 1) - 1970 * 12;
    }
  }
  return 0;
}

// The start (µs) of period number `n`.
int64_t PeriodStart(Period p, int64_t n) {
  switch (p) {
    case Period::kDay:
      return n * kDay;
    case Period::kWeek:
      return (n * 7 - 3) * kDay;  // the Monday of week n (week 0 starts on 1969-12-29)
    case Period::kMonth: {
      const int64_t months = n + 1970 * 12;
      const int64_t y = months >= 0 ? months / 12 : (months - 11) / 12;
      return internal::DaysFromCivil(y, static_cast<int>(months - y * 12) + 1, 1) * kDay;
    }
  }
  return 0;
}

}  // namespace

Result<Json> Cohorts(SegmentIndex& index, const Json& request) {
  CDP_RETURN_IF_ERROR(CheckMembers(request, {"cohortEvent", "returnEvent", "period", "periods", "from", "to"}));
  std::string cohort_event = "*", return_event = "*", period_name = "week";
  CDP_RETURN_IF_ERROR(OptionalString(request, "cohortEvent", &cohort_event));
  CDP_RETURN_IF_ERROR(OptionalString(request, "returnEvent", &return_event));
  CDP_RETURN_IF_ERROR(OptionalString(request, "period", &period_name));
  Period period;
  if (period_name == "day") {
    period = Period::kDay;
  } else if (period_name == "week") {
    period = Period::kWeek;
  } else if (period_name == "month") {
    period = Period::kMonth;
  } else {
    return Status::InvalidArgument("expected \"day\", \"week\" or \"month\"", "period");
  }
  int64_t periods = 12;
  if (const Json* p = request.Find("periods"); p != nullptr && !p->is_null()) {
    if (!p->is_int() || p->as_int() < 1 || p->as_int() > 120) {
      return Status::InvalidArgument("expected an integer from 1 to 120", "periods");
    }
    periods = p->as_int();
  }
  int64_t from = kMinTime, to = kMaxTime;
  CDP_RETURN_IF_ERROR(OptionalRange(request, &from, &to));
  CDP_ASSIGN_OR_RETURN(EventMatch cm, ParseMatch(cohort_event, nullptr, "cohortEvent"));
  CDP_ASSIGN_OR_RETURN(EventMatch rm, ParseMatch(return_event, nullptr, "returnEvent"));
  Matcher cohort(index, cm), returning(index, rm);

  struct Row {
    int64_t size = 0;
    std::vector<int64_t> counts;
  };
  std::map<int64_t, Row> rows;  // by cohort period number
  std::vector<uint8_t> seen(static_cast<size_t>(periods));
  for (uint32_t ord : index.universe()) {
    std::span<const EventRef> refs = index.EventsOf(ord);
    size_t first = 0;
    while (first < refs.size() && !cohort.Test(index, refs[first])) ++first;
    if (first == refs.size()) continue;
    const int64_t number = PeriodOf(period, refs[first].time);
    const int64_t start = PeriodStart(period, number);
    if (start < from || start > to) continue;
    Row& row = rows[number];
    if (row.counts.empty()) row.counts.assign(static_cast<size_t>(periods), 0);
    ++row.size;
    std::fill(seen.begin(), seen.end(), 0);
    // From the cohort period's start: a return event earlier in that period than the cohort event counts too.
    const size_t from_start = static_cast<size_t>(
        std::lower_bound(refs.begin(), refs.end(), start, [](const EventRef& r, int64_t v) { return r.time < v; }) -
        refs.begin());
    for (size_t i = from_start; i < refs.size(); ++i) {
      if (!returning.Test(index, refs[i])) continue;
      const int64_t k = PeriodOf(period, refs[i].time) - number;
      if (k >= periods) break;
      if (!seen[k]) {
        seen[k] = 1;
        ++row.counts[k];
      }
    }
  }
  Json list = Json::Array();
  for (const auto& [number, row] : rows) {
    Json counts = Json::Array(), pct = Json::Array();
    for (int64_t c : row.counts) {
      counts.Push(c);
      pct.Push(100.0 * static_cast<double>(c) / static_cast<double>(row.size));
    }
    list.Push(Json::Object()
                  .Set("cohort", FormatTimestamp(PeriodStart(period, number)))
                  .Set("size", row.size)
                  .Set("counts", std::move(counts))
                  .Set("percentages", std::move(pct)));
  }
  return Json::Object().Set("period", period_name).Set("periods", periods).Set("cohorts", std::move(list));
}

// ---- Attribution ---------------------------------------------------------------------------------------------------

namespace {

struct Touch {
  int64_t time;
  uint32_t channel;
};

// First-order Markov chain over channels: the probability of reaching "conversion" from the start, with `removed`
// (or none: UINT32_MAX) leading to "null" instead. Solved by Gauss-Seidel iteration to 1e-13.
// A channel's loop back to itself (p_ii) is solved exactly: x_i = (b_i + sum_{j != i} p_ij x_j) / (1 - p_ii).
// Errors: Internal when 100,000 sweeps do not converge (a chain with no way out of some channel cannot happen: every
// path ends in conversion or null).
Result<double> ConversionProbability(const std::vector<absl::flat_hash_map<uint32_t, double>>& next,
                                     const std::vector<double>& to_conversion, const std::vector<double>& start,
                                     uint32_t removed) {
  const size_t n = to_conversion.size();
  std::vector<double> x(n, 0.0);
  bool converged = false;
  for (int iter = 0; iter < 100000 && !converged; ++iter) {
    double change = 0;
    for (size_t i = 0; i < n; ++i) {
      if (i == removed) continue;
      double v = to_conversion[i], self = 0;
      for (const auto& [j, p] : next[i]) {
        if (j == i) {
          self = p;
        } else if (j != removed) {
          v += p * x[j];
        }
      }
      v = self < 1 ? v / (1 - self) : 0.0;
      change = std::max(change, std::abs(v - x[i]));
      x[i] = v;
    }
    converged = change < 1e-13;
  }
  if (!converged) return Status::Internal("the attribution's Markov chain did not converge");
  double total = 0;
  for (size_t i = 0; i < n; ++i) {
    if (i != removed) total += start[i] * x[i];
  }
  return total;
}

}  // namespace

Result<Json> Attribution(SegmentIndex& index, const Json& request) {
  CDP_RETURN_IF_ERROR(CheckMembers(request, {"conversion", "model", "lookback", "halfLife", "from", "to"}));
  std::string conversion, model = "last_touch";
  CDP_RETURN_IF_ERROR(OptionalString(request, "conversion", &conversion));
  if (conversion.empty()) return Status::InvalidArgument("the conversion event is required", "conversion");
  CDP_RETURN_IF_ERROR(OptionalString(request, "model", &model));
  static const std::set<std::string, std::less<>> kModels = {"first_touch", "last_touch",     "linear",
                                                             "time_decay",  "position_based", "data_driven"};
  if (!kModels.contains(model)) {
    return Status::InvalidArgument(
        "expected first_touch, last_touch, linear, time_decay, position_based or data_driven", "model");
  }
  int64_t lookback = 30 * kDay, half_life = 7 * kDay, from = kMinTime, to = kMaxTime;
  CDP_RETURN_IF_ERROR(OptionalDuration(request, "lookback", &lookback));
  CDP_RETURN_IF_ERROR(OptionalDuration(request, "halfLife", &half_life));
  CDP_RETURN_IF_ERROR(OptionalRange(request, &from, &to));
  CDP_ASSIGN_OR_RETURN(EventMatch cm, ParseMatch(conversion, nullptr, "conversion"));
  Matcher converts(index, cm);

  // The columns read per table, resolved once.
  constexpr const char* kPaths[6] = {"properties.utm_source", "properties.utm_medium", "properties.utm_campaign",
                                     "properties.revenue",    "properties.total",      "properties.value"};
  std::vector<std::array<const Column*, 6>> columns(index.table_count());
  for (uint32_t t = 0; t < index.table_count(); ++t) {
    for (int i = 0; i < 6; ++i) columns[t][i] = index.table(t).props.Find(kPaths[i]);
  }
  auto cell = [&](const EventRef& r, int i) { return columns[r.table][i] ? columns[r.table][i]->Get(r.row) : Cell{}; };
  // Channels: (source, medium, campaign), found by their cells (interned strings compare by id).
  std::vector<std::array<std::string, 3>> channels;
  absl::flat_hash_map<std::array<uint64_t, 6>, uint32_t> channel_ids;
  absl::flat_hash_map<std::string, uint32_t> channel_names;
  auto channel_of = [&](const EventRef& r) {
    std::array<uint64_t, 6> cells;
    for (int i = 0; i < 3; ++i) {
      const Cell c = cell(r, i);
      cells[2 * i] = static_cast<uint64_t>(c.tag);
      cells[2 * i + 1] = c.bits;
    }
    auto found = channel_ids.find(cells);
    if (found != channel_ids.end()) return found->second;
    std::array<std::string, 3> key;  // cells that read the same (absent and null, "1" and 1) are one channel
    const char* absent[3] = {"(direct)", "(none)", "(none)"};
    for (int i = 0; i < 3; ++i) {
      Json v = CellJson(index, cell(r, i));
      key[i] = v.is_null() ? absent[i] : (v.is_string() ? v.as_string() : v.Dump());
    }
    auto [named, inserted] =
        channel_names.try_emplace(key[0] + '\0' + key[1] + '\0' + key[2], static_cast<uint32_t>(channels.size()));
    if (inserted) channels.push_back(std::move(key));
    channel_ids.emplace(cells, named->second);
    return named->second;
  };
  auto revenue_of = [&](const EventRef& r) {
    for (int i = 3; i < 6; ++i) {
      if (auto v = CellNumber(cell(r, i))) return *v;
    }
    return 0.0;
  };

  std::vector<double> credit, credit_revenue;
  auto give = [&](uint32_t channel, double share, double revenue) {
    if (credit.size() <= channel) {
      credit.resize(channel + 1, 0.0);
      credit_revenue.resize(channel + 1, 0.0);
    }
    credit[channel] += share;
    credit_revenue[channel] += share * revenue;
  };
  // data_driven: the paths (channels in order) and whether each converted, with the revenue of converting ones.
  std::vector<std::vector<uint32_t>> paths;
  std::vector<uint8_t> converted;
  double total_revenue = 0, converting_revenue = 0;
  int64_t conversions = 0, unattributed = 0;

  std::vector<Touch> touches;
  std::vector<int64_t> used;
  absl::flat_hash_set<uint64_t> sessions;
  for (uint32_t ord : index.universe()) {
    std::span<const EventRef> refs = index.EventsOf(ord);
    bool any = false;
    for (const EventRef& r : refs) {
      if (r.time >= from && r.time <= to && converts.Test(index, r)) {
        any = true;
        break;
      }
    }
    if (!any && model != "data_driven") continue;
    touches.clear();
    sessions.clear();
    for (const EventRef& r : refs) {
      const uint64_t session = index.table(r.table).session[r.row];
      if (session != 0 && sessions.insert(session).second) touches.push_back({r.time, channel_of(r)});
    }
    const bool markov = model == "data_driven";
    if (markov) used.assign(touches.size() + 1, 0);  // a difference array: +1 where a credited range starts
    for (const EventRef& r : refs) {
      if (r.time < from || r.time > to || !converts.Test(index, r)) continue;
      ++conversions;
      const double revenue = revenue_of(r);
      total_revenue += revenue;
      const int64_t lo = r.time < kMinTime + lookback ? kMinTime : r.time - lookback;
      auto first =
          std::lower_bound(touches.begin(), touches.end(), lo, [](const Touch& t, int64_t v) { return t.time < v; });
      auto last = std::upper_bound(touches.begin(), touches.end(), r.time,
                                   [](int64_t v, const Touch& t) { return v < t.time; });
      const size_t a = static_cast<size_t>(first - touches.begin()), b = static_cast<size_t>(last - touches.begin());
      if (a == b) {
        ++unattributed;
        continue;
      }
      const size_t count = b - a;
      if (markov) {
        ++used[a];
        --used[b];
      }
      if (model == "first_touch") {
        give(touches[a].channel, 1.0, revenue);
      } else if (model == "last_touch") {
        give(touches[b - 1].channel, 1.0, revenue);
      } else if (model == "linear") {
        for (size_t i = a; i < b; ++i) give(touches[i].channel, 1.0 / static_cast<double>(count), revenue);
      } else if (model == "time_decay") {
        double sum = 0;
        std::vector<double> w(count);
        for (size_t i = a; i < b; ++i) {
          // Relative to the newest touch (the same shares once normalized, and no underflow to 0 / 0).
          w[i - a] =
              std::exp2(-static_cast<double>(touches[b - 1].time - touches[i].time) / static_cast<double>(half_life));
          sum += w[i - a];
        }
        for (size_t i = a; i < b; ++i) give(touches[i].channel, w[i - a] / sum, revenue);
      } else if (model == "position_based") {
        if (count == 1) {
          give(touches[a].channel, 1.0, revenue);
        } else if (count == 2) {
          give(touches[a].channel, 0.5, revenue);
          give(touches[a + 1].channel, 0.5, revenue);
        } else {
          give(touches[a].channel, 0.4, revenue);
          give(touches[b - 1].channel, 0.4, revenue);
          for (size_t i = a + 1; i + 1 < b; ++i)
            give(touches[i].channel, 0.2 / static_cast<double>(count - 2), revenue);
        }
      } else {  // data_driven
        std::vector<uint32_t> path;
        for (size_t i = a; i < b; ++i) path.push_back(touches[i].channel);
        paths.push_back(std::move(path));
        converted.push_back(1);
        converting_revenue += revenue;
      }
    }
    if (model == "data_driven") {
      // The profile's other sessions in the period (and its lookback) form one path that did not convert.
      const int64_t lo = from < kMinTime + lookback ? kMinTime : from - lookback;
      std::vector<uint32_t> path;
      int64_t covering = 0;  // credited ranges covering touch i
      for (size_t i = 0; i < touches.size(); ++i) {
        covering += used[i];
        if (covering == 0 && touches[i].time >= lo && touches[i].time <= to) path.push_back(touches[i].channel);
      }
      if (!path.empty()) {
        paths.push_back(std::move(path));
        converted.push_back(0);
      }
    }
  }

  if (model == "data_driven" && !paths.empty()) {
    const size_t n = channels.size();
    std::vector<absl::flat_hash_map<uint32_t, double>> next(n);
    std::vector<double> to_conversion(n, 0.0), to_null(n, 0.0), start(n, 0.0), out(n, 0.0);
    for (size_t p = 0; p < paths.size(); ++p) {
      const std::vector<uint32_t>& path = paths[p];
      start[path[0]] += 1;
      for (size_t i = 0; i + 1 < path.size(); ++i) next[path[i]][path[i + 1]] += 1;
      (converted[p] ? to_conversion : to_null)[path.back()] += 1;
    }
    for (size_t i = 0; i < n; ++i) {
      out[i] = to_conversion[i] + to_null[i];
      for (const auto& [j, c] : next[i]) out[i] += c;
      if (out[i] > 0) {
        to_conversion[i] /= out[i];
        for (auto& [j, c] : next[i]) c /= out[i];
      }
    }
    const double starts = static_cast<double>(paths.size());
    for (double& s : start) s /= starts;
    CDP_ASSIGN_OR_RETURN(const double base, ConversionProbability(next, to_conversion, start, UINT32_MAX));
    std::vector<double> effect(n, 0.0);
    double effects = 0;
    for (uint32_t c = 0; c < n; ++c) {
      if (start[c] == 0 && out[c] == 0) continue;
      if (base <= 0) continue;
      CDP_ASSIGN_OR_RETURN(const double without, ConversionProbability(next, to_conversion, start, c));
      effect[c] = std::max(0.0, 1.0 - without / base);
      effects += effect[c];
    }
    const double attributed = static_cast<double>(conversions - unattributed);
    for (uint32_t c = 0; c < n && effects > 0; ++c) {
      if (effect[c] == 0) continue;
      credit.resize(n, 0.0);
      credit_revenue.resize(n, 0.0);
      credit[c] = attributed * effect[c] / effects;
      credit_revenue[c] = converting_revenue * effect[c] / effects;
    }
  }

  std::vector<uint32_t> order;
  for (uint32_t c = 0; c < credit.size(); ++c) {
    if (credit[c] > 0) order.push_back(c);
  }
  std::sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) {
    return credit[a] != credit[b] ? credit[a] > credit[b] : channels[a] < channels[b];
  });
  Json list = Json::Array();
  for (uint32_t c : order) {
    list.Push(Json::Object()
                  .Set("source", channels[c][0])
                  .Set("medium", channels[c][1])
                  .Set("campaign", channels[c][2])
                  .Set("conversions", credit[c])
                  .Set("revenue", Money(credit_revenue[c])));
  }
  return Json::Object()
      .Set("model", model)
      .Set("conversions", conversions)
      .Set("revenue", Money(total_revenue))
      .Set("unattributed", unattributed)
      .Set("channels", std::move(list));
}

// ---- Journeys ------------------------------------------------------------------------------------------------------

Result<Json> Journeys(SegmentIndex& index, const Json& request) {
  CDP_RETURN_IF_ERROR(
      CheckMembers(request, {"conversion", "steps", "by", "lookback", "from", "to", "limit", "collapseRepeats"}));
  std::string conversion, by = "type";
  CDP_RETURN_IF_ERROR(OptionalString(request, "conversion", &conversion));
  if (conversion.empty()) return Status::InvalidArgument("the conversion event is required", "conversion");
  CDP_RETURN_IF_ERROR(OptionalString(request, "by", &by));
  if (by != "type" && by != "page") return Status::InvalidArgument("expected \"type\" or \"page\"", "by");
  int64_t steps = 5, limit = 20, lookback = 30 * kDay, from = kMinTime, to = kMaxTime;
  for (auto [key, out, hi] : {std::tuple{"steps", &steps, 20}, std::tuple{"limit", &limit, 1000}}) {
    if (const Json* v = request.Find(key); v != nullptr && !v->is_null()) {
      if (!v->is_int() || v->as_int() < 1 || v->as_int() > hi) {
        return Status::InvalidArgument(fmt::format("expected an integer from 1 to {}", hi), key);
      }
      *out = v->as_int();
    }
  }
  bool collapse = true;
  if (const Json* v = request.Find("collapseRepeats"); v != nullptr && !v->is_null()) {
    if (!v->is_bool()) return Status::InvalidArgument("expected true or false", "collapseRepeats");
    collapse = v->as_bool();
  }
  CDP_RETURN_IF_ERROR(OptionalDuration(request, "lookback", &lookback));
  CDP_RETURN_IF_ERROR(OptionalRange(request, &from, &to));
  CDP_ASSIGN_OR_RETURN(EventMatch cm, ParseMatch(conversion, nullptr, "conversion"));
  Matcher converts(index, cm);

  // Step labels: the event type (a custom event's name), or for page views with by = "page" the page's path, url or
  // page property.
  std::vector<std::array<const Column*, 3>> page_columns(index.table_count());
  for (uint32_t t = 0; t < index.table_count(); ++t) {
    const segments::EventTable& table = index.table(t);
    if (by == "page" && table.type == "page_view") {
      page_columns[t] = {table.props.Find("properties.path"), table.props.Find("properties.url"),
                         table.props.Find("properties.page")};
    }
  }
  auto label = [&](const EventRef& r) -> std::string {
    const segments::EventTable& table = index.table(r.table);
    for (const Column* col : page_columns[r.table]) {
      if (col == nullptr) continue;
      Json v = CellJson(index, col->Get(r.row));
      if (!v.is_null()) return v.is_string() ? v.as_string() : v.Dump();
    }
    return table.type == "custom" ? table.name : table.type;
  };

  // Labels are numbered; paths are counted by their label numbers.
  std::vector<std::string> labels;
  absl::flat_hash_map<std::string, uint32_t> label_ids;
  std::map<std::vector<uint32_t>, int64_t> paths;
  int64_t conversions = 0;
  std::vector<uint32_t> path, ids;
  std::vector<size_t> run_start;  // per event: the first event of its run of equal labels
  for (uint32_t ord : index.universe()) {
    std::span<const EventRef> refs = index.EventsOf(ord);
    bool labelled = false;
    for (size_t i = 0; i < refs.size(); ++i) {
      if (refs[i].time < from || refs[i].time > to || !converts.Test(index, refs[i])) continue;
      if (!labelled) {  // the profile's labels, once, when it has a conversion
        labelled = true;
        ids.resize(refs.size());
        run_start.resize(refs.size());
        for (size_t j = 0; j < refs.size(); ++j) {
          auto [it, inserted] = label_ids.try_emplace(label(refs[j]), static_cast<uint32_t>(labels.size()));
          if (inserted) labels.push_back(it->first);
          ids[j] = it->second;
          run_start[j] = j > 0 && ids[j - 1] == ids[j] ? run_start[j - 1] : j;
        }
      }
      ++conversions;
      const int64_t lo = refs[i].time < kMinTime + lookback ? kMinTime : refs[i].time - lookback;
      path.assign(1, ids[i]);
      // Walk back; with collapse, a run of the label just taken is skipped whole, so each step costs O(1).
      for (size_t j = i; j > 0 && static_cast<int64_t>(path.size()) <= steps;) {
        --j;
        if (refs[j].time < lo) break;
        if (collapse && ids[j] == path.back()) {
          j = run_start[j];
          continue;
        }
        path.push_back(ids[j]);
      }
      std::reverse(path.begin(), path.end());
      ++paths[path];
    }
  }
  // The most common paths, and the Sankey diagram of those: nodes are (position, label), links join consecutive
  // positions.
  std::vector<std::pair<const std::vector<uint32_t>*, int64_t>> ranked;
  for (const auto& [p, n] : paths) ranked.emplace_back(&p, n);
  std::stable_sort(ranked.begin(), ranked.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
  Json top = Json::Array();
  for (size_t i = 0; i < ranked.size() && static_cast<int64_t>(i) < limit; ++i) {
    Json p = Json::Array();
    for (uint32_t l : *ranked[i].first) p.Push(labels[l]);
    top.Push(Json::Object()
                 .Set("path", std::move(p))
                 .Set("conversions", ranked[i].second)
                 .Set("share", static_cast<double>(ranked[i].second) / static_cast<double>(conversions)));
  }
  std::map<std::pair<int64_t, std::string>, int64_t> nodes;
  std::map<std::pair<std::string, std::string>, int64_t> links;
  auto node_id = [](size_t position, const std::string& l) { return fmt::format("{}:{}", position + 1, l); };
  for (size_t i = 0; i < ranked.size() && static_cast<int64_t>(i) < limit; ++i) {  // the paths answered
    const std::vector<uint32_t>& p = *ranked[i].first;
    const int64_t n = ranked[i].second;
    for (size_t k = 0; k < p.size(); ++k) {
      nodes[{static_cast<int64_t>(k + 1), labels[p[k]]}] += n;
      if (k > 0) links[{node_id(k - 1, labels[p[k - 1]]), node_id(k, labels[p[k]])}] += n;
    }
  }
  Json node_list = Json::Array(), link_list = Json::Array();
  for (const auto& [key, n] : nodes) {
    node_list.Push(Json::Object()
                       .Set("id", node_id(static_cast<size_t>(key.first - 1), key.second))
                       .Set("step", key.first)
                       .Set("label", key.second)
                       .Set("count", n));
  }
  for (const auto& [key, n] : links) {
    link_list.Push(Json::Object().Set("source", key.first).Set("target", key.second).Set("value", n));
  }
  return Json::Object()
      .Set("conversions", conversions)
      .Set("distinctPaths", static_cast<int64_t>(paths.size()))
      .Set("paths", std::move(top))
      .Set("sankey", Json::Object().Set("nodes", std::move(node_list)).Set("links", std::move(link_list)));
}

// ---- Trends and anomalies ------------------------------------------------------------------------------------------

Result<Json> Trends(SegmentIndex& index, const Json& request) {
  CDP_RETURN_IF_ERROR(CheckMembers(request, {"from", "to", "interval", "events", "property", "weeks", "threshold"}));
  int64_t from = kMinTime, to = kMaxTime;
  CDP_RETURN_IF_ERROR(OptionalRange(request, &from, &to));
  if (from == kMinTime || to == kMaxTime) return Status::InvalidArgument("from and to are required", "from");
  std::string interval = "day", property;
  CDP_RETURN_IF_ERROR(OptionalString(request, "interval", &interval));
  int64_t bucket;
  if (interval == "hour") {
    bucket = 3600 * kSecond;
  } else if (interval == "day") {
    bucket = kDay;
  } else {
    return Status::InvalidArgument("expected \"hour\" or \"day\"", "interval");
  }
  // Whole intervals: from the start of the one `from` falls in to the end of the one `to` falls in, so a `to` of
  // "2026-03-31" counts all of that day (a `to` of now still ends in an interval that is not over).
  from -= ((from % bucket) + bucket) % bucket;
  to += bucket - 1 - ((to % bucket) + bucket) % bucket;
  if (to < from || (to - from) / bucket >= 10000) {
    return Status::InvalidArgument("expected from <= to and at most 10,000 intervals between them", "to");
  }
  CDP_RETURN_IF_ERROR(OptionalString(request, "property", &property));
  if (!property.empty() && property.rfind("properties.", 0) != 0 && property != "source") {
    return Status::InvalidArgument("expected \"properties.<name>\" or \"source\"", "property");
  }
  int64_t weeks = 4;
  if (const Json* v = request.Find("weeks"); v != nullptr && !v->is_null()) {
    if (!v->is_int() || v->as_int() < 2 || v->as_int() > 52) {
      return Status::InvalidArgument("expected an integer from 2 to 52", "weeks");
    }
    weeks = v->as_int();
  }
  double threshold = 3.5;
  if (const Json* v = request.Find("threshold"); v != nullptr && !v->is_null()) {
    if (!v->is_number() || v->as_number() <= 0)
      return Status::InvalidArgument("expected a positive number", "threshold");
    threshold = v->as_number();
  }
  std::vector<std::string> wanted;
  if (const Json* v = request.Find("events"); v != nullptr && !v->is_null()) {
    if (!v->is_array() || v->size() == 0 || v->size() > 50) {
      return Status::InvalidArgument("expected an array of 1 to 50 event types or names", "events");
    }
    for (size_t i = 0; i < v->size(); ++i) {
      const Json& e = v->items()[i];
      if (!e.is_string() || e.as_string().empty()) {
        return Status::InvalidArgument("expected an event type or name", fmt::format("events[{}]", i));
      }
      wanted.push_back(e.as_string());
    }
    if (std::find(wanted.begin(), wanted.end(), "*") != wanted.end()) wanted.clear();  // every event, as absent
  }
  // Counts per (series, bucket) over [from - weeks, to]: the baseline of a bucket is the same bucket (weekday, and
  // hour) of each of the `weeks` weeks before it.
  const int64_t week_buckets = 7 * kDay / bucket;
  const int64_t start = from - weeks * 7 * kDay;
  const size_t buckets = static_cast<size_t>((to - start) / bucket + 1);
  std::map<std::pair<std::string, std::string>, std::vector<int64_t>> series;  // (event, value as JSON) -> counts
  using CellKey = std::pair<uint8_t, uint64_t>;  // a value by its cell; absent and null are one
  auto key_of = [](Cell c) {
    return c.tag == Tag::kNull || c.tag == Tag::kMissing ? CellKey{0, 0} : CellKey{static_cast<uint8_t>(c.tag), c.bits};
  };
  for (uint32_t t = 0; t < index.table_count(); ++t) {
    const segments::EventTable& table = index.table(t);
    if (table.type == "custom" && table.name.empty()) continue;  // custom events have names: this table stays empty
    const std::string event = table.type == "custom" ? table.name : table.type;
    if (!wanted.empty() && std::find(wanted.begin(), wanted.end(), event) == wanted.end() &&
        !(table.type == "custom" && std::find(wanted.begin(), wanted.end(), "custom") != wanted.end())) {
      continue;
    }
    if (property.empty()) {
      std::vector<int64_t>& counts = series[{event, ""}];
      if (counts.empty()) counts.assign(buckets, 0);  // a custom event named as a type shares its series
      RowsIn(table, start, to, [&](size_t row) { ++counts[static_cast<size_t>((table.time[row] - start) / bucket)]; });
      continue;
    }
    // A property: the values' totals over [from, to] first, then the series of the largest only.
    const Column* col = table.props.Find(property);
    auto cell = [&](size_t row) { return col != nullptr ? col->Get(static_cast<uint32_t>(row)) : Cell{}; };
    absl::flat_hash_map<CellKey, int64_t> totals;
    RowsIn(table, from, to, [&](size_t row) { ++totals[key_of(cell(row))]; });
    if (totals.size() > kMaxSeriesValues) {
      return Status::ResourceExhausted(
          fmt::format("{} has more than {} distinct values in the period", property, kMaxSeriesValues), "property");
    }
    std::vector<std::pair<int64_t, CellKey>> ranked;
    for (const auto& [key, n] : totals) ranked.emplace_back(-n, key);
    const size_t keep = std::min(ranked.size(), kTopValues);
    std::partial_sort(ranked.begin(), ranked.begin() + static_cast<std::ptrdiff_t>(keep), ranked.end());
    absl::flat_hash_map<CellKey, std::vector<int64_t>*> chosen;
    for (size_t i = 0; i < keep; ++i) {
      const CellKey key = ranked[i].second;
      Json v = key.first == 0 ? Json() : CellJson(index, Cell{static_cast<Tag>(key.first), key.second});
      std::vector<int64_t>& counts = series[{event, v.is_null() ? std::string() : v.Dump()}];
      if (counts.empty()) counts.assign(buckets, 0);
      chosen[key] = &counts;
    }
    RowsIn(table, start, to, [&](size_t row) {
      auto it = chosen.find(key_of(cell(row)));
      if (it != chosen.end()) ++(*it->second)[static_cast<size_t>((table.time[row] - start) / bucket)];
    });
  }
  std::vector<std::pair<Json, int64_t>> entries;  // with their totals
  const size_t first = static_cast<size_t>((from - start) / bucket);
  for (auto& [key, counts] : series) {
    if (counts.empty()) counts.assign(buckets, 0);
    Json points = Json::Array();
    int64_t total = 0, anomalies = 0;
    for (size_t i = first; i < buckets; ++i) {
      std::vector<double> base;
      for (int64_t w = 1; w <= weeks; ++w) base.push_back(static_cast<double>(counts[i - w * week_buckets]));
      double m = 0;
      const std::optional<double> robust = RobustZ(static_cast<double>(counts[i]), std::move(base), &m);
      Json z = robust ? Json(*robust) : Json();
      const bool anomaly = z.is_null() || std::abs(z.as_number()) > threshold;
      anomalies += anomaly;
      total += counts[i];
      points.Push(Json::Object()
                      .Set("at", FormatTimestamp(start + static_cast<int64_t>(i) * bucket))
                      .Set("count", counts[i])
                      .Set("expected", m)
                      .Set("z", std::move(z))
                      .Set("anomaly", anomaly));
    }
    Json entry = Json::Object().Set("event", key.first);
    if (!property.empty()) {
      entry.Set("value", key.second.empty() ? Json() : *Json::Parse(key.second));
    }
    entries.emplace_back(entry.Set("total", total).Set("anomalies", anomalies).Set("points", std::move(points)), total);
  }
  // By event (in name order), then the largest first.
  std::stable_sort(entries.begin(), entries.end(), [](const auto& a, const auto& b) {
    const std::string& ea = a.first.Find("event")->as_string();
    const std::string& eb = b.first.Find("event")->as_string();
    return ea != eb ? ea < eb : a.second > b.second;
  });
  Json list = Json::Array();
  size_t kept = 0;
  std::string previous;  // the event of the entry before (entries are moved out as they are listed)
  for (size_t i = 0; i < entries.size(); ++i) {
    std::string event = entries[i].first.Find("event")->as_string();
    kept = i > 0 && event == previous ? kept + 1 : 1;
    previous = std::move(event);
    if (kept <= kTopValues) list.Push(std::move(entries[i].first));
  }
  return Json::Object()
      .Set("interval", interval)
      .Set("from", FormatTimestamp(from))
      .Set("to", FormatTimestamp(to))
      .Set("weeks", weeks)
      .Set("threshold", threshold)
      .Set("series", std::move(list));
}

// ---- Overview and data quality ------------------------------------------------------------------------------------

namespace {

// Values a profile cell holds: 0 absent, the elements of an array, else 1.
size_t ValueCount(const Column& col, Cell c) {
  if (c.tag == Tag::kMissing || c.tag == Tag::kNull) return 0;
  return c.tag == Tag::kArray ? col.ArrayOf(c).size() : 1;
}

bool Anonymous(std::string_view path) {
  return path == "externalIds.anonymousId" || path == "externalIds.anonymousIds" || path == "externalIds.deviceIds" ||
         path == "externalIds.deviceId";
}

Json Check(const char* name, const char* description, int64_t passed, int64_t total) {
  return Json::Object()
      .Set("name", name)
      .Set("description", description)
      .Set("passed", passed)
      .Set("total", total)
      .Set("score", total > 0 ? static_cast<double>(passed) / static_cast<double>(total) : 1.0);
}

}  // namespace

Result<Json> IndexOverview(SegmentIndex& index, int64_t now) {
  // Profiles: identified when they hold an identifier other than anonymous ids and devices; unified when they link
  // two identifier values or more.
  const auto ids = index.profile_table().ColumnsUnder("externalIds.");
  int64_t total = 0, identified = 0, unified = 0;
  for (uint32_t ord : index.universe()) {
    ++total;
    bool known = false;
    size_t values = 0;
    for (const auto& [path, col] : ids) {
      const size_t n = ValueCount(*col, col->Get(ord));
      values += n;
      known |= n > 0 && !Anonymous(path);
    }
    identified += known;
    unified += known && values >= 2;
  }
  // Events by type, active profiles and revenue over the last 24 hours, 7 days and 30 days (and all time).
  const std::pair<const char*, int64_t> windows[] = {{"24h", kDay}, {"7d", 7 * kDay}, {"30d", 30 * kDay}};
  Json by_type = Json::Object();
  segments::Bitmap active[3];
  double revenue_30d = 0, revenue_all = 0;
  int64_t orders_30d = 0, orders_all = 0;
  for (int w = 0; w < 3; ++w) {
    Json counts = Json::Object();
    std::map<std::string, int64_t> n;
    for (uint32_t t = 0; t < index.table_count(); ++t) {
      const segments::EventTable& table = index.table(t);
      int64_t c = 0;
      RowsIn(table, now - windows[w].second, now, [&](size_t row) {
        ++c;
        active[w].add(table.ordinal[row]);
      });
      if (c > 0) n[table.type] += c;
    }
    for (const auto& [type, c] : n) counts.Set(type, c);
    by_type.Set(windows[w].first, std::move(counts));
  }
  if (uint32_t t = index.FindTable("purchase"); t != SegmentIndex::kRemoved) {
    const segments::EventTable& table = index.table(t);
    const Column* cols[3] = {table.props.Find("properties.revenue"), table.props.Find("properties.total"),
                             table.props.Find("properties.value")};
    RowsIn(table, kMinTime, kMaxTime, [&](size_t row) {
      double v = 0;
      for (const Column* col : cols) {
        if (auto x = col != nullptr ? CellNumber(col->Get(static_cast<uint32_t>(row))) : std::nullopt) {
          v = *x;
          break;
        }
      }
      ++orders_all;
      revenue_all += v;
      if (table.time[row] >= now - 30 * kDay && table.time[row] <= now) {
        ++orders_30d;
        revenue_30d += v;
      }
    });
  }
  return Json::Object()
      .Set("profiles", Json::Object()
                           .Set("total", total)
                           .Set("identified", identified)
                           .Set("anonymous", total - identified)
                           .Set("multiIdentifierRate",
                                identified > 0 ? static_cast<double>(unified) / static_cast<double>(identified) : 0.0))
      .Set("eventsByType", std::move(by_type))
      .Set("activeProfiles", Json::Object()
                                 .Set("daily", static_cast<int64_t>(active[0].cardinality()))
                                 .Set("weekly", static_cast<int64_t>(active[1].cardinality()))
                                 .Set("monthly", static_cast<int64_t>(active[2].cardinality())))
      .Set("revenue", Json::Object().Set("30d", Money(revenue_30d)).Set("total", Money(revenue_all)))
      .Set("orders", Json::Object().Set("30d", orders_30d).Set("total", orders_all));
}

Result<Json> Quality(SegmentIndex& index, const Json& request) {
  CDP_RETURN_IF_ERROR(CheckMembers(request, {"now"}));
  int64_t now = kMaxTime;
  CDP_RETURN_IF_ERROR(OptionalTime(request, "now", &now));
  if (now == kMaxTime) return Status::InvalidArgument("now is required", "now");
  Json checks = Json::Array();
  // 1. Purchases carry a value.
  int64_t purchases = 0, valued = 0;
  if (uint32_t t = index.FindTable("purchase"); t != SegmentIndex::kRemoved) {
    const segments::EventTable& table = index.table(t);
    const Column* cols[3] = {table.props.Find("properties.revenue"), table.props.Find("properties.total"),
                             table.props.Find("properties.value")};
    RowsIn(table, now - 30 * kDay, now, [&](size_t row) {
      ++purchases;
      for (const Column* col : cols) {
        if (col != nullptr && CellNumber(col->Get(static_cast<uint32_t>(row)))) {
          ++valued;
          break;
        }
      }
    });
  }
  checks.Push(Check("purchaseValue", "purchases of the last 30 days with a numeric revenue, total or value", valued,
                    purchases));
  // 2. Events name their source.
  int64_t events = 0, sourced = 0;
  for (uint32_t t = 0; t < index.table_count(); ++t) {
    const segments::EventTable& table = index.table(t);
    const Column* source = table.props.Find("source");
    RowsIn(table, now - 30 * kDay, now, [&](size_t row) {
      ++events;
      sourced += source != nullptr && source->Get(static_cast<uint32_t>(row)).tag == Tag::kString;
    });
  }
  checks.Push(Check("eventSource", "events of the last 30 days naming their source", sourced, events));
  // 3. Identifiers are valid: profiles without identityIssues (invalid or blocked identifier values).
  int64_t profiles = 0, clean = 0;
  const Column* issues = index.profile_table().Find("identityIssues");
  for (uint32_t ord : index.universe()) {
    ++profiles;
    clean += issues == nullptr || ValueCount(*issues, issues->Get(ord)) == 0;
  }
  checks.Push(Check("validIdentifiers", "profiles without invalid or blocked identifier values", clean, profiles));
  // 4. Schema stability: per event type, the fields seen in the last day against the 7 days before it.
  int64_t fields = 0, stable = 0;
  Json changes = Json::Array();
  for (uint32_t t = 0; t < index.table_count(); ++t) {
    const segments::EventTable& table = index.table(t);
    for (const auto& [path, col] : table.props.ColumnsUnder("")) {
      bool recent = false, before = false;
      RowsIn(table, now - 8 * kDay, now, [&, col = col](size_t row) {
        if (col->Get(static_cast<uint32_t>(row)).tag == Tag::kMissing) return;
        (table.time[row] > now - kDay ? recent : before) = true;
      });
      if (!recent && !before) continue;
      ++fields;
      if (recent == before) {
        ++stable;
      } else {
        const std::string event = table.type == "custom" ? table.name : table.type;
        changes.Push(Json::Object()
                         .Set("event", event)
                         .Set("field", std::string(path))
                         .Set("change", recent ? "appeared" : "disappeared"));
      }
    }
  }
  checks.Push(Check("schemaStability",
                    "event fields seen in the 7 days before the last day that are still seen, and no new ones", stable,
                    fields)
                  .Set("changes", std::move(changes)));
  // 5. Duplicates: events repeating another event of the profile of the same type at the same time, last 30 days;
  // a spike when the last day's rate is far (robust z > 3.5) from the 29 days before.
  std::vector<double> daily(30, 0.0), daily_total(30, 0.0);
  int64_t recent_events = 0, duplicates = 0;
  for (uint32_t ord : index.universe()) {
    std::span<const EventRef> refs = index.EventsOf(ord);
    auto first = std::lower_bound(refs.begin(), refs.end(), now - 30 * kDay,
                                  [](const EventRef& r, int64_t v) { return r.time < v; });
    std::vector<uint32_t> tables_at;  // the tables of the events at the current time
    for (auto it = first; it != refs.end() && it->time <= now; ++it) {
      const size_t day = static_cast<size_t>(std::min<int64_t>(29, (now - it->time) / kDay));
      ++recent_events;
      daily_total[day] += 1;
      if (it == first || (it - 1)->time != it->time) tables_at.clear();
      if (std::find(tables_at.begin(), tables_at.end(), it->table) != tables_at.end()) {
        ++duplicates;
        daily[day] += 1;
      } else {
        tables_at.push_back(it->table);
      }
    }
  }
  std::vector<double> rates;
  for (size_t d = 1; d < 30; ++d) rates.push_back(daily_total[d] > 0 ? daily[d] / daily_total[d] : 0.0);
  const double last = daily_total[0] > 0 ? daily[0] / daily_total[0] : 0.0;
  double m = 0;
  const std::optional<double> z = RobustZ(last, std::move(rates), &m);
  const bool spike = !z ? last > m : *z > 3.5;
  checks.Push(Check("duplicates",
                    "events of the last 30 days that do not repeat another of the profile (same type, "
                    "same time)",
                    recent_events - duplicates, recent_events)
                  .Set("lastDayRate", last)
                  .Set("usualRate", m)
                  .Set("spike", spike));
  double score = 0;
  for (const Json& c : checks.items()) score += c.Find("score")->as_number();
  score = 100.0 * score / static_cast<double>(checks.size());
  return Json::Object().Set("score", score).Set("checks", std::move(checks));
}

Result<Json> Overview(SegmentIndex& index, const Json& request) {
  CDP_RETURN_IF_ERROR(CheckMembers(request, {"now"}));
  int64_t now = kMaxTime;
  CDP_RETURN_IF_ERROR(OptionalTime(request, "now", &now));
  if (now == kMaxTime) return Status::InvalidArgument("now is required", "now");
  CDP_ASSIGN_OR_RETURN(Json out, IndexOverview(index, now));
  CDP_ASSIGN_OR_RETURN(Json quality, Quality(index, request));
  return out.Set("dataQuality", std::move(quality));
}

// ---- Governance ----------------------------------------------------------------------------------------------------

Result<std::vector<std::string>> FieldsRead(std::string_view analysis, const Json& request) {
  std::vector<std::string> fields = {"events.type", "events.name", "events.timestamp"};
  if (analysis == "funnel") {
    std::function<void(const Json&)> collect = [&](const Json& node) {
      if (node.is_array()) {
        for (const Json& c : node.items()) collect(c);
      } else if (node.is_object()) {
        if (const Json* f = node.Find("field"); f != nullptr && f->is_string()) {
          fields.push_back("events." + f->as_string());
        }
        for (const auto& [key, value] : node.members()) {
          if (key != "field") collect(value);
        }
      }
    };
    if (const Json* steps = request.is_object() ? request.Find("steps") : nullptr; steps != nullptr) collect(*steps);
    if (const Json* b = request.is_object() ? request.Find("breakdown") : nullptr; b != nullptr && b->is_string()) {
      fields.push_back(b->as_string().rfind("properties.", 0) == 0 ? "events." + b->as_string() : b->as_string());
    }
  } else if (analysis == "overview" || analysis == "dataQuality") {
    for (const char* f : {"events.source", "events.properties.revenue", "events.properties.total",
                          "events.properties.value", "externalIds", "identityIssues"}) {
      fields.push_back(f);
    }
  } else if (analysis == "journeys") {
    if (const Json* by = request.is_object() ? request.Find("by") : nullptr; by != nullptr && *by == Json("page")) {
      for (const char* f : {"events.properties.path", "events.properties.url", "events.properties.page"}) {
        fields.push_back(f);
      }
    }
  } else if (analysis == "trends") {
    if (const Json* p = request.is_object() ? request.Find("property") : nullptr; p != nullptr && p->is_string()) {
      fields.push_back("events." + p->as_string());
    }
  } else if (analysis == "attribution") {
    for (const char* f : {"events.sessionId", "events.properties.utm_source", "events.properties.utm_medium",
                          "events.properties.utm_campaign", "events.properties.revenue", "events.properties.total",
                          "events.properties.value"}) {
      fields.push_back(f);
    }
  }
  return fields;
}

}  // namespace cdp::analytics
