// Copyright 2026 The libcdp Authors.

#include "segments/index.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "cdp/query.h"
#include "core/parallel.h"

namespace cdp::segments {

namespace {

constexpr std::string_view kStandardTypes[] = {"page_view",  "product_view", "add_to_cart", "purchase",
                                               "email_open", "app_usage",    "custom"};
constexpr int64_t kMinTime = std::numeric_limits<int64_t>::min();
constexpr int64_t kMaxTime = std::numeric_limits<int64_t>::max();

// FNV-1a, 64 bits; never 0 (0 means no session).
uint64_t SessionHash(std::string_view id) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : id) h = (h ^ c) * 1099511628211ull;
  return h == 0 ? 1 : h;
}

bool KeepEventKey(std::string_view key) {
  return key == "properties" || key == "source" || key == "deviceId" || key == "name";
}

bool IsNum(Cell c) { return c.tag == Tag::kInt || c.tag == Tag::kDouble; }

double Num(Cell c) {
  if (c.tag == Tag::kInt) return static_cast<double>(static_cast<int64_t>(c.bits));
  double d;
  std::memcpy(&d, &c.bits, sizeof d);
  return d;
}

int CmpNum(Cell a, Cell b) {
  if (a.tag == Tag::kInt && b.tag == Tag::kInt) {
    int64_t x = static_cast<int64_t>(a.bits), y = static_cast<int64_t>(b.bits);
    return x < y ? -1 : (x > y ? 1 : 0);
  }
  double x = Num(a), y = Num(b);
  return x < y ? -1 : (x > y ? 1 : 0);
}

bool EqualCells(Cell a, Cell b) {
  if (IsNum(a) && IsNum(b)) return (a.tag == Tag::kInt && b.tag == Tag::kInt) ? a.bits == b.bits : Num(a) == Num(b);
  if (a.tag != b.tag) return false;
  switch (a.tag) {
    case Tag::kNull:
    case Tag::kFalse:
    case Tag::kTrue:
      return true;
    case Tag::kString:
    case Tag::kTime:
      return a.bits == b.bits;
    default:
      return false;
  }
}

bool IsText(Cell c) { return c.tag == Tag::kString || c.tag == Tag::kTime; }

// The text of a string cell; kTime cells are written into `buf`.
std::string_view Text(Cell c, const StringPool& pool, std::string* buf) {
  if (c.tag == Tag::kString) return pool.Get(static_cast<uint32_t>(c.bits));
  *buf = FormatTimestamp(static_cast<int64_t>(c.bits));
  return *buf;
}

bool FieldTime(Cell c, const StringPool& pool, int64_t* t) {
  if (c.tag == Tag::kTime) {
    *t = static_cast<int64_t>(c.bits);
    return true;
  }
  if (c.tag != Tag::kString) return false;
  auto parsed = ParseTimestamp(pool.Get(static_cast<uint32_t>(c.bits)));
  if (!parsed.ok()) return false;
  *t = *parsed;
  return true;
}

template <typename T>
bool Holds(RuleOp op, T cmp) {
  switch (op) {
    case RuleOp::kGt:
      return cmp > 0;
    case RuleOp::kLt:
      return cmp < 0;
    case RuleOp::kGe:
      return cmp >= 0;
    case RuleOp::kLe:
      return cmp <= 0;
    default:
      return false;
  }
}

// [lo, hi] of event times inside `w` at `now`.
void Resolve(const TimeWindow& w, int64_t now, int64_t* lo, int64_t* hi) {
  *lo = w.from ? w.from->Resolve(now) : kMinTime;
  *hi = w.to ? w.to->Resolve(now) : kMaxTime;
}

int64_t RoundMicros(double v) {
  constexpr double kLimit = 1e12;  // per value; keeps sums of many values inside int64
  v = std::clamp(v, -kLimit, kLimit);
  return std::llround(v * 1e6);
}

}  // namespace

// ---- the prepared (bound) form of a rule --------------------------------------------------------------------------

struct Operand {
  Cell cell;                // scalars, strings interned
  std::vector<Cell> array;  // = / != with an array value
  bool is_array = false;
  std::string text;  // string values
  std::optional<TimePoint> time;
};

struct CMatch;

struct CNode {
  RuleNode::Kind kind = RuleNode::Kind::kAnd;
  std::vector<CNode> children;
  // kField
  const Column* column = nullptr;  // profile fields
  int slot = -1;                   // where-conditions: index into CMatch::paths
  RuleOp op = RuleOp::kEq;
  std::vector<Operand> operands;
  bool absent_matches = false;
  // kEvent / kSequence
  std::vector<CMatch> matches;  // kEvent: one; kSequence: the steps
  Aggregate aggregate = Aggregate::kCount;
  int aggregate_slot = -1;
  NumberTest test;
  TimeWindow within;
  int64_t span_us = -1;
  // kSegment
  std::string segment;
};

struct CMatch {
  enum class Kind { kAll, kCustomAny, kOne } kind = Kind::kAll;
  uint32_t table = 0;
  std::vector<CNode> where;
  std::vector<std::string> paths;    // slots of where-conditions and the aggregate
  std::vector<const Column*> bound;  // kOne: the columns of `table`, per slot
};

class PreparedRule {
 public:
  CNode root;
};

// ---- evaluation ---------------------------------------------------------------------------------------------------

class Evaluator {
 public:
  // `parallel`: scans and per-candidate loops of large inputs run on two threads (Evaluate over a large index).
  Evaluator(const SegmentIndex& index, int64_t now, const MembershipLookup& lookup, bool parallel = false)
      : ix_(index), now_(now), lookup_(lookup), parallel_(parallel) {}

  // Runs run(part, begin, end) over [0, n): in two parts on two threads when this evaluation is parallel and n is
  // at least `parallel_from`, else as one part.
  template <typename Run>
  void InParts(size_t n, size_t parallel_from, const Run& run) const {
    internal::RunInTwoParts(n, parallel_ ? parallel_from : std::numeric_limits<size_t>::max(), run);
  }

