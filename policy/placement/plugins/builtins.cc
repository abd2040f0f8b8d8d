// SPDX-License-Identifier: Apache-2.0
// Built-in placement plugins. Site-level filters and scores run once per
// catalogue site; agent-level ones only on agents of allowed sites.
#include <algorithm>
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "policy/placement/plugins/plugins.h"
#include "portolan/placement/placement.h"

namespace portolan::placement {
namespace {

template <typename C, typename V>
bool Contains(const C& c, const V& v) {
  return std::find(c.begin(), c.end(), v) != c.end();
}

// placement.sites / avoid_sites at site level; placement.agent_labels at agent level.
class SiteAffinity : public SiteFilterPlugin, public FilterPlugin {
 public:
  std::string_view Name() const override { return "site_affinity"; }
  FilterResult FilterSite(CycleState&, const DecisionInput& in, const v1::Site& site,
                          v1::SiteDecision&) const override {
    const v1::PlacementRequest& p = in.job->placement();
    if (!p.sites().empty() && !Contains(p.sites(), site.id())) {
      return FilterResult::ExcludedByJob(
          "site_not_requested", absl::StrCat("the job asks for ", absl::StrJoin(p.sites(), ", ")));
    }
    if (Contains(p.avoid_sites(), site.id()))
      return FilterResult::ExcludedByJob("site_avoided", "the job avoids it");
    return FilterResult::Pass();
  }
  bool AppliesAt(CycleState&, const DecisionInput& in, const v1::Site&) const override {
    return !in.job->placement().agent_labels().empty();  // usually nothing to match
  }
  AgentVerdict Filter(CycleState&, const DecisionInput& in, const AgentView& a) const override {
    for (const auto& [k, v] : in.job->placement().agent_labels()) {
      auto it = a.agent->labels().find(k);
      if (it == a.agent->labels().end() || it->second != v)
        return AgentVerdict::Reject("label_mismatch");
    }
    return AgentVerdict::Pass();
  }
};

// placement.max_rtt_ms: RTT from the candidate site to each named site.
class LatencyLimit : public SiteFilterPlugin {
 public:
  std::string_view Name() const override { return "latency_limit"; }
  // The limits and the site's network index come from the engine
  // (CycleState), looked up once per decision and per site.
  FilterResult FilterSite(CycleState& state, const DecisionInput& in, const v1::Site&,
                          v1::SiteDecision&) const override {
    if (state.rtt_limits.empty()) return FilterResult::Pass();
    const network::NetworkModel& net = in.policy->network();
    std::vector<std::string> over;
    for (const auto& [other, limit, other_index] : state.rtt_limits) {
      const double rtt = net.Rtt(state.site_network_index, other_index);
      if (rtt < 0) {
        over.push_back(absl::StrCat("no network path to ", std::string(other)));
      } else if (rtt > limit) {
        over.push_back(
            absl::StrFormat("RTT to %s is %g ms, limit %g ms", std::string(other), rtt, limit));
      }
    }
    if (over.empty()) return FilterResult::Pass();
    return FilterResult::Reject("latency_limit", absl::StrJoin(over, ", "));
  }
};

// Rejects agents that must not take new work.
class AgentHealth : public FilterPlugin {
 public:
  std::string_view Name() const override { return "agent_health"; }
  AgentVerdict Filter(CycleState&, const DecisionInput&, const AgentView& a) const override {
    switch (a.state) {
      case v1::Agent::ready:
        break;
      case v1::Agent::cordoned:
        return AgentVerdict::Reject("cordoned");
      case v1::Agent::draining:
        return AgentVerdict::Reject("draining");
      case v1::Agent::lost:
        return AgentVerdict::Reject("agent_lost");
      default:
        return AgentVerdict::Reject("agent_not_ready");
    }
    if (!a.connected) return AgentVerdict::Reject("agent_disconnected");
    return AgentVerdict::Pass();
  }
};

// Agents must keep tenants apart at least as well as their site requires
// (Site.isolation_required): each required capability must be reported by
// the agent at registration. Sites without a minimum pass every agent.
class IsolationFilter : public FilterPlugin {
 public:
  std::string_view Name() const override { return "isolation"; }
  bool AppliesAt(CycleState&, const DecisionInput&, const v1::Site& site) const override {
    return site.has_isolation_required();  // sites without a minimum pass every agent
  }
  AgentVerdict Filter(CycleState& state, const DecisionInput& in,
                      const AgentView& a) const override {
    return Missing(state, in, a).empty() ? AgentVerdict::Pass()
                                         : AgentVerdict::Reject("isolation_below_site_minimum");
  }
  std::string Explain(CycleState& state, const DecisionInput& in, const AgentView& a,
                      std::string_view) const override {
    const v1::Site* site = SiteOf(state, in, a);
    return absl::StrCat("the agent lacks ", absl::StrJoin(Missing(state, in, a), ", "),
                        ", which site ", site != nullptr ? site->id() : a.agent->site(),
                        " requires");
  }

