// SPDX-License-Identifier: Apache-2.0
#include "portolan/base/clock.h"

#include "absl/time/clock.h"

namespace portolan::base {
namespace {
class RealClockImpl : public Clock {
 public:
  absl::Time Now() const override { return absl::Now(); }
};
}  // namespace

Clock* RealClock() {
  static Clock* clock = new RealClockImpl();
  return clock;
}

}  // namespace portolan::base
