// Placement engine benchmark: N agents spread over the default policy's
// sites, a mixed stream of jobs (half carrying CN personal data, some pinned,
// some with latency limits, some large). Runs single-threaded and prints
// decisions per second and decision latency percentiles as one JSON line,
// then a short human summary. Not a test: it asserts nothing about time.
//
//   build/tests/bench/engine_bench [--agents N] [--decisions N] [--policy FILE]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "portolan/codec.h"
#include "portolan/placement.h"
#include "portolan/policy.h"

using namespace portolan;

int main(int argc, char** argv) {
  int agents_n = 10000, decisions = 20000;
  std::string policy_file = PORTOLAN_SOURCE_DIR "/deploy/policy/default.yaml";
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--agents"))
      (void)absl::SimpleAtoi(argv[i + 1], &agents_n);
    else if (!strcmp(argv[i], "--decisions"))
      (void)absl::SimpleAtoi(argv[i + 1], &decisions);
    else if (!strcmp(argv[i], "--policy"))
      policy_file = argv[i + 1];
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

  // Agents: emulated servers of a few shapes, 80% ready, with random load.
  std::mt19937 rng(42);
  std::vector<v1::Agent> agents(agents_n);
  const auto& sites = (*policy)->policy().sites();
  const int shapes[][2] = {{64, 262144}, {96, 786432}, {128, 524288}, {32, 131072}};
  std::map<std::string, std::vector<placement::AgentView>> by_site;
  for (int i = 0; i < agents_n; ++i) {
    v1::Agent& a = agents[i];
    a.set_id("agent-" + std::to_string(i));
    a.set_site(sites[i % sites.size()].id());
    a.set_connected(true);
    a.set_state(rng() % 10 < 8 ? v1::Agent::ready : v1::Agent::cordoned);
    const auto* shape = shapes[rng() % 4];
    a.mutable_capacity()->set_cpus(shape[0]);
    a.mutable_capacity()->set_memory_mb(shape[1]);
    a.mutable_capacity()->set_gpus(rng() % 8 == 0 ? 8 : 0);
  }
  for (auto& a : agents) {
    placement::AgentView v{&a, a.capacity()};
    v.free.set_cpus(static_cast<int>(rng() % (a.capacity().cpus() + 1)));
    v.free.set_memory_mb(static_cast<int>(rng() % (a.capacity().memory_mb() + 1)));
    by_site[a.site()].push_back(v);
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
  policy::Ledger ledger;
  placement::DecisionInput in;
  in.tenant = &tenant;
  in.policy = policy->get();
  in.ledger = &ledger;
  in.today = absl::CivilDay(2026, 11, 21);
  in.agents_by_site = &by_site;

  std::vector<double> lat_us;
  lat_us.reserve(decisions);
  int feasible = 0;
  // Warm-up.
  for (int i = 0; i < 200; ++i) {
    in.job = &jobs[i % jobs.size()];
    (*engine)->Decide(in);
  }
  auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < decisions; ++i) {
    in.job = &jobs[i % jobs.size()];
    auto a = std::chrono::steady_clock::now();
    v1::Decision d = (*engine)->Decide(in);
    auto b = std::chrono::steady_clock::now();
    feasible += d.feasible() ? 1 : 0;
    lat_us.push_back(std::chrono::duration<double, std::micro>(b - a).count());
  }
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::sort(lat_us.begin(), lat_us.end());
  auto pct = [&](double p) {
    return lat_us[std::min(lat_us.size() - 1, static_cast<size_t>(p * lat_us.size()))];
  };
  printf(
      "{\"bench\":\"engine\",\"agents\":%d,\"sites\":%d,\"decisions\":%d,\"feasible\":%d,"
      "\"decisions_per_s\":%.0f,\"p50_us\":%.1f,\"p99_us\":%.1f,\"max_us\":%.1f}\n",
      agents_n, sites.size(), decisions, feasible, decisions / secs, pct(0.50), pct(0.99),
      lat_us.back());
  printf(
      "engine: %d agents over %d sites, %d decisions on one thread: %.0f decisions/s, p50 %.1f us, "
      "p99 %.1f us\n",
      agents_n, sites.size(), decisions, decisions / secs, pct(0.50), pct(0.99));
  return 0;
}
