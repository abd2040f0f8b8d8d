#include "portolan/scheduler_core.h"

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
#include "google/protobuf/util/message_differencer.h"
#include "portolan/codec.h"
#include "portolan/log.h"
#include "portolan/strings.h"
#include "portolan/topology_alloc.h"
#include "portolan/v1/options.pb.h"

namespace portolan::scheduler {
namespace {
// The first spec field in which two jobs differ ("" when the specs agree).
std::string SpecDifference(const v1::Job& a, const v1::Job& b) {
  const google::protobuf::Descriptor* d = v1::Job::descriptor();
  for (int i = 0; i < d->field_count(); ++i) {
    const google::protobuf::FieldDescriptor* f = d->field(i);
    if (f->options().GetExtension(v1::output_only)) continue;
    google::protobuf::util::MessageDifferencer diff;
    std::vector<const google::protobuf::FieldDescriptor*> only{f};
    if (!diff.CompareWithFields(a, b, only, only)) return f->name();
  }
  return "";
}

int64_t Nanos(const google::protobuf::Timestamp& ts) { return absl::ToUnixNanos(FromProto(ts)); }

void Add(v1::Resources* into, const v1::Resources& r, int sign) {
  into->set_cpus(into->cpus() + sign * r.cpus());
  into->set_memory_mb(into->memory_mb() + sign * r.memory_mb());
  into->set_gpus(into->gpus() + sign * r.gpus());
}

bool HoldsResources(v1::Job::State s) { return s == v1::Job::placed || s == v1::Job::running; }

}  // namespace

// The order waiting jobs are tried in one scheduling pass: higher priority
// first; within a priority, the tenant whose dominant share of the cluster
// (max of its cpu, memory and gpu shares held by placed or running jobs) is
// smallest goes next (dominant-resource fairness); each tenant's jobs FIFO.
class DrfQueue {
 public:
  explicit DrfQueue(std::array<double, 3> total) : total_(total) {}
  void Add(int priority, const std::string& tenant, const std::string& id) {
    levels_[priority][tenant].push_back(id);
  }
  void Charge(const std::string& tenant, const v1::Resources& r) {
    auto& u = usage_[tenant];
    u[0] += r.cpus();
    u[1] += r.memory_mb();
    u[2] += r.gpus();
  }
  double Share(const std::string& tenant) const {
    auto it = usage_.find(tenant);
    if (it == usage_.end()) return 0;
    double share = 0;
    for (int k = 0; k < 3; ++k) {
      if (total_[k] > 0) share = std::max(share, it->second[k] / total_[k]);
    }
    return share;
  }
  bool Next(std::string* id) {
    while (!levels_.empty()) {
      auto& tenants = levels_.begin()->second;
      const std::string* best = nullptr;
      double best_share = 0;
      for (auto& [tenant, ids] : tenants) {
        if (ids.empty()) continue;
        double share = Share(tenant);
        if (best == nullptr || share < best_share) {
          best = &tenant;
          best_share = share;
        }
      }
      if (best == nullptr) {
        levels_.erase(levels_.begin());
        continue;
      }
      auto& ids = tenants[*best];
      *id = ids.front();
      ids.pop_front();
      return true;
    }
    return false;
  }

