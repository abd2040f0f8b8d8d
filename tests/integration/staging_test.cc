// SPDX-License-Identifier: Apache-2.0
// Staging through the real daemons on loopback (docs/datasets.md): agents at
// different emulated sites, each with its own data directory, move a
// dataset only under the scheduler's grant, verified at the source; a job's
// outputs become datasets that carry their inputs' origin and categories;
// transfers measure the path's throughput; a cache site keeps its copy.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <random>

#include "absl/strings/str_cat.h"
#include "harness.h"
#include "portolan/auth/auth.h"
#include "portolan/base/files.h"
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

// The data of a job placed at another site is pulled under a grant, agent to
// agent over mutual TLS, and reads back byte for byte; local data is linked;
// a grant signed by anyone but the scheduler, an expired one and one made out
// to another agent are refused at the source; the audit trail names the
// grant, the transfer and the refusals.
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
    // Its cache holds one of the datasets below (1.4 MB each), not two.
    hk1_ = c.StartAgent("hk1", "hongkong-1", kSynthetic,
                        {"--data-dir", c.SharedDir() + "/data-hk", "--data-listen", "127.0.0.1:0",
                         "--staging-cache-max-gb", "0.002"});
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
  Process* hk1_ = nullptr;
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
  // The staged copy goes with the attempt.
  const std::string copy = c.dir() + "/agent-hk1/jobs/" + remote.id() + "-1/work/inputs";
  EXPECT_TRUE(std::filesystem::is_directory(std::filesystem::path(copy).parent_path())) << copy;
  EXPECT_TRUE(WaitFor([&] { return !std::filesystem::exists(copy); }, seconds(5))) << copy;

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
  EXPECT_NE(pulled.status().message().find("not one of the scheduler's grant keys"),
            std::string::npos)
      << pulled.status();
  EXPECT_FALSE(std::filesystem::exists(c.dir() + "/stolen"));
  // Signed with the scheduler's own key, but expired; or made out to
  // another agent (sg1) and presented with hk1's certificate: refused too.
  auto own = grant::Signer::LoadOrCreate(c.dir() + "/state/grant-key.pem");
  ASSERT_TRUE(own.ok()) << own.status();
  v1::TransferGrant expired = g;
  expired.set_id("grant-expired");
  *expired.mutable_expires() = base::ToProto(absl::Now() - absl::Minutes(1));
  v1::TransferGrant retargeted = g;
  retargeted.set_id("grant-retargeted");
  retargeted.set_destination_agent("sg1");
  for (const auto& [bad, why] : {std::pair{expired, "expired"}, std::pair{retargeted, "sg1"}}) {
    *src.mutable_grant() = (*own)->Sign(bad);
    pulled = transfer::Pull(src, c.dir() + "/stolen", **ctx, nullptr);
    EXPECT_EQ(pulled.status().code(), absl::StatusCode::kPermissionDenied) << pulled.status();
    EXPECT_NE(pulled.status().message().find(why), std::string::npos) << pulled.status();
    EXPECT_FALSE(std::filesystem::exists(c.dir() + "/stolen"));
  }

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
          if (r.kind() == "grant") {
            EXPECT_EQ(r.to_site(), "hongkong-1");
          }
        }
        return kinds["grant"] == 1 && kinds["transfer"] == 1 && kinds["transfer_refused"] == 3;
      },
      seconds(10)))
      << kinds["grant"] << " grant, " << kinds["transfer"] << " transfer, "
      << kinds["transfer_refused"] << " refused";
}

