// SPDX-License-Identifier: Apache-2.0
// End-to-end tests over the real binaries on loopback.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/strip.h"
#include "harness.h"
#include "portolan/codec/codec.h"
#include "portolan/v1/api.pb.h"
#include "portolan/wire/frame.h"

namespace portolan::testing {
namespace {

using std::chrono::seconds;

TEST(LifecycleTest, JobSucceedsAndItsOutputIsReadable) {
  Cluster c;
  c.StartScheduler();
  c.StartAgent("lg1", "lingang-idc-1");
  std::string body;
  auto code = c.client().Raw(
      "POST", "/v1/jobs",
      R"({"name":"hi","command":["/bin/echo","hello"],"resources":{"cpus":1,"memory_mb":64}})",
      &body);
  ASSERT_TRUE(code.ok());
  ASSERT_EQ(*code, 201) << body;
  v1::Job job;
  ASSERT_TRUE(codec::ParseJson(body, &job).ok());
  ASSERT_TRUE(
      WaitFor([&] { return InState(c.client(), job.id(), v1::Job::succeeded); }, seconds(20)))
      << c.SchedulerLog();
  auto done = c.client().GetJob(job.id());
  EXPECT_EQ(done->allocation().agent(), "lg1");
  EXPECT_EQ(done->allocation().site(), "lingang-idc-1");
  std::vector<v1::Job::State> states;
  for (const auto& e : done->events()) states.push_back(e.state());
  EXPECT_EQ(states, (std::vector<v1::Job::State>{v1::Job::queued, v1::Job::placed, v1::Job::running,
                                                 v1::Job::succeeded}));
  EXPECT_EQ(c.client().Logs(job.id())->stdout(), "hello\n");
}

TEST(LifecycleTest, CancelStopsARunningJobOnItsAgent) {
  Cluster c;
  c.StartScheduler();
  c.StartAgent("lg1", "lingang-idc-1");
  auto job = c.client().Submit(JobSpec({"/bin/sh", "-c", "echo $$; exec sleep 300"}));
  ASSERT_TRUE(job.ok()) << job.status();
  pid_t pid = PrintedPid(c.client(), job->id());
  ASSERT_GT(pid, 0);
  EXPECT_EQ(kill(pid, 0), 0) << "job process should be running";
  auto r = c.client().Cancel(job->id());
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_TRUE(
      WaitFor([&] { return InState(c.client(), job->id(), v1::Job::cancelled); }, seconds(20)));
  EXPECT_NE(kill(pid, 0), 0) << "process " << pid << " still exists after cancel";
}

TEST(LifecycleTest, JobThatCannotStartFailsWithReason) {
  Cluster c;
  c.StartScheduler();
  c.StartAgent("lg1", "lingang-idc-1");
  auto job = c.client().Submit(JobSpec({"/no/such/binary"}));
  ASSERT_TRUE(
      WaitFor([&] { return InState(c.client(), job->id(), v1::Job::failed); }, seconds(20)));
  EXPECT_NE(c.client().GetJob(job->id())->reason().find("No such file"), std::string::npos);
}

TEST(LifecycleTest, KilledAgentIsLostWithItsJobs) {
  Cluster c;
  c.StartScheduler();
  Process* agent = c.StartAgent("hk1", "hongkong-1");
  auto job = c.client().Submit(JobSpec({"/bin/sh", "-c", "echo $$; exec sleep 300"}));
  pid_t pid = PrintedPid(c.client(), job->id());
  ASSERT_GT(pid, 0);
  agent->Signal(SIGKILL);
  agent->Wait(seconds(10));
  EXPECT_TRUE(WaitFor([&] { return InState(c.client(), job->id(), v1::Job::lost); }, seconds(20)));
  EXPECT_EQ(c.client().GetAgent("hk1")->state(), v1::Agent::lost);
  EXPECT_NE(c.client().GetJob(job->id())->reason().find("hk1 lost"), std::string::npos);
  kill(pid, SIGKILL);  // the orphaned job process we caused
}

TEST(LifecycleTest, AgentReconnectsAfterSchedulerRestart) {
  Cluster c;
  c.StartScheduler();
  c.StartAgent("lg1", "lingang-idc-1");
  auto before = c.client().Submit(JobSpec({"/bin/echo", "before"}));
  ASSERT_TRUE(
      WaitFor([&] { return InState(c.client(), before->id(), v1::Job::succeeded); }, seconds(20)));
  auto long_job = c.client().Submit(JobSpec({"/bin/sh", "-c", "echo $$; exec sleep 300"}));
  pid_t pid = PrintedPid(c.client(), long_job->id());
  ASSERT_GT(pid, 0);
  const uint16_t rpc = c.rpc_port();
  c.StopScheduler();
  c.StartScheduler(rpc);
  ASSERT_TRUE(WaitFor(
      [&] {
        auto a = c.client().GetAgent("lg1");
        return a.ok() && a->connected();
      },
      seconds(30)))
      << c.SchedulerLog();
  // State survived the restart, and the running job was reconciled.
  EXPECT_EQ(c.client().GetJob(before->id())->state(), v1::Job::succeeded);
  EXPECT_EQ(c.client().GetJob(long_job->id())->state(), v1::Job::running);
  auto after = c.client().Submit(JobSpec({"/bin/echo", "after"}));
  EXPECT_TRUE(
      WaitFor([&] { return InState(c.client(), after->id(), v1::Job::succeeded); }, seconds(20)));
  c.client().Cancel(long_job->id()).IgnoreError();
  EXPECT_TRUE(WaitFor([&] { return kill(pid, 0) != 0; }, seconds(20)));
}

TEST(LifecycleTest, BadRpcInputClosesOnlyThatConnection) {
  Cluster c;
  c.StartScheduler();
  c.StartAgent("lg1", "lingang-idc-1");
  int garbage = ConnectLoopback(c.rpc_port());
  const char junk[] = "\x00\x00\x00\x05GET /";
  ASSERT_EQ(write(garbage, junk, sizeof junk - 1), static_cast<ssize_t>(sizeof junk - 1));
  EXPECT_TRUE(ClosedByServer(garbage));
  close(garbage);
  int oversize = ConnectLoopback(c.rpc_port());
  const unsigned char huge[] = {0x7f, 0xff, 0xff, 0xff};
  ASSERT_EQ(write(oversize, huge, 4), 4);
  EXPECT_TRUE(ClosedByServer(oversize));
  close(oversize);
  // A heartbeat before Register is a protocol error too.
  int early = ConnectLoopback(c.rpc_port());
  v1::Envelope hb;
  hb.mutable_heartbeat();
  std::string f = wire::EncodeFrame(hb);
  ASSERT_EQ(write(early, f.data(), f.size()), static_cast<ssize_t>(f.size()));
  EXPECT_TRUE(ClosedByServer(early));
  close(early);
  int half_open = ConnectLoopback(c.rpc_port());  // left silent while the rest carries on
  auto job = c.client().Submit(JobSpec({"/bin/true"}));
  EXPECT_TRUE(
      WaitFor([&] { return InState(c.client(), job->id(), v1::Job::succeeded); }, seconds(20)));
  close(half_open);
  EXPECT_NE(c.SchedulerLog().find("protocol error"), std::string::npos);
}

TEST(LifecycleTest, SilentConnectionIsClosedAfterTheRegisterTimeout) {
  Cluster c;
  c.StartScheduler(0, {"--register-timeout-ms", "300"});
  c.StartAgent("lg1", "lingang-idc-1");
  int half_open = ConnectLoopback(c.rpc_port());
  EXPECT_TRUE(ClosedByServer(half_open));
  close(half_open);
  EXPECT_NE(c.SchedulerLog().find("no Register received in time"), std::string::npos);
  // The registered agent was not affected.
  auto job = c.client().Submit(JobSpec({"/bin/true"}));
  EXPECT_TRUE(
      WaitFor([&] { return InState(c.client(), job->id(), v1::Job::succeeded); }, seconds(20)));
}

TEST(LifecycleTest, AgentTakesSiteAndLabelsFromItsConfigFile) {
  Cluster c;
  c.StartScheduler();
  const std::string cfg = c.dir() + "/agent.yaml";
  std::ofstream(cfg)
      << "id: hq-cfg\nsite: hongqiao-1\nlabels: {zone: shanghai, rack: r12}\n"
      << "scheduler: 127.0.0.1:" << c.rpc_port() << "\nstate_dir: " << c.dir()
      << "/agent-cfg\ntopology_synthetic: \"pack:1 numa:1(memory=8GiB) core:2 pu:1\"\n"
      << "insecure: true\njob_uid_range: " << c.JobUidRange("hq-cfg") << "\n";
  Process agent({PORTOLAN_AGENT_BIN, "--config", cfg, "--label", "rack=r13"},
                c.dir() + "/agent-cfg.log");
  ASSERT_TRUE(WaitFor([&] { return c.client().GetAgent("hq-cfg").ok(); }, seconds(20)));
  auto a = c.client().GetAgent("hq-cfg");
  EXPECT_EQ(a->site(), "hongqiao-1");
  EXPECT_EQ(a->labels().at("zone"), "shanghai");
  EXPECT_EQ(a->labels().at("rack"), "r13");  // the flag wins over the file
  EXPECT_EQ(a->capacity().cpus(), 2);
  EXPECT_EQ(a->topology().numa_nodes(0).memory_mb(), 8192u);
}

TEST(LifecycleTest, AgentRefusesToStartWithBadTopologyOrConfig) {
  Cluster c;
  struct Case {
    std::vector<std::string> args;
    std::string expect;
  } cases[] = {
      {{"--site", "x", "--topology-synthetic", "pack:lots"}, "not a valid hwloc synthetic"},
      {{"--site", "x", "--topology-xml", "/nonexistent/topo.xml"}, "/nonexistent/topo.xml"},
      {{"--topology-synthetic", "pack:1 core:1 pu:1"}, "--site is required"},
      {{"--config", "/nonexistent/agent.yaml"}, "/nonexistent/agent.yaml"},
  };
  int n = 0;
  for (const Case& k : cases) {
    std::vector<std::string> argv = {PORTOLAN_AGENT_BIN};
    argv.insert(argv.end(), k.args.begin(), k.args.end());
    const std::string log = c.dir() + "/bad-" + std::to_string(n++) + ".log";
    Process p(argv, log);
    int status = p.Wait(seconds(20));
    ASSERT_NE(status, -1) << "agent kept running with bad input";
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 2);
    std::ifstream f(log);
    std::string out((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    EXPECT_NE(out.find(k.expect), std::string::npos) << out;
  }
}

TEST(LifecycleTest, ManyConcurrentRequestsDoNotWedgeTheServer) {
  // More requests in flight than cpprestsdk's 40 pool threads: a handler that
  // blocked on its body would hang the listener forever.
  Cluster c;
  c.StartScheduler();
  std::atomic<int> created{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 120; ++t) {
    threads.emplace_back([&] {
      client::Client client(c.base_url(), Cluster::kAdminToken);
      for (int i = 0; i < 3; ++i) {
        std::string out;
        auto code =
            client.Raw("POST", "/v1/jobs",
                       R"({"command":["/bin/true"],"resources":{"cpus":1,"memory_mb":1}})", &out);
        if (code.ok() && *code == 201) ++created;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(created.load(), 360);
  std::string body;
  EXPECT_EQ(*c.client().Raw("GET", "/healthz", "", &body), 200);
  EXPECT_EQ(c.client().ListJobs("", 1000)->jobs_size(), 360);
}

TEST(LifecycleTest, BadRestInputGetsAClearError) {
  Cluster c;
  c.StartScheduler();
  struct Case {
    std::string method, path, body;
    int status;
    std::string code, field;
  } cases[] = {
      {"POST", "/v1/jobs", "{not json", 400, "invalid_argument", ""},
      {"POST", "/v1/jobs",
       R"({"command":["x"],"resources":{"cpus":1,"memory_mb":1},"colour":"red"})", 400,
       "invalid_argument", "colour"},
      {"POST", "/v1/jobs", R"({"command":["x"],"resources":{"cpus":-1,"memory_mb":1}})", 400,
       "invalid_argument", "resources.cpus"},
      {"POST", "/v1/jobs", R"({"command":[],"resources":{"cpus":1,"memory_mb":1}})", 400,
       "invalid_argument", "command"},
      {"POST", "/v1/jobs", std::string(1100000, ' '), 413, "payload_too_large", ""},
      {"GET", "/v1/jobs/job-nope", "", 404, "not_found", "id"},
      {"GET", "/v1/agents/nope", "", 404, "not_found", "id"},
      {"GET", "/v1/jobs?state=bogus", "", 400, "invalid_argument", "state"},
      {"GET", "/v2/nothing", "", 404, "not_found", ""},
  };
  for (const Case& k : cases) {
    std::string body;
    auto code = c.client().Raw(k.method, k.path, k.body, &body);
    ASSERT_TRUE(code.ok()) << k.path;
    EXPECT_EQ(*code, k.status) << k.method << " " << k.path << ": " << body;
    v1::ErrorResponse err;
    ASSERT_TRUE(codec::ParseJson(body, &err).ok()) << body;
    EXPECT_EQ(err.error().code(), k.code) << body;
    EXPECT_EQ(err.error().field(), k.field) << body;
    EXPECT_FALSE(err.error().message().empty());
  }
  std::string body;
  EXPECT_EQ(*c.client().Raw("GET", "/healthz", "", &body), 200);
}

}  // namespace
}  // namespace portolan::testing
