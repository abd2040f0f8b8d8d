// SPDX-License-Identifier: Apache-2.0
#include "portolan/simulate/simulate.h"

#include <pthread.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <thread>
#include <tuple>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace portolan::simulate {

void AgentSet::Add(v1::Agent agent, v1::Resources free,
                   std::unique_ptr<topology::AgentTopology> topo) {
  const v1::Agent& a = agents_.emplace_back(std::move(agent));
  by_site_[a.site()].emplace_back(&a, std::move(free), topo.get());
  if (topo) topos_.push_back(std::move(topo));
}

std::shared_ptr<const JobSpec> Spec(const v1::Job& j) {
  auto spec = std::make_shared<JobSpec>();
  v1::Job& k = spec->job;
  k.set_id(j.id());
  k.set_tenant(j.tenant());
  k.set_kind(j.kind());
  k.set_priority(j.priority());
  *k.mutable_submitted_at() = j.submitted_at();
  *k.mutable_resources() = j.resources();
  *k.mutable_topology() = j.topology();
  *k.mutable_datasets() = j.datasets();
  *k.mutable_placement() = j.placement();
  spec->decision_class = placement::DecisionClass(k);
  return spec;
}

namespace {

using Kind = v1::SimulatedChange::Kind;

// A cross-border transfer: origin jurisdiction, destination jurisdiction, rule.
using Flow = std::tuple<std::string, std::string, std::string>;

// What the comparison needs of one site's verdict in one decision.
struct SiteOutcome {
  bool allowed = false;
  std::string why_not;  // the site-level reasons, when not allowed
  double rtt_ms = -1;
  double price = 0;  // per hour, for this job's cpus
  std::vector<Flow> flows;
  std::vector<std::string> requires_any;
};

// One decision, reduced to what the comparison reads (a decision class can
// be one of 100,000s; whole decisions would be kilobytes each).
struct Outcome {
  enum State { kPlaced, kWaiting, kUnschedulable } state = kWaiting;
  std::string site, agent, reason;
  std::map<std::string, SiteOutcome> sites;
  const SiteOutcome* At(const std::string& site) const {
    auto it = sites.find(site);
    return it == sites.end() ? nullptr : &it->second;
  }
};

Outcome Reduce(const v1::Decision& d, const policy::CompiledPolicy& p, const v1::Job& job) {
  Outcome o;
  o.state = d.feasible()        ? Outcome::kPlaced
            : d.unschedulable() ? Outcome::kUnschedulable
                                : Outcome::kWaiting;
  if (d.feasible()) {
    o.site = d.placement().site();
    o.agent = d.placement().agent();
  }
  o.reason = d.reason();
  for (const v1::SiteDecision& s : d.sites()) {
    SiteOutcome& so = o.sites[s.site()];
    so.allowed = s.allowed();
    if (!so.allowed) so.why_not = absl::StrJoin(s.rejected(), "; ");
    so.rtt_ms = s.rtt_ms();
    if (const v1::Site* site = p.FindSite(s.site()))
      so.price = site->price_per_core_hour() * job.resources().cpus();
    for (const v1::Compliance& c : s.residency().datasets()) {
      if (c.export_() && !c.refused()) so.flows.emplace_back(c.origin(), s.regime(), c.rule());
    }
    std::sort(so.flows.begin(), so.flows.end());
    so.flows.erase(std::unique(so.flows.begin(), so.flows.end()), so.flows.end());
    so.requires_any.assign(s.residency().requires_any().begin(),
                           s.residency().requires_any().end());
  }
  return o;
}

// The tenant a side decides with: its profile, or an empty one with the id
// (as the scheduler treats a tenant without a profile).
v1::Tenant TenantOf(const Side& side, const std::string& id) {
  auto it = side.tenants->find(id);
  if (it != side.tenants->end()) return it->second;
  v1::Tenant t;
  t.set_id(id);
  return t;
}

v1::Decision DecideOn(const Input& in, const Side& side, const Job& j) {
  const v1::Tenant tenant = TenantOf(side, j.spec->job.tenant());
  placement::DecisionInput d;
  d.job = &j.spec->job;
  d.tenant = &tenant;
  d.policy = side.policy;
  d.ledger = in.ledger;
  d.today = in.today;
  d.agents_by_site = j.on_empty ? &in.empty.by_site() : &in.current.by_site();
  return side.engine->Decide(d);
}

// Where a job is or would be under one side, with the figures summed.
struct Position {
  bool placed = false;
  std::string site, agent;
  const SiteOutcome* at = nullptr;  // that site's verdict, when known
};

Position Where(const Outcome& o) {
  Position p;
  if (o.state != Outcome::kPlaced) return p;
  p.placed = true;
  p.site = o.site;
  p.agent = o.agent;
  p.at = o.At(o.site);
  return p;
}

void SetPlacement(const Position& p, v1::SimulatedPlacement* out) {
  out->set_site(p.site);
  out->set_agent(p.agent);
}

int KindOrder(Kind k) {
  switch (k) {
    case v1::SimulatedChange::violation:
      return 0;
    case v1::SimulatedChange::newly_unschedulable:
      return 1;
    case v1::SimulatedChange::moved:
      return 2;
    case v1::SimulatedChange::newly_waiting:
      return 3;
    default:
      return 4;
  }
}

double Median(std::vector<double>& v) {
  if (v.empty()) return 0;
  const size_t mid = v.size() / 2;
  std::nth_element(v.begin(), v.begin() + mid, v.end());
  double m = v[mid];
  if (v.size() % 2 == 0) m = (m + *std::max_element(v.begin(), v.begin() + mid)) / 2;
  return m;
}

// The comparison of one job's two outcomes, and the sums over all jobs.
class Tally {
 public:
  // A job holding an allocation (placed, running): it stays where it is
  // unless the candidate refuses that site.
  void Holding(const Job& job, const Outcome& b, const Outcome& k) {
    Position from{true, job.site, job.agent, b.At(job.site)};
    const SiteOutcome* here = k.At(from.site);
    const bool base_ok = from.at != nullptr && from.at->allowed;
    const bool cand_ok = here != nullptr && here->allowed;
    Position to = from;
    to.at = here;
    if (base_ok && !cand_ok) {
      to = Where(k);
      v1::SimulatedChange& c = Add(job, v1::SimulatedChange::violation);
      SetPlacement(from, c.mutable_from());
      if (to.placed) SetPlacement(to, c.mutable_to());
      c.set_reason(here == nullptr
                       ? absl::StrCat("site ", from.site, " is not in the candidate")
                       : absl::StrCat("not allowed at ", from.site, ": ", here->why_not));
      NeedInstruments(job, here);
    }
    Figures(from, to);
  }

