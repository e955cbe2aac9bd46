// Copyright 2026 The libcdp Authors.
//
// Probabilistic record linkage (Fellegi-Sunter): finds records that describe the same person when they share no
// identifier, from similar names, addresses, birth dates and so on.
//
// The pipeline, each step a function of its own so a caller can run any part of it:
//
//   1. Blocking (Linker::Block): candidate pairs are the pairs of records that agree exactly on the key of at least
//      one blocking rule (a rule is a list of fields, each optionally cut to its first N characters or coded as
//      Soundex). The union over the rules is returned once per pair, and capped (maxPairs).
//   2. Comparison (Linker::Compare): each comparator turns the two values of one field into a comparison level
//      ("gamma"): -1 when either value is missing, 0 for the least similar ("else"), up to the most similar
//      (exact agreement). Kinds: exact, jaro_winkler, levenshtein, numeric, date.
//   3. Estimation (EstimateParameters, Linker::Estimate): expectation-maximisation without labels fits lambda (the
//      share of candidate pairs that are matches), m[k][g] = P(level g on comparator k | match) and
//      u[k][g] = P(level g | non-match). u starts from the level frequencies of random pairs of records (nearly all
//      non-matches), m from "the most similar level is likely among matches".
//   4. Scoring: match weight = log2(lambda / (1 - lambda)) + sum over comparators of log2(m[k][g] / u[k][g]) (a
//      missing value adds 0); match probability = 2^w / (1 + 2^w). Pairs at or above the threshold are returned.
//   5. Optionally Cluster: connected components of the pairs at or above a probability.
//
// Two modes: dedupe (one table; pairs (i, j) with i < j) and link (two tables with the same field names; pairs
// (left index, right index)). Records are tables of named string fields (Records); values are trimmed of ASCII
// whitespace and ASCII-lower-cased before use, and an empty value is missing. Comparisons are byte-wise (a
// non-ASCII character counts as several).
//
// Configuration is data (LinkageConfig::FromJson), never code, so it can be set over REST:
//
//   {
//     "comparators": [
//       {"field": "given_name", "kind": "jaro_winkler", "thresholds": [0.94, 0.85]},
//       {"field": "surname", "kind": "jaro_winkler", "thresholds": [0.94, 0.85]},
//       {"field": "street_number", "kind": "levenshtein", "thresholds": [1]},
//       {"field": "postcode", "kind": "exact"},
//       {"name": "dob", "field": "date_of_birth", "kind": "date", "thresholds": [31, 366]},
//       {"field": "income", "kind": "numeric", "thresholds": [0.1], "relative": true}
//     ],
//     "blocking": [
//       [{"field": "surname", "transform": "prefix", "length": 3}, {"field": "given_name", "transform": "soundex"}],
//       ["date_of_birth"],
//       ["postcode", "street_number"]
//     ],
//     "maxPairs": 5000000,
//     "threshold": 0.5,
//     "em": {"maxIterations": 500, "tolerance": 1e-6, "pseudoCount": 1, "uSamplePairs": 100000, "fixU": false,
//            "seed": 42}
//   }
//
// Comparator levels (gamma, highest = most similar; "exactLevel" defaults to true and adds the top level for equal
// values; it is implied for "exact"):
//   exact          1 = equal, 0 = else
//   jaro_winkler   thresholds are similarities in (0, 1), strictly decreasing: [0.94, 0.85] gives
//                  3 = equal, 2 = JW >= 0.94, 1 = JW >= 0.85, 0 = else
//   levenshtein    thresholds are edit distances, integers >= 1, strictly increasing: [1, 2] gives
//                  3 = equal, 2 = distance <= 1, 1 = distance <= 2, 0 = else
//   numeric        values parsed as decimal numbers (an unparsable value is missing); thresholds are absolute
//                  differences |a - b| (or, with "relative": true, |a - b| / max(|a|, |b|)), >= 0, strictly
//                  increasing: level for |diff| <= threshold, as for levenshtein
//   date           values YYYYMMDD or ISO 8601 (YYYY-MM-DD, optionally followed by 'T' or ' ' and a time, which is
//                  ignored); an unparsable or impossible date is missing; thresholds are differences in days,
//                  integers >= 0, strictly increasing
//
// Limits (InvalidArgument naming the field path, e.g. "comparators[2].thresholds[1]", "blocking[0][1].length"):
//   comparators      1-32, unique names of 1-128 bytes, 2-16 levels each (else + thresholds + exact)
//   blocking         1-32 rules of 1-8 keys; prefix length 1-64
//   maxPairs         1 to 2^31 - 1; default 5,000,000
//   threshold        0 to 1; default 0.5
//   em               maxIterations 1-100,000 (default 500); tolerance in (0, 0.1] (default 1e-6); pseudoCount
//                    0-1,000,000 (default 1); uSamplePairs 0-100,000,000 (default 100,000; 0 starts u from the
//                    candidate pairs instead); fixU (default false; needs uSamplePairs > 0); seed 0 to 2^63 - 1
//                    (default 42)
//   tables           1-1,024 fields with unique names of 1-256 bytes; values of at most 1,024 bytes; at most
//                    2^32 - 2 records
//
// Errors: InvalidArgument (bad configuration, a field a comparator or rule names that the table lacks, a malformed
// table or comparison vector), ResourceExhausted (blocking would give more than maxPairs distinct pairs: nothing is
// returned; make the rules stricter or raise maxPairs).
//
// Thread-safety: a Linker is immutable after Create; its const methods may be called concurrently. Free functions
// are pure (Jaro keeps a per-thread scratch table). Records, ComparisonVectors and Model are plain values.
//
// Cost, for n records, P candidate pairs, K comparators, V distinct comparison vectors:
//   Block      O(n * rules + P * rules) time; 8 bytes per pair
//   Compare    O(P * K) comparisons; Jaro-Winkler O(len) word operations up to 64 bytes, O(len^2) beyond;
//              Levenshtein O(len^2) at worst, stopping once the largest threshold is exceeded; K bytes per pair
//   Estimate   uSamplePairs comparisons, then O(iterations * V * K) (V is usually small: thousands)
//   Link/Dedupe: all of the above plus O(P log P) to sort the returned pairs.
// FEBRL dataset4a x dataset4b (5,000 x 5,000 records, 10 comparators, 8,579 candidate pairs) runs end to end,
// CSV parsing included, in about 0.2 s on one core, most of it comparing the 100,000 random pairs that start u
// (docs/identity.md).

