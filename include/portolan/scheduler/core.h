// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <tuple>

#include "absl/base/thread_annotations.h"
#include "absl/container/btree_set.h"
#include "absl/container/node_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "portolan/base/clock.h"
#include "portolan/datasets/registry.h"
#include "portolan/grant/grant.h"
#include "portolan/placement/placement.h"
#include "portolan/policy/policy.h"
#include "portolan/scheduler/agent_registry.h"
#include "portolan/scheduler/arrays.h"
#include "portolan/scheduler/class_verdicts.h"
#include "portolan/scheduler/events.h"
#include "portolan/scheduler/job_table.h"
#include "portolan/scheduler/metrics.h"
#include "portolan/scheduler/quota.h"
#include "portolan/simulate/simulate.h"
#include "portolan/store/store.h"
#include "portolan/topology/allocator.h"
#include "portolan/v1/agent.pb.h"
#include "portolan/v1/job.pb.h"
#include "portolan/v1/ledger.pb.h"
#include "portolan/v1/simulate.pb.h"
#include "portolan/v1/wire.pb.h"

namespace portolan::scheduler {

// Caps of the API contract (docs/api.md#limits).
inline constexpr int kMaxTenantZones = 32;
inline constexpr int kMaxTenantInstruments = 64;
inline constexpr int kMaxJobDatasets = 64;
inline constexpr int kMaxJobSites = 64;  // placement.sites, avoid_sites, max_rtt_ms each
inline constexpr int kMaxJobLabels = 32;
inline constexpr int kMaxJobDependencies = 64;
inline constexpr uint32_t kMaxArrayCount = 100000;
// The agent, site and concrete PUs, NUMA nodes and GPUs a feasible decision
// chose (what placement holds on the agent's topology).
v1::Allocation AllocationOf(const v1::Decision& d);

// Members of one gang at most (all are made, and decided, at once).
inline constexpr uint32_t kMaxGangTasks = 1024;
// An array has at most this many tasks made and waiting at once; more are
// made as these start (ArrayTable).
inline constexpr uint32_t kArrayWindow = 1024;
inline constexpr size_t kMaxEnvBytes = 64 * 1024;  // names and values together
inline constexpr double kMaxDatasetGb = 1e6;
// The highest priority a tenant's own tokens may give a job unless its
// profile says otherwise (Tenant.max_priority); admins may use 0-1000.
inline constexpr int kDefaultTenantMaxPriority = 500;

struct CoreOptions {
  absl::Duration heartbeat_interval = absl::Seconds(5);
  // An agent silent for this long is lost, and so are its jobs.
  absl::Duration agent_ttl = absl::Seconds(15);
  // Unacknowledged Assign/Cancel are resent this often while connected.
  absl::Duration resend_interval = absl::Seconds(2);
  // Restart backoff: base, doubled per attempt, capped.
  absl::Duration restart_backoff = absl::Seconds(1);
  absl::Duration restart_backoff_max = absl::Seconds(60);
  // A preempted job's time between SIGTERM and SIGKILL (--preempt-grace-s).
  absl::Duration preempt_grace = absl::Seconds(30);
  // In one pass, a tenant whose waiting jobs found no capacity this many
  // times (distinct decision classes) waits for the next pass; other
  // tenants' jobs are still tried.
  int max_capacity_misses = 64;
  // The Ed25519 key (PEM) that signs transfer grants; Recover loads it, or
  // makes it (mode 0600) when the file is missing. Empty: no grants, so no
  // dataset is staged between sites (tests).
  std::string grant_key;
  // How long a grant is valid when the policy does not say (grant_ttl_s).
  absl::Duration grant_ttl = absl::Hours(1);
};

// The policy in force: compiled rules and network, the plugins it enables,
// and its version record. Replaced whole on every change, never modified.
struct PolicyState {
  std::shared_ptr<const policy::CompiledPolicy> compiled;
  std::shared_ptr<const placement::Engine> engine;
  v1::PolicyVersion meta;  // version, when, who, summary (no policy body)
};

// Bounds and manner of one policy what-if (Core::Simulate); the scheduler's
// flags --simulate-max-jobs, --simulate-deadline-ms, --simulate-threads.
struct SimulateLimits {
  uint32_t max_jobs = 200000;  // jobs examined, active and history together
  absl::Duration deadline = absl::Seconds(30);
  int threads = 0;  // deciding threads; 0: one per CPU
  // The deciding threads' priority (simulate::Options): SCHED_IDLE, or
  // `nice` added to their nice value.
  bool idle = true;
  int nice = 10;
  // Only placed and running jobs, whatever the request includes: the check
  // before a policy is applied (only they can become violations).
  bool holding_only = false;
  // Tests: every job's two decisions (simulate::Options::on_decisions).
  std::function<void(const simulate::Job&, const v1::Decision&, const v1::Decision&)> on_decisions;
};

struct JobFilter {
  std::string state{};   // a Job.State word, or "" for all
  std::string tenant{};  // "" for all
  int page_size = 100;
  std::string page_token{};
};

// The scheduler's state machine: jobs, agents, placement and the agent protocol's meaning
// (the RPC server only moves frames). Its parts: the job table (job_table.h: records, queue,
// submit order, counts, idempotency keys), the agent registry (agent_registry.h: records,
// hardware state, reliable outboxes), the policy in force with tenants and the ledger, and
// the compliance state; its code is split by job: core.cc (recovery, transitions, the REST
// facade), scheduling.cc (the pass: the policy's queue sort, decisions, reserve and commit),
// agent_protocol.cc (registration and reconciliation, updates, heartbeats, the outbox, loss
// and kill-and-confirm), policy_api.cc (policy, tenants, network, audit, compliance).
//
// All public methods are thread-safe. One mutex guards all of the state,
// deliberately: a placement reads agents, jobs, the ledger and the policy at
// once and must see them consistent, and every state change is a few
// microseconds of memory work, so finer locks would add ordering rules and
// buy nothing measurable (a full pass over 10,000 unplaceable jobs placed
// another tenant's job in 6.6 ms on 2026-12-02: `core_test
// --gtest_filter=*Unplaceable*` prints it). What is slow stays outside it: a new job is written
// to the store before the lock is taken (so concurrent submits share one
// group commit) and acknowledged only once stored; later changes are written
// under the lock, before the scheduler acts on them; reads of ended jobs go
// to the store without it. Links are called under the mutex and must never
// call back into the core synchronously.

class Core {
 public:
  // A pass after jobs ended adds to its queue only each tenant's first
  // (free PUs + this) waiting jobs of each priority (see FillQueue).
  static constexpr int64_t kQueueWindowSlack = 64;

