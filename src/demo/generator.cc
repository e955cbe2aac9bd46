// Copyright 2026 The libcdp Authors.
//
// The demo data generator. See generator.h for what it makes.
//
// How: the constructor plans the whole data set with one std::mt19937_64 seeded with config.seed: persons (known
// customers, then anonymous visitors), their event budgets (heavy-tailed), active windows (churners stop early),
// sessions (content first, then start times drawn from a seasonal density, then laid out with > 30 min gaps) and
// compact event specs. The specs are sorted into delivery order (event time, or event time + a delay for the few
// late ones). NextProfiles / NextEvents then turn profiles and specs into JSON, in order, with a second RNG seeded
// from the seed, so the output depends only on the config (and not on batch sizes).
//
// Distributions are implemented here (not with <random>'s distributions, whose algorithms differ between standard
// libraries), so a seed gives the same data everywhere.

#include "demo/generator.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <deque>
#include <iterator>
#include <mutex>
#include <random>
#include <string_view>
#include <thread>
#include <unordered_set>
#include <utility>

#include "core/civil_time.h"
#include "fmt/format.h"

namespace cdp::demo {

const char* const kEventTypes[7] = {"page_view",  "product_view", "add_to_cart", "purchase",
                                    "email_open", "app_usage",    "custom"};

namespace {

constexpr int64_t kSecond = 1000000;
constexpr int64_t kMinute = 60 * kSecond;
constexpr int64_t kHour = 60 * kMinute;
constexpr int64_t kDay = 24 * kHour;

enum EvType : uint8_t { kPageView, kProductView, kAddToCart, kPurchase, kEmailOpen, kAppUsage, kCustom };
// kIdEmail2 with kIdEmail names the person's second email; kIdPhone2 with kIdPhone their second phone.
enum Ident : uint8_t { kIdDevice = 1, kIdCustomer = 2, kIdEmail = 4, kIdEmail2 = 8, kIdPhone = 16, kIdPhone2 = 32 };
enum Page : uint8_t { kHome, kCategory, kProductPage, kSearch, kCart, kCheckout, kConfirmation, kAccount, kBlog };
enum CustomName : uint8_t { kCustomSearch, kCustomSignUp, kCustomWishlist };
enum DeviceKind : uint8_t { kDesktop, kMobileWeb, kIos, kAndroid };
constexpr uint8_t kNoDevice = 255;

// ---- randomness ------------------------------------------------------------------------------------------------

uint64_t Mix64(uint64_t x) {  // splitmix64's finalizer: a bijection of uint64
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}

class Rng {
 public:
  explicit Rng(uint64_t seed) : g_(seed) {}
  uint64_t Next() { return g_(); }
  double U01() { return static_cast<double>(g_() >> 11) * 0x1.0p-53; }
  // Uniform in [0, n).
  uint64_t Below(uint64_t n) { return n == 0 ? 0 : static_cast<uint64_t>((static_cast<__uint128_t>(g_()) * n) >> 64); }
  int64_t Range(int64_t lo, int64_t hi) { return lo + static_cast<int64_t>(Below(static_cast<uint64_t>(hi - lo + 1))); }
  bool Chance(double p) { return U01() < p; }
  double Normal() {  // Box-Muller, one value per call
    double u1 = U01();
    if (u1 < 1e-300) u1 = 1e-300;
    double u2 = U01();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
  }
  double LogNormal(double mu, double sigma) { return std::exp(mu + sigma * Normal()); }
  double Exponential(double mean) {
    double u = U01();
    return -mean * std::log(1.0 - u);
  }
  // 1 + number of failures before success with continuation probability p: mean 1 / (1 - p).
  int Geometric(double p, int cap) {
    int n = 1;
    while (n < cap && Chance(p)) ++n;
    return n;
  }
  template <typename T, size_t N>
  const T& Pick(const T (&arr)[N]) {
    return arr[Below(N)];
  }
  // Index by weights.
  template <size_t N>
  size_t Weighted(const double (&w)[N]) {
    double total = 0;
    for (double x : w) total += x;
    double r = U01() * total;
    for (size_t i = 0; i < N; ++i) {
      if (r < w[i]) return i;
      r -= w[i];
    }
    return N - 1;
  }

