// SPDX-License-Identifier: Apache-2.0
#pragma once

#include "../support/uid_block.h"

// Starts the real portolan-scheduler / portolan-agent binaries on loopback
// (port 0) for integration tests, and stops exactly the processes it started.
#include <sys/types.h>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "portolan/client/client.h"
#include "portolan/codec/codec.h"

namespace portolan::testing {

class Process {
 public:
  Process(std::vector<std::string> argv, const std::string& log_path);
  ~Process();  // SIGKILL if still running
  pid_t pid() const { return pid_; }
  bool running();
  void Signal(int sig);
  // Waits (bounded) for exit; returns the wait status or -1 on timeout.
  int Wait(std::chrono::milliseconds timeout);
  std::string log_path() const { return log_path_; }

 private:
  pid_t pid_ = -1;
  bool reaped_ = false;
  std::string log_path_;
};

// Polls `pred` every 50 ms until it holds or `timeout` passes.
bool WaitFor(const std::function<bool()>& pred, std::chrono::milliseconds timeout);

// The host pid of a job's top process, from its `running` event ("started as
// pid N"; the init of its PID namespace when sandboxed); 0 when none shows
// within 20 s. Tests use it to find, check and clean up processes.
pid_t PrintedPid(client::Client& c, const std::string& job_id);

// A job spec running `cmd` with `cpus` PUs and 64 MiB (tenant "" = default).
v1::Job JobSpec(std::vector<std::string> cmd, int cpus = 1, const std::string& tenant = "");
// True when job `id` is in `state` now / within `timeout`.
bool InState(client::Client& c, const std::string& id, v1::Job::State state);
bool WaitForState(client::Client& c, const std::string& id, v1::Job::State state,
                  std::chrono::milliseconds timeout = std::chrono::seconds(20));

// A raw TCP connection to 127.0.0.1:port (expected to succeed), or -1.
int ConnectLoopback(uint16_t port);

// True when the server closed the connection (read returns 0 or an error
// within 10 s).
bool ClosedByServer(int fd);

class Cluster {
 public:
  Cluster();  // fresh temp directory per test
  ~Cluster();

  // Starts the scheduler; `rpc_port` 0 picks one. Waits until /readyz.
  void StartScheduler(uint16_t rpc_port = 0, std::vector<std::string> extra = {});
  void StopScheduler();  // SIGTERM and wait
  void KillScheduler();  // SIGKILL and wait: a crash
  void SignalScheduler(int sig);
  // `synthetic` "" runs the agent on the real machine's topology.
  Process* StartAgent(const std::string& id, const std::string& site,
                      const std::string& synthetic = "pack:1 numa:1(memory=16GiB) core:4 pu:2",
                      const std::vector<std::string>& extra = {});
  // Test credentials (the harness writes their hashes to tokens.yaml).
  static constexpr const char* kAdminToken = "it-admin-token";
  static constexpr const char* kAcmeToken = "it-acme-token";      // tenant acme
  static constexpr const char* kGlobexToken = "it-globex-token";  // tenant globex
  static constexpr const char* kOperatorToken = "it-op-lingang";  // operator of lingang-idc-1
  static constexpr const char* kOfficerToken = "it-officer-lee";  // data officer "lee"
  // Mutual TLS on the agent RPC and HTTPS on REST, with certificates from
  // deploy/dev-ca.sh under pki(); call before StartScheduler. Without it the
  // daemons run with --insecure.
  void EnableTls();
  bool tls() const { return tls_; }
  std::string pki() const { return dir_ + "/pki"; }
  // Runs deploy/dev-ca.sh pki() ARGS; throws on failure.
  void RunDevCa(const std::string& args) const;
  // Issues (once) pki()/agent-ID.{pem,key} for `id` at `site`; returns the
  // path without extension.
  std::string AgentCert(const std::string& id, const std::string& site) const;
  // A --job-uid-range for agent `id` that no other agent on this machine
  // holds (the same one across restarts of `id`); StartAgent passes it.
  std::string JobUidRange(const std::string& id);
  // The --cgroup-parent StartAgent passes for agent `id` (as root): one of
  // this test's own, so that tests running at once never share one.
  std::string CgroupParent(const std::string& id) const;
  // Kills every job process of this cluster's agents that outlived them
  // (jobs keep running when an agent stops: a restarted agent re-adopts
  // them) and removes their cgroups. The destructor calls it.
  void SweepJobs();
  // A directory every job on this machine's agents can write to and the
  // test can read: outside /tmp, which each sandboxed job gets its own of
  // (/run/portolan-it/... as root, else under dir()). Removed with the cluster.
  std::string SharedDir();
  client::Client& client() { return *client_; }  // as admin
  std::unique_ptr<client::Client> ClientWith(const std::string& token) const;
  std::string tokens_path() const { return dir_ + "/tokens.yaml"; }
  std::string base_url() const {
    return (tls_ ? "https://127.0.0.1:" : "http://127.0.0.1:") + std::to_string(rest_port_);
  }
  uint16_t rest_port() const { return rest_port_; }
  pid_t scheduler_pid() const { return scheduler_ ? scheduler_->pid() : -1; }
  uint16_t rpc_port() const { return rpc_port_; }
  const std::string& dir() const { return dir_; }
  std::string SchedulerLog() const;

