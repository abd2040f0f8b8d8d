// SPDX-License-Identifier: Apache-2.0
#pragma once

// Durable records of the job attempts an agent started, so that jobs outlive
// the agent process: a restarted agent reads them back and finds each
// attempt's supervisor by pid *and* start time (never by pid alone: pids are
// reused), its cgroup by name, its output in its directory and its end in the
// status file portolan-job-init wrote (agent/job_init.h).

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "portolan/v1/wire.pb.h"

namespace portolan::executor {

// The AttemptRecord.format this agent writes and understands.
constexpr uint32_t kAttemptRecordFormat = 1;

// The records live in one append-only log, <dir>/records.log: each Put or
// Remove appends one entry (a header with kind, length and CRC-32, then the
// record) in a single write(2); a log grown to four times its live records
// (and at least 1,024 entries) is compacted into a new file renamed over it.
// A process that dies mid-write leaves at most a torn last entry, which the
// next load ignores: the attempt then has its previous record, as it did
// when each record was its own file replaced by rename (the layout before
// 0.9, still read and folded into the log on load). The log replaced those
// files because an attempt created and deleted two inodes for them, and on
// ext4 without a journal every new inode then scanned the ones deleted in the
// last 30 s (recently_deleted): at 90 jobs/s that was the largest single cost
// of starting a job (docs/performance.md).
//
// No fsync, on purpose. A record must outlive the agent *process*, and the
// kernel keeps what was written whatever happens to the process. It need not
// outlive the machine: after a power loss or a reboot every attempt is gone,
// and a record that did not reach the disk leaves the agent registering
// without that attempt, which the scheduler ends as lost, exactly what a
// record from the previous boot would be reported as. (fsyncs would cost
// several milliseconds per job on the agent's RPC thread.)
//
// Thread-compatible: the executor calls it under its lock. One instance per
// directory at a time (the agent's state directory lock sees to that).
class AttemptRecords {
 public:
  explicit AttemptRecords(std::string dir) : dir_(std::move(dir)) {}
  ~AttemptRecords();
  AttemptRecords(const AttemptRecords&) = delete;
  AttemptRecords& operator=(const AttemptRecords&) = delete;

  // Creates the directory (mode 0700).
  absl::Status Init() const;
  absl::Status Put(const v1::AttemptRecord& record);
  absl::Status Remove(const std::string& job_id, uint32_t attempt);
  // Every record here, in (job, attempt) order. An unreadable entry (not a
  // torn last one) or legacy file is named in `problems` and skipped
  // (whatever it described is then killed as unaccounted for); a record of a
  // newer format than this agent's makes the whole load fail, so that an
  // older agent never kills or misreports attempts a newer one started.
  absl::Status Load(std::vector<v1::AttemptRecord>* out, std::vector<std::string>* problems);
  const std::string& dir() const { return dir_; }
  std::string log_path() const { return dir_ + "/records.log"; }

  // Entries in the log now (live and superseded); for tests and compaction.
  size_t log_entries() const { return log_entries_; }

 private:
  using Key = std::pair<std::string, uint32_t>;
  // Reads the log (and legacy files) into live_ the first time; opens it for
  // appending.
  absl::Status Open(std::vector<std::string>* problems);
  absl::Status Append(char kind, const std::string& payload);
  absl::Status MaybeCompact();  // when superseded entries outnumber live ones 3:1
  absl::Status Compact();
  absl::Status CheckFormat(const v1::AttemptRecord& r, const std::string& where) const;

  const std::string dir_;
  int fd_ = -1;
  bool opened_ = false;
  size_t log_entries_ = 0;
  std::map<Key, std::string> live_;  // serialized records
  std::vector<std::string> load_problems_;
};

// This boot of the machine (/proc/sys/kernel/random/boot_id); "" if unknown.
std::string BootId();
// When `pid` started, in clock ticks since boot (field 22 of /proc/PID/stat);
// nullopt when there is no such process.
std::optional<uint64_t> ProcessStartTicks(pid_t pid, const std::string& proc = "/proc");
// The processes that hold `path` open, matched by device and inode through
// /proc/PID/fd (so across mount namespaces too). An attempt's supervisor holds
// its status file open from the agent's fork until it exits, and nothing
// else does once the job's program has been exec'd: this finds a supervisor
// whose pid the agent died before recording. Processes this one may not
// inspect are skipped.
std::vector<pid_t> ProcessesWithFileOpen(const std::string& path,
                                         const std::string& proc = "/proc");

// How a job attempt's program ended, from the status file its supervisor
// writes ("<wait status>\n"); nullopt when the file is absent or empty (the
// program still runs, or the supervisor died without writing it).
std::optional<int> ReadExitStatus(const std::string& path);

}  // namespace portolan::executor
