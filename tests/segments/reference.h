// Copyright 2026 The libcdp Authors.
//
// A plain-scan reference evaluator of segment rules for the differential tests: written apart from src/segments,
// it reads the JSON documents and event lists directly (Json::FindPath, Json ==, ParseTimestamp), with none of the
// index's columns, cells, tables, bitmaps or binding. It follows the semantics written in cdp/segment_rule.h.

#ifndef CDP_TESTS_SEGMENTS_REFERENCE_H_
#define CDP_TESTS_SEGMENTS_REFERENCE_H_

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "cdp/json.h"
#include "cdp/query.h"
#include "cdp/segment_rule.h"

namespace cdp::testing {

struct RefEvent {
  std::string type;
  std::string name;
  int64_t time = 0;
  Json doc;
};

struct RefProfile {
  Json doc = Json::Object();
  std::vector<RefEvent> events;  // in arrival order (not sorted)
};

class ReferenceEvaluator {
 public:
  std::map<uint32_t, RefProfile> profiles;
  std::map<std::string, std::set<uint32_t>> segments;

  std::set<uint32_t> Members(const SegmentRule& rule, int64_t now) const {
    std::set<uint32_t> out;
    for (const auto& [ord, p] : profiles) {
      if (Node(rule.root(), ord, p, now)) out.insert(ord);
    }
    return out;
  }

  bool IsMember(uint32_t ord, const SegmentRule& rule, int64_t now) const {
    auto it = profiles.find(ord);
    return it != profiles.end() && Node(rule.root(), ord, it->second, now);
  }

 private:
  bool Node(const RuleNode& n, uint32_t ord, const RefProfile& p, int64_t now) const {
    switch (n.kind) {
      case RuleNode::Kind::kAnd:
        return std::all_of(n.children.begin(), n.children.end(),
                           [&](const RuleNode& c) { return Node(c, ord, p, now); });
      case RuleNode::Kind::kOr:
        return std::any_of(n.children.begin(), n.children.end(),
                           [&](const RuleNode& c) { return Node(c, ord, p, now); });
      case RuleNode::Kind::kNot:
        return !Node(n.children[0], ord, p, now);
      case RuleNode::Kind::kField:
        return Field(n, p.doc, now);
      case RuleNode::Kind::kEvent:
        return Event(n, p, now);
      case RuleNode::Kind::kSequence:
        return Sequence(n, p, now);
      case RuleNode::Kind::kSegment: {
        auto it = segments.find(n.segment);
        return it != segments.end() && it->second.count(ord) > 0;
      }
    }
    return false;
  }

  static bool TimeOf(const Json& f, int64_t* t) {
    if (!f.is_string()) return false;
    auto parsed = ParseTimestamp(f.as_string());
    if (!parsed.ok()) return false;
    *t = *parsed;
    return true;
  }

  static int Cmp(const Json& a, const Json& b) {  // both numbers or both strings
    if (a.is_number()) {
      if (a.is_int() && b.is_int()) return a.as_int() < b.as_int() ? -1 : a.as_int() > b.as_int() ? 1 : 0;
      return a.as_number() < b.as_number() ? -1 : a.as_number() > b.as_number() ? 1 : 0;
    }
    int c = a.as_string().compare(b.as_string());
    return c < 0 ? -1 : c > 0 ? 1 : 0;
  }

  static bool Test(RuleOp op, int c) {
    switch (op) {
      case RuleOp::kGt:
        return c > 0;
      case RuleOp::kLt:
        return c < 0;
      case RuleOp::kGe:
        return c >= 0;
      case RuleOp::kLe:
        return c <= 0;
      default:
        return false;
    }
  }

  static bool Ordered(const Json& f, const RuleValue& v, RuleOp op, int64_t now) {
    if (v.time) {
      int64_t t;
      if (!TimeOf(f, &t)) return false;
      int64_t b = v.time->Resolve(now);
      return Test(op, t < b ? -1 : t > b ? 1 : 0);
    }
    if (v.json.is_number() && f.is_number()) return Test(op, Cmp(f, v.json));
    if (v.json.is_string() && f.is_string()) return Test(op, Cmp(f, v.json));
    return false;
  }

  static bool Equal(const Json& f, const RuleValue& v, int64_t now) {
    if (v.time) {
      int64_t t;
      return TimeOf(f, &t) && t == v.time->Resolve(now);
    }
    return f == v.json;
  }

  static bool In(const Json& f, const RuleNode& n) {
    for (const RuleValue& v : n.values) {
      if (f.is_array()) {
        for (const Json& item : f.items()) {
          if (item == v.json) return true;
        }
      } else if (f == v.json) {
        return true;
      }
    }
    return false;
  }

