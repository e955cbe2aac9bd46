// Copyright 2026 The libcdp Authors.
//
// cdp-server: libcdp's REST API over HTTP. See docs/rest-api.md.
//
//   cdp-server --data DIR [--host 127.0.0.1] [--port 8080] [--api-key KEY] [--write-key KEY] [--threads 8] [--sync]

#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>

#include <atomic>
#include <charconv>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>

#include "cdp/cdp.h"
#include "server.h"

namespace cdp::server {
namespace {

constexpr char kUsage[] =
    "usage: cdp-server --data DIR [--host HOST] [--port PORT] [--api-key KEY] [--write-key KEY]\n"
    "                  [--write-key-principal NAME] [--dedupe-window SECONDS] [--retention-interval SECONDS]\n"
    "                  [--threads N] [--sync] [--no-suppress-erased]\n"
    "\n"
    "  --data DIR      database directory (created when missing); required\n"
    "  --host HOST     address to listen on (default 127.0.0.1)\n"
    "  --port PORT     port to listen on; 0 picks a free one (default 8080)\n"
    "  --api-key KEY   require 'Authorization: Bearer KEY' on /api/ routes (default: $CDP_API_KEY); keys the\n"
    "                  database issued (POST /api/cdp/governance/keys) are accepted too. Without either, a\n"
    "                  loopback server generates a key for the run and prints it (with the console's\n"
    "                  address); another host is refused\n"
    "  --write-key KEY require KEY on the Segment /v1/ routes, as the HTTP Basic user name or writeKey in the\n"
    "                  body (default: the API key)\n"
    "  --write-key-principal NAME  the governance principal the /v1/ routes write as (default: the admin\n"
    "                  \"local\"); its field permissions apply (403 when it may not write a field)\n"
    "  --dedupe-window SECONDS  messageId dedupe window of the /v1/ routes (default 604800, 7 days; 0: off)\n"
    "  --retention-interval SECONDS  how often retention policies are applied (default 3600; 0: only on\n"
    "                  POST /api/cdp/retention/run)\n"
    "  --threads N     worker threads (default 8)\n"
    "  --sync          fsync every write before answering (Options::sync_writes)\n"
    "  --no-suppress-erased  data naming an erased person's identifiers may create a profile again\n"
    "                  (Options::suppress_erased_identifiers off; default: refused, only keyed hashes kept)\n";

struct Flags {
  std::string data;
  std::string host = "127.0.0.1";
  int port = 8080;
  std::string api_key;
  std::string write_key;                      // Segment /v1/ routes; empty: the API key
  std::string write_key_principal = "local";  // whom the /v1/ routes write as
  int64_t dedupe_window = 7 * 86400;          // Segment /v1/ routes
  int64_t retention_interval = 3600;          // Options::retention_interval_seconds
  int threads = 8;
  bool sync = false;
  bool suppress_erased = true;  // Options::suppress_erased_identifiers
};

std::optional<int> ParseInt(std::string_view text, int min, int max) {
  int value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() || value < min || value > max) {
    return std::nullopt;
  }
  return value;
}

// Parses argv into `flags`; on error prints why and returns false. Accepts "--flag value" and "--flag=value".
bool ParseFlags(int argc, char** argv, Flags* flags, bool* help) {
  if (const char* key = std::getenv("CDP_API_KEY"); key != nullptr) flags->api_key = key;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    std::string_view name = arg;
    std::optional<std::string_view> inline_value;
    if (size_t eq = arg.find('='); arg.starts_with("--") && eq != std::string_view::npos) {
      name = arg.substr(0, eq);
      inline_value = arg.substr(eq + 1);
    }
    if (name == "--help" || name == "-h") {
      *help = true;
      return true;
    }
    if (name == "--sync") {
      flags->sync = true;
      continue;
    }
    if (name == "--no-suppress-erased") {
      flags->suppress_erased = false;
      continue;
    }
    std::string_view value;
    if (inline_value) {
      value = *inline_value;
    } else if (i + 1 < argc) {
      value = argv[++i];
    } else {
      std::cerr << "cdp-server: " << name << " needs a value\n";
      return false;
    }
    if (name == "--data") {
      flags->data = value;
    } else if (name == "--host") {
      flags->host = value;
    } else if (name == "--api-key") {
      flags->api_key = value;
    } else if (name == "--write-key") {
      flags->write_key = value;
    } else if (name == "--write-key-principal") {
      if (value.empty() || value.size() > 128) {
        std::cerr << "cdp-server: --write-key-principal must be 1 to 128 bytes\n";
        return false;
      }
      flags->write_key_principal = value;
    } else if (name == "--dedupe-window") {
      std::optional<int> window = ParseInt(value, 0, 10 * 365 * 86400);
      if (!window) {
        std::cerr << "cdp-server: --dedupe-window must be 0..315360000 seconds, got '" << value << "'\n";
        return false;
      }
      flags->dedupe_window = *window;
    } else if (name == "--port") {
      std::optional<int> port = ParseInt(value, 0, 65535);
      if (!port) {
        std::cerr << "cdp-server: --port must be 0..65535, got '" << value << "'\n";
        return false;
      }
      flags->port = *port;
    } else if (name == "--retention-interval") {
      std::optional<int> interval = ParseInt(value, 0, 365 * 86400);
      if (!interval) {
        std::cerr << "cdp-server: --retention-interval must be 0..31536000 seconds, got '" << value << "'\n";
        return false;
      }
      flags->retention_interval = *interval;
    } else if (name == "--threads") {
      std::optional<int> threads = ParseInt(value, 1, 1024);
      if (!threads) {
        std::cerr << "cdp-server: --threads must be 1..1024, got '" << value << "'\n";
        return false;
      }
      flags->threads = *threads;
    } else {
      std::cerr << "cdp-server: unknown flag '" << arg << "'\n";
      return false;
    }
  }
  if (flags->data.empty()) {
    std::cerr << "cdp-server: --data DIR is required\n";
    return false;
  }
  if (flags->host.empty()) {
    std::cerr << "cdp-server: --host must not be empty\n";
    return false;
  }
  return true;
}

