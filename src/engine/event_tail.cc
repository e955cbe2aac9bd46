// Copyright 2026 The libcdp Authors.

#include "engine/event_tail.h"

#include <algorithm>
#include <cstring>
#include <mutex>

#include "storage/keys.h"

namespace cdp::internal {

namespace {

// A log record: the byte kCountedRecordTag, the write's Changes::new_events (8 bytes, little-endian), then per added
// entry: u16 profile length, profile, u16 time key length, time key (ids are at most 256 bytes), then one byte: 1
// when the event is new (its traits count), 0 when a merge moved it. Records that begin with kRecordTag carry no
// count: builds before 2026-12-03 added their events to the `events` counter in the same write. Records of
// development builds before the flag began with a profile id's length (0xff only for 255 bytes).
constexpr char kRecordTag = '\xff';
constexpr char kCountedRecordTag = '\xfe';

// The kTraits key of the flushed parts' event total (a Traits with only event_count set, merged by the traits'
// merge operator). Profile ids hold no control characters, and it sorts before every one of them.
constexpr char kEventTotalKey[] = "\x01events";

void AppendPart(std::string* out, std::string_view s) {
  out->push_back(static_cast<char>(s.size() & 0xff));
  out->push_back(static_cast<char>(s.size() >> 8));
  out->append(s);
}

bool ReadPart(std::string_view* in, std::string_view* part) {
  if (in->size() < 2) return false;
  size_t n = static_cast<unsigned char>((*in)[0]) | (static_cast<size_t>(static_cast<unsigned char>((*in)[1])) << 8);
  if (in->size() < 2 + n) return false;
  *part = in->substr(2, n);
  in->remove_prefix(2 + n);
  return true;
}

std::string RecordKey(uint64_t record) {
  std::string k;
  storage::AppendBigEndian64(&k, record);
  return k;
}

}  // namespace

void EventTail::Log(const Changes& changes, storage::WriteBatch* batch) {
  if (changes.added.empty()) return;
  std::string record(1, kCountedRecordTag);
  const int64_t count = changes.new_events;
  record.append(reinterpret_cast<const char*>(&count), sizeof(count));  // little-endian hosts (storage/traits.h)
  for (size_t i = 0; i < changes.added.size(); ++i) {
    AppendPart(&record, changes.added[i].first);
    AppendPart(&record, changes.added[i].second);
    record.push_back(i < changes.counted.size() && changes.counted[i] ? '\1' : '\0');
  }
  batch->Put(storage::Cf::kIndexLog, RecordKey(next_record_++), record);
}

EventTail::~EventTail() { WaitForBackground(); }

void EventTail::WaitForBackground() {
  if (background_.joinable()) background_.join();
}

void EventTail::Apply(Changes&& changes) {
  if (changes.empty()) return;
  if (!changes.removed.empty() || !changes.reset.empty()) {
    bool touches_frozen = false;
    {
      std::shared_lock<std::shared_mutex> lock(mu_);
      if (frozen_) {
        for (const auto& [profile, time_key] : changes.removed) touches_frozen |= frozen_->contains(profile);
        for (const std::string& profile : changes.reset) touches_frozen |= frozen_->contains(profile);
      }
    }
    if (touches_frozen) WaitForBackground();  // then frozen_ is gone, or kept after an error (left as it is)
  }
  std::unique_lock<std::shared_mutex> lock(mu_);
  for (const auto& [profile, time_key] : changes.removed) {
    auto it = profiles_.find(profile);
    if (it != profiles_.end()) entries_ -= it->second.time_keys.erase(time_key);
  }
  for (const std::string& profile : changes.reset) {
    auto it = profiles_.find(profile);
    if (it != profiles_.end()) {
      it->second.delta = storage::Traits();
      it->second.has_delta = false;
    }
  }
  for (auto& [profile, time_key] : changes.added) {
    entries_ += profiles_[profile].time_keys.insert(std::move(time_key)).second ? 1 : 0;
  }
  for (auto& [profile, delta] : changes.deltas) {
    ProfileTail& p = profiles_[profile];
    p.delta.Combine(delta);
    p.has_delta = true;
  }
  new_events_ += changes.new_events;
}

Status EventTail::WriteOut(const Map& map, uint64_t upto, bool frozen) {
  // Profile ids never hold \0, so ordering by id then time key orders the kEvents keys (id \0 time key).
  std::vector<const Map::value_type*> order;
  order.reserve(map.size());
  for (const auto& entry : map) order.push_back(&entry);
  std::sort(order.begin(), order.end(), [](const auto* a, const auto* b) { return a->first < b->first; });
  auto load = store_->NewBulkLoad();
  CDP_RETURN_IF_ERROR(load->StartRun(storage::Cf::kEvents, /*merge=*/false));
  std::string key;
  for (const auto* entry : order) {
    key = storage::ProfileEventsPrefix(entry->first);
    const size_t prefix = key.size();
    for (const std::string& time_key : entry->second.time_keys) {
      key.resize(prefix);
      key.append(time_key);
      CDP_RETURN_IF_ERROR(load->Add(key, {}));
    }
  }
  CDP_RETURN_IF_ERROR(load->StartRun(storage::Cf::kTraits, /*merge=*/true));
  int64_t new_events;
  {
    std::shared_lock<std::shared_mutex> lock(mu_);
    new_events = frozen ? frozen_new_events_ : new_events_;
  }
  if (new_events != 0) {  // its key sorts first
    storage::Traits total;
    total.event_count = new_events;
    CDP_RETURN_IF_ERROR(load->Add(kEventTotalKey, total.Encode()));
  }
  for (const auto* entry : order) {
    if (entry->second.has_delta) CDP_RETURN_IF_ERROR(load->Add(entry->first, entry->second.delta.Encode()));
  }
  // The log records of these entries go in the same atomic load: after it, nothing is both logged and stored.
  CDP_RETURN_IF_ERROR(load->StartRun(storage::Cf::kIndexLog, /*merge=*/false));
  CDP_RETURN_IF_ERROR(load->DeleteRange(RecordKey(0), RecordKey(upto)));
  // Outside the lock, so that readers and Apply do not wait for memtable flushes (writes pause for the memtable
  // switch only, unless RocksDB is itself stopping writes).
  CDP_RETURN_IF_ERROR(load->Stage());
  // Readers wait while the files are added, so that none counts a trait delta both in storage and here.
  std::unique_lock<std::shared_mutex> lock(mu_);
  CDP_RETURN_IF_ERROR(load->Commit());
  if (frozen) {
    frozen_.reset();
    frozen_new_events_ = 0;
  } else {
    profiles_.clear();
    entries_ = 0;
    new_events_ = 0;
  }
  return Status::OK();
}

Status EventTail::FlushInBackground() {
  WaitForBackground();
  Status previous = background_status_;
  std::shared_ptr<const Map> frozen;
  {
    std::unique_lock<std::shared_mutex> lock(mu_);
    if (frozen_ || profiles_.empty()) return previous;  // a failed flush's part is still there: keep it
    frozen_ = std::make_shared<const Map>(std::move(profiles_));
    profiles_.clear();
    entries_ = 0;
    frozen_new_events_ = new_events_;
    new_events_ = 0;
    frozen = frozen_;
  }
  const uint64_t upto = frozen_upto_ = next_record_;
  background_ = std::thread([this, frozen, upto] { background_status_ = WriteOut(*frozen, upto, /*frozen=*/true); });
  return previous;
}

Status EventTail::Flush() {
  WaitForBackground();
  std::shared_ptr<const Map> frozen;
  {
    std::shared_lock<std::shared_mutex> lock(mu_);
    frozen = frozen_;
  }
  // After a failure, again: deleting only its own log records (those of profiles_ go with profiles_'s load).
  if (frozen) CDP_RETURN_IF_ERROR(WriteOut(*frozen, frozen_upto_, /*frozen=*/true));
  bool empty;
  {
    std::shared_lock<std::shared_mutex> lock(mu_);
    empty = profiles_.empty() && new_events_ == 0;
  }
  if (empty) return Status::OK();
  background_status_ = Status::OK();
  // Safe to read profiles_ unlocked: the write path (this thread) settled every batch in flight first, so no one
  // else changes it now (Apply from a helper runs only for a batch in flight).
  return WriteOut(profiles_, next_record_, /*frozen=*/false);
}

Status EventTail::Recover(
    const std::function<Status(std::string_view document, int64_t time_us, storage::Traits*)>& traits_of) {
  auto iter = store_->NewIterator(storage::Cf::kIndexLog);
  Changes changes;
  std::string document;
  for (iter->SeekToFirst(); iter->Valid(); iter->Next()) {
    if (iter->key().size() == 8) {
      next_record_ = std::max(next_record_, storage::DecodeBigEndian64(iter->key()) + 1);
    }
    if (iter->key().size() != 8) continue;  // not a record
    std::string_view in = iter->value();
    if (!in.empty() && in[0] == kCountedRecordTag) {
      if (in.size() < 1 + sizeof(int64_t)) return Status::DataLoss("a truncated index log record");
      int64_t count;
      std::memcpy(&count, in.data() + 1, sizeof(count));
      changes.new_events += count;
      in.remove_prefix(sizeof(count));  // the tag goes below
    } else if (in.empty() || in[0] != kRecordTag) {
      return Status::DataLoss(
          "the index log left by a crash was written by an unreleased development build of format 4; open it with "
          "that build once to recover it");
    }
    in.remove_prefix(1);
    std::string_view profile, time_key;
    while (ReadPart(&in, &profile) && ReadPart(&in, &time_key) && !in.empty()) {
      const bool counts = in[0] == '\1';
      in.remove_prefix(1);
      if (time_key.size() < 8) continue;
      const int64_t time_us = storage::TimeKeyTime(time_key);
      Status s = store_->Get(storage::Cf::kEventsByTime,
                             storage::TimeIndexKey(time_us, storage::TimeKeyEventId(time_key), profile), &document);
      if (s.IsNotFound()) continue;  // moved or deleted after it was logged
      CDP_RETURN_IF_ERROR(s);
      changes.Add(std::string(profile), std::string(time_key), counts);
      if (counts) CDP_RETURN_IF_ERROR(traits_of(document, time_us, &changes.deltas[std::string(profile)]));
    }
  }
  CDP_RETURN_IF_ERROR(iter->status());
  Apply(std::move(changes));
  return Status::OK();
}

int64_t EventTail::EventCount() const {
  std::shared_lock<std::shared_mutex> lock(mu_);  // no bulk load commits between the reads
  storage::Traits total;
  std::string value;
  if (store_->Get(storage::Cf::kTraits, kEventTotalKey, &value).ok()) storage::Traits::Decode(value, &total);
  return total.event_count + new_events_ + frozen_new_events_;
}

size_t EventTail::size() const {
  std::shared_lock<std::shared_mutex> lock(mu_);
  return entries_;
}

storage::Traits EventTail::Traits(std::string_view profile) const {
  const std::string id(profile);
  storage::Traits traits;
  std::shared_lock<std::shared_mutex> lock(mu_);  // no bulk load commits between the two reads
  std::string value;
  if (store_->Get(storage::Cf::kTraits, id, &value).ok()) storage::Traits::Decode(value, &traits);
  for (const Map* map : {&profiles_, frozen_.get()}) {
    if (map == nullptr) continue;
    auto it = map->find(id);
    if (it != map->end() && it->second.has_delta) traits.Combine(it->second.delta);
  }
  return traits;
}

std::vector<std::string> EventTail::TimeKeysLocked(const std::string& profile, std::string_view lower,
                                                   std::string_view upper) const {
  std::vector<std::string> out;
  int parts = 0;
  for (const Map* map : {&profiles_, frozen_.get()}) {
    if (map == nullptr) continue;
    auto it = map->find(profile);
    if (it == map->end()) continue;
    const auto& keys = it->second.time_keys;
    for (auto k = keys.lower_bound(std::string(lower)); k != keys.end() && (upper.empty() || *k < upper); ++k) {
      out.push_back(*k);
    }
    ++parts;
  }
  if (parts > 1) {  // in both parts: merge them
    std::sort(out.begin(), out.end());
    out.erase(std::unique(out.begin(), out.end()), out.end());
  }
  return out;
}

// ---- ProfileEvents ------------------------------------------------------------------------------------------------

ProfileEvents::ProfileEvents(const storage::Store& store, const EventTail& tail, std::string_view profile_id,
                             std::string_view lower, std::string_view upper, bool descending)
    : store_(store),
      profile_id_(profile_id),
      prefix_(storage::ProfileEventsPrefix(profile_id)),
      descending_(descending) {
  std::string lo = prefix_ + std::string(lower);
  std::string hi = upper.empty() ? storage::PrefixSuccessor(prefix_) : prefix_ + std::string(upper);
  {
    // The index and the tail at one moment: a bulk load does not commit between the two reads.
    std::shared_lock<std::shared_mutex> lock(tail.mu_);
    iter_ = store.NewIterator(storage::Cf::kEvents, std::move(lo), std::move(hi));
    tail_ = tail.TimeKeysLocked(profile_id_, lower, upper);
  }
  if (descending) {
    std::reverse(tail_.begin(), tail_.end());
    iter_->SeekToLast();
  } else {
    iter_->SeekToFirst();
  }
  Settle();
}

void ProfileEvents::Settle() {
  const bool stored = iter_->Valid();
  const bool tailed = tail_pos_ < tail_.size();
  valid_ = stored || tailed;
  if (!valid_) return;
  std::string_view s = stored ? iter_->key().substr(prefix_.size()) : std::string_view();
  if (stored && (!tailed || !Before(tail_[tail_pos_], s))) {
    current_.assign(s);
  } else {
    current_ = tail_[tail_pos_];
  }
}

bool ProfileEvents::Valid() const { return valid_; }

void ProfileEvents::Next() {
  // Advance every source sitting on the current key (an entry may be in both while the tail is being flushed).
  if (iter_->Valid() && iter_->key().substr(prefix_.size()) == current_) descending_ ? iter_->Prev() : iter_->Next();
  if (tail_pos_ < tail_.size() && tail_[tail_pos_] == current_) ++tail_pos_;
  Settle();
}

std::string_view ProfileEvents::time_key() const { return current_; }

int64_t ProfileEvents::time_us() const { return storage::TimeKeyTime(current_); }

Status ProfileEvents::Read(std::string* document) const {
  return store_.Get(
      storage::Cf::kEventsByTime,
      storage::TimeIndexKey(storage::TimeKeyTime(current_), storage::TimeKeyEventId(current_), profile_id_), document);
}

}  // namespace cdp::internal
