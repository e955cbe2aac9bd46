// Copyright 2026 The libcdp Authors.
//
// Key codecs for the column families of storage/store.h. Integers are big-endian so that byte order is numeric
// order; event times are microseconds since the epoch (always >= 0).

#ifndef CDP_STORAGE_KEYS_H_
#define CDP_STORAGE_KEYS_H_

#include <cstdint>
#include <string>
#include <string_view>

namespace cdp::storage {

inline void AppendBigEndian64(std::string* out, uint64_t v) {
  char buf[8];
  for (int i = 7; i >= 0; --i) {
    buf[i] = static_cast<char>(v & 0xff);
    v >>= 8;
  }
  out->append(buf, 8);
}

inline uint64_t DecodeBigEndian64(std::string_view s) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | static_cast<unsigned char>(s[i]);
  return v;
}

// kEvents: profile id \0 be64(time) event id. Ids never contain \0.
inline std::string ProfileEventsPrefix(std::string_view profile_id) {
  std::string k;
  k.reserve(profile_id.size() + 1);
  k.append(profile_id);
  k.push_back('\0');
  return k;
}
inline std::string TimeKey(int64_t time_us, std::string_view event_id) {
  std::string k;
  k.reserve(8 + event_id.size());
  AppendBigEndian64(&k, static_cast<uint64_t>(time_us));
  k.append(event_id);
  return k;
}
inline std::string EventKey(std::string_view profile_id, int64_t time_us, std::string_view event_id) {
  std::string k;  // one allocation (the appends would grow it twice)
  k.reserve(profile_id.size() + 9 + event_id.size());
  k.append(profile_id);
  k.push_back('\0');
  AppendBigEndian64(&k, static_cast<uint64_t>(time_us));
  k.append(event_id);
  return k;
}
// kEventsByTime: be64(time) event id \0 profile id (empty value). The profile id is part of the key because two
// profiles may hold events with the same id and time.
inline std::string TimeIndexKey(int64_t time_us, std::string_view event_id, std::string_view profile_id) {
  std::string k;
  k.reserve(9 + event_id.size() + profile_id.size());
  AppendBigEndian64(&k, static_cast<uint64_t>(time_us));
  k.append(event_id);
  k.push_back('\0');
  k.append(profile_id);
  return k;
}
// Splits a kEventsByTime key into the time key (time and event id) and the profile id.
inline std::string_view TimeIndexTimeKey(std::string_view key) { return key.substr(0, key.find('\0', 8)); }
inline std::string_view TimeIndexProfile(std::string_view key) {
  size_t nul = key.find('\0', 8);
  return nul == std::string_view::npos ? std::string_view() : key.substr(nul + 1);
}

// Splits the part of an event key after the profile prefix ("time key") into time and event id.
inline int64_t TimeKeyTime(std::string_view time_key) { return static_cast<int64_t>(DecodeBigEndian64(time_key)); }
inline std::string_view TimeKeyEventId(std::string_view time_key) { return time_key.substr(8); }

// kIdentities: type \0 normalized value.
inline std::string IdentityKey(std::string_view type, std::string_view value) {
  std::string k;
  k.reserve(type.size() + 1 + value.size());
  k.append(type);
  k.push_back('\0');
  k.append(value);
  return k;
}

// kIdentities value: the owning profile, the evidence of the link ("event evt_..", "profiles.create",
// "merge mrg_..") and the time of the link (decimal microseconds), separated by \0.
struct IdentityLink {
  std::string profile_id;
  std::string evidence;
  int64_t at_us = 0;
};
inline std::string EncodeIdentityLink(std::string_view profile_id, std::string_view evidence, int64_t at_us) {
  std::string v(profile_id);
  v.push_back('\0');
  v.append(evidence);
  v.push_back('\0');
  v.append(std::to_string(at_us));
  return v;
}
inline IdentityLink DecodeIdentityLink(std::string_view v) {
  IdentityLink link;
  size_t a = v.find('\0');
  link.profile_id = std::string(v.substr(0, a));
  if (a == std::string_view::npos) return link;
  size_t b = v.find('\0', a + 1);
  link.evidence = std::string(v.substr(a + 1, b == std::string_view::npos ? std::string_view::npos : b - a - 1));
  if (b != std::string_view::npos) {
    for (char c : v.substr(b + 1)) {
      if (c >= '0' && c <= '9') link.at_us = link.at_us * 10 + (c - '0');
    }
  }
  return link;
}
// The hub set of an identifier (8-byte hashes of the distinct high-priority values seen with it) lives at \x01 +
// its identity key; types are [A-Za-z0-9_] so the two key spaces do not meet.
inline std::string HubKey(std::string_view identity_key) { return "\x01" + std::string(identity_key); }

