// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/civil_time.h"
#include "absl/time/time.h"
#include "google/protobuf/arena.h"
#include "portolan/policy/policy.h"
#include "portolan/residency/residency.h"
#include "portolan/topology/allocator.h"
#include "portolan/v1/agent.pb.h"
#include "portolan/v1/api.pb.h"
#include "portolan/v1/job.pb.h"
#include "portolan/v1/policy.pb.h"

namespace portolan::placement {

// What the framework knows of one agent during one decision. The scheduler
// builds these from its own state under its lock; plugins only read them.
struct AgentView {
  // `agent` must outlive the view; its state, connection and capacity are
  // copied now (they do not change while the scheduler's lock is held).
  AgentView(const v1::Agent* agent, v1::Resources free,
            const topology::AgentTopology* topo = nullptr)
      : agent(agent),
        free(std::move(free)),
        topo(topo),
        state(agent->state()),
        connected(agent->connected()),
        capacity(agent->capacity()),
        fit(topo != nullptr ? topology::FitCounts(*topo) : topology::FitCounts()) {}

  // After the agent's topology changed while this view is in use (a job
  // placed on it within the same pass): copies its counts again, with
  // `now_free` as what is free.
  void Refresh(v1::Resources now_free) {
    free = std::move(now_free);
    RefreshTopology();
  }
  // Copies the topology's counts again, leaving `free` as it is.
  void RefreshTopology() {
    if (topo != nullptr) fit = topology::FitCounts(*topo);
  }

