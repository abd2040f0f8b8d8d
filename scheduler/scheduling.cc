// SPDX-License-Identifier: Apache-2.0
// The scheduling pass: waiting jobs in fair-share order, each decided by the
// placement engine and, when feasible, committed to an agent. Part of Core
// (portolan/scheduler/core.h), under its lock.
#include <algorithm>
#include <chrono>
#include <deque>
#include <set>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "absl/time/civil_time.h"
#include "portolan/base/log.h"
#include "portolan/base/strings.h"
#include "portolan/scheduler/core.h"
#include "portolan/topology/allocator.h"

namespace portolan::scheduler {

Core::Core(CoreOptions options, store::Store* store, base::Clock* clock,
           const placement::Registry* registry)
    : options_(options),
      store_(store),
      clock_(clock),
      registry_(registry),
      datasets_(store, clock) {}

const v1::Tenant* Core::TenantFor(const std::string& id) {
  auto it = tenants_.find(id);
  if (it != tenants_.end()) return &it->second;
  // A tenant without a profile: no zones, not a CIIO, no instruments.
  v1::Tenant& t = tenants_[id];
  t.set_id(id);
  return &t;
}

void Core::StoreReservation(const v1::Job& job, const placement::ReserveContext& ctx) {
  for (const v1::AuditRecord& rec : ctx.audit) {
    if (absl::Status st = store_->AppendAudit(rec); !st.ok()) {
      spdlog::error("store: cannot write audit record for job {}: {}", job.id(), st.message());
    }
  }
  std::set<std::tuple<std::string, int, std::string>> grew;
  for (const placement::ReserveContext::LedgerKey& k : ctx.ledger_grew)
    grew.emplace(k.tenant, k.year, k.origin);
  for (const auto& [tenant, year, origin] : grew) {
    if (absl::Status st = store_->PutLedgerEntry(ledger_.Entry(tenant, year, origin)); !st.ok()) {
      spdlog::error("store: cannot write ledger for tenant {}: {}", tenant, st.message());
    }
  }
  // The tenant's year total grew: its other running jobs may now need an
  // instrument they lack (a threshold counts every export of the year).
  if (!grew.empty()) CheckComplianceLocked(absl::StrCat("ledger: job ", job.id()), job.tenant());
}

bool Core::QueueWindow::Visit(const v1::Job& job) {
  if (cut.empty()) return false;
  auto it = cut.find({-job.priority(), job.tenant()});
  return it != cut.end() && --it->second == 0;
}

void Core::FillQueue(placement::JobQueue& queue, const std::string* only, QueueWindow* window) {
  if (only != nullptr) {
    const v1::Job& j = jobs_.Live(*only);
    if (j.state() == v1::Job::queued)
      queue.Add({j.id(), j.tenant(), j.priority(), TenantWeight(*TenantFor(j.tenant()))});
    return;
  }
  for (const auto& [id, rec] : agents_) {
    for (const std::string& jid : rec.info.jobs()) {
      if (const v1::Job* j = jobs_.Held(jid)) queue.Charge(j->tenant(), j->resources());
    }
  }
  std::map<std::string, double> weights;
  auto add = [&](const JobTable::QueueKey& key) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    const v1::Job& j = jobs_.Live(std::get<2>(key));
    auto w = weights.find(j.tenant());
    if (w == weights.end())
      w = weights.emplace(j.tenant(), TenantWeight(*TenantFor(j.tenant()))).first;
    queue.Add({j.id(), j.tenant(), j.priority(), w->second});
  };
  if (window == nullptr) {
    for (const JobTable::QueueKey& key : jobs_.queue()) add(key);
    return;
  }
  // The first `limit` jobs of each tenant's list, in the queue's order
  // (priority, then submit order), as all would be added.
  std::vector<const JobTable::QueueKey*> picked;
  for (const auto& [list, keys] : jobs_.tenant_queues()) {
    int64_t n = 0;
    for (auto it = keys.begin(); it != keys.end() && n < window->limit; ++it, ++n)
      picked.push_back(&*it);
    if (static_cast<int64_t>(keys.size()) > window->limit) window->cut[list] = window->limit;
  }
  std::sort(picked.begin(), picked.end(), [](auto* a, auto* b) { return *a < *b; });
  for (const JobTable::QueueKey* key : picked) add(*key);
}

