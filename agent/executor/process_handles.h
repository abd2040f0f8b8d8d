// SPDX-License-Identifier: Apache-2.0
#pragma once

// Small helpers for the processes of job attempts (agent-private).
#include <poll.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <string>

#include "absl/time/time.h"

namespace portolan::executor {

// A descriptor for exactly this process (not whatever later gets its pid):
// for signals and to see it end even when another process reaps it.
inline int PidfdOpen(pid_t pid) { return static_cast<int>(syscall(SYS_pidfd_open, pid, 0)); }
inline bool PidfdSignal(int pidfd, int sig) {
  return syscall(SYS_pidfd_send_signal, pidfd, sig, nullptr, 0) == 0;
}
// The process behind `pidfd` has ended (it may still be a zombie).
inline bool Exited(int pidfd) {
  pollfd p{pidfd, POLLIN, 0};
  return poll(&p, 1, 0) == 1 && (p.revents & (POLLIN | POLLHUP)) != 0;
}

inline absl::Time FileMtime(const std::string& path, absl::Time fallback) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) return fallback;
  return absl::TimeFromTimespec(st.st_mtim);
}

inline std::string Runtime(absl::Duration ran) {
  ran = absl::Trunc(ran, absl::Milliseconds(1));
  return ran < absl::Milliseconds(1) ? "<1ms" : absl::FormatDuration(ran);
}

}  // namespace portolan::executor
