// SPDX-License-Identifier: Apache-2.0
// Data staging, the scheduler's half (docs/datasets.md): what an Assign
// tells the agent about the job's inputs, the transfer grants it signs for
// data at other sites, and the audit of what source agents served.
#include "absl/strings/str_cat.h"
#include "portolan/base/log.h"
#include "portolan/base/strings.h"
#include "portolan/scheduler/core.h"

namespace portolan::scheduler {

absl::Status Core::LoadGrantKey() {
  if (options_.grant_key.empty()) return absl::OkStatus();
  auto signer = grant::Signer::LoadOrCreate(options_.grant_key);
  if (!signer.ok()) return signer.status();
  signer_ = std::move(*signer);
  spdlog::info("transfer grants signed with key {} ({})", signer_->key_id(), options_.grant_key);
  return absl::OkStatus();
}

v1::Envelope Core::AssignWithInputs(v1::Job& job, const v1::Decision* d) {
  v1::Envelope env = AssignOf(job);
  const std::string& site = job.allocation().site();
  const absl::Time now = clock_->Now();
  absl::Duration ttl = options_.grant_ttl;
  if (policy_ != nullptr && policy_->compiled->policy().datasets().grant_ttl_s() > 0)
    ttl = absl::Seconds(policy_->compiled->policy().datasets().grant_ttl_s());
  for (const v1::Dataset& ds : job.datasets()) {
    // Registered datasets only: an inline declaration names no path.
    if (ds.path().empty() || ds.location().empty()) continue;
    v1::StageSource* s = env.mutable_assign()->add_inputs();
    s->set_dataset(ds.id());
    s->set_version(ds.version());
    s->set_site(ds.location());
    s->set_path(ds.path());
    if (ds.location() == site) continue;  // local: linked, not copied
    for (const auto& [id, rec] : agents_) {
      if (rec.info.site() == ds.location() && rec.link != nullptr && !rec.data_endpoint.empty())
        s->add_sources(rec.data_endpoint);
    }
    if (signer_ == nullptr) continue;  // no key: the agent reports it cannot stage
    v1::TransferGrant g;
    g.set_id(base::NewId("grant"));
    g.set_job_id(job.id());
    g.set_attempt(job.attempt());
    g.set_tenant(job.tenant());
    g.set_dataset(ds.id());
    g.set_dataset_version(ds.version());
    g.set_source_site(ds.location());
    g.set_path(ds.path());
    g.set_destination_agent(job.allocation().agent());
    g.set_destination_site(site);
    *g.mutable_expires() = base::ToProto(now + ttl);
    if (d != nullptr) {
      for (const v1::Compliance& c : d->placement().compliance()) {
        if (c.dataset() != ds.id()) continue;
        g.set_rule(c.rule());
        g.set_instrument(c.instrument());
      }
    }
    *s->mutable_grant() = signer_->Sign(g);
    v1::AuditRecord rec;
    rec.set_id(base::NewId("audit"));
    *rec.mutable_time() = base::ToProto(now);
    rec.set_kind("grant");
    rec.set_job(job.id());
    rec.set_tenant(job.tenant());
    rec.set_dataset(ds.id());
    rec.set_origin(ds.origin());
    rec.set_from_site(ds.location());
    rec.set_to_site(site);
    rec.set_rule(g.rule());
    rec.set_instrument(g.instrument());
    rec.set_grant(g.id());
    rec.set_agent(g.destination_agent());
    rec.set_note(absl::StrCat("grant for ", ds.path(), " (version ", ds.version(), ") to agent ",
                              g.destination_agent(), ", valid until ",
                              absl::FormatTime(absl::RFC3339_sec, now + ttl, absl::UTCTimeZone()),
                              s->sources().empty() ? "; no agent serves data there now" : ""));
    if (absl::Status st = store_->AppendAudit(rec); !st.ok())
      spdlog::error("audit: cannot record grant {}: {}", g.id(), st.message());
  }
  return env;
}

void Core::AuditServed(AgentRec& rec, const v1::TransferReport& report) {
  for (const v1::ServedTransfer& t : report.served()) {
    v1::AuditRecord a;
    a.set_id(base::NewId("audit"));
    *a.mutable_time() = t.has_time() ? t.time() : base::ToProto(clock_->Now());
    a.set_kind(t.refused() ? "transfer_refused" : "transfer");
    a.set_job(t.job_id());
    if (const JobTable::Rec* j = jobs_.Find(t.job_id()); j != nullptr) a.set_tenant(j->tenant);
    a.set_dataset(t.dataset());
    a.set_from_site(rec.info.site());
    a.set_agent(rec.info.id());
    a.set_actor(absl::StrCat("agent:", t.peer_agent()));
    a.set_grant(t.grant());
    a.set_bytes(t.bytes());
    a.set_sha256(t.sha256());
    a.set_note(t.refused() ? absl::StrCat("refused at the source: ", t.reason())
                           : absl::StrCat("served ", t.bytes(), " bytes to agent ", t.peer_agent(),
                                          t.reason().empty() ? "" : "; " + t.reason()));
    if (absl::Status st = store_->AppendAudit(a); !st.ok())
      spdlog::error("audit: cannot record a transfer from agent {}: {}", rec.info.id(),
                    st.message());
    if (t.refused()) {
      spdlog::warn("agent {} refused {} to agent {}: {}", rec.info.id(), t.dataset(),
                   t.peer_agent(), t.reason());
    }
  }
}

}  // namespace portolan::scheduler