  // `registry` lists the placement plugins policies may enable; it must outlive the core.
  Core(CoreOptions options, store::Store* store, base::Clock* clock,
       const placement::Registry* registry);

  // Loads jobs, agents, tenants, the ledger and the policy history from the
  // store. Call once, before serving. Afterwards has_policy() tells whether a
  // policy was stored; if not, ApplyPolicy one before serving.
  absl::Status Recover();
  bool has_policy();

  // --- REST-facing ---
  // Validates, stores durably, then queues. Returns the job and whether it
  // was newly created (false: an earlier submit with the same idempotency key).
  absl::StatusOr<std::pair<v1::Job, bool>> Submit(v1::Job spec);
  // Submit without waiting for the store: `done` gets what Submit would have
  // returned, maybe on the store's thread (Store::PutJobAsync), no lock held.
  using SubmitDone = std::function<void(absl::StatusOr<std::pair<v1::Job, bool>>)>;
  void SubmitAsync(v1::Job spec, SubmitDone done);
  absl::StatusOr<v1::Job> GetJob(const std::string& id);
  absl::StatusOr<v1::ListJobsResponse> ListJobs(const JobFilter& filter);
  // Cancels a job; for an array job, every task of it (none starts any more).
  absl::StatusOr<v1::Job> Cancel(const std::string& id);
  // An array job's tasks by index from `page_token` (an index; "" for 0).
  absl::StatusOr<v1::ListTasksResponse> ListTasks(const std::string& id, int page_size,
                                                  const std::string& page_token);
  absl::StatusOr<v1::JobLogs> Logs(const std::string& id);
  v1::ListAgentsResponse ListAgents();
  absl::StatusOr<v1::Agent> GetAgent(const std::string& id);
  // "cordon" (no new work), "drain" (no new work; running jobs finish),
  // "uncordon" (takes work again). A lost agent cannot be changed.
  absl::StatusOr<v1::Agent> SetAgentMode(const std::string& id, const std::string& action);

