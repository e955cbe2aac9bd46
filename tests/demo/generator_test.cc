// Copyright 2026 The libcdp Authors.
//
// The demo data generator: determinism, validity against a real Engine, and the shape of the data.

#include "demo/generator.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "cdp/cdp.h"
#include "identity/rules.h"

namespace cdp::demo {
namespace {

namespace fs = std::filesystem;

struct Dumped {
  std::vector<std::string> profiles;
  std::vector<std::string> events;
};

Dumped DumpAll(const GeneratorConfig& config, size_t batch = 500) {
  Dumped d;
  Generate(
      config,
      [&](std::vector<Json>&& ps) {
        for (const Json& p : ps) d.profiles.push_back(p.Dump());
      },
      [&](std::vector<Json>&& es) {
        for (const Json& e : es) d.events.push_back(e.Dump());
      },
      batch);
  return d;
}

GeneratorConfig Small() {
  GeneratorConfig c;
  c.profiles = 200;
  c.events = 3000;
  return c;
}

class TempDir {
 public:
  TempDir() {
    std::random_device rd;
    path_ = fs::temp_directory_path() / ("cdp-demo-test-" + std::to_string(rd()) + std::to_string(rd()));
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  std::string path() const { return path_.string(); }

 private:
  fs::path path_;
};

TEST(GeneratorTest, SameSeedGivesIdenticalOutput) {
  Dumped a = DumpAll(Small(), 500);
  Dumped b = DumpAll(Small(), 137);  // batch size must not matter
  ASSERT_EQ(a.profiles.size(), 200u);
  ASSERT_EQ(a.events.size(), 3000u);
  EXPECT_EQ(a.profiles, b.profiles);
  EXPECT_EQ(a.events, b.events);
}

TEST(GeneratorTest, DifferentSeedGivesDifferentOutput) {
  GeneratorConfig c = Small();
  Dumped a = DumpAll(c);
  c.seed = 43;
  Dumped b = DumpAll(c);
  ASSERT_EQ(b.events.size(), 3000u);
  EXPECT_NE(a.profiles, b.profiles);
  size_t same = 0;
  for (size_t i = 0; i < a.events.size(); ++i) same += a.events[i] == b.events[i];
  EXPECT_LT(same, 10u);
}

TEST(GeneratorTest, ExactCountsTimeRangeAndRoughTimeOrder) {
  GeneratorConfig c = Small();
  c.end_time_us = 1767225600LL * 1000000;  // 2026-01-01
  c.days = 90;
  Generator gen(c);
  std::vector<Json> batch;
  size_t n = 0, out_of_order = 0;
  int64_t prev = 0;
  std::map<std::string, int64_t> last_by_customer;
  while (gen.NextEvents(256, &batch)) {
    for (const Json& e : batch) {
      ++n;
      Result<int64_t> t = ParseTimestamp(*e.Find("timestamp"));
      ASSERT_TRUE(t.ok()) << e.Dump();
      EXPECT_GE(*t, c.end_time_us - 90LL * 86400 * 1000000) << e.Dump();
      EXPECT_LT(*t, c.end_time_us) << e.Dump();
      if (*t < prev) ++out_of_order;
      prev = *t;
    }
  }
  EXPECT_EQ(n, 3000u);
  EXPECT_EQ(gen.summary().events, 3000u);
  // A few late arrivals, not many.
  EXPECT_GT(out_of_order, 0u);
  EXPECT_LT(out_of_order, 3000u / 20);
}

TEST(GeneratorTest, EveryItemIsAcceptedByAFreshEngine) {
  TempDir dir;
  Result<std::unique_ptr<Engine>> opened = Engine::Open(Options{}, dir.path());
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  Engine& engine = **opened;
  GeneratorConfig c = Small();
  Result<LoadStats> stats = Load(engine, c);
  ASSERT_TRUE(stats.ok()) << stats.status().ToString();
  std::string errors;
  for (const std::string& e : stats->sample_errors) errors += e + "\n";
  EXPECT_EQ(stats->profiles_created, 200u) << errors;
  EXPECT_EQ(stats->profiles_rejected, 0u) << errors;
  EXPECT_EQ(stats->events_accepted, 3000u) << errors;
  EXPECT_EQ(stats->events_rejected, 0u) << errors;
  EXPECT_EQ(stats->events_duplicate, 0u) << errors;
  // Events created a profile for each anonymous visitor, and for nobody else.
  EXPECT_GT(stats->summary.anonymous_visitors, 0u);
  EXPECT_EQ(stats->profiles_auto_created, stats->summary.anonymous_visitors);

  Result<Json> s = engine.Stats();
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  ASSERT_NE(s->Find("profiles"), nullptr);
  EXPECT_EQ(s->Find("profiles")->as_int(), static_cast<int64_t>(200 + stats->summary.anonymous_visitors));
  EXPECT_EQ(s->Find("events")->as_int(), 3000);

  // Loading the same set again changes nothing: profiles collide on their identifiers, events are duplicates.
  Result<LoadStats> again = Load(engine, c);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(again->profiles_created, 0u);
  EXPECT_EQ(again->events_duplicate, 3000u);
  Result<Json> s2 = engine.Stats();
  ASSERT_TRUE(s2.ok());
  EXPECT_EQ(s2->Find("events")->as_int(), 3000);
}

// Every generated phone is a valid number for libphonenumber (the identity rules' normalization), in every country
// of the data: a newcomer found 48% of the demo's phones invalid (wrong lengths and prefixes), so half the profiles
// carried identity issues and the data-quality score was about 55.
TEST(GeneratorTest, EveryPhoneIsAValidNumber) {
  GeneratorConfig c;
  c.profiles = 6000;
  c.events = 100;
  Dumped d = DumpAll(c);
  const std::shared_ptr<const internal::IdentityRules> rules = internal::IdentityRules::Defaults();
  std::map<std::string, int> phones_by_country;
  std::set<std::string> distinct;
  size_t second_phones = 0;
  for (const std::string& text : d.profiles) {
    Json p = *Json::Parse(text);
    const Json* given = p.FindPath("externalIds.phone");
    if (given == nullptr) continue;
    std::vector<Json> numbers = given->is_array() ? given->items() : std::vector<Json>{*given};
    if (given->is_array()) {
      EXPECT_EQ(numbers.size(), 2u) << text;
      ++second_phones;
    }
    for (const Json& phone : numbers) {
      internal::Identifier id;
      internal::IgnoredIdentifier ignored;
      EXPECT_TRUE(rules->Normalize("phone", phone.as_string(), &id, &ignored))
          << phone.as_string() << ": " << ignored.reason << " (" << p.FindPath("attributes.country")->as_string()
          << ")";
      EXPECT_EQ(id.value, phone.as_string()) << "already E.164";
      ++phones_by_country[p.FindPath("attributes.country")->as_string()];
      distinct.insert(phone.as_string());
    }
  }
  EXPECT_EQ(phones_by_country.size(), 12u) << "every country of the generator";
  size_t phones = 0;
  for (const auto& [country, n] : phones_by_country) phones += static_cast<size_t>(n);
  EXPECT_GT(phones, 3000u);
  EXPECT_GT(second_phones, 300u) << "some customers have two phones";
  EXPECT_EQ(distinct.size(), phones) << "one person's number is nobody else's, and a person's two differ";
}

// Profiles with several emails and phones (issue 2): some known customers have a second (work) email and a second
// phone on their profile, and events name them too (email opens, checkouts); after a load each of those resolves
// to the one profile that holds all of them, and the profile shows them all.
TEST(GeneratorTest, SomeCustomersHaveSeveralEmailsAndPhonesThatResolveToThem) {
  GeneratorConfig c = Small();
  c.profiles = 1000;
  c.events = 20000;
  Dumped d = DumpAll(c);
  std::map<std::string, std::string> owner;  // email or phone -> customerId, from the profiles
  size_t two_emails = 0, two_phones = 0;
  for (const std::string& text : d.profiles) {
    Json p = *Json::Parse(text);
    const std::string customer = p.FindPath("externalIds.customerId")->as_string();
    for (const char* type : {"email", "phone"}) {
      const Json* given = p.Find("externalIds")->Find(type);
      if (given == nullptr) continue;
      if (given->is_array()) ++(std::string(type) == "email" ? two_emails : two_phones);
      for (const Json& v : given->is_array() ? given->items() : std::vector<Json>{*given}) {
        EXPECT_TRUE(owner.emplace(v.as_string(), customer).second) << v.as_string() << " held twice";
      }
    }
  }
  EXPECT_GT(two_emails, 150u);
  EXPECT_GT(two_phones, 40u);
  std::set<std::string> second_values_in_events;
  std::set<std::string> second_values;
  for (const std::string& text : d.profiles) {
    Json p = *Json::Parse(text);
    for (const char* type : {"email", "phone"}) {
      const Json* given = p.Find("externalIds")->Find(type);
      if (given != nullptr && given->is_array()) second_values.insert(given->items()[1].as_string());
    }
  }
  size_t phones_in_events = 0;
  for (const std::string& text : d.events) {
    Json e = *Json::Parse(text);
    for (const char* type : {"email", "phone"}) {
      const Json* v = e.Find(type);
      if (v == nullptr) continue;
      phones_in_events += std::string(type) == "phone";
      if (second_values.count(v->as_string())) second_values_in_events.insert(v->as_string());
    }
  }
  EXPECT_GT(phones_in_events, 50u);
  EXPECT_GT(second_values_in_events.size(), 20u) << "events name second emails and phones";

  TempDir dir;
  auto engine = std::move(Engine::Open(Options{}, dir.path())).value();
  Result<LoadStats> stats = Load(*engine, c);
  ASSERT_TRUE(stats.ok()) << stats.status().ToString();
  EXPECT_EQ(stats->events_rejected, stats->events_refused_consent);
  int checked = 0;
  for (const std::string& value : second_values_in_events) {
    const bool phone = value[0] == '+';
    Result<ProfileQuery> q = ProfileQuery::FromJson(
        *Json::Parse(std::string(R"({"conditions": [{"field": "externalIds.)") + (phone ? "phone" : "email") +
                     R"(", "operator": "contains", "value": ")" + value + R"("}]})"));
    ASSERT_TRUE(q.ok()) << q.status().ToString();
    Result<Page> page = engine->profiles().Search(*q);
    ASSERT_TRUE(page.ok()) << page.status().ToString();
    ASSERT_EQ(page->items.size(), 1u) << value;
    EXPECT_EQ(page->items[0].FindPath("externalIds.customerId")->as_string(), owner.at(value)) << value;
    const Json* held = page->items[0].FindPath(phone ? "externalIds.phone" : "externalIds.email");
    ASSERT_NE(held, nullptr);
    EXPECT_TRUE(held->is_array() && held->size() == 2u) << held->Dump();
    ++checked;
  }
  EXPECT_GT(checked, 20);
}

TEST(GeneratorTest, AnonymousDevicesLaterIdentifyAndResolveToOneProfile) {
  GeneratorConfig c = Small();
  Dumped d = DumpAll(c);
  // Devices seen first alone, later together with an email and customerId.
  std::set<std::string> anonymous_devices;
  std::map<std::string, std::string> identified;  // deviceId -> email
  for (const std::string& text : d.events) {
    Json e = *Json::Parse(text);
    const Json* dev = e.Find("deviceId");
    if (dev == nullptr) continue;
    bool has_other = e.Find("email") != nullptr || e.Find("customerId") != nullptr;
    if (!has_other) {
      if (!identified.count(dev->as_string())) anonymous_devices.insert(dev->as_string());
    } else if (anonymous_devices.count(dev->as_string()) && e.Find("email") != nullptr &&
               !identified.count(dev->as_string())) {
      identified[dev->as_string()] = e.Find("email")->as_string();
    }
  }
  ASSERT_GE(identified.size(), 3u);

  // In an engine, the anonymous device's profile ends up holding the email that identified it.
  TempDir dir;
  Result<std::unique_ptr<Engine>> opened = Engine::Open(Options{}, dir.path());
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  Engine& engine = **opened;
  Result<LoadStats> stats = Load(engine, c);
  ASSERT_TRUE(stats.ok()) << stats.status().ToString();
  ASSERT_EQ(stats->events_rejected, 0u);
  int checked = 0;
  for (const auto& [device, email] : identified) {
    if (checked == 3) break;
    Result<ProfileQuery> q = ProfileQuery::FromJson(
        *Json::Parse(R"({"conditions": [{"field": "externalIds.deviceIds", "operator": "contains", "value": ")" +
                     device + R"("}]})"));
    ASSERT_TRUE(q.ok()) << q.status().ToString();
    Result<Page> page = engine.profiles().Search(*q);
    ASSERT_TRUE(page.ok()) << page.status().ToString();
    ASSERT_EQ(page->items.size(), 1u) << device;
    const Json* held = page->items[0].FindPath("externalIds.email");
    ASSERT_NE(held, nullptr) << page->items[0].Dump();
    EXPECT_EQ(held->as_string(), email);
    ++checked;
  }
}

