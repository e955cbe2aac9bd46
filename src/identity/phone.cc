// Copyright 2026 The libcdp Authors.
//
// The steps below follow libphonenumber 8.12's PhoneNumberUtil (ParseHelper, MaybeExtractCountryCode,
// MaybeStripNationalPrefixAndCarrierCode, TestNumberLength, GetRegionCodeForNumberFromRegionList,
// GetNumberTypeHelper); each function names the one it follows. Only the inputs PhoneShape accepts come here.

#include "identity/phone.h"

#include <phonenumbers/phonemetadata.pb.h>
#include <phonenumbers/phonenumberutil.h>
#include <re2/re2.h>

#include <algorithm>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <vector>

#include "absl/container/flat_hash_map.h"

namespace i18n::phonenumbers {
// In libphonenumber's private metadata.h (8.x, as in Debian 12): the serialized PhoneMetadataCollection
// PhoneNumberUtil loads. Later releases load it through GetMetadata() instead: this then fails to link.
int metadata_size();
const void* metadata_get();
}  // namespace i18n::phonenumbers

namespace cdp::internal {
namespace {

using i18n::phonenumbers::PhoneMetadata;
using i18n::phonenumbers::PhoneNumberDesc;
using i18n::phonenumbers::PhoneNumberUtil;

constexpr size_t kMinLengthForNsn = 2;   // PhoneNumberUtil::kMinLengthForNsn
constexpr size_t kMaxLengthForNsn = 17;  // PhoneNumberUtil::kMaxLengthForNsn
constexpr size_t kMaxLengthCountryCode = 3;
constexpr size_t kMaxInputBytes = 256;  // longer inputs go to libphonenumber (identifier values are shorter)

// Compiles `pattern` (empty: none). `ok` turns false when RE2 cannot compile it.
std::unique_ptr<RE2> Compile(const std::string& pattern, bool* ok) {
  if (pattern.empty()) return nullptr;
  RE2::Options options;
  options.set_log_errors(false);
  auto re = std::make_unique<RE2>(pattern, options);
  if (!re->ok()) *ok = false;
  return re;
}

// One number description (general, fixed line, mobile, ...) of a region.
struct Desc {
  std::vector<int> lengths;        // possible_length; empty: those of the general description
  std::vector<int> local_lengths;  // possible_length_local_only
  std::unique_ptr<RE2> pattern;    // national_number_pattern; null: matches nothing

  void Load(const PhoneNumberDesc& d, bool* ok) {
    lengths.assign(d.possible_length().begin(), d.possible_length().end());
    local_lengths.assign(d.possible_length_local_only().begin(), d.possible_length_local_only().end());
    pattern = Compile(d.national_number_pattern(), ok);
  }
  // IsMatch (RegexBasedMatcher::MatchNationalNumber without prefix matches): the pattern only.
  bool Matches(std::string_view number) const {
    return pattern != nullptr && RE2::FullMatch(re2::StringPiece(number.data(), number.size()), *pattern);
  }
  // PhoneNumberUtil::IsNumberMatchingDesc: the possible lengths, then the pattern.
  bool MatchesWithLength(std::string_view number) const {
    if (!lengths.empty() &&
        std::find(lengths.begin(), lengths.end(), static_cast<int>(number.size())) == lengths.end()) {
      return false;
    }
    return Matches(number);
  }
};

// A region's metadata with its patterns compiled.
struct Region {
  int country_code = 0;
  Desc general, premium_rate, toll_free, shared_cost, voip, personal_number, pager, uan, voicemail, fixed_line, mobile;
  bool same_mobile_and_fixed_line_pattern = false;
  std::unique_ptr<RE2> international_prefix;  // null: none
  std::unique_ptr<RE2> national_prefix;       // national_prefix_for_parsing; null: none
  std::string transform;                      // national_prefix_transform_rule, in RE2's \1 form
  std::unique_ptr<RE2> leading_digits;        // null: none
  bool ok = true;                             // every pattern compiled (else its numbers go to libphonenumber)

