// portolan-agent: runs on each data-centre node, connects out to the
// scheduler, reports its hwloc topology and runs the jobs it is assigned.
#include <pwd.h>
#include <sched.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <iostream>
#include <thread>

#include <openssl/ssl.h>
#include <boost/program_options.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "portolan/agent_client.h"
#include "portolan/codec.h"
#include "portolan/config_flags.h"
#include "portolan/files.h"
#include "portolan/isolation.h"
#include "portolan/log.h"
#include "portolan/logging.h"
#include "portolan/metrics_http.h"
#include "portolan/service_notify.h"
#include "portolan/topology.h"
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

}  // namespace

int main(int argc, char** argv) {
  // OpenSSL initialises once, on the main thread: done lazily it happens on
  // whichever thread first hashes a token, and that thread's error state
  // (which lives until the thread ends) would never be released.
  OPENSSL_init_ssl(OPENSSL_INIT_LOAD_CONFIG, nullptr);
  std::string config_file, id, site, scheduler_addr, state_dir, synthetic, xml, log_format,
      log_level, cgroup_mode, cgroup_parent, tls_cert, tls_key, tls_ca, metrics_addr, job_uid_range,
      sandbox_mode, job_init;
  std::vector<std::string> labels, tenant_users, sandbox_read_only, sandbox_hide;
  uint32_t job_pids_max = 4096;
  uint32_t memory_slack_percent = 0;
  uint32_t kill_grace_ms = 10000;
  uint32_t reconnect_max_ms = 10000;
  std::string run_as;
  po::options_description desc("portolan-agent options");
  // clang-format off
  desc.add_options()
      ("help,h", "show this help")
      ("version", "print the version")
      ("config", po::value(&config_file), "YAML or JSON config file (AgentConfig, e.g. /etc/portolan/agent.yaml); flags given here win over it")
      ("id", po::value(&id), "agent id (default: host name)")
      ("site", po::value(&site), "site this agent belongs to, e.g. lingang-idc-1 (required)")
      ("label", po::value(&labels)->composing(), "label key=value (repeatable)")
      ("scheduler", po::value(&scheduler_addr)->default_value("127.0.0.1:7081"), "scheduler agent RPC address")
      ("state-dir", po::value(&state_dir), "job working directories and logs (default: ./var/agent-<id>)")
      ("topology-synthetic", po::value(&synthetic), "emulate an hwloc synthetic topology, e.g. \"pack:2 numa:2(memory=64GiB) core:16 pu:2\"")
      ("topology-xml", po::value(&xml), "emulate the topology in an hwloc XML file")
("print-topology", "print the discovered topology and exit")
      ("cgroup", po::value(&cgroup_mode)->default_value("auto"), "cgroup per job with its limits: auto (v2 where its root offers the memory controller, else the v1 hierarchies), v1, v2, or none")
      ("cgroup-parent", po::value(&cgroup_parent), "job cgroups go under <hierarchy>/<this> (default: portolan/<agent id>)")
      ("job-pids-max", po::value(&job_pids_max)->default_value(4096), "processes and threads per job (pids.max; 0: no limit)")
      ("memory-slack-percent", po::value(&memory_slack_percent)->default_value(0), "memory limit = the job's memory_mb plus this percentage (0: exactly what it asked for)")
      ("job-uid-range", po::value(&job_uid_range), "each job attempt runs as a uid of its own from FIRST-LAST (default under root: 200000-265535; none: every job as --run-as)")
      ("tenant-user", po::value(&tenant_users)->composing(), "TENANT=USER: that tenant's jobs run as this existing account instead (repeatable)")
      ("sandbox", po::value(&sandbox_mode)->default_value("auto"), "auto: new PID, mount, IPC and UTS namespaces per job where the kernel allows (said at start); none")
      ("sandbox-read-only", po::value(&sandbox_read_only)->composing(), "path jobs see read-only (repeatable)")
      ("sandbox-hide", po::value(&sandbox_hide)->composing(), "path jobs see as an empty directory (repeatable; the state directory always is)")
      ("job-init", po::value(&job_init), "portolan-job-init, each job's supervisor and PID 1 of its namespace (default: beside the agent, or ../lib/portolan/)")
      ("stop-jobs-on-exit", "on SIGTERM/SIGINT stop the running jobs too (SIGTERM, SIGKILL after --kill-grace-ms); by default they keep running and the next agent process re-adopts them")
("kill-grace-ms", po::value(&kill_grace_ms)->default_value(10000), "SIGTERM to SIGKILL grace period for timeouts and cancels")
("reconnect-max-ms", po::value(&reconnect_max_ms)->default_value(10000), "longest wait between reconnection attempts (backoff starts at 200 ms and doubles)")
      ("tls-cert", po::value(&tls_cert), "this agent's certificate (PEM, CN = agent id, OU = site), from the CA the scheduler trusts; see deploy/dev-ca.sh")
      ("tls-key", po::value(&tls_key), "private key of --tls-cert (PEM)")
      ("tls-ca", po::value(&tls_ca), "CA certificate (PEM) that signed the scheduler's certificate")
      ("insecure", "connect over plain TCP without certificates (closed test networks only; logged as a warning)")
      ("run-as", po::value(&run_as), "user the jobs run as with --job-uid-range none (default: nobody when the agent runs as root, else the agent's own user)")
      ("metrics-addr", po::value(&metrics_addr), "serve Prometheus metrics at http://ADDR/metrics (off by default; e.g. 127.0.0.1:9464, port 0: any free port)")
      ("log-format", po::value(&log_format)->default_value("text"), "text or json")
      ("log-level", po::value(&log_level)->default_value("info"), "trace, debug, info, warn, error");
  // clang-format on
  po::variables_map vm;
  try {
    po::store(po::parse_command_line(argc, argv, desc), vm);
    if (vm.count("config")) {
      absl::Status st =
          StoreConfigFile<v1::AgentConfig>(vm["config"].as<std::string>(), desc, vm,
                                           {{"labels", "label"}, {"tenant_users", "tenant-user"}});
      if (!st.ok()) {
        std::cerr << "portolan-agent: --config: " << st.message() << "\n";
        return 2;
      }
    }
    po::notify(vm);
  } catch (const std::exception& e) {
    std::cerr << "portolan-agent: " << e.what() << "\n" << desc << "\n";
    return 2;
  }
  if (vm.count("help")) {
    std::cout << desc << "\n";
    return 0;
  }
  if (vm.count("version")) {
    std::cout << "portolan-agent " << PORTOLAN_VERSION << "\n";
    return 0;
  }
  const bool insecure = vm.count("insecure") > 0;

  auto topology = agent::DiscoverTopology({synthetic, xml});
  if (!topology.ok()) {
    std::cerr << "portolan-agent: cannot use topology: " << topology.status().message() << "\n";
    return 2;
  }
  if (vm.count("print-topology")) {
    std::cout << agent::DescribeTopology(*topology);
    return 0;
  }
  if (absl::Status st = SetupLogging(log_format, log_level, "agent"); !st.ok()) {
    std::cerr << "portolan-agent: " << st.message() << "\n";
    return 2;
  }
  if (site.empty()) {
    std::cerr << "portolan-agent: --site is required (e.g. --site lingang-idc-1)\n";
    return 2;
  }
  if (id.empty()) {
    char host[256] = {0};
    gethostname(host, sizeof host - 1);
    id = host;
  }
  agent::AgentOptions opts;
  opts.id = id;
  opts.site = site;
  for (const std::string& l : labels) {
    size_t eq = l.find('=');
    if (eq == std::string::npos || eq == 0) {
      std::cerr << "portolan-agent: --label '" << l << "': expected key=value\n";
      return 2;
    }
    opts.labels.emplace(l.substr(0, eq), l.substr(eq + 1));  // command line first: it wins
  }
  auto hp = ParseHostPort(scheduler_addr);
  if (!hp.ok()) {
    std::cerr << "portolan-agent: --scheduler: " << hp.status().message() << "\n";
    return 2;
  }
  opts.scheduler = *hp;
  if (!tls_cert.empty() || !tls_key.empty() || !tls_ca.empty()) {
    if (insecure) {
      std::cerr << "portolan-agent: --insecure contradicts --tls-cert/--tls-key/--tls-ca\n";
      return 2;
    }
    auto ctx = tls::MakeClientContext({tls_cert, tls_key, tls_ca});
    if (!ctx.ok()) {
      std::cerr << "portolan-agent: TLS: " << ctx.status().message() << "\n";
      return 2;
    }
    opts.tls = *ctx;
  } else if (insecure) {
    spdlog::warn(
        "--insecure: the agent RPC is plain TCP; anyone on the path can read jobs and "
        "impersonate the scheduler");
  } else {
    std::cerr << "portolan-agent: the agent RPC needs --tls-cert, --tls-key and --tls-ca "
                 "(deploy/dev-ca.sh makes them), or --insecure on a closed test network\n";
    return 2;
  }
  if (state_dir.empty()) state_dir = absl::StrCat("./var/agent-", id);
  // Nothing the agent writes is for other local users.
  umask(077);
  if (!tls_key.empty()) {
    if (absl::Status st = CheckNotWorldReadable(tls_key, "--tls-key"); !st.ok()) {
      std::cerr << "portolan-agent: " << st.message() << "\n";
      return 2;
    }
  }
  state_dir = std::filesystem::absolute(state_dir).lexically_normal().string();
  for (const std::string& d : {state_dir, state_dir + "/jobs"}) {
    auto narrowed = MakePrivateDir(d, 0700);
    if (!narrowed.ok()) {
      std::cerr << "portolan-agent: state directory: " << narrowed.status().message() << "\n";
      return 2;
    }
    if (*narrowed) spdlog::warn("state directory {} was open to others; now mode 0700", d);
  }
  opts.executor.work_root = std::filesystem::absolute(state_dir + "/jobs").string();
  // What really exists here, to bind only that (an emulated topology may be larger).
  {
    auto machine = topology->source() == "hwloc" ? absl::StatusOr<v1::Topology>(*topology)
                                                 : agent::DiscoverTopology({});
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
    opts.executor.machine_has_gpus = topology->gpus_size() > 0;
  }
  if (topology->source() == "hwloc") {
    opts.rediscover = [] { return agent::DiscoverTopology({}); };
  }
  // Isolation, probed and said at start (docs/security.md).
  {
    if (cgroup_parent.empty()) cgroup_parent = absl::StrCat("portolan/", id);
    std::string why;
    auto cg = agent::OpenCgroups(cgroup_mode, "/proc/self/mounts", cgroup_parent, &why);
    if (!cg.ok()) {
      std::cerr << "portolan-agent: --cgroup " << cgroup_mode << ": " << cg.status().message()
                << "\n";
      return 2;
    }
    if (*cg) {
      spdlog::info("job limits: {}", (*cg)->Describe());
      opts.executor.cgroups = std::move(*cg);
    } else {
      spdlog::warn(
          "job limits: no cgroup ({}); jobs are bound with affinity and memory policy "
          "only, and their memory is not limited",
          why);
    }
  }
  opts.executor.pids_max = job_pids_max;
  opts.executor.memory_slack_percent = static_cast<int>(memory_slack_percent);
  opts.executor.kill_grace = absl::Milliseconds(kill_grace_ms);
  const bool root = geteuid() == 0;
  auto lookup_user = [&](const std::string& flag,
                         const std::string& name) -> absl::StatusOr<struct passwd> {
    struct passwd* pw = getpwnam(name.c_str());
    if (pw == nullptr) return absl::NotFoundError(absl::StrCat(flag, ": no user '", name, "'"));
    if (pw->pw_uid == 0)
      return absl::InvalidArgumentError(
          absl::StrCat(flag, " ", name, ": refusing to run jobs as root"));
    return *pw;
  };
  for (const std::string& tu : tenant_users) {
    size_t eq = tu.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == tu.size()) {
      std::cerr << "portolan-agent: --tenant-user '" << tu << "': expected TENANT=USER\n";
      return 2;
    }
    auto pw = lookup_user("--tenant-user", tu.substr(eq + 1));
    if (!pw.ok() || !root) {
      std::cerr << "portolan-agent: "
                << (pw.ok() ? "--tenant-user needs the agent to run as root"
                            : pw.status().message())
                << "\n";
      return 2;
    }
    opts.executor.tenant_users[tu.substr(0, eq)] = {pw->pw_uid, pw->pw_gid};
  }
  if (job_uid_range.empty()) job_uid_range = root ? "200000-265535" : "none";
  if (job_uid_range != "none") {
    if (!root) {
      std::cerr << "portolan-agent: --job-uid-range needs the agent to run as root (or "
                   "--job-uid-range none)\n";
      return 2;
    }
    auto range = agent::ParseUidRange(job_uid_range);
    // /run/portolan-agent holds one lock file per agent's range on this host.
    auto pool = range.ok()
                    ? agent::UidPool::Create(range->first, range->second, "/run/portolan-agent")
                    : absl::StatusOr<std::unique_ptr<agent::UidPool>>(range.status());
    if (!pool.ok()) {
      std::cerr << "portolan-agent: --job-uid-range: " << pool.status().message() << "\n";
      return 2;
    }
    // Processes under these uids that no attempt record accounts for are
    // killed by the executor's recovery, before the agent registers.
    opts.executor.uids = std::move(*pool);
  } else {
    if (run_as.empty() && root) run_as = "nobody";  // never run jobs as root
    if (!run_as.empty()) {
      auto pw = lookup_user("--run-as", run_as);
      if (!pw.ok()) {
        std::cerr << "portolan-agent: " << pw.status().message() << "\n";
        return 2;
      }
      if (!root && pw->pw_uid != geteuid()) {
        std::cerr << "portolan-agent: --run-as " << run_as << " needs the agent to run as root\n";
        return 2;
      }
      if (root) {
        opts.executor.run_uid = static_cast<int>(pw->pw_uid);
        opts.executor.run_gid = static_cast<int>(pw->pw_gid);
      }
    }
  }
  if (sandbox_mode != "auto" && sandbox_mode != "none") {
    std::cerr << "portolan-agent: --sandbox '" << sandbox_mode << "': expected auto or none\n";
    return 2;
  }
  // Every job runs under portolan-job-init, which keeps its exit status
  // for a restarted agent; its attempts are recorded under the state dir.
  if (job_init.empty()) job_init = agent::FindJobInit();
  if (job_init.empty() || access(job_init.c_str(), X_OK) != 0) {
    spdlog::warn(
        "portolan-job-init not found{}{} (--job-init): jobs run as the agent's own children and "
        "die with it; no sandbox",
        job_init.empty() ? "" : " at ", job_init);
  } else {
    opts.executor.job_init = job_init;
    opts.executor.records_dir = state_dir + "/attempts";
    opts.executor.keep_running_on_exit = vm.count("stop-jobs-on-exit") == 0;
  }
  if (sandbox_mode == "auto" && !opts.executor.job_init.empty()) {
    agent::SandboxSupport sb = agent::ProbeSandbox();
    if (!sb.namespaces) {
      spdlog::warn("sandbox off: {}; jobs share the agent's PID and mount namespaces", sb.why);
    } else {
      opts.executor.sandbox = true;
      opts.executor.hide = {state_dir};
      for (const std::string& h : sandbox_hide)
        opts.executor.hide.push_back(std::filesystem::absolute(h).lexically_normal().string());
      for (const std::string& r : sandbox_read_only)
        opts.executor.read_only.push_back(std::filesystem::absolute(r).lexically_normal().string());
      spdlog::info(
          "sandbox: each job in its own PID, mount, IPC and UTS namespaces (init {}), own /proc, "
          "private /tmp, /var/tmp and /dev/shm; hidden: {}{}{}",
          job_init, absl::StrJoin(opts.executor.hide, ", "),
          opts.executor.read_only.empty() ? "" : "; read-only: ",
          absl::StrJoin(opts.executor.read_only, ", "));
    }
  }
  const bool other_uid =
      opts.executor.uids || opts.executor.run_uid >= 0 || !opts.executor.tenant_users.empty();
  if (other_uid && !opts.executor.sandbox) {
    // Without a mount namespace the jobs reach their directories through the
    // state directory: let them pass (not list) it.
    for (const std::string& d : {state_dir, state_dir + "/jobs"}) chmod(d.c_str(), 0711);
    spdlog::warn("without the sandbox, {} is mode 0711 so that jobs can reach their directories",
                 state_dir);
    std::string blocked = UntraversableParent(opts.executor.work_root, 65534, 65534);
    if (!blocked.empty()) {
      std::cerr << "portolan-agent: jobs cannot reach " << opts.executor.work_root << ": "
                << blocked
                << "; choose a --state-dir they can reach (e.g. under /var/lib) or chmod o+x it\n";
      return 2;
    }
  } else if (other_uid) {
    std::string blocked =
        UntraversableParent(std::filesystem::path(state_dir).parent_path().string(), 65534, 65534);
    if (!blocked.empty()) {
      std::cerr << "portolan-agent: jobs cannot reach " << state_dir << ": " << blocked
                << "; choose a --state-dir they can reach (e.g. under /var/lib) or chmod o+x it\n";
      return 2;
    }
  }
  spdlog::info("isolation: {}", agent::IsolationSummary(agent::DescribeIsolation(opts.executor)));
  opts.reconnect_max = absl::Milliseconds(std::max<uint32_t>(reconnect_max_ms, 200));

  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  spdlog::info("portolan-agent {} starting: id {} site {} topology {} ({} PUs, {} MiB, {} GPUs)",
               PORTOLAN_VERSION, id, site, topology->source(), topology->pus(),
               topology->memory_mb(), topology->gpus_size());
  // Metrics (served only with --metrics-addr).
  metrics::Registry registry;
  auto* m_running =
      registry.AddGauge("portolan_agent_running_jobs", "Jobs running on this agent.")->With();
  auto* m_free_pus =
      registry.AddGauge("portolan_agent_free_pus", "PUs not allocated to a running job.")->With();
  auto* m_pus = registry.AddGauge("portolan_agent_pus", "PUs this agent reports.")->With();
  auto* m_mem =
      registry.AddGauge("portolan_agent_memory_available_bytes", "MemAvailable of the machine.")
          ->With();
  auto* m_connected =
      registry.AddGauge("portolan_agent_connected", "1 while registered with the scheduler.")
          ->With();
  auto* m_disconnects =
      registry.AddCounter("portolan_agent_disconnects_total", "Connections to the scheduler lost.")
          ->With();
  auto* m_errors =
      registry
          .AddCounter("portolan_agent_executor_errors_total",
                      "Jobs that could not be started (exec failure, directory, cgroup).")
          ->With();
  auto* m_ooms =
      registry
          .AddCounter("portolan_agent_oom_kills_total",
                      "Jobs the kernel's OOM killer struck in their cgroup (reported failed: out "
                      "of memory).")
          ->With();
  auto* m_updates =
      registry.AddCounter("portolan_agent_job_updates_total",
                          "Job state changes reported to the scheduler, by state.", {"state"});
  opts.on_update = [m_updates](const v1::JobUpdate& u) {
    m_updates->With({v1::Job::State_Name(u.state())})->Inc();
  };

  boost::asio::io_context io;
  int exit_code = 0;
  agent::AgentClient client(io, opts, *topology, [&](const std::string& reason) {
    exit_code = 3;
    client.Stop();
    io.stop();
  });
  uint64_t errors_seen = 0, disconnects_seen = 0, ooms_seen = 0;
  registry.OnScrape([&] {  // on the io thread: the client's state is read there
    const agent::Executor* ex = client.executor();
    if (ex == nullptr) return;
    m_running->Set(static_cast<double>(ex->running()));
    const uint32_t pus = client.topology().pus();
    m_pus->Set(pus);
    m_free_pus->Set(pus > ex->allocated_pus() ? pus - ex->allocated_pus() : 0);
    m_connected->Set(client.registered() ? 1 : 0);
    m_disconnects->Inc(static_cast<double>(client.reconnects() - disconnects_seen));
    disconnects_seen = client.reconnects();
    m_errors->Inc(static_cast<double>(ex->start_errors() - errors_seen));
    errors_seen = ex->start_errors();
    m_ooms->Inc(static_cast<double>(ex->oom_kills() - ooms_seen));
    ooms_seen = ex->oom_kills();
    m_mem->Set(static_cast<double>(agent::MemAvailableKib()) * 1024);
  });
  std::unique_ptr<metrics::HttpServer> metrics_server;
  if (!metrics_addr.empty()) {
    auto hp = ParseHostPort(metrics_addr);
    if (!hp.ok()) {
      std::cerr << "portolan-agent: --metrics-addr: " << hp.status().message() << "\n";
      return 2;
    }
    metrics_server = std::make_unique<metrics::HttpServer>(io, &registry);
    if (absl::Status st = metrics_server->Listen(*hp); !st.ok()) {
      std::cerr << "portolan-agent: " << st.message() << "\n";
      return 2;
    }
    spdlog::info("metrics at http://{}/metrics", metrics_server->bound().ToString());
  }
  // Attempts an earlier run of this agent started: re-adopted, or reported
  // as ended; whatever no record accounts for is killed. Before registering.
  {
    auto recovered = client.Recover();
    if (!recovered.ok()) {
      std::cerr << "portolan-agent: " << recovered.status().message() << "\n";
      return 2;
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
  }
  boost::asio::post(io, [&] { client.Start(); });
  // Under systemd: ready once the loop runs (the scheduler may be away for a
  // while; STATUS says whether it is registered); watchdog pings from the io
  // thread, so a wedged loop gets the agent restarted.
  const absl::Duration watchdog = service::WatchdogInterval();
  boost::asio::steady_timer watchdog_timer(io);
  bool was_registered = false;
  std::function<void()> ping = [&] {
    if (watchdog > absl::ZeroDuration()) service::WatchdogPing();
    if (client.registered() != was_registered) {
      was_registered = client.registered();
      service::Status(was_registered ? "registered with the scheduler"
                                     : "connecting to the scheduler");
    }
    watchdog_timer.expires_after(absl::ToChronoMilliseconds(
        watchdog > absl::ZeroDuration() ? std::min(watchdog / 4, absl::Seconds(1))
                                        : absl::Seconds(1)));
    watchdog_timer.async_wait([&](const boost::system::error_code& ec) {
      if (!ec) ping();
    });
  };
  boost::asio::post(io, [&] {
    service::Ready("connecting to the scheduler");
    ping();
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
      watchdog_timer.cancel();
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
