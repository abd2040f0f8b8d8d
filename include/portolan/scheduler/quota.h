// SPDX-License-Identifier: Apache-2.0
#pragma once

// Tenant quotas: what each tenant's placed and running jobs hold (their
// requested resources, in total and per site), and the check a waiting job
// passes before it is decided. Part of Core and guarded by Core's mutex;
// not thread-safe by itself.
#include <map>
#include <string>
#include <string_view>

#include "absl/container/flat_hash_map.h"
#include "portolan/v1/job.pb.h"
#include "portolan/v1/policy.pb.h"

namespace portolan::scheduler {

struct TenantHolding {
  v1::Resources total;
  std::map<std::string, v1::Resources> sites;
  uint32_t jobs = 0;
};

class UsageTable {
 public:
  // `job` of `tenant` holds `r` at `site` (placed, running, or recovered).
  // Idempotent: holding again replaces what the job held before.
  void Hold(const std::string& job, const std::string& tenant, const std::string& site,
            const v1::Resources& r);
  // The job holds nothing any more (no-op when it held nothing).
  void Drop(const std::string& job);
  // What `tenant` holds (empty when nothing).
  const TenantHolding& Of(const std::string& tenant) const;
  const absl::flat_hash_map<std::string, TenantHolding>& tenants() const { return tenants_; }

 private:
  struct Held {
    std::string tenant, site;
    v1::Resources r;
  };
  void Apply(const Held& h, int sign);
  absl::flat_hash_map<std::string, Held> jobs_;
  absl::flat_hash_map<std::string, TenantHolding> tenants_;
};

// Whether a job asking `ask` may be decided now given what its tenant holds.
// A job over quota waits rather than becoming unschedulable, even when it
// alone asks more than a limit: an admin may raise the quota (PUT
// /v1/tenants), and the reason says which limit and by how much.
struct QuotaVerdict {
  bool ok = true;  // within every tenant-wide limit (sites in closed_sites aside)
  // Why not: "quota: tenant acme uses 96 of 96 cpus (this job asks 4)".
  std::string reason;
  // Sites whose per-site limit this job would pass, site -> reason; the job
  // may still go elsewhere (placement::DecisionInput::quota_closed).
  std::map<std::string, std::string> closed_sites;
};
QuotaVerdict CheckQuota(const v1::Tenant& tenant, const TenantHolding& holding,
                        const v1::Resources& ask);

// Whether a waiting job's reason is a quota's.
bool IsQuotaReason(std::string_view reason);

// The weight a tenant's dominant share is divided by in fair share (1 when
// the profile says 0).
double TenantWeight(const v1::Tenant& tenant);

}  // namespace portolan::scheduler
