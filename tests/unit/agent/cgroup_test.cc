// SPDX-License-Identifier: Apache-2.0
// cgroup drivers against this machine's real kernel: cgroup v1 where its
// memory, cpuset, pids and freezer hierarchies are mounted (this project's CI
// machine), and the cgroup v2 core (membership, cgroup.kill, cgroup.freeze,
// cgroup.events) on whatever cgroup2 mount exists, hybrid hosts included. A
// test that needs what the host lacks says so and is skipped. The v2
// controller files (memory.max, pids.max, cpuset.*) are checked against a
// directory laid out as cgroupfs, since a hybrid host has no v2 controllers.
#include "portolan/executor/cgroup.h"

#include "portolan/base/files.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

namespace portolan::executor {
namespace {

std::string Read(const std::string& path) { return base::ReadSmallFile(path); }

std::string Parent() { return "portolan-test/cg-" + std::to_string(getpid()); }

// The first mount of `type` in /proc/self/mounts, "" when none.
std::string MountOf(const std::string& type, const std::string& option = "") {
  std::ifstream f("/proc/self/mounts");
  std::string dev, path, t, opts;
  while (f >> dev >> path >> t >> opts) {
    std::string rest;
    std::getline(f, rest);
    if (t == type &&
        (option.empty() || ("," + opts + ",").find("," + option + ",") != std::string::npos))
      return path;
  }
  return "";
}

// Forks `sh -c cmd` inside `cg` (joined before exec, as the executor does).
pid_t SpawnIn(executor::JobCgroup& cg, const std::string& cmd) {
  pid_t pid = fork();
  if (pid == 0) {
    setpgid(0, 0);
    for (int fd : cg.join_fds())
      if (write(fd, "0\n", 2) != 2) _exit(126);
    execl("/bin/sh", "sh", "-c", cmd.c_str(), nullptr);
    _exit(127);
  }
  return pid;
}

template <typename F>
bool Eventually(F f, std::chrono::milliseconds limit = std::chrono::seconds(10)) {
  auto end = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < end) {
    if (f()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return f();
}

class CgroupV1Test : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root to create cgroups";
    if (MountOf("cgroup", "memory").empty())
      GTEST_SKIP() << "no cgroup v1 memory hierarchy on this host";
    auto d = executor::OpenCgroupV1("/proc/self/mounts", Parent());
    ASSERT_TRUE(d.ok()) << d.status();
    driver = std::move(*d);
  }
  void TearDown() override {
    if (driver) {
      for (const std::string& name : driver->List()) {
        auto cg = driver->Open(name);
        if (cg.ok()) (void)(*cg)->Remove();
      }
      driver.reset();  // removes the idle cgroups it kept
    }
    for (const char* c : {"memory", "cpuset", "pids", "freezer"}) {
      std::string m = MountOf("cgroup", c);
      if (!m.empty()) {
        rmdir((m + "/" + Parent()).c_str());
        rmdir((m + "/portolan-test").c_str());
      }
    }
  }
  std::unique_ptr<executor::CgroupDriver> driver;
};

TEST_F(CgroupV1Test, WritesTheLimitsIntoEveryHierarchy) {
  EXPECT_EQ(driver->version(), "v1");
  EXPECT_TRUE(driver->memory());
  executor::CgroupLimits l;
  l.cpus = {0};
  l.mems = {0};
  l.memory_bytes = 64 << 20;
  l.pids_max = 32;
  auto cg = driver->Create("limits-1", l);
  ASSERT_TRUE(cg.ok()) << cg.status();
  const std::string mem = MountOf("cgroup", "memory") + "/" + Parent() + "/limits-1";
  EXPECT_EQ(Read(mem + "/memory.limit_in_bytes"), "67108864\n");
  if (driver->cpuset()) {
    const std::string cs = MountOf("cgroup", "cpuset") + "/" + Parent() + "/limits-1";
    EXPECT_EQ(Read(cs + "/cpuset.cpus"), "0\n");
    EXPECT_EQ(Read(cs + "/cpuset.mems"), "0\n");
    // Its own load balancing off (the root's domain spans its CPUs), so
    // that setting its CPUs and removing it rebuild no scheduling domain.
    EXPECT_EQ(Read(cs + "/cpuset.sched_load_balance"), "0\n");
  }
  if (driver->pids()) {
    EXPECT_EQ(Read(MountOf("cgroup", "pids") + "/" + Parent() + "/limits-1/pids.max"), "32\n");
  }
  (*cg)->CloseJoinFds();
  EXPECT_TRUE((*cg)->Empty());
  EXPECT_TRUE((*cg)->Remove().ok());
  EXPECT_FALSE(std::filesystem::exists(mem));
}

TEST_F(CgroupV1Test, AProcessOverItsMemoryLimitIsOomKilledAndCounted) {
  executor::CgroupLimits l;
  l.memory_bytes = 32 << 20;
  auto cg = driver->Create("oom-1", l);
  ASSERT_TRUE(cg.ok()) << cg.status();
  // tail buffers a line that never ends: 200 MB of zeros, in memory.
  pid_t pid = SpawnIn(**cg, "head -c 200000000 /dev/zero | tail > /dev/null");
  (*cg)->CloseJoinFds();
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  EXPECT_FALSE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "the hog finished";
  EXPECT_GE((*cg)->OomKills(), 1u);
  EXPECT_TRUE(Eventually([&] { return (*cg)->Empty(); }));
  EXPECT_TRUE((*cg)->Remove().ok());
}

TEST_F(CgroupV1Test, AForkBombStopsAtThePidsLimit) {
  if (!driver->pids()) GTEST_SKIP() << "no cgroup v1 pids hierarchy";
  executor::CgroupLimits l;
  l.pids_max = 20;
  auto cg = driver->Create("bomb-1", l);
  ASSERT_TRUE(cg.ok()) << cg.status();
  const std::string pids = MountOf("cgroup", "pids") + "/" + Parent() + "/bomb-1";
  // 100 sleeps wanted; at most 20 tasks are let in.
  pid_t pid = SpawnIn(**cg, "i=0; while [ $i -lt 100 ]; do sleep 30 & i=$((i+1)); done; sleep 30");
  (*cg)->CloseJoinFds();
  EXPECT_TRUE(Eventually([&] { return std::stoi("0" + Read(pids + "/pids.current")) >= 20; }));
  EXPECT_LE(std::stoi("0" + Read(pids + "/pids.current")), 20);
  // pids.events counts the forks refused.
  EXPECT_TRUE(Eventually([&] { return Read(pids + "/pids.events") != "max 0\n"; }))
      << Read(pids + "/pids.events");
  (*cg)->KillAll();
  waitpid(pid, nullptr, 0);
  EXPECT_TRUE(Eventually([&] { return (*cg)->Empty(); }));
  EXPECT_TRUE((*cg)->Remove().ok());
}

TEST_F(CgroupV1Test, KillAllStopsATreeThatIgnoresSigtermAndLeftItsGroup) {
  auto cg = driver->Create("tree-1", {});
  ASSERT_TRUE(cg.ok()) << cg.status();
  // Children in a new session (setsid) escape a kill of the process group.
  pid_t pid = SpawnIn(
      **cg,
      "trap '' TERM; setsid sleep 300 & setsid sh -c 'trap \"\" TERM; sleep 300' & sleep 300");
  (*cg)->CloseJoinFds();
  const std::string procs = MountOf("cgroup", "memory") + "/" + Parent() + "/tree-1/cgroup.procs";
  ASSERT_TRUE(Eventually([&] {  // three sleeps: two in sessions of their own
    std::istringstream in(Read(procs));
    int sleeps = 0;
    std::string p;
    while (std::getline(in, p)) sleeps += Read("/proc/" + p + "/comm") == "sleep\n";
    return sleeps == 3;
  }));
  kill(-pid, SIGKILL);  // the group alone leaves the setsid children
  waitpid(pid, nullptr, 0);
  EXPECT_FALSE((*cg)->Empty()) << "the setsid children should have survived the group kill";
  (*cg)->KillAll();
  EXPECT_TRUE(Eventually([&] { return (*cg)->Empty(); })) << Read(procs);
  EXPECT_TRUE((*cg)->Remove().ok());
}

// The idle cgroups (".idle-N") under each hierarchy's parent.
std::vector<std::string> IdleCgroups() {
  std::vector<std::string> out;
  for (const char* c : {"memory", "cpuset", "pids", "freezer"}) {
    const std::string m = MountOf("cgroup", c);
    if (m.empty() || !std::filesystem::exists(m + "/" + Parent())) continue;
    for (const auto& e : std::filesystem::directory_iterator(m + "/" + Parent())) {
      if (e.is_directory() && e.path().filename().string().starts_with(".idle-"))
        out.push_back(std::string(c) + "/" + e.path().filename().string());
    }
  }
  return out;
}

// Runs `cmd` in `cg` to its end and returns its exit status.
int RunIn(executor::JobCgroup& cg, const std::string& cmd) {
  const pid_t pid = SpawnIn(cg, cmd);
  cg.CloseJoinFds();
  int status = -1;
  waitpid(pid, &status, 0);
  return status;
}

TEST_F(CgroupV1Test, AReleasedCgroupIsReusedByTheSameTenantWithItsNewLimits) {
  executor::CgroupLimits l;
  l.cpus = {0};
  l.mems = {0};
  l.memory_bytes = 64 << 20;
  l.pids_max = 32;
  l.reuse_key = "tenant-a";
  auto first = driver->Create("reuse-1", l);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(RunIn(**first, "true"), 0);
  ASSERT_TRUE((*first)->Remove().ok());
  const std::string mem = MountOf("cgroup", "memory") + "/" + Parent();
  EXPECT_FALSE(std::filesystem::exists(mem + "/reuse-1"));
  const std::vector<std::string> idle = IdleCgroups();
  EXPECT_FALSE(idle.empty());
  EXPECT_TRUE(driver->List().empty()) << "idle cgroups are not job cgroups";

  // Another tenant's job gets a cgroup of its own; the idle one stays.
  executor::CgroupLimits other;
  other.reuse_key = "tenant-b";
  auto b = driver->Create("other-1", other);
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(IdleCgroups(), idle);
  (*b)->CloseJoinFds();

  // The same tenant's next job takes it over, with its own limits.
  l.memory_bytes = 32 << 20;
  l.pids_max = 16;
  auto second = driver->Create("reuse-2", l);
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_TRUE(IdleCgroups().empty());
  EXPECT_EQ(Read(mem + "/reuse-2/memory.limit_in_bytes"), "33554432\n");
  if (driver->pids()) {
    EXPECT_EQ(Read(MountOf("cgroup", "pids") + "/" + Parent() + "/reuse-2/pids.max"), "16\n");
  }
  if (driver->cpuset()) {
    EXPECT_EQ(Read(MountOf("cgroup", "cpuset") + "/" + Parent() + "/reuse-2/cpuset.cpus"), "0\n");
  }
  // Its processes join it (the new name) and are counted there.
  const pid_t pid = SpawnIn(**second, "exec sleep 30");
  (*second)->CloseJoinFds();
  EXPECT_TRUE(Eventually([&] { return !(*second)->Empty(); }));
  EXPECT_NE(Read("/proc/" + std::to_string(pid) + "/cgroup").find(Parent() + "/reuse-2"),
            std::string::npos);
  EXPECT_EQ((*second)->OomKills(), 0u);
  // Without limits the next one is unlimited again.
  kill(pid, SIGKILL);
  waitpid(pid, nullptr, 0);
  ASSERT_TRUE(Eventually([&] { return (*second)->Empty(); }));
  ASSERT_TRUE((*second)->Remove().ok());
  executor::CgroupLimits none;
  none.reuse_key = "tenant-a";
  auto third = driver->Create("reuse-3", none);
  ASSERT_TRUE(third.ok()) << third.status();
  EXPECT_TRUE(IdleCgroups().empty());
  EXPECT_EQ(Read(mem + "/reuse-3/memory.limit_in_bytes"), Read(mem + "/memory.limit_in_bytes"));
  (*third)->CloseJoinFds();
  EXPECT_TRUE((*third)->Remove().ok());
  EXPECT_TRUE((*b)->Remove().ok());
}

TEST_F(CgroupV1Test, ACgroupThatSawAnOomKillOrAKillIsRemovedNotReused) {
  executor::CgroupLimits l;
  l.memory_bytes = 32 << 20;
  l.reuse_key = "tenant-a";
  auto oom = driver->Create("oom-2", l);
  ASSERT_TRUE(oom.ok()) << oom.status();
  RunIn(**oom, "head -c 200000000 /dev/zero | tail > /dev/null");
  ASSERT_GE((*oom)->OomKills(), 1u);
  ASSERT_TRUE(Eventually([&] { return (*oom)->Empty(); }));
  EXPECT_TRUE((*oom)->Remove().ok());
  EXPECT_TRUE(IdleCgroups().empty());

  auto killed = driver->Create("killed-1", l);
  ASSERT_TRUE(killed.ok()) << killed.status();
  const pid_t pid = SpawnIn(**killed, "exec sleep 30");
  (*killed)->CloseJoinFds();
  ASSERT_TRUE(Eventually([&] { return !(*killed)->Empty(); }));
  (*killed)->KillAll();
  waitpid(pid, nullptr, 0);
  ASSERT_TRUE(Eventually([&] { return (*killed)->Empty(); }));
  EXPECT_TRUE((*killed)->Remove().ok());
  EXPECT_TRUE(IdleCgroups().empty());
}

TEST_F(CgroupV1Test, IdleCgroupsGoWithTheDriverAndAtTheNextStart) {
  executor::CgroupLimits l;
  l.reuse_key = "tenant-a";
  auto cg = driver->Create("idle-1", l);
  ASSERT_TRUE(cg.ok()) << cg.status();
  (*cg)->CloseJoinFds();
  ASSERT_TRUE((*cg)->Remove().ok());
  cg->reset();
  ASSERT_FALSE(IdleCgroups().empty());
  driver.reset();
  EXPECT_TRUE(IdleCgroups().empty());
  // One an agent that died left behind goes when the next one starts.
  const std::string mem = MountOf("cgroup", "memory") + "/" + Parent();
  ASSERT_EQ(mkdir((mem + "/.idle-7").c_str(), 0755), 0);
  auto d = executor::OpenCgroupV1("/proc/self/mounts", Parent());
  ASSERT_TRUE(d.ok()) << d.status();
  driver = std::move(*d);
  EXPECT_FALSE(std::filesystem::exists(mem + "/.idle-7"));
}

TEST(CgroupV2Test, CoreKillAndEventsOnTheRealUnifiedHierarchy) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to create cgroups";
  const std::string mount = MountOf("cgroup2");
  if (mount.empty()) GTEST_SKIP() << "no cgroup2 mount on this host";
  auto d = executor::OpenCgroupV2(mount, Parent());
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ((*d)->version(), "v2");
  auto cg = (*d)->Create("tree-1", {});
  ASSERT_TRUE(cg.ok()) << cg.status();
  pid_t pid = SpawnIn(**cg, "trap '' TERM; setsid sleep 300 & sleep 300");
  (*cg)->CloseJoinFds();
  const std::string dir = mount + "/" + Parent() + "/tree-1";
  ASSERT_TRUE(Eventually([&] { return !(*cg)->Empty(); }));
  EXPECT_NE(Read(dir + "/cgroup.events").find("populated 1"), std::string::npos);
  (*cg)->KillAll();
  waitpid(pid, nullptr, 0);
  EXPECT_TRUE(Eventually([&] { return (*cg)->Empty(); })) << Read(dir + "/cgroup.procs");
  EXPECT_TRUE((*cg)->Remove().ok());
  rmdir((mount + "/" + Parent()).c_str());
  rmdir((mount + "/portolan-test").c_str());
}

