// Copyright 2026 The libcdp Authors.
//
// Segments (include/cdp/engine.h) over the segment index (src/segments/index.h): definitions stored in kMeta
// ("seg/" id -> definition), profiles numbered by dense ordinals, the index built from storage at first use and
// kept in step with writes. Writers only note which profiles they changed (NotifyChanged, cheap); a read applies
// those changes first, reloading each noted profile's document and events, with writes paused (so a batch
// published but not yet stored cannot be missed).

#ifndef CDP_ENGINE_SEGMENTS_IMPL_H_
#define CDP_ENGINE_SEGMENTS_IMPL_H_

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "cdp/engine.h"
#include "cdp/segment_rule.h"

namespace cdp::segments {
class SegmentIndex;
class PreparedRule;
}  // namespace cdp::segments

namespace cdp::internal {

class EngineImpl;

class SegmentsImpl final : public Segments {
 public:
  explicit SegmentsImpl(EngineImpl* engine);
  ~SegmentsImpl() override;

  Result<Json> Create(const Json& definition) override;
  Result<Json> Get(std::string_view id) override;
  Result<Json> List() override;
  Result<Json> Update(std::string_view id, const Json& definition) override;
  Status Delete(std::string_view id) override;
  Result<Page> Members(std::string_view id, size_t limit, std::string_view cursor) override;
  Result<int64_t> Size(std::string_view id) override;
  Result<int64_t> Estimate(const Json& rule) override;

  // Whether writers must report the profiles they change (the index exists). Cheap.
  bool tracking() const { return tracking_.load(std::memory_order_acquire); }
  // Notes profiles whose document or events a write changed. Called by the write path, after its changes are
  // published; never blocks on a read.
  void NotifyChanged(std::vector<std::string> profile_ids);

 private:
  struct Definition {
    Json stored;  // {"id", "name", "description"?, "rule", "createdAt", "updatedAt"}
    SegmentRule rule;
    std::shared_ptr<const segments::PreparedRule> prepared;
  };

  // Builds the index at first use, then applies the changes noted since the last read. mu_ held.
  Status Refresh();
  Status Build();
  // Re-reads one profile (document and events) into the index. mu_ held, writes paused.
  Status Reload(const std::string& profile_id);
  uint32_t OrdinalOf(const std::string& profile_id);
  // Validates a definition ("name", "description", "rule"), its segment references and cycles. mu_ held.
  Result<SegmentRule> ParseDefinition(const Json& definition, std::string_view self, Json* normalized);
  // Members of a definition now (segments it names evaluated on the way). mu_ held.
  Result<std::vector<uint32_t>> MembersNow(const Definition& d);
  Status Store(const Json& stored);
  Result<Json> WithSize(const Definition& d);

  EngineImpl* engine_;
  std::mutex mu_;  // everything below but the pending set
  std::unique_ptr<segments::SegmentIndex> index_;
  absl::flat_hash_map<std::string, uint32_t> ordinal_of_;
  std::vector<std::string> id_of_;
  std::map<std::string, Definition> definitions_;  // by id
  bool loaded_ = false;                            // definitions_ read from storage

  std::atomic<bool> tracking_{false};
  std::mutex pending_mu_;
  absl::flat_hash_set<std::string> pending_;  // guarded by pending_mu_
};

}  // namespace cdp::internal

#endif  // CDP_ENGINE_SEGMENTS_IMPL_H_