// 32 random bytes as "cdp_run_" and 64 hex digits, from the kernel's generator.
Result<std::string> RandomKey() {
  std::ifstream random("/dev/urandom", std::ios::binary);
  unsigned char bytes[32];
  if (!random.read(reinterpret_cast<char*>(bytes), sizeof(bytes))) {
    return Status::Internal("cannot read /dev/urandom for an API key; pass --api-key");
  }
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string key = "cdp_run_";
  for (unsigned char b : bytes) {
    key.push_back(kDigits[b >> 4]);
    key.push_back(kDigits[b & 15]);
  }
  return key;
}

int Run(int argc, char** argv) {
  // SIGINT / SIGTERM are handled by a dedicated thread (below); block them before any other thread starts so
  // every thread (RocksDB's and httplib's included) inherits the mask. A signal that arrives while the database
  // opens stays pending and stops the server as soon as it listens.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  Flags flags;
  bool help = false;
  if (!ParseFlags(argc, argv, &flags, &help)) {
    std::cerr << kUsage;
    return 2;
  }
  if (help) {
    std::cout << kUsage;
    return 0;
  }
  const bool needs_keys = flags.api_key.empty() && !IsLoopbackHost(flags.host);
  auto refuse_open_server = [&] {
    std::cerr << "cdp-server: refusing to listen on non-loopback address '" << flags.host
              << "' without an API key; pass --api-key KEY (or set CDP_API_KEY), issue keys (PUT a policy and POST "
                 "/api/cdp/governance/keys), or use --host 127.0.0.1\n";
    return 2;
  };
  // A database that does not exist yet holds no keys: refused before anything is created.
  if (needs_keys && !std::filesystem::exists(flags.data)) return refuse_open_server();

  Options options;
  options.sync_writes = flags.sync;
  options.suppress_erased_identifiers = flags.suppress_erased;
  options.retention_interval_seconds = flags.retention_interval;
  Result<std::unique_ptr<Engine>> opened = Engine::Open(options, flags.data);
  if (!opened.ok()) {
    std::cerr << "cdp-server: cannot open " << flags.data << ": " << opened.status().ToString() << "\n";
    return 1;
  }
  std::unique_ptr<Engine> engine = std::move(opened).value();
  // Keys issued by the database (Governance::CreateApiKey) count: with any, every request needs one of them.
  if (needs_keys && !engine->governance().KeysIssued()) return refuse_open_server();
  // No request runs without a key: on loopback, without --api-key and issued keys, a key for this run (printed).
  std::string generated_key;
  if (flags.api_key.empty() && !engine->governance().KeysIssued()) {
    Result<std::string> key = RandomKey();
    if (!key.ok()) {
      std::cerr << "cdp-server: " << key.status().ToString() << "\n";
      return 1;
    }
    generated_key = flags.api_key = *key;
  }

  auto http = std::make_unique<httplib::Server>();
  // cpp-httplib's default sets SO_REUSEPORT, with which a second server binds a port already in use and the kernel
  // splits the connections between the two (and their databases). SO_REUSEADDR alone lets a restarted server bind
  // a port whose old connections linger in TIME_WAIT, and refuses a port another socket listens on.
  http->set_socket_options([](socket_t sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  });
  const int threads = flags.threads;
  http->new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  ServerOptions server_options;
  server_options.api_key = flags.api_key;
  server_options.write_key = flags.write_key.empty() ? flags.api_key : flags.write_key;
  server_options.write_key_principal = flags.write_key_principal;
  server_options.segment_dedupe_window_seconds = flags.dedupe_window;
  auto stopping = std::make_shared<std::atomic<bool>>(false);
  server_options.stopping = stopping;
  RegisterRoutes(*http, *engine, server_options);

  int port = flags.port;
  bool bound = false;
  if (port == 0) {
    port = http->bind_to_any_port(flags.host);
    bound = port > 0;
  } else {
    bound = http->bind_to_port(flags.host, port);
  }
  if (!bound) {
    std::cerr << "cdp-server: cannot listen on " << flags.host << ":" << flags.port << "\n";
    return 1;
  }

  std::atomic<bool> done{false};
  std::thread signal_waiter([&] {
    int sig = 0;
    sigwait(&signals, &sig);
    if (done) return;
    std::cerr << "cdp-server: received " << (sig == SIGINT ? "SIGINT" : "SIGTERM") << ", shutting down\n";
    stopping->store(true);  // long polls answer now
    // stop() is a no-op until the listen loop runs, so repeat it until the loop has ended.
    while (!done) {
      http->stop();
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  });

  const bool ipv6 = flags.host.find(':') != std::string::npos && !flags.host.starts_with("[");
  const std::string address = "http://" + (ipv6 ? "[" + flags.host + "]" : flags.host) + ":" + std::to_string(port);
  if (!generated_key.empty()) {
    // The console's link carries the key in its fragment, which the browser does not send; the console keeps it
    // in the tab's sessionStorage and removes it from the address bar.
    std::cout << "cdp-server API key for this run (--api-key or CDP_API_KEY to choose one): " << generated_key << "\n"
              << "cdp-server console: " << address << "/console/#key=" << generated_key << "\n";
  }
  std::cout << "cdp-server listening on " << address << std::endl;  // last: ready once it is printed

  const bool listened = http->listen_after_bind();
  done = true;
  pthread_kill(signal_waiter.native_handle(), SIGTERM);  // wakes sigwait if no signal came
  signal_waiter.join();

  http.reset();    // waits for in-flight requests
  engine.reset();  // closes the database
  if (!listened) {
    std::cerr << "cdp-server: listen failed\n";
    return 1;
  }
  std::cerr << "cdp-server: stopped\n";
  return 0;
}

}  // namespace
}  // namespace cdp::server

int main(int argc, char** argv) { return cdp::server::Run(argc, argv); }