  // A waiting job, or one of the history: where each side would put it.
  void Deciding(const Job& job, const Outcome& b, const Outcome& k) {
    const Position from = Where(b), to = Where(k);
    Figures(from, to);
    Kind kind = v1::SimulatedChange::kind_unspecified;
    std::string reason;
    if (from.placed && to.placed) {
      if (from.site == to.site && from.agent == to.agent) return;
      kind = v1::SimulatedChange::moved;
      const SiteOutcome* old_site = k.At(from.site);
      if (old_site == nullptr) {
        reason = absl::StrCat("site ", from.site, " is not in the candidate");
      } else if (!old_site->allowed) {
        reason = absl::StrCat("not allowed at ", from.site, ": ", old_site->why_not);
        NeedInstruments(job, old_site);
      } else {
        reason = absl::StrCat(to.site == from.site ? "agent " : "site ",
                              to.site == from.site ? to.agent : to.site,
                              " scores higher under the candidate");
      }
    } else if (from.placed) {
      const bool never = k.state == Outcome::kUnschedulable;
      kind = never ? v1::SimulatedChange::newly_unschedulable : v1::SimulatedChange::newly_waiting;
      reason = k.reason;
      if (const SiteOutcome* old_site = k.At(from.site); old_site && !old_site->allowed)
        NeedInstruments(job, old_site);
    } else if (to.placed || (b.state == Outcome::kUnschedulable && k.state == Outcome::kWaiting)) {
      kind = v1::SimulatedChange::newly_schedulable;
      reason = to.placed ? absl::StrCat("placed at ", to.site, " on agent ", to.agent)
                         : absl::StrCat("would wait for capacity: ", k.reason);
    } else if (b.state == Outcome::kWaiting && k.state == Outcome::kUnschedulable) {
      kind = v1::SimulatedChange::newly_unschedulable;
      reason = k.reason;
    } else {
      return;  // waiting or unschedulable under both
    }
    v1::SimulatedChange& c = Add(job, kind);
    if (from.placed) SetPlacement(from, c.mutable_from());
    if (to.placed) SetPlacement(to, c.mutable_to());
    c.set_reason(reason);
  }

