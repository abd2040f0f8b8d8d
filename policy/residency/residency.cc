#include "portolan/residency.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace portolan::policy {
namespace {

template <typename C, typename V>
bool Contains(const C& c, const V& v) {
  return std::find(c.begin(), c.end(), v) != c.end();
}

bool HasCategory(const v1::Dataset& d, v1::Dataset::Category c) {
  if (d.categories_size() == 0) return c == v1::Dataset::general;
  return Contains(d.categories(), c);
}

bool Personal(const v1::Dataset& d) {
  return HasCategory(d, v1::Dataset::personal) || HasCategory(d, v1::Dataset::sensitive_personal);
}

std::string Words(const std::vector<std::string>& v) {
  if (v.size() <= 1) return absl::StrJoin(v, "");
  return absl::StrCat(absl::StrJoin(v.begin(), v.end() - 1, ", "), " or ", v.back());
}

// "singapore-1 (SG)", "lingang-offshore-1 (CN offshore)".
std::string Where(const v1::Site& site) {
  return absl::StrCat(site.id(), " (", site.jurisdiction(), site.offshore() ? " offshore" : "",
                      ")");
}

}  // namespace

// ---- Ledger ----

Ledger::Totals Ledger::Get(const std::string& tenant, int year, const std::string& jurisdiction,
                           const std::string& dataset) const {
  std::lock_guard<std::mutex> lock(mu_);
  Totals t;
  Key k{tenant, year, jurisdiction};
  auto it = entries_.find(k);
  if (it == entries_.end()) return t;
  t.subjects = it->second.subjects();
  t.sensitive_subjects = it->second.sensitive_subjects();
  auto c = counted_.find(k);
  t.counted = c != counted_.end() && c->second.contains(dataset);
  return t;
}

bool Ledger::Record(const std::string& tenant, int year, const std::string& jurisdiction,
                    const v1::Dataset& dataset) {
  std::lock_guard<std::mutex> lock(mu_);
  Key k{tenant, year, jurisdiction};
  if (!counted_[k].insert(dataset.id()).second) return false;
  v1::LedgerEntry& e = entries_[k];
  e.set_tenant(tenant);
  e.set_year(year);
  e.set_jurisdiction(jurisdiction);
  e.set_subjects(e.subjects() + dataset.subjects());
  e.set_sensitive_subjects(e.sensitive_subjects() + dataset.sensitive_subjects());
  e.add_datasets(dataset.id());
  return true;
}

void Ledger::Load(const v1::LedgerEntry& entry) {
  std::lock_guard<std::mutex> lock(mu_);
  Key k{entry.tenant(), entry.year(), entry.jurisdiction()};
  entries_[k] = entry;
  auto& c = counted_[k];
  c.insert(entry.datasets().begin(), entry.datasets().end());
}

v1::LedgerEntry Ledger::Entry(const std::string& tenant, int year,
                              const std::string& jurisdiction) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = entries_.find({tenant, year, jurisdiction});
  if (it != entries_.end()) return it->second;
  v1::LedgerEntry e;
  e.set_tenant(tenant);
  e.set_year(year);
  e.set_jurisdiction(jurisdiction);
  return e;
}

// ---- ResidencyEngine ----

bool ResidencyEngine::IsExport(const v1::Dataset& dataset, const v1::Site& site) {
  if (dataset.origin().empty()) return false;
  if (site.jurisdiction() != dataset.origin()) return true;
  // Domestic data entering an offshore data space leaves the domestic regime.
  return site.offshore();
}

const v1::Instrument* ResidencyEngine::FindInstrument(const v1::Tenant& tenant,
                                                      const std::vector<std::string>& types,
                                                      const std::string& origin,
                                                      const std::string& to, absl::CivilDay today) {
  for (const std::string& type : types) {
    for (const v1::Instrument& in : tenant.instruments()) {
      if (in.type() != type) continue;
      if (!in.from().empty() && in.from() != "*" && in.from() != origin) continue;
      if (!in.to().empty() && in.to() != "*" && in.to() != to) continue;
      if (!in.expires().empty()) {
        absl::CivilDay until;
        if (!absl::ParseCivilTime(in.expires(), &until) || until < today) continue;
      }
      return &in;
    }
  }
  return nullptr;
}

const v1::NegativeListEntry* ResidencyEngine::NegativeListMatch(const v1::Dataset& d,
                                                                const v1::Tenant& tenant) const {
  for (const v1::NegativeList& list : policy_->negative_lists()) {
    bool binds = false;
    for (const std::string& z : list.zones())
      binds = binds || Contains(tenant.registered_zones(), z);
    if (!binds) continue;
    for (const v1::NegativeListEntry& e : list.entries()) {
      if (!e.sector().empty() && e.sector() != d.sector()) continue;
      if (e.category() != v1::Dataset::category_unspecified && !HasCategory(d, e.category()))
        continue;
      return &e;
    }
  }
  return nullptr;
}

