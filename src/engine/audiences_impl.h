// Copyright 2026 The libcdp Authors.
//
// Audiences (include/cdp/engine.h) over the segments' maintained membership (segments_impl.h).
//
//   kMeta "aud/" id                     -> {"id", "name", "description"?, "segments", "exclude", "suppressionLists",
//                                           "channel", "createdAt", "updatedAt"}
//   kMeta "supp/" id                    -> {"id", "name", "description"?, "createdAt"}
//   kMeta "suppitem/" id "/" type \0 v  -> "" (normalized identifiers)
//
// Everything runs under the segments' mutex (SegmentsImpl::mu_), after its Refresh, so an audience is evaluated
// over membership that includes every acknowledged write.

#ifndef CDP_ENGINE_AUDIENCES_IMPL_H_
#define CDP_ENGINE_AUDIENCES_IMPL_H_

#include <map>
#include <string>
#include <vector>

#include "cdp/engine.h"
#include "segments/index.h"

namespace cdp::internal {

class EngineImpl;
class SegmentsImpl;
class Access;

class AudiencesImpl final : public Audiences {
 public:
  AudiencesImpl(EngineImpl* engine, SegmentsImpl* segments) : engine_(engine), segments_(segments) {}

  Result<Json> Create(const Json& definition) override;
  Result<Json> Get(std::string_view id) override;
  Result<Json> List() override;
  Result<Json> Update(std::string_view id, const Json& definition) override;
  Status Delete(std::string_view id) override;
  Result<int64_t> Size(std::string_view id) override;
  Result<Page> Members(std::string_view id, size_t limit, std::string_view cursor) override;
  Result<Json> Overlap(std::string_view id) override;
  Status Export(std::string_view id, std::string_view format, const std::vector<std::string>& fields,
                const std::function<bool(std::string_view chunk)>& sink) override;
  Result<Json> CreateSuppressionList(const Json& definition) override;
  Result<Json> GetSuppressionList(std::string_view id) override;
  Result<Json> ListSuppressionLists() override;
  Status DeleteSuppressionList(std::string_view id) override;
  Result<Json> AddToSuppressionList(std::string_view id, const Json& items) override;
  Result<Json> RemoveFromSuppressionList(std::string_view id, const Json& items) override;

  // The id of an audience whose definition names segment `segment_id`, or "". Segments' mutex held.
  std::string Naming(std::string_view segment_id);

 private:
  struct Parts {  // an audience's membership and how it came about
    segments::Bitmap combined, excluded, suppressed, without_consent, members;
  };
  // Loads definitions and lists once. Segments' mutex held.
  Status Load();
  Result<Json> Normalize(const Json& definition, std::string_view self);
  Result<const Json*> FindAudience(std::string_view id);
  Result<Parts> Evaluate(const Json& audience);
  // PermissionDenied unless `access` may read what the audience's membership tells: its segments' and excluded
  // segments' rules (SegmentsImpl::CheckReadable), "consent.<channel>", and the identifiers ("externalIds") its
  // suppression lists match. Segments' mutex held.
  Status CheckReadable(const Json& audience, const Access& access);
  Result<int64_t> ListSize(std::string_view id);
  Result<Json> ChangeList(std::string_view id, const Json& items, bool add);
  Json WithSize(const Json& audience, uint64_t size) const;
  Status Put(const std::string& key, const Json& value);

  EngineImpl* engine_;
  SegmentsImpl* segments_;
  bool loaded_ = false;
  std::map<std::string, Json> audiences_;  // by id; guarded by the segments' mutex
  std::map<std::string, Json> lists_;      // suppression lists by id; likewise
};

}  // namespace cdp::internal

#endif  // CDP_ENGINE_AUDIENCES_IMPL_H_
