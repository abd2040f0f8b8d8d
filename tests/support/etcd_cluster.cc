// SPDX-License-Identifier: Apache-2.0
#include "support/etcd_cluster.h"

#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "portolan/etcd/client.h"
#include "support/free_port.h"

namespace portolan::testing {
namespace {

constexpr char kEtcd[] = "/usr/bin/etcd";

int FreePort() { return FreeLoopbackPort(); }

// Whether something accepts connections on the loopback port.
bool Accepts(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(port);
  bool ok = connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0;
  close(fd);
  return ok;
}

}  // namespace

bool HaveEtcd() { return access(kEtcd, X_OK) == 0; }

EtcdCluster::EtcdCluster(int members, const EtcdTls* tls) {
  if (tls != nullptr) {
    tls_ = *tls;
    use_tls_ = true;
  }
  char tmpl[] = "/tmp/portolan-etcd-XXXXXX";
  if (mkdtemp(tmpl) == nullptr) {
    status_ = absl::InternalError("mkdtemp failed");
    return;
  }
  dir_ = tmpl;
  std::vector<std::string> peers;
  for (int i = 0; i < members; ++i) {
    Member m;
    m.name = absl::StrCat("m", i + 1);
    m.client_port = FreePort();
    m.peer_port = FreePort();
    peers.push_back(absl::StrCat(m.name, "=http://127.0.0.1:", m.peer_port));
    members_.push_back(m);
  }
  initial_cluster_ = absl::StrJoin(peers, ",");
  for (Member& m : members_) {
    status_ = Spawn(m, true);
    if (!status_.ok()) return;
  }
  status_ = WaitReady();
}

EtcdCluster::~EtcdCluster() {
  for (Member& m : members_) {
    if (m.pid > 0) {
      kill(m.pid, SIGCONT);
      kill(m.pid, SIGKILL);
      waitpid(m.pid, nullptr, 0);
    }
  }
  if (!dir_.empty()) std::filesystem::remove_all(dir_);
}

absl::Status EtcdCluster::Spawn(Member& m, bool fresh) {
  const std::string data = absl::StrCat(dir_, "/", m.name);
  const std::string client =
      absl::StrCat(use_tls_ ? "https" : "http", "://127.0.0.1:", m.client_port);
  const std::string peer = absl::StrCat("http://127.0.0.1:", m.peer_port);
  std::vector<std::string> args = {kEtcd,
                                   "--name",
                                   m.name,
                                   "--data-dir",
                                   data,
                                   "--listen-client-urls",
                                   client,
                                   "--advertise-client-urls",
                                   client,
                                   "--listen-peer-urls",
                                   peer,
                                   "--initial-advertise-peer-urls",
                                   peer,
                                   "--initial-cluster",
                                   initial_cluster_,
                                   "--initial-cluster-state",
                                   fresh ? "new" : "existing",
                                   "--initial-cluster-token",
                                   absl::StrCat("t", getpid()),
                                   "--heartbeat-interval",
                                   "50",
                                   "--election-timeout",
                                   "500",
                                   "--logger",
                                   "zap",
                                   "--log-outputs",
                                   absl::StrCat(data, ".log")};
  if (use_tls_) {
    args.insert(args.end(), {"--cert-file", tls_.cert, "--key-file", tls_.key, "--trusted-ca-file",
                             tls_.ca, "--client-cert-auth"});
  }
  pid_t pid = fork();
  if (pid < 0) return absl::InternalError("fork failed");
  if (pid == 0) {
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(kEtcd, argv.data());
    _exit(127);
  }
  m.pid = pid;
  return absl::OkStatus();
}

absl::Status EtcdCluster::WaitReady() {
  // The client URLs first (a gRPC channel that found them closed backs off).
  const absl::Time listen_deadline = absl::Now() + absl::Seconds(30);
  for (Member& m : members_) {
    while (m.pid > 0 && !Accepts(m.client_port) && absl::Now() < listen_deadline) {
      if (waitpid(m.pid, nullptr, WNOHANG) == m.pid) {
        m.pid = -1;
        std::ifstream log(absl::StrCat(dir_, "/", m.name, ".log"));
        std::string text((std::istreambuf_iterator<char>(log)), std::istreambuf_iterator<char>());
        return absl::InternalError(
            absl::StrCat("etcd member ", m.name, " exited at start: ", text.substr(0, 2000)));
      }
      absl::SleepFor(absl::Milliseconds(20));
    }
  }
  etcd::Options o;
  o.endpoints = endpoints();
  o.timeout = absl::Seconds(2);
  if (use_tls_) {
    o.ca_file = tls_.ca;
    o.cert_file = tls_.client_cert;
    o.key_file = tls_.client_key;
  }
  auto client = etcd::Client::Connect(o);
  if (!client.ok()) return client.status();
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  absl::Status last;
  while (absl::Now() < deadline) {
    etcdserverpb::RangeRequest r;
    r.set_key("ready-probe");
    auto resp = (*client)->Range(r);
    if (resp.ok()) return absl::OkStatus();
    last = resp.status();
    absl::SleepFor(absl::Milliseconds(100));
  }
  return absl::DeadlineExceededError(
      absl::StrCat("etcd cluster in ", dir_, " not ready after 30 s: ", last.message()));
}

std::vector<std::string> EtcdCluster::endpoints() const {
  std::vector<std::string> out;
  for (const Member& m : members_) out.push_back(absl::StrCat("127.0.0.1:", m.client_port));
  return out;
}

std::string EtcdCluster::url(const std::string& prefix) const {
  return absl::StrCat("etcd://", absl::StrJoin(endpoints(), ","), "/", prefix);
}

void EtcdCluster::Kill(int i) {
  Member& m = members_.at(i);
  if (m.pid <= 0) return;
  kill(m.pid, SIGKILL);
  waitpid(m.pid, nullptr, 0);
  m.pid = -1;
}

void EtcdCluster::Pause(int i) {
  if (members_.at(i).pid > 0) kill(members_[i].pid, SIGSTOP);
}

void EtcdCluster::Resume(int i) {
  if (members_.at(i).pid > 0) kill(members_[i].pid, SIGCONT);
}

absl::Status EtcdCluster::Restart(int i) {
  Member& m = members_.at(i);
  if (m.pid > 0) return absl::OkStatus();
  return Spawn(m, false);
}

}  // namespace portolan::testing
