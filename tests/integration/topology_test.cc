// SPDX-License-Identifier: Apache-2.0
// Topology-aware allocation end to end: the scheduler picks concrete PUs and
// NUMA nodes, the agent binds the process to them.
#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "harness.h"
#include "portolan/base/files.h"
#include "portolan/base/strings.h"
#include "portolan/codec/codec.h"

namespace portolan::testing {
namespace {

using std::chrono::seconds;

v1::Job Spec(const std::string& yaml) {
  v1::Job j;
  absl::Status st = codec::ParseYaml(yaml, &j);
  EXPECT_TRUE(st.ok()) << st;
  return j;
}

bool Ended(client::Client& c, const std::string& id, v1::Job::State want) {
  auto j = c.GetJob(id);
  return j.ok() && j->state() == want;
}

// The Cpus_allowed_list line the job printed.
std::string AllowedList(client::Client& c, const std::string& id) {
  auto logs = c.Logs(id);
  if (!logs.ok()) return "";
  for (absl::string_view line : absl::StrSplit(logs->stdout(), '\n')) {
    if (absl::ConsumePrefix(&line, "Cpus_allowed_list:"))
      return std::string(absl::StripAsciiWhitespace(line));
  }
  return "";
}

std::set<uint32_t> Parse(const std::string& list) {
  std::set<uint32_t> out;
  for (absl::string_view part : absl::StrSplit(list, ',', absl::SkipEmpty())) {
    std::vector<std::string> ab = absl::StrSplit(part, '-');
    uint32_t a = 0, b = 0;
    if (!absl::SimpleAtoi(ab[0], &a)) continue;
    b = a;
    if (ab.size() == 2) (void)absl::SimpleAtoi(ab[1], &b);
    for (uint32_t x = a; x <= b; ++x) out.insert(x);
  }
  return out;
}

const char* kPrintAffinity =
    "{command: [/bin/sh, -c, 'grep Cpus_allowed_list /proc/self/status; sleep 2'], resources: "
    "{cpus: 1, memory_mb: 64}}";

TEST(TopologyIT, RealMachineJobsAreBoundToTheirAllocatedPusAndDisjoint) {
  Cluster c;
  c.StartScheduler();
  c.StartAgent("real", "lingang-idc-1", "");
  auto agent = c.client().GetAgent("real");
  ASSERT_TRUE(agent.ok());
  ASSERT_EQ(agent->topology().source(), "hwloc");
  auto a = c.client().Submit(Spec(kPrintAffinity));
  auto b = c.client().Submit(Spec(kPrintAffinity));
  ASSERT_TRUE(a.ok() && b.ok());
  // While both run, the agent view shows who holds which PU.
  if (agent->capacity().cpus() >= 2) {
    ASSERT_TRUE(WaitFor(
        [&] {
          auto v = c.client().GetAgent("real");
          return v.ok() && v->pu_jobs().size() == 2;
        },
        seconds(20)));
  }
  for (const auto& id : {a->id(), b->id()}) {
    ASSERT_TRUE(WaitFor([&] { return Ended(c.client(), id, v1::Job::succeeded); }, seconds(30)))
        << c.SchedulerLog();
  }
  auto ja = c.client().GetJob(a->id());
  auto jb = c.client().GetJob(b->id());
  ASSERT_EQ(ja->allocation().pus_size(), 1);
  ASSERT_EQ(jb->allocation().pus_size(), 1);
  EXPECT_EQ(AllowedList(c.client(), a->id()),
            base::FormatIdList({ja->allocation().pus().begin(), ja->allocation().pus().end()}));
  EXPECT_EQ(AllowedList(c.client(), b->id()),
            base::FormatIdList({jb->allocation().pus().begin(), jb->allocation().pus().end()}));
  if (agent->capacity().cpus() >= 2) {
    EXPECT_NE(ja->allocation().pus(0), jb->allocation().pus(0)) << "concurrent jobs share a PU";
  }
  bool said = false;
  for (const auto& e : ja->events())
    said = said || e.message().find("bound to PUs") != std::string::npos;
  EXPECT_TRUE(said) << "the running event says where the job is bound";
  auto after = c.client().GetAgent("real");
  EXPECT_TRUE(after->pu_jobs().empty()) << "PUs return when the jobs end";
  EXPECT_GT(after->memory_available_mb(), 0u) << "heartbeats report the host's available memory";
}

TEST(TopologyIT, NumaSingleOnAnEmulatedTwoSocketServer) {
  Cluster c;
  c.StartScheduler();
  // 2 packages, one NUMA node each, 8 cores x 2 PUs: PUs 0-15 on node 0, 16-31 on node 1.
  c.StartAgent("emu", "lingang-idc-1", "pack:2 numa:1(memory=32GiB) core:8 pu:2");
  auto job =
      c.client().Submit(Spec("{command: [/bin/sh, -c, 'grep Cpus_allowed_list /proc/self/status'], "
                             "resources: {cpus: 6, memory_mb: 4096}, "
                             "topology: {numa: single, smt: exclusive}}"));
  ASSERT_TRUE(job.ok()) << job.status();
  ASSERT_TRUE(
      WaitFor([&] { return Ended(c.client(), job->id(), v1::Job::succeeded); }, seconds(20)))
      << c.SchedulerLog();
  auto j = c.client().GetJob(job->id());
  const v1::Allocation& a = j->allocation();
  ASSERT_EQ(a.numa_nodes_size(), 1);
  EXPECT_EQ(a.pus_size(), 6) << "3 whole cores";
  for (uint32_t pu : a.pus()) EXPECT_EQ(pu / 16, a.numa_nodes(0)) << "PU " << pu;
  EXPECT_EQ(a.numa_memory_mb().at(a.numa_nodes(0)), 4096);
  // Only PUs that exist here are bound, and the event says so.
  std::set<uint32_t> allowed = Parse(AllowedList(c.client(), job->id()));
  std::set<uint32_t> allocated(a.pus().begin(), a.pus().end());
  for (uint32_t pu : allowed)
    EXPECT_TRUE(allocated.contains(pu)) << "bound to PU " << pu << " outside the allocation";
  bool said = false;
  for (const auto& e : j->events())
    said = said || e.message().find("emulated topology") != std::string::npos;
  EXPECT_TRUE(said) << "the events say the emulated allocation was bound partially";

  // Larger than a NUMA node: unschedulable at once, with the reason.
  auto big = c.client().Submit(Spec(
      "{command: [/bin/true], resources: {cpus: 20, memory_mb: 64}, topology: {numa: single}}"));
  ASSERT_TRUE(big.ok());
  EXPECT_EQ(big->state(), v1::Job::unschedulable);
  EXPECT_NE(big->reason().find("a NUMA node has at most 16 PUs, the job needs 20"),
            std::string::npos)
      << big->reason();
}

// Memory kinds end to end: an agent on KNL's topology (hwloc's test export)
// reports its MCDRAM nodes as memory-only; a job asking for MCDRAM gets it and
// PUs near it; a kind the cluster lacks, or a malformed one, is refused.
TEST(TopologyIT, MemoryKindJobsGetThatMemoryAndOthersAreRefusedWithTheReason) {
  Cluster c;
  c.StartScheduler();
  c.StartAgent("knl", "lingang-idc-1", "",
               {"--topology-xml",
                PORTOLAN_SOURCE_DIR "/tests/data/topologies/64intel64-fakeKNL-SNC4-hybrid.xml"});
  ASSERT_TRUE(WaitFor([&] { return c.client().GetAgent("knl").ok(); }, seconds(20)));
  auto agent = c.client().GetAgent("knl");
  std::map<uint32_t, std::set<int32_t>> near;  // MCDRAM node -> DRAM nodes near it
  for (const auto& n : agent->topology().numa_nodes()) {
    if (n.memory_only()) near[n.os_index()] = {n.near_numa().begin(), n.near_numa().end()};
  }
  ASSERT_EQ(near.size(), 4u);
  EXPECT_EQ(agent->capacity().memory_mb(), 4096) << "MCDRAM is not ordinary capacity";

  auto job =
      c.client().Submit(Spec("{command: [/bin/true], resources: {cpus: 4, memory_mb: 1536}, "
                             "topology: {numa: single, memory_kind: MCDRAM}}"));
  ASSERT_TRUE(job.ok()) << job.status();
  ASSERT_TRUE(
      WaitFor([&] { return Ended(c.client(), job->id(), v1::Job::succeeded); }, seconds(20)))
      << c.SchedulerLog();
  const v1::Allocation a = c.client().GetJob(job->id())->allocation();
  ASSERT_EQ(a.numa_memory_mb().size(), 1u);
  const uint32_t mem = a.numa_memory_mb().begin()->first;
  ASSERT_TRUE(near.contains(mem)) << "memory on NUMA " << mem;
  ASSERT_EQ(a.numa_nodes_size(), 1);
  EXPECT_EQ(a.numa_nodes(0), mem);
  std::map<uint32_t, int32_t> numa_of;
  for (const auto& core : agent->topology().cores()) {
    for (uint32_t pu : core.pus()) numa_of[pu] = core.numa();
  }
  for (uint32_t pu : a.pus()) EXPECT_TRUE(near[mem].contains(numa_of[pu])) << "PU " << pu;

  auto hbm = c.client().Submit(Spec(
      "{command: [/bin/true], resources: {cpus: 1, memory_mb: 64}, topology: {memory_kind: HBM}}"));
  ASSERT_TRUE(hbm.ok()) << hbm.status();
  EXPECT_EQ(hbm->state(), v1::Job::unschedulable);
  EXPECT_NE(hbm->reason().find("no NUMA node of that kind (DRAM, MCDRAM)"), std::string::npos)
      << hbm->reason();
  for (
      const char* body :
      {R"({"command":["/bin/true"],"resources":{"cpus":1,"memory_mb":1},"topology":{"memory_kind":"HB M"}})",
       R"({"command":["/bin/true"],"resources":{"cpus":2,"memory_mb":1},"topology":{"numa":"spread","memory_kind":"MCDRAM"}})"}) {
    std::string out;
    auto code = c.client().Raw("POST", "/v1/jobs", body, &out);
    ASSERT_TRUE(code.ok());
    EXPECT_EQ(*code, 400) << out;
    EXPECT_NE(out.find("topology.memory_kind"), std::string::npos) << out;
  }
}

// The agent offers only the PUs its cpuset allows and says which it left
// out: --print-topology run inside a cgroup v1 cpuset holding PU 0 alone.
TEST(TopologyIT, PusOutsideTheAgentsCpusetAreLeftOutAndNamed) {
  const std::string root = "/sys/fs/cgroup/cpuset";
  const std::set<uint32_t> all = Parse(base::ReadSmallFile(root + "/cpuset.cpus"));
  if (all.size() < 2 || access((root + "/cgroup.procs").c_str(), W_OK) != 0) {
    GTEST_SKIP() << "needs a writable cgroup v1 cpuset hierarchy and 2 PUs";
  }
  const std::string cg = root + "/portolan-test-" + std::to_string(getpid());
  ASSERT_EQ(mkdir(cg.c_str(), 0755), 0) << strerror(errno);
  const uint32_t first = *all.begin();
  std::ofstream(cg + "/cpuset.cpus") << first;
  std::ofstream(cg + "/cpuset.mems")
      << absl::StripAsciiWhitespace(base::ReadSmallFile(root + "/cpuset.mems"));
  const std::string out_file = ::testing::TempDir() + "/left-out-" + std::to_string(getpid());
  const std::string cmd =
      absl::StrCat("sh -c 'echo $$ > ", cg, "/cgroup.procs && exec ", PORTOLAN_AGENT_BIN,
                   " --print-topology' > ", out_file, " 2>&1");
  const int rc = std::system(cmd.c_str());
  const std::string out = base::ReadSmallFile(out_file);
  unlink(out_file.c_str());
  rmdir(cg.c_str());  // empty again: the agent has exited
  ASSERT_EQ(rc, 0) << out;
  EXPECT_NE(out.find(", 1 PUs,"), std::string::npos) << out;
  const size_t at = out.find("left out: PUs ");
  ASSERT_NE(at, std::string::npos) << out;
  const std::string list = out.substr(at + 14, out.find_first_of(" :", at + 14) - (at + 14));
  std::set<uint32_t> rest = all;
  rest.erase(first);
  EXPECT_EQ(Parse(list), rest) << out;
  EXPECT_NE(out.find("outside this process's cpuset"), std::string::npos) << out;
}

}  // namespace
}  // namespace portolan::testing