// The v2 controller files, on a directory laid out as cgroupfs (this host's
// v2 hierarchy has its controllers on v1).
TEST(CgroupV2Test, ControllerFilesFollowTheKernelsNames) {
  const std::string fs = testing::TempDir() + "/fake-cgroup2-" + std::to_string(getpid());
  std::filesystem::remove_all(fs);
  std::filesystem::create_directories(fs);
  std::ofstream(fs + "/cgroup.controllers") << "cpuset cpu io memory hugetlb pids rdma\n";
  auto d = executor::OpenCgroupV2(fs, "portolan/a1");
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_TRUE((*d)->memory() && (*d)->cpuset() && (*d)->pids());
  EXPECT_EQ(Read(fs + "/cgroup.subtree_control"), "+cpuset +memory +pids\n");
  EXPECT_EQ(Read(fs + "/portolan/cgroup.subtree_control"), "+cpuset +memory +pids\n");
  EXPECT_EQ(Read(fs + "/portolan/a1/cgroup.subtree_control"), "+cpuset +memory +pids\n");
  executor::CgroupLimits l{{2, 3}, {1}, 256 << 20, 100, ""};
  std::filesystem::create_directories(fs + "/portolan/a1/j-1");
  std::ofstream(fs + "/portolan/a1/j-1/memory.swap.max") << "max\n";
  auto cg = (*d)->Create("j-1", l);
  ASSERT_TRUE(cg.ok()) << cg.status();
  const std::string dir = fs + "/portolan/a1/j-1";
  EXPECT_EQ(Read(dir + "/cpuset.cpus"), "2-3\n");
  EXPECT_EQ(Read(dir + "/cpuset.mems"), "1\n");
  EXPECT_EQ(Read(dir + "/memory.max"), "268435456\n");
  EXPECT_EQ(Read(dir + "/memory.swap.max").substr(0, 2), "0\n");
  EXPECT_EQ(Read(dir + "/pids.max"), "100\n");
  std::ofstream(dir + "/memory.events") << "low 0\nhigh 0\nmax 3\noom 1\noom_kill 2\n";
  EXPECT_EQ((*cg)->OomKills(), 2u);
  std::ofstream(dir + "/cgroup.events") << "populated 1\nfrozen 0\n";
  EXPECT_FALSE((*cg)->Empty());
  std::filesystem::remove_all(fs);
}

