// SPDX-License-Identifier: Apache-2.0
#include "portolan/scheduler/quota.h"

#include <array>

#include "absl/strings/str_cat.h"

namespace portolan::scheduler {
namespace {

void Add(v1::Resources* to, const v1::Resources& r, int sign) {
  to->set_cpus(to->cpus() + sign * r.cpus());
  to->set_memory_mb(to->memory_mb() + sign * r.memory_mb());
  to->set_gpus(to->gpus() + sign * r.gpus());
}

struct Dimension {
  const char* name;
  int32_t (v1::Resources::*get)() const;
};
constexpr std::array<Dimension, 3> kDimensions{{{"cpus", &v1::Resources::cpus},
                                                {"gpus", &v1::Resources::gpus},
                                                {"memory_mb", &v1::Resources::memory_mb}}};

// Whether `held` + `ask` stays within `limit`; if not, the sentence for the
// first limit passed (`where`: "" or " at site x").
bool Within(const std::string& tenant, const v1::Resources& limit, const v1::Resources& held,
            const v1::Resources& ask, const std::string& where, std::string* reason) {
  for (const Dimension& d : kDimensions) {
    const int64_t cap = (limit.*d.get)();
    const int64_t want = (ask.*d.get)();
    if (cap <= 0 || want == 0) continue;
    if (want > cap) {
      *reason = absl::StrCat("quota: the job asks ", want, " ", d.name, ", more than tenant ",
                             tenant, "'s quota of ", cap, where);
      return false;
    }
    const int64_t used = (held.*d.get)();
    if (used + want > cap) {
      *reason = absl::StrCat("quota: tenant ", tenant, " uses ", used, " of ", cap, " ", d.name,
                             where, " (this job asks ", want, ")");
      return false;
    }
  }
  return true;
}

}  // namespace

void UsageTable::Apply(const Held& h, int sign) {
  TenantHolding& t = tenants_[h.tenant];
  Add(&t.total, h.r, sign);
  Add(&t.sites[h.site], h.r, sign);
  t.jobs += sign;
  if (t.jobs == 0) tenants_.erase(h.tenant);
}

void UsageTable::Hold(const std::string& job, const std::string& tenant, const std::string& site,
                      const v1::Resources& r) {
  Drop(job);
  Held h{tenant, site, r};
  Apply(h, +1);
  jobs_.emplace(job, std::move(h));
}

void UsageTable::Drop(const std::string& job) {
  auto it = jobs_.find(job);
  if (it == jobs_.end()) return;
  Apply(it->second, -1);
  jobs_.erase(it);
}

const TenantHolding& UsageTable::Of(const std::string& tenant) const {
  static const TenantHolding kNothing;
  auto it = tenants_.find(tenant);
  return it == tenants_.end() ? kNothing : it->second;
}

QuotaVerdict CheckQuota(const v1::Tenant& tenant, const TenantHolding& holding,
                        const v1::Resources& ask) {
  QuotaVerdict v;
  if (!tenant.has_quota()) return v;
  const v1::TenantQuota& q = tenant.quota();
  v1::Resources total;
  total.set_cpus(q.cpus());
  total.set_gpus(q.gpus());
  total.set_memory_mb(q.memory_mb());
  v.ok = Within(tenant.id(), total, holding.total, ask, "", &v.reason);
  if (!v.ok) return v;
  static const v1::Resources kNone;
  for (const auto& [site, limit] : q.sites()) {
    auto held = holding.sites.find(site);
    std::string why;
    if (!Within(tenant.id(), limit, held == holding.sites.end() ? kNone : held->second, ask,
                absl::StrCat(" at site ", site), &why)) {
      v.closed_sites.emplace(site, std::move(why));
    }
  }
  return v;
}

bool IsQuotaReason(std::string_view reason) {
  return reason.starts_with("quota:") || reason.starts_with("waiting for quota");
}

double TenantWeight(const v1::Tenant& tenant) {
  return tenant.weight() > 0 ? tenant.weight() : 1.0;
}

}  // namespace portolan::scheduler