  // --- several schedulers sharing an etcd store (high availability) ---
  // Starts member `i` (0, 1, ...) with --store `store_url`: ports chosen on
  // its first start and kept across restarts; returns once its ports file
  // exists (a standby is never ready). client() then knows every member's
  // URL, and agents started afterwards get every member's RPC address.
  void StartMember(int i, const std::string& store_url, std::vector<std::string> extra = {});
  Process* member(int i) { return members_.at(i).process.get(); }
  // The member whose /readyz answers 200 (the leader), -1 if none within `timeout`.
  int WaitForLeader(std::chrono::milliseconds timeout = std::chrono::seconds(20));
  std::string MemberLog(int i) const;
  uint16_t member_rest_port(int i) const { return members_.at(i).rest; }

 private:
  std::string dir_;
  std::vector<std::string> SchedulerArgv(const std::string& ports, const std::string& rest_addr,
                                         const std::string& rpc_addr,
                                         std::vector<std::string> extra) const;
  // --scheduler for agents: the one scheduler's RPC address, or every member's.
  std::string SchedulerAddresses() const;
  std::unique_ptr<Process> scheduler_;
  struct Member {
    std::unique_ptr<Process> process;
    uint16_t rest = 0, rpc = 0;
    int starts = 0;
  };
  std::vector<Member> members_;
  std::vector<std::unique_ptr<Process>> agents_;
  // Job uids per agent id (kept across restarts of the same agent).
  std::map<std::string, std::unique_ptr<UidBlock>> uid_blocks_;
  std::set<std::string> agent_ids_;
  std::string shared_dir_;
  std::unique_ptr<client::Client> client_;
  uint16_t rest_port_ = 0;
  uint16_t rpc_port_ = 0;
  int scheduler_starts_ = 0;
  bool tls_ = false;
};

// Runs the CLI against `c` as admin; {exit code, stdout} (and stderr with
// `with_stderr`).
std::pair<int, std::string> Cli(const Cluster& c, const std::string& args,
                                bool with_stderr = false);

// One REST call as the admin, expecting status `want`; the body parsed as M
// (test failures name the call and the body).
template <typename M>
M Call(Cluster& c, const std::string& method, const std::string& path, const std::string& body = "",
       int want = 200) {
  std::string out;
  auto code = c.client().Raw(method, path, body, &out);
  EXPECT_TRUE(code.ok()) << code.status();
  if (code.ok()) {
    EXPECT_EQ(*code, want) << method << " " << path << ": " << out;
  }
  M m;
  absl::Status st = codec::ParseJson(out, &m);
  EXPECT_TRUE(st.ok()) << st << ": " << out;
  return m;
}

}  // namespace portolan::testing
