// SPDX-License-Identifier: Apache-2.0
#include "agent/discovery/gpus.h"

#include <iterator>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "agent/discovery/hwloc_util.h"
#include "spdlog/spdlog.h"

namespace portolan::discovery {
namespace {

// PCI class of a 3D controller: how datacentre GPUs present themselves
// (NVIDIA's A100 and H100 among them), with no display output; display
// adapters are 0x0300.
constexpr unsigned kPci3dController = 0x0302;

// "nvidia", "amd" or "intel" from the PCI vendor id, else from a runtime's
// vendor string ("NVIDIA Corporation", "Advanced Micro Devices, Inc."),
// else that string as it is.
std::string VendorName(unsigned vendor_id, const std::string& fallback) {
  switch (vendor_id) {
    case 0x10de:
      return "nvidia";
    case 0x1002:
      return "amd";
    case 0x8086:
      return "intel";
    default:
      break;
  }
  const std::string lower = absl::AsciiStrToLower(fallback);
  if (absl::StrContains(lower, "nvidia")) return "nvidia";
  if (absl::StrContains(lower, "advanced micro devices") || absl::StartsWith(lower, "amd"))
    return "amd";
  if (absl::StrContains(lower, "intel")) return "intel";
  return fallback;
}

// Compute runtimes' OS device name prefixes, in the order a GPU is named by
// them: the CUDA index first (CUDA_VISIBLE_DEVICES numbers by it), then
// NVML, ROCm SMI, Level Zero, OpenCL.
constexpr const char* kRuntimeNames[] = {"cuda", "nvml", "rsmi", "ze", "opencl"};
constexpr int kNotARuntime = static_cast<int>(std::size(kRuntimeNames));  // a DRM card
constexpr int kNoOsDevice = kNotARuntime + 1;  // a PCI function no OS device names

int NameRank(const std::string& name) {
  for (int rank = 0; rank < kNotARuntime; ++rank) {
    if (name.rfind(kRuntimeNames[rank], 0) == 0) return rank;
  }
  return kNotARuntime;
}

// Device memory in MiB from the runtimes' info attributes (KiB, some
// written with a "KiB" suffix), 0 when none lists it.
uint64_t GpuMemoryMb(hwloc_obj_t os) {
  for (const char* key :
       {"CUDAGlobalMemorySize", "RSMIVRAMSize", "LevelZeroMemorySize", "OpenCLGlobalMemorySize"}) {
    const std::string v = Info(os, key);
    uint64_t kib = 0;
    size_t i = 0;
    for (; i < v.size() && v[i] >= '0' && v[i] <= '9' && kib < (1ull << 50); ++i)
      kib = kib * 10 + static_cast<uint64_t>(v[i] - '0');
    if (i > 0 && kib > 0) return kib >> 10;
  }
  return 0;
}

// The device's UUID as NVML, ROCm SMI or Level Zero lists it, "" when none.
std::string GpuUuid(hwloc_obj_t os) {
  for (const char* key : {"NVIDIAUUID", "AMDUUID", "LevelZeroUUID"}) {
    std::string v = Info(os, key);
    if (!v.empty()) return v;
  }
  return "";
}

// Whether a compute runtime lists `os` (not only DRM).
bool IsRuntime(hwloc_obj_t os) {
  return NameRank(os->name ? os->name : "") < kNotARuntime ||
         os->attr->osdev.type == HWLOC_OBJ_OSDEV_COPROC;
}

bool IsGpuOsDevice(hwloc_obj_t os) {
  const auto type = os->attr->osdev.type;
  return type == HWLOC_OBJ_OSDEV_GPU || type == HWLOC_OBJ_OSDEV_COPROC;
}

// One physical card as found so far.
struct Card {
  v1::Gpu gpu;
  int rank = kNoOsDevice;  // NameRank of the name it carries
  bool compute = false;    // a 3D controller, or a compute runtime lists it
  bool runtime = false;    // an OS device of a compute runtime lies under its PCI function
  unsigned device_id = 0;  // PCI device id (0: not on PCI)
  std::string pci_model;   // the PCI database's name of the device, "" when unknown
};

// What OS device `os` (a runtime's or DRM's view of the card) says of it.
// `with_identity`: also its name and UUID (false when `os` may be another
// card of the same model).
void TakeFacts(hwloc_obj_t os, Card& c, bool with_identity) {
  const std::string name = os->name ? os->name : "";
  const int rank = NameRank(name);
  c.compute = c.compute || IsRuntime(os);
  if (c.gpu.model().empty()) c.gpu.set_model(Info(os, "GPUModel"));
  if (c.gpu.vendor().empty()) c.gpu.set_vendor(VendorName(0, Info(os, "GPUVendor")));
  if (c.gpu.memory_mb() == 0) c.gpu.set_memory_mb(GpuMemoryMb(os));
  if (!with_identity) return;
  if (c.gpu.uuid().empty()) c.gpu.set_uuid(GpuUuid(os));
  if (rank < c.rank) {
    c.rank = rank;
    c.gpu.set_name(name);
  }
}

// The card at PCI function `pci`, made on first sight with what PCI says.
Card& CardAt(hwloc_topology_t raw, hwloc_obj_t pci, std::map<std::string, Card>& cards) {
  const auto& a = pci->attr->pcidev;
  const std::string bus_id = absl::StrFormat("%04x:%02x:%02x.%01x", a.domain, a.bus, a.dev, a.func);
  auto [it, made] = cards.try_emplace(bus_id);
  Card& c = it->second;
  if (!made) return c;
  c.gpu.set_name(bus_id);
  c.gpu.set_pci_bus_id(bus_id);
  c.gpu.set_vendor(VendorName(a.vendor_id, ""));
  c.device_id = a.device_id;
  c.compute = a.class_id == kPci3dController;
  c.pci_model = Info(pci, "PCIDevice");
  hwloc_obj_t anc = hwloc_get_non_io_ancestor_obj(raw, pci);
  c.gpu.set_numa(anc ? FirstNuma(anc->nodeset) : -1);
  return c;
}

// Runtime OS devices that hwloc could not attach to their PCI function (in
// virtual machines NVIDIA's OpenCL reports a bus position hwloc does not
// match, and the device hangs off the host bridge), matched to the compute
// cards no runtime lists, of the same vendor: one device and one card are the
// same card; several of each are taken as the same model when all the cards
// are one PCI device id (memory and model shared, names and UUIDs not
// guessed). Otherwise they are left out, and said so: offering them beside
// the cards would count each card twice. On a machine with no such card of
// that vendor on PCI (an exported topology without I/O), they are offered
// under their own names.
void MatchUnattached(hwloc_topology_t raw, const std::vector<hwloc_obj_t>& unattached,
                     std::map<std::string, Card>& cards) {
  // By vendor and runtime: each runtime lists the same cards.
  std::map<std::pair<std::string, int>, std::vector<hwloc_obj_t>> groups;
  for (hwloc_obj_t os : unattached) {
    groups[{VendorName(0, Info(os, "GPUVendor")), NameRank(os->name ? os->name : "")}].push_back(
        os);
  }
  for (const auto& [key, devices] : groups) {
    std::vector<Card*> bare;  // compute cards of this vendor that no runtime lists
    bool vendor_on_pci = false;
    for (auto& [bus, c] : cards) {
      if (c.gpu.pci_bus_id().empty() || c.gpu.vendor() != key.first) continue;
      vendor_on_pci = true;
      if (c.compute && !c.runtime) bare.push_back(&c);
    }
    std::vector<std::string> names;
    for (hwloc_obj_t os : devices) names.push_back(os->name ? os->name : "");
    if (!vendor_on_pci) {
      for (hwloc_obj_t os : devices) {
        auto [it, made] = cards.try_emplace(os->name ? os->name : "");
        if (made) {
          hwloc_obj_t anc = hwloc_get_non_io_ancestor_obj(raw, os);
          it->second.gpu.set_numa(anc ? FirstNuma(anc->nodeset) : -1);
        }
        TakeFacts(os, it->second, true);
      }
      continue;
    }
    bool one_model = !bare.empty();
    for (const Card* c : bare) one_model = one_model && c->device_id == bare.front()->device_id;
    if (bare.size() == devices.size() && (bare.size() == 1 || one_model)) {
      for (size_t i = 0; i < bare.size(); ++i) {
        TakeFacts(devices[i], *bare[i], bare.size() == 1);
        bare[i]->runtime = true;
      }
      spdlog::info(
          "topology: {} not attached to a PCI function by hwloc; taken as the {} card(s) "
          "on PCI no runtime lists",
          absl::StrJoin(names, ", "), key.first);
      continue;
    }
    spdlog::warn(
        "topology: {} not attached to a PCI function by hwloc and not matched to the {} "
        "{} card(s) on PCI no runtime lists; left out",
        absl::StrJoin(names, ", "), bare.size(), key.first);
  }
}

}  // namespace

// GPUs that are compute devices, one per physical PCI function. hwloc shows
// one card as several OS devices (cuda0, opencl0d0, nvml0, card0): they are
// merged by PCI bus id and named by NameRank. A PCI function counts as a
// compute GPU when a compute runtime lists it (a CUDA, OpenCL or Level Zero
// co-processor, an NVML or ROCm SMI device) or it is a 3D controller (PCI
// class 0x0302) of a vendor none of whose cards a runtime lists: with no
// runtime plugin in hwloc and no DRM driver, as NVIDIA's datacentre cards
// under Debian's hwloc, a card is seen only on PCI and named by its bus id;
// where the runtime lists the vendor's other cards, one it leaves out is
// not driven. A display adapter seen only through DRM (a server's BMC VGA,
// "card0") is never offered.
void AddComputeGpus(hwloc_topology_t raw, v1::Topology& t) {
  std::map<std::string, Card> cards;  // by PCI bus id (hwloc's name when not on PCI)
  for (hwloc_obj_t pci = nullptr; (pci = hwloc_get_next_pcidev(raw, pci)) != nullptr;) {
    if (pci->attr->pcidev.class_id == kPci3dController) CardAt(raw, pci, cards);
  }
  std::vector<hwloc_obj_t> unattached;
  for (hwloc_obj_t os = nullptr; (os = hwloc_get_next_osdev(raw, os)) != nullptr;) {
    if (!IsGpuOsDevice(os)) continue;
    if (os->parent == nullptr || os->parent->type != HWLOC_OBJ_PCI_DEVICE) {
      unattached.push_back(os);
      continue;
    }
    Card& c = CardAt(raw, os->parent, cards);
    TakeFacts(os, c, true);
    c.runtime = c.runtime || IsRuntime(os);
  }
  MatchUnattached(raw, unattached, cards);
  std::set<std::string> listed;  // vendors some of whose cards a runtime lists
  for (const auto& [key, c] : cards) {
    if (c.runtime) listed.insert(c.gpu.vendor());
  }
  for (auto& [key, c] : cards) {
    if (c.gpu.model().empty()) c.gpu.set_model(c.pci_model);
    if (c.compute && !c.runtime && listed.count(c.gpu.vendor()) != 0) {
      // The vendor's runtime is there and lists other cards, not this one:
      // its driver does not drive it (too old a card, or held back).
      spdlog::info(
          "topology: the {} 3D controller at PCI {} is listed by no compute runtime "
          "while its vendor's other cards are; not offered as a GPU",
          c.gpu.vendor(), key);
    } else if (c.compute) {
      *t.add_gpus() = std::move(c.gpu);
    } else {
      spdlog::info(
          "topology: {} at PCI {} is a display adapter only (no compute runtime lists it); "
          "not offered as a GPU",
          c.gpu.name(), key);
    }
  }
}

}  // namespace portolan::discovery
