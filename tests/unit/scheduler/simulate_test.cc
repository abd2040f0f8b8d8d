// SPDX-License-Identifier: Apache-2.0
// Policy what-if through the core: what each kind of change reports, the
// limits, and fidelity (a simulated decision is the decision `plan` gives on
// the same state under the same policy).
#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>

#include <atomic>
#include <random>
#include <set>
#include <thread>

#include "portolan/base/strings.h"
#include "portolan/codec/codec.h"
#include "portolan/scheduler/core.h"
#include "support/fake_agent_link.h"
#include "support/fake_clock.h"
#include "support/memory_store.h"

namespace portolan::scheduler {
namespace {

using testing::FakeLink;

// Three sites; Lingang-Singapore direct (sjc2, 65 ms) or through Hong Kong
// (40 + 40 ms).
const char* kPolicy = R"(
jurisdictions: [CN, HK, SG]
instrument_types: [cn_standard_contract]
currency: USD
sites:
  - {id: lingang-idc-1, jurisdiction: CN, price_per_core_hour: 0.03}
  - {id: hongkong-1, jurisdiction: HK, price_per_core_hour: 0.02}
  - {id: singapore-1, jurisdiction: SG, price_per_core_hour: 0.01}
links:
  - {id: sjc2, a: lingang-idc-1, b: singapore-1, rtt_ms: 65, gbps: 100}
  - {id: lg-hk, a: lingang-idc-1, b: hongkong-1, rtt_ms: 40, gbps: 100}
  - {id: hk-sg, a: hongkong-1, b: singapore-1, rtt_ms: 40, gbps: 100}
rules:
  - {id: same-regime, when: {export: false}, effect: allow}
  - {id: cn-pi, when: {origin: [CN], export: true, categories: [personal]}, effect: require,
     require_any: [cn_standard_contract]}
default_effect: allow
plugins:
  filters: [site_affinity, residency, latency_limit, agent_health, resource_fit]
  scores: {bin_pack: 1, data_gravity: 1}
)";

// `rule` as the policy's first rule.
void Prepend(v1::Policy& p, const v1::Rule& rule) {
  *p.add_rules() = rule;
  for (int i = p.rules_size() - 1; i > 0; --i) p.mutable_rules()->SwapElements(i, i - 1);
}

// `p` with a first rule denying CN data to SG.
v1::Policy DenyCnToSg(v1::Policy p) {
  v1::Rule deny;
  deny.set_id("no-cn-to-sg");
  deny.mutable_when()->add_origin("CN");
  deny.mutable_when()->add_destination("SG");
  deny.set_effect(v1::Rule::deny);
  Prepend(p, deny);
  return p;
}

class SimulateTest : public ::testing::Test {
 protected:
  SimulateTest() {
    placement::RegisterBuiltins(registry);
    core = std::make_unique<Core>(CoreOptions{}, &store, &clock, &registry);
    EXPECT_TRUE(core->Recover().ok());
    EXPECT_TRUE(codec::ParseYaml(kPolicy, &policy).ok());
    auto v = core->ApplyPolicy(policy, "test");
    EXPECT_TRUE(v.ok()) << v.status();
  }

  std::shared_ptr<FakeLink> Register(const std::string& id, const std::string& site,
                                     uint32_t pus = 8) {
    auto link = std::make_shared<FakeLink>();
    EXPECT_TRUE(core->OnRegister(testing::SimpleRegister(id, pus, site), link, "127.0.0.1:1"));
    links[id] = link;
    return link;
  }

  static v1::Job Spec(const std::string& tenant, int cpus, const std::string& site = "") {
    v1::Job j;
    j.set_tenant(tenant);
    j.add_command("/bin/true");
    j.mutable_resources()->set_cpus(cpus);
    j.mutable_resources()->set_memory_mb(128);
    if (!site.empty()) j.mutable_placement()->add_sites(site);
    return j;
  }
  static void AddData(v1::Job& j, const std::string& origin, v1::Dataset::Category c,
                      const std::string& location, uint32_t subjects = 1000) {
    v1::Dataset* d = j.add_datasets();
    d->set_id(absl::StrCat("d", j.datasets_size()));
    d->set_origin(origin);
    d->add_categories(c);
    d->set_location(location);
    d->set_size_gb(1);
    if (c == v1::Dataset::personal) d->set_subjects(subjects);
  }

