// SPDX-License-Identifier: Apache-2.0
#pragma once

// systemd service notification (sd_notify, libsystemd) for Type=notify
// units: READY once serving, STATUS lines, WATCHDOG pings, STOPPING. Every
// call is a no-op when the process was not started by systemd (no
// $NOTIFY_SOCKET), so the daemons call them unconditionally. Thread-safe.
#include <string>

#include "absl/time/time.h"

namespace portolan::service {

void Ready(const std::string& status);
void Status(const std::string& status);
void Stopping();
// The interval systemd expects pings within ($WATCHDOG_USEC), or zero when
// the watchdog is off. Ping at half of it.
absl::Duration WatchdogInterval();
void WatchdogPing();

}  // namespace portolan::service
