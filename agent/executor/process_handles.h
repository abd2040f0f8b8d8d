// SPDX-License-Identifier: Apache-2.0
#pragma once

// Small helpers for the processes of job attempts (agent-private).
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
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

// Runs fn(arg) in a new process that shares this one's memory (CLONE_VM)
// while the calling thread waits until it has exec'd or exited
// (CLONE_VFORK), as posix_spawn does: no copy of this process's page tables.
// It runs on a stack of its own of at least `stack_size` bytes, with every
// signal blocked (so no handler of this process runs there), and must make
// only system calls that act on itself. `flags` adds to CLONE_VM |
// CLONE_VFORK (namespaces, SIGCHLD). Returns its pid, or -1 with errno set.
//
// The stack is the calling thread's, mapped at its first use and kept until
// the thread ends: once clone returns, the child has exec'd or exited, so no
// one runs on it any more. Mapping and unmapping one per job cost a TLB
// shootdown across the agent's threads each time (docs/performance.md).
inline pid_t CloneSharingMemory(int (*fn)(void*), void* arg, int flags, size_t stack_size) {
  struct Stack {
    void* base = nullptr;
    size_t size = 0;
    ~Stack() {
      if (base != nullptr) munmap(base, size);
    }
  };
  thread_local Stack stack;
  if (stack.size < stack_size) {
    if (stack.base != nullptr) munmap(stack.base, stack.size);
    stack.base = mmap(nullptr, stack_size, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK | MAP_NORESERVE, -1, 0);
    stack.size = stack.base == MAP_FAILED ? 0 : stack_size;
    if (stack.base == MAP_FAILED) {
      stack.base = nullptr;
      return -1;
    }
  }
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  const pid_t pid =
      clone(fn, static_cast<char*>(stack.base) + stack.size, CLONE_VM | CLONE_VFORK | flags, arg);
  const int saved = errno;
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  errno = saved;
  return pid;
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
