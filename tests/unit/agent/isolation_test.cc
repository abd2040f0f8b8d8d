// SPDX-License-Identifier: Apache-2.0
// Jobs of different tenants on one executor, with the isolation the agent
// uses as root on this machine: a uid per attempt, the sandbox (PID, mount,
// IPC and UTS namespaces under portolan-job-init) and a cgroup with limits.
// Real processes on the real kernel; each test also runs where the sandbox
// is off, to show what the uid alone keeps apart.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "../../support/uid_block.h"
#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "portolan/base/files.h"
#include "portolan/executor/executor.h"
#include "portolan/executor/isolation.h"

namespace portolan::executor {
namespace {

std::string Read(const std::string& path) { return base::ReadSmallFile(path); }

class IsolationTest : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root: jobs switch to their own uids";
    ASSERT_TRUE(block.ok());
    std::string name = ::testing::UnitTest::GetInstance()->current_test_info()->name();
    std::replace(name.begin(), name.end(), '/', '_');  // "Test/0" of a parameterized test
    state =
        std::filesystem::temp_directory_path() / absl::StrCat("portolan-iso-", getpid(), "-", name);
    std::filesystem::remove_all(state);
    std::filesystem::create_directories(state + "/jobs");
    chmod(state.c_str(), sandbox() ? 0700 : 0711);
    chmod((state + "/jobs").c_str(), sandbox() ? 0700 : 0711);
    executor::ExecutorOptions o;
    o.work_root = state + "/jobs";
    o.kill_grace = absl::Milliseconds(300);
    auto pool = UidPool::Create(block.first(), block.last(), "");
    ASSERT_TRUE(pool.ok()) << pool.status();
    o.uids = std::move(*pool);
    std::string why;
    auto cg = executor::OpenCgroups("auto", "/proc/self/mounts",
                                    absl::StrCat("portolan-test/iso-", getpid()), &why);
    ASSERT_TRUE(cg.ok()) << cg.status();
    o.cgroups = std::move(*cg);
    o.pids_max = 64;
    // Every attempt under its supervisor, as in the agent; the sandbox on top.
    o.job_init = PORTOLAN_JOB_INIT;
    if (sandbox()) {
      executor::SandboxSupport sb = executor::ProbeSandbox();
      if (!sb.namespaces) GTEST_SKIP() << "no namespaces here: " << sb.why;
      o.sandbox = true;
      o.hide = {state};
      o.read_only = {ro_dir()};
      std::filesystem::create_directories(ro_dir());
      chmod(ro_dir().c_str(), 01777);
    }
    options = o;
    exec =
        std::make_unique<executor::Executor>(o, base::RealClock(), [this](const v1::JobUpdate& u) {
          std::lock_guard<std::mutex> l(mu);
          updates.push_back(u);
          cv.notify_all();
        });
  }
  void TearDown() override {
    exec.reset();
    options = {};  // the cgroup driver's last owner: the idle cgroups it kept go with it
    // This process's parent cgroup in every hierarchy (empty by now).
    std::ifstream m("/proc/self/mounts");
    std::string dev, path, type, opts, rest;
    while (m >> dev >> path >> type >> opts && std::getline(m, rest)) {
      if (type == "cgroup" || type == "cgroup2")
        rmdir(absl::StrCat(path, "/portolan-test/iso-", getpid()).c_str());
    }
    std::filesystem::remove_all(state);
    std::filesystem::remove_all(ro_dir());
  }
  bool sandbox() const { return GetParam(); }
  // Not under /tmp (nor a build tree there), which every sandbox replaces
  // with its own: /run is left as it is.
  std::string ro_dir() const {
    return "/run/" + std::filesystem::path(state).filename().string() + "-ro";
  }