 private:
  std::mt19937_64 g_;
};

// ---- time ------------------------------------------------------------------------------------------------------

using internal::CivilFromDays;
using internal::DaysFromCivil;

int Weekday(int64_t days) { return static_cast<int>(((days % 7) + 11) % 7); }  // 0 = Sunday; 1970-01-01 Thursday

// Black Friday (the day after the fourth Thursday of November) of year y, in days since the epoch.
int64_t BlackFriday(int y) {
  int64_t nov1 = DaysFromCivil(y, 11, 1);
  int wd = Weekday(nov1);
  int64_t first_thu = nov1 + ((4 - wd + 7) % 7);
  return first_thu + 21 + 1;
}

// "2026-03-14T09:26:53.589Z"
std::string FormatTime(int64_t us) {
  int64_t ms = us / 1000;
  int64_t days = ms / 86400000;
  int64_t rem = ms % 86400000;
  if (rem < 0) {
    rem += 86400000;
    --days;
  }
  int y, m, d;
  CivilFromDays(days, &y, &m, &d);
  char buf[32];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", y, m, d, static_cast<int>(rem / 3600000),
                static_cast<int>(rem / 60000 % 60), static_cast<int>(rem / 1000 % 60), static_cast<int>(rem % 1000));
  return buf;
}

// Relative traffic density at time t: weekly (weekends), yearly (November, Black Friday week, December) and daily
// (evenings) seasonality. Max about 7.
double TrafficWeight(int64_t t_us) {
  int64_t days = t_us / kDay;
  int hour = static_cast<int>((t_us % kDay) / kHour);
  int y, m, d;
  CivilFromDays(days, &y, &m, &d);
  static constexpr double kMonth[13] = {0, 0.85, 0.8, 0.9, 0.9, 0.95, 0.95, 0.9, 0.95, 1.0, 1.05, 1.45, 1.7};
  static constexpr double kHourW[24] = {0.45, 0.3, 0.2, 0.15, 0.15, 0.2,  0.35, 0.6, 0.8, 0.95, 1.0, 1.05,
                                        1.15, 1.1, 1.0, 1.0,  1.05, 1.15, 1.3,  1.5, 1.6, 1.5,  1.2, 0.8};
  double w = kMonth[m] * kHourW[hour];
  int wd = Weekday(days);
  if (wd == 0 || wd == 6)
    w *= 1.4;
  else if (wd == 5)
    w *= 1.1;
  int64_t bf = BlackFriday(y);
  if (days >= bf - 1 && days <= bf + 3)
    w *= 2.2;  // Black Friday .. Cyber Monday
  else if (m == 12 && d >= 10 && d <= 22)
    w *= 1.25;  // last shipping days before Christmas
  return w;
}
constexpr double kMaxTrafficWeight = 1.7 * 1.6 * 1.4 * 2.2 * 1.05;

// ---- reference data ---------------------------------------------------------------------------------------------

const char* const kFirstNames[] = {
    "Olivia",   "Liam",      "Emma",     "Noah",    "Ava",      "Oliver",  "Sophia",    "Elijah", "Isabella",
    "James",    "Mia",       "William",  "Amelia",  "Benjamin", "Harper",  "Lucas",     "Evelyn", "Henry",
    "Abigail",  "Alexander", "Emily",    "Mason",   "Ella",     "Michael", "Elizabeth", "Ethan",  "Camila",
    "Daniel",   "Luna",      "Jacob",    "Sofia",   "Logan",    "Avery",   "Jackson",   "Mila",   "Levi",
    "Aria",     "Sebastian", "Scarlett", "Mateo",   "Penelope", "Jack",    "Layla",     "Owen",   "Chloe",
    "Theodore", "Victoria",  "Aiden",    "Madison", "Samuel",   "Eleanor", "Joseph",    "Grace",  "John",
    "Nora",     "David",     "Riley",    "Wyatt",   "Zoey",     "Matthew", "Hannah",    "Luke",   "Hazel",
    "Asher",    "Lily",      "Carter",   "Ellie",   "Julian",   "Violet",  "Grayson",   "Lea",    "Lukas",
    "Hanna",    "Felix",     "Clara",    "Emil",    "Ines",     "Hugo",    "Chloe",     "Louis",  "Yuki",
    "Haruto",   "Sakura",    "Ren",      "Lucia",   "Pablo",    "Martina", "Alejandro", "Giulia", "Francesco",
    "Ingrid",   "Erik",      "Astrid",   "Lars",    "Ana",      "Gabriel", "Beatriz",   "Rafael", "Priya",
    "Arjun",    "Fatima",    "Omar",     "Mei",     "Wei"};
const char* const kLastNames[] = {
    "Smith",     "Johnson",   "Williams",  "Brown",    "Jones",    "Garcia",    "Miller",  "Davis",     "Rodriguez",
    "Martinez",  "Hernandez", "Lopez",     "Gonzalez", "Wilson",   "Anderson",  "Thomas",  "Taylor",    "Moore",
    "Jackson",   "Martin",    "Lee",       "Perez",    "Thompson", "White",     "Harris",  "Sanchez",   "Clark",
    "Ramirez",   "Lewis",     "Robinson",  "Walker",   "Young",    "Allen",     "King",    "Wright",    "Scott",
    "Torres",    "Nguyen",    "Hill",      "Flores",   "Green",    "Adams",     "Nelson",  "Baker",     "Hall",
    "Rivera",    "Campbell",  "Mitchell",  "Carter",   "Roberts",  "Mueller",   "Schmidt", "Schneider", "Fischer",
    "Weber",     "Meyer",     "Wagner",    "Becker",   "Dubois",   "Laurent",   "Bernard", "Moreau",    "Rossi",
    "Russo",     "Ferrari",   "Esposito",  "Bianchi",  "Jansen",   "DeVries",   "Bakker",  "Visser",    "Andersson",
    "Johansson", "Karlsson",  "Nilsson",   "Sato",     "Suzuki",   "Takahashi", "Tanaka",  "Silva",     "Santos",
    "Oliveira",  "Souza",     "Fernandez", "Gomez",    "Diaz",     "Patel",     "Shah",    "Khan",      "Chen",
    "Wang",      "Li",        "Kim",       "Park",     "OBrien",   "Murphy",    "Kelly",   "Walsh",     "Evans",
    "Hughes"};

struct City {
  const char* name;
  const char* postal_prefix;
  const char* postal_pattern;  // '9': digit, 'A': letter
};
struct Country {
  const char* code;
  // Mobile numbers: the country calling code and a mobile prefix (distinct between countries), then
  // `phone_digits` digits, the first of them one of `phone_first`: numbers libphonenumber takes as valid
  // (tests/demo/generator_test.cc checks every country's).
  const char* phone_prefix;
  int phone_digits;
  const char* phone_first;
  double weight;
  std::vector<City> cities;
};

const std::vector<Country>& Countries() {
  static const std::vector<Country> kCountries = {
      {"US",
       "1202",
       7,
       "23456789",
       38,
       {{"New York", "100", "99"},
        {"Los Angeles", "900", "99"},
        {"Chicago", "606", "99"},
        {"Houston", "770", "99"},
        {"Seattle", "981", "99"},
        {"Austin", "787", "99"},
        {"Miami", "331", "99"},
        {"Boston", "021", "99"},
        {"Denver", "802", "99"},
        {"San Francisco", "941", "99"},
        {"Atlanta", "303", "99"},
        {"Portland", "972", "99"}}},
      {"GB",
       "4474",
       8,
       "0123456789",
       12,
       {{"London", "SW", "9 9AA"},
        {"Manchester", "M", "9 9AA"},
        {"Birmingham", "B", "9 9AA"},
        {"Leeds", "LS", "9 9AA"},
        {"Bristol", "BS", "9 9AA"},
        {"Edinburgh", "EH", "9 9AA"}}},
      {"DE",
       "49151",
       8,
       "0123456789",
       10,
       {{"Berlin", "10", "999"},
        {"Hamburg", "20", "999"},
        {"Munich", "80", "999"},
        {"Cologne", "50", "999"},
        {"Frankfurt", "60", "999"}}},
      {"FR",
       "3361",
       7,
       "0123456789",
       8,
       {{"Paris", "750", "99"},
        {"Lyon", "690", "99"},
        {"Marseille", "130", "99"},
        {"Toulouse", "310", "99"},
        {"Bordeaux", "330", "99"}}},
      {"CA",
       "1416",
       7,
       "23456789",
       7,
       {{"Toronto", "M", "9A 9A9"},
        {"Vancouver", "V", "9A 9A9"},
        {"Montreal", "H", "9A 9A9"},
        {"Calgary", "T", "9A 9A9"}}},
      {"AU",
       "6141",
       7,
       "0123456789",
       5,
       {{"Sydney", "20", "99"}, {"Melbourne", "30", "99"}, {"Brisbane", "40", "99"}, {"Perth", "60", "99"}}},
      {"NL",
       "3161",
       7,
       "0123456789",
       4,
       {{"Amsterdam", "10", "99 AA"}, {"Rotterdam", "30", "99 AA"}, {"Utrecht", "35", "99 AA"}}},
      {"ES",
       "3461",
       7,
       "0123456789",
       4,
       {{"Madrid", "280", "99"}, {"Barcelona", "080", "99"}, {"Valencia", "460", "99"}}},
      {"IT", "3933", 8, "0123456789", 4, {{"Rome", "001", "99"}, {"Milan", "201", "99"}, {"Turin", "101", "99"}}},
      {"SE",
       "4670",
       7,
       "0123456789",
       3,
       {{"Stockholm", "11", "9 99"}, {"Gothenburg", "41", "9 99"}, {"Malmo", "21", "9 99"}}},
      {"JP",
       "8190",
       8,
       "123456789",
       3,
       {{"Tokyo", "1", "99-9999"}, {"Osaka", "5", "99-9999"}, {"Yokohama", "2", "99-9999"}}},
      {"BR", "55119", 8, "0123456789", 2, {{"Sao Paulo", "0", "9999-999"}, {"Rio de Janeiro", "2", "9999-999"}}},
  };
  return kCountries;
}

const char* const kWorkDomains[] = {"acme-corp.com", "globex.io", "initech.com",   "northwind.co",  "contoso.com",
                                    "umbrella.org",  "hooli.com", "stark-ind.com", "wayne-ent.com", "cyberdyne.net"};
const char* const kEmailDomains[] = {"gmail.com", "gmail.com",  "gmail.com",   "outlook.com",
                                     "yahoo.com", "icloud.com", "hotmail.com", "proton.me",
                                     "gmx.de",    "orange.fr",  "example.com", "fastmail.com"};

struct Category {
  const char* name;
  const char* slug;
  double price_median;
  const char* nouns[8];
};
const Category kCategories[] = {
    {"Apparel", "apparel", 35, {"T-Shirt", "Hoodie", "Jacket", "Jeans", "Sweater", "Dress", "Shorts", "Cap"}},
    {"Shoes",
     "shoes",
     85,
     {"Sneakers", "Running Shoes", "Boots", "Sandals", "Loafers", "Trail Shoes", "Slippers", "High-Tops"}},
    {"Electronics",
     "electronics",
     120,
     {"Headphones", "Earbuds", "Smartwatch", "Speaker", "Charger", "Keyboard", "Mouse", "Webcam"}},
    {"Home & Kitchen",
     "home-kitchen",
     45,
     {"Mug", "Pan", "Knife Set", "Blender", "Lamp", "Throw Blanket", "Cutting Board", "Coffee Grinder"}},
    {"Beauty",
     "beauty",
     25,
     {"Serum", "Moisturizer", "Lip Balm", "Shampoo", "Face Mask", "Perfume", "Sunscreen", "Cleanser"}},
    {"Sports & Outdoors",
     "sports-outdoors",
     55,
     {"Yoga Mat", "Water Bottle", "Backpack", "Tent", "Dumbbells", "Bike Light", "Running Vest", "Trekking Poles"}},
    {"Books",
     "books",
     18,
     {"Cookbook", "Novel", "Travel Guide", "Notebook", "Planner", "Art Book", "Biography", "Comic"}},
    {"Toys",
     "toys",
     30,
     {"Puzzle", "Building Set", "Board Game", "Plush Bear", "Kite", "Card Game", "RC Car", "Science Kit"}},
};
constexpr size_t kNumCategories = sizeof(kCategories) / sizeof(kCategories[0]);
const char* const kAdjectives[] = {"Classic", "Essential", "Premium", "Eco",   "Urban",   "Lightweight",
                                   "Pro",     "Everyday",  "Vintage", "Ultra", "Compact", "Deluxe",
                                   "Organic", "Nordic",    "Soft",    "Active"};

struct Product {
  std::string sku;
  std::string name;
  uint8_t category;
  double price;
};

struct Utm {
  const char* source;
  const char* medium;
};
const Utm kUtms[] = {{"google", "cpc"},
                     {"facebook", "paid_social"},
                     {"instagram", "paid_social"},
                     {"tiktok", "paid_social"},
                     {"newsletter", "email"},
                     {"bing", "cpc"},
                     {"affiliate_network", "affiliate"},
                     {"pinterest", "social"},
                     {"google", "shopping"}};
constexpr uint8_t kUtmNewsletter = 4;
const double kUtmWeights[] = {30, 16, 12, 7, 0, 5, 6, 4, 14};

const char* CampaignFor(int64_t t_us, uint8_t utm) {
  int64_t days = t_us / kDay;
  int y, m, d;
  CivilFromDays(days, &y, &m, &d);
  int64_t bf = BlackFriday(y);
  if (days >= bf - 7 && days <= bf + 3) return "black_friday";
  if (m == 12 && d <= 24) return "holiday_sale";
  if (m == 12 || (m == 1 && d <= 15)) return "winter_sale";
  if (m >= 6 && m <= 8) return "summer_sale";
  if (m == 3 || m == 4) return "spring_collection";
  if (m == 9 && d <= 15) return "back_to_school";
  if (utm == 0 || utm == 5 || utm == 8) return "brand_search";
  return "always_on_prospecting";
}

const char* const kSearchQueries[] = {"running shoes",
                                      "wireless earbuds",
                                      "hoodie",
                                      "gift for dad",
                                      "yoga mat",
                                      "coffee",
                                      "sale",
                                      "boots women",
                                      "smartwatch",
                                      "lego",
                                      "backpack",
                                      "sunscreen spf 50",
                                      "christmas gifts",
                                      "black friday deals",
                                      "jeans slim"};
const char* const kBlogPosts[] = {"how-to-choose-running-shoes", "holiday-gift-guide",   "care-for-your-jeans",
                                  "best-headphones-2026",        "spring-cleaning-tips", "camping-checklist"};
const char* const kAppScreens[] = {"home", "search", "product", "cart", "account", "orders", "wishlist", "deals"};
const char* const kReferrers[] = {"https://www.google.com/", "https://www.bing.com/", "https://duckduckgo.com/",
                                  "https://www.reddit.com/", "https://t.co/"};
const char* const kTiers[] = {"bronze", "silver", "gold", "platinum"};
const char* const kSignupChannels[] = {"web", "ios", "android", "store", "referral"};

// ---- plan --------------------------------------------------------------------------------------------------------

struct Person {
  uint32_t gidx = 0;  // unique per person: known customers 0..P-1, visitors P..
  bool known = true;
  uint8_t country = 0, city = 0;
  uint16_t first = 0, last = 0;
  uint8_t ndev = 0;  // devices [0, ndev)
  uint8_t nreg = 0;  // known customers: devices [0, nreg) are registered on the profile
  uint8_t dev_kind[4] = {};
  uint8_t buyer = 0;  // 0 never buys, 1 occasional, 2 loyal
  uint8_t pref_cat = 0;
  uint8_t pref_utm = 0;
  bool phone = false, shopify = false;
  bool phone2 = false;  // a second phone (known customers with a phone)
  bool consent_email = false, consent_sms = false, consent_tracking = true;
  bool churner = false;
  uint32_t budget = 0;
  double weight = 0;
  std::string email;
  std::string email2;  // a second (work) email of a known customer, or empty
};

struct Spec {
  int64_t time_us;
  int64_t deliver_us;
  uint32_t person;
  uint32_t aux;      // purchase: order index
  uint16_t product;  // product for product_view / add_to_cart / category and product pages
  uint8_t type;
  uint8_t device;  // device slot or kNoDevice
  uint8_t ident;   // Ident bits
  uint8_t utm;     // 0: none, else kUtms index + 1
  uint8_t page;    // page_view: Page; custom: CustomName; app_usage: screen
  uint8_t first;   // first event of its session
};

struct OrderItem {
  uint16_t product;
  uint8_t quantity;
};
struct Order {
  uint32_t first_item;
  uint8_t items;
  bool discount;
};

// One event of a session being planned, before times are laid out.
struct Step {
  int64_t offset_us;
  Spec spec;
};

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

// A bijection of [0, mod) (mod = 10^k): x -> (x * a + b) mod mod, with a coprime to 10.
uint64_t Permute(uint64_t x, uint64_t mod, uint64_t b) {
  return static_cast<uint64_t>((static_cast<__uint128_t>(x) * 7919u + b) % mod);
}

void AppendPadded(std::string* out, uint64_t v, int width) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%0*llu", width, static_cast<unsigned long long>(v));
  out->append(buf);
}

