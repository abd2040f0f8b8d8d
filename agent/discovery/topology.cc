// SPDX-License-Identifier: Apache-2.0
#include "portolan/discovery/topology.h"

#include <fstream>

#include <hwloc.h>

#include <iterator>
#include <map>
#include <memory>
#include <set>
#include <string_view>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "agent/discovery/gpus.h"
#include "agent/discovery/hwloc_util.h"
#include "portolan/base/strings.h"
#include "spdlog/spdlog.h"

namespace portolan::discovery {
namespace {

struct TopologyDeleter {
  void operator()(hwloc_topology_t t) const { hwloc_topology_destroy(t); }
};
using TopologyPtr = std::unique_ptr<hwloc_topology, TopologyDeleter>;

bool IsDram(hwloc_obj_t numa) {
  return numa->subtype == nullptr || std::string_view(numa->subtype) == "DRAM";
}

// The NUMA node a core (or PU) belongs to: of the nodes this topology lists
// (the allowed set) local to it, an ordinary DRAM node before a memory-only
// kind (KNL's MCDRAM, HBM), then the lowest OS index. A core whose local
// nodes are all outside the allowed set gets the nearest listed node up its
// ancestry (or, with none, the first listed node), so it is never tied to
// a node the agent does not offer.
int CoreNuma(hwloc_topology_t raw, hwloc_obj_t obj) {
  int best = -1;
  bool best_dram = false;
  hwloc_obj_t n = nullptr;
  while ((n = hwloc_get_next_obj_by_type(raw, HWLOC_OBJ_NUMANODE, n)) != nullptr) {
    if (obj->nodeset == nullptr || !hwloc_bitmap_isset(obj->nodeset, n->os_index)) continue;
    const bool dram = IsDram(n);
    const int idx = static_cast<int>(n->os_index);
    if (best < 0 || (dram && !best_dram) || (dram == best_dram && idx < best)) {
      best = idx;
      best_dram = dram;
    }
  }
  if (best >= 0) return best;
  for (hwloc_obj_t a = obj->parent; a != nullptr; a = a->parent) {
    for (hwloc_obj_t m = a->memory_first_child; m != nullptr; m = m->next_sibling) {
      while (m->type == HWLOC_OBJ_MEMCACHE && m->memory_first_child != nullptr) {
        m = m->memory_first_child;
      }
      if (m->type == HWLOC_OBJ_NUMANODE) return static_cast<int>(m->os_index);
    }
  }
  // All its memory is outside the allowed set: every listed node is remote
  // to it; take the first, as the allocator would.
  hwloc_obj_t first = hwloc_get_obj_by_type(raw, HWLOC_OBJ_NUMANODE, 0);
  return first != nullptr ? static_cast<int>(first->os_index) : -1;
}

// Each NUMA node's kind (hwloc's subtype, "DRAM" when none), and for a node
// no core belongs to (HBM, MCDRAM, CXL memory, or DRAM whose PUs are all
// outside the allowed set): memory_only, with the listed nodes whose cores
// lie in its cpuset as near_numa. Runs once the cores know their nodes.
void DescribeNumaKinds(hwloc_topology_t raw, v1::Topology& t) {
  std::set<int32_t> with_pus;
  for (const v1::Core& c : t.cores()) with_pus.insert(c.numa());
  for (int i = 0; i < t.numa_nodes_size(); ++i) {
    hwloc_obj_t n = hwloc_get_obj_by_type(raw, HWLOC_OBJ_NUMANODE, static_cast<unsigned>(i));
    v1::NumaNode& node = *t.mutable_numa_nodes(i);
    node.set_kind(n->subtype != nullptr ? n->subtype : "DRAM");
    if (with_pus.count(static_cast<int32_t>(node.os_index())) != 0) continue;
    node.set_memory_only(true);
    std::set<uint32_t> near;
    for (const v1::Core& c : t.cores()) {
      if (c.numa() >= 0 && c.pus_size() > 0 && n->cpuset != nullptr &&
          hwloc_bitmap_isset(n->cpuset, c.pus(0))) {
        near.insert(static_cast<uint32_t>(c.numa()));
      }
    }
    for (uint32_t x : near) node.add_near_numa(x);
  }
}

uint64_t MeminfoKib(const char* key) {
  std::ifstream meminfo("/proc/meminfo");
  std::string k;
  uint64_t kb = 0;
  while (meminfo >> k >> kb) {
    if (k == key) return kb;
    meminfo.ignore(64, '\n');
  }
  return 0;
}

// Some virtual machines and containers report no NUMA memory sizes at all:
// this host's MemTotal is then spread evenly over the NUMA nodes (the
// source says so, and a warning is logged) rather than refusing the host.
void SpreadMemTotalIfNoneFound(hwloc_obj_t root, v1::Topology& t) {
  if (root->total_memory != 0 || t.numa_nodes_size() == 0) return;
  const uint64_t total_mb = MeminfoKib("MemTotal:") >> 10;
  if (total_mb == 0) return;
  const uint64_t per_node = total_mb / static_cast<uint64_t>(t.numa_nodes_size());
  for (v1::NumaNode& n : *t.mutable_numa_nodes()) n.set_memory_mb(static_cast<uint32_t>(per_node));
  t.set_memory_mb(static_cast<uint32_t>(per_node * static_cast<uint64_t>(t.numa_nodes_size())));
  t.set_source(absl::StrCat(t.source(), " (no NUMA memory sizes: MemTotal ", total_mb,
                            " MiB spread over ", t.numa_nodes_size(), " node(s))"));
  spdlog::warn(
      "topology: hwloc reports no memory for any NUMA node; using MemTotal ({} MiB) "
      "spread evenly over {} node(s)",
      total_mb, t.numa_nodes_size());
}

}  // namespace

// The machine's PUs and NUMA nodes that the loaded topology does not hold
// (hwloc leaves out what is outside the process's cpuset, and offline PUs),
// as lists; "" when none.
std::string LeftOut(hwloc_topology_t raw) {
  auto list = [](hwloc_const_bitmap_t complete, hwloc_const_bitmap_t kept) {
    hwloc_bitmap_t missing = hwloc_bitmap_alloc();
    hwloc_bitmap_andnot(missing, complete, kept);
    std::string out;
    if (!hwloc_bitmap_iszero(missing)) {
      char* text = nullptr;
      if (hwloc_bitmap_list_asprintf(&text, missing) >= 0 && text != nullptr) out = text;
      free(text);
    }
    hwloc_bitmap_free(missing);
    return out;
  };
  const std::string pus =
      list(hwloc_topology_get_complete_cpuset(raw), hwloc_topology_get_topology_cpuset(raw));
  const std::string nodes =
      list(hwloc_topology_get_complete_nodeset(raw), hwloc_topology_get_topology_nodeset(raw));
  if (pus.empty() && nodes.empty()) return "";
  std::string what = pus.empty() ? "" : absl::StrCat("PUs ", pus);
  if (!nodes.empty()) absl::StrAppend(&what, what.empty() ? "" : " and ", "NUMA nodes ", nodes);
  return absl::StrCat(what,
                      ": offline or outside this process's cpuset (its cgroup), so not offered "
                      "to jobs");
}

absl::StatusOr<v1::Topology> DiscoverTopology(const TopologySource& source, std::string* left_out) {
  if (!source.synthetic.empty() && !source.xml_file.empty()) {
    return absl::InvalidArgumentError(
        "use either --topology-synthetic or --topology-xml, not both");
  }
  hwloc_topology_t raw = nullptr;
  if (hwloc_topology_init(&raw) != 0) return absl::InternalError("hwloc_topology_init failed");
  TopologyPtr topo(raw);
  std::string label = "hwloc";
  if (!source.synthetic.empty()) {
    label = absl::StrCat("synthetic:", source.synthetic);
    if (hwloc_topology_set_synthetic(raw, source.synthetic.c_str()) != 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--topology-synthetic \"", source.synthetic,
          "\" is not a valid hwloc synthetic description (example: \"pack:2 numa:2 core:16 pu:2\", "
          "memory per NUMA node as \"numa:2(memory=64GB)\")"));
    }
  } else if (!source.xml_file.empty()) {
    label = absl::StrCat("xml:", source.xml_file);
    if (hwloc_topology_set_xml(raw, source.xml_file.c_str()) != 0) {
      return absl::InvalidArgumentError(absl::StrCat("--topology-xml ", source.xml_file,
                                                     ": not a readable hwloc XML topology (",
                                                     strerror(errno), ")"));
    }
  }
  hwloc_topology_set_io_types_filter(raw, HWLOC_TYPE_FILTER_KEEP_IMPORTANT);
  if (hwloc_topology_load(raw) != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(label, ": hwloc could not load the topology (", strerror(errno), ")"));
  }

  if (left_out != nullptr) *left_out = LeftOut(raw);
  v1::Topology t;
  t.set_source(label);
  t.set_packages(
      static_cast<uint32_t>(std::max(0, hwloc_get_nbobjs_by_type(raw, HWLOC_OBJ_PACKAGE))));
  hwloc_obj_t root = hwloc_get_root_obj(raw);
  t.set_memory_mb(static_cast<uint32_t>(root->total_memory >> 20));
  t.set_machine_model(Info(root, "DMIProductName"));

  const int numa_count = hwloc_get_nbobjs_by_type(raw, HWLOC_OBJ_NUMANODE);
  for (int i = 0; i < numa_count; ++i) {
    hwloc_obj_t n = hwloc_get_obj_by_type(raw, HWLOC_OBJ_NUMANODE, i);
    v1::NumaNode* node = t.add_numa_nodes();
    node->set_os_index(n->os_index);
    node->set_memory_mb(static_cast<uint32_t>(n->attr->numanode.local_memory >> 20));
  }

  const int core_count = hwloc_get_nbobjs_by_type(raw, HWLOC_OBJ_CORE);
  uint32_t pus = 0;
  if (core_count > 0) {
    for (int i = 0; i < core_count; ++i) {
      hwloc_obj_t c = hwloc_get_obj_by_type(raw, HWLOC_OBJ_CORE, i);
      v1::Core* core = t.add_cores();
      core->set_index(c->logical_index);
      hwloc_obj_t pkg = hwloc_get_ancestor_obj_by_type(raw, HWLOC_OBJ_PACKAGE, c);
      core->set_package(pkg ? pkg->logical_index : 0);
      core->set_numa(CoreNuma(raw, c));
      hwloc_obj_t l3 = hwloc_get_ancestor_obj_by_type(raw, HWLOC_OBJ_L3CACHE, c);
      core->set_l3(l3 ? static_cast<int32_t>(l3->logical_index) : -1);
      hwloc_obj_t pu = nullptr;
      while ((pu = hwloc_get_next_obj_inside_cpuset_by_type(raw, c->cpuset, HWLOC_OBJ_PU, pu))) {
        core->add_pus(pu->os_index);
        ++pus;
      }
    }
  } else {
    // Some virtual machines expose PUs without cores: one core per PU.
    const int pu_count = hwloc_get_nbobjs_by_type(raw, HWLOC_OBJ_PU);
    for (int i = 0; i < pu_count; ++i) {
      hwloc_obj_t p = hwloc_get_obj_by_type(raw, HWLOC_OBJ_PU, i);
      v1::Core* core = t.add_cores();
      core->set_index(p->logical_index);
      core->set_numa(CoreNuma(raw, p));
      core->set_l3(-1);
      core->add_pus(p->os_index);
      ++pus;
    }
  }
  t.set_pus(pus);

  DescribeNumaKinds(raw, t);
  AddComputeGpus(raw, t);
  SpreadMemTotalIfNoneFound(root, t);

  absl::Status st = CheckTopology(t);
  if (!st.ok()) return absl::InvalidArgumentError(absl::StrCat(label, ": ", st.message()));
  return t;
}