  const v1::Agent* agent;
  v1::Resources free;  // capacity minus what placed/running jobs hold
  // The agent's hardware and what of it is free; null when unknown (then
  // only the counts above are checked).
  const topology::AgentTopology* topo;
  // What every examined agent's filters and scores read of its message,
  // kept beside the view: a decision examines hundreds of agents, and
  // reaching into each one's message (and its capacity's) cost a cache
  // miss or two apiece (docs/performance.md).
  v1::Agent::State state;
  bool connected;
  v1::Resources capacity;
  // The topology's counts as they were when the view was made or last
  // refreshed; topology_fit and numa_fit ask it (with `topo` for what counts
  // cannot decide), so most decisions never touch the topology itself.
  topology::FitCounts fit;
};

// Everything one decision reads. All pointers outlive the decision.
struct DecisionInput {
  const v1::Job* job = nullptr;
  const v1::Tenant* tenant = nullptr;  // nullptr: a tenant with no profile
  const policy::CompiledPolicy* policy = nullptr;
  const residency::Ledger* ledger = nullptr;
  absl::CivilDay today;
  // Agents grouped by site id; sites absent from the catalogue are ignored.
  // Each site's agents in ascending id order, as the scheduler's registry
  // lists them: agents of a site that score alike go to the one listed
  // first, so the smallest id wins a tie.
  const std::map<std::string, std::vector<AgentView>>* agents_by_site = nullptr;
  // Sites the tenant's per-site quota closes to this job for now, site ->
  // reason (the scheduler's CheckQuota); may be null. A job that only such
  // sites could take waits (a quota can change), never unschedulable.
  const std::map<std::string, std::string>* quota_closed = nullptr;
  // Throughput staging transfers measured per path; used for transfer time
  // (data_gravity) when the policy's datasets.use_measured_throughput is on.
  // May be null.
  const network::MeasuredPaths* measured = nullptr;
};

// What the plugins of one decision (one job, one cycle) share, computed once
// by the engine or a PreFilter. Typed fields, not a string-keyed map: a
// plugin that needs more adds a field here with who sets it and who reads it.
struct CycleState {
  // The job's hardware request (cores, PUs, NUMA placement, GPUs), set by the
  // engine before any plugin runs; read by topology_fit and numa_fit.
  topology::Request request;
  // While agent filters and scores run: the catalogue site of the agents
  // being examined (the engine goes site by site), so that a plugin needing
  // the agent's site does not look it up per agent. Null elsewhere.
  const v1::Site* site = nullptr;
  // This job's residency verdict at each catalogue site, in the policy's
  // order: looked up (or evaluated) once per decision by the residency
  // plugin, which caches them by what they depend on.
  std::shared_ptr<const std::vector<v1::ResidencyVerdict>> residency;
  // While site filters run: the network model's index of the site being
  // filtered (-1 when the model has no such site), looked up by the engine
  // once for its network estimate.
  int site_network_index = -1;
  // The job's placement.max_rtt_ms, by site name (the order explanations
  // list them in) with each site's network index: set by the engine once
  // per decision.
  struct RttLimit {
    std::string_view site;
    double limit_ms = 0;
    int index = -1;
  };
  std::vector<RttLimit> rtt_limits;
};

// Outcome of a site-level Filter: ok, or a short reason code
// ("residency") plus a sentence for explanations.
struct FilterResult {
  bool ok = true;
  std::string_view code;
  std::string detail;
  // The job's own placement request excluded this (it asks for other sites,
  // or avoids this one): an explanation counts such sites instead of listing
  // them as blocking. The engine knows no plugin's codes; plugins say this.
  bool job_choice = false;
  static FilterResult Pass() { return {}; }
  static FilterResult Reject(std::string_view code, std::string detail = "") {
    return {false, code, std::move(detail), false};
  }
  static FilterResult ExcludedByJob(std::string_view code, std::string detail = "") {
    return {false, code, std::move(detail), true};
  }
};

// Extension points, after the Kubernetes scheduling framework, but decided per
// site first: site-level plugins run once per site per job, agent-level ones
// only on agents of sites still allowed. Plugins hold no per-decision state
// (that goes in CycleState) and must be safe to call from several threads.
class Plugin {
 public:
  virtual ~Plugin() = default;
  virtual std::string_view Name() const = 0;
};

// Once per job before anything else; an error makes the job unschedulable.
class PreFilterPlugin : public virtual Plugin {
 public:
  virtual absl::Status PreFilter(CycleState& state, const DecisionInput& in) const = 0;
};

// Once per catalogue site. May fill parts of `out` (e.g. the residency
// verdict) for the explanation, whether it passes or not.
class SiteFilterPlugin : public virtual Plugin {
 public:
  virtual FilterResult FilterSite(CycleState& state, const DecisionInput& in, const v1::Site& site,
                                  v1::SiteDecision& out) const = 0;
};

// Outcome of an agent-level Filter: passes (no code), or a reason code that
// must point at static storage (a string literal), since the engine counts
// rejections by it without copying. Two words, returned in registers: a
// decision asks hundreds of agents. A rejection that needs a sentence gives
// it from FilterPlugin::Explain.
struct AgentVerdict {
  std::string_view code;
  bool ok() const { return code.empty(); }
  static AgentVerdict Pass() { return {}; }
  static AgentVerdict Reject(std::string_view code) { return {code}; }
};

// Once per agent of an allowed site.
class FilterPlugin : public virtual Plugin {
 public:
  virtual AgentVerdict Filter(CycleState& state, const DecisionInput& in,
                              const AgentView& agent) const = 0;
  // What is wrong with `agent`, which Filter rejected with `code`, as a
  // sentence for the explanation ("isolation below the site's minimum":
  // which capabilities it lacks); "" when the code says it all. The engine
  // asks once per site and reason, for the first agent rejected so.
  virtual std::string Explain(CycleState& state, const DecisionInput& in, const AgentView& agent,
                              std::string_view code) const {
    return "";
  }
  // Whether Filter can reject any agent of `site` for this job. The engine
  // asks once per allowed site and decision, and does not call Filter on the
  // site's agents when the answer is no (as a Kubernetes PreFilter may skip
  // its Filter): a decision examines hundreds of agents. Answer false only
  // where Filter would pass every agent of the site; the default is true.
  virtual bool AppliesAt(CycleState& state, const DecisionInput& in, const v1::Site& site) const {
    return true;
  }
};

// A site's raw cost for this job (lower is better: seconds, ms, price ...).
// The engine normalizes costs over the candidate sites to 0-100 (best 100).
class SiteScorePlugin : public virtual Plugin {
 public:
  virtual double SiteCost(CycleState& state, const DecisionInput& in, const v1::Site& site,
                          const v1::SiteDecision& decided) const = 0;
};

// 0 (worst) to 100 (best) for one feasible agent.
class ScorePlugin : public virtual Plugin {
 public:
  virtual double Score(CycleState& state, const DecisionInput& in,
                       const AgentView& agent) const = 0;
};

// What Reserve and Unreserve may change, handed in by the scheduler under
// its lock for one placement. Reserve plugins change shared state here (the
// ledger) and leave the records the scheduler stores once the placement is
// committed; Unreserve undoes its plugin's changes, and then nothing is
// stored. One context per placement; not shared between threads.
struct ReserveContext {
  residency::Ledger* ledger = nullptr;
  absl::Time now;
  // Cross-border transfers to append to the audit trail.
  std::vector<v1::AuditRecord> audit;
  // Ledger entries (tenant, year, origin) that grew: stored, and the tenant's
  // running jobs re-checked (a threshold counts every export of the year).
  struct LedgerKey {
    std::string tenant;
    int year = 0;
    std::string origin;
    std::string dataset;
    uint32_t subjects = 0, sensitive_subjects = 0;
  };
  std::vector<LedgerKey> ledger_grew;
};

// Reserve runs when the scheduler commits a placement, Unreserve when that is
// undone before the job runs (the agent's resources could not be committed).
// A failing Reserve un-reserves the plugins reserved before it.
class ReservePlugin : public virtual Plugin {
 public:
  virtual absl::Status Reserve(const DecisionInput& in, const v1::Decision& decision,
                               ReserveContext& ctx) const = 0;
  virtual void Unreserve(const DecisionInput& in, const v1::Decision& decision,
                         ReserveContext& ctx) const = 0;
};

// Everything a placement decision reads of a job (tenant, kind, resources,
// topology, datasets, placement request), as deterministic bytes: two jobs
// with the same class get the same decision from the same state. The
// scheduling pass and the policy what-if decide once per class.
std::string DecisionClass(const v1::Job& job);

// One job waiting in a scheduling pass.
struct QueuedJob {
  std::string id;
  std::string tenant;
  int priority = 0;
  double weight = 1;  // the tenant's fair-share weight (> 0; Tenant.weight)
};

// The order of one scheduling pass: jobs are added in the scheduler's
// priority-then-FIFO order, charged as they are placed, and taken with Next.
// Made per pass by a QueueSort plugin; single-threaded.
class JobQueue {
 public:
  virtual ~JobQueue() = default;
  virtual void Add(const QueuedJob& job) = 0;
  // `tenant` holds (or was just given) `r`: later picks may weigh it.
  virtual void Charge(const std::string& tenant, const v1::Resources& r) = 0;
  // The next job to try; false when none is left.
  virtual bool Next(std::string* id) = 0;
};

// Orders each pass's waiting jobs (the policy's plugins.queue_sort; one per
// policy, "drf" by default).
class QueueSortPlugin : public virtual Plugin {
 public:
  // A queue for one pass over a cluster of `capacity` in total.
  virtual std::unique_ptr<JobQueue> NewQueue(const v1::Resources& capacity) const = 0;
  // True when each tenant's jobs of a priority come out in the order they
  // were added, and which job comes next never depends on jobs not yet
  // reached in those lists: then a pass may add only the first jobs of each
  // tenant (the scheduler does when few can start) and see the same order
  // up to the end of the shortest list it cut.
  virtual bool FifoWithinTenant() const { return false; }
};

// Named plugin factories. The registry is explicit: main() (or a test)
// registers what exists; the policy names which to enable.
class Registry {
 public:
  using Factory = std::function<std::unique_ptr<Plugin>()>;
  // Registers what `factory` makes under the name the plugin gives itself
  // (Plugin::Name()). Refuses a factory that makes nothing or a nameless
  // plugin (InvalidArgument) and a name registered already (AlreadyExists):
  // two plugins under one name would make a policy mean two things.
  absl::Status Register(Factory factory);
  absl::StatusOr<std::unique_ptr<Plugin>> Create(const std::string& name) const;
  std::vector<std::string> Names() const;
  std::set<std::string> NameSet() const;

