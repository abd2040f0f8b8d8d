// SPDX-License-Identifier: Apache-2.0
// Discovery and allocation on real machines' topologies: every hwloc XML
// export in tests/data/topologies/ (from the hwloc project's own test
// collection; README.md there) and, when PORTOLAN_TOPOLOGY_CORPUS names a
// folder (say, hwloc's tests/hwloc/xml/), every *.xml in it that Debian's
// hwloc can read. Counts are checked against hwloc's API on the same file;
// then a few hundred random requests per machine are planned, committed and
// released, and each allocation is checked against the machine.
#include <gtest/gtest.h>
#include <hwloc.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <string>

#include "portolan/discovery/topology.h"
#include "portolan/topology/allocator.h"

namespace portolan::discovery {
namespace {

std::vector<std::string> CorpusFiles() {
  std::vector<std::string> files;
  std::vector<std::string> dirs = {PORTOLAN_SOURCE_DIR "/tests/data/topologies"};
  if (const char* extra = getenv("PORTOLAN_TOPOLOGY_CORPUS")) dirs.emplace_back(extra);
  for (const std::string& d : dirs) {
    for (const auto& e : std::filesystem::directory_iterator(d)) {
      if (e.path().extension() == ".xml") files.push_back(e.path().string());
    }
  }
  std::sort(files.begin(), files.end());
  return files;
}

// What hwloc itself counts in a file.
struct HwlocCounts {
  int packages = 0, numa = 0, cores = 0, pus = 0;
  std::vector<int32_t> cpuless_numa;  // no allowed PU, or a memory-only kind
};
bool CountWithHwloc(const std::string& file, HwlocCounts* c) {
  hwloc_topology_t t;
  hwloc_topology_init(&t);
  // As the agent loads it (I/O devices kept: GPUs are among them).
  hwloc_topology_set_io_types_filter(t, HWLOC_TYPE_FILTER_KEEP_IMPORTANT);
  if (hwloc_topology_set_xml(t, file.c_str()) != 0 || hwloc_topology_load(t) != 0) {
    hwloc_topology_destroy(t);
    return false;
  }
  c->packages = std::max(0, hwloc_get_nbobjs_by_type(t, HWLOC_OBJ_PACKAGE));
  c->numa = hwloc_get_nbobjs_by_type(t, HWLOC_OBJ_NUMANODE);
  for (int i = 0; i < c->numa; ++i) {
    hwloc_obj_t n = hwloc_get_obj_by_type(t, HWLOC_OBJ_NUMANODE, i);
    // A memory-only node (KNL's MCDRAM, HBM, CXL) is typed by hwloc's subtype.
    if (hwloc_bitmap_iszero(n->cpuset) ||
        (n->subtype != nullptr && std::string(n->subtype) != "DRAM")) {
      c->cpuless_numa.push_back(static_cast<int32_t>(n->os_index));
    }
  }
  c->cores = hwloc_get_nbobjs_by_type(t, HWLOC_OBJ_CORE);
  c->pus = hwloc_get_nbobjs_by_type(t, HWLOC_OBJ_PU);
  if (c->cores == 0) c->cores = c->pus;  // PUs without cores: one core per PU
  hwloc_topology_destroy(t);
  return true;
}

TEST(TopologyCorpus, CountsAgreeWithHwlocOnEveryMachine) {
  const auto files = CorpusFiles();
  ASSERT_GE(files.size(), 5u);
  for (const std::string& f : files) {
    SCOPED_TRACE(f);
    HwlocCounts want;
    if (!CountWithHwloc(f, &want)) continue;  // a file this hwloc cannot read
    auto t = DiscoverTopology({"", f});
    ASSERT_TRUE(t.ok()) << t.status();
    EXPECT_EQ(static_cast<int>(t->packages()), want.packages);
    EXPECT_EQ(t->numa_nodes_size(), want.numa);
    EXPECT_EQ(t->cores_size(), want.cores);
    EXPECT_EQ(static_cast<int>(t->pus()), want.pus);
    EXPECT_GT(t->memory_mb(), 0u);
    // Every core belongs to a NUMA node the agent lists; memory-only nodes
    // (MCDRAM, HBM, CXL) and nodes without allowed PUs hold none.
    std::set<int32_t> listed, with_cores;
    for (const auto& n : t->numa_nodes()) listed.insert(static_cast<int32_t>(n.os_index()));
    for (const auto& c : t->cores()) {
      EXPECT_EQ(listed.count(c.numa()), 1u) << "core " << c.index() << " on node " << c.numa();
      with_cores.insert(c.numa());
    }
    for (int32_t n : want.cpuless_numa) EXPECT_EQ(with_cores.count(n), 0u) << "NUMA " << n;
  }
}

TEST(TopologyCorpus, PuSetsArePrintedAsListsNotRanges) {
  auto t =
      DiscoverTopology({"", PORTOLAN_SOURCE_DIR "/tests/data/topologies/power8gpudistances.xml"});
  ASSERT_TRUE(t.ok()) << t.status();
  const std::string d = DescribeTopology(*t);
  EXPECT_NE(d.find("NUMA 0: 65380 MiB, 4 cores, PUs 0-1,8-9,16-17,24-25\n"), std::string::npos)
      << d;
  auto knl = DiscoverTopology(
      {"", PORTOLAN_SOURCE_DIR "/tests/data/topologies/64intel64-fakeKNL-SNC4-hybrid.xml"});
  ASSERT_TRUE(knl.ok());
  const std::string k = DescribeTopology(*knl);
  EXPECT_NE(k.find("NUMA 7: 2048 MiB MCDRAM, memory only (no PUs of its own), near NUMA 0\n"),
            std::string::npos)
      << k;
}

// KNL's MCDRAM nodes are memory-only, typed, and near the quadrant whose
// cores share their cpuset; DRAM nodes are neither.
TEST(TopologyCorpus, MemoryOnlyNodesCarryTheirKindAndWhereTheyAreNear) {
  auto knl = DiscoverTopology(
      {"", PORTOLAN_SOURCE_DIR "/tests/data/topologies/64intel64-fakeKNL-SNC4-hybrid.xml"});
  ASSERT_TRUE(knl.ok()) << knl.status();
  std::map<uint32_t, std::set<uint32_t>> cpus_of;  // node -> its PUs
  for (const auto& c : knl->cores()) cpus_of[c.numa()].insert(c.pus().begin(), c.pus().end());
  int mcdram = 0;
  for (const auto& n : knl->numa_nodes()) {
    SCOPED_TRACE(n.os_index());
    if (n.kind() == "DRAM") {
      EXPECT_FALSE(n.memory_only());
      EXPECT_EQ(n.near_numa_size(), 0);
      continue;
    }
    ++mcdram;
    EXPECT_EQ(n.kind(), "MCDRAM");
    EXPECT_TRUE(n.memory_only());
    ASSERT_EQ(n.near_numa_size(), 1);
    EXPECT_EQ(cpus_of[n.near_numa(0)].size(), 16u);
  }
  EXPECT_EQ(mcdram, 4);
}

TEST(TopologyCorpus, NoNumaMemorySizesFallBackToMemTotal) {
  auto t = DiscoverTopology({"", PORTOLAN_SOURCE_DIR "/tests/data/topologies/16em64t-4s2c2t.xml"});
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_GT(t->memory_mb(), 0u);
  uint64_t sum = 0;
  for (const auto& n : t->numa_nodes()) {
    EXPECT_GT(n.memory_mb(), 0u);
    sum += n.memory_mb();
  }
  EXPECT_EQ(sum, t->memory_mb());
  EXPECT_NE(t->source().find("no NUMA memory sizes: MemTotal"), std::string::npos) << t->source();
}

TEST(TopologyCorpus, GpusAreComputeDevicesOnePerPciFunctionNamedByCudaFirst) {
  auto p8 =
      DiscoverTopology({"", PORTOLAN_SOURCE_DIR "/tests/data/topologies/power8gpudistances.xml"});
  ASSERT_TRUE(p8.ok());
  ASSERT_EQ(p8->gpus_size(), 4);  // each P100 is cuda, opencl and nvml devices: one GPU
  std::set<std::string> buses;
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(p8->gpus(i).name(), "cuda" + std::to_string(i));
    buses.insert(p8->gpus(i).pci_bus_id());
  }
  EXPECT_EQ(buses.size(), 4u);
  // Memory from CUDA's global memory size, the UUID from NVML's device.
  EXPECT_EQ(p8->gpus(0).memory_mb(), 16280u);
  EXPECT_EQ(p8->gpus(0).uuid().rfind("GPU-", 0), 0u) << p8->gpus(0).uuid();
  const std::string io =
      PORTOLAN_SOURCE_DIR "/tests/data/topologies/32em64t-2n8c2t-pci-normalio.xml";
  auto both = DiscoverTopology({"", io});
  ASSERT_TRUE(both.ok());
  // The K40m (cuda0 + card0) and the Radeon (OpenCL); the two Tesla M2075
  // 3D controllers CUDA does not list (its driver no longer drives them) are
  // left out.
  ASSERT_EQ(both->gpus_size(), 2);
  EXPECT_EQ(both->gpus(0).name(), "cuda0");
  EXPECT_EQ(both->gpus(1).name(), "opencl0d1");
  // The same machine with the Radeon seen only as a DRM display device, as a
  // server's BMC VGA is: it is not offered.
  std::stringstream text;
  text << std::ifstream(io).rdbuf();
  std::string xml = text.str();
  const std::string opencl = "name=\"opencl0d1\" subtype=\"OpenCL\" osdev_type=\"5\"";
  ASSERT_NE(xml.find(opencl), std::string::npos);
  xml.replace(xml.find(opencl), opencl.size(), "name=\"card1\" osdev_type=\"1\"");
  const std::string display = ::testing::TempDir() + "/display-only.xml";
  std::ofstream(display) << xml;
  auto vga = DiscoverTopology({"", display});
  ASSERT_TRUE(vga.ok()) << vga.status();
  ASSERT_EQ(vga->gpus_size(), 1);
  EXPECT_EQ(vga->gpus(0).name(), "cuda0");
}

// `xml` with `from` replaced by `to` (which must be there), written to a file
// of the test's own; returns that file.
std::string Edited(const std::string& path, const std::string& from, const std::string& to,
                   const std::string& name) {
  std::stringstream text;
  text << std::ifstream(path).rdbuf();
  std::string xml = text.str();
  const size_t at = xml.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  if (at != std::string::npos) xml.replace(at, from.size(), to);
  const std::string out = ::testing::TempDir() + "/" + name;
  std::ofstream(out) << xml;
  return out;
}

// An H100 in a virtual machine (exported on the device machine with
// lstopo-no-graphics of Debian's hwloc 2.9 and the host's hwloc plugins):
// the card is a 3D controller on PCI 0000:00:06.0 with no OS device under
// it, and NVIDIA's OpenCL device (opencl1d0) hangs off the host bridge,
// because hwloc did not match the bus position OpenCL reported. Before, the
// agent offered "opencl1d0" with no bus id and the job given it saw no GPU.
TEST(TopologyCorpus, AGpuHwlocDidNotAttachToItsPciFunctionIsThatCard) {
  const std::string h100 =
      PORTOLAN_SOURCE_DIR "/tests/data/topologies/h100-vm-opencl-unattached.xml";
  auto t = DiscoverTopology({"", h100});
  ASSERT_TRUE(t.ok()) << t.status();
  ASSERT_EQ(t->gpus_size(), 1);
  EXPECT_EQ(t->gpus(0).pci_bus_id(), "0000:00:06.0");
  EXPECT_EQ(t->gpus(0).name(), "opencl1d0");
  EXPECT_EQ(t->gpus(0).vendor(), "nvidia");
  EXPECT_EQ(t->gpus(0).model(), "NVIDIA H100 80GB HBM3");
  EXPECT_EQ(t->gpus(0).memory_mb(), 81079u);
  EXPECT_EQ(t->gpus(0).numa(), 0);

  // Without hwloc's OpenCL plugin (Debian's libhwloc15 alone): the 3D
  // controller is the GPU, named by its bus id.
  const std::string opencl_start = "<object type=\"OSDev\" gp_index=\"94\" name=\"opencl1d0\"";
  std::stringstream text;
  text << std::ifstream(h100).rdbuf();
  const std::string xml = text.str();
  const size_t from = xml.find(opencl_start);
  ASSERT_NE(from, std::string::npos);
  const size_t to = xml.find("</object>", from) + std::string("</object>").size();
  const std::string device = xml.substr(from, to - from);
  auto bare = DiscoverTopology({"", Edited(h100, device, "", "h100-pci-only.xml")});
  ASSERT_TRUE(bare.ok()) << bare.status();
  ASSERT_EQ(bare->gpus_size(), 1);
  EXPECT_EQ(bare->gpus(0).name(), "0000:00:06.0");
  EXPECT_EQ(bare->gpus(0).pci_bus_id(), "0000:00:06.0");
  EXPECT_EQ(bare->gpus(0).vendor(), "nvidia");
  EXPECT_EQ(bare->gpus(0).memory_mb(), 0u) << "only a runtime knows the device memory";

  // Two such cards of one model and two OpenCL devices: each card gets the
  // shared facts (model, memory), no guessed name or UUID.
  const std::string card = "<object type=\"PCIDev\" gp_index=\"88\" pci_busid=\"0000:00:06.0\"";
  const size_t card_end = xml.find("/>", xml.find(card)) + 2;
  const std::string card_line = xml.substr(xml.find(card), card_end - xml.find(card));
  std::string second_card = card_line;
  second_card.replace(second_card.find("gp_index=\"88\""), 13, "gp_index=\"95\"");
  second_card.replace(second_card.find("0000:00:06.0"), 12, "0000:00:07.0");
  std::string second_device = device;
  second_device.replace(second_device.find("gp_index=\"94\""), 13, "gp_index=\"96\"");
  second_device.replace(second_device.find("opencl1d0"), 9, "opencl1d1");
  const std::string two_cards = Edited(h100, card_line, card_line + second_card, "h100x2-step.xml");
  auto two =
      DiscoverTopology({"", Edited(two_cards, device, device + second_device, "h100x2.xml")});
  ASSERT_TRUE(two.ok()) << two.status();
  ASSERT_EQ(two->gpus_size(), 2);
  for (const auto& g : two->gpus()) {
    EXPECT_EQ(g.name(), g.pci_bus_id());
    EXPECT_EQ(g.memory_mb(), 81079u);
    EXPECT_EQ(g.model(), "NVIDIA H100 80GB HBM3");
    EXPECT_TRUE(g.uuid().empty());
  }
  // Two cards and one device: which card it is cannot be told; the device is
  // left out (offering it too would count a card twice), the cards stay.
  auto unmatched = DiscoverTopology({"", two_cards});
  ASSERT_TRUE(unmatched.ok()) << unmatched.status();
  ASSERT_EQ(unmatched->gpus_size(), 2);
  EXPECT_EQ(unmatched->gpus(0).pci_bus_id(), "0000:00:06.0");
  EXPECT_EQ(unmatched->gpus(1).pci_bus_id(), "0000:00:07.0");
  EXPECT_EQ(unmatched->gpus(0).memory_mb(), 0u);
}

// Random requests on each machine: every allocation lies where its request
// says, and nothing is ever allocated twice.
TEST(TopologyCorpus, RandomAllocationsKeepTheirInvariants) {
  int checked = 0, machines = 0, kind_checked = 0, copy_answered = 0;
  for (const std::string& f : CorpusFiles()) {
    SCOPED_TRACE(f);
    auto t = DiscoverTopology({"", f});
    if (!t.ok()) continue;
    ++machines;
    std::map<uint32_t, int32_t> numa_of;
    std::map<uint32_t, std::vector<uint32_t>> siblings;
    for (const auto& c : t->cores()) {
      for (uint32_t pu : c.pus()) {
        numa_of[pu] = c.numa();
        siblings[pu] = {c.pus().begin(), c.pus().end()};
      }
    }
    std::map<std::string, int32_t> gpu_numa;
    for (const auto& g : t->gpus()) gpu_numa[topology::GpuId(g)] = g.numa();
    // Memory-only nodes and the nodes near them; a quarter of the requests
    // ask for such a kind where the machine has one.
    std::map<uint32_t, std::set<int32_t>> near;
    std::string kind;
    std::map<uint32_t, std::string> kind_of;
    for (const auto& n : t->numa_nodes()) {
      kind_of[n.os_index()] = n.kind();
      if (!n.memory_only()) continue;
      near[n.os_index()] = {n.near_numa().begin(), n.near_numa().end()};
      kind = n.kind();
    }
    topology::AgentTopology machine(*t);
    std::mt19937 rng(12345);
    std::vector<std::pair<std::string, v1::Allocation>> held;
    std::set<uint32_t> taken;
    for (int i = 0; i < 300; ++i) {
      topology::Request r;
      r.pus = 1 + static_cast<int>(rng() % std::min<uint32_t>(8, t->pus()));
      r.memory_mb = static_cast<int>(rng() % 512);
      r.gpus = t->gpus_size() > 0 ? static_cast<int>(rng() % 2) : 0;
      r.numa = static_cast<v1::TopologyRequest::Numa>(1 + rng() % 3);
      r.smt = static_cast<v1::TopologyRequest::Smt>(1 + rng() % 2);
      r.gpu_numa = static_cast<v1::TopologyRequest::Gpu::Numa>(1 + rng() % 2);
      if (!kind.empty() && rng() % 4 == 0 && r.numa != v1::TopologyRequest::spread)
        r.memory_kind = kind;
      // The copy of the counts a placement view keeps answers as the
      // machine itself does, whatever has been committed.
      const topology::FitCounts copy(machine);
      ASSERT_EQ(copy.WhyNot(r, machine), machine.WhyNot(r)) << "request " << i;
      ASSERT_DOUBLE_EQ(copy.FitScore(r, machine), machine.FitScore(r)) << "request " << i;
      copy_answered += copy.Answers(r) ? 1 : 0;
      auto a = machine.Plan(r);
      if (!a.ok()) {
        // Full: give back the oldest half and go on.
        for (size_t k = 0; k < held.size() / 2 + 1 && !held.empty(); ++k) {
          machine.Release(held.front().second, held.front().first);
          for (uint32_t pu : held.front().second.pus()) taken.erase(pu);
          held.erase(held.begin());
        }
        continue;
      }
      // smt exclusive rounds up to whole cores.
      if (r.smt == v1::TopologyRequest::exclusive) {
        ASSERT_GE(a->pus_size(), r.pus) << "request " << i;
      } else {
        ASSERT_EQ(a->pus_size(), r.pus) << "request " << i;
      }
      std::set<int32_t> nodes;
      for (uint32_t pu : a->pus()) {
        ASSERT_TRUE(numa_of.count(pu)) << "PU " << pu << " is not on the machine";
        EXPECT_EQ(taken.count(pu), 0u) << "PU " << pu << " allocated twice";
        nodes.insert(numa_of[pu]);
      }
      if (r.numa == v1::TopologyRequest::single) {
        EXPECT_EQ(nodes.size(), 1u) << "request " << i;
      }
      // Memory-only nodes hold only the memory of jobs asking for their
      // kind, all of it in one, with the job's PUs near it.
      for (const auto& [node, mb] : a->numa_memory_mb()) {
        if (r.memory_kind.empty()) {
          EXPECT_EQ(near.count(node), 0u) << "ordinary memory on memory-only node " << node;
          continue;
        }
        EXPECT_EQ(kind_of[node], r.memory_kind) << "memory on node " << node;
        EXPECT_EQ(a->numa_memory_mb().size(), 1u);
        // A kind with PUs of its own: the job's PUs are on that node.
        const std::set<int32_t> where =
            near.count(node) ? near[node] : std::set<int32_t>{static_cast<int32_t>(node)};
        if (where.empty()) continue;  // locality unknown: any node
        for (int32_t n : nodes) EXPECT_EQ(where.count(n), 1u) << "PUs on node " << n;
      }
      if (r.smt == v1::TopologyRequest::exclusive) {
        std::set<uint32_t> mine(a->pus().begin(), a->pus().end());
        for (uint32_t pu : a->pus()) {
          for (uint32_t s : siblings[pu]) EXPECT_EQ(mine.count(s), 1u) << "half a core: PU " << s;
        }
      }
      if (r.gpu_numa == v1::TopologyRequest::Gpu::local) {
        for (const std::string& g : a->gpu_ids()) {
          EXPECT_EQ(nodes.count(gpu_numa[g]), 1u) << g << " is not local to the job's nodes";
        }
      }
      const std::string job = "job-" + std::to_string(i);
      ASSERT_TRUE(machine.Commit(*a, job).ok()) << "request " << i;
      taken.insert(a->pus().begin(), a->pus().end());
      held.emplace_back(job, *a);
      ++checked;
      kind_checked += r.memory_kind.empty() ? 0 : 1;
    }
    EXPECT_EQ(machine.total_pus() - machine.free_pus(), static_cast<int>(taken.size()));
  }
  EXPECT_GT(checked, 1000);
  EXPECT_GT(kind_checked, 10) << "KNL's MCDRAM was asked for";
  EXPECT_GT(copy_answered, 500) << "the copies answered without their machine";
  std::cout << "checked " << checked << " allocations on " << machines << " machine(s), "
            << kind_checked << " of them for a memory kind; the copied counts answered "
            << copy_answered << " requests alone\n";
}

}  // namespace
}  // namespace portolan::discovery