// kMerges: the merge record, and one history entry per profile involved.
inline std::string MergeRecordKey(std::string_view merge_id) { return "r" + std::string(merge_id); }
inline std::string ProfileMergesPrefix(std::string_view profile_id) {
  std::string k = "p" + std::string(profile_id);
  k.push_back('\0');
  return k;
}
inline std::string ProfileMergeKey(std::string_view profile_id, std::string_view merge_id) {
  return ProfileMergesPrefix(profile_id) + std::string(merge_id);
}

// kMerges also holds fuzzy-match proposals: "x" proposal id -> proposal (JSON); "y" a \0 b -> proposal id (a < b,
// one proposal per pair); "z" profile id \0 proposal id -> empty (a profile's proposals, for erasure).
inline std::string ProposalKey(std::string_view proposal_id) { return "x" + std::string(proposal_id); }
inline std::string ProposalPairKey(std::string_view a, std::string_view b) {
  std::string k = "y" + std::string(a < b ? a : b);
  k.push_back('\0');
  k.append(a < b ? b : a);
  return k;
}
inline std::string ProfileProposalsPrefix(std::string_view profile_id) {
  std::string k = "z" + std::string(profile_id);
  k.push_back('\0');
  return k;
}

// kMerges also holds the blocking index of fuzzy matching on write (engine/matching_impl.cc): "b" rule \0 key \0
// profile id -> empty, one entry per blocking rule a profile has a key for (keys are length-prefixed parts, so the
// \0 after one is unambiguous); "c" profile id -> that profile's entries and the fingerprint of its matched values.
inline std::string BlockPrefix(size_t rule, std::string_view key) {
  std::string k = "b";
  k.push_back(static_cast<char>(rule));
  k.append(key);
  k.push_back('\0');
  return k;
}
inline std::string ProfileBlocksKey(std::string_view profile_id) { return "c" + std::string(profile_id); }
inline constexpr char kBlockIndexBegin[] = "b";
inline constexpr char kBlockIndexEnd[] = "d";  // exclusive: "b" and "c" keys

// kMeta, suppression lists (src/engine/audiences_impl.h): "supp/" id -> definition; "suppitem/" id "/" identity
// key -> "": an item; "suppitem/" id "/#" hex -> "": the item of an erased person's identifier, kept as a keyed
// hash (EngineImpl::SuppressionItemHash) so that no list holds their value; Gdpr::Unsuppress restores it.
inline constexpr std::string_view kSuppressionListPrefix = "supp/";
inline std::string SuppressionItemPrefix(std::string_view list) { return "suppitem/" + std::string(list) + "/"; }
inline constexpr char kHashedItemMark = '#';  // never the first byte of an identity key (a type name)

// kMeta, segments (src/engine/segments_impl.h): "seg/" id -> definition; "segfeed/" id "/" be64(time us)
// be64(sequence) -> a membership change; "segman/" id "/" profile id -> "" (manual segments). Segment ids never
// contain '/'.
inline std::string SegmentKey(std::string_view id) { return "seg/" + std::string(id); }
// "segman/" id "/" profile id -> "": the members of a manual segment.
inline std::string ManualMemberPrefix(std::string_view id) { return "segman/" + std::string(id) + "/"; }
inline std::string SegmentFeedPrefix(std::string_view id) { return "segfeed/" + std::string(id) + "/"; }
inline std::string SegmentFeedKey(std::string_view id, int64_t time_us, uint64_t sequence) {
  std::string k = SegmentFeedPrefix(id);
  AppendBigEndian64(&k, static_cast<uint64_t>(time_us));
  AppendBigEndian64(&k, sequence);
  return k;
}
// "segfeedp/" profile id "/" feed key -> "": the feed entries naming a profile, which its erasure deletes.
inline constexpr std::string_view kSegmentFeedByProfileTag = "segfeedp/";
inline std::string SegmentFeedByProfilePrefix(std::string_view profile_id) {
  return std::string(kSegmentFeedByProfileTag) + std::string(profile_id) + "/";
}

