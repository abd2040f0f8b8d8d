// SPDX-License-Identifier: Apache-2.0
// High availability: several real schedulers on a real etcd cluster
// (tests/support/etcd_cluster.h), agents configured with all of them.

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "harness.h"
#include "portolan/v1/cluster.pb.h"
#include "support/etcd_cluster.h"

namespace portolan::testing {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

#define REQUIRE_ETCD() \
  if (!HaveEtcd()) GTEST_SKIP() << "no /usr/bin/etcd (etcd-server)"

// Fast failover for tests: the shortest lease etcd grants, short etcd deadlines.
const std::vector<std::string> kHaFlags = {"--leader-ttl-ms", "2000", "--etcd-timeout-ms", "1500"};

// One raw HTTP/1.1 request; the status code of the answer, or 0 when the
// connection closed without one.
int RawStatus(uint16_t port, const std::string& request) {
  int fd = ConnectLoopback(port);
  if (fd < 0) return 0;
  (void)!write(fd, request.data(), request.size());
  std::string got;
  char buf[4096];
  ssize_t n;
  while ((n = read(fd, buf, sizeof buf)) > 0) {
    got.append(buf, static_cast<size_t>(n));
    if (got.find("\r\n\r\n") != std::string::npos) break;
  }
  close(fd);
  int code = 0;
  if (got.rfind("HTTP/1.1 ", 0) == 0) code = std::atoi(got.c_str() + 9);
  return code;
}

// The state letter of /proc/PID/stat ('T' when stopped), '?' if unreadable.
char ProcState(pid_t pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/stat"));
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const size_t paren = text.rfind(')');
  return paren != std::string::npos && paren + 2 < text.size() ? text[paren + 2] : '?';
}

std::string PostJob(const std::string& name) {
  const std::string body = absl::StrCat(
      R"({"name":")", name,
      R"(","tenant":"acme","command":["/bin/true"],"resources":{"cpus":1,"memory_mb":64}})");
  return absl::StrCat("POST /v1/jobs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ",
                      Cluster::kAdminToken,
                      "\r\nContent-Type: application/json\r\nContent-Length: ", body.size(),
                      "\r\nConnection: close\r\n\r\n", body);
}