 private:
  std::array<double, 3> total_;
  std::map<int, std::map<std::string, std::deque<std::string>>, std::greater<int>> levels_;
  std::map<std::string, std::array<double, 3>> usage_;
};

Core::Core(CoreOptions options, Store* store, Clock* clock, const placement::Registry* registry)
    : options_(options), store_(store), clock_(clock), registry_(registry) {}

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
    for (const std::string& change : policy::MigratePolicy(&stored)) {
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
  jobs_.reserve(jobs->active.size() + jobs->ended.size());
  for (JobSummary& e : jobs->ended) IndexEnded(std::move(e));
  for (v1::Job& j : jobs->active) {
    v1::Job& job = Index(std::move(j));
    if (HoldsResources(job.state())) {
      ++active;
      auto it = agents_.find(job.allocation().agent());
      if (it != agents_.end()) {
        it->second.info.add_jobs(job.id());
        CommitRecovered(it->second, job);
      }
    }
  }
  for (auto& [id, rec] : agents_) SyncAllocated(rec);
  spdlog::info(
      "recovered {} jobs ({} queued, {} placed or running) and {} agents in {:.2f} s ({:.2f} s "
      "reading the store)",
      jobs_.size(), queue_.size(), active, agents_.size(),
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count(), load_s);
  schedule_pending_ = true;
  return absl::OkStatus();
}

v1::Job& Core::Index(v1::Job job) {
  std::string id = job.id();
  JobRec& rec = jobs_[id];
  rec.tenant = job.tenant();
  rec.submitted_ns = Nanos(job.submitted_at());
  rec.seq = ++next_submit_seq_;  // jobs are indexed in submit (or load) order
  ++job_counts_[{job.state(), rec.tenant}];
  order_.emplace(rec.submitted_ns, id);
  if (job.state() == v1::Job::queued) queue_.emplace(-job.priority(), rec.seq, id);
  if (!job.idempotency_key().empty()) idempotency_[{job.tenant(), job.idempotency_key()}] = id;
  rec.job = std::make_unique<v1::Job>(std::move(job));
  return *rec.job;
}

void Core::IndexEnded(JobSummary&& e) {
  JobRec& rec = jobs_[e.id];
  rec.tenant = std::move(e.tenant);
  rec.submitted_ns = e.submitted_ns;
  rec.ended_state = e.state;
  ++job_counts_[{e.state, rec.tenant}];
  if (!e.idempotency_key.empty()) idempotency_[{rec.tenant, std::move(e.idempotency_key)}] = e.id;
  order_.emplace(e.submitted_ns, std::move(e.id));
}

v1::Job& Core::Live(const std::string& id) { return *jobs_.at(id).job; }

absl::StatusOr<v1::Job> Core::ReadJob(const std::string& id) {
  {
    absl::MutexLock lock(&mu_);
    auto it = jobs_.find(id);
    if (it == jobs_.end())
      return FieldError(absl::StatusCode::kNotFound, "id", absl::StrCat("no job '", id, "'"));
    if (it->second.job) return *it->second.job;
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

void Core::DropEnded() {
  for (const std::string& id : ended_) {
    auto it = jobs_.find(id);
    if (it == jobs_.end() || !it->second.job || !IsTerminal(it->second.job->state())) continue;
    it->second.ended_state = it->second.job->state();
    it->second.job.reset();
  }
  ended_.clear();
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
  absl::Status st = store_->PutAgent(View(rec));
  if (!st.ok()) spdlog::error("store: cannot persist agent {}: {}", rec.info.id(), st.message());
}

void Core::Transition(v1::Job& job, v1::Job::State state, const std::string& message) {
  const absl::Time now = clock_->Now();
  const JobRec& rec = jobs_.at(job.id());
  if (job.state() == v1::Job::queued && state != v1::Job::queued) {
    queue_.erase({-job.priority(), rec.seq, job.id()});
    waiting_decisions_.erase(job.id());
  }
  if (state == v1::Job::queued && job.state() != v1::Job::queued) {
    queue_.emplace(-job.priority(), rec.seq, job.id());
  }
  if (state != job.state()) {
    const std::string& tenant = rec.tenant;
    auto old = job_counts_.find({job.state(), tenant});
    if (old != job_counts_.end() && --old->second == 0) job_counts_.erase(old);
    ++job_counts_[{state, tenant}];
  }
  job.set_state(state);
  job.set_reason(message);
  v1::JobEvent* ev = job.add_events();
  *ev->mutable_time() = ToProto(now);
  ev->set_state(state);
  ev->set_message(message);
  if (state == v1::Job::running && !job.has_started_at()) *job.mutable_started_at() = ToProto(now);
  if (IsTerminal(state)) *job.mutable_finished_at() = ToProto(now);
  spdlog::info("job {} -> {}: {}", job.id(), StateName(state), message);
  // An ended job's record is dropped from memory once stored (DropEnded); if
  // the write failed, memory is the only place it is current, so it stays.
  if (Persist(job).ok() && IsTerminal(state)) ended_.push_back(job.id());
}

absl::StatusOr<std::pair<v1::Job, bool>> Core::Submit(v1::Job spec) {
  absl::Status st = ValidateAndDefault(spec);
  if (!st.ok()) return st;
  const std::pair<std::string, std::string> key{spec.tenant(), spec.idempotency_key()};
  std::string earlier;  // the job an earlier submit with the same key created
  {
    absl::MutexLock lock(&mu_);
    if (policy_ == nullptr) return absl::UnavailableError("no placement policy loaded yet");
    st = CheckAgainstPolicy(spec, *policy_->compiled);
    if (!st.ok()) return st;
    if (!key.second.empty()) {
      // A concurrent submit with the same key is being stored: wait for it.
      struct Arg {
        Core* core;
        const std::pair<std::string, std::string>* key;
      } arg{this, &key};
      mu_.Await(absl::Condition(
          +[](Arg* a) ABSL_NO_THREAD_SAFETY_ANALYSIS {
            return !a->core->submitting_keys_.contains(*a->key);
          },
          &arg));
      auto it = idempotency_.find(key);
      if (it != idempotency_.end()) {
        earlier = it->second;
      } else {
        submitting_keys_.insert(key);
      }
    }
  }
  if (!earlier.empty()) {
    auto job = ReadJob(earlier);
    if (!job.ok()) return job.status();
    // A retry repeats the request; the same key on a different request is a
    // client bug that must not silently return someone else's job.
    if (std::string diff = SpecDifference(*job, spec); !diff.empty()) {
      return WithErrorCode(
          FieldError(
              absl::StatusCode::kAlreadyExists, "idempotency_key",
              absl::StrCat("idempotency key '", CleanForMessage(key.second), "' was used for job ",
                           earlier, " with a different ", diff, "; use a new key for a new job")),
          "idempotency_conflict");
    }
    return std::make_pair(*std::move(job), false);
  }
  const absl::Time now = clock_->Now();
  spec.set_id(NewId("job"));
  spec.set_state(v1::Job::queued);
  spec.set_reason("waiting for placement");
  *spec.mutable_submitted_at() = ToProto(now);
  v1::JobEvent* ev = spec.add_events();
  *ev->mutable_time() = ToProto(now);
  ev->set_state(v1::Job::queued);
  ev->set_message("submitted");
  // Stored without holding the core lock, so concurrent submits share one
  // commit (the store's group commit); acknowledged only once stored, and a
  // failed write leaves no trace.
  st = store_->PutJob(spec);
  if (!st.ok()) spdlog::error("store: cannot persist job {}: {}", spec.id(), st.message());
  absl::MutexLock lock(&mu_);
  if (!key.second.empty()) submitting_keys_.erase(key);
  if (!st.ok()) {
    return absl::UnavailableError(
        absl::StrCat("job not accepted: state store write failed: ", st.message()));
  }
  const std::string id = spec.id();
  if (metrics_ != nullptr) metrics_->submits->With({spec.tenant()})->Inc();
  const v1::Job& job = Index(std::move(spec));
  spdlog::debug("job {} submitted by tenant {} ({} cpus, {} MiB)", id, job.tenant(),
                job.resources().cpus(), job.resources().memory_mb());
  // Nothing else changed: only the new job needs a decision now. It is still
  // held afterwards (records are dropped only in Tick).
  ScheduleLocked(&id);
  return std::make_pair(job, true);
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
    for (const auto& [key, n] : job_counts_)
      m->jobs->With({v1::Job::State_Name(key.first), key.second})->Set(static_cast<double>(n));
    m->queue_depth->Set(static_cast<double>(queue_.size()));
    // Within a priority the queue is in submit order, so the oldest waiting
    // job is the first of one of the priority levels.
    int64_t oldest = INT64_MAX;
    for (auto it = queue_.begin(); it != queue_.end();
         it = queue_.lower_bound({std::get<0>(*it) + 1, INT64_MIN, ""})) {
      oldest = std::min(oldest, jobs_.at(std::get<2>(*it)).submitted_ns);
    }
    m->oldest_waiting_seconds->Set(
        queue_.empty()
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
  });
}

absl::StatusOr<v1::Job> Core::GetJob(const std::string& id) { return ReadJob(id); }

absl::StatusOr<v1::ListJobsResponse> Core::ListJobs(const JobFilter& filter) {
  v1::Job::State state = v1::Job::state_unspecified;
  if (!filter.state.empty() && !v1::Job::State_Parse(filter.state, &state)) {
    return InvalidField("state", absl::StrCat("unknown state '", filter.state,
                                              "' (queued, placed, running, succeeded, failed, "
                                              "cancelled, lost, unschedulable)"));
  }
  if (filter.page_size < 1 || filter.page_size > 1000) {
    return InvalidField("page_size", "page_size must be 1-1000");
  }
  OrderKey start{INT64_MAX, ""};
  if (!filter.page_token.empty()) {
    std::vector<std::string> parts = absl::StrSplit(filter.page_token, absl::MaxSplits('.', 1));
    if (parts.size() != 2 || !absl::SimpleAtoi(parts[0], &start.first)) {
      return InvalidField("page_token",
                          "malformed page_token; pass next_page_token back unchanged");
    }
    start.second = parts[1];
  }
  v1::ListJobsResponse out;
  std::vector<std::pair<int, std::string>> ended;  // (index in out, id): read from the store
  {
    absl::MutexLock lock(&mu_);
    // Newest first: walk the submit order backwards from the token.
    auto it = std::make_reverse_iterator(order_.lower_bound(start));
    const OrderKey* last = nullptr;
    for (; it != order_.rend(); ++it) {
      const JobRec& rec = jobs_.at(it->second);
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
  auto it = jobs_.find(id);
  if (it == jobs_.end())
    return FieldError(absl::StatusCode::kNotFound, "id", absl::StrCat("no job '", id, "'"));
  if (IsTerminal(it->second.state())) {
    return absl::FailedPreconditionError(
        absl::StrCat("job ", id, " already ended (", StateName(it->second.state()), ")"));
  }
  v1::Job& job = *it->second.job;
  if (job.state() == v1::Job::queued) {
    Transition(job, v1::Job::cancelled, "cancelled before placement");
    return job;
  }
  RequestStop(job,
              absl::StrCat("cancel requested; stopping it on agent ", job.allocation().agent()),
              "cancelled by request");
  return job;
}

void Core::Note(v1::Job& job, const std::string& message) {
  v1::JobEvent* ev = job.add_events();
  *ev->mutable_time() = ToProto(clock_->Now());
  ev->set_state(job.state());
  ev->set_message(message);
  (void)Persist(job);
}

void Core::RequestStop(v1::Job& job, const std::string& event, const std::string& reason) {
  if (job.cancel_requested()) return;
  job.set_cancel_requested(true);
  Note(job, event);
  auto a = agents_.find(job.allocation().agent());
  if (a != agents_.end()) SendCancel(a->second, job.id(), job.attempt(), reason);
}

absl::StatusOr<v1::JobLogs> Core::Logs(const std::string& id) {
  {
    absl::MutexLock lock(&mu_);
    if (!jobs_.contains(id))
      return FieldError(absl::StatusCode::kNotFound, "id", absl::StrCat("no job '", id, "'"));
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
  for (const auto& [id, rec] : agents_) *out.add_agents() = View(rec);
  return out;
}

absl::StatusOr<v1::Agent> Core::GetAgent(const std::string& id) {
  absl::MutexLock lock(&mu_);
  auto it = agents_.find(id);
  if (it == agents_.end())
    return FieldError(absl::StatusCode::kNotFound, "id", absl::StrCat("no agent '", id, "'"));
  v1::Agent out = View(it->second);
  if (it->second.topo) it->second.topo->Describe(&out);
  return out;
}

absl::StatusOr<v1::Agent> Core::SetAgentMode(const std::string& id, const std::string& action) {
  absl::MutexLock lock(&mu_);
  auto it = agents_.find(id);
  if (it == agents_.end())
    return FieldError(absl::StatusCode::kNotFound, "id", absl::StrCat("no agent '", id, "'"));
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
    schedule_pending_ = true;
  }
  v1::Agent out = View(rec);
  if (rec.topo) rec.topo->Describe(&out);
  return out;
}

void Core::SendReliable(AgentRec& rec, v1::Envelope envelope) {
  envelope.set_seq(++next_seq_);
  Pending& p = rec.outbox[envelope.seq()];
  p.envelope = std::move(envelope);
  p.last_sent = clock_->Now();
  if (rec.link) rec.link->Send(p.envelope);
}

void Core::SendCancel(AgentRec& rec, const std::string& job_id, uint32_t attempt,
                      const std::string& reason) {
  // An Assign still unacknowledged for this job is withdrawn; the Cancel
  // covers the case where it did arrive.
  for (auto it = rec.outbox.begin(); it != rec.outbox.end();) {
    if (it->second.envelope.has_assign() && it->second.envelope.assign().job().id() == job_id) {
      it = rec.outbox.erase(it);
    } else {
      ++it;
    }
  }
  v1::Envelope env;
  env.mutable_cancel()->set_job_id(job_id);
  env.mutable_cancel()->set_attempt(attempt);
  env.mutable_cancel()->set_reason(reason);
  SendReliable(rec, std::move(env));
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
    *a->mutable_finished_at() = ToProto(now);
  }
  job.set_exit_code(exit_code);
  job.set_signal(signal);
  const v1::RestartPolicy::Policy policy = job.restart().policy();
  const bool retry_kind =
      (outcome == v1::Job::lost &&
       (policy == v1::RestartPolicy::on_agent_loss || policy == v1::RestartPolicy::on_failure)) ||
      (outcome == v1::Job::failed && policy == v1::RestartPolicy::on_failure);
  const uint32_t max_attempts = job.restart().max_attempts() > 0 ? job.restart().max_attempts() : 3;
  if (retry_kind && !job.cancel_requested() && job.attempt() < max_attempts) {
    absl::Duration backoff = options_.restart_backoff;
    for (uint32_t k = 1; k < job.attempt() && backoff < options_.restart_backoff_max; ++k)
      backoff *= 2;
    backoff = std::min(backoff, options_.restart_backoff_max);
    *job.mutable_not_before() = ToProto(now + backoff);
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
  auto it = agents_.find(job.allocation().agent());
  if (it == agents_.end()) return;
  v1::Agent& a = it->second.info;
  if (it->second.topo) it->second.topo->Release(job.allocation(), job.id());
  SyncAllocated(it->second);
  auto* jobs = a.mutable_jobs();
  for (int i = 0; i < jobs->size(); ++i) {
    if (jobs->Get(i) == job.id()) {
      jobs->erase(jobs->begin() + i);
      break;
    }
  }
  schedule_pending_ = true;
}

v1::Resources Core::Free(const AgentRec& rec) {
  v1::Resources f = rec.info.capacity();
  Add(&f, rec.info.allocated(), -1);
  return f;
}

void Core::SyncAllocated(AgentRec& rec) {
  if (!rec.topo) return;
  v1::Resources* cap = rec.info.mutable_capacity();
  cap->set_cpus(rec.topo->total_pus());
  cap->set_memory_mb(rec.topo->total_memory_mb());
  cap->set_gpus(rec.topo->total_gpus());
  v1::Resources* used = rec.info.mutable_allocated();
  used->set_cpus(rec.topo->total_pus() - rec.topo->free_pus());
  used->set_memory_mb(rec.topo->total_memory_mb() - rec.topo->free_memory_mb());
  used->set_gpus(rec.topo->total_gpus() - rec.topo->free_gpus());
}

void Core::CommitRecovered(AgentRec& rec, v1::Job& job) {
  if (!rec.topo) return;
  if (job.allocation().pus_size() == 0) {
    // Placed before concrete allocation existed: give it one now.
    auto planned = rec.topo->Plan(topology::Request::FromJob(job));
    if (planned.ok()) {
      v1::Allocation a = *planned;
      a.set_agent(job.allocation().agent());
      a.set_site(job.allocation().site());
      *job.mutable_allocation() = a;
      (void)Persist(job);
    }
  }
  if (absl::Status st = rec.topo->Commit(job.allocation(), job.id()); !st.ok()) {
    spdlog::error("job {}: its allocation no longer fits agent {}: {}", job.id(), rec.info.id(),
                  st.message());
  }
}

v1::Agent Core::View(const AgentRec& rec) {
  v1::Agent out = rec.info;
  if (!out.mutable_topology()->ParseFromString(rec.topology)) out.clear_topology();
  return out;
}

void Core::RebuildTopology(AgentRec& rec, const v1::Topology& t) {
  rec.topo = std::make_unique<topology::AgentTopology>(t);
  rec.topology = t.SerializeAsString();
  for (const std::string& id : rec.info.jobs()) {
    auto it = jobs_.find(id);
    if (it != jobs_.end() && it->second.job && HoldsResources(it->second.job->state()))
      CommitRecovered(rec, *it->second.job);
  }
  SyncAllocated(rec);
}

std::map<std::string, std::vector<placement::AgentView>> Core::AgentsBySite() {
  std::map<std::string, std::vector<placement::AgentView>> out;
  for (auto& [id, rec] : agents_) {
    placement::AgentView v;
    v.agent = &rec.info;
    v.topo = rec.topo.get();
    v.free = rec.info.capacity();
    Add(&v.free, rec.info.allocated(), -1);
    out[rec.info.site()].push_back(std::move(v));
  }
  return out;
}

const v1::Tenant* Core::TenantFor(const std::string& id) {
  auto it = tenants_.find(id);
  if (it != tenants_.end()) return &it->second;
  // A tenant without a profile: no zones, not a CIIO, no instruments.
  v1::Tenant& t = tenants_[id];
  t.set_id(id);
  return &t;
}

void Core::RecordCrossBorder(const v1::Job& job, const v1::Decision& d) {
  const int year = static_cast<int>(absl::ToCivilDay(clock_->Now(), absl::UTCTimeZone()).year());
  const v1::Site* site = policy_->compiled->FindSite(d.placement().site());
  const std::string to = site ? site->jurisdiction() : "";
  bool counted = false;
  for (const v1::Compliance& c : d.placement().compliance()) {
    if (!c.export_()) continue;
    const v1::Dataset* ds = nullptr;
    for (const v1::Dataset& x : job.datasets()) {
      if (x.id() == c.dataset()) ds = &x;
    }
    if (ds == nullptr) continue;
    v1::AuditRecord rec;
    rec.set_id(NewId("audit"));
    *rec.mutable_time() = ToProto(clock_->Now());
    rec.set_job(job.id());
    rec.set_tenant(job.tenant());
    rec.set_dataset(ds->id());
    rec.set_origin(ds->origin());
    rec.set_from_site(ds->location());
    rec.set_to_site(d.placement().site());
    rec.set_to_jurisdiction(to);
    rec.set_rule(c.rule());
    rec.set_instrument(c.instrument());
    rec.set_subjects(c.subjects());
    rec.set_sensitive_subjects(c.sensitive_subjects());
    if (absl::Status st = store_->AppendAudit(rec); !st.ok()) {
      spdlog::error("store: cannot write audit record for job {}: {}", job.id(), st.message());
    }
    // One ledger per tenant, origin and year, over every destination.
    if (policy_->compiled->residency().Counts(c) &&
        ledger_.Record(job.tenant(), year, c.origin(), c.dataset(), c.subjects(),
                       c.sensitive_subjects())) {
      counted = true;
      if (absl::Status st = store_->PutLedgerEntry(ledger_.Entry(job.tenant(), year, c.origin()));
          !st.ok()) {
        spdlog::error("store: cannot write ledger for tenant {}: {}", job.tenant(), st.message());
      }
    }
  }
  // The tenant's year total grew: its other running jobs may now need an
  // instrument they lack (a threshold counts every export of the year).
  if (counted) CheckComplianceLocked(absl::StrCat("ledger: job ", job.id()), job.tenant());
}

namespace {
// Everything a placement decision reads of a job, as bytes: two jobs with
// the same key get the same decision from the same cluster state.
std::string DecisionClass(const v1::Job& j) {
  v1::Job k;
  k.set_tenant(j.tenant());
  k.set_kind(j.kind());
  *k.mutable_resources() = j.resources();
  *k.mutable_topology() = j.topology();
  *k.mutable_datasets() = j.datasets();
  *k.mutable_placement() = j.placement();
  std::string out;
  {
    google::protobuf::io::StringOutputStream sink(&out);
    google::protobuf::io::CodedOutputStream coded(&sink);
    coded.SetSerializationDeterministic(true);
    k.SerializeToCodedStream(&coded);
  }
  return out;
}
}  // namespace

void Core::FillQueue(DrfQueue& drf, const std::string* only) {
  if (only != nullptr) {
    const v1::Job& j = Live(*only);
    if (j.state() == v1::Job::queued) drf.Add(j.priority(), j.tenant(), j.id());
    return;
  }
  for (const auto& [id, rec] : agents_) {
    for (const std::string& jid : rec.info.jobs()) {
      auto it = jobs_.find(jid);
      if (it != jobs_.end() && it->second.job)
        drf.Charge(it->second.tenant, it->second.job->resources());
    }
  }
  for (const QueueKey& key : queue_) {
    const v1::Job& j = Live(std::get<2>(key));
    drf.Add(j.priority(), j.tenant(), j.id());
  }
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

void Core::ScheduleLocked(const std::string* only) {
  if (only == nullptr) schedule_pending_ = false;
  if (queue_.empty() || policy_ == nullptr) return;
  const std::shared_ptr<const PolicyState> policy = policy_;
  auto by_site = AgentsBySite();
  std::map<std::string, placement::AgentView*> by_agent;
  for (auto& [site, views] : by_site) {
    for (auto& v : views) by_agent[v.agent->id()] = &v;
  }
  placement::DecisionInput in;
  in.policy = policy->compiled.get();
  in.ledger = &ledger_;
  in.today = absl::ToCivilDay(clock_->Now(), absl::UTCTimeZone());
  in.agents_by_site = &by_site;
  // Fair-share order over the waiting jobs (queue_ is already priority,
  // FIFO). A single submitted job needs no ordering, so no shares either.
  std::array<double, 3> total{0, 0, 0};
  if (only == nullptr) {
    for (const auto& [id, rec] : agents_) {
      if (rec.info.state() == v1::Agent::lost) continue;
      total[0] += rec.info.capacity().cpus();
      total[1] += rec.info.capacity().memory_mb();
      total[2] += rec.info.capacity().gpus();
    }
  }
  DrfQueue drf(total);
  FillQueue(drf, only);
  const absl::Time now = clock_->Now();
  if (only == nullptr) next_wakeup_ = absl::InfiniteFuture();
  // Jobs that cannot be placed never hold up others. Within one pass (where
  // free capacity only shrinks), a job whose decision class already found no
  // room waits with that reason and no decision of its own; and a tenant
  // whose jobs missed max_capacity_misses times waits for the next pass
  // while other tenants' jobs are still tried. So the work of a pass is
  // bounded by the distinct shapes, not by the length of the queue.
  struct Full {
    std::shared_ptr<const std::string> decision;
    std::string reason;
  };
  std::map<std::string, Full> full_classes;
  std::map<std::string, int> tenant_misses;
  std::string next_id;
  while (drf.Next(&next_id)) {
    v1::Job& job = Live(next_id);
    if (job.has_not_before() && FromProto(job.not_before()) > now) {  // restart backoff
      next_wakeup_ = std::min(next_wakeup_, FromProto(job.not_before()));
      continue;
    }
    int& misses = tenant_misses[job.tenant()];
    if (misses >= options_.max_capacity_misses) continue;
    // The class key is built only once some class has missed: a pass that
    // places everything pays nothing for it.
    std::string cls = full_classes.empty() ? std::string() : DecisionClass(job);
    if (auto full = full_classes.find(cls); full != full_classes.end()) {
      waiting_decisions_[job.id()] = full->second.decision;
      job.set_reason(full->second.reason);
      continue;
    }
    in.job = &job;
    in.tenant = TenantFor(job.tenant());
    const auto started = std::chrono::steady_clock::now();
    v1::Decision d = policy->engine->Decide(in);
    ObserveDecision(
        d, std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
    d.set_policy_version(policy->meta.version());
    *d.mutable_decided_at() = ToProto(clock_->Now());
    if (!d.feasible()) {
      if (d.unschedulable()) {
        PersistDecision(job.id(), d);
        Transition(job, v1::Job::unschedulable, d.reason());
        continue;
      }
      ++misses;
      // The waiting reason is derived: every pass (and the first after a
      // restart) recomputes it, so it is kept in memory, not written; and
      // serialized, since a backlog can be 100,000s of jobs and only
      // `explain` reads it (tests/bench/rest_wrk.sh: a queued job took
      // 8.5 KiB with the decision parsed, 3.0 KiB with it serialized).
      job.set_reason(d.reason());
      auto kept = std::make_shared<const std::string>(d.SerializeAsString());
      waiting_decisions_[job.id()] = kept;
      if (cls.empty()) cls = DecisionClass(job);
      full_classes.emplace(std::move(cls), Full{std::move(kept), d.reason()});
      continue;
    }
    if (absl::Status st = policy->engine->Reserve(in, d); !st.ok()) {
      job.set_reason(absl::StrCat("waiting: reserve failed: ", st.message()));
      continue;
    }
    if (!CommitPlacement(job, d, *policy)) continue;
    by_agent.at(d.placement().agent())->free = Free(agents_.at(d.placement().agent()));
    drf.Charge(job.tenant(), job.resources());
  }
}

bool Core::CommitPlacement(v1::Job& job, const v1::Decision& d, const PolicyState& policy) {
  AgentRec& rec = agents_.at(d.placement().agent());
  v1::Allocation alloc;
  alloc.set_agent(d.placement().agent());
  alloc.set_site(d.placement().site());
  alloc.mutable_pus()->CopyFrom(d.placement().cpus());
  alloc.mutable_numa_nodes()->CopyFrom(d.placement().numa_nodes());
  alloc.mutable_gpu_ids()->CopyFrom(d.placement().gpus());
  *alloc.mutable_numa_memory_mb() = d.placement().numa_memory_mb();
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
  *job.mutable_allocation() = alloc;
  job.set_attempt(job.attempt() + 1);
  rec.info.add_jobs(job.id());
  SyncAllocated(rec);
  RecordCrossBorder(job, d);
  PersistDecision(job.id(), d);
  job.clear_not_before();
  v1::Attempt* attempt = job.add_attempts();
  attempt->set_number(job.attempt());
  *attempt->mutable_allocation() = job.allocation();
  attempt->set_outcome(v1::Job::placed);
  *attempt->mutable_placed_at() = ToProto(clock_->Now());
  std::string basis;
  for (const v1::Compliance& c : d.placement().compliance()) {
    absl::StrAppend(&basis, basis.empty() ? "; " : ", ", c.dataset(), " under ", c.rule(),
                    c.instrument().empty() ? "" : absl::StrCat(" with ", c.instrument()));
  }
  Transition(job, v1::Job::placed,
             absl::StrCat("placed on agent ", d.placement().agent(), " at site ",
                          d.placement().site(), " (score ", d.placement().score(), ", policy ",
                          policy.meta.version(), basis, ")"));
  v1::Envelope env;
  *env.mutable_assign()->mutable_job() = job;
  env.mutable_assign()->mutable_job()->clear_events();
  SendReliable(rec, std::move(env));
  return true;
}

std::string Core::TopologyProblem(const v1::Topology& t) {
  if (t.pus() == 0 || t.cores_size() == 0) return "topology reports no processing units";
  if (t.memory_mb() == 0) return "topology reports no memory";
  if (t.memory_mb() > (64u << 20)) {
    return absl::StrCat("topology reports ", t.memory_mb(),
                        " MiB of memory, more than 64 TiB is implausible");
  }
  if (t.cores_size() > topology::AgentTopology::kMaxCores) {
    return absl::StrCat("topology reports ", t.cores_size(), " cores, more than the ",
                        topology::AgentTopology::kMaxCores, " supported per agent");
  }
  uint32_t listed = 0;
  for (const v1::Core& c : t.cores()) {
    listed += static_cast<uint32_t>(c.pus_size());
    for (uint32_t pu : c.pus()) {
      if (pu > topology::AgentTopology::kMaxPuIndex) {
        return absl::StrCat("topology reports PU ", pu, ", above the highest supported OS index ",
                            topology::AgentTopology::kMaxPuIndex);
      }
    }
  }
  if (listed != t.pus()) {
    return absl::StrCat("topology is inconsistent: it reports ", t.pus(),
                        " PUs but its cores list ", listed);
  }
  return "";
}

bool Core::OnRegister(const v1::Register& reg, std::shared_ptr<AgentLink> link,
                      const std::string& peer) {
  v1::Envelope ack_env;
  v1::RegisterAck* ack = ack_env.mutable_register_ack();
  std::string refuse;
  if (reg.agent_id().empty() || reg.agent_id().size() > 128) {
    refuse = "agent_id must be 1-128 characters";
  } else if (reg.site().empty()) {
    refuse = "site is required";
  } else {
    refuse = TopologyProblem(reg.topology());
  }
  if (!refuse.empty()) {
    spdlog::warn("refusing registration of agent '{}' from {}: {}", reg.agent_id(), peer, refuse);
    ack->set_accepted(false);
    ack->set_reason(refuse);
    link->Send(ack_env);
    return false;
  }

  absl::MutexLock lock(&mu_);
  const absl::Time now = clock_->Now();
  AgentRec& rec = agents_[reg.agent_id()];
  if (rec.link && rec.link != link)
    rec.link->Close("replaced by a newer session of the same agent");
  const bool was_lost = rec.info.state() == v1::Agent::lost;
  v1::Agent& a = rec.info;
  a.set_id(reg.agent_id());
  a.set_site(reg.site());
  *a.mutable_labels() = reg.labels();
  a.set_version(reg.version());
  *a.mutable_isolation() = reg.isolation();
  if (a.state() == v1::Agent::state_unspecified || was_lost) a.set_state(v1::Agent::ready);
  a.set_connected(true);
  a.set_address(peer);
  *a.mutable_registered_at() = ToProto(now);
  *a.mutable_last_heartbeat_at() = ToProto(now);
  a.set_session_id(NewId("session"));
  RebuildTopology(rec, reg.topology());
  rec.link = std::move(link);
  rec.last_seen = now;
  rec.confirm_by = absl::InfiniteFuture();  // it answers again; `stopping` still awaits its word

  ack->set_accepted(true);
  ack->set_session_id(a.session_id());
  ack->set_heartbeat_interval_ms(
      static_cast<uint32_t>(absl::ToInt64Milliseconds(options_.heartbeat_interval)));
  rec.link->Send(ack_env);
  if (policy_ != nullptr && policy_->compiled->FindSite(a.site()) == nullptr) {
    spdlog::warn(
        "agent {} belongs to site {}, which is not in the policy's site catalogue: it gets no jobs "
        "until the site is added",
        a.id(), a.site());
  }
  spdlog::info("agent {} registered from {} (site {}, {} PUs, {} MiB, {} GPUs, {} jobs reported){}",
               a.id(), peer, a.site(), a.capacity().cpus(), a.capacity().memory_mb(),
               a.capacity().gpus(), reg.jobs_size(), was_lost ? " after being lost" : "");

  // First resend what the previous session left unacknowledged, in order;
  // what reconciliation adds below is sent once, by SendReliable.
  for (auto& [seq, p] : rec.outbox) {
    p.last_sent = now;
    rec.link->Send(p.envelope);
  }

  // Reconcile: what the agent reports against what we think it runs.
  std::map<std::string, const v1::AgentJobStatus*> reported;
  for (const v1::AgentJobStatus& s : reg.jobs()) reported[s.job_id()] = &s;
  std::vector<std::string> mine(a.jobs().begin(), a.jobs().end());
  for (const std::string& id : mine) {
    v1::Job& job = Live(id);
    auto r = reported.find(id);
    if (r != reported.end() && r->second->attempt() == job.attempt()) {
      if (r->second->state() == v1::Job::running && job.state() == v1::Job::placed) {
        Transition(job, v1::Job::running,
                   absl::StrCat("running on agent ", a.id(), " (reported at registration)"));
      }
      // Final states arrive as JobUpdates, which the agent resends.
      continue;
    }
    bool assign_pending = false;
    for (const auto& [seq, p] : rec.outbox) {
      if (p.envelope.has_assign() && p.envelope.assign().job().id() == id) assign_pending = true;
    }
    if (assign_pending) continue;
    if (job.state() == v1::Job::placed && !job.cancel_requested()) {
      // Placed before a scheduler restart; the Assign may never have arrived.
      v1::Envelope env;
      *env.mutable_assign()->mutable_job() = job;
      env.mutable_assign()->mutable_job()->clear_events();
      SendReliable(rec, std::move(env));
      continue;
    }
    EndAttempt(job, job.cancel_requested() ? v1::Job::cancelled : v1::Job::lost,
               reg.accounts_for_all_jobs()
                   ? absl::StrCat("agent ", a.id(), " re-registered without attempt ",
                                  job.attempt(), ": it does not run there")
                   : absl::StrCat("agent ", a.id(), " re-registered without this job"),
               0, 0);
  }
  for (const v1::AgentJobStatus& s : reg.jobs()) {
    if (IsTerminal(s.state())) continue;
    auto j = jobs_.find(s.job_id());
    const v1::Job* job = j != jobs_.end() ? j->second.job.get() : nullptr;
    bool ours = job != nullptr && job->allocation().agent() == a.id() &&
                job->attempt() == s.attempt() && !IsTerminal(job->state());
    if (!ours) {
      spdlog::warn("agent {} runs job {} (attempt {}) that it should not; telling it to stop",
                   a.id(), s.job_id(), s.attempt());
      SendCancel(rec, s.job_id(), s.attempt(), "the scheduler has no active record of this job");
    }
  }
  PersistAgent(rec);
  ScheduleLocked();
  return true;
}

void Core::StoreLogs(const v1::LogTail& tail) {
  v1::JobLogs logs;
  logs.set_job_id(tail.job_id());
  logs.set_stdout(tail.stdout());
  logs.set_stderr(tail.stderr());
  logs.set_stdout_truncated(tail.stdout_truncated());
  logs.set_stderr_truncated(tail.stderr_truncated());
  *logs.mutable_updated_at() = ToProto(clock_->Now());
  absl::Status st = store_->PutLogs(logs);
  if (!st.ok())
    spdlog::error("store: cannot persist logs of job {}: {}", tail.job_id(), st.message());
}

void Core::ApplyUpdate(AgentRec& rec, const v1::JobUpdate& u) {
  auto it = jobs_.find(u.job_id());
  if (it == jobs_.end()) {
    spdlog::warn("agent {} reported unknown job {}; ignored", rec.info.id(), u.job_id());
    return;
  }
  if (!it->second.job || it->second.job->allocation().agent() != rec.info.id() ||
      it->second.job->attempt() != u.attempt() || IsTerminal(it->second.job->state())) {
    // Ended and stored, or an earlier attempt: a duplicate, or the late word
    // of an agent the scheduler had given up on.
    ConfirmEarlierAttempt(rec, u);
    return;
  }
  v1::Job& job = *it->second.job;
  if (u.has_logs()) StoreLogs(u.logs());
  if (auto s = rec.stopping.find(job.id());
      s != rec.stopping.end() && s->second == u.attempt() && IsTerminal(u.state())) {
    // Stopped at our request after the agent went silent: the attempt is
    // over for sure now, and may be restarted under the job's policy.
    rec.stopping.erase(s);
    if (u.state() != v1::Job::succeeded) {
      EndAttempt(job, job.cancel_requested() ? v1::Job::cancelled : v1::Job::lost,
                 absl::StrCat("agent ", rec.info.id(), " went silent past its TTL; attempt ",
                              u.attempt(), " confirmed stopped there (", u.message(), ")"),
                 u.exit_code(), u.signal());
      return;
    }
  }
  switch (u.state()) {
    case v1::Job::running:
      if (job.state() == v1::Job::placed) {
        Transition(job, v1::Job::running, u.message().empty() ? "started" : u.message());
      }
      return;
    case v1::Job::lost:
      // The agent knows the attempt ended but not how (its supervisor was
      // killed from outside, the machine rebooted): the job's restart
      // policy decides, as for a lost agent.
      EndAttempt(job, job.cancel_requested() ? v1::Job::cancelled : v1::Job::lost,
                 absl::StrCat("agent ", rec.info.id(), ": ", u.message()), u.exit_code(),
                 u.signal());
      return;
    case v1::Job::succeeded:
    case v1::Job::failed:
    case v1::Job::cancelled: {
      v1::Job::State final = u.state();
      if (job.cancel_requested() && final != v1::Job::succeeded) final = v1::Job::cancelled;
      EndAttempt(job, final, u.message(), u.exit_code(), u.signal());
      return;
    }
    default:
      spdlog::warn("agent {} sent job {} state {}; ignored", rec.info.id(), u.job_id(),
                   StateName(u.state()));
  }
}

void Core::ConfirmEarlierAttempt(AgentRec& rec, const v1::JobUpdate& u) {
  if (!IsTerminal(u.state())) return;
  auto it = jobs_.find(u.job_id());
  if (it == jobs_.end()) return;
  v1::Job stored;
  v1::Job* job = it->second.job.get();
  if (job == nullptr) {
    // Ended and dropped from memory: read back under the lock, which a
    // store read normally avoids (ReadEnded); this happens once per attempt
    // whose agent came back from lost.
    auto read = store_->GetJob(u.job_id());
    if (!read.ok()) {
      spdlog::warn("job {}: cannot record agent {}'s word on attempt {}: {}", u.job_id(),
                   rec.info.id(), u.attempt(), read.status().message());
      return;
    }
    stored = std::move(*read);
    job = &stored;
  }
  for (v1::Attempt& a : *job->mutable_attempts()) {
    if (a.number() != u.attempt() || !a.fate_unknown() || a.allocation().agent() != rec.info.id())
      continue;
    a.set_fate_unknown(false);
    const std::string how =
        absl::StrCat("agent ", rec.info.id(), " came back and confirmed attempt ", u.attempt(),
                     " ended there: ", StateName(u.state()), " (", u.message(), ")");
    a.set_reason(absl::StrCat(a.reason(), "; ", how));
    v1::JobEvent* ev = job->add_events();
    *ev->mutable_time() = ToProto(clock_->Now());
    ev->set_state(job->state());
    ev->set_message(how);
    spdlog::info("job {}: {}", job->id(), how);
    (void)Persist(*job);
    return;
  }
}

void Core::OnMessage(const std::string& agent_id, const AgentLink* link, const v1::Envelope& env) {
  absl::MutexLock lock(&mu_);
  auto it = agents_.find(agent_id);
  if (it == agents_.end() || it->second.link.get() != link) return;  // stale session
  AgentRec& rec = it->second;
  const absl::Time now = clock_->Now();
  rec.last_seen = now;
  v1::Envelope ack;
  ack.mutable_ack()->set_seq(env.seq());
  switch (env.body_case()) {
    case v1::Envelope::kHeartbeat: {
      const v1::Heartbeat& hb = env.heartbeat();
      *rec.info.mutable_last_heartbeat_at() = ToProto(now);
      // Agent-reported: NaN, infinities and absurd values are not RTTs.
      const double rtt = hb.measured_rtt_ms();
      rec.info.set_measured_rtt_ms(std::isfinite(rtt) && rtt >= 0 && rtt < 3.6e6 ? rtt : 0);
      rec.info.set_memory_available_mb(hb.usage().memory_available_mb());
      const std::string problem = hb.has_topology() ? TopologyProblem(hb.topology()) : "";
      if (!problem.empty()) {
        spdlog::warn(
            "agent {} reports a changed topology that is not usable ({}); keeping the one "
            "it registered with",
            agent_id, problem);
      } else if (hb.has_topology()) {
        spdlog::warn("agent {} reports a changed topology: {} PUs, {} MiB, {} GPUs", agent_id,
                     hb.topology().pus(), hb.topology().memory_mb(), hb.topology().gpus_size());
        RebuildTopology(rec, hb.topology());
        PersistAgent(rec);
        schedule_pending_ = true;
      }
      for (const v1::LogTail& t : hb.logs()) {
        auto j = jobs_.find(t.job_id());
        if (j != jobs_.end() && j->second.job && j->second.job->allocation().agent() == agent_id)
          StoreLogs(t);
      }
      rec.link->Send(ack);
      break;
    }
    case v1::Envelope::kJobUpdate:
      ApplyUpdate(rec, env.job_update());
      rec.link->Send(ack);
      if (schedule_pending_) ScheduleLocked();
      break;
    case v1::Envelope::kAck:
      rec.outbox.erase(env.ack().seq());
      break;
    default:
      spdlog::warn("agent {} sent an unexpected {} message; ignored", agent_id,
                   env.GetDescriptor()->FindFieldByNumber(env.body_case())->name());
  }
}

void Core::OnDisconnect(const std::string& agent_id, const AgentLink* link) {
  absl::MutexLock lock(&mu_);
  auto it = agents_.find(agent_id);
  if (it == agents_.end() || it->second.link.get() != link) return;
  it->second.link.reset();
  it->second.info.set_connected(false);
  spdlog::warn("agent {} disconnected; it is lost unless it returns within {}", agent_id,
               absl::FormatDuration(options_.agent_ttl));
}

void Core::MarkLost(AgentRec& rec, const std::string& why) {
  v1::Agent& a = rec.info;
  spdlog::warn("agent {} lost: {}", a.id(), why);
  a.set_state(v1::Agent::lost);
  a.set_connected(false);
  if (rec.link) rec.link->Close(why);
  rec.link.reset();
  rec.outbox.clear();
  rec.stopping.clear();
  rec.confirm_by = absl::InfiniteFuture();
  std::vector<std::string> ids(a.jobs().begin(), a.jobs().end());
  for (const std::string& id : ids) {
    v1::Job& job = Live(id);
    const uint32_t attempt = job.attempt();
    // Unreachable is not stopped: the attempt may still run there. The job's
    // restart policy decides whether the next attempt starts anyway; the
    // agent, if it returns, is told to stop this one and says how it ended.
    for (v1::Attempt& at : *job.mutable_attempts()) {
      if (at.number() == attempt) at.set_fate_unknown(true);
    }
    EndAttempt(job, job.cancel_requested() ? v1::Job::cancelled : v1::Job::lost,
               absl::StrCat("agent ", a.id(), " lost: ", why, "; attempt ", attempt,
                            " may still be running there (its fate is unknown until the agent "
                            "returns)"),
               0, 0);
  }
  PersistAgent(rec);
}

void Core::Tick() {
  absl::MutexLock lock(&mu_);
  const absl::Time now = clock_->Now();
  for (auto& [id, rec] : agents_) {
    if (rec.info.state() == v1::Agent::lost) continue;
    if (now - rec.last_seen > options_.agent_ttl) {
      if (rec.link && rec.info.jobs_size() > 0 && rec.confirm_by == absl::InfiniteFuture()) {
        // Still connected, only silent: it may well run its attempts. Ask
        // it to stop them, and restart none before it confirms (or one more
        // TTL passes).
        rec.confirm_by = now + options_.agent_ttl;
        const std::string why =
            absl::StrCat("agent ", id, " silent for ", absl::FormatDuration(now - rec.last_seen),
                         " (ttl ", absl::FormatDuration(options_.agent_ttl), ")");
        spdlog::warn("{}: asking it to stop its {} attempt(s) before any is restarted elsewhere",
                     why, rec.info.jobs_size());
        std::vector<std::string> ids(rec.info.jobs().begin(), rec.info.jobs().end());
        for (const std::string& job_id : ids) {
          v1::Job& job = Live(job_id);
          rec.stopping[job_id] = job.attempt();
          SendCancel(rec, job_id, job.attempt(),
                     absl::StrCat(why, "; stopping attempt ", job.attempt(),
                                  " so that it is never run twice at once"));
          v1::JobEvent* ev = job.add_events();
          *ev->mutable_time() = ToProto(now);
          ev->set_state(job.state());
          ev->set_message(absl::StrCat(why, "; asked it to stop attempt ", job.attempt(),
                                       " and waiting up to ",
                                       absl::FormatDuration(options_.agent_ttl),
                                       " for it to confirm before anything is restarted"));
          (void)Persist(job);
        }
        continue;
      }
      if (rec.confirm_by != absl::InfiniteFuture() && now < rec.confirm_by) continue;
      MarkLost(rec, absl::StrCat("no heartbeat for ", absl::FormatDuration(now - rec.last_seen),
                                 " (ttl ", absl::FormatDuration(options_.agent_ttl), ")",
                                 rec.confirm_by != absl::InfiniteFuture()
                                     ? ", and it did not confirm its attempts stopped"
                                     : ""));
      continue;
    }
    if (!rec.link) continue;
    for (auto& [seq, p] : rec.outbox) {
      if (now - p.last_sent >= options_.resend_interval) {
        p.last_sent = now;
        rec.link->Send(p.envelope);
      }
    }
  }
  // Event-driven: a pass runs when something changed (submit, job end, agent
  // join, cordon, policy or tenant change) or a restart backoff expired.
  if (schedule_pending_ || now >= next_wakeup_) ScheduleLocked();
  // A new UTC day can expire an instrument or bring a list into force:
  // waiting jobs are decided again and running ones checked.
  if (absl::ToCivilDay(now, absl::UTCTimeZone()) != compliance_day_) {
    schedule_pending_ = true;
    CheckComplianceLocked("new day");
  }
  // Violations of jobs that ended are dropped.
  for (auto it = violations_.begin(); it != violations_.end();) {
    auto j = jobs_.find(it->first);
    const bool active = j != jobs_.end() && (j->second.state() == v1::Job::placed ||
                                             j->second.state() == v1::Job::running);
    it = active ? std::next(it) : violations_.erase(it);
  }
  DropEnded();
}

}  // namespace portolan::scheduler
