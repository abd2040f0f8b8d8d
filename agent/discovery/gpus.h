// SPDX-License-Identifier: Apache-2.0
#pragma once

// Private to the discovery module: the machine's compute GPUs.

#include <hwloc.h>

#include "portolan/v1/topology.pb.h"

namespace portolan::discovery {

// Adds the compute GPUs of the loaded topology `raw` to `t`, one per
// physical PCI function (see gpus.cc for what counts and how the facts of a
// card's several hwloc OS devices are merged).
void AddComputeGpus(hwloc_topology_t raw, v1::Topology& t);

}  // namespace portolan::discovery
