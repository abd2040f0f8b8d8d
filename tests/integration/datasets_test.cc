// SPDX-License-Identifier: Apache-2.0
// The dataset registry through the running scheduler (docs/datasets.md):
// tenants register their own datasets, only an admin or a data officer
// attests, jobs are judged on the registry's facts (not their own word), the
// policy can require attestation, and every version survives a restart.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <random>

#include "absl/strings/str_cat.h"
#include "harness.h"
#include "portolan/auth/auth.h"
#include "portolan/base/strings.h"
#include "portolan/codec/codec.h"
#include "portolan/grant/grant.h"
#include "portolan/tls/tls.h"
#include "portolan/transfer/transfer.h"
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

// The data of a job placed at another site is pulled under a grant, agent to
// agent over mutual TLS, and reads back byte for byte; local data is linked;
// a grant signed by anyone but the scheduler is refused at the source; the
// audit trail names the grant, the transfer and the refusal.
class StagingIT : public ::testing::Test {
 protected:
  void SetUp() override {
    c.EnableTls();
    c.StartScheduler();
    // Outside /tmp, which a sandboxed job sees empty.
    data_ = c.SharedDir() + "/data-lg";
    std::filesystem::create_directories(data_ + "/reads/2026q3");
    std::mt19937 rng(26);
    for (const char* part : {"part-1", "part-2"}) {
      std::string blob(700 * 1024 + 3, '\0');
      for (char& ch : blob) ch = static_cast<char>(rng());
      std::ofstream(data_ + "/reads/2026q3/" + part, std::ios::binary) << blob;
      content_ += blob;
    }
    lg1_ = c.StartAgent("lg1", "lingang-idc-1", kSynthetic,
                        {"--data-dir", data_, "--data-listen", "127.0.0.1:0"});
    c.StartAgent("hk1", "hongkong-1", kSynthetic,
                 {"--data-dir", c.SharedDir() + "/data-hk", "--data-listen", "127.0.0.1:0"});
  }
  // The job's stdout: the SHA-256 of its input's two parts, as sha256sum says.
  v1::Job RunAt(const std::string& site) {
    const std::string body = absl::StrCat(
        R"({"tenant": "acme", "resources": {"cpus": 1, "memory_mb": 64},
        "command": ["/bin/sh", "-c", "cat \"$PORTOLAN_INPUTS\"/reads-2026q3/part-1 \"$PORTOLAN_INPUTS\"/reads-2026q3/part-2 | sha256sum"],
        "placement": {"sites": [")",
        site, R"("]}, "datasets": [{"ref": "reads-2026q3"}]})");
    v1::Job j = Call<v1::Job>(c, "POST", "/v1/jobs", body, 201);
    EXPECT_TRUE(WaitForState(c.client(), j.id(), v1::Job::succeeded, seconds(30)))
        << c.client().GetJob(j.id())->reason();
    return *c.client().GetJob(j.id());
  }
  static constexpr const char* kSynthetic = "pack:1 numa:1(memory=16GiB) core:4 pu:2";
  Cluster c;
  std::string data_, content_;
  Process* lg1_ = nullptr;
};