  // What one part of a split scan fills, on a cache line of its own: the two parts' vectors side by side would
  // share one, and every push_back would move it between the cores.
  template <typename T>
  struct alignas(64) PerPart {
    T value;
  };

  // The ordinals of `candidates` for which keep(ordinal) holds, in order (two threads for many candidates).
  template <typename Keep>
  Bitmap Filter(const Bitmap& candidates, const Keep& keep) const {
    std::vector<uint32_t> all(candidates.cardinality());
    candidates.toUint32Array(all.data());
    PerPart<std::vector<uint32_t>> kept[2];
    InParts(all.size(), kParallelCandidates, [&](int part, size_t begin, size_t end) {
      std::vector<uint32_t>& mine = kept[part].value;
      for (size_t i = begin; i < end; ++i) {
        if (keep(all[i])) mine.push_back(all[i]);
      }
    });
    Bitmap out(kept[0].value.size(), kept[0].value.data());
    out.addMany(kept[1].value.size(), kept[1].value.data());
    return out;
  }

  // One cell against a field condition.
  bool MatchCell(const CNode& f, Cell c, const Column* col) const {
    if (c.tag == Tag::kMissing || c.tag == Tag::kNull) return f.absent_matches;
    switch (f.op) {
      case RuleOp::kExists:
        return true;
      case RuleOp::kNotExists:
        return false;
      case RuleOp::kEq:
        return Equal(c, col, f.operands[0]);
      case RuleOp::kNe:
        return !Equal(c, col, f.operands[0]);
      case RuleOp::kGt:
      case RuleOp::kLt:
      case RuleOp::kGe:
      case RuleOp::kLe:
        return Ordered(c, f.operands[0], f.op);
      case RuleOp::kBetween:
        return Ordered(c, f.operands[0], RuleOp::kGe) && Ordered(c, f.operands[1], RuleOp::kLe);
      case RuleOp::kContains: {
        const Operand& v = f.operands[0];
        if (IsText(c)) {
          if (v.cell.tag != Tag::kString && v.cell.tag != Tag::kTime) return false;
          std::string buf;
          return Text(c, ix_.pool_, &buf).find(v.text) != std::string_view::npos;
        }
        if (c.tag != Tag::kArray) return false;
        for (Cell e : col->ArrayOf(c)) {
          if (EqualCells(e, v.cell)) return true;
        }
        return false;
      }
      case RuleOp::kIn:
        return In(c, col, f);
      case RuleOp::kNotIn:
        return !In(c, col, f);
      case RuleOp::kStartsWith: {
        std::string buf;
        if (IsText(c)) return Text(c, ix_.pool_, &buf).starts_with(f.operands[0].text);
        if (c.tag != Tag::kArray) return false;
        for (Cell e : col->ArrayOf(c)) {
          if (IsText(e) && Text(e, ix_.pool_, &buf).starts_with(f.operands[0].text)) return true;
        }
        return false;
      }
    }
    return false;
  }

  bool Equal(Cell c, const Column* col, const Operand& v) const {
    if (v.time) {
      int64_t t;
      return FieldTime(c, ix_.pool_, &t) && t == v.time->Resolve(now_);
    }
    if (v.is_array) {
      if (c.tag != Tag::kArray) return false;
      std::span<const Cell> items = col->ArrayOf(c);
      if (items.size() != v.array.size()) return false;
      for (size_t i = 0; i < items.size(); ++i) {
        if (!EqualCells(items[i], v.array[i])) return false;
      }
      return true;
    }
    return EqualCells(c, v.cell);
  }

  bool Ordered(Cell c, const Operand& v, RuleOp op) const {
    if (v.time) {
      int64_t t;
      if (!FieldTime(c, ix_.pool_, &t)) return false;
      int64_t bound = v.time->Resolve(now_);
      return Holds(op, t < bound ? -1 : (t > bound ? 1 : 0));
    }
    if (IsNum(v.cell)) return IsNum(c) && Holds(op, CmpNum(c, v.cell));
    if (!IsText(c)) return false;
    std::string buf;
    return Holds(op, Text(c, ix_.pool_, &buf).compare(v.text));
  }

  bool In(Cell c, const Column* col, const CNode& f) const {
    if (c.tag == Tag::kArray) {
      for (Cell e : col->ArrayOf(c)) {
        for (const Operand& v : f.operands) {
          if (EqualCells(e, v.cell)) return true;
        }
      }
      return false;
    }
    for (const Operand& v : f.operands) {
      if (EqualCells(c, v.cell)) return true;
    }
    return false;
  }

  // ---- one profile ----

  bool One(const CNode& n, uint32_t ord) const {
    switch (n.kind) {
      case RuleNode::Kind::kAnd:
        for (const CNode& c : n.children) {
          if (!One(c, ord)) return false;
        }
        return true;
      case RuleNode::Kind::kOr:
        for (const CNode& c : n.children) {
          if (One(c, ord)) return true;
        }
        return false;
      case RuleNode::Kind::kNot:
        return !One(n.children[0], ord);
      case RuleNode::Kind::kField:
        return MatchCell(n, n.column->Get(ord), n.column);
      case RuleNode::Kind::kEvent:
        return EventOne(n, ord);
      case RuleNode::Kind::kSequence:
        return SequenceOne(n, ord);
      case RuleNode::Kind::kSegment: {
        const Bitmap* members = lookup_ ? lookup_(n.segment) : nullptr;
        return members != nullptr && members->contains(ord);
      }
    }
    return false;
  }

  bool Accepts(const CMatch& m, uint32_t table) const {
    switch (m.kind) {
      case CMatch::Kind::kAll:
        return true;
      case CMatch::Kind::kCustomAny:
        return ix_.tables_[table]->type == "custom";
      case CMatch::Kind::kOne:
        return table == m.table;
    }
    return false;
  }