void AppendHex(std::string* out, uint64_t v, int digits) {
  static const char kHex[] = "0123456789abcdef";
  for (int i = digits - 1; i >= 0; --i) out->push_back(kHex[(v >> (4 * i)) & 15]);
}

Json Str(std::string s) { return Json(std::move(s)); }

// Appends a member without the linear duplicate check of Json::Set (keys here are distinct by construction).
inline void Add(Json* obj, const char* key, Json value) { obj->members().emplace_back(key, std::move(value)); }

double RoundCents(double v) { return std::round(v * 100.0) / 100.0; }

}  // namespace

// ------------------------------------------------------------------------------------------------------------------

struct Generator::Impl {
  GeneratorConfig config;
  GeneratorSummary summary;
  uint64_t salt = 0;
  int64_t range_start = 0, range_end = 0;
  std::vector<Product> products;
  std::vector<Person> persons;
  std::vector<Spec> specs;
  std::vector<Order> orders;
  std::vector<OrderItem> order_items;
  std::vector<uint8_t> device_used;  // per person and device slot: already attached (for visitors / unregistered)

  size_t next_profile = 0;
  size_t next_event = 0;
  Rng out_rng;  // for details chosen while writing JSON

  explicit Impl(const GeneratorConfig& c) : config(c), out_rng(c.seed ^ 0x5eed0f0e7e77ULL) { Plan(); }

  // -- identifiers --
  std::string CustomerId(uint32_t gidx) const {
    std::string s = "cus_";
    AppendPadded(&s, Permute(gidx, 100000000ULL, salt % 100000000ULL), 8);
    return s;
  }
  // The person's phone (slot 0) or second phone (slot 1): a bijection of gidx + slot * persons, so no two
  // numbers meet while 2 x persons fit the smallest country's range (8 first digits x 10^6): up to 4,000,000
  // people.
  std::string Phone(const Person& p, int slot = 0) const {
    const Country& c = Countries()[p.country];
    const std::string_view first = c.phone_first;
    uint64_t rest = 1;
    for (int i = 1; i < c.phone_digits; ++i) rest *= 10;
    const uint64_t range = first.size() * rest;
    const uint64_t v = Permute(p.gidx + static_cast<uint64_t>(slot) * persons.size(), range, (salt >> 20) % range);
    std::string s = "+";
    s += c.phone_prefix;
    s.push_back(first[v / rest]);
    AppendPadded(&s, v % rest, c.phone_digits - 1);
    return s;
  }
  std::string ShopifyId(uint32_t gidx) const {
    std::string s = "7";
    AppendPadded(&s, Permute(gidx, 1000000000000ULL, (salt >> 7) % 1000000000000ULL), 12);
    return s;
  }
  std::string DeviceId(uint32_t gidx, int slot) const {
    uint64_t a = Mix64(salt ^ (static_cast<uint64_t>(gidx) * 8 + static_cast<uint64_t>(slot)));
    uint64_t b = Mix64(a + 0x9e3779b97f4a7c15ULL);
    std::string s;
    s.reserve(36);
    AppendHex(&s, a >> 32, 8);
    s.push_back('-');
    AppendHex(&s, (a >> 16) & 0xffff, 4);
    s.push_back('-');
    AppendHex(&s, a & 0xffff, 4);
    s.push_back('-');
    AppendHex(&s, b >> 48, 4);
    s.push_back('-');
    AppendHex(&s, b & 0xffffffffffffULL, 12);
    return s;
  }

