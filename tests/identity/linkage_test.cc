// Copyright 2026 The libcdp Authors.
//
// Fellegi-Sunter record linkage: comparators, configuration, blocking, EM (on splink's known-parameter comparison
// vectors) and end-to-end accuracy on FEBRL (dataset3 dedupe, dataset4a x dataset4b linkage), with the truth taken
// from rec_id and every parameter estimated by EM here, without labels.

#include "identity/linkage.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace cdp::internal::linkage {
namespace {

Json ParseJson(std::string_view text) {
  auto j = Json::Parse(text);
  EXPECT_TRUE(j.ok()) << j.status().ToString() << " in " << text;
  return j.ok() ? std::move(j).value() : Json();
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << "cannot open " << path;
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

Records Table(std::vector<std::string> fields, std::vector<std::vector<std::string>> rows) {
  return Records{std::move(fields), std::move(rows)};
}

LinkageConfig Config(std::string_view json) {
  auto config = LinkageConfig::FromJson(ParseJson(json));
  EXPECT_TRUE(config.ok()) << config.status().ToString();
  return config.ok() ? std::move(config).value() : LinkageConfig();
}

// The InvalidArgument field path of parsing `json` as a configuration ("" when it parses).
std::string ConfigError(std::string_view json) {
  auto config = LinkageConfig::FromJson(ParseJson(json));
  if (config.ok()) return "";
  EXPECT_TRUE(config.status().IsInvalidArgument()) << config.status().ToString();
  return config.status().field();
}

// ---- comparators ----------------------------------------------------------------------------------------------------

TEST(LinkageComparatorTest, JaroWinklerKnownValues) {
  // Winkler (1990) and the usual textbook pairs.
  EXPECT_NEAR(Jaro("MARTHA", "MARHTA"), 0.944, 5e-4);
  EXPECT_NEAR(JaroWinkler("MARTHA", "MARHTA"), 0.961, 5e-4);
  EXPECT_NEAR(Jaro("DWAYNE", "DUANE"), 0.822, 5e-4);
  EXPECT_NEAR(JaroWinkler("DWAYNE", "DUANE"), 0.840, 5e-4);
  EXPECT_NEAR(Jaro("DIXON", "DICKSONX"), 0.767, 5e-4);
  EXPECT_NEAR(JaroWinkler("DIXON", "DICKSONX"), 0.813, 5e-4);
  EXPECT_DOUBLE_EQ(JaroWinkler("same", "same"), 1.0);
  EXPECT_DOUBLE_EQ(JaroWinkler("", ""), 1.0);
  EXPECT_DOUBLE_EQ(JaroWinkler("abc", ""), 0.0);
  EXPECT_DOUBLE_EQ(JaroWinkler("abc", "xyz"), 0.0);
  // Symmetric, and no prefix bonus below a Jaro of 0.7.
  EXPECT_DOUBLE_EQ(JaroWinkler("DUANE", "DWAYNE"), JaroWinkler("DWAYNE", "DUANE"));
  EXPECT_NEAR(Jaro("abcxyzuvw", "abcqrstop"), 5.0 / 9, 1e-12);
  EXPECT_DOUBLE_EQ(JaroWinkler("abcxyzuvw", "abcqrstop"), Jaro("abcxyzuvw", "abcqrstop"));
  // Longer than the inline buffers.
  const std::string long_a(300, 'a');
  std::string long_b = long_a;
  long_b[150] = 'b';
  EXPECT_GT(JaroWinkler(long_a, long_b), 0.99);
}

// The textbook algorithm, to check the bit-parallel one (strings up to 64 bytes) and the long-string one.
double ReferenceJaro(const std::string& a, const std::string& b) {
  if (a.empty() && b.empty()) return 1.0;
  if (a.empty() || b.empty()) return 0.0;
  const size_t window = std::max(a.size(), b.size()) / 2 > 0 ? std::max(a.size(), b.size()) / 2 - 1 : 0;
  std::vector<bool> fa(a.size()), fb(b.size());
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    for (size_t j = i > window ? i - window : 0; j < std::min(i + window + 1, b.size()); ++j) {
      if (!fb[j] && a[i] == b[j]) {
        fa[i] = fb[j] = true;
        ++m;
        break;
      }
    }
  }
  if (m == 0) return 0.0;
  double t = 0;
  for (size_t i = 0, k = 0; i < a.size(); ++i) {
    if (!fa[i]) continue;
    while (!fb[k]) ++k;
    t += a[i] != b[k++];
  }
  return (m / a.size() + m / b.size() + (m - std::floor(t / 2)) / m) / 3;
}

// The textbook dynamic programme, unbounded.
int ReferenceLevenshtein(const std::string& a, const std::string& b) {
  std::vector<std::vector<int>> d(a.size() + 1, std::vector<int>(b.size() + 1));
  for (size_t i = 0; i <= a.size(); ++i) d[i][0] = static_cast<int>(i);
  for (size_t j = 0; j <= b.size(); ++j) d[0][j] = static_cast<int>(j);
  for (size_t i = 1; i <= a.size(); ++i) {
    for (size_t j = 1; j <= b.size(); ++j) {
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] != b[j - 1])});
    }
  }
  return d[a.size()][b.size()];
}