  // The columns of `m`'s slots in table `t`.
  const Column* const* Bind(const CMatch& m, uint32_t t, std::vector<const Column*>* scratch) const {
    if (m.kind == CMatch::Kind::kOne) return m.bound.data();
    scratch->clear();
    for (const std::string& p : m.paths) scratch->push_back(ix_.tables_[t]->props.Find(p));
    return scratch->data();
  }

  bool Where(const CNode& n, const Column* const* cols, uint32_t row) const {
    switch (n.kind) {
      case RuleNode::Kind::kAnd:
        for (const CNode& c : n.children) {
          if (!Where(c, cols, row)) return false;
        }
        return true;
      case RuleNode::Kind::kOr:
        for (const CNode& c : n.children) {
          if (Where(c, cols, row)) return true;
        }
        return false;
      case RuleNode::Kind::kNot:
        return !Where(n.children[0], cols, row);
      default: {
        const Column* col = cols[n.slot];
        return MatchCell(n, col ? col->Get(row) : Cell{}, col);
      }
    }
  }

  bool WhereAll(const CMatch& m, const Column* const* cols, uint32_t row) const {
    for (const CNode& w : m.where) {
      if (!Where(w, cols, row)) return false;
    }
    return true;
  }

  // Aggregate state of one profile.
  struct Acc {
    uint32_t count = 0;   // matching events
    uint32_t values = 0;  // numeric values seen
    int64_t sum = 0;      // micro-units
    double min = 0, max = 0;
    void Add(double v) {
      sum += RoundMicros(v);
      min = values == 0 ? v : std::min(min, v);
      max = values == 0 ? v : std::max(max, v);
      ++values;
    }
  };

  static bool Decide(const CNode& n, const Acc& a) {
    switch (n.aggregate) {
      case Aggregate::kCount:
        return n.test.Matches(a.count);
      case Aggregate::kSum:
        return n.test.Matches(static_cast<double>(a.sum) / 1e6);
      case Aggregate::kAvg:
        return a.values > 0 && n.test.Matches(static_cast<double>(a.sum) / a.values / 1e6);
      case Aggregate::kMin:
        return a.values > 0 && n.test.Matches(a.min);
      case Aggregate::kMax:
        return a.values > 0 && n.test.Matches(a.max);
    }
    return false;
  }

  template <typename F>
  void ForEachMatching(const CMatch& m, const TimeWindow& within, uint32_t ord, F&& f) const {
    std::span<const EventRef> refs = ix_.EventsOf(ord);
    int64_t lo, hi;
    Resolve(within, now_, &lo, &hi);
    auto it = std::lower_bound(refs.begin(), refs.end(), lo, [](const EventRef& r, int64_t t) { return r.time < t; });
    std::vector<const Column*> scratch;
    for (; it != refs.end() && it->time <= hi; ++it) {
      if (!Accepts(m, it->table)) continue;
      const Column* const* cols = Bind(m, it->table, &scratch);
      if (WhereAll(m, cols, it->row)) f(*it, cols);
    }
  }

  // The time of the profile's first event matching `m` at or after `from`. Cost: a binary search, then the events
  // from there to the first match.
  std::optional<int64_t> FirstMatching(const CMatch& m, uint32_t ord, int64_t from) const {
    std::span<const EventRef> refs = ix_.EventsOf(ord);
    auto it = std::lower_bound(refs.begin(), refs.end(), from, [](const EventRef& r, int64_t t) { return r.time < t; });
    std::vector<const Column*> scratch;
    for (; it != refs.end(); ++it) {
      if (!Accepts(m, it->table)) continue;
      if (WhereAll(m, Bind(m, it->table, &scratch), it->row)) return it->time;
    }
    return std::nullopt;
  }

  bool EventOne(const CNode& n, uint32_t ord) const {
    Acc acc;
    const CMatch& m = n.matches[0];
    ForEachMatching(m, n.within, ord, [&](const EventRef& r, const Column* const* cols) {
      ++acc.count;
      if (n.aggregate_slot >= 0) {
        const Column* col = cols[n.aggregate_slot];
        Cell c = col ? col->Get(r.row) : Cell{};
        if (IsNum(c)) acc.Add(Num(c));
      }
    });
    return Decide(n, acc);
  }

  bool SequenceOne(const CNode& n, uint32_t ord) const {
    std::vector<std::vector<int64_t>> times(n.matches.size());
    for (size_t i = 0; i < n.matches.size(); ++i) {
      ForEachMatching(n.matches[i], n.within, ord,
                      [&](const EventRef& r, const Column* const*) { times[i].push_back(r.time); });
      if (times[i].empty()) return false;
    }
    for (int64_t start : times[0]) {
      int64_t t = start;
      for (size_t i = 1; i < times.size(); ++i) {
        auto next = std::upper_bound(times[i].begin(), times[i].end(), t);
        if (next == times[i].end()) return false;  // later starts cannot do better
        t = *next;
      }
      if (n.span_us < 0 || t - start <= n.span_us) return true;
    }
    return false;
  }

  // ---- every profile ----

  Bitmap All(const CNode& n) const {
    switch (n.kind) {
      case RuleNode::Kind::kAnd:
        return AllOfAnd(n);
      case RuleNode::Kind::kOr: {
        Bitmap acc;
        for (const CNode& c : n.children) acc |= All(c);
        return acc;
      }
      case RuleNode::Kind::kNot:
        return ix_.universe_ - All(n.children[0]);
      case RuleNode::Kind::kField:
        return FieldAll(n);
      case RuleNode::Kind::kEvent:
        return EventAll(n);
      case RuleNode::Kind::kSequence:
        return Filter(StepOwners(n.matches[0], n.within), [&](uint32_t ord) { return SequenceOne(n, ord); });
      case RuleNode::Kind::kSegment: {
        const Bitmap* members = lookup_ ? lookup_(n.segment) : nullptr;
        return members ? (*members & ix_.universe_) : Bitmap();
      }
    }
    return Bitmap();
  }

