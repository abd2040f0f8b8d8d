// SPDX-License-Identifier: Apache-2.0
// Job-array benchmark: the scheduler's core (in process, in-memory store,
// agents on fake links) places an array of N tasks, and the same N tasks
// submitted as separate jobs, in the same run; the array twice, in the fresh
// process and again once its heap has grown (tests/bench/array_heap.sh runs
// it under two heap settings). Prints submit-to-all-placed time and
// placements per second for each, and the cold array's ratio to separate
// jobs, as one JSON line
// and a summary. What it measures is the scheduler's work (passes, decisions,
// allocation, bookkeeping), not the store or the network. Asserts nothing.
//
//   build/tests/bench/array_bench [--agents 1000] [--tasks 10000] [--pus 16]
//                                 [--separate N]  (separate jobs; default: --tasks)
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>

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

struct Run {
  double seconds = 0;
  uint32_t placed = 0;
  int passes = 0;
};

struct Setup {
  placement::Registry registry;
  testing::FakeClock clock;
  testing::MemoryStore store;
  std::unique_ptr<scheduler::Core> core;
  std::vector<std::shared_ptr<testing::EncodingLink>> links;
};

std::unique_ptr<Setup> Start(const v1::Policy& policy, int agents, uint32_t pus) {
  auto s = std::make_unique<Setup>();
  placement::RegisterBuiltins(s->registry);
  s->core = std::make_unique<scheduler::Core>(scheduler::CoreOptions{}, &s->store, &s->clock,
                                              &s->registry);
  if (!s->core->Recover().ok() || !s->core->ApplyPolicy(policy, "bench").ok()) return nullptr;
  for (int i = 0; i < agents; ++i) {
    auto link = std::make_shared<testing::EncodingLink>();
    v1::Register reg = testing::SimpleRegister("agent-" + std::to_string(i), pus, "lingang-idc-1");
    if (!s->core->OnRegister(reg, link, "127.0.0.1:1")) return nullptr;
    s->links.push_back(std::move(link));
  }
  return s;
}

v1::Job Task() {
  v1::Job j;
  j.set_tenant("acme");
  j.add_command("/bin/true");
  j.mutable_resources()->set_cpus(1);
  j.mutable_resources()->set_memory_mb(16);
  return j;
}

}  // namespace

int main(int argc, char** argv) {
  int agents = 1000;
  uint32_t tasks = 10000, pus = 16, separate_tasks = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--agents")) (void)absl::SimpleAtoi(argv[i + 1], &agents);
    if (!strcmp(argv[i], "--tasks")) (void)absl::SimpleAtoi(argv[i + 1], &tasks);
    if (!strcmp(argv[i], "--pus")) (void)absl::SimpleAtoi(argv[i + 1], &pus);
    // Fewer separate jobs than tasks (their rate is steady; 0: as many).
    if (!strcmp(argv[i], "--separate")) (void)absl::SimpleAtoi(argv[i + 1], &separate_tasks);
  }
  const std::optional<v1::Policy> loaded = testing::BenchPolicy();
  if (!loaded) return 2;
  const v1::Policy& policy = *loaded;
  if (static_cast<uint64_t>(agents) * pus < tasks) {
    fprintf(stderr, "--agents x --pus must hold --tasks (%d x %u < %u)\n", agents, pus, tasks);
    return 2;
  }

  // One array of `tasks`, twice: in a fresh process (the heap grows as the
  // tasks are made: "cold"), then again in a new core once the first is gone
  // (its memory is reused, as in a scheduler that has run a while: "warm").
  Run cold, array;
  for (int rep = 0; rep < 2; ++rep) {
    if (rep == 1) cold = array;
    array = Run{};
    auto s = Start(policy, agents, pus);
    if (!s) return 2;
    v1::Job spec = Task();
    spec.mutable_array()->set_count(tasks);
    const auto t0 = std::chrono::steady_clock::now();
    auto sub = s->core->Submit(spec);
    if (!sub.ok()) return 2;
    for (; array.passes < 1000; ++array.passes) {
      auto j = s->core->GetJob(sub->first.id());
      auto it = j->task_counts().find("placed");
      array.placed = it == j->task_counts().end() ? 0 : it->second;
      if (array.placed == tasks) break;
      s->core->Tick();
    }
    array.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
  // The same tasks as separate jobs, each decided in full as it is submitted.
  Run separate;
  {
    auto s = Start(policy, agents, pus);
    if (!s) return 2;
    const auto t0 = std::chrono::steady_clock::now();
    if (separate_tasks == 0 || separate_tasks > tasks) separate_tasks = tasks;
    for (uint32_t i = 0; i < separate_tasks; ++i) {
      auto sub = s->core->Submit(Task());
      if (sub.ok() && sub->first.state() == v1::Job::placed) ++separate.placed;
    }
    separate.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
  const Run warm = array;
  array = cold;
  const double array_rate = array.placed / array.seconds;
  const double warm_rate = warm.placed / warm.seconds;
  const double separate_rate = separate.placed / separate.seconds;
  printf(
      "{\"bench\":\"array\",\"agents\":%d,\"tasks\":%u,\"array_placed\":%u,\"array_s\":%.3f,"
      "\"array_placements_per_s\":%.0f,\"array_passes\":%d,\"warm_array_s\":%.3f,"
      "\"warm_array_placements_per_s\":%.0f,\"separate_placed\":%u,"
      "\"separate_s\":%.3f,\"separate_placements_per_s\":%.0f,\"ratio\":%.2f}\n",
      agents, tasks, array.placed, array.seconds, array_rate, array.passes, warm.seconds, warm_rate,
      separate.placed, separate.seconds, separate_rate, array_rate / separate_rate);
  printf(
      "array of %u tasks on %d agents: all placed in %.3f s (%.0f placements/s, %d passes); "
      "again in the same process: %.3f s (%.0f/s); as %u separate jobs: %.3f s (%.0f/s); "
      "ratio %.2f\n",
      tasks, agents, array.seconds, array_rate, array.passes, warm.seconds, warm_rate,
      separate_tasks, separate.seconds, separate_rate, array_rate / separate_rate);
  return array.placed == tasks && warm.placed == tasks && separate.placed == separate_tasks ? 0 : 1;
}