TEST(LinkageComparatorTest, MatchesReferenceImplementations) {
  std::mt19937 rng(7);
  auto random_string = [&](size_t max_len) {
    std::string s(rng() % (max_len + 1), 'a');
    for (char& c : s) c = static_cast<char>('a' + rng() % 4);  // a small alphabet: many matches
    return s;
  };
  for (int trial = 0; trial < 3000; ++trial) {
    const size_t max_len = trial % 3 == 0 ? 90 : 20;
    const std::string a = random_string(max_len), b = random_string(max_len);
    ASSERT_NEAR(Jaro(a, b), ReferenceJaro(a, b), 1e-12) << a << " / " << b;
    const int d = ReferenceLevenshtein(a, b);
    ASSERT_EQ(Levenshtein(a, b), d) << a << " / " << b;
    ASSERT_EQ(Levenshtein(a, b, 3), std::min(d, 4)) << a << " / " << b;
  }
}

TEST(LinkageComparatorTest, Levenshtein) {
  EXPECT_EQ(Levenshtein("kitten", "sitting"), 3);
  EXPECT_EQ(Levenshtein("sitting", "kitten"), 3);
  EXPECT_EQ(Levenshtein("flaw", "lawn"), 2);
  EXPECT_EQ(Levenshtein("", "abc"), 3);
  EXPECT_EQ(Levenshtein("abc", "abc"), 0);
  EXPECT_EQ(Levenshtein("19560409", "19650409"), 2);
  // Bounded: past `max` it answers max + 1.
  EXPECT_EQ(Levenshtein("kitten", "sitting", 1), 2);
  EXPECT_EQ(Levenshtein("a", "abcdef", 2), 3);
  EXPECT_EQ(Levenshtein("kitten", "sitting", 3), 3);
  EXPECT_EQ(Levenshtein(std::string(200, 'x'), std::string(199, 'x') + "y"), 1);
}

TEST(LinkageComparatorTest, Soundex) {
  EXPECT_EQ(Soundex("Robert"), "r163");
  EXPECT_EQ(Soundex("Rupert"), "r163");
  EXPECT_EQ(Soundex("Tymczak"), "t522");
  EXPECT_EQ(Soundex("Ashcraft"), "a261");
  EXPECT_EQ(Soundex("Pfister"), "p236");
  EXPECT_EQ(Soundex("Honeyman"), "h555");
  EXPECT_EQ(Soundex("Lee"), "l000");
  EXPECT_EQ(Soundex("o'brien"), "o165");
  EXPECT_EQ(Soundex("123"), "");
}

TEST(LinkageComparatorTest, ParseDate) {
  EXPECT_EQ(ParseDate("19700101"), 0);
  EXPECT_EQ(ParseDate("19700102"), 1);
  EXPECT_EQ(ParseDate("1970-01-02"), 1);
  EXPECT_EQ(ParseDate("1970-01-02T23:59:59Z"), 1);
  EXPECT_EQ(ParseDate(" 1969-12-31 "), -1);
  EXPECT_TRUE(ParseDate("20000229").has_value());
  EXPECT_FALSE(ParseDate("19000229").has_value());
  EXPECT_FALSE(ParseDate("19561309").has_value());
  EXPECT_FALSE(ParseDate("19560431").has_value());
  EXPECT_FALSE(ParseDate("1956040").has_value());
  EXPECT_FALSE(ParseDate("1956/04/09").has_value());
  EXPECT_FALSE(ParseDate("").has_value());
}

TEST(LinkageComparatorTest, LevelsOfEachKind) {
  LinkageConfig config = Config(R"({
    "comparators": [
      {"field": "name", "kind": "jaro_winkler", "thresholds": [0.95, 0.8]},
      {"field": "name", "name": "name_lev", "kind": "levenshtein", "thresholds": [1, 2]},
      {"field": "zip", "kind": "exact"},
      {"field": "income", "kind": "numeric", "thresholds": [10, 100]},
      {"field": "income", "name": "income_rel", "kind": "numeric", "thresholds": [0.1], "relative": true},
      {"field": "dob", "kind": "date", "thresholds": [31, 366]},
      {"field": "dob", "name": "dob_noexact", "kind": "date", "thresholds": [0, 31], "exactLevel": false}
    ],
    "blocking": [["zip"]]
  })");
  auto linker = Linker::Create(config);
  ASSERT_TRUE(linker.ok()) << linker.status().ToString();
  Records t = Table({"name", "zip", "income", "dob"}, {{"Martha", "2000", "1000", "19560409"},
                                                       {" MARTHA ", "2000", "1000", "1956-04-09"},
                                                       {"marhta", "2001", "1005", "1956-05-01"},
                                                       {"mrthaxx", "", "1090", "1957-01-01"},
                                                       {"zzz", "x", "abc", "not a date"}});
  std::vector<CandidatePair> pairs = {{0, 1}, {0, 2}, {0, 3}, {0, 4}};
  auto v = linker->Compare(t, nullptr, pairs);
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  ASSERT_EQ(v->size(), 4u);
  auto row = [&](size_t i) { return std::vector<int>(v->row(i), v->row(i) + v->num_comparators()); };
  // Trimmed and lower-cased: rows 0 and 1 are equal everywhere; the dates in two formats are the same day.
  EXPECT_EQ(row(0), (std::vector<int>{3, 3, 1, 3, 2, 3, 2}));
  // marhta: JW 0.961 >= 0.95, one transposition = 2 edits; 5 apart; 22 days.
  EXPECT_EQ(row(1), (std::vector<int>{2, 1, 0, 2, 1, 2, 1}));
  // mrthaxx: JW 0.864 >= 0.8, 3 edits; zip missing; 90 apart (9% relative); 267 days.
  EXPECT_EQ(row(2), (std::vector<int>{1, 0, -1, 1, 1, 1, 0}));
  // Unparsable numbers and dates are missing.
  EXPECT_EQ(row(3), (std::vector<int>{0, 0, 0, -1, -1, -1, -1}));

  const ComparatorSpec& jw = linker->config().comparators[0];
  EXPECT_EQ(jw.NumLevels(), 4);
  EXPECT_EQ(jw.LevelLabel(-1), "null");
  EXPECT_EQ(jw.LevelLabel(0), "else");
  EXPECT_EQ(jw.LevelLabel(1), "jw>=0.8");
  EXPECT_EQ(jw.LevelLabel(2), "jw>=0.95");
  EXPECT_EQ(jw.LevelLabel(3), "exact");
  EXPECT_EQ(linker->config().comparators[4].LevelLabel(1), "reldiff<=0.1");
  EXPECT_EQ(linker->config().comparators[6].LevelLabel(2), "days<=0");

  // Pairs are checked.
  std::vector<CandidatePair> bad = {{0, 5}};
  EXPECT_TRUE(linker->Compare(t, nullptr, bad).status().IsInvalidArgument());
  std::vector<CandidatePair> self = {{2, 2}};
  EXPECT_TRUE(linker->Compare(t, nullptr, self).status().IsInvalidArgument());
}

