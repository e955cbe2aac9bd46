// Copyright 2026 The libcdp Authors.
//
// cdp::demo: a seedable, realistic e-commerce data set for demos, tests and benchmarks.
//
//   cdp::demo::GeneratorConfig config;            // seed 42, 1,000 profiles, 10,000 events, 365 days
//   config.profiles = 200;
//   config.events = 3000;
//   cdp::Result<cdp::demo::LoadStats> stats = cdp::demo::Load(engine, config);
//
// What it makes (all of it a pure function of the config: the same config gives byte-identical output):
//
//  * `profiles` known customers, created with Profiles::Create before any event: names, email, phone (most),
//    shopifyId (some), customerId, country / city / postal code, tags, customFields {tier, signupChannel,
//    preferredCategory, birthYear, newsletter}, consent, and 1-3 registered devices (web, mobile web, app).
//    A quarter also have a second, work email, and some with a phone a second phone (`externalIds.email` /
//    `phone` then list both); email opens reach the work email, and a third of checkouts give a phone (either).
//    Some also use a device they never registered: its first event is a login (customerId + deviceId), which
//    attaches the device to them.
//  * `anonymous_visitors` visitors with no profile: their events carry only a deviceId (libcdp creates an
//    anonymous profile). Most of them later identify: a "sign_up" custom event or a guest checkout carrying the
//    same deviceId plus a new email and customerId, which attaches those to the anonymous profile.
//  * exactly `events` events over the `days` days before `end_time_us`: sessions (bursts of events seconds to
//    minutes apart, more than 30 minutes between sessions) of page_view -> product_view -> add_to_cart -> purchase
//    funnels with drop-off, UTM parameters on the first page_view of most web sessions, email_open events for
//    subscribers, app_usage events for app users, purchases with properties {orderId, revenue, currency, products}.
//    Activity is heavy-tailed (a few very active customers), some customers are repeat buyers, some never buy and
//    some churn (stop after a date). Traffic has weekly and yearly seasonality (weekends, evenings, November with
//    Black Friday, December).
//  * Events come in time order, except `late_fraction` of them (only events naming a customer by an identifier it
//    already holds) which arrive up to two days late.
//
// Every item is valid for libcdp: a fresh Engine accepts all profiles, and every event but the few that resolve to
// a profile that denied tracking consent (a device shared with such a person; LoadStats::events_refused_consent).
// Identifiers are unique by construction (derived from bijections of the profile's index and the seed).

#ifndef CDP_DEMO_GENERATOR_H_
#define CDP_DEMO_GENERATOR_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "cdp/engine.h"
#include "cdp/json.h"
#include "cdp/status.h"

namespace cdp::demo {

// 2026-01-01T00:00:00Z: the default end of the generated time range (fixed, so output is deterministic); with the
// default 365 days, the data covers the calendar year 2025.
inline constexpr int64_t kDefaultEndTimeUs = 1767225600LL * 1000000LL;

struct GeneratorConfig {
  uint64_t seed = 42;
  // Known customers, created with Profiles::Create before any event is tracked. Customers and visitors together
  // at most kMaxPeople: phone numbers are distinct up to that many people (cdp-demo refuses more).
  static constexpr size_t kMaxPeople = 8'000'000;
  size_t profiles = 1000;
  // Visitors that start anonymous (events with only a deviceId). SIZE_MAX means profiles / 5.
  size_t anonymous_visitors = SIZE_MAX;
  // Total number of events, exactly.
  size_t events = 10000;
  // Events fall in [end_time_us - days * 86400 s, end_time_us).
  int64_t end_time_us = kDefaultEndTimeUs;
  int days = 365;
  // Fraction of events delivered late (up to 48 h after their event time). 0 disables.
  double late_fraction = 0.01;
  // Give events deterministic ids ("evt_" + 16 hex digits), so reloading the same set is idempotent.
  bool event_ids = true;
};

// What a generator made (known after construction).
struct GeneratorSummary {
  size_t profiles = 0;             // known customers (Profiles::Create)
  size_t anonymous_visitors = 0;   // visitors with at least one event
  size_t identified_visitors = 0;  // visitors that later identified
  size_t events = 0;
  size_t events_by_type[7] = {};  // page_view, product_view, add_to_cart, purchase, email_open, app_usage,
                                  // custom
  size_t sessions = 0;
  size_t purchases = 0;
  size_t late_events = 0;
  size_t churners = 0;  // persons whose activity stops well before the end of the range
  double revenue = 0;   // sum of properties.revenue of all purchases
};

// The event type names, indexed as in GeneratorSummary::events_by_type.
extern const char* const kEventTypes[7];

// Pull-style generator: construct once (plans the whole data set: ~100 bytes per event), then take profiles and
// events in batches. Profiles first: every profile must be created before events are tracked, since events name
// known customers by their identifiers.
class Generator {
 public:
  explicit Generator(const GeneratorConfig& config);
  ~Generator();
  Generator(const Generator&) = delete;
  Generator& operator=(const Generator&) = delete;

