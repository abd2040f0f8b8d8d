// SPDX-License-Identifier: Apache-2.0
// portolan-agent: runs on each data-centre node, connects out to the
// scheduler, reports its hwloc topology and runs the jobs it is assigned.
#include <pwd.h>
#include <sched.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <thread>

#include <openssl/ssl.h>
#include <boost/program_options.hpp>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "agent/agent_metrics.h"
#include "portolan/agent/client.h"
#include "portolan/base/files.h"
#include "portolan/base/log.h"
#include "portolan/base/logging.h"
#include "portolan/codec/codec.h"
#include "portolan/daemon/daemon.h"
#include "portolan/discovery/topology.h"
#include "portolan/executor/isolation.h"
#include "portolan/metrics/http.h"
#include "portolan/service/notify.h"
#include "portolan/tls/expiry.h"
#include "portolan/tls/tls.h"
#include "portolan/transfer/transfer.h"
#include "portolan/v1/config.pb.h"

namespace po = boost::program_options;
using namespace portolan;

namespace {

// The first directory on the way to `path` that `uid`/`gid` may not pass
// through (no search permission), as "DIR is mode NNNN owned by UID"; ""
// when every one is passable.
std::string UntraversableParent(const std::string& path, uid_t uid, gid_t gid) {
  std::filesystem::path p = std::filesystem::absolute(path);
  std::filesystem::path walked = "/";
  for (const auto& part : p.relative_path()) {
    walked /= part;
    struct stat st;
    if (stat(walked.c_str(), &st) != 0) return "";  // created later, by us
    mode_t need = st.st_uid == uid ? S_IXUSR : st.st_gid == gid ? S_IXGRP : S_IXOTH;
    if ((st.st_mode & need) == 0) {
      char mode[8];
      std::snprintf(mode, sizeof mode, "%04o", st.st_mode & 07777);
      return absl::StrCat(walked.string(), " is mode ", mode, " owned by uid ", st.st_uid);
    }
  }
  return "";
}

constexpr char kProgram[] = "portolan-agent";

// Every flag's value; each is documented in its option's help text and in
// docs/operations.md.
struct Flags {
  std::string config_file, id, site, scheduler_addr, state_dir, synthetic, xml, log_format,
      log_level, cgroup_mode, cgroup_parent, tls_cert, tls_key, tls_ca, metrics_addr, job_uid_range,
      sandbox_mode, job_init, run_as, data_dir, data_listen;
  std::vector<std::string> labels, tenant_users, sandbox_read_only, sandbox_hide;
  uint32_t job_pids_max = 4096;
  uint32_t memory_slack_percent = 0;
  uint32_t kill_grace_ms = 10000;
  uint32_t reconnect_max_ms = 10000;
  double attempt_dir_keep_hours = 24;
  uint32_t attempt_dir_keep_max = 10000;
  double staging_cache_max_gb = 100;
  bool insecure = false, print_topology = false, stop_jobs_on_exit = false;
};

po::options_description Describe(Flags& f) {
  po::options_description desc("portolan-agent options");
  // clang-format off
  desc.add_options()
      ("help,h", "show this help")
      ("version", "print the version")
      ("config", po::value(&f.config_file), "YAML or JSON config file (AgentConfig, e.g. /etc/portolan/agent.yaml); flags given here win over it")
      ("id", po::value(&f.id), "agent id (default: host name)")
      ("site", po::value(&f.site), "site this agent belongs to, e.g. lingang-idc-1 (required)")
      ("label", po::value(&f.labels)->composing(), "label key=value (repeatable)")
      ("scheduler", po::value(&f.scheduler_addr)->default_value("127.0.0.1:7081"), "the scheduler's agent RPC address; with several schedulers (high availability), all of them, comma-separated: the agent finds the leader")
      ("state-dir", po::value(&f.state_dir), "job working directories and logs (default: ./var/agent-<id>)")
      ("topology-synthetic", po::value(&f.synthetic), "emulate an hwloc synthetic topology, e.g. \"pack:2 numa:2(memory=64GiB) core:16 pu:2\"")
      ("topology-xml", po::value(&f.xml), "emulate the topology in an hwloc XML file")
("print-topology", "print the discovered topology and exit")
      ("cgroup", po::value(&f.cgroup_mode)->default_value("auto"), "cgroup per job with its limits: auto (v2 where its root offers the memory controller, else the v1 hierarchies), v1, v2, or none")
      ("cgroup-parent", po::value(&f.cgroup_parent), "job cgroups go under <hierarchy>/<this> (default: portolan/<agent id>)")
      ("job-pids-max", po::value(&f.job_pids_max)->default_value(4096), "processes and threads per job (pids.max; 0: no limit)")
      ("memory-slack-percent", po::value(&f.memory_slack_percent)->default_value(0), "memory limit = the job's memory_mb plus this percentage (0: exactly what it asked for)")
      ("job-uid-range", po::value(&f.job_uid_range), "each job attempt runs as a uid of its own from FIRST-LAST (default under root: 200000-265535; none: every job as --run-as)")
      ("tenant-user", po::value(&f.tenant_users)->composing(), "TENANT=USER: that tenant's jobs run as this existing account instead (repeatable)")
      ("sandbox", po::value(&f.sandbox_mode)->default_value("auto"), "auto: new PID, mount, IPC and UTS namespaces per job where the kernel allows (said at start); none")
      ("sandbox-read-only", po::value(&f.sandbox_read_only)->composing(), "path jobs see read-only (repeatable)")
      ("sandbox-hide", po::value(&f.sandbox_hide)->composing(), "path jobs see as an empty directory (repeatable; the state directory always is)")
      ("job-init", po::value(&f.job_init), "portolan-job-init, each job's supervisor and PID 1 of its namespace (default: beside the agent, or ../lib/portolan/)")
      ("stop-jobs-on-exit", "on SIGTERM/SIGINT stop the running jobs too (SIGTERM, SIGKILL after --kill-grace-ms); by default they keep running and the next agent process re-adopts them")
("kill-grace-ms", po::value(&f.kill_grace_ms)->default_value(10000), "SIGTERM to SIGKILL grace period for timeouts and cancels")
("reconnect-max-ms", po::value(&f.reconnect_max_ms)->default_value(10000), "longest wait between reconnection attempts (backoff starts at 200 ms and doubles)")
      ("attempt-dir-keep-hours", po::value(&f.attempt_dir_keep_hours)->default_value(24), "an ended job attempt's directory (its logs and working directory) stays this long after the scheduler has its end, then goes (0: at once)")
      ("attempt-dir-keep-max", po::value(&f.attempt_dir_keep_max)->default_value(10000), "at most this many ended attempts' directories stay, the newest (0: no limit)")
      ("data-dir", po::value(&f.data_dir), "the datasets at this agent's site live under this directory (a registered dataset's location.path is relative to it); jobs' inputs are linked from or served out of it")
      ("data-listen", po::value(&f.data_listen), "host:port of this agent's data endpoint, where agents at other sites pull datasets under transfer grants (mutual TLS with --tls-*); told to the scheduler as given")
      ("staging-cache-max-gb", po::value(&f.staging_cache_max_gb)->default_value(100), "the site's cache of inputs pulled from other sites (policy datasets.cache_sites, under --data-dir) holds at most this many GiB; the entries used longest ago go first (0: no bound)")
      ("tls-cert", po::value(&f.tls_cert), "this agent's certificate (PEM, CN = agent id, OU = site), from the CA the scheduler trusts; see deploy/dev-ca.sh")
      ("tls-key", po::value(&f.tls_key), "private key of --tls-cert (PEM)")
      ("tls-ca", po::value(&f.tls_ca), "CA certificate (PEM) that signed the scheduler's certificate")
      ("insecure", "connect over plain TCP without certificates (closed test networks only; logged as a warning)")
      ("run-as", po::value(&f.run_as), "user the jobs run as with --job-uid-range none (default: nobody when the agent runs as root, else the agent's own user)")
      ("metrics-addr", po::value(&f.metrics_addr), "serve Prometheus metrics at http://ADDR/metrics (off by default; e.g. 127.0.0.1:9464, port 0: any free port)")
      ("log-format", po::value(&f.log_format)->default_value("text"), "text or json")
      ("log-level", po::value(&f.log_level)->default_value("info"), "trace, debug, info, warn, error");
  // clang-format on
  return desc;
}

// Who the agent is and where it connects: --site, --id, --label, --scheduler.
absl::Status Identify(Flags& f, agent::AgentOptions& opts) {
  if (f.site.empty())
    return absl::InvalidArgumentError("--site is required (e.g. --site lingang-idc-1)");
  if (f.id.empty()) {
    char host[256] = {0};
    gethostname(host, sizeof host - 1);
    f.id = host;
  }
  opts.id = f.id;
  opts.site = f.site;
  for (const std::string& l : f.labels) {
    size_t eq = l.find('=');
    if (eq == std::string::npos || eq == 0)
      return absl::InvalidArgumentError(absl::StrCat("--label '", l, "': expected key=value"));
    opts.labels.emplace(l.substr(0, eq), l.substr(eq + 1));  // command line first: it wins
  }
  opts.schedulers.clear();
  for (absl::string_view a : absl::StrSplit(f.scheduler_addr, ',')) {
    auto hp = base::ParseHostPort(std::string(absl::StripAsciiWhitespace(a)));
    if (!hp.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--scheduler '", a, "': ", hp.status().message()));
    }
    opts.schedulers.push_back(*hp);
  }
  return absl::OkStatus();
}

// The state directory, private to the agent (umask 077 for all it writes).
absl::Status PrepareStateDir(Flags& f, agent::AgentOptions& opts) {
  if (f.state_dir.empty()) f.state_dir = absl::StrCat("./var/agent-", f.id);
  umask(077);
  if (absl::Status st = daemon::CheckSecrets({{"--tls-key", f.tls_key}}); !st.ok()) return st;
  f.state_dir = std::filesystem::absolute(f.state_dir).lexically_normal().string();
  for (const std::string& d : {f.state_dir, f.state_dir + "/jobs"}) {
    if (absl::Status st = daemon::MakeStatePrivate(d); !st.ok())
      return absl::InvalidArgumentError(absl::StrCat("state directory: ", st.message()));
  }
  opts.executor.work_root = std::filesystem::absolute(f.state_dir + "/jobs").string();
  if (!(f.attempt_dir_keep_hours >= 0 && f.attempt_dir_keep_hours <= 1e6))
    return absl::InvalidArgumentError("--attempt-dir-keep-hours must be 0 to 1000000");
  opts.executor.keep_attempt_dirs = absl::Hours(f.attempt_dir_keep_hours);
  opts.executor.keep_attempt_dirs_max = f.attempt_dir_keep_max;
  if (!(f.staging_cache_max_gb >= 0 && f.staging_cache_max_gb <= 1e9))
    return absl::InvalidArgumentError("--staging-cache-max-gb must be 0 to 1000000000");
  opts.staging_cache_max_bytes = static_cast<uint64_t>(f.staging_cache_max_gb * (1ull << 30));
  return absl::OkStatus();
}

// What really exists here, to bind only that (an emulated topology may be larger).
void DescribeMachine(const v1::Topology& topology, agent::AgentOptions& opts) {
  auto machine = topology.source() == "hwloc" ? absl::StatusOr<v1::Topology>(topology)
                                              : discovery::DiscoverTopology({});
  cpu_set_t mine;
  CPU_ZERO(&mine);
  const bool have_affinity = sched_getaffinity(0, sizeof mine, &mine) == 0;
  if (machine.ok()) {
    for (const v1::Core& c : machine->cores()) {
      for (uint32_t pu : c.pus()) {
        if (!have_affinity || (pu < CPU_SETSIZE && CPU_ISSET(pu, &mine)))
          opts.executor.machine_pus.push_back(pu);
      }
    }
    for (const v1::NumaNode& n : machine->numa_nodes())
      opts.executor.machine_numa_nodes.push_back(n.os_index());
  }
  opts.executor.machine_has_gpus = topology.gpus_size() > 0;
  opts.executor.machine_gpus.assign(topology.gpus().begin(), topology.gpus().end());
  if (topology.source() == "hwloc")
    opts.rediscover = [] { return discovery::DiscoverTopology({}); };
}

// A cgroup per job with its limits (--cgroup, --cgroup-parent, --job-pids-max, ...).
absl::Status ConfigureCgroups(Flags& f, agent::AgentOptions& opts) {
  if (f.cgroup_parent.empty()) f.cgroup_parent = absl::StrCat("portolan/", f.id);
  std::string why;
  auto cg = executor::OpenCgroups(f.cgroup_mode, "/proc/self/mounts", f.cgroup_parent, &why);
  if (!cg.ok())
    return absl::InvalidArgumentError(
        absl::StrCat("--cgroup ", f.cgroup_mode, ": ", cg.status().message()));
  if (*cg) {
    spdlog::info("job limits: {}", (*cg)->Describe());
    opts.executor.cgroups = std::move(*cg);
  } else {
    spdlog::warn(
        "job limits: no cgroup ({}); jobs are bound with affinity and memory policy "
        "only, and their memory is not limited",
        why);
  }
  opts.executor.pids_max = f.job_pids_max;
  opts.executor.memory_slack_percent = static_cast<int>(f.memory_slack_percent);
  opts.executor.kill_grace = absl::Milliseconds(f.kill_grace_ms);
  return absl::OkStatus();
}

absl::StatusOr<struct passwd> LookupUser(const std::string& flag, const std::string& name) {
  struct passwd* pw = getpwnam(name.c_str());
  if (pw == nullptr) return absl::NotFoundError(absl::StrCat(flag, ": no user '", name, "'"));
  if (pw->pw_uid == 0)
    return absl::InvalidArgumentError(
        absl::StrCat(flag, " ", name, ": refusing to run jobs as root"));
  return *pw;
}

// Whom jobs run as: a uid per attempt (--job-uid-range), accounts for some
// tenants (--tenant-user), or one account (--run-as; never root).
absl::Status ConfigureIdentities(Flags& f, agent::AgentOptions& opts) {
  const bool root = geteuid() == 0;
  for (const std::string& tu : f.tenant_users) {
    size_t eq = tu.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == tu.size())
      return absl::InvalidArgumentError(
          absl::StrCat("--tenant-user '", tu, "': expected TENANT=USER"));
    auto pw = LookupUser("--tenant-user", tu.substr(eq + 1));
    if (!pw.ok()) return pw.status();
    if (!root) return absl::InvalidArgumentError("--tenant-user needs the agent to run as root");
    opts.executor.tenant_users[tu.substr(0, eq)] = {pw->pw_uid, pw->pw_gid};
  }
  if (f.job_uid_range.empty()) f.job_uid_range = root ? "200000-265535" : "none";
  if (f.job_uid_range != "none") {
    if (!root)
      return absl::InvalidArgumentError(
          "--job-uid-range needs the agent to run as root (or --job-uid-range none)");
    auto range = executor::ParseUidRange(f.job_uid_range);
    // /run/portolan-agent holds one lock file per agent's range on this host.
    auto pool = range.ok()
                    ? executor::UidPool::Create(range->first, range->second, "/run/portolan-agent")
                    : absl::StatusOr<std::unique_ptr<executor::UidPool>>(range.status());
    if (!pool.ok())
      return absl::InvalidArgumentError(absl::StrCat("--job-uid-range: ", pool.status().message()));
    // Processes under these uids that no attempt record accounts for are
    // killed by the executor's recovery, before the agent registers.
    opts.executor.uids = std::move(*pool);
    return absl::OkStatus();
  }
  if (f.run_as.empty() && root) f.run_as = "nobody";  // never run jobs as root
  if (f.run_as.empty()) return absl::OkStatus();
  auto pw = LookupUser("--run-as", f.run_as);
  if (!pw.ok()) return pw.status();
  if (!root && pw->pw_uid != geteuid())
    return absl::InvalidArgumentError(
        absl::StrCat("--run-as ", f.run_as, " needs the agent to run as root"));
  if (root) {
    opts.executor.run_uid = static_cast<int>(pw->pw_uid);
    opts.executor.run_gid = static_cast<int>(pw->pw_gid);
  }
  return absl::OkStatus();
}

