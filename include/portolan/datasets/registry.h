// SPDX-License-Identifier: Apache-2.0
#pragma once

// The dataset registry (docs/datasets.md): datasets as registered, classified
// objects with every version kept, and the resolution of a job's references
// to them. The facts a job is judged on (origin, location, categories,
// subjects) come from here instead of the job's own word, and who vouched for
// them (the tenant declared, an admin or data officer attested) is recorded.

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "portolan/base/clock.h"
#include "portolan/store/store.h"
#include "portolan/v1/dataset.pb.h"
#include "portolan/v1/job.pb.h"
#include "portolan/v1/policy.pb.h"

namespace portolan::datasets {

// Who calls, as the registry needs to know it.
struct Actor {
  enum class Role { kOther, kTenant, kAdmin, kDataOfficer };
  Role role = Role::kOther;
  std::string name;    // recorded as updated_by and classification.by
  std::string tenant;  // for kTenant: the only tenant it acts for
  // "tenant:acme", "admin", "data_officer:lee": how records name it.
  std::string Label() const;
  bool may_attest() const { return role == Role::kAdmin || role == Role::kDataOfficer; }
  bool sees_all() const { return may_attest(); }
};

// Checks a dataset's facts against the policy in force (its site is in the
// catalogue, its origin a known jurisdiction); errors name the field.
using FactsCheck = std::function<absl::Status(const v1::RegisteredDataset&)>;

// Thread-safe. The store must outlive the registry; every change is stored
// before it is visible or acknowledged, and a failed write changes nothing.
class Registry {
 public:
  Registry(store::Store* store, base::Clock* clock);

  // Reads every stored version (start-up). Replaces what is in memory.
  absl::Status Load();

  // POST /v1/datasets: version 1 of a new dataset. AlreadyExists when the
  // id is taken (by any tenant).
  absl::StatusOr<v1::RegisteredDataset> Create(v1::RegisteredDataset d, const Actor& who,
                                               const FactsCheck& check);
  // PUT /v1/datasets/{id}: the next version, or the current one unchanged
  // (no new version) when nothing differs. A tenant that changes the facts
  // of an attested dataset makes it declared again.
  absl::StatusOr<v1::RegisteredDataset> Update(const std::string& id, v1::RegisteredDataset d,
                                               const Actor& who, const FactsCheck& check);
  // The latest version; NotFound also for another tenant's dataset.
  absl::StatusOr<v1::RegisteredDataset> Get(const std::string& id, const Actor& who) const;
  // Newest first.
  absl::StatusOr<v1::DatasetVersions> Versions(const std::string& id, const Actor& who) const;
  // By id; `tenant` filters (a tenant sees only its own anyway). Pages of
  // `page_size` (1-1000) after `page_token` (the last id of a page).
  absl::StatusOr<v1::ListDatasetsResponse> List(const Actor& who, const std::string& tenant,
                                                int page_size, const std::string& page_token) const;

  // Fills each `datasets[i]` of `job` that names a `ref` from the latest
  // version of that dataset of the job's tenant: id, origin, location, path,
  // size, categories, subjects, sector, version, classification. The job
  // may name only `purpose` (one of the dataset's purposes; the only one
  // when it names none). Errors name datasets[i].<field>.
  absl::Status Resolve(v1::Job& job) const;

  // A job's declared outputs (at submit and plan): dataset ids free or the
  // job's tenant's own, paths under $PORTOLAN_OUTPUTS that stay inside it,
  // no id or path twice, and inputs of one origin (a dataset has one).
  // An output without a path is written under its id (filled in here).
  // Errors name outputs[i].<field>. Call after Resolve.
  absl::Status CheckOutputs(v1::Job& job) const;

  // Registers what a succeeded job wrote (Derive's result): version 1, or
  // the next version of the tenant's dataset of that id. Recorded as by
  // "job:<id>". PermissionDenied when another tenant took the id since.
  absl::StatusOr<v1::RegisteredDataset> RegisterOutput(v1::RegisteredDataset d);

  // What the policy asks of a job's datasets: attested registrations for
  // the categories it lists, no inline declarations when it refuses them.
  // FailedPrecondition naming datasets[i] otherwise.
  static absl::Status CheckPolicy(const v1::Job& job, const v1::DatasetPolicy& policy);

  size_t size() const;

 private:
  absl::Status Validate(const v1::RegisteredDataset& d) const;
  // Stores `d` (stamped with who and when) as its next version, with an
  // audit row saying `what` happened.
  absl::Status Commit(v1::RegisteredDataset& d, const Actor& who, const std::string& what)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // A tenant may not make a derived dataset less restricted (origin,
  // categories, subject counts): only an admin or data officer re-classifies.
  static absl::Status CheckDerivedChange(const v1::RegisteredDataset& current,
                                         const v1::RegisteredDataset& next, const Actor& who);
  // PermissionDenied when d's location (site and path) lies within another
  // tenant's dataset or holds one.
  absl::Status CheckLocationFree(const v1::RegisteredDataset& d) const
      ABSL_SHARED_LOCKS_REQUIRED(mu_);
  const std::vector<v1::RegisteredDataset>* Find(const std::string& id, const Actor& who) const
      ABSL_SHARED_LOCKS_REQUIRED(mu_);

  store::Store* const store_;
  base::Clock* const clock_;
  mutable absl::Mutex mu_;
  // Every version of every dataset by id, oldest first.
  std::map<std::string, std::vector<v1::RegisteredDataset>> by_id_ ABSL_GUARDED_BY(mu_);
};

// The dataset that output `out` of `job` becomes once its agent kept it
// (`kept`) at `site`: the job's tenant's, with its inputs' origin (or
// `site_origin`, the site's jurisdiction, when it read no data), the union of
// their categories plus the output's own (general when none), their subject
// counts summed (an upper bound), the first sector, the purposes the job read
// them for, declared by "job:<id>" and derived_from "<id>@<version>" each.
v1::RegisteredDataset Derive(const v1::Job& job, const v1::JobOutput& out,
                             const v1::ProducedOutput& kept, const std::string& site,
                             const std::string& site_origin);

// Where a job's output is kept under --data-dir: outputs/<tenant>/<id>/<job>-<attempt>.
std::string OutputStorePath(const v1::Job& job, const v1::JobOutput& out);

// The facts a version carries (everything but bookkeeping): two versions
// with the same facts and classification state need no new version.
bool SameFacts(const v1::RegisteredDataset& a, const v1::RegisteredDataset& b);

}  // namespace portolan::datasets
