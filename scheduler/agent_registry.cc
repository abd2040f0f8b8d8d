// SPDX-License-Identifier: Apache-2.0
#include "portolan/scheduler/agent_registry.h"

#include "absl/strings/str_cat.h"

namespace portolan::scheduler {
v1::Envelope AssignOf(v1::Job& job) {
  google::protobuf::RepeatedPtrField<v1::JobEvent> events;
  google::protobuf::RepeatedPtrField<v1::Attempt> attempts;
  events.Swap(job.mutable_events());
  attempts.Swap(job.mutable_attempts());
  v1::Envelope env;
  *env.mutable_assign()->mutable_job() = job;
  events.Swap(job.mutable_events());
  attempts.Swap(job.mutable_attempts());
  return env;
}

void AddResources(v1::Resources* into, const v1::Resources& r, int sign) {
  into->set_cpus(into->cpus() + sign * r.cpus());
  into->set_memory_mb(into->memory_mb() + sign * r.memory_mb());
  into->set_gpus(into->gpus() + sign * r.gpus());
}

void AgentRegistry::SendReliable(AgentRecord& rec, v1::Envelope envelope, absl::Time now) {
  envelope.set_seq(++next_seq_);
  AgentRecord::Pending& p = rec.outbox[envelope.seq()];
  p.envelope = std::move(envelope);
  p.last_sent = now;
  if (rec.link) rec.link->Send(p.envelope);
}

void AgentRegistry::SendCancel(AgentRecord& rec, const std::string& job_id, uint32_t attempt,
                               const std::string& reason, absl::Time now, absl::Duration grace) {
  // An Assign still unacknowledged for this job is withdrawn; the Cancel
  // covers the case where it did arrive.
  for (auto it = rec.outbox.begin(); it != rec.outbox.end();) {
    if (it->second.envelope.has_assign() && it->second.envelope.assign().job().id() == job_id) {
      it = rec.outbox.erase(it);
    } else {
      ++it;
    }
  }
  v1::Envelope env;
  env.mutable_cancel()->set_job_id(job_id);
  env.mutable_cancel()->set_attempt(attempt);
  env.mutable_cancel()->set_reason(reason);
  env.mutable_cancel()->set_grace_ms(static_cast<uint32_t>(absl::ToInt64Milliseconds(grace)));
  SendReliable(rec, std::move(env), now);
}

std::map<std::string, std::vector<placement::AgentView>> AgentRegistry::BySite() {
  std::map<std::string, std::vector<placement::AgentView>> out;
  for (auto& [id, rec] : recs_) {
    out[rec.info.site()].emplace_back(&rec.info, Free(rec), rec.topo.get());
  }
  return out;
}

v1::Resources AgentRegistry::Free(const AgentRecord& rec) {
  v1::Resources f = rec.info.capacity();
  AddResources(&f, rec.info.allocated(), -1);
  return f;
}

void AgentRegistry::SyncAllocated(AgentRecord& rec) {
  if (!rec.topo) return;
  v1::Resources* cap = rec.info.mutable_capacity();
  cap->set_cpus(rec.topo->total_pus());
  cap->set_memory_mb(rec.topo->total_memory_mb());
  cap->set_gpus(rec.topo->total_gpus());
  v1::Resources* used = rec.info.mutable_allocated();
  used->set_cpus(rec.topo->total_pus() - rec.topo->free_pus());
  used->set_memory_mb(rec.topo->total_memory_mb() - rec.topo->free_memory_mb());
  used->set_gpus(rec.topo->total_gpus() - rec.topo->free_gpus());
}

v1::Agent AgentRegistry::View(const AgentRecord& rec) {
  v1::Agent out = rec.info;
  if (!out.mutable_topology()->ParseFromString(rec.topology)) out.clear_topology();
  return out;
}

std::string AgentRegistry::TopologyProblem(const v1::Topology& t) {
  if (t.pus() == 0 || t.cores_size() == 0) return "topology reports no processing units";
  if (t.memory_mb() == 0) return "topology reports no memory";
  if (t.memory_mb() > (64u << 20)) {
    return absl::StrCat("topology reports ", t.memory_mb(),
                        " MiB of memory, more than 64 TiB is implausible");
  }
  if (t.cores_size() > topology::AgentTopology::kMaxCores) {
    return absl::StrCat("topology reports ", t.cores_size(), " cores, more than the ",
                        topology::AgentTopology::kMaxCores, " supported per agent");
  }
  if (t.gpus_size() > topology::AgentTopology::kMaxGpus) {
    return absl::StrCat("topology reports ", t.gpus_size(), " GPUs, more than the ",
                        topology::AgentTopology::kMaxGpus, " supported per agent");
  }
  uint32_t listed = 0;
  for (const v1::Core& c : t.cores()) {
    listed += static_cast<uint32_t>(c.pus_size());
    for (uint32_t pu : c.pus()) {
      if (pu > topology::AgentTopology::kMaxPuIndex) {
        return absl::StrCat("topology reports PU ", pu, ", above the highest supported OS index ",
                            topology::AgentTopology::kMaxPuIndex);
      }
    }
  }
  if (listed != t.pus()) {
    return absl::StrCat("topology is inconsistent: it reports ", t.pus(),
                        " PUs but its cores list ", listed);
  }
  return "";
}

}  // namespace portolan::scheduler
