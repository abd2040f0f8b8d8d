// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <atomic>
#include <memory>
#include <thread>

#include <utility>  // Boost 1.74 asio/awaitable.hpp needs std::exchange under C++20

#include <boost/asio.hpp>

#include "absl/status/status.h"
#include "portolan/base/strings.h"
#include "portolan/ha/member.h"
#include "portolan/metrics/metrics.h"
#include "portolan/rest/server.h"
#include "portolan/rpc/server.h"

namespace portolan::ha {

// The ports of a standby scheduler (docs/operations.md#high-availability):
// REST answers /healthz, /readyz (not ready, naming the leader), /v1/cluster
// and /metrics, and redirects every other request to the leader (307); the
// agent port refuses registrations with the leader's address. Both come
// down before the scheduler, once leading, binds the same ports to serve.
class Standby {
 public:
  // `member` is read on every request; it may be null until published (a
  // member is made once the ports are bound, for it advertises them).
  Standby(rest::ServerOptions rest, rpc::RpcOptions rpc, const std::atomic<Member*>* member);
  ~Standby();

  // Binds both (port 0: any), leaving the bound ports in the arguments.
  absl::Status Start(base::HostPort& rest, base::HostPort& rpc);
  void Stop();
  const char* scheme() const { return rest_.scheme(); }

 private:
  metrics::Registry registry_;
  rest::Server rest_;
  boost::asio::io_context io_;
  std::unique_ptr<rpc::RpcServer> rpc_;
  std::thread io_thread_;
};

}  // namespace portolan::ha