// A job's output is registered as a dataset of its tenant that carries its
// inputs' origin, categories and subjects: it cannot go where they could not,
// and only an officer re-classifies it. Transfers feed the path's measured
// throughput (GET /v1/network, and data gravity when the policy says so); a
// cache site links a later job's input from its copy.
TEST_F(StagingIT, OutputsInheritTheirInputsAndTransfersAreMeasuredAndCached) {
  // A cohort table of CN personal data at Lingang, 250,000 subjects.
  std::filesystem::create_directories(data_ + "/cohort");
  std::ofstream(data_ + "/cohort/table.csv") << "id,name\n1,li\n2,wang\n";
  Call<v1::RegisteredDataset>(c, "POST", "/v1/datasets", R"({"id": "cohort", "tenant": "acme",
      "origin": "CN", "location": {"site": "lingang-idc-1", "path": "cohort"}, "size_gb": 0.001,
      "categories": ["personal"], "subjects": 250000, "purposes": ["research"]})",
                              201);
  // Another tenant cannot claim the same files as its own.
  std::string out;
  auto code = c.ClientWith(Cluster::kGlobexToken)
                  ->Raw("POST", "/v1/datasets", R"({"id": "mine", "origin": "CN",
      "location": {"site": "lingang-idc-1", "path": "cohort/table.csv"},
      "categories": ["general"]})",
                        &out);
  ASSERT_TRUE(code.ok());
  EXPECT_EQ(*code, 403) << out;

  // A job at Lingang upper-cases it into the output cohort-clean.
  const std::string job_body = R"({"tenant": "acme", "resources": {"cpus": 1, "memory_mb": 64},
      "command": ["/bin/sh", "-c", "tr a-z A-Z < \"$PORTOLAN_INPUTS\"/cohort/table.csv > \"$PORTOLAN_OUTPUTS\"/clean/table.csv"],
      "placement": {"sites": ["lingang-idc-1"]}, "datasets": [{"ref": "cohort"}],
      "outputs": [{"id": "cohort-clean", "path": "clean"}]})";
  v1::Job producer = Call<v1::Job>(c, "POST", "/v1/jobs", job_body, 201);
  ASSERT_TRUE(WaitForState(c.client(), producer.id(), v1::Job::succeeded, seconds(30)))
      << c.client().GetJob(producer.id())->reason();
  producer = *c.client().GetJob(producer.id());
  const std::string upper = "ID,NAME\n1,LI\n2,WANG\n";
  ASSERT_EQ(producer.produced_size(), 1);
  const v1::ProducedOutput& kept = producer.produced(0);
  EXPECT_EQ(kept.error(), "");
  EXPECT_EQ(kept.version(), 1u);
  EXPECT_EQ(kept.bytes(), upper.size());
  EXPECT_EQ(kept.sha256(), auth::Sha256Hex(upper));
  EXPECT_EQ(kept.site(), "lingang-idc-1");
  std::ifstream kept_file(data_ + "/" + kept.store_path() + "/table.csv");
  const std::string on_disk((std::istreambuf_iterator<char>(kept_file)),
                            std::istreambuf_iterator<char>());
  EXPECT_EQ(on_disk, upper) << kept.store_path();

  // Registered with the inputs' facts, declared by the job.
  auto clean = Call<v1::RegisteredDataset>(c, "GET", "/v1/datasets/cohort-clean");
  EXPECT_EQ(clean.tenant(), "acme");
  EXPECT_EQ(clean.origin(), "CN");
  ASSERT_EQ(clean.categories_size(), 1);
  EXPECT_EQ(clean.categories(0), v1::Dataset::personal);
  EXPECT_EQ(clean.subjects(), 250000u);
  EXPECT_EQ(clean.derived_from_job(), producer.id());
  ASSERT_EQ(clean.derived_from_size(), 1);
  EXPECT_EQ(clean.derived_from(0), "cohort@1");
  EXPECT_EQ(clean.classification().by(), "job:" + producer.id());
  EXPECT_EQ(clean.location().path(), kept.store_path());

  // It cannot go where its input could not: Singapore needs a contract acme lacks.
  const std::string reader = R"({"tenant": "acme", "resources": {"cpus": 1, "memory_mb": 64},
      "command": ["/bin/sh", "-c", "sha256sum < \"$PORTOLAN_INPUTS\"/cohort-clean/table.csv"],
      "placement": {"sites": ["SITE"]}, "datasets": [{"ref": "cohort-clean"}]})";
  auto at = [&](const std::string& site) {
    std::string b = reader;
    b.replace(b.find("SITE"), 4, site);
    return b;
  };
  auto plan = Call<v1::Decision>(c, "POST", "/v1/plan", at("singapore-1"));
  EXPECT_FALSE(plan.feasible());
  EXPECT_NE(plan.reason().find("cn-pi-100k-1m"), std::string::npos) << plan.reason();
  // The tenant cannot make it general; globex cannot write over it.
  code =
      c.ClientWith(Cluster::kAcmeToken)
          ->Raw("PUT", "/v1/datasets/cohort-clean",
                absl::StrCat(R"({"origin": "CN", "location": {"site": "lingang-idc-1", "path": ")",
                             kept.store_path(), R"("}, "categories": ["general"],
                                "subjects": 250000, "purposes": ["research"]})"),
                &out);
  ASSERT_TRUE(code.ok());
  EXPECT_EQ(*code, 403) << out;
  v1::ErrorResponse err;
  ASSERT_TRUE(codec::ParseJson(out, &err).ok()) << out;
  EXPECT_EQ(err.error().field(), "categories");
  code = c.ClientWith(Cluster::kGlobexToken)
             ->Raw("POST", "/v1/jobs", R"({"command": ["/bin/true"],
      "resources": {"cpus": 1, "memory_mb": 64}, "outputs": [{"id": "cohort-clean"}]})",
                   &out);
  ASSERT_TRUE(code.ok());
  EXPECT_EQ(*code, 409) << out;
  // At Lingang a later stage reads exactly what the first wrote.
  v1::Job consumer = Call<v1::Job>(c, "POST", "/v1/jobs", at("lingang-idc-1"), 201);
  ASSERT_TRUE(WaitForState(c.client(), consumer.id(), v1::Job::succeeded, seconds(30)))
      << c.client().GetJob(consumer.id())->reason();
  auto logs = c.client().Logs(consumer.id());
  ASSERT_TRUE(logs.ok());
  EXPECT_EQ(logs->stdout().substr(0, 64), auth::Sha256Hex(upper)) << logs->stderr();

  // Hong Kong may keep staged copies; data gravity uses measured figures.
  v1::Policy p = Call<v1::Policy>(c, "GET", "/v1/policy");
  p.mutable_datasets()->add_cache_sites("hongkong-1");
  p.mutable_datasets()->set_use_measured_throughput(true);
  p.clear_version();
  Call<v1::PolicyVersion>(c, "PUT", "/v1/policy", codec::ToJson(p));
  Call<v1::RegisteredDataset>(c, "POST", "/v1/datasets", R"({"id": "reads-2026q3",
      "tenant": "acme", "origin": "CN", "location": {"site": "lingang-idc-1",
      "path": "reads/2026q3"}, "size_gb": 0.001, "categories": ["general"]})",
                              201);
  auto before = Call<v1::Decision>(c, "POST", "/v1/plan", R"({"tenant": "acme",
      "command": ["/bin/true"], "resources": {"cpus": 1, "memory_mb": 64},
      "placement": {"sites": ["hongkong-1"]}, "datasets": [{"ref": "reads-2026q3"}]})");
  const std::string want = auth::Sha256Hex(content_);
  v1::Job first = RunAt("hongkong-1");
  ASSERT_EQ(first.inputs_size(), 1);
  EXPECT_FALSE(first.inputs(0).cached());
  EXPECT_GT(first.inputs(0).seconds(), 0);
  v1::Job second = RunAt("hongkong-1");
  ASSERT_EQ(second.inputs_size(), 1);
  EXPECT_TRUE(second.inputs(0).cached());
  EXPECT_EQ(second.inputs(0).sha256(), want);
  logs = c.client().Logs(second.id());
  ASSERT_TRUE(logs.ok());
  EXPECT_EQ(logs->stdout().substr(0, 64), want);

  // One transfer measured on lingang-idc-1 -> hongkong-1, shown beside the
  // configured figure, and used for the transfer estimate.
  auto net = Call<v1::NetworkView>(c, "GET", "/v1/network");
  bool found = false;
  for (const v1::RttEntry& e : net.matrix()) {
    if (e.from() != "lingang-idc-1" || e.to() != "hongkong-1") continue;
    found = true;
    EXPECT_EQ(e.measured_transfers(), 1u);
    EXPECT_GT(e.measured_gbps(), 0);
    EXPECT_TRUE(e.has_measured_at());
  }
  EXPECT_TRUE(found);
  auto after = Call<v1::Decision>(c, "POST", "/v1/plan", R"({"tenant": "acme",
      "command": ["/bin/true"], "resources": {"cpus": 1, "memory_mb": 64},
      "placement": {"sites": ["hongkong-1"]}, "datasets": [{"ref": "reads-2026q3"}]})");
  for (const auto& [d, measured] : {std::pair{&before, false}, std::pair{&after, true}}) {
    bool seen = false;
    for (const v1::SiteDecision& sd : d->sites()) {
      if (sd.site() != "hongkong-1") continue;
      seen = true;
      EXPECT_EQ(sd.transfer_measured(), measured);
    }
    EXPECT_TRUE(seen);
  }
  const std::string ca = "--ca " + c.pki() + "/ca.pem ";  // the REST server speaks TLS here
  auto [rc, text] = Cli(c, ca + "network", true);
  EXPECT_EQ(rc, 0);
  EXPECT_NE(text.find("lingang-idc-1 -> hongkong-1:"), std::string::npos) << text;
  std::tie(rc, text) = Cli(c, ca + "job " + first.id(), true);
  EXPECT_EQ(rc, 0) << text;
  EXPECT_NE(text.find("Mbit/s in"), std::string::npos) << text;
}

