// SPDX-License-Identifier: Apache-2.0
#pragma once

// The CLI's human-readable output (-o table): one printer per answer of the
// REST API, writing to a stream so that tests check them without a server.
// Times are shown in the local time zone. -o json|yaml prints the messages
// themselves instead (cli.h, Emit).
#include <ostream>
#include <string>

#include "absl/time/civil_time.h"
#include "portolan/v1/agent.pb.h"
#include "portolan/v1/api.pb.h"
#include "portolan/v1/cluster.pb.h"
#include "portolan/v1/job.pb.h"
#include "portolan/v1/policy.pb.h"
#include "portolan/v1/simulate.pb.h"

namespace portolan::cli {

// "2026-12-02 18:31:00" in local time; "-" for an unset time.
std::string Short(const google::protobuf::Timestamp& ts);
// The exit code column: only for jobs whose process ended.
std::string ExitColumn(const v1::Job& j);
// `v` with `prec` decimals; "-" for a negative value (unknown).
std::string Fixed(double v, int prec = 1);
// Whether a job in state `s` will not change any more.
bool Terminal(v1::Job::State s);

void PrintJobsTable(std::ostream& out, const v1::ListJobsResponse& list);
// `tasks ID`: an array's tasks, as the jobs table.
void PrintTasksTable(std::ostream& out, const v1::ListTasksResponse& list);
void PrintJob(std::ostream& out, const v1::Job& j);
// A text picture of the agent's machine, like lstopo, with the job holding
// each PU (and GPU) and a legend.
void DrawAgent(std::ostream& out, const v1::Agent& a);
void PrintAgentsTable(std::ostream& out, const v1::ListAgentsResponse& list);
// A placement decision: the winner and its scores, or why none, then the
// site table (allowed, rule, RTT, transfer time, agents feasible, why not).
// `ended`: for the decision of a job that ended without a placement, how it
// ended ("cancelled"), so the headline does not promise one "yet".
void PrintDecision(std::ostream& out, const v1::Decision& d, const std::string& ended = "");
void PrintValidation(std::ostream& out, const std::string& file, const v1::ValidationResult& r);
void PrintPolicyVersions(std::ostream& out, const v1::ListPolicyVersionsResponse& r);
void PrintLink(std::ostream& out, const v1::Link& l);
// Links, the shortest-RTT matrix over links that are up, measured RTTs.
void PrintNetwork(std::ostream& out, const v1::NetworkView& n);
// datasets.cc: a job's staged inputs and outputs; measured staging throughput.
void PrintJobData(std::ostream& out, const v1::Job& j);
void PrintMeasuredPaths(std::ostream& out, const v1::NetworkView& n);
void PrintSites(std::ostream& out, const v1::ListSitesResponse& r);
void PrintCluster(std::ostream& out, const v1::ClusterView& v);
// Instruments of `r` with the days left from `today` (negative: expired).
void PrintExpiringInstruments(std::ostream& out, const v1::ListTenantsResponse& r, int days,
                              absl::CivilDay today);
// `tenant usage ID`: use against quota, in total and per site.
// One tenant profile: its zones, flags and quota, then its instruments.
void PrintTenant(std::ostream& out, const v1::Tenant& t);
void PrintTenantUsage(std::ostream& out, const v1::TenantUsage& u);
void PrintTenants(std::ostream& out, const v1::ListTenantsResponse& r);
void PrintAudit(std::ostream& out, const v1::ListAuditResponse& r);
void PrintViolations(std::ostream& out, const v1::ListViolationsResponse& r);
// A policy what-if: the summary, then a table of the changed jobs.
void PrintSimulation(std::ostream& out, const v1::SimulateResponse& r);

}  // namespace portolan::cli
