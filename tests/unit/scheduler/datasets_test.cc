// SPDX-License-Identifier: Apache-2.0
// The dataset registry: ownership, classification, versions, job refs and
// the policy's demands, on the in-memory store double and a fake clock.
#include <gtest/gtest.h>

#include <functional>

#include "portolan/codec/codec.h"
#include "portolan/datasets/registry.h"
#include "support/fake_clock.h"
#include "support/memory_store.h"

namespace portolan::datasets {
namespace {

v1::RegisteredDataset Reads() {
  v1::RegisteredDataset d;
  EXPECT_TRUE(codec::ParseJson(R"({"id": "reads-2026q3", "tenant": "acme", "origin": "CN",
      "location": {"site": "lingang-idc-1", "path": "reads/2026q3"}, "size_gb": 500,
      "categories": ["personal"], "subjects": 250000, "sensitive_subjects": 0,
      "sector": "biomedicine", "purposes": ["contract_performance"]})",
                               &d)
                  .ok());
  return d;
}

Actor Tenant(const std::string& t) { return {Actor::Role::kTenant, "acme-ci", t}; }
Actor Officer() { return {Actor::Role::kDataOfficer, "lee", ""}; }

std::string FieldOf(const absl::Status& st) { return codec::StatusField(st); }

class RegistryTest : public ::testing::Test {
 protected:
  testing::MemoryStore store_;
  testing::FakeClock clock_;
  Registry registry_{&store_, &clock_};
};

TEST_F(RegistryTest, ATenantRegistersItsOwnDatasetDeclaredAndVersionOne) {
  auto d = registry_.Create(Reads(), Tenant("acme"), nullptr);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->version(), 1u);
  EXPECT_EQ(d->classification().state(), v1::Classification::declared);
  EXPECT_EQ(d->classification().by(), "tenant:acme");
  EXPECT_EQ(d->updated_by(), "tenant:acme");
  // Stored before it is answered, and audited.
  auto stored = store_.LoadDatasetVersions();
  ASSERT_TRUE(stored.ok());
  ASSERT_EQ(stored->size(), 1u);
  EXPECT_EQ((*stored)[0].id(), "reads-2026q3");
  auto audit = store_.ListAudit("acme", "", 10);
  ASSERT_TRUE(audit.ok());
  ASSERT_EQ(audit->size(), 1u);
  EXPECT_EQ((*audit)[0].kind(), "dataset");
  EXPECT_NE((*audit)[0].note().find("registered version 1: declared personal"), std::string::npos)
      << (*audit)[0].note();
}