  // Submits; when placed, the agent says it runs.
  v1::Job Run(v1::Job spec) {
    auto j = core->Submit(std::move(spec));
    EXPECT_TRUE(j.ok()) << j.status();
    if (j->first.state() == v1::Job::placed) {
      const std::string& agent = j->first.allocation().agent();
      v1::Envelope e;
      e.set_seq(++seq);
      auto* u = e.mutable_job_update();
      u->set_job_id(j->first.id());
      u->set_attempt(1);
      u->set_state(v1::Job::running);
      core->OnMessage(agent, links[agent].get(), e);
    }
    return *core->GetJob(j->first.id());
  }

  absl::StatusOr<v1::SimulateResponse> Simulate(const std::string& json,
                                                SimulateLimits limits = {}) {
    v1::SimulateRequest r;
    if (absl::Status st = codec::ParseJson(json, &r, codec::JsonMode::kRequest); !st.ok())
      return st;
    limits.threads = 2;
    return core->Simulate(r, limits);
  }

  std::string PolicyJson(const v1::Policy& p) { return codec::ToJson(p); }

  const v1::SimulatedChange* ChangeOf(const v1::SimulateResponse& r, const std::string& job) {
    for (const auto& c : r.changes())
      if (c.job() == job) return &c;
    return nullptr;
  }

  placement::Registry registry;
  testing::FakeClock clock;
  testing::MemoryStore store;
  std::unique_ptr<Core> core;
  v1::Policy policy;
  std::map<std::string, std::shared_ptr<FakeLink>> links;
  uint64_t seq = 0;
};

TEST_F(SimulateTest, ThePolicyInForceChangesNothing) {
  Register("cn-a", "lingang-idc-1", 4);
  Register("hk-a", "hongkong-1", 4);
  Register("sg-a", "singapore-1", 4);
  v1::Job with_data = Spec("acme", 2);
  AddData(with_data, "CN", v1::Dataset::general, "lingang-idc-1");
  Run(with_data);
  Run(Spec("acme", 2, "singapore-1"));
  Run(Spec("globex", 2, "singapore-1"));
  Run(Spec("globex", 4, "hongkong-1"));
  auto waiting = core->Submit(Spec("acme", 2, "singapore-1"));  // singapore is full
  ASSERT_EQ(waiting->first.state(), v1::Job::queued);

  auto r = Simulate("{}");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->jobs_examined(), 5u);
  EXPECT_EQ(r->active_jobs(), 5u);
  EXPECT_EQ(r->changes_size(), 0) << codec::ToJson(*r);
  EXPECT_EQ(r->summary().violations(), 0u);
  EXPECT_EQ(r->summary().cost_delta(), 0);
  EXPECT_EQ(r->summary().rtt_ms_p50_delta(), 0);
  EXPECT_EQ(r->summary().cross_border().added_size(), 0);
  EXPECT_EQ(r->policy_version(), "v1");
  EXPECT_EQ(r->summary().currency(), "USD");
}

// Array tasks share their array job's spec; each change still names its task.
TEST_F(SimulateTest, ArrayTasksAreListedEachUnderItsOwnId) {
  Register("sg-a", "singapore-1", 8);
  v1::Job spec = Spec("acme", 1, "singapore-1");
  AddData(spec, "CN", v1::Dataset::general, "lingang-idc-1");
  spec.mutable_array()->set_count(3);
  auto sub = core->Submit(spec);
  ASSERT_TRUE(sub.ok()) << sub.status();
  core->Tick();
  std::set<std::string> tasks;
  for (int i = 0; i < 3; ++i) {
    auto t = core->GetJob(absl::StrCat(sub->first.id(), "[", i, "]"));
    ASSERT_TRUE(t.ok()) << t.status();
    ASSERT_EQ(t->state(), v1::Job::placed);
    tasks.insert(t->id());
  }
  auto r = Simulate(absl::StrCat(R"({"policy": )", PolicyJson(DenyCnToSg(policy)), "}"));
  ASSERT_TRUE(r.ok()) << r.status();
  std::set<std::string> changed;
  for (const auto& c : r->changes()) {
    EXPECT_EQ(c.kind(), v1::SimulatedChange::violation) << c.job();
    changed.insert(c.job());
  }
  EXPECT_EQ(changed, tasks) << codec::ToJson(*r);
}

