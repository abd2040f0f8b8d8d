// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <functional>

#include "portolan/metrics/metrics.h"
#include "portolan/rest/server.h"
#include "portolan/v1/cluster.pb.h"

namespace portolan::rest {

// GET /v1/cluster (admins and operators): who leads, who stands by, and the
// store's health. `view` is called per request; it must be thread-safe and
// outlive the server.
void RegisterClusterApi(Server& server, std::function<v1::ClusterView()> view);

// The view of a scheduler that is alone (its state in SQLite): the leader.
v1::ClusterView SingleSchedulerView(const std::string& id, const std::string& rest_addr,
                                    const std::string& rpc_addr);

// What a standby scheduler serves (docs/operations.md#high-availability):
// /healthz (alive), /readyz (503, naming the leader), /v1/cluster, /metrics
// when `metrics` is given, and for every other request a 307 to the same
// target on the leader's REST URL (503 `unavailable` while no leader is
// known). `leader` is called per request, thread-safe.
void RegisterStandbyApi(Server& server, std::function<v1::ClusterMember()> leader,
                        std::function<v1::ClusterView()> view, metrics::Registry* metrics);

}  // namespace portolan::rest