TEST(HaIT, OneLeadsTheStandbyRedirectsAndAgentsFindTheLeader) {
  REQUIRE_ETCD();
  EtcdCluster etcd(1);
  ASSERT_TRUE(etcd.status().ok()) << etcd.status();
  Cluster c;
  c.StartMember(0, etcd.url(), kHaFlags);
  c.StartMember(1, etcd.url(), kHaFlags);
  const int leader = c.WaitForLeader();
  ASSERT_GE(leader, 0) << c.MemberLog(0) << c.MemberLog(1);
  const int standby = 1 - leader;
  client::Client to_standby(absl::StrCat("http://127.0.0.1:", c.member_rest_port(standby)),
                            Cluster::kAdminToken);
  std::string body;
  absl::StatusOr<int> code;
  // The standby reads who leads every 200 ms: right after the election it
  // may still say that none is elected yet.
  WaitFor(
      [&] {
        code = to_standby.Raw("GET", "/readyz", "", &body);
        return code.ok() && body.find("the leader is") != std::string::npos;
      },
      std::chrono::seconds(5));
  ASSERT_TRUE(code.ok());
  EXPECT_EQ(*code, 503);
  EXPECT_NE(body.find(absl::StrCat("the leader is s", leader + 1)), std::string::npos) << body;
  // Any API request at the standby is a 307 to the same target at the leader.
  std::string get =
      absl::StrCat("GET /v1/jobs?state=queued HTTP/1.1\r\nHost: x\r\nAuthorization: ", "Bearer ",
                   Cluster::kAdminToken, "\r\nConnection: close\r\n\r\n");
  int fd = ConnectLoopback(c.member_rest_port(standby));
  ASSERT_GE(fd, 0);
  ASSERT_GT(write(fd, get.data(), get.size()), 0);
  std::string answer(4096, '\0');
  answer.resize(std::max<ssize_t>(0, read(fd, answer.data(), answer.size())));
  close(fd);
  EXPECT_EQ(answer.rfind("HTTP/1.1 307", 0), 0u) << answer;
  EXPECT_NE(answer.find(absl::StrCat("Location: http://127.0.0.1:", c.member_rest_port(leader),
                                     "/v1/jobs?state=queued")),
            std::string::npos)
      << answer;
  // The cluster as either member sees it.
  auto view = Call<v1::ClusterView>(c, "GET", "/v1/cluster");
  EXPECT_EQ(view.leader(), absl::StrCat("s", leader + 1));
  ASSERT_EQ(view.members_size(), 2);
  std::map<std::string, std::string> roles;
  for (const auto& m : view.members()) roles[m.id()] = m.role();
  EXPECT_EQ(roles[absl::StrCat("s", leader + 1)], "leader");
  EXPECT_EQ(roles[absl::StrCat("s", standby + 1)], "standby");
  EXPECT_EQ(view.store().kind(), "etcd");
  EXPECT_TRUE(view.store().healthy());
  // An agent given both addresses (the standby's first) ends up at the leader.
  c.StartAgent("a1", "hongkong-1");
  auto job = c.client().Submit(JobSpec({"/bin/true"}));
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_TRUE(WaitForState(c.client(), job->id(), v1::Job::succeeded));
  // The CLI through the standby follows the redirect.
  const std::string cli =
      absl::StrCat(PORTOLAN_CLI_BIN, " --server http://127.0.0.1:", c.member_rest_port(standby),
                   " -o json cluster");
  setenv("PORTOLAN_TOKEN", Cluster::kAdminToken, 1);
  FILE* p = popen(cli.c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  EXPECT_EQ(pclose(p), 0) << out;
  EXPECT_NE(out.find(absl::StrCat("\"leader\": \"s", leader + 1, "\"")), std::string::npos) << out;
}

// kill -9 of the leader under a stream of submits, five times: every job
// answered 201 exists afterwards and ran exactly once; a job running through
// all of it keeps running.
TEST(HaIT, KillingTheLeaderFiveTimesLosesNoAcknowledgedJob) {
  REQUIRE_ETCD();
  EtcdCluster etcd(3);
  ASSERT_TRUE(etcd.status().ok()) << etcd.status();
  Cluster c;
  // Not a test of agent loss: an agent starved of CPU for the harness's
  // 1.5 s TTL (ASan, ctest -j2) while it moves to each new leader would be
  // taken as lost with the long job.
  std::vector<std::string> flags = kHaFlags;
  flags.insert(flags.end(), {"--agent-ttl-ms", "10000"});
  c.StartMember(0, etcd.url(), flags);
  c.StartMember(1, etcd.url(), flags);
  ASSERT_GE(c.WaitForLeader(), 0);
  c.StartAgent("a1", "hongkong-1", "pack:1 numa:1(memory=16GiB) core:8 pu:1");
  // Each run of a job leaves one file <job id>.XXXXXX there (jobs run as
  // different uids, so they cannot share one file).
  const std::string ran = c.SharedDir();
  auto long_job = c.client().Submit(JobSpec({"/bin/sleep", "120"}));
  ASSERT_TRUE(long_job.ok()) << long_job.status();
  const pid_t long_pid = PrintedPid(c.client(), long_job->id());
  ASSERT_GT(long_pid, 0);

  std::mutex mu;
  struct Ack {
    std::chrono::steady_clock::time_point sent, answered;
    std::string id;
  };
  std::vector<Ack> acked;
  std::atomic<bool> stop{false};
  std::thread submitter([&] {
    // Its own client: every member's URL, following redirects.
    client::Client cl(absl::StrCat("http://127.0.0.1:", c.member_rest_port(0),
                                   ",http://127.0.0.1:", c.member_rest_port(1)),
                      Cluster::kAdminToken);
    for (int i = 0; !stop; ++i) {
      v1::Job spec = JobSpec({"/bin/sh", "-c", "mktemp " + ran + "/$PORTOLAN_JOB_ID.XXXXXX"});
      spec.set_idempotency_key(absl::StrCat("k", i));
      for (;;) {  // retried until acknowledged (same key: no duplicate)
        const auto sent = std::chrono::steady_clock::now();
        auto job = cl.Submit(spec);
        if (job.ok()) {
          std::lock_guard<std::mutex> lock(mu);
          acked.push_back({sent, std::chrono::steady_clock::now(), job->id()});
          break;
        }
        if (stop) return;
        std::this_thread::sleep_for(milliseconds(50));
      }
      std::this_thread::sleep_for(milliseconds(20));
    }
  });
  std::vector<double> failover_s;
  for (int round = 0; round < 5; ++round) {
    const int leader = c.WaitForLeader();
    ASSERT_GE(leader, 0) << "round " << round;
    std::this_thread::sleep_for(milliseconds(700));
    const auto killed_at = std::chrono::steady_clock::now();
    c.member(leader)->Signal(SIGKILL);
    c.member(leader)->Wait(seconds(10));
    // Failover: from the kill to the first 201 to a request sent after it.
    ASSERT_TRUE(WaitFor(
        [&] {
          std::lock_guard<std::mutex> lock(mu);
          return !acked.empty() && acked.back().sent > killed_at;
        },
        seconds(20)))
        << "no submit acknowledged after kill " << round << "\n"
        << c.MemberLog(1 - leader);
    {
      std::lock_guard<std::mutex> lock(mu);
      auto first = std::find_if(acked.begin(), acked.end(),
                                [&](const Ack& a) { return a.sent > killed_at; });
      failover_s.push_back(std::chrono::duration<double>(first->answered - killed_at).count());
    }
    c.StartMember(leader, etcd.url(), flags);  // back, as a standby
  }
  stop = true;
  submitter.join();
  std::sort(failover_s.begin(), failover_s.end());
  std::printf("failover (kill -9 to first 201), 5 runs, seconds:");
  for (double s : failover_s) std::printf(" %.2f", s);
  std::printf("  (lease 2 s)\n");
  EXPECT_LE(failover_s.back(), 2.0 + 2.0 + 1.0) << "slower than lease + 2 s (+1 s of test polling)";

  // Every acknowledged job exists and ran exactly once.
  std::set<std::string> ids;
  for (const auto& a : acked) ids.insert(a.id);
  ASSERT_GT(ids.size(), 10u);
  for (const std::string& id : ids) {
    if (WaitForState(c.client(), id, v1::Job::succeeded, seconds(30))) continue;
    auto j = c.client().GetJob(id);
    ADD_FAILURE() << id << " did not succeed: "
                  << (j.ok() ? codec::ToJson(*j) : std::string(j.status().message()));
    break;
  }
  std::map<std::string, int> runs;
  for (const auto& e : std::filesystem::directory_iterator(ran)) {
    const std::string name = e.path().filename().string();
    ++runs[name.substr(0, name.rfind('.'))];
  }
  for (const std::string& id : ids) EXPECT_EQ(runs[id], 1) << id << " ran " << runs[id] << " times";
  for (const auto& [id, n] : runs) EXPECT_EQ(n, 1) << id << " ran " << n << " times";
  // The long job never stopped: same process, still running, reconciled.
  EXPECT_EQ(kill(long_pid, 0), 0);
  auto long_now = c.client().GetJob(long_job->id());
  ASSERT_TRUE(long_now.ok());
  EXPECT_EQ(long_now->state(), v1::Job::running);
  EXPECT_TRUE(c.client().Cancel(long_job->id()).ok());
}

// A leader frozen past its lease (SIGSTOP) is replaced; resumed, it steps
// down, and a request it took while frozen is not acknowledged: its write
// is refused by the fence (or it is already a standby and redirects).
TEST(HaIT, AFrozenLeaderIsFencedAndStandsByWhenResumed) {
  REQUIRE_ETCD();
  EtcdCluster etcd(1);
  ASSERT_TRUE(etcd.status().ok()) << etcd.status();
  Cluster c;
  c.StartMember(0, etcd.url(), kHaFlags);
  ASSERT_EQ(c.WaitForLeader(), 0);
  c.StartMember(1, etcd.url(), kHaFlags);
  c.member(0)->Signal(SIGSTOP);
  ASSERT_TRUE(WaitFor([&] { return ProcState(c.member(0)->pid()) == 'T'; }, seconds(5)))
      << "member 1 did not stop: state " << ProcState(c.member(0)->pid());
  // A submit sent to the frozen leader waits in its socket.
  std::atomic<int> late_status{-1};
  std::thread late([&] { late_status = RawStatus(c.member_rest_port(0), PostJob("late-write")); });
  const int new_leader = c.WaitForLeader(seconds(20));
  if (new_leader != 1) {
    c.member(0)->Signal(SIGCONT);
    late.join();
    FAIL() << "member 2 did not take over (leader: " << new_leader << ", member 1 in state "
           << ProcState(c.member(0)->pid()) << ")\n"
           << c.MemberLog(0) << "\n----\n"
           << c.MemberLog(1);
  }
  // (Not c.client(): it would try the frozen member first and wait out its timeout.)
  client::Client to_new(absl::StrCat("http://127.0.0.1:", c.member_rest_port(1)),
                        Cluster::kAdminToken);
  auto fresh = to_new.Submit(JobSpec({"/bin/true"}));
  ASSERT_TRUE(fresh.ok()) << fresh.status();
  c.member(0)->Signal(SIGCONT);
  late.join();
  EXPECT_NE(late_status.load(), 201) << "a deposed leader acknowledged a write";
  EXPECT_TRUE(late_status == 503 || late_status == 307 || late_status == 0) << late_status;
  // It stands by: not ready, naming the new leader.
  client::Client old(absl::StrCat("http://127.0.0.1:", c.member_rest_port(0)), "");
  EXPECT_TRUE(WaitFor(
      [&] {
        std::string body;
        auto code = old.Raw("GET", "/readyz", "", &body);
        return code.ok() && *code == 503 && body.find("the leader is s2") != std::string::npos;
      },
      seconds(10)))
      << c.MemberLog(0);
  EXPECT_NE(c.MemberLog(0).find("no longer the leader"), std::string::npos) << c.MemberLog(0);
  auto list = to_new.ListJobs();
  ASSERT_TRUE(list.ok());
  for (const auto& j : list->jobs()) EXPECT_NE(j.name(), "late-write") << "the late write landed";
  // Resumed, it either handled the request first (the store's fence refused
  // the write: 503) or noticed first that its lease had ended and closed
  // its ports (the connection closes unanswered, or a standby redirects).
  if (late_status == 503) {
    EXPECT_NE(c.MemberLog(0).find("fenced"), std::string::npos) << c.MemberLog(0);
  }
  std::printf("the frozen leader's late request got %d\n", late_status.load());
}

// One of three etcd members lost: service goes on. Two: writes fail with 503
// and nothing acknowledged is lost. Members back: service resumes.
TEST(HaIT, QuorumLossStopsWritesAndTheClusterComesBack) {
  REQUIRE_ETCD();
  EtcdCluster etcd(3);
  ASSERT_TRUE(etcd.status().ok()) << etcd.status();
  Cluster c;
  c.StartMember(0, etcd.url(), kHaFlags);
  ASSERT_EQ(c.WaitForLeader(), 0);
  std::vector<std::string> ids;
  auto submit = [&]() -> absl::StatusOr<v1::Job> {
    v1::Job spec = JobSpec({"/bin/true"});
    auto j = c.client().Submit(spec);
    if (j.ok()) ids.push_back(j->id());
    return j;
  };
  ASSERT_TRUE(submit().ok());
  etcd.Kill(0);
  // Service goes on (once the two left have elected their own leader, if the
  // killed member led them: a write may fail meanwhile).
  absl::Status one_down;
  EXPECT_TRUE(WaitFor(
      [&] {
        one_down = submit().status();
        return one_down.ok();
      },
      seconds(10)))
      << one_down;
  etcd.Kill(1);
  absl::Status refused;
  ASSERT_TRUE(WaitFor(
      [&] {
        refused = submit().status();
        return !refused.ok();
      },
      seconds(10)));
  EXPECT_EQ(refused.code(), absl::StatusCode::kUnavailable) << refused;
  // Reads say so: the cluster view reports the store unhealthy (asked again
  // if the scheduler was just closing its ports to stand by).
  absl::StatusOr<v1::ClusterView> view;
  EXPECT_TRUE(WaitFor(
      [&] {
        view = c.client().Cluster();
        return view.ok();
      },
      seconds(10)))
      << view.status();
  if (view.ok()) {
    EXPECT_FALSE(view->store().healthy());
    EXPECT_GE(view->store().problems_size(), 2) << codec::ToJson(*view);
  }
  ASSERT_TRUE(etcd.Restart(0).ok());
  ASSERT_TRUE(etcd.Restart(1).ok());
  ASSERT_EQ(c.WaitForLeader(seconds(30)), 0)
      << c.MemberLog(0).substr(c.MemberLog(0).size() > 6000 ? c.MemberLog(0).size() - 6000 : 0);
  absl::Status again;
  ASSERT_TRUE(WaitFor(
      [&] {
        again = submit().status();
        return again.ok();
      },
      seconds(20)))
      << again;
  for (const std::string& id : ids) {
    auto j = c.client().GetJob(id);
    EXPECT_TRUE(j.ok()) << id << ": " << j.status();
  }
}

}  // namespace
}  // namespace portolan::testing
