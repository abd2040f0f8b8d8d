// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <sys/types.h>

#include <string>
#include "absl/strings/string_view.h"

#include "absl/status/statusor.h"

namespace portolan::base {

// Private files and directories of the daemons (state, keys, tokens): no
// other local user, and no job on a machine the daemon shares, reads them.

// Fails when `path` can be read by every local user, naming the file, its
// mode and the fix: "--tls-key /etc/k.pem is mode 0644 (readable by every
// local user); chmod 600 it". Group-readable files pass (an ssl-cert group).
absl::Status CheckNotWorldReadable(const std::string& path, absl::string_view what);

// Creates `path` (and parents) with `mode`, or narrows an existing
// directory's permissions to at most `mode`. Returns true when it narrowed
// them (worth a log line).
absl::StatusOr<bool> MakePrivateDir(const std::string& path, mode_t mode);

// Narrows an existing file's permissions to at most `mode`; true when it did,
// false when they were narrow already or the file does not exist.
absl::StatusOr<bool> NarrowFileMode(const std::string& path, mode_t mode);

// The whole of a small file (proc, sysfs, cgroupfs, a test's output); "" when
// it cannot be read.
std::string ReadSmallFile(const std::string& path);
// The same for `path` relative to the directory open as `dirfd` (AT_FDCWD:
// the working directory): no walk from / for each of many files under one
// deep directory (a cgroup hierarchy's).
std::string ReadSmallFileAt(int dirfd, const char* path);

// Removes the entry `name` of the open directory `dirfd`, a directory tree
// recursively, never following a link (a link is removed, not what it
// names): safe on trees a job wrote. Best effort; gives up below 64 levels.
void RemoveTreeAt(int dirfd, const std::string& name);

}  // namespace portolan::base