TEST(CgroupDetectTest, AutoPrefersV2OnlyWhereItHasTheMemoryController) {
  const std::string dir = testing::TempDir() + "/detect-" + std::to_string(getpid());
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir + "/unified");
  std::ofstream(dir + "/unified/cgroup.controllers") << "hugetlb\n";
  const std::string mounts = dir + "/mounts";
  std::ofstream(mounts) << "cgroup2 " << dir << "/unified cgroup2 rw,relatime 0 0\n";
  std::string why;
  // Hybrid without v1 memory: nothing can limit memory, so no driver.
  auto d = executor::OpenCgroups("auto", mounts, "p", &why);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(*d, nullptr);
  EXPECT_NE(why.find("offers no memory controller"), std::string::npos) << why;
  // --cgroup v2 insists, and gets the core-only hierarchy.
  d = executor::OpenCgroups("v2", mounts, "p", &why);
  ASSERT_TRUE(d.ok()) << d.status();
  ASSERT_NE(*d, nullptr);
  EXPECT_FALSE((*d)->memory());
  // A pure v2 host.
  std::ofstream(dir + "/unified/cgroup.controllers") << "cpuset cpu memory pids\n";
  d = executor::OpenCgroups("auto", mounts, "p", &why);
  ASSERT_TRUE(d.ok()) << d.status();
  ASSERT_NE(*d, nullptr);
  EXPECT_EQ((*d)->version(), "v2");
  EXPECT_TRUE((*d)->memory());
  // Bad mode, and v1 where none is mounted.
  EXPECT_FALSE(executor::OpenCgroups("v3", mounts, "p", &why).ok());
  auto v1 = executor::OpenCgroups("v1", mounts, "p", &why);
  ASSERT_FALSE(v1.ok());
  EXPECT_NE(v1.status().message().find("no writable cgroup v1 memory hierarchy"),
            std::string::npos);
  EXPECT_EQ(*executor::OpenCgroups("none", mounts, "p", &why), nullptr);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace portolan::executor
