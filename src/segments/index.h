// Copyright 2026 The libcdp Authors.
//
// SegmentIndex: the in-memory indexes segment rules are evaluated over (issue 4).
//
//   profile documents -> DocTable: one Column of compact cells per leaf path, indexed by the profile's ordinal
//   events            -> one EventTable per type (per name for custom events): ordinal, time and the columns of
//                        properties.*, source, deviceId and name, indexed by row; plus, per profile, its events
//                        sorted by time (EventRef)
//
// Evaluate() runs a PreparedRule over every profile and returns a compressed bitmap (CRoaring) of ordinals: one
// scan of a column per field condition, one scan of a type's rows per behavioural condition (skipping blocks of
// rows whose time range misses the window: EventTable's zone map), bitmap algebra for OR / NOT. An AND evaluates
// its cheapest child over every profile first (segment membership, then field conditions, then events), then
// each other child either the same way, intersected, or only for the candidates left (as EvaluateOne does),
// whichever a rough cost model says is cheaper. EvaluateOne() answers for one profile from its cells and its own
// events, for incremental updates.
// NextChange() says when time alone could next change a profile's membership.
//
// Ordinals are dense uint32 profile numbers chosen by the caller (the engine maps profile ids to them). A profile
// exists for the index once upserted or given an event; NOT, "did not" (count = 0) and absent-field conditions
// are relative to the existing profiles (universe()).
//
// Thread-safety: none inside. Const methods may run concurrently with each other; Prepare, UpsertProfile,
// RemoveProfile and AddEvent need exclusive access (the engine holds a shared mutex).

#ifndef CDP_SEGMENTS_INDEX_H_
#define CDP_SEGMENTS_INDEX_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <roaring/roaring.hh>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "cdp/segment_rule.h"
#include "cdp/status.h"
#include "segments/columns.h"

namespace cdp::segments {

using Bitmap = Roaring;

// The members of another segment, for {"segment": id} conditions; null when the segment is unknown (no members).
using MembershipLookup = std::function<const Bitmap*(std::string_view segment_id)>;

// A rule bound to an index: columns resolved, constants interned. Built by SegmentIndex::Prepare; valid for the
// lifetime of that index (columns are never dropped). Immutable afterwards.
class PreparedRule;
// An event match (EventMatch: a type, custom name or "*", and where-conditions) bound to an index, for analytics.
class EventFilter;

struct EventTable {
  std::string type;               // the event type
  std::string name;               // custom events: the name; otherwise empty
  std::vector<uint32_t> ordinal;  // kRemoved once the profile is removed
  std::vector<int64_t> time;      // event time, microseconds since the epoch
  DocTable props;                 // properties.*, source, deviceId, name
  std::vector<uint64_t> session;  // a 64-bit hash of the event's sessionId (0: none), for analytics' touches
  // Zone map: the least and greatest time of each block of kBlockRows rows, so a scan for a time window skips the
  // blocks outside it (events mostly arrive, and are always replayed at open, in time order).
  static constexpr uint32_t kBlockBits = 12;
  static constexpr uint32_t kBlockRows = 1u << kBlockBits;
  std::vector<int64_t> block_min, block_max;
};

struct EventRef {
  int64_t time;
  uint32_t table;
  uint32_t row;
};

class SegmentIndex {
 public:
  static constexpr uint32_t kRemoved = UINT32_MAX;
  static constexpr uint32_t kMaxOrdinal = UINT32_MAX - 1;

  SegmentIndex();
  ~SegmentIndex();
  SegmentIndex(const SegmentIndex&) = delete;
  SegmentIndex& operator=(const SegmentIndex&) = delete;

  // Replaces the profile's field values with the leaves of `doc` (a profile document). Cost: linear in the
  // document plus the number of columns. Errors: InvalidArgument (doc not an object, ordinal out of range).
  Status UpsertProfile(uint32_t ordinal, const Json& doc);
  // Replaces one field of an existing profile (and everything below it): `path` is a dotted path, "computed.ltv".
  // `changed`, when given, says whether it did change (an equal scalar is left alone). Errors: NotFound when the
  // profile does not exist.
  Status UpsertField(uint32_t ordinal, std::string_view path, const Json& value, bool* changed = nullptr);
  // Forgets the profile: its fields and events. No-op when unknown.
  void RemoveProfile(uint32_t ordinal);
  // Adds one event. `type` is the event type, `name` the custom event name ("" for standard types); `event` is the
  // event document (its properties.*, source, deviceId and name are kept). Cost: the document's size plus
  // an insertion into the profile's time-ordered list (appending is O(1)).
  Status AddEvent(uint32_t ordinal, std::string_view type, std::string_view name, int64_t time_us, const Json& event);

