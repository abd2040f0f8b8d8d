// SPDX-License-Identifier: Apache-2.0
#pragma once

// The scheduler's Prometheus metrics (served at GET /metrics). Counters and
// histograms are recorded as things happen; gauges that describe state (jobs
// by state and tenant, queue, agents) are refreshed from the Core at each
// scrape. Names and meanings are listed in docs/operations.md#metrics.
#include "portolan/metrics/metrics.h"

namespace portolan::scheduler {

struct SchedulerMetrics {
  explicit SchedulerMetrics(metrics::Registry& registry);

  metrics::Registry& registry;
  metrics::Family<metrics::Counter>* submits;    // {tenant}
  metrics::Family<metrics::Counter>* decisions;  // {result}: placed, waiting, unschedulable
  // Its three series, looked up once (the placement loop records one per decision).
  metrics::Counter* placed;
  metrics::Counter* waiting;
  metrics::Counter* unschedulable;
  metrics::Histogram* decision_seconds;           // one engine decision
  metrics::Family<metrics::Counter>* rejections;  // {reason}: agents rejected, by filter
  metrics::Family<metrics::Gauge>* jobs;          // {state, tenant}
  metrics::Gauge* queue_depth;
  metrics::Gauge* oldest_waiting_seconds;
  metrics::Family<metrics::Gauge>* agents;         // {site, state}
  metrics::Family<metrics::Gauge>* heartbeat_rtt;  // {agent, site}, seconds
  metrics::Histogram* store_commit_seconds;
  metrics::Histogram* store_batch_writes;
  metrics::Gauge* policy_version;
  metrics::Family<metrics::Counter>* http_requests;  // {code}
  metrics::Gauge* rpc_connections;
  metrics::Gauge* http_connections;
  metrics::Gauge* http_connections_refused;  // since start (set at scrape)
  // Running or placed jobs the policy in force no longer allows, by tenant
  // and rule; and each held instrument's seconds to expiry (negative once
  // expired), by tenant, type and reference.
  metrics::Family<metrics::Gauge>* compliance_violations;
  metrics::Family<metrics::Gauge>* instrument_expiry_seconds;
  // Each tenant's use and quota by resource (cpus, memory_mb, gpus).
  metrics::Family<metrics::Gauge>* tenant_used;
  metrics::Family<metrics::Gauge>* tenant_quota;
};

}  // namespace portolan::scheduler