#ifndef CDP_IDENTITY_LINKAGE_H_
#define CDP_IDENTITY_LINKAGE_H_

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "cdp/json.h"
#include "cdp/status.h"

namespace cdp::internal::linkage {

// ---- limits ---------------------------------------------------------------------------------------------------------

inline constexpr size_t kMaxComparators = 32;
inline constexpr size_t kMaxLevels = 16;  // non-null levels of one comparator
inline constexpr size_t kMaxBlockingRules = 32;
inline constexpr size_t kMaxKeysPerRule = 8;
inline constexpr size_t kMaxFields = 1024;
inline constexpr size_t kMaxValueBytes = 1024;
inline constexpr uint32_t kMaxRecords = 0xFFFFFFFEu;
// m and u never fall below this, so a weight stays finite (at most about 30 bits).
inline constexpr double kMinProbability = 1e-9;

// ---- string comparators (exposed for tests and for callers that explain a score) ------------------------------------

// Jaro similarity in [0, 1]; 1 for two empty strings.
double Jaro(std::string_view a, std::string_view b);
// Jaro-Winkler similarity in [0, 1] (Winkler's prefix bonus: scale 0.1 over a common prefix of at most 4 bytes,
// applied when Jaro > 0.7). MARTHA/MARHTA 0.961, DWAYNE/DUANE 0.840, DIXON/DICKSONX 0.813.
double JaroWinkler(std::string_view a, std::string_view b);
// Levenshtein distance (insertions, deletions, substitutions of bytes). When the distance exceeds `max`, returns
// max + 1, without finishing the table when the lengths differ by more than max or a whole row exceeds it.
int Levenshtein(std::string_view a, std::string_view b, int max = 1 << 30);
// American Soundex: the first letter and three digits ("robert" -> "r163", "tymczak" -> "t522"); non-letters are
// skipped; empty when `s` has no ASCII letter.
std::string Soundex(std::string_view s);
// Days since 1970-01-01 of YYYYMMDD or YYYY-MM-DD[(T| )...]; nullopt when malformed or not a real date.
std::optional<int64_t> ParseDate(std::string_view s);

// ---- records --------------------------------------------------------------------------------------------------------

// A table of records with named string fields. Each row holds one value per field, in the order of `fields`; an
// empty (or all-whitespace) value is missing.
struct Records {
  std::vector<std::string> fields;
  std::vector<std::vector<std::string>> rows;

