// SPDX-License-Identifier: Apache-2.0
// The etcd store, its client and leader election against real etcd
// processes on loopback (tests/support/etcd_cluster.h).

#include <gtest/gtest.h>

#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "portolan/base/clock.h"
#include "portolan/base/strings.h"
#include "portolan/etcd/client.h"
#include "portolan/etcd/election.h"
#include "portolan/store/etcd_store.h"
#include "support/etcd_cluster.h"

namespace portolan {
namespace {

using testing::EtcdCluster;

std::unique_ptr<etcd::Client> Connect(const EtcdCluster& c,
                                      absl::Duration timeout = absl::Seconds(5)) {
  etcd::Options o;
  o.endpoints = c.endpoints();
  o.timeout = timeout;
  auto client = etcd::Client::Connect(o);
  EXPECT_TRUE(client.ok()) << client.status();
  return client.ok() ? std::move(*client) : nullptr;
}

v1::Job MakeJob(const std::string& id, v1::Job::State state, int64_t submitted_s) {
  v1::Job j;
  j.set_id(id);
  j.set_tenant("acme");
  j.set_state(state);
  j.set_idempotency_key("k-" + id);
  j.add_command("/bin/true");
  *j.mutable_submitted_at() = base::ToProto(absl::FromUnixSeconds(submitted_s));
  return j;
}

#define REQUIRE_ETCD() \
  if (!testing::HaveEtcd()) GTEST_SKIP() << "no /usr/bin/etcd (etcd-server)"

TEST(EtcdUrlTest, ParsesEndpointsAndPrefix) {
  auto u = etcd::ParseUrl("etcd://127.0.0.1:2379,127.0.0.1:22379/prod");
  ASSERT_TRUE(u.ok()) << u.status();
  EXPECT_EQ(u->endpoints, (std::vector<std::string>{"127.0.0.1:2379", "127.0.0.1:22379"}));
  EXPECT_EQ(u->prefix, "prod");
  EXPECT_EQ(etcd::ParseUrl("etcd://localhost:2379")->prefix, "portolan");
  EXPECT_FALSE(etcd::ParseUrl("http://127.0.0.1:2379").ok());
  EXPECT_FALSE(etcd::ParseUrl("etcd://127.0.0.1").ok());
  EXPECT_FALSE(etcd::ParseUrl("etcd://127.0.0.1:0").ok());
  EXPECT_FALSE(etcd::ParseUrl("etcd://a:1,,b:2").ok());
  EXPECT_FALSE(etcd::ParseUrl("etcd://a:1/").ok());
}

TEST(EtcdStoreTest, RecordsRoundTripAndEndedJobsBecomeSummaries) {
  REQUIRE_ETCD();
  EtcdCluster cluster(1);
  ASSERT_TRUE(cluster.status().ok()) << cluster.status();
  auto client = Connect(cluster);
  {
    auto s = store::EtcdStore::Open(client.get(), "t1");
    ASSERT_TRUE(s.ok()) << s.status();
    ASSERT_TRUE((*s)->PutJob(MakeJob("job-b", v1::Job::queued, 20)).ok());
    ASSERT_TRUE((*s)->PutJob(MakeJob("job-a", v1::Job::running, 10)).ok());
    ASSERT_TRUE((*s)->PutJob(MakeJob("job-c", v1::Job::queued, 5)).ok());
    ASSERT_TRUE((*s)->PutJob(MakeJob("job-c", v1::Job::succeeded, 5)).ok());
    v1::Agent a;
    a.set_id("a1");
    a.set_site("hongkong-1");
    ASSERT_TRUE((*s)->PutAgent(a).ok());
    v1::JobLogs l;
    l.set_job_id("job-a");
    l.set_stdout("hello\n");
    ASSERT_TRUE((*s)->PutLogs(l).ok());
    v1::Decision d;
    d.set_feasible(true);
    ASSERT_TRUE((*s)->PutDecision("job-a", d).ok());
    v1::Tenant t;
    t.set_id("acme");
    ASSERT_TRUE((*s)->PutTenant(t).ok());
    for (int i = 1; i <= 3; ++i) {
      v1::PolicyVersion v;
      v.set_version(absl::StrCat("v", i));
      *v.mutable_applied_at() = base::ToProto(absl::FromUnixSeconds(1000 + i));
      ASSERT_TRUE((*s)->PutPolicyVersion(v).ok());
    }
    v1::LedgerEntry e;
    e.set_tenant("acme");
    e.set_year(2026);
    e.set_origin("CN");
    e.set_subjects(7);
    ASSERT_TRUE((*s)->PutLedgerEntry(e).ok());
    for (int i = 0; i < 5; ++i) {
      v1::AuditRecord r;
      r.set_tenant(i % 2 ? "acme" : "globex");
      r.set_job(absl::StrCat("job-", i));
      ASSERT_TRUE((*s)->AppendAudit(r).ok());
    }
  }
  // A second store on the same prefix (another scheduler after a failover) sees it all.
  auto s = store::EtcdStore::Open(client.get(), "t1");
  ASSERT_TRUE(s.ok());
  auto jobs = (*s)->LoadJobs();
  ASSERT_TRUE(jobs.ok()) << jobs.status();
  ASSERT_EQ(jobs->active.size(), 2u);
  EXPECT_EQ(jobs->active[0].id(), "job-a");  // submit order
  EXPECT_EQ(jobs->active[1].id(), "job-b");
  ASSERT_EQ(jobs->ended.size(), 1u);
  EXPECT_EQ(jobs->ended[0].id, "job-c");
  EXPECT_EQ(jobs->ended[0].state, v1::Job::succeeded);
  EXPECT_EQ(jobs->ended[0].idempotency_key, "k-job-c");
  EXPECT_EQ(jobs->ended[0].submitted_ns, 5'000'000'000);
  auto c = (*s)->GetJob("job-c");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->command(0), "/bin/true");  // the whole record, not the summary
  EXPECT_EQ((*s)->GetJob("job-a")->state(), v1::Job::running);
  EXPECT_EQ((*s)->GetJob("nope").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ((*s)->LoadAgents()->at(0).site(), "hongkong-1");
  EXPECT_EQ((*s)->GetLogs("job-a")->stdout(), "hello\n");
  EXPECT_EQ((*s)->GetLogs("job-b").status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE((*s)->GetDecision("job-a")->feasible());
  EXPECT_EQ((*s)->LoadTenants()->size(), 1u);
  auto versions = (*s)->LoadPolicyVersions();
  ASSERT_EQ(versions->size(), 3u);
  EXPECT_EQ(versions->at(0).version(), "v1");
  EXPECT_EQ(versions->at(2).version(), "v3");
  EXPECT_EQ((*s)->LoadLedger()->at(0).subjects(), 7u);
  auto audit = (*s)->ListAudit("", "", 10);
  ASSERT_EQ(audit->size(), 5u);
  EXPECT_EQ(audit->at(0).job(), "job-4");  // newest first
  auto acme = (*s)->ListAudit("acme", "", 10);
  ASSERT_EQ(acme->size(), 2u);
  EXPECT_EQ(acme->at(0).job(), "job-3");
  EXPECT_EQ((*s)->ListAudit("", "job-2", 10)->size(), 1u);
  EXPECT_EQ((*s)->ListAudit("", "", 2)->size(), 2u);
  // Another prefix is another scheduler's state.
  auto other = store::EtcdStore::Open(client.get(), "t2");
  EXPECT_TRUE((*other)->LoadJobs()->active.empty());
}

TEST(EtcdStoreTest, ConcurrentWritesAreGroupCommittedWithinEtcdsTransactionLimits) {
  REQUIRE_ETCD();
  EtcdCluster cluster(1);
  ASSERT_TRUE(cluster.status().ok()) << cluster.status();
  auto client = Connect(cluster);
  std::atomic<size_t> commits{0}, written{0}, largest{0};
  // Transactions of at most 8 operations, so that batches are split.
  auto s = store::EtcdStore::Open(client.get(), "gc",
                                  [&](double, size_t n) {
                                    ++commits;
                                    written += n;
                                    size_t seen = largest.load();
                                    while (n > seen && !largest.compare_exchange_weak(seen, n)) {
                                    }
                                  },
                                  {.max_ops_per_txn = 8});
  ASSERT_TRUE(s.ok()) << s.status();
  constexpr int kThreads = 16, kEach = 150;
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) {
        // Each job twice (queued, then ended): a key may repeat within a batch.
        v1::Job j = MakeJob(absl::StrCat("job-", t, "-", i), v1::Job::queued, t * 1000 + i);
        if (!(*s)->PutJob(j).ok()) ++failures;
        j.set_state(v1::Job::succeeded);
        if (!(*s)->PutJob(j).ok()) ++failures;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(written.load(), size_t{2 * kThreads * kEach});
  EXPECT_LT(commits.load(), written.load()) << "no write shared a commit";
  EXPECT_GT(largest.load(), 3u)
      << "no batch needed more than one transaction (3 keys per ended job)";
  auto jobs = (*s)->LoadJobs();
  ASSERT_TRUE(jobs.ok()) << jobs.status();
  EXPECT_TRUE(jobs->active.empty());
  EXPECT_EQ(jobs->ended.size(), size_t{kThreads * kEach});
  std::printf("%zu writes in %zu commits, largest batch %zu writes\n", written.load(),
              commits.load(), largest.load());
}

// PutJobAsync: many threads' jobs, each `done` called once, with OK only
// after its record is in etcd, in fewer commits than jobs; one over the
// request limit gets that error alone; a store destroyed with writes queued
// commits them and calls every `done` first.
TEST(EtcdStoreTest, AsyncJobWritesAreStoredWhenDoneIsCalledAndShareCommits) {
  REQUIRE_ETCD();
  EtcdCluster cluster(1);
  ASSERT_TRUE(cluster.status().ok()) << cluster.status();
  auto client = Connect(cluster);
  constexpr int kThreads = 8, kEach = 50;
  std::atomic<size_t> commits{0};
  std::mutex mu;
  std::vector<std::string> failed, missing;
  absl::Status big_result;
  std::atomic<int> done{0};
  {
    auto s = store::EtcdStore::Open(client.get(), "async", [&](double, size_t) { ++commits; });
    ASSERT_TRUE(s.ok()) << s.status();
    store::Store& st = **s;
    v1::Job big = MakeJob("job-big", v1::Job::queued, 1);
    (*big.mutable_env())["PAD"] = std::string(2 << 20, 'x');  // over the store's 1 MiB limit
    st.PutJobAsync(big, [&](absl::Status written) {
      std::lock_guard<std::mutex> l(mu);
      big_result = written;
      done.fetch_add(1);
    });
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        for (int i = 0; i < kEach; ++i) {
          const std::string id = absl::StrCat("job-", t, "-", i);
          st.PutJobAsync(MakeJob(id, v1::Job::queued, t * 1000 + i), [&, id](absl::Status w) {
            // Readable from the moment `done` runs.
            const bool readable = st.GetJob(id).ok();
            std::lock_guard<std::mutex> l(mu);
            if (!w.ok()) failed.push_back(absl::StrCat(id, ": ", w.message()));
            if (!readable) missing.push_back(id);
            done.fetch_add(1);
          });
        }
      });
    }
    for (auto& th : threads) th.join();
    // Queued writes still pending are committed as the store goes.
  }
  EXPECT_EQ(done.load(), kThreads * kEach + 1);
  EXPECT_TRUE(failed.empty()) << failed.front();
  EXPECT_TRUE(missing.empty()) << missing.size() << " not readable in their done, e.g. "
                               << missing.front();
  EXPECT_EQ(big_result.code(), absl::StatusCode::kResourceExhausted) << big_result;
  EXPECT_LT(commits.load(), static_cast<size_t>(kThreads * kEach)) << "no write shared a commit";
  auto again = store::EtcdStore::Open(client.get(), "async");
  ASSERT_TRUE(again.ok()) << again.status();
  auto jobs = (*again)->LoadJobs();
  ASSERT_TRUE(jobs.ok()) << jobs.status();
  EXPECT_EQ(jobs->active.size(), static_cast<size_t>(kThreads * kEach));
}

TEST(EtcdStoreTest, ReadsManyJobsByIdActiveOrEnded) {
  REQUIRE_ETCD();
  EtcdCluster cluster(1);
  ASSERT_TRUE(cluster.status().ok()) << cluster.status();
  auto client = Connect(cluster);
  auto s = store::EtcdStore::Open(client.get(), "t-read");
  ASSERT_TRUE(s.ok()) << s.status();
  std::vector<std::string> ids;
  for (int i = 0; i < 150; ++i) {  // more than one transaction's worth
    const std::string id = absl::StrCat("job-", i);
    ASSERT_TRUE((*s)->PutJob(MakeJob(id, i % 3 ? v1::Job::succeeded : v1::Job::queued, i)).ok());
    ids.push_back(id);
  }
  ids.push_back("job-never");
  std::map<std::string, v1::Job::State> read;
  ASSERT_TRUE((*s)->ReadJobs(ids, [&](v1::Job j) { read[j.id()] = j.state(); }).ok());
  EXPECT_EQ(read.size(), 150u);
  EXPECT_EQ(read["job-3"], v1::Job::queued);
  EXPECT_EQ(read["job-4"], v1::Job::succeeded);
}

TEST(EtcdStoreTest, ARecordOverTheRequestLimitIsRefusedAlone) {
  REQUIRE_ETCD();
  EtcdCluster cluster(1);
  ASSERT_TRUE(cluster.status().ok()) << cluster.status();
  auto client = Connect(cluster);
  auto s = store::EtcdStore::Open(client.get(), "big");
  ASSERT_TRUE(s.ok());
  v1::JobLogs l;
  l.set_job_id("job-1");
  l.set_stdout(std::string(2 << 20, 'x'));
  absl::Status st = (*s)->PutLogs(l);
  EXPECT_EQ(st.code(), absl::StatusCode::kResourceExhausted) << st;
  EXPECT_NE(st.message().find("store logs"), std::string::npos) << st;
  EXPECT_TRUE((*s)->PutJob(MakeJob("job-1", v1::Job::queued, 1)).ok());
}

TEST(EtcdStoreTest, UnreachableClusterFailsAtOpen) {
  REQUIRE_ETCD();
  etcd::Options o;
  o.endpoints = {"127.0.0.1:1"};
  o.timeout = absl::Milliseconds(500);
  auto client = etcd::Client::Connect(o);
  ASSERT_TRUE(client.ok());
  auto s = store::EtcdStore::Open(client->get(), "x");
  ASSERT_FALSE(s.ok());
  EXPECT_TRUE(s.status().code() == absl::StatusCode::kUnavailable ||
              s.status().code() == absl::StatusCode::kDeadlineExceeded)
      << s.status();
}

TEST(EtcdElectionTest, OneLeaderAtATimeAndTheFenceStopsTheDeposedOne) {
  REQUIRE_ETCD();
  EtcdCluster cluster(1);
  ASSERT_TRUE(cluster.status().ok()) << cluster.status();
  auto ca = Connect(cluster), cb = Connect(cluster);
  etcd::Election a(ca.get(), base::RealClock(), {"el/leader", "a", absl::Seconds(1)});
  etcd::Election b(cb.get(), base::RealClock(), {"el/leader", "b", absl::Seconds(1)});
  ASSERT_TRUE(*a.Campaign());
  EXPECT_TRUE(a.Leading());
  EXPECT_FALSE(*b.Campaign());
  EXPECT_FALSE(b.Leading());
  EXPECT_EQ(b.Current()->value, "a");
  EXPECT_EQ(b.Current()->create_revision, a.fence());

  auto sa = store::EtcdStore::Open(ca.get(), "el");
  ASSERT_TRUE(sa.ok());
  (*sa)->SetFence("el/leader", a.fence());
  ASSERT_TRUE((*sa)->PutJob(MakeJob("job-1", v1::Job::queued, 1)).ok());

  // a stops renewing (as if paused): its lease runs out and b takes over.
  const absl::Time t0 = absl::Now();
  bool b_leads = false;
  while (!b_leads && absl::Now() - t0 < absl::Seconds(10)) {
    absl::SleepFor(absl::Milliseconds(100));
    b_leads = *b.Campaign();
  }
  ASSERT_TRUE(b_leads);
  EXPECT_FALSE(a.Leading()) << "a's own view must have lapsed with its lease";
  EXPECT_GT(b.fence(), a.fence());
  // a's writes are refused by the fence and leave nothing behind.
  absl::Status st = (*sa)->PutJob(MakeJob("job-2", v1::Job::queued, 2));
  EXPECT_EQ(st.code(), absl::StatusCode::kUnavailable) << st;
  EXPECT_NE(st.message().find("fenced"), std::string::npos) << st;
  EXPECT_EQ((*sa)->GetJob("job-2").status().code(), absl::StatusCode::kNotFound);
  EXPECT_FALSE(*a.Renew()) << "a learns that its lease ended";
  // b writes under its own fence.
  auto sb = store::EtcdStore::Open(cb.get(), "el");
  (*sb)->SetFence("el/leader", b.fence());
  EXPECT_TRUE((*sb)->PutJob(MakeJob("job-3", v1::Job::queued, 3)).ok());
  // Resigning hands over at once, without waiting for the lease.
  ASSERT_TRUE(b.Resign().ok());
  EXPECT_TRUE(*a.Campaign());
}

TEST(EtcdElectionTest, RenewingKeepsTheLeadershipPastTheTtl) {
  REQUIRE_ETCD();
  EtcdCluster cluster(1);
  ASSERT_TRUE(cluster.status().ok()) << cluster.status();
  auto ca = Connect(cluster), cb = Connect(cluster);
  etcd::Election a(ca.get(), base::RealClock(), {"k", "a", absl::Seconds(1)});
  etcd::Election b(cb.get(), base::RealClock(), {"k", "b", absl::Seconds(1)});
  ASSERT_TRUE(*a.Campaign());
  const int64_t fence = a.fence();
  for (int i = 0; i < 10; ++i) {  // 3 s, three TTLs
    absl::SleepFor(absl::Milliseconds(300));
    ASSERT_TRUE(*a.Renew());
    EXPECT_FALSE(*b.Campaign());
  }
  EXPECT_EQ(a.fence(), fence);
  EXPECT_TRUE(a.Leading());
}

TEST(EtcdClientTest, TlsWithAClientCertificate) {
  REQUIRE_ETCD();
  char tmpl[] = "/tmp/portolan-etcd-pki-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  const std::string pki = tmpl;
  const std::string ca = PORTOLAN_SOURCE_DIR "/deploy/dev-ca.sh " + pki;
  ASSERT_EQ(std::system((ca + " init >/dev/null && " + ca + " scheduler >/dev/null && " + ca +
                         " agent etcd-client nowhere >/dev/null")
                            .c_str()),
            0);
  testing::EtcdTls tls{pki + "/ca.pem", pki + "/scheduler.pem", pki + "/scheduler.key",
                       pki + "/agent-etcd-client.pem", pki + "/agent-etcd-client.key"};
  EtcdCluster cluster(1, &tls);
  ASSERT_TRUE(cluster.status().ok()) << cluster.status();
  etcd::Options o;
  o.endpoints = cluster.endpoints();
  o.timeout = absl::Seconds(2);
  o.ca_file = tls.ca;
  o.cert_file = tls.client_cert;
  o.key_file = tls.client_key;
  auto client = etcd::Client::Connect(o);
  ASSERT_TRUE(client.ok()) << client.status();
  auto s = store::EtcdStore::Open(client->get(), "tls");
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_TRUE((*s)->PutJob(MakeJob("job-1", v1::Job::queued, 1)).ok());
  // Without a client certificate the cluster does not answer.
  o.cert_file.clear();
  o.key_file.clear();
  auto anonymous = etcd::Client::Connect(o);
  ASSERT_TRUE(anonymous.ok());
  EXPECT_FALSE(store::EtcdStore::Open(anonymous->get(), "tls").ok());
  // Plain TCP to a TLS port does not either.
  o.ca_file.clear();
  auto plain = etcd::Client::Connect(o);
  ASSERT_TRUE(plain.ok());
  EXPECT_FALSE(store::EtcdStore::Open(plain->get(), "tls").ok());
  // A missing CA file is refused at once, naming it.
  o.ca_file = pki + "/nope.pem";
  auto bad = etcd::Client::Connect(o);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("nope.pem"), std::string::npos) << bad.status();
  std::filesystem::remove_all(pki);
}