  // --- dataset registry (REST: /v1/datasets) ---
  datasets::Registry& datasets() { return datasets_; }
  // A dataset's site is in the policy's catalogue and its origin a
  // jurisdiction it knows; errors name the field.
  absl::Status CheckDatasetFacts(const v1::RegisteredDataset& d);

  // --- policy engine ---
  // Dry run: the decision for `spec` on the current state. Stores nothing.
  absl::StatusOr<v1::Decision> Plan(v1::Job spec);
  // The decision behind a job: the stored one once placed or unschedulable,
  // the latest one while it waits.
  absl::StatusOr<v1::Decision> Explain(const std::string& id);

  // Validates, stores a new version, swaps it in; the next decision uses it.
  // On error nothing changes. `summary` overrides the computed diff summary.
  absl::StatusOr<v1::PolicyVersion> ApplyPolicy(v1::Policy policy, const std::string& who,
                                                const std::string& summary = "");
  v1::ValidationResult ValidatePolicy(const v1::Policy& policy);
  // What-if (POST /v1/policy:simulate): the jobs that the candidate of
  // `request` (a policy, link changes, tenant profiles) would treat
  // differently from what is in force (simulate.h). Decided on a snapshot
  // copied in short holds of the lock (1,000 jobs or agents each), by
  // `limits.threads` threads at a lower priority, so submits and
  // placements go on meanwhile. One at a time: ResourceExhausted while
  // another runs. InvalidArgument naming the field for a bad request, and
  // naming max_jobs or deadline_ms when a limit is exceeded.
  absl::StatusOr<v1::SimulateResponse> Simulate(const v1::SimulateRequest& request,
                                                const SimulateLimits& limits);
  absl::StatusOr<v1::Policy> GetPolicy();
  absl::StatusOr<v1::ListPolicyVersionsResponse> PolicyVersions();
  // One version with its whole policy (to show what it changed); NotFound
  // naming the field "version" when there is none.
  absl::StatusOr<v1::PolicyVersion> PolicyVersion(const std::string& version);
  // `tenant`'s cumulative ledger (regulations.md section 1, Counting), as
  // stored: newest year first, then by origin.
  absl::StatusOr<v1::ListLedgerResponse> TenantLedger(const std::string& tenant);

  // Tenant profiles; with `expiring_within_days` >= 0, only those holding an
  // instrument that expires within that many days of today (or has expired),
  // each with just those instruments.
  v1::ListTenantsResponse ListTenants(int expiring_within_days = -1);
  absl::StatusOr<v1::Tenant> GetTenant(const std::string& id);
  absl::StatusOr<v1::Tenant> PutTenant(const std::string& id, v1::Tenant tenant);
  // The highest job priority the tenant's own tokens may set.
  int TenantMaxPriority(const std::string& tenant);
  // What the tenant's placed and running jobs hold, against its quota.
  v1::TenantUsage Usage(const std::string& tenant);

  absl::StatusOr<v1::NetworkView> Network();
  absl::StatusOr<std::vector<v1::Site>> Sites();
  // Marks a link up/down or changes its RTT/capacity: a new policy version.
  absl::StatusOr<v1::Link> UpdateLink(const std::string& id, const v1::LinkUpdate& update,
                                      const std::string& who);
  // Placed and running jobs whose placement the policy, tenant profiles and
  // date in force no longer allow (one entry per dataset); "" for all tenants.
  v1::ListViolationsResponse Violations(const std::string& tenant);
  absl::StatusOr<v1::ListAuditResponse> Audit(const std::string& tenant, const std::string& job,
                                              int limit);

