// SPDX-License-Identifier: Apache-2.0
// Memory kinds: jobs that ask for HBM, MCDRAM or another NUMA memory kind
// (TopologyRequest.memory_kind). The rest of AgentTopology is allocator.cc.
#include <algorithm>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "portolan/topology/allocator.h"

namespace portolan::topology {

bool AgentTopology::KindMatches(int node, const Request& r) const {
  return absl::EqualsIgnoreCase(lists_[node].kind, r.memory_kind);
}

std::vector<int> AgentTopology::CpuNodesFor(int mem_node) const {
  std::vector<int> out;
  if (mem_node < 0) return out;
  const Node& m = nodes_[mem_node];
  if (m.total_pus > 0) return {mem_node};  // a kind with PUs of its own
  for (uint16_t x : lists_[mem_node].near) out.push_back(x);
  if (out.empty()) {  // locality unknown: every node with PUs is as near as any
    for (size_t i = 0; i < nodes_.size(); ++i) {
      if (nodes_[i].total_pus > 0) out.push_back(static_cast<int>(i));
    }
  }
  return out;
}

AgentTopology::KindChoice AgentTopology::BestKindChoice(const Request& r) const {
  KindChoice best;
  int best_left = 0;
  for (size_t i = 0; i < nodes_.size(); ++i) {
    const Node& m = nodes_[i];
    if (!KindMatches(static_cast<int>(i), r) || m.mem_free < r.memory_mb) continue;
    if (best.mem < 0) best.mem = static_cast<int>(i);
    for (int c : CpuNodesFor(static_cast<int>(i))) {
      const Node& n = nodes_[c];
      const int usable = PusFor(n, r);
      if (usable < r.pus) continue;
      if (r.gpus > 0 && r.gpu_numa == v1::TopologyRequest::Gpu::local && n.free_gpus < r.gpus)
        continue;
      if (best.cpu < 0 || usable - r.pus < best_left) {
        best = {static_cast<int>(i), c};
        best_left = usable - r.pus;
      }
    }
  }
  return best;
}

absl::StatusOr<v1::Allocation> AgentTopology::PlanMemoryKind(const Request& r) const {
  KindChoice k = BestKindChoice(r);
  std::vector<std::pair<int, int>> take;  // node, PUs
  if (k.cpu >= 0) {
    take.emplace_back(k.cpu, r.pus);
  } else if (k.mem >= 0 && r.numa != v1::TopologyRequest::single) {
    // numa any: the kind's node whose near nodes have the most usable PUs,
    // its PUs from those nodes, fullest first.
    int best_sum = 0;
    k.mem = -1;
    for (size_t i = 0; i < nodes_.size(); ++i) {
      if (!KindMatches(static_cast<int>(i), r) || nodes_[i].mem_free < r.memory_mb) continue;
      int sum = 0;
      for (int c : CpuNodesFor(static_cast<int>(i))) sum += PusFor(nodes_[c], r);
      if (sum >= r.pus && sum > best_sum) {
        best_sum = sum;
        k.mem = static_cast<int>(i);
      }
    }
    std::vector<int> near = CpuNodesFor(k.mem);
    std::stable_sort(near.begin(), near.end(),
                     [&](int a, int b) { return PusFor(nodes_[a], r) > PusFor(nodes_[b], r); });
    int left = r.pus;
    for (int c : near) {
      const int n = std::min(left, PusFor(nodes_[c], r));
      if (n > 0) take.emplace_back(c, n);
      left -= std::max(0, n);
    }
  }
  if (k.mem < 0 || take.empty()) return absl::FailedPreconditionError("memory_kind_no_fit");
  v1::Allocation a;
  std::vector<int> cpu_nodes;
  for (const auto& [node, n] : take) {
    if (absl::Status st = ChoosePus(node, n, r.smt == v1::TopologyRequest::exclusive, &a); !st.ok())
      return st;
    cpu_nodes.push_back(node);
  }
  // The job's memory is bound to the kind's node alone: numa_nodes lists it.
  (*a.mutable_numa_memory_mb())[nodes_[k.mem].os_index] = r.memory_mb;
  a.add_numa_nodes(nodes_[k.mem].os_index);
  if (absl::Status st = ChooseGpus(cpu_nodes, r, &a); !st.ok()) return st;
  a.set_cpus(a.pus_size());
  a.set_memory_mb(r.memory_mb);
  a.set_gpus(a.gpu_ids_size());
  return a;
}

std::string AgentTopology::KindNeverFitReason(const Request& r) const {
  std::set<std::string> kinds;
  int max_mem = 0, max_pus = 0;
  bool kind_found = false;
  for (size_t i = 0; i < nodes_.size(); ++i) {
    const Node& m = nodes_[i];
    kinds.insert(lists_[i].kind);
    if (!KindMatches(static_cast<int>(i), r)) continue;
    kind_found = true;
    max_mem = std::max(max_mem, m.mem_total);
    if (m.mem_total < r.memory_mb) continue;
    int sum = 0, one = 0;
    for (int c : CpuNodesFor(static_cast<int>(i))) {
      sum += nodes_[c].total_pus;
      one = std::max<int>(one, nodes_[c].total_pus);
    }
    const int usable = r.numa == v1::TopologyRequest::single ? one : sum;
    if (usable >= r.pus) return "";
    max_pus = std::max(max_pus, usable);
  }
  if (!kind_found) {
    return absl::StrCat("memory_kind ", r.memory_kind,
                        ": the machine has no NUMA node of that kind (", absl::StrJoin(kinds, ", "),
                        ")");
  }
  if (max_mem < r.memory_mb) {
    return absl::StrCat("memory_kind ", r.memory_kind, ": a NUMA node of that kind has at most ",
                        max_mem, " MiB, the job needs ", r.memory_mb);
  }
  return absl::StrCat("memory_kind ", r.memory_kind, ": at most ", max_pus, " PUs are near it",
                      r.numa == v1::TopologyRequest::single ? " in one NUMA node" : "",
                      ", the job needs ", r.pus);
}

}  // namespace portolan::topology
