// Copyright 2026 The libcdp Authors.
//
// Helpers shared by libcdp's tests: temporary directories, JSON literals, opening engines.

#ifndef CDP_TESTS_TEST_UTIL_H_
#define CDP_TESTS_TEST_UTIL_H_

#include <gtest/gtest.h>

#include <filesystem>
#include <random>
#include <string>

#include "cdp/cdp.h"

namespace cdp::testing {

// A fresh directory under the system temp dir, removed with the object.
class TempDir {
 public:
  TempDir() {
    std::random_device rd;
    path_ = std::filesystem::temp_directory_path() / ("cdp-test-" + std::to_string(rd()) + "-" + std::to_string(rd()));
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  std::string path() const { return path_.string(); }
  std::string Sub(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

// Parses a JSON literal; fails the test on malformed input.
inline Json J(std::string_view text) {
  auto parsed = Json::Parse(text);
  EXPECT_TRUE(parsed.ok()) << parsed.status().ToString() << " in " << text;
  return parsed.ok() ? std::move(parsed).value() : Json();
}

template <typename T>
T Unwrap(Result<T> r) {
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  if (!r.ok()) throw std::runtime_error(r.status().ToString());
  return std::move(r).value();
}

// An engine in a temp dir, for fixtures.
class EngineTest : public ::testing::Test {
 protected:
  void SetUp() override { Reopen(); }
  void Reopen() {
    engine_.reset();
    auto opened = Engine::Open(options_, dir_.path());
    ASSERT_TRUE(opened.ok()) << opened.status().ToString();
    engine_ = std::move(opened).value();
  }
  Profiles& profiles() { return engine_->profiles(); }
  Events& events() { return engine_->events(); }

  TempDir dir_;
  Options options_;
  std::unique_ptr<Engine> engine_;
};

}  // namespace cdp::testing

#endif  // CDP_TESTS_TEST_UTIL_H_
