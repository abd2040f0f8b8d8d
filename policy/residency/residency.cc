// SPDX-License-Identifier: Apache-2.0
#include "portolan/residency/residency.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace portolan::residency {
namespace {

template <typename C, typename V>
bool Contains(const C& c, const V& v) {
  return std::find(c.begin(), c.end(), v) != c.end();
}

bool HasCategory(const v1::Dataset& d, v1::Dataset::Category c) {
  if (d.categories_size() == 0) return c == v1::Dataset::general;
  return Contains(d.categories(), c);
}

// Non-sensitive PI: the `personal` category. SPI: the `sensitive_personal`
// category or a sensitive subject count.
bool CarriesPi(const v1::Dataset& d) { return HasCategory(d, v1::Dataset::personal); }
bool CarriesSpi(const v1::Dataset& d) {
  return HasCategory(d, v1::Dataset::sensitive_personal) || d.sensitive_subjects() > 0;
}
// What the dataset adds to the counts. A dataset marked sensitive_personal
// without a count is taken as one subject: SPI of even one person leaves the
// de-minimis band (regulations.md section 1).
uint32_t PiSubjects(const v1::Dataset& d) { return CarriesPi(d) ? d.subjects() : 0; }
uint32_t SpiSubjects(const v1::Dataset& d) {
  if (!CarriesSpi(d)) return 0;
  return std::max<uint32_t>(d.sensitive_subjects(), 1);
}

std::string Words(const std::vector<std::string>& v) {
  if (v.size() <= 1) return absl::StrJoin(v, "");
  return absl::StrCat(absl::StrJoin(v.begin(), v.end() - 1, ", "), " or ", v.back());
}

// 1234567 -> "1,234,567".
std::string Num(uint64_t n) {
  const std::string digits = absl::StrCat(n);
  std::string out;
  out.reserve(digits.size() + digits.size() / 3);
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out.push_back(',');
    out.push_back(digits[i]);
  }
  return out;
}

// "singapore-1 (SG)", "lingang-offshore-1 (CN offshore)".
std::string Where(const v1::Site& site) {
  return absl::StrCat(site.id(), " (", site.jurisdiction(), site.offshore() ? " offshore" : "",
                      ")");
}

bool ParseDay(const std::string& s, absl::CivilDay* day) {
  return !s.empty() && absl::ParseCivilTime(s, day);
}

void Append(std::string* s, const std::string& more) {
  if (more.empty()) return;
  if (!s->empty()) absl::StrAppend(s, "; ");
  absl::StrAppend(s, more);
}

std::string InstrumentName(const v1::Instrument& in) {
  return in.reference().empty() ? in.type() : absl::StrCat(in.type(), " ", in.reference());
}

}  // namespace

// ---- ResidencyEngine ----

// What one (job, site) pair exports, computed once for all its datasets.
struct ResidencyEngine::JobContext {
  std::map<std::string, Ledger::Totals> prior;    // origin -> ledger this year
  std::map<std::string, Ledger::Totals> job_add;  // origin -> this job, not yet counted
  bool exports_important = false;                 // the job exports important data here
};

ResidencyEngine::ResidencyEngine(const v1::Policy* policy) : policy_(policy) {
  for (const v1::Zone& z : policy_->zones()) {
    zone_parent_[z.id()] = z.parent();
    known_zones_.insert(z.id());
  }
  for (const v1::Site& site : policy_->sites())
    known_zones_.insert(site.zones().begin(), site.zones().end());
  for (const v1::NegativeList& l : policy_->negative_lists())
    known_zones_.insert(l.zones().begin(), l.zones().end());
  for (const v1::InstrumentRule& r : policy_->instrument_rules()) instrument_rules_[r.type()] = &r;
  for (const v1::NegativeList& l : policy_->negative_lists()) lists_[l.id()] = &l;
}

bool ResidencyEngine::IsExport(const v1::Dataset& dataset, const v1::Site& site) {
  if (dataset.origin().empty()) return false;
  if (site.jurisdiction() != dataset.origin()) return true;
  // Domestic data entering an offshore data space leaves the domestic regime.
  return site.offshore();
}

std::vector<std::string> ResidencyEngine::ZoneAndAncestors(const std::string& zone) const {
  std::vector<std::string> out{zone};
  // Bounded by the number of zones: validation refuses cycles, this guards anyway.
  for (size_t i = 0; i <= zone_parent_.size(); ++i) {
    auto it = zone_parent_.find(out.back());
    if (it == zone_parent_.end() || it->second.empty() || Contains(out, it->second)) break;
    out.push_back(it->second);
  }
  return out;
}