  v1::Job Job(const std::string& id, const std::string& tenant, const std::string& script) {
    v1::Job j;
    j.set_id(id);
    j.set_name(id);
    j.set_tenant(tenant);
    j.set_attempt(1);
    j.add_command("/bin/sh");
    j.add_command("-c");
    j.add_command(script);
    j.mutable_resources()->set_cpus(1);
    return j;
  }
  std::string WorkDir(const std::string& id) const { return state + "/jobs/" + id + "-1/work"; }
  std::string Stdout(const std::string& id) const {
    return Read(state + "/jobs/" + id + "-1/stdout.log");
  }
  v1::JobUpdate Final(const std::string& id, int seconds = 30) {
    std::unique_lock<std::mutex> l(mu);
    v1::JobUpdate out;
    bool got = cv.wait_for(l, std::chrono::seconds(seconds), [&] {
      for (const auto& u : updates)
        if (u.job_id() == id && u.state() != v1::Job::running) {
          out = u;
          return true;
        }
      return false;
    });
    EXPECT_TRUE(got) << "no final update for " << id;
    return out;
  }
  v1::JobUpdate Running(const std::string& id) {
    std::unique_lock<std::mutex> l(mu);
    v1::JobUpdate out;
    cv.wait_for(l, std::chrono::seconds(20), [&] {
      for (const auto& u : updates)
        if (u.job_id() == id) {
          out = u;
          return true;
        }
      return false;
    });
    return out;
  }
  // Waits until `path` has content (a job wrote it).
  std::string WaitForFile(const std::string& path) {
    for (int i = 0; i < 1000; ++i) {
      std::string s = Read(path);
      if (!s.empty() && s.back() == '\n') return s;
      usleep(10000);
    }
    return "";
  }

  testing::UidBlock block;
  std::string state;
  executor::ExecutorOptions options;
  std::mutex mu;
  std::condition_variable cv;
  std::vector<v1::JobUpdate> updates;
  std::unique_ptr<executor::Executor> exec;
};

TEST_P(IsolationTest, ATenantsJobCannotReadSignalOrSeeAnotherTenantsJob) {
  // acme: a secret in its directory and its environment, and a long sleep.
  v1::Job a = Job("acme-job", "acme",
                  "echo s3cret > secret.txt; echo $$ > pid; sleep 60 & echo $! > child; wait");
  (*a.mutable_env())["API_KEY"] = "acme-key-123";
  ASSERT_TRUE(exec->Start(a));
  const std::string acme_pid_in_ns = WaitForFile(WorkDir("acme-job") + "/child");
  ASSERT_FALSE(acme_pid_in_ns.empty());
  // The host's pid of acme's sleep, as another tenant might learn it (the
  // background child may not have exec'd sleep yet: look again, bounded).
  pid_t acme_host_pid = 0;
  for (int tries = 0; tries < 500 && acme_host_pid == 0; ++tries) {
    for (const auto& e : std::filesystem::directory_iterator("/proc")) {
      const std::string name = e.path().filename();
      if (name.find_first_not_of("0123456789") != std::string::npos) continue;
      if (Read(e.path().string() + "/environ").find("API_KEY=acme-key-123") != std::string::npos &&
          Read(e.path().string() + "/comm") == "sleep\n")
        acme_host_pid = std::stoi(name);
    }
    if (acme_host_pid == 0) usleep(10000);
  }
  ASSERT_GT(acme_host_pid, 0) << "acme's sleep not found in /proc";
  const std::string acme_dir = WorkDir("acme-job");
  // beta tries everything a curious neighbour would.
  const std::string probe = absl::StrCat(
      "cat ", acme_dir, "/secret.txt >/dev/null 2>&1 && echo READ_SECRET;", "ls ", acme_dir,
      " >/dev/null 2>&1 && echo LISTED;", "echo x > ", acme_dir,
      "/planted 2>/dev/null && echo WROTE;",
      "cat ../../acme-job-1/work/secret.txt >/dev/null 2>&1 && echo READ_RELATIVE;", "kill -0 ",
      acme_host_pid, " 2>/dev/null && echo SIGNALLED_HOST_PID;", "kill -0 ",
      acme_pid_in_ns.substr(0, acme_pid_in_ns.size() - 1),
      " 2>/dev/null && [ ! -e /proc/self/ns ] && echo SIGNALLED;", "cat /proc/", acme_host_pid,
      "/environ 2>/dev/null | grep -q acme-key && echo ENVIRON;",
      "grep -l acme-key /proc/[0-9]*/environ 2>/dev/null && echo ENVIRON_SCAN;",
      "ls /proc | grep -c '^[0-9]' > nprocs;", "cat ", state, "/../",
      std::filesystem::path(state).filename().string(),
      "/jobs/acme-job-1/stdout.log >/dev/null 2>&1 && echo READ_LOG;",
      "id -u > uid; id -G > groups; grep NoNewPrivs /proc/self/status > nnp;", "echo done");
  ASSERT_TRUE(exec->Start(Job("beta-job", "beta", probe)));
  v1::JobUpdate b = Final("beta-job");
  EXPECT_EQ(b.state(), v1::Job::succeeded) << b.message();
  const std::string out = Stdout("beta-job");
  EXPECT_EQ(out, "done\n") << "beta reached acme: " << out;
  EXPECT_FALSE(std::filesystem::exists(acme_dir + "/planted"));
  // Each ran as a uid of its own from the range, no groups, no new privileges.
  struct stat sa, sb;
  ASSERT_EQ(stat(acme_dir.c_str(), &sa), 0);
  ASSERT_EQ(stat(WorkDir("beta-job").c_str(), &sb), 0);
  EXPECT_NE(sa.st_uid, sb.st_uid);
  EXPECT_TRUE(sa.st_uid >= block.first() && sa.st_uid <= block.last());
  EXPECT_EQ(sa.st_mode & 0777, 0700u);
  EXPECT_EQ(Read(WorkDir("beta-job") + "/uid"), absl::StrCat(sb.st_uid, "\n"));
  EXPECT_EQ(Read(WorkDir("beta-job") + "/groups"), absl::StrCat(sb.st_uid, "\n"));
  EXPECT_NE(Read(WorkDir("beta-job") + "/nnp").find("1"), std::string::npos);
  if (sandbox()) {
    // In its PID namespace beta sees its own processes only: init, sh, ls, grep.
    EXPECT_LE(std::stoi(Read(WorkDir("beta-job") + "/nprocs")), 5) << "beta saw other processes";
  }
  exec->Cancel("acme-job", 1, "test over");
  EXPECT_EQ(Final("acme-job").state(), v1::Job::cancelled);
}

