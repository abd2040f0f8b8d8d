// SPDX-License-Identifier: Apache-2.0
#include "portolan/topology/allocator.h"

#include <algorithm>
#include <limits>
#include <map>
#include <numeric>
#include <set>

#include "absl/strings/str_cat.h"

namespace portolan::topology {

Request Request::FromJob(const v1::Job& job) {
  Request r;
  r.pus = job.resources().cpus();
  r.memory_mb = job.resources().memory_mb();
  r.gpus = job.resources().gpus();
  if (job.topology().numa() != v1::TopologyRequest::numa_unspecified)
    r.numa = job.topology().numa();
  if (job.topology().smt() != v1::TopologyRequest::smt_unspecified) r.smt = job.topology().smt();
  if (job.topology().gpu_numa() != v1::TopologyRequest::Gpu::gpu_numa_unspecified) {
    r.gpu_numa = job.topology().gpu_numa();
  }
  r.memory_kind = job.topology().memory_kind();
  return r;
}

AgentTopology::AgentTopology(const v1::Topology& t) {
  std::map<uint32_t, int> node_of;
  nodes_.reserve(std::max(1, t.numa_nodes_size()));  // exact sizes: one per agent, 10,000s
  lists_.reserve(std::max(1, t.numa_nodes_size()));
  cores_.reserve(t.cores_size());
  for (const v1::NumaNode& n : t.numa_nodes()) {
    node_of[n.os_index()] = static_cast<int>(nodes_.size());
    Node node;
    node.os_index = n.os_index();
    node.mem_total = node.mem_free = static_cast<int>(std::min<uint32_t>(n.memory_mb(), INT32_MAX));
    node.memory_only = n.memory_only();
    nodes_.push_back(node);
    lists_.push_back({{}, n.kind().empty() ? "DRAM" : n.kind(), {}});
  }
  for (const v1::NumaNode& n : t.numa_nodes()) {
    NodeLists& lists = lists_[node_of[n.os_index()]];
    for (uint32_t near : n.near_numa()) {
      auto it = node_of.find(near);
      if (it != node_of.end() && !nodes_[it->second].memory_only)
        lists.near.push_back(static_cast<uint16_t>(it->second));
    }
  }
  if (nodes_.empty()) {  // no NUMA information: one node holding everything
    Node node;
    node.mem_total = node.mem_free = static_cast<int>(std::min<uint32_t>(t.memory_mb(), INT32_MAX));
    nodes_.push_back(node);
    lists_.push_back({{}, "DRAM", {}});
    node_of[0] = 0;
  }
  uint32_t max_pu = 0;
  size_t listed = 0;
  for (const v1::Core& c : t.cores()) {
    for (uint32_t pu : c.pus()) {
      if (pu <= kMaxPuIndex) max_pu = std::max(max_pu, pu);
    }
    listed += c.pus_size();
  }
  pu_owner_.assign(max_pu + 1, 0);
  pu_core_.assign(max_pu + 1, kNoCore);
  core_pus_.reserve(std::min<size_t>(listed, max_pu + 1));
  for (const v1::Core& c : t.cores()) {
    if (cores_.size() >= static_cast<size_t>(kMaxCores)) break;
    Core core;
    auto it = node_of.find(static_cast<uint32_t>(c.numa()));
    core.node = static_cast<uint16_t>(c.numa() >= 0 && it != node_of.end() ? it->second : 0);
    core.l3 = c.l3() >= 0 ? c.l3() : -1 - core.node;
    core.first = static_cast<uint32_t>(core_pus_.size());
    for (uint32_t pu : c.pus()) {
      // Unsupported or listed twice (it counts once).
      if (pu > kMaxPuIndex || pu_core_[pu] != kNoCore) continue;
      pu_core_[pu] = static_cast<uint16_t>(cores_.size());
      core_pus_.push_back(pu);
    }
    core.size = static_cast<uint16_t>(core_pus_.size() - core.first);
    if (core.size == 0) continue;
    core.free = core.size;
    totals_.total_pus += core.free;
    lists_[core.node].cores.push_back(static_cast<uint16_t>(cores_.size()));
    cores_.push_back(core);
  }
  core_pus_.shrink_to_fit();
  cores_.shrink_to_fit();
  for (NodeLists& l : lists_) l.cores.shrink_to_fit();
  totals_.free_pus = totals_.total_pus;
  for (const v1::Gpu& g : t.gpus()) {
    if (gpus_.size() >= static_cast<size_t>(kMaxGpus)) break;
    Gpu gpu;
    gpu.name = GpuId(g);
    gpu.os_name = g.name();
    auto it = node_of.find(static_cast<uint32_t>(g.numa()));
    gpu.node = g.numa() >= 0 && it != node_of.end() ? it->second : -1;
    gpus_.push_back(std::move(gpu));
  }
  for (size_t i = 0; i < nodes_.size(); ++i) Recount(static_cast<int>(i));
}

void AgentTopology::Recount(int node) {
  Node& n = nodes_[node];
  n.total_pus = n.free_pus = n.free_core_pus = 0;
  n.max_core_pus = 1;
  for (int ci : lists_[node].cores) {
    const Core& c = cores_[ci];
    const int size = c.size;
    n.total_pus += size;
    n.free_pus += c.free;
    if (c.free == size) n.free_core_pus += size;
    n.max_core_pus = static_cast<uint16_t>(std::max<int>(n.max_core_pus, size));
  }
  n.free_gpus = 0;
  for (const Gpu& g : gpus_) n.free_gpus += g.node == node && g.owner.empty() ? 1 : 0;
  totals_.free_mem = 0;
  for (const Node& x : nodes_) totals_.free_mem += x.memory_only ? 0 : x.mem_free;
  totals_.free_gpus = 0;
  for (const Gpu& g : gpus_) totals_.free_gpus += g.owner.empty() ? 1 : 0;
}

int AgentTopology::total_memory_mb() const {
  int sum = 0;
  for (const Node& n : nodes_) sum += n.memory_only ? 0 : n.mem_total;
  return sum;
}

namespace {
// Nodes by a key, descending, ties by index: the order greedy choices use.
std::vector<int> OrderBy(size_t n, const std::function<int(int)>& key) {
  std::vector<int> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return key(a) > key(b); });
  return order;
}
template <typename N>
int CpuNodes(absl::Span<const N> nodes) {  // nodes with PUs, at least 1
  int n = 0;
  for (const N& x : nodes) n += x.total_pus > 0 ? 1 : 0;
  return std::max(1, n);
}
}  // namespace

