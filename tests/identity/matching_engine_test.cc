// Copyright 2026 The libcdp Authors.
//
// Fuzzy matching through the engine: FEBRL person records loaded as profiles (no shared identifiers), duplicates
// found by Identity::FindDuplicates, proposals accepted, rejected, auto-merged and erased; and matching on write.

#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <random>
#include <set>
#include <sstream>

#include "fmt/format.h"
#include "identity/linkage.h"
#include "storage/store.h"
#include "test_util.h"

namespace cdp {
namespace {

using testing::J;
using testing::Unwrap;

class MatchingEngineTest : public testing::EngineTest {
 protected:
  Identity& identity() { return engine_->identity(); }

  // Loads the first `n` records of FEBRL dataset3 as profiles; returns profile id -> FEBRL entity ("rec-12").
  std::map<std::string, std::string> LoadFebrl(size_t n) {
    std::ifstream in(std::string(CDP_TEST_DATA_DIR) + "/febrl/dataset3.csv");
    std::stringstream text;
    text << in.rdbuf();
    auto records = internal::linkage::ParseDelimited(text.str(), {.separator = ", "});
    EXPECT_TRUE(records.ok()) << records.status().ToString();
    const auto& r = *records;
    auto col = [&](const char* name) { return static_cast<size_t>(r.FieldIndex(name)); };
    std::map<std::string, std::string> entity;
    for (size_t i = 0; i < std::min(n, r.rows.size()); ++i) {
      const auto& row = r.rows[i];
      Json attributes = Json::Object();
      if (!row[col("given_name")].empty()) attributes.Set("firstName", row[col("given_name")]);
      if (!row[col("surname")].empty()) attributes.Set("lastName", row[col("surname")]);
      if (!row[col("postcode")].empty()) attributes.Set("postalCode", row[col("postcode")]);
      if (!row[col("suburb")].empty()) attributes.Set("city", row[col("suburb")]);
      Json custom = Json::Object();
      if (!row[col("date_of_birth")].empty()) custom.Set("birthDate", row[col("date_of_birth")]);
      attributes.Set("customFields", std::move(custom));
      Json doc = Json::Object();
      doc.Set("attributes", std::move(attributes));
      Json p = Unwrap(profiles().Create(doc));
      const std::string& rec = row[col("rec_id")];
      entity[p.Find("id")->as_string()] = rec.substr(0, rec.find('-', 4));
    }
    return entity;
  }
};

// Two profiles holding different customer ids are two people whatever their names say: the identity rules
// (customerId's limit, 1) forbid their merge, so they are never proposed, and a pending proposal whose profiles
// gain such ids later is obsolete. (A newcomer found 290 proposals on the demo data, each two customers with the
// same common name; accepting one failed on the limit.)
TEST_F(MatchingEngineTest, PairsTheRulesCannotMergeAreNotProposed) {
  std::map<std::string, std::string> entity = LoadFebrl(2000);
  Json first = Unwrap(identity().FindDuplicates());
  ASSERT_NE(first.Find("notMergeable"), nullptr) << first.Dump();
  ASSERT_GT(first.Find("proposed")->as_int(), 10);
  EXPECT_EQ(first.Find("notMergeable")->as_int(), 0);
  // One profile of a proposed pair gets no customer id: its proposals stay (with one id in all, the rules allow
  // them); every other profile gets its own.
  Json pending = Unwrap(identity().Proposals("pending"));
  const std::string spared = pending.items()[0].Find("profileIds")->items()[1].as_string();
  // Reading the proposals is a read of personal data: an audit entry naming every profile in them.
  Json reads =
      Unwrap(engine_->audit().List(J(R"({"operation": "identity.proposals", "target": ")" + spared + R"("})")));
  ASSERT_EQ(reads.Find("items")->size(), 1u);
  EXPECT_EQ(reads.Find("items")->items()[0].Find("count")->as_int(), static_cast<int64_t>(pending.size()));
  std::set<std::string> kept;
  for (const Json& p : pending.items()) {
    const auto& ids = p.Find("profileIds")->items();
    if (ids[0].as_string() == spared || ids[1].as_string() == spared) kept.insert(p.Find("proposalId")->as_string());
  }
  for (const auto& [id, e] : entity) {
    if (id == spared) continue;
    Unwrap(profiles().Patch(id, J(R"({"externalIds": {"customerId": "c-)" + id + R"("}})")));
  }
  const int64_t dropped = first.Find("proposed")->as_int() - static_cast<int64_t>(kept.size());
  ASSERT_GT(dropped, 0);
  Json second = Unwrap(identity().FindDuplicates());
  EXPECT_EQ(second.Find("notMergeable")->as_int(), dropped) << second.Dump();
  EXPECT_EQ(second.Find("obsolete")->as_int(), dropped) << second.Dump();
  std::set<std::string> now;
  const Json left = Unwrap(identity().Proposals("pending"));
  for (const Json& p : left.items()) now.insert(p.Find("proposalId")->as_string());
  EXPECT_EQ(now, kept);
  EXPECT_EQ(Unwrap(identity().Proposals("obsolete")).size(), static_cast<size_t>(dropped));
}

TEST_F(MatchingEngineTest, FindsFebrlDuplicatesAsProposals) {
  std::map<std::string, std::string> entity = LoadFebrl(2000);
  Json run = Unwrap(identity().FindDuplicates());
  EXPECT_EQ(run.Find("profiles")->as_int(), 2000);
  EXPECT_GT(run.Find("candidatePairs")->as_int(), 0);
  EXPECT_EQ(run.Find("autoMerged")->as_int(), 0) << "auto-merge is off by default";
  Json pending = Unwrap(identity().Proposals("pending"));
  ASSERT_EQ(static_cast<int64_t>(pending.size()), run.Find("proposed")->as_int());
  // Truth: pairs of profiles of the same FEBRL entity.
  std::map<std::string, int> per_entity;
  for (const auto& [id, e] : entity) per_entity[e]++;
  int64_t true_pairs = 0;
  for (const auto& [e, n] : per_entity) true_pairs += static_cast<int64_t>(n) * (n - 1) / 2;
  int64_t correct = 0;
  double last = 2.0;
  for (const Json& p : pending.items()) {
    const auto& ids = p.Find("profileIds")->items();
    correct += entity[ids[0].as_string()] == entity[ids[1].as_string()];
    EXPECT_GE(p.Find("probability")->as_number(), 0.9);
    EXPECT_LE(p.Find("probability")->as_number(), last) << "most probable first";
    last = p.Find("probability")->as_number();
    EXPECT_EQ(p.Find("comparisons")->size(), 5u);
  }
  const double precision = static_cast<double>(correct) / static_cast<double>(pending.size());
  const double recall = static_cast<double>(correct) / static_cast<double>(true_pairs);
  std::cout << "FEBRL dataset3, first 2000 records as profiles: " << pending.size() << " proposals, precision "
            << precision << ", recall " << recall << " (" << true_pairs << " true pairs)\n";
  EXPECT_GE(precision, 0.95) << correct << " of " << pending.size();
  EXPECT_GE(recall, 0.75) << correct << " of " << true_pairs << " true pairs";

  // Accept one: the pair merges. Reject another: it is never proposed again.
  const std::string accept_id = pending.items()[0].Find("proposalId")->as_string();
  const std::string reject_id = pending.items()[1].Find("proposalId")->as_string();
  Json accepted = Unwrap(identity().AcceptProposal(accept_id));
  EXPECT_EQ(accepted.Find("status")->as_string(), "accepted");
  const auto& pair = accepted.Find("profileIds")->items();
  EXPECT_EQ(Unwrap(profiles().Get(pair[1].as_string())).Find("id")->as_string(), pair[0].as_string());
  EXPECT_EQ(Unwrap(identity().RejectProposal(reject_id)).Find("status")->as_string(), "rejected");
  EXPECT_TRUE(identity().AcceptProposal(reject_id).status().IsFailedPrecondition());
  EXPECT_TRUE(identity().RejectProposal("prp_none").status().IsNotFound());
  // Each decision is an audit entry naming the pair and the proposal; the run one counting the profiles compared.
  Json decided = Unwrap(engine_->audit().List(J(R"({"operation": "identity.acceptProposal"})")));
  ASSERT_EQ(decided.Find("items")->size(), 2u);  // the merge, then the refusal (already rejected)
  const Json& merge_entry = decided.Find("items")->items()[1];
  EXPECT_EQ(merge_entry.Find("outcome")->as_string(), "ok");
  EXPECT_EQ(merge_entry.Find("resource")->as_string(), accept_id);
  EXPECT_EQ(*merge_entry.Find("targets"), *accepted.Find("profileIds"));
  EXPECT_EQ(decided.Find("items")->items()[0].Find("outcome")->as_string(), "failed_precondition");
  Json runs = Unwrap(engine_->audit().List(J(R"({"operation": "identity.findDuplicates"})")));
  ASSERT_EQ(runs.Find("items")->size(), 1u);
  EXPECT_EQ(runs.Find("items")->items()[0].Find("count")->as_int(), 2000);
  EXPECT_EQ(Unwrap(engine_->audit().List(J(R"({"operation": "identity.rejectProposal"})"))).Find("items")->size(), 2u);
  // A second run does not propose decided pairs again. (The merged profile is a new record, so a pair with it
  // may be new.)
  Json again = Unwrap(identity().FindDuplicates());
  const std::string merged_away = pair[1].as_string();
  const Json& rejected_pair = pending.items()[1].Find("profileIds")->items()[0];
  int rejected_again = 0;
  Json now_pending = Unwrap(identity().Proposals("pending"));
  for (const Json& p : now_pending.items()) {
    const auto& ids = p.Find("profileIds")->items();
    for (const Json& id : ids) EXPECT_NE(id.as_string(), merged_away) << "a merged-away id is not proposed";
    rejected_again += ids[0] == rejected_pair && ids[1] == pending.items()[1].Find("profileIds")->items()[1];
  }
  EXPECT_EQ(rejected_again, 0);
  // Pending proposals that named the merged-away profile are obsolete now.
  Json obsolete = Unwrap(identity().Proposals("obsolete"));
  EXPECT_EQ(static_cast<int64_t>(obsolete.size()), again.Find("obsolete")->as_int());
  for (const Json& p : obsolete.items()) {
    const auto& ids = p.Find("profileIds")->items();
    EXPECT_TRUE(ids[0].as_string() == merged_away || ids[1].as_string() == merged_away) << p.Dump();
  }
  EXPECT_EQ(Unwrap(identity().Proposals("rejected")).size(), 1u);
  EXPECT_EQ(Unwrap(identity().Proposals("accepted")).size(), 1u);
  EXPECT_TRUE(identity().Proposals("maybe").status().IsInvalidArgument());
}

TEST_F(MatchingEngineTest, AutoMergeAboveAConfiguredProbabilityAndErasure) {
  LoadFebrl(600);
  Json config = Unwrap(identity().MatchingConfig());
  EXPECT_TRUE(config.Find("autoMergeAbove")->is_null());
  config.Set("autoMergeAbove", 0.99);
  Unwrap(identity().SetMatchingConfig(config));
  const int64_t before = Unwrap(engine_->Stats()).Find("profiles")->as_int();
  Json run = Unwrap(identity().FindDuplicates());
  const int64_t merged = run.Find("autoMerged")->as_int();
  EXPECT_GT(merged, 0);
  EXPECT_EQ(Unwrap(engine_->Stats()).Find("profiles")->as_int(), before - merged);
  Json done = Unwrap(identity().Proposals("merged"));
  ASSERT_EQ(static_cast<int64_t>(done.size()), merged);
  EXPECT_NE(done.items()[0].Find("mergeId"), nullptr);
  // The merge record says it was automatic, with the proposal as its evidence.
  Json explained = Unwrap(identity().Explain(done.items()[0].Find("profileIds")->items()[0].as_string()));
  bool recorded = false;
  for (const Json& record : explained.Find("merges")->items()) {
    if (record.Find("mergeId")->as_string() != done.items()[0].Find("mergeId")->as_string()) continue;
    recorded = true;
    EXPECT_TRUE(record.Find("automatic")->as_bool()) << record.Dump();
    EXPECT_EQ(record.FindPath("evidence.call")->as_string(), "identity.autoMerge") << record.Dump();
    EXPECT_EQ(record.FindPath("evidence.proposalId")->as_string(), done.items()[0].Find("proposalId")->as_string());
    EXPECT_GE(record.FindPath("evidence.probability")->as_number(), 0.99);
  }
  EXPECT_TRUE(recorded) << explained.Dump();
  // Each automatic merge is an audit entry naming the pair; a matching run of the queue is one too.
  // (A merge the rules refuse is an entry too, with its outcome and no targets.)
  Json merges = Unwrap(engine_->audit().List(J(R"({"operation": "identity.autoMerge", "limit": 1000})")));
  int64_t ok_merges = 0;
  for (const Json& e : merges.Find("items")->items()) {
    const bool ok = e.Find("outcome")->as_string() == "ok";
    ok_merges += ok;
    EXPECT_EQ(e.Find("targets")->size(), ok ? 2u : 0u) << e.Dump();
  }
  ASSERT_EQ(ok_merges, merged);
  std::set<std::string> pair_of_first;
  for (const Json& id : done.items()[0].Find("profileIds")->items()) pair_of_first.insert(id.as_string());
  bool named = false;
  for (const Json& e : merges.Find("items")->items()) {
    std::set<std::string> targets;
    for (const Json& id : e.Find("targets")->items()) targets.insert(id.as_string());
    named = named || targets == pair_of_first;
  }
  EXPECT_TRUE(named) << merges.Dump().substr(0, 500);
  Unwrap(identity().MatchPending());
  EXPECT_EQ(Unwrap(engine_->audit().List(J(R"({"operation": "identity.matchPending"})"))).Find("items")->size(), 1u);
  // Erasing a profile erases the proposals that name it.
  const std::string survivor = done.items()[0].Find("profileIds")->items()[0].as_string();
  const size_t all_before = Unwrap(identity().Proposals("")).size();
  ASSERT_TRUE(profiles().Delete(survivor).ok());
  Json left = Unwrap(identity().Proposals(""));
  EXPECT_LT(left.size(), all_before);
  for (const Json& p : left.items()) {
    for (const Json& id : p.Find("profileIds")->items()) EXPECT_NE(id.as_string(), survivor);
  }
}

// Once the duplicates are merged away, the candidate pairs are strangers who share a blocking key, and EM's "match"
// class becomes whatever some of them share (a birth date) with names disagreeing. A newcomer's second auto-merge run
// merged "James Taylor" of Seattle into "Patricia Gonzalez" of Chicago that way, at probability 0.995. Such a model is
// rejected, and the last plausible one scores instead.
TEST_F(MatchingEngineTest, AModelOfStrangersIsNotUsedToMerge) {
  const char* first[] = {"James",  "Mary",  "Robert",  "Patricia", "John",      "Jennifer", "Michael",
                         "Linda",  "David", "Barbara", "William",  "Richard",   "Susan",    "Joseph",
                         "Thomas", "Sarah", "Charles", "Karen",    "Elizabeth", "Jessica"};
  const char* last[] = {"Smith",    "Johnson",  "Williams",  "Brown",   "Jones",    "Garcia",   "Miller",
                        "Davis",    "Martinez", "Hernandez", "Lopez",   "Gonzalez", "Wilson",   "Taylor",
                        "Anderson", "Thomas",   "Moore",     "Jackson", "Martin",   "Rodriguez"};
  const char* cities[] = {"Boston", "Denver", "Austin", "Seattle", "Portland", "Chicago", "Miami", "Dallas"};
  std::mt19937 rng(7);
  auto pick = [&rng](int n) { return static_cast<int>(rng() % static_cast<uint32_t>(n)); };
  std::vector<Json> people;
  std::vector<std::string> ids;
  std::map<std::string, std::string> name_of;
  for (int i = 0; i < 300; ++i) {
    Json a = J(fmt::format(R"({{"firstName": "{}", "lastName": "{}{}", "city": "{}", "postalCode": "{}",
                               "customFields": {{"birthDate": "19{}-{:02d}-{:02d}"}}}})",
                           first[pick(20)], last[pick(20)], i % 3 == 0 ? fmt::format("x{}", i) : "", cities[pick(8)],
                           10000 + pick(90000), 50 + pick(50), 1 + pick(12), 1 + pick(28)));
    Json p = Unwrap(profiles().Create(Json::Object().Set("attributes", a)));
    ids.push_back(p.Find("id")->as_string());
    name_of[ids.back()] = a.Find("firstName")->as_string() + " " + a.Find("lastName")->as_string();
    people.push_back(std::move(a));
  }
  for (int i = 0; i < 20; ++i) {  // 20 duplicates, each with a typo in the first name
    Json a = people[static_cast<size_t>(i)];
    std::string f = a.Find("firstName")->as_string();
    f.back() = f.back() == 'e' ? 'a' : 'e';
    a.Set("firstName", f);
    Json p = Unwrap(profiles().Create(Json::Object().Set("attributes", a)));
    name_of[p.Find("id")->as_string()] = name_of[ids[static_cast<size_t>(i)]];
  }
  Json config = Unwrap(identity().MatchingConfig());
  config.Set("autoMergeAbove", 0.99);
  Unwrap(identity().SetMatchingConfig(config));
  Json run = Unwrap(identity().FindDuplicates());
  EXPECT_EQ(run.Find("scoredWith")->as_string(), "estimated") << run.Dump();
  EXPECT_EQ(run.Find("modelRejected"), nullptr);
  EXPECT_EQ(run.Find("autoMerged")->as_int(), 20) << run.Dump();

  // Forty strangers born on the birthdays of forty others (birth date is a blocking key); no duplicates left.
  auto word = [&rng](int letters) {
    std::string w(1, static_cast<char>('A' + rng() % 26));
    for (int k = 1; k < letters; ++k) w.push_back(static_cast<char>('a' + rng() % 26));
    return w;
  };
  for (int i = 0; i < 40; ++i) {
    Json a = people[static_cast<size_t>(100 + i)];
    a.Set("firstName", word(6));
    a.Set("lastName", word(8));
    a.Set("city", word(7));
    a.Set("postalCode", fmt::format("{}", 10000 + rng() % 90000));
    a.Find("customFields")->Set("birthDate", *people[static_cast<size_t>(i)].Find("customFields")->Find("birthDate"));
    Json p = Unwrap(profiles().Create(Json::Object().Set("attributes", a)));
    name_of[p.Find("id")->as_string()] = "stranger " + std::to_string(i);
  }
  // EM's fit is now a "match" class of strangers; the first run's model scores instead, and nobody is merged.
  Json again = Unwrap(identity().FindDuplicates());
  EXPECT_EQ(again.Find("autoMerged")->as_int(), 0) << again.Dump();
  EXPECT_EQ(again.Find("proposed")->as_int(), 0) << again.Dump();
  // (Scored with the refit, 104 strangers were merged here.)
  EXPECT_EQ(again.Find("scoredWith")->as_string(), "saved");
  ASSERT_NE(again.Find("modelRejected"), nullptr);
  EXPECT_GT(again.Find("modelRejected")->size(), 0u);
  // Every merge joined a person's two records.
  const Json merged = Unwrap(identity().Proposals("merged"));
  EXPECT_EQ(merged.size(), 20u);
  for (const Json& p : merged.items()) {
    EXPECT_EQ(name_of[p.Find("profileIds")->items()[0].as_string()],
              name_of[p.Find("profileIds")->items()[1].as_string()])
        << p.Dump();
  }
}

