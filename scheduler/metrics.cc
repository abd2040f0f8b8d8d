// SPDX-License-Identifier: Apache-2.0
#include "portolan/scheduler/metrics.h"
#include "portolan/network/network.h"
#include "portolan/scheduler/link_metric.h"

namespace portolan::scheduler {

SchedulerMetrics::SchedulerMetrics(metrics::Registry& r)
    : registry(r),
      submits(
          r.AddCounter("portolan_submits_total", "Jobs accepted (stored) by tenant.", {"tenant"})),
      decisions(r.AddCounter("portolan_decisions_total",
                             "Placement decisions by result: placed, waiting, unschedulable.",
                             {"result"})),
      placed(decisions->With({"placed"})),
      waiting(decisions->With({"waiting"})),
      unschedulable(decisions->With({"unschedulable"})),
      decision_seconds(r.AddHistogram("portolan_decision_duration_seconds",
                                      "Time of one placement engine decision.",
                                      metrics::LatencyBuckets())
                           ->With()),
      rejections(r.AddCounter(
          "portolan_rejections_total",
          "Agents rejected in decisions, by the filter that rejected them (residency, "
          "latency_limit, resource_fit, topology_fit, agent_health, isolation, site_affinity).",
          {"reason"})),
      jobs(r.AddGauge("portolan_jobs", "Jobs known to the scheduler by state and tenant.",
                      {"state", "tenant"}, 5000)),
      queue_depth(r.AddGauge("portolan_queue_depth", "Jobs waiting for placement.")->With()),
      oldest_waiting_seconds(
          r.AddGauge("portolan_oldest_waiting_job_age_seconds",
                     "Age of the oldest job waiting for placement (0 when none waits).")
              ->With()),
      agents(r.AddGauge("portolan_agents", "Agents by site and state.", {"site", "state"})),
      heartbeat_rtt(r.AddGauge("portolan_agent_heartbeat_rtt_seconds",
                               "Round trip of each connected agent's latest heartbeat.",
                               {"agent", "site"}, 20000)),
      store_commit_seconds(r.AddHistogram("portolan_store_commit_duration_seconds",
                                          "Time of one durable store commit (a group of writes, "
                                          "fsync included).",
                                          metrics::LatencyBuckets())
                               ->With()),
      store_batch_writes(r.AddHistogram("portolan_store_commit_writes",
                                        "Writes per store commit (group commit batch size).",
                                        metrics::ExponentialBuckets(1, 2, 12))
                             ->With()),
      policy_version(
          r.AddGauge("portolan_policy_version", "Number of the placement policy version in force.")
              ->With()),
      http_requests(r.AddCounter("portolan_http_requests_total", "REST requests by status code.",
                                 {"code"}, 100)),
      rpc_connections(
          r.AddGauge("portolan_agent_connections", "Open agent RPC connections.")->With()),
      http_connections(r.AddGauge("portolan_http_connections", "Open REST connections.")->With()),
      http_connections_refused(r.AddGauge("portolan_http_connections_refused",
                                          "REST connections closed at accept since start because "
                                          "they were over --rest-max-connections or "
                                          "--rest-max-connections-per-client.")
                                   ->With()),
      compliance_violations(r.AddGauge(
          "portolan_compliance_violations",
          "Placed or running jobs (datasets) the residency policy in force no longer allows, by "
          "tenant and rule (GET /v1/compliance/violations).",
          {"tenant", "rule"}, 5000)),
      instrument_expiry_seconds(r.AddGauge(
          "portolan_instrument_expiry_seconds",
          "Seconds until each instrument a tenant holds expires (end of its expiry day, UTC); "
          "negative once expired. Instruments without expiry are not listed.",
          {"tenant", "type", "reference"}, 5000)),
      tenant_used(r.AddGauge("portolan_tenant_used",
                             "What each tenant's placed and running jobs hold (requested "
                             "resources), by resource: cpus, memory_mb, gpus.",
                             {"tenant", "resource"}, 5000)),
      tenant_quota(r.AddGauge("portolan_tenant_quota",
                              "Each tenant's quota by resource (cpus, memory_mb, gpus); only "
                              "the limits its profile sets (tenant-wide).",
                              {"tenant", "resource"}, 5000)) {}

}  // namespace portolan::scheduler

namespace portolan::scheduler {

void AddLinkMetric(metrics::Registry& registry, Core& core) {
  auto* link_up = registry.AddGauge(
      "portolan_link_up",
      "Each network link of the policy in force: 1 up, 0 down (PATCH /v1/network/links/{id}).",
      {"link", "kind", "cable"});
  registry.OnScrape([&core, link_up] {
    link_up->Clear();
    auto p = core.GetPolicy();
    if (!p.ok()) return;
    for (const v1::Link& l : p->links()) {
      link_up->With({l.id(), v1::Link::Kind_Name(l.kind()), l.cable()})
          ->Set(network::LinkUp(l) ? 1 : 0);
    }
  });
}

}  // namespace portolan::scheduler