  uint16_t PickProduct(Rng& rng, uint8_t pref_cat) {
    // Popularity is Zipf-like within a category; half of the views go to the person's preferred category.
    size_t per_cat = products.size() / kNumCategories;
    uint8_t cat = rng.Chance(0.5) ? pref_cat : static_cast<uint8_t>(rng.Below(kNumCategories));
    size_t i = static_cast<size_t>(std::pow(rng.U01(), 2.0) * static_cast<double>(per_cat));
    if (i >= per_cat) i = per_cat - 1;
    return static_cast<uint16_t>(cat * per_cat + i);
  }

  int64_t SeasonalTime(Rng& rng, int64_t a, int64_t b) {
    if (b <= a) return a;
    for (int tries = 0; tries < 64; ++tries) {
      int64_t t = a + static_cast<int64_t>(rng.U01() * static_cast<double>(b - a));
      if (rng.U01() * kMaxTrafficWeight < TrafficWeight(t)) return t;
    }
    return a + static_cast<int64_t>(rng.U01() * static_cast<double>(b - a));
  }

  void Plan();
  void PlanPerson(Rng& rng, uint32_t pi);
  void PlanSession(Rng& rng, Person& p, uint32_t pi, uint32_t budget, bool* identified, std::vector<Step>* out);

  // An order's amounts: revenue = subtotal + shipping - discount, all rounded to cents.
  void OrderAmounts(const Order& o, double* subtotal, double* shipping, double* discount, double* revenue,
                    int* count) const {
    double sub = 0;
    int n = 0;
    for (uint32_t i = 0; i < o.items; ++i) {
      const OrderItem& it = order_items[o.first_item + i];
      sub += products[it.product].price * it.quantity;
      n += it.quantity;
    }
    sub = RoundCents(sub);
    *subtotal = sub;
    *shipping = sub >= 50 ? 0.0 : 4.95;
    *discount = o.discount ? RoundCents(sub * 0.1) : 0.0;
    *revenue = RoundCents(sub + *shipping - *discount);
    *count = n;
  }

  Json ProfileJson(size_t i);
  Json EventJson(const Spec& s, size_t seq);
  Json ProductJson(const Product& pr, int quantity);
};

void Generator::Impl::Plan() {
  Rng rng(config.seed);
  salt = Mix64(config.seed ^ 0xc0ffee1234567ULL);
  int days = std::max(1, config.days);
  range_end = config.end_time_us;
  range_start = range_end - static_cast<int64_t>(days) * kDay;

  // Catalog: 30 products per category.
  for (size_t c = 0; c < kNumCategories; ++c) {
    for (int i = 0; i < 30; ++i) {
      Product pr;
      pr.category = static_cast<uint8_t>(c);
      pr.name = std::string(rng.Pick(kAdjectives)) + " " + kCategories[c].nouns[rng.Below(8)];
      pr.sku = "SKU-";
      AppendPadded(&pr.sku, c * 1000 + static_cast<size_t>(i) + 101, 5);
      double price = kCategories[c].price_median * rng.LogNormal(0, 0.5);
      pr.price = std::max(2.0, std::floor(price)) + 0.99;
      products.push_back(std::move(pr));
    }
  }

  // Persons.
  size_t known = config.profiles;
  size_t visitors = config.anonymous_visitors == SIZE_MAX ? config.profiles / 5 : config.anonymous_visitors;
  if (known + visitors == 0 && config.events > 0) visitors = 1;
  size_t total = known + visitors;
  persons.resize(total);
  std::vector<double> country_w;
  for (const Country& c : Countries()) country_w.push_back(c.weight);
  double country_total = 0;
  for (double w : country_w) country_total += w;
  std::unordered_set<std::string> emails;
  emails.reserve(total * 2);
  for (size_t i = 0; i < total; ++i) {
    Person& p = persons[i];
    p.gidx = static_cast<uint32_t>(i);
    p.known = i < known;
    double r = rng.U01() * country_total;
    size_t ci = 0;
    while (ci + 1 < country_w.size() && r >= country_w[ci]) r -= country_w[ci++];
    p.country = static_cast<uint8_t>(ci);
    p.city = static_cast<uint8_t>(rng.Below(Countries()[ci].cities.size()));
    p.first = static_cast<uint16_t>(rng.Below(std::size(kFirstNames)));
    p.last = static_cast<uint16_t>(rng.Below(std::size(kLastNames)));
    // Devices: everyone browses on the web; some on a phone browser; some use the app.
    p.ndev = 0;
    p.dev_kind[p.ndev++] = rng.Chance(0.6) ? kDesktop : kMobileWeb;
    if (rng.Chance(0.45)) p.dev_kind[p.ndev++] = p.dev_kind[0] == kDesktop ? kMobileWeb : kDesktop;
    if (rng.Chance(0.35)) p.dev_kind[p.ndev++] = rng.Chance(0.55) ? kIos : kAndroid;
    if (p.known) {
      // Some customers also use a device they never registered (the last one).
      p.nreg = p.ndev;
      if (rng.Chance(0.25) && p.ndev < 4) {
        p.dev_kind[p.ndev++] = rng.Chance(0.5) ? kMobileWeb : kDesktop;
      }
    } else {
      p.nreg = 0;
    }
    double b = rng.U01();
    p.buyer = b < 0.35 ? 0 : (b < 0.85 ? 1 : 2);
    p.pref_cat = static_cast<uint8_t>(rng.Below(kNumCategories));
    p.pref_utm = static_cast<uint8_t>(rng.Weighted(kUtmWeights));
    p.phone = rng.Chance(0.7);
    p.shopify = p.known && rng.Chance(0.3);
    p.consent_email = rng.Chance(0.62);
    p.consent_sms = p.phone && rng.Chance(0.3);
    p.consent_tracking = rng.Chance(0.9);
    // Activity: heavy-tailed; some known customers are dormant; visitors are lighter.
    p.weight = rng.LogNormal(0, 1.1);
    if (p.known && rng.Chance(0.08)) p.weight = 0;
    if (!p.known) p.weight *= 0.6;
    if (p.buyer == 2) p.weight *= 1.6;
    if (!p.consent_tracking) p.weight = 0;  // who denied tracking is not tracked (libcdp refuses their events)
    // Email: first.last@, flast@, firstlast12@ ... ; deduplicated by appending the person's index.
    std::string first = Lower(kFirstNames[p.first]), last = Lower(kLastNames[p.last]);
    std::string local;
    switch (rng.Below(5)) {
      case 0:
        local = first + "." + last;
        break;
      case 1:
        local = first.substr(0, 1) + last;
        break;
      case 2:
        local = first + last + std::to_string(rng.Range(1, 99));
        break;
      case 3:
        local = first + "_" + last;
        break;
      default:
        local = first + "." + last + std::to_string(rng.Range(70, 2005));
        break;
    }
    std::string email = local + "@" + rng.Pick(kEmailDomains);
    if (!emails.insert(email).second) {
      email = local + "." + std::to_string(p.gidx) + "@" + rng.Pick(kEmailDomains);
      if (!emails.insert(email).second) {
        email = local + ".u" + std::to_string(p.gidx) + "x" + "@example.net";  // unique: gidx is
        emails.insert(email);
      }
    }
    p.email = std::move(email);
    // A second email (work) and phone for some known customers, from a generator of their own, so that the main
    // one's draws (everything else in the data) stay as they were.
    Rng side(Mix64(salt ^ (0x5ec0d00000000000ULL + p.gidx)));
    if (p.known && side.Chance(0.25)) {
      std::string work = first.substr(0, 1) + last + "@" + side.Pick(kWorkDomains);
      if (!emails.insert(work).second) {
        work = first.substr(0, 1) + last + "." + std::to_string(p.gidx) + "@" + side.Pick(kWorkDomains);
        emails.insert(work);  // unique: gidx is
      }
      p.email2 = std::move(work);
    }
    p.phone2 = p.known && p.phone && side.Chance(0.15);
  }

  // Budgets: exactly config.events in all, proportional to weight, capped so nobody is absurdly busy.
  size_t n_events = config.events;
  double wsum = 0;
  for (const Person& p : persons) wsum += p.weight;
  if (wsum <= 0) {
    for (Person& p : persons) p.weight = 1;
    wsum = static_cast<double>(total);
  }
  uint64_t cap = std::max<uint64_t>(3000, 4 * n_events / std::max<size_t>(1, total));
  uint64_t assigned = 0;
  for (Person& p : persons) {
    uint64_t b = static_cast<uint64_t>(static_cast<double>(n_events) * p.weight / wsum);
    p.budget = static_cast<uint32_t>(std::min(b, cap));
    assigned += p.budget;
  }
  while (assigned < n_events && total > 0) {  // leftovers one by one to random active persons
    Person& p = persons[rng.Below(total)];
    if (p.weight <= 0 || p.budget >= cap) {
      if (rng.Chance(0.01)) {  // safety valve for degenerate configs
        ++p.budget;
        ++assigned;
      }
      continue;
    }
    ++p.budget;
    ++assigned;
  }

  device_used.assign(total * 4, 0);
  specs.reserve(n_events);
  for (uint32_t i = 0; i < total; ++i) PlanPerson(rng, i);

  // Late deliveries: only events that name a known customer by an identifier it holds from the start.
  for (Spec& s : specs) {
    s.deliver_us = s.time_us;
    if (config.late_fraction <= 0) continue;
    const Person& p = persons[s.person];
    bool eligible = p.known && (s.device == kNoDevice || s.device < p.nreg);
    if (eligible && rng.Chance(config.late_fraction)) {
      s.deliver_us = s.time_us + static_cast<int64_t>(rng.Range(10 * kMinute, 48 * kHour));
      ++summary.late_events;
    }
  }
  std::stable_sort(specs.begin(), specs.end(), [](const Spec& a, const Spec& b) {
    if (a.deliver_us != b.deliver_us) return a.deliver_us < b.deliver_us;
    return a.person < b.person;
  });

  summary.profiles = known;
  summary.events = specs.size();
  for (const Spec& s : specs) {
    ++summary.events_by_type[s.type];
    if (s.first) ++summary.sessions;
  }
  summary.purchases = summary.events_by_type[kPurchase];
  for (const Spec& s : specs) {
    if (s.type != kPurchase) continue;
    double subtotal, shipping, discount, revenue;
    int count;
    OrderAmounts(orders[s.aux], &subtotal, &shipping, &discount, &revenue, &count);
    summary.revenue += revenue;
  }
  for (size_t i = known; i < total; ++i) {
    if (persons[i].budget > 0) ++summary.anonymous_visitors;
  }
}