TEST_F(SimulateTest, DenyingADestinationListsTheJobsPlacedThere) {
  Register("cn-a", "lingang-idc-1", 8);
  Register("sg-a", "singapore-1", 4);
  v1::Job cn_data_sg = Spec("acme", 2, "singapore-1");
  AddData(cn_data_sg, "CN", v1::Dataset::general, "lingang-idc-1");
  const v1::Job in_sg = Run(cn_data_sg);
  ASSERT_EQ(in_sg.state(), v1::Job::running);
  const v1::Job no_data_sg = Run(Spec("acme", 2, "singapore-1"));
  v1::Job cn_data_cn = Spec("acme", 2);
  AddData(cn_data_cn, "CN", v1::Dataset::general, "lingang-idc-1");
  const v1::Job in_cn = Run(cn_data_cn);
  ASSERT_EQ(in_cn.allocation().site(), "lingang-idc-1");
  v1::Job waits = Spec("acme", 2, "singapore-1");
  AddData(waits, "CN", v1::Dataset::general, "lingang-idc-1");
  auto queued = core->Submit(waits);
  ASSERT_EQ(queued->first.state(), v1::Job::queued);

  const v1::Policy candidate = DenyCnToSg(policy);
  auto r = Simulate(absl::StrCat(R"({"policy": )", PolicyJson(candidate), "}"));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->changes_size(), 2) << codec::ToJson(*r);
  const v1::SimulatedChange* v = ChangeOf(*r, in_sg.id());
  ASSERT_NE(v, nullptr);
  EXPECT_EQ(v->kind(), v1::SimulatedChange::violation);
  EXPECT_EQ(v->from().site(), "singapore-1");
  EXPECT_EQ(v->from().agent(), "sg-a");
  EXPECT_FALSE(v->has_to()) << "the job may run only in Singapore";
  EXPECT_NE(v->reason().find("no-cn-to-sg"), std::string::npos) << v->reason();
  EXPECT_EQ(v->state(), v1::Job::running);
  const v1::SimulatedChange* u = ChangeOf(*r, queued->first.id());
  ASSERT_NE(u, nullptr);
  EXPECT_EQ(u->kind(), v1::SimulatedChange::newly_unschedulable);
  EXPECT_EQ(ChangeOf(*r, no_data_sg.id()), nullptr);
  EXPECT_EQ(ChangeOf(*r, in_cn.id()), nullptr);
  EXPECT_EQ(r->summary().violations(), 1u);
  EXPECT_EQ(r->summary().newly_unschedulable(), 1u);
  ASSERT_EQ(r->summary().cross_border().removed_size(), 1) << codec::ToJson(*r);
  const v1::CrossBorderFlow& f = r->summary().cross_border().removed(0);
  EXPECT_EQ(f.from(), "CN");
  EXPECT_EQ(f.to(), "SG");
  EXPECT_EQ(f.rule(), "default");
  EXPECT_EQ(f.jobs(), 1u);
  EXPECT_LT(r->summary().cost_delta(), 0) << "the violating job no longer counts at Singapore";

  // Applying it is what the check before PUT /v1/policy refuses.
  SimulateLimits gate;
  gate.holding_only = true;
  v1::SimulateRequest only;
  *only.mutable_policy() = candidate;
  auto g = core->Simulate(only, gate);
  ASSERT_TRUE(g.ok());
  EXPECT_EQ(g->jobs_examined(), 3u) << "placed and running jobs only";
  EXPECT_EQ(g->summary().violations(), 1u);
}

TEST_F(SimulateTest, ACableCutListsTheLatencyBoundJobsItBreaks) {
  Register("cn-a", "lingang-idc-1", 8);
  Register("sg-a", "singapore-1", 8);
  v1::Job bound = Spec("acme", 2, "singapore-1");
  (*bound.mutable_placement()->mutable_max_rtt_ms())["lingang-idc-1"] = 70;
  const v1::Job near = Run(bound);
  ASSERT_EQ(near.state(), v1::Job::running);
  const v1::Job free = Run(Spec("acme", 2, "singapore-1"));
  v1::Job loose = Spec("acme", 2, "singapore-1");
  (*loose.mutable_placement()->mutable_max_rtt_ms())["lingang-idc-1"] = 100;
  const v1::Job far = Run(loose);

  auto r = Simulate(R"({"links": [{"id": "sjc2", "up": false}]})");
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->changes_size(), 1) << codec::ToJson(*r);
  EXPECT_EQ(r->changes(0).job(), near.id());
  EXPECT_EQ(r->changes(0).kind(), v1::SimulatedChange::violation);
  EXPECT_NE(r->changes(0).reason().find("latency"), std::string::npos) << r->changes(0).reason();
  EXPECT_EQ(ChangeOf(*r, free.id()), nullptr);
  EXPECT_EQ(ChangeOf(*r, far.id()), nullptr) << "80 ms through Hong Kong is within 100";

  // An unknown link is refused, naming it.
  auto bad = Simulate(R"({"links": [{"id": "sjc9", "up": false}]})");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(codec::StatusField(bad.status()), "links[0].id");
}

