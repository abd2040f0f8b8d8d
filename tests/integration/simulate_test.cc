// SPDX-License-Identifier: Apache-2.0
// Policy what-if through the running daemons (POST /v1/policy:simulate, the
// check of PUT /v1/policy, `portolan policy simulate|apply`): real agents
// running real jobs under the default policy, and candidates that deny a
// destination, cut a cable or take a tenant's instrument away.
#include <gtest/gtest.h>

#include <atomic>
#include <fstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "harness.h"
#include "portolan/codec/codec.h"
#include "portolan/v1/policy.pb.h"
#include "portolan/v1/simulate.pb.h"

namespace portolan::testing {
namespace {

using std::chrono::seconds;

// A job sleeping a minute, pinned to `site`, with `extra` JSON fields.
std::string Sleeper(const std::string& tenant, const std::string& site, const std::string& extra,
                    const std::string& placement = "") {
  return absl::StrCat(
      R"({"tenant": ")", tenant,
      R"(", "command": ["/bin/sleep", "60"], "resources": {"cpus": 1, "memory_mb": 64},
      "placement": )",
      placement.empty() ? absl::StrCat(R"({"sites": [")", site, R"("]})") : placement,
      extra.empty() ? "" : ", ", extra, "}");
}

class SimulateIT : public ::testing::Test {
 protected:
  void SetUp() override {
    c.StartScheduler();
    c.StartAgent("lg1", "lingang-idc-1");
    c.StartAgent("sg1", "singapore-1");
    c.StartAgent("hk1", "hongkong-1");
    ASSERT_TRUE(WaitFor([&] { return c.client().ListAgents()->agents_size() == 3; }, seconds(20)));
    Call<v1::Tenant>(
        c, "PUT", "/v1/tenants/sc",
        R"({"instruments": [{"type": "cn_standard_contract", "from": "CN", "to": "*"}]})");
    // CN personal data of 150,000 people in Singapore, under sc's standard contract.
    exported = Start(Sleeper("sc", "singapore-1", R"("datasets": [{"id": "customers",
        "origin": "CN", "location": "lingang-idc-1", "categories": ["personal"],
        "subjects": 150000}])"));
    plain_sg = Start(Sleeper("sc", "singapore-1", ""));
    // Within 35 ms of Lingang: only over SJC2's direct segment (34 ms).
    bound_hk = Start(Sleeper("acme", "hongkong-1", "",
                             R"({"sites": ["hongkong-1"], "max_rtt_ms": {"lingang-idc-1": 35}})"));
    home = Start(Sleeper("acme", "lingang-idc-1", ""));
    policy = Call<v1::Policy>(c, "GET", "/v1/policy");
  }

  std::string Start(std::string body) {
    v1::Job j = Call<v1::Job>(c, "POST", "/v1/jobs", body, 201);
    EXPECT_TRUE(WaitForState(c.client(), j.id(), v1::Job::running)) << j.id();
    return j.id();
  }

  v1::SimulateResponse Simulate(const std::string& body) {
    return Call<v1::SimulateResponse>(c, "POST", "/v1/policy:simulate", body);
  }

  // The policy in force with a first rule denying CN data to SG.
  v1::Policy DenyCnToSg() {
    v1::Policy p = policy;
    p.clear_version();
    v1::Rule* deny = p.add_rules();
    deny->set_id("no-cn-to-sg");
    deny->mutable_when()->add_origin("CN");
    deny->mutable_when()->add_destination("SG");
    deny->set_effect(v1::Rule::deny);
    for (int i = p.rules_size() - 1; i > 0; --i) p.mutable_rules()->SwapElements(i, i - 1);
    return p;
  }

  Cluster c;
  v1::Policy policy;
  std::string exported, plain_sg, bound_hk, home;
};