TEST_F(MatchingEngineTest, ConfigurationIsValidated) {
  Json config = Unwrap(identity().MatchingConfig());
  Json bad = config;
  bad.Set("proposeAbove", 1.5);
  EXPECT_EQ(identity().SetMatchingConfig(bad).status().field(), "proposeAbove");
  bad = config;
  bad.Set("autoMergeAbove", 0.5);
  EXPECT_EQ(identity().SetMatchingConfig(bad).status().field(), "autoMergeAbove");
  bad = config;
  bad.Find("linkage")->Find("comparators")->items()[0].Set("kind", "telepathy");
  auto r = identity().SetMatchingConfig(bad);
  EXPECT_TRUE(r.status().IsInvalidArgument());
  EXPECT_EQ(r.status().field().rfind("linkage.comparators[0]", 0), 0u) << r.status().field();
  EXPECT_EQ(identity().SetMatchingConfig(J(R"({"proposeAbove": 0.5})")).status().field(), "linkage");
  Reopen();
  EXPECT_EQ(Unwrap(identity().MatchingConfig()), config);
}

// ---- Matching on write

class MatchOnWriteTest : public MatchingEngineTest {
 protected:
  void EnableOnWrite(std::optional<double> auto_merge_above = std::nullopt) {
    Json config = Unwrap(identity().MatchingConfig());
    config.Set("onWrite", true);
    if (auto_merge_above) config.Set("autoMergeAbove", *auto_merge_above);
    Unwrap(identity().SetMatchingConfig(config));
  }
  Json Matching() { return *Unwrap(identity().Stats()).Find("matching"); }
  // Drains the queue (whichever of this thread and the matcher thread takes an item).
  void Drain() {
    for (int i = 0; i < 1000 && Matching().Find("queued")->as_int() > 0; ++i) Unwrap(identity().MatchPending());
    ASSERT_EQ(Matching().Find("queued")->as_int(), 0);
    Unwrap(identity().MatchPending());  // and waits for a step the thread had taken
  }
  // A copy of a stored profile's matched attributes, as a new profile's input.
  Json CopyOf(const std::string& id) {
    Json p = Unwrap(profiles().Get(id));
    Json copy = Json::Object();
    copy.Set("attributes", *p.Find("attributes"));
    copy.Find("attributes")->Erase("email");
    return copy;
  }
  // Keys of the blocking index ("b" entries and "c" records), read from a closed database.
  std::vector<std::string> BlockIndexKeys() {
    engine_.reset();
    std::vector<std::string> keys;
    {
      auto store = Unwrap(storage::Store::Open(Options(), dir_.path()));
      auto iter = store->NewIterator(storage::Cf::kMerges, "b", "d");
      for (iter->SeekToFirst(); iter->Valid(); iter->Next()) keys.emplace_back(iter->key());
    }
    Reopen();
    return keys;
  }
  static bool Names(const Json& proposal, const std::string& a, const std::string& b) {
    const auto& ids = proposal.Find("profileIds")->items();
    return (ids[0].as_string() == a && ids[1].as_string() == b) || (ids[0].as_string() == b && ids[1].as_string() == a);
  }
};

