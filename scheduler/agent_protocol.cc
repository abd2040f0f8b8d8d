// SPDX-License-Identifier: Apache-2.0
// The agent protocol's meaning: registration and reconciliation, job
// updates, heartbeats, the reliable outbox, agent loss and kill-and-confirm.
// Part of Core (portolan/scheduler/core.h), under its lock.
#include <cmath>

#include "absl/strings/str_cat.h"
#include "portolan/base/log.h"
#include "portolan/base/strings.h"
#include "portolan/scheduler/core.h"
#include "portolan/topology/allocator.h"

namespace portolan::scheduler {

void Core::CommitRecovered(AgentRec& rec, v1::Job& job) {
  if (!rec.topo) return;
  if (job.allocation().pus_size() == 0) {
    // Placed before concrete allocation existed: give it one now.
    auto planned = rec.topo->Plan(topology::Request::FromJob(job));
    if (planned.ok()) {
      v1::Allocation a = *planned;
      a.set_agent(job.allocation().agent());
      a.set_site(job.allocation().site());
      *job.mutable_allocation() = a;
      (void)Persist(job);
    }
  }
  usage_.Hold(job.id(), job.tenant(), job.allocation().site(), job.resources());
  if (absl::Status st = rec.topo->Commit(job.allocation(), job.id()); !st.ok()) {
    spdlog::error("job {}: its allocation no longer fits agent {}: {}", job.id(), rec.info.id(),
                  st.message());
  }
}

void Core::RebuildTopology(AgentRec& rec, const v1::Topology& t) {
  rec.topo = std::make_unique<topology::AgentTopology>(t);
  rec.topology = t.SerializeAsString();
  for (const std::string& id : rec.info.jobs()) {
    v1::Job* job = jobs_.Held(id);
    if (job != nullptr && HoldsResources(job->state())) CommitRecovered(rec, *job);
  }
  AgentRegistry::SyncAllocated(rec);
}

bool Core::OnRegister(const v1::Register& reg, std::shared_ptr<AgentLink> link,
                      const std::string& peer) {
  v1::Envelope ack_env;
  v1::RegisterAck* ack = ack_env.mutable_register_ack();
  std::string refuse;
  if (reg.agent_id().empty() || reg.agent_id().size() > 128) {
    refuse = "agent_id must be 1-128 characters";
  } else if (reg.site().empty()) {
    refuse = "site is required";
  } else {
    refuse = AgentRegistry::TopologyProblem(reg.topology());
  }
  if (!refuse.empty()) {
    spdlog::warn("refusing registration of agent '{}' from {}: {}", reg.agent_id(), peer, refuse);
    ack->set_accepted(false);
    ack->set_reason(refuse);
    link->Send(ack_env);
    return false;
  }

  absl::MutexLock lock(&mu_);
  const absl::Time now = clock_->Now();
  AgentRec& rec = agents_[reg.agent_id()];
  if (rec.link && rec.link != link)
    rec.link->Close("replaced by a newer session of the same agent");
  const bool was_lost = rec.info.state() == v1::Agent::lost;
  v1::Agent& a = rec.info;
  a.set_id(reg.agent_id());
  a.set_site(reg.site());
  *a.mutable_labels() = reg.labels();
  a.set_version(reg.version());
  *a.mutable_isolation() = reg.isolation();
  if (a.state() == v1::Agent::state_unspecified || was_lost) a.set_state(v1::Agent::ready);
  a.set_connected(true);
  a.set_address(peer);
  *a.mutable_registered_at() = base::ToProto(now);
  *a.mutable_last_heartbeat_at() = base::ToProto(now);
  a.set_session_id(base::NewId("session"));
  RebuildTopology(rec, reg.topology());
  rec.link = std::move(link);
  rec.data_endpoint = reg.data_endpoint();
  rec.last_seen = now;
  rec.confirm_by = absl::InfiniteFuture();  // it answers again; `stopping` still awaits its word

  ack->set_accepted(true);
  ack->set_session_id(a.session_id());
  ack->set_heartbeat_interval_ms(
      static_cast<uint32_t>(absl::ToInt64Milliseconds(options_.heartbeat_interval)));
  if (signer_ != nullptr) (*ack->mutable_grant_keys())[signer_->key_id()] = signer_->public_key();
  rec.link->Send(ack_env);
  if (policy_ != nullptr && policy_->compiled->FindSite(a.site()) == nullptr) {
    spdlog::warn(
        "agent {} belongs to site {}, which is not in the policy's site catalogue: it gets no jobs "
        "until the site is added",
        a.id(), a.site());
  }
  spdlog::info("agent {} registered from {} (site {}, {} PUs, {} MiB, {} GPUs, {} jobs reported){}",
               a.id(), peer, a.site(), a.capacity().cpus(), a.capacity().memory_mb(),
               a.capacity().gpus(), reg.jobs_size(), was_lost ? " after being lost" : "");

  // First resend what the previous session left unacknowledged, in order;
  // what reconciliation adds below is sent once, by SendReliable.
  for (auto& [seq, p] : rec.outbox) {
    p.last_sent = now;
    rec.link->Send(p.envelope);
  }

  // Reconcile: what the agent reports against what we think it runs.
  std::map<std::string, const v1::AgentJobStatus*> reported;
  for (const v1::AgentJobStatus& s : reg.jobs()) reported[s.job_id()] = &s;
  std::vector<std::string> mine(a.jobs().begin(), a.jobs().end());
  for (const std::string& id : mine) {
    v1::Job& job = jobs_.Live(id);
    auto r = reported.find(id);
    if (r != reported.end() && r->second->attempt() == job.attempt()) {
      if (r->second->state() == v1::Job::running &&
          (job.state() == v1::Job::placed || job.state() == v1::Job::staging)) {
        Transition(job, v1::Job::running,
                   absl::StrCat("running on agent ", a.id(), " (reported at registration)"));
      }
      // Final states arrive as JobUpdates, which the agent resends.
      continue;
    }
    bool assign_pending = false;
    for (const auto& [seq, p] : rec.outbox) {
      if (p.envelope.has_assign() && p.envelope.assign().job().id() == id) assign_pending = true;
    }
    if (assign_pending) continue;
    if ((job.state() == v1::Job::placed || job.state() == v1::Job::staging) &&
        !job.cancel_requested()) {
      // Placed before a scheduler restart; the Assign may never have arrived.
      agents_.SendReliable(rec, AssignWithInputs(job, nullptr), clock_->Now());
      continue;
    }
    EndAttempt(job, job.cancel_requested() ? v1::Job::cancelled : v1::Job::lost,
               reg.accounts_for_all_jobs()
                   ? absl::StrCat("agent ", a.id(), " re-registered without attempt ",
                                  job.attempt(), ": it does not run there")
                   : absl::StrCat("agent ", a.id(), " re-registered without this job"),
               0, 0);
  }
  for (const v1::AgentJobStatus& s : reg.jobs()) {
    if (IsTerminal(s.state())) continue;
    const v1::Job* job = jobs_.Held(s.job_id());
    bool ours = job != nullptr && job->allocation().agent() == a.id() &&
                job->attempt() == s.attempt() && !IsTerminal(job->state());
    if (!ours) {
      spdlog::warn("agent {} runs job {} (attempt {}) that it should not; telling it to stop",
                   a.id(), s.job_id(), s.attempt());
      agents_.SendCancel(rec, s.job_id(), s.attempt(),
                         "the scheduler has no active record of this job", clock_->Now());
    }
  }
  PersistAgent(rec);
  RequestPass();
  ScheduleLocked();
  return true;
}

void Core::StoreLogs(const v1::LogTail& tail) {
  v1::JobLogs logs;
  logs.set_job_id(tail.job_id());
  logs.set_stdout(tail.stdout());
  logs.set_stderr(tail.stderr());
  logs.set_stdout_truncated(tail.stdout_truncated());
  logs.set_stderr_truncated(tail.stderr_truncated());
  *logs.mutable_updated_at() = base::ToProto(clock_->Now());
  absl::Status st = store_->PutLogs(logs);
  if (!st.ok())
    spdlog::error("store: cannot persist logs of job {}: {}", tail.job_id(), st.message());
}

void Core::ApplyUpdate(AgentRec& rec, const v1::JobUpdate& u) {
  JobTable::Rec* known = jobs_.Find(u.job_id());
  if (known == nullptr) {
    spdlog::warn("agent {} reported unknown job {}; ignored", rec.info.id(), u.job_id());
    return;
  }
  if (!known->job || known->job->allocation().agent() != rec.info.id() ||
      known->job->attempt() != u.attempt() || IsTerminal(known->job->state())) {
    // Ended and stored, or an earlier attempt: a duplicate, or the late word
    // of an agent the scheduler had given up on.
    ConfirmEarlierAttempt(rec, u);
    return;
  }
  v1::Job& job = *known->job;
  if (u.has_logs()) StoreLogs(u.logs());
  if (auto s = rec.stopping.find(job.id());
      s != rec.stopping.end() && s->second == u.attempt() && IsTerminal(u.state())) {
    // Stopped at our request after the agent went silent: the attempt is
    // over for sure now, and may be restarted under the job's policy.
    rec.stopping.erase(s);
    if (u.state() != v1::Job::succeeded) {
      EndAttempt(job, job.cancel_requested() ? v1::Job::cancelled : v1::Job::lost,
                 absl::StrCat("agent ", rec.info.id(), " went silent past its TTL; attempt ",
                              u.attempt(), " confirmed stopped there (", u.message(), ")"),
                 u.exit_code(), u.signal());
      return;
    }
  }
  switch (u.state()) {
    case v1::Job::staging:
      // Its inputs on their way (bytes, rate): kept in memory (GET shows
      // them) and stored with the job's next transition, not per update.
      NoteStaged(job, u);
      if (job.state() == v1::Job::placed) {
        Transition(job, v1::Job::staging, u.message().empty() ? "staging inputs" : u.message());
      }
      return;
    case v1::Job::running:
      if (u.inputs_size() > 0) NoteStaged(job, u);
      if (job.state() == v1::Job::placed || job.state() == v1::Job::staging) {
        Transition(job, v1::Job::running, u.message().empty() ? "started" : u.message());
      }
      return;
    case v1::Job::lost:
      // The agent knows the attempt ended but not how (its supervisor was
      // killed from outside, the machine rebooted): the job's restart
      // policy decides, as for a lost agent.
      EndAttempt(job, job.cancel_requested() ? v1::Job::cancelled : v1::Job::lost,
                 absl::StrCat("agent ", rec.info.id(), ": ", u.message()), u.exit_code(),
                 u.signal());
      return;
    case v1::Job::succeeded:
    case v1::Job::failed:
    case v1::Job::cancelled: {
      v1::Job::State final = u.state();
      if (job.cancel_requested() && final != v1::Job::succeeded) final = v1::Job::cancelled;
      std::string message = u.message();
      if (final == v1::Job::succeeded) {
        // Outputs it declared and did not leave behind: the pipeline's next
        // stage would read nothing, so the attempt failed.
        if (std::string lost = RegisterOutputs(job, u); !lost.empty()) {
          final = v1::Job::failed;
          message = absl::StrCat(message, "; outputs not kept: ", lost);
        }
      }
      EndAttempt(job, final, message, u.exit_code(), u.signal());
      return;
    }
    default:
      spdlog::warn("agent {} sent job {} state {}; ignored", rec.info.id(), u.job_id(),
                   StateName(u.state()));
  }
}

void Core::ConfirmEarlierAttempt(AgentRec& rec, const v1::JobUpdate& u) {
  if (!IsTerminal(u.state())) return;
  auto awaited = rec.unconfirmed.find(u.job_id());
  if (awaited == rec.unconfirmed.end() || awaited->second.erase(u.attempt()) == 0) return;
  if (awaited->second.empty()) rec.unconfirmed.erase(awaited);
  JobTable::Rec* known = jobs_.Find(u.job_id());
  if (known == nullptr) return;
  v1::Job stored;
  v1::Job* job = known->job.get();
  if (job == nullptr) {
    // Ended and dropped from memory: read back under the lock, which a
    // store read normally avoids (ReadEnded); this happens once per attempt
    // whose agent came back from lost.
    auto read = store_->GetJob(u.job_id());
    if (!read.ok()) {
      spdlog::warn("job {}: cannot record agent {}'s word on attempt {}: {}", u.job_id(),
                   rec.info.id(), u.attempt(), read.status().message());
      return;
    }
    stored = std::move(*read);
    job = &stored;
  }
  for (v1::Attempt& a : *job->mutable_attempts()) {
    if (a.number() != u.attempt() || !a.fate_unknown() || a.allocation().agent() != rec.info.id())
      continue;
    a.set_fate_unknown(false);
    const std::string how =
        absl::StrCat("agent ", rec.info.id(), " came back and confirmed attempt ", u.attempt(),
                     " ended there: ", StateName(u.state()), " (", u.message(), ")");
    a.set_reason(absl::StrCat(a.reason(), "; ", how));
    v1::JobEvent* ev = job->add_events();
    *ev->mutable_time() = base::ToProto(clock_->Now());
    ev->set_state(job->state());
    ev->set_message(how);
    spdlog::info("job {}: {}", job->id(), how);
    (void)Persist(*job);
    return;
  }
}

void Core::OnMessage(const std::string& agent_id, const AgentLink* link, const v1::Envelope& env) {
  OnMessages({Delivery{agent_id, link, {env}}});
}

void Core::OnMessages(const std::vector<Delivery>& deliveries) {
  absl::MutexLock lock(&mu_);
  store_->BeginDeferred();
  deferring_ = true;
  for (const Delivery& d : deliveries)
    for (const v1::Envelope& env : d.envelopes) OnMessageLocked(d.agent_id, d.link, env);
  // Event-driven: a job's end (or a changed topology) places what waits.
  if (schedule_pending_) ScheduleLocked();
  FinishDeferred();
}

void Core::FinishDeferred() {
  deferring_ = false;
  if (absl::Status st = store_->CommitDeferred(); !st.ok()) {
    // Memory stays the only current copy of what failed (as for a write that
    // fails at once): ended jobs are kept in memory, not dropped.
    spdlog::error("store: cannot commit the writes of an agent message: {}", st.message());
  } else {
    for (const std::string& id : deferred_ended_) jobs_.MarkEnded(id);
  }
  deferred_ended_.clear();
  for (v1::Event& e : deferred_events_) events_.Publish(std::move(e));
  deferred_events_.clear();
}

void Core::MarkStoredEnded(const std::string& id) {
  if (deferring_) {
    deferred_ended_.push_back(id);
  } else {
    jobs_.MarkEnded(id);
  }
}

void Core::Publish(v1::Event event) {
  if (deferring_) {
    deferred_events_.push_back(std::move(event));
  } else {
    events_.Publish(std::move(event));
  }
}

void Core::OnMessageLocked(const std::string& agent_id, const AgentLink* link,
                           const v1::Envelope& env) {
  auto it = agents_.find(agent_id);
  if (it == agents_.end() || it->second.link.get() != link) return;  // stale session
  AgentRec& rec = it->second;
  const absl::Time now = clock_->Now();
  rec.last_seen = now;
  v1::Envelope ack;
  ack.mutable_ack()->set_seq(env.seq());
  switch (env.body_case()) {
    case v1::Envelope::kHeartbeat: {
      const v1::Heartbeat& hb = env.heartbeat();
      *rec.info.mutable_last_heartbeat_at() = base::ToProto(now);
      // Agent-reported: NaN, infinities and absurd values are not RTTs.
      const double rtt = hb.measured_rtt_ms();
      rec.info.set_measured_rtt_ms(std::isfinite(rtt) && rtt >= 0 && rtt < 3.6e6 ? rtt : 0);
      rec.info.set_memory_available_mb(hb.usage().memory_available_mb());
      const std::string problem =
          hb.has_topology() ? AgentRegistry::TopologyProblem(hb.topology()) : "";
      if (!problem.empty()) {
        spdlog::warn(
            "agent {} reports a changed topology that is not usable ({}); keeping the one "
            "it registered with",
            agent_id, problem);
      } else if (hb.has_topology()) {
        spdlog::warn("agent {} reports a changed topology: {} PUs, {} MiB, {} GPUs", agent_id,
                     hb.topology().pus(), hb.topology().memory_mb(), hb.topology().gpus_size());
        RebuildTopology(rec, hb.topology());
        PersistAgent(rec);
        RequestPass();
      }
      for (const v1::LogTail& t : hb.logs()) {
        const v1::Job* j = jobs_.Held(t.job_id());
        if (j != nullptr && j->allocation().agent() == agent_id) StoreLogs(t);
      }
      rec.link->Send(ack);
      break;
    }
    case v1::Envelope::kJobUpdate:
      ApplyUpdate(rec, env.job_update());
      rec.link->Send(ack);
      break;
    case v1::Envelope::kAck:
      rec.outbox.erase(env.ack().seq());
      break;
    case v1::Envelope::kTransferReport:
      AuditServed(rec, env.transfer_report());
      rec.link->Send(ack);
      break;
    default:
      spdlog::warn("agent {} sent an unexpected {} message; ignored", agent_id,
                   env.GetDescriptor()->FindFieldByNumber(env.body_case())->name());
  }
}

void Core::OnDisconnect(const std::string& agent_id, const AgentLink* link) {
  absl::MutexLock lock(&mu_);
  auto it = agents_.find(agent_id);
  if (it == agents_.end() || it->second.link.get() != link) return;
  it->second.link.reset();
  it->second.info.set_connected(false);
  Publish(AgentChanged(AgentRegistry::View(it->second), clock_->Now()));
  spdlog::warn("agent {} disconnected; it is lost unless it returns within {}", agent_id,
               absl::FormatDuration(options_.agent_ttl));
}

void Core::MarkLost(AgentRec& rec, const std::string& why) {
  v1::Agent& a = rec.info;
  spdlog::warn("agent {} lost: {}", a.id(), why);
  a.set_state(v1::Agent::lost);
  a.set_connected(false);
  if (rec.link) rec.link->Close(why);
  rec.link.reset();
  rec.outbox.clear();
  rec.stopping.clear();
  rec.confirm_by = absl::InfiniteFuture();
  std::vector<std::string> ids(a.jobs().begin(), a.jobs().end());
  for (const std::string& id : ids) {
    v1::Job& job = jobs_.Live(id);
    const uint32_t attempt = job.attempt();
    // Unreachable is not stopped: the attempt may still run there. The job's
    // restart policy decides whether the next attempt starts anyway; the
    // agent, if it returns, is told to stop this one and says how it ended.
    for (v1::Attempt& at : *job.mutable_attempts()) {
      if (at.number() == attempt) at.set_fate_unknown(true);
    }
    rec.unconfirmed[id].insert(attempt);
    EndAttempt(job, job.cancel_requested() ? v1::Job::cancelled : v1::Job::lost,
               absl::StrCat("agent ", a.id(), " lost: ", why, "; attempt ", attempt,
                            " may still be running there (its fate is unknown until the agent "
                            "returns)"),
               0, 0);
  }
  PersistAgent(rec);
}

void Core::Tick() {
  absl::MutexLock lock(&mu_);
  const absl::Time now = clock_->Now();
  for (auto& [id, rec] : agents_) {
    if (rec.info.state() == v1::Agent::lost) continue;
    if (now - rec.last_seen > options_.agent_ttl) {
      if (rec.link && rec.info.jobs_size() > 0 && rec.confirm_by == absl::InfiniteFuture()) {
        // Still connected, only silent: it may well run its attempts. Ask
        // it to stop them, and restart none before it confirms (or one more
        // TTL passes).
        rec.confirm_by = now + options_.agent_ttl;
        const std::string why =
            absl::StrCat("agent ", id, " silent for ", absl::FormatDuration(now - rec.last_seen),
                         " (ttl ", absl::FormatDuration(options_.agent_ttl), ")");
        spdlog::warn("{}: asking it to stop its {} attempt(s) before any is restarted elsewhere",
                     why, rec.info.jobs_size());
        std::vector<std::string> ids(rec.info.jobs().begin(), rec.info.jobs().end());
        for (const std::string& job_id : ids) {
          v1::Job& job = jobs_.Live(job_id);
          rec.stopping[job_id] = job.attempt();
          agents_.SendCancel(rec, job_id, job.attempt(),
                             absl::StrCat(why, "; stopping attempt ", job.attempt(),
                                          " so that it is never run twice at once"),
                             now);
          v1::JobEvent* ev = job.add_events();
          *ev->mutable_time() = base::ToProto(now);
          ev->set_state(job.state());
          ev->set_message(absl::StrCat(why, "; asked it to stop attempt ", job.attempt(),
                                       " and waiting up to ",
                                       absl::FormatDuration(options_.agent_ttl),
                                       " for it to confirm before anything is restarted"));
          (void)Persist(job);
        }
        continue;
      }
      if (rec.confirm_by != absl::InfiniteFuture() && now < rec.confirm_by) continue;
      MarkLost(rec, absl::StrCat("no heartbeat for ", absl::FormatDuration(now - rec.last_seen),
                                 " (ttl ", absl::FormatDuration(options_.agent_ttl), ")",
                                 rec.confirm_by != absl::InfiniteFuture()
                                     ? ", and it did not confirm its attempts stopped"
                                     : ""));
      continue;
    }
    if (!rec.link) continue;
    for (auto& [seq, p] : rec.outbox) {
      if (now - p.last_sent >= options_.resend_interval) {
        p.last_sent = now;
        rec.link->Send(p.envelope);
      }
    }
  }
  // Event-driven: a pass runs when something changed (submit, job end, agent
  // join, cordon, policy or tenant change) or a restart backoff expired.
  // A restart backoff's end, or a pass that stopped early a while ago: every
  // waiting job is visited again (wake-ups, reasons).
  if (now >= next_wakeup_ || (stopped_early_ && now - last_full_pass_ >= kFullPassEvery))
    RequestPass();
  if (schedule_pending_) ScheduleLocked();
  // A new UTC day can expire an instrument or bring a list into force:
  // waiting jobs are decided again and running ones checked.
  if (absl::ToCivilDay(now, absl::UTCTimeZone()) != compliance_day_) {
    RequestPass();
    CheckComplianceLocked("new day");
  }
  // Violations of jobs that ended are dropped.
  for (auto it = violations_.begin(); it != violations_.end();) {
    const JobTable::Rec* j = jobs_.Find(it->first);
    const bool active = j != nullptr && HoldsResources(j->state());
    it = active ? std::next(it) : violations_.erase(it);
  }
  jobs_.DropEnded();
}

}  // namespace portolan::scheduler