TEST_F(RegistryTest, ATenantCannotRegisterForAnotherTenantNorAttest) {
  auto other = registry_.Create(Reads(), Tenant("globex"), nullptr);
  ASSERT_FALSE(other.ok());
  EXPECT_EQ(other.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(FieldOf(other.status()), "tenant");
  v1::RegisteredDataset d = Reads();
  d.mutable_classification()->set_state(v1::Classification::attested);
  auto attest = registry_.Create(d, Tenant("acme"), nullptr);
  ASSERT_FALSE(attest.ok());
  EXPECT_EQ(FieldOf(attest.status()), "classification.state");
  // Nothing was stored by either refusal.
  EXPECT_EQ(store_.LoadDatasetVersions()->size(), 0u);
}

TEST_F(RegistryTest, ABadDatasetIsRefusedNamingTheField) {
  struct Case {
    std::function<void(v1::RegisteredDataset&)> spoil;
    std::string field;
  } cases[] = {
      {[](auto& d) { d.set_id("a b"); }, "id"},
      {[](auto& d) { d.clear_origin(); }, "origin"},
      {[](auto& d) { d.mutable_location()->set_path("../etc"); }, "location.path"},
      {[](auto& d) { d.mutable_location()->set_path("/abs"); }, "location.path"},
      {[](auto& d) { d.clear_categories(); }, "categories"},
      {[](auto& d) { d.set_sensitive_subjects(d.subjects() + 1); }, "sensitive_subjects"},
      {[](auto& d) { d.set_size_gb(-1); }, "size_gb"},
  };
  for (const Case& c : cases) {
    v1::RegisteredDataset d = Reads();
    c.spoil(d);
    auto res = registry_.Create(d, Tenant("acme"), nullptr);
    ASSERT_FALSE(res.ok()) << c.field;
    EXPECT_EQ(FieldOf(res.status()), c.field) << res.status();
  }
  // The policy's check (unknown site) is applied too.
  auto res = registry_.Create(Reads(), Tenant("acme"), [](const v1::RegisteredDataset&) {
    return codec::InvalidField("location.site", "unknown site");
  });
  EXPECT_EQ(FieldOf(res.status()), "location.site");
  EXPECT_EQ(registry_.size(), 0u);
}

TEST_F(RegistryTest, ADuplicateIdIsAConflictAndAFailedWriteChangesNothing) {
  ASSERT_TRUE(registry_.Create(Reads(), Tenant("acme"), nullptr).ok());
  auto again = registry_.Create(Reads(), Tenant("acme"), nullptr);
  EXPECT_EQ(again.status().code(), absl::StatusCode::kAlreadyExists);
  store_.FailWritesWith(absl::UnavailableError("disk full"));
  v1::RegisteredDataset d = Reads();
  d.set_subjects(300000);
  auto res = registry_.Update("reads-2026q3", d, Tenant("acme"), nullptr);
  EXPECT_EQ(res.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(registry_.Get("reads-2026q3", Tenant("acme"))->version(), 1u);
}

TEST_F(RegistryTest, AnOfficerAttestsAndATenantsChangeOfFactsUndoesIt) {
  ASSERT_TRUE(registry_.Create(Reads(), Tenant("acme"), nullptr).ok());
  v1::RegisteredDataset d = Reads();
  d.mutable_classification()->set_state(v1::Classification::attested);
  d.mutable_classification()->set_note("DPIA-2026-17");
  clock_.Advance(absl::Hours(1));
  auto attested = registry_.Update("reads-2026q3", d, Officer(), nullptr);
  ASSERT_TRUE(attested.ok()) << attested.status();
  EXPECT_EQ(attested->version(), 2u);
  EXPECT_EQ(attested->classification().state(), v1::Classification::attested);
  EXPECT_EQ(attested->classification().by(), "data_officer:lee");

  // The tenant sends back what it read: nothing new, still attested.
  auto same = registry_.Update("reads-2026q3", *attested, Tenant("acme"), nullptr);
  ASSERT_TRUE(same.ok()) << same.status();
  EXPECT_EQ(same->version(), 2u);
  EXPECT_EQ(same->classification().state(), v1::Classification::attested);

  // It changes the subjects: version 3, declared again.
  v1::RegisteredDataset more = *attested;
  more.set_subjects(400000);
  auto changed = registry_.Update("reads-2026q3", more, Tenant("acme"), nullptr);
  ASSERT_TRUE(changed.ok()) << changed.status();
  EXPECT_EQ(changed->version(), 3u);
  EXPECT_EQ(changed->classification().state(), v1::Classification::declared);
  EXPECT_EQ(changed->classification().by(), "tenant:acme");

  auto versions = registry_.Versions("reads-2026q3", Officer());
  ASSERT_TRUE(versions.ok());
  ASSERT_EQ(versions->versions_size(), 3);
  EXPECT_EQ(versions->versions(0).version(), 3u);  // newest first
  EXPECT_EQ(versions->versions(2).subjects(), 250000u);

  // A restarted registry reads the same versions back.
  Registry reloaded(&store_, &clock_);
  ASSERT_TRUE(reloaded.Load().ok());
  EXPECT_EQ(reloaded.Get("reads-2026q3", Officer())->version(), 3u);
  EXPECT_EQ(reloaded.Versions("reads-2026q3", Officer())->versions_size(), 3);
}

TEST_F(RegistryTest, AnotherTenantsDatasetIsNotFoundAndNotListed) {
  ASSERT_TRUE(registry_.Create(Reads(), Tenant("acme"), nullptr).ok());
  EXPECT_EQ(registry_.Get("reads-2026q3", Tenant("globex")).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(registry_.List(Tenant("globex"), "", 100, "")->datasets_size(), 0);
  EXPECT_EQ(registry_.List(Tenant("acme"), "", 100, "")->datasets_size(), 1);
  EXPECT_EQ(registry_.List(Officer(), "", 100, "")->datasets_size(), 1);
  v1::RegisteredDataset d = Reads();
  EXPECT_EQ(registry_.Update("reads-2026q3", d, Tenant("globex"), nullptr).status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(RegistryTest, AJobsRefTakesTheRegistrysFactsAndOnlyItsTenantsDatasets) {
  ASSERT_TRUE(registry_.Create(Reads(), Tenant("acme"), nullptr).ok());
  v1::Job job;
  job.set_tenant("acme");
  job.add_datasets()->set_ref("reads-2026q3");
  ASSERT_TRUE(registry_.Resolve(job).ok());
  const v1::Dataset& ds = job.datasets(0);
  EXPECT_EQ(ds.id(), "reads-2026q3");
  EXPECT_EQ(ds.origin(), "CN");
  EXPECT_EQ(ds.location(), "lingang-idc-1");
  EXPECT_EQ(ds.path(), "reads/2026q3");
  EXPECT_EQ(ds.subjects(), 250000u);
  EXPECT_EQ(ds.categories(0), v1::Dataset::personal);
  EXPECT_EQ(ds.purpose(), "contract_performance");  // its only purpose
  EXPECT_EQ(ds.version(), 1u);
  EXPECT_EQ(ds.classification(), v1::Classification::declared);

  // The job may not restate a fact the registry holds ("general" for a
  // personal table), nor use another tenant's dataset.
  v1::Job lying;
  lying.set_tenant("acme");
  v1::Dataset* l = lying.add_datasets();
  l->set_ref("reads-2026q3");
  l->add_categories(v1::Dataset::general);
  absl::Status st = registry_.Resolve(lying);
  EXPECT_EQ(FieldOf(st), "datasets[0].categories") << st;
  v1::Job other;
  other.set_tenant("globex");
  other.add_datasets()->set_ref("reads-2026q3");
  st = registry_.Resolve(other);
  EXPECT_EQ(st.code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(FieldOf(st), "datasets[0].ref");
  v1::Job purpose;
  purpose.set_tenant("acme");
  v1::Dataset* p = purpose.add_datasets();
  p->set_ref("reads-2026q3");
  p->set_purpose("emergency");
  EXPECT_EQ(FieldOf(registry_.Resolve(purpose)), "datasets[0].purpose");
}

TEST_F(RegistryTest, ThePolicyRequiresAttestedAboveGeneralAndMayRefuseInline) {
  ASSERT_TRUE(registry_.Create(Reads(), Tenant("acme"), nullptr).ok());
  v1::DatasetPolicy policy;
  policy.add_require_attested(v1::Dataset::personal);
  v1::Job job;
  job.set_tenant("acme");
  job.add_datasets()->set_ref("reads-2026q3");
  ASSERT_TRUE(registry_.Resolve(job).ok());
  absl::Status st = Registry::CheckPolicy(job, policy);
  EXPECT_EQ(st.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(FieldOf(st), "datasets[0].ref");
  EXPECT_NE(st.message().find("requires an attested classification"), std::string::npos) << st;

  v1::RegisteredDataset d = Reads();
  d.mutable_classification()->set_state(v1::Classification::attested);
  ASSERT_TRUE(registry_.Update("reads-2026q3", d, Officer(), nullptr).ok());
  v1::Job again;
  again.set_tenant("acme");
  again.add_datasets()->set_ref("reads-2026q3");
  ASSERT_TRUE(registry_.Resolve(again).ok());
  EXPECT_TRUE(Registry::CheckPolicy(again, policy).ok());

  v1::Job inline_job;
  inline_job.set_tenant("acme");
  inline_job.add_datasets()->set_id("crm");
  EXPECT_TRUE(Registry::CheckPolicy(inline_job, policy).ok());
  policy.set_refuse_inline(true);
  st = Registry::CheckPolicy(inline_job, policy);
  EXPECT_EQ(FieldOf(st), "datasets[0]");
}

TEST_F(RegistryTest, AnOutputIsCheckedAtSubmitAndInheritsItsInputsFacts) {
  ASSERT_TRUE(registry_.Create(Reads(), Tenant("acme"), nullptr).ok());
  v1::Job job;
  job.set_id("job-1");
  job.set_attempt(2);
  job.set_tenant("acme");
  job.add_datasets()->set_ref("reads-2026q3");
  v1::JobOutput* out = job.add_outputs();
  out->set_id("reads-clean");
  out->add_categories(v1::Dataset::important);
  ASSERT_TRUE(registry_.Resolve(job).ok());
  ASSERT_TRUE(registry_.CheckOutputs(job).ok());
  EXPECT_EQ(job.outputs(0).path(), "reads-clean");  // its id when it names no path

  // The checks at submit name the field.
  for (auto [mutate, field] : std::vector<std::pair<std::function<void(v1::Job&)>, std::string>>{
           {[](v1::Job& j) { j.mutable_outputs(0)->set_path("../escape"); }, "outputs[0].path"},
           {[](v1::Job& j) { j.mutable_outputs(0)->set_id("bad id"); }, "outputs[0].id"},
           {[](v1::Job& j) { *j.add_outputs() = j.outputs(0); }, "outputs[1].id"},
           {[](v1::Job& j) {
              v1::Dataset* eu = j.add_datasets();
              eu->set_id("eu");
              eu->set_origin("EU");
            },
            "outputs"}}) {
    v1::Job bad = job;
    mutate(bad);
    EXPECT_EQ(FieldOf(registry_.CheckOutputs(bad)), field) << field;
  }
  // Another tenant's id is taken.
  v1::Job globex;
  globex.set_tenant("globex");
  globex.add_outputs()->set_id("reads-2026q3");
  absl::Status st = registry_.CheckOutputs(globex);
  EXPECT_EQ(st.code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(FieldOf(st), "outputs[0].id");

  // Derived: CN personal (plus the output's own category), the subjects,
  // the purpose it was read for; declared by the job.
  v1::ProducedOutput kept;
  kept.set_dataset("reads-clean");
  kept.set_store_path(OutputStorePath(job, job.outputs(0)));
  kept.set_bytes(2'000'000'000);
  kept.set_sha256("ab");
  EXPECT_EQ(kept.store_path(), "outputs/acme/reads-clean/job-1-2");
  v1::RegisteredDataset d = Derive(job, job.outputs(0), kept, "hongkong-1", "HK");
  EXPECT_EQ(d.origin(), "CN");
  EXPECT_EQ(d.location().site(), "hongkong-1");
  ASSERT_EQ(d.categories_size(), 2);
  EXPECT_EQ(d.categories(0), v1::Dataset::personal);
  EXPECT_EQ(d.categories(1), v1::Dataset::important);
  EXPECT_EQ(d.subjects(), 250000u);
  EXPECT_EQ(d.sector(), "biomedicine");
  ASSERT_EQ(d.purposes_size(), 1);
  EXPECT_EQ(d.purposes(0), "contract_performance");
  EXPECT_DOUBLE_EQ(d.size_gb(), 2);
  EXPECT_EQ(d.derived_from(0), "reads-2026q3@1");
  auto registered = registry_.RegisterOutput(d);
  ASSERT_TRUE(registered.ok()) << registered.status();
  EXPECT_EQ(registered->version(), 1u);
  EXPECT_EQ(registered->classification().by(), "job:job-1");
  EXPECT_EQ(registered->bytes(), 2'000'000'000u);
  // A rerun writes the next version.
  EXPECT_EQ(registry_.RegisterOutput(d)->version(), 2u);

  // A job that read nothing writes data of its site's jurisdiction.
  v1::Job fresh;
  fresh.set_id("job-2");
  fresh.set_tenant("acme");
  fresh.add_outputs()->set_id("sim");
  v1::RegisteredDataset sim = Derive(fresh, fresh.outputs(0), kept, "frankfurt-1", "EU");
  EXPECT_EQ(sim.origin(), "EU");
  EXPECT_EQ(sim.categories(0), v1::Dataset::general);
}

TEST_F(RegistryTest, OnlyAnOfficerMakesADerivedDatasetLessRestricted) {
  ASSERT_TRUE(registry_.Create(Reads(), Tenant("acme"), nullptr).ok());
  v1::Job job;
  job.set_id("job-1");
  job.set_tenant("acme");
  job.add_datasets()->set_ref("reads-2026q3");
  job.add_outputs()->set_id("reads-clean");
  ASSERT_TRUE(registry_.Resolve(job).ok());
  ASSERT_TRUE(registry_.CheckOutputs(job).ok());
  v1::ProducedOutput kept;
  kept.set_store_path(OutputStorePath(job, job.outputs(0)));
  auto d = registry_.RegisterOutput(Derive(job, job.outputs(0), kept, "lingang-idc-1", "CN"));
  ASSERT_TRUE(d.ok()) << d.status();

  v1::RegisteredDataset general = *d;
  general.clear_categories();
  general.add_categories(v1::Dataset::general);
  auto st = registry_.Update("reads-clean", general, Tenant("acme"), nullptr);
  EXPECT_EQ(st.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(FieldOf(st.status()), "categories");
  v1::RegisteredDataset moved = *d;
  moved.set_origin("HK");
  EXPECT_EQ(FieldOf(registry_.Update("reads-clean", moved, Tenant("acme"), nullptr).status()),
            "origin");
  // Stricter is the tenant's to say; less strict is the officer's.
  v1::RegisteredDataset stricter = *d;
  stricter.add_categories(v1::Dataset::important);
  EXPECT_TRUE(registry_.Update("reads-clean", stricter, Tenant("acme"), nullptr).ok());
  auto officer = registry_.Update("reads-clean", general, Officer(), nullptr);
  ASSERT_TRUE(officer.ok()) << officer.status();
  EXPECT_EQ(officer->categories(0), v1::Dataset::general);
  EXPECT_EQ(officer->derived_from_job(), "job-1");
}

TEST_F(RegistryTest, ATenantCannotRegisterAnotherTenantsFilesOrTheAgentsCache) {
  ASSERT_TRUE(registry_.Create(Reads(), Tenant("acme"), nullptr).ok());
  for (const char* path : {"reads/2026q3", "reads", "reads/2026q3/part-1"}) {
    v1::RegisteredDataset d = Reads();
    d.set_id("mine");
    d.set_tenant("globex");
    d.mutable_location()->set_path(path);
    auto st = registry_.Create(d, Tenant("globex"), nullptr);
    EXPECT_EQ(st.status().code(), absl::StatusCode::kPermissionDenied) << path;
    EXPECT_EQ(FieldOf(st.status()), "location.path") << path;
  }
  // Neighbours are fine ("readsx" is not inside "reads"); hidden names and
  // other tenants' outputs/ are not.
  v1::RegisteredDataset d = Reads();
  d.set_id("mine");
  d.set_tenant("globex");
  d.mutable_location()->set_path("reads-2026q4");
  EXPECT_TRUE(registry_.Create(d, Tenant("globex"), nullptr).ok());
  for (const char* path : {".portolan-cache/reads-2026q3/v1/data", "outputs/acme/x"}) {
    d.set_id("other");
    d.mutable_location()->set_path(path);
    EXPECT_EQ(FieldOf(registry_.Create(d, Tenant("globex"), nullptr).status()), "location.path")
        << path;
  }
}

}  // namespace
}  // namespace portolan::datasets