  // AND: the child cheapest to evaluate over every profile first (segments, then field conditions, then events);
  // each later child either over every profile, intersected, or only for the candidates left (One per candidate),
  // whichever costs less. A selective first condition thus spares the full scans of the others.
  Bitmap AllOfAnd(const CNode& n) const {
    if (n.children.empty()) return ix_.universe_;
    std::vector<std::pair<const CNode*, Cost>> order;
    for (const CNode& c : n.children) order.emplace_back(&c, CostOf(c));
    std::stable_sort(order.begin(), order.end(),
                     [](const auto& a, const auto& b) { return a.second.all < b.second.all; });
    Bitmap acc = All(*order[0].first);
    for (size_t i = 1; i < order.size() && !acc.isEmpty(); ++i) {
      const auto& [c, cost] = order[i];
      if (static_cast<double>(acc.cardinality()) * cost.one < cost.all) {
        acc = Filter(acc, [&](uint32_t ord) { return One(*c, ord); });
      } else {
        acc &= All(*c);
      }
    }
    return acc;
  }

  // Rough costs, in cell reads, of evaluating a node for every profile (All) and for one profile (One).
  struct Cost {
    double all = 0, one = 0;
  };
  Cost CostOf(const CNode& n) const {
    const double profiles = static_cast<double>(ix_.by_profile_.size());
    switch (n.kind) {
      case RuleNode::Kind::kAnd:
      case RuleNode::Kind::kOr:
      case RuleNode::Kind::kNot: {
        Cost sum;
        for (const CNode& c : n.children) {
          const Cost child = CostOf(c);
          sum.all += child.all;
          sum.one += child.one;
        }
        return sum;
      }
      case RuleNode::Kind::kField:
        // Equality and membership tests first: they tend to be the selective ones.
        return {profiles * (n.op == RuleOp::kEq || n.op == RuleOp::kIn ? 1.0 : 1.1), 4};
      case RuleNode::Kind::kEvent:
      case RuleNode::Kind::kSequence: {
        // All: the rows of the blocks a scan reads (the zone map's answer for the window). One: a binary search in
        // the profile's events, then its events in the window (all types), per step; cache misses, as measured.
        int64_t lo, hi;
        Resolve(n.within, now_, &lo, &hi);
        double rows = 0;
        for (const CMatch& m : n.matches) {
          for (uint32_t t = 0; t < ix_.tables_.size(); ++t) {
            if (!Accepts(m, t)) continue;
            const EventTable& table = *ix_.tables_[t];
            size_t blocks = 0;
            for (size_t b = 0; b < table.block_min.size(); ++b) {
              blocks += table.block_max[b] >= lo && table.block_min[b] <= hi;
            }
            rows += static_cast<double>(blocks * EventTable::kBlockRows) * (1 + m.where.size());
          }
        }
        const double per_profile =
            static_cast<double>(ix_.event_count_) / std::max<double>(1, ix_.universe_.cardinality());
        return {profiles * 2 + rows, static_cast<double>(n.matches.size()) * (150 + 4 * per_profile)};
      }
      case RuleNode::Kind::kSegment:
        return {0, 2};
    }
    return {profiles, 4};
  }

  // Rows of present cells whose result differs from an absent cell's, then combined with the universe.
  // The common cases answered inline, cell by cell, with MatchCell's results: numbers against a number, and strings
  // and booleans tested for (in)equality. Anything else goes to MatchCell.
  struct FastPath {
    bool numeric = false;   // > < >= <= between against numbers: number cells
    bool identity = false;  // = != in not_in against strings and booleans: string and boolean cells
    bool negate = false;    // != and not_in
  };
  static FastPath FastPathOf(const CNode& f) {
    FastPath fast;
    auto plain = [](const Operand& v) { return !v.time && !v.is_array; };
    switch (f.op) {
      case RuleOp::kGt:
      case RuleOp::kLt:
      case RuleOp::kGe:
      case RuleOp::kLe:
      case RuleOp::kBetween:
        fast.numeric = std::all_of(f.operands.begin(), f.operands.end(),
                                   [&](const Operand& v) { return plain(v) && IsNum(v.cell); });
        break;
      case RuleOp::kEq:
      case RuleOp::kNe:
      case RuleOp::kIn:
      case RuleOp::kNotIn:
        fast.identity = !f.operands.empty() && std::all_of(f.operands.begin(), f.operands.end(), [&](const Operand& v) {
          return plain(v) && (v.cell.tag == Tag::kString || v.cell.tag == Tag::kTrue || v.cell.tag == Tag::kFalse);
        });
        fast.negate = f.op == RuleOp::kNe || f.op == RuleOp::kNotIn;
        break;
      default:
        break;
    }
    return fast;
  }

  Bitmap FieldAll(const CNode& f) const {
    const Column* col = f.column;
    const FastPath fast = FastPathOf(f);
    PerPart<std::vector<uint32_t>> parts[2];  // pages in two halves, on two threads when large
    InParts(col->page_count(), kParallelPages, [&](int part, size_t page_begin, size_t page_end) {
      ScanPages(f, fast, page_begin, page_end, &parts[part].value);
    });
    Bitmap differing(parts[0].value.size(), parts[0].value.data());
    differing.addMany(parts[1].value.size(), parts[1].value.data());
    return f.absent_matches ? ix_.universe_ - differing : differing & ix_.universe_;
  }