TEST(EtcdClientTest, LogsInWhenTheClusterHasAuthenticationOn) {
  REQUIRE_ETCD();
  EtcdCluster cluster(1);
  ASSERT_TRUE(cluster.status().ok()) << cluster.status();
  // etcd's own CLI turns authentication on: a root user and a scheduler user
  // with read-write on its prefix.
  const std::string ctl = "ETCDCTL_API=3 etcdctl --endpoints " + cluster.endpoints()[0];
  ASSERT_EQ(std::system((ctl + " user add root:rootpw >/dev/null && " + ctl +
                         " user add sched:s3cret >/dev/null && " + ctl +
                         " role add portolan >/dev/null && " + ctl +
                         " role grant-permission portolan --prefix=true readwrite portolan/ "
                         ">/dev/null && " +
                         ctl + " user grant-role sched portolan >/dev/null && " + ctl +
                         " auth enable >/dev/null")
                            .c_str()),
            0);
  char tmpl[] = "/tmp/portolan-etcd-pw-XXXXXX";
  const int fd = mkstemp(tmpl);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(write(fd, "s3cret\n", 7), 7);
  close(fd);
  etcd::Options o;
  o.endpoints = cluster.endpoints();
  o.timeout = absl::Seconds(2);
  o.username = "sched";
  o.password_file = tmpl;
  auto client = etcd::Client::Connect(o);
  ASSERT_TRUE(client.ok()) << client.status();
  auto s = store::EtcdStore::Open(client->get(), "portolan");
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_TRUE((*s)->PutJob(MakeJob("job-1", v1::Job::queued, 1)).ok());
  EXPECT_EQ((*s)->LoadJobs()->active.size(), 1u);
  // Outside its prefix the user may not write.
  auto other = store::EtcdStore::Open(client->get(), "elsewhere");
  EXPECT_FALSE(other.ok() && (*other)->PutJob(MakeJob("job-2", v1::Job::queued, 2)).ok());
  // A wrong password is refused at Connect, naming the user.
  o.password_file.clear();
  o.password = "wrong";
  auto refused = etcd::Client::Connect(o);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("sched"), std::string::npos) << refused.status();
  // Without credentials nothing is readable.
  o.username.clear();
  auto anonymous = etcd::Client::Connect(o);
  ASSERT_TRUE(anonymous.ok());
  EXPECT_FALSE(store::EtcdStore::Open(anonymous->get(), "portolan").ok());
  unlink(tmpl);
}