TEST_P(IsolationTest, AJobOverItsMemoryIsKilledAndReportedOutOfMemory) {
  if (!options.cgroups || !options.cgroups->memory()) GTEST_SKIP() << "no memory controller";
  v1::Job j = Job("hog", "acme", "head -c 300000000 /dev/zero | tail > /dev/null");
  j.mutable_resources()->set_memory_mb(48);
  ASSERT_TRUE(exec->Start(j));
  v1::JobUpdate u = Final("hog");
  EXPECT_EQ(u.state(), v1::Job::failed);
  EXPECT_EQ(u.message().rfind("out of memory (limit 48 MiB)", 0), 0u) << u.message();
  EXPECT_EQ(exec->oom_kills(), 1u);
}

TEST_P(IsolationTest, AForkBombStopsAtItsPidsLimitAndOtherJobsStillRun) {
  if (!options.cgroups || !options.cgroups->pids() || options.cgroups->version() != "v1")
    GTEST_SKIP() << "no cgroup v1 pids controller here";
  // Forks forever, refused past the limit (64); cancel ends it.
  // (perl, not sh: dash gives up at the first refused fork.)
  ASSERT_TRUE(exec->Start(
      Job("bomb", "beta",
          "exec perl -e 'while (1) { my $p = fork; if (defined $p && !$p) { sleep 30; exit } }'")));
  ASSERT_EQ(Running("bomb").state(), v1::Job::running);
  const uid_t bomb_uid = block.first();  // the first uid handed out
  // The job's cgroup (its init, perl and the sleeps).
  std::string pids_dir;
  {
    std::ifstream m("/proc/self/mounts");
    std::string dev, path, type, opts, rest;
    while (m >> dev >> path >> type >> opts && std::getline(m, rest)) {
      if (type == "cgroup" && ("," + opts + ",").find(",pids,") != std::string::npos)
        pids_dir = absl::StrCat(path, "/portolan-test/iso-", getpid(), "/bomb-1");
    }
  }
  ASSERT_FALSE(pids_dir.empty()) << "no cgroup v1 pids hierarchy";
  // Tasks really in the cgroup, from its task list: pids.current is charged
  // optimistically (a fork adds one, then takes it back if that passed
  // pids.max), so under a fork bomb it can read above the limit for a moment.
  auto tasks = [&] {
    std::ifstream f(pids_dir + "/tasks");
    int n = 0;
    for (std::string line; std::getline(f, line);) n += !line.empty();
    return n;
  };
  int most = 0;
  for (int i = 0; i < 30; ++i) {
    most = std::max(most, tasks());
    usleep(50 * 1000);
  }
  EXPECT_GE(most, 40) << "the bomb did not get going";
  EXPECT_LE(most, 64) << "more tasks than pids.max";
  EXPECT_NE(Read(pids_dir + "/pids.events"), "max 0\n") << "no fork was refused";
  ASSERT_TRUE(exec->Start(Job("after", "acme", "echo still-served")));
  v1::JobUpdate after = Final("after");
  EXPECT_EQ(after.state(), v1::Job::succeeded) << after.message();
  EXPECT_EQ(Stdout("after"), "still-served\n");
  exec->Cancel("bomb", 1, "test over");
  EXPECT_EQ(Final("bomb").state(), v1::Job::cancelled);
  for (int i = 0; i < 500 && !executor::ProcessesInUidRange("/proc", bomb_uid, bomb_uid).empty();
       ++i)
    usleep(10000);
  EXPECT_TRUE(executor::ProcessesInUidRange("/proc", bomb_uid, bomb_uid).empty())
      << "the bomb outlived its cancel";
}