// What a job leaves in $PORTOLAN_OUTPUTS is copied by the agent without
// following a symbolic link: a job that swaps its output directory for a link
// to somewhere else fails with nothing kept and the place untouched; a link
// inside an output is not kept.
TEST_F(StagingIT, AJobCannotLeadTheAgentOutOfItsOutputs) {
  const std::string secret = c.SharedDir() + "/secret";
  std::filesystem::create_directories(secret);
  std::ofstream(secret + "/key") << "s3cret\n";
  std::filesystem::permissions(secret + "/key", std::filesystem::perms(0600));
  auto run = [&](const std::string& script, const std::string& id) {
    v1::Job j =
        Call<v1::Job>(c, "POST", "/v1/jobs",
                      absl::StrCat(R"({"tenant": "acme", "resources": {"cpus": 1, "memory_mb": 64},
            "command": ["/bin/sh", "-c", ")",
                                   script, R"("], "placement": {"sites": ["lingang-idc-1"]},
            "outputs": [{"id": ")",
                                   id, R"("}]})"),
                      201);
    EXPECT_TRUE(WaitFor(
        [&] {
          auto got = c.client().GetJob(j.id());
          return got.ok() &&
                 (got->state() == v1::Job::succeeded || got->state() == v1::Job::failed);
        },
        seconds(30)));
    return *c.client().GetJob(j.id());
  };
  v1::Job swapped = run(
      absl::StrCat("rm -r $PORTOLAN_OUTPUTS/a1 && ln -s ", secret, " $PORTOLAN_OUTPUTS/a1"), "a1");
  EXPECT_EQ(swapped.state(), v1::Job::failed);
  EXPECT_NE(swapped.reason().find("outputs not kept: a1: no directory at $PORTOLAN_OUTPUTS/a1"),
            std::string::npos)
      << swapped.reason();
  EXPECT_EQ(std::filesystem::status(secret + "/key").permissions() & std::filesystem::perms::all,
            std::filesystem::perms(0600));
  EXPECT_FALSE(std::filesystem::exists(data_ + "/outputs/acme/a1/" + swapped.id() + "-1/key"));
  EXPECT_EQ(Call<v1::Job>(c, "GET", "/v1/jobs/" + swapped.id()).produced(0).version(), 0u);

  v1::Job linked =
      run(absl::StrCat("ln -s ", secret,
                       "/key $PORTOLAN_OUTPUTS/b1/key && echo hi > $PORTOLAN_OUTPUTS/b1/ok"),
          "b1");
  ASSERT_EQ(linked.state(), v1::Job::succeeded) << linked.reason();
  ASSERT_EQ(linked.produced_size(), 1);
  EXPECT_EQ(linked.produced(0).files(), 1u);
  const std::string kept = data_ + "/" + linked.produced(0).store_path();
  EXPECT_TRUE(std::filesystem::is_regular_file(kept + "/ok"));
  EXPECT_FALSE(std::filesystem::exists(std::filesystem::symlink_status(kept + "/key")));
}

