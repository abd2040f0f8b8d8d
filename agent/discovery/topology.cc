#include "portolan/discovery/topology.h"

#include <fstream>

#include <hwloc.h>

#include <map>
#include <memory>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace portolan::discovery {
namespace {

struct TopologyDeleter {
  void operator()(hwloc_topology_t t) const { hwloc_topology_destroy(t); }
};
using TopologyPtr = std::unique_ptr<hwloc_topology, TopologyDeleter>;

int FirstNuma(hwloc_const_nodeset_t nodeset) {
  if (nodeset == nullptr || hwloc_bitmap_iszero(nodeset)) return -1;
  return hwloc_bitmap_first(nodeset);
}

std::string Info(hwloc_obj_t obj, const char* name) {
  const char* v = hwloc_obj_get_info_by_name(obj, name);
  return v ? v : "";
}

std::string VendorName(unsigned vendor_id, const std::string& fallback) {
  switch (vendor_id) {
    case 0x10de:
      return "nvidia";
    case 0x1002:
      return "amd";
    case 0x8086:
      return "intel";
    default:
      return fallback;
  }
}

}  // namespace

absl::StatusOr<v1::Topology> DiscoverTopology(const TopologySource& source) {
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
      core->set_numa(FirstNuma(c->nodeset));
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
      core->set_numa(FirstNuma(p->nodeset));
      core->set_l3(-1);
      core->add_pus(p->os_index);
      ++pus;
    }
  }
  t.set_pus(pus);

  // GPUs: hwloc may show one card as several OS devices (cuda0, nvml0, card0,
  // renderD128); keep one per PCI function, preferring compute names.
  std::map<std::string, v1::Gpu> by_pci;
  hwloc_obj_t os = nullptr;
  while ((os = hwloc_get_next_osdev(raw, os)) != nullptr) {
    auto type = os->attr->osdev.type;
    if (type != HWLOC_OBJ_OSDEV_GPU && type != HWLOC_OBJ_OSDEV_COPROC) continue;
    v1::Gpu g;
    g.set_name(os->name ? os->name : "");
    std::string key = g.name();
    unsigned vendor_id = 0;
    if (os->parent && os->parent->type == HWLOC_OBJ_PCI_DEVICE) {
      const auto& pci = os->parent->attr->pcidev;
      g.set_pci_bus_id(
          absl::StrFormat("%04x:%02x:%02x.%01x", pci.domain, pci.bus, pci.dev, pci.func));
      key = g.pci_bus_id();
      vendor_id = pci.vendor_id;
      if (pci.class_id >> 8 != 0x03 && type == HWLOC_OBJ_OSDEV_GPU && vendor_id != 0x10de) {
        // Display class check: skip non-display "GPU" devices such as BMC framebuffers only when
        // they are not NVIDIA (whose compute cards use class 0x0302, still display class).
      }
    }
    g.set_vendor(VendorName(vendor_id, Info(os, "GPUVendor")));
    g.set_model(Info(os, "GPUModel"));
    if (g.model().empty() && os->parent) g.set_model(Info(os->parent, "PCIDevice"));
    hwloc_obj_t anc = hwloc_get_non_io_ancestor_obj(raw, os);
    g.set_numa(anc ? FirstNuma(anc->nodeset) : -1);
    auto it = by_pci.find(key);
    bool compute_name = g.name().rfind("cuda", 0) == 0 || g.name().rfind("rsmi", 0) == 0 ||
                        g.name().rfind("opencl", 0) == 0;
    if (it == by_pci.end() || compute_name) by_pci[key] = g;
  }
  for (auto& [k, g] : by_pci) *t.add_gpus() = g;

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
    int cores = 0;
    std::vector<uint32_t> pus;
    for (const v1::Core& c : t.cores()) {
      if (c.numa() == static_cast<int32_t>(n.os_index())) {
        ++cores;
        pus.insert(pus.end(), c.pus().begin(), c.pus().end());
      }
    }
    std::string range = pus.empty() ? "-"
                                    : absl::StrCat(*std::min_element(pus.begin(), pus.end()), "-",
                                                   *std::max_element(pus.begin(), pus.end()));
    absl::StrAppendFormat(&out, "  NUMA %u: %u MiB, %d cores, PUs %s\n", n.os_index(),
                          n.memory_mb(), cores, range);
  }
  for (const v1::Gpu& g : t.gpus()) {
    absl::StrAppendFormat(&out, "  GPU %s: %s %s pci %s NUMA %d\n", g.name(), g.vendor(), g.model(),
                          g.pci_bus_id(), g.numa());
  }
  return out;
}

uint64_t MemAvailableKib() {
  std::ifstream meminfo("/proc/meminfo");
  std::string key;
  uint64_t kb = 0;
  while (meminfo >> key >> kb) {
    if (key == "MemAvailable:") return kb;
    meminfo.ignore(64, '\n');
  }
  return 0;
}

}  // namespace portolan::discovery
