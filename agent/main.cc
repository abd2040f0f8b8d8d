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
#include "portolan/agent_client.h"
#include "portolan/codec.h"
#include "portolan/config_flags.h"
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
      log_level, cgroup_root, tls_cert, tls_key, tls_ca, metrics_addr;
  std::vector<std::string> labels;
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
      ("cgroup-root", po::value(&cgroup_root)->default_value("auto"), "cgroup v2 limits per job: auto (/sys/fs/cgroup/portolan when cpuset and memory can be delegated), none, or a prepared directory")
("kill-grace-ms", po::value(&kill_grace_ms)->default_value(10000), "SIGTERM to SIGKILL grace period for timeouts and cancels")
("reconnect-max-ms", po::value(&reconnect_max_ms)->default_value(10000), "longest wait between reconnection attempts (backoff starts at 200 ms and doubles)")
      ("tls-cert", po::value(&tls_cert), "this agent's certificate (PEM, CN = agent id, OU = site), from the CA the scheduler trusts; see deploy/dev-ca.sh")
      ("tls-key", po::value(&tls_key), "private key of --tls-cert (PEM)")
      ("tls-ca", po::value(&tls_ca), "CA certificate (PEM) that signed the scheduler's certificate")
      ("insecure", "connect over plain TCP without certificates (closed test networks only; logged as a warning)")
      ("run-as", po::value(&run_as), "user the jobs run as (default: nobody when the agent runs as root, else the agent's own user)")
      ("metrics-addr", po::value(&metrics_addr), "serve Prometheus metrics at http://ADDR/metrics (off by default; e.g. 127.0.0.1:9464, port 0: any free port)")
      ("log-format", po::value(&log_format)->default_value("text"), "text or json")
      ("log-level", po::value(&log_level)->default_value("info"), "trace, debug, info, warn, error");
  // clang-format on
  po::variables_map vm;
  try {
    po::store(po::parse_command_line(argc, argv, desc), vm);
    if (vm.count("config")) {
      absl::Status st = StoreConfigFile<v1::AgentConfig>(vm["config"].as<std::string>(), desc, vm,
                                                         {{"labels", "label"}});
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
  std::error_code ec;
  std::filesystem::create_directories(state_dir + "/jobs", ec);
  if (ec) {
    std::cerr << "portolan-agent: state directory " << state_dir << ": " << ec.message() << "\n";
    return 2;
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
  if (cgroup_root == "auto") {
    auto root = agent::PrepareCgroupRoot("/sys/fs/cgroup", "portolan");
    if (root.ok()) {
      opts.executor.cgroup_root = *root;
      spdlog::info("cgroup v2: each job gets a cgroup under {} with cpuset and memory.max", *root);
    } else {
      spdlog::info("cgroup v2 limits off ({}); jobs are bound with affinity and memory policy only",
                   root.status().message());
    }
  } else if (cgroup_root != "none") {
    opts.executor.cgroup_root = cgroup_root;
    spdlog::info("cgroup v2: job cgroups under {}", cgroup_root);
  }
  opts.executor.kill_grace = absl::Milliseconds(kill_grace_ms);
  if (run_as.empty() && geteuid() == 0) run_as = "nobody";  // never run jobs as root
  if (!run_as.empty()) {
    struct passwd* pw = getpwnam(run_as.c_str());
    if (pw == nullptr) {
      std::cerr << "portolan-agent: --run-as: no user '" << run_as << "'\n";
      return 2;
    }
    if (pw->pw_uid == 0) {
      std::cerr << "portolan-agent: --run-as " << run_as << ": refusing to run jobs as root\n";
      return 2;
    }
    if (geteuid() != 0 && pw->pw_uid != geteuid()) {
      std::cerr << "portolan-agent: --run-as " << run_as << " needs the agent to run as root\n";
      return 2;
    }
    if (geteuid() == 0) {
      opts.executor.run_uid = static_cast<int>(pw->pw_uid);
      opts.executor.run_gid = static_cast<int>(pw->pw_gid);
      // Each job's directory is under the state directory: the job's user
      // must be able to pass through every directory above it.
      std::string blocked = UntraversableParent(opts.executor.work_root, pw->pw_uid, pw->pw_gid);
      if (!blocked.empty()) {
        std::cerr
            << "portolan-agent: jobs run as " << run_as << ", who cannot reach "
            << opts.executor.work_root << ": " << blocked
            << "; choose a --state-dir they can reach (e.g. under /var/lib) or chmod o+x it\n";
        return 2;
      }
    }
  }
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
  uint64_t errors_seen = 0, disconnects_seen = 0;
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
    spdlog::info("received signal {}; stopping running jobs and shutting down", sig);
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
