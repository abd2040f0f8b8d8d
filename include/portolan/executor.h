#pragma once

#include <sys/types.h>

#include <atomic>

#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "portolan/clock.h"
#include "portolan/v1/job.pb.h"
#include "portolan/v1/wire.pb.h"

namespace portolan::agent {

struct ExecutorOptions {
  std::string work_root;                          // each attempt gets <work_root>/<job>-<attempt>/
  absl::Duration kill_grace = absl::Seconds(10);  // SIGTERM, then SIGKILL after this
  size_t log_tail_bytes = 64 * 1024;              // tail of stdout/stderr sent to the scheduler
  std::string default_path = "/usr/local/bin:/usr/bin:/bin";
  absl::Duration poll_interval = absl::Milliseconds(20);
  // The PUs and NUMA nodes that really exist here (and the agent may use).
  // Allocations are bound to their intersection with these; with an emulated
  // topology larger than the machine the rest is recorded but not bound.
  // Empty: bind exactly what is allocated.
  std::vector<uint32_t> machine_pus;
  std::vector<uint32_t> machine_numa_nodes;
  // The agent has GPUs: jobs allotted none get CUDA_VISIBLE_DEVICES="" etc.
  bool machine_has_gpus = false;
  // cgroup v2 directory under which each attempt gets its own cgroup with
  // cpuset.cpus, cpuset.mems and memory.max; "" disables. The agent decides
  // (see --cgroup-root); an OOM kill there becomes the job's failure reason.
  std::string cgroup_root;
  // Jobs run as this uid/gid (the agent's own when -1). The working
  // directory is given to them; the log files stay the agent's.
  int run_uid = -1;
  int run_gid = -1;
};

// Prepares the cgroup v2 hierarchy under `root` for job cgroups: checks that
// the cpuset and memory controllers can be delegated, creates `root` and
// enables them. Returns the directory to use, or an error saying why limits
// cannot be enforced here.
absl::StatusOr<std::string> PrepareCgroupRoot(const std::string& cgroup_fs,
                                              const std::string& name);

// Runs jobs as real processes. A job with an allocation is bound to its
// PUs (sched_setaffinity) and NUMA nodes (set_mempolicy MPOL_BIND) before it
// execs, and sees its GPUs through CUDA_VISIBLE_DEVICES / ROCR_VISIBLE_DEVICES
// / ZE_AFFINITY_MASK and PORTOLAN_GPUS. Each attempt runs in its own process group,
// in its own working directory, with stdout/stderr in files beside it, and
// an environment made only of the job's `env` plus PORTOLAN_* variables, HOME
// and PATH. Limits: max_runtime_s (SIGTERM to the group, SIGKILL after the
// grace period) and cancel (same sequence).
//
// State changes are reported through the UpdateFn, called from the
// executor's monitor thread (or from Start for jobs that cannot start); it
// must not call back into the executor. All methods are thread-safe. The
// destructor kills every job still running and waits for it.
class Executor {
 public:
  using UpdateFn = std::function<void(const v1::JobUpdate&)>;

  Executor(ExecutorOptions options, Clock* clock, UpdateFn on_update);
  ~Executor();
  Executor(const Executor&) = delete;
  Executor& operator=(const Executor&) = delete;

  // Starts attempt `job.attempt()` of `job`. Returns false (and does nothing)
  // when that attempt is already known here: resent Assigns start nothing.
  bool Start(const v1::Job& job);
  // Stops a running job; a job not known here gets a `cancelled` update.
  void Cancel(const std::string& job_id, uint32_t attempt, const std::string& reason);
  // Drops a finished job from memory once its final update was acknowledged.
  void Forget(const std::string& job_id, uint32_t attempt);

  // Running jobs and finished ones not yet forgotten (for Register).
  std::vector<v1::AgentJobStatus> Jobs() const;
  // Tails of running jobs whose output grew since the last call.
  std::vector<v1::LogTail> ChangedLogs();
  size_t running() const;
  // PUs allocated to the running jobs (their allocation, or cpus without one).
  uint32_t allocated_pus() const;
  // Jobs that could not be started (exec failure, bad directory, ...).
  uint64_t start_errors() const { return start_errors_.load(); }

 private:
  struct Proc {
    v1::Job job;
    std::string dir;
    pid_t pid = 0;
    absl::Time started;
    absl::Time deadline = absl::InfiniteFuture();  // max_runtime_s
    absl::Time kill_at = absl::InfiniteFuture();   // SIGKILL after SIGTERM
    bool finished = false;
    // Set once the `running` update has been handed to on_update. Until then
    // the monitor leaves the process alone, so a job that exits at once is
    // never reported finished before it is reported started.
    bool start_reported = false;
    bool cancel_requested = false;
    bool timed_out = false;
    std::string cancel_reason;
    v1::Job::State final_state = v1::Job::state_unspecified;
    int exit_code = 0;
    uint64_t reported_log_bytes = 0;
    std::string cgroup;  // this attempt's cgroup directory, "" when none
  };
  using Key = std::pair<std::string, uint32_t>;

  void Monitor();
  void Terminate(Proc& p, const std::string& why) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  v1::LogTail Tail(const Proc& p) const;
  v1::JobUpdate Failed(const v1::Job& job, const std::string& message) const;

  const ExecutorOptions options_;
  Clock* const clock_;
  const UpdateFn on_update_;

  mutable std::mutex mu_;
  std::atomic<uint64_t> start_errors_{0};
  std::condition_variable cv_;
  std::map<Key, Proc> procs_ ABSL_GUARDED_BY(mu_);
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::thread monitor_;
};

}  // namespace portolan::agent