// ---- configuration --------------------------------------------------------------------------------------------------

TEST(LinkageConfigTest, DefaultsAndRoundTrip) {
  LinkageConfig config = Config(R"({
    "comparators": [{"field": "surname", "kind": "jaro_winkler", "thresholds": [0.9]}],
    "blocking": [["postcode"], [{"field": "surname", "transform": "soundex"},
                                {"field": "given", "transform": "prefix", "length": 2}]]
  })");
  EXPECT_EQ(config.comparators[0].name, "surname");
  EXPECT_TRUE(config.comparators[0].exact_level);
  EXPECT_EQ(config.max_pairs, 5000000);
  EXPECT_DOUBLE_EQ(config.threshold, 0.5);
  EXPECT_EQ(config.em.max_iterations, 500);
  EXPECT_EQ(config.em.u_sample_pairs, 100000);
  EXPECT_FALSE(config.em.fix_u);
  ASSERT_EQ(config.blocking.size(), 2u);
  EXPECT_EQ(config.blocking[1].keys[0].transform, KeyTransform::kSoundex);
  EXPECT_EQ(config.blocking[1].keys[1].length, 2);
  auto again = LinkageConfig::FromJson(config.ToJson());
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(again->ToJson(), config.ToJson());
}

TEST(LinkageConfigTest, ErrorsNameTheField) {
  const char* ok_blocking = R"("blocking": [["a"]])";
  auto with = [&](std::string comparators, std::string rest = "") {
    return ConfigError("{\"comparators\": [" + comparators + "], " + ok_blocking + rest + "}");
  };
  EXPECT_EQ(with(R"({"field": "a", "kind": "exact"})"), "");
  EXPECT_EQ(with(R"({"field": "a", "kind": "soundex"})"), "comparators[0].kind");
  EXPECT_EQ(with(R"({"field": "a"})"), "comparators[0].kind");
  EXPECT_EQ(with(R"({"kind": "exact"})"), "comparators[0].field");
  EXPECT_EQ(with(R"({"field": "a", "kind": "exact", "weight": 2})"), "comparators[0].weight");
  EXPECT_EQ(with(R"({"field": "a", "kind": "exact", "thresholds": [1]})"), "comparators[0].thresholds");
  EXPECT_EQ(with(R"({"field": "a", "kind": "jaro_winkler", "thresholds": [0.8, 0.9]})"),
            "comparators[0].thresholds[1]");
  EXPECT_EQ(with(R"({"field": "a", "kind": "jaro_winkler", "thresholds": [1.0]})"), "comparators[0].thresholds[0]");
  EXPECT_EQ(with(R"({"field": "a", "kind": "jaro_winkler", "thresholds": ["x"]})"), "comparators[0].thresholds[0]");
  EXPECT_EQ(with(R"({"field": "a", "kind": "levenshtein", "thresholds": [1.5]})"), "comparators[0].thresholds[0]");
  EXPECT_EQ(with(R"({"field": "a", "kind": "levenshtein", "thresholds": [2, 1]})"), "comparators[0].thresholds[1]");
  EXPECT_EQ(with(R"({"field": "a", "kind": "date", "thresholds": [0]})"), "comparators[0].thresholds[0]");
  EXPECT_EQ(with(R"({"field": "a", "kind": "date", "thresholds": [0.5], "exactLevel": false})"),
            "comparators[0].thresholds[0]");
  EXPECT_EQ(with(R"({"field": "a", "kind": "numeric", "thresholds": [-1]})"), "comparators[0].thresholds[0]");
  EXPECT_EQ(with(R"({"field": "a", "kind": "jaro_winkler", "exactLevel": false})"), "comparators[0].thresholds");
  EXPECT_EQ(with(R"({"field": "a", "kind": "levenshtein", "thresholds": [1,2,3,4,5,6,7,8,9,10,11,12,13,14,15]})"),
            "comparators[0].thresholds");
  EXPECT_EQ(with(R"({"field": "a", "kind": "date", "thresholds": [1], "relative": true})"), "comparators[0].relative");
  EXPECT_EQ(with(R"({"field": "a", "kind": "exact"}, {"field": "a", "kind": "levenshtein", "thresholds": [1]})"),
            "comparators[1].name");
  EXPECT_EQ(with(R"({"field": "a", "kind": "exact"})", R"(, "maxPairs": 0)"), "maxPairs");
  EXPECT_EQ(with(R"({"field": "a", "kind": "exact"})", R"(, "threshold": 1.5)"), "threshold");
  EXPECT_EQ(with(R"({"field": "a", "kind": "exact"})", R"(, "em": {"tolerance": 0})"), "em.tolerance");
  EXPECT_EQ(with(R"({"field": "a", "kind": "exact"})", R"(, "em": {"maxIterations": 0})"), "em.maxIterations");
  EXPECT_EQ(with(R"({"field": "a", "kind": "exact"})", R"(, "em": {"fixU": true, "uSamplePairs": 0})"), "em.fixU");
  EXPECT_EQ(with(R"({"field": "a", "kind": "exact"})", R"(, "em": {"iterations": 3})"), "em.iterations");
  EXPECT_EQ(with(R"({"field": "a", "kind": "exact"})", R"(, "rules": [])"), "rules");

  const char* ok_comparators = R"("comparators": [{"field": "a", "kind": "exact"}])";
  auto blocking = [&](std::string rules) {
    return ConfigError(std::string("{") + ok_comparators + ", " + rules + "}");
  };
  EXPECT_EQ(blocking(R"("blocking": [])"), "blocking");
  EXPECT_EQ(blocking(R"("blocking": [[]])"), "blocking[0]");
  EXPECT_EQ(blocking(R"("blocking": ["a"])"), "blocking[0]");
  EXPECT_EQ(blocking(R"("blocking": [["a"], [{"field": "b", "transform": "prefix"}]])"), "blocking[1][0].length");
  EXPECT_EQ(blocking(R"("blocking": [[{"field": "b", "transform": "prefix", "length": 65}]])"),
            "blocking[0][0].length");
  EXPECT_EQ(blocking(R"("blocking": [[{"field": "b", "transform": "metaphone"}]])"), "blocking[0][0].transform");
  EXPECT_EQ(blocking(R"("blocking": [[{"field": "b", "length": 2}]])"), "blocking[0][0].length");
  EXPECT_EQ(blocking(R"("blocking": [["a", 3]])"), "blocking[0][1]");
  EXPECT_EQ(ConfigError(std::string("{") + ok_comparators + "}"), "blocking");
  EXPECT_FALSE(LinkageConfig::FromJson(Json(3)).ok());
}