void Core::ObserveDecision(const v1::Decision& d, double seconds) {
  if (metrics_ == nullptr) return;
  metrics_->decision_seconds->Observe(seconds);
  (d.feasible()        ? metrics_->placed
   : d.unschedulable() ? metrics_->unschedulable
                       : metrics_->waiting)
      ->Inc();
  for (const auto& [reason, n] : d.agents().rejected()) {
    metrics_->rejections->With({reason})->Inc(n);
  }
}

namespace {

std::map<std::string, placement::AgentView*> ViewsById(
    std::map<std::string, std::vector<placement::AgentView>>& by_site) {
  std::map<std::string, placement::AgentView*> by_agent;
  for (auto& [site, views] : by_site)
    for (auto& v : views) by_agent[v.agent->id()] = &v;
  return by_agent;
}

}  // namespace

v1::Resources Core::ClusterTotal() const {
  v1::Resources total;
  for (const auto& [id, rec] : agents_)
    if (rec.info.state() != v1::Agent::lost) AddResources(&total, rec.info.capacity(), 1);
  return total;
}

bool Core::BeginPass(absl::Time now, bool* full, int64_t* free_pus) {
  // A pass after jobs ended (and nothing else changed) stops once no agent
  // has a free PU: every job needs one, so the rest would only have their
  // reasons written again. Not while a job of priority > 0 waits (it may
  // preempt). The jobs it did not visit keep their last reasons until the
  // next full pass (Tick: within kFullPassEvery).
  *full = redecide_all_ || std::get<0>(*jobs_.queue().begin()) < 0;  // the key holds -priority
  redecide_all_ = false;
  if (*full) {
    next_wakeup_ = absl::InfiniteFuture();
    last_full_pass_ = now;
    stopped_early_ = false;
    return true;
  }
  *free_pus = 0;
  for (const auto& [id, rec] : agents_)
    if (rec.info.state() == v1::Agent::ready) *free_pus += AgentRegistry::Free(rec).cpus();
  if (*free_pus > 0) return true;
  stopped_early_ = true;  // nothing can start: not even the queue is made
  return false;
}

