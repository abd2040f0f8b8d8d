// SPDX-License-Identifier: Apache-2.0
#include "portolan/scheduler/core.h"

#include <array>
#include <chrono>
#include <cmath>
#include <deque>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/civil_time.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "portolan/base/log.h"
#include "portolan/base/strings.h"
#include "portolan/codec/codec.h"
#include "portolan/topology/allocator.h"

namespace portolan::scheduler {

bool Core::has_policy() {
  absl::MutexLock lock(&mu_);
  return policy_ != nullptr;
}

absl::Status Core::Recover() {
  const auto started = std::chrono::steady_clock::now();
  auto agents = store_->LoadAgents();
  if (!agents.ok()) return agents.status();
  auto jobs = store_->LoadJobs();
  if (!jobs.ok()) return jobs.status();
  const double load_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  auto tenants = store_->LoadTenants();
  if (!tenants.ok()) return tenants.status();
  if (absl::Status st = datasets_.Load(); !st.ok()) return st;
  if (absl::Status st = LoadGrantKey(); !st.ok()) return st;
  auto ledger = store_->LoadLedger();
  if (!ledger.ok()) return ledger.status();
  auto versions = store_->LoadPolicyVersions();
  if (!versions.ok()) return versions.status();
  std::shared_ptr<const PolicyState> policy;
  if (!versions->empty()) {
    // The last stored version is in force; it was valid when applied, and
    // must still be (a build that no longer accepts it must say so).
    // A policy stored by an earlier version is brought to today's form
    // first (MigratePolicy says what it changed).
    v1::Policy stored = versions->back().policy();
    for (const std::string& change : residency::MigratePolicy(&stored)) {
      spdlog::warn("stored policy {}: migrated: {}; review it against deploy/policy/default.yaml",
                   versions->back().version(), change);
    }
    auto built = Build(stored, nullptr);
    if (!built.ok()) {
      return absl::FailedPreconditionError(
          absl::StrCat("stored policy ", versions->back().version(),
                       " no longer validates: ", built.status().message()));
    }
    v1::PolicyVersion meta = versions->back();
    meta.clear_policy();
    auto state = std::make_shared<PolicyState>(**built);
    state->meta = meta;
    policy = std::move(state);
  }
  for (const v1::LedgerEntry& e : *ledger) ledger_.Load(e);
  absl::MutexLock lock(&mu_);
  for (v1::Tenant& t : *tenants) tenants_[t.id()] = std::move(t);
  policy_ = std::move(policy);
  policy_versions_ = static_cast<int>(versions->size());
  const absl::Time now = clock_->Now();
  for (v1::Agent& a : *agents) {
    AgentRec& rec = agents_[a.id()];
    rec.info = std::move(a);
    rec.topo = std::make_unique<topology::AgentTopology>(rec.info.topology());
    rec.topology = rec.info.topology().SerializeAsString();
    rec.info.clear_topology();
    rec.info.set_connected(false);
    rec.info.clear_jobs();
    rec.info.mutable_allocated()->Clear();
    rec.info.clear_session_id();
    // Every agent gets a full TTL from now to come back and report its jobs.
    rec.last_seen = now;
  }
  int active = 0;
  jobs_.Reserve(jobs->active.size() + jobs->ended.size());
  for (store::JobSummary& e : jobs->ended) jobs_.AddEnded(std::move(e));
  for (v1::Job& j : jobs->active) {
    v1::Job& job = jobs_.Add(std::move(j));
    IndexDependencies(job);
    if (HoldsResources(job.state())) {
      ++active;
      auto it = agents_.find(job.allocation().agent());
      if (it != agents_.end()) {
        it->second.info.add_jobs(job.id());
        CommitRecovered(it->second, job);
      }
    }
  }
  for (auto& [id, rec] : agents_) AgentRegistry::SyncAllocated(rec);
  RecoverArrays();
  spdlog::info(
      "recovered {} jobs ({} queued, {} placed or running) and {} agents in {:.2f} s ({:.2f} s "
      "reading the store)",
      jobs_.size(), jobs_.queue().size(), active, agents_.size(),
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count(), load_s);
  RequestPass();
  return absl::OkStatus();
}

absl::StatusOr<v1::Job> Core::ReadJob(const std::string& id) {
  {
    absl::MutexLock lock(&mu_);
    const JobTable::Rec* rec = jobs_.Find(id);
    if (rec == nullptr)
      return codec::FieldError(absl::StatusCode::kNotFound, "id",
                               absl::StrCat("no job '", id, "'"));
    if (rec->job) {
      v1::Job copy = *rec->job;
      if (const ArrayTable::Array* a = arrays_.Find(id))
        *copy.mutable_task_counts() = ArrayTable::Counts(*a);
      return copy;
    }
  }
  return ReadEnded(id);
}

absl::StatusOr<v1::Job> Core::ReadEnded(const std::string& id) {
  // Its final record is durable and never changes again.
  auto job = store_->GetJob(id);
  if (!job.ok()) {
    return absl::UnavailableError(
        absl::StrCat("job ", id, " cannot be read from the state store: ", job.status().message()));
  }
  return job;
}

absl::Status Core::Persist(const v1::Job& job) {
  absl::Status st = store_->PutJob(job);
  if (!st.ok()) spdlog::error("store: cannot persist job {}: {}", job.id(), st.message());
  return st;
}

void Core::PersistDecision(const std::string& job_id, const v1::Decision& d) {
  // The job goes on without it: only `portolan explain` lacks this decision
  // (it answers that the job has none).
  absl::Status st = store_->PutDecision(job_id, d);
  if (!st.ok()) {
    spdlog::error("store: cannot persist the placement decision of job {}: {}", job_id,
                  st.message());
  }
}

void Core::PersistAgent(const AgentRec& rec) {
  const v1::Agent view = AgentRegistry::View(rec);
  absl::Status st = store_->PutAgent(view);
  if (!st.ok()) spdlog::error("store: cannot persist agent {}: {}", rec.info.id(), st.message());
  Publish(AgentChanged(view, clock_->Now()));
}

void Core::Transition(v1::Job& job, v1::Job::State state, const std::string& message) {
  const absl::Time now = clock_->Now();
  const v1::Job::State from = job.state();
  if (job.state() == v1::Job::queued && state != v1::Job::queued)
    waiting_decisions_.erase(job.id());
  jobs_.OnTransition(job, state);
  job.set_state(state);
  job.set_reason(message);
  v1::JobEvent* ev = job.add_events();
  *ev->mutable_time() = base::ToProto(now);
  ev->set_state(state);
  ev->set_message(message);
  if (state == v1::Job::running && !job.has_started_at())
    *job.mutable_started_at() = base::ToProto(now);
  if (IsTerminal(state)) *job.mutable_finished_at() = base::ToProto(now);
  spdlog::info("job {} -> {}: {}", job.id(), StateName(state), message);
  // An ended job's record is dropped from memory once stored (DropEnded); if
  // the write failed, memory is the only place it is current, so it stays.
  if (Persist(job).ok() && IsTerminal(state)) MarkStoredEnded(job.id());
  Publish(JobChanged(job, now));
  // What follows this job: its dependents, its array.
  if (dependents_.contains(job.id())) OnDependencyChanged(job);
  if (!job.array_job().empty() && from != state) OnTaskTransition(job, from);
}

void Core::AttachMetrics(SchedulerMetrics* m) {
  {
    absl::MutexLock lock(&mu_);
    metrics_ = m;
  }
  m->registry.OnScrape([this, m] {
    absl::MutexLock lock(&mu_);
    // Counted as jobs change, not by walking them: a scrape holds the lock.
    m->jobs->Clear();
    for (const auto& [key, n] : jobs_.counts())
      m->jobs->With({v1::Job::State_Name(key.first), key.second})->Set(static_cast<double>(n));
    m->queue_depth->Set(static_cast<double>(jobs_.queue().size()));
    const int64_t oldest = jobs_.OldestWaitingNs();
    m->oldest_waiting_seconds->Set(
        jobs_.queue().empty()
            ? 0
            : std::max(0.0, absl::ToDoubleSeconds(clock_->Now() - absl::FromUnixNanos(oldest))));
    std::map<std::pair<std::string, std::string>, int> agents;
    m->heartbeat_rtt->Clear();
    for (const auto& [id, rec] : agents_) {
      ++agents[{rec.info.site(), v1::Agent::State_Name(rec.info.state())}];
      if (rec.link != nullptr && rec.info.measured_rtt_ms() > 0)
        m->heartbeat_rtt->With({id, rec.info.site()})->Set(rec.info.measured_rtt_ms() / 1000);
    }
    m->agents->Clear();
    for (const auto& [key, n] : agents) m->agents->With({key.first, key.second})->Set(n);
    m->policy_version->Set(policy_versions_);
    m->compliance_violations->Clear();
    std::map<std::pair<std::string, std::string>, int> by_rule;
    for (const auto& [job, list] : violations_) {
      for (const auto& v : list) ++by_rule[{v.tenant(), v.rule()}];
    }
    for (const auto& [key, n] : by_rule)
      m->compliance_violations->With({key.first, key.second})->Set(n);
    m->instrument_expiry_seconds->Clear();
    for (const auto& [id, t] : tenants_) {
      for (const v1::Instrument& in : t.instruments()) {
        absl::CivilDay until;
        if (!absl::ParseCivilTime(in.expires(), &until)) continue;
        // Valid through its expiry day: it ends at the next midnight, UTC.
        const absl::Time end = absl::FromCivil(until + 1, absl::UTCTimeZone());
        m->instrument_expiry_seconds->With({id, in.type(), in.reference()})
            ->Set(absl::ToDoubleSeconds(end - clock_->Now()));
      }
    }
    RefreshTenantMetrics(*m);
  });
}

void Core::RefreshTenantMetrics(SchedulerMetrics& m) {
  m.tenant_used->Clear();
  m.tenant_quota->Clear();
  auto set = [](metrics::Family<metrics::Gauge>* f, const std::string& tenant,
                const v1::Resources& r, bool skip_zero) {
    for (const auto& [name, v] : {std::pair<const char*, int32_t>{"cpus", r.cpus()},
                                  {"memory_mb", r.memory_mb()},
                                  {"gpus", r.gpus()}}) {
      if (!skip_zero || v > 0) f->With({tenant, name})->Set(v);
    }
  };
  for (const auto& [tenant, held] : usage_.tenants()) set(m.tenant_used, tenant, held.total, false);
  for (const auto& [id, t] : tenants_) {
    if (!t.has_quota()) continue;
    v1::Resources q;
    q.set_cpus(t.quota().cpus());
    q.set_memory_mb(t.quota().memory_mb());
    q.set_gpus(t.quota().gpus());
    set(m.tenant_quota, id, q, true);
  }
}

absl::StatusOr<v1::Job> Core::GetJob(const std::string& id) { return ReadJob(id); }

absl::StatusOr<v1::ListJobsResponse> Core::ListJobs(const JobFilter& filter) {
  v1::Job::State state = v1::Job::state_unspecified;
  if (!filter.state.empty() && !v1::Job::State_Parse(filter.state, &state)) {
    return codec::InvalidField("state",
                               absl::StrCat("unknown state '", filter.state,
                                            "' (queued, placed, running, succeeded, failed, "
                                            "cancelled, lost, unschedulable)"));
  }
  if (filter.page_size < 1 || filter.page_size > 1000) {
    return codec::InvalidField("page_size", "page_size must be 1-1000");
  }
  JobTable::OrderKey start{INT64_MAX, ""};
  if (!filter.page_token.empty()) {
    std::vector<std::string> parts = absl::StrSplit(filter.page_token, absl::MaxSplits('.', 1));
    if (parts.size() != 2 || !absl::SimpleAtoi(parts[0], &start.first)) {
      return codec::InvalidField("page_token",
                                 "malformed page_token; pass next_page_token back unchanged");
    }
    start.second = parts[1];
  }
  v1::ListJobsResponse out;
  std::vector<std::pair<int, std::string>> ended;  // (index in out, id): read from the store
  {
    absl::MutexLock lock(&mu_);
    // Newest first: walk the submit order backwards from the token.
    auto it = std::make_reverse_iterator(jobs_.order().lower_bound(start));
    const JobTable::OrderKey* last = nullptr;
    for (; it != jobs_.order().rend(); ++it) {
      const JobTable::Rec& rec = *jobs_.Find(it->second);
      if (it->second.back() == ']') continue;  // a task: listed under its array
      if (state != v1::Job::state_unspecified && rec.state() != state) continue;
      if (!filter.tenant.empty() && rec.tenant != filter.tenant) continue;
      if (out.jobs_size() == filter.page_size) {
        out.set_next_page_token(absl::StrCat(last->first, ".", last->second));
        break;
      }
      last = &*it;
      if (rec.job) {
        *out.add_jobs() = *rec.job;
      } else {
        ended.emplace_back(out.jobs_size(), it->second);
        out.add_jobs();
      }
    }
  }
  for (const auto& [index, id] : ended) {
    auto job = ReadEnded(id);
    if (!job.ok()) return job.status();
    out.mutable_jobs(index)->Swap(&*job);
  }
  return out;
}

absl::StatusOr<v1::Job> Core::Cancel(const std::string& id) {
  absl::MutexLock lock(&mu_);
  JobTable::Rec* rec = jobs_.Find(id);
  if (rec == nullptr)
    return codec::FieldError(absl::StatusCode::kNotFound, "id", absl::StrCat("no job '", id, "'"));
  if (IsTerminal(rec->state())) {
    return absl::FailedPreconditionError(
        absl::StrCat("job ", id, " already ended (", StateName(rec->state()), ")"));
  }
  v1::Job& job = *rec->job;
  if (job.has_gang() && !job.array_job().empty()) {
    return codec::FieldError(
        absl::StatusCode::kFailedPrecondition, "id",
        absl::StrCat(id, " is a member of gang ", job.array_job(),
                     ", whose members start and stop together: cancel ", job.array_job()));
  }
  if (IsArrayJob(job)) {
    if (absl::Status st = CancelArray(job); !st.ok()) return st;
    v1::Job copy = *jobs_.Held(id);
    if (const ArrayTable::Array* a = arrays_.Find(id))
      *copy.mutable_task_counts() = ArrayTable::Counts(*a);
    return copy;
  }
  if (job.state() == v1::Job::queued) {
    preempting_.erase(id);
    Transition(job, v1::Job::cancelled, "cancelled before placement");
    return job;
  }
  if (preempted_.erase(id) > 0) {
    // Already stopping for a preemption: it now ends cancelled.
    Note(job, "cancel requested while it stops for a preemption; it will end cancelled");
    return job;
  }
  RequestStop(job,
              absl::StrCat("cancel requested; stopping it on agent ", job.allocation().agent()),
              "cancelled by request");
  return job;
}

void Core::Note(v1::Job& job, const std::string& message) {
  v1::JobEvent* ev = job.add_events();
  *ev->mutable_time() = base::ToProto(clock_->Now());
  ev->set_state(job.state());
  ev->set_message(message);
  (void)Persist(job);
}

void Core::RequestStop(v1::Job& job, const std::string& event, const std::string& reason,
                       absl::Duration grace) {
  if (job.cancel_requested()) return;
  job.set_cancel_requested(true);
  Note(job, event);
  auto a = agents_.find(job.allocation().agent());
  if (a != agents_.end())
    agents_.SendCancel(a->second, job.id(), job.attempt(), reason, clock_->Now(), grace);
}

absl::StatusOr<v1::JobLogs> Core::Logs(const std::string& id) {
  {
    absl::MutexLock lock(&mu_);
    if (!jobs_.Contains(id))
      return codec::FieldError(absl::StatusCode::kNotFound, "id",
                               absl::StrCat("no job '", id, "'"));
  }
  auto logs = store_->GetLogs(id);
  if (logs.status().code() == absl::StatusCode::kNotFound) {
    v1::JobLogs empty;
    empty.set_job_id(id);
    return empty;
  }
  return logs;
}

v1::ListAgentsResponse Core::ListAgents() {
  absl::MutexLock lock(&mu_);
  v1::ListAgentsResponse out;
  for (const auto& [id, rec] : agents_) *out.add_agents() = AgentRegistry::View(rec);
  return out;
}

absl::StatusOr<v1::Agent> Core::GetAgent(const std::string& id) {
  absl::MutexLock lock(&mu_);
  auto it = agents_.find(id);
  if (it == agents_.end())
    return codec::FieldError(absl::StatusCode::kNotFound, "id",
                             absl::StrCat("no agent '", id, "'"));
  v1::Agent out = AgentRegistry::View(it->second);
  if (it->second.topo) it->second.topo->Describe(&out);
  return out;
}

absl::StatusOr<v1::Agent> Core::SetAgentMode(const std::string& id, const std::string& action) {
  absl::MutexLock lock(&mu_);
  auto it = agents_.find(id);
  if (it == agents_.end())
    return codec::FieldError(absl::StatusCode::kNotFound, "id",
                             absl::StrCat("no agent '", id, "'"));
  AgentRec& rec = it->second;
  if (rec.info.state() == v1::Agent::lost) {
    return absl::FailedPreconditionError(
        absl::StrCat("agent ", id, " is lost; it must re-register first"));
  }
  v1::Agent::State to = action == "cordon"  ? v1::Agent::cordoned
                        : action == "drain" ? v1::Agent::draining
                                            : v1::Agent::ready;
  if (rec.info.state() != to) {
    spdlog::info("agent {}: {} -> {}", id, v1::Agent::State_Name(rec.info.state()),
                 v1::Agent::State_Name(to));
    rec.info.set_state(to);
    PersistAgent(rec);
    RequestPass();
  }
  v1::Agent out = AgentRegistry::View(rec);
  if (rec.topo) rec.topo->Describe(&out);
  return out;
}

void Core::EndAttempt(v1::Job& job, v1::Job::State outcome, const std::string& reason,
                      int exit_code, int signal) {
  const absl::Time now = clock_->Now();
  Release(job);
  if (job.attempts_size() > 0) {
    v1::Attempt* a = job.mutable_attempts(job.attempts_size() - 1);
    a->set_outcome(outcome);
    a->set_exit_code(exit_code);
    a->set_reason(reason);
    *a->mutable_finished_at() = base::ToProto(now);
  }
  job.set_exit_code(exit_code);
  job.set_signal(signal);
  // Preempted, or stopped because another member of its gang failed.
  if (EndStopped(job, outcome, reason)) return;
  const v1::RestartPolicy::Policy policy = job.restart().policy();
  const bool retry_kind =
      (outcome == v1::Job::lost &&
       (policy == v1::RestartPolicy::on_agent_loss || policy == v1::RestartPolicy::on_failure)) ||
      (outcome == v1::Job::failed && policy == v1::RestartPolicy::on_failure);
  const uint32_t max_attempts = job.restart().max_attempts() > 0 ? job.restart().max_attempts() : 3;
  absl::Duration backoff = options_.restart_backoff;
  for (uint32_t k = 1; k < job.attempt() && backoff < options_.restart_backoff_max; ++k)
    backoff *= 2;
  backoff = std::min(backoff, options_.restart_backoff_max);
  bool retry = retry_kind && !job.cancel_requested() && job.attempt() < max_attempts;
  if (job.has_gang() && !job.array_job().empty() && !job.cancel_requested() &&
      (outcome == v1::Job::failed || outcome == v1::Job::lost)) {
    // A gang fails, and restarts, whole.
    retry = StopGang(job, outcome, retry, now + backoff);
  }
  if (retry) {
    *job.mutable_not_before() = base::ToProto(now + backoff);
    job.clear_allocation();
    next_wakeup_ = std::min(next_wakeup_, now + backoff);
    Transition(job, v1::Job::queued,
               absl::StrCat("attempt ", job.attempt(), " ", StateName(outcome), ": ", reason,
                            "; retrying (attempt ", job.attempt() + 1, " of ", max_attempts,
                            ") after ", absl::FormatDuration(backoff)));
    return;
  }
  std::string final_reason = reason;
  if (retry_kind && !job.cancel_requested()) {
    absl::StrAppend(&final_reason, " (attempt ", job.attempt(), " of ", max_attempts,
                    "; no attempts left)");
  }
  Transition(job, outcome, final_reason);
}

void Core::Release(v1::Job& job) {
  usage_.Drop(job.id());
  auto it = agents_.find(job.allocation().agent());
  if (it == agents_.end()) return;
  v1::Agent& a = it->second.info;
  if (it->second.topo) it->second.topo->Release(job.allocation(), job.id());
  AgentRegistry::SyncAllocated(it->second);
  auto* jobs = a.mutable_jobs();
  for (int i = 0; i < jobs->size(); ++i) {
    if (jobs->Get(i) == job.id()) {
      jobs->erase(jobs->begin() + i);
      break;
    }
  }
  RequestPass(/*only_capacity_freed=*/true);
}

}  // namespace portolan::scheduler
