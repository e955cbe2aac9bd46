// Copyright 2026 The libcdp Authors.
//
// The lock-free phone path (identity/phone.h) against libphonenumber itself: every example number of every region
// and non-geographical entity, written several ways, altered digit by digit, parsed with several default regions.

#include "identity/phone.h"

#include <gtest/gtest.h>
#include <phonenumbers/phonenumberutil.h>

#include <set>
#include <string>
#include <vector>

namespace cdp::internal {
namespace {

using i18n::phonenumbers::PhoneNumber;
using i18n::phonenumbers::PhoneNumberUtil;

// Ways of writing `number` a person or a form might use.
std::vector<std::string> Writings(const PhoneNumber& number) {
  const PhoneNumberUtil* util = PhoneNumberUtil::GetInstance();
  std::vector<std::string> out;
  for (auto format : {PhoneNumberUtil::E164, PhoneNumberUtil::INTERNATIONAL, PhoneNumberUtil::NATIONAL}) {
    std::string s;
    util->Format(number, format, &s);
    out.push_back(s);
  }
  std::string nsn;
  util->GetNationalSignificantNumber(number, &nsn);
  const std::string code = std::to_string(number.country_code());
  out.push_back(nsn);                       // national significant number alone
  out.push_back(code + nsn);                // the country code without '+'
  out.push_back("011" + code + nsn);        // with the US international prefix
  out.push_back("00" + code + " " + nsn);   // with the common international prefix
  out.push_back("0" + nsn);                 // with a trunk prefix
  out.push_back("(+" + code + ") " + nsn);  // a '+' after a separator
  // Altered: a digit changed at three places, one dropped, one added.
  const std::string e164 = out[0];
  for (size_t at : {e164.size() - 1, e164.size() / 2, size_t{2}}) {
    if (at <= 1 || at >= e164.size()) continue;
    std::string changed = e164;
    changed[at] = static_cast<char>('0' + (changed[at] - '0' + 3) % 10);
    out.push_back(changed);
  }
  out.push_back(e164.substr(0, e164.size() - 1));
  out.push_back(e164 + "7");
  return out;
}

std::string Describe(const PhoneParse& p) {
  return p.parsed ? p.e164 + (p.valid ? " valid" : " invalid") : "not parsed";
}

TEST(PhoneTest, TheFastPathAgreesWithLibphonenumberOnEveryRegionsExamples) {
  const PhoneNumberUtil* util = PhoneNumberUtil::GetInstance();
  std::set<std::string> regions;
  util->GetSupportedRegions(&regions);
  ASSERT_GT(regions.size(), 200u);
  std::vector<PhoneNumber> examples;
  const PhoneNumberUtil::PhoneNumberType types[] = {
      PhoneNumberUtil::FIXED_LINE,      PhoneNumberUtil::MOBILE,      PhoneNumberUtil::TOLL_FREE,
      PhoneNumberUtil::PREMIUM_RATE,    PhoneNumberUtil::SHARED_COST, PhoneNumberUtil::VOIP,
      PhoneNumberUtil::PERSONAL_NUMBER, PhoneNumberUtil::PAGER,       PhoneNumberUtil::UAN,
      PhoneNumberUtil::VOICEMAIL};
  for (const std::string& region : regions) {
    for (auto type : types) {
      PhoneNumber n;
      if (util->GetExampleNumberForType(region, type, &n)) examples.push_back(n);
    }
    PhoneNumber invalid;
    if (util->GetInvalidExampleNumber(region, &invalid)) examples.push_back(invalid);
  }
  std::set<int> non_geographical;
  util->GetSupportedGlobalNetworkCallingCodes(&non_geographical);
  for (int code : non_geographical) {
    PhoneNumber n;
    if (util->GetExampleNumberForNonGeoEntity(code, &n)) examples.push_back(n);
  }
  ASSERT_GT(examples.size(), 1000u);

  size_t compared = 0, handled = 0, valid = 0, not_parsed = 0, mismatches = 0;
  for (const PhoneNumber& example : examples) {
    std::string own;
    util->GetRegionCodeForNumber(example, &own);
    for (const std::string& input : Writings(example)) {
      for (const std::string& region :
           {own, std::string("US"), std::string("GB"), std::string("AR"), std::string("BR"), std::string("")}) {
        ++compared;
        std::optional<PhoneParse> fast = ParsePhoneFast(input, region);
        if (!fast.has_value()) continue;
        ++handled;
        const PhoneParse want = ParsePhoneWithLibphonenumber(input, region);
        valid += want.valid;
        not_parsed += !want.parsed;
        if (fast->parsed != want.parsed || fast->e164 != want.e164 || fast->valid != want.valid) {
          if (++mismatches <= 20) {
            ADD_FAILURE() << "'" << input << "' with region '" << region << "': fast path " << Describe(*fast)
                          << ", libphonenumber " << Describe(want);
          }
        }
      }
    }
  }
  EXPECT_EQ(mismatches, 0u);
  // The comparison covers the fast path where it matters: most inputs, valid and invalid, parsed or not.
  EXPECT_GT(handled, compared * 9 / 10) << handled << " of " << compared;
  EXPECT_GT(valid, handled / 4);
  EXPECT_GT(handled - valid, handled / 4);
  EXPECT_GT(not_parsed, 100u);
}

TEST(PhoneTest, KnownNumbersNormalizeAsTheIssueSays) {
  struct Case {
    const char* input;
    const char* region;
    bool parsed;
    const char* e164;
    bool valid;
  };
  const Case cases[] = {
      {"+1 (650) 253-0000", "US", true, "+16502530000", true},
      {"6502530000", "US", true, "+16502530000", true},
      {"1-650-253-0000", "US", true, "+16502530000", true},        // the national prefix
      {"011 44 20 7031 3000", "US", true, "+442070313000", true},  // the US international prefix
      {"020 7031 3000", "GB", true, "+442070313000", true},
      {"011 15-2345-6789", "AR", true, "+5491123456789", true},  // Argentina's mobile transform rule
      {"+39 02 3661 8300", "", true, "+390236618300", true},     // Italian leading zero kept
      {"+800 1234 5678", "", true, "+80012345678", true},        // non-geographical entity
      {"6502530000", "", false, "", false},                      // no '+' and no default region
      {"555-555-5555", "US", true, "+15555555555", false},       // parses, not valid
      {"+1 650", "US", true, "+1650", false},
  };
  for (const Case& c : cases) {
    std::optional<PhoneParse> fast = ParsePhoneFast(c.input, c.region);
    ASSERT_TRUE(fast.has_value()) << c.input;
    EXPECT_EQ(fast->parsed, c.parsed) << c.input;
    EXPECT_EQ(fast->e164, c.e164) << c.input;
    EXPECT_EQ(fast->valid, c.valid) << c.input;
    const PhoneParse lib = ParsePhoneWithLibphonenumber(c.input, c.region);
    EXPECT_EQ(Describe(lib), Describe(*fast)) << c.input;
  }
}

TEST(PhoneTest, InputsOutsideTheFastPathGoToLibphonenumber) {
  const char* const inputs[] = {
      "tel:+1-650-253-0000",                            // RFC 3966
      "1-800-FLOWERS",                                  // letters
      "+1 650 253 0000 ext. 123",                       // an extension
      "+1 650 253 0000#",                               // a hash
      "\xEF\xBC\x96\xEF\xBC\x95\xEF\xBC\x90 253 0000",  // full-width digits
      "+0 650 253 0000",                                // no country code after the '+'
      "++1 650 253 0000",                               // two '+'
      "650+2530000",                                    // a '+' inside
      "65",                                             // two digits
  };
  for (const char* input : inputs) {
    EXPECT_FALSE(ParsePhoneFast(input, "US").has_value()) << input;
    const PhoneParse lib = ParsePhoneWithLibphonenumber(input, "US");
    EXPECT_EQ(Describe(ParsePhone(input, "US")), Describe(lib)) << input;
  }
  EXPECT_EQ(ParsePhone("1-800-FLOWERS", "US").e164, "+18003569377");  // libphonenumber's keypad letters
}

}  // namespace
}  // namespace cdp::internal