bool ResidencyEngine::TenantInZone(const v1::Tenant& tenant, const std::string& zone) const {
  for (const std::string& z : tenant.registered_zones()) {
    if (Contains(ZoneAndAncestors(z), zone)) return true;
  }
  return false;
}

bool ResidencyEngine::ListInForce(const v1::NegativeList& list, absl::CivilDay today) const {
  absl::CivilDay day;
  if (ParseDay(list.valid_from(), &day) && today < day) return false;
  if (ParseDay(list.expires(), &day) && today > day) return false;
  if (!list.superseded_by().empty()) {
    auto it = lists_.find(list.superseded_by());
    // Superseded from the day its successor takes effect.
    if (it != lists_.end() && !(ParseDay(it->second->valid_from(), &day) && today < day))
      return false;
  }
  return true;
}

bool ResidencyEngine::Counts(const v1::Compliance& c) const {
  if (!c.export_() || (c.subjects() == 0 && c.sensitive_subjects() == 0)) return false;
  if (!c.exempt()) return true;
  const v1::LedgerPolicy& lp = policy_->ledger();
  return !lp.has_count_exempt_transfers() || lp.count_exempt_transfers();
}

void ResidencyEngine::Require(const std::vector<std::string>& types, const v1::Dataset& d,
                              const v1::Site& site, const v1::Tenant& tenant, const JobContext& ctx,
                              absl::CivilDay today, DatasetVerdict* v) const {
  const std::string& to = site.jurisdiction();
  std::vector<std::string> usable, notes, excluded;
  for (const std::string& type : types) {
    auto it = instrument_rules_.find(type);
    if (it != instrument_rules_.end()) {
      const v1::InstrumentRule& ir = *it->second;
      std::string why;
      if (ir.not_for_ciio() && tenant.ciio()) {
        why = "not open to a critical information infrastructure operator";
      } else if (ir.not_with_important_data() && ctx.exports_important) {
        why = "cannot carry the important data this job exports";
      } else if (ir.destinations_size() && !Contains(ir.destinations(), to)) {
        why = absl::StrCat("only for transfers to ", absl::StrJoin(ir.destinations(), ", "));
      } else if (ir.tenant_zones_size()) {
        bool in = false;
        for (const std::string& z : ir.tenant_zones()) in = in || TenantInZone(tenant, z);
        if (!in)
          why = absl::StrCat("only for tenants registered in ",
                             absl::StrJoin(ir.tenant_zones(), ", "));
      }
      if (!why.empty()) {
        // Said only where it explains something: the tenant holds one.
        const bool holds = std::any_of(tenant.instruments().begin(), tenant.instruments().end(),
                                       [&](const v1::Instrument& in) { return in.type() == type; });
        if (holds) notes.push_back(absl::StrCat(type, " is ", why));
        excluded.push_back(absl::StrCat(type, " is ", why));
        continue;
      }
    }
    usable.push_back(type);
  }
  v->requires_any = usable;
  for (const std::string& type : usable) {
    auto ir = instrument_rules_.find(type);
    for (const v1::Instrument& in : tenant.instruments()) {
      if (in.type() != type) continue;
      const std::string name = InstrumentName(in);
      absl::CivilDay day;
      std::string why;
      if (!in.from().empty() && in.from() != "*" && in.from() != d.origin()) {
        why = absl::StrCat("covers ", in.from(), " data only");
      } else if (!in.to().empty() && in.to() != "*" && in.to() != to) {
        why = absl::StrCat("covers transfers to ", in.to(), " only");
      } else if (ir != instrument_rules_.end() && ir->second->names_destination() &&
                 (in.to().empty() || in.to() == "*")) {
        why = "must name its destination (to is *)";
      } else if (ParseDay(in.valid_from(), &day) && today < day) {
        why = absl::StrCat("is not valid until ", in.valid_from());
      } else if (ParseDay(in.expires(), &day) && today > day) {
        why = absl::StrCat("expired on ", in.expires());
      } else if (in.sites_size() && !Contains(in.sites(), site.id())) {
        why = absl::StrCat("covers recipient site(s) ", absl::StrJoin(in.sites(), ", "), " only");
      } else if (in.sectors_size() && !Contains(in.sectors(), d.sector())) {
        why = absl::StrCat("covers sector(s) ", absl::StrJoin(in.sectors(), ", "), " only");
      } else if (in.purposes_size() && !Contains(in.purposes(), d.purpose())) {
        why = absl::StrCat("covers purpose(s) ", absl::StrJoin(in.purposes(), ", "), " only");
      }
      if (why.empty()) {
        v->allowed = true;
        v->instrument = in.type();
        v->instrument_ref = in.reference();
        Append(&v->basis, absl::StrCat("under ", name));
        return;
      }
      notes.push_back(absl::StrCat(name, " ", why));
    }
  }
  v->allowed = false;
  std::string holds;
  if (usable.empty()) {
    holds = absl::StrCat("none is open to tenant ", tenant.id(), " (",
                         absl::StrJoin(excluded, "; "), ")");
  } else {
    holds = absl::StrCat("tenant ", tenant.id(), " holds none valid");
    if (!notes.empty()) absl::StrAppend(&holds, " (", absl::StrJoin(notes, "; "), ")");
  }
  v->reason = absl::StrCat("needs ", Words(usable.empty() ? types : usable), " for ", d.origin(),
                           " data going to ", Where(site), "; ", holds);
}

