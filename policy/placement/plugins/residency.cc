// The residency plugin: a site filter over the cross-border rules, and the
// Reserve step that counts a committed placement's exports in the tenant's
// ledger and leaves their audit records for the scheduler to store.
#include "absl/strings/str_cat.h"
#include "absl/time/civil_time.h"
#include "policy/placement/plugins/plugins.h"
#include "portolan/base/strings.h"

namespace portolan::placement {
namespace {

class Residency : public SiteFilterPlugin, public ReservePlugin {
 public:
  std::string_view Name() const override { return "residency"; }

  // Every dataset must be allowed at the site by the residency rules.
  FilterResult FilterSite(CycleState&, const DecisionInput& in, const v1::Site& site,
                          v1::SiteDecision& out) const override {
    static const v1::Tenant kNoTenant;
    *out.mutable_residency() = in.policy->residency().EvaluateJob(
        *in.job, site, in.tenant ? *in.tenant : kNoTenant, *in.ledger, in.today);
    if (out.residency().allowed()) return FilterResult::Pass();
    return FilterResult::Reject("residency", out.residency().reason());
  }

  // Each export of the winning placement: an audit record, and the dataset
  // counted once in the ledger of (tenant, origin, year) over every
  // destination, when the policy counts it (regulations.md, Counting).
  absl::Status Reserve(const DecisionInput& in, const v1::Decision& d,
                       ReserveContext& ctx) const override {
    const v1::Job& job = *in.job;
    const int year = static_cast<int>(absl::ToCivilDay(ctx.now, absl::UTCTimeZone()).year());
    const v1::Site* site = in.policy->FindSite(d.placement().site());
    for (const v1::Compliance& c : d.placement().compliance()) {
      if (!c.export_()) continue;
      const v1::Dataset* ds = nullptr;
      for (const v1::Dataset& x : job.datasets()) {
        if (x.id() == c.dataset()) ds = &x;
      }
      if (ds == nullptr) continue;
      v1::AuditRecord& rec = ctx.audit.emplace_back();
      rec.set_id(base::NewId("audit"));
      *rec.mutable_time() = base::ToProto(ctx.now);
      rec.set_job(job.id());
      rec.set_tenant(job.tenant());
      rec.set_dataset(ds->id());
      rec.set_origin(ds->origin());
      rec.set_from_site(ds->location());
      rec.set_to_site(d.placement().site());
      rec.set_to_jurisdiction(site ? site->jurisdiction() : "");
      rec.set_rule(c.rule());
      rec.set_instrument(c.instrument());
      rec.set_subjects(c.subjects());
      rec.set_sensitive_subjects(c.sensitive_subjects());
      if (ctx.ledger != nullptr && in.policy->residency().Counts(c) &&
          ctx.ledger->Record(job.tenant(), year, c.origin(), c.dataset(), c.subjects(),
                             c.sensitive_subjects())) {
        ctx.ledger_grew.push_back(
            {job.tenant(), year, c.origin(), c.dataset(), c.subjects(), c.sensitive_subjects()});
      }
    }
    return absl::OkStatus();
  }

  void Unreserve(const DecisionInput&, const v1::Decision&, ReserveContext& ctx) const override {
    for (const ReserveContext::LedgerKey& k : ctx.ledger_grew) {
      ctx.ledger->Forget(k.tenant, k.year, k.origin, k.dataset, k.subjects, k.sensitive_subjects);
    }
    ctx.ledger_grew.clear();
    ctx.audit.clear();
  }
};

}  // namespace

std::unique_ptr<Plugin> NewResidencyPlugin() { return std::make_unique<Residency>(); }

}  // namespace portolan::placement