// Cf::kPrivacy: "h" profile id \0 be64(recorded µs) record id -> a consent history record (recording times are
// strictly increasing, so a profile's records sort in the order they were recorded); "d" profile id -> "": the
// profile's consent denies tracking (read at open into the engine's set of such profiles).
inline std::string ConsentHistoryPrefix(std::string_view profile_id) {
  std::string k = "h" + std::string(profile_id);
  k.push_back('\0');
  return k;
}
inline std::string ConsentHistoryKey(std::string_view profile_id, int64_t recorded_us, std::string_view record_id) {
  std::string k = ConsentHistoryPrefix(profile_id);
  AppendBigEndian64(&k, static_cast<uint64_t>(recorded_us));
  k.append(record_id);
  return k;
}
inline constexpr std::string_view kTrackingDeniedPrefix = "d";
inline std::string TrackingDeniedKey(std::string_view profile_id) { return "d" + std::string(profile_id); }
// Cf::kPrivacy: "s" hash -> be64(erasure µs): an erased identifier (a keyed hash of its identity key, never the
// value; engine/gdpr_impl.cc). "r" request id -> a privacy request record (JSON; ids are "gdpr_" ULIDs).
inline constexpr std::string_view kSuppressedPrefix = "s";
inline std::string SuppressedKey(std::string_view hash) { return "s" + std::string(hash); }
// "a" be64(seq) -> an audit entry; "t" target \0 be64(seq) -> "": the entries naming a target (engine/audit_log.h).
inline constexpr std::string_view kAuditPrefix = "a";
inline std::string AuditKey(uint64_t seq) {
  std::string k(kAuditPrefix);
  AppendBigEndian64(&k, seq);
  return k;
}
// "q" be64(ticket) -> {"principal","operation","at"[,"count","targets"]}: the pending record of a change call's audit
// entry, written with the call's first write and deleted with the write of its entry (engine/audit_log.h).
inline constexpr std::string_view kAuditPendingPrefix = "q";
inline std::string AuditPendingKey(uint64_t ticket) {
  std::string k(kAuditPendingPrefix);
  AppendBigEndian64(&k, ticket);
  return k;
}
inline std::string AuditTargetPrefix(std::string_view target) {
  std::string k = "t" + std::string(target);
  k.push_back('\0');
  return k;
}
// "gpolicy" -> the governance policy as stored (JSON); "k" key id -> an API key record; "gkeysissued" -> "": a key
// was issued once (engine/governance_impl.h). "gretention" -> the retention policies; "x" run id -> a retention run
// record (engine/retention_impl.h).
inline constexpr std::string_view kGovernancePolicyKey = "gpolicy";
inline constexpr std::string_view kApiKeyPrefix = "k";
inline std::string ApiKeyKey(std::string_view key_id) { return "k" + std::string(key_id); }
inline constexpr std::string_view kRequestPrefix = "r";
inline std::string RequestKey(std::string_view request_id) { return "r" + std::string(request_id); }

// Cf::kKeys: idempotency key (Events::RememberKey, cdp::IdempotencyKey; never starting with \x01) ->
// be64(expiry µs) value; and for each whose value names a profile ("profileId"), "\x01" profile id "\0" key ->
// be64(expiry µs), so that erasing the profile finds it (the expiry filter drops both alike).
inline constexpr char kRememberedTag = '\x01';
inline std::string RememberedByProfilePrefix(std::string_view profile_id) {
  std::string k(1, kRememberedTag);
  k.append(profile_id);
  k.push_back('\0');
  return k;
}

// The smallest key greater than every key starting with `prefix` (for exclusive upper bounds).
inline std::string PrefixSuccessor(std::string prefix) {
  while (!prefix.empty()) {
    unsigned char c = static_cast<unsigned char>(prefix.back());
    if (c != 0xff) {
      prefix.back() = static_cast<char>(c + 1);
      return prefix;
    }
    prefix.pop_back();
  }
  return prefix;  // empty: no upper bound
}

}  // namespace cdp::storage

#endif  // CDP_STORAGE_KEYS_H_
