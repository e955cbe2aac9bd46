// Copyright 2026 The libcdp Authors.
//
// The per-profile aggregates behind computed traits, stored in Cf::kTraits and combined by a RocksDB merge
// operator. Every field combines commutatively and associatively (sums, minima, maxima over exact integers), so
// the traits are the same whatever order events arrive in. Money is kept in integer micro-units: floating-point
// sums would depend on the order of addition.

#ifndef CDP_STORAGE_TRAITS_H_
#define CDP_STORAGE_TRAITS_H_

#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <string_view>

namespace cdp::storage {

struct Traits {
  static constexpr int64_t kNoTime = std::numeric_limits<int64_t>::min();

  int64_t revenue_micros = 0;  // sum of purchase values, in millionths
  int64_t purchase_count = 0;
  int64_t event_count = 0;
  int64_t last_purchase_us = kNoTime;
  int64_t first_seen_us = kNoTime;
  int64_t last_seen_us = kNoTime;

  static constexpr size_t kEncodedSize = 6 * 8;

  void Combine(const Traits& o) {
    revenue_micros += o.revenue_micros;
    purchase_count += o.purchase_count;
    event_count += o.event_count;
    last_purchase_us = MaxTime(last_purchase_us, o.last_purchase_us);
    last_seen_us = MaxTime(last_seen_us, o.last_seen_us);
    first_seen_us = MinTime(first_seen_us, o.first_seen_us);
  }

  // Adds one event at `time_us`; `purchase_micros` is set for purchases.
  void AddEvent(int64_t time_us, bool purchase, int64_t purchase_micros) {
    Traits one;
    one.event_count = 1;
    one.first_seen_us = one.last_seen_us = time_us;
    if (purchase) {
      one.purchase_count = 1;
      one.revenue_micros = purchase_micros;
      one.last_purchase_us = time_us;
    }
    Combine(one);
  }

  std::string Encode() const {
    std::string out(kEncodedSize, '\0');
    int64_t v[6] = {revenue_micros, purchase_count, event_count, last_purchase_us, first_seen_us, last_seen_us};
    std::memcpy(out.data(), v, kEncodedSize);  // little-endian hosts only; checked at build time below
    return out;
  }

  static bool Decode(std::string_view in, Traits* t) {
    if (in.size() != kEncodedSize) return false;
    int64_t v[6];
    std::memcpy(v, in.data(), kEncodedSize);
    t->revenue_micros = v[0];
    t->purchase_count = v[1];
    t->event_count = v[2];
    t->last_purchase_us = v[3];
    t->first_seen_us = v[4];
    t->last_seen_us = v[5];
    return true;
  }

 private:
  static int64_t MaxTime(int64_t a, int64_t b) {
    if (a == kNoTime) return b;
    if (b == kNoTime) return a;
    return a > b ? a : b;
  }
  static int64_t MinTime(int64_t a, int64_t b) {
    if (a == kNoTime) return b;
    if (b == kNoTime) return a;
    return a < b ? a : b;
  }
};

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "traits encoding assumes a little-endian host");

}  // namespace cdp::storage

#endif  // CDP_STORAGE_TRAITS_H_
