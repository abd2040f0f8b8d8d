// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <mutex>

#include "absl/base/thread_annotations.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace portolan::base {

// Source of wall-clock time. Components that make time-based decisions
// (heartbeat TTLs, timeouts, event timestamps) take a Clock so tests can drive
// time by hand instead of sleeping. Implementations are thread-safe.
class Clock {
 public:
  virtual ~Clock() = default;
  virtual absl::Time Now() const = 0;
};

// The real clock. Shared process-wide; never deleted.
Clock* RealClock();

// Real time shifted to start at `start`: runs at real speed from that
// instant. For drills and tests of a daemon (a year end, an expiry) without
// touching the host's clock. Thread-safe (immutable).
class OffsetClock : public Clock {
 public:
  explicit OffsetClock(absl::Time start) : offset_(start - absl::Now()) {}
  absl::Time Now() const override { return absl::Now() + offset_; }

 private:
  const absl::Duration offset_;
};

}  // namespace portolan::base
