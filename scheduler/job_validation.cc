// SPDX-License-Identifier: Apache-2.0
#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "portolan/base/strings.h"
#include "portolan/codec/codec.h"
#include "portolan/scheduler/core.h"

namespace portolan::scheduler {

bool HoldsResources(v1::Job::State s) {
  return s == v1::Job::placed || s == v1::Job::staging || s == v1::Job::running;
}

bool IsTerminal(v1::Job::State s) {
  return s == v1::Job::succeeded || s == v1::Job::failed || s == v1::Job::cancelled ||
         s == v1::Job::lost || s == v1::Job::unschedulable;
}

std::string StateName(v1::Job::State s) { return v1::Job::State_Name(s); }

namespace {

absl::Status CheckSiteList(const google::protobuf::RepeatedPtrField<std::string>& sites,
                           absl::string_view field) {
  if (sites.size() > kMaxJobSites)
    return codec::InvalidField(field, absl::StrCat("at most ", kMaxJobSites, " sites"));
  for (int i = 0; i < sites.size(); ++i) {
    if (!base::IsId(sites[i]))
      return codec::InvalidField(absl::StrCat(field, "[", i, "]"),
                                 absl::StrCat("site ids must be ", base::kIdRule));
  }
  return absl::OkStatus();
}

// topology.memory_kind: a NUMA kind word, and only where the allocator can
// honour it (its memory from one kind; spread would need it on every node).
absl::Status CheckMemoryKind(const v1::Job& job) {
  const std::string& kind = job.topology().memory_kind();
  if (kind.empty()) return absl::OkStatus();
  const bool word = kind.size() <= 32 && absl::ascii_isalpha(kind[0]) &&
                    std::all_of(kind.begin(), kind.end(),
                                [](char c) { return absl::ascii_isalnum(c) || c == '-'; });
  if (!word) {
    return codec::InvalidField("topology.memory_kind",
                               "a NUMA memory kind as hwloc names it (HBM, MCDRAM, NVM, "
                               "CXL-DRAM, ...): a letter, then letters, digits or '-', at most 32");
  }
  if (job.topology().numa() == v1::TopologyRequest::spread) {
    return codec::InvalidField("topology.memory_kind",
                               "memory_kind works with numa single or any, not spread");
  }
  return absl::OkStatus();
}

absl::Status CheckLimits(const v1::Job& job) {
  if (absl::Status st = CheckMemoryKind(job); !st.ok()) return st;
  size_t env_bytes = 0;
  for (const auto& [k, v] : job.env()) {
    env_bytes += k.size() + v.size() + 2;
    if (absl::StartsWith(k, "PORTOLAN_")) {
      return codec::InvalidField(absl::StrCat("env.", base::CleanForMessage(k)),
                                 "PORTOLAN_* variables are set by the agent and cannot be given");
    }
  }
  if (env_bytes > kMaxEnvBytes) {
    return codec::InvalidField(
        "env", absl::StrCat("environment is ", env_bytes, " bytes; at most ", kMaxEnvBytes));
  }
  for (int i = 0; i < job.command_size(); ++i) {
    if (job.command(i).size() > 128 * 1024) {
      return codec::InvalidField(absl::StrCat("command[", i, "]"),
                                 "an argument is longer than 128 KiB (the kernel's limit)");
    }
  }
  if (job.datasets_size() > kMaxJobDatasets) {
    return codec::InvalidField("datasets", absl::StrCat(job.datasets_size(), " datasets; at most ",
                                                        kMaxJobDatasets, " per job"));
  }
  for (int i = 0; i < job.datasets_size(); ++i) {
    const v1::Dataset& d = job.datasets(i);
    const std::string f = absl::StrCat("datasets[", i, "]");
    if (!d.id().empty() && !base::IsId(d.id()))
      return codec::InvalidField(f + ".id", absl::StrCat("dataset ids must be ", base::kIdRule));
    if (!(d.size_gb() >= 0 && d.size_gb() <= kMaxDatasetGb)) {
      return codec::InvalidField(f + ".size_gb",
                                 absl::StrCat("size_gb must be 0-", kMaxDatasetGb, " (1 PB)"));
    }
    if (d.categories_size() > 8)
      return codec::InvalidField(f + ".categories", "at most 8 categories");
    for (auto [name, value] :
         {std::pair{"origin", &d.origin()}, std::pair{"location", &d.location()},
          std::pair{"sector", &d.sector()}, std::pair{"purpose", &d.purpose()}}) {
      if (!base::IsPlainText(*value, 64)) {
        return codec::InvalidField(absl::StrCat(f, ".", name),
                                   "at most 64 characters, no control characters");
      }
    }
    for (int k = 0; k < i; ++k) {
      if (!d.id().empty() && job.datasets(k).id() == d.id()) {
        return codec::InvalidField(f + ".id",
                                   absl::StrCat("dataset '", d.id(), "' is listed twice"));
      }
    }
  }
  const v1::PlacementRequest& p = job.placement();
  if (absl::Status st = CheckSiteList(p.sites(), "placement.sites"); !st.ok()) return st;
  if (absl::Status st = CheckSiteList(p.avoid_sites(), "placement.avoid_sites"); !st.ok())
    return st;
  if (p.max_rtt_ms_size() > kMaxJobSites) {
    return codec::InvalidField("placement.max_rtt_ms",
                               absl::StrCat("at most ", kMaxJobSites, " sites"));
  }
  for (const auto& [site, ms] : p.max_rtt_ms()) {
    const std::string f = absl::StrCat("placement.max_rtt_ms.", base::CleanForMessage(site));
    if (!base::IsId(site))
      return codec::InvalidField(f, absl::StrCat("site ids must be ", base::kIdRule));
    if (!(ms > 0 && ms <= 10000))
      return codec::InvalidField(f, "an RTT limit must be in (0, 10000] ms");
  }
  if (p.agent_labels_size() > kMaxJobLabels) {
    return codec::InvalidField("placement.agent_labels",
                               absl::StrCat("at most ", kMaxJobLabels, " labels"));
  }
  for (const auto& [k, v] : p.agent_labels()) {
    if (!base::IsPlainText(k, 128) || k.empty() || !base::IsPlainText(v, 256)) {
      return codec::InvalidField(absl::StrCat("placement.agent_labels.", base::CleanForMessage(k)),
                                 "label keys are 1-128 and values 0-256 characters, no control "
                                 "characters");
    }
  }
  if (!base::IsPlainText(job.idempotency_key(), 256))
    return codec::InvalidField("idempotency_key", "at most 256 characters, no control characters");
  return absl::OkStatus();
}
// depends_on: each a job id, once; the condition defaults to succeeded.
// A gang: 2-1024 members, a known colocation, an RTT bound in range; not
// also an array.
absl::Status CheckGang(const v1::Job& job) {
  if (!job.has_gang()) return absl::OkStatus();
  if (job.has_array()) return codec::InvalidField("gang", "a job is an array or a gang, not both");
  if (job.gang().tasks() < 2 || job.gang().tasks() > kMaxGangTasks) {
    return codec::InvalidField("gang.tasks", absl::StrCat("tasks must be 2-", kMaxGangTasks,
                                                          ", got ", job.gang().tasks()));
  }
  const double rtt = job.gang().max_rtt_ms();
  if (!(rtt >= 0 && rtt <= 10000)) {
    return codec::InvalidField("gang.max_rtt_ms",
                               absl::StrCat("max_rtt_ms must be 0-10000 (0: no bound), got ", rtt));
  }
  return absl::OkStatus();
}

absl::Status CheckDependsOn(v1::Job& job) {
  if (job.depends_on_size() > kMaxJobDependencies) {
    return codec::InvalidField("depends_on",
                               absl::StrCat(job.depends_on_size(), " dependencies; at most ",
                                            kMaxJobDependencies, " per job"));
  }
  for (int i = 0; i < job.depends_on_size(); ++i) {
    v1::Dependency* dep = job.mutable_depends_on(i);
    const std::string f = absl::StrCat("depends_on[", i, "].job");
    if (!base::IsId(dep->job()))
      return codec::InvalidField(f, absl::StrCat("a job id is required (", base::kIdRule, ")"));
    for (int k = 0; k < i; ++k) {
      if (job.depends_on(k).job() == dep->job()) {
        return codec::InvalidField(
            f, absl::StrCat("job ", dep->job(), " is listed twice (also depends_on[", k, "])"));
      }
    }
    if (dep->condition() == v1::Dependency::condition_unspecified)
      dep->set_condition(v1::Dependency::succeeded);
  }
  return absl::OkStatus();
}
}  // namespace

absl::Status ValidateAndDefault(v1::Job& job) {
  // Status fields belong to the scheduler.
  if (!job.id().empty())
    return codec::InvalidField("id", "id is assigned by the scheduler; omit it");
  if (job.state() != v1::Job::state_unspecified)
    return codec::InvalidField("state", "state is output-only; omit it");
  if (!job.reason().empty()) return codec::InvalidField("reason", "reason is output-only; omit it");
  if (job.has_allocation())
    return codec::InvalidField("allocation", "allocation is output-only; omit it");
  if (job.exit_code() != 0 || job.signal() != 0)
    return codec::InvalidField("exit_code", "exit_code is output-only; omit it");
  if (job.attempt() != 0) return codec::InvalidField("attempt", "attempt is output-only; omit it");
  if (job.has_submitted_at() || job.has_started_at() || job.has_finished_at()) {
    return codec::InvalidField("submitted_at", "timestamps are output-only; omit them");
  }
  if (job.events_size() > 0)
    return codec::InvalidField("events", "events are output-only; omit them");
  if (job.cancel_requested())
    return codec::InvalidField("cancel_requested", "cancel_requested is output-only");

  if (job.command_size() == 0)
    return codec::InvalidField("command", "command must name a program to run");
  if (job.command_size() > 4096)
    return codec::InvalidField("command", "command has more than 4096 arguments");
  size_t total = 0;
  for (int i = 0; i < job.command_size(); ++i) {
    total += job.command(i).size();
    if (job.command(i).find('\0') != std::string::npos) {
      return codec::InvalidField(absl::StrCat("command[", i, "]"),
                                 "arguments cannot contain NUL bytes");
    }
  }
  if (job.command(0).empty()) return codec::InvalidField("command[0]", "the program name is empty");
  if (total > 256 * 1024) return codec::InvalidField("command", "command is longer than 256 KiB");
  if (job.env_size() > 1024)
    return codec::InvalidField("env", "more than 1024 environment variables");
  for (const auto& [k, v] : job.env()) {
    if (k.empty() || k.find('=') != std::string::npos || k.find('\0') != std::string::npos) {
      return codec::InvalidField(
          absl::StrCat("env.", k),
          "environment variable names must be non-empty and contain no '=' or NUL");
    }
    if (v.find('\0') != std::string::npos)
      return codec::InvalidField(absl::StrCat("env.", k), "value contains a NUL byte");
  }

  const v1::Resources& r = job.resources();
  if (!job.has_resources())
    return codec::InvalidField("resources", "resources are required (cpus, memory_mb)");
  if (r.cpus() <= 0)
    return codec::InvalidField("resources.cpus",
                               absl::StrCat("cpus must be at least 1, got ", r.cpus()));
  if (r.memory_mb() <= 0) {
    return codec::InvalidField("resources.memory_mb",
                               absl::StrCat("memory_mb must be at least 1, got ", r.memory_mb()));
  }
  if (r.gpus() < 0)
    return codec::InvalidField("resources.gpus",
                               absl::StrCat("gpus cannot be negative, got ", r.gpus()));

  if (absl::Status st = CheckLimits(job); !st.ok()) return st;
  if (job.priority() < 0 || job.priority() > 1000) {
    return codec::InvalidField("priority",
                               absl::StrCat("priority must be 0-1000, got ", job.priority()));
  }
  if (job.idempotency_key().size() > 256)
    return codec::InvalidField("idempotency_key", "longer than 256 characters");
  if (job.restart().max_attempts() > 100) {
    return codec::InvalidField(
        "restart.max_attempts",
        absl::StrCat("max_attempts must be 0-100 (0: 3), got ", job.restart().max_attempts()));
  }
  if (absl::Status st = CheckDependsOn(job); !st.ok()) return st;
  if (!job.array_job().empty() || job.array_index() != 0 || !job.task_counts().empty() ||
      job.gang_members_size() > 0) {
    return codec::InvalidField(
        "array_job", "array_job, array_index, task_counts and gang_members are output-only");
  }
  if (absl::Status st = CheckGang(job); !st.ok()) return st;
  if (job.has_array()) {
    if (job.array().count() < 1 || job.array().count() > kMaxArrayCount) {
      return codec::InvalidField("array.count", absl::StrCat("count must be 1-", kMaxArrayCount,
                                                             ", got ", job.array().count()));
    }
    if (job.array().parallelism() > job.array().count()) job.mutable_array()->set_parallelism(0);
  }
  for (int i = 0; i < job.datasets_size(); ++i) {
    if (job.datasets(i).id().empty())
      return codec::InvalidField(absl::StrCat("datasets[", i, "].id"), "dataset id is required");
    if (job.datasets(i).size_gb() < 0)
      return codec::InvalidField(absl::StrCat("datasets[", i, "].size_gb"), "cannot be negative");
  }

  if (job.name().empty()) {
    std::string base = job.command(0).substr(job.command(0).rfind('/') + 1);
    job.set_name(base::IsId(base) ? base : "job");
  } else if (!base::IsId(job.name())) {
    return codec::InvalidField("name",
                               "name must be 1-128 characters of letters, digits, '-', '_' or '.'");
  }
  if (job.tenant().empty()) job.set_tenant("default");
  if (!base::IsId(job.tenant()))
    return codec::InvalidField(
        "tenant", "tenant must be 1-128 characters of letters, digits, '-', '_' or '.'");
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

absl::Status Core::CheckDatasetFacts(const v1::RegisteredDataset& d) {
  std::shared_ptr<const PolicyState> policy;
  {
    absl::MutexLock lock(&mu_);
    policy = policy_;
  }
  if (policy == nullptr) return absl::UnavailableError("no placement policy loaded yet");
  const policy::CompiledPolicy& p = *policy->compiled;
  if (p.FindSite(d.location().site()) == nullptr) {
    std::vector<std::string> ids;
    for (const v1::Site& s : p.policy().sites()) ids.push_back(s.id());
    return codec::InvalidField("location.site",
                               absl::StrCat("unknown site '", d.location().site(),
                                            "' (known: ", absl::StrJoin(ids, ", "), ")"));
  }
  const auto& j = p.policy().jurisdictions();
  if (std::find(j.begin(), j.end(), d.origin()) == j.end()) {
    return codec::InvalidField("origin", absl::StrCat("unknown jurisdiction '", d.origin(),
                                                      "' (known: ", absl::StrJoin(j, ", "), ")"));
  }
  return absl::OkStatus();
}

}  // namespace portolan::scheduler