  explicit Region(const PhoneMetadata& m) {
    country_code = m.country_code();
    general.Load(m.general_desc(), &ok);
    premium_rate.Load(m.premium_rate(), &ok);
    toll_free.Load(m.toll_free(), &ok);
    shared_cost.Load(m.shared_cost(), &ok);
    voip.Load(m.voip(), &ok);
    personal_number.Load(m.personal_number(), &ok);
    pager.Load(m.pager(), &ok);
    uan.Load(m.uan(), &ok);
    voicemail.Load(m.voicemail(), &ok);
    fixed_line.Load(m.fixed_line(), &ok);
    mobile.Load(m.mobile(), &ok);
    same_mobile_and_fixed_line_pattern = m.same_mobile_and_fixed_line_pattern();
    international_prefix = Compile(m.international_prefix(), &ok);
    national_prefix = Compile(m.national_prefix_for_parsing(), &ok);
    if (m.has_leading_digits()) {
      leading_digits = Compile(m.leading_digits(), &ok);
      if (leading_digits == nullptr) ok = false;  // an empty pattern: not followed here
    }
    // ICU's "$1" group references become RE2's "\1"; anything else in a rule is not followed here.
    for (size_t i = 0; i < m.national_prefix_transform_rule().size(); ++i) {
      const char c = m.national_prefix_transform_rule()[i];
      if (c == '$' && i + 1 < m.national_prefix_transform_rule().size() &&
          m.national_prefix_transform_rule()[i + 1] >= '0' && m.national_prefix_transform_rule()[i + 1] <= '9') {
        transform += '\\';
      } else if (c < '0' || c > '9') {
        ok = false;
      } else {
        transform += c;
      }
    }
  }
};

// A region's metadata, compiled on first use.
struct Entry {
  const PhoneMetadata* metadata = nullptr;
  std::once_flag once;
  std::unique_ptr<Region> region;

  const Region* Get() {
    std::call_once(once, [this] { region = std::make_unique<Region>(*metadata); });
    return region.get();
  }
};

enum class Length { kPossible, kPossibleLocalOnly, kTooShort, kTooLong, kInvalidLength };

// libphonenumber's metadata, by region and by country calling code.
class Tables {
 public:
  static Tables& Get() {
    static Tables* tables = new Tables();  // never destroyed: used by threads that may outlive static destruction
    return *tables;
  }

  // Whether libphonenumber's metadata was read: if not, every number goes to libphonenumber.
  bool usable() const { return usable_; }
  // PhoneNumberUtil::GetMetadataForRegion: null for unknown regions (and for "001").
  Entry* ForRegion(std::string_view region) {
    auto it = by_region_.find(absl::string_view(region.data(), region.size()));
    return it == by_region_.end() ? nullptr : it->second.get();
  }
  // PhoneNumberUtil::GetMetadataForRegionOrCallingCode.
  Entry* ForRegionOrCallingCode(int country_code, std::string_view region) {
    if (region == "001") {
      auto it = non_geographical_.find(country_code);
      return it == non_geographical_.end() ? nullptr : it->second.get();
    }
    return ForRegion(region);
  }
  // PhoneNumberUtil::GetRegionCodesForCountryCallingCode (main region first); null for an unknown code.
  const std::vector<std::string>* RegionsOf(int country_code) const {
    auto it = regions_of_.find(country_code);
    return it == regions_of_.end() ? nullptr : &it->second;
  }

 private:
  Tables() {
    const bool parsed =
        collection_.ParseFromArray(i18n::phonenumbers::metadata_get(), i18n::phonenumbers::metadata_size());
    if (!parsed) return;  // usable_ stays false
    for (const PhoneMetadata& m : collection_.metadata()) {
      auto entry = std::make_unique<Entry>();
      entry->metadata = &m;
      if (m.id() == "001") {  // the first entry of an id stands, as in PhoneNumberUtil
        non_geographical_.emplace(m.country_code(), std::move(entry));
      } else {
        by_region_.emplace(m.id(), std::move(entry));
      }
    }
    const PhoneNumberUtil* util = PhoneNumberUtil::GetInstance();
    for (int code = 1; code <= 999; ++code) {
      std::list<std::string> regions;
      util->GetRegionCodesForCountryCallingCode(code, &regions);
      if (!regions.empty()) regions_of_[code].assign(regions.begin(), regions.end());
    }
    usable_ = !by_region_.empty();
  }

  bool usable_ = false;
  i18n::phonenumbers::PhoneMetadataCollection collection_;
  absl::flat_hash_map<std::string, std::unique_ptr<Entry>> by_region_;
  absl::flat_hash_map<int, std::unique_ptr<Entry>> non_geographical_;
  absl::flat_hash_map<int, std::vector<std::string>> regions_of_;
};

// Thrown nowhere: a step that meets what it does not follow sets `fallback`, and the caller asks libphonenumber.
struct Walk {
  Tables& tables = Tables::Get();
  bool fallback = false;

  const Region* Compiled(Entry* entry) {
    if (entry == nullptr) return nullptr;
    const Region* r = entry->Get();
    if (!r->ok) fallback = true;
    return r;
  }

