// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <set>

#include <utility>  // Boost 1.74 asio/awaitable.hpp needs std::exchange under C++20

#include <boost/asio.hpp>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "portolan/base/strings.h"
#include "portolan/scheduler/core.h"
#include "portolan/tls/tls.h"
#include "portolan/wire/frame.h"

namespace portolan::rpc {

struct RpcOptions {
  size_t max_frame_bytes = wire::kDefaultMaxFrameBytes;
  // A connection that sends no Register within this time is closed.
  absl::Duration register_timeout = absl::Seconds(10);
  // A registered connection silent for this long is closed (half-open peers).
  absl::Duration idle_timeout = absl::Seconds(30);
  size_t max_connections = 20000;
  size_t max_queued_bytes = 64u << 20;  // per connection, before it is dropped
  // Mutual TLS (tls::MakeServerContext): agents must present a certificate
  // from the configured CA whose CN/OU match the Register's agent id/site.
  // Null: plain TCP (--insecure).
  std::shared_ptr<boost::asio::ssl::context> tls;
  // A standby scheduler: every Register is refused with the leader's agent
  // RPC address this returns ("" while none is known), so that the agent
  // connects there; the core is not used (and may be null). Thread-safe.
  std::function<std::string()> standby_leader;
};

// Accepts agent connections and moves frames between them and the Core.
// Everything runs on the given io_context, which the caller runs on one
// thread; Listen/Stop must be called from that thread or before it runs.
class RpcServer {
 public:
  RpcServer(boost::asio::io_context& io, scheduler::Core* core, RpcOptions options);
  ~RpcServer();

  absl::Status Listen(const base::HostPort& addr);
  base::HostPort bound() const { return bound_; }
  void Stop();
  size_t connections() const;  // thread-safe
  // New connections use `tls` (certificate rotation on SIGHUP); established
  // ones keep theirs. Thread-safe (posted to the io thread).
  void SetTlsContext(std::shared_ptr<boost::asio::ssl::context> tls);

 private:
  class Session;
  class Deliveries;
  void Accept();

  boost::asio::io_context& io_;
  scheduler::Core* core_;
  RpcOptions options_;
  boost::asio::ip::tcp::acceptor acceptor_;
  base::HostPort bound_;
  std::shared_ptr<std::atomic<size_t>> sessions_;  // open connections
  std::shared_ptr<Deliveries> deliveries_;         // shared by the sessions
};

}  // namespace portolan::rpc