  void Finish(uint32_t max_changes, v1::SimulateResponse* out) {
    std::sort(changes_.begin(), changes_.end(),
              [](const v1::SimulatedChange& a, const v1::SimulatedChange& b) {
                return std::make_tuple(KindOrder(a.kind()), a.job()) <
                       std::make_tuple(KindOrder(b.kind()), b.job());
              });
    v1::SimulateSummary* s = out->mutable_summary();
    for (const v1::SimulatedChange& c : changes_) {
      switch (c.kind()) {
        case v1::SimulatedChange::moved:
          s->set_moved(s->moved() + 1);
          break;
        case v1::SimulatedChange::newly_unschedulable:
          s->set_newly_unschedulable(s->newly_unschedulable() + 1);
          break;
        case v1::SimulatedChange::newly_schedulable:
          s->set_newly_schedulable(s->newly_schedulable() + 1);
          break;
        case v1::SimulatedChange::newly_waiting:
          s->set_newly_waiting(s->newly_waiting() + 1);
          break;
        case v1::SimulatedChange::violation:
          s->set_violations(s->violations() + 1);
          break;
        default:
          break;
      }
    }
    out->set_changes_truncated(changes_.size() > max_changes);
    if (changes_.size() > max_changes) changes_.resize(max_changes);
    for (v1::SimulatedChange& c : changes_) *out->add_changes() = std::move(c);
    FlowsOut(added_, s->mutable_cross_border()->mutable_added());
    FlowsOut(removed_, s->mutable_cross_border()->mutable_removed());
    for (const auto& [key, n] : needs_) {
      v1::InstrumentNeed* need = s->add_instruments_newly_required();
      need->set_tenant(key.first);
      need->set_type(key.second);
      need->set_jobs(n);
    }
    s->set_rtt_ms_p50_delta(Median(rtt_cand_) - Median(rtt_base_));
    s->set_cost_delta(cost_cand_ - cost_base_);
  }

 private:
  v1::SimulatedChange& Add(const Job& job, Kind kind) {
    v1::SimulatedChange& c = changes_.emplace_back();
    c.set_job(job.Id());
    c.set_tenant(job.spec->job.tenant());
    c.set_kind(kind);
    c.set_state(job.state);
    return c;
  }

  // The candidate refuses `site` for the job: the instruments that would let
  // the tenant keep it there.
  void NeedInstruments(const Job& job, const SiteOutcome* site) {
    if (site == nullptr) return;
    for (const std::string& type : site->requires_any) ++needs_[{job.spec->job.tenant(), type}];
  }

  // RTT, cost and cross-border transfers of the job's position on each side.
  void Figures(const Position& from, const Position& to) {
    static const std::vector<Flow> kNone;
    const std::vector<Flow>& fb = from.at != nullptr ? from.at->flows : kNone;
    const std::vector<Flow>& fk = to.at != nullptr ? to.at->flows : kNone;
    for (const Flow& f : fk) {
      if (!std::binary_search(fb.begin(), fb.end(), f)) ++added_[f];
    }
    for (const Flow& f : fb) {
      if (!std::binary_search(fk.begin(), fk.end(), f)) ++removed_[f];
    }
    if (from.at != nullptr) {
      if (from.at->rtt_ms >= 0) rtt_base_.push_back(from.at->rtt_ms);
      cost_base_ += from.at->price;
    }
    if (to.at != nullptr) {
      if (to.at->rtt_ms >= 0) rtt_cand_.push_back(to.at->rtt_ms);
      cost_cand_ += to.at->price;
    }
  }

  static void FlowsOut(const std::map<Flow, uint32_t>& flows,
                       google::protobuf::RepeatedPtrField<v1::CrossBorderFlow>* out) {
    std::vector<std::pair<Flow, uint32_t>> v(flows.begin(), flows.end());
    std::stable_sort(v.begin(), v.end(), [](const auto& a, const auto& b) {
      return a.second > b.second;  // most jobs first
    });
    for (const auto& [f, n] : v) {
      v1::CrossBorderFlow* x = out->Add();
      x->set_from(std::get<0>(f));
      x->set_to(std::get<1>(f));
      x->set_rule(std::get<2>(f));
      x->set_jobs(n);
    }
  }

