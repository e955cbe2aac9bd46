// Copyright 2026 The libcdp Authors.

#include "engine/audit_log.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "cdp/query.h"
#include "core/ids.h"
#include "core/json_internal.h"
#include "fmt/format.h"
#include "storage/keys.h"

namespace cdp::internal {

namespace {

constexpr std::string_view kHeadKey = "audit_head";
constexpr std::string_view kJournalDoneKey = "audit_journal_done";
constexpr std::string_view kIndexThroughKey = "audit_index_through";
constexpr std::string_view kJournalPrefix = "journal-";

std::string JoinTargets(const Json& targets) {
  std::string joined;
  for (const Json& t : targets.items()) {
    if (!joined.empty()) joined.push_back('\n');
    joined += t.as_string();
  }
  return joined;
}

// Appends `"targets":[...]` as Json::Dump writes it (journal lines, complete pending records).
void AppendTargets(const std::vector<std::string>& targets, std::string* out) {
  out->append("\"targets\":[");
  for (size_t i = 0; i < targets.size(); ++i) {
    if (i > 0) out->push_back(',');
    AppendJsonString(targets[i], out);
  }
  out->push_back(']');
}

// The fields contentHash covers, in a fixed order.
std::string Content(const Json& entry) {
  Json c = Json::Object();
  for (const char* key :
       {"seq", "at", "principal", "operation", "resource", "outcome", "count", "recovered", "targetsHash", "v"}) {
    if (const Json* v = entry.Find(key); v != nullptr) c.Set(key, *v);
  }
  return c.Dump();
}

// Entries written since the head and redactions carry MACs (kEntryVersion); older entries have no "v".
constexpr int64_t kEntryVersion = 2;
constexpr size_t kHashHex = 64;  // keyed_hash_'s output

bool IsVersioned(const Json& entry) {
  const Json* v = entry.Find("v");
  return v != nullptr && v->is_int() && v->as_int() >= kEntryVersion;
}

}  // namespace

std::string Hex(std::string_view bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out(bytes.size() * 2, '0');
  for (size_t i = 0; i < bytes.size(); ++i) {
    const auto b = static_cast<unsigned char>(bytes[i]);
    out[2 * i] = kDigits[b >> 4];
    out[2 * i + 1] = kDigits[b & 15];
  }
  return out;
}

const EVP_MD* Sha256() {  // fetched once: the implicit fetch of EVP_sha256() costs more than the hash
  static EVP_MD* md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  return md;
}

// OpenSSL's one-shot HMAC() sets up a context per call, which cost about as much as the rest of an audit entry;
// each thread keeps the SHA-256 states after the key's inner and outer pads, and a call copies them and hashes only
// the message.
std::string HmacSha256(const std::string& key, std::string_view message) {
  struct Pads {
    std::string key;
    EVP_MD_CTX* inner = EVP_MD_CTX_new();
    EVP_MD_CTX* outer = EVP_MD_CTX_new();
    EVP_MD_CTX* work = EVP_MD_CTX_new();
    ~Pads() {
      EVP_MD_CTX_free(inner);
      EVP_MD_CTX_free(outer);
      EVP_MD_CTX_free(work);
    }
    void Reset(const std::string& k) {
      constexpr size_t kBlock = 64;  // SHA-256's block size
      unsigned char block[kBlock] = {};
      if (k.size() > kBlock) {
        unsigned int len = 0;
        EVP_Digest(k.data(), k.size(), block, &len, Sha256(), nullptr);
      } else {
        std::memcpy(block, k.data(), k.size());
      }
      unsigned char ipad[kBlock], opad[kBlock];
      for (size_t i = 0; i < kBlock; ++i) {
        ipad[i] = block[i] ^ 0x36;
        opad[i] = block[i] ^ 0x5c;
      }
      EVP_DigestInit_ex(inner, Sha256(), nullptr);
      EVP_DigestUpdate(inner, ipad, kBlock);
      EVP_DigestInit_ex(outer, Sha256(), nullptr);
      EVP_DigestUpdate(outer, opad, kBlock);
      key = k;
    }
  };
  thread_local Pads pads;
  if (pads.key != key || pads.key.empty()) pads.Reset(key);
  unsigned char inner[EVP_MAX_MD_SIZE], out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_MD_CTX_copy_ex(pads.work, pads.inner);
  EVP_DigestUpdate(pads.work, message.data(), message.size());
  EVP_DigestFinal_ex(pads.work, inner, &len);
  EVP_MD_CTX_copy_ex(pads.work, pads.outer);
  EVP_DigestUpdate(pads.work, inner, len);
  EVP_DigestFinal_ex(pads.work, out, &len);
  return std::string(reinterpret_cast<const char*>(out), len);
}

std::string Sha256Hex(std::string_view data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), out, &len, Sha256(), nullptr);
  return Hex(std::string_view(reinterpret_cast<const char*>(out), len));
}

AuditLog::AuditLog(storage::Store* store, std::function<std::string(std::string_view)> keyed_hash)
    : store_(store),
      keyed_hash_(std::move(keyed_hash)),
      journal_dir_((std::filesystem::path(store->path()) / "cdp-audit").string()) {}

AuditLog::~AuditLog() {
  {
    std::lock_guard<std::mutex> lock(queue_mu_);
    stopping_ = true;
  }
  queue_cv_.notify_all();
  if (writer_.joinable()) writer_.join();  // Run writes what is queued before it ends
  if (journal_fd_ >= 0) {
    ::close(journal_fd_);
    if (!journal_used_) ::unlink(JournalPath(journal_generation_).c_str());  // else Load chains it
  }
  if (spare_fd_ >= 0) {
    ::close(spare_fd_);
    ::unlink(JournalPath(journal_generation_ + 1).c_str());
  }
}

std::string AuditLog::JournalPath(uint64_t generation) const {
  return fmt::format("{}/{}{:020}", journal_dir_, kJournalPrefix, generation);
}