TEST(LinkageConfigTest, TablesMustHoldTheFields) {
  auto linker = Linker::Create(Config(R"({
    "comparators": [{"field": "name", "kind": "exact"}], "blocking": [["zip"]]})"));
  ASSERT_TRUE(linker.ok());
  Records no_zip = Table({"name"}, {{"a"}, {"b"}});
  auto blocked = linker->Block(no_zip);
  EXPECT_TRUE(blocked.status().IsInvalidArgument());
  EXPECT_EQ(blocked.status().field(), "blocking[0][0].field");
  Records no_name = Table({"zip"}, {{"1"}});
  auto run = linker->Dedupe(no_name);
  EXPECT_EQ(run.status().field(), "comparators[0].field");
  Records ragged = Table({"name", "zip"}, {{"a", "1"}, {"b"}});
  EXPECT_EQ(linker->Dedupe(ragged).status().field(), "rows[1]");
  Records twice = Table({"name", "name"}, {});
  EXPECT_EQ(linker->Dedupe(twice).status().field(), "fields[1]");
  Records huge = Table({"name", "zip"}, {{std::string(kMaxValueBytes + 1, 'x'), "1"}});
  EXPECT_EQ(linker->Dedupe(huge).status().field(), "rows[0].name");
}

TEST(LinkageConfigTest, ParseDelimited) {
  auto r = ParseDelimited("id,name,note\r\n1, Ada ,\"x, \"\"y\"\"\"\n\n2,,\"two\nlines\"\n");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->fields, (std::vector<std::string>{"id", "name", "note"}));
  ASSERT_EQ(r->rows.size(), 2u);
  EXPECT_EQ(r->rows[0], (std::vector<std::string>{"1", "Ada", "x, \"y\""}));
  EXPECT_EQ(r->rows[1], (std::vector<std::string>{"2", "", "two\nlines"}));
  auto febrl = ParseDelimited("rec_id, given_name, surname\nrec-1-org, , smith\n", {.separator = ", "});
  ASSERT_TRUE(febrl.ok()) << febrl.status().ToString();
  EXPECT_EQ(febrl->rows[0], (std::vector<std::string>{"rec-1-org", "", "smith"}));
  auto ragged = ParseDelimited("a,b\n1,2\n3\n");
  EXPECT_TRUE(ragged.status().IsInvalidArgument());
  EXPECT_NE(ragged.status().message().find("line 3"), std::string::npos) << ragged.status().ToString();
  EXPECT_TRUE(ParseDelimited("a,b\n\"1,2\n").status().IsInvalidArgument());
  EXPECT_TRUE(ParseDelimited("a,b\n\"1\"x,2\n").status().IsInvalidArgument());
  EXPECT_TRUE(ParseDelimited("").status().IsInvalidArgument());
  EXPECT_TRUE(ParseDelimited("a,a\n").status().IsInvalidArgument());
  EXPECT_TRUE(ParseDelimited("a\n1\n", {.max_bytes = 3}).status().IsResourceExhausted());
}

