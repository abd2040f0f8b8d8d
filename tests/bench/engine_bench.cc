// SPDX-License-Identifier: Apache-2.0
// Placement engine benchmark: N agents spread over the default policy's
// sites, a mixed stream of jobs (half carrying CN personal data, some pinned,
// some with latency limits, some large). Runs single-threaded and prints
// decisions per second and decision latency percentiles as one JSON line,
// then a short human summary. Not a test: it asserts nothing about time.
//
//   build/tests/bench/engine_bench [--agents N] [--decisions N] [--policy FILE]
//                                  [--arena on|off]
//
// Each decision is built on a protobuf arena, as the scheduler's pass does;
// `--arena off` builds it on the heap (as Engine::Decide(in) returns it).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "portolan/codec/codec.h"
#include "portolan/placement/placement.h"
#include "portolan/policy/policy.h"
#include "portolan/topology/allocator.h"

using namespace portolan;

int main(int argc, char** argv) {
  int agents_n = 10000, decisions = 20000;
  bool arena = true;
  std::string policy_file = PORTOLAN_SOURCE_DIR "/deploy/policy/default.yaml";
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--agents"))
      (void)absl::SimpleAtoi(argv[i + 1], &agents_n);
    else if (!strcmp(argv[i], "--decisions"))
      (void)absl::SimpleAtoi(argv[i + 1], &decisions);
    else if (!strcmp(argv[i], "--policy"))
      policy_file = argv[i + 1];
    else if (!strcmp(argv[i], "--arena"))
      arena = strcmp(argv[i + 1], "off") != 0;
  }
  placement::Registry registry;
  placement::RegisterBuiltins(registry);
  auto policy = policy::LoadPolicyFile(policy_file, registry.NameSet());
  if (!policy.ok()) {
    fprintf(stderr, "%s\n", std::string(policy.status().message()).c_str());
    return 2;
  }
  auto engine = placement::Engine::Create(registry, (*policy)->policy().plugins());
  if (!engine.ok()) return 2;

  // Agents: emulated servers of a few shapes (packages x NUMA x cores x 2 PUs),
  // 80% ready, each with random existing load committed to its topology.
  std::mt19937 rng(42);
  std::vector<v1::Agent> agents(agents_n);
  const auto& sites = (*policy)->policy().sites();
  struct Shape {
    int packages, numa_per_package, cores_per_numa, mem_per_numa_mb, gpus;
  };
  const Shape shapes[] = {
      {2, 1, 16, 131072, 0}, {2, 2, 12, 196608, 0}, {2, 2, 16, 131072, 8}, {1, 1, 16, 131072, 0}};
  auto make_topology = [](const Shape& sh) {
    v1::Topology t;
    t.set_source("synthetic:bench");
    t.set_packages(sh.packages);
    uint32_t pu = 0, core = 0;
    for (int p = 0; p < sh.packages; ++p) {
      for (int n = 0; n < sh.numa_per_package; ++n) {
        const uint32_t node = p * sh.numa_per_package + n;
        auto* nn = t.add_numa_nodes();
        nn->set_os_index(node);
        nn->set_memory_mb(sh.mem_per_numa_mb);
        for (int c = 0; c < sh.cores_per_numa; ++c) {
          v1::Core* co = t.add_cores();
          co->set_index(core++);
          co->set_package(p);
          co->set_numa(static_cast<int32_t>(node));
          co->set_l3(static_cast<int32_t>(node));
          co->add_pus(pu++);
          co->add_pus(pu++);
        }
      }
    }
    for (int g = 0; g < sh.gpus; ++g) {
      v1::Gpu* gpu = t.add_gpus();
      gpu->set_name("cuda" + std::to_string(g));
      gpu->set_numa(g * t.numa_nodes_size() / sh.gpus);
    }
    t.set_pus(pu);
    t.set_memory_mb(static_cast<uint32_t>(sh.mem_per_numa_mb) * t.numa_nodes_size());
    return t;
  };
  std::vector<std::unique_ptr<topology::AgentTopology>> topos(agents_n);
  std::map<std::string, std::vector<placement::AgentView>> by_site;
  for (int i = 0; i < agents_n; ++i) {
    v1::Agent& a = agents[i];
    a.set_id("agent-" + std::to_string(i));
    a.set_site(sites[i % sites.size()].id());
    a.set_connected(true);
    a.set_state(rng() % 10 < 8 ? v1::Agent::ready : v1::Agent::cordoned);
    *a.mutable_topology() = make_topology(shapes[rng() % 4]);
    auto& topo = topos[i] = std::make_unique<topology::AgentTopology>(a.topology());
    // Existing load: random jobs until a random share of the PUs is taken.
    const int target = static_cast<int>(rng() % (topo->total_pus() + 1));
    for (int k = 0; topo->total_pus() - topo->free_pus() < target && k < 64; ++k) {
      topology::Request r;
      r.pus = 1 + static_cast<int>(rng() % 8);
      r.memory_mb = 1024 * (1 + static_cast<int>(rng() % 16));
      auto alloc = topo->Plan(r);
      if (alloc.ok()) (void)topo->Commit(*alloc, "load-" + std::to_string(k));
    }
    a.mutable_capacity()->set_cpus(topo->total_pus());
    a.mutable_capacity()->set_memory_mb(topo->total_memory_mb());
    a.mutable_capacity()->set_gpus(topo->total_gpus());
  }
  for (int i = 0; i < agents_n; ++i) {
    v1::Agent& a = agents[i];
    placement::AgentView v{&a, a.capacity(), topos[i].get()};
    v.free.set_cpus(topos[i]->free_pus());
    v.free.set_memory_mb(topos[i]->free_memory_mb());
    v.free.set_gpus(topos[i]->free_gpus());
    by_site[a.site()].push_back(v);
  }
  // As the scheduler lists them: each site's agents by id.
  for (auto& [site, views] : by_site) {
    std::sort(views.begin(), views.end(),
              [](const placement::AgentView& x, const placement::AgentView& y) {
                return x.agent->id() < y.agent->id();
              });
  }

  // Job mix.
  std::vector<v1::Job> jobs(64);
  for (size_t k = 0; k < jobs.size(); ++k) {
    v1::Job& j = jobs[k];
    j.set_tenant("acme");
    j.add_command("/bin/true");
    j.mutable_resources()->set_cpus(1 << (k % 5));
    j.mutable_resources()->set_memory_mb(1024 << (k % 4));
    if (k % 8 == 3) j.mutable_resources()->set_gpus(2);
    if (k % 6 == 1) j.mutable_topology()->set_numa(v1::TopologyRequest::single);
    if (k % 10 == 7) j.mutable_topology()->set_smt(v1::TopologyRequest::exclusive);
    if (k % 2 == 0) {
      v1::Dataset* d = j.add_datasets();
      d->set_id("reads-" + std::to_string(k));
      d->set_origin("CN");
      d->set_location("lingang-idc-1");
      d->set_size_gb(50 + k);
      d->add_categories(v1::Dataset::personal);
      d->set_subjects(k % 4 == 0 ? 250000 : 5000);
    } else if (k % 3 == 0) {
      v1::Dataset* d = j.add_datasets();
      d->set_id("logs-" + std::to_string(k));
      d->set_origin("HK");
      d->set_location("singapore-1");
      d->set_size_gb(2000);
    }
    if (k % 5 == 0) (*j.mutable_placement()->mutable_max_rtt_ms())["hongkong-1"] = 60;
    if (k % 7 == 0) j.mutable_placement()->add_avoid_sites("tokyo-1");
  }
  v1::Tenant tenant;
  tenant.set_id("acme");
  residency::Ledger ledger;
  placement::DecisionInput in;
  in.tenant = &tenant;
  in.policy = policy->get();
  in.ledger = &ledger;
  in.today = absl::CivilDay(2026, 11, 21);
  in.agents_by_site = &by_site;

  std::vector<double> lat_us;
  lat_us.reserve(decisions);
  int feasible = 0;
  // Agents examined (not skipped by the fast path) and scored (feasible) at
  // the allowed sites: the work a decision does.
  uint64_t examined = 0, scored = 0;
  // A digest of every winner and its PUs: two builds that decide alike print
  // the same (compare it before comparing their speed).
  uint64_t digest = 14695981039346656037ull;
  auto fold = [&](uint64_t v) { digest = (digest ^ v) * 1099511628211ull; };
  auto count = [&](const v1::Decision& d) {
    feasible += d.feasible() ? 1 : 0;
    fold(std::hash<std::string>{}(d.placement().agent()));
    for (uint32_t pu : d.placement().cpus()) fold(pu);
    for (const v1::SiteDecision& s : d.sites()) {
      if (!s.allowed()) continue;
      examined += s.agents().considered() - s.agents().skipped();
      scored += s.agents().feasible();
    }
  };
  // Warm-up.
  for (int i = 0; i < 200; ++i) {
    in.job = &jobs[i % jobs.size()];
    (*engine)->Decide(in);
  }
  auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < decisions; ++i) {
    in.job = &jobs[i % jobs.size()];
    auto a = std::chrono::steady_clock::now();
    std::chrono::steady_clock::time_point b;
    if (arena) {
      // As the scheduler's pass does: each decision on an arena, dropped
      // with it once what is kept of it is serialized.
      placement::DecisionArena scratch;
      v1::Decision* d = scratch.NewDecision();
      (*engine)->Decide(in, d);
      b = std::chrono::steady_clock::now();
      count(*d);
    } else {
      v1::Decision d = (*engine)->Decide(in);
      b = std::chrono::steady_clock::now();
      count(d);
    }
    lat_us.push_back(std::chrono::duration<double, std::micro>(b - a).count());
  }
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::sort(lat_us.begin(), lat_us.end());
  auto pct = [&](double p) {
    return lat_us[std::min(lat_us.size() - 1, static_cast<size_t>(p * lat_us.size()))];
  };
  printf(
      "{\"bench\":\"engine\",\"agents\":%d,\"sites\":%d,\"decisions\":%d,\"feasible\":%d,"
      "\"decisions_per_s\":%.0f,\"p50_us\":%.1f,\"p99_us\":%.1f,\"max_us\":%.1f,"
      "\"examined_per_decision\":%.1f,\"scored_per_decision\":%.1f,\"placements_digest\":\"%"
      "016llx\"}\n",
      agents_n, sites.size(), decisions, feasible, decisions / secs, pct(0.50), pct(0.99),
      lat_us.back(), double(examined) / decisions, double(scored) / decisions,
      static_cast<unsigned long long>(digest));
  printf(
      "engine: %d agents over %d sites, %d decisions on one thread: %.0f decisions/s, p50 %.1f us, "
      "p99 %.1f us; %.0f agents examined and %.0f scored per decision\n",
      agents_n, sites.size(), decisions, decisions / secs, pct(0.50), pct(0.99),
      double(examined) / decisions, double(scored) / decisions);
  return 0;
}