TEST_F(MatchOnWriteTest, ANewDuplicateIsProposedAsItIsWritten) {
  std::map<std::string, std::string> entity = LoadFebrl(1000);
  EXPECT_FALSE(Matching().Find("onWrite")->as_bool()) << "off by default";
  EnableOnWrite();
  EXPECT_TRUE(Matching().Find("model")->is_null()) << "no model before FindDuplicates";
  Json run = Unwrap(identity().FindDuplicates());
  ASSERT_FALSE(Matching().Find("model")->is_null()) << Matching().Dump();
  Drain();
  EXPECT_EQ(Matching().Find("proposed")->as_int(), 0) << "the backfill only indexes";
  const size_t pending_before = Unwrap(identity().Proposals("pending")).size();
  // A profile whose entity has a single record in the first 1000: its copy with a typo in the first name.
  std::map<std::string, int> per_entity;
  for (const auto& [id, e] : entity) per_entity[e]++;
  std::string original;
  for (const auto& [id, e] : entity) {
    Json p = Unwrap(profiles().Get(id));
    const Json* first = p.FindPath("attributes.firstName");
    if (per_entity[e] == 1 && first != nullptr && first->as_string().size() >= 5 &&
        p.FindPath("attributes.lastName") != nullptr && p.FindPath("attributes.postalCode") != nullptr) {
      original = id;
      break;
    }
  }
  ASSERT_FALSE(original.empty());
  Json copy = CopyOf(original);
  std::string first = copy.FindPath("attributes.firstName")->as_string();
  std::swap(first[2], first[3]);
  copy.Find("attributes")->Set("firstName", first);
  const std::string twin = Unwrap(profiles().Create(copy)).Find("id")->as_string();
  Drain();
  Json pending = Unwrap(identity().Proposals("pending"));
  EXPECT_EQ(pending.size(), pending_before + 1) << pending.Dump();
  const Json* found = nullptr;
  for (const Json& p : pending.items()) {
    if (Names(p, twin, original)) found = &p;
  }
  ASSERT_NE(found, nullptr) << "no proposal pairs " << twin << " with " << original;
  EXPECT_GE(found->Find("probability")->as_number(), 0.9);
  EXPECT_EQ(found->Find("comparisons")->size(), 5u);
  // A change to a field matching does not read is not scored again; one it reads is.
  const int64_t matched = Matching().Find("matched")->as_int();
  Unwrap(profiles().Patch(twin, J(R"({"attributes": {"tags": ["vip"]}})")));
  Drain();
  EXPECT_EQ(Matching().Find("matched")->as_int(), matched);
  Unwrap(profiles().Patch(twin, J(R"({"attributes": {"lastName": "zzyzx"}})")));
  Drain();
  EXPECT_EQ(Matching().Find("matched")->as_int(), matched + 1);
  EXPECT_EQ(Matching().Find("errors")->as_int(), 0) << Matching().Dump();
}

