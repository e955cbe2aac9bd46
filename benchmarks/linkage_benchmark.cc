// Copyright 2026 The libcdp Authors.
//
// Fellegi-Sunter record linkage (src/identity/linkage.h) end to end on FEBRL: dataset4a x dataset4b linkage
// (5,000 x 5,000 records, 5,000 true links), and with --dedupe also the deduplication of dataset3 (5,000 records,
// 6,538 true pairs).
//
//   build/benchmarks/linkage_benchmark [--runs 5] [--dedupe] [--strict] [--print-model] [--data tests/data/febrl]
//                                      [--config tests/identity/febrl_linkage_config.json]
//
// Each run is timed end to end: read and parse the CSV files, block, compare, estimate m, u and lambda by EM
// (u started from 100,000 random pairs), score, keep the pairs with match probability >= 0.5. The report gives
// the median and the fastest run against the target (< 1 s for 4a x 4b on the 2-core reference machine; the code
// is single-threaded), a breakdown of one run by stage, and the precision, recall and F1 of the pairs found against
// the truth in rec_id (records rec-<n>-org and rec-<n>-dup-<k> are the same person). --strict exits with 1 when the
// time target or F1 >= 0.95 is missed.

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "identity/linkage.h"

namespace {

namespace lk = cdp::internal::linkage;

double Now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

[[noreturn]] void Die(const std::string& what, const cdp::Status& status) {
  std::fprintf(stderr, "%s: %s\n", what.c_str(), status.ToString().c_str());
  std::exit(2);
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) Die(path, cdp::Status::NotFound("cannot open"));
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

lk::Records LoadFebrl(const std::string& path) {
  auto records = lk::ParseDelimited(ReadFile(path), {.separator = ", "});
  if (!records.ok()) Die(path, records.status());
  return std::move(records).value();
}

// rec-<n>-org / rec-<n>-dup-<k> -> "<n>".
std::vector<std::string> Entities(const lk::Records& records) {
  const int id = records.FieldIndex("rec_id");
  std::vector<std::string> out;
  for (const auto& row : records.rows) {
    const std::string& rec = row[static_cast<size_t>(id)];
    const size_t a = rec.find('-'), b = rec.find('-', a + 1);
    out.push_back(rec.substr(a + 1, b - a - 1));
  }
  return out;
}

struct Outcome {
  double seconds = 0;
  lk::LinkResult result;
  lk::PairMetrics metrics;
};

Outcome RunOnce(const lk::Linker& linker, const std::string& a, const std::string& b) {
  Outcome o;
  const double start = Now();
  const lk::Records left = LoadFebrl(a);
  const lk::Records right = b.empty() ? lk::Records() : LoadFebrl(b);
  auto result = b.empty() ? linker.Dedupe(left) : linker.Link(left, right);
  o.seconds = Now() - start;
  if (!result.ok()) Die("linkage", result.status());
  o.result = std::move(result).value();
  std::vector<lk::CandidatePair> predicted;
  for (const lk::ScoredPair& p : o.result.pairs) predicted.push_back({p.left, p.right});
  const std::vector<std::string> le = Entities(left);
  const std::vector<std::string> re = b.empty() ? std::vector<std::string>() : Entities(right);
  const auto truth = lk::TruePairs(le, b.empty() ? nullptr : &re);
  o.metrics = lk::EvaluatePairs(predicted, truth, b.empty());
  return o;
}

// One run, step by step, to show where the time goes.
void Breakdown(const lk::Linker& linker, const std::string& a, const std::string& b) {
  double t0 = Now();
  const lk::Records left = LoadFebrl(a);
  const lk::Records right = b.empty() ? lk::Records() : LoadFebrl(b);
  const lk::Records* r = b.empty() ? nullptr : &right;
  double t1 = Now();
  auto pairs = linker.Block(left, r);
  if (!pairs.ok()) Die("block", pairs.status());
  double t2 = Now();
  auto vectors = linker.Compare(left, r, *pairs);
  if (!vectors.ok()) Die("compare", vectors.status());
  double t3 = Now();
  auto model = linker.Estimate(left, r, *vectors);
  if (!model.ok()) Die("estimate", model.status());
  double t4 = Now();
  std::printf(
      "  breakdown: load %.1f ms, block %.1f ms (%zu pairs), compare %.1f ms, estimate %.1f ms "
      "(random pairs for u + %d EM iterations%s)\n",
      (t1 - t0) * 1e3, (t2 - t1) * 1e3, pairs->size(), (t3 - t2) * 1e3, (t4 - t3) * 1e3, model->iterations,
      model->converged ? ", converged" : ", NOT converged");
}

bool Report(const char* task, const lk::Linker& linker, const std::string& a, const std::string& b, int runs,
            double target_seconds, bool print_model) {
  std::vector<double> times;
  Outcome last;
  for (int i = 0; i < runs; ++i) {
    last = RunOnce(linker, a, b);
    times.push_back(last.seconds);
  }
  std::sort(times.begin(), times.end());
  const double median = times[times.size() / 2];
  const lk::PairMetrics& m = last.metrics;
  std::printf("%s\n", task);
  std::printf("  time: median %.3f s, fastest %.3f s over %d runs; target < %.1f s: %s\n", median, times.front(), runs,
              target_seconds, median < target_seconds ? "met" : "MISSED");
  std::printf("  candidate pairs %lld, returned (p >= %.2f) %zu; EM %d iterations, lambda %.4f\n",
              static_cast<long long>(last.result.candidate_pairs), linker.config().threshold, last.result.pairs.size(),
              last.result.model.iterations, last.result.model.lambda);
  std::printf("  precision %.4f  recall %.4f  F1 %.4f  (tp %lld, fp %lld, fn %lld); target F1 >= 0.95: %s\n",
              m.precision, m.recall, m.f1, static_cast<long long>(m.true_positives),
              static_cast<long long>(m.false_positives), static_cast<long long>(m.false_negatives),
              m.f1 >= 0.95 ? "met" : "MISSED");
  Breakdown(linker, a, b);
  if (print_model) {
    const lk::Model& model = last.result.model;
    std::printf("  model: lambda %.4f, prior weight %.2f\n", model.lambda, model.PriorWeight());
    for (size_t k = 0; k < model.comparators.size(); ++k) {
      const lk::ComparatorSpec& spec = linker.config().comparators[k];
      std::printf("    %-14s", spec.name.c_str());
      for (size_t g = 0; g < model.comparators[k].m.size(); ++g) {
        std::printf(" %s m=%.4f u=%.4f w=%+.1f;", spec.LevelLabel(static_cast<int>(g)).c_str(),
                    model.comparators[k].m[g], model.comparators[k].u[g], model.LevelWeight(k, static_cast<int>(g)));
      }
      std::printf("\n");
    }
  }
  return median < target_seconds && m.f1 >= 0.95;
}

}  // namespace

