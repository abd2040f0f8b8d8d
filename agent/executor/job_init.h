// SPDX-License-Identifier: Apache-2.0
#pragma once

// What the agent and portolan-job-init (the init of a job's PID namespace)
// tell each other. Plain C types: the init links nothing but libc.

namespace portolan::executor::job_init {

// Which step of starting a job failed, before the job's program ran.
enum class Step : int {
  kAffinity = 1,
  kWorkdir = 2,
  kExec = 3,  // exec of the job's program (by the init, or by the child without one)
  kCgroup = 4,
  kIdentity = 5,
  kNamespaces = 6,
  kMounts = 7,
  kInit = 8,  // exec of portolan-job-init itself
};

// Written to the error pipe by whichever process fails before the job's
// program runs; the pipe reaches EOF without one when exec succeeded.
struct ChildError {
  Step step;
  int err;  // errno
};

// portolan-job-init STATUS_FD ERROR_FD PROGRAM ARGV0 [ARGS...]
// It forks PROGRAM with ARGV, forwards SIGTERM, SIGINT, SIGHUP, SIGQUIT,
// SIGUSR1 and SIGUSR2 to the job's processes, reaps orphans, and when PROGRAM
// ends writes its wait(2) status to STATUS_FD as decimal text ("0\n") and
// exits. STATUS_FD is a file in the attempt's directory, opened by the agent:
// the status outlives the agent, so an agent restarted meanwhile still learns
// how the program ended.
//
// As PID 1 of a PID namespace (the sandbox) it forwards to every process of
// the namespace, and the kernel kills what is left when it exits. Otherwise
// (no sandbox) it leads the job's session and process group and forwards to
// that group; the agent kills what is left of the group (and the cgroup).
constexpr int kArgsBeforeProgram = 3;

}  // namespace portolan::executor::job_init
