// Copyright 2026 The libcdp Authors.

#include "cdp/json.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <random>

#include "cdp/query.h"

namespace cdp {
namespace {

TEST(JsonTest, ParseDumpRoundTrip) {
  const char* text = R"({"a":1,"b":[true,false,null],"c":{"d":"x\"y\n"},"e":-2.5,"f":12345678901234})";
  auto parsed = Json::Parse(text);
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_EQ(parsed->Dump(), text);
  EXPECT_TRUE(parsed->Find("a")->is_int());
  EXPECT_TRUE(parsed->Find("e")->is_double());
  EXPECT_EQ(parsed->FindPath("c.d")->as_string(), "x\"y\n");
  EXPECT_EQ(parsed->FindPath("c.missing"), nullptr);
}

TEST(JsonTest, DoublesRoundTripExactly) {
  for (double d : {0.1, 49.9, 1e-300, 123456.789, -0.0001}) {
    Json j(d);
    auto back = Json::Parse(j.Dump());
    ASSERT_TRUE(back.ok());
    EXPECT_EQ(back->as_number(), d);
  }
}

// Whole doubles beyond any 64-bit integer are written so that they parse again (not as a 20-digit integer literal).
TEST(JsonTest, HugeWholeDoublesRoundTrip) {
  for (double d : {18446744073709551615.0, -9.3e18, 1e19, 1.5e300, 9.2e18}) {
    Json j(d);
    auto back = Json::Parse(j.Dump());
    ASSERT_TRUE(back.ok()) << j.Dump() << ": " << back.status().ToString();
    EXPECT_EQ(back->as_number(), d) << j.Dump();
  }
  // Inside a stored document, say a computed trait: the whole document reads back.
  Json doc = Json::Object().Set("ltv", Json(1e20)).Set("n", Json(int64_t{7}));
  auto back = Json::Parse(doc.Dump());
  ASSERT_TRUE(back.ok()) << doc.Dump();
  EXPECT_EQ(back->Find("ltv")->as_number(), 1e20);
}

TEST(JsonTest, MalformedIsInvalidArgument) {
  for (const char* bad : {"{", "{\"a\":}", "[1,2", "nul", "{\"a\":1,}", ""}) {
    auto parsed = Json::Parse(bad);
    EXPECT_FALSE(parsed.ok()) << bad;
    EXPECT_TRUE(parsed.status().IsInvalidArgument()) << bad;
  }
}

// A number no 64-bit integer or double holds is refused naming where it is (simdjson's own message names none).
TEST(JsonTest, NumbersOutOfRangeNameTheirPath) {
  struct Case {
    const char* text;
    const char* field;
  };
  for (const Case& c :
       {Case{R"({"a":{"b":[1, 99999999999999999999999]}})", "a.b[1]"},
        Case{R"([{"x":"1e400"},{"properties":{"revenue":1e400}}])", "[1].properties.revenue"},
        Case{R"({"k\"ey":[0,-9223372036854775809]})", "k\"ey[1]"}, Case{R"(123456789012345678901234567890)", ""}}) {
    auto parsed = Json::Parse(c.text);
    ASSERT_FALSE(parsed.ok()) << c.text;
    EXPECT_TRUE(parsed.status().IsInvalidArgument()) << parsed.status().ToString();
    EXPECT_EQ(parsed.status().field(), c.field) << c.text;
    EXPECT_NE(parsed.status().message().find("out of range"), std::string::npos) << parsed.status().ToString();
  }
  // A number too small for a double reads as 0 and is not the one named.
  auto tiny = Json::Parse(R"({"a":1e-400,"b":[0.000001e-999, 1e999]})");
  ASSERT_FALSE(tiny.ok());
  EXPECT_EQ(tiny.status().field(), "b[1]") << tiny.status().ToString();
  // What fits is kept: the largest 64-bit integers, unsigned ones as doubles.
  EXPECT_EQ(Json::Parse("[-9223372036854775808, 18446744073709551615, 1.5e300]")->Dump(),
            "[-9223372036854775808,1.8446744073709552e+19,1.5e+300]");
  // Escaped keys are named as read.
  auto escaped = Json::Parse(R"({"caf\u00e9":{"a\"b":1e999}})");
  ASSERT_FALSE(escaped.ok());
  EXPECT_EQ(escaped.status().field(), "caf\xc3\xa9.a\"b");
  // Malformed numbers keep simdjson's message, also when an out-of-range one follows.
  for (const char* text :
       {R"({"a":01})", R"({"properties":{"r":-}})", R"([--1])", R"([99999999999999999999-])", R"({"a":1.,"b":1e400})",
        R"([-Infinity])", R"({"a":12abc,"b":1e999})", R"({"a":0x1F,"b":1e999})", R"({"a":1.5E+3x,"b":1e999})"}) {
    auto bad = Json::Parse(text);
    ASSERT_FALSE(bad.ok()) << text;
    EXPECT_NE(bad.status().message().find("malformed JSON"), std::string::npos) << bad.status().ToString();
  }
}