int AuditLog::CreateJournal(uint64_t generation) const {
  return ::open(JournalPath(generation).c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
}

std::string_view AuditLog::Authentic(std::string_view domain, std::string_view text) const {
  const size_t tab = text.rfind('\t');
  if (tab == std::string_view::npos) return {};
  const std::string_view json = text.substr(0, tab);
  std::string message(domain);
  message.push_back('\n');
  message.append(json);
  if (keyed_hash_(message) != text.substr(tab + 1)) return {};
  return json;
}

std::string AuditLog::JournalLine(const Call& call) const {
  // Appended as text, in the order and escaping Json::Dump would give (a Json tree per call cost a tenth of a Track).
  std::string text;
  text.reserve(160 + call.principal.size() + call.operation.size() + call.resource.size() + 30 * call.targets.size());
  text.append("{\"principal\":");
  AppendJsonString(call.principal, &text);
  text.append(",\"operation\":");
  AppendJsonString(call.operation, &text);
  if (!call.resource.empty()) {
    text.append(",\"resource\":");
    AppendJsonString(call.resource, &text);
  }
  text.append(",\"outcome\":");
  AppendJsonString(call.outcome, &text);
  if (call.count > 0) fmt::format_to(std::back_inserter(text), ",\"count\":{}", call.count);
  fmt::format_to(std::back_inserter(text), ",\"at\":{}", call.at_us);
  if (!call.pending_key.empty()) {  // the change's pending record, which this line completes at recovery
    fmt::format_to(std::back_inserter(text), ",\"pending\":{}",
                   static_cast<int64_t>(storage::DecodeBigEndian64(std::string_view(call.pending_key).substr(1))));
  }
  text.push_back(',');
  AppendTargets(call.targets, &text);
  text.push_back('}');
  const std::string mac = keyed_hash_("journal\n" + text);
  text.push_back('\t');
  text.append(mac);
  text.push_back('\n');
  return text;
}

void AuditLog::JournalLocked(std::string_view text) {
  if (journal_fd_ < 0) {  // its creation failed: the writer tries again at its next group
    journal_errors_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  journal_used_ = true;
  for (size_t done = 0; done < text.size();) {
    const ssize_t n = ::write(journal_fd_, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {  // disk full, I/O error: no line follows a torn one; the writer moves on to its spare journal
      journal_errors_.fetch_add(1, std::memory_order_relaxed);
      ::close(journal_fd_);
      journal_fd_ = -1;
      return;
    }
    done += static_cast<size_t>(n);
  }
}

Status AuditLog::RecoverJournal(std::vector<Call>* recovered) {
  std::error_code ec;
  std::filesystem::create_directories(journal_dir_, ec);
  if (ec) return Status::Unavailable(fmt::format("cannot create {}: {}", journal_dir_, ec.message()));
  uint64_t done = 0;
  std::string done_value;
  Status ds = store_->Get(storage::Cf::kMeta, kJournalDoneKey, &done_value);
  if (ds.ok() && done_value.size() == 8) {
    done = storage::DecodeBigEndian64(done_value);
  } else if (!ds.IsNotFound()) {
    CDP_RETURN_IF_ERROR(ds);
    return Status::DataLoss("the audit journal's marker is corrupt");
  }
  std::map<uint64_t, std::string> files;  // by generation
  for (const auto& entry : std::filesystem::directory_iterator(journal_dir_, ec)) {
    const std::string name = entry.path().filename().string();
    uint64_t generation = 0;
    if (name.size() <= kJournalPrefix.size() || name.compare(0, kJournalPrefix.size(), kJournalPrefix) != 0) continue;
    const char* begin = name.data() + kJournalPrefix.size();
    const char* end = name.data() + name.size();
    if (auto [ptr, err] = std::from_chars(begin, end, generation); err != std::errc() || ptr != end) continue;
    files[generation] = entry.path().string();
  }
  if (ec) return Status::Unavailable(fmt::format("cannot list {}: {}", journal_dir_, ec.message()));
  // The pending records' calls by ticket: a change's journal line completes its record (targets, outcome, count).
  std::vector<Call>& calls = *recovered;
  absl::flat_hash_map<uint64_t, size_t> by_ticket;
  for (size_t i = 0; i < calls.size(); ++i) {
    by_ticket[storage::DecodeBigEndian64(std::string_view(calls[i].pending_key).substr(1))] = i;
  }
  uint64_t last = done;
  for (const auto& [generation, path] : files) {
    last = std::max(last, generation);
    if (generation <= done) continue;  // chained before the crash
    std::ifstream in(path, std::ios::binary);
    const std::string text =
        in ? std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()) : std::string();
    if (!in.is_open() || in.bad()) {  // kept for the next open: it may hold calls
      return Status::Unavailable(fmt::format("cannot read the audit journal {}", path));
    }
    for (size_t pos = 0; pos < text.size();) {
      size_t nl = text.find('\n', pos);
      if (nl == std::string::npos) break;  // a torn last line: its call never returned (or its write failed)
      const std::string_view json = Authentic("journal", std::string_view(text).substr(pos, nl - pos));
      pos = nl + 1;
      if (json.empty()) {  // forged, altered, damaged, or from before lines had MACs: not chained
        ++refused_;
        continue;
      }
      auto line = Json::Parse(json);
      auto text_of = [&](const char* key) -> const Json* {
        const Json* v = line.ok() ? line->Find(key) : nullptr;
        return v != nullptr && v->is_string() ? v : nullptr;
      };
      const Json* at = line.ok() ? line->Find("at") : nullptr;
      const Json* targets = line.ok() ? line->Find("targets") : nullptr;
      if (text_of("principal") == nullptr || text_of("operation") == nullptr || text_of("outcome") == nullptr ||
          at == nullptr || !at->is_int() || targets == nullptr || !targets->is_array()) {
        // A line a power loss or a failed write damaged: that call's entry is lost, not the rest.
        append_errors_.fetch_add(1, std::memory_order_relaxed);
        continue;
      }
      Call call;
      call.principal = text_of("principal")->as_string();
      call.operation = text_of("operation")->as_string();
      call.outcome = text_of("outcome")->as_string();
      if (const Json* r = text_of("resource"); r != nullptr) call.resource = r->as_string();
      if (const Json* c = line->Find("count"); c != nullptr && c->is_int()) call.count = c->as_int();
      call.at_us = at->as_int();
      for (const Json& t : targets->items()) {
        if (t.is_string() && !t.as_string().empty()) call.targets.push_back(t.as_string());
      }
      call.recovered = true;
      if (const Json* ticket = line->Find("pending"); ticket != nullptr && ticket->is_int()) {
        if (auto it = by_ticket.find(static_cast<uint64_t>(ticket->as_int())); it != by_ticket.end()) {
          call.pending_key = std::move(calls[it->second].pending_key);  // deleted with the entry
          calls[it->second] = std::move(call);
          by_ticket.erase(it);
          continue;
        }
      }
      calls.push_back(std::move(call));  // a read, a refusal, or a change whose write failed (no record stored)
    }
  }
  std::stable_sort(calls.begin(), calls.end(), [](const Call& a, const Call& b) { return a.at_us < b.at_us; });
  if (refused_ > 0) {  // said in the chain itself, after what was recovered
    Call refusal;
    refusal.principal = "local";
    refusal.operation = "audit.recoveryRefused";
    refusal.outcome = StatusCodeName(StatusCode::kDataLoss);
    refusal.count = refused_;
    refusal.at_us = NowMicros();
    refusal.refused_keys = std::move(refused_keys_);
    calls.push_back(std::move(refusal));
    refused_ = 0;
    refused_keys_.clear();
  }
  // A recovered call naming a profile that is gone named a person erased since (a call that raced the erasure, or
  // one whose entry the crash kept from being redacted): chained without them, marked redacted (ChainGroup).
  absl::flat_hash_set<std::string> checked;
  for (const Call& call : calls) {
    for (const std::string& t : call.targets) {
      if (!checked.insert(t).second) continue;
      std::string unused;
      Status s = store_->Get(storage::Cf::kProfiles, t, &unused);
      if (s.IsNotFound())
        erased_recently_[t] = NowMicros();
      else
        CDP_RETURN_IF_ERROR(s);
    }
  }
  if (!calls.empty() || last > done) {
    ChainGroup(&calls);
    CDP_RETURN_IF_ERROR(WriteHeld(last));
  }
  for (const auto& [generation, path] : files) std::filesystem::remove(path, ec);
  journal_generation_ = last + 1;
  journal_fd_ = CreateJournal(journal_generation_);
  if (journal_fd_ < 0) {
    return Status::Unavailable(
        fmt::format("cannot create the audit journal {}: {}", JournalPath(journal_generation_), std::strerror(errno)));
  }
  spare_fd_ = CreateJournal(journal_generation_ + 1);
  return Status::OK();
}

Status AuditLog::Load() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    std::string head;
    Status s = store_->Get(storage::Cf::kMeta, kHeadKey, &head);
    if (!s.IsNotFound()) {
      CDP_RETURN_IF_ERROR(s);
      if (head.size() != 8 + kHashHex && head.size() != 8 + 2 * kHashHex) {
        return Status::DataLoss("the audit log's head is corrupt");
      }
      next_seq_ = storage::DecodeBigEndian64(head) + 1;
      last_hash_ = head.substr(8, kHashHex);
    }
    CDP_RETURN_IF_ERROR(RebuildHeldIndex());
    std::vector<Call> calls;
    CDP_RETURN_IF_ERROR(RecoverPending(&calls));
    CDP_RETURN_IF_ERROR(RecoverJournal(&calls));
  }
  writer_ = std::thread([this] { Run(); });
  return Status::OK();
}