  std::vector<v1::SimulatedChange> changes_;
  std::map<Flow, uint32_t> added_, removed_;
  std::map<std::pair<std::string, std::string>, uint32_t> needs_;
  std::vector<double> rtt_base_, rtt_cand_;
  double cost_base_ = 0, cost_cand_ = 0;
};

bool Holds(const Job& job) {
  return job.state == v1::Job::placed || job.state == v1::Job::staging ||
         job.state == v1::Job::running;
}

// Lowers the calling thread's priority as `options` say; threads it starts
// afterwards inherit it (the policy and the nice value are per thread on Linux).
void LowerPriority(const Options& options) {
  if (options.idle) {
    // SCHED_IDLE: this thread runs only when no other thread wants the CPU.
    sched_param sp{};
    pthread_setschedparam(pthread_self(), SCHED_IDLE, &sp);
  } else if (options.nice > 0) {
    const pid_t tid = static_cast<pid_t>(syscall(SYS_gettid));
    errno = 0;
    const int now = getpriority(PRIO_PROCESS, tid);
    if (errno == 0) setpriority(PRIO_PROCESS, tid, std::min(19, now + options.nice));
  }
}

absl::StatusOr<v1::SimulateResponse> RunHere(const Input& in, const Options& options) {
  // Jobs by decision class (the class key also says which agents it is
  // decided on).
  std::vector<size_t> class_of(in.jobs.size());
  std::vector<size_t> first_job;  // per class, a job of it
  {
    absl::flat_hash_map<std::string, size_t> classes;
    for (size_t i = 0; i < in.jobs.size(); ++i) {
      std::string key = in.jobs[i].spec->decision_class;
      key.push_back(in.jobs[i].on_empty ? '\1' : '\0');
      auto [it, added] = classes.try_emplace(std::move(key), first_job.size());
      if (added) first_job.push_back(i);
      class_of[i] = it->second;
    }
  }
  const size_t n = first_job.size();
  std::vector<Outcome> base(n), cand(n);
  const bool keep = static_cast<bool>(options.on_decisions);
  std::vector<v1::Decision> base_d(keep ? n : 0), cand_d(keep ? n : 0);

  std::atomic<size_t> next{0};
  std::atomic<bool> late{false};
  auto work = [&] {
    for (size_t c; !late.load(std::memory_order_relaxed) && (c = next.fetch_add(1)) < n;) {
      if (absl::Now() > options.deadline) {
        late = true;
        return;
      }
      const Job& j = in.jobs[first_job[c]];
      v1::Decision b = DecideOn(in, in.base, j);
      v1::Decision k = DecideOn(in, in.candidate, j);
      base[c] = Reduce(b, *in.base.policy, j.spec->job);
      cand[c] = Reduce(k, *in.candidate.policy, j.spec->job);
      if (keep) {
        base_d[c] = std::move(b);
        cand_d[c] = std::move(k);
      }
    }
  };
  const int threads = std::max(1, std::min<int>(options.threads, static_cast<int>(n)));
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) pool.emplace_back(work);
  for (std::thread& t : pool) t.join();
  if (late) {
    return absl::DeadlineExceededError(absl::StrCat("the simulation ran past its deadline after ",
                                                    std::min<size_t>(next.load(), n), " of ", n,
                                                    " decision classes"));
  }

  Tally tally;
  for (size_t i = 0; i < in.jobs.size(); ++i) {
    const Job& job = in.jobs[i];
    const size_t c = class_of[i];
    if (Holds(job)) {
      tally.Holding(job, base[c], cand[c]);
    } else {
      tally.Deciding(job, base[c], cand[c]);
    }
    if (keep) options.on_decisions(job, base_d[c], cand_d[c]);
  }
  v1::SimulateResponse out;
  out.set_jobs_examined(static_cast<uint32_t>(in.jobs.size()));
  out.set_decision_classes(static_cast<uint32_t>(n));
  tally.Finish(options.max_changes, &out);
  out.mutable_summary()->set_currency(in.candidate.policy->policy().currency());
  return out;
}

}  // namespace

absl::StatusOr<v1::SimulateResponse> Run(Input& in, const Options& options) {
  // All of it (grouping, deciding, comparing) at the lowered priority: the
  // caller's thread serves requests.
  absl::StatusOr<v1::SimulateResponse> out;
  std::thread lowered([&] {
    LowerPriority(options);
    if (options.load) {
      if (absl::Status st = options.load(in.jobs); !st.ok()) {
        out = st;
        return;
      }
    }
    out = RunHere(in, options);
  });
  lowered.join();
  return out;
}

}  // namespace portolan::simulate
