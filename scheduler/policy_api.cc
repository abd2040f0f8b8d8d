// SPDX-License-Identifier: Apache-2.0
// The policy-engine side of the scheduler core: plans and explanations,
// policy versions, tenants, the network view and the audit trail.
#include <algorithm>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/civil_time.h"
#include "google/protobuf/util/message_differencer.h"
#include "portolan/base/log.h"
#include "portolan/base/strings.h"
#include "portolan/codec/codec.h"
#include "portolan/scheduler/core.h"

namespace portolan::scheduler {

namespace {
template <typename C>
std::string Known(const C& c) {
  return absl::StrJoin(c, ", ");
}
}  // namespace

absl::StatusOr<std::shared_ptr<const PolicyState>> Core::Build(v1::Policy policy,
                                                               std::vector<std::string>* errors) {
  auto compiled = policy::CompilePolicy(std::move(policy), registry_->NameSet(), errors);
  if (!compiled.ok()) return compiled.status();
  auto engine = placement::Engine::Create(*registry_, (*compiled)->policy().plugins());
  if (!engine.ok()) {
    if (errors) errors->push_back(absl::StrCat("plugins: ", engine.status().message()));
    return codec::InvalidField("plugins", engine.status().message());
  }
  auto state = std::make_shared<PolicyState>();
  state->compiled = std::move(*compiled);
  state->engine = std::shared_ptr<const placement::Engine>(std::move(*engine));
  return std::shared_ptr<const PolicyState>(std::move(state));
}

absl::Status Core::CheckAgainstPolicy(const v1::Job& job, const policy::CompiledPolicy& p) {
  std::vector<std::string> site_ids;
  for (const v1::Site& s : p.policy().sites()) site_ids.push_back(s.id());
  auto site = [&](const std::string& field, const std::string& id) -> absl::Status {
    if (p.FindSite(id) != nullptr) return absl::OkStatus();
    return codec::InvalidField(
        field, absl::StrCat("unknown site '", id, "' (known: ", Known(site_ids), ")"));
  };
  const v1::PlacementRequest& pr = job.placement();
  for (int i = 0; i < pr.sites_size(); ++i) {
    if (auto st = site(absl::StrCat("placement.sites[", i, "]"), pr.sites(i)); !st.ok()) return st;
  }
  for (int i = 0; i < pr.avoid_sites_size(); ++i) {
    if (auto st = site(absl::StrCat("placement.avoid_sites[", i, "]"), pr.avoid_sites(i)); !st.ok())
      return st;
  }
  for (const auto& [id, limit] : pr.max_rtt_ms()) {
    if (auto st = site(absl::StrCat("placement.max_rtt_ms.", id), id); !st.ok()) return st;
    if (!(limit > 0))
      return codec::InvalidField(absl::StrCat("placement.max_rtt_ms.", id),
                                 "the RTT limit must be > 0 ms");
  }
  for (int i = 0; i < job.datasets_size(); ++i) {
    const v1::Dataset& d = job.datasets(i);
    if (!d.location().empty()) {
      if (auto st = site(absl::StrCat("datasets[", i, "].location"), d.location()); !st.ok())
        return st;
    }
    const auto& j = p.policy().jurisdictions();
    if (!d.origin().empty() && std::find(j.begin(), j.end(), d.origin()) == j.end()) {
      return codec::InvalidField(
          absl::StrCat("datasets[", i, "].origin"),
          absl::StrCat("unknown jurisdiction '", d.origin(), "' (known: ", Known(j), ")"));
    }
  }
  return datasets::Registry::CheckPolicy(job, p.policy().datasets());
}

absl::StatusOr<v1::Decision> Core::Plan(v1::Job spec) {
  if (absl::Status st = ResolveAndValidate(spec); !st.ok()) return st;
  absl::MutexLock lock(&mu_);
  if (absl::Status st = CheckWithPolicy(spec); !st.ok()) return st;
  auto by_site = agents_.BySite();
  placement::DecisionInput in;
  in.job = &spec;
  in.tenant = TenantFor(spec.tenant());
  // What the pass would say first: the tenant's quota, then the decision
  // (with the sites its per-site quota closes).
  QuotaVerdict quota = CheckQuota(*in.tenant, usage_.Of(spec.tenant()), spec.resources());
  if (!quota.ok) {
    v1::Decision d;
    d.set_reason(quota.reason);
    d.set_policy_version(policy_->meta.version());
    *d.mutable_decided_at() = base::ToProto(clock_->Now());
    return d;
  }
  in.quota_closed = quota.closed_sites.empty() ? nullptr : &quota.closed_sites;
  in.policy = policy_->compiled.get();
  in.ledger = &ledger_;
  in.today = absl::ToCivilDay(clock_->Now(), absl::UTCTimeZone());
  in.agents_by_site = &by_site;
  in.measured = &measured_;
  v1::Decision d = policy_->engine->Decide(in);
  if (spec.has_gang()) {
    PlanGang(in, spec, d);
  } else if (std::optional<Preemption> p = FindPreemption(in, *policy_->engine, d)) {
    d.set_reason(absl::StrCat(d.reason(), "; would preempt: ", absl::StrJoin(p->victims, ", "),
                              " on agent ", p->agent));
  }
  d.set_policy_version(policy_->meta.version());
  *d.mutable_decided_at() = base::ToProto(clock_->Now());
  return d;
}

absl::StatusOr<v1::Decision> Core::Explain(const std::string& id) {
  {
    absl::MutexLock lock(&mu_);
    if (!jobs_.Contains(id))
      return codec::FieldError(absl::StatusCode::kNotFound, "id",
                               absl::StrCat("no job '", id, "'"));
    auto w = waiting_decisions_.find(id);
    if (w != waiting_decisions_.end()) {
      v1::Decision d;
      if (!d.ParseFromString(*w->second))
        return absl::InternalError(absl::StrCat("job ", id, ": waiting decision does not decode"));
      return d;
    }
    // Waiting before any decision: for its dependencies or its tenant's
    // quota. The reason is the explanation.
    if (const v1::Job* j = jobs_.Held(id); j != nullptr && j->state() == v1::Job::queued) {
      v1::Decision d;
      d.set_reason(j->reason());
      return d;
    }
  }
  auto d = store_->GetDecision(id);
  if (d.status().code() == absl::StatusCode::kNotFound) {
    // Ended (cancelled, a dependency failed) before any decision was made:
    // there never will be one, and the job's reason says why.
    if (auto job = GetJob(id); job.ok() && IsTerminal(job->state())) {
      v1::Decision ended;
      ended.set_reason(absl::StrCat("the job ended ", v1::Job::State_Name(job->state()),
                                    " before any placement decision was made: ", job->reason()));
      return ended;
    }
    return absl::NotFoundError(absl::StrCat("job ", id, " has no placement decision yet"));
  }
  if (d.ok() && !d->shared_with().empty()) {
    // A task placed with another task's decision: that decision's sites and
    // agents, with this task's own placement.
    auto shared = store_->GetDecision(d->shared_with());
    if (shared.ok()) {
      shared->set_shared_with(d->shared_with());
      *shared->mutable_placement() = d->placement();
      *shared->mutable_decided_at() = d->decided_at();
      return shared;
    }
  }
  return d;
}

absl::StatusOr<v1::PolicyVersion> Core::ApplyPolicy(v1::Policy policy, const std::string& who,
                                                    const std::string& summary) {
  auto built = Build(policy, nullptr);
  if (!built.ok()) return built.status();
  absl::MutexLock lock(&mu_);
  if (policy_ != nullptr) {
    // The same policy again (an unchanged file applied, a SIGHUP without an
    // edit): no new version, no re-decisions.
    v1::Policy now = policy_->compiled->policy();
    v1::Policy next = (*built)->compiled->policy();
    now.clear_version();
    next.clear_version();
    if (google::protobuf::util::MessageDifferencer::Equals(now, next)) {
      v1::PolicyVersion same = policy_->meta;
      same.set_unchanged(true);
      spdlog::info("policy applied by {} equals {} in force: no new version", who, same.version());
      return same;
    }
  }
  v1::PolicyVersion v;
  v.set_version(absl::StrCat("v", policy_versions_ + 1));
  *v.mutable_applied_at() = base::ToProto(clock_->Now());
  v.set_applied_by(who);
  if (!summary.empty()) {
    v.set_summary(summary);
  } else if (policy_ == nullptr) {
    v.set_summary("initial policy");
  } else {
    v.set_summary(policy::DiffSummary(policy_->compiled->policy(), (*built)->compiled->policy()));
  }
  v1::Policy stored = (*built)->compiled->policy();
  stored.set_version(v.version());
  *v.mutable_policy() = stored;
  if (absl::Status st = store_->PutPolicyVersion(v); !st.ok()) {
    return absl::UnavailableError(
        absl::StrCat("policy not applied: state store write failed: ", st.message()));
  }
  v.clear_policy();
  auto state = std::make_shared<PolicyState>(**built);
  state->meta = v;
  for (const v1::Link& l :
       ChangedLinks(policy_ ? &policy_->compiled->policy() : nullptr, state->compiled->policy())) {
    Publish(LinkChanged(l, clock_->Now()));
  }
  policy_ = std::move(state);
  ++policy_versions_;
  for (const std::string& w : policy_->compiled->warnings())
    spdlog::warn("policy {}: {}", v.version(), w);
  spdlog::info("policy {} applied by {}: {}", v.version(), who, v.summary());
  RequestPass();  // waiting jobs see the new policy at the next tick
  CheckComplianceLocked(absl::StrCat("policy ", v.version()));
  return v;
}

v1::ValidationResult Core::ValidatePolicy(const v1::Policy& policy) {
  v1::ValidationResult r;
  std::vector<std::string> errors;
  auto built = Build(policy, &errors);
  r.set_valid(built.ok());
  for (const auto& e : errors) r.add_errors(e);
  if (!built.ok() && errors.empty()) r.add_errors(std::string(built.status().message()));
  if (built.ok()) {
    for (const auto& w : (*built)->compiled->warnings()) r.add_warnings(w);
  }
  return r;
}

absl::StatusOr<v1::Policy> Core::GetPolicy() {
  absl::MutexLock lock(&mu_);
  if (policy_ == nullptr) return absl::UnavailableError("no placement policy loaded yet");
  v1::Policy p = policy_->compiled->policy();
  p.set_version(policy_->meta.version());
  return p;
}

absl::StatusOr<v1::ListPolicyVersionsResponse> Core::PolicyVersions() {
  auto versions = store_->LoadPolicyVersions();
  if (!versions.ok()) return versions.status();
  v1::ListPolicyVersionsResponse out;
  for (auto it = versions->rbegin(); it != versions->rend(); ++it) {
    v1::PolicyVersion v = *it;
    v.clear_policy();
    *out.add_versions() = std::move(v);
  }
  return out;
}

absl::StatusOr<v1::PolicyVersion> Core::PolicyVersion(const std::string& version) {
  auto versions = store_->LoadPolicyVersions();
  if (!versions.ok()) return versions.status();
  for (const v1::PolicyVersion& v : *versions) {
    if (v.version() == version) return v;
  }
  return codec::FieldError(absl::StatusCode::kNotFound, "version",
                           absl::StrCat("no policy version ", version));
}

absl::StatusOr<v1::ListLedgerResponse> Core::TenantLedger(const std::string& tenant) {
  auto all = store_->LoadLedger();
  if (!all.ok()) return all.status();
  v1::ListLedgerResponse out;
  for (v1::LedgerEntry& e : *all) {
    if (e.tenant() == tenant) *out.add_entries() = std::move(e);
  }
  std::sort(out.mutable_entries()->begin(), out.mutable_entries()->end(),
            [](const v1::LedgerEntry& a, const v1::LedgerEntry& b) {
              return a.year() != b.year() ? a.year() > b.year() : a.origin() < b.origin();
            });
  return out;
}

v1::ListTenantsResponse Core::ListTenants(int expiring_within_days) {
  absl::MutexLock lock(&mu_);
  v1::ListTenantsResponse out;
  const absl::CivilDay today = absl::ToCivilDay(clock_->Now(), absl::UTCTimeZone());
  for (const auto& [id, t] : tenants_) {
    if (!t.has_updated_at()) continue;  // only profiles that were set
    if (expiring_within_days < 0) {
      *out.add_tenants() = t;
      continue;
    }
    v1::Tenant shown = t;
    shown.clear_instruments();
    for (const v1::Instrument& in : t.instruments()) {
      absl::CivilDay until;
      if (absl::ParseCivilTime(in.expires(), &until) && until - today <= expiring_within_days)
        *shown.add_instruments() = in;
    }
    if (shown.instruments_size() > 0) *out.add_tenants() = std::move(shown);
  }
  return out;
}

v1::ListViolationsResponse Core::Violations(const std::string& tenant) {
  absl::MutexLock lock(&mu_);
  v1::ListViolationsResponse out;
  for (const auto& [job, list] : violations_) {
    for (const v1::ComplianceViolation& v : list) {
      if (tenant.empty() || v.tenant() == tenant) *out.add_violations() = v;
    }
  }
  return out;
}

void Core::CheckComplianceLocked(const std::string& cause, const std::string& only_tenant) {
  if (policy_ == nullptr) return;
  const absl::Time now = clock_->Now();
  const absl::CivilDay today = absl::ToCivilDay(now, absl::UTCTimeZone());
  compliance_day_ = today;
  const policy::CompiledPolicy& p = *policy_->compiled;
  const bool stop = p.policy().on_violation() == v1::Policy::stop;
  int found = 0, cleared = 0;
  // Placed and running jobs are the ones on agents: O(active jobs), not O(history).
  std::vector<std::string> active_ids;
  for (const auto& [aid, a] : agents_) {
    active_ids.insert(active_ids.end(), a.info.jobs().begin(), a.info.jobs().end());
  }
  for (const auto& [id, list] : violations_) active_ids.push_back(id);  // to clear stale ones
  std::sort(active_ids.begin(), active_ids.end());
  active_ids.erase(std::unique(active_ids.begin(), active_ids.end()), active_ids.end());
  for (const std::string& id : active_ids) {
    v1::Job* held = jobs_.Held(id);
    if (held == nullptr) {
      violations_.erase(id);
      continue;
    }
    v1::Job& job = *held;
    const bool active = HoldsResources(job.state());
    if (!only_tenant.empty() && job.tenant() != only_tenant) continue;
    auto known = violations_.find(id);
    const v1::Site* site = active ? p.FindSite(job.allocation().site()) : nullptr;
    if (site == nullptr || job.datasets_size() == 0) {
      if (known != violations_.end()) violations_.erase(known);
      continue;
    }
    static const v1::Tenant kNoTenant;
    const v1::Tenant* t = TenantFor(job.tenant());
    v1::ResidencyVerdict v =
        p.residency().EvaluateJob(job, *site, t ? *t : kNoTenant, ledger_, today);
    if (v.allowed()) {
      if (known != violations_.end()) {
        violations_.erase(known);
        ++cleared;
        Note(job, absl::StrCat("compliance: allowed again at ", site->id(), " (", cause, ")"));
      }
      continue;
    }
    std::vector<v1::ComplianceViolation> list;
    for (const v1::Compliance& c : v.datasets()) {
      if (!c.refused()) continue;  // only the datasets refused now
      v1::ComplianceViolation& x = list.emplace_back();
      x.set_job(id);
      x.set_tenant(job.tenant());
      x.set_dataset(c.dataset());
      x.set_site(site->id());
      x.set_rule(c.rule());
      x.set_reason(c.reason());
      x.set_policy_version(policy_->meta.version());
      x.set_action(stop ? "stop" : "report");
      *x.mutable_since() = base::ToProto(now);
      if (known != violations_.end()) {
        for (const auto& old : known->second) {
          if (old.dataset() == x.dataset()) *x.mutable_since() = old.since();
        }
      }
    }
    const bool is_new = known == violations_.end();
    violations_[id] = list;
    ++found;
    // After a restart the violation is found again; the job's history says it once.
    const bool said = job.events_size() > 0 && absl::StartsWith(job.events().rbegin()->message(),
                                                                "compliance: no longer allowed");
    if (is_new && !said) {
      spdlog::warn("job {}: compliance violation at {} ({}): {}", id, site->id(), cause,
                   v.reason());
      Note(job, absl::StrCat("compliance: no longer allowed at ", site->id(), " (", cause,
                             "): ", v.reason()));
    }
    if (stop) {
      RequestStop(job,
                  absl::StrCat("stopping it on agent ", job.allocation().agent(),
                               ": the policy says on_violation: stop"),
                  "stopped: no longer compliant");
    }
  }
  if (found > 0 || cleared > 0) {
    spdlog::info("compliance check ({}): {} job(s) in violation, {} cleared", cause, found,
                 cleared);
  }
}

absl::StatusOr<v1::Tenant> Core::GetTenant(const std::string& id) {
  absl::MutexLock lock(&mu_);
  auto it = tenants_.find(id);
  if (it == tenants_.end() || !it->second.has_updated_at()) {
    return codec::FieldError(absl::StatusCode::kNotFound, "id",
                             absl::StrCat("no profile for tenant '", id, "'"));
  }
  return it->second;
}

int Core::TenantMaxPriority(const std::string& tenant) {
  absl::MutexLock lock(&mu_);
  const v1::Tenant* t = TenantFor(tenant);
  return t != nullptr && t->max_priority() > 0 ? t->max_priority() : kDefaultTenantMaxPriority;
}

absl::Status ValidateTenantProfile(const v1::Tenant& t, const policy::CompiledPolicy& compiled) {
  if (t.has_updated_at())
    return codec::InvalidField("updated_at", "updated_at is output-only; omit it");
  if (t.registered_zones_size() > kMaxTenantZones) {
    return codec::InvalidField("registered_zones",
                               absl::StrCat("at most ", kMaxTenantZones, " registered zones"));
  }
  if (t.instruments_size() > kMaxTenantInstruments) {
    return codec::InvalidField(
        "instruments", absl::StrCat("at most ", kMaxTenantInstruments, " instruments per tenant"));
  }
  if (t.max_priority() < 0 || t.max_priority() > 1000) {
    return codec::InvalidField(
        "max_priority", absl::StrCat("max_priority must be 0-1000 (0: the default, ",
                                     kDefaultTenantMaxPriority, "), got ", t.max_priority()));
  }
  const v1::Policy& p = compiled.policy();
  // A misspelt zone would silently leave the tenant outside the lists and
  // contracts of its real zone: only zones the policy knows are accepted.
  const std::set<std::string>& known_zones = compiled.residency().known_zones();
  for (int i = 0; i < t.registered_zones_size(); ++i) {
    if (!known_zones.contains(t.registered_zones(i))) {
      return codec::InvalidField(absl::StrCat("registered_zones[", i, "]"),
                                 absl::StrCat("unknown zone '", t.registered_zones(i),
                                              "' (the policy's zones: ", Known(known_zones), ")"));
    }
  }
  for (int i = 0; i < t.instruments_size(); ++i) {
    const v1::Instrument& in = t.instruments(i);
    const std::string f = absl::StrCat("instruments[", i, "]");
    if (in.reference().size() > 256 || base::HasControlCharacters(in.reference())) {
      return codec::InvalidField(
          f + ".reference", "reference must be at most 256 characters with no control characters");
    }
    if (in.sites_size() > 64 || in.sectors_size() > 64 || in.purposes_size() > 64) {
      return codec::InvalidField(f, "at most 64 sites, sectors and purposes each");
    }
    if (std::find(p.instrument_types().begin(), p.instrument_types().end(), in.type()) ==
        p.instrument_types().end()) {
      return codec::InvalidField(f + ".type",
                                 absl::StrCat("unknown instrument '", in.type(),
                                              "' (known: ", Known(p.instrument_types()), ")"));
    }
    for (auto [name, j] : {std::pair{"from", in.from()}, std::pair{"to", in.to()}}) {
      if (j.empty() || j == "*") continue;
      if (std::find(p.jurisdictions().begin(), p.jurisdictions().end(), j) ==
          p.jurisdictions().end()) {
        return codec::InvalidField(absl::StrCat(f, ".", name),
                                   absl::StrCat("unknown jurisdiction '", j,
                                                "' (known: ", Known(p.jurisdictions()), ", *)"));
      }
    }
    absl::CivilDay from_day, until_day;
    if (!in.expires().empty() && !absl::ParseCivilTime(in.expires(), &until_day)) {
      return codec::InvalidField(f + ".expires",
                                 absl::StrCat("'", in.expires(), "' is not a date (YYYY-MM-DD)"));
    }
    if (!in.valid_from().empty() && !absl::ParseCivilTime(in.valid_from(), &from_day)) {
      return codec::InvalidField(
          f + ".valid_from", absl::StrCat("'", in.valid_from(), "' is not a date (YYYY-MM-DD)"));
    }
    if (!in.valid_from().empty() && !in.expires().empty() && until_day < from_day) {
      return codec::InvalidField(f + ".expires",
                                 absl::StrCat("expires (", in.expires(), ") is before valid_from (",
                                              in.valid_from(), ")"));
    }
    for (int k = 0; k < in.sites_size(); ++k) {
      if (compiled.FindSite(in.sites(k)) == nullptr) {
        return codec::InvalidField(absl::StrCat(f, ".sites[", k, "]"),
                                   absl::StrCat("unknown site '", in.sites(k), "'"));
      }
    }
  }
  if (!(t.weight() >= 0 && t.weight() <= 1000)) {
    return codec::InvalidField("weight",
                               absl::StrCat("weight must be 0-1000 (0: 1), got ", t.weight()));
  }
  const v1::TenantQuota& q = t.quota();
  if (q.cpus() < 0 || q.gpus() < 0 || q.memory_mb() < 0)
    return codec::InvalidField("quota", "quota limits cannot be negative (0: no limit)");
  if (q.sites_size() > kMaxJobSites)
    return codec::InvalidField("quota.sites", absl::StrCat("at most ", kMaxJobSites, " sites"));
  for (const auto& [site, r] : q.sites()) {
    const std::string f = absl::StrCat("quota.sites.", base::CleanForMessage(site));
    if (compiled.FindSite(site) == nullptr)
      return codec::InvalidField(f, absl::StrCat("unknown site '", base::CleanForMessage(site),
                                                 "' (not in the policy's catalogue)"));
    if (r.cpus() < 0 || r.gpus() < 0 || r.memory_mb() < 0)
      return codec::InvalidField(f, "quota limits cannot be negative (0: no limit)");
  }
  return absl::OkStatus();
}

absl::StatusOr<v1::Tenant> Core::PutTenant(const std::string& id, v1::Tenant t) {
  if (t.id().empty()) t.set_id(id);
  if (t.id() != id)
    return codec::InvalidField("id", absl::StrCat("body id '", base::CleanForMessage(t.id()),
                                                  "' differs from the path's '", id, "'"));
  absl::MutexLock lock(&mu_);
  if (policy_ == nullptr) return absl::UnavailableError("no placement policy loaded yet");
  if (absl::Status st = ValidateTenantProfile(t, *policy_->compiled); !st.ok()) return st;
  *t.mutable_updated_at() = base::ToProto(clock_->Now());
  if (absl::Status st = store_->PutTenant(t); !st.ok()) {
    return absl::UnavailableError(
        absl::StrCat("tenant not saved: state store write failed: ", st.message()));
  }
  tenants_[id] = t;
  spdlog::info(
      "tenant {} profile updated: zones [{}], ciio {}, {} instrument(s), quota {}, weight {}", id,
      absl::StrJoin(t.registered_zones(), ", "), t.ciio(), t.instruments_size(),
      t.has_quota() ? codec::ToJson(t.quota()) : "none", TenantWeight(t));
  RequestPass();  // waiting jobs are decided again with the new profile
  CheckComplianceLocked(absl::StrCat("tenant ", id, " profile changed"), id);
  return t;
}

absl::StatusOr<v1::NetworkView> Core::Network() {
  absl::MutexLock lock(&mu_);
  if (policy_ == nullptr) return absl::UnavailableError("no placement policy loaded yet");
  v1::NetworkView v = policy_->compiled->network().View();
  measured_.Annotate(v);
  for (const auto& [id, rec] : agents_) {
    if (rec.info.measured_rtt_ms() <= 0) continue;
    v1::MeasuredRtt* m = v.add_measured();
    m->set_agent(id);
    m->set_site(rec.info.site());
    m->set_rtt_ms(rec.info.measured_rtt_ms());
  }
  return v;
}

absl::StatusOr<std::vector<v1::Site>> Core::Sites() {
  absl::MutexLock lock(&mu_);
  if (policy_ == nullptr) return absl::UnavailableError("no placement policy loaded yet");
  const auto& s = policy_->compiled->policy().sites();
  return std::vector<v1::Site>(s.begin(), s.end());
}

absl::StatusOr<v1::Link> Core::UpdateLink(const std::string& id, const v1::LinkUpdate& update,
                                          const std::string& who) {
  v1::Policy p;
  {
    absl::MutexLock lock(&mu_);
    if (policy_ == nullptr) return absl::UnavailableError("no placement policy loaded yet");
    p = policy_->compiled->policy();
  }
  std::vector<std::string> changes;
  if (absl::Status st = policy::UpdateLink(p, id, update, &changes); !st.ok()) return st;
  v1::Link result;
  for (const v1::Link& l : p.links()) {
    if (l.id() == id) result = l;
  }
  if (changes.empty()) return result;
  auto v = ApplyPolicy(std::move(p), who, absl::StrJoin(changes, "; "));
  if (!v.ok()) return v.status();
  return result;
}

absl::StatusOr<v1::ListAuditResponse> Core::Audit(const std::string& tenant, const std::string& job,
                                                  int limit) {
  if (limit < 1 || limit > 10000) return codec::InvalidField("limit", "limit must be 1-10000");
  auto records = store_->ListAudit(tenant, job, limit);
  if (!records.ok()) return records.status();
  v1::ListAuditResponse out;
  for (auto& r : *records) *out.add_records() = std::move(r);
  return out;
}

}  // namespace portolan::scheduler