TEST_F(MatchOnWriteTest, AutoMergesAboveTheConfiguredProbability) {
  LoadFebrl(300);
  EnableOnWrite(0.99);
  Unwrap(identity().FindDuplicates());  // merges what it finds above 0.99 too
  Drain();
  const size_t merged_before = Unwrap(identity().Proposals("merged")).size();
  // A profile with every matched field: its exact copy scores above 0.99.
  std::string original;
  ProfileQuery all;
  all.limit = 1000;
  const Page page = Unwrap(profiles().Search(all));
  for (const Json& p : page.items) {
    bool complete = true;
    for (const char* path : {"attributes.firstName", "attributes.lastName", "attributes.postalCode", "attributes.city",
                             "attributes.customFields.birthDate"}) {
      complete = complete && p.FindPath(path) != nullptr;
    }
    if (complete && (p.Find("mergedIds") == nullptr || p.Find("mergedIds")->size() == 0)) {
      original = p.Find("id")->as_string();
      break;
    }
  }
  ASSERT_FALSE(original.empty()) << page.items.size() << " " << page.items[0].Dump();
  Json copy = CopyOf(original);
  const std::string twin = Unwrap(profiles().Create(copy)).Find("id")->as_string();
  Drain();
  EXPECT_EQ(Matching().Find("autoMerged")->as_int(), 1) << Matching().Dump();
  Json merged = Unwrap(identity().Proposals("merged"));
  ASSERT_EQ(merged.size(), merged_before + 1);
  bool found = false;
  for (const Json& p : merged.items()) found = found || Names(p, twin, original);
  EXPECT_TRUE(found) << merged.Dump();
  // Both ids now answer as one profile.
  EXPECT_EQ(Unwrap(profiles().Get(twin)).Find("id")->as_string(),
            Unwrap(profiles().Get(original)).Find("id")->as_string());
}