Status AuditLog::RebuildHeldIndex() {
  std::lock_guard<std::mutex> lock(index_mu_);
  std::string through;
  Status s = store_->Get(storage::Cf::kMeta, kIndexThroughKey, &through);
  // Without the marker (a new database; one whose held keys were never written out, whose marker only that first
  // write-out would have set; or one that stored every key with its entry), the keys of every entry are rebuilt and
  // written out at once, with the marker. (Before 2026-11-30, evening, a reopen took a missing marker to mean every
  // key was stored, and lost the held ones: a reopened database's target filter and erasure missed those entries.)
  const bool missing = s.IsNotFound();
  if (missing) {
    index_through_ = 0;
  } else {
    CDP_RETURN_IF_ERROR(s);
    if (through.size() != 8) return Status::DataLoss("the audit index marker is corrupt");
    index_through_ = storage::DecodeBigEndian64(through);
  }
  const std::string begin = storage::AuditKey(index_through_ + 1);
  const std::string prefix(storage::kAuditPrefix);
  auto iter = store_->NewIterator(storage::Cf::kPrivacy, begin, storage::PrefixSuccessor(prefix));
  std::string seq_bytes;
  for (iter->Seek(begin); iter->Valid(); iter->Next()) {
    const uint64_t seq = storage::DecodeBigEndian64(iter->key().substr(prefix.size()));
    auto entry = Json::Parse(iter->value());
    const Json* targets = entry.ok() ? entry->Find("targets") : nullptr;
    if (targets == nullptr || !targets->is_array())
      return Status::DataLoss(fmt::format("audit entry {} is corrupt", seq));
    seq_bytes.clear();
    storage::AppendBigEndian64(&seq_bytes, seq);
    for (const Json& t : targets->items()) {
      if (t.is_string()) held_index_.insert(storage::AuditTargetPrefix(t.as_string()) + seq_bytes);
    }
  }
  CDP_RETURN_IF_ERROR(iter->status());
  return missing ? WriteOutIndex() : Status::OK();
}

Status AuditLog::WriteOutIndex() {
  const uint64_t through = next_seq_ - 1;
  std::unique_ptr<storage::BulkLoad> load = store_->NewBulkLoad();
  if (!held_index_.empty()) {
    CDP_RETURN_IF_ERROR(load->StartRun(storage::Cf::kPrivacy, /*merge=*/false));
    for (const std::string& key : held_index_) CDP_RETURN_IF_ERROR(load->Add(key, {}));
  }
  std::string marker;
  storage::AppendBigEndian64(&marker, through);
  CDP_RETURN_IF_ERROR(load->StartRun(storage::Cf::kMeta, /*merge=*/false));
  CDP_RETURN_IF_ERROR(load->Add(kIndexThroughKey, marker));
  CDP_RETURN_IF_ERROR(load->Commit());
  held_index_.clear();
  index_through_ = through;
  return Status::OK();
}

size_t AuditLog::held_entries() const {
  std::lock_guard<std::mutex> lock(mu_);
  return held_.size();
}

void AuditLog::set_index_held_limit(size_t limit) {
  std::lock_guard<std::mutex> lock(index_mu_);
  index_held_limit_ = std::max<size_t>(limit, 1);
}