// Plans one person's sessions: content first (until the budget is used), then start times, then layout.
void Generator::Impl::PlanPerson(Rng& rng, uint32_t pi) {
  Person& p = persons[pi];
  if (p.budget == 0) return;
  std::vector<std::vector<Step>> sessions;
  uint32_t left = p.budget;
  bool identified = p.known;
  bool was_visitor_identified = false;
  while (left > 0) {
    std::vector<Step> steps;
    PlanSession(rng, p, pi, left, &identified, &steps);
    if (steps.empty()) continue;
    steps.front().spec.first = 1;
    left -= static_cast<uint32_t>(steps.size());
    sessions.push_back(std::move(steps));
  }
  if (!p.known && identified) was_visitor_identified = true;
  if (was_visitor_identified) ++summary.identified_visitors;

  // Active window.
  const int64_t span = range_end - range_start;
  int64_t start, end;
  p.churner = rng.Chance(0.25) && p.budget >= 3;
  if (p.churner) {
    start = range_start + static_cast<int64_t>(rng.U01() * 0.8 * static_cast<double>(span));
    end = start + rng.Range(14 * kDay, 120 * kDay);
  } else {
    // Most known customers were already customers when the range starts; the others (and visitors) arrive
    // during it.
    bool existing = p.known && rng.Chance(0.65);
    start = existing ? range_start : range_start + static_cast<int64_t>(rng.U01() * 0.9 * static_cast<double>(span));
    end = range_end;
  }
  end = std::min(end, range_end - kHour);
  // Room for every session: about 3 h each.
  int64_t needed = static_cast<int64_t>(sessions.size()) * 3 * kHour;
  if (end - start < needed) {
    end = std::min(range_end - kHour, start + needed);
    if (end - start < needed) start = std::max(range_start, end - needed);
  }
  if (p.churner && end < range_end - 30 * kDay) ++summary.churners;

  const size_t n = sessions.size();
  std::vector<int64_t> starts(n);
  for (size_t i = 0; i < n; ++i) starts[i] = SeasonalTime(rng, start, end);
  std::sort(starts.begin(), starts.end());
  auto layout = [&](const std::vector<int64_t>& st) {
    int64_t prev_end = INT64_MIN / 2;
    int64_t last = 0;
    std::vector<int64_t> firsts(n);
    for (size_t i = 0; i < n; ++i) {
      int64_t s0 = std::max(st[i], prev_end + 35 * kMinute);
      firsts[i] = s0;
      prev_end = s0 + sessions[i].back().offset_us;
      last = prev_end;
    }
    return std::make_pair(firsts, last);
  };
  auto [firsts, last] = layout(starts);
  if (last >= range_end) {  // crowded: spread evenly instead
    int64_t spacing = (end - start) / static_cast<int64_t>(n);
    for (size_t i = 0; i < n; ++i) starts[i] = start + static_cast<int64_t>(i) * spacing;
    std::tie(firsts, last) = layout(starts);
  }
  // Degenerate configs (thousands of events per person): squeeze into the range, keeping order.
  const bool squeeze = last >= range_end;
  const int64_t first_t = firsts.empty() ? start : firsts[0];
  const double factor =
      squeeze ? static_cast<double>(range_end - 1000 - first_t) / static_cast<double>(last - first_t) : 1.0;
  for (size_t i = 0; i < n; ++i) {
    for (Step& st : sessions[i]) {
      int64_t t = firsts[i] + st.offset_us;
      if (squeeze) t = first_t + static_cast<int64_t>(static_cast<double>(t - first_t) * factor);
      t -= t % 1000;  // millisecond precision
      st.spec.time_us = t;
      st.spec.person = pi;
      specs.push_back(st.spec);
    }
  }
}

