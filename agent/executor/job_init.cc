// SPDX-License-Identifier: Apache-2.0
// portolan-job-init: the supervisor of one job attempt. The agent starts it
// as the job's user, in the job's cgroup, namespaces and working directory;
// it runs the job's program as its child and records how it ended in a file,
// so the attempt does not depend on the agent process: an agent that crashes
// or restarts finds it again (agent/attempt_records.h). Sandboxed, it is PID
// 1 of the job's PID namespace, which ignores every signal it has no handler
// for (a shell script run as PID 1 would never see the SIGTERM of a cancel)
// and inherits orphans, so something must forward and reap. On x86-64 it
// links nothing at all (job_init_sys.h says why); elsewhere libc only.
#include "agent/executor/job_init.h"
#include "agent/executor/job_init_sys.h"

namespace portolan::executor::job_init {
namespace {

constexpr int kForwarded[] = {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2};

void Nothing(int) {}

// A descriptor number in decimal, or -1.
int ParseFd(const char* s) {
  long v = 0;
  if (*s == '\0') return -1;
  for (; *s != '\0'; ++s) {
    if (*s < '0' || *s > '9') return -1;
    v = v * 10 + (*s - '0');
    if (v > 1 << 20) return -1;
  }
  return static_cast<int>(v);
}

void WriteAll(int fd, const char* text, unsigned long n) {
  long r;
  do {
    r = sys::Write(fd, text, n);
  } while (r == -EINTR);
}

void ReportError(int error_fd, int err) {
  const ChildError ce{Step::kExec, err};
  WriteAll(error_fd, reinterpret_cast<const char*>(&ce), sizeof ce);
}

// What the child needs to exec the job's program.
struct Program {
  const char* path;
  char** argv;
  char** envp;
  sys::SignalSet mask;  // the agent's, before this process blocked the forwarded ones
  int status_fd;
  int error_fd;
};

// The child: resets what it inherited and execs; exits 127 with the errno on
// the error pipe when exec fails.
void RunProgram(void* arg) {
  const Program& p = *static_cast<const Program*>(arg);
  for (int s : kForwarded) sys::SetHandler(s, nullptr);
  sys::SetHandler(SIGCHLD, nullptr);
  sys::SetMask(SIG_SETMASK, p.mask, nullptr);
  sys::Close(p.status_fd);
  ReportError(p.error_fd, sys::Exec(p.path, p.argv, p.envp));
  sys::Exit(127);
}

// Runs the program and returns the init's exit code.
int Run(int argc, char** argv, char** envp) {
  if (argc < kArgsBeforeProgram + 2) {
    static const char kUsage[] =
        "portolan-job-init: started by portolan-agent only: STATUS_FD ERROR_FD PROGRAM ARGV0 "
        "[ARGS...]\n";
    WriteAll(2, kUsage, sizeof kUsage - 1);
    return 2;
  }
  const int status_fd = ParseFd(argv[1]);
  const int error_fd = ParseFd(argv[2]);
  if (status_fd < 0 || error_fd < 0) return 2;
  sys::SetCloexec(status_fd);
  sys::SetCloexec(error_fd);

  // A handler (not SIG_DFL) is what lets signals reach PID 1 at all; they
  // stay blocked and are taken with sigwaitinfo.
  sys::SignalSet wait_set;
  for (int s : kForwarded) {
    sys::SetHandler(s, Nothing);
    wait_set.Add(s);
  }
  sys::SetHandler(SIGCHLD, Nothing);
  wait_set.Add(SIGCHLD);
  sys::SignalSet old;
  sys::SetMask(SIG_BLOCK, wait_set, &old);

  // Without a PID namespace of its own the init leads the job's process
  // group (the agent made it a session leader) and forwards to that group.
  const int self = sys::GetPid();
  const bool pid1 = self == 1;

  // The child only changes what is its own (signal dispositions, mask,
  // descriptors) before exec.
  Program program{
      argv[kArgsBeforeProgram], argv + kArgsBeforeProgram + 1, envp, old, status_fd, error_fd};
  alignas(16) static char child_stack[16 * 1024];
  const int child = sys::StartSharingMemory(RunProgram, &program, child_stack + sizeof child_stack);
  if (child < 0) {
    ReportError(error_fd, sys::StartError(child));
    return 127;
  }
  sys::Close(error_fd);  // the agent sees EOF once the program's exec closed its copy

  int main_status = 0;
  for (;;) {
    siginfo_t info;
    const int sig = sys::WaitSignal(wait_set, &info);
    if (sig < 0) continue;  // EINTR
    if (sig != SIGCHLD) {
      if (pid1) {
        sys::Kill(-1, sig);  // every process of this namespace but this one
      } else if (info.si_pid != self) {
        sys::Kill(0, sig);  // the job's process group; this copy comes back with si_pid == self
      }
      continue;
    }
    bool main_done = false;
    int st = 0;
    int p;
    while ((p = sys::WaitAny(&st)) > 0) {
      if (p == child) {
        main_status = st;
        main_done = true;
      }
    }
    if (main_done) break;
  }
  // Decimal text and a newline.
  char text[16];
  int len = 0;
  unsigned value = static_cast<unsigned>(main_status);
  char digits[12];
  int nd = 0;
  do {
    digits[nd++] = static_cast<char>('0' + value % 10);
    value /= 10;
  } while (value != 0);
  if (main_status < 0) text[len++] = '-';
  while (nd > 0) text[len++] = digits[--nd];
  text[len++] = '\n';
  WriteAll(status_fd, text, static_cast<unsigned long>(len));
  // No fsync: the status must outlive the agent process, not the machine
  // (after a reboot the agent reports every attempt of the previous boot lost).
  if (WIFEXITED(main_status)) return WEXITSTATUS(main_status);
  return 128 + WTERMSIG(main_status);
}

}  // namespace
}  // namespace portolan::executor::job_init

#if defined(PORTOLAN_JOB_INIT_FREESTANDING)

// The entry point: the kernel leaves argc, argv[], 0, envp[], 0 on the stack.
// Aligns the stack as a call expects and hands its address over.
__asm__(
    ".text\n"
    ".global _start\n"
    "_start:\n"
    "  xor %rbp, %rbp\n"
    "  mov %rsp, %rdi\n"
    "  and $-16, %rsp\n"
    "  call portolan_job_init_start\n"
    "  hlt\n"
    ".global portolan_job_init_restore_rt\n"
    "portolan_job_init_restore_rt:\n"
    "  mov $15, %rax\n"  // rt_sigreturn
    "  syscall\n");

extern "C" [[noreturn]] __attribute__((used)) void portolan_job_init_start(long* sp) {
  const int argc = static_cast<int>(sp[0]);
  char** argv = reinterpret_cast<char**>(sp + 1);
  portolan::executor::job_init::sys::Exit(
      portolan::executor::job_init::Run(argc, argv, argv + argc + 1));
}

// What the compiler may call for copies and zeroing without a libc.
extern "C" void* memset(void* dst, int c, unsigned long n) {
  auto* d = static_cast<unsigned char*>(dst);
  while (n-- > 0) *d++ = static_cast<unsigned char>(c);
  return dst;
}
extern "C" void* memcpy(void* dst, const void* src, unsigned long n) {
  auto* d = static_cast<unsigned char*>(dst);
  const auto* s = static_cast<const unsigned char*>(src);
  while (n-- > 0) *d++ = *s++;
  return dst;
}

#else

extern char** environ;

int main(int argc, char** argv) { return portolan::executor::job_init::Run(argc, argv, environ); }

#endif
