// SPDX-License-Identifier: Apache-2.0
// What an executor's options enforce, for the agent's registration and logs.
#include <unistd.h>

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "portolan/executor/executor.h"

namespace portolan::executor {

v1::Isolation DescribeIsolation(const ExecutorOptions& o) {
  v1::Isolation iso;
  iso.set_uid_per_job(o.uids != nullptr);
  const bool sandbox = o.sandbox && !o.job_init.empty();
  iso.set_pid_ns(sandbox);
  iso.set_mount_ns(sandbox);
  if (o.cgroups == nullptr) {
    iso.set_cgroup(v1::Isolation::none);
  } else {
    iso.set_cgroup(o.cgroups->version() == "v2" ? v1::Isolation::v2 : v1::Isolation::v1);
    iso.set_memory_limit(o.cgroups->memory());
    iso.set_cpuset(o.cgroups->cpuset());
    iso.set_pids_limit(o.cgroups->pids() && o.pids_max > 0);
  }
  iso.set_tree_kill(sandbox || (o.cgroups != nullptr && o.cgroups->freezer()));
  std::string user;
  if (o.uids) {
    user = absl::StrCat("per-job uid ", o.uids->first(), "-", o.uids->last());
  } else if (o.run_uid >= 0) {
    user = absl::StrCat("uid ", o.run_uid);
  } else {
    user = absl::StrCat("the agent's uid ", geteuid());
  }
  if (!o.tenant_users.empty()) {
    absl::StrAppend(&user, "; ", o.tenant_users.size(), " tenant(s) as their own accounts");
  }
  iso.set_user(user);
  return iso;
}

std::string IsolationSummary(const v1::Isolation& iso) {
  std::vector<std::string> have, lack;
  (iso.uid_per_job() ? have : lack).push_back("a uid per job");
  (iso.pid_ns() ? have : lack).push_back("PID namespace");
  (iso.mount_ns() ? have : lack).push_back("mount namespace");
  if (iso.cgroup() == v1::Isolation::v1 || iso.cgroup() == v1::Isolation::v2) {
    have.push_back(absl::StrCat("cgroup ", v1::Isolation::Cgroup_Name(iso.cgroup())));
  } else {
    lack.push_back("cgroup");
  }
  (iso.memory_limit() ? have : lack).push_back("memory limit");
  (iso.cpuset() ? have : lack).push_back("cpuset");
  (iso.pids_limit() ? have : lack).push_back("pids limit");
  (iso.tree_kill() ? have : lack).push_back("whole-tree kill");
  return absl::StrCat("jobs as ", iso.user(), "; ", absl::StrJoin(have, ", "),
                      lack.empty() ? "" : absl::StrCat("; without ", absl::StrJoin(lack, ", ")));
}

}  // namespace portolan::executor
