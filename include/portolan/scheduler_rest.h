#pragma once

#include <atomic>

#include "portolan/rest_server.h"
#include "portolan/scheduler_core.h"

namespace portolan::scheduler {

// Registers the v1 REST API of the scheduler on `server`. `ready` is read by
// /readyz (true once the store is recovered and the agent port listens).
// `core` and `ready` must outlive the server.
void RegisterRestApi(rest::Server& server, Core* core, const std::atomic<bool>* ready);

}  // namespace portolan::scheduler