  // Binds a rule to this index. Never fails for a parsed rule.
  std::shared_ptr<const PreparedRule> Prepare(const SegmentRule& rule);

  // Members of the rule at `now_us`. Cost: see the file comment. With parallel() (the default), a large column
  // scan (16 pages, 65,536 profiles, or more), event scan (16 blocks of rows in the window or more) or per-candidate
  // test (4,096 candidates or more) is split over the calling thread and one more. The lookup may then be called
  // from both.
  Bitmap Evaluate(const PreparedRule& rule, int64_t now_us, const MembershipLookup& lookup = {}) const;
  // Whether Evaluate may use a second thread (default: yes). Not thread-safe against a running Evaluate.
  void set_parallel(bool parallel) { parallel_ = parallel; }
  bool parallel() const { return parallel_; }
  uint64_t Count(const PreparedRule& rule, int64_t now_us, const MembershipLookup& lookup = {}) const {
    return Evaluate(rule, now_us, lookup).cardinality();
  }
  // Whether one profile is a member at `now_us`. Cost: the rule's size plus the profile's events it reads.
  bool EvaluateOne(uint32_t ordinal, const PreparedRule& rule, int64_t now_us,
                   const MembershipLookup& lookup = {}) const;
  // The first instant after `now_us` at which the profile's membership could change with no write (relative
  // dates and windows), or nullopt when time cannot change it. Conservative: membership is constant over
  // [now_us, result), and may or may not change at result.
  std::optional<int64_t> NextChange(uint32_t ordinal, const PreparedRule& rule, int64_t now_us) const;

  // Every existing profile.
  const Bitmap& universe() const { return universe_; }
  size_t event_count() const { return event_count_; }
  // The events of one profile, time-ordered.
  std::span<const EventRef> EventsOf(uint32_t ordinal) const;
  const EventTable& table(uint32_t id) const { return *tables_[id]; }
  // The table of an event type or custom event name, as rules name them; kRemoved when none exists.
  uint32_t FindTable(std::string_view event) const;
  size_t table_count() const { return tables_.size(); }
  // The profile documents' columns, and the strings their cells (and the event tables' cells) name.
  const DocTable& profile_table() const { return profiles_; }
  const StringPool& pool() const { return pool_; }
  // Binds an event match to this index without changing it: unknown events, fields and string values match
  // nothing. May run concurrently with other const methods. Never fails for a parsed match.
  std::shared_ptr<const EventFilter> PrepareEvents(const EventMatch& match) const;
  // Whether the event in row `row` of table `table` matches. Cost: the match's where-conditions on that row.
  bool Matches(const EventFilter& filter, uint32_t table, uint32_t row) const;
  size_t MemoryBytes() const;

 private:
  friend class Evaluator;
  uint32_t TableFor(std::string_view type, std::string_view name, bool create);

  StringPool pool_;
  DocTable profiles_;
  std::vector<std::unique_ptr<EventTable>> tables_;
  absl::flat_hash_map<std::string, uint32_t> table_ids_;  // type, or "custom:" + name
  std::vector<std::vector<EventRef>> by_profile_;
  Bitmap universe_;
  size_t event_count_ = 0;
  bool parallel_ = true;
};

// Set algebra over member bitmaps (overlap reports and audiences).
struct Overlap {
  uint64_t a = 0, b = 0;
  uint64_t intersection = 0, union_size = 0, a_minus_b = 0, b_minus_a = 0;
  double jaccard = 0;  // intersection / union; 0 when both are empty
};
Overlap Compare(const Bitmap& a, const Bitmap& b);
// matrix[i][j] = Compare(*sets[i], *sets[j]).
std::vector<std::vector<Overlap>> PairwiseOverlap(const std::vector<const Bitmap*>& sets);

}  // namespace cdp::segments

#endif  // CDP_SEGMENTS_INDEX_H_
