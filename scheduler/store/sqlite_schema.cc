// SPDX-License-Identifier: Apache-2.0
// The SQLite schema of the state database and its migrations.
#include "scheduler/store/sqlite_schema.h"

#include <map>
#include <set>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "portolan/base/log.h"
#include "portolan/base/strings.h"
#include "portolan/v1/job.pb.h"
#include "portolan/v1/policy.pb.h"
#include "scheduler/store/sqlite_util.h"

namespace portolan::store {
namespace {

// Migrations, applied in order from the database's user_version. Each runs in
// one transaction that also bumps user_version, so a crash leaves either the
// old or the new schema.
const char* const kMigrations[] = {
    // 0 -> 1: the foundation.
    "CREATE TABLE jobs (id TEXT PRIMARY KEY, tenant TEXT NOT NULL, state INTEGER NOT NULL,"
    "  submitted_ns INTEGER NOT NULL, data BLOB NOT NULL);"
    "CREATE INDEX jobs_state ON jobs(state);"
    "CREATE TABLE agents (id TEXT PRIMARY KEY, site TEXT NOT NULL, data BLOB NOT NULL);"
    "CREATE TABLE job_logs (job_id TEXT PRIMARY KEY, data BLOB NOT NULL);",
    // 1 -> 2: policy engine state.
    "CREATE TABLE decisions (job_id TEXT PRIMARY KEY, data BLOB NOT NULL);"
    "CREATE TABLE tenants (id TEXT PRIMARY KEY, data BLOB NOT NULL);"
    "CREATE TABLE policy_versions (seq INTEGER PRIMARY KEY AUTOINCREMENT, version TEXT NOT NULL,"
    "  data BLOB NOT NULL);"
    "CREATE TABLE ledger (tenant TEXT NOT NULL, year INTEGER NOT NULL, jurisdiction TEXT NOT NULL,"
    "  data BLOB NOT NULL, PRIMARY KEY (tenant, year, jurisdiction));"
    "CREATE TABLE audit (seq INTEGER PRIMARY KEY AUTOINCREMENT, tenant TEXT NOT NULL, job TEXT NOT "
    "NULL,"
    "  data BLOB NOT NULL);"
    "CREATE INDEX audit_tenant ON audit(tenant);"
    "CREATE INDEX audit_job ON audit(job);",
    // 2 -> 3: ended jobs are indexed, not loaded. The covering index gives
    // every summary (JobSummary) without reading a record; existing records'
    // idempotency keys are copied into the new column by BackfillKeys.
    "ALTER TABLE jobs ADD COLUMN idempotency_key TEXT NOT NULL DEFAULT '';"
    "DROP INDEX IF EXISTS jobs_state;"
    "CREATE INDEX jobs_summary ON jobs(state, submitted_ns, id, tenant, idempotency_key);",
    // 3 -> 4: the ledger counts per origin regime over all destinations
    // together (it was per destination). RebuildLedger refills it from the
    // audit trail, which records every cross-border placement with its
    // origin and subject counts.
    "DROP TABLE ledger;"
    "CREATE TABLE ledger (tenant TEXT NOT NULL, year INTEGER NOT NULL, origin TEXT NOT NULL,"
    "  data BLOB NOT NULL, PRIMARY KEY (tenant, year, origin));",
    // 4 -> 5: the dataset registry, every version kept.
    ("CREATE TABLE dataset_versions (id TEXT NOT NULL, version INTEGER NOT NULL,"
     "  tenant TEXT NOT NULL, data BLOB NOT NULL, PRIMARY KEY (id, version));"),
};

// Schema 3: the idempotency_key column of jobs stored before it existed,
// from their records. Runs inside the migration's transaction.
absl::Status BackfillKeys(sqlite3* db) {
  std::vector<std::pair<std::string, std::string>> keys;  // id, key
  absl::Status bad;
  absl::Status st = SqliteQuery(db, "SELECT id, data FROM jobs", [&](sqlite3_stmt* s) {
    v1::Job j;
    if (!j.ParseFromArray(sqlite3_column_blob(s, 1), sqlite3_column_bytes(s, 1))) {
      bad =
          absl::DataLossError(absl::StrCat("job record '", SqliteText(s, 0), "' does not decode"));
      return;
    }
    if (!j.idempotency_key().empty()) keys.emplace_back(j.id(), j.idempotency_key());
  });
  if (!st.ok()) return st;
  if (!bad.ok()) return bad;
  sqlite3_stmt* u = nullptr;
  if (sqlite3_prepare_v2(db, "UPDATE jobs SET idempotency_key = ?2 WHERE id = ?1", -1, &u,
                         nullptr) != SQLITE_OK)
    return SqliteError(db, "prepare backfill");
  int rc = SQLITE_DONE;
  for (const auto& [id, key] : keys) {
    sqlite3_reset(u);
    sqlite3_bind_text(u, 1, id.data(), static_cast<int>(id.size()), SQLITE_TRANSIENT);
    sqlite3_bind_text(u, 2, key.data(), static_cast<int>(key.size()), SQLITE_TRANSIENT);
    rc = sqlite3_step(u);
    if (rc != SQLITE_DONE) break;
  }
  absl::Status out =
      rc == SQLITE_DONE ? absl::OkStatus() : SqliteError(db, "backfill idempotency keys");
  sqlite3_finalize(u);
  if (!keys.empty() && out.ok())
    spdlog::info("store: schema 3: copied the idempotency keys of {} jobs", keys.size());
  return out;
}

// Schema 4: the per-origin ledger from the audit trail, each dataset once
// per (tenant, year, origin), every export counted (the default
// count_exempt_transfers: true; earlier records do not say which were
// exempt). Runs inside the migration's transaction.
absl::Status RebuildLedger(sqlite3* db) {
  std::map<std::tuple<std::string, int, std::string>, v1::LedgerEntry> entries;
  std::set<std::tuple<std::string, int, std::string, std::string>> seen;
  absl::Status bad;
  absl::Status st =
      SqliteQuery(db, "SELECT seq, data FROM audit ORDER BY seq", [&](sqlite3_stmt* s) {
        v1::AuditRecord r;
        if (!r.ParseFromArray(sqlite3_column_blob(s, 1), sqlite3_column_bytes(s, 1))) {
          bad = absl::DataLossError(
              absl::StrCat("audit record ", SqliteText(s, 0), " does not decode"));
          return;
        }
        if (r.subjects() == 0 && r.sensitive_subjects() == 0) return;
        const int year = static_cast<int>(
            absl::ToCivilYear(base::FromProto(r.time()), absl::UTCTimeZone()).year());
        if (!seen.emplace(r.tenant(), year, r.origin(), r.dataset()).second) return;
        v1::LedgerEntry& e = entries[{r.tenant(), year, r.origin()}];
        e.set_tenant(r.tenant());
        e.set_year(year);
        e.set_origin(r.origin());
        e.set_subjects(e.subjects() + r.subjects());
        e.set_sensitive_subjects(e.sensitive_subjects() + r.sensitive_subjects());
        e.add_datasets(r.dataset());
      });
  if (!st.ok()) return st;
  if (!bad.ok()) return bad;
  sqlite3_stmt* u = nullptr;
  if (sqlite3_prepare_v2(db,
                         "INSERT INTO ledger (tenant, year, origin, data) VALUES (?1, ?2, ?3, ?4)",
                         -1, &u, nullptr) != SQLITE_OK)
    return SqliteError(db, "prepare ledger rebuild");
  int rc = SQLITE_DONE;
  for (const auto& [k, e] : entries) {
    const std::string data = e.SerializeAsString();
    sqlite3_reset(u);
    sqlite3_bind_text(u, 1, e.tenant().data(), static_cast<int>(e.tenant().size()),
                      SQLITE_TRANSIENT);
    sqlite3_bind_int(u, 2, e.year());
    sqlite3_bind_text(u, 3, e.origin().data(), static_cast<int>(e.origin().size()),
                      SQLITE_TRANSIENT);
    sqlite3_bind_blob(u, 4, data.data(), static_cast<int>(data.size()), SQLITE_TRANSIENT);
    rc = sqlite3_step(u);
    if (rc != SQLITE_DONE) break;
  }
  sqlite3_finalize(u);
  if (rc != SQLITE_DONE) return SqliteError(db, "rebuild ledger");
  spdlog::info("store: schema 4: ledger rebuilt per origin from the audit trail: {} entries",
               entries.size());
  return absl::OkStatus();
}

}  // namespace

absl::Status MigrateSchema(sqlite3* db, const std::string& path) {
  // A foreign or corrupt file must stop start-up, never be overwritten.
  int version = 0;
  absl::Status st = SqliteQuery(db, "PRAGMA user_version",
                                [&](sqlite3_stmt* s) { version = sqlite3_column_int(s, 0); });
  if (!st.ok())
    return absl::DataLossError(
        absl::StrCat(path, ": not a readable SQLite database: ", st.message()));
  bool has_tables = false;
  st = SqliteQuery(db, "SELECT count(*) FROM sqlite_master",
                   [&](sqlite3_stmt* s) { has_tables = sqlite3_column_int(s, 0) > 0; });
  if (!st.ok()) return absl::DataLossError(absl::StrCat(path, ": ", st.message()));
  if (has_tables && version == 0) {
    return absl::FailedPreconditionError(
        absl::StrCat(path, ": contains tables but is not a Portolan state database"));
  }
  if (version > kSchemaVersion) {
    return absl::FailedPreconditionError(absl::StrCat(
        path, ": schema version ", version, " is newer than this build (", kSchemaVersion, ")"));
  }
  for (const char* sql :
       {"PRAGMA journal_mode=WAL", "PRAGMA synchronous=FULL", "PRAGMA busy_timeout=5000"}) {
    st = SqliteExec(db, sql);
    if (!st.ok()) return st;
  }
  for (int v = version; v < kSchemaVersion; ++v) {
    st = SqliteExec(db, absl::StrCat("BEGIN;", kMigrations[v]).c_str());
    if (st.ok() && v + 1 == 3) st = BackfillKeys(db);
    if (st.ok() && v + 1 == 4) st = RebuildLedger(db);
    if (st.ok())
      st = SqliteExec(db, absl::StrCat("PRAGMA user_version=", v + 1, ";COMMIT;").c_str());
    if (!st.ok()) {
      SqliteExec(db, "ROLLBACK").IgnoreError();
      return absl::InternalError(
          absl::StrCat(path, ": migration to schema ", v + 1, " failed: ", st.message()));
    }
  }
  return absl::OkStatus();
}

}  // namespace portolan::store