TEST_F(SimulateIT, EachKindOfChangeListsExactlyTheJobsItAffects) {
  // The policy in force changes nothing.
  v1::SimulateResponse r = Simulate("{}");
  EXPECT_EQ(r.jobs_examined(), 4u);
  EXPECT_EQ(r.changes_size(), 0) << codec::ToJson(r);

  // Denying CN data to Singapore: the job holding CN data there.
  v1::Policy deny = DenyCnToSg();
  r = Simulate(absl::StrCat(R"({"policy": )", codec::ToJson(deny), "}"));
  ASSERT_EQ(r.changes_size(), 1) << codec::ToJson(r);
  EXPECT_EQ(r.changes(0).job(), exported);
  EXPECT_EQ(r.changes(0).kind(), v1::SimulatedChange::violation);
  EXPECT_EQ(r.changes(0).from().site(), "singapore-1");
  EXPECT_EQ(r.changes(0).from().agent(), "sg1");
  ASSERT_EQ(r.summary().cross_border().removed_size(), 1);
  EXPECT_EQ(r.summary().cross_border().removed(0).rule(), "cn-pi-100k-1m");

  // Cutting SJC2 Lingang-Hong Kong: the job bound to 35 ms from Lingang.
  r = Simulate(R"({"links": [{"id": "sjc2-lg1-hkg", "up": false}]})");
  ASSERT_EQ(r.changes_size(), 1) << codec::ToJson(r);
  EXPECT_EQ(r.changes(0).job(), bound_hk);
  EXPECT_EQ(r.changes(0).kind(), v1::SimulatedChange::violation);
  EXPECT_NE(r.changes(0).reason().find("latency"), std::string::npos) << r.changes(0).reason();

  // sc without its standard contract: its export, and the instruments that would do.
  r = Simulate(R"({"tenants": [{"id": "sc"}]})");
  ASSERT_EQ(r.changes_size(), 1) << codec::ToJson(r);
  EXPECT_EQ(r.changes(0).job(), exported);
  bool contract = false;
  for (const auto& need : r.summary().instruments_newly_required()) {
    EXPECT_EQ(need.tenant(), "sc");
    EXPECT_EQ(need.jobs(), 1u);
    contract |= need.type() == "cn_standard_contract";
  }
  EXPECT_TRUE(contract) << codec::ToJson(r.summary());

  // A bad request is refused naming the field; nothing else changes.
  std::string out;
  EXPECT_EQ(*c.client().Raw("POST", "/v1/policy:simulate", R"({"capacity": "ignore"})", &out), 400);
  EXPECT_NE(out.find(R"("field":"capacity")"), std::string::npos) << out;

  // PUT /v1/policy refuses what would make violations, naming the job...
  EXPECT_EQ(*c.client().Raw("PUT", "/v1/policy", codec::ToJson(deny), &out), 409);
  EXPECT_NE(out.find("would_violate"), std::string::npos) << out;
  EXPECT_NE(out.find(exported), std::string::npos) << out;
  EXPECT_EQ(Call<v1::Policy>(c, "GET", "/v1/policy").version(), policy.version());
  // ... and so does the CLI, after showing the impact; --force applies it.
  const std::string file = c.dir() + "/deny.json";
  ASSERT_TRUE(std::ofstream(file) << codec::ToJson(deny));
  auto [rc, text] = Cli(c, "policy apply " + file, true);
  EXPECT_EQ(rc, 1) << text;
  EXPECT_NE(text.find("violations 1"), std::string::npos) << text;
  EXPECT_NE(text.find(exported), std::string::npos) << text;
  EXPECT_NE(text.find("--force"), std::string::npos) << text;
  std::tie(rc, text) = Cli(c, "-o json policy simulate --link sjc2-lg1-hkg=down");
  EXPECT_EQ(rc, 0) << text;
  v1::SimulateResponse cli;
  ASSERT_TRUE(codec::ParseJson(text, &cli).ok()) << text;
  ASSERT_EQ(cli.changes_size(), 1);
  EXPECT_EQ(cli.changes(0).job(), bound_hk);
  std::tie(rc, text) = Cli(c, "policy apply " + file + " --force", true);
  EXPECT_EQ(rc, 0) << text;
  EXPECT_NE(text.find("applied policy"), std::string::npos) << text;
  auto v = Call<v1::ListViolationsResponse>(c, "GET", "/v1/compliance/violations");
  ASSERT_EQ(v.violations_size(), 1) << codec::ToJson(v);
  EXPECT_EQ(v.violations(0).job(), exported);
  EXPECT_EQ(v.violations(0).rule(), "no-cn-to-sg");
  // Now in force, the same policy changes nothing.
  EXPECT_EQ(Simulate(absl::StrCat(R"({"policy": )", codec::ToJson(deny), "}")).changes_size(), 0);
}

// Submits go on while simulations run: every submit is answered 201 and
// every simulation 200 (the throughput ratio is tests/bench/simulate_bench.sh's).
// The submitter is the tenant and the simulations the admin, each paced
// below the per-token rate limit (--rate-limit-rps 200), so a 429 here can
// only come from the scheduler refusing work, not from the limiter.
TEST_F(SimulateIT, SubmitsAreServedWhileSimulationsRun) {
  std::atomic<bool> stop{false};
  std::atomic<int> submitted{0}, refused{0};
  std::thread stream([&] {
    auto client = c.ClientWith(Cluster::kAcmeToken);
    while (!stop) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
      std::string out;
      auto code = client->Raw("POST", "/v1/jobs",
                              R"({"tenant": "acme", "command": ["/bin/true"],
                                  "resources": {"cpus": 1, "memory_mb": 16}})",
                              &out);
      (code.ok() && *code == 201 ? submitted : refused)++;
    }
  });
  int simulations = 0;
  const std::string body = absl::StrCat(R"({"include": ["active", "history"], "policy": )",
                                        codec::ToJson(DenyCnToSg()), "}");
  const auto until = std::chrono::steady_clock::now() + seconds(3);
  while (std::chrono::steady_clock::now() < until) {
    v1::SimulateResponse r = Simulate(body);
    EXPECT_GE(r.jobs_examined(), 4u);
    ++simulations;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  stop = true;
  stream.join();
  EXPECT_GT(simulations, 0);
  EXPECT_GT(submitted.load(), 0);
  EXPECT_EQ(refused.load(), 0);
}

}  // namespace
}  // namespace portolan::testing
