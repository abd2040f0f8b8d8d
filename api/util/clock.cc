#include "portolan/clock.h"

#include "absl/time/clock.h"

namespace portolan {
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

}  // namespace portolan