  // Index of a field, or -1.
  int FieldIndex(std::string_view name) const;
  // Checks the limits above and that every row has fields.size() values. Errors: InvalidArgument with field
  // "fields[i]" or "rows[i]" / "rows[i].<field>".
  Status Validate() const;
};

struct DelimitedOptions {
  // Between values. Default: ",". FEBRL files use ", ".
  std::string separator = ",";
  // Largest accepted input. Default: 256 MiB.
  size_t max_bytes = 256u << 20;
};

// A table from JSON objects (profiles, say): one field per dotted path ("attributes.lastName"), named by the path.
// Strings are taken as they are, numbers in their JSON form, booleans as "true"/"false"; an absent member, null, an
// array or an object is missing. Errors: InvalidArgument as Records::Validate (field "rows[i].<path>"), or
// "objects[i]" when an element is not an object.
Result<Records> RecordsFromJson(std::span<const Json> objects, std::vector<std::string> paths);

// Parses delimited text whose first line names the fields (CSV when the separator is ","). A value may be quoted
// with '"' (then it may hold the separator, line breaks and "" for a quote); unquoted values are trimmed of ASCII
// whitespace. Lines end with "\n" or "\r\n"; empty lines are skipped. Errors: InvalidArgument naming the line
// ("line 12: expected 11 values, got 10"), ResourceExhausted beyond max_bytes; the result is Validate()d.
Result<Records> ParseDelimited(std::string_view text, const DelimitedOptions& options = {});

// ---- configuration --------------------------------------------------------------------------------------------------

enum class ComparatorKind : uint8_t { kExact, kJaroWinkler, kLevenshtein, kNumeric, kDate };
std::string_view ComparatorKindName(ComparatorKind kind);  // "exact", "jaro_winkler", ...

struct ComparatorSpec {
  // Unique among the comparators; names the comparator in the model. Default (empty): the field name.
  std::string name;
  // The field compared (the same name in both tables in link mode).
  std::string field;
  ComparatorKind kind = ComparatorKind::kExact;
  // Level boundaries; see the table at the top of this file. Empty for kExact.
  std::vector<double> thresholds;
  // A top level for equal values (string equality; numeric equality for numeric and date). Always on for kExact.
  bool exact_level = true;
  // numeric: compare |a - b| / max(|a|, |b|) rather than |a - b| (two zeros differ by 0).
  bool relative = false;

