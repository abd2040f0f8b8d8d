// SPDX-License-Identifier: Apache-2.0
// Workload management in the core: job dependencies and tenant quotas (the
// pass consults both before a decision, scheduling.cc). Part of Core
// (portolan/scheduler/core.h), under its lock.
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "portolan/codec/codec.h"
#include "portolan/scheduler/core.h"

namespace portolan::scheduler {

absl::Status Core::CheckDependencies(const v1::Job& job) {
  for (int i = 0; i < job.depends_on_size(); ++i) {
    const std::string& id = job.depends_on(i).job();
    const JobTable::Rec* rec = jobs_.Find(id);
    // Another tenant's job is answered like an unknown one: a tenant learns
    // nothing of others' ids by probing.
    if (rec == nullptr || rec->tenant != job.tenant()) {
      return codec::InvalidField(absl::StrCat("depends_on[", i, "].job"),
                                 absl::StrCat("no job '", id, "' of tenant ", job.tenant()));
    }
  }
  // A cycle cannot form: a dependency must name a job that exists, and a
  // new job's id is chosen by the scheduler after this check, so no earlier
  // job can depend on it.
  return absl::OkStatus();
}

bool Core::DependenciesMet(const v1::Job& job, std::string* why, bool* never) {
  std::vector<std::string> waiting;
  *never = false;
  for (const v1::Dependency& dep : job.depends_on()) {
    const JobTable::Rec* rec = jobs_.Find(dep.job());
    const v1::Job::State s = rec == nullptr ? v1::Job::state_unspecified : rec->state();
    if (rec == nullptr) {
      *why = absl::StrCat("dependency ", dep.job(), " is not known to the scheduler");
      *never = true;
      return false;
    }
    if (!IsTerminal(s)) {
      waiting.push_back(absl::StrCat(dep.job(), " (", StateName(s), ")"));
      continue;
    }
    if (dep.condition() == v1::Dependency::succeeded && s != v1::Job::succeeded) {
      *why = absl::StrCat("dependency ", dep.job(), " ended ", StateName(s),
                          "; this job needs it to succeed (depends_on condition succeeded)");
      *never = true;
      return false;
    }
  }
  if (waiting.empty()) return true;
  *why = absl::StrCat("waiting for ", absl::StrJoin(waiting, ", "));
  return false;
}

void Core::IndexDependencies(const v1::Job& job) {
  if (job.state() != v1::Job::queued) return;
  for (const v1::Dependency& dep : job.depends_on()) {
    const JobTable::Rec* rec = jobs_.Find(dep.job());
    if (rec != nullptr && !IsTerminal(rec->state())) dependents_[dep.job()].push_back(job.id());
  }
}

void Core::OnDependencyChanged(const v1::Job& job) {
  auto it = dependents_.find(job.id());
  if (it == dependents_.end()) return;
  if (IsTerminal(job.state())) {
    // Met, or never to be met: the pass decides (and ends) the dependents.
    dependents_.erase(it);
    RequestPass();
    return;
  }
  for (const std::string& id : it->second) {
    v1::Job* d = jobs_.Held(id);
    if (d == nullptr || d->state() != v1::Job::queued) continue;
    std::string why;
    bool never = false;
    if (!DependenciesMet(*d, &why, &never)) d->set_reason(why);
  }
}

v1::TenantUsage Core::Usage(const std::string& tenant) {
  absl::MutexLock lock(&mu_);
  v1::TenantUsage u;
  u.set_tenant(tenant);
  const TenantHolding& h = usage_.Of(tenant);
  *u.mutable_used() = h.total;
  for (const auto& [site, r] : h.sites) {
    if (r.cpus() != 0 || r.memory_mb() != 0 || r.gpus() != 0) (*u.mutable_sites())[site] = r;
  }
  u.set_jobs_holding(h.jobs);
  static const v1::Tenant kNoProfile;
  auto t = tenants_.find(tenant);
  const v1::Tenant& profile = t == tenants_.end() ? kNoProfile : t->second;
  if (profile.has_quota()) *u.mutable_quota() = profile.quota();
  u.set_weight(TenantWeight(profile));
  auto queued = jobs_.counts().find({v1::Job::queued, tenant});
  if (queued != jobs_.counts().end()) u.set_jobs_waiting(static_cast<uint32_t>(queued->second));
  // The reasons are per job: a walk over the queue (a few ms at 100,000).
  if (profile.has_quota() && u.jobs_waiting() > 0) {
    for (const JobTable::QueueKey& key : jobs_.queue()) {
      const v1::Job& j = jobs_.Live(std::get<2>(key));
      if (j.tenant() == tenant && IsQuotaReason(j.reason()))
        u.set_jobs_waiting_for_quota(u.jobs_waiting_for_quota() + 1);
    }
  }
  return u;
}

}  // namespace portolan::scheduler
