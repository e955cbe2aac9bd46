// Copyright 2026 The libcdp Authors.
//
// What the benchmarks that compare with DuckDB (segment_bench, analytics_bench) share: the CSV files of the data set
// and the JSON files of the answers and timings they write for benchmarks/duckdb/, a clock and the process's memory.

#ifndef CDP_BENCHMARKS_CSV_WRITER_H_
#define CDP_BENCHMARKS_CSV_WRITER_H_

#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <string_view>

#include "cdp/json.h"

namespace cdp::bench {

inline double Seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// The resident set of this process, in KiB (0 when /proc is not readable).
inline long RssKiB() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  }
  return 0;
}

// A CSV file written through a large buffer.
class CsvWriter {
 public:
  explicit CsvWriter(const std::string& path) : f_(std::fopen(path.c_str(), "wb")) {
    if (f_ == nullptr) {
      std::fprintf(stderr, "cannot write %s\n", path.c_str());
      std::exit(2);
    }
  }
  ~CsvWriter() {
    Flush();
    std::fclose(f_);
  }
  CsvWriter& Text(std::string_view s) {
    Sep();
    buf_.append(s);
    return *this;
  }
  CsvWriter& Int(int64_t v) {
    char tmp[24];
    return Text(std::string_view(tmp, std::to_chars(tmp, tmp + sizeof tmp, v).ptr - tmp));
  }
  CsvWriter& Double(double v) {  // shortest text that reads back as the same double
    char tmp[32];
    return Text(std::string_view(tmp, std::to_chars(tmp, tmp + sizeof tmp, v).ptr - tmp));
  }
  CsvWriter& Bool(bool v) { return Text(v ? "true" : "false"); }
  CsvWriter& Empty() { return Text(""); }
  void EndRow() {
    buf_.push_back('\n');
    first_ = true;
    if (buf_.size() > (1 << 20)) Flush();
  }

 private:
  void Sep() {
    if (!first_) buf_.push_back(',');
    first_ = false;
  }
  void Flush() {
    if (std::fwrite(buf_.data(), 1, buf_.size(), f_) != buf_.size()) {
      std::fprintf(stderr, "write failed\n");
      std::exit(2);
    }
    buf_.clear();
  }
  std::FILE* f_;
  std::string buf_;
  bool first_ = true;
};

inline void WriteJson(const std::string& path, const Json& json) {
  std::ofstream out(path);
  out << json.Dump() << "\n";
  if (!out) {
    std::fprintf(stderr, "cannot write %s\n", path.c_str());
    std::exit(2);
  }
}

}  // namespace cdp::bench

#endif  // CDP_BENCHMARKS_CSV_WRITER_H_
