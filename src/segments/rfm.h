// Copyright 2026 The libcdp Authors.
//
// RFM inputs from the segment index's purchase events (cdp/rfm.h scores them).

#ifndef CDP_SEGMENTS_RFM_H_
#define CDP_SEGMENTS_RFM_H_

#include <cstdint>
#include <utility>
#include <vector>

#include "cdp/rfm.h"
#include "segments/index.h"

namespace cdp::segments {

// (ordinal, purchases in [now - window, now]) of every profile with at least one, by ordinal. One scan of the
// purchase events.
std::vector<std::pair<uint32_t, RfmInput>> CollectRfmInputs(const SegmentIndex& index, const RfmOptions& options,
                                                            int64_t now_us);

}  // namespace cdp::segments

#endif  // CDP_SEGMENTS_RFM_H_
