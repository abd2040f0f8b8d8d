// SPDX-License-Identifier: Apache-2.0
// Framework tests: site-level then agent-level plugins, counts per reason,
// weights, explanations, unschedulable detection.
#include "portolan/placement/placement.h"

#include <gtest/gtest.h>
#include <atomic>
#include <string>
#include <tuple>
#include <vector>

#include "portolan/codec/codec.h"

namespace portolan::placement {
namespace {

const char* kPolicy = R"(
jurisdictions: [CN, SG, HK]
instrument_types: [cn_standard_contract]
sites:
  - {id: lingang-idc-1, jurisdiction: CN, price_per_core_hour: 0.03}
  - {id: singapore-1, jurisdiction: SG, price_per_core_hour: 0.01}
  - {id: hongkong-1, jurisdiction: HK, price_per_core_hour: 0.02}
  - {id: island, jurisdiction: HK}
links:
  - {id: lg-sg, a: lingang-idc-1, b: singapore-1, rtt_ms: 65, gbps: 100}
  - {id: lg-hk, a: lingang-idc-1, b: hongkong-1, rtt_ms: 34, gbps: 10}
  - {id: hk-sg, a: hongkong-1, b: singapore-1, rtt_ms: 41, gbps: 100}
rules:
  - {id: same-regime, when: {export: false}, effect: allow}
  - {id: cn-pi, description: CN personal data needs a contract, when: {origin: [CN], export: true, categories: [personal]}, effect: require, require_any: [cn_standard_contract]}
default_effect: allow
plugins:
  filters: [site_affinity, residency, latency_limit, agent_health, resource_fit]
  scores: {bin_pack: 1}
)";

class PlacementTest : public ::testing::Test {
 protected:
  void SetUp() override { Load(""); }

  void Load(const std::string& plugins_yaml, const std::string& lingang_isolation = "") {
    v1::Policy p;
    ASSERT_TRUE(codec::ParseYaml(kPolicy, &p).ok());
    if (!lingang_isolation.empty()) {
      ASSERT_TRUE(
          codec::ParseYaml(lingang_isolation, p.mutable_sites(0)->mutable_isolation_required())
              .ok());
    }
    if (!plugins_yaml.empty()) {
      p.clear_plugins();
      ASSERT_TRUE(codec::ParseYaml(plugins_yaml, p.mutable_plugins()).ok());
    }
    if (registry.Names().empty()) RegisterBuiltins(registry);  // once: duplicates are refused
    auto c = policy::CompilePolicy(p, registry.NameSet());
    ASSERT_TRUE(c.ok()) << c.status();
    compiled = *c;
    auto e = Engine::Create(registry, compiled->policy().plugins());
    ASSERT_TRUE(e.ok()) << e.status();
    engine = std::move(*e);
  }

  v1::Agent& AddAgent(const std::string& id, const std::string& site, int cpus, int mem = 100000,
                      int gpus = 0) {
    v1::Agent& a = agents[id];
    a.set_id(id);
    a.set_site(site);
    a.set_state(v1::Agent::ready);
    a.set_connected(true);
    a.mutable_capacity()->set_cpus(cpus);
    a.mutable_capacity()->set_memory_mb(mem);
    a.mutable_capacity()->set_gpus(gpus);
    return a;
  }

  v1::Decision Decide(const v1::Job& job, std::map<std::string, int> used_cpus = {}) {
    by_site.clear();
    for (auto& [id, a] : agents) {
      AgentView v{&a, a.capacity()};
      v.free.set_cpus(a.capacity().cpus() - used_cpus[id]);
      by_site[a.site()].push_back(v);
    }
    DecisionInput in;
    in.job = &job;
    in.tenant = &tenant;
    in.policy = compiled.get();
    in.ledger = &ledger;
    in.today = absl::CivilDay(2026, 11, 21);
    in.agents_by_site = &by_site;
    return engine->Decide(in);
  }