// A cache site's agent keeps pulled copies within --staging-cache-max-gb:
// a second dataset's copy pushes out the one used longest ago, whose next
// job pulls it again, and reads the same bytes.
TEST_F(StagingIT, ACacheOverItsBoundDropsTheLeastRecentlyUsedCopyWhichIsPulledAgain) {
  v1::Policy p = Call<v1::Policy>(c, "GET", "/v1/policy");
  p.mutable_datasets()->add_cache_sites("hongkong-1");
  p.clear_version();
  Call<v1::PolicyVersion>(c, "PUT", "/v1/policy", codec::ToJson(p));
  std::filesystem::create_directories(data_ + "/reads/2026q4");
  std::ofstream(data_ + "/reads/2026q4/part-1", std::ios::binary) << std::string(1400 * 1024, 'q');
  for (const char* q : {"q3", "q4"}) {
    Call<v1::RegisteredDataset>(
        c, "POST", "/v1/datasets",
        absl::StrCat(R"({"id": "reads-2026)", q, R"(", "tenant": "acme", "origin": "CN",
            "location": {"site": "lingang-idc-1", "path": "reads/2026)",
                     q, R"("}, "size_gb": 0.001, "categories": ["general"]})"),
        201);
  }
  const std::string cache = c.SharedDir() + "/data-hk/.portolan-cache/";
  auto cached = [&](const std::string& dataset) {
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(cache + dataset, ec))
      if (e.path().filename().string().rfind("v", 0) == 0) return true;
    return false;
  };

  v1::Job first = RunAt("hongkong-1");  // reads-2026q3, pulled and kept
  ASSERT_EQ(first.inputs_size(), 1);
  EXPECT_FALSE(first.inputs(0).cached());
  EXPECT_TRUE(cached("reads-2026q3"));
  v1::Job other = Call<v1::Job>(c, "POST", "/v1/jobs", R"({"tenant": "acme",
      "resources": {"cpus": 1, "memory_mb": 64}, "placement": {"sites": ["hongkong-1"]},
      "command": ["/bin/sh", "-c", "wc -c < \"$PORTOLAN_INPUTS\"/reads-2026q4/part-1"],
      "datasets": [{"ref": "reads-2026q4"}]})",
                                201);
  ASSERT_TRUE(WaitForState(c.client(), other.id(), v1::Job::succeeded, seconds(30)))
      << c.client().GetJob(other.id())->reason();
  auto logs = c.client().Logs(other.id());
  ASSERT_TRUE(logs.ok());
  EXPECT_EQ(logs->stdout(), absl::StrCat(1400 * 1024, "\n"));
  // Both together are over 0.002 GiB: the older copy went, the new one stays.
  EXPECT_TRUE(cached("reads-2026q4"));
  EXPECT_FALSE(cached("reads-2026q3"));
  const std::string log = base::ReadSmallFile(hk1_->log_path());
  EXPECT_NE(log.find("removed 1 least recently used entry"), std::string::npos) << log;

  v1::Job again = RunAt("hongkong-1");
  ASSERT_EQ(again.inputs_size(), 1);
  EXPECT_FALSE(again.inputs(0).cached()) << "read from a copy that was removed";
  EXPECT_EQ(again.inputs(0).sha256(), auth::Sha256Hex(content_));
  logs = c.client().Logs(again.id());
  ASSERT_TRUE(logs.ok());
  EXPECT_EQ(logs->stdout().substr(0, 64), auth::Sha256Hex(content_));
  EXPECT_TRUE(cached("reads-2026q3"));
  EXPECT_FALSE(cached("reads-2026q4"));
}

}  // namespace
}  // namespace portolan::testing
