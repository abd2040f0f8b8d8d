// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace portolan::executor {

// What one job attempt may use. Empty / zero: no limit of that kind (cpus and
// mems then inherit the parent cgroup's).
struct CgroupLimits {
  std::vector<uint32_t> cpus;  // PU OS indexes
  std::vector<uint32_t> mems;  // NUMA node OS indexes
  int64_t memory_bytes = 0;    // also the swap ceiling: a job over it is OOM-killed, not swapped
  int64_t pids_max = 0;        // processes and threads
  // Not a limit: on cgroup v1 a released job cgroup (empty, never killed
  // into, no OOM kill) is kept and renamed for the next Create with the same
  // key, which then writes only the limits that differ. The executor passes
  // the tenant, so that no counter of one tenant's job reaches another's.
  // Empty: a cgroup of its own, removed on Remove. v2 cannot rename cgroups
  // and ignores it.
  std::string reuse_key;
};

// One job attempt's cgroup: a directory per controller hierarchy on cgroup
// v1, one directory on v2. Created by CgroupDriver::Create with its limits
// already written. Not thread-safe: the executor calls it under its lock.
class JobCgroup {
 public:
  virtual ~JobCgroup() = default;
  // Open files a child writes "0\n" to (cgroup.procs of each hierarchy) to
  // join before it execs, from the forked child (write(2) only). Owned here.
  virtual const std::vector<int>& join_fds() const = 0;
  // Closes the join files once the child has joined (parent side).
  virtual void CloseJoinFds() = 0;
  // Puts an already running process in the cgroup (every hierarchy).
  virtual absl::Status Add(pid_t pid) = 0;
  // SIGKILL to every process in the cgroup, including ones that left the
  // job's process group or ignore signals: cgroup.kill on v2; on v1 freeze,
  // kill each task, thaw (or repeated kills where no freezer is mounted).
  virtual void KillAll() = 0;
  // No process left in it.
  virtual bool Empty() const = 0;
  // Kills by the kernel's OOM killer inside this cgroup so far.
  virtual uint64_t OomKills() const = 0;
  // Removes the directories (or keeps them for the next job of the same
  // reuse_key); fails (and may be retried) while processes remain.
  virtual absl::Status Remove() = 0;
  // "cgroup v1 memory,cpuset,pids,freezer:/portolan/a1/job-1" for messages.
  virtual std::string Describe() const = 0;
};

// A cgroup hierarchy the agent may create job cgroups in: v1 (one mount per
// controller, as on this project's CI machine and many production hosts) or
// v2 (the unified hierarchy). Thread-safe after construction.
class CgroupDriver {
 public:
  virtual ~CgroupDriver() = default;
  virtual std::string version() const = 0;  // "v1" or "v2"
  // What Create enforces here.
  virtual bool memory() const = 0;
  virtual bool cpuset() const = 0;
  virtual bool pids() const = 0;
  // Can stop a whole process tree at once (v2 cgroup.kill / freeze, v1 freezer).
  virtual bool freezer() const = 0;
  // Creates `name` under this agent's parent cgroup with `limits` written.
  virtual absl::StatusOr<std::unique_ptr<JobCgroup>> Create(const std::string& name,
                                                            const CgroupLimits& limits) = 0;
  // An existing job cgroup (one an earlier run of this agent created), to
  // watch, kill and remove; it has no join files. NotFound when absent.
  virtual absl::StatusOr<std::unique_ptr<JobCgroup>> Open(const std::string& name) = 0;
  // The names of the job cgroups under this agent's parent cgroup.
  virtual std::vector<std::string> List() const = 0;
  // "cgroup v1 (memory, cpuset, pids, freezer) under /portolan/a1" for the log.
  virtual std::string Describe() const = 0;
};

// Opens cgroup v2 at `mount` (a cgroup2 mount point) with job cgroups under
// `mount`/`parent`; enables whichever of cpuset, memory and pids the root
// offers. Fails if `mount` is not cgroup v2 or cannot be written. A v2
// hierarchy that offers none of those controllers (a hybrid host whose
// controllers are all on v1) still kills, freezes and watches job trees.
absl::StatusOr<std::unique_ptr<CgroupDriver>> OpenCgroupV2(const std::string& mount,
                                                           const std::string& parent);

// Opens the cgroup v1 hierarchies listed in `mounts_file` (/proc/self/mounts
// format) that carry memory, cpuset, pids or freezer, with job cgroups under
// <hierarchy>/`parent`. Fails unless at least the memory controller is there.
absl::StatusOr<std::unique_ptr<CgroupDriver>> OpenCgroupV1(const std::string& mounts_file,
                                                           const std::string& parent);

// --cgroup: "auto" takes v2 when its root offers memory (a pure v2 host),
// else v1 when memory is mounted there, else none; "v1" / "v2" insist;
// "none" disables. Returns nullptr for none, with `why` saying why (for the
// start-up log).
absl::StatusOr<std::unique_ptr<CgroupDriver>> OpenCgroups(const std::string& mode,
                                                          const std::string& mounts_file,
                                                          const std::string& parent,
                                                          std::string* why);

}  // namespace portolan::executor