DatasetVerdict ResidencyEngine::Rules(int from, const v1::Dataset& d, const v1::Site& site,
                                      const v1::Tenant& tenant, const JobContext& ctx,
                                      absl::CivilDay today) const {
  DatasetVerdict v;
  v.is_export = IsExport(d, site);
  const std::string& to = site.jurisdiction();

  // Cumulative counts this year of the dataset's origin, this job included.
  Ledger::Totals prior, job;
  if (auto it = ctx.prior.find(d.origin()); it != ctx.prior.end()) prior = it->second;
  if (auto it = ctx.job_add.find(d.origin()); it != ctx.job_add.end()) job = it->second;
  const bool pi = v.is_export && CarriesPi(d), spi = v.is_export && CarriesSpi(d);
  const uint64_t subjects = pi ? prior.subjects + job.subjects : 0;
  const uint64_t sensitive = spi ? prior.sensitive_subjects + job.sensitive_subjects : 0;
  auto arithmetic = [&](const char* what, uint64_t before, uint64_t now, const char* cmp,
                        uint64_t bound) {
    return absl::StrCat(d.origin(), " ", what, ": this year ", Num(before), " + this job ",
                        Num(now), " = ", Num(before + now), " ", cmp, " ", Num(bound));
  };

  for (int i = from; i < policy_->rules_size(); ++i) {
    const v1::Rule& r = policy_->rules(i);
    const v1::Condition& c = r.when();
    if (c.origin_size() && !Contains(c.origin(), d.origin())) continue;
    if (c.destination_size() && !Contains(c.destination(), to)) continue;
    if (c.destination_zones_size()) {
      bool any = false;
      for (const auto& sz : site.zones()) {
        for (const auto& z : ZoneAndAncestors(sz)) any = any || Contains(c.destination_zones(), z);
      }
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
      for (const auto& z : c.tenant_zones()) any = any || TenantInZone(tenant, z);
      if (!any) continue;
    }
    if (c.has_tenant_ciio() && c.tenant_ciio() != tenant.ciio()) continue;
    if (c.purposes_size() && !Contains(c.purposes(), d.purpose())) continue;

    if (r.effect() == v1::Rule::apply_negative_lists) {
      // Lists bind non-CIIO tenants registered in their zones, inside the
      // sectors they cover; elsewhere the next rules decide.
      if (tenant.ciio() || d.sector().empty()) continue;
      const v1::NegativeList* list = nullptr;
      for (const v1::NegativeList& l : policy_->negative_lists()) {
        if (!Contains(l.sectors(), d.sector()) || !ListInForce(l, today)) continue;
        bool binds = false;
        for (const std::string& z : l.zones()) binds = binds || TenantInZone(tenant, z);
        if (binds) {
          list = &l;
          break;
        }
      }
      if (list == nullptr) continue;
      const v1::NegativeListEntry* entry = nullptr;
      for (const v1::NegativeListEntry& e : list->entries()) {
        if (!e.sector().empty() && e.sector() != d.sector()) continue;
        if (e.category() != v1::Dataset::category_unspecified && !HasCategory(d, e.category()))
          continue;
        if (e.subjects_at_least() && subjects < e.subjects_at_least()) continue;
        if (e.sensitive_subjects_at_least() && sensitive < e.sensitive_subjects_at_least())
          continue;
        entry = &e;
        break;
      }
      DatasetVerdict listed;
      listed.is_export = v.is_export;
      listed.rule = list->id();
      const std::string which = absl::StrCat(list->name().empty() ? list->id() : list->name(),
                                             " covers sector ", d.sector());
      if (entry == nullptr) {
        listed.allowed = true;
        listed.basis = absl::StrCat(which, " and does not list this data");
      } else {
        std::vector<std::string> types(entry->require_any().begin(), entry->require_any().end());
        listed.basis =
            absl::StrCat(which, " and lists ", entry->sector().empty() ? "" : entry->sector(),
                         entry->category() == v1::Dataset::category_unspecified
                             ? ""
                             : absl::StrCat(" ", v1::Dataset::Category_Name(entry->category())),
                         entry->field().empty() ? "" : absl::StrCat(" (", entry->field(), ")"));
        Require(types, d, site, tenant, ctx, today, &listed);
      }
      // A list never demands more than the national rules alone.
      DatasetVerdict national = Rules(i + 1, d, site, tenant, ctx, today);
      auto free = [](const DatasetVerdict& x) { return x.allowed && x.instrument.empty(); };
      if (national.allowed && (free(national) || !listed.allowed)) {
        Append(&national.basis,
               absl::StrCat(listed.basis, listed.allowed
                                              ? "; the national rules let it out as well"
                                              : "; a list never demands more than the national "
                                                "rules, which let it out"));
        return national;
      }
      if (listed.allowed) {
        Append(&listed.basis, absl::StrCat("the list relaxes rule ", national.rule));
        return listed;
      }
      // Both refuse: either route's instrument would do.
      for (const std::string& t : national.requires_any) {
        if (!Contains(listed.requires_any, t)) listed.requires_any.push_back(t);
      }
      listed.reason = absl::StrCat(d.id(), ": ", listed.basis, " — ", listed.reason,
                                   "; the national rules alone (rule ", national.rule, ") ",
                                   national.requires_any.empty()
                                       ? std::string("refuse it too")
                                       : absl::StrCat("would take ", Words(national.requires_any)),
                                   " (rule ", list->id(), ")");
      return listed;
    }

    // First match decides.
    v.rule = r.id();
    v.exempt = r.exempt();
    if (r.exempt()) Append(&v.basis, absl::StrCat("exempt purpose: ", d.purpose()));
    const std::string what = r.description().empty() ? r.id() : r.description();
    // The arithmetic, once per count the rule bounds: "CN non-sensitive PI
    // subjects: this year 60,000 + this job 60,000 = 120,000 >= 100,000".
    auto bounds = [&](const char* what, bool carries, uint64_t before, uint64_t now,
                      uint32_t at_least, bool has_below, uint32_t below) {
      if (!carries || (at_least == 0 && !has_below)) return;
      std::string s =
          arithmetic(what, before, now, at_least > 0 ? ">=" : "<", at_least > 0 ? at_least : below);
      if (at_least > 0 && has_below) absl::StrAppend(&s, " and < ", Num(below));
      Append(&v.basis, s);
    };
    bounds("non-sensitive PI subjects", pi, prior.subjects, job.subjects, c.subjects_at_least(),
           c.has_subjects_below(), c.subjects_below());
    bounds("SPI subjects", spi, prior.sensitive_subjects, job.sensitive_subjects,
           c.sensitive_subjects_at_least(), c.has_sensitive_subjects_below(),
           c.sensitive_subjects_below());
    switch (r.effect()) {
      case v1::Rule::allow:
        v.allowed = true;
        return v;
      case v1::Rule::deny:
        v.reason = absl::StrCat(d.id(), ": ", what, " — it may not go to ", Where(site), " (rule ",
                                r.id(), ")");
        return v;
      case v1::Rule::require: {
        std::vector<std::string> types(r.require_any().begin(), r.require_any().end());
        Require(types, d, site, tenant, ctx, today, &v);
        if (!v.allowed) {
          v.reason = absl::StrCat(d.id(), ": ", what, " — ", v.reason,
                                  v.basis.empty() ? "" : absl::StrCat(" [", v.basis, "]"),
                                  " (rule ", r.id(), ")");
        }
        return v;
      }
      default:
        continue;  // validation refuses other effects
    }
  }
  v.rule = "default";
  if (policy_->default_effect() == v1::Rule::allow) {
    v.allowed = true;
    return v;
  }
  v.reason = absl::StrCat(d.id(), ": no rule of the policy allows ",
                          d.origin().empty() ? "this" : d.origin(), " data at ", Where(site),
                          "; the policy's default is deny");
  return v;
}

