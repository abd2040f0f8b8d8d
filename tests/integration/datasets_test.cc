// SPDX-License-Identifier: Apache-2.0
// The dataset registry through the running scheduler (docs/datasets.md):
// tenants register their own datasets, only an admin or a data officer
// attests, jobs are judged on the registry's facts (not their own word), the
// policy can require attestation, and every version survives a restart.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>

#include "absl/strings/str_cat.h"
#include "harness.h"
#include "portolan/auth/auth.h"
#include "portolan/base/strings.h"
#include "portolan/codec/codec.h"
#include "portolan/v1/dataset.pb.h"
#include "portolan/v1/policy.pb.h"

namespace portolan::testing {
namespace {

using std::chrono::seconds;

constexpr char kReads[] = R"({"id": "reads-2026q3", "origin": "CN",
    "location": {"site": "lingang-idc-1", "path": "reads/2026q3"}, "size_gb": 5,
    "categories": ["personal"], "subjects": 250000, "sector": "biomedicine",
    "purposes": ["contract_performance", "research"]})";

// A job of acme that reads the registered dataset, pinned to `site`.
std::string JobAt(const std::string& site, const std::string& extra = "") {
  return absl::StrCat(R"({"name": "align", "tenant": "acme", "command": ["/bin/true"],
      "resources": {"cpus": 1, "memory_mb": 64}, "placement": {"sites": [")",
                      site, R"("]}, "datasets": [{"ref": "reads-2026q3", "purpose": "research")",
                      extra, "}]}");
}

// A call with `token`: {status, body}.
std::pair<int, std::string> As(Cluster& c, const char* token, const std::string& method,
                               const std::string& path, const std::string& body = "") {
  std::string out;
  auto code = c.ClientWith(token)->Raw(method, path, body, &out);
  EXPECT_TRUE(code.ok()) << code.status();
  return {code.ok() ? *code : 0, out};
}

v1::ErrorResponse Error(const std::string& body) {
  v1::ErrorResponse e;
  EXPECT_TRUE(codec::ParseJson(body, &e).ok()) << body;
  return e;
}

class DatasetsIT : public ::testing::Test {
 protected:
  void SetUp() override {
    c.StartScheduler();
    // The registered dataset's files, where lg1 finds them (outside /tmp,
    // which a sandboxed job sees empty).
    const std::string data = c.SharedDir() + "/data";
    std::filesystem::create_directories(data + "/reads/2026q3");
    std::ofstream(data + "/reads/2026q3/part-1") << "GATTACA\n";
    c.StartAgent("lg1", "lingang-idc-1", "pack:1 numa:1(memory=16GiB) core:4 pu:2",
                 {"--data-dir", data});
    c.StartAgent("sg1", "singapore-1");
  }
  Cluster c;
};

TEST_F(DatasetsIT, TenantsRegisterOfficersAttestAndJobsAreJudgedOnTheRegistry) {
  // acme registers its table: declared, version 1, itself the owner.
  auto [code, body] = As(c, Cluster::kAcmeToken, "POST", "/v1/datasets", kReads);
  ASSERT_EQ(code, 201) << body;
  v1::RegisteredDataset d;
  ASSERT_TRUE(codec::ParseJson(body, &d).ok());
  EXPECT_EQ(d.tenant(), "acme");
  EXPECT_EQ(d.version(), 1u);
  EXPECT_EQ(d.classification().state(), v1::Classification::declared);

  // globex neither sees it nor registers as acme; acme cannot attest.
  EXPECT_EQ(As(c, Cluster::kGlobexToken, "GET", "/v1/datasets/reads-2026q3").first, 404);
  std::tie(code, body) = As(c, Cluster::kGlobexToken, "POST", "/v1/datasets",
                            R"({"id": "x", "tenant": "acme", "origin": "CN",
      "location": {"site": "lingang-idc-1", "path": "x"}, "categories": ["general"]})");
  EXPECT_EQ(code, 403) << body;
  EXPECT_EQ(Error(body).error().field(), "tenant");
  std::tie(code, body) = As(c, Cluster::kAcmeToken, "PUT", "/v1/datasets/reads-2026q3",
                            absl::StrCat(std::string(kReads).substr(0, sizeof(kReads) - 2),
                                         R"(, "classification": {"state": "attested"}})"));
  EXPECT_EQ(code, 403) << body;
  EXPECT_EQ(Error(body).error().field(), "classification.state");
  // An unknown site is refused naming the field.
  std::tie(code, body) = As(c, Cluster::kAcmeToken, "POST", "/v1/datasets",
                            R"({"id": "y", "origin": "CN", "location": {"site": "mars-1",
      "path": "y"}, "categories": ["general"]})");
  EXPECT_EQ(code, 400) << body;
  EXPECT_EQ(Error(body).error().field(), "location.site");

  // The policy now requires attested registrations for personal data.
  v1::Policy p = Call<v1::Policy>(c, "GET", "/v1/policy");
  p.mutable_datasets()->add_require_attested(v1::Dataset::personal);
  p.clear_version();
  Call<v1::PolicyVersion>(c, "PUT", "/v1/policy", codec::ToJson(p));

  std::tie(code, body) = As(c, Cluster::kAcmeToken, "POST", "/v1/jobs", JobAt("lingang-idc-1"));
  EXPECT_EQ(code, 409) << body;
  EXPECT_EQ(Error(body).error().code(), "dataset_not_attested");
  EXPECT_EQ(Error(body).error().field(), "datasets[0].ref");

  // The data officer attests it: version 2.
  std::tie(code, body) =
      As(c, Cluster::kOfficerToken, "PUT", "/v1/datasets/reads-2026q3",
         absl::StrCat(std::string(kReads).substr(0, sizeof(kReads) - 2),
                      R"(, "tenant": "acme", "classification": {"state": "attested",
                          "note": "DPIA-2026-17"}})"));
  ASSERT_EQ(code, 200) << body;
  ASSERT_TRUE(codec::ParseJson(body, &d).ok());
  EXPECT_EQ(d.version(), 2u);
  EXPECT_EQ(d.classification().state(), v1::Classification::attested);
  EXPECT_EQ(d.classification().by(), "data_officer:lee");

  // A job that restates a fact the registry holds is refused.
  std::tie(code, body) = As(c, Cluster::kAcmeToken, "POST", "/v1/jobs",
                            JobAt("lingang-idc-1", R"(, "categories": ["general"])"));
  EXPECT_EQ(code, 400) << body;
  EXPECT_EQ(Error(body).error().field(), "datasets[0].categories");

  // Now it runs, judged on version 2's facts.
  std::tie(code, body) = As(c, Cluster::kAcmeToken, "POST", "/v1/jobs", JobAt("lingang-idc-1"));
  ASSERT_EQ(code, 201) << body;
  v1::Job job;
  ASSERT_TRUE(codec::ParseJson(body, &job).ok());
  ASSERT_EQ(job.datasets_size(), 1);
  EXPECT_EQ(job.datasets(0).origin(), "CN");
  EXPECT_EQ(job.datasets(0).subjects(), 250000u);
  EXPECT_EQ(job.datasets(0).version(), 2u);
  EXPECT_EQ(job.datasets(0).classification(), v1::Classification::attested);
  EXPECT_TRUE(WaitFor([&] { return c.client().GetJob(job.id())->state() == v1::Job::succeeded; },
                      seconds(20)));

  // To Singapore the registry's 250,000 subjects need a contract acme lacks.
  std::tie(code, body) = As(c, Cluster::kAcmeToken, "POST", "/v1/plan", JobAt("singapore-1"));
  ASSERT_EQ(code, 200) << body;
  v1::Decision plan;
  ASSERT_TRUE(codec::ParseJson(body, &plan).ok());
  EXPECT_FALSE(plan.feasible());
  EXPECT_NE(plan.reason().find("cn-pi-100k-1m"), std::string::npos) << plan.reason();

  // The audit trail names both versions and who made them.
  std::tie(code, body) = As(c, Cluster::kOfficerToken, "GET", "/v1/audit?tenant=acme");
  ASSERT_EQ(code, 200) << body;
  v1::ListAuditResponse audit;
  ASSERT_TRUE(codec::ParseJson(body, &audit).ok());
  int dataset_rows = 0;
  for (const auto& r : audit.records()) {
    if (r.kind() != "dataset") continue;
    ++dataset_rows;
    EXPECT_TRUE(r.actor() == "tenant:acme" || r.actor() == "data_officer:lee") << r.actor();
  }
  EXPECT_EQ(dataset_rows, 2);

  // Every version survives a restart; the CLI lists it.
  c.StopScheduler();
  c.StartScheduler(c.rpc_port());
  std::tie(code, body) = As(c, Cluster::kAcmeToken, "GET", "/v1/datasets/reads-2026q3/versions");
  ASSERT_EQ(code, 200) << body;
  v1::DatasetVersions versions;
  ASSERT_TRUE(codec::ParseJson(body, &versions).ok());
  ASSERT_EQ(versions.versions_size(), 2);
  EXPECT_EQ(versions.versions(0).classification().state(), v1::Classification::attested);
  auto [rc, out] = Cli(c, "datasets");
  EXPECT_EQ(rc, 0);
  EXPECT_NE(out.find("reads-2026q3"), std::string::npos) << out;
  EXPECT_NE(out.find("attested"), std::string::npos) << out;
}

}  // namespace
}  // namespace portolan::testing
