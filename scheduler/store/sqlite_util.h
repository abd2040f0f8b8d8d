// SPDX-License-Identifier: Apache-2.0
#pragma once

// Small SQLite helpers shared by the store and its schema migrations
// (private to the store). The caller serialises use of `db`.
#include <sqlite3.h>

#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace portolan::store {

// The connection's last error as a Status: Unavailable for a full disk, I/O
// errors and locks (the caller may retry or shed load), Internal otherwise.
inline absl::Status SqliteError(sqlite3* db, absl::string_view what) {
  const int code = sqlite3_errcode(db);
  std::string msg = absl::StrCat(what, ": ", sqlite3_errmsg(db));
  if (code == SQLITE_FULL || code == SQLITE_IOERR || code == SQLITE_BUSY || code == SQLITE_LOCKED)
    return absl::UnavailableError(msg);
  return absl::InternalError(msg);
}

// Runs `sql` (one or more statements, no results).
inline absl::Status SqliteExec(sqlite3* db, const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = absl::StrCat(sql, ": ", err ? err : "error");
    sqlite3_free(err);
    return absl::InternalError(msg);
  }
  return absl::OkStatus();
}

// Runs the query `sql`, calling `row(stmt)` for each row.
template <typename F>
absl::Status SqliteQuery(sqlite3* db, const char* sql, F&& row) {
  sqlite3_stmt* s = nullptr;
  if (sqlite3_prepare_v2(db, sql, -1, &s, nullptr) != SQLITE_OK) return SqliteError(db, sql);
  int rc;
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) row(s);
  sqlite3_finalize(s);
  if (rc != SQLITE_DONE) return SqliteError(db, sql);
  return absl::OkStatus();
}

// Column `col` of the current row as text ("" for NULL).
inline std::string SqliteText(sqlite3_stmt* s, int col) {
  const unsigned char* p = sqlite3_column_text(s, col);
  return p ? std::string(reinterpret_cast<const char*>(p),
                         static_cast<size_t>(sqlite3_column_bytes(s, col)))
           : std::string();
}

}  // namespace portolan::store
