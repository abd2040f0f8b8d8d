// SPDX-License-Identifier: Apache-2.0
// portolan-scheduler: the central daemon. REST for tenants and admins, agent
// RPC for data-centre agents, state in SQLite or, with several schedulers of
// which one leads, in etcd.
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
#include "portolan/auth/auth.h"
#include "portolan/base/files.h"
#include "portolan/base/log.h"
#include "portolan/base/logging.h"
#include "portolan/codec/codec.h"
#include "portolan/console/console.h"
#include "portolan/daemon/daemon.h"
#include "portolan/etcd/client.h"
#include "portolan/ha/member.h"
#include "portolan/ha/standby.h"
#include "portolan/placement/placement.h"
#include "portolan/rest/api.h"
#include "portolan/rest/cluster_api.h"
#include "portolan/rest/server.h"
#include "portolan/rpc/server.h"
#include "portolan/scheduler/core.h"
#include "portolan/scheduler/link_metric.h"
#include "portolan/service/notify.h"
#include "portolan/store/etcd_store.h"
#include "portolan/store/store.h"
#include "portolan/tls/expiry.h"
#include "portolan/v1/config.pb.h"

namespace po = boost::program_options;
using namespace portolan;

namespace {
constexpr char kProgram[] = "portolan-scheduler";
int Fail(const std::string& msg) { return daemon::Fail(kProgram, msg); }
int Fail(const absl::Status& st) { return Fail(std::string(st.message())); }

// Every flag's value; each is documented in its option's help text and in
// docs/operations.md.
struct Flags {
  std::string clock_start, rest_addr, rpc_addr, state_dir, ports_file, log_format, log_level,
      policy_file, tokens_file, tls_cert, tls_key, tls_ca, https_cert, https_key, grant_key;
  double rate_rps = 200, rate_burst = 400, preempt_grace_s = 30;
  int64_t heartbeat_ms = 0, ttl_ms = 0, resend_ms = 0, tick_ms = 0, register_timeout_ms = 0,
          backoff_ms = 0, backoff_max_ms = 0;
  size_t max_frame = 0, max_body = 0;
  rest::ServerOptions sopts;
  bool insecure = false, no_auth = false, policy_from_file = false;
  // High availability (etcd).
  std::string store_url, etcd_ca, etcd_cert, etcd_key, etcd_user, etcd_password_file, member_id,
      advertise_rest, advertise_rpc;
  int64_t etcd_timeout_ms = 5000, leader_ttl_ms = 5000;
  // Policy what-if.
  uint32_t simulate_max_jobs = 200000, simulate_deadline_ms = 30000;
  int simulate_threads = 0, state_max_mb = 0;
  std::string simulate_priority = "idle";
};

po::options_description Describe(Flags& f) {
  rest::ServerOptions& sopts = f.sopts;
  po::options_description desc("portolan-scheduler options");
  // clang-format off
  desc.add_options()
      ("help,h", "show this help")
      ("version", "print the version")
      ("config", po::value<std::string>(), "YAML or JSON config file (SchedulerConfig, e.g. /etc/portolan/scheduler.yaml); flags given here win over it")
      ("rest-addr", po::value(&f.rest_addr)->default_value("127.0.0.1:7080"), "REST listen address (port 0: any free port)")
      ("rpc-addr", po::value(&f.rpc_addr)->default_value("127.0.0.1:7081"), "agent RPC listen address (port 0: any free port)")
      ("state-dir", po::value(&f.state_dir)->default_value("./var"), "directory of the SQLite state database (--store sqlite)")
      ("store", po::value(&f.store_url)->default_value("sqlite"), "where the state lives: sqlite (a database in --state-dir; one scheduler) or etcd://host:port[,host:port...][/prefix] (an etcd cluster that several schedulers share, one of them leading; docs/operations.md#high-availability)")
      ("etcd-ca", po::value(&f.etcd_ca), "etcd: CA certificate (PEM) of the cluster's client URLs; turns TLS to etcd on")
      ("etcd-cert", po::value(&f.etcd_cert), "etcd: client certificate (PEM), when the cluster asks for one")
      ("etcd-key", po::value(&f.etcd_key), "etcd: private key of --etcd-cert")
      ("etcd-user", po::value(&f.etcd_user), "etcd: user name, when the cluster has authentication enabled")
      ("etcd-password-file", po::value(&f.etcd_password_file), "etcd: file holding --etcd-user's password (must not be world-readable)")
      ("etcd-timeout-ms", po::value(&f.etcd_timeout_ms)->default_value(5000), "etcd: deadline of one request, across all endpoints")
      ("member-id", po::value(&f.member_id), "HA: this scheduler's name in the cluster (default: host name and REST port)")
      ("advertise-rest", po::value(&f.advertise_rest), "HA: the REST URL standbys redirect clients to while this one leads (default: http(s)://--rest-addr as bound)")
      ("advertise-rpc", po::value(&f.advertise_rpc), "HA: the agent RPC address standbys send agents to while this one leads (default: --rpc-addr as bound)")
      ("leader-ttl-ms", po::value(&f.leader_ttl_ms)->default_value(5000), "HA: the leader's lease: a leader that stops renewing it (dead, paused, cut off from etcd) is replaced this long after its last renewal")
      ("state-max-mb", po::value(&f.state_max_mb)->default_value(0), "cap the state database at this size (0: no cap); submits past it get 503 as on a full disk")
      ("policy", po::value(&f.policy_file)->default_value("deploy/policy/default.yaml"), "placement policy file; used when the state holds no policy yet")
      ("policy-from-file", "apply --policy at start even when the state holds a policy (a new version)")
      ("tokens", po::value(&f.tokens_file), "REST bearer tokens file (YAML/JSON, hashed; see docs/security.md); re-read on SIGHUP")
      ("no-auth", "serve REST without authentication (every caller is admin): only for closed test networks")
      ("tls-cert", po::value(&f.tls_cert), "agent RPC: the scheduler's certificate (PEM chain); agents check it names the host they connect to")
      ("tls-key", po::value(&f.tls_key), "agent RPC: private key of --tls-cert")
      ("tls-ca", po::value(&f.tls_ca), "agent RPC: CA whose agent certificates are accepted (CN = agent id, OU = site); all three re-read on SIGHUP")
      ("insecure", "agent RPC over plain TCP with no certificates (closed test networks only; logged as a warning)")
      ("https-cert", po::value(&f.https_cert), "serve REST over HTTPS with this certificate (PEM chain)")
      ("https-key", po::value(&f.https_key), "private key of --https-cert")
      ("rate-limit-rps", po::value(&f.rate_rps)->default_value(200), "requests per second per token (429 above)")
      ("rate-limit-burst", po::value(&f.rate_burst)->default_value(400), "burst allowance per token")
      ("heartbeat-interval-ms", po::value(&f.heartbeat_ms)->default_value(5000), "heartbeat interval told to agents")
      ("agent-ttl-ms", po::value(&f.ttl_ms)->default_value(15000), "an agent silent this long is lost, with its jobs")
      ("resend-interval-ms", po::value(&f.resend_ms)->default_value(2000), "resend unacknowledged Assign/Cancel this often")
      ("tick-ms", po::value(&f.tick_ms)->default_value(200), "period of TTL checks, resends and placement retries")
      ("restart-backoff-ms", po::value(&f.backoff_ms)->default_value(1000), "first retry of a failed or lost job waits this long, doubling per attempt")
      ("restart-backoff-max-ms", po::value(&f.backoff_max_ms)->default_value(60000), "longest restart backoff")
      ("preempt-grace-s", po::value(&f.preempt_grace_s)->default_value(30), "a job preempted by a higher-priority one gets SIGTERM, this long to stop, then SIGKILL; it is requeued")
      ("grant-key", po::value(&f.grant_key), "Ed25519 private key (PEM) signing transfer grants; default <state-dir>/grant-key.pem, made on first start (HA: give every member the same file)")
      ("register-timeout-ms", po::value(&f.register_timeout_ms)->default_value(10000), "close agent connections that send no Register within this time")
      ("max-frame-bytes", po::value(&f.max_frame)->default_value(4u << 20), "largest agent RPC frame accepted")
      ("max-body-bytes", po::value(&f.max_body)->default_value(1u << 20), "largest REST request body accepted (413 above)")
      ("rest-max-connections", po::value(&sopts.max_connections)->default_value(sopts.max_connections), "open REST connections at most; more are closed at accept")
      ("rest-max-connections-per-client", po::value(&sopts.max_connections_per_client)->default_value(sopts.max_connections_per_client), "open REST connections from one client address at most")
      ("rest-request-timeout-s", po::value(&sopts.request_timeout_s)->default_value(sopts.request_timeout_s), "a REST request must arrive whole within this many seconds of its first byte")
      ("rest-idle-timeout-s", po::value(&sopts.idle_timeout_s)->default_value(sopts.idle_timeout_s), "close a REST connection with no request in progress after this many seconds")
      ("rest-handshake-timeout-s", po::value(&sopts.handshake_timeout_s)->default_value(sopts.handshake_timeout_s), "the HTTPS handshake must complete within this many seconds")
      ("rest-handler-threads", po::value(&sopts.handler_threads)->default_value(sopts.handler_threads), "threads running REST handlers (the network has its own)")
      ("simulate-max-jobs", po::value(&f.simulate_max_jobs)->default_value(200000), "policy what-if: jobs one simulation may examine (active and history together); a request over it gets 400 naming max_jobs")
      ("simulate-deadline-ms", po::value(&f.simulate_deadline_ms)->default_value(30000), "policy what-if: a simulation still deciding after this long stops with 400 naming deadline_ms")
      ("simulate-threads", po::value(&f.simulate_threads)->default_value(0), "policy what-if: threads deciding (0: one per CPU)")
      ("simulate-priority", po::value(&f.simulate_priority)->default_value("idle"), "policy what-if: idle (the deciding threads run only on CPU time nothing else wants, so serving loses nothing; on a saturated machine simulations wait, up to their deadline) or low (nice +10: a small share even then)")
      ("ports-file", po::value(&f.ports_file), "write the bound ports as JSON here once ready (for port 0)")
      ("log-format", po::value(&f.log_format)->default_value("text"), "text or json")
      ("log-level", po::value(&f.log_level)->default_value("info"), "trace, debug, info, warn, error")
      ("clock-start", po::value(&f.clock_start), "drills and tests only: run the scheduler's clock from this RFC 3339 instant at real speed (rehearse a year end or an instrument expiry); never in production");
  // clang-format on
  return desc;
}

// Flag checks that need no I/O.
absl::Status CheckFlags(const Flags& f) {
  if (f.heartbeat_ms <= 0 || f.ttl_ms <= f.heartbeat_ms || f.resend_ms <= 0 || f.tick_ms <= 0 ||
      f.register_timeout_ms <= 0) {
    return absl::InvalidArgumentError(
        "--agent-ttl-ms must exceed --heartbeat-interval-ms, and all intervals be > 0");
  }
  const rest::ServerOptions& s = f.sopts;
  if (s.max_connections == 0 || s.max_connections_per_client == 0 || s.request_timeout_s <= 0 ||
      s.idle_timeout_s <= 0 || s.handshake_timeout_s <= 0 || s.handler_threads <= 0 ||
      s.handler_threads > 256) {
    return absl::InvalidArgumentError(
        "--rest-max-connections*, --rest-*-timeout-s must be > 0 and --rest-handler-threads 1-256");
  }
  if (f.https_cert.empty() != f.https_key.empty())
    return absl::InvalidArgumentError("--https-cert and --https-key go together");
  if (f.simulate_max_jobs == 0 || f.simulate_deadline_ms < 100 || f.simulate_threads < 0 ||
      f.simulate_threads > 64) {
    return absl::InvalidArgumentError(
        "--simulate-max-jobs must be > 0, --simulate-deadline-ms >= 100, --simulate-threads 0-64");
  }
  if (f.simulate_priority != "idle" && f.simulate_priority != "low") {
    return absl::InvalidArgumentError(
        absl::StrCat("--simulate-priority '", f.simulate_priority, "': give idle or low"));
  }
  if (f.store_url != "sqlite") {
    if (absl::Status st = etcd::ParseUrl(f.store_url).status(); !st.ok())
      return absl::InvalidArgumentError(absl::StrCat("--store: ", st.message()));
    if (f.leader_ttl_ms < 1000 || f.etcd_timeout_ms < 100)
      return absl::InvalidArgumentError(
          "--leader-ttl-ms must be >= 1000, --etcd-timeout-ms >= 100");
    if (f.etcd_cert.empty() != f.etcd_key.empty())
      return absl::InvalidArgumentError("--etcd-cert and --etcd-key go together");
    if (f.etcd_user.empty() != f.etcd_password_file.empty())
      return absl::InvalidArgumentError("--etcd-user and --etcd-password-file go together");
  }
  return absl::OkStatus();
}

// Tokens from --tokens, or the explicit choice of no authentication.
absl::Status LoadTokens(const Flags& f, auth::TokenStore& tokens) {
  if (!f.tokens_file.empty()) {
    if (absl::Status st = tokens.Load(f.tokens_file); !st.ok())
      return absl::InvalidArgumentError(absl::StrCat("--tokens: ", st.message()));
    spdlog::info("REST authentication: {} token(s) from {}", tokens.size(), f.tokens_file);
    return absl::OkStatus();
  }
  if (f.no_auth) {
    spdlog::warn("REST authentication is OFF (--no-auth): every caller is an admin");
    return absl::OkStatus();
  }
  return absl::InvalidArgumentError(
      "REST needs --tokens FILE (see docs/security.md; `portolan token new` makes one), "
      "or --no-auth on a closed test network");
}

// The clock: real, or for drills one started at --clock-start.
absl::StatusOr<std::unique_ptr<base::OffsetClock>> DrillClock(const Flags& f) {
  if (f.clock_start.empty()) return nullptr;
  absl::Time start;
  std::string err;
  if (!absl::ParseTime(absl::RFC3339_full, f.clock_start, &start, &err)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--clock-start '", f.clock_start, "': not an RFC 3339 time: ", err));
  }
  spdlog::warn("clock: starts at {} (--clock-start), running at real speed: drills and tests only",
               absl::FormatTime(absl::RFC3339_sec, start, absl::UTCTimeZone()));
  return std::make_unique<base::OffsetClock>(start);
}

// Recovers the core's state and puts the policy in force: the stored one, or
// --policy when the state holds none (or with --policy-from-file).
absl::Status RecoverAndApplyPolicy(const Flags& f, scheduler::Core& core) {
  const std::string& where = f.store_url == "sqlite" ? f.state_dir : f.store_url;
  if (absl::Status st = core.Recover(); !st.ok()) {
    return absl::InternalError(
        absl::StrCat("cannot recover state from ", where, ": ", st.message()));
  }
  if (core.has_policy() && !f.policy_from_file) {
    spdlog::info("using the policy stored in {} ({} ignored; --policy-from-file applies it)", where,
                 f.policy_file);
    return absl::OkStatus();
  }
  v1::Policy p;
  absl::Status st = codec::LoadFile(f.policy_file, &p);
  if (!st.ok()) return absl::InvalidArgumentError(absl::StrCat("--policy: ", st.message()));
  auto applied = core.ApplyPolicy(std::move(p), absl::StrCat("file:", f.policy_file));
  if (!applied.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--policy ", f.policy_file, ": ", applied.status().message()));
  }
  return absl::OkStatus();
}

void ReloadTokens(const Flags& f, auth::TokenStore& tokens) {
  if (f.tokens_file.empty()) return;
  absl::Status ts = base::CheckNotWorldReadable(f.tokens_file, "--tokens");
  if (ts.ok()) ts = tokens.Load(f.tokens_file);
  if (ts.ok()) {
    spdlog::info("SIGHUP: {} token(s) from {}", tokens.size(), f.tokens_file);
  } else {
    spdlog::error("SIGHUP: tokens not reloaded, the previous ones stay: {}", ts.message());
  }
}

// SIGHUP: re-reads the tokens, the agent protocol's certificates and the
// policy file; whatever fails to load keeps its previous version.
void Reload(const Flags& f, auth::TokenStore& tokens, rpc::RpcServer& rpc, bool rpc_tls,
            scheduler::Core& core) {
  ReloadTokens(f, tokens);
  if (rpc_tls) {
    // Rotated certificates or CA: new agent connections use the new files.
    auto ctx = tls::MakeServerContext({f.tls_cert, f.tls_key, f.tls_ca});
    if (ctx.ok()) {
      rpc.SetTlsContext(*ctx);
      spdlog::info("SIGHUP: agent RPC certificates re-read");
    } else {
      spdlog::error("SIGHUP: agent RPC certificates not reloaded, the previous ones stay: {}",
                    ctx.status().message());
    }
  }
  // A changed, valid policy file becomes a new version.
  v1::Policy p;
  absl::Status st = codec::LoadFile(f.policy_file, &p);
  if (st.ok()) {
    auto current = core.GetPolicy();
    if (current.ok()) p.set_version(current->version());
    if (current.ok() && google::protobuf::util::MessageDifferencer::Equals(*current, p)) {
      spdlog::info("SIGHUP: {} is unchanged; policy {} stays", f.policy_file, current->version());
      return;
    }
    p.clear_version();
    st = core.ApplyPolicy(std::move(p), absl::StrCat("sighup:", f.policy_file)).status();
  }
  if (!st.ok())
    spdlog::error("SIGHUP: policy file not applied, the running policy stays: {}", st.message());
}

// The etcd side of a scheduler in a high-availability cluster: the client,
// the key prefix and this scheduler's membership (made once the standby's
// ports are bound, which it advertises). Lives as long as the process.
struct Ha {
  std::unique_ptr<etcd::Client> client;
  std::string prefix;
  std::unique_ptr<ha::Member> member;
  // The member once made, for REST handlers that may run before that.
  std::atomic<ha::Member*> published{nullptr};
};

// GET /v1/cluster: the members in etcd, or this one scheduler on SQLite.
v1::ClusterView ClusterView(const Flags& f, Ha* h, const rest::Server& rest,
                            const rpc::RpcServer& rpc) {
  if (h == nullptr) {
    return rest::SingleSchedulerView(
        f.member_id.empty() ? daemon::HostId(rest.bound().port) : f.member_id,
        absl::StrCat(rest.scheme(), "://", rest.bound().ToString()), rpc.bound().ToString());
  }
  ha::Member* m = h->published.load();
  return m != nullptr ? m->View() : v1::ClusterView();
}

// Serve's answer when this scheduler lost the leadership: stand by again.
constexpr int kStepDown = -1;

// Waits up to `timeout` for one of `signals`; 0 when none came.
int WaitSignal(const sigset_t& signals, absl::Duration timeout) {
  timespec ts = absl::ToTimespec(timeout);
  int sig = sigtimedwait(&signals, nullptr, &ts);
  return sig > 0 ? sig : 0;
}

absl::StatusOr<std::unique_ptr<Ha>> ConnectEtcd(const Flags& f) {
  auto url = etcd::ParseUrl(f.store_url);
  if (!url.ok()) return url.status();
  etcd::Options o;
  o.endpoints = url->endpoints;
  o.ca_file = f.etcd_ca;
  o.cert_file = f.etcd_cert;
  o.key_file = f.etcd_key;
  o.username = f.etcd_user;
  o.password_file = f.etcd_password_file;
  o.timeout = absl::Milliseconds(f.etcd_timeout_ms);
  auto client = etcd::Client::Connect(std::move(o));
  if (!client.ok()) return client.status();
  auto h = std::make_unique<Ha>();
  h->client = std::move(*client);
  h->prefix = url->prefix;
  return h;
}

// This scheduler as a cluster member: its id and advertised addresses
// (defaults from the bound ports).
ha::MemberOptions MemberOf(const Flags& f, const Ha& h, const char* scheme,
                           const base::HostPort& rest, const base::HostPort& rpc) {
  ha::MemberOptions o;
  o.prefix = h.prefix;
  o.leader_ttl = absl::Milliseconds(f.leader_ttl_ms);
  o.self.set_id(f.member_id.empty() ? daemon::HostId(rest.port) : f.member_id);
  o.self.set_rest_addr(f.advertise_rest.empty() ? absl::StrCat(scheme, "://", rest.ToString())
                                                : f.advertise_rest);
  o.self.set_rpc_addr(f.advertise_rpc.empty() ? rpc.ToString() : f.advertise_rpc);
  o.self.set_version(PORTOLAN_VERSION);
  return o;
}

rest::ServerOptions RestOptions(const Flags& f, const auth::TokenStore& tokens,
                                auth::RateLimiter& limiter) {
  rest::ServerOptions sopts = f.sopts;
  sopts.max_body_bytes = f.max_body;
  sopts.tokens = f.tokens_file.empty() ? nullptr : &tokens;
  sopts.limiter = f.rate_rps > 0 ? &limiter : nullptr;
  sopts.https = {f.https_cert, f.https_key, ""};
  return sopts;
}

rpc::RpcOptions RpcOptionsOf(const Flags& f, std::shared_ptr<boost::asio::ssl::context> rpc_tls) {
  rpc::RpcOptions ropts;
  ropts.max_frame_bytes = f.max_frame;
  ropts.idle_timeout = absl::Milliseconds(f.ttl_ms) * 2;
  ropts.register_timeout = absl::Milliseconds(f.register_timeout_ms);
  ropts.tls = std::move(rpc_tls);
  return ropts;
}

void WritePorts(const Flags& f, const base::HostPort& rest, const base::HostPort& rpc) {
  if (f.ports_file.empty()) return;
  absl::Status st = daemon::WritePortsFile(
      f.ports_file, {{"rest", rest.port}, {"rpc", rpc.port}, {"pid", getpid()}});
  if (!st.ok()) spdlog::error("--ports-file: {}", st.message());
}

// Stands by (ha/standby.h) until this member leads (returns 0 with *stop
// false) or a signal ends the process (*stop true).
int StandBy(const Flags& f, const sigset_t& signals, auth::TokenStore& tokens,
            std::shared_ptr<boost::asio::ssl::context> rpc_tls, base::HostPort& rest_hp,
            base::HostPort& rpc_hp, Ha& h, bool* stop) {
  auth::RateLimiter limiter(f.rate_rps, std::max(f.rate_burst, 1.0));
  ha::Standby standby(RestOptions(f, tokens, limiter), RpcOptionsOf(f, rpc_tls), &h.published);
  if (absl::Status st = standby.Start(rest_hp, rpc_hp); !st.ok()) return Fail(st);
  if (!h.member) {
    h.member = std::make_unique<ha::Member>(h.client.get(), base::RealClock(),
                                            MemberOf(f, h, standby.scheme(), rest_hp, rpc_hp));
    h.member->Start();
    h.published = h.member.get();
  }
  WritePorts(f, rest_hp, rpc_hp);
  spdlog::info("portolan-scheduler {} standing by as {}: REST {}://{} agent RPC {}",
               PORTOLAN_VERSION, h.member->self().id(), standby.scheme(), rest_hp.ToString(),
               rpc_hp.ToString());
  service::Ready("standby");
  int sig = 0;
  for (;;) {
    sig = WaitSignal(signals, absl::Milliseconds(50));
    if (sig == SIGHUP) {
      ReloadTokens(f, tokens);
      continue;
    }
    if (sig != 0 || h.member->leading()) break;
  }
  standby.Stop();
  if (sig != 0) {
    spdlog::info("received signal {}; shutting down", sig);
    *stop = true;
  }
  return 0;
}

// Serves from an opened store until SIGTERM/SIGINT (returns the exit status) or, in an HA
// cluster, until the leadership is lost (kStepDown). Binds `rest_hp` and `rpc_hp` (bound ports).
int Serve(const Flags& f, const sigset_t& signals, auth::TokenStore& tokens,
          std::shared_ptr<boost::asio::ssl::context> rpc_tls, base::HostPort& rest_hp,
          base::HostPort& rpc_hp, Ha* h) {
  auth::RateLimiter limiter(f.rate_rps, std::max(f.rate_burst, 1.0));
  metrics::Registry metrics_registry;
  scheduler::SchedulerMetrics metrics(metrics_registry);
  ha::AddMetrics(metrics_registry, h == nullptr ? nullptr : &h->published);
  tls::AddCertificateExpiryMetric(metrics_registry,
                                  {{"agent_rpc", f.tls_cert}, {"https", f.https_cert}});
  auto observe = [&metrics](double s, size_t writes) {
    metrics.store_commit_seconds->Observe(s);
    metrics.store_batch_writes->Observe(static_cast<double>(writes));
  };
  std::unique_ptr<store::Store> store;
  if (h != nullptr) {
    auto opened = store::EtcdStore::Open(h->client.get(), h->prefix, observe);
    if (!opened.ok()) {
      spdlog::error("cannot open the state in etcd: {}; standing by", opened.status().message());
      return kStepDown;
    }
    // From here on, a write lands only while this leadership holds.
    (*opened)->SetFence(h->member->leader_key(), h->member->fence());
    if (h->member->fence() == 0) return kStepDown;
    store = std::move(*opened);
  } else {
    auto opened = store::OpenSqliteStore(f.state_dir, f.state_max_mb, observe);
    if (!opened.ok()) return Fail(absl::StrCat("cannot open state: ", opened.status().message()));
    store = std::move(*opened);
  }
  placement::Registry registry;
  placement::RegisterBuiltins(registry);
  scheduler::CoreOptions copts;
  copts.heartbeat_interval = absl::Milliseconds(f.heartbeat_ms);
  copts.agent_ttl = absl::Milliseconds(f.ttl_ms);
  copts.resend_interval = absl::Milliseconds(f.resend_ms);
  copts.restart_backoff = absl::Milliseconds(std::max<int64_t>(0, f.backoff_ms));
  copts.restart_backoff_max = absl::Milliseconds(std::max(f.backoff_ms, f.backoff_max_ms));
  copts.preempt_grace = absl::Seconds(std::max(0.0, f.preempt_grace_s));
  copts.grant_key = f.grant_key.empty() ? f.state_dir + "/grant-key.pem" : f.grant_key;
  // Declared before the core: the core holds agent sessions (and their
  // sockets), which must be destroyed while the io_context still exists.
  boost::asio::io_context io;
  auto drill_clock = DrillClock(f);
  if (!drill_clock.ok()) return Fail(drill_clock.status());
  scheduler::Core core(copts, store.get(), *drill_clock ? drill_clock->get() : base::RealClock(),
                       &registry);
  core.AttachMetrics(&metrics);
  const absl::Time recovery_started = absl::Now();
  if (absl::Status st = RecoverAndApplyPolicy(f, core); !st.ok()) {
    if (h != nullptr) {
      spdlog::error("{}; standing by", st.message());
      return kStepDown;
    }
    return Fail(st);
  }
  const absl::Duration recovery = absl::Now() - recovery_started;

  std::atomic<bool> ready{false};
  rpc::RpcServer rpc(io, &core, RpcOptionsOf(f, rpc_tls));
  if (absl::Status st = rpc.Listen(rpc_hp); !st.ok()) return Fail(st);
  rpc_hp = rpc.bound();
  rest::ServerOptions sopts = RestOptions(f, tokens, limiter);
  sopts.on_response = [&metrics](int status) {
    metrics.http_requests->With({std::to_string(status)})->Inc();
  };
  rest::Server rest_server(sopts);
  scheduler::SimulateLimits simulate;
  simulate.max_jobs = f.simulate_max_jobs;
  simulate.deadline = absl::Milliseconds(f.simulate_deadline_ms);
  simulate.threads = f.simulate_threads;
  simulate.idle = f.simulate_priority == "idle";
  rest::RegisterRestApi(rest_server, &core, &ready, &metrics_registry, simulate);
  scheduler::AddLinkMetric(metrics_registry, core);
  rest::RegisterClusterApi(rest_server, [&] { return ClusterView(f, h, rest_server, rpc); });
  console::RegisterConsole(rest_server, {.https = !sopts.https.cert.empty()});
  if (absl::Status st = rest_server.Start(rest_hp); !st.ok()) return Fail(st);
  rest_hp = rest_server.bound();
  metrics_registry.OnScrape([&] {
    metrics.rpc_connections->Set(static_cast<double>(rpc.connections()));
    metrics.http_connections->Set(static_cast<double>(rest_server.connections()));
    metrics.http_connections_refused->Set(static_cast<double>(rest_server.refused_connections()));
  });

  // The tick drives TTLs, resends and retries, and feeds the watchdog.
  daemon::PeriodicTask tick(io, absl::Milliseconds(f.tick_ms), [&core] { core.Tick(); });
  tick.Start();
  std::thread io_thread([&] { io.run(); });

  ready = true;
  spdlog::info(
      "portolan-scheduler {} ready{}: REST {}://{} agent RPC {} ({}) state {} "
      "(recovered in {})",
      PORTOLAN_VERSION, h != nullptr ? " as leader" : "", rest_server.scheme(),
      rest_server.bound().ToString(), rpc.bound().ToString(), rpc_tls ? "mutual TLS" : "plain TCP",
      h != nullptr ? f.store_url : f.state_dir,
      absl::FormatDuration(absl::Trunc(recovery, absl::Milliseconds(1))));
  service::Ready(absl::StrCat("serving REST on ", rest_server.bound().ToString(), ", agent RPC on ",
                              rpc.bound().ToString()));
  WritePorts(f, rest_hp, rpc_hp);

  int sig = 0;
  bool step_down = false;
  for (;;) {
    sig = WaitSignal(signals, absl::Milliseconds(50));
    if (sig == SIGHUP) {
      Reload(f, tokens, rpc, rpc_tls != nullptr, core);
      continue;
    }
    if (sig != 0) break;
    if (h != nullptr && !h->member->leading()) {
      step_down = true;
      break;
    }
  }
  // Graceful shutdown: refuse new requests first, then close agent sessions
  // (agents reconnect to the next scheduler), then close the store.
  if (step_down) {
    spdlog::error("no longer the leader: closing the REST and agent ports and standing by");
  } else {
    spdlog::info("received signal {}; shutting down", sig);
    service::Stopping();
  }
  ready = false;
  rest_server.Stop();
  boost::asio::post(io, [&] {
    tick.Cancel();
    rpc.Stop();
    io.stop();
  });
  io_thread.join();
  store.reset();  // closes SQLite: the WAL is checkpointed and the file is consistent
  if (step_down) return kStepDown;
  spdlog::info("portolan-scheduler stopped");
  return 0;
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
  if (auto done = daemon::ParseCommandLine<v1::SchedulerConfig>(argc, argv, kProgram, desc, vm))
    return *done;
  f.insecure = vm.count("insecure") > 0;
  f.no_auth = vm.count("no-auth") > 0;
  f.policy_from_file = vm.count("policy-from-file") > 0;
  if (absl::Status st = base::SetupLogging(f.log_format, f.log_level, "scheduler"); !st.ok()) {
    std::cerr << "portolan-scheduler: " << st.message() << "\n";
    return 2;
  }
  if (absl::Status st = CheckFlags(f); !st.ok()) return Fail(st);
  auto rest_hp = base::ParseHostPort(f.rest_addr);
  if (!rest_hp.ok()) return Fail(absl::StrCat("--rest-addr: ", rest_hp.status().message()));
  auto rpc_hp = base::ParseHostPort(f.rpc_addr);
  if (!rpc_hp.ok()) return Fail(absl::StrCat("--rpc-addr: ", rpc_hp.status().message()));
  // Blocked before any thread starts, so that only the sigwait sees them.
  const sigset_t signals = daemon::BlockSignals({SIGINT, SIGTERM, SIGHUP});

  // Nothing the scheduler writes is for other local users: the database
  // holds every tenant's jobs, environments and the audit trail.
  umask(077);
  absl::Status st = daemon::CheckSecrets(
      {{"--tokens", f.tokens_file}, {"--tls-key", f.tls_key}, {"--https-key", f.https_key}});
  if (!st.ok()) return Fail(st);
  st = daemon::MakeStatePrivate(f.state_dir, {"portolan.db", "portolan.db-wal", "portolan.db-shm"});
  if (!st.ok()) return Fail(absl::StrCat("--state-dir: ", st.message()));
  auth::TokenStore tokens;
  if (absl::Status st = LoadTokens(f, tokens); !st.ok()) return Fail(st);
  auto rpc_tls = daemon::AgentProtocolTls({f.tls_cert, f.tls_key, f.tls_ca}, f.insecure, true);
  if (!rpc_tls.ok()) return Fail(rpc_tls.status());
  if (*rpc_tls) spdlog::info("agent RPC: mutual TLS; agents need a certificate from {}", f.tls_ca);
  base::HostPort rest = *rest_hp, rpc = *rpc_hp;
  if (f.store_url == "sqlite") return Serve(f, signals, tokens, *rpc_tls, rest, rpc, nullptr);
  auto h = ConnectEtcd(f);
  if (!h.ok()) return Fail(absl::StrCat("--store ", f.store_url, ": ", h.status().message()));
  // Stand by until leading, lead until the leadership is lost, and again.
  for (;;) {
    bool stop = false;
    int rc = StandBy(f, signals, tokens, *rpc_tls, rest, rpc, **h, &stop);
    if (rc != 0 || stop) {
      (*h)->member->Stop();
      return rc;
    }
    rc = Serve(f, signals, tokens, *rpc_tls, rest, rpc, h->get());
    if (rc != kStepDown) {
      (*h)->member->Stop();  // resigns: a standby takes over at once
      return rc;
    }
    (*h)->member->StepDown();
  }
}