TEST_P(IsolationTest, CancelEndsATreeThatIgnoresSigtermAndLeftItsProcessGroup) {
  ASSERT_TRUE(exec->Start(Job("stubborn", "acme",
                              "trap '' TERM; setsid sh -c \"trap '' TERM; sleep 300\" & "
                              "sleep 300 & echo up > up; wait")));
  ASSERT_FALSE(WaitForFile(WorkDir("stubborn") + "/up").empty());
  exec->Cancel("stubborn", 1, "user asked");
  v1::JobUpdate u = Final("stubborn");
  EXPECT_EQ(u.state(), v1::Job::cancelled);
  const uid_t uid = block.first();
  for (int i = 0; i < 500 && !executor::ProcessesInUidRange("/proc", uid, uid).empty(); ++i)
    usleep(10000);
  EXPECT_TRUE(executor::ProcessesInUidRange("/proc", uid, uid).empty())
      << "a process of the job survived";
}

TEST_P(IsolationTest, TmpIsPrivateAndReadOnlyPathsCannotBeWritten) {
  if (!sandbox()) {
    // What the operator gives up without the mount namespace: one /tmp for all.
    const std::string shared = absl::StrCat("/tmp/portolan-iso-shared-", getpid());
    ASSERT_TRUE(exec->Start(Job("w0", "acme", "echo a > " + shared)));
    EXPECT_EQ(Final("w0").state(), v1::Job::succeeded);
    EXPECT_TRUE(std::filesystem::exists(shared)) << "without the sandbox /tmp is the host's";
    std::filesystem::remove(shared);
    return;
  }
  ASSERT_TRUE(exec->Start(Job(
      "w1", "acme",
      absl::StrCat("echo a > /tmp/shared-name; ls /tmp > seen; ", "[ -d ", ro_dir(),
                   " ] || echo NO_RO_DIR; echo b > ", ro_dir(), "/x 2>/dev/null && echo WROTE_RO; ",
                   "ls ", state, " > state-listing; echo ok"))));
  EXPECT_EQ(Final("w1").state(), v1::Job::succeeded);
  EXPECT_EQ(Stdout("w1"), "ok\n");
  EXPECT_NE(Read(WorkDir("w1") + "/seen").find("shared-name\n"), std::string::npos);
  EXPECT_EQ(Read(WorkDir("w1") + "/state-listing"), "jobs\n")
      << "the state directory shows only the path to the job's own directory";
  EXPECT_FALSE(std::filesystem::exists("/tmp/shared-name")) << "/tmp was the host's";
  ASSERT_TRUE(exec->Start(Job("w2", "beta", "ls /tmp | grep -c shared-name")));
  EXPECT_EQ(Final("w2").state(), v1::Job::failed) << "grep found nothing: exit 1";
  EXPECT_EQ(Stdout("w2"), "0\n");
}

TEST_P(IsolationTest, ATenantMappedToAnAccountRunsAsThatAccount) {
  // The operator maps tenant "ops" to nobody (65534 on Debian); others keep
  // their per-job uids.
  options.tenant_users["ops"] = {65534, 65534};
  exec = std::make_unique<executor::Executor>(options, base::RealClock(),
                                              [this](const v1::JobUpdate& u) {
                                                std::lock_guard<std::mutex> l(mu);
                                                updates.push_back(u);
                                                cv.notify_all();
                                              });
  ASSERT_TRUE(exec->Start(Job("mapped", "ops", "id -u; id -g")));
  ASSERT_TRUE(exec->Start(Job("other", "acme", "id -u")));
  EXPECT_EQ(Final("mapped").state(), v1::Job::succeeded);
  EXPECT_EQ(Final("other").state(), v1::Job::succeeded);
  EXPECT_EQ(Stdout("mapped"), "65534\n65534\n");
  EXPECT_EQ(Stdout("other"), absl::StrCat(block.first(), "\n"));
  v1::Isolation iso = executor::DescribeIsolation(options);
  EXPECT_TRUE(iso.uid_per_job());
  EXPECT_NE(iso.user().find("1 tenant(s) as their own accounts"), std::string::npos) << iso.user();
}