TEST(LinkageConfigTest, RecordsFromJson) {
  std::vector<Json> profiles = {
      ParseJson(R"({"id": "p1", "attributes": {"lastName": "Lovelace", "birthYear": 1815, "vip": true}})"),
      ParseJson(R"({"id": "p2", "attributes": {"lastName": null, "birthYear": 1815.5, "tags": ["a"]}})"),
      ParseJson(R"({"id": "p3"})")};
  auto r =
      RecordsFromJson(profiles, {"attributes.lastName", "attributes.birthYear", "attributes.vip", "attributes.tags"});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->fields[0], "attributes.lastName");
  EXPECT_EQ(r->rows[0], (std::vector<std::string>{"Lovelace", "1815", "true", ""}));
  EXPECT_EQ(r->rows[1], (std::vector<std::string>{"", "1815.5", "", ""}));
  EXPECT_EQ(r->rows[2], (std::vector<std::string>{"", "", "", ""}));
  profiles.push_back(Json("not an object"));
  EXPECT_EQ(RecordsFromJson(profiles, {"id"}).status().field(), "objects[3]");
  EXPECT_EQ(RecordsFromJson(profiles, {"id", "id"}).status().field(), "objects[3]");
  profiles.pop_back();
  EXPECT_EQ(RecordsFromJson(profiles, {"id", "id"}).status().field(), "fields[1]");
}

// ---- blocking -------------------------------------------------------------------------------------------------------

TEST(LinkageBlockingTest, UnionOfRulesEachPairOnce) {
  auto linker = Linker::Create(Config(R"({
    "comparators": [{"field": "name", "kind": "exact"}],
    "blocking": [["zip"], [{"field": "name", "transform": "prefix", "length": 3}],
                 [{"field": "name", "transform": "soundex"}, "zip"]]})"));
  ASSERT_TRUE(linker.ok());
  Records t = Table({"name", "zip"}, {{"robert", "1"},  // 0
                                      {"rupert", "1"},  // 1: zip with 0, soundex+zip with 0 (already given)
                                      {"robin", "2"},   // 2: prefix "rob" with 0
                                      {"", "2"},        // 3: zip with 2; no name key
                                      {"smith", ""}});  // 4: no zip; alone
  auto pairs = linker->Block(t);
  ASSERT_TRUE(pairs.ok()) << pairs.status().ToString();
  std::vector<CandidatePair> sorted = *pairs;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(sorted, (std::vector<CandidatePair>{{0, 1}, {0, 2}, {2, 3}}));

  // Link mode: pairs (left, right) across the tables only.
  Records right = Table({"zip", "name"}, {{"1", "bob"}, {"9", "robbie"}, {"2", ""}});
  auto linked = linker->Block(t, &right);
  ASSERT_TRUE(linked.ok()) << linked.status().ToString();
  sorted = *linked;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(sorted, (std::vector<CandidatePair>{{0, 0}, {0, 1}, {1, 0}, {2, 1}, {2, 2}, {3, 2}}));
}

TEST(LinkageBlockingTest, KeysOfSeveralPartsDoNotRunTogether) {
  auto linker = Linker::Create(Config(R"({
    "comparators": [{"field": "a", "kind": "exact"}], "blocking": [["a", "b"]]})"));
  ASSERT_TRUE(linker.ok());
  Records t = Table({"a", "b"}, {{"ab", "c"}, {"a", "bc"}, {"AB", "c "}});
  auto pairs = linker->Block(t);
  ASSERT_TRUE(pairs.ok());
  EXPECT_EQ(*pairs, (std::vector<CandidatePair>{{0, 2}}));
}

TEST(LinkageBlockingTest, MaxPairsIsAnError) {
  LinkageConfig config = Config(R"({
    "comparators": [{"field": "name", "kind": "exact"}], "blocking": [["zip"], ["name"]], "maxPairs": 5})");
  auto linker = Linker::Create(config);
  ASSERT_TRUE(linker.ok());
  // 4 records in one zip: 6 pairs from the first rule alone.
  Records t = Table({"name", "zip"}, {{"a", "1"}, {"b", "1"}, {"c", "1"}, {"d", "1"}});
  auto pairs = linker->Block(t);
  EXPECT_TRUE(pairs.status().IsResourceExhausted()) << pairs.status().ToString();
  EXPECT_EQ(pairs.status().field(), "blocking[0]");
  EXPECT_TRUE(linker->Dedupe(t).status().IsResourceExhausted());
  // 3 + 3 pairs: each rule fits, the union does not.
  Records u = Table({"name", "zip"}, {{"a", "1"}, {"b", "1"}, {"c", "1"}, {"x", "2"}, {"x", "3"}, {"x", "4"}});
  pairs = linker->Block(u);
  EXPECT_TRUE(pairs.status().IsResourceExhausted()) << pairs.status().ToString();
  EXPECT_EQ(pairs.status().field(), "blocking[1]");
  config.max_pairs = 6;
  linker = Linker::Create(config);
  ASSERT_TRUE(linker.ok());
  EXPECT_EQ(linker->Block(u)->size(), 6u);
}

// ---- EM, scoring, clustering, evaluation ----------------------------------------------------------------------------