Status AuditLog::SeqsOf(const std::string& target, std::vector<uint64_t>* seqs, std::vector<std::string>* stored_keys) {
  const std::string prefix = storage::AuditTargetPrefix(target);
  auto iter = store_->NewIterator(storage::Cf::kPrivacy, prefix, storage::PrefixSuccessor(prefix));
  for (iter->Seek(prefix); iter->Valid(); iter->Next()) {
    seqs->push_back(storage::DecodeBigEndian64(iter->key().substr(prefix.size())));
    if (stored_keys != nullptr) stored_keys->emplace_back(iter->key());
  }
  CDP_RETURN_IF_ERROR(iter->status());
  for (auto it = held_index_.lower_bound(prefix); it != held_index_.end() && it->starts_with(prefix); ++it) {
    seqs->push_back(storage::DecodeBigEndian64(std::string_view(*it).substr(prefix.size())));
  }
  std::sort(seqs->begin(), seqs->end());
  seqs->erase(std::unique(seqs->begin(), seqs->end()), seqs->end());
  return Status::OK();
}

Status AuditLog::RecoverPending(std::vector<Call>* out) {
  const std::string prefix(storage::kAuditPendingPrefix);
  std::vector<Call>& calls = *out;
  uint64_t last_ticket = 0;
  auto iter = store_->NewIterator(storage::Cf::kPrivacy, prefix, storage::PrefixSuccessor(prefix));
  for (iter->Seek(prefix); iter->Valid(); iter->Next()) {
    if (iter->key().size() != prefix.size() + 8) return Status::DataLoss("a pending audit record's key is corrupt");
    last_ticket = storage::DecodeBigEndian64(iter->key().substr(prefix.size()));
    const std::string_view json = Authentic("pending\n" + std::string(iter->key()), iter->value());
    if (json.empty()) {  // forged, altered, or from before records had MACs: not chained, deleted with the refusal
      ++refused_;
      refused_keys_.emplace_back(iter->key());
      continue;
    }
    auto record = Json::Parse(json);
    const Json* principal = record.ok() ? record->Find("principal") : nullptr;
    const Json* operation = record.ok() ? record->Find("operation") : nullptr;
    const Json* at = record.ok() ? record->Find("at") : nullptr;
    if (principal == nullptr || !principal->is_string() || operation == nullptr || !operation->is_string() ||
        at == nullptr || !at->is_int()) {
      return Status::DataLoss(fmt::format("pending audit record {} is corrupt", last_ticket));
    }
    Call call;
    call.principal = principal->as_string();
    call.operation = operation->as_string();
    call.outcome = "ok";  // its write happened: the record is part of it
    call.at_us = at->as_int();
    // A complete record names what the call's entry names (AddPending with targets).
    if (const Json* targets = record->Find("targets"); targets != nullptr && targets->is_array()) {
      for (const Json& t : targets->items()) {
        if (t.is_string() && !t.as_string().empty()) call.targets.push_back(t.as_string());
      }
      if (const Json* c = record->Find("count"); c != nullptr && c->is_int()) call.count = c->as_int();
    }
    call.pending_key = std::string(iter->key());
    call.recovered = true;
    calls.push_back(std::move(call));
  }
  CDP_RETURN_IF_ERROR(iter->status());
  next_ticket_.store(std::max<uint64_t>(last_ticket + 1, static_cast<uint64_t>(NowMicros())));
  return Status::OK();
}

std::string AuditLog::AddPending(storage::WriteBatch* batch, std::string_view principal, std::string_view operation,
                                 const std::vector<std::string>* targets, int64_t count) {
  std::string key = storage::AuditPendingKey(next_ticket_.fetch_add(1));
  // As text, in the order and escaping Json::Dump gives (JournalLine).
  std::string value;
  value.reserve(96 + principal.size() + operation.size() + (targets != nullptr ? 30 * targets->size() : 0));
  value.append("{\"principal\":");
  AppendJsonString(principal, &value);
  value.append(",\"operation\":");
  AppendJsonString(operation, &value);
  fmt::format_to(std::back_inserter(value), ",\"at\":{}", NowMicros());
  if (targets != nullptr) {
    if (count > 0) fmt::format_to(std::back_inserter(value), ",\"count\":{}", count);
    value.push_back(',');
    AppendTargets(*targets, &value);
  }
  value.push_back('}');
  const std::string mac = keyed_hash_("pending\n" + key + "\n" + value);
  value.push_back('\t');
  value.append(mac);
  batch->Put(storage::Cf::kPrivacy, key, value);
  return key;
}

int64_t AuditLog::append_errors() const {
  return append_errors_.load(std::memory_order_relaxed) + journal_errors_.load(std::memory_order_relaxed);
}

Status AuditLog::Append(std::string_view principal, std::string_view operation, const std::vector<std::string>& targets,
                        const Status& outcome, int64_t count, bool read, std::string_view resource,
                        std::string pending_key, bool record_complete) {
  Call call;
  call.principal = std::string(principal);
  call.operation = std::string(operation);
  call.resource = std::string(resource);
  call.outcome = outcome.ok() ? std::string("ok") : std::string(StatusCodeName(outcome.code()));
  for (const std::string& t : targets) {
    if (!t.empty()) call.targets.push_back(t);
  }
  call.count = count;
  call.at_us = NowMicros();
  const bool durable = !pending_key.empty();
  call.pending_key = std::move(pending_key);
  record_complete = record_complete && durable && outcome.ok() && resource.empty();
  const std::string line = record_complete ? std::string() : JournalLine(call);
  std::unique_lock<std::mutex> lock(queue_mu_);
  if (!record_complete) JournalLocked(line);  // in queue order: the writer's swap takes the file's calls exactly
  queue_.push_back(std::move(call));
  ++enqueued_;
  if (read || durable) {  // a read, or a change whose pending record is already written: grouped
    if (queue_.size() >= kGroup) queue_cv_.notify_one();
    return Status::OK();
  }
  urgent_ = true;  // a change without a pending record: written at once, without making the caller wait for it
  queue_cv_.notify_one();
  return Status::OK();
}