namespace {
template <typename Datasets, typename Ctx>
void FillContext(const Datasets& datasets, const v1::Site& site, const v1::Tenant& tenant,
                 const Ledger& ledger, int year, Ctx* ctx) {
  std::set<std::string> seen;
  for (const v1::Dataset& d : datasets) {
    if (!ResidencyEngine::IsExport(d, site)) continue;
    if (HasCategory(d, v1::Dataset::important)) ctx->exports_important = true;
    if (!CarriesPi(d) && !CarriesSpi(d)) continue;
    if (!ctx->prior.contains(d.origin()))
      ctx->prior[d.origin()] = ledger.Get(tenant.id(), year, d.origin());
    if (!seen.insert(d.id()).second || ledger.Counted(tenant.id(), year, d.origin(), d.id()))
      continue;
    Ledger::Totals& t = ctx->job_add[d.origin()];
    t.subjects += PiSubjects(d);
    t.sensitive_subjects += SpiSubjects(d);
  }
}
}  // namespace

DatasetVerdict ResidencyEngine::Evaluate(const v1::Dataset& dataset, const v1::Site& site,
                                         const v1::Tenant& tenant, const Ledger& ledger,
                                         absl::CivilDay today) const {
  JobContext ctx;
  FillContext(std::vector<v1::Dataset>{dataset}, site, tenant, ledger,
              static_cast<int>(today.year()), &ctx);
  return Rules(0, dataset, site, tenant, ctx, today);
}

