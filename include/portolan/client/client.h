// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "portolan/v1/agent.pb.h"
#include "portolan/v1/api.pb.h"
#include "portolan/v1/cluster.pb.h"
#include "portolan/v1/dataset.pb.h"
#include "portolan/v1/events.pb.h"
#include "portolan/v1/job.pb.h"
#include "portolan/v1/policy.pb.h"
#include "portolan/v1/simulate.pb.h"

namespace portolan::client {

// REST client for the scheduler's v1 API, used by the CLI and the
// integration tests. Error bodies come back as a Status whose message is the
// server's and whose field payload (StatusField) is the server's field.
// Thread-safe; each call is one synchronous HTTP request.
class Client {
 public:
  // `base_url` like "http://127.0.0.1:7080" or "https://..."; `token` sent
  // as a Bearer token when non-empty. `ca_file` (PEM) verifies an HTTPS
  // server instead of the system's trust store; the server's certificate
  // must name the URL's host either way.
  Client(const std::string& base_url, const std::string& token = "",
         const std::string& ca_file = "");
  ~Client();

  // `replayed`, when given, is set when the server answered with the job an
  // earlier submit with the same idempotency_key created (200, not 201).
  absl::StatusOr<v1::Job> Submit(const v1::Job& spec, bool* replayed = nullptr);
  absl::StatusOr<v1::Job> GetJob(const std::string& id);
  absl::StatusOr<v1::ListJobsResponse> ListJobs(const std::string& state = "", int page_size = 100,
                                                const std::string& page_token = "");
  absl::StatusOr<v1::Job> Cancel(const std::string& id);
  absl::StatusOr<v1::JobLogs> Logs(const std::string& id);
  absl::StatusOr<v1::ListAgentsResponse> ListAgents();
  absl::StatusOr<v1::Agent> GetAgent(const std::string& id);
  // POST /v1/agents/{id}/{action}: "cordon", "drain" or "uncordon".
  absl::StatusOr<v1::Agent> AgentAction(const std::string& id, const std::string& action);

  // Placement: a dry run of `spec`, and the stored decision of a job.
  absl::StatusOr<v1::Decision> Plan(const v1::Job& spec);
  absl::StatusOr<v1::Decision> Explain(const std::string& job_id);

  // Policy, its validation and history.
  absl::StatusOr<v1::Policy> GetPolicy();
  // PUT /v1/policy. Without `allow_violations` the scheduler refuses (409,
  // would_violate) a policy under which placed or running jobs would violate it.
  absl::StatusOr<v1::PolicyVersion> ApplyPolicy(const v1::Policy& policy,
                                                bool allow_violations = false);
  // POST /v1/policy:simulate: what the candidate in `request` would change.
  absl::StatusOr<v1::SimulateResponse> Simulate(const v1::SimulateRequest& request);
  absl::StatusOr<v1::ValidationResult> ValidatePolicy(const v1::Policy& policy);
  absl::StatusOr<v1::ListPolicyVersionsResponse> PolicyVersions();

  // GET /v1/cluster: the schedulers (leader, standbys) and the store's health.
  absl::StatusOr<v1::ClusterView> Cluster();
  // Sites and the network; a link (cable) marked up or down.
  absl::StatusOr<v1::ListSitesResponse> ListSites();
  absl::StatusOr<v1::NetworkView> GetNetwork();
  absl::StatusOr<v1::Link> SetLinkUp(const std::string& link_id, bool up);

  // Tenants: all, those with an instrument expiring within `days` (>= 0), one, or a profile set.
  absl::StatusOr<v1::ListTenantsResponse> ListTenants(int expiring_within_days = -1);
  absl::StatusOr<v1::Tenant> GetTenant(const std::string& id);
  absl::StatusOr<v1::Tenant> PutTenant(const std::string& id, const v1::Tenant& tenant);

  // The dataset registry.
  absl::StatusOr<v1::RegisteredDataset> CreateDataset(const v1::RegisteredDataset& d);
  absl::StatusOr<v1::RegisteredDataset> PutDataset(const std::string& id,
                                                   const v1::RegisteredDataset& d);
  absl::StatusOr<v1::RegisteredDataset> GetDataset(const std::string& id);
  absl::StatusOr<v1::ListDatasetsResponse> ListDatasets(const std::string& tenant = "",
                                                        int page_size = 100,
                                                        const std::string& page_token = "");
  absl::StatusOr<v1::DatasetVersions> DatasetVersions(const std::string& id);
  // What the tenant's placed and running jobs hold, against its quota.
  absl::StatusOr<v1::TenantUsage> TenantUsage(const std::string& id);
  // An array job's tasks by index (page_token: the next page's first index).
  absl::StatusOr<v1::ListTasksResponse> ListTasks(const std::string& job_id, int page_size = 100,
                                                  const std::string& page_token = "");

  // The audit trail of cross-border placements (empty filters: all), newest
  // first, and the jobs the policy in force no longer allows.
  struct AuditFilter {
    std::string tenant, job;
    int limit = 0;  // 0: the server's default
  };
  absl::StatusOr<v1::ListAuditResponse> Audit(const AuditFilter& filter);
  absl::StatusOr<v1::ListViolationsResponse> Violations(const std::string& tenant = "");

  // GET /metrics: the Prometheus text exposition (admins and operators).
  absl::StatusOr<std::string> Metrics();

  // GET /v1/events (`query` like "kinds=job,link" or "job=ID", may be
  // empty): calls `on_event` with each event as it arrives until it returns
  // false (then OK) or the stream ends (Unavailable). A non-empty
  // `*last_event_id` resumes after that event (SSE Last-Event-ID); it is set
  // to each event's id as it arrives, so a caller can reconnect where it
  // left off. `on_open`, when given, is called once the stream is open:
  // every event published from then on will be delivered. Blocks.
  absl::Status Watch(const std::string& query, std::string* last_event_id,
                     const std::function<bool(const v1::Event&)>& on_event,
                     const std::function<void()>& on_open = nullptr);

  // Any JSON endpoint: sends `body` (may be empty), parses a 2xx answer into
  // `out`, turns an error body into a Status (with the field payload).
  // `status`, when given, receives the HTTP status of a 2xx answer.
  absl::Status Call(const std::string& method, const std::string& path, const std::string& body,
                    google::protobuf::Message* out, int* status = nullptr);

  // Raw request: returns the HTTP status and sets `body`.
  absl::StatusOr<int> Raw(const std::string& method, const std::string& path,
                          const std::string& body, std::string* response_body);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace portolan::client