TEST(GeneratorTest, PurchasesHaveRevenueOrderIdAndProducts) {
  Dumped d = DumpAll(Small());
  size_t purchases = 0;
  double revenue = 0;
  std::set<std::string> order_ids;
  for (const std::string& text : d.events) {
    Json e = *Json::Parse(text);
    if (e.Find("type")->as_string() != "purchase") continue;
    ++purchases;
    const Json* r = e.FindPath("properties.revenue");
    ASSERT_NE(r, nullptr) << text;
    ASSERT_TRUE(r->is_number()) << text;
    EXPECT_GT(r->as_number(), 0) << text;
    revenue += r->as_number();
    const Json* products = e.FindPath("properties.products");
    ASSERT_NE(products, nullptr) << text;
    ASSERT_TRUE(products->is_array());
    EXPECT_GE(products->size(), 1u);
    const Json* order = e.FindPath("properties.orderId");
    ASSERT_NE(order, nullptr);
    EXPECT_TRUE(order_ids.insert(order->as_string()).second) << "duplicate orderId " << text;
    // A purchase names its customer.
    EXPECT_NE(e.Find("email"), nullptr);
    EXPECT_NE(e.Find("customerId"), nullptr);
  }
  EXPECT_GE(purchases, 10u);
  Generator gen(Small());
  EXPECT_EQ(gen.summary().purchases, purchases);
  EXPECT_NEAR(gen.summary().revenue, revenue, 0.01);
}

