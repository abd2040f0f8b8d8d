// SPDX-License-Identifier: Apache-2.0
// A job's outputs as datasets (docs/datasets.md, "Outputs"): checked at
// submit, derived from the inputs when the job succeeds, registered as the
// next version of the tenant's dataset.
#include <algorithm>
#include <limits>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "portolan/base/strings.h"
#include "portolan/codec/codec.h"
#include "portolan/datasets/registry.h"

namespace portolan::datasets {
namespace {

constexpr int kMaxOutputs = 16;

uint32_t SaturatingAdd(uint32_t a, uint32_t b) {
  const uint64_t sum = uint64_t{a} + b;
  return sum > std::numeric_limits<uint32_t>::max() ? std::numeric_limits<uint32_t>::max()
                                                    : static_cast<uint32_t>(sum);
}

}  // namespace

std::string OutputStorePath(const v1::Job& job, const v1::JobOutput& out) {
  return absl::StrCat("outputs/", job.tenant(), "/", out.id(), "/", job.id(), "-", job.attempt());
}

absl::Status Registry::CheckOutputs(v1::Job& job) const {
  if (job.outputs().empty()) return absl::OkStatus();
  if (job.outputs_size() > kMaxOutputs)
    return codec::InvalidField("outputs", absl::StrCat("at most ", kMaxOutputs, " outputs"));
  if (job.tenant().empty())
    return codec::InvalidField("tenant", "a job that writes datasets (outputs) names its tenant");
  std::set<std::string> origins;
  for (const v1::Dataset& ds : job.datasets()) origins.insert(ds.origin());
  if (origins.size() > 1) {
    return codec::InvalidField(
        "outputs", absl::StrCat("this job reads data of ", origins.size(), " origins (",
                                absl::StrJoin(origins, ", "),
                                ") and a dataset has one: split the job by origin, or write the "
                                "result without outputs and register it by hand"));
  }
  std::set<std::string> ids, paths;
  absl::ReaderMutexLock lock(&mu_);
  for (int i = 0; i < job.outputs_size(); ++i) {
    v1::JobOutput& out = *job.mutable_outputs(i);
    const std::string f = absl::StrCat("outputs[", i, "]");
    if (!base::IsId(out.id()))
      return codec::InvalidField(f + ".id", absl::StrCat("dataset ids must be ", base::kIdRule));
    if (out.path().empty()) out.set_path(out.id());
    if (!base::IsSafeRelativePath(out.path()))
      return codec::InvalidField(
          f + ".path", absl::StrCat("'", base::CleanForMessage(out.path()),
                                    "': a relative path under $PORTOLAN_OUTPUTS, no empty, '.' "
                                    "or '..' parts"));
    for (int c = 0; c < out.categories_size(); ++c) {
      if (out.categories(c) == v1::Dataset::category_unspecified)
        return codec::InvalidField(absl::StrCat(f, ".categories[", c, "]"),
                                   "an unspecified category");
    }
    if (!ids.insert(out.id()).second)
      return codec::InvalidField(f + ".id", absl::StrCat("'", out.id(), "' is written twice"));
    if (!paths.insert(out.path()).second)
      return codec::InvalidField(f + ".path", absl::StrCat("'", out.path(), "' is used twice"));
    auto it = by_id_.find(out.id());
    if (it != by_id_.end() && !it->second.empty() && it->second.back().tenant() != job.tenant()) {
      // Another tenant's: said as "taken", not whose, like a 404 elsewhere.
      return codec::WithErrorCode(
          codec::FieldError(absl::StatusCode::kAlreadyExists, f + ".id",
                            absl::StrCat("dataset id '", out.id(),
                                         "' is taken; choose another id for this output")),
          "already_exists");
    }
  }
  return absl::OkStatus();
}

v1::RegisteredDataset Derive(const v1::Job& job, const v1::JobOutput& out,
                             const v1::ProducedOutput& kept, const std::string& site,
                             const std::string& site_origin) {
  v1::RegisteredDataset d;
  d.set_id(out.id());
  d.set_tenant(job.tenant());
  d.mutable_location()->set_site(site);
  d.mutable_location()->set_path(kept.store_path());
  d.set_size_gb(static_cast<double>(kept.bytes()) / 1e9);
  d.set_bytes(kept.bytes());
  d.set_sha256(kept.sha256());
  d.set_origin(job.datasets().empty() ? site_origin : job.datasets(0).origin());
  std::set<int> categories(out.categories().begin(), out.categories().end());
  std::set<std::string> purposes;
  std::vector<std::string> from;
  for (const v1::Dataset& ds : job.datasets()) {
    categories.insert(ds.categories().begin(), ds.categories().end());
    d.set_subjects(SaturatingAdd(d.subjects(), ds.subjects()));
    d.set_sensitive_subjects(SaturatingAdd(d.sensitive_subjects(), ds.sensitive_subjects()));
    if (d.sector().empty()) d.set_sector(ds.sector());
    if (!ds.purpose().empty()) purposes.insert(ds.purpose());
    from.push_back(ds.ref().empty() ? absl::StrCat("inline:", ds.id())
                                    : absl::StrCat(ds.id(), "@", ds.version()));
  }
  if (categories.empty()) categories.insert(v1::Dataset::general);
  for (int c : categories) d.add_categories(static_cast<v1::Dataset::Category>(c));
  for (const std::string& p : purposes) d.add_purposes(p);
  d.set_derived_from_job(job.id());
  for (const std::string& f : from) d.add_derived_from(f);
  v1::Classification& c = *d.mutable_classification();
  c.set_state(v1::Classification::declared);
  c.set_note(
      from.empty()
          ? absl::StrCat("written by job ", job.id(), " at ", site, " from no registered data")
          : absl::StrCat("derived by job ", job.id(), " from ", absl::StrJoin(from, ", "),
                         ": inherits their origin, categories and subjects"));
  return d;
}

absl::StatusOr<v1::RegisteredDataset> Registry::RegisterOutput(v1::RegisteredDataset d) {
  Actor job;
  job.name = absl::StrCat("job:", d.derived_from_job());
  absl::MutexLock lock(&mu_);
  auto it = by_id_.find(d.id());
  d.set_version(1);
  *d.mutable_created_at() = base::ToProto(clock_->Now());
  if (it != by_id_.end() && !it->second.empty()) {
    const v1::RegisteredDataset& current = it->second.back();
    if (current.tenant() != d.tenant())
      return absl::PermissionDeniedError(
          absl::StrCat("dataset id '", d.id(), "' belongs to another tenant"));
    d.set_version(current.version() + 1);
    *d.mutable_created_at() = current.created_at();
  }
  d.mutable_classification()->set_by(job.Label());
  *d.mutable_classification()->mutable_at() = base::ToProto(clock_->Now());
  if (absl::Status st = Commit(d, job, "written by a job as"); !st.ok()) return st;
  return d;
}

absl::Status Registry::CheckDerivedChange(const v1::RegisteredDataset& current,
                                          const v1::RegisteredDataset& next, const Actor& who) {
  if (current.derived_from_job().empty() || who.may_attest()) return absl::OkStatus();
  auto refuse = [&](absl::string_view field, const std::string& what) {
    return codec::FieldError(
        absl::StatusCode::kPermissionDenied, field,
        absl::StrCat("dataset '", current.id(), "' was derived by job ", current.derived_from_job(),
                     " from ", absl::StrJoin(current.derived_from(), ", "), "; ", what,
                     " is a re-classification, which only an admin or data officer makes"));
  };
  if (next.origin() != current.origin())
    return refuse("origin", absl::StrCat("changing its origin from ", current.origin()));
  for (int c : current.categories()) {
    if (std::find(next.categories().begin(), next.categories().end(), c) == next.categories().end())
      return refuse("categories",
                    absl::StrCat("dropping category ", v1::Dataset::Category_Name(c)));
  }
  if (next.subjects() < current.subjects() ||
      next.sensitive_subjects() < current.sensitive_subjects())
    return refuse("subjects", "lowering its subject counts");
  return absl::OkStatus();
}

}  // namespace portolan::datasets
