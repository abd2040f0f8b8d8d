// SPDX-License-Identifier: Apache-2.0
// Gang benchmark: the scheduler's core (in process, in-memory store, agents
// on fake links spread over the default policy's nine sites) places gangs of
// N members — colocate any, colocate site, and any within an RTT bound — and,
// in the same run, N separate jobs of the same shape. Prints the time from
// submit to every member placed (the gang's decision: one decision per
// member, with allocations held while trying) per kind, as JSON lines and a
// summary. Asserts nothing.
//
//   build/tests/bench/gang_bench [--agents 1000] [--tasks 64] [--reps 5]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "portolan/base/log.h"
#include "portolan/codec/codec.h"
#include "portolan/scheduler/core.h"
#include "support/bench_policy.h"
#include "support/fake_agent_link.h"
#include "support/fake_clock.h"
#include "support/memory_store.h"

using namespace portolan;

namespace {

const char* kSites[] = {"lingang-idc-1", "lingang-idc-2", "lingang-offshore-1",
                        "hongqiao-1",    "hongkong-1",    "singapore-1",
                        "tokyo-1",       "frankfurt-1",   "london-1"};

v1::Job Member() {
  v1::Job j;
  j.set_tenant("acme");
  j.add_command("/bin/true");
  j.mutable_resources()->set_cpus(2);
  j.mutable_resources()->set_memory_mb(64);
  return j;
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  int agents = 1000, reps = 5;
  uint32_t tasks = 64;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--agents")) (void)absl::SimpleAtoi(argv[i + 1], &agents);
    if (!strcmp(argv[i], "--tasks")) (void)absl::SimpleAtoi(argv[i + 1], &tasks);
    if (!strcmp(argv[i], "--reps")) (void)absl::SimpleAtoi(argv[i + 1], &reps);
  }
  const std::optional<v1::Policy> loaded = testing::BenchPolicy();
  if (!loaded) return 2;
  const v1::Policy& policy = *loaded;
  placement::Registry registry;
  placement::RegisterBuiltins(registry);
  testing::FakeClock clock;
  testing::MemoryStore store;
  scheduler::Core core(scheduler::CoreOptions{}, &store, &clock, &registry);
  if (!core.Recover().ok() || !core.ApplyPolicy(policy, "bench").ok()) return 2;
  std::vector<std::shared_ptr<testing::EncodingLink>> links;
  for (int i = 0; i < agents; ++i) {
    auto link = std::make_shared<testing::EncodingLink>();
    const char* site = kSites[i % (sizeof(kSites) / sizeof(kSites[0]))];
    v1::Register reg = testing::SimpleRegister("agent-" + std::to_string(i), 16, site);
    if (!core.OnRegister(reg, link, "127.0.0.1:1")) return 2;
    links.push_back(std::move(link));
  }
  struct Kind {
    const char* name;
    v1::GangSpec::Colocate colocate;
    double max_rtt_ms;
    std::vector<double> seconds;
    int placed = 0;
  } kinds[] = {{"any", v1::GangSpec::any, 0, {}, 0},
               {"site", v1::GangSpec::site, 0, {}, 0},
               {"any_rtt40", v1::GangSpec::any, 40, {}, 0}};
  std::vector<double> separate;
  int ok = 0, want = 0;
  for (int r = 0; r < reps; ++r) {
    for (Kind& k : kinds) {
      v1::Job spec = Member();
      spec.mutable_gang()->set_tasks(tasks);
      spec.mutable_gang()->set_colocate(k.colocate);
      spec.mutable_gang()->set_max_rtt_ms(k.max_rtt_ms);
      const auto t0 = std::chrono::steady_clock::now();
      auto sub = core.Submit(spec);
      k.seconds.push_back(
          std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
      ++want;
      auto counts = sub.ok() ? core.GetJob(sub->first.id())->task_counts()
                             : google::protobuf::Map<std::string, uint32_t>{};
      auto it = counts.find("placed");
      if (it != counts.end() && it->second == tasks) {
        ++k.placed;
        ++ok;
      }
    }
    // The same members as separate jobs, each decided as it is submitted.
    const auto t0 = std::chrono::steady_clock::now();
    for (uint32_t i = 0; i < tasks; ++i) (void)core.Submit(Member());
    separate.push_back(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  const double sep = Median(separate);
  for (const Kind& k : kinds) {
    const double s = Median(k.seconds);
    printf(
        "{\"bench\":\"gang\",\"kind\":\"%s\",\"agents\":%d,\"tasks\":%u,\"reps\":%d,"
        "\"placed_whole\":%d,\"median_s\":%.4f,\"separate_median_s\":%.4f,\"ratio\":%.2f}\n",
        k.name, agents, tasks, reps, k.placed, s, sep, s / sep);
  }
  for (const Kind& k : kinds) {
    printf(
        "gang of %u (%s) on %d agents over 9 sites: placed whole %d/%d, median %.1f ms "
        "(%u separate jobs: %.1f ms; ratio %.2f)\n",
        tasks, k.name, agents, k.placed, reps, Median(k.seconds) * 1e3, tasks, sep * 1e3,
        Median(k.seconds) / sep);
  }
  return ok == want ? 0 : 1;
}
