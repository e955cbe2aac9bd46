// Copyright 2026 The libcdp Authors.
//
// RFM: recency, frequency and monetary scores of customers, and the named RFM segments.
//
// Each customer with at least one purchase in the window gets three quintile scores from 1 (worst) to 5 (best):
//   R  how recent the last purchase is (more recent is better)
//   F  how many purchases (more is better)
//   M  how much they spent in all (more is better)
// A profile without a purchase in the window has no RFM score. The engine writes the result into the profile as
// `computed.rfm` = {"r": 5, "f": 4, "m": 4, "score": 544, "segment": "Champions"}, so rules read it as plain
// fields ({"field": "computed.rfm.segment", "operator": "=", "value": "At Risk"}).
//
// QUINTILES AND TIES. Among the n scored customers, a customer whose value is better than exactly `below` others
// (strictly better: ties do not count) scores
//     1 + floor(5 * below / n).
// Equal values therefore always get the same score, whatever the order of input, and the scores depend only on
// the data (deterministic). When many customers share the lowest value (one purchase is common), they all score
// 1 and the higher scores start above them; a score may then be unused.
//
// NAMED SEGMENTS. From R and FM = ceil((F + M) / 2), one name per cell:
//
//          FM=1              FM=2                 FM=3                 FM=4               FM=5
//   R=5    New Customers     Potential Loyalists  Potential Loyalists  Champions          Champions
//   R=4    Promising         Potential Loyalists  Loyal Customers      Champions          Champions
//   R=3    About to Sleep    Need Attention       Need Attention       Loyal Customers    Loyal Customers
//   R=2    Hibernating       About to Sleep       At Risk              At Risk            Cannot Lose Them
//   R=1    Lost              Hibernating          At Risk              Cannot Lose Them   Cannot Lose Them
//
// (The usual R x FM grid of the RFM literature, with its overlaps settled so that every cell has exactly one
// name.)
//
// Cost: ScoreRfm is O(n log n). Thread-safety: pure functions over values.

#ifndef CDP_RFM_H_
#define CDP_RFM_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "cdp/json.h"

namespace cdp {

struct RfmOptions {
  // The purchase events: a standard event type or a custom event's name. Default: "purchase".
  std::string event = "purchase";
  // The numeric property of a purchase that is its value; purchases without a number there count for F, not M.
  // Default: "properties.revenue".
  std::string revenue_path = "properties.revenue";
  // Purchases with time in [now - window, now] count. 0: every purchase up to now. Default: 365 days.
  int64_t window_us = 365LL * 86400 * 1000000;
};

// One customer's purchases in the window.
struct RfmInput {
  int64_t first_purchase_us = 0;
  int64_t last_purchase_us = 0;
  uint64_t frequency = 0;  // number of purchases (at least 1)
  double monetary = 0;     // total value (summed exactly in micro-units)
};

struct RfmScore {
  int r = 0, f = 0, m = 0;   // 1..5
  std::string_view segment;  // one of the names of the table above
  int score() const { return r * 100 + f * 10 + m; }
  // {"r", "f", "m", "score", "segment"}
  Json ToJson() const;
};

// Scores of `customers`, in the same order.
std::vector<RfmScore> ScoreRfm(const std::vector<RfmInput>& customers);

// The named segment of a cell of the table (scores outside 1..5 are clamped).
std::string_view RfmSegmentName(int r, int f, int m);

}  // namespace cdp

#endif  // CDP_RFM_H_