// In the sandbox a job cannot open the device nodes of GPUs it was not given.
absl::Status DenyOtherJobsGpus(const Flags& f, agent::AgentOptions& opts) {
  opts.executor.gpu_nodes = executor::NvidiaDeviceNodes(opts.executor.machine_gpus);
  if (opts.executor.gpu_nodes.empty()) return absl::OkStatus();
  auto deny = executor::MakeDenySource(f.state_dir + "/denied-device");
  if (!deny.ok()) return deny.status();
  opts.executor.deny_source = *deny;
  spdlog::info("GPUs: a job can open only the device nodes of its own GPUs of {}",
               executor::DescribeGpuNodes(opts.executor.gpu_nodes));
  return absl::OkStatus();
}

// Every job under portolan-job-init (which keeps its exit status for a
// restarted agent; its attempts recorded under the state dir) and, with
// --sandbox auto where the kernel allows, in namespaces of its own.
absl::Status ConfigureSandbox(Flags& f, agent::AgentOptions& opts) {
  if (f.sandbox_mode != "auto" && f.sandbox_mode != "none")
    return absl::InvalidArgumentError(
        absl::StrCat("--sandbox '", f.sandbox_mode, "': expected auto or none"));
  if (f.job_init.empty()) f.job_init = executor::FindJobInit();
  if (f.job_init.empty() || access(f.job_init.c_str(), X_OK) != 0) {
    spdlog::warn(
        "portolan-job-init not found{}{} (--job-init): jobs run as the agent's own children and "
        "die with it; no sandbox",
        f.job_init.empty() ? "" : " at ", f.job_init);
  } else {
    opts.executor.job_init = f.job_init;
    opts.executor.records_dir = f.state_dir + "/attempts";
    opts.executor.keep_running_on_exit = !f.stop_jobs_on_exit;
  }
  if (f.sandbox_mode != "auto" || opts.executor.job_init.empty()) return absl::OkStatus();
  executor::SandboxSupport sb = executor::ProbeSandbox();
  if (!sb.namespaces) {
    spdlog::warn("sandbox off: {}; jobs share the agent's PID and mount namespaces", sb.why);
    return absl::OkStatus();
  }
  opts.executor.sandbox = true;
  opts.executor.hide = {f.state_dir};
  for (const std::string& h : f.sandbox_hide)
    opts.executor.hide.push_back(std::filesystem::absolute(h).lexically_normal().string());
  for (const std::string& r : f.sandbox_read_only)
    opts.executor.read_only.push_back(std::filesystem::absolute(r).lexically_normal().string());
  spdlog::info(
      "sandbox: each job in its own PID, mount, IPC and UTS namespaces (init {}), own /proc, "
      "private /tmp, /var/tmp and /dev/shm; hidden: {}{}{}",
      f.job_init, absl::StrJoin(opts.executor.hide, ", "),
      opts.executor.read_only.empty() ? "" : "; read-only: ",
      absl::StrJoin(opts.executor.read_only, ", "));
  return DenyOtherJobsGpus(f, opts);
}