template <typename N>
std::string_view WhyNotByNodes(absl::Span<const N> nodes, const Request& r) {
  if (r.smt == v1::TopologyRequest::exclusive) {
    int whole = 0;
    for (const N& n : nodes) whole += n.free_core_pus;
    if (whole < r.pus) return "smt_exclusive_no_fit";
  }
  switch (r.numa) {
    case v1::TopologyRequest::single:
      if (BestSingleNode(nodes, r) < 0) return "numa_single_no_fit";
      break;
    case v1::TopologyRequest::spread: {
      const int k = std::min(CpuNodes(nodes), std::max(1, r.pus));
      auto order = OrderBy(nodes.size(), [&](int i) { return PusFor(nodes[i], r); });
      const int mem_share = (r.memory_mb + k - 1) / k;
      for (int j = 0; j < k; ++j) {
        const N& n = nodes[order[j]];
        const int share = r.pus / k + (j < r.pus % k ? 1 : 0);
        if (PusFor(n, r) < share || n.mem_free < mem_share) return "numa_spread_no_fit";
      }
      break;
    }
    default:
      break;
  }
  return "";
}

template <typename N>
double SpannedFitScore(absl::Span<const N> nodes, const Request& r) {
  auto order = OrderBy(nodes.size(), [&](int i) { return PusFor(nodes[i], r); });
  int spanned = 0, got = 0;
  for (int i : order) {
    if (got >= r.pus) break;
    got += PusFor(nodes[i], r);
    ++spanned;
  }
  return 40.0 / std::max(1, spanned);
}

template std::string_view WhyNotByNodes(absl::Span<const NodeCounts>, const Request&);
template std::string_view WhyNotByNodes(absl::Span<const NodeFit>, const Request&);
template double SpannedFitScore(absl::Span<const NodeCounts>, const Request&);
template double SpannedFitScore(absl::Span<const NodeFit>, const Request&);