// Plans one session of at most `budget` events for person p.
void Generator::Impl::PlanSession(Rng& rng, Person& p, uint32_t pi, uint32_t budget, bool* identified,
                                  std::vector<Step>* out) {
  out->clear();
  int64_t t = 0;
  auto add = [&](uint8_t type, uint8_t device, uint8_t ident) -> Spec& {
    Step st{};
    st.offset_us = t;
    st.spec.type = type;
    st.spec.device = device;
    st.spec.ident = ident;
    out->push_back(st);
    // Next event: 5 s .. ~5 min later.
    t += static_cast<int64_t>(std::min(300.0, 5.0 + rng.Exponential(50.0)) * kSecond) + rng.Range(0, 999) * 1000;
    return out->back().spec;
  };
  auto full = [&]() { return out->size() >= budget; };

  // Email session: an email_open, sometimes followed by a click-through visit.
  bool app_user = false;
  for (int d = 0; d < p.ndev; ++d) app_user |= p.dev_kind[d] == kIos || p.dev_kind[d] == kAndroid;
  const bool can_email = *identified && p.consent_email;
  double r = rng.U01();
  uint8_t device;
  bool email_session = can_email && r < 0.12;
  bool app_session = !email_session && app_user && r < 0.45;
  // Which of a person's emails or phones an event names: a hash of the person and the event, not a draw of `rng`.
  auto pick = [&](uint64_t what) {
    return Mix64(salt ^ (static_cast<uint64_t>(p.gidx) << 24) ^ (out->size() << 4) ^ what);
  };
  if (email_session) {
    // A work newsletter reaches the second email in 40% of opens.
    add(kEmailOpen, kNoDevice, !p.email2.empty() && pick(1) % 5 < 2 ? kIdEmail | kIdEmail2 : kIdEmail);
    if (full() || !rng.Chance(0.35)) return;
  }
  // Which device: app sessions on the app; web sessions on a web device. Visitors and unregistered devices need
  // care: a device not attached to the person yet may only appear anonymously (visitor before identification) or
  // with a login (customerId) on its first use.
  std::vector<uint8_t> candidates;
  for (uint8_t d = 0; d < p.ndev; ++d) {
    bool is_app = p.dev_kind[d] == kIos || p.dev_kind[d] == kAndroid;
    if (is_app != app_session) continue;
    if (!p.known && !*identified && d != 0) continue;  // an anonymous visitor uses one device
    candidates.push_back(d);
  }
  if (candidates.empty()) {
    app_session = false;
    candidates.push_back(0);
  }
  device = candidates[rng.Below(candidates.size())];
  uint8_t& used = device_used[static_cast<size_t>(pi) * 4 + device];
  const bool registered = p.known && device < p.nreg;
  const bool anonymous = !*identified;  // visitor before identification: deviceId only
  bool logged_in = !anonymous && (rng.Chance(0.5) || (!registered && !used));
  uint8_t base_ident = anonymous ? static_cast<uint8_t>(kIdDevice)
                                 : static_cast<uint8_t>(kIdDevice | (logged_in ? static_cast<int>(kIdCustomer) : 0));
  if (!registered && !anonymous && !used) base_ident = kIdDevice | kIdCustomer;  // login attaches the device
  used = 1;

  // Identification of a visitor in this session (a sign-up, or a guest checkout below).
  const bool will_sign_up = anonymous && rng.Chance(0.3);

  // Landing.
  const uint8_t source_utm =
      email_session ? static_cast<uint8_t>(kUtmNewsletter + 1)
                    : (rng.Chance(app_session ? 0.0 : 0.55)
                           ? static_cast<uint8_t>((rng.Chance(0.6) ? p.pref_utm : rng.Weighted(kUtmWeights)) + 1)
                           : 0);
  if (app_session) {
    Spec& s = add(kAppUsage, device, base_ident);
    s.page = 0;  // home
    s.first = out->size() == 1;
  } else {
    Spec& s = add(kPageView, device, base_ident);
    s.first = out->size() == 1;
    s.utm = source_utm;
    double lp = rng.U01();
    s.page = source_utm ? (lp < 0.5 ? kProductPage : (lp < 0.8 ? kCategory : kHome))
                        : (lp < 0.55 ? kHome : (lp < 0.8 ? kCategory : (lp < 0.9 ? kBlog : kProductPage)));
    s.product = PickProduct(rng, p.pref_cat);
  }
  if (full()) return;
  if (will_sign_up) {
    Spec& s = add(kCustom, device, kIdDevice | kIdEmail | kIdCustomer);
    s.page = kCustomSignUp;
    *identified = true;
    base_ident = kIdDevice | kIdCustomer;
    if (full()) return;
  }

  // Browse: pages, searches and product views.
  int steps = rng.Geometric(0.72, 25);
  std::vector<uint16_t> viewed;
  for (int i = 0; i < steps && !full(); ++i) {
    double x = rng.U01();
    if (x < (app_session ? 0.45 : 0.5)) {
      Spec& s = add(kProductView, device, base_ident);
      s.product = PickProduct(rng, p.pref_cat);
      viewed.push_back(s.product);
    } else if (app_session && x < 0.85) {
      Spec& s = add(kAppUsage, device, base_ident);
      s.page = static_cast<uint8_t>(rng.Below(std::size(kAppScreens)));
    } else if (x < (app_session ? 0.9 : 0.58)) {
      Spec& s = add(kCustom, device, base_ident);
      s.page = rng.Chance(0.8) ? kCustomSearch : kCustomWishlist;
      s.product = PickProduct(rng, p.pref_cat);
    } else {
      Spec& s = add(app_session ? kAppUsage : kPageView, device, base_ident);
      s.page = app_session ? static_cast<uint8_t>(rng.Below(std::size(kAppScreens)))
                           : static_cast<uint8_t>(rng.Chance(0.6) ? kCategory : (rng.Chance(0.5) ? kAccount : kBlog));
      s.product = PickProduct(rng, p.pref_cat);
    }
  }
  if (viewed.empty() || full()) return;
  // (the session's first event is marked by the caller)

  // Cart.
  static constexpr double kCartProb[3] = {0.15, 0.35, 0.55};
  if (!rng.Chance(kCartProb[p.buyer])) return;
  std::vector<OrderItem> cart;
  int n_cart = std::min<int>(static_cast<int>(viewed.size()), rng.Geometric(0.3, 4));
  for (int i = 0; i < n_cart && !full(); ++i) {
    uint16_t prod = viewed[rng.Below(viewed.size())];
    bool dup = false;
    for (OrderItem& it : cart) {
      if (it.product == prod) {
        ++it.quantity;
        dup = true;
      }
    }
    if (!dup) cart.push_back({prod, 1});
    Spec& s = add(kAddToCart, device, base_ident);
    s.product = prod;
  }
  if (full()) return;
  if (!app_session) {
    Spec& s = add(kPageView, device, base_ident);
    s.page = kCart;
    if (full()) return;
  }

  // Purchase (never-buyers abandon their carts).
  static constexpr double kBuyProb[3] = {0.0, 0.45, 0.8};
  if (!rng.Chance(kBuyProb[p.buyer])) return;
  if (!app_session) {
    Spec& s = add(kPageView, device, base_ident);
    s.page = kCheckout;
    if (full()) return;
  }
  uint8_t ident = static_cast<uint8_t>(kIdDevice | kIdCustomer | kIdEmail);
  // A third of known customers' checkouts give a phone for delivery updates (the second one, when they have it,
  // half the time).
  if (p.known && p.phone && pick(2) % 3 == 0) ident |= p.phone2 && pick(3) % 2 == 0 ? kIdPhone | kIdPhone2 : kIdPhone;
  Spec& s = add(kPurchase, device, ident);  // checkout names the customer (a guest checkout identifies a visitor)
  s.aux = static_cast<uint32_t>(orders.size());
  orders.push_back({static_cast<uint32_t>(order_items.size()), static_cast<uint8_t>(cart.size()), rng.Chance(0.2)});
  for (const OrderItem& it : cart) order_items.push_back(it);
  if (!*identified) {
    *identified = true;
  }
  base_ident = kIdDevice | kIdCustomer;
  if (full()) return;
  if (!app_session) {
    Spec& c = add(kPageView, device, base_ident);
    c.page = kConfirmation;
  }
}

Json Generator::Impl::ProductJson(const Product& pr, int quantity) {
  Json j = Json::Object();
  Add(&j, "productId", Str(pr.sku));
  Add(&j, "name", Str(pr.name));
  Add(&j, "category", Json(kCategories[pr.category].name));
  Add(&j, "price", Json(pr.price));
  if (quantity > 0) Add(&j, "quantity", Json(quantity));
  return j;
}

Json Generator::Impl::ProfileJson(size_t i) {
  Rng& rng = out_rng;
  const Person& p = persons[i];
  const Country& country = Countries()[p.country];
  const City& city = country.cities[p.city];

  Json ext = Json::Object();
  Add(&ext, "customerId", Str(CustomerId(p.gidx)));
  if (p.email2.empty()) {
    Add(&ext, "email", Str(p.email));
  } else {
    Json emails = Json::Array();
    emails.Push(Str(p.email));
    emails.Push(Str(p.email2));
    Add(&ext, "email", std::move(emails));
  }
  if (p.phone2) {
    Json phones = Json::Array();
    phones.Push(Str(Phone(p)));
    phones.Push(Str(Phone(p, 1)));
    Add(&ext, "phone", std::move(phones));
  } else if (p.phone) {
    Add(&ext, "phone", Str(Phone(p)));
  }
  if (p.shopify) Add(&ext, "shopifyId", Str(ShopifyId(p.gidx)));
  Json devices = Json::Array();
  for (int d = 0; d < p.nreg; ++d) devices.Push(Str(DeviceId(p.gidx, d)));
  Add(&ext, "deviceIds", std::move(devices));

  std::string postal = city.postal_prefix;
  for (const char* c = city.postal_pattern; *c; ++c) {
    if (*c == '9')
      postal.push_back(static_cast<char>('0' + rng.Below(10)));
    else if (*c == 'A')
      postal.push_back(static_cast<char>('A' + rng.Below(26)));
    else
      postal.push_back(*c);
  }

  Json attrs = Json::Object();
  Add(&attrs, "firstName", Json(kFirstNames[p.first]));
  Add(&attrs, "lastName", Json(kLastNames[p.last]));
  Add(&attrs, "email", Str(p.email));
  if (p.phone) Add(&attrs, "phone", Str(Phone(p)));
  Add(&attrs, "country", Json(country.code));
  Add(&attrs, "city", Json(city.name));
  Add(&attrs, "postalCode", Str(std::move(postal)));

  bool app_user = false;
  for (int d = 0; d < p.ndev; ++d) app_user |= p.dev_kind[d] == kIos || p.dev_kind[d] == kAndroid;
  const char* tier = p.buyer == 2 ? (rng.Chance(0.35) ? "platinum" : "gold")
                                  : (p.buyer == 1 ? (rng.Chance(0.3) ? "silver" : "bronze") : "bronze");
  Json tags = Json::Array();
  if (std::strcmp(tier, "platinum") == 0) tags.Push("vip");
  if (p.consent_email) tags.Push("newsletter");
  if (app_user) tags.Push("app_user");
  if (rng.Chance(0.15)) tags.Push("discount_seeker");
  if (rng.Chance(0.03)) tags.Push("wholesale");
  if (rng.Chance(0.05)) tags.Push("early_adopter");
  if (p.buyer == 0 && rng.Chance(0.2)) tags.Push("browser_only");
  Add(&attrs, "tags", std::move(tags));

  Json custom = Json::Object();
  Add(&custom, "tier", Json(tier));
  Add(&custom, "signupChannel",
      Json(app_user && rng.Chance(0.5) ? (p.dev_kind[p.ndev - 1] == kIos ? "ios" : "android")
                                       : rng.Pick(kSignupChannels)));
  Add(&custom, "preferredCategory", Json(kCategories[p.pref_cat].name));
  Add(&custom, "birthYear", Json(static_cast<int64_t>(rng.Range(1950, 2007))));
  Add(&custom, "newsletter", Json(p.consent_email));
  Add(&custom, "acquisitionSource", Json(kUtms[p.pref_utm].source));
  if (rng.Chance(0.2)) Add(&custom, "loyaltyPoints", Json(static_cast<int64_t>(rng.Range(0, 25000))));
  Add(&attrs, "customFields", std::move(custom));

  Json consent = Json::Object();
  Add(&consent, "email", Json(p.consent_email));
  Add(&consent, "sms", Json(p.consent_sms));
  Add(&consent, "tracking", Json(p.consent_tracking));

  Json prof = Json::Object();
  Add(&prof, "externalIds", std::move(ext));
  Add(&prof, "attributes", std::move(attrs));
  Add(&prof, "consent", std::move(consent));
  return prof;
}

