// Copyright 2026 The libcdp Authors.

#include "identity/linkage.h"

#include <algorithm>
#include <array>
#include <bit>
#include <charconv>
#include <cmath>
#include <iterator>
#include <limits>
#include <numeric>
#include <tuple>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "core/civil_time.h"
#include "fmt/format.h"

namespace cdp::internal::linkage {

namespace {

constexpr size_t kMaxNameBytes = 128;
constexpr size_t kMaxFieldNameBytes = 256;
constexpr int kMaxPrefix = 64;
constexpr int kMaxEditThreshold = 1024;
constexpr double kMaxDayThreshold = 1e6;
constexpr int64_t kMaxPairsLimit = (int64_t{1} << 31) - 1;
constexpr int kMaxIterationsLimit = 100000;
constexpr int64_t kMaxSamplePairs = 100000000;
constexpr double kMaxPseudoCount = 1e6;
constexpr uint32_t kNoKey = std::numeric_limits<uint32_t>::max();
constexpr double kMissing = std::numeric_limits<double>::quiet_NaN();

bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

std::string_view Trim(std::string_view s) {
  while (!s.empty() && IsSpace(s.front())) s.remove_prefix(1);
  while (!s.empty() && IsSpace(s.back())) s.remove_suffix(1);
  return s;
}

std::string Normalize(std::string_view s) {
  std::string out(Trim(s));
  for (char& c : out) c = (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
  return out;
}

Status FieldError(std::string message, std::string field) {
  return Status::InvalidArgument(std::move(message), std::move(field));
}

// A small-buffer array of flags for the string comparators: no allocation for short strings.
class Flags {
 public:
  explicit Flags(size_t n) : heap_(n > kInline ? n : 0) {
    data_ = n > kInline ? heap_.data() : inline_.data();
    std::fill(data_, data_ + n, 0);
  }
  uint8_t& operator[](size_t i) { return data_[i]; }

 private:
  static constexpr size_t kInline = 128;
  std::array<uint8_t, kInline> inline_;
  std::vector<uint8_t> heap_;
  uint8_t* data_;
};

uint64_t SplitMix64(uint64_t* state) {
  uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// Uniform in [0, n) (Lemire's multiply-shift; the bias is below 2^-32 for the sizes used here).
uint64_t Below(uint64_t* state, uint64_t n) {
  return static_cast<uint64_t>((static_cast<unsigned __int128>(SplitMix64(state)) * n) >> 64);
}

std::optional<double> ParseNumber(std::string_view s) {
  if (!s.empty() && s.front() == '+') s.remove_prefix(1);
  double v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || !std::isfinite(v)) return std::nullopt;
  return v;
}

std::string FormatThreshold(double t) { return fmt::format("{}", t); }

}  // namespace

// ---- string comparators ---------------------------------------------------------------------------------------------

namespace {

double JaroScore(size_t matches, size_t half_transpositions, size_t la, size_t lb) {
  if (matches == 0) return 0.0;
  const double m = static_cast<double>(matches);
  const double t = static_cast<double>(half_transpositions / 2);
  return (m / static_cast<double>(la) + m / static_cast<double>(lb) + (m - t) / m) / 3.0;
}

// Jaro for strings of at most 64 bytes, with bit masks: the same greedy matching as the general loop (each byte of
// `a` takes the first unmatched equal byte of `b` within the window), in O(la + lb) word operations.
double Jaro64(std::string_view a, std::string_view b, size_t window) {
  const size_t la = a.size(), lb = b.size();
  // positions[c]: bit j set when b[j] == c. All zero between calls (reset below), so no 2 KiB clear per call.
  thread_local std::array<uint64_t, 256> positions{};
  for (size_t j = 0; j < lb; ++j) positions[static_cast<uint8_t>(b[j])] |= uint64_t{1} << j;
  auto below = [](size_t n) { return n >= 64 ? ~uint64_t{0} : (uint64_t{1} << n) - 1; };
  uint64_t matched_a = 0, matched_b = 0;
  size_t matches = 0;
  for (size_t i = 0; i < la; ++i) {
    const size_t lo = i > window ? i - window : 0;
    const size_t hi = std::min(i + window + 1, lb);
    if (lo >= hi) continue;
    const uint64_t candidates = positions[static_cast<uint8_t>(a[i])] & ~matched_b & below(hi) & ~below(lo);
    if (candidates == 0) continue;
    matched_b |= candidates & (~candidates + 1);  // the lowest
    matched_a |= uint64_t{1} << i;
    ++matches;
  }
  for (size_t j = 0; j < lb; ++j) positions[static_cast<uint8_t>(b[j])] = 0;
  size_t half_transpositions = 0;
  while (matched_a != 0) {
    const int i = std::countr_zero(matched_a), k = std::countr_zero(matched_b);
    if (a[static_cast<size_t>(i)] != b[static_cast<size_t>(k)]) ++half_transpositions;
    matched_a &= matched_a - 1;
    matched_b &= matched_b - 1;
  }
  return JaroScore(matches, half_transpositions, la, lb);
}

}  // namespace

double Jaro(std::string_view a, std::string_view b) {
  if (a.empty() && b.empty()) return 1.0;
  if (a.empty() || b.empty()) return 0.0;
  const size_t la = a.size(), lb = b.size();
  const size_t window = std::max(la, lb) / 2 > 0 ? std::max(la, lb) / 2 - 1 : 0;
  if (la <= 64 && lb <= 64) return Jaro64(a, b, window);
  Flags fa(la), fb(lb);
  size_t matches = 0;
  for (size_t i = 0; i < la; ++i) {
    const size_t lo = i > window ? i - window : 0;
    const size_t hi = std::min(i + window + 1, lb);
    for (size_t j = lo; j < hi; ++j) {
      if (!fb[j] && a[i] == b[j]) {
        fa[i] = fb[j] = 1;
        ++matches;
        break;
      }
    }
  }
  if (matches == 0) return 0.0;
  size_t half_transpositions = 0;
  for (size_t i = 0, k = 0; i < la; ++i) {
    if (!fa[i]) continue;
    while (!fb[k]) ++k;
    if (a[i] != b[k]) ++half_transpositions;
    ++k;
  }
  return JaroScore(matches, half_transpositions, la, lb);
}

double JaroWinkler(std::string_view a, std::string_view b) {
  const double jaro = Jaro(a, b);
  if (jaro <= 0.7) return jaro;
  size_t prefix = 0;
  while (prefix < 4 && prefix < a.size() && prefix < b.size() && a[prefix] == b[prefix]) ++prefix;
  return jaro + static_cast<double>(prefix) * 0.1 * (1.0 - jaro);
}

int Levenshtein(std::string_view a, std::string_view b, int max) {
  max = std::clamp(max, 0, 1 << 30);
  if (a.size() > b.size()) std::swap(a, b);  // a is the shorter
  const size_t la = a.size(), lb = b.size();
  if (lb - la > static_cast<size_t>(max)) return max + 1;
  if (la == 0) return static_cast<int>(lb);
  // Two rows of the edit-distance table over the shorter string; stop once a whole row exceeds max.
  std::vector<int> heap;
  std::array<int, 2 * 130> inline_rows;
  int* prev = inline_rows.data();
  if (la + 1 > 130) {
    heap.resize(2 * (la + 1));
    prev = heap.data();
  }
  int* cur = prev + la + 1;
  for (size_t i = 0; i <= la; ++i) prev[i] = static_cast<int>(i);
  for (size_t j = 1; j <= lb; ++j) {
    cur[0] = static_cast<int>(j);
    int row_min = cur[0];
    for (size_t i = 1; i <= la; ++i) {
      const int sub = prev[i - 1] + (a[i - 1] != b[j - 1] ? 1 : 0);
      cur[i] = std::min({prev[i] + 1, cur[i - 1] + 1, sub});
      row_min = std::min(row_min, cur[i]);
    }
    if (row_min > max) return max + 1;
    std::swap(prev, cur);
  }
  return std::min(prev[la], max + 1);
}

std::string Soundex(std::string_view s) {
  // Codes of 'a' .. 'z'; '0' separates (vowels and y), '-' is skipped without separating (h, w).
  static constexpr std::string_view kCodes = "01230120022455012623010202";
  auto letter = [](char c) -> char {
    if (c >= 'A' && c <= 'Z') return static_cast<char>(c - 'A' + 'a');
    return (c >= 'a' && c <= 'z') ? c : '\0';
  };
  std::string out;
  char last = 0;
  for (char raw : s) {
    const char c = letter(raw);
    if (c == '\0') continue;
    const char code = (c == 'h' || c == 'w') ? '-' : kCodes[c - 'a'];
    if (out.empty()) {
      out.push_back(c);
      last = code;
      continue;
    }
    if (code == '-') continue;
    if (code != '0' && code != last) out.push_back(code);
    last = code;
    if (out.size() == 4) break;
  }
  if (!out.empty()) out.resize(4, '0');
  return out;
}

std::optional<int64_t> ParseDate(std::string_view s) {
  s = Trim(s);
  auto digits = [](std::string_view d, int* out) {
    int v = 0;
    for (char c : d) {
      if (c < '0' || c > '9') return false;
      v = v * 10 + (c - '0');
    }
    *out = v;
    return true;
  };
  int y = 0, m = 0, d = 0;
  if (s.size() == 8) {
    if (!digits(s.substr(0, 4), &y) || !digits(s.substr(4, 2), &m) || !digits(s.substr(6, 2), &d)) return std::nullopt;
  } else if (s.size() >= 10 && s[4] == '-' && s[7] == '-' && (s.size() == 10 || s[10] == 'T' || s[10] == ' ')) {
    if (!digits(s.substr(0, 4), &y) || !digits(s.substr(5, 2), &m) || !digits(s.substr(8, 2), &d)) return std::nullopt;
  } else {
    return std::nullopt;
  }
  if (m < 1 || m > 12 || d < 1) return std::nullopt;
  static constexpr int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  const bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  if (d > kDays[m - 1] + (m == 2 && leap ? 1 : 0)) return std::nullopt;
  return DaysFromCivil(y, m, d);
}

// ---- records --------------------------------------------------------------------------------------------------------

int Records::FieldIndex(std::string_view name) const {
  for (size_t i = 0; i < fields.size(); ++i) {
    if (fields[i] == name) return static_cast<int>(i);
  }
  return -1;
}

Status Records::Validate() const {
  if (fields.empty() || fields.size() > kMaxFields) {
    return FieldError(fmt::format("expected 1 to {} fields", kMaxFields), "fields");
  }
  absl::flat_hash_set<std::string_view> seen;
  for (size_t i = 0; i < fields.size(); ++i) {
    if (fields[i].empty() || fields[i].size() > kMaxFieldNameBytes) {
      return FieldError(fmt::format("expected a field name of 1 to {} bytes", kMaxFieldNameBytes),
                        fmt::format("fields[{}]", i));
    }
    if (!seen.insert(fields[i]).second) return FieldError("field named twice", fmt::format("fields[{}]", i));
  }
  if (rows.size() > kMaxRecords) return FieldError(fmt::format("more than {} records", kMaxRecords), "rows");
  for (size_t i = 0; i < rows.size(); ++i) {
    if (rows[i].size() != fields.size()) {
      return FieldError(fmt::format("expected {} values, got {}", fields.size(), rows[i].size()),
                        fmt::format("rows[{}]", i));
    }
    for (size_t f = 0; f < fields.size(); ++f) {
      if (rows[i][f].size() > kMaxValueBytes) {
        return FieldError(fmt::format("value longer than {} bytes", kMaxValueBytes),
                          fmt::format("rows[{}].{}", i, fields[f]));
      }
    }
  }
  return Status::OK();
}

Result<Records> RecordsFromJson(std::span<const Json> objects, std::vector<std::string> paths) {
  Records out;
  out.fields = std::move(paths);
  out.rows.reserve(objects.size());
  for (size_t i = 0; i < objects.size(); ++i) {
    if (!objects[i].is_object()) return FieldError("expected an object", fmt::format("objects[{}]", i));
    std::vector<std::string> row;
    row.reserve(out.fields.size());
    for (const std::string& path : out.fields) {
      const Json* v = objects[i].FindPath(path);
      if (v == nullptr) {
        row.emplace_back();
      } else if (v->is_string()) {
        row.push_back(v->as_string());
      } else if (v->is_number() || v->is_bool()) {
        row.push_back(v->Dump());
      } else {
        row.emplace_back();
      }
    }
    out.rows.push_back(std::move(row));
  }
  CDP_RETURN_IF_ERROR(out.Validate());
  return out;
}

Result<Records> ParseDelimited(std::string_view text, const DelimitedOptions& options) {
  if (text.size() > options.max_bytes) {
    return Status::ResourceExhausted(fmt::format("input larger than {} bytes", options.max_bytes));
  }
  const std::string_view sep = options.separator;
  if (sep.empty() || sep.find_first_of("\"\r\n") != std::string_view::npos) {
    return Status::InvalidArgument("the separator must be non-empty and hold no quote or line break");
  }
  Records out;
  size_t pos = 0, line = 1;
  std::vector<std::string> values;
  while (pos < text.size()) {
    const size_t record_line = line;
    values.clear();
    bool end_of_record = false;
    while (!end_of_record) {
      size_t start = pos;
      while (start < text.size() && (text[start] == ' ' || text[start] == '\t')) ++start;
      std::string value;
      if (start < text.size() && text[start] == '"') {
        pos = start + 1;
        for (;;) {
          if (pos >= text.size()) return Status::InvalidArgument(fmt::format("line {}: unclosed quote", record_line));
          const char c = text[pos++];
          if (c == '"') {
            if (pos < text.size() && text[pos] == '"') {
              value.push_back('"');
              ++pos;
            } else {
              break;
            }
          } else {
            if (c == '\n') ++line;
            value.push_back(c);
          }
        }
        auto at_separator = [&] { return text.compare(pos, sep.size(), sep) == 0; };
        while (pos < text.size() && !at_separator() && (text[pos] == ' ' || text[pos] == '\t' || text[pos] == '\r')) {
          ++pos;
        }
        if (pos < text.size() && text[pos] != '\n' && !at_separator()) {
          return Status::InvalidArgument(fmt::format("line {}: unexpected text after a quoted value", line));
        }
      } else {
        size_t end = pos;
        while (end < text.size() && text[end] != '\n' && text.compare(end, sep.size(), sep) != 0) ++end;
        value = std::string(Trim(text.substr(pos, end - pos)));
        pos = end;
      }
      values.push_back(std::move(value));
      if (pos < text.size() && text[pos] != '\n') {
        pos += sep.size();  // at a separator
      } else {
        if (pos < text.size()) ++pos;  // the line break
        ++line;
        end_of_record = true;
      }
    }
    if (values.size() == 1 && values[0].empty()) continue;  // an empty line
    if (out.fields.empty()) {
      out.fields = std::move(values);
      continue;
    }
    if (values.size() != out.fields.size()) {
      return Status::InvalidArgument(
          fmt::format("line {}: expected {} values, got {}", record_line, out.fields.size(), values.size()));
    }
    out.rows.push_back(std::move(values));
  }
  if (out.fields.empty()) return Status::InvalidArgument("no header line");
  CDP_RETURN_IF_ERROR(out.Validate());
  return out;
}

// ---- configuration --------------------------------------------------------------------------------------------------

std::string_view ComparatorKindName(ComparatorKind kind) {
  switch (kind) {
    case ComparatorKind::kExact:
      return "exact";
    case ComparatorKind::kJaroWinkler:
      return "jaro_winkler";
    case ComparatorKind::kLevenshtein:
      return "levenshtein";
    case ComparatorKind::kNumeric:
      return "numeric";
    case ComparatorKind::kDate:
      return "date";
  }
  return "unknown";
}

int ComparatorSpec::NumLevels() const {
  if (kind == ComparatorKind::kExact) return 2;
  return 1 + static_cast<int>(thresholds.size()) + (exact_level ? 1 : 0);
}

std::string ComparatorSpec::LevelLabel(int gamma) const {
  const int levels = NumLevels();
  if (gamma < 0) return "null";
  if (gamma == 0) return "else";
  if (gamma >= levels) return "invalid";
  if (gamma == levels - 1 && (exact_level || kind == ComparatorKind::kExact)) return "exact";
  const int top = exact_level ? levels - 2 : levels - 1;
  const std::string t = FormatThreshold(thresholds[static_cast<size_t>(top - gamma)]);
  switch (kind) {
    case ComparatorKind::kJaroWinkler:
      return "jw>=" + t;
    case ComparatorKind::kLevenshtein:
      return "lev<=" + t;
    case ComparatorKind::kNumeric:
      return (relative ? "reldiff<=" : "diff<=") + t;
    case ComparatorKind::kDate:
      return "days<=" + t;
    case ComparatorKind::kExact:
      break;
  }
  return "invalid";
}

namespace {

Status ValidateThresholds(ComparatorSpec& c, const std::string& path) {
  const std::string tpath = path + ".thresholds";
  if (c.kind == ComparatorKind::kExact) {
    if (!c.thresholds.empty()) return FieldError("an exact comparator takes no thresholds", tpath);
    c.exact_level = true;
    return Status::OK();
  }
  for (size_t i = 0; i < c.thresholds.size(); ++i) {
    const double t = c.thresholds[i];
    const std::string ipath = fmt::format("{}[{}]", tpath, i);
    if (!std::isfinite(t)) return FieldError("expected a finite number", ipath);
    switch (c.kind) {
      case ComparatorKind::kJaroWinkler:
        if (t <= 0 || t >= 1) return FieldError("expected a similarity between 0 and 1 (exclusive)", ipath);
        if (i > 0 && t >= c.thresholds[i - 1]) return FieldError("similarities must strictly decrease", ipath);
        break;
      case ComparatorKind::kLevenshtein:
        if (t != std::floor(t) || t < 1 || t > kMaxEditThreshold) {
          return FieldError(fmt::format("expected an edit distance, an integer from 1 to {}", kMaxEditThreshold),
                            ipath);
        }
        if (i > 0 && t <= c.thresholds[i - 1]) return FieldError("distances must strictly increase", ipath);
        break;
      case ComparatorKind::kNumeric:
      case ComparatorKind::kDate:
        if (t < 0) return FieldError("expected a difference >= 0", ipath);
        if (c.kind == ComparatorKind::kDate && (t != std::floor(t) || t > kMaxDayThreshold)) {
          return FieldError("expected a whole number of days, at most 1000000", ipath);
        }
        if (t == 0 && c.exact_level) return FieldError("a difference of 0 is the exact level already", ipath);
        if (i > 0 && t <= c.thresholds[i - 1]) return FieldError("differences must strictly increase", ipath);
        break;
      case ComparatorKind::kExact:
        break;
    }
  }
  if (c.NumLevels() < 2) return FieldError("needs a threshold or the exact level", tpath);
  if (c.NumLevels() > static_cast<int>(kMaxLevels)) {
    return FieldError(fmt::format("more than {} levels (thresholds + else + exact)", kMaxLevels), tpath);
  }
  return Status::OK();
}

Status ValidateFieldName(const std::string& name, const std::string& path) {
  if (name.empty() || name.size() > kMaxFieldNameBytes) {
    return FieldError(fmt::format("expected a field name of 1 to {} bytes", kMaxFieldNameBytes), path);
  }
  return Status::OK();
}

}  // namespace

Status LinkageConfig::Validate() {
  if (comparators.empty() || comparators.size() > kMaxComparators) {
    return FieldError(fmt::format("expected 1 to {} comparators", kMaxComparators), "comparators");
  }
  absl::flat_hash_set<std::string> names;
  for (size_t k = 0; k < comparators.size(); ++k) {
    ComparatorSpec& c = comparators[k];
    const std::string path = fmt::format("comparators[{}]", k);
    CDP_RETURN_IF_ERROR(ValidateFieldName(c.field, path + ".field"));
    if (c.name.empty()) c.name = c.field;
    if (c.name.size() > kMaxNameBytes) {
      return FieldError(fmt::format("expected a name of 1 to {} bytes", kMaxNameBytes), path + ".name");
    }
    if (!names.insert(c.name).second) {
      return FieldError(fmt::format("comparator name \"{}\" used twice (set \"name\")", c.name), path + ".name");
    }
    if (c.relative && c.kind != ComparatorKind::kNumeric) {
      return FieldError("only numeric comparators are relative", path + ".relative");
    }
    CDP_RETURN_IF_ERROR(ValidateThresholds(c, path));
  }
  if (blocking.empty() || blocking.size() > kMaxBlockingRules) {
    return FieldError(fmt::format("expected 1 to {} blocking rules", kMaxBlockingRules), "blocking");
  }
  for (size_t r = 0; r < blocking.size(); ++r) {
    const std::string path = fmt::format("blocking[{}]", r);
    if (blocking[r].keys.empty() || blocking[r].keys.size() > kMaxKeysPerRule) {
      return FieldError(fmt::format("expected 1 to {} keys", kMaxKeysPerRule), path);
    }
    for (size_t i = 0; i < blocking[r].keys.size(); ++i) {
      const BlockingKey& key = blocking[r].keys[i];
      const std::string kpath = fmt::format("{}[{}]", path, i);
      CDP_RETURN_IF_ERROR(ValidateFieldName(key.field, kpath + ".field"));
      if (key.transform == KeyTransform::kPrefix && (key.length < 1 || key.length > kMaxPrefix)) {
        return FieldError(fmt::format("expected a prefix length from 1 to {}", kMaxPrefix), kpath + ".length");
      }
      if (key.transform != KeyTransform::kPrefix && key.length != 0) {
        return FieldError("only a prefix has a length", kpath + ".length");
      }
    }
  }
  if (max_pairs < 1 || max_pairs > kMaxPairsLimit) {
    return FieldError(fmt::format("expected an integer from 1 to {}", kMaxPairsLimit), "maxPairs");
  }
  if (!(threshold >= 0 && threshold <= 1)) return FieldError("expected a probability from 0 to 1", "threshold");
  if (em.max_iterations < 1 || em.max_iterations > kMaxIterationsLimit) {
    return FieldError(fmt::format("expected an integer from 1 to {}", kMaxIterationsLimit), "em.maxIterations");
  }
  if (!(em.tolerance > 0 && em.tolerance <= 0.1)) return FieldError("expected a number in (0, 0.1]", "em.tolerance");
  if (em.u_sample_pairs < 0 || em.u_sample_pairs > kMaxSamplePairs) {
    return FieldError(fmt::format("expected an integer from 0 to {}", kMaxSamplePairs), "em.uSamplePairs");
  }
  if (em.fix_u && em.u_sample_pairs == 0) return FieldError("fixU needs uSamplePairs > 0", "em.fixU");
  if (!(em.pseudo_count >= 0 && em.pseudo_count <= kMaxPseudoCount)) {
    return FieldError(fmt::format("expected a number from 0 to {}", kMaxPseudoCount), "em.pseudoCount");
  }
  return Status::OK();
}

namespace {

Result<int64_t> IntMember(const Json& v, const std::string& path, int64_t lo, int64_t hi) {
  if (!v.is_int() || v.as_int() < lo || v.as_int() > hi) {
    return FieldError(fmt::format("expected an integer from {} to {}", lo, hi), path);
  }
  return v.as_int();
}

Result<bool> BoolMember(const Json& v, const std::string& path) {
  if (!v.is_bool()) return FieldError("expected true or false", path);
  return v.as_bool();
}

Result<ComparatorSpec> ComparatorFromJson(const Json& j, const std::string& path) {
  if (!j.is_object()) return FieldError("expected an object", path);
  ComparatorSpec c;
  bool has_kind = false;
  for (const auto& [key, value] : j.members()) {
    const std::string field = path + "." + key;
    if (key == "name" || key == "field") {
      if (!value.is_string()) return FieldError("expected a string", field);
      (key == "name" ? c.name : c.field) = value.as_string();
    } else if (key == "kind") {
      static constexpr ComparatorKind kKinds[] = {ComparatorKind::kExact, ComparatorKind::kJaroWinkler,
                                                  ComparatorKind::kLevenshtein, ComparatorKind::kNumeric,
                                                  ComparatorKind::kDate};
      const auto* found =
          value.is_string() ? std::find_if(std::begin(kKinds), std::end(kKinds),
                                           [&](ComparatorKind k) { return ComparatorKindName(k) == value.as_string(); })
                            : std::end(kKinds);
      if (found == std::end(kKinds)) {
        return FieldError("expected one of exact, jaro_winkler, levenshtein, numeric, date", field);
      }
      c.kind = *found;
      has_kind = true;
    } else if (key == "thresholds") {
      if (!value.is_array()) return FieldError("expected an array of numbers", field);
      if (value.size() > kMaxLevels) return FieldError(fmt::format("more than {} thresholds", kMaxLevels), field);
      for (size_t i = 0; i < value.size(); ++i) {
        if (!value.items()[i].is_number()) return FieldError("expected a number", fmt::format("{}[{}]", field, i));
        c.thresholds.push_back(value.items()[i].as_number());
      }
    } else if (key == "exactLevel") {
      CDP_ASSIGN_OR_RETURN(c.exact_level, BoolMember(value, field));
    } else if (key == "relative") {
      CDP_ASSIGN_OR_RETURN(c.relative, BoolMember(value, field));
    } else {
      return FieldError("unknown member (expected name, field, kind, thresholds, exactLevel, relative)", field);
    }
  }
  if (c.field.empty()) return FieldError("a comparator needs a \"field\"", path + ".field");
  if (!has_kind) return FieldError("a comparator needs a \"kind\"", path + ".kind");
  return c;
}

Result<BlockingKey> BlockingKeyFromJson(const Json& j, const std::string& path) {
  BlockingKey key;
  if (j.is_string()) {
    key.field = j.as_string();
    return key;
  }
  if (!j.is_object()) return FieldError("expected a field name or an object", path);
  for (const auto& [name, value] : j.members()) {
    const std::string field = path + "." + name;
    if (name == "field") {
      if (!value.is_string()) return FieldError("expected a string", field);
      key.field = value.as_string();
    } else if (name == "transform") {
      const std::string t = value.is_string() ? value.as_string() : "";
      if (t == "none") {
        key.transform = KeyTransform::kNone;
      } else if (t == "prefix") {
        key.transform = KeyTransform::kPrefix;
      } else if (t == "soundex") {
        key.transform = KeyTransform::kSoundex;
      } else {
        return FieldError("expected one of none, prefix, soundex", field);
      }
    } else if (name == "length") {
      CDP_ASSIGN_OR_RETURN(int64_t length, IntMember(value, field, 1, kMaxPrefix));
      key.length = static_cast<int>(length);
    } else {
      return FieldError("unknown member (expected field, transform, length)", field);
    }
  }
  if (key.field.empty()) return FieldError("a blocking key needs a \"field\"", path + ".field");
  return key;
}

}  // namespace

Result<LinkageConfig> LinkageConfig::FromJson(const Json& json) {
  if (!json.is_object()) return Status::InvalidArgument("a linkage configuration must be a JSON object");
  LinkageConfig config;
  bool has_comparators = false, has_blocking = false;
  for (const auto& [key, value] : json.members()) {
    if (key == "comparators") {
      if (!value.is_array()) return FieldError("expected an array of comparators", key);
      if (value.size() > kMaxComparators) {
        return FieldError(fmt::format("more than {} comparators", kMaxComparators), key);
      }
      for (size_t k = 0; k < value.size(); ++k) {
        CDP_ASSIGN_OR_RETURN(ComparatorSpec c, ComparatorFromJson(value.items()[k], fmt::format("comparators[{}]", k)));
        config.comparators.push_back(std::move(c));
      }
      has_comparators = true;
    } else if (key == "blocking") {
      if (!value.is_array()) return FieldError("expected an array of rules", key);
      if (value.size() > kMaxBlockingRules) {
        return FieldError(fmt::format("more than {} blocking rules", kMaxBlockingRules), key);
      }
      for (size_t r = 0; r < value.size(); ++r) {
        const Json& rule = value.items()[r];
        const std::string path = fmt::format("blocking[{}]", r);
        if (!rule.is_array()) return FieldError("expected an array of keys", path);
        if (rule.size() > kMaxKeysPerRule) return FieldError(fmt::format("more than {} keys", kMaxKeysPerRule), path);
        BlockingRule out;
        for (size_t i = 0; i < rule.size(); ++i) {
          CDP_ASSIGN_OR_RETURN(BlockingKey k, BlockingKeyFromJson(rule.items()[i], fmt::format("{}[{}]", path, i)));
          out.keys.push_back(std::move(k));
        }
        config.blocking.push_back(std::move(out));
      }
      has_blocking = true;
    } else if (key == "maxPairs") {
      CDP_ASSIGN_OR_RETURN(config.max_pairs, IntMember(value, key, 1, kMaxPairsLimit));
    } else if (key == "threshold") {
      if (!value.is_number()) return FieldError("expected a probability from 0 to 1", key);
      config.threshold = value.as_number();
    } else if (key == "em") {
      if (!value.is_object()) return FieldError("expected an object", key);
      for (const auto& [name, v] : value.members()) {
        const std::string field = "em." + name;
        if (name == "maxIterations") {
          CDP_ASSIGN_OR_RETURN(int64_t n, IntMember(v, field, 1, kMaxIterationsLimit));
          config.em.max_iterations = static_cast<int>(n);
        } else if (name == "tolerance") {
          if (!v.is_number()) return FieldError("expected a number in (0, 0.1]", field);
          config.em.tolerance = v.as_number();
        } else if (name == "uSamplePairs") {
          CDP_ASSIGN_OR_RETURN(config.em.u_sample_pairs, IntMember(v, field, 0, kMaxSamplePairs));
        } else if (name == "pseudoCount") {
          if (!v.is_number()) return FieldError(fmt::format("expected a number from 0 to {}", kMaxPseudoCount), field);
          config.em.pseudo_count = v.as_number();
        } else if (name == "fixU") {
          CDP_ASSIGN_OR_RETURN(config.em.fix_u, BoolMember(v, field));
        } else if (name == "seed") {
          CDP_ASSIGN_OR_RETURN(int64_t seed, IntMember(v, field, 0, std::numeric_limits<int64_t>::max()));
          config.em.seed = static_cast<uint64_t>(seed);
        } else {
          return FieldError("unknown member (expected maxIterations, tolerance, pseudoCount, uSamplePairs, fixU, seed)",
                            field);
        }
      }
    } else {
      return FieldError("unknown member (expected comparators, blocking, maxPairs, threshold, em)", key);
    }
  }
  if (!has_comparators) return FieldError("a configuration needs \"comparators\"", "comparators");
  if (!has_blocking) return FieldError("a configuration needs \"blocking\"", "blocking");
  CDP_RETURN_IF_ERROR(config.Validate());
  return config;
}

Json LinkageConfig::ToJson() const {
  Json comps = Json::Array();
  for (const ComparatorSpec& c : comparators) {
    Json thresholds = Json::Array();
    for (double t : c.thresholds) thresholds.Push(t);
    Json j = Json::Object();
    j.Set("name", c.name).Set("field", c.field).Set("kind", ComparatorKindName(c.kind));
    j.Set("thresholds", std::move(thresholds)).Set("exactLevel", c.exact_level).Set("relative", c.relative);
    comps.Push(std::move(j));
  }
  Json rules = Json::Array();
  for (const BlockingRule& rule : blocking) {
    Json keys = Json::Array();
    for (const BlockingKey& key : rule.keys) {
      Json k = Json::Object();
      k.Set("field", key.field);
      k.Set("transform", key.transform == KeyTransform::kPrefix    ? "prefix"
                         : key.transform == KeyTransform::kSoundex ? "soundex"
                                                                   : "none");
      if (key.transform == KeyTransform::kPrefix) k.Set("length", key.length);
      keys.Push(std::move(k));
    }
    rules.Push(std::move(keys));
  }
  Json em_json = Json::Object();
  em_json.Set("maxIterations", em.max_iterations).Set("tolerance", em.tolerance).Set("pseudoCount", em.pseudo_count);
  em_json.Set("uSamplePairs", em.u_sample_pairs).Set("fixU", em.fix_u).Set("seed", em.seed);
  Json out = Json::Object();
  out.Set("comparators", std::move(comps)).Set("blocking", std::move(rules));
  out.Set("maxPairs", max_pairs).Set("threshold", threshold).Set("em", std::move(em_json));
  return out;
}

// ---- comparison vectors and the model -------------------------------------------------------------------------------

Result<ComparisonVectors> ComparisonVectors::Create(std::vector<int> num_levels) {
  if (num_levels.empty() || num_levels.size() > kMaxComparators) {
    return Status::InvalidArgument(fmt::format("expected 1 to {} comparators", kMaxComparators));
  }
  for (size_t k = 0; k < num_levels.size(); ++k) {
    if (num_levels[k] < 2 || num_levels[k] > static_cast<int>(kMaxLevels)) {
      return FieldError(fmt::format("expected 2 to {} levels", kMaxLevels), fmt::format("[{}]", k));
    }
  }
  ComparisonVectors v;
  v.num_levels_ = std::move(num_levels);
  return v;
}

Status ComparisonVectors::Add(std::span<const int8_t> gammas) {
  if (gammas.size() != num_levels_.size()) {
    return Status::InvalidArgument(fmt::format("expected {} levels, got {}", num_levels_.size(), gammas.size()));
  }
  for (size_t k = 0; k < gammas.size(); ++k) {
    if (gammas[k] < -1 || gammas[k] >= num_levels_[k]) {
      return FieldError(fmt::format("level {} outside -1 .. {}", gammas[k], num_levels_[k] - 1),
                        fmt::format("[{}]", k));
    }
  }
  AddUnchecked(gammas.data());
  return Status::OK();
}

double Model::PriorWeight() const { return std::log2(lambda / (1.0 - lambda)); }

double Model::LevelWeight(size_t comparator, int gamma) const {
  if (gamma < 0) return 0.0;
  const ComparatorParameters& p = comparators[comparator];
  const auto g = static_cast<size_t>(gamma);
  return std::log2(std::max(p.m[g], kMinProbability) / std::max(p.u[g], kMinProbability));
}

double Model::MatchWeight(const int8_t* gammas) const {
  double w = PriorWeight();
  for (size_t k = 0; k < comparators.size(); ++k) w += LevelWeight(k, gammas[k]);
  return w;
}

double Model::Probability(double match_weight) { return 1.0 / (1.0 + std::exp2(-match_weight)); }

Json Model::ToJson() const {
  Json comps = Json::Array();
  for (const ComparatorParameters& c : comparators) {
    Json m = Json::Array(), u = Json::Array();
    for (double v : c.m) m.Push(v);
    for (double v : c.u) u.Push(v);
    Json j = Json::Object();
    j.Set("name", c.name).Set("m", std::move(m)).Set("u", std::move(u));
    comps.Push(std::move(j));
  }
  Json out = Json::Object();
  out.Set("lambda", lambda).Set("comparators", std::move(comps));
  out.Set("iterations", iterations).Set("converged", converged);
  return out;
}

Result<Model> Model::FromJson(const Json& json) {
  if (!json.is_object()) return Status::InvalidArgument("a model must be a JSON object");
  Model model;
  const Json* lambda = json.Find("lambda");
  if (lambda == nullptr || !lambda->is_number() || !(lambda->as_number() > 0 && lambda->as_number() < 1)) {
    return FieldError("expected a probability strictly between 0 and 1", "lambda");
  }
  model.lambda = lambda->as_number();
  const Json* comps = json.Find("comparators");
  if (comps == nullptr || !comps->is_array() || comps->size() == 0 || comps->size() > kMaxComparators) {
    return FieldError(fmt::format("expected an array of 1 to {} comparators", kMaxComparators), "comparators");
  }
  for (size_t k = 0; k < comps->size(); ++k) {
    const Json& c = comps->items()[k];
    const std::string path = fmt::format("comparators[{}]", k);
    if (!c.is_object()) return FieldError("expected an object", path);
    for (const auto& [key, value] : c.members()) {
      if (key != "name" && key != "m" && key != "u") {
        return FieldError("unknown member (expected name, m, u)", path + "." + key);
      }
    }
    ComparatorParameters p;
    const Json* name = c.Find("name");
    if (name == nullptr || !name->is_string() || name->as_string().empty()) {
      return FieldError("expected a name", path + ".name");
    }
    p.name = name->as_string();
    for (const char* which : {"m", "u"}) {
      const Json* probs = c.Find(which);
      const std::string ppath = path + "." + which;
      if (probs == nullptr || !probs->is_array() || probs->size() < 2 || probs->size() > kMaxLevels) {
        return FieldError(fmt::format("expected an array of 2 to {} probabilities", kMaxLevels), ppath);
      }
      std::vector<double>& out = which[0] == 'm' ? p.m : p.u;
      double sum = 0;
      for (size_t g = 0; g < probs->size(); ++g) {
        const Json& v = probs->items()[g];
        if (!v.is_number() || !(v.as_number() >= 0 && v.as_number() <= 1)) {
          return FieldError("expected a probability from 0 to 1", fmt::format("{}[{}]", ppath, g));
        }
        out.push_back(v.as_number());
        sum += v.as_number();
      }
      if (std::abs(sum - 1.0) > 1e-6) return FieldError("probabilities must sum to 1", ppath);
    }
    if (p.m.size() != p.u.size()) return FieldError("m and u need the same number of levels", path + ".u");
    model.comparators.push_back(std::move(p));
  }
  for (const auto& [key, value] : json.members()) {
    if (key == "iterations") {
      CDP_ASSIGN_OR_RETURN(int64_t n, IntMember(value, key, 0, kMaxIterationsLimit));
      model.iterations = static_cast<int>(n);
    } else if (key == "converged") {
      CDP_ASSIGN_OR_RETURN(model.converged, BoolMember(value, key));
    } else if (key != "lambda" && key != "comparators") {
      return FieldError("unknown member (expected lambda, comparators, iterations, converged)", key);
    }
  }
  return model;
}

namespace {

// Identical comparison vectors, counted.
struct Patterns {
  std::vector<const int8_t*> rows;
  std::vector<double> counts;
};

Patterns CountPatterns(const ComparisonVectors& v) {
  const size_t k = v.num_comparators();
  absl::flat_hash_map<std::string_view, uint32_t> index;
  Patterns p;
  for (size_t i = 0; i < v.size(); ++i) {
    const int8_t* row = v.row(i);
    auto [it, inserted] = index.try_emplace(std::string_view(reinterpret_cast<const char*>(row), k),
                                            static_cast<uint32_t>(p.rows.size()));
    if (inserted) {
      p.rows.push_back(row);
      p.counts.push_back(0);
    }
    p.counts[it->second] += 1;
  }
  return p;
}

// Level frequencies among the non-null levels of `v`, with `pseudo_count` added to each level's count, floored.
std::vector<std::vector<double>> LevelFrequencies(const ComparisonVectors& v, double pseudo_count) {
  std::vector<std::vector<double>> f;
  for (int levels : v.num_levels()) f.emplace_back(static_cast<size_t>(levels), 0.0);
  for (size_t i = 0; i < v.size(); ++i) {
    const int8_t* row = v.row(i);
    for (size_t k = 0; k < f.size(); ++k) {
      if (row[k] >= 0) f[k][static_cast<size_t>(row[k])] += 1;
    }
  }
  for (auto& levels : f) {
    const double total = std::accumulate(levels.begin(), levels.end(), 0.0);
    const double denominator = total + pseudo_count * static_cast<double>(levels.size());
    for (double& x : levels) {
      x = total > 0 ? std::max((x + pseudo_count) / denominator, kMinProbability) : 1.0 / levels.size();
    }
  }
  return f;
}

std::vector<double> DefaultM(size_t levels) {
  std::vector<double> m(levels, 0.1 / static_cast<double>(levels - 1));
  m.back() = 0.9;
  return m;
}

Status CheckModelShape(const Model& model, const std::vector<int>& num_levels, const std::string& what) {
  if (model.comparators.size() != num_levels.size()) {
    return FieldError(
        fmt::format("{} has {} comparators, expected {}", what, model.comparators.size(), num_levels.size()),
        "comparators");
  }
  for (size_t k = 0; k < num_levels.size(); ++k) {
    const ComparatorParameters& p = model.comparators[k];
    if (p.m.size() != static_cast<size_t>(num_levels[k]) || p.u.size() != p.m.size()) {
      return FieldError(fmt::format("{}: expected {} levels", what, num_levels[k]), fmt::format("comparators[{}]", k));
    }
  }
  if (!(model.lambda > 0 && model.lambda < 1)) return FieldError(what + ": lambda must be in (0, 1)", "lambda");
  return Status::OK();
}

}  // namespace

Result<Model> EstimateParameters(const ComparisonVectors& vectors, const EmOptions& options, const Model* start) {
  if (vectors.size() == 0) return Status::InvalidArgument("no comparison vectors to estimate from");
  const size_t num_k = vectors.num_comparators();
  Model model;
  if (start != nullptr) {
    CDP_RETURN_IF_ERROR(CheckModelShape(*start, vectors.num_levels(), "the start model"));
    model = *start;
  } else {
    std::vector<std::vector<double>> freq = LevelFrequencies(vectors, options.pseudo_count);
    for (size_t k = 0; k < num_k; ++k) {
      model.comparators.push_back({fmt::format("c{}", k), DefaultM(freq[k].size()), std::move(freq[k])});
    }
    model.lambda = 0.5;
  }
  const Patterns patterns = CountPatterns(vectors);
  const double total = static_cast<double>(vectors.size());
  std::vector<std::vector<double>> log_m(num_k), log_u(num_k), sum_m(num_k), sum_u(num_k);
  model.converged = false;
  model.iterations = 0;
  for (int iteration = 1; iteration <= options.max_iterations; ++iteration) {
    for (size_t k = 0; k < num_k; ++k) {
      const ComparatorParameters& p = model.comparators[k];
      log_m[k].resize(p.m.size());
      log_u[k].resize(p.u.size());
      for (size_t g = 0; g < p.m.size(); ++g) {
        log_m[k][g] = std::log(std::max(p.m[g], kMinProbability));
        log_u[k][g] = std::log(std::max(p.u[g], kMinProbability));
      }
      sum_m[k].assign(p.m.size(), 0.0);
      sum_u[k].assign(p.u.size(), 0.0);
    }
    // E-step: the posterior match probability of each distinct vector; accumulate the expected counts.
    const double log_prior = std::log(model.lambda) - std::log1p(-model.lambda);
    double matches = 0;
    for (size_t p = 0; p < patterns.rows.size(); ++p) {
      const int8_t* row = patterns.rows[p];
      double log_ratio = log_prior;
      for (size_t k = 0; k < num_k; ++k) {
        if (row[k] >= 0) log_ratio += log_m[k][static_cast<size_t>(row[k])] - log_u[k][static_cast<size_t>(row[k])];
      }
      const double post = 1.0 / (1.0 + std::exp(-log_ratio));
      const double c = patterns.counts[p];
      matches += c * post;
      for (size_t k = 0; k < num_k; ++k) {
        if (row[k] < 0) continue;
        sum_m[k][static_cast<size_t>(row[k])] += c * post;
        sum_u[k][static_cast<size_t>(row[k])] += c * (1.0 - post);
      }
    }
    // M-step.
    double delta = 0;
    const double pseudo = options.pseudo_count;
    auto update = [&delta, pseudo](std::vector<double>& probs, const std::vector<double>& sums) {
      const double s = std::accumulate(sums.begin(), sums.end(), 0.0);
      if (s <= 0) return;  // no evidence: keep the previous values
      const double denominator = s + pseudo * static_cast<double>(probs.size());
      for (size_t g = 0; g < probs.size(); ++g) {
        const double v = std::max((sums[g] + pseudo) / denominator, kMinProbability);
        delta = std::max(delta, std::abs(v - probs[g]));
        probs[g] = v;
      }
    };
    for (size_t k = 0; k < num_k; ++k) {
      update(model.comparators[k].m, sum_m[k]);
      if (!options.fix_u) update(model.comparators[k].u, sum_u[k]);
    }
    const double lambda = std::clamp(matches / total, kMinProbability, 1.0 - kMinProbability);
    delta = std::max(delta, std::abs(lambda - model.lambda));
    model.lambda = lambda;
    model.iterations = iteration;
    if (delta < options.tolerance) {
      model.converged = true;
      break;
    }
  }
  // Identifiability: the match class is the one that agrees more.
  double agreement = 0;
  for (const ComparatorParameters& p : model.comparators) agreement += p.m.back() - p.u.back();
  if (agreement < 0 && !options.fix_u) {
    for (ComparatorParameters& p : model.comparators) std::swap(p.m, p.u);
    model.lambda = 1.0 - model.lambda;
  }
  return model;
}

std::vector<std::string> Model::Implausible() const {
  std::vector<std::string> out;
  for (const ComparatorParameters& p : comparators) {
    if (p.m.size() < 2 || p.m.size() != p.u.size()) continue;
    if (p.m.front() > 2 * p.u.front()) {
      out.push_back(fmt::format(
          "{}: its least similar level is evidence for a match (m {:.3g} > 2 x u {:.3g}): the model's \"match\" "
          "class is not one person",
          p.name, p.m.front(), p.u.front()));
    }
  }
  return out;
}

// ---- scoring, clustering, evaluation --------------------------------------------------------------------------------

std::vector<uint32_t> Cluster(size_t num_left, size_t num_right, std::span<const ScoredPair> pairs, double threshold) {
  const size_t n = num_left + num_right;
  std::vector<uint32_t> parent(n);
  std::iota(parent.begin(), parent.end(), 0u);
  auto find = [&parent](uint32_t x) {
    while (parent[x] != x) x = parent[x] = parent[parent[x]];
    return x;
  };
  const size_t offset = num_right == 0 ? 0 : num_left;
  for (const ScoredPair& p : pairs) {
    if (p.match_probability < threshold || p.left >= num_left || offset + p.right >= n) continue;
    const uint32_t a = find(p.left), b = find(static_cast<uint32_t>(offset + p.right));
    if (a != b) parent[std::max(a, b)] = std::min(a, b);  // the root is the smallest index
  }
  for (uint32_t i = 0; i < n; ++i) parent[i] = find(i);
  return parent;
}

std::vector<CandidatePair> TruePairs(std::span<const std::string> left, const std::vector<std::string>* right) {
  absl::flat_hash_map<std::string_view, std::vector<uint32_t>> by_entity;
  for (size_t i = 0; i < left.size(); ++i) {
    if (!left[i].empty()) by_entity[left[i]].push_back(static_cast<uint32_t>(i));
  }
  std::vector<CandidatePair> out;
  if (right == nullptr) {
    for (const auto& [entity, members] : by_entity) {
      for (size_t a = 0; a < members.size(); ++a) {
        for (size_t b = a + 1; b < members.size(); ++b) out.push_back({members[a], members[b]});
      }
    }
  } else {
    for (size_t j = 0; j < right->size(); ++j) {
      auto it = by_entity.find((*right)[j]);
      if ((*right)[j].empty() || it == by_entity.end()) continue;
      for (uint32_t i : it->second) out.push_back({i, static_cast<uint32_t>(j)});
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

PairMetrics EvaluatePairs(std::span<const CandidatePair> predicted, std::span<const CandidatePair> truth, bool dedupe) {
  auto normalized = [dedupe](std::span<const CandidatePair> pairs) {
    std::vector<CandidatePair> out(pairs.begin(), pairs.end());
    if (dedupe) {
      for (CandidatePair& p : out) {
        if (p.left > p.right) std::swap(p.left, p.right);
      }
    }
    std::sort(out.begin(), out.end());
    out.erase(std::unique(out.begin(), out.end()), out.end());
    return out;
  };
  const std::vector<CandidatePair> p = normalized(predicted), t = normalized(truth);
  std::vector<CandidatePair> both;
  std::set_intersection(p.begin(), p.end(), t.begin(), t.end(), std::back_inserter(both));
  PairMetrics m;
  m.true_positives = static_cast<int64_t>(both.size());
  m.false_positives = static_cast<int64_t>(p.size() - both.size());
  m.false_negatives = static_cast<int64_t>(t.size() - both.size());
  m.precision = p.empty() ? 0.0 : static_cast<double>(both.size()) / static_cast<double>(p.size());
  m.recall = t.empty() ? 0.0 : static_cast<double>(both.size()) / static_cast<double>(t.size());
  m.f1 = m.precision + m.recall > 0 ? 2 * m.precision * m.recall / (m.precision + m.recall) : 0.0;
  return m;
}

// ---- the pipeline ---------------------------------------------------------------------------------------------------

namespace {

// One comparator's value of one record: normalized text in the table's arena, and for numeric and date the parsed
// number (NaN: missing or unparsable).
struct Cell {
  size_t offset = 0;
  uint32_t size = 0;
  double number = 0;
};

// A table made ready for comparison. Row-major (a record's cells, and their text, lie together), so comparing a
// random pair touches a few cache lines rather than one per comparator.
struct Prepared {
  size_t size = 0;
  size_t num_comparators = 0;
  std::string arena;
  std::vector<Cell> cells;  // [record * num_comparators + comparator]

  const Cell* row(size_t i) const { return cells.data() + i * num_comparators; }
  std::string_view text(const Cell& c) const { return std::string_view(arena.data() + c.offset, c.size); }
};

Result<int> FieldOf(const Records& table, const std::string& field, const std::string& path, const char* side) {
  const int index = table.FieldIndex(field);
  if (index < 0) return FieldError(fmt::format("the {} table has no field \"{}\"", side, field), path);
  return index;
}

Result<Prepared> Prepare(const LinkageConfig& config, const Records& table, const char* side) {
  CDP_RETURN_IF_ERROR(table.Validate());
  const size_t num_k = config.comparators.size();
  std::vector<size_t> fields;
  for (size_t k = 0; k < num_k; ++k) {
    CDP_ASSIGN_OR_RETURN(int f,
                         FieldOf(table, config.comparators[k].field, fmt::format("comparators[{}].field", k), side));
    fields.push_back(static_cast<size_t>(f));
  }
  Prepared out;
  out.size = table.rows.size();
  out.num_comparators = num_k;
  out.cells.reserve(out.size * num_k);
  for (const auto& row : table.rows) {
    for (size_t k = 0; k < num_k; ++k) {
      const ComparatorSpec& spec = config.comparators[k];
      const std::string value = Normalize(row[fields[k]]);
      Cell cell{out.arena.size(), static_cast<uint32_t>(value.size()), kMissing};
      out.arena += value;
      if (spec.kind == ComparatorKind::kNumeric) {
        cell.number = ParseNumber(value).value_or(kMissing);
      } else if (spec.kind == ComparatorKind::kDate) {
        if (auto day = ParseDate(value)) cell.number = static_cast<double>(*day);
      }
      out.cells.push_back(cell);
    }
  }
  return out;
}

int8_t Level(const ComparatorSpec& spec, std::string_view x, std::string_view y, double p, double q) {
  if (x.empty() || y.empty()) return -1;
  const int levels = spec.NumLevels();
  if (spec.kind == ComparatorKind::kExact) return x == y ? 1 : 0;
  const int base = spec.exact_level ? levels - 2 : levels - 1;  // the level of thresholds[0]
  const size_t n = spec.thresholds.size();
  switch (spec.kind) {
    case ComparatorKind::kJaroWinkler: {
      if (spec.exact_level && x == y) return static_cast<int8_t>(levels - 1);
      if (n == 0) return 0;
      const double sim = JaroWinkler(x, y);
      for (size_t t = 0; t < n; ++t) {
        if (sim >= spec.thresholds[t]) return static_cast<int8_t>(base - static_cast<int>(t));
      }
      return 0;
    }
    case ComparatorKind::kLevenshtein: {
      if (spec.exact_level && x == y) return static_cast<int8_t>(levels - 1);
      if (n == 0) return 0;
      const int dist = Levenshtein(x, y, static_cast<int>(spec.thresholds.back()));
      for (size_t t = 0; t < n; ++t) {
        if (dist <= spec.thresholds[t]) return static_cast<int8_t>(base - static_cast<int>(t));
      }
      return 0;
    }
    case ComparatorKind::kNumeric:
    case ComparatorKind::kDate: {
      if (std::isnan(p) || std::isnan(q)) return -1;
      if (spec.exact_level && p == q) return static_cast<int8_t>(levels - 1);
      double diff = std::abs(p - q);
      if (spec.relative) {
        const double scale = std::max(std::abs(p), std::abs(q));
        diff = scale > 0 ? diff / scale : 0.0;
      }
      for (size_t t = 0; t < n; ++t) {
        if (diff <= spec.thresholds[t]) return static_cast<int8_t>(base - static_cast<int>(t));
      }
      return 0;
    }
    case ComparatorKind::kExact:
      break;
  }
  return 0;
}

void CompareRow(const LinkageConfig& config, const Prepared& l, const Prepared& r, size_t i, size_t j, int8_t* out) {
  const Cell* a = l.row(i);
  const Cell* b = r.row(j);
  for (size_t k = 0; k < config.comparators.size(); ++k) {
    out[k] = Level(config.comparators[k], l.text(a[k]), r.text(b[k]), a[k].number, b[k].number);
  }
}

std::vector<int> NumLevels(const LinkageConfig& config) {
  std::vector<int> levels;
  for (const ComparatorSpec& c : config.comparators) levels.push_back(c.NumLevels());
  return levels;
}

// The key of `rule` for `row` (its values at `fields`, one per key part) into *key; false when a part is missing.
bool RowKey(const BlockingRule& rule, const std::vector<std::string>& row, const std::vector<size_t>& fields,
            std::string* key, std::string* part) {
  key->clear();
  for (size_t i = 0; i < rule.keys.size(); ++i) {
    const BlockingKey& k = rule.keys[i];
    *part = Normalize(row[fields[i]]);
    if (k.transform == KeyTransform::kPrefix) {
      part->resize(std::min(part->size(), static_cast<size_t>(k.length)));
    } else if (k.transform == KeyTransform::kSoundex) {
      *part = Soundex(*part);
    }
    if (part->empty()) return false;
    // Length-prefixed parts, so ("ab", "c") and ("a", "bc") differ.
    key->push_back(static_cast<char>(part->size() & 0xFF));
    key->push_back(static_cast<char>(part->size() >> 8));
    *key += *part;
  }
  return true;
}

// Blocking key ids per rule: ids[r][i] for left record i, ids[r][num_left + j] for right record j; kNoKey when a
// part is missing. Equal ids mean equal keys (the two tables share one dictionary per rule).
Result<std::vector<std::vector<uint32_t>>> KeyIds(const LinkageConfig& config, const Records& left,
                                                  const Records* right) {
  std::vector<std::vector<uint32_t>> ids;
  std::string key, part;
  for (size_t r = 0; r < config.blocking.size(); ++r) {
    const BlockingRule& rule = config.blocking[r];
    absl::flat_hash_map<std::string, uint32_t> dictionary;
    std::vector<uint32_t> rule_ids;
    rule_ids.reserve(left.rows.size() + (right ? right->rows.size() : 0));
    for (const Records* table : {&left, right}) {
      if (table == nullptr) continue;
      const char* side = table == &left ? "left" : "right";
      std::vector<size_t> fields;
      for (size_t i = 0; i < rule.keys.size(); ++i) {
        CDP_ASSIGN_OR_RETURN(int f,
                             FieldOf(*table, rule.keys[i].field, fmt::format("blocking[{}][{}].field", r, i), side));
        fields.push_back(static_cast<size_t>(f));
      }
      for (const auto& row : table->rows) {
        if (!RowKey(rule, row, fields, &key, &part)) {
          rule_ids.push_back(kNoKey);
          continue;
        }
        auto [it, inserted] = dictionary.try_emplace(key, static_cast<uint32_t>(dictionary.size()));
        rule_ids.push_back(it->second);
      }
    }
    ids.push_back(std::move(rule_ids));
  }
  return ids;
}

// Records grouped by key id: members of key g are order[start[g] .. start[g + 1]), in ascending record order.
struct Buckets {
  std::vector<uint32_t> start;
  std::vector<uint32_t> order;
};

Buckets GroupByKey(const std::vector<uint32_t>& ids, size_t begin, size_t end) {
  uint32_t num_keys = 0;
  for (size_t i = begin; i < end; ++i) {
    if (ids[i] != kNoKey) num_keys = std::max(num_keys, ids[i] + 1);
  }
  Buckets b;
  b.start.assign(num_keys + 1, 0);
  for (size_t i = begin; i < end; ++i) {
    if (ids[i] != kNoKey) ++b.start[ids[i] + 1];
  }
  std::partial_sum(b.start.begin(), b.start.end(), b.start.begin());
  b.order.resize(b.start.back());
  std::vector<uint32_t> fill(b.start.begin(), b.start.end() - 1);
  for (size_t i = begin; i < end; ++i) {
    if (ids[i] != kNoKey) b.order[fill[ids[i]]++] = static_cast<uint32_t>(i - begin);
  }
  return b;
}

Result<std::vector<CandidatePair>> BlockPrepared(const LinkageConfig& config, const Records& left,
                                                 const Records* right) {
  CDP_ASSIGN_OR_RETURN(auto ids, KeyIds(config, left, right));
  const size_t nl = left.rows.size();
  const size_t n = ids.empty() ? 0 : ids[0].size();
  std::vector<CandidatePair> pairs;
  const auto max_pairs = static_cast<uint64_t>(config.max_pairs);
  for (size_t r = 0; r < ids.size(); ++r) {
    const std::vector<uint32_t>& rule = ids[r];
    // Earlier rules already gave the pairs that agree on their keys.
    auto seen = [&](size_t i, size_t j) {
      for (size_t e = 0; e < r; ++e) {
        if (ids[e][i] != kNoKey && ids[e][i] == ids[e][j]) return true;
      }
      return false;
    };
    const Buckets rb = right == nullptr ? GroupByKey(rule, 0, nl) : GroupByKey(rule, nl, n);
    // The rule alone must stay within max_pairs: checked before any pair is made.
    uint64_t rule_pairs = 0;
    if (right == nullptr) {
      for (size_t g = 0; g + 1 < rb.start.size(); ++g) {
        const uint64_t s = rb.start[g + 1] - rb.start[g];
        rule_pairs += s * (s - 1) / 2;
      }
    } else {
      for (size_t i = 0; i < nl; ++i) {
        if (rule[i] != kNoKey && rule[i] + 1 < rb.start.size()) rule_pairs += rb.start[rule[i] + 1] - rb.start[rule[i]];
      }
    }
    auto too_many = [&](uint64_t count) {
      return Status::ResourceExhausted(
          fmt::format("blocking gives more than {} candidate pairs ({} from this rule{}): make the rules stricter or "
                      "raise maxPairs",
                      max_pairs, count, r > 0 ? " with the earlier ones" : ""),
          fmt::format("blocking[{}]", r));
    };
    if (rule_pairs > max_pairs) return too_many(rule_pairs);
    if (right == nullptr) {
      for (size_t g = 0; g + 1 < rb.start.size(); ++g) {
        for (uint32_t a = rb.start[g]; a < rb.start[g + 1]; ++a) {
          for (uint32_t b = a + 1; b < rb.start[g + 1]; ++b) {
            const uint32_t i = rb.order[a], j = rb.order[b];
            if (r > 0 && seen(i, j)) continue;
            pairs.push_back({i, j});
          }
        }
        if (pairs.size() > max_pairs) return too_many(pairs.size());
      }
    } else {
      for (uint32_t i = 0; i < nl; ++i) {
        const uint32_t key = rule[i];
        if (key == kNoKey || key + 1 >= rb.start.size()) continue;
        for (uint32_t b = rb.start[key]; b < rb.start[key + 1]; ++b) {
          const uint32_t j = rb.order[b];
          if (r > 0 && seen(i, nl + j)) continue;
          pairs.push_back({i, j});
        }
        if (pairs.size() > max_pairs) return too_many(pairs.size());
      }
    }
  }
  return pairs;
}

Status CheckPairs(std::span<const CandidatePair> pairs, size_t nl, size_t nr, bool dedupe) {
  for (size_t p = 0; p < pairs.size(); ++p) {
    if (pairs[p].left >= nl || pairs[p].right >= nr || (dedupe && pairs[p].left == pairs[p].right)) {
      return FieldError(
          dedupe ? "a pair indexes past the table or pairs a record with itself" : "a pair indexes past a table",
          fmt::format("pairs[{}]", p));
    }
  }
  return Status::OK();
}

ComparisonVectors CompareAll(const LinkageConfig& config, const Prepared& l, const Prepared& r,
                             std::span<const CandidatePair> pairs) {
  ComparisonVectors v = ComparisonVectors::Create(NumLevels(config)).value();  // a valid config fits
  v.Reserve(pairs.size());
  std::array<int8_t, kMaxComparators> row{};
  for (const CandidatePair& p : pairs) {
    CompareRow(config, l, r, p.left, p.right, row.data());
    v.AddUnchecked(row.data());
  }
  return v;
}

// The start of EM: u from random pairs of the tables (or the candidates), m from DefaultM, lambda 0.5.
Model StartModel(const LinkageConfig& config, const Prepared& l, const Prepared& r, bool dedupe,
                 const ComparisonVectors& candidates) {
  const uint64_t nl = l.size, nr = r.size;
  const uint64_t possible = dedupe ? (nl < 2 ? 0 : nl * (nl - 1) / 2) : nl * nr;
  const auto wanted = static_cast<uint64_t>(config.em.u_sample_pairs);
  std::vector<std::vector<double>> u;
  if (wanted == 0 || possible == 0) {
    u = LevelFrequencies(candidates, config.em.pseudo_count);
  } else {
    ComparisonVectors sample = ComparisonVectors::Create(NumLevels(config)).value();
    std::array<int8_t, kMaxComparators> row{};
    if (possible <= wanted) {
      sample.Reserve(possible);
      for (uint32_t i = 0; i < nl; ++i) {
        for (uint32_t j = dedupe ? i + 1 : 0; j < (dedupe ? nl : nr); ++j) {
          CompareRow(config, l, r, i, j, row.data());
          sample.AddUnchecked(row.data());
        }
      }
    } else {
      sample.Reserve(wanted);
      uint64_t state = config.em.seed;
      for (uint64_t s = 0; s < wanted; ++s) {
        uint64_t i = Below(&state, nl), j = 0;
        if (dedupe) {
          j = Below(&state, nl - 1);
          if (j >= i) ++j;
        } else {
          j = Below(&state, nr);
        }
        CompareRow(config, l, r, i, j, row.data());
        sample.AddUnchecked(row.data());
      }
    }
    u = LevelFrequencies(sample, config.em.pseudo_count);
  }
  Model start;
  start.lambda = 0.5;
  for (size_t k = 0; k < config.comparators.size(); ++k) {
    start.comparators.push_back({config.comparators[k].name, DefaultM(u[k].size()), std::move(u[k])});
  }
  return start;
}

}  // namespace

Result<Linker> Linker::Create(LinkageConfig config) {
  CDP_RETURN_IF_ERROR(config.Validate());
  return Linker(std::move(config));
}

Result<std::vector<std::string>> BlockingKeys(const LinkageConfig& config, const Records& records, size_t row) {
  if (row >= records.rows.size()) return Status::InvalidArgument("no such row", fmt::format("rows[{}]", row));
  std::vector<std::string> keys;
  std::string key, part;
  for (size_t r = 0; r < config.blocking.size(); ++r) {
    const BlockingRule& rule = config.blocking[r];
    std::vector<size_t> fields;
    for (size_t i = 0; i < rule.keys.size(); ++i) {
      CDP_ASSIGN_OR_RETURN(int f,
                           FieldOf(records, rule.keys[i].field, fmt::format("blocking[{}][{}].field", r, i), "left"));
      fields.push_back(static_cast<size_t>(f));
    }
    keys.push_back(RowKey(rule, records.rows[row], fields, &key, &part) ? key : std::string());
  }
  return keys;
}

Result<std::vector<CandidatePair>> Linker::Block(const Records& left, const Records* right) const {
  CDP_RETURN_IF_ERROR(left.Validate());
  if (right != nullptr) CDP_RETURN_IF_ERROR(right->Validate());
  return BlockPrepared(config_, left, right);
}

Result<ComparisonVectors> Linker::Compare(const Records& left, const Records* right,
                                          std::span<const CandidatePair> pairs) const {
  CDP_ASSIGN_OR_RETURN(Prepared l, Prepare(config_, left, "left"));
  Prepared r;
  if (right != nullptr) {
    CDP_ASSIGN_OR_RETURN(r, Prepare(config_, *right, "right"));
  }
  const Prepared& rr = right != nullptr ? r : l;
  CDP_RETURN_IF_ERROR(CheckPairs(pairs, l.size, rr.size, right == nullptr));
  return CompareAll(config_, l, rr, pairs);
}

Result<Model> Linker::Estimate(const Records& left, const Records* right, const ComparisonVectors& candidates) const {
  if (candidates.num_levels() != NumLevels(config_)) {
    return Status::InvalidArgument("the comparison vectors do not fit the comparators");
  }
  CDP_ASSIGN_OR_RETURN(Prepared l, Prepare(config_, left, "left"));
  Prepared r;
  if (right != nullptr) {
    CDP_ASSIGN_OR_RETURN(r, Prepare(config_, *right, "right"));
  }
  const Model start = StartModel(config_, l, right != nullptr ? r : l, right == nullptr, candidates);
  return EstimateParameters(candidates, config_.em, &start);
}

Result<LinkResult> Linker::Run(const Records& left, const Records* right, const Model* model) const {
  const std::vector<int> levels = NumLevels(config_);
  if (model != nullptr) {
    CDP_RETURN_IF_ERROR(CheckModelShape(*model, levels, "the model"));
    for (size_t k = 0; k < levels.size(); ++k) {
      if (model->comparators[k].name != config_.comparators[k].name) {
        return FieldError(fmt::format("the model's comparator {} is \"{}\", expected \"{}\"", k,
                                      model->comparators[k].name, config_.comparators[k].name),
                          fmt::format("comparators[{}].name", k));
      }
    }
  }
  CDP_ASSIGN_OR_RETURN(Prepared l, Prepare(config_, left, "left"));
  Prepared r;
  if (right != nullptr) {
    CDP_ASSIGN_OR_RETURN(r, Prepare(config_, *right, "right"));
  }
  const Prepared& rr = right != nullptr ? r : l;
  CDP_ASSIGN_OR_RETURN(std::vector<CandidatePair> candidates, BlockPrepared(config_, left, right));
  const ComparisonVectors vectors = CompareAll(config_, l, rr, candidates);

  LinkResult result;
  result.candidate_pairs = static_cast<int64_t>(candidates.size());
  result.comparisons = ComparisonVectors::Create(levels).value();
  if (model != nullptr) {
    result.model = *model;
  } else {
    Model start = StartModel(config_, l, rr, right == nullptr, vectors);
    if (vectors.size() == 0) {
      result.model = std::move(start);  // nothing to fit, nothing to score
      return result;
    }
    CDP_ASSIGN_OR_RETURN(result.model, EstimateParameters(vectors, config_.em, &start));
  }

  // Weights per level, so scoring a pair is K table look-ups.
  std::vector<std::array<double, kMaxLevels + 1>> weights(levels.size());
  for (size_t k = 0; k < levels.size(); ++k) {
    for (int g = -1; g < levels[k]; ++g) weights[k][static_cast<size_t>(g + 1)] = result.model.LevelWeight(k, g);
  }
  const double prior = result.model.PriorWeight();
  std::vector<std::pair<ScoredPair, size_t>> kept;
  for (size_t p = 0; p < candidates.size(); ++p) {
    const int8_t* row = vectors.row(p);
    double w = prior;
    for (size_t k = 0; k < levels.size(); ++k) w += weights[k][static_cast<size_t>(row[k] + 1)];
    const double probability = Model::Probability(w);
    if (probability >= config_.threshold)
      kept.push_back({{candidates[p].left, candidates[p].right, w, probability}, p});
  }
  std::sort(kept.begin(), kept.end(), [](const auto& a, const auto& b) {
    if (a.first.match_weight != b.first.match_weight) return a.first.match_weight > b.first.match_weight;
    return std::tie(a.first.left, a.first.right) < std::tie(b.first.left, b.first.right);
  });
  result.pairs.reserve(kept.size());
  result.comparisons.Reserve(kept.size());
  for (const auto& [pair, index] : kept) {
    result.pairs.push_back(pair);
    result.comparisons.AddUnchecked(vectors.row(index));
  }
  return result;
}

}  // namespace cdp::internal::linkage