TEST(JsonTest, DepthLimitNamesThePath) {
  std::string deep;
  for (int i = 0; i < 70; ++i) deep += "{\"k\":";
  deep += "1";
  for (int i = 0; i < 70; ++i) deep += "}";
  auto parsed = Json::Parse(deep, ParseLimits{1 << 20, 64});
  ASSERT_FALSE(parsed.ok());
  EXPECT_TRUE(parsed.status().IsInvalidArgument());
  EXPECT_EQ(parsed.status().field().substr(0, 4), "k.k.");
  EXPECT_TRUE(Json::Parse(deep, ParseLimits{1 << 20, 100}).ok());
}

TEST(JsonTest, SizeLimitIsResourceExhausted) {
  std::string big = "\"" + std::string(2000, 'x') + "\"";
  auto parsed = Json::Parse(big, ParseLimits{1000, 64});
  EXPECT_TRUE(parsed.status().IsResourceExhausted());
}

TEST(JsonTest, EqualityIgnoresKeyOrderAndIntDoubleDifference) {
  EXPECT_EQ(*Json::Parse(R"({"a":1,"b":2})"), *Json::Parse(R"({"b":2.0,"a":1})"));
  EXPECT_NE(*Json::Parse(R"({"a":1})"), *Json::Parse(R"({"a":"1"})"));
}

TEST(JsonTest, MergePatchFollowsRfc7396) {
  Json target = *Json::Parse(R"({"a":"b","c":{"d":"e","f":"g"}})");
  ApplyMergePatch(&target, *Json::Parse(R"({"a":"z","c":{"f":null}})"));
  EXPECT_EQ(target, *Json::Parse(R"({"a":"z","c":{"d":"e"}})"));
  ApplyMergePatch(&target, *Json::Parse(R"({"c":[1,2],"n":{"x":null,"y":1}})"));
  EXPECT_EQ(target, *Json::Parse(R"({"a":"z","c":[1,2],"n":{"y":1}})"));
}

// The escaper checks 8 bytes at a time before it looks at single bytes: every byte that needs an escape, at every
// position around those 8-byte steps, in strings of every length up to 40, is escaped as RFC 8259 says and parses
// back to the same string.
TEST(JsonTest, StringsEscapeEveryByteThatNeedsItWhereverItIs) {
  auto expected = [](const std::string& s) {
    std::string out = "\"";
    for (unsigned char c : s) {
      if (c == '"') {
        out += "\\\"";
      } else if (c == '\\') {
        out += "\\\\";
      } else if (c == '\n') {
        out += "\\n";
      } else if (c == '\r') {
        out += "\\r";
      } else if (c == '\t') {
        out += "\\t";
      } else if (c == '\b') {
        out += "\\b";
      } else if (c == '\f') {
        out += "\\f";
      } else if (c < 0x20) {
        char buf[8];
        std::snprintf(buf, sizeof buf, "\\u%04x", c);
        out += buf;
      } else {
        out += static_cast<char>(c);
      }
    }
    return out + "\"";
  };
  // Bytes next to the ones that need escaping (0x1f/0x20, 0x21/0x23, 0x5b/0x5d), UTF-8 (é, €, and bytes 0xa2, 0xdc,
  // 0xa0, 0x9f: '"', '\\', ' ' and 0x1f with the high bit set) and the escaped ones.
  const std::vector<std::string> specials = {"\"", "\\", "\n", std::string(1, '\0'), "\x1f", "\x7f", "\t", " ", "!",
                                             "#", "[", "]", "\xc3\xa9", "\xe2\x82\xac",
                                             // UTF-8 whose bytes are the escaped ones with the high bit set
                                             "\xc2\xa2", "\xdc\x80", "\xc2\xa0", "\xc2\x9f"};
  size_t checked = 0;
  for (size_t len = 0; len <= 40; ++len) {
    for (size_t pos = 0; pos < std::max<size_t>(len, 1); ++pos) {
      for (const std::string& special : specials) {
        std::string s(len, 'a');
        if (len > 0) s.replace(pos, 1, special);
        const Json j(s);
        const std::string dumped = j.Dump();
        ASSERT_EQ(dumped, expected(s)) << "length " << len << ", position " << pos;
        auto back = Json::Parse(dumped);
        ASSERT_TRUE(back.ok()) << dumped;
        ASSERT_EQ(back->as_string(), s);
        ++checked;
      }
    }
  }
  EXPECT_GT(checked, 10000u);
}