// Jobs under another uid must be able to reach their working directories.
absl::Status CheckJobsReachState(const Flags& f, const agent::AgentOptions& opts) {
  const bool other_uid =
      opts.executor.uids || opts.executor.run_uid >= 0 || !opts.executor.tenant_users.empty();
  if (!other_uid) return absl::OkStatus();
  std::string blocked, target;
  if (!opts.executor.sandbox) {
    // Without a mount namespace the jobs reach their directories through the
    // state directory: let them pass (not list) it.
    for (const std::string& d : {f.state_dir, f.state_dir + "/jobs"}) chmod(d.c_str(), 0711);
    spdlog::warn("without the sandbox, {} is mode 0711 so that jobs can reach their directories",
                 f.state_dir);
    target = opts.executor.work_root;
    blocked = UntraversableParent(target, 65534, 65534);
  } else {
    target = f.state_dir;
    blocked = UntraversableParent(std::filesystem::path(f.state_dir).parent_path().string(), 65534,
                                  65534);
  }
  if (blocked.empty()) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("jobs cannot reach ", target, ": ", blocked,
                   "; choose a --state-dir they can reach (e.g. under /var/lib) or chmod o+x it"));
}

// Attempts an earlier run of this agent started: re-adopted, or reported as
// ended; whatever no record accounts for is killed. Before registering.
absl::Status RecoverEarlierAttempts(agent::AgentClient& client) {
  auto recovered = client.Recover();
  if (!recovered.ok()) return recovered.status();
  if (recovered->old_attempt_dirs > 0) {
    spdlog::info(
        "{} ended attempts' directories left by an earlier agent process; removed as "
        "--attempt-dir-keep-hours and --attempt-dir-keep-max say",
        recovered->old_attempt_dirs);
  }
  if (recovered->adopted + recovered->ended + recovered->killed_uids + recovered->killed_cgroups >
          0 ||
      !recovered->problems.empty()) {
    spdlog::info(
        "after the previous agent process: {} running job attempt(s) re-adopted, {} that ended "
        "meanwhile to report, {} unaccounted job uid(s) and {} job cgroup(s) killed, {} "
        "unreadable record(s)",
        recovered->adopted, recovered->ended, recovered->killed_uids, recovered->killed_cgroups,
        recovered->problems.size());
  }
  return absl::OkStatus();
}