  const GeneratorConfig& config() const;
  const GeneratorSummary& summary() const;

  // Appends up to `max` profiles to *out (which is cleared first). Returns false when none are left.
  bool NextProfiles(size_t max, std::vector<Json>* out);
  // Appends up to `max` events to *out (cleared first), in delivery order. Returns false when none are left.
  // When `persons` is given, it receives each event's person (0..profiles-1: the i-th profile; then visitors):
  // the key to partition events between concurrent writers without reordering any one person's events.
  bool NextEvents(size_t max, std::vector<Json>* out, std::vector<uint32_t>* persons = nullptr);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Push-style convenience: calls on_profiles with batches of profiles, then on_events with batches of events.
void Generate(const GeneratorConfig& config, const std::function<void(std::vector<Json>&& profiles)>& on_profiles,
              const std::function<void(std::vector<Json>&& events)>& on_events, size_t batch_size = 500);

struct LoadProgress {
  size_t profiles_done = 0;
  size_t profiles_total = 0;
  size_t events_done = 0;
  size_t events_total = 0;
  double elapsed_seconds = 0;
};

struct LoadOptions {
  size_t batch_size = 500;     // events per TrackBatch
  size_t profile_batch = 500;  // profiles per Profiles::CreateBatch (within Options::max_batch_items and _bytes)
  // Generate the next batches in a background thread while the current one is stored.
  bool pipeline = true;
  // Called now and then (about every 50,000 items) and at the end of each phase.
  std::function<void(const LoadProgress&)> progress;
};

struct LoadStats {
  size_t profiles_created = 0;
  size_t profiles_rejected = 0;
  size_t events_accepted = 0;
  size_t events_rejected = 0;
  size_t events_refused_consent = 0;  // of events_rejected: resolved to a profile that denied tracking (a device it
                                      // shares with a person who did not), refused as the engine must
  size_t events_duplicate = 0;
  size_t profiles_auto_created = 0;  // events that created a profile (anonymous visitors, mostly)
  size_t batches = 0;
  double plan_seconds = 0;     // planning the data set
  double profile_seconds = 0;  // creating profiles
  double event_seconds = 0;    // generating and tracking events
  double total_seconds = 0;
  std::vector<std::string> sample_errors;  // the first few rejections, "profile 12: <status>" / "event 34: ..."
  GeneratorSummary summary;
};

// Creates the profiles, then tracks the events with TrackBatch. Fails only when a whole call fails (storage error,
// batch refused); per-item rejections are counted in LoadStats (and should be 0).
Result<LoadStats> Load(Engine& engine, const GeneratorConfig& config, const LoadOptions& options = {});

}  // namespace cdp::demo

#endif  // CDP_DEMO_GENERATOR_H_
