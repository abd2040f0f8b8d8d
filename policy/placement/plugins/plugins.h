// SPDX-License-Identifier: Apache-2.0
#pragma once

// Factories of the built-in plugins that live in files of their own
// (private to the placement module; RegisterBuiltins registers them all).
#include <memory>
#include <string>

#include "portolan/placement/placement.h"

namespace portolan::placement {

// residency: a site filter (every dataset allowed at the site by the rules)
// and a Reserve plugin (the ledger and the audit trail of the transfers a
// committed placement makes). residency.cc.
std::unique_ptr<Plugin> NewResidencyPlugin();

// Queue sorts (queue_sort.cc). drf: priority first; within a priority the
// tenant with the smallest dominant share goes next; each tenant FIFO.
// priority_fifo: priority first, then submit order, no fair share.
std::unique_ptr<Plugin> NewDrfQueueSort();
std::unique_ptr<Plugin> NewPriorityFifoQueueSort();

}  // namespace portolan::placement