// The data endpoint (--data-listen) serving --data-dir to agents at other
// sites under transfer grants; null without --data-listen. Sets
// opts.data_endpoint to the address it listens on.
absl::StatusOr<std::unique_ptr<transfer::DataServer>> StartDataServer(
    const Flags& f, agent::AgentOptions& opts, std::atomic<agent::AgentClient*>& client) {
  opts.data_dir = f.data_dir.empty() ? "" : std::filesystem::absolute(f.data_dir).string();
  if (f.data_listen.empty()) return nullptr;
  if (f.data_dir.empty() || f.tls_cert.empty() || f.tls_key.empty() || f.tls_ca.empty()) {
    return absl::InvalidArgumentError(
        "--data-listen needs --data-dir and --tls-cert, --tls-key, --tls-ca: agents pull data "
        "from each other over mutual TLS only");
  }
  auto ctx = tls::MakeServerContext({f.tls_cert, f.tls_key, f.tls_ca});
  if (!ctx.ok()) return ctx.status();
  transfer::ServerOptions so;
  so.site = f.site;
  so.data_dir = opts.data_dir;
  so.keys = [&client] {
    agent::AgentClient* c = client.load();
    return c != nullptr ? c->GrantKeys() : grant::PublicKeys{};
  };
  so.on_served = [&client](const v1::ServedTransfer& t) {
    if (agent::AgentClient* c = client.load()) c->ReportServed(t);
  };
  auto server = transfer::DataServer::Start(f.data_listen, *ctx, so);
  if (!server.ok()) return server.status();
  auto hp = base::ParseHostPort(f.data_listen);
  opts.data_endpoint = absl::StrCat(hp->host, ":", (*server)->port());
  spdlog::info("data endpoint {} serving {} to agents at other sites under transfer grants",
               opts.data_endpoint, opts.data_dir);
  return server;
}