absl::Status CheckTopology(const v1::Topology& t) {
  if (t.pus() == 0 || t.cores_size() == 0)
    return absl::InvalidArgumentError("no processing units found");
  if (t.memory_mb() == 0) return absl::InvalidArgumentError("no memory found");
  // 64 TiB is beyond any single machine sold today; larger means a bad description.
  if (t.memory_mb() > (64u << 20))
    return absl::InvalidArgumentError("memory larger than 64 TiB is implausible");
  if (t.pus() > 65536)
    return absl::InvalidArgumentError("more than 65536 processing units is implausible");
  return absl::OkStatus();
}

std::string DescribeTopology(const v1::Topology& t) {
  std::string out = absl::StrFormat(
      "source: %s\nmachine: %u package(s), %d NUMA node(s), %d cores, %u PUs, %u MiB, %d GPU(s)\n",
      t.source(), t.packages(), t.numa_nodes_size(), t.cores_size(), t.pus(), t.memory_mb(),
      t.gpus_size());
  for (const v1::NumaNode& n : t.numa_nodes()) {
    if (n.memory_only()) {
      absl::StrAppendFormat(
          &out, "  NUMA %u: %u MiB %s, memory only (no PUs of its own), near NUMA %s\n",
          n.os_index(), n.memory_mb(), n.kind().empty() ? "DRAM" : n.kind(),
          n.near_numa().empty() ? "none listed"
                                : base::FormatIdList({n.near_numa().begin(), n.near_numa().end()}));
      continue;
    }
    int cores = 0;
    std::vector<uint32_t> pus;
    for (const v1::Core& c : t.cores()) {
      if (c.numa() == static_cast<int32_t>(n.os_index())) {
        ++cores;
        pus.insert(pus.end(), c.pus().begin(), c.pus().end());
      }
    }
    absl::StrAppendFormat(&out, "  NUMA %u: %u MiB%s, %d cores, PUs %s\n", n.os_index(),
                          n.memory_mb(),
                          n.kind().empty() || n.kind() == "DRAM" ? "" : absl::StrCat(" ", n.kind()),
                          cores, base::FormatIdList(pus));
  }
  for (const v1::Gpu& g : t.gpus()) {
    absl::StrAppendFormat(&out, "  GPU %s: %s %s pci %s NUMA %d", g.name(), g.vendor(), g.model(),
                          g.pci_bus_id(), g.numa());
    if (g.memory_mb() > 0) absl::StrAppendFormat(&out, " %u MiB", g.memory_mb());
    if (!g.uuid().empty()) absl::StrAppend(&out, " ", g.uuid());
    out += "\n";
  }
  return out;
}

uint64_t MemAvailableKib() { return MeminfoKib("MemAvailable:"); }

}  // namespace portolan::discovery