  // The rows of pages [page_begin, page_end) of a field condition's column whose cells differ from an absent one.
  void ScanPages(const CNode& f, const FastPath& fast, size_t page_begin, size_t page_end,
                 std::vector<uint32_t>* rows) const {
    const Column* col = f.column;
    for (size_t p = page_begin; p < page_end; ++p) {
      const uint8_t* tags = col->page_tags(p);
      if (tags == nullptr) continue;
      const uint64_t* bits = col->page_bits(p);
      uint32_t base = static_cast<uint32_t>(p << Column::kPageBits);
      for (uint32_t i = 0; i < Column::kPageSize; ++i) {
        const Tag tag = static_cast<Tag>(tags[i]);
        if (tag == Tag::kMissing) continue;
        bool match;
        if (fast.numeric && (tag == Tag::kInt || tag == Tag::kDouble)) {
          const Cell c{tag, bits[i]};
          match = f.op == RuleOp::kBetween ? CmpNum(c, f.operands[0].cell) >= 0 && CmpNum(c, f.operands[1].cell) <= 0
                                           : Holds(f.op, CmpNum(c, f.operands[0].cell));
        } else if (fast.identity && (tag == Tag::kString || tag == Tag::kTrue || tag == Tag::kFalse)) {
          match = false;
          for (const Operand& v : f.operands) {
            if (v.cell.tag == tag && (tag != Tag::kString || v.cell.bits == bits[i])) match = true;
          }
          match = match != fast.negate;
        } else {
          match = MatchCell(f, Cell{tag, bits[i]}, col);
        }
        if (match != f.absent_matches) rows->push_back(base + i);
      }
    }
  }

  // Profiles with at least one event matching a step inside the window.
  Bitmap StepOwners(const CMatch& m, const TimeWindow& within) const {
    PerPart<std::vector<uint32_t>> out[2];
    ScanTablesInParts(m, within,
                      [&](int part, uint32_t ord, uint32_t, const Column* const*) { out[part].value.push_back(ord); });
    Bitmap owners(out[0].value.size(), out[0].value.data());
    owners.addMany(out[1].value.size(), out[1].value.data());
    return owners;
  }

  // As ScanTables, the blocks a window reads split in two parts scanned on two threads (when this evaluation is
  // parallel and they are many): f(part, ordinal, row, columns), each part's calls on one thread.
  template <typename F>
  void ScanTablesInParts(const CMatch& m, const TimeWindow& within, const F& f) const {
    int64_t lo, hi;
    Resolve(within, now_, &lo, &hi);
    struct Span {
      uint32_t table;
      uint32_t block;
    };
    std::vector<Span> spans;  // the blocks to read, in table and row order
    std::vector<std::vector<const Column*>> bound(ix_.tables_.size());
    for (uint32_t t = 0; t < ix_.tables_.size(); ++t) {
      if (!Accepts(m, t)) continue;
      const EventTable& table = *ix_.tables_[t];
      if (m.kind != CMatch::Kind::kOne) {
        for (const std::string& p : m.paths) bound[t].push_back(table.props.Find(p));
      }
      for (size_t block = 0; block < table.block_min.size(); ++block) {
        if (table.block_max[block] < lo || table.block_min[block] > hi) continue;
        spans.push_back({t, static_cast<uint32_t>(block)});
      }
    }
    const bool no_where = m.where.empty();
    InParts(spans.size(), kParallelBlocks, [&](int part, size_t begin, size_t end) {
      for (size_t s = begin; s < end; ++s) {
        const EventTable& table = *ix_.tables_[spans[s].table];
        const Column* const* cols = m.kind == CMatch::Kind::kOne ? m.bound.data() : bound[spans[s].table].data();
        const uint32_t* ords = table.ordinal.data();
        const int64_t* times = table.time.data();
        const uint32_t first = spans[s].block << EventTable::kBlockBits;
        const uint32_t stop =
            static_cast<uint32_t>(std::min<size_t>(table.ordinal.size(), first + EventTable::kBlockRows));
        for (uint32_t row = first; row < stop; ++row) {
          if (ords[row] == SegmentIndex::kRemoved || times[row] < lo || times[row] > hi) continue;
          if (no_where || WhereAll(m, cols, row)) f(part, ords[row], row, cols);
        }
      }
    });
  }

  template <typename F>
  void ScanTables(const CMatch& m, const TimeWindow& within, F&& f) const {
    int64_t lo, hi;
    Resolve(within, now_, &lo, &hi);
    std::vector<const Column*> scratch;
    for (uint32_t t = 0; t < ix_.tables_.size(); ++t) {
      if (!Accepts(m, t)) continue;
      const EventTable& table = *ix_.tables_[t];
      const Column* const* cols = Bind(m, t, &scratch);
      const uint32_t* ords = table.ordinal.data();
      const int64_t* times = table.time.data();
      const size_t rows = table.ordinal.size();
      const bool no_where = m.where.empty();
      for (size_t block = 0; block < table.block_min.size(); ++block) {
        if (table.block_max[block] < lo || table.block_min[block] > hi) continue;
        const uint32_t first = static_cast<uint32_t>(block << EventTable::kBlockBits);
        const uint32_t end = static_cast<uint32_t>(std::min<size_t>(rows, first + EventTable::kBlockRows));
        for (uint32_t row = first; row < end; ++row) {
          if (ords[row] == SegmentIndex::kRemoved || times[row] < lo || times[row] > hi) continue;
          if (no_where || WhereAll(m, cols, row)) f(ords[row], row, cols);
        }
      }
    }
  }

