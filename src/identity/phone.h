// Copyright 2026 The libcdp Authors.
//
// Phone numbers to E.164, as libphonenumber parses and validates them, without libphonenumber's regex cache lock.
//
// libphonenumber (Debian's build, with ICU regular expressions) looks every pattern up in one regex cache behind
// one mutex, several times per number: a number costs 18-20 us, and two threads parsing at once take as long as one
// (measured, 100,000 US numbers). A bulk import of a million records with a phone each spent a third of its CPU
// there, its two threads mostly waiting on each other.
//
// PhoneNumbers reads the metadata compiled into libphonenumber (the same bytes PhoneNumberUtil loads) and
// follows libphonenumber's own steps -- PhoneNumberUtil::Parse, IsValidNumber and Format(E164) -- with RE2
// patterns compiled once per region: no exclusive lock (RE2 takes its DFA cache's reader lock), about a microsecond
// per number, and two threads run in parallel. It takes the
// inputs it can follow exactly (ASCII digits with the separators ' ', '-', '.', '(' and ')', and at most one leading
// '+'); anything else (letters, extensions, "tel:" URIs, full-width digits, a '+' with no known country code, a
// region whose pattern RE2 cannot compile) goes to PhoneNumberUtil itself. tests/identity/phone_test.cc checks the
// two agree on every example number of every region, written several ways and altered digit by digit.

#ifndef CDP_IDENTITY_PHONE_H_
#define CDP_IDENTITY_PHONE_H_

#include <optional>
#include <string>
#include <string_view>

namespace cdp::internal {

// What parsing a phone number gave: whether it parsed, its E.164 form (when parsed, valid or not) and whether it
// is a valid number for its region (libphonenumber's IsValidNumber).
struct PhoneParse {
  bool parsed = false;
  std::string e164;
  bool valid = false;
};

// Parses `input` as PhoneNumberUtil::Parse(input, region) would ("" or an unknown region: only numbers written
// with '+' parse). Thread-safe; the first call builds the tables (tens of milliseconds), a region's patterns are
// compiled on its first number.
PhoneParse ParsePhone(std::string_view input, const std::string& region);

// The RE2 path alone: the result when `input` is of the shape it follows exactly, std::nullopt when ParsePhone
// would ask libphonenumber (also for every input when libphonenumber's metadata could not be read). For tests,
// which compare the two.
std::optional<PhoneParse> ParsePhoneFast(std::string_view input, const std::string& region);

// libphonenumber's own answer (locked, slow). For tests and for inputs the fast path leaves.
PhoneParse ParsePhoneWithLibphonenumber(std::string_view input, const std::string& region);

}  // namespace cdp::internal

#endif  // CDP_IDENTITY_PHONE_H_
