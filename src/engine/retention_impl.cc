// Copyright 2026 The libcdp Authors.
//
// Retention: the policies, their scheduler and run records (RetentionImpl), and the engine's purges of old events
// and inactive profiles (EngineImpl::PurgeEventsBefore, InactiveProfiles, PurgeRetained).

#include "engine/retention_impl.h"

#include <chrono>
#include <optional>

#include "core/ids.h"
#include "engine/audited.h"
#include "engine/engine_impl.h"
#include "fmt/format.h"
#include "storage/keys.h"

namespace cdp::internal {
namespace {

constexpr std::string_view kPoliciesKey = "gretention";
constexpr std::string_view kRunPrefix = "x";
constexpr size_t kChunkEvents = 10000;  // events deleted per atomic write (and per hold of the write lock)

std::string RunKey(std::string_view id) { return std::string(kRunPrefix) + std::string(id); }

Json PoliciesJson(const std::vector<RetentionPolicy>& policies) {
  Json list = Json::Array();
  for (const RetentionPolicy& p : policies) list.Push(p.ToJson());
  return list;
}

std::string_view StringMember(const Json& doc, std::string_view key) {
  const Json* v = doc.Find(key);
  return v != nullptr && v->is_string() ? std::string_view(v->as_string()) : std::string_view();
}

// Whether an event of this type and name ("" when absent or not a string) is the policy's.
bool Matches(const RetentionPolicy& policy, std::string_view type, std::string_view name) {
  return (policy.event_type.empty() || type == policy.event_type) &&
         (policy.event_name.empty() || name == policy.event_name);
}

}  // namespace

// ---- RetentionImpl --------------------------------------------------------------------------------------------------

Status RetentionImpl::Start() {
  std::string stored;
  Status s = engine_->store().Get(storage::Cf::kPrivacy, kPoliciesKey, &stored);
  if (s.ok()) {
    CDP_ASSIGN_OR_RETURN(Json json, Json::Parse(stored));
    Result<std::vector<RetentionPolicy>> policies = ParseRetentionPolicies(json);
    if (!policies.ok()) return Status::DataLoss("the stored retention policies are invalid");
    std::lock_guard<std::mutex> lock(mu_);
    policies_ = *std::move(policies);
  } else if (!s.IsNotFound()) {
    return s;
  }
  if (engine_->options().retention_interval_seconds > 0) thread_ = std::thread([this] { Schedule(); });
  return Status::OK();
}

void RetentionImpl::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void RetentionImpl::Schedule() {
  const auto interval = std::chrono::seconds(engine_->options().retention_interval_seconds);
  std::unique_lock<std::mutex> lock(mu_);
  while (!stopping_) {
    if (wake_.wait_for(lock, interval, [this] { return stopping_; })) break;
    lock.unlock();
    (void)RunNow("schedule");  // the record (and the audit entry) say how it went
    lock.lock();
  }
}

Result<Json> RetentionImpl::Policies() {
  std::lock_guard<std::mutex> lock(mu_);
  return Json::Object()
      .Set("policies", PoliciesJson(policies_))
      .Set("intervalSeconds", engine_->options().retention_interval_seconds);
}

Result<Json> RetentionImpl::SetPolicies(const Json& json) {
  AuditedChange change(engine_->audit_log(), "retention.setPolicies");
  Status outcome = [&]() -> Status {
    CDP_RETURN_IF_ERROR(engine_->Require("admin"));
    CDP_ASSIGN_OR_RETURN(std::vector<RetentionPolicy> policies, ParseRetentionPolicies(json));
    for (RetentionPolicy& p : policies) {
      if (p.id.empty()) p.id = "ret_" + NewMonotonicId();
    }
    storage::WriteBatch batch(engine_->store());
    batch.Put(storage::Cf::kPrivacy, kPoliciesKey, Json::Object().Set("policies", PoliciesJson(policies)).Dump());
    std::lock_guard<std::mutex> lock(mu_);
    CDP_ASSIGN_OR_RETURN(uint64_t sequence, engine_->store().Write(&batch));
    CDP_RETURN_IF_ERROR(engine_->store().SyncUpTo(sequence));
    policies_ = std::move(policies);
    return Status::OK();
  }();
  change.Done({}, outcome);
  if (!outcome.ok()) return outcome;
  return Policies();
}

Result<Json> RetentionImpl::Run() {
  CDP_RETURN_IF_ERROR(engine_->Require("admin"));
  return RunNow("manual");
}

Result<Json> RetentionImpl::Runs(const Json& filter) {
  auto access = engine_->access();
  if (!access->Can("admin") && !access->Can("audit")) return access->Require("audit");
  if (!filter.is_null() && !filter.is_object()) return Status::InvalidArgument("expected an object of filters");
  int64_t limit = 100;
  std::string cursor;
  if (filter.is_object()) {
    for (const auto& [key, value] : filter.members()) {
      if (key == "limit") {
        if (!value.is_int() || value.as_int() < 1 || value.as_int() > 1000) {
          return Status::InvalidArgument("expected an integer from 1 to 1000", key);
        }
        limit = value.as_int();
      } else if (key == "cursor") {
        if (!value.is_string() || !value.as_string().starts_with("rrun_")) {
          return Status::InvalidArgument("expected a run id", key);
        }
        cursor = value.as_string();
      } else {
        return Status::InvalidArgument("unknown filter (expected limit, cursor)", key);
      }
    }
  }
  const std::string lower(kRunPrefix);
  const std::string upper = cursor.empty() ? storage::PrefixSuccessor(lower) : RunKey(cursor);
  auto it = engine_->store().NewIterator(storage::Cf::kPrivacy, lower, upper);
  Json items = Json::Array();
  std::string last;
  for (it->SeekToLast(); it->Valid() && static_cast<int64_t>(items.size()) < limit; it->Prev()) {
    CDP_ASSIGN_OR_RETURN(Json record, Json::Parse(it->value()));
    last = std::string(it->key().substr(kRunPrefix.size()));
    items.Push(std::move(record));
  }
  CDP_RETURN_IF_ERROR(it->status());
  const bool more = it->Valid();
  return Json::Object().Set("items", std::move(items)).Set("nextCursor", more ? Json(last) : Json());
}

Result<Json> RetentionImpl::RunNow(std::string_view trigger) {
  AuditedChange change(engine_->audit_log(), "retention.run");
  std::lock_guard<std::mutex> run_lock(run_mu_);
  std::vector<RetentionPolicy> policies;
  {
    std::lock_guard<std::mutex> lock(mu_);
    policies = policies_;
  }
  const int64_t started = NowMicros();
  const std::string id = "rrun_" + NewMonotonicId();
  Json record =
      Json::Object().Set("id", id).Set("trigger", std::string(trigger)).Set("startedAt", FormatTimestamp(started));
  Json results = Json::Array();
  int64_t events_purged = 0, profiles_erased = 0;
  Status status = [&]() -> Status {
    for (const RetentionPolicy& policy : policies) {
      if (!policy.enabled) continue;
      const int64_t cutoff = policy.CutoffAt(started);
      Json result = policy.ToJson();
      result.Erase("enabled");
      result.Set("cutoff", FormatTimestamp(cutoff));
      if (policy.target == RetentionPolicy::Target::kEvents) {
        int64_t purged = 0;
        absl::flat_hash_set<std::string> affected;
        Status retired = engine_->PurgeEventsBefore(policy, cutoff, &purged, &affected);
        events_purged += purged;  // what the chunks written so far retired, even when a later one failed
        CDP_RETURN_IF_ERROR(retired);
        result.Set("eventsPurged", purged);
        result.Set("profilesAffected", static_cast<int64_t>(affected.size()));
      } else {
        CDP_ASSIGN_OR_RETURN(std::vector<std::string> inactive, engine_->InactiveProfiles(cutoff));
        int64_t erased = 0;
        for (const std::string& pid : inactive) {
          // Found inactive without the write lock: one active again by the time it is erased is kept.
          bool kept = false;
          Status s = engine_->DeleteProfile(pid, nullptr, /*for_retention=*/true, cutoff, &kept);
          if (s.IsNotFound()) continue;  // merged or erased meanwhile
          CDP_RETURN_IF_ERROR(s);
          if (!kept) ++erased;
        }
        result.Set("profilesErased", erased);
        profiles_erased += erased;
      }
      results.Push(std::move(result));
    }
    return Status::OK();
  }();
  // Physical, also after a failure: what the chunks written so far retired, and any span an earlier run left.
  if (Status purge = engine_->PurgeRetained(/*profiles_erased=*/profiles_erased > 0); status.ok()) status = purge;
  record.Set("finishedAt", FormatTimestamp(NowMicros()));
  record.Set("status", status.ok() ? "completed" : "failed");
  if (!status.ok()) {
    record.Set("error",
               Json::Object().Set("code", std::string(StatusCodeName(status.code()))).Set("message", status.message()));
  }
  record.Set("policies", std::move(results));
  record.Set("eventsPurged", events_purged);
  record.Set("profilesErased", profiles_erased);
  storage::WriteBatch batch(engine_->store());
  batch.Put(storage::Cf::kPrivacy, RunKey(id), record.Dump());
  CDP_ASSIGN_OR_RETURN(uint64_t sequence, engine_->store().Write(&batch));
  CDP_RETURN_IF_ERROR(engine_->store().SyncUpTo(sequence));
  change.Done({}, status, events_purged + profiles_erased);
  if (!status.ok()) return status;
  return record;
}

// ---- The engine's purges
// ----------------------------------------------------------------------------------------------

Status EngineImpl::PurgeEventsBefore(const RetentionPolicy& policy, int64_t cutoff_us, int64_t* purged,
                                     absl::flat_hash_set<std::string>* affected) {
  const std::string upper = storage::TimeKey(cutoff_us, "");  // every event before the cut-off sorts below it
  // Events earlier runs retired for this policy's type and name are behind its horizon: the scan starts there.
  // Horizons and `resume` are time keys, which sort before every log key they begin.
  std::string resume = retention_horizons()->Before(policy.event_type, policy.event_name);
  if (resume >= upper) return Status::OK();
  while (true) {
    storage::WriteBatch batch(*store_);
    bool done = false;
    std::vector<std::string> touched;
    {  // a chunk's write
      std::lock_guard<std::mutex> lock(write_mu_);
      CDP_RETURN_IF_ERROR(write_error_);
      std::unique_lock<std::shared_mutex> exclusive;
      CDP_RETURN_IF_ERROR(SettleInFlight(&exclusive));
      // The tail out first: the per-profile index is then whole in storage, and its log (naming the events) gone.
      CDP_RETURN_IF_ERROR(FlushTail());
      const std::shared_ptr<const RetentionHorizons> horizons = retention_horizons();
      absl::flat_hash_map<std::string, absl::flat_hash_set<std::string>> deleted;  // profile -> time keys
      const std::shared_ptr<const absl::flat_hash_set<std::string>> erasing = this->erasing();
      size_t n = 0;
      std::string first, last, time_key;  // this chunk's first and last retired keys; the time key looked at last
      auto it = store_->NewIterator(storage::Cf::kEventsByTime, resume, upper);
      for (it->Seek(resume); it->Valid(); it->Next()) {
        // A chunk ends between two time keys, never inside one: the horizon is then a time key, the same for an
        // event whichever profile a merge later moves it to.
        if (n >= kChunkEvents && storage::TimeIndexTimeKey(it->key()) != time_key) break;
        time_key = std::string(storage::TimeIndexTimeKey(it->key()));
        std::string_view type, name;  // read from the text, else from a parse (RetiredStored does the same)
        std::optional<Json> parsed;
        if (!StoredTypeAndName(it->value(), &type, &name)) {
          auto event = Json::Parse(it->value());
          if (!event.ok()) return Status::DataLoss("a stored event is corrupt");
          parsed = std::move(event).value();
          type = StringMember(*parsed, "type");
          name = StringMember(*parsed, "name");
        }
        if (!Matches(policy, type, name)) continue;
        if (horizons->Retired(it->key(), type, name)) continue;  // another policy's horizon retired it
        const std::string pid(storage::TimeIndexProfile(it->key()));
        if (erasing != nullptr && erasing->contains(pid)) continue;  // leaving the log through the erasure's filter
        // The log entry stays until the drop filter removes it (below): no tombstone. The index entry goes.
        batch.Delete(storage::Cf::kEvents, storage::ProfileEventsPrefix(pid) + time_key);
        if (first.empty()) first = std::string(it->key());
        last = std::string(it->key());
        deleted[pid].insert(time_key);
        ++n;
      }
      CDP_RETURN_IF_ERROR(it->status());
      done = !it->Valid();
      if (!done) resume = std::string(storage::TimeIndexTimeKey(it->key()));
      // Every matching event below `resume` (below the cut-off once done) is now retired, in this same write.
      auto raised = std::make_shared<RetentionHorizons>(*horizons);
      raised->Raise(policy.event_type, policy.event_name, done ? upper : resume);
      batch.Put(storage::Cf::kMeta, kRetentionHorizonsKey, raised->Serialize());
      // Each profile's computed traits, from the events it keeps.
      for (const auto& [pid, keys] : deleted) {
        storage::Traits traits;
        std::string document;
        ProfileEvents events(*store_, tail_, pid);
        for (; events.Valid(); events.Next()) {
          if (keys.contains(Av(events.time_key()))) continue;
          Status read = events.Read(&document);
          if (read.IsNotFound()) continue;
          CDP_RETURN_IF_ERROR(read);
          auto doc = Json::Parse(document);
          if (!doc.ok()) return Status::DataLoss("a stored event is corrupt");
          StoredEventTraits(*doc, events.time_us(), &traits);
        }
        CDP_RETURN_IF_ERROR(events.status());
        batch.Put(storage::Cf::kTraits, pid, traits.Encode());
        touched.push_back(pid);
      }
      if (n > 0) {
        store_->AddToCounter(&batch, "events", -static_cast<int64_t>(n));
        // What the purge must rewrite (PurgeRetained, or Open after a crash): the retired span so far.
        RetiredRange range;
        std::string stored;
        Status found = store_->Get(storage::Cf::kMeta, kRetentionPurgeKey, &stored);
        if (found.ok()) {
          CDP_ASSIGN_OR_RETURN(range, RetiredRange::Parse(stored));
        } else if (!found.IsNotFound()) {
          return found;
        }
        range.Extend(first, last);
        batch.Put(storage::Cf::kMeta, kRetentionPurgeKey, range.Serialize());
      }
      CDP_RETURN_IF_ERROR(store_->Write(&batch).status());
      *purged += static_cast<int64_t>(n);
      for (const std::string& pid : touched) {
        sessions_.erase(pid);
        affected->insert(pid);
      }
      segments_.NotifyChanged(touched, "retention");  // their events and traits are read again
      // Durable whatever sync_writes says before the drop filter and readers follow the new horizon (a power loss
      // must not keep the drops and lose the write behind them), and before a write is refused by it (so under
      // the lock). When that fails, storage may hold a horizon memory does not: the engine refuses writes.
      if (Status synced = store_->SyncWal(); !synced.ok()) {
        write_error_ = synced;
        return synced;
      }
      SetRetentionHorizons(std::move(raised));
    }
    (void)segments_.AfterWrite();
    if (done) return Status::OK();
  }
}

Result<std::vector<std::string>> EngineImpl::InactiveProfiles(int64_t cutoff_us) {
  std::vector<std::string> out;
  auto it = store_->NewIterator(storage::Cf::kProfiles);
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    auto doc = Json::Parse(it->value());
    if (!doc.ok()) return Status::DataLoss("a stored profile is corrupt");
    if (doc->Find("mergedInto") != nullptr) continue;  // a redirect: erased with its survivor
    const std::string id(it->key());
    if (LastActivity(id, *doc) < cutoff_us) out.push_back(id);
  }
  CDP_RETURN_IF_ERROR(it->status());
  return out;
}

