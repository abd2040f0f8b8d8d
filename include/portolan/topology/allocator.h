// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <algorithm>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/inlined_vector.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "portolan/topology/gpu_id.h"
#include "portolan/v1/agent.pb.h"
#include "portolan/v1/job.pb.h"
#include "portolan/v1/topology.pb.h"

namespace portolan::topology {

// What a job asks of one machine's hardware.
struct Request {
  int pus = 1;  // processing units (hardware threads)
  int memory_mb = 0;
  int gpus = 0;
  v1::TopologyRequest::Numa numa = v1::TopologyRequest::any;
  v1::TopologyRequest::Smt smt = v1::TopologyRequest::shared;
  v1::TopologyRequest::Gpu::Numa gpu_numa = v1::TopologyRequest::Gpu::any;
  // "" for ordinary memory; else all memory from one NUMA node of this kind
  // (HBM, MCDRAM, ...), PUs from the nodes near it.
  std::string memory_kind;

  static Request FromJob(const v1::Job& job);
};

// A NUMA node's counts, which every placement decision reads; what only
// allocation reads (core lists, memory kinds, near nodes) is kept apart.
struct NodeCounts {  // 24 bytes; sizes beyond 16 bits are refused at registration
  int mem_free = 0;
  int mem_total = 0;
  uint32_t os_index = 0;
  uint16_t free_pus = 0;
  uint16_t free_core_pus = 0;  // PUs of wholly free cores
  uint16_t free_gpus = 0;      // free GPUs local to this node
  uint16_t total_pus = 0;
  uint16_t max_core_pus = 1;
  bool memory_only = false;  // no PUs of its own: only memory_kind jobs use it
};

// A machine's free totals (ordinary memory only: memory-only nodes excluded).
struct FreeTotals {
  int total_pus = 0;
  int free_pus = 0;
  int free_mem = 0;
  int free_gpus = 0;
};

// The arithmetic a decision does on counts alone, shared by AgentTopology
// and FitCounts so that the two cannot answer differently.
//
// WhyNot's checks on the totals: a reason code, or "" with `*settled` true
// when the totals decide (the common request: any node, shared cores, no
// GPUs, ordinary memory); `*settled` false when the nodes must be asked.
inline std::string_view WhyNotByTotals(const FreeTotals& t, const Request& r, bool* settled) {
  *settled = true;
  if (r.gpus > t.free_gpus) return "insufficient_gpus";
  if (r.pus > t.free_pus) return "insufficient_cpus";
  if (r.memory_kind.empty()) {
    if (r.memory_mb > t.free_mem) return "insufficient_memory";
    if (r.numa == v1::TopologyRequest::any && r.smt != v1::TopologyRequest::exclusive &&
        r.gpus == 0)
      return "";
  }
  *settled = false;
  return "";
}
// What the arithmetic below reads of a node: NodeCounts without what only
// allocation needs, 12 bytes (FitCounts keeps these).
struct NodeFit {
  int mem_free = 0;
  uint16_t free_pus = 0;
  uint16_t free_core_pus = 0;
  uint16_t free_gpus = 0;
  uint16_t total_pus = 0;
};

// The PUs of node `n` that request `r` may use: those of wholly free cores
// when it wants whole cores. `N` is NodeCounts or NodeFit, here and below.
template <typename N>
inline int PusFor(const N& n, const Request& r) {
  return r.smt == v1::TopologyRequest::exclusive ? n.free_core_pus : n.free_pus;
}
// Whole cores, numa single and numa spread, from the nodes' counts; not
// memory kinds nor GPU locality (those need the concrete hardware).
template <typename N>
std::string_view WhyNotByNodes(absl::Span<const N> nodes, const Request& r);
// The node a numa-single placement would take (best fit); -1 when none fits.
// Inline, as the score below: the engine asks them of every feasible agent.
template <typename N>
inline int BestSingleNode(absl::Span<const N> nodes, const Request& r) {
  const int local_gpus = r.gpu_numa == v1::TopologyRequest::Gpu::local ? r.gpus : 0;
  int best = -1, best_left = std::numeric_limits<int>::max();
  for (size_t i = 0; i < nodes.size(); ++i) {
    const N& n = nodes[i];
    const int left = PusFor(n, r) - r.pus;
    if (left < 0 || n.mem_free < r.memory_mb || n.free_gpus < local_gpus) continue;
    if (left < best_left) {
      best = static_cast<int>(i);
      best_left = left;
    }
  }
  return best;
}
// numa_fit's score when no one node can hold the request: fewer nodes spanned
// score higher.
template <typename N>
double SpannedFitScore(absl::Span<const N> nodes, const Request& r);
// numa_fit's score for a request without a memory kind.
template <typename N>
inline double FitScoreByNodes(absl::Span<const N> nodes, const Request& r) {
  if (r.numa == v1::TopologyRequest::spread) return 100;
  if (const int best = BestSingleNode(nodes, r); best >= 0) {
    const N& n = nodes[best];
    const double left = PusFor(n, r) - r.pus;
    return 50.0 + 50.0 * (1.0 - left / std::max<int>(1, n.total_pus));
  }
  return SpannedFitScore(nodes, r);
}

class AgentTopology;

// A copy of what a decision reads of one AgentTopology (its free totals and
// up to kMaxNodes nodes' NodeFit), kept beside the agent's view: a decision
// examines hundreds of agents, and each one's topology is a heap object of
// its own (a cache miss apiece), while the views lie in one array read in
// order. Its answers equal the topology's as long as the topology has not
// changed since the copy; whoever changes a topology while a view of it is
// in use makes a new copy (AgentView::Refresh). Requests the counts cannot
// decide (memory kinds, GPU locality) and machines with more nodes are
// passed on to the topology itself.
class FitCounts {
 public:
  static constexpr int kMaxNodes = 4;
  FitCounts() = default;  // no copy: every question goes to the topology
  explicit FitCounts(const AgentTopology& t);