  // TestNumberLength(number, metadata) for the general description (type UNKNOWN).
  static Length TestNumberLength(std::string_view number, const Region& r) {
    const std::vector<int>& lengths = r.general.lengths;
    if (lengths.empty() || lengths.front() == -1) return Length::kInvalidLength;
    const int n = static_cast<int>(number.size());
    if (std::find(r.general.local_lengths.begin(), r.general.local_lengths.end(), n) != r.general.local_lengths.end()) {
      return Length::kPossibleLocalOnly;
    }
    if (lengths.front() == n) return Length::kPossible;
    if (lengths.front() > n) return Length::kTooShort;
    if (lengths.back() < n) return Length::kTooLong;
    return std::find(lengths.begin() + 1, lengths.end(), n) != lengths.end() ? Length::kPossible
                                                                             : Length::kInvalidLength;
  }

  // MaybeStripNationalPrefixAndCarrierCode (the carrier code is not kept).
  static void StripNationalPrefix(const Region& r, std::string* number) {
    if (number->empty() || r.national_prefix == nullptr) return;
    const RE2& prefix = *r.national_prefix;
    const bool viable = r.general.Matches(*number);
    std::string carrier, captured;
    re2::StringPiece input(*number);
    if (!r.transform.empty() &&
        (RE2::Consume(&input, prefix, &carrier, &captured) || RE2::Consume(&input, prefix, &captured)) &&
        !captured.empty()) {
      std::string transformed = *number;
      RE2::Replace(&transformed, prefix, r.transform);
      if (viable && !r.general.Matches(transformed)) return;
      *number = std::move(transformed);
      return;
    }
    re2::StringPiece rest(*number);
    if (RE2::Consume(&rest, prefix, &carrier) || RE2::Consume(&rest, prefix)) {
      if (viable && !r.general.Matches(rest)) return;
      *number = std::string(rest);
    }
  }

  // ExtractCountryCode: the known country calling code `number` starts with (removed), or 0.
  int ExtractCountryCode(std::string* number) const {
    if (number->empty() || (*number)[0] == '0') return 0;
    for (size_t i = 1; i <= kMaxLengthCountryCode; ++i) {
      int code = 0;
      for (size_t k = 0; k < std::min(i, number->size()); ++k) code = code * 10 + ((*number)[k] - '0');
      if (tables.RegionsOf(code) != nullptr) {
        number->erase(0, std::min(i, number->size()));
        return code;
      }
    }
    return 0;
  }

  // GetNumberTypeHelper(number, r) != UNKNOWN: whether one of the types matches, so the types most numbers are
  // (fixed line, mobile) are tried first. libphonenumber's order (premium rate first, fixed line last) ran ten
  // patterns for a US number.
  static bool HasKnownType(std::string_view number, const Region& r) {
    if (!r.general.MatchesWithLength(number)) return false;
    if (r.fixed_line.MatchesWithLength(number)) return true;
    if (!r.same_mobile_and_fixed_line_pattern && r.mobile.MatchesWithLength(number)) return true;
    for (const Desc* d :
         {&r.premium_rate, &r.toll_free, &r.shared_cost, &r.voip, &r.personal_number, &r.pager, &r.uan, &r.voicemail}) {
      if (d->MatchesWithLength(number)) return true;
    }
    return false;
  }