  // --- agent protocol ---
  // Handles Register: on success sends RegisterAck over `link`, then resends
  // what the agent has not acknowledged. Returns false when refused (the ack
  // with the reason has been sent; the caller should close the link).
  bool OnRegister(const v1::Register& reg, std::shared_ptr<AgentLink> link,
                  const std::string& peer);
  // Any later envelope from a registered session.
  void OnMessage(const std::string& agent_id, const AgentLink* link, const v1::Envelope& envelope);
  // What several sessions read (each's in order): handled under one lock, all
  // their writes committed together, one placement pass after them all.
  void OnMessages(const std::vector<Delivery>& deliveries);
  void OnDisconnect(const std::string& agent_id, const AgentLink* link);

  // Periodic work: heartbeat TTLs, resends, placement of waiting jobs.
  void Tick();

  const CoreOptions& options() const { return options_; }

  // Records submits, decisions and rejections in `metrics` from now on and
  // refreshes its state gauges at each scrape. `metrics` outlives the core.
  void AttachMetrics(SchedulerMetrics* metrics);

  // Job, agent and link changes as they happen (GET /v1/events): a job's
  // submit and every change of its state, an agent's registration, loss,
  // disconnection, mode and topology, and every link a policy change or a
  // link update changed. Thread-safe; it lives as long as the core.
  EventHub& events() { return events_; }

 private:
  using AgentRec = AgentRecord;