Json Generator::Impl::EventJson(const Spec& s, size_t seq) {
  Rng& rng = out_rng;
  const Person& p = persons[s.person];
  static const std::string kBase = "https://shop.example.com";

  Json ev = Json::Object();
  if (config.event_ids) {
    std::string id = "evt_";
    AppendHex(&id, Mix64(salt ^ (0xe000000000000000ULL + seq)), 16);
    Add(&ev, "id", Str(std::move(id)));
  }
  Add(&ev, "type", Json(kEventTypes[s.type]));
  if (s.type == kCustom) {
    Add(&ev, "name", Json(s.page == kCustomSignUp ? "sign_up" : (s.page == kCustomSearch ? "search" : "wishlist_add")));
  }
  Add(&ev, "timestamp", Str(FormatTime(s.time_us)));
  if (s.ident & kIdCustomer) Add(&ev, "customerId", Str(CustomerId(p.gidx)));
  if (s.ident & kIdEmail) Add(&ev, "email", Str((s.ident & kIdEmail2) ? p.email2 : p.email));
  if (s.ident & kIdPhone) Add(&ev, "phone", Str(Phone(p, (s.ident & kIdPhone2) ? 1 : 0)));
  if ((s.ident & kIdDevice) && s.device != kNoDevice) Add(&ev, "deviceId", Str(DeviceId(p.gidx, s.device)));
  const uint8_t kind = s.device == kNoDevice ? 0 : p.dev_kind[s.device];
  const char* source = s.type == kEmailOpen ? "email" : (kind == kIos ? "ios" : (kind == kAndroid ? "android" : "web"));
  Add(&ev, "source", Json(source));

  Json props = Json::Object();
  const Product& pr = products[s.product];
  switch (s.type) {
    case kPageView: {
      std::string path;
      const char* title = "";
      switch (s.page) {
        case kHome:
          path = "/";
          title = "Home";
          break;
        case kCategory:
          path = std::string("/c/") + kCategories[pr.category].slug;
          title = kCategories[pr.category].name;
          break;
        case kProductPage:
          path = "/p/" + pr.sku;
          title = pr.name.c_str();
          break;
        case kSearch:
          path = "/search";
          title = "Search";
          break;
        case kCart:
          path = "/cart";
          title = "Cart";
          break;
        case kCheckout:
          path = "/checkout";
          title = "Checkout";
          break;
        case kConfirmation:
          path = "/checkout/confirmation";
          title = "Thank you";
          break;
        case kAccount:
          path = "/account";
          title = "My account";
          break;
        default:
          path = std::string("/blog/") + rng.Pick(kBlogPosts);
          title = "Blog";
          break;
      }
      std::string url = kBase + path;
      if (s.utm) {
        const Utm& u = kUtms[s.utm - 1];
        const char* campaign = s.utm - 1 == kUtmNewsletter ? "weekly_newsletter" : CampaignFor(s.time_us, s.utm - 1);
        url += "?utm_source=";
        url += u.source;
        url += "&utm_medium=";
        url += u.medium;
        url += "&utm_campaign=";
        url += campaign;
        Add(&props, "url", Str(std::move(url)));
        Add(&props, "path", Str(std::move(path)));
        Add(&props, "title", Json(title));
        Add(&props, "utm_source", Json(u.source));
        Add(&props, "utm_medium", Json(u.medium));
        Add(&props, "utm_campaign", Json(campaign));
      } else {
        Add(&props, "url", Str(std::move(url)));
        Add(&props, "path", Str(std::move(path)));
        Add(&props, "title", Json(title));
        if (s.first && rng.Chance(0.4)) Add(&props, "referrer", Json(rng.Pick(kReferrers)));
      }
      break;
    }
    case kProductView:
      Add(&props, "productId", Str(pr.sku));
      Add(&props, "name", Str(pr.name));
      Add(&props, "category", Json(kCategories[pr.category].name));
      Add(&props, "price", Json(pr.price));
      Add(&props, "currency", Json("USD"));
      break;
    case kAddToCart:
      Add(&props, "productId", Str(pr.sku));
      Add(&props, "name", Str(pr.name));
      Add(&props, "category", Json(kCategories[pr.category].name));
      Add(&props, "price", Json(pr.price));
      Add(&props, "quantity", Json(1));
      Add(&props, "currency", Json("USD"));
      break;
    case kPurchase: {
      const Order& o = orders[s.aux];
      Json items = Json::Array();
      for (uint32_t i = 0; i < o.items; ++i) {
        const OrderItem& it = order_items[o.first_item + i];
        items.Push(ProductJson(products[it.product], it.quantity));
      }
      double subtotal, shipping, discount, revenue;
      int count;
      OrderAmounts(o, &subtotal, &shipping, &discount, &revenue, &count);
      std::string order_id = "ORD-";
      AppendPadded(&order_id, 1000000 + s.aux, 7);
      Add(&props, "orderId", Str(std::move(order_id)));
      Add(&props, "revenue", Json(revenue));
      Add(&props, "currency", Json("USD"));
      Add(&props, "subtotal", Json(subtotal));
      Add(&props, "shipping", Json(shipping));
      if (discount > 0) {
        Add(&props, "discount", Json(discount));
        Add(&props, "coupon", Json(rng.Chance(0.5) ? "WELCOME10" : "SAVE10"));
      }
      Add(&props, "itemCount", Json(count));
      Add(&props, "products", std::move(items));
      Add(&props, "paymentMethod", Json(rng.Chance(0.6) ? "card" : (rng.Chance(0.6) ? "paypal" : "apple_pay")));
      break;
    }
    case kEmailOpen: {
      int64_t days = s.time_us / kDay;
      int y, m, d;
      CivilFromDays(days, &y, &m, &d);
      const char* campaign = CampaignFor(s.time_us, 4);
      Add(&props, "campaign", Json(campaign));
      char subject[96];
      std::snprintf(subject, sizeof subject, "Your %s picks for %04d-%02d-%02d", kCategories[p.pref_cat].name, y, m, d);
      Add(&props, "subject", Json(subject));
      std::string mid = "msg_";
      AppendHex(&mid, Mix64(salt ^ (0xd000000000000000ULL + seq)), 12);
      Add(&props, "messageId", Str(std::move(mid)));
      break;
    }
    case kAppUsage:
      Add(&props, "screen", Json(kAppScreens[s.page % std::size(kAppScreens)]));
      Add(&props, "durationSeconds", Json(static_cast<int64_t>(rng.Range(2, 240))));
      Add(&props, "appVersion", Json(rng.Chance(0.7) ? "5.2.0" : "5.1.3"));
      Add(&props, "os", Json(kind == kIos ? "iOS" : "Android"));
      break;
    case kCustom:
      if (s.page == kCustomSignUp) {
        Add(&props, "method", Json(rng.Chance(0.7) ? "email" : "google"));
        Add(&props, "newsletter", Json(p.consent_email));
      } else if (s.page == kCustomSearch) {
        Add(&props, "query", Json(rng.Pick(kSearchQueries)));
        Add(&props, "results", Json(static_cast<int64_t>(rng.Range(0, 120))));
      } else {
        Add(&props, "productId", Str(pr.sku));
        Add(&props, "name", Str(pr.name));
      }
      break;
    default:
      break;
  }
  Add(&ev, "properties", std::move(props));
  return ev;
}