// GPUs are selected by CUDA_VISIBLE_DEVICES, which a job may ignore: in the
// sandbox the device nodes of GPUs it was not given are overmounted by a file
// it may not open. Regular files stand in for /dev/nvidia0 and /dev/nvidia1
// here (this machine has no GPU; tests/device/gpu_check.sh checks the real
// nodes on a GPU machine).
TEST_P(IsolationTest, AJobCannotOpenTheDeviceNodesOfGpusItWasNotGiven) {
  const std::string dev = "/run/" + std::filesystem::path(state).filename().string() + "-dev";
  std::filesystem::create_directories(dev);
  for (int i : {0, 1}) {
    const std::string node = absl::StrCat(dev, "/nvidia", i);
    std::ofstream(node) << "card" << i << "\n";
    chmod(node.c_str(), 0666);
  }
  options.gpu_nodes = {{"0000:3b:00.0", "cuda0", dev + "/nvidia0"},
                       {"0000:5e:00.0", "cuda1", dev + "/nvidia1"}};
  options.deny_source = state + "/denied-device";
  std::ofstream(options.deny_source).close();
  chmod(options.deny_source.c_str(), 0);
  exec = std::make_unique<executor::Executor>(options, base::RealClock(),
                                              [this](const v1::JobUpdate& u) {
                                                std::lock_guard<std::mutex> l(mu);
                                                updates.push_back(u);
                                                cv.notify_all();
                                              });
  const std::string script =
      absl::StrCat("for i in 0 1; do cat ", dev, "/nvidia$i 2>/dev/null || echo denied$i; done");
  v1::Job given = Job("g1", "acme", script);
  given.mutable_allocation()->add_gpu_ids("0000:5e:00.0");
  v1::Job old_name = Job("g0", "acme", script);
  old_name.mutable_allocation()->add_gpu_ids("cuda0");  // allocations made before bus ids
  ASSERT_TRUE(exec->Start(given));
  ASSERT_TRUE(exec->Start(old_name));
  ASSERT_TRUE(exec->Start(Job("none", "beta", script)));
  EXPECT_EQ(Final("g1").state(), v1::Job::succeeded);
  EXPECT_EQ(Final("g0").state(), v1::Job::succeeded);
  EXPECT_EQ(Final("none").state(), v1::Job::succeeded);
  if (sandbox()) {
    EXPECT_EQ(Stdout("g1"), "denied0\ncard1\n");
    EXPECT_EQ(Stdout("g0"), "card0\ndenied1\n");
    EXPECT_EQ(Stdout("none"), "denied0\ndenied1\n");
  } else {
    // What the operator gives up without the mount namespace: only the
    // variables select GPUs.
    EXPECT_EQ(Stdout("none"), "card0\ncard1\n");
  }
  EXPECT_EQ(Read(dev + "/nvidia0"), "card0\n") << "the host's node is untouched";
  std::filesystem::remove_all(dev);
}

INSTANTIATE_TEST_SUITE_P(Sandbox, IsolationTest, ::testing::Values(true, false),
                         [](const ::testing::TestParamInfo<bool>& i) {
                           return i.param ? std::string("Sandboxed") : std::string("UidOnly");
                         });

// A process running as `uid` that forks `children` more and then sleeps;
// returns its pid (our child).
pid_t SleeperAs(uid_t uid, int children) {
  const pid_t pid = fork();
  if (pid == 0) {
    if (setresgid(uid, uid, uid) != 0 || setresuid(uid, uid, uid) != 0) _exit(1);
    for (int i = 0; i < children; ++i) {
      if (fork() == 0) {
        setsid();  // out of the parent's session and group, as an escaping tree does
        pause();
        _exit(0);
      }
    }
    pause();
    _exit(0);
  }
  return pid;
}

// How many processes run as `uid`, zombies included.
int ProcessesOf(uid_t uid) {
  int n = 0;
  for (const auto& e : std::filesystem::directory_iterator("/proc")) {
    const std::string name = e.path().filename();
    struct stat st;
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    if (stat(e.path().c_str(), &st) == 0 && st.st_uid == uid) ++n;
  }
  return n;
}