 public:
  static bool Field(const RuleNode& n, const Json& doc, int64_t now) {
    const Json* f = doc.FindPath(n.field);
    if (f == nullptr || f->is_null()) {
      return n.op == RuleOp::kNe || n.op == RuleOp::kNotIn || n.op == RuleOp::kNotExists;
    }
    switch (n.op) {
      case RuleOp::kExists:
        return true;
      case RuleOp::kNotExists:
        return false;
      case RuleOp::kEq:
        return Equal(*f, n.values[0], now);
      case RuleOp::kNe:
        return !Equal(*f, n.values[0], now);
      case RuleOp::kGt:
      case RuleOp::kLt:
      case RuleOp::kGe:
      case RuleOp::kLe:
        return Ordered(*f, n.values[0], n.op, now);
      case RuleOp::kBetween:
        return Ordered(*f, n.values[0], RuleOp::kGe, now) && Ordered(*f, n.values[1], RuleOp::kLe, now);
      case RuleOp::kContains:
        if (f->is_string()) {
          return n.values[0].json.is_string() && f->as_string().find(n.values[0].json.as_string()) != std::string::npos;
        }
        if (f->is_array()) {
          for (const Json& item : f->items()) {
            if (item == n.values[0].json) return true;
          }
        }
        return false;
      case RuleOp::kIn:
        return In(*f, n);
      case RuleOp::kNotIn:
        return !In(*f, n);
      case RuleOp::kStartsWith: {
        const std::string& prefix = n.values[0].json.as_string();
        if (f->is_string()) return f->as_string().rfind(prefix, 0) == 0;
        if (f->is_array()) {
          for (const Json& item : f->items()) {
            if (item.is_string() && item.as_string().rfind(prefix, 0) == 0) return true;
          }
        }
        return false;
      }
    }
    return false;
  }

 private:
  static bool Kind(const EventMatch& m, const RefEvent& e) {
    if (m.event == "*") return true;
    if (m.event == "custom") return e.type == "custom";
    if (IsStandardEventType(m.event)) return e.type == m.event;
    return e.type == "custom" && e.name == m.event;
  }

  static bool Where(const RuleNode& n, const Json& doc) {
    switch (n.kind) {
      case RuleNode::Kind::kAnd:
        return std::all_of(n.children.begin(), n.children.end(), [&](const RuleNode& c) { return Where(c, doc); });
      case RuleNode::Kind::kOr:
        return std::any_of(n.children.begin(), n.children.end(), [&](const RuleNode& c) { return Where(c, doc); });
      case RuleNode::Kind::kNot:
        return !Where(n.children[0], doc);
      default:
        return Field(n, doc, /*now=*/0);  // where-conditions have no relative dates
    }
  }

  static bool Inside(const TimeWindow& w, int64_t t, int64_t now) {
    if (w.from && t < w.from->Resolve(now)) return false;
    if (w.to && t > w.to->Resolve(now)) return false;
    return true;
  }

  static std::vector<const RefEvent*> Matching(const EventMatch& m, const TimeWindow& w, const RefProfile& p,
                                               int64_t now) {
    std::vector<const RefEvent*> out;
    for (const RefEvent& e : p.events) {
      if (!Kind(m, e) || !Inside(w, e.time, now)) continue;
      bool ok = true;
      for (const RuleNode& c : m.where) ok = ok && Where(c, e.doc);
      if (ok) out.push_back(&e);
    }
    return out;
  }

  static bool Event(const RuleNode& n, const RefProfile& p, int64_t now) {
    std::vector<const RefEvent*> events = Matching(n.events, n.within, p, now);
    if (n.aggregate == Aggregate::kCount) return n.test.Matches(static_cast<double>(events.size()));
    int64_t sum = 0;
    size_t values = 0;
    double lo = 0, hi = 0;
    for (const RefEvent* e : events) {
      const Json* v = e->doc.FindPath(n.aggregate_field);
      if (v == nullptr || !v->is_number()) continue;
      double x = v->as_number();
      sum += std::llround(std::clamp(x, -1e12, 1e12) * 1e6);
      lo = values == 0 ? x : std::min(lo, x);
      hi = values == 0 ? x : std::max(hi, x);
      ++values;
    }
    switch (n.aggregate) {
      case Aggregate::kSum:
        return n.test.Matches(static_cast<double>(sum) / 1e6);
      case Aggregate::kAvg:
        return values > 0 && n.test.Matches(static_cast<double>(sum) / values / 1e6);
      case Aggregate::kMin:
        return values > 0 && n.test.Matches(lo);
      case Aggregate::kMax:
        return values > 0 && n.test.Matches(hi);
      default:
        return false;
    }
  }

  // Exhaustive search: some choice of one event per step with strictly increasing times within the span.
  static bool Chain(const std::vector<std::vector<const RefEvent*>>& steps, size_t i, int64_t first, int64_t prev,
                    int64_t span) {
    if (i == steps.size()) return span < 0 || prev - first <= span;
    for (const RefEvent* e : steps[i]) {
      if (i > 0 && e->time <= prev) continue;
      if (Chain(steps, i + 1, i == 0 ? e->time : first, e->time, span)) return true;
    }
    return false;
  }

  static bool Sequence(const RuleNode& n, const RefProfile& p, int64_t now) {
    std::vector<std::vector<const RefEvent*>> steps;
    for (const EventMatch& m : n.steps) steps.push_back(Matching(m, n.within, p, now));
    return Chain(steps, 0, 0, 0, n.span_us);
  }
};

}  // namespace cdp::testing

#endif  // CDP_TESTS_SEGMENTS_REFERENCE_H_
