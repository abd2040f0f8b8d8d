// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <atomic>

#include "portolan/rest/server.h"
#include "portolan/scheduler/core.h"

namespace portolan::rest {

// Registers the v1 REST API of the scheduler on `server`. `ready` is read by
// /readyz (true once the store is recovered and the agent port listens).
// `metrics`, when given, is served at GET /metrics (admins and operators:
// the series name tenants and agents). All must outlive the server.
// `simulate` bounds POST /v1/policy:simulate and the check PUT /v1/policy
// makes before applying (would placed or running jobs become violations?).
void RegisterRestApi(Server& server, scheduler::Core* core, const std::atomic<bool>* ready,
                     metrics::Registry* metrics = nullptr,
                     const scheduler::SimulateLimits& simulate = {});

// GET /v1/events: `hub`'s events as server-sent events, each one only to
// callers who may read its subject through the REST API (docs/api.md#events).
// RegisterRestApi calls it with the core's hub, which must outlive the server.
void RegisterEventsApi(Server& server, scheduler::EventHub* hub);

// /v1/datasets: the core's dataset registry (docs/datasets.md).
// RegisterRestApi calls it.
void RegisterDatasetsApi(Server& server, scheduler::Core* core);

// GET /metrics (admins and operators) when `metrics` is given, and the public
// GET /healthz ("ok", the version, `detail`). RegisterRestApi calls it; a
// standby scheduler too.
void RegisterHealthAndMetrics(Server& server, metrics::Registry* metrics,
                              const std::string& detail = "");

}  // namespace portolan::rest