TEST_F(MatchOnWriteTest, WithoutAModelProfilesAreIndexedNotScored) {
  EnableOnWrite();
  Unwrap(profiles().Create(J(R"({"attributes": {"firstName": "john", "lastName": "smith", "postalCode": "2000"}})")));
  Unwrap(profiles().Create(J(R"({"attributes": {"firstName": "jon", "lastName": "smith", "postalCode": "2000"}})")));
  Drain();
  EXPECT_EQ(Matching().Find("matched")->as_int(), 0);
  EXPECT_EQ(Unwrap(identity().Proposals("")).size(), 0u);
  // Two profiles, three blocking rules of which two have keys for each: one record and two entries per profile.
  EXPECT_EQ(BlockIndexKeys().size(), 6u);
}

TEST_F(MatchOnWriteTest, ErasureAndMergesTakeProfilesOutOfTheIndex) {
  EnableOnWrite();
  std::vector<std::string> ids;
  for (const char* first : {"anna", "ann", "bob", "carl"}) {
    const std::string doc =
        std::string(R"({"attributes": {"firstName": ")") + first + R"(", "lastName": "white", "postalCode": "5000"}})";
    ids.push_back(Unwrap(profiles().Create(J(doc))).Find("id")->as_string());
  }
  Drain();
  auto naming = [&](const std::string& id) {
    size_t n = 0;
    for (const std::string& k : BlockIndexKeys()) n += k.find(id) != std::string::npos;
    return n;
  };
  ASSERT_EQ(naming(ids[0]), 3u);  // its record and two entries
  ASSERT_TRUE(profiles().Delete(ids[0]).ok());
  EXPECT_EQ(naming(ids[0]), 0u) << "erasure leaves no blocking key of the person";
  Unwrap(identity().Merge({ids[1], ids[2]}, "test"));
  Drain();
  EXPECT_EQ(naming(ids[2]), 0u) << "a merged-away profile leaves the index";
  EXPECT_EQ(naming(ids[1]), 3u);
  // A new linkage configuration drops the index (and the model): its keys would not be comparable.
  Json config = Unwrap(identity().MatchingConfig());
  config.Find("linkage")->Set("threshold", 0.6);
  Unwrap(identity().SetMatchingConfig(config));
  EXPECT_TRUE(BlockIndexKeys().empty());
  config.Set("onWrite", "yes");
  EXPECT_EQ(identity().SetMatchingConfig(config).status().field(), "onWrite");
}

}  // namespace
}  // namespace cdp