TEST_F(StagingIT, DataMovesOnlyUnderTheSchedulersGrantAndIsAudited) {
  Call<v1::RegisteredDataset>(c, "POST", "/v1/datasets", R"({"id": "reads-2026q3",
      "tenant": "acme", "origin": "CN", "location": {"site": "lingang-idc-1",
      "path": "reads/2026q3"}, "size_gb": 0.001, "categories": ["general"]})",
                              201);
  const std::string want = auth::Sha256Hex(content_);

  // At Hong Kong: pulled from lg1.
  v1::Job remote = RunAt("hongkong-1");
  auto logs = c.client().Logs(remote.id());
  ASSERT_TRUE(logs.ok()) << logs.status();
  EXPECT_EQ(logs->stdout().substr(0, 64), want) << logs->stdout() << logs->stderr();
  ASSERT_EQ(remote.inputs_size(), 1);
  EXPECT_TRUE(remote.inputs(0).done());
  EXPECT_FALSE(remote.inputs(0).local());
  EXPECT_EQ(remote.inputs(0).from_agent(), "lg1");
  EXPECT_EQ(remote.inputs(0).bytes_done(), content_.size());
  EXPECT_EQ(remote.inputs(0).sha256(), want);
  bool staged = false;
  for (const auto& e : remote.events()) staged |= e.state() == v1::Job::staging;
  EXPECT_TRUE(staged) << "no staging event";

  // At Lingang: linked where it lives.
  v1::Job local = RunAt("lingang-idc-1");
  logs = c.client().Logs(local.id());
  ASSERT_TRUE(logs.ok());
  EXPECT_EQ(logs->stdout().substr(0, 64), want) << logs->stdout() << logs->stderr();
  ASSERT_EQ(local.inputs_size(), 1);
  EXPECT_TRUE(local.inputs(0).local());

  // A grant not signed by the scheduler, presented with hk1's own
  // certificate at lg1's data endpoint: refused there.
  std::string endpoint;
  ASSERT_TRUE(WaitFor(
      [&] {
        std::ifstream log(lg1_->log_path());
        std::string line;
        while (std::getline(log, line)) {
          const size_t at = line.find("data endpoint ");
          if (at != std::string::npos)
            endpoint = line.substr(at + 14, line.find(' ', at + 14) - at - 14);
        }
        return !endpoint.empty();
      },
      seconds(5)));
  auto stranger = grant::Signer::LoadOrCreate(c.dir() + "/stranger.pem");
  ASSERT_TRUE(stranger.ok());
  v1::TransferGrant g;
  g.set_id("grant-forged");
  g.set_job_id(remote.id());
  g.set_dataset("reads-2026q3");
  g.set_source_site("lingang-idc-1");
  g.set_path("reads/2026q3");
  g.set_destination_agent("hk1");
  *g.mutable_expires() = base::ToProto(absl::Now() + absl::Hours(1));
  v1::StageSource src;
  src.set_dataset("reads-2026q3");
  src.set_site("lingang-idc-1");
  src.add_sources(endpoint);
  *src.mutable_grant() = (*stranger)->Sign(g);
  const std::string hk = c.AgentCert("hk1", "hongkong-1");
  auto ctx = tls::MakeClientContext({hk + ".pem", hk + ".key", c.pki() + "/ca.pem"});
  ASSERT_TRUE(ctx.ok()) << ctx.status();
  auto pulled = transfer::Pull(src, c.dir() + "/stolen", **ctx, nullptr);
  EXPECT_EQ(pulled.status().code(), absl::StatusCode::kPermissionDenied) << pulled.status();
  EXPECT_FALSE(std::filesystem::exists(c.dir() + "/stolen"));

  // The audit: the grant, lg1's account of the transfer (same checksum),
  // and of the refusal.
  std::map<std::string, int> kinds;
  ASSERT_TRUE(WaitFor(
      [&] {
        auto audit = c.client().Audit({});
        if (!audit.ok()) return false;
        kinds.clear();
        for (const auto& r : audit->records()) {
          ++kinds[r.kind()];
          if (r.kind() == "transfer") {
            EXPECT_EQ(r.sha256(), want);
            EXPECT_EQ(r.actor(), "agent:hk1");
            EXPECT_EQ(r.agent(), "lg1");
          }
          if (r.kind() == "grant") EXPECT_EQ(r.to_site(), "hongkong-1");
        }
        return kinds["grant"] == 1 && kinds["transfer"] == 1 && kinds["transfer_refused"] == 1;
      },
      seconds(10)))
      << kinds["grant"] << " grant, " << kinds["transfer"] << " transfer, "
      << kinds["transfer_refused"] << " refused";
}

}  // namespace
}  // namespace portolan::testing