// Runs the agent until SIGTERM/SIGINT, or until the scheduler refuses it
// (exit status 3); returns the exit status.
int Serve(const Flags& f, agent::AgentOptions opts, const v1::Topology& topology,
          const sigset_t& signals) {
  metrics::Registry registry;
  agent::AgentMetrics agent_metrics(registry);
  opts.on_update = agent_metrics.OnUpdate();
  boost::asio::io_context io;
  int exit_code = 0;
  // The data endpoint first (its port, when chosen by the system, is told to
  // the scheduler); it reaches the client once that exists.
  std::atomic<agent::AgentClient*> client_ptr{nullptr};
  auto data_server = StartDataServer(f, opts, client_ptr);
  if (!data_server.ok()) return daemon::Fail(kProgram, std::string(data_server.status().message()));
  agent::AgentClient client(io, opts, topology, [&](const std::string& reason) {
    exit_code = 3;
    client.Stop();
    io.stop();
  });
  client_ptr = &client;
  // The data endpoint stops (waiting for its transfers) before the client
  // they report to goes.
  absl::Cleanup stop_data = [&] {
    client_ptr = nullptr;
    if (data_server.ok()) data_server->reset();
  };
  registry.OnScrape([&] { agent_metrics.Refresh(client); });
  tls::AddCertificateExpiryMetric(registry, {{"agent_rpc", f.tls_cert}});
  std::unique_ptr<metrics::HttpServer> metrics_server;
  if (!f.metrics_addr.empty()) {
    auto hp = base::ParseHostPort(f.metrics_addr);
    if (!hp.ok())
      return daemon::Fail(kProgram, absl::StrCat("--metrics-addr: ", hp.status().message()));
    metrics_server = std::make_unique<metrics::HttpServer>(io, &registry);
    if (absl::Status st = metrics_server->Listen(*hp); !st.ok())
      return daemon::Fail(kProgram, std::string(st.message()));
    spdlog::info("metrics at http://{}/metrics", metrics_server->bound().ToString());
  }
  if (absl::Status st = RecoverEarlierAttempts(client); !st.ok())
    return daemon::Fail(kProgram, std::string(st.message()));
  boost::asio::post(io, [&] { client.Start(); });
  // Under systemd: ready once the loop runs (the scheduler may be away for a
  // while; STATUS says whether it is registered); watchdog pings from the io
  // thread, so a wedged loop gets the agent restarted.
  const absl::Duration watchdog = service::WatchdogInterval();
  bool was_registered = false;
  daemon::PeriodicTask status(
      io,
      watchdog > absl::ZeroDuration() ? std::min(watchdog / 4, absl::Seconds(1)) : absl::Seconds(1),
      [&] {
        if (client.registered() == was_registered) return;
        was_registered = client.registered();
        service::Status(was_registered ? "registered with the scheduler"
                                       : "connecting to the scheduler");
      });
  boost::asio::post(io, [&] {
    service::Ready("connecting to the scheduler");
    status.Start();
  });
  auto guard = boost::asio::make_work_guard(io);
  std::thread io_thread([&] { io.run(); });

  // A signal, or the io loop ending on its own (registration refused).
  std::thread waiter([&] {
    int sig = 0;
    sigwait(&signals, &sig);
    if (opts.executor.keep_running_on_exit) {
      spdlog::info(
          "received signal {}; shutting down and leaving running jobs running (the next agent "
          "process re-adopts them; --stop-jobs-on-exit stops them instead)",
          sig);
    } else {
      spdlog::info("received signal {}; stopping running jobs and shutting down", sig);
    }
    service::Stopping();
    boost::asio::post(io, [&] {
      status.Cancel();
      client.Stop();
      io.stop();
    });
  });
  io_thread.join();
  if (exit_code != 0) {
    spdlog::critical("exiting: the scheduler refused this agent");
    std::_Exit(exit_code);  // the signal waiter thread cannot be joined
  }
  waiter.join();
  spdlog::info("portolan-agent stopped");
  return exit_code;
}

}  // namespace