int main(int argc, char** argv) {
  std::string data = CDP_LINKAGE_DATA_DIR;
  std::string config_path = CDP_LINKAGE_CONFIG;
  int runs = 5;
  bool dedupe = false, strict = false, print_model = false;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s needs a value\n", arg.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (arg == "--data") {
      data = value();
    } else if (arg == "--config") {
      config_path = value();
    } else if (arg == "--runs") {
      runs = std::max(1, std::atoi(value().c_str()));
    } else if (arg == "--dedupe") {
      dedupe = true;
    } else if (arg == "--strict") {
      strict = true;
    } else if (arg == "--print-model") {
      print_model = true;
    } else {
      std::fprintf(stderr, "usage: %s [--runs N] [--dedupe] [--strict] [--print-model] [--data DIR] [--config FILE]\n",
                   argv[0]);
      return 2;
    }
  }
  auto json = cdp::Json::Parse(ReadFile(config_path));
  if (!json.ok()) Die(config_path, json.status());
  auto config = lk::LinkageConfig::FromJson(*json);
  if (!config.ok()) Die(config_path, config.status());
  auto linker = lk::Linker::Create(*config);
  if (!linker.ok()) Die("linker", linker.status());

  std::printf("FEBRL record linkage (Fellegi-Sunter, EM without labels), config %s\n", config_path.c_str());
  bool ok = Report("dataset4a x dataset4b (link 5,000 x 5,000)", *linker, data + "/dataset4a.csv",
                   data + "/dataset4b.csv", runs, 1.0, print_model);
  if (dedupe) {
    ok = Report("dataset3 (dedupe 5,000)", *linker, data + "/dataset3.csv", "", runs, 1.0, print_model) && ok;
  }
  return strict && !ok ? 1 : 0;
}
