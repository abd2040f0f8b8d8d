// SPDX-License-Identifier: Apache-2.0
// Priority preemption: a job that waits for capacity may stop running jobs
// of lower priority on one agent of a site its decision allows; and the end
// of jobs stopped for a preemption or for their gang. Part of Core
// (portolan/scheduler/core.h), under its lock.
#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "portolan/base/log.h"
#include "portolan/base/strings.h"
#include "portolan/scheduler/core.h"
#include "portolan/topology/allocator.h"

namespace portolan::scheduler {
namespace {

bool Covers(const v1::Resources& free, const v1::Resources& want) {
  return free.cpus() >= want.cpus() && free.memory_mb() >= want.memory_mb() &&
         free.gpus() >= want.gpus();
}

// Whether `engine` places the job of `in` on `agent` when it is the only
// agent there is, with `free` and `topo` as they would be once the victims
// have stopped: every filter the policy configures has its say, not only the
// capacity counted above.
bool DecidedOnto(const placement::DecisionInput& in, const placement::Engine& engine,
                 const v1::Agent& agent, const v1::Resources& free,
                 const topology::AgentTopology* topo) {
  std::map<std::string, std::vector<placement::AgentView>> only;
  only[agent.site()].push_back(placement::AgentView{&agent, free, topo});
  placement::DecisionInput one = in;
  one.agents_by_site = &only;
  const v1::Decision d = engine.Decide(one);
  return d.feasible() && d.placement().agent() == agent.id();
}

}  // namespace

std::optional<Core::Preemption> Core::FindPreemption(const placement::DecisionInput& in,
                                                     const placement::Engine& engine,
                                                     const v1::Decision& d) {
  const v1::Job& job = *in.job;
  if (job.priority() <= 0 || d.feasible() || d.unschedulable()) return std::nullopt;
  std::set<std::string> sites;  // allowed by the decision: residency, latency, the job's choice
  for (const v1::SiteDecision& s : d.sites()) {
    if (s.allowed()) sites.insert(s.site());
  }
  const topology::Request request = topology::Request::FromJob(job);
  std::optional<Preemption> best;
  int best_top = 0;  // the highest victim priority of `best`
  for (auto& [id, rec] : agents_) {
    // Whether the agent may take the job at all (state, labels, isolation,
    // hardware) is the engine's to say, below, once victims are found.
    if (!sites.contains(rec.info.site()) || rec.link == nullptr) continue;
    // Running jobs it may stop: lower priority, not stopping already, not a
    // gang's member (never part of a gang) — lowest priority first, larger
    // first.
    std::vector<const v1::Job*> candidates;
    for (const std::string& jid : rec.info.jobs()) {
      const v1::Job* j = jobs_.Held(jid);
      if (j != nullptr && j->priority() < job.priority() && !j->cancel_requested() &&
          !j->has_gang() && HoldsResources(j->state())) {
        candidates.push_back(j);
      }
    }
    std::sort(candidates.begin(), candidates.end(), [](const v1::Job* a, const v1::Job* b) {
      if (a->priority() != b->priority()) return a->priority() < b->priority();
      if (a->resources().cpus() != b->resources().cpus())
        return a->resources().cpus() > b->resources().cpus();
      return a->id() < b->id();
    });
    // Take them in that order until the job fits; then give back those not
    // needed after all, highest priority first.
    v1::Resources free = AgentRegistry::Free(rec);
    std::optional<topology::AgentTopology> topo;
    if (rec.topo) topo.emplace(*rec.topo);
    auto fits = [&] {
      return Covers(free, job.resources()) && (!topo || topo->Plan(request).ok());
    };
    auto take = [&](const v1::Job* j, int sign) {
      free.set_cpus(free.cpus() + sign * j->resources().cpus());
      free.set_memory_mb(free.memory_mb() + sign * j->resources().memory_mb());
      free.set_gpus(free.gpus() + sign * j->resources().gpus());
      if (topo) {
        if (sign > 0) {
          topo->Release(j->allocation(), j->id());
        } else {
          (void)topo->Commit(j->allocation(), j->id());
        }
      }
    };
    std::vector<const v1::Job*> taken;
    for (const v1::Job* j : candidates) {
      if (fits()) break;
      take(j, +1);
      taken.push_back(j);
    }
    if (taken.empty() || !fits()) continue;
    for (size_t k = taken.size(); k-- > 0;) {
      take(taken[k], -1);
      if (fits()) {
        taken.erase(taken.begin() + static_cast<long>(k));
      } else {
        take(taken[k], +1);
      }
    }
    if (!DecidedOnto(in, engine, rec.info, free, topo ? &*topo : nullptr)) continue;
    const int top = taken.back()->priority();
    if (best && (taken.size() > best->victims.size() ||
                 (taken.size() == best->victims.size() && top >= best_top))) {
      continue;
    }
    best = Preemption{id, {}};
    best_top = top;
    for (const v1::Job* j : taken) best->victims.push_back(j->id());
  }
  return best;
}

void Core::MaybePreempt(v1::Job& job, const placement::DecisionInput& in,
                        const placement::Engine& engine, const v1::Decision& d) {
  if (auto it = preempting_.find(job.id()); it != preempting_.end()) {
    // Victims still stopping: wait for them rather than preempt again.
    std::vector<std::string> left;
    for (const std::string& v : it->second) {
      if (preempted_.contains(v)) left.push_back(v);
    }
    if (!left.empty()) {
      it->second = left;
      job.set_reason(
          absl::StrCat("waiting for preempted job(s) to stop: ", absl::StrJoin(left, ", ")));
      return;
    }
    preempting_.erase(it);
  }
  std::optional<Preemption> p = FindPreemption(in, engine, d);
  if (!p) return;
  const std::string why =
      absl::StrCat("preempted by job ", job.id(), " (priority ", job.priority(), ")");
  for (const std::string& v : p->victims) {
    v1::Job& victim = jobs_.Live(v);
    preempted_[v] = job.id();
    RequestStop(victim, absl::StrCat(why, "; stopping it on agent ", p->agent), why,
                options_.preempt_grace);
  }
  spdlog::info("job {} (priority {}) preempts {} on agent {}", job.id(), job.priority(),
               absl::StrJoin(p->victims, ", "), p->agent);
  Note(job, absl::StrCat("preempting ", absl::StrJoin(p->victims, ", "), " on agent ", p->agent));
  job.set_reason(
      absl::StrCat("waiting for preempted job(s) to stop: ", absl::StrJoin(p->victims, ", ")));
  preempting_[job.id()] = std::move(p->victims);
}

bool Core::EndStopped(v1::Job& job, v1::Job::State outcome, const std::string& reason) {
  if (auto p = preempted_.find(job.id()); p != preempted_.end()) {
    const std::string by = p->second;
    preempted_.erase(p);
    if (outcome == v1::Job::succeeded) {
      // It finished within its grace period: done, nothing to requeue.
      Transition(job, outcome, absl::StrCat(reason, " (while stopping for job ", by, ")"));
      return true;
    }
    // Preempted: not the job's failure, so back to the queue at once; it
    // lets its preemptor have the next pass first (ScheduleLocked).
    yielding_[job.id()] = by;
    job.set_cancel_requested(false);
    job.clear_allocation();
    Transition(job, v1::Job::queued,
               absl::StrCat("preempted by job ", by, " (attempt ", job.attempt(), " ",
                            StateName(outcome), ": ", reason, "); requeued"));
    return true;
  }
  auto g = gang_stopping_.find(job.id());
  if (g == gang_stopping_.end()) return false;
  // Stopped because another member of its gang failed.
  const GangStop stop = g->second;
  gang_stopping_.erase(g);
  const std::string why = absl::StrCat("stopped: gang member ", stop.because, " failed (attempt ",
                                       job.attempt(), " ", StateName(outcome), ": ", reason, ")");
  if (!stop.requeue) {
    Transition(job, v1::Job::failed, why);
    return true;
  }
  job.set_cancel_requested(false);
  job.clear_allocation();
  *job.mutable_not_before() = base::ToProto(stop.not_before);
  next_wakeup_ = std::min(next_wakeup_, stop.not_before);
  Transition(job, v1::Job::queued, absl::StrCat(why, "; the gang restarts"));
  return true;
}

}  // namespace portolan::scheduler