  static v1::Job Job(int cpus, const std::string& yaml = "") {
    v1::Job j;
    if (!yaml.empty()) {
      EXPECT_TRUE(codec::ParseYaml(yaml, &j).ok());
    }
    j.mutable_resources()->set_cpus(cpus);
    j.mutable_resources()->set_memory_mb(100);
    return j;
  }

  const v1::SiteDecision& Site(const v1::Decision& d, const std::string& id) {
    for (const auto& s : d.sites()) {
      if (s.site() == id) return s;
    }
    ADD_FAILURE() << "no site " << id;
    return d.sites(0);
  }

  Registry registry;
  std::shared_ptr<const policy::CompiledPolicy> compiled;
  std::unique_ptr<Engine> engine;
  std::map<std::string, v1::Agent> agents;
  std::map<std::string, std::vector<AgentView>> by_site;
  v1::Tenant tenant;
  residency::Ledger ledger;
};

TEST(RegistryTest, NamesComeFromThePluginsAndADuplicateIsRefused) {
  Registry r;
  RegisterBuiltins(r);
  EXPECT_TRUE(r.NameSet().contains("residency"));
  const size_t before = r.Names().size();
  // Another factory for a plugin named "residency": refused, the first kept.
  auto again = r.Register([] {
    Registry tmp;
    RegisterBuiltins(tmp);
    return std::move(*tmp.Create("residency"));
  });
  EXPECT_EQ(again.code(), absl::StatusCode::kAlreadyExists) << again;
  EXPECT_NE(again.message().find("'residency'"), std::string::npos) << again;
  EXPECT_EQ(r.Names().size(), before);
  EXPECT_EQ(r.Register(nullptr).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(r.Register([] { return std::unique_ptr<Plugin>(); }).code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(PlacementTest, CountsEveryAgentRejectionReason) {
  AddAgent("a-small", "lingang-idc-1", 2);
  AddAgent("b-full", "lingang-idc-1", 64);
  AddAgent("c-cordoned", "lingang-idc-1", 64).set_state(v1::Agent::cordoned);
  AddAgent("d-nomem", "lingang-idc-1", 64, 10);
  v1::Decision d = Decide(Job(8), {{"b-full", 60}});
  EXPECT_FALSE(d.feasible());
  EXPECT_FALSE(d.unschedulable());
  EXPECT_EQ(d.agents().considered(), 4u);
  EXPECT_EQ(d.agents().rejected().at("insufficient_cpus"), 2u);
  EXPECT_EQ(d.agents().rejected().at("cordoned"), 1u);
  EXPECT_EQ(d.agents().rejected().at("insufficient_memory"), 1u);
  EXPECT_NE(d.reason().find("0/4 agents at 4 allowed site(s): 2 insufficient_cpus, 1 cordoned, 1 "
                            "insufficient_memory"),
            std::string::npos)
      << d.reason();
}

TEST_F(PlacementTest, AgentsBelowTheirSitesIsolationMinimumGetNoJobs) {
  Load(
      "filters: [site_affinity, residency, agent_health, isolation, resource_fit]\n"
      "scores: {bin_pack: 1}",
      "{uid_per_job: true, pid_ns: true, cgroup: v1, memory_limit: true}");
  v1::Agent& weak = AddAgent("lg-weak", "lingang-idc-1", 64);
  weak.mutable_isolation()->set_uid_per_job(true);
  weak.mutable_isolation()->set_cgroup(v1::Isolation::none);
  v1::Agent& strong = AddAgent("lg-strong", "lingang-idc-1", 4);
  strong.mutable_isolation()->set_uid_per_job(true);
  strong.mutable_isolation()->set_pid_ns(true);
  strong.mutable_isolation()->set_cgroup(v1::Isolation::v2);  // either version will do
  strong.mutable_isolation()->set_memory_limit(true);
  AddAgent("hk-none", "hongkong-1", 64);  // no minimum at this site
  v1::Job j = Job(2, "{placement: {sites: [lingang-idc-1]}}");
  v1::Decision d = Decide(j);
  ASSERT_TRUE(d.feasible()) << d.reason();
  EXPECT_EQ(d.placement().agent(), "lg-strong");
  const v1::SiteDecision& lg = Site(d, "lingang-idc-1");
  EXPECT_EQ(lg.agents().rejected().at("isolation_below_site_minimum"), 1u);
  ASSERT_EQ(lg.rejected_size(), 1);
  EXPECT_EQ(lg.rejected(0),
            "isolation_below_site_minimum: agent lg-weak: the agent lacks PID namespace, cgroup, "
            "memory limit, which site lingang-idc-1 requires");
  // Only the weak agent left there: the job waits, and says why.
  agents.erase("lg-strong");
  d = Decide(j);
  EXPECT_FALSE(d.feasible());
  EXPECT_NE(d.reason().find("1 isolation_below_site_minimum"), std::string::npos) << d.reason();
  // Other sites have no minimum.
  d = Decide(Job(2, "{placement: {sites: [hongkong-1]}}"));
  EXPECT_TRUE(d.feasible()) << d.reason();
}

TEST_F(PlacementTest, AnExplanationCountsSitesTheJobLeftOutAndListsWhatElseBlocks) {
  // No agent anywhere; the job asks for Lingang and has data there. Singapore
  // and Hong Kong are out only by the job's own choice (counted); "island"
  // is also unreachable from the data, which is listed, without the choice.
  v1::Job j = Job(1,
                  "{placement: {sites: [lingang-idc-1]}, datasets: [{id: reads, origin: "
                  "CN, location: lingang-idc-1, size_gb: 1}]}");
  v1::Decision d = Decide(j);
  ASSERT_FALSE(d.feasible());
  EXPECT_NE(d.reason().find("2 other site(s) not requested or avoided"), std::string::npos)
      << d.reason();
  EXPECT_NE(d.reason().find("island excluded: unreachable"), std::string::npos) << d.reason();
  EXPECT_EQ(d.reason().find("site_not_requested"), std::string::npos) << d.reason();
  // The per-site record still has every reason.
  EXPECT_EQ(Site(d, "singapore-1").rejected(0).rfind("site_not_requested", 0), 0u);
}

TEST_F(PlacementTest, EverySiteIsExplainedEvenWithoutAgents) {
  AddAgent("lg", "lingang-idc-1", 16);
  v1::Job j = Job(1,
                  "{datasets: [{id: reads, origin: CN, location: lingang-idc-1, size_gb: 500, "
                  "categories: [personal], subjects: 250000}]}");
  v1::Decision d = Decide(j);
  ASSERT_TRUE(d.feasible());
  EXPECT_EQ(d.placement().site(), "lingang-idc-1");
  ASSERT_EQ(d.sites_size(), 4);
  const v1::SiteDecision& sg = Site(d, "singapore-1");
  EXPECT_FALSE(sg.allowed());
  EXPECT_FALSE(sg.residency().allowed());
  EXPECT_EQ(sg.residency().rule(), "cn-pi");
  EXPECT_EQ(sg.residency().requires_any(0), "cn_standard_contract");
  EXPECT_NE(sg.residency().reason().find("reads"), std::string::npos);
  EXPECT_DOUBLE_EQ(sg.rtt_ms(), 65);
  EXPECT_NEAR(sg.transfer_s(), 40.065, 1e-9);  // 500 GB at 100 Gbps + RTT
  const v1::SiteDecision& lg = Site(d, "lingang-idc-1");
  EXPECT_TRUE(lg.allowed());
  EXPECT_EQ(lg.agents().considered(), 1u);
  EXPECT_EQ(lg.agents().feasible(), 1u);
  EXPECT_EQ(d.placement().compliance(0).rule(), "same-regime");
  EXPECT_FALSE(Site(d, "island").allowed()) << "island has no link to the data";
}

TEST_F(PlacementTest, InstrumentOpensTheSite) {
  AddAgent("sg", "singapore-1", 16);
  v1::Job j = Job(1,
                  "{datasets: [{id: reads, origin: CN, location: lingang-idc-1, categories: "
                  "[personal], subjects: 10}]}");
  v1::Decision d = Decide(j);
  EXPECT_FALSE(d.feasible());
  // Lingang is allowed but has no agent yet: the job waits, it is not unschedulable.
  EXPECT_FALSE(d.unschedulable());
  EXPECT_NE(d.reason().find("no agent registered at the allowed sites yet"), std::string::npos)
      << d.reason();
  auto* in = tenant.add_instruments();
  in->set_type("cn_standard_contract");
  in->set_from("CN");
  in->set_to("*");
  d = Decide(j);
  ASSERT_TRUE(d.feasible()) << d.reason();
  EXPECT_EQ(d.placement().site(), "singapore-1");
  EXPECT_EQ(d.placement().compliance(0).instrument(), "cn_standard_contract");
}

// The residency plugin caches verdicts by the job's datasets, tenant, site,
// day and ledger version: the same job decided again after the ledger grew
// past a threshold, or for another tenant, is judged afresh.
TEST_F(PlacementTest, CachedResidencyVerdictsFollowTheLedgerAndTheTenant) {
  v1::Policy p = compiled->policy();
  p.clear_rules();
  ASSERT_TRUE(
      codec::ParseYaml(
          R"({id: cn-small, when: {origin: [CN], export: true, categories: [personal], subjects_below: 100000}, effect: allow})",
          p.add_rules())
          .ok());
  ASSERT_TRUE(
      codec::ParseYaml(
          R"({id: cn-large, when: {origin: [CN], export: true, categories: [personal], subjects_at_least: 100000}, effect: require, require_any: [cn_standard_contract]})",
          p.add_rules())
          .ok());
  ASSERT_TRUE(
      codec::ParseYaml("{id: same-regime, when: {export: false}, effect: allow}", p.add_rules())
          .ok());
  auto c = policy::CompilePolicy(p, registry.NameSet());
  ASSERT_TRUE(c.ok()) << c.status();
  compiled = *c;
  auto e = Engine::Create(registry, compiled->policy().plugins());
  ASSERT_TRUE(e.ok()) << e.status();
  engine = std::move(*e);
  AddAgent("sg", "singapore-1", 16);
  tenant.set_id("acme");
  v1::Job j = Job(1,
                  "{tenant: acme, datasets: [{id: reads, origin: CN, location: lingang-idc-1, "
                  "categories: [personal], subjects: 60000}]}");
  for (int i = 0; i < 2; ++i) {  // the second time from the cache
    v1::Decision d = Decide(j);
    ASSERT_TRUE(d.feasible()) << d.reason();
    EXPECT_EQ(d.placement().compliance(0).rule(), "cn-small");
  }
  // 60,000 subjects of another dataset already left this year: with these,
  // 120,000 together need the contract (regulations.md, Counting).
  ASSERT_TRUE(ledger.Record("acme", 2026, "CN", "earlier", 60000, 0));
  v1::Decision d = Decide(j);
  EXPECT_FALSE(d.feasible());
  EXPECT_EQ(Site(d, "singapore-1").residency().rule(), "cn-large");
  // Another tenant with a clean ledger is allowed again under the small rule.
  tenant.set_id("globex");
  j.set_tenant("globex");
  d = Decide(j);
  ASSERT_TRUE(d.feasible()) << d.reason();
  EXPECT_EQ(d.placement().compliance(0).rule(), "cn-small");
  // And the contract opens it for acme.
  tenant.set_id("acme");
  j.set_tenant("acme");
  auto* instrument = tenant.add_instruments();
  instrument->set_type("cn_standard_contract");
  instrument->set_from("CN");
  instrument->set_to("*");
  d = Decide(j);
  ASSERT_TRUE(d.feasible()) << d.reason();
  EXPECT_EQ(d.placement().compliance(0).instrument(), "cn_standard_contract");
}

TEST_F(PlacementTest, UnschedulableWhenNoSiteCanEverTakeItAndReasonNamesEach) {
  AddAgent("lg", "lingang-idc-1", 16);
  v1::Job j =
      Job(1,
          "{placement: {avoid_sites: [lingang-idc-1], max_rtt_ms: {lingang-idc-1: 40}}, "
          "datasets: [{id: reads, origin: CN, location: lingang-idc-1, categories: [personal]}]}");
  v1::Decision d = Decide(j);
  EXPECT_FALSE(d.feasible());
  EXPECT_TRUE(d.unschedulable());
  for (const char* part :
       {"1 other site(s) not requested or avoided", "singapore-1 excluded: residency",
        "latency_limit: RTT to lingang-idc-1 is 65 ms, limit 40 ms",
        "hongkong-1 excluded: residency", "island excluded"}) {
    EXPECT_NE(d.reason().find(part), std::string::npos) << part << " missing from: " << d.reason();
  }
  EXPECT_EQ(d.agents().rejected().at("site_avoided"), 1u);
}

TEST_F(PlacementTest, UnschedulableWhenNoAgentHasTheHardware) {
  AddAgent("lg", "lingang-idc-1", 16);
  v1::Decision d = Decide(Job(64));
  EXPECT_TRUE(d.unschedulable());
  EXPECT_NE(d.reason().find("no agent at the allowed sites has 64 cpus"), std::string::npos)
      << d.reason();
}

TEST_F(PlacementTest, WeightsChangeTheWinner) {
  AddAgent("lg", "lingang-idc-1", 16);
  AddAgent("sg", "singapore-1", 16);
  v1::Job j = Job(2, "{datasets: [{id: logs, origin: HK, location: lingang-idc-1, size_gb: 100}]}");
  Load("{filters: [residency, resource_fit], scores: {data_gravity: 1}}");
  v1::Decision d = Decide(j);
  EXPECT_EQ(d.placement().site(), "lingang-idc-1");
  EXPECT_DOUBLE_EQ(d.placement().scores().at("data_gravity"), 100);
  Load("{filters: [residency, resource_fit], scores: {data_gravity: 1, cost: 5}}");
  d = Decide(j);
  EXPECT_EQ(d.placement().site(), "singapore-1") << "cheaper site wins when cost weighs more";
  EXPECT_DOUBLE_EQ(d.placement().scores().at("cost"), 100);
  EXPECT_DOUBLE_EQ(d.placement().scores().at("data_gravity"), 0);
}

TEST_F(PlacementTest, BinPackAndSpread) {
  AddAgent("busy", "lingang-idc-1", 16);
  AddAgent("idle", "lingang-idc-1", 16);
  v1::Decision packed = Decide(Job(2), {{"busy", 8}});
  EXPECT_EQ(packed.placement().agent(), "busy");
  EXPECT_EQ(packed.warnings_size(), 0);
  Load("{filters: [resource_fit], allow_without_residency: true, scores: {spread: 1}}");
  v1::Decision spread = Decide(Job(2), {{"busy", 8}});
  EXPECT_EQ(spread.placement().agent(), "idle");
  ASSERT_EQ(spread.warnings_size(), 1) << "residency off: every decision says so";
  EXPECT_NE(spread.warnings(0).find("residency is switched off"), std::string::npos);
}

TEST_F(PlacementTest, AgentLabelsAndGpus) {
  AddAgent("plain", "lingang-idc-1", 16);
  AddAgent("gpu", "lingang-idc-1", 16, 100000, 4);
  (*agents["gpu"].mutable_labels())["accel"] = "h100";
  v1::Job j = Job(1, "{placement: {agent_labels: {accel: h100}}}");
  v1::Decision d = Decide(j);
  EXPECT_EQ(d.placement().agent(), "gpu");
  EXPECT_EQ(d.agents().rejected().at("label_mismatch"), 1u);
  by_site.clear();
}

TEST_F(PlacementTest, FastPathStopsAfterEnoughFeasibleAgentsAndRotates) {
  for (int i = 0; i < 10; ++i) AddAgent("a" + std::to_string(i), "lingang-idc-1", 16);
  Load(
      "{filters: [resource_fit], allow_without_residency: true, scores: {bin_pack: 1}, "
      "max_feasible_agents_per_site: 2}");
  v1::Decision d = Decide(Job(1));
  ASSERT_TRUE(d.feasible());
  EXPECT_EQ(d.agents().feasible(), 2u);
  EXPECT_EQ(d.agents().skipped(), 8u);
  EXPECT_EQ(d.agents().considered(), 10u);
  std::set<std::string> winners;
  for (int k = 0; k < 10; ++k) winners.insert(Decide(Job(1)).placement().agent());
  EXPECT_GT(winners.size(), 1u) << "successive decisions start at different agents";
  Load(
      "{filters: [resource_fit], allow_without_residency: true, scores: {bin_pack: 1}, "
      "max_feasible_agents_per_site: 0}");
  d = Decide(Job(1));
  EXPECT_EQ(d.agents().feasible(), 10u);
  EXPECT_EQ(d.agents().skipped(), 0u);
}

// A score read off the agent's label `key` (0-100), counting its calls.
class LabelScore : public ScorePlugin {
 public:
  LabelScore(std::string name, std::string key, std::atomic<int>* calls)
      : name_(std::move(name)), key_(std::move(key)), calls_(calls) {}
  std::string_view Name() const override { return name_; }
  double Score(CycleState&, const DecisionInput&, const AgentView& a) const override {
    ++*calls_;
    return std::stod(a.agent->labels().at(key_));
  }

 private:
  std::string name_, key_;
  std::atomic<int>* calls_;
};

// Scores run in name order; once an agent cannot reach its site's best even
// with full marks from the scores left, those are not asked. The winner is
// the one scoring every agent fully would pick, ties included.
TEST_F(PlacementTest, AnAgentThatCannotCatchUpIsNotScoredFurther) {
  static std::atomic<int> first_calls{0}, last_calls{0};
  ASSERT_TRUE(
      registry.Register([] { return std::make_unique<LabelScore>("a_first", "a", &first_calls); })
          .ok());
  ASSERT_TRUE(
      registry.Register([] { return std::make_unique<LabelScore>("z_last", "z", &last_calls); })
          .ok());
  // Listed (and examined) in id order: x1 = 90 + 100; x2 = 10 + 100 cannot
  // reach 190 whatever z_last says; x3 = 95 + 0 could, so it is asked; x4 ties
  // x1 at 190 and is asked, and the tie goes to x1, listed first.
  for (const auto& [id, a, z] : std::vector<std::tuple<std::string, std::string, std::string>>{
           {"x1", "90", "100"}, {"x2", "10", "100"}, {"x3", "95", "0"}, {"x4", "90", "100"}}) {
    v1::Agent& agent = AddAgent(id, "lingang-idc-1", 16);
    (*agent.mutable_labels())["a"] = a;
    (*agent.mutable_labels())["z"] = z;
  }
  Load("{filters: [resource_fit], allow_without_residency: true, scores: {z_last: 1, a_first: 1}}");
  first_calls = 0;
  last_calls = 0;
  v1::Decision d = Decide(Job(1));
  ASSERT_TRUE(d.feasible()) << d.reason();
  EXPECT_EQ(d.placement().agent(), "x1");
  EXPECT_EQ(d.agents().feasible(), 4u) << "every agent that fits is still counted";
  // Each score is asked once more for the winner's recorded scores.
  EXPECT_EQ(first_calls, 4 + 1);
  EXPECT_EQ(last_calls, 3 + 1) << "x2 is not asked";

  // x1 no longer fits: x4 (190) wins, and x3 (95 + 100 at most) is asked
  // while the best is x2's 110, then x4 beats it.
  first_calls = 0;
  last_calls = 0;
  d = Decide(Job(1), {{"x1", 16}});
  ASSERT_TRUE(d.feasible()) << d.reason();
  EXPECT_EQ(d.placement().agent(), "x4");
  EXPECT_EQ(first_calls, 3 + 1);
  EXPECT_EQ(last_calls, 3 + 1);
}

TEST_F(PlacementTest, UnknownPluginIsAnError) {
  v1::PluginConfig cfg;
  cfg.add_filters("no_such_plugin");
  auto e = Engine::Create(registry, cfg);
  ASSERT_FALSE(e.ok());
  EXPECT_NE(e.status().message().find("resource_fit"), absl::string_view::npos);
}

TEST_F(PlacementTest, QueueSortIsAPluginDrfByDefault) {
  EXPECT_EQ(engine->queue_sort(), "drf");
  v1::Resources total;
  total.set_cpus(100);
  total.set_memory_mb(1000);
  // acme holds half the cluster already: globex's job goes first within a
  // priority, a higher priority before both.
  auto drf = engine->NewQueue(total);
  v1::Resources held;
  held.set_cpus(50);
  drf->Charge("acme", held);
  drf->Add({"a1", "acme", 0});
  drf->Add({"a2", "acme", 0});
  drf->Add({"g1", "globex", 0});
  drf->Add({"p1", "acme", 5});
  std::vector<std::string> order;
  for (std::string id; drf->Next(&id);) order.push_back(id);
  EXPECT_EQ(order, (std::vector<std::string>{"p1", "g1", "a1", "a2"}));

  // Weights: acme (weight 3) holds 50% = 16.7% weighted, globex (weight 1)
  // 20%: acme goes first; at weight 1 it would go after globex.
  for (double acme_weight : {3.0, 1.0}) {
    auto weighted = engine->NewQueue(total);
    weighted->Charge("acme", held);
    v1::Resources g;
    g.set_cpus(20);
    weighted->Charge("globex", g);
    weighted->Add({"a1", "acme", 0, acme_weight});
    weighted->Add({"g1", "globex", 0, 1});
    std::string first;
    ASSERT_TRUE(weighted->Next(&first));
    EXPECT_EQ(first, acme_weight == 3.0 ? "a1" : "g1") << "acme weight " << acme_weight;
  }

  Load("{filters: [residency, resource_fit], queue_sort: priority_fifo}");
  EXPECT_EQ(engine->queue_sort(), "priority_fifo");
  auto fifo = engine->NewQueue(total);
  fifo->Charge("acme", held);
  fifo->Add({"a1", "acme", 0});
  fifo->Add({"a2", "acme", 0});
  fifo->Add({"g1", "globex", 0});
  order.clear();
  for (std::string id; fifo->Next(&id);) order.push_back(id);
  EXPECT_EQ(order, (std::vector<std::string>{"a1", "a2", "g1"}));

  v1::PluginConfig cfg;
  cfg.set_queue_sort("bin_pack");  // a plugin, but not a queue sort
  auto e = Engine::Create(registry, cfg);
  ASSERT_FALSE(e.ok());
  EXPECT_EQ(e.status().message(), "plugin 'bin_pack' is not a queue sort");
}

// A filter that passes everything and whose Reserve fails: the residency
// plugin's reservation before it must be undone.
class FailingReserve : public FilterPlugin, public ReservePlugin {
 public:
  std::string_view Name() const override { return "failing_reserve"; }
  AgentVerdict Filter(CycleState&, const DecisionInput&, const AgentView&) const override {
    return AgentVerdict::Pass();
  }
  absl::Status Reserve(const DecisionInput&, const v1::Decision&, ReserveContext&) const override {
    return absl::UnavailableError("no room in the reservation book");
  }
  void Unreserve(const DecisionInput&, const v1::Decision&, ReserveContext&) const override {}
};

TEST_F(PlacementTest, ResidencyReservesTheLedgerAndAuditAndUnreserveUndoesThem) {
  AddAgent("sg", "singapore-1", 16);
  auto* ins = tenant.add_instruments();
  ins->set_type("cn_standard_contract");
  ins->set_from("CN");
  ins->set_to("*");
  v1::Job j = Job(1,
                  "{datasets: [{id: reads, origin: CN, location: lingang-idc-1, categories: "
                  "[personal], subjects: 10}]}");
  j.set_id("job-1");
  j.set_tenant("acme");
  v1::Decision d = Decide(j);
  ASSERT_TRUE(d.feasible()) << d.reason();
  ASSERT_EQ(d.placement().site(), "singapore-1");
  DecisionInput in;
  in.job = &j;
  in.policy = compiled.get();
  ReserveContext ctx;
  ctx.ledger = &ledger;
  ctx.now = absl::FromCivil(absl::CivilDay(2026, 11, 21), absl::UTCTimeZone());
  ASSERT_TRUE(engine->Reserve(in, d, ctx).ok());
  ASSERT_EQ(ctx.audit.size(), 1u);
  EXPECT_EQ(ctx.audit[0].dataset(), "reads");
  EXPECT_EQ(ctx.audit[0].to_jurisdiction(), "SG");
  EXPECT_EQ(ctx.audit[0].instrument(), "cn_standard_contract");
  ASSERT_EQ(ctx.ledger_grew.size(), 1u);
  EXPECT_EQ(ledger.Get("acme", 2026, "CN").subjects, 10u);
  // The commit failed: everything reserved is undone.
  engine->Unreserve(in, d, ctx);
  EXPECT_EQ(ledger.Get("acme", 2026, "CN").subjects, 0u);
  EXPECT_FALSE(ledger.Counted("acme", 2026, "CN", "reads"));
  EXPECT_TRUE(ctx.audit.empty());

  // A later Reserve plugin fails: the residency plugin's work is undone too.
  ASSERT_TRUE(registry.Register([] { return std::make_unique<FailingReserve>(); }).ok());
  Load("{filters: [residency, failing_reserve]}");
  in.policy = compiled.get();  // the new policy's
  d = Decide(j);
  ASSERT_TRUE(d.feasible()) << d.reason();
  ReserveContext ctx2;
  ctx2.ledger = &ledger;
  ctx2.now = ctx.now;
  absl::Status st = engine->Reserve(in, d, ctx2);
  EXPECT_EQ(st.message(), "no room in the reservation book");
  EXPECT_FALSE(ledger.Counted("acme", 2026, "CN", "reads"));
  EXPECT_TRUE(ctx2.audit.empty());
}

// Only one arena at a time builds on the thread's scratch block: a second,
// made while the first is alive (a decision inside a decision's scope),
// allocates its own, so neither overwrites the other.
TEST(DecisionArenaTest, ANestedArenaDoesNotShareTheScratchBlock) {
  DecisionArena outer;
  v1::Decision* kept = outer.NewDecision();
  kept->set_reason(std::string(3000, 'a'));
  for (int round = 0; round < 2; ++round) {
    DecisionArena inner;
    v1::Decision* other = inner.NewDecision();
    for (int i = 0; i < 200; ++i) other->add_warnings(std::string(400, 'b'));  // beyond 64 KiB
    EXPECT_EQ(other->warnings_size(), 200);
  }
  EXPECT_EQ(kept->reason(), std::string(3000, 'a'));
  // Once the first is gone, the next one takes the block again and works.
  {
    DecisionArena again;
    v1::Decision* d = again.NewDecision();
    d->set_reason("fresh");
    EXPECT_EQ(d->reason(), "fresh");
  }
  EXPECT_EQ(kept->reason(), std::string(3000, 'a'));
}

}  // namespace
}  // namespace portolan::placement