int64_t EngineImpl::LastActivity(const std::string& id, const Json& doc) {
  int64_t latest = tail_.Traits(id).last_seen_us;
  if (const Json* updated = doc.Find("updatedAt"); updated != nullptr) {
    if (auto t = ParseTimestamp(*updated); t.ok() && *t > latest) latest = *t;
  }
  return latest;
}

Status EngineImpl::PurgeRetained(bool profiles_erased, bool at_open) {
  if (profiles_erased) {  // erasures touch every column family: all of them whole, through the drop filter
    CDP_RETURN_IF_ERROR(ScrubPendingHubs());  // before, so the purge compacts the old hub sets away
    CDP_RETURN_IF_ERROR(PurgeEverything(at_open));
  } else {
    std::string stored;
    Status found = store_->Get(storage::Cf::kMeta, kRetentionPurgeKey, &stored);
    if (found.IsNotFound()) return Status::OK();
    CDP_RETURN_IF_ERROR(found);
    CDP_ASSIGN_OR_RETURN(RetiredRange retired, RetiredRange::Parse(stored));
    // The event log's files over the retired span, through the drop filter (which removes every retired entry
    // they hold); the per-profile index, keyed by profile, and the tail's log (naming event ids) whole.
    storage::WriteBatch range(*store_);  // never written: the bounds of what to compact
    range.DeleteRange(storage::Cf::kEventsByTime, retired.first, retired.last + std::string(1, '\0'));
    return store_->Purge(&range, {storage::Cf::kEvents, storage::Cf::kIndexLog}, kRetentionPurgeKey);
  }
  storage::WriteBatch done(*store_);
  done.Delete(storage::Cf::kMeta, kRetentionPurgeKey);
  return store_->Write(&done).status();
}

}  // namespace cdp::internal
