// SPDX-License-Identifier: Apache-2.0
#pragma once

// The state database's schema (PRAGMA user_version) and its migrations,
// private to the store. Each migration runs in one transaction that also
// bumps user_version, so a crash leaves either the old or the new schema.
#include <sqlite3.h>

#include <string>

#include "absl/status/status.h"

namespace portolan::store {

inline constexpr int kSchemaVersion = 5;

// Refuses a foreign, corrupt or newer file (never overwriting it), sets WAL,
// synchronous=FULL and the busy timeout, then migrates `db` from its
// user_version to kSchemaVersion. `path` names the file in errors.
absl::Status MigrateSchema(sqlite3* db, const std::string& path);

}  // namespace portolan::store