TEST_F(SimulateTest, RemovingAnInstrumentListsTheTenantsJobsAndTheInstrument) {
  Register("cn-a", "lingang-idc-1", 8);
  Register("sg-a", "singapore-1", 8);
  v1::Tenant acme;
  acme.set_id("acme");
  v1::Instrument* scc = acme.add_instruments();
  scc->set_type("cn_standard_contract");
  scc->set_from("CN");
  scc->set_to("*");
  ASSERT_TRUE(core->PutTenant("acme", acme).ok());
  v1::Job pi = Spec("acme", 2, "singapore-1");
  AddData(pi, "CN", v1::Dataset::personal, "lingang-idc-1");
  const v1::Job exported = Run(pi);
  ASSERT_EQ(exported.state(), v1::Job::running);
  v1::Job pi_home = Spec("acme", 2, "lingang-idc-1");
  AddData(pi_home, "CN", v1::Dataset::personal, "lingang-idc-1");
  const v1::Job home = Run(pi_home);
  v1::Job other = Spec("globex", 2, "singapore-1");
  AddData(other, "CN", v1::Dataset::general, "lingang-idc-1");
  Run(other);

  auto r = Simulate(R"({"tenants": [{"id": "acme"}]})");
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->changes_size(), 1) << codec::ToJson(*r);
  EXPECT_EQ(r->changes(0).job(), exported.id());
  EXPECT_EQ(r->changes(0).kind(), v1::SimulatedChange::violation);
  EXPECT_EQ(r->changes(0).tenant(), "acme");
  ASSERT_EQ(r->summary().instruments_newly_required_size(), 1);
  EXPECT_EQ(r->summary().instruments_newly_required(0).tenant(), "acme");
  EXPECT_EQ(r->summary().instruments_newly_required(0).type(), "cn_standard_contract");
  EXPECT_EQ(r->summary().instruments_newly_required(0).jobs(), 1u);
  ASSERT_EQ(r->summary().cross_border().removed_size(), 1);
  EXPECT_EQ(r->summary().cross_border().removed(0).rule(), "cn-pi");

  // A profile the policy cannot hold is refused, naming the field.
  auto bad = Simulate(R"({"tenants": [{"id": "acme", "registered_zones": ["atlantis"]}]})");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(codec::StatusField(bad.status()), "tenants[0].registered_zones[0]");
}

TEST_F(SimulateTest, HistoryIsDecidedAgainInTheWindow) {
  Register("cn-a", "lingang-idc-1", 8);
  Register("sg-a", "singapore-1", 8);
  // Three jobs whose data lives in Singapore (so they ran there), ended.
  std::vector<std::string> ids;
  for (int i = 0; i < 3; ++i) {
    clock.Advance(absl::Seconds(1));
    v1::Job j = Spec("acme", 2);
    AddData(j, "CN", v1::Dataset::general, "singapore-1");
    v1::Job ran = Run(j);
    EXPECT_EQ(ran.allocation().site(), "singapore-1");
    ids.push_back(ran.id());
    v1::Envelope e;
    e.set_seq(++seq);
    auto* u = e.mutable_job_update();
    u->set_job_id(ran.id());
    u->set_attempt(1);
    u->set_state(v1::Job::succeeded);
    core->OnMessage("sg-a", links["sg-a"].get(), e);
    EXPECT_EQ(core->GetJob(ran.id())->state(), v1::Job::succeeded);
  }
  core->Tick();  // ended records leave memory; history reads them from the store
  const v1::Policy candidate = DenyCnToSg(policy);
  // The window holds the last two.
  const std::string since =
      absl::FormatTime(absl::RFC3339_full, base::FromProto(core->GetJob(ids[1])->submitted_at()),
                       absl::UTCTimeZone());
  auto r = Simulate(absl::StrCat(R"({"policy": )", PolicyJson(candidate),
                                 R"(, "include": ["history"], "capacity": "ignore", "since": ")",
                                 since, R"("})"));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->history_jobs(), 2u);
  EXPECT_EQ(r->active_jobs(), 0u);
  ASSERT_EQ(r->changes_size(), 2) << codec::ToJson(*r);
  for (const auto& c : r->changes()) {
    EXPECT_EQ(c.kind(), v1::SimulatedChange::moved) << c.reason();
    EXPECT_EQ(c.from().site(), "singapore-1");
    EXPECT_NE(c.to().site(), "singapore-1");
    EXPECT_EQ(c.state(), v1::Job::succeeded);
  }
  EXPECT_EQ(r->decision_classes(), 1u) << "three alike jobs are decided once per side";
  EXPECT_EQ(ChangeOf(*r, ids[0]), nullptr);

  // since/until select history only.
  auto bad = Simulate(absl::StrCat(R"({"since": ")", since, R"("})"));
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(codec::StatusField(bad.status()), "since");
}

