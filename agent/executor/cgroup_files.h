// SPDX-License-Identifier: Apache-2.0
#pragma once

// The cgroup file system helpers the v1 and v2 drivers (cgroup.cc,
// cgroup_v1.cc) share. Private to the executor.

#include <sys/types.h>

#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace portolan::executor::cgroup_files {

std::string Read(const std::string& path);
bool Exists(const std::string& path);
// Writes one value the way cgroupfs expects it: a single write(2).
absl::Status Write(const std::string& path, const std::string& value);
// mkdir; an existing directory is fine.
absl::Status MakeDir(const std::string& path);
// "oom_kill 3" in a "key value" per line file such as memory.events.
uint64_t KeyedValue(const std::string& text, absl::string_view key);
// The pids listed in a cgroup.procs file.
std::vector<pid_t> Pids(const std::string& procs_file);
// Freeze, SIGKILL every task, thaw: nothing can fork while frozen, and the
// kills are delivered as the tasks thaw. `state_file` / `frozen` / `thawed`
// differ between v1 (freezer.state) and v2 (cgroup.freeze); an empty
// `state_file` means no freezer: repeated kills.
void FreezeKillThaw(const std::string& dir, const std::string& state_file,
                    const std::string& frozen, const std::string& thawed,
                    const std::string& procs_file);
// The cgroups directly below `dir`, without those whose name starts with a
// dot (the v1 driver's idle cgroups).
std::set<std::string> Children(const std::string& dir);
// A job cgroup's name: one path component, not "." or "..".
bool ValidName(const std::string& name);

// One line of /proc/self/mounts.
struct Mount {
  std::string path, type;
  std::set<std::string> options;
};
std::vector<Mount> ReadMounts(const std::string& file);

}  // namespace portolan::executor::cgroup_files