  // Aggregates per profile in one scan of the type's rows, then the profiles whose result differs from that of a
  // profile without matching events.
  Bitmap EventAll(const CNode& n) const {
    size_t size = ix_.by_profile_.size();
    bool zero_matches = Decide(n, Acc{});
    std::vector<uint32_t> rows;
    if (n.aggregate == Aggregate::kCount) {
      PerPart<std::vector<uint32_t>> part_counts[2];  // the second part's made when it runs
      part_counts[0].value.resize(size);
      ScanTablesInParts(n.matches[0], n.within, [&](int part, uint32_t ord, uint32_t, const Column* const*) {
        std::vector<uint32_t>& mine = part_counts[part].value;
        if (mine.empty()) mine.resize(size);
        ++mine[ord];
      });
      std::vector<uint32_t>& counts = part_counts[0].value;
      const std::vector<uint32_t>& second = part_counts[1].value;
      for (uint32_t ord = 0; ord < size && !second.empty(); ++ord) counts[ord] += second[ord];
      for (uint32_t ord = 0; ord < size; ++ord) {
        if (counts[ord] != 0 && n.test.Matches(counts[ord]) != zero_matches) rows.push_back(ord);
      }
    } else {
      std::vector<Acc> acc(size);
      ScanTables(n.matches[0], n.within, [&](uint32_t ord, uint32_t row, const Column* const* cols) {
        Acc& a = acc[ord];
        ++a.count;
        const Column* col = cols[n.aggregate_slot];
        Cell c = col ? col->Get(row) : Cell{};
        if (IsNum(c)) a.Add(Num(c));
      });
      for (uint32_t ord = 0; ord < size; ++ord) {
        if (acc[ord].count != 0 && Decide(n, acc[ord]) != zero_matches) rows.push_back(ord);
      }
    }
    Bitmap differing(rows.size(), rows.data());
    return zero_matches ? ix_.universe_ - differing : differing;
  }

  // ---- time ----

  void Next(const CNode& n, uint32_t ord, int64_t* best) const {
    auto consider = [&](int64_t t) {
      if (t > now_ && t < *best) *best = t;
    };
    switch (n.kind) {
      case RuleNode::Kind::kAnd:
      case RuleNode::Kind::kOr:
      case RuleNode::Kind::kNot:
        for (const CNode& c : n.children) Next(c, ord, best);
        return;
      case RuleNode::Kind::kField: {
        int64_t ft;
        if (!FieldTime(n.column->Get(ord), ix_.pool_, &ft)) return;
        // With x = ft - offset: ft >= now + offset holds while now <= x (so it flips at x + 1), ft > now + offset
        // while now < x (flips at x); <= and < mirror them. between is >= low and <= high.
        for (size_t i = 0; i < n.operands.size(); ++i) {
          const Operand& v = n.operands[i];
          if (!v.time || !v.time->relative) continue;
          int64_t x = ft - v.time->micros;
          RuleOp op = n.op == RuleOp::kBetween ? (i == 0 ? RuleOp::kGe : RuleOp::kLe) : n.op;
          consider(op == RuleOp::kGe || op == RuleOp::kLt ? x + 1 : x);
        }
        return;
      }
      case RuleNode::Kind::kEvent:
      case RuleNode::Kind::kSequence: {
        if (!n.within.relative()) return;
        // An event at t is inside while now + from <= t <= now + to (relative bounds; absolute ones never move).
        // As now grows it enters at t - to and leaves at t - from + 1; the earliest of those after now comes from
        // the first matching event at or after now + from (leaving) and the first after now + to (entering).
        const std::optional<TimePoint>& from = n.within.from;
        const std::optional<TimePoint>& to = n.within.to;
        for (const CMatch& m : n.matches) {
          if (from && from->relative) {
            std::optional<int64_t> t = FirstMatching(m, ord, now_ + from->micros);
            if (t && !(to && !to->relative && *t > to->micros)) consider(*t - from->micros + 1);
          }
          if (to && to->relative) {
            int64_t start = now_ + to->micros + 1;
            if (from && !from->relative) start = std::max(start, from->micros);
            std::optional<int64_t> t = FirstMatching(m, ord, start);
            if (t) consider(*t - to->micros);
          }
        }
        return;
      }
      case RuleNode::Kind::kSegment:
        return;
    }
  }

 private:
  // Sizes from which a parallel evaluation splits its work: column pages (4,096 cells each), blocks of event rows
  // (4,096 rows each), candidates tested one by one. Below them one thread is cheaper than starting another.
  static constexpr size_t kParallelPages = 16;
  static constexpr size_t kParallelBlocks = 16;
  static constexpr size_t kParallelCandidates = 4096;

  const SegmentIndex& ix_;
  int64_t now_;
  const MembershipLookup& lookup_;
  bool parallel_ = false;
};

// ---- the index ----------------------------------------------------------------------------------------------------

SegmentIndex::SegmentIndex() {
  for (std::string_view t : kStandardTypes) TableFor(t, "", true);
}

SegmentIndex::~SegmentIndex() = default;

uint32_t SegmentIndex::TableFor(std::string_view type, std::string_view name, bool create) {
  std::string key(type);
  if (type == "custom") key = "custom:" + std::string(name);
  auto it = table_ids_.find(key);
  if (it != table_ids_.end()) return it->second;
  if (!create) return kRemoved;
  auto table = std::make_unique<EventTable>();
  table->type = std::string(type);
  if (type == "custom") table->name = std::string(name);
  uint32_t id = static_cast<uint32_t>(tables_.size());
  tables_.push_back(std::move(table));
  table_ids_.emplace(std::move(key), id);
  return id;
}

Status SegmentIndex::UpsertProfile(uint32_t ordinal, const Json& doc) {
  if (!doc.is_object()) return Status::InvalidArgument("a profile document is an object");
  if (ordinal > kMaxOrdinal) return Status::InvalidArgument("ordinal out of range");
  if (by_profile_.size() <= ordinal) by_profile_.resize(static_cast<size_t>(ordinal) + 1);
  profiles_.Put(ordinal, doc, &pool_);
  universe_.add(ordinal);
  return Status::OK();
}