  // As t.WhyNot(r) and t.FitScore(r); `t` must be the topology copied.
  std::string_view WhyNot(const Request& r, const AgentTopology& t) const;
  double FitScore(const Request& r, const AgentTopology& t) const;
  // Whether the two above answer `r` from this copy, without the topology.
  bool Answers(const Request& r) const { return HasCounts() && CountsDecide(r); }
  // Answers(r) split in two, for callers that ask about one request of many
  // copies: whether this is a copy at all (not a machine of more nodes), and
  // whether counts decide `r` (no memory kind and no GPU locality asked).
  bool HasCounts() const { return nodes_n_ != kNone; }
  static bool CountsDecide(const Request& r) {
    return r.memory_kind.empty() && (r.gpus == 0 || r.gpu_numa != v1::TopologyRequest::Gpu::local);
  }

 private:
  static constexpr uint8_t kNone = 0xFF;
  absl::Span<const NodeFit> Nodes() const { return absl::MakeConstSpan(nodes_, nodes_n_); }

  FreeTotals totals_;
  uint8_t nodes_n_ = kNone;
  NodeFit nodes_[kMaxNodes];
};

// One agent's hardware and what of it is free: PUs, memory per NUMA node,
// GPUs. The scheduler owns one per agent and changes it only under its own
// lock; const methods may run concurrently with each other (decisions), never
// with Commit/Release.
//
// Allocation policy:
//  * numa single: all PUs and memory in one NUMA node (and, with gpu_numa
//    local, GPUs local to it); the node that is left with the fewest free PUs
//    wins (best fit), so whole nodes stay free for later single jobs.
//  * numa spread: PUs and memory split as evenly as possible over all nodes.
//  * numa any: one node when one fits (best fit), otherwise the fewest nodes,
//    fullest-first.
//  * smt exclusive: whole cores only; the job gets every PU of its cores.
//    smt shared: single PUs, filling partly used cores first.
//  * within a node, PUs come from one L3 cache group when one can hold them
//    (best fit), so a job's cores share caches.
//  * memory-only NUMA nodes (HBM, MCDRAM, CXL: no PUs of their own) serve
//    only jobs whose memory_kind names their kind: all of such a job's
//    memory comes from one node of that kind, its PUs from the nodes near it
//    (numa single: one of them, best fit). Ordinary jobs, free_memory_mb()
//    and total_memory_mb() never count memory-only nodes.
//
// Memory: the scheduler keeps one per registered agent (10,000s), so the
// layout is compact: 16 bytes per core, the PUs of all cores in one array,
// 2 bytes per PU for its owner and its core (about 2 KiB for 128 PUs). PU OS
// indexes above kMaxPuIndex and cores beyond kMaxCores are not supported;
// the scheduler refuses such topologies at registration, and the constructor
// ignores them.
class alignas(64) AgentTopology {
 public:
  static constexpr uint32_t kMaxPuIndex = 65534;
  static constexpr int kMaxCores = 65535;
  static constexpr int kMaxGpus = 1024;  // as Resources.gpus

  explicit AgentTopology(const v1::Topology& topology);

  // Whether the request could run on this machine when it is empty.
  bool CouldEverFit(const Request& r) const;
  // Why it can never fit ("a NUMA node has at most 32 PUs, the job needs 40").
  std::string NeverFitReason(const Request& r) const;
  // "" when the request fits now; otherwise a reason code (static string):
  // insufficient_cpus, insufficient_memory, insufficient_gpus,
  // numa_single_no_fit, numa_spread_no_fit, smt_exclusive_no_fit, gpu_locality,
  // memory_kind_no_fit.
  std::string_view WhyNot(const Request& r) const {
    // Inline: the engine asks this of hundreds of agents per decision.
    bool settled;
    const std::string_view why = WhyNotByTotals(totals_, r, &settled);
    return settled ? why : WhyNotBeyondTotals(r);
  }
  // numa_fit score, 0-100: a tight single-node fit scores highest.
  double FitScore(const Request& r) const;

