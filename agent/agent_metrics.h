// SPDX-License-Identifier: Apache-2.0
#pragma once

// portolan-agent's own Prometheus series; private to the agent program.

#include <cstdint>
#include <functional>

#include "portolan/agent/client.h"
#include "portolan/discovery/topology.h"
#include "portolan/metrics/metrics.h"

namespace portolan::agent {

// The agent's Prometheus series (served only with --metrics-addr).
class AgentMetrics {
 public:
  explicit AgentMetrics(metrics::Registry& r)
      : running_(r.AddGauge("portolan_agent_running_jobs", "Jobs running on this agent.")->With()),
        free_pus_(
            r.AddGauge("portolan_agent_free_pus", "PUs not allocated to a running job.")->With()),
        pus_(r.AddGauge("portolan_agent_pus", "PUs this agent reports.")->With()),
        mem_(r.AddGauge("portolan_agent_memory_available_bytes", "MemAvailable of the machine.")
                 ->With()),
        connected_(r.AddGauge("portolan_agent_connected", "1 while registered with the scheduler.")
                       ->With()),
        disconnects_(
            r.AddCounter("portolan_agent_disconnects_total", "Connections to the scheduler lost.")
                ->With()),
        errors_(r.AddCounter("portolan_agent_executor_errors_total",
                             "Jobs that could not be started (exec failure, directory, cgroup).")
                    ->With()),
        ooms_(r.AddCounter("portolan_agent_oom_kills_total",
                           "Jobs the kernel's OOM killer struck in their cgroup (reported failed: "
                           "out of memory).")
                  ->With()),
        updates_(r.AddCounter("portolan_agent_job_updates_total",
                              "Job state changes reported to the scheduler, by state.", {"state"})),
        dirs_kept_(r.AddGauge("portolan_agent_attempt_dirs_kept",
                              "Ended job attempts' directories kept (--attempt-dir-keep-hours, "
                              "--attempt-dir-keep-max).")
                       ->With()),
        dirs_removed_(r.AddCounter("portolan_agent_attempt_dirs_removed_total",
                                   "Ended job attempts' directories removed.")
                          ->With()) {}

  // Counts each reported state change (AgentOptions::on_update).
  std::function<void(const v1::JobUpdate&)> OnUpdate() {
    return [u = updates_](const v1::JobUpdate& up) {
      u->With({v1::Job::State_Name(up.state())})->Inc();
    };
  }

  // Refreshes the series from the client; on the io thread, where the
  // client's state is read.
  void Refresh(const agent::AgentClient& client) {
    const executor::Executor* ex = client.executor();
    if (ex == nullptr) return;
    running_->Set(static_cast<double>(ex->running()));
    const uint32_t pus = client.topology().pus();
    pus_->Set(pus);
    free_pus_->Set(pus > ex->allocated_pus() ? pus - ex->allocated_pus() : 0);
    connected_->Set(client.registered() ? 1 : 0);
    disconnects_->Inc(static_cast<double>(client.reconnects() - disconnects_seen_));
    disconnects_seen_ = client.reconnects();
    errors_->Inc(static_cast<double>(ex->start_errors() - errors_seen_));
    errors_seen_ = ex->start_errors();
    ooms_->Inc(static_cast<double>(ex->oom_kills() - ooms_seen_));
    ooms_seen_ = ex->oom_kills();
    mem_->Set(static_cast<double>(discovery::MemAvailableKib()) * 1024);
    if (const executor::AttemptDirGc* gc = ex->attempt_dirs()) {
      dirs_removed_->Inc(static_cast<double>(gc->removed() - dirs_removed_seen_));
      dirs_removed_seen_ = gc->removed();
      dirs_kept_->Set(static_cast<double>(gc->kept()));
    }
  }

 private:
  metrics::Gauge* running_;
  metrics::Gauge* free_pus_;
  metrics::Gauge* pus_;
  metrics::Gauge* mem_;
  metrics::Gauge* connected_;
  metrics::Counter* disconnects_;
  metrics::Counter* errors_;
  metrics::Counter* ooms_;
  metrics::Family<metrics::Counter>* updates_;
  metrics::Gauge* dirs_kept_;
  metrics::Counter* dirs_removed_;
  uint64_t errors_seen_ = 0, disconnects_seen_ = 0, ooms_seen_ = 0, dirs_removed_seen_ = 0;
};

}  // namespace portolan::agent