FitCounts::FitCounts(const AgentTopology& t) : totals_(t.totals_) {
  if (t.nodes_.size() > kMaxNodes) return;  // nodes_n_ stays kNone
  nodes_n_ = static_cast<uint8_t>(t.nodes_.size());
  for (uint8_t i = 0; i < nodes_n_; ++i) {
    const NodeCounts& n = t.nodes_[i];
    nodes_[i] = NodeFit{n.mem_free, n.free_pus, n.free_core_pus, n.free_gpus, n.total_pus};
  }
}

std::string_view FitCounts::WhyNot(const Request& r, const AgentTopology& t) const {
  if (nodes_n_ == kNone) return t.WhyNot(r);
  bool settled;
  const std::string_view why = WhyNotByTotals(totals_, r, &settled);
  if (settled) return why;
  return CountsDecide(r) ? WhyNotByNodes(Nodes(), r) : t.WhyNot(r);
}

std::string_view AgentTopology::WhyNotBeyondTotals(const Request& r) const {
  if (!r.memory_kind.empty()) return PlanMemoryKind(r).ok() ? "" : "memory_kind_no_fit";
  if (std::string_view why = WhyNotByNodes<Node>(nodes_, r); !why.empty()) return why;
  if (r.gpus > 0 && r.gpu_numa == v1::TopologyRequest::Gpu::local && !Plan(r).ok())
    return "gpu_locality";
  return "";
}

bool AgentTopology::CouldEverFit(const Request& r) const {
  // The two checks NeverFitReason starts with, without building its
  // sentence: the engine asks this of agents until one could fit.
  if (r.pus > totals_.total_pus || r.gpus > total_gpus()) return false;
  return NeverFitReason(r).empty();
}

std::string AgentTopology::NeverFitReason(const Request& r) const {
  if (r.pus > totals_.total_pus)
    return absl::StrCat("the machine has ", totals_.total_pus, " PUs, the job needs ", r.pus);
  if (r.gpus > total_gpus())
    return absl::StrCat("the machine has ", total_gpus(), " GPUs, the job needs ", r.gpus);
  if (!r.memory_kind.empty()) return KindNeverFitReason(r);
  if (r.memory_mb > total_memory_mb()) {
    return absl::StrCat("the machine has ", total_memory_mb(), " MiB, the job needs ", r.memory_mb);
  }
  if (r.numa == v1::TopologyRequest::single) {
    int max_pus = 0, max_mem = 0;
    bool any = false;
    for (size_t i = 0; i < nodes_.size(); ++i) {
      const Node& n = nodes_[i];
      if (n.memory_only) continue;
      max_pus = std::max<int>(max_pus, n.total_pus);
      max_mem = std::max(max_mem, n.mem_total);
      int local = 0;
      for (const Gpu& g : gpus_) local += g.node == static_cast<int>(i) ? 1 : 0;
      bool gpus_ok =
          r.gpus == 0 || r.gpu_numa != v1::TopologyRequest::Gpu::local || local >= r.gpus;
      any = any || (n.total_pus >= r.pus && n.mem_total >= r.memory_mb && gpus_ok);
    }
    if (!any) {
      if (r.pus > max_pus) {
        return absl::StrCat("numa single: a NUMA node has at most ", max_pus,
                            " PUs, the job needs ", r.pus);
      }
      if (r.memory_mb > max_mem) {
        return absl::StrCat("numa single: a NUMA node has at most ", max_mem,
                            " MiB, the job needs ", r.memory_mb);
      }
      return absl::StrCat("numa single: no NUMA node has ", r.gpus, " local GPUs");
    }
  }
  if (r.gpus > 0 && r.gpu_numa == v1::TopologyRequest::Gpu::local) {
    int known = 0;
    for (const Gpu& g : gpus_) known += g.node >= 0 ? 1 : 0;
    if (known < r.gpus)
      return absl::StrCat("only ", known, " GPUs have a known NUMA locality, the job needs ",
                          r.gpus);
  }
  return "";
}

double AgentTopology::FitScore(const Request& r) const {
  if (r.numa == v1::TopologyRequest::spread) return 100;
  if (!r.memory_kind.empty()) {
    const KindChoice k = BestKindChoice(r);
    if (k.cpu < 0) return 40.0 / std::max<size_t>(1, CpuNodesFor(k.mem).size());
    const Node& n = nodes_[k.cpu];
    return 50.0 + 50.0 * (1.0 - double(PusFor(n, r) - r.pus) / std::max<int>(1, n.total_pus));
  }
  return FitScoreByNodes<Node>(nodes_, r);
}

