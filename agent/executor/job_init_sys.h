// SPDX-License-Identifier: Apache-2.0
#pragma once

// The few system calls portolan-job-init makes, in two builds:
//
// - freestanding (PORTOLAN_JOB_INIT_FREESTANDING, x86-64 Linux): raw
//   syscalls and an entry point of its own, no libc at all. A static glibc
//   program spends about 0.6 ms starting (CPU feature probing, tunables,
//   relocations, stdio) and tearing down a larger address space: as much as
//   the job's /bin/true itself on a virtual machine, at every job's start;
//   see docs/performance.md.
// - libc (every other target, and sanitizer builds): thin wrappers.
//
// Both keep to async-signal-safe calls; nothing here allocates.

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include <cerrno>
#include <cstdint>

#if !defined(PORTOLAN_JOB_INIT_FREESTANDING)
#include <unistd.h>
#endif

namespace portolan::executor::job_init::sys {

// A set of signals as the kernel takes it (64 bits on every Linux target).
struct SignalSet {
  uint64_t bits = 0;
  void Add(int sig) { bits |= uint64_t{1} << (sig - 1); }
};

#if defined(PORTOLAN_JOB_INIT_FREESTANDING)

// Returns the raw result: -errno on failure.
inline long Call(long n, long a = 0, long b = 0, long c = 0, long d = 0) {
  long ret;
  register long r10 __asm__("r10") = d;
  __asm__ volatile("syscall"
                   : "=a"(ret)
                   : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10)
                   : "rcx", "r11", "memory");
  return ret;
}

extern "C" void portolan_job_init_restore_rt();  // rt_sigreturn trampoline (job_init.cc)

// A handler for `sig` (or the default when `handler` is null), no flags.
inline void SetHandler(int sig, void (*handler)(int)) {
  struct {
    void (*handler)(int);
    unsigned long flags;
    void (*restorer)();
    uint64_t mask;
  } act = {handler, handler ? 0x04000000UL /* SA_RESTORER */ : 0UL,
           handler ? portolan_job_init_restore_rt : nullptr, 0};
  Call(SYS_rt_sigaction, sig, reinterpret_cast<long>(&act), 0, sizeof(uint64_t));
}
inline void SetMask(int how, const SignalSet& set, SignalSet* old) {
  Call(SYS_rt_sigprocmask, how, reinterpret_cast<long>(&set.bits),
       reinterpret_cast<long>(old ? &old->bits : nullptr), sizeof(uint64_t));
}
inline int WaitSignal(const SignalSet& set, siginfo_t* info) {
  return static_cast<int>(Call(SYS_rt_sigtimedwait, reinterpret_cast<long>(&set.bits),
                               reinterpret_cast<long>(info), 0, sizeof(uint64_t)));
}
inline long Write(int fd, const void* buf, unsigned long n) {
  return Call(SYS_write, fd, reinterpret_cast<long>(buf), static_cast<long>(n));
}
inline void Close(int fd) { Call(SYS_close, fd); }
inline void SetCloexec(int fd) { Call(SYS_fcntl, fd, F_SETFD, FD_CLOEXEC); }
inline int GetPid() { return static_cast<int>(Call(SYS_getpid)); }
inline void Kill(int pid, int sig) { Call(SYS_kill, pid, sig); }
inline int WaitAny(int* status) {
  return static_cast<int>(Call(SYS_wait4, -1, reinterpret_cast<long>(status), WNOHANG, 0));
}
// Runs `fn(arg)` in a child that shares this address space on `stack_top`
// (16-byte aligned) and returns its pid once it has exec'd or exited, as
// vfork does; `fn` must exec or exit, never return. The child's stack is its
// own, so nothing it does can corrupt this frame.
inline int StartSharingMemory(void (*fn)(void*), void* arg, void* stack_top) {
  long ret;
  register long r10 __asm__("r10") = 0;
  register long r8 __asm__("r8") = 0;
  register void (*r12)(void*) __asm__("r12") = fn;
  register void* r13 __asm__("r13") = arg;
  __asm__ volatile(
      "syscall\n\t"
      "test %%rax, %%rax\n\t"
      "jnz 1f\n\t"
      "mov %%r13, %%rdi\n\t"  // the child, on its own stack
      "call *%%r12\n\t"
      "hlt\n"
      "1:\n"
      : "=a"(ret)
      : "a"(SYS_clone), "D"(CLONE_VM | CLONE_VFORK | SIGCHLD), "S"(stack_top), "d"(0), "r"(r10),
        "r"(r8), "r"(r12), "r"(r13)
      : "rcx", "r11", "memory");
  return static_cast<int>(ret);
}
// Returns errno (exec returns only on failure).
inline int Exec(const char* path, char* const* argv, char* const* envp) {
  return static_cast<int>(-Call(SYS_execve, reinterpret_cast<long>(path),
                                reinterpret_cast<long>(argv), reinterpret_cast<long>(envp)));
}
[[noreturn]] inline void Exit(int code) {
  for (;;) Call(SYS_exit_group, code);
}
// errno of a failed start (its result holds it).
inline int StartError(int result) { return -result; }

#else  // libc

inline void SetHandler(int sig, void (*handler)(int)) {
  struct sigaction sa = {};
  sa.sa_handler = handler ? handler : SIG_DFL;
  sigaction(sig, &sa, nullptr);
}
inline sigset_t ToSigset(const SignalSet& set) {
  sigset_t s;
  sigemptyset(&s);
  for (int sig = 1; sig <= 64; ++sig)
    if (set.bits & (uint64_t{1} << (sig - 1))) sigaddset(&s, sig);
  return s;
}
inline void SetMask(int how, const SignalSet& set, SignalSet* old) {
  const sigset_t s = ToSigset(set);
  sigset_t o;
  sigprocmask(how, &s, &o);
  if (old) {
    old->bits = 0;
    for (int sig = 1; sig <= 64; ++sig)
      if (sigismember(&o, sig) == 1) old->Add(sig);
  }
}
inline int WaitSignal(const SignalSet& set, siginfo_t* info) {
  const sigset_t s = ToSigset(set);
  return sigwaitinfo(&s, info);
}
inline long Write(int fd, const void* buf, unsigned long n) {
  const long r = ::write(fd, buf, n);
  return r < 0 ? -errno : r;
}
inline void Close(int fd) { ::close(fd); }
inline void SetCloexec(int fd) { ::fcntl(fd, F_SETFD, FD_CLOEXEC); }
inline int GetPid() { return ::getpid(); }
inline void Kill(int pid, int sig) { ::kill(pid, sig); }
inline int WaitAny(int* status) { return ::waitpid(-1, status, WNOHANG); }
// vfork: the parent waits until the child has exec'd or exited, and the
// child shares its memory meanwhile without copying it. The child never
// returns from here, so it cannot pull this frame from under the parent.
inline int StartSharingMemory(void (*fn)(void*), void* arg, void* /*stack_top*/) {
  const pid_t pid = ::vfork();
  if (pid == 0) {
    fn(arg);
    ::_exit(127);
  }
  return pid;
}
inline int Exec(const char* path, char* const* argv, char* const* envp) {
  ::execve(path, argv, envp);
  return errno;
}
[[noreturn]] inline void Exit(int code) { ::_exit(code); }
inline int StartError(int) { return errno; }

#endif

}  // namespace portolan::executor::job_init::sys