Status AuditLog::Flush() {
  std::unique_lock<std::mutex> lock(queue_mu_);
  const uint64_t ticket = enqueued_;
  if (written_ >= ticket && !held_unwritten_) return Status::OK();
  const uint64_t round = write_rounds_;
  flush_ = true;
  queue_cv_.notify_one();
  done_cv_.wait(lock, [&] { return written_ >= ticket && write_rounds_ > round; });
  return last_status_;
}

void AuditLog::Run() {
  std::unique_lock<std::mutex> lock(queue_mu_);
  for (;;) {
    queue_cv_.wait_for(lock, std::chrono::milliseconds(kReadDelayMs),
                       [&] { return stopping_ || urgent_ || flush_ || queue_.size() >= kGroup; });
    // The held entries are written when a Flush or the destructor waits, when enough are held, and when the
    // journal is broken (its calls have only their pending records, or nothing, until their entries are written).
    // Within an erasure's window every group is written: its journal (lines of calls on the person that returned
    // after it) is deleted within kReadDelayMs, as are the calls' pending records.
    const bool write = flush_ || stopping_ || journal_fd_ < 0 || held_full_ ||
                       held_calls_ + queue_.size() >= kHeldCalls || !complete_records_allowed();
    if (queue_.empty() && !(write && held_calls_ > 0)) {
      if (stopping_) return;
      urgent_ = false;
      flush_ = false;  // nothing held or queued: a Flush's calls were all written
      continue;
    }
    std::vector<Call> calls;
    calls.swap(queue_);
    queue_.swap(spare_queue_);  // empty, with the capacity of an earlier group: appends neither move nor fault
    urgent_ = false;
    if (write) flush_ = false;
    const uint64_t through = enqueued_;
    // Before the held entries are written, the journal holding their calls' lines is swapped for the spare, created
    // beforehand: the file system's work stays out of the queue's lock, which every audited call takes.
    uint64_t retired = 0;
    int retired_fd = -1;
    if (write && (journal_used_ || journal_fd_ < 0)) {
      retired = journal_generation_;
      retired_fd = journal_fd_;
      journal_fd_ = spare_fd_;
      journal_generation_ = retired + 1;
      journal_used_ = false;
      spare_fd_ = -1;
    }
    lock.unlock();
    if (retired_fd >= 0) ::close(retired_fd);
    Status s;
    bool still_held = false;
    if (retired != 0) retired_journals_.push_back(retired);
    {
      std::lock_guard<std::mutex> chain(mu_);
      ChainGroup(&calls);
      if (write) s = WriteHeld(retired_journals_.empty() ? 0 : retired_journals_.back());
      held_calls_ = held_.size();
      held_full_ = held_bytes_ >= kHeldBytes;
      still_held = !s.ok() && !held_.empty();
    }
    // Before Flush returns: the journals whose calls' entries are written (and marked done) go.
    if (write && s.ok()) {
      for (uint64_t generation : retired_journals_) ::unlink(JournalPath(generation).c_str());
      retired_journals_.clear();
    }
    if (spare_fd_ < 0) spare_fd_ = CreateJournal(journal_generation_ + 1);  // only this thread changes the generation
    calls.clear();
    lock.lock();
    if (calls.capacity() <= kSpareQueueCapacity) spare_queue_.swap(calls);
    if (write) {
      written_ = through;
      last_status_ = s;
      held_unwritten_ = still_held;
      ++write_rounds_;
      done_cv_.notify_all();
    }
  }
}

void AuditLog::ChainGroup(std::vector<Call>* calls) {
  if (!erased_recently_.empty()) {
    const int64_t horizon = NowMicros() - kErasedWindowUs;
    std::vector<std::string> expired;
    for (const auto& [id, at] : erased_recently_) {
      if (at < horizon) expired.push_back(id);
    }
    for (const std::string& id : expired) erased_recently_.erase(id);
  }
  if (held_.empty()) {
    held_first_seq_ = next_seq_;
    held_first_hash_ = last_hash_;
  }
  for (Call& call : *calls) {
    const uint64_t seq = next_seq_;
    Json entry = Json::Object();
    entry.Set("seq", static_cast<int64_t>(seq));
    entry.Set("at", FormatTimestamp(call.at_us));
    entry.Set("principal", std::move(call.principal));
    entry.Set("operation", std::move(call.operation));
    if (!call.resource.empty()) entry.Set("resource", std::move(call.resource));
    entry.Set("outcome", std::move(call.outcome));
    if (call.count > 0) entry.Set("count", call.count);
    if (call.recovered) entry.Set("recovered", true);
    entry.Set("v", kEntryVersion);
    if (!call.pending_key.empty()) held_deletes_.push_back(std::move(call.pending_key));
    for (std::string& key : call.refused_keys) held_deletes_.push_back(std::move(key));
    Json list = Json::Array();
    for (const std::string& t : call.targets) list.Push(t);
    entry.Set("targetsHash", keyed_hash_(JoinTargets(list)));
    std::vector<std::string> named;
    for (std::string& t : call.targets) {
      // A call on a person that returned after their erasure redacted the log names everyone else.
      if (erased_recently_.empty() || !erased_recently_.contains(t)) named.push_back(std::move(t));
    }
    if (named.size() != list.size()) {
      list = Json::Array();
      for (const std::string& t : named) list.Push(t);
      entry.Set("redacted", true);  // as Redact marks an entry: not in its content hash, targetsHash kept
    }
    const std::string content_hash = Sha256Hex(Content(entry));
    const std::string hash = keyed_hash_("chain\n" + last_hash_ + content_hash);
    if (entry.Find("redacted") != nullptr) entry.Set("redactionMac", RedactionMac(seq, content_hash, list));
    entry.Set("targets", std::move(list));
    entry.Set("contentHash", content_hash);
    entry.Set("prev", last_hash_);
    entry.Set("hash", hash);
    held_.push_back({seq, entry.Dump(), std::move(named)});
    held_bytes_ += held_.back().value.size();
    next_seq_ = seq + 1;
    last_hash_ = hash;
  }
}