absl::Status AgentTopology::ChoosePus(int node, int want, bool exclusive,
                                      v1::Allocation* out) const {
  if (want <= 0) return absl::OkStatus();
  // Runs for every placement: small inline vectors, no map or sort buffers.
  const std::vector<uint16_t>& node_cores = lists_[node].cores;
  // Usable PUs per L3 group in this node, by ascending group id.
  absl::InlinedVector<std::pair<int, int>, 8> groups;  // l3, usable PUs
  for (int ci : node_cores) {
    const Core& c = cores_[ci];
    const int usable = exclusive ? (c.free == c.size ? c.free : 0) : c.free;
    if (usable <= 0) continue;
    auto at = std::lower_bound(groups.begin(), groups.end(), c.l3,
                               [](const std::pair<int, int>& g, int l3) { return g.first < l3; });
    if (at == groups.end() || at->first != c.l3) at = groups.insert(at, {c.l3, 0});
    at->second += usable;
  }
  // One cache group that holds the whole job (best fit, the lowest id on a
  // tie); else every group, most usable PUs first.
  auto fit = groups.end();
  for (auto g = groups.begin(); g != groups.end(); ++g) {
    if (g->second >= want && (fit == groups.end() || g->second < fit->second)) fit = g;
  }
  if (fit != groups.end()) {
    groups = {*fit};
  } else {
    std::stable_sort(groups.begin(), groups.end(),
                     [](const auto& a, const auto& b) { return a.second > b.second; });
  }
  out->mutable_pus()->Reserve(out->pus_size() + want);
  int got = 0;
  for (const auto& [g, usable] : groups) {
    // Shared: partly used cores first (in the node's order), keeping whole
    // cores free; then the whole ones.
    for (const bool partly_used : {true, false}) {
      for (int ci : node_cores) {
        const Core& c = cores_[ci];
        if (c.l3 != g || c.free == 0 || (c.free < c.size) != partly_used) continue;
        if (exclusive) {
          if (c.free != c.size) continue;
          for (uint32_t pu : Pus(c)) out->add_pus(pu);
          got += c.size;
        } else {
          for (uint32_t pu : Pus(c)) {
            if (got >= want) break;
            if (pu_owner_[pu] != 0) continue;
            out->add_pus(pu);
            ++got;
          }
        }
        if (got >= want) return absl::OkStatus();
      }
    }
  }
  return absl::InternalError(
      absl::StrCat("NUMA node ", nodes_[node].os_index, " has only ", got, " of ", want, " PUs"));
}

absl::Status AgentTopology::ChooseGpus(const std::vector<int>& nodes, const Request& r,
                                       v1::Allocation* out) const {
  if (r.gpus <= 0) return absl::OkStatus();
  std::vector<int> local, other;
  for (size_t i = 0; i < gpus_.size(); ++i) {
    if (!gpus_[i].owner.empty()) continue;
    bool is_local =
        gpus_[i].node >= 0 && std::find(nodes.begin(), nodes.end(), gpus_[i].node) != nodes.end();
    (is_local ? local : other).push_back(static_cast<int>(i));
  }
  if (r.gpu_numa != v1::TopologyRequest::Gpu::local)
    local.insert(local.end(), other.begin(), other.end());
  if (static_cast<int>(local.size()) < r.gpus) {
    return absl::FailedPreconditionError(
        "gpu_locality: not enough free GPUs local to the job's NUMA nodes");
  }
  for (int k = 0; k < r.gpus; ++k) out->add_gpu_ids(gpus_[local[k]].name);
  return absl::OkStatus();
}