  // Non-null levels: 1 ("else") + thresholds + the exact level.
  int NumLevels() const;
  // A short label of a level for explanations: "null", "else", "exact", "jw>=0.94", "lev<=1", "diff<=10",
  // "reldiff<=0.1", "days<=31".
  std::string LevelLabel(int gamma) const;
};

enum class KeyTransform : uint8_t { kNone, kPrefix, kSoundex };

// One part of a blocking key: a field, as is (after trim and lower-case), cut to its first `length` bytes, or coded
// as Soundex. A record whose value is missing (or whose Soundex is empty) has no key for the rule.
struct BlockingKey {
  std::string field;
  KeyTransform transform = KeyTransform::kNone;
  int length = 0;  // kPrefix: 1-64
};

// Two records are a candidate pair under a rule when every key part is present in both and equal.
struct BlockingRule {
  std::vector<BlockingKey> keys;
};

struct EmOptions {
  // Iterations at most. Default: 500.
  int max_iterations = 500;
  // Converged when no parameter (lambda, any m or u) moved more than this in one iteration. Default: 1e-6.
  double tolerance = 1e-6;
  // Added to the expected count of every level in each M-step (and to the level counts that start u), so a level
  // never seen in one class gets a small probability rather than ~0: weights stay within what the data can show.
  // Default: 1.0 (0 is plain maximum likelihood, with m and u floored at kMinProbability).
  double pseudo_count = 1.0;
  // Random pairs of records whose level frequencies start u (and, with fix_u, are u). 0: start u from the level
  // frequencies of the candidate pairs. When the tables have fewer pairs than this, every pair is used.
  // Default: 100,000.
  int64_t u_sample_pairs = 100000;
  // Keep u from the random pairs and estimate only lambda and m (splink's usual way). Default: false (EM estimates
  // all three, which fits the candidate pairs that blocking selected).
  bool fix_u = false;
  // Seed of the random pairs: a run is deterministic. Default: 42.
  uint64_t seed = 42;
};

struct LinkageConfig {
  std::vector<ComparatorSpec> comparators;
  std::vector<BlockingRule> blocking;
  // Most distinct candidate pairs blocking may give. Default: 5,000,000 (about 8 + K bytes each).
  int64_t max_pairs = 5000000;
  // Pairs with match probability >= threshold are returned by Link/Dedupe. Default: 0.5.
  double threshold = 0.5;
  EmOptions em;

  // Parses and validates the JSON shape at the top of this file. Unknown members are errors. A blocking key is
  // a field name or {"field", "transform": "none"|"prefix"|"soundex", "length"}; a rule is an array of keys.
  static Result<LinkageConfig> FromJson(const Json& json);
  // The JSON form (every member, defaults included); FromJson(ToJson()) gives the same config.
  Json ToJson() const;
  // Checks the limits above; fills defaulted comparator names. Errors: InvalidArgument naming the field path.
  Status Validate();
};

// ---- comparison vectors and the model -------------------------------------------------------------------------------

// A candidate pair: indexes into the left table and the right table (dedupe: both into the one table, left < right).
struct CandidatePair {
  uint32_t left = 0;
  uint32_t right = 0;
  bool operator==(const CandidatePair&) const = default;
  auto operator<=>(const CandidatePair&) const = default;
};

// Comparison levels of many pairs, row-major: row i holds num_comparators() gammas, each -1 (null) or
// 0 .. num_levels[k] - 1.
class ComparisonVectors {
 public:
  ComparisonVectors() = default;
  // Levels per comparator: 1-32 comparators of 2-16 levels. Errors: InvalidArgument.
  static Result<ComparisonVectors> Create(std::vector<int> num_levels);

  // Appends one row; checks its size and every gamma. Errors: InvalidArgument naming the comparator ("[k]").
  Status Add(std::span<const int8_t> gammas);
  // Appends without checks (the caller guarantees the row is valid).
  void AddUnchecked(const int8_t* gammas) { gamma_.insert(gamma_.end(), gammas, gammas + num_levels_.size()); }

  size_t size() const { return num_levels_.empty() ? 0 : gamma_.size() / num_levels_.size(); }
  size_t num_comparators() const { return num_levels_.size(); }
  const std::vector<int>& num_levels() const { return num_levels_; }
  const int8_t* row(size_t i) const { return gamma_.data() + i * num_levels_.size(); }
  void Reserve(size_t rows) { gamma_.reserve(rows * num_levels_.size()); }

