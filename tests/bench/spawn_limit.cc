// SPDX-License-Identifier: Apache-2.0
// The machine's own limit for trivial jobs: how many times per second this
// machine can start a program and reap it, with nothing else in the way. One
// worker process per core (or --procs N), each a loop of
// posix_spawn(PROGRAM) + waitpid for --seconds; prints the total rate as one
// JSON line and a summary. The end-to-end benchmarks divide their jobs/s by
// this figure, measured in the same run (tests/bench/compare_slurm.sh).
// --through INIT starts PROGRAM under INIT the way the agent does
// (portolan-job-init STATUS_FD ERROR_FD PROGRAM ARGV0, both descriptors on
// /dev/null): the difference between the two rates is the supervisor's cost.
//
//   spawn_limit [--seconds 5] [--procs NPROC] [--program /bin/true] [--through INIT]
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"

extern char** environ;

namespace {

// Spawns and reaps `program` until `seconds` have passed; returns how many
// ran to completion, or -1 when a spawn failed (reported on stderr).
long SpawnLoop(const char* program, const char* through, double seconds) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  // The supervisor's status file and error pipe: /dev/null, nobody reads
  // them here.
  std::string status_fd = "-1", error_fd = "-1";
  if (through != nullptr) {
    const int a = open("/dev/null", O_WRONLY), b = open("/dev/null", O_WRONLY);
    if (a < 0 || b < 0) {
      std::perror("spawn_limit: /dev/null");
      return -1;
    }
    status_fd = std::to_string(a);
    error_fd = std::to_string(b);
  }
  char* const direct[] = {const_cast<char*>(program), nullptr};
  char* const supervised[] = {
      const_cast<char*>(through), status_fd.data(),           error_fd.data(),
      const_cast<char*>(program), const_cast<char*>(program), nullptr};
  char* const* args = through != nullptr ? supervised : direct;
  if (through != nullptr) program = through;
  long done = 0;
  while (std::chrono::steady_clock::now() < deadline) {
    pid_t pid = 0;
    const int rc = posix_spawn(&pid, program, nullptr, nullptr, args, environ);
    if (rc != 0) {
      std::fprintf(stderr, "spawn_limit: posix_spawn(%s): %s\n", program, std::strerror(rc));
      return -1;
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0) {
    }
    ++done;
  }
  return done;
}

}  // namespace

int main(int argc, char** argv) {
  double seconds = 5;
  long procs = sysconf(_SC_NPROCESSORS_ONLN);
  std::string program = "/bin/true", through;
  for (int i = 1; i < argc; ++i) {
    const bool has_value = i + 1 < argc;
    if (!strcmp(argv[i], "--seconds") && has_value) {
      if (!absl::SimpleAtod(argv[++i], &seconds) || seconds <= 0) {
        std::fprintf(stderr, "spawn_limit: --seconds wants a positive number\n");
        return 2;
      }
    } else if (!strcmp(argv[i], "--procs") && has_value) {
      if (!absl::SimpleAtoi(argv[++i], &procs) || procs < 1) {
        std::fprintf(stderr, "spawn_limit: --procs wants a positive integer\n");
        return 2;
      }
    } else if (!strcmp(argv[i], "--program") && has_value) {
      program = argv[++i];
    } else if (!strcmp(argv[i], "--through") && has_value) {
      through = argv[++i];
    } else {
      std::fprintf(stderr,
                   "usage: spawn_limit [--seconds 5] [--procs NPROC] [--program /bin/true] "
                   "[--through INIT]\n"
                   "unknown or incomplete argument: %s\n",
                   argv[i]);
      return 2;
    }
  }
  for (const std::string& p : {program, through}) {
    if (!p.empty() && access(p.c_str(), X_OK) != 0) {
      std::fprintf(stderr, "spawn_limit: %s is not an executable file\n", p.c_str());
      return 2;
    }
  }
  // Each worker writes its count to the pipe as one long (atomic: < PIPE_BUF).
  int fds[2];
  if (pipe(fds) != 0) {
    std::perror("spawn_limit: pipe");
    return 1;
  }
  const auto start = std::chrono::steady_clock::now();
  std::vector<pid_t> workers;
  for (long w = 0; w < procs; ++w) {
    const pid_t pid = fork();
    if (pid < 0) {
      std::perror("spawn_limit: fork");
      return 1;
    }
    if (pid == 0) {
      close(fds[0]);
      const long n =
          SpawnLoop(program.c_str(), through.empty() ? nullptr : through.c_str(), seconds);
      const bool written = write(fds[1], &n, sizeof n) == static_cast<ssize_t>(sizeof n);
      _exit(written && n >= 0 ? 0 : 1);
    }
    workers.push_back(pid);
  }
  close(fds[1]);
  long total = 0, failed = 0, n = 0;
  while (read(fds[0], &n, sizeof n) == static_cast<ssize_t>(sizeof n)) {
    if (n < 0)
      ++failed;
    else
      total += n;
  }
  for (pid_t pid : workers) {
    int status = 0;
    waitpid(pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) ++failed;
  }
  const double elapsed =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (failed > 0) {
    std::fprintf(stderr, "spawn_limit: %ld of %ld workers failed\n", failed, procs);
    return 1;
  }
  const double rate = total / elapsed;
  std::printf(
      "{\"bench\":\"spawn_limit\",\"program\":\"%s\",\"through\":\"%s\",\"procs\":%ld,"
      "\"seconds\":%.2f,\"spawns\":%ld,\"spawns_per_s\":%.1f}\n",
      program.c_str(), through.c_str(), procs, elapsed, total, rate);
  std::fprintf(
      stderr, "spawn_limit: %ld x posix_spawn(%s%s%s)+waitpid in %.2f s on %ld workers: %.0f/s\n",
      total, through.c_str(), through.empty() ? "" : " ", program.c_str(), elapsed, procs, rate);
  return 0;
}
