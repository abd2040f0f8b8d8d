// SPDX-License-Identifier: Apache-2.0
// Tenants on a shared agent, through the real binaries as an operator runs
// them (root, mutual TLS, HTTPS): two tenants' jobs on one agent cannot reach
// each other, the scheduler's database or the agent's key; memory limits
// hold; the daemons keep their state private and refuse keys and tokens
// other users can read.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "harness.h"
#include "portolan/codec/codec.h"
#include "portolan/v1/policy.pb.h"

namespace portolan::testing {
namespace {

using std::chrono::seconds;

std::string ReadAll(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

mode_t Mode(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 ? (st.st_mode & 07777) : 07777;
}

v1::Job Sh(const std::string& script, int memory_mb = 64) {
  v1::Job j;
  j.add_command("/bin/sh");
  j.add_command("-c");
  j.add_command(script);
  j.mutable_resources()->set_cpus(1);
  j.mutable_resources()->set_memory_mb(memory_mb);
  j.mutable_placement()->add_sites("lingang-idc-1");
  return j;
}

class IsolationIT : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "the agent isolates tenants as root only";
  }
};

TEST_F(IsolationIT, TenantsOnOneAgentCannotReachEachOtherTheSchedulerOrTheAgentKey) {
  Cluster c;
  c.EnableTls();
  c.StartScheduler();
  c.StartAgent("lg1", "lingang-idc-1");
  auto acme = c.ClientWith(Cluster::kAcmeToken);
  auto globex = c.ClientWith(Cluster::kGlobexToken);

  // What the agent enforces, as the scheduler shows it.
  auto agent = c.client().GetAgent("lg1");
  ASSERT_TRUE(agent.ok()) << agent.status();
  const v1::Isolation& iso = agent->isolation();
  EXPECT_TRUE(iso.uid_per_job());
  EXPECT_TRUE(iso.pid_ns());
  EXPECT_TRUE(iso.mount_ns());
  EXPECT_NE(iso.cgroup(), v1::Isolation::none) << "this machine mounts cgroup v1 memory";
  EXPECT_TRUE(iso.memory_limit());
  EXPECT_TRUE(iso.tree_kill());

  v1::Job a = Sh("echo s3cret > secret.txt; sleep 120");
  (*a.mutable_env())["API_KEY"] = "acme-key-123";
  auto aj = acme->Submit(a);
  ASSERT_TRUE(aj.ok()) << aj.status();
  const pid_t acme_pid = PrintedPid(*acme, aj->id());
  ASSERT_GT(acme_pid, 0);
  const std::string acme_dir = c.dir() + "/agent-lg1/jobs/" + aj->id() + "-1/work";
  ASSERT_TRUE(
      WaitFor([&] { return std::filesystem::exists(acme_dir + "/secret.txt"); }, seconds(20)));

  const std::string db = c.dir() + "/state/portolan.db";
  const std::string key = c.pki() + "/agent-lg1.key";
  const std::string probe = absl::StrCat(
      "cat ", acme_dir, "/secret.txt >/dev/null 2>&1 && echo READ_SECRET;", "ls ", acme_dir,
      " >/dev/null 2>&1 && echo LISTED;", "echo x > ", acme_dir,
      "/planted 2>/dev/null && echo WROTE;", "cat ../../", aj->id(),
      "-1/work/secret.txt >/dev/null 2>&1 && echo READ_RELATIVE;", "kill -0 ", acme_pid,
      " 2>/dev/null && echo SIGNALLED;", "cat /proc/", acme_pid,
      "/environ 2>/dev/null | grep -q acme-key && echo ENVIRON;",
      "grep -l acme-key /proc/[0-9]*/environ 2>/dev/null && echo ENVIRON_SCAN;",
      "ps -eo args= 2>/dev/null | grep -q '^sleep 120' && echo SAW_PROCESS;", "cat ", db,
      " >/dev/null 2>&1 && echo READ_DATABASE;", "cat ", key,
      " >/dev/null 2>&1 && echo READ_AGENT_KEY;", "ls ", c.dir(),
      "/agent-lg1/jobs 2>/dev/null | grep -q ", aj->id(), " && echo LISTED_JOBS;", "echo done");
  auto gj = globex->Submit(Sh(probe));
  ASSERT_TRUE(gj.ok()) << gj.status();
  ASSERT_TRUE(WaitForState(*globex, gj->id(), v1::Job::succeeded, seconds(30)))
      << globex->GetJob(gj->id())->reason();
  EXPECT_EQ(globex->Logs(gj->id())->stdout(), "done\n") << "globex reached acme or the daemons";
  EXPECT_FALSE(std::filesystem::exists(acme_dir + "/planted"));
  // acme's job is untouched and still running.
  EXPECT_EQ(acme->GetJob(aj->id())->state(), v1::Job::running);
  EXPECT_EQ(ReadAll(acme_dir + "/secret.txt"), "s3cret\n");

  // The daemons' private state.
  EXPECT_EQ(Mode(c.dir() + "/state"), 0700u);
  EXPECT_EQ(Mode(db), 0600u);
  if (std::filesystem::exists(db + "-wal")) {
    EXPECT_EQ(Mode(db + "-wal"), 0600u);
  }
  EXPECT_EQ(Mode(c.dir() + "/agent-lg1"), 0700u);
  EXPECT_EQ(Mode(c.dir() + "/agent-lg1/jobs/" + aj->id() + "-1/stdout.log"), 0600u);

  ASSERT_TRUE(acme->Cancel(aj->id()).ok());
  EXPECT_TRUE(WaitForState(*acme, aj->id(), v1::Job::cancelled));
  EXPECT_TRUE(WaitFor([&] { return kill(acme_pid, 0) != 0; }, seconds(10)));
}

TEST_F(IsolationIT, AJobOverItsMemoryEndsFailedOutOfMemory) {
  Cluster c;
  c.StartScheduler();
  c.StartAgent("lg1", "lingang-idc-1");
  auto acme = c.ClientWith(Cluster::kAcmeToken);
  // 300 MB held by tail, against a 32 MiB limit.
  auto j = acme->Submit(Sh("head -c 300000000 /dev/zero | tail > /dev/null", 32));
  ASSERT_TRUE(j.ok()) << j.status();
  ASSERT_TRUE(WaitForState(*acme, j->id(), v1::Job::failed, seconds(30)))
      << acme->GetJob(j->id())->reason();
  const std::string reason = acme->GetJob(j->id())->reason();
  EXPECT_EQ(reason.rfind("out of memory (limit 32 MiB)", 0), 0u) << reason;
  // The agent keeps serving.
  auto after = acme->Submit(Sh("echo fine", 16));
  ASSERT_TRUE(after.ok());
  EXPECT_TRUE(WaitForState(*acme, after->id(), v1::Job::succeeded));
}

TEST_F(IsolationIT, DaemonsRefuseKeysAndTokensEveryUserCanRead) {
  Cluster c;
  c.EnableTls();
  chmod(c.tokens_path().c_str(), 0644);
  const std::string slog = c.dir() + "/scheduler-refused.log";
  Process s({PORTOLAN_SCHEDULER_BIN, "--rest-addr", "127.0.0.1:0", "--rpc-addr", "127.0.0.1:0",
             "--state-dir", c.dir() + "/s", "--tokens", c.tokens_path(), "--policy",
             std::string(PORTOLAN_SOURCE_DIR) + "/deploy/policy/default.yaml", "--insecure"},
            slog);
  int status = s.Wait(seconds(20));
  ASSERT_NE(status, -1) << "the scheduler started with a world-readable tokens file";
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 2);
  EXPECT_NE(ReadAll(slog).find("--tokens " + c.tokens_path() + " is mode 0644"), std::string::npos)
      << ReadAll(slog);
  chmod(c.tokens_path().c_str(), 0600);