Status SegmentIndex::UpsertField(uint32_t ordinal, std::string_view path, const Json& value, bool* changed) {
  if (!universe_.contains(ordinal)) return Status::NotFound("no such profile in the index");
  if (changed != nullptr) *changed = false;
  // Unchanged scalars (most maintained traits after most events) are left alone: a scalar cell has nothing below
  // it in its row, so there is nothing else to clear.
  if (!value.is_array() && !value.is_object()) {
    if (const Column* col = profiles_.Find(path); col != nullptr) {
      const Cell was = col->Get(ordinal);
      if (was.tag != Tag::kMissing && was.tag != Tag::kArray && was.tag != Tag::kObject) {
        const Cell c = EncodeScalar(value, &pool_);
        if (c.tag == was.tag && c.bits == was.bits) return Status::OK();
      }
    }
  }
  if (changed != nullptr) *changed = true;
  profiles_.PutPath(ordinal, path, value, &pool_);
  return Status::OK();
}

void SegmentIndex::RemoveProfile(uint32_t ordinal) {
  if (!universe_.contains(ordinal)) return;
  profiles_.Clear(ordinal);
  std::vector<EventRef>& refs = by_profile_[ordinal];
  for (const EventRef& r : refs) {
    EventTable& t = *tables_[r.table];
    t.ordinal[r.row] = kRemoved;
    t.props.Clear(r.row);
  }
  event_count_ -= refs.size();
  std::vector<EventRef>().swap(refs);
  universe_.remove(ordinal);
}

Status SegmentIndex::AddEvent(uint32_t ordinal, std::string_view type, std::string_view name, int64_t time_us,
                              const Json& event) {
  if (ordinal > kMaxOrdinal) return Status::InvalidArgument("ordinal out of range");
  if (!IsStandardEventType(type)) return Status::InvalidArgument("unknown event type", "type");
  if (type == "custom" && name.empty()) return Status::InvalidArgument("a custom event needs a name", "name");
  uint32_t id = TableFor(type, type == "custom" ? name : "", true);
  EventTable& t = *tables_[id];
  if (t.ordinal.size() >= kRemoved) return Status::ResourceExhausted("too many events of one type");
  uint32_t row = static_cast<uint32_t>(t.ordinal.size());
  t.ordinal.push_back(ordinal);
  t.time.push_back(time_us);
  if ((row & (EventTable::kBlockRows - 1)) == 0) {
    t.block_min.push_back(time_us);
    t.block_max.push_back(time_us);
  } else {
    t.block_min.back() = std::min(t.block_min.back(), time_us);
    t.block_max.back() = std::max(t.block_max.back(), time_us);
  }
  if (event.is_object()) t.props.Put(row, event, &pool_, KeepEventKey, /*fresh=*/true);
  const Json* session = event.is_object() ? event.Find("sessionId") : nullptr;
  t.session.push_back(session != nullptr && session->is_string() ? SessionHash(session->as_string()) : 0);
  if (by_profile_.size() <= ordinal) by_profile_.resize(static_cast<size_t>(ordinal) + 1);
  std::vector<EventRef>& refs = by_profile_[ordinal];
  EventRef ref{time_us, id, row};
  if (refs.empty() || refs.back().time <= time_us) {
    refs.push_back(ref);
  } else {
    auto at =
        std::upper_bound(refs.begin(), refs.end(), time_us, [](int64_t t, const EventRef& r) { return t < r.time; });
    refs.insert(at, ref);
  }
  universe_.add(ordinal);
  ++event_count_;
  return Status::OK();
}

uint32_t SegmentIndex::FindTable(std::string_view event) const {
  auto it = table_ids_.find(IsStandardEventType(event) ? std::string(event) : "custom:" + std::string(event));
  return it == table_ids_.end() ? kRemoved : it->second;
}

std::span<const EventRef> SegmentIndex::EventsOf(uint32_t ordinal) const {
  if (ordinal >= by_profile_.size()) return {};
  return by_profile_[ordinal];
}

namespace {

class Binder {
 public:
  // `read_only`: binds without changing the index (no string interned, no column or table created): an unknown
  // string equals nothing, an unknown column is absent, an unknown event table is kRemoved (matches no event).
  Binder(StringPool* pool, DocTable* profiles, std::function<uint32_t(std::string_view)> custom_table,
         const std::vector<std::unique_ptr<EventTable>>* tables, bool read_only = false)
      : pool_(pool),
        profiles_(profiles),
        custom_table_(std::move(custom_table)),
        tables_(tables),
        read_only_(read_only) {}

  CMatch MatchOf(const EventMatch& e) { return Match(e); }

  CNode Node(const RuleNode& r, CMatch* where_of) {
    CNode n;
    n.kind = r.kind;
    for (const RuleNode& c : r.children) n.children.push_back(Node(c, where_of));
    switch (r.kind) {
      case RuleNode::Kind::kField:
        n.op = r.op;
        n.absent_matches = r.op == RuleOp::kNe || r.op == RuleOp::kNotIn || r.op == RuleOp::kNotExists;
        for (const RuleValue& v : r.values) n.operands.push_back(Bind(v));
        if (where_of) {
          n.slot = Slot(where_of, r.field);
        } else {
          n.column = profiles_->GetOrCreate(r.field);
        }
        break;
      case RuleNode::Kind::kEvent:
        n.matches.push_back(Match(r.events));
        n.aggregate = r.aggregate;
        if (r.aggregate != Aggregate::kCount) n.aggregate_slot = Slot(&n.matches[0], r.aggregate_field);
        n.test = r.test;
        n.within = r.within;
        break;
      case RuleNode::Kind::kSequence:
        for (const EventMatch& s : r.steps) n.matches.push_back(Match(s));
        n.within = r.within;
        n.span_us = r.span_us;
        break;
      case RuleNode::Kind::kSegment:
        n.segment = r.segment;
        break;
      default:
        break;
    }
    return n;
  }

