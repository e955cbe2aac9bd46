// Copyright 2026 The libcdp Authors.

#include "segments/rfm.h"

#include <algorithm>
#include <cmath>
#include <cstring>

namespace cdp {

namespace {

constexpr std::string_view kGrid[5][5] = {
    // FM = 1..5, for R = 1 (row 0) .. 5 (row 4)
    {"Lost", "Hibernating", "At Risk", "Cannot Lose Them", "Cannot Lose Them"},
    {"Hibernating", "About to Sleep", "At Risk", "At Risk", "Cannot Lose Them"},
    {"About to Sleep", "Need Attention", "Need Attention", "Loyal Customers", "Loyal Customers"},
    {"Promising", "Potential Loyalists", "Loyal Customers", "Champions", "Champions"},
    {"New Customers", "Potential Loyalists", "Potential Loyalists", "Champions", "Champions"},
};

// 1 + floor(5 * below / n), `below` = how many values are strictly smaller.
template <typename T>
std::vector<int> Quintiles(const std::vector<T>& values) {
  std::vector<T> sorted = values;
  std::sort(sorted.begin(), sorted.end());
  std::vector<int> out(values.size());
  for (size_t i = 0; i < values.size(); ++i) {
    size_t below = std::lower_bound(sorted.begin(), sorted.end(), values[i]) - sorted.begin();
    out[i] = 1 + static_cast<int>(5 * below / values.size());
  }
  return out;
}

}  // namespace

std::string_view RfmSegmentName(int r, int f, int m) {
  r = std::clamp(r, 1, 5);
  int fm = std::clamp((std::clamp(f, 1, 5) + std::clamp(m, 1, 5) + 1) / 2, 1, 5);
  return kGrid[r - 1][fm - 1];
}

Json RfmScore::ToJson() const {
  return Json::Object().Set("r", r).Set("f", f).Set("m", m).Set("score", score()).Set("segment", segment);
}

std::vector<RfmScore> ScoreRfm(const std::vector<RfmInput>& customers) {
  std::vector<int64_t> recency, frequency;
  std::vector<double> monetary;
  for (const RfmInput& c : customers) {
    recency.push_back(c.last_purchase_us);  // later is better
    frequency.push_back(static_cast<int64_t>(c.frequency));
    monetary.push_back(c.monetary);
  }
  std::vector<int> r = Quintiles(recency), f = Quintiles(frequency), m = Quintiles(monetary);
  std::vector<RfmScore> out(customers.size());
  for (size_t i = 0; i < out.size(); ++i) {
    out[i] = {r[i], f[i], m[i], RfmSegmentName(r[i], f[i], m[i])};
  }
  return out;
}

namespace segments {

std::vector<std::pair<uint32_t, RfmInput>> CollectRfmInputs(const SegmentIndex& index, const RfmOptions& options,
                                                            int64_t now_us) {
  std::vector<std::pair<uint32_t, RfmInput>> out;
  uint32_t id = index.FindTable(options.event);
  if (id == SegmentIndex::kRemoved) return out;
  const EventTable& table = index.table(id);
  const Column* revenue = table.props.Find(options.revenue_path);
  int64_t from = options.window_us > 0 ? now_us - options.window_us : INT64_MIN;
  struct Acc {
    RfmInput in;
    int64_t micros = 0;
  };
  absl::flat_hash_map<uint32_t, Acc> acc;
  for (uint32_t row = 0; row < table.ordinal.size(); ++row) {
    uint32_t ord = table.ordinal[row];
    int64_t t = table.time[row];
    if (ord == SegmentIndex::kRemoved || t < from || t > now_us) continue;
    Acc& a = acc[ord];
    if (a.in.frequency++ == 0) {
      a.in.first_purchase_us = a.in.last_purchase_us = t;
    } else {
      a.in.first_purchase_us = std::min(a.in.first_purchase_us, t);
      a.in.last_purchase_us = std::max(a.in.last_purchase_us, t);
    }
    Cell c = revenue ? revenue->Get(row) : Cell{};
    double v;
    if (c.tag == Tag::kInt) {
      v = static_cast<double>(static_cast<int64_t>(c.bits));
    } else if (c.tag == Tag::kDouble) {
      std::memcpy(&v, &c.bits, sizeof v);
    } else {
      continue;
    }
    a.micros += std::llround(std::clamp(v, -1e12, 1e12) * 1e6);
  }
  out.reserve(acc.size());
  for (auto& [ord, a] : acc) {
    a.in.monetary = static_cast<double>(a.micros) / 1e6;
    out.emplace_back(ord, a.in);
  }
  std::sort(out.begin(), out.end(), [](const auto& x, const auto& y) { return x.first < y.first; });
  return out;
}

}  // namespace segments
}  // namespace cdp