  const std::string cert = c.AgentCert("lg9", "lingang-idc-1");
  chmod((cert + ".key").c_str(), 0644);
  const std::string alog = c.dir() + "/agent-refused.log";
  Process a({PORTOLAN_AGENT_BIN, "--site", "lingang-idc-1", "--topology-synthetic",
             "pack:1 core:1 pu:1", "--state-dir", c.dir() + "/a", "--tls-cert", cert + ".pem",
             "--tls-key", cert + ".key", "--tls-ca", c.pki() + "/ca.pem"},
            alog);
  status = a.Wait(seconds(20));
  ASSERT_NE(status, -1) << "the agent started with a world-readable key";
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 2);
  EXPECT_NE(ReadAll(alog).find("--tls-key " + cert + ".key is mode 0644"), std::string::npos)
      << ReadAll(alog);
}

TEST_F(IsolationIT, ASiteThatRequiresIsolationTheAgentLacksGetsNoJobsAndSaysWhy) {
  Cluster c;
  c.StartScheduler();
  // This agent runs every job as nobody, with no sandbox and no cgroup.
  c.StartAgent("lg1", "lingang-idc-1", "pack:1 numa:1(memory=16GiB) core:4 pu:2",
               {"--job-uid-range", "none", "--sandbox", "none", "--cgroup", "none"});
  auto policy = Call<v1::Policy>(c, "GET", "/v1/policy");
  for (v1::Site& s : *policy.mutable_sites()) {
    if (s.id() == "lingang-idc-1") {
      s.mutable_isolation_required()->set_uid_per_job(true);
      s.mutable_isolation_required()->set_memory_limit(true);
    }
  }
  Call<v1::PolicyVersion>(c, "PUT", "/v1/policy", codec::ToJson(policy));
  auto j = c.client().Submit(Sh("echo never"));
  ASSERT_TRUE(j.ok()) << j.status();
  ASSERT_TRUE(WaitFor(
      [&] {
        auto got = c.client().GetJob(j->id());
        return got.ok() && got->reason().find("isolation_below_site_minimum") != std::string::npos;
      },
      seconds(20)))
      << c.client().GetJob(j->id())->reason();
  EXPECT_EQ(c.client().GetJob(j->id())->state(), v1::Job::queued);
  auto explain = Call<v1::Decision>(c, "GET", "/v1/jobs/" + j->id() + "/explanation");
  bool said = false;
  for (const auto& s : explain.sites()) {
    for (const auto& r : s.rejected()) {
      said |= r.find("agent lg1: the agent lacks a uid per job, memory limit") != std::string::npos;
    }
  }
  EXPECT_TRUE(said) << explain.DebugString();
}

}  // namespace
}  // namespace portolan::testing