absl::StatusOr<v1::Allocation> AgentTopology::Plan(const Request& r) const {
  if (r.pus <= 0) return absl::InvalidArgumentError("a job needs at least one PU");
  {
    Request basic = r;
    basic.gpu_numa = v1::TopologyRequest::Gpu::any;  // locality is checked by ChooseGpus below
    std::string_view why = WhyNot(basic);
    if (!why.empty()) return absl::FailedPreconditionError(std::string(why));
  }
  if (!r.memory_kind.empty()) return PlanMemoryKind(r);
  const bool exclusive = r.smt == v1::TopologyRequest::exclusive;
  std::vector<std::pair<int, int>> take;  // node, PUs
  std::map<int, int> mem;                 // node, MiB
  auto single = [&](int node) {
    take.emplace_back(node, r.pus);
    mem[node] = r.memory_mb;
  };
  if (r.numa == v1::TopologyRequest::spread) {
    const int k = std::min(CpuNodeCount(), std::max(1, r.pus));
    auto order = OrderBy(nodes_.size(), [&](int i) { return PusFor(nodes_[i], r); });
    int mem_left = r.memory_mb;
    for (int j = 0; j < k; ++j) {
      take.emplace_back(order[j], r.pus / k + (j < r.pus % k ? 1 : 0));
      const int share = j == k - 1 ? mem_left : std::min(mem_left, (r.memory_mb + k - 1) / k);
      mem[order[j]] = share;
      mem_left -= share;
    }
  } else {
    const int best = BestSingleNode(r);
    if (best >= 0) {
      single(best);
    } else if (r.numa == v1::TopologyRequest::single) {
      return absl::FailedPreconditionError("numa_single_no_fit");
    } else {
      // Fewest nodes: fullest first (most usable PUs), preferring local GPUs.
      auto order = OrderBy(nodes_.size(), [&](int i) {
        int local = 0;
        for (const Gpu& g : gpus_) local += g.node == i && g.owner.empty() ? 1 : 0;
        return (r.gpus > 0 ? local * 1'000'000 : 0) + PusFor(nodes_[i], r);
      });
      int left = r.pus;
      for (int i : order) {
        if (left <= 0) break;
        const int n = std::min(left, PusFor(nodes_[i], r));
        if (n <= 0) continue;
        take.emplace_back(i, n);
        left -= n;
      }
      int mem_left = r.memory_mb;
      for (const auto& [node, n] : take) {  // memory next to the PUs first
        const int m = std::min(mem_left, nodes_[node].mem_free);
        if (m > 0) mem[node] += m;
        mem_left -= m;
      }
      for (int i : OrderBy(nodes_.size(), [&](int i) { return nodes_[i].mem_free - mem[i]; })) {
        if (mem_left <= 0) break;
        if (nodes_[i].memory_only) continue;
        const int m = std::min(mem_left, nodes_[i].mem_free - mem[i]);
        if (m > 0) mem[i] += m;
        mem_left -= m;
      }
      if (mem_left > 0) return absl::FailedPreconditionError("insufficient_memory");
    }
  }
  v1::Allocation a;
  std::set<int> used;
  for (const auto& [node, n] : take) {
    if (absl::Status st = ChoosePus(node, n, exclusive, &a); !st.ok()) return st;
    if (n > 0) used.insert(node);
  }
  for (const auto& [node, m] : mem) {
    if (m <= 0) continue;
    (*a.mutable_numa_memory_mb())[nodes_[node].os_index] += m;
    used.insert(node);
  }
  for (int node : used) a.add_numa_nodes(nodes_[node].os_index);
  if (absl::Status st = ChooseGpus(std::vector<int>(used.begin(), used.end()), r, &a); !st.ok())
    return st;
  a.set_cpus(a.pus_size());
  a.set_memory_mb(r.memory_mb);
  a.set_gpus(a.gpu_ids_size());
  return a;
}

int AgentTopology::CpuNodeCount() const { return CpuNodes<Node>(nodes_); }