 private:
  Operand Bind(const RuleValue& v) {
    Operand o;
    o.time = v.time;
    if (v.json.is_array()) {
      o.is_array = true;
      for (const Json& e : v.json.items()) {
        o.array.push_back(read_only_ ? EncodeScalarFound(e, *pool_) : EncodeScalar(e, pool_));
      }
    } else {
      o.cell = read_only_ ? EncodeScalarFound(v.json, *pool_) : EncodeScalar(v.json, pool_);
    }
    if (v.json.is_string()) o.text = v.json.as_string();
    return o;
  }

  int Slot(CMatch* m, const std::string& path) {
    for (size_t i = 0; i < m->paths.size(); ++i) {
      if (m->paths[i] == path) return static_cast<int>(i);
    }
    m->paths.push_back(path);
    if (m->kind == CMatch::Kind::kOne) {
      if (m->table >= tables_->size()) {
        m->bound.push_back(nullptr);  // a table that does not exist (read_only)
      } else {
        DocTable& props = (*tables_)[m->table]->props;
        m->bound.push_back(read_only_ ? props.Find(path) : props.GetOrCreate(path));
      }
    }
    return static_cast<int>(m->paths.size() - 1);
  }

  CMatch Match(const EventMatch& e) {
    CMatch m;
    if (e.event == "*") {
      m.kind = CMatch::Kind::kAll;
    } else if (e.event == "custom") {
      m.kind = CMatch::Kind::kCustomAny;
    } else {
      m.kind = CMatch::Kind::kOne;
      m.table = custom_table_(e.event);
    }
    for (const RuleNode& w : e.where) m.where.push_back(Node(w, &m));
    return m;
  }

  StringPool* pool_;
  DocTable* profiles_;
  std::function<uint32_t(std::string_view)> custom_table_;
  const std::vector<std::unique_ptr<EventTable>>* tables_;
  bool read_only_ = false;
};

}  // namespace

std::shared_ptr<const PreparedRule> SegmentIndex::Prepare(const SegmentRule& rule) {
  Binder binder(
      &pool_, &profiles_,
      [this](std::string_view event) {
        return IsStandardEventType(event) ? TableFor(event, "", true) : TableFor("custom", event, true);
      },
      &tables_);
  auto prepared = std::make_shared<PreparedRule>();
  prepared->root = binder.Node(rule.root(), nullptr);
  return prepared;
}

class EventFilter {
 public:
  CMatch match;
};

std::shared_ptr<const EventFilter> SegmentIndex::PrepareEvents(const EventMatch& match) const {
  // Read-only: a request naming unknown events or values leaves the index as it was.
  Binder binder(
      const_cast<StringPool*>(&pool_), const_cast<DocTable*>(&profiles_),
      [this](std::string_view event) { return FindTable(event); }, &tables_, /*read_only=*/true);
  auto filter = std::make_shared<EventFilter>();
  filter->match = binder.MatchOf(match);
  return filter;
}

bool SegmentIndex::Matches(const EventFilter& filter, uint32_t table, uint32_t row) const {
  Evaluator ev(*this, 0, {});
  if (!ev.Accepts(filter.match, table)) return false;
  if (filter.match.where.empty()) return true;
  std::vector<const Column*> scratch;
  return ev.WhereAll(filter.match, ev.Bind(filter.match, table, &scratch), row);
}

Bitmap SegmentIndex::Evaluate(const PreparedRule& rule, int64_t now_us, const MembershipLookup& lookup) const {
  Bitmap out = Evaluator(*this, now_us, lookup, parallel_).All(rule.root);
  out.runOptimize();
  return out;
}

bool SegmentIndex::EvaluateOne(uint32_t ordinal, const PreparedRule& rule, int64_t now_us,
                               const MembershipLookup& lookup) const {
  if (!universe_.contains(ordinal)) return false;
  return Evaluator(*this, now_us, lookup).One(rule.root, ordinal);
}

std::optional<int64_t> SegmentIndex::NextChange(uint32_t ordinal, const PreparedRule& rule, int64_t now_us) const {
  if (!universe_.contains(ordinal)) return std::nullopt;
  int64_t best = kMaxTime;
  Evaluator(*this, now_us, {}).Next(rule.root, ordinal, &best);
  if (best == kMaxTime) return std::nullopt;
  return best;
}

size_t SegmentIndex::MemoryBytes() const {
  size_t bytes = pool_.MemoryBytes() + profiles_.MemoryBytes() + universe_.getSizeInBytes();
  for (const auto& t : tables_) {
    bytes += t->ordinal.capacity() * sizeof(uint32_t) + t->time.capacity() * sizeof(int64_t) + t->props.MemoryBytes() +
             (t->block_min.capacity() + t->block_max.capacity()) * sizeof(int64_t);
  }
  bytes += by_profile_.capacity() * sizeof(std::vector<EventRef>);
  for (const auto& refs : by_profile_) bytes += refs.capacity() * sizeof(EventRef);
  return bytes;
}

Overlap Compare(const Bitmap& a, const Bitmap& b) {
  Overlap o;
  o.a = a.cardinality();
  o.b = b.cardinality();
  o.intersection = a.and_cardinality(b);
  o.union_size = o.a + o.b - o.intersection;
  o.a_minus_b = o.a - o.intersection;
  o.b_minus_a = o.b - o.intersection;
  o.jaccard = o.union_size == 0 ? 0.0 : static_cast<double>(o.intersection) / static_cast<double>(o.union_size);
  return o;
}

std::vector<std::vector<Overlap>> PairwiseOverlap(const std::vector<const Bitmap*>& sets) {
  std::vector<std::vector<Overlap>> m(sets.size(), std::vector<Overlap>(sets.size()));
  for (size_t i = 0; i < sets.size(); ++i) {
    for (size_t j = i; j < sets.size(); ++j) {
      m[i][j] = Compare(*sets[i], *sets[j]);
      Overlap& t = m[j][i];
      t = m[i][j];
      std::swap(t.a, t.b);
      std::swap(t.a_minus_b, t.b_minus_a);
    }
  }
  return m;
}

}  // namespace cdp::segments