TEST(LinkageEmTest, RecoversSplinkKnownParameters) {
  auto table = ParseDelimited(ReadFile(std::string(CDP_TEST_DATA_DIR) + "/splink/known_params_comparison_vectors.csv"));
  ASSERT_TRUE(table.ok()) << table.status().ToString();
  ASSERT_EQ(table->rows.size(), 4000u);
  auto vectors = ComparisonVectors::Create({2, 2, 2});
  ASSERT_TRUE(vectors.ok());
  std::vector<int> columns;
  for (const char* name : {"gamma_col_1", "gamma_col_2", "gamma_col_3"}) columns.push_back(table->FieldIndex(name));
  for (const auto& row : table->rows) {
    std::vector<int8_t> gammas;
    for (int c : columns) gammas.push_back(static_cast<int8_t>(std::stoi(row[static_cast<size_t>(c)])));
    ASSERT_TRUE(vectors->Add(gammas).ok());
  }
  auto model = EstimateParameters(*vectors, EmOptions{});
  ASSERT_TRUE(model.ok()) << model.status().ToString();
  EXPECT_TRUE(model->converged);
  // The parameters the file was generated with (splink's tests/datasets; lambda 0.5).
  const double m[3][2] = {{0.3, 0.7}, {0.1, 0.9}, {0.05, 0.95}};
  const double u[3][2] = {{0.9, 0.1}, {0.975, 0.025}, {0.8, 0.2}};
  std::printf("splink known parameters: lambda %.5f (EM %d iterations)\n", model->lambda, model->iterations);
  for (size_t k = 0; k < 3; ++k) {
    std::printf("  col_%zu m = (%.5f, %.5f) u = (%.5f, %.5f)\n", k + 1, model->comparators[k].m[0],
                model->comparators[k].m[1], model->comparators[k].u[0], model->comparators[k].u[1]);
  }
  EXPECT_NEAR(model->lambda, 0.5, 0.005);  // within 1%
  EXPECT_TRUE(model->Implausible().empty());
  for (size_t k = 0; k < 3; ++k) {
    for (size_t g = 0; g < 2; ++g) {
      EXPECT_NEAR(model->comparators[k].m[g], m[k][g], 0.01) << "m of column " << k + 1 << " level " << g;
      EXPECT_NEAR(model->comparators[k].u[g], u[k][g], 0.01) << "u of column " << k + 1 << " level " << g;
    }
  }
  // Without the pseudo-count EM is plain maximum likelihood, and the file fits its parameters exactly.
  EmOptions mle;
  mle.pseudo_count = 0;
  auto exact = EstimateParameters(*vectors, mle);
  ASSERT_TRUE(exact.ok());
  EXPECT_NEAR(exact->lambda, 0.5, 1e-4);
  for (size_t k = 0; k < 3; ++k) {
    EXPECT_NEAR(exact->comparators[k].m[1], m[k][1], 1e-4);
    EXPECT_NEAR(exact->comparators[k].u[1], u[k][1], 1e-4);
  }

  // The same fit from a start on the wrong side of the label switch: the match class is the one that agrees more.
  Model flipped = *model;
  for (ComparatorParameters& p : flipped.comparators) std::swap(p.m, p.u);
  auto again = EstimateParameters(*vectors, EmOptions{}, &flipped);
  ASSERT_TRUE(again.ok());
  EXPECT_NEAR(again->lambda, 0.5, 0.005);
  EXPECT_NEAR(again->comparators[2].m[1], 0.95, 0.01);

  // A model whose "match" class disagrees on a field says so, naming it (what EM fits with no duplicates left).
  Model stranger = *model;
  stranger.comparators[0].name = "firstName";
  std::swap(stranger.comparators[0].m, stranger.comparators[0].u);  // disagreeing: m 0.9 against u 0.3
  std::vector<std::string> why = stranger.Implausible();
  ASSERT_EQ(why.size(), 1u);
  EXPECT_NE(why[0].find("firstName: its least similar level is evidence for a match"), std::string::npos) << why[0];
  // Disagreement a little more common among matches (a prior's pseudo-count over few matches) is not enough; nor
  // is exact agreement being rarer among matches than among non-matches blocked on the field.
  Model blocked = *model;
  blocked.comparators[1].m = {0.04, 0.16, 0.72, 0.08};
  blocked.comparators[1].u = {0.03, 0.02, 0.08, 0.87};
  EXPECT_TRUE(blocked.Implausible().empty());
  blocked.comparators[1].m = {0.07, 0.16, 0.72, 0.05};
  EXPECT_EQ(blocked.Implausible().size(), 1u);

  // Bad input.
  EXPECT_TRUE(vectors->Add(std::vector<int8_t>{0, 2, 0}).IsInvalidArgument());
  EXPECT_TRUE(vectors->Add(std::vector<int8_t>{0, 1}).IsInvalidArgument());
  EXPECT_TRUE(EstimateParameters(ComparisonVectors::Create({2}).value(), EmOptions{}).status().IsInvalidArgument());
  EXPECT_TRUE(ComparisonVectors::Create({1}).status().IsInvalidArgument());
}

