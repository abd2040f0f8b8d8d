// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <atomic>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/civil_time.h"
#include "absl/time/time.h"
#include "portolan/v1/job.pb.h"
#include "portolan/v1/policy.pb.h"

namespace portolan::residency {

// Cumulative personal-information exports per tenant, origin regime and
// calendar year, over every destination together, counting each dataset id
// once (regulations.md section 1, Counting): splitting a transfer across
// jobs, days or destinations does not reset the count, and data of one origin
// never counts toward another origin's thresholds. Thread-safe.
class Ledger {
 public:
  Ledger() = default;
  // A copy of `other` as it is now, taken under its lock: a snapshot that
  // later changes to `other` do not reach (the policy what-if decides on one).
  Ledger(const Ledger& other);
  Ledger& operator=(const Ledger&) = delete;

  struct Totals {
    uint64_t subjects = 0;            // non-sensitive PI subjects
    uint64_t sensitive_subjects = 0;  // SPI subjects
  };
  Totals Get(const std::string& tenant, int year, const std::string& origin) const;
  // Whether `dataset` (an id) is already in (tenant, year, origin).
  bool Counted(const std::string& tenant, int year, const std::string& origin,
               const std::string& dataset) const;
  // Adds a dataset export of `subjects` / `sensitive` subjects; returns false
  // (no change) when the dataset id is already counted.
  bool Record(const std::string& tenant, int year, const std::string& origin,
              const std::string& dataset, uint32_t subjects, uint32_t sensitive);
  // Undoes a Record of the same arguments (a placement that was not
  // committed after all); false when `dataset` was not counted there.
  bool Forget(const std::string& tenant, int year, const std::string& origin,
              const std::string& dataset, uint32_t subjects, uint32_t sensitive);
  void Load(const v1::LedgerEntry& entry);
  v1::LedgerEntry Entry(const std::string& tenant, int year, const std::string& origin) const;

  // Identifies what this ledger holds now: a process-unique id of this
  // ledger object (copies get their own) and a count of its changes. Two
  // equal versions hold the same entries, so a verdict computed against one
  // holds for the other (the residency plugin caches verdicts by it).
  std::pair<uint64_t, uint64_t> version() const {
    return {instance_, changes_.load(std::memory_order_acquire)};
  }

 private:
  using Key = std::tuple<std::string, int, std::string>;
  static uint64_t NextInstance();
  const uint64_t instance_ = NextInstance();
  std::atomic<uint64_t> changes_{0};  // bumped under mu_ by every change
  mutable absl::Mutex mu_;
  std::map<Key, v1::LedgerEntry> entries_ ABSL_GUARDED_BY(mu_);
  std::map<Key, std::set<std::string>> counted_ ABSL_GUARDED_BY(mu_);
};

// The verdict for one dataset moving to one site.
struct DatasetVerdict {
  bool allowed = false;
  bool is_export = false;
  bool exempt = false;  // allowed by a purpose exemption (Rule.exempt)
  std::string rule;
  std::vector<std::string> requires_any;  // instruments this tenant could use
  std::string instrument;                 // the instrument that made it allowed, if any
  std::string instrument_ref;             // its reference
  std::string reason;                     // for refusals: a sentence a person can act on
  std::string basis;  // why, for allowed and refused: arithmetic, list, instruments
};

// Evaluates the policy's ordered first-match rules, with the negative-list
// stage (effect apply_negative_lists), the cumulative ledger and the
// instruments' lifecycle. Holds pointers into the policy it was built from,
// which must outlive it. Immutable; thread-safe.
class ResidencyEngine {
 public:
  explicit ResidencyEngine(const v1::Policy* policy);

  // Whether moving `dataset` to `site` is an export: another jurisdiction,
  // or data of the site's own jurisdiction entering its offshore data space.
  static bool IsExport(const v1::Dataset& dataset, const v1::Site& site);

  // One dataset on its own (a job holding only it).
  DatasetVerdict Evaluate(const v1::Dataset& dataset, const v1::Site& site,
                          const v1::Tenant& tenant, const Ledger& ledger,
                          absl::CivilDay today) const;

  // Every dataset of the job; allowed only when all are. The job's exports
  // of one origin count together (with the tenant's ledger) toward the
  // thresholds, and important data exported by the job rules out the
  // instruments that may not carry it for all its datasets. `reason` joins
  // the refusals of every blocking dataset.
  v1::ResidencyVerdict EvaluateJob(const v1::Job& job, const v1::Site& site,
                                   const v1::Tenant& tenant, const Ledger& ledger,
                                   absl::CivilDay today) const;

  // The zones `zone` lies in, itself first (lingang -> lingang, shanghai).
  std::vector<std::string> ZoneAndAncestors(const std::string& zone) const;
  // The zones the policy names (declared, of its sites, of its lists): the
  // ones a tenant may be registered in.
  const std::set<std::string>& known_zones() const { return known_zones_; }
  // Whether the tenant is registered in `zone` or a zone inside it.
  bool TenantInZone(const v1::Tenant& tenant, const std::string& zone) const;
  // Whether the list is in force on `today` (validity, not superseded).
  bool ListInForce(const v1::NegativeList& list, absl::CivilDay today) const;

  // Whether the tenant's personal data counted by this verdict enters the
  // ledger (Policy.ledger.count_exempt_transfers).
  bool Counts(const v1::Compliance& c) const;

 private:
  struct JobContext;
  DatasetVerdict Rules(int from, const v1::Dataset& d, const v1::Site& site,
                       const v1::Tenant& tenant, const JobContext& ctx, absl::CivilDay today) const;
  // Outcome of an instrument requirement: allowed with one the tenant holds,
  // or refused with what it could obtain and why what it holds does not do.
  void Require(const std::vector<std::string>& types, const v1::Dataset& d, const v1::Site& site,
               const v1::Tenant& tenant, const JobContext& ctx, absl::CivilDay today,
               DatasetVerdict* v) const;

  const v1::Policy* policy_;
  std::map<std::string, std::string> zone_parent_;
  std::set<std::string> known_zones_;
  std::map<std::string, const v1::InstrumentRule*> instrument_rules_;
  std::map<std::string, const v1::NegativeList*> lists_;
};

// Rewrites a policy stored by an earlier version into today's form:
// negative_listed rules become one apply_negative_lists rule at the first of
// their places. Returns what it changed, one line each (empty: nothing).
std::vector<std::string> MigratePolicy(v1::Policy* policy);

// A row of the audit trail (GET /v1/audit) of `kind` at `now`, with a fresh
// id; given `job`, its id and tenant; given `ds`, the dataset's id, origin
// and the site it lives at (from_site). The caller adds the rest.
v1::AuditRecord NewAuditRecord(absl::string_view kind, absl::Time now, const v1::Job* job = nullptr,
                               const v1::Dataset* ds = nullptr);

}  // namespace portolan::residency
