// SPDX-License-Identifier: Apache-2.0
#include <algorithm>
#include <limits>

#include "absl/container/inlined_vector.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/types/span.h"
#include "policy/placement/plugins/plugins.h"
#include "policy/placement/reject_counts.h"
#include "portolan/codec/codec.h"
#include "portolan/placement/placement.h"

namespace portolan::placement {

std::string DecisionClass(const v1::Job& j) {
  v1::Job k;
  k.set_tenant(j.tenant());
  k.set_kind(j.kind());
  *k.mutable_resources() = j.resources();
  *k.mutable_topology() = j.topology();
  *k.mutable_datasets() = j.datasets();
  *k.mutable_placement() = j.placement();
  return codec::DeterministicBytes(k);
}

absl::Status Registry::Register(Factory factory) {
  std::unique_ptr<Plugin> sample = factory ? factory() : nullptr;
  if (sample == nullptr || sample->Name().empty()) {
    return absl::InvalidArgumentError("a placement plugin factory must make a plugin with a name");
  }
  std::string name(sample->Name());
  if (factories_.contains(name)) {
    return absl::AlreadyExistsError(
        absl::StrCat("placement plugin '", name, "' is registered already"));
  }
  factories_.emplace(std::move(name), std::move(factory));
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<Plugin>> Registry::Create(const std::string& name) const {
  auto it = factories_.find(name);
  if (it == factories_.end()) {
    return absl::NotFoundError(absl::StrCat("unknown placement plugin '", name,
                                            "' (known: ", absl::StrJoin(Names(), ", "), ")"));
  }
  return it->second();
}

std::vector<std::string> Registry::Names() const {
  std::vector<std::string> out;
  for (const auto& [name, f] : factories_) out.push_back(name);
  return out;
}

std::set<std::string> Registry::NameSet() const {
  std::set<std::string> out;
  for (const auto& [name, f] : factories_) out.insert(name);
  return out;
}

namespace {

std::string JoinCounts(const std::vector<std::pair<std::string, uint32_t>>& counts) {
  std::vector<std::pair<std::string, uint32_t>> sorted = counts;
  // Most frequent reason first, so the headline cause leads.
  std::stable_sort(sorted.begin(), sorted.end(),
                   [](const auto& a, const auto& b) { return a.second > b.second; });
  return absl::StrJoin(sorted, ", ", [](std::string* out, const auto& p) {
    absl::StrAppend(out, p.second, " ", p.first);
  });
}

}  // namespace

std::string CountsSummary(uint32_t feasible, uint32_t considered,
                          const google::protobuf::Map<std::string, uint32_t>& rejected) {
  std::string s = absl::StrCat(feasible, "/", considered, " agents");
  if (!rejected.empty()) {
    absl::StrAppend(&s, ": ", JoinCounts({rejected.begin(), rejected.end()}));
  }
  return s;
}

absl::StatusOr<std::unique_ptr<Engine>> Engine::Create(const Registry& registry,
                                                       const v1::PluginConfig& config) {
  std::unique_ptr<Engine> e(new Engine());
  e->max_feasible_per_site_ = config.max_feasible_agents_per_site();
  auto add = [&](const std::string& name) -> absl::StatusOr<Plugin*> {
    auto p = registry.Create(name);
    if (!p.ok()) return p.status();
    e->owned_.push_back(std::move(*p));
    Plugin* raw = e->owned_.back().get();
    if (auto* r = dynamic_cast<const ReservePlugin*>(raw)) e->reserves_.push_back(r);
    return raw;
  };
  for (const std::string& name : config.filters()) {
    auto p = add(name);
    if (!p.ok()) return p.status();
    bool used = false;
    if (auto* x = dynamic_cast<const PreFilterPlugin*>(*p))
      e->prefilters_.push_back(x), used = true;
    if (auto* x = dynamic_cast<const SiteFilterPlugin*>(*p))
      e->site_filters_.push_back(x), used = true;
    if (auto* x = dynamic_cast<const FilterPlugin*>(*p)) e->filters_.push_back(x), used = true;
    if (!used)
      return absl::InvalidArgumentError(absl::StrCat("plugin '", name, "' is not a filter"));
  }
  // Scores in name order: deterministic whatever the map's order.
  std::map<std::string, double> scores(config.scores().begin(), config.scores().end());
  for (const auto& [name, weight] : scores) {
    if (!(weight >= 0))
      return absl::InvalidArgumentError(absl::StrCat("score '", name, "': weight must be >= 0"));
    if (weight == 0) continue;
    auto p = add(name);
    if (!p.ok()) return p.status();
    bool used = false;
    if (auto* x = dynamic_cast<const SiteScorePlugin*>(*p))
      e->site_scores_.emplace_back(x, weight), used = true;
    if (auto* x = dynamic_cast<const ScorePlugin*>(*p))
      e->scores_.emplace_back(x, weight), used = true;
    if (!used)
      return absl::InvalidArgumentError(absl::StrCat("plugin '", name, "' is not a score"));
  }
  e->score_headroom_.assign(e->scores_.size(), 0);
  for (size_t k = e->scores_.size(); k-- > 1;)
    e->score_headroom_[k - 1] = e->score_headroom_[k] + 100 * e->scores_[k].second;
  const std::string qs = config.queue_sort().empty() ? kDefaultQueueSort : config.queue_sort();
  auto p = add(qs);
  if (!p.ok()) return p.status();
  e->queue_sort_ = dynamic_cast<const QueueSortPlugin*>(*p);
  if (e->queue_sort_ == nullptr)
    return absl::InvalidArgumentError(absl::StrCat("plugin '", qs, "' is not a queue sort"));
  return e;
}

// One decision's working state, passed between its phases.
struct Engine::Pass {
  struct SiteWork {
    const v1::Site* site;
    v1::SiteDecision* out;
    const std::vector<AgentView>* agents;
    uint32_t feasible = 0;
    const AgentView* best = nullptr;  // highest agent-level score
    double best_score = 0;
  };
  // Per catalogue site (in the order of Decision.sites): its rejection
  // reasons other than the job's own placement choices, and whether those
  // choices were all that excluded it.
  struct SiteVerdict {
    std::vector<std::string> blocking;
    bool only_job_choice = true;
    bool only_quota = false;  // the tenant's site quota alone excluded it, for now
  };
  CycleState state;
  std::vector<SiteVerdict> verdicts;
  std::vector<SiteWork> work;  // allowed sites
  bool any_capacity = false;   // some agent could ever run the job
  std::string never_fit;       // why the first agent that could never fit cannot
  uint32_t allowed_agents = 0;
};

namespace {

// How many agents ahead FilterAgents asks for an agent's topology.
constexpr size_t kPrefetchAhead = 6;

// What the network estimate needs of the job, with its sites' matrix indexes
// looked up once per decision rather than once per catalogue site.
struct NetworkNeeds {
  struct Data {
    const v1::Dataset* ds;
    int from;
  };
  std::vector<Data> data;   // the datasets that name a location
  std::vector<int> rtt_to;  // the max_rtt_ms sites, else the datasets' locations

  // Also fills `limits` (CycleState::rtt_limits) from the job's max_rtt_ms,
  // sorted by site name.
  NetworkNeeds(const network::NetworkModel& net, const v1::Job& job,
               std::vector<CycleState::RttLimit>& limits) {
    for (const v1::Dataset& ds : job.datasets()) {
      if (!ds.location().empty()) data.push_back({&ds, net.Index(ds.location())});
    }
    limits.clear();
    if (!job.placement().max_rtt_ms().empty()) {
      for (const auto& [other, limit] : job.placement().max_rtt_ms()) {
        const int index = net.Index(other);
        rtt_to.push_back(index);
        limits.push_back({other, limit, index});
      }
      std::sort(limits.begin(), limits.end(),
                [](const CycleState::RttLimit& a, const CycleState::RttLimit& b) {
                  return a.site < b.site;
                });
    } else {
      for (const Data& d : data) rtt_to.push_back(d.from);
    }
  }
};

// Transfer time of the job's datasets to `site` and the RTT that matters
// (to its max_rtt_ms sites, else to its datasets); false when a dataset has
// no working network path there (`unreachable_from` says whose).
// `measured`: throughput measured per path, used in place of the configured
// bottleneck where a path has a figure (may be null). `si`: the network
// model's index of `site`.
bool EstimateNetwork(const network::NetworkModel& net, const network::MeasuredPaths* measured,
                     const NetworkNeeds& needs, const v1::Site& site, int si, v1::SiteDecision* sd,
                     std::string* unreachable_from) {
  double transfer = 0;
  bool reachable = true;
  for (const NetworkNeeds::Data& d : needs.data) {
    const v1::Dataset& ds = *d.ds;
    const network::MeasuredPath* m =
        measured == nullptr ? nullptr : measured->Find(ds.location(), site.id());
    double t = m != nullptr ? net.TransferSeconds(d.from, si, ds.size_gb(), m->gbps)
                            : net.TransferSeconds(d.from, si, ds.size_gb());
    if (m != nullptr) sd->set_transfer_measured(true);
    if (t < 0) {
      reachable = false;
      *unreachable_from = ds.location();
    } else {
      transfer += t;
    }
  }
  sd->set_transfer_s(reachable ? transfer : -1);
  double rtt = 0;
  for (int other : needs.rtt_to) rtt = std::max(rtt, net.Rtt(si, other));
  sd->set_rtt_ms(rtt);
  return reachable;
}

}  // namespace

v1::Decision Engine::Decide(const DecisionInput& in) const {
  v1::Decision d;
  Decide(in, &d);
  return d;
}

void Engine::Decide(const DecisionInput& in, v1::Decision* out) const {
  v1::Decision& d = *out;
  d.Clear();
  if (in.policy->policy().plugins().allow_without_residency()) {
    d.add_warnings(
        "residency is switched off by the policy (plugins.allow_without_residency): no "
        "residency rule was checked for this decision");
  }
  Pass pass;
  pass.state.request = topology::Request::FromJob(*in.job);
  for (const PreFilterPlugin* p : prefilters_) {
    absl::Status st = p->PreFilter(pass.state, in);
    if (!st.ok()) {
      d.set_unschedulable(true);
      d.set_reason(std::string(st.message()));
      return;
    }
  }
  FilterSites(in, pass, d);
  FilterAgents(in, pass, d);
  if (!PickWinner(in, pass, d)) ExplainInfeasible(in, pass, d);
}

void Engine::FilterSites(const DecisionInput& in, Pass& pass, v1::Decision& d) const {
  static const std::vector<AgentView> kNone;
  v1::AgentCounts* totals = d.mutable_agents();
  const NetworkNeeds network_needs(in.policy->network(), *in.job, pass.state.rtt_limits);
  pass.verdicts.reserve(in.policy->policy().sites_size());
  pass.work.reserve(in.policy->policy().sites_size());
  for (const v1::Site& site : in.policy->policy().sites()) {
    v1::SiteDecision* sd = d.add_sites();
    sd->set_site(site.id());
    sd->set_regime(site.jurisdiction());
    std::string unreachable_from;
    pass.state.site_network_index = in.policy->network().Index(site.id());
    const bool reachable = EstimateNetwork(
        in.policy->network(),
        in.policy->policy().datasets().use_measured_throughput() ? in.measured : nullptr,
        network_needs, site, pass.state.site_network_index, sd, &unreachable_from);
    const std::vector<AgentView>* agents = &kNone;
    if (in.agents_by_site != nullptr) {
      auto it = in.agents_by_site->find(site.id());
      if (it != in.agents_by_site->end()) agents = &it->second;
    }
    sd->mutable_agents()->set_considered(static_cast<uint32_t>(agents->size()));
    totals->set_considered(totals->considered() + static_cast<uint32_t>(agents->size()));

    // Every site-level filter runs, so the explanation lists every reason.
    std::string first_code;
    Pass::SiteVerdict& verdict = pass.verdicts.emplace_back();
    auto reject = [&](std::string_view code, std::string text, bool job_choice) {
      sd->add_rejected(text);
      if (!job_choice) {
        verdict.blocking.push_back(std::move(text));
        verdict.only_job_choice = false;
      }
      if (first_code.empty()) first_code = std::string(code);
    };
    for (const SiteFilterPlugin* f : site_filters_) {
      FilterResult r = f->FilterSite(pass.state, in, site, *sd);
      if (!r.ok) {
        reject(r.code,
               r.detail.empty() ? std::string(r.code)
                                : absl::StrCat(std::string(r.code), ": ", r.detail),
               r.job_choice);
      }
    }
    if (in.quota_closed != nullptr) {
      if (auto q = in.quota_closed->find(site.id()); q != in.quota_closed->end()) {
        verdict.only_quota = sd->rejected_size() == 0 && reachable;
        reject("quota", q->second, false);
      }
    }
    if (!reachable) {
      reject("unreachable",
             absl::StrCat("unreachable: no working network path from ", unreachable_from, " to ",
                          site.id()),
             false);
    }
    sd->set_allowed(first_code.empty());
    if (!sd->allowed()) {
      if (!agents->empty())
        (*totals->mutable_rejected())[first_code] += static_cast<uint32_t>(agents->size());
      continue;
    }
    pass.work.push_back(Pass::SiteWork{&site, sd, agents});
  }
}

void Engine::FilterAgents(const DecisionInput& in, Pass& pass, v1::Decision& d) const {
  // Agent-level filters and scores on allowed sites only. The hot loop: no
  // allocation per agent; rejections are counted by their static code.
  const v1::Job& job = *in.job;
  v1::AgentCounts* totals = d.mutable_agents();
  RejectCounts all_counts;
  for (Pass::SiteWork& w : pass.work) {
    pass.state.site = w.site;
    RejectCounts counts;
    uint32_t feasible = 0;
    const size_t n = w.agents->size();
    const size_t start = n > 0 && max_feasible_per_site_ > 0
                             ? cursor_.fetch_add(1, std::memory_order_relaxed) % n
                             : 0;
    // The filters that can reject an agent of this site for this job.
    absl::InlinedVector<const FilterPlugin*, 8> applies;
    for (const FilterPlugin* f : filters_) {
      if (f->AppliesAt(pass.state, in, *w.site)) applies.push_back(f);
    }
    const absl::Span<const FilterPlugin* const> active(applies);
    const uint32_t enough =
        max_feasible_per_site_ > 0 ? max_feasible_per_site_ : std::numeric_limits<uint32_t>::max();
    const AgentView* agents = w.agents->data();
    const bool counts_decide = topology::FitCounts::CountsDecide(pass.state.request);
    size_t examined = 0;
    for (size_t i = start; examined < n && feasible < enough;
         ++examined, i = i + 1 == n ? 0 : i + 1) {
      const AgentView& a = agents[i];
      if (n > kPrefetchAhead) {
        // An agent's topology is a heap object of its own: where the view's
        // copy of its counts cannot answer this request, ask for the one a
        // few places on now, so the filters find it in cache then.
        const size_t next = i + kPrefetchAhead < n ? i + kPrefetchAhead : i + kPrefetchAhead - n;
        const AgentView& ahead = agents[next];
        if (ahead.topo != nullptr && (!counts_decide || !ahead.fit.HasCounts()))
          ahead.topo->Prefetch();
      }
      if (!pass.any_capacity) {
        if (a.topo != nullptr) {
          if (a.topo->CouldEverFit(pass.state.request)) {
            pass.any_capacity = true;
          } else if (pass.never_fit.empty()) {
            pass.never_fit =
                absl::StrCat(a.agent->id(), ": ", a.topo->NeverFitReason(pass.state.request));
          }
        } else {
          const v1::Resources& cap = a.capacity;
          pass.any_capacity = cap.cpus() >= job.resources().cpus() &&
                              cap.memory_mb() >= job.resources().memory_mb() &&
                              cap.gpus() >= job.resources().gpus();
        }
      }
      bool ok = true;
      for (const FilterPlugin* f : active) {
        const AgentVerdict r = f->Filter(pass.state, in, a);
        if (!r.ok()) {
          // A rejection that explains itself (isolation below the site's
          // minimum) is spelled out once per site and reason.
          if (counts.Add(r.code)) {
            if (std::string detail = f->Explain(pass.state, in, a, r.code); !detail.empty()) {
              w.out->add_rejected(
                  absl::StrCat(std::string(r.code), ": agent ", a.agent->id(), ": ", detail));
            }
          }
          ok = false;
          break;  // fast path: an agent's first failing filter is its reason
        }
      }
      if (!ok) continue;
      ++feasible;
      // Keep only the site's best agent: the site-level part is the same for
      // all. Ties go to the agent listed first, which is the smallest id
      // (DecisionInput::agents_by_site), without reading either agent's id.
      // Scores run in name order (bin_pack before numa_fit, whose topology
      // walk is the dearest); an agent that stays below the best even with
      // full marks from the scores left is not scored further, since it
      // cannot win. The same winner either way.
      double s = 0;
      bool beaten = false;
      for (size_t k = 0; k < scores_.size() && !beaten; ++k) {
        s += scores_[k].second * std::clamp(scores_[k].first->Score(pass.state, in, a), 0.0, 100.0);
        beaten = w.best != nullptr && s + score_headroom_[k] < w.best_score - 1e-9;
      }
      if (beaten) continue;
      if (w.best == nullptr || s > w.best_score + 1e-9 ||
          (std::abs(s - w.best_score) <= 1e-9 && &a < w.best)) {
        w.best = &a;
        w.best_score = s;
      }
    }
    auto& site_rejected = *w.out->mutable_agents()->mutable_rejected();
    for (const auto& [code, k] : counts) {
      site_rejected[std::string(code)] += k;
      all_counts.Add(code, k);
    }
    pass.allowed_agents += static_cast<uint32_t>(examined);
    w.feasible = feasible;
    w.out->mutable_agents()->set_feasible(feasible);
    w.out->mutable_agents()->set_skipped(static_cast<uint32_t>(n - examined));
    totals->set_skipped(totals->skipped() + static_cast<uint32_t>(n - examined));
    totals->set_feasible(totals->feasible() + feasible);
  }
  pass.state.site = nullptr;
  for (const auto& [code, k] : all_counts) (*totals->mutable_rejected())[std::string(code)] += k;
}

bool Engine::PickWinner(const DecisionInput& in, Pass& pass, v1::Decision& d) const {
  // Site-level scores, normalized over sites with feasible agents.
  // Small and per decision: inline storage, no allocation for a catalogue
  // of a few dozen sites.
  absl::InlinedVector<Pass::SiteWork*, 16> candidates;
  for (Pass::SiteWork& w : pass.work) {
    if (w.feasible > 0) candidates.push_back(&w);
  }
  const size_t kinds = site_scores_.size();
  // site_score[c * kinds + k]: candidate c's normalized score of kind k.
  absl::InlinedVector<double, 64> site_score(candidates.size() * kinds, 100);
  absl::InlinedVector<double, 16> cost(candidates.size());
  for (size_t k = 0; k < kinds; ++k) {
    double lo = std::numeric_limits<double>::infinity(), hi = -lo;
    for (size_t c = 0; c < candidates.size(); ++c) {
      cost[c] = site_scores_[k].first->SiteCost(pass.state, in, *candidates[c]->site,
                                                *candidates[c]->out);
      lo = std::min(lo, cost[c]);
      hi = std::max(hi, cost[c]);
    }
    for (size_t c = 0; c < candidates.size(); ++c) {
      site_score[c * kinds + k] = hi > lo ? 100.0 * (hi - cost[c]) / (hi - lo) : 100.0;
    }
  }
  double total_weight = 0;
  for (const auto& [p, w] : scores_) total_weight += w;
  for (const auto& [p, w] : site_scores_) total_weight += w;

  double best = -1;
  const AgentView* winner = nullptr;
  size_t winner_site = 0;
  for (size_t c = 0; c < candidates.size(); ++c) {
    double site_part = 0;
    for (size_t k = 0; k < kinds; ++k)
      site_part += site_scores_[k].second * site_score[c * kinds + k];
    const AgentView* agent = candidates[c]->best;
    double score = total_weight > 0 ? (site_part + candidates[c]->best_score) / total_weight : 0;
    // Ties go to the smallest agent id: deterministic.
    if (score > best + 1e-9 ||
        (std::abs(score - best) <= 1e-9 && agent->agent->id() < winner->agent->id())) {
      best = score;
      winner = agent;
      winner_site = c;
    }
  }
  if (winner == nullptr) return false;

  d.set_feasible(true);
  v1::PlacementResult* p = d.mutable_placement();
  p->set_agent(winner->agent->id());
  p->set_site(winner->agent->site());
  p->set_score(std::round(best * 10) / 10);
  for (size_t k = 0; k < site_scores_.size(); ++k) {
    (*p->mutable_scores())[std::string(site_scores_[k].first->Name())] =
        std::round(site_score[winner_site * kinds + k] * 10) / 10;
  }
  for (const auto& [sp, weight] : scores_) {
    (*p->mutable_scores())[std::string(sp->Name())] =
        std::round(std::clamp(sp->Score(pass.state, in, *winner), 0.0, 100.0) * 10) / 10;
  }
  for (const v1::Compliance& c : candidates[winner_site]->out->residency().datasets()) {
    *p->add_compliance() = c;
  }
  if (winner->topo != nullptr) {
    // The concrete PUs, NUMA nodes and GPUs the winner would give now.
    auto alloc = winner->topo->Plan(pass.state.request);
    if (!alloc.ok()) {
      d.clear_placement();
      d.set_feasible(false);
      d.set_reason(
          absl::StrCat("internal: agent ", winner->agent->id(),
                       " passed the filters but cannot allocate: ", alloc.status().message()));
      return true;  // decided: nothing to explain beyond that
    }
    p->mutable_cpus()->CopyFrom(alloc->pus());
    p->mutable_numa_nodes()->CopyFrom(alloc->numa_nodes());
    p->mutable_gpus()->CopyFrom(alloc->gpu_ids());
    *p->mutable_numa_memory_mb() = alloc->numa_memory_mb();
  }
  return true;
}

void Engine::ExplainInfeasible(const DecisionInput& in, const Pass& pass, v1::Decision& d) const {
  // Not feasible: name every blocking constraint.
  const v1::Job& job = *in.job;
  std::vector<std::string> parts;
  if (!pass.work.empty()) {
    parts.push_back(absl::StrCat(CountsSummary(0, pass.allowed_agents, {}), " at ",
                                 pass.work.size(), " allowed site(s)"));
    std::map<std::string, uint32_t> agent_reasons;
    for (const Pass::SiteWork& w : pass.work) {
      for (const auto& [code, n] : w.out->agents().rejected()) agent_reasons[code] += n;
    }
    if (!agent_reasons.empty())
      parts.back() += absl::StrCat(": ", JoinCounts({agent_reasons.begin(), agent_reasons.end()}));
  }
  // Sites excluded only because the job did not ask for them are counted, not
  // listed: the blocking reasons elsewhere are what a reader needs.
  int not_requested = 0;
  for (int i = 0; i < d.sites_size(); ++i) {
    const v1::SiteDecision& sd = d.sites(i);
    if (sd.allowed()) continue;
    const Pass::SiteVerdict& v = pass.verdicts[i];
    if (v.only_job_choice) {
      ++not_requested;
      continue;
    }
    parts.push_back(absl::StrCat(sd.site(), " excluded: ", absl::StrJoin(v.blocking, "; ")));
  }
  if (not_requested > 0)
    parts.push_back(absl::StrCat(not_requested, " other site(s) not requested or avoided"));
  bool quota_waits = false;  // a site is closed by the tenant's quota alone
  for (const Pass::SiteVerdict& v : pass.verdicts) quota_waits |= v.only_quota;
  const bool no_site = pass.work.empty() && !quota_waits;
  const bool no_hardware = pass.allowed_agents > 0 && !pass.any_capacity && !quota_waits;
  d.set_unschedulable(no_site || no_hardware);
  std::string head;
  if (pass.work.empty() && quota_waits) {
    head = "waiting for quota";
  } else if (no_site) {
    head = "no site of the catalogue can take this job";
  } else if (no_hardware) {
    head = pass.never_fit.empty()
               ? absl::StrCat("no agent at the allowed sites has ", job.resources().cpus(),
                              " cpus, ", job.resources().memory_mb(), " MiB and ",
                              job.resources().gpus(), " gpus in total")
               : absl::StrCat("no agent at the allowed sites could ever run it (", pass.never_fit,
                              ")");
  } else if (pass.allowed_agents == 0) {
    head = "no agent registered at the allowed sites yet";
  } else {
    head = "waiting for capacity";
  }
  d.set_reason(absl::StrCat(head, " — ", absl::StrJoin(parts, " | ")));
}

absl::Status Engine::Reserve(const DecisionInput& in, const v1::Decision& d,
                             ReserveContext& ctx) const {
  for (size_t i = 0; i < reserves_.size(); ++i) {
    absl::Status st = reserves_[i]->Reserve(in, d, ctx);
    if (!st.ok()) {
      for (size_t k = i; k-- > 0;) reserves_[k]->Unreserve(in, d, ctx);
      return st;
    }
  }
  return absl::OkStatus();
}

void Engine::Unreserve(const DecisionInput& in, const v1::Decision& d, ReserveContext& ctx) const {
  for (size_t k = reserves_.size(); k-- > 0;) reserves_[k]->Unreserve(in, d, ctx);
}

}  // namespace portolan::placement