TEST(KillAllOfUidTest, EndsEveryProcessOfTheUidAndNoOther) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root: the processes run as their own uids";
  testing::UidBlock block;
  ASSERT_TRUE(block.ok());
  // The escaped grandchildren come back to this process, which reaps them.
  // Only for this test: the flag is the whole process's, and left set, every
  // later test's orphans (a cancelled sandbox's last processes) would come
  // back to this process too and stay zombies that count as the job's
  // processes (the other tests of this binary then failed when run in one
  // process rather than one per test, as ctest does).
  ASSERT_EQ(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
  absl::Cleanup not_a_subreaper = [] {
    prctl(PR_SET_CHILD_SUBREAPER, 0);
    while (waitpid(-1, nullptr, WNOHANG) > 0) {
    }
  };
  const uid_t doomed = block.first(), spared = block.first() + 1;
  const pid_t a = SleeperAs(doomed, 3), b = SleeperAs(spared, 1);
  ASSERT_GT(a, 0);
  ASSERT_GT(b, 0);
  for (int i = 0; i < 300 && (ProcessesOf(doomed) < 4 || ProcessesOf(spared) < 2); ++i)
    usleep(10'000);
  ASSERT_EQ(ProcessesOf(doomed), 4);
  ASSERT_EQ(ProcessesOf(spared), 2);

  KillAllOfUid(doomed);
  int a_status = -1;
  bool b_ended = false;
  for (int i = 0; i < 300 && ProcessesOf(doomed) > 0; ++i) {
    int status;
    for (pid_t p; (p = waitpid(-1, &status, WNOHANG)) > 0;) {
      if (p == a) a_status = status;
      if (p == b) b_ended = true;
    }
    usleep(10'000);
  }
  EXPECT_EQ(ProcessesOf(doomed), 0);
  EXPECT_TRUE(WIFSIGNALED(a_status) && WTERMSIG(a_status) == SIGKILL) << a_status;
  EXPECT_FALSE(b_ended) << "another uid's process ended";
  EXPECT_EQ(ProcessesOf(spared), 2) << "another uid's processes were touched";

  KillAllOfUid(spared);
  for (int i = 0; i < 300 && ProcessesOf(spared) > 0; ++i) {
    while (waitpid(-1, nullptr, WNOHANG) > 0) {
    }
    usleep(10'000);
  }
  EXPECT_EQ(ProcessesOf(spared), 0);
}

TEST(UidPoolTest, HandsOutNeverUsedUidsFirstThenTheOldestReleased) {
  auto pool = UidPool::Create(400000, 400002, "");
  ASSERT_TRUE(pool.ok()) << pool.status();
  EXPECT_EQ(*(*pool)->Acquire(), 400000u);
  EXPECT_EQ(*(*pool)->Acquire(), 400001u);
  (*pool)->Release(400000);
  EXPECT_EQ(*(*pool)->Acquire(), 400002u);
  EXPECT_EQ(*(*pool)->Acquire(), 400000u);
  EXPECT_FALSE((*pool)->Acquire().has_value());
  EXPECT_EQ((*pool)->in_use(), 3u);
}

TEST(UidPoolTest, RefusesRootAccountsAndRangesAnotherAgentHolds) {
  EXPECT_FALSE(UidPool::Create(0, 10, "").ok());
  auto accounts = UidPool::Create(1, 65533, "");  // root's neighbours: daemon, bin, ...
  ASSERT_FALSE(accounts.ok());
  EXPECT_NE(accounts.status().message().find("includes user"), std::string::npos);
  const std::string locks = ::testing::TempDir() + "/uid-locks-" + std::to_string(getpid());
  auto first = UidPool::Create(410000, 410099, locks);
  ASSERT_TRUE(first.ok()) << first.status();
  auto overlap = UidPool::Create(410050, 410149, locks);
  ASSERT_FALSE(overlap.ok());
  EXPECT_NE(overlap.status().message().find("overlaps 410000-410099"), std::string::npos)
      << overlap.status();
  auto same = UidPool::Create(410000, 410099, locks);
  EXPECT_FALSE(same.ok());
  EXPECT_TRUE(UidPool::Create(410100, 410199, locks).ok());
  first->reset();  // that agent stopped: its range is free again
  EXPECT_TRUE(UidPool::Create(410050, 410149, locks).ok());
  EXPECT_FALSE(executor::ParseUidRange("5-1").ok());
  EXPECT_FALSE(executor::ParseUidRange("abc").ok());
  EXPECT_EQ(executor::ParseUidRange("200000-265535")->second, 265535u);
  std::filesystem::remove_all(locks);
}

}  // namespace
}  // namespace portolan::executor