TEST(LinkageEmTest, WeightsAndProbabilities) {
  Model model;
  model.lambda = 0.2;
  model.comparators.push_back({"a", {0.1, 0.9}, {0.8, 0.2}});
  EXPECT_DOUBLE_EQ(model.PriorWeight(), -2.0);
  EXPECT_NEAR(model.LevelWeight(0, 1), std::log2(4.5), 1e-12);
  EXPECT_NEAR(model.LevelWeight(0, 0), std::log2(0.125), 1e-12);
  EXPECT_DOUBLE_EQ(model.LevelWeight(0, -1), 0.0);
  const int8_t agree = 1;
  EXPECT_NEAR(model.MatchWeight(&agree), -2.0 + std::log2(4.5), 1e-12);
  EXPECT_DOUBLE_EQ(Model::Probability(0), 0.5);
  EXPECT_NEAR(Model::Probability(model.MatchWeight(&agree)), 0.2 * 0.9 / (0.2 * 0.9 + 0.8 * 0.2), 1e-12);

  auto back = Model::FromJson(model.ToJson());
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->ToJson(), model.ToJson());
  Json bad = model.ToJson();
  bad.Find("comparators")->items()[0].Set("m", Json::Array().Push(0.5).Push(0.6));
  EXPECT_EQ(Model::FromJson(bad).status().field(), "comparators[0].m");
  bad = model.ToJson();
  bad.Set("lambda", 1);
  EXPECT_EQ(Model::FromJson(bad).status().field(), "lambda");
  bad = model.ToJson();
  bad.Find("comparators")->items()[0].Set("w", 1);
  EXPECT_EQ(Model::FromJson(bad).status().field(), "comparators[0].w");
  bad = model.ToJson();
  bad.Find("comparators")->items()[0].Set("u", Json::Array().Push(0.5).Push(0.25).Push(0.25));
  EXPECT_EQ(Model::FromJson(bad).status().field(), "comparators[0].u");
}

TEST(LinkageEmTest, ClusterAndEvaluate) {
  std::vector<ScoredPair> pairs = {{0, 1, 5, 0.97}, {1, 2, 4, 0.9}, {3, 4, -1, 0.3}, {5, 6, 3, 0.8}};
  EXPECT_EQ(Cluster(7, 0, pairs, 0.5), (std::vector<uint32_t>{0, 0, 0, 3, 4, 5, 5}));
  EXPECT_EQ(Cluster(7, 0, pairs, 0.95), (std::vector<uint32_t>{0, 0, 2, 3, 4, 5, 6}));
  // Link mode: right record j is node num_left + j.
  std::vector<ScoredPair> links = {{0, 0, 5, 0.99}, {1, 0, 5, 0.99}};
  EXPECT_EQ(Cluster(2, 2, links, 0.5), (std::vector<uint32_t>{0, 0, 0, 3}));

  const std::vector<std::string> entities = {"a", "b", "a", "", "a", "b"};
  const std::vector<CandidatePair> truth = TruePairs(entities, nullptr);
  EXPECT_EQ(truth, (std::vector<CandidatePair>{{0, 2}, {0, 4}, {1, 5}, {2, 4}}));
  const std::vector<CandidatePair> predicted = {{2, 0}, {0, 2}, {1, 5}, {3, 4}};
  PairMetrics m = EvaluatePairs(predicted, truth, /*dedupe=*/true);
  EXPECT_EQ(m.true_positives, 2);
  EXPECT_EQ(m.false_positives, 1);
  EXPECT_EQ(m.false_negatives, 2);
  EXPECT_NEAR(m.precision, 2.0 / 3, 1e-12);
  EXPECT_NEAR(m.recall, 0.5, 1e-12);
  EXPECT_NEAR(m.f1, 2 * (2.0 / 3) * 0.5 / (2.0 / 3 + 0.5), 1e-12);
  const std::vector<std::string> right = {"b", "a", "c"};
  EXPECT_EQ(TruePairs(entities, &right), (std::vector<CandidatePair>{{0, 1}, {1, 0}, {2, 1}, {4, 1}, {5, 0}}));
  EXPECT_EQ(EvaluatePairs({}, truth, true).precision, 0.0);
}

// ---- FEBRL end to end -----------------------------------------------------------------------------------------------

class LinkageFebrlTest : public ::testing::Test {
 protected:
  static Records Load(const std::string& name) {
    auto r = ParseDelimited(ReadFile(std::string(CDP_TEST_DATA_DIR) + "/febrl/" + name), {.separator = ", "});
    EXPECT_TRUE(r.ok()) << name << ": " << r.status().ToString();
    return r.ok() ? std::move(r).value() : Records();
  }
  // rec-<n>-org / rec-<n>-dup-<k> -> "<n>": the truth, never shown to the linker.
  static std::vector<std::string> Entities(const Records& records) {
    const int id = records.FieldIndex("rec_id");
    std::vector<std::string> out;
    for (const auto& row : records.rows) {
      const std::string& rec = row[static_cast<size_t>(id)];
      const size_t a = rec.find('-'), b = rec.find('-', a + 1);
      out.push_back(rec.substr(a + 1, b - a - 1));
    }
    return out;
  }
  static Linker MakeLinker(bool fix_u = false) {
    auto json = Json::Parse(ReadFile(std::string(CDP_TEST_DATA_DIR) + "/../identity/febrl_linkage_config.json"));
    if (!json.ok()) throw std::runtime_error(json.status().ToString());  // gtest reports it as a failure
    auto config = LinkageConfig::FromJson(*json);
    if (!config.ok()) throw std::runtime_error(config.status().ToString());
    // The configuration never compares or blocks on rec_id.
    for (const ComparatorSpec& c : config->comparators) EXPECT_NE(c.field, "rec_id");
    for (const BlockingRule& r : config->blocking) {
      for (const BlockingKey& k : r.keys) EXPECT_NE(k.field, "rec_id");
    }
    config->em.fix_u = fix_u;
    auto linker = Linker::Create(*config);
    if (!linker.ok()) throw std::runtime_error(linker.status().ToString());
    return std::move(linker).value();
  }
  static std::vector<CandidatePair> Predicted(const LinkResult& result) {
    std::vector<CandidatePair> out;
    for (const ScoredPair& p : result.pairs) out.push_back({p.left, p.right});
    return out;
  }
};

