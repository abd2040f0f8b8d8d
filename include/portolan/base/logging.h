// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <string>

#include "absl/status/status.h"

namespace portolan::base {

// Configures the process-wide spdlog default logger.
//   format: "text" (readable, the default) or "json" (one object per line with
//           ts, level, logger and msg, msg properly escaped).
//   level:  trace, debug, info, warn, error, critical, off.
// Call once at start-up, before other threads log.
absl::Status SetupLogging(const std::string& format, const std::string& level,
                          const std::string& name);

}  // namespace portolan::base
