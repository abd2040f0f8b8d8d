// SPDX-License-Identifier: Apache-2.0
#include "portolan/topology/allocator.h"

#include <gtest/gtest.h>

#include <map>
#include <random>
#include <set>

#include "portolan/discovery/topology.h"

namespace portolan::topology {
namespace {

// Real hwloc on synthetic descriptions: the same code path as an agent.
v1::Topology Synthetic(const std::string& s) {
  auto t = discovery::DiscoverTopology({s, ""});
  EXPECT_TRUE(t.ok()) << t.status();
  return *t;
}

// 2 packages x 2 NUMA nodes x 16 cores x 2 PUs, 64 GiB per node, one L3 per node.
v1::Topology TwoSocket() { return Synthetic("pack:2 numa:2(memory=64GiB) l3:1 core:16 pu:2"); }

// Adds `n` GPUs on NUMA node `numa` (hwloc's synthetic format has no I/O devices).
void AddGpus(v1::Topology& t, int n, int numa, int first) {
  for (int i = 0; i < n; ++i) {
    v1::Gpu* g = t.add_gpus();
    g->set_name("cuda" + std::to_string(first + i));
    g->set_vendor("nvidia");
    g->set_numa(numa);
  }
}

Request Req(int pus, int mem = 1024, v1::TopologyRequest::Numa numa = v1::TopologyRequest::any,
            v1::TopologyRequest::Smt smt = v1::TopologyRequest::shared, int gpus = 0,
            v1::TopologyRequest::Gpu::Numa gpu_numa = v1::TopologyRequest::Gpu::any) {
  Request r;
  r.pus = pus;
  r.memory_mb = mem;
  r.numa = numa;
  r.smt = smt;
  r.gpus = gpus;
  r.gpu_numa = gpu_numa;
  return r;
}

TEST(TopologyAllocTest, SingleNumaKeepsEverythingInOneNode) {
  AgentTopology t(TwoSocket());
  EXPECT_EQ(t.total_pus(), 128);
  auto a = t.Plan(Req(24, 32768, v1::TopologyRequest::single));
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_EQ(a->numa_nodes_size(), 1);
  EXPECT_EQ(a->pus_size(), 24);
  const uint32_t node = a->numa_nodes(0);
  for (uint32_t pu : a->pus())
    EXPECT_EQ(pu / 32, node) << "PU " << pu << " outside NUMA node " << node;
  EXPECT_EQ(a->numa_memory_mb().at(node), 32768);
}

TEST(TopologyAllocTest, SingleNumaLargerThanAnyNodeCanNeverFit) {
  AgentTopology t(TwoSocket());
  Request r = Req(40, 1024, v1::TopologyRequest::single);
  EXPECT_FALSE(t.CouldEverFit(r));
  EXPECT_EQ(t.NeverFitReason(r), "numa single: a NUMA node has at most 32 PUs, the job needs 40");
  EXPECT_EQ(t.WhyNot(r), "numa_single_no_fit");
  EXPECT_TRUE(t.Plan(Req(40)).ok()) << "numa any may span nodes";
}

TEST(TopologyAllocTest, BestFitKeepsWholeNodesFree) {
  AgentTopology t(TwoSocket());
  // Fill node 0 partly; a later 8-PU single job goes to node 0, not a fresh node.
  auto first = t.Plan(Req(20, 1024, v1::TopologyRequest::single));
  ASSERT_TRUE(first.ok());
  ASSERT_TRUE(t.Commit(*first, "j1").ok());
  const uint32_t used = first->numa_nodes(0);
  auto second = t.Plan(Req(8, 1024, v1::TopologyRequest::single));
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(second->numa_nodes(0), used);
  EXPECT_GT(t.FitScore(Req(8, 1024, v1::TopologyRequest::single)),
            t.FitScore(Req(2, 1024, v1::TopologyRequest::single)))
      << "a tighter fit scores higher";
}

TEST(TopologyAllocTest, SmtExclusiveTakesWholeCoresAndSharedFillsHalfCores) {
  AgentTopology t(TwoSocket());
  auto ex = t.Plan(Req(3, 1024, v1::TopologyRequest::any, v1::TopologyRequest::exclusive));
  ASSERT_TRUE(ex.ok());
  EXPECT_EQ(ex->pus_size(), 4) << "3 PUs exclusive = 2 whole cores";
  std::set<uint32_t> cores;
  for (uint32_t pu : ex->pus()) cores.insert(pu / 2);
  EXPECT_EQ(cores.size(), 2u);
  // A shared 1-PU job next to it takes half of a core, and the next shared one
  // fills the other half rather than opening a new core.
  ASSERT_TRUE(t.Commit(*ex, "ex").ok());
  auto s1 = t.Plan(Req(1));
  ASSERT_TRUE(t.Commit(*s1, "s1").ok());
  auto s2 = t.Plan(Req(1));
  ASSERT_TRUE(s2.ok());
  EXPECT_EQ(s1->pus(0) / 2, s2->pus(0) / 2) << "same core";
  // Exclusive jobs never take that half-used core.
  ASSERT_TRUE(t.Commit(*s2, "s2").ok());
  auto s3 = t.Plan(Req(1));
  ASSERT_TRUE(t.Commit(*s3, "s3").ok());
  auto ex2 = t.Plan(Req(2, 1024, v1::TopologyRequest::any, v1::TopologyRequest::exclusive));
  ASSERT_TRUE(ex2.ok());
  for (uint32_t pu : ex2->pus()) EXPECT_NE(pu / 2, s3->pus(0) / 2);
}

TEST(TopologyAllocTest, GpuLocality) {
  v1::Topology topo = TwoSocket();
  AddGpus(topo, 4, 0, 0);  // cuda0-3 on NUMA 0
  AddGpus(topo, 4, 2, 4);  // cuda4-7 on NUMA 2
  AgentTopology t(topo);
  auto a = t.Plan(Req(8, 1024, v1::TopologyRequest::single, v1::TopologyRequest::shared, 2,
                      v1::TopologyRequest::Gpu::local));
  ASSERT_TRUE(a.ok()) << a.status();
  const uint32_t node = a->numa_nodes(0);
  EXPECT_TRUE(node == 0 || node == 2) << "only nodes 0 and 2 have GPUs";
  for (const std::string& g : a->gpu_ids()) {
    int idx = std::stoi(g.substr(4));
    EXPECT_EQ(node == 0, idx < 4) << g << " is not local to node " << node;
  }
  // Five local GPUs exist on no node.
  Request five = Req(2, 1024, v1::TopologyRequest::single, v1::TopologyRequest::shared, 5,
                     v1::TopologyRequest::Gpu::local);
  EXPECT_FALSE(t.CouldEverFit(five));
  five.gpu_numa = v1::TopologyRequest::Gpu::any;
  EXPECT_TRUE(t.Plan(five).ok()) << "gpu_numa any may use remote GPUs";
  // With node 0's GPUs taken, a local request lands on node 2.
  ASSERT_TRUE(t.Commit(*a, "g1").ok());
  v1::Allocation hold;
  for (int i = 0; i < 4; ++i) {
    std::string name = "cuda" + std::to_string(node == 0 ? i : i + 4);
    if (std::find(a->gpu_ids().begin(), a->gpu_ids().end(), name) == a->gpu_ids().end())
      hold.add_gpu_ids(name);
  }
  ASSERT_TRUE(t.Commit(hold, "hold").ok());
  auto b = t.Plan(Req(4, 1024, v1::TopologyRequest::any, v1::TopologyRequest::shared, 1,
                      v1::TopologyRequest::Gpu::local));
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_NE(b->numa_nodes(0), node);
}

TEST(TopologyAllocTest, AsymmetricNumaAndSpread) {
  v1::Topology topo;
  topo.set_pus(12);
  topo.set_memory_mb(3000);
  auto* n0 = topo.add_numa_nodes();
  n0->set_os_index(0);
  n0->set_memory_mb(2000);
  auto* n1 = topo.add_numa_nodes();
  n1->set_os_index(1);
  n1->set_memory_mb(1000);
  for (int c = 0; c < 6; ++c) {  // 4 cores on node 0, 2 on node 1
    v1::Core* core = topo.add_cores();
    core->set_index(c);
    core->set_numa(c < 4 ? 0 : 1);
    core->set_l3(c < 4 ? 0 : 1);
    core->add_pus(2 * c);
    core->add_pus(2 * c + 1);
  }
  AgentTopology t(topo);
  EXPECT_EQ(t.free_memory_mb(), 3000);
  auto small = t.Plan(Req(4, 800, v1::TopologyRequest::single));
  ASSERT_TRUE(small.ok());
  EXPECT_EQ(small->numa_nodes(0), 1u) << "best fit: the small node is filled exactly";
  EXPECT_FALSE(t.Plan(Req(4, 2500, v1::TopologyRequest::spread)).ok())
      << "node 1 cannot hold half of 2500 MiB";
  auto sp = t.Plan(Req(4, 1000, v1::TopologyRequest::spread));
  ASSERT_TRUE(sp.ok());
  EXPECT_EQ(sp->numa_nodes_size(), 2);
  EXPECT_EQ(sp->numa_memory_mb().at(0), 500);
  EXPECT_EQ(sp->numa_memory_mb().at(1), 500);
}

TEST(TopologyAllocTest, CommitRefusesDoubleAllocationAndReleaseReturnsEverything) {
  v1::Topology topo = TwoSocket();
  AddGpus(topo, 2, 0, 0);
  AgentTopology t(topo);
  auto a = t.Plan(Req(6, 4096, v1::TopologyRequest::any, v1::TopologyRequest::shared, 1));
  ASSERT_TRUE(t.Commit(*a, "j1").ok());
  EXPECT_EQ(t.free_pus(), 122);
  EXPECT_FALSE(t.Commit(*a, "j2").ok()) << "the same PUs twice";
  EXPECT_EQ(t.free_pus(), 122) << "a refused commit changes nothing";
  v1::Agent view;
  t.Describe(&view);
  EXPECT_EQ(view.pu_jobs().size(), 6u);
  EXPECT_EQ(view.gpu_jobs().begin()->second, "j1");
  t.Release(*a, "j1");
  t.Release(*a, "j1");  // idempotent
  EXPECT_EQ(t.free_pus(), 128);
  EXPECT_EQ(t.free_memory_mb(), t.total_memory_mb());
  EXPECT_EQ(t.free_gpus(), 2);
}

TEST(TopologyAllocTest, IgnoresPusAboveTheSupportedOsIndex) {
  // The scheduler refuses such topologies at registration; the allocator
  // itself must still not size its per-PU tables by a hostile index.
  v1::Topology topo;
  topo.set_memory_mb(1024);
  v1::Core* c = topo.add_cores();
  c->add_pus(0);
  c->add_pus(4000000000u);
  topo.add_cores()->add_pus(AgentTopology::kMaxPuIndex + 1);
  topo.set_pus(3);
  AgentTopology t(topo);
  EXPECT_EQ(t.total_pus(), 1);
  auto a = t.Plan(Req(1, 64));
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->pus(0), 0u);
  EXPECT_FALSE(t.CouldEverFit(Req(2, 64)));
}

// Property: for thousands of random job streams, no PU, MiB or GPU is ever
// held twice, accounting matches the allocations, and all is free at the end.
TEST(TopologyAllocTest, RandomStreamsNeverDoubleAllocate) {
  v1::Topology topo = TwoSocket();
  AddGpus(topo, 4, 0, 0);
  AddGpus(topo, 4, 2, 4);
  std::mt19937 rng(7);
  const auto numas = {v1::TopologyRequest::any, v1::TopologyRequest::single,
                      v1::TopologyRequest::spread};
  int placed_total = 0;
  for (int stream = 0; stream < 2000; ++stream) {
    AgentTopology t(topo);
    std::map<std::string, v1::Allocation> live;
    for (int step = 0; step < 40; ++step) {
      if (!live.empty() && rng() % 3 == 0) {
        auto it = std::next(live.begin(), rng() % live.size());
        t.Release(it->second, it->first);
        live.erase(it);
        continue;
      }
      Request r = Req(1 + rng() % 24, 256 * (1 + rng() % 64), *(numas.begin() + rng() % 3),
                      rng() % 2 ? v1::TopologyRequest::exclusive : v1::TopologyRequest::shared,
                      rng() % 4 == 0 ? 1 + rng() % 3 : 0,
                      rng() % 2 ? v1::TopologyRequest::Gpu::local : v1::TopologyRequest::Gpu::any);
      const bool fits = t.WhyNot(r).empty();
      auto a = t.Plan(r);
      ASSERT_EQ(fits, a.ok()) << "WhyNot and Plan disagree: "
                              << (a.ok() ? "" : a.status().message());
      if (!a.ok()) continue;
      ASSERT_GE(a->pus_size(), r.pus);
      std::string job = "j" + std::to_string(step);
      ASSERT_TRUE(t.Commit(*a, job).ok());
      live[job] = *a;
      ++placed_total;
    }
    // Invariants: owners in the view match the live allocations exactly.
    v1::Agent view;
    t.Describe(&view);
    size_t held_pus = 0, held_gpus = 0;
    int held_mem = 0;
    std::set<uint32_t> all;
    for (const auto& [job, a] : live) {
      for (uint32_t pu : a.pus()) {
        ASSERT_TRUE(all.insert(pu).second) << "PU " << pu << " allocated twice";
        ASSERT_EQ(view.pu_jobs().at(pu), job);
      }
      held_pus += a.pus_size();
      held_gpus += a.gpu_ids_size();
      for (const auto& [n, m] : a.numa_memory_mb()) held_mem += m;
    }
    ASSERT_EQ(view.pu_jobs().size(), held_pus);
    ASSERT_EQ(view.gpu_jobs().size(), held_gpus);
    ASSERT_EQ(t.free_pus(), 128 - static_cast<int>(held_pus));
    ASSERT_EQ(t.free_memory_mb(), t.total_memory_mb() - held_mem);
    for (const auto& [job, a] : live) t.Release(a, job);
    ASSERT_EQ(t.free_pus(), 128);
    ASSERT_EQ(t.free_memory_mb(), t.total_memory_mb());
    ASSERT_EQ(t.free_gpus(), 8);
  }
  EXPECT_GT(placed_total, 20000) << "the streams should exercise many placements";
}

}  // namespace
}  // namespace portolan::topology

