// SPDX-License-Identifier: Apache-2.0
#pragma once

#include "portolan/metrics/metrics.h"
#include "portolan/scheduler/core.h"

namespace portolan::scheduler {

// Registers portolan_link_up{link, kind, cable}: each link of the policy in
// force, 1 up and 0 down (cut by an operator, the console or a policy), read
// from `core` at each scrape. `core` must outlive the scrapes.
void AddLinkMetric(metrics::Registry& registry, Core& core);

}  // namespace portolan::scheduler
