// SPDX-License-Identifier: Apache-2.0
#include "portolan/datasets/registry.h"

#include <algorithm>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "google/protobuf/util/message_differencer.h"
#include "portolan/base/strings.h"
#include "portolan/codec/codec.h"
#include "portolan/residency/residency.h"

namespace portolan::datasets {
namespace {

constexpr double kMaxSizeGb = 1e6;
constexpr int kMaxPurposes = 8;

absl::Status Invalid(absl::string_view field, absl::string_view message) {
  return codec::InvalidField(field, message);
}

// A path under an agent's --data-dir (or a job's $PORTOLAN_OUTPUTS):
// relative, no "." or ".." part, no empty part, printable.
absl::Status CheckPath(absl::string_view field, const std::string& path) {
  if (path.empty()) return Invalid(field, "the path under the site's data directory is required");
  if (!base::IsPlainText(path, 1024))
    return Invalid(field, "at most 1024 characters, no control characters");
  if (path.front() == '/')
    return Invalid(field,
                   "give a relative path (under the agents' --data-dir), not an absolute one");
  if (!base::IsSafeRelativePath(path))
    return Invalid(
        field, absl::StrCat("'", base::CleanForMessage(path), "': no empty, '.' or '..' parts"));
  return absl::OkStatus();
}

std::string CategoryNames(const v1::RegisteredDataset& d) {
  std::vector<std::string> names;
  for (int c : d.categories()) names.push_back(v1::Dataset::Category_Name(c));
  return names.empty() ? "no categories" : absl::StrJoin(names, ", ");
}

}  // namespace

std::string Actor::Label() const {
  switch (role) {
    case Role::kTenant:
      return absl::StrCat("tenant:", tenant);
    case Role::kAdmin:
      return name.empty() ? "admin" : absl::StrCat("admin:", name);
    case Role::kDataOfficer:
      return absl::StrCat("data_officer:", name);
    case Role::kOther:
      break;
  }
  return name;
}

bool SameFacts(const v1::RegisteredDataset& a, const v1::RegisteredDataset& b) {
  v1::RegisteredDataset x = a, y = b;
  for (v1::RegisteredDataset* d : {&x, &y}) {
    // Bookkeeping, not facts.
    d->clear_version();
    d->clear_created_at();
    d->clear_updated_at();
    d->clear_updated_by();
    d->clear_bytes();
    d->clear_sha256();
    d->clear_derived_from_job();
    d->clear_derived_from();
    d->mutable_classification()->clear_by();
    d->mutable_classification()->clear_at();
  }
  return google::protobuf::util::MessageDifferencer::Equals(x, y);
}

Registry::Registry(store::Store* store, base::Clock* clock) : store_(store), clock_(clock) {}

absl::Status Registry::Load() {
  auto versions = store_->LoadDatasetVersions();
  if (!versions.ok()) return versions.status();
  absl::MutexLock lock(&mu_);
  by_id_.clear();
  for (v1::RegisteredDataset& d : *versions) by_id_[d.id()].push_back(std::move(d));
  return absl::OkStatus();
}

size_t Registry::size() const {
  absl::ReaderMutexLock lock(&mu_);
  return by_id_.size();
}

absl::Status Registry::Validate(const v1::RegisteredDataset& d) const {
  if (!base::IsId(d.id()))
    return Invalid("id", absl::StrCat("dataset ids must be ", base::kIdRule));
  if (!base::IsId(d.tenant())) return Invalid("tenant", "the owning tenant is required");
  if (d.origin().empty())
    return Invalid("origin", "the data's origin jurisdiction is required (CN, EU, ...)");
  if (!base::IsId(d.location().site()))
    return Invalid("location.site", "the site where the data lives is required");
  if (absl::Status st = CheckPath("location.path", d.location().path()); !st.ok()) return st;
  for (absl::string_view part : absl::StrSplit(d.location().path(), '/')) {
    if (part.front() == '.')
      return Invalid("location.path",
                     "names starting with '.' are the agents' own (their cache of staged copies)");
  }
  if (absl::StartsWith(d.location().path(), "outputs/") &&
      !absl::StartsWith(d.location().path(), absl::StrCat("outputs/", d.tenant(), "/")))
    return Invalid("location.path", absl::StrCat("outputs/ holds jobs' outputs by tenant: only "
                                                 "outputs/",
                                                 d.tenant(), "/... is this tenant's"));
  if (!(d.size_gb() >= 0 && d.size_gb() <= kMaxSizeGb))
    return Invalid("size_gb", "size_gb must be 0-1000000 (1 PB)");
  if (d.categories().empty())
    return Invalid("categories",
                   "at least one category (general, personal, sensitive_personal, "
                   "important, core)");
  for (int i = 0; i < d.categories_size(); ++i) {
    if (d.categories(i) == v1::Dataset::category_unspecified)
      return Invalid(absl::StrCat("categories[", i, "]"), "an unspecified category");
  }
  if (d.sensitive_subjects() > d.subjects())
    return Invalid("sensitive_subjects",
                   "cannot exceed subjects (the sensitive ones are among them)");
  for (auto [name, value] : {std::pair{"origin", &d.origin()}, std::pair{"sector", &d.sector()}}) {
    if (!base::IsPlainText(*value, 64))
      return Invalid(name, "at most 64 characters, no control characters");
  }
  if (d.purposes_size() > kMaxPurposes) return Invalid("purposes", "at most 8 purposes");
  for (int i = 0; i < d.purposes_size(); ++i) {
    if (!base::IsPlainText(d.purposes(i), 64) || d.purposes(i).empty())
      return Invalid(absl::StrCat("purposes[", i, "]"), "1-64 characters, no control characters");
  }
  if (!base::IsPlainText(d.classification().note(), 512))
    return Invalid("classification.note", "at most 512 characters, no control characters");
  return absl::OkStatus();
}

// Who owns it and who may vouch for it, decided before anything is stored.
namespace {
// `kept_attested`: a tenant's update that sends back an attested state with
// facts the attestation covered, unchanged.
absl::Status BindOwner(v1::RegisteredDataset& d, const Actor& who, bool kept_attested = false) {
  if (who.role == Actor::Role::kTenant) {
    if (d.tenant().empty()) d.set_tenant(who.tenant);
    if (d.tenant() != who.tenant) {
      return codec::FieldError(
          absl::StatusCode::kPermissionDenied, "tenant",
          absl::StrCat(who.Label(), " may register datasets of tenant ", who.tenant, " only, not '",
                       base::CleanForMessage(d.tenant()), "'"));
    }
  } else if (!who.may_attest()) {
    return codec::FieldError(absl::StatusCode::kPermissionDenied, "",
                             absl::StrCat(who.Label(), " may not register datasets"));
  }
  auto state = d.classification().state();
  if (state == v1::Classification::state_unspecified) state = v1::Classification::declared;
  if (state == v1::Classification::attested && !who.may_attest() && !kept_attested) {
    return codec::FieldError(absl::StatusCode::kPermissionDenied, "classification.state",
                             "only an admin or a data officer may attest a dataset's "
                             "classification; a tenant declares it");
  }
  d.mutable_classification()->set_state(state);
  return absl::OkStatus();
}
}  // namespace

absl::Status Registry::Commit(v1::RegisteredDataset& d, const Actor& who, const std::string& what) {
  const absl::Time now = clock_->Now();
  *d.mutable_updated_at() = base::ToProto(now);
  d.set_updated_by(who.Label());
  if (absl::Status st = store_->PutDatasetVersion(d); !st.ok()) {
    return absl::UnavailableError(
        absl::StrCat("dataset not stored: state store write failed: ", st.message()));
  }
  // The audit trail names every registration and re-classification. The
  // version is stored by now: a failed audit write cannot undo it.
  v1::AuditRecord rec = residency::NewAuditRecord("dataset", now);
  rec.set_tenant(d.tenant());
  rec.set_dataset(d.id());
  rec.set_origin(d.origin());
  rec.set_from_site(d.location().site());
  rec.set_subjects(d.subjects());
  rec.set_sensitive_subjects(d.sensitive_subjects());
  rec.set_actor(who.Label());
  rec.set_note(absl::StrCat(what, " version ", d.version(), ": ",
                            v1::Classification::State_Name(d.classification().state()), " ",
                            CategoryNames(d), ", ", d.subjects(), " subjects (",
                            d.sensitive_subjects(), " sensitive)"));
  store_->AppendAudit(rec).IgnoreError();
  by_id_[d.id()].push_back(d);
  return absl::OkStatus();
}

absl::StatusOr<v1::RegisteredDataset> Registry::Create(v1::RegisteredDataset d, const Actor& who,
                                                       const FactsCheck& check) {
  if (absl::Status st = BindOwner(d, who); !st.ok()) return st;
  if (absl::Status st = Validate(d); !st.ok()) return st;
  if (check) {
    if (absl::Status st = check(d); !st.ok()) return st;
  }
  // Output-only fields are the registry's.
  d.clear_derived_from_job();
  d.clear_derived_from();
  d.clear_bytes();
  d.clear_sha256();
  d.set_version(1);
  *d.mutable_created_at() = base::ToProto(clock_->Now());
  d.mutable_classification()->set_by(who.Label());
  *d.mutable_classification()->mutable_at() = d.created_at();
  absl::MutexLock lock(&mu_);
  if (by_id_.contains(d.id())) {
    return codec::WithErrorCode(codec::FieldError(absl::StatusCode::kAlreadyExists, "id",
                                                  absl::StrCat("dataset '", d.id(),
                                                               "' is already registered; PUT "
                                                               "/v1/datasets/",
                                                               d.id(), " changes it")),
                                "already_exists");
  }
  if (absl::Status st = CheckLocationFree(d); !st.ok()) return st;
  if (absl::Status st = Commit(d, who, "registered"); !st.ok()) return st;
  return d;
}

absl::StatusOr<v1::RegisteredDataset> Registry::Update(const std::string& id,
                                                       v1::RegisteredDataset d, const Actor& who,
                                                       const FactsCheck& check) {
  if (d.id().empty()) d.set_id(id);
  if (d.id() != id)
    return Invalid("id", absl::StrCat("the body names '", base::CleanForMessage(d.id()),
                                      "' but the path names '", id, "'"));
  // The facts check reads the policy under the core's lock: it runs before
  // this registry's lock is taken, which is therefore never held while
  // waiting for the core's (the core calls in while holding its own).
  if (check) {
    if (absl::Status st = check(d); !st.ok()) return st;
  }
  absl::MutexLock lock(&mu_);
  const std::vector<v1::RegisteredDataset>* versions = Find(id, who);
  if (versions == nullptr)
    return codec::FieldError(absl::StatusCode::kNotFound, "id",
                             absl::StrCat("no dataset '", id, "'"));
  const v1::RegisteredDataset& current = versions->back();
  if (d.tenant().empty()) d.set_tenant(current.tenant());
  if (d.tenant() != current.tenant())
    return Invalid("tenant", absl::StrCat("dataset '", id, "' belongs to tenant ", current.tenant(),
                                          "; its owner cannot change"));
  // A tenant may send back what it read (attested) when it changes nothing
  // the attestation covered; changed facts are only declared.
  v1::RegisteredDataset as_attested = d;
  as_attested.mutable_classification()->set_state(current.classification().state());
  as_attested.mutable_classification()->set_note(current.classification().note());
  const bool facts_same = SameFacts(as_attested, current);
  // (A tenant asking to attest a declared dataset is refused by BindOwner.)
  bool kept_attested = false;
  if (!who.may_attest() && d.classification().state() == v1::Classification::attested &&
      current.classification().state() == v1::Classification::attested) {
    kept_attested = facts_same;
    if (!kept_attested) d.mutable_classification()->set_state(v1::Classification::declared);
  }
  if (absl::Status st = BindOwner(d, who, kept_attested); !st.ok()) return st;
  if (absl::Status st = Validate(d); !st.ok()) return st;
  if (absl::Status st = CheckDerivedChange(current, d, who); !st.ok()) return st;
  if (absl::Status st = CheckLocationFree(d); !st.ok()) return st;
  d.set_derived_from_job(current.derived_from_job());
  *d.mutable_derived_from() = current.derived_from();
  d.set_bytes(current.bytes());
  d.set_sha256(current.sha256());
  *d.mutable_created_at() = current.created_at();
  if (SameFacts(d, current)) return current;  // nothing new: no version
  const bool reclassified = d.classification().state() != current.classification().state() ||
                            d.classification().note() != current.classification().note();
  if (reclassified) {
    d.mutable_classification()->set_by(who.Label());
    *d.mutable_classification()->mutable_at() = base::ToProto(clock_->Now());
  } else {
    *d.mutable_classification() = current.classification();
  }
  d.set_version(current.version() + 1);
  if (absl::Status st = Commit(d, who, reclassified ? "re-classified" : "changed"); !st.ok())
    return st;
  return d;
}

absl::Status Registry::CheckLocationFree(const v1::RegisteredDataset& d) const {
  // Component-wise: "reads" holds "reads/2026q3", not "readsx".
  auto within = [](const std::string& a, const std::string& b) {
    return a == b || absl::StartsWith(b, a + "/");
  };
  for (const auto& [id, versions] : by_id_) {
    const v1::RegisteredDataset& o = versions.back();
    if (o.tenant() == d.tenant() || o.location().site() != d.location().site()) continue;
    if (within(o.location().path(), d.location().path()) ||
        within(d.location().path(), o.location().path())) {
      return codec::FieldError(
          absl::StatusCode::kPermissionDenied, "location.path",
          absl::StrCat("'", base::CleanForMessage(d.location().path()), "' at ",
                       d.location().site(),
                       " overlaps data another tenant registered: a tenant registers only its "
                       "own data"));
    }
  }
  return absl::OkStatus();
}

const std::vector<v1::RegisteredDataset>* Registry::Find(const std::string& id,
                                                         const Actor& who) const {
  auto it = by_id_.find(id);
  if (it == by_id_.end() || it->second.empty()) return nullptr;
  if (who.sees_all()) return &it->second;
  if (who.role == Actor::Role::kTenant && it->second.back().tenant() == who.tenant)
    return &it->second;
  return nullptr;  // another tenant's: as if there were none
}

absl::StatusOr<v1::RegisteredDataset> Registry::Get(const std::string& id, const Actor& who) const {
  absl::ReaderMutexLock lock(&mu_);
  const auto* versions = Find(id, who);
  if (versions == nullptr)
    return codec::FieldError(absl::StatusCode::kNotFound, "id",
                             absl::StrCat("no dataset '", id, "'"));
  return versions->back();
}

absl::StatusOr<v1::DatasetVersions> Registry::Versions(const std::string& id,
                                                       const Actor& who) const {
  absl::ReaderMutexLock lock(&mu_);
  const auto* versions = Find(id, who);
  if (versions == nullptr)
    return codec::FieldError(absl::StatusCode::kNotFound, "id",
                             absl::StrCat("no dataset '", id, "'"));
  v1::DatasetVersions out;
  for (auto it = versions->rbegin(); it != versions->rend(); ++it) *out.add_versions() = *it;
  return out;
}

absl::StatusOr<v1::ListDatasetsResponse> Registry::List(const Actor& who, const std::string& tenant,
                                                        int page_size,
                                                        const std::string& page_token) const {
  if (page_size < 1 || page_size > 1000)
    return Invalid("page_size", absl::StrCat("page_size must be 1-1000, got ", page_size));
  if (who.role != Actor::Role::kTenant && !who.sees_all())
    return codec::FieldError(absl::StatusCode::kPermissionDenied, "",
                             absl::StrCat(who.Label(), " may not list datasets"));
  absl::ReaderMutexLock lock(&mu_);
  v1::ListDatasetsResponse out;
  for (auto it = by_id_.upper_bound(page_token); it != by_id_.end(); ++it) {
    const v1::RegisteredDataset& d = it->second.back();
    if (who.role == Actor::Role::kTenant && d.tenant() != who.tenant) continue;
    if (!tenant.empty() && d.tenant() != tenant) continue;
    if (out.datasets_size() == page_size) {
      out.set_next_page_token(out.datasets(page_size - 1).id());
      break;
    }
    *out.add_datasets() = d;
  }
  return out;
}

absl::Status Registry::Resolve(v1::Job& job) const {
  const bool any_ref = std::any_of(job.datasets().begin(), job.datasets().end(),
                                   [](const v1::Dataset& d) { return !d.ref().empty(); });
  if (!any_ref) return absl::OkStatus();
  if (job.tenant().empty())
    return Invalid("tenant", "a job that names registered datasets (ref) names its tenant");
  absl::ReaderMutexLock lock(&mu_);
  for (int i = 0; i < job.datasets_size(); ++i) {
    v1::Dataset& ds = *job.mutable_datasets(i);
    if (ds.ref().empty()) continue;
    const std::string f = absl::StrCat("datasets[", i, "]");
    auto it = by_id_.find(ds.ref());
    if (it == by_id_.end() || it->second.back().tenant() != job.tenant()) {
      return codec::FieldError(
          absl::StatusCode::kNotFound, f + ".ref",
          absl::StrCat("tenant ", job.tenant(), " has no dataset '",
                       base::CleanForMessage(ds.ref()), "' (GET /v1/datasets lists them)"));
    }
    const v1::RegisteredDataset& r = it->second.back();
    // The registry is the one source of these facts.
    for (auto [name, set] :
         {std::pair{"origin", !ds.origin().empty()}, std::pair{"location", !ds.location().empty()},
          std::pair{"size_gb", ds.size_gb() != 0},
          std::pair{"categories", !ds.categories().empty()},
          std::pair{"subjects", ds.subjects() != 0},
          std::pair{"sensitive_subjects", ds.sensitive_subjects() != 0},
          std::pair{"sector", !ds.sector().empty()}}) {
      if (set)
        return Invalid(
            absl::StrCat(f, ".", name),
            absl::StrCat("comes from the registry for ref '", r.id(),
                         "'; leave it out (or change the dataset: PUT /v1/datasets/", r.id(), ")"));
    }
    if (!ds.id().empty() && ds.id() != r.id())
      return Invalid(f + ".id", absl::StrCat("a ref's id is the dataset's own ('", r.id(), "')"));
    if (ds.purpose().empty() && r.purposes_size() == 1) ds.set_purpose(r.purposes(0));
    if (!ds.purpose().empty() && !r.purposes().empty() &&
        std::find(r.purposes().begin(), r.purposes().end(), ds.purpose()) == r.purposes().end()) {
      return Invalid(f + ".purpose", absl::StrCat("dataset '", r.id(), "' is registered for ",
                                                  absl::StrJoin(r.purposes(), ", "), ", not '",
                                                  base::CleanForMessage(ds.purpose()), "'"));
    }
    ds.set_id(r.id());
    ds.set_origin(r.origin());
    ds.set_location(r.location().site());
    ds.set_path(r.location().path());
    ds.set_size_gb(r.size_gb());
    *ds.mutable_categories() = r.categories();
    ds.set_subjects(r.subjects());
    ds.set_sensitive_subjects(r.sensitive_subjects());
    ds.set_sector(r.sector());
    ds.set_version(r.version());
    ds.set_classification(r.classification().state());
  }
  return absl::OkStatus();
}

absl::Status Registry::CheckPolicy(const v1::Job& job, const v1::DatasetPolicy& policy) {
  for (int i = 0; i < job.datasets_size(); ++i) {
    const v1::Dataset& ds = job.datasets(i);
    const std::string f = absl::StrCat("datasets[", i, "]");
    if (ds.ref().empty()) {
      if (policy.refuse_inline()) {
        return codec::WithErrorCode(
            codec::FieldError(
                absl::StatusCode::kFailedPrecondition, f,
                absl::StrCat("the policy accepts registered datasets only: register '",
                             base::CleanForMessage(ds.id()),
                             "' (POST /v1/datasets) and name it with ref")),
            "inline_dataset_refused");
      }
      continue;
    }
    if (ds.classification() == v1::Classification::attested) continue;
    for (int c : ds.categories()) {
      const auto& need = policy.require_attested();
      if (std::find(need.begin(), need.end(), c) == need.end()) continue;
      return codec::WithErrorCode(
          codec::FieldError(
              absl::StatusCode::kFailedPrecondition, f + ".ref",
              absl::StrCat("dataset '", ds.id(), "' (version ", ds.version(), ") carries ",
                           v1::Dataset::Category_Name(c),
                           " data and is only declared by its tenant; the policy requires "
                           "an attested classification (an admin or data officer: PUT "
                           "/v1/datasets/",
                           ds.id(), " with classification.state attested)")),
          "dataset_not_attested");
    }
  }
  return absl::OkStatus();
}

}  // namespace portolan::datasets
