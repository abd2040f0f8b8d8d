// portolan-scheduler: the central daemon. REST for tenants and admins, agent
// RPC for data-centre agents, state in SQLite.
#include <signal.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <thread>

#include <utility>

#include <openssl/ssl.h>
#include <boost/asio.hpp>
#include <boost/program_options.hpp>

#include "absl/strings/str_cat.h"
#include "google/protobuf/util/message_differencer.h"
#include "portolan/auth.h"
#include "portolan/codec.h"
#include "portolan/config_flags.h"
#include "portolan/files.h"
#include "portolan/log.h"
#include "portolan/logging.h"
#include "portolan/placement.h"
#include "portolan/rest_server.h"
#include "portolan/rpc_server.h"
#include "portolan/scheduler_core.h"
#include "portolan/scheduler_rest.h"
#include "portolan/service_notify.h"
#include "portolan/store.h"
#include "portolan/v1/config.pb.h"

namespace po = boost::program_options;
using namespace portolan;

namespace {

int Fail(const std::string& msg) {
  spdlog::critical("{}", msg);
  std::cerr << "portolan-scheduler: " << msg << "\n";
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  // OpenSSL initialises once, on the main thread: done lazily it happens on
  // whichever thread first hashes a token, and that thread's error state
  // (which lives until the thread ends) would never be released.
  OPENSSL_init_ssl(OPENSSL_INIT_LOAD_CONFIG, nullptr);
  std::string clock_start;
  std::string rest_addr, rpc_addr, state_dir, ports_file, log_format, log_level, policy_file,
      tokens_file, tls_cert, tls_key, tls_ca, https_cert, https_key;
  double rate_rps = 200, rate_burst = 400;
  int64_t heartbeat_ms = 0, ttl_ms = 0, resend_ms = 0, tick_ms = 0, register_timeout_ms = 0,
          backoff_ms = 0, backoff_max_ms = 0;
  size_t max_frame, max_body;
  int state_max_mb = 0;
  rest::ServerOptions sopts;
  po::options_description desc("portolan-scheduler options");
  // clang-format off
  desc.add_options()
      ("help,h", "show this help")
      ("version", "print the version")
      ("config", po::value<std::string>(), "YAML or JSON config file (SchedulerConfig, e.g. /etc/portolan/scheduler.yaml); flags given here win over it")
      ("rest-addr", po::value(&rest_addr)->default_value("127.0.0.1:7080"), "REST listen address (port 0: any free port)")
      ("rpc-addr", po::value(&rpc_addr)->default_value("127.0.0.1:7081"), "agent RPC listen address (port 0: any free port)")
      ("state-dir", po::value(&state_dir)->default_value("./var"), "directory of the SQLite state database")
      ("state-max-mb", po::value(&state_max_mb)->default_value(0), "cap the state database at this size (0: no cap); submits past it get 503 as on a full disk")
      ("policy", po::value(&policy_file)->default_value("deploy/policy/default.yaml"), "placement policy file; used when the state holds no policy yet")
      ("policy-from-file", "apply --policy at start even when the state holds a policy (a new version)")
      ("tokens", po::value(&tokens_file), "REST bearer tokens file (YAML/JSON, hashed; see docs/security.md); re-read on SIGHUP")
      ("no-auth", "serve REST without authentication (every caller is admin): only for closed test networks")
      ("tls-cert", po::value(&tls_cert), "agent RPC: the scheduler's certificate (PEM chain); agents check it names the host they connect to")
      ("tls-key", po::value(&tls_key), "agent RPC: private key of --tls-cert")
      ("tls-ca", po::value(&tls_ca), "agent RPC: CA whose agent certificates are accepted (CN = agent id, OU = site); all three re-read on SIGHUP")
      ("insecure", "agent RPC over plain TCP with no certificates (closed test networks only; logged as a warning)")
      ("https-cert", po::value(&https_cert), "serve REST over HTTPS with this certificate (PEM chain)")
      ("https-key", po::value(&https_key), "private key of --https-cert")
      ("rate-limit-rps", po::value(&rate_rps)->default_value(200), "requests per second per token (429 above)")
      ("rate-limit-burst", po::value(&rate_burst)->default_value(400), "burst allowance per token")
      ("heartbeat-interval-ms", po::value(&heartbeat_ms)->default_value(5000), "heartbeat interval told to agents")
      ("agent-ttl-ms", po::value(&ttl_ms)->default_value(15000), "an agent silent this long is lost, with its jobs")
      ("resend-interval-ms", po::value(&resend_ms)->default_value(2000), "resend unacknowledged Assign/Cancel this often")
      ("tick-ms", po::value(&tick_ms)->default_value(200), "period of TTL checks, resends and placement retries")
      ("restart-backoff-ms", po::value(&backoff_ms)->default_value(1000), "first retry of a failed or lost job waits this long, doubling per attempt")
      ("restart-backoff-max-ms", po::value(&backoff_max_ms)->default_value(60000), "longest restart backoff")
      ("register-timeout-ms", po::value(&register_timeout_ms)->default_value(10000), "close agent connections that send no Register within this time")
      ("max-frame-bytes", po::value(&max_frame)->default_value(4u << 20), "largest agent RPC frame accepted")
      ("max-body-bytes", po::value(&max_body)->default_value(1u << 20), "largest REST request body accepted (413 above)")
      ("rest-max-connections", po::value(&sopts.max_connections)->default_value(sopts.max_connections), "open REST connections at most; more are closed at accept")
      ("rest-max-connections-per-client", po::value(&sopts.max_connections_per_client)->default_value(sopts.max_connections_per_client), "open REST connections from one client address at most")
      ("rest-request-timeout-s", po::value(&sopts.request_timeout_s)->default_value(sopts.request_timeout_s), "a REST request must arrive whole within this many seconds of its first byte")
      ("rest-idle-timeout-s", po::value(&sopts.idle_timeout_s)->default_value(sopts.idle_timeout_s), "close a REST connection with no request in progress after this many seconds")
      ("rest-handshake-timeout-s", po::value(&sopts.handshake_timeout_s)->default_value(sopts.handshake_timeout_s), "the HTTPS handshake must complete within this many seconds")
      ("rest-handler-threads", po::value(&sopts.handler_threads)->default_value(sopts.handler_threads), "threads running REST handlers (the network has its own)")
      ("ports-file", po::value(&ports_file), "write the bound ports as JSON here once ready (for port 0)")
      ("log-format", po::value(&log_format)->default_value("text"), "text or json")
      ("log-level", po::value(&log_level)->default_value("info"), "trace, debug, info, warn, error")
      ("clock-start", po::value(&clock_start), "drills and tests only: run the scheduler's clock from this RFC 3339 instant at real speed (rehearse a year end or an instrument expiry); never in production");
  // clang-format on
  po::variables_map vm;
  try {
    po::store(po::parse_command_line(argc, argv, desc), vm);
    if (vm.count("config")) {
      absl::Status st =
          StoreConfigFile<v1::SchedulerConfig>(vm["config"].as<std::string>(), desc, vm);
      if (!st.ok()) {
        std::cerr << "portolan-scheduler: --config: " << st.message() << "\n";
        return 2;
      }
    }
    po::notify(vm);
  } catch (const std::exception& e) {
    std::cerr << "portolan-scheduler: " << e.what() << "\n" << desc << "\n";
    return 2;
  }
  if (vm.count("help")) {
    std::cout << desc << "\n";
    return 0;
  }
  if (vm.count("version")) {
    std::cout << "portolan-scheduler " << PORTOLAN_VERSION << "\n";
    return 0;
  }
  if (absl::Status st = SetupLogging(log_format, log_level, "scheduler"); !st.ok()) {
    std::cerr << "portolan-scheduler: " << st.message() << "\n";
    return 2;
  }
  if (heartbeat_ms <= 0 || ttl_ms <= heartbeat_ms || resend_ms <= 0 || tick_ms <= 0 ||
      register_timeout_ms <= 0) {
    return Fail("--agent-ttl-ms must exceed --heartbeat-interval-ms, and all intervals be > 0");
  }
  auto rest_hp = ParseHostPort(rest_addr);
  if (!rest_hp.ok()) return Fail(absl::StrCat("--rest-addr: ", rest_hp.status().message()));
  auto rpc_hp = ParseHostPort(rpc_addr);
  if (!rpc_hp.ok()) return Fail(absl::StrCat("--rpc-addr: ", rpc_hp.status().message()));

  // Block the signals we wait for before any thread starts.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  // Nothing the scheduler writes is for other local users: the database
  // holds every tenant's jobs, environments and the audit trail.
  umask(077);
  for (const auto& [flag, path] : {std::pair<std::string, std::string>{"--tokens", tokens_file},
                                   {"--tls-key", tls_key},
                                   {"--https-key", https_key}}) {
    if (path.empty()) continue;
    if (absl::Status st = CheckNotWorldReadable(path, flag); !st.ok())
      return Fail(std::string(st.message()));
  }
  {
    auto narrowed = MakePrivateDir(state_dir, 0700);
    if (!narrowed.ok()) return Fail(absl::StrCat("--state-dir: ", narrowed.status().message()));
    if (*narrowed) spdlog::warn("state directory {} was open to others; now mode 0700", state_dir);
    for (const char* f : {"portolan.db", "portolan.db-wal", "portolan.db-shm"}) {
      const std::string path = absl::StrCat(state_dir, "/", f);
      auto n = NarrowFileMode(path, 0600);
      if (!n.ok()) return Fail(std::string(n.status().message()));
      if (*n) spdlog::warn("{} was readable by others; now mode 0600", path);
    }
  }
  auth::TokenStore tokens;
  if (!tokens_file.empty()) {
    if (absl::Status st = tokens.Load(tokens_file); !st.ok())
      return Fail(absl::StrCat("--tokens: ", st.message()));
    spdlog::info("REST authentication: {} token(s) from {}", tokens.size(), tokens_file);
  } else if (vm.count("no-auth")) {
    spdlog::warn("REST authentication is OFF (--no-auth): every caller is an admin");
  } else {
    return Fail(
        "REST needs --tokens FILE (see docs/security.md; `portolan token new` makes one), "
        "or --no-auth on a closed test network");
  }
  const tls::Files rpc_tls{tls_cert, tls_key, tls_ca};
  std::shared_ptr<boost::asio::ssl::context> rpc_tls_context;
  if (!tls_cert.empty() || !tls_key.empty() || !tls_ca.empty()) {
    if (vm.count("insecure")) return Fail("--insecure contradicts --tls-cert/--tls-key/--tls-ca");
    auto ctx = tls::MakeServerContext(rpc_tls);
    if (!ctx.ok()) return Fail(absl::StrCat("agent RPC TLS: ", ctx.status().message()));
    rpc_tls_context = *ctx;
    spdlog::info("agent RPC: mutual TLS; agents need a certificate from {}", tls_ca);
  } else if (vm.count("insecure")) {
    spdlog::warn(
        "agent RPC is plain TCP (--insecure): agents are not authenticated and traffic is not "
        "encrypted");
  } else {
    return Fail(
        "the agent RPC needs --tls-cert, --tls-key and --tls-ca (deploy/dev-ca.sh makes a "
        "development CA), or --insecure on a closed test network");
  }
  if (https_cert.empty() != https_key.empty())
    return Fail("--https-cert and --https-key go together");
  auth::RateLimiter limiter(rate_rps, std::max(rate_burst, 1.0));
  metrics::Registry metrics_registry;
  scheduler::SchedulerMetrics metrics(metrics_registry);
  auto store = OpenSqliteStore(state_dir, state_max_mb, [&metrics](double seconds, size_t writes) {
    metrics.store_commit_seconds->Observe(seconds);
    metrics.store_batch_writes->Observe(static_cast<double>(writes));
  });
  if (!store.ok()) return Fail(absl::StrCat("cannot open state: ", store.status().message()));

  placement::Registry registry;
  placement::RegisterBuiltins(registry);

  scheduler::CoreOptions copts;
  copts.heartbeat_interval = absl::Milliseconds(heartbeat_ms);
  copts.agent_ttl = absl::Milliseconds(ttl_ms);
  copts.resend_interval = absl::Milliseconds(resend_ms);
  copts.restart_backoff = absl::Milliseconds(std::max<int64_t>(0, backoff_ms));
  copts.restart_backoff_max = absl::Milliseconds(std::max(backoff_ms, backoff_max_ms));
  // Declared before the core: the core holds agent sessions (and their
  // sockets), which must be destroyed while the io_context still exists.
  boost::asio::io_context io;
  Clock* clock = RealClock();
  std::unique_ptr<OffsetClock> drill_clock;
  if (!clock_start.empty()) {
    absl::Time start;
    std::string err;
    if (!absl::ParseTime(absl::RFC3339_full, clock_start, &start, &err)) {
      return Fail(absl::StrCat("--clock-start '", clock_start, "': not an RFC 3339 time: ", err));
    }
    drill_clock = std::make_unique<OffsetClock>(start);
    clock = drill_clock.get();
    spdlog::warn(
        "clock: starts at {} (--clock-start), running at real speed: drills and tests only",
        absl::FormatTime(absl::RFC3339_sec, start, absl::UTCTimeZone()));
  }
  scheduler::Core core(copts, store->get(), clock, &registry);
  core.AttachMetrics(&metrics);
  if (absl::Status st = core.Recover(); !st.ok()) {
    return Fail(absl::StrCat("cannot recover state from ", state_dir, ": ", st.message()));
  }
  if (!core.has_policy() || vm.count("policy-from-file")) {
    v1::Policy p;
    absl::Status st = LoadFile(policy_file, &p);
    if (!st.ok()) return Fail(absl::StrCat("--policy: ", st.message()));
    auto applied = core.ApplyPolicy(std::move(p), absl::StrCat("file:", policy_file));
    if (!applied.ok())
      return Fail(absl::StrCat("--policy ", policy_file, ": ", applied.status().message()));
  } else {
    spdlog::info("using the policy stored in {} ({} ignored; --policy-from-file applies it)",
                 state_dir, policy_file);
  }

  std::atomic<bool> ready{false};
  scheduler::RpcOptions ropts;
  ropts.max_frame_bytes = max_frame;
  ropts.idle_timeout = copts.agent_ttl * 2;
  ropts.register_timeout = absl::Milliseconds(register_timeout_ms);
  ropts.tls = rpc_tls_context;
  scheduler::RpcServer rpc(io, &core, ropts);
  if (absl::Status st = rpc.Listen(*rpc_hp); !st.ok()) return Fail(std::string(st.message()));
  metrics_registry.OnScrape(
      [&] { metrics.rpc_connections->Set(static_cast<double>(rpc.connections())); });

  if (sopts.max_connections == 0 || sopts.max_connections_per_client == 0 ||
      sopts.request_timeout_s <= 0 || sopts.idle_timeout_s <= 0 || sopts.handshake_timeout_s <= 0 ||
      sopts.handler_threads <= 0 || sopts.handler_threads > 256) {
    return Fail(
        "--rest-max-connections*, --rest-*-timeout-s must be > 0 and --rest-handler-threads 1-256");
  }
  sopts.max_body_bytes = max_body;
  sopts.tokens = tokens_file.empty() ? nullptr : &tokens;
  sopts.limiter = rate_rps > 0 ? &limiter : nullptr;
  sopts.https = {https_cert, https_key, ""};
  sopts.on_response = [&metrics](int status) {
    metrics.http_requests->With({std::to_string(status)})->Inc();
  };
  rest::Server rest_server(sopts);
  scheduler::RegisterRestApi(rest_server, &core, &ready, &metrics_registry);
  if (absl::Status st = rest_server.Start(*rest_hp); !st.ok())
    return Fail(std::string(st.message()));
  metrics_registry.OnScrape([&] {
    metrics.http_connections->Set(static_cast<double>(rest_server.connections()));
    metrics.http_connections_refused->Set(static_cast<double>(rest_server.refused_connections()));
  });

  // The tick drives TTLs, resends and retries. Under systemd it also pings
  // the watchdog, after core.Tick() returned: a wedged io loop or a core
  // stuck on its lock stops the pings and systemd restarts the service.
  const absl::Duration watchdog = service::WatchdogInterval();
  absl::Time last_ping = absl::InfinitePast();
  boost::asio::steady_timer tick(io);
  std::function<void()> arm = [&] {
    tick.expires_after(std::chrono::milliseconds(tick_ms));
    tick.async_wait([&](const boost::system::error_code& ec) {
      if (ec) return;
      core.Tick();
      if (watchdog > absl::ZeroDuration() && absl::Now() - last_ping >= watchdog / 4) {
        service::WatchdogPing();
        last_ping = absl::Now();
      }
      arm();
    });
  };
  arm();
  std::thread io_thread([&] { io.run(); });

  ready = true;
  spdlog::info("portolan-scheduler {} ready: REST {}://{} agent RPC {} ({}) state {}",
               PORTOLAN_VERSION, rest_server.scheme(), rest_server.bound().ToString(),
               rpc.bound().ToString(), rpc_tls_context ? "mutual TLS" : "plain TCP", state_dir);
  service::Ready(absl::StrCat("serving REST on ", rest_server.bound().ToString(), ", agent RPC on ",
                              rpc.bound().ToString()));
  if (!ports_file.empty()) {
    std::string tmp = ports_file + ".tmp";
    {
      std::ofstream f(tmp);
      f << "{\"rest\": " << rest_server.bound().port << ", \"rpc\": " << rpc.bound().port
        << ", \"pid\": " << getpid() << "}\n";
    }
    std::filesystem::rename(tmp, ports_file);
  }

  int sig = 0;
  while (true) {
    sigwait(&signals, &sig);
    if (sig != SIGHUP) break;
    if (!tokens_file.empty()) {
      absl::Status ts = CheckNotWorldReadable(tokens_file, "--tokens");
      if (ts.ok()) ts = tokens.Load(tokens_file);
      if (ts.ok()) {
        spdlog::info("SIGHUP: {} token(s) from {}", tokens.size(), tokens_file);
      } else {
        spdlog::error("SIGHUP: tokens not reloaded, the previous ones stay: {}", ts.message());
      }
    }
    if (rpc_tls_context) {
      // Rotated certificates or CA: new agent connections use the new files.
      auto ctx = tls::MakeServerContext(rpc_tls);
      if (ctx.ok()) {
        rpc.SetTlsContext(*ctx);
        spdlog::info("SIGHUP: agent RPC certificates re-read");
      } else {
        spdlog::error("SIGHUP: agent RPC certificates not reloaded, the previous ones stay: {}",
                      ctx.status().message());
      }
    }
    // SIGHUP: re-read the policy file; a changed, valid file becomes a new version.
    v1::Policy p;
    absl::Status st = LoadFile(policy_file, &p);
    if (st.ok()) {
      auto current = core.GetPolicy();
      if (current.ok()) p.set_version(current->version());
      if (current.ok() && google::protobuf::util::MessageDifferencer::Equals(*current, p)) {
        spdlog::info("SIGHUP: {} is unchanged; policy {} stays", policy_file, current->version());
        continue;
      }
      p.clear_version();
      auto applied = core.ApplyPolicy(std::move(p), absl::StrCat("sighup:", policy_file));
      st = applied.status();
    }
    if (!st.ok())
      spdlog::error("SIGHUP: policy file not applied, the running policy stays: {}", st.message());
  }
  // Graceful shutdown: refuse new requests first, then close agent sessions
  // (agents reconnect to the next scheduler), then close the store.
  spdlog::info("received signal {}; shutting down", sig);
  service::Stopping();
  ready = false;
  rest_server.Stop();
  boost::asio::post(io, [&] {
    tick.cancel();
    rpc.Stop();
    io.stop();
  });
  io_thread.join();
  store->reset();  // closes SQLite: the WAL is checkpointed and the file is consistent
  spdlog::info("portolan-scheduler stopped");
  return 0;
}