TEST_F(LinkageFebrlTest, Dataset3DedupeF1) {
  const Records records = Load("dataset3.csv");
  ASSERT_EQ(records.rows.size(), 5000u);
  const std::vector<CandidatePair> truth = TruePairs(Entities(records), nullptr);
  ASSERT_EQ(truth.size(), 6538u);
  const Linker linker = MakeLinker();
  auto result = linker.Dedupe(records);
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  EXPECT_TRUE(result->model.converged);
  EXPECT_TRUE(result->model.Implausible().empty()) << result->model.Implausible()[0];
  const PairMetrics m = EvaluatePairs(Predicted(*result), truth, /*dedupe=*/true);
  std::printf("dataset3 dedupe: %lld candidates, precision %.4f recall %.4f F1 %.4f (EM %d iterations)\n",
              static_cast<long long>(result->candidate_pairs), m.precision, m.recall, m.f1, result->model.iterations);
  EXPECT_GE(m.f1, 0.95);
  // Returned pairs are sorted by weight and carry their comparison levels.
  ASSERT_EQ(result->comparisons.size(), result->pairs.size());
  for (size_t i = 1; i < result->pairs.size(); ++i) {
    EXPECT_GE(result->pairs[i - 1].match_weight, result->pairs[i].match_weight);
  }
  for (size_t i = 0; i < result->pairs.size(); i += 97) {
    EXPECT_NEAR(result->model.MatchWeight(result->comparisons.row(i)), result->pairs[i].match_weight, 1e-9);
    EXPECT_GE(result->pairs[i].match_probability, 0.5);
    EXPECT_LT(result->pairs[i].left, result->pairs[i].right);
  }

  // Scoring with the stored model gives the same pairs without EM.
  auto model = Model::FromJson(result->model.ToJson());
  ASSERT_TRUE(model.ok()) << model.status().ToString();
  auto rescored = linker.Dedupe(records, &*model);
  ASSERT_TRUE(rescored.ok()) << rescored.status().ToString();
  EXPECT_EQ(Predicted(*rescored), Predicted(*result));
  Model wrong = *model;
  wrong.comparators[0].name = "nickname";
  EXPECT_TRUE(linker.Dedupe(records, &wrong).status().IsInvalidArgument());
}

TEST_F(LinkageFebrlTest, Dataset4aLinkDataset4bF1) {
  const Records left = Load("dataset4a.csv"), right = Load("dataset4b.csv");
  ASSERT_EQ(left.rows.size(), 5000u);
  ASSERT_EQ(right.rows.size(), 5000u);
  const std::vector<std::string> right_entities = Entities(right);
  const std::vector<CandidatePair> truth = TruePairs(Entities(left), &right_entities);
  ASSERT_EQ(truth.size(), 5000u);
  const Linker linker = MakeLinker();
  auto result = linker.Link(left, right);
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  EXPECT_TRUE(result->model.converged);
  EXPECT_TRUE(result->model.Implausible().empty()) << result->model.Implausible()[0];
  const PairMetrics m = EvaluatePairs(Predicted(*result), truth, /*dedupe=*/false);
  std::printf("dataset4a x 4b: %lld candidates, precision %.4f recall %.4f F1 %.4f (EM %d iterations)\n",
              static_cast<long long>(result->candidate_pairs), m.precision, m.recall, m.f1, result->model.iterations);
  EXPECT_GE(m.f1, 0.95);

  // Clusters: each true link joins a 4a record and a 4b record.
  const std::vector<uint32_t> clusters = Cluster(left.rows.size(), right.rows.size(), result->pairs, 0.5);
  size_t joined = 0;
  for (const CandidatePair& t : truth) joined += clusters[t.left] == clusters[left.rows.size() + t.right];
  EXPECT_GE(joined, 4750u);
}

// splink's usual way: u from random pairs, kept fixed; EM fits only lambda and m.
TEST_F(LinkageFebrlTest, Dataset4aLinkDataset4bWithUFromRandomPairs) {
  const Records left = Load("dataset4a.csv"), right = Load("dataset4b.csv");
  const std::vector<std::string> right_entities = Entities(right);
  const std::vector<CandidatePair> truth = TruePairs(Entities(left), &right_entities);
  auto result = MakeLinker(/*fix_u=*/true).Link(left, right);
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  EXPECT_TRUE(result->model.Implausible().empty()) << result->model.Implausible()[0];
  const PairMetrics m = EvaluatePairs(Predicted(*result), truth, /*dedupe=*/false);
  std::printf("dataset4a x 4b, u fixed: precision %.4f recall %.4f F1 %.4f\n", m.precision, m.recall, m.f1);
  EXPECT_GE(m.f1, 0.95);
}

}  // namespace
}  // namespace cdp::internal::linkage
