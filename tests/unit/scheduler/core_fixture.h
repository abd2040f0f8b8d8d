// SPDX-License-Identifier: Apache-2.0
#pragma once

// The fixture of the core's unit tests (core_test.cc, workload_test.cc): a
// Core on the in-memory store and a fake clock, with a two-site policy,
// agents registered over fake links, and job updates sent as an agent would.
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "portolan/codec/codec.h"
#include "portolan/scheduler/core.h"
#include "support/fake_agent_link.h"
#include "support/fake_clock.h"
#include "support/memory_store.h"

namespace portolan::scheduler {

using testing::FakeLink;

inline const char* kPolicy = R"(
jurisdictions: [CN, SG]
instrument_types: [cn_standard_contract]
sites:
  - {id: lingang-idc-1, jurisdiction: CN}
  - {id: singapore-1, jurisdiction: SG}
links:
  - {id: sjc2, a: lingang-idc-1, b: singapore-1, rtt_ms: 65, gbps: 100}
rules:
  - {id: same-regime, when: {export: false}, effect: allow}
  - {id: cn-pi, when: {origin: [CN], export: true, categories: [personal]}, effect: require,
     require_any: [cn_standard_contract]}
default_effect: allow
plugins:
  filters: [site_affinity, residency, latency_limit, agent_health, resource_fit]
  scores: {bin_pack: 1, data_gravity: 1}
)";

class CoreTest : public ::testing::Test {
 protected:
  CoreTest() {
    placement::RegisterBuiltins(registry);
    opts.agent_ttl = absl::Seconds(15);
    opts.resend_interval = absl::Seconds(2);
    core = std::make_unique<Core>(opts, &store, &clock, &registry);
    EXPECT_TRUE(core->Recover().ok());
    v1::Policy p;
    EXPECT_TRUE(codec::ParseYaml(kPolicy, &p).ok());
    auto v = core->ApplyPolicy(p, "test");
    EXPECT_TRUE(v.ok()) << v.status();
  }

  std::shared_ptr<FakeLink> Register(const std::string& id, uint32_t pus = 8,
                                     std::vector<v1::AgentJobStatus> jobs = {},
                                     const std::string& site = "lingang-idc-1",
                                     uint32_t numa_nodes = 1) {
    auto link = std::make_shared<FakeLink>();
    v1::Register reg = testing::SimpleRegister(id, pus, site, numa_nodes);
    for (auto& j : jobs) *reg.add_jobs() = j;
    EXPECT_TRUE(core->OnRegister(reg, link, "127.0.0.1:1"));
    return link;
  }

  // The test policy with the hardware plugins on: topology_fit and numa_fit.
  void ApplyPolicyWithTopologyPlugins() {
    v1::Policy p;
    ASSERT_TRUE(codec::ParseYaml(kPolicy, &p).ok());
    p.mutable_plugins()->add_filters("topology_fit");
    (*p.mutable_plugins()->mutable_scores())["numa_fit"] = 1;
    ASSERT_TRUE(core->ApplyPolicy(p, "test").ok());
  }

  v1::Job Spec(int cpus = 2) {
    v1::Job j;
    j.add_command("/bin/true");
    j.mutable_resources()->set_cpus(cpus);
    j.mutable_resources()->set_memory_mb(128);
    return j;
  }

  void Update(const std::string& agent, const FakeLink* link, const std::string& job,
              v1::Job::State s, uint32_t attempt = 1, int exit_code = 0) {
    v1::Envelope e;
    e.set_seq(++agent_seq);
    auto* u = e.mutable_job_update();
    u->set_job_id(job);
    u->set_attempt(attempt);
    u->set_state(s);
    u->set_exit_code(exit_code);
    u->set_message("from test");
    core->OnMessage(agent, link, e);
  }

  void Ack(const std::string& agent, const FakeLink* link, uint64_t seq) {
    v1::Envelope e;
    e.mutable_ack()->set_seq(seq);
    core->OnMessage(agent, link, e);
  }

  placement::Registry registry;
  testing::FakeClock clock;
  testing::MemoryStore store;
  CoreOptions opts;
  std::unique_ptr<Core> core;
  uint64_t agent_seq = 0;
};

}  // namespace portolan::scheduler