v1::ResidencyVerdict ResidencyEngine::EvaluateJob(const v1::Job& job, const v1::Site& site,
                                                  const v1::Tenant& tenant, const Ledger& ledger,
                                                  absl::CivilDay today) const {
  JobContext ctx;
  FillContext(job.datasets(), site, tenant, ledger, static_cast<int>(today.year()), &ctx);
  v1::ResidencyVerdict out;
  out.set_allowed(true);
  std::vector<std::string> reasons;
  for (const v1::Dataset& d : job.datasets()) {
    DatasetVerdict v = Rules(0, d, site, tenant, ctx, today);
    v1::Compliance* c = out.add_datasets();
    c->set_dataset(d.id());
    c->set_rule(v.rule);
    c->set_instrument(v.instrument);
    c->set_instrument_ref(v.instrument_ref);
    c->set_export_(v.is_export);
    c->set_exempt(v.exempt);
    c->set_basis(v.basis);
    c->set_origin(d.origin());
    if (v.is_export) {
      c->set_subjects(PiSubjects(d));
      c->set_sensitive_subjects(SpiSubjects(d));
    }
    if (!v.allowed) {
      c->set_refused(true);
      c->set_reason(v.reason);
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

// ---- migration ----

std::vector<std::string> MigratePolicy(v1::Policy* policy) {
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
  std::vector<std::string> changes;
  auto old_form = [](const v1::Rule& r) {
    return r.effect() == v1::Rule::require_listed || r.when().has_negative_listed();
  };
  google::protobuf::RepeatedPtrField<v1::Rule> rules;
  bool placed = false;
  const bool any_old = std::any_of(policy->rules().begin(), policy->rules().end(), old_form);
  for (v1::Rule& r : *policy->mutable_rules()) {
    if (!any_old) break;
    if (!old_form(r)) {
      *rules.Add() = std::move(r);
      continue;
    }
    changes.push_back(absl::StrCat("rule ", r.id(), " (negative_listed) removed"));
    if (placed) continue;
    placed = true;
    v1::Rule* n = rules.Add();
    n->set_id("cn-negative-lists");
    n->set_description(
        "the negative lists binding the tenant decide for the sectors they cover, never more "
        "strictly than the national rules");
    n->set_source("S23,S24");
    n->mutable_when()->mutable_origin()->CopyFrom(r.when().origin());
    n->mutable_when()->set_export_(true);
    n->set_effect(v1::Rule::apply_negative_lists);
    changes.push_back(absl::StrCat("rule cn-negative-lists (apply_negative_lists) added at ",
                                   r.id(), "'s place"));
  }
  if (any_old) policy->mutable_rules()->Swap(&rules);
  for (v1::NegativeList& l : *policy->mutable_negative_lists()) {
    if (l.sectors_size() > 0) continue;
    std::set<std::string> sectors;
    for (const auto& e : l.entries()) {
      if (!e.sector().empty()) sectors.insert(e.sector());
    }
    for (const auto& s : sectors) l.add_sectors(s);
    changes.push_back(absl::StrCat("negative list ", l.id(), ": sectors taken from its entries (",
                                   absl::StrJoin(sectors, ", "), ")"));
  }
  return changes;
#pragma GCC diagnostic pop
}

}  // namespace portolan::residency