 private:
  std::map<std::string, Factory> factories_;
};

// Registers the built-in plugins. Filters: site_affinity, residency (also
// Reserve: the ledger and the audit trail), latency_limit, agent_health,
// isolation, resource_fit, topology_fit. Scores: data_gravity, latency, cost,
// compliance_preference, bin_pack, spread, numa_fit. QueueSort: drf,
// priority_fifo.
inline constexpr char kDefaultQueueSort[] = "drf";
void RegisterBuiltins(Registry& registry);

// The plugins a policy enables, instantiated. Immutable after Create, so
// Decide() may run concurrently.
class Engine {
 public:
  static absl::StatusOr<std::unique_ptr<Engine>> Create(const Registry& registry,
                                                        const v1::PluginConfig& config);

  // The whole decision: every catalogue site with its verdicts, agent counts
  // per reason, and the winner with its score breakdown. When no placement is
  // possible, `reason` names every blocking constraint and `unschedulable`
  // says whether waiting can help.
  v1::Decision Decide(const DecisionInput& in) const;
  // The same into `*out` (cleared first), which may live on a protobuf
  // Arena: a decision is hundreds of small strings and messages, and a
  // caller that keeps none of them past the decision (it serializes what it
  // keeps) saves their allocation and freeing (docs/performance.md).
  void Decide(const DecisionInput& in, v1::Decision* out) const;