Status AuditLog::WriteHeld(uint64_t journal_done) {
  uint64_t sequence = 0;
  Status s = WriteHeldKeys(journal_done, &sequence);
  if (!s.ok()) {
    if (held_.size() < 4 * kHeldCalls && held_bytes_ < 4 * kHeldBytes) return s;  // held for the next write
    // Lost: the chain goes on from what was written.
    append_errors_.fetch_add(static_cast<int64_t>(held_.size()), std::memory_order_relaxed);
    if (!held_.empty()) {
      next_seq_ = held_first_seq_;
      last_hash_ = held_first_hash_;
    }
    held_.clear();
    held_deletes_.clear();
    held_bytes_ = 0;
    return s;
  }
  std::vector<std::string> index_keys;
  std::string seq_bytes;
  for (const HeldEntry& e : held_) {
    seq_bytes.clear();
    storage::AppendBigEndian64(&seq_bytes, e.seq);
    for (const std::string& t : e.targets) index_keys.push_back(storage::AuditTargetPrefix(t) + seq_bytes);
  }
  held_.clear();
  held_deletes_.clear();
  held_bytes_ = 0;
  {
    // Held whatever the sync says: the entries are written, and a write-out must not pass seqs whose keys it lacks.
    std::lock_guard<std::mutex> lock(index_mu_);
    for (std::string& key : index_keys) held_index_.insert(std::move(key));
    // A failed write-out keeps the keys held (Load would rebuild them anyway) and the next write tries again; it is
    // not the entries' failure.
    if (held_index_.size() >= index_held_limit_) (void)WriteOutIndex();
  }
  if (sequence != 0) CDP_RETURN_IF_ERROR(store_->SyncUpTo(sequence));
  return Status::OK();
}

bool AuditLog::complete_records_allowed() const {
  return NowMicros() >= erasure_until_us_.load(std::memory_order_relaxed);
}

Status AuditLog::WriteHeldKeys(uint64_t journal_done, uint64_t* sequence) {
  std::string head;
  if (!held_.empty()) {
    storage::AppendBigEndian64(&head, next_seq_ - 1);
    head += last_hash_ + HeadMac(next_seq_ - 1, last_hash_);
  }
  std::string generation;
  if (journal_done != 0) storage::AppendBigEndian64(&generation, journal_done);
  if (held_.size() < kBulkFrom) {
    storage::WriteBatch batch(*store_);
    for (const std::string& key : held_deletes_) batch.Delete(storage::Cf::kPrivacy, key);
    for (const HeldEntry& e : held_) batch.Put(storage::Cf::kPrivacy, storage::AuditKey(e.seq), e.value);
    if (!head.empty()) batch.Put(storage::Cf::kMeta, kHeadKey, head);
    if (!generation.empty()) batch.Put(storage::Cf::kMeta, kJournalDoneKey, generation);
    if (batch.Count() == 0) return Status::OK();
    CDP_ASSIGN_OR_RETURN(*sequence, store_->Write(&batch));
    return Status::OK();
  }
  // Keys in order within each run: the entries ("a" seq, ascending), then the pending records' deletions ("q"
  // ticket); in kMeta "audit_head" < "audit_journal_done". Durable once Commit returns (its files are synced).
  std::sort(held_deletes_.begin(), held_deletes_.end());
  held_deletes_.erase(std::unique(held_deletes_.begin(), held_deletes_.end()), held_deletes_.end());
  std::unique_ptr<storage::BulkLoad> load = store_->NewBulkLoad();
  CDP_RETURN_IF_ERROR(load->StartRun(storage::Cf::kPrivacy, /*merge=*/false));
  for (const HeldEntry& e : held_) CDP_RETURN_IF_ERROR(load->Add(storage::AuditKey(e.seq), e.value));
  for (const std::string& key : held_deletes_) CDP_RETURN_IF_ERROR(load->Delete(key));
  CDP_RETURN_IF_ERROR(load->StartRun(storage::Cf::kMeta, /*merge=*/false));
  CDP_RETURN_IF_ERROR(load->Add(kHeadKey, head));
  if (!generation.empty()) CDP_RETURN_IF_ERROR(load->Add(kJournalDoneKey, generation));
  // The memtables are flushed first, so that adding the files finds nothing in them to flush under stopped writes.
  CDP_RETURN_IF_ERROR(load->Stage());
  return load->Commit();
}

std::string AuditLog::RedactionMac(uint64_t seq, std::string_view content_hash, const Json& targets) const {
  return keyed_hash_(fmt::format("redacted\n{}\n{}\n{}", seq, content_hash, JoinTargets(targets)));
}

std::string AuditLog::HeadMac(uint64_t seq, std::string_view hash) const {
  return keyed_hash_(fmt::format("head\n{}\n{}", seq, hash));
}

Status AuditLog::RedactEntry(uint64_t seq, const std::vector<std::string>& targets, Json* entry) const {
  // Only the erased: the entry keeps naming the others it named (still found by their index keys).
  const Json* named = entry->Find("targets");
  const Json* content_hash = entry->Find("contentHash");
  if (named == nullptr || !named->is_array() || content_hash == nullptr || !content_hash->is_string()) {
    return Status::DataLoss(fmt::format("audit entry {} is corrupt", seq));
  }
  Json kept = Json::Array();
  for (const Json& t : named->items()) {
    if (t.is_string() && std::find(targets.begin(), targets.end(), t.as_string()) == targets.end()) kept.Push(t);
  }
  entry->Set("redacted", true);
  entry->Set("redactionMac", RedactionMac(seq, content_hash->as_string(), kept));
  entry->Set("targets", std::move(kept));
  return Status::OK();
}