int main(int argc, char** argv) {
  // OpenSSL initialises once, on the main thread: done lazily it happens on
  // whichever thread first hashes a token, and that thread's error state
  // (which lives until the thread ends) would never be released.
  OPENSSL_init_ssl(OPENSSL_INIT_LOAD_CONFIG, nullptr);
  Flags f;
  po::options_description desc = Describe(f);
  po::variables_map vm;
  if (auto done = daemon::ParseCommandLine<v1::AgentConfig>(
          argc, argv, kProgram, desc, vm, {{"labels", "label"}, {"tenant_users", "tenant-user"}}))
    return *done;
  f.insecure = vm.count("insecure") > 0;
  f.stop_jobs_on_exit = vm.count("stop-jobs-on-exit") > 0;
  std::string left_out;
  auto topology = discovery::DiscoverTopology({f.synthetic, f.xml}, &left_out);
  if (!topology.ok())
    return daemon::Fail(kProgram,
                        absl::StrCat("cannot use topology: ", topology.status().message()));
  if (vm.count("print-topology")) {
    std::cout << discovery::DescribeTopology(*topology);
    if (!left_out.empty()) std::cout << "left out: " << left_out << "\n";
    return 0;
  }
  if (absl::Status st = base::SetupLogging(f.log_format, f.log_level, "agent"); !st.ok())
    return daemon::Fail(kProgram, std::string(st.message()));
  if (!left_out.empty()) spdlog::warn("topology: {}", left_out);
  agent::AgentOptions opts;
  absl::Status st = Identify(f, opts);
  if (st.ok()) {
    auto tls = daemon::AgentProtocolTls({f.tls_cert, f.tls_key, f.tls_ca}, f.insecure, false);
    if (tls.ok()) opts.tls = *tls;
    st = tls.status();
  }
  if (st.ok()) st = PrepareStateDir(f, opts);
  if (st.ok()) DescribeMachine(*topology, opts);
  // Isolation, probed and said at start (docs/security.md).
  if (st.ok()) st = ConfigureCgroups(f, opts);
  if (st.ok()) st = ConfigureIdentities(f, opts);
  if (st.ok()) st = ConfigureSandbox(f, opts);
  if (st.ok()) st = CheckJobsReachState(f, opts);
  if (!st.ok()) return daemon::Fail(kProgram, std::string(st.message()));
  spdlog::info("isolation: {}",
               executor::IsolationSummary(executor::DescribeIsolation(opts.executor)));
  opts.reconnect_max = absl::Milliseconds(std::max<uint32_t>(f.reconnect_max_ms, 200));
  const sigset_t signals = daemon::BlockSignals({SIGINT, SIGTERM});
  spdlog::info("portolan-agent {} starting: id {} site {} topology {} ({} PUs, {} MiB, {} GPUs)",
               PORTOLAN_VERSION, f.id, f.site, topology->source(), topology->pus(),
               topology->memory_mb(), topology->gpus_size());
  return Serve(f, std::move(opts), *topology, signals);
}
