// SPDX-License-Identifier: Apache-2.0
// Data staging, the scheduler's half (docs/datasets.md): what an Assign
// tells the agent about the job's inputs and outputs, the transfer grants it
// signs for data at other sites, the audit of what source agents served, the
// throughput transfers measured, and the registration of a job's outputs.
#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "portolan/base/log.h"
#include "portolan/base/strings.h"
#include "portolan/residency/residency.h"
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
  bool cache = false;  // staged copies may stay at this site (datasets.cache_sites)
  if (policy_ != nullptr) {
    const v1::DatasetPolicy& dp = policy_->compiled->policy().datasets();
    if (dp.grant_ttl_s() > 0) ttl = absl::Seconds(dp.grant_ttl_s());
    cache =
        std::find(dp.cache_sites().begin(), dp.cache_sites().end(), site) != dp.cache_sites().end();
  }
  for (const v1::Dataset& ds : job.datasets()) {
    // Registered datasets only: an inline declaration names no path.
    if (ds.path().empty() || ds.location().empty()) continue;
    v1::StageSource* s = env.mutable_assign()->add_inputs();
    s->set_dataset(ds.id());
    s->set_version(ds.version());
    s->set_site(ds.location());
    s->set_path(ds.path());
    if (ds.location() == site) continue;  // local: linked, not copied
    s->set_cache(cache);
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
    v1::AuditRecord rec = residency::NewAuditRecord("grant", now, &job, &ds);
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
  // Where the agent keeps what the job writes (registered if it succeeds).
  for (const v1::JobOutput& out : job.outputs()) {
    v1::OutputTarget* t = env.mutable_assign()->add_outputs();
    t->set_dataset(out.id());
    t->set_path(out.path());
    t->set_store_path(datasets::OutputStorePath(job, out));
  }
  return env;
}

void Core::AuditServed(AgentRec& rec, const v1::TransferReport& report) {
  for (const v1::ServedTransfer& t : report.served()) {
    v1::AuditRecord a =
        residency::NewAuditRecord(t.refused() ? "transfer_refused" : "transfer", clock_->Now());
    if (t.has_time()) *a.mutable_time() = t.time();
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

void Core::NoteStaged(v1::Job& job, const v1::JobUpdate& u) {
  for (const v1::StagedInput& next : u.inputs()) {
    if (!next.done() || next.local() || !next.error().empty()) continue;
    bool seen = false;  // already counted: an update repeats the inputs
    for (const v1::StagedInput& before : job.inputs()) {
      if (before.dataset() == next.dataset() && before.done()) seen = true;
    }
    if (seen) continue;
    const std::string& to = job.allocation().site();
    if (measured_.Record(next.from_site(), to, next.bytes_done(), next.seconds(), clock_->Now())) {
      class_verdicts_.Forget();  // transfer estimates changed
      const network::MeasuredPath* m = measured_.Find(next.from_site(), to);
      spdlog::info(
          "staging {} -> {}: {} bytes in {:.3f} s ({:.3f} Gbps); path now {:.3f} Gbps over "
          "{} transfer(s)",
          next.from_site(), to, next.bytes_done(), next.seconds(),
          next.bytes_done() * 8.0 / 1e9 / next.seconds(), m->gbps, m->transfers);
    }
  }
  *job.mutable_inputs() = u.inputs();
}

std::string Core::RegisterOutputs(v1::Job& job, const v1::JobUpdate& u) {
  if (job.outputs().empty()) return "";
  const std::string& site = job.allocation().site();
  const v1::Site* s = policy_ == nullptr ? nullptr : policy_->compiled->FindSite(site);
  const std::string site_origin = s == nullptr ? "" : s->jurisdiction();
  std::vector<std::string> problems;
  job.clear_produced();
  for (const v1::JobOutput& out : job.outputs()) {
    const v1::ProducedOutput* kept = nullptr;
    for (const v1::ProducedOutput& p : u.outputs()) {
      if (p.dataset() == out.id()) kept = &p;
    }
    v1::ProducedOutput& rec = *job.add_produced();
    rec.set_dataset(out.id());
    rec.set_site(site);
    if (kept == nullptr || !kept->error().empty()) {
      rec.set_error(kept == nullptr ? "the agent kept no copy" : kept->error());
      problems.push_back(absl::StrCat(out.id(), ": ", rec.error()));
      continue;
    }
    rec = *kept;
    rec.set_site(site);
    auto d = datasets_.RegisterOutput(datasets::Derive(job, out, *kept, site, site_origin));
    if (!d.ok()) {
      rec.set_error(std::string(d.status().message()));
      problems.push_back(absl::StrCat(out.id(), ": not registered: ", d.status().message()));
      continue;
    }
    rec.set_version(d->version());
  }
  return absl::StrJoin(problems, "; ");
}

}  // namespace portolan::scheduler