 private:
  std::vector<int> num_levels_;
  std::vector<int8_t> gamma_;
};

struct ComparatorParameters {
  std::string name;
  std::vector<double> m;  // P(level | match), by gamma
  std::vector<double> u;  // P(level | non-match), by gamma
};

struct Model {
  // Prior probability that a candidate pair is a match.
  double lambda = 0.5;
  std::vector<ComparatorParameters> comparators;
  // EM diagnostics: iterations run, and whether the tolerance was reached within max_iterations.
  int iterations = 0;
  bool converged = false;

  // log2(lambda / (1 - lambda)).
  double PriorWeight() const;
  // log2(m / u) of one level; 0 for gamma -1 (missing).
  double LevelWeight(size_t comparator, int gamma) const;
  // PriorWeight() + the sum of the level weights of a comparison vector.
  double MatchWeight(const int8_t* gammas) const;
  // 2^w / (1 + 2^w).
  static double Probability(double match_weight);

  // Why the model cannot be telling records of one person from others: one message per comparator whose least
  // similar level is evidence for a match, more than twice as common among matches as among non-matches (m > 2u).
  // Such a model scores a pair that disagrees on that field as a likely match: what EM fits when the candidate
  // pairs hold few or no true matches (after the duplicates were merged away), its "match" class then being some
  // other shared trait. (The most similar level is not checked: when a field is a blocking key, non-matching
  // candidates agree on it exactly more often than matches with typos do.) Empty for a model of real duplicates.
  // O(comparators).
  std::vector<std::string> Implausible() const;

  // {"lambda": .., "comparators": [{"name": .., "m": [..], "u": [..]}], "iterations": .., "converged": ..}
  Json ToJson() const;
  // Parses a stored model. Checks lambda in (0, 1), and per comparator 2-16 levels with m and u of equal length,
  // each probability in [0, 1] and each summing to 1 within 1e-6. Errors: InvalidArgument naming the field path.
  static Result<Model> FromJson(const Json& json);
};

// Expectation-maximisation over comparison vectors (identical vectors are counted once). `start` gives the initial
// lambda, m and u (and the comparator names); without it, u starts from the level frequencies of `vectors` (plus
// options.pseudo_count per level), m puts 0.9 on the most similar level and spreads 0.1 evenly over the others, and
// lambda starts at 0.5; the comparators are named "c0", "c1", ... Each iteration: E-step, the posterior match
// probability of every distinct vector (in log space); M-step, lambda = the mean posterior, m[k][g] = (expected
// matches at level g + pseudo_count) / (expected matches with a non-null level + pseudo_count * levels), u the same
// over non-matches (kept as started with fix_u); m and u are floored at kMinProbability. A missing level (-1) counts
// towards neither. Stops when no parameter moved more than options.tolerance, or after options.max_iterations
// (then converged = false). If the fitted "match" class agrees less than the other (the sum over comparators of
// m - u on the top level is negative), the classes are swapped (not with fix_u, where u anchors the labels).
// Errors: InvalidArgument when `vectors` is empty or `start` does not fit its shape.
Result<Model> EstimateParameters(const ComparisonVectors& vectors, const EmOptions& options,
                                 const Model* start = nullptr);

// ---- scoring, clustering, evaluation --------------------------------------------------------------------------------

struct ScoredPair {
  uint32_t left = 0;
  uint32_t right = 0;
  double match_weight = 0;
  double match_probability = 0;
};

struct LinkResult {
  Model model;
  // Candidate pairs that blocking produced (all were compared and scored).
  int64_t candidate_pairs = 0;
  // Pairs with match_probability >= threshold, by descending match weight (ties: ascending left, then right).
  std::vector<ScoredPair> pairs;
  // The comparison levels of `pairs`, row i for pairs[i] (to explain a score with Model::LevelWeight).
  ComparisonVectors comparisons;
};

// Connected components of the pairs with match_probability >= threshold. Nodes: left records 0 .. num_left - 1,
// then right records num_left .. num_left + num_right - 1 (dedupe: num_right = 0 and pairs index the one table).
// Returns a cluster id per node: the smallest node index of its component. Pairs indexing past the tables are
// ignored. O(nodes + pairs).
std::vector<uint32_t> Cluster(size_t num_left, size_t num_right, std::span<const ScoredPair> pairs, double threshold);

struct PairMetrics {
  int64_t true_positives = 0;
  int64_t false_positives = 0;
  int64_t false_negatives = 0;
  double precision = 0;  // 0 when nothing was predicted
  double recall = 0;     // 0 when the truth is empty
  double f1 = 0;
};

// Pairs of records with the same non-empty entity id: dedupe when `right` is null (pairs i < j), else link. Sorted.
// For evaluation: the output grows with the square of the largest entity.
std::vector<CandidatePair> TruePairs(std::span<const std::string> left, const std::vector<std::string>* right);
// Precision, recall and F1 of `predicted` against `truth` (duplicates ignored; in dedupe mode (i, j) and (j, i)
// are the same pair).
PairMetrics EvaluatePairs(std::span<const CandidatePair> predicted, std::span<const CandidatePair> truth, bool dedupe);

// The blocking key of each rule for row `row` of `records`, as Block computes them (two records share a block
// under rule r when their keys[r] are equal and non-empty); empty when a part is missing. For indexing records one
// at a time (fuzzy matching as profiles are written). Errors: InvalidArgument for a row past the table or a field
// the table lacks ("blocking[r][i].field").
Result<std::vector<std::string>> BlockingKeys(const LinkageConfig& config, const Records& records, size_t row);

// ---- the pipeline ---------------------------------------------------------------------------------------------------

class Linker {
 public:
  // Validates `config` (see LinkageConfig::Validate).
  static Result<Linker> Create(LinkageConfig config);

