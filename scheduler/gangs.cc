// SPDX-License-Identifier: Apache-2.0
// Gangs in the core: all members placed at once or none, kept at one site or
// within an RTT bound, and restarted whole. A gang is an array (arrays.h)
// whose members are all made at submit; this file places and stops them.
// Part of Core (portolan/scheduler/core.h), under its lock.
#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "portolan/base/log.h"
#include "portolan/base/strings.h"
#include "portolan/scheduler/core.h"

namespace portolan::scheduler {
namespace {

using SiteViews = std::map<std::string, std::vector<placement::AgentView>>;

// The host part of an agent's peer address ("10.0.0.5:41234", "[::1]:5").
std::string Host(const std::string& address) {
  const size_t colon = address.rfind(':');
  std::string host = colon == std::string::npos ? address : address.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  return host;
}

std::string GangName(const v1::GangSpec& g) {
  std::string s = absl::StrCat("gang of ", g.tasks());
  if (g.colocate() == v1::GangSpec::site) absl::StrAppend(&s, " (colocate: site)");
  if (g.max_rtt_ms() > 0) absl::StrAppend(&s, " (max_rtt_ms ", g.max_rtt_ms(), ")");
  return s;
}

// The tenant's quota for every member of `member`'s gang at once; the
// reason, when over, names the gang.
QuotaVerdict GangQuota(const v1::Tenant& tenant, const TenantHolding& holding,
                       const v1::Job& member) {
  v1::Resources all;
  for (uint32_t i = 0; i < member.gang().tasks(); ++i) AddResources(&all, member.resources(), 1);
  QuotaVerdict v = CheckQuota(tenant, holding, all);
  if (!v.ok) absl::StrAppend(&v.reason, " (for the ", GangName(member.gang()), ")");
  return v;
}

}  // namespace

void Core::PlaceGang(const std::string& gang, placement::DecisionInput in,
                     const PolicyState& policy,
                     std::map<std::string, placement::AgentView*>& by_agent,
                     placement::JobQueue& order) {
  ArrayTable::Array* a = arrays_.Find(gang);
  v1::Job* parent = jobs_.Held(gang);
  if (a == nullptr || parent == nullptr || a->cancelled) return;
  std::vector<v1::Job*> members;
  std::vector<std::string> busy;  // members still stopping from a failed run
  const absl::Time now = clock_->Now();
  for (uint32_t i = 0; i < a->count; ++i) {
    v1::Job* m = jobs_.Held(TaskId(gang, i));
    if (m == nullptr || IsTerminal(m->state())) return;  // the gang is ending
    if (m->state() != v1::Job::queued) busy.push_back(m->id());
    if (m->has_not_before() && base::FromProto(m->not_before()) > now) {  // restart backoff
      next_wakeup_ = std::min(next_wakeup_, base::FromProto(m->not_before()));
      return;
    }
    members.push_back(m);
  }
  auto wait = [&](const std::string& reason) {
    for (v1::Job* m : members) m->set_reason(reason);
    parent->set_reason(reason);
  };
  if (!busy.empty()) {
    return wait(absl::StrCat("waiting for gang members to stop: ", absl::StrJoin(busy, ", ")));
  }
  // Dependencies, then quota for the whole gang at once.
  in.tenant = TenantFor(parent->tenant());
  QuotaVerdict quota;
  if (!Admit(*members[0], *in.tenant, &quota)) {
    if (!IsTerminal(members[0]->state())) return wait(members[0]->reason());
    // A dependency can no longer be met: the whole gang ends as it did.
    for (size_t i = 1; i < members.size(); ++i)
      Transition(*members[i], members[0]->state(), members[0]->reason());
    return;
  }
  quota = GangQuota(*in.tenant, usage_.Of(parent->tenant()), *members[0]);
  if (!quota.ok) return wait(quota.reason);
  in.quota_closed = quota.closed_sites.empty() ? nullptr : &quota.closed_sites;
  in.job = members[0];
  v1::Decision first = policy.engine->Decide(in);
  if (first.unschedulable()) {
    for (v1::Job* m : members) {
      PersistDecision(m->id(), first);
      Transition(*m, v1::Job::unschedulable, first.reason());
    }
    return;
  }
  auto fit = FitGang(in, policy, first, members);
  if (!fit.ok()) return wait(std::string(fit.status().message()));
  // Every member's host, by index, for PORTOLAN_GANG_MEMBERS.
  std::vector<std::string> hosts;
  for (const v1::Decision& d : *fit)
    hosts.push_back(Host(agents_.at(d.placement().agent()).info.address()));
  placing_gang_ = gang;
  for (size_t i = 0; i < members.size(); ++i) {
    v1::Job& m = *members[i];
    v1::Decision& d = (*fit)[i];
    d.set_policy_version(policy.meta.version());
    *d.mutable_decided_at() = base::ToProto(now);
    *m.mutable_gang_members() = {hosts.begin(), hosts.end()};
    in.job = &m;
    placement::ReserveContext reserved;
    reserved.ledger = &ledger_;
    reserved.now = now;
    // Reserve counts the exports; it was allowed a moment ago under this lock.
    if (absl::Status st = policy.engine->Reserve(in, d, reserved); !st.ok()) {
      spdlog::error("gang {}: member {} reserve failed: {}", gang, m.id(), st.message());
    }
    if (!CommitPlacement(m, d, policy)) {
      policy.engine->Unreserve(in, d, reserved);
      continue;
    }
    StoreReservation(m, reserved);
    by_agent.at(d.placement().agent())
        ->Refresh(AgentRegistry::Free(agents_.at(d.placement().agent())));
    order.Charge(m.tenant(), m.resources());
  }
  placing_gang_.clear();
  if (ArrayTable::Array* placed = arrays_.Find(gang)) UpdateArray(*placed);
  spdlog::info("gang {}: {} members placed together", gang, members.size());
}

absl::StatusOr<std::vector<v1::Decision>> Core::FitGang(placement::DecisionInput in,
                                                        const PolicyState& policy,
                                                        const v1::Decision& first,
                                                        const std::vector<v1::Job*>& members) {
  const v1::GangSpec& g = members[0]->gang();
  const size_t n = members.size();
  // The sites the decision allows, its own choice first.
  std::vector<std::string> anchors;
  if (first.feasible()) anchors.push_back(first.placement().site());
  for (const v1::SiteDecision& s : first.sites()) {
    if (s.allowed() && std::find(anchors.begin(), anchors.end(), s.site()) == anchors.end())
      anchors.push_back(s.site());
  }
  if (!first.feasible()) return absl::UnavailableError(first.reason());
  const bool one_site = g.colocate() == v1::GangSpec::site;
  const network::NetworkModel& net = policy.compiled->network();
  auto within = [&](const std::string& s, const std::vector<std::string>& chosen) {
    for (const std::string& c : chosen) {
      const int a = net.Index(s), b = net.Index(c);
      const double rtt = a < 0 || b < 0 ? network::NetworkModel::kUnreachable : net.Rtt(a, b);
      if (rtt < 0 || (g.max_rtt_ms() > 0 && rtt > g.max_rtt_ms())) return false;
    }
    return true;
  };
  const SiteViews& all = *in.agents_by_site;
  size_t best = 0;
  std::string best_site;
  for (const std::string& anchor : anchors) {
    SiteViews local;  // this attempt's view of free resources
    for (const std::string& s : anchors) {
      auto it = all.find(s);
      if (it != all.end() && (!one_site || s == anchor)) local.emplace(s, it->second);
    }
    std::vector<v1::Decision> out;
    std::vector<std::string> chosen;
    std::vector<std::pair<std::string, v1::Allocation>> held;  // member id, allocation
    SiteViews sub;  // the sites member i may use; rebuilt only when they change
    std::vector<std::string> sub_sites;
    for (size_t i = 0; i < n; ++i) {
      std::vector<std::string> sites;
      for (const auto& [s, views] : local) {
        if ((i == 0 || one_site) ? s == anchor : within(s, chosen)) sites.push_back(s);
      }
      if (i == 0 || sites != sub_sites) {
        sub.clear();
        for (const std::string& s : sites) sub.emplace(s, local.at(s));
        sub_sites = std::move(sites);
      }
      in.job = members[i];
      in.agents_by_site = &sub;
      v1::Decision d = policy.engine->Decide(in);
      if (!d.feasible()) break;
      AgentRec& rec = agents_.at(d.placement().agent());
      v1::Allocation alloc = AllocationOf(d);
      if (rec.topo && !rec.topo->Commit(alloc, members[i]->id()).ok()) break;
      held.emplace_back(members[i]->id(), alloc);
      for (SiteViews* views : {&local, &sub}) {
        auto site = views->find(d.placement().site());
        if (site == views->end()) continue;
        for (placement::AgentView& v : site->second) {
          if (v.agent->id() != d.placement().agent()) continue;
          AddResources(&v.free, members[i]->resources(), -1);
          v.RefreshTopology();  // the member's tentative commit above
        }
      }
      if (std::find(chosen.begin(), chosen.end(), d.placement().site()) == chosen.end())
        chosen.push_back(d.placement().site());  // distinct sites, for the RTT bound
      out.push_back(std::move(d));
    }
    for (const auto& [id, alloc] : held) {
      AgentRec& rec = agents_.at(alloc.agent());
      if (rec.topo) rec.topo->Release(alloc, id);
    }
    if (out.size() == n) return out;
    if (out.size() > best || best_site.empty()) {
      best = out.size();
      best_site = anchor;
    }
    // Without a site or RTT bound, the first anchor was as good as any.
    if (!one_site && g.max_rtt_ms() <= 0) break;
  }
  std::string why;
  if (one_site) {
    why = absl::StrCat("at most ", best, " of ", n, " members fit in one site (", best_site, ")");
  } else if (g.max_rtt_ms() > 0) {
    why = absl::StrCat("at most ", best, " of ", n, " members fit within ", g.max_rtt_ms(),
                       " ms RTT of each other (from ", best_site, ")");
  } else {
    why = absl::StrCat("only ", best, " of ", n, " members fit now");
  }
  return absl::UnavailableError(absl::StrCat("waiting: ", GangName(g), ": ", why));
}

void Core::PlanGang(placement::DecisionInput in, const v1::Job& spec, v1::Decision& d) {
  if (d.unschedulable()) return;
  const v1::GangSpec& g = spec.gang();
  auto wait = [&](const std::string& reason) {
    d.set_feasible(false);
    d.clear_placement();
    d.set_reason(reason);
  };
  const QuotaVerdict quota = GangQuota(*in.tenant, usage_.Of(spec.tenant()), spec);
  if (!quota.ok) return wait(quota.reason);
  in.quota_closed = quota.closed_sites.empty() ? nullptr : &quota.closed_sites;
  // Stand-ins for the members (ids only key the allocations FitGang holds
  // while it tries; scheduler ids never look like these).
  std::vector<v1::Job> copies(g.tasks(), spec);
  std::vector<v1::Job*> members;
  for (uint32_t i = 0; i < g.tasks(); ++i) {
    copies[i].set_id(absl::StrCat("plan[", i, "]"));
    members.push_back(&copies[i]);
  }
  auto fit = FitGang(in, *policy_, d, members);
  if (!fit.ok()) return wait(std::string(fit.status().message()));
  *d.mutable_placement() = (*fit)[0].placement();
  for (const v1::Decision& m : *fit) *d.add_gang_members() = m.placement();
}

bool Core::StopGang(const v1::Job& failed, v1::Job::State outcome, bool retry,
                    absl::Time not_before) {
  ArrayTable::Array* a = arrays_.Find(failed.array_job());
  if (a == nullptr) return false;
  std::vector<v1::Job*> others;
  for (uint32_t i = 0; i < a->count; ++i) {
    if (i == failed.array_index()) continue;
    v1::Job* m = jobs_.Held(TaskId(a->id, i));
    if (m == nullptr || IsTerminal(m->state())) retry = false;  // cannot restart whole
    if (m != nullptr && !IsTerminal(m->state()) && m->state() != v1::Job::queued)
      others.push_back(m);
  }
  const std::string why = absl::StrCat("gang member ", failed.id(), " ended ", StateName(outcome));
  for (v1::Job* m : others) {
    gang_stopping_[m->id()] = GangStop{failed.id(), retry, not_before};
    RequestStop(*m, absl::StrCat(why, "; stopping this member on agent ", m->allocation().agent()),
                why);
  }
  return retry;
}

}  // namespace portolan::scheduler