absl::Status AgentTopology::Commit(const v1::Allocation& a, const std::string& job) {
  std::set<uint32_t> seen;
  for (uint32_t pu : a.pus()) {
    if (pu >= pu_core_.size() || pu_core_[pu] == kNoCore)
      return absl::InvalidArgumentError(absl::StrCat("no PU ", pu));
    if (pu_owner_[pu] != 0) {
      return absl::FailedPreconditionError(
          absl::StrCat("PU ", pu, " is already allocated to ", owners_[pu_owner_[pu] - 1]));
    }
    if (!seen.insert(pu).second)
      return absl::InvalidArgumentError(absl::StrCat("PU ", pu, " listed twice"));
  }
  std::map<int, int> mem;
  for (const auto& [os, m] : a.numa_memory_mb()) {
    int node = -1;
    for (size_t i = 0; i < nodes_.size(); ++i) {
      if (nodes_[i].os_index == os) node = static_cast<int>(i);
    }
    if (node < 0) return absl::InvalidArgumentError(absl::StrCat("no NUMA node ", os));
    if (m < 0 || nodes_[node].mem_free < m) {
      return absl::FailedPreconditionError(
          absl::StrCat("NUMA node ", os, " has ", nodes_[node].mem_free, " MiB free, not ", m));
    }
    mem[node] = m;
  }
  std::vector<int> gpus;
  for (const std::string& name : a.gpu_ids()) {
    int found = -1;
    for (size_t i = 0; i < gpus_.size(); ++i) {
      if (gpus_[i].name == name || gpus_[i].os_name == name) found = static_cast<int>(i);
    }
    if (found < 0) return absl::InvalidArgumentError(absl::StrCat("no GPU ", name));
    if (!gpus_[found].owner.empty() || std::find(gpus.begin(), gpus.end(), found) != gpus.end()) {
      return absl::FailedPreconditionError(absl::StrCat("GPU ", name, " is already allocated"));
    }
    gpus.push_back(found);
  }
  std::set<int> touched;
  const uint32_t slot = a.pus_size() > 0 ? OwnerSlot(job, true) : 0;
  for (uint32_t pu : a.pus()) {
    pu_owner_[pu] = static_cast<uint16_t>(slot);
    ++owner_pus_[slot - 1];
    Core& c = cores_[pu_core_[pu]];
    --c.free;
    --totals_.free_pus;
    touched.insert(c.node);
  }
  for (const auto& [node, m] : mem) nodes_[node].mem_free -= m;
  for (int g : gpus) gpus_[g].owner = job;
  // Every node: memory and GPUs may change on nodes whose PUs did not.
  for (size_t i = 0; i < nodes_.size(); ++i) Recount(static_cast<int>(i));
  return absl::OkStatus();
}

uint32_t AgentTopology::OwnerSlot(const std::string& job, bool create) {
  uint32_t free_slot = 0;
  for (size_t i = 0; i < owners_.size(); ++i) {
    if (owners_[i] == job) return static_cast<uint32_t>(i + 1);
    if (free_slot == 0 && owner_pus_[i] == 0) free_slot = static_cast<uint32_t>(i + 1);
  }
  if (!create) return 0;
  if (free_slot == 0) {
    owners_.emplace_back();
    owner_pus_.push_back(0);
    free_slot = static_cast<uint32_t>(owners_.size());
  }
  owners_[free_slot - 1] = job;
  return free_slot;
}

void AgentTopology::Release(const v1::Allocation& a, const std::string& job) {
  std::set<int> touched;
  bool held = false;
  const uint32_t slot = OwnerSlot(job, false);
  for (uint32_t pu : a.pus()) {
    if (slot == 0 || pu >= pu_owner_.size() || pu_owner_[pu] != slot) continue;
    pu_owner_[pu] = 0;
    if (--owner_pus_[slot - 1] == 0) owners_[slot - 1].clear();  // the slot is free again
    Core& c = cores_[pu_core_[pu]];
    ++c.free;
    ++totals_.free_pus;
    touched.insert(c.node);
    held = true;
  }
  for (Gpu& g : gpus_) {
    if (g.owner == job) {
      g.owner.clear();
      held = true;
    }
  }
  // Memory is returned only when the job held something here: a second
  // Release of the same allocation must not add memory twice.
  if (held || a.pus_size() == 0) {
    for (const auto& [os, m] : a.numa_memory_mb()) {
      for (Node& n : nodes_) {
        if (n.os_index == os) n.mem_free = std::min(n.mem_total, n.mem_free + m);
      }
    }
  }
  // Every node: memory and GPUs may change on nodes whose PUs did not.
  for (size_t i = 0; i < nodes_.size(); ++i) Recount(static_cast<int>(i));
}

void AgentTopology::Describe(v1::Agent* out) const {
  for (size_t pu = 0; pu < pu_owner_.size(); ++pu) {
    if (pu_owner_[pu] != 0)
      (*out->mutable_pu_jobs())[static_cast<uint32_t>(pu)] = owners_[pu_owner_[pu] - 1];
  }
  for (const Gpu& g : gpus_) {
    if (!g.owner.empty()) (*out->mutable_gpu_jobs())[g.name] = g.owner;
  }
  for (const Node& n : nodes_) (*out->mutable_numa_free_memory_mb())[n.os_index] = n.mem_free;
}

}  // namespace portolan::topology