  const LinkageConfig& config() const { return config_; }

  // `right` null means dedupe of `left`. Every method checks the tables (Records::Validate) and that they hold
  // the fields of the comparators and rules (InvalidArgument naming "comparators[k].field" or
  // "blocking[r][i].field").

  // Candidate pairs: the union over the rules, each pair once (link: by left then right within a rule's block).
  // Errors: ResourceExhausted with field "blocking[r]" when more than maxPairs distinct pairs arise.
  Result<std::vector<CandidatePair>> Block(const Records& left, const Records* right = nullptr) const;

  // The comparison vector of each pair. Errors: InvalidArgument when a pair indexes past a table (or, in dedupe,
  // pairs a record with itself).
  Result<ComparisonVectors> Compare(const Records& left, const Records* right,
                                    std::span<const CandidatePair> pairs) const;

  // EM over the comparison vectors of the candidate pairs, u started from random pairs of the tables (EmOptions).
  // Errors: InvalidArgument when `candidates` is empty or does not fit the comparators.
  Result<Model> Estimate(const Records& left, const Records* right, const ComparisonVectors& candidates) const;

  // Block, Compare, Estimate (unless `model` is given, which must fit the comparators by name and levels), score,
  // and keep the pairs at or above the threshold. With no candidate pairs, `pairs` is empty and the model is EM's
  // start (iterations 0, converged false). To score new records against known ones, Link(new, known, &model).
  Result<LinkResult> Run(const Records& left, const Records* right = nullptr, const Model* model = nullptr) const;
  Result<LinkResult> Dedupe(const Records& records, const Model* model = nullptr) const {
    return Run(records, nullptr, model);
  }
  Result<LinkResult> Link(const Records& left, const Records& right, const Model* model = nullptr) const {
    return Run(left, &right, model);
  }

 private:
  explicit Linker(LinkageConfig config) : config_(std::move(config)) {}
  LinkageConfig config_;
};

}  // namespace cdp::internal::linkage

#endif  // CDP_IDENTITY_LINKAGE_H_