  absl::Status Persist(const v1::Job& job) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // OnMessage under mu_, its writes deferred (see FinishDeferred).
  void OnMessageLocked(const std::string& agent_id, const AgentLink* link, const v1::Envelope& env)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Ends the deferred scope OnMessage opened: the store commits the
  // message's writes at once (one fsync for a job's end and the next job's
  // placement), and only then are its events published and its ended jobs
  // marked stored. What it sends to agents is posted to the RPC thread that
  // is running OnMessage, so it leaves after this commit too.
  void FinishDeferred() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // An ended job's final record is stored (or staged: then once committed),
  // so DropEnded may drop it from memory.
  void MarkStoredEnded(const std::string& id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Publishes now, or at FinishDeferred while deferring.
  void Publish(v1::Event event) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Stores a job's placement decision for `explain`; a failure is logged
  // with the job (the job itself is unaffected).
  void PersistDecision(const std::string& job_id, const v1::Decision& d)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void PersistAgent(const AgentRec& rec) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Transition(v1::Job& job, v1::Job::State state, const std::string& message)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Release(v1::Job& job) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Appends an event (now, the job's current state) and stores the job.
  void Note(v1::Job& job, const std::string& message) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Asks the job's agent to stop a placed or running job (once): marks it
  // cancel_requested, notes `event`, sends Cancel with `reason`.
  void RequestStop(v1::Job& job, const std::string& event, const std::string& reason,
                   absl::Duration grace = absl::ZeroDuration()) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Preemption (preemption.cc): the running jobs of lower priority on one
  // agent of a site `d` allows whose removal lets the job of `in` fit there
  // — fewest, then lowest priority, first; none when no agent would do. An
  // agent counts only if `engine` decides the job onto it as it would be
  // without those jobs (every filter of the policy: health, isolation,
  // labels, resources, NUMA and GPUs). Then asks them to stop (SIGTERM,
  // --preempt-grace-s, SIGKILL); they are requeued with the event
  // "preempted by job-…" when they end (EndAttempt).
  struct Preemption {
    std::string agent;
    std::vector<std::string> victims;
  };
  std::optional<Preemption> FindPreemption(const placement::DecisionInput& in,
                                           const placement::Engine& engine, const v1::Decision& d)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // In a pass, for a job that waits for capacity: preempts when it may
  // (once; then the job waits for its victims) and says so in its reason.
  void MaybePreempt(v1::Job& job, const placement::DecisionInput& in,
                    const placement::Engine& engine, const v1::Decision& d)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // EndAttempt of a job stopped for a preemption (requeued at once, unless
  // it succeeded meanwhile) or because a member of its gang failed (requeued
  // with the gang, or failed); false for any other job.
  bool EndStopped(v1::Job& job, v1::Job::State outcome, const std::string& reason)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Ends the current attempt: retries per the job's restart policy (back to
  // queued after a backoff) or moves the job to `outcome`.
  void EndAttempt(v1::Job& job, v1::Job::State outcome, const std::string& reason, int exit_code,
                  int signal) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // One scheduling pass over the waiting jobs, or only over `only`.
  void ScheduleLocked(const std::string* only = nullptr) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // What the agents not lost have, in all (the QueueSort's shares).
  v1::Resources ClusterTotal() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The start of a pass over every waiting job: whether it must visit them
  // all (`full`), else the free PUs of ready agents it may stop at; false
  // when nothing can start (the pass ends at once).
  bool BeginPass(absl::Time now, bool* full, int64_t* free_pus) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Asks for a pass at the next chance (after the messages in hand, or the
  // tick). `only_capacity_freed`: all that changed is that resources were
  // freed (a job ended), so the pass may stop once no agent has a free PU
  // (see ScheduleLocked); anything else (policy, tenants, agents, a
  // dependency, a new day) has every waiting job decided again. Either way
  // the class verdicts (ClassVerdicts) are forgotten.
  void RequestPass(bool only_capacity_freed = false) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    schedule_pending_ = true;
    if (!only_capacity_freed) redecide_all_ = true;
    class_verdicts_.Forget();
  }
  // The pass's parts: the waiting jobs in fair-share order (with the shares
  // of what runs), the decision's metrics, and a feasible decision made
  // real (allocation committed, attempt recorded, Assign sent; false when
  // the agent's state refuses the allocation).
  // A pass's window on the queue (FillQueue): each tenant's first `limit`
  // waiting jobs of each priority; `cut` counts down the jobs not yet
  // visited of the lists it cut short.
  struct QueueWindow {
    int64_t limit = 0;
    std::map<std::pair<int, std::string>, int64_t> cut;
    // Notes a visited job; true when it was the last the window took of a
    // list it cut (from here the order could differ from the whole queue's).
    bool Visit(const v1::Job& job);
  };
  void FillQueue(placement::JobQueue& queue, const std::string* only, QueueWindow* window)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ObserveDecision(const v1::Decision& d, double seconds) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Whether a waiting job may be decided now: its dependencies are met (or
  // it becomes unschedulable when one cannot be) and its tenant's quota has
  // room (`quota` then lists the sites a per-site limit closes). When not,
  // the job's reason says why.
  bool Admit(v1::Job& job, const v1::Tenant& tenant, QuotaVerdict* quota)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The decision for `in.job` into `*d` (the caller's, on an arena): for an
  // array's task, the array's decision of this pass on the same agent when
  // it still fits (`reused`), else the engine's.
  struct ArrayDecision {
    std::string job;  // the task it was made for
    v1::Decision decision;
  };
  void DecideJob(const placement::DecisionInput& in, const PolicyState& policy,
                 const std::map<std::string, ArrayDecision>& array_decisions, v1::Decision* d,
                 bool* reused) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool ReuseDecision(const ArrayDecision& shared, const v1::Job& job, v1::Decision* out)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void RefreshTenantMetrics(SchedulerMetrics& m) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool CommitPlacement(v1::Job& job, const v1::Decision& d, const PolicyState& policy)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool ReserveAndCommit(v1::Job& job, const placement::DecisionInput& in, const v1::Decision& d,
                        const PolicyState& policy) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ApplyUpdate(AgentRec& rec, const v1::JobUpdate& update) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // staging.cc: the Assign of a placed job with its inputs (StageSource):
  // where each registered dataset lives and, for data at another site, a
  // signed transfer grant (audited) and the data endpoints of that site's
  // agents. `d`, when given, is the placement's decision (its compliance).
  v1::Envelope AssignWithInputs(v1::Job& job, const v1::Decision* d)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // A staging update: its inputs replace the job's, and each transfer that
  // finished since feeds measured_ (the path's throughput).
  void NoteStaged(v1::Job& job, const v1::JobUpdate& u) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // A succeeded attempt's outputs as the agent kept them: each registered as
  // a dataset derived from the job's inputs, recorded in job.produced. What
  // could not be kept or registered, as one message ("" when all were).
  std::string RegisterOutputs(v1::Job& job, const v1::JobUpdate& u)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Reads (or makes) options_.grant_key into signer_ (Recover).
  absl::Status LoadGrantKey();
  // A source agent's account of what it served or refused: audit rows.
  void AuditServed(AgentRec& rec, const v1::TransferReport& report)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void MarkLost(AgentRec& rec, const std::string& why) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void StoreLogs(const v1::LogTail& tail) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // An agent reported how an attempt ended that the scheduler had already
  // given up on (its agent was lost): recorded on that attempt.
  void ConfirmEarlierAttempt(AgentRec& rec, const v1::JobUpdate& u)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // A copy of the job: from memory while held, else from the store (read
  // without holding mu_). NotFound names the id.
  absl::StatusOr<v1::Job> ReadJob(const std::string& id) ABSL_LOCKS_EXCLUDED(mu_);
  // An ended job's record, from the store (Unavailable if it cannot be read).
  absl::StatusOr<v1::Job> ReadEnded(const std::string& id) ABSL_LOCKS_EXCLUDED(mu_);
  void CommitRecovered(AgentRec& rec, v1::Job& job) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void RebuildTopology(AgentRec& rec, const v1::Topology& t) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status CheckAgainstPolicy(const v1::Job& job, const policy::CompiledPolicy& p)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // depends_on names existing jobs of the job's own tenant, each once.
  absl::Status CheckDependencies(const v1::Job& job) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // A submit's and a plan's checks of a spec: resolved, validated and
  // defaulted; then against the policy and the jobs it depends on.
  absl::Status ResolveAndValidate(v1::Job& spec) ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status CheckWithPolicy(const v1::Job& spec) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Whether the jobs `job` depends on have all met their conditions; if not,
  // `why` says which it waits for, and `never` whether one cannot any more.
  bool DependenciesMet(const v1::Job& job, std::string* why, bool* never)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Arrays (array_jobs.cc): makes the next window of tasks of every array;
  // follows a task's change in its array (the array job's state and
  // counts); cancels an array; rebuilds the arrays at recovery.
  void MakeTasks() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Whether MakeTasks would make a task now (an array has room).
  bool ArraysWantTasks() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void OnTaskTransition(const v1::Job& task, v1::Job::State from)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void UpdateArray(ArrayTable::Array& a) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status CancelArray(v1::Job& parent) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void RecoverArrays() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Gangs (gangs.cc). In a pass, at a gang member's turn: places all of its
  // members at once (each with its own decision, residency checked for
  // each) or none, and says which constraint kept it waiting. `in` carries
  // the pass's policy, ledger and agents; placed members' agents' free
  // resources are updated in `by_agent`.
  void PlaceGang(const std::string& gang, placement::DecisionInput in, const PolicyState& policy,
                 std::map<std::string, placement::AgentView*>& by_agent, placement::JobQueue& order)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // One decision per member, all fitting together, or the reason none fit:
  // tried anchored at each allowed site (first the one `first` chose),
  // members after the first kept at that site (colocate: site) or within
  // max_rtt_ms of the sites already chosen; allocations are held on the
  // agents' topologies while trying and given back afterwards.
  absl::StatusOr<std::vector<v1::Decision>> FitGang(placement::DecisionInput in,
                                                    const PolicyState& policy,
                                                    const v1::Decision& first,
                                                    const std::vector<v1::Job*>& members)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // `plan` of a gang (`d`: the decision for one member, made on `in`): the
  // whole gang's quota and FitGang on the agents as they are now, with every
  // member's placement in d.gang_members, or `d` made infeasible with the
  // constraint that would keep it waiting. Changes nothing.
  void PlanGang(placement::DecisionInput in, const v1::Job& spec, v1::Decision& d)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // A member failed or was lost (EndAttempt): stops the other members,
  // which are then requeued (`retry`, due at `not_before`) or end failed.
  // False when the gang cannot restart whole (a member already ended).
  bool StopGang(const v1::Job& failed, v1::Job::State outcome, bool retry, absl::Time not_before)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Keeps dependents_ (a queued job's dependencies that have not ended).
  void IndexDependencies(const v1::Job& job) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // `job`, which others wait for, changed state: their reasons say so now,
  // and once it has ended the next pass decides them.
  void OnDependencyChanged(const v1::Job& job) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  const v1::Tenant* TenantFor(const std::string& id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Stores what Reserve left for a committed placement: its audit records
  // and the ledger entries that grew (then the tenant's running jobs are
  // re-checked against the larger total).
  void StoreReservation(const v1::Job& job, const placement::ReserveContext& ctx)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<std::shared_ptr<const PolicyState>> Build(v1::Policy policy,
                                                           std::vector<std::string>* errors);
  // The what-if snapshot (simulation.cc), each part copied in chunks, the
  // lock taken once per chunk: every agent (and, with `empty`, each one as
  // if nothing ran on it), the active jobs (only placed and running ones
  // with `holding_only`), and the ids of ended jobs submitted in [since, until).
  // The job parts fail with InvalidArgument naming max_jobs past `max_jobs`.
  void SnapshotAgents(simulate::AgentSet& current, simulate::AgentSet* empty)
      ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status SnapshotActive(bool holding_only, size_t max_jobs, std::vector<simulate::Job>* out)
      ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status SnapshotHistoryIds(int64_t since_ns, int64_t until_ns, size_t max_jobs,
                                  std::vector<std::string>* ids) ABSL_LOCKS_EXCLUDED(mu_);
  // Re-decides residency for every placed and running job against the
  // policy, tenants, ledger and date now in force: records violations (an
  // event on the job the first time), clears those that no longer hold, and
  // stops violating jobs when the policy says on_violation: stop. `cause`
  // says what changed, for the event and the log; `only_tenant`, when set,
  // limits the check to that tenant's jobs (its ledger changed).
  void CheckComplianceLocked(const std::string& cause, const std::string& only_tenant = "")
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const CoreOptions options_;
  store::Store* const store_;
  base::Clock* const clock_;
  const placement::Registry* const registry_;
  // Its own lock, a leaf: taken while holding mu_ (outputs, Resolve), and
  // nothing that takes mu_ runs while it is held.
  datasets::Registry datasets_;
  std::unique_ptr<grant::Signer> signer_;  // set by Recover; immutable after

  absl::Mutex mu_;
  // Every job and its indexes (queue, submit order, counts, idempotency keys).
  JobTable jobs_ ABSL_GUARDED_BY(mu_);
  // The agents with their hardware state and reliable outboxes.
  AgentRegistry agents_ ABSL_GUARDED_BY(mu_);
  // (tenant, idempotency key) of submits being stored right now.
  std::set<std::pair<std::string, std::string>> submitting_keys_ ABSL_GUARDED_BY(mu_);
  // Submit's halves around the store write. PrepareSubmit makes `spec` a queued job, or
  // returns the answer (an error; an earlier same-key job). FinishSubmit queues the stored
  // job with `decision` (its simulate::Spec, made before the write: not on the store's
  // thread, which finishes a group commit's submits one by one), or forgets it.
  std::optional<absl::StatusOr<std::pair<v1::Job, bool>>> PrepareSubmit(v1::Job& spec)
      ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<std::pair<v1::Job, bool>> FinishSubmit(
      v1::Job spec, std::shared_ptr<const simulate::JobSpec> decision, const absl::Status& stored)
      ABSL_LOCKS_EXCLUDED(mu_);
  std::shared_ptr<const PolicyState> policy_ ABSL_GUARDED_BY(mu_);
  // Throughput measured by staging transfers, per (from site, to site).
  network::MeasuredPaths measured_ ABSL_GUARDED_BY(mu_);
  int policy_versions_ ABSL_GUARDED_BY(mu_) = 0;
  std::map<std::string, v1::Tenant> tenants_ ABSL_GUARDED_BY(mu_);
  // Job id -> the waiting jobs that depend on it (until it ends).
  absl::node_hash_map<std::string, std::vector<std::string>> dependents_ ABSL_GUARDED_BY(mu_);
  // Preempted job -> the job that preempted it, until it has stopped; and preemptor -> its
  // victims still stopping.
  std::map<std::string, std::string> preempted_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::vector<std::string>> preempting_ ABSL_GUARDED_BY(mu_);
  // A gang member stopped because another member failed, until it ends: whether the gang
  // restarts (then it is requeued, due at not_before).
  struct GangStop {
    std::string because;  // the member that failed
    bool requeue = false;
    absl::Time not_before;
  };
  std::map<std::string, GangStop> gang_stopping_ ABSL_GUARDED_BY(mu_);
  // The gang whose members PlaceGang is committing (its job's state follows once all are placed).
  std::string placing_gang_ ABSL_GUARDED_BY(mu_);
  // Requeued victim -> its preemptor: the victim sits out the next full pass so that the room
  // it left goes to the preemptor, not back to it.
  std::map<std::string, std::string> yielding_ ABSL_GUARDED_BY(mu_);
  // Array jobs not yet ended, with their tasks' states.
  ArrayTable arrays_ ABSL_GUARDED_BY(mu_);
  // What each tenant's placed and running jobs hold (quotas, usage).
  UsageTable usage_ ABSL_GUARDED_BY(mu_);
  residency::Ledger ledger_;  // thread-safe itself
  EventHub events_;           // thread-safe itself; published to under mu_
  // The latest decision of each waiting job, serialized (see ScheduleLocked);
  // jobs of one decision class share it, in one pass or till a change.
  absl::node_hash_map<std::string, std::shared_ptr<const std::string>> waiting_decisions_
      ABSL_GUARDED_BY(mu_);
  ClassVerdicts class_verdicts_ ABSL_GUARDED_BY(mu_);
  bool schedule_pending_ ABSL_GUARDED_BY(mu_) = false;
  // A pass must decide every waiting job again (RequestPass); else a pass may end once no
  // agent has a free PU, leaving the rest with their last reasons till a full pass
  // within kFullPassEvery (Tick).
  bool redecide_all_ ABSL_GUARDED_BY(mu_) = true;
  bool stopped_early_ ABSL_GUARDED_BY(mu_) = false;
  absl::Time last_full_pass_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  static constexpr absl::Duration kFullPassEvery = absl::Seconds(1);
  // While OnMessage's writes are deferred: the events and ended jobs that wait for them.
  bool deferring_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<v1::Event> deferred_events_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> deferred_ended_ ABSL_GUARDED_BY(mu_);
  // Job id -> its current violations (see CheckComplianceLocked).
  std::map<std::string, std::vector<v1::ComplianceViolation>> violations_ ABSL_GUARDED_BY(mu_);
  // The UTC day of the last compliance check: a new day re-decides (expiries).
  absl::CivilDay compliance_day_ ABSL_GUARDED_BY(mu_);
  absl::Time next_wakeup_ ABSL_GUARDED_BY(mu_) = absl::InfiniteFuture();  // earliest backoff end
  SchedulerMetrics* metrics_ ABSL_GUARDED_BY(mu_) = nullptr;
  std::atomic<bool> simulating_{false};  // a what-if runs (one at a time)
};

// Checks a tenant profile against a policy (sizes, zones, instrument types,
// jurisdictions, sites, dates). Errors are InvalidArgument naming the field.
absl::Status ValidateTenantProfile(const v1::Tenant& tenant, const policy::CompiledPolicy& policy);

// Checks a submitted job spec; fills defaults (kind, tenant, name).
// Errors are InvalidArgument naming the field.
absl::Status ValidateAndDefault(v1::Job& job);

bool IsTerminal(v1::Job::State state);
// Placed, staging or running: the job holds its allocation.
bool HoldsResources(v1::Job::State state);
std::string StateName(v1::Job::State state);

}  // namespace portolan::scheduler
