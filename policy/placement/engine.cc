#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "portolan/placement.h"

namespace portolan::placement {

void Registry::Register(std::string name, Factory factory) {
  factories_[std::move(name)] = std::move(factory);
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

std::string Decision::Summary() const {
  if (!prefilter_error.empty()) return prefilter_error;
  std::string s = absl::StrCat(feasible_agents, "/", considered, " agents");
  if (!rejected.empty()) {
    // Most frequent reason first, so the headline cause leads.
    std::vector<std::pair<std::string, int>> sorted(rejected.begin(), rejected.end());
    std::stable_sort(sorted.begin(), sorted.end(),
                     [](const auto& a, const auto& b) { return a.second > b.second; });
    absl::StrAppend(&s, ": ", absl::StrJoin(sorted, ", ", [](std::string* out, const auto& p) {
      absl::StrAppend(out, p.second, " ", p.first);
    }));
  }
  return s;
}

absl::StatusOr<std::unique_ptr<Engine>> Engine::Create(const Registry& registry,
                                                       const EngineConfig& config) {
  std::unique_ptr<Engine> engine(new Engine());
  auto add = [&](const std::string& name) -> absl::StatusOr<Plugin*> {
    auto p = registry.Create(name);
    if (!p.ok()) return p.status();
    engine->owned_.push_back(std::move(*p));
    return engine->owned_.back().get();
  };
  for (const std::string& name : config.filters) {
    auto p = add(name);
    if (!p.ok()) return p.status();
    if (auto* pre = dynamic_cast<const PreFilterPlugin*>(*p)) engine->prefilters_.push_back(pre);
    auto* f = dynamic_cast<const FilterPlugin*>(*p);
    if (f == nullptr)
      return absl::InvalidArgumentError(absl::StrCat("'", name, "' is not a filter"));
    engine->filters_.push_back(f);
  }
  for (const auto& [name, weight] : config.scores) {
    if (weight < 0) {
      return absl::InvalidArgumentError(absl::StrCat("score '", name, "': weight must be >= 0"));
    }
    auto p = add(name);
    if (!p.ok()) return p.status();
    auto* s = dynamic_cast<const ScorePlugin*>(*p);
    if (s == nullptr)
      return absl::InvalidArgumentError(absl::StrCat("'", name, "' is not a score"));
    engine->scores_.emplace_back(s, weight);
  }
  return engine;
}

Decision Engine::Place(const v1::Job& job, const std::vector<AgentView>& agents) const {
  Decision d;
  CycleState state;
  for (const PreFilterPlugin* p : prefilters_) {
    absl::Status st = p->PreFilter(state, job);
    if (!st.ok()) {
      d.prefilter_error = std::string(st.message());
      return d;
    }
  }
  double total_weight = 0;
  for (const auto& [p, w] : scores_) total_weight += w;
  double best = -1;
  for (const AgentView& a : agents) {
    ++d.considered;
    bool ok = true;
    for (const FilterPlugin* f : filters_) {
      FilterResult r = f->Filter(state, job, a);
      if (!r.ok) {
        ++d.rejected[r.code];
        ok = false;
        break;  // fast path: the first failing filter is the agent's reason
      }
    }
    if (!ok) continue;
    ++d.feasible_agents;
    double score = 0;
    std::map<std::string, double> parts;
    for (const auto& [p, w] : scores_) {
      double s = std::clamp(p->Score(state, job, a), 0.0, 100.0);
      parts[std::string(p->Name())] = s;
      score += s * w;
    }
    score = total_weight > 0 ? score / total_weight : 0;
    // Ties go to the lexicographically smallest agent id: deterministic.
    if (score > best || (score == best && a.agent->id() < d.agent_id)) {
      best = score;
      d.feasible = true;
      d.agent_id = a.agent->id();
      d.site = a.agent->site();
      d.score = score;
      d.scores = std::move(parts);
    }
  }
  return d;
}

}  // namespace portolan::placement