void Core::ScheduleLocked(const std::string* only) {
  if (only == nullptr) {
    schedule_pending_ = false;
    MakeTasks();
  }
  if (jobs_.queue().empty() || policy_ == nullptr) {
    if (only == nullptr && policy_ != nullptr)
      redecide_all_ = stopped_early_ = false;  // none waits
    return;
  }
  const absl::Time now = clock_->Now();
  bool full = true;
  int64_t free_pus = 0;
  if (only == nullptr && !BeginPass(now, &full, &free_pus)) return;
  const std::shared_ptr<const PolicyState> policy = policy_;
  auto by_site = agents_.BySite();
  std::map<std::string, placement::AgentView*> by_agent = ViewsById(by_site);
  placement::DecisionInput in;
  in.policy = policy->compiled.get();
  in.ledger = &ledger_;
  in.today = absl::ToCivilDay(now, absl::UTCTimeZone());
  in.agents_by_site = &by_site;
  in.measured = &measured_;
  // The policy's QueueSort orders the waiting jobs (queue_ is already
  // priority, FIFO); a single submitted job needs no cluster total.
  std::unique_ptr<placement::JobQueue> order =
      policy->engine->NewQueue(only == nullptr ? ClusterTotal() : v1::Resources());
  // A pass that may stop when the free PUs are taken needs only the first
  // jobs of each tenant: as many as can start, and room for jobs skipped.
  QueueWindow window{free_pus + kQueueWindowSlack, {}};
  const bool windowed = !full && policy->engine->QueueIsFifoWithinTenant();
  FillQueue(*order, only, windowed ? &window : nullptr);
  bool cut_short = false;  // a list the window cut was visited to its end
  // Jobs that cannot be placed never hold up others. Within one pass (free capacity only
  // shrinks), a job whose decision class already found no room waits with that reason and no
  // decision of its own; a tenant whose jobs missed max_capacity_misses times waits for the
  // next pass while other tenants' are tried. So a pass's work is bounded by the shapes.
  std::map<std::string, ClassVerdicts::Verdict> full_classes;
  // Per array, the last full decision for one of its tasks in this pass.
  std::map<std::string, ArrayDecision> array_decisions;
  std::map<std::string, int> tenant_misses;
  std::set<std::string> gangs;  // tried in this pass
  std::string next_id;
  while (order->Next(&next_id)) {
    if (!full && free_pus <= 0) {  // see BeginPass
      stopped_early_ = true;
      break;
    }
    if (cut_short) break;  // the order could now differ from the whole queue's: a full pass
    v1::Job& job = jobs_.Live(next_id);
    cut_short = window.Visit(job);
    if (job.has_not_before() && base::FromProto(job.not_before()) > now) {  // restart backoff
      next_wakeup_ = std::min(next_wakeup_, base::FromProto(job.not_before()));
      continue;
    }
    if (job.has_gang()) {  // a gang's member: its gang is placed whole, once a pass
      if (gangs.insert(job.array_job()).second)
        PlaceGang(job.array_job(), in, *policy, by_agent, *order);
      continue;
    }
    int& misses = tenant_misses[job.tenant()];
    if (misses >= options_.max_capacity_misses) continue;
    in.tenant = TenantFor(job.tenant());
    QuotaVerdict quota;
    if (!Admit(job, *in.tenant, &quota)) continue;
    in.quota_closed = quota.closed_sites.empty() ? nullptr : &quota.closed_sites;
    // Classes (keys made at submit) are compared once some class missed: in
    // this pass, or since the last change (ClassVerdicts) unless it may preempt.
    const std::string& job_class = jobs_.Find(next_id)->spec->decision_class;
    std::string cls = full_classes.empty() ? std::string() : job_class;
    auto full = full_classes.find(cls);
    const ClassVerdicts::Verdict* same =
        full != full_classes.end() ? &full->second
        : job.priority() <= 0      ? class_verdicts_.Find(job_class, quota.closed_sites, now)
                                   : nullptr;
    if (same != nullptr) {
      waiting_decisions_[job.id()] = same->decision;
      job.set_reason(same->reason);
      continue;
    }
    in.job = &job;
    bool reused = false;
    placement::DecisionArena arena;  // what is kept of `d` is serialized or copied
    v1::Decision& d = *arena.NewDecision();
    DecideJob(in, *policy, array_decisions, &d, &reused);
    if (!d.feasible()) {
      if (d.unschedulable()) {
        PersistDecision(job.id(), d);
        Transition(job, v1::Job::unschedulable, d.reason());
        continue;
      }
      ++misses;
      // The waiting reason is derived (every pass recomputes it), so it is kept in memory,
      // not written, and serialized: only `explain` reads it (rest_wrk.sh: a queued job took
      // 8.5 KiB with the decision parsed, 3.0 KiB serialized).
      job.set_reason(d.reason());
      auto kept = std::make_shared<const std::string>(d.SerializeAsString());
      waiting_decisions_[job.id()] = kept;
      class_verdicts_.Remember(job_class, quota.closed_sites, kept, d.reason(), now);
      if (cls.empty()) cls = job_class;
      full_classes.emplace(std::move(cls), ClassVerdicts::Verdict{std::move(kept), d.reason()});
      if (job.priority() > 0) MaybePreempt(job, in, *policy->engine, d);
      continue;
    }
    if (!ReserveAndCommit(job, in, d, *policy)) continue;
    free_pus -= job.allocation().cpus();
    by_agent.at(d.placement().agent())
        ->Refresh(AgentRegistry::Free(agents_.at(d.placement().agent())));
    order->Charge(job.tenant(), job.resources());
    if (!job.array_job().empty() && !reused)
      array_decisions[job.array_job()] = ArrayDecision{job.id(), std::move(d)};
  }
  if (only == nullptr) yielding_.clear();  // victims have let their preemptors go first
  // Placed tasks left room in their arrays' windows: the next tick makes more.
  if (only == nullptr && ArraysWantTasks()) RequestPass(/*only_capacity_freed=*/true);
  if (cut_short && free_pus > 0) {  // the rest is decided by a pass over every job
    RequestPass();
    ScheduleLocked();
  }
}