TEST(GeneratorTest, DataHasTheAdvertisedShape) {
  GeneratorConfig c;
  c.profiles = 500;
  c.events = 20000;
  Dumped d = DumpAll(c);
  std::map<std::string, size_t> types;
  size_t utm = 0, with_url = 0, page_views = 0, weekend = 0, november_december = 0;
  for (const std::string& text : d.events) {
    Json e = *Json::Parse(text);
    const std::string& type = e.Find("type")->as_string();
    ++types[type];
    if (type == "page_view") {
      ++page_views;
      if (e.FindPath("properties.utm_source") != nullptr) {
        ++utm;
        EXPECT_NE(e.FindPath("properties.utm_medium"), nullptr);
        EXPECT_NE(e.FindPath("properties.utm_campaign"), nullptr);
      }
      with_url += e.FindPath("properties.url") != nullptr && e.FindPath("properties.path") != nullptr;
    }
    std::string ts = e.Find("timestamp")->as_string();  // "YYYY-MM-DD..."
    int month = std::stoi(ts.substr(5, 2));
    november_december += month == 11 || month == 12;
    int64_t days = *ParseTimestamp(ts) / (86400LL * 1000000);
    int wd = static_cast<int>((days + 4) % 7);  // 0 = Sunday
    weekend += wd == 0 || wd == 6;
  }
  for (const char* t : kEventTypes) EXPECT_GT(types[t], 0u) << t;
  EXPECT_GT(types["product_view"], types["add_to_cart"]);
  EXPECT_GT(types["add_to_cart"], types["purchase"]);
  EXPECT_EQ(with_url, page_views);
  EXPECT_GT(utm, page_views / 20);
  EXPECT_LT(utm, page_views / 2);
  // Seasonality: weekends (2/7 = 28.6% of days) and Nov+Dec (61/365 = 16.7%) are over-represented.
  EXPECT_GT(static_cast<double>(weekend) / d.events.size(), 0.31);
  EXPECT_GT(static_cast<double>(november_december) / d.events.size(), 0.19);

  // Profiles: the libcdp model, with unique identifiers.
  std::set<std::string> emails, customers, devices;
  for (const std::string& text : d.profiles) {
    Json p = *Json::Parse(text);
    for (const char* f : {"attributes.firstName", "attributes.lastName", "attributes.country", "attributes.city",
                          "attributes.postalCode", "attributes.customFields.tier",
                          "attributes.customFields.signupChannel", "consent.email", "externalIds.customerId"}) {
      EXPECT_NE(p.FindPath(f), nullptr) << f << " in " << text;
    }
    const Json* email = p.FindPath("externalIds.email");  // one, or a list of two (a second, work email)
    for (const Json& e : email->is_array() ? email->items() : std::vector<Json>{*email}) {
      EXPECT_TRUE(emails.insert(e.as_string()).second) << e.as_string();
    }
    EXPECT_TRUE(customers.insert(p.FindPath("externalIds.customerId")->as_string()).second);
    const Json* devs = p.FindPath("externalIds.deviceIds");
    ASSERT_NE(devs, nullptr);
    EXPECT_GE(devs->size(), 1u);
    for (const Json& dv : devs->items()) EXPECT_TRUE(devices.insert(dv.as_string()).second);
  }
  // Churners and repeat buyers exist.
  Generator gen(c);
  EXPECT_GT(gen.summary().churners, 0u);
  std::map<std::string, int> purchases_by_customer;
  for (const std::string& text : d.events) {
    Json e = *Json::Parse(text);
    if (e.Find("type")->as_string() == "purchase") ++purchases_by_customer[e.Find("customerId")->as_string()];
  }
  int repeat = 0;
  for (const auto& [id, n] : purchases_by_customer) repeat += n >= 2;
  EXPECT_GT(repeat, 5);
}

}  // namespace
}  // namespace cdp::demo