namespace portolan::topology {
namespace {

// KNL in SNC-4 hybrid mode, from hwloc's test collection: four quadrants,
// each a DRAM node (1 GiB, 16 PUs) and a memory-only MCDRAM node (2 GiB).
v1::Topology Knl() {
  auto t = discovery::DiscoverTopology(
      {"", PORTOLAN_SOURCE_DIR "/tests/data/topologies/64intel64-fakeKNL-SNC4-hybrid.xml"});
  EXPECT_TRUE(t.ok()) << t.status();
  return *t;
}

// The DRAM node (OS index) whose PUs a memory-only node is near.
std::map<uint32_t, std::set<uint32_t>> NearOf(const v1::Topology& t) {
  std::map<uint32_t, std::set<uint32_t>> near;
  for (const auto& n : t.numa_nodes()) {
    if (n.memory_only()) near[n.os_index()] = {n.near_numa().begin(), n.near_numa().end()};
  }
  return near;
}

std::map<uint32_t, uint32_t> NumaOfPu(const v1::Topology& t) {
  std::map<uint32_t, uint32_t> out;
  for (const auto& c : t.cores()) {
    for (uint32_t pu : c.pus()) out[pu] = static_cast<uint32_t>(c.numa());
  }
  return out;
}

TEST(TopologyAllocTest, MemoryOnlyNodesServeNoOrdinaryJob) {
  const v1::Topology topo = Knl();
  AgentTopology t(topo);
  // 4 GiB of DRAM in all; the 8 GiB of MCDRAM is not ordinary memory.
  EXPECT_EQ(t.total_memory_mb(), 4096);
  EXPECT_EQ(t.free_memory_mb(), 4096);
  Request big = Req(4, 5000);
  EXPECT_EQ(t.WhyNot(big), "insufficient_memory");
  EXPECT_EQ(t.NeverFitReason(big), "the machine has 4096 MiB, the job needs 5000");
  // A numa-any job spilling past one node's DRAM takes DRAM elsewhere, never MCDRAM.
  auto spill = t.Plan(Req(4, 3000));
  ASSERT_TRUE(spill.ok()) << spill.status();
  for (const auto& [node, mb] : spill->numa_memory_mb()) {
    EXPECT_FALSE(NearOf(topo).count(node)) << "memory on memory-only node " << node;
  }
  // Spread goes over the four nodes with PUs, not all eight.
  auto spread = t.Plan(Req(8, 400, v1::TopologyRequest::spread));
  ASSERT_TRUE(spread.ok()) << spread.status();
  std::set<uint32_t> nodes;
  for (uint32_t pu : spread->pus()) nodes.insert(NumaOfPu(topo).at(pu));
  EXPECT_EQ(nodes.size(), 4u);
}

TEST(TopologyAllocTest, MemoryKindTakesThatMemoryAndThePusNearIt) {
  const v1::Topology topo = Knl();
  AgentTopology t(topo);
  const auto near = NearOf(topo);
  ASSERT_EQ(near.size(), 4u);
  for (const auto& [node, dram] : near) EXPECT_EQ(dram.size(), 1u) << "MCDRAM " << node;
  Request r = Req(8, 1500, v1::TopologyRequest::single);
  r.memory_kind = "MCDRAM";
  EXPECT_TRUE(t.CouldEverFit(r)) << t.NeverFitReason(r);
  EXPECT_EQ(t.WhyNot(r), "");
  auto a = t.Plan(r);
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_EQ(a->numa_memory_mb().size(), 1u);
  const uint32_t mem = a->numa_memory_mb().begin()->first;
  ASSERT_TRUE(near.count(mem)) << "memory on " << mem << ", not an MCDRAM node";
  EXPECT_EQ(a->numa_memory_mb().at(mem), 1500);
  ASSERT_EQ(a->numa_nodes_size(), 1);
  EXPECT_EQ(a->numa_nodes(0), mem) << "memory is bound to the MCDRAM node alone";
  for (uint32_t pu : a->pus()) EXPECT_EQ(near.at(mem).count(NumaOfPu(topo).at(pu)), 1u) << pu;
  ASSERT_TRUE(t.Commit(*a, "hbm1").ok());
  EXPECT_EQ(t.free_memory_mb(), 4096) << "ordinary memory untouched";
  // The same MCDRAM node has 548 MiB left: the next 1500 MiB goes elsewhere.
  auto b = t.Plan(r);
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_NE(b->numa_memory_mb().begin()->first, mem);
  // Case does not matter; a kind the machine lacks, or more than one node
  // holds, can never fit, and says why.
  r.memory_kind = "mcdram";
  EXPECT_TRUE(t.Plan(r).ok());
  r.memory_kind = "HBM";
  EXPECT_EQ(t.WhyNot(r), "memory_kind_no_fit");
  EXPECT_EQ(t.NeverFitReason(r),
            "memory_kind HBM: the machine has no NUMA node of that kind (DRAM, MCDRAM)");
  r.memory_kind = "MCDRAM";
  r.memory_mb = 3000;
  EXPECT_EQ(
      t.NeverFitReason(r),
      "memory_kind MCDRAM: a NUMA node of that kind has at most 2048 MiB, the job needs 3000");
  r.memory_mb = 100;
  r.pus = 20;
  EXPECT_EQ(t.NeverFitReason(r),
            "memory_kind MCDRAM: at most 16 PUs are near it in one NUMA node, the job needs 20");
  r.numa = v1::TopologyRequest::any;
  EXPECT_EQ(t.NeverFitReason(r),
            "memory_kind MCDRAM: at most 16 PUs are near it, the job needs 20");
  // A release gives the MCDRAM back.
  t.Release(*a, "hbm1");
  v1::Agent view;
  t.Describe(&view);
  EXPECT_EQ(view.numa_free_memory_mb().at(mem), 2048);
}

TEST(TopologyAllocTest, GpusAreAllocatedByPciBusIdAndOldNamesStillCommit) {
  v1::Topology topo = TwoSocket();
  AddGpus(topo, 2, 0, 0);
  topo.mutable_gpus(0)->set_pci_bus_id("0000:3b:00.0");
  AgentTopology t(topo);
  auto a = t.Plan(Req(1, 64, v1::TopologyRequest::any, v1::TopologyRequest::shared, 2));
  ASSERT_TRUE(a.ok()) << a.status();
  std::set<std::string> ids(a->gpu_ids().begin(), a->gpu_ids().end());
  EXPECT_EQ(ids, (std::set<std::string>{"0000:3b:00.0", "cuda1"}));
  // An allocation recorded before GPUs had stable ids names hwloc's device.
  v1::Allocation old;
  old.add_gpu_ids("cuda0");
  ASSERT_TRUE(t.Commit(old, "old").ok());
  v1::Agent view;
  t.Describe(&view);
  EXPECT_EQ(view.gpu_jobs().at("0000:3b:00.0"), "old");
}

}  // namespace
}  // namespace portolan::topology
