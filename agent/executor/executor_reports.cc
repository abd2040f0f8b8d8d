// SPDX-License-Identifier: Apache-2.0
// What the executor tells the scheduler about an attempt that ended: the
// final JobUpdate, its message and the tail of its output.
#include <signal.h>
#include <string.h>
#include <sys/wait.h>

#include "absl/strings/str_cat.h"
#include "agent/executor/process_handles.h"
#include "portolan/base/log.h"
#include "portolan/base/strings.h"
#include "portolan/executor/executor.h"

namespace portolan::executor {
namespace {

std::string SignalName(int sig) {
  const char* abbrev = sigabbrev_np(sig);
  return abbrev ? absl::StrCat("SIG", abbrev) : absl::StrCat("signal ", sig);
}

}  // namespace

v1::JobUpdate Executor::Failed(const v1::Job& job, const std::string& message) const {
  v1::JobUpdate u;
  u.set_job_id(job.id());
  u.set_attempt(job.attempt());
  u.set_state(v1::Job::failed);
  u.set_exit_code(127);
  u.set_message(message);
  *u.mutable_time() = base::ToProto(clock_->Now());
  return u;
}

v1::JobUpdate Executor::Ended(Proc& p, int status, absl::Time ended_at) {
  const uint64_t oom_kills = p.cgroup ? p.cgroup->OomKills() : 0;
  CleanUp(p);
  p.finished = true;
  v1::JobUpdate u;
  u.set_job_id(p.job.id());
  u.set_attempt(p.job.attempt());
  *u.mutable_time() = base::ToProto(clock_->Now());
  const std::string runtime = Runtime(ended_at - p.started);
  if (WIFEXITED(status)) {
    u.set_exit_code(WEXITSTATUS(status));
  } else if (WIFSIGNALED(status)) {
    u.set_signal(WTERMSIG(status));
    u.set_exit_code(128 + WTERMSIG(status));
  }
  const bool oom = oom_kills > 0;
  if (oom) oom_kills_.fetch_add(1);
  if (p.cancel_requested) {
    u.set_state(v1::Job::cancelled);
    u.set_message(absl::StrCat("cancelled (", p.cancel_reason, ") after ", runtime));
  } else if (p.timed_out) {
    u.set_state(v1::Job::failed);
    u.set_message(absl::StrCat("exceeded max_runtime_s=", p.job.max_runtime_s(), "; stopped after ",
                               runtime));
  } else if (oom) {
    u.set_state(v1::Job::failed);
    const int64_t limit_mb =
        int64_t{p.job.resources().memory_mb()} * (100 + options_.memory_slack_percent) / 100;
    u.set_message(absl::StrCat(
        "out of memory (limit ", limit_mb, " MiB): the kernel's OOM killer ended ", oom_kills,
        oom_kills == 1 ? " process" : " processes", " of the job after ", runtime,
        WIFSIGNALED(status) ? "" : absl::StrCat("; exit code ", u.exit_code())));
  } else if (u.signal() != 0) {
    u.set_state(v1::Job::failed);
    u.set_message(absl::StrCat("killed by ", SignalName(u.signal()), " after ", runtime));
  } else if (u.exit_code() == 0) {
    u.set_state(v1::Job::succeeded);
    u.set_message(absl::StrCat("exited with code 0 after ", runtime));
  } else {
    u.set_state(v1::Job::failed);
    u.set_message(absl::StrCat("exited with code ", u.exit_code(), " after ", runtime));
  }
  if (!p.own_child) absl::StrAppend(u.mutable_message(), " (re-adopted after an agent restart)");
  p.final_state = u.state();
  p.exit_code = u.exit_code();
  *u.mutable_logs() = Tail(p);
  spdlog::info("job {} attempt {}: {}", p.job.id(), p.job.attempt(), u.message());
  return u;
}

v1::JobUpdate Executor::Lost(Proc& p, const std::string& why) {
  CleanUp(p);
  p.finished = true;
  v1::JobUpdate u;
  u.set_job_id(p.job.id());
  u.set_attempt(p.job.attempt());
  *u.mutable_time() = base::ToProto(clock_->Now());
  u.set_state(p.cancel_requested ? v1::Job::cancelled : v1::Job::lost);
  u.set_message(why);
  p.final_state = u.state();
  *u.mutable_logs() = Tail(p);
  spdlog::warn("job {} attempt {}: {}", p.job.id(), p.job.attempt(), why);
  return u;
}

v1::LogTail Executor::Tail(const Proc& p) const {
  v1::LogTail t;
  t.set_job_id(p.job.id());
  bool trunc = false;
  t.set_stdout(base::ReadTail(p.dir + "/stdout.log", options_.log_tail_bytes, &trunc));
  t.set_stdout_truncated(trunc);
  t.set_stderr(base::ReadTail(p.dir + "/stderr.log", options_.log_tail_bytes, &trunc));
  t.set_stderr_truncated(trunc);
  return t;
}

}  // namespace portolan::executor
