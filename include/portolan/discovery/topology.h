// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "portolan/v1/topology.pb.h"

namespace portolan::discovery {

// Where the agent's hardware description comes from. Exactly one of the
// fields may be set; none means the real machine.
struct TopologySource {
  std::string synthetic;  // hwloc synthetic string, e.g. "pack:2 numa:2 core:16 pu:2"
  std::string xml_file;   // an lstopo/hwloc XML export
};

// Discovers the topology with hwloc: packages, NUMA nodes and their memory,
// cores with their PUs, L3 sharing and NUMA locality, GPUs (OS devices with
// PCI address and NUMA locality, when hwloc's I/O discovery sees them).
// Only what this process may use is described: PUs and NUMA nodes outside
// its cpuset (cgroup) or offline are left out; `left_out`, when given, gets
// them in words ("PUs 2-3,6-7 and NUMA nodes 1: offline or outside this
// process's cpuset ..."), empty when nothing is. Errors name the source and
// what is wrong with it. Thread-safe.
absl::StatusOr<v1::Topology> DiscoverTopology(const TopologySource& source,
                                              std::string* left_out = nullptr);

// Refuses descriptions the scheduler cannot use (no PUs, no memory, ...).
absl::Status CheckTopology(const v1::Topology& topology);

// Human-readable summary, one line per NUMA node (for --print-topology).
std::string DescribeTopology(const v1::Topology& topology);

// The machine's MemAvailable in KiB (/proc/meminfo), 0 when unknown.
uint64_t MemAvailableKib();

}  // namespace portolan::discovery
