// SPDX-License-Identifier: Apache-2.0
#include "portolan/service/notify.h"

#include <systemd/sd-daemon.h>

namespace portolan::service {

void Ready(const std::string& status) { sd_notifyf(0, "READY=1\nSTATUS=%s", status.c_str()); }

void Status(const std::string& status) { sd_notifyf(0, "STATUS=%s", status.c_str()); }

void Stopping() { sd_notify(0, "STOPPING=1"); }

absl::Duration WatchdogInterval() {
  uint64_t usec = 0;
  if (sd_watchdog_enabled(0, &usec) <= 0) return absl::ZeroDuration();
  return absl::Microseconds(static_cast<int64_t>(usec));
}

void WatchdogPing() { sd_notify(0, "WATCHDOG=1"); }

}  // namespace portolan::service