  // IsValidNumber for the number +`code` `nsn` (GetRegionCodeForNumber, then IsValidNumberForRegion).
  bool IsValid(int code, std::string_view nsn) {
    const std::vector<std::string>* regions = tables.RegionsOf(code);
    if (regions == nullptr) return false;
    std::string_view region;
    if (regions->size() == 1) {
      region = regions->front();
    } else {
      for (const std::string& candidate : *regions) {  // GetRegionCodeForNumberFromRegionList
        const Region* r = Compiled(tables.ForRegion(candidate));
        if (r == nullptr || fallback) {
          fallback = true;
          return false;
        }
        if (r->leading_digits != nullptr) {
          re2::StringPiece input(nsn.data(), nsn.size());
          if (RE2::Consume(&input, *r->leading_digits)) {
            region = candidate;
            break;
          }
        } else if (HasKnownType(nsn, *r)) {
          region = candidate;
          break;
        }
      }
      if (region.empty()) return false;  // "ZZ": no metadata
    }
    const Region* r = Compiled(tables.ForRegionOrCallingCode(code, region));
    if (r == nullptr || (region != "001" && r->country_code != code)) return false;
    return HasKnownType(nsn, *r);
  }
};

bool IsSeparator(char c) { return c == ' ' || c == '-' || c == '.' || c == '(' || c == ')'; }

}  // namespace

std::optional<PhoneParse> ParsePhoneFast(std::string_view input, const std::string& region) {
  // The shape followed here: ASCII digits and separators, at most one '+', before every digit. Then
  // ExtractPossibleNumber starts at the '+' or first digit, the number is viable (three digits or more), no
  // extension pattern can match, and normalizing keeps the digits alone.
  if (input.size() > kMaxInputBytes) return std::nullopt;
  std::string digits;
  bool plus = false;
  for (char c : input) {
    if (c >= '0' && c <= '9') {
      digits += c;
    } else if (c == '+' && digits.empty() && !plus) {
      plus = true;
    } else if (!IsSeparator(c)) {
      return std::nullopt;
    }
  }
  // A '+' came before every digit and after separators only (anything else returned above): it starts the
  // possible number.
  if (digits.size() < 3) return std::nullopt;

  Walk walk;
  if (!walk.tables.usable()) return std::nullopt;
  PhoneParse out;
  Entry* default_entry = walk.tables.ForRegion(region);
  if (default_entry == nullptr && !plus) return out;  // CheckRegionForParsing: INVALID_COUNTRY_CODE_ERROR
  const Region* country = walk.Compiled(default_entry);
  if (walk.fallback) return std::nullopt;

  // MaybeExtractCountryCode.
  std::string national = std::move(digits);
  int code = 0;
  if (plus) {
    if (national.size() <= kMinLengthForNsn) return out;  // TOO_SHORT_AFTER_IDD
    code = walk.ExtractCountryCode(&national);
    if (code == 0) return std::nullopt;  // libphonenumber then retries without the '+'; not followed here
  } else {
    if (country->international_prefix == nullptr) return std::nullopt;
    re2::StringPiece rest(national);
    if (RE2::Consume(&rest, *country->international_prefix) && (rest.empty() || rest[0] != '0')) {
      national = std::string(rest);                         // FROM_NUMBER_WITH_IDD
      if (national.size() <= kMinLengthForNsn) return out;  // TOO_SHORT_AFTER_IDD
      code = walk.ExtractCountryCode(&national);
      if (code == 0) return out;  // INVALID_COUNTRY_CODE_ERROR (no '+' to retry without)
    } else {
      const std::string own = std::to_string(country->country_code);
      if (national.starts_with(own)) {
        std::string potential = national.substr(own.size());
        Walk::StripNationalPrefix(*country, &potential);
        if ((!country->general.Matches(national) && country->general.Matches(potential)) ||
            Walk::TestNumberLength(national, *country) == Length::kTooLong) {
          national = std::move(potential);
          code = country->country_code;
        }
      }
    }
  }

  // ParseHelper, after the country calling code.
  if (code != 0) {
    const std::vector<std::string>* regions = walk.tables.RegionsOf(code);
    const std::string& main = regions->front();  // GetRegionCodeForCountryCode
    if (main != region) country = walk.Compiled(walk.tables.ForRegionOrCallingCode(code, main));
  } else {
    code = country->country_code;
  }
  if (walk.fallback) return std::nullopt;
  if (national.size() < kMinLengthForNsn) return out;  // TOO_SHORT_NSN
  if (country != nullptr) {
    std::string potential = national;
    Walk::StripNationalPrefix(*country, &potential);
    const Length length = Walk::TestNumberLength(potential, *country);
    if (length != Length::kTooShort && length != Length::kPossibleLocalOnly && length != Length::kInvalidLength) {
      national = std::move(potential);
    }
  }
  if (national.size() < kMinLengthForNsn || national.size() > kMaxLengthForNsn) return out;  // TOO_SHORT/LONG_NSN

  // Format(E164): "+", the code and the national significant number, which is `national` itself (the leading
  // zeros libphonenumber keeps apart as italian_leading_zero and number_of_leading_zeros give it back whole).
  out.parsed = true;
  out.e164 = "+" + std::to_string(code) + national;
  out.valid = walk.IsValid(code, national);
  if (walk.fallback) return std::nullopt;
  return out;
}

PhoneParse ParsePhoneWithLibphonenumber(std::string_view input, const std::string& region) {
  const PhoneNumberUtil* util = PhoneNumberUtil::GetInstance();
  i18n::phonenumbers::PhoneNumber number;
  PhoneParse out;
  if (util->Parse(std::string(input), region.empty() ? "ZZ" : region, &number) != PhoneNumberUtil::NO_PARSING_ERROR) {
    return out;
  }
  out.parsed = true;
  util->Format(number, PhoneNumberUtil::E164, &out.e164);
  out.valid = util->IsValidNumber(number);
  return out;
}

PhoneParse ParsePhone(std::string_view input, const std::string& region) {
  if (std::optional<PhoneParse> fast = ParsePhoneFast(input, region); fast.has_value()) return *std::move(fast);
  return ParsePhoneWithLibphonenumber(input, region);
}

}  // namespace cdp::internal
