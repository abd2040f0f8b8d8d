// Built-in plugins of the foundation: health and resource fit filters, and the
// bin_pack / spread scores. The policy engine adds residency, network and
// topology plugins beside these.
#include <algorithm>

#include "absl/strings/str_cat.h"
#include "portolan/placement.h"

namespace portolan::placement {
namespace {

// Rejects agents that must not take new work.
class AgentHealth : public FilterPlugin {
 public:
  std::string_view Name() const override { return "agent_health"; }
  FilterResult Filter(CycleState&, const v1::Job&, const AgentView& a) const override {
    switch (a.agent->state()) {
      case v1::Agent::ready:
        break;
      case v1::Agent::cordoned:
        return FilterResult::Reject("cordoned");
      case v1::Agent::draining:
        return FilterResult::Reject("draining");
      case v1::Agent::lost:
        return FilterResult::Reject("agent_lost");
      default:
        return FilterResult::Reject("agent_not_ready");
    }
    if (!a.agent->connected()) return FilterResult::Reject("agent_disconnected");
    return FilterResult::Pass();
  }
};

// Requests must be positive and fit what is free now. A request larger than
// every agent's total capacity is still a Filter rejection here: an agent big
// enough may join later.
class ResourceFit : public FilterPlugin, public PreFilterPlugin {
 public:
  std::string_view Name() const override { return "resource_fit"; }
  absl::Status PreFilter(CycleState&, const v1::Job& job) const override {
    if (job.resources().cpus() <= 0)
      return absl::InvalidArgumentError("resources.cpus must be > 0");
    return absl::OkStatus();
  }
  FilterResult Filter(CycleState&, const v1::Job& job, const AgentView& a) const override {
    const v1::Resources& r = job.resources();
    if (r.cpus() > a.free.cpus()) {
      return FilterResult::Reject(
          "insufficient_cpus", absl::StrCat("needs ", r.cpus(), " cpus, ", a.free.cpus(), " free"));
    }
    if (r.memory_mb() > a.free.memory_mb()) {
      return FilterResult::Reject(
          "insufficient_memory",
          absl::StrCat("needs ", r.memory_mb(), " MiB, ", a.free.memory_mb(), " MiB free"));
    }
    if (r.gpus() > a.free.gpus()) {
      return FilterResult::Reject(
          "insufficient_gpus", absl::StrCat("needs ", r.gpus(), " gpus, ", a.free.gpus(), " free"));
    }
    return FilterResult::Pass();
  }
};

// placement.sites (run only there) and placement.avoid_sites (never there).
class SiteAffinity : public FilterPlugin {
 public:
  std::string_view Name() const override { return "site_affinity"; }
  FilterResult Filter(CycleState&, const v1::Job& job, const AgentView& a) const override {
    const auto& want = job.placement().sites();
    const std::string& site = a.agent->site();
    if (!want.empty() && std::find(want.begin(), want.end(), site) == want.end()) {
      return FilterResult::Reject("site_not_requested");
    }
    const auto& avoid = job.placement().avoid_sites();
    if (std::find(avoid.begin(), avoid.end(), site) != avoid.end()) {
      return FilterResult::Reject("site_avoided");
    }
    return FilterResult::Pass();
  }
};

double UsedFraction(const AgentView& a, const v1::Job& job) {
  const v1::Resources& cap = a.agent->capacity();
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
  double Score(CycleState&, const v1::Job& job, const AgentView& a) const override {
    return 100.0 * UsedFraction(a, job);
  }
};

// Prefers the emptiest agent: spreads load.
class Spread : public ScorePlugin {
 public:
  std::string_view Name() const override { return "spread"; }
  double Score(CycleState&, const v1::Job& job, const AgentView& a) const override {
    return 100.0 * (1.0 - UsedFraction(a, job));
  }
};

}  // namespace

void RegisterBuiltins(Registry& registry) {
  registry.Register("agent_health", [] { return std::make_unique<AgentHealth>(); });
  registry.Register("site_affinity", [] { return std::make_unique<SiteAffinity>(); });
  registry.Register("resource_fit", [] { return std::make_unique<ResourceFit>(); });
  registry.Register("bin_pack", [] { return std::make_unique<BinPack>(); });
  registry.Register("spread", [] { return std::make_unique<Spread>(); });
}

}  // namespace portolan::placement
