// SPDX-License-Identifier: Apache-2.0
#pragma once

// A real etcd cluster on loopback for tests: N members of Debian's etcd
// (/usr/bin/etcd), each a child process of the test with its own data
// directory under a temporary folder, on free loopback ports. Ended by pid
// (the destructor kills what it started and removes the folder).

#include <sys/types.h>

#include <string>
#include <vector>

#include "absl/status/status.h"

namespace portolan::testing {

// Client URLs over TLS that require a client certificate from `ca`
// (`cert`/`key` are the members' server certificate; `client_cert`/
// `client_key` what the readiness probe presents).
struct EtcdTls {
  std::string ca, cert, key, client_cert, client_key;
};

class EtcdCluster {
 public:
  // Starts `members` members and waits until the cluster answers a
  // linearizable read (up to 30 s).
  explicit EtcdCluster(int members = 1, const EtcdTls* tls = nullptr);
  ~EtcdCluster();
  EtcdCluster(const EtcdCluster&) = delete;
  EtcdCluster& operator=(const EtcdCluster&) = delete;

  // What the constructor ran into; OK when the cluster is up.
  const absl::Status& status() const { return status_; }
  // host:port of each member's client URL.
  std::vector<std::string> endpoints() const;
  // "etcd://h:p,h:p/<prefix>"
  std::string url(const std::string& prefix = "portolan") const;

  void Kill(int member);    // SIGKILL, waits for it
  void Pause(int member);   // SIGSTOP
  void Resume(int member);  // SIGCONT
  // Starts a killed member again with its data directory.
  absl::Status Restart(int member);

 private:
  struct Member {
    std::string name;
    int client_port = 0;
    int peer_port = 0;
    pid_t pid = -1;
  };
  absl::Status Spawn(Member& m, bool fresh);
  absl::Status WaitReady();

  std::string dir_;
  EtcdTls tls_;
  bool use_tls_ = false;
  std::string initial_cluster_;
  std::vector<Member> members_;
  absl::Status status_;
};

// True when /usr/bin/etcd exists (tests skip with a message otherwise).
bool HaveEtcd();

}  // namespace portolan::testing