Status AuditLog::Redact(storage::WriteBatch* batch, const std::vector<std::string>& targets, Redaction* undo) {
  if (redact_flushes_) CDP_RETURN_IF_ERROR(Flush());  // entries held back are found by the index too
  Redaction local;
  Redaction& changed = undo != nullptr ? *undo : local;
  changed.targets = targets;
  {
    std::lock_guard<std::mutex> lock(mu_);
    const int64_t now = NowMicros();
    for (const std::string& target : targets) {
      auto it = erased_recently_.find(target);
      changed.marks.emplace_back(target,
                                 it != erased_recently_.end() ? std::optional<int64_t>(it->second) : std::nullopt);
      erased_recently_[target] = now;
    }
    changed.erasure_until_us = erasure_until_us_.exchange(now + kErasedWindowUs, std::memory_order_relaxed);
    // Entries chained since the Flush are held, not written: redacted here, they are written redacted.
    auto named = [&](const std::string& t) { return std::find(targets.begin(), targets.end(), t) != targets.end(); };
    for (HeldEntry& held : held_) {
      if (std::none_of(held.targets.begin(), held.targets.end(), named)) continue;
      auto entry = Json::Parse(held.value);
      if (!entry.ok()) return Status::DataLoss(fmt::format("audit entry {} is corrupt", held.seq));
      CDP_RETURN_IF_ERROR(RedactEntry(held.seq, targets, &*entry));
      std::string redacted = entry->Dump();
      held_bytes_ = held_bytes_ - held.value.size() + redacted.size();
      changed.entries.push_back({held.seq, std::move(held.value), held.targets, redacted});
      held.value = std::move(redacted);
      held.targets.erase(std::remove_if(held.targets.begin(), held.targets.end(), named), held.targets.end());
    }
  }
  std::lock_guard<std::mutex> lock(index_mu_);  // no write-out between reading the keys and dropping the held ones
  for (const std::string& target : targets) {
    std::vector<uint64_t> seqs;
    std::vector<std::string> stored;
    CDP_RETURN_IF_ERROR(SeqsOf(target, &seqs, &stored));
    for (const std::string& key : stored) batch->Delete(storage::Cf::kPrivacy, key);
    const std::string prefix = storage::AuditTargetPrefix(target);
    const auto first = held_index_.lower_bound(prefix),
               last = held_index_.lower_bound(storage::PrefixSuccessor(prefix));
    changed.index_keys.insert(changed.index_keys.end(), first, last);
    held_index_.erase(first, last);
    for (uint64_t seq : seqs) {
      std::string value;
      Status s = store_->Get(storage::Cf::kPrivacy, storage::AuditKey(seq), &value);
      if (s.IsNotFound()) continue;
      CDP_RETURN_IF_ERROR(s);
      auto entry = Json::Parse(value);
      if (!entry.ok()) return Status::DataLoss(fmt::format("audit entry {} is corrupt", seq));
      CDP_RETURN_IF_ERROR(RedactEntry(seq, targets, &*entry));
      // Deleted first, so the erasure's purge compacts the old value away (Store::Purge follows deletions).
      batch->Delete(storage::Cf::kPrivacy, storage::AuditKey(seq));
      batch->Put(storage::Cf::kPrivacy, storage::AuditKey(seq), entry->Dump());
    }
  }
  return Status::OK();
}

void AuditLog::CancelRedaction(Redaction undo) {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& [target, before] : undo.marks) {
    if (before.has_value()) {
      erased_recently_[target] = *before;
    } else {
      erased_recently_.erase(target);
    }
  }
  if (undo.erasure_until_us.has_value()) erasure_until_us_.store(*undo.erasure_until_us, std::memory_order_relaxed);
  for (Redaction::Entry& before : undo.entries) {
    auto it = std::find_if(held_.begin(), held_.end(), [&](const HeldEntry& h) { return h.seq == before.seq; });
    if (it == held_.end() || it->value != before.redacted) continue;  // written meanwhile (or its seq reused)
    held_bytes_ = held_bytes_ - it->value.size() + before.value.size();
    it->value = std::move(before.value);
    it->targets = std::move(before.targets);
  }
  std::lock_guard<std::mutex> index_lock(index_mu_);  // after mu_, as in WriteHeld
  bool below_written_out = false;
  for (std::string& key : undo.index_keys) {
    below_written_out |= key.size() >= 8 && storage::DecodeBigEndian64(key.substr(key.size() - 8)) <= index_through_;
    held_index_.insert(std::move(key));
  }
  // Keys at or below index_through_ are not rebuilt at open: written out now (should that fail, they are held
  // until the next write-out, and a close before it loses them: the entries are then not found by target).
  if (below_written_out) (void)WriteOutIndex();
}

Result<Json> AuditLog::Verify() {
  CDP_RETURN_IF_ERROR(Flush());
  std::string head;
  uint64_t head_seq = 0;
  std::string head_hash;
  Status hs = store_->Get(storage::Cf::kMeta, kHeadKey, &head);
  std::string head_mac;  // absent from heads written before entries carried "v"
  if (hs.ok() && head.size() >= 8 + kHashHex) {
    head_seq = storage::DecodeBigEndian64(head);
    head_hash = head.substr(8, kHashHex);
    head_mac = head.substr(8 + kHashHex);
  } else if (!hs.IsNotFound()) {
    CDP_RETURN_IF_ERROR(hs);
  }
  bool last_versioned = false;
  Json out = Json::Object();
  auto broken = [&](uint64_t seq, std::string reason) {
    out.Set("ok", false);
    out.Set("brokenAt", static_cast<int64_t>(seq));
    out.Set("reason", std::move(reason));
    return out;
  };
  std::string prefix(storage::kAuditPrefix);
  auto iter = store_->NewIterator(storage::Cf::kPrivacy, prefix, storage::PrefixSuccessor(prefix));
  uint64_t expected = 1;
  std::string prev;
  int64_t redacted = 0;
  for (iter->Seek(prefix); iter->Valid(); iter->Next(), ++expected) {
    const uint64_t seq = storage::DecodeBigEndian64(iter->key().substr(prefix.size()));
    if (seq != expected) {
      return broken(expected, seq > expected ? fmt::format("entry {} is missing", expected)
                                             : fmt::format("entry {} appears twice", seq));
    }
    auto entry = Json::Parse(iter->value());
    if (!entry.ok()) return broken(seq, "the entry is not valid JSON");
    auto text = [&](const char* key) {
      const Json* v = entry->Find(key);
      return v != nullptr && v->is_string() ? v->as_string() : std::string();
    };
    const Json* stated_seq = entry->Find("seq");
    if (stated_seq == nullptr || !stated_seq->is_int() || static_cast<uint64_t>(stated_seq->as_int()) != seq) {
      return broken(seq, "the entry's seq does not match its place (moved or reordered)");
    }
    if (text("prev") != prev) return broken(seq, "the entry does not follow the one before (inserted or reordered)");
    const Json* redacted_flag = entry->Find("redacted");
    const bool is_redacted = redacted_flag != nullptr && redacted_flag->is_bool() && redacted_flag->as_bool();
    redacted += is_redacted;
    const Json* targets = entry->Find("targets");
    if (targets == nullptr || !targets->is_array()) return broken(seq, "the entry has no targets list");
    if (!is_redacted && keyed_hash_(JoinTargets(*targets)) != text("targetsHash")) {
      return broken(seq, "the entry's targets were altered");
    }
    // A redaction is the log's own (its MAC, over the targets left), except on entries older than the MACs.
    last_versioned = IsVersioned(*entry);
    if (is_redacted && (last_versioned || entry->Find("redactionMac") != nullptr) &&
        RedactionMac(seq, text("contentHash"), *targets) != text("redactionMac")) {
      return broken(seq, "the entry's redaction was forged (its targets were altered)");
    }
    if (Sha256Hex(Content(*entry)) != text("contentHash")) return broken(seq, "the entry was altered");
    if (keyed_hash_("chain\n" + prev + text("contentHash")) != text("hash")) {
      return broken(seq, "the entry's hash was altered");
    }
    prev = text("hash");
  }
  CDP_RETURN_IF_ERROR(iter->status());
  const uint64_t last = expected - 1;
  if (last != head_seq || prev != head_hash) {
    return broken(last + 1, last < head_seq ? fmt::format("entries after {} were removed", last)
                                            : "the log does not end where its head says");
  }
  // A log whose entries and head are all gone still has the marker its writer keeps with every group.
  if (last == 0 && hs.IsNotFound()) {
    std::string unused;
    Status marker = store_->Get(storage::Cf::kMeta, kJournalDoneKey, &unused);
    if (marker.ok()) return broken(1, "the log and its head were removed");
    if (!marker.IsNotFound()) return marker;
  }
  // The head names the last entry under a MAC: the log cannot be cut short by rewriting it from an entry's values.
  if (last > 0 && (last_versioned || !head_mac.empty()) && head_mac != HeadMac(last, head_hash)) {
    return broken(last + 1, "the log's head was rewritten (entries after the one it names may have been removed)");
  }
  out.Set("ok", true);
  out.Set("entries", static_cast<int64_t>(last));
  out.Set("redacted", redacted);
  out.Set("head", prev);
  return out;
}