bool Core::ReserveAndCommit(v1::Job& job, const placement::DecisionInput& in, const v1::Decision& d,
                            const PolicyState& policy) {
  // Reserve (the residency plugin counts the exports in the ledger), then
  // commit the agent's resources; a failed commit un-reserves, and only a
  // committed placement's audit records and ledger entries are stored.
  placement::ReserveContext reserved;
  reserved.ledger = &ledger_;
  reserved.now = clock_->Now();
  if (absl::Status st = policy.engine->Reserve(in, d, reserved); !st.ok()) {
    job.set_reason(absl::StrCat("waiting: reserve failed: ", st.message()));
    return false;
  }
  if (!CommitPlacement(job, d, policy)) {
    policy.engine->Unreserve(in, d, reserved);
    return false;
  }
  StoreReservation(job, reserved);
  return true;
}

void Core::DecideJob(const placement::DecisionInput& in, const PolicyState& policy,
                     const std::map<std::string, ArrayDecision>& array_decisions, v1::Decision* out,
                     bool* reused) {
  const v1::Job& job = *in.job;
  const auto started = std::chrono::steady_clock::now();
  v1::Decision& d = *out;
  *reused = false;
  // Tasks of one array have one shape and the same data: while the agent the
  // array's decision chose in this pass still fits a task, the task goes
  // there with that decision (site verdicts, scores, compliance) and its own
  // PUs; else it is decided in full. The ledger counts a dataset once, so a
  // later task cannot need an instrument the first one did not. What is
  // stored for it is its placement and the task whose decision it shares
  // (Explain puts the two together), not another copy of every site.
  if (auto prev = array_decisions.find(job.array_job());
      !job.array_job().empty() && prev != array_decisions.end()) {
    *reused = ReuseDecision(prev->second, job, &d);
  }
  if (!*reused) policy.engine->Decide(in, &d);
  ObserveDecision(
      d, std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
  d.set_policy_version(policy.meta.version());
  *d.mutable_decided_at() = base::ToProto(clock_->Now());
}

bool Core::ReuseDecision(const ArrayDecision& shared, const v1::Job& job, v1::Decision* out) {
  const v1::Decision& prev = shared.decision;
  auto it = agents_.find(prev.placement().agent());
  if (it == agents_.end()) return false;
  const AgentRec& rec = it->second;
  const v1::Resources free = AgentRegistry::Free(rec);
  const v1::Resources& want = job.resources();
  if (free.cpus() < want.cpus() || free.memory_mb() < want.memory_mb() || free.gpus() < want.gpus())
    return false;
  v1::Allocation alloc;
  if (rec.topo) {
    auto planned = rec.topo->Plan(topology::Request::FromJob(job));
    if (!planned.ok()) return false;
    alloc = *std::move(planned);
  }
  out->set_feasible(true);
  out->set_shared_with(shared.job);
  *out->mutable_warnings() = prev.warnings();
  v1::PlacementResult* p = out->mutable_placement();
  p->set_agent(prev.placement().agent());
  p->set_site(prev.placement().site());
  p->set_score(prev.placement().score());
  *p->mutable_scores() = prev.placement().scores();
  *p->mutable_compliance() = prev.placement().compliance();
  p->mutable_cpus()->Swap(alloc.mutable_pus());
  p->mutable_numa_nodes()->Swap(alloc.mutable_numa_nodes());
  p->mutable_gpus()->Swap(alloc.mutable_gpu_ids());
  p->mutable_numa_memory_mb()->swap(*alloc.mutable_numa_memory_mb());
  return true;
}

bool Core::Admit(v1::Job& job, const v1::Tenant& tenant, QuotaVerdict* quota) {
  if (auto y = yielding_.find(job.id()); y != yielding_.end()) {
    job.set_reason(absl::StrCat("preempted by job ", y->second,
                                "; requeued, it lets that job be placed first"));
    return false;
  }
  std::string why;
  if (job.depends_on_size() > 0) {
    bool never = false;
    if (!DependenciesMet(job, &why, &never)) {
      waiting_decisions_.erase(job.id());
      if (never) {
        Transition(job, v1::Job::unschedulable, why);
      } else {
        job.set_reason(why);
      }
      return false;
    }
  }
  *quota = CheckQuota(tenant, usage_.Of(job.tenant()), job.resources());
  if (!quota->ok) {
    waiting_decisions_.erase(job.id());
    job.set_reason(quota->reason);
    return false;
  }
  return true;
}

v1::Allocation AllocationOf(const v1::Decision& d) {
  v1::Allocation a;
  a.set_agent(d.placement().agent());
  a.set_site(d.placement().site());
  a.mutable_pus()->CopyFrom(d.placement().cpus());
  a.mutable_numa_nodes()->CopyFrom(d.placement().numa_nodes());
  a.mutable_gpu_ids()->CopyFrom(d.placement().gpus());
  *a.mutable_numa_memory_mb() = d.placement().numa_memory_mb();
  return a;
}

bool Core::CommitPlacement(v1::Job& job, const v1::Decision& d, const PolicyState& policy) {
  AgentRec& rec = agents_.at(d.placement().agent());
  v1::Allocation alloc = AllocationOf(d);
  alloc.set_cpus(alloc.pus_size() > 0 ? alloc.pus_size() : job.resources().cpus());
  alloc.set_memory_mb(job.resources().memory_mb());
  alloc.set_gpus(job.resources().gpus());
  if (rec.topo) {
    if (absl::Status st = rec.topo->Commit(alloc, job.id()); !st.ok()) {
      // The decision saw this state a moment ago under the same lock, so
      // this is a bug; keep the job waiting rather than double-allocate.
      spdlog::error("job {}: allocation on {} refused: {}", job.id(), rec.info.id(), st.message());
      return false;
    }
  }
  *job.mutable_allocation() = std::move(alloc);
  preempting_.erase(job.id());
  usage_.Hold(job.id(), job.tenant(), job.allocation().site(), job.resources());
  job.set_attempt(job.attempt() + 1);
  rec.info.add_jobs(job.id());
  AgentRegistry::SyncAllocated(rec);
  PersistDecision(job.id(), d);
  job.clear_not_before();
  v1::Attempt* attempt = job.add_attempts();
  attempt->set_number(job.attempt());
  *attempt->mutable_allocation() = job.allocation();
  attempt->set_outcome(v1::Job::placed);
  *attempt->mutable_placed_at() = base::ToProto(clock_->Now());
  std::string basis;
  for (const v1::Compliance& c : d.placement().compliance()) {
    absl::StrAppend(&basis, basis.empty() ? "; " : ", ", c.dataset(), " under ", c.rule(),
                    c.instrument().empty() ? "" : absl::StrCat(" with ", c.instrument()));
  }
  Transition(job, v1::Job::placed,
             absl::StrCat("placed on agent ", d.placement().agent(), " at site ",
                          d.placement().site(), " (score ", d.placement().score(), ", policy ",
                          policy.meta.version(), basis, ")"));
  agents_.SendReliable(rec, AssignWithInputs(job, &d), clock_->Now());
  return true;
}

}  // namespace portolan::scheduler