DatasetVerdict ResidencyEngine::Evaluate(const v1::Dataset& d, const v1::Site& site,
                                         const v1::Tenant& tenant, const Ledger& ledger,
                                         absl::CivilDay today) const {
  DatasetVerdict v;
  v.is_export = IsExport(d, site);
  const std::string& to = site.jurisdiction();

  // Cumulative volumes this year towards the destination, this dataset included once.
  uint64_t subjects = d.subjects();
  uint64_t sensitive = d.sensitive_subjects();
  if (v.is_export && Personal(d)) {
    Ledger::Totals t = ledger.Get(tenant.id(), static_cast<int>(today.year()), to, d.id());
    subjects = t.subjects + (t.counted ? 0 : d.subjects());
    sensitive = t.sensitive_subjects + (t.counted ? 0 : d.sensitive_subjects());
  }
  const v1::NegativeListEntry* listed = nullptr;
  bool listed_checked = false;

  for (const v1::Rule& r : policy_->rules()) {
    const v1::Condition& c = r.when();
    if (c.origin_size() && !Contains(c.origin(), d.origin())) continue;
    if (c.destination_size() && !Contains(c.destination(), to)) continue;
    if (c.destination_zones_size()) {
      bool any = false;
      for (const auto& z : c.destination_zones()) any = any || Contains(site.zones(), z);
      if (!any) continue;
    }
    if (c.has_destination_offshore() && c.destination_offshore() != site.offshore()) continue;
    if (c.has_export_() && c.export_() != v.is_export) continue;
    if (c.categories_size()) {
      bool any = false;
      for (int k = 0; k < c.categories_size(); ++k) any = any || HasCategory(d, c.categories(k));
      if (!any) continue;
    }
    if (subjects < c.subjects_at_least()) continue;
    if (c.has_subjects_below() && subjects >= c.subjects_below()) continue;
    if (sensitive < c.sensitive_subjects_at_least()) continue;
    if (c.has_sensitive_subjects_below() && sensitive >= c.sensitive_subjects_below()) continue;
    if (c.sectors_size() && !Contains(c.sectors(), d.sector())) continue;
    if (c.tenant_zones_size()) {
      bool any = false;
      for (const auto& z : c.tenant_zones()) any = any || Contains(tenant.registered_zones(), z);
      if (!any) continue;
    }
    if (c.has_tenant_ciio() && c.tenant_ciio() != tenant.ciio()) continue;
    if (c.purposes_size() && !Contains(c.purposes(), d.purpose())) continue;
    if (c.has_negative_listed()) {
      if (!listed_checked) {
        listed = NegativeListMatch(d, tenant);
        listed_checked = true;
      }
      if (c.negative_listed() != (listed != nullptr)) continue;
    }

    // First match decides.
    v.rule = r.id();
    const std::string what = r.description().empty() ? r.id() : r.description();
    switch (r.effect()) {
      case v1::Rule::allow:
        v.allowed = true;
        return v;
      case v1::Rule::deny:
        v.reason = absl::StrCat(d.id(), ": ", what, " — it may not go to ", Where(site), " (rule ",
                                r.id(), ")");
        return v;
      case v1::Rule::require:
      case v1::Rule::require_listed: {
        std::vector<std::string> types;
        if (r.effect() == v1::Rule::require) {
          types.assign(r.require_any().begin(), r.require_any().end());
        } else if (listed != nullptr) {
          types.assign(listed->require_any().begin(), listed->require_any().end());
        }
        v.requires_any = types;
        const v1::Instrument* in = FindInstrument(tenant, types, d.origin(), to, today);
        if (in != nullptr) {
          v.allowed = true;
          v.instrument = in->type();
          return v;
        }
        v.reason = absl::StrCat(d.id(), ": ", what, " — needs ", Words(types), " for ", d.origin(),
                                " data going to ", Where(site), "; tenant ", tenant.id(),
                                " holds none valid (rule ", r.id(), ")");
        return v;
      }
      default:
        break;
    }
  }
  if (policy_->default_effect() == v1::Rule::allow) {
    v.allowed = true;
    v.rule = "default";
    return v;
  }
  v.rule = "default";
  v.reason = absl::StrCat(d.id(), ": no rule of the policy allows ",
                          d.origin().empty() ? "this" : d.origin(), " data at ", Where(site),
                          "; the policy's default is deny");
  return v;
}

v1::ResidencyVerdict ResidencyEngine::EvaluateJob(const v1::Job& job, const v1::Site& site,
                                                  const v1::Tenant& tenant, const Ledger& ledger,
                                                  absl::CivilDay today) const {
  v1::ResidencyVerdict out;
  out.set_allowed(true);
  std::vector<std::string> reasons;
  for (const v1::Dataset& d : job.datasets()) {
    DatasetVerdict v = Evaluate(d, site, tenant, ledger, today);
    v1::Compliance* c = out.add_datasets();
    c->set_dataset(d.id());
    c->set_rule(v.rule);
    c->set_instrument(v.instrument);
    c->set_export_(v.is_export);
    if (!v.allowed) {
      if (out.allowed()) {
        out.set_rule(v.rule);
        for (const auto& r : v.requires_any) out.add_requires_any(r);
      }
      out.set_allowed(false);
      reasons.push_back(v.reason);
    } else if (out.allowed() && out.rule().empty()) {
      out.set_rule(v.rule);
    }
  }
  out.set_reason(absl::StrJoin(reasons, "; "));
  return out;
}

}  // namespace portolan::policy
