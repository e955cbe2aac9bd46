// Copyright 2026 The libcdp Authors.
//
// The web console's files (examples/server/console), built into cdp-server by console/embed.cmake and served at
// /console/ (docs/console.md).

#ifndef CDP_EXAMPLES_SERVER_CONSOLE_FILES_H_
#define CDP_EXAMPLES_SERVER_CONSOLE_FILES_H_

#include <string_view>
#include <vector>

namespace cdp::server {

struct ConsoleFile {
  std::string_view name;  // "index.html", "app.js", ...
  std::string_view body;
};

// Every file of the console, in a fixed order. Thread-safe.
const std::vector<ConsoleFile>& ConsoleFiles();

}  // namespace cdp::server

#endif  // CDP_EXAMPLES_SERVER_CONSOLE_FILES_H_