Result<Json> AuditLog::List(const Json& filter) {
  CDP_RETURN_IF_ERROR(Flush());
  if (!filter.is_null() && !filter.is_object()) return Status::InvalidArgument("expected an object of filters");
  std::string principal, operation, target, resource;
  int64_t limit = 100, before = 0, since = 0, until = 0;
  if (filter.is_object()) {
    for (const auto& [key, value] : filter.members()) {
      if (value.is_null()) continue;
      if (key == "limit" || key == "cursor") {
        if (!value.is_int() || value.as_int() < 1 || (key == "limit" && value.as_int() > 1000)) {
          return Status::InvalidArgument(
              key == "limit" ? "expected an integer from 1 to 1000" : "expected a positive integer (a seq)", key);
        }
        (key == "limit" ? limit : before) = value.as_int();
      } else if (key == "since" || key == "until") {
        auto t = ParseTimestamp(value);
        if (!t.ok()) return Status::InvalidArgument(t.status().message(), key);
        (key == "since" ? since : until) = *t;
      } else if (key == "principal" || key == "operation" || key == "target" || key == "resource") {
        if (!value.is_string() || value.as_string().empty() || value.as_string().size() > 256) {
          return Status::InvalidArgument("expected a string of 1 to 256 bytes", key);
        }
        (key == "principal"   ? principal
         : key == "operation" ? operation
         : key == "target"    ? target
                              : resource) = value.as_string();
      } else {
        return Status::InvalidArgument(
            "unknown filter (expected principal, operation, target, resource, since, until, limit, cursor)", key);
      }
    }
  }
  // Candidates newest first: a target's entries from its index, else every entry.
  std::vector<uint64_t> seqs;
  if (!target.empty()) {
    std::lock_guard<std::mutex> lock(index_mu_);
    CDP_RETURN_IF_ERROR(SeqsOf(target, &seqs, nullptr));
    std::reverse(seqs.begin(), seqs.end());
  }
  Json items = Json::Array();
  int64_t next = 0;
  auto consider = [&](uint64_t seq, std::string_view value) -> Status {
    if (before != 0 && seq >= static_cast<uint64_t>(before)) return Status::OK();
    auto entry = Json::Parse(value);
    if (!entry.ok()) return Status::DataLoss(fmt::format("audit entry {} is corrupt", seq));
    auto text = [&](const char* key) {
      const Json* v = entry->Find(key);
      return v != nullptr && v->is_string() ? v->as_string() : std::string();
    };
    if ((!principal.empty() && text("principal") != principal) ||
        (!operation.empty() && text("operation") != operation) || (!resource.empty() && text("resource") != resource)) {
      return Status::OK();
    }
    if (since != 0 || until != 0) {
      auto at = ParseTimestamp(text("at"));
      if (!at.ok() || (since != 0 && *at < since) || (until != 0 && *at >= until)) return Status::OK();
    }
    if (static_cast<int64_t>(items.size()) < limit) {
      items.Push(std::move(entry).value());
    } else if (next == 0) {
      next = items.items().back().Find("seq")->as_int();
    }
    return Status::OK();
  };
  if (!target.empty()) {
    for (uint64_t seq : seqs) {
      if (next != 0) break;
      std::string value;
      Status s = store_->Get(storage::Cf::kPrivacy, storage::AuditKey(seq), &value);
      if (s.IsNotFound()) continue;
      CDP_RETURN_IF_ERROR(s);
      CDP_RETURN_IF_ERROR(consider(seq, value));
    }
  } else {
    std::string prefix(storage::kAuditPrefix);
    auto iter = store_->NewIterator(storage::Cf::kPrivacy, prefix, storage::PrefixSuccessor(prefix));
    for (iter->SeekToLast(); iter->Valid() && next == 0; iter->Prev()) {
      CDP_RETURN_IF_ERROR(consider(storage::DecodeBigEndian64(iter->key().substr(prefix.size())), iter->value()));
    }
    CDP_RETURN_IF_ERROR(iter->status());
  }
  Json out = Json::Object();
  out.Set("items", std::move(items));
  out.Set("nextCursor", next != 0 ? Json(next) : Json());
  return out;
}

}  // namespace cdp::internal
