// SPDX-License-Identifier: Apache-2.0
// The CLI as a newcomer meets it (issue 25, item 5), against the running
// scheduler: a replayed idempotency key says so, tenant profiles print as
// tables, explain of a cancelled job does not promise a placement "yet", an
// unchanged policy makes no version, the RTT matrix tells sites with one
// prefix apart, submit's defaults hold for files, and an audit row where no
// border shows says why it is an export.
#include <gtest/gtest.h>

#include <fstream>

#include "absl/strings/str_cat.h"
#include "harness.h"
#include "portolan/codec/codec.h"
#include "portolan/v1/policy.pb.h"

namespace portolan::testing {
namespace {

using std::chrono::seconds;

class CliTourIT : public ::testing::Test {
 protected:
  void SetUp() override {
    c.StartScheduler();
    c.StartAgent("lg1", "lingang-idc-1");
    c.StartAgent("hk1", "hongkong-1");
  }
  std::string File(const std::string& name, const std::string& text) {
    const std::string path = c.dir() + "/" + name;
    std::ofstream(path) << text;
    return path;
  }
  Cluster c;
};

TEST_F(CliTourIT, WhatANewcomerSeesSaysWhatHappened) {
  // A retry with the same idempotency key returns the first job and says so.
  const std::string submit =
      "submit --tenant acme --idempotency-key order-42 --cpus 1 --memory-mb 64 -- /bin/true";
  auto [rc, out] = Cli(c, submit);
  ASSERT_EQ(rc, 0) << out;
  EXPECT_EQ(out.rfind("submitted job-", 0), 0u) << out;
  const std::string id = out.substr(10, out.find(' ', 10) - 10);
  std::tie(rc, out) = Cli(c, submit);
  EXPECT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("already submitted: idempotency key 'order-42' was used for " + id),
            std::string::npos)
      << out;

  // A job file without resources gets submit's defaults, as flags do.
  const std::string job = File("job.yaml", "tenant: acme\ncommand: [/bin/true]\n");
  std::tie(rc, out) = Cli(c, "-o json submit " + job);
  ASSERT_EQ(rc, 0) << out;
  v1::Job from_file;
  ASSERT_TRUE(codec::ParseJson(out, &from_file).ok()) << out;
  EXPECT_EQ(from_file.resources().cpus(), 1);
  EXPECT_EQ(from_file.resources().memory_mb(), 256);

  // A tenant profile is a table by default, the document with -o yaml.
  Call<v1::Tenant>(c, "PUT", "/v1/tenants/acme",
                   R"({"registered_zones": ["lingang"], "instruments": [{"type":
      "cn_standard_contract", "from": "CN", "to": "HK", "reference": "SC-42",
      "expires": "2027-01-31", "sectors": ["retail"]}]})");
  std::tie(rc, out) = Cli(c, "tenant acme");
  EXPECT_EQ(rc, 0);
  EXPECT_NE(out.find("zones:       lingang"), std::string::npos) << out;
  EXPECT_NE(out.find("INSTRUMENT"), std::string::npos) << out;
  EXPECT_NE(out.find("cn_standard_contract       CN->HK     SC-42"), std::string::npos) << out;
  EXPECT_NE(out.find("sectors retail"), std::string::npos) << out;
  std::tie(rc, out) = Cli(c, "-o yaml tenant acme");
  EXPECT_NE(out.find("registered_zones:"), std::string::npos) << out;

  // Explain of a job cancelled before any placement: it never got one.
  // (Pinned to Tokyo, where no agent runs: it waits.)
  const std::string waiting =
      File("tokyo.yaml", "tenant: acme\ncommand: [/bin/true]\nplacement: {sites: [tokyo-1]}\n");
  std::tie(rc, out) = Cli(c, "-o json submit " + waiting);
  v1::Job big;
  ASSERT_TRUE(codec::ParseJson(out, &big).ok()) << out;
  ASSERT_EQ(Cli(c, "cancel " + big.id()).first, 0);
  std::tie(rc, out) = Cli(c, "explain " + big.id(), true);
  EXPECT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("No placement: the job ended cancelled without ever being placed"),
            std::string::npos)
      << out;
  EXPECT_EQ(out.find("yet"), std::string::npos) << out;

  // The policy in force applied again: no new version.
  const auto before = c.client().PolicyVersions();
  ASSERT_TRUE(before.ok());
  std::tie(rc, out) = Cli(c, "policy get");
  const std::string policy = File("policy.json", out);
  std::tie(rc, out) = Cli(c, "policy apply " + policy);
  EXPECT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("unchanged: the file equals policy v1 in force; no new version"),
            std::string::npos)
      << out;
  EXPECT_EQ(c.client().PolicyVersions()->versions_size(), before->versions_size());

  // The RTT matrix numbers its columns as its rows.
  std::tie(rc, out) = Cli(c, "network");
  EXPECT_NE(out.find("(column N is row N)"), std::string::npos) << out;
  EXPECT_NE(out.find("[1] "), std::string::npos) << out;
  EXPECT_NE(out.find("] lingang-idc-2"), std::string::npos) << out;
  EXPECT_NE(out.find("] lingang-offshore-1"), std::string::npos) << out;

  // CN data already stored in Hong Kong and run there is still an export
  // from CN: its audit row says so.
  v1::Job hk = Call<v1::Job>(c, "POST", "/v1/jobs", R"({"tenant": "acme",
      "command": ["/bin/true"], "resources": {"cpus": 1, "memory_mb": 64},
      "placement": {"sites": ["hongkong-1"]}, "datasets": [{"id": "shop-stats",
      "origin": "CN", "location": "hongkong-1", "categories": ["general"]}]})",
                             201);
  ASSERT_TRUE(WaitForState(c.client(), hk.id(), v1::Job::succeeded, seconds(20)));
  std::tie(rc, out) = Cli(c, "audit --job " + hk.id());
  EXPECT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("CN-origin data already stored at hongkong-1 (HK): running it there is "
                     "still an export from CN"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("declared inline by the job"), std::string::npos) << out;
}

}  // namespace
}  // namespace portolan::testing