  // The concrete allocation this machine would give now (not committed).
  absl::StatusOr<v1::Allocation> Plan(const Request& r) const;
  // Marks an allocation's PUs, memory and GPUs as `job`'s. Fails, changing
  // nothing, when any of them is unknown or already taken.
  absl::Status Commit(const v1::Allocation& a, const std::string& job);
  // Returns what `job` holds; unknown or foreign resources are ignored.
  void Release(const v1::Allocation& a, const std::string& job);

  int total_pus() const { return totals_.total_pus; }
  int free_pus() const { return totals_.free_pus; }
  int free_memory_mb() const { return totals_.free_mem; }
  int free_gpus() const { return totals_.free_gpus; }
  int total_memory_mb() const;
  int total_gpus() const { return static_cast<int>(gpus_.size()); }
  // Asks the CPU to bring what WhyNot and FitScore read (the counts and the
  // first nodes, at the object's start) into its caches.
  void Prefetch() const {
    __builtin_prefetch(this);
    __builtin_prefetch(reinterpret_cast<const char*>(this) + 64);
  }
  // Fills pu_jobs, gpu_jobs and numa_free_memory_mb for the agent view.
  void Describe(v1::Agent* out) const;

 private:
  struct Core {
    int32_t l3 = 0;      // cache group id, unique per node
    uint32_t first = 0;  // its PUs (SMT siblings): core_pus_[first, first + size)
    uint16_t node = 0;   // index into nodes_
    uint16_t size = 0;   // PUs of this core
    uint16_t free = 0;   // free PUs of this core
  };
  friend class FitCounts;  // copies totals_ and nodes_
  using Node = NodeCounts;

  struct NodeLists {
    std::vector<uint16_t> cores;  // indexes into cores_
    std::string kind;             // "DRAM", "HBM", "MCDRAM", ...
    std::vector<uint16_t> near;   // memory-only: nodes whose PUs are local to it
  };

  // A memory_kind job's memory node and the node its PUs come from (the
  // same node when the kind has PUs of its own); -1 when none fits.
  struct KindChoice {
    int mem = -1;
    int cpu = -1;
  };
  struct Gpu {
    std::string name;     // GpuId: the PCI bus id, else hwloc's name
    std::string os_name;  // hwloc's name (cuda0), accepted from older allocations
    int node = -1;        // index into nodes_, -1 unknown
    std::string owner;
  };

  // WhyNot for a request the totals alone do not decide.
  std::string_view WhyNotBeyondTotals(const Request& r) const;
  absl::Status ChoosePus(int node, int want, bool exclusive, v1::Allocation* out) const;
  absl::Status ChooseGpus(const std::vector<int>& nodes, const Request& r,
                          v1::Allocation* out) const;
  int BestSingleNode(const Request& r) const { return topology::BestSingleNode<Node>(nodes_, r); }
  int CpuNodeCount() const;  // nodes with PUs, at least 1
  // Nodes of r.memory_kind and the nodes their jobs' PUs may use.
  bool KindMatches(int node, const Request& r) const;
  std::vector<int> CpuNodesFor(int mem_node) const;
  KindChoice BestKindChoice(const Request& r) const;
  absl::StatusOr<v1::Allocation> PlanMemoryKind(const Request& r) const;
  std::string KindNeverFitReason(const Request& r) const;
  void Recount(int node);

  absl::Span<const uint32_t> Pus(const Core& c) const {
    return absl::MakeConstSpan(core_pus_.data() + c.first, c.size);
  }

  // What a decision reads, first and together: the counts, then the nodes'
  // (inline up to four), two cache lines from the (aligned) object's start.
  FreeTotals totals_;  // free_mem: the sum of ordinary nodes' mem_free
  absl::InlinedVector<Node, 4> nodes_;
  std::vector<NodeLists> lists_;  // by node index
  std::vector<Core> cores_;
  std::vector<uint32_t> core_pus_;  // PU OS indexes, core by core
  std::vector<Gpu> gpus_;
  // The job holding each PU, by PU OS index: 0 free, else 1 + an index into
  // owners_ (the jobs on this agent), so a 128-PU machine costs 256 bytes
  // rather than 128 strings. A slot holds at least one PU, so slots never
  // outnumber PUs and fit in 16 bits.
  std::vector<uint16_t> pu_owner_;
  std::vector<std::string> owners_;  // job ids; "" for a free slot
  std::vector<uint32_t> owner_pus_;  // PUs each slot holds
  // The slot (1-based) of `job`; with `create`, a new or reused one.
  uint32_t OwnerSlot(const std::string& job, bool create);
  static constexpr uint16_t kNoCore = 0xFFFF;
  std::vector<uint16_t> pu_core_;  // by PU OS index; kNoCore for none
};

// Inline: numa_fit asks it of every feasible agent of a decision.
inline double FitCounts::FitScore(const Request& r, const AgentTopology& t) const {
  return nodes_n_ != kNone && r.memory_kind.empty() ? FitScoreByNodes(Nodes(), r) : t.FitScore(r);
}

}  // namespace portolan::topology