// ------------------------------------------------------------------------------------------------------------------

Generator::Generator(const GeneratorConfig& config) : impl_(std::make_unique<Impl>(config)) {}
Generator::~Generator() = default;

const GeneratorConfig& Generator::config() const { return impl_->config; }
const GeneratorSummary& Generator::summary() const { return impl_->summary; }

bool Generator::NextProfiles(size_t max, std::vector<Json>* out) {
  out->clear();
  Impl& im = *impl_;
  size_t known = im.config.profiles;
  while (out->size() < max && im.next_profile < known) out->push_back(im.ProfileJson(im.next_profile++));
  return !out->empty();
}

bool Generator::NextEvents(size_t max, std::vector<Json>* out, std::vector<uint32_t>* persons) {
  out->clear();
  if (persons != nullptr) persons->clear();
  Impl& im = *impl_;
  while (out->size() < max && im.next_event < im.specs.size()) {
    size_t seq = im.next_event++;
    out->push_back(im.EventJson(im.specs[seq], seq));
    if (persons != nullptr) persons->push_back(im.specs[seq].person);
  }
  return !out->empty();
}

void Generate(const GeneratorConfig& config, const std::function<void(std::vector<Json>&&)>& on_profiles,
              const std::function<void(std::vector<Json>&&)>& on_events, size_t batch_size) {
  if (batch_size == 0) batch_size = 500;
  Generator gen(config);
  std::vector<Json> batch;
  while (gen.NextProfiles(batch_size, &batch)) on_profiles(std::move(batch));
  while (gen.NextEvents(batch_size, &batch)) on_events(std::move(batch));
}

// ------------------------------------------------------------------------------------------------------------------

namespace {

double Since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// A bounded queue of event batches, filled by a producer thread.
class BatchQueue {
 public:
  explicit BatchQueue(size_t capacity) : capacity_(capacity) {}
  void Push(std::vector<Json>&& batch) {
    std::unique_lock<std::mutex> lock(mu_);
    not_full_.wait(lock, [&] { return q_.size() < capacity_ || cancelled_; });
    if (cancelled_) return;
    q_.push_back(std::move(batch));
    not_empty_.notify_one();
  }
  void Close() {
    std::lock_guard<std::mutex> lock(mu_);
    closed_ = true;
    not_empty_.notify_all();
  }
  void Cancel() {
    std::lock_guard<std::mutex> lock(mu_);
    cancelled_ = true;
    not_full_.notify_all();
  }
  bool cancelled() {
    std::lock_guard<std::mutex> lock(mu_);
    return cancelled_;
  }
  // False when closed and drained.
  bool Pop(std::vector<Json>* out) {
    std::unique_lock<std::mutex> lock(mu_);
    not_empty_.wait(lock, [&] { return !q_.empty() || closed_; });
    if (q_.empty()) return false;
    *out = std::move(q_.front());
    q_.pop_front();
    not_full_.notify_one();
    return true;
  }

 private:
  std::mutex mu_;
  std::condition_variable not_full_, not_empty_;
  std::deque<std::vector<Json>> q_;
  size_t capacity_;
  bool closed_ = false;
  bool cancelled_ = false;
};

}  // namespace

Result<LoadStats> Load(Engine& engine, const GeneratorConfig& config, const LoadOptions& options) {
  LoadStats stats;
  const auto t0 = std::chrono::steady_clock::now();
  Generator gen(config);
  stats.plan_seconds = Since(t0);
  const size_t batch_size = options.batch_size == 0 ? 500 : options.batch_size;
  const size_t profile_batch =
      std::min(options.profile_batch == 0 ? 500 : options.profile_batch, engine.options().max_batch_items);
  constexpr size_t kMaxSampleErrors = 10;
  constexpr size_t kProgressEvery = 50000;

  LoadProgress progress;
  progress.profiles_total = config.profiles;
  progress.events_total = gen.summary().events;
  auto report = [&]() {
    if (!options.progress) return;
    progress.elapsed_seconds = Since(t0);
    options.progress(progress);
  };

  // Phase 1: profiles, Profiles::CreateBatch by CreateBatch.
  const auto t1 = std::chrono::steady_clock::now();
  {
    std::vector<Json> chunk;
    size_t next_report = kProgressEvery;
    while (gen.NextProfiles(profile_batch, &chunk)) {
      const size_t base = progress.profiles_done;
      CDP_ASSIGN_OR_RETURN(Json created, engine.profiles().CreateBatch(chunk));  // storage failures end the load
      for (const Json& item : created.Find("results")->items()) {
        const Json* error = item.Find("error");
        if (error == nullptr) continue;
        ++stats.profiles_rejected;  // invalid input is counted
        if (stats.sample_errors.size() < kMaxSampleErrors) {
          stats.sample_errors.push_back(fmt::format("profile {}: {}: {}", base + item.Find("index")->as_int(),
                                                    error->Find("code")->as_string(),
                                                    error->Find("message")->as_string()));
        }
      }
      progress.profiles_done += chunk.size();
      if (progress.profiles_done >= next_report) {
        report();
        next_report += kProgressEvery;
      }
    }
    stats.profiles_created = progress.profiles_done - stats.profiles_rejected;
    report();
  }
  stats.profile_seconds = Since(t1);

  // Phase 2: events, TrackBatch by TrackBatch; the next batches are generated meanwhile.
  const auto t2 = std::chrono::steady_clock::now();
  {
    BatchQueue queue(8);
    std::thread producer;
    if (options.pipeline) {
      producer = std::thread([&]() {
        std::vector<Json> b;
        while (!queue.cancelled() && gen.NextEvents(batch_size, &b)) queue.Push(std::move(b));
        queue.Close();
      });
    }
    auto next_batch = [&](std::vector<Json>* b) {
      return options.pipeline ? queue.Pop(b) : gen.NextEvents(batch_size, b);
    };
    std::vector<Json> batch;
    size_t next_report = kProgressEvery;
    Status fatal;
    while (next_batch(&batch)) {
      Result<BatchResult> r = engine.events().TrackBatch(batch);
      ++stats.batches;
      if (!r.ok()) {
        fatal = r.status();
        break;
      }
      for (size_t i = 0; i < r->items.size(); ++i) {
        const BatchItemResult& it = r->items[i];
        if (it.status.ok()) {
          if (it.result.duplicate) ++stats.events_duplicate;
          if (it.result.profile_created) ++stats.profiles_auto_created;
        } else if (it.status.code() == StatusCode::kFailedPrecondition && it.status.field() == "consent.tracking") {
          ++stats.events_refused_consent;
        } else if (stats.sample_errors.size() < kMaxSampleErrors) {
          stats.sample_errors.push_back("event " + std::to_string(progress.events_done + i) + ": " +
                                        it.status.ToString() + " " + batch[i].Dump());
        }
      }
      stats.events_accepted += r->accepted;
      stats.events_rejected += r->rejected;
      progress.events_done += batch.size();
      if (progress.events_done >= next_report) {
        report();
        next_report += kProgressEvery;
      }
    }
    if (options.pipeline) {
      queue.Cancel();
      while (queue.Pop(&batch)) {
      }
      producer.join();
    }
    if (!fatal.ok()) return fatal;
    report();
  }
  stats.event_seconds = Since(t2);
  stats.total_seconds = Since(t0);
  stats.summary = gen.summary();
  return stats;
}

}  // namespace cdp::demo
