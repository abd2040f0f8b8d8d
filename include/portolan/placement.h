#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "portolan/v1/agent.pb.h"
#include "portolan/v1/job.pb.h"

namespace portolan::placement {

// What the framework knows of one agent during one decision. The scheduler
// builds these from its own state under its lock; plugins only read them.
struct AgentView {
  const v1::Agent* agent = nullptr;
  v1::Resources free;  // capacity minus what placed/running jobs hold
};

// Scratch space shared by the plugins of one decision (one job, one cycle).
struct CycleState {
  std::map<std::string, double> values;
};

// Outcome of a Filter: ok, or a short reason code ("insufficient_cpus") that
// the fast path counts per reason, plus a sentence for explanations.
struct FilterResult {
  bool ok = true;
  std::string code;
  std::string detail;
  static FilterResult Pass() { return {}; }
  static FilterResult Reject(std::string code, std::string detail = "") {
    return {false, std::move(code), std::move(detail)};
  }
};

// Extension points, after the Kubernetes scheduling framework. Plugins are
// stateless across decisions (per-decision data goes in CycleState) and must
// be safe to call from several threads at once.
class Plugin {
 public:
  virtual ~Plugin() = default;
  virtual std::string_view Name() const = 0;
};

// Once per job before any agent is looked at; an error makes the job
// unschedulable with that message (e.g. a request no agent could ever meet).
class PreFilterPlugin : public virtual Plugin {
 public:
  virtual absl::Status PreFilter(CycleState& state, const v1::Job& job) const = 0;
};

class FilterPlugin : public virtual Plugin {
 public:
  virtual FilterResult Filter(CycleState& state, const v1::Job& job,
                              const AgentView& agent) const = 0;
};

// 0 (worst) to 100 (best); the engine multiplies by the configured weight.
class ScorePlugin : public virtual Plugin {
 public:
  virtual double Score(CycleState& state, const v1::Job& job, const AgentView& agent) const = 0;
};

// Named plugin factories. The registry is explicit: main() (or a test)
// registers what exists; the policy names which to enable.
class Registry {
 public:
  using Factory = std::function<std::unique_ptr<Plugin>()>;
  void Register(std::string name, Factory factory);
  absl::StatusOr<std::unique_ptr<Plugin>> Create(const std::string& name) const;
  std::vector<std::string> Names() const;

 private:
  std::map<std::string, Factory> factories_;
};

// Registers the built-in plugins: agent_health, site_affinity, resource_fit,
// bin_pack, spread.
void RegisterBuiltins(Registry& registry);

struct EngineConfig {
  std::vector<std::string> filters = {"agent_health", "site_affinity", "resource_fit"};
  std::map<std::string, double> scores = {{"bin_pack", 1.0}};
};

struct Decision {
  bool feasible = false;
  std::string agent_id;
  std::string site;
  double score = 0;
  std::map<std::string, double> scores;  // per plugin, 0-100 before weighting
  int considered = 0;
  int feasible_agents = 0;
  std::map<std::string, int> rejected;  // reason code -> agents
  std::string prefilter_error;          // set when PreFilter refused the job

  // "0/3 agents: 2 insufficient_cpus, 1 cordoned".
  std::string Summary() const;
};

// Runs the enabled plugins over a snapshot of agents. Thread-safe for
// concurrent Place() calls; immutable after construction.
class Engine {
 public:
  static absl::StatusOr<std::unique_ptr<Engine>> Create(const Registry& registry,
                                                        const EngineConfig& config);
  Decision Place(const v1::Job& job, const std::vector<AgentView>& agents) const;

 private:
  Engine() = default;
  std::vector<std::unique_ptr<Plugin>> owned_;
  std::vector<const PreFilterPlugin*> prefilters_;
  std::vector<const FilterPlugin*> filters_;
  std::vector<std::pair<const ScorePlugin*, double>> scores_;
};

}  // namespace portolan::placement
