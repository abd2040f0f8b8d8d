// SPDX-License-Identifier: Apache-2.0
// Policy what-if: the snapshot the simulation decides on, taken from the
// core in short holds of its lock, and the request's candidate built beside
// the policy in force. The deciding is simulate::Run (policy/simulate/).
#include <limits>
#include <thread>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/civil_time.h"
#include "portolan/base/log.h"
#include "portolan/base/strings.h"
#include "portolan/codec/codec.h"
#include "portolan/scheduler/core.h"

namespace portolan::scheduler {

namespace {

// Agents or jobs copied per hold of the lock: 25,000 active jobs took 60-79
// ms in all (tests/bench/simulate_bench.sh), so about 3 ms a hold.
constexpr int kChunk = 1000;
constexpr uint32_t kDefaultMaxChanges = 1000;

absl::Status TooMany(size_t max_jobs) {
  return codec::InvalidField(
      "max_jobs",
      absl::StrCat("the simulation would examine more than ", max_jobs,
                   " jobs (max_jobs); narrow since/until, leave out history or active, or raise "
                   "max_jobs up to the scheduler's --simulate-max-jobs"));
}

// `status` with its field (if any) under `prefix`.
absl::Status Under(const std::string& prefix, const absl::Status& status) {
  const std::string field = codec::StatusField(status);
  return codec::FieldError(status.code(), field.empty() ? prefix : absl::StrCat(prefix, ".", field),
                           status.message());
}

// The request's options, checked against the scheduler's limits.
struct Scope {
  bool active = false, history = false, ignore_capacity = false;
  int64_t since_ns = std::numeric_limits<int64_t>::min();
  int64_t until_ns = std::numeric_limits<int64_t>::max();
  size_t max_jobs = 0;
  absl::Duration deadline;
  uint32_t max_changes = kDefaultMaxChanges;
};

absl::StatusOr<Scope> CheckRequest(const v1::SimulateRequest& r, const SimulateLimits& limits) {
  Scope plan;
  for (int i = 0; i < r.include_size(); ++i) {
    switch (r.include(i)) {
      case v1::SimulateRequest::active:
        plan.active = true;
        break;
      case v1::SimulateRequest::history:
        plan.history = true;
        break;
      default:
        return codec::InvalidField(absl::StrCat("include[", i, "]"),
                                   "must be \"active\" or \"history\"");
    }
  }
  if (r.include_size() == 0) plan.active = true;
  if (r.has_since()) plan.since_ns = absl::ToUnixNanos(base::FromProto(r.since()));
  if (r.has_until()) plan.until_ns = absl::ToUnixNanos(base::FromProto(r.until()));
  if ((r.has_since() || r.has_until()) && !plan.history)
    return codec::InvalidField(r.has_since() ? "since" : "until",
                               "since and until select ended jobs: add \"history\" to include");
  if (plan.since_ns >= plan.until_ns)
    return codec::InvalidField("until", "until must be after since");
  plan.ignore_capacity = r.capacity() == v1::SimulateRequest::ignore;
  if (plan.ignore_capacity && !plan.history)
    return codec::InvalidField("capacity",
                               "capacity applies to history (active jobs are decided on the "
                               "agents as they are): add \"history\" to include");
  plan.max_jobs = limits.max_jobs;
  if (r.max_jobs() > 0) {
    if (r.max_jobs() > limits.max_jobs)
      return codec::InvalidField(
          "max_jobs",
          absl::StrCat("at most ", limits.max_jobs, " (the scheduler's --simulate-max-jobs)"));
    plan.max_jobs = r.max_jobs();
  }
  plan.deadline = limits.deadline;
  if (r.deadline_ms() > 0) {
    if (absl::Milliseconds(r.deadline_ms()) > limits.deadline)
      return codec::InvalidField(
          "deadline_ms", absl::StrCat("at most ", absl::ToInt64Milliseconds(limits.deadline),
                                      " (the scheduler's --simulate-deadline-ms)"));
    plan.deadline = absl::Milliseconds(r.deadline_ms());
  }
  if (r.max_changes() > 0) plan.max_changes = r.max_changes();
  if (limits.holding_only) {
    plan.active = true;
    plan.history = false;
  }
  return plan;
}

}  // namespace

void Core::SnapshotAgents(simulate::AgentSet& current, simulate::AgentSet* empty) {
  // For `empty`: each agent as reported, its hardware rebuilt from the
  // reported topology outside the lock.
  std::vector<std::pair<v1::Agent, std::string>> reported;
  std::string after;
  for (bool first = true;; first = false) {
    absl::MutexLock lock(&mu_);
    auto it = first ? agents_.begin() : agents_.upper_bound(after);
    for (int k = 0; it != agents_.end() && k < kChunk; ++it, ++k) {
      const AgentRec& rec = it->second;
      current.Add(rec.info, AgentRegistry::Free(rec),
                  rec.topo ? std::make_unique<topology::AgentTopology>(*rec.topo) : nullptr);
      if (empty != nullptr) reported.emplace_back(rec.info, rec.topo ? rec.topology : "");
      after = it->first;
    }
    if (it == agents_.end()) break;
  }
  if (empty == nullptr) return;
  for (auto& [info, topology] : reported) {
    std::unique_ptr<topology::AgentTopology> topo;
    v1::Topology t;
    if (!topology.empty() && t.ParseFromString(topology))
      topo = std::make_unique<topology::AgentTopology>(t);
    info.clear_allocated();
    info.clear_jobs();
    v1::Resources free = info.capacity();
    empty->Add(std::move(info), std::move(free), std::move(topo));
  }
}

absl::Status Core::SnapshotActive(bool holding_only, size_t max_jobs,
                                  std::vector<simulate::Job>* out) {
  // The jobs on agents (placed, running), agent by agent; then the queue.
  // Neither visits ended jobs, and a queued job's state need not be read.
  std::string after_agent;
  for (bool first = true;; first = false) {
    absl::MutexLock lock(&mu_);
    auto it = first ? agents_.begin() : agents_.upper_bound(after_agent);
    for (int k = 0; it != agents_.end() && k < kChunk; ++it) {
      after_agent = it->first;
      for (const std::string& id : it->second.info.jobs()) {
        const JobTable::Rec* rec = jobs_.Find(id);
        if (rec == nullptr || !rec->job) continue;
        const v1::Job& j = *rec->job;
        // Once per job: only under the agent it is allocated to now.
        if (!HoldsResources(j.state()) || j.allocation().agent() != it->first) continue;
        if (out->size() >= max_jobs) return TooMany(max_jobs);
        simulate::Job& s = out->emplace_back();
        s.id = id;
        s.spec = rec->spec;
        s.state = j.state();
        s.site = j.allocation().site();
        s.agent = j.allocation().agent();
        ++k;
      }
    }
    if (it == agents_.end()) break;
  }
  if (holding_only) return absl::OkStatus();
  JobTable::QueueKey after;
  for (bool first = true;; first = false) {
    absl::MutexLock lock(&mu_);
    const auto& queue = jobs_.queue();
    auto it = first ? queue.begin() : queue.upper_bound(after);
    for (int k = 0; it != queue.end() && k < kChunk; ++it, ++k) {
      after = *it;
      const JobTable::Rec* rec = jobs_.Find(std::get<2>(*it));
      if (rec == nullptr || !rec->spec) continue;
      if (out->size() >= max_jobs) return TooMany(max_jobs);
      simulate::Job& s = out->emplace_back();
      s.id = std::get<2>(*it);
      s.spec = rec->spec;
      s.state = v1::Job::queued;
    }
    if (it == queue.end()) return absl::OkStatus();
  }
}

absl::Status Core::SnapshotHistoryIds(int64_t since_ns, int64_t until_ns, size_t max_jobs,
                                      std::vector<std::string>* ids) {
  JobTable::OrderKey after{since_ns, ""};
  for (bool first = true;; first = false) {
    absl::MutexLock lock(&mu_);
    const auto& order = jobs_.order();
    auto it = first ? order.lower_bound(after) : order.upper_bound(after);
    for (int k = 0; it != order.end() && k < kChunk; ++it, ++k) {
      if (it->first >= until_ns) return absl::OkStatus();
      after = *it;
      const JobTable::Rec* rec = jobs_.Find(it->second);
      if (rec == nullptr || !IsTerminal(rec->state())) continue;
      if (ids->size() >= max_jobs) return TooMany(max_jobs);
      ids->push_back(it->second);
    }
    if (it == order.end()) return absl::OkStatus();
  }
}

absl::StatusOr<v1::SimulateResponse> Core::Simulate(const v1::SimulateRequest& request,
                                                    const SimulateLimits& limits) {
  const absl::Time started = absl::Now();
  auto plan = CheckRequest(request, limits);
  if (!plan.ok()) return plan.status();
  const absl::Time deadline = started + plan->deadline;
  if (simulating_.exchange(true)) {
    return absl::ResourceExhaustedError(
        "another policy simulation is running; try again when it has answered");
  }
  absl::Cleanup done = [this] { simulating_ = false; };

  // The side in force, as one consistent copy.
  std::shared_ptr<const PolicyState> base;
  std::map<std::string, v1::Tenant> base_tenants;
  absl::Time now;
  {
    absl::MutexLock lock(&mu_);
    if (policy_ == nullptr) return absl::UnavailableError("no placement policy loaded yet");
    base = policy_;
    base_tenants = tenants_;
    now = clock_->Now();
  }
  const residency::Ledger ledger(ledger_);

  // The candidate: the request's policy (or the one in force) with its link
  // changes, and its tenant profiles over those in force.
  v1::Policy candidate = request.has_policy() ? request.policy() : base->compiled->policy();
  for (int i = 0; i < request.links_size(); ++i) {
    const v1::LinkChange& c = request.links(i);
    v1::LinkUpdate u;
    if (c.has_up()) u.set_up(c.up());
    if (c.has_rtt_ms()) u.set_rtt_ms(c.rtt_ms());
    if (c.has_gbps()) u.set_gbps(c.gbps());
    std::vector<std::string> changes;
    if (absl::Status st = policy::UpdateLink(candidate, c.id(), u, &changes); !st.ok()) {
      return codec::InvalidField(codec::StatusField(st) == "id"
                                     ? absl::StrCat("links[", i, "].id")
                                     : absl::StrCat("links[", i, "].", codec::StatusField(st)),
                                 st.message());
    }
  }
  std::vector<std::string> errors;
  auto cand = Build(std::move(candidate), &errors);
  if (!cand.ok()) {
    if (errors.empty()) return Under("policy", cand.status());
    return codec::InvalidField(
        "policy", absl::StrCat("the candidate policy is not valid: ", absl::StrJoin(errors, "; ")));
  }
  std::map<std::string, v1::Tenant> cand_tenants = base_tenants;
  for (int i = 0; i < request.tenants_size(); ++i) {
    const v1::Tenant& t = request.tenants(i);
    const std::string f = absl::StrCat("tenants[", i, "]");
    if (!base::IsId(t.id()))
      return codec::InvalidField(f + ".id", "a tenant id ([A-Za-z0-9._-], 1-128 characters)");
    if (absl::Status st = ValidateTenantProfile(t, *(*cand)->compiled); !st.ok())
      return Under(f, st);
    cand_tenants[t.id()] = t;
  }

  simulate::Input in;
  in.ledger = &ledger;
  in.today = absl::ToCivilDay(now, absl::UTCTimeZone());
  in.base = {base->compiled.get(), base->engine.get(), &base_tenants};
  in.candidate = {(*cand)->compiled.get(), (*cand)->engine.get(), &cand_tenants};
  const absl::Time t_snapshot = absl::Now();
  SnapshotAgents(in.current, plan->history && plan->ignore_capacity ? &in.empty : nullptr);
  if (plan->active) {
    if (absl::Status st = SnapshotActive(limits.holding_only, plan->max_jobs, &in.jobs); !st.ok())
      return st;
  }
  const size_t active_jobs = in.jobs.size();
  std::vector<std::string> history;
  if (plan->history) {
    absl::Status st =
        SnapshotHistoryIds(plan->since_ns, plan->until_ns, plan->max_jobs - active_jobs, &history);
    if (!st.ok()) return st;
  }
  const absl::Time t_read = absl::Now();
  absl::Time t_decide = t_read;
  simulate::Options opts;
  opts.deadline = deadline;
  opts.max_changes = plan->max_changes;
  opts.threads = limits.threads > 0
                     ? limits.threads
                     : std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  opts.idle = limits.idle;
  opts.nice = limits.nice;
  opts.on_decisions = limits.on_decisions;
  // The history is read and decoded on the simulation's own, lowered thread.
  opts.load = [&](std::vector<simulate::Job>& jobs) {
    jobs.reserve(jobs.size() + history.size());
    absl::Status st = store_->ReadJobs(history, [&](v1::Job j) {
      simulate::Job& s = jobs.emplace_back();
      s.spec = simulate::Spec(j);
      s.state = j.state();
      s.on_empty = plan->ignore_capacity;
    });
    t_decide = absl::Now();
    if (st.ok()) return st;
    return absl::UnavailableError(
        absl::StrCat("cannot read the history from the state store: ", st.message()));
  };
  auto out = simulate::Run(in, opts);
  if (absl::IsDeadlineExceeded(out.status())) {
    return codec::InvalidField("deadline_ms",
                               absl::StrCat(out.status().message(), " (deadline_ms ",
                                            absl::ToInt64Milliseconds(plan->deadline),
                                            "); narrow since/until, or raise deadline_ms up to the "
                                            "scheduler's --simulate-deadline-ms"));
  }
  if (!out.ok()) return out.status();
  out->set_active_jobs(static_cast<uint32_t>(active_jobs));
  out->set_history_jobs(static_cast<uint32_t>(in.jobs.size() - active_jobs));
  out->set_policy_version(base->meta.version());
  *out->mutable_snapshot_at() = base::ToProto(now);
  for (const std::string& w : (*cand)->compiled->warnings()) out->add_warnings(w);
  out->set_elapsed_ms(absl::ToDoubleMilliseconds(absl::Now() - started));
  spdlog::info(
      "policy simulation: {} jobs ({} classes) in {:.0f} ms (candidate {:.0f}, snapshot {:.0f}, "
      "history read {:.0f}, deciding {:.0f}): {} moved, {} violations",
      out->jobs_examined(), out->decision_classes(), out->elapsed_ms(),
      absl::ToDoubleMilliseconds(t_snapshot - started),
      absl::ToDoubleMilliseconds(t_read - t_snapshot),
      absl::ToDoubleMilliseconds(t_decide - t_read),
      absl::ToDoubleMilliseconds(absl::Now() - t_decide), out->summary().moved(),
      out->summary().violations());
  return out;
}

}  // namespace portolan::scheduler