  // The enabled Reserve plugins in order; a failure un-reserves the ones
  // before it. Unreserve undoes them all (in reverse order).
  absl::Status Reserve(const DecisionInput& in, const v1::Decision& d, ReserveContext& ctx) const;
  void Unreserve(const DecisionInput& in, const v1::Decision& d, ReserveContext& ctx) const;

  // A queue for one scheduling pass, from the policy's QueueSort plugin.
  std::unique_ptr<JobQueue> NewQueue(const v1::Resources& capacity) const {
    return queue_sort_->NewQueue(capacity);
  }
  std::string_view queue_sort() const { return queue_sort_->Name(); }
  bool QueueIsFifoWithinTenant() const { return queue_sort_->FifoWithinTenant(); }

 private:
  Engine() = default;
  // Decide's phases, in order, over one decision's working state: site-level
  // filters (and the network estimate) on every catalogue site, agent-level
  // filters and scores on the allowed sites, the winner with its score
  // breakdown and concrete allocation (false: none), or else the reason.
  struct Pass;
  void FilterSites(const DecisionInput& in, Pass& pass, v1::Decision& d) const;
  void FilterAgents(const DecisionInput& in, Pass& pass, v1::Decision& d) const;
  bool PickWinner(const DecisionInput& in, Pass& pass, v1::Decision& d) const;
  void ExplainInfeasible(const DecisionInput& in, const Pass& pass, v1::Decision& d) const;

  std::vector<std::unique_ptr<Plugin>> owned_;
  std::vector<const PreFilterPlugin*> prefilters_;
  std::vector<const SiteFilterPlugin*> site_filters_;
  std::vector<const FilterPlugin*> filters_;
  std::vector<std::pair<const SiteScorePlugin*, double>> site_scores_;
  std::vector<std::pair<const ScorePlugin*, double>> scores_;
  // score_headroom_[k]: the most the agent scores after scores_[k] can add
  // (each is 0-100 times its weight), to stop scoring an agent that cannot
  // reach its site's best agent any more.
  std::vector<double> score_headroom_;
  std::vector<const ReservePlugin*> reserves_;
  const QueueSortPlugin* queue_sort_ = nullptr;
  uint32_t max_feasible_per_site_ = 0;
  // Rotates where each decision starts examining a site's agents, so that
  // with a bounded fast path different jobs look at different agents first.
  mutable std::atomic<uint64_t> cursor_{0};
};

// A protobuf arena to build one decision on (Engine::Decide(in, out)), for
// a caller that keeps nothing of the decision past the arena's scope but
// what it serializes or copies out. Its first block is a scratch buffer of
// the calling thread's when no other DecisionArena on the thread holds that
// buffer, so a decision then costs no allocation for its hundreds of small
// messages. Not thread-safe; one thread makes, uses and destroys it.
class DecisionArena {
 public:
  DecisionArena();
  ~DecisionArena();
  DecisionArena(const DecisionArena&) = delete;
  DecisionArena& operator=(const DecisionArena&) = delete;
  // A new, empty decision owned by the arena.
  v1::Decision* NewDecision();

 private:
  const bool holds_scratch_;
  google::protobuf::Arena arena_;
};

// "0/3 agents: 2 insufficient_cpus, 1 cordoned" from counts.
std::string CountsSummary(uint32_t feasible, uint32_t considered,
                          const google::protobuf::Map<std::string, uint32_t>& rejected);

}  // namespace portolan::placement