TEST(EtcdClientTest, ThreeMembersSurviveOneLossNotTwo) {
  REQUIRE_ETCD();
  EtcdCluster cluster(3);
  ASSERT_TRUE(cluster.status().ok()) << cluster.status();
  auto client = Connect(cluster, absl::Seconds(2));
  auto s = store::EtcdStore::Open(client.get(), "q");
  ASSERT_TRUE(s.ok()) << s.status();
  ASSERT_TRUE((*s)->PutJob(MakeJob("job-0", v1::Job::queued, 0)).ok());
  cluster.Kill(0);  // the member the client used first
  // If it led, the other two elect a leader first (an election timeout,
  // longer on a loaded machine): writes resume within seconds.
  absl::Status st;
  for (int i = 0; i < 5; ++i) {
    st = (*s)->PutJob(MakeJob("job-1", v1::Job::queued, 1));
    if (st.ok()) break;
  }
  EXPECT_TRUE(st.ok()) << st;
  cluster.Kill(1);
  st = (*s)->PutJob(MakeJob("job-2", v1::Job::queued, 2));
  EXPECT_TRUE(st.code() == absl::StatusCode::kUnavailable ||
              st.code() == absl::StatusCode::kDeadlineExceeded)
      << st;
  EXPECT_FALSE((*s)->LoadJobs().ok()) << "a read without quorum must not answer";
  ASSERT_TRUE(cluster.Restart(0).ok());
  ASSERT_TRUE(cluster.Restart(1).ok());
  absl::Status again;
  for (int i = 0; i < 50; ++i) {
    again = (*s)->PutJob(MakeJob("job-3", v1::Job::queued, 3));
    if (again.ok()) break;
    absl::SleepFor(absl::Milliseconds(200));
  }
  ASSERT_TRUE(again.ok()) << again;
  auto jobs = (*s)->LoadJobs();
  ASSERT_TRUE(jobs.ok()) << jobs.status();
  std::set<std::string> ids;
  for (const auto& j : jobs->active) ids.insert(j.id());
  EXPECT_TRUE(ids.count("job-0") && ids.count("job-1") && ids.count("job-3"));
}

}  // namespace
}  // namespace portolan