 private:
  static const v1::Site* SiteOf(const CycleState& state, const DecisionInput& in,
                                const AgentView& a) {
    // The engine examines a site's agents with state.site set to it.
    return state.site != nullptr ? state.site : in.policy->FindSite(a.agent->site());
  }
  // The capabilities the agent's site requires and the agent lacks.
  static std::vector<const char*> Missing(const CycleState& state, const DecisionInput& in,
                                          const AgentView& a) {
    std::vector<const char*> missing;
    const v1::Site* site = SiteOf(state, in, a);
    if (site == nullptr || !site->has_isolation_required()) return missing;
    const v1::Isolation& need = site->isolation_required();
    const v1::Isolation& have = a.agent->isolation();
    if (need.uid_per_job() && !have.uid_per_job()) missing.push_back("a uid per job");
    if (need.pid_ns() && !have.pid_ns()) missing.push_back("PID namespace");
    if (need.mount_ns() && !have.mount_ns()) missing.push_back("mount namespace");
    const bool need_cgroup =
        need.cgroup() == v1::Isolation::v1 || need.cgroup() == v1::Isolation::v2;
    const bool have_cgroup =
        have.cgroup() == v1::Isolation::v1 || have.cgroup() == v1::Isolation::v2;
    if (need_cgroup && !have_cgroup) missing.push_back("cgroup");
    if (need.memory_limit() && !have.memory_limit()) missing.push_back("memory limit");
    if (need.cpuset() && !have.cpuset()) missing.push_back("cpuset");
    if (need.pids_limit() && !have.pids_limit()) missing.push_back("pids limit");
    if (need.tree_kill() && !have.tree_kill()) missing.push_back("whole-tree kill");
    return missing;
  }
};

// Requests must be positive and fit what is free now.
class ResourceFit : public FilterPlugin, public PreFilterPlugin {
 public:
  std::string_view Name() const override { return "resource_fit"; }
  absl::Status PreFilter(CycleState&, const DecisionInput& in) const override {
    if (in.job->resources().cpus() <= 0)
      return absl::InvalidArgumentError("resources.cpus must be > 0");
    return absl::OkStatus();
  }
  AgentVerdict Filter(CycleState&, const DecisionInput& in, const AgentView& a) const override {
    const v1::Resources& r = in.job->resources();
    if (r.cpus() > a.free.cpus()) return AgentVerdict::Reject("insufficient_cpus");
    // Memory of a named kind (HBM, ...) is not in the ordinary free figure:
    // topology_fit checks it.
    if (r.memory_mb() > a.free.memory_mb() && in.job->topology().memory_kind().empty())
      return AgentVerdict::Reject("insufficient_memory");
    if (r.gpus() > a.free.gpus()) return AgentVerdict::Reject("insufficient_gpus");
    return AgentVerdict::Pass();
  }
};

// Concrete hardware: NUMA placement, whole cores, GPU locality (see
// topology_alloc.h). Agents without a known topology pass.
class TopologyFit : public FilterPlugin {
 public:
  std::string_view Name() const override { return "topology_fit"; }
  AgentVerdict Filter(CycleState& state, const DecisionInput&, const AgentView& a) const override {
    if (a.topo == nullptr) {
      // Without a topology there is no memory kind to give.
      return state.request.memory_kind.empty() ? AgentVerdict::Pass()
                                               : AgentVerdict::Reject("memory_kind_no_fit");
    }
    return AgentVerdict::Reject(a.fit.WhyNot(state.request, *a.topo));  // "" passes
  }
};

// Prefers the allocation that leaves the least fragmentation: a tight fit in
// one NUMA node scores highest, spanning nodes lowest.
class NumaFit : public ScorePlugin {
 public:
  std::string_view Name() const override { return "numa_fit"; }
  double Score(CycleState& state, const DecisionInput&, const AgentView& a) const override {
    return a.topo == nullptr ? 100.0 : a.fit.FitScore(state.request, *a.topo);
  }
};

// Seconds to move the job's datasets to the site (0 where they already are).
class DataGravity : public SiteScorePlugin {
 public:
  std::string_view Name() const override { return "data_gravity"; }
  double SiteCost(CycleState&, const DecisionInput&, const v1::Site&,
                  const v1::SiteDecision& d) const override {
    return std::max(0.0, d.transfer_s());
  }
};

// RTT to the sites the job names in max_rtt_ms (or to its data).
class Latency : public SiteScorePlugin {
 public:
  std::string_view Name() const override { return "latency"; }
  double SiteCost(CycleState&, const DecisionInput&, const v1::Site&,
                  const v1::SiteDecision& d) const override {
    return d.rtt_ms();
  }
};

// Site price per core-hour for the job's cores.
class Cost : public SiteScorePlugin {
 public:
  std::string_view Name() const override { return "cost"; }
  double SiteCost(CycleState&, const DecisionInput& in, const v1::Site& site,
                  const v1::SiteDecision&) const override {
    return site.price_per_core_hour() * in.job->resources().cpus();
  }
};

// Prefers placements that need no transfer instrument.
class CompliancePreference : public SiteScorePlugin {
 public:
  std::string_view Name() const override { return "compliance_preference"; }
  double SiteCost(CycleState&, const DecisionInput&, const v1::Site&,
                  const v1::SiteDecision& d) const override {
    double n = 0;
    for (const v1::Compliance& c : d.residency().datasets()) n += c.instrument().empty() ? 0 : 1;
    return n;
  }
};

double UsedFraction(const AgentView& a, const v1::Job& job) {
  const v1::Resources& cap = a.capacity;
  double cpu =
      cap.cpus() > 0 ? 1.0 - double(a.free.cpus() - job.resources().cpus()) / cap.cpus() : 1;
  double mem =
      cap.memory_mb() > 0
          ? 1.0 - double(a.free.memory_mb() - job.resources().memory_mb()) / cap.memory_mb()
          : 1;
  return (cpu + mem) / 2;
}

// Prefers the fullest agent that fits: keeps whole machines free.
class BinPack : public ScorePlugin {
 public:
  std::string_view Name() const override { return "bin_pack"; }
  double Score(CycleState&, const DecisionInput& in, const AgentView& a) const override {
    return 100.0 * UsedFraction(a, *in.job);
  }
};

// Prefers the emptiest agent: spreads load.
class Spread : public ScorePlugin {
 public:
  std::string_view Name() const override { return "spread"; }
  double Score(CycleState&, const DecisionInput& in, const AgentView& a) const override {
    return 100.0 * (1.0 - UsedFraction(a, *in.job));
  }
};

}  // namespace

void RegisterBuiltins(Registry& registry) {
  const std::vector<Registry::Factory> builtins = {
      [] { return std::make_unique<SiteAffinity>(); },
      [] { return std::make_unique<LatencyLimit>(); },
      [] { return std::make_unique<AgentHealth>(); },
      [] { return std::make_unique<IsolationFilter>(); },
      [] { return std::make_unique<ResourceFit>(); },
      [] { return std::make_unique<DataGravity>(); },
      [] { return std::make_unique<Latency>(); },
      [] { return std::make_unique<Cost>(); },
      [] { return std::make_unique<CompliancePreference>(); },
      [] { return std::make_unique<BinPack>(); },
      [] { return std::make_unique<Spread>(); },
      [] { return std::make_unique<TopologyFit>(); },
      [] { return std::make_unique<NumaFit>(); },
      NewResidencyPlugin,
      NewDrfQueueSort,
      NewPriorityFifoQueueSort,
  };
  for (const Registry::Factory& f : builtins) {
    if (absl::Status st = registry.Register(f); !st.ok()) {
      // A programming error (a built-in registered twice, or two built-ins
      // sharing a name): no policy could be trusted to mean one thing.
      std::fprintf(stderr, "portolan: built-in placement plugins: %s\n",
                   std::string(st.message()).c_str());
      std::abort();
    }
  }
}

}  // namespace portolan::placement