// Values are 16 bytes; strings are shared between copies and immutable; moving a member out of its own object or
// array into that object leaves a whole value.
TEST(JsonTest, CopiesAndMovesKeepValuesWhole) {
  EXPECT_EQ(sizeof(Json), 16u);
  Json a(std::string(100, 'x'));
  Json b = a;
  EXPECT_EQ(&a.as_string(), &b.as_string());  // shared, not copied
  b = Json("other");
  EXPECT_EQ(a.as_string(), std::string(100, 'x'));
  EXPECT_EQ(b.as_string(), "other");

  Json doc = *Json::Parse(R"({"inner":{"k":[1,"two",{"three":3}]},"s":"v"})");
  Json copy = doc;
  copy.Find("inner")->Find("k")->items()[1] = Json("changed");
  EXPECT_EQ(doc.FindPath("inner.k")->items()[1].as_string(), "two");  // a deep copy of arrays and objects
  doc = std::move(*doc.Find("inner"));                                // the value moved out of the object that held it
  EXPECT_EQ(doc.Dump(), R"({"k":[1,"two",{"three":3}]})");
  Json list = *Json::Parse(R"([[1,2],[3]])");
  list = Json(list.items()[0]);  // a copy of an element replaces its array
  EXPECT_EQ(list.Dump(), "[1,2]");
  list = std::move(list.items()[1]);
  EXPECT_EQ(list.Dump(), "2");

  Json moved_from = Json::Object().Set("a", 1);
  Json target = std::move(moved_from);
  EXPECT_TRUE(moved_from.is_null());  // NOLINT(bugprone-use-after-move): documented state
  EXPECT_EQ(target.Dump(), R"({"a":1})");
  EXPECT_TRUE(Json(true).as_bool());
  EXPECT_FALSE(Json(false).as_bool());
  EXPECT_EQ(Json(true), Json(true));
  EXPECT_NE(Json(true), Json(false));
  EXPECT_EQ(Json(false).Dump(), "false");
  // Mutating accessors turn a value of another type into an empty one of theirs.
  Json s("text");
  s.Set("k", 1);
  EXPECT_EQ(s.Dump(), R"({"k":1})");
  s.Push(2);
  EXPECT_EQ(s.Dump(), "[2]");
  EXPECT_EQ(Json("text").size(), 0u);
  EXPECT_TRUE(Json(3).items().empty());
}

TEST(TimestampTest, ParsesIsoAndEpochMillis) {
  EXPECT_EQ(*ParseTimestamp("1970-01-01T00:00:00Z"), 0);
  EXPECT_EQ(*ParseTimestamp("2026-11-27T10:00:00.123Z"), *ParseTimestamp(Json(int64_t{1795773600123})));
  EXPECT_EQ(*ParseTimestamp("2026-11-27T11:00:00+01:00"), *ParseTimestamp("2026-11-27T10:00:00Z"));
  EXPECT_EQ(*ParseTimestamp("2026-11-27"), *ParseTimestamp("2026-11-27T00:00:00Z"));
  EXPECT_EQ(FormatTimestamp(*ParseTimestamp("2024-02-29T23:59:59.999Z")), "2024-02-29T23:59:59.999Z");
}

TEST(TimestampTest, FormatAndParseRoundTripOverTheWholeRange) {
  std::mt19937_64 rng(3);
  const int64_t max_ms = *ParseTimestamp("9999-12-31T23:59:59.999Z") / 1000;
  for (int i = 0; i < 100000; ++i) {
    int64_t t = static_cast<int64_t>(rng() % static_cast<uint64_t>(max_ms + 1)) * 1000;
    std::string text = FormatTimestamp(t);
    ASSERT_EQ(text.size(), 24u) << text;
    auto back = ParseTimestamp(text);
    ASSERT_TRUE(back.ok()) << text;
    ASSERT_EQ(*back, t) << text;
  }
  EXPECT_EQ(FormatTimestamp(0), "1970-01-01T00:00:00.000Z");
  EXPECT_EQ(FormatTimestamp(1767225600123456), "2026-01-01T00:00:00.123Z");
}

TEST(TimestampTest, RejectsBadTimestamps) {
  for (const char* bad : {"2026-13-01", "2026-02-30", "2025-02-29", "yesterday", "2026-11-27T25:00:00Z",
                          "1969-12-31T23:59:59Z", "2026-11-27T10:00:00Zjunk"}) {
    EXPECT_TRUE(ParseTimestamp(bad).status().IsInvalidArgument()) << bad;
  }
  // A well-formed time before 1970 (or at year 0) is out of range, not "no timestamp".
  for (const char* early :
       {"1969-12-31T23:59:59Z", "0001-01-01T00:00:00.000Z", "0000-01-01", "1970-01-01T00:30+01:00"}) {
    EXPECT_NE(ParseTimestamp(early).status().message().find("out of range"), std::string::npos) << early;
  }
  EXPECT_NE(ParseTimestamp("2026-13-01").status().message().find("not an ISO 8601"), std::string::npos);
  EXPECT_FALSE(ParseTimestamp(Json(true)).ok());
  EXPECT_FALSE(ParseTimestamp(Json(-5)).ok());
  // Epoch milliseconds are whole: 1.5 was stored as 1970-01-01T00:00:00.001Z. A whole double is fine.
  EXPECT_TRUE(ParseTimestamp(Json(1.5)).status().IsInvalidArgument());
  EXPECT_EQ(*ParseTimestamp(Json(1795773600123.0)), *ParseTimestamp(Json(int64_t{1795773600123})));
}

}  // namespace
}  // namespace cdp
