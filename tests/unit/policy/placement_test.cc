#include "portolan/placement.h"

#include <gtest/gtest.h>

namespace portolan::placement {
namespace {

v1::Agent MakeAgent(const std::string& id, int cpus, int mem, int gpus = 0) {
  v1::Agent a;
  a.set_id(id);
  a.set_site("lingang-idc-1");
  a.set_state(v1::Agent::ready);
  a.set_connected(true);
  a.mutable_capacity()->set_cpus(cpus);
  a.mutable_capacity()->set_memory_mb(mem);
  a.mutable_capacity()->set_gpus(gpus);
  return a;
}

AgentView View(const v1::Agent& a, int used_cpus = 0, int used_mem = 0) {
  AgentView v{&a, a.capacity()};
  v.free.set_cpus(a.capacity().cpus() - used_cpus);
  v.free.set_memory_mb(a.capacity().memory_mb() - used_mem);
  return v;
}

v1::Job Job(int cpus, int mem, int gpus = 0) {
  v1::Job j;
  j.mutable_resources()->set_cpus(cpus);
  j.mutable_resources()->set_memory_mb(mem);
  j.mutable_resources()->set_gpus(gpus);
  return j;
}

std::unique_ptr<Engine> MakeEngine(EngineConfig cfg = {}) {
  Registry r;
  RegisterBuiltins(r);
  auto e = Engine::Create(r, cfg);
  EXPECT_TRUE(e.ok()) << e.status();
  return std::move(*e);
}

TEST(PlacementTest, CountsEveryRejectionReason) {
  v1::Agent small = MakeAgent("a-small", 2, 100000);
  v1::Agent full = MakeAgent("b-full", 64, 100000);
  v1::Agent cordoned = MakeAgent("c-cordoned", 64, 100000);
  cordoned.set_state(v1::Agent::cordoned);
  v1::Agent nomem = MakeAgent("d-nomem", 64, 1000);
  auto engine = MakeEngine();
  Decision d =
      engine->Place(Job(8, 4096), {View(small), View(full, 60), View(cordoned), View(nomem)});
  EXPECT_FALSE(d.feasible);
  EXPECT_EQ(d.considered, 4);
  EXPECT_EQ(d.rejected.at("insufficient_cpus"), 2);
  EXPECT_EQ(d.rejected.at("cordoned"), 1);
  EXPECT_EQ(d.rejected.at("insufficient_memory"), 1);
  EXPECT_EQ(d.Summary(), "0/4 agents: 2 insufficient_cpus, 1 cordoned, 1 insufficient_memory");
}

TEST(PlacementTest, GpuRequestNeedsFreeGpus) {
  v1::Agent cpu_only = MakeAgent("cpu", 64, 100000, 0);
  v1::Agent gpu = MakeAgent("gpu", 64, 100000, 4);
  auto engine = MakeEngine();
  AgentView gv = View(gpu);
  gv.free.set_gpus(4);
  Decision d = engine->Place(Job(4, 1024, 2), {View(cpu_only), gv});
  ASSERT_TRUE(d.feasible);
  EXPECT_EQ(d.agent_id, "gpu");
  EXPECT_EQ(d.rejected.at("insufficient_gpus"), 1);
}

TEST(PlacementTest, BinPackPrefersFullerAgentSpreadPrefersEmptier) {
  v1::Agent busy = MakeAgent("busy", 16, 16000);
  v1::Agent idle = MakeAgent("idle", 16, 16000);
  std::vector<AgentView> views = {View(busy, 8, 8000), View(idle)};
  EXPECT_EQ(MakeEngine()->Place(Job(2, 1000), views).agent_id, "busy");
  EngineConfig spread;
  spread.scores = {{"spread", 1.0}};
  EXPECT_EQ(MakeEngine(spread)->Place(Job(2, 1000), views).agent_id, "idle");
}

TEST(PlacementTest, DisconnectedAndLostAgentsAreRejected) {
  v1::Agent gone = MakeAgent("gone", 16, 16000);
  gone.set_connected(false);
  v1::Agent lost = MakeAgent("lost", 16, 16000);
  lost.set_state(v1::Agent::lost);
  Decision d = MakeEngine()->Place(Job(1, 1), {View(gone), View(lost)});
  EXPECT_FALSE(d.feasible);
  EXPECT_EQ(d.rejected.at("agent_disconnected"), 1);
  EXPECT_EQ(d.rejected.at("agent_lost"), 1);
}

TEST(PlacementTest, UnknownPluginIsAnErrorNamingKnownOnes) {
  Registry r;
  RegisterBuiltins(r);
  EngineConfig cfg;
  cfg.filters = {"agent_health", "no_such_plugin"};
  auto e = Engine::Create(r, cfg);
  ASSERT_FALSE(e.ok());
  EXPECT_NE(e.status().message().find("no_such_plugin"), absl::string_view::npos);
  EXPECT_NE(e.status().message().find("resource_fit"), absl::string_view::npos);
}

TEST(PlacementTest, SiteAffinityHonoursRequestedAndAvoidedSites) {
  v1::Agent lg = MakeAgent("lg", 16, 16000);
  v1::Agent hk = MakeAgent("hk", 16, 16000);
  hk.set_site("hongkong-1");
  v1::Agent sg = MakeAgent("sg", 16, 16000);
  sg.set_site("singapore-1");
  v1::Job j = Job(1, 100);
  j.mutable_placement()->add_sites("hongkong-1");
  Decision d = MakeEngine()->Place(j, {View(lg), View(hk), View(sg)});
  EXPECT_EQ(d.agent_id, "hk");
  EXPECT_EQ(d.rejected.at("site_not_requested"), 2);
  v1::Job avoid = Job(1, 100);
  avoid.mutable_placement()->add_avoid_sites("lingang-idc-1");
  avoid.mutable_placement()->add_avoid_sites("hongkong-1");
  d = MakeEngine()->Place(avoid, {View(lg), View(hk), View(sg)});
  EXPECT_EQ(d.agent_id, "sg");
  EXPECT_EQ(d.rejected.at("site_avoided"), 2);
}

TEST(PlacementTest, NoAgentsSummary) {
  Decision d = MakeEngine()->Place(Job(1, 1), {});
  EXPECT_FALSE(d.feasible);
  EXPECT_EQ(d.Summary(), "0/0 agents");
}

}  // namespace
}  // namespace portolan::placement
