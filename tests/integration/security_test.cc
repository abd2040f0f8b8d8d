// SPDX-License-Identifier: Apache-2.0
// REST authentication, roles and tenant isolation, limits and hostile
// clients, against the real scheduler.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>

#include <fstream>
#include <sstream>

#include "harness.h"
#include "portolan/codec/codec.h"
#include "portolan/v1/api.pb.h"

namespace portolan::testing {
namespace {

using std::chrono::seconds;

struct Reply {
  int status = 0;
  std::string code;
  std::string field;
  std::string body;
};

Reply Call(client::Client& client, const std::string& method, const std::string& path,
           const std::string& body = "") {
  Reply r;
  auto code = client.Raw(method, path, body, &r.body);
  EXPECT_TRUE(code.ok()) << code.status();
  r.status = code.ok() ? *code : 0;
  v1::ErrorResponse err;
  if (r.status >= 400 && codec::ParseJson(r.body, &err).ok()) {
    r.code = err.error().code();
    r.field = err.error().field();
  }
  return r;
}

const char* kJob =
    R"({"command": ["/bin/echo", "secret output"], "resources": {"cpus": 1, "memory_mb": 16}})";

TEST(SecurityIT, TenantsSeeOnlyTheirOwnJobs) {
  Cluster c;
  c.StartScheduler();
  c.StartAgent("lg1", "lingang-idc-1");
  auto acme = c.ClientWith(Cluster::kAcmeToken);
  auto globex = c.ClientWith(Cluster::kGlobexToken);
  Reply mine = Call(*acme, "POST", "/v1/jobs", kJob);
  ASSERT_EQ(mine.status, 201) << mine.body;
  v1::Job job;
  ASSERT_TRUE(codec::ParseJson(mine.body, &job).ok());
  EXPECT_EQ(job.tenant(), "acme") << "the tenant comes from the token";
  ASSERT_TRUE(WaitFor(
      [&] {
        return acme->GetJob(job.id()).ok() && acme->GetJob(job.id())->state() == v1::Job::succeeded;
      },
      seconds(20)));
  // Another tenant: every per-job path answers 404, exactly like a missing job.
  for (const std::string& path : {"/v1/jobs/" + job.id(), "/v1/jobs/" + job.id() + "/logs",
                                  "/v1/jobs/" + job.id() + "/explanation"}) {
    Reply r = Call(*globex, "GET", path);
    EXPECT_EQ(r.status, 404) << path << ": " << r.body;
    EXPECT_EQ(r.body.find("secret output"), std::string::npos);
  }
  EXPECT_EQ(Call(*globex, "DELETE", "/v1/jobs/" + job.id()).status, 404);
  EXPECT_EQ(Call(*globex, "GET", "/v1/jobs/job-doesnotexist").body,
            Call(*globex, "GET", "/v1/jobs/" + job.id())
                .body.replace(Call(*globex, "GET", "/v1/jobs/" + job.id()).body.find(job.id()),
                              job.id().size(), "job-doesnotexist"))
      << "a foreign job is indistinguishable from a missing one";
  auto list = globex->ListJobs();
  ASSERT_TRUE(list.ok());
  EXPECT_EQ(list->jobs_size(), 0);
  Reply filtered = Call(*globex, "GET", "/v1/jobs?tenant=acme");
  EXPECT_EQ(filtered.body.find(job.id()), std::string::npos)
      << "a tenant filter cannot reach another tenant";
  // Acting as another tenant is refused, naming the field.
  Reply spoof = Call(
      *globex, "POST", "/v1/jobs",
      R"({"tenant": "acme", "command": ["/bin/true"], "resources": {"cpus": 1, "memory_mb": 16}})");
  EXPECT_EQ(spoof.status, 403);
  EXPECT_EQ(spoof.field, "tenant");
  EXPECT_EQ(Call(*acme, "GET", "/v1/jobs/" + job.id() + "/logs").body.find("secret output") !=
                std::string::npos,
            true);
}

TEST(SecurityIT, RolesLimitWhatEachTokenMayDo) {
  Cluster c;
  c.StartScheduler();
  c.StartAgent("lg1", "lingang-idc-1");
  c.StartAgent("hk1", "hongkong-1");
  auto acme = c.ClientWith(Cluster::kAcmeToken);
  for (const auto& [method, path] :
       std::vector<std::pair<std::string, std::string>>{{"GET", "/v1/policy"},
                                                        {"GET", "/v1/policy/versions"},
                                                        {"GET", "/v1/audit"},
                                                        {"GET", "/v1/tenants"},
                                                        {"GET", "/v1/tenants/acme"},
                                                        {"GET", "/v1/agents"},
                                                        {"GET", "/v1/network"},
                                                        {"GET", "/v1/sites"}}) {
    Reply r = Call(*acme, method, path);
    EXPECT_EQ(r.status, 403) << method << " " << path << ": " << r.body;
    EXPECT_EQ(r.code, "permission_denied");
  }
  EXPECT_EQ(Call(*acme, "PUT", "/v1/tenants/acme", R"({"ciio": false})").status, 403);
  EXPECT_EQ(Call(*acme, "PUT", "/v1/network/links/sjc2-lg1-sin", R"({"up": false})").status, 403);
  // The operator of lingang-idc-1 manages its agents only, reads sites and network.
  auto ops = c.ClientWith(Cluster::kOperatorToken);
  auto agents = ops->ListAgents();
  ASSERT_TRUE(agents.ok());
  ASSERT_EQ(agents->agents_size(), 1);
  EXPECT_EQ(agents->agents(0).id(), "lg1");
  EXPECT_EQ(Call(*ops, "POST", "/v1/agents/hk1/cordon").status, 404);
  EXPECT_EQ(Call(*ops, "POST", "/v1/agents/lg1/cordon").status, 200);
  EXPECT_EQ(Call(*ops, "GET", "/v1/jobs").status, 403);
  EXPECT_EQ(Call(*ops, "POST", "/v1/jobs", kJob).status, 403);
  EXPECT_EQ(Call(*ops, "GET", "/v1/network").status, 200);
  EXPECT_EQ(Call(*ops, "PUT", "/v1/network/links/sjc2-lg1-sin", R"({"up": false})").status, 403);
  EXPECT_EQ(Call(*ops, "GET", "/v1/policy").status, 403);
}

TEST(SecurityIT, MissingUnknownAndRevokedTokensGet401) {
  Cluster c;
  c.StartScheduler();
  auto none = c.ClientWith("");
  auto wrong = c.ClientWith("not-a-token");
  EXPECT_EQ(Call(*none, "GET", "/v1/jobs").status, 401);
  EXPECT_EQ(Call(*none, "GET", "/v1/jobs").code, "unauthenticated");
  EXPECT_EQ(Call(*wrong, "POST", "/v1/jobs", kJob).status, 401);
  EXPECT_EQ(Call(*none, "GET", "/healthz").status, 200) << "health stays public";
  auto acme = c.ClientWith(Cluster::kAcmeToken);
  EXPECT_EQ(Call(*acme, "GET", "/v1/jobs").status, 200);
  // Revoke acme's token in the file and reload with SIGHUP.
  std::ifstream in(c.tokens_path());
  std::stringstream ss;
  ss << in.rdbuf();
  std::string text = ss.str();
  text.replace(text.find("{name: it-acme,"), 15, "{name: it-acme, revoked: true,");
  std::ofstream(c.tokens_path()) << text;
  c.SignalScheduler(SIGHUP);
  EXPECT_TRUE(WaitFor([&] { return Call(*acme, "GET", "/v1/jobs").status == 401; }, seconds(10)));
  EXPECT_EQ(Call(*c.ClientWith(Cluster::kGlobexToken), "GET", "/v1/jobs").status, 200)
      << "others unaffected";
  // A broken tokens file on reload keeps the tokens in force.
  std::ofstream(c.tokens_path()) << "tokens: [{name: x}]\n";
  c.SignalScheduler(SIGHUP);
  ASSERT_TRUE(
      WaitFor([&] { return c.SchedulerLog().find("tokens not reloaded") != std::string::npos; },
              seconds(10)));
  EXPECT_EQ(Call(*c.ClientWith(Cluster::kGlobexToken), "GET", "/v1/jobs").status, 200);
}

TEST(SecurityIT, RateLimitAnswers429PerToken) {
  Cluster c;
  c.StartScheduler(0, {"--rate-limit-rps", "2", "--rate-limit-burst", "5"});
  auto acme = c.ClientWith(Cluster::kAcmeToken);
  int limited = 0;
  for (int i = 0; i < 12; ++i) {
    Reply r = Call(*acme, "GET", "/v1/jobs");
    if (r.status == 429) {
      ++limited;
      EXPECT_EQ(r.code, "rate_limited");
    }
  }
  EXPECT_GE(limited, 5);
  EXPECT_EQ(Call(*c.ClientWith(Cluster::kGlobexToken), "GET", "/v1/jobs").status, 200)
      << "buckets are per token";
}

TEST(SecurityIT, HostileBodiesAndConnectionsLeaveTheServerServing) {
  Cluster c;
  c.StartScheduler();
  auto acme = c.ClientWith(Cluster::kAcmeToken);
  std::string deep = std::string(200, '[') + std::string(200, ']');
  Reply r = Call(*acme, "POST", "/v1/jobs", "{\"env\":" + deep + "}");
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.body.find("nested deeper"), std::string::npos) << r.body;
  EXPECT_EQ(Call(*acme, "POST", "/v1/jobs", std::string(2 << 20, ' ')).status, 413);
  // Slow-loris: many connections that never finish their headers, and some
  // that send garbage. Others are still served.
  std::vector<int> fds;
  for (int i = 0; i < 60; ++i) {
    int fd = ConnectLoopback(c.rest_port());
    if (fd < 0) continue;
    const char* partial =
        i % 2 ? "POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Le" : "\x16\x03\x01\xff\xff garbage";
    (void)!write(fd, partial, strlen(partial));
    fds.push_back(fd);
  }
  EXPECT_EQ(Call(*acme, "POST", "/v1/jobs", kJob).status, 201);
  EXPECT_EQ(Call(*acme, "GET", "/v1/jobs").status, 200);
  for (int fd : fds) close(fd);
  std::string body;
  EXPECT_EQ(*c.client().Raw("GET", "/healthz", "", &body), 200);
}

TEST(SecurityIT, JobsRunUnderAUidOfTheirOwnInTheirOwnDirectory) {
  Cluster c;
  c.StartScheduler();
  c.StartAgent("lg1", "lingang-idc-1");  // the agent runs as root here: a uid per job
  auto acme = c.ClientWith(Cluster::kAcmeToken);
  auto job = acme->Submit([] {
    v1::Job j;
    j.add_command("/bin/sh");
    j.add_command("-c");
    j.add_command("id -u; id -g; pwd; stat -c %U:%a .; env | grep -c SECRET_AGENT_ENV || true");
    j.mutable_resources()->set_cpus(1);
    j.mutable_resources()->set_memory_mb(16);
    return j;
  }());
  ASSERT_TRUE(job.ok()) << job.status();
  ASSERT_TRUE(
      WaitFor([&] { return acme->GetJob(job->id())->state() == v1::Job::succeeded; }, seconds(20)))
      << acme->GetJob(job->id())->reason();
  const std::string out = acme->Logs(job->id())->stdout();
  // The first uid of the agent's --job-uid-range, as uid and gid.
  const std::string range = c.JobUidRange("lg1");
  const std::string uid = range.substr(0, range.find('-'));
  EXPECT_EQ(out.substr(0, out.find('\n')), uid) << out;
  EXPECT_NE(out.find(uid + "\n" + uid + "\n"), std::string::npos) << out;
  EXPECT_NE(out.find(job->id() + "-1/work\nUNKNOWN:700\n"), std::string::npos) << out;
  EXPECT_NE(out.find("\n0\n"), std::string::npos)
      << "no agent environment leaks into the job: " << out;
  auto agent = c.client().GetAgent("lg1");
  ASSERT_TRUE(agent.ok());
  EXPECT_TRUE(agent->isolation().uid_per_job());
  EXPECT_EQ(agent->isolation().user(), "per-job uid " + range);

  // Without a uid range the jobs run as --run-as, by default nobody.
  c.StartAgent("lg2", "lingang-idc-1", "pack:1 numa:1(memory=16GiB) core:4 pu:2",
               {"--job-uid-range", "none", "--label", "pool=shared"});
  auto shared = acme->Submit([] {
    v1::Job j;
    j.add_command("/bin/sh");
    j.add_command("-c");
    j.add_command("id -u; stat -c %U:%a .");
    j.mutable_resources()->set_cpus(1);
    j.mutable_resources()->set_memory_mb(16);
    (*j.mutable_placement()->mutable_agent_labels())["pool"] = "shared";
    return j;
  }());
  ASSERT_TRUE(shared.ok()) << shared.status();
  ASSERT_TRUE(WaitFor([&] { return acme->GetJob(shared->id())->state() == v1::Job::succeeded; },
                      seconds(20)))
      << acme->GetJob(shared->id())->reason();
  EXPECT_EQ(acme->Logs(shared->id())->stdout(), "65534\nnobody:700\n");  // nobody on Debian
  EXPECT_FALSE(c.client().GetAgent("lg2")->isolation().uid_per_job());
}

TEST(SecurityIT, SchedulerRefusesToStartWithoutTokensOrExplicitNoAuth) {
  Cluster c;
  const std::string log = c.dir() + "/noauth.log";
  Process p({PORTOLAN_SCHEDULER_BIN, "--rest-addr", "127.0.0.1:0", "--rpc-addr", "127.0.0.1:0",
             "--state-dir", c.dir() + "/s", "--policy",
             PORTOLAN_SOURCE_DIR "/deploy/policy/default.yaml"},
            log);
  int status = p.Wait(seconds(20));
  ASSERT_NE(status, -1);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 2);
  std::ifstream f(log);
  std::string out((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  EXPECT_NE(out.find("REST needs --tokens FILE"), std::string::npos) << out;
}

}  // namespace
}  // namespace portolan::testing
