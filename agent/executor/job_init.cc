// SPDX-License-Identifier: Apache-2.0
// portolan-job-init: the supervisor of one job attempt. The agent starts it
// as the job's user, in the job's cgroup, namespaces and working directory;
// it runs the job's program as its child and records how it ended in a file,
// so the attempt does not depend on the agent process: an agent that crashes
// or restarts finds it again (agent/attempt_records.h). Sandboxed, it is PID
// 1 of the job's PID namespace, which ignores every signal it has no handler
// for (a shell script run as PID 1 would never see the SIGTERM of a cancel)
// and inherits orphans, so something must forward and reap. Links libc only;
// async-signal-safe calls only between fork and exec.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>

#include "agent/executor/job_init.h"

namespace {

constexpr int kForwarded[] = {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2};

void Nothing(int) {}

int ParseFd(const char* s) {
  char* end = nullptr;
  long v = std::strtol(s, &end, 10);
  return (end == s || *end != '\0' || v < 0 || v > 1 << 20) ? -1 : static_cast<int>(v);
}

}  // namespace

int main(int argc, char** argv) {
  using portolan::executor::job_init::ChildError;
  using portolan::executor::job_init::kArgsBeforeProgram;
  if (argc < kArgsBeforeProgram + 2) {
    static const char kUsage[] =
        "portolan-job-init: started by portolan-agent only: STATUS_FD ERROR_FD PROGRAM ARGV0 "
        "[ARGS...]\n";
    (void)!write(2, kUsage, sizeof kUsage - 1);
    return 2;
  }
  const int status_fd = ParseFd(argv[1]);
  const int error_fd = ParseFd(argv[2]);
  if (status_fd < 0 || error_fd < 0) return 2;
  fcntl(status_fd, F_SETFD, FD_CLOEXEC);
  fcntl(error_fd, F_SETFD, FD_CLOEXEC);

  // A handler (not SIG_DFL) is what lets signals reach PID 1 at all; they
  // stay blocked and are taken with sigwaitinfo.
  sigset_t wait_set;
  sigemptyset(&wait_set);
  struct sigaction sa = {};
  sa.sa_handler = Nothing;
  for (int s : kForwarded) {
    sigaction(s, &sa, nullptr);
    sigaddset(&wait_set, s);
  }
  sigaction(SIGCHLD, &sa, nullptr);
  sigaddset(&wait_set, SIGCHLD);
  sigset_t old;
  sigprocmask(SIG_BLOCK, &wait_set, &old);

  // Without a PID namespace of its own the init leads the job's process
  // group (the agent made it a session leader) and forwards to that group.
  const bool pid1 = getpid() == 1;
  const pid_t self = getpid();

  // vfork: this process waits until the program has exec'd, and the child
  // shares its memory meanwhile without copying it. The child only changes
  // what is its own (signal dispositions, mask, descriptors) before exec.
  const pid_t child = vfork();
  if (child == 0) {
    struct sigaction dfl = {};
    dfl.sa_handler = SIG_DFL;
    for (int s : kForwarded) sigaction(s, &dfl, nullptr);
    sigaction(SIGCHLD, &dfl, nullptr);
    sigprocmask(SIG_SETMASK, &old, nullptr);
    close(status_fd);
    execv(argv[kArgsBeforeProgram], argv + kArgsBeforeProgram + 1);
    ChildError ce{portolan::executor::job_init::Step::kExec, errno};
    (void)!write(error_fd, &ce, sizeof ce);
    _exit(127);
  }
  if (child < 0) {
    ChildError ce{portolan::executor::job_init::Step::kExec, errno};
    (void)!write(error_fd, &ce, sizeof ce);
    return 127;
  }
  close(error_fd);  // the agent sees EOF once the program's exec closed its copy

  int main_status = 0;
  for (;;) {
    siginfo_t info;
    const int sig = sigwaitinfo(&wait_set, &info);
    if (sig < 0) continue;  // EINTR
    if (sig != SIGCHLD) {
      if (pid1) {
        kill(-1, sig);  // every process of this namespace but this one
      } else if (info.si_pid != self) {
        kill(0, sig);  // the job's process group; this copy comes back with si_pid == self
      }
      continue;
    }
    bool main_done = false;
    int st = 0;
    pid_t p;
    while ((p = waitpid(-1, &st, WNOHANG)) > 0) {
      if (p == child) {
        main_status = st;
        main_done = true;
      }
    }
    if (main_done) break;
  }
  char text[24];
  const int len = snprintf(text, sizeof text, "%d\n", main_status);
  ssize_t n;
  do {
    n = write(status_fd, text, static_cast<size_t>(len));
  } while (n < 0 && errno == EINTR);
  // No fsync: the status must outlive the agent process, not the machine
  // (after a reboot the agent reports every attempt of the previous boot lost).
  if (WIFEXITED(main_status)) return WEXITSTATUS(main_status);
  return 128 + WTERMSIG(main_status);
}