TEST_F(SimulateTest, LimitsAreNamed) {
  Register("cn-a", "lingang-idc-1", 8);
  for (int i = 0; i < 3; ++i) Run(Spec("acme", 1));
  SimulateLimits small;
  small.max_jobs = 2;
  auto r = Simulate("{}", small);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(codec::StatusField(r.status()), "max_jobs");
  EXPECT_NE(r.status().message().find("more than 2 jobs"), std::string::npos) << r.status();
  r = Simulate(R"({"max_jobs": 3})", small);
  EXPECT_EQ(codec::StatusField(r.status()), "max_jobs") << "above the scheduler's own limit";

  SimulateLimits late;
  late.deadline = absl::ZeroDuration();
  r = Simulate("{}", late);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(codec::StatusField(r.status()), "deadline_ms");
  EXPECT_NE(r.status().message().find("deadline"), std::string::npos) << r.status();

  r = Simulate(R"({"include": ["include_unspecified"]})");
  EXPECT_EQ(codec::StatusField(r.status()), "include[0]");
  v1::Policy broken = policy;
  broken.mutable_sites(0)->set_jurisdiction("XX");
  r = Simulate(absl::StrCat(R"({"policy": )", PolicyJson(broken), "}"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(codec::StatusField(r.status()).rfind("policy", 0), 0u) << r.status();

  // max_changes lists the first changes only; the summary counts all.
  v1::Policy no_cn = policy;
  no_cn.mutable_sites()->erase(no_cn.mutable_sites()->begin());
  no_cn.clear_links();
  no_cn.add_links()->CopyFrom(policy.links(2));
  r = Simulate(absl::StrCat(R"({"max_changes": 1, "policy": )", PolicyJson(no_cn), "}"));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->summary().violations(), 3u);
  EXPECT_EQ(r->changes_size(), 1);
  EXPECT_TRUE(r->changes_truncated());
  EXPECT_NE(r->changes(0).reason().find("not in the candidate"), std::string::npos);
}

TEST_F(SimulateTest, OneSimulationAtATime) {
  Register("cn-a", "lingang-idc-1", 8);
  Run(Spec("acme", 1));
  std::atomic<bool> inside{false}, release{false};
  SimulateLimits blocking;
  blocking.on_decisions = [&](const simulate::Job&, const v1::Decision&, const v1::Decision&) {
    inside = true;
    while (!release) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  };
  std::thread first([&] { EXPECT_TRUE(Simulate("{}", blocking).ok()); });
  while (!inside) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  auto second = Simulate("{}");
  EXPECT_EQ(second.status().code(), absl::StatusCode::kResourceExhausted) << second.status();
  // Submits go on meanwhile: the snapshot is taken, the lock is free.
  EXPECT_TRUE(core->Submit(Spec("acme", 1)).ok());
  release = true;
  first.join();
  EXPECT_TRUE(Simulate("{}").ok()) << "the next one runs once the first answered";
}

// Fidelity: for random clusters, jobs and candidate policies, every job's
// simulated decision under each side is the decision `plan` returns with
// that side in force, on the same state.
TEST_F(SimulateTest, SimulatedDecisionsAreWhatPlanDecides) {
  std::mt19937 rng(20261204);
  auto pick = [&](int n) { return static_cast<int>(rng() % n); };
  const std::vector<std::string> sites = {"lingang-idc-1", "hongkong-1", "singapore-1"};
  const std::vector<std::string> regimes = {"CN", "HK", "SG"};
  for (int a = 0; a < 6; ++a) Register(absl::StrCat("agent-", a), sites[a % 3], 4);
  std::map<std::string, v1::Job> specs;  // job id -> what was submitted
  for (int i = 0; i < 40; ++i) {
    v1::Job j = Spec(pick(2) ? "acme" : "globex", 1 + pick(3));
    for (int d = pick(3); d > 0; --d)
      AddData(j, regimes[pick(3)], pick(2) ? v1::Dataset::general : v1::Dataset::personal,
              sites[pick(3)], 1000 * (1 + pick(50)));
    if (pick(3) == 0) j.mutable_placement()->add_sites(sites[pick(3)]);
    if (pick(4) == 0) (*j.mutable_placement()->mutable_max_rtt_ms())[sites[pick(3)]] = 50;
    auto s = core->Submit(j);
    ASSERT_TRUE(s.ok()) << s.status();
    specs[s->first.id()] = j;
  }
  // Some jobs end: the simulation decides them again as history.
  int cancelled = 0;
  for (const auto& [id, spec] : specs) {
    if (cancelled < 5 && core->GetJob(id)->state() == v1::Job::queued) {
      ASSERT_TRUE(core->Cancel(id).ok());
      ++cancelled;
    }
  }
  ASSERT_EQ(cancelled, 5);
  uint32_t ended = 0;
  for (const auto& [id, spec] : specs) ended += IsTerminal(core->GetJob(id)->state()) ? 1 : 0;
  auto same = [](v1::Decision a, v1::Decision b) {
    for (v1::Decision* d : {&a, &b}) {
      d->clear_decided_at();
      d->clear_policy_version();
    }
    std::string diff;
    google::protobuf::util::MessageDifferencer md;
    md.ReportDifferencesToString(&diff);
    return md.Compare(a, b) ? std::string() : diff;
  };
  const std::vector<std::string> scores = {"bin_pack", "data_gravity", "latency", "cost", "spread"};
  int compared = 0, changed = 0;
  for (int round = 0; round < 12; ++round) {
    v1::Policy candidate = policy;
    auto* w = candidate.mutable_plugins()->mutable_scores();
    w->clear();
    for (const std::string& s : scores) {
      if (pick(2)) (*w)[s] = 1 + pick(5);
    }
    if (pick(2)) {
      v1::Rule deny;
      deny.set_id("deny-some");
      deny.mutable_when()->add_origin(regimes[pick(3)]);
      deny.mutable_when()->add_destination(regimes[pick(3)]);
      deny.set_effect(v1::Rule::deny);
      Prepend(candidate, deny);
    }
    if (pick(2)) candidate.mutable_links(pick(3))->set_up(false);
    candidate.mutable_sites(pick(3))->set_price_per_core_hour(0.001 * pick(100));

    std::map<std::string, v1::Decision> base, cand;
    SimulateLimits limits;
    limits.threads = 2;
    limits.on_decisions = [&](const simulate::Job& j, const v1::Decision& b,
                              const v1::Decision& k) {
      base[j.Id()] = b;
      cand[j.Id()] = k;
    };
    v1::SimulateRequest r;
    *r.mutable_policy() = candidate;
    r.add_include(v1::SimulateRequest::active);
    r.add_include(v1::SimulateRequest::history);
    auto sim = core->Simulate(r, limits);
    ASSERT_TRUE(sim.ok()) << sim.status();
    ASSERT_EQ(sim->history_jobs(), ended);
    ASSERT_EQ(base.size(), specs.size());
    changed += sim->changes_size();
    for (const auto& [id, spec] : specs) {
      auto plan = core->Plan(spec);
      ASSERT_TRUE(plan.ok()) << plan.status();
      EXPECT_EQ(same(*plan, base[id]), "") << "in force, job " << id;
    }
    ASSERT_TRUE(core->ApplyPolicy(candidate, "test").ok());
    for (const auto& [id, spec] : specs) {
      auto plan = core->Plan(spec);
      ASSERT_TRUE(plan.ok()) << plan.status();
      EXPECT_EQ(same(*plan, cand[id]), "") << "round " << round << ", job " << id;
      ++compared;
    }
    ASSERT_TRUE(core->ApplyPolicy(policy, "test").ok());
  }
  EXPECT_EQ(compared, 12 * static_cast<int>(specs.size()));
  EXPECT_GT(changed, 0) << "the candidates changed something";
}

}  // namespace
}  // namespace portolan::scheduler
