// SPDX-License-Identifier: Apache-2.0
// The residency plugin: a site filter over the cross-border rules, and the
// Reserve step that counts a committed placement's exports in the tenant's
// ledger and leaves their audit records for the scheduler to store.
#include <memory>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/civil_time.h"
#include "policy/placement/plugins/plugins.h"
#include "portolan/base/strings.h"
#include "portolan/codec/codec.h"

namespace portolan::placement {
namespace {

class Residency : public SiteFilterPlugin, public ReservePlugin {
 public:
  std::string_view Name() const override { return "residency"; }

  // Every dataset must be allowed at the site by the residency rules.
  //
  // A verdict depends only on the job's datasets, its tenant (instruments,
  // certifications), the ledger's contents, the site and the day (the policy
  // is this plugin's own, one instance per compiled policy). Jobs of one
  // shape arrive in runs (arrays, pipelines, retries) and each decision
  // evaluates every site, so verdicts are cached by exactly those inputs:
  // the datasets and tenant serialized deterministically, the ledger by its
  // version (a placement that counts an export changes it, so nothing
  // decided before a threshold was crossed is reused after). This was a
  // fifth of a decision's instructions (docs/performance.md).
  FilterResult FilterSite(CycleState& state, const DecisionInput& in, const v1::Site& site,
                          v1::SiteDecision& out) const override {
    const auto& sites = in.policy->policy().sites();
    int index = -1;
    for (int i = 0; i < sites.size(); ++i) {
      if (&sites[i] == &site) {
        index = i;
        break;
      }
    }
    if (index < 0) {  // not one of the catalogue's sites: evaluated, not cached
      *out.mutable_residency() = in.policy->residency().EvaluateJob(
          *in.job, site, in.tenant ? *in.tenant : kNoTenant, *in.ledger, in.today);
    } else {
      if (state.residency == nullptr) state.residency = Verdicts(in);
      *out.mutable_residency() = (*state.residency)[index];
    }
    if (out.residency().allowed()) return FilterResult::Pass();
    return FilterResult::Reject("residency", out.residency().reason());
  }

  // Why a row is an export when no border shows in it: the data already
  // lives where it is placed, or says nowhere it lives. Exports are judged by
  // origin (regulations.md section 1); "" when the row speaks for itself.
  static std::string ExportNote(const v1::Dataset& ds, const v1::Site* from,
                                const std::string& to_jurisdiction) {
    if (ds.location().empty()) {
      return absl::StrCat("the dataset names no location: an export from its origin ", ds.origin(),
                          " to ", to_jurisdiction);
    }
    if (from == nullptr || from->jurisdiction() != to_jurisdiction) return "";
    return absl::StrCat(ds.origin(), "-origin data already stored at ", ds.location(), " (",
                        to_jurisdiction, "): running it there is still an export from ",
                        ds.origin(), ", judged by origin, not by where the bytes are");
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
      v1::AuditRecord& rec =
          ctx.audit.emplace_back(residency::NewAuditRecord("placement", ctx.now, &job, ds));
      rec.set_to_site(d.placement().site());
      rec.set_to_jurisdiction(site ? site->jurisdiction() : "");
      rec.set_rule(c.rule());
      rec.set_instrument(c.instrument());
      rec.set_subjects(c.subjects());
      rec.set_sensitive_subjects(c.sensitive_subjects());
      std::string note =
          ExportNote(*ds, in.policy->FindSite(ds->location()), rec.to_jurisdiction());
      if (ds->ref().empty()) {
        // Facts the job declared itself, not a registered dataset's.
        note = note.empty() ? "declared inline by the job (not registered)"
                            : absl::StrCat("declared inline by the job (not registered); ", note);
      } else {
        note = absl::StrCat("registered version ", ds->version(), ", ",
                            v1::Classification::State_Name(ds->classification()),
                            note.empty() ? "" : "; ", note);
      }
      rec.set_note(note);
      if (ctx.ledger != nullptr && in.policy->residency().Counts(c) &&
          ctx.ledger->Record(job.tenant(), year, c.origin(), c.dataset(), c.subjects(),
                             c.sensitive_subjects())) {
        ctx.ledger_grew.push_back(
            {job.tenant(), year, c.origin(), c.dataset(), c.subjects(), c.sensitive_subjects()});
      }
    }
    return absl::OkStatus();
  }

  // The job's verdict at every catalogue site, in the catalogue's order:
  // cached, or evaluated now for all of them (a decision asks for every site).
  std::shared_ptr<const std::vector<v1::ResidencyVerdict>> Verdicts(const DecisionInput& in) const {
    const v1::Tenant& tenant = in.tenant ? *in.tenant : kNoTenant;
    std::string key = absl::StrCat(JobKey(*in.job, tenant, *in.ledger), "|", in.today.year(), "-",
                                   in.today.month(), "-", in.today.day());
    {
      absl::MutexLock lock(&mu_);
      if (auto it = cache_.find(key); it != cache_.end()) return it->second;
    }
    auto verdicts = std::make_shared<std::vector<v1::ResidencyVerdict>>();
    verdicts->reserve(in.policy->policy().sites_size());
    for (const v1::Site& site : in.policy->policy().sites()) {
      verdicts->push_back(
          in.policy->residency().EvaluateJob(*in.job, site, tenant, *in.ledger, in.today));
    }
    absl::MutexLock lock(&mu_);
    if (cache_.size() >= kMaxCached) cache_.clear();  // bounded; refills with what runs now
    cache_.emplace(std::move(key), verdicts);
    return verdicts;
  }

  // Jobs' verdicts cached by Verdicts: at most this many job shapes, each
  // with a verdict per site (a few MiB).
  static constexpr size_t kMaxCached = 512;
  static inline const v1::Tenant kNoTenant;

  // Length-prefixed parts, so no two different inputs make one key.
  static std::string JobKey(const v1::Job& job, const v1::Tenant& tenant,
                            const residency::Ledger& ledger) {
    const auto [instance, changes] = ledger.version();
    std::string key = absl::StrCat(instance, ".", changes);
    auto add = [&key](const std::string& part) {
      absl::StrAppend(&key, "|", part.size(), ":", part);
    };
    add(codec::DeterministicBytes(tenant));
    for (const v1::Dataset& d : job.datasets()) add(codec::DeterministicBytes(d));
    return key;
  }

  mutable absl::Mutex mu_;
  mutable absl::flat_hash_map<std::string, std::shared_ptr<const std::vector<v1::ResidencyVerdict>>>
      cache_ ABSL_GUARDED_BY(mu_);

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
