#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "portolan/codec.h"
#include "portolan/scheduler_core.h"

namespace portolan::scheduler {

bool IsTerminal(v1::Job::State s) {
  return s == v1::Job::succeeded || s == v1::Job::failed || s == v1::Job::cancelled ||
         s == v1::Job::lost || s == v1::Job::unschedulable;
}

std::string StateName(v1::Job::State s) { return v1::Job::State_Name(s); }

namespace {
bool ValidName(absl::string_view s) {
  if (s.empty() || s.size() > 128) return false;
  for (char c : s) {
    if (!absl::ascii_isalnum(c) && c != '-' && c != '_' && c != '.') return false;
  }
  return true;
}
}  // namespace

absl::Status ValidateAndDefault(v1::Job& job) {
  // Status fields belong to the scheduler.
  if (!job.id().empty()) return InvalidField("id", "id is assigned by the scheduler; omit it");
  if (job.state() != v1::Job::state_unspecified)
    return InvalidField("state", "state is output-only; omit it");
  if (!job.reason().empty()) return InvalidField("reason", "reason is output-only; omit it");
  if (job.has_allocation()) return InvalidField("allocation", "allocation is output-only; omit it");
  if (job.exit_code() != 0 || job.signal() != 0)
    return InvalidField("exit_code", "exit_code is output-only; omit it");
  if (job.attempt() != 0) return InvalidField("attempt", "attempt is output-only; omit it");
  if (job.has_submitted_at() || job.has_started_at() || job.has_finished_at()) {
    return InvalidField("submitted_at", "timestamps are output-only; omit them");
  }
  if (job.events_size() > 0) return InvalidField("events", "events are output-only; omit them");
  if (job.cancel_requested())
    return InvalidField("cancel_requested", "cancel_requested is output-only");

  if (job.command_size() == 0) return InvalidField("command", "command must name a program to run");
  if (job.command_size() > 4096)
    return InvalidField("command", "command has more than 4096 arguments");
  size_t total = 0;
  for (int i = 0; i < job.command_size(); ++i) {
    total += job.command(i).size();
    if (job.command(i).find('\0') != std::string::npos) {
      return InvalidField(absl::StrCat("command[", i, "]"), "arguments cannot contain NUL bytes");
    }
  }
  if (job.command(0).empty()) return InvalidField("command[0]", "the program name is empty");
  if (total > 256 * 1024) return InvalidField("command", "command is longer than 256 KiB");
  if (job.env_size() > 1024) return InvalidField("env", "more than 1024 environment variables");
  for (const auto& [k, v] : job.env()) {
    if (k.empty() || k.find('=') != std::string::npos || k.find('\0') != std::string::npos) {
      return InvalidField(absl::StrCat("env.", k),
                          "environment variable names must be non-empty and contain no '=' or NUL");
    }
    if (v.find('\0') != std::string::npos)
      return InvalidField(absl::StrCat("env.", k), "value contains a NUL byte");
  }

  const v1::Resources& r = job.resources();
  if (!job.has_resources())
    return InvalidField("resources", "resources are required (cpus, memory_mb)");
  if (r.cpus() <= 0)
    return InvalidField("resources.cpus", absl::StrCat("cpus must be at least 1, got ", r.cpus()));
  if (r.memory_mb() <= 0) {
    return InvalidField("resources.memory_mb",
                        absl::StrCat("memory_mb must be at least 1, got ", r.memory_mb()));
  }
  if (r.gpus() < 0)
    return InvalidField("resources.gpus", absl::StrCat("gpus cannot be negative, got ", r.gpus()));

  if (job.priority() < 0 || job.priority() > 1000) {
    return InvalidField("priority", absl::StrCat("priority must be 0-1000, got ", job.priority()));
  }
  if (job.idempotency_key().size() > 256)
    return InvalidField("idempotency_key", "longer than 256 characters");
  if (job.restart().max_attempts() > 100) {
    return InvalidField(
        "restart.max_attempts",
        absl::StrCat("max_attempts must be 0-100 (0: 3), got ", job.restart().max_attempts()));
  }
  for (int i = 0; i < job.datasets_size(); ++i) {
    if (job.datasets(i).id().empty())
      return InvalidField(absl::StrCat("datasets[", i, "].id"), "dataset id is required");
    if (job.datasets(i).size_gb() < 0)
      return InvalidField(absl::StrCat("datasets[", i, "].size_gb"), "cannot be negative");
  }

  if (job.name().empty()) {
    std::string base = job.command(0).substr(job.command(0).rfind('/') + 1);
    job.set_name(ValidName(base) ? base : "job");
  } else if (!ValidName(job.name())) {
    return InvalidField("name",
                        "name must be 1-128 characters of letters, digits, '-', '_' or '.'");
  }
  if (job.tenant().empty()) job.set_tenant("default");
  if (!ValidName(job.tenant()))
    return InvalidField("tenant",
                        "tenant must be 1-128 characters of letters, digits, '-', '_' or '.'");
  if (job.kind() == v1::Job::kind_unspecified) job.set_kind(v1::Job::compute);
  if (job.restart().policy() == v1::RestartPolicy::policy_unspecified) {
    job.mutable_restart()->set_policy(v1::RestartPolicy::never);
  }
  if (job.topology().numa() == v1::TopologyRequest::numa_unspecified) {
    job.mutable_topology()->set_numa(v1::TopologyRequest::any);
  }
  if (job.topology().smt() == v1::TopologyRequest::smt_unspecified) {
    job.mutable_topology()->set_smt(v1::TopologyRequest::shared);
  }
  if (job.topology().gpu_numa() == v1::TopologyRequest::Gpu::gpu_numa_unspecified) {
    job.mutable_topology()->set_gpu_numa(v1::TopologyRequest::Gpu::any);
  }
  return absl::OkStatus();
}

}  // namespace portolan::scheduler
