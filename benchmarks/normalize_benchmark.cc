// Copyright 2026 The libcdp Authors.
//
// Identifier normalization (IdentityRules::Normalize with the default rules): the per-identifier work every event
// and identify does before resolution (trim, validate, lower-case, blocked values, E.164 for phones). Each
// benchmark normalizes a rotating set of 4,096 distinct values of one type.
//
//   build-bench/benchmarks/normalize_benchmark

#include <benchmark/benchmark.h>

#include <string>
#include <vector>

#include "identity/rules.h"

namespace {

using cdp::internal::Identifier;
using cdp::internal::IdentityRules;
using cdp::internal::IgnoredIdentifier;

std::vector<std::string> Values(const std::string& type) {
  std::vector<std::string> out;
  for (int i = 0; i < 4096; ++i) {
    const std::string n = std::to_string(i);
    if (type == "email") out.push_back("Person" + n + "@Example.com");
    if (type == "customerId") out.push_back("C" + n);
    if (type == "deviceId") out.push_back("dev-4f1c2a9e-" + n);
    if (type == "phone") out.push_back("+1 (650) 2" + std::string(6 - n.size(), '0') + n);
  }
  return out;
}

void BM_Normalize(benchmark::State& state, const std::string& type) {
  const std::shared_ptr<const IdentityRules> rules = IdentityRules::Defaults();
  const std::vector<std::string> values = Values(type);
  size_t i = 0, ok = 0;
  Identifier id;
  IgnoredIdentifier ignored;
  for (auto _ : state) {
    ok += rules->Normalize(type, values[i++ & 4095], &id, &ignored);
    benchmark::DoNotOptimize(id);
  }
  if (ok != static_cast<size_t>(state.iterations())) state.SkipWithError("a value was not normalized");
}

BENCHMARK_CAPTURE(BM_Normalize, email, std::string("email"));
BENCHMARK_CAPTURE(BM_Normalize, customerId, std::string("customerId"));
BENCHMARK_CAPTURE(BM_Normalize, deviceId, std::string("deviceId"));
BENCHMARK_CAPTURE(BM_Normalize, phone, std::string("phone"));

}  // namespace

BENCHMARK_MAIN();
