#pragma once

#include <map>
#include <mutex>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/time/civil_time.h"
#include "portolan/v1/job.pb.h"
#include "portolan/v1/policy.pb.h"

namespace portolan::policy {

// Cumulative personal-information exports per tenant, calendar year and
// destination jurisdiction, counting each dataset id once, so a threshold
// applies to the year's total and splitting a transfer does not evade it.
// Thread-safe.
class Ledger {
 public:
  struct Totals {
    uint32_t subjects = 0;
    uint32_t sensitive_subjects = 0;
    bool counted = false;  // the asked-about dataset is already in the totals
  };
  // Totals for (tenant, year, jurisdiction); `dataset` says whether it is in.
  Totals Get(const std::string& tenant, int year, const std::string& jurisdiction,
             const std::string& dataset) const;
  // Adds a dataset export; returns false (no change) when already counted.
  bool Record(const std::string& tenant, int year, const std::string& jurisdiction,
              const v1::Dataset& dataset);
  void Load(const v1::LedgerEntry& entry);
  v1::LedgerEntry Entry(const std::string& tenant, int year, const std::string& jurisdiction) const;

 private:
  using Key = std::tuple<std::string, int, std::string>;
  mutable std::mutex mu_;
  std::map<Key, v1::LedgerEntry> entries_ ABSL_GUARDED_BY(mu_);
  std::map<Key, std::set<std::string>> counted_ ABSL_GUARDED_BY(mu_);
};

// The verdict for one dataset moving to one site.
struct DatasetVerdict {
  bool allowed = false;
  bool is_export = false;
  std::string rule;
  std::vector<std::string> requires_any;
  std::string instrument;  // the instrument that made it allowed, if any
  std::string reason;      // for refusals: a sentence a person can act on
};

// Evaluates the policy's ordered first-match rules. Holds pointers into the
// policy it was built from, which must outlive it. Immutable; thread-safe.
class ResidencyEngine {
 public:
  explicit ResidencyEngine(const v1::Policy* policy) : policy_(policy) {}

  // Whether moving `dataset` (for `tenant`) to `site` is an export.
  static bool IsExport(const v1::Dataset& dataset, const v1::Site& site);

  DatasetVerdict Evaluate(const v1::Dataset& dataset, const v1::Site& site,
                          const v1::Tenant& tenant, const Ledger& ledger,
                          absl::CivilDay today) const;

  // Every dataset of the job; allowed only when all are. `reason` joins the
  // refusals of every blocking dataset.
  v1::ResidencyVerdict EvaluateJob(const v1::Job& job, const v1::Site& site,
                                   const v1::Tenant& tenant, const Ledger& ledger,
                                   absl::CivilDay today) const;

  // The tenant's instrument of one of `types` valid for origin -> to on `today`.
  static const v1::Instrument* FindInstrument(const v1::Tenant& tenant,
                                              const std::vector<std::string>& types,
                                              const std::string& origin, const std::string& to,
                                              absl::CivilDay today);

 private:
  const v1::NegativeListEntry* NegativeListMatch(const v1::Dataset& dataset,
                                                 const v1::Tenant& tenant) const;

  const v1::Policy* policy_;
};

}  // namespace portolan::policy
