// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <string>

#include "portolan/v1/topology.pb.h"

namespace portolan::topology {

// The id allocations name a GPU by: its PCI bus id, stable across reboots and
// driver updates (hwloc's cudaN follows CUDA's fastest-first order), else
// hwloc's OS device name (emulated GPUs).
inline const std::string& GpuId(const v1::Gpu& g) {
  return g.pci_bus_id().empty() ? g.name() : g.pci_bus_id();
}

}  // namespace portolan::topology
