#pragma once

// Durable records of the job attempts an agent started, so that jobs outlive
// the agent process: a restarted agent reads them back and finds each
// attempt's supervisor by pid *and* start time (never by pid alone: pids are
// reused), its cgroup by name, its output in its directory and its end in the
// status file portolan-job-init wrote (agent/job_init.h).

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "portolan/v1/wire.pb.h"

namespace portolan::executor {

// The AttemptRecord.format this agent writes and understands.
constexpr uint32_t kAttemptRecordFormat = 1;

// One file per attempt, <dir>/<job>-<attempt>.pb, replaced atomically (write
// a temporary file, rename it over the old one): whenever the agent process
// dies, a record is the old or the new one, never torn.
//
// No fsync, on purpose. A record must outlive the agent *process*, and the
// kernel keeps what was written and renamed whatever happens to the process.
// It need not outlive the machine: after a power loss or a reboot every
// attempt is gone, and a record that did not reach the disk leaves the agent
// registering without that attempt, which the scheduler ends as lost, exactly
// what a record from the previous boot would be reported as. (fsyncs would
// cost several milliseconds per job on the agent's RPC thread.)
//
// Thread-compatible: the executor calls it under its lock.
class AttemptRecords {
 public:
  explicit AttemptRecords(std::string dir) : dir_(std::move(dir)) {}
  // Creates the directory (mode 0700).
  absl::Status Init() const;
  absl::Status Put(const v1::AttemptRecord& record) const;
  absl::Status Remove(const std::string& job_id, uint32_t attempt) const;
  // Every record here. A file that cannot be read or parsed is named in
  // `problems` and skipped (whatever it described is then killed as
  // unaccounted for); a record of a newer format than this agent's makes the
  // whole load fail, so that an older agent never kills or misreports
  // attempts a newer one started.
  absl::Status Load(std::vector<v1::AttemptRecord>* out, std::vector<std::string>* problems) const;
  const std::string& dir() const { return dir_; }

 private:
  std::string Path(const std::string& job_id, uint32_t attempt) const;
  const std::string dir_;
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
