// Copyright 2026 The libcdp Authors.
//
// The C++ quick start: open a database, create a profile, track events, read the profile back.
// Usage: cdp_consumer DIR

#include <cdp/cdp.h>

#include <iostream>

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: cdp_consumer DIR\n";
    return 2;
  }
  auto opened = cdp::Engine::Open(cdp::Options{}, argv[1]);
  if (!opened.ok()) {
    std::cerr << opened.status().ToString() << "\n";
    return 1;
  }
  cdp::Engine& engine = **opened;

  auto profile = engine.profiles().Create(
      *cdp::Json::Parse(R"({"attributes": {"firstName": "Ada", "email": "ada@example.com", "country": "GB"}})"));
  if (!profile.ok()) {
    std::cerr << profile.status().ToString() << "\n";
    return 1;
  }
  auto tracked = engine.events().Track(*cdp::Json::Parse(
      R"({"type": "purchase", "email": "ada@example.com", "properties": {"revenue": 42.5, "orderId": "o-1"}})"));
  if (!tracked.ok()) {
    std::cerr << tracked.status().ToString() << "\n";
    return 1;
  }
  auto again = engine.profiles().Get(tracked->profile_id);
  if (!again.ok()) {
    std::cerr << again.status().ToString() << "\n";
    return 1;
  }
  std::cout << "profile " << again->Find("id")->as_string() << " ltv " << again->FindPath("computed.ltv")->as_number()
            << "\n";
  return again->FindPath("computed.ltv")->as_number() == 42.5 ? 0 : 1;
}
